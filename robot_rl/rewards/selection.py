"""Reward source of a training run (``robot-rl train --reward ...``, ``robot-rl actor --reward ...``).

==============  ==============================================================================
``--reward``    reward the learner sees
==============  ==============================================================================
``env``         the env's own reward, unchanged (default; any gymnasium env)
``sparse``      robot_rl sims: ``reward_type="sparse"`` (1 on privileged success, terminates)
``dense``       robot_rl sims: ``reward_type="dense"`` (named shaped terms)
``classifier``  a learned success classifier (``--reward-model-path DIR``) through
                :class:`~robot_rl.rewards.base.RewardModelWrapper`, terminating on its success
``vlm``         a VLM reward model (settings in ``--reward-kwargs``), same wrapper
``intervention`` RLIF: -1 at each take-over, 0 otherwise (needs ``--intervention``)
==============  ==============================================================================

With a reward model the env's own reward and success stay in ``info`` as ``env_reward`` and
``env_is_success`` (privileged in sim: logged for evaluation, never trained on).
"""

from __future__ import annotations

import importlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.rewards.base import RewardModel, RewardModelWrapper, make_reward_model

REWARD_SOURCES = ("env", "sparse", "dense", "classifier", "vlm", "intervention")
MODEL_REWARDS = ("classifier", "vlm")
#: file in a run directory holding the reward model's config (what rebuilds it on --resume / eval)
REWARD_FILE = "reward.json"


def check_reward_source(reward: str, env_kwargs: dict[str, Any], teleop: str = "none",
                        model_path: Path | None = None) -> dict[str, Any]:
    """Validate ``--reward`` and return the env kwargs it implies (``reward_type`` for sparse / dense).

    Raises:
        ConfigError: an unknown source, a ``reward_type`` in ``--env-kwargs`` that contradicts it,
            ``intervention`` without ``--teleop``, or ``classifier`` without a model path.
    """
    if reward not in REWARD_SOURCES:
        raise ConfigError(f"unknown --reward {reward!r}; choose one of {', '.join(REWARD_SOURCES)}")
    kwargs = dict(env_kwargs)
    if reward in ("sparse", "dense"):
        if kwargs.get("reward_type", reward) != reward:
            raise ConfigError(f"--reward {reward} contradicts --env-kwargs reward_type {kwargs['reward_type']}; drop one")
        kwargs["reward_type"] = reward
    if reward == "intervention" and teleop == "none":
        raise ConfigError("--reward intervention (RLIF) rewards take-overs, so it needs --teleop "
                          "(e.g. --teleop scripted)")
    if reward == "classifier" and model_path is None:
        raise ConfigError("--reward classifier needs --reward-model-path DIR (from `robot-rl train-reward-classifier --out DIR`)")
    if reward not in MODEL_REWARDS and model_path is not None:
        raise ConfigError(f"--reward-model-path is only used with --reward classifier or vlm, not {reward}")
    return kwargs


def _import_kind(kind: str) -> None:
    """Import the module that registers reward model ``kind`` (``robot_rl.rewards.<kind>``)."""
    try:
        importlib.import_module(f"robot_rl.rewards.{kind}")
    except ModuleNotFoundError as e:
        if e.name == f"robot_rl.rewards.{kind}":
            raise ConfigError(f"reward model kind {kind!r} is not available in this robot_rl "
                              f"(no module robot_rl.rewards.{kind})") from e
        raise


def build_reward_model(reward: str, model_path: Path | None, reward_kwargs: dict[str, Any]) -> RewardModel:
    """Build the reward model of ``--reward classifier|vlm`` from the command-line settings.

    Args:
        reward: ``"classifier"`` or ``"vlm"``.
        model_path: the classifier directory (or a VLM's local weights path, passed as ``path``).
        reward_kwargs: further settings of the model (``threshold``, ``device``, a VLM's prompts ...).

    Warns (``UserWarning``) when a classifier gives its success probability as reward (a directory
    saved with ``reward_mode: probability``, or the override): the episode ends at success, so that
    reward pays a policy for hovering just below the threshold (measured: see the README).
    """
    kind = {"classifier": "classifier", "vlm": "vlm"}[reward]
    _import_kind(kind)
    cfg: dict[str, Any] = {"kind": kind, **reward_kwargs}
    if model_path is not None:
        cfg["path"] = str(model_path)
    model = make_reward_model(cfg)
    if kind == "classifier" and getattr(getattr(model, "settings", None), "reward_mode", None) == "probability":
        warnings.warn("the success classifier's reward is its probability (reward_mode probability) while the episode "
                      "ends at success: a policy can earn more by hovering just below the threshold than by succeeding; "
                      "use --reward-kwargs reward_mode binary (the default of new classifiers)", UserWarning, stacklevel=2)
    return model


