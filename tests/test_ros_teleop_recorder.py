"""Teleop node -> ROS topics -> RosTeleop, and the rosbag2 MCAP recorder, over real ROS 2 (rclpy).

Every node under test runs in its own process (``python -m ...``) on an isolated ROS domain
(the ``ros_domain`` fixture); publishers and the RosTeleop client run in the test process. The
keyboard teleop node gets a pseudo-terminal as its controlling terminal, as a human's terminal
would be. Nothing of ROS 2 is mocked; bags are read back with rosbags and the mcap package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PtyProcess, start_node, stop_node

from robot_rl.errors import ConfigError
from robot_rl.ros.convert import reset_msg
from robot_rl.ros.messages import TYPESTORE
from robot_rl.ros.node import Node, make_message

REPO = Path(__file__).resolve().parents[1]
T = TYPESTORE.types


# ------------------------------------------------------------------------------------ helpers
def _read_until(teleop, predicate, timeout_s: float = 5.0, keep=None):
    """Poll ``teleop.read()`` until ``predicate(cmd)``; ``keep`` collects every reading."""
    end = time.monotonic() + timeout_s
    while True:
        cmd = teleop.read()
        if keep is not None:
            keep.append(cmd)
        if predicate(cmd) or time.monotonic() > end:
            return cmd
        time.sleep(0.01)


# ------------------------------------------------------------------------------------ teleop
def test_keyboard_teleop_node_to_ros_teleop(ros_domain):
    from robot_rl.drivers.teleop import make_teleop

    v = 0.2  # keyboard speed, m/s
    node = PtyProcess([sys.executable, "-m", "robot_rl.drivers.teleop.node", "--ros-args", "-p", "device:=keyboard",
                    "-p", "device_kwargs:=linear_speed_mps=0.2 hold_s=1.0", "-p", "max_linear_m_s:=0.25"])
    teleop = make_teleop("ros", stale_after_s=0.5)
    try:
        node.wait_for("configure: unconfigured -> inactive")
        assert teleop.wait_for_publisher(10.0), node.output.decode(errors="replace")
        lflag = termios.tcgetattr(node.slave)[3]
        assert not lflag & termios.ECHO and not lflag & termios.ICANON  # the node put its terminal in cbreak
        first = teleop.read()
        assert not first.twist.any() and not first.engaged and first.gripper is None
        os.write(node.master, b"w")
        np.testing.assert_allclose(_read_until(teleop, lambda c: c.twist.any()).twist, [v, 0, 0, 0, 0, 0], atol=1e-9)
        os.write(node.master, b"t")  # take over
        assert _read_until(teleop, lambda c: c.engaged).engaged
        os.write(node.master, b" ")  # gripper toggle: one event, reported exactly once
        seen: list = []
        _read_until(teleop, lambda c: c.gripper is not None, keep=seen)
        assert [c.gripper for c in seen if c.gripper is not None] == [0.0]
        time.sleep(0.2)
        assert teleop.read().gripper is None
        os.write(node.master, b"y")  # success, also a one-shot event
        assert _read_until(teleop, lambda c: c.success).success
        assert not teleop.read().success
        os.write(node.master, b"x")
        assert _read_until(teleop, lambda c: c.reset).reset
        still = _read_until(teleop, lambda c: not c.twist.any())  # w released after hold_s
        assert not still.twist.any() and still.engaged
        os.write(node.master, b"\x03")  # Ctrl-C: SIGINT through the terminal, clean shutdown
        end = time.monotonic() + 10.0
        while node.proc.poll() is None and time.monotonic() < end:
            node.pump(0.05)
        assert node.proc.returncode == 0, node.output.decode(errors="replace")
        time.sleep(0.6)  # older than stale_after_s: control goes back to the policy
        gone = teleop.read()
        assert not gone.twist.any() and not gone.engaged
    finally:
        teleop.close()
        node.close()
    text = node.output.decode(errors="replace")
    assert "w / s  or Up / Down" in text and "Traceback" not in text  # key help logged on configure


def test_ros_teleop_joy_layout_matches_teleop_msgs(ros_domain):
    """Messages from teleop_msgs (the node's encoder) decode to the same command, events latched."""
    from robot_rl.ros.clients import RosTeleop
    from robot_rl.interfaces import TeleopCommand
    from robot_rl.ros.convert import teleop_msgs

    pub_node = Node("fake_teleop")
    twist_pub = pub_node.create_publisher("geometry_msgs/msg/Twist", "/spacenav/twist")
    joy_pub = pub_node.create_publisher("sensor_msgs/msg/Joy", "/spacenav/joy")
    teleop = RosTeleop(stale_after_s=2.0)
    try:
        assert joy_pub.wait_for_subscribers(1, 10.0) and twist_pub.wait_for_subscribers(1, 10.0)
        cmds = [TeleopCommand(twist=np.array([0.1, -0.05, 0.02, 0.0, 0.3, -0.2]), engaged=True),
                TeleopCommand(twist=np.array([0.1, -0.05, 0.02, 0.0, 0.3, -0.2]), gripper=1.0, engaged=True, failure=True),
                TeleopCommand(twist=np.array([0.0, 0.05, 0.0, 0.0, 0.0, 0.0]), engaged=True)]
        for cmd in cmds:  # three messages before one read: the events of the middle one survive
            msgs = teleop_msgs(cmd, time.time(), 0.25, 1.0)
            twist_pub.publish(msgs["twist"])
            joy_pub.publish(msgs["joy"])
        # twist and joy are two topics that arrive independently: read until the last twist and the
        # middle joy's events have both come; the events show up exactly once, in one reading
        readings: list = []
        got = _read_until(teleop, lambda c: c.twist[1] > 0 and any(r.failure for r in readings), keep=readings)
        np.testing.assert_allclose(got.twist, cmds[-1].twist)
        events = [r for r in readings if r.failure]
        assert len(events) == 1 and events[0].gripper == 1.0 and events[0].engaged, readings
        assert not any(r.success or r.reset for r in readings)
        again = teleop.read()
        assert again.gripper is None and not again.failure and again.engaged
    finally:
        teleop.close()
        pub_node.shutdown()


def test_ros_teleop_spacenav_compat(ros_domain):
    from robot_rl.drivers.teleop import make_teleop

    pub_node = Node("spacenav")
    joy_pub = pub_node.create_publisher("sensor_msgs/msg/Joy", "/spacenav/joy")
    teleop = make_teleop("ros", spacenav_compat=True, max_linear_m_s=0.2, max_angular_rad_s=1.0, deadzone=0.05,
                         stale_after_s=2.0)

    def joy(axes, buttons):
        return make_message("sensor_msgs/msg/Joy", axes=np.array(axes, np.float32), buttons=np.array(buttons, np.int32))

    try:
        assert joy_pub.wait_for_subscribers(1, 10.0)
        joy_pub.publish(joy([0.5, 0.0, -0.25, 0.0, 0.0, 0.02], [0, 0]))  # yaw inside the deadzone
        cmd = _read_until(teleop, lambda c: c.twist.any())
        np.testing.assert_allclose(cmd.twist, [0.1, 0.0, -0.05, 0.0, 0.0, 0.0], atol=1e-6)
        assert cmd.engaged and cmd.gripper is None  # engaged while the puck is deflected
        joy_pub.publish(joy([0.0] * 6, [1, 0]))  # left button held: close, still engaged
        cmd = _read_until(teleop, lambda c: c.gripper is not None)
        assert cmd.gripper == 0.0 and cmd.engaged and not cmd.twist.any()
        joy_pub.publish(joy([0.0] * 6, [0, 1]))  # right button: open
        assert _read_until(teleop, lambda c: c.gripper is not None).gripper == 1.0
        joy_pub.publish(joy([0.01] * 6, [0, 0]))  # released, puck at rest: the policy drives
        cmd = _read_until(teleop, lambda c: not c.engaged)
        assert not cmd.engaged and not cmd.twist.any()
    finally:
        teleop.close()
        pub_node.shutdown()


@pytest.mark.parametrize("device, message", [("gamepad", "no gamepad"), ("spacemouse", "SpaceMouse")])
def test_teleop_node_missing_device_exits_1_fast(ros_domain, device, message):
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "robot_rl.drivers.teleop.node", "--ros-args", "-p", f"device:={device}"],
                         capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, cwd=REPO)
    elapsed = time.monotonic() - t
    if out.returncode == 0:
        pytest.skip(f"a {device} is connected to this machine")
    assert out.returncode == 1, out.stderr
    assert "error: node /teleop failed to start: " in out.stderr and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert elapsed < 5.0, elapsed


