"""The one-process training loop: smoke runs, exact resume, and bad input, on real envs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.agent import SACConfig
from robot_rl.cli import main as cli_main
from robot_rl.demos import load_episode
from robot_rl.errors import (CheckpointError, ConfigError, DeviceUnavailableError, ObservationLayoutError,
                             RunDirectoryExistsError)
from robot_rl.evaluate import EvalConfig, run_eval
from robot_rl.runs import load_checkpoint
from robot_rl.train import TrainConfig, Trainer, train

SMALL_AGENT = SACConfig(batch_size=32, utd_ratio=1, num_critics=2, hidden_dims=(32, 32))


def small_cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(env="Pendulum-v1", num_demos=0, total_env_steps=400, eval_every_steps=200, eval_episodes=1,
                checkpoint_every_steps=200, run_dir=tmp_path / "run", progress=False, final_video=False,
                agent=SACConfig(**{**SMALL_AGENT.__dict__}))
    base.update(kw)
    return TrainConfig(**base)


def test_pendulum_smoke_writes_run_directory(tmp_path):
    summary = train(small_cfg(tmp_path))
    run = Path(summary["run_dir"])
    assert summary["env_steps"] == 400 and summary["updates"] == 400
    assert json.loads((run / "config.json").read_text())["env"] == "Pendulum-v1"
    rows = list(csv.DictReader(open(run / "evals.csv")))
    assert [int(r["env_steps"]) for r in rows] == [200, 400]
    assert (run / "eval" / "learning_curve.png").stat().st_size > 1000
    assert len(list((run / "episodes").glob("episode_*.npz"))) == 2  # Pendulum: 200-step episodes
    ep = load_episode(run / "episodes" / "episode_000001.npz")
    assert ep.actions.shape == (200, 1) and ep.observations.shape == (201, 3)
    # a second run into the same directory is refused
    with pytest.raises(RunDirectoryExistsError, match="never overwrites"):
        Trainer(small_cfg(tmp_path))


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.agent.state_dict().items()}


@pytest.mark.parametrize("env_id,steps,every,intervention", [("Pendulum-v1", 400, 200, "none"),
                                                               ("robot_rl/PandaPickLift-v0", 0, 0, "none"),
                                                               ("robot_rl/PandaPickLift-v0", 0, 0, "scripted")])
def test_resume_continues_exactly(tmp_path, env_id, steps, every, intervention):
    """Run A trains straight through; run B is A's directory cut back to A's mid-run checkpoint
    and resumed. Their final networks, optimiser states and recorded actions must be identical;
    with the scripted corrector (an imperfect one, so its RNG matters) also the demo buffers,
    which hold the intervention transitions."""
    extra = {}
    if env_id.startswith("robot_rl/"):
        from robot_rl.envs import make_env

        env = make_env(env_id)
        horizon = env.spec.max_episode_steps
        env.close()
        steps, every = 3 * horizon, horizon  # checkpoints only happen at episode ends
        extra = dict(num_demos=2)
    if intervention != "none":
        from robot_rl.sim.corrector import CorrectorConfig

        extra.update(intervention=intervention, rlif_reward=True, intervention_capacity=500,
                     corrector=CorrectorConfig(takeover_probability=0.7, max_takeover_steps=6))
        steps, every = 150, 50  # corrected episodes end early, at varying lengths
    cfg = small_cfg(tmp_path, env=env_id, total_env_steps=steps, checkpoint_every_steps=every,
                    eval_every_steps=every, **extra)
    a = Trainer(cfg)
    a.run()
    a.close()
    final_a = _params(a)
    ckpts = sorted((tmp_path / "run" / "checkpoints").glob("step_*"))
    mid = [c for c in ckpts if int(c.name.split("_")[1]) < steps][-1]
    b_dir = tmp_path / "run_b"
    shutil.copytree(tmp_path / "run", b_dir)
    (b_dir / "checkpoints" / "latest").write_text(mid.name)
    b = Trainer(TrainConfig(resume=b_dir, total_env_steps=steps, progress=False))
    assert b.env_steps == int(mid.name.split("_")[1])
    b.run()
    b.close()
    final_b = _params(b)
    if intervention != "none":
        assert a.demo_buffer.intervention.sum() > 0  # interventions happened
        for name in ("state", "action", "reward", "terminated", "intervention", "valid"):
            np.testing.assert_array_equal(getattr(a.demo_buffer, name), getattr(b.demo_buffer, name), err_msg=name)
        assert a.takeovers == b.takeovers > 0
    assert final_a.keys() == final_b.keys()
    for k in final_a:
        assert torch.equal(final_a[k], final_b[k]), k
    opt_a = load_checkpoint(tmp_path / "run" / "checkpoints" / f"step_{steps:09d}")[0]["agent"]
    opt_b = load_checkpoint(b_dir / "checkpoints" / f"step_{steps:09d}")[0]["agent"]
    assert torch.equal(_flat(opt_a), _flat(opt_b))
    # the online episodes recorded after the resume are the same steps, and the original ones
    # the cut-back run had already written were kept aside, not deleted
    for f in sorted((tmp_path / "run" / "episodes").glob("*.npz")):
        np.testing.assert_array_equal(load_episode(f).actions, load_episode(b_dir / "episodes" / f.name).actions)
    assert list(b_dir.glob("episodes_after_step_*/*.npz"))


def _flat(tree) -> torch.Tensor:
    if isinstance(tree, torch.Tensor):
        return tree.flatten().double()
    if isinstance(tree, dict):
        return torch.cat([_flat(tree[k]) for k in sorted(tree, key=str)] or [torch.zeros(0, dtype=torch.double)])
    if isinstance(tree, (list, tuple)):
        return torch.cat([_flat(v) for v in tree] or [torch.zeros(0, dtype=torch.double)])
    if isinstance(tree, (int, float, bool)):
        return torch.tensor([float(tree)], dtype=torch.double)
    return torch.zeros(0, dtype=torch.double)


def test_mujoco_training_smoke_and_eval(tmp_path):
    """Short pick-and-lift run with scripted demos, then `robot-rl eval` on it: files and figures exist."""
    cfg = small_cfg(tmp_path, env="robot_rl/PandaPickLift-v0", num_demos=2, total_env_steps=120,
                    eval_every_steps=60, checkpoint_every_steps=60, final_video=True)
    summary = train(cfg)
    run = Path(summary["run_dir"])
    assert len(list((run / "demos").glob("episode_*.npz"))) == 2
    assert Path(summary["video"]).stat().st_size > 1000
    assert 0.0 <= summary["eval_success_rate"] <= 1.0
    result = run_eval(EvalConfig(run_dir=run, episodes=2, video=True))
    assert result["trained_env_steps"] == 120 and Path(result["video"]).is_file()
    assert json.loads((run / "eval" / "results.json").read_text())["episodes"] == 2
    # the same policy, zero-shot in the other simulator (the sim-to-real proxy)
    other = run_eval(EvalConfig(run_dir=run, episodes=1, video=False, env_kwargs={"backend": "pybullet"}, out=tmp_path / "pb"))
    assert result["arm_module"].startswith("robot_rl.sim.mujoco")
    assert other["arm_module"].startswith("robot_rl.sim.pybullet") and other["episodes"] == 1


def test_bad_input_gives_one_clear_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown env ID 'NoSuchEnv-v9'.*robot_rl/PandaPickLift-v0"):
        Trainer(small_cfg(tmp_path, env="NoSuchEnv-v9"))
    with pytest.raises(ObservationLayoutError, match="Discrete|1-D Box"):
        Trainer(small_cfg(tmp_path, env="CartPole-v1"))
    with pytest.raises(ObservationLayoutError, match="Discrete"):
        Trainer(small_cfg(tmp_path, env="FrozenLake-v1"))
    with pytest.raises(DeviceUnavailableError):
        Trainer(small_cfg(tmp_path, device="cuda"))
    with pytest.raises(CheckpointError, match="does not exist"):
        run_eval(EvalConfig(run_dir=tmp_path / "missing"))
    with pytest.raises(CheckpointError, match="not a robot_rl run directory"):
        Trainer(TrainConfig(resume=tmp_path, progress=False))
    bad_demos = tmp_path / "demos"
    bad_demos.mkdir()
    (bad_demos / "episode_000000.npz").write_bytes(b"PK\x03\x04 not really a zip")
    from robot_rl.errors import DemoFormatError

    with pytest.raises(DemoFormatError, match="corrupt or truncated"):
        Trainer(small_cfg(tmp_path, demos=bad_demos, run_dir=tmp_path / "r2"))
    # through the command line: exit status 2 and a one-line message, no traceback
    assert cli_main(["train", "--env", "NoSuchEnv-v9", "--run-dir", str(tmp_path / "r3"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robot-rl: error: unknown env ID") and "Traceback" not in err
    assert cli_main(["eval", "--run-dir", str(tmp_path / "missing")]) == 2


def test_env_kwargs_reach_env_and_demos(tmp_path):
    from robot_rl.envs import parse_env_kwargs

    assert parse_env_kwargs({"image_size": "96", "reward_type": "dense", "cameras": '["front"]'}) == \
        {"image_size": 96, "reward_type": "dense", "cameras": ["front"]}
    t = Trainer(small_cfg(tmp_path, env="robot_rl/PandaPickLift-v0", num_demos=1, env_kwargs={"reward_type": "dense"}))
    try:
        assert t.env.unwrapped.reward_type == "dense" and t.eval_env.unwrapped.reward_type == "dense"
        demo = load_episode(next((t.run_dir / "demos").glob("episode_*.npz")))
        assert demo.meta["env_kwargs"] == {"reward_type": "dense"}
        assert np.all(demo.rewards > 0) and not demo.terminated.any()  # dense terms, no termination on success
    finally:
        t.close()
    with pytest.raises(ConfigError, match="bad keyword arguments"):
        Trainer(small_cfg(tmp_path, env="robot_rl/PandaPickLift-v0", env_kwargs={"no_such_option": "1"}, run_dir=tmp_path / "r9"))


def test_pixel_training_smoke(tmp_path):
    """Pixel pick-and-lift end to end (32x32 images to keep CI fast): demos with images, uint8
    replay, encoder updates, checkpoint and resume-ready run directory."""
    cfg = small_cfg(tmp_path, env="robot_rl/PandaPickLiftPixels-v0", env_kwargs={"image_size": "32"}, num_demos=1,
                    total_env_steps=60, eval_every_steps=0, checkpoint_every_steps=0, final_video=True,
                    agent=SACConfig(batch_size=8, utd_ratio=1, num_critics=2, hidden_dims=(16,), encoder_channels=8))
    t = Trainer(cfg)
    try:
        assert t.layout.image_shapes == {"front": (32, 32, 3), "wrist": (32, 32, 3)}
        before = {k: v.clone() for k, v in t.agent.encoder.state_dict().items()}
        summary = t.run()
    finally:
        t.close()
    assert summary["env_steps"] == 60 and Path(summary["video"]).is_file()
    after = t.agent.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the critic trained the encoder
    assert t.online.images["front"].dtype == np.uint8
    ep = load_episode(next((Path(summary["run_dir"]) / "demos").glob("episode_*.npz")))
    assert ep.observations["images"]["wrist"].shape[1:] == (32, 32, 3)
