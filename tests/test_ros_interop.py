"""Interoperability with stock ROS 2, across processes: a plain rclpy node against our nodes.

The "user" node (:class:`conftest.UserNode`) is written the way a ROS 2 user writes one: generated
message classes (``sensor_msgs.msg.Image``), ``qos_profile_sensor_data`` or a depth of 10, rclpy's
``AsyncParameterClient`` and the ``lifecycle_msgs/srv/ChangeState`` service; stock settings except
the test's ``ROS_DOMAIN_ID`` and ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``. Our nodes run as
their own processes (``python -m robot_rl.sim.node`` ...), as ``ros2 run`` would start them. Each
test runs in both start orders: the user node first, and ours first (already publishing when the
user node joins).

What is shown:
    * every topic the sim node, the camera node and the arm node publish arrives at the user node,
      in order (stamps never go back), decoded, with the right types;
    * the user's arm, gripper, pose and reset commands move the simulated arm; its teleop messages
      (``/spacenav/twist``, ``/spacenav/joy``) decode on our side;
    * our nodes' parameters can be listed, described, read and set with the standard parameter
      client; a wrong type, an out-of-range value and a read-only parameter are refused with a
      reason, and the node keeps running;
    * the arm node is driven through configure / activate / deactivate / cleanup with
      ``ChangeState``; a transition that is not allowed is refused and the node keeps running.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import UserNode, start_node, stop_node

pytest.importorskip("rclpy")

SIM, CAMERA, ARM = "robot_rl.sim.node", "robot_rl.drivers.camera_node", "robot_rl.drivers.arm_node"
ORDERS = ["user_first", "ours_first"]


def _wait_for_log(path: Path, text: str, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, f"node exited with {proc.returncode}:\n{path.read_text(errors='replace')}"
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the log after {timeout_s} s:\n{path.read_text(errors='replace')}")


def _stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _subscribe(user: UserNode, topics: dict[str, tuple[type, object]]) -> dict[str, list]:
    got: dict[str, list] = {name: [] for name in topics}
    for name, (cls, qos) in topics.items():
        user.node.create_subscription(cls, name, got[name].append, qos)
    return got


def _call(user: UserNode, future, timeout_s: float = 10.0):
    assert user.spin_until(future.done, timeout_s), "no answer from the parameter service"
    return future.result()


def _publish_for(user: UserNode, pub, msg, duration_s: float, period_s: float = 0.05) -> None:
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        pub.publish(msg)
        user.spin_until(lambda: False, period_s)


def _teleop_reader() -> subprocess.Popen:
    """A robot_rl process that decodes the user's /spacenav/twist and /spacenav/joy (what RosTeleop reads)."""
    script = textwrap.dedent("""
        from robot_rl.ros import convert
        from robot_rl.ros.node import Node
        node, last = Node("teleop_reader"), {}
        node.create_subscription("geometry_msgs/msg/Twist", convert.SPACENAV_TWIST, lambda m: last.__setitem__("twist", m))
        node.create_subscription("sensor_msgs/msg/Joy", convert.SPACENAV_JOY, lambda m: last.__setitem__("joy", m))
        node.spin(timeout_s=60.0, until=lambda: len(last) == 2)
        cmd = convert.teleop_from_msgs(last.get("twist"), last.get("joy"))
        print("TELEOP", cmd.twist.round(3).tolist(), cmd.engaged, flush=True)
        node.shutdown()
    """)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("order", ORDERS)
