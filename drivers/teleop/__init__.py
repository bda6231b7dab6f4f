"""Teleop backends of the :class:`~robot_rl.interfaces.Teleop` interface, registered by name.

* ``keyboard``: :class:`~robot_rl.drivers.teleop.keyboard.KeyboardTeleop`, a terminal (also over SSH);
* ``gamepad``: :class:`~robot_rl.drivers.teleop.gamepad.GamepadTeleop`, pygame and a gamepad;
* ``spacemouse``: :class:`~robot_rl.drivers.teleop.spacemouse.SpaceMouseTeleop`, pyspacemouse,
  hidapi and a 3Dconnexion SpaceMouse;
* ``scripted``: ``robot_rl.sim.corrector.ScriptedCorrector`` (takes ``env=``), a scripted
  stand-in for the human on the simulated tasks;
* ``ros``: :class:`~robot_rl.ros.clients.RosTeleop`, the ``/spacenav/twist`` and ``/spacenav/joy``
  topics of a ROS 2 graph (robot_rl's teleop node on another machine, or the spacenav node).

Every command is a twist in the robot base frame (REP 103: x forward, y left, z up), linear
m/s then angular rad/s. Factories import their backend (and its SDK) only when called, so
importing this package imports neither pygame nor pyspacemouse (nor rclpy).

Example:
    >>> from robot_rl.drivers.teleop import make_teleop, teleop_names
    >>> teleop_names()
    ['gamepad', 'keyboard', 'ros', 'scripted', 'spacemouse']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robot_rl.errors import ConfigError
from robot_rl.interfaces import Teleop

TeleopFactory = Callable[..., Teleop]

_REGISTRY: dict[str, TeleopFactory] = {}


def register_teleop(name: str, factory: TeleopFactory) -> None:
    """Register ``factory(**kwargs) -> Teleop`` under ``name`` (replacing an earlier one)."""
    _REGISTRY[name] = factory


def teleop_names() -> list[str]:
    """The registered teleop names, sorted."""
    return sorted(_REGISTRY)


def make_teleop(name: str, **kwargs: Any) -> Teleop:
    """Create the teleop registered as ``name`` with the backend's keyword arguments.

    Raises:
        ConfigError: no teleop is registered under ``name`` (the message lists the names).
        DeviceUnavailableError: the backend's SDK or device is missing.
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown teleop {name!r}; choose one of: {', '.join(teleop_names())}") from None
    return factory(**kwargs)


def _keyboard(**kwargs: Any) -> Teleop:
    from robot_rl.drivers.teleop.keyboard import KeyboardTeleop

    return KeyboardTeleop(**kwargs)


def _gamepad(**kwargs: Any) -> Teleop:
    from robot_rl.drivers.teleop.gamepad import GamepadTeleop

    return GamepadTeleop(**kwargs)


def _spacemouse(**kwargs: Any) -> Teleop:
    from robot_rl.drivers.teleop.spacemouse import SpaceMouseTeleop

    return SpaceMouseTeleop(**kwargs)


def _scripted(**kwargs: Any) -> Teleop:
    from robot_rl.sim.corrector import ScriptedCorrector

    return ScriptedCorrector(**kwargs)


def _ros(**kwargs: Any) -> Teleop:
    from robot_rl.ros.clients import RosTeleop

    return RosTeleop(**kwargs)


register_teleop("keyboard", _keyboard)
register_teleop("gamepad", _gamepad)
register_teleop("spacemouse", _spacemouse)
register_teleop("scripted", _scripted)
register_teleop("ros", _ros)
