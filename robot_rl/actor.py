"""The actor: one control loop for ``robot-rl train`` (in memory) and ``robot-rl actor`` (ZeroMQ).

:class:`ActorLoop` owns the acting side of a run: the env (with the reward model and the
intervention wrapper around it), the teleop device, uniform random actions for the first
``random_steps``, the episode statistics, and the cutting of steps into
:class:`~robot_rl.transport.messages.TransitionChunk` s. It acts with a deployable
:class:`~robot_rl.policies.policy.Policy`, never with the learner's agent: in ``robot-rl train``
the policy shares the learner's networks; in ``robot-rl actor`` (:func:`run_actor`) it is loaded
from the parameters the learner publishes.

In ``robot-rl actor`` the control loop never waits for the network: each step it takes the newest
parameters the learner published (if any arrived), acts, steps the env, and hands finished
chunks to :class:`~robot_rl.transport.link.ChunkSender`, which spools them to disk and sends them
without blocking. While the learner is away the actor keeps acting with its last parameters and
the spool grows; when the learner returns, the spool drains in order and the learner drops
duplicates. The newest parameters are also cached in the spool directory, so a restarted actor
can act before the learner answers.

With ``--teleop`` a human device (or the scripted corrector) can take over at any step
(:class:`~robot_rl.intervention.InterventionWrapper`); those steps are tagged, and the learner
puts them into its demo buffer as well (HIL-SERL, Luo et al. 2024, arXiv:2410.21845).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from robot_rl.envs import make_env, parse_env_kwargs
from robot_rl.errors import CheckpointError, ConfigError, ObservationLayoutError, TransportError
from robot_rl.interfaces import Teleop
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.policies.policy import Policy
from robot_rl.transport.messages import REWARD_MODEL_PREFIX, TransitionChunk
from robot_rl.validate import require_at_least, require_positive
from robot_rl.view import DEFAULT_VIEWER_URL, view_from_settings

#: Offset of the scripted corrector's seed from the run's seed (its own RNG stream).
CORRECTOR_SEED_OFFSET = 20_000
#: Offset of the uniform-random-action RNG's seed from the run's seed.
RANDOM_ACTION_SEED_OFFSET = 30_000


@dataclass
class ActorSettings:
    """What the acting side of a run needs, shared by `robot-rl train` and `robot-rl actor`."""

    env: str = "robot_rl/PandaPickLift-v0"
    """gymnasium env ID; any env with a Box or Dict-of-Box observation and a Box action (the learner's)."""
    env_kwargs: dict[str, str] = field(default_factory=dict)
    """keyword arguments of the env, e.g. --env-kwargs reward_type dense image_size 96 (values parsed as JSON when they can be)."""
    seed: int = 1
    """seed of env resets (episode k resets with seed + k), random actions and the scripted corrector (and, in `train`, of the learner)."""
    teleop: str = "none"
    """who may take over during training: none, scripted (the scripted corrector, simulated tasks only), keyboard, gamepad, spacemouse or ros; evaluation never intervenes."""
    teleop_kwargs: dict[str, str] = field(default_factory=dict)
    """settings of the teleop, e.g. --teleop-kwargs linear_speed_mps 0.1, or the scripted corrector's takeover_probability 0.7 max_takeover_steps 6 (values parsed as JSON when they can be)."""
    reward: str = "env"
    """reward source: 'env' (the env's own), 'sparse' / 'dense' (robot_rl sims' reward_type), 'classifier' (a learned success classifier, --reward-model-path), 'vlm' (--reward-kwargs), 'intervention' (RLIF: -1 at each take-over, else 0; needs --teleop). Model rewards end the episode on the model's success; the env's privileged success is only logged (env_success_rate). The actor computes the reward (it has the cameras)."""
    reward_model_path: Path | None = None
    """--reward classifier: directory written by `robot-rl train-reward-classifier` (copied into a train run)."""
    reward_kwargs: dict[str, str] = field(default_factory=dict)
    """settings of the reward model, e.g. --reward-kwargs threshold 0.7 device cpu (values parsed as JSON when they can be)."""
    false_success_window_s: float = 2.0
    """with a reward model and a human teleop: after the model ends an episode on success, wait this long (s) for the teleop's failure button, which marks a false success (a negative label for the classifier, robot_rl.rewards.feedback); 0: only a press at that step counts. The scripted corrector answers at once from the privileged check."""
    random_steps: int = 0
    """uniform random actions for the first N env steps (useful without demos)."""
    chunk_steps: int = 10
    """hand steps to the learner in chunks of this many (and at every episode end)."""
    view: bool = False
    """stream what the actor sees and does to Rerun (pip install -e .[view]): cameras, EE trajectory, action (policy vs human), reward, Q (train only), intervention, episode return/success; see robot_rl.view."""
    view_target: str = DEFAULT_VIEWER_URL
    """where --view streams: a Rerun viewer's gRPC URL (start `rerun`, or `rerun --serve-web --bind 127.0.0.1` for a browser) or a file path ending in .rrd (open it later with `rerun <file>`)."""
    view_every_frames: int = 1
    """with --view, log camera images of every N-th step only (images cost most of the view's time; scalars are logged every step)."""


def check_actor_settings(s: ActorSettings) -> dict[str, Any]:
    """Validate the acting settings; returns the env kwargs they imply.

    Raises:
        ConfigError: a bad count, an unknown reward source, or a reward that needs what is missing.
    """
    from robot_rl.rewards.selection import check_reward_source

    require_at_least("--chunk-steps", s.chunk_steps, 1)
    require_at_least("--random-steps", s.random_steps, 0)
    require_at_least("--seed", s.seed, 0)
    require_at_least("--view-every-frames", s.view_every_frames, 1)
    require_at_least("--false-success-window-s", s.false_success_window_s, 0.0, "0: only a press at that step counts")
    if s.view:
        from robot_rl.view import check_view_target, import_rerun

        check_view_target(s.view_target)
        import_rerun()
    if s.random_steps and "base_policy" in s.env_kwargs:
        raise ConfigError(f"--random-steps {s.random_steps} would replace the base policy's actions by uniform "
                          "random ones in a residual-RL env (--env-kwargs base_policy ...); pass --random-steps 0 "
                          "(the residual actor explores around the base action)")
    return check_reward_source(s.reward, parse_env_kwargs(s.env_kwargs), s.teleop, s.reward_model_path)


def reward_source(s: ActorSettings) -> dict[str, Any]:
    """The reward source declared on every chunk (the learner keeps one source per replay)."""
    return {"reward": s.reward, "reward_model_path": str(s.reward_model_path) if s.reward_model_path else None,
            "reward_kwargs": dict(s.reward_kwargs)}


def make_teleop(name: str, kwargs: dict[str, str], env: gym.Env, seed: int) -> Teleop:
    """The teleop ``name`` from the registry (:mod:`robot_rl.drivers.teleop`) with ``kwargs``; the
    scripted corrector also gets the env (its privileged state) and the seed ``seed + CORRECTOR_SEED_OFFSET``.

    Raises:
        ConfigError: an unknown name or setting, or a scripted corrector for an env without a scripted controller.
        DeviceUnavailableError: a human device's SDK or hardware is missing.
    """
    from robot_rl.drivers.teleop import make_teleop as make_device

    settings = parse_env_kwargs(kwargs)
    if name == "scripted":
        settings = {"env": env, "seed": seed + CORRECTOR_SEED_OFFSET, **settings}
    return make_device(name, **settings)


def build_actor_env(s: ActorSettings, reward_model: Any = None) -> tuple[gym.Env, Teleop | None]:
    """The env an actor runs: ``make_env`` with the reward's env kwargs, the reward model's wrapper,
    and the intervention wrapper when ``s.teleop`` is not ``none``.

    Returns:
        ``(env, teleop)``; teleop is None without ``--teleop``.

    Raises:
        ConfigError: bad acting settings, an unknown env or teleop (see :func:`check_actor_settings`,
            :func:`make_teleop`). DeviceUnavailableError: a human teleop device or its SDK is missing.
    """
    from robot_rl.rewards.selection import wrap_with_reward

    env = wrap_with_reward(make_env(s.env, **check_actor_settings(s)), reward_model)
    if s.teleop == "none":
        return env, None
    from robot_rl.intervention import InterventionWrapper

    teleop = make_teleop(s.teleop, s.teleop_kwargs, env, s.seed)
    window = s.false_success_window_s if reward_model is not None else 0.0
    return InterventionWrapper(env, teleop, rlif_reward=s.reward == "intervention",
                               false_success_window_s=window), teleop


class ChunkBuilder:
    """Collects the steps of the current episode into :class:`TransitionChunk` s.

    Args:
        layout: the observation layout (how observations split into state and images).
        reward_source: the actor's reward settings, set on every chunk (the learner checks them).
    """

    def __init__(self, layout: ObsLayout, reward_source: dict[str, Any] | None = None) -> None:
        self.layout, self.reward_source = layout, reward_source
        self.reset_obs: tuple[np.ndarray, dict[str, np.ndarray]] | None = None
        self.rows: list[tuple] = []
        self.episode = 0
        self.t = 0  # index in the episode of the next step

    def start(self, state: np.ndarray, images: dict[str, np.ndarray], episode: int) -> None:
        """Begin an episode with its reset observation, split by the layout (state (S,) float32,
        images camera -> (H, W, 3) uint8)."""
        self.reset_obs = (state, images)
        self.rows, self.episode, self.t = [], episode, 0

    def step(self, state: np.ndarray, images: dict[str, np.ndarray], action: np.ndarray, reward: float,
             terminated: bool, truncated: bool, intervention: bool, step_id: int, reward_version: int = -1) -> None:
        """Record one step: the next observation split as in :meth:`start`, the executed ``action``
        (A,) float32 in [-1, 1], reward, flags, the actor's running step ID and the version of the
        reward model that gave the reward (-1: no reward model)."""
        self.rows.append((state, images, action, reward, terminated, truncated, intervention, step_id, reward_version))

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, episode_stats: dict[str, Any] | None = None) -> TransitionChunk:
        """The collected steps as a chunk (``actor`` / ``seq`` are set by the transport)."""
        rows, first = self.rows, self.t == 0
        states = [r[0] for r in rows]
        images = {k: [r[1][k] for r in rows] for k in self.layout.image_shapes}
        if first:
            states.insert(0, self.reset_obs[0])
            for k in images:
                images[k].insert(0, self.reset_obs[1][k])
        chunk = TransitionChunk(
            actor="", seq=0, episode=self.episode, t0=self.t, first=first,
            state=np.stack(states).astype(np.float32), images={k: np.stack(v) for k, v in images.items()},
            action=np.stack([r[2] for r in rows]).astype(np.float32),
            reward=np.array([r[3] for r in rows], np.float32), terminated=np.array([r[4] for r in rows], bool),
            truncated=np.array([r[5] for r in rows], bool), intervention=np.array([r[6] for r in rows], bool),
            step_id=np.array([r[7] for r in rows], np.int64), episode_stats=episode_stats,
            reward_source=self.reward_source,
            reward_version=np.array([r[8] for r in rows], np.int32) if rows[0][8] >= 0 else None)
        self.t += len(rows)
        self.rows = []
        return chunk


