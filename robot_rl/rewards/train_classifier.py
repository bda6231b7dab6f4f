"""``robot-rl train-reward-classifier``: train a :class:`~robot_rl.rewards.classifier.SuccessClassifier` from demo episodes.

Labels, per frame (frame t of an episode is ``obs[t]``, t = 0..T; frame t+1 follows step t):

* positive: the final ``final_k`` frames (``obs[T-k+1 .. T]``) of every successful episode
  (``Episode.is_success``), and with ``success_flags`` every frame that follows a step whose
  ``info/is_success`` is set: the env's success flag in sim, and the step at which a human pressed
  the teleop success button (``robot-rl record-demos --teleop keyboard|gamepad|spacemouse`` and
  interventions store the button there);
* negative: every other frame, so every frame of a failed episode.

Episodes, never frames, are split (stratified by outcome, seeded) into train / validation / test:
frames of one episode are nearly identical, so a frame split would leak. Training: BCE on logits,
class balancing by a balanced sampler (each batch drawn half positive, half negative, with
replacement) or by ``pos_weight = n_neg / n_pos``, DrQ random-shift and colour-jitter
augmentation, early stopping on the class-balanced validation loss (the best epoch's weights are
kept). The decision threshold is chosen on the validation episodes: maximum F1 (default), or the
lowest threshold whose validation precision reaches ``target_precision`` (false successes end
episodes and reward failures, so precision matters more than recall in RL). Accuracy, precision,
recall and F1 at that threshold are reported on the untouched test episodes (and on validation),
printed as a table and written to ``<out>/metrics.json``.

Source: Luo et al. 2024 (HIL-SERL), arXiv:2410.21845, section III-C: binary success classifiers
from ~200 positive and ~1000 negative frames per task.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from robot_rl.demos import Episode, episode_files, load_episode
from robot_rl.errors import ConfigError
from robot_rl.rewards.classifier import ClassifierConfig, SuccessClassifier, SuccessClassifierNet, crop_and_resize
from robot_rl.validate import require_at_least


@dataclass
class TrainClassifierConfig:
    """Train a success classifier (reward model) from labelled demo episodes."""

    demos: tuple[Path, ...] = ()
    """one or more directories of episode files (robot-rl record-demos, --keep-failures for negatives): --demos DIR [DIR2 ...]."""
    cameras: tuple[str, ...] = ()
    """cameras to classify from (keys of obs['images']); default: every camera the demos hold."""
    out: Path = Path("classifier")
    """output directory (config.json, model.safetensors, metrics.json)."""
    overwrite: bool = False
    """replace a classifier already saved in --out."""
    crops: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    """camera -> crop box top left height width in pixels, e.g. --crops front 0 16 96 96 (default: whole frame)."""
    image_size: int = 64
    """crops are resized to image_size x image_size pixels."""
    final_k: int = 5
    """label the final k frames of each successful episode positive."""
    success_flags: bool = True
    """also label positive every frame after a step flagged is_success (env success in sim, the teleop success button)."""
    val_fraction: float = 0.2
    """fraction of episodes (per outcome) held out for early stopping and the threshold."""
    test_fraction: float = 0.2
    """fraction of episodes (per outcome) held out for the reported metrics (0: report validation only)."""
    seed: int = 0
    """seed of the episode split, initialisation, sampling and augmentation."""
    encoder: Literal["cnn", "resnet18"] = "cnn"
    """'cnn' trained from scratch, or 'resnet18' frozen with --pretrained-weights (a local file)."""
    pretrained_weights: str | None = None
    """local ResNet-18 weights (.safetensors / torch state dict) for --encoder resnet18."""
    cnn_channels: int = 32
    """filters per conv layer of --encoder cnn."""
    latent_dim: int = 64
    """encoder output features."""
    hidden_dims: tuple[int, ...] = (256,)
    """MLP head widths."""
    balance: Literal["sampler", "pos_weight", "none"] = "sampler"
    """class balancing: balanced batches ('sampler'), positive-class loss weight n_neg/n_pos ('pos_weight'), or none."""
    augment: bool = True
    """random shift (--shift-pad pixels) and colour jitter on training crops."""
    shift_pad: int = 4
    """maximum random shift in pixels (DrQ)."""
    color_jitter: float = 0.2
    """maximum relative brightness / contrast / per-channel gain change (0: off)."""
    epochs: int = 40
    """maximum epochs (passes of len(train) samples)."""
    patience: int = 6
    """stop after this many epochs without a lower validation loss."""
    batch_size: int = 64
    """frames per gradient step."""
    lr: float = 3e-4
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    threshold_rule: Literal["f1", "precision"] = "f1"
    """how the threshold is chosen on validation: max F1, or the lowest one reaching --target-precision."""
    target_precision: float = 0.95
    """validation precision the 'precision' rule must reach."""
    reward_mode: Literal["probability", "binary"] = "binary"
    """reward of the saved model: 0/1 at the threshold (HIL-SERL; the episode ends at success, so a
    probability reward would pay for hovering below it), or the probability."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda', ..."""
    torch_threads: int = 0
    """torch intra-op threads (0: torch's default)."""
    progress: bool = True
    """show a progress bar and print the table."""


