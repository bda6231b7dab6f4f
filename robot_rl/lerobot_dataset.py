"""LeRobotDataset (format v3) export and import, through LeRobot's own library.

``robot-rl export-dataset --format lerobot <source> <out>`` writes robot_rl episodes (a demo
directory of episode files, :mod:`robot_rl.demos`, or a training run's replay log) as a
LeRobotDataset that LeRobot's ``LeRobotDataset(repo_id, root=...)`` loads and its ACT / diffusion
training reads; :func:`load_episodes_any` reads either kind of directory back as
:class:`~robot_rl.demos.Episode` objects, so a LeRobotDataset recorded with LeRobot's teleop
tools can seed RLPD here.

Mapping (one LeRobot frame per step t = 0 .. T-1):

==================================  ==========================================================
robot_rl episode                    LeRobotDataset feature
==================================  ==========================================================
state leaves of ``obs/...`` (s_t)   ``observation.state`` (S,) float32: the leaves flattened and
                                    concatenated in the layout order (:class:`~robot_rl.layout.ObsLayout`,
                                    sorted key paths); ``names`` are ``<path>/<index>``
camera leaves ``obs/.../<cam>``     ``observation.images.<cam>`` (H, W, 3) ``image`` (PNG, lossless)
``action`` a_t, env units           ``action`` (A,) float32, env units
``reward`` r_t                      ``next.reward`` (1,) float32
``terminated``                      ``next.done`` (1,) bool
``truncated``                       ``complementary_info.truncated`` (1,) bool
``intervention``                    ``complementary_info.intervention`` (1,) bool (as LeRobot HIL-SERL)
``info/is_success``                 ``complementary_info.is_success`` (1,) bool
``meta["env_id"]``                  ``task`` string (unless ``--task``)
==================================  ==========================================================

What LeRobot's frames cannot hold goes into two sidecar files under ``meta/`` that LeRobot's
loader ignores: ``meta/robot_rl.json`` (the observation tree: each state leaf's key path, shape and
dtype, each camera's key path; the action bounds of the env; each episode's length and its
``meta`` dict: env_id, env_kwargs, seed, source) and ``meta/robot_rl_final_obs.npz`` (the final
observation s_T of every episode: a LeRobot frame is (s_t, a_t, r_t, done) and has no row for it).
With both, export -> import gives back identical episodes. The final observation is kept out of
the frames on purpose: an extra frame would need a made-up action that ACT / diffusion would learn.

Importing a LeRobotDataset without the sidecar (recorded by LeRobot): ``observation.state`` is
split into the env's state leaves in the env's layout order, ``observation.images.<cam>`` fill the
env's cameras of the same name, the final observation repeats the last frame's (s_T := s_{T-1}),
missing ``next.reward`` reads as 0, missing ``next.done`` as never terminated (the last step is
then truncated), missing flags as False and success as ``next.done and next.reward > 0``.

Source: LeRobotDataset v3, https://huggingface.co/docs/lerobot/lerobot-dataset-v3 .
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tyro

from robot_rl.demos import Episode, load_episodes
from robot_rl.errors import ConfigError, DemoFormatError
from robot_rl.layout import ObsLayout

#: name of the sidecar files under ``<root>/meta``
SIDECAR_JSON = "robot_rl.json"
SIDECAR_FINAL_OBS = "robot_rl_final_obs.npz"
SIDECAR_FORMAT = "robot_rl.lerobot"
SIDECAR_VERSION = 1
#: the LeRobotDataset codebase version this module writes and reads
CODEBASE_MAJOR = "v3"
LEROBOT_INSTALL = "pip install --no-deps lerobot==0.4.4 && pip install datasets pandas av accelerate jsonlines deepdiff termcolor"

_STATE = "observation.state"
_IMAGE_PREFIX = "observation.images."
_FLAGS = {"next.done": "terminated", "complementary_info.truncated": "truncated",
          "complementary_info.intervention": "intervention", "complementary_info.is_success": "success"}


def _lerobot_dataset_class():
    """``lerobot.datasets.lerobot_dataset.LeRobotDataset``, imported on demand (it takes seconds)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local datasets only: never ask the Hub
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ImportError as e:
        raise ConfigError(f"LeRobotDataset import/export needs LeRobot's dataset library ({e}); install it with "
                          f"`{LEROBOT_INSTALL}` (scripts/setup.sh does)") from e
    return LeRobotDataset


