"""`robot-rl train` (learner + actor loop in memory): smoke runs, exact resume, bad input, on real envs."""

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
from robot_rl.transport.records import SegmentLog
from robot_rl.transport.wire import decode


def logged_chunks(directory: Path) -> list:
    """The decoded messages of a replay log directory, in order."""
    log = SegmentLog(directory)
    try:
        return [decode(frames) for frames in log]
    finally:
        log.close()

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
    msgs = logged_chunks(run / "replay")  # the run's one dataset: every step, in order
    assert sum(len(m.arrays["action"]) for m in msgs) == 400
    ends = [m for m in msgs if "episode_stats" in m.meta]
    assert [m.meta["episode"] for m in ends] == [0, 1]  # Pendulum: 200-step episodes
    assert msgs[0].arrays["state"].shape == (2, 3) and msgs[1].arrays["state"].shape == (1, 3)  # reset obs once
    assert json.loads((run / "run.json").read_text()) == {"format": 2, "mode": "train"}
    rows = list(csv.DictReader(open(run / "episodes.csv")))
    assert [int(r["env_steps"]) for r in rows] == [200, 400] and {r["actor"] for r in rows} == {"train"}
    # a second run into the same directory is refused
    with pytest.raises(RunDirectoryExistsError, match="never overwrites"):
        Trainer(small_cfg(tmp_path))


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.learner.agent.state_dict().items()}


BUFFER_FIELDS = ("state", "action", "reward", "terminated", "intervention", "valid")


@pytest.mark.parametrize("env_id,steps,every,intervention", [("Pendulum-v1", 400, 200, "none"),
                                                               ("robot_rl/PandaPickLift-v0", 0, 0, "none"),
                                                               ("robot_rl/PandaPickLift-v0", 0, 0, "scripted")])
def test_resume_continues_exactly(tmp_path, env_id, steps, every, intervention):
    """Run A trains straight through; run B is A's directory cut back to A's mid-run checkpoint
    and resumed. Their final networks, optimiser states, online buffers and replay logs must be
    identical; with the scripted corrector (an imperfect one, so its RNG matters) also the demo
    buffers, which hold the intervention transitions."""
    extra = {}
    if env_id.startswith("robot_rl/"):
        from robot_rl.envs import make_env

        env = make_env(env_id)
        horizon = env.spec.max_episode_steps
        env.close()
        steps, every = 3 * horizon, horizon  # checkpoints only happen at episode ends
        extra = dict(num_demos=2)
    if intervention != "none":
        extra.update(teleop=intervention, reward="intervention", intervention_capacity=500,
                     teleop_kwargs={"takeover_probability": "0.7", "max_takeover_steps": "6"})
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
    assert b.learner.received == int(mid.name.split("_")[1])
    b.run()
    b.close()
    final_b = _params(b)
    for name in BUFFER_FIELDS:
        np.testing.assert_array_equal(getattr(a.learner.online, name), getattr(b.learner.online, name), err_msg=name)
    if intervention != "none":
        assert a.learner.demo_buffer.intervention.sum() > 0  # interventions happened
        for name in BUFFER_FIELDS:
            np.testing.assert_array_equal(getattr(a.learner.demo_buffer, name), getattr(b.learner.demo_buffer, name),
                                          err_msg=name)
        assert a.learner.takeovers == b.learner.takeovers > 0
    assert final_a.keys() == final_b.keys()
    for k in final_a:
        assert torch.equal(final_a[k], final_b[k]), k
    opt_a = load_checkpoint(tmp_path / "run" / "checkpoints" / f"step_{steps:09d}")[0]["agent"]
    opt_b = load_checkpoint(b_dir / "checkpoints" / f"step_{steps:09d}")[0]["agent"]
    assert torch.equal(_flat(opt_a), _flat(opt_b))
    # the replay log written after the resume holds the same steps, and the original ones the
    # cut-back run had already logged were kept aside, not deleted
    log_a, log_b = logged_chunks(tmp_path / "run" / "replay"), logged_chunks(b_dir / "replay")
    assert len(log_a) == len(log_b)
    for ma, mb in zip(log_a, log_b):
        for k in ma.arrays:
            np.testing.assert_array_equal(ma.arrays[k], mb.arrays[k], err_msg=k)
    aside = list(b_dir.glob("replay_after_step_*"))
    kept = json.loads((mid / "state.json").read_text())["log_records"]
    assert len(aside) == 1 and len(logged_chunks(aside[0])) == len(log_a) - kept
    # the same metrics rows (the episodes after the checkpoint were logged again, not twice)
    def rows(run: Path, name: str) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in ("wall_time", "wall_s")} for r in csv.DictReader(open(run / name))]

    assert rows(b_dir, "episodes.csv") == rows(tmp_path / "run", "episodes.csv")
    assert rows(b_dir, "evals.csv") == rows(tmp_path / "run", "evals.csv")


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
        eval_env = t.learner._make_eval_env(False)
        assert t.actor.env.unwrapped.reward_type == "dense" and eval_env.unwrapped.reward_type == "dense"
        eval_env.close()
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
        assert t.learner.layout.image_shapes == {"front": (32, 32, 3), "wrist": (32, 32, 3)}
        before = {k: v.clone() for k, v in t.learner.agent.encoder.state_dict().items()}
        summary = t.run()
    finally:
        t.close()
    assert summary["env_steps"] == 60 and Path(summary["video"]).is_file()
    after = t.learner.agent.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the critic trained the encoder
    assert t.learner.online.images["front"].dtype == np.uint8
    ep = load_episode(next((Path(summary["run_dir"]) / "demos").glob("episode_*.npz")))
    assert ep.observations["images"]["wrist"].shape[1:] == (32, 32, 3)