@dataclass
class FrameDataset:
    """Labelled frames of a set of episodes.

    Attributes:
        images: camera -> (N, S, S, 3) uint8 preprocessed crops.
        labels: (N,) float32, 1.0 = success.
        episode: (N,) int64 index of the episode (into the list of all episodes) each frame came from.
    """

    images: dict[str, np.ndarray]
    labels: np.ndarray
    episode: np.ndarray

    def __len__(self) -> int:
        return int(len(self.labels))

    def subset(self, idx: np.ndarray) -> FrameDataset:
        """The frames at ``idx`` ((M,) int64)."""
        return FrameDataset({k: v[idx] for k, v in self.images.items()}, self.labels[idx], self.episode[idx])


def frame_labels(episode: Episode, final_k: int, success_flags: bool = True) -> np.ndarray:
    """(T+1,) float32 success labels of an episode's frames (see the module docstring).

    Args:
        episode: a loaded episode (T steps, T+1 frames).
        final_k: positives at the end of a successful episode (>= 1).
        success_flags: also mark frames after steps with ``info/is_success`` (env or teleop button).
    """
    if final_k < 1:
        raise ConfigError(f"--final-k must be >= 1, got {final_k}")
    t = len(episode)
    labels = np.zeros(t + 1, np.float32)
    if episode.is_success:
        labels[max(0, t + 1 - final_k):] = 1.0
    if success_flags:
        labels[1:][np.asarray(episode.success, bool)] = 1.0
    return labels


def split_episodes(success: np.ndarray, val_fraction: float, test_fraction: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded split of episode indices into (train, val, test).

    Each outcome (successful / failed episodes) is shuffled and split on its own, so every split
    gets both kinds where possible; val and test get at least one successful episode each.

    Args:
        success: (E,) bool, outcome per episode.

    Raises:
        ConfigError: too few successful episodes for the requested splits.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    n_success = int(success.sum())
    need = 1 + (val_fraction > 0) + (test_fraction > 0)
    if n_success < need:
        raise ConfigError(f"only {n_success} successful episode(s); the train/validation/test split by episode needs "
                          f"at least {need}. Record more successful demos (robot-rl record-demos) or lower --test-fraction")
    for outcome in (True, False):
        idx = rng.permutation(np.flatnonzero(success == outcome))
        n = len(idx)
        n_val = int(round(val_fraction * n)) if val_fraction > 0 else 0
        n_test = int(round(test_fraction * n)) if test_fraction > 0 else 0
        if outcome:  # positives are what the metrics are about: at least one in each held-out split
            n_val, n_test = max(n_val, val_fraction > 0), max(n_test, test_fraction > 0)
        while n_val + n_test >= n and (n_val or n_test) and n > 0:  # keep at least one episode for training
            if n_test >= n_val and n_test > (1 if outcome and test_fraction > 0 else 0):
                n_test -= 1
            elif n_val > (1 if outcome and val_fraction > 0 else 0):
                n_val -= 1
            else:
                break
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val:n_val + n_test])
        parts[0].append(idx[n_val + n_test:])
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    return train, val, test


