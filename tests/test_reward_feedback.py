"""The false-success loop (robot_rl.rewards.feedback): labels, retrain, swap, relabel, resume, actors.

A small success classifier is trained once per session on rendered pick-and-lift frames; runs use
it with a threshold of 0.05 (``--reward-kwargs threshold 0.05``), so it calls success far too
early: the scripted corrector (which never takes over here) marks those successes false from the
privileged check, and the loop must retrain the classifier, swap the new version in and relabel.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")

from robot_rl.errors import ConfigError, WireError  # noqa: E402
from robot_rl.rewards.classifier import SuccessClassifier  # noqa: E402
from robot_rl.rewards.train_classifier import TrainClassifierConfig, record_labelled_episodes, train_classifier  # noqa: E402
from robot_rl.transport.messages import TransitionChunk  # noqa: E402

torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])  # before EGL (see test_reward_classifier.py)

ENV_ID = "robot_rl/PandaPickLiftPixels-v0"
LOW = "0.05"  # a threshold that makes the classifier call success long before the cube is up
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    from robot_rl.envs import make_env

    root = tmp_path_factory.mktemp("feedback")
    env = make_env(ENV_ID, image_size=64, reward_type="dense", max_episode_steps=20)
    try:
        record_labelled_episodes(env, root / "demos", 20, 4, 300)
    finally:
        env.close()
    out = root / "classifier"
    train_classifier(TrainClassifierConfig(demos=(root / "demos",), cameras=("front",), out=out, epochs=6, patience=3,
                                           cnn_channels=16, seed=0, device="cpu", progress=False))
    return out


def _train_args(clf: Path, run: Path, steps: int, *extra: str) -> list[str]:
    return ["train", "--env", ENV_ID, "--env-kwargs", "image_size", "64", "--reward", "classifier",
            "--reward-model-path", str(clf), "--reward-kwargs", "threshold", LOW, "--teleop", "scripted",
            "--teleop-kwargs", "max_takeovers_per_episode", "0", "--reward-feedback.enabled",
            "--reward-feedback.retrain-every-labels", "3", "--total-env-steps", str(steps), "--num-demos", "1",
            "--random-steps", str(steps), "--agent.batch-size", "8", "--eval-episodes", "2",
            "--eval-every-steps", "0", "--checkpoint-every-steps", "1", "--no-final-video", "--no-progress",
            "--device", "cpu", "--torch-threads", "1", "--run-dir", str(run), *extra]


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(path))) if path.is_file() else []


def _logged(run: Path) -> list:
    from robot_rl.transport.records import SegmentLog
    from robot_rl.transport.wire import decode

    log = SegmentLog(run / "replay")
    try:
        return [decode(frames) for frames in log]
    finally:
        log.close()


def test_false_successes_are_labelled_retrained_swapped_and_relabelled(classifier, tmp_path):
    from robot_rl.cli import main
    from robot_rl.train import TrainConfig, Trainer

    run = tmp_path / "run"
    assert main(_train_args(classifier, run, 60)) == 0
    labels, versions = _rows(run / "reward_labels.csv"), _rows(run / "reward_versions.csv")
    episodes = _rows(run / "episodes.csv")
    # every episode the classifier ended on a (false) success is one label, with the version that called it
    flagged = [e for e in episodes if e["false_success"] == "1"]
    assert len(labels) == len(flagged) >= 3
    assert all(e["success"] == "0" for e in flagged)  # the operator's verdict, not the classifier's
    assert versions and int(versions[0]["version"]) == 1 and int(versions[0]["labels"]) >= 3
    assert labels[0]["reward_version"] == "0"
    # the new version is saved, reward.json points at the newest one, and its threshold is no longer 0.05
    newest = int(versions[-1]["version"])
    reward = json.loads((run / "reward.json").read_text())
    assert reward["path"] == f"reward_model_v{newest}"
    v = SuccessClassifier.load(run / reward["path"])
    assert v.threshold > 0.2 and v.threshold == pytest.approx(float(versions[-1]["threshold"]), abs=1e-4)
    # every logged chunk records the version that rewarded it; a false success is stored cut, reward 0
    msgs = _logged(run)
    assert all("reward_version" in m.arrays for m in msgs)
    seen = sorted({int(x) for m in msgs for x in m.arrays["reward_version"]})
    assert seen[0] == 0 and seen[-1] == newest
    cut = [m for m in msgs if (m.meta.get("episode_stats") or {}).get("false_success")]
    assert cut and all(m.arrays["reward"][-1] == 0 and not m.arrays["terminated"][-1] and m.arrays["truncated"][-1]
                       for m in cut)
    # resume: the checkpoint's version is swapped in, and every buffered reward is that version's
    trainer = Trainer(TrainConfig(resume=run, total_env_steps=60, progress=False))
    try:
        model = trainer.reward_model
        assert model.version == newest and model.path == run / f"reward_model_v{newest}"
        for buf in (trainer.learner.online, trainer.learner.demo_buffer):
            rows = np.flatnonzero(buf.valid)
            nxt = (rows + 1) % buf.capacity
            expected = v.rewards({"front": buf.images["front"][nxt]})
            # ... except where the operator labelled the next frame false: their verdict wins over any version
            labelled = {lb.frames["front"].tobytes() for lb in trainer.learner.feedback.labels}
            overruled = np.array([buf.images["front"][j].tobytes() in labelled for j in nxt])
            expected[overruled] = 0.0
            np.testing.assert_array_equal(buf.reward[rows], expected)
            np.testing.assert_array_equal(buf.terminated[rows], expected >= 0.5)
        assert trainer.learner.feedback.labels_at_version == int(versions[-1]["labels"])
        assert len(trainer.learner.feedback.labels) == len(labels)  # rebuilt from the replay log
    finally:
        trainer.close()
    # robot-rl eval uses the newest version; the evaluation rows say which version judged
    evals = _rows(run / "evals.csv")
    assert evals[-1]["reward_model_version"] == str(newest) and evals[-1]["reward_agreement"] != ""


def test_retrain_on_demand_and_relabel_arithmetic(classifier, tmp_path):
    """A version made on demand relabels exactly the transitions its verdict changed; stale chunks too."""
    from robot_rl.rewards.feedback import RETRAIN_FILE
    from robot_rl.train import TrainConfig, Trainer
    import tyro

    run = tmp_path / "run"
    cfg = tyro.cli(TrainConfig, args=_train_args(classifier, run, 40, "--reward-feedback.retrain-every-labels", "1000")[1:])
    trainer = Trainer(cfg)
    try:
        trainer.run()
        lr = trainer.learner
        fb = lr.feedback
        assert fb.version == 0 and len(fb.labels) >= 1 and not fb.due()  # 1000 labels are far away
        (run / RETRAIN_FILE).touch()
        assert fb.due()
        bufs = (lr.online, lr.demo_buffer)
        old = [b.reward.copy() for b in bufs]
        row = lr.retrain_reward_model()
        assert fb.version == 1 and not (run / RETRAIN_FILE).exists()
        rows = [np.flatnonzero(b.valid) for b in bufs]
        changed = sum(int((o[r] != b.reward[r]).sum()) for o, r, b in zip(old, rows, bufs))
        # the 0.05 threshold's false rewards on the demo frames are gone (online, the operator had zeroed them)
        assert changed > 0 and row["rewards_changed"] == changed
        assert row["relabelled"] == sum(len(r) for r in rows)
        for b, r in zip(bufs, rows):
            np.testing.assert_array_equal(b.reward[r] > 0, b.terminated[r])
        # a chunk an actor rewarded with version 0 is relabelled to version 1 as it arrives
        msg = _logged(run)[0]
        chunk = TransitionChunk.from_message(msg, lr.layout.state_dim, lr.layout.image_shapes, lr.scaler.dim)
        assert int(chunk.reward_version[0]) == 0
        fb.relabel_chunk(chunk)
        nxt = chunk.images["front"][1:] if chunk.first else chunk.images["front"]
        np.testing.assert_array_equal(chunk.reward, fb.model.rewards({"front": nxt}))
        assert set(chunk.reward_version.tolist()) == {1}
    finally:
        trainer.close()


def test_operator_failure_button_within_the_window_marks_a_false_success(classifier):
    """A human device: the failure button pressed after the classifier's success (within the window)."""
    from robot_rl.envs import make_env
    from robot_rl.interfaces import Teleop, TeleopCommand
    from robot_rl.intervention import InterventionWrapper
    from robot_rl.rewards.selection import wrap_with_reward

    class Operator(Teleop):  # a device whose failure (or success) button is pressed after `press_after` reads
        def __init__(self, press_after: int | None, button: str = "failure") -> None:
            self.reads, self.press_after, self.button = 0, press_after, button

        def read(self) -> TeleopCommand:
            self.reads += 1
            pressed = self.press_after is not None and self.reads > self.press_after
            return TeleopCommand(twist=np.zeros(6), **{self.button: pressed})

    model = SuccessClassifier.load(classifier, threshold=1e-6)  # everything is a success
    for press_after, window, expected in ((3, 1.0, True), (None, 0.1, False), (10_000, 0.05, False)):
        env = InterventionWrapper(wrap_with_reward(make_env(ENV_ID, image_size=64), model), Operator(press_after),
                                  false_success_window_s=window)
        try:
            env.reset(seed=0)
            _, reward, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, np.float32))
        finally:
            env.close()
        assert info["reward_model_success"] and "success_probability" in info
        assert bool(info.get("false_success")) is expected
        if expected:
            assert (reward, terminated, truncated, info["is_success"]) == (0.0, False, True, False)
        else:
            assert terminated and info["is_success"] and reward == 1.0
    # the other way round: the success button where the classifier says no is a missed success (a positive label)
    strict = SuccessClassifier.load(classifier, threshold=1 - 1e-6)  # nothing is a success
    env = InterventionWrapper(wrap_with_reward(make_env(ENV_ID, image_size=64), strict), Operator(0, "success"))
    try:
        env.reset(seed=0)
        _, reward, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, np.float32))
    finally:
        env.close()
    assert info["missed_success"] and info["is_success"] and terminated and not truncated and reward == 1.0


