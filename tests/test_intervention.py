"""Interventions on the real MuJoCo pick-and-lift env: the wrapper, the scripted corrector, training."""

from __future__ import annotations

import csv
import doctest
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import robot_rl  # noqa: F401  (registers the IDs)
from robot_rl.agent import SACConfig
from robot_rl.errors import ConfigError
from robot_rl.interfaces import Teleop, TeleopCommand
from robot_rl.intervention import InterventionWrapper, intervention_segments
from robot_rl.sim.corrector import ScriptedCorrector
from robot_rl.sim.scripted import scripted_policy_for
from robot_rl.train import TrainConfig, Trainer
from robot_rl.transport.records import SegmentLog
from robot_rl.transport.wire import decode

ENV_ID = "robot_rl/PandaPickLift-v0"
UP = np.array([0.0, 0.0, 1.0, 1.0], np.float32)  # a bad policy: move up, gripper open


class PlannedTeleop(Teleop):
    """A scripted 'human' for tests: a fixed command per step of the episode (idle elsewhere).

    Args:
        env: the env (its ``episode_step`` indexes the plan).
        plan: step index -> TeleopCommand.
    """

    def __init__(self, env: gym.Env, plan: dict[int, TeleopCommand]):
        self.env, self.plan = env.unwrapped, plan

    def read(self) -> TeleopCommand:
        return self.plan.get(self.env.episode_step, TeleopCommand(twist=np.zeros(6)))


def _wrapped(plan: dict[int, TeleopCommand], rlif: bool = False, **env_kwargs) -> InterventionWrapper:
    base = gym.make(ENV_ID, **env_kwargs)
    return InterventionWrapper(base, PlannedTeleop(base, plan), rlif_reward=rlif)


def test_human_action_replaces_policy_action_and_is_tagged():
    down = np.array([0.0, 0.0, -0.2, 0.0, 0.0, 0.0])  # m/s: 2 cm per 0.1 s control step
    plan = {2: TeleopCommand(twist=down, gripper=0.0, engaged=True),
            3: TeleopCommand(twist=down, gripper=None, engaged=True),  # None keeps the last gripper action
            4: TeleopCommand(twist=down, gripper=1.0, engaged=True)}
    env = _wrapped(plan)
    u = env.unwrapped
    env.reset(seed=0)
    for t in range(7):
        z_before = u.arm.state().ee_position[2]
        _, _, terminated, truncated, info = env.step(UP)
        dz = u.arm.state().ee_position[2] - z_before
        assert info["intervention"] == (t in plan) and info["takeover"] == (t == 2)
        assert info["action"].dtype == np.float32 and info["action"].shape == (4,)
        np.testing.assert_array_equal(info["policy_action"], UP)
        if t in plan:
            expected = {2: [0, 0, -2 / 3, -1], 3: [0, 0, -2 / 3, -1], 4: [0, 0, -2 / 3, 1]}[t]
            np.testing.assert_allclose(info["action"], expected, atol=1e-6)
            assert dz < -0.01  # the arm went down: the human's command was executed
        else:
            np.testing.assert_array_equal(info["action"], UP)
            assert dz > 0.0 or u.arm.state().ee_position[2] > 0.29  # up, or at the workspace ceiling
        assert not (terminated or truncated)
    env.close()


def test_always_engaged_corrector_succeeds_despite_a_bad_policy():
    base = gym.make(ENV_ID)
    env = InterventionWrapper(base, ScriptedCorrector(env=base, always_engaged=True))
    for seed in range(3):
        env.reset(seed=seed)
        done = success = False
        while not done:
            _, reward, terminated, truncated, info = env.step(UP)
            done, success = terminated or truncated, success or info["is_success"]
        assert success and terminated and reward == 1.0
        assert info["intervention_rate"] == 1.0 and info["intervention_takeovers"] == 1
    env.close()


def test_rlif_reward_is_minus_one_exactly_at_takeovers():
    engaged = {0, 1, 5, 6, 7, 12}
    plan = {t: TeleopCommand(twist=np.zeros(6), engaged=True) for t in engaged}
    plan[14] = TeleopCommand(twist=np.zeros(6), reset=True)
    env = _wrapped(plan, reward_type="dense", rlif=True)  # dense: the task reward would be > 0 every step
    env.reset(seed=1)
    rewards, done = [], False
    while not done:
        _, reward, terminated, truncated, info = env.step(UP)
        rewards.append(reward)
        done = terminated or truncated
    assert truncated and not terminated and len(rewards) == 15
    assert [t for t, r in enumerate(rewards) if r != 0.0] == [0, 5, 12]
    assert all(rewards[t] == -1.0 for t in (0, 5, 12))
    assert info["intervention_steps"] == 6 and info["intervention_takeovers"] == 3
    assert info["intervention_rate"] == pytest.approx(6 / 15)
    env.close()
    # without RLIF the same episode keeps the dense task reward
    env = _wrapped(plan, reward_type="dense")
    env.reset(seed=1)
    assert env.step(UP)[1] > 0.0
    env.close()


