"""ROS 2 QoS profiles, topic names, type hashes and localhost discovery for the Cyclone DDS backend.

What rmw_cyclonedds does, restated for plain Cyclone DDS so ROS 2 tools see our topics:

- a ROS topic ``/camera/front/color/image_raw`` is the DDS topic ``rt/camera/front/color/image_raw``;
- every writer and reader carries ``typehash=RIHS01_<64 hex>;`` in its USER_DATA (rmw_dds_common
  ``encode_type_hash_for_user_data_qos``) so Jazzy tools do not warn about a missing type hash;
- QoS is set explicitly: the ``rmw_qos_profile_default`` and ``rmw_qos_profile_sensor_data`` values.
  A BEST_EFFORT writer does not match a RELIABLE reader.

Example:
    >>> ros_topic_to_dds("/camera/front/color/image_raw")
    'rt/camera/front/color/image_raw'
    >>> type_hash_user_data("std_msgs/msg/String")
    b'typehash=RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18;'
"""

from __future__ import annotations

from cyclonedds.core import Policy, Qos
from cyclonedds.util import duration

from robot_rl.errors import ConfigError
from robot_rl.ros.messages import TYPESTORE

#: Queue depth of :func:`default_qos` (``rmw_qos_profile_default``).
DEFAULT_DEPTH = 10
#: Queue depth of :func:`sensor_data_qos` (``rmw_qos_profile_sensor_data``).
SENSOR_DATA_DEPTH = 5
#: How long a RELIABLE write may block on a full history before it fails, in milliseconds
#: (rmw_cyclonedds uses DDS' default of 100 ms).
MAX_BLOCKING_TIME_MS = 100

#: Prefix of ROS 2 topics in DDS (rmw_cyclonedds ``ROS_TOPIC_PREFIX``).
TOPIC_PREFIX = "rt"


def default_qos(depth: int = DEFAULT_DEPTH, typename: str | None = None) -> Qos:
    """``rmw_qos_profile_default``: KEEP_LAST ``depth``, RELIABLE, VOLATILE.

    Args:
        depth: history depth in messages.
        typename: ROS 2 type name; when given, USER_DATA advertises its RIHS01 type hash.
    """
    return _qos(Policy.Reliability.Reliable(duration(milliseconds=MAX_BLOCKING_TIME_MS)), depth, typename)


def sensor_data_qos(depth: int = SENSOR_DATA_DEPTH, typename: str | None = None) -> Qos:
    """``rmw_qos_profile_sensor_data``: KEEP_LAST ``depth``, BEST_EFFORT, VOLATILE (cameras, joint states).

    Args:
        depth: history depth in messages.
        typename: ROS 2 type name; when given, USER_DATA advertises its RIHS01 type hash.
    """
    return _qos(Policy.Reliability.BestEffort, depth, typename)


def _qos(reliability: object, depth: int, typename: str | None) -> Qos:
    if depth < 1:
        raise ConfigError(f"QoS history depth must be at least 1 message, got {depth}.")
    policies = [reliability, Policy.History.KeepLast(depth), Policy.Durability.Volatile]
    if typename is not None:
        policies.append(Policy.Userdata(type_hash_user_data(typename)))
    return Qos(*policies)


def type_hash_user_data(typename: str) -> bytes:
    """USER_DATA of a ROS 2 Jazzy writer or reader: ``typehash=RIHS01_<hex>;`` (rosbags' ``hash_rihs01``)."""
    if typename not in TYPESTORE.fielddefs:
        raise ConfigError(f"ROS type {typename!r} is not in rosbags' ROS 2 Jazzy typestore, so it has no RIHS01 hash; register it first.")
    return f"typehash={TYPESTORE.hash_rihs01(typename)};".encode("ascii")


def ros_topic_to_dds(name: str) -> str:
    """DDS topic name of a fully qualified ROS 2 topic: ``/joint_states`` -> ``rt/joint_states``.

    Raises:
        ConfigError: the name is not fully qualified (relative and ``~`` names are resolved by the
            node against its namespace first), is empty, or ends with ``/``.
    """
    if not name.startswith("/") or name == "/" or name.endswith("/") or "//" in name:
        raise ConfigError(
            f"ROS topic {name!r} is not a fully qualified name; resolve it against the node namespace first "
            "('/camera/front/color/image_raw', not 'color/image_raw' or '~/delta_twist_cmds')."
        )
    return TOPIC_PREFIX + name


def dds_topic_to_ros(name: str) -> str:
    """ROS 2 topic name of a DDS topic: ``rt/joint_states`` -> ``/joint_states``."""
    if not name.startswith(TOPIC_PREFIX + "/"):
        raise ConfigError(f"DDS topic {name!r} is not a ROS 2 topic; ROS 2 topics start with '{TOPIC_PREFIX}/'.")
    return name[len(TOPIC_PREFIX):]


def localhost_config_xml(max_participants: int = 32) -> str:
    """``CYCLONEDDS_URI`` value for discovery on this host only (like ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``).

    Only the loopback interface, no multicast (``lo`` often has none), unicast discovery of the
    participant ports on 127.0.0.1, and 62 kB fragments (loopback's MTU is 64 KiB). Checked here
    between two processes and within one.

    Args:
        max_participants: participants per domain on this host; each takes one port pair.
    """
    return (
        "<CycloneDDS><Domain><General>"
        '<Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces>'
        "<AllowMulticast>false</AllowMulticast>"
        # loopback carries 64 KiB datagrams: 62 kB fragments instead of 1344 B cut a 640x480
        # image from ~690 packets to 15 (benchmarks/ros_topics.py: +40% throughput)
        "<MaxMessageSize>65500B</MaxMessageSize><FragmentSize>62000B</FragmentSize>"
        "</General><Discovery>"
        "<ParticipantIndex>auto</ParticipantIndex>"
        f"<MaxAutoParticipantIndex>{max_participants - 1}</MaxAutoParticipantIndex>"
        '<Peers><Peer address="127.0.0.1"/></Peers>'
        "</Discovery></Domain></CycloneDDS>"
    )
