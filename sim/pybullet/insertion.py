"""Peg insertion in the PyBullet scene: the same peg and fixture as :mod:`robot_rl.sim.mujoco.insertion`.

:class:`PybulletPegHole` (``PandaPhysics.insertion``, built when ``SceneConfig.insertion`` is set,
before the scene saves its reset state) creates both bodies and implements the insertion part
of :class:`robot_rl.sim.tasks.InsertionScene`. Geometry and frames: :mod:`robot_rl.sim.insertion`.

How the peg is held: a separate body tied to the TCP link by a ``JOINT_FIXED`` constraint whose
frame carries the episode's grasp offset (``changeConstraint`` at reset, and the peg is teleported
to that pose so the constraint starts satisfied). PyBullet cannot add a link to a loaded body or
move a fixed joint of a URDF, which is how MuJoCo attaches it (a child body); a finger grasp would
slip under insertion forces. The peg collides with the world (fixture, table), not with the robot.
The contact forces on the peg reach the hand through the constraint; the arm's wrist reading
(:meth:`robot_rl.sim.pybullet.arm.PybulletArm._contact_wrench`) adds the peg's contacts (``peg``)
to the hand's, as the MuJoCo peg's are the hand's.
"""

from __future__ import annotations

import numpy as np
import pybullet
from scipy.spatial.transform import Rotation

from ..insertion import PegHoleGeometry, peg_in_tool

#: force limit of the constraint that holds the peg, N: far above any insertion force, so it holds rigidly
_GRASP_MAX_FORCE_N = 10_000.0


class PybulletPegHole:
    """The peg and the fixture of a PyBullet :class:`~robot_rl.sim.pybullet.scene.PandaPhysics`.

    Poses in metres, base frame, quaternions xyzw.
    """

    def __init__(self, physics) -> None:
        self.physics = physics
        self.geometry: PegHoleGeometry = physics.config.insertion
        p, g = physics.client, self.geometry
        friction = float(np.sqrt(g.friction))  # PyBullet multiplies the two bodies' coefficients
        half = g.peg_half_extents().tolist()
        # the peg's base frame is its centre of mass (the box centre); the tip is -L/2 along its z
        self.peg = p.createMultiBody(
            baseMass=g.peg_mass_kg, baseCollisionShapeIndex=p.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half),
            baseVisualShapeIndex=p.createVisualShape(pybullet.GEOM_BOX, halfExtents=half, rgbaColor=[0.2, 0.45, 0.85, 1.0]),
            basePosition=[0.5, 0.0, 0.3])
        p.changeDynamics(self.peg, -1, lateralFriction=friction, linearDamping=0.0, angularDamping=0.0)
        for link in range(-1, p.getNumJoints(physics.robot)):
            p.setCollisionFilterPair(physics.robot, self.peg, link, -1, 0)
        boxes = g.fixture_boxes()
        halves, centres = [h.tolist() for h, _, _ in boxes], [c.tolist() for _, c, _ in boxes]
        quats = [r.as_quat().tolist() for _, _, r in boxes]
        self.fixture = p.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=p.createCollisionShapeArray(
                [pybullet.GEOM_BOX] * len(boxes), halfExtents=halves, collisionFramePositions=centres,
                collisionFrameOrientations=quats),
            baseVisualShapeIndex=p.createVisualShapeArray(
                [pybullet.GEOM_BOX] * len(boxes), halfExtents=halves, visualFramePositions=centres,
                visualFrameOrientations=quats, rgbaColors=[[0.85, 0.65, 0.15, 1.0]] * len(boxes)),
            basePosition=[0.5, 0.0, g.hole_depth_m])
        p.changeDynamics(self.fixture, -1, lateralFriction=friction)
        self.constraint = p.createConstraint(physics.robot, physics.tcp_link, self.peg, -1, pybullet.JOINT_FIXED,
                                             [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
        p.changeConstraint(self.constraint, maxForce=_GRASP_MAX_FORCE_N)
        self._grasp = (np.zeros(3), Rotation.identity())  # centre of the peg in the tool frame
        self.set_grasp(0.0, 0.0, 0.0)

    def set_grasp(self, offset_x_m: float, offset_z_m: float, tilt_rad: float) -> None:
        """Hold the peg at a grasp offset (:func:`robot_rl.sim.insertion.peg_in_tool`) and put it there now."""
        pos, rot = peg_in_tool(self.geometry, offset_x_m, offset_z_m, tilt_rad)
        centre = pos + rot.apply(self.geometry.peg_centre_in_peg_frame())
        self._grasp = (centre, rot)
        # the constraint's child frame is the TCP seen from the peg's centre
        inv = rot.inv()
        self.physics.client.changeConstraint(self.constraint, jointChildPivot=(-inv.apply(centre)).tolist(),
                                             jointChildFrameOrientation=inv.as_quat().tolist(),
                                             maxForce=_GRASP_MAX_FORCE_N)
        self._place_peg()

    def _place_peg(self) -> None:
        p, physics = self.physics.client, self.physics
        ls = p.getLinkState(physics.robot, physics.tcp_link, computeForwardKinematics=1)
        tcp_pos, tcp_rot = np.array(ls[4]), Rotation.from_quat(ls[5])
        centre, rot = self._grasp
        p.resetBasePositionAndOrientation(self.peg, (tcp_pos + tcp_rot.apply(centre)).tolist(),
                                          (tcp_rot * rot).as_quat().tolist())
        p.resetBaseVelocity(self.peg, [0.0] * 3, [0.0] * 3)

    def set_hole_pose(self, position: np.ndarray, rotation: Rotation) -> None:
        """Place the fixture: (3,) hole-entry centre, metres, and the hole frame's rotation, base frame."""
        self.physics.client.resetBasePositionAndOrientation(self.fixture, list(map(float, position)),
                                                            rotation.as_quat().tolist())

    def hole_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """``(position (3,), quaternion xyzw (4,))`` of the hole frame, base frame."""
        pos, quat = self.physics.client.getBasePositionAndOrientation(self.fixture)
        return np.array(pos), np.array(quat)

    def peg_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """``(tip position (3,), quaternion xyzw (4,))`` of the peg frame, base frame."""
        pos, quat = self.physics.client.getBasePositionAndOrientation(self.peg)
        quat = np.array(quat)
        tip = np.array(pos) - Rotation.from_quat(quat).apply(self.geometry.peg_centre_in_peg_frame())
        return tip, quat
