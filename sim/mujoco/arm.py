"""The simulated Panda as an :class:`~robot_rl.interfaces.Arm`: differential-IK end-effector control."""

from __future__ import annotations

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from robot_rl.interfaces import ArmCommand, ArmState, WorkspaceBox

from ..arm_base import DiffIKArm
from ..impedance import ImpedanceConfig
from ..kinematics import (
    PANDA_JOINT_VELOCITY_LIMITS_RAD_S,
    READY_Q_RAD,
    DiffIKConfig,
    tool_down_rotation,
)
from .scene import ARM_JOINTS, FINGER_TRAVEL_M, PandaPhysics

__all__ = ["READY_Q_RAD", "DiffIKConfig", "MujocoArm", "tool_down_rotation"]

#: MuJoCo warnings raised when the simulation diverged (it then resets the state to ``qpos0``).
_DIVERGENCE_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC)


def _full_inertia(m: mujoco.MjModel, d: mujoco.MjData, dst: np.ndarray) -> None:
    """Dense (nv, nv) joint-space inertia M(q) into ``dst``: ``mj_fullM(m, d, dst)`` from MuJoCo 4,
    ``mj_fullM(m, dst, d.qM)`` before (setup.py allows mujoco>=3.2)."""
    if hasattr(d, "qM"):
        mujoco.mj_fullM(m, dst, d.qM)
    else:
        mujoco.mj_fullM(m, d, dst)


