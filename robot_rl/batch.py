"""Typed containers that flow between the replay buffer and the learner."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Obs(NamedTuple):
    """A batch of observations, as the learner sees them.

    Attributes:
        state: (B, S) float32 state vector (S may be 0 for pure pixel observations).
        images: camera name -> (B, H, W, 3) uint8 RGB image batch (empty dict for state-only).
    """

    state: torch.Tensor
    images: dict[str, torch.Tensor]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Obs:
        """Return a copy on ``device`` (uint8 images stay uint8)."""
        return Obs(
            self.state.to(device, non_blocking=non_blocking),
            {k: v.to(device, non_blocking=non_blocking) for k, v in self.images.items()},
        )

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.state.shape[0])


class Batch(NamedTuple):
    """A batch of transitions ``(s, a, r, s', terminated)``.

    Attributes:
        obs: observations s, batch size B.
        action: (B, A) float32 actions in [-1, 1].
        reward: (B,) float32 rewards.
        next_obs: observations s', batch size B.
        terminated: (B,) float32, 1.0 where s' is terminal (no bootstrapping); truncation is
            not termination and is never stored here.
    """

    obs: Obs
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: Obs
    terminated: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Return a copy on ``device``."""
        return Batch(
            self.obs.to(device, non_blocking),
            self.action.to(device, non_blocking=non_blocking),
            self.reward.to(device, non_blocking=non_blocking),
            self.next_obs.to(device, non_blocking),
            self.terminated.to(device, non_blocking=non_blocking),
        )
