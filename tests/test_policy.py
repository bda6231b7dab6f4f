"""The deployable Policy: same actions as the learner's SACAgent (shared modules, saved and loaded,
exported from a run and loaded in a fresh interpreter that imports neither learner nor simulator),
TorchScript in env units, and clear errors on files, tensors and envs that do not fit.
Real torch, real MuJoCo envs, no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
import torch

from conftest import random_observations
from robot_rl.agent import SACAgent, SACConfig
from robot_rl.batch import Obs
from robot_rl.envs import make_env
from robot_rl.errors import CheckpointError, ObservationLayoutError
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.policies.policy import PARAMS_FILE, SPEC_FILE, TORCHSCRIPT_FILE, Policy, PolicyConfig

STATE_ENV = "robot_rl/PandaPickLift-v0"
PIXEL_ENV = "robot_rl/PandaPickLiftPixels-v0"
ENV_KWARGS = {STATE_ENV: {}, PIXEL_ENV: {"image_size": 64}}
SMALL = dict(hidden_dims=(32, 32), encoder_channels=8, encoder_latent_dim=16, batch_size=8, num_critics=2)
NUM_OBS = 100
#: modules a deployed policy must not drag in
FORBIDDEN = ("robot_rl.agent", "robot_rl.learner", "robot_rl.train", "robot_rl.sim", "robot_rl.drivers",
             "mujoco", "pybullet")


def record_observations(env_id: str, n: int = NUM_OBS, seed: int = 0) -> tuple[gym.Env, list]:
    """``n`` observations of ``env_id`` visited with uniform random actions (resets at episode ends)."""
    env = make_env(env_id, **ENV_KWARGS[env_id])
    return env, random_observations(env, n, seed)


@pytest.fixture(scope="module", params=[STATE_ENV, PIXEL_ENV], ids=["state", "pixels"])
def recorded(request):
    """(env_id, env, layout, scaler, observations) for the state and the pixel task."""
    env, observations = record_observations(request.param)
    yield request.param, env, ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space), observations
    env.close()


def make_agent(layout: ObsLayout, scaler: ActionScaler, observations: list, seed: int = 0) -> SACAgent:
    """A small agent with random weights and a state normaliser fitted to the observations (not the identity)."""
    torch.manual_seed(seed)
    agent = SACAgent(layout.state_dim, layout.image_shapes, scaler.dim, SACConfig(**SMALL))
    agent.state_norm.fit(torch.as_tensor(np.stack([layout.split(o)[0] for o in observations])))
    return agent


def agent_actions(agent: SACAgent, layout: ObsLayout, observations: list, deterministic: bool, seed: int = 0) -> np.ndarray:
    """(N, A) float32 actions in [-1, 1] from SACAgent.act, torch seeded with seed + i before observation i."""
    out = []
    for i, obs in enumerate(observations):
        torch.manual_seed(seed + i)
        out.append(agent.act(Obs.single(*layout.split(obs)), deterministic)[0].numpy())
    return np.stack(out)


def policy_actions(policy: Policy, observations: list, deterministic: bool, seed: int = 0) -> np.ndarray:
    """(N, A) float32 actions in [-1, 1] from Policy.act_normalized, seeded as :func:`agent_actions`."""
    out = []
    for i, obs in enumerate(observations):
        torch.manual_seed(seed + i)
        out.append(policy.act_normalized(*policy.layout.split(obs), deterministic=deterministic))
    return np.stack(out)


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


# ------------------------------------------------------------------ 1. shared modules
def test_from_modules_acts_as_the_agent_and_follows_its_weights(recorded):
    _, _, layout, scaler, observations = recorded
    observations = observations[:20]
    agent = make_agent(layout, scaler, observations)
    policy = Policy.from_modules(layout, scaler, agent.state_norm, agent.encoder, agent.actor, agent.cfg)
    assert policy.actor is agent.actor and policy.encoder is agent.encoder and policy.state_norm is agent.state_norm

    for deterministic in (True, False):
        expected = agent_actions(agent, layout, observations, deterministic)
        got = policy_actions(policy, observations, deterministic)
        assert got.dtype == np.float32 and got.shape == (len(observations), scaler.dim)
        assert np.array_equal(got, expected), f"deterministic={deterministic}: max |diff| {max_diff(got, expected)}"
    sampled, mean = policy_actions(policy, observations, False), policy_actions(policy, observations, True)
    assert max_diff(sampled, mean) > 1e-3, "the stochastic branch returned tanh(mean): no noise was drawn"

    # the same RNG stream: a sample consumes exactly what Actor.sample in SACAgent.act consumes
    torch.manual_seed(7)
    policy.act_normalized(*layout.split(observations[0]), deterministic=False)
    after_policy = torch.rand(3)
    torch.manual_seed(7)
    agent.act(Obs.single(*layout.split(observations[0])), deterministic=False)
    assert torch.equal(after_policy, torch.rand(3))

    # shared, not copied: a change of the learner's weights is the policy's next action
    before = policy_actions(policy, observations, True)
    with torch.no_grad():
        agent.actor.net[0].bias.add_(0.5)
    after = policy_actions(policy, observations, True)
    assert max_diff(before, after) > 1e-4
    assert np.array_equal(after, agent_actions(agent, layout, observations, True))


def test_act_returns_env_units(recorded):
    """act() maps [-1, 1] onto the action bounds, here an asymmetric box that is not [-1, 1]."""
    _, _, layout, scaler, observations = recorded
    agent = make_agent(layout, scaler, observations)
    low, high = np.array([-2.0, 0.0, -0.5, 10.0]), np.array([2.0, 1.0, 0.5, 20.0])
    assert scaler.dim == len(low)
    policy = Policy.from_modules(layout, ActionScaler(low, high), agent.state_norm, agent.encoder, agent.actor, agent.cfg)
    for obs in observations[:10]:
        normalized = agent.act(Obs.single(*layout.split(obs)), deterministic=True)[0].numpy().astype(np.float64)
        env_action = policy.act(obs)
        assert env_action.dtype == np.float32 and env_action.shape == (4,)
        np.testing.assert_allclose(env_action, low + (normalized + 1.0) / 2.0 * (high - low), rtol=1e-6, atol=1e-6)
        assert np.all(env_action >= low.astype(np.float32)) and np.all(env_action <= high.astype(np.float32))


# ------------------------------------------------------------------ 2. save / load
def test_save_load_round_trip_gives_the_same_actions(recorded, tmp_path):
    env_id, _, layout, scaler, observations = recorded
    agent = make_agent(layout, scaler, observations)
    policy = Policy.from_modules(layout, scaler, agent.state_norm, agent.encoder, agent.actor, agent.cfg)
    policy.save(tmp_path / "policy", metadata={"env": env_id, "env_kwargs": ENV_KWARGS[env_id]})
    loaded = Policy.load(tmp_path / "policy")

    assert loaded.layout == layout and loaded.config == PolicyConfig.from_agent_config(agent.cfg)
    assert np.array_equal(loaded.scaler.low, scaler.low) and np.array_equal(loaded.scaler.high, scaler.high)
    assert loaded.metadata == {"env": env_id, "env_kwargs": ENV_KWARGS[env_id]}
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    for deterministic in (True, False):
        expected = agent_actions(agent, layout, observations, deterministic)
        got = policy_actions(loaded, observations, deterministic)
        diff = max_diff(got, expected)
        assert diff == 0.0, f"{NUM_OBS} observations, deterministic={deterministic}: max |diff| {diff}"
    env_units = np.stack([loaded.act(o) for o in observations])
    expected_env = scaler.to_env(agent_actions(agent, layout, observations, True))
    assert np.array_equal(env_units, expected_env), f"max |diff| {max_diff(env_units, expected_env)}"


def test_spec_and_params_rebuild_the_policy_like_a_parameter_message(recorded):
    """What a learner sends an actor: the shared policy's params() + its JSON spec (through a JSON round trip)."""
    _, _, layout, scaler, observations = recorded
    agent = make_agent(layout, scaler, observations)
    shared = Policy.from_modules(layout, scaler, agent.state_norm, agent.encoder, agent.actor, agent.cfg)
    spec = json.loads(json.dumps(shared.spec()))
    rebuilt = Policy.from_spec(spec, {k: v.cpu() for k, v in shared.params().items()})
    assert rebuilt.actor is not agent.actor
    assert np.array_equal(policy_actions(rebuilt, observations[:20], True), agent_actions(agent, layout, observations[:20], True))
    # a newer parameter version is loaded in place
    with torch.no_grad():
        agent.actor.net[-1].weight.mul_(1.5)
    rebuilt.load_params(shared.params())
    assert np.array_equal(policy_actions(rebuilt, observations[:20], True), agent_actions(agent, layout, observations[:20], True))


