"""``robot-rl eval``: success rate of a trained policy, a video of it, and its learning curve."""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import CheckpointError, ConfigError
from robot_rl.view import DEFAULT_VIEWER_URL

#: seed of the first evaluation episode of `robot-rl eval` and `robot-rl train-bc` (episode i resets with
#: seed + i); far from the scripted demos' seeds (10_000 + run seed + attempt) so no evaluation replays a demo
DEFAULT_EVAL_SEED = 12345


@dataclass
class EvalConfig:
    """Evaluate a training run's latest checkpoint (--run-dir) or a saved policy directory (--policy)."""

    run_dir: Path | None = None
    """run directory printed by `robot-rl train` or `robot-rl learner` (holds config.json and checkpoints/)."""
    policy: Path | None = None
    """a saved policy directory instead of a run (policy.json + policy.safetensors: `robot-rl train-bc`'s
    <out>/policy, `robot-rl export-policy`); its env and env kwargs come from its metadata."""
    episodes: int = 20
    """number of evaluation episodes (deterministic policy)."""
    seed: int = DEFAULT_EVAL_SEED
    """seed of the first evaluation episode."""
    video: bool = True
    """write an mp4 of the first episode (needs an env that renders rgb_array)."""
    out: Path | None = None
    """output directory for the video, curve and results.json (default <run_dir>/eval or <policy>/eval)."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    env_kwargs: dict[str, str] = field(default_factory=dict)
    """override the run's (or policy's) env kwargs, e.g. `--env-kwargs backend pybullet` to evaluate a MuJoCo-trained
    policy zero-shot in PyBullet (same spaces), or `randomize config/randomization.yaml`."""
    env: str | None = None
    """evaluate in another env ID with the same spaces (e.g. robot_rl/RosPandaPickLift-v0 against the sim node)."""
    view: bool = False
    """stream the evaluation to Rerun (pip install -e .[view]): cameras, EE trajectory, action, reward, success (robot_rl.view)."""
    view_target: str = DEFAULT_VIEWER_URL
    """where --view streams: a Rerun viewer's gRPC URL (start `rerun`) or a file path ending in .rrd."""
    view_every_frames: int = 1
    """with --view, log camera images of every N-th step only."""


def _rgb_frame(frame: Any) -> np.ndarray | None:
    """One ``env.render()`` result as an (H, W, 3) uint8 image, or None if it is not an image.

    Accepts (H, W, 3) uint8; (H, W, 4) RGBA (alpha dropped); (H, W) or (H, W, 1) grey; integer
    frames in [0, 255]; float frames in [0, 1]; and a list or tuple of such frames (one per
    camera), tiled left to right with black below the shorter ones.
    """
    if isinstance(frame, (list, tuple)):
        parts = [_rgb_frame(f) for f in frame]
        if not parts or any(p is None for p in parts):
            return None
        height = max(p.shape[0] for p in parts)
        return np.concatenate([_pad_frame(p, height, p.shape[1]) for p in parts], axis=1)
    a = np.asarray(frame)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.size == 0:
        return None
    a = a[..., :3]
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0:
        return np.rint(a * 255.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer) and a.min() >= 0 and a.max() <= 255:
        return a.astype(np.uint8)
    return None


