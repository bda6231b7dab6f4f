"""Universal Robots (CB3 / e-Series) backend of :class:`~robot_rl.interfaces.Arm`, through ur_rtde.

ur_rtde (https://sdurobotics.gitlab.io/ur_rtde/, PyPI ``ur-rtde``) talks RTDE (port 30004) to
the controller and uploads a control script. Each :meth:`URArm.command` clips the target into the
workspace box and to ``max_ee_speed_m_s``, then streams ``servoL`` set-points that ramp from the
current TCP pose to the target (tool pointing down, given yaw) at ``servo_hz`` for one control
period, so it returns at the next control tick (the Arm contract).

Connecting safely. ur_rtde has no connect timeout: a host that does not answer blocks it for
134 s, a host that accepts and never answers blocks it forever, and it holds Python's GIL while
it waits (measured here: a watchdog *thread* never gets to run). So before ur_rtde is called,
:func:`rtde_handshake` does RTDE's first exchange itself (``RTDE_REQUEST_PROTOCOL_VERSION``) with
socket timeouts, and the dashboard server (port 29999) must send its greeting: a missing, silent
or non-UR host is a :class:`~robot_rl.errors.DeviceUnavailableError` within
``connect_timeout_s``; only a host that speaks RTDE reaches ur_rtde.

Frames: poses are in the controller's ``base`` frame (ur_description's ``base``, which is
``base_link`` turned 180 degrees about z), positions in metres, orientations as quaternions xyzw
(ur_rtde's axis-angle vectors are converted with scipy); the TCP is the flange plus
``tcp_offset`` (``setTcp``). No gripper is driven: the state reports an opening of 1.0 and the
first gripper command that asks for something else is logged once.

Tested here: the connection checks (no host, silent host). Untested: the control and state
path, which needs URSim (a Docker image) or a robot; no RTDE simulator exists on PyPI.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from dataclasses import dataclass

import numpy as np

from robot_rl.errors import ConfigError, DeviceUnavailableError
from robot_rl.interfaces import Arm, ArmCommand, ArmState, WorkspaceBox

#: RTDE's TCP port, and the dashboard server's.
RTDE_PORT = 30004
DASHBOARD_PORT = 29999
#: RTDE package type ``V`` (RTDE_REQUEST_PROTOCOL_VERSION) and the protocol version asked for.
_RTDE_REQUEST_PROTOCOL_VERSION = 86
_RTDE_PROTOCOL_VERSION = 2
#: "Home" with the tool pointing down, radians (shoulder_pan ... wrist_3).
UR_HOME_Q = (0.0, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0)

log = logging.getLogger(__name__)


@dataclass
class URConfig:
    """Settings of the UR backend."""

    host: str = "192.168.1.102"
    """controller host name or address."""
    control_hz: float = 10.0
    """rate of command() (each call returns at the next tick)."""
    workspace_low: tuple[float, float, float] = (-0.30, -0.65, 0.05)
    """workspace box lower corner, metres, controller base frame (the TCP never leaves the box)."""
    workspace_high: tuple[float, float, float] = (0.30, -0.25, 0.45)
    """workspace box upper corner, metres, controller base frame."""
    max_ee_speed_m_s: float = 0.25
    """a target further than this times the control period from the current TCP is pulled in."""
    home_q: tuple[float, ...] = UR_HOME_Q
    """joint positions of home(), radians."""
    home_speed_rad_s: float = 0.5
    """joint speed of home(), rad/s."""
    home_acceleration_rad_s2: float = 0.5
    """joint acceleration of home(), rad/s^2."""
    connect_timeout_s: float = 3.0
    """give up connecting after this long, seconds (< 5 keeps a missing robot a quick error)."""
    tcp_offset: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    """TCP pose in the flange frame, [x, y, z (m), rx, ry, rz (axis-angle rad)], sent with setTcp."""
    servo_hz: float = 125.0
    """rate of the servoL set-points within one control period, Hz (the controller runs 125 or 500 Hz)."""
    servo_lookahead_s: float = 0.1
    """servoL lookahead time in [0.03, 0.2] s (smooths the trajectory)."""
    servo_gain: float = 300.0
    """servoL proportional gain in [100, 2000]."""


def _connect(host: str, port: int, deadline: float, what: str) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=max(0.05, deadline - time.monotonic()))
    except OSError as e:
        raise DeviceUnavailableError(
            f"no UR {what} at {host}:{port} ({e}). Is the controller on and reachable from this PC, "
            "and (e-Series) in Remote Control mode?") from e


def _recv_exactly(sock: socket.socket, n: int, deadline: float, host: str, what: str) -> bytes:
    data = b""
    while len(data) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(n - len(data))
        except (socket.timeout, TimeoutError):
            chunk = None
        except OSError as e:
            raise DeviceUnavailableError(f"{host}: the UR {what} connection failed ({e}).") from e
        if chunk is None or time.monotonic() > deadline:
            raise DeviceUnavailableError(
                f"{host} accepted the connection but its UR {what} did not answer in time; is it a UR "
                "controller (URSim or a robot), and is the address right?")
        if chunk == b"":
            raise DeviceUnavailableError(f"{host} closed the UR {what} connection without answering; is it a UR controller?")
        data += chunk
    return data


def rtde_handshake(host: str, timeout_s: float) -> None:
    """Check that ``host`` is a UR controller: RTDE protocol handshake (v2) and dashboard greeting.

    Args:
        host: controller host name or address.
        timeout_s: total time allowed, seconds.

    Raises:
        DeviceUnavailableError: nothing listens, the host is silent or answers something else.
    """
    deadline = time.monotonic() + timeout_s
    with _connect(host, RTDE_PORT, deadline, "RTDE interface") as sock:
        sock.sendall(struct.pack(">HBH", 5, _RTDE_REQUEST_PROTOCOL_VERSION, _RTDE_PROTOCOL_VERSION))
        size, kind = struct.unpack(">HB", _recv_exactly(sock, 3, deadline, host, "RTDE interface"))
        if kind != _RTDE_REQUEST_PROTOCOL_VERSION or size < 4:
            raise DeviceUnavailableError(f"{host}:{RTDE_PORT} answered something that is not RTDE (package type {kind}).")
        accepted = _recv_exactly(sock, size - 3, deadline, host, "RTDE interface")[0]
        if not accepted:
            raise DeviceUnavailableError(f"the UR controller at {host} refused RTDE protocol version 2; "
                                         "ur_rtde needs Polyscope >= 3.4 / 5.0.")
    with _connect(host, DASHBOARD_PORT, deadline, "dashboard server") as sock:
        greeting = b""
        while b"\n" not in greeting:
            greeting += _recv_exactly(sock, 1, deadline, host, "dashboard server")
        if b"Universal Robots" not in greeting and b"Connected" not in greeting:
            raise DeviceUnavailableError(f"{host}:{DASHBOARD_PORT} greeted with {greeting!r}, not the UR dashboard server.")


def _pose_to_ur(position: np.ndarray, quat_xyzw: np.ndarray) -> list[float]:
    from scipy.spatial.transform import Rotation

    return [*map(float, position), *map(float, Rotation.from_quat(quat_xyzw).as_rotvec())]


class URArm(Arm):
    """A UR arm behind :class:`~robot_rl.interfaces.Arm` (see the module docstring).

    Args:
        config: :class:`URConfig`; :meth:`connect` is called here.

    Attributes:
        joint_names: the six ur_description joint names.

    Raises:
        DeviceUnavailableError: ur_rtde is not installed, or the controller is missing, silent,
            not a UR, or refuses the control script (not in Remote Control mode).
        ConfigError: bad settings.
    """

    joint_names = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint",
                   "wrist_3_joint"]

    def __init__(self, config: URConfig | None = None) -> None:
        self.config = c = config or URConfig()
        if c.control_hz <= 0 or c.max_ee_speed_m_s <= 0 or c.servo_hz < c.control_hz or c.connect_timeout_s <= 0:
            raise ConfigError("control_hz, max_ee_speed_m_s and connect_timeout_s must be > 0 and servo_hz >= control_hz.")
        if len(c.tcp_offset) != 6 or len(c.home_q) != 6:
            raise ConfigError(f"tcp_offset needs 6 values [x, y, z, rx, ry, rz] and home_q 6 joint angles; got "
                              f"{c.tcp_offset} and {c.home_q}.")
        self.control_hz = c.control_hz
        self.workspace = WorkspaceBox(tuple(c.workspace_low), tuple(c.workspace_high))
        self.control = self.receive = None
        self._gripper_logged = False
        self._next_tick = time.monotonic()
        self.connect()

    def connect(self) -> None:
        """Check the controller (:func:`rtde_handshake`), then open ur_rtde's receive and control interfaces."""
        c = self.config
        try:
            import rtde_control
            import rtde_receive
        except ImportError as e:
            raise DeviceUnavailableError("the UR backend needs ur_rtde: pip install ur-rtde") from e
        rtde_handshake(c.host, c.connect_timeout_s)
        try:
            self.receive = rtde_receive.RTDEReceiveInterface(c.host)
            self.control = rtde_control.RTDEControlInterface(c.host)
        except RuntimeError as e:
            self.close()
            raise DeviceUnavailableError(f"ur_rtde could not connect to {c.host}: {e}. On an e-Series put the robot in "
                                         "Remote Control mode; make sure no other program holds the RTDE registers.") from e
        if any(c.tcp_offset):
            self.control.setTcp(list(map(float, c.tcp_offset)))

    # ------------------------------------------------------------------ Arm API
    def state(self) -> ArmState:
        """Joint, TCP and force state (see :class:`~robot_rl.interfaces.ArmState`); gripper opening 1.0."""
        from scipy.spatial.transform import Rotation

        r = self.receive
        pose = np.asarray(r.getActualTCPPose(), np.float64)
        return ArmState(q=np.asarray(r.getActualQ(), np.float64), dq=np.asarray(r.getActualQd(), np.float64),
                        ee_position=pose[:3].copy(), ee_quaternion=Rotation.from_rotvec(pose[3:]).as_quat(),
                        ee_velocity=np.asarray(r.getActualTCPSpeed(), np.float64),
                        wrench=np.asarray(r.getActualTCPForce(), np.float64), gripper=1.0, stamp=time.time())

    def command(self, cmd: ArmCommand) -> ArmCommand:
        """Servo towards ``cmd`` (clipped to the box and the speed limit) until the next control tick.

        Returns:
            The command actually sent (gripper always 1.0: no gripper is driven).
        """
        c = self.config
        current = np.asarray(self.receive.getActualTCPPose(), np.float64)[:3]
        target = self.workspace.clip(cmd.ee_target_position)
        step = target - current
        max_step = c.max_ee_speed_m_s / self.control_hz
        norm = float(np.linalg.norm(step))
        if norm > max_step:
            target = self.workspace.clip(current + step * (max_step / norm))
        if cmd.gripper < 0.99 and not self._gripper_logged:
            self._gripper_logged = True
            log.warning("URArm drives no gripper; gripper commands are ignored (opening reported as 1.0).")
        pose = _pose_to_ur(target, np.asarray(cmd.ee_target_quaternion, np.float64))
        n = max(1, int(round(c.servo_hz / self.control_hz)))
        dt = 1.0 / c.servo_hz
        for k in range(1, n + 1):
            alpha = k / n
            setpoint = [*(current + alpha * (target - current)), *pose[3:]]
            t_start = self.control.initPeriod()
            self.control.servoL(setpoint, 0.0, 0.0, dt, c.servo_lookahead_s, c.servo_gain)
            self.control.waitPeriod(t_start)
        self._next_tick = max(self._next_tick + 1.0 / self.control_hz, time.monotonic())
        time.sleep(max(0.0, self._next_tick - time.monotonic()))
        return ArmCommand(ee_target_position=target, ee_target_quaternion=np.asarray(cmd.ee_target_quaternion, np.float64), gripper=1.0)

    def home(self) -> None:
        """Move to ``home_q`` (blocking moveJ)."""
        c = self.config
        self.control.servoStop()
        self.control.moveJ(list(map(float, c.home_q)), c.home_speed_rad_s, c.home_acceleration_rad_s2)
        self._next_tick = time.monotonic()

    def stop(self) -> None:
        """End servoing (the robot decelerates and holds its pose). Never raises."""
        if self.control is not None:
            try:
                self.control.servoStop()
            except Exception:  # noqa: BLE001 - stopping must never raise during shutdown
                pass

    def close(self) -> None:
        """Stop, end the control script and disconnect. Idempotent."""
        self.stop()
        for iface, calls in ((self.control, ("stopScript", "disconnect")), (self.receive, ("disconnect",))):
            for name in calls:
                try:
                    if iface is not None:
                        getattr(iface, name)()
                except Exception:  # noqa: BLE001 - best effort on the way out
                    pass
        self.control = self.receive = None
