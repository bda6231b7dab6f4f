"""The PyBullet Panda as an :class:`~robot_rl.interfaces.Arm`: the same differential-IK TCP control as MuJoCo."""

from __future__ import annotations

import numpy as np
import pybullet
from scipy.spatial.transform import Rotation

from robot_rl.interfaces import ArmCommand, ArmState, WorkspaceBox

from ..arm_base import DiffIKArm
from ..impedance import ImpedanceConfig
from ..kinematics import READY_Q_RAD, DiffIKConfig, tool_down_rotation
from .scene import FINGER_TRAVEL_M, PandaPhysics

# PyBullet's POSITION_CONTROL motor is a force-limited velocity constraint per joint with target
# velocity position_gain * (q_des - q) / dt + dq + velocity_gain * (dq_des - dq) (Bullet's
# btMultiBodyJointMotor). The arm sends dq_des = 0 with velocity_gain 1, so the motor asks for
# position_gain * (q_des - q) / dt; PybulletArm derives the position gain from the IK rate.
_ARM_VELOCITY_GAIN = 1.0
_ARM_TORQUE_LIMIT_NM = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)  # URDF efforts
_FINGER_POSITION_GAIN = 0.05
_FINGER_FORCE_LIMIT_N = 40.0
"""per finger; the URDF says 20 N, doubled so PyBullet's softer contacts hold the cube."""


