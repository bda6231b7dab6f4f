"""Actor and learner as real processes over real ZeroMQ sockets on loopback.

Each test starts ``robot-rl learner`` and ``robot-rl actor`` subprocesses on the MuJoCo
pick-and-lift task and checks what ended up in the learner's replay log: every transition the
actor produced (its running ``step_id`` counter) must be there exactly once.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from robot_rl.transport.link import free_port_pair as _free_port_pair
from robot_rl.transport.records import SegmentLog
from robot_rl.transport.wire import decode, encode, Message

ENV = {**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"}
CLI = [sys.executable, "-m", "robot_rl.cli"]
pytestmark = pytest.mark.timeout(300)




def _wait(cond, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}:\n{_output(proc)}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                         + (f"\n{_output(proc)}" if proc is not None else ""))


def _output(proc: subprocess.Popen) -> str:
    path = getattr(proc, "log_path", None)
    return Path(path).read_text()[-3000:] if path and Path(path).exists() else ""


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    f = open(log, "w")
    proc = subprocess.Popen([*CLI, *args], stdout=f, stderr=subprocess.STDOUT, env=ENV)
    proc.log_path = log
    return proc


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _learner(tmp: Path, port: int, *extra: str, resume: bool = False, name: str = "learner") -> subprocess.Popen:
    run = tmp / "run"
    args = ["learner", "--port", str(port), "--no-progress", "--torch-threads", "1", *extra]
    args += ["--resume", str(run)] if resume else ["--run-dir", str(run)]
    proc = _spawn(args, tmp / f"{name}.log")
    _wait(lambda: _status(run).get("pid") == proc.pid, 90, "the learner to serve", proc)
    return proc


def _actor(tmp: Path, port: int, steps: int, *extra: str, name: str = "actor") -> subprocess.Popen:
    return _spawn(["actor", "--port", str(port), "--total-env-steps", str(steps), "--no-progress",
                   "--spool-dir", str(tmp / "spool"), *extra], tmp / f"{name}.log")


def _stop(proc: subprocess.Popen, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def _logged_step_ids(run: Path, actor: str = "actor0") -> list[int]:
    ids: list[int] = []
    log = SegmentLog(run / "replay")
    for frames in log:
        msg = decode(frames)
        if msg.sender == actor:
            ids.extend(int(i) for i in msg.arrays["step_id"])
    log.close()
    return ids


def _actor_summary(tmp: Path, name: str = "actor") -> dict[str, str]:
    lines = (tmp / f"{name}.log").read_text().splitlines()
    start = lines.index("actor stopped")
    return dict(line.split(None, 1) for line in lines[start + 1:] if line.strip())


def _assert_exactly_once(tmp: Path, actor: str = "actor0", spool: str = "spool") -> int:
    produced = int(json.loads((tmp / spool / "state.json").read_text())["next_step_id"])
    ids = _logged_step_ids(tmp / "run", actor)
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} transitions logged twice"
    assert sorted(ids) == list(range(produced)), f"logged {len(ids)} of {produced} transitions"
    assert not list((tmp / spool).glob("chunk_*.rrl")), "the spool still holds unacknowledged chunks"
    return produced


def test_actor_and_learner_train_together(tmp_path):
    port = _free_port_pair()
    learner = _learner(tmp_path, port, "--num-demos", "2", "--publish-every-updates", "4")
    try:  # the scripted corrector takes over from the untrained policy: interventions reach the demo buffer
        actor = _actor(tmp_path, port, 150, "--teleop", "scripted")
        assert actor.wait(240) == 0, _output(actor)
        _wait(lambda: _status(tmp_path / "run").get("received_transitions") == 150, 30, "all transitions", learner)
        assert _stop(learner) == 0, _output(learner)
    finally:
        learner.kill()
    status = _status(tmp_path / "run")
    assert status["updates"] > 0 and status["transport"].get("rejected", 0) == 0
    assert status["online_transitions"] == 150 and status["demo_transitions_from_files"] > 0
    assert status["interventions"] > 0
    assert status["demo_transitions"] == status["demo_transitions_from_files"] + status["interventions"]
    # the actor's reward source is saved with the learner run
    assert json.loads((tmp_path / "run" / "reward_source.json").read_text())["reward"] == "env"
    summary = _actor_summary(tmp_path)
    assert int(summary["params_version"]) > 0, "the actor never received trained parameters"
    assert int(summary["params_received"]) >= 2
    assert _assert_exactly_once(tmp_path) == 150
    episodes = (tmp_path / "run" / "episodes.csv").read_text().splitlines()
    assert len(episodes) - 1 == int(summary["episodes"]) >= 2
    # robot-rl eval reads a learner run like a train run
    out = subprocess.run([*CLI, "eval", "--run-dir", str(tmp_path / "run"), "--episodes", "2", "--no-video"],
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "success_rate" in out.stdout, out.stderr
    assert (tmp_path / "run" / "eval" / "training_episodes.png").is_file()


def test_two_actors_feed_one_learner(tmp_path):
    port = _free_port_pair()
    run = tmp_path / "run"
    learner = _learner(tmp_path, port, "--num-demos", "0", "--update-ratio", "0.2")
    actors = [_spawn(["actor", "--port", str(port), "--total-env-steps", "120", "--no-progress", "--actor-id", name,
                      "--seed", str(i), "--chunk-steps", "7", "--spool-dir", str(tmp_path / f"spool_{name}")],
                     tmp_path / f"{name}.log") for i, name in enumerate(("left", "right"))]
    try:
        for a in actors:
            assert a.wait(240) == 0, _output(a)
        _wait(lambda: _status(run).get("received_transitions") == 240, 60, "both actors' transitions", learner)
        assert _stop(learner) == 0
    finally:
        for p in (*actors, learner):
            p.kill()
    status = _status(run)
    assert status["last_seq"].keys() == {"left", "right"} and status["online_transitions"] == 240
    assert status["inserter"].get("orphan_chunks", 0) == 0
    for name in ("left", "right"):
        assert _assert_exactly_once(tmp_path, name, f"spool_{name}") == 120


def test_sigkill_learner_then_resume_keeps_every_transition_once(tmp_path):
    port = _free_port_pair()
    run = tmp_path / "run"
    pixels = ["--env", "robot_rl/PandaPickLiftPixels-v0", "--env-kwargs", "image_size", "32"]  # images through the log
    learner = _learner(tmp_path, port, *pixels, "--num-demos", "0", "--checkpoint-every-steps", "20",
                       "--update-ratio", "0.05")
    actor = _actor(tmp_path, port, 600, *pixels, "--chunk-steps", "5", "--ack-timeout-s", "1")
    try:
        _wait(lambda: _status(run).get("received_transitions", 0) >= 100, 120, "100 transitions", learner)
        learner.send_signal(signal.SIGKILL)
        learner.wait(10)
        killed_at = _status(run)["received_transitions"]
        time.sleep(3)  # the actor keeps acting and spools meanwhile
        assert actor.poll() is None, "the actor must survive the learner's death"
        spooled = list((tmp_path / "spool").glob("chunk_*.rrl"))
        assert spooled, "nothing was spooled while the learner was dead"
        learner = _learner(tmp_path, port, resume=True, name="learner2")
        assert (tmp_path / "run" / "checkpoints" / "latest").is_file()
        assert actor.wait(240) == 0, _output(actor)
        _wait(lambda: _status(run).get("received_transitions") == 600, 60, "all 600 transitions", learner)
        assert _stop(learner) == 0, _output(learner)
    finally:
        actor.kill()
        learner.kill()
    assert killed_at < 600
    assert _assert_exactly_once(tmp_path) == 600
    status = _status(run)
    assert status["online_transitions"] == 600 and status["updates"] > 0


class _Proxy:
    """A TCP forwarder that can cut every connection and refuse new ones (the link goes down)."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port, self.target_port = listen_port, target_port
        self.up = threading.Event()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.server: socket.socket | None = None
        self.alive = True
        self.restore()

    def restore(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.listen_port))
        srv.listen(16)
        self.server = srv
        self.up.set()
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while self.up.is_set():
            try:
                client, _ = srv.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while self.up.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for s in ready:
                    data = s.recv(1 << 16)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                s.close()

    def cut(self) -> None:
        self.up.clear()
        self.server.close()
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns.clear()