def test_scripted_corrector_reviews_from_the_privileged_check(classifier):
    """The scripted operator: a false success where the task is not done, a missed success (only with
    review_missed_successes) where it is; and the learner keeps both verdicts over any version."""
    from robot_rl.envs import make_env
    from robot_rl.rewards.feedback import FalseSuccessLoop, FeedbackConfig
    from robot_rl.sim.corrector import CorrectorConfig, ScriptedCorrector
    from robot_rl.sim.scripted import scripted_policy_for

    env = make_env(ENV_ID, image_size=64)
    try:
        judge = ScriptedCorrector(env, CorrectorConfig(max_takeovers_per_episode=0, review_missed_successes=True))
        default = ScriptedCorrector(env, CorrectorConfig(max_takeovers_per_episode=0))
        obs, _ = env.reset(seed=1)
        assert judge.review_success({}) and not judge.review_missed_success({})  # nothing done yet
        policy = scripted_policy_for(env)
        for _ in range(60):
            obs, *_ = env.step(policy(obs))
            if env.unwrapped.task.is_success():
                break
        assert env.unwrapped.task.is_success()
        assert not judge.review_success({}) and judge.review_missed_success({})
        assert not default.review_missed_success({})  # off by default
        frame = np.array(obs["images"]["front"])
    finally:
        env.close()
    loop = FalseSuccessLoop(SuccessClassifier.load(classifier), classifier.parent / "loop_run", FeedbackConfig(enabled=True), 0)
    nothing = np.zeros_like(frame)
    chunk = TransitionChunk("a0", 1, 0, 0, False, np.zeros((2, 1), np.float32), {"front": np.stack([nothing, frame])},
                            np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.array([False, True]),
                            np.zeros(2, bool), np.zeros(2, bool), np.arange(2, dtype=np.int64),
                            episode_stats={"missed_success": True}, reward_version=np.zeros(2, np.int32))
    label = loop.observe(chunk, 2)
    assert label is not None and label.label == 1.0 and np.array_equal(label.frames["front"], frame)
    reward, terminated = np.zeros(2, np.float32), np.zeros(2, bool)  # whatever a version says of it ...
    loop._keep_operator_verdict({"front": np.stack([nothing, frame])}, reward, terminated)
    assert reward.tolist() == [0.0, 1.0] and terminated.tolist() == [False, True]  # ... the operator's verdict wins


