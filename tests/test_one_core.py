"""One learning core: `robot-rl train` (in memory) and `robot-rl learner` + `robot-rl actor` (ZeroMQ)
produce the same data and the same metrics schema, resume bit for bit after SIGKILL, and refuse
old-format runs and degenerate counts with one clear message."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.cli import main as cli_main
from robot_rl.errors import CheckpointError, ConfigError
from robot_rl.learner import ChunkInserter
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.replay import ReplayBuffer
from robot_rl.runs import load_checkpoint
from robot_rl.train import TrainConfig, Trainer
from robot_rl.transport.messages import TransitionChunk
from robot_rl.transport.records import SegmentLog
from robot_rl.transport.wire import decode
from tests.test_train import _flat

ENV_ID = "robot_rl/PandaPickLift-v0"
ENV = {**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
CLI = [sys.executable, "-m", "robot_rl.cli"]
SMALL = ["--agent.batch-size", "16", "--agent.utd-ratio", "1", "--agent.hidden-dims", "32", "32"]
BUFFER_FIELDS = ("state", "action", "reward", "terminated", "intervention", "valid")
pytestmark = pytest.mark.timeout(600)


def _buffer_from_log(run: Path) -> ReplayBuffer:
    """An online buffer filled from a run's replay log, as the learner fills it."""
    from robot_rl.envs import make_env

    env = make_env(ENV_ID)
    layout, scaler = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
    env.close()
    buf = ReplayBuffer(layout, scaler.dim, 1000)
    inserter = ChunkInserter(buf, None)
    log = SegmentLog(run / "replay")
    for frames in log:
        inserter.insert(TransitionChunk.from_message(decode(frames), layout.state_dim, layout.image_shapes, scaler.dim))
    log.close()
    return buf