def test_link_down_for_a_while_loses_nothing(tmp_path):
    port, proxy_port = _free_port_pair(), _free_port_pair()
    run = tmp_path / "run"
    proxies = [_Proxy(proxy_port, port), _Proxy(proxy_port + 1, port + 1)]
    learner = _learner(tmp_path, port, "--num-demos", "0")
    actor = _actor(tmp_path, proxy_port, 500, "--chunk-steps", "5", "--ack-timeout-s", "1")
    try:
        _wait(lambda: _status(run).get("received_transitions", 0) >= 80, 120, "80 transitions", learner)
        for p in proxies:
            p.cut()
        time.sleep(1.5)  # status.json is rewritten every second: let it catch up with the cut
        before = _status(run)["transport"]["transitions"]
        time.sleep(3)
        during = _status(run)["transport"]["transitions"]
        assert during == before, "data arrived through a link that was down"
        assert list((tmp_path / "spool").glob("chunk_*.rrl")), "the actor did not spool while the link was down"
        for p in proxies:
            p.restore()
        assert actor.wait(240) == 0, _output(actor)
        _wait(lambda: _status(run).get("received_transitions") == 500, 60, "all 500 transitions", learner)
        assert _stop(learner) == 0
    finally:
        actor.kill()
        learner.kill()
        for p in proxies:
            p.cut()
    assert _assert_exactly_once(tmp_path) == 500


