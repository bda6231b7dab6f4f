"""Gamepad teleop through pygame's joystick API (SDL), without a window.

:class:`GamepadMapper` is the pure part: it turns one snapshot of the pad (axes, buttons,
hats, plus the buttons pressed since the last snapshot) into a :class:`TeleopCommand` and can be
tested without a device. :class:`GamepadTeleop` feeds it from pygame.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from robot_rl.drivers.teleop._common import (DeviceTeleop, GripperToggle, apply_deadzone, make_twist,
                                             operator_to_base)
from robot_rl.errors import ConfigError, DeviceUnavailableError
from robot_rl.interfaces import TeleopCommand


@dataclass(frozen=True)
class GamepadMapping:
    """Which pygame axis / button / hat does what; defaults: an Xbox pad on Linux (pygame 2 docs).

    pygame stick axes are +1 to the right and +1 down; triggers rest at -1 and read +1 fully
    pressed (0 until first touched). Windows / macOS number some axes and buttons differently:
    check yours with ``python -m pygame.examples.joystick`` and override the indices.
    """

    stick_forward_axis: int = 1
    """left stick vertical: pushed up (negative) moves the operator's forward, base +x by default."""
    stick_left_axis: int = 0
    """left stick horizontal: pushed left (negative) moves base +y by default."""
    stick_up_axis: int = 4
    """right stick vertical: pushed up (negative) moves +z."""
    stick_yaw_axis: int = 3
    """right stick horizontal: pushed left (negative) yaws counter-clockwise seen from above (+yaw)."""
    close_trigger_axis: int | None = 5
    """right trigger: pressed past trigger_threshold closes the gripper (None: unused)."""
    open_trigger_axis: int | None = 2
    """left trigger: pressed past trigger_threshold opens the gripper (None: unused)."""
    trigger_threshold: float = 0.5
    """trigger value (-1 released .. +1 pressed) above which a trigger counts as pressed."""
    gripper_toggle_button: int | None = 2
    """X: toggles the gripper open <-> closed."""
    success_button: int | None = 0
    """A: success, ends the episode."""
    failure_button: int | None = 1
    """B: failure, ends the episode."""
    reset_button: int | None = 3
    """Y: reset, ends the episode."""
    engage_button: int | None = 4
    """left shoulder (LB): take over / hand back to the policy."""
    engage_hold: bool = False
    """False: each press of engage_button toggles ``engaged``; True: engaged only while it is held."""
    fine_hat: int | None = 0
    """D-pad: up / down / left / right move +x / -x / +y / -y at hat_speed_fraction of the speed."""
    hat_speed_fraction: float = 0.25
    """speed of a D-pad move as a fraction of linear_speed_mps, for fine positioning."""
    deadzone: float = 0.15
    """stick deflections below this fraction of full scale read 0 (sticks rarely centre at 0)."""


def _get(values: Sequence[float], index: int | None, default: float = 0.0) -> float:
    return float(values[index]) if index is not None and 0 <= index < len(values) else default