class MujocoArm(DiffIKArm):
    """The Panda of a MuJoCo :class:`PandaPhysics` scene, commanded in tool-centre-point (TCP) space.

    ``controller="position"``: joint position servos (PD, with gravity compensation and a
    velocity feed-forward) track the differential-IK targets; the joint step of each IK interval
    and its feed-forward velocity are scaled down, all joints alike, until no joint is asked for
    more than the Panda's velocity limits (as :class:`~robot_rl.sim.pybullet.PybulletArm` does):
    without it a large rotation command (0.2 rad per 10 Hz step) outran the wrist servos, which
    swung the TCP up to 3 cm out of the workspace box and turned an rx action partly into yaw. ``controller="impedance"``: the arm
    actuators become torque motors (gain 1, no bias, ctrl range = the URDF efforts) and every
    physics step applies the :class:`~robot_rl.sim.impedance.CartesianImpedance` torque plus the
    Coriolis and centrifugal torques (``qfrc_bias - qfrc_gravcomp``; gravity is compensated
    exactly by the scene's per-body ``gravcomp``), computed between ``mj_step1`` and ``mj_step2``
    so the law sees the state it acts on. The ``implicitfast`` integrator of the scene treats the
    joint damping and armature implicitly; the law's damping is explicit, stable at the 2 ms step
    for stiffness up to the Franka's limits.

    Arguments and errors as :class:`~robot_rl.sim.arm_base.DiffIKArm` (the physics step is the
    model's ``opt.timestep``); a home pose the IK cannot reach with the tool down also raises
    ``ValueError``.
    """

    def __init__(self, physics: PandaPhysics, workspace: WorkspaceBox, home_position_m: np.ndarray,
                 home_yaw_rad: float = 0.0, control_hz: float = 10.0, ik: DiffIKConfig | None = None,
                 controller: str = "position", impedance: ImpedanceConfig | dict | None = None):
        super().__init__(physics, workspace, home_position_m, home_yaw_rad, control_hz, ik,
                         sim_dt_s=physics.model.opt.timestep, controller=controller, impedance=impedance)
        m = physics.model
        arm_joint_ids = [m.joint(name).id for name in ARM_JOINTS]
        self._q_low, self._q_high = m.jnt_range[arm_joint_ids, 0], m.jnt_range[arm_joint_ids, 1]
        self._jac = np.zeros((6, m.nv))
        # Position servos are PD laws kp (ctrl - q) - kv q_dot; a ctrl lead of (kv / kp) q_dot_ref
        # cancels their damping on the reference velocity (velocity feed-forward).
        act = physics.arm_actuator_ids
        self._servo_lead_s = m.actuator_biasprm[act, 2] / m.actuator_biasprm[act, 1]
        self._max_step_rad = PANDA_JOINT_VELOCITY_LIMITS_RAD_S * self.ik_every * m.opt.timestep
        self.home_q_rad = self._solve_home()
        if self.impedance is not None:
            self._use_torque_motors()
            self._mass = np.zeros((m.nv, m.nv))

    def _use_torque_motors(self) -> None:
        """Turn the arm's position actuators into torque motors: force = ctrl, ctrl limited to the effort limits."""
        m, act = self.physics.model, self.physics.arm_actuator_ids
        m.actuator_gainprm[act] = 0.0
        m.actuator_gainprm[act, 0] = 1.0
        m.actuator_biasprm[act] = 0.0
        m.actuator_biastype[act] = mujoco.mjtBias.mjBIAS_NONE
        m.actuator_ctrlrange[act] = m.actuator_forcerange[act]

    # ------------------------------------------------------------------ kinematics
    def _arm_q(self) -> np.ndarray:
        return self.physics.data.qpos[self.physics.arm_qpos_adr]

    def _tcp_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        sid = self.physics.tcp_site_id
        return data.site_xpos[sid], data.site_xmat[sid].reshape(3, 3)

    def _ik_step(self, data: mujoco.MjData, target_pos: np.ndarray, target_rot: np.ndarray,
                 twist: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One damped-least-squares step (:meth:`DiffIKArm._dls_step`) towards a TCP pose.

        Args:
            data: the state to linearise at (kinematics must be current).
            target_pos: (3,) target TCP position, metres, base frame.
            target_rot: (3, 3) target TCP rotation, base frame.
            twist: optional (6,) feed-forward TCP twist (m/s, rad/s), base frame.

        Returns:
            ``(dq, dq_dot)`` as :meth:`DiffIKArm._dls_step`.
        """
        pos, rot = self._tcp_pose(data)
        quat, rot_err = np.empty(4), np.empty(3)  # rotation vector of target_rot @ rot^T, base frame
        mujoco.mju_mat2Quat(quat, (target_rot @ rot.T).flatten())
        mujoco.mju_quat2Vel(rot_err, quat, 1.0)
        mujoco.mj_jacSite(self.physics.model, data, self._jac[:3], self._jac[3:], self.physics.tcp_site_id)
        return self._dls_step(self._jac[:, self.physics.arm_dof_adr], np.concatenate([target_pos - pos, rot_err]),
                              data.qpos[self.physics.arm_qpos_adr], twist)

    def _solve_home(self) -> np.ndarray:
        """(7,) joint angles (rad) that put the TCP at the home pose, by iterating the IK from READY_Q_RAD."""
        model = self.physics.model
        scratch = mujoco.MjData(model)
        scratch.qpos[self.physics.arm_qpos_adr] = READY_Q_RAD
        target_rot = tool_down_rotation(self.home_yaw_rad)
        for _ in range(200):
            mujoco.mj_kinematics(model, scratch)
            mujoco.mj_comPos(model, scratch)
            pos, _ = self._tcp_pose(scratch)
            if np.linalg.norm(pos - self.home_position_m) < self.ik.home_tolerance_m:
                break
            q = scratch.qpos[self.physics.arm_qpos_adr]
            dq, _ = self._ik_step(scratch, self.home_position_m, target_rot)
            scratch.qpos[self.physics.arm_qpos_adr] = np.clip(q + dq, self._q_low, self._q_high)
        else:
            raise ValueError(f"the home position {self.home_position_m} m is not reachable with the tool down")
        return scratch.qpos[self.physics.arm_qpos_adr].copy()

    # ------------------------------------------------------------------ Arm interface
    def state(self) -> ArmState:
        """Current proprioception; ``wrench`` is the simulated wrist F/T reading (:meth:`DiffIKArm.wrench`, base frame)."""
        d = self.physics.data
        pos, rot = self._tcp_pose(d)
        quat_wxyz = np.empty(4)
        mujoco.mju_mat2Quat(quat_wxyz, rot.flatten())
        vel = np.empty(6)  # [angular, linear], world-aligned
        mujoco.mj_objectVelocity(self.physics.model, d, mujoco.mjtObj.mjOBJ_SITE, self.physics.tcp_site_id, vel, 0)
        return ArmState(
            q=self._arm_q().copy(),
            dq=d.qvel[self.physics.arm_dof_adr].copy(),
            ee_position=pos.copy(),
            ee_quaternion=np.roll(quat_wxyz, -1),
            ee_velocity=np.concatenate([vel[3:], vel[:3]]),
            wrench=self.wrench(pos),
            gripper=float(np.clip(d.qpos[self.physics.finger_qpos_adr[0]] / FINGER_TRAVEL_M, 0.0, 1.0)),
            stamp=float(d.time),
        )

    def _contact_wrench(self, tcp: np.ndarray) -> np.ndarray:
        """(6,) force (N) and torque about the TCP (N·m) that contacts exert on the hand, base frame."""
        m, d = self.physics.model, self.physics.data
        wrench = np.zeros(6)
        local = np.empty(6)
        for i in range(d.ncon):
            con = d.contact[i]
            b1, b2 = m.geom_bodyid[con.geom1], m.geom_bodyid[con.geom2]
            on1, on2 = b1 in self.physics.hand_body_ids, b2 in self.physics.hand_body_ids
            if on1 == on2:
                continue
            mujoco.mj_contactForce(m, d, i, local)
            frame = con.frame.reshape(3, 3)  # rows: contact normal (geom1 -> geom2) and tangents
            force = frame.T @ local[:3]  # force on geom2, base frame
            if on1:
                force = -force
            wrench[:3] += force
            wrench[3:] += np.cross(con.pos - tcp, force)
        return wrench

    def command(self, cmd: ArmCommand) -> ArmCommand:
        """Servo the TCP towards ``cmd`` for one control period (``n_substeps`` physics steps).

        The target position is clipped into the workspace box, the gripper opening into [0, 1].

        Returns:
            The command actually executed.
        """
        m, d = self.physics.model, self.physics.data
        target = self.workspace.clip(cmd.ee_target_position)
        quat = np.asarray(cmd.ee_target_quaternion, dtype=np.float64)
        sent = ArmCommand(ee_target_position=target, ee_target_quaternion=quat / np.linalg.norm(quat),
                          gripper=float(np.clip(cmd.gripper, 0.0, 1.0)))
        target_rot = Rotation.from_quat(sent.ee_target_quaternion).as_matrix()
        start_pos, start_rot = (x.copy() for x in self._tcp_pose(d))
        # orientation ramp: slerp from the start to the target rotation
        q_start, q_target, rot_vec = np.empty(4), np.empty(4), np.empty(3)
        mujoco.mju_mat2Quat(q_start, start_rot.flatten())
        mujoco.mju_mat2Quat(q_target, target_rot.flatten())
        mujoco.mju_subQuat(rot_vec, q_target, q_start)  # tool frame: q_start * exp(rot_vec) = q_target
        d.ctrl[self.physics.finger_actuator_id] = sent.gripper * FINGER_TRAVEL_M
        if self.impedance is not None:
            self._run_impedance(target, target_rot)
            return sent
        sim_dt = m.opt.timestep
        ramp_s = max(self.ik.ramp_fraction * self.n_substeps, self.ik_every) * sim_dt
        ramp_twist = np.concatenate([(target - start_pos) / ramp_s, start_rot @ rot_vec / ramp_s])
        ramp_rot, ramp_quat = np.empty(9), np.empty(4)
        for k in range(1, self.n_substeps // self.ik_every + 1):
            alpha = min(1.0, k * self.ik_every * sim_dt / ramp_s)  # ramp phase at the end of this interval
            ramp_quat[:] = q_start
            mujoco.mju_quatIntegrate(ramp_quat, rot_vec, alpha)
            mujoco.mju_quat2Mat(ramp_rot, ramp_quat)
            dq, dq_dot = self._ik_step(d, start_pos + alpha * (target - start_pos), ramp_rot.reshape(3, 3),
                                       ramp_twist if alpha < 1.0 else None)
            # joint velocity limits: the step of this IK interval and the feed-forward velocity, scaled alike
            scale = min(1.0, float(np.min(self._max_step_rad / np.maximum(np.abs(dq), 1e-12))),
                        float(np.min(PANDA_JOINT_VELOCITY_LIMITS_RAD_S / np.maximum(np.abs(dq_dot), 1e-12))))
            q_des = self._arm_q() + scale * (dq + self._servo_lead_s * dq_dot)
            d.ctrl[self.physics.arm_actuator_ids] = np.clip(q_des, self._q_low, self._q_high)
            mujoco.mj_step(m, d, nstep=self.ik_every)
        self._finish_period()
        self.peak_force_n = float(np.linalg.norm(self.wrench(self._tcp_pose(d)[0])[:3]))
        return sent

    def _finish_period(self) -> None:
        m, d = self.physics.model, self.physics.data
        mujoco.mj_forward(m, d)  # positions, contacts and sensors of the final state
        # MuJoCo resets the state to qpos0 when it diverges (NaN / huge qpos, qvel, qacc) and only
        # warns: flag it, so the env ends the episode instead of learning from the teleport
        self.sim_unstable = any(d.warning[w].number for w in _DIVERGENCE_WARNINGS)

    def _run_impedance(self, target_pos: np.ndarray, target_rot: np.ndarray) -> None:
        """``n_substeps`` physics steps of the impedance law towards the (3,) position, (3, 3) rotation, base frame."""
        m, d, ph = self.physics.model, self.physics.data, self.physics
        dof, act = ph.arm_dof_adr, ph.arm_actuator_ids
        peak = 0.0
        for _ in range(self.n_substeps):
            mujoco.mj_step1(m, d)  # kinematics, inertia, bias and passive forces of the current state
            pos, rot = self._tcp_pose(d)
            mujoco.mj_jacSite(m, d, self._jac[:3], self._jac[3:], ph.tcp_site_id)
            _full_inertia(m, d, self._mass)
            tau = self.impedance.torque(self._jac[:, dof], self._mass[np.ix_(dof, dof)], pos, rot, d.qpos[ph.arm_qpos_adr],
                                        d.qvel[dof], target_pos, target_rot)
            d.ctrl[act] = tau + d.qfrc_bias[dof] - d.qfrc_gravcomp[dof]
            mujoco.mj_step2(m, d)
            peak = max(peak, float(np.linalg.norm(self.wrench(pos)[:3])))
        self.peak_force_n = peak
        self._finish_period()

    def home(self) -> None:
        """Reset the whole simulation to time 0 with the arm at the home pose and the gripper open.

        In simulation this teleports (a real arm drives there); the task places objects afterwards.
        """
        m, d = self.physics.model, self.physics.data
        self.physics.reset()  # also clears MuJoCo's warning counters
        self._wrench_offset = np.zeros(6)
        self.sim_unstable = False
        d.qpos[self.physics.arm_qpos_adr] = self.home_q_rad
        d.qpos[self.physics.finger_qpos_adr] = FINGER_TRAVEL_M
        d.ctrl[self.physics.arm_actuator_ids] = 0.0 if self.impedance is not None else self.home_q_rad
        d.ctrl[self.physics.finger_actuator_id] = FINGER_TRAVEL_M
        mujoco.mj_forward(m, d)

    def stop(self) -> None:
        """Hold the current joint positions (servo targets = measured angles); with the impedance
        controller, zero the motor torques (the gravity compensation keeps the arm up, the joint
        damping brakes it) until the next :meth:`command`."""
        if self.impedance is not None:
            self.physics.data.ctrl[self.physics.arm_actuator_ids] = 0.0
            return
        self.physics.data.ctrl[self.physics.arm_actuator_ids] = self._arm_q()

    def close(self) -> None:
        """Free the scene's renderers (GL contexts); the arm shares the scene with the cameras. Idempotent."""
        self.physics.close()
