"""Cyclone DDS backend of :class:`robot_rl.ros.node.Node`: the ROS 2 wire format without a ROS install.

What it does so that ROS 2 nodes (rmw_cyclonedds or rmw_fastrtps) on the same network see our
topics and we see theirs (facts from rmw_cyclonedds, rmw_dds_common):

- topics ``rt/<name>``, types ``<pkg>::msg::dds_::<Type>_`` with XCDR1 payloads byte-identical to
  rosbags' serializer (:mod:`robot_rl.ros.messages`), QoS set explicitly, RIHS01 type hash in
  USER_DATA (:mod:`robot_rl.ros.qos`);
- one DomainParticipant per process and domain, shared by all nodes of the process, as rclpy's
  context does; each node announces itself and its readers and writers on
  ``ros_discovery_info`` (``rmw_dds_common/ParticipantEntitiesInfo``, RELIABLE, TRANSIENT_LOCAL,
  depth 1) so ``ros2 node list`` shows it;
- discovery stays on this host unless ``ROS_AUTOMATIC_DISCOVERY_RANGE`` is ``SUBNET`` or
  ``SYSTEM_DEFAULT`` or ``CYCLONEDDS_URI`` is already set (see
  :func:`robot_rl.ros.qos.localhost_config_xml`).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from cyclonedds.core import GuardCondition, Policy, Qos, ReadCondition, SampleState, ViewState, InstanceState, WaitSet
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from robot_rl.ros import qos as qos_mod
from robot_rl.ros.messages import TYPESTORE, from_dds, get_message_class, to_dds

_PARTICIPANTS: dict[int, _Participant] = {}
_PARTICIPANTS_LOCK = threading.Lock()
#: Most samples taken from one reader per wakeup (keeps one busy topic from starving timers).
_TAKE_MAX = 64


def _configure_discovery() -> None:
    if os.environ.get("CYCLONEDDS_URI"):
        return
    if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST").upper() in ("SUBNET", "SYSTEM_DEFAULT"):
        return
    os.environ["CYCLONEDDS_URI"] = qos_mod.localhost_config_xml()


class _Participant:
    """The process' participant on one domain, its topics and the ``ros_discovery_info`` writer."""

    def __init__(self, domain_id: int) -> None:
        _configure_discovery()
        self.dp = DomainParticipant(domain_id)
        self.topics: dict[str, Topic] = {}
        self.lock = threading.Lock()
        self.nodes: dict[int, tuple[str, str, list, list]] = {}
        self._info_writer: DataWriter | None = None
        try:
            typename = "rmw_dds_common/msg/ParticipantEntitiesInfo"
            topic = Topic(self.dp, "ros_discovery_info", get_message_class(typename))
            info_qos = Qos(
                Policy.Reliability.Reliable(duration(milliseconds=100)), Policy.History.KeepLast(1),
                Policy.Durability.TransientLocal, Policy.Userdata(qos_mod.type_hash_user_data(typename)),
            )
            self._info_writer = DataWriter(self.dp, topic, info_qos)
        except Exception:  # noqa: BLE001 - graph introspection is a courtesy, never fatal
            self._info_writer = None

    def topic(self, name: str, typename: str) -> Topic:
        with self.lock:
            topic = self.topics.get(name)
            if topic is None:
                topic = Topic(self.dp, name, get_message_class(typename))
                self.topics[name] = topic
            elif topic.data_type is not get_message_class(typename):
                from robot_rl.errors import ConfigError

                raise ConfigError(f"topic {name} is already used with another type in this process; one topic has one type.")
            return topic

    def announce(self) -> None:
        """Publish ``ros_discovery_info`` with every node of this process and its entities."""
        if self._info_writer is None:
            return
        T = TYPESTORE.types
        gid = lambda g: T["rmw_dds_common/msg/Gid"](data=__import__("numpy").frombuffer(g.bytes, dtype="uint8").copy())  # noqa: E731
        with self.lock:
            nodes = [
                T["rmw_dds_common/msg/NodeEntitiesInfo"](
                    node_namespace=ns or "/", node_name=name,
                    reader_gid_seq=[gid(r.guid) for r in readers], writer_gid_seq=[gid(w.guid) for w in writers],
                )
                for ns, name, readers, writers in self.nodes.values()
            ]
        msg = T["rmw_dds_common/msg/ParticipantEntitiesInfo"](gid=gid(self.dp.guid), node_entities_info_seq=nodes)
        try:
            self._info_writer.write(to_dds(msg))
        except Exception:  # noqa: BLE001
            pass


def participant(domain_id: int) -> _Participant:
    """The shared participant of this process on ``domain_id`` (created on first use)."""
    with _PARTICIPANTS_LOCK:
        p = _PARTICIPANTS.get(domain_id)
        if p is None:
            p = _Participant(domain_id)
            _PARTICIPANTS[domain_id] = p
        return p


