"""``robot-rl actor``: run the policy on the robot (or a sim) and stream transitions to a learner.

The control loop never waits for the network: each step it takes the newest parameters the
learner published (if any arrived), acts, steps the env, and hands finished chunks of steps to
:class:`~robot_rl.transport.link.ChunkSender`, which spools them to disk and sends them without
blocking. While the learner is away the actor keeps acting with its last parameters and the
spool grows; when the learner returns, the spool drains in order and the learner drops
duplicates. The newest parameters are also cached in the spool directory, so a restarted actor
can act before the learner answers.

With ``--teleop`` a human device (or the scripted corrector) can take over at any step
(:class:`~robot_rl.intervention.InterventionWrapper`); those steps are tagged and the learner puts
them into its demo buffer as well.
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

import numpy as np
import torch
from tqdm import tqdm

from robot_rl.agent import SACAgent, SACConfig, resolve_device
from robot_rl.batch import Obs
from robot_rl.envs import make_env, parse_env_kwargs
from robot_rl.errors import ConfigError, TransportError
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.runs import from_jsonable
from robot_rl.transport.link import ChunkSender, ParamsSubscriber, ReceivedParams, curve_for_actor, tcp_address
from robot_rl.transport.messages import TransitionChunk


@dataclass
class ActorConfig:
    """Run the policy in an env and stream transitions to a `robot-rl learner` (ZeroMQ)."""

    env: str = "robot_rl/PandaPickLift-v0"
    """gymnasium env ID (the same as the learner's)."""
    env_kwargs: dict[str, str] = field(default_factory=dict)
    """keyword arguments of the env (the same as the learner's)."""
    seed: int = 1
    """seed of env resets and action sampling."""
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
    teleop: str = "none"
    """who may take over: none, keyboard, gamepad, spacemouse or scripted (the scripted corrector)."""
    teleop_kwargs: dict[str, str] = field(default_factory=dict)
    """settings of the teleop backend, e.g. --teleop-kwargs linear_speed_mps 0.1 (values parsed as JSON when they can be)."""
    rlif_reward: bool = False
    """replace the task reward with RLIF's intervention reward (-1 at each take-over)."""
    reward: str = "env"
    """reward source, as `robot-rl train --reward`: env, sparse, dense, classifier (--reward-model-path), vlm, intervention; the actor computes the reward (it has the cameras) and the learner stores it."""
    reward_model_path: Path | None = None
    """--reward classifier: directory from `robot-rl train-reward-classifier`."""
    reward_kwargs: dict[str, str] = field(default_factory=dict)
    """settings of the reward model (values parsed as JSON when they can be), e.g. --reward-kwargs threshold 0.7."""
    chunk_steps: int = 10
    """send steps in chunks of this many (and at every episode end)."""
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
    """torch intra-op threads (0: torch's default)."""
    progress: bool = True
    """show a progress bar."""


class PolicyHolder:
    """The actor's copy of the policy; rebuilt from the parameter meta, swapped in when newer.

    Args:
        layout / scaler: of the actor's env (checked against the learner's meta).
        device: where the policy runs.
    """

    def __init__(self, layout: ObsLayout, action_dim: int, device: torch.device, cache_dir: Path) -> None:
        self.layout, self.action_dim, self.device = layout, action_dim, device
        self.cache_dir = cache_dir
        self.agent: SACAgent | None = None
        self.version = -1
        self.latencies: list[float] = []
        self._last_cache_write = 0.0

    def load(self, p: ReceivedParams, cache: bool = True) -> None:
        """Build the agent on first use, then load ``p`` (newer versions only).

        Raises:
            TransportError: the learner's observation/action layout differs from this env's.
        """
        if self.agent is None:
            meta = p.meta
            shapes = {k: tuple(v) for k, v in meta.get("image_shapes", {}).items()}
            if (meta.get("state_dim") != self.layout.state_dim or shapes != self.layout.image_shapes
                    or meta.get("action_dim") != self.action_dim):
                raise TransportError(
                    f"the learner trains on state {meta.get('state_dim')}, cameras {shapes}, actions {meta.get('action_dim')} "
                    f"({meta.get('env')}); this actor's env has state {self.layout.state_dim}, cameras "
                    f"{self.layout.image_shapes}, actions {self.action_dim}: start both with the same --env and --env-kwargs")
            cfg = from_jsonable(SACConfig, meta["agent_config"])
            cfg.compile = False
            self.agent = SACAgent(self.layout.state_dim, self.layout.image_shapes, self.action_dim, cfg, self.device)
            self.agent.eval()
        if p.version < self.version:
            return
        self.agent.load_policy_state_dict({k: v.to(self.device) for k, v in p.tensors.items()})
        self.version = p.version
        if np.isfinite(p.latency_s):
            self.latencies.append(p.latency_s)
        if cache and time.monotonic() - self._last_cache_write > 5.0:
            self._write_cache(p)

    def _write_cache(self, p: ReceivedParams) -> None:
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
        f, m = self.cache_dir / "params.safetensors", self.cache_dir / "params.json"
        if not (f.is_file() and m.is_file()):
            return False
        from safetensors.torch import load_file

        meta = json.loads(m.read_text())
        self.load(ReceivedParams(int(meta["version"]), load_file(str(f)), meta["meta"], float("nan")), cache=False)
        return True

    def act(self, state: np.ndarray, images: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        """Policy action for one split observation (state (S,) float32, images camera -> (H, W, 3) uint8).

        Returns:
            (A,) float32 action in [-1, 1].
        """
        with torch.no_grad():
            return self.agent.act(Obs.single(state, images, self.device), deterministic=deterministic)[0].cpu().numpy()


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
             terminated: bool, truncated: bool, intervention: bool, step_id: int) -> None:
        """Record one step: the next observation split as in :meth:`start`, the executed ``action``
        (A,) float32 in [-1, 1], reward, flags and the actor's running step ID."""
        self.rows.append((state, images, action, reward, terminated, truncated, intervention, step_id))

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, episode_stats: dict[str, Any] | None = None) -> TransitionChunk:
        """The collected steps as a chunk (seq / actor are set by the sender)."""
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
            reward_source=self.reward_source)
        self.t += len(rows)
        self.rows = []
        return chunk


