"""The sim node: a MuJoCo or PyBullet scene behind exactly the real camera and arm nodes' topics.

One process owns the physics and publishes, every control tick and with one stamp, what the real
nodes publish (:mod:`robot_rl.ros.convert` lists the topics):

* ``/joint_states``, ``/arm/ee_pose``, ``/arm/ee_twist``, ``/arm/wrench`` (arm node topics);
  ``/arm/wrench`` (``geometry_msgs/WrenchStamped``) carries the external force (N) and torque
  (N·m about the TCP) from the simulated wrist force/torque sensor in the TCP frame
  (``frame_id`` :data:`robot_rl.ros.convert.TOOL_FRAME`), as a real wrist sensor reports it;
  :func:`robot_rl.ros.convert.arm_state_from_msgs` rotates it back into the base frame;
* ``/camera/<cam>/color/image_raw`` and ``.../camera_info`` per simulated camera (camera node
  topics, ``<cam>_color_optical_frame``);
* ``/task/state``: the privileged task state (object poses, success, reward terms) that only a
  simulator has; a real setup has no such topic.

It takes the arm node's commands (``/arm/equilibrium_pose``, ``/arm/delta_twist_cmds``,
``/arm/gripper_cmd``) through the same :class:`~robot_rl.ros.safety.ArmCommandGate` (workspace
box, maximum EE speed, command timeout) and resets on ``/sim/reset`` (``std_msgs/Int64MultiArray``:
``[request_id, seed]``), answering ``/sim/reset_done`` with the same pair once the new episode's
state is out.

Each tick advances the physics by one control period, so the node runs in real time when a tick
takes less than the period (``robot-rl``'s sim ticks in a few ms from state, ~20 ms with two
128x128 cameras on a laptop CPU); a slower tick stretches time rather than skipping physics.

The node is an ``rclpy.lifecycle`` node (``/sim/change_state`` ...; autostart by default) with ROS 2
parameters; ``max_ee_speed_m_s``, ``command_timeout_s`` and ``publish_task_state`` can be set at
runtime (``ros2 param set /sim max_ee_speed_m_s 0.5``), the others are read-only.

Run: ``python -m robot_rl.sim.node --ros-args -p env:=robot_rl/PandaPickLiftPixels-v0 -p backend:=pybullet``
(``ros2 run robot_rl robot_rl_sim_node`` in a ROS 2 install).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError, WireError
from robot_rl.ros import convert
from robot_rl.ros.node import LifecycleNode, QoSProfile, run_node
from robot_rl.ros.safety import ArmCommandGate

#: Panda joint names as franka_description names them.
PANDA_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]


class SimNode(LifecycleNode):
    """Sim node (see the module docstring). Parameters are declared in ``__init__`` with units.

    Raises (at configure, reported by the lifecycle):
        ConfigError: unknown env ID or backend, or cameras the scene does not have.
    """

    def __init__(self, argv: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__("sim", argv=argv, **kwargs)
        d = self.declare_parameter
        self.env_id = d("env", "robot_rl/PandaPickLift-v0", "gymnasium ID of the simulated RobotEnv (robot-rl envs lists them)")
        self.sim_backend = d("backend", "mujoco", "physics engine", choices=("mujoco", "pybullet"))
        self.camera_names = d("cameras", [], "simulated cameras to publish (front, wrist); empty: the env's own", array_type=str)
        self.image_size = d("image_size", 0, "camera image height and width, pixels; 0: the env's default", units="px")
        self.hand_eye_files = d("hand_eye_files", [], "place simulated cameras at hand-eye calibrations: entries "
                                "'<camera>:<easy_handeye2 YAML from robot-rl calibrate hand-eye>', e.g. 'front:front_handeye.yaml'")
        self.control_rate_hz = d("control_rate_hz", 10.0, "physics advances one control period per tick at this rate", units="Hz")
        self.seed = d("seed", 0, "seed of the first episode")
        self.max_ee_speed_m_s = d("max_ee_speed_m_s", 1.0, "largest commanded TCP speed; changeable at runtime", units="m/s",
                                  min_value=0.001, max_value=10.0, on_change=self._set_gate("max_ee_speed_m_s"))
        self.command_timeout_s = d("command_timeout_s", 0.1, "hold position when no motion command arrived for this long; "
                                   "changeable at runtime", units="s", min_value=0.001, max_value=60.0,
                                   on_change=self._set_gate("command_timeout_s"))
        self.workspace_low = d("workspace_low", [], "workspace box lower corner, base frame; empty: the task's box", units="m",
                               array_type=float)
        self.workspace_high = d("workspace_high", [], "workspace box upper corner, base frame; empty: the task's box", units="m",
                                array_type=float)
        self.base_frame = d("base_frame", convert.BASE_FRAME, "frame of poses, twists and wrenches (REP 105)")
        self.publish_task_state = d("publish_task_state", True, "publish the privileged /task/state (sim only); changeable at runtime",
                                    on_change=lambda v: setattr(self, "publish_task_state", v))
        self.camera_qos = d("camera_qos", "reliable", "QoS of image topics: reliable (default; depth 10) or sensor (best effort, "
                            "depth 5: Fast DDS loses large best-effort images)", choices=("sensor", "reliable"))
        self.env = None
        self._last_reset_request: int | None = None
        #: monotonic start times of the ticks (for the jitter benchmark), bounded.
        self.tick_starts: list[float] = []

    def _set_gate(self, name: str) -> Any:
        """An ``on_change`` hook: store the new value and apply it to the command gate if configured."""

        def apply(value: float) -> None:
            setattr(self, name, value)
            if getattr(self, "gate", None) is not None:
                setattr(self.gate, name, float(value))

        return apply

    # -- lifecycle ------------------------------------------------------------------------------

    def on_configure(self) -> None:
        from robot_rl.envs import make_env
        from robot_rl.interfaces import WorkspaceBox

        kwargs: dict[str, Any] = {"backend": self.sim_backend, "control_hz": self.control_rate_hz}
        if self.camera_names:
            kwargs["cameras"] = tuple(self.camera_names)
        if self.image_size:
            kwargs["image_size"] = self.image_size
        if self.hand_eye_files:
            entries = [str(e).split(":", 1) for e in self.hand_eye_files]
            if any(len(e) != 2 or not e[0] or not e[1] for e in entries):
                raise ConfigError(f"hand_eye_files entries must be '<camera>:<yaml path>', got {list(self.hand_eye_files)}")
            kwargs["hand_eye"] = dict(entries)
        self.env = make_env(self.env_id, **kwargs)
        for camera, path in kwargs.get("hand_eye", {}).items():
            self.get_logger().info(f"camera {camera!r} placed at the hand-eye calibration {path}")
        u = self.env.unwrapped
        self.arm, self.task, self.cameras = u.arm, u.task, dict(u.cameras)
        box = u.arm.workspace
        if self.workspace_low or self.workspace_high:
            if len(self.workspace_low) != 3 or len(self.workspace_high) != 3:
                raise ConfigError("workspace_low and workspace_high need 3 values each (metres, base frame).")
            box = WorkspaceBox(tuple(map(float, self.workspace_low)), tuple(map(float, self.workspace_high)))
        self.gate = ArmCommandGate(box, self.max_ee_speed_m_s, self.command_timeout_s)
        self.period_s = 1.0 / self.control_rate_hz
        cam_qos = "sensor" if self.camera_qos == "sensor" else QoSProfile(10, True)
        self.pubs = {
            "joint_states": self.create_publisher("sensor_msgs/msg/JointState", convert.JOINT_STATES),
            "ee_pose": self.create_publisher("geometry_msgs/msg/PoseStamped", convert.EE_POSE),
            "ee_twist": self.create_publisher("geometry_msgs/msg/TwistStamped", convert.EE_TWIST),
            "wrench": self.create_publisher("geometry_msgs/msg/WrenchStamped", convert.WRENCH),
            "task": self.create_publisher("std_msgs/msg/Float64MultiArray", convert.TASK_STATE),
            "reset_done": self.create_publisher(convert.RESET_TYPE, convert.RESET_DONE),
        }
        self.camera_pubs = {}
        for name in self.cameras:
            topics = convert.camera_topics(name)
            self.camera_pubs[name] = (self.create_publisher("sensor_msgs/msg/Image", topics["image"], cam_qos),
                                      self.create_publisher("sensor_msgs/msg/CameraInfo", topics["info"], cam_qos))
        self.create_subscription("geometry_msgs/msg/PoseStamped", convert.POSE_CMD, self._on_pose)
        self.create_subscription("geometry_msgs/msg/TwistStamped", convert.TWIST_CMD, self._on_twist)
        self.create_subscription("std_msgs/msg/Float64", convert.GRIPPER_CMD, self._on_gripper)
        self.create_subscription(convert.RESET_TYPE, convert.RESET_REQUEST, self._on_reset)
        self._reset(self.seed)
        self.get_logger().info(
            f"{self.env_id} on {self.sim_backend}, {self.control_rate_hz:g} Hz, cameras {list(self.cameras) or 'none'}, "
            f"workspace {box.low}..{box.high} m")

    def on_activate(self) -> None:
        self.start_work_timer(self.period_s, self._tick)

    def on_deactivate(self) -> None:
        self.stop_work_timer()

    def on_cleanup(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    def on_shutdown(self) -> None:
        self.on_deactivate()
        self.on_cleanup()

    # -- commands ---------------------------------------------------------------------------------

    def _on_pose(self, msg: Any) -> None:
        position, quaternion = convert.pose_to_arrays(msg.pose)  # the full orientation, as the arm node; the gate limits it
        self.gate.on_pose(position, quaternion, time.monotonic())

    def _on_twist(self, msg: Any) -> None:
        self.gate.on_twist(convert.twist_to_array(msg.twist), time.monotonic())

    def _on_gripper(self, msg: Any) -> None:
        self.gate.on_gripper(msg.data)

    def _on_reset(self, msg: Any) -> None:
        # a client repeats its request until answered: reset once per request id, answer every time
        try:
            request_id, seed = convert.reset_from_msg(msg)
        except WireError as exc:
            self.get_logger().error(f"ignoring a reset request: {exc}")
            return
        if request_id != self._last_reset_request:
            self._reset(seed)
            self._last_reset_request = request_id
        self.pubs["reset_done"].publish(convert.reset_msg(request_id, seed))

    # -- simulation -------------------------------------------------------------------------------

    def _reset(self, seed: int) -> None:
        self.arm.home()
        self.task.initialize_episode(np.random.default_rng(seed))
        self.gate.reset()
        self._publish(self.now())

    def _tick(self) -> None:
        start = time.monotonic()
        self.tick_starts.append(start)
        if len(self.tick_starts) > 100_000:
            del self.tick_starts[:50_000]
        stamp = self.now()
        cmd = self.gate.next_command(self.arm.state(), self.period_s, start)
        self.arm.command(cmd)
        self._publish(stamp)

    def _publish(self, stamp: float) -> None:
        """Publish task state, camera frames and arm state, all with ``stamp`` (arm state last)."""
        if self.publish_task_state:
            self.pubs["task"].publish(convert.task_state_msg(
                stamp, bool(self.task.is_success()), self.task.get_observation(), self.task.get_reward_terms()))
        for name, cam in self.cameras.items():
            frame = cam.read()
            image_pub, info_pub = self.camera_pubs[name]
            frame_id = convert.optical_frame(name)
            image_pub.publish(convert.image_msg(frame.rgb, stamp, frame_id))
            info_pub.publish(convert.camera_info_msg(cam.intrinsics, stamp, frame_id))
        state = self.arm.state()
        joint_names = PANDA_JOINTS if len(state.q) == 7 else [f"joint{i + 1}" for i in range(len(state.q))]
        for key, msg in convert.arm_state_msgs(state, joint_names, stamp, self.base_frame).items():
            self.pubs[key].publish(msg)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``robot_rl_sim_node``: run the sim node until SIGINT/SIGTERM."""
    return run_node(lambda args: SimNode(args), argv)


if __name__ == "__main__":
    sys.exit(main())
