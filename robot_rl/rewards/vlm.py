"""Zero-shot rewards from CLIP-style vision-language models (VLM-RMs).

The reward of a frame is its goal-baseline regularised similarity to a text description of the
task (Rocamonde et al. 2023, "Vision-Language Models are Zero-Shot Reward Models for RL",
arXiv:2310.12921, reference implementation https://github.com/AlignmentResearch/vlmrm,
``vlmrm/reward_model.py``). With unit-norm embeddings ``s`` (frame), ``g`` (goal prompts) and
``b`` (baseline prompts)::

    d       = (g - b) / ||g - b||                  direction of the line L through b and g
    P(s)    = b + ((s - b) . d) d                  projection of s onto L
    R(s)    = 1 - 0.5 * ||alpha * P(s) + (1 - alpha) * s - g||^2

``alpha = 0`` gives ``1 - 0.5 ||s - g||^2 = s . g``, the plain cosine similarity; ``alpha = 1``
keeps only the component of ``s`` along ``d`` (what distinguishes the goal from the baseline),
so the reward ignores everything the baseline prompt also describes. Several prompts per side are
embedded, each normalised, averaged and the mean renormalised (as ``vlmrm`` does).

Models come from open_clip (``backend="open_clip"``: a built-in architecture name plus a
pretrained tag, or a local weights file / ``open_clip_config.json`` folder) or from transformers
(``backend="transformers"``: CLIP or SigLIP, a hub model ID or a folder written by
``save_pretrained``). Weights are never downloaded unless ``allow_download=True``: a robot
computer is often offline, and a missing file should fail in a second with instructions, not
after a network timeout.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.errors import ConfigError, PretrainedWeightsError
from robot_rl.rewards.base import RewardModel, register_reward_model

_LOG = logging.getLogger(__name__)

#: ``pretrained`` value that builds the architecture with random weights (tests and benchmarks).
RANDOM_WEIGHTS = "random"

def _how_to_get(backend: str, model: str, tag: str = "") -> str:
    """The part of a :class:`PretrainedWeightsError` message that says how to get the weights."""
    if backend == "open_clip":
        fetch = (f"python -c \"import open_clip; open_clip.create_model('{model}'"
                 + (f", pretrained='{tag}'" if tag else "") + ")\" (then copy the cached file, see open_clip's cache_dir)")
    else:
        fetch = (f"python -c \"from transformers import AutoModel, AutoProcessor; m = '{model}'; "
                 "AutoModel.from_pretrained(m).save_pretrained('weights'); "
                 "AutoProcessor.from_pretrained(m).save_pretrained('weights')\" (then copy the 'weights' folder)")
    return ("On a machine with internet, run " + fetch + ", and point --reward.model-path (model_path=...) at the "
            "weights here; or pass allow_download=True where this machine can reach the internet.")


def unit_mean(embeddings: torch.Tensor) -> torch.Tensor:
    """Average of several embeddings, VLM-RMs style: normalise each, average, renormalise.

    Args:
        embeddings: ``(N, D)`` float tensor, one row per prompt.

    Returns:
        ``(D,)`` float32 unit vector.
    """
    e = torch.nn.functional.normalize(embeddings.float(), dim=-1).mean(0)
    return torch.nn.functional.normalize(e, dim=-1)


def goal_baseline_reward(s: torch.Tensor, goal: torch.Tensor, baseline: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """VLM-RMs reward ``1 - 0.5 ||alpha P(s) + (1 - alpha) s - g||^2`` (see the module docstring).

    Args:
        s: ``(B, D)`` float32 unit image embeddings.
        goal: ``(D,)`` float32 unit goal embedding ``g``.
        baseline: ``(D,)`` float32 unit baseline embedding ``b``; may be None when ``alpha == 0``.
        alpha: regularisation strength in [0, 1].

    Returns:
        ``(B,)`` float32 rewards, in [-1, 1] for ``alpha = 0``.
    """
    if alpha == 0.0 or baseline is None:
        mixed = s
    else:
        d = torch.nn.functional.normalize(goal - baseline, dim=-1)
        projected = baseline + ((s - baseline) @ d)[:, None] * d
        mixed = alpha * projected + (1.0 - alpha) * s
    return 1.0 - 0.5 * ((mixed - goal) ** 2).sum(-1)


# --------------------------------------------------------------------------- encoders


class _OpenClipEncoder:
    """An open_clip model with its own preprocessing (``create_model_and_transforms``) and tokenizer."""

    def __init__(self, model: str, pretrained: str, model_path: str, device: torch.device, dtype: torch.dtype,
                 allow_download: bool, cache_dir: str | None) -> None:
        import open_clip

        precision = "fp16" if dtype == torch.float16 else "fp32"
        common = dict(precision=precision, device=device, pretrained_text=False, cache_dir=cache_dir)
        weights: str | None = None
        name = model
        if model_path:
            path = Path(model_path).expanduser()
            if path.is_dir():
                if not (path / "open_clip_config.json").is_file():
                    raise PretrainedWeightsError(f"open_clip weights folder {path} has no open_clip_config.json; pass the "
                                                 ".pt/.safetensors weights file instead, or a folder saved for the local-dir: schema.")
                name = f"local-dir:{path}"
            elif path.is_file():
                weights = str(path)
            else:
                raise PretrainedWeightsError(f"open_clip weights {path} do not exist. "
                                             + _how_to_get("open_clip", model, pretrained or "openai"))
        elif name.startswith("hf-hub:"):
            from huggingface_hub import try_to_load_from_cache

            if not allow_download and not isinstance(try_to_load_from_cache(name[len("hf-hub:"):], "open_clip_config.json",
                                                                            cache_dir=cache_dir), str):
                raise PretrainedWeightsError(f"open_clip model {name} is not in the Hugging Face cache and downloads are off. "
                                             + _how_to_get("open_clip", name, ""))
        elif pretrained and pretrained != RANDOM_WEIGHTS and not name.startswith("local-dir:"):
            weights = _resolve_open_clip_tag(model, pretrained, allow_download, cache_dir)
        if not name.startswith(("local-dir:", "hf-hub:")) and open_clip.get_model_config(name) is None:
            raise ConfigError(f"open_clip has no model {name!r}; open_clip.list_models() names the built-in ones "
                              "(e.g. 'ViT-B-32'), or pass a folder with open_clip_config.json as model_path.")
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(name, pretrained=weights, **common)
        except (RuntimeError, OSError, KeyError, ValueError, AssertionError) as e:
            raise PretrainedWeightsError(f"could not load open_clip model {name!r} with weights {weights!r}: {e}. "
                                         "Check that the weights are for this architecture.") from e
        if name.startswith("local-dir:") and not _has_local_dir_weights(Path(name[len("local-dir:"):])):
            raise PretrainedWeightsError(f"{name[len('local-dir:'):]} holds open_clip_config.json but no weights "
                                         "(open_clip_model.safetensors or open_clip_pytorch_model.bin).")
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir)
        self.device, self.dtype = device, dtype

    @torch.inference_mode()
    def images(self, frames: np.ndarray) -> torch.Tensor:
        from PIL import Image

        x = torch.stack([self.preprocess(Image.fromarray(f)) for f in frames]).to(self.device, self.dtype)
        return self.model.encode_image(x).float()

    @torch.inference_mode()
    def texts(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(prompts)).to(self.device)).float()


def _has_local_dir_weights(path: Path) -> bool:
    return any(path.glob("*.safetensors")) or any(path.glob("*.bin")) or any(path.glob("*.pt")) or any(path.glob("*.pth"))


def _resolve_open_clip_tag(model: str, tag: str, allow_download: bool, cache_dir: str | None) -> str:
    """Local file of open_clip's ``model``/``tag`` weights, from the Hugging Face or ``~/.cache/clip`` cache.

    Raises:
        ConfigError: open_clip knows no such tag for the model.
        PretrainedWeightsError: not cached and ``allow_download`` is false.
    """
    import open_clip

    if os.path.isfile(os.path.expanduser(tag)):
        return os.path.expanduser(tag)
    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        raise ConfigError(f"open_clip has no pretrained tag {tag!r} for {model!r}; "
                          f"tags: {open_clip.list_pretrained_tags_by_model(model)}, or pass a weights file.")
    candidates: list[str] = []
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        hub = cfg["hf_hub"]
        repo, filename = (hub.rstrip("/"), "open_clip_pytorch_model.bin") if hub.endswith("/") else os.path.split(hub)
        for fn in (str(Path(filename).with_suffix(".safetensors")), filename):
            hit = try_to_load_from_cache(repo, fn, cache_dir=cache_dir)
            if isinstance(hit, str):
                return hit
        candidates.append(f"huggingface.co/{repo}/{filename}")
    if cfg.get("url"):
        local = Path(cache_dir or "~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if local.is_file():
            return str(local)
        candidates.append(cfg["url"])
    if allow_download:
        return tag  # open_clip downloads it
    raise PretrainedWeightsError(f"open_clip weights {model}/{tag} are not on this machine (not cached: {' or '.join(candidates)}) "
                                 "and downloads are off. " + _how_to_get("open_clip", model, tag))


class _TransformersEncoder:
    """A transformers CLIP/SigLIP model (``get_image_features``/``get_text_features``) with its image
    processor and tokenizer (the two halves of its ``AutoProcessor``)."""

    def __init__(self, source: str, device: torch.device, dtype: torch.dtype, allow_download: bool,
                 cache_dir: str | None) -> None:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        kw = dict(local_files_only=not allow_download, cache_dir=cache_dir)
        try:
            self.model = AutoModel.from_pretrained(source, **kw)
            self.tokenizer = AutoTokenizer.from_pretrained(source, **kw)
            self.processor = AutoImageProcessor.from_pretrained(source, **kw)
        except OSError as e:
            where = "folder" if Path(source).expanduser().is_dir() else "model"
            raise PretrainedWeightsError(
                f"transformers {where} {source!r} is not available offline ({str(e).splitlines()[0]}). "
                + _how_to_get("transformers", source)) from e
        if not (hasattr(self.model, "get_image_features") and hasattr(self.model, "get_text_features")):
            raise ConfigError(f"{source!r} is a {type(self.model).__name__}, not an image-text model with "
                              "get_image_features/get_text_features (use a CLIP or SigLIP checkpoint).")
        self.model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = device, dtype
        # SigLIP was trained on texts padded to the full context; CLIP pools at the EOS token.
        self.pad_to_max = getattr(self.model.config, "model_type", "") in ("siglip", "siglip2")
        self.max_length = getattr(getattr(self.model.config, "text_config", None), "max_position_embeddings", None)

    @staticmethod
    def _pooled(out: Any) -> torch.Tensor:
        # transformers < 5 returns the projected features; 5 returns an output whose pooler_output they are.
        return (out if torch.is_tensor(out) else out.pooler_output).float()

    @torch.inference_mode()
    def images(self, frames: np.ndarray) -> torch.Tensor:
        px = self.processor(images=list(frames), return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
        return self._pooled(self.model.get_image_features(pixel_values=px))

    @torch.inference_mode()
    def texts(self, prompts: Sequence[str]) -> torch.Tensor:
        padding = "max_length" if self.pad_to_max else True
        t = self.tokenizer(list(prompts), padding=padding, truncation=True, max_length=self.max_length, return_tensors="pt")
        t = {k: v.to(self.device) for k, v in t.items() if k in ("input_ids", "attention_mask")}
        if self.pad_to_max:
            t.pop("attention_mask", None)  # SigLIP's text tower was trained without one
        return self._pooled(self.model.get_text_features(**t))


# --------------------------------------------------------------------------- reward model


class RunningMeanStd:
    """Welford's running mean and variance of a scalar stream (float64 accumulators).

    Source: Welford 1962; the batched merge is Chan et al. 1979 ("Updating formulae and a
    pairwise algorithm for computing sample variances").
    """

    def __init__(self, count: int = 0, mean: float = 0.0, m2: float = 0.0) -> None:
        self.count, self.mean, self.m2 = int(count), float(mean), float(m2)

    def update(self, x: np.ndarray) -> None:
        """Add a ``(B,)`` batch of values."""
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.size == 0:
            return
        n, mean = x.size, float(x.mean())
        m2 = float(((x - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta ** 2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        """Population standard deviation (0 before two values)."""
        return math.sqrt(self.m2 / self.count) if self.count > 1 else 0.0

    def state(self) -> dict[str, float]:
        """``{"count", "mean", "m2"}``, which rebuild it."""
        return {"count": self.count, "mean": self.mean, "m2": self.m2}


class VLMReward(RewardModel):
    """VLM-RMs zero-shot reward: goal-baseline regularised CLIP/SigLIP similarity of camera frames.

    ``R = 1 - 0.5 * ||alpha * P_L(s) + (1 - alpha) * s - g||^2`` (module docstring), averaged over
    :attr:`cameras`. Text embeddings are computed once here; :meth:`rewards` embeds all frames of
    all cameras in one forward pass (in chunks of ``batch_size``).

    Source: Rocamonde et al. 2023, arXiv:2310.12921; https://github.com/AlignmentResearch/vlmrm.

    Args:
        goal_prompts: text(s) describing the goal state ("a robot gripper holding a red cube
            above the table"); several are averaged.
        baseline_prompts: text(s) describing the scene without the goal ("a robot arm and a red
            cube on a table"); required when ``alpha > 0``.
        alpha: goal-baseline regularisation in [0, 1]; 0 is plain cosine similarity.
        backend: ``"open_clip"`` or ``"transformers"``.
        model: open_clip architecture (``"ViT-B-32"``, ``"ViT-B-16-SigLIP"``, ``"local-dir:/path"``)
            or transformers model ID (``"openai/clip-vit-base-patch32"``,
            ``"google/siglip-base-patch16-224"``).
        pretrained: open_clip pretrained tag (``"openai"``, ``"laion2b_s34b_b79k"``) or
            ``"random"`` for untrained weights (benchmarks, tests); ignored by transformers.
        model_path: local weights, which take precedence over ``model``/``pretrained`` for the
            weights: an open_clip ``.pt``/``.safetensors`` file (architecture from ``model``) or
            folder with ``open_clip_config.json``; a transformers folder written by
            ``save_pretrained`` (model, tokenizer and image processor).
        cameras: cameras whose frames are scored; the reward is the mean over them.
        device: ``"auto"`` (cuda when present, else cpu), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        fp16: run the model in float16; None: on CUDA only. Embeddings and reward are float32.
        normalize: return ``(R - mean) / (std + norm_eps)`` with Welford running statistics
            of the raw rewards (updated by every :meth:`rewards` call while ``update_stats``).
        norm_eps: added to the standard deviation.
        norm_stats: saved statistics (``{"count", "mean", "m2"}``) to continue from.
        update_stats: update the running statistics (turn off for evaluation).
        success_threshold: a step is a success when the reward is >= this; None: never.
        threshold_on: ``"raw"`` (default: compare the un-normalised VLM-RM reward, which does
            not drift as statistics update) or ``"normalized"`` (compare the returned reward).
        batch_size: frames per forward pass.
        allow_download: let open_clip / transformers download missing weights.
        cache_dir: where downloaded weights are cached (library default when None).
        path: same as ``model_path`` (what ``--reward-model-path`` passes).

    Raises:
        ConfigError: bad ``alpha``/``backend``/``device``/``threshold_on``, no goal prompt,
            no baseline with ``alpha > 0``, goal and baseline embeddings that coincide.
        PretrainedWeightsError: weights not available offline, unreadable, or of another
            architecture; the message says how to get them.
    """

    kind = "vlm"

    def __init__(self, goal_prompts: str | Sequence[str], baseline_prompts: str | Sequence[str] = (), *,
                 alpha: float = 0.5, backend: str = "open_clip", model: str = "ViT-B-32", pretrained: str = "openai",
                 model_path: str = "", cameras: str | Sequence[str] = ("front",), device: str = "auto",
                 fp16: bool | None = None, normalize: bool = False, norm_eps: float = 1e-6,
                 norm_stats: dict[str, float] | None = None, update_stats: bool = True,
                 success_threshold: float | None = None, threshold_on: str = "raw", batch_size: int = 32,
                 allow_download: bool = False, cache_dir: str | None = None, path: str = "") -> None:
        if path and model_path and str(path) != str(model_path):
            raise ConfigError(f"VLMReward got two weights paths, path={path!r} and model_path={model_path!r}; pass one.")
        model_path = model_path or path
        self.goal_prompts = [goal_prompts] if isinstance(goal_prompts, str) else list(goal_prompts)
        self.baseline_prompts = [baseline_prompts] if isinstance(baseline_prompts, str) else list(baseline_prompts)
        self.cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras)
        if not self.goal_prompts or not all(isinstance(p, str) and p.strip() for p in self.goal_prompts):
            raise ConfigError("VLMReward needs at least one non-empty goal prompt (goal_prompts=['a gripper holding a red cube']).")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1] (0: cosine similarity, 1: goal-baseline direction only), got {alpha}.")
        if alpha > 0 and not self.baseline_prompts:
            raise ConfigError(f"alpha={alpha} projects onto the goal-baseline line and needs baseline_prompts "
                              "(a description of the scene without the goal), or use alpha=0.")
        if backend not in ("open_clip", "transformers"):
            raise ConfigError(f"backend must be 'open_clip' or 'transformers', got {backend!r}.")
        if threshold_on not in ("raw", "normalized"):
            raise ConfigError(f"threshold_on must be 'raw' or 'normalized', got {threshold_on!r}.")
        if not self.cameras:
            raise ConfigError("VLMReward needs at least one camera (cameras=['front']).")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1 frame, got {batch_size}.")
        self.alpha, self.backend, self.model_name, self.pretrained = float(alpha), backend, model, pretrained
        self.model_path, self.device_name, self.fp16 = str(model_path or ""), device, fp16
        self.normalize, self.norm_eps, self.update_stats = bool(normalize), float(norm_eps), bool(update_stats)
        self.success_threshold = None if success_threshold is None else float(success_threshold)
        self.threshold_on, self.batch_size = threshold_on, int(batch_size)
        self.allow_download, self.cache_dir = bool(allow_download), cache_dir
        self.stats = RunningMeanStd(**(norm_stats or {}))
        self.last_raw: np.ndarray = np.zeros(0, np.float32)

        self.device = _resolve_device(device)
        use_fp16 = (self.device.type == "cuda") if fp16 is None else bool(fp16)
        dtype = torch.float16 if use_fp16 else torch.float32
        if backend == "open_clip":
            self.encoder: Any = _OpenClipEncoder(model, pretrained, self.model_path, self.device, dtype, allow_download, cache_dir)
        else:
            self.encoder = _TransformersEncoder(self.model_path or model, self.device, dtype, allow_download, cache_dir)
        self.goal = unit_mean(self.encoder.texts(self.goal_prompts))
        self.baseline = unit_mean(self.encoder.texts(self.baseline_prompts)) if self.baseline_prompts else None
        if self.alpha > 0 and float(torch.linalg.norm(self.goal - self.baseline)) < 1e-6:
            raise ConfigError("the goal and baseline prompts embed to the same vector; make them differ in what the goal adds.")

    def image_embeddings(self, frames: np.ndarray) -> torch.Tensor:
        """Unit image embeddings ``s``.

        Args:
            frames: ``(B, H, W, 3) uint8`` RGB frames.

        Returns:
            ``(B, D) float32`` unit vectors (CPU or the model's device).
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ConfigError(f"frames must be (B, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}.")
        chunks = [self.encoder.images(frames[i:i + self.batch_size]) for i in range(0, len(frames), self.batch_size)]
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)

    def raw_rewards(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """Un-normalised VLM-RM rewards, mean over cameras: ``(B,) float32``, no statistics updated."""
        missing = [c for c in self.cameras if c not in images]
        if missing:
            raise ConfigError(f"VLMReward reads cameras {list(self.cameras)} but got no frames for {missing} (got {list(images)}).")
        sizes = {len(images[c]) for c in self.cameras}
        if len(sizes) != 1:
            raise ConfigError(f"every camera needs the same number of frames, got {({c: len(images[c]) for c in self.cameras})}.")
        batch = sizes.pop()
        if batch == 0:
            return np.zeros(0, np.float32)
        frames = [np.asarray(images[c]) for c in self.cameras]
        if len({f.shape for f in frames}) == 1:  # one forward pass for all cameras
            s = self.image_embeddings(np.concatenate(frames))
        else:  # cameras of different resolutions: one pass each
            s = torch.cat([self.image_embeddings(f) for f in frames])
        r = goal_baseline_reward(s, self.goal.to(s.device), None if self.baseline is None else self.baseline.to(s.device), self.alpha)
        return r.reshape(len(self.cameras), batch).mean(0).cpu().numpy().astype(np.float32)

    def rewards(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """Rewards of a batch of steps.

        Args:
            images: camera name -> ``(B, H, W, 3) uint8`` RGB frames for every name in :attr:`cameras`.

        Returns:
            ``(B,) float32``: the raw reward, or with ``normalize`` ``(raw - mean) / (std + eps)``
            using the statistics after this batch was added. The raw values stay in
            :attr:`last_raw` (for :meth:`is_success` with ``threshold_on="raw"``).
        """
        raw = self.raw_rewards(images)
        self.last_raw = raw
        if not self.normalize:
            return raw
        if self.update_stats:
            self.stats.update(raw)
        return ((raw - self.stats.mean) / (self.stats.std + self.norm_eps)).astype(np.float32)

    def is_success(self, rewards: np.ndarray) -> np.ndarray:
        """``(B,) bool``: reward >= ``success_threshold`` (raw or normalised, see ``threshold_on``).

        With ``threshold_on="raw"`` and ``normalize`` on, ``rewards`` must be the last
        :meth:`rewards` result (its raw values are taken from :attr:`last_raw`).
        """
        rewards = np.asarray(rewards, dtype=np.float32)
        if self.success_threshold is None:
            return np.zeros(rewards.shape, bool)
        values = rewards
        if self.normalize and self.threshold_on == "raw":
            if self.last_raw.shape != rewards.shape:
                raise ConfigError("is_success(threshold_on='raw') needs the rewards of the last rewards() call.")
            values = self.last_raw
        return values >= self.success_threshold

    def config(self) -> dict[str, Any]:
        """Settings that rebuild this model (not the weights), incl. the running statistics."""
        return {"kind": self.kind, "goal_prompts": list(self.goal_prompts), "baseline_prompts": list(self.baseline_prompts),
                "alpha": self.alpha, "backend": self.backend, "model": self.model_name, "pretrained": self.pretrained,
                "model_path": self.model_path, "cameras": list(self.cameras), "device": self.device_name, "fp16": self.fp16,
                "normalize": self.normalize, "norm_eps": self.norm_eps, "norm_stats": self.stats.state(),
                "update_stats": self.update_stats, "success_threshold": self.success_threshold,
                "threshold_on": self.threshold_on, "batch_size": self.batch_size,
                "allow_download": self.allow_download, "cache_dir": self.cache_dir}


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device {name!r} is not a torch device ('auto', 'cpu', 'cuda', 'cuda:1'): {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here; use device='auto' or 'cpu'.")
    return device


register_reward_model(VLMReward.kind, VLMReward)
