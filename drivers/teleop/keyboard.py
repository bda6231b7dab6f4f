"""Keyboard teleop through a terminal: works locally and over SSH, needs no X server or root.

The terminal is switched to cbreak mode (no echo, no line buffering; ``ISIG`` stays on, so
Ctrl-C still interrupts) and read with ``termios`` + ``select`` by a background thread that
timestamps every key; the settings are restored on :meth:`KeyboardTeleop.close`, on leaving a
``with`` block (also through an exception) and at interpreter exit.

Terminals send no key-up events, only repeated key-down bytes while a key is held (after an
initial delay of 250-660 ms, then every 30-50 ms). A motion key therefore counts as held for
``hold_s`` after its last press, long enough to bridge the initial delay; once the key
auto-repeats (presses less than ``repeat_interval_s`` apart) it counts as held for only
``repeat_hold_s`` after the last repeat, so the arm stops soon after the key is let go. The
trade-off: a single tap moves the arm for ``hold_s`` (lower it for finer taps; keep it above
your terminal's initial repeat delay, or a held key stutters once).
"""

from __future__ import annotations

import atexit
import os
import select
import termios
import threading
import time
from dataclasses import dataclass

from robot_rl.drivers.teleop._common import DeviceTeleop, GripperToggle, make_twist, operator_to_base
from robot_rl.errors import ConfigError, DeviceUnavailableError
from robot_rl.interfaces import TeleopCommand

#: Motion keys: key -> (axis, sign); axes 0 x, 1 y, 2 z (base frame), 3 yaw about base z.
MOTION_KEYS: dict[str, tuple[int, int]] = {
    "w": (0, +1), "s": (0, -1),
    "a": (1, +1), "d": (1, -1),
    "r": (2, +1), "f": (2, -1),
    "q": (3, +1), "e": (3, -1),
}
#: Arrow keys (final byte of ``ESC [ X`` or ``ESC O X``) as aliases of motion keys.
ARROW_KEYS: dict[str, str] = {"A": "w", "B": "s", "C": "d", "D": "a"}
ESC = "\x1b"
GRIPPER_KEYS = frozenset(" ")
ENGAGE_KEYS = frozenset("t\t")
SUCCESS_KEYS = frozenset("\r\ny")
FAILURE_KEYS = frozenset("n\x7f\x08")
RESET_KEYS = frozenset((ESC, "x"))

KEY_HELP = """keyboard teleop (robot base frame: x forward, y left, z up):
  w / s  or Up / Down      move +x / -x
  a / d  or Left / Right   move +y / -y
  r / f                    move up / down (+z / -z)
  q / e                    yaw counter-clockwise / clockwise (seen from above)
  space                    toggle the gripper (open <-> closed)
  t  or Tab                take over / hand back to the policy
  Enter  or y              success: end the episode
  n  or Backspace          failure: end the episode
  Esc  or x                reset: end the episode
  Ctrl-C                   quit"""


@dataclass
class _Held:
    sign: int
    last_press_s: float
    hold_s: float


