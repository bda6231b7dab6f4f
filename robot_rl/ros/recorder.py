"""Record ROS 2 topics to rosbag2 MCAP bags (``ros2 bag info`` / ``ros2 bag play`` read them).

:class:`BagRecorder` is the storage half (rosbags' :class:`~rosbags.rosbag2.Writer` with the MCAP
storage plugin, one connection per topic, per-episode split); :class:`RecorderNode` is the ROS
half: it finds the topics and their types on the ROS 2 graph, subscribes and writes every message
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

Topics, types and the publishers' QoS come from the ROS 2 graph (rclpy's
``get_topic_names_and_types`` / ``get_publishers_info_by_topic``, as ``ros2 bag record`` finds
them). With ``all_topics`` every published topic is recorded (re-checked every
``discovery_period_s``, so topics that appear later are picked up); otherwise only the names in
``topics``, as soon as a publisher of them appears. As with ``ros2 bag record``, messages sent
before the recorder matched a publisher are not recorded. Image topics (``sensor_msgs/Image``,
``CompressedImage``) and topics with a BEST_EFFORT publisher are read BEST_EFFORT (which matches
both kinds of publisher); all others RELIABLE, so a slow disk does not drop them; TRANSIENT_LOCAL
when every publisher is (``/tf_static``).

Nothing is dropped silently: a topic whose type cannot be loaded (its message package is not
installed in this environment, e.g. ``tf2_msgs`` from a PyPI-only install, or the type is not in
the ROS 2 Jazzy typestore that serialises the bag) or that is published with two types is not
recorded, and the recorder logs a warning naming the topic, the type and the reason when it is
discovered, and again in the summary when each bag closes (:attr:`RecorderNode.skipped`).

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

In a full ROS 2 install ``ros2 bag record -s mcap`` does the same job; this node exists for
installs without rosbag2 (it is not on PyPI) and for ``robot-rl bringup``'s per-episode bags.
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
from robot_rl.ros.node import LifecycleNode, Node, QoSProfile, run_node

#: ROS types read BEST_EFFORT (camera streams, as realsense2_camera / image_transport publish them).
BEST_EFFORT_TYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/PointCloud2"})

_INFINITE_NS = 9223372036854775807  # rmw's "infinite" duration, as rosbag2 writes it in metadata.yaml


def _qos_time(ns: int) -> Any:
    from rosbags.interfaces import QosTime

    ns = min(max(int(ns), 0), _INFINITE_NS)
    return QosTime(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)


def _rosbags_qos(profile: QoSProfile) -> Any:
    """The rosbag2 metadata form of one of robot_rl's QoS profiles (KEEP_LAST, infinite times)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability

    infinite = _qos_time(_INFINITE_NS)
    return Qos(history=QosHistory.KEEP_LAST, depth=profile.depth,
               reliability=QosReliability.RELIABLE if profile.reliable else QosReliability.BEST_EFFORT,
               durability=QosDurability.TRANSIENT_LOCAL if profile.transient_local else QosDurability.VOLATILE,
               deadline=infinite, lifespan=infinite, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=infinite, avoid_ros_namespace_conventions=False)


def offered_qos(endpoint_qos: Any) -> Any:
    """The rosbag2 metadata form (``rosbags.interfaces.Qos``) of a discovered publisher's QoS.

    Args:
        endpoint_qos: an ``rclpy.qos.QoSProfile`` as ``get_publishers_info_by_topic`` reports it
            (history and depth are usually ``UNKNOWN`` / 0: DDS discovery does not carry them;
            ``ros2 bag record`` writes them so too).

    Returns:
        ``rosbags.interfaces.Qos`` with the same enum values (rmw's numbering) and durations.
    """
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability

    def duration(d: Any) -> Any:
        return _qos_time(getattr(d, "nanoseconds", _INFINITE_NS) or _INFINITE_NS)

    return Qos(history=QosHistory(int(endpoint_qos.history)), depth=int(endpoint_qos.depth),
               reliability=QosReliability(int(endpoint_qos.reliability)),
               durability=QosDurability(int(endpoint_qos.durability)),
               deadline=duration(endpoint_qos.deadline), lifespan=duration(endpoint_qos.lifespan),
               liveliness=QosLiveliness(int(endpoint_qos.liveliness)),
               liveliness_lease_duration=duration(endpoint_qos.liveliness_lease_duration),
               avoid_ros_namespace_conventions=bool(endpoint_qos.avoid_ros_namespace_conventions))


