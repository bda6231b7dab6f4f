"""The small ROS 2 node API every robot_rl node is written against, on rclpy.

Every robot_rl node (camera, arm, teleop, sim, recorder) subclasses :class:`Node` or
:class:`LifecycleNode` here; underneath each is a real rclpy node (:mod:`robot_rl.ros._rclpy`),
so ``ros2 node list``, ``ros2 param``, ``ros2 lifecycle``, rqt and rviz2 see them as any other
ROS 2 node. rclpy (ROS 2 Jazzy, Fast DDS) is the only backend: ``pip install -e .[ros]``
installs it from PyPI; the former Cyclone DDS backend was retired (README, "ROS 2").
Messages in robot_rl code are rosbags dataclasses (``TYPESTORE.types["sensor_msgs/msg/Image"]``,
numeric arrays as numpy); they travel as CDR bytes through rclpy (:mod:`robot_rl.ros.messages`).

What the node gives (names as in rclpy):
    * publishers and subscriptions with explicit QoS (``"default"``: KEEP_LAST 10 RELIABLE,
      ``"sensor"``: KEEP_LAST 5 BEST_EFFORT, ``"static"``: KEEP_LAST 1 RELIABLE TRANSIENT_LOCAL,
      or a :class:`QoSProfile`); a message type whose package is not installed is a
      :class:`ConfigError` naming the ``ros-jazzy-*`` wheel to install;
    * timers (period in seconds), run by :meth:`Node.spin` on one thread with the callbacks and
      rclpy's services (rclpy's SingleThreadedExecutor: callbacks never run concurrently);
    * parameters declared through rclpy with a ``rcl_interfaces/ParameterDescriptor``
      (description with units, ``FloatingPointRange``/``IntegerRange``, ``read_only``), so
      ``ros2 param list/get/set`` and the ``~/list_parameters``, ``~/get_parameters``,
      ``~/set_parameters`` services work; a set with the wrong type, out of range or not one of
      the allowed values is refused with a reason (``SetParametersResult.successful = False``).
      Values come from ``-p name:=value``, ``--params-file file.yaml`` (the ROS 2 parameter file
      format) or ``parameter_overrides``. A parameter is read-only unless it is declared with an
      ``on_change`` callback (or ``read_only=False``): runtime changes then reach the node;
    * a :mod:`logging` logger named after the node whose records go through the rclpy node
      logger: console output in ROS 2's format and ``rcl_interfaces/Log`` on ``/rosout``;
    * for :class:`LifecycleNode`: the standard managed-node services ``~/change_state``,
      ``~/get_state``, ``~/get_available_states``, ``~/get_available_transitions`` and the
      ``~/transition_event`` topic (rclpy.lifecycle), ``on_configure`` ... callbacks, and
      ``autostart`` (configure and activate on start, like nav2's lifecycle manager);
    * ``ROS_DOMAIN_ID``, ``ROS_AUTOMATIC_DISCOVERY_RANGE`` and ``ROS_STATIC_PEERS`` as in any ROS 2
      process; a ``domain_id`` argument overrides ``ROS_DOMAIN_ID`` for one node (each node has
      its own rclpy Context).

Command-line arguments follow ``ros2 run``: ``--ros-args -p name:=value --params-file f.yaml
-r __node:=name -r __ns:=/namespace -r /from:=/to``.

Example:
    >>> from robot_rl.ros.node import Node
    >>> node = Node("talker")                                              # doctest: +SKIP
    >>> rate = node.declare_parameter("rate_hz", 10.0, "publish rate", units="Hz", min_value=0.1)  # doctest: +SKIP
    >>> pub = node.create_publisher("std_msgs/msg/String", "chatter")      # doctest: +SKIP
    >>> node.create_timer(1.0 / rate, lambda: pub.publish(node.msg("std_msgs/msg/String", data="hi")))  # doctest: +SKIP
    >>> node.spin()                                                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
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
from robot_rl.ros import _rclpy
from robot_rl.ros.messages import TYPESTORE, deserialize, load_message_class, serialize
from robot_rl.ros.qos import QOS_PRESETS, QoSProfile, as_qos, to_rclpy

__all__ = [
    "QOS_PRESETS", "QoSProfile", "as_qos", "make_message", "stamp_to_seconds", "seconds_to_stamp", "header",
    "RosArgs", "parse_ros_args", "read_params_yaml", "load_params_file", "resolve_name", "ParameterDescriptor",
    "Publisher", "Subscription", "Timer", "Node", "LifecycleNode", "STATE_IDS", "TRANSITIONS", "run_node",
]


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
    """A declared parameter as robot_rl sees it (rclpy holds the ROS 2 descriptor).

    Attributes:
        name: parameter name (dotted for groups).
        value: current value (Python types: bool, int, float, str, or a list of one of them).
        description: what it does. units: physical units, empty for none.
        read_only: the value cannot change after declaration.
        choices: allowed values, or None. min_value, max_value: inclusive range, or None.
    """

    name: str
    value: Any
    description: str
    units: str = ""
    read_only: bool = False
    choices: tuple | None = None
    min_value: float | None = None
    max_value: float | None = None
    on_change: Callable[[Any], None] | None = None


def _coerce(name: str, value: Any, default: Any, node: str, array_type: type | None = None) -> Any:
    """``value`` converted to the type of ``default`` (ints where floats are expected), or ConfigError."""
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
        element = array_type or _element_type(default) or _element_type(value)
        items = list(value)
        if element is float and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return [float(v) for v in items]
        if element is not None and not all(isinstance(v, element) and (element is bool or not isinstance(v, bool)) for v in items):
            raise ConfigError(f"parameter {name} of node {node} is a list of {element.__name__}, got {value!r}.")
        return items
    if not isinstance(value, type(default)) or (isinstance(value, bool) and not isinstance(default, bool)):
        raise ConfigError(f"parameter {name} of node {node} is a {type(default).__name__} (default {default!r}), got {value!r}.")
    return value


def _element_type(values: Sequence[Any]) -> type | None:
    """Element type of a ROS 2 array parameter (bool, int, float or str), None for an empty list."""
    if not values:
        return None
    if all(isinstance(v, bool) for v in values):
        return bool
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return int
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return float
    if all(isinstance(v, str) for v in values):
        return str
    raise ConfigError(f"a ROS 2 array parameter holds one type (bool, int, float or str), got {list(values)!r}.")


def _python_value(value: Any) -> Any:
    """rclpy parameter values as plain Python (``array.array`` -> list)."""
    if value is not None and not isinstance(value, (bool, int, float, str, list)):
        try:
            return list(value)
        except TypeError:
            return value
    return value


# --------------------------------------------------------------------------- entities


class Publisher:
    """A typed publisher (returned by :meth:`Node.create_publisher`); publishes rosbags messages."""

    def __init__(self, node: Node, typename: str, topic: str, qos: QoSProfile, impl: Any) -> None:
        self.node, self.typename, self.topic, self.qos, self._impl = node, typename, topic, qos, impl

    def publish(self, message: Any) -> None:
        """Publish a rosbags message of :attr:`typename` (serialized to CDR, sent through rclpy).

        Raises:
            ConfigError: the message is of another type.
        """
        msgtype = getattr(message, "__msgtype__", None)
        if msgtype != self.typename:
            raise ConfigError(f"publisher on {self.topic} takes {self.typename}, got {msgtype or type(message).__name__}.")
        self._impl.publish(serialize(message, self.typename))

    def get_subscription_count(self) -> int:
        """Number of matched subscriptions (all processes)."""
        return self._impl.get_subscription_count()

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
        self.node._destroy_entity(self._impl)


class Subscription:
    """A typed subscription (returned by :meth:`Node.create_subscription`)."""

    def __init__(self, node: Node, typename: str, topic: str, qos: QoSProfile, callback: Callable[[Any], None], impl: Any) -> None:
        self.node, self.typename, self.topic, self.qos, self.callback, self._impl = node, typename, topic, qos, callback, impl
        self._bad_logged = False

    def _deliver(self, data: bytes) -> None:
        try:
            message = deserialize(data, self.typename)
        except ConfigError as e:
            if not self._bad_logged:  # once per subscription; the count is in the log line
                self._bad_logged = True
                self.node.get_logger().error(f"dropping a message on {self.topic}: {e}")
            return
        self.callback(message)

    def get_publisher_count(self) -> int:
        """Number of publishers on the topic (all processes)."""
        return self.node._ros.node.count_publishers(self.topic)

    def destroy(self) -> None:
        """Remove the subscription from the graph. Idempotent."""
        self.node._destroy_entity(self._impl)
        with self.node._lock:
            if self in self.node._subscriptions:
                self.node._subscriptions.remove(self)


class Timer:
    """A periodic callback run by the node's executor (returned by :meth:`Node.create_timer`).

    Attributes:
        period_s: period in seconds. callback: the function called. call_count: calls so far.
    """

    def __init__(self, node: Node, period_s: float, callback: Callable[[], None]) -> None:
        if not period_s > 0:
            raise ConfigError(f"timer period must be positive seconds, got {period_s}.")
        self.period_s = float(period_s)
        self.callback = callback
        self.call_count = 0
        self.cancelled = False
        self._impl = node._ros.node.create_timer(self.period_s, self._fire)

    def _fire(self) -> None:
        self.call_count += 1
        self.callback()

    def cancel(self) -> None:
        """Stop calling the callback."""
        self.cancelled = True
        self._impl.cancel()

    def reset(self) -> None:
        """Restart the period from now (also after :meth:`cancel`)."""
        self.cancelled = False
        self._impl.reset()


class _RclpyLogHandler(logging.Handler):
    """Sends :mod:`logging` records through an rclpy node logger: console and ``/rosout``."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.name != f"robot_rl.ros.{self.node.logger_name}":  # a driver module's logger, forwarded by run_node
            text = f"({record.name.removeprefix('robot_rl.')}) {text}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        ros = getattr(self.node, "_ros", None)
        try:
            if ros is not None and not ros._destroyed:
                logger = ros.node.get_logger()
                level = record.levelno
                log = (logger.debug if level < logging.INFO else logger.info if level < logging.WARNING
                       else logger.warning if level < logging.ERROR else logger.error if level < logging.CRITICAL
                       else logger.fatal)
                log(text)
                return
        except Exception:  # noqa: BLE001 - fall back to stderr below
            pass
        sys.stderr.write(f"[{record.levelname}] [{record.created:.9f}] [{self.node.logger_name}]: {text}\n")


