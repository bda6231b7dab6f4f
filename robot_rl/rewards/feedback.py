"""A success classifier that learns from its mistakes while the policy trains (the false-success loop).

A policy trained on a learned reward finds the classifier's false positives: states the classifier
calls success that are not (measured here: from 5k env steps on, the classifier called all 20
evaluation episodes successful while the privileged check agreed on 75-100%). HIL-SERL's remedy
is to label those frames negative and retrain the classifier; there it is a manual step between
runs. Here it is part of training:

1. **Label.** When the classifier ends an episode on its success and the operator presses the
   teleop's failure button (within ``--false-success-window-s``), the step is stored as a false
   success (:class:`~robot_rl.intervention.InterventionWrapper`: reward 0, not terminal, the
   episode cut) and the episode's stats carry ``false_success``. The frame the classifier called
   success (the last observation of that episode) becomes a negative label. The scripted corrector
   answers from the privileged success check, so this runs with no person (benchmarks).
   The other direction too: a success the classifier missed, marked with the teleop's success
   button (the scripted corrector with ``review_missed_successes``, off by default), becomes a
   positive label. Labels are rebuilt from the replay log, so a crash loses none;
   ``reward_labels.csv`` lists them.
2. **Retrain.** Every ``retrain_every_labels`` new labels (or on demand: ``touch
   RUN/retrain_reward_model``) the learner fine-tunes the classifier, starting from the current
   weights, on its original training episodes (the ``--demos`` of ``robot-rl
   train-reward-classifier``, read from the classifier's ``config.json``, or ``base_demos``) plus
   every feedback label, repeated so that they make up ``feedback_share`` of the negatives, with
   :func:`~robot_rl.rewards.train_classifier.fit_classifier` (the same training as the first
   classifier: balanced batches, augmentation, early stopping). The threshold is chosen again by
   the classifier's own rule on its validation episodes plus the feedback labels (too few to hold
   any out; the agreement that matters is measured on fresh evaluation episodes). Retraining uses
   its own seed and leaves the learner's RNG streams untouched.
3. **Swap.** The new version is saved as ``RUN/reward_model_v<k>/`` and ``reward.json`` points at
   it (``robot-rl eval`` and a new ``--resume`` pick it up); in ``robot-rl train`` the one model
   object the actor, the learner and evaluation share is updated in place; ``robot-rl learner``
   sends it to its actors with the policy parameters (they swap it in between steps).
4. **Consistent rewards: relabel.** Every transition records the version that rewarded it
   (``reward_version`` in the chunk and the replay log). After a swap the learner recomputes the
   reward and termination of every transition in its online and demo buffers with the new
   version, and relabels chunks of an older version as they arrive (actors that have not swapped
   yet) and when the log is replayed on resume. Relabel, not per-version rewards: the point of
   retraining is to stop paying for the false positives, and transitions that keep the old
   version's reward would keep teaching the critic that the false success pays for as long as they
   stay in the buffer (100k transitions by default). The operator's verdict wins over every
   version: a transition whose next frame is a labelled one keeps reward 0 and stays non-terminal
   (frames are matched by content), even where a version still calls it success
   (``labels_wrong`` in ``reward_versions.csv`` counts the labels a version gets wrong). A step the human
   ended with the teleop's success button is relabelled by the model (the button's verdict is
   not stored per transition).

Source: Luo et al. 2024 (HIL-SERL), arXiv:2410.21845, section III-C (reward classifier, false
positives added as negatives and retrained); reference: github.com/rail-berkeley/hil-serl.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from robot_rl.errors import ConfigError
from robot_rl.validate import require_at_least

#: touch this file in a run directory to retrain the reward model at the next episode end
RETRAIN_FILE = "retrain_reward_model"
#: one row per operator label (env step, actor, episode, version that judged the frame, label 0/1)
LABELS_FILE = "reward_labels.csv"
#: one row per retrained version (labels, threshold, metrics, relabelled transitions)
VERSIONS_FILE = "reward_versions.csv"
LABEL_COLUMNS = ("env_steps", "actor", "episode", "reward_version", "label")
VERSION_COLUMNS = ("version", "env_steps", "labels", "threshold", "val_precision", "val_recall", "val_f1",
                   "labels_wrong", "epochs", "retrain_s", "relabelled", "rewards_changed", "path")


@dataclass
class FeedbackConfig:
    """The false-success loop (``--reward-feedback.*``; :mod:`robot_rl.rewards.feedback`)."""

    enabled: bool = False
    """retrain the success classifier during training on the frames the operator marked false successes (the teleop failure button after a classifier success; the scripted corrector's privileged check), swap the new version in for actor and learner, relabel the stored rewards. Needs --reward classifier."""
    retrain_every_labels: int = 5
    """retrain after this many new operator labels (false successes, and missed successes) (and on demand: touch RUN/retrain_reward_model)."""
    epochs: int = 10
    """maximum fine-tuning epochs per retrain (early stopping on the validation loss)."""
    patience: int = 3
    """stop a retrain after this many epochs without a lower validation loss."""
    feedback_share: float = 0.25
    """the feedback labels are repeated so that they make up this fraction of the training negatives."""
    base_demos: tuple[Path, ...] = ()
    """the classifier's original training episodes (default: the --demos saved in its config.json)."""
    model_path: Path | None = None
    """`robot-rl learner` only: the success classifier its actors reward with (`robot-rl train` uses --reward-model-path)."""


def check_feedback_config(cfg: FeedbackConfig) -> None:
    """Reject nonsensical loop settings.

    Raises:
        ConfigError: naming the flag and its value.
    """
    require_at_least("--reward-feedback.retrain-every-labels", cfg.retrain_every_labels, 1)
    require_at_least("--reward-feedback.epochs", cfg.epochs, 1)
    require_at_least("--reward-feedback.patience", cfg.patience, 1)
    if not 0.0 < cfg.feedback_share < 1.0:
        raise ConfigError(f"--reward-feedback.feedback-share must be in (0, 1), got {cfg.feedback_share}")


@dataclass
class FeedbackLabel:
    """One operator label: the frame a reward model called success, per camera ``(H, W, 3) uint8``."""

    frames: dict[str, np.ndarray]
    label: float
    env_steps: int
    actor: str
    episode: int
    reward_version: int


def _append_row(path: Path, columns: tuple[str, ...], row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(columns)
        w.writerow([row.get(c, "") for c in columns])


def version_dir(run_dir: Path, version: int) -> Path:
    """Directory of reward-model ``version`` in a run: ``reward_model`` (0) or ``reward_model_v<k>``."""
    return Path(run_dir) / ("reward_model" if version == 0 else f"reward_model_v{version}")


def base_training_settings(model: Any, cfg: FeedbackConfig) -> Any:
    """The ``TrainClassifierConfig`` a classifier was trained with (from its ``config.json``), with
    ``cfg.base_demos`` replacing its demos when given: what the loop retrains on.

    Raises:
        ConfigError: the classifier records no training settings and no ``base_demos`` are given,
            or the training episodes' directories are not there.
    """
    from robot_rl.config_io import dataclass_from_dict
    from robot_rl.rewards.train_classifier import TrainClassifierConfig

    path = getattr(model, "path", None)
    raw = json.loads((Path(path) / "config.json").read_text()) if path is not None else {}
    settings = dict(raw.get("training", {}).get("settings", {}))
    if not settings and not cfg.base_demos:
        raise ConfigError(f"the success classifier in {path} does not say what it was trained on (no training "
                          "settings in its config.json); pass --reward-feedback.base-demos DIR [DIR2 ...]")
    known = set(TrainClassifierConfig.__dataclass_fields__)
    tc = dataclass_from_dict(TrainClassifierConfig, {k: v for k, v in settings.items() if k in known},
                             f"{path}/config.json")
    if cfg.base_demos:
        tc = replace(tc, demos=tuple(Path(d) for d in cfg.base_demos))
    missing = [str(d) for d in tc.demos if not Path(d).is_dir()]
    if missing or not tc.demos:
        raise ConfigError(f"the false-success loop retrains the classifier on its original training episodes "
                          f"{[str(d) for d in tc.demos] or '(none recorded)'}, and {missing or 'they'} are not "
                          "there; pass --reward-feedback.base-demos DIR [DIR2 ...]")
    return tc


class FalseSuccessLoop:
    """Labels, retraining, swap and relabelling of a success classifier (module docstring).

    Args:
        model: the run's :class:`~robot_rl.rewards.classifier.SuccessClassifier`; updated in place
            at each swap (so every holder of it sees the new version).
        run_dir: the run directory (version directories, ``reward.json``, CSVs live there).
        cfg: the loop's settings.
        seed: the run's seed (retrain ``k`` uses its own seed derived from it).

    Raises:
        ConfigError: the model is not a success classifier, or its original training episodes
            cannot be found.
    """

    def __init__(self, model: Any, run_dir: Path, cfg: FeedbackConfig, seed: int) -> None:
        from robot_rl.rewards.classifier import SuccessClassifier

        check_feedback_config(cfg)
        if not isinstance(model, SuccessClassifier):
            raise ConfigError("--reward-feedback.enabled retrains a learned success classifier: use it with --reward "
                              f"classifier --reward-model-path DIR (this run's reward model is {type(model).__name__})")
        self.model, self.run_dir, self.cfg, self.seed = model, Path(run_dir), cfg, int(seed)
        self.labels: list[FeedbackLabel] = []
        self._negatives: set[bytes] = set()  # content digests of the frames labelled false successes
        self._positives: set[bytes] = set()  # ... and of the successes the model missed
        self.labels_at_version = 0  # labels there were when the current version was trained
        self.train_settings = base_training_settings(model, cfg)
        self._base: tuple[Any, Any] | None = None
        v0 = version_dir(self.run_dir, 0)
        if not (v0 / "config.json").is_file() and model.path is not None:  # learner mode: keep version 0 with the run
            import shutil

            shutil.copytree(model.path, v0, dirs_exist_ok=True)
        self.model.version = 0  # a resumed run swaps in its checkpoint's version (load_state_dict)

    # ------------------------------------------------------------------ data
    def _base_frames(self) -> tuple[Any, Any]:
        """The original train / validation frames (loaded once, split as the classifier was)."""
        if self._base is None:
            from robot_rl.rewards.train_classifier import load_labelled_frames, split_episodes

            tc = self.train_settings
            frames, outcomes, _ = load_labelled_frames(tc.demos, tuple(self.model.cameras), tc.final_k,
                                                       tc.success_flags, self.model.net)
            tr, va, _ = split_episodes(outcomes, tc.val_fraction, tc.test_fraction, tc.seed)
            self._base = (frames.subset(np.flatnonzero(np.isin(frames.episode, tr))),
                          frames.subset(np.flatnonzero(np.isin(frames.episode, va))))
        return self._base

    def observe(self, chunk: Any, env_steps: int) -> FeedbackLabel | None:
        """Take the label a chunk carries: on the chunk that ends an episode the operator marked a
        false success, the last observation (the frame the model called success) as a negative; on
        one that ends with a success the model missed (``missed_success``), that frame as a positive.

        Args:
            chunk: a :class:`~robot_rl.transport.messages.TransitionChunk`.
            env_steps: the learner's env-step count after the chunk.

        Returns:
            The new label, or None.
        """
        stats = chunk.episode_stats
        if not stats or not (stats.get("false_success") or stats.get("missed_success")):
            return None
        missing = [c for c in self.model.cameras if c not in chunk.images]
        if missing:
            raise ConfigError(f"an operator label lacks cameras {missing} that the reward model reads")
        version = int(chunk.reward_version[-1]) if chunk.reward_version is not None else 0
        positive = not stats.get("false_success")
        label = FeedbackLabel({c: np.array(chunk.images[c][-1], copy=True) for c in self.model.cameras},
                              float(positive), int(env_steps), chunk.actor, int(chunk.episode), version)
        self.labels.append(label)
        (self._positives if positive else self._negatives).add(self._digest(label.frames))
        return label

    def _digest(self, images: dict[str, np.ndarray], i: int | None = None) -> bytes:
        """Content digest of one step's frames of the cameras the model reads: ``images[c][i]``, or
        ``images[c]`` itself (one ``(H, W, 3)`` frame) when ``i`` is None."""
        h = hashlib.blake2b(digest_size=16)
        for c in self.model.cameras:
            frame = images[c] if i is None else images[c][i]
            h.update(np.ascontiguousarray(frame).tobytes())
        return h.digest()

    def _keep_operator_verdict(self, images: dict[str, np.ndarray], reward: np.ndarray, terminated: np.ndarray) -> None:
        """In place: reward 0 and no termination where the next frame is one the operator labelled a
        false success; the success reward and termination where they labelled a missed success."""
        if self._negatives:
            for i in np.flatnonzero(terminated | (reward > 0)):
                if self._digest(images, int(i)) in self._negatives:
                    reward[i], terminated[i] = 0.0, False
        if self._positives:
            from robot_rl.intervention import MISSED_SUCCESS_REWARD

            for i in np.flatnonzero(~terminated):
                if self._digest(images, int(i)) in self._positives:
                    reward[i], terminated[i] = MISSED_SUCCESS_REWARD, True

    def record(self, label: FeedbackLabel) -> None:
        """Append a live label to ``reward_labels.csv`` (labels replayed from the log are not repeated)."""
        _append_row(self.run_dir / LABELS_FILE, LABEL_COLUMNS,
                    {"env_steps": label.env_steps, "actor": label.actor, "episode": label.episode,
                     "reward_version": label.reward_version, "label": int(label.label)})

    # ------------------------------------------------------------------ retrain
    @property
    def version(self) -> int:
        """The current version of the model."""
        return int(self.model.version)

    def due(self) -> bool:
        """True when ``retrain_every_labels`` new labels arrived since the current version, or the
        run directory holds the on-demand file ``retrain_reward_model`` (and there is a label)."""
        new = len(self.labels) - self.labels_at_version
        return new >= self.cfg.retrain_every_labels or (bool(self.labels) and (self.run_dir / RETRAIN_FILE).exists())

    def retrain(self, env_steps: int, progress: bool = True) -> dict[str, Any]:
        """Fine-tune the model on the original frames plus every label, save it as the next
        version, swap it in and point ``reward.json`` at it.

        Returns:
            The version's row of ``reward_versions.csv`` (without the relabel counts).
        """
        import time

        from robot_rl.rewards.classifier import SuccessClassifier
        from robot_rl.rewards.train_classifier import (FrameDataset, _predict, binary_metrics, choose_threshold,
                                                       fit_classifier)

        t0 = time.perf_counter()
        tc = self.train_settings
        train, val = self._base_frames()
        net = copy.deepcopy(self.model.net).cpu()
        raw = {c: torch.from_numpy(np.stack([lb.frames[c] for lb in self.labels])) for c in self.model.cameras}
        crops = {c: v.numpy() for c, v in net.preprocess(raw).items()}
        labels = np.array([lb.label for lb in self.labels], np.float32)
        feedback = FrameDataset(crops, labels, np.full(len(labels), -1, np.int64))
        n_neg = int((train.labels <= 0.5).sum())
        share = self.cfg.feedback_share  # of the negatives (positives labelled by the operator are repeated alike)
        n_fb_neg = max(1, int((labels <= 0.5).sum()))
        reps = max(1, math.ceil(share * n_neg / ((1 - share) * n_fb_neg)))

        def cat(*parts: Any) -> Any:
            return FrameDataset({c: np.concatenate([p.images[c] for p in parts]) for c in crops},
                                np.concatenate([p.labels for p in parts]), np.concatenate([p.episode for p in parts]))

        version = self.version + 1
        fit_cfg = replace(tc, epochs=self.cfg.epochs, patience=self.cfg.patience, progress=False,
                          seed=int(np.random.SeedSequence([self.seed, version]).generate_state(1)[0] >> 1))
        with torch.random.fork_rng(devices=[]):  # the learner's torch RNG stream is not disturbed
            history = fit_classifier(net, cat(train, *([feedback] * reps)), cat(val, feedback), fit_cfg,
                                     torch.device("cpu"))
        val_all = cat(val, feedback)
        prob = _predict(net, val_all, torch.device("cpu"))
        threshold = choose_threshold(prob, val_all.labels, tc.threshold_rule, tc.target_precision)
        base_val = binary_metrics(prob[:len(val)], val.labels, threshold)
        still = int(((prob[len(val):] >= threshold) != (labels > 0.5)).sum())  # labels the new version gets wrong
        settings = replace(self.model.settings, threshold=threshold)
        out = version_dir(self.run_dir, version)
        SuccessClassifier(settings, net, device="cpu").save(out, extra={
            "settings": json.loads((version_dir(self.run_dir, 0) / "config.json").read_text()).get("training", {}).get(
                "settings", {}),
            "feedback": {"version": version, "labels": len(self.labels), "env_steps": int(env_steps),
                         "history": history}})
        self._swap(out, net.state_dict(), threshold, version)
        self.labels_at_version = len(self.labels)
        (self.run_dir / RETRAIN_FILE).unlink(missing_ok=True)
        row = {"version": version, "env_steps": int(env_steps), "labels": len(self.labels),
               "threshold": round(threshold, 4), "val_precision": round(base_val["precision"], 4),
               "val_recall": round(base_val["recall"], 4), "val_f1": round(base_val["f1"], 4),
               "labels_wrong": still, "epochs": history["epochs"],
               "retrain_s": round(time.perf_counter() - t0, 2), "path": out.name}
        return row

    def _swap(self, path: Path, state: dict[str, torch.Tensor], threshold: float, version: int) -> None:
        """Load the new weights and threshold into the shared model object; point reward.json at ``path``."""
        from robot_rl.rewards.selection import write_run_reward_config

        self.model.net.load_state_dict(state)
        self.model.net.eval()
        self.model.settings.threshold = float(threshold)
        self.model.version = int(version)
        self.model.path = path
        write_run_reward_config(self.run_dir, self.model)

    def load_version(self, version: int) -> None:
        """Swap in a saved version (resume: the checkpoint's version).

        Raises:
            CheckpointError: its directory is missing or unreadable.
        """
        from robot_rl.rewards.classifier import SuccessClassifier

        path = version_dir(self.run_dir, version)
        saved = SuccessClassifier.load(path)
        self._swap(path, saved.net.state_dict(), saved.threshold, version)

    def finish_version(self, row: dict[str, Any]) -> None:
        """Append a retrain's row (with its relabel counts) to ``reward_versions.csv``."""
        _append_row(self.run_dir / VERSIONS_FILE, VERSION_COLUMNS, row)

    # ------------------------------------------------------------------ relabel
    def _score(self, images: dict[str, np.ndarray], batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        n = len(next(iter(images.values())))
        rewards = [self.model.score({c: images[c][i:i + batch] for c in self.model.cameras})[0] for i in range(0, n, batch)]
        r = np.concatenate(rewards).astype(np.float32) if rewards else np.zeros(0, np.float32)
        return r, np.asarray(self.model.is_success(r), bool)

    def relabel_chunk(self, chunk: Any) -> Any:
        """Rewards and terminations of a chunk rewarded by an older version, recomputed with the current one.

        The chunk is changed in place and returned; a chunk of the current version (or without
        versions) is returned unchanged. A step the operator marked a false success keeps reward 0
        and stays non-terminal; a last step that is no longer terminal is marked truncated (the
        episode did end there).
        """
        v = chunk.reward_version
        if v is None or not len(v) or int(v.min()) == self.version:
            return chunk
        nxt = {c: (chunk.images[c][1:] if chunk.first else chunk.images[c]) for c in self.model.cameras}
        reward, terminated = self._score(nxt)
        ended = chunk.ends_episode
        if chunk.episode_stats and chunk.episode_stats.get("false_success"):
            reward[-1], terminated[-1] = 0.0, False
        if chunk.episode_stats and chunk.episode_stats.get("missed_success"):
            from robot_rl.intervention import MISSED_SUCCESS_REWARD

            reward[-1], terminated[-1] = MISSED_SUCCESS_REWARD, True
        self._keep_operator_verdict(nxt, reward, terminated)
        chunk.reward, chunk.terminated = reward, terminated
        if ended and not terminated[-1]:
            chunk.truncated = chunk.truncated.copy()
            chunk.truncated[-1] = True
        chunk.reward_version = np.full(len(v), self.version, np.int32)
        return chunk

    def relabel_buffer(self, buffer: Any) -> tuple[int, int]:
        """Recompute reward and termination of every stored transition of a
        :class:`~robot_rl.replay.ReplayBuffer` with the current version (from ``s'``'s frames).

        Returns:
            ``(transitions relabelled, rewards that changed)``.
        """
        if buffer is None:
            return 0, 0
        rows = np.flatnonzero(buffer.valid)
        if not len(rows):
            return 0, 0
        nxt = (rows + 1) % buffer.capacity
        frames = {c: buffer.images[c][nxt] for c in self.model.cameras}
        reward, terminated = self._score(frames)
        self._keep_operator_verdict(frames, reward, terminated)
        changed = int((reward != buffer.reward[rows]).sum())
        buffer.reward[rows], buffer.terminated[rows] = reward, terminated
        return int(len(rows)), changed

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, int]:
        """``{"version", "labels_at_version"}`` (the labels themselves come back from the replay log)."""
        return {"version": self.version, "labels_at_version": int(self.labels_at_version)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (``{}``: version 0): swap in that version's saved weights
        (always, since a resumed run's model was rebuilt from ``reward.json``, its newest version)."""
        self.load_version(int(state.get("version", 0)))
        self.labels_at_version = int(state.get("labels_at_version", 0))


def describe(row: dict[str, Any]) -> str:
    """One line for the log about a retrained version."""
    return (f"reward model v{row['version']}: retrained on {row['labels']} operator label(s) in {row['retrain_s']} s; "
            f"threshold {row['threshold']}, validation precision {row['val_precision']} / recall {row['val_recall']}, "
            f"it gets {row['labels_wrong']} of them wrong; relabelled "
            f"{row.get('relabelled', 0)} transitions ({row.get('rewards_changed', 0)} rewards changed)")

