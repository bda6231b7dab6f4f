"""Actor -> learner transitions/s and learner -> actor parameter latency over loopback ZeroMQ.

1. Throughput: a producer process streams transitions with two 128x128 cameras (plus a 19-dim
   state, 4-dim action) through robot_rl's real :class:`ChunkSender` (every chunk spooled to
   disk first, acknowledged, deleted) to a consumer that runs the learner's real receive path:
   :class:`ChunkReceiver` (decode, validate, de-duplicate, append to the replay log, acknowledge)
   and :class:`ChunkInserter` into the online replay buffer. Measured from the first send to the
   last transition in the buffer. Baseline, same run: what a naive implementation does, one
   pickled ``(obs, action, reward, next_obs, done)`` dict per transition over PUSH/PULL,
   unpickled and added with ``ReplayBuffer.add`` (no spool, no log, no acks).
2. Parameter broadcast latency of the default pixel policy (DrQ-v2 encoder over two 128x128
   cameras + actor): from ``ParamsPublisher.publish`` (serialising to safetensors included) to
   the moment the actor process has the new weights loaded in its network; p50 / p99 over
   ``--param-rounds`` publications.

    python benchmarks/transport_speed.py            # ~1 minute on 2 CPU cores
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import queue
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

STATE_DIM, ACTION_DIM, CAMS = 19, 4, {"front": (128, 128, 3), "wrist": (128, 128, 3)}


@dataclass
class Args:
    """Transport benchmark."""

    transitions: int = 20_000
    """transitions per throughput measurement."""
    chunk_steps: tuple[int, ...] = (10, 50)
    """chunk sizes to measure (the actor's --chunk-steps; 10 is its default)."""
    baseline_transitions: int = 5_000
    """transitions for the naive baseline."""
    param_rounds: int = 50
    """parameter publications timed."""
    port: int = 5750
    """first port to use (several consecutive ports)."""


def _spaces():
    import gymnasium as gym

    obs = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
                           "images": gym.spaces.Dict({k: gym.spaces.Box(0, 255, s, np.uint8) for k, s in CAMS.items()})})
    return obs, gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)


def _layout():
    from robot_rl.layout import ObsLayout

    return ObsLayout.from_space(_spaces()[0])


def _scaler():
    from robot_rl.layout import ActionScaler

    return ActionScaler.from_space(_spaces()[1])


class _SpacesOnly:
    """What the actor's PolicyHolder reads of an env: its spaces."""

    def __init__(self) -> None:
        self.observation_space, self.action_space = _spaces()


def _episode_chunks(n_total: int, chunk: int, episode_len: int = 50):
    """Chunks covering ``n_total`` transitions in episodes of ``episode_len`` steps (pre-built)."""
    from robot_rl.transport.messages import TransitionChunk

    rng = np.random.default_rng(0)
    pool = {k: rng.integers(0, 256, (chunk + 1, *s), dtype=np.uint8) for k, s in CAMS.items()}
    out, step_id, episode = [], 0, 0
    while step_id < n_total:
        t = 0
        while t < episode_len and step_id < n_total:
            n = min(chunk, episode_len - t, n_total - step_id)
            first = t == 0
            m = n + first
            end = t + n == episode_len
            term = np.zeros(n, bool)
            term[-1] = end
            out.append(TransitionChunk(
                "bench", 0, episode, t, first, rng.standard_normal((m, STATE_DIM)).astype(np.float32),
                {k: v[:m] for k, v in pool.items()}, rng.uniform(-1, 1, (n, ACTION_DIM)).astype(np.float32),
                np.zeros(n, np.float32), term, np.zeros(n, bool), np.zeros(n, bool),
                np.arange(step_id, step_id + n, dtype=np.int64)))
            t += n
            step_id += n
        episode += 1
    return out


def _produce(port: int, n_total: int, chunk: int, spool: str, ready) -> None:
    import zmq

    from robot_rl.transport.link import ChunkSender

    chunks = _episode_chunks(n_total, chunk)
    ctx = zmq.Context()
    sender = ChunkSender(ctx, f"tcp://127.0.0.1:{port}", "bench", Path(spool), window=16)
    ready.wait()
    for c in chunks:
        sender.put(c)
        sender.pump()
        while sender.unacked > 64:  # a real actor keeps acting; here we only keep memory bounded
            sender.sock.poll(5)
            sender.pump()
    sender.flush(120)
    sender.close()
    ctx.destroy(linger=0)