# ============================================================================ detection
def lerobot_version(directory: str | os.PathLike) -> str | None:
    """The ``codebase_version`` of a LeRobotDataset directory (``meta/info.json``), or None if it is not one."""
    info = Path(directory) / "meta" / "info.json"
    if not info.is_file():
        return None
    try:
        return str(json.loads(info.read_text())["codebase_version"])
    except (ValueError, KeyError) as e:
        raise DemoFormatError(f"{info} is not a LeRobotDataset info file ({e})") from e


def is_lerobot_dataset(directory: str | os.PathLike) -> bool:
    """True if ``directory`` is a LeRobotDataset (has ``meta/info.json``)."""
    return lerobot_version(directory) is not None


def load_episodes_any(directory: str | os.PathLike, layout=None, scaler=None, env_id: str = "") -> list[Episode]:
    """The episodes of a demo directory: robot_rl episode files or a LeRobotDataset (v3).

    Args:
        directory: ``episode_*.npz`` files (:mod:`robot_rl.demos`) or a LeRobotDataset root.
        layout / scaler: the env's :class:`~robot_rl.layout.ObsLayout` / :class:`~robot_rl.layout.ActionScaler`;
            needed for a LeRobotDataset not written by robot_rl, and checked against any LeRobotDataset.
        env_id: the env, named in errors.

    Raises:
        DemoFormatError: unreadable files. ConfigError: a LeRobotDataset that does not fit the env.
    """
    if is_lerobot_dataset(directory):
        return load_lerobot_episodes(directory, layout, scaler, env_id)
    return load_episodes(directory)


# ============================================================================ tree helpers
def _leaves(tree: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], np.ndarray]]:
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in _leaves(tree[k], (*path, k))]
    return [(path, np.asarray(tree))]


def _get(tree: Any, path: tuple[str, ...]) -> np.ndarray:
    for k in path:
        tree = tree[k]
    return np.asarray(tree)


def _set(tree: dict, path: tuple[str, ...], value: np.ndarray) -> Any:
    if not path:
        return value
    node = tree
    for k in path[:-1]:
        node = node.setdefault(k, {})
    node[path[-1]] = value
    return tree


def _build_tree(leaves: dict[tuple[str, ...], np.ndarray]) -> Any:
    if list(leaves) == [()]:
        return leaves[()]
    tree: dict = {}
    for path, value in leaves.items():
        _set(tree, path, value)
    return tree


def _path_name(path: tuple[str, ...]) -> str:
    return "/".join(path) or "state"


# ============================================================================ export
@dataclass
class ExportDatasetConfig:
    """Export robot_rl episodes (a demo directory or a training run) as a LeRobotDataset (v3)."""

    source: tyro.conf.Positional[Path]
    """a directory of episode files (robot-rl record-demos) or a training run directory (its replay/log_*.rrl)."""
    out: tyro.conf.Positional[Path]
    """the LeRobotDataset root to create; it must not exist."""
    format: Literal["lerobot"] = "lerobot"
    """dataset format to write: 'lerobot' (LeRobotDataset v3, through LeRobot's library)."""
    repo_id: str = ""
    """LeRobot repo ID recorded in the dataset; empty: local/<out directory name>."""
    task: str = ""
    """task string of every frame (LeRobot's language conditioning); empty: the episodes' env ID."""
    fps: int = 0
    """frames per second; 0: the env's control rate (control_hz), 10 when it has none."""
    robot_type: str = ""
    """robot type in meta/info.json; empty: 'panda' for robot_rl/Panda* envs, else 'unknown'."""


