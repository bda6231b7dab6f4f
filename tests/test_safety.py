"""The arm command gate (robot_rl/ros/safety.py) in 6-DoF: orientation workspace (tilt of the tool
z axis from pointing down, yaw range), angular speed and yaw rate limits, holding the full pose.

Pure unit tests on the gate (no ROS): an "arm" that executes each command exactly, or lags
behind it, is driven with random and adversarial twists and poses; every command must satisfy
every limit. The arm node's end-to-end check is in tests/test_arm_node.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_rl.errors import ConfigError
from robot_rl.interfaces import ArmState, WorkspaceBox, tool_down_quaternion, tool_tilt_yaw, tool_yaw_rad
from robot_rl.ros.safety import ArmCommandGate

BOX = WorkspaceBox((0.3, -0.25, 0.02), (0.7, 0.25, 0.45))
DT = 0.1
SPEED, ANG, YAW_RATE = 0.2, 1.0, 0.8
TILT, YAW = np.deg2rad(25.0), np.deg2rad(90.0)
EPS = 1e-7


def _gate(**kw) -> ArmCommandGate:
    args = dict(max_ee_speed_m_s=SPEED, command_timeout_s=0.15, max_yaw_rate_rad_s=YAW_RATE,
                max_angular_speed_rad_s=ANG, max_tilt_rad=TILT, max_abs_yaw_rad=YAW)
    return ArmCommandGate(BOX, **{**args, **kw})


def _state(position, quat) -> ArmState:
    return ArmState(q=np.zeros(7), dq=np.zeros(7), ee_position=np.asarray(position, float), ee_quaternion=np.asarray(quat, float),
                    ee_velocity=np.zeros(6), wrench=np.zeros(6), gripper=1.0, stamp=0.0)


def _check(cmd, state, gate=None) -> None:
    """Every limit holds for one command issued at ``state``."""
    tilt, yaw = tool_tilt_yaw(cmd.ee_target_quaternion)
    assert np.linalg.norm(tilt) <= TILT + EPS, f"tilt {np.degrees(np.linalg.norm(tilt)):.3f} deg"
    assert abs(yaw) <= YAW + EPS, f"yaw {np.degrees(yaw):.3f} deg"
    assert BOX.contains(cmd.ee_target_position)
    assert np.linalg.norm(cmd.ee_target_position - state.ee_position) <= SPEED * DT * (1 + 1e-9) + EPS
    step = (Rotation.from_quat(cmd.ee_target_quaternion) * Rotation.from_quat(state.ee_quaternion).inv()).as_rotvec()
    assert np.linalg.norm(step) <= ANG * DT + EPS, f"rotation step {np.linalg.norm(step):.4f} rad"
    assert abs(step[2]) <= YAW_RATE * DT + EPS, f"yaw step {step[2]:.4f} rad"
    assert np.isclose(np.linalg.norm(cmd.ee_target_quaternion), 1.0)


def _random_quat(rng) -> np.ndarray:
    return Rotation.random(random_state=int(rng.integers(1 << 31))).as_quat()


@pytest.mark.parametrize("lag", [1.0, 0.4])  # the arm reaches the command, or 40 % of the way, each tick
def test_random_and_adversarial_twists_never_break_a_limit(lag):
    rng = np.random.default_rng(1)
    gate = _gate()
    pos, quat = np.array([0.5, 0.0, 0.2]), tool_down_quaternion(0.0)
    t = 0.0
    for k in range(1000):
        kind = k // 100 % 5
        if kind == 0:  # random, moderate
            twist = np.concatenate([rng.normal(0, 0.1, 3), rng.normal(0, 0.5, 3)])
        elif kind == 1:  # adversarial: huge angular velocity about a random axis
            twist = np.concatenate([np.zeros(3), rng.normal(size=3) * 50.0])
        elif kind == 2:  # adversarial: a steady push to tilt past the limit about a fixed horizontal axis
            twist = np.array([0.0, 0.0, 0.0, 2.0, -1.0, 0.0])
        elif kind == 3:  # adversarial: spin about base z past the yaw range, while driving out of the box
            twist = np.array([5.0, -5.0, 5.0, 0.0, 0.0, 9.0 * np.sign(np.sin(k / 37))])
        else:  # turn the tool upside down
            twist = np.array([0.0, 0.0, 0.0, np.pi / DT, 0.0, 0.0])
        gate.on_twist(twist, t)
        state = _state(pos, quat)
        cmd = gate.next_command(state, DT, t)
        _check(cmd, state)
        # the arm moves towards the command (a lagging arm may sit anywhere along the way)
        pos = pos + lag * (cmd.ee_target_position - pos)
        quat = (Rotation.from_rotvec(lag * (Rotation.from_quat(cmd.ee_target_quaternion)
                                            * Rotation.from_quat(quat).inv()).as_rotvec()) * Rotation.from_quat(quat)).as_quat()
        t += DT
    s = gate.stats
    assert s.orientation_clipped > 100 and s.angular_speed_limited > 100 and s.box_clipped > 10, s


def test_random_and_adversarial_poses_never_break_a_limit():
    rng = np.random.default_rng(2)
    gate = _gate()
    pos, quat = np.array([0.5, 0.0, 0.2]), tool_down_quaternion(0.3)
    t = 0.0
    for k in range(400):
        kind = k % 4
        if kind == 0:
            goal_q = _random_quat(rng)  # anything, upside down included
        elif kind == 1:
            goal_q = _random_quat(rng) * rng.uniform(0.01, 100.0)  # not normalised
        elif kind == 2:  # just outside the tilt limit
            axis = np.r_[rng.normal(size=2), 0.0]
            goal_q = (Rotation.from_rotvec(axis / np.linalg.norm(axis) * (TILT + 0.01))
                      * Rotation.from_quat(tool_down_quaternion(rng.uniform(-YAW, YAW)))).as_quat()
        else:  # tool down, yaw beyond the range
            goal_q = tool_down_quaternion(rng.choice([-1, 1]) * rng.uniform(YAW, np.pi))
        goal_p = rng.uniform(-1, 2, 3)
        assert gate.on_pose(goal_p, goal_q, t)
        for _ in range(3):
            state = _state(pos, quat)
            cmd = gate.next_command(state, DT, t)
            _check(cmd, state)
            pos, quat = cmd.ee_target_position, cmd.ee_target_quaternion
            t += 0.04
    assert gate.stats.orientation_clipped > 200


def test_bad_poses_and_twists_are_rejected_and_counted():
    gate = _gate()
    assert not gate.on_pose([0.5, 0.0, 0.2], [0.0, 0.0, 0.0, 0.0], 0.0)  # zero quaternion
    assert not gate.on_pose([0.5, 0.0, 0.2], [0.0, np.nan, 0.0, 1.0], 0.0)
    assert not gate.on_pose([0.5, 0.0, 0.2], [0.0, 0.0, 1.0], 0.0)  # wrong size
    assert not gate.on_pose([0.5, 0.0, 0.2], float("nan"), 0.0)
    assert not gate.on_twist([0, 0, 0, 0, 0, np.inf], 0.0)
    assert gate.stats.rejected == {"non-finite pose": 4, "non-finite twist": 1}


def test_tool_down_commands_behave_as_before():
    """A yaw-only pose target: position as before, the tool stays pointing down, the yaw steps at max_yaw_rate."""
    gate = _gate(max_abs_yaw_rad=np.pi)
    pos, yaw = np.array([0.5, 0.0, 0.2]), 0.0
    yaws = []
    for k in range(14):
        gate.on_pose([0.5, 0.1, 0.2], 1.0, k * DT)  # a float orientation is the yaw of a tool pointing down
        cmd = gate.next_command(_state(pos, tool_down_quaternion(yaw)), DT, k * DT)
        tilt, _ = tool_tilt_yaw(cmd.ee_target_quaternion)
        assert np.linalg.norm(tilt) < 1e-9
        yaw, pos = tool_yaw_rad(cmd.ee_target_quaternion), cmd.ee_target_position
        yaws.append(yaw)
    assert np.allclose(np.diff(yaws[:10]), YAW_RATE * DT) and np.isclose(yaws[-1], 1.0)
    assert np.allclose(pos, [0.5, 0.1, 0.2])


def test_a_twist_rotates_about_its_axis():
    """Angular velocity (base frame) turns the tool about that axis by w * t."""
    for w in (np.array([0.0, 0.0, 0.5]), np.array([0.2, 0.0, 0.0]), np.array([0.0, -0.15, 0.1])):
        gate = _gate()
        q0 = tool_down_quaternion(0.2)
        pos, quat = np.array([0.5, 0.0, 0.2]), q0
        for k in range(10):
            gate.on_twist(np.r_[0.0, 0.0, 0.0, w], k * DT)
            cmd = gate.next_command(_state(pos, quat), DT, k * DT)
            pos, quat = cmd.ee_target_position, cmd.ee_target_quaternion
        turned = (Rotation.from_quat(quat) * Rotation.from_quat(q0).inv()).as_rotvec()
        assert np.allclose(turned, w * 10 * DT, atol=1e-9), (w, turned)
        assert gate.stats.orientation_clipped == 0 and gate.stats.angular_speed_limited == 0


def test_holding_keeps_the_full_orientation():
    """No command yet, then commands stop: the gate holds position and the tilted, turned orientation."""
    gate = _gate()
    q = (Rotation.from_rotvec([0.1, -0.2, 0.0]) * Rotation.from_quat(tool_down_quaternion(0.7))).as_quat()
    state = _state([0.5, 0.05, 0.2], q)
    cmd = gate.next_command(state, DT, 0.0)  # nothing received yet
    assert np.allclose(cmd.ee_target_position, state.ee_position)
    assert (Rotation.from_quat(cmd.ee_target_quaternion) * Rotation.from_quat(q).inv()).magnitude() < 1e-9
    gate.on_twist([0, 0, 0, 0.0, 0.3, 0.0], 0.0)
    cmd = gate.next_command(state, DT, 0.0)
    moved = _state(cmd.ee_target_position, cmd.ee_target_quaternion)
    for t in (0.5, 0.6, 0.7):  # timed out: holds the pose it had when the commands stopped
        held = gate.next_command(moved, DT, t)
        assert np.allclose(held.ee_target_position, moved.ee_position)
        assert (Rotation.from_quat(held.ee_target_quaternion) * Rotation.from_quat(moved.ee_quaternion).inv()).magnitude() < 1e-9
    assert gate.stats.timed_out == 1 and gate.stats.holding


def test_an_arm_found_past_the_tilt_limit_is_brought_back_at_the_angular_speed_limit():
    gate = _gate()
    q = (Rotation.from_rotvec([0.8, 0.0, 0.0]) * Rotation.from_quat(tool_down_quaternion(0.0))).as_quat()  # 46 deg tilt
    state = _state([0.5, 0.0, 0.2], q)
    tilts = []
    for k in range(8):
        cmd = gate.next_command(state, DT, k * DT)
        _check(cmd, state) if k >= 3 else None  # the first commands are still beyond the limit, by design
        step = (Rotation.from_quat(cmd.ee_target_quaternion) * Rotation.from_quat(state.ee_quaternion).inv()).magnitude()
        assert step <= ANG * DT + EPS
        state = _state(cmd.ee_target_position, cmd.ee_target_quaternion)
        tilts.append(np.linalg.norm(tool_tilt_yaw(cmd.ee_target_quaternion)[0]))
    assert np.allclose(tilts[:3], [0.7, 0.6, 0.5]) and np.isclose(tilts[-1], TILT)


@pytest.mark.parametrize("kw", [dict(max_angular_speed_rad_s=0.0), dict(max_tilt_rad=-0.1), dict(max_tilt_rad=2.0),
                                dict(max_abs_yaw_rad=4.0), dict(max_yaw_rate_rad_s=-1.0)])
def test_bad_limits_are_config_errors(kw):
    with pytest.raises(ConfigError):
        _gate(**kw)
