"""The learner: one SAC/RLPD learning core for ``robot-rl train`` and ``robot-rl learner``.

:class:`Learner` owns everything on the learning side: the agent, the demo buffer (demos plus
interventions) and the online buffer, the update schedule, evaluation, checkpoints, metrics and
resume. It is fed :class:`~robot_rl.transport.messages.TransitionChunk` s by one or more actors
(:class:`robot_rl.actor.ActorLoop`) through a transport:

* **in memory** (``robot-rl train``, :mod:`robot_rl.train`): one actor loop and the learner take
  turns in one thread (act one step, hand over its chunk, update), so a run is deterministic and
  ``--resume`` continues bit for bit;
* **ZeroMQ** (``robot-rl learner`` + ``robot-rl actor``, :func:`run_learner`): actors on robot
  PCs stream chunks, the learner publishes the policy parameters back every
  ``publish_every_updates`` gradient steps (HIL-SERL's shape: Luo et al. 2024, "Precise and
  Dexterous Robotic Manipulation via Human-in-the-Loop Reinforcement Learning", arXiv:2410.21845).

Both modes share one run directory format (``run.json`` says ``{"format": 2, "mode": ...}``):

* ``replay/log_*.rrl``: every transition chunk, appended before it is used (and, over ZeroMQ,
  before it is acknowledged). It is the run's one on-disk dataset: ``--resume`` rebuilds both
  buffers, the episode counters and the intervention totals from it.
* ``checkpoints/step_<env steps>/``: networks, target critics, optimisers, temperature, update
  counters and every RNG state, written atomically at the first episode end after every
  ``checkpoint_every_steps`` env steps (and after ``checkpoint_every_s`` seconds), and at exit.
  After SIGKILL, ``--resume`` continues from the newest one. In memory, a checkpoint also holds the
  actor loop's state and the log is cut back to what the checkpoint had seen (the cut-off tail is
  kept in ``replay_after_step_<N>/``, never deleted), so the resumed run repeats those steps exactly.
* ``episodes.csv`` (one row per finished training episode), ``evals.csv`` (one row per
  evaluation), ``tb/`` (TensorBoard): the same columns and tags in both modes, and **every x-axis
  is env steps** (transitions received), so curves of ``train`` and ``learner`` runs overlay;
  the one exception is ``tb/pretrain/`` (offline pretraining, x = pretraining update).
* ``phase.json``: the run's phase (``pretrain``, ``wsrl_warmup`` or ``online``) and pretraining
  update count, rewritten with every checkpoint (each checkpoint's ``state.json`` holds them too).

Offline-to-online (``--pretrain.steps N``, :mod:`robot_rl.offline`): :meth:`Learner.pretrain`
first runs N Cal-QL updates on the demo buffer (before the first env step; checkpoints every
``--pretrain.checkpoint-every-updates``, all at env step 0, so ``--resume`` continues pretraining
at the same update with the same RNG state), evaluates the pretrained policy (the ``evals.csv``
row at env step 0), and the online phase follows with the same networks: RLPD as without
pretraining, or WSRL (``--pretrain.online wsrl``): ``--pretrain.wsrl-warmup-steps`` env steps of
the pretrained policy with no updates, then updates on online data only.
* ``config.json``, ``demos/`` (scripted demos when recorded), ``reward.json`` /
  ``reward_source.json`` (the reward the replay holds), ``status.json`` (learner mode: counters,
  refused messages by reason; rewritten every second).
"""

from __future__ import annotations

import csv
import json
import math
import os
import queue
import random
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from robot_rl.agent import SACAgent, SACConfig, resolve_device
from robot_rl.batch import Batch
from robot_rl.envs import make_env, parse_env_kwargs
from robot_rl.errors import CheckpointError, ConfigError, WireError
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.offline import PretrainConfig
from robot_rl.policies.policy import Policy
from robot_rl.record import load_demo_buffer
from robot_rl.replay import ReplayBuffer, sample_mixed
from robot_rl.rewards.feedback import FalseSuccessLoop, FeedbackConfig, check_feedback_config, describe
from robot_rl.residual import absolute_base_policy
from robot_rl.runs import (load_checkpoint, load_config, make_run_dir, save_checkpoint, save_config,
                           to_jsonable)
from robot_rl.transport.messages import REWARD_MODEL_PREFIX, TransitionChunk
from robot_rl.transport.records import SegmentLog
from robot_rl.threads import ThreadShare
from robot_rl.transport.wire import decode, encode
from robot_rl.validate import require_at_least, require_positive

#: file in a run holding the reward source its replay holds (see ``ChunkReceiver``'s ``reward_source``)
REWARD_SOURCE_FILE = "reward_source.json"
#: file in a run holding its format version and mode
RUN_FILE = "run.json"
#: run directory format: 2 = one replay log for both modes (1: train runs kept ``episodes/*.npz``)
RUN_FORMAT = 2
#: columns of ``episodes.csv`` (both modes); ``env_success`` is the env's privileged success, filled
#: when the reward comes from a model (empty otherwise); ``max_force_n`` / ``mean_force_n`` are the
#: episode's largest and mean wrist force (N, ``info["ee_force_n"]``), empty for envs without one;
#: ``false_success`` is 1 when the operator marked the reward model's success false
EPISODE_COLUMNS = ("wall_time", "actor", "episode", "env_steps", "updates", "return", "length", "success",
                   "intervention_steps", "takeovers", "intervention_rate", "env_success", "max_force_n", "mean_force_n",
                   "false_success")
#: columns of ``evals.csv`` (both modes); ``env_success_rate`` is the env's privileged success,
#: filled when the reward comes from a model (empty otherwise), as are ``reward_agreement`` (fraction
#: of episodes where the model's success verdict equals the privileged one) and ``reward_model_version``
EVAL_COLUMNS = ("env_steps", "episodes", "updates", "wall_s", "success_rate", "mean_return", "mean_length",
                "intervention_steps", "env_success_rate", "reward_agreement", "reward_model_version")
#: ``total_env_steps`` of a new run when not given, per mode (0: until stopped)
DEFAULT_TOTAL_ENV_STEPS = {"train": 5_000, "learner": 0}
#: numpy SeedSequence stream of evaluation episodes (independent of training resets)
EVAL_SEED_STREAM = 7
#: file in a run holding its phase and pretraining update count (rewritten with every checkpoint)
PHASE_FILE = "phase.json"
#: the phases of a run, in order (``wsrl_warmup`` only with ``--pretrain.online wsrl``)
PHASES = ("pretrain", "wsrl_warmup", "online")


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


