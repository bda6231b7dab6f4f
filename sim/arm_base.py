"""What the MuJoCo and PyBullet Pandas share as :class:`~robot_rl.interfaces.Arm`: the constructor's
arguments, checks and state, and the damped-least-squares step of the differential IK."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robot_rl.interfaces import Arm, WorkspaceBox

from .kinematics import READY_Q_RAD, DiffIKConfig, control_substeps

if TYPE_CHECKING:
    from .tasks import TableScene


class DiffIKArm(Arm):
    """A simulated Panda commanded in tool-centre-point (TCP) space through differential IK.

    ``command`` runs ``n_substeps = round(1 / (control_hz * sim_dt_s))`` physics steps and
    re-solves the IK every ``ik_every`` of them; the backends (:class:`robot_rl.sim.mujoco.MujocoArm`,
    :class:`robot_rl.sim.pybullet.PybulletArm`) differ in how joint servos track the IK targets.
    A subclass sets its backend state after this constructor and then ``home_q_rad``.

    Args:
        physics: the scene this arm lives in (shared with cameras and the task).
        workspace: box (base frame, metres) the commanded TCP target is clipped into.
        home_position_m: (3,) TCP position of the home pose, base frame; must be inside ``workspace``.
        home_yaw_rad: tool yaw of the home pose about the base z axis.
        control_hz: command rate; ``1 / control_hz`` must be a whole multiple of the physics step.
        ik: differential-IK gains (``DiffIKConfig()`` when None).
        sim_dt_s: the scene's physics step, seconds.

    Raises:
        ValueError: the control period is not a multiple of the physics step, or the home pose
            is outside the workspace (a subclass raises it too when the home pose is unreachable).
    """

    def __init__(self, physics: TableScene, workspace: WorkspaceBox, home_position_m: np.ndarray, home_yaw_rad: float,
                 control_hz: float, ik: DiffIKConfig | None, sim_dt_s: float):
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
