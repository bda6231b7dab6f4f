"""Recording demonstrations: a scripted (privileged) controller, or a human with a teleop device."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from robot_rl.demos import EpisodeWriter, episode_files
from robot_rl.envs import make_env, parse_env_kwargs
from robot_rl.errors import ConfigError
from robot_rl.interfaces import Teleop
from robot_rl.validate import require_at_least, require_positive


@dataclass
class RecordDemosConfig:
    """Record demonstrations into a dataset directory of episode files."""

    env: str = "robot_rl/PandaPickLift-v0"
    """gymnasium env ID (the pixel variants record images too)."""
    env_kwargs: dict[str, str] = field(default_factory=dict)
    """keyword arguments of the env, e.g. --env-kwargs reward_type dense (values parsed as JSON when they can be)."""
    num_episodes: int = 20
    """number of successful episodes to record."""
    out: Path = Path("demos/pick_lift")
    """dataset directory; it must be empty or new unless --append is given."""
    teleop: str = "scripted"
    """who acts: 'scripted' (privileged scripted controller, as fast as the sim runs), or a human in real time
    at the env's control rate with 'keyboard' (this terminal, also over SSH), 'gamepad' or 'spacemouse'."""
    teleop_linear_speed_mps: float = 0.15
    """human teleop: TCP speed of a held key or a full stick / puck deflection, m/s (base frame)."""
    teleop_yaw_rate_rps: float = 0.5
    """human teleop: yaw rate of a held key or a full deflection, rad/s (envs with enable_yaw)."""
    seed: int = 0
    """seed of the first episode (episode i uses seed + i)."""
    action_noise: float = 0.0
    """scripted teleop: std of Gaussian noise added to the scripted action (in [-1, 1] action units) for diversity."""
    keep_failures: bool = False
    """also write failed episodes (they do not count towards --num-episodes)."""
    append: bool = False
    """allow adding episodes to a directory that already holds some."""
    max_attempts_factor: float = 3.0
    """scripted teleop: give up after num_episodes * this many attempts (a human stops with Ctrl-C)."""


def check_record_config(cfg: RecordDemosConfig) -> None:
    """Reject counts and rates that make no sense, before any env or device is opened.

    Raises:
        ConfigError: naming the flag, its value and what to do.
    """
    require_at_least("--num-episodes", cfg.num_episodes, 1, "record at least one episode "
                     "(to train without demos: robot-rl train --num-demos 0)")
    require_at_least("--seed", cfg.seed, 0, "gymnasium seeds are non-negative")
    require_at_least("--action-noise", cfg.action_noise, 0.0, "it is a standard deviation (0: no noise)")
    require_at_least("--max-attempts-factor", cfg.max_attempts_factor, 1.0,
                     "fewer attempts than episodes can never record them all")
    require_positive("--teleop-linear-speed-mps", cfg.teleop_linear_speed_mps)
    require_positive("--teleop-yaw-rate-rps", cfg.teleop_yaw_rate_rps)


def success_summary(written: int, attempts: int, out: Path, seconds: float) -> str:
    """The closing line of a recording, e.g. ``recorded 3 successful episodes of 4 attempts (75%
    success) into demos/x in 1.2 s``; ``n/a`` instead of a rate when nothing was attempted."""
    rate = f"{written / attempts:.0%}" if attempts > 0 else "n/a"
    return f"recorded {written} successful episodes of {attempts} attempts ({rate} success) into {out} in {seconds:.1f} s"