def load_labelled_frames(dirs: tuple[Path, ...] | list[Path], cameras: tuple[str, ...], final_k: int,
                         success_flags: bool, net: SuccessClassifierNet | None = None,
                         progress: bool = False) -> tuple[FrameDataset, np.ndarray, tuple[str, ...]]:
    """Load every episode of ``dirs`` and label its frames.

    Args:
        dirs: dataset directories of episode files.
        cameras: cameras to keep (empty: all cameras of the first episode).
        net: when given, frames are cropped and resized with ``net.preprocess`` as they load.

    Returns:
        (frames, per-episode success (E,) bool, the cameras used).

    Raises:
        ConfigError: no directories, episodes without images, an unknown camera, or no successful episode.
        DemoFormatError: an unreadable episode file.
    """
    if not dirs:
        raise ConfigError("pass at least one demo directory: --demos DIR [DIR2 ...]")
    files = [f for d in dirs for f in episode_files(d)]
    images: dict[str, list[np.ndarray]] = {}
    labels, episode_of, outcomes = [], [], []
    for e, f in enumerate(tqdm(files, desc="load episodes", unit="ep", disable=not progress)):
        ep = load_episode(f)
        obs_images = ep.observations.get("images") if isinstance(ep.observations, dict) else None
        if not obs_images:
            raise ConfigError(f"{f} has no camera images (obs['images']); record demos on a pixel env, "
                              "e.g. --env robot_rl/PandaPickLiftPixels-v0")
        if not cameras:
            cameras = tuple(sorted(obs_images))
        missing = [c for c in cameras if c not in obs_images]
        if missing:
            raise ConfigError(f"unknown camera(s) {missing}: {f} holds cameras {sorted(obs_images)}; "
                              "choose --cameras from those")
        lab = frame_labels(ep, final_k, success_flags)
        for c in cameras:
            x = obs_images[c]
            if net is not None:
                x = crop_and_resize(torch.from_numpy(np.ascontiguousarray(x)), c, net.config.crops.get(c),
                                    net.config.image_size).numpy()
            images.setdefault(c, []).append(x)
        labels.append(lab)
        episode_of.append(np.full(len(lab), e, np.int64))
        outcomes.append(ep.is_success or bool(lab.any()))
    outcomes_arr = np.asarray(outcomes, bool)
    if not outcomes_arr.any():
        raise ConfigError(f"none of the {len(files)} episodes in {[str(d) for d in dirs]} is successful, so there are "
                          "no positive frames; record successful demos (robot-rl record-demos) or mark success with "
                          "the teleop success button")
    frames = FrameDataset({c: np.concatenate(v) for c, v in images.items()}, np.concatenate(labels),
                          np.concatenate(episode_of))
    return frames, outcomes_arr, tuple(cameras)