def episode_force_stats(forces_n: list[float]) -> dict[str, float]:
    """``max_force_n`` and ``mean_force_n``: the largest and the mean per-step contact force
    magnitude of an episode (N, the env's ``info["ee_force_n"]``: the wrist F/T reading at the end
    of each step), rounded to mN; empty when the env reports no force (the CSV cells stay blank)."""
    if not forces_n:
        return {}
    return {"max_force_n": round(max(forces_n), 3), "mean_force_n": round(sum(forces_n) / len(forces_n), 3)}


class ActorLoop:
    """The control loop of one actor: reset, act, step, record; one :meth:`step` per env step.

    Episode ``k`` resets the env with seed ``seed + k``. The first ``random_steps`` steps (counted
    by ``step_id``, which survives actor restarts) act uniformly at random from an RNG of their own.
    The executed action (the human's while a teleop intervenes) is what is recorded, in the
    learner's [-1, 1] units.

    Args:
        env: the env, already wrapped (:func:`build_actor_env`).
        settings: the run's acting settings.
        teleop: the env's teleop (its RNG state is part of :meth:`state_dict`), or None.
        episode / step_id: where this actor's counters start (a restarted actor continues them).

    Attributes:
        episode: the current (or next) episode number. step_id: the next step's ID.
        last_stats: the statistics of the last finished episode (``return``, ``length``,
            ``success``, ``intervention_steps``, ``takeovers``, ``intervention_rate``,
            ``params_version``; ``env_success`` with a reward model, ``false_success`` when the
            operator marked its success false, ``missed_success`` when they marked a success it missed; ``max_force_n`` and
            ``mean_force_n`` when the env reports ``info["ee_force_n"]``).
        view: the :class:`~robot_rl.view.LiveView` of ``--view`` (None without): each step logs the
            observation acted on, the executed action and who executed it, reward, success and
            intervention; each episode end its return, success and intervention rate. Off, the loop
            is unchanged; on, it uses no RNG, so the run's data are the same.
        q_value: ``f(state, images, action) -> float`` logged as the view's Q of the executed action,
            set where a critic is in this process (``robot-rl train``:
            :func:`robot_rl.view.critic_q_value` of the learner's agent); None logs no Q.
    """

    def __init__(self, env: gym.Env, settings: ActorSettings, teleop: Teleop | None = None,
                 episode: int = 0, step_id: int = 0) -> None:
        self.env, self.settings, self.teleop = env, settings, teleop
        self.layout = ObsLayout.from_space(env.observation_space)
        self.scaler = ActionScaler.from_space(env.action_space)
        self.builder = ChunkBuilder(self.layout, reward_source(settings))
        self.episode, self.step_id = episode, step_id
        self.rng = np.random.default_rng(settings.seed + RANDOM_ACTION_SEED_OFFSET)
        self.split: tuple[np.ndarray, dict[str, np.ndarray]] | None = None  # None: reset before the next step
        self.last_stats: dict[str, Any] | None = None
        self._stats: dict[str, Any] = {}
        self._force_n: list[float] = []
        self.view = view_from_settings(settings, env, list(self.layout.image_shapes))
        self.q_value: Any = None

    def _split(self, obs: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Split an observation; images are copied (a camera driver may reuse its frame buffer
        while earlier steps still wait in the chunk)."""
        state, images = self.layout.split(obs)
        return state, {k: np.array(v, copy=True) for k, v in images.items()}

    def _reset(self) -> None:
        obs, _ = self.env.reset(seed=self.settings.seed + self.episode)
        self.split = self._split(obs)
        self.builder.start(*self.split, self.episode)
        self._stats = {"return": 0.0, "length": 0, "success": False, "intervention_steps": 0, "takeovers": 0}
        self._force_n: list[float] = []  # info["ee_force_n"] of each step (envs with a wrist F/T reading)

    def step(self, policy: Policy | None, deterministic: bool = False, params_version: int = -1
             ) -> tuple[TransitionChunk | None, bool]:
        """Act once (resetting first when the last episode ended).

        Args:
            policy: the policy (may be None during ``random_steps``).
            deterministic: act with the policy mean.
            params_version: recorded in the episode stats (the learner's update count).

        Returns:
            ``(chunk, done)``: a finished chunk (``chunk_steps`` steps, or the episode's last
            steps) or None, and whether this step ended the episode.
        """
        if self.split is None:
            self._reset()
        if self.step_id < self.settings.random_steps:
            action = self.rng.uniform(-1, 1, self.scaler.dim).astype(np.float32)
        else:
            action = policy.act_normalized(*self.split, deterministic=deterministic)
        env_action = self.scaler.to_env(action)
        seen = self.split
        obs, reward, terminated, truncated, info = self.env.step(env_action)
        self.split = self._split(obs)
        executed = self.scaler.from_env(info.get("action", env_action))  # what a human executed, if engaged
        intervention = bool(info.get("intervention", False))
        self.builder.step(*self.split, executed, float(reward), bool(terminated), bool(truncated), intervention,
                          self.step_id, int(info.get("reward_model_version", -1)))
        if self.view is not None:
            self.view.log_step(self.step_id, seen[1], executed, intervention, float(reward), seen[0],
                               info.get("is_success"), info.get("success_probability"),
                               None if self.q_value is None else self.q_value(*seen, executed), self.episode)
        self.step_id += 1
        st = self._stats
        st["return"] += float(reward)
        st["length"] += 1
        st["success"] = st["success"] or bool(info.get("is_success", False))
        if "env_is_success" in info:  # with a reward model: the env's privileged success, logged only
            st["env_success"] = bool(st.get("env_success", False)) or bool(info["env_is_success"])
        if info.get("false_success"):  # the operator marked the reward model's success false
            st["false_success"] = True
        if info.get("missed_success"):  # ... or marked a success the reward model missed
            st["missed_success"] = True
        st["intervention_steps"] += intervention
        st["takeovers"] += bool(info.get("takeover", False))
        if "ee_force_n" in info:
            self._force_n.append(float(info["ee_force_n"]))
        done = bool(terminated or truncated)
        chunk = None
        if done:
            self.last_stats = {**st, "return": round(st["return"], 6),
                               "intervention_rate": st["intervention_steps"] / max(st["length"], 1),
                               "params_version": params_version, **episode_force_stats(self._force_n)}
            chunk = self.builder.take(self.last_stats)
            if self.view is not None:
                self.view.log_episode(self.step_id - 1, self.episode, self.last_stats["return"],
                                      self.last_stats["success"], self.last_stats["intervention_rate"])
            self.episode += 1
            self.split = None
        elif len(self.builder) >= self.settings.chunk_steps:
            chunk = self.builder.take()
        return chunk, done

    def take_partial(self) -> TransitionChunk | None:
        """The steps of an unfinished episode not yet handed over (at shutdown), or None."""
        return self.builder.take() if len(self.builder) else None

    def close(self) -> None:
        """Close the view (``--view``); the env is its owner's to close."""
        if self.view is not None:
            self.view.close()

    def abandon_episode(self) -> None:
        """Give up the current episode (at shutdown, after :meth:`take_partial`): the next step resets."""
        if self.split is not None:
            self.episode += 1
            self.split = None

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state for an exact resume; valid between episodes only.

        Raises:
            RuntimeError: called in the middle of an episode.
        """
        if self.split is not None:
            raise RuntimeError("ActorLoop.state_dict() is only valid between episodes")
        state: dict[str, Any] = {"episode": self.episode, "step_id": self.step_id, "rng": self.rng.bit_generator.state}
        if self.teleop is not None and hasattr(self.teleop, "state_dict"):
            state["teleop"] = self.teleop.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.episode, self.step_id = int(state["episode"]), int(state["step_id"])
        self.rng.bit_generator.state = state["rng"]
        if "teleop" in state and self.teleop is not None and hasattr(self.teleop, "load_state_dict"):
            self.teleop.load_state_dict(state["teleop"])
        self.split = None


# =============================================================================== ZeroMQ actor
@dataclass
class ActorConfig(ActorSettings):
    """Run the policy in an env and stream transitions to a `robot-rl learner` (ZeroMQ)."""

    learner: str = "127.0.0.1"
    """host name or address of the learner."""
    port: int = 5555
    """the learner's transition port (parameters come from port + 1)."""
    actor_id: str = "actor0"
    """unique name of this actor (the learner de-duplicates per actor; CURVE key <actor_id>.key_secret)."""
    curve_keys: Path | None = None
    """directory with learner.key and <actor_id>.key_secret (from `robot-rl keys`)."""
    spool_dir: Path | None = None
    """where unacknowledged chunks wait on disk; default spool/<actor_id>."""
    total_env_steps: int = 0
    """stop after this many env steps (0: run until Ctrl-C / SIGTERM)."""
    deterministic: bool = False
    """act with the policy mean instead of sampling (evaluation)."""
    params_timeout_s: float = 120.0
    """give up when no parameters arrive within this long and none are cached."""
    ack_timeout_s: float = 5.0
    """resend unacknowledged chunks after this long."""
    window: int = 16
    """chunks in flight without acknowledgement."""
    drain_timeout_s: float = 60.0
    """at exit, wait this long for the learner to acknowledge the spool (what remains is sent next time)."""
    fsync: bool = False
    """fsync each spooled chunk (survives power loss of this PC)."""
    realtime: bool = False
    """pace the loop at the env's control rate (simulated envs run as fast as they can otherwise)."""
    max_message_mb: float = 256.0
    """refuse parameter messages larger than this (MiB)."""
    device: str = "cpu"
    """where the policy runs: 'cpu', 'cuda', ... ('auto' picks a GPU when present)."""
    torch_threads: int = 1
    """torch intra-op threads (claimed from this machine's cores, so a learner here leaves them free); 0: a share split with the other robot_rl processes running here (robot_rl.threads)."""
    progress: bool = True
    """show a progress bar."""


class PolicyHolder:
    """The actor's :class:`~robot_rl.policies.policy.Policy`, built from the learner's parameter
    meta on first use and updated when newer parameters arrive; caches them in ``cache_dir``.

    Args:
        env: the actor's env (its spaces are checked against the learner's policy).
        device: where the policy runs.
        cache_dir: where the newest parameters are cached (the spool directory).
        reward_model: the actor's success classifier; a parameter message carrying a newer version of
            it (a learner with ``--reward-feedback.enabled``) is swapped into it.
    """

    def __init__(self, env: gym.Env, device: torch.device, cache_dir: Path, reward_model: Any = None) -> None:
        self.env, self.device, self.cache_dir = env, device, cache_dir
        self.reward_model = reward_model
        self.policy: Policy | None = None
        self.version = -1
        self.session: str | None = None  # the learner process the parameters came from
        self.latencies: list[float] = []
        self._last_cache_write = 0.0

    def load(self, p: Any, cache: bool = True) -> None:
        """Build the policy on first use, then load ``p`` (a ``ReceivedParams``; newer versions only).

        Raises:
            TransportError: the learner's observation/action layout differs from this env's.
        """
        tensors = {k: v for k, v in p.tensors.items() if not k.startswith(REWARD_MODEL_PREFIX)}
        if self.policy is None:
            try:
                policy = Policy.from_spec(p.meta.get("policy"), tensors, self.device)
                policy.check_env(self.env.observation_space, self.env.action_space)
            except (CheckpointError, ObservationLayoutError) as e:
                raise TransportError(f"{e} (learner env {p.meta.get('env')}): start actor and learner with the same "
                                     "--env and --env-kwargs") from e
            self.policy = policy
        session = p.meta.get("learner_session")
        if p.version < self.version and session == self.session:
            return  # an older message of the same learner process
        self.session = session
        self.policy.load_params({k: v.to(self.device) for k, v in tensors.items()})
        self._load_reward_model(p)
        self.version = p.version
        if np.isfinite(p.latency_s):
            self.latencies.append(p.latency_s)
        if cache and time.monotonic() - self._last_cache_write > 5.0:
            self._write_cache(p)

    def _load_reward_model(self, p: Any) -> None:
        """Swap in the success classifier version a parameter message carries, when newer than ours.

        Raises:
            TransportError: the learner's classifier does not fit this actor's (another architecture).
        """
        info, model = p.meta.get("reward_model"), self.reward_model
        if not isinstance(info, dict) or model is None or int(info.get("version", 0)) == model.version:
            return
        state = {k[len(REWARD_MODEL_PREFIX):]: v for k, v in p.tensors.items() if k.startswith(REWARD_MODEL_PREFIX)}
        try:
            model.net.load_state_dict(state)
        except (RuntimeError, AttributeError) as e:
            raise TransportError(f"the learner's success classifier (version {info.get('version')}) does not fit this "
                                 f"actor's ({e}); start the actor with the --reward-model-path the learner's "
                                 "--reward-feedback.model-path names") from e
        model.net.eval()
        model.settings.threshold = float(info["threshold"])
        model.version = int(info["version"])
        tqdm.write(f"actor: reward model version {model.version} swapped in (threshold {model.threshold:.3f})")

    def _write_cache(self, p: Any) -> None:
        from safetensors.torch import save_file

        tmp = self.cache_dir / "params.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in p.tensors.items()}, str(tmp))
        os.replace(tmp, self.cache_dir / "params.safetensors")
        meta_tmp = self.cache_dir / "params.json.tmp"
        meta_tmp.write_text(json.dumps({"version": p.version, "meta": p.meta}))
        os.replace(meta_tmp, self.cache_dir / "params.json")
        self._last_cache_write = time.monotonic()

    def load_cache(self) -> bool:
        """Load the cached parameters of an earlier run of this actor; True when there were some."""
        from robot_rl.transport.link import ReceivedParams

        f, m = self.cache_dir / "params.safetensors", self.cache_dir / "params.json"
        if not (f.is_file() and m.is_file()):
            return False
        from safetensors.torch import load_file

        meta = json.loads(m.read_text())
        if "policy" not in meta.get("meta", {}):  # cached by an older robot_rl: wait for the learner instead
            tqdm.write(f"actor: ignoring cached parameters in {self.cache_dir} (written by an older robot_rl)")
            return False
        self.load(ReceivedParams(int(meta["version"]), load_file(str(f)), meta["meta"], float("nan")), cache=False)
        return True


def run_actor(cfg: ActorConfig, stop: threading.Event | None = None) -> dict[str, Any]:
    """Act and stream until ``total_env_steps`` or ``stop`` / SIGTERM / SIGINT; returns a summary.

    Raises:
        ConfigError: bad settings or env. TransportError: no parameters within
        ``params_timeout_s`` (learner not running / unreachable / CURVE keys refused), or the
        learner refused this actor's data (another env layout or wire version).
    """
    import zmq

    from robot_rl.agent import resolve_device
    from robot_rl.rewards.selection import MODEL_REWARDS, build_reward_model
    from robot_rl.transport.link import ChunkSender, ParamsSubscriber, curve_for_actor, tcp_address

    require_at_least("--total-env-steps", cfg.total_env_steps, 0, "0 runs until stopped")
    require_at_least("--port", cfg.port, 1)
    require_at_least("--window", cfg.window, 1)
    require_at_least("--drain-timeout-s", cfg.drain_timeout_s, 0)
    require_at_least("--torch-threads", cfg.torch_threads, 0)
    for flag, value in (("--params-timeout-s", cfg.params_timeout_s), ("--ack-timeout-s", cfg.ack_timeout_s),
                        ("--max-message-mb", cfg.max_message_mb)):
        require_positive(flag, value)
    check_actor_settings(cfg)
    stop = stop or threading.Event()
    from robot_rl.threads import ThreadShare

    threads = ThreadShare(cfg.torch_threads, "actor")
    device = resolve_device(cfg.device)
    curve = curve_for_actor(cfg.curve_keys, cfg.actor_id)
    spool_dir = Path(cfg.spool_dir or Path("spool") / cfg.actor_id)
    reward_model = (build_reward_model(cfg.reward, cfg.reward_model_path, parse_env_kwargs(cfg.reward_kwargs))
                    if cfg.reward in MODEL_REWARDS else None)
    env, teleop = build_actor_env(cfg, reward_model)
    ctx = zmq.Context()
    sender = ChunkSender(ctx, tcp_address(cfg.learner, cfg.port), cfg.actor_id, spool_dir, curve, cfg.window,
                         cfg.ack_timeout_s, cfg.fsync)
    params = ParamsSubscriber(ctx, tcp_address(cfg.learner, cfg.port + 1), curve, int(cfg.max_message_mb * 2**20))
    holder = PolicyHolder(env, device, spool_dir, reward_model)

    def on_signal(*_: Any) -> None:  # first: finish cleanly (drain the spool); second: leave at once
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    steps = episodes = 0
    t_start = time.monotonic()
    bar = None
    loop = ActorLoop(env, cfg, teleop, episode=sender.next_episode, step_id=sender.next_step_id)
    try:
        if sender.recovered_chunks:
            tqdm.write(f"actor {cfg.actor_id}: {sender.recovered_chunks} unacknowledged chunks found in {spool_dir}; "
                       "they are sent first")
        if holder.load_cache():
            tqdm.write(f"actor {cfg.actor_id}: acting with cached parameters (version {holder.version}) until the learner answers")
        deadline = time.monotonic() + cfg.params_timeout_s
        while holder.policy is None:
            p = params.poll(200)
            sender.pump()
            if p is not None:
                holder.load(p)
            elif stop.is_set():
                return {"env_steps": 0}
            elif time.monotonic() > deadline:
                raise TransportError(
                    f"no parameters from a learner at {tcp_address(cfg.learner, cfg.port + 1)} within {cfg.params_timeout_s:.0f} s. "
                    "Is `robot-rl learner` running and reachable? If it uses --curve-keys, this actor needs "
                    f"--curve-keys with learner.key and {cfg.actor_id}.key_secret authorized by it."
                    + (f" Learner messages refused here: {params.last_error}" if params.last_error else ""))
        bar = tqdm(total=cfg.total_env_steps or None, desc=f"actor {cfg.actor_id}", unit="step", disable=not cfg.progress,
                   dynamic_ncols=True)
        period = 1.0 / getattr(env.unwrapped, "control_hz", 10.0)
        next_tick = time.monotonic()
        last_warn = time.monotonic()
        while not stop.is_set() and not (cfg.total_env_steps and steps >= cfg.total_env_steps):
            p = params.poll(0)
            if p is not None:
                holder.load(p)
            chunk, done = loop.step(holder.policy, cfg.deterministic, holder.version)
            sender.next_step_id = loop.step_id
            steps += 1
            if chunk is not None:
                sender.put(chunk)
            if done:
                episodes += 1
                sender.save_state(next_episode=loop.episode)
            sender.pump()
            bar.update(1)
            now = time.monotonic()
            if sender.unacked and sender.seconds_since_ack() > 30 and now - last_warn > 30:
                last_warn = now
                tqdm.write(f"actor {cfg.actor_id}: no acknowledgement from the learner for {sender.seconds_since_ack():.0f} s; "
                           f"{sender.unacked} chunks ({sender.spool_bytes() / 2**20:.1f} MiB) wait in {spool_dir}")
            if done:
                threads.refresh()
            if steps % 20 == 0:
                bar.set_postfix(params=holder.version, unacked=sender.unacked, refresh=False)
            if cfg.realtime:
                next_tick += period
                time.sleep(max(0.0, next_tick - time.monotonic()))
        partial = loop.take_partial()
        if partial is not None:  # a partial episode: send its steps too (the episode continues as cut)
            sender.put(partial)
        loop.abandon_episode()
        sender.save_state(next_episode=loop.episode)
        if sender.unacked:
            tqdm.write(f"actor {cfg.actor_id}: waiting up to {cfg.drain_timeout_s:.0f} s for the learner to acknowledge "
                       f"{sender.unacked} chunks (Ctrl-C again leaves them in {spool_dir} for the next start)")
        drained = sender.flush(cfg.drain_timeout_s)
        if not drained:
            tqdm.write(f"actor {cfg.actor_id}: {sender.unacked} chunks not acknowledged yet; they stay in {spool_dir} "
                       "and are sent when this actor starts again")
    finally:
        if bar is not None:
            bar.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        loop.close()
        sender.close()
        params.close()
        ctx.destroy(linger=0)
        env.close()
        threads.close()
    lat = np.array(holder.latencies) if holder.latencies else np.array([np.nan])
    return {"actor_id": cfg.actor_id, "env_steps": steps, "episodes": episodes, "next_step_id": sender.next_step_id,
            "params_version": holder.version, "params_received": len(holder.latencies),
            "params_latency_ms_p50": float(np.nanmedian(lat) * 1e3), "unacknowledged_chunks": sender.unacked,
            "resent_chunks": sender.resent, "wall_s": round(time.monotonic() - t_start, 1)}