def _bad_messages(rng: np.random.Generator, n: int, max_bytes: int) -> list[tuple[str, list[bytes]]]:
    """n malformed / truncated / oversized / wrong-version / wrong-layout messages."""
    good_header = {"schema": "robot_rl.wire", "v": 1, "kind": "transitions", "seq": 1, "sender": "evil",
                   "arrays": [["state", "float32", [2, 19]]], "meta": {"episode": 0, "t0": 0, "first": True}}
    kinds = ["garbage", "truncated", "oversized", "version", "layout", "not_a_map", "bad_dtype", "missing_frame"]
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "garbage":
            frames = [rng.bytes(int(rng.integers(1, 200)))]
        elif kind == "truncated":
            frames = [msgpack.packb(good_header), rng.bytes(int(rng.integers(0, 2 * 19 * 4)))]
        elif kind == "oversized":
            frames = [msgpack.packb(good_header), b"\0" * (max_bytes // 2 + 1), b"\0" * (max_bytes // 2 + 1)]
        elif kind == "version":
            frames = [msgpack.packb({**good_header, "v": int(rng.integers(2, 100))}), b"\0" * (2 * 19 * 4)]
        elif kind == "layout":
            frames = encode(Message("transitions", seq=1, sender="evil", meta=good_header["meta"],
                                    arrays={"state": np.zeros((2, 7), np.float32)}))
        elif kind == "not_a_map":
            frames = [msgpack.packb([1, "x", None])]
        elif kind == "bad_dtype":
            frames = [msgpack.packb({**good_header, "arrays": [["state", "object", [2, 19]]]}), b"\0" * 152]
        else:
            frames = [msgpack.packb(good_header)]
        out.append((kind, [bytes(memoryview(f).cast("B")) for f in frames]))
    return out


def test_ten_thousand_bad_frames_leave_the_learner_running(tmp_path):
    port = _free_port_pair()
    run = tmp_path / "run"
    max_mb = 0.25
    learner = _learner(tmp_path, port, "--num-demos", "0", "--max-message-mb", str(max_mb))
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{port}")
        bad = _bad_messages(np.random.default_rng(0), 10_000, int(max_mb * 2**20))
        for _, frames in bad:
            sock.send_multipart(frames)
        # raw bytes that are not even ZMTP, and a frame over ZeroMQ's own size limit
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(os.urandom(4096))
        huge = ctx.socket(zmq.DEALER)
        huge.setsockopt(zmq.LINGER, 0)
        huge.connect(f"tcp://127.0.0.1:{port}")
        huge.send(b"\0" * (2 * 2**20))
        _wait(lambda: _status(run).get("transport", {}).get("rejected", 0) >= 10_000, 120, "10,000 refusals", learner)
        # the sender hears why (rate-limited error replies)
        assert sock.poll(5000), "no error reply"
        reply = decode(sock.recv_multipart())
        assert reply.kind == "error" and reply.meta["reason"] in {"malformed", "truncated", "oversized", "version", "layout"}
        huge.close()
        sock.close()
        assert learner.poll() is None
        status = _status(run)["transport"]
        # every message was refused and counted; libzmq also parses the raw bytes as a legacy
        # ZMTP/1.0 peer, whose "messages" are refused as malformed on top of the 10,000
        assert status["rejected"] == status["messages"] >= 10_000
        assert status["version"] == 1250 and status["layout"] == 1250 and status["oversized"] == 1250
        assert status["malformed"] + status["truncated"] >= 10_000 - 3 * 1250
        actor = _actor(tmp_path, port, 60)
        assert actor.wait(180) == 0, _output(actor)
        _wait(lambda: _status(run).get("received_transitions") == 60, 30, "a good actor's data", learner)
        assert _stop(learner) == 0
    finally:
        learner.kill()
        ctx.destroy(linger=0)
    assert _assert_exactly_once(tmp_path) == 60


def test_curve_refuses_an_actor_without_the_key(tmp_path):
    port = _free_port_pair()
    run = tmp_path / "run"
    keys, other = tmp_path / "keys", tmp_path / "other_keys"
    for d in (keys, other):
        out = subprocess.run([*CLI, "keys", "--out", str(d), "--actors", "1"], env=ENV, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    again = subprocess.run([*CLI, "keys", "--out", str(keys)], env=ENV, capture_output=True, text=True)
    assert again.returncode == 2 and "never overwrites" in again.stderr
    learner = _learner(tmp_path, port, "--num-demos", "0", "--curve-keys", str(keys))
    try:
        t0 = time.monotonic()
        plain = subprocess.run([*CLI, "actor", "--port", str(port), "--total-env-steps", "20", "--no-progress",
                                "--params-timeout-s", "4", "--spool-dir", str(tmp_path / "spool_plain")],
                               env=ENV, capture_output=True, text=True, timeout=120)
        assert plain.returncode == 2 and "no parameters from a learner" in plain.stderr, plain.stderr
        assert "--curve-keys" in plain.stderr and time.monotonic() - t0 < 60
        forged = subprocess.run([*CLI, "actor", "--port", str(port), "--total-env-steps", "20", "--no-progress",
                                 "--params-timeout-s", "4", "--curve-keys", str(other),
                                 "--spool-dir", str(tmp_path / "spool_forged")],
                                env=ENV, capture_output=True, text=True, timeout=120)
        assert forged.returncode == 2 and "no parameters" in forged.stderr, forged.stderr
        status = _status(run)
        assert status["received_transitions"] == 0 and status["transport"].get("handshake_failures", 0) >= 2
        actor = _actor(tmp_path, port, 30, "--curve-keys", str(keys))
        assert actor.wait(180) == 0, _output(actor)
        _wait(lambda: _status(run).get("received_transitions") == 30, 30, "the authorized actor's data", learner)
        assert _stop(learner) == 0
    finally:
        learner.kill()
    assert _assert_exactly_once(tmp_path) == 30
    # an unauthenticated learner refuses to listen beyond loopback
    out = subprocess.run([*CLI, "learner", "--host", "0.0.0.0", "--num-demos", "0", "--run-dir", str(tmp_path / "r2")],
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "CURVE" in out.stderr and not (tmp_path / "r2").exists()
