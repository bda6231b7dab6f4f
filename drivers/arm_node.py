"""The ROS 2 arm node: one :class:`~robot_rl.interfaces.Arm` backend behind the arm topics.

``ArmNode`` is a lifecycle node (``robot_rl_arm_node``, or ``python -m robot_rl.drivers.arm_node``).
At ``control_rate_hz`` it reads the arm state, asks the :class:`~robot_rl.ros.safety.ArmCommandGate`
for this tick's command (workspace box, tool tilt and yaw limits, largest EE linear and angular
speed, 0.1 s command timeout: the arm holds its pose when commands stop), executes it for one
control period and publishes the state. Commands are 6-DoF: a twist's angular velocity and a
pose's orientation are followed within the limits.

Topics (names from :mod:`robot_rl.ros.convert`):

=========================  ==============================  ======================================
``/joint_states``          sensor_msgs/JointState          out: joints (rad, rad/s) + ``gripper``
``/arm/ee_pose``           geometry_msgs/PoseStamped       out: TCP pose, ``base_frame``
``/arm/ee_twist``          geometry_msgs/TwistStamped      out: TCP twist (m/s, rad/s)
``/arm/wrench``            geometry_msgs/WrenchStamped     out: external wrench at the TCP (N, N·m), TCP frame
``/arm/delta_twist_cmds``  geometry_msgs/TwistStamped      in: EE twist command (MoveIt Servo's), m/s, rad/s
``/arm/equilibrium_pose``  geometry_msgs/PoseStamped       in: EE pose target (franka_ros2's), full orientation
``/arm/gripper_cmd``       std_msgs/Float64                in: gripper opening in [0, 1]
=========================  ==============================  ======================================

All four state messages of one tick share one stamp (wall clock, seconds).

Backends (``-p backend:=NAME``; more with :func:`register_arm_backend`):
    * ``franka``: :class:`robot_rl.drivers.franka.FrankaArm` (franky-control) at ``host``
      (``-p franka.control_mode:=impedance``: compliant, for contact-rich tasks);
    * ``ur``: :class:`robot_rl.drivers.ur.URArm` (ur_rtde) at ``host``;
    * ``ros2_control``: :class:`robot_rl.drivers.ros2_control.Ros2ControlArm`, a bridge to an arm
      already running ROS 2 (MoveIt Servo or a joint_trajectory_controller);
    * ``sim``: the arm of a robot_rl gymnasium env (``sim_env``, ``sim_backend``), for tests and
      for trying a launch file without hardware.

Lifecycle (``rclpy.lifecycle``: ``~/change_state``, ``~/get_state``, ``~/transition_event``):
``configure`` connects (a missing robot is logged and ``run_node`` exits with 1),
``activate`` starts the control timer and the command subscriptions, ``deactivate`` stops the
arm (it holds its pose) and the timer, ``cleanup``/``shutdown`` disconnect.

Example:
    python -m robot_rl.drivers.arm_node --ros-args -p backend:=sim -p control_rate_hz:=20.0
    python -m robot_rl.drivers.arm_node --ros-args -p backend:=franka -p host:=172.16.0.2
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.interfaces import Arm, WorkspaceBox
from robot_rl.ros import convert
from robot_rl.ros.node import LifecycleNode, run_node
from robot_rl.ros.safety import ArmCommandGate
from robot_rl.sim.impedance import ImpedanceConfig

#: Joint names of each backend's arm (``joint_names`` overrides; ros2_control takes the robot's).
DEFAULT_JOINT_NAMES = {
    "franka": [f"panda_joint{i}" for i in range(1, 8)],
    "sim": [f"panda_joint{i}" for i in range(1, 8)],
    "ur": ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"],
}

#: backend name -> function building the connected Arm from the configured node.
ARM_BACKENDS: dict[str, Callable[[ArmNode], Arm]] = {}


def register_arm_backend(name: str, build: Callable[[ArmNode], Arm]) -> None:
    """Make ``-p backend:=name`` build its arm with ``build(node)`` (read parameters from ``node``)."""
    ARM_BACKENDS[name] = build


def _build_franka(node: ArmNode) -> Arm:
    from robot_rl.drivers.franka import FrankaArm, FrankaConfig

    g = node.get_parameter
    return FrankaArm(FrankaConfig(
        host=node.host, control_hz=node.control_rate_hz, workspace_low=node.workspace.low,
        workspace_high=node.workspace.high, max_ee_speed_mps=node.max_ee_speed_m_s,
        max_ee_angular_speed_rad_s=node.max_angular_speed_rad_s,
        connect_timeout_s=node.connect_timeout_s, realtime=g("franka.realtime"), gripper=g("gripper"),
        control_mode=g("franka.control_mode"), impedance=dict(
            translational_stiffness_n_per_m=tuple(g("franka.translational_stiffness")),
            rotational_stiffness_nm_per_rad=tuple(g("franka.rotational_stiffness")),
            max_force_n=g("franka.max_force_n"), max_torque_nm=g("franka.max_torque_nm"))))


def _build_ur(node: ArmNode) -> Arm:
    from robot_rl.drivers.ur import URArm, URConfig

    return URArm(URConfig(
        host=node.host, control_hz=node.control_rate_hz, workspace_low=node.workspace.low,
        workspace_high=node.workspace.high, max_ee_speed_m_s=node.max_ee_speed_m_s,
        connect_timeout_s=node.connect_timeout_s))


def _build_ros2_control(node: ArmNode) -> Arm:
    from robot_rl.drivers.ros2_control import Ros2ControlArm, Ros2ControlConfig

    g = node.get_parameter
    return Ros2ControlArm(Ros2ControlConfig(
        mode=g("ros2_control.mode"), joint_states_topic=g("ros2_control.joint_states_topic"),
        ee_pose_topic=g("ros2_control.ee_pose_topic"), servo_topic=g("ros2_control.servo_topic"),
        trajectory_topic=g("ros2_control.trajectory_topic"), model_path=g("ros2_control.model_path"),
        ee_frame=g("ros2_control.ee_frame"), joint_names=tuple(n for n in node.joint_names_param if n),
        control_hz=node.control_rate_hz, workspace_low=node.workspace.low, workspace_high=node.workspace.high,
        max_ee_speed_m_s=node.max_ee_speed_m_s, state_timeout_s=g("ros2_control.state_timeout_s"),
        connect_timeout_s=node.connect_timeout_s, base_frame=node.base_frame))


def _build_sim(node: ArmNode) -> Arm:
    from robot_rl.envs import make_env

    env = make_env(node.get_parameter("sim_env"), backend=node.get_parameter("sim_backend"),
                   control_hz=node.control_rate_hz)
    env.reset(seed=0)
    arm = getattr(env.unwrapped, "arm", None)
    if not isinstance(arm, Arm):
        env.close()
        raise ConfigError(f"sim_env {node.get_parameter('sim_env')!r} has no robot_rl Arm (env.unwrapped.arm); "
                          "use a robot_rl/Panda... ID.")
    node._sim_env = env  # keep the scene alive; closed in on_cleanup
    return arm


register_arm_backend("franka", _build_franka)
register_arm_backend("ur", _build_ur)
register_arm_backend("ros2_control", _build_ros2_control)
register_arm_backend("sim", _build_sim)


class ArmNode(LifecycleNode):
    """Lifecycle node that runs one arm backend behind the arm topics (see the module docstring).

    Args:
        argv: command line (``--ros-args -p backend:=franka ...``).
        **kwargs: passed to :class:`~robot_rl.ros.node.Node` (``parameter_overrides``, ``domain_id``...).

    Raises:
        ConfigError: unknown backend, a workspace box with low >= high, non-positive rates or limits.
    """

    def __init__(self, argv: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__("arm", argv=argv, **kwargs)
        d = self.declare_parameter
        self.backend_name = d("backend", "sim", "arm backend: " + ", ".join(sorted(ARM_BACKENDS)),
                              choices=sorted(ARM_BACKENDS))
        self.host = d("host", "", "robot controller host name or IP (franka: the FCI address, ur: the controller); "
                      "empty: the backend's default")
        self.control_rate_hz = float(d("control_rate_hz", 10.0, "control loop and state publishing rate", units="Hz"))
        low = d("workspace_low", [0.30, -0.25, 0.02], "workspace box lower corner [x, y, z], base frame", units="m")
        high = d("workspace_high", [0.70, 0.25, 0.45], "workspace box upper corner [x, y, z], base frame", units="m")
        self.max_ee_speed_m_s = float(d("max_ee_speed_m_s", 0.25, "largest commanded TCP speed; changeable at runtime "
                                        "(the command gate applies it at the next tick)", units="m/s", min_value=0.001,
                                        max_value=2.0, on_change=self._set_max_ee_speed))
        self.command_timeout_s = float(d("command_timeout_s", 0.1, "hold position when the newest twist or pose "
                                         "command is older than this (MoveIt Servo's incoming_command_timeout)", units="s"))
        self.max_yaw_rate_rad_s = float(d("max_yaw_rate_rad_s", 1.5, "largest commanded tool yaw rate", units="rad/s"))
        self.max_angular_speed_rad_s = float(d("max_angular_speed_rad_s", 1.5, "largest commanded tool angular "
                                               "speed about any axis", units="rad/s"))
        self.max_tilt_rad = float(d("max_tilt_rad", float(np.pi / 6), "largest angle between the commanded tool z "
                                    "axis and pointing straight down (base -z), in [0, pi/2]", units="rad"))
        self.max_abs_yaw_rad = float(d("max_abs_yaw_rad", float(np.pi), "largest |yaw| of the commanded tool about "
                                       "base z, in [0, pi] (pi: any yaw)", units="rad"))
        self.joint_names_param = d("joint_names", [""], "JointState names of the arm joints; [''] means the "
                                   "backend's default (ros2_control: the names the robot publishes)")
        self.base_frame = d("base_frame", convert.BASE_FRAME, "frame_id of the published poses, twists and wrenches")
        self.connect_timeout_s = float(d("connect_timeout_s", 3.0, "give up connecting to the robot after this long",
                                         units="s"))
        self.home_on_configure = d("home_on_configure", False, "drive to the home pose when configured (the "
                                   "arm MOVES: only with a clear workspace)")
        self.stats_period_s = float(d("stats_period_s", 5.0, "period of the gate statistics log line", units="s"))
        d("gripper", True, "drive the gripper (franka: the Franka Hand)")
        d("franka.realtime", True, "require a real-time kernel (libfranka's default); false for franky-sim")
        d("franka.control_mode", "position", "position: stiff Cartesian motions; impedance: compliant 1 kHz "
          "Cartesian impedance with reference limiting (contact-rich tasks)", choices=["position", "impedance"])
        imp = ImpedanceConfig()  # defaults and limits: the one definition the sims use too
        d("franka.translational_stiffness", list(imp.translational_stiffness_n_per_m), "impedance stiffness "
          "[x, y, z], base frame, at most 3000", units="N/m")
        d("franka.rotational_stiffness", list(imp.rotational_stiffness_nm_per_rad), "impedance stiffness about "
          "[x, y, z], base frame, at most 300", units="N·m/rad")
        d("franka.max_force_n", imp.max_force_n, "impedance reference limiting: bound of the spring force, at most "
          "29.4 (the Panda's payload weight)", units="N")
        d("franka.max_torque_nm", imp.max_torque_nm, "impedance reference limiting: bound of the spring torque, at "
          "most 12 (the wrist joints' torque)", units="N·m")
        d("sim_env", "robot_rl/PandaPickLift-v0", "gymnasium ID of the sim backend's env (its arm is used)")
        d("sim_backend", "mujoco", "physics of the sim backend", choices=["mujoco", "pybullet"])
        d("ros2_control.mode", "servo", "servo: TwistStamped to MoveIt Servo; joint_trajectory: "
          "JointTrajectory to a joint_trajectory_controller (IK on ros2_control.model_path)",
          choices=["servo", "joint_trajectory"])
        d("ros2_control.joint_states_topic", "/joint_states", "the robot's JointState topic")
        d("ros2_control.ee_pose_topic", "", "the robot's EE PoseStamped topic; empty: forward kinematics on "
          "ros2_control.model_path")
        d("ros2_control.servo_topic", "/servo_node/delta_twist_cmds", "MoveIt Servo's twist command topic")
        d("ros2_control.trajectory_topic", "/joint_trajectory_controller/joint_trajectory",
          "the joint_trajectory_controller's command topic")
        d("ros2_control.model_path", "", "URDF or MJCF of the arm (for FK without a pose topic, and for IK)")
        d("ros2_control.ee_frame", "", "site or body of the model that is the TCP")
        d("ros2_control.state_timeout_s", 0.5, "the robot's state is stale (an error) when older than this", units="s")
        if self.control_rate_hz <= 0:
            raise ConfigError(f"control_rate_hz must be > 0, got {self.control_rate_hz}.")
        if len(low) != 3 or len(high) != 3:
            raise ConfigError(f"workspace_low and workspace_high need 3 values [x, y, z] in metres, got {low} and {high}.")
        self.workspace = WorkspaceBox(tuple(float(v) for v in low), tuple(float(v) for v in high))
        # checks the box and the limits now, so a bad parameter fails before anything connects
        self.gate = ArmCommandGate(self.workspace, self.max_ee_speed_m_s, self.command_timeout_s, self.max_yaw_rate_rad_s,
                                   self.max_angular_speed_rad_s, self.max_tilt_rad, self.max_abs_yaw_rad)
        self.arm: Arm | None = None
        self.joint_names: list[str] = []
        self._sim_env: Any = None
        self._command_subs: list[Any] = []
        self._last_stats_s = time.monotonic()
        q = "default"
        self._pubs = {
            "joint_states": self.create_publisher("sensor_msgs/msg/JointState", convert.JOINT_STATES, q),
            "ee_pose": self.create_publisher("geometry_msgs/msg/PoseStamped", convert.EE_POSE, q),
            "ee_twist": self.create_publisher("geometry_msgs/msg/TwistStamped", convert.EE_TWIST, q),
            "wrench": self.create_publisher("geometry_msgs/msg/WrenchStamped", convert.WRENCH, q),
        }

    def _set_max_ee_speed(self, value: float) -> None:
        """``max_ee_speed_m_s`` set at runtime (``ros2 param set /arm max_ee_speed_m_s 0.1``): the gate uses it next tick."""
        self.max_ee_speed_m_s = self.gate.max_ee_speed_m_s = float(value)

    # -- lifecycle --------------------------------------------------------------------------------

    def on_configure(self) -> None:
        """Connect the backend (and home it if ``home_on_configure``); errors leave the node unconfigured."""
        self.get_logger().info(f"connecting the {self.backend_name} arm"
                               + (f" at {self.host}" if self.host else ""))
        if self.backend_name in ("franka", "ur") and not self.host:
            raise ConfigError(f"backend {self.backend_name} needs the robot's address: -p host:=<ip>.")
        self.arm = ARM_BACKENDS[self.backend_name](self)
        try:
            if self.home_on_configure:
                self.arm.home()
            names = [n for n in self.joint_names_param if n]
            if not names:
                names = list(getattr(self.arm, "joint_names", None) or DEFAULT_JOINT_NAMES.get(self.backend_name, []))
            n_joints = np.asarray(self.arm.state().q).size
            if len(names) != n_joints:
                raise ConfigError(f"{len(names)} joint names {names} for a {n_joints}-joint arm; set -p joint_names:=[...].")
            self.joint_names = names
        except BaseException:
            self.on_cleanup()  # a failed configure leaves nothing connected
            raise

    def on_activate(self) -> None:
        """Start the control timer and accept commands; the arm holds until the first command."""
        self.gate.reset()
        self._command_subs = [
            self.create_subscription("geometry_msgs/msg/TwistStamped", convert.TWIST_CMD, self._on_twist),
            self.create_subscription("geometry_msgs/msg/PoseStamped", convert.POSE_CMD, self._on_pose),
            self.create_subscription("std_msgs/msg/Float64", convert.GRIPPER_CMD, self._on_gripper),
        ]
        self.start_work_timer(1.0 / self.control_rate_hz, self._tick)

    def on_deactivate(self) -> None:
        """Stop the arm (it holds its pose), the timer and the command subscriptions."""
        self.stop_work_timer()
        for sub in self._command_subs:
            sub.destroy()
        self._command_subs = []
        if self.arm is not None:
            self.arm.stop()

    def on_cleanup(self) -> None:
        """Disconnect the arm (and close the sim env)."""
        arm, env = self.arm, self._sim_env
        self.arm = self._sim_env = None
        if arm is not None:
            arm.close()
        if env is not None:
            env.close()

    def on_shutdown(self) -> None:
        """Stop and disconnect, from any state."""
        self.stop_work_timer()
        if self.arm is not None:
            self.arm.stop()
        self.on_cleanup()

    # -- commands ---------------------------------------------------------------------------------

    def _on_twist(self, msg: Any) -> None:
        self.gate.on_twist(convert.twist_to_array(msg.twist), time.monotonic())

    def _on_pose(self, msg: Any) -> None:
        position, quaternion = convert.pose_to_arrays(msg.pose)  # the full orientation; the gate limits it
        self.gate.on_pose(position, quaternion, time.monotonic())

    def _on_gripper(self, msg: Any) -> None:
        self.gate.on_gripper(float(msg.data))

    # -- control loop -----------------------------------------------------------------------------

    def _tick(self) -> None:
        """One control period: state -> gate -> arm.command -> publish the new state."""
        arm = self.arm
        if arm is None:
            return
        try:
            state = arm.state()
            cmd = self.gate.next_command(state, 1.0 / self.control_rate_hz, time.monotonic())
            arm.command(cmd)
            state = arm.state()
        except Exception as e:  # noqa: BLE001 - a failing arm must stop the loop, not the process
            self.get_logger().error(f"arm {self.backend_name} failed: {e}; deactivating (the arm holds its pose). "
                                    "Fix the cause, then activate it again (ros2 lifecycle set /arm activate, or "
                                    "a lifecycle_msgs/srv/ChangeState request on ~/change_state).")
            self.trigger("deactivate")
            return
        for key, message in convert.arm_state_msgs(state, self.joint_names, time.time(), self.base_frame).items():
            self._pubs[key].publish(message)
        now = time.monotonic()
        if now - self._last_stats_s >= self.stats_period_s:
            self._last_stats_s = now
            s = self.gate.stats
            self.get_logger().info(f"gate: {s.ticks} ticks, {s.box_clipped} box clips, {s.speed_limited} speed limits, "
                                   f"{s.orientation_clipped} orientation clips, {s.angular_speed_limited} angular "
                                   f"speed limits, {s.timed_out} timeouts, holding={s.holding}, rejected={s.rejected}")


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``robot_rl_arm_node``: run :class:`ArmNode` until SIGINT; exit code 1 if it cannot start."""
    return run_node(lambda args: ArmNode(args), argv)


if __name__ == "__main__":
    sys.exit(main())