@pytest.mark.parametrize("button", ["success", "failure", "reset"])
def test_buttons_end_the_episode(button):
    plan = {3: TeleopCommand(twist=np.zeros(6), **{button: True})}
    env = _wrapped(plan)
    env.reset(seed=2)
    for t in range(4):
        _, reward, terminated, truncated, info = env.step(UP)
        if t < 3:
            assert not (terminated or truncated) and "intervention_rate" not in info
    assert not env.unwrapped.task.is_success()  # the cube is still on the table
    if button == "success":
        assert terminated and not truncated and info["is_success"] and reward == 1.0
    else:
        assert truncated and not terminated and not info["is_success"] and reward == 0.0
    assert info["intervention_steps"] == 0 and info["intervention_rate"] == 0.0
    env.close()
    if button == "success":  # in a dense-reward env the success button keeps the dense reward (no sparse 1.0)
        env = _wrapped({0: TeleopCommand(twist=np.zeros(6), success=True)}, reward_type="dense")
        env.reset(seed=2)
        _, reward, terminated, _, info = env.step(UP)
        dense = sum(v for k, v in info.items() if k in ("reach", "grasp", "lift", "success"))
        assert terminated and info["is_success"] and reward == pytest.approx(dense) and 0.0 < reward < 1.0
        env.close()


def _episode(env: gym.Env, policy, seed: int) -> tuple[list[dict], bool]:
    obs, _ = env.reset(seed=seed)
    infos, done, success = [], False, False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        infos.append(info)
        done, success = terminated or truncated, success or info["is_success"]
    return infos, success


def test_corrector_takes_over_from_a_bad_policy_and_stays_quiet_with_a_good_one():
    base = gym.make(ENV_ID)
    corrector = ScriptedCorrector(env=base, seed=0, max_takeovers_per_episode=None)
    env = InterventionWrapper(base, corrector)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        flags, done = [], False
        while not done:
            obs, _, terminated, truncated, info = env.step(UP)
            flags.append(info["intervention"])
            if info["intervention"]:  # it steers with the scripted controller's action
                np.testing.assert_allclose(info["action"], np.clip(corrector.scripted_action, -1, 1), atol=1e-6)
            done = terminated or truncated
        patience = corrector.config.patience_steps
        assert flags[:patience + 1] == [False] * patience + [True]  # takes over after 5 steps without progress
        assert terminated and info["is_success"]  # and, handing back and taking over again, the task is done
    # a (noisy) scripted policy is left alone almost always
    quiet = [_episode(env, scripted_policy_for(env, 0.1, np.random.default_rng(seed)), seed) for seed in range(4)]
    assert all(success for _, success in quiet)
    steps = sum(len(infos) for infos, _ in quiet)
    assert sum(i["intervention"] for infos, _ in quiet for i in infos) <= 0.05 * steps
    env.close()


def test_corrector_reacts_at_once_to_a_dropped_cube():
    """A policy that lifts the cube and then opens the gripper: the corrector takes over right after the drop."""
    base = gym.make(ENV_ID)
    u = base.unwrapped
    env = InterventionWrapper(base, ScriptedCorrector(env=base))
    script = scripted_policy_for(base)

    def dropper(obs):
        a = script(obs)
        if u.task.lift_height_m() > 0.02:
            a[-1] = 1.0  # open: the cube falls
        return a

    infos, success = _episode(env, dropper, seed=0)
    grip = [i["action"][-1] for i in infos]  # executed gripper actions: +1 open, -1 close
    opened = next(t for t in range(1, len(grip)) if grip[t] > 0 > grip[t - 1])  # the policy lets go
    first = next(t for t, i in enumerate(infos) if i["intervention"])
    assert first - opened <= 2  # within two control steps (0.2 s)
    assert success  # the corrector regrasps and lifts
    env.close()


def test_optional_action_disagreement_trigger():
    base = gym.make(ENV_ID)
    env = InterventionWrapper(base, ScriptedCorrector(env=base, max_deviation_m=0.015, patience_steps=3))
    infos, _ = _episode(env, lambda _obs: UP, seed=0)
    assert [i["intervention"] for i in infos[:4]] == [False, False, False, True]  # 3 straying steps judged: 1, 2, 3
    env.close()