def balanced_indices(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` sample indices drawn with replacement so that each class makes up half (the balanced sampler).

    Args:
        labels: (N,) 0/1 labels with both classes present.

    Returns:
        (n,) int64 indices into ``labels``.
    """
    pos, neg = np.flatnonzero(labels > 0.5), np.flatnonzero(labels <= 0.5)
    if len(pos) == 0 or len(neg) == 0:
        return rng.integers(0, len(labels), n)
    is_pos = rng.random(n) < 0.5
    out = np.where(is_pos, pos[rng.integers(0, len(pos), n)], neg[rng.integers(0, len(neg), n)])
    return out.astype(np.int64)


def augment(crops: torch.Tensor, shift_pad: int, jitter: float) -> torch.Tensor:
    """Random shift and colour jitter of a batch of crops.

    Args:
        crops: (B, S, S, 3) uint8.
        shift_pad: maximum shift in pixels (edges replicated, DrQ).
        jitter: maximum relative change of brightness (additive, fraction of 255), contrast and
            per-channel gain, each drawn uniformly in [-jitter, jitter] per sample.

    Returns:
        (B, S, S, 3) float32 in [0, 255].
    """
    from robot_rl.agent import random_shift

    x = random_shift(crops, shift_pad).float()
    if jitter > 0:
        b = x.shape[0]
        u = lambda *s: (torch.rand(*s, device=x.device) * 2 - 1) * jitter  # noqa: E731
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (1 + u(b, 1, 1, 1)) + mean  # contrast
        x = x * (1 + u(b, 1, 1, 3)) + 255.0 * u(b, 1, 1, 1)  # per-channel gain, brightness
        x = x.clamp_(0, 255)
    return x


def binary_metrics(prob: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (and counts) of ``prob >= threshold`` against 0/1 ``labels``."""
    pred, y = prob >= threshold, labels > 0.5
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn, tn = int((~pred & y).sum()), int((~pred & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / max(len(y), 1), "precision": precision, "recall": recall, "f1": f1,
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, "frames": int(len(y)), "positives": int(y.sum())}


def choose_threshold(prob: np.ndarray, labels: np.ndarray, rule: str = "f1", target_precision: float = 0.95) -> float:
    """Decision threshold from validation probabilities.

    Candidates are the midpoints between consecutive distinct probabilities (and 0.5).
    ``"f1"``: the candidate with the highest F1 (ties: the one closest to 0.5).
    ``"precision"``: the lowest candidate whose precision reaches ``target_precision`` (the
    highest recall at that precision); max F1 when none reaches it.

    Returns:
        A threshold in (0, 1).
    """
    p = np.unique(np.clip(prob, 1e-6, 1 - 1e-6))
    cands = np.unique(np.concatenate([(p[1:] + p[:-1]) / 2, [0.5], p[:1] / 2, (p[-1:] + 1) / 2]))
    scores = [binary_metrics(prob, labels, float(c)) for c in cands]
    if rule == "precision":
        ok = [c for c, m in zip(cands, scores) if m["precision"] >= target_precision and m["tp"] > 0]
        if ok:
            return float(min(ok))
    elif rule != "f1":
        raise ConfigError(f"unknown threshold rule {rule!r}; use 'f1' or 'precision'")
    best = max(range(len(cands)), key=lambda i: (round(scores[i]["f1"], 12), -abs(cands[i] - 0.5)))
    return float(cands[best])


@torch.no_grad()
def _predict(net: SuccessClassifierNet, data: FrameDataset, device: torch.device, batch: int = 256) -> np.ndarray:
    net.eval()
    out = []
    for i in range(0, len(data), batch):
        crops = {c: torch.from_numpy(v[i:i + batch]).to(device) for c, v in data.images.items()}
        out.append(torch.sigmoid(net.logits_preprocessed(crops)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _balanced_bce(prob: np.ndarray, labels: np.ndarray) -> float:
    """Mean of the per-class mean binary cross-entropies (a class-balanced validation loss), nats."""
    p = np.clip(prob, 1e-7, 1 - 1e-7)
    y = labels > 0.5
    losses = [-np.log(p[y]).mean() if y.any() else None, -np.log(1 - p[~y]).mean() if (~y).any() else None]
    losses = [v for v in losses if v is not None]
    return float(np.mean(losses))


def fit_classifier(net: SuccessClassifierNet, train: FrameDataset, val: FrameDataset, cfg: TrainClassifierConfig,
                   device: torch.device) -> dict[str, Any]:
    """Train ``net``'s trainable parameters in place with early stopping; the best epoch's weights are kept.

    Returns:
        History: ``best_epoch``, ``epochs``, ``val_loss`` per epoch, ``train_loss`` per epoch, ``wall_s``.
    """
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    net.to(device)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_pos = float(train.labels.sum())
    n_neg = float(len(train) - n_pos)
    pos_weight = torch.tensor(n_neg / max(n_pos, 1.0), device=device) if cfg.balance == "pos_weight" else None
    steps = max(1, int(np.ceil(len(train) / cfg.batch_size)))
    best_loss, best_state, best_epoch, bad = np.inf, copy.deepcopy(net.state_dict()), 0, 0
    hist: dict[str, Any] = {"val_loss": [], "train_loss": []}
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc="train classifier", unit="epoch", disable=not cfg.progress, dynamic_ncols=True)
    for epoch in bar:
        net.train()
        idx = (balanced_indices(train.labels, steps * cfg.batch_size, rng) if cfg.balance == "sampler"
               else rng.permutation(np.resize(rng.permutation(len(train)), steps * cfg.batch_size)))
        total = 0.0
        for s in range(steps):
            b = idx[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            crops = {}
            for c, v in train.images.items():
                x = torch.from_numpy(v[b]).to(device)
                crops[c] = augment(x, cfg.shift_pad, cfg.color_jitter) if cfg.augment else x.float()
            y = torch.from_numpy(train.labels[b]).to(device)
            loss = F.binary_cross_entropy_with_logits(net.logits_preprocessed(crops), y, pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        val_loss = _balanced_bce(_predict(net, val, device), val.labels)
        hist["train_loss"].append(round(total / steps, 5))
        hist["val_loss"].append(round(val_loss, 5))
        bar.set_postfix({"train": f"{total / steps:.3f}", "val": f"{val_loss:.3f}"})
        if val_loss < best_loss - 1e-5:
            best_loss, best_state, best_epoch, bad = val_loss, copy.deepcopy(net.state_dict()), epoch + 1, 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    bar.close()
    net.load_state_dict(best_state)
    hist.update(best_epoch=best_epoch, epochs=len(hist["val_loss"]), best_val_loss=round(float(best_loss), 5),
                wall_s=round(time.perf_counter() - t0, 1))
    return hist


def check_count_settings(cfg: TrainClassifierConfig) -> None:
    """Reject training-loop counts that make no sense (``--epochs 0``, ``--batch-size 0`` ...) before
    any loading. ``--final-k`` is checked by :func:`frame_labels`, ``--image-size`` by
    :class:`~robot_rl.rewards.classifier.ClassifierConfig`.

    Raises:
        ConfigError: naming the flag, its value and what to do.
    """
    require_at_least("--epochs", cfg.epochs, 1, "without an epoch there is no trained model to save")
    require_at_least("--patience", cfg.patience, 1, "it counts epochs without improvement before stopping")
    require_at_least("--batch-size", cfg.batch_size, 1)
    require_at_least("--shift-pad", cfg.shift_pad, 0, "0 turns the random shift off")
    require_at_least("--seed", cfg.seed, 0, "numpy seeds are non-negative")


def train_classifier(cfg: TrainClassifierConfig) -> dict[str, Any]:
    """Label, split, train, choose the threshold, evaluate, save; returns the metrics dict.

    Raises:
        ConfigError: bad settings, no successful episode, an unknown camera, --out already holding a classifier.
        DemoFormatError: unreadable episode files. PretrainedWeightsError: unreadable ResNet-18 weights.
    """
    from robot_rl.agent import resolve_device
    from robot_rl.rewards.classifier import WEIGHTS_FILE

    check_count_settings(cfg)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    if (cfg.out / WEIGHTS_FILE).exists() and not cfg.overwrite:
        raise ConfigError(f"{cfg.out} already holds a classifier; pass --overwrite or choose another --out")
    if cfg.encoder == "resnet18" and cfg.pretrained_weights is None:
        raise ConfigError("--encoder resnet18 is a frozen pretrained backbone: pass --pretrained-weights PATH (a local "
                          "torchvision ResNet-18 state dict); without weights use --encoder cnn (trained from scratch)")
    if not (0 <= cfg.val_fraction < 1 and 0 <= cfg.test_fraction < 1 and cfg.val_fraction > 0):
        raise ConfigError(f"need 0 < --val-fraction < 1 and 0 <= --test-fraction < 1, got {cfg.val_fraction}, {cfg.test_fraction}")
    device = resolve_device(cfg.device)
    # cameras first (from the demos) so the network can be built before the frames are preprocessed
    cameras = tuple(cfg.cameras)
    if not cameras:
        first = load_episode(episode_files(cfg.demos[0])[0]) if cfg.demos else None
        imgs = first.observations.get("images") if first is not None and isinstance(first.observations, dict) else None
        cameras = tuple(sorted(imgs)) if imgs else ()
        if not cameras and cfg.demos:
            raise ConfigError(f"{cfg.demos[0]} episodes have no camera images; record demos on a pixel env")
    if not cfg.demos:
        raise ConfigError("pass at least one demo directory: --demos DIR [DIR2 ...]")
    model_cfg = ClassifierConfig(cameras=cameras, crops=dict(cfg.crops), image_size=cfg.image_size, encoder=cfg.encoder,
                                 pretrained_weights=cfg.pretrained_weights, cnn_channels=cfg.cnn_channels, latent_dim=cfg.latent_dim,
                                 hidden_dims=tuple(cfg.hidden_dims), reward_mode=cfg.reward_mode)
    torch.manual_seed(cfg.seed)
    net = SuccessClassifierNet(model_cfg, cfg.pretrained_weights)
    frames, outcomes, cameras = load_labelled_frames(cfg.demos, cameras, cfg.final_k, cfg.success_flags, net, cfg.progress)
    tr_ep, va_ep, te_ep = split_episodes(outcomes, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    train, val = frames.subset(np.flatnonzero(np.isin(frames.episode, tr_ep))), frames.subset(np.flatnonzero(np.isin(frames.episode, va_ep)))
    test = frames.subset(np.flatnonzero(np.isin(frames.episode, te_ep)))
    if train.labels.sum() == 0 or train.labels.sum() == len(train):
        raise ConfigError("the training episodes hold only one class of frames; record failed episodes too "
                          "(robot-rl record-demos --keep-failures) or raise --final-k")
    history = fit_classifier(net, train, val, cfg, device)
    val_prob = _predict(net, val, device)
    threshold = choose_threshold(val_prob, val.labels, cfg.threshold_rule, cfg.target_precision)
    model_cfg.threshold = threshold
    model = SuccessClassifier(model_cfg, net.cpu(), device="cpu")
    splits = {"val": binary_metrics(val_prob, val.labels, threshold)}
    if len(test):
        splits["test"] = binary_metrics(_predict(net, test, torch.device("cpu")), test.labels, threshold)
    metrics: dict[str, Any] = {
        "threshold": threshold, "threshold_rule": cfg.threshold_rule, "reported_split": "test" if len(test) else "val",
        **{f"{k}_{name}": round(v, 4) if isinstance(v, float) else v for name, m in splits.items() for k, v in m.items()},
        "episodes": {"train": int(len(tr_ep)), "val": int(len(va_ep)), "test": int(len(te_ep)),
                     "successful": int(outcomes.sum()), "failed": int((~outcomes).sum())},
        "frames": {"train": len(train), "train_positives": int(train.labels.sum()), "val": len(val), "test": len(test)},
        "history": history, "cameras": list(cameras), "demos": [str(d) for d in cfg.demos],
    }
    extra = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    extra["demos"] = [str(d) for d in cfg.demos]
    model.save(cfg.out, extra={"settings": extra, "metrics": {k: v for k, v in metrics.items() if k != "history"}})
    (cfg.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if cfg.progress:
        print(format_metrics(metrics))
        print(f"saved to {cfg.out} (use: robot-rl train --reward classifier --reward-model-path {cfg.out})")
    return metrics


def format_metrics(metrics: dict[str, Any]) -> str:
    """The metrics of :func:`train_classifier` as a small text table (one row per held-out split)."""
    rows = [f"success classifier, threshold {metrics['threshold']:.3f} ({metrics['threshold_rule']} on validation); "
            f"episodes train/val/test {metrics['episodes']['train']}/{metrics['episodes']['val']}/{metrics['episodes']['test']}",
            f"{'split':<6} {'frames':>7} {'pos':>5} {'accuracy':>9} {'precision':>10} {'recall':>7} {'F1':>6}"]
    for name in ("val", "test"):
        if f"accuracy_{name}" in metrics:
            rows.append(f"{name:<6} {metrics[f'frames_{name}']:>7} {metrics[f'positives_{name}']:>5} "
                        f"{metrics[f'accuracy_{name}']:>9.3f} {metrics[f'precision_{name}']:>10.3f} "
                        f"{metrics[f'recall_{name}']:>7.3f} {metrics[f'f1_{name}']:>6.3f}")
    return "\n".join(rows)


def record_labelled_episodes(env: Any, out: Path, episodes: int, random_every: int = 4, seed: int = 0,
                             noise_std: float = 0.0, meta: dict[str, Any] | None = None) -> Path:
    """Record labelled episodes for classifier training: scripted successes plus random-action failures.

    Every ``random_every``-th episode (0: none) uses uniform random actions and almost surely
    fails; the others run the env's scripted controller (with Gaussian ``noise_std`` in action
    units). Each step stores the env's ``is_success`` as its success flag, so the files carry
    labels like episodes whose success button a person pressed. Run the env with
    ``reward_type="dense"`` so episodes continue after success (more positive frames).

    Args:
        env: a robot_rl sim env with a scripted controller (``robot_rl.sim.scripted``).
        out: directory for ``episode_*.npz`` files (robot_rl.episode v1).
        episodes: number of episodes.
        random_every: period of random-action episodes.
        seed: seed of the first reset (episode ``i`` uses ``seed + i``) and of the random actions.
        noise_std: std of the scripted actions' noise, action units.
        meta: extra metadata written into every episode file.

    Returns:
        ``out``.
    """
    from robot_rl.demos import EpisodeWriter
    from robot_rl.sim.scripted import scripted_policy_for

    rng = np.random.default_rng(seed)
    policy = scripted_policy_for(env, noise_std=noise_std, rng=np.random.default_rng(seed + 1))
    writer = EpisodeWriter(out, meta=dict(meta or {}))
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        writer.start(obs)
        done, success = False, False
        scripted = random_every == 0 or i % random_every != random_every - 1
        while not done:
            a = policy(obs) if scripted else rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, r, term, trunc, info = env.step(a)
            done, success = term or trunc, success or bool(info["is_success"])
            writer.step(a, r, obs, term, trunc, False, bool(info["is_success"]))
        writer.finish(success=success)
    return out