class GamepadMapper:
    """Pure mapping from gamepad snapshots to :class:`TeleopCommand` (no device, no pygame).

    Twist, robot base frame (REP 103): left stick = x / y, right stick = z / yaw, each scaled
    by the deadzone-corrected deflection times ``linear_speed_mps`` (m/s) or ``yaw_rate_rps``
    (rad/s); the D-pad adds slow x / y. Buttons act on their press (rising edge) and are events:
    ``success`` / ``failure`` / ``reset`` are True in the one command after the press, and
    ``gripper`` is the new opening (1 open, 0 closed) in the one command after a trigger / toggle
    press, else None (unchanged).

    Args:
        mapping: indices and thresholds, :class:`GamepadMapping`.
        linear_speed_mps: TCP speed at full stick deflection, m/s.
        yaw_rate_rps: yaw rate at full stick deflection, rad/s.
        operator_yaw_rad: heading of the operator's "forward" (left stick up) in the base frame,
            radians (0: base +x; ``pi``: the operator faces the robot).

    Raises:
        ConfigError: a speed is not positive or the deadzone is outside [0, 1).
    """

    def __init__(self, mapping: GamepadMapping | None = None, linear_speed_mps: float = 0.1, yaw_rate_rps: float = 0.5,
                 operator_yaw_rad: float = 0.0) -> None:
        self.mapping = mapping if mapping is not None else GamepadMapping()
        if not (linear_speed_mps > 0 and yaw_rate_rps > 0):
            raise ConfigError(f"gamepad teleop: speeds must be > 0, got {linear_speed_mps} m/s, {yaw_rate_rps} rad/s")
        if not 0.0 <= self.mapping.deadzone < 1.0:
            raise ConfigError(f"gamepad teleop: deadzone must be in [0, 1), got {self.mapping.deadzone}")
        self.linear_speed_mps, self.yaw_rate_rps, self.operator_yaw_rad = linear_speed_mps, yaw_rate_rps, operator_yaw_rad
        self.engaged = False
        self.gripper = GripperToggle()
        self._previous_buttons: tuple[bool, ...] = ()
        self._previous_triggers = (False, False)

    def command(self, axes: Sequence[float], buttons: Sequence[bool | int], hats: Sequence[tuple[int, int]] = (),
                pressed: Iterable[int] = ()) -> TeleopCommand:
        """Map one snapshot of the pad.

        Args:
            axes: (n_axes,) floats in [-1, 1], pygame's ``Joystick.get_axis(i)``.
            buttons: (n_buttons,) 0/1, ``Joystick.get_button(i)``.
            hats: (n_hats,) (x, y) in {-1, 0, 1}, ``Joystick.get_hat(i)``; y is +1 up.
            pressed: button indices pressed since the previous snapshot (from ``JOYBUTTONDOWN``
                events), so that a tap shorter than a control period is not missed.

        Returns:
            The :class:`TeleopCommand`; twist in m/s and rad/s, base frame.
        """
        m = self.mapping
        now = tuple(bool(b) for b in buttons)
        prev = self._previous_buttons + (False,) * max(0, len(now) - len(self._previous_buttons))
        edges = {i for i, b in enumerate(now) if b and not prev[i]} | set(pressed)
        self._previous_buttons = now

        def down(index: int | None) -> bool:
            return index is not None and index in edges

        triggers = (_get(axes, m.close_trigger_axis, -1.0) > m.trigger_threshold,
                    _get(axes, m.open_trigger_axis, -1.0) > m.trigger_threshold)
        if triggers[0] and not self._previous_triggers[0]:
            self.gripper.set(0.0)
        elif triggers[1] and not self._previous_triggers[1]:
            self.gripper.set(1.0)
        self._previous_triggers = triggers
        if down(m.gripper_toggle_button):
            self.gripper.toggle()
        if m.engage_hold:
            self.engaged = m.engage_button is not None and _get(now, m.engage_button) > 0
        elif down(m.engage_button):
            self.engaged = not self.engaged

        dz = m.deadzone
        forward = -apply_deadzone(_get(axes, m.stick_forward_axis), dz)
        left = -apply_deadzone(_get(axes, m.stick_left_axis), dz)
        up = -apply_deadzone(_get(axes, m.stick_up_axis), dz)
        yaw = -apply_deadzone(_get(axes, m.stick_yaw_axis), dz)
        if m.fine_hat is not None and 0 <= m.fine_hat < len(hats):
            hat_x, hat_y = hats[m.fine_hat]
            forward += m.hat_speed_fraction * hat_y
            left += -m.hat_speed_fraction * hat_x
        vx, vy = operator_to_base(forward, left, self.operator_yaw_rad)
        s = self.linear_speed_mps
        return TeleopCommand(twist=make_twist(vx * s, vy * s, up * s, wz=yaw * self.yaw_rate_rps),
                             gripper=self.gripper.take(), engaged=self.engaged,
                             success=down(m.success_button), failure=down(m.failure_button), reset=down(m.reset_button))


GAMEPAD_HELP = """gamepad teleop (robot base frame: x forward, y left, z up; default Xbox layout):
  left stick               move x / y (up = +x, left = +y)
  right stick              up / down = +z / -z, left / right = yaw counter-clockwise / clockwise
  D-pad                    slow x / y
  right / left trigger     close / open the gripper;  X  toggles it
  LB                       take over / hand back to the policy
  A / B / Y                success / failure / reset: end the episode
  Ctrl-C                   quit"""


