"""Bridge :class:`~robot_rl.interfaces.Arm` to an arm that already runs ROS 2 (ros2_control, MoveIt Servo).

Any arm with a ROS 2 driver (UR, Kinova, xArm, a Franka under franka_ros2, a Gazebo model ...)
becomes a robot_rl arm without a vendor SDK: :class:`Ros2ControlArm` reads the robot's
``sensor_msgs/JointState`` (``/joint_states`` from joint_state_broadcaster) and its TCP pose, and
commands it in one of two modes:

* ``servo``: ``geometry_msgs/TwistStamped`` to MoveIt Servo (default
  ``/servo_node/delta_twist_cmds``, frame ``base_frame``): twist = (target - current) / period,
  limited to ``max_ee_speed_m_s`` and ``max_angular_speed_rad_s``, re-sent at ``servo_hz`` during
  the period (MoveIt Servo stops after its ``incoming_command_timeout`` without new commands);
* ``joint_trajectory``: ``trajectory_msgs/JointTrajectory`` to a joint_trajectory_controller
  (default ``/joint_trajectory_controller/joint_trajectory``), one point reached at
  ``time_from_start`` = one control period; the joints come from a damped-least-squares IK on
  the arm model (``model_path``, a MJCF or URDF that ``mujoco`` loads, TCP site or body
  ``ee_frame``), started at the measured joint angles.

The TCP pose comes from ``ee_pose_topic`` (``geometry_msgs/PoseStamped`` in the base frame), or,
when that is empty, from forward kinematics of the model at the measured joint angles (the
model's world frame is the robot base frame). The TCP velocity is the model Jacobian times the
joint velocities (or a finite difference of the pose topic without a model); the wrench reads
zero and the gripper opening 1.0 (no standard topic; drive a gripper with its own controller).

The bridge runs its own :class:`~robot_rl.ros.node.Node` (``robot_rl_ros2_control_bridge``),
spun in a daemon thread, in ``ROS_DOMAIN_ID``. A state older than ``state_timeout_s`` is an
error (:class:`~robot_rl.errors.DeviceUnavailableError`), never silently reused.

JointState messages whose last name is ``gripper`` are robot_rl arm node output (the arm node
republishes ``/joint_states``) and are ignored; still, prefer to run the arm node with
``ros2_control`` in its own namespace or remap one of the two ``/joint_states``.

Limits: URDF ``package://`` mesh URIs are not resolved (export an MJCF, or use a URDF with
absolute mesh paths or without meshes; FK and IK need no meshes). The IK handles hinge and
slide joints. Tested here against a fake ROS arm made of our own node over real DDS; not
against MoveIt Servo or ros2_control themselves (no ROS 2 install on this machine).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError, DeviceUnavailableError
from robot_rl.interfaces import Arm, ArmCommand, ArmState, WorkspaceBox
from robot_rl.ros import convert
from robot_rl.ros.messages import TYPESTORE
from robot_rl.ros.node import Node, header, stamp_to_seconds

T = TYPESTORE.types
MODES = ("servo", "joint_trajectory")


@dataclass
class Ros2ControlConfig:
    """Settings of the ros2_control / MoveIt Servo bridge."""

    mode: str = "servo"
    """``servo`` (TwistStamped to MoveIt Servo) or ``joint_trajectory`` (JointTrajectory, needs model_path)."""
    joint_states_topic: str = "/joint_states"
    """the robot's sensor_msgs/JointState topic."""
    ee_pose_topic: str = ""
    """the robot's TCP geometry_msgs/PoseStamped topic (base frame); empty: FK on model_path."""
    servo_topic: str = "/servo_node/delta_twist_cmds"
    """MoveIt Servo's TwistStamped command topic."""
    trajectory_topic: str = "/joint_trajectory_controller/joint_trajectory"
    """the joint_trajectory_controller's JointTrajectory command topic."""
    model_path: str = ""
    """MJCF or URDF of the arm (FK without a pose topic; IK in joint_trajectory mode)."""
    ee_frame: str = ""
    """site (first) or body of the model that is the TCP."""
    joint_names: tuple[str, ...] = ()
    """the arm's joints, in command order; empty: the names of the first JointState received."""
    control_hz: float = 10.0
    """rate of command() (each call returns at the next tick), Hz."""
    workspace_low: tuple[float, float, float] = (0.30, -0.25, 0.02)
    """workspace box lower corner, metres, base frame."""
    workspace_high: tuple[float, float, float] = (0.70, 0.25, 0.45)
    """workspace box upper corner, metres, base frame."""
    max_ee_speed_m_s: float = 0.25
    """largest TCP speed, m/s."""
    max_angular_speed_rad_s: float = 1.0
    """largest TCP angular speed (servo mode), rad/s."""
    servo_hz: float = 50.0
    """rate at which servo mode re-sends the period's twist, Hz (>= control_hz)."""
    state_timeout_s: float = 0.5
    """joint states (and poses) older than this are stale: an error, seconds."""
    connect_timeout_s: float = 3.0
    """wait this long for the first joint state (and pose), seconds."""
    base_frame: str = convert.BASE_FRAME
    """frame_id of the twist commands (MoveIt Servo's robot_link_command_frame must match)."""
    home_q: tuple[float, ...] = ()
    """joint angles of home(), radians (sent as a JointTrajectory); empty: home() is an error."""
    home_duration_s: float = 5.0
    """time_from_start of the home trajectory, seconds."""
    ik_damping: float = 1e-4
    """damping of the least-squares IK (m^2, rad^2)."""
    ik_iterations: int = 30
    """largest number of IK iterations per command."""
    node_name: str = "robot_rl_ros2_control_bridge"
    """name of the bridge's ROS node."""


