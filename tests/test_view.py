"""The Rerun view (robot_rl.view): recorded episodes and a training run round-trip through Rerun's
own reader; bad targets and a missing rerun-sdk give clear errors."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rerun")
from rerun.chunk import RrdReader

from robot_rl.cli import main
from robot_rl.demos import load_episodes
from robot_rl.errors import ConfigError
from robot_rl.record import RecordDemosConfig, record_demos
from robot_rl.view import LiveView, ViewConfig, run_view


def entity_rows(path: Path) -> Counter:
    """Temporal rows per entity path of an .rrd file, read with Rerun's own API."""
    rows: Counter = Counter()
    for chunk in RrdReader(str(path)).stream():
        if not chunk.is_static:
            rows[chunk.entity_path] += chunk.num_rows
    return rows


def test_recorded_episodes_round_trip_through_robot_rl_view(tmp_path):
    demos = tmp_path / "demos"
    record_demos(RecordDemosConfig(env="robot_rl/PandaPickLiftPixels-v0", env_kwargs={"image_size": "32"},
                                   num_episodes=2, out=demos), progress=False)
    episodes = load_episodes(demos)
    lengths = [len(e) for e in episodes]
    out = tmp_path / "demos.rrd"
    assert main(["view", str(demos), "--out", str(out)]) == 0
    rows = entity_rows(out)
    total = sum(lengths)
    cameras = list(episodes[0].observations["images"])
    for cam in cameras:
        assert rows[f"/camera/{cam}"] == total
    for entity in ("/world/ee", "/world/action", "/step/reward", "/step/intervention", "/step/is_success"):
        assert rows[entity] == total, entity
    assert rows["/step/action/policy"] + rows["/step/action/human"] == total
    for entity in ("/episode/return", "/episode/success", "/episode/intervention_rate"):
        assert rows[entity] == len(episodes), entity
    # the values: the rewards read back equal the recorded ones
    rewards = []
    for chunk in RrdReader(str(out)).stream():
        if chunk.entity_path == "/step/reward" and not chunk.is_static:
            rewards += [v[0] for v in chunk.to_record_batch().column("Scalars:scalars").to_pylist()]
    np.testing.assert_allclose(rewards, np.concatenate([e.rewards for e in episodes]), rtol=1e-6)
    # one episode file, every second camera frame
    one = tmp_path / "one.rrd"
    run_view(ViewConfig(target=min(demos.glob("episode_*.npz")), out=one, every_frames=2))
    rows = entity_rows(one)
    assert rows["/step/reward"] == lengths[0] and rows[f"/camera/{cameras[0]}"] == (lengths[0] + 1) // 2


def test_train_with_view_logs_every_step_and_episode(tmp_path):
    out = tmp_path / "live.rrd"
    run = tmp_path / "run"
    assert main(["train", "--env", "Pendulum-v1", "--total-env-steps", "250", "--num-demos", "0",
                 "--eval-every-steps", "0", "--checkpoint-every-steps", "0", "--no-progress", "--no-final-video",
                 "--agent.batch-size", "16", "--agent.hidden-dims", "16", "16", "--random-steps", "250",
                 "--run-dir", str(run), "--view", "--view-target", str(out)]) == 0
    rows = entity_rows(out)  # Trainer.close closed the view: the file is complete
    for entity in ("/step/reward", "/step/intervention", "/step/action/policy"):
        assert rows[entity] == 250, entity
    assert rows["/episode/return"] == 1  # Pendulum: one finished 200-step episode
    assert not any(e.startswith(("/camera", "/world/")) for e in rows)  # a state env without an EE pose
    # the run directory itself round-trips through `robot-rl view`
    replay = tmp_path / "replay.rrd"
    assert main(["view", str(run), "--out", str(replay)]) == 0
    rows = entity_rows(replay)
    assert rows["/step/reward"] == 250 and rows["/episode/return"] == 1


def test_bad_view_targets_and_missing_rerun(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ConfigError, match="run directory.*episode_.*MCAP"):
        run_view(ViewConfig(target=tmp_path, out=tmp_path / "x.rrd"))
    with pytest.raises(ConfigError, match="run directory"):
        run_view(ViewConfig(target=tmp_path / "notes.txt", out=tmp_path / "x.rrd"))
    with pytest.raises(ConfigError, match="must end in .rrd"):
        run_view(ViewConfig(target=tmp_path, out=tmp_path / "x.mp4"))
    with pytest.raises(ConfigError, match="neither a Rerun viewer URL"):
        LiveView("http://example.org:9876")
    assert main(["view", str(tmp_path / "missing")]) == 2  # one-line error, exit status 2
    monkeypatch.setitem(sys.modules, "rerun", None)  # rerun-sdk not installed
    with pytest.raises(ConfigError, match=r"pip install -e \.\[view\]"):
        LiveView(tmp_path / "x.rrd")
    assert main(["train", "--env", "Pendulum-v1", "--view", "--view-target", str(tmp_path / "y.rrd"),
                 "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


def test_q_value_of_the_learners_critic_is_logged_in_train(tmp_path):
    """Where the critic is in the process (`robot-rl train`), the view logs Q(s, a) of each step."""
    from robot_rl.train import TrainConfig, Trainer, train

    out = tmp_path / "q.rrd"
    trainer = Trainer(TrainConfig(env="Pendulum-v1", total_env_steps=30, num_demos=0, eval_every_steps=0,
                                  checkpoint_every_steps=0, progress=False, final_video=False, run_dir=tmp_path / "run",
                                  view=True, view_target=str(out)))
    try:
        trainer.run()
    finally:
        trainer.close()
    rows = entity_rows(out)
    assert rows["/step/q"] == 30 and rows["/step/reward"] == 30
    # --resume takes this call's view flags (the run saved view=True with the first file)
    resumed = tmp_path / "resumed.rrd"
    train(TrainConfig(resume=tmp_path / "run", total_env_steps=50, progress=False, view=True,
                      view_target=str(resumed)))
    assert entity_rows(resumed)["/step/q"] == 20