def test_sim_and_camera_nodes_with_a_stock_rclpy_node(ros_domain: int, tmp_path: Path, order: str) -> None:
    from geometry_msgs.msg import PoseStamped, Twist, TwistStamped, WrenchStamped
    from rcl_interfaces.msg import ParameterType
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, JointState, Joy
    from std_msgs.msg import Float64, Float64MultiArray, Int64MultiArray

    procs: dict[str, subprocess.Popen] = {}
    logs = {"sim": tmp_path / "sim.log", "camera": tmp_path / "camera.log"}

    def start_ours() -> None:
        procs["sim"] = start_node(SIM, "-p", "env:=robot_rl/PandaPickLiftPixels-v0", "-p", "image_size:=64",
                                  "-p", "control_rate_hz:=20.0", log_path=str(logs["sim"]))
        procs["camera"] = start_node(CAMERA, "-p", "backend:=sim", "-p", "camera_name:=side", "-p", "sim_camera:=front",
                                     "-p", "width:=64", "-p", "height:=64", "-p", "rate_hz:=10.0", log_path=str(logs["camera"]))

    sensor = qos_profile_sensor_data
    topics = {
        "/joint_states": (JointState, 10), "/arm/ee_pose": (PoseStamped, 10), "/arm/ee_twist": (TwistStamped, 10),
        "/arm/wrench": (WrenchStamped, 10), "/task/state": (Float64MultiArray, 10), "/sim/reset_done": (Int64MultiArray, 10),
        "/camera/front/color/image_raw": (Image, sensor), "/camera/front/color/camera_info": (CameraInfo, sensor),
        "/camera/wrist/color/image_raw": (Image, sensor), "/camera/wrist/color/camera_info": (CameraInfo, sensor),
        "/camera/side/color/image_raw": (Image, sensor), "/camera/side/color/camera_info": (CameraInfo, sensor),
    }
    streams = [t for t in topics if t != "/sim/reset_done"]
    try:
        if order == "ours_first":
            start_ours()
            for name in ("sim", "camera"):
                _wait_for_log(logs[name], "activate: inactive -> active", procs[name])
        with UserNode("stock_user") as user:
            got = _subscribe(user, topics)
            if order == "user_first":
                start_ours()
            assert user.spin_until(lambda: all(len(got[t]) >= 5 for t in streams), 90.0), \
                {t: len(got[t]) for t in streams}
            # types, decoding, order
            for t in streams:
                assert all(isinstance(m, topics[t][0]) for m in got[t]), t
                if t != "/task/state":
                    stamps = [_stamp_s(m) for m in got[t]]
                    assert stamps == sorted(stamps), f"{t} out of order"
            for cam in ("front", "wrist", "side"):
                img, info = got[f"/camera/{cam}/color/image_raw"][-1], got[f"/camera/{cam}/color/camera_info"][-1]
                assert (img.height, img.width, img.encoding, img.step, len(img.data)) == (64, 64, "rgb8", 192, 64 * 192)
                assert img.header.frame_id == info.header.frame_id == f"{cam}_color_optical_frame"
                assert info.k[0] > 0 and (info.height, info.width) == (64, 64)
            js = got["/joint_states"][-1]
            assert js.name[:7] == [f"panda_joint{i}" for i in range(1, 8)] and "gripper" in js.name
            assert len(js.position) == len(js.name) and np.isfinite(js.position).all()
            assert got["/arm/wrench"][-1].header.frame_id == "panda_hand_tcp" and len(got["/task/state"][-1].data) > 0

            # commands: twist +x, then a pose target back, the gripper, a reset
            twist_pub = user.node.create_publisher(TwistStamped, "/arm/delta_twist_cmds", 10)
            pose_pub = user.node.create_publisher(PoseStamped, "/arm/equilibrium_pose", 10)
            grip_pub = user.node.create_publisher(Float64, "/arm/gripper_cmd", 10)
            reset_pub = user.node.create_publisher(Int64MultiArray, "/sim/reset", 10)
            x0 = got["/arm/ee_pose"][-1].pose.position.x
            cmd = TwistStamped()
            cmd.header.frame_id = "base_link"
            cmd.twist.linear.x = 0.1
            _publish_for(user, twist_pub, cmd, 1.5)
            user.spin_until(lambda: False, 0.3)
            x1 = got["/arm/ee_pose"][-1].pose.position.x
            assert x1 - x0 > 0.05, (x0, x1)
            target = PoseStamped()
            target.header.frame_id = "base_link"
            target.pose = got["/arm/ee_pose"][-1].pose
            target.pose.position.x = x1 - 0.05
            _publish_for(user, pose_pub, target, 1.5)
            user.spin_until(lambda: False, 0.3)
            assert got["/arm/ee_pose"][-1].pose.position.x < x1 - 0.03
            gripper = lambda: got["/joint_states"][-1].position[got["/joint_states"][-1].name.index("gripper")]  # noqa: E731
            g0 = gripper()
            _publish_for(user, grip_pub, Float64(data=0.0 if g0 > 0.02 else 1.0), 1.5)
            assert abs(gripper() - g0) > 0.005, (g0, gripper())
            reset_pub.publish(Int64MultiArray(data=[1, 7]))
            assert user.spin_until(lambda: any(list(m.data) == [1, 7] for m in got["/sim/reset_done"]), 20.0)

            # teleop: a stock node publishes what a SpaceMouse driver does; robot_rl decodes it
            reader = _teleop_reader()
            twist_tel = user.node.create_publisher(Twist, "/spacenav/twist", 10)
            joy_pub = user.node.create_publisher(Joy, "/spacenav/joy", 10)
            tele = Twist()
            tele.linear.x, tele.angular.z = 0.5, -0.25
            end = time.monotonic() + 60.0
            while reader.poll() is None and time.monotonic() < end:
                twist_tel.publish(tele)
                joy_pub.publish(Joy(axes=[], buttons=[0, 0, 1, 0, 0, 0]))
                user.spin_until(lambda: False, 0.1)
            out = reader.communicate(timeout=10)[0]
            assert "TELEOP [0.5, 0.0, 0.0, 0.0, 0.0, -0.25] True" in out, out

            # parameters through the standard client
            client = AsyncParameterClient(user.node, "/sim")
            assert client.wait_for_services(10.0)
            names = _call(user, client.list_parameters()).result.names
            assert {"env", "control_rate_hz", "max_ee_speed_m_s", "autostart"} <= set(names)
            desc = {d.name: d for d in _call(user, client.describe_parameters(["max_ee_speed_m_s", "env"])).descriptors}
            speed = desc["max_ee_speed_m_s"]
            assert speed.type == ParameterType.PARAMETER_DOUBLE and "[m/s]" in speed.description and not speed.read_only
            assert (speed.floating_point_range[0].from_value, speed.floating_point_range[0].to_value) == (0.001, 10.0)
            assert desc["env"].read_only
            results = _call(user, client.set_parameters([
                Parameter("max_ee_speed_m_s", value=0.5),        # good
                Parameter("max_ee_speed_m_s", value="fast"),     # wrong type
                Parameter("max_ee_speed_m_s", value=50.0),       # out of range
                Parameter("env", value="robot_rl/PandaReach-v0"),  # read-only
            ])).results
            assert [r.successful for r in results] == [True, False, False, False], results
            assert "type" in results[1].reason.lower() and "range" in results[2].reason and "read-only" in results[3].reason
            values = _call(user, client.get_parameters(["max_ee_speed_m_s", "env"])).values
            assert (values[0].double_value, values[1].string_value) == (0.5, "robot_rl/PandaPickLiftPixels-v0")
            camera = AsyncParameterClient(user.node, "/camera")
            assert camera.wait_for_services(10.0)
            results = _call(user, camera.set_parameters([Parameter("rate_hz", value=5.0), Parameter("rate_hz", value=0.0),
                                                         Parameter("backend", value="opencv")])).results
            assert [r.successful for r in results] == [True, False, False], results
            # both nodes are still running and publishing after the refusals
            counts = {t: len(got[t]) for t in ("/joint_states", "/camera/side/color/image_raw")}
            assert user.spin_until(lambda: all(len(got[t]) > counts[t] + 2 for t in counts), 20.0)
            assert all(p.poll() is None for p in procs.values())
    finally:
        codes = {name: stop_node(p) for name, p in procs.items()}
    assert codes == {"sim": 0, "camera": 0}, {name: logs[name].read_text(errors="replace")[-2000:] for name in codes}
    assert "parameter max_ee_speed_m_s set to 0.5" in logs["sim"].read_text()  # applied once, the refused sets were not