def _run_episodes(run_dir: Path) -> list[Episode]:
    """The complete episodes of a training run, rebuilt from its replay log (one per actor episode;
    an episode cut by a restart is left out). Observations get the env's leaf dtypes back."""
    from robot_rl.envs import make_env, parse_env_kwargs
    from robot_rl.layout import ActionScaler, ObsLayout
    from robot_rl.transport.messages import TransitionChunk
    from robot_rl.transport.records import read_log
    from robot_rl.transport.wire import decode

    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file() or not any((run_dir / "replay").glob("log_*.rrl")):
        raise ConfigError(f"{run_dir} is neither a demo directory (episode_*.npz) nor a training run "
                          "(config.json and replay/log_*.rrl): pass one of those")
    cfg = json.loads(cfg_path.read_text())
    env_id, env_kwargs = cfg["env"], cfg.get("env_kwargs", {}) or {}
    env = make_env(env_id, **parse_env_kwargs(env_kwargs))
    try:
        layout, scaler = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
        dtypes = {p: np.dtype(s.dtype) for p, s in _space_leaves(env.observation_space)}
    finally:
        env.close()

    def tree(state: np.ndarray, images: dict[str, np.ndarray]) -> Any:
        leaves, offset = {}, 0
        for path, shape in zip(layout.state_paths, layout.state_shapes):
            size = int(np.prod(shape, dtype=np.int64)) if shape else 1
            leaves[path] = state[:, offset:offset + size].reshape(len(state), *shape).astype(dtypes[path])
            offset += size
        leaves.update({layout.image_paths[k]: v for k, v in images.items()})
        return _build_tree(leaves)

    episodes: list[Episode] = []
    open_: dict[str, dict] = {}  # actor -> its episode's chunks so far
    log = read_log(run_dir / "replay")  # read only: a learner may still be appending
    try:
        for frames in log:
            c = TransitionChunk.from_message(decode(frames), layout.state_dim, layout.image_shapes, scaler.dim)
            if c.first:
                open_[c.actor] = {"episode": c.episode, "t": 0, "parts": []}
            st = open_.get(c.actor)
            if st is None or st["episode"] != c.episode or st["t"] != c.t0:
                continue  # its episode's start is not in the log
            st["parts"].append(c)
            st["t"] += len(c)
            if c.ends_episode:
                parts = open_.pop(c.actor)["parts"]
                cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
                state = cat("state")
                images = {k: np.concatenate([p.images[k] for p in parts]) for k in layout.image_shapes}
                stats = parts[-1].episode_stats or {}
                success = np.zeros(len(state) - 1, np.bool_)
                success[-1] = bool(stats.get("success", stats.get("is_success", False)))
                episodes.append(Episode(
                    observations=tree(state, images), actions=scaler.to_env(cat("action")).astype(np.float32),
                    rewards=cat("reward"), terminated=cat("terminated"), truncated=cat("truncated"),
                    intervention=cat("intervention"), success=success,
                    meta={"env_id": env_id, "env_kwargs": env_kwargs, "source": f"run:{run_dir}",
                          "actor": c.actor, "actor_episode": int(c.episode)}))
    finally:
        log.close()
    if not episodes:
        raise ConfigError(f"the replay log of {run_dir} holds no complete episode")
    return episodes


def _space_leaves(space, path: tuple[str, ...] = ()) -> list:
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        return [leaf for k in sorted(space.spaces) for leaf in _space_leaves(space.spaces[k], (*path, k))]
    return [(path, space)]


