"""``robot-rl train``: one process runs the env and the SAC/RLPD learner.

Loop per env step: act (uniform random for the first ``random_steps``, then the stochastic
policy), step the env, store the transition in the online buffer and in the run's episode files,
then ``agent.update`` on one batch of ``utd_ratio * batch_size`` transitions drawn
``demo_fraction`` from demos and the rest online (RLPD). At episode boundaries: evaluate every
``eval_every_steps`` and checkpoint every ``checkpoint_every_steps``. A checkpoint taken at an
episode boundary captures everything (networks, optimisers, temperature, counters, every RNG,
the online data via the episode files), so ``--resume`` continues exactly as if never stopped.

With ``--intervention scripted`` the training env is wrapped in
:class:`~robot_rl.intervention.InterventionWrapper` with the scripted corrector
(:class:`robot_rl.sim.corrector.ScriptedCorrector`) as the teleop: the executed action
(``info["action"]``, the corrector's while it steers) is what is stored, and intervention
transitions go to both the online and the demo buffer, tagged (HIL-SERL, Luo et al. 2024,
arXiv:2410.21845). Each contiguous run of intervention steps becomes one demo-buffer segment;
``--resume`` rebuilds those segments from the episode files' ``intervention`` flags in the same
order, so resuming stays exact. Evaluation never intervenes.

``--reward`` picks the reward source (:mod:`robot_rl.rewards.selection`): the env's own,
``sparse`` / ``dense`` (the sims' ``reward_type``), ``classifier`` / ``vlm`` (a reward model from
the camera frames through :class:`~robot_rl.rewards.base.RewardModelWrapper`, ending episodes on
the model's success; the model is saved with the run as ``reward.json`` (+ ``reward_model/``) and
rebuilt from there on ``--resume`` and by ``robot-rl eval``; demo rewards and terminations are
relabelled by the model too), or ``intervention`` (RLIF). With a
reward model ``evals.csv`` also has ``env_success_rate``: the env's privileged success, logged for
evaluation only.

Besides ``evals.csv`` (whose ``intervention_steps`` column counts the intervention steps of the
finished training episodes so far), the run directory gets ``episodes.csv``: one row per
finished training episode with its return, length, success and intervention steps, take-overs
and rate; TensorBoard gets ``charts/intervention_rate`` per episode.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from robot_rl.agent import SACAgent, SACConfig, resolve_device
from robot_rl.batch import Obs
from robot_rl.demos import Episode, EpisodeWriter, episode_files, load_episode
from robot_rl.envs import make_env, parse_env_kwargs
from robot_rl.errors import CheckpointError, ConfigError
from robot_rl.interfaces import Teleop
from robot_rl.intervention import InterventionWrapper, intervention_segments
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.replay import ReplayBuffer, sample_mixed
from robot_rl.runs import (latest_checkpoint, load_checkpoint, load_config, make_run_dir, save_checkpoint,
                           save_config, to_jsonable)
from robot_rl.rewards.selection import (MODEL_REWARDS, build_reward_model, check_reward_source, load_run_reward,
                                       relabel_episode, save_run_reward, wrap_with_reward)
from robot_rl.sim.corrector import CorrectorConfig

#: Offset of the scripted corrector's seed from ``TrainConfig.seed`` (its own RNG stream).
CORRECTOR_SEED_OFFSET = 20_000


@dataclass
class TrainConfig:
    """Train a SAC/RLPD policy on a gymnasium env in one process."""

    env: str = "robot_rl/PandaPickLift-v0"
    """gymnasium env ID; any env with a Box or Dict-of-Box observation and a Box action."""
    env_kwargs: dict[str, str] = field(default_factory=dict)
    """keyword arguments of the env, e.g. --env-kwargs reward_type dense image_size 96 (values parsed as JSON when they can be)."""
    seed: int = 1
    """seed of networks, replay sampling, env resets."""
    total_env_steps: int = 5_000
    """stop after this many env steps (on --resume: the larger of this and the saved value)."""
    num_demos: int = 20
    """scripted demos to record into the run when --demos is not given (0: train without demos)."""
    demos: Path | None = None
    """directory of demo episode files (robot-rl record-demos) to use instead of recording."""
    demo_fraction: float = 0.5
    """fraction of each batch drawn from the demo buffer (RLPD: 0.5)."""
    random_steps: int = 0
    """uniform random actions for the first N env steps (useful without demos)."""
    learning_starts: int = 0
    """env steps before the first gradient update (with demos updates can start at once)."""
    online_capacity: int = 100_000
    """online replay capacity in transitions."""
    intervention: str = "none"
    """who may take over during training: 'none', 'scripted' (the scripted corrector, simulated tasks only) or a teleop device (keyboard, gamepad, spacemouse); evaluation never intervenes."""
    corrector: CorrectorConfig = field(default_factory=CorrectorConfig)
    """scripted-corrector settings (with --intervention scripted)."""
    rlif_reward: bool = False
    """replace the task reward by RLIF's intervention reward: -1 at each take-over, else 0 (Luo et al. 2023, arXiv:2311.12996)."""
    reward: str = "env"
    """reward source: 'env' (the env's own), 'sparse' / 'dense' (robot_rl sims' reward_type), 'classifier' (a learned success classifier, --reward-model-path), 'vlm' (--reward-kwargs), 'intervention' (RLIF, as --rlif-reward). Model rewards end the episode on the model's success; the env's privileged success is only logged (env_success_rate)."""
    reward_model_path: Path | None = None
    """--reward classifier: directory written by `robot-rl train-reward-classifier` (copied into the run)."""
    reward_kwargs: dict[str, str] = field(default_factory=dict)
    """settings of the reward model, e.g. --reward-kwargs threshold 0.7 device cpu (values parsed as JSON when they can be)."""
    intervention_capacity: int = 50_000
    """demo-buffer rows added for intervention transitions (one per transition plus one per take-over); when full the oldest rows, demos first, are overwritten."""
    eval_every_steps: int = 500
    """evaluate (deterministic policy) at the first episode end after every N env steps; 0: only at the end."""
    eval_episodes: int = 10
    """episodes per evaluation."""
    stop_at_success: float = 0.0
    """stop early once an evaluation reaches this success rate (0: never stop early)."""
    checkpoint_every_steps: int = 1_000
    """checkpoint at the first episode end after every N env steps (and at the end)."""
    log_every_updates: int = 50
    """write losses to TensorBoard every N gradient updates."""
    runs_dir: Path = Path("runs")
    """parent directory of run directories."""
    exp_name: str = "sac"
    """experiment name, part of the run directory name."""
    run_dir: Path | None = None
    """explicit run directory (must not exist); default runs_dir/<env>__<exp>__<seed>__<time>."""
    resume: Path | None = None
    """continue the run in this directory from its latest checkpoint."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    torch_threads: int = 0
    """torch intra-op threads (0: torch's default)."""
    final_video: bool = True
    """write an mp4 of one evaluation episode and the learning-curve PNG at the end."""
    progress: bool = True
    """show a progress bar."""
    agent: SACConfig = field(default_factory=SACConfig)
    """learner settings."""


def _obs_tensor(layout: ObsLayout, obs: Any, device: torch.device) -> Obs:
    return Obs.single(*layout.split(obs), device=device)


def evaluate(agent: SACAgent, env, layout: ObsLayout, scaler: ActionScaler, episodes: int, device: torch.device,
             frames: list[np.ndarray] | None = None, seed: int | None = None) -> dict[str, float]:
    """Run ``episodes`` deterministic episodes.

    Args:
        frames: if given, ``env.render()`` frames of the first episode are appended to it.
        seed: seed of the first reset (None continues the env's RNG stream).

    Returns:
        ``success_rate`` (fraction of episodes with ``info['is_success']``), ``mean_return``,
        ``mean_length`` (steps); with a reward model (:mod:`robot_rl.rewards`) ``success_rate`` is
        the model's verdict and ``env_success_rate`` the env's own (privileged in sim) success
        (``info['env_is_success']``).
    """
    successes, returns, lengths, env_successes = [], [], [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed if ep == 0 else None)
        done, ret, length, success, env_success = False, 0.0, 0, False, None
        while not done:
            if frames is not None and ep == 0:
                frames.append(env.render())
            action = agent.act(_obs_tensor(layout, obs, device), deterministic=True)[0].cpu().numpy()
            obs, reward, terminated, truncated, info = env.step(scaler.to_env(action))
            ret += float(reward)
            length += 1
            success = success or bool(info.get("is_success", False))
            if "env_is_success" in info:
                env_success = bool(env_success) or bool(info["env_is_success"])
            done = terminated or truncated
        if frames is not None and ep == 0:
            frames.append(env.render())
        successes.append(success)
        if env_success is not None:
            env_successes.append(env_success)
        returns.append(ret)
        lengths.append(length)
    result = {"success_rate": float(np.mean(successes)), "mean_return": float(np.mean(returns)),
              "mean_length": float(np.mean(lengths))}
    if env_successes:
        result["env_success_rate"] = float(np.mean(env_successes))
    return result


def _episodes_to_buffer(buf: ReplayBuffer, episodes: list[Episode], scaler: ActionScaler) -> None:
    for ep in episodes:
        buf.add_episode(ep.observations, scaler.from_env(ep.actions), ep.rewards, ep.terminated, ep.intervention)


def _interventions_to_buffer(buf: ReplayBuffer, episodes: list[Episode], scaler: ActionScaler) -> None:
    """Add each intervention segment of ``episodes`` to ``buf`` as the training loop did online."""
    for ep in episodes:
        for start, stop in intervention_segments(ep.intervention):
            buf.start_episode(_index_tree(ep.observations, start))
            for t in range(start, stop):
                buf.add(scaler.from_env(ep.actions[t]), float(ep.rewards[t]), _index_tree(ep.observations, t + 1),
                        bool(ep.terminated[t]), True)
            buf.end_episode()


def _index_tree(tree: Any, t: int) -> Any:
    if isinstance(tree, dict):
        return {k: _index_tree(v, t) for k, v in tree.items()}
    return tree[t]


def make_teleop(cfg: TrainConfig, env) -> Teleop:
    """The teleop of ``cfg.intervention`` for the training ``env``: the scripted corrector with
    ``cfg.corrector``, or a human device from the teleop registry (:mod:`robot_rl.drivers.teleop`).

    Raises:
        ConfigError: an unknown name, or a scripted corrector for an env without a scripted controller.
        DeviceUnavailableError: a human device's SDK or hardware is missing.
    """
    if cfg.intervention == "scripted":
        from robot_rl.sim.corrector import ScriptedCorrector

        return ScriptedCorrector(env=env, config=cfg.corrector, seed=cfg.seed + CORRECTOR_SEED_OFFSET)
    from robot_rl.drivers.teleop import make_teleop as make_device

    return make_device(cfg.intervention)


def _rng_states(env, eval_env, rng: np.random.Generator) -> dict[str, Any]:
    return {"numpy": rng.bit_generator.state, "python": _jsonable_random_state(random.getstate()),
            "env": env.unwrapped.np_random.bit_generator.state,
            "eval_env": eval_env.unwrapped.np_random.bit_generator.state}


def _jsonable_random_state(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _set_generator_state(target_env, state: dict) -> None:
    gen = np.random.Generator(getattr(np.random, state["bit_generator"])())
    gen.bit_generator.state = state
    target_env.unwrapped.np_random = gen


class Trainer:
    """The one-process training loop (see the module docstring).

    Raises:
        ConfigError: bad settings (unknown env, impossible sizes).
        CheckpointError / RunDirectoryExistsError: see :mod:`robot_rl.runs`.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.resumed_from: Path | None = None
        if cfg.resume is not None:
            saved = load_config(cfg.resume, TrainConfig)
            ckpt = latest_checkpoint(cfg.resume)
            saved.total_env_steps = max(saved.total_env_steps, cfg.total_env_steps)
            saved.progress, saved.resume = cfg.progress, cfg.resume
            cfg, self.run_dir, self.resumed_from = saved, Path(cfg.resume), ckpt
        self.cfg = cfg
        if not 0.0 <= cfg.demo_fraction <= 1.0:
            raise ConfigError(f"--demo-fraction must be in [0, 1], got {cfg.demo_fraction}")
        if cfg.intervention != "none" and cfg.intervention_capacity < 2:
            raise ConfigError(f"--intervention-capacity must be >= 2 rows, got {cfg.intervention_capacity}")
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        self.device = resolve_device(cfg.device)
        if cfg.rlif_reward and cfg.intervention == "none":
            raise ConfigError("--rlif-reward rewards take-overs, so it needs --intervention (e.g. --intervention scripted)")
        if cfg.rlif_reward and cfg.reward not in ("env", "intervention"):
            raise ConfigError(f"--rlif-reward is --reward intervention; it cannot be combined with --reward {cfg.reward}")
        env_kwargs = check_reward_source(cfg.reward, parse_env_kwargs(cfg.env_kwargs), cfg.intervention,
                                         cfg.reward_model_path)
        # the reward model: rebuilt from the run on --resume, else from the flags (saved with the run below)
        self.reward_model = (load_run_reward(cfg.resume) if self.resumed_from is not None else
                             build_reward_model(cfg.reward, cfg.reward_model_path, parse_env_kwargs(cfg.reward_kwargs))
                             if cfg.reward in MODEL_REWARDS else None)
        self.env = wrap_with_reward(make_env(cfg.env, **env_kwargs), self.reward_model)
        self.teleop: Teleop | None = None
        if cfg.intervention != "none":
            self.teleop = make_teleop(cfg, self.env)
            self.env = InterventionWrapper(self.env, self.teleop,
                                           rlif_reward=cfg.rlif_reward or cfg.reward == "intervention")
        self.eval_env = wrap_with_reward(make_env(cfg.env, render=cfg.final_video, **env_kwargs), self.reward_model)
        self.layout = ObsLayout.from_space(self.env.observation_space)
        self.scaler = ActionScaler.from_space(self.env.action_space)
        if self.resumed_from is None:
            self.run_dir = make_run_dir(cfg.runs_dir, cfg.env, cfg.exp_name, cfg.seed, cfg.run_dir)
            save_config(self.run_dir, cfg)
            save_run_reward(self.run_dir, self.reward_model)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.agent = SACAgent(self.layout.state_dim, self.layout.image_shapes, self.scaler.dim, cfg.agent, self.device)
        self.online = ReplayBuffer(self.layout, self.scaler.dim, cfg.online_capacity)
        self.demo_buffer = self._load_demos()
        if (cfg.agent.normalize_state and self.demo_buffer is not None and self.layout.state_dim
                and len(self.demo_buffer.stored_states()) >= 2):  # not fitted on interventions (they come later)
            self.agent.state_norm.fit(torch.from_numpy(self.demo_buffer.stored_states()).to(self.device))
        self.writer = EpisodeWriter(self.run_dir / "episodes", meta={"env_id": cfg.env, "source": "policy"})
        self.env_steps = self.episodes = self.updates = 0
        self.next_eval = cfg.eval_every_steps or cfg.total_env_steps
        self.next_checkpoint = cfg.checkpoint_every_steps or cfg.total_env_steps
        self.recent_success: deque[float] = deque(maxlen=20)
        self.recent_return: deque[float] = deque(maxlen=20)
        self.recent_intervention: deque[float] = deque(maxlen=20)  # per-episode intervention rates
        self.intervention_steps = self.takeovers = 0  # totals over training
        self._demo_segment_open = False  # an intervention segment is being added to the demo buffer
        if self.resumed_from is not None:
            self._restore(self.resumed_from)
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.env_steps if self.resumed_from else None)
        if self.resumed_from is None:
            self.tb.add_text("hyperparameters", "```\n" + json.dumps(to_jsonable(cfg), indent=2) + "\n```")

    # ------------------------------------------------------------------ data
    def _load_demos(self) -> ReplayBuffer | None:
        from robot_rl.record import load_demo_buffer

        cfg = self.cfg
        return load_demo_buffer(cfg.env, cfg.env_kwargs, cfg.demos, cfg.num_demos, self.run_dir, cfg.seed, self.layout,
                                self.scaler, cfg.intervention_capacity if cfg.intervention != "none" else 0, cfg.progress,
                                relabel=None if self.reward_model is None else partial(relabel_episode, model=self.reward_model))

    # ------------------------------------------------------------ checkpoints
    def save(self) -> Path:
        """Checkpoint now (call at an episode boundary); returns the checkpoint directory."""
        tensors = {"agent": self.agent.checkpoint_state(), "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            tensors["cuda_rng"] = torch.cuda.get_rng_state_all()
        state = {"env_steps": self.env_steps, "episodes": self.episodes, "updates": self.updates,
                 "next_eval": self.next_eval, "next_checkpoint": self.next_checkpoint,
                 "recent_success": list(self.recent_success), "recent_return": list(self.recent_return),
                 "recent_intervention": list(self.recent_intervention),
                 "intervention_steps": self.intervention_steps, "takeovers": self.takeovers,
                 "rng": _rng_states(self.env, self.eval_env, self.rng)}
        if self.teleop is not None and hasattr(self.teleop, "state_dict"):
            state["teleop"] = self.teleop.state_dict()
        return save_checkpoint(self.run_dir, self.env_steps, tensors, state)

    def _restore(self, ckpt: Path) -> None:
        tensors, state = load_checkpoint(ckpt, map_location=self.device)
        self.agent.load_checkpoint_state(tensors["agent"])
        torch.set_rng_state(tensors["torch_rng"].cpu())
        if "cuda_rng" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(tensors["cuda_rng"])
        for k in ("env_steps", "episodes", "updates", "next_eval", "next_checkpoint"):
            setattr(self, k, int(state[k]))
        self.recent_success.extend(state["recent_success"])
        self.recent_return.extend(state["recent_return"])
        self.recent_intervention.extend(state.get("recent_intervention", []))
        self.intervention_steps, self.takeovers = int(state.get("intervention_steps", 0)), int(state.get("takeovers", 0))
        if "teleop" in state and self.teleop is not None and hasattr(self.teleop, "load_state_dict"):
            self.teleop.load_state_dict(state["teleop"])
        rng = state["rng"]
        self.rng.bit_generator.state = rng["numpy"]
        random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))
        _set_generator_state(self.env, rng["env"])
        _set_generator_state(self.eval_env, rng["eval_env"])
        # Online data: episodes written before the checkpoint are replayed into the buffer in
        # order; episodes the crashed run wrote after it are kept aside (never deleted).
        files = episode_files(self.run_dir / "episodes") if self.episodes else []
        if len(files) < self.episodes:
            raise CheckpointError(f"{self.run_dir}/episodes holds {len(files)} episodes but the checkpoint "
                                  f"counts {self.episodes}; the run directory is incomplete")
        later = files[self.episodes:]
        if later:
            aside = self.run_dir / f"episodes_after_step_{self.env_steps}_{time.strftime('%Y%m%d-%H%M%S')}"
            aside.mkdir()
            for f in later:
                shutil.move(str(f), aside / f.name)
        episodes = [load_episode(f) for f in files[: self.episodes]]
        _episodes_to_buffer(self.online, episodes, self.scaler)
        if self.teleop is not None:
            _interventions_to_buffer(self.demo_buffer, episodes, self.scaler)
        self.writer.next_index = self.episodes
        self._trim_episode_log()

    # ------------------------------------------------------------------- loop
    def _update(self) -> dict[str, float] | None:
        cfg = self.cfg
        if self.env_steps < cfg.learning_starts or (len(self.online) == 0 and self.demo_buffer is None):
            return None
        n = cfg.agent.batch_size * cfg.agent.utd_ratio
        batch = sample_mixed(self.online, self.demo_buffer, n, self.rng, cfg.demo_fraction).to(self.device)
        self.updates += cfg.agent.utd_ratio
        return self.agent.update(batch)

    def _log_eval(self, result: dict[str, float]) -> None:
        path = self.run_dir / "evals.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            extra = ["env_success_rate"] if self.reward_model is not None else []  # the privileged check, logged only
            if new:
                w.writerow(["env_steps", "episodes", "updates", "wall_s", "success_rate", "mean_return", "mean_length",
                            "intervention_steps", *extra])
            w.writerow([self.env_steps, self.episodes, self.updates, round(time.perf_counter() - self.t_start, 2),
                        result["success_rate"], result["mean_return"], result["mean_length"], self.intervention_steps,
                        *[result.get(k, "") for k in extra]])
        for k, v in result.items():
            self.tb.add_scalar(f"eval/{k}", v, self.env_steps)

    def _add_intervention(self, obs: Any, action: np.ndarray, reward: float, next_obs: Any, terminated: bool) -> None:
        """Add an intervention step (action in [-1, 1]) to the demo buffer (HIL-SERL), one segment per take-over."""
        if not self._demo_segment_open:
            self.demo_buffer.start_episode(obs)
            self._demo_segment_open = True
        self.demo_buffer.add(action, reward, next_obs, terminated, True)

    def _close_demo_segment(self) -> None:
        if self._demo_segment_open:
            self.demo_buffer.end_episode()
            self._demo_segment_open = False

    _EPISODE_COLUMNS = ("episode", "env_steps", "return", "length", "success", "intervention_steps",
                        "intervention_takeovers", "intervention_rate")

    def _log_episode(self, ep_return: float, ep_len: int, ep_success: bool, info: dict[str, Any]) -> None:
        """One row of ``episodes.csv`` and the episode's TensorBoard charts (intervention ones when wrapped)."""
        steps, takeovers = int(info.get("intervention_steps", 0)), int(info.get("intervention_takeovers", 0))
        rate = steps / max(ep_len, 1)
        self.intervention_steps += steps
        self.takeovers += takeovers
        path = self.run_dir / "episodes.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(self._EPISODE_COLUMNS)
            w.writerow([self.episodes, self.env_steps, round(ep_return, 4), ep_len, int(ep_success), steps, takeovers,
                        round(rate, 4)])
        if self.teleop is not None:
            self.recent_intervention.append(rate)
            for tag, v in (("charts/intervention_rate", rate), ("charts/intervention_steps", steps),
                           ("charts/intervention_takeovers", takeovers),
                           ("charts/intervention_steps_total", self.intervention_steps)):
                self.tb.add_scalar(tag, v, self.env_steps)

    def _trim_episode_log(self) -> None:
        """On resume: drop ``episodes.csv`` rows of episodes after the checkpoint (they are re-run)."""
        path = self.run_dir / "episodes.csv"
        if not path.exists():
            return
        rows = list(csv.reader(open(path)))
        kept = [rows[0]] + [r for r in rows[1:] if int(r[0]) < self.episodes]
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(kept)

    def run(self) -> dict[str, Any]:
        """Train until ``total_env_steps``; returns the final evaluation and where things are."""
        cfg = self.cfg
        self.t_start = time.perf_counter()
        bar = tqdm(total=cfg.total_env_steps, initial=self.env_steps, desc="train", unit="step",
                   disable=not cfg.progress, dynamic_ncols=True)
        obs, _ = self.env.reset(seed=cfg.seed if self.resumed_from is None else None)
        self.online.start_episode(obs)
        self.writer.start(obs)
        ep_return, ep_len, ep_success = 0.0, 0, False
        t_rate, steps_at_rate, updates_at_rate = time.perf_counter(), self.env_steps, self.updates
        last_eval: dict[str, float] | None = None
        while self.env_steps < cfg.total_env_steps:
            if self.env_steps < cfg.random_steps:
                action = self.rng.uniform(-1, 1, self.scaler.dim).astype(np.float32)
            else:
                action = self.agent.act(_obs_tensor(self.layout, obs, self.device), deterministic=False)[0].cpu().numpy()
            env_action = self.scaler.to_env(action)
            prev_obs = obs
            obs, reward, terminated, truncated, info = self.env.step(env_action)
            intervention = False
            if self.teleop is not None:  # store what was executed: the human's action while engaged
                env_action, intervention = np.asarray(info["action"], np.float32), bool(info["intervention"])
            action = self.scaler.from_env(env_action)  # what the buffer holds equals what a resume rebuilds
            success = bool(info.get("is_success", False))
            self.online.add(action, float(reward), obs, terminated, intervention)
            self.writer.step(env_action, float(reward), obs, terminated, truncated, intervention, success)
            if intervention:
                self._add_intervention(prev_obs, action, float(reward), obs, terminated)
            else:
                self._close_demo_segment()
            self.env_steps += 1
            ep_return += float(reward)
            ep_len += 1
            ep_success = ep_success or success
            metrics = self._update()
            if metrics is not None and (self.updates // cfg.agent.utd_ratio) % cfg.log_every_updates == 0:
                for k, v in metrics.items():
                    self.tb.add_scalar(k if "/" in k else f"losses/{k}", v, self.env_steps)
            bar.update(1)
            if not (terminated or truncated):
                continue
            # ---------------------------------------------------------- episode end
            self.online.end_episode()
            self._close_demo_segment()
            self.writer.finish(episode=self.episodes, success=ep_success)
            self._log_episode(ep_return, ep_len, ep_success, info)
            self.episodes += 1
            self.recent_success.append(float(ep_success))
            self.recent_return.append(ep_return)
            now = time.perf_counter()
            sps = (self.env_steps - steps_at_rate) / max(now - t_rate, 1e-9)
            ups = (self.updates - updates_at_rate) / max(now - t_rate, 1e-9)
            t_rate, steps_at_rate, updates_at_rate = now, self.env_steps, self.updates
            for tag, v in (("charts/episodic_return", ep_return), ("charts/episode_length", ep_len),
                           ("charts/success", float(ep_success)), ("charts/success_rate_20ep", np.mean(self.recent_success)),
                           ("charts/env_steps_per_s", sps), ("charts/updates_per_s", ups)):
                self.tb.add_scalar(tag, v, self.env_steps)
            postfix = {"ep": self.episodes, "succ20": f"{np.mean(self.recent_success):.2f}", "upd/s": f"{ups:.0f}"}
            if self.teleop is not None:
                postfix.update({"interv20": f"{np.mean(self.recent_intervention):.2f}", "interv_steps": self.intervention_steps,
                                "takeovers": self.takeovers})
            if self.env_steps >= self.next_eval and self.env_steps < cfg.total_env_steps:
                last_eval = evaluate(self.agent, self.eval_env, self.layout, self.scaler, cfg.eval_episodes, self.device)
                self._log_eval(last_eval)
                self.next_eval += cfg.eval_every_steps
                postfix["eval"] = f"{last_eval['success_rate']:.2f}"
            bar.set_postfix(postfix)
            if cfg.stop_at_success > 0 and last_eval is not None and last_eval["success_rate"] >= cfg.stop_at_success:
                ep_len = 0
                break
            if self.env_steps >= self.next_checkpoint and self.env_steps < cfg.total_env_steps:
                self.save()
                self.next_checkpoint += cfg.checkpoint_every_steps
            obs, _ = self.env.reset()
            self.online.start_episode(obs)
            self.writer.start(obs)
            ep_return, ep_len, ep_success = 0.0, 0, False
        bar.close()
        if ep_len:  # keep the partial last episode's data on disk too
            self.writer.finish(episode=self.episodes, success=ep_success, partial=True)
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Final evaluation (video + learning curve), checkpoint, and a summary dict."""
        from robot_rl.evaluate import write_learning_curve, write_video

        frames: list[np.ndarray] | None = [] if self.cfg.final_video else None
        result = evaluate(self.agent, self.eval_env, self.layout, self.scaler, self.cfg.eval_episodes, self.device,
                          frames=frames)
        self._log_eval(result)
        ckpt = self.save()
        self.tb.close()
        summary: dict[str, Any] = {"run_dir": str(self.run_dir), "checkpoint": str(ckpt), "env_steps": self.env_steps,
                                   "updates": self.updates, "wall_s": round(time.perf_counter() - self.t_start, 1),
                                   **{f"eval_{k}": v for k, v in result.items()}}
        if self.teleop is not None:
            summary.update(intervention_steps=self.intervention_steps, intervention_takeovers=self.takeovers)
        if frames:
            summary["video"] = str(write_video(frames, self.run_dir / "eval" / "final_episode.mp4"))
        summary["learning_curve"] = str(write_learning_curve(self.run_dir / "evals.csv", self.run_dir / "eval" / "learning_curve.png",
                                                              title=self.cfg.env))
        return summary

    def close(self) -> None:
        """Close both envs."""
        self.env.close()
        self.eval_env.close()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Build a :class:`Trainer`, run it, close it; returns the summary dict."""
    trainer = Trainer(cfg)
    try:
        return trainer.run()
    finally:
        trainer.close()


if __name__ == "__main__":  # `python -m robot_rl.train ...`: the same flags as `robot-rl train`
    import tyro

    for key, value in train(tyro.cli(TrainConfig)).items():
        print(f"{key}: {value}")