class GamepadTeleop(DeviceTeleop):
    """Teleop from a gamepad via pygame (SDL joystick API); see :class:`GamepadMapper` for the map.

    pygame is imported on construction (``SDL_VIDEODRIVER=dummy`` unless set: no window opens;
    joystick events are allowed while no window has focus). Each :meth:`read` pumps SDL's
    events, so call it from one thread (the main thread on macOS).

    Args:
        index: which joystick, ``0..pygame.joystick.get_count() - 1``.
        mapping: axes / buttons layout, :class:`GamepadMapping` (Xbox on Linux by default).
        linear_speed_mps: TCP speed at full stick deflection, m/s.
        yaw_rate_rps: yaw rate at full stick deflection, rad/s.
        operator_yaw_rad: heading of the operator's "forward" in the base frame, radians.

    Raises:
        DeviceUnavailableError: pygame is not installed, or no gamepad with that index is
            connected (message says what to install / plug in).
        ConfigError: bad speeds or deadzone.
    """

    help_text = GAMEPAD_HELP

    def __init__(self, index: int = 0, *, mapping: GamepadMapping | None = None, linear_speed_mps: float = 0.1,
                 yaw_rate_rps: float = 0.5, operator_yaw_rad: float = 0.0) -> None:
        self._joystick = None
        self.mapper = GamepadMapper(mapping, linear_speed_mps, yaw_rate_rps, operator_yaw_rad)
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame's import banner; drivers never print
        try:
            import pygame
        except ImportError as e:
            raise DeviceUnavailableError("gamepad teleop needs pygame: pip install 'pygame>=2.5' "
                                         "(or pip install 'robot_rl[teleop]')") from e
        self._pygame = pygame
        try:
            pygame.display.init()  # SDL's event queue lives in the video subsystem (dummy driver: no window)
            pygame.joystick.init()
            count = pygame.joystick.get_count()
        except pygame.error as e:
            raise DeviceUnavailableError(f"gamepad teleop: SDL could not start ({e}); check SDL_VIDEODRIVER") from e
        if not 0 <= index < count:
            raise DeviceUnavailableError(
                f"gamepad teleop: no gamepad {index} (pygame sees {count} joystick(s)). Plug one in (USB or paired "
                "Bluetooth); on Linux check that your user can read /dev/input/event* (group 'input')")
        joystick = pygame.joystick.Joystick(index)
        joystick.init()
        self._joystick = joystick
        self._instance_id = joystick.get_instance_id()
        self.name = joystick.get_name()

    def read(self) -> TeleopCommand:
        """Pump SDL's events and map the pad's current state (never blocks).

        Raises:
            DeviceUnavailableError: the gamepad was unplugged, or the teleop was closed.
        """
        if self._joystick is None:
            raise DeviceUnavailableError("gamepad teleop is closed; create a new one")
        pg = self._pygame
        pressed = []
        for event in pg.event.get():
            if getattr(event, "instance_id", None) != self._instance_id:
                continue
            if event.type == pg.JOYBUTTONDOWN:
                pressed.append(event.button)
            elif event.type == pg.JOYDEVICEREMOVED:
                self.close()
                raise DeviceUnavailableError(f"gamepad teleop: {self.name!r} was disconnected; plug it back in")
        j = self._joystick
        axes = [j.get_axis(i) for i in range(j.get_numaxes())]
        buttons = [j.get_button(i) for i in range(j.get_numbuttons())]
        hats = [j.get_hat(i) for i in range(j.get_numhats())]
        return self.mapper.command(axes, buttons, hats, pressed)

    def sync_gripper(self, opening: float) -> None:
        """Tell the teleop the gripper's current opening in [0, 1] (the next toggle flips from it)."""
        self.mapper.gripper.sync(opening)

    def close(self) -> None:
        """Release the joystick. Idempotent."""
        if self._joystick is not None:
            self._joystick.quit()
            self._joystick = None
