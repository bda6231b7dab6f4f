"""Residual RL on a frozen base policy (robot_rl/residual.py, ResidualActor): the zero-initialised
residual is the base policy, the wrapper's base actions and action chunks, a real residual
`robot-rl train` run with eval and a round-tripped policy, demo labelling, and clear errors.
Real MuJoCo envs, real Policy objects, plug-in base policies from tests/base_policies.py; no mocks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import base_policies
from conftest import random_observations
from robot_rl.actor import check_actor_settings
from robot_rl.agent import SACAgent, SACConfig
from robot_rl.batch import Obs
from robot_rl.demos import load_episode
from robot_rl.envs import make_env, parse_env_kwargs
from robot_rl.errors import ConfigError
from robot_rl.evaluate import EvalConfig, evaluate, run_eval
from robot_rl.layout import BASE_ACTION_KEY, ActionScaler, ObsLayout
from robot_rl.policies.networks import ResidualActor
from robot_rl.policies.policy import Policy, PolicyConfig
from robot_rl.record import RecordDemosConfig, load_demo_buffer, record_demos
from robot_rl.replay import ReplayBuffer
from robot_rl.train import TrainConfig, train

PICK = "robot_rl/PandaPickLift-v0"
SCALE = 0.2
SMALL = dict(hidden_dims=(32, 32), batch_size=32, utd_ratio=1, num_critics=2)


def raw(obs: dict) -> dict:
    """The env's own observation: everything but base_action."""
    return {k: v for k, v in obs.items() if k != BASE_ACTION_KEY}


def save_random_policy(directory: Path, env_id: str = PICK, seed: int = 0, **env_kwargs) -> Path:
    """A robot_rl policy directory with random weights for ``env_id`` (a stand-in for a BC policy)."""
    env = make_env(env_id, **env_kwargs)
    try:
        torch.manual_seed(seed)
        policy = Policy.build(ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space),
                              SACConfig(hidden_dims=(32, 32)))
    finally:
        env.close()
    return policy.save(directory, metadata={"env": env_id, "env_kwargs": env_kwargs})


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return save_random_policy(tmp_path_factory.mktemp("base") / "policy")


rollout = random_observations  # the name the tests below use


def test_zero_init_residual_acts_the_base_policy_and_stays_within_scale(base_dir):
    env = make_env(PICK, base_policy=str(base_dir))
    observations = rollout(env, 120)
    env.close()
    base = Policy.load(base_dir)
    for obs in observations:  # the wrapper's entry is the base policy's action on the raw observation
        assert obs[BASE_ACTION_KEY].dtype == np.float32
        assert np.array_equal(obs[BASE_ACTION_KEY], base.scaler.from_env(base.act(raw(obs))))
    layout, scaler = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
    idx = list(layout.base_action_index)
    torch.manual_seed(0)
    agent = SACAgent(layout.state_dim, {}, scaler.dim, SACConfig(**SMALL, residual_scale=SCALE),
                     base_action_index=layout.base_action_index)
    assert isinstance(agent.actor, ResidualActor)
    states = torch.as_tensor(np.stack([layout.split(o)[0] for o in observations]))
    agent.state_norm.fit(states, identity_dims=layout.base_action_index)  # as the learner does with demos
    base_actions = states[:, idx]
    assert torch.equal(agent.act(Obs(states, {}), deterministic=True), base_actions)  # exactly the base policy
    policy = Policy.from_modules(layout, scaler, agent.state_norm, None, agent.actor, agent.cfg)
    assert all(np.array_equal(policy.act(o), scaler.to_env(o[BASE_ACTION_KEY])) for o in observations[:20])

    buf = ReplayBuffer(layout, scaler.dim, 200)  # a few real SAC updates move the residual off zero
    buf.start_episode(observations[0])
    for obs in observations[1:]:
        buf.add(np.random.default_rng(0).uniform(-1, 1, scaler.dim).astype(np.float32), 0.0, obs, False)
    rng = np.random.default_rng(0)
    for _ in range(5):
        agent.update(buf.sample(SMALL["batch_size"], rng))
    moved = agent.act(Obs(states, {}), deterministic=True)
    assert not torch.equal(moved, base_actions)
    for _ in range(5):  # every sample (and the mean) stays within residual_scale of the base
        sample = agent.act(Obs(states, {}))
        assert (sample - base_actions).abs().max() <= SCALE + 1e-6 and sample.abs().max() <= 1.0
        assert not torch.equal(sample, moved)
    assert (moved - base_actions).abs().max() <= SCALE + 1e-6


