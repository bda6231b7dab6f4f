"""3Dconnexion SpaceMouse teleop through pyspacemouse (HID), as in HIL-SERL.

:class:`SpaceMouseMapper` is the pure part: it turns timestamped device states
(:class:`SpaceMouseSample`) into a :class:`TeleopCommand` and can be tested with recorded states
without a device. :class:`SpaceMouseTeleop` feeds it from a background thread that drains the
device's HID reports (the puck sends ~100 reports/s; reading one per control step would lag).

Axis convention of :class:`SpaceMouseSample` (pyspacemouse's ``AxisConvention.ROS``, REP 103
seen from the operator): x = puck pushed away from the operator, y = pushed left, z = pulled up;
roll, pitch, yaw = tilted / twisted about those axes, right-handed (yaw > 0: twisted
counter-clockwise seen from above). Each in about [-1, 1] of full deflection.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from robot_rl.drivers.teleop._common import (DeviceTeleop, GripperToggle, apply_deadzone, make_twist,
                                             operator_to_base)
from robot_rl.errors import ConfigError, DeviceUnavailableError
from robot_rl.interfaces import TeleopCommand


class SpaceMouseSample(NamedTuple):
    """One SpaceMouse state in the operator's REP 103 frame (see the module docstring).

    Attributes:
        x, y, z: translations of the puck, fraction of full deflection (about [-1, 1]).
        roll, pitch, yaw: rotations of the puck about x, y, z, fraction of full deflection.
        buttons: (n_buttons,) 0/1; on two-button models 0 is the left button, 1 the right one.
    """

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    buttons: tuple[int, ...] = ()

    @classmethod
    def from_legacy(cls, state: Any) -> SpaceMouseSample:
        """Convert a pyspacemouse 1.x state (its LEGACY convention: x right, y away from the
        operator, z up, yaw clockwise) into this convention."""
        return cls(x=float(state.y), y=-float(state.x), z=float(state.z), roll=float(state.roll),
                   pitch=float(state.pitch), yaw=-float(state.yaw), buttons=tuple(int(b) for b in state.buttons))


@dataclass(frozen=True)
class SpaceMouseMapping:
    """Deadzone and button roles of the SpaceMouse teleop."""

    deadzone: float = 0.1
    """deflections below this fraction of full scale read 0 (the puck rarely rests at exactly 0)."""
    gripper_button: int | None = 0
    """left button: toggles the gripper open <-> closed."""
    success_button: int | None = 1
    """right button: success, ends the episode."""
    failure_button: int | None = None
    """failure button (models with more than two buttons); None: unused."""
    reset_button: int | None = None
    """reset button (models with more than two buttons); None: unused."""
    use_roll_pitch: bool = False
    """pass tilts on as roll / pitch rates (RobotEnv ignores them); False zeroes them, so that an
    unintended tilt neither moves the arm nor, by itself, counts as an intervention."""


class SpaceMouseMapper:
    """Pure mapping from timestamped SpaceMouse states to :class:`TeleopCommand`.

    Twist, robot base frame (REP 103), with ``operator_yaw_rad = 0`` (the operator behind the
    robot, looking along base +x): puck away from the operator -> +x, left -> +y, up -> +z,
    twisted counter-clockwise -> +yaw; each deadzone-corrected deflection times
    ``linear_speed_mps`` (m/s) or ``yaw_rate_rps`` (rad/s; roll and pitch on the same scale).

    ``engaged`` (HIL-SERL: touching the SpaceMouse is the intervention) becomes True as soon as
    any used axis leaves the deadzone or a button is pressed, and stays True until
    ``release_after_s`` after the last such state. Buttons act on their press (rising edge):
    ``gripper`` is the new opening in the one command after a press of the gripper button, else
    None; ``success`` / ``failure`` / ``reset`` are True in the one command after their press.

    Args:
        mapping: deadzone and button roles, :class:`SpaceMouseMapping`.
        linear_speed_mps: TCP speed at full deflection, m/s.
        yaw_rate_rps: yaw rate at full twist, rad/s.
        release_after_s: ``engaged`` stays True this long after the puck returns to rest, seconds.
        operator_yaw_rad: heading of the operator's "away" direction in the base frame, radians
            (0: base +x; ``pi``: the operator faces the robot from across the table).

    Raises:
        ConfigError: a speed is not positive, ``release_after_s`` is negative or the deadzone is
            outside [0, 1).
    """

    def __init__(self, mapping: SpaceMouseMapping | None = None, linear_speed_mps: float = 0.1,
                 yaw_rate_rps: float = 0.5, release_after_s: float = 0.5, operator_yaw_rad: float = 0.0) -> None:
        self.mapping = mapping if mapping is not None else SpaceMouseMapping()
        if not (linear_speed_mps > 0 and yaw_rate_rps > 0 and release_after_s >= 0):
            raise ConfigError(f"SpaceMouse teleop: speeds must be > 0 and release_after_s >= 0, got "
                              f"{linear_speed_mps} m/s, {yaw_rate_rps} rad/s, {release_after_s} s")
        if not 0.0 <= self.mapping.deadzone < 1.0:
            raise ConfigError(f"SpaceMouse teleop: deadzone must be in [0, 1), got {self.mapping.deadzone}")
        self.linear_speed_mps, self.yaw_rate_rps = linear_speed_mps, yaw_rate_rps
        self.release_after_s, self.operator_yaw_rad = release_after_s, operator_yaw_rad
        self.gripper = GripperToggle()
        self._sample = SpaceMouseSample()
        self._last_active_s: float | None = None
        self._success = self._failure = self._reset = False

    def _deflection(self, s: SpaceMouseSample) -> tuple[float, ...]:
        dz = self.mapping.deadzone
        rp = (s.roll, s.pitch) if self.mapping.use_roll_pitch else (0.0, 0.0)
        return tuple(apply_deadzone(v, dz) for v in (s.x, s.y, s.z, *rp, s.yaw))

    def update(self, sample: SpaceMouseSample, now_s: float) -> None:
        """Take one device state read at ``now_s`` (seconds); detects button presses."""
        m = self.mapping
        prev = self._sample.buttons
        pressed = {i for i, b in enumerate(sample.buttons) if b and not (i < len(prev) and prev[i])}
        self._sample = sample
        if m.gripper_button in pressed:
            self.gripper.toggle()
        self._success |= m.success_button in pressed
        self._failure |= m.failure_button in pressed
        self._reset |= m.reset_button in pressed
        if any(self._deflection(sample)) or any(sample.buttons):
            self._last_active_s = now_s

    def command(self, now_s: float) -> TeleopCommand:
        """The command at ``now_s`` (seconds, clock of :meth:`update`); consumes button events."""
        x, y, z, roll, pitch, yaw = self._deflection(self._sample)
        vx, vy = operator_to_base(x, y, self.operator_yaw_rad)
        wx, wy = operator_to_base(roll, pitch, self.operator_yaw_rad)
        s, w = self.linear_speed_mps, self.yaw_rate_rps
        engaged = self._last_active_s is not None and now_s - self._last_active_s <= self.release_after_s
        cmd = TeleopCommand(twist=make_twist(vx * s, vy * s, z * s, wx * w, wy * w, yaw * w),
                            gripper=self.gripper.take(), engaged=engaged,
                            success=self._success, failure=self._failure, reset=self._reset)
        self._success = self._failure = self._reset = False
        return cmd


SPACEMOUSE_HELP = """SpaceMouse teleop (robot base frame: x forward, y left, z up; operator behind the robot):
  push the puck away / left / pull up    move +x / +y / +z (the opposite way for -)
  twist counter-clockwise / clockwise    yaw + / -
  left button                            toggle the gripper (open <-> closed)
  right button                           success: end the episode
  touching the puck                      takes over from the policy (until {release_after_s:g} s after letting go)
  Ctrl-C                                 quit"""


class SpaceMouseTeleop(DeviceTeleop):
    """Teleop from a 3Dconnexion SpaceMouse via pyspacemouse; see :class:`SpaceMouseMapper`.

    Opens the first supported SpaceMouse (pyspacemouse's device list) in the ROS axis convention
    (pyspacemouse >= 2; 1.x states are converted from its legacy convention) and drains its HID
    reports in a daemon thread; :meth:`read` never blocks.

    Args:
        mapping: deadzone and button roles, :class:`SpaceMouseMapping`.
        linear_speed_mps: TCP speed at full deflection, m/s.
        yaw_rate_rps: yaw rate at full twist, rad/s.
        release_after_s: ``engaged`` stays True this long after the puck returns to rest, seconds.
        operator_yaw_rad: heading of the operator's "away" direction in the base frame, radians.
        device: pyspacemouse device name (e.g. ``"SpaceMouse Compact"``), None for the first found.
        poll_interval_s: pause of the reader thread when no report is waiting, seconds.

    Raises:
        DeviceUnavailableError: pyspacemouse or the HID library is not installed, or no
            SpaceMouse is connected / readable (the message says what to install or plug in).
        ConfigError: bad speeds, deadzone or release time.
    """

    def __init__(self, *, mapping: SpaceMouseMapping | None = None, linear_speed_mps: float = 0.1,
                 yaw_rate_rps: float = 0.5, release_after_s: float = 0.5, operator_yaw_rad: float = 0.0,
                 device: str | None = None, poll_interval_s: float = 0.002) -> None:
        self._device = None
        self.mapper = SpaceMouseMapper(mapping, linear_speed_mps, yaw_rate_rps, release_after_s, operator_yaw_rad)
        self.help_text = SPACEMOUSE_HELP.format(release_after_s=release_after_s)
        hint = ("pip install 'pyspacemouse>=1.1' (or 'robot_rl[teleop]') and the HID library "
                "(Debian/Ubuntu: apt-get install libhidapi-hidraw0; macOS: brew install hidapi)")
        try:
            import pyspacemouse
        except Exception as e:  # ImportError, or OSError when easyhid cannot load libhidapi
            raise DeviceUnavailableError(f"SpaceMouse teleop cannot load pyspacemouse ({e}): {hint}") from e
        convention = getattr(pyspacemouse, "AxisConvention", None)
        kwargs: dict[str, Any] = {"device": device}
        if convention is not None:
            kwargs["axis_convention"] = convention.ROS
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pyspacemouse prints "... found"; drivers never print
                opened = pyspacemouse.open(**kwargs)
        except Exception as e:  # RuntimeError "No connected or supported devices found.", HID errors
            raise DeviceUnavailableError(
                f"no SpaceMouse found ({e}). Plug one in (wireless: its USB receiver); on Linux give your user "
                f"access to /dev/hidraw* (a udev rule for vendor 256f/046d); if the HID library is missing: {hint}"
            ) from e
        if not opened:  # pyspacemouse 1.x returns None / False when nothing is connected
            raise DeviceUnavailableError("no SpaceMouse found. Plug one in (wireless: its USB receiver); on Linux "
                                         "give your user access to /dev/hidraw* (a udev rule for vendor 256f/046d)")
        self._device = opened
        self._legacy = convention is None
        self._poll_interval_s = poll_interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: str | None = None
        self._thread = threading.Thread(target=self._read_loop, name="spacemouse-teleop", daemon=True)
        self._thread.start()

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                state = self._device.read()
            except Exception as e:  # noqa: BLE001 - HID errors when the device is unplugged
                self._error = f"reading the SpaceMouse failed ({e}); is it still plugged in?"
                return
            sample = (SpaceMouseSample.from_legacy(state) if self._legacy else
                      SpaceMouseSample(state.x, state.y, state.z, state.roll, state.pitch, state.yaw,
                                       tuple(int(b) for b in state.buttons)))
            with self._lock:
                self.mapper.update(sample, time.monotonic())
            self._stop.wait(self._poll_interval_s)

    def read(self) -> TeleopCommand:
        """The newest command (never blocks).

        Raises:
            DeviceUnavailableError: reading the device failed, or the teleop was closed.
        """
        if self._device is None:
            raise DeviceUnavailableError("SpaceMouse teleop is closed; create a new one")
        if self._error is not None:
            raise DeviceUnavailableError(self._error)
        with self._lock:
            return self.mapper.command(time.monotonic())

    def sync_gripper(self, opening: float) -> None:
        """Tell the teleop the gripper's current opening in [0, 1] (the next toggle flips from it)."""
        with self._lock:
            self.mapper.gripper.sync(opening)

    def close(self) -> None:
        """Stop the reader thread and close the device. Idempotent."""
        if self._device is None:
            return
        self._stop.set()
        self._thread.join(timeout=1.0)
        device, self._device = self._device, None
        with contextlib.suppress(Exception):
            device.close()
