"""Offline-to-online RL: Cal-QL pretraining on the demos, then RLPD or WSRL online (real MuJoCo envs).

(a) the calibrated CQL regulariser and the Monte-Carlo return-to-go against hand computations;
(b) exact resume in each phase (pretraining, online after pretraining, WSRL warm-up);
(c) the phase is recorded in checkpoints and the run, and WSRL's online batches hold no offline data;
(d) pretraining learns something: the pretrained critic ranks the demo actions above random ones.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.agent import SACConfig
from robot_rl.errors import ConfigError
from robot_rl.layout import ObsLayout
from robot_rl.learner import PHASE_FILE
from robot_rl.offline import PretrainConfig, cql_regularizer
from robot_rl.replay import ReplayBuffer
from robot_rl.runs import load_checkpoint
from robot_rl.train import TrainConfig, Trainer
from tests.test_train import _flat

ENV_ID = "robot_rl/PandaPickLift-v0"
HORIZON = 10  # env steps per episode (max_episode_steps): checkpoints happen at episode ends
BUFFER_FIELDS = ("state", "action", "reward", "terminated", "intervention", "valid")


# ----------------------------------------------------------------------------- (a) hand computations
def test_calibrated_cql_regularizer_matches_a_hand_computation():
    """E=2 members, B=2 states, N=2 actions, A=1; the MC bound lifts some policy-action values only."""
    q_data = np.array([[0.5, 1.0], [0.4, 1.2]])  # (E, B)
    q_rand = np.array([[[0.1, -0.2], [0.3, 0.0]], [[0.2, 0.1], [-0.1, 0.4]]])  # (E, B, N)
    q_pi = np.array([[[0.9, 0.2], [1.5, 0.7]], [[0.1, 0.6], [0.8, 1.1]]])
    q_next = np.array([[[0.3, 0.8], [1.4, 0.2]], [[0.7, 0.1], [0.9, 1.3]]])
    log_pi = np.array([[-0.5, 0.2], [0.1, -1.0]])  # (B, N)
    log_next = np.array([[0.3, -0.4], [-0.2, 0.6]])
    mc = np.array([0.5, 1.0])  # G(s_b)
    t, a_dim = 0.5, 1

    def by_hand(calibrated: bool) -> np.ndarray:
        reg = np.zeros((2, 2))
        for e in range(2):
            for b in range(2):
                xs = []
                for n in range(2):
                    xs.append(q_rand[e, b, n] + a_dim * math.log(2.0))  # minus the log density -A log 2
                for n in range(2):
                    q = max(q_next[e, b, n], mc[b]) if calibrated else q_next[e, b, n]
                    xs.append(q - log_next[b, n])
                for n in range(2):
                    q = max(q_pi[e, b, n], mc[b]) if calibrated else q_pi[e, b, n]
                    xs.append(q - log_pi[b, n])
                reg[e, b] = t * math.log(sum(math.exp(x / t) for x in xs)) - q_data[e, b]
        return reg

    f = lambda x: torch.tensor(x, dtype=torch.float64)
    reg, logs = cql_regularizer(f(q_data), f(q_rand), f(q_pi), f(log_pi), f(q_next), f(log_next), f(mc), a_dim, t)
    np.testing.assert_allclose(reg.numpy(), by_hand(True), rtol=1e-12)
    raised = np.concatenate([q_pi < mc[None, :, None], q_next < mc[None, :, None]], -1)
    assert 0 < raised.sum() < raised.size  # the bound is active for some entries, not all
    assert float(logs["cql_bound_rate"]) == pytest.approx(raised.mean())
    plain, _ = cql_regularizer(f(q_data), f(q_rand), f(q_pi), f(log_pi), f(q_next), f(log_next), None, a_dim, t)
    np.testing.assert_allclose(plain.numpy(), by_hand(False), rtol=1e-12)
    assert not np.allclose(by_hand(True), by_hand(False))


def _buffer(capacity: int) -> ReplayBuffer:
    space = gym.spaces.Box(-10, 10, (1,), np.float32)
    return ReplayBuffer(ObsLayout.from_space(space), 1, capacity)


def _episode(buf: ReplayBuffer, first: float, rewards: list[float], terminated_at_end: bool, close: bool = True):
    buf.start_episode(np.array([first], np.float32))
    for t, r in enumerate(rewards):
        term = terminated_at_end and t == len(rewards) - 1
        buf.add(np.zeros(1, np.float32), r, np.array([first + t + 1], np.float32), term)
    if close:
        buf.end_episode()


def test_return_to_go_per_episode_with_truncation_and_ring_wrap():
    gamma = 0.5
    buf = _buffer(20)
    _episode(buf, 0, [0.0, 0.0, 1.0], True)  # rows 0-2 transitions, row 3 final observation
    _episode(buf, 10, [1.0, 2.0], False)  # truncated (time limit): nothing counted after its last step
    _episode(buf, 20, [3.0], False, close=False)  # still open
    g = buf.return_to_go(gamma)
    expected = [0.25, 0.5, 1.0, 0.0,  # 0 + .5 (0 + .5 * 1); reset at the episode's end
                1.0 + 0.5 * 2.0, 2.0, 0.0,
                3.0, 0.0]
    np.testing.assert_allclose(g[:9], expected)
    assert not g[9:].any()
    # termination stops the bootstrap even if the next row were a transition
    idx = np.array([2, 0, 4, 7, 0])  # batch rows and their returns stay aligned
    batch = buf.batch_at(idx)
    np.testing.assert_array_equal(batch.reward.numpy(), buf.reward[idx])
    np.testing.assert_array_equal(batch.obs.state[:, 0].numpy(), [2.0, 0.0, 10.0, 20.0, 0.0])
    np.testing.assert_allclose(g[idx], [1.0, 0.25, 2.0, 3.0, 0.25])
    # a full ring: the oldest episode lost its start, the rest are computed in write order
    ring = _buffer(6)
    _episode(ring, 0, [1.0, 1.0, 1.0], True)  # rows 0..3
    _episode(ring, 10, [0.0, 4.0], True)  # rows 4, 5, 0 (wraps: overwrites rows 0)
    g = ring.return_to_go(gamma)
    by_state = {float(ring.state[i, 0]): float(g[i]) for i in range(6)}
    assert by_state == {1.0: 1.0 + 0.5 * 1.0, 2.0: 1.0, 3.0: 0.0, 10.0: 2.0, 11.0: 4.0, 12.0: 0.0}


# ----------------------------------------------------------------------------- (b), (c) resume and phases
def _cfg(run_dir: Path, **kw) -> TrainConfig:
    base = dict(env=ENV_ID, env_kwargs={"max_episode_steps": str(HORIZON)}, num_demos=2, total_env_steps=3 * HORIZON,
                eval_every_steps=HORIZON, eval_episodes=1, checkpoint_every_steps=HORIZON, run_dir=run_dir,
                progress=False, final_video=False, torch_threads=1, log_every_updates=2,
                agent=SACConfig(batch_size=16, utd_ratio=1, num_critics=2, hidden_dims=(16, 16)),
                pretrain=PretrainConfig(steps=6, checkpoint_every_updates=2, cql_num_actions=2))
    base.update(kw)
    return TrainConfig(**base)


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.learner.agent.state_dict().items()}


def _assert_same_run(a: Trainer, b: Trainer, run_a: Path, run_b: Path) -> None:
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    for name in BUFFER_FIELDS:
        np.testing.assert_array_equal(getattr(a.learner.online, name), getattr(b.learner.online, name), err_msg=name)
    last = f"step_{3 * HORIZON:09d}"
    assert torch.equal(_flat(load_checkpoint(run_a / "checkpoints" / last)[0]["agent"]),
                       _flat(load_checkpoint(run_b / "checkpoints" / last)[0]["agent"]))
    assert (run_a / "evals.csv").read_text().count("\n") == (run_b / "evals.csv").read_text().count("\n")


def _state(ckpt: Path) -> dict:
    return json.loads((ckpt / "state.json").read_text())


class _Killed(Exception):
    """Stands in for SIGKILL: the run stops at once, after its last checkpoint."""


def test_cal_ql_then_rlpd_resumes_exactly_in_pretraining_and_online(tmp_path):
    a = Trainer(_cfg(tmp_path / "a"))
    a.run()
    a.close()
    assert a.learner.pretrain_updates == 6 and a.learner.phase == "online"
    evals = (tmp_path / "a" / "evals.csv").read_text().splitlines()
    assert evals[1].startswith("0,0,0,")  # the pretrained policy's evaluation at env step 0, before any update

    # killed in the middle of pretraining (after update 5; the last checkpoint was at update 4)
    b = Trainer(_cfg(tmp_path / "b"))

    def kill() -> bool:
        if b.learner.pretrain_updates == 5:
            raise _Killed
        return False

    with pytest.raises(_Killed):
        b.learner.pretrain(should_stop=kill)
    b.close()
    ckpt = tmp_path / "b" / "checkpoints" / f"step_{0:09d}"
    assert _state(ckpt)["phase"] == "pretrain" and _state(ckpt)["pretrain_updates"] == 4
    assert json.loads((tmp_path / "b" / PHASE_FILE).read_text())["phase"] == "pretrain"
    b = Trainer(TrainConfig(resume=tmp_path / "b", progress=False))
    assert b.learner.phase == "pretrain" and b.learner.pretrain_updates == 4
    b.run()
    b.close()
    _assert_same_run(a, b, tmp_path / "a", tmp_path / "b")

    # stopped in the online phase: A's run cut back to its checkpoint at env step 2 * HORIZON
    c_dir = tmp_path / "c"
    shutil.copytree(tmp_path / "a", c_dir)
    (c_dir / "checkpoints" / "latest").write_text(f"step_{2 * HORIZON:09d}")
    c = Trainer(TrainConfig(resume=c_dir, progress=False))
    assert c.learner.phase == "online" and c.learner.pretrain_updates == 6 and c.learner.received == 2 * HORIZON
    c.run()
    c.close()
    _assert_same_run(a, c, tmp_path / "a", c_dir)
    assert _state(c_dir / "checkpoints" / f"step_{3 * HORIZON:09d}")["phase"] == "online"


def test_wsrl_warmup_resumes_exactly_and_its_online_phase_samples_no_offline_data(tmp_path):
    warmup = 2 * HORIZON + 5  # the checkpoint at env step 2 * HORIZON is inside the warm-up
    cfg = lambda d: _cfg(d, pretrain=PretrainConfig(steps=4, checkpoint_every_updates=2, cql_num_actions=2,
                                                    online="wsrl", wsrl_warmup_steps=warmup))
    a = Trainer(cfg(tmp_path / "a"))
    a.run()
    a.close()
    lr = a.learner
    assert lr.phase == "online" and lr.online_demo_fraction == 0.0
    assert lr.updates == 3 * HORIZON - warmup  # no update during the warm-up, one per env step after it
    mid = tmp_path / "a" / "checkpoints" / f"step_{2 * HORIZON:09d}"
    assert _state(mid)["phase"] == "wsrl_warmup" and _state(mid)["updates"] == 0
    assert _state(mid)["pretrain_updates"] == 4
    assert json.loads((tmp_path / "a" / PHASE_FILE).read_text())["phase"] == "online"
    # WSRL's online batches come from the online buffer only (demo states are not in it)
    batch = lr.sample_batch()
    online_states = {tuple(s) for s in lr.online.state[lr.online.valid]}
    demo_states = {tuple(s) for s in lr.demo_buffer.state[lr.demo_buffer.valid]}
    assert demo_states and not demo_states & online_states
    assert all(tuple(s) in online_states for s in batch.obs.state.numpy())

    b_dir = tmp_path / "b"
    shutil.copytree(tmp_path / "a", b_dir)
    (b_dir / "checkpoints" / "latest").write_text(mid.name)
    b = Trainer(TrainConfig(resume=b_dir, progress=False))
    assert b.learner.phase == "wsrl_warmup" and b.learner.received == 2 * HORIZON
    b.run()
    b.close()
    _assert_same_run(a, b, tmp_path / "a", b_dir)


def test_bad_pretraining_settings_get_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="--pretrain.steps 5 pretrains on the demos"):
        Trainer(_cfg(tmp_path / "r", num_demos=0, pretrain=PretrainConfig(steps=5)))
    with pytest.raises(ConfigError, match="pass --pretrain.steps N > 0"):
        Trainer(_cfg(tmp_path / "r", pretrain=PretrainConfig(steps=0, online="wsrl")))
    with pytest.raises(ConfigError, match="--random-steps 0"):
        Trainer(_cfg(tmp_path / "r", random_steps=10))
    with pytest.raises(ConfigError, match="--pretrain.cql-num-actions must be >= 1"):
        Trainer(_cfg(tmp_path / "r", pretrain=PretrainConfig(steps=5, cql_num_actions=0)))
    assert not (tmp_path / "r").exists()  # refused before the run directory was made


# ----------------------------------------------------------------------------- (d) pretraining learns
def test_cal_ql_pretraining_on_ten_demos_gives_a_policy_that_lifts(tmp_path):
    """300 Cal-QL updates (64-wide networks) on 10 scripted pick-and-lift demos (~100 transitions).
    Measured (seeds 1, 2, 3): the untrained policy lifts in 0/10 evaluation episodes, the pretrained
    one in 7, 8 and 9/10; the critic ranks every demo action above the mean of 10 uniform actions.
    Asserted with margin: >= 4/10 and >= 95 % of demo rows."""
    cfg = TrainConfig(env=ENV_ID, num_demos=10, total_env_steps=1, eval_episodes=10, run_dir=tmp_path / "run",
                      progress=False, final_video=False, torch_threads=1,
                      agent=SACConfig(batch_size=64, utd_ratio=1, hidden_dims=(64, 64)),
                      pretrain=PretrainConfig(steps=300, cql_num_actions=4, checkpoint_every_updates=1000))
    t = Trainer(cfg)
    try:
        lr = t.learner
        assert lr.evaluate(10)["success_rate"] == 0.0  # the untrained policy
        assert lr.pretrain()
        assert lr._last_eval["success_rate"] >= 0.4
        buf = lr.demo_buffer
        batch = buf.batch_at(np.flatnonzero(buf.valid))
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            feats = lr.agent.features(batch.obs)
            q = lambda a: lr.agent.critic(torch.cat([feats, a], 1)).mean(0)
            q_random = torch.stack([q(torch.rand(batch.action.shape, generator=g) * 2 - 1) for _ in range(10)]).mean(0)
            assert (q(batch.action) > q_random).float().mean() >= 0.95
        rows = (tmp_path / "run" / "evals.csv").read_text().splitlines()
        assert [r.split(",")[0] for r in rows[1:]] == ["0", "0"]  # both evaluations at env step 0
    finally:
        t.close()