def record_demos(cfg: RecordDemosConfig, progress: bool = True) -> list[Path]:
    """Record demonstrations and write the successful episodes; returns the written paths.

    ``--teleop scripted`` runs the privileged scripted controller; any other teleop name is a
    human device, see :func:`_record_human`.

    Raises:
        ConfigError: a count or rate that makes no sense (``--num-episodes 0``), unknown teleop, no
            scripted controller for the env, an env a human device cannot drive, an existing
            dataset without ``--append``, or too many failed attempts.
        DeviceUnavailableError: the teleop device or its SDK is missing.
    """
    from robot_rl.drivers.teleop import teleop_names  # the registry imports no SDK; kept out of module load

    check_record_config(cfg)
    if cfg.teleop not in teleop_names():
        raise ConfigError(f"unknown --teleop {cfg.teleop!r}; choose one of: {', '.join(teleop_names())}")
    if cfg.teleop != "scripted" and cfg.action_noise > 0:
        raise ConfigError("--action-noise applies to --teleop scripted only")
    if cfg.out.exists() and any(cfg.out.glob("episode_*.npz")) and not cfg.append:
        n = len(episode_files(cfg.out))
        raise ConfigError(f"{cfg.out} already holds {n} episodes; pass --append to add to it or choose another --out")
    env_kwargs = parse_env_kwargs(cfg.env_kwargs)
    env = make_env(cfg.env, **env_kwargs)
    if cfg.teleop == "scripted":
        return _record_scripted(cfg, env, env_kwargs, progress)
    try:
        return _record_human(cfg, env, env_kwargs, progress)
    finally:
        env.close()


def _record_scripted(cfg: RecordDemosConfig, env: gym.Env, env_kwargs: dict, progress: bool) -> list[Path]:
    """Run the scripted controller and write successful episodes; returns the written paths."""
    from robot_rl.sim.scripted import scripted_policy_for

    try:
        policy = scripted_policy_for(env)
    except (KeyError, ValueError, TypeError) as e:
        raise ConfigError(f"no scripted controller for {cfg.env}: {e}. Record demos for one of robot_rl's envs, "
                          "or train without demos (--num-demos 0).") from e
    writer = EpisodeWriter(cfg.out, meta={"env_id": cfg.env, "env_kwargs": env_kwargs, "source": f"teleop:{cfg.teleop}",
                                          "action_noise": cfg.action_noise})
    rng = np.random.default_rng(cfg.seed)
    low, high = env.action_space.low, env.action_space.high
    written: list[Path] = []
    attempts, max_attempts = 0, int(np.ceil(cfg.num_episodes * cfg.max_attempts_factor))
    bar = tqdm(total=cfg.num_episodes, desc="record-demos", unit="ep", disable=not progress)
    t0 = time.perf_counter()
    while len(written) < cfg.num_episodes:
        if attempts >= max_attempts:
            env.close()
            raise ConfigError(f"only {len(written)} of {attempts} scripted episodes succeeded on {cfg.env}; "
                              "lower --action-noise or check the task")
        seed = cfg.seed + attempts
        attempts += 1
        obs, _ = env.reset(seed=seed)
        writer.start(obs)
        success, done = False, False
        while not done:
            action = np.asarray(policy(obs), np.float32)
            if cfg.action_noise > 0:
                action = np.clip(action + rng.normal(0, cfg.action_noise, action.shape) * (high - low) / 2, low, high)
            obs, reward, terminated, truncated, info = env.step(action.astype(np.float32))
            success = success or bool(info.get("is_success", False))
            writer.step(action, float(reward), obs, terminated, truncated, False, bool(info.get("is_success", False)))
            done = terminated or truncated
        if success or cfg.keep_failures:
            path = writer.finish(seed=seed, success=success)
            if success:
                written.append(path)
                bar.update(1)
    bar.close()
    env.close()
    if progress:
        print(success_summary(len(written), attempts, cfg.out, time.perf_counter() - t0))
    return written


