"""The ROS 2 arm node (drivers/arm_node.py) and its backends, over real ROS 2 (rclpy) between processes.

The arm node runs as a subprocess (``python -m robot_rl.drivers.arm_node``) in an isolated DDS
domain (the ``ros_domain`` fixture); the test process is the client: it subscribes the state
topics and publishes commands with our own :class:`~robot_rl.ros.node.Node`. The ros2_control
bridge is tested against a fake "ROS arm" made of our own Node (publishes ``/joint_states``,
records the TwistStamped / JointTrajectory commands it receives). No DDS mocks.

Backends: ``sim`` (MuJoCo Panda) for the gate's guarantees; ``franka`` against franky-sim inside
``unshare -n`` (like tests/test_franka.py); ``ur`` only for its connection errors (no RTDE
simulator here: the control path needs URSim).
"""

from __future__ import annotations

import random
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import start_node, stop_node
from robot_rl.errors import DeviceUnavailableError
from robot_rl.interfaces import ArmCommand
from robot_rl.ros import convert
from robot_rl.ros.node import Node

ARM_NODE = "robot_rl.drivers.arm_node"
RATE_HZ = 20.0
MAX_SPEED = 0.2
BOX_LOW, BOX_HIGH = np.array([0.40, -0.10, 0.05]), np.array([0.60, 0.10, 0.25])


