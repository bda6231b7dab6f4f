"""The MuJoCo Panda backend through its gymnasium IDs: real physics and rendering, no mocks."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robot_rl  # noqa: F401  (registers the IDs)
import robot_rl.sim.mujoco  # noqa: F401  (sets MUJOCO_GL=egl before mujoco loads)
import mujoco  # noqa: E402
from robot_rl.env import NON_REWARD_INFO_KEYS, RobotEnv
from robot_rl.errors import ConfigError
from robot_rl.sim.scripted import scripted_policy_for
from robot_rl.envs import SIM_ENV_IDS

ENV_IDS = list(SIM_ENV_IDS)


def run_scripted(env: gym.Env, seeds: range) -> float:
    """Fraction of seeded episodes in which the scripted controller succeeds."""
    policy = scripted_policy_for(env)
    successes = 0
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        done = success = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs))
            success = success or info["is_success"]
            done = terminated or truncated
        successes += success
    return successes / len(seeds)


def test_registration_does_not_import_mujoco():
    code = "import sys, robot_rl; assert 'mujoco' not in sys.modules and 'robot_rl.sim.mujoco' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.filterwarnings("ignore:.*Box observation space m.* value is .*infinity")
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 5
    env.close()


@pytest.mark.parametrize("env_id,episodes", [("robot_rl/PandaPickLift-v0", 40), ("robot_rl/PandaPush-v0", 40),
                                             ("robot_rl/PandaPickLiftPixels-v0", 4),
                                             ("robot_rl/PandaPushPixels-v0", 4)])
def test_scripted_success_rate(env_id, episodes):
    env = gym.make(env_id)
    assert run_scripted(env, range(1000, 1000 + episodes)) >= 0.95
    env.close()


def test_scripted_pick_lift_with_yaw_and_noise():
    env = gym.make("robot_rl/PandaPickLift-v0", enable_yaw=True)
    assert env.action_space.shape == (5,)
    policy = scripted_policy_for(env, noise_std=0.1, rng=np.random.default_rng(0))
    wins = 0
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        done, success = False, False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs))
            success, done = success or info["is_success"], terminated or truncated
        wins += success
    assert wins >= 9


def test_grasp_is_held_by_finger_contacts():
    """Dense reward (no termination): after the scripted lift the cube hangs between both pads."""
    env = gym.make("robot_rl/PandaPickLift-v0", reward_type="dense")
    policy = scripted_policy_for(env)
    obs, _ = env.reset(seed=3)
    for _ in range(env.spec.max_episode_steps):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        assert not terminated
        terms = {k: v for k, v in info.items() if k not in NON_REWARD_INFO_KEYS}
        assert reward == pytest.approx(sum(terms.values()))
    task = env.unwrapped.task
    assert info["is_success"] and task.lift_height_m() > task.config.success_height_m
    assert all(task.physics.pads_touching_cube())
    assert set(terms) == {"reach", "grasp", "lift", "success"}


@pytest.mark.parametrize("env_id", ["robot_rl/PandaPickLift-v0", "robot_rl/PandaPush-v0"])
def test_workspace_never_left_under_adversarial_actions(env_id):
    env = gym.make(env_id, enable_yaw=True)
    u: RobotEnv = env.unwrapped
    box = u.arm.workspace
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    # full-scale pushes towards every corner in turn, then random bang-bang actions
    corners = [np.array([sx, sy, sz, 1.0, 1.0]) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    actions = [c for c in corners for _ in range(12)] + [rng.choice([-1.0, 1.0], 5) for _ in range(60)]
    overshoot_tol_m = 0.005  # the servo may overshoot the clipped target by a few millimetres
    for a in actions:
        env.step(a.astype(np.float32))
        assert box.contains(u.last_command.ee_target_position, tol_m=0.0)
        assert box.contains(u.arm.state().ee_position, tol_m=overshoot_tol_m), u.arm.state().ee_position
        assert abs(u.last_command.ee_target_yaw) <= u.max_abs_yaw_rad


@pytest.mark.parametrize("env_id", ["robot_rl/PandaPickLiftPixels-v0", "robot_rl/PandaPush-v0"])
def test_reset_is_deterministic(env_id):
    env = gym.make(env_id)
    actions = [np.array([0.5, -0.3, -1.0, -1.0], np.float32)] * 5

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in actions:
            out.append(env.step(a)[0])
        return out

    a, b = rollout(7), rollout(7)
    for oa, ob in zip(a, b):
        np.testing.assert_array_equal(oa["state"], ob["state"])
        for name in oa.get("images", {}):
            np.testing.assert_array_equal(oa["images"][name], ob["images"][name])
    other, _ = env.reset(seed=8)
    assert not np.array_equal(other["state"], a[0]["state"]) or "images" in other


def _red_bbox(rgb: np.ndarray) -> np.ndarray:
    """(4,) u_min, v_min, u_max, v_max pixel edges of the red cube's pixels."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    mask = (r > 100) & (g < 70) & (b < 70)
    assert mask.sum() > 10, "the red cube is not in view"
    v, u = np.nonzero(mask)
    return np.array([u.min(), v.min(), u.max() + 1, v.max() + 1], float)


