"""ROS 2 message types: rosbags' Jazzy type definitions in robot_rl code, rclpy's type support on the wire.

robot_rl code builds and reads messages as rosbags dataclasses (``TYPESTORE.types[typename]``,
numeric arrays as numpy arrays): the recorder writes them to MCAP unchanged and no node depends on
generated Python message classes for its logic. On the wire they are CDR bytes
(:func:`serialize`, rosbags' serializer, 4-byte encapsulation header included) that rclpy
publishes as a serialized message; rclpy needs the generated package of the type (``sensor_msgs``)
only for its type support, which :func:`load_message_class` loads with an error that names the
wheel to install. ``tests/test_ros_messages.py`` checks that rosbags' bytes equal rclpy's
``serialize_message`` for every type in :data:`DESIGN_TYPES`.

Example:
    >>> from robot_rl.ros.messages import TYPESTORE, deserialize, serialize
    >>> Float64 = TYPESTORE.types["std_msgs/msg/Float64"]
    >>> data = serialize(Float64(data=1.5))
    >>> data[:4], len(data)
    (b'\\x00\\x01\\x00\\x00', 12)
    >>> deserialize(data, "std_msgs/msg/Float64")
    std_msgs__msg__Float64(data=1.5, __msgtype__='std_msgs/msg/Float64')
"""

from __future__ import annotations

import importlib
from typing import Any

from rosbags.typesys import Stores, get_typestore

from robot_rl.errors import ConfigError
from robot_rl.ros.distro import ROS_DISTRO, pip_package

#: The ROS 2 Jazzy type definitions robot_rl messages are built from.
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)

#: ROS 2 packages whose Python wheels are not on PyPI (they need a ROS 2 install).
NOT_ON_PYPI = frozenset({"tf2_msgs"})

#: The types robot_rl nodes publish or subscribe (checked against rclpy's type support in the tests).
DESIGN_TYPES = (
    "builtin_interfaces/msg/Time",
    "std_msgs/msg/Header",
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CameraInfo",
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/JointState",
    "sensor_msgs/msg/Joy",
    "geometry_msgs/msg/Twist",
    "geometry_msgs/msg/TwistStamped",
    "geometry_msgs/msg/Pose",
    "geometry_msgs/msg/PoseStamped",
    "geometry_msgs/msg/Wrench",
    "geometry_msgs/msg/WrenchStamped",
    "geometry_msgs/msg/TransformStamped",
    "std_msgs/msg/Float32",
    "std_msgs/msg/Float64",
    "std_msgs/msg/Bool",
    "std_msgs/msg/String",
    "std_msgs/msg/Float64MultiArray",
    "std_msgs/msg/Int64MultiArray",
    "trajectory_msgs/msg/JointTrajectory",
    "lifecycle_msgs/msg/TransitionEvent",
    "rcl_interfaces/msg/Log",
)


def check_type_name(typename: str) -> str:
    """``typename`` if it is a ``package/msg/Type`` name that rosbags' Jazzy typestore knows.

    Raises:
        ConfigError: malformed or unknown type name.
    """
    parts = typename.split("/")
    if len(parts) != 3 or not all(parts) or parts[1] != "msg":
        raise ConfigError(f"{typename!r} is not a ROS 2 message type name; write it as 'package/msg/Type', e.g. 'sensor_msgs/msg/Image'.")
    if typename not in TYPESTORE.types:
        raise ConfigError(f"ROS type {typename!r} is not in the ROS 2 {ROS_DISTRO} typestore (rosbags); check the spelling.")
    return typename


def load_message_class(typename: str) -> type:
    """The generated rclpy message class of ``typename`` (``sensor_msgs.msg.Image``), for rclpy's type support.

    Raises:
        ConfigError: unknown type, or its Python package is not installed; the message names the
            wheel to install (``pip install ros-jazzy-sensor-msgs``).
    """
    package, _, name = check_type_name(typename).split("/")
    try:
        module = importlib.import_module(f"{package}.msg")
    except ImportError as e:
        how = (f"it is not on PyPI: source a ROS 2 {ROS_DISTRO} install that has it (apt install "
               f"ros-{ROS_DISTRO}-{package.replace('_', '-')})" if package in NOT_ON_PYPI else
               f"install it with `pip install {pip_package(package)}` (or source a ROS 2 {ROS_DISTRO} install that has it)")
        raise ConfigError(f"ROS 2 message type {typename} cannot be loaded: the Python package {package!r} is not installed "
                          f"({e}); {how}.") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise ConfigError(f"ROS 2 package {package!r} is installed but has no message {name!r}; "
                          f"is it the {ROS_DISTRO} version ({pip_package(package)})?") from None


def serialize(message: Any, typename: str | None = None) -> bytes:
    """CDR bytes (XCDR1, little endian, 4-byte encapsulation header included) of a rosbags message."""
    return bytes(TYPESTORE.serialize_cdr(message, typename or message.__msgtype__))


def deserialize(data: bytes, typename: str) -> Any:
    """The rosbags message of ``typename`` from CDR bytes (encapsulation header included).

    Raises:
        ConfigError: the bytes are not a ``typename`` message.
    """
    # rosbags' own deserialize_cdr refuses more than 3 bytes after the message, but Fast DDS
    # (rclpy) leaves padding after the last field (8 bytes for a JointState, 12 for a
    # JointTrajectory, measured in tests/test_ros_messages.py); like rclpy, ignore the tail.
    if len(data) < 4 or bytes(data[:2]) not in (b"\x00\x00", b"\x00\x01"):
        raise ConfigError(f"{len(data)} bytes are not a {typename} CDR message (no CDR encapsulation header).")
    try:
        msgdef = TYPESTORE.get_msgdef(typename)
        decode = msgdef.deserialize_cdr_le if data[1] else msgdef.deserialize_cdr_be
        message, _ = decode(memoryview(data)[4:], 0, msgdef.cls, TYPESTORE)
    except Exception as e:  # noqa: BLE001 - rosbags raises several error types for short/odd buffers
        raise ConfigError(f"{len(data)} bytes are not a valid {typename} CDR message: {e}") from None
    return message