def test_wrapper_executes_chunks_in_order_and_replans(tmp_path):
    # the kwargs as the command line gives them (strings, parsed as JSON where they parse)
    kwargs = parse_env_kwargs({"base_policy": "base_policies:counting", "base_policy_kwargs": '{"chunk_length": 4}',
                               "base_execute_steps": "3"})
    env = make_env(PICK, **kwargs)
    plain = make_env(PICK)
    assert env.action_space == plain.action_space  # the env still executes absolute actions
    assert set(env.observation_space.spaces) == {"state", BASE_ACTION_KEY}
    assert env.observation_space[BASE_ACTION_KEY].shape == (4,)
    base = env.base_policy
    obs, _ = env.reset(seed=0)
    seen = [obs[BASE_ACTION_KEY]]
    for _ in range(6):
        obs, *_ = env.step(env.action_space.sample())
        seen.append(obs[BASE_ACTION_KEY])
    expected = [base.normalised(plan, row) for plan in range(3) for row in range(3)][:7]  # 3 of each 4-step chunk
    np.testing.assert_allclose([s[0] for s in seen], expected, atol=1e-6)
    assert all(np.all(s == s[0]) for s in seen)
    assert base.resets == 1 and len(base.observations) == 3
    assert all(set(o) == {"state"} for o in base.observations)  # the base policy sees the raw observation
    obs, _ = env.reset(seed=1)  # a reset mid-chunk re-plans at once
    assert base.resets == 2 and len(base.observations) == 4
    np.testing.assert_allclose(obs[BASE_ACTION_KEY], base.normalised(3, 0), atol=1e-6)
    env.close()
    plain.close()

    box_env = make_env("Pendulum-v1", base_policy="base_policies:counting")  # a Box observation, whole chunks
    obs, _ = box_env.reset(seed=0)
    assert set(obs) == {"observation", BASE_ACTION_KEY} and obs["observation"].shape == (3,)
    values = [obs[BASE_ACTION_KEY][0]] + [box_env.step(box_env.action_space.sample())[0][BASE_ACTION_KEY][0]
                                          for _ in range(5)]
    np.testing.assert_allclose(values, [base_policies.CountingChunkBase.normalised(p, r) for p in range(2)
                                        for r in range(4)][:6], atol=1e-6)
    box_env.close()


def test_residual_train_run_evaluates_checkpoints_and_round_trips(tmp_path, base_dir, monkeypatch):
    monkeypatch.chdir(base_dir.parent)  # a relative base_policy path is saved absolute with the run
    cfg = TrainConfig(env=PICK, env_kwargs={"base_policy": base_dir.name}, num_demos=2, total_env_steps=300,
                      eval_every_steps=150, eval_episodes=1, checkpoint_every_steps=150, run_dir=tmp_path / "run",
                      progress=False, final_video=False, torch_threads=1,
                      agent=SACConfig(**SMALL, residual_scale=SCALE))
    summary = train(cfg)
    run = Path(summary["run_dir"])
    assert summary["env_steps"] == 300
    saved = json.loads((run / "config.json").read_text())
    assert saved["agent"]["residual_scale"] == SCALE
    assert saved["env_kwargs"]["base_policy"] == str(base_dir.resolve())
    monkeypatch.chdir(tmp_path)  # eval and Policy.from_run below run from another directory
    assert len(list((run / "checkpoints").iterdir())) >= 1
    demo = load_episode(sorted((run / "demos").glob("episode_*.npz"))[0])
    assert BASE_ACTION_KEY in demo.observations  # scripted demos recorded through the wrapper carry it

    result = run_eval(EvalConfig(run_dir=run, episodes=1, video=False, device="cpu"))
    assert result["trained_env_steps"] == 300 and 0.0 <= result["success_rate"] <= 1.0

    policy = Policy.from_run(run)
    assert isinstance(policy.actor, ResidualActor) and policy.config.residual_scale == SCALE
    loaded = Policy.load(policy.save(tmp_path / "exported"))
    assert json.loads((tmp_path / "exported" / "policy.json").read_text())["network"]["residual_scale"] == SCALE
    env = make_env(PICK, base_policy=str(base_dir))
    observations = rollout(env, 30, seed=3)
    env.close()
    for obs in observations:
        a = policy.act(obs)
        assert np.array_equal(a, loaded.act(obs))
        residual = policy.scaler.from_env(a) - obs[BASE_ACTION_KEY]
        assert np.abs(residual).max() <= SCALE + 1e-5
    assert policy.export_torchscript(tmp_path / "exported" / "policy.torchscript.pt") is not None
    traced = torch.jit.load(str(tmp_path / "exported" / "policy.torchscript.pt"))
    state = torch.as_tensor(policy.layout.split(observations[0])[0])[None]
    assert np.array_equal(traced(state)[0].numpy(), policy.act(observations[0]))