def test_teleop_node_bad_device_kwargs_is_a_clear_error():
    from robot_rl.drivers.teleop.node import parse_device_kwargs

    assert parse_device_kwargs("") == {}
    assert parse_device_kwargs("linear_speed_mps=0.2 tty=/dev/pts/3") == {"linear_speed_mps": 0.2, "tty": "/dev/pts/3"}
    with pytest.raises(ConfigError, match="not key=value"):
        parse_device_kwargs("linear_speed_mps")
    with pytest.raises(ConfigError, match="looks like JSON but does not parse"):
        parse_device_kwargs('{"a": 1')


# ------------------------------------------------------------------------------------ recorder
IMAGE, JOINTS, VALUE = "/camera/front/color/image_raw", "/joint_states", "/test/value"


def _image(i: int):
    data = np.full((12, 16, 3), i, np.uint8)
    return make_message("sensor_msgs/msg/Image", header=T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=i, nanosec=7), frame_id="front_color_optical_frame"),
        height=12, width=16, encoding="rgb8", is_bigendian=0, step=48, data=data.reshape(-1))


def _joints(i: int):
    return make_message("sensor_msgs/msg/JointState", name=["j1", "j2", "gripper"],
                        position=np.array([0.1 * i, -0.2 * i, 0.04]), velocity=np.array([1.0, 2.0, float(i)]),
                        effort=np.zeros(3))


