"""Topic clients for any ROS 2 device: the ``ros`` backend of the robot_rl interfaces.

:class:`RosTeleop` turns the teleop topics of a ROS 2 graph into a :class:`~robot_rl.interfaces.Teleop`:
``/spacenav/twist`` (``geometry_msgs/Twist``) and ``/spacenav/joy`` (``sensor_msgs/Joy``), as
published by robot_rl's teleop node (``robot_rl_teleop_node``, any device of the teleop registry)
or by the real ``spacenav`` node of ``ros-<distro>-spacenav`` (``spacenav_compat=True``). It is
registered as teleop ``"ros"``, so ``robot-rl actor --teleop ros`` and ``robot-rl train
--intervention ros`` read a device attached to another machine or process.

The client owns one :class:`~robot_rl.ros.node.Node` spinning in a daemon thread; importing this
module imports no DDS or rclpy code until a :class:`RosTeleop` is built.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.interfaces import Teleop, TeleopCommand

#: Default topics (the spacenav node's; robot_rl's teleop node publishes the same).
TWIST_TOPIC = "/spacenav/twist"
JOY_TOPIC = "/spacenav/joy"


class RosTeleop(Teleop):
    """The newest teleop command from ROS 2 topics (a remote keyboard, gamepad or SpaceMouse).

    Two message layouts are understood:

    * robot_rl's teleop node (default): the twist is the EE twist in m/s and rad/s, base frame;
      the joy carries the gripper in ``axes[6]`` (-1: unchanged) and the buttons of
      :data:`robot_rl.ros.convert.JOY_BUTTONS` (gripper close, gripper open, engaged, success,
      failure, reset), exactly as :func:`robot_rl.ros.convert.teleop_msgs` writes them.
    * ``spacenav_compat=True``, the real ``spacenav`` node: its joy has 6 axes (x, y, z, roll,
      pitch, yaw deflections normalised to about [-1, 1] by its ``full_scale``) and 2 buttons.
      HIL-SERL's SpaceMouse intervention semantics apply (``SpacemouseIntervention`` in
      rail-berkeley/hil-serl ``serl_robot_infra``): the twist is ``axes[:3] * max_linear_m_s``
      and ``axes[3:6] * max_angular_rad_s`` (the twist topic is not used: its scale is a
      parameter of the spacenav node we cannot know); the human is *engaged* while the puck is
      deflected beyond ``deadzone`` or a button is held; the left button (0) held asks for the
      gripper closed (0.0), the right button (1) held for it open (1.0); there are no
      success / failure / reset buttons (mark those with the keyboard).

    Events are never lost between two :meth:`read` calls, however slowly the caller reads:
    ``success``, ``failure`` and ``reset`` are True in one read if any joy message since the
    previous read had them, and ``gripper`` is the newest non-None opening asked for since then.
    ``twist`` and ``engaged`` are the newest message's; when nothing has arrived yet or the newest
    message is older than ``stale_after_s`` (publisher gone, network down) the command is a zero
    twist with ``engaged=False``, so a lost connection hands control back to the policy.

    Args:
        twist_topic: ``geometry_msgs/Twist`` topic.
        joy_topic: ``sensor_msgs/Joy`` topic.
        stale_after_s: age in seconds after which the newest message no longer counts.
        spacenav_compat: read the real spacenav node's layout (see above).
        max_linear_m_s: EE speed at full puck deflection, m/s (``spacenav_compat`` only).
        max_angular_rad_s: EE rotation rate at full deflection, rad/s (``spacenav_compat`` only).
        deadzone: normalised deflection below which the puck counts as untouched
            (``spacenav_compat`` only).
        node_name: name of the client's node.
        backend: ROS backend (``"dds"``, ``"rclpy"``, None for the default choice).
        domain_id: ROS domain ID (default ``ROS_DOMAIN_ID``).

    Raises:
        ConfigError: a non-positive ``stale_after_s`` or speed, or an unusable ROS backend.

    Example:
        >>> from robot_rl.drivers.teleop import make_teleop
        >>> teleop = make_teleop("ros", stale_after_s=0.3)     # doctest: +SKIP
        >>> teleop.read().twist                                 # doctest: +SKIP
        array([0., 0., 0., 0., 0., 0.])
    """

    def __init__(self, twist_topic: str = TWIST_TOPIC, joy_topic: str = JOY_TOPIC, *, stale_after_s: float = 0.5,
                 spacenav_compat: bool = False, max_linear_m_s: float = 0.1, max_angular_rad_s: float = 0.5,
                 deadzone: float = 0.05, node_name: str = "ros_teleop_client", backend: str | None = None,
                 domain_id: int | None = None) -> None:
        if not stale_after_s > 0:
            raise ConfigError(f"stale_after_s must be positive seconds, got {stale_after_s}.")
        if not (max_linear_m_s > 0 and max_angular_rad_s > 0):
            raise ConfigError(f"max_linear_m_s and max_angular_rad_s must be positive, got {max_linear_m_s}, {max_angular_rad_s}.")
        from robot_rl.ros.node import Node

        self.stale_after_s = float(stale_after_s)
        self.spacenav_compat = bool(spacenav_compat)
        self.max_linear_m_s, self.max_angular_rad_s, self.deadzone = float(max_linear_m_s), float(max_angular_rad_s), float(deadzone)
        self._lock = threading.Lock()
        self._twist: Any = None
        self._joy: Any = None
        self._last_rx_s = -np.inf  # monotonic time of the newest message
        self._pending: dict[str, Any] = {"success": False, "failure": False, "reset": False, "gripper": None}
        self._closed = False
        self.node = Node(node_name, backend=backend, domain_id=domain_id)
        self._twist_sub = self.node.create_subscription("geometry_msgs/msg/Twist", twist_topic, self._on_twist)
        self._joy_sub = self.node.create_subscription("sensor_msgs/msg/Joy", joy_topic, self._on_joy)
        self._thread = self.node.spin_in_thread()

    # -- callbacks (spin thread) ------------------------------------------------------------------

    def _on_twist(self, msg: Any) -> None:
        with self._lock:
            self._twist, self._last_rx_s = msg, time.monotonic()

    def _on_joy(self, msg: Any) -> None:
        cmd = self._from_msgs(self._twist, msg)
        with self._lock:
            self._joy, self._last_rx_s = msg, time.monotonic()
            for name in ("success", "failure", "reset"):
                self._pending[name] |= getattr(cmd, name)
            if cmd.gripper is not None:
                self._pending["gripper"] = cmd.gripper

    def _from_msgs(self, twist: Any, joy: Any) -> TeleopCommand:
        if not self.spacenav_compat:
            from robot_rl.ros.convert import teleop_from_msgs

            return teleop_from_msgs(twist, joy)
        if joy is None:
            return TeleopCommand(twist=np.zeros(6))
        axes = np.zeros(6)
        n = min(6, len(joy.axes))
        axes[:n] = np.clip(np.asarray(joy.axes[:n], np.float64), -1.0, 1.0)
        buttons = [bool(b) for b in joy.buttons[:2]] + [False, False]
        moved = bool(np.abs(axes).max() > self.deadzone)
        axes[np.abs(axes) <= self.deadzone] = 0.0
        gripper = 0.0 if buttons[0] else (1.0 if buttons[1] else None)
        twist_out = np.concatenate([axes[:3] * self.max_linear_m_s, axes[3:] * self.max_angular_rad_s])
        return TeleopCommand(twist=twist_out, gripper=gripper, engaged=moved or buttons[0] or buttons[1])

    # -- Teleop -------------------------------------------------------------------------------------

    def read(self) -> TeleopCommand:
        """The newest command (never blocks); see the class docstring for staleness and events.

        Raises:
            ConfigError: the teleop was closed.
        """
        if self._closed:
            raise ConfigError("RosTeleop.read() after close(); build a new one.")
        with self._lock:
            twist, joy, age_s = self._twist, self._joy, time.monotonic() - self._last_rx_s
            pending = self._pending
            self._pending = {"success": False, "failure": False, "reset": False, "gripper": None}
        if age_s > self.stale_after_s:
            current = TeleopCommand(twist=np.zeros(6))
        else:
            current = self._from_msgs(twist, joy)
        return TeleopCommand(twist=current.twist, gripper=pending["gripper"], engaged=current.engaged,
                             success=pending["success"], failure=pending["failure"], reset=pending["reset"])

    def wait_for_publisher(self, timeout_s: float = 5.0) -> bool:
        """Block until a message arrived on either topic or ``timeout_s`` seconds passed; True if one did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._last_rx_s > -np.inf:
                    return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        """Stop the client's node. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.node.shutdown()
        self._thread.join(timeout=2.0)

    def __enter__(self) -> RosTeleop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
