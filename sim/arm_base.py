"""What the MuJoCo and PyBullet Pandas share as :class:`~robot_rl.interfaces.Arm`: the constructor's
arguments, checks and state, the damped-least-squares step of the differential IK, the choice of
controller (position or Cartesian impedance) and the simulated wrist force/torque reading."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.interfaces import Arm, WorkspaceBox

from .impedance import CartesianImpedance, ImpedanceConfig
from .kinematics import READY_Q_RAD, DiffIKConfig, control_substeps

#: The arm controllers of both sims.
CONTROLLERS = ("position", "impedance")

if TYPE_CHECKING:
    from .tasks import TableScene


class DiffIKArm(Arm):
    """A simulated Panda commanded in tool-centre-point (TCP) space through differential IK.

    ``command`` runs ``n_substeps = round(1 / (control_hz * sim_dt_s))`` physics steps and, with
    the position controller, re-solves the IK every ``ik_every`` of them; the backends
    (:class:`robot_rl.sim.mujoco.MujocoArm`, :class:`robot_rl.sim.pybullet.PybulletArm`) differ in
    how joint servos track the IK targets. With the impedance controller every physics step applies
    the torque of :class:`~robot_rl.sim.impedance.CartesianImpedance` towards the commanded pose.
    A subclass sets its backend state after this constructor and then ``home_q_rad``.

    Args:
        physics: the scene this arm lives in (shared with cameras and the task).
        workspace: box (base frame, metres) the commanded TCP target is clipped into.
        home_position_m: (3,) TCP position of the home pose, base frame; must be inside ``workspace``.
        home_yaw_rad: tool yaw of the home pose about the base z axis.
        control_hz: command rate; ``1 / control_hz`` must be a whole multiple of the physics step.
        ik: differential-IK gains (``DiffIKConfig()`` when None).
        sim_dt_s: the scene's physics step, seconds.
        controller: ``"position"`` (differential IK on the joint servos) or ``"impedance"``
            (:class:`~robot_rl.sim.impedance.CartesianImpedance` on torque-controlled joints: the
            TCP is pulled towards the commanded pose by a spring whose force is bounded; compliant
            in contact).
        impedance: the :class:`~robot_rl.sim.impedance.ImpedanceConfig` (or a dict of its fields)
            of ``controller="impedance"``; its defaults when None.

    Attributes:
        peak_force_n: largest force magnitude the wrist sensor read during the last control
            period, N: sampled every physics step with the impedance controller (it includes
            impacts, which a rigid contact turns into a one-step impulse: m v / dt), at the end
            of the period with the position controller. Diagnostics; ``ArmState.wrench`` (and
            the env's force limit) is the end-of-period reading.

    Raises:
        ValueError: the control period is not a multiple of the physics step, or the home pose
            is outside the workspace (a subclass raises it too when the home pose is unreachable).
        ConfigError: an unknown controller, an invalid impedance config, or one given with the
            position controller.
    """

    def __init__(self, physics: TableScene, workspace: WorkspaceBox, home_position_m: np.ndarray, home_yaw_rad: float,
                 control_hz: float, ik: DiffIKConfig | None, sim_dt_s: float, controller: str = "position",
                 impedance: ImpedanceConfig | dict | None = None):
        if controller not in CONTROLLERS:
            raise ConfigError(f"controller must be one of {CONTROLLERS}, got {controller!r}")
        if controller == "position" and impedance is not None:
            raise ConfigError("an impedance config was given with controller='position'; pass controller='impedance'")
        self.controller = controller
        self.impedance = CartesianImpedance(ImpedanceConfig.from_any(impedance)) if controller == "impedance" else None
        self.peak_force_n = 0.0
        self.physics = physics
        self.workspace = workspace
        self.control_hz = float(control_hz)
        self.ik = ik if ik is not None else DiffIKConfig()
        self.n_substeps, self.ik_every = control_substeps(self.control_hz, sim_dt_s, self.ik.ik_hz)
        self.home_position_m = np.asarray(home_position_m, dtype=np.float64)
        if not workspace.contains(self.home_position_m):
            raise ValueError(f"home position {self.home_position_m} m is outside the workspace {workspace}")
        self.home_yaw_rad = float(home_yaw_rad)
        self._rhs = np.zeros((6, 9))  # columns: pose error, feed-forward twist, Jacobian
        self._damping_eye = self.ik.damping * np.eye(6)
        self._eye7 = np.eye(7)
        self._wrench_offset = np.zeros(6)
        """(6,) tare of the wrist F/T reading (force N, torque N·m about the TCP, base frame)."""

    # ------------------------------------------------------------------ wrist force/torque sensor
    def _contact_wrench(self, tcp: np.ndarray) -> np.ndarray:
        """(6,) raw wrench (N, N·m about ``tcp``, base frame) of the contacts on the hand and fingers."""
        raise NotImplementedError

    def wrench(self, tcp: np.ndarray) -> np.ndarray:
        """(6,) float64 simulated wrist F/T reading: the external wrench on the hand, fingers and
        what they hold (force N, torque N·m about the TCP at ``tcp``, base frame), minus the tare.

        The simulated sensor sums the contact forces between the hand / finger bodies and
        everything else (the engine's constraint forces of the last step), so it reads what an
        ideal wrist sensor reads after gravity compensation of the hand: no hand weight, no
        inertial terms. A grasped object's weight reaches the fingers through contacts and is
        removed by :meth:`tare_wrench`; the tare is a constant base-frame offset, exact for the
        force and, for the torque, exact while the tool keeps the orientation it was tared at
        (a 50 g peg 2 cm from the TCP tilted by 30° leaves ~5 mN·m).
        """
        return self._contact_wrench(tcp) - self._wrench_offset

    def tare_wrench(self) -> None:
        """Take the current reading as zero (like a real F/T sensor's bias reset); :meth:`home`
        clears the tare. :class:`robot_rl.env.RobotEnv` tares after each episode's reset."""
        self._wrench_offset = np.zeros(6)
        self._wrench_offset = self.wrench(self.physics.tcp_position())

    def _dls_step(self, jac: np.ndarray, pose_error: np.ndarray, q: np.ndarray,
                  twist: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The damped-least-squares solve of :class:`DiffIKConfig` at one linearisation point.

        Args:
            jac: (6, 7) TCP Jacobian of the arm joints (linear rows first), base frame.
            pose_error: (6,) position error (m) and rotation vector (rad) from the TCP to the target, base frame.
            q: (7,) current arm joint angles, radians.
            twist: optional (6,) feed-forward TCP twist (m/s, rad/s), base frame.

        Returns:
            ``(dq, dq_dot)``: (7,) joint increment in radians towards the target (with the
            null-space posture term) and (7,) joint velocity in rad/s realising ``twist``.
        """
        rhs = self._rhs
        rhs[:, 0] = pose_error
        rhs[:, 1] = 0.0 if twist is None else twist
        rhs[:, 2:] = jac
        sol = jac.T @ np.linalg.solve(jac @ jac.T + self._damping_eye, rhs)  # J^+ applied to each column
        nullspace = self._eye7 - sol[:, 2:]
        dq = sol[:, 0] + nullspace @ (self.ik.nullspace_gain * (READY_Q_RAD - q))
        return dq, sol[:, 1]