def test_corrector_budget_and_takeover_probability():
    def takeovers(**settings) -> list[int]:
        base = gym.make(ENV_ID)
        settings = {"max_takeovers_per_episode": None, **settings}
        env = InterventionWrapper(base, ScriptedCorrector(env=base, min_takeover_steps=3, max_takeover_steps=3,
                                                          **settings))
        out = [_episode(env, lambda _obs: UP, seed)[0][-1]["intervention_takeovers"] for seed in range(3)]
        env.close()
        return out

    unlimited = takeovers()
    assert min(unlimited) >= 3  # hands back after 3 steps, the bad policy strays again, ...
    assert takeovers(max_takeovers_per_episode=1) == [1, 1, 1]
    assert takeovers(takeover_probability=0.0) == [0, 0, 0]
    half = takeovers(takeover_probability=0.5, seed=3)
    assert half == takeovers(takeover_probability=0.5, seed=3)  # seeded: reproducible
    assert 0 < sum(half) < sum(unlimited)
    with pytest.raises(ConfigError, match=r"scripted-corrector settings: unknown key\(s\) \[.patience.\] for CorrectorConfig; valid keys: .*patience_steps"):
        ScriptedCorrector(env=gym.make(ENV_ID), patience=2)
    with pytest.raises(ConfigError, match="RobotEnv"):
        ScriptedCorrector(env=gym.make("Pendulum-v1"))
    with pytest.raises(ConfigError, match="action_from_twist"):
        InterventionWrapper(gym.make("Pendulum-v1"), PlannedTeleop(gym.make(ENV_ID), {}))


def test_docstring_examples_run():
    import robot_rl.intervention
    import robot_rl.sim.corrector

    for module in (robot_rl.intervention, robot_rl.sim.corrector):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
    assert intervention_segments(np.zeros(3, bool)) == []


SMALL_AGENT = SACConfig(batch_size=32, utd_ratio=1, num_critics=2, hidden_dims=(32, 32))


def test_training_with_the_scripted_corrector_fills_the_demo_buffer(tmp_path):
    cfg = TrainConfig(env=ENV_ID, num_demos=1, total_env_steps=200, eval_every_steps=0, eval_episodes=1,
                      checkpoint_every_steps=0, run_dir=tmp_path / "run", progress=False, final_video=False,
                      teleop="scripted", agent=SACConfig(**SMALL_AGENT.__dict__))
    t = Trainer(cfg)
    lr = t.learner
    try:
        demo_transitions = len(lr.demo_buffer)
        summary = t.run()
    finally:
        t.close()
    run = Path(summary["run_dir"])
    # the replay log (the run's dataset) holds every step with its intervention flag, per episode
    log = SegmentLog(run / "replay")
    msgs = [decode(frames) for frames in log]
    log.close()
    episodes: dict[int, list] = {}
    for m in msgs:
        episodes.setdefault(m.meta["episode"], []).append(m)
    flags_of = {e: np.concatenate([m.arrays["intervention"] for m in ms]) for e, ms in episodes.items()}
    flags = np.concatenate(list(flags_of.values()))
    assert len(flags) == 200 and flags.sum() > 0
    # every intervention step is in the demo buffer (tagged) and tagged in the online buffer
    assert int(lr.demo_buffer.intervention.sum()) == int(flags.sum()) == len(lr.demo_buffer) - demo_transitions
    assert int(lr.online.intervention.sum()) == int(flags.sum())
    # the demo buffer holds what was executed: the stored actions are the logged actions
    stored = lr.demo_buffer.action[lr.demo_buffer.intervention & lr.demo_buffer.valid]
    executed = np.concatenate([m.arrays["action"][m.arrays["intervention"]] for m in msgs])
    np.testing.assert_allclose(stored, executed, atol=1e-6)
    rows = list(csv.DictReader(open(run / "episodes.csv")))
    assert [int(r["intervention_steps"]) for r in rows] == [int(flags_of[int(r["episode"])].sum()) for r in rows]
    assert [int(r["takeovers"]) for r in rows] == [len(intervention_segments(flags_of[int(r["episode"])]))
                                                   for r in rows]
    assert summary["intervention_steps"] == sum(int(r["intervention_steps"]) for r in rows)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(run / "tb")).Reload().Tags()["scalars"]
    assert "charts/intervention_rate" in tags


def test_bad_intervention_settings_are_explained(tmp_path):
    base = dict(env=ENV_ID, num_demos=0, run_dir=tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="--reward intervention .* needs --teleop"):
        Trainer(TrainConfig(reward="intervention", **base))
    with pytest.raises(ConfigError, match="unknown teleop 'nosuchdevice'.*scripted"):
        Trainer(TrainConfig(teleop="nosuchdevice", **base))
    with pytest.raises(ConfigError, match="RobotEnv"):
        Trainer(TrainConfig(teleop="scripted", **{**base, "env": "Pendulum-v1"}))


def test_reset_tells_a_human_device_the_gripper_opening():
    class SyncingTeleop(PlannedTeleop):
        def __init__(self, env):
            super().__init__(env, {})
            self.synced: list[float] = []

        def sync_gripper(self, opening: float) -> None:
            self.synced.append(opening)

    base = gym.make(ENV_ID)
    teleop = SyncingTeleop(base)
    env = InterventionWrapper(base, teleop)
    env.reset(seed=0)
    for _ in range(5):  # close the gripper, then reset: the device hears "open" again
        env.step(np.array([0, 0, 0, -1], np.float32))
    assert base.unwrapped.arm.state().gripper < 0.5
    env.reset(seed=1)
    assert len(teleop.synced) == 2 and teleop.synced[0] > 0.9 and teleop.synced[1] > 0.9
    env.close()