@dataclass
class LearnConfig:
    """Settings of the learning core, shared by `robot-rl train` and `robot-rl learner`."""

    env: str = "robot_rl/PandaPickLift-v0"
    """gymnasium env ID; any env with a Box or Dict-of-Box observation and a Box action."""
    env_kwargs: dict[str, str] = field(default_factory=dict)
    """keyword arguments of the env, e.g. --env-kwargs reward_type dense image_size 96 (values parsed as JSON when they can be)."""
    seed: int = 1
    """seed of networks, replay sampling, env resets."""
    total_env_steps: int | None = None
    """stop after this many env steps; default 5,000 for a new `train` run, 0 (run until stopped) for a `learner`; on --resume the run's own total unless given."""
    num_demos: int = 20
    """scripted demos to record into the run when --demos is not given (0: train without demos)."""
    demos: Path | None = None
    """directory of demo episode files (robot-rl record-demos) to use instead of recording."""
    demo_fraction: float = 0.5
    """fraction of each batch drawn from the demo buffer (RLPD: 0.5)."""
    online_capacity: int = 100_000
    """online replay capacity in transitions."""
    intervention_capacity: int = 50_000
    """demo-buffer rows added for intervention transitions (one per transition plus one per take-over); when full the oldest rows, demos first, are overwritten."""
    update_ratio: float = 1.0
    """agent updates (each agent.utd_ratio gradient steps) per env step; 0: as fast as possible (learner process only)."""
    learning_starts: int = 0
    """env steps before the first update (with demos updates can start at once)."""
    eval_every_steps: int = 500
    """evaluate (deterministic policy) at the first episode end after every N env steps; 0: only at the end."""
    eval_episodes: int = 10
    """episodes per evaluation."""
    eval_at_start: bool = False
    """also evaluate before the first env step (the evals.csv row at env step 0: the success of a residual
    policy on its base, or of the untrained policy); a run with --pretrain.steps always evaluates there."""
    checkpoint_every_steps: int = 1_000
    """checkpoint at the first episode end after every N env steps (and at the end)."""
    checkpoint_every_s: float = 300.0
    """also checkpoint when this many seconds passed since the last one."""
    log_every_updates: int = 50
    """write losses to TensorBoard every N agent updates."""
    runs_dir: Path = Path("runs")
    """parent directory of run directories."""
    exp_name: str = "sac"
    """experiment name, part of the run directory name."""
    run_dir: Path | None = None
    """explicit run directory (must not exist); default runs_dir/<env>__<exp>__<seed>__<time>."""
    resume: Path | None = None
    """continue the run in this directory from its latest checkpoint and its replay log."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    pixel_preset: Literal["auto", "cpu", "full"] = "auto"
    """pixel settings of a new run with cameras: 'cpu' (64x64 images, 16 filters, batch 128, UTD 1: the scale that trains on a CPU), 'full' (the defaults: 128x128, 32 filters, batch 256, UTD 2), 'auto' ('cpu' when the learner has no GPU). Only settings left at their defaults change; the resolved values are saved with the run. Actors of a `robot-rl learner` need the same --env-kwargs image_size."""
    torch_threads: int = 0
    """torch intra-op threads; 0: this process's share of the machine's cores, split with the other robot_rl processes running here and resized as they come and go (robot_rl.threads)."""
    fsync: bool = False
    """fsync the replay log after every chunk (survives power loss; slower)."""
    progress: bool = True
    """show a progress bar."""
    agent: SACConfig = field(default_factory=SACConfig)
    """learner settings."""
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    """offline pretraining (Cal-QL) on the demos before the first env step, and the online phase after it (robot_rl.offline)."""
    reward_feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    """the false-success loop: retrain the success classifier on the operator's false-success labels during training, swap it in, relabel the stored rewards (robot_rl.rewards.feedback)."""


def check_learn_config(cfg: LearnConfig) -> None:
    """Reject settings that make no sense, each with one clear :class:`ConfigError` saying what to pass
    (before any env is built, demo recorded or run directory made)."""
    a = cfg.agent
    if not 0.0 <= cfg.demo_fraction <= 1.0:
        raise ConfigError(f"--demo-fraction must be in [0, 1], got {cfg.demo_fraction}")
    if not 0.0 <= a.gamma < 1.0:
        raise ConfigError(f"--agent.gamma must be in [0, 1), got {a.gamma}")
    if not 0.0 < a.tau <= 1.0:
        raise ConfigError(f"--agent.tau must be in (0, 1], got {a.tau}")
    for flag, value, minimum, hint in (
            ("--seed", cfg.seed, 0, ""), ("--total-env-steps", cfg.total_env_steps, 0, ""),
            ("--num-demos", cfg.num_demos, 0, ""),
            ("--online-capacity", cfg.online_capacity, 2, "the online buffer needs room for at least one transition"),
            ("--intervention-capacity", cfg.intervention_capacity, 0, ""), ("--update-ratio", cfg.update_ratio, 0, ""),
            ("--learning-starts", cfg.learning_starts, 0, ""), ("--eval-every-steps", cfg.eval_every_steps, 0, ""),
            ("--eval-episodes", cfg.eval_episodes, 1, "evaluation needs at least one episode"),
            ("--checkpoint-every-steps", cfg.checkpoint_every_steps, 0, ""),
            ("--log-every-updates", cfg.log_every_updates, 1, ""), ("--torch-threads", cfg.torch_threads, 0, ""),
            ("--agent.batch-size", a.batch_size, 1, ""), ("--agent.utd-ratio", a.utd_ratio, 1, ""),
            ("--agent.num-critics", a.num_critics, 1, ""), ("--agent.actor-update-period", a.actor_update_period, 1, ""),
            ("--agent.actor-warmup-updates", a.actor_warmup_updates, 0, ""),
            ("--agent.hidden-dims", a.hidden_dims, 1, "every layer needs a width"),
            ("--agent.encoder-latent-dim", a.encoder_latent_dim, 1, ""),
            ("--agent.encoder-channels", a.encoder_channels, 1, ""), ("--agent.encoder-strides", a.encoder_strides, 1, ""),
            ("--agent.image-shift-pad", a.image_shift_pad, 0, "")):
        require_at_least(flag, value, minimum, hint)
    for flag, value in (("--checkpoint-every-s", cfg.checkpoint_every_s), ("--agent.actor-lr", a.actor_lr),
                        ("--agent.critic-lr", a.critic_lr), ("--agent.temperature-lr", a.temperature_lr),
                        ("--agent.init-temperature", a.init_temperature)):
        require_positive(flag, value)
    if a.max_grad_norm is not None:
        require_positive("--agent.max-grad-norm", a.max_grad_norm, "or leave it unset for no clipping")
    check_feedback_config(cfg.reward_feedback)
    p = cfg.pretrain
    require_at_least("--pretrain.steps", p.steps, 0, "0 trains online from scratch")
    require_at_least("--pretrain.cql-alpha", p.cql_alpha, 0.0, "0 turns the CQL regulariser off")
    require_at_least("--pretrain.cql-num-actions", p.cql_num_actions, 1, "the logsumexp needs sampled actions")
    require_positive("--pretrain.cql-temperature", p.cql_temperature)
    require_at_least("--pretrain.checkpoint-every-updates", p.checkpoint_every_updates, 1)
    require_at_least("--pretrain.wsrl-warmup-steps", p.wsrl_warmup_steps, 0)
    if p.online not in ("rlpd", "wsrl"):
        raise ConfigError(f"--pretrain.online must be 'rlpd' or 'wsrl', got {p.online!r}")
    if p.steps and cfg.num_demos == 0 and cfg.demos is None:
        raise ConfigError(f"--pretrain.steps {p.steps} pretrains on the demos, but there are none; pass --num-demos N "
                          "(scripted demos) or --demos DIR, or --pretrain.steps 0")
    if p.online == "wsrl" and not p.steps:
        raise ConfigError("--pretrain.online wsrl fine-tunes a pretrained agent without the offline data; "
                          "pass --pretrain.steps N > 0 with it (or --pretrain.online rlpd)")


#: the CPU pixel preset (``--pixel-preset cpu``): env kwargs and agent settings, each applied only where
#: the run left it at its default. Measured on 2 CPU cores: 7.6 updates/s against ~0.5 at the defaults
#: (README, Benchmarks), and it learns pick-and-lift from pixels (4k env steps to 90 %, 3 seeds).
CPU_PIXEL_PRESET = {"image_size": 64, "encoder_channels": 16, "batch_size": 128, "utd_ratio": 1}


