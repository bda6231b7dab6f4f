"""ROS 2 messages on Cyclone DDS: byte-identical to rosbags' CDR, and a real DDS round trip on loopback."""

from __future__ import annotations

import os
import string
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.ros import messages, qos
from robot_rl.ros.messages import DESIGN_TYPES, TYPESTORE, from_dds, get_message_class, to_dds

from rosbags.typesys.base import Nodetype

_INT_RANGES = {
    "int8": (-128, 127), "byte": (-128, 127), "uint8": (0, 255), "char": (0, 255),
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}
_DTYPES = {"bool": np.bool_, "byte": np.int8, "char": np.uint8, "float32": np.float32, "float64": np.float64}


def _length(rng: np.random.Generator, bound: int, long: bool) -> int:
    n = int(rng.choice([0, 1, 2, 3, 5, 7, 1000 if long else 4]))
    return min(n, bound) if bound else n


def _random_string(rng: np.random.Generator, bound: int, long: bool) -> str:
    letters = np.array(list(string.ascii_letters + string.digits + "_/."))
    return "".join(rng.choice(letters, size=_length(rng, bound, long)))


def _random_primitives(rng: np.random.Generator, primitive: str, n: int) -> np.ndarray:
    if primitive == "bool":
        return rng.integers(0, 2, size=n).astype(np.bool_)
    if primitive in ("float32", "float64"):
        return (rng.standard_normal(n) * 1e3).astype(_DTYPES[primitive])
    low, high = _INT_RANGES[primitive]
    dtype = _DTYPES[primitive] if primitive in _DTYPES else np.dtype(primitive)
    return rng.integers(low, high, size=n, dtype=dtype, endpoint=True)


def _random_value(rng: np.random.Generator, node: tuple, long: bool):
    kind, detail = node
    if kind == Nodetype.NAME:
        return random_message(detail, rng, long)
    if kind == Nodetype.BASE:
        primitive, bound = detail
        if primitive == "string":
            return _random_string(rng, bound, long)
        value = _random_primitives(rng, primitive, 1)[0]
        return bool(value) if primitive == "bool" else value.item()
    sub, length = detail
    n = length if kind == Nodetype.ARRAY else _length(rng, length, long)
    if sub[0] == Nodetype.BASE and sub[1][0] != "string":
        return _random_primitives(rng, sub[1][0], n)
    return [_random_value(rng, sub, long) for _ in range(n)]


def random_message(typename: str, rng: np.random.Generator, long: bool = False):
    """A rosbags message of ``typename`` with random fields; sequences of 0..7 items (1000 if ``long``)."""
    _, fields = TYPESTORE.fielddefs[typename]
    return TYPESTORE.types[typename](**{name: _random_value(rng, node, long) for name, node in fields})


def assert_messages_equal(a, b, path: str = "msg") -> None:
    if hasattr(a, "__msgtype__"):
        assert a.__msgtype__ == b.__msgtype__, path
        for name in a.__dataclass_fields__:
            if name != "__msgtype__":
                assert_messages_equal(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), path
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_messages_equal(x, y, f"{path}[{i}]")
    else:
        assert type(a) is type(b) and a == b, path


@pytest.mark.parametrize("typename", DESIGN_TYPES)
def test_design_types_are_byte_identical_to_rosbags(typename: str) -> None:
    rng = np.random.default_rng(sum(map(ord, typename)))
    for trial in range(40):
        msg = random_message(typename, rng, long=trial % 10 == 9)
        expected = bytes(TYPESTORE.serialize_cdr(msg, typename))
        sample = to_dds(msg)
        data = bytes(sample.serialize())
        assert data == expected, f"{typename} trial {trial}: Cyclone DDS CDR differs from rosbags"
        assert data[:4] == b"\x00\x01\x00\x00"  # XCDR1 little endian, no options
        back = get_message_class(typename).deserialize(expected)
        assert back == sample
        assert_messages_equal(from_dds(back, typename), msg)
        assert_messages_equal(messages.deserialize(expected, typename), TYPESTORE.deserialize_cdr(expected, typename))


