"""The Rerun view (robot_rl.view): recorded episodes and a training run round-trip through Rerun's
own reader; bad targets and a missing rerun-sdk give clear errors."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rerun")
from rerun.chunk import RrdReader

from robot_rl.cli import main
from robot_rl.demos import load_episodes
from robot_rl.errors import ConfigError
from robot_rl.record import RecordDemosConfig, record_demos
from robot_rl.view import LiveView, ViewConfig, run_view


def entity_rows(path: Path) -> Counter:
    """Temporal rows per entity path of an .rrd file, read with Rerun's own API."""
    rows: Counter = Counter()
    for chunk in RrdReader(str(path)).stream():
        if not chunk.is_static:
            rows[chunk.entity_path] += chunk.num_rows
    return rows


def test_recorded_episodes_round_trip_through_robot_rl_view(tmp_path):
    demos = tmp_path / "demos"
    record_demos(RecordDemosConfig(env="robot_rl/PandaPickLiftPixels-v0", env_kwargs={"image_size": "32"},
                                   num_episodes=2, out=demos), progress=False)
    episodes = load_episodes(demos)
    lengths = [len(e) for e in episodes]
    out = tmp_path / "demos.rrd"
    assert main(["view", str(demos), "--out", str(out)]) == 0
    rows = entity_rows(out)
    total = sum(lengths)
    cameras = list(episodes[0].observations["images"])
    for cam in cameras:
        assert rows[f"/camera/{cam}"] == total
    for entity in ("/world/ee", "/world/action", "/step/reward", "/step/intervention", "/step/is_success"):
        assert rows[entity] == total, entity
    assert rows["/step/action/policy"] + rows["/step/action/human"] == total
    for entity in ("/episode/return", "/episode/success", "/episode/intervention_rate"):
        assert rows[entity] == len(episodes), entity
    # the values: the rewards read back equal the recorded ones
    rewards = []
    for chunk in RrdReader(str(out)).stream():
        if chunk.entity_path == "/step/reward" and not chunk.is_static:
            rewards += [v[0] for v in chunk.to_record_batch().column("Scalars:scalars").to_pylist()]
    np.testing.assert_allclose(rewards, np.concatenate([e.rewards for e in episodes]), rtol=1e-6)
    # one episode file, every second camera frame
    one = tmp_path / "one.rrd"
    run_view(ViewConfig(target=min(demos.glob("episode_*.npz")), out=one, every_frames=2))
    rows = entity_rows(one)
    assert rows["/step/reward"] == lengths[0] and rows[f"/camera/{cameras[0]}"] == (lengths[0] + 1) // 2


def test_train_with_view_logs_every_step_and_episode(tmp_path):
    out = tmp_path / "live.rrd"
    run = tmp_path / "run"
    assert main(["train", "--env", "Pendulum-v1", "--total-env-steps", "250", "--num-demos", "0",
                 "--eval-every-steps", "0", "--checkpoint-every-steps", "0", "--no-progress", "--no-final-video",
                 "--agent.batch-size", "16", "--agent.hidden-dims", "16", "16", "--random-steps", "250",
                 "--run-dir", str(run), "--view", "--view-target", str(out)]) == 0
    rows = entity_rows(out)  # Trainer.close closed the view: the file is complete
    for entity in ("/step/reward", "/step/intervention", "/step/action/policy"):
        assert rows[entity] == 250, entity
    assert rows["/episode/return"] == 1  # Pendulum: one finished 200-step episode
    assert not any(e.startswith(("/camera", "/world/")) for e in rows)  # a state env without an EE pose
    # the run directory itself round-trips through `robot-rl view`
    replay = tmp_path / "replay.rrd"
    assert main(["view", str(run), "--out", str(replay)]) == 0
    rows = entity_rows(replay)
    assert rows["/step/reward"] == 250 and rows["/episode/return"] == 1