# --------------------------------------------------------------------------- node


class Node:
    """A ROS 2 node (an rclpy node underneath, in its own rclpy Context).

    Args:
        name: node name (overridden by ``-r __node:=``).
        namespace: node namespace, ``""`` or ``/ns`` (overridden by ``-r __ns:=``).
        argv: command line whose ``--ros-args`` part is parsed (default: none).
        parameter_overrides: parameter values applied over parameter files and ``-p`` arguments.
        domain_id: ROS domain ID of this node; None: ``ROS_DOMAIN_ID`` (0 when unset).

    Raises:
        ConfigError: rclpy is not installed (says ``pip install -e .[ros]``), bad arguments, or a parameter file
            that cannot be read.
    """

    _LIFECYCLE = False

    def __init__(self, name: str, *, namespace: str = "", argv: Sequence[str] = (),
                 parameter_overrides: dict[str, Any] | None = None, domain_id: int | None = None) -> None:
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
        self._subscriptions: list[Subscription] = []
        self._publishers: list[Publisher] = []
        self._shutdown = threading.Event()
        self._lock = threading.Lock()
        self._spin_thread: threading.Thread | None = None
        self._spinning: set[int] = set()
        self._ros = _rclpy.RclpyNode(self, self.name, self.namespace, lifecycle=self._LIFECYCLE, domain_id=domain_id)
        #: The ROS domain ID this node is in.
        self.domain_id = self._ros.domain_id
        _rclpy.register_live(self)
        from rcl_interfaces.msg import SetParametersResult

        self._SetParametersResult = SetParametersResult
        self._ros.node.add_on_set_parameters_callback(self._validate_parameters)
        self._ros.node.add_post_set_parameters_callback(self._parameters_changed)
        self._logger = logging.getLogger(f"robot_rl.ros.{self.logger_name}")
        self._logger.handlers = [h for h in self._logger.handlers if not isinstance(h, _RclpyLogHandler)]
        self._logger.addHandler(_RclpyLogHandler(self))
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False

    # -- parameters ----------------------------------------------------------------------------

    def declare_parameter(self, name: str, default: Any, description: str, *, units: str = "",
                          read_only: bool | None = None, choices: Sequence[Any] | None = None,
                          min_value: float | None = None, max_value: float | None = None,
                          on_change: Callable[[Any], None] | None = None, array_type: type | None = None) -> Any:
        """Declare a ROS 2 parameter (through rclpy, with a descriptor) and return its value.

        The value is the override (``-p``, parameter file, ``parameter_overrides``) if one was
        given, else ``default``.

        Args:
            name: parameter name (dotted for groups: ``limits.max_speed_m_s``).
            default: default value; its type is the parameter's type (an int is accepted for a
                float); a list is an array parameter of one element type.
            description: what the parameter does (``ros2 param describe`` shows it with the units).
            units: physical units (``"m"``, ``"m/s"``, ``"Hz"``, ``"s"``), empty for none.
            read_only: the value may not change after declaration. Default: read-only unless
                ``on_change`` is given (a runtime change the node does not apply would mislead).
            choices: allowed values, if the parameter is an enumeration.
            min_value, max_value: inclusive range of a numeric parameter (``FloatingPointRange`` /
                ``IntegerRange`` in the descriptor); None: unbounded on that side.
            on_change: called with the new value after a successful runtime set (from the
                executor thread, like any callback).
            array_type: element type (bool, int, float, str) of an array parameter whose default
                is an empty list; default str.

        Raises:
            ConfigError: declared twice, an override of the wrong type, out of range, or not in ``choices``.
        """
        from rcl_interfaces.msg import FloatingPointRange, IntegerRange
        from rcl_interfaces.msg import ParameterDescriptor as RosDescriptor
        from rclpy.parameter import Parameter

        fqn = self.fully_qualified_name
        if name in self._parameters:
            raise ConfigError(f"parameter {name!r} of node {fqn} is declared twice.")
        if default is None:
            raise ConfigError(f"parameter {name!r} of node {fqn} needs a typed default (ROS 2 parameters are typed).")
        value = _coerce(name, self._overrides.get(name, default), default, fqn, array_type)
        if isinstance(default, (list, tuple)) and array_type is None and not default and not value:
            array_type = str
        info = ParameterDescriptor(name, value, description, units, bool(on_change is None if read_only is None else read_only),
                                   tuple(choices) if choices is not None else None, min_value, max_value, on_change)
        problem = self._check_value(info, value)
        if problem:
            raise ConfigError(problem)
        descriptor = RosDescriptor(description=description + (f" [{units}]" if units else ""), read_only=info.read_only)
        constraints = []
        if choices is not None:
            constraints.append("one of: " + ", ".join(str(c) for c in choices))
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and (min_value is not None or max_value is not None):
            if isinstance(value, float):
                lo = -math.inf if min_value is None else float(min_value)
                hi = math.inf if max_value is None else float(max_value)
                descriptor.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
            else:
                lo = -(2**63) if min_value is None else int(min_value)
                hi = 2**63 - 1 if max_value is None else int(max_value)
                descriptor.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=0)]
            constraints.append(f"range [{lo}, {hi}]" + (f" {units}" if units else ""))
        descriptor.additional_constraints = "; ".join(constraints)
        try:
            if isinstance(value, list) and not value:
                kind = {bool: Parameter.Type.BOOL_ARRAY, int: Parameter.Type.INTEGER_ARRAY,
                        float: Parameter.Type.DOUBLE_ARRAY, str: Parameter.Type.STRING_ARRAY}[array_type or str]
                descriptor.type = kind.value
                # rclpy infers BYTE_ARRAY from an empty list; declare with the explicit type instead
                self._ros.node._declare_parameter_common([Parameter(name, kind, [])], {name: descriptor})
            else:
                self._ros.node.declare_parameter(name, value, descriptor, ignore_override=True)
        except Exception as e:  # noqa: BLE001 - rclpy raises several exception types here
            raise ConfigError(f"parameter {name}={value!r} of node {fqn}: {e}") from None
        self._parameters[name] = info
        return value

    @staticmethod
    def _check_value(info: ParameterDescriptor, value: Any) -> str:
        """Why ``value`` is not allowed for ``info`` (empty string: allowed)."""
        if info.choices is not None and value not in info.choices:
            return f"parameter {info.name}={value!r} must be one of {list(info.choices)}."
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if info.min_value is not None and value < info.min_value:
                return f"parameter {info.name}={value!r} is below its minimum {info.min_value} {info.units}".rstrip() + "."
            if info.max_value is not None and value > info.max_value:
                return f"parameter {info.name}={value!r} is above its maximum {info.max_value} {info.units}".rstrip() + "."
        return ""

    def _validate_parameters(self, parameters: list[Any]) -> Any:
        # rclpy has already checked read-only, type and range; this adds choices (and our wording).
        for p in parameters:
            info = self._parameters.get(p.name)
            if info is None:
                continue
            problem = self._check_value(info, _python_value(p.value))
            if problem:
                self._logger.warning(f"refused: {problem}")
                return self._SetParametersResult(successful=False, reason=problem)
        return self._SetParametersResult(successful=True)

    def _parameters_changed(self, parameters: list[Any]) -> None:
        for p in parameters:
            info = self._parameters.get(p.name)
            if info is None:
                continue
            info.value = _python_value(p.value)
            self._logger.info(f"parameter {p.name} set to {info.value!r}")
            if info.on_change is not None:
                try:
                    info.on_change(info.value)
                except Exception as e:  # noqa: BLE001 - a failing hook must not take the node down
                    self._logger.error(f"applying parameter {p.name}={info.value!r} failed: {e}")

    def get_parameter(self, name: str) -> Any:
        """Value of a declared parameter (plain Python types).

        Raises:
            ConfigError: the parameter was not declared.
        """
        if name not in self._parameters:
            raise ConfigError(f"node {self.fully_qualified_name} has no declared parameter {name!r}; declared: {sorted(self._parameters)}.")
        return self._parameters[name].value

    def set_parameter(self, name: str, value: Any) -> None:
        """Change a declared, writable parameter (as a ``~/set_parameters`` request would).

        Raises:
            ConfigError: undeclared, read-only, wrong type, out of range, or refused by the node.
        """
        from rclpy.parameter import Parameter

        info = self._parameters.get(name)
        if info is None:
            raise ConfigError(f"node {self.fully_qualified_name} has no declared parameter {name!r}.")
        value = _coerce(name, value, info.value if info.value not in (None, []) else value, self.fully_qualified_name)
        try:
            result = self._ros.node.set_parameters([Parameter(name, value=value)])[0]
        except Exception as e:  # noqa: BLE001 - rclpy raises for some refusals instead of returning them
            raise ConfigError(f"parameter {name} of node {self.fully_qualified_name}: {e}") from None
        if not result.successful:
            raise ConfigError(f"parameter {name} of node {self.fully_qualified_name} not set to {value!r}: {result.reason}")

    def describe_parameters(self) -> list[ParameterDescriptor]:
        """All declared parameters, in declaration order."""
        return list(self._parameters.values())

    def undeclared_overrides(self) -> list[str]:
        """Names given on the command line or in a parameter file that no declaration used (typos)."""
        return sorted(set(self._overrides) - set(self._parameters))

    # -- graph -----------------------------------------------------------------------------------

    def publishers_reliable(self, topic: str) -> list[bool]:
        """Reliability of every publisher on ``topic`` now on the ROS 2 graph (all processes):
        True for RELIABLE, False for BEST_EFFORT; empty when none is discovered yet."""
        from rclpy.qos import ReliabilityPolicy

        infos = self._ros.node.get_publishers_info_by_topic(self.resolve_topic_name(topic))
        return [info.qos_profile.reliability == ReliabilityPolicy.RELIABLE for info in infos]

    def resolve_topic_name(self, topic: str) -> str:
        """Fully qualified, remapped name of ``topic`` (see :func:`resolve_name`)."""
        full = resolve_name(topic, self.namespace, self.name)
        return self._remaps.get(full, self._remaps.get(topic, full))

    def create_publisher(self, typename: str, topic: str, qos: str | QoSProfile | int = "default") -> Publisher:
        """A publisher of ``typename`` (``sensor_msgs/msg/Image``) on ``topic`` (relative, ``~/`` or absolute).

        Raises:
            ConfigError: unknown type, its package not installed (names the wheel), bad topic
                name, or the node is shut down.
        """
        self._check_alive()
        full, profile = self.resolve_topic_name(topic), as_qos(qos)
        impl = self._ros.create_publisher(load_message_class(typename), full, to_rclpy(profile))
        pub = Publisher(self, typename, full, profile, impl)
        self._publishers.append(pub)
        return pub

    def create_subscription(self, typename: str, topic: str, callback: Callable[[Any], None],
                            qos: str | QoSProfile | int = "default") -> Subscription:
        """A subscription; ``callback(message)`` runs in :meth:`spin` with a rosbags message.

        Raises:
            ConfigError: unknown type, its package not installed (names the wheel), bad topic
                name, or the node is shut down. The node keeps running.
        """
        self._check_alive()
        full, profile = self.resolve_topic_name(topic), as_qos(qos)
        msg_class = load_message_class(typename)
        sub = Subscription(self, typename, full, profile, callback, None)
        sub._impl = self._ros.create_subscription(msg_class, full, sub._deliver, to_rclpy(profile))
        with self._lock:
            self._subscriptions.append(sub)
        return sub

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        """A timer calling ``callback()`` every ``period_s`` seconds from :meth:`spin`.

        Raises:
            ConfigError: period not positive, or the node is shut down.
        """
        self._check_alive()
        return Timer(self, period_s, callback)

    def get_logger(self) -> logging.Logger:
        """The node's :mod:`logging` logger (``robot_rl.ros.<namespace>.<name>``); records reach ``/rosout``."""
        return self._logger

    def now(self) -> float:
        """Current time, seconds since the Unix epoch (ROS ``system time``; stamps use it)."""
        return time.time()

    def msg(self, typename: str, **fields: Any) -> Any:
        """Shortcut for :func:`make_message`."""
        return make_message(typename, **fields)

    # -- executor --------------------------------------------------------------------------------

    def spin_once(self, timeout_s: float = 0.1) -> None:
        """Run one ready callback (timer, message, service request), waiting at most ``timeout_s`` seconds."""
        if self._shutdown.is_set():
            return
        me = threading.get_ident()
        self._spinning.add(me)
        try:
            self._ros.spin_once(timeout_s)
        finally:
            self._spinning.discard(me)
        if self._shutdown.is_set() and not self._spinning:
            self._ros.destroy()

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
        """Start :meth:`spin` in a daemon thread (for clients such as :class:`RosRobotEnv`); :meth:`shutdown` joins it."""
        thread = threading.Thread(target=self.spin, name=f"spin:{self.fully_qualified_name}", daemon=True)
        self._spin_thread = thread
        thread.start()
        return thread

    def wake(self) -> None:
        """Make a waiting :meth:`spin_once` return now (e.g. from a signal handler)."""
        self._ros.wake()

    @property
    def is_shutdown(self) -> bool:
        """True after :meth:`shutdown`."""
        return self._shutdown.is_set()

    def shutdown(self) -> None:
        """Stop spinning, destroy the rclpy node and shut its context down. Idempotent.

        Called from a callback (inside :meth:`spin`), the teardown happens when that callback returns.
        """
        if self._shutdown.is_set():
            return
        self._shutdown.set()
        self._ros.wake()
        spinner = self._spin_thread
        if spinner is not None and spinner is not threading.current_thread():
            spinner.join(timeout=5.0)
        if threading.get_ident() not in self._spinning:
            self._ros.destroy()

    destroy_node = shutdown

    def _destroy_entity(self, impl: Any) -> None:
        if impl is None or self._ros._destroyed:
            return
        try:
            if hasattr(impl, "get_subscription_count"):
                self._ros.node.destroy_publisher(impl)
            else:
                self._ros.node.destroy_subscription(impl)
        except Exception:  # noqa: BLE001 - already destroyed
            pass

    def _check_alive(self) -> None:
        if self._shutdown.is_set():
            raise ConfigError(f"node {self.fully_qualified_name} is shut down.")

    def _subscriptions_snapshot(self) -> list[Subscription]:
        with self._lock:
            return list(self._subscriptions)


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
    """A managed node (REP 2002) on ``rclpy.lifecycle``: hardware nodes (camera, arm, teleop, sim).

    The standard services are served: ``~/change_state`` (``lifecycle_msgs/srv/ChangeState``),
    ``~/get_state``, ``~/get_available_states``, ``~/get_available_transitions``; every transition
    is published on ``~/transition_event``. A transition that is not allowed from the current
    state is refused (``success=False`` and an error in the log) and the node keeps running.

    Subclasses override ``on_configure`` (open the device: may raise; the node then stays
    unconfigured and the error is logged and kept in :attr:`last_error`), ``on_activate`` (start
    publishing / accepting commands), ``on_deactivate``, ``on_cleanup`` (close the device) and
    ``on_shutdown``. Each returns None (success) or raises.

    Parameters declared here: ``autostart`` (bool, default true: configure and activate when
    :meth:`start` is called).
    """

    _LIFECYCLE = True

    def __init__(self, name: str, **kwargs: Any) -> None:
        self.last_error: BaseException | None = None
        self._work_timer: Timer | None = None
        super().__init__(name, **kwargs)
        self.autostart = self.declare_parameter(
            "autostart", True, "configure and activate on start (like nav2's lifecycle manager autostart)")
        service = getattr(self._ros.node, "_service_change_state", None)
        if service is not None:
            service.callback = self._guarded_change_state(service.callback)

    @property
    def state(self) -> str:
        """Current state label: ``unconfigured``, ``inactive``, ``active``, ``finalized`` (or a transition state)."""
        return self._ros.node._state_machine.current_state[1]

    @property
    def is_active(self) -> bool:
        """True in the ``active`` state."""
        return self.state == "active"

    def available_transitions(self) -> list[str]:
        """Labels of the transitions allowed from the current state (``configure``, ``shutdown``, ...)."""
        return sorted({t[1] for t in self._ros.node._state_machine.available_transitions})

    def trigger(self, transition: str) -> bool:
        """Run a transition (``configure``, ``activate``, ``deactivate``, ``cleanup``, ``shutdown``).

        Returns:
            True if the transition succeeded; False if its callback raised (logged, stored in
            :attr:`last_error`; a failed transition leaves the previous state).

        Raises:
            ConfigError: unknown transition, or not allowed from the current state.
        """
        if transition not in TRANSITIONS:
            raise ConfigError(f"unknown lifecycle transition {transition!r}; use one of {list(TRANSITIONS)}.")
        start, allowed = self.state, self.available_transitions()
        if transition not in allowed:
            raise ConfigError(f"node {self.fully_qualified_name}: cannot {transition} from state {start!r}; "
                              f"allowed from {start!r}: {allowed}.")
        from rclpy.lifecycle import TransitionCallbackReturn

        self._failed = False
        result = getattr(self._ros.node, f"trigger_{transition}")()
        return result == TransitionCallbackReturn.SUCCESS and not self._failed

    def _run_transition(self, transition: str, start: str) -> bool:
        """Run ``on_<transition>`` (from rclpy's lifecycle callback, ``start``: the state before); False if it raised."""
        try:
            getattr(self, f"on_{transition}")()
        except Exception as e:  # noqa: BLE001 - reported, node stays in its state
            self.last_error = e
            self._failed = True
            self.get_logger().error(f"{transition} failed: {e}")
            return transition == "shutdown"  # a failed shutdown still ends in finalized
        self.get_logger().info(f"{transition}: {start} -> {TRANSITIONS[transition][1]}")
        return True

    def _guarded_change_state(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """Wrap rclpy's ``~/change_state`` handler: a transition not allowed is a logged refusal, never an exception."""

        def change_state(request: Any, response: Any) -> Any:
            available = {(t[0], t[1]) for t in self._ros.node._state_machine.available_transitions}
            label, tid = request.transition.label, request.transition.id
            if not any((label and label == lab) or (not label and tid == i) for i, lab in available):
                self.get_logger().error(
                    f"~/change_state: transition {label or tid!r} is not allowed from state {self.state!r}; "
                    f"allowed: {sorted({lab for _, lab in available})}. The node stays {self.state!r}.")
                response.success = False
                return response
            try:
                return handler(request, response)
            except Exception as e:  # noqa: BLE001 - rcl refused it after all
                self.get_logger().error(f"~/change_state: transition {label or tid!r} failed: {e}")
                response.success = False
                return response

        return change_state

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
            try:
                self._ros.node.destroy_timer(self._work_timer._impl)
            except Exception:  # noqa: BLE001 - node already destroyed
                pass
            self._work_timer = None

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
        if not self.is_shutdown and not self._ros._destroyed and self.state in ("unconfigured", "inactive", "active"):
            try:
                if self.state == "active":
                    self.trigger("deactivate")
                self.trigger("shutdown")
            except ConfigError:
                pass
        super().shutdown()


def run_node(node_factory: Callable[[Sequence[str]], Node], argv: Sequence[str] | None = None) -> int:
    """Console-script main: build the node, start it (lifecycle autostart), spin until SIGINT/SIGTERM.

    Records of the process's other ``robot_rl.*`` loggers (driver modules) go through the node's
    rclpy logger too, so they reach the console and ``/rosout``.

    Returns the process exit code: 0 after a clean shutdown, 1 if the node could not be built
    or a lifecycle node failed to configure or activate (the error is printed).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        node = node_factory(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    # the node process's other robot_rl loggers (drivers: opencv_camera, ur, ...) also go to /rosout
    package_logger = logging.getLogger("robot_rl")
    forward = _RclpyLogHandler(node)
    package_logger.addHandler(forward)
    if package_logger.level == logging.NOTSET:
        package_logger.setLevel(logging.INFO)
    stop = threading.Event()

    def _handle(signum: int, frame: Any) -> None:
        stop.set()
        node.wake()

    previous = {s: signal.signal(s, _handle) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        if isinstance(node, LifecycleNode) and node.autostart and not node.start():
            print(f"error: node {node.fully_qualified_name} failed to start: {node.last_error}", file=sys.stderr)
            code = 1
        else:
            if isinstance(node, LifecycleNode) and not node.autostart:
                node.get_logger().info(f"up and unconfigured (autostart is false): configure it with `ros2 lifecycle set "
                                       f"{node.fully_qualified_name} configure` or a ChangeState request on "
                                       f"{node.fully_qualified_name}/change_state")
            unused = node.undeclared_overrides()
            if unused:
                node.get_logger().warning(f"parameters given but not declared by this node (typos?): {unused}")
            node.spin(until=stop.is_set)
    finally:
        node.shutdown()
        package_logger.removeHandler(forward)
        for s, h in previous.items():
            signal.signal(s, h)
    return code
