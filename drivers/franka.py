"""Franka Emika Panda / FR3 backend of :class:`~robot_rl.interfaces.Arm`, through franky-control.

franky (https://github.com/TimSchneider42/franky) wraps libfranka: Cartesian motions with
Ruckig trajectory generation that a newer motion may preempt, which is what a 10 Hz end-effector
delta policy needs. Each :meth:`FrankaArm.command` clips the target into the workspace box and
to ``max_ee_speed_mps``, sends an absolute Cartesian target (tool pointing down, given yaw)
asynchronously, and returns at the next control tick, so the policy runs at ``control_hz``.

libfranka hangs forever when a host accepts the connection and never answers (see
../shared/HARDWARE_NOTES.md), so :meth:`FrankaArm.connect` checks the TCP port first and
runs the connection in a watchdog thread: a missing or silent robot is a
:class:`~robot_rl.errors.DeviceUnavailableError` within ``connect_timeout_s``.

Frames: positions in metres and orientations as quaternions xyzw, in the robot base frame
(``panda_link0``, REP 103: x forward, z up); the end effector is franky's EE frame (the flange
plus the configured EE transform, the TCP between the fingertips by default on a Panda hand).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError, DeviceUnavailableError
from robot_rl.interfaces import Arm, ArmCommand, ArmState, WorkspaceBox

#: libfranka's command port (TCP); its real-time state stream uses UDP.
FCI_PORT = 1337
#: The Panda's "ready" pose, radians.
READY_Q = (0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4)


@dataclass
class FrankaConfig:
    """Settings of the Franka backend."""

    host: str = "172.16.0.2"
    """robot (FCI) host name or address."""
    control_hz: float = 10.0
    """rate of command() (each call returns at the next tick)."""
    workspace_low: tuple[float, float, float] = (0.30, -0.25, 0.02)
    """workspace box lower corner, metres, base frame (the EE never leaves the box)."""
    workspace_high: tuple[float, float, float] = (0.70, 0.25, 0.45)
    """workspace box upper corner, metres, base frame."""
    max_ee_speed_mps: float = 0.3
    """a target further than this times the control period from the current EE is pulled in."""
    home_q: tuple[float, ...] = READY_Q
    """joint positions of home(), radians."""
    relative_dynamics_factor: float = 0.15
    """scales franky's velocity, acceleration and jerk limits (0, 1]."""
    connect_timeout_s: float = 5.0
    """give up connecting after this long (libfranka itself can hang forever)."""
    realtime: bool = True
    """require a real-time kernel (libfranka's default for real robots); False for simulators."""
    gripper: bool = True
    """drive the Franka Hand."""
    gripper_speed_mps: float = 0.1
    """finger speed, m/s."""
    gripper_force_n: float = 20.0
    """grasp force, N."""


def _tcp_precheck(host: str, port: int, timeout_s: float) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as e:
        raise DeviceUnavailableError(
            f"no Franka control interface at {host}:{port} ({e}). Is the robot on, FCI activated in Desk, "
            "and the host reachable from this PC?") from e


