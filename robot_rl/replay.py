"""Replay buffer that stores every observation once (images as uint8).

Layout: a ring of *rows*. Row ``i`` holds observation ``s_i``; when the step from ``s_i`` is
taken, row ``i`` also gets ``a_i, r_i, terminated_i`` and the next observation goes into row
``i + 1``. So ``s'`` of a transition is simply the next row and is never stored twice; the final
observation of an episode occupies a row that is not itself a transition (``valid`` False).
Per transition this costs ``sum(H * W * 3)`` image bytes plus ``4 * (S + A + 1) + 2`` bytes, and
one extra observation row per episode.

Symmetric sampling (RLPD, Ball et al. 2023, arXiv:2302.02948): :func:`sample_mixed` draws a
fixed fraction of each batch from a demo buffer and the rest from the online buffer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robot_rl.batch import Batch, Obs
from robot_rl.layout import ObsLayout


class ReplayBuffer:
    """Ring buffer of transitions for one observation layout.

    Args:
        layout: how observations split into state and images (see :class:`ObsLayout`).
        action_dim: A, the action dimension (actions stored float32 in [-1, 1]).
        capacity: number of rows (observations); about one transition per row.

    Raises:
        ValueError: capacity < 2.
    """

    def __init__(self, layout: ObsLayout, action_dim: int, capacity: int) -> None:
        if capacity < 2:
            raise ValueError(f"replay capacity must be >= 2 rows, got {capacity}")
        self.layout = layout
        self.capacity = int(capacity)
        self.state = np.zeros((capacity, layout.state_dim), np.float32)
        self.images = {k: np.zeros((capacity, *shape), np.uint8) for k, shape in layout.image_shapes.items()}
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.bool_)
        self.intervention = np.zeros(capacity, np.bool_)
        self.valid = np.zeros(capacity, np.bool_)  # row i is a transition whose s' is row i+1
        self._ptr = 0  # row of the current (latest) observation
        self._rows = 0  # rows written so far, saturating at capacity
        self._open = False  # an episode is in progress
        self.num_transitions_added = 0

    # ----------------------------------------------------------------- writing
    def _write_obs(self, row: int, obs: Any) -> None:
        state, images = self.layout.split(obs)
        self.state[row] = state
        for k, img in images.items():
            self.images[k][row] = img
        self.valid[row] = False

    def start_episode(self, obs: Any) -> None:
        """Store the first observation of an episode (a raw env observation)."""
        row = (self._ptr + 1) % self.capacity if self._rows else 0
        self._write_obs(row, obs)
        self._ptr = row
        self._rows = min(self._rows + 1, self.capacity)
        self._open = True

    def add(self, action: np.ndarray, reward: float, next_obs: Any, terminated: bool, intervention: bool = False) -> None:
        """Store one step taken from the current observation.

        Args:
            action: (A,) float32 action in [-1, 1] (learner units).
            reward: scalar reward.
            next_obs: raw env observation after the step.
            terminated: True if ``next_obs`` is terminal (truncation is not termination).
            intervention: True if a human (or scripted corrector) chose the action.

        Raises:
            RuntimeError: no episode was started with :meth:`start_episode`.
        """
        if not self._open:
            raise RuntimeError("ReplayBuffer.add() before start_episode(): call start_episode(first_obs) after each reset")
        row = self._ptr
        self.action[row] = action
        self.reward[row] = reward
        self.terminated[row] = terminated
        self.intervention[row] = intervention
        nxt = (row + 1) % self.capacity
        self._write_obs(nxt, next_obs)  # invalidates the old transition stored at nxt
        self.valid[row] = True
        self._ptr = nxt
        self._rows = min(self._rows + 1, self.capacity)
        self.num_transitions_added += 1

    def start_episode_split(self, state: np.ndarray, images: dict[str, np.ndarray]) -> None:
        """:meth:`start_episode` for an observation already split by the layout.

        Args:
            state: (S,) float32. images: camera -> (H, W, 3) uint8.
        """
        row = (self._ptr + 1) % self.capacity if self._rows else 0
        self.state[row] = state
        for k, img in images.items():
            self.images[k][row] = img
        self.valid[row] = False
        self._ptr = row
        self._rows = min(self._rows + 1, self.capacity)
        self._open = True

    def add_steps(self, next_state: np.ndarray, next_images: dict[str, np.ndarray], action: np.ndarray,
                  reward: np.ndarray, terminated: np.ndarray, intervention: np.ndarray) -> None:
        """Vectorised :meth:`add` of ``n`` consecutive steps from the current observation.

        Args:
            next_state: (n, S) float32 observations s_{t+1} .. s_{t+n}, split by the layout.
            next_images: camera -> (n, H, W, 3) uint8.
            action: (n, A) float32 in [-1, 1]. reward: (n,). terminated, intervention: (n,) bool.

        Raises:
            RuntimeError: no episode is open. ValueError: ``n`` >= capacity.
        """
        if not self._open:
            raise RuntimeError("ReplayBuffer.add_steps() before start_episode(): call start_episode(first_obs) after each reset")
        n = len(action)
        if n >= self.capacity:
            raise ValueError(f"cannot add {n} steps at once to a buffer of {self.capacity} rows")
        if n == 0:
            return
        if self._ptr + n < self.capacity:  # no wrap: slices copy with memcpy, faster than index arrays
            rows, nxt = slice(self._ptr, self._ptr + n), slice(self._ptr + 1, self._ptr + n + 1)
            last = self._ptr + n
        else:
            rows = (self._ptr + np.arange(n)) % self.capacity
            nxt = (rows + 1) % self.capacity
            last = int(nxt[-1])
        self.valid[nxt] = False  # the rows receiving s_{t+1} stop being old transitions
        self.state[nxt] = next_state
        for k, img in next_images.items():
            self.images[k][nxt] = img
        self.action[rows] = action
        self.reward[rows] = reward
        self.terminated[rows] = terminated
        self.intervention[rows] = intervention
        self.valid[rows] = True
        self._ptr = last
        self._rows = min(self._rows + n, self.capacity)
        self.num_transitions_added += n

    def end_episode(self) -> None:
        """Close the current episode (its last observation stays a non-transition row)."""
        self._open = False

    def add_episode(self, observations: Any, actions: np.ndarray, rewards: np.ndarray,
                    terminated: np.ndarray, intervention: np.ndarray | None = None) -> None:
        """Store a whole episode.

        Args:
            observations: raw observation tree whose leaves have a leading time axis T+1.
            actions: (T, A) float32 in [-1, 1]; rewards: (T,); terminated: (T,) bool;
            intervention: optional (T,) bool.
        """
        self.start_episode(_index_tree(observations, 0))
        for t in range(len(actions)):
            self.add(actions[t], float(rewards[t]), _index_tree(observations, t + 1), bool(terminated[t]),
                     bool(intervention[t]) if intervention is not None else False)
        self.end_episode()

    # ----------------------------------------------------------------- reading
    def __len__(self) -> int:
        """Number of transitions currently stored."""
        return int(self.valid.sum())

    def stored_states(self) -> np.ndarray:
        """(N, S) float32 view of the state of every stored row (observations, final ones included)."""
        return self.state[: self._rows]

    @property
    def nbytes(self) -> int:
        """Bytes held by the storage arrays."""
        arrays = [self.state, self.action, self.reward, self.terminated, self.intervention, self.valid]
        return int(sum(a.nbytes for a in arrays) + sum(a.nbytes for a in self.images.values()))

    def sample_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` transition rows uniformly (with replacement).

        Raises:
            ValueError: the buffer holds no transition yet.
        """
        if not self.valid.any():
            raise ValueError("cannot sample from an empty replay buffer")
        out = np.empty(0, np.int64)
        while out.size < n:  # rejection sampling: almost every row is a transition
            cand = rng.integers(0, self._rows, size=2 * (n - out.size) + 8)
            out = np.concatenate([out, cand[self.valid[cand]]])
        return out[:n]

    def gather(self, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        """Copies of rows ``idx`` (N,) and of their next rows, as numpy arrays.

        Returns:
            ``(state (N, S) float32, images {name: (N, H, W, 3) uint8}, action (N, A) float32,
            reward (N,) float32, next_state (N, S) float32, next_images {name: (N, H, W, 3) uint8},
            terminated (N,) bool)``.
        """
        nxt = (idx + 1) % self.capacity
        return (self.state[idx], {k: v[idx] for k, v in self.images.items()}, self.action[idx], self.reward[idx],
                self.state[nxt], {k: v[nxt] for k, v in self.images.items()}, self.terminated[idx])

    def sample(self, n: int, rng: np.random.Generator) -> Batch:
        """Uniform batch of ``n`` transitions as CPU tensors (see :class:`robot_rl.batch.Batch`)."""
        return self.batch_at(self.sample_indices(n, rng))

    def batch_at(self, idx: np.ndarray) -> Batch:
        """The transitions of rows ``idx`` (N,) int64 (from :meth:`sample_indices`) as CPU tensors, in
        that order, so per-row values such as :meth:`return_to_go` ``[idx]`` line up with the batch."""
        return _to_batch([self.gather(idx)])

    def return_to_go(self, gamma: float) -> np.ndarray:
        """Discounted Monte-Carlo return-to-go of every row: ``G_i = r_i + gamma (1 - terminated_i) G_{i+1}``.

        Computed backwards through each stored episode (rows in the order they were written, the
        ring's wrap included) and reset at episode ends: a row that is not a transition (an
        episode's final observation, or an unused row) has G = 0. A truncated episode (time limit,
        or one still open) therefore counts no reward after its last stored step, as the Cal-QL
        reference's ``calc_return_to_go``; with rewards >= 0 (the sims' sparse and dense rewards)
        that keeps G a lower bound of the true return, which is what Cal-QL's calibration needs.
        An episode whose start was overwritten by the ring keeps its stored tail.

        Args:
            gamma: discount per env step, in [0, 1).

        Returns:
            (capacity,) float32, indexed by row like :meth:`sample_indices`' output.

        Source: Nakamoto et al. 2023 (Cal-QL), arXiv:2303.05479, github.com/nakamotoo/Cal-QL
        ``JaxCQL/replay_buffer.py`` ``calc_return_to_go``.
        """
        out = np.zeros(self.capacity, np.float64)
        if self._rows == 0:
            return out.astype(np.float32)
        full = self._rows == self.capacity
        order = (np.arange(self._ptr + 1, self._ptr + 1 + self.capacity) % self.capacity if full
                 else np.arange(self._rows))  # oldest .. newest; the newest row (_ptr) is never a transition
        discount = gamma * (1.0 - self.terminated.astype(np.float64))
        g = 0.0
        for i in order[::-1].tolist():
            g = float(self.reward[i]) + discount[i] * g if self.valid[i] else 0.0
            out[i] = g
        return out.astype(np.float32)


def sample_mixed(online: ReplayBuffer, demos: ReplayBuffer | None, n: int, rng: np.random.Generator,
                 demo_fraction: float = 0.5) -> Batch:
    """Batch of ``n`` transitions, ``round(n * demo_fraction)`` from ``demos`` and the rest online.

    With no demo buffer (or an empty one) the whole batch is online; with an empty online buffer
    the whole batch comes from the demos (e.g. before the first env step).

    Source: RLPD's symmetric sampling (Ball et al. 2023, arXiv:2302.02948), HIL-SERL.
    """
    n_demo = int(round(n * demo_fraction)) if demos is not None and len(demos) else 0
    if len(online) == 0:
        n_demo = n
    parts = []
    if n_demo:
        parts.append(demos.gather(demos.sample_indices(n_demo, rng)))
    if n - n_demo:
        parts.append(online.gather(online.sample_indices(n - n_demo, rng)))
    return _to_batch(parts)


def _to_batch(parts: list[tuple[np.ndarray, ...]]) -> Batch:
    cat = (lambda xs: xs[0]) if len(parts) == 1 else (lambda xs: np.concatenate(xs))
    t = torch.from_numpy
    state = t(cat([p[0] for p in parts]))
    images = {k: t(cat([p[1][k] for p in parts])) for k in parts[0][1]}
    next_state = t(cat([p[4] for p in parts]))
    next_images = {k: t(cat([p[5][k] for p in parts])) for k in parts[0][5]}
    return Batch(
        obs=Obs(state, images),
        action=t(cat([p[2] for p in parts])),
        reward=t(cat([p[3] for p in parts])),
        next_obs=Obs(next_state, next_images),
        terminated=t(cat([p[6] for p in parts]).astype(np.float32)),
    )


def _index_tree(tree: Any, t: int) -> Any:
    if isinstance(tree, dict):
        return {k: _index_tree(v, t) for k, v in tree.items()}
    return tree[t]