@pytest.mark.timeout(300)
def test_resume_keeps_the_runs_total_unless_given_and_zero_intervals_do_not_hang(tmp_path):
    """`--resume` without --total-env-steps continues to the run's own total (not the flag's
    default); with it, the new total is saved for the next resume. Runs with eval/checkpoint
    intervals of 0 (only at the end) resume without looping forever on a zero step."""
    cfg = small_cfg(tmp_path, total_env_steps=400, eval_every_steps=0, checkpoint_every_steps=0)
    assert train(cfg)["env_steps"] == 400
    run = tmp_path / "run"
    assert train(TrainConfig(resume=run, progress=False))["env_steps"] == 400
    assert train(TrainConfig(resume=run, total_env_steps=600, progress=False))["env_steps"] == 600
    assert json.loads((run / "config.json").read_text())["total_env_steps"] == 600
    assert train(TrainConfig(resume=run, progress=False))["env_steps"] == 600
    rows = [int(r["env_steps"]) for r in csv.DictReader(open(run / "evals.csv"))]
    assert rows == [400, 600]  # one final evaluation per step count, never two at one step


def test_pixel_preset_picks_the_cpu_scale_without_a_gpu_and_keeps_what_was_set(tmp_path, capsys):
    from robot_rl.learner import CPU_PIXEL_PRESET, resolve_run

    pixels = "robot_rl/PandaPickLiftPixels-v0"
    cfg, _ = resolve_run(TrainConfig(env=pixels, device="cpu", agent=SACConfig(encoder_channels=8)), "train")
    assert cfg.env_kwargs["image_size"] == str(CPU_PIXEL_PRESET["image_size"])
    assert (cfg.agent.batch_size, cfg.agent.utd_ratio) == (CPU_PIXEL_PRESET["batch_size"], CPU_PIXEL_PRESET["utd_ratio"])
    assert cfg.agent.encoder_channels == 8  # set by the user: kept
    assert "pixel preset for a CPU learner (no GPU found)" in capsys.readouterr().out
    full, _ = resolve_run(TrainConfig(env=pixels, device="cpu", pixel_preset="full"), "train")
    assert "image_size" not in full.env_kwargs and full.agent == SACConfig()
    state, _ = resolve_run(TrainConfig(device="cpu", pixel_preset="cpu"), "train")  # no cameras: nothing to scale
    assert state.env_kwargs == {} and state.agent == SACConfig()
    with pytest.raises(ConfigError, match="pixel-preset"):
        resolve_run(TrainConfig(env=pixels, device="cpu", pixel_preset="small"), "train")  # type: ignore[arg-type]