def apply_pixel_preset(cfg: LearnConfig) -> str | None:
    """Apply ``cfg.pixel_preset`` to a new run's settings in place (see ``LearnConfig.pixel_preset``).

    The env is made once to see whether it has cameras (and takes ``image_size``); state-only envs and
    ``full`` are left alone; ``auto`` picks ``cpu`` when :func:`~robot_rl.agent.resolve_device` finds
    no GPU. Returns the line printed about it (None when nothing changed).

    Raises:
        ConfigError: an unknown preset, or the env cannot be made.
    """
    if cfg.pixel_preset not in ("auto", "cpu", "full"):
        raise ConfigError(f"--pixel-preset must be 'auto', 'cpu' or 'full', got {cfg.pixel_preset!r}")
    if cfg.pixel_preset == "full" or (cfg.pixel_preset == "auto" and resolve_device(cfg.device).type != "cpu"):
        return None
    env_kwargs = parse_env_kwargs(cfg.env_kwargs)
    env = make_env(cfg.env, **env_kwargs)
    try:
        if not ObsLayout.from_space(env.observation_space).image_shapes:
            return None
    finally:
        env.close()
    defaults, changed = SACConfig(), []
    if "image_size" not in env_kwargs:
        try:  # robot_rl's sims take image_size; a third-party pixel env may not
            make_env(cfg.env, **{**env_kwargs, "image_size": CPU_PIXEL_PRESET["image_size"]}).close()
            cfg.env_kwargs = {**cfg.env_kwargs, "image_size": str(CPU_PIXEL_PRESET["image_size"])}
            changed.append(f"{CPU_PIXEL_PRESET['image_size']}x{CPU_PIXEL_PRESET['image_size']} images")
        except ConfigError:
            pass
    for name, label in (("encoder_channels", "filters"), ("batch_size", "batch"), ("utd_ratio", "UTD")):
        if getattr(cfg.agent, name) == getattr(defaults, name):
            setattr(cfg.agent, name, CPU_PIXEL_PRESET[name])
            changed.append(f"{label} {CPU_PIXEL_PRESET[name]}")
    if not changed:
        return None
    why = "no GPU found" if cfg.pixel_preset == "auto" else "--pixel-preset cpu"
    line = (f"pixel preset for a CPU learner ({why}): {', '.join(changed)} (about 15x the updates/s of the full "
            "pixel defaults on a CPU); --pixel-preset full keeps the defaults")
    tqdm.write(line)
    return line


def resolve_run(cfg: LearnConfig, mode: str) -> tuple[LearnConfig, Path | None]:
    """``cfg`` itself for a new run (``total_env_steps`` defaulted per mode); for ``--resume`` the
    run's saved config (with this call's ``total_env_steps`` when given, written back to
    ``config.json``, and its ``progress``) and the run directory.

    Raises:
        CheckpointError: the directory is no run, or a run of an older format (the message says
            what to do), or a run of the other mode (train vs learner).
    """
    if cfg.resume is None:
        if cfg.total_env_steps is None:
            cfg.total_env_steps = DEFAULT_TOTAL_ENV_STEPS[mode]
        cfg.env_kwargs = absolute_base_policy(cfg.env_kwargs)  # config.json must find it from anywhere
        apply_pixel_preset(cfg)
        return cfg, None
    run_dir = Path(cfg.resume)
    if not (run_dir / "config.json").is_file():
        raise CheckpointError(f"{run_dir} is not a robot_rl run directory (no config.json); "
                              "pass the directory `robot-rl train` or `robot-rl learner` printed at its start")
    info = json.loads((run_dir / RUN_FILE).read_text()) if (run_dir / RUN_FILE).is_file() else {}
    if info.get("format") != RUN_FORMAT:
        raise CheckpointError(
            f"{run_dir} was written by an older robot_rl (run format {info.get('format', 1)}: online data in "
            f"episodes/*.npz or a learner checkpoint counted in gradient steps); this version resumes run format "
            f"{RUN_FORMAT} only. Its policy still works: `robot-rl eval --run-dir {run_dir}` or "
            f"`robot-rl export-policy --run-dir {run_dir}`. To keep training, start a new run (the old run's "
            f"demos can seed it: --demos {run_dir}/demos).")
    if info.get("mode") != mode:
        raise CheckpointError(f"{run_dir} is a `robot-rl {info.get('mode')}` run; resume it with "
                              f"`robot-rl {info.get('mode')} --resume {run_dir}`")
    saved = load_config(run_dir, type(cfg))
    if cfg.total_env_steps is not None and cfg.total_env_steps != saved.total_env_steps:
        saved.total_env_steps = cfg.total_env_steps
        save_config(run_dir, saved)  # the next --resume continues to the new total
    saved.progress, saved.resume = cfg.progress, cfg.resume
    for name in ("view", "view_target", "view_every_frames"):  # how to watch is this call's choice, not the run's
        if hasattr(cfg, name):
            setattr(saved, name, getattr(cfg, name))
    return saved, run_dir


def cfg_every(interval: int) -> bool:
    """True when an ``*_every_steps`` setting schedules anything (0: only at the end)."""
    return interval > 0


class ChunkInserter:
    """Writes transition chunks of any number of actors into the online and demo buffers.

    Each actor's episode is a run of consecutive rows while no other actor interleaves; when
    chunks of several actors alternate, the episode continues in a new segment that starts with
    the actor's last observation (one repeated row, no wrong ``s'``). Intervention steps also go
    to the demo buffer (HIL-SERL), as segments of consecutive intervention steps.

    Args:
        online: online buffer. demo: demo buffer (or None to skip interventions).
    """

    def __init__(self, online: ReplayBuffer, demo: ReplayBuffer | None) -> None:
        self.online, self.demo = online, demo
        self.open: dict[str, dict[str, Any]] = {}  # actor -> episode, next_t, last observation
        self.online_owner: tuple[str, int] | None = None
        self.demo_owner: tuple[str, int, int] | None = None  # actor, episode, next t
        self.stats: Counter[str] = Counter()

    def insert(self, c: TransitionChunk) -> None:
        """Add one validated chunk (chunks of one actor must arrive in ``seq`` order)."""
        n = len(c)
        if c.first:
            obs0 = (c.state[0], {k: v[0] for k, v in c.images.items()})
            nxt_state, nxt_images = c.state[1:], {k: v[1:] for k, v in c.images.items()}
            if c.actor in self.open:
                self.stats["episodes_cut"] += 1  # the actor restarted mid-episode
        else:
            st = self.open.get(c.actor)
            if st is None or st["episode"] != c.episode or st["next_t"] != c.t0:
                self.stats["orphan_chunks"] += 1  # its episode's start is unknown: cannot form s
                return
            obs0 = st["last"]
            nxt_state, nxt_images = c.state, c.images
        key = (c.actor, c.episode)
        if self.online_owner != key or c.first:  # a first chunk always starts anew (a restarted actor may reuse k)
            self.online.start_episode_split(*obs0)
            self.online_owner = key
        if c.first and self.demo_owner is not None and self.demo_owner[:2] == key:
            self.demo_owner = None
        self.online.add_steps(nxt_state, nxt_images, c.action, c.reward, c.terminated, c.intervention)
        if self.demo is not None and c.intervention.any():
            self._insert_interventions(c, obs0, nxt_state, nxt_images)
        self.stats["transitions"] += n
        self.stats["interventions"] += int(c.intervention.sum())
        if c.ends_episode:
            self.open.pop(c.actor, None)
            self.online.end_episode()
            self.online_owner = None
        else:
            self.open[c.actor] = {"episode": c.episode, "next_t": c.t0 + n,
                                  "last": (nxt_state[-1].copy(), {k: v[-1].copy() for k, v in nxt_images.items()})}

    def _insert_interventions(self, c: TransitionChunk, obs0, nxt_state, nxt_images) -> None:
        flags = np.asarray(c.intervention)
        i, n = 0, len(flags)
        while i < n:
            if not flags[i]:
                i += 1
                continue
            j = i
            while j < n and flags[j]:
                j += 1
            if self.demo_owner != (c.actor, c.episode, c.t0 + i):
                prev = obs0 if i == 0 else (nxt_state[i - 1], {k: v[i - 1] for k, v in nxt_images.items()})
                self.demo.start_episode_split(*prev)
            self.demo.add_steps(nxt_state[i:j], {k: v[i:j] for k, v in nxt_images.items()}, c.action[i:j],
                                c.reward[i:j], c.terminated[i:j], c.intervention[i:j])
            self.demo_owner = (c.actor, c.episode, c.t0 + j)
            i = j
        if c.ends_episode and self.demo_owner is not None and self.demo_owner[:2] == (c.actor, c.episode):
            self.demo.end_episode()
            self.demo_owner = None


