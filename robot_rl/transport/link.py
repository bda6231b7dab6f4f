"""ZeroMQ sockets of the actor-learner link.

Topology (the learner binds, actors connect; see ../shared/DESIGN.md):

* ``tcp://<host>:<port>``: learner ROUTER <- actor DEALERs. Actors send transition chunks; the
  learner answers each with a cumulative ``ack`` once the chunk is in its on-disk log, or with an
  ``error`` saying why it refused a message.
* ``tcp://<host>:<port + 1>``: learner PUB -> actor SUBs. Policy parameters (safetensors bytes).

Delivery is at-least-once with de-duplication, i.e. exactly-once into the learner's buffers:
:class:`ChunkSender` writes every chunk to the actor's spool directory before sending it, keeps
it until the learner acknowledges it, and resends unacknowledged chunks in order (go-back-N) after
``ack_timeout_s``. :class:`ChunkReceiver` accepts only the next sequence number of each actor,
re-acknowledges duplicates and drops out-of-order chunks (the sender resends them in order).
Nothing here unpickles: see :mod:`robot_rl.transport.wire`.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from robot_rl.errors import TransportError, WireError
from robot_rl.transport import keys as keys_mod
from robot_rl.transport.messages import TransitionChunk
from robot_rl.transport.records import SegmentLog, read_record_file, write_record_file
from robot_rl.transport.wire import DEFAULT_MAX_MESSAGE_BYTES, Message, decode, encode

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def tcp_address(host: str, port: int) -> str:
    """``tcp://host:port`` (IPv6 literals bracketed).

    Raises:
        TransportError: port outside 1..65534 (the parameter port is ``port + 1``).
    """
    if not 0 < port < 65535:
        raise TransportError(f"port must be in 1..65534 (the parameter stream uses port + 1), got {port}")
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A port p such that p and p + 1 are both free on ``host`` now (a learner's transition and
    parameter ports); the OS may hand them out again before they are bound.

    Raises:
        RuntimeError: no such pair found in 100 tries.
    """
    import socket

    for _ in range(100):
        with socket.socket() as s:
            s.bind((host, 0))
            p = s.getsockname()[1]
        if p >= 65534:
            continue
        try:
            with socket.socket() as s1, socket.socket() as s2:
                s1.bind((host, p))
                s2.bind((host, p + 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def check_bind_host(host: str, curve: bool, insecure: bool) -> None:
    """Refuse to expose an unauthenticated learner beyond this machine.

    Raises:
        TransportError: ``host`` is not loopback, CURVE is off and ``insecure`` was not given.
    """
    if host not in LOOPBACK and not curve and not insecure:
        raise TransportError(
            f"binding the learner to {host} without CURVE would let anyone on the network feed it data. "
            "Create keys with `robot-rl keys --out keys` and pass --curve-keys keys, "
            "or pass --insecure on a trusted, isolated network.")


# --------------------------------------------------------------------------- learner side
class ChunkReceiver(threading.Thread):
    """Learner thread: receive, validate, de-duplicate, log to disk, acknowledge.

    Accepted chunks are appended to ``log`` *before* they are acknowledged, then put on
    ``chunks`` (a :class:`queue.Queue` of :class:`TransitionChunk`) for the training loop.
    Every refused message is counted in :attr:`stats` by reason (``malformed``, ``truncated``,
    ``oversized``, ``version``, ``layout``, ``reward``), as are ``duplicates``, ``out_of_order`` and CURVE
    ``handshake_failures``; the thread never dies on bad input.

    Args:
        ctx: ZeroMQ context. address: ``tcp://host:port`` to bind.
        layout: ``(state_dim, image_shapes, action_dim)`` chunks must match.
        log: the learner's replay log. last_seq: actor ID -> last accepted chunk (restored from
            the log on ``--resume``; updated in place).
        max_message_bytes: larger messages are refused (and ZeroMQ drops any single frame larger
            than this before it is buffered).
        curve: ``(public, secret, authorized_dir)`` of the learner, or None for a plain link.
        reward_source: the reward source this learner's replay holds (restored on ``--resume``);
            None: adopt the first actor's. Chunks declaring another source are refused (reason
            ``reward``): one replay buffer must not mix rewards of different sources. A chunk
            that declares none counts as ``{"reward": "env"}``.
        on_reward_source: called once with the adopted source (the learner saves it with the run).

    Raises:
        TransportError (from :meth:`start_and_wait`): the address cannot be bound.
    """

    def __init__(self, ctx: zmq.Context, address: str, layout: tuple[int, dict, int], log: SegmentLog,
                 last_seq: dict[str, int], max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 curve: tuple[bytes, bytes, Path] | None = None, queue_size: int = 256,
                 reward_source: dict[str, Any] | None = None,
                 on_reward_source: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(name="robot_rl-chunk-receiver", daemon=True)
        self.reward_source, self.on_reward_source = reward_source, on_reward_source
        self.ctx, self.address, self.layout, self.log = ctx, address, layout, log
        self.last_seq = last_seq
        self.max_message_bytes = int(max_message_bytes)
        self.curve = curve
        self.chunks: queue.Queue[TransitionChunk] = queue.Queue(maxsize=queue_size)
        self.stats: Counter[str] = Counter()
        self.last_error: dict[str, str] = {}
        self._lock = threading.Lock()  # stats, last_error and last_seq are read by the training thread
        self._stop_event = threading.Event()
        self._ready = threading.Event()
        self._bind_error: Exception | None = None
        self._last_error_reply: dict[bytes, float] = {}

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] += n

    def snapshot(self) -> tuple[dict[str, int], dict[str, str], dict[str, int]]:
        """Consistent copies of ``(stats, last_error, last_seq)``, safe from any thread."""
        with self._lock:
            return dict(self.stats), dict(self.last_error), dict(self.last_seq)

    def start_and_wait(self, timeout_s: float = 10.0) -> None:
        """Start the thread and wait until the socket is bound.

        Raises:
            TransportError: binding failed (address in use, bad host).
        """
        self.start()
        self._ready.wait(timeout_s)
        if self._bind_error is not None:
            raise TransportError(f"cannot bind the learner to {self.address}: {self._bind_error}. Is another "
                                 "learner running on this port? Pass --port to choose another.") from self._bind_error

    def stop(self) -> None:
        """Ask the thread to finish and wait for it."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=5.0)

    def _socket(self) -> zmq.Socket:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted actor takes over its routing ID
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        sock.setsockopt(zmq.RCVHWM, 64)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
        if self.curve is not None:
            public, secret, _ = self.curve
            sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True
        return sock

    def run(self) -> None:  # noqa: D102 - thread body
        try:
            sock = self._socket()
            sock.bind(self.address)
            monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                              | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        except zmq.ZMQError as e:
            self._bind_error = e
            self._ready.set()
            return
        self._ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        from zmq.utils.monitor import recv_monitor_message

        try:
            while not self._stop_event.is_set():
                events = dict(poller.poll(100))
                if monitor in events:
                    ev = recv_monitor_message(monitor)
                    if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                        self._count("handshakes")
                    else:
                        self._count("handshake_failures")
                if sock in events:
                    for _ in range(64):
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._handle(sock, frames)
        finally:
            sock.disable_monitor()
            monitor.close(0)
            sock.close(0)

    def _reply(self, sock: zmq.Socket, identity: Any, msg: Message) -> None:
        try:
            sock.send_multipart([identity, *encode(msg)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the actor is gone; it resends what it did not see acknowledged

    def _check_reward_source(self, chunk: TransitionChunk) -> None:
        source = chunk.reward_source or {"reward": "env"}
        if self.reward_source is None:
            self.reward_source = source
            if self.on_reward_source is not None:
                self.on_reward_source(source)
        elif source != self.reward_source:
            raise WireError(f"actor {chunk.actor!r} sends rewards from {source}, but this learner's replay holds rewards from "
                            f"{self.reward_source}: restart the actor with the same --reward settings, or start a new "
                            "learner run for the new reward", "reward")

    def _handle(self, sock: zmq.Socket, frames: list[zmq.Frame]) -> None:
        identity, body = frames[0], frames[1:]
        self._count("messages")
        try:
            msg = decode(body, self.max_message_bytes)
            chunk = TransitionChunk.from_message(msg, *self.layout)
            self._check_reward_source(chunk)
        except WireError as e:
            self._count(e.reason)
            self._count("rejected")
            with self._lock:
                self.last_error[e.reason] = str(e)
            now = time.monotonic()
            key = bytes(identity.bytes)
            if now - self._last_error_reply.get(key, 0.0) > 1.0 and len(self._last_error_reply) < 10_000:
                self._last_error_reply[key] = now  # at most one error reply per peer and second
                self._reply(sock, identity, Message("error", sender="learner", meta={"reason": e.reason,
                                                                                       "message": str(e)[:500]}))
            return
        last = self.last_seq.get(chunk.actor, 0)
        resend = False
        if chunk.seq <= last:
            self._count("duplicates")
        elif chunk.seq > last + 1:
            self._count("out_of_order")
            resend = True  # a chunk before this one was lost in transit: ask for everything after `last`
        else:
            self.log.append(body)  # on disk (in the OS) before it is acknowledged
            with self._lock:
                self.last_seq[chunk.actor] = chunk.seq
            last = chunk.seq
            self._count("chunks")
            self._count("transitions", len(chunk))
            self._count("bytes", msg.nbytes)
            while True:  # blocks while the trainer lags: back-pressure to the actors (they spool)
                try:
                    self.chunks.put(chunk, timeout=0.1)
                    break
                except queue.Full:
                    if self._stop_event.is_set():
                        return  # it is in the log: --resume replays it
        self._reply(sock, identity, Message("ack", seq=last, sender="learner", meta={"resend": resend}))


class ParamsPublisher:
    """Learner side of the parameter stream (PUB; never blocks, late joiners get the next one).

    Args:
        ctx: ZeroMQ context. address: ``tcp://host:port+1`` to bind.
        curve: ``(public, secret, authorized_dir)`` or None.

    Raises:
        TransportError: the address cannot be bound.
    """

    def __init__(self, ctx: zmq.Context, address: str, curve: tuple[bytes, bytes, Path] | None = None) -> None:
        self.sock = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 4)
        if curve is not None:
            self.sock.curve_secretkey, self.sock.curve_publickey, self.sock.curve_server = curve[1], curve[0], True
        try:
            self.sock.bind(address)
        except zmq.ZMQError as e:
            self.sock.close(0)
            raise TransportError(f"cannot bind the parameter stream to {address}: {e}; pass another --port") from e
        self.published = 0

    def publish(self, params: dict[str, Any], version: int, meta: dict[str, Any]) -> int:
        """Send ``params`` (name -> CPU tensor) as safetensors bytes; returns the bytes sent."""
        from safetensors.torch import save

        blob = np.frombuffer(save(params), np.uint8)
        frames = encode(Message("params", seq=int(version), sender="learner", arrays={"safetensors": blob},
                                meta={**meta, "published_at": time.time()}))
        self.sock.send_multipart(frames, copy=False)
        self.published += 1
        return blob.nbytes

    def close(self) -> None:
        """Close the socket. Idempotent."""
        self.sock.close(0)


# --------------------------------------------------------------------------- actor side
def _curve_client(sock: zmq.Socket, curve: tuple[bytes, bytes, bytes] | None) -> None:
    if curve is not None:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = curve


@dataclass
class ReceivedParams:
    """Newest parameters from the learner.

    Attributes:
        version: the learner's gradient-step count. tensors: name -> CPU tensor.
        meta: what the actor needs to build the policy (see :mod:`robot_rl.transport.messages`).
        latency_s: receive time minus publish time (clocks of both machines).
    """

    version: int
    tensors: dict[str, Any]
    meta: dict[str, Any]
    latency_s: float


class ParamsSubscriber:
    """Actor side of the parameter stream: :meth:`poll` returns only the newest message.

    Args:
        ctx: context. address: ``tcp://learner:port+1``. curve: ``(public, secret, server public)`` or None.
        max_message_bytes: larger parameter messages are refused (counted in :attr:`rejected`).
    """

    def __init__(self, ctx: zmq.Context, address: str, curve: tuple[bytes, bytes, bytes] | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 4)
        self.sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        _curve_client(self.sock, curve)
        self.sock.connect(address)
        self.max_message_bytes = max_message_bytes
        self.rejected = 0
        self.last_error = ""

    def poll(self, timeout_ms: int = 0) -> ReceivedParams | None:
        """Drain the socket without blocking (or wait up to ``timeout_ms`` for a first message);
        returns the newest valid parameters, or None."""
        newest = None
        wait = timeout_ms
        while self.sock.poll(wait):
            wait = 0
            frames = self.sock.recv_multipart(copy=False)
            try:
                msg = decode(frames, self.max_message_bytes)
                if msg.kind != "params" or "safetensors" not in msg.arrays:
                    raise WireError(f"expected params, got {msg.kind}", "malformed")
            except WireError as e:
                self.rejected += 1
                self.last_error = str(e)
                continue
            if newest is None or msg.seq >= newest.seq:
                newest = msg
        if newest is None:
            return None
        from safetensors.torch import load

        try:
            tensors = load(bytes(newest.arrays["safetensors"]))
        except Exception as e:  # noqa: BLE001 - a corrupt blob is a rejected message, not a crash
            self.rejected += 1
            self.last_error = f"unreadable safetensors blob: {e}"
            return None
        sent = newest.meta.get("published_at")
        latency = time.time() - float(sent) if isinstance(sent, (int, float)) else float("nan")
        return ReceivedParams(newest.seq, tensors, newest.meta, latency)

    def close(self) -> None:
        """Close the socket. Idempotent."""
        self.sock.close(0)


class ChunkSender:
    """Actor side of the transition stream, with a disk spool (at-least-once delivery).

    :meth:`put` writes the chunk to ``spool_dir/chunk_<seq>.rrl`` (atomically) and queues it;
    :meth:`pump` (call it every control step; it never blocks) reads acknowledgements, deletes
    acknowledged files, sends queued chunks while fewer than ``window`` are unacknowledged, and
    resends everything unacknowledged, in order, when the oldest one has waited ``ack_timeout_s``.
    A restarted actor finds its unsent chunks in the spool and sends them first; sequence numbers
    and step IDs continue from the spool's ``state.json``.

    Args:
        ctx: context. address: ``tcp://learner:port``. actor_id: unique per actor (the learner
            de-duplicates per actor ID). spool_dir: this actor's spool directory.
        curve: ``(public, secret, server public)`` or None.
        window: chunks in flight without acknowledgement. ack_timeout_s: resend after this.
        fsync: fsync each spooled chunk (survives power loss of the robot PC).

    Raises:
        TransportError: the learner answered with an ``error`` of reason ``version`` or
            ``layout``, or a spooled chunk is unreadable (raised from :meth:`pump`: resending
            cannot fix either).
    """

    def __init__(self, ctx: zmq.Context, address: str, actor_id: str, spool_dir: Path,
                 curve: tuple[bytes, bytes, bytes] | None = None, window: int = 16, ack_timeout_s: float = 5.0,
                 fsync: bool = False, max_memory_chunks: int = 64) -> None:
        if not actor_id or len(actor_id) > 200:
            raise TransportError(f"actor ID must be 1..200 characters, got {actor_id!r}")
        self.actor_id, self.address = actor_id, address
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.window, self.ack_timeout_s, self.fsync = int(window), float(ack_timeout_s), fsync
        self.max_memory_chunks = int(max_memory_chunks)
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, actor_id.encode())
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing while no learner is connected
        self.sock.setsockopt(zmq.SNDHWM, max(2, self.window))
        self.sock.setsockopt(zmq.RECONNECT_IVL, 100)
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
        _curve_client(self.sock, curve)
        self.sock.connect(address)
        # pending: seq -> [frames or None (on disk only), last send time or None]
        self.pending: OrderedDict[int, list[Any]] = OrderedDict()
        state = self._read_state()
        files = sorted(self.spool_dir.glob("chunk_*.rrl"))
        for f in files:
            self.pending[int(f.stem.split("_")[1])] = [None, None]
        for tmp in self.spool_dir.glob("chunk_*.rrl.tmp"):
            tmp.unlink()  # never renamed: never sent, never counted (its seq is reused)
        self.acked = int(state.get("acked", 0))
        self.next_seq = max([int(state.get("next_seq", 1)), *(s + 1 for s in self.pending)])
        self.next_step_id = int(state.get("next_step_id", 0))
        self.next_episode = int(state.get("next_episode", 0))
        if files:
            last = read_record_file(files[-1])
            if last is not None:
                msg = decode(last)
                if "step_id" in msg.arrays and msg.arrays["step_id"].size:
                    self.next_step_id = max(self.next_step_id, int(msg.arrays["step_id"][-1]) + 1)
                self.next_episode = max(self.next_episode, int(msg.meta.get("episode", -1)) + 1)
        self.recovered_chunks = len(self.pending)
        self.sent = self.resent = 0
        self.last_ack_time = time.monotonic()
        self._last_go_back = 0.0
        self.errors: Counter[str] = Counter()
        self.last_error = ""

    # -- persistence
    def _state_path(self) -> Path:
        return self.spool_dir / "state.json"

    def _read_state(self) -> dict[str, Any]:
        try:
            return json.loads(self._state_path().read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def save_state(self, next_episode: int | None = None) -> None:
        """Persist the counters (atomically)."""
        if next_episode is not None:
            self.next_episode = next_episode
        tmp = self._state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps({"next_seq": self.next_seq, "next_step_id": self.next_step_id,
                                   "next_episode": self.next_episode, "acked": self.acked, "actor_id": self.actor_id}))
        os.replace(tmp, self._state_path())

    def _path(self, seq: int) -> Path:
        return self.spool_dir / f"chunk_{seq:012d}.rrl"

    # -- API
    def put(self, chunk: TransitionChunk) -> int:
        """Spool and queue ``chunk``; its ``actor`` and ``seq`` are assigned here. Returns the seq."""
        chunk.actor, chunk.seq = self.actor_id, self.next_seq
        frames = encode(chunk.to_message())
        write_record_file(self._path(chunk.seq), frames, fsync=self.fsync)
        self.next_seq += 1
        self.next_step_id = max(self.next_step_id, int(chunk.step_id[-1]) + 1) if len(chunk) else self.next_step_id
        self.save_state()
        keep = len(self.pending) < self.max_memory_chunks
        self.pending[chunk.seq] = [frames if keep else None, None]
        return chunk.seq

    @property
    def unacked(self) -> int:
        """Chunks spooled and not yet acknowledged."""
        return len(self.pending)

    def spool_bytes(self) -> int:
        """Bytes of chunk files in the spool."""
        return sum(f.stat().st_size for f in self.spool_dir.glob("chunk_*.rrl"))

    def seconds_since_ack(self) -> float:
        """Seconds since the last acknowledgement (or since start)."""
        return time.monotonic() - self.last_ack_time

    def _on_reply(self, frames: list[Any]) -> None:
        try:
            msg = decode(frames)
        except WireError as e:
            self.errors[e.reason] += 1
            self.last_error = str(e)
            return
        if msg.kind == "ack":
            self.last_ack_time = time.monotonic()
            while self.pending and next(iter(self.pending)) <= msg.seq:  # pending is in seq order
                seq, _ = self.pending.popitem(last=False)
                self._path(seq).unlink(missing_ok=True)
            if msg.seq > self.acked:
                self.acked = msg.seq
            now = time.monotonic()
            if msg.meta.get("resend") is True and self.pending and now - self._last_go_back > 0.5:
                # a chunk was lost in transit (e.g. queued on a connection that died): go back to
                # the first unacknowledged chunk at once instead of waiting for the timeout
                self._last_go_back = now
                self._go_back()
        elif msg.kind == "error":
            reason = str(msg.meta.get("reason", "malformed"))
            self.errors[reason] += 1
            self.last_error = str(msg.meta.get("message", ""))
            if reason in ("version", "layout"):
                raise TransportError(f"the learner refused this actor's transitions: {self.last_error}")

    def pump(self) -> None:
        """Receive acknowledgements and send what may be sent; never blocks."""
        while True:
            try:
                self._on_reply(self.sock.recv_multipart(zmq.NOBLOCK, copy=False))
            except zmq.Again:
                break
        if not self.pending:
            return
        now = time.monotonic()
        first = next(iter(self.pending.values()))
        if first[1] is not None and now - first[1] > self.ack_timeout_s:
            self.resent += self._go_back()
        # chunks are sent in order, so the sent ones are a prefix of at most `window` entries:
        # this loop visits O(window) entries however large the spool is
        in_flight = 0
        for seq, entry in self.pending.items():
            if entry[1] is not None:
                in_flight += 1
                continue
            if in_flight >= self.window:
                break
            frames = entry[0]
            if frames is None:
                frames = read_record_file(self._path(seq))
                if frames is None:  # files are renamed into place complete: only a disk fault does this
                    raise TransportError(f"spooled chunk {self._path(seq)} is unreadable (disk fault?); the learner "
                                         "accepts chunks only in order, so this actor cannot deliver past it")
            try:
                self.sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break  # no learner connected, or its queue is full: try again next pump
            entry[1] = now
            in_flight += 1
            self.sent += 1

    def _go_back(self) -> int:
        """Mark the sent-but-unacknowledged prefix for resending (go-back-N); returns its length."""
        n = 0
        for entry in self.pending.values():
            if entry[1] is None:
                break
            entry[1] = None
            n += 1
        return n

    def flush(self, timeout_s: float, on_wait: Callable[[], None] | None = None) -> bool:
        """Pump until every chunk is acknowledged or ``timeout_s`` passes; True when all were."""
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            self.pump()
            if on_wait is not None:
                on_wait()
            self.sock.poll(20)
        self.pump()
        return not self.pending

    def close(self) -> None:
        """Persist the counters and close the socket (unacknowledged chunks stay spooled)."""
        self.save_state()
        self.sock.close(0)


def curve_for_learner(directory: Path | None) -> tuple[bytes, bytes, Path] | None:
    """Learner CURVE keys from a ``robot-rl keys`` directory, or None."""
    return None if directory is None else keys_mod.learner_keys(directory)


def curve_for_actor(directory: Path | None, actor_id: str) -> tuple[bytes, bytes, bytes] | None:
    """Actor CURVE keys from a directory with ``<actor_id>.key_secret`` and ``learner.key``, or None."""
    return None if directory is None else keys_mod.actor_keys(directory, actor_id)


def start_authenticator(ctx: zmq.Context, authorized_dir: Path):
    """Start ZeroMQ's authenticator thread: only CURVE clients whose public keys are in
    ``authorized_dir`` (``*.key`` certificates) get in. Returns the running
    ``zmq.auth.thread.ThreadAuthenticator``; call its ``stop()`` when done."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(authorized_dir))
    return auth
