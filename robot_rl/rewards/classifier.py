"""Learned success classifier: a binary "is the task done?" model over camera crops, used as reward.

The classifier crops a box out of each camera frame, resizes it to ``image_size`` x
``image_size``, encodes the crops with an image encoder (the repo's
:class:`~policies.networks.ImageEncoder`: a small DrQ-style CNN trained from scratch, or a frozen
torchvision ResNet-18 loaded from a local weights file with only its projection trained) and maps
the latent to one logit with an MLP head. ``p = sigmoid(logit)`` is the probability of success;
the reward is ``1[p >= threshold]`` (``reward_mode="binary"``, the default) or ``p`` (``"probability"``), and
a step counts as success when ``p >= threshold`` (the wrapper ends the episode there).

Files (a directory, no pickle anywhere)::

    config.json         ClassifierConfig fields + "format"/"version"
    model.safetensors   the whole network's state dict (a frozen backbone included, so the file is
                        self-contained: no weights path is needed to load it)
    metrics.json        written by training (robot_rl.rewards.train_classifier)

Source: Luo et al. 2024, "Precise and Dexterous Robotic Manipulation via Human-in-the-Loop
Reinforcement Learning" (HIL-SERL), arXiv:2410.21845: a binary success classifier on frozen
pretrained features, trained from a few hundred labelled frames, gives the sparse reward and the
episode termination (reference: github.com/rail-berkeley/hil-serl, ``reward_classifier``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.config_io import dataclass_from_dict
from robot_rl.errors import CheckpointError, ConfigError
from robot_rl.policies.networks import ImageEncoder, mlp
from robot_rl.rewards.base import RewardModel, register_reward_model

CLASSIFIER_FORMAT = "robot_rl.success_classifier"
CLASSIFIER_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


@dataclass
class ClassifierConfig:
    """Architecture and decision settings of a :class:`SuccessClassifier` (saved as ``config.json``)."""

    cameras: tuple[str, ...]
    """cameras (keys of ``obs["images"]``) the classifier reads, in this order."""
    crops: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    """camera -> crop box ``(top, left, height, width)`` in pixels of the raw frame; a camera without a box uses the whole frame."""
    image_size: int = 64
    """side of the square each crop is resized to (bilinear), pixels."""
    encoder: Literal["cnn", "resnet18"] = "cnn"
    """'cnn': DrQ-style conv stack trained from scratch; 'resnet18': frozen torchvision ResNet-18 (needs pretrained_weights)."""
    pretrained_weights: str | None = None
    """local ResNet-18 weights file (.safetensors or torch state dict) for encoder='resnet18'; only used when building a new model."""
    cnn_strides: tuple[int, ...] = (2, 2, 2, 1)
    """strides of the 3x3 convs of the 'cnn' encoder (one layer each)."""
    cnn_channels: int = 32
    """filters per conv layer of the 'cnn' encoder."""
    latent_dim: int = 64
    """encoder output features (Linear -> LayerNorm -> tanh)."""
    hidden_dims: tuple[int, ...] = (256,)
    """widths of the MLP head (latent -> ... -> 1 logit)."""
    threshold: float = 0.5
    """success when the probability is >= this (set from the validation split by training)."""
    reward_mode: Literal["probability", "binary"] = "binary"
    """reward = 1.0 / 0.0 at the threshold (HIL-SERL), or the success probability in [0, 1]. Binary is
    the default: the episode ends at success, so a probability reward pays a policy more for hovering
    just below the threshold for the whole episode than for finishing the task."""

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        self.crops = {k: tuple(int(x) for x in v) for k, v in dict(self.crops).items()}
        self.cnn_strides, self.hidden_dims = tuple(self.cnn_strides), tuple(self.hidden_dims)
        if not self.cameras:
            raise ConfigError("a success classifier needs at least one camera (e.g. --cameras front wrist)")
        extra = sorted(set(self.crops) - set(self.cameras))
        if extra:
            raise ConfigError(f"crop boxes given for cameras {extra} that the classifier does not read ({list(self.cameras)})")
        for cam, box in self.crops.items():
            if len(box) != 4 or box[0] < 0 or box[1] < 0 or box[2] < 1 or box[3] < 1:
                raise ConfigError(f"crop box of camera '{cam}' must be (top, left, height, width) with height, width >= 1; got {box}")
        if self.encoder not in ("cnn", "resnet18"):
            raise ConfigError(f"unknown classifier encoder '{self.encoder}'; use 'cnn' (trained from scratch) or 'resnet18' (frozen, local weights)")
        if self.reward_mode not in ("probability", "binary"):
            raise ConfigError(f"unknown reward_mode '{self.reward_mode}'; use 'probability' or 'binary'")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"the success threshold must be in (0, 1), got {self.threshold}")
        if self.image_size < 8:
            raise ConfigError(f"image_size must be >= 8 pixels, got {self.image_size}")


def crop_and_resize(frames: torch.Tensor, camera: str, box: tuple[int, int, int, int] | None,
                    image_size: int) -> torch.Tensor:
    """Crop a box out of each frame and resize it to a square (bilinear, antialiased when shrinking).

    Args:
        frames: (B, H, W, 3) uint8 (or float in [0, 255]) RGB frames of one camera.
        camera: its name (for error messages).
        box: ``(top, left, height, width)`` in pixels, or None for the whole frame.
        image_size: S, side of the output.

    Returns:
        (B, S, S, 3) uint8 crops.

    Raises:
        ConfigError: frames not (B, H, W, 3), or the box does not fit them.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ConfigError(f"camera '{camera}' frames must be (B, H, W, 3) RGB, got shape {tuple(frames.shape)}")
    h, w = frames.shape[1:3]
    top, left, ch, cw = box if box is not None else (0, 0, h, w)
    if top + ch > h or left + cw > w:
        raise ConfigError(f"crop box (top={top}, left={left}, height={ch}, width={cw}) of camera '{camera}' "
                          f"does not fit its {h}x{w} frames")
    x = frames[:, top:top + ch, left:left + cw]
    if tuple(x.shape[1:3]) != (image_size, image_size):
        x = F.interpolate(x.permute(0, 3, 1, 2).float(), size=(image_size, image_size), mode="bilinear",
                          align_corners=False, antialias=bool(ch > image_size or cw > image_size))
        x = x.round_().clamp_(0, 255).permute(0, 2, 3, 1)
    return x.to(torch.uint8).contiguous()