def _trim_csv(path: Path, keep: Callable[[dict[str, str]], bool]) -> None:
    """Drop the rows of a CSV file for which ``keep(row)`` is false (header kept)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
        header = list(rows[0].keys()) if rows else None
    if header is None:
        return
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        w.writerows(r for r in rows if keep(r))


def _append_csv(path: Path, columns: tuple[str, ...], row: dict[str, Any]) -> None:
    """Append ``row`` under ``columns``; a file written earlier keeps its own header (a run resumed by
    a newer robot_rl, whose columns may differ, stays a well-formed CSV)."""
    if path.exists():
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        columns = tuple(header) if header else columns
        new = not header
    else:
        new = True
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(columns)
        w.writerow([row.get(c, "") for c in columns])


class Learner:
    """The learning core (see the module docstring): agent, buffers, schedule, checkpoints, metrics, resume.

    Args:
        cfg: the run's settings (already resolved by :func:`resolve_run` on ``--resume``).
        run_dir: the run directory when resuming, else None (a new one is made).
        mode: ``"train"`` (in memory: checkpoints hold ``actor_state``; on resume the replay log is
            cut back to the checkpoint) or ``"learner"`` (ZeroMQ: the log is kept whole, every
            logged transition was acknowledged to an actor that will not resend it).
        relabel: optional ``relabel(episode) -> (rewards, terminated)`` for the demos (a reward
            model's, see :func:`robot_rl.record.load_demo_buffer`).
        make_eval_env: ``make_eval_env(render: bool) -> gym.Env`` for evaluations; default
            :func:`robot_rl.envs.make_env` of the run's env.
        reward_model: the run's reward model, with ``reward_feedback.enabled`` retrained by the
            false-success loop (:mod:`robot_rl.rewards.feedback`) and updated in place.

    Attributes:
        policy: a :class:`~robot_rl.policies.policy.Policy` sharing the agent's networks (always current).
        restored: the checkpoint's state dict after a resume (``restored.get("actor")`` is the
            actor loop's state in train mode), else ``{}``.

    Raises:
        ConfigError: bad settings or env. CheckpointError: a broken run on resume.
    """

    def __init__(self, cfg: LearnConfig, run_dir: Path | None, mode: str, *,
                 relabel: Callable[[Any], tuple[np.ndarray, np.ndarray]] | None = None,
                 make_eval_env: Callable[[bool], Any] | None = None, reward_model: Any = None) -> None:
        if cfg.total_env_steps is None:  # built without resolve_run (a new run)
            cfg.total_env_steps = DEFAULT_TOTAL_ENV_STEPS.get(mode, 0)
        check_learn_config(cfg)
        if mode not in ("train", "learner"):
            raise ValueError(f"mode must be 'train' or 'learner', got {mode!r}")
        self.cfg, self.mode = cfg, mode
        self.threads = ThreadShare(cfg.torch_threads, mode)
        self.device = resolve_device(cfg.device)
        env = make_env(cfg.env, **parse_env_kwargs(cfg.env_kwargs))
        self.layout = ObsLayout.from_space(env.observation_space)
        self.scaler = ActionScaler.from_space(env.action_space)
        env.close()
        resumed = run_dir is not None
        if not resumed:
            run_dir = make_run_dir(cfg.runs_dir, cfg.env, cfg.exp_name, cfg.seed, cfg.run_dir)
            write_json_atomic(run_dir / RUN_FILE, {"format": RUN_FORMAT, "mode": mode})  # first: a run without it is an old one
            save_config(run_dir, cfg)
        self.run_dir = Path(run_dir)
        self._make_eval_env = make_eval_env or (lambda render: make_env(cfg.env, render=render,
                                                                        **parse_env_kwargs(cfg.env_kwargs)))
        self._eval_env = None
        self._last_eval_step, self._last_eval_seed, self._last_eval = -1, 0, {}
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.agent = SACAgent(self.layout.state_dim, self.layout.image_shapes, self.scaler.dim, cfg.agent, self.device,
                              base_action_index=self.layout.base_action_index)
        self.policy = Policy.from_modules(self.layout, self.scaler, self.agent.state_norm, self.agent.encoder,
                                          self.agent.actor, cfg.agent,
                                          metadata={"env": cfg.env, "env_kwargs": dict(cfg.env_kwargs)})
        self.online = ReplayBuffer(self.layout, self.scaler.dim, cfg.online_capacity)
        demo = load_demo_buffer(cfg.env, cfg.env_kwargs, cfg.demos, cfg.num_demos, self.run_dir, cfg.seed,
                                self.layout, self.scaler, cfg.intervention_capacity, cfg.progress, relabel=relabel)
        # no demos and no room for interventions: an empty buffer keeps the sampling code simple
        self.demo_buffer = demo if demo is not None else ReplayBuffer(self.layout, self.scaler.dim, 2)
        self.num_demo_transitions = len(self.demo_buffer)
        if (cfg.agent.normalize_state and self.layout.state_dim
                and len(self.demo_buffer.stored_states()) >= 2):  # demos only: interventions come later
            self.agent.state_norm.fit(torch.from_numpy(self.demo_buffer.stored_states()).to(self.device),
                                      identity_dims=self.layout.base_action_index or ())
        self.inserter = ChunkInserter(self.online, self.demo_buffer)
        # counted from the replay log (rebuilt on resume)
        self.received = self.episodes = self.intervention_steps = self.takeovers = self.log_records = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=20)  # stats of the last 20 episodes
        self.last_seq: dict[str, int] = {}
        # counted by the learner (saved in checkpoints); pretrain_updates: offline Cal-QL updates done
        self.updates = self.update_calls = self.evals = self.pretrain_updates = 0
        self.next_eval = cfg.eval_every_steps or math.inf  # 0: only the final evaluation
        self.next_checkpoint = cfg.checkpoint_every_steps or math.inf  # 0: only the final checkpoint
        self.log = SegmentLog(self.run_dir / "replay", fsync=cfg.fsync)
        self.feedback: FalseSuccessLoop | None = None
        if cfg.reward_feedback.enabled:
            if reward_model is None:
                raise ConfigError("--reward-feedback.enabled retrains the run's success classifier, but the run has none: "
                                  "use --reward classifier --reward-model-path DIR (robot-rl learner: "
                                  "--reward-feedback.model-path DIR)")
            self.feedback = FalseSuccessLoop(reward_model, self.run_dir, cfg.reward_feedback, cfg.seed)
        self.restored: dict[str, Any] = self._restore() if resumed else {}
        if resumed and self.feedback is not None:  # the checkpoint's version rewards what the log replays
            self.feedback.load_state_dict(self.restored.get("reward_feedback", {}))
        self._replay_log()
        if resumed and self.feedback is not None:  # demos were labelled when loaded, by the newest version
            self.feedback.relabel_buffer(self.demo_buffer)
        if self.restored and (self.log_records < int(self.restored["log_records"])
                              or self.received < int(self.restored["env_steps"])):
            raise CheckpointError(
                f"{self.run_dir}/replay holds {self.received} env steps in {self.log_records} records, fewer than the "
                f"checkpoint {self.restored['path']} saw ({self.restored['env_steps']} in {self.restored['log_records']}): "
                "the log lost data (a power loss without --fsync?). Start a new run (this run's demos can seed it).")
        if resumed and mode == "train":  # rows of steps after the checkpoint are logged again as the run repeats them
            _trim_csv(self.run_dir / "episodes.csv", lambda r: int(r["env_steps"]) <= self.received)
            _trim_csv(self.run_dir / "evals.csv", lambda r: int(r["env_steps"]) <= self.received)
        if resumed and self.phase == "pretrain":  # the pretrained policy's evaluation (env step 0) is made again
            _trim_csv(self.run_dir / "evals.csv", lambda r: False)
        from torch.utils.tensorboard import SummaryWriter

        # events after the restored step are dropped (they are logged again); those at it were logged before the save
        self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.received + 1 if resumed else None)
        if not resumed:
            self.tb.add_text("hyperparameters", "```\n" + json.dumps(to_jsonable(cfg), indent=2) + "\n```")
        # training time so far: a resumed run continues it, so evals.csv's wall_s counts the whole run
        self.t_start = time.perf_counter() - float(self.restored.get("wall_s", 0.0))
        self.session = os.urandom(8).hex()  # a restarted learner's versions start again from its checkpoint
        self._last_checkpoint_s = time.monotonic()
        self._rate = (time.perf_counter(), self.received, self.updates)

    # ------------------------------------------------------------------ persistence
    def _restore(self) -> dict[str, Any]:
        """Load the newest checkpoint; a run killed before its first one resumes with fresh networks."""
        if not (self.run_dir / "checkpoints" / "latest").is_file():
            tqdm.write(f"{self.mode}: {self.run_dir} has no checkpoint yet; resuming with fresh networks"
                       + (" and the logged data" if self.mode == "learner" else ""))
            return {}
        from robot_rl.runs import latest_checkpoint

        ckpt = latest_checkpoint(self.run_dir)  # an incomplete or unreadable one is an error, not a fresh start
        tensors, state = load_checkpoint(ckpt, map_location=self.device)
        if "log_records" not in state:
            raise CheckpointError(f"checkpoint {ckpt} was written by an older robot_rl; start a new run")
        self.agent.load_checkpoint_state(tensors["agent"])
        torch.set_rng_state(tensors["torch_rng"].cpu())
        if "cuda_rng" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(tensors["cuda_rng"])
        for k in ("updates", "update_calls", "evals"):
            setattr(self, k, int(state[k]))
        self.pretrain_updates = int(state.get("pretrain_updates", 0))
        self.next_eval = float(state["next_eval"]) if cfg_every(self.cfg.eval_every_steps) else math.inf
        self.next_checkpoint = (float(state["next_checkpoint"]) if cfg_every(self.cfg.checkpoint_every_steps)
                                else math.inf)
        self.rng.bit_generator.state = state["rng"]["numpy"]
        last = state.get("last_eval", {})
        self._last_eval_step, self._last_eval_seed = int(last.get("env_steps", -1)), int(last.get("seed", 0))
        self._last_eval = dict(last.get("result", {}))
        py = state["rng"]["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        state["path"] = str(ckpt)
        return state

    def _replay_log(self) -> None:
        """Rebuild the buffers and the data counters from the replay log. In train mode records
        after the checkpoint are moved aside first (the resumed run produces them again)."""
        if self.log.repaired_bytes:
            tqdm.write(f"{self.mode}: dropped a torn last record ({self.log.repaired_bytes} bytes) of the replay log: "
                       "it was never acknowledged" + (", its actor resends it" if self.mode == "learner" else ""))
        if self.mode == "train":
            keep = int(self.restored.get("log_records", 0))
            aside = self.log.cut(keep, self.run_dir / f"replay_after_step_{self.restored.get('env_steps', 0)}")
            if aside is not None:
                tqdm.write(f"train: the replay log held steps after the checkpoint; they were moved to {aside}")
        total = sum(s.stat().st_size for s in self.log.segments())
        if not total:
            return
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="replaying log", disable=not self.cfg.progress)
        layout = (self.layout.state_dim, self.layout.image_shapes, self.scaler.dim)
        for frames in self.log:
            try:
                chunk = TransitionChunk.from_message(decode(frames), *layout)
            except WireError as e:
                raise ConfigError(f"the replay log in {self.run_dir}/replay does not match {self.cfg.env} ({e})") from e
            self._insert(chunk)
            bar.update(sum(f.nbytes for f in frames))
        bar.close()

    def save(self, actor_state: dict[str, Any] | None = None) -> Path:
        """Checkpoint networks, optimisers, temperature, counters and RNG states (atomically).

        Args:
            actor_state: the in-memory actor loop's state (train mode, at an episode boundary).

        Returns:
            The checkpoint directory (``checkpoints/step_<env steps>``).
        """
        tensors = {"agent": self.agent.checkpoint_state(), "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            tensors["cuda_rng"] = torch.cuda.get_rng_state_all()
        py = random.getstate()
        state = {"env_steps": self.received, "episodes": self.episodes, "updates": self.updates,
                 "update_calls": self.update_calls, "evals": self.evals, "log_records": self.log_records,
                 "phase": self.phase, "pretrain_updates": self.pretrain_updates,
                 "next_eval": self.next_eval if math.isfinite(self.next_eval) else 1e18,
                 "next_checkpoint": self.next_checkpoint if math.isfinite(self.next_checkpoint) else 1e18,
                 "last_seq": dict(self.last_seq),
                 "wall_s": time.perf_counter() - self.t_start,  # training time so far, resumed runs continue it
                 "last_eval": {"env_steps": self._last_eval_step, "seed": self._last_eval_seed, "result": self._last_eval},
                 "rng": {"numpy": self.rng.bit_generator.state, "python": [py[0], list(py[1]), py[2]]}}
        if actor_state is not None:
            state["actor"] = actor_state
        if self.feedback is not None:
            state["reward_feedback"] = self.feedback.state_dict()
        self._last_checkpoint_s = time.monotonic()
        path = save_checkpoint(self.run_dir, self.received, tensors, state)
        write_json_atomic(self.run_dir / PHASE_FILE, {"phase": self.phase, "pretrain_updates": self.pretrain_updates,
                                                      "env_steps": self.received, "checkpoint": path.name})
        return path

    # ------------------------------------------------------------------ data
    def _insert(self, chunk: TransitionChunk) -> Any:
        """Buffers and data counters (env steps, episodes, interventions, per-actor seq) for one chunk;
        with the false-success loop, rewards of an older reward-model version are relabelled first
        and the chunk's operator label (a false or missed success; returned, else None) is taken."""
        label = None
        if self.feedback is not None:
            chunk = self.feedback.relabel_chunk(chunk)
            label = self.feedback.observe(chunk, self.received + len(chunk))
        self.inserter.insert(chunk)
        self.log_records += 1
        self.received += len(chunk)
        self.last_seq[chunk.actor] = max(self.last_seq.get(chunk.actor, 0), chunk.seq)
        stats = chunk.episode_stats
        if stats is not None:
            self.episodes += 1
            self.intervention_steps += int(stats.get("intervention_steps", 0))
            self.takeovers += int(stats.get("takeovers", 0))
            self.recent.append(stats)
        return label

    def ingest(self, chunk: TransitionChunk, logged: bool = False) -> None:
        """Take one chunk from an actor: append it to the replay log (unless the transport already
        did, ``logged``), insert it into the buffers, count it, and log its episode's stats.

        Args:
            chunk: a validated chunk with ``actor`` and ``seq`` set.
        """
        if not logged:
            self.log.append(encode(chunk.to_message()))
        label = self._insert(chunk)
        if label is not None:
            self.feedback.record(label)
            self.tb.add_scalar("reward_model/operator_labels", len(self.feedback.labels), self.received)
        if chunk.episode_stats is not None:
            self._log_episode(chunk.actor, chunk.episode, chunk.episode_stats)

    def _log_episode(self, actor: str, episode: int, stats: dict[str, Any]) -> None:
        """One row of ``episodes.csv`` and the episode's TensorBoard charts (x: env steps)."""
        row = {"wall_time": round(time.time(), 3), "actor": actor, "episode": episode, "env_steps": self.received,
               "updates": self.updates, **{k: int(v) if isinstance(v, bool) else v for k, v in stats.items()}}
        _append_csv(self.run_dir / "episodes.csv", EPISODE_COLUMNS, row)
        now = time.perf_counter()
        t0, steps0, updates0 = self._rate
        dt = max(now - t0, 1e-9)
        self._rate = (now, self.received, self.updates)
        for tag, v in (("charts/episodic_return", stats.get("return")), ("charts/episode_length", stats.get("length")),
                       ("charts/success", float(bool(stats.get("success")))),
                       ("charts/success_rate_20ep", self.success_rate_20()),
                       ("charts/intervention_rate", stats.get("intervention_rate")),
                       ("charts/max_contact_force_n", stats.get("max_force_n")),
                       ("charts/mean_contact_force_n", stats.get("mean_force_n")),
                       ("charts/intervention_steps_total", self.intervention_steps),
                       ("charts/takeovers_total", self.takeovers),
                       ("charts/env_steps_per_s", (self.received - steps0) / dt),
                       ("charts/updates_per_s", (self.updates - updates0) / dt), ("charts/updates", self.updates)):
            if isinstance(v, (int, float)):
                self.tb.add_scalar(tag, float(v), self.received)

    def success_rate_20(self) -> float:
        """Success rate of the last 20 training episodes (nan before the first)."""
        return float(np.mean([bool(s.get("success")) for s in self.recent])) if self.recent else float("nan")

    # ------------------------------------------------------------------ updates
    @property
    def phase(self) -> str:
        """``"pretrain"`` until ``pretrain.steps`` offline updates are done, then ``"wsrl_warmup"``
        for the first ``pretrain.wsrl_warmup_steps`` env steps (WSRL only), then ``"online"``."""
        p = self.cfg.pretrain
        if self.pretrain_updates < p.steps:
            return "pretrain"
        return "wsrl_warmup" if p.online == "wsrl" and p.steps and self.received < p.wsrl_warmup_steps else "online"

    @property
    def online_demo_fraction(self) -> float:
        """Fraction of each online batch drawn from the demo buffer: ``demo_fraction``, or 0 with WSRL
        (WSRL does not retain the offline data; intervention transitions still reach the online buffer
        as every transition does, so they are trained on, at their share of the online data)."""
        p = self.cfg.pretrain
        return 0.0 if p.online == "wsrl" and p.steps else self.cfg.demo_fraction

    def update_due(self) -> bool:
        """True while the schedule asks for another update: after ``learning_starts`` env steps
        (WSRL: and after its warm-up), ``update_ratio`` updates per env step (``update_ratio`` 0:
        always), once there is data; never while pretraining is unfinished."""
        cfg, p = self.cfg, self.cfg.pretrain
        starts = max(cfg.learning_starts, p.wsrl_warmup_steps if p.online == "wsrl" and p.steps else 0)
        if (self.received < starts or (self.received == 0 and self.num_demo_transitions == 0)
                or self.phase == "pretrain"):
            return False  # (no env step yet means no interventions either: nothing to sample)
        return cfg.update_ratio == 0 or self.update_calls < cfg.update_ratio * (self.received - starts)

    def sample_batch(self) -> Batch:
        """The next online-phase batch (``agent.utd_ratio * agent.batch_size`` transitions on the
        learner's device), ``online_demo_fraction`` of it from the demo buffer."""
        n = self.cfg.agent.batch_size * self.cfg.agent.utd_ratio
        return sample_mixed(self.online, self.demo_buffer, n, self.rng, self.online_demo_fraction).to(self.device)

    def update(self) -> dict[str, float]:
        """One agent update (``agent.utd_ratio`` gradient steps) on a batch drawn ``demo_fraction``
        from the demo buffer and the rest online (RLPD, Ball et al. 2023, arXiv:2302.02948; WSRL:
        online only, see :attr:`online_demo_fraction`).

        Returns:
            The agent's losses and values (see :meth:`robot_rl.agent.SACAgent.update`), also written
            to TensorBoard every ``log_every_updates`` updates at x = env steps.
        """
        cfg = self.cfg
        batch = self.sample_batch()
        self.updates += cfg.agent.utd_ratio
        self.update_calls += 1
        logs = self.agent.update(batch)
        if self.update_calls % cfg.log_every_updates == 0:
            for k, v in logs.items():
                self.tb.add_scalar(k, v, self.received)
        return logs

    def pretrain(self, should_stop: Callable[[], bool] | None = None) -> bool:
        """Run (or continue) the offline phase: ``pretrain.steps`` Cal-QL updates on the demo buffer.

        Each update is one :meth:`~robot_rl.agent.SACAgent.update` with the CQL / Cal-QL critic loss
        on ``agent.utd_ratio * agent.batch_size`` demo rows and their Monte-Carlo returns-to-go
        (:meth:`~robot_rl.replay.ReplayBuffer.return_to_go`, computed once from the demos). Losses go
        to ``tb/pretrain`` every ``log_every_updates`` updates, x = pretraining update; a checkpoint
        (at env step 0, recording the phase and update count) every
        ``pretrain.checkpoint_every_updates`` updates and after ``checkpoint_every_s`` seconds. At
        the end the pretrained policy is evaluated (the ``evals.csv`` row at env step 0; in learner
        mode only with ``eval_every_steps`` > 0, as the learner may not be able to run the env) and
        checkpointed; the online phase then starts with these networks. A resumed run continues at
        its checkpoint's update with the same RNG state; a finished pretraining returns at once.

        Args:
            should_stop: polled before every update; when it returns True the run checkpoints and
                this returns False (``robot-rl learner``'s SIGTERM).

        Without pretraining this only evaluates the starting policy when ``eval_at_start`` asks for it.

        Returns:
            True when pretraining is complete (or was not asked for), False when stopped.

        Raises:
            ConfigError: pretraining asked for but the demo buffer holds no transition.

        Sources: Nakamoto et al. 2023 (Cal-QL), arXiv:2303.05479; Yang et al. 2023 (RoboFuME),
        arXiv:2310.08558; Zhou et al. 2024 (WSRL), arXiv:2412.07762.
        """
        cfg, p = self.cfg, self.cfg.pretrain
        if self.pretrain_updates >= p.steps:
            if (not p.steps and cfg.eval_at_start and self.received == 0 and self.evals == 0
                    and (self.mode == "train" or cfg_every(cfg.eval_every_steps))):
                tqdm.write(f"{self.mode}: success rate at env step 0: "
                           f"{self.evaluate(cfg.eval_episodes)['success_rate']:.2f}")
            return True
        if self.num_demo_transitions == 0:
            raise ConfigError(f"--pretrain.steps {p.steps} pretrains on the demos, but the demo buffer is empty; "
                              "record demos (--num-demos N) or pass --demos DIR")
        from torch.utils.tensorboard import SummaryWriter

        rtg = self.demo_buffer.return_to_go(cfg.agent.gamma) if p.calibrated else None
        n = cfg.agent.batch_size * cfg.agent.utd_ratio
        tb = SummaryWriter(str(self.run_dir / "tb" / "pretrain"),
                           purge_step=self.pretrain_updates + 1 if self.pretrain_updates else None)
        bar = tqdm(total=p.steps, initial=self.pretrain_updates, desc="pretrain (Cal-QL)" if p.calibrated else
                   "pretrain (CQL)", unit="update", disable=not cfg.progress, dynamic_ncols=True)
        try:
            while self.pretrain_updates < p.steps:
                if should_stop is not None and should_stop():
                    self.save()
                    return False
                idx = self.demo_buffer.sample_indices(n, self.rng)
                mc_return = None if rtg is None else torch.from_numpy(rtg[idx]).to(self.device)
                logs = self.agent.update(self.demo_buffer.batch_at(idx).to(self.device), cql=p, mc_return=mc_return)
                self.pretrain_updates += 1
                bar.update(1)
                if self.pretrain_updates % cfg.log_every_updates == 0:
                    for k, v in logs.items():
                        tb.add_scalar(k, v, self.pretrain_updates)
                    bar.set_postfix(cql=f"{logs['losses/cql']:.3f}", q=f"{logs['values/q_mean']:.3f}", refresh=False)
                if self.pretrain_updates < p.steps and (
                        self.pretrain_updates % p.checkpoint_every_updates == 0
                        or time.monotonic() - self._last_checkpoint_s >= cfg.checkpoint_every_s):
                    self.save()
        finally:
            bar.close()
            tb.close()
        self.tb.add_scalar("charts/pretrain_updates", self.pretrain_updates, self.received)
        success = ""
        if self.mode == "train" or cfg_every(cfg.eval_every_steps):  # a learner evaluates only when it may run the env
            success = f"; evaluation success rate {self.evaluate(cfg.eval_episodes)['success_rate']:.2f}"
        tqdm.write(f"{self.mode}: pretrained for {self.pretrain_updates} updates{success}; online phase: {p.online}")
        self.save()
        return True

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, episodes: int, frames: list[np.ndarray] | None = None) -> dict[str, float]:
        """Evaluate the current deterministic policy and log a row of ``evals.csv``.

        Each evaluation's episodes reset with seeds of their own stream (independent of
        training), so evaluations are reproducible and resume does not depend on them.

        Returns:
            See :func:`robot_rl.evaluate.evaluate`.
        """
        from robot_rl.evaluate import evaluate

        self._eval_env_for(render=frames is not None)
        seed = int(np.random.SeedSequence([self.cfg.seed, EVAL_SEED_STREAM, self.evals]).generate_state(1)[0] >> 1)
        self._last_eval_seed = seed
        self.evals += 1
        self._last_eval_step = self.received
        result = self._last_eval = evaluate(self.policy, self._eval_env, episodes, frames=frames, seed=seed)
        row = {"env_steps": self.received, "episodes": self.episodes, "updates": self.updates,
               "wall_s": round(time.perf_counter() - self.t_start, 2), "intervention_steps": self.intervention_steps,
               **result}
        if self.feedback is not None:
            row["reward_model_version"] = self.feedback.version
        _append_csv(self.run_dir / "evals.csv", EVAL_COLUMNS, row)
        for k, v in result.items():
            self.tb.add_scalar(f"eval/{k}", v, self.received)
        return result

    def _eval_env_for(self, render: bool) -> None:
        """Make (or remake, to render) the evaluation env."""
        if self._eval_env is None or (render and getattr(self._eval_env, "render_mode", None) is None):
            if self._eval_env is not None:
                self._eval_env.close()
            self._eval_env = self._make_eval_env(render)

    def episode_boundary(self, actor_state: dict[str, Any] | None = None) -> dict[str, float] | None:
        """Call when an episode ended: evaluate and checkpoint when due (train mode: after that
        step's updates, and retrain the reward model when the false-success loop asks; learner
        mode: as the episode's last chunk arrives).

        Returns:
            The evaluation result when one ran, else None.
        """
        cfg = self.cfg
        self.threads.refresh()
        if self.mode == "train" and self.feedback is not None and self.feedback.due():
            self.retrain_reward_model()  # (a learner retrains once the received chunks are all in: _Server.run)
        result = None
        before_end = not cfg.total_env_steps or self.received < cfg.total_env_steps
        if self.received >= self.next_eval and before_end:
            result = self.evaluate(cfg.eval_episodes)
            while self.next_eval <= self.received:  # eval_every_steps > 0 here (else next_eval is inf)
                self.next_eval += cfg.eval_every_steps
        if before_end and (self.received >= self.next_checkpoint
                           or time.monotonic() - self._last_checkpoint_s >= cfg.checkpoint_every_s):
            self.save(actor_state)
            while self.next_checkpoint <= self.received:
                self.next_checkpoint += cfg.checkpoint_every_steps
        return result

    def retrain_reward_model(self) -> dict[str, Any]:
        """Retrain the success classifier on the false-success labels, swap the new version in, and
        relabel the online and demo buffers with it (:mod:`robot_rl.rewards.feedback`).

        Returns:
            The version's row of ``reward_versions.csv``.
        """
        fb = self.feedback
        row = fb.retrain(self.received)
        online, online_changed = fb.relabel_buffer(self.online)
        demo, demo_changed = fb.relabel_buffer(self.demo_buffer)
        row.update(relabelled=online + demo, rewards_changed=online_changed + demo_changed)
        fb.finish_version(row)
        for tag in ("version", "threshold", "labels_wrong", "rewards_changed", "val_precision", "val_recall"):
            self.tb.add_scalar(f"reward_model/{tag}", float(row[tag]), self.received)
        tqdm.write(f"{self.mode}: {describe(row)}")
        return row

    def finish(self, final_eval: bool, video: bool = False, actor_state: dict[str, Any] | None = None) -> dict[str, Any]:
        """Final evaluation (with ``video``: an mp4 of its first episode and the learning curve),
        final checkpoint, close the logs; returns the run's summary."""
        from robot_rl.evaluate import write_learning_curve, write_video

        summary: dict[str, Any] = {"run_dir": str(self.run_dir), "env_steps": self.received, "updates": self.updates,
                                   "episodes": self.episodes, "wall_s": round(time.perf_counter() - self.t_start, 1)}
        if self.cfg.pretrain.steps:
            summary.update(phase=self.phase, pretrain_updates=self.pretrain_updates)
        frames: list[np.ndarray] | None = [] if video else None
        if final_eval:
            if self._last_eval_step != self.received:
                self._last_eval = self.evaluate(self.cfg.eval_episodes, frames=frames)
            elif frames is not None:  # evaluated at this step already: record the video only (not logged)
                from robot_rl.evaluate import evaluate

                self._eval_env_for(render=True)
                evaluate(self.policy, self._eval_env, 1, frames=frames, seed=self._last_eval_seed)
            summary.update({f"eval_{k}": v for k, v in self._last_eval.items()})
        summary["checkpoint"] = str(self.save(actor_state))
        if self.intervention_steps or self.takeovers:
            summary.update(intervention_steps=self.intervention_steps, intervention_takeovers=self.takeovers)
        if frames:
            path = write_video(frames, self.run_dir / "eval" / "final_episode.mp4")
            if path is not None:
                summary["video"] = str(path)
        if (self.run_dir / "evals.csv").exists():
            summary["learning_curve"] = str(write_learning_curve(self.run_dir / "evals.csv",
                                                                 self.run_dir / "eval" / "learning_curve.png",
                                                                 title=self.cfg.env))
        return summary

    def close(self) -> None:
        """Close the replay log, TensorBoard and the evaluation env. Idempotent."""
        self.log.close()
        self.tb.close()
        self.threads.close()
        if self._eval_env is not None:
            self._eval_env.close()
            self._eval_env = None

    def policy_meta(self) -> dict[str, Any]:
        """What an actor needs to build the policy (sent with every parameter message): the
        policy's spec (:meth:`~robot_rl.policies.policy.Policy.spec`) and the env ID."""
        return {"policy": self.policy.spec(), "env": self.cfg.env, "learner_session": self.session}


