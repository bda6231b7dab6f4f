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

The fixture is a mocap body (static, movable between episodes) of four world boxes (and four
lead-in boxes), ``fixture_box{i}`` in the order of :meth:`PegHoleGeometry.fixture_boxes`.
:meth:`MujocoPegHole.set_clearance` re-sizes and re-places them in the compiled model (domain
randomisation of the clearance, :mod:`robot_rl.sim.randomization`).
"""

from __future__ import annotations

from dataclasses import replace

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from ..insertion import PegHoleGeometry, peg_in_tool
from ...errors import ConfigError

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
        self.nominal_geometry: PegHoleGeometry = physics.config.insertion
        """the geometry the scene was built with (never modified)."""
        self.geometry: PegHoleGeometry = self.nominal_geometry
        """the current geometry: the nominal one, or a copy with the clearance of :meth:`set_clearance`."""
        m = physics.model
        self.peg_body_id = m.body(PEG_BODY).id
        self.peg_geom_id = m.geom(PEG_GEOM).id
        self.fixture_body_id = m.body(FIXTURE_BODY).id
        self.fixture_mocap_id = int(m.body_mocapid[self.fixture_body_id])
        self.fixture_geom_ids = [m.geom(f"fixture_box{i}").id for i in range(len(self.geometry.fixture_boxes()))]

    def set_clearance(self, clearance_m: float) -> None:
        """Re-size the hole to ``clearance_m`` (hole side minus peg side, metres) in the compiled model.

        Writes the fixture boxes of ``replace(nominal_geometry, clearance_m=clearance_m)`` into
        ``model.geom_size / geom_pos / geom_quat`` and updates what the collision detector caches
        from them (``geom_rbound``, ``geom_aabb`` and the fixture body's bounding-volume tree,
        ``bvh_aabb``, which the compiler built for the nominal sizes: left stale, a wall moved
        inwards would be found only once the peg is past its old face). The peg, the fixture's
        pose and the nominal geometry are unchanged; :attr:`geometry` (read by the task's success
        check) becomes the new one. Call before the episode's ``forward``.

        Raises:
            ConfigError: ``clearance_m`` is not positive.
        """
        if not clearance_m > 0.0:
            raise ConfigError(f"hole clearance must be > 0 m, got {clearance_m}")
        self.geometry = replace(self.nominal_geometry, clearance_m=float(clearance_m))
        m = self.physics.model
        for gid, (half, centre, rotation) in zip(self.fixture_geom_ids, self.geometry.fixture_boxes()):
            m.geom_size[gid] = half
            m.geom_pos[gid] = centre
            m.geom_quat[gid] = rotation.as_quat(scalar_first=True)
            m.geom_rbound[gid] = float(np.linalg.norm(half))
            m.geom_aabb[gid] = [0.0, 0.0, 0.0, *half]
        self._update_fixture_bvh()

    def _update_fixture_bvh(self) -> None:
        """Recompute the fixture body's bounding-volume tree (``bvh_aabb``: centre (3,), half size (3,)
        per node, in the body's inertial frame) from its geoms' current boxes, leaves first."""
        m, b = self.physics.model, self.fixture_body_id
        start, count = int(m.body_bvhadr[b]), int(m.body_bvhnum[b])
        to_inertial = Rotation.from_quat(m.body_iquat[b], scalar_first=True).inv()
        ipos = m.body_ipos[b]
        for node in range(start + count - 1, start - 1, -1):  # children come after their parent
            gid = int(m.bvh_nodeid[node])
            if gid >= 0:
                rot = (to_inertial * Rotation.from_quat(m.geom_quat[gid], scalar_first=True)).as_matrix()
                centre = to_inertial.apply(m.geom_pos[gid] - ipos) + rot @ m.geom_aabb[gid, :3]
                half = np.abs(rot) @ m.geom_aabb[gid, 3:]
            else:
                kids = [start + int(k) for k in m.bvh_child[node] if k >= 0]
                lo = np.min([m.bvh_aabb[k, :3] - m.bvh_aabb[k, 3:] for k in kids], axis=0)
                hi = np.max([m.bvh_aabb[k, :3] + m.bvh_aabb[k, 3:] for k in kids], axis=0)
                centre, half = (lo + hi) / 2, (hi - lo) / 2
            m.bvh_aabb[node] = [*centre, *half]

    def friction_geom_ids(self) -> list[int]:
        """Ids of the peg's and the fixture's geoms (the ones ``set_friction_scale`` scales)."""
        return [self.peg_geom_id, *self.fixture_geom_ids]

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
