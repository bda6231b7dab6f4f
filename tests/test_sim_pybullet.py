"""The interface contract of the simulated Panda, checked on both backends (MuJoCo and PyBullet).

The MuJoCo-only and longer checks (check_env, 40-seed success rates, gripper modes) live in
tests/test_sim_mujoco.py; here every contract test runs on ``backend`` = mujoco and pybullet.
"""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from scipy.spatial.transform import Rotation
from test_sim_mujoco import _red_bbox, run_scripted

import robot_rl  # noqa: F401  (registers the IDs)
from robot_rl.env import RobotEnv
from robot_rl.errors import ConfigError

BACKENDS = ("mujoco", "pybullet")
#: How far the measured TCP may overshoot the clipped target under full-scale actions, metres (both
#: backends; measured worst over seeds 0-9: 2.6 mm MuJoCo, 1.4 mm PyBullet).
OVERSHOOT_TOL_M = 0.005


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def test_registration_imports_no_backend():
    code = ("import sys, robot_rl; "
            "assert not {'mujoco', 'pybullet', 'robot_rl.sim.pybullet', 'robot_rl.sim.mujoco'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
    code = ("import sys, gymnasium as gym, robot_rl; gym.make('robot_rl/PandaPush-v0', backend='pybullet').close(); "
            "assert 'mujoco' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("env_id,kwargs", [("robot_rl/PandaPickLift-v0", {}), ("robot_rl/PandaPush-v0", {"enable_yaw": True}),
                                           ("robot_rl/PandaPickLiftPixels-v0", {"image_size": 32})])
def test_spaces_are_equal_across_backends(env_id, kwargs):
    envs = [gym.make(env_id, backend=b, **kwargs) for b in BACKENDS]
    assert envs[0].observation_space == envs[1].observation_space
    assert envs[0].action_space == envs[1].action_space
    assert envs[0].unwrapped.state_layout == envs[1].unwrapped.state_layout
    obs = [e.reset(seed=0)[0] for e in envs]
    assert all(e.observation_space.contains(o) for e, o in zip(envs, obs))
    # same home pose and cube placement (the reset distribution is shared code)
    np.testing.assert_allclose(obs[0]["state"], obs[1]["state"], atol=2e-3)
    for e in envs:
        e.close()


@pytest.mark.filterwarnings("ignore:.*Box observation space m.* value is .*infinity")
def test_pybullet_check_env():
    env = gym.make("robot_rl/PandaPushPixels-v0", backend="pybullet", image_size=32, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (32, 32, 3) and frame.std() > 5
    env.close()


def test_unknown_backend_is_explained():
    with pytest.raises(ConfigError, match=r"unknown sim backend 'bullet'.*\['mujoco', 'pybullet'\]"):
        gym.make("robot_rl/PandaPickLift-v0", backend="bullet")


@pytest.mark.parametrize("env_id", ["robot_rl/PandaPickLift-v0", "robot_rl/PandaPush-v0"])
def test_scripted_controllers_succeed(backend, env_id):
    env = gym.make(env_id, backend=backend)
    assert run_scripted(env, range(1000, 1004)) == 1.0
    env.close()


@pytest.mark.parametrize("seed", [0, 4, 6])
def test_workspace_never_left_under_random_actions(backend, seed):
    """Full-scale moves into every corner, then 60 random full-scale moves with yaw: the TCP stays
    in the box. (The PyBullet arm left it by 7.2, 18.0 and 15.1 mm at these seeds while its motors
    got a velocity feed-forward on top of the IK target and no joint velocity limit.)"""
    env = gym.make("robot_rl/PandaPickLift-v0", backend=backend, enable_yaw=True)
    u: RobotEnv = env.unwrapped
    box = u.arm.workspace
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    corners = [np.array([sx, sy, sz, 1.0, 1.0]) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    actions = [c for c in corners for _ in range(5)] + [rng.choice([-1.0, 1.0], 5) for _ in range(60)]
    for a in actions:
        env.step(a.astype(np.float32))
        assert box.contains(u.last_command.ee_target_position, tol_m=0.0)
        assert box.contains(u.arm.state().ee_position, tol_m=OVERSHOOT_TOL_M), u.arm.state().ee_position
    env.close()


def test_reset_is_deterministic(backend):
    env = gym.make("robot_rl/PandaPickLiftPixels-v0", backend=backend, image_size=32)
    actions = [np.array([0.5, -0.3, -1.0, -1.0], np.float32)] * 4

    def rollout(seed):
        out = [env.reset(seed=seed)[0]]
        out += [env.step(a)[0] for a in actions]
        return out

    a, b = rollout(7), rollout(7)
    for oa, ob in zip(a, b):
        np.testing.assert_array_equal(oa["state"], ob["state"])
        for name in oa["images"]:
            np.testing.assert_array_equal(oa["images"][name], ob["images"][name])
    assert not np.array_equal(env.reset(seed=8)[0]["images"]["front"], a[0]["images"]["front"])
    env.close()


@pytest.mark.parametrize("camera", ["front", "wrist"])
def test_camera_intrinsics_project_the_cube_onto_its_pixels(backend, camera):
    """The cube's 8 corners, projected with the camera's pose and K, bound its rendered pixels."""
    env = gym.make("robot_rl/PandaPickLiftPixels-v0", backend=backend, image_size=(96, 128))
    u: RobotEnv = env.unwrapped
    obs, _ = env.reset(seed=0)
    cam = u.cameras[camera]
    rgb = obs["images"][camera]
    assert rgb.dtype == np.uint8 and rgb.shape == (96, 128, 3) and rgb.max() > 50
    physics = u.task.physics
    w, x, y, z = physics.cube_quaternion_wxyz()
    rot = Rotation.from_quat([x, y, z, w]).as_matrix()
    half = physics.config.cube_half_size_m
    corners = physics.cube_position() + np.array(np.meshgrid(*[[-half, half]] * 3)).reshape(3, -1).T @ rot.T
    position, rotation = cam.pose()
    p_cam = (corners - position) @ rotation  # optical frame: z forward, x right, y down
    pixels = (p_cam / p_cam[:, 2:]) @ cam.intrinsics.K.T
    expected = np.array([*pixels[:, :2].min(0), *pixels[:, :2].max(0)])
    np.testing.assert_allclose(_red_bbox(rgb), expected, atol=2.0)
    env.close()


def test_close_is_idempotent_and_envs_do_not_share_state(backend):
    a = gym.make("robot_rl/PandaPush-v0", backend=backend)
    b = gym.make("robot_rl/PandaPush-v0", backend=backend)
    a.reset(seed=1)
    b.reset(seed=2)
    tcp_b, cube_b = b.unwrapped.arm.state().ee_position, b.unwrapped.task.physics.cube_position()
    for _ in range(3):
        a.step(np.array([1.0, 1.0, -1.0, -1.0], np.float32))
    np.testing.assert_array_equal(b.unwrapped.arm.state().ee_position, tcp_b)
    np.testing.assert_array_equal(b.unwrapped.task.physics.cube_position(), cube_b)
    a.close()
    a.close()
    b.step(np.zeros(4, np.float32))  # the other env still runs after a closed
    b.close()
    b.close()