def run_actor(cfg: ActorConfig, stop: threading.Event | None = None) -> dict[str, Any]:
    """Act and stream until ``total_env_steps`` or ``stop`` / SIGTERM / SIGINT; returns a summary.

    Raises:
        ConfigError: bad settings or env. TransportError: no parameters within
        ``params_timeout_s`` (learner not running / unreachable / CURVE keys refused), or the
        learner refused this actor's data (another env layout or wire version).
    """
    import zmq

    if cfg.chunk_steps < 1:
        raise ConfigError(f"--chunk-steps must be >= 1, got {cfg.chunk_steps}")
    stop = stop or threading.Event()
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    device = resolve_device(cfg.device)
    curve = curve_for_actor(cfg.curve_keys, cfg.actor_id)
    spool_dir = Path(cfg.spool_dir or Path("spool") / cfg.actor_id)
    from robot_rl.rewards.selection import MODEL_REWARDS, build_reward_model, check_reward_source, wrap_with_reward

    if cfg.rlif_reward and cfg.reward not in ("env", "intervention"):
        raise ConfigError(f"--rlif-reward is --reward intervention; it cannot be combined with --reward {cfg.reward}")
    env_kwargs = check_reward_source(cfg.reward, parse_env_kwargs(cfg.env_kwargs), cfg.teleop, cfg.reward_model_path)
    reward_model = (build_reward_model(cfg.reward, cfg.reward_model_path, parse_env_kwargs(cfg.reward_kwargs))
                    if cfg.reward in MODEL_REWARDS else None)
    env = wrap_with_reward(make_env(cfg.env, **env_kwargs), reward_model)
    layout = ObsLayout.from_space(env.observation_space)
    scaler = ActionScaler.from_space(env.action_space)
    if cfg.teleop != "none":
        from robot_rl.drivers.teleop import make_teleop
        from robot_rl.intervention import InterventionWrapper

        kwargs = parse_env_kwargs(cfg.teleop_kwargs)
        if cfg.teleop == "scripted":  # the corrector needs the env (privileged state) and a seed
            kwargs = {"env": env, "seed": cfg.seed, **kwargs}
        teleop = make_teleop(cfg.teleop, **kwargs)
        env = InterventionWrapper(env, teleop, rlif_reward=cfg.rlif_reward or cfg.reward == "intervention")
    ctx = zmq.Context()
    sender = ChunkSender(ctx, tcp_address(cfg.learner, cfg.port), cfg.actor_id, spool_dir, curve, cfg.window,
                         cfg.ack_timeout_s, cfg.fsync)
    params = ParamsSubscriber(ctx, tcp_address(cfg.learner, cfg.port + 1), curve, int(cfg.max_message_mb * 2**20))
    policy = PolicyHolder(layout, scaler.dim, device, spool_dir)
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
    try:
        if sender.recovered_chunks:
            tqdm.write(f"actor {cfg.actor_id}: {sender.recovered_chunks} unacknowledged chunks found in {spool_dir}; "
                       "they are sent first")
        if policy.load_cache():
            tqdm.write(f"actor {cfg.actor_id}: acting with cached parameters (version {policy.version}) until the learner answers")
        deadline = time.monotonic() + cfg.params_timeout_s
        while policy.agent is None:
            p = params.poll(200)
            sender.pump()
            if p is not None:
                policy.load(p)
            elif stop.is_set():
                return {"env_steps": 0}
            elif time.monotonic() > deadline:
                raise TransportError(
                    f"no parameters from a learner at {tcp_address(cfg.learner, cfg.port + 1)} within {cfg.params_timeout_s:.0f} s. "
                    "Is `robot-rl learner` running and reachable? If it uses --curve-keys, this actor needs "
                    f"--curve-keys with learner.key and {cfg.actor_id}.key_secret authorized by it."
                    + (f" Learner messages refused here: {params.last_error}" if params.last_error else ""))
        # declared on every chunk: the learner refuses to mix rewards of different sources
        builder = ChunkBuilder(layout, reward_source={
            "reward": "intervention" if cfg.rlif_reward else cfg.reward,
            "reward_model_path": str(cfg.reward_model_path) if cfg.reward_model_path else None,
            "reward_kwargs": dict(cfg.reward_kwargs)})
        episode = sender.next_episode
        obs, _ = env.reset(seed=cfg.seed + episode)
        split = layout.split(obs)  # once per step: used by the policy and by the chunk
        builder.start(*split, episode)
        ep_return, ep_len, ep_success, ep_interventions, ep_takeovers = 0.0, 0, False, 0, 0
        bar = tqdm(total=cfg.total_env_steps or None, desc=f"actor {cfg.actor_id}", unit="step", disable=not cfg.progress,
                   dynamic_ncols=True)
        period = 1.0 / getattr(env.unwrapped, "control_hz", 10.0)
        next_tick = time.monotonic()
        last_warn = time.monotonic()
        while not stop.is_set() and not (cfg.total_env_steps and steps >= cfg.total_env_steps):
            p = params.poll(0)
            if p is not None:
                policy.load(p)
            action = policy.act(*split, cfg.deterministic)
            obs, reward, terminated, truncated, info = env.step(scaler.to_env(action))
            split = layout.split(obs)
            executed = scaler.from_env(info["action"]) if "action" in info else action
            intervention = bool(info.get("intervention", False))
            builder.step(*split, executed, float(reward), bool(terminated), bool(truncated), intervention, sender.next_step_id)
            sender.next_step_id += 1
            steps += 1
            ep_return += float(reward)
            ep_len += 1
            ep_success = ep_success or bool(info.get("is_success", False))
            ep_interventions += intervention
            ep_takeovers += bool(info.get("takeover", False))
            done = terminated or truncated
            if done or len(builder) >= cfg.chunk_steps:
                stats = None
                if done:
                    stats = {"return": ep_return, "length": ep_len, "success": ep_success,
                             "intervention_steps": ep_interventions, "takeovers": ep_takeovers,
                             "intervention_rate": ep_interventions / max(ep_len, 1), "params_version": policy.version}
                sender.put(builder.take(stats))
            if done:
                episodes += 1
                episode += 1
                sender.save_state(next_episode=episode)
                obs, _ = env.reset(seed=cfg.seed + episode)
                split = layout.split(obs)
                builder.start(*split, episode)
                ep_return, ep_len, ep_success, ep_interventions, ep_takeovers = 0.0, 0, False, 0, 0
            sender.pump()
            bar.update(1)
            now = time.monotonic()
            if sender.unacked and sender.seconds_since_ack() > 30 and now - last_warn > 30:
                last_warn = now
                tqdm.write(f"actor {cfg.actor_id}: no acknowledgement from the learner for {sender.seconds_since_ack():.0f} s; "
                           f"{sender.unacked} chunks ({sender.spool_bytes() / 2**20:.1f} MiB) wait in {spool_dir}")
            if steps % 20 == 0:
                bar.set_postfix(params=policy.version, unacked=sender.unacked, refresh=False)
            if cfg.realtime:
                next_tick += period
                time.sleep(max(0.0, next_tick - time.monotonic()))
        if len(builder):  # a partial episode: send its steps too (the episode continues as cut)
            sender.put(builder.take())
        sender.save_state(next_episode=episode + 1 if ep_len else episode)
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
        sender.close()
        params.close()
        ctx.destroy(linger=0)
        env.close()
    lat = np.array(policy.latencies) if policy.latencies else np.array([np.nan])
    return {"actor_id": cfg.actor_id, "env_steps": steps, "episodes": episodes, "next_step_id": sender.next_step_id,
            "params_version": policy.version, "params_received": len(policy.latencies),
            "params_latency_ms_p50": float(np.nanmedian(lat) * 1e3), "unacknowledged_chunks": sender.unacked,
            "resent_chunks": sender.resent, "wall_s": round(time.monotonic() - t_start, 1)}
