"""6-DoF end-effector actions and the Cartesian impedance controller, on the real MuJoCo and PyBullet engines.

Printed figures (``pytest -s``): free-space steady-state tracking error (mm, degrees) and the
force the simulated wrist F/T sensor reads while the fingertips press into the table (a rigid
horizontal wall) for commanded penetrations of 1 to 20 cm, against the configured bound.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from robot_rl.sim.impedance import ImpedanceConfig, limit_reference
from scipy.spatial.transform import Rotation

import robot_rl
from robot_rl.env import RobotEnv
from robot_rl.errors import ConfigError
from robot_rl.interfaces import (
    ArmCommand,
    WorkspaceBox,
    limit_tool_orientation,
    tool_down_quaternion,
    tool_tilt_yaw,
)

BACKENDS = ("mujoco", "pybullet")
#: A box reaching 25 cm below the table top, so targets can be commanded into the table.
DEEP_WORKSPACE = WorkspaceBox((0.3, -0.3, -0.25), (0.7, 0.3, 0.5))
HOME_M = np.array([0.5, 0.0, 0.2])
#: Contact test: a softer spring than the default, so small penetrations stay below the bound
#: and the spring law itself (F = K d) is visible: 1 cm -> 10 N, >= 1.5 cm -> the 15 N bound.
WALL_CONFIG = ImpedanceConfig(translational_stiffness_n_per_m=1000.0, max_force_n=15.0)
#: Allowed excess of the measured contact force over the bound: 5% + 0.5 N (contact solver noise;
#: measured worst peak over the control period: MuJoCo +0.0 N, PyBullet +0.3 N).
FORCE_TOL_REL, FORCE_TOL_ABS_N = 0.05, 0.5
#: How far the measured tool orientation may overshoot the tilt and yaw limits under held full-scale
#: rotation actions (0.4 rad per step), degrees. Measured worst (seed 3): impedance 0.26 (MuJoCo),
#: 0.15 (PyBullet); position 0.42 (MuJoCo), 2.94 (PyBullet: its velocity motors, torque-limited to
#: 12 N·m at the wrist, brake the URDF's 0.1 kg·m² wrist inertias late; see PybulletArm).
OVERSHOOT_TOL_DEG = {"impedance": 1.0, "position": 4.0}
#: Where the fingertips press on the bare table (the cube waits at x 0.5, y 0), base frame, metres,
#: from a home pose about 3 cm above the contact.
PRESS_XY_M = (0.6, 0.15)
PRESS_HOME_M = np.array([*PRESS_XY_M, 0.08])


def _arm(backend: str, impedance=None, controller: str = "impedance", home_m: np.ndarray = HOME_M):
    if backend == "mujoco":
        from robot_rl.sim.mujoco import PandaPhysics, SceneConfig, make_arm
    else:
        from robot_rl.sim.pybullet import PandaPhysics, SceneConfig, make_arm
    arm = make_arm(PandaPhysics(SceneConfig()), DEEP_WORKSPACE, home_m, 10.0, controller=controller, impedance=impedance)
    arm.home()
    return arm


def _angle_deg(quat_a: np.ndarray, quat_b: np.ndarray) -> float:
    return float(np.rad2deg((Rotation.from_quat(quat_a) * Rotation.from_quat(quat_b).inv()).magnitude()))


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


# ---------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("kwargs,match", [
    ({"translational_stiffness_n_per_m": -1.0}, "positive"),
    ({"rotational_stiffness_nm_per_rad": (10.0, 0.0, 10.0)}, "positive"),
    ({"translational_stiffness_n_per_m": 5000.0}, "3000 N/m"),
    ({"rotational_stiffness_nm_per_rad": 400.0}, "300 N·m/rad"),
    ({"max_force_n": 0.0}, "positive"),
    ({"max_force_n": 100.0}, "payload"),
    ({"max_torque_nm": 50.0}, "wrist"),
    ({"damping_ratio": float("nan")}, "positive"),
    ({"translational_stiffness_n_per_m": (1.0, 2.0)}, "3 numbers"),
])
def test_bad_impedance_config_is_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ImpedanceConfig(**kwargs)


def test_bad_controller_settings_are_refused_before_anything_moves():
    with pytest.raises(ConfigError, match="unknown ImpedanceConfig field"):
        ImpedanceConfig.from_any({"stiffness": 10.0})
    with pytest.raises(ConfigError, match="controller must be one of"):
        gym.make("robot_rl/PandaPickLift-v0", controller="torque")
    with pytest.raises(ConfigError, match="controller='impedance'"):
        gym.make("robot_rl/PandaPickLift-v0", impedance={"max_force_n": 10.0})
    with pytest.raises(ConfigError, match="3000 N/m"):
        gym.make("robot_rl/PandaPickLift-v0", controller="impedance", impedance={"translational_stiffness_n_per_m": 1e4})


def test_reference_limiting_bounds_the_spring_and_keeps_its_direction():
    cfg = ImpedanceConfig()
    e = limit_reference(np.array([0.3, -0.4, 0.0, 0.0, 0.0, 2.0]), cfg)
    assert np.linalg.norm(cfg.stiffness[:3] * e[:3]) == pytest.approx(cfg.max_force_n)
    assert np.linalg.norm(cfg.stiffness[3:] * e[3:]) == pytest.approx(cfg.max_torque_nm)
    np.testing.assert_allclose(e[:3] / np.linalg.norm(e[:3]), [0.6, -0.8, 0.0])
    small = np.array([0.001, 0.0, 0.0, 0.0, 0.01, 0.0])
    np.testing.assert_array_equal(limit_reference(small, cfg), small)


# ---------------------------------------------------------------------------------------------- env API
@pytest.mark.parametrize("kwargs,layout", [
    ({}, ("dx", "dy", "dz", "gripper")),
    ({"enable_yaw": True}, ("dx", "dy", "dz", "dyaw", "gripper")),
    ({"rotation": "yaw", "gripper_action": False}, ("dx", "dy", "dz", "dyaw")),
    ({"rotation": "full"}, ("dx", "dy", "dz", "rx", "ry", "rz", "gripper")),
    ({"rotation": "full", "gripper_action": False}, ("dx", "dy", "dz", "rx", "ry", "rz")),
])
def test_action_layouts(kwargs, layout):
    env = gym.make("robot_rl/PandaPickLift-v0", **kwargs)
    u: RobotEnv = env.unwrapped
    assert u.action_layout == layout and env.action_space.shape == (len(layout),)
    names = [name for name, _ in u.state_layout]
    assert ("ee_rotation_6d" in names) == (kwargs.get("rotation") == "full")
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == env.observation_space["state"].shape
    wrong = np.zeros(len(layout) + 1, np.float32)
    with pytest.raises(ValueError, match=r"\[" + ", ".join(layout) + r"\]"):
        env.step(wrong)
    env.close()


def test_enable_yaw_conflicts_with_full_rotation():
    with pytest.raises(ConfigError, match="enable_yaw"):
        gym.make("robot_rl/PandaPickLift-v0", enable_yaw=True, rotation="full")
    with pytest.raises(ConfigError, match="rotation must be one of"):
        gym.make("robot_rl/PandaPickLift-v0", rotation="rpy")


@pytest.mark.parametrize("kwargs", [{}, {"rotation": "yaw"}, {"rotation": "full"},
                                    {"rotation": "full", "gripper_action": False, "fixed_gripper_opening": 0.0},
                                    {"rotation": "full", "binary_gripper": False}])
def test_action_from_twist_round_trip(kwargs):
    env = gym.make("robot_rl/PandaPickLift-v0", **kwargs)
    u: RobotEnv = env.unwrapped
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-0.9, 0.9, env.action_space.shape).astype(np.float32)
        if u.gripper_action and u.binary_gripper:
            action[-1] = np.sign(action[-1])
        twist, gripper = u.twist_from_action(action)
        back = u.action_from_twist(twist, gripper)
        np.testing.assert_allclose(back, action, atol=1e-6)
        if kwargs.get("rotation") == "full":  # every angular rate is used
            np.testing.assert_allclose(twist[3:], action[3:6] * u.max_rot_step_rad * u.control_hz)
        if not u.gripper_action:
            assert gripper == u.fixed_gripper_opening
    # a too fast rotation saturates along its own axis
    if kwargs.get("rotation") == "full":
        a = u.action_from_twist(np.array([0, 0, 0, 30.0, -15.0, 0.0]), 1.0)
        np.testing.assert_allclose(a[3:6], [1.0, -0.5, 0.0], atol=1e-6)
    env.close()


def test_limit_tool_orientation_keeps_the_tilt_axis_and_clips_yaw():
    tilted = (Rotation.from_rotvec([0.0, 0.8, 0.0]) * Rotation.from_quat(tool_down_quaternion(2.5))).as_quat()
    tilt, yaw = tool_tilt_yaw(tilted)
    np.testing.assert_allclose(tilt, [0.0, 0.8, 0.0], atol=1e-9)
    assert yaw == pytest.approx(2.5)
    limited = limit_tool_orientation(tilted, np.deg2rad(30.0), np.pi / 2)
    tilt, yaw = tool_tilt_yaw(limited)
    np.testing.assert_allclose(tilt, [0.0, np.deg2rad(30.0), 0.0], atol=1e-9)
    assert yaw == pytest.approx(np.pi / 2)
    upside_down = Rotation.from_rotvec([np.pi, 0.0, 0.0]) * Rotation.from_quat(tool_down_quaternion(0.0))
    assert np.linalg.norm(tool_tilt_yaw(limit_tool_orientation(upside_down.as_quat(), 0.2, 1.0))[0]) == pytest.approx(0.2)


@pytest.mark.parametrize("reward_type", ["sparse", "dense"])
def test_force_limit_ends_the_episode_as_a_failure(reward_type):
    env = gym.make("robot_rl/PandaPickLift-v0", controller="impedance", max_contact_force_n=5.0, wrench_in_state=True,
                   reward_type=reward_type)
    u: RobotEnv = env.unwrapped
    _, info = env.reset(seed=0)
    assert info["ee_force_n"] == 0.0 and info["ee_torque_nm"] == 0.0
    names, sizes = zip(*u.state_layout)
    start = int(sum(sizes[:names.index("ee_wrench")]))
    wrench_slice = slice(start, start + 6)
    for step in range(40):  # press down (onto the cube or the table) until the limit trips
        obs, reward, terminated, truncated, info = env.step(np.array([0.0, 0.0, -1.0, -1.0], np.float32))
        assert "ee_force_n" in info and "ee_torque_nm" in info
        if terminated:
            break
    assert terminated and not truncated and info["force_limit_exceeded"] and info["ee_force_n"] > 5.0
    assert not info["is_success"]
    if reward_type == "sparse":
        assert reward == 0.0
    # the state's wrench entry is the same reading in the tool frame: the tool points down, so an
    # upward push on it is along tool -z
    force_tool = obs["state"][wrench_slice][:3]
    assert np.linalg.norm(force_tool) == pytest.approx(info["ee_force_n"], rel=1e-4)
    assert force_tool[2] < 0
    env.close()


# ---------------------------------------------------------------------------------------------- impedance control
def test_free_space_tracking(backend):
    arm = _arm(backend)
    targets = [(np.array([0.55, 0.05, 0.15]), tool_down_quaternion(0.3)),
               (np.array([0.45, -0.08, 0.25]),
                (Rotation.from_rotvec([0.2, -0.15, 0.0]) * Rotation.from_quat(tool_down_quaternion(-0.4))).as_quat())]
    for position, quat in targets:
        for _ in range(40):  # 4 s: the bounded spring (20 N) against critical damping moves the TCP at ~0.1 m/s
            arm.command(ArmCommand(position, quat, 1.0))
        s = arm.state()
        err_mm, err_deg = 1000 * np.linalg.norm(s.ee_position - position), _angle_deg(s.ee_quaternion, quat)
        print(f"{backend}: steady-state tracking error {err_mm:.4f} mm, {err_deg:.4f} deg")
        assert err_mm < 1.0 and err_deg < 0.1
    arm.close()


def test_contact_force_stays_under_the_bound(backend):
    """Press the closed fingertips into the table (a rigid wall) from 3 cm above it.

    Asserted: the F/T reading at the control rate (what the env observes) never exceeds the
    bound + tolerance, and settles at the spring force ``min(K d, bound)``. Printed: the peak
    over physics steps, which includes the impact of the arm's momentum (reference limiting
    bounds the spring, not the impact).
    """
    arm = _arm(backend, WALL_CONFIG, home_m=PRESS_HOME_M)
    cfg = WALL_CONFIG
    bound = cfg.max_force_n * (1 + FORCE_TOL_REL) + FORCE_TOL_ABS_N
    # contact height: the TCP height at which the closed fingertips rest on the table under the bound
    for _ in range(15):
        arm.command(ArmCommand.tool_down([*PRESS_XY_M, -0.2], 0.0, 0.0))
    contact_z = arm.state().ee_position[2]  # the table is rigid: the saturated spring moves it < 0.1 mm
    for penetration_m in (0.01, 0.02, 0.05, 0.1, 0.2):
        arm.home()
        peak, readings = 0.0, []
        for _ in range(15):
            arm.command(ArmCommand.tool_down([*PRESS_XY_M, contact_z - penetration_m], 0.0, 0.0))
            peak = max(peak, arm.peak_force_n)
            readings.append(float(np.linalg.norm(arm.state().wrench[:3])))
        steady = float(np.mean(readings[-3:]))
        expected = min(cfg.translational_stiffness_n_per_m[2] * penetration_m, cfg.max_force_n)
        print(f"{backend}: commanded penetration {100 * penetration_m:4.0f} cm: F/T force {steady:6.2f} N steady, "
              f"{max(readings):6.2f} N max at 10 Hz, {peak:6.2f} N peak at 500 Hz (impact), spring {expected:5.1f} N, "
              f"bound {cfg.max_force_n} N")
        assert max(readings) <= bound
        assert steady == pytest.approx(expected, rel=0.1)
    arm.close()


@pytest.mark.parametrize("controller", ["impedance", "position"])
def test_orientation_actions_rotate_about_the_intended_axis(backend, controller):
    env = gym.make("robot_rl/PandaPickLift-v0", backend=backend, rotation="full", gripper_action=False,
                   controller=controller)
    u: RobotEnv = env.unwrapped
    results = []
    for axis in range(3):
        env.reset(seed=0)
        before = u.arm.state().ee_quaternion
        action = np.zeros(6, np.float32)
        action[3 + axis] = 0.5
        for _ in range(2):
            env.step(action)
        for _ in range(10):  # settle
            env.step(np.zeros(6, np.float32))
        rotvec = (Rotation.from_quat(u.arm.state().ee_quaternion) * Rotation.from_quat(before).inv()).as_rotvec()
        angle = float(np.linalg.norm(rotvec))
        print(f"{backend}/{controller}: r{'xyz'[axis]} action (2 steps x 5.7 deg) turned the tool {np.rad2deg(angle):.2f} deg "
              f"about {np.round(rotvec / angle, 3)} (base frame)")
        results.append((axis, rotvec, angle))
    env.close()
    for axis, rotvec, angle in results:
        assert rotvec[axis] / angle > 0.9  # about the commanded base axis, in the commanded sense
        assert np.deg2rad(1.0) < angle < 1.1 * 0.2  # commanded: 2 x 0.5 x max_rot_step_rad = 0.2 rad


def _adversarial_actions(rng: np.random.Generator, n_random: int) -> list[np.ndarray]:
    """Random actions (beyond [-1, 1] too), then held extremes: every axis pushed to each end with
    the tool rolled, pitched and yawed at full scale."""
    actions = [rng.uniform(-1.5, 1.5, 7) for _ in range(n_random)]
    for sign in (1.0, -1.0):
        actions += [np.r_[sign * np.ones(3), sign * np.ones(3), 1.0]] * 20
        actions += [np.r_[np.zeros(3), sign, -sign, 0.0, 1.0]] * 15
        actions += [np.r_[-sign, sign, 0.0, 0.0, 0.0, sign, -1.0]] * 15
    return actions


@pytest.mark.parametrize("controller", ["impedance", "position"])
def test_workspace_and_tilt_limits_hold(backend, controller):
    """No command leaves the workspace box, the tilt limit or the yaw limit, and the measured pose
    stays within 5 mm and :data:`OVERSHOOT_TOL_DEG` of them; the sequence drives the arm to every limit."""
    env = gym.make("robot_rl/PandaPickLift-v0", backend=backend, rotation="full", controller=controller,
                   max_tilt_rad=np.deg2rad(20.0), max_abs_yaw_rad=np.deg2rad(45.0), max_rot_step_rad=0.4)
    u: RobotEnv = env.unwrapped
    ws = u.arm.workspace
    low, high = np.asarray(ws.low), np.asarray(ws.high)
    env.reset(seed=3)
    worst_tilt = worst_yaw = worst_out = -np.inf
    for action in _adversarial_actions(np.random.default_rng(3), 30):
        env.step(action.astype(np.float32))
        cmd = u.last_command
        tilt, yaw = tool_tilt_yaw(cmd.ee_target_quaternion)
        assert ws.contains(cmd.ee_target_position)
        assert np.linalg.norm(tilt) <= u.max_tilt_rad + 1e-9 and abs(yaw) <= u.max_abs_yaw_rad + 1e-9
        s = u.arm.state()
        tilt, yaw = tool_tilt_yaw(s.ee_quaternion)
        worst_tilt = max(worst_tilt, np.linalg.norm(tilt) - u.max_tilt_rad)
        worst_yaw = max(worst_yaw, abs(yaw) - u.max_abs_yaw_rad)
        worst_out = max(worst_out, float(np.max(np.r_[low - s.ee_position, s.ee_position - high])))
    print(f"{backend}/{controller}: measured pose beyond the limits at worst (negative: inside): "
          f"{1000 * worst_out:.2f} mm, tilt {np.rad2deg(worst_tilt):.2f} deg, yaw {np.rad2deg(worst_yaw):.2f} deg")
    tol_rad = np.deg2rad(OVERSHOOT_TOL_DEG[controller])
    assert worst_out < 0.005 and worst_tilt < tol_rad and worst_yaw < tol_rad
    # the limits were reached (within 5 mm / 2 degrees): the sequence tested them
    assert worst_out > -0.005 and worst_tilt > -np.deg2rad(2.0) and worst_yaw > -np.deg2rad(2.0)
    env.close()


def test_wrist_sensor_reads_the_held_peg_pressed_on_the_fixture(backend):
    """The F/T reading includes the forces on a held peg (MuJoCo: a child body of the hand;
    PyBullet: a body tied to the TCP by a constraint): press the peg's tip on the fixture's wall
    top beside the hole, 3 cm deep, with the spring bounded to 15 N."""
    env = gym.make("robot_rl/PandaPegInsertion-v0", backend=backend, controller="impedance",
                   impedance={"translational_stiffness_n_per_m": 1000.0, "max_force_n": 15.0})
    u: RobotEnv = env.unwrapped
    env.reset(seed=0)
    hole_pos, hole_rot = u.task.hole_pose()
    s = u.arm.state()
    tip_from_tcp = u.task.peg_pose()[0] - s.ee_position
    wall_middle = u.task.config.geometry.hole_half_width_m + u.task.config.geometry.wall_thickness_m / 2
    press = hole_pos + hole_rot.apply([wall_middle, 0.0, 0.0]) - tip_from_tcp
    for _ in range(10):  # above the wall, then 3 cm into it
        u.arm.command(ArmCommand(press + [0.0, 0.0, 0.01], s.ee_quaternion, 0.0))
    assert np.linalg.norm(u.arm.state().wrench) < 1e-6  # free: nothing but the peg's weight, which is not a contact
    for _ in range(15):
        u.arm.command(ArmCommand(press - [0.0, 0.0, 0.03], s.ee_quaternion, 0.0))
    s = u.arm.state()
    force = s.wrench[:3]
    print(f"{backend}: peg pressed 3 cm into the fixture: F/T force {np.round(force, 2)} N (base frame), "
          f"tool frame {np.round(s.wrench_in_tool_frame()[:3], 2)} N, bound 15 N")
    assert 0.9 * 15.0 < force[2] <= 15.0 * (1 + FORCE_TOL_REL) + FORCE_TOL_ABS_N
    env.close()