def measure_robot_rl(port: int, n_total: int, chunk: int, warm_buffer: bool = False) -> dict[str, float]:
    """Stream ``n_total`` transitions in chunks of ``chunk``; ``warm_buffer`` touches the replay
    buffer's memory before the clock starts (a learner past its first ``capacity`` transitions:
    the first write to fresh memory costs a page fault, 0.8-2.6 GB/s in this VM)."""
    import zmq

    from robot_rl.learner import ChunkInserter
    from robot_rl.replay import ReplayBuffer
    from robot_rl.transport.link import ChunkReceiver
    from robot_rl.transport.records import SegmentLog

    layout = _layout()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = zmq.Context()
        log = SegmentLog(Path(tmp) / "replay")
        recv = ChunkReceiver(ctx, f"tcp://127.0.0.1:{port}", (STATE_DIM, dict(CAMS), ACTION_DIM), log, {})
        recv.start_and_wait()
        online = ReplayBuffer(layout, ACTION_DIM, n_total + n_total // 40 + 10)
        if warm_buffer:
            for arr in (online.state, *online.images.values()):
                arr.fill(1)
        inserter = ChunkInserter(online, None)
        mpctx = mp.get_context("spawn")
        ready = mpctx.Event()
        proc = mpctx.Process(target=_produce, args=(port, n_total, chunk, str(Path(tmp) / "spool"), ready))
        proc.start()
        time.sleep(3.0)  # let the producer import and pre-build its chunks
        ready.set()
        t0 = None
        while inserter.stats["transitions"] < n_total:
            try:
                c = recv.chunks.get(timeout=60)
            except queue.Empty:
                raise RuntimeError("the producer stopped sending") from None
            if t0 is None:
                t0 = time.perf_counter() - 1e-9  # first chunk in: the clock starts at its arrival
            inserter.insert(c)
        dt = time.perf_counter() - t0
        proc.join(60)
        recv.stop()
        log.close()
        ctx.destroy(linger=0)
        assert len(online) == n_total and recv.stats["duplicates"] == 0
        mb = recv.stats["bytes"] / 2**20
        return {"transitions_per_s": n_total / dt, "MiB_per_s": mb / dt, "log_GiB": log.bytes_written / 2**30}


def _produce_naive(port: int, n_total: int, ready) -> None:
    import zmq

    rng = np.random.default_rng(0)
    pool = [{k: rng.integers(0, 256, s, dtype=np.uint8) for k, s in CAMS.items()} for _ in range(51)]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.connect(f"tcp://127.0.0.1:{port}")
    ready.wait()
    for i in range(n_total):
        t = i % 50
        tr = {"obs": {"state": rng.standard_normal(STATE_DIM).astype(np.float32), "images": pool[t]},
              "next_obs": {"state": rng.standard_normal(STATE_DIM).astype(np.float32), "images": pool[t + 1]},
              "action": rng.uniform(-1, 1, ACTION_DIM).astype(np.float32), "reward": 0.0, "done": t == 49}
        sock.send(pickle.dumps(tr, protocol=pickle.HIGHEST_PROTOCOL))
    sock.close(linger=-1)
    ctx.term()


def measure_naive(port: int, n_total: int, warm_buffer: bool = False) -> dict[str, float]:
    import zmq

    from robot_rl.replay import ReplayBuffer

    layout = _layout()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.bind(f"tcp://127.0.0.1:{port}")
    buf = ReplayBuffer(layout, ACTION_DIM, 2 * n_total + 10)
    if warm_buffer:
        for arr in (buf.state, *buf.images.values()):
            arr.fill(1)
    mpctx = mp.get_context("spawn")
    ready = mpctx.Event()
    proc = mpctx.Process(target=_produce_naive, args=(port, n_total, ready))
    proc.start()
    time.sleep(2.0)
    ready.set()
    t0 = None
    nbytes = 0
    for _ in range(n_total):
        raw = sock.recv()
        if t0 is None:
            t0 = time.perf_counter()
        nbytes += len(raw)
        tr = pickle.loads(raw)  # what robot_rl never does with network data
        buf.start_episode(tr["obs"])  # one (s, s') pair per message: s and s' both stored
        buf.add(tr["action"], tr["reward"], tr["next_obs"], tr["done"])
        buf.end_episode()
    dt = time.perf_counter() - t0
    proc.join(60)
    ctx.destroy(linger=0)
    return {"transitions_per_s": n_total / dt, "MiB_per_s": nbytes / 2**20 / dt}


def _param_actor(port: int, rounds: int, out) -> None:
    import torch
    import zmq

    from robot_rl.actor import PolicyHolder
    from robot_rl.transport.link import ParamsSubscriber

    torch.set_num_threads(1)
    ctx = zmq.Context()
    sub = ParamsSubscriber(ctx, f"tcp://127.0.0.1:{port}")
    with tempfile.TemporaryDirectory() as tmp:
        holder = PolicyHolder(_SpacesOnly(), torch.device("cpu"), Path(tmp))
        latencies = []
        deadline = time.monotonic() + 300
        while len(latencies) < rounds and time.monotonic() < deadline:
            p = sub.poll(100)
            if p is None:
                continue
            if holder.policy is None:  # the first load also builds the network: not a broadcast latency
                holder.load(p, cache=False)
                ready = time.time()
                continue
            holder.load(p, cache=False)
            if p.meta["published_at"] > ready:  # published while the actor was warming up: it waited in the queue
                latencies.append(time.time() - p.meta["published_at"] + p.meta["serialise_s"])
    out.put(latencies)
    sub.close()
    ctx.destroy(linger=0)


def measure_param_latency(port: int, rounds: int) -> dict[str, float]:
    import torch
    import zmq

    from robot_rl.agent import SACAgent, SACConfig
    from safetensors.torch import save

    from robot_rl.transport.link import ParamsPublisher

    cfg = SACConfig()
    agent = SACAgent(STATE_DIM, dict(CAMS), ACTION_DIM, cfg, torch.device("cpu"))
    ctx = zmq.Context()
    pub = ParamsPublisher(ctx, f"tcp://127.0.0.1:{port}")
    mpctx = mp.get_context("spawn")
    out = mpctx.Queue()
    proc = mpctx.Process(target=_param_actor, args=(port, rounds, out))
    proc.start()
    from robot_rl.policies.policy import Policy

    policy = Policy.from_modules(_layout(), _scaler(), agent.state_norm, agent.encoder, agent.actor, cfg)
    meta = {"policy": policy.spec()}
    nbytes = 0
    latencies = None
    for version in range(10_000):
        # publish() serialises first and stamps published_at after; the actor adds this time
        t0 = time.perf_counter()
        params = {k: v.cpu() for k, v in policy.params().items()}
        save(params)
        serialise_s = time.perf_counter() - t0
        nbytes = pub.publish(params, version, {**meta, "serialise_s": serialise_s})
        try:
            latencies = out.get(timeout=0.3)
            break
        except queue.Empty:
            pass
    proc.join(30)
    pub.close()
    ctx.destroy(linger=0)
    lat = np.array(latencies) * 1e3
    return {"MiB": nbytes / 2**20, "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "n": len(lat)}


def main(args: Args) -> None:
    print(f"transitions: state {STATE_DIM} float32 + 2 cameras 128x128x3 uint8 "
          f"({sum(int(np.prod(s)) for s in CAMS.values()) / 1024:.0f} KiB per observation), loopback TCP\n")
    rows = []
    port = args.port
    base = {}
    for warm in (False, True):
        state = "steady state" if warm else "fresh buffer"
        for chunk in args.chunk_steps:
            rows.append((f"robot_rl, chunks of {chunk}, {state}", measure_robot_rl(port, args.transitions, chunk, warm), warm))
            port += 2
        base[warm] = measure_naive(port, args.baseline_transitions, warm)
        port += 2
        rows.append((f"naive: pickle per transition, {state} (baseline)", base[warm], warm))
    print("fresh buffer: replay memory written for the first time (page faults); steady state: a learner past its "
          "first buffer capacity\n")
    print(f"{'setting (robot_rl: spool + acks + replay log)':<52} {'transitions/s':>14} {'MiB/s':>8} {'vs baseline':>12}")
    for name, r, warm in rows:
        print(f"{name:<52} {r['transitions_per_s']:>14,.0f} {r['MiB_per_s']:>8,.0f} "
              f"{r['transitions_per_s'] / base[warm]['transitions_per_s']:>11.2f}x")
    lat = measure_param_latency(port, args.param_rounds)
    print(f"\nparameter broadcast, default pixel policy ({lat['MiB']:.2f} MiB safetensors), publish -> loaded in the "
          f"actor's network, {lat['n']} rounds: p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms")


if __name__ == "__main__":
    main(tyro.cli(Args))
