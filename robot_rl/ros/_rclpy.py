"""rclpy backend of :class:`robot_rl.ros.node.Node`, used when a ROS 2 install is sourced.

Messages stay rosbags dataclasses in robot_rl code: they are serialized with rosbags' CDR
serializer and published as serialized messages (rclpy ``Publisher.publish(bytes)``), and
subscriptions receive raw CDR (``raw=True``) that rosbags deserializes, so no generated Python
message package (``sensor_msgs.msg``) is needed beyond what rclpy itself loads for the type
support. The executor is robot_rl's (timers and callbacks on the spinning thread); rclpy's
``spin_once`` delivers the messages.

This backend cannot be exercised on the CI machine (rclpy is not on PyPI); the DDS backend is
what the tests run.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from robot_rl.errors import ConfigError
from robot_rl.ros.messages import TYPESTORE

_INIT_LOCK = threading.Lock()


def _msg_class(typename: str) -> Any:
    package, kind, name = typename.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"ROS 2 message type {typename} is not installed in this ROS 2 environment ({e}).") from None


def _rclpy_qos(profile: Any) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=profile.depth,
        reliability=ReliabilityPolicy.RELIABLE if profile.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if getattr(profile, "transient_local", False) else DurabilityPolicy.VOLATILE,
    )


class _Pub:
    def __init__(self, backend: RclpyBackend, typename: str, topic: str, profile: Any) -> None:
        self.backend, self.typename = backend, typename
        self.pub = backend.node.create_publisher(_msg_class(typename), topic, _rclpy_qos(profile))

    def publish(self, message: Any) -> None:
        self.pub.publish(bytes(TYPESTORE.serialize_cdr(message, self.typename)))

    def subscription_count(self) -> int:
        return self.pub.get_subscription_count()

    def destroy(self) -> None:
        self.backend.node.destroy_publisher(self.pub)


class _Sub:
    def __init__(self, backend: RclpyBackend, typename: str, topic: str, profile: Any, subscription: Any) -> None:
        self.backend = backend
        self.sub = backend.node.create_subscription(
            _msg_class(typename), topic,
            lambda raw: subscription.callback(TYPESTORE.deserialize_cdr(raw, typename)),
            _rclpy_qos(profile), raw=True,
        )

    def publisher_count(self) -> int:
        return self.sub.get_publisher_count() if hasattr(self.sub, "get_publisher_count") else len(
            self.backend.node.get_publishers_info_by_topic(self.sub.topic_name))

    def destroy(self) -> None:
        self.backend.node.destroy_subscription(self.sub)


class RclpyBackend:
    """One rclpy node; robot_rl's executor calls :meth:`wait_and_dispatch`."""

    def __init__(self, node: Any, argv: list[str]) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        with _INIT_LOCK:
            if not rclpy.ok():
                rclpy.init(args=["robot_rl", *argv])
        ns = node.namespace or None
        self.node = rclpy.create_node(node.name, namespace=ns, automatically_declare_parameters_from_overrides=False)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._guard = self.node.create_guard_condition(lambda: None)

    def create_publisher(self, typename: str, topic: str, profile: Any) -> _Pub:
        return _Pub(self, typename, topic, profile)

    def create_subscription(self, typename: str, topic: str, profile: Any, subscription: Any) -> _Sub:
        return _Sub(self, typename, topic, profile, subscription)

    def wake(self) -> None:
        try:
            self._guard.trigger()
        except Exception:  # noqa: BLE001
            pass

    def wait_and_dispatch(self, timeout_s: float) -> None:
        self.executor.spin_once(timeout_sec=timeout_s)
        # deliver what else is already queued, without waiting (bounded so timers stay on time)
        for _ in range(16):
            self.executor.spin_once(timeout_sec=0.0)

    def destroy(self) -> None:
        try:
            self.executor.remove_node(self.node)
            self.node.destroy_node()
        except Exception:  # noqa: BLE001
            pass
