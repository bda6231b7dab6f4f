"""Domain randomisation of peg insertion (friction of peg and fixture, hole clearance), on the real engines.

The clearance is read back twice: from the fixture's geoms (the opening between the walls' inner
faces, hole frame) and from MuJoCo's collision detector (a peg pushed sideways in the hole touches
a wall exactly when it crosses the randomised gap). Nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import robot_rl  # noqa: F401  (registers the env IDs)
from robot_rl.errors import ConfigError
from robot_rl.sim.randomization import DomainRandomization, RandomizationConfig, load_randomization_yaml

REPO = Path(__file__).resolve().parents[1]
ENV_ID = "robot_rl/PandaPegInsertion-v0"


def _opening_m(physics) -> tuple[float, float]:
    """Width of the hole along the hole frame's x and y, metres, between the inner faces of the four
    walls (``fixture_box0..3``: at +y, -y, +x, -x) as the compiled model holds them."""
    pos, size = physics.model.geom_pos, physics.model.geom_size
    w = physics.insertion.fixture_geom_ids[:4]
    x_plus, x_minus = pos[w[2]][0] - size[w[2]][0], pos[w[3]][0] + size[w[3]][0]
    y_plus, y_minus = pos[w[0]][1] - size[w[0]][1], pos[w[1]][1] + size[w[1]][1]
    return float(x_plus - x_minus), float(y_plus - y_minus)


def _peg_touches_fixture(physics, task, shift_m: float) -> bool:
    """Place the hole around the held peg (aligned, tip 10 mm deep), shifted by ``shift_m`` along the
    hole's x, and ask MuJoCo's collision detector whether peg and fixture are in contact."""
    m, d, ins = physics.model, physics.data, physics.insertion
    tip, peg_rot = task.peg_pose()
    hole_rot = peg_rot  # peg frame z (away from the tip) = hole frame z (out of the hole): aligned
    ins.set_hole_pose(tip + hole_rot.apply([-shift_m, 0.0, 0.01]), hole_rot)
    mujoco.mj_forward(m, d)
    fixture = set(ins.fixture_geom_ids)
    return any({int(c.geom1), int(c.geom2)} & fixture and ins.peg_geom_id in (c.geom1, c.geom2)
               for c in d.contact[:d.ncon])


def test_clearance_randomisation_changes_the_gap_in_mujoco():
    env = DomainRandomization(gym.make(ENV_ID), RandomizationConfig(hole_clearance_m=(0.0006, 0.0014)), seed=3)
    physics, task = env.unwrapped.arm.physics, env.unwrapped.task
    peg_width = 2 * physics.insertion.geometry.peg_half_width_m
    try:
        clearances = []
        for _ in range(4):
            _, info = env.reset()
            c = info["randomization"]["hole_clearance_m"]
            clearances.append(c)
            assert 0.0006 <= c <= 0.0014
            # the geoms: the opening is the peg plus the drawn clearance, on both axes
            assert _opening_m(physics) == pytest.approx((peg_width + c, peg_width + c), abs=1e-9)
            # the task's success check uses the same hole
            assert task.physics.insertion.geometry.hole_half_width_m == pytest.approx(peg_width / 2 + c / 2)
            # the collision detector: 0.05 mm short of the gap no contact, 0.05 mm past it contact
            assert not _peg_touches_fixture(physics, task, c / 2 - 5e-5)
            assert _peg_touches_fixture(physics, task, c / 2 + 5e-5)
        assert max(clearances) - min(clearances) > 2e-4  # really varies between episodes
    finally:
        env.close()


def test_friction_scale_covers_peg_and_fixture_in_both_engines():
    for backend in ("mujoco", "pybullet"):
        env = DomainRandomization(gym.make(ENV_ID, backend=backend), RandomizationConfig(friction_scale=(0.6, 1.4)), seed=2)
        physics = env.unwrapped.arm.physics
        nominal = physics.friction_coefficients()
        # the contact's nominal coefficient is the geometry's in both engines
        assert nominal["peg_fixture"] == pytest.approx(physics.insertion.geometry.friction, rel=1e-6), backend
        try:
            for _ in range(2):
                scale = env.reset()[1]["randomization"]["friction_scale"]
                for key, value in physics.friction_coefficients().items():
                    assert value == pytest.approx(nominal[key] * scale, rel=1e-6), (backend, key)
            physics.set_friction_scale(1.0)  # the nominal values are kept
            assert physics.friction_coefficients() == pytest.approx(nominal, rel=1e-9), backend
        finally:
            env.close()


def test_insertion_yaml_loads_and_randomises_a_training_env():
    cfg = load_randomization_yaml(REPO / "config" / "randomization_insertion.yaml")
    assert cfg.hole_clearance_m == pytest.approx((0.0008, 0.0012)) and cfg.friction_scale == pytest.approx((0.7, 1.3))
    env = gym.make(ENV_ID, randomize=str(REPO / "config" / "randomization_insertion.yaml"), randomize_seed=0,
                   controller="impedance", reward_type="dense")
    try:
        _, info = env.reset(seed=0)
        assert {"friction_scale", "hole_clearance_m", "action_noise_std"} <= set(info["randomization"])
        _, _, _, _, step_info = env.step(np.zeros(env.action_space.shape, np.float32))
        assert np.all(np.isfinite(step_info["applied_action"]))
    finally:
        env.close()


@pytest.mark.parametrize("bad, match", [
    ({"hole_clearance_m": (0.0012, 0.0008)}, "low <= high"),
    ({"hole_clearance_m": (0.0, 0.001)}, "0 < low"),
    ({"hole_clearance_m": (0.8, 1.2)}, "metres"),  # millimetres given as metres
    ({"friction_scale": (-0.5, 1.0)}, "> 0"),
])
def test_bad_ranges_are_clear_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        RandomizationConfig(**bad)


def test_clearance_on_pybullet_or_pick_lift_is_a_clear_error():
    cfg = RandomizationConfig(hole_clearance_m=(0.0008, 0.0012))
    with pytest.raises(ConfigError, match="MuJoCo-only"):
        gym.make(ENV_ID, backend="pybullet", randomize=cfg)
    with pytest.raises(ConfigError, match="peg-insertion env"):
        gym.make("robot_rl/PandaPickLift-v0", randomize=cfg)


def test_hole_pose_stays_the_tasks_draw():
    """Randomisation does not move the hole: the same reset seed gives the same hole pose with and
    without it (the task draws the pose from the env's seed)."""
    plain = gym.make(ENV_ID)
    randomised = gym.make(ENV_ID, randomize=RandomizationConfig(hole_clearance_m=(0.0008, 0.0012)), randomize_seed=4)
    try:
        for seed in (0, 1):
            plain.reset(seed=seed)
            randomised.reset(seed=seed)
            a, b = plain.unwrapped.task.hole_pose(), randomised.unwrapped.task.hole_pose()
            # the entry height follows the fixture's outline, which the clearance widens by < 0.1 mm
            assert np.allclose(a[0][:2], b[0][:2]) and (a[1].inv() * b[1]).magnitude() < 1e-9
    finally:
        plain.close()
        randomised.close()