def _value(i: int):
    return make_message("std_msgs/msg/Float64", data=0.5 * i)


def _bag_messages(path: Path) -> dict[str, list[tuple[int, bytes, str]]]:
    from rosbags.rosbag2 import Reader

    out: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, t_ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t_ns, bytes(raw), conn.msgtype))
    return out


def test_recorder_records_three_types_byte_exact_mcap(ros_domain, tmp_path):
    n = 20
    bag = tmp_path / "bag"
    log = tmp_path / "recorder.log"
    proc = start_node("robot_rl.ros.recorder", "-p", f"output_dir:={bag}", "-p", f"topics:=[{IMAGE}, {JOINTS}, {VALUE}]",
                      "-p", "discovery_period_s:=0.2", log_path=str(log))
    node = Node("bag_source")
    pubs = {IMAGE: (node.create_publisher("sensor_msgs/msg/Image", IMAGE, "sensor"), _image, "sensor_msgs/msg/Image"),
            JOINTS: (node.create_publisher("sensor_msgs/msg/JointState", JOINTS), _joints, "sensor_msgs/msg/JointState"),
            VALUE: (node.create_publisher("std_msgs/msg/Float64", VALUE), _value, "std_msgs/msg/Float64")}
    try:
        for pub, _, _ in pubs.values():
            assert pub.wait_for_subscribers(1, 15.0), log.read_text()
        t0 = time.time_ns()
        for i in range(n):
            for pub, make, _ in pubs.values():
                pub.publish(make(i))
            time.sleep(0.01)
        time.sleep(0.5)
        t1 = time.time_ns()
        assert stop_node(proc) == 0, log.read_text()
    finally:
        stop_node(proc)
        node.shutdown()
    msgs = _bag_messages(bag)
    assert set(msgs) == {IMAGE, JOINTS, VALUE}, log.read_text()
    for topic, (_, make, msgtype) in pubs.items():
        got = msgs[topic]
        assert len(got) == n, (topic, len(got))
        assert all(m[2] == msgtype for m in got)
        stamps = [m[0] for m in got]
        assert stamps == sorted(stamps) and t0 <= stamps[0] and stamps[-1] <= t1  # receive time, ns
        for i, (_, raw, _) in enumerate(got):  # in order, byte for byte what rosbags serialises
            assert raw == bytes(TYPESTORE.serialize_cdr(make(i), msgtype)), (topic, i)

    # metadata that ros2 bag needs: storage, types, QoS of the publisher
    import yaml

    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["message_count"] == 3 * n
    topics = {t["topic_metadata"]["name"]: t["topic_metadata"] for t in meta["topics_with_message_count"]}
    assert topics[IMAGE]["type"] == "sensor_msgs/msg/Image" and topics[IMAGE]["serialization_format"] == "cdr"
    # the publishers' QoS as discovered (one profile per publisher; DDS discovery carries no
    # history depth, so it is "unknown" / 0, as ros2 bag record writes it)
    qos = {name: t["offered_qos_profiles"] for name, t in topics.items()}
    assert [q["reliability"] for q in qos[IMAGE]] == ["best_effort"]  # the publisher's sensor QoS
    assert [(q["reliability"], q["durability"], q["history"]) for q in qos[VALUE]] == [("reliable", "volatile", "unknown")]
    assert topics[JOINTS]["type_description_hash"].startswith("RIHS01_")

    # the MCAP file itself, read with the mcap package
    from mcap.reader import make_reader

    (mcap_file,) = bag.glob("*.mcap")
    with open(mcap_file, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        schemas = {s.name: s for s in summary.schemas.values()}
        assert set(schemas) >= {"sensor_msgs/msg/Image", "sensor_msgs/msg/JointState", "std_msgs/msg/Float64"}
        assert all(s.encoding == "ros2msg" for s in schemas.values())
        assert b"float64 data" in schemas["std_msgs/msg/Float64"].data
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        counts: dict[str, int] = {}
        for _, channel, message in reader.iter_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if channel.topic == VALUE:
                assert message.data == bytes(TYPESTORE.serialize_cdr(_value(counts[VALUE] - 1), "std_msgs/msg/Float64"))
        assert counts == {IMAGE: n, JOINTS: n, VALUE: n}


def test_recorder_all_topics_discovery_and_episode_split(ros_domain, tmp_path):
    out = tmp_path / "episodes"
    log = tmp_path / "recorder.log"
    proc = start_node("robot_rl.ros.recorder", "-p", f"output_dir:={out}", "-p", "all_topics:=true",
                      "-p", "split_episodes:=true", "-p", "discovery_period_s:=0.2", "-p", "exclude_topics:=[/rosout]",
                      log_path=str(log))
    node = Node("episode_source")
    value = node.create_publisher("std_msgs/msg/Float64", "/never/named/value")
    reset_done = node.create_publisher("std_msgs/msg/Int64MultiArray", "/sim/reset_done")
    late = None
    try:
        assert value.wait_for_subscribers(1, 15.0) and reset_done.wait_for_subscribers(1, 15.0), log.read_text()
        for i in range(5):
            value.publish(_value(i))
            time.sleep(0.01)
        time.sleep(0.3)
        reset_done.publish(reset_msg(7, 1))
        time.sleep(0.3)
        reset_done.publish(reset_msg(7, 1))  # the sim's answer to a repeated request: no new episode
        time.sleep(0.3)
        late = node.create_publisher("sensor_msgs/msg/JointState", "/appears/later")  # after the recorder started
        assert late.wait_for_subscribers(1, 15.0), log.read_text()
        for i in range(5, 8):
            value.publish(_value(i))
            late.publish(_joints(i))
            time.sleep(0.01)
        time.sleep(0.5)
        assert stop_node(proc) == 0, log.read_text()
    finally:
        stop_node(proc)
        node.shutdown()
    assert sorted(p.name for p in out.iterdir()) == ["episode_0000", "episode_0001"]
    first, second = _bag_messages(out / "episode_0000"), _bag_messages(out / "episode_0001")
    assert [raw for _, raw, _ in first["/never/named/value"]] == [bytes(TYPESTORE.serialize_cdr(_value(i), "std_msgs/msg/Float64")) for i in range(5)]
    assert [m[2] for m in first["/sim/reset_done"]] == ["std_msgs/msg/Int64MultiArray"]  # the split message ends the episode
    assert len(second["/sim/reset_done"]) == 1  # the repeated answer is recorded, in the same episode
    assert [raw for _, raw, _ in second["/never/named/value"]] == [bytes(TYPESTORE.serialize_cdr(_value(i), "std_msgs/msg/Float64")) for i in range(5, 8)]
    assert len(second["/appears/later"]) == 3 and "/appears/later" not in first
    assert "/rosout" not in first and "/rosout" not in second


def test_recorder_never_overwrites_a_bag(ros_domain, tmp_path):
    from robot_rl.ros.recorder import BagRecorder

    bag = tmp_path / "bag"
    with BagRecorder(bag) as rec:
        rec.add_topic("/x", "std_msgs/msg/Float64")
        rec.write_message("/x", _value(1), 1)
    with pytest.raises(ConfigError, match="exists already"):
        BagRecorder(bag).open()
    with pytest.raises(ConfigError, match="not in the ROS 2 Jazzy typestore"):
        BagRecorder(tmp_path / "other").add_topic("/y", "my_pkg/msg/Unknown")
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "robot_rl.ros.recorder", "--ros-args", "-p", f"output_dir:={bag}",
                          "-p", "all_topics:=true"], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert out.returncode == 1 and f"bag directory {bag} exists already" in out.stderr, out.stderr
    assert time.monotonic() - t < 10.0
    out = subprocess.run([sys.executable, "-m", "robot_rl.ros.recorder", "--ros-args", "-p", f"output_dir:={tmp_path / 'n'}"],
                         capture_output=True, text=True, timeout=30, cwd=REPO)
    assert out.returncode == 1 and "nothing to record" in out.stderr, out.stderr