class KeyboardMapper:
    """Pure part of the keyboard teleop: terminal bytes with arrival times -> :class:`TeleopCommand`.

    No terminal, thread or clock inside: :meth:`feed` takes bytes as the terminal sent them and
    the time they arrived, :meth:`command` the time of the reading. Escape sequences are parsed
    (CSI ``ESC [ ... X`` and SS3 ``ESC O X``; arrows map to w/a/s/d, others are ignored); a lone
    ``ESC`` is the Esc key once ``esc_timeout_s`` passed without the rest of a sequence.

    Args:
        linear_speed_mps: TCP speed of a held motion key, m/s.
        yaw_rate_rps: yaw rate of a held q / e key, rad/s.
        hold_s: a motion key counts as held this long after a first press, seconds.
        repeat_hold_s: ... and this long after an auto-repeated press, seconds.
        repeat_interval_s: presses of one key closer than this are auto-repeats, seconds.
        esc_timeout_s: a lone ESC byte becomes the Esc key after this long, seconds.
        operator_yaw_rad: heading of the operator's "forward" (w) in the base frame, radians
            (0: w moves base +x; ``pi``: the operator faces the robot and w moves base -x).

    Raises:
        ConfigError: a speed or duration is not positive.
    """

    def __init__(self, linear_speed_mps: float = 0.1, yaw_rate_rps: float = 0.5, hold_s: float = 0.5,
                 repeat_hold_s: float = 0.2, repeat_interval_s: float = 0.1, esc_timeout_s: float = 0.05,
                 operator_yaw_rad: float = 0.0) -> None:
        for name, value in (("linear_speed_mps", linear_speed_mps), ("yaw_rate_rps", yaw_rate_rps), ("hold_s", hold_s),
                            ("repeat_hold_s", repeat_hold_s), ("repeat_interval_s", repeat_interval_s),
                            ("esc_timeout_s", esc_timeout_s)):
            if not value > 0:
                raise ConfigError(f"keyboard teleop: {name} must be > 0, got {value}")
        self.linear_speed_mps, self.yaw_rate_rps = float(linear_speed_mps), float(yaw_rate_rps)
        self.hold_s, self.repeat_hold_s, self.repeat_interval_s = hold_s, repeat_hold_s, repeat_interval_s
        self.esc_timeout_s, self.operator_yaw_rad = esc_timeout_s, operator_yaw_rad
        self.engaged = False
        self.gripper = GripperToggle()
        self._held: list[_Held | None] = [None, None, None, None]
        self._buffer = b""
        self._buffer_since_s = 0.0
        self._success = self._failure = self._reset = False

    def feed(self, data: bytes, now_s: float) -> None:
        """Parse ``data`` (bytes from the terminal) that arrived at ``now_s`` (seconds)."""
        if not self._buffer:
            self._buffer_since_s = now_s
        self._buffer += data
        self._parse(now_s, flush=False)

    def command(self, now_s: float) -> TeleopCommand:
        """The command at ``now_s`` (seconds, same clock as :meth:`feed`); consumes button events."""
        if self._buffer and now_s - self._buffer_since_s >= self.esc_timeout_s:
            self._parse(now_s, flush=True)
        axes = [h.sign if h is not None and now_s - h.last_press_s <= h.hold_s else 0 for h in self._held]
        vx, vy = operator_to_base(axes[0], axes[1], self.operator_yaw_rad)
        s = self.linear_speed_mps
        cmd = TeleopCommand(twist=make_twist(vx * s, vy * s, axes[2] * s, wz=axes[3] * self.yaw_rate_rps),
                            gripper=self.gripper.take(), engaged=self.engaged,
                            success=self._success, failure=self._failure, reset=self._reset)
        self._success = self._failure = self._reset = False
        return cmd

    def _parse(self, now_s: float, flush: bool) -> None:
        buf, i = self._buffer, 0
        while i < len(buf):
            b = buf[i]
            if b == 0x1B:
                # ESC [ params final (CSI) or ESC O final (SS3); an incomplete one waits for more bytes
                end = None
                if i + 1 < len(buf) and buf[i + 1] == ord("["):
                    j = i + 2
                    while j < len(buf) and 0x20 <= buf[j] <= 0x3F:
                        j += 1
                    end = j if j < len(buf) else None
                elif i + 1 < len(buf) and buf[i + 1] == ord("O"):
                    end = i + 2 if i + 2 < len(buf) else None
                elif i + 1 < len(buf):  # ESC followed by an ordinary key: the Esc key, then that key
                    self._key(ESC, now_s)
                    i += 1
                    continue
                if end is None:
                    if not flush:
                        break
                    self._key(ESC, now_s)  # timed out: it was the Esc key
                    i += 1
                    continue
                final = chr(buf[end])
                if final in ARROW_KEYS:
                    self._key(ARROW_KEYS[final], now_s)
                i = end + 1
                continue
            if b < 0x80:  # multi-byte UTF-8 keys are ignored
                self._key(chr(b).lower(), now_s)
            i += 1
        self._buffer = buf[i:]
        if self._buffer:
            self._buffer_since_s = now_s if i else self._buffer_since_s

    def _key(self, key: str, now_s: float) -> None:
        if key in MOTION_KEYS:
            axis, sign = MOTION_KEYS[key]
            held = self._held[axis]
            repeating = held is not None and held.sign == sign and now_s - held.last_press_s < self.repeat_interval_s
            self._held[axis] = _Held(sign, now_s, self.repeat_hold_s if repeating else self.hold_s)
        elif key in GRIPPER_KEYS:
            self.gripper.toggle()
        elif key in ENGAGE_KEYS:
            self.engaged = not self.engaged
        elif key in SUCCESS_KEYS:
            self._success = True
        elif key in FAILURE_KEYS:
            self._failure = True
        elif key in RESET_KEYS:
            self._reset = True


