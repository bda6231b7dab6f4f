"""The robot interfaces every backend implements: Camera, Arm, Teleop, Task.

Simulated backends (``robot_rl.sim.mujoco``, later ``robot_rl.sim.pybullet``) and hardware
backends (``robot_rl.drivers.*``) implement the same small classes, so :class:`robot_rl.env.RobotEnv`
and the actor run unchanged against sim or real.

Conventions (REP 103 / REP 105):
    * lengths in metres, angles in radians, time in seconds, forces in N and N·m;
    * poses are expressed in the robot base frame (``base_link``): x forward, y left, z up;
    * quaternions are ``(x, y, z, w)``, unit norm;
    * images are ``(H, W, 3) uint8`` RGB, depth ``(H, W) uint16`` millimetres.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation


def tool_yaw_rad(quat_xyzw: np.ndarray) -> float:
    """Yaw (radians, about the base z axis) of a tool from its (4,) quaternion xyzw, base frame.

    The yaw is the heading of the tool x axis projected into the base xy plane.
    """
    tool_x = Rotation.from_quat(quat_xyzw).as_matrix()[:, 0]  # the tool x axis in base coordinates
    return float(np.arctan2(tool_x[1], tool_x[0]))


def tool_down_quaternion(yaw_rad: float) -> np.ndarray:
    """(4,) float64 xyzw quaternion of a tool pointing down turned by ``yaw_rad`` about the base z
    axis: Rz(yaw) * Rx(pi), so at yaw 0 tool x = base x, tool y = -base y, tool z = -base z.
    Inverse of :func:`tool_yaw_rad`."""
    return Rotation.from_euler("xz", (np.pi, yaw_rad)).as_quat()  # extrinsic: the half turn about x, then the yaw


def tool_tilt_yaw(quat_xyzw: np.ndarray) -> tuple[np.ndarray, float]:
    """Split a tool orientation into a tilt of the tool z axis away from pointing down and a yaw.

    Swing-twist decomposition about the nominal tool axis (base -z): ``R = exp(tilt) ·
    tool_down(yaw)``, where ``tilt`` is the smallest rotation (a rotation vector perpendicular to
    base z, base frame) that carries the nominal axis -z onto the tool z axis, and ``yaw`` the
    turn about base z that remains. For an untilted tool ``yaw`` equals :func:`tool_yaw_rad`.

    Args:
        quat_xyzw: (4,) tool orientation, quaternion xyzw, base frame.

    Returns:
        ``(tilt_rotvec (3,) float64 rad, base frame; yaw_rad in (-pi, pi])``; the tilt angle is
        ``norm(tilt_rotvec)`` in [0, pi]. A tool pointing straight up (tilt pi) tilts about base x.
    """
    rot = Rotation.from_quat(quat_xyzw)
    tool_z = rot.as_matrix()[:, 2]
    nominal = np.array([0.0, 0.0, -1.0])
    angle = float(np.arccos(np.clip(tool_z @ nominal, -1.0, 1.0)))
    axis = np.cross(nominal, tool_z)
    norm = float(np.linalg.norm(axis))
    if norm > 1e-12:
        axis /= norm
    else:
        axis = np.array([1.0, 0.0, 0.0])  # no tilt (angle 0) or upside down (angle pi): any horizontal axis
    tilt = axis * angle
    yaw = tool_yaw_rad((Rotation.from_rotvec(tilt).inv() * rot).as_quat())
    return tilt, yaw


def limit_tool_orientation(quat_xyzw: np.ndarray, max_tilt_rad: float, max_abs_yaw_rad: float) -> np.ndarray:
    """Clip a tool orientation into the orientation workspace: tilt <= ``max_tilt_rad``, |yaw| <= ``max_abs_yaw_rad``.

    Uses the decomposition of :func:`tool_tilt_yaw`: the tilt angle is clipped about its own axis
    (the tool leans the same way, less far) and the yaw into ``[-max_abs_yaw_rad, max_abs_yaw_rad]``.
    The one home of the orientation limits: :class:`robot_rl.env.RobotEnv` applies it to every
    target, and an arm node or safety gate can apply it to any commanded pose.

    Args:
        quat_xyzw: (4,) orientation, quaternion xyzw, base frame (need not be normalised).
        max_tilt_rad: largest angle between the tool z axis and base -z, radians, in [0, pi].
        max_abs_yaw_rad: largest yaw about base z, radians, in [0, pi].

    Returns:
        (4,) float64 unit quaternion xyzw with w >= 0.

    Raises:
        ValueError: a limit outside [0, pi].
    """
    if not (0.0 <= max_tilt_rad <= np.pi and 0.0 <= max_abs_yaw_rad <= np.pi):
        raise ValueError(f"max_tilt_rad and max_abs_yaw_rad must lie in [0, pi], got {max_tilt_rad}, {max_abs_yaw_rad}")
    tilt, yaw = tool_tilt_yaw(quat_xyzw)
    angle = float(np.linalg.norm(tilt))
    if angle > max_tilt_rad:
        tilt = tilt * (max_tilt_rad / angle)
    yaw = float(np.clip(yaw, -max_abs_yaw_rad, max_abs_yaw_rad))
    quat = (Rotation.from_rotvec(tilt) * Rotation.from_quat(tool_down_quaternion(yaw))).as_quat()
    return -quat if quat[3] < 0 else quat


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole camera model, as in ``sensor_msgs/CameraInfo``.

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        K: (3, 3) float64 camera matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels.
        D: (N,) float64 distortion coefficients (``plumb_bob``: k1, k2, t1, t2, k3); zeros for sim.
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))


@dataclass(frozen=True)
class Frame:
    """One camera frame.

    Attributes:
        rgb: (H, W, 3) uint8 RGB image.
        stamp: capture time in seconds (sim time for simulated cameras).
        depth: optional (H, W) uint16 depth in millimetres, aligned to ``rgb``.
    """

    rgb: np.ndarray
    stamp: float
    depth: np.ndarray | None = None


@dataclass(frozen=True)
class ArmState:
    """Proprioceptive state of an arm with a parallel gripper.

    Attributes:
        q: (n_joints,) float64 joint positions, radians.
        dq: (n_joints,) float64 joint velocities, rad/s.
        ee_position: (3,) float64 end-effector (tool centre point) position, metres, base frame.
        ee_quaternion: (4,) float64 end-effector orientation, quaternion xyzw, base frame.
        ee_velocity: (6,) float64 end-effector twist (linear m/s, angular rad/s), base frame.
        wrench: (6,) float64 external wrench on the tool: force (N) and torque (N·m) that the
            environment exerts on the hand, fingers and anything they hold, torque about the TCP,
            in the **base frame** (what a wrist F/T sensor reads with the tool's own weight
            tared, rotated into the base frame, like libfranka's ``O_F_ext_hat_K``). The tool
            frame reading is :meth:`wrench_in_tool_frame`.
        gripper: gripper opening in [0, 1]; 0 closed, 1 fully open.
        stamp: time of the reading in seconds.
    """

    q: np.ndarray
    dq: np.ndarray
    ee_position: np.ndarray
    ee_quaternion: np.ndarray
    ee_velocity: np.ndarray
    wrench: np.ndarray
    gripper: float
    stamp: float

    def wrench_in_tool_frame(self) -> np.ndarray:
        """(6,) float64 :attr:`wrench` expressed in the tool (TCP) frame: force N, torque N·m about the TCP.

        ``f_tool = R^T f_base``, ``tau_tool = R^T tau_base`` with ``R`` the tool rotation of
        :attr:`ee_quaternion` (the reference point stays the TCP, so no lever-arm term).
        """
        rot_t = Rotation.from_quat(self.ee_quaternion).as_matrix().T
        w = np.asarray(self.wrench, dtype=np.float64)
        return np.concatenate([rot_t @ w[:3], rot_t @ w[3:]])


@dataclass(frozen=True)
class ArmCommand:
    """An end-effector pose command for one control period.

    Attributes:
        ee_target_position: (3,) float64 target tool-centre-point position, metres, base frame;
            the backend clips it into its workspace box before executing it.
        ee_target_quaternion: (4,) float64 target tool orientation, unit quaternion xyzw, base
            frame (a tool pointing down with yaw ``y`` is :func:`tool_down_quaternion` ``(y)``);
            the backend or the env limits its tilt and yaw before executing it.
        gripper: target gripper opening in [0, 1]; 0 closed, 1 fully open.
    """

    ee_target_position: np.ndarray
    ee_target_quaternion: np.ndarray
    gripper: float

    @classmethod
    def tool_down(cls, position: np.ndarray, yaw_rad: float, gripper: float) -> ArmCommand:
        """A command with the tool pointing down (along -z of the base) turned by ``yaw_rad`` about base z.

        Args:
            position: (3,) TCP target, metres, base frame.
            yaw_rad: tool yaw about the base z axis, radians (0: tool x along base x).
            gripper: target opening in [0, 1].
        """
        return cls(np.asarray(position, dtype=np.float64), tool_down_quaternion(yaw_rad), float(gripper))

    @property
    def ee_target_yaw(self) -> float:
        """Yaw of the target orientation about the base z axis, radians (the heading of the tool x axis)."""
        return tool_yaw_rad(self.ee_target_quaternion)


@dataclass(frozen=True)
class WorkspaceBox:
    """Axis-aligned box, base frame, metres, that the end effector may never leave."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def clip(self, position: np.ndarray) -> np.ndarray:
        """Clip a (3,) position in metres into the box; returns a new (3,) float64 array."""
        return np.clip(np.asarray(position, dtype=np.float64), self.low, self.high)

    def contains(self, position: np.ndarray, tol_m: float = 1e-6) -> bool:
        """True if a (3,) position in metres lies inside the box (with ``tol_m`` slack)."""
        p = np.asarray(position)
        return bool(np.all(p >= np.asarray(self.low) - tol_m) and np.all(p <= np.asarray(self.high) + tol_m))


class Camera(abc.ABC):
    """A colour camera (optionally with aligned depth)."""

    name: str

    @property
    @abc.abstractmethod
    def intrinsics(self) -> CameraIntrinsics:
        """Pinhole intrinsics of the delivered images."""

    @abc.abstractmethod
    def read(self) -> Frame:
        """Return the newest frame; raises ``TimeoutError`` if none arrives in time."""

    def close(self) -> None:
        """Release the device or renderer. Idempotent."""

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Arm(abc.ABC):
    """A robot arm with a parallel gripper, commanded in end-effector space."""

    workspace: WorkspaceBox
    control_hz: float

    @abc.abstractmethod
    def state(self) -> ArmState:
        """Return the current proprioceptive state."""

    @abc.abstractmethod
    def command(self, cmd: ArmCommand) -> ArmCommand:
        """Execute ``cmd`` for one control period (1 / control_hz seconds).

        Returns:
            The command actually sent, after clipping to the workspace box and limits.
        """

    @abc.abstractmethod
    def home(self) -> None:
        """Move to the home configuration with the gripper open."""

    def stop(self) -> None:
        """Hold the current pose; used on errors and shutdown."""

    def close(self) -> None:
        """Disconnect. Idempotent."""

    def __enter__(self) -> Arm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class TeleopCommand:
    """One reading of a teleop device.

    Attributes:
        twist: (6,) float64 desired EE twist, linear m/s then angular rad/s, base frame.
        gripper: desired gripper opening in [0, 1], or None to leave it unchanged.
        engaged: True while the human is steering (the intervention is active).
        success: the human marked the episode a success.
        failure: the human marked the episode a failure.
        reset: the human asked for an episode reset.
    """

    twist: np.ndarray
    gripper: float | None = None
    engaged: bool = False
    success: bool = False
    failure: bool = False
    reset: bool = False


class Teleop(abc.ABC):
    """A human input device (keyboard, gamepad, SpaceMouse) or a scripted stand-in."""

    @abc.abstractmethod
    def read(self) -> TeleopCommand:
        """Return the newest command without blocking."""

    def close(self) -> None:
        """Release the device. Idempotent."""


class Task(abc.ABC):
    """What the robot should do: reset distribution, success check, optional dense reward.

    Method names follow dm_control's ``Task`` (``initialize_episode``, ``get_observation``,
    ``get_reward``, ``get_termination``). A simulated task reads privileged state (object
    poses) from its physics; a real task may have no privileged state and take success from a
    reward model or the human.
    """

    #: Episode length limit in control steps (truncation).
    max_episode_steps: int = 100

    @abc.abstractmethod
    def initialize_episode(self, rng: np.random.Generator) -> None:
        """Randomise the scene for a new episode (object poses, targets) using ``rng``."""

    def get_observation(self) -> dict[str, np.ndarray]:
        """Task-specific state entries, name -> float32 array (privileged in sim). Default none."""
        return {}

    @abc.abstractmethod
    def is_success(self) -> bool:
        """True when the task is accomplished in the current state."""

    def get_reward_terms(self) -> dict[str, float]:
        """Named dense reward terms (already scaled); their sum is the dense reward. Default none."""
        return {}

    def get_termination(self) -> bool:
        """True if the episode must end now (success or an unrecoverable state)."""
        return self.is_success()