class SuccessClassifierNet(nn.Module):
    """Crop + resize per camera, image encoder, MLP head -> one success logit per step.

    Args:
        config: the architecture.
        pretrained_weights: ResNet-18 weights to build a new ``resnet18`` model with (None builds
            random weights, which :meth:`SuccessClassifier.load` then overwrites from the file).

    Raises:
        ConfigError: bad sizes. PretrainedWeightsError: unreadable ResNet-18 weights.
    """

    def __init__(self, config: ClassifierConfig, pretrained_weights: str | Path | None = None) -> None:
        super().__init__()
        self.config = config
        s = config.image_size
        shapes = {c: (s, s, 3) for c in config.cameras}
        backbone = "drqv2" if config.encoder == "cnn" else "resnet18"
        self.encoder = ImageEncoder(shapes, config.latent_dim, backbone, config.cnn_strides, config.cnn_channels,
                                    pretrained_weights, channels_last=False)
        self.head = mlp(config.latent_dim, config.hidden_dims, 1)

    def preprocess(self, images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Crop and resize raw frames.

        Args:
            images: camera -> (B, H, W, 3) uint8 (or float in [0, 255]) frames.

        Returns:
            camera -> (B, S, S, 3) uint8 crops, S = ``image_size``.

        Raises:
            ConfigError: a camera is missing, a frame is not (B, H, W, 3), or a crop box lies outside it.
        """
        out: dict[str, torch.Tensor] = {}
        for cam in self.config.cameras:
            if cam not in images:
                raise ConfigError(f"the success classifier reads camera '{cam}' but got only {sorted(images)}; "
                                  f"it was trained on cameras {list(self.config.cameras)}")
            out[cam] = crop_and_resize(images[cam], cam, self.config.crops.get(cam), self.config.image_size)
        return out

    def logits_preprocessed(self, crops: dict[str, torch.Tensor]) -> torch.Tensor:
        """camera -> (B, S, S, 3) crops (uint8 or float in [0, 255]) -> (B,) float32 logits."""
        return self.head(self.encoder(crops)).squeeze(-1)

    def forward(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """camera -> (B, H, W, 3) uint8 raw frames -> (B,) float32 success logits."""
        return self.logits_preprocessed(self.preprocess(images))


class SuccessClassifier(RewardModel):
    """Reward model from a learned binary success classifier (HIL-SERL's reward classifier).

    ``rewards(images)`` is ``1[sigmoid(logit) >= threshold]`` per step (``reward_mode="binary"``, the
    default) or the probability itself (``"probability"``); ``is_success`` is ``p >= threshold``. Build one with
    :func:`robot_rl.rewards.train_classifier.train_classifier` or load a saved one with
    :meth:`load` / ``make_reward_model({"kind": "classifier", "path": DIR})``.

    Args:
        config: architecture and decision settings.
        net: the network (a new one from ``config`` when None).
        device: where the network runs (``"cpu"``, ``"cuda"``, ``"auto"``).
        path: directory it was loaded from or saved to (needed by :meth:`config`).

    Source: Luo et al. 2024 (HIL-SERL), arXiv:2410.21845.
    """

    kind = "classifier"

    def __init__(self, config: ClassifierConfig, net: SuccessClassifierNet | None = None, device: str = "cpu",
                 path: str | Path | None = None) -> None:
        from robot_rl.agent import resolve_device

        self.settings = config
        self.cameras = tuple(config.cameras)
        self.device = resolve_device(device)
        self.device_name = device
        self.net = (net if net is not None else SuccessClassifierNet(config, config.pretrained_weights)).to(self.device).eval()
        self.path = Path(path) if path is not None else None

    @property
    def threshold(self) -> float:
        """Success threshold on the probability."""
        return self.settings.threshold

    @torch.no_grad()
    def probabilities(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """Success probabilities of a batch of steps.

        Args:
            images: camera -> (B, H, W, 3) uint8 frames for every camera in :attr:`cameras`.

        Returns:
            (B,) float32 probabilities in [0, 1].
        """
        arrays = {c: np.asarray(images[c]) for c in self.cameras if c in images}
        # frames decoded from the wire or the replay log are read-only views: copy those (torch needs writable memory)
        batch = {c: torch.as_tensor(a if a.flags.writeable else a.copy()).to(self.device) for c, a in arrays.items()}
        self.net.eval()
        return torch.sigmoid(self.net(batch)).float().cpu().numpy().astype(np.float32)

    def rewards(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """(B,) float32 rewards: probabilities, or 0/1 thresholded (``reward_mode``)."""
        return self.score(images)[0]

    def rewards_from_probabilities(self, p: np.ndarray) -> np.ndarray:
        """(B,) float32 rewards of (B,) success probabilities (``reward_mode``)."""
        p = np.asarray(p, np.float32)
        return (p >= self.threshold).astype(np.float32) if self.settings.reward_mode == "binary" else p

    def score(self, images: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(rewards (B,) float32, success probabilities (B,) float32)`` in one forward pass."""
        p = self.probabilities(images)
        return self.rewards_from_probabilities(p), p

    def is_success(self, rewards: np.ndarray) -> np.ndarray:
        """(B,) bool: ``reward >= threshold`` (``>= 0.5`` for binary rewards, which are 0 or 1)."""
        r = np.asarray(rewards)
        return r >= (0.5 if self.settings.reward_mode == "binary" else self.threshold)

    def config(self) -> dict[str, Any]:
        """``{"kind": "classifier", "path": DIR, "threshold", "reward_mode", "device"}``.

        Raises:
            ConfigError: the classifier was never saved (there is no file to rebuild it from).
        """
        if self.path is None:
            raise ConfigError("save the classifier (SuccessClassifier.save(dir)) before asking for its config: "
                              "the config points at the saved files")
        return {"kind": self.kind, "path": str(self.path), "threshold": self.threshold,
                "reward_mode": self.settings.reward_mode, "device": self.device_name}

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``; returns it.

        Args:
            extra: JSON-serialisable metadata stored under ``"training"`` in ``config.json``.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": CLASSIFIER_FORMAT})
        cfg = asdict(self.settings)
        cfg["pretrained_weights"] = None  # the weights file holds the backbone; loading needs no path
        body = {"format": CLASSIFIER_FORMAT, "version": CLASSIFIER_VERSION, **cfg, "training": extra or {}}
        (directory / CONFIG_FILE).write_text(json.dumps(body, indent=2))
        self.path = directory
        return directory

    @classmethod
    def load(cls, path: str | Path, threshold: float | None = None, reward_mode: str | None = None,
             device: str = "cpu") -> SuccessClassifier:
        """Load a classifier saved by :meth:`save`.

        Args:
            path: the directory (or its ``config.json`` / ``model.safetensors``).
            threshold / reward_mode: override the saved decision settings.
            device: where it runs.

        Raises:
            CheckpointError: files missing, of another format, or not matching the architecture.
        """
        path = Path(path)
        if path.is_file():
            path = path.parent
        cfg_file, weights = path / CONFIG_FILE, path / WEIGHTS_FILE
        if not cfg_file.is_file() or not weights.is_file():
            raise CheckpointError(f"{path} is not a saved success classifier (needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
                                  "train one with `robot-rl train-reward-classifier --out DIR`")
        raw = json.loads(cfg_file.read_text())
        if raw.pop("format", None) != CLASSIFIER_FORMAT or raw.pop("version", None) != CLASSIFIER_VERSION:
            raise CheckpointError(f"{cfg_file} is not a {CLASSIFIER_FORMAT} v{CLASSIFIER_VERSION} config")
        raw.pop("training", None)
        if threshold is not None:
            raw["threshold"] = float(threshold)
        if reward_mode is not None:
            raw["reward_mode"] = reward_mode
        config = dataclass_from_dict(ClassifierConfig, raw, str(cfg_file), error=CheckpointError,
                                     hint="it was written by another robot_rl version")
        net = SuccessClassifierNet(config, None)
        from safetensors.torch import load_file

        try:
            net.load_state_dict(load_file(str(weights)))
        except (RuntimeError, OSError) as e:
            raise CheckpointError(f"{weights} does not match the classifier in {cfg_file} ({e})") from e
        return cls(config, net, device=device, path=path)


def _from_config(path: str, threshold: float | None = None, reward_mode: str | None = None,
                 device: str = "cpu") -> SuccessClassifier:
    return SuccessClassifier.load(path, threshold=threshold, reward_mode=reward_mode, device=device)


register_reward_model("classifier", _from_config)