def _record_human(cfg: RecordDemosConfig, env: gym.Env, env_kwargs: dict, progress: bool) -> list[Path]:
    """A human drives the env in real time with a teleop device; returns the written successful episodes.

    Each control period (``1 / env.unwrapped.control_hz`` seconds) the device is read and its
    :class:`~robot_rl.interfaces.TeleopCommand` becomes the action through
    ``env.unwrapped.action_from_twist(cmd.twist, cmd.gripper, previous_action)``; every step is
    tagged ``intervention=True`` (a human chose it). An episode ends when the env terminates or
    truncates, or on the device's buttons: success (the step becomes terminal, ``is_success``,
    reward 1.0 under the sparse reward, as :class:`robot_rl.intervention.InterventionWrapper`
    does), failure or reset (truncated). Successful episodes are written (all with
    ``--keep-failures``) until ``--num-episodes`` successes; Ctrl-C stops, keeping the finished
    episodes. Status lines end in ``\\r\\n`` because the keyboard teleop holds the terminal in
    cbreak mode.
    """
    base = env.unwrapped
    if not callable(getattr(base, "action_from_twist", None)):
        raise ConfigError(f"--teleop {cfg.teleop} needs a robot_rl env whose actions come from EE twists "
                          f"(RobotEnv.action_from_twist); {cfg.env} is a {type(base).__name__}. Record on one of robot_rl's envs.")

    def say(text: str) -> None:
        if progress:  # "\r\n": the keyboard teleop's cbreak mode may leave no newline translation
            print(text.replace("\n", "\r\n"), end="\r\n", flush=True)

    period_s = 1.0 / float(base.control_hz)
    sparse = getattr(base, "reward_type", None) == "sparse"
    writer = EpisodeWriter(cfg.out, meta={"env_id": cfg.env, "env_kwargs": env_kwargs, "source": f"teleop:{cfg.teleop}",
                                          "control_hz": float(base.control_hz),
                                          "teleop_linear_speed_mps": cfg.teleop_linear_speed_mps,
                                          "teleop_yaw_rate_rps": cfg.teleop_yaw_rate_rps})
    from robot_rl.drivers.teleop import make_teleop

    teleop: Teleop = make_teleop(cfg.teleop, linear_speed_mps=cfg.teleop_linear_speed_mps,
                                 yaw_rate_rps=cfg.teleop_yaw_rate_rps)
    written: list[Path] = []
    attempts = 0
    t0 = time.perf_counter()
    try:
        say(getattr(teleop, "help_text", "") or f"{cfg.teleop} teleop")
        say(f"recording {cfg.num_episodes} successful episode(s) of {cfg.env} at {base.control_hz:g} Hz into {cfg.out}")
        while len(written) < cfg.num_episodes:
            seed = cfg.seed + attempts
            attempts += 1
            obs, _ = env.reset(seed=seed)
            writer.start(obs)
            previous: np.ndarray | None = None
            sync = getattr(teleop, "sync_gripper", None)
            if sync is not None:
                sync(1.0)  # action_from_twist opens the gripper while there is no previous action
            teleop.read()  # drop button presses made before this episode began
            say(f"episode {attempts} (seed {seed}): go")
            success, ended_by, steps = False, "env", 0
            next_tick = time.monotonic()
            while True:
                cmd = teleop.read()
                action = np.asarray(base.action_from_twist(cmd.twist, cmd.gripper, previous), np.float32)
                obs, reward, terminated, truncated, info = env.step(action)
                step_success = bool(info.get("is_success", False))
                if cmd.success:
                    terminated, step_success, ended_by = True, True, "success_button"
                    reward = 1.0 if sparse else reward
                elif cmd.failure or cmd.reset:
                    truncated, ended_by = True, "failure_button" if cmd.failure else "reset_button"
                writer.step(action, float(reward), obs, terminated, truncated, True, step_success)
                success = success or step_success
                previous = action
                steps += 1
                if terminated or truncated:
                    break
                next_tick += period_s
                delay = next_tick - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:  # running late (a slow step): do not catch up with a burst of steps
                    next_tick = time.monotonic()
            kept = ""
            if success or cfg.keep_failures:
                path = writer.finish(seed=seed, success=success, ended_by=ended_by)
                kept = f", written to {path.name}"
                if success:
                    written.append(path)
            outcome = "success" if success else {"failure_button": "failure", "reset_button": "reset"}.get(
                ended_by, "failure (time limit)" if truncated else "failure")
            say(f"episode {attempts}: {outcome} after {steps} steps ({steps * period_s:.1f} s){kept}; "
                f"{len(written)}/{cfg.num_episodes} successful recorded")
    finally:
        teleop.close()
    if progress:
        print(success_summary(len(written), attempts, cfg.out, time.perf_counter() - t0))
    return written