class KeyboardTeleop(DeviceTeleop):
    """Teleop from the keys of a terminal, also over SSH; see :data:`KEY_HELP` for the key map.

    Key map (robot base frame, REP 103: x forward, y left, z up)::

        w / s  (Up / Down)      +x / -x at linear_speed_mps
        a / d  (Left / Right)   +y / -y
        r / f                   +z / -z
        q / e                   yaw +/- (counter-clockwise / clockwise from above) at yaw_rate_rps
        space                   toggle the gripper (open <-> closed)
        t / Tab                 take over / hand back: toggles ``engaged`` (starts False)
        Enter / y               success       n / Backspace   failure       Esc / x   reset

    Motion keys of different axes combine; within an axis the newest key wins. ``success``,
    ``failure`` and ``reset`` are events, True in exactly one :meth:`read` after the key press;
    ``gripper`` is the new opening (1 open, 0 closed) in the one :meth:`read` after a toggle and
    None otherwise (leave it unchanged). Ctrl-C keeps raising ``KeyboardInterrupt``.

    Args:
        tty: the terminal to read: None for the process's controlling terminal ``/dev/tty``
            (works when stdin is redirected), a device path, or an open file descriptor (not
            closed by :meth:`close`; a pseudo-terminal's slave in tests).
        linear_speed_mps: TCP speed of a held motion key, m/s.
        yaw_rate_rps: yaw rate of a held q / e key, rad/s.
        hold_s: a motion key counts as held this long after a first press, seconds (keep it
            above the terminal's initial key-repeat delay).
        repeat_hold_s: ... and this long after an auto-repeated press, seconds (keep it above
            the repeat interval plus network jitter).
        operator_yaw_rad: heading of the operator's "forward" in the base frame, radians.

    Raises:
        DeviceUnavailableError: no terminal (no controlling terminal, or not a tty), or the
            process runs in the background of its terminal.
        ConfigError: a speed or duration is not positive.
    """

    help_text = KEY_HELP

    def __init__(self, tty: str | int | None = None, *, linear_speed_mps: float = 0.1, yaw_rate_rps: float = 0.5,
                 hold_s: float = 0.5, repeat_hold_s: float = 0.2, operator_yaw_rad: float = 0.0) -> None:
        self._closed = True
        self.mapper = KeyboardMapper(linear_speed_mps=linear_speed_mps, yaw_rate_rps=yaw_rate_rps, hold_s=hold_s,
                                     repeat_hold_s=repeat_hold_s, operator_yaw_rad=operator_yaw_rad)
        self._own_fd = not isinstance(tty, int)
        path = "/dev/tty" if tty is None else tty
        if self._own_fd:
            try:
                fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            except OSError as e:
                raise DeviceUnavailableError(
                    f"keyboard teleop cannot open the terminal {path} ({e.strerror}): run it from an interactive "
                    "terminal (over SSH use `ssh -t`), or choose --teleop gamepad / spacemouse") from e
        else:
            fd = int(tty)
        if not os.isatty(fd):
            if self._own_fd:
                os.close(fd)
            raise DeviceUnavailableError(f"keyboard teleop needs a terminal, but {path} is not a tty: run it from an "
                                         "interactive terminal (over SSH use `ssh -t`)")
        if tty is None:
            try:
                foreground = os.tcgetpgrp(fd) == os.getpgrp()
            except OSError:
                foreground = True
            if not foreground:
                os.close(fd)
                raise DeviceUnavailableError("keyboard teleop runs in the background of its terminal and cannot read "
                                             "keys: run it in the foreground (no trailing '&'; `fg` to resume)")
        self._fd = fd
        try:
            self._saved = termios.tcgetattr(fd)
            mode = termios.tcgetattr(fd)
            mode[3] = (mode[3] & ~(termios.ECHO | termios.ICANON)) | termios.ISIG  # lflag: cbreak, signals stay on
            mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
            termios.tcsetattr(fd, termios.TCSAFLUSH, mode)  # TCSAFLUSH drops keys typed before we listened
        except termios.error as e:
            if self._own_fd:
                os.close(fd)
            raise DeviceUnavailableError(f"keyboard teleop cannot set up the terminal {path}: {e}") from e
        self._closed = False
        atexit.register(self.close)
        self._lock = threading.Lock()
        self._error: str | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._read_loop, name="keyboard-teleop", daemon=True)
        self._thread.start()

    def _read_loop(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = os.read(self._fd, 1024)
            except OSError as e:  # EIO: the terminal hung up
                self._error = f"the terminal was closed ({e.strerror})"
                return
            if not data:
                self._error = "the terminal was closed (end of file)"
                return
            with self._lock:
                self.mapper.feed(data, time.monotonic())

    def read(self) -> TeleopCommand:
        """The newest command (never blocks); see the class docstring.

        Raises:
            DeviceUnavailableError: the terminal hung up, or the teleop was closed.
        """
        if self._closed:
            raise DeviceUnavailableError("keyboard teleop is closed; create a new one")
        if self._error is not None:
            raise DeviceUnavailableError(f"keyboard teleop: {self._error}")
        with self._lock:
            return self.mapper.command(time.monotonic())

    def sync_gripper(self, opening: float) -> None:
        """Tell the teleop the gripper's current opening in [0, 1] (the next space flips from it)."""
        with self._lock:
            self.mapper.gripper.sync(opening)

    def close(self) -> None:
        """Stop reading and restore the terminal's settings. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=1.0)
        try:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        except termios.error:
            pass  # the terminal is gone: nothing to restore
        for fd in (self._wake_r, self._wake_w, *([self._fd] if self._own_fd else [])):
            os.close(fd)
