"""``robot-rl learner``: the SAC/RLPD learner as its own process, fed by actors over ZeroMQ.

HIL-SERL's shape (Luo et al. 2024, "Precise and Dexterous Robotic Manipulation via
Human-in-the-Loop Reinforcement Learning", arXiv:2410.21845): actors on robot PCs stream
transitions; the learner (on a GPU box) keeps an online buffer of every transition and a demo
buffer of demonstrations plus human interventions, samples them 50/50 (RLPD), and publishes the
policy parameters back every ``publish_every_updates`` gradient steps.

Nothing is lost:

* every accepted chunk is appended to ``<run>/replay/log_*.rrl`` before it is acknowledged (the
  actor deletes its spooled copy only then); the log is the learner's online and intervention
  data, written incrementally, and ``--resume`` rebuilds both buffers from it;
* checkpoints (networks, targets, optimisers, temperature, counters, RNG) are written atomically
  every ``checkpoint_every_updates`` gradient steps / ``checkpoint_every_s`` seconds and on exit
  (SIGINT, SIGTERM); after SIGKILL, ``--resume`` continues from the newest one with every
  transition the log holds.

Files of a learner run directory: ``config.json``, ``demos/`` (scripted demos when recorded),
``replay/`` (the log), ``checkpoints/``, ``episodes.csv`` (the actors' episode stats),
``status.json`` (counters, refused messages by reason; rewritten every second), ``tb/``,
``reward_source.json`` (the reward source the actors declared, e.g. ``{"reward": "classifier",
"reward_model_path": ..., "reward_kwargs": {...}}``: the actor computes the reward, where the
cameras are; the learner keeps one source per run and refuses chunks of another).
"""

from __future__ import annotations

import csv
import json
import os
import queue
import random
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from robot_rl.agent import SACAgent, SACConfig, resolve_device
from robot_rl.envs import make_env, parse_env_kwargs
from robot_rl.errors import ConfigError, WireError
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.record import load_demo_buffer
from robot_rl.replay import ReplayBuffer, sample_mixed
from robot_rl.runs import (latest_checkpoint, load_checkpoint, load_config, make_run_dir, save_checkpoint,
                           save_config, to_jsonable)
from robot_rl.transport.link import (ChunkReceiver, ParamsPublisher, check_bind_host, curve_for_learner,
                                     start_authenticator, tcp_address)
from robot_rl.transport.messages import TransitionChunk
from robot_rl.transport.records import SegmentLog
from robot_rl.transport.wire import decode

#: file in a learner run holding the actors' reward source (see ``ChunkReceiver``'s ``reward_source``)
REWARD_SOURCE_FILE = "reward_source.json"


def _write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


