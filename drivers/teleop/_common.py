"""Helpers shared by the teleop backends: deadzones, the operator's frame, gripper events."""

from __future__ import annotations

import math

import numpy as np

from robot_rl.interfaces import Teleop


def apply_deadzone(value: float, deadzone: float) -> float:
    """Zero ``value`` inside ``[-deadzone, deadzone]`` and rescale the rest back to [-1, 1].

    A stick at the edge of the deadzone gives 0 and one at full deflection gives +-1, so there is
    no jump at the deadzone's edge. Inputs beyond +-1 are clipped.

    >>> apply_deadzone(0.05, 0.1), round(apply_deadzone(0.55, 0.1), 6), apply_deadzone(-1.2, 0.1)
    (0.0, 0.5, -1.0)
    """
    v = max(-1.0, min(1.0, float(value)))
    if abs(v) <= deadzone:
        return 0.0
    return math.copysign((abs(v) - deadzone) / (1.0 - deadzone), v)


def operator_to_base(forward: float, left: float, operator_yaw_rad: float) -> tuple[float, float]:
    """Rotate a planar (forward, left) input of the operator into base-frame (x, y).

    ``operator_yaw_rad`` is the heading, in the robot base frame (REP 103: x forward, y left,
    z up), of the direction the operator looks: 0 when the operator stands behind the robot
    looking along base +x, ``pi`` when facing the robot from across the table.

    >>> [round(v, 6) for v in operator_to_base(1.0, 0.0, math.pi)]
    [-1.0, 0.0]
    """
    c, s = math.cos(operator_yaw_rad), math.sin(operator_yaw_rad)
    return c * forward - s * left, s * forward + c * left


def make_twist(vx: float, vy: float, vz: float, wx: float = 0.0, wy: float = 0.0, wz: float = 0.0) -> np.ndarray:
    """(6,) float64 twist: linear m/s then angular rad/s, robot base frame."""
    return np.array([vx, vy, vz, wx, wy, wz], dtype=np.float64)


class GripperToggle:
    """The gripper as the human operates it: toggle / open / close events, reported once.

    A device remembers the opening it last asked for (``opening``, 1 open, 0 closed). An event
    changes it and :meth:`take` reports the new opening exactly once; otherwise :meth:`take` gives
    None ("leave the gripper as it is"), so that taking over from a policy never moves the
    gripper by itself. :meth:`sync` tells it the gripper's actual opening, so that the next
    toggle flips from the truth (call it at every episode reset, or every step).
    """

    def __init__(self, opening: float = 1.0) -> None:
        self.opening = float(opening)
        self._pending: float | None = None

    def toggle(self) -> None:
        """Flip between open (1) and closed (0)."""
        self.set(0.0 if self.opening > 0.5 else 1.0)

    def set(self, opening: float) -> None:
        """Ask for ``opening`` in [0, 1]."""
        self.opening = float(opening)
        self._pending = self.opening

    def sync(self, opening: float) -> None:
        """Record the gripper's actual opening in [0, 1] without emitting an event."""
        self.opening = 1.0 if opening > 0.5 else 0.0
        self._pending = None

    def take(self) -> float | None:
        """The opening asked for since the last call, or None."""
        pending, self._pending = self._pending, None
        return pending


class DeviceTeleop(Teleop):
    """Base of the human-device backends: context manager, help text, gripper sync."""

    #: Multi-line description of the controls, for the caller to show (drivers never print).
    help_text: str = ""

    def sync_gripper(self, opening: float) -> None:
        """Tell the device the gripper's current opening in [0, 1] (1 open), so that the next
        toggle flips from it; call it after each episode reset."""

    def __enter__(self) -> DeviceTeleop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