# =============================================================================== ZeroMQ server
@dataclass
class LearnerConfig(LearnConfig):
    """Run the SAC/RLPD learner as a server for `robot-rl actor` processes (ZeroMQ)."""

    total_env_steps: int = 0
    """stop after receiving this many transitions (0: run until Ctrl-C / SIGTERM)."""
    eval_every_steps: int = 0
    """evaluate in the learner process (the env must run here: simulated envs) at the first episode end after every N env steps; 0: never."""
    exp_name: str = "learner"
    """experiment name, part of the run directory name."""
    host: str = "127.0.0.1"
    """address to bind; anything but loopback needs --curve-keys (or --insecure)."""
    port: int = 5555
    """transition port (actors connect here); parameters are published on port + 1."""
    curve_keys: Path | None = None
    """directory made by `robot-rl keys`: encrypt the link and accept only authorized actors."""
    insecure: bool = False
    """allow binding a non-loopback address without CURVE (trusted, isolated networks only)."""
    max_message_mb: float = 256.0
    """refuse messages larger than this (MiB)."""
    publish_every_updates: int = 20
    """publish the policy every N gradient steps."""
    publish_interval_s: float = 2.0
    """also publish at least this often (actors that join late, idle learner)."""


class _Server:
    """The ZeroMQ side of ``robot-rl learner``: receive chunks, train, publish, checkpoint."""

    def __init__(self, cfg: LearnerConfig) -> None:
        from robot_rl.transport.link import check_bind_host, curve_for_learner

        cfg, run_dir = resolve_run(cfg, "learner")
        check_bind_host(cfg.host, cfg.curve_keys is not None, cfg.insecure)
        require_at_least("--publish-every-updates", cfg.publish_every_updates, 1)
        if not 1 <= cfg.port <= 65534:
            raise ConfigError(f"--port must be in 1..65534 (parameters go out on --port + 1), got {cfg.port}")
        require_positive("--publish-interval-s", cfg.publish_interval_s)
        require_positive("--max-message-mb", cfg.max_message_mb)
        self.curve = curve_for_learner(cfg.curve_keys)
        self.cfg = cfg
        reward_model = None
        if cfg.reward_feedback.enabled:  # the learner retrains its actors' classifier and sends them each version
            from robot_rl.rewards.selection import build_reward_model, load_run_reward, save_run_reward

            reward_model = load_run_reward(run_dir) if run_dir is not None else None
            if reward_model is None:
                if cfg.reward_feedback.model_path is None:
                    raise ConfigError("--reward-feedback.enabled in `robot-rl learner` needs --reward-feedback.model-path "
                                      "DIR: the success classifier its actors reward with (their --reward-model-path)")
                reward_model = build_reward_model("classifier", cfg.reward_feedback.model_path, {})
            from robot_rl.rewards.feedback import base_training_settings

            base_training_settings(reward_model, cfg.reward_feedback)  # refused before the run directory exists
        self.learner = Learner(cfg, run_dir, "learner", reward_model=reward_model)
        if reward_model is not None and run_dir is None:
            save_run_reward(self.learner.run_dir, reward_model)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to finish (checkpoint and return); safe from signal handlers."""
        self._stop.set()

    def _write_status(self, receiver, publisher, t_start: float) -> None:
        lr = self.learner
        stats, last_errors, last_seq = receiver.snapshot()
        status = {"run_dir": str(lr.run_dir), "received_transitions": lr.received, "updates": lr.updates,
                  "update_calls": lr.update_calls, "torch_threads": lr.threads.threads,
                  "online_transitions": len(lr.online), "demo_transitions": len(lr.demo_buffer),
                  "demo_transitions_from_files": lr.num_demo_transitions,
                  "interventions": lr.inserter.stats["interventions"], "last_seq": last_seq,
                  "transport": stats, "last_errors": last_errors,
                  "inserter": dict(lr.inserter.stats), "params_published": publisher.published,
                  "wall_s": round(time.monotonic() - t_start, 2), "pid": os.getpid()}
        write_json_atomic(lr.run_dir / "status.json", status)

    def run(self) -> dict[str, Any]:
        import zmq

        from robot_rl.transport.link import ChunkReceiver, ParamsPublisher, start_authenticator, tcp_address

        cfg, lr = self.cfg, self.learner
        if not lr.pretrain(should_stop=self._stop.is_set):  # before serving: actors get the pretrained policy
            try:
                return lr.finish(final_eval=False)  # stopped while pretraining (checkpointed: --resume continues it)
            finally:
                lr.close()
        ctx = zmq.Context()
        auth = start_authenticator(ctx, self.curve[2]) if self.curve is not None else None
        source_file = lr.run_dir / REWARD_SOURCE_FILE
        receiver = ChunkReceiver(ctx, tcp_address(cfg.host, cfg.port),
                                 (lr.layout.state_dim, lr.layout.image_shapes, lr.scaler.dim), lr.log,
                                 dict(lr.last_seq), int(cfg.max_message_mb * 2**20), self.curve,
                                 reward_source=json.loads(source_file.read_text()) if source_file.is_file() else None,
                                 on_reward_source=lambda source: write_json_atomic(source_file, source))
        receiver.start_and_wait()
        try:
            publisher = ParamsPublisher(ctx, tcp_address(cfg.host, cfg.port + 1), self.curve)
        except Exception:
            receiver.stop()
            raise
        meta = lr.policy_meta()

        def publish() -> None:
            tensors, message_meta = {k: v.cpu() for k, v in lr.policy.params().items()}, meta
            if lr.feedback is not None:  # the current success classifier travels with the policy (actors swap it in)
                model = lr.feedback.model
                tensors.update({f"{REWARD_MODEL_PREFIX}{k}": v.cpu() for k, v in model.net.state_dict().items()})
                message_meta = {**meta, "reward_model": {"version": model.version, "threshold": model.threshold}}
            publisher.publish(tensors, lr.updates, message_meta)
            self._last_publish = (lr.updates, time.monotonic())

        t_start = last_status = time.monotonic()
        tqdm.write(f"learner: run {lr.run_dir}; actors connect to {tcp_address(cfg.host, cfg.port)} "
                   f"({'CURVE' if self.curve else 'plain'}); {lr.received} logged transitions, "
                   f"{lr.num_demo_transitions} demo transitions")
        bar = tqdm(total=cfg.total_env_steps or None, initial=lr.received, desc="learner", unit="step",
                   disable=not cfg.progress, dynamic_ncols=True)
        try:
            publish()
            while not self._stop.is_set():
                before = lr.received
                try:  # insert what arrived; wait briefly only when there is nothing to train on
                    block = not lr.update_due()
                    while True:
                        chunk = receiver.chunks.get(block=block, timeout=0.05)
                        lr.ingest(chunk, logged=True)
                        if chunk.ends_episode:  # evaluate / checkpoint at the episode's own step count
                            lr.episode_boundary()
                        block = False
                except queue.Empty:
                    pass
                bar.update(lr.received - before)
                if cfg.total_env_steps and lr.received >= cfg.total_env_steps:
                    break
                if lr.feedback is not None and lr.feedback.due():
                    lr.retrain_reward_model()
                    publish()  # the actors swap the new version in with the next parameters
                if lr.update_due():
                    lr.update()
                if time.monotonic() - lr._last_checkpoint_s >= cfg.checkpoint_every_s:
                    lr.save()  # long episodes: a checkpoint by time also between episode ends
                now = time.monotonic()
                if (lr.updates - self._last_publish[0] >= cfg.publish_every_updates
                        or now - self._last_publish[1] >= cfg.publish_interval_s):
                    publish()
                if now - last_status >= 1.0:
                    lr.threads.refresh()
                    self._write_status(receiver, publisher, t_start)
                    last_status = now
                    bar.set_postfix(updates=lr.updates, success=f"{lr.success_rate_20():.2f}",
                                    refused=receiver.snapshot()[0].get("rejected", 0), refresh=False)
        finally:
            bar.close()
            receiver.stop()
            while True:  # chunks accepted after the last pass are in the log; keep them in memory too
                try:
                    lr.ingest(receiver.chunks.get_nowait(), logged=True)
                except queue.Empty:
                    break
            summary = lr.finish(final_eval=cfg.eval_every_steps > 0)
            self._write_status(receiver, publisher, t_start)
            publisher.close()
            if auth is not None:
                auth.stop()
            ctx.destroy(linger=0)
            lr.close()
        stats = receiver.snapshot()[0]
        return {**summary, "received_transitions": lr.received, "refused_messages": stats.get("rejected", 0),
                "duplicates": stats.get("duplicates", 0)}


def run_learner(cfg: LearnerConfig) -> dict[str, Any]:
    """Build the learner, pretrain it when ``--pretrain.steps`` asks (:meth:`Learner.pretrain`; the
    actors then get the pretrained policy's parameters; run them with ``--random-steps 0``, or their
    first steps are uniform random instead of the pretrained policy), and serve actors until done;
    SIGTERM / SIGINT stop it cleanly (checkpoint first), during pretraining too.

    Raises:
        ConfigError: bad settings. TransportError: ports in use, CURVE keys missing, or a
        non-loopback host without CURVE. CheckpointError: ``--resume`` of a broken or old run.
    """
    server = _Server(cfg)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: server.stop())
    try:
        return server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