def test_every_jazzy_type_is_byte_identical_to_rosbags() -> None:
    rng = np.random.default_rng(0)
    for typename in TYPESTORE.fielddefs:
        for _ in range(3):
            msg = random_message(typename, rng)
            expected = bytes(TYPESTORE.serialize_cdr(msg, typename))
            assert messages.serialize(msg, typename) == expected, typename
            assert_messages_equal(messages.deserialize(expected, typename), msg)


def test_dds_type_names_follow_rmw_cyclonedds() -> None:
    cls = get_message_class("sensor_msgs/msg/Image")
    assert cls.__idl_typename__ == "sensor_msgs::msg::dds_::Image_"
    assert get_message_class("sensor_msgs/msg/Image") is cls
    assert messages.dds_type_name("geometry_msgs/msg/TwistStamped") == "geometry_msgs::msg::dds_::TwistStamped_"
    with pytest.raises(ConfigError, match="register"):
        get_message_class("my_pkg/msg/Nope")
    with pytest.raises(ConfigError, match="package/msg/Type"):
        get_message_class("sensor_msgs/Image")


def test_image_data_travels_as_bytes() -> None:
    msg = random_message("sensor_msgs/msg/Image", np.random.default_rng(1))
    msg.data = np.arange(480 * 640 * 3, dtype=np.uint8)
    sample = to_dds(msg)
    assert isinstance(sample.data, bytes) and len(sample.data) == msg.data.size


def test_qos_profiles_and_names() -> None:
    default = qos.default_qos(typename="sensor_msgs/msg/JointState")
    assert default[qos.Policy.History] == qos.Policy.History.KeepLast(10)
    assert isinstance(default[qos.Policy.Reliability], qos.Policy.Reliability.Reliable)
    assert default[qos.Policy.Durability] == qos.Policy.Durability.Volatile
    user_data = default[qos.Policy.Userdata].data
    assert user_data == f"typehash={TYPESTORE.hash_rihs01('sensor_msgs/msg/JointState')};".encode()
    assert user_data.startswith(b"typehash=RIHS01_") and len(user_data) == len("typehash=RIHS01_;") + 64
    sensor = qos.sensor_data_qos()
    assert sensor[qos.Policy.History] == qos.Policy.History.KeepLast(5)
    assert sensor[qos.Policy.Reliability] == qos.Policy.Reliability.BestEffort
    assert sensor[qos.Policy.Durability] == qos.Policy.Durability.Volatile
    assert qos.ros_topic_to_dds("/camera/front/color/image_raw") == "rt/camera/front/color/image_raw"
    assert qos.dds_topic_to_ros("rt/joint_states") == "/joint_states"
    for bad in ("color/image_raw", "~/delta_twist_cmds", "/", "/a/", ""):
        with pytest.raises(ConfigError):
            qos.ros_topic_to_dds(bad)


@pytest.fixture(scope="module")
def participant():
    # Loopback-only discovery; a domain id from the pid keeps parallel test runs apart.
    previous = os.environ.get("CYCLONEDDS_URI")
    os.environ["CYCLONEDDS_URI"] = qos.localhost_config_xml()
    from cyclonedds.domain import DomainParticipant

    yield DomainParticipant(100 + os.getpid() % 100)
    if previous is None:
        os.environ.pop("CYCLONEDDS_URI", None)
    else:
        os.environ["CYCLONEDDS_URI"] = previous