def load_reward_model(config: dict[str, Any]) -> RewardModel:
    """Rebuild a reward model from its saved :meth:`RewardModel.config` (``reward.json`` of a run)."""
    _import_kind(str(config.get("kind")))
    return make_reward_model(config)


def save_run_reward(run_dir: Path, model: RewardModel | None) -> None:
    """Keep a new run's reward model with the run: ``run_dir/reward.json`` (+ the classifier's files).

    A classifier directory is copied into ``run_dir/reward_model`` and the model re-pointed at the
    copy, so the run keeps the exact model it trained with even if the original is retrained;
    ``reward.json`` holds :meth:`RewardModel.config`, which :func:`load_run_reward` rebuilds on
    ``--resume`` and in ``robot-rl eval``. Nothing is written for ``model=None``.
    """
    if model is None:
        return
    src = getattr(model, "path", None)
    if model.kind == "classifier" and src is not None and Path(src).is_dir():
        local = run_dir / "reward_model"
        if not local.exists():
            shutil.copytree(src, local)
        model.path = local
    write_run_reward_config(run_dir, model)


def write_run_reward_config(run_dir: Path, model: RewardModel) -> None:
    """Write ``run_dir/reward.json`` (:meth:`RewardModel.config`) atomically; a model path inside the
    run is written relative to it, so a moved or copied run still finds its model (also used when
    the false-success loop swaps in a new version, :mod:`robot_rl.rewards.feedback`)."""
    import os

    run_dir = Path(run_dir)
    config = model.config()
    if config.get("path"):
        path = Path(config["path"]).resolve()
        if path.is_relative_to(run_dir.resolve()):
            config["path"] = str(path.relative_to(run_dir.resolve()))
    tmp = run_dir / (REWARD_FILE + ".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, run_dir / REWARD_FILE)


def load_run_reward(run_dir: Path) -> RewardModel | None:
    """The reward model saved with a run by :func:`save_run_reward`, or None when the run used none."""
    saved = Path(run_dir) / REWARD_FILE
    if not saved.is_file():
        return None
    config = json.loads(saved.read_text())
    if config.get("path") and not Path(config["path"]).is_absolute():
        config["path"] = str(Path(run_dir) / config["path"])
    return load_reward_model(config)


def relabel_episode(episode: Any, model: RewardModel, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A reward model's rewards and terminations for a recorded episode (as the wrapper would give them online).

    Args:
        episode: a :class:`~robot_rl.demos.Episode` with ``observations["images"]`` holding the
            model's cameras, ``(T+1, H, W, 3) uint8`` each.
        model: the reward model.
        batch: frames per model call.

    Returns:
        ``rewards`` (T,) float32 from frames 1..T (the frame after each step) and ``terminated``
        (T,) bool: the model's success at that step (the env's own termination is dropped, as
        :class:`~robot_rl.rewards.base.RewardModelWrapper` drops it).

    Raises:
        ConfigError: the episode lacks one of the model's cameras.
    """
    images = episode.observations.get("images", {}) if isinstance(episode.observations, dict) else {}
    missing = [c for c in model.cameras if c not in images]
    if missing:
        raise ConfigError(f"demo episodes lack cameras {missing} that the reward model reads; record pixel demos")
    t = len(episode)
    rewards = np.concatenate([model.rewards({c: np.asarray(images[c][1 + i:1 + min(i + batch, t)]) for c in model.cameras})
                              for i in range(0, t, batch)]).astype(np.float32)
    return rewards, np.asarray(model.is_success(rewards), bool)


def wrap_with_reward(env: gym.Env, model: RewardModel | None) -> gym.Env:
    """``RewardModelWrapper(env, model, terminate_on_success=True)``, or ``env`` when ``model`` is None."""
    return env if model is None else RewardModelWrapper(env, model, terminate_on_success=True)