def _dds_qos(profile: Any, typename: str) -> Qos:
    reliability = Policy.Reliability.Reliable(duration(milliseconds=qos_mod.MAX_BLOCKING_TIME_MS)) if profile.reliable else Policy.Reliability.BestEffort
    qos = qos_mod._qos(reliability, profile.depth, typename)
    if getattr(profile, "transient_local", False):
        qos += Qos(Policy.Durability.TransientLocal)
    return qos


def _delete(entity: Any) -> None:
    """Delete a DDS entity now (unmatching it everywhere) instead of when Python collects it."""
    try:
        entity.__del__()
    except Exception:  # noqa: BLE001 - already deleted
        pass


class _Writer:
    def __init__(self, backend: DdsBackend, typename: str, topic: str, profile: Any) -> None:
        self.backend, self.typename = backend, typename
        self.writer = DataWriter(backend.p.dp, backend.p.topic(qos_mod.ros_topic_to_dds(topic), typename), _dds_qos(profile, typename))
        backend.writers.append(self.writer)
        backend.p.announce()

    def publish(self, message: Any) -> None:
        self.writer.write(to_dds(message, self.typename))

    def subscription_count(self) -> int:
        return len(self.writer.get_matched_subscriptions())

    def destroy(self) -> None:
        if self.writer in self.backend.writers:
            self.backend.writers.remove(self.writer)
            self.backend.p.announce()
        _delete(self.writer)


class _Reader:
    def __init__(self, backend: DdsBackend, typename: str, topic: str, profile: Any, subscription: Any) -> None:
        self.backend, self.typename, self.subscription = backend, typename, subscription
        self.reader = DataReader(backend.p.dp, backend.p.topic(qos_mod.ros_topic_to_dds(topic), typename), _dds_qos(profile, typename))
        self.condition = ReadCondition(self.reader, SampleState.NotRead | ViewState.Any | InstanceState.Any)
        backend.attach(self)
        backend.readers.append(self.reader)
        backend.p.announce()

    def publisher_count(self) -> int:
        return len(self.reader.get_matched_publications())

    def take(self) -> list[Any]:
        samples = self.reader.take(N=_TAKE_MAX)
        return [from_dds(s, self.typename) for s in samples if getattr(getattr(s, "sample_info", None), "valid_data", True)]

    def destroy(self) -> None:
        self.backend.detach(self)
        _delete(self.condition)
        _delete(self.reader)


class DdsBackend:
    """One node's entities on the shared participant, and its wait set."""

    def __init__(self, node: Any, domain_id: int) -> None:
        self.node = node
        self.p = participant(domain_id)
        self.readers: list[DataReader] = []
        self.writers: list[DataWriter] = []
        self._reader_objs: list[_Reader] = []
        self._lock = threading.Lock()
        self.waitset = WaitSet(self.p.dp)
        self.guard = GuardCondition(self.p.dp)
        self.waitset.attach(self.guard)
        with self.p.lock:
            self.p.nodes[id(self)] = (node.namespace, node.name, self.readers, self.writers)

    def create_publisher(self, typename: str, topic: str, profile: Any) -> _Writer:
        return _Writer(self, typename, topic, profile)

    def create_subscription(self, typename: str, topic: str, profile: Any, subscription: Any) -> _Reader:
        return _Reader(self, typename, topic, profile, subscription)

    def attach(self, reader: _Reader) -> None:
        with self._lock:
            self.waitset.attach(reader.condition)
            self._reader_objs.append(reader)
        self.wake()

    def detach(self, reader: _Reader) -> None:
        with self._lock:
            if reader in self._reader_objs:
                self._reader_objs.remove(reader)
                self.waitset.detach(reader.condition)
                if reader.reader in self.readers:
                    self.readers.remove(reader.reader)
        self.p.announce()

    def wake(self) -> None:
        """Interrupt a blocked :meth:`wait_and_dispatch` (new timer, shutdown)."""
        try:
            self.guard.set(True)
        except Exception:  # noqa: BLE001 - already deleted at shutdown
            pass

    def wait_and_dispatch(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for data, then run the callbacks of every reader with samples."""
        if timeout_s > 0:
            self.waitset.wait(duration(seconds=timeout_s))
        self.guard.set(False)
        with self._lock:
            readers = list(self._reader_objs)
        for reader in readers:
            for message in reader.take():
                reader.subscription.callback(message)

    def destroy(self) -> None:
        with self._lock:
            for reader in self._reader_objs:
                try:
                    self.waitset.detach(reader.condition)
                except Exception:  # noqa: BLE001
                    pass
            self._reader_objs.clear()
        with self.p.lock:
            self.p.nodes.pop(id(self), None)
        for entity in [*self.readers, *self.writers]:
            _delete(entity)
        self.readers.clear()
        self.writers.clear()
        self.p.announce()
