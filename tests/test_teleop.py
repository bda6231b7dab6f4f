"""Teleop backends and human demo recording.

This machine has no gamepad, SpaceMouse, /dev/input or hidraw devices, so the gamepad and
SpaceMouse backends are tested above the device layer: their pure mappers are fed synthetic /
recorded device states (and, for the SpaceMouse, raw HID reports decoded by pyspacemouse's own
parser), and the device constructors are checked to fail fast with DeviceUnavailableError. The
keyboard backend is tested for real, through pseudo-terminals, up to a full `robot-rl
record-demos --teleop keyboard` run whose controlling terminal is a pty.
"""

from __future__ import annotations

import os
import subprocess
import sys
import termios
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from conftest import PtyProcess
from robot_rl.cli import main as cli_main
from robot_rl.demos import load_episode
from robot_rl.drivers.teleop import make_teleop, register_teleop, teleop_names
from robot_rl.drivers.teleop._common import GripperToggle, apply_deadzone
from robot_rl.drivers.teleop.gamepad import GamepadMapper, GamepadMapping
from robot_rl.drivers.teleop.keyboard import KeyboardMapper, KeyboardTeleop
from robot_rl.drivers.teleop.spacemouse import SpaceMouseMapper, SpaceMouseMapping, SpaceMouseSample
from robot_rl.errors import ConfigError, DeviceUnavailableError
from robot_rl.interfaces import Teleop, TeleopCommand

REPO = Path(__file__).resolve().parents[1]
V = 0.2  # linear speed used in the mapper tests, m/s
W = 0.8  # yaw rate used in the mapper tests, rad/s