def _take_one(reader, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        samples = reader.take()
        if samples:
            return samples[0]
        time.sleep(0.005)
    raise AssertionError("no sample within the timeout")


@pytest.mark.parametrize(
    ("typename", "ros_topic", "make_qos"),
    [
        ("sensor_msgs/msg/Image", "/test/image", qos.sensor_data_qos),
        ("sensor_msgs/msg/JointState", "/test/joint_states", qos.default_qos),
    ],
)
def test_dds_round_trip_on_loopback(participant, typename: str, ros_topic: str, make_qos) -> None:
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    topic = Topic(participant, qos.ros_topic_to_dds(ros_topic), get_message_class(typename))
    assert topic.name == "rt" + ros_topic
    reader = DataReader(participant, topic, make_qos(typename=typename))
    writer = DataWriter(participant, topic, make_qos(typename=typename))
    msg = random_message(typename, np.random.default_rng(7), long=True)
    if typename == "sensor_msgs/msg/Image":
        msg.height, msg.width, msg.step, msg.encoding = 48, 64, 64 * 3, "rgb8"
        msg.data = np.random.default_rng(8).integers(0, 256, 48 * 64 * 3, dtype=np.uint8)
    deadline = time.monotonic() + 5.0
    while not writer.get_matched_subscriptions() and time.monotonic() < deadline:
        time.sleep(0.005)
    writer.write(to_dds(msg))
    received = from_dds(_take_one(reader), typename)
    assert_messages_equal(received, msg)
    assert bytes(TYPESTORE.serialize_cdr(received, typename)) == bytes(TYPESTORE.serialize_cdr(msg, typename))


def test_best_effort_writer_does_not_match_reliable_reader(participant) -> None:
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    topic = Topic(participant, qos.ros_topic_to_dds("/test/qos_mismatch"), get_message_class("std_msgs/msg/String"))
    reliable_reader = DataReader(participant, topic, qos.default_qos())
    best_effort_reader = DataReader(participant, topic, qos.sensor_data_qos())
    writer = DataWriter(participant, topic, qos.sensor_data_qos())
    deadline = time.monotonic() + 2.0
    while len(writer.get_matched_subscriptions()) < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.1)
    assert len(writer.get_matched_subscriptions()) == 1
    assert len(best_effort_reader.get_matched_publications()) == 1
    assert reliable_reader.get_matched_publications() == []


def test_image_crosses_processes_on_loopback(participant) -> None:
    """Another process publishes a 640x480 RGB image (fragmented over UDP); this one receives it intact."""
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    typename = "sensor_msgs/msg/Image"
    topic = Topic(participant, qos.ros_topic_to_dds("/test/image_remote"), get_message_class(typename))
    reader = DataReader(participant, topic, qos.default_qos(typename=typename))
    publisher = textwrap.dedent(f"""
        import time
        import numpy as np
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.pub import DataWriter
        from cyclonedds.topic import Topic
        from robot_rl.ros import qos
        from robot_rl.ros.messages import TYPESTORE, get_message_class, to_dds
        T = TYPESTORE.types
        header = T["std_msgs/msg/Header"](T["builtin_interfaces/msg/Time"](12, 345), "front_color_optical_frame")
        data = np.arange(480 * 640 * 3, dtype=np.uint64).astype(np.uint8)
        msg = T["{typename}"](header, 480, 640, "rgb8", 0, 640 * 3, data)
        dp = DomainParticipant({participant.domain_id})
        topic = Topic(dp, "rt/test/image_remote", get_message_class("{typename}"))
        writer = DataWriter(dp, topic, qos.default_qos(typename="{typename}"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            writer.write(to_dds(msg))
            time.sleep(0.05)
    """)
    env = dict(os.environ, CYCLONEDDS_URI=qos.localhost_config_xml())
    process = subprocess.Popen([sys.executable, "-c", publisher], env=env)
    try:
        received = from_dds(_take_one(reader, timeout_s=10.0), typename)
    finally:
        process.kill()
        process.wait()
    assert (received.height, received.width, received.encoding) == (480, 640, "rgb8")
    assert received.header.frame_id == "front_color_optical_frame" and received.header.stamp.nanosec == 345
    np.testing.assert_array_equal(received.data, np.arange(480 * 640 * 3, dtype=np.uint64).astype(np.uint8))