def _env_defaults(env_id: str) -> tuple[int, np.ndarray | None, np.ndarray | None]:
    """(control rate in Hz, action low, action high) of ``env_id``, or (10, None, None) when it cannot be made."""
    from robot_rl.envs import make_env

    try:
        env = make_env(env_id)
    except Exception:  # noqa: BLE001 - an env of another package: defaults, the export still works
        return 10, None, None
    try:
        hz = getattr(env.unwrapped, "control_hz", None) or env.metadata.get("render_fps") or 10
        return int(round(hz)), np.asarray(env.action_space.low), np.asarray(env.action_space.high)
    finally:
        env.close()


def export_lerobot(source: str | os.PathLike, out: str | os.PathLike, repo_id: str = "", task: str = "",
                   fps: int = 0, robot_type: str = "") -> Path:
    """Write the episodes of ``source`` as a LeRobotDataset v3 at ``out`` (images as PNG, no video).

    Args:
        source: a directory of robot_rl episode files, or a training run directory.
        out: the dataset root to create (must not exist).
        repo_id / task / fps / robot_type: see :class:`ExportDatasetConfig`.

    Returns:
        ``out``.

    Raises:
        ConfigError: ``out`` exists, the episodes have different observation layouts, or LeRobot is
            not installed. DemoFormatError: an unreadable episode file.
    """
    source, out = Path(source), Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists; choose a new directory for the LeRobotDataset (it is never overwritten)")
    episodes = load_episodes(source) if any(source.glob("episode_*.npz")) else _run_episodes(source)
    layout = ObsLayout.from_recorded(episodes[0].observations)
    for i, ep in enumerate(episodes):
        if ObsLayout.from_recorded(ep.observations) != layout or ep.actions.shape[1:] != episodes[0].actions.shape[1:]:
            raise ConfigError(f"episode {i} of {source} has another observation layout or action size than episode 0; "
                              "a LeRobotDataset holds one layout: export them separately")
    first = episodes[0]
    env_id = str(first.meta.get("env_id", ""))
    default_hz, low, high = _env_defaults(env_id) if env_id else (10, None, None)
    leaves = [(p, a) for p, a in _leaves(first.observations) if p in layout.state_paths]
    state_dtype = "float64" if any(a.dtype == np.float64 for _, a in leaves) else "float32"
    names = [f"{_path_name(p)}/{i}" for p, a in leaves for i in range(int(np.prod(a.shape[1:], dtype=np.int64)))]
    A = int(first.actions.shape[1])
    features: dict[str, dict] = {}
    if layout.state_paths:
        features[_STATE] = {"dtype": state_dtype, "shape": (layout.state_dim,), "names": names}
    for cam, shape in layout.image_shapes.items():
        features[_IMAGE_PREFIX + cam] = {"dtype": "image", "shape": tuple(shape), "names": ["height", "width", "channels"]}
    features["action"] = {"dtype": "float32", "shape": (A,), "names": [f"a{i}" for i in range(A)]}
    features["next.reward"] = {"dtype": "float32", "shape": (1,), "names": None}
    for key in _FLAGS:
        features[key] = {"dtype": "bool", "shape": (1,), "names": None}

    LeRobotDataset = _lerobot_dataset_class()
    ds = LeRobotDataset.create(repo_id=repo_id or f"local/{out.name}", fps=fps or default_hz, features=features,
                               root=out, robot_type=robot_type or ("panda" if "/Panda" in env_id else "unknown"),
                               use_videos=False)
    try:
        for ep in episodes:
            state, images = layout.split(ep.observations)
            flags = {"next.done": ep.terminated, "complementary_info.truncated": ep.truncated,
                     "complementary_info.intervention": ep.intervention, "complementary_info.is_success": ep.success}
            ep_task = task or str(ep.meta.get("env_id", "")) or "robot_rl episode"
            for t in range(len(ep)):
                frame: dict[str, Any] = {"action": np.asarray(ep.actions[t], np.float32),
                                         "next.reward": np.asarray([ep.rewards[t]], np.float32), "task": ep_task}
                if layout.state_paths:
                    frame[_STATE] = np.concatenate([_get(ep.observations, p)[t].reshape(-1) for p in layout.state_paths]
                                                   ).astype(state_dtype)
                frame.update({_IMAGE_PREFIX + cam: images[cam][t] for cam in layout.image_shapes})
                frame.update({k: np.asarray([bool(v[t])]) for k, v in flags.items()})
                ds.add_frame(frame)
            # numpy >= 2.4: datasets' Value.encode_example calls float() on each (1,)-shaped entry, which
            # numpy 2.4 rejects ("only 0-dimensional arrays can be converted"); give it 0-d values instead
            for key, ft in features.items():
                if tuple(ft["shape"]) == (1,):
                    ds.episode_buffer[key] = [np.asarray(v).reshape(()) for v in ds.episode_buffer[key]]
            ds.save_episode()
    finally:
        ds.finalize()  # v3: closes the parquet writers and writes the metadata; required before reading

    sidecar = {
        "format": SIDECAR_FORMAT, "version": SIDECAR_VERSION,
        "state_leaves": [{"path": list(p), "shape": list(a.shape[1:]), "dtype": str(a.dtype)} for p, a in leaves],
        "cameras": {cam: list(p) for cam, p in layout.image_paths.items()},
        "action_low": None if low is None else low.tolist(), "action_high": None if high is None else high.tolist(),
        "episodes": [{"length": len(ep), "meta": ep.meta} for ep in episodes],
    }
    (out / "meta" / SIDECAR_JSON).write_text(json.dumps(sidecar, indent=1))
    final = {f"{i}/{_path_name(p)}": a[-1] for i, ep in enumerate(episodes) for p, a in _leaves(ep.observations)}
    np.savez_compressed(out / "meta" / SIDECAR_FINAL_OBS, **final)
    return out


