"""Base policies written as a user's plug-in module would, for tests/test_residual.py.

``--env-kwargs base_policy base_policies:scripted`` (with ``tests/`` on ``PYTHONPATH``) imports this
module and calls the factory with the env's spaces, as :func:`robot_rl.residual.load_base_policy` does
for any ``module:factory``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.layout import ActionScaler


class ScriptedBase:
    """The privileged scripted controller of a robot_rl sim task (``robot_rl.sim.scripted``) as a base
    policy: one action per chunk (it must be called once per step, its phases count steps).

    Args:
        env: the env it acts in (it reads the simulator's true object poses).
    """

    def __init__(self, env: gym.Env) -> None:
        from robot_rl.sim.scripted import scripted_policy_for

        self.controller = scripted_policy_for(env)

    def reset(self) -> None:
        """The controller resets itself at step 0 of every episode."""

    def predict_chunk(self, observation: Any) -> np.ndarray:
        """(1, A) float32: the scripted action, env units."""
        return np.asarray(self.controller(observation), np.float32)[None]


def scripted(observation_space: gym.Space, action_space: gym.Space, env: gym.Env) -> ScriptedBase:
    """Factory of :class:`ScriptedBase` (needs the live env: it cannot label recorded demos)."""
    return ScriptedBase(env)


class CountingChunkBase:
    """A chunked base policy whose actions say where they come from: row i of plan k is the
    normalised action ``-0.9 + 0.1 * i + 0.01 * k`` in every dimension, returned in env units.

    Attributes:
        observations: every observation a chunk was planned for. resets: reset() calls.
    """

    def __init__(self, action_space: gym.Space, chunk_length: int) -> None:
        self.scaler = ActionScaler.from_space(action_space)
        self.chunk_length = chunk_length
        self.observations: list[Any] = []
        self.resets = 0

    @staticmethod
    def normalised(plan: int, row: int) -> float:
        """The [-1, 1] action value of row ``row`` of the ``plan``-th chunk (0-based)."""
        return -0.9 + 0.1 * row + 0.01 * plan

    def reset(self) -> None:
        """Count the reset."""
        self.resets += 1

    def predict_chunk(self, observation: Any) -> np.ndarray:
        """(chunk_length, A) float32 in env units."""
        plan = len(self.observations)
        self.observations.append(observation)
        rows = [np.full(self.scaler.dim, self.normalised(plan, i)) for i in range(self.chunk_length)]
        return self.scaler.to_env(np.stack(rows))


def counting(observation_space: gym.Space, action_space: gym.Space, chunk_length: int = 4) -> CountingChunkBase:
    """Factory of :class:`CountingChunkBase`."""
    return CountingChunkBase(action_space, chunk_length)


def wrong_chunk(observation_space: gym.Space, action_space: gym.Space) -> CountingChunkBase:
    """A base policy whose chunks have one action dimension too many."""
    return CountingChunkBase(gym.spaces.Box(-1.0, 1.0, (action_space.shape[0] + 1,), np.float32), 2)
