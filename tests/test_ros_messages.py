"""ROS 2 messages: rosbags' CDR is byte-identical to rclpy's type support, and real rclpy round trips.

robot_rl publishes rosbags dataclasses as CDR bytes through rclpy; a stock ROS 2 node decodes them
with its generated classes. These tests check, for every type the design uses, that the bytes
are the same both ways (random field values, long sequences included), and that messages cross
between a robot_rl node and a plain rclpy node in both directions.
"""

from __future__ import annotations

import importlib
import string

import numpy as np
import pytest

from conftest import UserNode
from robot_rl.errors import ConfigError
from robot_rl.ros.messages import DESIGN_TYPES, TYPESTORE, check_type_name, deserialize, load_message_class, serialize
from robot_rl.ros.node import Node, make_message
from robot_rl.ros.qos import QoSProfile, as_qos, to_rclpy

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
def test_design_types_match_rclpy_type_support(typename: str) -> None:
    """rosbags' bytes decode with rclpy's generated class, and rclpy's re-encoding decodes back to the same
    message. (The bytes differ only in padding: Fast CDR leaves alignment padding uninitialised and pads
    the end to 4 bytes.)"""
    from rclpy.serialization import deserialize_message, serialize_message

    cls = load_message_class(typename)
    rng = np.random.default_rng(sum(map(ord, typename)))
    for trial in range(20):
        msg = random_message(typename, rng, long=trial % 10 == 9)
        ours = serialize(msg)
        theirs = deserialize_message(ours, cls)
        again = serialize_message(theirs)
        assert again[:4] == ours[:4] == b"\x00\x01\x00\x00", f"{typename} trial {trial}"  # CDR little endian
        assert_messages_equal(deserialize(again, typename), msg)


def test_type_names_and_missing_packages_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="package/msg/Type"):
        check_type_name("sensor_msgs/Image")
    with pytest.raises(ConfigError, match="not in the ROS 2 jazzy typestore"):
        check_type_name("sensor_msgs/msg/Imag")
    if importlib.util.find_spec("tf2_msgs") is None:
        with pytest.raises(ConfigError, match="tf2_msgs.*not on PyPI"):
            load_message_class("tf2_msgs/msg/TFMessage")
    if importlib.util.find_spec("nav_msgs") is None:
        with pytest.raises(ConfigError, match=r"pip install ros-jazzy-nav-msgs"):
            load_message_class("nav_msgs/msg/Odometry")
    with pytest.raises(ConfigError, match="not a valid sensor_msgs/msg/Image"):
        deserialize(b"\x00\x01\x00\x00\x01", "sensor_msgs/msg/Image")
    with pytest.raises(ConfigError, match="unknown QoS"):
        as_qos("fast")
    with pytest.raises(ConfigError, match="at least 1"):
        QoSProfile(0)
    profile = to_rclpy(as_qos("static"))
    assert (profile.depth, profile.reliability.name, profile.durability.name) == (1, "RELIABLE", "TRANSIENT_LOCAL")


@pytest.mark.parametrize("qos", ["default", "sensor"])
def test_image_crosses_between_robot_rl_and_plain_rclpy_both_ways(ros_domain, qos: str) -> None:
    """A 64x48 rgb8 Image from a robot_rl node to a plain rclpy node and back, in order, bytes intact."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    ours = Node("ours")
    ours_got = []
    ours.create_subscription("sensor_msgs/msg/Image", "/to_ours", ours_got.append, qos)
    ours_pub = ours.create_publisher("sensor_msgs/msg/Image", "/to_user", qos)
    ours.spin_in_thread()
    user_qos = qos_profile_sensor_data if qos == "sensor" else 10
    pixels = [np.full((48, 64, 3), i, np.uint8) for i in range(20)]
    try:
        with UserNode("user") as user:
            user_got = []
            user.node.create_subscription(Image, "/to_user", user_got.append, user_qos)
            user_pub = user.node.create_publisher(Image, "/to_ours", user_qos)
            # both directions matched on both sides (a reader that has not matched the writer yet misses samples)
            assert user.spin_until(lambda: ours_pub.get_subscription_count() == 1 and user_pub.get_subscription_count() == 1
                                   and user.node.count_publishers("/to_user") == 1
                                   and ours._subscriptions[0].get_publisher_count() == 1, 10)
            user.spin_until(lambda: False, 0.3)
            for i, p in enumerate(pixels):
                ours_pub.publish(make_message("sensor_msgs/msg/Image", height=48, width=64, encoding="rgb8", step=192,
                                              data=p.reshape(-1), header=make_message("std_msgs/msg/Header", frame_id=str(i))))
                user_pub.publish(Image(height=48, width=64, encoding="rgb8", step=192, data=p.tobytes()))
                user.spin_until(lambda: False, 0.02)
            assert user.spin_until(lambda: len(user_got) == 20 and len(ours_got) == 20, 10), (len(user_got), len(ours_got))
    finally:
        ours.shutdown()
    assert [m.header.frame_id for m in user_got] == [str(i) for i in range(20)]
    assert all(bytes(m.data) == p.tobytes() for m, p in zip(user_got, pixels))
    assert all(np.array_equal(m.data, p.reshape(-1)) and m.encoding == "rgb8" for m, p in zip(ours_got, pixels))


def test_docstring_examples_run() -> None:
    import doctest

    from robot_rl.ros import distro, messages, qos

    for module in (messages, qos, distro):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_wrench_is_published_in_the_tcp_frame_and_read_back_in_the_base_frame() -> None:
    """`/arm/wrench` carries the wrist wrench in the TCP frame (as a wrist F/T sensor reports it);
    the client rotates it back into ArmState's base frame with the pose's orientation, and a
    wrench already in the base frame is taken as it is."""
    from scipy.spatial.transform import Rotation

    from robot_rl.interfaces import ArmState
    from robot_rl.ros import convert

    quat = Rotation.from_euler("xyz", (np.pi, 0.3, 0.8)).as_quat()  # tilted tool pointing down
    wrench = np.array([1.0, -2.0, 15.0, 0.1, 0.2, -0.3])  # base frame: N, N·m about the TCP
    state = ArmState(q=np.zeros(7), dq=np.zeros(7), ee_position=np.array([0.5, 0.0, 0.2]), ee_quaternion=quat,
                     ee_velocity=np.zeros(6), wrench=wrench, gripper=0.5, stamp=1.0)
    msgs = convert.arm_state_msgs(state, [f"j{i}" for i in range(7)], 1.0)
    w = msgs["wrench"]
    assert w.header.frame_id == convert.TOOL_FRAME
    tool = np.array([w.wrench.force.x, w.wrench.force.y, w.wrench.force.z, w.wrench.torque.x, w.wrench.torque.y, w.wrench.torque.z])
    rot = Rotation.from_quat(quat).as_matrix()
    np.testing.assert_allclose(tool, np.concatenate([rot.T @ wrench[:3], rot.T @ wrench[3:]]), atol=1e-12)
    assert abs(tool[2]) < 15.0  # the tilt really moved force out of the tool z axis
    back = convert.arm_state_from_msgs(msgs["joint_states"], msgs["ee_pose"], msgs["ee_twist"], w)
    np.testing.assert_allclose(back.wrench, wrench, atol=1e-12)
    w.header.frame_id = convert.BASE_FRAME  # a source that publishes in the base frame: no rotation
    np.testing.assert_allclose(convert.arm_state_from_msgs(msgs["joint_states"], msgs["ee_pose"], None, w).wrench,
                               tool, atol=1e-12)