def test_bad_settings_are_refused(classifier, tmp_path):
    from robot_rl.cli import main
    from robot_rl.rewards.feedback import FalseSuccessLoop, FeedbackConfig

    common = ["--total-env-steps", "10", "--num-demos", "0", "--no-progress", "--device", "cpu"]
    # the loop needs a classifier and a teleop that can mark false successes
    assert main(["train", "--env", ENV_ID, "--reward-feedback.enabled", "--run-dir", str(tmp_path / "a"), *common]) == 2
    assert main(["train", "--env", ENV_ID, "--env-kwargs", "image_size", "64", "--reward", "classifier",
                 "--reward-model-path", str(classifier), "--reward-feedback.enabled", "--run-dir", str(tmp_path / "b"),
                 *common]) == 2
    assert main(_train_args(classifier, tmp_path / "c", 10, "--reward-feedback.retrain-every-labels", "0")) == 2
    for run in ("a", "b", "c"):
        assert not (tmp_path / run / "config.json").exists()
    # the classifier's training episodes must be found to retrain on them
    model = SuccessClassifier.load(classifier)
    with pytest.raises(ConfigError, match="base-demos"):
        FalseSuccessLoop(model, tmp_path, FeedbackConfig(enabled=True, base_demos=(tmp_path / "nowhere",)), 0)