@pytest.mark.parametrize("order", ORDERS)
def test_arm_node_lifecycle_through_change_state(ros_domain: int, tmp_path: Path, order: str) -> None:
    from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
    from lifecycle_msgs.msg import State, Transition, TransitionEvent
    from lifecycle_msgs.srv import ChangeState, GetState
    from sensor_msgs.msg import JointState

    log = tmp_path / "arm.log"
    proc = None

    def start_ours() -> subprocess.Popen:
        return start_node(ARM, "-p", "backend:=sim", "-p", "autostart:=false", "-p", "control_rate_hz:=20.0", log_path=str(log))

    def change(user: UserNode, label: str) -> bool:
        return user.call(ChangeState, "/arm/change_state", ChangeState.Request(transition=Transition(label=label))).success

    def state(user: UserNode) -> str:
        return user.call(GetState, "/arm/get_state", GetState.Request()).current_state.label

    try:
        if order == "ours_first":
            proc = start_ours()
            _wait_for_log(log, "unconfigured (autostart is false)", proc)
        topics = {"/joint_states": (JointState, 10), "/arm/ee_pose": (PoseStamped, 10), "/arm/ee_twist": (TwistStamped, 10),
                  "/arm/wrench": (WrenchStamped, 10), "/arm/transition_event": (TransitionEvent, 10)}
        with UserNode("lifecycle_user") as user:
            got = _subscribe(user, topics)
            if order == "user_first":
                proc = start_ours()
            assert state(user) == "unconfigured"
            assert not change(user, "activate")                     # not allowed from unconfigured
            assert state(user) == "unconfigured" and proc.poll() is None
            assert change(user, "configure") and state(user) == "inactive"
            assert change(user, "activate") and state(user) == "active"
            assert not change(user, "configure")                    # not allowed from active
            assert state(user) == "active"
            streams = [t for t in topics if t != "/arm/transition_event"]
            assert user.spin_until(lambda: all(len(got[t]) >= 5 for t in streams), 30.0), {t: len(got[t]) for t in streams}
            for t in streams:
                stamps = [_stamp_s(m) for m in got[t]]
                assert all(isinstance(m, topics[t][0]) for m in got[t]) and stamps == sorted(stamps), t
            # active: commands move the arm
            pub = user.node.create_publisher(TwistStamped, "/arm/delta_twist_cmds", 10)
            y0 = got["/arm/ee_pose"][-1].pose.position.y
            cmd = TwistStamped()
            cmd.header.frame_id = "base_link"
            cmd.twist.linear.y = 0.1
            _publish_for(user, pub, cmd, 1.5)
            user.spin_until(lambda: False, 0.3)
            assert got["/arm/ee_pose"][-1].pose.position.y - y0 > 0.05
            assert change(user, "deactivate") and state(user) == "inactive"
            assert change(user, "cleanup") and state(user) == "unconfigured"
            events = [(e.start_state.id, e.goal_state.id) for e in got["/arm/transition_event"]]
            for pair in [(State.PRIMARY_STATE_UNCONFIGURED, State.TRANSITION_STATE_CONFIGURING),
                         (State.TRANSITION_STATE_CONFIGURING, State.PRIMARY_STATE_INACTIVE),
                         (State.TRANSITION_STATE_ACTIVATING, State.PRIMARY_STATE_ACTIVE),
                         (State.TRANSITION_STATE_DEACTIVATING, State.PRIMARY_STATE_INACTIVE),
                         (State.TRANSITION_STATE_CLEANINGUP, State.PRIMARY_STATE_UNCONFIGURED)]:
                assert user.spin_until(lambda pair=pair: pair in [(e.start_state.id, e.goal_state.id)
                                                                  for e in got["/arm/transition_event"]], 5.0), events
            assert proc.poll() is None
    finally:
        code = stop_node(proc) if proc is not None else 0
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert "transition 'activate' is not allowed from state 'unconfigured'" in text
    assert "transition 'configure' is not allowed from state 'active'" in text