def test_bad_view_targets_and_missing_rerun(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ConfigError, match="run directory.*episode_.*MCAP"):
        run_view(ViewConfig(target=tmp_path, out=tmp_path / "x.rrd"))
    with pytest.raises(ConfigError, match="run directory"):
        run_view(ViewConfig(target=tmp_path / "notes.txt", out=tmp_path / "x.rrd"))
    with pytest.raises(ConfigError, match="must end in .rrd"):
        run_view(ViewConfig(target=tmp_path, out=tmp_path / "x.mp4"))
    with pytest.raises(ConfigError, match="neither a Rerun viewer URL"):
        LiveView("http://example.org:9876")
    assert main(["view", str(tmp_path / "missing")]) == 2  # one-line error, exit status 2
    monkeypatch.setitem(sys.modules, "rerun", None)  # rerun-sdk not installed
    with pytest.raises(ConfigError, match=r"pip install -e \.\[view\]"):
        LiveView(tmp_path / "x.rrd")
    assert main(["train", "--env", "Pendulum-v1", "--view", "--view-target", str(tmp_path / "y.rrd"),
                 "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


def test_q_value_of_the_learners_critic_is_logged_in_train(tmp_path):
    """Where the critic is in the process (`robot-rl train`), the view logs Q(s, a) of each step."""
    from robot_rl.train import TrainConfig, Trainer, train

    out = tmp_path / "q.rrd"
    trainer = Trainer(TrainConfig(env="Pendulum-v1", total_env_steps=30, num_demos=0, eval_every_steps=0,
                                  checkpoint_every_steps=0, progress=False, final_video=False, run_dir=tmp_path / "run",
                                  view=True, view_target=str(out)))
    try:
        trainer.run()
    finally:
        trainer.close()
    rows = entity_rows(out)
    assert rows["/step/q"] == 30 and rows["/step/reward"] == 30
    # --resume takes this call's view flags (the run saved view=True with the first file)
    resumed = tmp_path / "resumed.rrd"
    train(TrainConfig(resume=tmp_path / "run", total_env_steps=50, progress=False, view=True,
                      view_target=str(resumed)))
    assert entity_rows(resumed)["/step/q"] == 20


def _write_mcap_bag(bag: Path, frames: int, joint_msgs: int) -> Path:
    """A rosbag2 MCAP bag (rosbags' writer, as robot_rl's recorder writes them): ``frames`` camera
    images (frame i is filled with the value i) and ``joint_msgs`` JointState messages (j1 = 0.1 i)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from robot_rl.ros.convert import image_msg
    from robot_rl.ros.messages import TYPESTORE

    types = TYPESTORE.types
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    image = writer.add_connection("/camera/front/image_raw", "sensor_msgs/msg/Image", typestore=TYPESTORE)
    joints = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=TYPESTORE)
    t0 = 1_700_000_000.0
    for i in range(frames):
        stamp = t0 + 0.05 * i
        writer.write(image, int(stamp * 1e9), TYPESTORE.serialize_cdr(
            image_msg(np.full((24, 32, 3), i, np.uint8), stamp, "front"), "sensor_msgs/msg/Image"))
    for i in range(joint_msgs):
        stamp = t0 + 0.03 * i
        header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](
            sec=int(stamp), nanosec=int(round((stamp % 1) * 1e9))), frame_id="base")
        msg = types["sensor_msgs/msg/JointState"](header=header, name=["j1", "j2"],
                                                  position=np.array([0.1 * i, -0.1 * i]), velocity=np.zeros(2),
                                                  effort=np.zeros(2))
        writer.write(joints, int(stamp * 1e9), TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/JointState"))
    writer.close()
    (mcap,) = bag.glob("*.mcap")
    return mcap


def test_mcap_bag_round_trips_through_robot_rl_view(tmp_path):
    """`robot-rl view bag.mcap --out x.rrd` (Rerun's own MCAP importer): one row per message on each
    topic's entity, images and joint positions with the values written."""
    pytest.importorskip("rosbags")
    mcap = _write_mcap_bag(tmp_path / "bag", frames=12, joint_msgs=20)
    out = tmp_path / "bag.rrd"
    assert main(["view", str(mcap), "--out", str(out)]) == 0
    rows = entity_rows(out)
    assert rows["/camera/front/image_raw"] == 12
    assert rows["/joint_states/position"] == 20
    images, positions = [], []
    for chunk in RrdReader(str(out)).stream():
        if chunk.is_static:
            continue
        batch = chunk.to_record_batch()
        if chunk.entity_path == "/camera/front/image_raw":
            fmt = batch.column("Image:format").to_pylist()
            assert all(f[0]["width"] == 32 and f[0]["height"] == 24 for f in fmt)
            images += [np.asarray(b[0], np.uint8) for b in batch.column("Image:buffer").to_pylist()]
        elif chunk.entity_path == "/joint_states/position":
            positions += batch.column("Scalars:scalars").to_pylist()
    assert [img.size for img in images] == [24 * 32 * 3] * 12
    assert sorted(int(img[0]) for img in images) == list(range(12))
    assert all(np.all(img == img[0]) for img in images)
    np.testing.assert_allclose(sorted(p[0] for p in positions), 0.1 * np.arange(20), atol=1e-9)
    # a bag directory is not a .mcap file: the clear error, not Rerun's
    with pytest.raises(ConfigError, match="MCAP bag"):
        run_view(ViewConfig(target=tmp_path / "bag", out=tmp_path / "dir.rrd"))


def _listening(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:port."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.timeout(90)
def test_view_serve_serves_the_web_viewer_and_stops_with_its_process(tmp_path):
    """`robot-rl view <bag> --serve --web-port P --grpc-port G` serves Rerun's web viewer on 127.0.0.1:P
    and the recording on G; SIGTERM to robot-rl view alone (a supervisor's stop, not the terminal's
    group-wide Ctrl-C) stops its rerun server too, freeing both ports."""
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    mcap = _write_mcap_bag(tmp_path / "bag", frames=3, joint_msgs=3)
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    port, grpc = ports
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "view", str(mcap), "--serve", "--web-port", str(port),
                             "--grpc-port", str(grpc)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, page = time.monotonic() + 45, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    page = (r.status, r.read().decode("utf-8", "replace"))
                break
            except OSError:
                time.sleep(0.2)
        assert page is not None, f"nothing served on {port}:\n{log.read_text()[-2000:]}"
        assert page[0] == 200 and "<html" in page[1].lower() and "rerun" in page[1].lower()
        assert f"http://127.0.0.1:{port}" in log.read_text()
        assert _listening(grpc)  # the recording is served over gRPC for the page, on the port asked for
        proc.send_signal(signal.SIGTERM)  # robot-rl view only: it must stop its rerun child itself
        proc.wait(20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (_listening(port) or _listening(grpc)):
            time.sleep(0.2)
        assert not _listening(port) and not _listening(grpc), "the rerun server outlived `robot-rl view --serve`"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left
        except ProcessLookupError:
            pass
        proc.wait(10)


@pytest.mark.timeout(180)
def test_actor_view_against_a_real_learner_logs_every_step(tmp_path):
    """`robot-rl actor --view --view-target x.rrd` over ZeroMQ to a `robot-rl learner` on loopback:
    the file has one row per step taken on every step entity and the EE trajectory, one
    /episode/return per finished episode, and no Q (the critic is not in the actor's process)."""
    import signal
    import subprocess

    from tests.test_hil import _free_port_pair, _status, _wait

    steps = 60  # a 50-step pick-and-lift episode and a cut one
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "robot_rl.cli"]
    port = _free_port_pair()
    run = tmp_path / "run"
    learner = subprocess.Popen([*cli, "learner", "--env", "robot_rl/PandaPickLift-v0", "--num-demos", "0",
                                "--eval-every-steps", "0", "--checkpoint-every-steps", "0", "--torch-threads", "1",
                                "--no-progress", "--agent.batch-size", "16", "--agent.hidden-dims", "16", "16",
                                "--port", str(port), "--run-dir", str(run)],
                               env=env, stdout=open(tmp_path / "learner.log", "w"), stderr=subprocess.STDOUT)
    learner.log_path = tmp_path / "learner.log"
    out = tmp_path / "actor.rrd"
    try:
        _wait(lambda: _status(run).get("pid") == learner.pid, 90, "the learner to serve", learner)
        actor = subprocess.run([*cli, "actor", "--env", "robot_rl/PandaPickLift-v0", "--port", str(port),
                                "--total-env-steps", str(steps), "--random-steps", str(steps), "--torch-threads", "1",
                                "--no-progress", "--spool-dir", str(tmp_path / "spool"),
                                "--view", "--view-target", str(out)],
                               env=env, capture_output=True, text=True, timeout=120)
        assert actor.returncode == 0, actor.stderr[-2000:]
        _wait(lambda: _status(run).get("received_transitions") == steps, 60, "all transitions", learner)
        learner.send_signal(signal.SIGTERM)
        assert learner.wait(60) == 0, (tmp_path / "learner.log").read_text()[-3000:]
    finally:
        if learner.poll() is None:
            learner.kill()
            learner.wait(10)
    rows = entity_rows(out)
    for entity in ("/step/reward", "/step/intervention", "/world/ee", "/world/action"):
        assert rows[entity] == steps, entity
    assert rows["/step/action/policy"] + rows["/step/action/human"] == steps
    assert "/step/q" not in rows
    import csv

    with open(run / "episodes.csv") as f:
        episodes = list(csv.DictReader(f))
    assert rows["/episode/return"] == len(episodes) >= 1
    # the step time line: the actor's step IDs 0..steps-1, each once
    seen = []
    for chunk in RrdReader(str(out)).stream():
        if chunk.entity_path == "/step/reward" and not chunk.is_static:
            seen += chunk.to_record_batch().column("step").to_pylist()
    assert sorted(seen) == list(range(steps))