def test_reward_version_travels_on_the_wire():
    rng = np.random.default_rng(0)
    chunk = TransitionChunk("a0", 1, 0, 0, True, rng.random((3, 4), dtype=np.float32), {},
                            rng.random((2, 2), dtype=np.float32), np.zeros(2, np.float32), np.zeros(2, bool),
                            np.zeros(2, bool), np.zeros(2, bool), np.arange(2, dtype=np.int64),
                            reward_version=np.array([3, 4], np.int32))
    back = TransitionChunk.from_message(chunk.to_message(), 4, {}, 2)
    assert back.reward_version.tolist() == [3, 4]
    msg = chunk.to_message()
    msg.arrays["reward_version"] = np.array([1, 2, 3], np.int32)
    with pytest.raises(WireError, match="reward_version"):
        TransitionChunk.from_message(msg, 4, {}, 2)
    chunk.reward_version = None  # an actor without a reward model sends none
    assert TransitionChunk.from_message(chunk.to_message(), 4, {}, 2).reward_version is None


@pytest.mark.timeout(400)
def test_learner_sends_each_version_to_its_actor(classifier, tmp_path):
    """robot-rl learner with the loop + robot-rl actor over ZeroMQ: the actor's false successes reach
    the learner, the learner retrains, and the actor swaps the new version in (later chunks carry it)."""
    from tests.test_hil import _actor, _free_port_pair, _learner, _stop

    port = _free_port_pair()
    learner = _learner(tmp_path, port, "--env", ENV_ID, "--env-kwargs", "image_size", "64", "--num-demos", "0",
                       "--reward-feedback.enabled", "--reward-feedback.model-path", str(classifier),
                       "--reward-feedback.retrain-every-labels", "2", "--reward-feedback.epochs", "1",
                       "--agent.batch-size", "8",
                       "--learning-starts", "30")
    actor = None
    try:
        actor = _actor(tmp_path, port, 150, "--realtime", "--env", ENV_ID, "--env-kwargs", "image_size", "64", "--reward",
                       "classifier", "--reward-model-path", str(classifier), "--reward-kwargs", "threshold", LOW,
                       "--teleop", "scripted", "--teleop-kwargs", "max_takeovers_per_episode", "0",
                       "--random-steps", "150", "--chunk-steps", "5", "--torch-threads", "1")
        assert actor.wait(300) == 0, (tmp_path / "actor.log").read_text()[-3000:]
    finally:
        if actor is not None and actor.poll() is None:
            actor.kill()
        assert _stop(learner) == 0, (tmp_path / "learner.log").read_text()[-3000:]
    run = tmp_path / "run"
    versions = _rows(run / "reward_versions.csv")
    assert versions, (tmp_path / "learner.log").read_text()[-3000:]
    actor_log = (tmp_path / "actor.log").read_text()
    assert "reward model version 1 swapped in" in actor_log
    seen = [int(x) for m in _logged(run) for x in m.arrays["reward_version"]]
    assert seen[0] == 0 and max(seen) >= 1 and seen == sorted(seen)  # one actor: versions only go up
