"""Record ROS 2 topics to rosbag2 MCAP bags (``ros2 bag info`` / ``ros2 bag play`` read them).

:class:`BagRecorder` is the storage half (rosbags' :class:`~rosbags.rosbag2.Writer` with the MCAP
storage plugin, one connection per topic, per-episode split); :class:`RecorderNode` is the ROS
half: it finds the topics and their types on the DDS graph, subscribes and writes every message
with its receive time.

Run it::

    ros2 run robot_rl robot_rl_recorder --ros-args -p output_dir:=bags/run1 -p all_topics:=true
    python -m robot_rl.ros.recorder --ros-args -p output_dir:=bags/run1 \\
        -p "topics:=[/joint_states, /camera/front/color/image_raw]" -p split_episodes:=true

What is written (as ``ros2 bag record -s mcap`` does):

* one MCAP file per bag, rosbag2 metadata version 9; each connection has the ROS type
  (``sensor_msgs/msg/Image``), its ``ros2msg`` schema from the Jazzy typestore, ``cdr``
  serialisation and the offered QoS profile of the publisher (reliability and depth as
  discovered, VOLATILE, infinite deadline / lifespan / lease);
* payloads are the CDR bytes of the message, identical to ``TYPESTORE.serialize_cdr(msg, type)``
  (and to what the ROS 2 publisher sent), log time = receive time in ns since the Unix epoch.

Topics and types come from Cyclone DDS's builtin discovery topic ``DCPSPublication``: a writer on
``rt/<name>`` with type ``<pkg>::msg::dds_::<Name>_`` is topic ``/<name>`` of type
``<pkg>/msg/<Name>``. With ``all_topics`` every such topic is recorded (re-checked every
``discovery_period_s``, so topics that appear later are picked up); otherwise only the names in
``topics``, as soon as a publisher of them appears. As with ``ros2 bag record``, messages sent
before the recorder matched a publisher are not recorded. Image topics (``sensor_msgs/Image``,
``CompressedImage``) and topics whose publisher is BEST_EFFORT are read BEST_EFFORT (which
matches both kinds of publisher); all others RELIABLE, so a slow disk does not drop them.

Episodes: with ``split_episodes`` the bags are ``<output_dir>/episode_0000``, ``episode_0001``,
...; each message on ``split_on`` (default ``/sim/reset_done``, which the sim node publishes after
each reset) is written to the current bag, which is then closed, and the next bag starts. A split
message byte-identical to the previous one (the sim re-answers a repeated reset request with the
same ``[request_id, seed]``) is recorded but does not split again. Without it ``output_dir`` itself is the one bag. The split happens when the split message is
processed: messages of other topics that arrive within the same few milliseconds may land on
either side of it (stamp-based assignment is left to the reader of the bags). An existing bag directory is never overwritten
(configure fails with a clear error).

Crash safety: SIGINT / SIGTERM close the bag (summary, ``metadata.yaml``). After SIGKILL or a
power cut the MCAP file lacks its summary and ``metadata.yaml`` is missing; the messages in it up
to the last written chunk can still be read with ``ros2 bag reindex`` or the ``mcap`` tool's
``recover`` command.

Needs the Cyclone DDS backend (``ros_backend:=dds``) for graph discovery; in a ROS 2 install
``ros2 bag record -s mcap`` does the same job.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_rl.errors import ConfigError
from robot_rl.ros.convert import RESET_DONE
from robot_rl.ros.messages import TYPESTORE
from robot_rl.ros.node import LifecycleNode, QoSProfile, run_node

#: ROS types read BEST_EFFORT (camera streams, as realsense2_camera / image_transport publish them).
BEST_EFFORT_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/PointCloud2"})

_INFINITE_NS = 9223372036854775807  # rmw's "infinite" duration, as rosbag2 writes it in metadata.yaml


def ros_type_from_dds(type_name: str) -> str | None:
    """ROS type of a DDS type name, or None for a name that is not a ROS 2 message type.

    >>> ros_type_from_dds("sensor_msgs::msg::dds_::Image_")
    'sensor_msgs/msg/Image'
    >>> ros_type_from_dds("DDS::ParticipantBuiltinTopicData") is None
    True
    """
    parts = type_name.split("::")
    if len(parts) != 4 or parts[1] != "msg" or parts[2] != "dds_" or not parts[3].endswith("_"):
        return None
    return f"{parts[0]}/msg/{parts[3][:-1]}"


def _rosbags_qos(profile: QoSProfile) -> Any:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    infinite = QosTime(sec=_INFINITE_NS // 1_000_000_000, nsec=_INFINITE_NS % 1_000_000_000)
    return Qos(history=QosHistory.KEEP_LAST, depth=profile.depth,
               reliability=QosReliability.RELIABLE if profile.reliable else QosReliability.BEST_EFFORT,
               durability=QosDurability.VOLATILE, deadline=infinite, lifespan=infinite,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=infinite,
               avoid_ros_namespace_conventions=False)


@dataclass
class _Topic:
    msgtype: str
    qos: QoSProfile
    count: int = 0


class BagRecorder:
    """rosbag2 MCAP bags, one for the whole run or one per episode.

    Args:
        output_dir: the bag directory (``split_episodes=False``) or the directory that holds
            ``episode_0000``, ``episode_0001``, ... (``split_episodes=True``).
        split_episodes: one bag per episode (see :meth:`split`).

    Call :meth:`open`, then :meth:`add_topic` once per topic and :meth:`write` /
    :meth:`write_message` per message; :meth:`split` starts the next episode's bag;
    :meth:`close` finishes the current bag (also as a context manager).

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "bag"
        >>> with BagRecorder(out) as bag:
        ...     bag.add_topic("/x", "std_msgs/msg/Float64")
        ...     bag.write_message("/x", TYPESTORE.types["std_msgs/msg/Float64"](data=1.5), 1_700_000_000_000_000_000)
        >>> sorted(p.name for p in out.iterdir())
        ['bag.mcap', 'metadata.yaml']
    """

    def __init__(self, output_dir: str | Path, *, split_episodes: bool = False) -> None:
        self.output_dir = Path(output_dir)
        self.split_episodes = bool(split_episodes)
        self.episode = 0
        self.bags: list[Path] = []
        self._topics: dict[str, _Topic] = {}
        self._writer: Any = None
        self._connections: dict[str, Any] = {}

    @property
    def path(self) -> Path:
        """Directory of the current (or next) bag."""
        return self.output_dir / f"episode_{self.episode:04d}" if self.split_episodes else self.output_dir

    @property
    def is_open(self) -> bool:
        """True while a bag is open for writing."""
        return self._writer is not None

    def open(self) -> Path:
        """Create and open the current bag; returns its directory.

        Raises:
            ConfigError: the bag directory exists already (never overwritten), or (split mode)
                ``output_dir`` already holds episode bags.
        """
        from rosbags.rosbag2 import StoragePlugin, Writer

        if self._writer is not None:
            return self.path
        if self.split_episodes and self.episode == 0 and self.output_dir.exists() and any(self.output_dir.glob("episode_*")):
            raise ConfigError(f"{self.output_dir} already holds episode bags; choose a new output_dir (bags are never overwritten).")
        if self.path.exists():
            raise ConfigError(f"bag directory {self.path} exists already; choose a new output_dir or move it away "
                              "(bags are never overwritten).")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        self._writer, self._connections = writer, {}
        self.bags.append(self.path)
        for topic in self._topics:
            self._connect(topic)
        return self.path

    def add_topic(self, topic: str, msgtype: str, qos: QoSProfile | None = None) -> None:
        """Register ``topic`` (fully qualified) of ROS type ``msgtype`` with its publisher's QoS.

        Raises:
            ConfigError: the type is not in the ROS 2 Jazzy typestore, or the topic was added with
                another type.
        """
        if msgtype not in TYPESTORE.fielddefs:
            raise ConfigError(f"cannot record {topic}: type {msgtype!r} is not in the ROS 2 Jazzy typestore.")
        known = self._topics.get(topic)
        if known is not None:
            if known.msgtype != msgtype:
                raise ConfigError(f"topic {topic} is recorded as {known.msgtype}, cannot add it again as {msgtype}.")
            return
        self._topics[topic] = _Topic(msgtype, qos or QoSProfile())
        if self._writer is not None:
            self._connect(topic)

    def _connect(self, topic: str) -> None:
        info = self._topics[topic]
        self._connections[topic] = self._writer.add_connection(
            topic, info.msgtype, typestore=TYPESTORE, serialization_format="cdr",
            offered_qos_profiles=[_rosbags_qos(info.qos)])

    def write(self, topic: str, data: bytes | memoryview, log_time_ns: int) -> None:
        """Write one CDR payload (with its 4-byte encapsulation header) of an added topic.

        Args:
            topic: a topic registered with :meth:`add_topic`.
            data: the serialised message, as ``TYPESTORE.serialize_cdr`` returns it.
            log_time_ns: receive time, ns since the Unix epoch.

        Raises:
            ConfigError: no bag is open, or the topic was not added.
        """
        if self._writer is None:
            raise ConfigError("BagRecorder.write() without an open bag; call open() first.")
        try:
            conn = self._connections[topic]
        except KeyError:
            raise ConfigError(f"topic {topic} was not added to the recorder; call add_topic() first.") from None
        self._writer.write(conn, int(log_time_ns), data)
        self._topics[topic].count += 1

    def write_message(self, topic: str, message: Any, log_time_ns: int) -> None:
        """Serialise a rosbags ``message`` (CDR, little endian) and :meth:`write` it."""
        self.write(topic, TYPESTORE.serialize_cdr(message, self._topics[topic].msgtype), log_time_ns)

    def split(self) -> Path:
        """Close the current episode's bag and open the next one; returns the new bag's directory.

        Raises:
            ConfigError: not in ``split_episodes`` mode, or the next bag directory exists.
        """
        if not self.split_episodes:
            raise ConfigError("split() needs BagRecorder(split_episodes=True).")
        self.close()
        self.episode += 1
        return self.open()

    def close(self) -> None:
        """Finish the current bag (MCAP summary and metadata.yaml). Idempotent."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def __enter__(self) -> BagRecorder:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecorderNode(LifecycleNode):
    """Lifecycle node that records ROS 2 topics to rosbag2 MCAP (see the module docstring).

    ``configure`` opens the first bag (fails if it exists), ``activate`` starts discovery and
    recording, ``deactivate`` stops it, ``cleanup`` / ``shutdown`` close the bag.

    Parameters: ``output_dir``, ``topics``, ``all_topics``, ``exclude_topics``, ``split_episodes``,
    ``split_on``, ``discovery_period_s``, ``queue_depth``; see :meth:`describe_parameters`.

    Raises:
        ConfigError: no ``output_dir``, neither ``topics`` nor ``all_topics``, or a non-DDS backend.
    """

    def __init__(self, argv: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__("recorder", argv=argv, **kwargs)
        self.output_dir = self.declare_parameter(
            "output_dir", "", "bag directory (or, with split_episodes, the directory of the episode bags); "
            "'{time}' in it becomes the start time, YYYYmmdd-HHMMSS, so a config can be reused")
        self.output_dir = self.output_dir.replace("{time}", time.strftime("%Y%m%d-%H%M%S"))
        self.topics = [str(t) for t in self.declare_parameter(
            "topics", [], "topics to record (fully qualified names); ignored with all_topics") if str(t)]
        self.all_topics = self.declare_parameter("all_topics", False, "record every ROS topic on the graph, also ones that appear later")
        self.exclude_topics = {str(t) for t in self.declare_parameter(
            "exclude_topics", [], "topics never recorded (with all_topics)") if str(t)}
        self.split_episodes = self.declare_parameter("split_episodes", False, "one bag per episode, split at each message on split_on")
        self.split_on = self.declare_parameter("split_on", RESET_DONE, "topic whose messages end an episode (with split_episodes)")
        self.discovery_period_s = self.declare_parameter("discovery_period_s", 0.5, "how often the graph is checked for new topics", units="s")
        self.queue_depth = self.declare_parameter("queue_depth", 100, "KEEP_LAST depth of each recording subscription", units="messages")
        if not self.output_dir:
            raise ConfigError("recorder needs an output directory: -p output_dir:=bags/run1")
        if not self.topics and not self.all_topics:
            raise ConfigError("recorder has nothing to record: give -p 'topics:=[/joint_states, /camera/front/color/image_raw]' or -p all_topics:=true")
        if self.backend != "dds":
            raise ConfigError("the recorder discovers topics through Cyclone DDS; run it with -p ros_backend:=dds "
                              "(in a ROS 2 install `ros2 bag record -s mcap` does the same).")
        if not self.discovery_period_s > 0 or self.queue_depth < 1:
            raise ConfigError(f"discovery_period_s ({self.discovery_period_s} s) and queue_depth ({self.queue_depth}) must be positive.")
        self.topics = [self.resolve_topic_name(t) for t in self.topics]
        self.split_on = self.resolve_topic_name(self.split_on)
        self.bag: BagRecorder | None = None
        self._subscribed: dict[str, str] = {}  # topic -> ROS type
        self._skipped: set[str] = set()
        self._discovery: Any = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def on_configure(self) -> None:
        """Open the first bag.

        Raises:
            ConfigError: the bag directory exists.
        """
        self.bag = BagRecorder(self.output_dir, split_episodes=self.split_episodes)
        path = self.bag.open()
        self.get_logger().info(f"recording to {path} (MCAP)")

    def on_activate(self) -> None:
        """Start graph discovery; subscriptions follow as publishers appear."""
        from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication

        if self._discovery is None:
            self._discovery = BuiltinDataReader(self._backend.p.dp, BuiltinTopicDcpsPublication)
        self.discover()
        self.start_work_timer(self.discovery_period_s, self.discover)

    def on_deactivate(self) -> None:
        """Stop discovering and recording (subscriptions are removed)."""
        self.stop_work_timer()
        for sub in list(self._subscriptions_snapshot()):
            if sub.topic in self._subscribed:
                sub.destroy()
        self._subscribed.clear()

    def on_cleanup(self) -> None:
        """Close the bag."""
        self._close_bag()

    def on_shutdown(self) -> None:
        """Close the bag (run on SIGINT / SIGTERM by :func:`run_node`)."""
        self._close_bag()

    def _close_bag(self) -> None:
        missing = [t for t in self.topics if t not in self._subscribed]
        if missing and self.bag is not None and self.bag.is_open:
            self.get_logger().warning(f"no publisher of {missing} was ever seen; nothing recorded for them")
        if self.bag is not None and self.bag.is_open:
            self.bag.close()
            self.get_logger().info(f"closed {self.bag.path}: " + ", ".join(
                f"{t} {info.count}" for t, info in self.bag._topics.items()))

    # -- discovery and recording ---------------------------------------------------------------------

    def discover(self) -> None:
        """Subscribe every newly published topic that is to be recorded (from ``DCPSPublication``)."""
        from robot_rl.ros.qos import TOPIC_PREFIX

        if self._discovery is None:
            return
        for sample in self._discovery.take(N=1000):
            info = getattr(sample, "sample_info", None)
            if info is not None and not info.valid_data:
                continue
            name = getattr(sample, "topic_name", "")
            if not name.startswith(TOPIC_PREFIX + "/"):
                continue
            topic = name[len(TOPIC_PREFIX):]
            if topic in self._subscribed or topic in self._skipped:
                continue
            wanted = self.all_topics and topic not in self.exclude_topics or topic in self.topics
            if not wanted and not (self.split_episodes and topic == self.split_on):
                continue
            msgtype = ros_type_from_dds(getattr(sample, "type_name", ""))
            if msgtype is None or msgtype not in TYPESTORE.fielddefs:
                self._skipped.add(topic)
                self.get_logger().warning(f"not recording {topic}: type {sample.type_name!r} is not a ROS 2 Jazzy message type")
                continue
            reliable = msgtype not in BEST_EFFORT_TYPES and _is_reliable(sample.qos)
            self._subscribe(topic, msgtype, QoSProfile(self.queue_depth, reliable), record=wanted,
                            offered=QoSProfile(_history_depth(sample.qos), _is_reliable(sample.qos)))

    def _subscribe(self, topic: str, msgtype: str, qos: QoSProfile, record: bool, offered: QoSProfile) -> None:
        if record:
            self.bag.add_topic(topic, msgtype, offered)
        split = self.split_episodes and topic == self.split_on
        last_split: list[bytes] = []

        def callback(msg: Any) -> None:
            t_ns = time.time_ns()
            if self.bag is None or not self.bag.is_open:
                return
            if record:
                self.bag.write_message(topic, msg, t_ns)
            if split:
                payload = bytes(TYPESTORE.serialize_cdr(msg, msgtype))
                if last_split and last_split[0] == payload:
                    return  # a repeated answer to the same reset: same episode
                last_split[:] = [payload]
                path = self.bag.split()
                self.get_logger().info(f"episode end on {topic}: recording to {path}")

        self.create_subscription(msgtype, topic, callback, qos)
        self._subscribed[topic] = msgtype
        self.get_logger().info(f"{'recording' if record else 'splitting episodes on'} {topic} ({msgtype}, "
                               f"{'RELIABLE' if qos.reliable else 'BEST_EFFORT'})")


def _is_reliable(qos: Any) -> bool:
    """True if a discovered writer's QoS is RELIABLE."""
    from cyclonedds.core import Policy

    try:
        return isinstance(qos[Policy.Reliability], Policy.Reliability.Reliable)
    except (KeyError, TypeError):
        return True


def _history_depth(qos: Any) -> int:
    """KEEP_LAST depth of a discovered writer (10 when unknown or KEEP_ALL)."""
    from cyclonedds.core import Policy

    try:
        return max(1, int(qos[Policy.History].depth))
    except (KeyError, TypeError, AttributeError):
        return 10


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``robot_rl_recorder``: record until Ctrl-C / SIGTERM, then close the bag.

    Returns 0 after a clean shutdown, 1 on a configuration error (for example an existing bag).
    """
    return run_node(lambda args: RecorderNode(args), argv)


if __name__ == "__main__":
    sys.exit(main())
