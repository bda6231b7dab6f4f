"""One small ROS 2 node API with two backends: rclpy when importable, else Cyclone DDS.

Every robot_rl node (camera, arm, teleop, sim, recorder) is written against :class:`Node` and
:class:`LifecycleNode` here, never against rclpy or cyclonedds directly, so the same node runs in
a ROS 2 install (``ros2 run robot_rl robot_rl_camera_node``) and on a machine with only PyPI
packages. Messages are always rosbags dataclasses (``TYPESTORE.types["sensor_msgs/msg/Image"]``,
numeric arrays as numpy); each backend converts to its own wire objects.

Backend choice (first that applies):
    1. the ``backend`` argument, or the ``ros_backend`` parameter (``-p ros_backend:=dds``);
    2. the environment variable ``ROBOT_RL_ROS_BACKEND`` (``rclpy``, ``dds`` or ``auto``);
    3. ``auto``: rclpy if ``import rclpy`` works, else ``dds``.

What the node gives (names as in rclpy):
    * publishers and subscriptions with explicit QoS (``"default"``: KEEP_LAST 10 RELIABLE,
      ``"sensor"``: KEEP_LAST 5 BEST_EFFORT, ``"static"``: KEEP_LAST 1 RELIABLE TRANSIENT_LOCAL,
      or a :class:`QoSProfile`);
    * timers (period in seconds), run by :meth:`Node.spin` on one thread with the callbacks, so
      callbacks never run concurrently (rclpy's SingleThreadedExecutor semantics);
    * declared parameters with a description and units, set from ``-p name:=value``,
      ``--params-file file.yaml`` (the ROS 2 parameter file format) or ``parameter_overrides``;
      reading an undeclared parameter is an error;
    * a :mod:`logging` logger named after the node that, on the DDS backend, also publishes
      ``rcl_interfaces/Log`` to ``/rosout`` so ``ros2 topic echo /rosout`` shows it;
    * lifecycle states (``unconfigured -> inactive -> active -> finalized``, REP 2002 / the
      ``lifecycle_msgs`` state machine) with ``on_configure`` ... callbacks and
      ``~/transition_event`` published on every transition. Transitions are driven by
      ``autostart`` (default true: configure then activate on start, like nav2's lifecycle
      manager) or by :meth:`LifecycleNode.trigger`. The ``~/change_state`` service is not served
      (services need rmw_cyclonedds on the other side; the design uses topics), so the
      ``~/change_state_request`` topic (``std_msgs/String``: ``configure``, ``activate``,
      ``deactivate``, ``cleanup``, ``shutdown``) triggers transitions instead.

Command-line arguments follow ``ros2 run``: ``--ros-args -p name:=value --params-file f.yaml
-r __node:=name -r __ns:=/namespace -r /from:=/to``.

Example:
    >>> from robot_rl.ros.node import Node
    >>> node = Node("talker", backend="dds")                       # doctest: +SKIP
    >>> rate = node.declare_parameter("rate_hz", 10.0, "publish rate", units="Hz")  # doctest: +SKIP
    >>> pub = node.create_publisher("std_msgs/msg/String", "chatter")  # doctest: +SKIP
    >>> node.create_timer(1.0 / rate, lambda: pub.publish(node.msg("std_msgs/msg/String", data="hi")))  # doctest: +SKIP
    >>> node.spin()                                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from robot_rl.errors import ConfigError
from robot_rl.ros.messages import TYPESTORE

#: Environment variable that selects the backend: ``rclpy``, ``dds`` or ``auto``.
BACKEND_ENV = "ROBOT_RL_ROS_BACKEND"
BACKENDS = ("auto", "rclpy", "dds")


@dataclass(frozen=True)
class QoSProfile:
    """History depth and reliability of a publisher or subscription (durability is VOLATILE).

    Attributes:
        depth: KEEP_LAST history depth, messages.
        reliable: RELIABLE if True, else BEST_EFFORT. A BEST_EFFORT publisher does not match a
            RELIABLE subscription.
        transient_local: TRANSIENT_LOCAL durability (late subscribers get the last ``depth``
            messages, as ``/tf_static`` needs) instead of VOLATILE.
    """

    depth: int = 10
    reliable: bool = True
    transient_local: bool = False

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ConfigError(f"QoS history depth must be at least 1 message, got {self.depth}.")


#: ``rmw_qos_profile_default``, ``rmw_qos_profile_sensor_data`` and tf2's static-broadcaster QoS.
QOS_PRESETS = {"default": QoSProfile(10, True), "sensor": QoSProfile(5, False), "static": QoSProfile(1, True, True)}


def as_qos(qos: str | QoSProfile | int) -> QoSProfile:
    """A :class:`QoSProfile` from a preset name (``"default"``, ``"sensor"``), a depth, or a profile."""
    if isinstance(qos, QoSProfile):
        return qos
    if isinstance(qos, int) and not isinstance(qos, bool):
        return QoSProfile(qos, True)
    if qos in QOS_PRESETS:
        return QOS_PRESETS[qos]
    raise ConfigError(f"unknown QoS {qos!r}; use 'default', 'sensor', a history depth or a QoSProfile.")


def make_message(typename: str, **fields: Any) -> Any:
    """A rosbags message of ``typename`` with defaults (zeros, empty strings and arrays) for missing fields.

    Raises:
        ConfigError: unknown type or field.
    """
    import numpy as np
    from rosbags.typesys.base import Nodetype

    if typename not in TYPESTORE.fielddefs:
        raise ConfigError(f"ROS type {typename!r} is not in the ROS 2 Jazzy typestore.")
    _, fielddefs = TYPESTORE.fielddefs[typename]
    names = [name for name, _ in fielddefs]
    unknown = set(fields) - set(names)
    if unknown:
        raise ConfigError(f"{typename} has no field(s) {sorted(unknown)}; its fields are {names}.")
    values = {}
    for name, (kind, detail) in fielddefs:
        if name in fields:
            values[name] = fields[name]
        elif kind == Nodetype.NAME:
            values[name] = make_message(detail)
        elif kind == Nodetype.BASE:
            values[name] = "" if detail[0] == "string" else (False if detail[0] == "bool" else 0)
        else:
            (sub_kind, sub_detail), length = detail
            if sub_kind == Nodetype.BASE and sub_detail[0] != "string":
                dtype = {"bool": "bool_", "char": "uint8", "byte": "int8"}.get(sub_detail[0], sub_detail[0])
                values[name] = np.zeros(length if kind == Nodetype.ARRAY else 0, dtype=dtype)
            elif kind == Nodetype.ARRAY:
                values[name] = ["" if sub_kind == Nodetype.BASE else make_message(sub_detail) for _ in range(length)]
            else:
                values[name] = []
    return TYPESTORE.types[typename](**values)


def stamp_to_seconds(stamp: Any) -> float:
    """Seconds from a ``builtin_interfaces/Time``."""
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(t: float) -> Any:
    """A ``builtin_interfaces/Time`` from seconds (floor to whole nanoseconds)."""
    ns = int(round(t * 1e9))
    return TYPESTORE.types["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def header(stamp_s: float, frame_id: str) -> Any:
    """A ``std_msgs/Header`` with ``stamp_s`` seconds and ``frame_id``."""
    return TYPESTORE.types["std_msgs/msg/Header"](stamp=seconds_to_stamp(stamp_s), frame_id=frame_id)


# --------------------------------------------------------------------------- command line


@dataclass
class RosArgs:
    """What ``--ros-args`` of ``ros2 run`` set: node name, namespace, parameters, remaps."""

    node_name: str | None = None
    namespace: str | None = None
    parameters: dict[str, Any] | None = None
    params_files: list[str] | None = None
    remaps: dict[str, str] | None = None


def _parse_value(text: str) -> Any:
    # ROS parses -p values as YAML scalars/sequences (rcl_yaml_param_parser).
    return yaml.safe_load(text) if text != "" else ""


def parse_ros_args(argv: Sequence[str]) -> RosArgs:
    """Parse the ``--ros-args`` part of a command line (the rest is ignored).

    Supported: ``-p/--param name:=value``, ``--params-file FILE``, ``-r/--remap __node:=name``,
    ``__ns:=/ns`` and ``/topic:=/other``; ``--ros-args`` sections end at ``--``.

    Raises:
        ConfigError: a malformed ``-p``/``-r`` argument or a missing value.
    """
    out = RosArgs(parameters={}, params_files=[], remaps={})
    inside = False
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        if arg == "--ros-args":
            inside = True
        elif arg == "--":
            inside = False
        elif inside and arg in ("-p", "--param", "-r", "--remap", "--params-file"):
            if i + 1 >= len(items):
                raise ConfigError(f"{arg} needs a value, e.g. '{arg} name:=value'.")
            value = items[i + 1]
            i += 1
            if arg == "--params-file":
                out.params_files.append(value)
            else:
                if ":=" not in value:
                    raise ConfigError(f"{arg} {value!r}: expected 'name:=value'.")
                key, val = value.split(":=", 1)
                if arg in ("-p", "--param"):
                    out.parameters[key] = _parse_value(val)
                elif key == "__node" or key == "__name":
                    out.node_name = val
                elif key == "__ns":
                    out.namespace = val
                else:
                    out.remaps[key] = val
        i += 1
    return out


def read_params_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level map of a ROS 2 parameter YAML file (node name -> ``{ros__parameters: ...}``).

    Raises:
        ConfigError: the file is missing, not YAML, or not a map.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"parameter file {path} does not exist (config/sim.yaml is an example).") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"parameter file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"parameter file {path} must map node names to 'ros__parameters' (ROS 2 parameter file format).")
    return data


def load_params_file(path: str | Path, node_fqn: str) -> dict[str, Any]:
    """Parameters of one node from a ROS 2 parameter YAML file.

    The file maps node names (``camera``, ``/ns/camera``, or the wildcard ``/**``) to
    ``ros__parameters``; wildcard entries apply first, the node's own entries override them.
    Nested parameter maps flatten to dotted names (``limits.max_speed``).

    Raises:
        ConfigError: the file is missing, not YAML, or not in the ROS 2 parameter file format.
    """
    path = Path(path)
    data = read_params_yaml(path)
    name = node_fqn.rsplit("/", 1)[-1]
    matches = []
    for key, body in data.items():
        if not isinstance(body, dict) or "ros__parameters" not in body:
            raise ConfigError(f"parameter file {path}: entry {key!r} has no 'ros__parameters' map (ROS 2 parameter file format).")
        k = str(key)
        if k in ("/**", "**"):
            matches.append((0, body["ros__parameters"]))
        elif k in (name, node_fqn, node_fqn.lstrip("/")):
            matches.append((1, body["ros__parameters"]))
    out: dict[str, Any] = {}
    for _, params in sorted(matches, key=lambda m: m[0]):
        out.update(_flatten(params or {}))
    return out


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def resolve_backend(requested: str | None = None) -> str:
    """``"rclpy"`` or ``"dds"``: the backend to use for ``requested`` (see the module docstring).

    Raises:
        ConfigError: unknown backend name, or ``rclpy`` requested but not importable.
    """
    choice = (requested or os.environ.get(BACKEND_ENV) or "auto").lower()
    if choice not in BACKENDS:
        raise ConfigError(f"unknown ROS backend {choice!r} (from {'argument' if requested else BACKEND_ENV}); use one of {BACKENDS}.")
    if choice == "dds":
        return "dds"
    try:
        import rclpy  # noqa: F401
    except ImportError:
        if choice == "rclpy":
            raise ConfigError(
                "ROS backend 'rclpy' requested but rclpy is not importable; source your ROS 2 install "
                "(source /opt/ros/jazzy/setup.bash) or use the Cyclone DDS backend (ROBOT_RL_ROS_BACKEND=dds)."
            ) from None
        return "dds"
    return "rclpy"


def resolve_name(name: str, namespace: str, node_name: str) -> str:
    """Fully qualified topic name (REP 144 / ROS 2 name resolution).

    ``/abs`` stays; ``~/x`` becomes ``<ns>/<node>/x``; ``x`` becomes ``<ns>/x``.

    Raises:
        ConfigError: empty name or a name with characters ROS 2 does not allow.
    """
    if not name:
        raise ConfigError("empty topic name.")
    if name.startswith("~"):
        base = f"{namespace.rstrip('/')}/{node_name}"
        full = base + name[1:] if name != "~" else base
    elif name.startswith("/"):
        full = name
    else:
        full = f"{namespace.rstrip('/')}/{name}"
    if not full.startswith("/"):
        full = "/" + full
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/")
    if not set(full) <= allowed or "//" in full or full.endswith("/"):
        raise ConfigError(f"topic name {name!r} resolves to {full!r}, which is not a valid ROS 2 name (letters, digits, _ and /).")
    return full


# --------------------------------------------------------------------------- parameters


@dataclass
class ParameterDescriptor:
    """A declared parameter: name, value, description, units, and whether it may change at runtime."""

    name: str
    value: Any
    description: str
    units: str = ""
    read_only: bool = False


# --------------------------------------------------------------------------- node


class Publisher:
    """A typed publisher (returned by :meth:`Node.create_publisher`)."""

    def __init__(self, node: Node, typename: str, topic: str, qos: QoSProfile, impl: Any) -> None:
        self.node, self.typename, self.topic, self.qos, self._impl = node, typename, topic, qos, impl

    def publish(self, message: Any) -> None:
        """Publish a rosbags message of :attr:`typename`.

        Raises:
            ConfigError: the message is of another type.
        """
        msgtype = getattr(message, "__msgtype__", None)
        if msgtype != self.typename:
            raise ConfigError(f"publisher on {self.topic} takes {self.typename}, got {msgtype or type(message).__name__}.")
        self._impl.publish(message)

    def get_subscription_count(self) -> int:
        """Number of matched subscriptions (all processes)."""
        return self._impl.subscription_count()

    def wait_for_subscribers(self, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Block until ``count`` subscriptions matched or ``timeout_s`` passed; True if matched."""
        deadline = time.monotonic() + timeout_s
        while self.get_subscription_count() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def destroy(self) -> None:
        """Remove the publisher from the graph. Idempotent."""
        self._impl.destroy()


class Subscription:
    """A typed subscription (returned by :meth:`Node.create_subscription`)."""

    def __init__(self, node: Node, typename: str, topic: str, qos: QoSProfile, callback: Callable[[Any], None], impl: Any) -> None:
        self.node, self.typename, self.topic, self.qos, self.callback, self._impl = node, typename, topic, qos, callback, impl

    def get_publisher_count(self) -> int:
        """Number of matched publishers (all processes)."""
        return self._impl.publisher_count()

    def destroy(self) -> None:
        """Remove the subscription from the graph. Idempotent."""
        self._impl.destroy()


class Timer:
    """A periodic callback run by the node's executor (returned by :meth:`Node.create_timer`)."""

    def __init__(self, period_s: float, callback: Callable[[], None]) -> None:
        if not period_s > 0:
            raise ConfigError(f"timer period must be positive seconds, got {period_s}.")
        self.period_s = float(period_s)
        self.callback = callback
        self.next_due = time.monotonic() + self.period_s
        self.cancelled = False
        #: Start times (monotonic seconds) of the last calls, for jitter statistics.
        self.call_count = 0

    def cancel(self) -> None:
        """Stop calling the callback."""
        self.cancelled = True

    def reset(self) -> None:
        """Restart the period from now."""
        self.cancelled = False
        self.next_due = time.monotonic() + self.period_s


class _RosoutHandler(logging.Handler):
    """Publishes log records as ``rcl_interfaces/Log`` on ``/rosout``."""

    LEVELS = {logging.DEBUG: 10, logging.INFO: 20, logging.WARNING: 30, logging.ERROR: 40, logging.CRITICAL: 50}

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self.publisher = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.publisher is None:
                self.publisher = self.node.create_publisher("rcl_interfaces/msg/Log", "/rosout", QoSProfile(1000, True))
            msg = make_message(
                "rcl_interfaces/msg/Log", stamp=seconds_to_stamp(record.created), level=self.LEVELS.get(record.levelno, 20),
                name=self.node.logger_name, msg=record.getMessage(), file=record.pathname, function=record.funcName,
                line=record.lineno,
            )
            self.publisher.publish(msg)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            pass


class Node:
    """A ROS 2 node on the chosen backend.

    Args:
        name: node name (overridden by ``-r __node:=``).
        namespace: node namespace, ``""`` or ``/ns`` (overridden by ``-r __ns:=``).
        argv: command line whose ``--ros-args`` part is parsed (default: none).
        parameter_overrides: parameter values applied over parameter files and ``-p`` arguments.
        backend: ``"rclpy"``, ``"dds"``, ``"auto"`` or None (see the module docstring).
        domain_id: ROS domain ID; default ``ROS_DOMAIN_ID`` or 0.

    Raises:
        ConfigError: bad arguments, an unknown backend, or a parameter file that cannot be read.
    """

    def __init__(self, name: str, *, namespace: str = "", argv: Sequence[str] = (),
                 parameter_overrides: dict[str, Any] | None = None, backend: str | None = None,
                 domain_id: int | None = None) -> None:
        ros_args = parse_ros_args(argv)
        self.name = ros_args.node_name or name
        ns = ros_args.namespace if ros_args.namespace is not None else namespace
        self.namespace = "/" + ns.strip("/") if ns.strip("/") else ""
        self.fully_qualified_name = f"{self.namespace}/{self.name}"
        self.logger_name = self.fully_qualified_name.lstrip("/").replace("/", ".")
        self._remaps = dict(ros_args.remaps)
        overrides: dict[str, Any] = {}
        for path in ros_args.params_files:
            overrides.update(load_params_file(path, self.fully_qualified_name))
        overrides.update(ros_args.parameters)
        overrides.update(parameter_overrides or {})
        self._overrides = overrides
        self._parameters: dict[str, ParameterDescriptor] = {}
        self.backend = resolve_backend(backend or overrides.get("ros_backend"))
        self.declare_parameter("ros_backend", self.backend, "transport backend: rclpy or dds (Cyclone DDS speaking the ROS 2 wire format)", read_only=True)
        if domain_id is None:
            domain_id = int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
        self.domain_id = domain_id
        self._timers: list[Timer] = []
        self._subscriptions: list[Subscription] = []
        self._publishers: list[Publisher] = []
        self._shutdown = threading.Event()
        self._lock = threading.Lock()
        if self.backend == "dds":
            from robot_rl.ros._dds import DdsBackend

            self._backend = DdsBackend(self, domain_id)
        else:
            from robot_rl.ros._rclpy import RclpyBackend

            self._backend = RclpyBackend(self, list(argv))
        self._logger = logging.getLogger(f"robot_rl.ros.{self.logger_name}")
        if not any(isinstance(h, _RosoutHandler) for h in self._logger.handlers) and self.backend == "dds":
            self._logger.addHandler(_RosoutHandler(self))
        _ensure_console_logging()

    # -- parameters ----------------------------------------------------------------------------

    def declare_parameter(self, name: str, default: Any, description: str, *, units: str = "",
                          read_only: bool = False, choices: Sequence[Any] | None = None) -> Any:
        """Declare a parameter and return its value (override if one was given, else ``default``).

        Args:
            name: parameter name (dotted for groups: ``limits.max_speed_m_s``).
            default: default value; its type is the parameter's type (int may be given for float).
            description: what the parameter does, shown by :meth:`describe_parameters`.
            units: physical units (``"m"``, ``"m/s"``, ``"Hz"``, ``"s"``), empty for none.
            read_only: the value may not change after declaration.
            choices: allowed values, if the parameter is an enumeration.

        Raises:
            ConfigError: declared twice, an override of the wrong type, or a value not in ``choices``.
        """
        if name in self._parameters:
            raise ConfigError(f"parameter {name!r} of node {self.fully_qualified_name} is declared twice.")
        value = self._overrides.get(name, default)
        value = _coerce(name, value, default, self.fully_qualified_name)
        if choices is not None and value not in choices:
            raise ConfigError(f"parameter {name}={value!r} of node {self.fully_qualified_name} must be one of {list(choices)}.")
        self._parameters[name] = ParameterDescriptor(name, value, description, units, read_only)
        return value

    def get_parameter(self, name: str) -> Any:
        """Value of a declared parameter.

        Raises:
            ConfigError: the parameter was not declared.
        """
        if name not in self._parameters:
            raise ConfigError(f"node {self.fully_qualified_name} has no declared parameter {name!r}; declared: {sorted(self._parameters)}.")
        return self._parameters[name].value

    def set_parameter(self, name: str, value: Any) -> None:
        """Change a declared, writable parameter.

        Raises:
            ConfigError: undeclared, read-only, or of the wrong type.
        """
        desc = self._parameters.get(name)
        if desc is None:
            raise ConfigError(f"node {self.fully_qualified_name} has no declared parameter {name!r}.")
        if desc.read_only:
            raise ConfigError(f"parameter {name!r} of node {self.fully_qualified_name} is read-only.")
        desc.value = _coerce(name, value, desc.value, self.fully_qualified_name)

    def describe_parameters(self) -> list[ParameterDescriptor]:
        """All declared parameters, in declaration order."""
        return list(self._parameters.values())

    def undeclared_overrides(self) -> list[str]:
        """Names given on the command line or in a parameter file that no declaration used (typos)."""
        return sorted(set(self._overrides) - set(self._parameters))

    # -- graph -----------------------------------------------------------------------------------

    def resolve_topic_name(self, topic: str) -> str:
        """Fully qualified, remapped name of ``topic`` (see :func:`resolve_name`)."""
        full = resolve_name(topic, self.namespace, self.name)
        return self._remaps.get(full, self._remaps.get(topic, full))

    def create_publisher(self, typename: str, topic: str, qos: str | QoSProfile | int = "default") -> Publisher:
        """A publisher of ``typename`` (``sensor_msgs/msg/Image``) on ``topic`` (relative, ``~/`` or absolute).

        Raises:
            ConfigError: unknown type, bad topic name, or the node is shut down.
        """
        self._check_alive()
        full, profile = self.resolve_topic_name(topic), as_qos(qos)
        pub = Publisher(self, typename, full, profile, self._backend.create_publisher(typename, full, profile))
        self._publishers.append(pub)
        return pub

    def create_subscription(self, typename: str, topic: str, callback: Callable[[Any], None],
                            qos: str | QoSProfile | int = "default") -> Subscription:
        """A subscription; ``callback(message)`` runs in :meth:`spin` with a rosbags message.

        Raises:
            ConfigError: unknown type, bad topic name, or the node is shut down.
        """
        self._check_alive()
        full, profile = self.resolve_topic_name(topic), as_qos(qos)
        sub = Subscription(self, typename, full, profile, callback, None)
        sub._impl = self._backend.create_subscription(typename, full, profile, sub)
        with self._lock:
            self._subscriptions.append(sub)
        return sub

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        """A timer calling ``callback()`` every ``period_s`` seconds from :meth:`spin`."""
        self._check_alive()
        timer = Timer(period_s, callback)
        with self._lock:
            self._timers.append(timer)
        self._backend.wake()
        return timer

    def get_logger(self) -> logging.Logger:
        """The node's logger (``robot_rl.ros.<namespace>.<name>``)."""
        return self._logger

    def now(self) -> float:
        """Current time, seconds since the Unix epoch (ROS ``system time``; stamps use it)."""
        return time.time()

    def msg(self, typename: str, **fields: Any) -> Any:
        """Shortcut for :func:`make_message`."""
        return make_message(typename, **fields)

    # -- executor --------------------------------------------------------------------------------

    def spin_once(self, timeout_s: float = 0.1) -> None:
        """Run due timers and deliver pending messages, waiting at most ``timeout_s`` seconds for work."""
        now = time.monotonic()
        with self._lock:
            timers = [t for t in self._timers if not t.cancelled]
        next_due = min((t.next_due for t in timers), default=now + timeout_s)
        wait = max(0.0, min(timeout_s, next_due - now))
        self._backend.wait_and_dispatch(wait)
        now = time.monotonic()
        for timer in timers:
            if not timer.cancelled and now >= timer.next_due:
                # Keep the phase: the next deadline is one period after the missed one, skipping
                # whole periods when the callback overran (no burst of catch-up calls).
                timer.next_due += timer.period_s
                if timer.next_due <= now:
                    timer.next_due = now + timer.period_s - ((now - timer.next_due) % timer.period_s)
                timer.call_count += 1
                timer.callback()

    def spin(self, timeout_s: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """Process callbacks until :meth:`shutdown`, ``timeout_s`` seconds, or ``until()`` is true."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._shutdown.is_set():
            if until is not None and until():
                return
            remaining = 0.1 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return
            self.spin_once(min(0.1, remaining))

    def spin_in_thread(self) -> threading.Thread:
        """Start :meth:`spin` in a daemon thread (for clients such as :class:`RosRobotEnv`)."""
        thread = threading.Thread(target=self.spin, name=f"spin:{self.fully_qualified_name}", daemon=True)
        thread.start()
        self._spin_thread = thread
        return thread

    @property
    def is_shutdown(self) -> bool:
        """True after :meth:`shutdown`."""
        return self._shutdown.is_set()

    def shutdown(self) -> None:
        """Stop spinning and destroy every entity. Idempotent."""
        if self._shutdown.is_set():
            return
        self._shutdown.set()
        self._backend.wake()
        # let a spinning thread finish its callback before the entities it may use are destroyed
        spinner = getattr(self, "_spin_thread", None)
        if spinner is not None and spinner is not threading.current_thread():
            spinner.join(timeout=2.0)
        self._logger.handlers = [h for h in self._logger.handlers if not isinstance(h, _RosoutHandler)]
        self._backend.destroy()

    destroy_node = shutdown

    def _check_alive(self) -> None:
        if self._shutdown.is_set():
            raise ConfigError(f"node {self.fully_qualified_name} is shut down.")

    def _subscriptions_snapshot(self) -> list[Subscription]:
        with self._lock:
            return list(self._subscriptions)


def _coerce(name: str, value: Any, default: Any, node: str) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"parameter {name} of node {node} is a bool (true/false), got {value!r}.")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"parameter {name} of node {node} is a list, got {value!r}.")
        return list(value)
    if not isinstance(value, type(default)) or (isinstance(value, bool) and not isinstance(default, bool)):
        raise ConfigError(f"parameter {name} of node {node} is a {type(default).__name__} (default {default!r}), got {value!r}.")
    return value


_CONSOLE_HANDLER: logging.Handler | None = None


def _ensure_console_logging() -> None:
    """ROS-like console output (``[INFO] [1700000000.123] [camera]: message``) once per process."""
    global _CONSOLE_HANDLER
    if _CONSOLE_HANDLER is not None:
        return
    handler = logging.StreamHandler(sys.stderr)

    class _Format(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            name = record.name.removeprefix("robot_rl.ros.")
            return f"[{record.levelname}] [{record.created:.3f}] [{name}]: {record.getMessage()}"

    handler.setFormatter(_Format())
    root = logging.getLogger("robot_rl.ros")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
    _CONSOLE_HANDLER = handler


# --------------------------------------------------------------------------- lifecycle

#: lifecycle_msgs/State ids of the primary states.
STATE_IDS = {"unconfigured": 1, "inactive": 2, "active": 3, "finalized": 4}
#: transition -> (from states, to state on success, lifecycle_msgs/Transition id).
TRANSITIONS = {
    "configure": (("unconfigured",), "inactive", 1),
    "cleanup": (("inactive",), "unconfigured", 2),
    "activate": (("inactive",), "active", 3),
    "deactivate": (("active",), "inactive", 4),
    "shutdown": (("unconfigured", "inactive", "active"), "finalized", 5),
}


class LifecycleNode(Node):
    """A node with the ROS 2 managed-node state machine (hardware nodes: camera, arm, teleop).

    Subclasses override ``on_configure`` (open the device: may raise, the node then stays
    unconfigured and the error is logged), ``on_activate`` (start publishing / accepting
    commands), ``on_deactivate``, ``on_cleanup`` (close the device) and ``on_shutdown``.
    Each returns None (success) or raises.

    Parameters declared here: ``autostart`` (bool, default true: configure and activate when
    :meth:`start` is called).
    """

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.state = "unconfigured"
        self.autostart = self.declare_parameter("autostart", True, "configure and activate on start (like nav2's lifecycle manager autostart)")
        self._transition_pub = self.create_publisher("lifecycle_msgs/msg/TransitionEvent", "~/transition_event", QoSProfile(10, True))
        self._request_sub = self.create_subscription("std_msgs/msg/String", "~/change_state_request", self._on_request)
        self.last_error: BaseException | None = None
        self._work_timer: Timer | None = None

    @property
    def is_active(self) -> bool:
        """True in the ``active`` state."""
        return self.state == "active"

    def trigger(self, transition: str) -> bool:
        """Run a transition (``configure``, ``activate``, ``deactivate``, ``cleanup``, ``shutdown``).

        Returns:
            True if the transition succeeded; False if its callback raised (logged, stored in
            :attr:`last_error`; a failed configure or activate leaves the previous state).

        Raises:
            ConfigError: unknown transition, or not allowed from the current state.
        """
        if transition not in TRANSITIONS:
            raise ConfigError(f"unknown lifecycle transition {transition!r}; use one of {list(TRANSITIONS)}.")
        sources, target, tid = TRANSITIONS[transition]
        if self.state not in sources:
            raise ConfigError(f"node {self.fully_qualified_name}: cannot {transition} from state {self.state!r}.")
        start = self.state
        try:
            getattr(self, f"on_{transition}")()
        except Exception as e:  # noqa: BLE001 - reported, node stays in its state
            self.last_error = e
            self.get_logger().error(f"{transition} failed: {e}")
            if transition == "shutdown":
                self.state = "finalized"
            return False
        self.state = target
        self._publish_transition(tid, transition, start, target)
        self.get_logger().info(f"{transition}: {start} -> {target}")
        return True

    def start_work_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        """Start the node's periodic work (publishing, control ticks) from ``on_activate``.

        One work timer per node: a running one is cancelled first. :meth:`stop_work_timer` (from
        ``on_deactivate`` / ``on_shutdown``) cancels it.

        Args:
            period_s: timer period in seconds (1 / rate in Hz).
            callback: run by the node's executor every period.
        """
        self.stop_work_timer()
        self._work_timer = self.create_timer(period_s, callback)
        return self._work_timer

    def stop_work_timer(self) -> None:
        """Cancel the work timer started by :meth:`start_work_timer` (no-op when none runs)."""
        if self._work_timer is not None:
            self._work_timer.cancel()
            self._work_timer = None

    def _publish_transition(self, tid: int, label: str, start: str, goal: str) -> None:
        T = TYPESTORE.types
        msg = T["lifecycle_msgs/msg/TransitionEvent"](
            timestamp=int(time.time() * 1e9),
            transition=T["lifecycle_msgs/msg/Transition"](id=tid, label=label),
            start_state=T["lifecycle_msgs/msg/State"](id=STATE_IDS[start], label=start),
            goal_state=T["lifecycle_msgs/msg/State"](id=STATE_IDS[goal], label=goal),
        )
        try:
            self._transition_pub.publish(msg)
        except Exception:  # noqa: BLE001 - shutdown may have destroyed the writer
            pass

    def _on_request(self, msg: Any) -> None:
        try:
            self.trigger(msg.data.strip())
        except ConfigError as e:
            self.get_logger().warning(str(e))

    def start(self) -> bool:
        """Configure and activate when ``autostart`` is set; True if the node ends up active."""
        if not self.autostart:
            return False
        return self.trigger("configure") and self.trigger("activate")

    def on_configure(self) -> None:
        """Open the device (override)."""

    def on_activate(self) -> None:
        """Start publishing / accepting commands (override)."""

    def on_deactivate(self) -> None:
        """Stop publishing; hardware holds its state (override)."""

    def on_cleanup(self) -> None:
        """Close the device (override)."""

    def on_shutdown(self) -> None:
        """Release everything before the process ends (override). Called from any primary state."""

    def shutdown(self) -> None:
        """Run the lifecycle shutdown transition (deactivate first if active), then shut the node down."""
        if not self.is_shutdown and self.state != "finalized":
            try:
                if self.state == "active":
                    self.trigger("deactivate")
                self.trigger("shutdown")
            except ConfigError:
                pass
        super().shutdown()


def run_node(node_factory: Callable[[Sequence[str]], Node], argv: Sequence[str] | None = None) -> int:
    """Console-script main: build the node, start it (lifecycle autostart), spin until SIGINT/SIGTERM.

    Returns the process exit code: 0 after a clean shutdown, 1 if the node could not be built
    or a lifecycle node failed to configure or activate (the error is printed).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        node = node_factory(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _handle(signum: int, frame: Any) -> None:
        stop.set()
        node._backend.wake()

    previous = {s: signal.signal(s, _handle) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        if isinstance(node, LifecycleNode) and node.autostart and not node.start():
            print(f"error: node {node.fully_qualified_name} failed to start: {node.last_error}", file=sys.stderr)
            code = 1
        else:
            unused = node.undeclared_overrides()
            if unused:
                node.get_logger().warning(f"parameters given but not declared by this node (typos?): {unused}")
            node.spin(until=stop.is_set)
    finally:
        node.shutdown()
        for s, h in previous.items():
            signal.signal(s, h)
    return code