def _tb_tags(run: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return set(EventAccumulator(str(run / "tb")).Reload().Tags()["scalars"])


def _header(path: Path) -> list[str]:
    return next(csv.reader(open(path)))


def test_train_and_learner_actor_give_the_same_data_and_metrics(tmp_path):
    """Same seed and settings, 150 env steps of uniformly random actions (the actor's own RNG, so
    no policy lag can make the two modes differ): the online buffers built from both runs' replay
    logs are identical row for row, the demo files are identical, and both runs write the same
    episodes.csv / evals.csv columns and the same TensorBoard tags (x-axis: env steps). After the
    random phase the two modes differ by design: over ZeroMQ the actor acts with parameters up to
    publish_every_updates gradient steps old, in memory with the current ones."""
    steps, common = 150, ["--env", ENV_ID, "--seed", "3", "--num-demos", "1", "--eval-every-steps", "60",
                          "--eval-episodes", "1", "--torch-threads", "1", "--no-progress", *SMALL]
    train_run = tmp_path / "train"
    rc = cli_main(["train", *common, "--total-env-steps", str(steps), "--random-steps", str(steps),
                   "--run-dir", str(train_run), "--no-final-video"])
    assert rc == 0
    from tests.test_hil import _free_port_pair, _status, _wait

    port = _free_port_pair()
    learner_run = tmp_path / "learner"
    learner = subprocess.Popen([*CLI, "learner", *common, "--port", str(port), "--run-dir", str(learner_run)],
                               env=ENV, stdout=open(tmp_path / "learner.log", "w"), stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _status(learner_run).get("pid") == learner.pid, 90, "the learner to serve", learner)
        actor = subprocess.run([*CLI, "actor", "--env", ENV_ID, "--seed", "3", "--port", str(port),
                                "--total-env-steps", str(steps), "--random-steps", str(steps), "--no-progress",
                                "--spool-dir", str(tmp_path / "spool")], env=ENV, capture_output=True, text=True,
                               timeout=300)
        assert actor.returncode == 0, actor.stderr[-2000:]
        _wait(lambda: _status(learner_run).get("received_transitions") == steps, 60, "all transitions", learner)
        learner.send_signal(signal.SIGTERM)
        assert learner.wait(120) == 0, (tmp_path / "learner.log").read_text()[-3000:]
    finally:
        learner.kill()
    a, b = _buffer_from_log(train_run), _buffer_from_log(learner_run)
    assert len(a) == len(b) == steps
    for name in BUFFER_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    demo_a = sorted((train_run / "demos").glob("episode_*.npz"))
    demo_b = sorted((learner_run / "demos").glob("episode_*.npz"))
    assert [f.name for f in demo_a] == [f.name for f in demo_b] and demo_a
    for fa, fb in zip(demo_a, demo_b):
        za, zb = np.load(fa), np.load(fb)
        for k in za.files:
            if k != "meta":
                np.testing.assert_array_equal(za[k], zb[k], err_msg=k)
    # one metrics schema
    for name in ("episodes.csv", "evals.csv"):
        assert _header(train_run / name) == _header(learner_run / name), name
    rows_a = list(csv.DictReader(open(train_run / "episodes.csv")))
    rows_b = list(csv.DictReader(open(learner_run / "episodes.csv")))
    keys = ("episode", "env_steps", "return", "length", "success")
    assert [{k: r[k] for k in keys} for r in rows_a] == [{k: r[k] for k in keys} for r in rows_b]
    evals_a = [int(r["env_steps"]) for r in csv.DictReader(open(train_run / "evals.csv"))]
    evals_b = [int(r["env_steps"]) for r in csv.DictReader(open(learner_run / "evals.csv"))]
    assert evals_a[:-1] == evals_b[:-1] and evals_a[-1] == evals_b[-1] == steps  # same x-axis: env steps
    assert _tb_tags(train_run) == _tb_tags(learner_run)
    assert {"losses/critic", "charts/episodic_return", "eval/success_rate"} <= _tb_tags(train_run)


def _final_state(run: Path, steps: int) -> tuple[dict, dict]:
    return load_checkpoint(run / "checkpoints" / f"step_{steps:09d}")


def test_train_resumes_bit_for_bit_after_sigkill(tmp_path):
    """`robot-rl train` killed with SIGKILL after a checkpoint, then `--resume`d, ends with the
    same networks, target critics, optimiser states, temperature, RNG states and replay log as
    a run that was never interrupted (Pendulum: 200-step episodes, a checkpoint at each end)."""
    steps = 1400
    args = ["train", "--env", "Pendulum-v1", "--num-demos", "0", "--total-env-steps", str(steps),
            "--eval-every-steps", "400", "--eval-episodes", "1", "--checkpoint-every-steps", "200",
            "--torch-threads", "1", "--no-progress", "--no-final-video", *SMALL]
    straight = subprocess.run([*CLI, *args, "--run-dir", str(tmp_path / "a")], env=ENV, capture_output=True, text=True,
                              timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    run_b = tmp_path / "b"
    proc = subprocess.Popen([*CLI, *args, "--run-dir", str(run_b)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill it soon after its second checkpoint, mid-run
        latest = run_b / "checkpoints" / "latest"
        if latest.is_file() and latest.read_text().strip() >= "step_000000400":
            break
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_at = (run_b / "checkpoints" / "latest").read_text().strip()
    assert killed_at < f"step_{steps:09d}", "killed too late: the run had finished"
    resumed = subprocess.run([*CLI, "train", "--resume", str(run_b), "--total-env-steps", str(steps), "--no-progress"], env=ENV, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (ta, sa), (tb, sb) = _final_state(tmp_path / "a", steps), _final_state(run_b, steps)
    assert torch.equal(_flat(ta["agent"]), _flat(tb["agent"]))  # networks, targets, optimisers, log alpha
    assert torch.equal(ta["torch_rng"], tb["torch_rng"])
    assert sa["rng"] == sb["rng"] and sa["actor"] == sb["actor"] and sa["updates"] == sb["updates"]
    # evals.csv's wall_s counts the whole run's training time: it continues after the resume, not from 0
    evals_b = [(int(r["env_steps"]), float(r["wall_s"])) for r in csv.DictReader(open(run_b / "evals.csv"))]
    assert [e for e, _ in evals_b] == sorted(e for e, _ in evals_b) and len(evals_b) >= 3, evals_b
    assert all(w1 > w0 for (_, w0), (_, w1) in zip(evals_b, evals_b[1:])), evals_b
    log_a = [decode(f) for f in SegmentLog(tmp_path / "a" / "replay")]
    log_b = [decode(f) for f in SegmentLog(run_b / "replay")]
    assert len(log_a) == len(log_b) == steps
    for ma, mb in zip(log_a, log_b):
        for k in ma.arrays:
            np.testing.assert_array_equal(ma.arrays[k], mb.arrays[k], err_msg=k)


def test_old_format_runs_and_degenerate_counts_get_one_clear_error(tmp_path, capsys):
    old = tmp_path / "old"
    (old / "episodes").mkdir(parents=True)
    (old / "config.json").write_text(json.dumps({"env": "Pendulum-v1", "intervention": "none"}))
    with pytest.raises(CheckpointError, match="older robot_rl .*robot-rl eval --run-dir.*start a new run"):
        Trainer(TrainConfig(resume=old, progress=False))
    assert cli_main(["learner", "--resume", str(old), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "older robot_rl" in err and "Traceback" not in err
    base = dict(env="Pendulum-v1", num_demos=0, progress=False, run_dir=tmp_path / "r")
    for bad, match in ((dict(total_env_steps=0), "--total-env-steps must be >= 1"),
                       (dict(eval_episodes=0), "--eval-episodes must be >= 1"),
                       (dict(num_demos=-1), "--num-demos must be >= 0"),
                       (dict(update_ratio=-1.0), "--update-ratio must be >= 0"),
                       (dict(chunk_steps=0), "--chunk-steps must be >= 1"),
                       (dict(random_steps=-5), "--random-steps must be >= 0"),
                       (dict(demo_fraction=1.5), r"--demo-fraction must be in \[0, 1\]")):
        with pytest.raises(ConfigError, match=match):
            Trainer(TrainConfig(**{**base, **bad}))
        assert not (tmp_path / "r").exists()  # refused before creating the run
    assert cli_main(["train", "--env", "Pendulum-v1", "--total-env-steps", "0", "--run-dir", str(tmp_path / "x"),
                     "--no-progress"]) == 2
    assert "--total-env-steps must be >= 1" in capsys.readouterr().err


def test_learner_mode_resume_restores_the_checkpoint_and_keeps_every_logged_transition(tmp_path):
    """Learner mode (ZeroMQ's side, driven in process here): after a crash, --resume restores the
    checkpoint's networks, optimisers, temperature and RNG bit for bit, and keeps every transition
    logged after it (each was acknowledged to an actor that will not resend it), unlike train mode,
    which cuts the log back and repeats those steps."""
    from robot_rl.actor import ActorLoop, ActorSettings, build_actor_env
    from robot_rl.agent import SACConfig
    from robot_rl.learner import Learner, LearnerConfig, resolve_run

    cfg = LearnerConfig(env=ENV_ID, num_demos=0, run_dir=tmp_path / "run", progress=False, torch_threads=1,
                        agent=SACConfig(batch_size=16, utd_ratio=1, hidden_dims=(32, 32)))
    learner = Learner(cfg, None, "learner")
    settings = ActorSettings(env=ENV_ID, random_steps=10_000, chunk_steps=7)
    env, _ = build_actor_env(settings)
    actor = ActorLoop(env, settings)
    seq = 0

    def feed(steps: int) -> None:
        nonlocal seq
        for _ in range(steps):
            chunk, _ = actor.step(None)
            if chunk is not None:
                seq += 1
                chunk.actor, chunk.seq = "a0", seq
                learner.ingest(chunk)
            while learner.update_due():
                learner.update()

    feed(120)
    ckpt = learner.save()
    saved_tensors, saved_state = load_checkpoint(ckpt)
    feed(80)  # logged after the checkpoint, then the process dies (the log is flushed per chunk)
    received, online = learner.received, {k: getattr(learner.online, k).copy() for k in BUFFER_FIELDS}
    learner.log.close()
    env.close()
    resumed = Learner(*resolve_run(LearnerConfig(resume=tmp_path / "run", progress=False), "learner"), "learner")
    try:
        assert torch.equal(_flat(resumed.agent.checkpoint_state()), _flat(saved_tensors["agent"]))
        assert torch.equal(torch.get_rng_state(), saved_tensors["torch_rng"])
        assert resumed.rng.bit_generator.state == saved_state["rng"]["numpy"]
        assert resumed.updates == saved_state["updates"] > 0
        assert resumed.received == received == 200  # nothing logged after the checkpoint was lost
        for k in BUFFER_FIELDS:
            np.testing.assert_array_equal(getattr(resumed.online, k), online[k], err_msg=k)
        assert not list((tmp_path / "run").glob("replay_after_step_*"))
    finally:
        resumed.close()