def test_recorder_reports_topics_it_cannot_record(ros_domain, tmp_path):
    """A topic whose message package is not installed here (tf2_msgs is not on PyPI), whose type the
    bag's typestore lacks, or that has two types is named with the reason, never dropped silently."""
    from rclpy.qos import QoSPresetProfiles

    from robot_rl.ros.recorder import RecorderNode

    try:
        import tf2_msgs  # noqa: F401
        missing_package = None
    except ImportError:
        missing_package = "tf2_msgs/msg/TFMessage"
    node = RecorderNode(["--ros-args", "-p", f"output_dir:={tmp_path / 'bag'}", "-p", "all_topics:=true"])
    try:
        assert node.start()
        latched = QoSPresetProfiles.get_from_short_key("system_default")
        assert not node.consider("/custom", ["my_pkg/msg/Unknown"], [latched])
        assert not node.consider("/mixed", ["std_msgs/msg/Float64", "std_msgs/msg/String"], [latched, latched])
        assert node.consider("/ok", ["std_msgs/msg/Float64"], [latched])
        if missing_package:
            assert not node.consider("/tf_static", [missing_package], [latched])
            assert "cannot be loaded" in node.skipped["/tf_static"] and "tf2_msgs" in node.skipped["/tf_static"]
        assert "not in the ROS 2 Jazzy typestore" in node.skipped["/custom"]
        assert "several types" in node.skipped["/mixed"] and "/ok" not in node.skipped
        # a publisher of a second type on a topic already recorded, found on the real graph
        source, other = Node("two_types_source"), None
        try:
            source.create_publisher("std_msgs/msg/Float64", "/later/two_types")
            end = time.monotonic() + 15
            while "/later/two_types" not in node._subscribed and time.monotonic() < end:
                node.discover()
                time.sleep(0.05)
            assert node._subscribed.get("/later/two_types") == "std_msgs/msg/Float64"
            other = Node("other_type_source")  # its own participant: Fast DDS refuses two types in one
            other.create_publisher("std_msgs/msg/String", "/later/two_types")
            key = "/later/two_types as std_msgs/msg/String"
            while key not in node.skipped and time.monotonic() < end:
                node.discover()
                time.sleep(0.05)
            assert "a publisher of std_msgs/msg/String appeared later" in node.skipped[key]
        finally:
            source.shutdown()
            if other is not None:
                other.shutdown()
    finally:
        node.shutdown()
    from rosbags.rosbag2 import Reader

    with Reader(tmp_path / "bag") as reader:
        assert {c.topic for c in reader.connections} >= {"/ok"}
        assert not {c.topic for c in reader.connections} & {"/custom", "/mixed", "/tf_static"}