class PybulletArm(DiffIKArm):
    """The Panda of a PyBullet :class:`PandaPhysics` scene, commanded in tool-centre-point (TCP) space.

    Mirrors :class:`robot_rl.sim.mujoco.MujocoArm`: every ``1 / ik_hz`` the damped-least-squares
    IK (with the null-space pull to the ready posture) gives a joint step ``dq`` towards the point
    of a ramp to the commanded pose that is due at the end of the IK interval, and PyBullet's
    position motors servo to ``q + dq``. Their position gain is ``1 / ik_every``: at the start of
    an interval a motor asks for ``dq / ik interval``, the joint velocity that arrives there when
    the interval ends, which already moves along the ramp (no velocity feed-forward on top).
    ``dq`` is scaled down, all joints alike, until no joint is asked for more than its URDF
    velocity limit: the motors (URDF torque limits, 12 N·m at the wrist, which carries the URDF's
    0.1 kg·m² placeholder link inertias) cannot brake a joint that was sped past its limit in
    time, and joints that saturate unevenly leave the IK's direction and carry the TCP out of
    the workspace box.

    ``controller="impedance"``: PyBullet's default velocity motors of the arm joints are
    disabled (``VELOCITY_CONTROL`` with zero force) and every physics step applies, with
    ``TORQUE_CONTROL``, the :class:`~robot_rl.sim.impedance.CartesianImpedance` torque plus the
    gravity and Coriolis torques of ``calculateInverseDynamics(q, dq, 0)`` (and the weight of a
    held peg, :meth:`_held_gravity_torque`), clipped to the URDF efforts; the inertia comes from
    ``calculateMassMatrix``. The fingers stay position-servoed.

    Arguments and errors as :class:`~robot_rl.sim.arm_base.DiffIKArm` (the physics step is
    ``physics.config.sim_dt_s``); a home pose the IK cannot reach with the tool down also raises
    ``ValueError``.
    """

    def __init__(self, physics: PandaPhysics, workspace: WorkspaceBox, home_position_m: np.ndarray,
                 home_yaw_rad: float = 0.0, control_hz: float = 10.0, ik: DiffIKConfig | None = None,
                 controller: str = "position", impedance: ImpedanceConfig | dict | None = None):
        super().__init__(physics, workspace, home_position_m, home_yaw_rad, control_hz, ik,
                         sim_dt_s=physics.config.sim_dt_s, controller=controller, impedance=impedance)
        p, robot = physics.client, physics.robot
        info = [p.getJointInfo(robot, j) for j in physics.arm_joint_ids]
        self._q_low, self._q_high = np.array([i[8] for i in info]), np.array([i[9] for i in info])
        self._arm_cols = [physics.movable_joint_ids.index(j) for j in physics.arm_joint_ids]
        self._position_gain = 1.0 / self.ik_every
        """motor position gain: the fraction of the joint error the motor asks to close per physics step."""
        self._max_step_rad = np.array([i[11] for i in info]) * self.ik_every * physics.config.sim_dt_s
        """(7,) largest joint step per IK interval, radians: the URDF velocity limits times the interval."""
        self.home_q_rad = self._solve_home()

    # ------------------------------------------------------------------ kinematics
    def _joint_states(self) -> tuple[np.ndarray, np.ndarray]:
        """(9,) positions and velocities of the movable joints (7 arm + 2 fingers)."""
        states = self.physics.client.getJointStates(self.physics.robot, self.physics.movable_joint_ids)
        return np.array([s[0] for s in states]), np.array([s[1] for s in states])

    def _tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.physics.client
        ls = p.getLinkState(self.physics.robot, self.physics.tcp_link, computeForwardKinematics=1)
        return np.array(ls[4]), np.array(p.getMatrixFromQuaternion(ls[5])).reshape(3, 3)

    def _ik_step(self, target_pos: np.ndarray, target_rot: np.ndarray,
                 twist: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One damped-least-squares step (:meth:`DiffIKArm._dls_step`) at the current state towards a
        TCP pose: (3,) position in metres and (3, 3) rotation, base frame; ``(dq, dq_dot)`` as there."""
        pos, rot = self._tcp_pose()
        q_all, _ = self._joint_states()
        zeros = [0.0] * len(q_all)
        lin, ang = self.physics.client.calculateJacobian(self.physics.robot, self.physics.tcp_link, [0.0, 0.0, 0.0],
                                                         q_all.tolist(), zeros, zeros)
        jac = np.vstack([np.array(lin), np.array(ang)])[:, self._arm_cols]
        error = np.concatenate([target_pos - pos, Rotation.from_matrix(target_rot @ rot.T).as_rotvec()])
        return self._dls_step(jac, error, q_all[self._arm_cols], twist)

    def _set_arm_q(self, q: np.ndarray) -> None:
        for j, v in zip(self.physics.arm_joint_ids, q):
            self.physics.client.resetJointState(self.physics.robot, j, float(v), 0.0)

    def _solve_home(self) -> np.ndarray:
        """(7,) joint angles (rad) that put the TCP at the home pose, by iterating the IK from READY_Q_RAD."""
        self._set_arm_q(READY_Q_RAD)
        target_rot = tool_down_rotation(self.home_yaw_rad)
        q = READY_Q_RAD.copy()
        for _ in range(200):
            pos, _ = self._tcp_pose()
            if np.linalg.norm(pos - self.home_position_m) < self.ik.home_tolerance_m:
                break
            dq, _ = self._ik_step(self.home_position_m, target_rot)
            q = np.clip(q + dq, self._q_low, self._q_high)
            self._set_arm_q(q)
        else:
            raise ValueError(f"the home position {self.home_position_m} m is not reachable with the tool down")
        return q

    def _drive(self, q_des: np.ndarray | None, gripper: float) -> None:
        """Servo the arm joints to (7,) ``q_des`` (rad; None: leave the arm alone) and the fingers to
        opening ``gripper`` in [0, 1]."""
        p, robot = self.physics.client, self.physics.robot
        if q_des is not None:
            p.setJointMotorControlArray(robot, self.physics.arm_joint_ids, pybullet.POSITION_CONTROL,
                                        targetPositions=q_des.tolist(), targetVelocities=[0.0] * 7,
                                        forces=_ARM_TORQUE_LIMIT_NM, positionGains=[self._position_gain] * 7,
                                        velocityGains=[_ARM_VELOCITY_GAIN] * 7)
        p.setJointMotorControlArray(robot, self.physics.finger_joint_ids, pybullet.POSITION_CONTROL,
                                    targetPositions=[gripper * FINGER_TRAVEL_M] * 2,
                                    forces=[self._finger_force_n()] * 2, positionGains=[_FINGER_POSITION_GAIN] * 2)
        self._gripper_target = gripper

    def _finger_force_n(self) -> float:
        """Finger servo force limit per finger, N: the scene's identified value or the built-in one."""
        limit = self.physics.finger_force_limit_n
        return _FINGER_FORCE_LIMIT_N if limit is None else float(limit)

    # ------------------------------------------------------------------ Arm interface
    def state(self) -> ArmState:
        """Current proprioception; ``wrench`` is the simulated wrist F/T reading (:meth:`DiffIKArm.wrench`, base frame)."""
        p = self.physics.client
        ls = p.getLinkState(self.physics.robot, self.physics.tcp_link, computeLinkVelocity=1, computeForwardKinematics=1)
        q_all, dq_all = self._joint_states()
        pos = np.array(ls[4])
        quat = np.array(ls[5])
        return ArmState(
            q=q_all[self._arm_cols].copy(),
            dq=dq_all[self._arm_cols].copy(),
            ee_position=pos,
            ee_quaternion=-quat if quat[3] < 0 else quat,
            ee_velocity=np.concatenate([ls[6], ls[7]]),
            wrench=self.wrench(pos),
            gripper=float(np.clip(q_all[self.physics.movable_joint_ids.index(self.physics.finger_joint_ids[0])]
                                  / FINGER_TRAVEL_M, 0.0, 1.0)),
            stamp=float(self.physics.time),
        )

    def _contact_wrench(self, tcp: np.ndarray) -> np.ndarray:
        """(6,) force (N) and torque about the TCP (N·m) that contacts exert on the hand, base frame.

        Includes the contacts on a held peg (``physics.insertion.peg``, a separate body tied to the
        TCP by a fixed constraint, which passes them to the hand as the MuJoCo peg, a child body of
        the hand, does); its weight goes through the constraint, not a contact, so it is not read.
        """
        p, robot = self.physics.client, self.physics.robot
        held = getattr(self.physics, "insertion", None)
        contacts = [c for c in p.getContactPoints(bodyA=robot) if c[3] in self.physics.hand_links and c[2] != robot]
        if held is not None:
            contacts += [c for c in p.getContactPoints(bodyA=held.peg) if c[2] != robot]
        wrench = np.zeros(6)
        for c in contacts:
            # contact normal on B points from B to A: normal and friction forces act on A along it
            force = c[9] * np.array(c[7]) + c[10] * np.array(c[11]) + c[12] * np.array(c[13])
            wrench[:3] += force
            wrench[3:] += np.cross(np.array(c[5]) - tcp, force)
        return wrench

    def command(self, cmd: ArmCommand) -> ArmCommand:
        """Servo the TCP towards ``cmd`` for one control period (``n_substeps`` physics steps).

        The target position is clipped into the workspace box, the gripper opening into [0, 1].

        Returns:
            The command actually executed.
        """
        target = self.workspace.clip(cmd.ee_target_position)
        quat = np.asarray(cmd.ee_target_quaternion, dtype=np.float64)
        sent = ArmCommand(ee_target_position=target, ee_target_quaternion=quat / np.linalg.norm(quat),
                          gripper=float(np.clip(cmd.gripper, 0.0, 1.0)))
        target_rot = Rotation.from_quat(sent.ee_target_quaternion).as_matrix()
        if self.impedance is not None:
            self._drive(None, sent.gripper)
            self._run_impedance(target, target_rot)
            return sent
        start_pos, start_rot = self._tcp_pose()
        rot_vec = Rotation.from_matrix(start_rot.T @ target_rot).as_rotvec()  # tool frame
        sim_dt = self.physics.config.sim_dt_s
        ramp_s = max(self.ik.ramp_fraction * self.n_substeps, self.ik_every) * sim_dt
        for k in range(1, self.n_substeps // self.ik_every + 1):
            alpha = min(1.0, k * self.ik_every * sim_dt / ramp_s)  # ramp phase at the end of this interval
            ramp_rot = start_rot @ Rotation.from_rotvec(alpha * rot_vec).as_matrix()
            dq, _ = self._ik_step(start_pos + alpha * (target - start_pos), ramp_rot)
            dq *= min(1.0, float(np.min(self._max_step_rad / np.maximum(np.abs(dq), 1e-12))))  # velocity limits
            q_all, _ = self._joint_states()
            self._drive(np.clip(q_all[self._arm_cols] + dq, self._q_low, self._q_high), sent.gripper)
            self.physics.step(self.ik_every)
        self.peak_force_n = float(np.linalg.norm(self.wrench(self._tcp_pose()[0])[:3]))
        return sent

    def _release_arm_motors(self) -> None:
        """Disable the default velocity motors of the arm joints so TORQUE_CONTROL torques act alone."""
        self.physics.client.setJointMotorControlArray(self.physics.robot, self.physics.arm_joint_ids, pybullet.VELOCITY_CONTROL,
                                                      targetVelocities=[0.0] * 7, forces=[0.0] * 7)

    def _held_gravity_torque(self, tcp_pos: np.ndarray, tcp_rot: np.ndarray, q_list: list[float],
                             zeros: list[float]) -> np.ndarray:
        """(7,) joint torques (N·m) that hold up a peg tied to the TCP (``physics.insertion``):
        ``J_com^T m g`` at the peg's centre of mass; zeros without one. (The MuJoCo peg is a
        gravity-compensated child body; inverse dynamics of the robot alone do not know this one.)"""
        held = getattr(self.physics, "insertion", None)
        if held is None:
            return np.zeros(7)
        p = self.physics.client
        com = np.array(p.getBasePositionAndOrientation(held.peg)[0])
        local = (tcp_rot.T @ (com - tcp_pos)).tolist()
        lin, _ = p.calculateJacobian(self.physics.robot, self.physics.tcp_link, local, q_list, zeros, zeros)
        weight = np.array([0.0, 0.0, p.getDynamicsInfo(held.peg, -1)[0] * 9.81])
        return (np.array(lin).T @ weight)[self._arm_cols]

    def _run_impedance(self, target_pos: np.ndarray, target_rot: np.ndarray) -> None:
        """``n_substeps`` physics steps of the impedance law towards the (3,) position, (3, 3) rotation, base frame."""
        p, robot, ph = self.physics.client, self.physics.robot, self.physics
        cols, zeros9 = self._arm_cols, [0.0] * len(ph.movable_joint_ids)
        limit = np.asarray(_ARM_TORQUE_LIMIT_NM)
        peak = 0.0
        for _ in range(self.n_substeps):
            q_all, dq_all = self._joint_states()
            q_list, dq_list = q_all.tolist(), dq_all.tolist()
            pos, rot = self._tcp_pose()
            lin, ang = p.calculateJacobian(robot, ph.tcp_link, [0.0, 0.0, 0.0], q_list, zeros9, zeros9)
            jac = np.vstack([np.array(lin), np.array(ang)])[:, cols]
            mass = np.array(p.calculateMassMatrix(robot, q_list))[np.ix_(cols, cols)]
            bias = np.array(p.calculateInverseDynamics(robot, q_list, dq_list, zeros9))[cols]  # gravity + Coriolis
            bias += self._held_gravity_torque(pos, rot, q_list, zeros9)
            tau = self.impedance.torque(jac, mass, pos, rot, q_all[cols], dq_all[cols], target_pos, target_rot) + bias
            p.setJointMotorControlArray(robot, ph.arm_joint_ids, pybullet.TORQUE_CONTROL,
                                        forces=np.clip(tau, -limit, limit).tolist())
            ph.step(1)
            peak = max(peak, float(np.linalg.norm(self.wrench(pos)[:3])))
        self.peak_force_n = peak

    def home(self) -> None:
        """Reset the whole simulation to time 0 with the arm at the home pose and the gripper open."""
        self.physics.reset()
        self._wrench_offset = np.zeros(6)
        self._set_arm_q(self.home_q_rad)
        for j in self.physics.finger_joint_ids:
            self.physics.client.resetJointState(self.physics.robot, j, FINGER_TRAVEL_M, 0.0)
        if self.impedance is not None:
            self._release_arm_motors()
            self._drive(None, 1.0)
        else:
            self._drive(self.home_q_rad, 1.0)

    def stop(self) -> None:
        """Hold the current joint positions (servo targets = measured angles); nothing once closed."""
        if self.physics.closed:
            return
        if self.impedance is not None:  # the torques act one physics step; nothing more until the next command
            self._drive(None, getattr(self, "_gripper_target", 1.0))
            return
        q_all, _ = self._joint_states()
        self._drive(q_all[self._arm_cols], getattr(self, "_gripper_target", 1.0))

    def close(self) -> None:
        """Disconnect the scene's client; the arm shares the scene with the cameras. Idempotent."""
        self.physics.close()