class Client:
    """The test's side of the arm topics: records ee_pose / joint_states, publishes commands."""

    def __init__(self) -> None:
        self.node = Node("arm_test_client")
        self.lock = threading.Lock()
        self.poses: list[tuple[float, np.ndarray]] = []  # (stamp s, position (3,) m)
        self.quats: list[np.ndarray] = []  # orientation (4,) xyzw of each entry of poses
        self.joints: list[Any] = []
        self.node.create_subscription("geometry_msgs/msg/PoseStamped", convert.EE_POSE, self._on_pose)
        self.node.create_subscription("sensor_msgs/msg/JointState", convert.JOINT_STATES, self._on_joints)
        self.pose_pub = self.node.create_publisher("geometry_msgs/msg/PoseStamped", convert.POSE_CMD)
        self.twist_pub = self.node.create_publisher("geometry_msgs/msg/TwistStamped", convert.TWIST_CMD)
        self.node.spin_in_thread()

    def _on_pose(self, msg) -> None:
        with self.lock:
            position, quat = convert.pose_to_arrays(msg.pose)
            self.poses.append((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, position))
            self.quats.append(quat)

    def _on_joints(self, msg) -> None:
        with self.lock:
            self.joints.append(msg)

    def wait_for_state(self, proc: subprocess.Popen, log: Path, timeout_s: float = 25.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.poses:
            assert proc.poll() is None, f"arm node exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no /arm/ee_pose within {timeout_s} s:\n{log.read_text()}"
            time.sleep(0.05)
        assert self.pose_pub.wait_for_subscribers(1, 10.0) and self.twist_pub.wait_for_subscribers(1, 10.0)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(N,) stamps in seconds and (N, 3) positions in metres received so far."""
        with self.lock:
            return np.array([t for t, _ in self.poses]), np.array([p for _, p in self.poses])

    def close(self) -> None:
        self.node.shutdown()


def _sim_node(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "arm_node.log"
    proc = start_node(ARM_NODE, "-p", "backend:=sim", "-p", f"control_rate_hz:={RATE_HZ}",
                      "-p", f"max_ee_speed_m_s:={MAX_SPEED}", "-p", f"workspace_low:={BOX_LOW.tolist()}",
                      "-p", f"workspace_high:={BOX_HIGH.tolist()}", "-p", "stats_period_s:=1.0", *extra, log_path=str(log))
    return proc, log


def test_sim_node_keeps_the_ee_in_the_box_and_under_the_speed_limit(ros_domain, tmp_path):
    proc, log = _sim_node(tmp_path)
    client = Client()
    try:
        client.wait_for_state(proc, log)
        far = np.array([1.5, 0.8, 0.15])  # far outside the box in x and y
        t_end = time.monotonic() + 2.5
        while time.monotonic() < t_end:
            client.pose_pub.publish(convert.pose_command_msg(ArmCommand.tool_down(far, 0.0, 1.0), time.time()))
            time.sleep(0.02)
        stamps, pos = client.snapshot()
    finally:
        client.close()
        assert stop_node(proc) == 0, log.read_text()
    assert len(pos) > 40, log.read_text()
    assert np.all(pos >= BOX_LOW - 0.003) and np.all(pos <= BOX_HIGH + 0.003), f"left the box: {pos.min(0)} {pos.max(0)}"
    clipped = np.clip(far, BOX_LOW, BOX_HIGH)
    assert np.linalg.norm(pos[-1, :2] - clipped[:2]) < 0.01, f"did not reach the clipped target {clipped}: {pos[-1]}"
    step = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    assert step.max() <= MAX_SPEED / RATE_HZ * 1.2 + 0.001, f"per-tick step {step.max():.4f} m > {MAX_SPEED / RATE_HZ} m"
    assert step.max() > 0.5 * MAX_SPEED / RATE_HZ, "the arm never moved at its speed limit"
    assert re.search(r"gate: \d+ ticks, [1-9]\d* box clips, [1-9]\d* speed limits", log.read_text()), log.read_text()


def test_sim_node_stops_within_the_command_timeout(ros_domain, tmp_path):
    proc, log = _sim_node(tmp_path, "-p", "command_timeout_s:=0.1")
    client = Client()
    speed = 0.1  # m/s in -y: 5 mm per tick
    try:
        client.wait_for_state(proc, log)
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            client.twist_pub.publish(convert.twist_command_msg(np.array([0.0, -speed, 0, 0, 0, 0]), time.time()))
            time.sleep(0.02)
        t_last = time.time()
        time.sleep(1.5)
        stamps, pos = client.snapshot()
    finally:
        client.close()
        assert stop_node(proc) == 0, log.read_text()
    moving = (stamps > t_last - 0.6) & (stamps < t_last)
    v = -np.diff(pos[moving, 1]) * RATE_HZ
    assert np.median(v) > 0.7 * speed, f"the EE did not follow the twist: {v}"
    tick = 1.0 / RATE_HZ
    after = stamps > t_last + 0.1 + tick + 0.03  # timeout + one tick (+ 30 ms of publish/deliver latency)
    held = pos[after]
    assert len(held) > 15
    steps = np.linalg.norm(np.diff(held, axis=0), axis=1)
    assert steps.max() < 0.001, f"still moving after the timeout: {steps}"
    assert np.linalg.norm(held[-1] - held[0]) < 0.002
    assert "timeouts" in log.read_text()


def test_sim_node_rotates_the_tool_with_a_twists_angular_velocity(ros_domain, tmp_path):
    """MoveIt Servo's TwistStamped angular velocity turns the simulated tool about that axis; an
    adversarial spin is held to the tilt limit and the angular speed limit, and counted."""
    from scipy.spatial.transform import Rotation

    from robot_rl.interfaces import tool_tilt_yaw

    max_tilt, max_ang = 0.35, 0.6  # rad, rad/s
    proc, log = _sim_node(tmp_path, "-p", f"max_tilt_rad:={max_tilt}", "-p", f"max_angular_speed_rad_s:={max_ang}",
                          "-p", f"max_yaw_rate_rad_s:={max_ang}")
    client = Client()

    def stream(twist: np.ndarray, seconds: float) -> tuple[float, float]:
        t0 = time.time()
        while time.time() < t0 + seconds:
            client.twist_pub.publish(convert.twist_command_msg(twist, time.time()))
            time.sleep(0.02)
        return t0, time.time()

    def quat_at(t: float) -> np.ndarray:
        with client.lock:
            stamps = np.array([s for s, _ in client.poses])
            return client.quats[int(np.searchsorted(stamps, t))].copy()

    try:
        client.wait_for_state(proc, log)
        phases = [stream(np.array([0, 0, 0, 0, 0, 0.4]), 1.0),  # yaw about base z
                  stream(np.zeros(6), 0.5),
                  stream(np.array([0, 0, 0, 0.25, 0, 0]), 1.0),  # tilt about base x
                  stream(np.zeros(6), 0.5),
                  stream(np.array([0, 0, 0, -6.0, 4.0, 8.0]), 1.5)]  # adversarial: far past every limit
        time.sleep(0.5)
        with client.lock:
            stamps, quats = np.array([s for s, _ in client.poses]), np.array(client.quats)
    finally:
        client.close()
        assert stop_node(proc) == 0, log.read_text()
    for (t0, t1), w in ((phases[0], [0, 0, 0.4]), (phases[2], [0.25, 0, 0])):
        # the settled orientation after the phase against the one before it (0.3 s of tracking lag allowed)
        turned = (Rotation.from_quat(quat_at(t1 + 0.3)) * Rotation.from_quat(quat_at(t0)).inv()).as_rotvec()
        expected = np.asarray(w, float) * (t1 - t0)
        axis_err = np.degrees(np.arccos(np.clip(turned @ expected / np.linalg.norm(turned) / np.linalg.norm(expected), -1, 1)))
        print(f"twist w={w} rad/s for {t1 - t0:.2f} s: turned {np.round(turned, 3)} rad (expected {np.round(expected, 3)}), "
              f"axis off by {axis_err:.1f} deg")
        assert axis_err < 10.0 and 0.6 < np.linalg.norm(turned) / np.linalg.norm(expected) < 1.3, (turned, expected)
    adversarial = stamps > phases[4][0]
    tilts = np.array([np.linalg.norm(tool_tilt_yaw(q)[0]) for q in quats[adversarial]])
    steps = (Rotation.from_quat(quats[adversarial][1:]) * Rotation.from_quat(quats[adversarial][:-1]).inv()).magnitude()
    print(f"adversarial spin: max tilt {np.degrees(tilts.max()):.1f} deg (limit {np.degrees(max_tilt):.1f}), "
          f"max rotation per tick {steps.max():.3f} rad (limit {max_ang / RATE_HZ:.3f})")
    assert tilts.max() <= max_tilt + 0.03, "the tool tilted past the limit"
    assert steps.max() <= max_ang / RATE_HZ * 1.3 + 0.005, "the tool turned faster than the angular speed limit"
    assert re.search(r"[1-9]\d* orientation clips, [1-9]\d* angular speed limits", log.read_text()), log.read_text()


# --------------------------------------------------------------------------- UR: connection errors

def _silent_host() -> tuple[str, socket.socket, list]:
    """A socket on a random 127.x.y.z address, port 30004, that accepts and never answers."""
    from robot_rl.drivers.ur import RTDE_PORT

    for _ in range(20):
        host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        s = socket.socket()
        try:
            s.bind((host, RTDE_PORT))
            break
        except OSError:
            s.close()
    s.listen()
    accepted: list = []
    threading.Thread(target=lambda: accepted.append(s.accept()), daemon=True).start()
    return host, s, accepted


def test_missing_ur_is_a_clear_error_within_seconds():
    from robot_rl.drivers.ur import URArm, URConfig

    t0 = time.monotonic()
    with pytest.raises(DeviceUnavailableError, match="no UR RTDE interface at 127.0.0.1:30004"):
        URArm(URConfig(host="127.0.0.1", connect_timeout_s=2.0))
    assert time.monotonic() - t0 < 5


def test_silent_ur_host_times_out_within_seconds():
    from robot_rl.drivers.ur import URArm, URConfig

    host, server, accepted = _silent_host()
    t0 = time.monotonic()
    try:
        with pytest.raises(DeviceUnavailableError, match="did not answer in time"):
            URArm(URConfig(host=host, connect_timeout_s=2.0))
        assert accepted, "the test server never saw the connection"
    finally:
        server.close()
    assert time.monotonic() - t0 < 5


def _configure_seconds(log: str) -> float:
    """Seconds between the node's 'connecting' and 'configure failed' log lines."""
    t = {k: float(re.search(rf"\[(\d+\.\d+)\] \[arm\]: {k}", log).group(1)) for k in ("connecting", "configure failed")}
    return t["configure failed"] - t["connecting"]


@pytest.mark.parametrize("silent", [False, True], ids=["nothing_listening", "silent_host"])
def test_arm_node_with_missing_ur_exits_1_with_the_message(ros_domain, tmp_path, silent):
    host, server = "127.0.0.1", None
    if silent:
        host, server, _ = _silent_host()
    logf = tmp_path / "arm_node.log"
    try:
        proc = start_node(ARM_NODE, "-p", "backend:=ur", "-p", f"host:={host}", "-p", "connect_timeout_s:=2.0",
                          log_path=str(logf))
        rc = proc.wait(timeout=30)
    finally:
        if server is not None:
            server.close()
    log = logf.read_text()
    assert rc == 1, log
    assert ("did not answer in time" if silent else "no UR RTDE interface") in log, log
    assert _configure_seconds(log) < 5, log


@pytest.mark.parametrize("args, message", [
    (("franka.max_force_n:=50.0",), "max_force_n=50.0 N exceeds 29.4 N"),
    (("franka.rotational_stiffness:=[150.0, 150.0, 900.0]",), "exceeds the Franka's limit of 300 N·m/rad"),
    (("max_tilt_rad:=2.5",), "max_tilt_rad must lie in [0, pi/2]"),
])
def test_arm_node_with_unsafe_compliance_or_orientation_limits_exits_1_before_connecting(ros_domain, tmp_path, args, message):
    # 192.0.2.1 (TEST-NET) never answers: the error must come from the settings, before any connection
    logf = tmp_path / "arm_node.log"
    extra = [a for arg in args for a in ("-p", arg)]
    proc = start_node(ARM_NODE, "-p", "backend:=franka", "-p", "host:=192.0.2.1", "-p", "franka.control_mode:=impedance",
                      "-p", "connect_timeout_s:=20.0", *extra, log_path=str(logf))
    rc = proc.wait(timeout=30)
    log = logf.read_text()
    assert rc == 1, log
    assert message in log and "no Franka control interface" not in log, log


# --------------------------------------------------------------------------- ros2_control bridge

PANDA_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
SERVO_TOPIC, TRAJ_TOPIC, FAKE_POSE = "/servo_node/delta_twist_cmds", "/joint_trajectory_controller/joint_trajectory", "/fake/ee_pose"


class FakeRosArm:
    """A stand-in for a ROS 2 arm (ros2_control + MoveIt Servo), made of our own Node over real DDS.

    Publishes ``/joint_states`` and a TCP PoseStamped at 100 Hz. Twists on MoveIt Servo's topic
    move the TCP (for 0.1 s after each, Servo's command timeout); a JointTrajectory sets the
    joints to its last point. Records every command received.
    """

    def __init__(self, q0: np.ndarray, position: np.ndarray) -> None:
        self.node = Node("fake_ros_arm")
        self.lock = threading.Lock()
        self.q, self.position, self.paused = np.asarray(q0, float).copy(), np.asarray(position, float).copy(), False
        self.twists: list[Any] = []
        self.trajectories: list[Any] = []
        self._twist, self._twist_s = np.zeros(6), -1.0
        self.joint_pub = self.node.create_publisher("sensor_msgs/msg/JointState", "/joint_states")
        self.pose_pub = self.node.create_publisher("geometry_msgs/msg/PoseStamped", FAKE_POSE)
        self.node.create_subscription("geometry_msgs/msg/TwistStamped", SERVO_TOPIC, self._on_twist)
        self.node.create_subscription("trajectory_msgs/msg/JointTrajectory", TRAJ_TOPIC, self._on_trajectory)
        self.node.create_timer(0.01, self._tick)
        self.node.spin_in_thread()

    def _on_twist(self, msg) -> None:
        with self.lock:
            self.twists.append(msg)
            self._twist, self._twist_s = convert.twist_to_array(msg.twist), time.monotonic()

    def _on_trajectory(self, msg) -> None:
        with self.lock:
            self.trajectories.append(msg)
            self.q = np.asarray(msg.points[-1].positions, float).copy()

    def _tick(self) -> None:
        with self.lock:
            if time.monotonic() - self._twist_s < 0.1:
                self.position = self.position + self._twist[:3] * 0.01
            if self.paused:
                return
            now = time.time()
            self.joint_pub.publish(self.node.msg("sensor_msgs/msg/JointState", header=convert.header(now, "base_link"),
                                                 name=PANDA_JOINTS, position=self.q.copy(), velocity=np.zeros(7)))
            self.pose_pub.publish(convert.pose_command_msg(ArmCommand.tool_down(self.position.copy(), 0.0, 1.0), now))

    def close(self) -> None:
        self.node.shutdown()


def _panda_mjcf(tmp_path: Path) -> Path:
    from robot_rl.sim.mujoco.scene import SceneConfig, _build_panda_spec

    import warnings

    path = tmp_path / "panda.xml"
    with warnings.catch_warnings():  # pybullet's Panda meshes lack texture coordinates; irrelevant for FK/IK
        warnings.simplefilter("ignore")
        path.write_text(_build_panda_spec(SceneConfig()).to_xml())
    return path


BRIDGE_BOX = dict(workspace_low=(0.2, -0.3, 0.1), workspace_high=(0.7, 0.3, 0.6))


def test_ros2_control_bridge_servo_mode_against_a_fake_ros_arm(ros_domain):
    from robot_rl.drivers.ros2_control import Ros2ControlArm, Ros2ControlConfig
    from robot_rl.sim.kinematics import READY_Q_RAD

    fake = FakeRosArm(READY_Q_RAD, np.array([0.5, 0.0, 0.3]))
    arm = None
    try:
        arm = Ros2ControlArm(Ros2ControlConfig(mode="servo", ee_pose_topic=FAKE_POSE, control_hz=10.0, max_ee_speed_m_s=0.1,
                                               state_timeout_s=0.3, connect_timeout_s=10.0, **BRIDGE_BOX))
        assert arm.joint_names == PANDA_JOINTS
        s0 = arm.state()
        assert np.allclose(s0.ee_position, [0.5, 0.0, 0.3], atol=1e-6) and np.allclose(s0.q, READY_Q_RAD)
        goal = s0.ee_position + [0.03, 0.0, 0.0]
        for _ in range(10):
            sent = arm.command(ArmCommand.tool_down(goal, 0.0, 1.0))
        time.sleep(0.15)
        s1 = arm.state()
        assert np.linalg.norm(s1.ee_position - goal) < 0.003, s1.ee_position
        assert np.allclose(sent.ee_target_position, goal)
        with fake.lock:
            twists = list(fake.twists)
        assert twists and all(t.header.frame_id == "base_link" for t in twists)
        v = np.array([convert.twist_to_array(t.twist) for t in twists])
        assert np.linalg.norm(v[:, :3], axis=1).max() <= 0.1 + 1e-9
        assert v[0, 0] > 0.09 and abs(v[0, 1]) < 1e-6, "the first twists point at the target at the speed limit"
        # a target outside the box is clipped before it becomes a twist
        sent = arm.command(ArmCommand.tool_down(np.array([0.5, 0.0, 2.0]), 0.0, 1.0))
        assert sent.ee_target_position[2] <= 0.6
        # the robot driver stops: state and command are errors after state_timeout_s
        fake.paused = True
        time.sleep(0.5)
        with pytest.raises(DeviceUnavailableError, match="stale"):
            arm.state()
        with pytest.raises(DeviceUnavailableError, match="stale"):
            arm.command(ArmCommand.tool_down(goal, 0.0, 1.0))
    finally:
        if arm is not None:
            arm.close()
        fake.close()


def test_ros2_control_bridge_joint_trajectory_mode_with_ik(ros_domain, tmp_path):
    from robot_rl.drivers.ros2_control import Ros2ControlArm, Ros2ControlConfig
    from robot_rl.interfaces import tool_yaw_rad
    from robot_rl.sim.kinematics import READY_Q_RAD

    fake = FakeRosArm(READY_Q_RAD, np.zeros(3))
    arm = None
    try:
        arm = Ros2ControlArm(Ros2ControlConfig(mode="joint_trajectory", model_path=str(_panda_mjcf(tmp_path)), ee_frame="tcp",
                                               control_hz=10.0, max_ee_speed_m_s=0.1, connect_timeout_s=10.0, **BRIDGE_BOX))
        s0 = arm.state()  # TCP by forward kinematics of the model at the published joints
        assert np.allclose(s0.ee_position, [0.307, 0.0, 0.485], atol=0.002)
        goal = s0.ee_position + [0.03, 0.0, 0.0]
        for _ in range(6):
            arm.command(ArmCommand.tool_down(goal, tool_yaw_rad(s0.ee_quaternion), 1.0))
        time.sleep(0.1)
        s1 = arm.state()
        assert np.linalg.norm(s1.ee_position - goal) < 0.002, s1.ee_position - goal
        assert abs(tool_yaw_rad(s1.ee_quaternion) - tool_yaw_rad(s0.ee_quaternion)) < 0.01
        assert np.abs(s1.q - s0.q).max() > 0.01, "the joints did not change"
        with fake.lock:
            trajs = list(fake.trajectories)
        assert trajs and all(list(t.joint_names) == PANDA_JOINTS and len(t.points) == 1 for t in trajs)
        tfs = trajs[0].points[0].time_from_start
        assert tfs.sec == 0 and tfs.nanosec == 100_000_000, "one point reached after one control period"
    finally:
        if arm is not None:
            arm.close()
        fake.close()


def test_ros2_control_bridge_without_a_robot_is_a_clear_error(ros_domain):
    from robot_rl.drivers.ros2_control import Ros2ControlArm, Ros2ControlConfig

    t0 = time.monotonic()
    with pytest.raises(DeviceUnavailableError, match="no JointState .* on /joint_states within 1.0 s"):
        Ros2ControlArm(Ros2ControlConfig(ee_pose_topic=FAKE_POSE, connect_timeout_s=1.0))
    assert time.monotonic() - t0 < 5


def test_arm_node_drives_a_fake_ros_arm_through_the_bridge(ros_domain, tmp_path):
    from robot_rl.sim.kinematics import READY_Q_RAD

    fake = FakeRosArm(READY_Q_RAD, np.array([0.5, 0.0, 0.3]))
    log = tmp_path / "arm_node.log"
    # the node republishes /joint_states (with its trailing 'gripper' entry); the bridge ignores those
    proc = start_node(ARM_NODE, "-p", "backend:=ros2_control", "-p", f"ros2_control.ee_pose_topic:={FAKE_POSE}",
                      "-p", "control_rate_hz:=10.0", "-p", "max_ee_speed_m_s:=0.1", "-p", "connect_timeout_s:=10.0",
                      log_path=str(log))
    client = Client()
    try:
        client.wait_for_state(proc, log)
        goal = np.array([0.53, 0.0, 0.3])
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            client.pose_pub.publish(convert.pose_command_msg(ArmCommand.tool_down(goal, 0.0, 1.0), time.time()))
            time.sleep(0.03)
        _, pos = client.snapshot()
        with client.lock:
            names = [list(m.name) for m in client.joints]
    finally:
        client.close()
        code = stop_node(proc)
        fake.close()
    assert code == 0, log.read_text()
    assert np.linalg.norm(pos[-1] - goal) < 0.004, (pos[-1], log.read_text())
    assert [*PANDA_JOINTS, "gripper"] in names, "the node did not publish the robot's joints"


# --------------------------------------------------------------------------- Franka via the node, franky-sim

def _can_unshare() -> bool:
    import shutil

    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


FRANKY_SIM = Path(__file__).resolve().parents[1] / ".venv-franky-sim" / "bin" / "franky-sim"


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -n` (root or user namespaces)")
@pytest.mark.skipif(not FRANKY_SIM.exists(), reason=f"franky-sim not found at {FRANKY_SIM}: bash scripts/setup_franky_sim.sh")
def test_franka_through_the_arm_node_with_franky_sim(ros_domain, tmp_path):
    """franky-sim, the arm node (backend franka) and a DDS client, all in one private network
    namespace with loopback only (franky-sim's ports are fixed; the DDS config is localhost-only)."""
    pytest.importorskip("franky", reason="franky-control is not installed")
    import textwrap

    (tmp_path / "client.py").write_text(textwrap.dedent("""
        import threading, time
        import numpy as np
        from robot_rl.interfaces import ArmCommand
        from robot_rl.ros import convert
        from robot_rl.ros.node import Node
        node = Node("franka_test_client")
        lock, poses, joints = threading.Lock(), [], []
        def on_pose(m):
            with lock: poses.append(convert.pose_to_arrays(m.pose)[0])
        def on_joints(m):
            with lock: joints.append(np.asarray(m.position, float))
        node.create_subscription("geometry_msgs/msg/PoseStamped", convert.EE_POSE, on_pose)
        node.create_subscription("sensor_msgs/msg/JointState", convert.JOINT_STATES, on_joints)
        pub = node.create_publisher("geometry_msgs/msg/PoseStamped", convert.POSE_CMD)
        node.spin_in_thread()
        deadline = time.monotonic() + 40
        while not (poses and joints) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert poses, "no /arm/ee_pose from the arm node"
        pub.wait_for_subscribers(1, 10.0)
        time.sleep(0.5)
        with lock: p0, q0 = poses[-1].copy(), joints[-1].copy()
        goal = p0 + [0.03, 0.0, 0.0]
        t_end = time.monotonic() + 6.0
        while time.monotonic() < t_end:
            pub.publish(convert.pose_command_msg(ArmCommand.tool_down(goal, 0.0, 1.0), time.time()))
            time.sleep(0.03)
            with lock:
                if np.linalg.norm(poses[-1] - goal) < 0.002:
                    break
        time.sleep(0.5)
        with lock: p1, q1 = poses[-1].copy(), joints[-1].copy()
        print("RESULT", *p0, *p1, np.abs(q1[:7] - q0[:7]).max())
        node.shutdown()
    """))
    out, node_log = _run_with_franky_sim(tmp_path)
    v = [float(x) for x in out.split("RESULT")[1].split()]
    p0, p1, dq = np.array(v[0:3]), np.array(v[3:6]), v[6]
    assert abs((p1[0] - p0[0]) - 0.03) < 0.004 and np.linalg.norm(p1[1:] - p0[1:]) < 0.004, (p0, p1, node_log[-2000:])
    assert dq > 0.01, "JointState did not reflect the move"


def _run_with_franky_sim(tmp_path: Path, *node_args: str) -> tuple[str, str]:
    """Run franky-sim, the arm node (backend franka, extra ``-p`` arguments) and ``tmp_path/client.py``
    in one private network namespace; returns the client's stdout (which must print RESULT) and the node log."""
    import os

    py = sys.executable
    runner = "\n".join([
        "ip link set lo up",
        f"MUJOCO_GL=egl {FRANKY_SIM} -s mujoco --hostname 127.0.0.1 > sim.log 2>&1 &",
        "for i in $(seq 1 120); do grep -q 'Connect to the server' sim.log && break; sleep 0.5; done",
        f"{py} -m {ARM_NODE} --ros-args -p backend:=franka -p host:=127.0.0.1 -p franka.realtime:=false "
        "-p control_rate_hz:=10.0 -p max_ee_speed_m_s:=0.1 -p workspace_high:=[0.7,0.25,0.6] "
        + " ".join(f"-p {a}" for a in node_args) + " > node.log 2>&1 &",
        "node=$!",
        f"{py} client.py", "rc=$?",
        "kill -INT $node; for i in $(seq 1 50); do kill -0 $node 2>/dev/null || break; sleep 0.1; done",
        "kill $(jobs -p) 2>/dev/null", "exit $rc"])
    out = subprocess.run(["unshare", "-n", "bash", "-c", runner], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env={**os.environ, "MUJOCO_GL": "egl"})
    node_log = (tmp_path / "node.log").read_text() if (tmp_path / "node.log").exists() else ""
    assert "RESULT" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:] + node_log[-3000:]
    return out.stdout, node_log


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -n` (root or user namespaces)")
@pytest.mark.skipif(not FRANKY_SIM.exists(), reason=f"franky-sim not found at {FRANKY_SIM}: bash scripts/setup_franky_sim.sh")
def test_compliant_franka_rotates_with_a_twists_angular_velocity_through_the_arm_node(ros_domain, tmp_path):
    """The compliant Franka (franky's 1 kHz Cartesian impedance, franky-sim) behind the arm node:
    a TwistStamped with angular velocity turns the tool about that axis, through the real protocol."""
    pytest.importorskip("franky", reason="franky-control is not installed")
    import textwrap

    from scipy.spatial.transform import Rotation

    (tmp_path / "client.py").write_text(textwrap.dedent("""
        import threading, time
        import numpy as np
        from robot_rl.ros import convert
        from robot_rl.ros.node import Node
        node = Node("franka_test_client")
        lock, quats = threading.Lock(), []
        def on_pose(m):
            with lock: quats.append(convert.pose_to_arrays(m.pose)[1])
        node.create_subscription("geometry_msgs/msg/PoseStamped", convert.EE_POSE, on_pose)
        pub = node.create_publisher("geometry_msgs/msg/TwistStamped", convert.TWIST_CMD)
        node.spin_in_thread()
        deadline = time.monotonic() + 40
        while not quats and time.monotonic() < deadline:
            time.sleep(0.05)
        assert quats, "no /arm/ee_pose from the arm node"
        pub.wait_for_subscribers(1, 10.0)
        out = []
        for w in ([0.0, 0.0, 0.3], [0.2, 0.0, 0.0]):  # yaw about base z, then tilt about base x
            time.sleep(1.0)
            with lock: q0 = quats[-1].copy()
            t0 = time.time()
            while time.time() < t0 + 1.5:
                pub.publish(convert.twist_command_msg(np.r_[0.0, 0.0, 0.0, w], time.time()))
                time.sleep(0.03)
            t1 = time.time()
            time.sleep(1.0)
            with lock: q1 = quats[-1].copy()
            out += [*q0, *q1, t1 - t0]
        print("RESULT", *out)
        node.shutdown()
    """))
    out, node_log = _run_with_franky_sim(tmp_path, "franka.control_mode:=impedance", "max_angular_speed_rad_s:=0.5")
    v = np.array([float(x) for x in out.split("RESULT")[1].split()])
    for w, (q0, q1, seconds) in zip(([0, 0, 0.3], [0.2, 0, 0]), ((v[0:4], v[4:8], v[8]), (v[9:13], v[13:17], v[17]))):
        turned = (Rotation.from_quat(q1) * Rotation.from_quat(q0).inv()).as_rotvec()
        expected = np.asarray(w, float) * seconds
        axis_err = np.degrees(np.arccos(np.clip(turned @ expected / np.linalg.norm(turned) / np.linalg.norm(expected), -1, 1)))
        print(f"compliant Franka, twist w={w} rad/s for {seconds:.2f} s: turned {np.round(turned, 3)} rad "
              f"(expected {np.round(expected, 3)}), axis off by {axis_err:.1f} deg")
        # the compliant arm lags its target (the reference limiting lets the rotation error reach only
        # max_torque_nm / K_r = 0.05 rad), and the gate holds the *measured* pose when the twists stop
        assert axis_err < 10.0 and 0.3 < np.linalg.norm(turned) / np.linalg.norm(expected) < 1.2, (turned, node_log[-2000:])


def test_gate_returns_an_arm_outside_the_box_at_the_speed_limit():
    """Holding (no command yet) an arm that starts outside the box moves it back at max_ee_speed, not in one jump."""
    from robot_rl.interfaces import tool_down_quaternion
    from robot_rl.interfaces import ArmState, WorkspaceBox
    from robot_rl.ros.safety import ArmCommandGate

    gate = ArmCommandGate(WorkspaceBox((0.3, -0.25, 0.02), (0.7, 0.25, 0.45)), max_ee_speed_m_s=0.1, command_timeout_s=0.1)
    state = ArmState(q=np.zeros(7), dq=np.zeros(7), ee_position=np.array([0.5, 0.0, 0.6]), ee_quaternion=tool_down_quaternion(0.0),
                     ee_velocity=np.zeros(6), wrench=np.zeros(6), gripper=1.0, stamp=0.0)
    cmd = gate.next_command(state, period_s=0.1, now_s=0.0)
    assert np.allclose(cmd.ee_target_position, [0.5, 0.0, 0.59])
