"""How the learner reads an environment's observation and action spaces.

Any gymnasium env trains if its observation is a ``Box`` or a (nested) ``Dict`` of ``Box``es and
its action is a bounded ``Box``:

* ``uint8`` boxes of shape ``(H, W, 3)`` are camera images, kept as uint8;
* every other box is flattened (float32) and concatenated, in sorted key order, into the state
  vector;
* actions are produced in ``[-1, 1]`` and rescaled affinely to the env's ``[low, high]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.errors import ObservationLayoutError

Path_ = tuple[str, ...]

#: top-level observation key under which a residual-RL env (:mod:`robot_rl.residual`) adds the base
#: policy's action, (A,) float32 in [-1, 1]; the residual actor reads it from the state vector raw
BASE_ACTION_KEY = "base_action"


def _is_image(space: gym.spaces.Box) -> bool:
    return space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[-1] == 3


def _leaves(space: gym.Space, path: Path_ = ()) -> list[tuple[Path_, gym.spaces.Box]]:
    if isinstance(space, gym.spaces.Box):
        return [(path, space)]
    if isinstance(space, gym.spaces.Dict):
        out: list[tuple[Path_, gym.spaces.Box]] = []
        for key in sorted(space.spaces):
            out.extend(_leaves(space.spaces[key], (*path, key)))
        return out
    where = "/".join(path) or "<root>"
    raise ObservationLayoutError(
        f"observation entry '{where}' is a {type(space).__name__}; robot_rl learns from Box or "
        "(nested) Dict-of-Box observations. Wrap the env (e.g. gymnasium.wrappers.FlattenObservation "
        "for Tuple/Discrete parts) so every leaf is a Box."
    )


def _get(obs: Any, path: Path_) -> np.ndarray:
    for key in path:
        obs = obs[key]
    return np.asarray(obs)


@dataclass(frozen=True)
class ObsLayout:
    """Split of an observation space into a state vector and camera images.

    Attributes:
        state_paths: key paths of the leaves concatenated (flattened, float32) into the state.
        state_shapes: shape of each state leaf (one observation, no batch dimension).
        image_paths: camera name -> key path of each ``(H, W, 3) uint8`` leaf.
        image_shapes: camera name -> ``(H, W, 3)``.
    """

    state_paths: tuple[Path_, ...]
    state_shapes: tuple[tuple[int, ...], ...]
    image_paths: dict[str, Path_]
    image_shapes: dict[str, tuple[int, int, int]]

    @property
    def state_dim(self) -> int:
        """Length S of the state vector."""
        return int(sum(int(np.prod(s, dtype=np.int64)) for s in self.state_shapes))

    @property
    def base_action_index(self) -> tuple[int, ...] | None:
        """Indices of the base policy's action (:data:`BASE_ACTION_KEY`) in the state vector, or None
        when the observation has no such entry (not a residual-RL env)."""
        offset = 0
        for path, shape in zip(self.state_paths, self.state_shapes):
            size = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if path == (BASE_ACTION_KEY,):
                return tuple(range(offset, offset + size))
            offset += size
        return None

    @classmethod
    def from_recorded(cls, observations: Any) -> ObsLayout:
        """The layout of a recorded observation tree (a dict tree, or one array, of leaves with a
        leading time axis: ``(T, ...)``), read as an env space: uint8 leaves are images, others
        float32 state.

        Raises:
            ObservationLayoutError: as :meth:`from_space`.
        """
        def space(tree: Any) -> gym.Space:
            if isinstance(tree, dict):
                return gym.spaces.Dict({k: space(v) for k, v in tree.items()})
            a = np.asarray(tree)
            if a.dtype == np.uint8:
                return gym.spaces.Box(0, 255, a.shape[1:], np.uint8)
            return gym.spaces.Box(-np.inf, np.inf, a.shape[1:], np.float32)

        return cls.from_space(space(observations))

    @classmethod
    def from_space(cls, space: gym.Space) -> ObsLayout:
        """Build the layout of ``space``.

        Raises:
            ObservationLayoutError: a leaf is not a Box, or there is neither state nor image.
        """
        leaves = _leaves(space)
        state_paths, state_shapes, image_paths, image_shapes = [], [], {}, {}
        image_leaves = [(p, s) for p, s in leaves if _is_image(s)]
        short_names = [p[-1] if p else "image" for p, _ in image_leaves]
        for (path, box), short in zip(image_leaves, short_names):
            name = short if short_names.count(short) == 1 else "/".join(path)
            image_paths[name] = path
            image_shapes[name] = tuple(int(d) for d in box.shape)
        for path, box in leaves:
            if not _is_image(box):
                state_paths.append(path)
                state_shapes.append(tuple(int(d) for d in box.shape))
        if not state_paths and not image_paths:
            raise ObservationLayoutError("the observation space has no Box leaves to learn from")
        return cls(tuple(state_paths), tuple(state_shapes), image_paths, image_shapes)

    def split(self, obs: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Split one observation (or a batch with leading dims) into state and images.

        Args:
            obs: an observation of the space this layout was built from; leaves may carry
                extra leading batch dimensions ``(..., *leaf_shape)``.

        Returns:
            ``(state, images)``: state ``(..., S)`` float32; images name -> ``(..., H, W, 3)`` uint8.
        """
        images = {name: _get(obs, path) for name, path in self.image_paths.items()}
        if not self.state_paths:
            lead = next(iter(images.values())).shape[:-3]
            return np.zeros((*lead, 0), np.float32), images
        parts = []
        for path, shape in zip(self.state_paths, self.state_shapes):
            leaf = _get(obs, path).astype(np.float32, copy=False)
            lead = leaf.shape[: leaf.ndim - len(shape)]
            parts.append(leaf.reshape(*lead, -1) if shape else leaf.reshape(*lead, 1))
        return np.concatenate(parts, axis=-1), images


@dataclass(frozen=True)
class ActionScaler:
    """Affine map between the learner's ``[-1, 1]`` actions and an env's bounded Box.

    Raises:
        ObservationLayoutError: the action space is not a finite, 1-D float Box.
    """

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_space(cls, space: gym.Space) -> ActionScaler:
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ObservationLayoutError(
                f"action space {space} is not a 1-D Box; SAC needs continuous actions "
                "(discretised or multi-dimensional action spaces need a wrapper that flattens them)"
            )
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise ObservationLayoutError(
                f"action space {space} is unbounded; SAC squashes actions with tanh and needs finite "
                "low/high: wrap the env with gymnasium.wrappers.ClipAction or RescaleAction"
            )
        return cls(space.low.astype(np.float64), space.high.astype(np.float64))

    @property
    def dim(self) -> int:
        """Action dimension A."""
        return int(self.low.shape[0])

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """(..., A) action in [-1, 1] -> env units (float32), clipped to the bounds."""
        a = np.clip(action, -1.0, 1.0)
        return (self.low + (a + 1.0) * 0.5 * (self.high - self.low)).astype(np.float32)

    def from_env(self, action: np.ndarray) -> np.ndarray:
        """(..., A) action in env units -> [-1, 1] (float32), clipped."""
        a = 2.0 * (np.asarray(action, np.float64) - self.low) / (self.high - self.low) - 1.0
        return np.clip(a, -1.0, 1.0).astype(np.float32)