@pytest.mark.parametrize("camera", ["front", "wrist"])
def test_camera_intrinsics_project_the_cube_onto_its_pixels(camera):
    """The cube's 8 corners, projected with the camera's pose and K, bound its rendered pixels."""
    env = gym.make("robot_rl/PandaPickLiftPixels-v0", image_size=(96, 128))
    u: RobotEnv = env.unwrapped
    obs, _ = env.reset(seed=0)
    cam = u.cameras[camera]
    rgb = obs["images"][camera]
    assert rgb.dtype == np.uint8 and rgb.shape == (96, 128, 3) and rgb.max() > 50
    physics = u.task.physics
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, physics.cube_quaternion_wxyz())
    half = physics.config.cube_half_size_m
    corners = physics.cube_position() + (np.array(np.meshgrid(*[[-half, half]] * 3)).reshape(3, -1).T
                                         @ rot.reshape(3, 3).T)
    position, rotation = cam.pose()
    p_cam = (corners - position) @ rotation  # optical frame: z forward, x right, y down
    pixels = (p_cam / p_cam[:, 2:]) @ cam.intrinsics.K.T
    expected = np.array([*pixels[:, :2].min(0), *pixels[:, :2].max(0)])
    np.testing.assert_allclose(_red_bbox(rgb), expected, atol=2.0)  # shading at the edges


def test_unknown_camera_and_reward_type_are_explained():
    with pytest.raises(ConfigError, match=r"unknown camera\(s\) \['top'\].*'front', 'wrist'"):
        gym.make("robot_rl/PandaPickLift-v0", cameras=("front", "top"))
    with pytest.raises(ConfigError, match="reward_type must be 'sparse' or 'dense'"):
        gym.make("robot_rl/PandaPickLift-v0", reward_type="shaped")


@pytest.mark.parametrize("binary", [True, False])
def test_gripper_action_modes(binary):
    """Binary (default): a > 0 opens fully, a <= 0 closes; continuous: opening (a + 1) / 2.
    The fingers really follow the command."""
    env = gym.make("robot_rl/PandaPickLift-v0", binary_gripper=binary)
    env.reset(seed=0)
    u = env.unwrapped
    for a_grip, expect_binary in ((0.2, 1.0), (-0.2, 0.0), (0.9, 1.0)):
        env.step(np.array([0, 0, 0, a_grip], np.float32))
        expected = expect_binary if binary else (a_grip + 1) / 2
        assert u.last_command.gripper == pytest.approx(expected)
    env.step(np.array([0, 0, 0, -1], np.float32))
    env.step(np.array([0, 0, 0, -1], np.float32))
    assert u.arm.state().gripper < 0.1  # closed on empty air
    env.close()


def test_a_diverged_simulation_truncates_the_episode():
    """MuJoCo silently resets a diverged state to qpos0; the env must end the episode and say so."""
    env = gym.make("robot_rl/PandaPickLift-v0")
    env.reset(seed=0)
    obs, _, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    assert not truncated and "sim_unstable" not in info
    physics = env.unwrapped.arm.physics
    physics.data.qvel[-6:] = 1e12  # the cube's free joint "explodes"
    obs, _, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    assert truncated and info["sim_unstable"]
    env.reset(seed=1)  # a reset clears it
    assert not env.step(np.zeros(4, np.float32))[3]
    env.close()
