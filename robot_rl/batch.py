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

    @classmethod
    def single(cls, state, images, device: torch.device | str = "cpu") -> Obs:
        """A batch of one from a split observation (see :meth:`robot_rl.layout.ObsLayout.split`).

        Args:
            state: (S,) float32 numpy array. images: camera -> (H, W, 3) uint8 numpy array.
            device: where the tensors go (CPU arrays are wrapped without a copy).

        Returns:
            ``Obs`` with state (1, S) float32 and images (1, H, W, 3) uint8.
        """
        return cls(torch.as_tensor(state, device=device).unsqueeze(0),
                   {k: torch.as_tensor(v, device=device).unsqueeze(0) for k, v in images.items()})

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