def test_torchscript_matches_act_in_env_units(tmp_path):
    """The traced module takes (state, *cameras) and returns the env-unit actions of act()."""
    _, observations = record_observations(PIXEL_ENV, n=20)
    env = make_env(PIXEL_ENV, **ENV_KWARGS[PIXEL_ENV])
    layout = ObsLayout.from_space(env.observation_space)
    env.close()
    scaler = ActionScaler(np.array([-2.0, 0.0, -0.5, 10.0]), np.array([2.0, 1.0, 0.5, 20.0]))
    agent = make_agent(layout, scaler, observations)
    policy = Policy.from_modules(layout, scaler, agent.state_norm, agent.encoder, agent.actor, agent.cfg)
    path = policy.export_torchscript(tmp_path / TORCHSCRIPT_FILE)
    assert path == tmp_path / TORCHSCRIPT_FILE and path.is_file()
    module = torch.jit.load(str(path))
    expected = np.stack([policy.act(o) for o in observations])
    with torch.no_grad():
        single = np.stack([module(*_traced_inputs(policy, [o])).numpy()[0] for o in observations])
        batched = module(*_traced_inputs(policy, observations)).numpy()
    assert np.array_equal(single, expected), f"batch of 1: max |diff| {max_diff(single, expected)}"
    assert batched.shape == expected.shape and max_diff(batched, expected) < 1e-5, f"max |diff| {max_diff(batched, expected)}"


