"""Making gymnasium environments by ID with clear errors."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym

from robot_rl.errors import ConfigError
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.torch_setup import preload_torch


def robot_rl_env_ids() -> list[str]:
    """The gymnasium IDs robot_rl registers (``robot_rl/...``)."""
    import robot_rl  # noqa: F401 - registers the IDs

    return sorted(k for k in gym.registry if k.startswith("robot_rl/"))


def parse_env_kwargs(raw: dict[str, str]) -> dict[str, Any]:
    """Command-line env kwargs (strings) -> Python values: JSON where it parses, else the string.

    ``{"image_size": "96", "reward_type": "dense", "cameras": '["front"]'}`` ->
    ``{"image_size": 96, "reward_type": "dense", "cameras": ["front"]}``.
    """
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            out[key] = value
    return out


def make_env(env_id: str, render: bool = False, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` with robot_rl's IDs registered and a checked observation layout.

    Args:
        env_id: a gymnasium ID (``robot_rl/PandaPickLift-v0``, ``Pendulum-v1``, or
            ``some_module:SomeEnv-v0`` to import a third-party module that registers it).
        render: ask for ``render_mode="rgb_array"`` (for evaluation videos).
        kwargs: passed to the env constructor.

    Raises:
        ConfigError: the ID is unknown (the message lists robot_rl's IDs).
        ObservationLayoutError: the env's observation or action space cannot be learned from.
    """
    preload_torch()  # before the env can open an EGL context (robot_rl/torch_setup.py says why)
    ids = robot_rl_env_ids()
    if render:
        kwargs.setdefault("render_mode", "rgb_array")
    try:
        env = gym.make(env_id, **kwargs)
    except TypeError as e:
        raise ConfigError(f"bad keyword arguments for {env_id}: {e}. Check --env-kwargs names and values.") from e
    except (gym.error.NameNotFound, gym.error.NamespaceNotFound, gym.error.VersionNotFound,
            gym.error.UnregisteredEnv, gym.error.DeprecatedEnv, ModuleNotFoundError) as e:
        raise ConfigError(
            f"unknown env ID {env_id!r} ({e}). robot_rl's IDs: {', '.join(ids)}. Any gymnasium ID works; "
            "for a third-party package use 'package_module:EnvId-v0' so gymnasium imports it first."
        ) from e
    ObsLayout.from_space(env.observation_space)
    ActionScaler.from_space(env.action_space)
    return env
