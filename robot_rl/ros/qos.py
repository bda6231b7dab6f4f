"""QoS of robot_rl publishers and subscriptions, as ROS 2's named profiles, and their rclpy form.

Presets (``"default"``, ``"sensor"``, ``"static"``) are ``rmw_qos_profile_default`` (KEEP_LAST 10,
RELIABLE, VOLATILE), ``qos_profile_sensor_data`` (KEEP_LAST 5, BEST_EFFORT, VOLATILE) and tf2's
static-broadcaster QoS (KEEP_LAST 1, RELIABLE, TRANSIENT_LOCAL). A BEST_EFFORT publisher does not
match a RELIABLE subscription (rclpy reports the incompatible QoS).

Example:
    >>> as_qos("sensor")
    QoSProfile(depth=5, reliable=False, transient_local=False)
    >>> to_rclpy(as_qos("static")).durability.name  # doctest: +SKIP
    'TRANSIENT_LOCAL'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robot_rl.errors import ConfigError

#: History depth of the ``"default"`` preset (``rmw_qos_profile_default``), messages.
DEFAULT_DEPTH = 10
#: History depth of the ``"sensor"`` preset (``rmw_qos_profile_sensor_data``), messages.
SENSOR_DATA_DEPTH = 5
#: Prefix of ROS 2 topics in DDS (``rt/joint_states``), for tools that read DDS directly.
TOPIC_PREFIX = "rt"


@dataclass(frozen=True)
class QoSProfile:
    """History depth, reliability and durability of a publisher or subscription.

    Attributes:
        depth: KEEP_LAST history depth, messages (at least 1).
        reliable: RELIABLE if True, else BEST_EFFORT.
        transient_local: TRANSIENT_LOCAL durability (late subscribers get the last ``depth``
            messages, as ``/tf_static`` needs) instead of VOLATILE.

    Raises:
        ConfigError: depth below 1.
    """

    depth: int = DEFAULT_DEPTH
    reliable: bool = True
    transient_local: bool = False

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ConfigError(f"QoS history depth must be at least 1 message, got {self.depth}.")


#: ``rmw_qos_profile_default``, ``rmw_qos_profile_sensor_data`` and tf2's static-broadcaster QoS.
QOS_PRESETS = {"default": QoSProfile(DEFAULT_DEPTH, True), "sensor": QoSProfile(SENSOR_DATA_DEPTH, False),
               "static": QoSProfile(1, True, True)}


def as_qos(qos: str | QoSProfile | int) -> QoSProfile:
    """A :class:`QoSProfile` from a preset name (``"default"``, ``"sensor"``, ``"static"``), a depth, or a profile.

    Raises:
        ConfigError: an unknown preset name.
    """
    if isinstance(qos, QoSProfile):
        return qos
    if isinstance(qos, int) and not isinstance(qos, bool):
        return QoSProfile(qos, True)
    if qos in QOS_PRESETS:
        return QOS_PRESETS[qos]
    raise ConfigError(f"unknown QoS {qos!r}; use one of {sorted(QOS_PRESETS)}, a history depth or a QoSProfile.")


def to_rclpy(profile: QoSProfile) -> Any:
    """The ``rclpy.qos.QoSProfile`` of ``profile`` (KEEP_LAST ``depth``)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy
    from rclpy.qos import QoSProfile as RclpyQoS

    return RclpyQoS(
        history=HistoryPolicy.KEEP_LAST, depth=profile.depth,
        reliability=ReliabilityPolicy.RELIABLE if profile.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if profile.transient_local else DurabilityPolicy.VOLATILE,
    )