def export_dataset(cfg: ExportDatasetConfig) -> dict[str, Any]:
    """``robot-rl export-dataset``: export and return a summary (frames, episodes, features)."""
    if cfg.format != "lerobot":
        raise ConfigError(f"--format {cfg.format!r} is not supported; use --format lerobot")
    out = export_lerobot(cfg.source, cfg.out, cfg.repo_id, cfg.task, cfg.fps, cfg.robot_type)
    info = json.loads((out / "meta" / "info.json").read_text())
    return {"dataset": str(out), "format": f"LeRobotDataset {info['codebase_version']}",
            "episodes": info["total_episodes"], "frames": info["total_frames"], "fps": info["fps"],
            "features": ", ".join(k for k in info["features"] if k.startswith(("observation", "action", "next")))}


# ============================================================================ import
def _describe_features(features: dict[str, dict]) -> str:
    state = features.get(_STATE, {}).get("shape", (0,))
    cams = ", ".join(f"{k[len(_IMAGE_PREFIX):]}{list(v['shape'])}" for k, v in features.items()
                     if k.startswith(_IMAGE_PREFIX)) or "none"
    action = features.get("action", {}).get("shape", ("none",))
    return f"observation.state S={state[0]}; cameras [{cams}]; action A={action[0]}"


def _check_fits(root: Path, features: dict[str, dict], layout, scaler, env_id: str) -> None:
    """Raise ConfigError when the dataset's cameras, state size or action size differ from the env's."""
    from policies.policy import describe_layout

    problems = []
    for cam, shape in layout.image_shapes.items():
        ft = features.get(_IMAGE_PREFIX + cam)
        if ft is None:
            problems.append(f"camera '{cam}' is missing (the dataset has no observation.images.{cam})")
        elif tuple(ft["shape"]) != tuple(shape):
            problems.append(f"camera '{cam}' is {list(ft['shape'])}, the env's {list(shape)}")
    S = int(features[_STATE]["shape"][0]) if _STATE in features else 0
    if S != layout.state_dim:
        problems.append(f"observation.state has {S} values, the env's state {layout.state_dim}")
    A = int(features["action"]["shape"][0]) if "action" in features else -1
    if scaler is not None and A != scaler.dim:
        problems.append(f"action has {A} dimensions, the env's action space {scaler.dim}")
    if problems:
        raise ConfigError(f"LeRobotDataset {root} does not fit {env_id or 'the env'}: " + "; ".join(problems) +
                          f"\n  dataset: {_describe_features(features)}\n  env:     {describe_layout(layout, scaler)}\n"
                          "Pass the --env / --env-kwargs the data was recorded with (pixel env IDs need the cameras).")