# ---------------------------------------------------------------------------------------- registry
def test_registry_names_unknown_and_lazy_imports():
    assert teleop_names() == ["gamepad", "keyboard", "ros", "scripted", "spacemouse"]
    with pytest.raises(ConfigError, match="unknown teleop 'nope'; choose one of: gamepad, keyboard, ros, scripted, spacemouse"):
        make_teleop("nope")
    # importing the package (and the keyboard backend, and the recorder) imports no device SDK and no ROS 2
    code = ("import sys, robot_rl.drivers.teleop, robot_rl.drivers.teleop.keyboard, robot_rl.drivers.teleop.gamepad, "
            "robot_rl.drivers.teleop.spacemouse, robot_rl.record; "
            "print(sorted(m for m in ('pygame', 'pyspacemouse', 'easyhid', 'rclpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_register_teleop_adds_a_backend():
    class Still(Teleop):
        def __init__(self, linear_speed_mps: float) -> None:
            self.linear_speed_mps = linear_speed_mps

        def read(self) -> TeleopCommand:
            return TeleopCommand(twist=np.zeros(6))

    register_teleop("still_test", Still)
    try:
        assert "still_test" in teleop_names()
        t = make_teleop("still_test", linear_speed_mps=0.3)
        assert isinstance(t, Still) and t.linear_speed_mps == 0.3 and not t.read().twist.any()
    finally:
        from robot_rl.drivers.teleop import _REGISTRY

        del _REGISTRY["still_test"]


def test_scripted_teleop_is_registered_lazily():
    pytest.importorskip("robot_rl.sim.corrector", reason="the scripted corrector is not in this checkout")
    from robot_rl.envs import make_env

    env = make_env("robot_rl/PandaPickLift-v0")
    try:
        teleop = make_teleop("scripted", env=env)
        assert type(teleop).__name__ == "ScriptedCorrector"
        env.reset(seed=0)
        assert teleop.read().twist.shape == (6,)
        teleop.close()
    finally:
        env.close()


def test_docstring_examples_run():
    import doctest

    import robot_rl.drivers.teleop
    import robot_rl.drivers.teleop._common

    for module in (robot_rl.drivers.teleop, robot_rl.drivers.teleop._common):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_deadzone_and_gripper_toggle_helpers():
    assert apply_deadzone(0.1, 0.1) == 0.0 and apply_deadzone(-0.1, 0.1) == 0.0
    assert apply_deadzone(1.0, 0.1) == 1.0 and apply_deadzone(-1.0, 0.1) == -1.0
    assert apply_deadzone(0.55, 0.1) == pytest.approx(0.5)
    g = GripperToggle()
    assert g.take() is None
    g.toggle()
    assert (g.take(), g.take()) == (0.0, None)
    g.sync(0.9)  # actual gripper open: the next toggle closes it
    g.toggle()
    assert g.take() == 0.0


# ---------------------------------------------------------------------------------------- gamepad
def pad(lx=0.0, ly=0.0, lt=-1.0, rx=0.0, ry=0.0, rt=-1.0, pressed_buttons=()):
    """A snapshot of an Xbox pad in pygame's Linux layout: 6 axes, 11 buttons, 1 hat."""
    axes = [lx, ly, lt, rx, ry, rt]
    buttons = [1 if i in pressed_buttons else 0 for i in range(11)]
    return axes, buttons


def test_gamepad_axes_signs_scale_and_deadzone():
    m = GamepadMapper(GamepadMapping(), linear_speed_mps=V, yaw_rate_rps=W)
    rest = m.command(*pad(), [(0, 0)])
    assert not rest.twist.any() and rest.gripper is None and not (rest.engaged or rest.success or rest.failure or rest.reset)
    # pygame sticks: up and left are negative
    np.testing.assert_allclose(m.command(*pad(ly=-1.0), [(0, 0)]).twist, [V, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(m.command(*pad(lx=-1.0), [(0, 0)]).twist, [0, V, 0, 0, 0, 0])
    np.testing.assert_allclose(m.command(*pad(ry=-1.0), [(0, 0)]).twist, [0, 0, V, 0, 0, 0])
    np.testing.assert_allclose(m.command(*pad(rx=-1.0), [(0, 0)]).twist, [0, 0, 0, 0, 0, W])
    np.testing.assert_allclose(m.command(*pad(ly=1.0, lx=1.0, ry=1.0, rx=1.0), [(0, 0)]).twist, [-V, -V, -V, 0, 0, -W])
    # inside the 0.15 deadzone: nothing; beyond it, rescaled from the deadzone's edge
    assert not m.command(*pad(lx=0.14, ly=-0.14, rx=0.1, ry=0.12), [(0, 0)]).twist.any()
    half = 0.15 + 0.5 * 0.85
    np.testing.assert_allclose(m.command(*pad(ly=-half), [(0, 0)]).twist, [0.5 * V, 0, 0, 0, 0, 0])
    # D-pad: slow x / y; hat y is +1 up
    np.testing.assert_allclose(m.command(*pad(), [(0, 1)]).twist, [0.25 * V, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(m.command(*pad(), [(1, 0)]).twist, [0, -0.25 * V, 0, 0, 0, 0])
    # an operator facing the robot: stick up moves base -x
    facing = GamepadMapper(GamepadMapping(), linear_speed_mps=V, yaw_rate_rps=W, operator_yaw_rad=np.pi)
    np.testing.assert_allclose(facing.command(*pad(ly=-1.0), [(0, 0)]).twist, [-V, 0, 0, 0, 0, 0], atol=1e-12)


def test_gamepad_gripper_triggers_toggle_and_button_edges():
    m = GamepadMapper(GamepadMapping(), linear_speed_mps=V, yaw_rate_rps=W)
    # triggers read 0.0 until first touched (SDL): not pressed
    assert m.command(*pad(lt=0.0, rt=0.0)).gripper is None
    assert m.command(*pad(rt=1.0)).gripper == 0.0  # right trigger closes, once
    assert m.command(*pad(rt=1.0)).gripper is None
    assert m.command(*pad(rt=-1.0)).gripper is None
    assert m.command(*pad(lt=0.9)).gripper == 1.0  # left trigger opens
    assert m.command(*pad()).gripper is None
    assert m.command(*pad(pressed_buttons=[2])).gripper == 0.0  # X toggles
    assert m.command(*pad(pressed_buttons=[2])).gripper is None  # still held: no new event
    assert m.command(*pad()).gripper is None
    assert m.command(*pad(pressed_buttons=[2])).gripper == 1.0
    # A / B / Y: one event per press
    seq = [m.command(*pad(pressed_buttons=b)) for b in ([0], [0], [], [1], [3], [])]
    assert [c.success for c in seq] == [True, False, False, False, False, False]
    assert [c.failure for c in seq] == [False, False, False, True, False, False]
    assert [c.reset for c in seq] == [False, False, False, False, True, False]
    # a tap between two snapshots, seen only as a JOYBUTTONDOWN event, still counts
    assert m.command(*pad(), pressed=[0]).success
    # LB toggles engaged
    assert [m.command(*pad(pressed_buttons=b)).engaged for b in ([4], [4], [], [4], [])] == [True, True, True, False, False]
    hold = GamepadMapper(GamepadMapping(engage_hold=True), linear_speed_mps=V, yaw_rate_rps=W)
    assert [hold.command(*pad(pressed_buttons=b)).engaged for b in ([4], [4], [])] == [True, True, False]


# ---------------------------------------------------------------------------------------- SpaceMouse
def test_spacemouse_axes_deadzone_and_roll_pitch():
    m = SpaceMouseMapper(SpaceMouseMapping(), linear_speed_mps=V, yaw_rate_rps=W)
    m.update(SpaceMouseSample(x=0.08, y=-0.05, z=0.09, yaw=0.1, buttons=(0, 0)), 0.0)
    cmd = m.command(0.0)
    assert not cmd.twist.any() and not cmd.engaged  # all within the 0.1 deadzone
    for sample, twist in [(SpaceMouseSample(x=1.0), [V, 0, 0, 0, 0, 0]),  # pushed away from the operator: +x
                          (SpaceMouseSample(y=1.0), [0, V, 0, 0, 0, 0]),  # pushed left: +y
                          (SpaceMouseSample(z=-1.0), [0, 0, -V, 0, 0, 0]),  # pressed down: -z
                          (SpaceMouseSample(yaw=-1.0), [0, 0, 0, 0, 0, -W]),  # twisted clockwise: -yaw
                          (SpaceMouseSample(x=0.55), [0.5 * V, 0, 0, 0, 0, 0]),
                          (SpaceMouseSample(x=1.3), [V, 0, 0, 0, 0, 0]),  # beyond full scale: clipped
                          (SpaceMouseSample(roll=1.0, pitch=1.0), [0, 0, 0, 0, 0, 0])]:  # tilts ignored by default
        m.update(sample, 1.0)
        np.testing.assert_allclose(m.command(1.0).twist, twist, err_msg=str(sample))
    rp = SpaceMouseMapper(SpaceMouseMapping(use_roll_pitch=True), linear_speed_mps=V, yaw_rate_rps=W)
    rp.update(SpaceMouseSample(roll=1.0, pitch=-0.55), 0.0)
    np.testing.assert_allclose(rp.command(0.0).twist, [0, 0, 0, W, -0.5 * W, 0])


def test_spacemouse_engaged_follows_touch_with_release_delay():
    m = SpaceMouseMapper(SpaceMouseMapping(), linear_speed_mps=V, yaw_rate_rps=W, release_after_s=0.5)
    assert not m.command(0.0).engaged
    for t in np.arange(0.0, 0.31, 0.01):  # the puck is pushed for 0.3 s (reports every 10 ms)
        m.update(SpaceMouseSample(x=0.6), float(t))
    m.update(SpaceMouseSample(x=0.02), 0.31)  # back at rest (inside the deadzone)
    assert m.command(0.31).engaged and not m.command(0.31).twist.any()
    assert m.command(0.79).engaged
    assert not m.command(0.81).engaged
    m.update(SpaceMouseSample(yaw=0.5), 2.0)  # a twist alone is a touch too
    assert m.command(2.0).engaged


def test_spacemouse_buttons_toggle_gripper_and_mark_success_once():
    m = SpaceMouseMapper(SpaceMouseMapping(), linear_speed_mps=V, yaw_rate_rps=W, release_after_s=0.5)
    states = [(0, 0), (1, 0), (1, 0), (0, 0), (1, 0), (0, 0), (0, 1), (0, 1), (0, 0)]
    cmds = []
    for i, b in enumerate(states):
        m.update(SpaceMouseSample(buttons=b), i * 0.1)
        cmds.append(m.command(i * 0.1))
    assert [c.gripper for c in cmds] == [None, 0.0, None, None, 1.0, None, None, None, None]
    assert [c.success for c in cmds] == [False] * 6 + [True, False, False]
    assert cmds[1].engaged  # pressing a button is touching the device
    # a press and release between two reads still toggles once
    m.update(SpaceMouseSample(buttons=(1, 0)), 1.00)
    m.update(SpaceMouseSample(buttons=(0, 0)), 1.01)
    assert m.command(1.05).gripper == 0.0


def test_spacemouse_legacy_states_convert():
    Legacy = namedtuple("Legacy", "t x y z roll pitch yaw buttons")  # pyspacemouse 1.x's state
    s = SpaceMouseSample.from_legacy(Legacy(0.0, 0.3, 0.6, -0.2, 0.1, 0.4, 0.7, [1, 0]))
    assert s == SpaceMouseSample(x=0.6, y=-0.3, z=-0.2, roll=0.1, pitch=0.4, yaw=-0.7, buttons=(1, 0))


def test_spacemouse_raw_hid_reports_through_pyspacemouse_parser():
    """Raw SpaceMouse Compact HID reports, decoded by pyspacemouse's own parser in the ROS axis
    convention (what SpaceMouseTeleop opens), then mapped: checks which physical push is base +x."""
    psm = pytest.importorskip("pyspacemouse")
    if not hasattr(psm, "AxisConvention"):
        pytest.skip("pyspacemouse 1.x: no axis conventions (covered by the legacy conversion test)")
    info = psm.apply_axis_convention(psm.get_device_specs()["SpaceMouseCompact"], psm.AxisConvention.ROS)
    dev = psm.SpaceMouseDevice(info=info, device=None)

    def report(channel, a=0, b=0, c=0):  # HID report: channel, then three little-endian int16
        return bytes([channel]) + b"".join(int(v).to_bytes(2, "little", signed=True) for v in (a, b, c))

    m = SpaceMouseMapper(SpaceMouseMapping(), linear_speed_mps=V, yaw_rate_rps=W)

    def mapped(raw: bytes) -> np.ndarray:
        dev._process(raw)  # pyspacemouse's HID decoding (no device on this machine)
        st = dev._state
        m.update(SpaceMouseSample(st.x, st.y, st.z, st.roll, st.pitch, st.yaw, tuple(st.buttons)), 0.0)
        return m.command(0.0)

    # HID axes: +x right, +y towards the operator, +z down, Rz clockwise seen from above; full scale 350
    np.testing.assert_allclose(mapped(report(1, 0, -350, 0)).twist, [V, 0, 0, 0, 0, 0], atol=1e-9)  # away: +x
    np.testing.assert_allclose(mapped(report(1, -350, 0, 0)).twist, [0, V, 0, 0, 0, 0], atol=1e-9)  # left: +y
    np.testing.assert_allclose(mapped(report(1, 0, 0, -350)).twist, [0, 0, V, 0, 0, 0], atol=1e-9)  # up: +z
    mapped(report(1))
    np.testing.assert_allclose(mapped(report(2, 0, 0, 350)).twist, [0, 0, 0, 0, 0, -W], atol=1e-9)  # clockwise
    mapped(report(2))
    assert mapped(bytes([3, 0b01])).gripper == 0.0  # left button
    assert mapped(bytes([3, 0b10])).success  # right button


# ---------------------------------------------------------------------------------------- keyboard (pure)
def test_keyboard_hold_repeat_and_newest_key_per_axis():
    k = KeyboardMapper(linear_speed_mps=V, yaw_rate_rps=W, hold_s=0.5, repeat_hold_s=0.2, repeat_interval_s=0.1)
    k.feed(b"w", 0.0)
    np.testing.assert_allclose(k.command(0.0).twist, [V, 0, 0, 0, 0, 0])
    assert k.command(0.5).twist[0] == V  # a first press is held through the initial repeat delay
    assert k.command(0.51).twist[0] == 0.0
    for t in (1.0, 1.45, 1.48, 1.51):  # a press, then auto-repeat after 0.45 s, every 30 ms
        k.feed(b"w", t)
    assert k.command(1.71).twist[0] == V
    assert k.command(1.72).twist[0] == 0.0  # released: stops repeat_hold_s after the last repeat
    k.feed(b"w", 2.0)
    k.feed(b"s", 2.1)  # newest key of an axis wins
    assert k.command(2.1).twist[0] == -V
    k.feed(b"adr", 3.0)  # d after a on the same axis: -y; r: +z
    np.testing.assert_allclose(k.command(3.0).twist, [0, -V, V, 0, 0, 0])
    k.feed(b"q", 4.0)
    np.testing.assert_allclose(k.command(4.0).twist, [0, 0, 0, 0, 0, W])
    k.feed(b"E", 5.0)  # caps lock on
    np.testing.assert_allclose(k.command(5.0).twist, [0, 0, 0, 0, 0, -W])


def test_keyboard_escape_sequences_and_lone_esc():
    k = KeyboardMapper(linear_speed_mps=V, yaw_rate_rps=W, esc_timeout_s=0.05)
    cases = [(b"\x1b[A", [V, 0, 0]), (b"\x1b[B", [-V, 0, 0]), (b"\x1bOD", [0, V, 0]), (b"\x1b[1;5C", [0, -V, 0])]
    for i, (seq, xyz) in enumerate(cases):
        k.feed(seq, 10.0 * i)
        cmd = k.command(10.0 * i)
        np.testing.assert_allclose(cmd.twist[:3], xyz, err_msg=repr(seq))
        assert not cmd.reset
    k.feed(b"\x1b[3~", 100.0)  # Delete: ignored
    cmd = k.command(100.0)
    assert not cmd.twist.any() and not cmd.reset
    k.feed(b"\x1b", 200.0)  # a lone ESC: the Esc key once no sequence follows in time
    assert not k.command(200.01).reset
    assert k.command(200.06).reset and not k.command(200.07).reset
    k.feed(b"\x1b", 300.0)  # a sequence split across two reads is still an arrow, not Esc
    assert not k.command(300.01).reset
    k.feed(b"[B", 300.02)
    cmd = k.command(300.03)
    assert cmd.twist[0] == -V and not cmd.reset
    k.feed(b"\x1bw", 400.0)  # Esc followed by a key in one chunk: both
    cmd = k.command(400.0)
    assert cmd.reset and cmd.twist[0] == V


def test_keyboard_buttons_are_single_events():
    k = KeyboardMapper()
    for data, field in [(b"\r", "success"), (b"\n", "success"), (b"y", "success"), (b"n", "failure"),
                        (b"\x7f", "failure"), (b"x", "reset")]:
        k.feed(data, 0.0)
        assert getattr(k.command(0.0), field), data
        assert not getattr(k.command(0.0), field), data
    k.feed(b" ", 0.0)
    assert (k.command(0.0).gripper, k.command(0.0).gripper) == (0.0, None)
    k.feed(b" ", 0.0)
    assert k.command(0.0).gripper == 1.0
    k.feed(b"t", 0.0)
    assert k.command(0.0).engaged and k.command(1.0).engaged
    k.feed(b"\t", 2.0)
    assert not k.command(2.0).engaged


# ---------------------------------------------------------------------------------------- keyboard (pty)
def _lflag(fd: int) -> int:
    return termios.tcgetattr(fd)[3]


def _read_until(teleop, predicate, timeout_s: float = 2.0):
    """Poll ``teleop.read()`` until ``predicate(cmd)`` (the reader thread may lag on a loaded machine)."""
    end = time.monotonic() + timeout_s
    while True:
        cmd = teleop.read()
        if predicate(cmd) or time.monotonic() > end:
            return cmd
        time.sleep(0.005)


def test_keyboard_teleop_through_a_pseudo_terminal():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        with make_teleop("keyboard", tty=slave, linear_speed_mps=V, yaw_rate_rps=W, hold_s=0.3) as kb:
            assert isinstance(kb, KeyboardTeleop)
            lflag = _lflag(slave)
            assert not lflag & termios.ECHO and not lflag & termios.ICANON and lflag & termios.ISIG  # cbreak, Ctrl-C on
            t = time.perf_counter()
            assert not kb.read().twist.any()
            assert time.perf_counter() - t < 0.05  # never blocks
            os.write(master, b"w")
            np.testing.assert_allclose(_read_until(kb, lambda c: c.twist.any()).twist, [V, 0, 0, 0, 0, 0])
            os.write(master, b"\x1b[D r")  # left arrow = a (+y), space toggles the gripper, r: +z
            cmd = _read_until(kb, lambda c: c.gripper is not None)
            np.testing.assert_allclose(cmd.twist, [V, V, V, 0, 0, 0])
            assert cmd.gripper == 0.0
            t = time.monotonic()
            cmd = _read_until(kb, lambda c: not c.twist.any())
            assert not cmd.twist.any() and 0.2 < time.monotonic() - t < 1.0  # all released after hold_s
            os.write(master, b"\r")
            assert _read_until(kb, lambda c: c.success).success and not kb.read().success
            os.write(master, b"\x1b")
            assert _read_until(kb, lambda c: c.reset).reset
        assert termios.tcgetattr(slave) == before  # restored on close
        kb.close()  # idempotent
        with pytest.raises(DeviceUnavailableError, match="closed"):
            kb.read()
        # restored when the block raises, too
        with pytest.raises(RuntimeError, match="boom"):
            with KeyboardTeleop(slave):
                raise RuntimeError("boom")
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_keyboard_teleop_hang_up_and_no_terminal():
    master, slave = os.openpty()
    kb = KeyboardTeleop(slave)
    os.close(master)  # the terminal goes away (ssh connection dropped)
    end = time.monotonic() + 2.0
    with pytest.raises(DeviceUnavailableError, match="terminal was closed"):
        while time.monotonic() < end:
            kb.read()
            time.sleep(0.01)
    kb.close()
    os.close(slave)
    r, w = os.pipe()
    with pytest.raises(DeviceUnavailableError, match="not a tty"):
        KeyboardTeleop(r)
    os.close(r), os.close(w)
    with pytest.raises(DeviceUnavailableError, match="cannot open the terminal"):
        KeyboardTeleop("/nonexistent/tty")
    # a process without a controlling terminal (cron, CI, nohup): a clear error, not a hang
    code = ("from robot_rl.drivers.teleop import make_teleop\nfrom robot_rl.errors import DeviceUnavailableError\n"
            "try:\n    make_teleop('keyboard')\nexcept DeviceUnavailableError as e:\n    print('ERR', e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    assert out.stdout.startswith("ERR keyboard teleop cannot open the terminal /dev/tty"), out.stdout + out.stderr


# ---------------------------------------------------------------------------------------- missing devices
def test_missing_gamepad_fails_fast():
    pytest.importorskip("pygame")
    t = time.perf_counter()
    try:
        teleop = make_teleop("gamepad")
    except DeviceUnavailableError as e:
        assert "no gamepad 0" in str(e) and "Plug one in" in str(e)
    else:
        teleop.close()
        pytest.skip("a gamepad is connected to this machine")
    assert time.perf_counter() - t < 5.0


def test_missing_spacemouse_fails_fast():
    pytest.importorskip("pyspacemouse", reason="pyspacemouse (and libhidapi) not installable here")
    t = time.perf_counter()
    try:
        teleop = make_teleop("spacemouse")
    except DeviceUnavailableError as e:
        assert "no SpaceMouse found" in str(e) and "libhidapi-hidraw0" in str(e)
    else:
        teleop.close()
        pytest.skip("a SpaceMouse is connected to this machine")
    assert time.perf_counter() - t < 5.0


def test_record_demos_bad_teleop_exits_2_with_one_line(tmp_path, capsys):
    assert cli_main(["record-demos", "--teleop", "nope", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("robot-rl: error: unknown --teleop 'nope'; choose one of: gamepad, keyboard, ros, scripted, spacemouse")
    assert cli_main(["record-demos", "--teleop", "keyboard", "--action-noise", "0.1", "--out", str(tmp_path / "d")]) == 2
    assert "--action-noise applies to --teleop scripted only" in capsys.readouterr().err
    pytest.importorskip("pygame")
    assert cli_main(["record-demos", "--teleop", "gamepad", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no gamepad" in err
    assert not list((tmp_path / "d").glob("episode_*.npz"))


def test_record_demos_scripted_path_still_records(tmp_path):
    from robot_rl.record import RecordDemosConfig, record_demos

    paths = record_demos(RecordDemosConfig(num_episodes=1, out=tmp_path / "d"), progress=False)
    ep = load_episode(paths[0])
    assert ep.is_success and not ep.intervention.any() and ep.meta["source"] == "teleop:scripted"


# ---------------------------------------------------------------------------------------- end to end
def test_record_demos_keyboard_end_to_end_through_a_terminal(tmp_path):
    out = tmp_path / "demos"
    p = PtyProcess([sys.executable, "-m", "robot_rl.cli", "record-demos", "--teleop", "keyboard", "--env",
                    "robot_rl/PandaPickLift-v0", "--num-episodes", "1", "--keep-failures", "--out", str(out),
                    "--teleop-linear-speed-mps", "0.05"])  # 2 s of a held key: ~10 cm, inside the workspace
    try:
        p.wait_for("episode 1 (seed 0): go", timeout_s=25.0)
        lflag = _lflag(p.slave)
        assert not lflag & termios.ECHO and not lflag & termios.ICANON  # the recorder put the tty in cbreak
        p.hold_key(b"w", 2.0)
        os.write(p.master, b"n")  # failure: ends the episode, kept with --keep-failures
        p.wait_for("episode 1: failure")
        p.wait_for("episode 2 (seed 1): go")
        p.hold_key(b"a", 2.0)
        os.write(p.master, b"\x7f")  # Backspace: failure
        p.wait_for("episode 2: failure")
        p.wait_for("episode 3 (seed 2): go")
        os.write(p.master, b"\x03")  # Ctrl-C still interrupts (ISIG stays on)
        end = time.monotonic() + 15.0
        while p.proc.poll() is None and time.monotonic() < end:
            p.pump(0.05)
        assert p.proc.returncode == 130, p.output.decode(errors="replace")
        assert termios.tcgetattr(p.slave) == p.saved  # terminal settings restored on the way out
    finally:
        p.close()
    text = p.output.decode(errors="replace")
    assert "w / s  or Up / Down" in text and "Traceback" not in text
    files = sorted(out.glob("episode_*.npz"))
    assert [f.name for f in files] == ["episode_000000.npz", "episode_000001.npz"]
    for f, moved, still in [(files[0], 0, 1), (files[1], 1, 0)]:  # 'w' moves +x, 'a' moves +y
        ep = load_episode(f)
        ee = ep.observations["state"][:, :3]  # PROPRIO_LAYOUT: ee_position first, metres, base frame
        assert 0.04 < ee[-1, moved] - ee[0, moved] < 0.15, (f.name, ee[0], ee[-1])
        assert abs(ee[-1, still] - ee[0, still]) < 0.01, (f.name, ee[0], ee[-1])
        assert ep.intervention.all() and not ep.success.any()
        assert ep.truncated[-1] and not ep.terminated.any()
        # paced in real time at 10 Hz: ~2 s of keys gave ~20 steps, well short of the 50-step limit
        assert 10 <= len(ep) < 50, len(ep)
        assert ep.meta["source"] == "teleop:keyboard" and ep.meta["ended_by"] == "failure_button"
        assert ep.meta["success"] is False and ep.meta["control_hz"] == 10.0
        np.testing.assert_array_equal(ep.actions[:, 3], 1.0)  # gripper stayed open