def test_demos_without_base_action_are_labelled(tmp_path, base_dir):
    demos = tmp_path / "demos"
    record_demos(RecordDemosConfig(env=PICK, num_episodes=2, out=demos, seed=5), progress=False)  # no wrapper
    assert BASE_ACTION_KEY not in load_episode(sorted(demos.glob("*.npz"))[0]).observations
    env_kwargs = {"base_policy": str(base_dir)}
    env = make_env(PICK, **env_kwargs)
    layout, scaler = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
    env.close()
    buf = load_demo_buffer(PICK, env_kwargs, demos, 0, tmp_path, 0, layout, scaler, progress=False)
    base = Policy.load(base_dir)
    episode = load_episode(sorted(demos.glob("*.npz"))[0])
    rows = len(episode) + 1
    expected = [base.scaler.from_env(base.act({"state": episode.observations["state"][t]})) for t in range(rows)]
    stored = buf.stored_states()[:rows]
    np.testing.assert_array_equal(stored[:, list(layout.base_action_index)], np.stack(expected))
    np.testing.assert_array_equal(np.delete(stored, list(layout.base_action_index), axis=1),
                                  episode.observations["state"])
    # a base policy that reads the simulator cannot label recorded observations
    with pytest.raises(ConfigError, match="record the demos through it"):
        load_demo_buffer(PICK, {"base_policy": "base_policies:scripted"}, demos, 0, tmp_path, 0, layout, scaler,
                         progress=False)


def test_residual_on_a_solving_base_starts_at_its_success(tmp_path):
    """The scripted controller as a plug-in base: the untrained residual policy is the base policy."""
    episodes, seed = 4, 100
    kwargs = {"base_policy": "base_policies:scripted"}
    env = make_env(PICK, **kwargs)
    layout, scaler = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
    residual = Policy.build(layout, scaler, SACConfig(hidden_dims=(32, 32), residual_scale=SCALE))
    residual_result = evaluate(residual, env, episodes, seed=seed)

    class ExecuteBase:  # acts the wrapper's base action itself
        def act(self, obs, deterministic=True):
            return scaler.to_env(obs[BASE_ACTION_KEY])

    base_result = evaluate(ExecuteBase(), env, episodes, seed=seed)
    env.close()
    assert base_result["success_rate"] >= 0.75  # the scripted controller solves pick-and-lift
    assert residual_result == base_result


def test_bad_base_policies_and_settings_raise_clear_errors(tmp_path, base_dir):
    with pytest.raises(ConfigError, match="random-steps 0"):  # uniform actions would replace the base's
        check_actor_settings(TrainConfig(env=PICK, env_kwargs={"base_policy": str(base_dir)}, random_steps=100))
    push_dir = save_random_policy(tmp_path / "push", "robot_rl/PandaPush-v0")
    with pytest.raises(ConfigError, match=r"(?s)S=25.*S=19"):  # another observation layout: both named
        make_env(PICK, base_policy=str(push_dir))
    yaw_dir = save_random_policy(tmp_path / "yaw", PICK, enable_yaw=True)
    with pytest.raises(ConfigError, match=r"(?s)A=5.*A=4"):  # another action dim: both named
        make_env(PICK, base_policy=str(yaw_dir))
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_xyz'"):
        make_env(PICK, base_policy="no_such_module_xyz:make")
    with pytest.raises(ConfigError, match="has no callable 'nope'.*counting"):
        make_env(PICK, base_policy="base_policies:nope")
    with pytest.raises(ConfigError, match="is none of"):
        make_env(PICK, base_policy=str(tmp_path / "missing_dir"))
    with pytest.raises(ConfigError, match="does not take"):
        make_env(PICK, base_policy="base_policies:counting", base_policy_kwargs={"chunk_len": 3})
    with pytest.raises(ConfigError, match="takes only 'device'"):
        make_env(PICK, base_policy=str(base_dir), base_policy_kwargs={"chunk_length": 3})
    with pytest.raises(ConfigError, match=r"shape \(2, 5\).*A=4"):
        make_env(PICK, base_policy="base_policies:wrong_chunk").reset(seed=0)
    with pytest.raises(ConfigError, match="without base_policy"):
        make_env(PICK, base_execute_steps=2)
    with pytest.raises(ConfigError, match="base_execute_steps must be an integer >= 1"):
        make_env(PICK, base_policy=str(base_dir), base_execute_steps=0)

    env = make_env(PICK)  # residual_scale > 0 without a base action in the observation
    layout, scaler = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
    env.close()
    with pytest.raises(ConfigError, match="--env-kwargs base_policy"):
        SACAgent(layout.state_dim, {}, scaler.dim, SACConfig(**SMALL, residual_scale=SCALE),
                 base_action_index=layout.base_action_index)
    with pytest.raises(ConfigError, match="--env-kwargs base_policy"):
        Policy.build(layout, scaler, SACConfig(hidden_dims=(32, 32), residual_scale=SCALE))
    with pytest.raises(ConfigError, match="--env-kwargs base_policy"):
        train(TrainConfig(env=PICK, num_demos=0, total_env_steps=10, run_dir=tmp_path / "run", progress=False,
                          final_video=False, torch_threads=1, agent=SACConfig(**SMALL, residual_scale=SCALE)))
    with pytest.raises(ConfigError, match="A=4 actions"):  # a base action of another length than the actions
        PolicyConfig.from_agent_config(SACConfig(hidden_dims=(32, 32), residual_scale=SCALE)).make_actor(
            layout.state_dim + 3, {}, scaler.dim, base_action_index=(0, 1, 2))
    with pytest.raises(ConfigError, match="residual_scale must be >= 0"):
        PolicyConfig.from_agent_config(SACConfig(residual_scale=-0.1))
