"""ROS 2 message classes for Cyclone DDS, generated from rosbags' ROS 2 Jazzy typestore.

Nothing here is written by hand per message type: for a ROS type name such as
``sensor_msgs/msg/Image`` the field definitions of :data:`TYPESTORE` become a plain (``@final``,
no optional members) :class:`cyclonedds.idl.IdlStruct` dataclass whose DDS type name is
``sensor_msgs::msg::dds_::Image_``, as rmw_cyclonedds names it. Cyclone DDS then writes XCDR1
payloads that are byte-identical to ``TYPESTORE.serialize_cdr(msg, typename)`` (checked field by
field in ``tests/test_ros_messages.py``), so ``ros2 topic echo`` and rosbag2 read what we publish.

Two representations of one message exist and :func:`to_dds` / :func:`from_dds` convert between
them:

- the rosbags dataclass (``TYPESTORE.types[typename]``): numeric arrays and sequences are numpy
  arrays, what the rest of robot_rl and MCAP recording use;
- the Cyclone DDS struct (``get_message_class(typename)``): numeric arrays are Python lists,
  1-byte sequences (``uint8[]``, ``byte[]``, ``char[]``, ``int8[]``; image data) are ``bytes`` so
  a 1280x720 RGB frame is one memory copy, not a list of 2.7 million ints.

Example:
    >>> from robot_rl.ros.messages import TYPESTORE, from_dds, to_dds
    >>> Float64 = TYPESTORE.types["std_msgs/msg/Float64"]
    >>> sample = to_dds(Float64(data=1.5))
    >>> type(sample).__name__, sample.data
    ('Float64_', 1.5)
    >>> bytes(sample.serialize()) == bytes(TYPESTORE.serialize_cdr(Float64(1.5), "std_msgs/msg/Float64"))
    True
    >>> from_dds(sample, "std_msgs/msg/Float64")
    std_msgs__msg__Float64(data=1.5, __msgtype__='std_msgs/msg/Float64')

Sources: rmw_cyclonedds (``rmw_cyclonedds_cpp/src/serdata.cpp``, type names ``<pkg>::msg::dds_::<Type>_``),
rosidl_typesupport_introspection (empty messages carry ``structure_needs_at_least_one_member``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from cyclonedds.idl import IdlStruct, make_idl_struct
from cyclonedds.idl import types as idl
from cyclonedds.idl._machinery import PlainCdrV2SequenceOfPrimitiveMachine
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.base import Nodetype

from robot_rl.errors import ConfigError

#: The ROS 2 Jazzy type definitions every class here is generated from.
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)

#: ROS primitive name -> Cyclone DDS IDL type. rosbags packs ``byte`` signed and ``char`` unsigned.
_PRIMITIVES: dict[str, Any] = {
    "bool": bool,
    "byte": idl.int8,
    "char": idl.uint8,
    "int8": idl.int8,
    "uint8": idl.uint8,
    "int16": idl.int16,
    "uint16": idl.uint16,
    "int32": idl.int32,
    "uint32": idl.uint32,
    "int64": idl.int64,
    "uint64": idl.uint64,
    "float32": idl.float32,
    "float64": idl.float64,
}
#: Primitives of one byte: their arrays and sequences travel as ``bytes`` on the DDS side.
_ONE_BYTE = {"byte", "char", "int8", "uint8"}

#: The types the design publishes or subscribes; generated at import so a typo fails early.
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
    "std_msgs/msg/Float32",
    "std_msgs/msg/Float64",
    "std_msgs/msg/Bool",
    "std_msgs/msg/String",
)

_CLASSES: dict[str, type[IdlStruct]] = {}
# Per type: a list of (field name, rosbags -> DDS converter, DDS -> rosbags converter).
_CONVERTERS: dict[str, list[tuple[str, Callable[[Any], Any], Callable[[Any], Any]]]] = {}


def dds_type_name(typename: str) -> str:
    """DDS type name of a ROS 2 type: ``sensor_msgs/msg/Image`` -> ``sensor_msgs::msg::dds_::Image_``."""
    parts = typename.split("/")
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"{typename!r} is not a ROS 2 type name; write it as 'package/msg/Type', e.g. 'sensor_msgs/msg/Image'.")
    package, kind, name = parts
    return f"{package}::{kind}::dds_::{name}_"


def _numpy_dtype(primitive: str) -> np.dtype:
    # The dtype rosbags uses for arrays of this primitive (rosbags.serde.utils).
    return np.dtype({"bool": "bool_", "char": "uint8", "byte": "int8"}.get(primitive, primitive))


def _identity(value: Any) -> Any:
    return value


def _field(node: tuple) -> tuple[Any, Callable[[Any], Any], Callable[[Any], Any]]:
    """IDL type and the two converters of one typestore field definition."""
    kind, detail = node
    if kind == Nodetype.NAME:
        cls = get_message_class(detail)
        return cls, (lambda m, t=detail: to_dds(m, t)), (lambda s, t=detail: from_dds(s, t))
    if kind == Nodetype.BASE:
        primitive, bound = detail
        if primitive == "string":
            return (idl.bounded_str[bound] if bound else str), _identity, _identity
        if primitive not in _PRIMITIVES:
            raise ConfigError(f"ROS primitive {primitive!r} is not supported on the Cyclone DDS backend; use rclpy for this type.")
        return _PRIMITIVES[primitive], _identity, _identity
    (sub_kind, sub_detail), length = detail
    is_array = kind == Nodetype.ARRAY
    if sub_kind == Nodetype.BASE and sub_detail[0] not in ("string",):
        primitive = sub_detail[0]
        if primitive not in _PRIMITIVES:
            raise ConfigError(f"ROS primitive {primitive!r} is not supported on the Cyclone DDS backend; use rclpy for this type.")
        dtype = _numpy_dtype(primitive)
        if primitive in _ONE_BYTE:
            # array[uint8, N] -> ByteArrayMachine, unbounded sequence -> BytesMachine: raw bytes.
            # Sequences are declared sequence<uint8> (what XTypes type discovery needs) and get
            # an _OctetSequenceMachine after the class is built (see get_message_class).
            if is_array:
                idl_type = idl.array[idl.uint8, length]
            else:
                idl_type = idl.sequence[idl.uint8, length] if length else idl.sequence[idl.uint8]
            to = lambda v: np.ascontiguousarray(v, dtype=dtype).tobytes()  # noqa: E731
            back = lambda v: np.frombuffer(v, dtype=dtype)  # noqa: E731
            return idl_type, to, back
        base = _PRIMITIVES[primitive]
        idl_type = idl.array[base, length] if is_array else (idl.sequence[base, length] if length else idl.sequence[base])
        return idl_type, (lambda v: np.asarray(v, dtype=dtype).tolist()), (lambda v: np.asarray(v, dtype=dtype))
    sub_type, sub_to, sub_back = _field((sub_kind, sub_detail))
    idl_type = idl.array[sub_type, length] if is_array else (idl.sequence[sub_type, length] if length else idl.sequence[sub_type])
    return idl_type, (lambda v: [sub_to(x) for x in v]), (lambda v: [sub_back(x) for x in v])


class _OctetSequenceMachine(PlainCdrV2SequenceOfPrimitiveMachine):
    """``sequence<uint8>`` (de)serialized from and to ``bytes`` in one copy instead of one int per byte."""

    def __init__(self, max_length: int | None = None) -> None:
        super().__init__(idl.uint8, max_length)

    def serialize(self, buffer: Any, value: bytes, *args: Any, **kwargs: Any) -> None:
        if self.max_length is not None and len(value) > self.max_length:
            raise ConfigError(f"sequence of {len(value)} bytes is longer than its bound of {self.max_length}.")
        buffer.align(4)
        buffer.write("I", 4, len(value))
        buffer.write_bytes(value)

    def deserialize(self, buffer: Any, *args: Any, **kwargs: Any) -> bytes:
        buffer.align(4)
        return buffer.read_bytes(buffer.read("I", 4))

    def default_initialize(self) -> bytes:
        return b""


def get_message_class(typename: str) -> type[IdlStruct]:
    """The Cyclone DDS struct of a ROS 2 type, generated from :data:`TYPESTORE` once and cached.

    Args:
        typename: ROS 2 type name, ``package/msg/Type`` (``sensor_msgs/msg/Image``).

    Returns:
        An ``IdlStruct`` dataclass named ``<Type>_`` with DDS type name ``<package>::msg::dds_::<Type>_``
        and the fields of the ROS message in order.

    Raises:
        ConfigError: the type is not in the Jazzy typestore (register it with
            ``TYPESTORE.register(get_types_from_msg(text, typename))`` first) or uses ``wstring``.
    """
    cls = _CLASSES.get(typename)
    if cls is not None:
        return cls
    dds_name = dds_type_name(typename)
    if typename not in TYPESTORE.fielddefs:
        raise ConfigError(
            f"ROS type {typename!r} is not in rosbags' ROS 2 Jazzy typestore; register its definition with "
            "robot_rl.ros.messages.TYPESTORE.register(rosbags.typesys.get_types_from_msg(text, typename))."
        )
    _, fielddefs = TYPESTORE.fielddefs[typename]
    fields: dict[str, Any] = {}
    converters = []
    for name, node in fielddefs:
        idl_type, to, back = _field(node)
        fields[name] = idl_type
        converters.append((name, to, back))
    cls = make_idl_struct(dds_name.rsplit("::", 1)[1], dds_name, fields)
    cls.__idl__.populate()
    for machine in (cls.__idl__.v1_machine, cls.__idl__.v2_machine):
        for name, member in machine.members_machines.items():
            if isinstance(member, PlainCdrV2SequenceOfPrimitiveMachine) and member.code == "B":
                machine.members_machines[name] = _OctetSequenceMachine(member.max_length)
    _CLASSES[typename] = cls
    _CONVERTERS[typename] = converters
    return cls


def to_dds(message: Any, typename: str | None = None) -> IdlStruct:
    """Convert a rosbags message instance to its Cyclone DDS struct (numpy arrays become lists or bytes).

    Args:
        message: an instance of ``TYPESTORE.types[typename]``.
        typename: ROS 2 type name; defaults to the message's ``__msgtype__``.
    """
    typename = typename or message.__msgtype__
    cls = get_message_class(typename)
    return cls(**{name: to(getattr(message, name)) for name, to, _ in _CONVERTERS[typename]})


def from_dds(sample: IdlStruct, typename: str) -> Any:
    """Convert a Cyclone DDS struct back to the rosbags message instance (lists become numpy arrays).

    1-byte arrays and sequences come back as read-only numpy views of the received ``bytes``.
    """
    get_message_class(typename)
    return TYPESTORE.types[typename](**{name: back(getattr(sample, name)) for name, _, back in _CONVERTERS[typename]})


def serialize(message: Any, typename: str | None = None) -> bytes:
    """CDR bytes of a rosbags message as Cyclone DDS writes them, 4-byte encapsulation header included."""
    return bytes(to_dds(message, typename).serialize())


def deserialize(data: bytes, typename: str) -> Any:
    """rosbags message from CDR bytes (4-byte encapsulation header included) via Cyclone DDS."""
    return from_dds(get_message_class(typename).deserialize(data), typename)


for _typename in DESIGN_TYPES:
    get_message_class(_typename)
