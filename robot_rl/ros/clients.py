"""Topic clients for any ROS 2 device: the ROS backends of the robot_rl ``Arm``, ``Camera`` and
``Teleop`` interfaces (:mod:`robot_rl.interfaces`).

* :class:`RosArm` caches the newest ``/joint_states`` + ``/arm/ee_pose`` + ``/arm/ee_twist`` +
  ``/arm/wrench`` of one stamp; ``command()`` publishes the pose target on
  ``/arm/equilibrium_pose`` and the gripper on ``/arm/gripper_cmd``, keeps re-sending them at
  ``command_rate_hz`` (so the arm node's 0.1 s command timeout holds the arm only when this
  process stops), and returns once a state newer than the command has arrived and one control
  period has passed;
* :class:`RosCamera` caches the newest ``/camera/<cam>/color/image_raw`` (+ ``camera_info``);
  ``read()`` returns the newest frame no older than the arm state it goes with (minus
  ``sync_tolerance_s``): time synchronisation by stamps;
* :class:`RosTeleop` reads ``/spacenav/twist`` (``geometry_msgs/Twist``) and ``/spacenav/joy``
  (``sensor_msgs/Joy``), as published by robot_rl's teleop node (``robot_rl_teleop_node``, any
  device of the teleop registry) or by the real ``spacenav`` node of ``ros-<distro>-spacenav``
  (``spacenav_compat=True``). It is registered as teleop ``"ros"``
  (:mod:`robot_rl.drivers.teleop`), so ``robot-rl actor --teleop ros`` and ``robot-rl train
  --teleop ros`` read a device attached to another machine or process.

The clients of one process share a :class:`RosConnection` (one node spinning in a daemon thread);
:class:`robot_rl.ros.env.RosRobotEnv` builds the env from them. Every wait has a timeout and a
clear error that names the missing topic (stale data is never used silently).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError, DeviceUnavailableError
from robot_rl.interfaces import (Arm, ArmCommand, ArmState, Camera, CameraIntrinsics, Frame, Teleop, TeleopCommand,
                                 WorkspaceBox)
from robot_rl.ros import convert
from robot_rl.ros.node import Node, stamp_to_seconds
from robot_rl.ros.qos import SENSOR_DATA_DEPTH, QoSProfile

log = logging.getLogger(__name__)


class RosConnection:
    """One node spinning in a daemon thread, shared by the clients built on it (an env's arm,
    cameras and task), with a condition the clients' callbacks notify.

    Args:
        node_name: name of the client's node.
        namespace: node namespace.

    The ROS domain and discovery range are ROS 2's own variables (``ROS_DOMAIN_ID``,
    ``ROS_AUTOMATIC_DISCOVERY_RANGE``), read by rclpy.
    """

    def __init__(self, node_name: str, namespace: str = "") -> None:
        self.node = Node(node_name, namespace=namespace)
        self.cond = threading.Condition()
        self.thread = self.node.spin_in_thread()

    def notify(self) -> None:
        """Wake :meth:`wait_for` (clients call it from their callbacks)."""
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, predicate: Any, timeout_s: float) -> bool:
        """Block until ``predicate()`` is true (re-checked on every notify) or ``timeout_s`` passed; True if it became true."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.05))
        return True

    def close(self) -> None:
        """Stop the node (and its spin thread). Idempotent."""
        self.node.shutdown()


