"""The arm node's command gate: workspace box, orientation limits, EE speed limits and command timeout.

Shared by the hardware arm node (:mod:`robot_rl.drivers.arm_node`) and the sim node
(:mod:`robot_rl.sim.node`), so both enforce the same limits on the same topics. Each control
tick turns the newest command into one :class:`~robot_rl.interfaces.ArmCommand` with a full
orientation (position m and quaternion xyzw, base frame):

* a pose target (``~/equilibrium_pose``, position and orientation) is clipped into the workspace
  box and the orientation workspace, and the step towards it is limited to ``max_ee_speed_m_s *
  period`` metres and to ``max_angular_speed_rad_s * period`` radians of rotation (of which at most
  ``max_yaw_rate_rad_s * period`` about base z) per tick;
* a twist (``~/delta_twist_cmds``, MoveIt Servo's input: linear m/s and angular rad/s, base
  frame) is integrated over one tick from the last commanded target (as MoveIt Servo integrates
  from its command state): ``p + v dt`` and ``exp(w dt) R``, with the same limits;
* the orientation workspace (:func:`~robot_rl.interfaces.limit_tool_orientation`, the one home
  of these limits, which :class:`~robot_rl.env.RobotEnv` applies too): the tool z axis at most
  ``max_tilt_rad`` from pointing straight down (base -z), the yaw about base z within
  ``[-max_abs_yaw_rad, max_abs_yaw_rad]``;
* when the newest pose or twist command is older than ``command_timeout_s`` (MoveIt Servo's
  ``incoming_command_timeout``, 0.1 s) the arm holds the pose (position *and* orientation) it had
  when the commands stopped, until a new command arrives (an arm found outside the box or the
  orientation limits is brought back at the speed limits, never in one jump);
* the gripper keeps the last commanded opening (a gripper holds its state anyway).

A tool-down command (tilt 0, as :meth:`ArmCommand.tool_down` builds) goes through exactly as
before the orientation limits existed: its yaw step is limited by ``max_yaw_rate_rad_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from robot_rl.errors import ConfigError
from robot_rl.interfaces import (ArmCommand, ArmState, WorkspaceBox, limit_tool_orientation, tool_down_quaternion,
                                 tool_tilt_yaw)


@dataclass
class GateStats:
    """Counters of what the gate changed, for logs and tests."""

    ticks: int = 0
    box_clipped: int = 0
    speed_limited: int = 0
    orientation_clipped: int = 0
    """ticks whose orientation target was outside the tilt or yaw limits."""
    angular_speed_limited: int = 0
    """ticks whose rotation step was pulled in by the angular speed or yaw rate limit."""
    timed_out: int = 0
    holding: bool = True
    last_reason: str = "no command yet"
    rejected: dict[str, int] = field(default_factory=dict)


def _rotation_angle(a_xyzw: np.ndarray, b_xyzw: np.ndarray) -> float:
    """Angle (rad) of the rotation between two orientations."""
    return float((Rotation.from_quat(a_xyzw) * Rotation.from_quat(b_xyzw).inv()).magnitude())


class ArmCommandGate:
    """Turns asynchronous pose/twist/gripper commands into one safe :class:`ArmCommand` per tick.

    Args:
        workspace: box (base frame, metres) the TCP target never leaves.
        max_ee_speed_m_s: largest TCP speed, m/s (per-tick step = speed * period).
        command_timeout_s: hold the pose when the newest motion command is older, seconds.
        max_yaw_rate_rad_s: largest rotation rate about base z, rad/s.
        max_angular_speed_rad_s: largest tool angular speed (any axis), rad/s.
        max_tilt_rad: largest angle between the tool z axis and base -z, radians, in [0, pi/2]
            (30 degrees: :class:`~robot_rl.env.RobotEnv`'s default).
        max_abs_yaw_rad: largest |yaw| of the tool about base z, radians, in [0, pi] (pi: any yaw).

    Raises:
        ConfigError: non-positive speed or timeout limits, a box with low >= high, orientation
            limits outside their ranges.
    """

    def __init__(self, workspace: WorkspaceBox, max_ee_speed_m_s: float = 0.5, command_timeout_s: float = 0.1,
                 max_yaw_rate_rad_s: float = 1.5, max_angular_speed_rad_s: float = 1.5,
                 max_tilt_rad: float = np.pi / 6, max_abs_yaw_rad: float = np.pi) -> None:
        if min(max_ee_speed_m_s, command_timeout_s, max_yaw_rate_rad_s, max_angular_speed_rad_s) <= 0:
            raise ConfigError("max_ee_speed_m_s, command_timeout_s, max_yaw_rate_rad_s and max_angular_speed_rad_s "
                              "must be > 0.")
        if not (0.0 <= max_tilt_rad <= np.pi / 2 and 0.0 <= max_abs_yaw_rad <= np.pi):
            raise ConfigError(f"max_tilt_rad must lie in [0, pi/2] and max_abs_yaw_rad in [0, pi] (radians), "
                              f"got {max_tilt_rad} and {max_abs_yaw_rad}.")
        if np.any(np.asarray(workspace.low) >= np.asarray(workspace.high)):
            raise ConfigError(f"workspace box low {workspace.low} must be below high {workspace.high} on every axis.")
        self.workspace = workspace
        self.max_ee_speed_m_s = float(max_ee_speed_m_s)
        self.command_timeout_s = float(command_timeout_s)
        self.max_yaw_rate_rad_s = float(max_yaw_rate_rad_s)
        self.max_angular_speed_rad_s = float(max_angular_speed_rad_s)
        self.max_tilt_rad = float(max_tilt_rad)
        self.max_abs_yaw_rad = float(max_abs_yaw_rad)
        self.stats = GateStats()
        self._pose: tuple[np.ndarray, np.ndarray] | None = None  # position (3,) m, quaternion (4,) xyzw
        self._twist: np.ndarray | None = None
        self._received_s: float | None = None
        self._gripper: float | None = None
        self._hold: tuple[np.ndarray, np.ndarray] | None = None
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    # -- inputs (subscription callbacks) ---------------------------------------------------------

    def on_pose(self, position_m: np.ndarray, orientation: np.ndarray | float, now_s: float) -> bool:
        """A new pose target. False if rejected (non-finite, wrong size, zero quaternion).

        Args:
            position_m: (3,) TCP position, metres, base frame.
            orientation: (4,) quaternion xyzw, base frame (any norm > 0); or a float: the yaw
                (rad) of a tool pointing down.
            now_s: arrival time, seconds (the clock of :meth:`next_command`).
        """
        p = np.asarray(position_m, np.float64)
        q = tool_down_quaternion(float(orientation)) if np.ndim(orientation) == 0 and np.isfinite(orientation) \
            else np.asarray(orientation, np.float64)
        if (p.shape != (3,) or q.shape != (4,) or not np.all(np.isfinite(p)) or not np.all(np.isfinite(q))
                or np.linalg.norm(q) < 1e-9):
            self._reject("non-finite pose")
            return False
        self._pose, self._twist, self._received_s = (p, q / np.linalg.norm(q)), None, now_s
        return True

    def on_twist(self, twist: np.ndarray, now_s: float) -> bool:
        """A new EE twist (6,), m/s then rad/s, base frame. False if rejected (NaN or wrong size)."""
        t = np.asarray(twist, np.float64)
        if t.shape != (6,) or not np.all(np.isfinite(t)):
            self._reject("non-finite twist")
            return False
        if self._twist is None:
            self._last = None  # a new twist stream integrates from the measured pose
        self._twist, self._pose, self._received_s = t, None, now_s
        return True

    def on_gripper(self, opening: float) -> bool:
        """A gripper opening in [0, 1] (clipped). False if rejected (NaN)."""
        if not np.isfinite(opening):
            self._reject("non-finite gripper")
            return False
        self._gripper = float(np.clip(opening, 0.0, 1.0))
        return True

    def _reject(self, reason: str) -> None:
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1

    def reset(self) -> None:
        """Forget all commands (after homing): the arm holds where it is until the next command."""
        self._pose = self._twist = self._received_s = self._hold = self._last = None
        self._gripper = None

    # -- one tick ----------------------------------------------------------------------------------

    def next_command(self, state: ArmState, period_s: float, now_s: float) -> ArmCommand:
        """The command for the tick starting at ``now_s`` (seconds, same clock as the inputs).

        Args:
            state: the measured arm state.
            period_s: tick period, seconds.
            now_s: current time, seconds.

        Returns:
            The command: position (3,) m and orientation (4,) xyzw, base frame, inside the box and
            the orientation limits, at most one tick's speed away from the measured pose (an arm
            found outside the limits comes back at that speed).
        """
        self.stats.ticks += 1
        current = np.asarray(state.ee_position, np.float64)
        current_q = np.asarray(state.ee_quaternion, np.float64)
        gripper = self._gripper if self._gripper is not None else float(state.gripper)
        fresh = self._received_s is not None and now_s - self._received_s <= self.command_timeout_s
        if not fresh:
            if self._received_s is not None and not self.stats.holding:
                self.stats.timed_out += 1
                self.stats.last_reason = f"no command for {now_s - self._received_s:.3f} s > {self.command_timeout_s} s: holding"
            if self._hold is None:
                self._hold = (self.workspace.clip(current), self._limit_orientation(current_q, count=False))
            self.stats.holding = True
            self._last = None
            self._twist = None
            hold = self._hold[0].copy()
            step = hold - current
            max_step = self.max_ee_speed_m_s * period_s
            norm = float(np.linalg.norm(step))
            if norm > max_step * (1 + 1e-9):  # an arm outside the box returns at the speed limit, not in one jump
                self.stats.speed_limited += 1
                hold = current + step * (max_step / norm)
            return ArmCommand(hold, self._limit_rotation_step(self._hold[1], current_q, period_s), gripper)
        self.stats.holding = False
        self._hold = None
        base, base_q = self._last if self._last is not None else (current, current_q)
        if self._pose is not None:
            goal, goal_q = self._pose
        else:
            goal = base + self._twist[:3] * period_s
            goal_q = (Rotation.from_rotvec(self._twist[3:] * period_s) * Rotation.from_quat(base_q)).as_quat()
        clipped = self.workspace.clip(goal)
        if not np.allclose(clipped, goal):
            self.stats.box_clipped += 1
        step = clipped - current
        max_step = self.max_ee_speed_m_s * period_s
        norm = float(np.linalg.norm(step))
        if norm > max_step * (1 + 1e-9):
            self.stats.speed_limited += 1
            clipped = self.workspace.clip(current + step * (max_step / norm))
        quat = self._limit_rotation_step(self._limit_orientation(goal_q), current_q, period_s)
        self._last = (clipped, quat)
        return ArmCommand(clipped, quat, gripper)

    def _limit_orientation(self, quat_xyzw: np.ndarray, count: bool = True) -> np.ndarray:
        """``quat_xyzw`` clipped into the tilt and yaw limits (counted in the stats when changed)."""
        limited = limit_tool_orientation(quat_xyzw, self.max_tilt_rad, self.max_abs_yaw_rad)
        if count and _rotation_angle(limited, quat_xyzw) > 1e-9:
            self.stats.orientation_clipped += 1
        return limited

    def _rotation_ok(self, quats_xyzw: np.ndarray, current: Rotation, period_s: float) -> np.ndarray:
        """(N,) bool: whether the rotation from ``current`` to each of (N, 4) ``quats_xyzw`` respects
        the angular speed and yaw rate limits."""
        steps = (Rotation.from_quat(quats_xyzw) * current.inv()).as_rotvec()  # (N, 3) base frame, rad
        slack = 1 + 1e-9
        return ((np.linalg.norm(steps, axis=1) <= self.max_angular_speed_rad_s * period_s * slack)
                & (np.abs(steps[:, 2]) <= self.max_yaw_rate_rad_s * period_s * slack))

    def _limit_rotation_step(self, goal_q: np.ndarray, current_q: np.ndarray, period_s: float) -> np.ndarray:
        """The orientation one tick from ``current_q`` towards ``goal_q`` (inside the orientation limits).

        The path is a straight line in the (tilt rotation vector, yaw) coordinates of
        :func:`~robot_rl.interfaces.tool_tilt_yaw`, in which the orientation workspace (a disc of
        tilts times a yaw interval) is convex, so every point of it between two orientations inside
        the limits is inside too (a geodesic of SO(3) is not: between two tilted tools it can tilt
        further than either). The step is the longest along that path within the angular speed and
        yaw rate limits (to 1/4096 of the step); for tool-down orientations it is exactly the yaw
        step ``clip(dyaw, +-max_yaw_rate_rad_s * period)``.
        """
        current = Rotation.from_quat(current_q)
        goal_q = np.asarray(goal_q, np.float64) / np.linalg.norm(goal_q)
        if self._rotation_ok(goal_q[None], current, period_s)[0]:
            return goal_q
        self.stats.angular_speed_limited += 1
        tilt_c, yaw_c = tool_tilt_yaw(current_q)
        tilt_g, yaw_g = tool_tilt_yaw(goal_q)
        dyaw = yaw_g - yaw_c  # the yaw interval is convex only unwrapped, unless it is the whole circle
        if self.max_abs_yaw_rad >= np.pi:
            dyaw = (dyaw + np.pi) % (2 * np.pi) - np.pi
        down = Rotation.from_quat(tool_down_quaternion(0.0))

        def at(fracs: np.ndarray) -> np.ndarray:  # (N,) fractions of the path -> (N, 4) quaternions
            tilt = tilt_c[None] + fracs[:, None] * (tilt_g - tilt_c)[None]
            yaw = np.zeros((len(fracs), 3))
            yaw[:, 2] = yaw_c + fracs * dyaw
            return (Rotation.from_rotvec(tilt) * Rotation.from_rotvec(yaw) * down).as_quat()  # exp(tilt) Rz(yaw) Rx(pi)

        step = (Rotation.from_quat(goal_q) * current.inv()).as_rotvec()
        angle, yaw_step = float(np.linalg.norm(step)), abs(float(step[2]))
        frac = min(self.max_angular_speed_rad_s * period_s / angle if angle > 0 else 1.0,
                   self.max_yaw_rate_rad_s * period_s / yaw_step if yaw_step > 0 else 1.0)  # exact along a geodesic
        quat = at(np.array([frac]))[0]
        if not self._rotation_ok(quat[None], current, period_s)[0]:
            lo, hi = 0.0, frac  # at(0) is the current orientation; two grid searches for the longest valid step
            for _ in range(2):
                grid = np.linspace(lo, hi, 65)
                ok = self._rotation_ok(at(grid), current, period_s)
                ok[0] = True
                i = int(np.flatnonzero(ok)[-1])
                lo, hi = grid[i], grid[min(i + 1, 64)]
            quat = at(np.array([lo]))[0]
        return quat / np.linalg.norm(quat)
