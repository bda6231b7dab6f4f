"""Peg insertion in the MuJoCo scene: the peg in the hand and the fixture with the square hole.

:func:`add_peg_and_fixture` adds both to the scene's :class:`mujoco.MjSpec` (called by
:func:`robot_rl.sim.mujoco.scene.build_model` when ``SceneConfig.insertion`` is set);
:class:`MujocoPegHole` (``PandaPhysics.insertion``) moves them and reads their poses for
:class:`robot_rl.sim.tasks.PegInsertionTask`. Geometry and frames: :mod:`robot_rl.sim.insertion`.

How the peg is held: it is a body **rigidly attached to the TCP body** (``panda_grasptarget``,
no joint), and the random grasp offset of each episode is written into the model
(``body_pos`` / ``body_quat``) at reset. Why not a real grasp: a finger grasp slips under
insertion forces of tens of newtons, and the task is the insertion, not the grasp; why not a
weld equality: it is a soft constraint that lets the peg sag and spring against the fixture.
As a child of the hand, the contact forces on the peg are forces on the hand's subtree, so the
arm's wrench (and any wrist force-torque sensor above the hand) measures them, as a real wrist
sensor does. The peg is a robot geom (it collides with the world, not with the fingers, which
close on it without pushing it), gravity-compensated like the arm's links.

The fixture is a mocap body (static, movable between episodes) of four world boxes.
"""

from __future__ import annotations

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from ..insertion import PegHoleGeometry, peg_in_tool

PEG_BODY = "peg"
PEG_GEOM = "peg"
FIXTURE_BODY = "fixture"
#: the body the peg hangs from: the TCP's (``panda_grasptarget``, the TCP site is at its origin)
TCP_BODY = "panda_grasptarget"


def add_peg_and_fixture(spec: mujoco.MjSpec, geometry: PegHoleGeometry, robot_contact: tuple[int, int],
                        world_contact: tuple[int, int], robot_group: int) -> None:
    """Add the peg (under the TCP body) and the fixture (a mocap body) to ``spec``.

    Args:
        spec: the scene being built (before ``compile``).
        geometry: peg and hole sizes.
        robot_contact / world_contact: ``(contype, conaffinity)`` of robot and world geoms.
        robot_group: geom group of the peg (drawn with the hand, seen by the wrist camera).
    """
    friction = [geometry.friction, 0.005, 0.0001]
    peg_pos, peg_rot = peg_in_tool(geometry, 0.0, 0.0, 0.0)
    peg = spec.body(TCP_BODY).add_body(name=PEG_BODY, pos=peg_pos, quat=peg_rot.as_quat(scalar_first=True))
    peg.gravcomp = 1.0
    peg.add_geom(name=PEG_GEOM, type=mujoco.mjtGeom.mjGEOM_BOX, size=geometry.peg_half_extents(),
                 pos=geometry.peg_centre_in_peg_frame(), mass=geometry.peg_mass_kg, friction=friction, condim=4,
                 contype=robot_contact[0], conaffinity=robot_contact[1], group=robot_group,
                 rgba=[0.2, 0.45, 0.85, 1.0])
    fixture = spec.worldbody.add_body(name=FIXTURE_BODY, mocap=True, pos=[0.5, 0.0, geometry.hole_depth_m])
    for i, (half, centre, rotation) in enumerate(geometry.fixture_boxes()):
        fixture.add_geom(name=f"fixture_box{i}", type=mujoco.mjtGeom.mjGEOM_BOX, size=half, pos=centre,
                         quat=rotation.as_quat(scalar_first=True), friction=friction, condim=4,
                         contype=world_contact[0], conaffinity=world_contact[1], rgba=[0.85, 0.65, 0.15, 1.0])


class MujocoPegHole:
    """The peg and the fixture of a MuJoCo :class:`~robot_rl.sim.mujoco.scene.PandaPhysics`.

    Implements the insertion part of :class:`robot_rl.sim.tasks.InsertionScene` (poses in metres,
    base frame, quaternions xyzw).
    """

    def __init__(self, physics) -> None:
        self.physics = physics
        self.geometry: PegHoleGeometry = physics.config.insertion
        m = physics.model
        self.peg_body_id = m.body(PEG_BODY).id
        self.peg_geom_id = m.geom(PEG_GEOM).id
        self.fixture_mocap_id = int(m.body_mocapid[m.body(FIXTURE_BODY).id])

    def set_grasp(self, offset_x_m: float, offset_z_m: float, tilt_rad: float) -> None:
        """Hold the peg at a grasp offset (:func:`robot_rl.sim.insertion.peg_in_tool`); call
        ``physics.forward()`` afterwards."""
        pos, rot = peg_in_tool(self.geometry, offset_x_m, offset_z_m, tilt_rad)
        self.physics.model.body_pos[self.peg_body_id] = pos
        self.physics.model.body_quat[self.peg_body_id] = rot.as_quat(scalar_first=True)

    def set_hole_pose(self, position: np.ndarray, rotation: Rotation) -> None:
        """Place the fixture: (3,) hole-entry centre, metres, and the hole frame's rotation, base frame."""
        d = self.physics.data
        d.mocap_pos[self.fixture_mocap_id] = position
        d.mocap_quat[self.fixture_mocap_id] = rotation.as_quat(scalar_first=True)

    def hole_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """``(position (3,), quaternion xyzw (4,))`` of the hole frame, base frame (copies)."""
        d = self.physics.data
        wxyz = d.mocap_quat[self.fixture_mocap_id]
        return d.mocap_pos[self.fixture_mocap_id].copy(), np.roll(wxyz, -1)

    def peg_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """``(tip position (3,), quaternion xyzw (4,))`` of the peg frame, base frame (copies)."""
        d = self.physics.data
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, d.xmat[self.peg_body_id])
        return d.xpos[self.peg_body_id].copy(), np.roll(quat, -1)
