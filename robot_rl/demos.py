"""Episode files: the on-disk format of demos, interventions and recorded online data.

Format ``robot_rl.episode`` version 1: one episode per ``.npz`` file (a zip archive, deflate
compressed, CRC-checked; read with ``allow_pickle=False``, so a file can never execute code).
Entries, with T the number of steps:

============================  ===================  ==========================================
key                           shape, dtype         meaning
============================  ===================  ==========================================
``format``                    () str               ``"robot_rl.episode"``
``version``                   () int64             1
``obs/<path>``                (T+1, ...) any       every leaf of the raw env observation, key
                                                   path joined by ``/`` (e.g. ``obs/images/front``
                                                   ``(T+1, H, W, 3) uint8``); row t is s_t and row
                                                   T the final observation; a residual-RL env
                                                   adds ``obs/base_action`` (T+1, A) float32,
                                                   the base policy's action in [-1, 1]
                                                   (:mod:`robot_rl.residual`)
``action``                    (T, A) float32       action sent to the env, env units
``reward``                    (T,) float32         reward r_t
``terminated``                (T,) bool            s_{t+1} is terminal
``truncated``                 (T,) bool            the episode was cut after step t (time limit)
``intervention``              (T,) bool            a human / scripted corrector chose a_t
``info/is_success``           (T,) bool            the env's success flag after step t
``meta``                      () str               JSON: env_id, env_kwargs, seed, source, ...
============================  ===================  ==========================================

Files are written to a temporary name and renamed, so a crash never leaves a half-written
episode under a real name. A directory of such files (``episode_000000.npz`` ...) is a dataset.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import DemoFormatError

FORMAT = "robot_rl.episode"
VERSION = 1
_REQUIRED = ("action", "reward", "terminated", "truncated", "intervention")


@dataclass
class Episode:
    """One recorded episode (see the module docstring for shapes and dtypes).

    Attributes:
        observations: raw observation tree; each leaf has a leading axis of length T+1.
        actions: (T, A) float32 actions in env units.
        rewards: (T,) float32. terminated / truncated / intervention / success: (T,) bool.
        meta: JSON-serialisable metadata (env_id, env_kwargs, seed, source ...).
    """

    observations: Any
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    intervention: np.ndarray
    success: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.actions))

    @property
    def is_success(self) -> bool:
        """True if the env reported success at any step."""
        return bool(self.success.any())


def _flatten(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    if isinstance(tree, dict):
        out: dict[str, np.ndarray] = {}
        for k, v in tree.items():
            if "/" in str(k):
                raise DemoFormatError(f"observation key {k!r} contains '/', which the episode format reserves")
            out.update(_flatten(v, f"{prefix}/{k}"))
        return out
    return {prefix: np.asarray(tree)}


def _unflatten(flat: dict[str, np.ndarray]) -> Any:
    if list(flat) == ["obs"]:
        return flat["obs"]
    root: dict = {}
    for key, value in flat.items():
        parts = key.split("/")[1:]
        node = root
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return root


def save_episode(path: str | os.PathLike, episode: Episode) -> Path:
    """Write ``episode`` to ``path`` (``.npz``) atomically; returns the path.

    Raises:
        FileExistsError: ``path`` exists (episodes are never overwritten).
        DemoFormatError: array lengths disagree.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; episode files are never overwritten (choose another name)")
    T = len(episode.actions)
    obs = _flatten(episode.observations, "obs")
    for k, v in obs.items():
        if len(v) != T + 1:
            raise DemoFormatError(f"{k} has {len(v)} rows but the episode has {T} actions (need T+1 observations)")
    arrays = {
        "format": np.asarray(FORMAT),
        "version": np.asarray(VERSION, np.int64),
        "action": np.asarray(episode.actions, np.float32),
        "reward": np.asarray(episode.rewards, np.float32),
        "terminated": np.asarray(episode.terminated, np.bool_),
        "truncated": np.asarray(episode.truncated, np.bool_),
        "intervention": np.asarray(episode.intervention, np.bool_),
        "info/is_success": np.asarray(episode.success, np.bool_),
        "meta": np.asarray(json.dumps(episode.meta)),
        **obs,
    }
    for k in ("reward", "terminated", "truncated", "intervention", "info/is_success"):
        if arrays[k].shape != (T,):
            raise DemoFormatError(f"{k} has shape {arrays[k].shape}, expected ({T},)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_episode(path: str | os.PathLike) -> Episode:
    """Read an episode file written by :func:`save_episode`.

    Raises:
        DemoFormatError: the file is missing, truncated, corrupt, of another format or version,
            or its arrays are inconsistent. The message names the file and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise DemoFormatError(f"episode file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, zipfile.LargeZipFile) as e:
        raise DemoFormatError(
            f"episode file {path} is corrupt or truncated ({type(e).__name__}: {e}); delete it or "
            "re-record it (robot-rl record-demos)") from e
    if str(data.get("format", "")) != FORMAT:
        raise DemoFormatError(f"{path} is not a robot_rl episode file (format={data.get('format')!r})")
    version = int(data.get("version", -1))
    if version != VERSION:
        raise DemoFormatError(f"{path} has episode format version {version}; this robot_rl reads version {VERSION}. "
                              "Convert it with the robot_rl release that wrote it or re-record it.")
    missing = [k for k in (*_REQUIRED, "meta") if k not in data]
    obs = {k: v for k, v in data.items() if k == "obs" or k.startswith("obs/")}
    if missing or not obs:
        raise DemoFormatError(f"{path} lacks entries {missing or ['obs/...']}; the file is incomplete, re-record it")
    T = len(data["action"])
    bad = [k for k, v in obs.items() if len(v) != T + 1] + [k for k in _REQUIRED if len(data[k]) != T]
    if bad:
        raise DemoFormatError(f"{path}: entries {bad} disagree with {T} actions; the file is inconsistent, re-record it")
    return Episode(
        observations=_unflatten(obs),
        actions=data["action"],
        rewards=data["reward"],
        terminated=data["terminated"],
        truncated=data["truncated"],
        intervention=data["intervention"],
        success=data.get("info/is_success", np.zeros(T, np.bool_)),
        meta=json.loads(str(data["meta"])),
    )


def episode_files(directory: str | os.PathLike) -> list[Path]:
    """Sorted ``episode_*.npz`` files of a dataset directory.

    Raises:
        DemoFormatError: the directory does not exist or holds no episode file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DemoFormatError(f"demo directory {directory} does not exist; record demos with `robot-rl record-demos`")
    files = sorted(directory.glob("episode_*.npz"))
    if not files:
        raise DemoFormatError(f"{directory} holds no episode_*.npz files; record demos with `robot-rl record-demos`")
    return files


def load_episodes(directory: str | os.PathLike) -> list[Episode]:
    """Load every episode of a dataset directory (see :func:`episode_files`, :func:`load_episode`)."""
    return [load_episode(f) for f in episode_files(directory)]


class EpisodeWriter:
    """Collects steps of one episode at a time and writes each finished episode to ``directory``.

    Files are named ``episode_{index:06d}.npz``, continuing after the highest existing index,
    so appending to a dataset never overwrites an episode.
    """

    def __init__(self, directory: str | os.PathLike, meta: dict | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.meta = dict(meta or {})
        existing = sorted(self.directory.glob("episode_*.npz"))
        self.next_index = int(existing[-1].stem.split("_")[1]) + 1 if existing else 0
        self._reset_buffers()

    def _reset_buffers(self) -> None:
        self._obs: list[Any] = []
        self._steps: list[tuple] = []

    def start(self, obs: Any) -> None:
        """Begin an episode with its first observation."""
        self._reset_buffers()
        self._obs.append(obs)

    def step(self, action: np.ndarray, reward: float, next_obs: Any, terminated: bool, truncated: bool,
             intervention: bool = False, success: bool = False) -> None:
        """Append one step (action in env units)."""
        self._obs.append(next_obs)
        self._steps.append((np.asarray(action, np.float32), reward, terminated, truncated, intervention, success))

    def finish(self, **meta: Any) -> Path:
        """Write the episode collected since :meth:`start`; extra ``meta`` is merged in. Returns its path."""
        if not self._steps:
            raise DemoFormatError("an episode needs at least one step before it can be written")
        acts, rews, term, trunc, interv, succ = zip(*self._steps)
        ep = Episode(
            observations=_stack(self._obs),
            actions=np.stack(acts),
            rewards=np.asarray(rews, np.float32),
            terminated=np.asarray(term, np.bool_),
            truncated=np.asarray(trunc, np.bool_),
            intervention=np.asarray(interv, np.bool_),
            success=np.asarray(succ, np.bool_),
            meta={**self.meta, **meta},
        )
        path = save_episode(self.directory / f"episode_{self.next_index:06d}.npz", ep)
        self.next_index += 1
        self._reset_buffers()
        return path


def _stack(observations: list[Any]) -> Any:
    first = observations[0]
    if isinstance(first, dict):
        return {k: _stack([o[k] for o in observations]) for k in first}
    return np.stack([np.asarray(o) for o in observations])