def _with_timeout(fn, timeout_s: float, what: str) -> Any:
    """Run ``fn()`` in a daemon thread; raise DeviceUnavailableError if it does not return in time."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, name=f"robot_rl-{what}", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise DeviceUnavailableError(f"{what} did not answer within {timeout_s:.1f} s (the host accepts "
                                     "connections but does not speak libfranka's protocol?)")
    if "error" in box:
        raise DeviceUnavailableError(f"{what} failed: {box['error']}") from box["error"]
    return box["value"]


class FrankaArm(Arm):
    """A Franka arm behind :class:`~robot_rl.interfaces.Arm` (see the module docstring).

    Args:
        config: :class:`FrankaConfig`; ``connect()`` is called here.

    Raises:
        DeviceUnavailableError: franky is not installed, or the robot is unreachable or silent.
        ConfigError: bad settings.
    """

    def __init__(self, config: FrankaConfig | None = None) -> None:
        self.config = c = config or FrankaConfig()
        if c.control_hz <= 0 or c.max_ee_speed_mps <= 0 or not 0 < c.relative_dynamics_factor <= 1:
            raise ConfigError("control_hz and max_ee_speed_mps must be > 0 and relative_dynamics_factor in (0, 1]")
        self.control_hz = c.control_hz
        self.workspace = WorkspaceBox(tuple(c.workspace_low), tuple(c.workspace_high))
        self.robot = self.gripper = None
        self._gripper_target: float | None = None
        self._last_target: tuple[np.ndarray, np.ndarray] | None = None  # position (m), quaternion xyzw
        self._next_tick = time.monotonic()
        self._max_width = 0.08
        self.connect()

    def connect(self) -> None:
        """Connect to the robot (and hand) with a watchdog; see the class docstring for errors."""
        try:
            import franky
        except ImportError as e:
            raise DeviceUnavailableError("the Franka backend needs franky: pip install franky-control") from e
        c = self.config
        _tcp_precheck(c.host, FCI_PORT, c.connect_timeout_s)
        rt = franky.RealtimeConfig.Enforce if c.realtime else franky.RealtimeConfig.Ignore
        self.robot = _with_timeout(lambda: franky.Robot(c.host, realtime_config=rt), c.connect_timeout_s,
                                   f"Franka at {c.host}")
        self.robot.relative_dynamics_factor = c.relative_dynamics_factor
        if c.gripper:
            self.gripper = _with_timeout(lambda: franky.Gripper(c.host), c.connect_timeout_s, f"Franka Hand at {c.host}")
            self._max_width = float(self.gripper.max_width) or 0.08
        self._franky = franky

    # ------------------------------------------------------------------ Arm API
    def state(self) -> ArmState:
        """Joint, end-effector and gripper state (see :class:`~robot_rl.interfaces.ArmState`)."""
        js = self.robot.current_joint_state
        cs = self.robot.current_cartesian_state
        pose = cs.pose.end_effector_pose
        twist = cs.velocity.end_effector_twist
        wrench = np.asarray(self.robot.state.O_F_ext_hat_K, dtype=np.float64)
        opening = float(np.clip(self.gripper.width / self._max_width, 0.0, 1.0)) if self.gripper is not None else 1.0
        return ArmState(q=np.asarray(js.position, np.float64), dq=np.asarray(js.velocity, np.float64),
                        ee_position=np.asarray(pose.translation, np.float64),
                        ee_quaternion=np.asarray(pose.quaternion, np.float64),
                        ee_velocity=np.concatenate([np.asarray(twist.linear), np.asarray(twist.angular)]).astype(np.float64),
                        wrench=wrench, gripper=opening, stamp=time.time())

    def command(self, cmd: ArmCommand) -> ArmCommand:
        """Send ``cmd`` (clipped to the box and the speed limit) and return at the next control tick.

        Returns:
            The command actually sent.
        """
        current = np.asarray(self.robot.current_cartesian_state.pose.end_effector_pose.translation, np.float64)
        target = self.workspace.clip(cmd.ee_target_position)
        step = target - current
        max_step = self.config.max_ee_speed_mps / self.control_hz
        norm = float(np.linalg.norm(step))
        if norm > max_step:
            target = self.workspace.clip(current + step * (max_step / norm))
        last = self._last_target
        quat = np.asarray(cmd.ee_target_quaternion, np.float64)
        quat = quat / np.linalg.norm(quat)
        if last is None or np.linalg.norm(target - last[0]) > 5e-4 or 1.0 - abs(float(quat @ last[1])) > 1e-7:
            self._move(target, quat)  # an unchanged target is not re-planned
        sent = ArmCommand(ee_target_position=target, ee_target_quaternion=quat,
                          gripper=float(np.clip(cmd.gripper, 0.0, 1.0)))
        self._command_gripper(sent.gripper)
        self._next_tick = max(self._next_tick + 1.0 / self.control_hz, time.monotonic())
        time.sleep(max(0.0, self._next_tick - time.monotonic()))
        return sent

    def _move(self, target: np.ndarray, quat_xyzw: np.ndarray) -> None:
        """Send an absolute Cartesian target asynchronously (it preempts the previous one).

        Ruckig refuses a preemption now and then (franky's "Motion planner failed", e.g. while the
        previous motion ends); the robot is then recovered and the target sent once more.
        """
        f = self._franky
        motion = f.CartesianMotion(f.Affine(target, quat_xyzw), f.ReferenceType.Absolute)
        try:
            self.robot.move(motion, asynchronous=True)
        except RuntimeError:
            try:  # let the refused motion's predecessor settle (it reports its own error, if any)
                self.robot.join_motion(timeout=1.0 / self.control_hz)
            except Exception:  # noqa: BLE001 - the retry below is what matters
                pass
            if self.robot.has_errors:
                self.robot.recover_from_errors()
            self.robot.move(motion, asynchronous=True)
        self._last_target = (target.copy(), quat_xyzw.copy())

    def _command_gripper(self, opening: float) -> None:
        if self.gripper is None:
            return
        target = 1.0 if opening > 0.5 else 0.0  # the Franka Hand: open, or grasp with force
        if target == self._gripper_target:
            return
        self._gripper_target = target
        c = self.config
        if target:
            self.gripper.move_async(self._max_width, c.gripper_speed_mps)
        else:
            self.gripper.grasp_async(0.0, c.gripper_speed_mps, c.gripper_force_n, epsilon_outer=1.0)

    def home(self) -> None:
        """Move to ``home_q`` (blocking) and open the gripper."""
        f = self._franky
        self.robot.move(f.JointMotion(list(self.config.home_q)))
        self._last_target = None
        if self.gripper is not None:
            self._gripper_target = 1.0
            self.gripper.move(self._max_width, self.config.gripper_speed_mps)
        self._next_tick = time.monotonic()

    def stop(self) -> None:
        """Stop the current motion (the robot holds its pose)."""
        if self.robot is not None:
            try:
                self.robot.stop()
            except Exception:  # noqa: BLE001 - stopping must never raise during shutdown
                pass

    def close(self) -> None:
        """Stop and drop the connection. Idempotent."""
        self.stop()
        self.robot = self.gripper = None