def _traced_inputs(policy: Policy, observations: list) -> list[torch.Tensor]:
    split = [policy.layout.split(o) for o in observations]
    return [torch.as_tensor(np.stack([s for s, _ in split])),
            *(torch.as_tensor(np.stack([i[name] for _, i in split])) for name in policy.camera_names)]


# ------------------------------------------------------------------ 3. export a run, deploy in a fresh process
DEPLOY_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import torch
    from robot_rl.policies.policy import Policy

    policy_dir, data = sys.argv[1], np.load(sys.argv[2])
    policy = Policy.load(policy_dir)
    n = len(data["state"])
    observations = [{"state": data["state"][i], "images": {"front": data["front"][i], "wrist": data["wrist"][i]}}
                    for i in range(n)]
    actions = np.stack([policy.act(o) for o in observations])
    module = torch.jit.load(policy_dir + "/policy.torchscript.pt")
    with torch.no_grad():
        traced = np.stack([module(torch.as_tensor(data["state"][i:i + 1]), torch.as_tensor(data["front"][i:i + 1]),
                                  torch.as_tensor(data["wrist"][i:i + 1])).numpy()[0] for i in range(n)])
    forbidden = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in json.loads(sys.argv[4])))
    assert not forbidden, f"deploying a policy imported {forbidden}"
    np.savez(sys.argv[3], actions=actions, traced=traced)
    print("actions", actions[:3].tolist())