class RosArm(Arm):
    """Arm over the arm node's topics (see the module docstring).

    ``home_position_m`` and ``workspace`` have no defaults here: they belong to the setup
    (:class:`~robot_rl.ros.env.RosRobotEnv` takes them from the sim task or a calibration file).

    Args:
        connection: the shared node.
        control_hz: rate of :meth:`command` (one control period per call), Hz.
        workspace: box (base frame, metres) targets are clipped into before sending (the arm
            node enforces its own box as well).
        home_position_m: TCP home position for :meth:`home` when not homed by a sim reset, metres,
            base frame.
        command_rate_hz: re-send rate of the current target, Hz (must beat the arm node's
            command timeout: 50 Hz against 0.1 s).
        stale_after_s: a newest state older than this is an error, seconds.
        state_timeout_s: how long :meth:`command` and the first :meth:`state` wait, seconds.
        home_by_reset: :meth:`home` does nothing because the sim's reset homes the arm.
    """

    def __init__(self, connection: RosConnection, control_hz: float, workspace: WorkspaceBox, home_position_m: Sequence[float],
                 *, command_rate_hz: float = 50.0, stale_after_s: float = 1.0, state_timeout_s: float = 5.0,
                 home_by_reset: bool = True) -> None:
        self.c, self.control_hz, self.workspace = connection, float(control_hz), workspace
        self.stale_after_s, self.state_timeout_s = stale_after_s, state_timeout_s
        self.home_position_m, self.home_by_reset = np.asarray(home_position_m, np.float64), home_by_reset
        node = connection.node
        self._parts: dict[str, dict[float, Any]] = {k: {} for k in ("joint_states", "ee_pose", "ee_twist", "wrench")}
        self._state: ArmState | None = None
        self._state_received = 0.0
        self._lock = threading.Lock()
        for key, typename, topic in (("joint_states", "sensor_msgs/msg/JointState", convert.JOINT_STATES),
                                     ("ee_pose", "geometry_msgs/msg/PoseStamped", convert.EE_POSE),
                                     ("ee_twist", "geometry_msgs/msg/TwistStamped", convert.EE_TWIST),
                                     ("wrench", "geometry_msgs/msg/WrenchStamped", convert.WRENCH)):
            node.create_subscription(typename, topic, lambda m, k=key: self._on_part(k, m), 50)
        self._pose_pub = node.create_publisher("geometry_msgs/msg/PoseStamped", convert.POSE_CMD)
        self._gripper_pub = node.create_publisher("std_msgs/msg/Float64", convert.GRIPPER_CMD)
        self._target: ArmCommand | None = None
        self._next_tick = 0.0
        node.create_timer(1.0 / command_rate_hz, self._resend)

    # -- receiving ----------------------------------------------------------------------------------

    def _on_part(self, key: str, msg: Any) -> None:
        stamp = stamp_to_seconds(msg.header.stamp)
        with self._lock:
            parts = self._parts[key]
            parts[stamp] = msg
            while len(parts) > 20:
                parts.pop(next(iter(parts)))
            complete = [s for s in self._parts["joint_states"] if s in self._parts["ee_pose"]]
            if not complete:
                return
            newest = max(complete)
            if self._state is not None and newest <= self._state.stamp:
                return
            self._state = convert.arm_state_from_msgs(
                self._parts["joint_states"][newest], self._parts["ee_pose"][newest],
                self._parts["ee_twist"].get(newest), self._parts["wrench"].get(newest))
            self._state_received = time.time()
        self.c.notify()

    def wait_for_state_after(self, t: float, timeout_s: float | None = None) -> ArmState:
        """Block until a state stamped after ``t`` (seconds, wall clock) arrived; return it.

        Raises:
            DeviceUnavailableError: none within ``timeout_s`` (default ``state_timeout_s``).
        """
        timeout_s = self.state_timeout_s if timeout_s is None else timeout_s
        if not self.c.wait_for(lambda: self._state is not None and self._state.stamp > t, timeout_s):
            have = "never received" if self._state is None else f"newest is {time.time() - self._state.stamp:.2f} s old"
            raise DeviceUnavailableError(
                f"no arm state on {convert.JOINT_STATES} + {convert.EE_POSE} within {timeout_s:.1f} s ({have}); "
                "is the arm node or sim node running on this ROS domain (ROS_DOMAIN_ID) and active?")
        return self._state

    def state(self) -> ArmState:
        """The newest complete arm state (waits for the first one).

        Raises:
            DeviceUnavailableError: no state yet within ``state_timeout_s``, or the newest is
                older than ``stale_after_s`` (the arm node stopped publishing).
        """
        if self._state is None:
            return self.wait_for_state_after(-np.inf)
        age = time.time() - self._state_received
        if age > self.stale_after_s:
            raise DeviceUnavailableError(
                f"arm state is stale: nothing new on {convert.JOINT_STATES} for {age:.2f} s (limit {self.stale_after_s} s); "
                "the arm node stopped publishing or was deactivated.")
        return self._state

    # -- commanding ---------------------------------------------------------------------------------

    def _send(self, cmd: ArmCommand) -> None:
        now = time.time()
        self._gripper_pub.publish(convert.gripper_command_msg(cmd.gripper))
        self._pose_pub.publish(convert.pose_command_msg(cmd, now))

    def _resend(self) -> None:
        target = self._target
        if target is not None:
            self._send(target)

    def command(self, cmd: ArmCommand) -> ArmCommand:
        """Send a target for one control period and return when it has been applied (see class doc).

        Args:
            cmd: TCP target (metres, base frame; clipped into :attr:`workspace`), tool yaw (rad),
                gripper opening in [0, 1].

        Returns:
            The command sent, after clipping.

        Raises:
            DeviceUnavailableError: no arm state newer than the command within ``state_timeout_s``.
        """
        target = ArmCommand(ee_target_position=self.workspace.clip(cmd.ee_target_position),
                            ee_target_quaternion=np.asarray(cmd.ee_target_quaternion, np.float64),
                            gripper=float(np.clip(cmd.gripper, 0.0, 1.0)))
        sent_at = time.time()
        self._target = target
        self._send(target)
        self._next_tick = max(self._next_tick + 1.0 / self.control_hz, time.monotonic())
        self.wait_for_state_after(sent_at)
        delay = self._next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return target

    def stop_streaming(self) -> None:
        """Stop re-sending the last target (the arm node then holds after its command timeout)."""
        self._target = None

    def home(self) -> None:
        """Move to the home pose: a sim reset does it (``home_by_reset``), else a pose target and a wait."""
        self.stop_streaming()
        if self.home_by_reset:
            return
        start = self.state()
        target = ArmCommand.tool_down(self.workspace.clip(self.home_position_m), 0.0, 1.0)
        deadline = time.monotonic() + 15.0
        while np.linalg.norm(self.state().ee_position - target.ee_target_position) > 0.01:
            if time.monotonic() > deadline:
                raise DeviceUnavailableError(f"arm did not reach home {target.ee_target_position} m within 15 s (from {start.ee_position}).")
            self.command(target)
        self.stop_streaming()

    def stop(self) -> None:
        """Hold: stop sending targets (the arm node holds position after its command timeout)."""
        self.stop_streaming()


