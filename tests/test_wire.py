"""The actor-learner wire format, record files and chunk insertion (no processes)."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from robot_rl.errors import WireError
from robot_rl.layout import ObsLayout
from robot_rl.learner import ChunkInserter
from robot_rl.replay import ReplayBuffer
from robot_rl.transport.messages import TransitionChunk
from robot_rl.transport.records import SegmentLog, read_log, read_record_file, repair_segment, write_record_file
from robot_rl.transport.wire import Message, decode, encode

STATE_DIM, ACTION_DIM, CAMS = 3, 2, {"front": (8, 8, 3)}


def _layout() -> ObsLayout:
    import gymnasium as gym

    return ObsLayout.from_space(gym.spaces.Dict({
        "state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
        "images": gym.spaces.Dict({"front": gym.spaces.Box(0, 255, CAMS["front"], np.uint8)})}))


def _chunk(actor="a", seq=1, episode=0, t0=0, n=4, first=True, end=False, step0=0, intervention=None) -> TransitionChunk:
    """Observation i of an episode has state [episode, i, 0] and an image filled with i."""
    m = n + 1 if first else n
    obs_t = np.arange(t0 + (0 if first else 1), t0 + n + 1)
    assert len(obs_t) == m
    state = np.stack([np.array([episode, t, 0], np.float32) for t in obs_t])
    images = {"front": np.stack([np.full(CAMS["front"], t % 256, np.uint8) for t in obs_t])}
    term = np.zeros(n, bool)
    term[-1] = end
    return TransitionChunk(actor, seq, episode, t0, first, state, images,
                           action=np.tile(np.arange(t0, t0 + n, dtype=np.float32)[:, None] / 100, (1, ACTION_DIM)),
                           reward=np.arange(t0, t0 + n, dtype=np.float32), terminated=term, truncated=np.zeros(n, bool),
                           intervention=np.zeros(n, bool) if intervention is None else np.asarray(intervention, bool),
                           step_id=np.arange(step0, step0 + n, dtype=np.int64))


def _roundtrip(chunk: TransitionChunk) -> TransitionChunk:
    frames = [bytes(memoryview(f).cast("B")) if not isinstance(f, bytes) else f for f in encode(chunk.to_message())]
    return TransitionChunk.from_message(decode(frames), STATE_DIM, CAMS, ACTION_DIM)


def test_chunk_roundtrip_is_exact():
    c = _chunk(n=5, first=True, end=True, intervention=[0, 1, 1, 0, 0])
    c.episode_stats = {"return": 1.5, "success": True}
    d = _roundtrip(c)
    assert (d.actor, d.seq, d.episode, d.t0, d.first, d.episode_stats) == ("a", 1, 0, 0, True, c.episode_stats)
    for name in ("state", "action", "reward", "terminated", "truncated", "intervention", "step_id"):
        np.testing.assert_array_equal(getattr(d, name), getattr(c, name))
        assert getattr(d, name).dtype == getattr(c, name).dtype
    np.testing.assert_array_equal(d.images["front"], c.images["front"])


def _valid_frames() -> list[bytes]:
    return [bytes(memoryview(f).cast("B")) if not isinstance(f, bytes) else f for f in encode(_chunk().to_message())]


def _header(frames) -> dict:
    return msgpack.unpackb(frames[0], raw=False)


@pytest.mark.parametrize("mutate, reason", [
    (lambda f: [], "truncated"),
    (lambda f: [b"\xc1\xc1garbage", *f[1:]], "malformed"),
    (lambda f: [msgpack.packb([1, 2, 3]), *f[1:]], "malformed"),
    (lambda f: [msgpack.packb({**_header(f), "v": 99}), *f[1:]], "version"),
    (lambda f: [msgpack.packb({**_header(f), "schema": "other"}), *f[1:]], "malformed"),
    (lambda f: [msgpack.packb({**_header(f), "kind": "pickle"}), *f[1:]], "malformed"),
    (lambda f: [msgpack.packb({**_header(f), "seq": -1}), *f[1:]], "malformed"),
    (lambda f: f[:-1], "truncated"),
    (lambda f: [*f[:1], f[1][:-3], *f[2:]], "truncated"),
    (lambda f: [*f, b"extra"], "truncated"),
    (lambda f: [msgpack.packb({**_header(f), "arrays": [[a[0], "object", a[2]] for a in _header(f)["arrays"]]}), *f[1:]],
     "malformed"),
    (lambda f: [msgpack.packb(msgpack.ExtType(1, b"x")), *f[1:]], "malformed"),
    (lambda f: [b"\x00" * 70_000, *f[1:]], "oversized"),
])
def test_bad_frames_raise_wire_error_with_reason(mutate, reason):
    with pytest.raises(WireError) as e:
        decode(mutate(_valid_frames()))
    assert e.value.reason == reason


def test_layout_mismatch_and_size_limit():
    frames = _valid_frames()
    with pytest.raises(WireError) as e:
        TransitionChunk.from_message(decode(frames), STATE_DIM + 1, CAMS, ACTION_DIM)
    assert e.value.reason == "layout" and "state" in str(e.value)
    with pytest.raises(WireError) as e:
        TransitionChunk.from_message(decode(frames), STATE_DIM, {"wrist": (8, 8, 3)}, ACTION_DIM)
    assert e.value.reason == "layout"
    with pytest.raises(WireError) as e:
        decode(frames, max_message_bytes=100)
    assert e.value.reason == "oversized"
    with pytest.raises(WireError):  # an object array never reaches the wire
        encode(Message("params", arrays={"x": np.array([{"a": 1}], dtype=object)}))


def test_random_corruption_only_ever_raises_wire_error():
    rng = np.random.default_rng(0)
    base = _valid_frames()
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(3000):
        frames = [bytearray(f) for f in base]
        for _ in range(rng.integers(1, 4)):
            i = int(rng.integers(len(frames)))
            op = rng.integers(4)
            if op == 0 and frames[i]:
                frames[i][int(rng.integers(len(frames[i])))] = int(rng.integers(256))
            elif op == 1:
                frames[i] = frames[i][: int(rng.integers(len(frames[i]) + 1))]
            elif op == 2:
                frames[i] += rng.bytes(int(rng.integers(1, 16)))
            else:
                frames = frames[:i] + frames[i + 1:] if len(frames) > 1 else frames
        try:
            TransitionChunk.from_message(decode([bytes(f) for f in frames]), STATE_DIM, CAMS, ACTION_DIM)
            outcomes["ok"] += 1  # a flipped payload byte is still a well-formed chunk
        except WireError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 1000 and sum(outcomes.values()) == 3000


def test_records_detect_and_repair_a_torn_tail(tmp_path):
    log = SegmentLog(tmp_path / "log")
    for seq in range(1, 4):
        log.append(encode(_chunk(seq=seq).to_message()))
    log.close()
    seg = log.segments()[0]
    size = seg.stat().st_size
    with open(seg, "ab") as f:  # a writer killed mid-record
        f.write(_valid_frames()[0][:20])
    # a reader of another process's log (view, export, BC) skips the record being written and leaves it alone
    assert [decode(fr).seq for fr in read_log(tmp_path / "log")] == [1, 2, 3]
    assert seg.stat().st_size == size + 20
    assert list(read_log(tmp_path / "nothing")) == [] and not (tmp_path / "nothing").exists()
    log2 = SegmentLog(tmp_path / "log")  # its writer repairs it on opening
    assert log2.repaired_bytes == 20 and seg.stat().st_size == size
    assert [decode(fr).seq for fr in log2] == [1, 2, 3]
    log2.append(encode(_chunk(seq=4).to_message()))
    assert [decode(fr).seq for fr in log2] == [1, 2, 3, 4]
    log2.close()
    # a flipped byte inside a record stops reading there (CRC), never yields corrupt data
    raw = bytearray(seg.read_bytes())
    raw[size // 2] ^= 0xFF
    seg.write_bytes(bytes(raw))
    assert len(list(SegmentLog(tmp_path / "log"))) < 4
    one = tmp_path / "one.rrl"
    write_record_file(one, _valid_frames())
    assert decode(read_record_file(one)).seq == 1
    one.write_bytes(one.read_bytes()[:-1])
    assert read_record_file(one) is None and repair_segment(one) > 0


def _transitions(buf: ReplayBuffer) -> set[tuple]:
    """(episode, t of s, t of s', reward, intervention) of every stored transition."""
    out = set()
    for i in np.flatnonzero(buf.valid):
        j = (i + 1) % buf.capacity
        s, s2 = buf.state[i], buf.state[j]
        assert s[0] == s2[0], "s' belongs to another episode"
        assert buf.images["front"][j][0, 0, 0] == int(s2[1]) % 256
        out.add((int(s[0]), int(s[1]), int(s2[1]), float(buf.reward[i]), bool(buf.intervention[i])))
    return out


def test_interleaved_actors_give_the_same_transitions_as_one_actor():
    layout = _layout()
    chunks_a = [_chunk("a", 1, episode=0, t0=0, n=3, first=True), _chunk("a", 2, episode=0, t0=3, n=3, first=False, end=True)]
    chunks_b = [_chunk("b", 1, episode=7, t0=0, n=2, first=True, intervention=[0, 1]),
                _chunk("b", 2, episode=7, t0=2, n=4, first=False, end=True, intervention=[1, 1, 0, 1])]
    seq_online, seq_demo = ReplayBuffer(layout, ACTION_DIM, 64), ReplayBuffer(layout, ACTION_DIM, 64)
    ins = ChunkInserter(seq_online, seq_demo)
    for c in chunks_a + chunks_b:
        ins.insert(c)
    mix_online, mix_demo = ReplayBuffer(layout, ACTION_DIM, 64), ReplayBuffer(layout, ACTION_DIM, 64)
    ins = ChunkInserter(mix_online, mix_demo)
    for c in (chunks_a[0], chunks_b[0], chunks_a[1], chunks_b[1]):
        ins.insert(c)
    expected = {(0, t, t + 1, float(t), False) for t in range(6)}
    expected |= {(7, t, t + 1, float(t), t in (1, 2, 3, 5)) for t in range(6)}
    assert _transitions(seq_online) == _transitions(mix_online) == expected
    assert _transitions(seq_demo) == _transitions(mix_demo) == {e for e in expected if e[4]}
    assert len(mix_online) == 12 and len(mix_demo) == 4
    # a chunk whose episode start never arrived is skipped, not mis-stitched
    ins.insert(_chunk("c", 5, episode=3, t0=10, n=2, first=False))
    assert ins.stats["orphan_chunks"] == 1 and len(mix_online) == 12


@pytest.mark.parametrize("capacity", [7, 13, 50])
def test_add_steps_equals_add_one_by_one_including_wraparound(capacity):
    layout = _layout()
    rng = np.random.default_rng(capacity)
    a, b = ReplayBuffer(layout, ACTION_DIM, capacity), ReplayBuffer(layout, ACTION_DIM, capacity)
    for _ in range(9):
        T = int(rng.integers(1, 6))
        obs = [{"state": rng.random(STATE_DIM).astype(np.float32),
                "images": {"front": rng.integers(0, 255, CAMS["front"], dtype=np.uint8)}} for _ in range(T + 1)]
        act, rew = rng.random((T, ACTION_DIM)).astype(np.float32), rng.random(T).astype(np.float32)
        term, iv = np.arange(T) == T - 1, rng.random(T) > 0.5
        a.start_episode(obs[0])
        for t in range(T):
            a.add(act[t], rew[t], obs[t + 1], term[t], iv[t])
        a.end_episode()
        b.start_episode_split(obs[0]["state"], obs[0]["images"])
        b.add_steps(np.stack([o["state"] for o in obs[1:]]), {"front": np.stack([o["images"]["front"] for o in obs[1:]])},
                    act, rew, term, iv)
        b.end_episode()
        for name in ("state", "action", "reward", "terminated", "intervention", "valid"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_array_equal(a.images["front"], b.images["front"])
        assert len(a) == len(b)


def test_one_learner_run_holds_one_reward_source(tmp_path):
    """Over real ZeroMQ sockets: the first actor's reward source is adopted and saved; a chunk from
    an actor with another source is refused (reason 'reward') and never reaches the log."""
    import zmq

    from robot_rl.transport.link import ChunkReceiver

    ctx = zmq.Context()
    adopted = []
    log = SegmentLog(tmp_path / "replay")
    receiver = ChunkReceiver(ctx, f"tcp://127.0.0.1:{_free_port()}", (STATE_DIM, CAMS, ACTION_DIM),
                             log, {}, on_reward_source=adopted.append)
    receiver.start_and_wait()
    classifier = {"reward": "classifier", "reward_model_path": "/models/cls", "reward_kwargs": {"threshold": 0.7}}
    try:
        replies = []
        for actor, source in [("a", classifier), ("b", {**classifier, "reward_kwargs": {"threshold": 0.5}}),
                              ("c", None), ("d", dict(classifier))]:
            chunk = _chunk(actor=actor)
            chunk.reward_source = source
            dealer = ctx.socket(zmq.DEALER)  # one socket per actor (error replies are rate-limited per peer)
            dealer.connect(receiver.address)
            dealer.send_multipart(encode(chunk.to_message()), copy=False)
            assert dealer.poll(5000), "no reply from the learner"
            replies.append(decode(dealer.recv_multipart()))
            dealer.close(0)
    finally:
        receiver.stop()
        ctx.term()
    assert [r.kind for r in replies] == ["ack", "error", "error", "ack"]
    assert replies[1].meta["reason"] == "reward" and "threshold" in replies[1].meta["message"]
    assert "'env'" in replies[2].meta["message"]  # an undeclared source counts as the env's reward
    assert adopted == [classifier]
    assert receiver.stats["chunks"] == 2 and receiver.stats["reward"] == 2
    log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_restarted_actor_reusing_its_episode_number_never_stitches_two_episodes():
    """An actor killed mid-episode k restarts episode k from a reset: its first chunk must begin a
    new segment, so no transition links the old episode's last state to the new reset's next."""
    layout = _layout()
    online, demo = ReplayBuffer(layout, ACTION_DIM, 64), ReplayBuffer(layout, ACTION_DIM, 64)
    ins = ChunkInserter(online, demo)
    ins.insert(_chunk("a", 1, episode=4, t0=0, n=3, first=True, intervention=[0, 1, 1]))  # killed after this
    ins.insert(_chunk("a", 2, episode=4, t0=0, n=2, first=True, end=True, intervention=[1, 0]))  # restarted
    assert ins.stats["episodes_cut"] == 1
    pairs = {(t, t1) for _, t, t1, _, _ in _transitions(online)}
    assert pairs == {(0, 1), (1, 2), (2, 3)}  # (2 -> 1) or (3 -> 1) would be a stitched, wrong transition
    assert len(online) == 5 and len(demo) == 3
    assert {(t, t1) for _, t, t1, _, _ in _transitions(demo)} == {(1, 2), (2, 3), (0, 1)}


def test_cut_moves_records_after_the_cut_aside_across_segments(tmp_path):
    log = SegmentLog(tmp_path / "replay", segment_bytes=200)  # a new segment every couple of records
    for i in range(10):
        log.append([bytes([i]) * 150])
    assert len(log.segments()) > 3
    aside = log.cut(4, tmp_path / "aside")
    log.append([b"new"])
    log.close()
    kept = [bytes(f[0]) for f in SegmentLog(tmp_path / "replay")]
    moved = [bytes(f[0]) for f in SegmentLog(aside)]
    assert kept == [bytes([i]) * 150 for i in range(4)] + [b"new"]
    assert moved == [bytes([i]) * 150 for i in range(4, 10)]
    assert all(p.stat().st_size > 0 for p in aside.iterdir())
    assert SegmentLog(tmp_path / "replay").cut(5, tmp_path / "none") is None  # nothing after: nothing moved