""")


def test_export_policy_loads_in_a_process_without_learner_or_simulator(tmp_path):
    from robot_rl.cli import main
    from robot_rl.runs import save_checkpoint, save_config
    from robot_rl.train import TrainConfig

    env, observations = record_observations(PIXEL_ENV)
    layout, scaler = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
    env.close()
    agent = make_agent(layout, scaler, observations)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_config(run_dir, TrainConfig(env=PIXEL_ENV, env_kwargs={"image_size": "64"}, agent=SACConfig(**SMALL)))
    save_checkpoint(run_dir, 123, {"agent": agent.checkpoint_state(), "torch_rng": torch.get_rng_state()},
                    {"env_steps": 123})
    out = tmp_path / "exported"
    assert main(["export-policy", "--run-dir", str(run_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([PARAMS_FILE, SPEC_FILE, TORCHSCRIPT_FILE])
    spec = json.loads((out / SPEC_FILE).read_text())
    assert spec["metadata"]["env"] == PIXEL_ENV and spec["metadata"]["env_steps"] == 123
    assert spec["torchscript_inputs"] == ["state", "front", "wrist"]

    split = [layout.split(o) for o in observations]
    np.savez(tmp_path / "obs.npz", state=np.stack([s for s, _ in split]), front=np.stack([i["front"] for _, i in split]),
             wrist=np.stack([i["wrist"] for _, i in split]))
    proc = subprocess.run([sys.executable, "-c", DEPLOY_SCRIPT, str(out), str(tmp_path / "obs.npz"),
                           str(tmp_path / "actions.npz"), json.dumps(FORBIDDEN)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = np.load(tmp_path / "actions.npz")
    expected = scaler.to_env(agent_actions(agent, layout, observations, True))
    assert result["actions"].shape == (NUM_OBS, scaler.dim)
    assert max_diff(result["actions"], expected) == 0.0, f"Policy.load: max |diff| {max_diff(result['actions'], expected)}"
    assert max_diff(result["traced"], expected) == 0.0, f"TorchScript: max |diff| {max_diff(result['traced'], expected)}"


def test_from_run_takes_a_given_layout_without_making_the_env(tmp_path):
    from robot_rl.runs import save_checkpoint, save_config
    from robot_rl.train import TrainConfig

    env, observations = record_observations(STATE_ENV, n=20)
    layout, scaler = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
    env.close()
    agent = make_agent(layout, scaler, observations)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # an env ID that cannot be made: from_run must not try when the layout is given
    save_config(run_dir, TrainConfig(env="robot_rl/NoSuchEnv-v0", agent=SACConfig(**SMALL)))
    save_checkpoint(run_dir, 5, {"agent": agent.checkpoint_state()}, {"env_steps": 5})
    policy = Policy.from_run(run_dir, layout=layout, scaler=scaler)
    assert policy.metadata["env"] == "robot_rl/NoSuchEnv-v0" and policy.metadata["checkpoint"] == "step_000000005"
    assert np.array_equal(policy_actions(policy, observations, True), agent_actions(agent, layout, observations, True))


# ------------------------------------------------------------------ 4. bad input
@pytest.fixture(scope="module")
def saved_state_policy(tmp_path_factory):
    env, observations = record_observations(STATE_ENV, n=20)
    layout, scaler = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
    agent = make_agent(layout, scaler, observations)
    policy = Policy.from_modules(layout, scaler, agent.state_norm, agent.encoder, agent.actor, agent.cfg)
    directory = policy.save(tmp_path_factory.mktemp("policy"))
    yield policy, directory, env
    env.close()


def test_load_from_a_directory_without_files(tmp_path):
    with pytest.raises(CheckpointError, match=r"not a policy directory: policy\.json and policy\.safetensors missing"):
        Policy.load(tmp_path)
    (tmp_path / SPEC_FILE).write_text("{}")
    with pytest.raises(CheckpointError, match=r"policy\.safetensors missing.*robot-rl export-policy"):
        Policy.load(tmp_path)


def test_load_refuses_another_format_version(saved_state_policy, tmp_path):
    _, directory, _ = saved_state_policy
    spec = json.loads((directory / SPEC_FILE).read_text())
    spec["version"] = 99
    (tmp_path / SPEC_FILE).write_text(json.dumps(spec))
    (tmp_path / PARAMS_FILE).write_bytes((directory / PARAMS_FILE).read_bytes())
    with pytest.raises(CheckpointError, match=r"format/version \('robot_rl.policy', 99\).*reads robot_rl.policy v1"):
        Policy.load(tmp_path)


def test_tensors_of_another_shape_or_keys_are_refused(saved_state_policy, tmp_path):
    from safetensors.torch import save_file

    policy, directory, _ = saved_state_policy
    params = policy.params()
    wider = {**params, "actor.net.0.weight": torch.zeros(64, params["actor.net.0.weight"].shape[1])}
    save_file(wider, str(tmp_path / PARAMS_FILE))
    (tmp_path / SPEC_FILE).write_text((directory / SPEC_FILE).read_text())
    with pytest.raises(CheckpointError, match=r"wrong shapes \['actor\.net\.0\.weight \(64, 19\) \(needs \(32, 19\)\)'\]"):
        Policy.load(tmp_path)

    before = {k: v.clone() for k, v in policy.params().items()}
    missing = {k: v for k, v in params.items() if k != "state_norm.std"}
    with pytest.raises(CheckpointError, match=r"missing \['state_norm\.std'\]"):
        policy.load_params(missing)
    with pytest.raises(CheckpointError, match=r"unexpected \['critic\.out\.weight'\]"):
        policy.load_params({**params, "critic.out.weight": torch.zeros(1)})
    after = policy.params()
    assert all(torch.equal(before[k], after[k]) for k in before), "a refused load changed the weights"


def test_env_with_other_spaces_is_refused_naming_both(saved_state_policy):
    policy, _, env = saved_state_policy
    policy.check_env(env.observation_space, env.action_space)  # its own env fits

    pixels = make_env(PIXEL_ENV, **ENV_KWARGS[PIXEL_ENV])
    try:
        with pytest.raises(ObservationLayoutError) as info:
            policy.check_env(pixels.observation_space, pixels.action_space)
        message = str(info.value)
        assert "policy: state S=19 [state[19]]; cameras [none]" in message
        assert "env:    state S=9 [state[9]]; cameras [front[64, 64, 3] at images/front, wrist[64, 64, 3] at images/wrist]" in message
        pixel_obs = pixels.reset(seed=0)[0]
        with pytest.raises(ObservationLayoutError, match=r"state has shape \(9,\); this policy reads \(19,\) float32"):
            policy.act(pixel_obs)
        with pytest.raises(ObservationLayoutError, match=r"(?s)observation does not fit the policy's layout \(KeyError.*S=19"):
            policy.act({"images": pixel_obs["images"]})
    finally:
        pixels.close()

    wider_actions = gym.spaces.Box(-2.0, 2.0, (4,), np.float32)
    with pytest.raises(ObservationLayoutError, match=r"(?s)policy: .*low \[-1\.0, -1\.0, -1\.0, -1\.0\].*env: .*low \[-2\.0"):
        policy.check_env(env.observation_space, wider_actions)
    with pytest.raises(ObservationLayoutError, match=r"got cameras \['front'\]; this policy reads \[\]"):
        policy.act_normalized(np.zeros(19, np.float32), {"front": np.zeros((64, 64, 3), np.uint8)}, deterministic=True)
