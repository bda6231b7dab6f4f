"""Recording demonstrations with a scripted (privileged) controller."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from robot_rl.demos import EpisodeWriter, episode_files
from robot_rl.envs import make_env, parse_env_kwargs
from robot_rl.errors import ConfigError


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
    """who acts: 'scripted' (privileged scripted controller). Human devices come with the teleop issue."""
    seed: int = 0
    """seed of the first episode (episode i uses seed + i)."""
    action_noise: float = 0.0
    """std of Gaussian noise added to the scripted action (in [-1, 1] action units) for diversity."""
    keep_failures: bool = False
    """also write failed episodes (they do not count towards --num-episodes)."""
    append: bool = False
    """allow adding episodes to a directory that already holds some."""
    max_attempts_factor: float = 3.0
    """give up after num_episodes * this many attempts."""


def record_demos(cfg: RecordDemosConfig, progress: bool = True) -> list[Path]:
    """Run the scripted controller and write successful episodes; returns the written paths.

    Raises:
        ConfigError: unknown teleop, no scripted controller for the env, an existing dataset
            without ``--append``, or too many failed attempts.
    """
    if cfg.teleop != "scripted":
        raise ConfigError(f"--teleop {cfg.teleop!r} is not available yet; use --teleop scripted "
                          "(keyboard, gamepad and SpaceMouse teleop arrive with the human-in-the-loop issue)")
    if cfg.out.exists() and any(cfg.out.glob("episode_*.npz")) and not cfg.append:
        n = len(episode_files(cfg.out))
        raise ConfigError(f"{cfg.out} already holds {n} episodes; pass --append to add to it or choose another --out")
    from robot_rl.sim.scripted import scripted_policy_for

    env_kwargs = parse_env_kwargs(cfg.env_kwargs)
    env = make_env(cfg.env, **env_kwargs)
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
        dt = time.perf_counter() - t0
        print(f"recorded {len(written)} successful episodes of {attempts} attempts "
              f"({len(written) / attempts:.0%} success) into {cfg.out} in {dt:.1f} s")
    return written