@dataclass
class _Topic:
    msgtype: str
    offered: list[Any]  # rosbags.interfaces.Qos, one per publisher (rosbag2 metadata)
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

    def add_topic(self, topic: str, msgtype: str, qos: QoSProfile | None = None, offered: Sequence[Any] = ()) -> None:
        """Register ``topic`` (fully qualified) of ROS type ``msgtype`` with its publishers' QoS.

        Args:
            topic: fully qualified topic name.
            msgtype: ROS type, ``sensor_msgs/msg/Image``.
            qos: the publisher's QoS in robot_rl's form (default: KEEP_LAST 10 RELIABLE), used
                when ``offered`` is empty.
            offered: the discovered publishers' QoS (``rosbags.interfaces.Qos``, see
                :func:`offered_qos`), written to the bag's metadata as ``ros2 bag record`` does.

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
        self._topics[topic] = _Topic(msgtype, list(offered) or [_rosbags_qos(qos or QoSProfile())])
        if self._writer is not None:
            self._connect(topic)

    def _connect(self, topic: str) -> None:
        info = self._topics[topic]
        self._connections[topic] = self._writer.add_connection(
            topic, info.msgtype, typestore=TYPESTORE, serialization_format="cdr",
            offered_qos_profiles=info.offered)

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


def ros_graph(node: Node) -> Any:
    """The rclpy node behind a robot_rl :class:`~robot_rl.ros.node.Node`, for graph queries
    (``get_topic_names_and_types``, ``get_publishers_info_by_topic``).

    Raises:
        ConfigError: the node offers no ROS 2 graph queries.
    """
    # robot_rl's Node has no graph queries of its own; its rclpy node (robot_rl.ros._rclpy) has them
    candidate = getattr(getattr(node, "_ros", None), "node", None)
    if candidate is not None and hasattr(candidate, "get_publishers_info_by_topic"):
        return candidate
    raise ConfigError(f"node {node.fully_qualified_name} gives no access to the ROS 2 graph (rclpy); the recorder "
                      "needs it to find topics and their types.")


class RecorderNode(LifecycleNode):
    """Lifecycle node that records ROS 2 topics to rosbag2 MCAP (see the module docstring).

    ``configure`` opens the first bag (fails if it exists), ``activate`` starts discovery and
    recording, ``deactivate`` stops it, ``cleanup`` / ``shutdown`` close the bag.

    Parameters: ``output_dir``, ``topics``, ``all_topics``, ``exclude_topics``, ``split_episodes``,
    ``split_on``, ``discovery_period_s``, ``queue_depth``; see :meth:`describe_parameters`.

    Attributes:
        skipped: topic (or ``"<topic> as <type>"`` for a second type that appeared on a recorded
            topic) -> why it is not recorded (type not loadable, several types); logged when found
            and when each bag closes.

    Raises:
        ConfigError: no ``output_dir``, neither ``topics`` nor ``all_topics``, or a non-positive
            ``discovery_period_s`` / ``queue_depth``.
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
        if not self.discovery_period_s > 0 or self.queue_depth < 1:
            raise ConfigError(f"discovery_period_s ({self.discovery_period_s} s) and queue_depth ({self.queue_depth}) must be positive.")
        self.topics = [self.resolve_topic_name(t) for t in self.topics]
        self.split_on = self.resolve_topic_name(self.split_on)
        self.bag: BagRecorder | None = None
        self.skipped: dict[str, str] = {}
        self._subscribed: dict[str, str] = {}  # topic -> ROS type
        self._graph: Any = None

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
        self._graph = ros_graph(self)
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
        if self.bag is None or not self.bag.is_open:
            return
        missing = [t for t in self.topics if t not in self._subscribed and t not in self.skipped]
        if missing:
            self.get_logger().warning(f"no publisher of {missing} was ever seen; nothing recorded for them")
        for topic, reason in self.skipped.items():
            self.get_logger().warning(f"NOT recorded in {self.bag.path}: {topic} ({reason})")
        self.bag.close()
        self.get_logger().info(f"closed {self.bag.path}: " + ", ".join(
            f"{t} {info.count}" for t, info in self.bag._topics.items()))

    # -- discovery and recording ---------------------------------------------------------------------

    def discover(self) -> None:
        """Subscribe every newly published topic that is to be recorded (from the ROS 2 graph)."""
        if self._graph is None:
            return
        for topic, types in self._graph.get_topic_names_and_types():
            if topic in self._subscribed:
                for other in sorted(set(types) - {self._subscribed[topic]}):  # a later publisher of another type
                    key = f"{topic} as {other}"
                    if key not in self.skipped:
                        self._skip(key, f"{topic} is recorded as {self._subscribed[topic]}; a publisher of {other} "
                                        "appeared later and its messages cannot be recorded in the same topic")
                continue
            if topic in self.skipped:
                continue
            wanted = self.all_topics and topic not in self.exclude_topics or topic in self.topics
            if not wanted and not (self.split_episodes and topic == self.split_on):
                continue
            publishers = self._graph.get_publishers_info_by_topic(topic)
            if not publishers:
                continue  # only subscribers so far
            self.consider(topic, sorted({p.topic_type for p in publishers}), [p.qos_profile for p in publishers], record=wanted)

    def consider(self, topic: str, msgtypes: Sequence[str], publisher_qos: Sequence[Any], record: bool = True) -> bool:
        """Subscribe ``topic`` if its type can be recorded; otherwise log why and add it to :attr:`skipped`.

        Args:
            topic: fully qualified name.
            msgtypes: the ROS types its publishers use (``sensor_msgs/msg/Image``); more than one
                is an error for that topic.
            publisher_qos: each publisher's ``rclpy.qos.QoSProfile`` as discovered.
            record: write its messages (False: only split episodes on it).

        Returns:
            True if the topic is now subscribed.
        """
        if len(msgtypes) != 1:
            return self._skip(topic, f"published with several types {list(msgtypes)}; record it under one type")
        msgtype = msgtypes[0]
        if msgtype not in TYPESTORE.fielddefs:
            return self._skip(topic, f"type {msgtype} is not in the ROS 2 Jazzy typestore that serialises the bag")
        from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

        reliable = msgtype not in BEST_EFFORT_TYPES and all(q.reliability == ReliabilityPolicy.RELIABLE for q in publisher_qos)
        latched = bool(publisher_qos) and all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in publisher_qos)
        try:
            self._subscribe(topic, msgtype, QoSProfile(self.queue_depth, reliable, latched), record,
                            [offered_qos(q) for q in publisher_qos])
        except ConfigError as e:  # the message package is not installed here (e.g. tf2_msgs from PyPI)
            return self._skip(topic, f"type {msgtype} cannot be loaded: {e}")
        return True

    def _skip(self, topic: str, reason: str) -> bool:
        self.skipped[topic] = reason
        self.get_logger().warning(f"not recording {topic}: {reason}")
        return False

    def _subscribe(self, topic: str, msgtype: str, qos: QoSProfile, record: bool, offered: list[Any]) -> None:
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

        self.create_subscription(msgtype, topic, callback, qos)  # raises before the bag knows the topic
        if record:
            self.bag.add_topic(topic, msgtype, offered=offered)
        self._subscribed[topic] = msgtype
        self.get_logger().info(f"{'recording' if record else 'splitting episodes on'} {topic} ({msgtype}, "
                               f"{'RELIABLE' if qos.reliable else 'BEST_EFFORT'}{', TRANSIENT_LOCAL' if qos.transient_local else ''})")


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``robot_rl_recorder``: record until Ctrl-C / SIGTERM, then close the bag.

    Returns 0 after a clean shutdown, 1 on a configuration error (for example an existing bag).
    """
    return run_node(lambda args: RecorderNode(args), argv)


if __name__ == "__main__":
    sys.exit(main())
