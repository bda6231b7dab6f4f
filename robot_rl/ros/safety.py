"""The arm node's command gate: workspace box, maximum EE speed and command timeout.

Shared by the hardware arm node (:mod:`robot_rl.drivers.arm_node`) and the sim node
(:mod:`robot_rl.sim.node`), so both enforce the same limits on the same topics. Each control
tick turns the newest command into one :class:`~robot_rl.interfaces.ArmCommand`:

* a pose target (``~/equilibrium_pose``) is clipped into the workspace box, and the step
  towards it is limited to ``max_ee_speed_m_s * period`` metres and ``max_yaw_rate_rad_s *
  period`` radians per tick;
* a twist (``~/delta_twist_cmds``, MoveIt Servo's input) is integrated over one tick from the
  last commanded target (as MoveIt Servo integrates from its command state), with the same
  speed limits and box;
* when the newest pose or twist command is older than ``command_timeout_s`` (MoveIt Servo's
  ``incoming_command_timeout``, 0.1 s) the arm holds the position it had when the commands
  stopped, until a new command arrives (an arm found outside the box is brought back at the
  speed limit, never in one jump);
* the gripper keeps the last commanded opening (a gripper holds its state anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_rl.interfaces import tool_yaw_rad
from robot_rl.errors import ConfigError
from robot_rl.interfaces import ArmCommand, ArmState, WorkspaceBox


@dataclass
class GateStats:
    """Counters of what the gate changed, for logs and tests."""

    ticks: int = 0
    box_clipped: int = 0
    speed_limited: int = 0
    timed_out: int = 0
    holding: bool = True
    last_reason: str = "no command yet"
    rejected: dict[str, int] = field(default_factory=dict)


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


class ArmCommandGate:
    """Turns asynchronous pose/twist/gripper commands into one safe :class:`ArmCommand` per tick.

    Args:
        workspace: box (base frame, metres) the TCP target never leaves.
        max_ee_speed_m_s: largest TCP speed, m/s (per-tick step = speed * period).
        command_timeout_s: hold position when the newest motion command is older, seconds.
        max_yaw_rate_rad_s: largest tool yaw rate, rad/s.

    Raises:
        ConfigError: non-positive limits.
    """

    def __init__(self, workspace: WorkspaceBox, max_ee_speed_m_s: float = 0.5, command_timeout_s: float = 0.1,
                 max_yaw_rate_rad_s: float = 1.5) -> None:
        if max_ee_speed_m_s <= 0 or command_timeout_s <= 0 or max_yaw_rate_rad_s <= 0:
            raise ConfigError("max_ee_speed_m_s, command_timeout_s and max_yaw_rate_rad_s must be > 0.")
        if np.any(np.asarray(workspace.low) >= np.asarray(workspace.high)):
            raise ConfigError(f"workspace box low {workspace.low} must be below high {workspace.high} on every axis.")
        self.workspace = workspace
        self.max_ee_speed_m_s = float(max_ee_speed_m_s)
        self.command_timeout_s = float(command_timeout_s)
        self.max_yaw_rate_rad_s = float(max_yaw_rate_rad_s)
        self.stats = GateStats()
        self._pose: tuple[np.ndarray, float] | None = None
        self._twist: np.ndarray | None = None
        self._received_s: float | None = None
        self._gripper: float | None = None
        self._hold: tuple[np.ndarray, float] | None = None
        self._last: tuple[np.ndarray, float] | None = None

    # -- inputs (subscription callbacks) ---------------------------------------------------------

    def on_pose(self, position_m: np.ndarray, yaw_rad: float, now_s: float) -> bool:
        """A new pose target (TCP position, metres, base frame; tool yaw, rad). False if rejected (NaN)."""
        p = np.asarray(position_m, np.float64)
        if p.shape != (3,) or not np.all(np.isfinite(p)) or not np.isfinite(yaw_rad):
            self._reject("non-finite pose")
            return False
        self._pose, self._twist, self._received_s = (p, float(yaw_rad)), None, now_s
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
        """
        self.stats.ticks += 1
        current = np.asarray(state.ee_position, np.float64)
        current_yaw = tool_yaw_rad(state.ee_quaternion)
        gripper = self._gripper if self._gripper is not None else float(state.gripper)
        fresh = self._received_s is not None and now_s - self._received_s <= self.command_timeout_s
        if not fresh:
            if self._received_s is not None and not self.stats.holding:
                self.stats.timed_out += 1
                self.stats.last_reason = f"no command for {now_s - self._received_s:.3f} s > {self.command_timeout_s} s: holding"
            if self._hold is None:
                self._hold = (self.workspace.clip(current), current_yaw)
            self.stats.holding = True
            self._last = None
            self._twist = None if not fresh else self._twist
            hold = self._hold[0].copy()
            step = hold - current
            max_step = self.max_ee_speed_m_s * period_s
            norm = float(np.linalg.norm(step))
            if norm > max_step * (1 + 1e-9):  # an arm outside the box returns at the speed limit, not in one jump
                self.stats.speed_limited += 1
                hold = current + step * (max_step / norm)
            return ArmCommand.tool_down(hold, self._hold[1], gripper)
        self.stats.holding = False
        self._hold = None
        base, base_yaw = self._last if self._last is not None else (current, current_yaw)
        if self._pose is not None:
            goal, goal_yaw = self._pose
        else:
            goal = base + self._twist[:3] * period_s
            goal_yaw = base_yaw + self._twist[5] * period_s
        clipped = self.workspace.clip(goal)
        if not np.allclose(clipped, goal):
            self.stats.box_clipped += 1
        step = clipped - current
        max_step = self.max_ee_speed_m_s * period_s
        norm = float(np.linalg.norm(step))
        if norm > max_step * (1 + 1e-9):
            self.stats.speed_limited += 1
            clipped = self.workspace.clip(current + step * (max_step / norm))
        dyaw = _wrap(goal_yaw - current_yaw)
        max_dyaw = self.max_yaw_rate_rad_s * period_s
        yaw = current_yaw + float(np.clip(dyaw, -max_dyaw, max_dyaw))
        self._last = (clipped, yaw)
        return ArmCommand.tool_down(clipped, yaw, gripper)