def load_demo_buffer(env_id: str, env_kwargs: dict[str, str], demos: Path | None, num_demos: int, run_dir: Path,
                     seed: int, layout, scaler, extra_capacity: int = 0, progress: bool = True, relabel=None):
    """The demo replay buffer of a training run (``robot-rl train`` and ``robot-rl learner``).

    Demos come from ``demos`` (a dataset directory); without it, ``num_demos`` scripted demos are
    recorded once into ``run_dir/demos`` (seed ``10_000 + seed``) and reused on ``--resume``.

    Residual RL (the layout has ``base_action``, ``--env-kwargs base_policy <spec>``): demo episodes
    recorded without the base policy (plain ``robot-rl record-demos``) get ``base_action`` filled in by
    running the run's base policy over each episode's observations in order, reset at the episode
    start (:func:`robot_rl.residual.label_observations`); episodes recorded through the wrapper keep
    theirs. The files are not changed.

    Args:
        layout / scaler: the run's :class:`~robot_rl.layout.ObsLayout` and
            :class:`~robot_rl.layout.ActionScaler` (demo actions are stored in [-1, 1]).
        extra_capacity: rows reserved for intervention transitions added during training.
        relabel: optional ``relabel(episode) -> (rewards (T,) float32, terminated (T,) bool)``
            replacing the stored reward and termination (a reward model's, so that a run with
            ``--reward classifier`` never trains on the privileged reward the demos were recorded with).

    Returns:
        A :class:`~robot_rl.replay.ReplayBuffer` holding every demo transition (plus room for
        ``extra_capacity``), or None when there are no demos and no room is asked for.

    Raises:
        ConfigError: the demos' observations do not match the env's (another env or settings), or demos
            without ``base_action`` and a base policy that cannot label them (one that reads the simulator).
        DemoFormatError: a demo file is unreadable.
    """
    from robot_rl.lerobot_dataset import load_episodes_any
    from robot_rl.replay import ReplayBuffer

    demo_dir = demos
    if demo_dir is None and num_demos > 0:
        demo_dir = run_dir / "demos"
        if not demo_dir.exists():
            record_demos(RecordDemosConfig(env=env_id, env_kwargs=dict(env_kwargs), num_episodes=num_demos,
                                           out=demo_dir, seed=10_000 + seed), progress=progress)
    # robot_rl episode files or a LeRobotDataset (v3) directory
    episodes = load_episodes_any(demo_dir, layout, scaler, env_id) if demo_dir is not None else []
    if layout.base_action_index is not None:
        _label_base_actions(episodes, env_id, env_kwargs)
    if not episodes and not extra_capacity:
        return None
    buf = ReplayBuffer(layout, scaler.dim, sum(len(e) + 1 for e in episodes) + 1 + max(extra_capacity, 1))
    for ep in episodes:
        try:
            rewards, terminated = relabel(ep) if relabel is not None else (ep.rewards, ep.terminated)
            buf.add_episode(ep.observations, scaler.from_env(ep.actions), rewards, terminated, ep.intervention)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"demos in {demo_dir} do not match the observations of {env_id} ({e}); record demos "
                              "with the same env ID and settings (pixel variants need pixel demos)") from e
    return buf


def _label_base_actions(episodes: list, env_id: str, env_kwargs: dict[str, str]) -> None:
    """Add ``base_action`` to the observations of the episodes that lack it (in memory, in place)."""
    from robot_rl.residual import base_action_source_for, has_base_action, label_observations

    unlabelled = [ep for ep in episodes if not has_base_action(ep.observations)]
    if not unlabelled:
        return
    source = base_action_source_for(env_id, parse_env_kwargs(env_kwargs))
    for ep in unlabelled:
        ep.observations = label_observations(ep.observations, source)