class _Model:
    """FK, Jacobian and DLS IK of the arm's TCP on a mujoco model (joints mapped by name)."""

    def __init__(self, path: str, ee_frame: str) -> None:
        import mujoco

        self.mj = mujoco
        try:
            self.model = mujoco.MjModel.from_xml_path(path)
        except Exception as e:  # noqa: BLE001 - mujoco raises ValueError with the parser's message
            raise ConfigError(f"cannot load the arm model {path!r} with mujoco: {e}. Give an MJCF, or a URDF whose mesh "
                              "paths mujoco can open (package:// URIs are not resolved).") from e
        self.data = mujoco.MjData(self.model)
        m = self.model
        if ee_frame and mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, ee_frame) >= 0:
            self.site, self.id = True, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, ee_frame)
        elif ee_frame and mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, ee_frame) >= 0:
            self.site, self.id = False, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, ee_frame)
        else:
            sites = [m.site(i).name for i in range(m.nsite)]
            bodies = [m.body(i).name for i in range(m.nbody)]
            raise ConfigError(f"ee_frame {ee_frame!r} is neither a site {sites} nor a body {bodies} of {path}.")
        self.qpos_adr: np.ndarray = np.zeros(0, int)
        self.dof_adr: np.ndarray = np.zeros(0, int)

    def bind(self, joint_names: list[str]) -> None:
        """Map the JointState names to the model's hinge/slide joints. Raises ConfigError if one is missing."""
        m, mj = self.model, self.mj
        ids = []
        for name in joint_names:
            jid = mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT, name)
            if jid < 0 or int(m.jnt_type[jid]) not in (int(mj.mjtJoint.mjJNT_HINGE), int(mj.mjtJoint.mjJNT_SLIDE)):
                raise ConfigError(f"joint {name!r} of the JointState is not a hinge or slide joint of the model; model "
                                  f"joints: {[m.joint(i).name for i in range(m.njnt)]}. Set joint_names.")
            ids.append(jid)
        self.qpos_adr, self.dof_adr = m.jnt_qposadr[ids], m.jnt_dofadr[ids]
        limited = m.jnt_limited[ids].astype(bool)
        self.low = np.where(limited, m.jnt_range[ids, 0], -np.inf)
        self.high = np.where(limited, m.jnt_range[ids, 1], np.inf)

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP ``(position (3,) m, rotation (3, 3))`` in the model frame at joint angles ``q``."""
        d = self.data
        d.qpos[self.qpos_adr] = q
        self.mj.mj_kinematics(self.model, d)
        if self.site:
            return d.site_xpos[self.id].copy(), d.site_xmat[self.id].reshape(3, 3).copy()
        return d.xpos[self.id].copy(), d.xmat[self.id].reshape(3, 3).copy()

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """(6, n) TCP Jacobian (linear rows first) at ``q``, columns in joint_names order."""
        self.fk(q)
        self.mj.mj_comPos(self.model, self.data)
        jp, jr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        if self.site:
            self.mj.mj_jacSite(self.model, self.data, jp, jr, self.id)
        else:
            self.mj.mj_jacBody(self.model, self.data, jp, jr, self.id)
        return np.vstack([jp, jr])[:, self.dof_adr]

    def ik(self, q0: np.ndarray, position: np.ndarray, rotation: np.ndarray, damping: float, iterations: int) -> np.ndarray:
        """Joint angles near ``q0`` that put the TCP at ``position`` (m) and ``rotation`` (3, 3): DLS iterations."""
        from scipy.spatial.transform import Rotation

        q = np.asarray(q0, np.float64).copy()
        eye = damping * np.eye(6)
        for _ in range(iterations):
            p, r = self.fk(q)
            err = np.concatenate([position - p, Rotation.from_matrix(rotation @ r.T).as_rotvec()])
            if np.linalg.norm(err[:3]) < 1e-4 and np.linalg.norm(err[3:]) < 1e-3:
                break
            jac = self.jacobian(q)
            q = np.clip(q + jac.T @ np.linalg.solve(jac @ jac.T + eye, err), self.low, self.high)
        return q


class Ros2ControlArm(Arm):
    """An arm running ROS 2, commanded through MoveIt Servo or a joint_trajectory_controller (module docstring).

    Args:
        config: :class:`Ros2ControlConfig`; the node starts and the first state is awaited here.

    Attributes:
        joint_names: the arm's joints (from the config or the first JointState).

    Raises:
        ConfigError: bad settings (unknown mode, no model where one is needed, unknown ee_frame
            or joints).
        DeviceUnavailableError: no joint state (or pose) within ``connect_timeout_s``.
    """

    def __init__(self, config: Ros2ControlConfig | None = None) -> None:
        self.config = c = config or Ros2ControlConfig()
        if c.mode not in MODES:
            raise ConfigError(f"ros2_control mode {c.mode!r} is not one of {MODES}.")
        if c.control_hz <= 0 or c.max_ee_speed_m_s <= 0 or c.state_timeout_s <= 0 or c.servo_hz < c.control_hz:
            raise ConfigError("control_hz, max_ee_speed_m_s and state_timeout_s must be > 0 and servo_hz >= control_hz.")
        if not c.model_path and (c.mode == "joint_trajectory" or not c.ee_pose_topic):
            raise ConfigError("the ros2_control bridge needs model_path (a MJCF/URDF of the arm) and ee_frame for "
                              + ("the joint_trajectory mode's IK." if c.mode == "joint_trajectory"
                                 else "forward kinematics, or an ee_pose_topic to read the TCP pose from."))
        self.control_hz = c.control_hz
        self.workspace = WorkspaceBox(tuple(c.workspace_low), tuple(c.workspace_high))
        self.model = _Model(c.model_path, c.ee_frame) if c.model_path else None
        self.joint_names: list[str] = list(c.joint_names)
        self._lock = threading.Lock()
        self._q: dict[str, tuple[float, float]] = {}  # name -> (position rad, velocity rad/s)
        self._joints_s: float | None = None  # monotonic receipt time of the newest JointState
        self._pose: tuple[np.ndarray, np.ndarray] | None = None
        self._pose_s: float | None = None
        self._pose_velocity = np.zeros(6)
        self._next_tick = time.monotonic()
        self.node = Node(c.node_name)
        try:
            self.node.create_subscription("sensor_msgs/msg/JointState", c.joint_states_topic, self._on_joints, "sensor")
            if c.ee_pose_topic:
                self.node.create_subscription("geometry_msgs/msg/PoseStamped", c.ee_pose_topic, self._on_pose, "sensor")
            if c.mode == "servo":
                self._twist_pub = self.node.create_publisher("geometry_msgs/msg/TwistStamped", c.servo_topic)
            self._traj_pub = self.node.create_publisher("trajectory_msgs/msg/JointTrajectory", c.trajectory_topic)
            self.node.spin_in_thread()
            self._wait_for_state()
        except BaseException:
            self.node.shutdown()
            raise

    # ------------------------------------------------------------------ subscriptions
    def _on_joints(self, msg: Any) -> None:
        names = list(msg.name)
        if names and names[-1] == convert.GRIPPER_JOINT:
            return  # a robot_rl arm node's own /joint_states
        vel = np.asarray(msg.velocity, np.float64)
        with self._lock:
            for i, (name, pos) in enumerate(zip(names, np.asarray(msg.position, np.float64))):
                self._q[name] = (float(pos), float(vel[i]) if vel.size == len(names) else 0.0)
            if not self.joint_names:
                self.joint_names = names
            if all(n in self._q for n in self.joint_names):
                self._joints_s = time.monotonic()

    def _on_pose(self, msg: Any) -> None:
        position, quat = convert.pose_to_arrays(msg.pose)
        now = time.monotonic()
        with self._lock:
            if self._pose is not None and self._pose_s is not None and now - self._pose_s > 1e-3:
                stamp_dt = stamp_to_seconds(msg.header.stamp) - self._pose_stamp
                dt = stamp_dt if stamp_dt > 1e-4 else now - self._pose_s
                self._pose_velocity = np.concatenate([(position - self._pose[0]) / dt, np.zeros(3)])
            self._pose, self._pose_s, self._pose_stamp = (position, quat), now, stamp_to_seconds(msg.header.stamp)

    def _wait_for_state(self) -> None:
        c = self.config
        deadline = time.monotonic() + c.connect_timeout_s
        while self._joints_s is None or (c.ee_pose_topic and self._pose_s is None):
            if time.monotonic() > deadline:
                missing = (f"no JointState with joints {self.joint_names or '(any)'} on {c.joint_states_topic}"
                           if self._joints_s is None else f"no PoseStamped on {c.ee_pose_topic}")
                raise DeviceUnavailableError(
                    f"{missing} within {c.connect_timeout_s} s. Is the robot's ROS 2 driver running (ros2_control with "
                    f"joint_state_broadcaster), in ROS_DOMAIN_ID {self.node.domain_id}, and visible from this host?")
            time.sleep(0.01)
        if self.model is not None:
            self.model.bind(self.joint_names)

    # ------------------------------------------------------------------ Arm API
    def _joints(self) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        now = time.monotonic()
        with self._lock:
            age = now - self._joints_s
            pose_age = now - self._pose_s if c.ee_pose_topic else 0.0
            q = np.array([self._q[n][0] for n in self.joint_names])
            dq = np.array([self._q[n][1] for n in self.joint_names])
        if age > c.state_timeout_s or pose_age > c.state_timeout_s:
            what = c.joint_states_topic if age > c.state_timeout_s else c.ee_pose_topic
            raise DeviceUnavailableError(
                f"the robot's state is stale: nothing on {what} for {max(age, pose_age):.2f} s (limit "
                f"{c.state_timeout_s} s). Did the robot driver stop or the network drop? The arm is not commanded.")
        return q, dq

    def state(self) -> ArmState:
        """Joint angles (rad), velocities (rad/s) and the TCP pose/twist in the base frame.

        Raises:
            DeviceUnavailableError: the newest state is older than ``state_timeout_s``.
        """
        from scipy.spatial.transform import Rotation

        q, dq = self._joints()
        if self.config.ee_pose_topic:
            with self._lock:
                (position, quat), velocity = self._pose, self._pose_velocity.copy()
        else:
            position, rot = self.model.fk(q)
            quat = Rotation.from_matrix(rot).as_quat()
            velocity = self.model.jacobian(q) @ dq
        return ArmState(q=q, dq=dq, ee_position=np.asarray(position, np.float64), ee_quaternion=np.asarray(quat, np.float64),
                        ee_velocity=velocity, wrench=np.zeros(6), gripper=1.0, stamp=time.time())

    def command(self, cmd: ArmCommand) -> ArmCommand:
        """Command the TCP towards ``cmd`` (clipped to the box and speed) for one period; returns at the next tick.

        Returns:
            The command actually sent (gripper 1.0: no gripper is driven).

        Raises:
            DeviceUnavailableError: the robot's state is stale (nothing is sent then).
        """
        from scipy.spatial.transform import Rotation

        c = self.config
        period = 1.0 / self.control_hz
        state = self.state()
        current = state.ee_position
        target = self.workspace.clip(cmd.ee_target_position)
        step = target - current
        max_step = c.max_ee_speed_m_s * period
        norm = float(np.linalg.norm(step))
        if norm > max_step:
            target = self.workspace.clip(current + step * (max_step / norm))
        target_rot = Rotation.from_quat(cmd.ee_target_quaternion)
        if self._next_tick < time.monotonic() - period:  # first command, or after a pause: restart the clock
            self._next_tick = time.monotonic()
        end = self._next_tick + period
        if c.mode == "servo":
            linear = (target - current) / period
            speed = np.linalg.norm(linear)
            if speed > c.max_ee_speed_m_s:
                linear *= c.max_ee_speed_m_s / speed
            angular = (target_rot * Rotation.from_quat(state.ee_quaternion).inv()).as_rotvec() / period
            rate = np.linalg.norm(angular)
            if rate > c.max_angular_speed_rad_s:
                angular *= c.max_angular_speed_rad_s / rate
            twist = np.concatenate([linear, angular])
            while True:  # re-send at servo_hz so MoveIt Servo's command timeout never fires mid-period
                self._twist_pub.publish(convert.twist_command_msg(twist, time.time(), c.base_frame))
                if time.monotonic() + 1.0 / c.servo_hz >= end:
                    break
                time.sleep(1.0 / c.servo_hz)
        else:
            q = self.model.ik(state.q, target, target_rot.as_matrix(), c.ik_damping, c.ik_iterations)
            self._send_trajectory(q, period)
        self._next_tick = max(end, time.monotonic())
        time.sleep(max(0.0, self._next_tick - time.monotonic()))
        return ArmCommand(ee_target_position=target, ee_target_quaternion=target_rot.as_quat(), gripper=1.0)

    def _send_trajectory(self, q: np.ndarray, duration_s: float) -> None:
        ns = int(round(duration_s * 1e9))
        point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=np.asarray(q, np.float64), velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
            time_from_start=T["builtin_interfaces/msg/Duration"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000))
        # stamp 0: start now (joint_trajectory_controller's convention)
        self._traj_pub.publish(T["trajectory_msgs/msg/JointTrajectory"](
            header=header(0.0, ""), joint_names=list(self.joint_names), points=[point]))

    def home(self) -> None:
        """Send ``home_q`` as a JointTrajectory (``home_duration_s``) and wait for it.

        Raises:
            ConfigError: no ``home_q`` configured, or of the wrong length.
        """
        c = self.config
        if len(c.home_q) != len(self.joint_names):
            raise ConfigError(f"home() needs home_q with {len(self.joint_names)} joint angles for {self.joint_names}, got {c.home_q}.")
        self._send_trajectory(np.asarray(c.home_q, np.float64), c.home_duration_s)
        time.sleep(c.home_duration_s)
        self._next_tick = time.monotonic()

    def stop(self) -> None:
        """Hold: a zero twist (servo) or the measured joints (joint_trajectory). Never raises."""
        try:
            if self.config.mode == "servo":
                self._twist_pub.publish(convert.twist_command_msg(np.zeros(6), time.time(), self.config.base_frame))
            else:
                self._send_trajectory(self._joints()[0], 0.05)
        except Exception:  # noqa: BLE001 - stopping must never raise during shutdown
            pass

    def close(self) -> None:
        """Stop and shut the bridge's node down. Idempotent."""
        if not self.node.is_shutdown:
            self.stop()
            self.node.shutdown()
