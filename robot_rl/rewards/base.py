"""The reward-model interface and the wrapper that puts a reward model into any RobotEnv.

A reward model maps the camera frames of one or more steps to a reward per step, and says which
of those steps count as success. :class:`RewardModelWrapper` calls it after every ``step`` (and
``reset``) with the observation's images, replaces the env's reward, and ends the episode on
success when asked to (as HIL-SERL's learned classifier does). The model's settings are a plain
dict (:meth:`RewardModel.config`) that the training run saves with its checkpoint, so a resumed or
evaluated run rebuilds the same reward (:func:`make_reward_model`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.errors import ConfigError


class RewardModel(abc.ABC):
    """Rewards from camera frames.

    Attributes:
        cameras: names of the cameras (keys of ``obs["images"]``) the model reads.
        kind: registry name (``"vlm"``, ``"classifier"``, ...), saved in :meth:`config`.
    """

    cameras: tuple[str, ...] = ()
    kind: str = ""
    #: the model's version: 0 as built, +1 each time a false-success loop
    #: (:mod:`robot_rl.rewards.feedback`) retrains it; recorded on every transition it rewarded
    version: int = 0

    @abc.abstractmethod
    def rewards(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """Rewards of a batch of steps.

        Args:
            images: camera name -> ``(B, H, W, 3) uint8`` RGB frames, one per step, for every
                name in :attr:`cameras`.

        Returns:
            ``(B,) float32`` rewards.
        """

    @abc.abstractmethod
    def is_success(self, rewards: np.ndarray) -> np.ndarray:
        """``(B,) bool``: which of ``rewards`` (from :meth:`rewards`) count as task success."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings that rebuild this model through :func:`make_reward_model` (incl. ``kind``)."""

    def reset(self) -> None:
        """Called at every episode start (running statistics may use it). Default: nothing."""

    def score(self, images: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Rewards of a batch of steps and, for models that have one, the success probability.

        Args:
            images: as :meth:`rewards`.

        Returns:
            ``(rewards (B,) float32, probabilities (B,) float32 in [0, 1] or None)``. Default: the
            rewards and None; a classifier overrides it to compute both in one forward pass.
        """
        return self.rewards(images), None


#: kind -> factory(**config) -> RewardModel
_REGISTRY: dict[str, Callable[..., RewardModel]] = {}


def register_reward_model(kind: str, factory: Callable[..., RewardModel]) -> None:
    """Register ``factory(**config)`` under ``kind`` (replacing an earlier one)."""
    _REGISTRY[kind] = factory


def make_reward_model(config: dict[str, Any]) -> RewardModel:
    """Rebuild a reward model from its :meth:`RewardModel.config` dict.

    Raises:
        ConfigError: no ``kind`` or an unregistered one (the message lists the kinds).
    """
    cfg = dict(config)
    kind = cfg.pop("kind", None)
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown reward model kind {kind!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[kind](**cfg)


class RewardModelWrapper(gym.Wrapper):
    """Replace an env's reward with a :class:`RewardModel`'s, computed from ``obs["images"]``.

    ``info`` keeps the env's own reward as ``env_reward`` and its success as ``env_is_success``
    (in sim these are privileged: log them, never train on them); ``info["is_success"]`` becomes
    the model's verdict, ``info["reward_model_version"]`` says which version of the model gave it,
    and ``info["success_probability"]`` holds the model's probability of success when it has one
    (a classifier's). With ``terminate_on_success`` the episode ends when the model says success,
    and that step's ``info["reward_model_success"]`` is True (an operator may then mark it a false
    success, :class:`~robot_rl.intervention.InterventionWrapper`).

    Args:
        env: a gymnasium env whose observation is a Dict with ``images`` holding every camera the
            model reads.
        model: the reward model.
        terminate_on_success: end the episode when the model reports success.
        keep_env_termination: also end the episode when the env terminates by itself. Off by
            default: a simulated task terminates on its privileged success check, which a
            camera-only reward must not use.

    Raises:
        ConfigError: the observation has no ``images`` or lacks one of the model's cameras.
    """

    def __init__(self, env: gym.Env, model: RewardModel, terminate_on_success: bool = True,
                 keep_env_termination: bool = False) -> None:
        super().__init__(env)
        space = env.observation_space
        images = space.spaces.get("images") if isinstance(space, gym.spaces.Dict) else None
        missing = [c for c in model.cameras if images is None or c not in images.spaces]
        if missing:
            have = list(images.spaces) if images is not None else []
            raise ConfigError(f"the reward model reads cameras {missing} that the env does not observe (it has {have}); "
                              "use a pixel env ID or pass cameras=... in --env-kwargs.")
        self.model, self.terminate_on_success = model, terminate_on_success
        self.keep_env_termination = keep_env_termination

    def _score(self, obs: dict[str, Any]) -> tuple[float, bool, float | None]:
        batch = {c: np.asarray(obs["images"][c])[None] for c in self.model.cameras}
        r, p = self.model.score(batch)
        return float(r[0]), bool(self.model.is_success(r)[0]), None if p is None else float(p[0])

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the env and the model's per-episode state."""
        self.model.reset()
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env; the reward (and, with ``terminate_on_success``, termination) come from the model."""
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        reward, success, probability = self._score(obs)
        info = {**info, "env_reward": env_reward, "env_is_success": info.get("is_success"), "is_success": success,
                "reward_model_version": int(self.model.version)}
        if probability is not None:
            info["success_probability"] = probability
        if self.terminate_on_success and success:
            info["reward_model_success"] = True
        terminated = bool((self.terminate_on_success and success) or (self.keep_env_termination and terminated))
        return obs, reward, terminated, truncated, info