@dataclass
class LearnerConfig:
    """Run the SAC/RLPD learner as a server for `robot-rl actor` processes (ZeroMQ)."""

    env: str = "robot_rl/PandaPickLift-v0"
    """gymnasium env ID the actors run (the learner builds it once to read its spaces)."""
    env_kwargs: dict[str, str] = field(default_factory=dict)
    """keyword arguments of the env, e.g. --env-kwargs reward_type dense (must match the actors')."""
    seed: int = 1
    """seed of networks and replay sampling."""
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
    num_demos: int = 20
    """scripted demos to record into the run when --demos is not given (0: none)."""
    demos: Path | None = None
    """directory of demo episode files (robot-rl record-demos) to use instead of recording."""
    demo_fraction: float = 0.5
    """fraction of each batch drawn from the demo buffer (RLPD: 0.5)."""
    online_capacity: int = 100_000
    """online replay capacity in transitions."""
    intervention_capacity: int = 100_000
    """room in the demo buffer for intervention transitions (on top of the demos)."""
    update_ratio: float = 1.0
    """agent updates (each of agent.utd_ratio gradient steps) per received transition; 0: as fast as possible."""
    learning_starts: int = 0
    """received transitions before the first update."""
    publish_every_updates: int = 20
    """publish the policy every N gradient steps."""
    publish_interval_s: float = 2.0
    """also publish at least this often (actors that join late, idle learner)."""
    checkpoint_every_updates: int = 1_000
    """checkpoint every N gradient steps."""
    checkpoint_every_s: float = 300.0
    """and at least every this many seconds."""
    total_env_steps: int = 0
    """stop after receiving this many transitions (0: run until Ctrl-C / SIGTERM)."""
    fsync: bool = False
    """fsync the replay log after every chunk (survives power loss; slower)."""
    log_every_updates: int = 50
    """write losses to TensorBoard every N gradient steps."""
    runs_dir: Path = Path("runs")
    """parent directory of run directories."""
    exp_name: str = "learner"
    """experiment name, part of the run directory name."""
    run_dir: Path | None = None
    """explicit run directory (must not exist)."""
    resume: Path | None = None
    """continue the learner run in this directory: networks, optimisers, counters and both buffers."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    torch_threads: int = 0
    """torch intra-op threads (0: torch's default)."""
    progress: bool = True
    """show a progress bar."""
    agent: SACConfig = field(default_factory=SACConfig)
    """learner settings (the actors get the policy part with the parameters)."""


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
        if self.online_owner != key:
            self.online.start_episode_split(*obs0)
            self.online_owner = key
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


class Learner:
    """The learner server (see the module docstring).

    Raises:
        ConfigError: bad settings. TransportError: ports in use, CURVE keys missing, or a
        non-loopback host without CURVE. CheckpointError: ``--resume`` of a broken run.
    """

    def __init__(self, cfg: LearnerConfig) -> None:
        resumed = cfg.resume is not None
        if resumed:
            saved = load_config(cfg.resume, LearnerConfig)
            saved.total_env_steps = max(saved.total_env_steps, cfg.total_env_steps)
            saved.progress, saved.resume = cfg.progress, cfg.resume
            self.run_dir = Path(cfg.resume)
            cfg = saved
        if not 0.0 <= cfg.demo_fraction <= 1.0:
            raise ConfigError(f"--demo-fraction must be in [0, 1], got {cfg.demo_fraction}")
        if cfg.update_ratio < 0:
            raise ConfigError(f"--update-ratio must be >= 0, got {cfg.update_ratio}")
        self.cfg = cfg
        check_bind_host(cfg.host, cfg.curve_keys is not None, cfg.insecure)
        self.curve = curve_for_learner(cfg.curve_keys)
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        self.device = resolve_device(cfg.device)
        env = make_env(cfg.env, **parse_env_kwargs(cfg.env_kwargs))
        self.layout = ObsLayout.from_space(env.observation_space)
        self.scaler = ActionScaler.from_space(env.action_space)
        env.close()
        if not resumed:
            self.run_dir = make_run_dir(cfg.runs_dir, cfg.env, cfg.exp_name, cfg.seed, cfg.run_dir)
            save_config(self.run_dir, cfg)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.agent = SACAgent(self.layout.state_dim, self.layout.image_shapes, self.scaler.dim, cfg.agent, self.device)
        self.online = ReplayBuffer(self.layout, self.scaler.dim, cfg.online_capacity)
        self.demo_buffer = load_demo_buffer(cfg.env, cfg.env_kwargs, cfg.demos, cfg.num_demos, self.run_dir, cfg.seed,
                                            self.layout, self.scaler, cfg.intervention_capacity, cfg.progress)
        if self.demo_buffer is None:  # no demos and no room for interventions: an empty one keeps the code simple
            self.demo_buffer = ReplayBuffer(self.layout, self.scaler.dim, 2)
        self.num_demo_transitions = len(self.demo_buffer)
        if cfg.agent.normalize_state and len(self.demo_buffer) and self.layout.state_dim:
            self.agent.state_norm.fit(torch.from_numpy(self.demo_buffer.stored_states()).to(self.device))
        self.inserter = ChunkInserter(self.online, self.demo_buffer)
        self.updates = self.update_calls = 0
        self.received = 0
        self.last_seq: dict[str, int] = {}
        self.log = SegmentLog(self.run_dir / "replay", fsync=cfg.fsync)
        self.episode_stats: deque[dict[str, Any]] = deque(maxlen=20)
        self.resumed_from: Path | None = None
        self.receiver: ChunkReceiver | None = None  # the transport thread, started by run()
        if resumed:
            self.resumed_from = self._restore()
        self._replay_log()
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(self.run_dir / "tb"))
        if not resumed:
            self.tb.add_text("hyperparameters", "```\n" + json.dumps(to_jsonable(cfg), indent=2) + "\n```")
        self._stop = threading.Event()

    # ------------------------------------------------------------------ persistence
    def _replay_log(self) -> None:
        """Rebuild the buffers and the per-actor sequence numbers from the replay log."""
        if self.log.repaired_bytes:
            tqdm.write(f"learner: dropped a torn last record ({self.log.repaired_bytes} bytes) of the replay log: "
                       "it was never acknowledged, its actor resends it")
        segs = self.log.segments()
        total = sum(s.stat().st_size for s in segs)
        if not total:
            return
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="replaying log", disable=not self.cfg.progress)
        layout = (self.layout.state_dim, self.layout.image_shapes, self.scaler.dim)
        for frames in self.log:
            try:
                chunk = TransitionChunk.from_message(decode(frames), *layout)
            except WireError as e:
                raise ConfigError(f"the replay log in {self.run_dir}/replay does not match {self.cfg.env} ({e})") from e
            self.inserter.insert(chunk)
            self.last_seq[chunk.actor] = max(self.last_seq.get(chunk.actor, 0), chunk.seq)
            self.received += len(chunk)
            bar.update(sum(f.nbytes for f in frames))
        bar.close()

    def save(self) -> Path:
        """Checkpoint networks, optimisers, temperature, counters and RNG states (atomically)."""
        tensors = {"agent": self.agent.checkpoint_state(), "torch_rng": torch.get_rng_state()}
        state = {"updates": self.updates, "update_calls": self.update_calls, "received": self.received,
                 "rng": {"numpy": self.rng.bit_generator.state},
                 "last_seq": self.receiver.snapshot()[2] if self.receiver is not None else dict(self.last_seq)}
        self._last_checkpoint = (self.updates, time.monotonic())
        return save_checkpoint(self.run_dir, self.updates, tensors, state)

    def _restore(self) -> Path | None:
        if not (self.run_dir / "checkpoints" / "latest").is_file():  # killed before its first checkpoint
            tqdm.write(f"learner: {self.run_dir} has no checkpoint yet; resuming with fresh networks and the logged data")
            return None
        ckpt = latest_checkpoint(self.run_dir)  # an incomplete or unreadable one is an error, not a fresh start
        tensors, state = load_checkpoint(ckpt, map_location=self.device)
        self.agent.load_checkpoint_state(tensors["agent"])
        torch.set_rng_state(tensors["torch_rng"].cpu())
        self.updates, self.update_calls = int(state["updates"]), int(state["update_calls"])
        self.rng.bit_generator.state = state["rng"]["numpy"]
        return ckpt

    # ------------------------------------------------------------------ loop
    def _policy_meta(self) -> dict[str, Any]:
        return {"agent_config": to_jsonable(self.cfg.agent), "state_dim": self.layout.state_dim,
                "image_shapes": {k: list(v) for k, v in self.layout.image_shapes.items()},
                "action_dim": self.scaler.dim, "env": self.cfg.env}

    def _publish(self) -> None:
        params = {k: v.detach().cpu() for k, v in self.agent.policy_state_dict().items()}
        self.publisher.publish(params, self.updates, self._meta)
        self._last_publish = (self.updates, time.monotonic())

    def _on_chunk(self, chunk: TransitionChunk) -> None:
        self.inserter.insert(chunk)
        self.received += len(chunk)
        if chunk.episode_stats is not None:
            self._log_episode(chunk.actor, chunk.episode, chunk.episode_stats)

    def _log_episode(self, actor: str, episode: int, stats: dict[str, Any]) -> None:
        self.episode_stats.append(stats)
        path = self.run_dir / "episodes.csv"
        fields = ["wall_time", "actor", "episode", "env_steps", "updates", "return", "length", "success",
                  "intervention_steps", "takeovers", "intervention_rate"]
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(fields)
            w.writerow([round(time.time(), 3), actor, episode, self.received, self.updates,
                        *(int(v) if isinstance(v := stats.get(k, ""), bool) else v for k in fields[5:])])
        for k in ("return", "length", "success", "intervention_rate"):
            if isinstance(stats.get(k), (int, float, bool)):
                self.tb.add_scalar(f"charts/episode_{k}", float(stats[k]), self.received)

    def _write_status(self, t_start: float) -> None:
        stats, last_errors, last_seq = self.receiver.snapshot()
        status = {"run_dir": str(self.run_dir), "received_transitions": self.received, "updates": self.updates,
                  "online_transitions": len(self.online), "demo_transitions": len(self.demo_buffer),
                  "demo_transitions_from_files": self.num_demo_transitions,
                  "interventions": self.inserter.stats["interventions"], "last_seq": last_seq,
                  "transport": stats, "last_errors": last_errors,
                  "inserter": dict(self.inserter.stats), "params_published": self.publisher.published,
                  "wall_s": round(time.monotonic() - t_start, 2), "pid": os.getpid()}
        tmp = self.run_dir / "status.json.tmp"
        tmp.write_text(json.dumps(status, indent=1))
        os.replace(tmp, self.run_dir / "status.json")

    def _can_update(self) -> bool:
        cfg = self.cfg
        if self.received < cfg.learning_starts or (len(self.online) == 0 and len(self.demo_buffer) == 0):
            return False
        return cfg.update_ratio == 0 or self.update_calls < cfg.update_ratio * self.received

    def _update(self) -> dict[str, float]:
        cfg = self.cfg
        n = cfg.agent.batch_size * cfg.agent.utd_ratio
        batch = sample_mixed(self.online, self.demo_buffer, n, self.rng, cfg.demo_fraction).to(self.device)
        self.updates += cfg.agent.utd_ratio
        self.update_calls += 1
        return self.agent.update(batch)

    def stop(self) -> None:
        """Ask :meth:`run` to finish (checkpoint and return); safe from signal handlers."""
        self._stop.set()

    def run(self) -> dict[str, Any]:
        """Serve actors and train until ``total_env_steps`` transitions arrived or :meth:`stop`.

        Returns:
            Summary: run_dir, received transitions, updates, checkpoint, transport counters.
        """
        import zmq

        cfg = self.cfg
        ctx = zmq.Context()
        auth = start_authenticator(ctx, self.curve[2]) if self.curve is not None else None
        source_file = self.run_dir / REWARD_SOURCE_FILE
        self.receiver = ChunkReceiver(ctx, tcp_address(cfg.host, cfg.port),
                                      (self.layout.state_dim, self.layout.image_shapes, self.scaler.dim), self.log,
                                      self.last_seq, int(cfg.max_message_mb * 2**20), self.curve,
                                      reward_source=json.loads(source_file.read_text()) if source_file.is_file() else None,
                                      on_reward_source=lambda source: _write_json_atomic(source_file, source))
        self.receiver.start_and_wait()
        try:
            self.publisher = ParamsPublisher(ctx, tcp_address(cfg.host, cfg.port + 1), self.curve)
        except Exception:
            self.receiver.stop()
            raise
        self._meta = self._policy_meta()
        self._last_publish = (-(10**9), 0.0)
        self._last_checkpoint = (self.updates, time.monotonic())
        t_start = last_status = time.monotonic()
        t_rate, n_rate = t_start, self.received
        tqdm.write(f"learner: run {self.run_dir}; actors connect to {tcp_address(cfg.host, cfg.port)} "
                   f"({'CURVE' if self.curve else 'plain'}); {self.received} logged transitions, "
                   f"{self.num_demo_transitions} demo transitions")
        bar = tqdm(total=cfg.total_env_steps or None, initial=self.received, desc="learner", unit="tr",
                   disable=not cfg.progress, dynamic_ncols=True)
        try:
            self._publish()
            while not self._stop.is_set():
                before = self.received
                try:  # insert what arrived; wait briefly only when there is nothing to train on
                    block = not self._can_update()
                    while True:
                        self._on_chunk(self.receiver.chunks.get(block=block, timeout=0.05))
                        block = False
                except queue.Empty:
                    pass
                bar.update(self.received - before)
                if cfg.total_env_steps and self.received >= cfg.total_env_steps:
                    break
                if self._can_update():
                    logs = self._update()
                    if self.updates % cfg.log_every_updates < cfg.agent.utd_ratio:
                        for k, v in logs.items():
                            self.tb.add_scalar(k, v, self.updates)
                now = time.monotonic()
                if (self.updates - self._last_publish[0] >= cfg.publish_every_updates
                        or now - self._last_publish[1] >= cfg.publish_interval_s):
                    self._publish()
                if (self.updates - self._last_checkpoint[0] >= cfg.checkpoint_every_updates
                        or now - self._last_checkpoint[1] >= cfg.checkpoint_every_s):
                    self.save()
                if now - last_status >= 1.0:
                    self._write_status(t_start)
                    rate = (self.received - n_rate) / max(now - t_rate, 1e-9)
                    self.tb.add_scalar("charts/transitions_per_s", rate, self.received)
                    self.tb.add_scalar("charts/updates", self.updates, self.received)
                    t_rate, n_rate, last_status = now, self.received, now
                    recent = [float(bool(s.get("success"))) for s in self.episode_stats]
                    bar.set_postfix(updates=self.updates, success=f"{np.mean(recent):.2f}" if recent else "-",
                                    refused=self.receiver.snapshot()[0].get("rejected", 0), refresh=False)
        finally:
            bar.close()
            self.receiver.stop()
            while True:  # chunks accepted after the last pass are in the log; keep them in memory too
                try:
                    self._on_chunk(self.receiver.chunks.get_nowait())
                except queue.Empty:
                    break
            ckpt = self.save()
            self._write_status(t_start)
            self.publisher.close()
            if auth is not None:
                auth.stop()
            ctx.destroy(linger=0)
            self.log.close()
            self.tb.close()
        stats = self.receiver.snapshot()[0]
        return {"run_dir": str(self.run_dir), "received_transitions": self.received, "updates": self.updates,
                "checkpoint": str(ckpt), "refused_messages": stats.get("rejected", 0),
                "duplicates": stats.get("duplicates", 0)}


def run_learner(cfg: LearnerConfig) -> dict[str, Any]:
    """Build a :class:`Learner` and serve until done; SIGTERM / SIGINT stop it cleanly (checkpoint first)."""
    learner = Learner(cfg)
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda *_: learner.stop())
    try:
        return learner.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
