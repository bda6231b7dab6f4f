"""The rclpy side of :class:`robot_rl.ros.node.Node`: one rclpy Context, node and executor per robot_rl node.

rclpy (ROS 2 Jazzy from the PyPI wheels, ``pip install -e .[ros]``, or a sourced ROS 2 install)
is robot_rl's only ROS 2 backend. This module keeps everything that touches rclpy in one place:

* :func:`import_rclpy`: a clear error when rclpy is missing;
* :class:`RclpyNode`: a ``rclpy.Context`` of its own (``rclpy.init(context=..., domain_id=...)``,
  so a ``domain_id`` given to a node is honoured and ``ROS_DOMAIN_ID``,
  ``ROS_AUTOMATIC_DISCOVERY_RANGE`` and ``ROS_STATIC_PEERS`` are read by rcl as in any ROS 2
  process), an ``rclpy.node.Node`` or ``rclpy.lifecycle.LifecycleNode`` in it (parameter
  services, ``/rosout``, lifecycle services and ``~/transition_event`` come from rclpy), a
  ``SingleThreadedExecutor`` and a guard condition to wake it;
* raw publish/subscribe: robot_rl messages are rosbags dataclasses; they travel as CDR bytes
  (``Publisher.publish(bytes)``, ``create_subscription(..., raw=True)``), and the generated
  message class is loaded only for rclpy's type support.

Every context is shut down when its node shuts down, and at interpreter exit for nodes nobody shut
down (several contexts left alive at exit abort the process with ``terminate called without an
active exception``).
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from robot_rl.errors import ConfigError
from robot_rl.ros.distro import ROS_DISTRO

#: The environment variable that selected the retired Cyclone DDS backend.

_LIVE: weakref.WeakSet = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def import_rclpy() -> Any:
    """The ``rclpy`` module.

    Raises:
        ConfigError: rclpy (or its Fast DDS middleware) is not installed; says what to install.
    """
    try:
        import rclpy
        import rclpy.lifecycle  # noqa: F401
    except (ImportError, OSError) as e:
        raise ConfigError(
            f"robot_rl's ROS 2 nodes need rclpy, which cannot be imported ({e}). Install ROS 2 {ROS_DISTRO}'s Python "
            f"wheels with `pip install -e .[ros]` (Python 3.11, Linux x86_64), or source a ROS 2 {ROS_DISTRO} install "
            f"(source /opt/ros/{ROS_DISTRO}/setup.bash).") from None
    return rclpy


def _shutdown_all() -> None:
    with _LIVE_LOCK:
        nodes = list(_LIVE)
    for node in nodes:
        try:
            node.shutdown()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


atexit.register(_shutdown_all)


def register_live(node: Any) -> None:
    """Remember ``node`` (a robot_rl Node) so it is shut down at interpreter exit if nobody else does."""
    with _LIVE_LOCK:
        _LIVE.add(node)


def _lifecycle_class() -> type:
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    class _ManagedNode(LifecycleNode):
        """rclpy lifecycle node whose transition callbacks run the robot_rl node's ``on_<transition>``."""

        def __init__(self, owner: Any, *args: Any, **kwargs: Any) -> None:
            self._owner = weakref.ref(owner)
            super().__init__(*args, **kwargs)

        def _run(self, transition: str, previous: Any) -> Any:
            owner = self._owner()
            if owner is None:
                return TransitionCallbackReturn.SUCCESS
            ok = owner._run_transition(transition, previous.label)
            return TransitionCallbackReturn.SUCCESS if ok else TransitionCallbackReturn.FAILURE

        def on_configure(self, state: Any) -> Any:
            return self._run("configure", state)

        def on_activate(self, state: Any) -> Any:
            return self._run("activate", state)

        def on_deactivate(self, state: Any) -> Any:
            return self._run("deactivate", state)

        def on_cleanup(self, state: Any) -> Any:
            return self._run("cleanup", state)

        def on_shutdown(self, state: Any) -> Any:
            return self._run("shutdown", state)

    return _ManagedNode


class RclpyNode:
    """A context, an rclpy node (lifecycle or plain) and an executor for one robot_rl node.

    Args:
        owner: the robot_rl node (its ``_run_transition`` runs lifecycle callbacks).
        name: node name; namespace: ``""`` or ``/ns``.
        lifecycle: create an ``rclpy.lifecycle.LifecycleNode`` (standard lifecycle services).
        domain_id: ROS domain ID; None: rcl reads ``ROS_DOMAIN_ID`` (default 0).

    Raises:
        ConfigError: rclpy missing, or rcl refused the name, namespace or domain.
    """

    def __init__(self, owner: Any, name: str, namespace: str, *, lifecycle: bool, domain_id: int | None) -> None:
        rclpy = import_rclpy()
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node as RclpyNodeClass
        from rclpy.signals import SignalHandlerOptions

        self.context = Context()
        try:
            rclpy.init(args=["robot_rl"], context=self.context, domain_id=domain_id,
                       signal_handler_options=SignalHandlerOptions.NO)
        except Exception as e:  # noqa: BLE001 - rcl errors have several types
            raise ConfigError(f"cannot initialise ROS 2 for node {name!r} (domain {domain_id}): {e}") from None
        kwargs = {"context": self.context, "namespace": namespace or None, "use_global_arguments": False,
                  "start_parameter_services": True, "enable_rosout": True,
                  "automatically_declare_parameters_from_overrides": False}
        try:
            self.node = _lifecycle_class()(owner, name, **kwargs) if lifecycle else RclpyNodeClass(name, **kwargs)
        except Exception as e:  # noqa: BLE001 - invalid names raise rclpy-specific exceptions
            self.context.try_shutdown()
            raise ConfigError(f"cannot create ROS 2 node {name!r} in namespace {namespace or '/'!r}: {e}") from None
        self.domain_id = self.context.get_domain_id()
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._guard = self.node.create_guard_condition(lambda: None)
        self._destroyed = False

    def create_publisher(self, msg_class: type, topic: str, qos: Any) -> Any:
        """An rclpy publisher (publish CDR bytes to it)."""
        return self.node.create_publisher(msg_class, topic, qos)

    def create_subscription(self, msg_class: type, topic: str, callback: Callable[[bytes], None], qos: Any) -> Any:
        """An rclpy subscription delivering raw CDR bytes to ``callback``."""
        return self.node.create_subscription(msg_class, topic, callback, qos, raw=True)

    def wake(self) -> None:
        """Make a waiting :meth:`spin_once` return."""
        try:
            self._guard.trigger()
        except Exception:  # noqa: BLE001 - already destroyed
            pass

    def spin_once(self, timeout_s: float) -> None:
        """Run at most one ready callback (timer, subscription, service), waiting up to ``timeout_s`` seconds."""
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin_once(timeout_sec=timeout_s)
        except ExternalShutdownException:
            pass

    def destroy(self) -> None:
        """Destroy the node and the executor and shut the context down. Idempotent."""
        if self._destroyed:
            return
        self._destroyed = True
        for step in (lambda: self.executor.remove_node(self.node), self.node.destroy_node,
                     lambda: self.executor.shutdown(timeout_sec=1.0), self.context.try_shutdown):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - keep tearing down the rest
                logging.getLogger("robot_rl.ros").debug(f"teardown step failed: {e}")