def _pad_frame(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (height, width, 3) uint8, black below and to the right."""
    if image.shape[:2] == (height, width):
        return image
    out = np.zeros((height, width, 3), np.uint8)
    out[:image.shape[0], :image.shape[1]] = image
    return out


def _describe_frame(frame: Any) -> str:
    """'ndarray (1, 1, 64, 3) uint8', 'list of 2', 'dict' ... for warnings."""
    if isinstance(frame, (list, tuple)):
        return f"{type(frame).__name__} of {len(frame)}"
    shape, dtype = getattr(frame, "shape", None), getattr(frame, "dtype", None)
    return f"{type(frame).__name__} {tuple(shape)} {dtype}" if shape is not None else type(frame).__name__


def write_video(frames: list[Any], path: Path, fps: float = 10.0) -> Path | None:
    """Write one episode's ``env.render()`` results as an H.264 mp4 (a GIF if ffmpeg fails).

    A video is a by-product: when it cannot be written this warns and returns None, never raises,
    so a training run or an evaluation still finishes.

    Args:
        frames: ``env.render()`` results in order; each (H, W, 3) uint8, (H, W, 4) RGBA, (H, W)
            grey, float in [0, 1], or a list/tuple of those (one per camera, tiled side by side).
            None entries are dropped.
        path: output file (``.mp4``); the GIF fallback swaps the suffix.
        fps: frames per second of the video.

    Returns:
        The written path, or None (with a warning) when a frame is not an image, there are no
        frames, or neither format could be written. Frames are padded with black to the largest
        one, with even sides (H.264 needs them; ffmpeg writes an empty file otherwise).
    """
    images: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        if frame is None:
            continue
        image = _rgb_frame(frame)
        if image is None:
            warnings.warn(f"no video written to {path}: render() result {i} ({_describe_frame(frame)}) is not an "
                          "image. Return (H, W, 3) uint8, float in [0, 1], (H, W) grey, or a list of those (one per "
                          "camera) from the env's render(), or turn the video off (--no-final-video, eval --no-video).",
                          stacklevel=2)
            return None
        images.append(image)
    if not images:
        warnings.warn(f"no video written to {path}: the env's render() returned None; it must support "
                      "render_mode='rgb_array'. Turn the video off with --no-final-video (eval: --no-video).", stacklevel=2)
        return None
    height = -(-max(im.shape[0] for im in images) // 2) * 2
    width = -(-max(im.shape[1] for im in images) // 2) * 2
    images = [_pad_frame(im, height, width) for im in images]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import imageio.v2 as imageio
    except ImportError as e:
        warnings.warn(f"no video written to {path}: {e}. pip install imageio imageio-ffmpeg", stacklevel=2)
        return None
    try:
        imageio.mimwrite(path, images, fps=fps, macro_block_size=1)
        if path.stat().st_size == 0:  # ffmpeg reports some failures only on its stderr
            raise RuntimeError("ffmpeg wrote an empty file")
        return path
    except (ImportError, RuntimeError, ValueError, OSError) as mp4_error:
        gif = path.with_suffix(".gif")
        try:
            imageio.mimwrite(gif, images, duration=1000.0 / fps, loop=0)  # duration: ms per frame (pillow)
            return gif
        except (ImportError, RuntimeError, ValueError, OSError, TypeError) as gif_error:
            warnings.warn(f"no video written to {path} ({mp4_error}) nor to {gif} ({gif_error})", stacklevel=2)
            return None


def write_learning_curve(evals_csv: Path, path: Path, title: str = "") -> Path:
    """Plot eval success rate and return against env steps from ``evals.csv``; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(evals_csv))) if evals_csv.is_file() else []
    steps = [int(r["env_steps"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(steps, [float(r["success_rate"]) for r in rows], "o-", color="tab:blue", label="success rate")
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval success rate", color="tab:blue")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(steps, [float(r["mean_return"]) for r in rows], "s--", color="tab:orange", alpha=0.7, label="return")
    ax2.set_ylabel("eval mean return", color="tab:orange")
    ax.set_title(title or "learning curve")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_episode_curve(episodes_csv: Path, path: Path, title: str = "", window: int = 20) -> Path | None:
    """Plot the training episodes' success and intervention rates (rolling means over ``window``
    episodes) against env steps, from ``episodes.csv`` (written by `robot-rl train` and by
    `robot-rl learner`); the HIL-SERL progress plot: the intervention rate should fall while the
    success rate rises. Returns the PNG path, or None without episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(episodes_csv))) if episodes_csv.is_file() else []
    if not rows:
        return None
    steps = np.array([float(r["env_steps"]) for r in rows])
    success = np.array([1.0 if str(r.get("success", "")).strip() in ("1", "True", "true") else 0.0 for r in rows])
    rate = np.array([float(r.get("intervention_rate") or 0.0) for r in rows])
    kernel = np.ones(min(window, len(rows))) / min(window, len(rows))
    smooth = lambda x: np.convolve(x, kernel, mode="valid")  # noqa: E731
    x = steps[len(kernel) - 1:]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, smooth(success), color="tab:blue", label=f"success (last {len(kernel)} episodes)")
    ax.plot(x, smooth(rate), color="tab:red", label="intervention rate")
    ax.set_xlabel("env steps")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(title or "training episodes")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate(policy: Any, env: Any, episodes: int, frames: list[Any] | None = None,
             seed: int | None = None, view: Any = None) -> dict[str, float]:
    """Run ``episodes`` episodes of ``policy``'s deterministic action (no intervention, no learning).

    Args:
        policy: a :class:`~robot_rl.policies.policy.Policy` (anything with ``act(obs, deterministic)``
            returning the env's action).
        env: the env (a reward model's wrapper decides success when there is one).
        frames: if given, ``env.render()`` frames of the first episode are appended to it.
        seed: episode ``i`` resets with ``seed + i`` (reproducible evaluations); None continues the
            env's own RNG stream.
        view: a :class:`~robot_rl.view.LiveView` to log each step and episode to (``--view``), or None.

    Returns:
        ``success_rate`` (fraction of episodes with ``info['is_success']``), ``mean_return``,
        ``mean_length`` (steps); with a reward model (:mod:`robot_rl.rewards`) ``success_rate`` is
        the model's verdict, ``env_success_rate`` the env's own (privileged in sim) success
        (``info['env_is_success']``) and ``reward_agreement`` the fraction of episodes in which the
        two agree.
    """
    successes, returns, lengths, env_successes, agreements = [], [], [], [], []
    if view is not None:
        from robot_rl.layout import ActionScaler, ObsLayout

        layout, scaler, step = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space), 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=None if seed is None else seed + ep)
        done, ret, length, success, env_success = False, 0.0, 0, False, None
        while not done:
            if frames is not None and ep == 0:
                frames.append(env.render())
            seen = obs
            action = policy.act(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            if view is not None:
                state, images = layout.split(seen)
                view.log_step(step, images, scaler.from_env(action), False, float(reward), state,
                              info.get("is_success"), info.get("success_probability"), episode=ep)
                step += 1
            ret += float(reward)
            length += 1
            success = success or bool(info.get("is_success", False))
            if "env_is_success" in info:
                env_success = bool(env_success) or bool(info["env_is_success"])
            done = terminated or truncated
        if frames is not None and ep == 0:
            frames.append(env.render())
        if view is not None:
            view.log_episode(step - 1, ep, ret, success, 0.0)
        successes.append(success)
        if env_success is not None:
            env_successes.append(env_success)
            agreements.append(success == env_success)
        returns.append(ret)
        lengths.append(length)
    result = {"success_rate": float(np.mean(successes)), "mean_return": float(np.mean(returns)),
              "mean_length": float(np.mean(lengths))}
    if env_successes:
        result["env_success_rate"] = float(np.mean(env_successes))
        result["reward_agreement"] = float(np.mean(agreements))
    return result


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    """Load the run's latest policy (:meth:`~robot_rl.policies.policy.Policy.from_run`) or a saved
    policy directory (:meth:`~robot_rl.policies.policy.Policy.load`), evaluate it, write
    video/curve/results.json.

    Raises:
        ConfigError: neither or both of ``--run-dir`` and ``--policy``; a policy without an env in
            its metadata and no ``--env``.
        CheckpointError: the run directory or its checkpoint, or the policy directory, is missing or unreadable.
        ObservationLayoutError: ``--env`` / ``--env-kwargs`` give spaces the policy was not trained on.
    """
    from robot_rl.validate import require_at_least

    if (cfg.run_dir is None) == (cfg.policy is None):
        raise ConfigError("pass exactly one of --run-dir <run directory> (a training run's latest checkpoint) and "
                          f"--policy <policy directory> (a saved policy); got {'both' if cfg.run_dir else 'neither'}")
    require_at_least("--episodes", cfg.episodes, 1, "evaluation needs at least one episode")
    require_at_least("--seed", cfg.seed, 0)
    if cfg.policy is not None:
        return _eval_policy_dir(cfg)
    from robot_rl.agent import resolve_device
    from robot_rl.envs import make_env, parse_env_kwargs
    from robot_rl.layout import ActionScaler, ObsLayout
    from robot_rl.policies.policy import Policy
    from robot_rl.rewards.selection import check_reward_source, load_run_reward, wrap_with_reward

    run_dir = Path(cfg.run_dir)
    if not run_dir.exists():
        raise CheckpointError(f"run directory {run_dir} does not exist; pass the directory `robot-rl train` printed")
    raw = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    device = resolve_device(cfg.device)
    # the run's env settings and reward source; with a reward model, success_rate is the model's
    # verdict and env_success_rate the env's own (privileged in sim) success
    reward = raw.get("reward", "env")
    env_kwargs = {**parse_env_kwargs(raw.get("env_kwargs") or {}), **parse_env_kwargs(cfg.env_kwargs)}
    if reward in ("sparse", "dense"):
        env_kwargs = check_reward_source(reward, env_kwargs)
    env_id = cfg.env or raw.get("env")
    env = wrap_with_reward(make_env(env_id, render=cfg.video, **env_kwargs), load_run_reward(run_dir))
    try:
        policy = Policy.from_run(run_dir, device, ObsLayout.from_space(env.observation_space),
                                 ActionScaler.from_space(env.action_space))
        result, arm_module, frames = _evaluate_in(policy, env, cfg)
    finally:
        env.close()
    out = Path(cfg.out or run_dir / "eval")
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"run_dir": str(run_dir), "checkpoint": str(run_dir / "checkpoints" / policy.metadata["checkpoint"]),
                               "env": env_id, "env_kwargs": env_kwargs, "arm_module": arm_module,
                               "trained_env_steps": policy.metadata.get("env_steps"), "episodes": cfg.episodes, **result}
    video = write_video(frames, out / f"eval_step_{summary['trained_env_steps']}.mp4") if frames else None
    if video is not None:
        summary["video"] = str(video)
    if (run_dir / "evals.csv").is_file():
        summary["learning_curve"] = str(write_learning_curve(run_dir / "evals.csv", out / "learning_curve.png",
                                                             title=raw.get("env", "")))
    episode_curve = write_episode_curve(run_dir / "episodes.csv", out / "training_episodes.png", title=raw.get("env", ""))
    if episode_curve is not None:
        summary["training_episodes_curve"] = str(episode_curve)
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    return summary


def _evaluate_in(policy: Any, env: Any, cfg: EvalConfig) -> tuple[dict[str, float], str | None, list[Any] | None]:
    """``cfg.episodes`` deterministic episodes of ``policy`` in ``env``: the result of :func:`evaluate`,
    the module of the arm that ran (``robot_rl.sim.mujoco...``, ``robot_rl.sim.pybullet...``,
    ``robot_rl.ros.clients``; None for envs without an arm) and the first episode's frames (``cfg.video``)."""
    from robot_rl.layout import ObsLayout
    from robot_rl.view import view_from_settings

    frames: list[Any] | None = [] if cfg.video else None
    arm_module = type(env.unwrapped.arm).__module__ if hasattr(env.unwrapped, "arm") else None
    view = view_from_settings(cfg, env, list(ObsLayout.from_space(env.observation_space).image_shapes))
    try:
        return evaluate(policy, env, cfg.episodes, frames=frames, seed=cfg.seed, view=view), arm_module, frames
    finally:
        if view is not None:
            view.close()


def _eval_policy_dir(cfg: EvalConfig) -> dict[str, Any]:
    """``robot-rl eval --policy <dir>``: evaluate a saved policy in the env of its metadata (or ``--env``),
    after checking the env's spaces against the policy (:meth:`~robot_rl.policies.policy.Policy.check_env`)."""
    from robot_rl.agent import resolve_device
    from robot_rl.envs import make_env, parse_env_kwargs
    from robot_rl.policies.policy import Policy

    policy_dir = Path(cfg.policy)
    policy = Policy.load(policy_dir, resolve_device(cfg.device))
    env_id = cfg.env or policy.metadata.get("env")
    if not env_id:
        raise ConfigError(f"policy {policy_dir} names no env in its metadata (policy.json 'metadata'); pass --env <ID>")
    env_kwargs = {**parse_env_kwargs(policy.metadata.get("env_kwargs") or {}), **parse_env_kwargs(cfg.env_kwargs)}
    env = make_env(env_id, render=cfg.video, **env_kwargs)
    try:
        policy.check_env(env.observation_space, env.action_space)
        result, arm_module, frames = _evaluate_in(policy, env, cfg)
    finally:
        env.close()
    out = Path(cfg.out or policy_dir / "eval")
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"policy": str(policy_dir), "source": policy.metadata.get("source"), "env": env_id,
                               "env_kwargs": env_kwargs, "arm_module": arm_module, "episodes": cfg.episodes,
                               "seed": cfg.seed, **result}
    video = write_video(frames, out / "eval_policy.mp4") if frames else None
    if video is not None:
        summary["video"] = str(video)
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    return summary
