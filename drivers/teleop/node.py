"""ROS 2 teleop node: any teleop device of the registry on ``/spacenav/twist`` and ``/spacenav/joy``.

Publishes what the spacenav node publishes, so anything that listens to a SpaceMouse (and
robot_rl's :class:`~robot_rl.ros.clients.RosTeleop`, teleop ``ros``) works with a keyboard or a
gamepad too:

* ``/spacenav/twist`` (``geometry_msgs/Twist``): the EE twist the human asks for, linear m/s then
  angular rad/s, robot base frame (REP 103);
* ``/spacenav/joy`` (``sensor_msgs/Joy``): the same twist normalised to [-1, 1] by
  ``max_linear_m_s`` / ``max_angular_rad_s``, then the gripper opening (``-1``: unchanged), and
  the buttons of :data:`robot_rl.ros.convert.JOY_BUTTONS` (see
  :func:`robot_rl.ros.convert.teleop_msgs`).

Both at ``rate_hz``, RELIABLE (one-shot events such as a success press are in exactly one message).

Run it::

    ros2 run robot_rl robot_rl_teleop_node --ros-args -p device:=keyboard
    python -m robot_rl.drivers.teleop.node --ros-args -p device:=gamepad -p device_kwargs:="deadzone=0.15"

The keyboard device reads the node's own terminal (its controlling terminal ``/dev/tty``, the
one its stdin is attached to): start the node in a terminal of its own, in the foreground. Under
``ros2 launch`` a node has no terminal; give it one with ``prefix='xterm -e'`` (or run it by
hand). Ctrl-C still stops the node. A missing device (no terminal, no gamepad, no SpaceMouse or
its SDK) fails ``configure``: the error is logged and the process exits with status 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.interfaces import Teleop, TeleopCommand
from robot_rl.ros.convert import SPACENAV_JOY, SPACENAV_TWIST, teleop_msgs
from robot_rl.ros.node import LifecycleNode, run_node


def parse_device_kwargs(text: str) -> dict[str, Any]:
    """Device keyword arguments from a parameter string.

    Either a JSON object (``'{"linear_speed_mps": 0.2}'``) or ``key=value`` items separated by
    spaces or commas (``"linear_speed_mps=0.2 hold_s=0.3"``); values are parsed as JSON where they
    parse, else kept as strings, like ``--teleop-kwargs`` of ``robot-rl actor``
    (:func:`robot_rl.envs.parse_env_kwargs`).

    >>> parse_device_kwargs("linear_speed_mps=0.2, tty=/dev/pts/3")
    {'linear_speed_mps': 0.2, 'tty': '/dev/pts/3'}
    >>> parse_device_kwargs('{"hold_s": 0.3}')
    {'hold_s': 0.3}

    Raises:
        ConfigError: an item without ``=``, or a JSON value that is not an object.
    """
    from robot_rl.envs import parse_env_kwargs

    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"device_kwargs {text!r} looks like JSON but does not parse: {e}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"device_kwargs must be a JSON object, got {text!r}.")
        return value
    raw: dict[str, str] = {}
    for item in text.replace(",", " ").split():
        if "=" not in item:
            raise ConfigError(f"device_kwargs item {item!r} is not key=value (e.g. 'linear_speed_mps=0.2 hold_s=0.3').")
        key, value = item.split("=", 1)
        raw[key.strip()] = value.strip()
    return parse_env_kwargs(raw)


class TeleopNode(LifecycleNode):
    """Lifecycle node that reads a teleop device and publishes twist + joy at a fixed rate.

    ``configure`` opens the device (:func:`robot_rl.drivers.teleop.make_teleop`), ``activate``
    starts the publish timer, ``deactivate`` stops it (after one zero, not-engaged message),
    ``cleanup`` / ``shutdown`` close the device (restoring the terminal for the keyboard).

    Parameters (``-p name:=value``): ``device``, ``device_kwargs``, ``rate_hz``,
    ``max_linear_m_s``, ``max_angular_rad_s``, ``twist_topic``, ``joy_topic``; see
    :meth:`describe_parameters`.

    Raises:
        ConfigError: a parameter of the wrong type or out of range (from the constructor).
    """

    def __init__(self, argv: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__("teleop", argv=argv, **kwargs)
        from robot_rl.drivers.teleop import teleop_names

        self.device_name = self.declare_parameter(
            "device", "keyboard", f"teleop device from the registry: {', '.join(n for n in teleop_names() if n != 'ros')}")
        self.device_kwargs = parse_device_kwargs(self.declare_parameter(
            "device_kwargs", "", "device settings: JSON object or 'key=value key=value' (values as JSON), "
            "e.g. 'linear_speed_mps=0.2' for the keyboard"))
        self.rate_hz = self.declare_parameter("rate_hz", 50.0, "publish rate of twist and joy", units="Hz")
        self.max_linear_m_s = self.declare_parameter(
            "max_linear_m_s", 0.25, "linear speed that maps to joy axis +-1 (joy normalisation)", units="m/s")
        self.max_angular_rad_s = self.declare_parameter(
            "max_angular_rad_s", 1.0, "angular rate that maps to joy axis +-1 (joy normalisation)", units="rad/s")
        twist_topic = self.declare_parameter("twist_topic", SPACENAV_TWIST, "geometry_msgs/Twist output topic")
        joy_topic = self.declare_parameter("joy_topic", SPACENAV_JOY, "sensor_msgs/Joy output topic")
        if not (self.rate_hz > 0 and self.max_linear_m_s > 0 and self.max_angular_rad_s > 0):
            raise ConfigError(f"rate_hz ({self.rate_hz} Hz), max_linear_m_s ({self.max_linear_m_s} m/s) and "
                              f"max_angular_rad_s ({self.max_angular_rad_s} rad/s) must be positive.")
        if self.device_name == "ros":
            raise ConfigError("device 'ros' would read this node's own output; choose a physical device (keyboard, gamepad, spacemouse).")
        self.twist_pub = self.create_publisher("geometry_msgs/msg/Twist", twist_topic)
        self.joy_pub = self.create_publisher("sensor_msgs/msg/Joy", joy_topic)
        self.teleop: Teleop | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def on_configure(self) -> None:
        """Open the device.

        Raises:
            DeviceUnavailableError: the device, its terminal or its SDK is missing.
            ConfigError: unknown device name or bad ``device_kwargs``.
        """
        from robot_rl.drivers.teleop import make_teleop

        try:
            self.teleop = make_teleop(self.device_name, **self.device_kwargs)
        except TypeError as e:  # a kwarg the backend does not take, or a required one missing
            raise ConfigError(f"device {self.device_name!r} does not take device_kwargs {self.device_kwargs}: {e}") from None
        help_text = getattr(self.teleop, "help_text", "")
        if help_text:
            self.get_logger().info(help_text)
        self.get_logger().info(f"device {self.device_name} open; publishing at {self.rate_hz:g} Hz once active")

    def on_activate(self) -> None:
        """Start publishing at ``rate_hz``."""
        self.start_work_timer(1.0 / self.rate_hz, self._tick)

    def on_deactivate(self) -> None:
        """Stop publishing, after one zero, not-engaged command (the arm stops, the policy takes over)."""
        self.stop_work_timer()
        self._publish(TeleopCommand(twist=np.zeros(6)))

    def on_cleanup(self) -> None:
        """Close the device."""
        self._close_device()

    def on_shutdown(self) -> None:
        """Close the device (restores the keyboard's terminal)."""
        self._close_device()

    # -- work --------------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self.teleop is None:
            return
        try:
            cmd = self.teleop.read()
        except Exception as e:  # noqa: BLE001 - device lost (terminal hung up, pad unplugged)
            self.get_logger().error(f"device {self.device_name} failed: {e}; stopping (zero twist published)")
            self.trigger("deactivate")
            return
        self._publish(cmd)

    def _publish(self, cmd: TeleopCommand) -> None:
        msgs = teleop_msgs(cmd, self.now(), self.max_linear_m_s, self.max_angular_rad_s)
        self.twist_pub.publish(msgs["twist"])
        self.joy_pub.publish(msgs["joy"])

    def _close_device(self) -> None:
        if self.teleop is not None:
            teleop, self.teleop = self.teleop, None
            teleop.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``robot_rl_teleop_node``: run :class:`TeleopNode` until Ctrl-C / SIGTERM.

    Returns 0 after a clean shutdown, 1 when the device could not be opened.
    """
    return run_node(lambda args: TeleopNode(args), argv)


if __name__ == "__main__":
    sys.exit(main())
