"""The messages actors and the learner exchange, on top of :mod:`robot_rl.transport.wire`.

Transition chunk (``kind="transitions"``, actor -> learner): ``n`` consecutive steps
``t0 .. t0+n-1`` of one episode of one actor. Observations travel once, split by the learner's
:class:`~robot_rl.layout.ObsLayout`; when the chunk starts the episode (``first``) it also carries
the reset observation, so every observation row is sent exactly once:

=======================  =====================  ==============================================
array                    shape, dtype           meaning
=======================  =====================  ==============================================
``state``                (m, S) float32         observations s_{t+1}.. (m = n, or n+1 with
                                                the reset observation s_0 first)
``images/<camera>``      (m, H, W, 3) uint8     camera images of the same observations
``action``               (n, A) float32         executed action in the learner's [-1, 1] units
``reward``               (n,) float32           r_t
``terminated``           (n,) bool              s_{t+1} is terminal
``truncated``            (n,) bool              the episode was cut after step t
``intervention``         (n,) bool              a human / corrector chose a_t
``step_id``              (n,) int64             the actor's running transition counter (unique
                                                per actor, survives actor restarts)
=======================  =====================  ==============================================

Optional: ``reward_version`` (n,) int32, the version of the reward model that gave each reward
(actors with a classifier or VLM reward; the learner relabels steps of an older version,
:mod:`robot_rl.rewards.feedback`).

meta: ``episode`` (the actor's episode counter), ``t0``, ``first`` (bool), and on the chunk that
ends an episode ``episode_stats`` (return, length, success, intervention_steps, takeovers,
intervention_rate). ``seq`` is the actor's chunk counter, 1, 2, 3 ... with no gaps.

Parameters (``kind="params"``, learner -> actors): one ``uint8`` array ``safetensors``; ``seq`` is
the learner's gradient-step count; meta holds what an actor needs to build the policy network
(``agent_config``, ``state_dim``, ``image_shapes``, ``action_dim``) and ``published_at`` (unix s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.errors import WireError
from robot_rl.transport.wire import Message

#: prefix of the success classifier's tensors in a parameter message (a learner with
#: ``--reward-feedback.enabled`` sends each version of it to its actors with the policy)
REWARD_MODEL_PREFIX = "reward_model/"

_STEP_ARRAYS = {"action": np.float32, "reward": np.float32, "terminated": np.bool_, "truncated": np.bool_,
                "intervention": np.bool_, "step_id": np.int64}


@dataclass
class TransitionChunk:
    """A decoded, validated chunk (see the module docstring for shapes).

    Attributes:
        actor: actor ID. seq: chunk number (1-based, gapless per actor).
        episode: the actor's episode counter. t0: index in the episode of the first step.
        first: the chunk begins the episode (``state[0]`` / ``images[*][0]`` is the reset observation).
        state: (m, S) float32. images: camera -> (m, H, W, 3) uint8.
        action: (n, A) float32 in [-1, 1]. reward: (n,) float32. terminated, truncated,
        intervention: (n,) bool. step_id: (n,) int64.
        episode_stats: set on the chunk that ends the episode.
        reward_source: the actor's reward source (``{"reward": "classifier", "reward_model_path":
            ..., "reward_kwargs": {...}}``, as ``robot-rl actor --reward``); None: not declared.
        reward_version: (n,) int32 version of the reward model per step, or None (no reward model).
    """

    actor: str
    seq: int
    episode: int
    t0: int
    first: bool
    state: np.ndarray
    images: dict[str, np.ndarray]
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    intervention: np.ndarray
    step_id: np.ndarray
    episode_stats: dict[str, Any] | None = None
    reward_source: dict[str, Any] | None = None
    reward_version: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.action.shape[0])

    @property
    def ends_episode(self) -> bool:
        """The last step terminated or truncated the episode."""
        return bool(len(self) and (self.terminated[-1] or self.truncated[-1]))

    def to_message(self) -> Message:
        """The wire message of this chunk."""
        arrays: dict[str, np.ndarray] = {"state": self.state}
        arrays.update({f"images/{k}": v for k, v in self.images.items()})
        arrays.update(action=self.action, reward=self.reward, terminated=self.terminated, truncated=self.truncated,
                      intervention=self.intervention, step_id=self.step_id)
        if self.reward_version is not None:
            arrays["reward_version"] = self.reward_version
        meta: dict[str, Any] = {"episode": int(self.episode), "t0": int(self.t0), "first": bool(self.first)}
        if self.episode_stats is not None:
            meta["episode_stats"] = self.episode_stats
        if self.reward_source is not None:
            meta["reward_source"] = self.reward_source
        return Message("transitions", seq=self.seq, sender=self.actor, arrays=arrays, meta=meta)

    @classmethod
    def from_message(cls, msg: Message, state_dim: int, image_shapes: dict[str, tuple[int, int, int]],
                     action_dim: int) -> TransitionChunk:
        """Validate ``msg`` against the learner's observation and action layout.

        Raises:
            WireError: reason ``"layout"`` when shapes, dtypes or cameras differ from what the
                learner expects (the actor runs another env or env settings), ``"malformed"``
                for inconsistent lengths or meta.
        """
        a, meta = msg.arrays, msg.meta
        if msg.kind != "transitions":
            raise WireError(f"expected a transitions message, got {msg.kind!r}", "malformed")
        if msg.seq < 1 or not msg.sender:
            raise WireError("a transitions message needs seq >= 1 and a sender (the actor ID)", "malformed")
        episode, t0, first = meta.get("episode"), meta.get("t0"), meta.get("first")
        if not (isinstance(episode, int) and isinstance(t0, int) and isinstance(first, bool)) or episode < 0 or t0 < 0:
            raise WireError("transitions meta needs integer episode >= 0, t0 >= 0 and boolean first", "malformed")
        expected = {"state", *(f"images/{k}" for k in image_shapes), *_STEP_ARRAYS}
        if "reward_version" in a:
            expected.add("reward_version")
        if set(a) != expected:
            raise WireError(f"chunk arrays {sorted(a)} differ from the learner's layout {sorted(expected)}: "
                            "actor and learner must run the same env and env settings", "layout")
        n = a["action"].shape[0] if a["action"].ndim == 2 else -1
        if n < 1 or a["action"].shape != (n, action_dim) or a["action"].dtype != np.float32:
            raise WireError(f"action is {a['action'].dtype}{list(a['action'].shape)}, the learner expects "
                            f"float32[n, {action_dim}]", "layout")
        for name, dtype in _STEP_ARRAYS.items():
            if a[name].shape[:1] != (n,) or a[name].dtype != dtype or (name != "action" and a[name].ndim != 1):
                raise WireError(f"{name} is {a[name].dtype}{list(a[name].shape)}, expected {np.dtype(dtype)}[{n}]",
                                "malformed")
        version = a.get("reward_version")
        if version is not None and (version.shape != (n,) or version.dtype != np.int32):
            raise WireError(f"reward_version is {version.dtype}{list(version.shape)}, expected int32[{n}]", "malformed")
        m = n + 1 if first else n
        if a["state"].shape != (m, state_dim) or a["state"].dtype != np.float32:
            raise WireError(f"state is {a['state'].dtype}{list(a['state'].shape)}, the learner expects "
                            f"float32[{m}, {state_dim}]", "layout")
        images = {}
        for cam, shape in image_shapes.items():
            img = a[f"images/{cam}"]
            if img.shape != (m, *shape) or img.dtype != np.uint8:
                raise WireError(f"camera {cam!r} is {img.dtype}{list(img.shape)}, the learner expects "
                                f"uint8[{m}, {', '.join(map(str, shape))}]", "layout")
            images[cam] = img
        if np.any(a["terminated"][:-1] | a["truncated"][:-1]):
            raise WireError("only the last step of a chunk may end the episode", "malformed")
        stats = meta.get("episode_stats")
        if stats is not None and not isinstance(stats, dict):
            raise WireError("episode_stats must be a map", "malformed")
        reward_source = meta.get("reward_source")
        if reward_source is not None and not (isinstance(reward_source, dict) and isinstance(reward_source.get("reward"), str)):
            raise WireError("reward_source must be a map with a 'reward' name", "malformed")
        return cls(actor=msg.sender, seq=msg.seq, episode=episode, t0=t0, first=first, state=a["state"], images=images,
                   action=a["action"], reward=a["reward"], terminated=a["terminated"], truncated=a["truncated"],
                   intervention=a["intervention"], step_id=a["step_id"], episode_stats=stats,
                   reward_source=reward_source, reward_version=version)