def _sidecar(root: Path, lengths: list[int]) -> dict | None:
    """The robot_rl sidecar of a dataset it exported, or None (none, or the episodes were changed since)."""
    path = root / "meta" / SIDECAR_JSON
    if not path.is_file():
        return None
    side = json.loads(path.read_text())
    if side.get("format") != SIDECAR_FORMAT or int(side.get("version", -1)) != SIDECAR_VERSION:
        raise DemoFormatError(f"{path} is not a robot_rl {SIDECAR_FORMAT} v{SIDECAR_VERSION} sidecar; delete it to "
                              "import the dataset as one recorded by LeRobot")
    if [int(e["length"]) for e in side["episodes"]] != lengths or not (root / "meta" / SIDECAR_FINAL_OBS).is_file():
        warnings.warn(f"{path} does not match the dataset's episodes (edited after export?); importing {root} as a "
                      "LeRobot-recorded dataset (the final observations repeat the last frame)", stacklevel=3)
        return None
    return side


def load_lerobot_episodes(root: str | os.PathLike, layout=None, scaler=None, env_id: str = "") -> list[Episode]:
    """Read a LeRobotDataset (v3) with LeRobot's loader as robot_rl episodes (see the module docstring).

    Args:
        root: the dataset root (``meta/info.json``, ``data/``).
        layout / scaler: the env's layout and action bounds. Required for a dataset that robot_rl did not
            export (they say how ``observation.state`` splits into leaves); checked when given.
        env_id: the env, named in errors.

    Returns:
        One :class:`~robot_rl.demos.Episode` per LeRobot episode, in order.

    Raises:
        ConfigError: a camera is missing, the state or action size or the action bounds differ from
            the env's, a v2 dataset, video-encoded frames without a decoder, or LeRobot is not installed.
    """
    root = Path(root)
    version = lerobot_version(root)
    if version is None:
        raise DemoFormatError(f"{root} is not a LeRobotDataset (no meta/info.json)")
    if not version.startswith(CODEBASE_MAJOR):
        raise ConfigError(f"{root} is a LeRobotDataset {version}; robot_rl reads {CODEBASE_MAJOR}.x. Convert it with "
                          "LeRobot's `python -m lerobot.datasets.v30.convert_dataset_v21_to_v30`")
    LeRobotDataset = _lerobot_dataset_class()
    ds = LeRobotDataset(f"local/{root.name}", root=root)
    features = ds.meta.features
    starts = [int(i) for i in ds.meta.episodes["dataset_from_index"]]
    ends = [int(i) for i in ds.meta.episodes["dataset_to_index"]]
    side = _sidecar(root, [e - s for s, e in zip(starts, ends)])
    if side is None and layout is None:
        raise ConfigError(f"LeRobotDataset {root} was not exported by robot_rl: pass the env it was recorded in "
                          "(--env / --env-kwargs) so observation.state can be split into that env's observation")
    if side is not None:
        state_leaves = [(tuple(d["path"]), tuple(d["shape"]), np.dtype(d["dtype"])) for d in side["state_leaves"]]
        cameras = {cam: tuple(p) for cam, p in side["cameras"].items()}
        final_obs = np.load(root / "meta" / SIDECAR_FINAL_OBS, allow_pickle=False)
    else:
        state_leaves = [(p, s, np.dtype(np.float32)) for p, s in zip(layout.state_paths, layout.state_shapes)]
        cameras = dict(layout.image_paths)
        final_obs = None
    if layout is not None:
        _check_fits(root, features, layout, scaler, env_id)
    missing = [cam for cam in cameras if _IMAGE_PREFIX + cam not in features]
    if missing:
        raise ConfigError(f"LeRobotDataset {root} lacks cameras {missing} ({_describe_features(features)})")

    hf = ds.hf_dataset.with_format(None)
    columns = set(hf.column_names)
    video = any(features[_IMAGE_PREFIX + cam]["dtype"] == "video" for cam in cameras)  # decoded by LeRobot, per frame
    episodes = []
    for e, (s, end) in enumerate(zip(starts, ends)):
        rows = hf[s:end]
        T = end - s
        leaves: dict[tuple[str, ...], np.ndarray] = {}
        if state_leaves:
            state = np.asarray(rows[_STATE], dtype=features[_STATE]["dtype"]).reshape(T, -1)
            offset = 0
            for path, shape, dtype in state_leaves:
                size = int(np.prod(shape, dtype=np.int64)) if shape else 1
                leaves[path] = state[:, offset:offset + size].reshape(T, *shape).astype(dtype)
                offset += size
        for cam, path in cameras.items():
            key = _IMAGE_PREFIX + cam
            if video:
                frames = [(ds[i][key].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8) for i in range(s, end)]
            else:
                frames = [np.asarray(im.convert("RGB") if hasattr(im, "convert") else im, np.uint8) for im in rows[key]]
            leaves[path] = np.stack(frames)
        for path in list(leaves):  # append s_T
            last = final_obs[f"{e}/{_path_name(path)}"] if final_obs is not None else leaves[path][-1]
            leaves[path] = np.concatenate([leaves[path], np.asarray(last, leaves[path].dtype)[None]])

        def col(name: str, default: np.ndarray) -> np.ndarray:
            return np.asarray(rows[name]).reshape(T) if name in columns else default

        actions = np.asarray(rows["action"], np.float32).reshape(T, -1)
        rewards = col("next.reward", np.zeros(T)).astype(np.float32)
        terminated = col("next.done", np.zeros(T, np.bool_)).astype(np.bool_)
        cut_at_end = (np.arange(T) == T - 1) & ~terminated[-1]  # LeRobot-recorded: the episode ended there
        truncated = col("complementary_info.truncated", cut_at_end).astype(np.bool_)
        intervention = col("complementary_info.intervention", np.zeros(T, np.bool_)).astype(np.bool_)
        success = col("complementary_info.is_success", terminated & (rewards > 0)).astype(np.bool_)
        if scaler is not None:
            _check_bounds(root, e, actions, scaler, env_id)
        meta = dict(side["episodes"][e]["meta"]) if side is not None else {
            "source": f"lerobot:{root}", "lerobot_episode_index": e, "task": str(ds[s]["task"]) if T else ""}
        episodes.append(Episode(_build_tree(leaves), actions, rewards, terminated, truncated, intervention, success, meta))
    return episodes


def _check_bounds(root: Path, episode: int, actions: np.ndarray, scaler, env_id: str) -> None:
    """Raise ConfigError when an action lies outside the env's bounds (another action space or units)."""
    tol = 1e-5 * np.maximum(1.0, np.abs(scaler.high - scaler.low))
    below, above = actions < scaler.low - tol, actions > scaler.high + tol
    if below.any() or above.any():
        dims = sorted(set(np.flatnonzero(below.any(0) | above.any(0)).tolist()))
        raise ConfigError(
            f"LeRobotDataset {root}, episode {episode}: actions in dimensions {dims} leave {env_id or 'the env'}'s "
            f"action bounds (low {scaler.low.tolist()}, high {scaler.high.tolist()}; data min {actions.min(0).tolist()}, "
            f"max {actions.max(0).tolist()}): the dataset has another action space or units (e.g. joint positions "
            "where the env takes end-effector deltas); convert the actions or pick the matching --env")