class RosCamera(Camera):
    """Camera over the camera (or sim) node's image and camera_info topics.

    Args:
        connection: the shared node.
        name: camera name (topics ``/camera/<name>/color/...``).
        height, width: expected image size in pixels (the observation space); a different
            received size is a ConfigError.
        arm: frames are synchronised to this arm's newest state: :meth:`read` waits for a frame
            stamped no earlier than ``state.stamp - sync_tolerance_s``.
        sync_tolerance_s: allowed camera-behind-arm offset, seconds (0 for the sim node, whose
            frames carry the arm state's stamp).
        timeout_s: how long :meth:`read` waits, seconds.
        qos: subscription QoS: ``"auto"`` (default) subscribes at the first :meth:`read`, waiting
            up to ``timeout_s`` for the image publisher, and matches its reliability (RELIABLE when every publisher is reliable:
            a best-effort subscription to a reliable publisher is best effort, and Fast DDS then
            loses about half of 640x480 frames at 30 Hz, see the README's ROS 2 benchmark; else
            BEST_EFFORT, which matches any publisher); ``"sensor"``, ``"reliable"``, or a
            :class:`~robot_rl.ros.qos.QoSProfile`.
        resize: resize frames of another size to ``(height, width)`` (OpenCV ``INTER_AREA``, as
            HIL-SERL resizes its cameras to 128x128); False makes a size mismatch an error.

    Lost frames are counted, never silent: a gap between consecutive image stamps of more than
    1.5 frame periods (the period is the smallest recent stamp interval) adds the missing frames
    to :attr:`dropped_frames` and logs a warning (at most every 10 s) with the loss so far.
    """

    #: seconds between two warnings about lost frames
    DROP_WARNING_INTERVAL_S = 10.0

    def __init__(self, connection: RosConnection, name: str, height: int, width: int, arm: RosArm | None = None,
                 sync_tolerance_s: float = 0.0, timeout_s: float = 2.0, qos: Any = "auto", resize: bool = True) -> None:
        self.c, self.name, self.arm, self.resize = connection, name, arm, resize
        self.sync_tolerance_s, self.timeout_s = sync_tolerance_s, timeout_s
        self._expected = (int(height), int(width))
        self._frames: deque = deque(maxlen=8)
        self._info: CameraIntrinsics | None = None
        topics = convert.camera_topics(name)
        self.topics = topics
        #: frames received, and frames missing between them (stamp gaps), since construction
        self.received_frames = self.dropped_frames = 0
        self._last_stamp: float | None = None
        self._period_s: float | None = None
        self._last_warning = -np.inf
        self._requested_qos = qos
        self.qos: Any = None
        """the subscription QoS; with ``"auto"`` chosen at the first :meth:`read` (building an env,
        as the learner does for its spaces, waits for no publisher)."""
        if qos != "auto":
            self._subscribe()

    def _subscribe(self) -> None:
        """Choose the QoS (see the class doc) and subscribe to the image and camera_info topics."""
        self.qos = self._choose_qos(self._requested_qos)
        self.c.node.create_subscription("sensor_msgs/msg/Image", self.topics["image"], self._on_image, self.qos)
        self.c.node.create_subscription("sensor_msgs/msg/CameraInfo", self.topics["info"], self._on_info, self.qos)

    def _choose_qos(self, qos: Any) -> Any:
        """The subscription QoS for ``qos`` (see the class doc); ``"reliable"`` is RELIABLE depth 5."""
        if qos == "reliable":
            return QoSProfile(SENSOR_DATA_DEPTH, True)
        if qos != "auto":
            return qos
        deadline = time.monotonic() + self.timeout_s
        reliable = self.c.node.publishers_reliable(self.topics["image"])
        while not reliable and time.monotonic() < deadline:
            time.sleep(0.02)
            reliable = self.c.node.publishers_reliable(self.topics["image"])
        if reliable and all(reliable):
            return QoSProfile(SENSOR_DATA_DEPTH, True)
        if not reliable:
            log.warning("camera %s: no publisher on %s within %.1f s; subscribing best effort (matches any publisher)",
                        self.name, self.topics["image"], self.timeout_s)
        return "sensor"

    def _on_image(self, msg: Any) -> None:
        self._count_gap(stamp_to_seconds(msg.header.stamp))
        self._frames.append(msg)
        self.c.notify()

    def _count_gap(self, stamp: float) -> None:
        """Count frames missing before a frame stamped ``stamp`` seconds (see the class doc)."""
        self.received_frames += 1
        last, self._last_stamp = self._last_stamp, stamp
        if last is None or stamp <= last:  # first frame, or the clock restarted (a sim reset)
            return
        dt = stamp - last
        period = self._period_s
        if period is not None and dt > 1.5 * period:
            self.dropped_frames += int(round(dt / period)) - 1
            now = time.monotonic()
            if now - self._last_warning >= self.DROP_WARNING_INTERVAL_S:
                self._last_warning = now
                total = self.received_frames + self.dropped_frames
                log.warning("camera %s: %d of %d frames on %s lost so far (stamp gaps; QoS %s). Best-effort images "
                            "that large are lost by Fast DDS under load: publish and subscribe them reliable.",
                            self.name, self.dropped_frames, total, self.topics["image"], self.qos)
        # the frame period: the smallest recent interval, relaxed slowly so a rate change is followed
        self._period_s = dt if period is None else min(dt, period * 1.02)

    def _on_info(self, msg: Any) -> None:
        self._info = convert.intrinsics_from_camera_info(msg)

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """From ``camera_info`` once received; before that a placeholder of the expected size."""
        if self._info is not None:
            return self._info
        h, w = self._expected
        return CameraIntrinsics(width=w, height=h, K=np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1.0]]))

    def read(self) -> Frame:
        """The newest frame synchronised to the arm state (see class doc).

        Raises:
            TimeoutError: no such frame within ``timeout_s``.
            ConfigError: the frame size differs from the observation space's.
        """
        if self.qos is None:
            self._subscribe()
        t_min = -np.inf
        if self.arm is not None and self.arm._state is not None:
            t_min = self.arm._state.stamp - self.sync_tolerance_s - 1e-6
        newest = lambda: self._frames[-1] if self._frames else None  # noqa: E731
        ok = self.c.wait_for(lambda: newest() is not None and stamp_to_seconds(newest().header.stamp) >= t_min, self.timeout_s)
        if not ok:
            raise TimeoutError(f"no frame on {self.topics['image']} stamped at or after the arm state within {self.timeout_s} s; "
                               "is the camera (or sim) node publishing, with matching QoS?")
        frame = convert.frame_from_msgs(newest())
        if frame.rgb.shape[:2] != self._expected:
            if not self.resize:
                raise ConfigError(f"camera {self.name} publishes {frame.rgb.shape[1]}x{frame.rgb.shape[0]} images, the env expects "
                                  f"{self._expected[1]}x{self._expected[0]}; set image_size to match the camera node, or resize_images.")
            import cv2

            h, w = self._expected
            frame = Frame(rgb=cv2.resize(frame.rgb, (w, h), interpolation=cv2.INTER_AREA), stamp=frame.stamp, depth=frame.depth)
        return frame


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
        node_name: name of the client's node (its ROS domain is ``ROS_DOMAIN_ID``).

    Raises:
        ConfigError: a non-positive ``stale_after_s`` or speed.

    Example:
        >>> from robot_rl.drivers.teleop import make_teleop
        >>> teleop = make_teleop("ros", stale_after_s=0.3)     # doctest: +SKIP
        >>> teleop.read().twist                                 # doctest: +SKIP
        array([0., 0., 0., 0., 0., 0.])
    """

    def __init__(self, twist_topic: str = TWIST_TOPIC, joy_topic: str = JOY_TOPIC, *, stale_after_s: float = 0.5,
                 spacenav_compat: bool = False, max_linear_m_s: float = 0.1, max_angular_rad_s: float = 0.5,
                 deadzone: float = 0.05, node_name: str = "ros_teleop_client") -> None:
        if not stale_after_s > 0:
            raise ConfigError(f"stale_after_s must be positive seconds, got {stale_after_s}.")
        if not (max_linear_m_s > 0 and max_angular_rad_s > 0):
            raise ConfigError(f"max_linear_m_s and max_angular_rad_s must be positive, got {max_linear_m_s}, {max_angular_rad_s}.")
        self.stale_after_s = float(stale_after_s)
        self.spacenav_compat = bool(spacenav_compat)
        self.max_linear_m_s, self.max_angular_rad_s, self.deadzone = float(max_linear_m_s), float(max_angular_rad_s), float(deadzone)
        self._lock = threading.Lock()
        self._twist: Any = None
        self._joy: Any = None
        self._last_rx_s = -np.inf  # monotonic time of the newest message
        self._pending: dict[str, Any] = {"success": False, "failure": False, "reset": False, "gripper": None}
        self._closed = False
        self.connection = RosConnection(node_name)
        self.node = self.connection.node
        self._twist_sub = self.node.create_subscription("geometry_msgs/msg/Twist", twist_topic, self._on_twist)
        self._joy_sub = self.node.create_subscription("sensor_msgs/msg/Joy", joy_topic, self._on_joy)

    # -- callbacks (spin thread) ------------------------------------------------------------------

    def _on_twist(self, msg: Any) -> None:
        with self._lock:
            self._twist, self._last_rx_s = msg, time.monotonic()
        self.connection.notify()

    def _on_joy(self, msg: Any) -> None:
        cmd = self._from_msgs(self._twist, msg)
        with self._lock:
            self._joy, self._last_rx_s = msg, time.monotonic()
            for name in ("success", "failure", "reset"):
                self._pending[name] |= getattr(cmd, name)
            if cmd.gripper is not None:
                self._pending["gripper"] = cmd.gripper
        self.connection.notify()

    def _from_msgs(self, twist: Any, joy: Any) -> TeleopCommand:
        if not self.spacenav_compat:
            return convert.teleop_from_msgs(twist, joy)
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
        return self.connection.wait_for(lambda: self._last_rx_s > -np.inf, timeout_s)

    def close(self) -> None:
        """Stop the client's node. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.connection.close()

    def __enter__(self) -> RosTeleop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
