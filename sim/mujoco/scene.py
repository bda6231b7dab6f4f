"""The MuJoCo scene: a Franka Panda with its parallel gripper at a table, a cube, a target marker.

The arm comes from pybullet's ``pybullet_data/franka_panda/panda.urdf`` (meshes are read in place
from the installed ``pybullet_data`` package, never copied) and is completed with
:class:`mujoco.MjSpec`: joint-space position actuators with gravity compensation, a finger
actuator, finger pads, a tool-centre-point site, a wrist camera, the table, the cube, lights and a
front camera.

Frames: the world frame is the robot base frame (``panda_link0``): x forward, y left, z up, origin
at the base, the table top at z = 0.

Collision groups: robot geoms collide with the world (table, cube) but not with each other (the
URDF's convex hulls of neighbouring links overlap); world geoms collide with everything.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import warnings
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from ..geometry import TableSceneConfig
from ..insertion import PegHoleGeometry

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
TCP_SITE = "tcp"
CUBE_BODY = "cube"
TARGET_BODY = "target"
FRONT_CAMERA = "front"
WRIST_CAMERA = "wrist"

#: Travel of each finger from closed to fully open (URDF joint limit), metres.
FINGER_TRAVEL_M = 0.04

# contype / conaffinity bits: robot geoms touch the world but not each other.
_ROBOT_CONTYPE, _ROBOT_CONAFFINITY = 2, 1
_WORLD_CONTYPE, _WORLD_CONAFFINITY = 1, 3
# geom groups: 0 = world, 1 = hand and finger visuals, 2 = arm link visuals (the wrist camera
# never sees them and skips them: they are ~90% of the triangles), 3 = collision meshes (hidden).
HAND_VISUAL_GROUP, ARM_VISUAL_GROUP, _COLLISION_GROUP = 1, 2, 3
_HAND_BODIES = ("panda_hand", "panda_leftfinger", "panda_rightfinger")

# Position-servo gains of the arm joints (N·m/rad, N·m·s/rad) and torque limits (N·m, URDF
# efforts), as in MuJoCo Menagerie's franka_emika_panda model.
_ARM_KP = (4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0)
_ARM_KV = (450.0, 450.0, 350.0, 350.0, 200.0, 200.0, 200.0)
_ARM_TORQUE_LIMIT_NM = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
_ARM_ARMATURE = 0.1  # kg·m², reflected rotor inertia (Menagerie)
_ARM_DAMPING = 1.0  # N·m·s/rad joint friction (Menagerie)

# Finger servo: 1000 N/m stiffness saturating at the URDF effort of 20 N per finger.
_FINGER_KP_N_PER_M = 1000.0
_FINGER_FORCE_LIMIT_N = 20.0
_FINGER_DAMPING = 10.0  # N·s/m, critically damps the 0.1 kg finger at this stiffness


@dataclass
class SceneConfig(TableSceneConfig):
    """What the scene contains and how it is simulated."""

    cube_friction: tuple[float, float, float] = (1.0, 0.01, 0.001)
    """sliding, torsional (m), rolling (m) friction of the cube (MuJoCo geom friction)."""
    pad_friction: tuple[float, float, float] = (1.5, 0.01, 0.001)
    """friction of the finger pads; MuJoCo uses the larger of two geoms' coefficients."""
    table_friction: tuple[float, float, float] = (0.5, 0.005, 0.0001)
    """table friction; low enough that the cube slides when pushed."""
    insertion: PegHoleGeometry | None = None
    """add a peg held by the hand and a fixture with a square hole (:mod:`robot_rl.sim.mujoco.insertion`)."""


def _panda_urdf_text(directory: Path) -> str:
    """The pybullet Panda URDF with a ``<mujoco>`` compiler element that keeps mesh paths."""
    text = (directory / "panda.urdf").read_text()
    text = text.replace("package://", "")
    compiler = (f'<mujoco><compiler strippath="false" meshdir="{directory}" discardvisual="false" '
                'fusestatic="false" balanceinertia="true"/></mujoco>')
    head, sep, tail = text.partition(">\n  <link")  # end of the <robot ...> start tag
    if not sep:
        raise RuntimeError(f"unexpected layout of {directory / 'panda.urdf'}: no <robot> tag before the links")
    return head + ">" + compiler + "\n  <link" + tail


def _look_at_quat(position: np.ndarray, lookat: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """(4,) wxyz quaternion of a MuJoCo camera (looking along its -z, y up) at ``position`` facing ``lookat``."""
    forward = np.asarray(lookat, float) - np.asarray(position, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    mat = np.stack([right, cam_up, -forward], axis=1)  # columns: camera x, y, z in the parent frame
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.flatten())
    return quat


def _build_panda_spec(cfg: SceneConfig) -> mujoco.MjSpec:
    """The URDF Panda with actuators, gravity compensation, finger pads, TCP site, wrist camera."""
    import pybullet_data

    directory = Path(pybullet_data.getDataPath()) / "franka_panda"
    spec = mujoco.MjSpec.from_string(_panda_urdf_text(directory))
    names = [m.name for m in spec.meshes]
    # MuJoCo names a mesh after its file (visual/link1.obj and collision/link1.obj both "link1")
    # and renames the second ("link11"); make sure every geom still shows the file it was given.
    if len(set(names)) != len(names):
        raise RuntimeError(f"mesh names collide after loading {directory / 'panda.urdf'}: {names}")
    for geom in spec.geoms:
        if geom.contype == 0 and geom.conaffinity == 0:  # a URDF <visual>
            geom.group = HAND_VISUAL_GROUP if geom.parent.name in _HAND_BODIES else ARM_VISUAL_GROUP
        else:
            geom.group = _COLLISION_GROUP
            geom.contype, geom.conaffinity = _ROBOT_CONTYPE, _ROBOT_CONAFFINITY
    for body in spec.bodies:
        if body.name.startswith("panda_"):
            body.gravcomp = 1.0
    for name, kp, kv, limit in zip(ARM_JOINTS, _ARM_KP, _ARM_KV, _ARM_TORQUE_LIMIT_NM):
        joint = spec.joint(name)
        joint.armature, joint.damping = _ARM_ARMATURE, [_ARM_DAMPING, 0.0, 0.0]
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=kp, kv=kv)
        act.forcelimited, act.forcerange = True, [-limit, limit]
        act.ctrllimited, act.ctrlrange = True, list(joint.range)
    for name in FINGER_JOINTS:
        spec.joint(name).damping = [_FINGER_DAMPING, 0.0, 0.0]
    # The URDF <mimic> became an equality constraint finger2 = finger1, so one servo drives both.
    act = spec.add_actuator(name="fingers", target=FINGER_JOINTS[0], trntype=mujoco.mjtTrn.mjTRN_JOINT)
    act.set_to_position(kp=_FINGER_KP_N_PER_M)
    act.forcelimited, act.forcerange = True, [-_FINGER_FORCE_LIMIT_N, _FINGER_FORCE_LIMIT_N]
    act.ctrllimited, act.ctrlrange = True, [0.0, FINGER_TRAVEL_M]
    # Finger pads: a finger's URDF collision mesh is one convex hull with a slanted inner face;
    # flat box pads on the fingertips (0.5 mm proud of the hull) give two parallel contact
    # faces, like the real rubber pads. Finger frame: y points into the gap, z along the finger.
    pad_half_m = np.array([0.0085, 0.003, 0.0105])  # across, thickness, along the finger
    pad_inner_face_m, pad_centre_along_m = -0.0021, 0.0445
    for finger, sign in (("panda_leftfinger", 1.0), ("panda_rightfinger", -1.0)):
        spec.body(finger).add_geom(
            name=f"{finger}_pad", type=mujoco.mjtGeom.mjGEOM_BOX, size=pad_half_m,
            pos=[0.0, sign * (pad_inner_face_m + pad_half_m[1]), pad_centre_along_m],
            friction=cfg.pad_friction, condim=4, contype=_ROBOT_CONTYPE, conaffinity=_ROBOT_CONAFFINITY,
            group=HAND_VISUAL_GROUP, rgba=[0.15, 0.15, 0.15, 1.0])
    spec.body("panda_grasptarget").add_site(name=TCP_SITE, size=[0.005, 0, 0], rgba=[1, 0, 0, 0])
    # Wrist camera on the hand (hand frame: z towards the fingertips, fingers move along y),
    # mounted beside the flange like a RealSense D405 and looking at the fingertips.
    wrist_pos = np.array([0.06, 0.0, 0.02])
    spec.body("panda_hand").add_camera(
        name=WRIST_CAMERA, pos=wrist_pos, fovy=cfg.wrist_camera_fovy_deg,
        quat=_look_at_quat(wrist_pos, np.array([0.0, 0.0, 0.13]), up=(1.0, 0.0, 0.0)))
    return spec


def build_model(cfg: SceneConfig) -> mujoco.MjModel:
    """Compile the scene described by ``cfg``.

    Raises:
        RuntimeError: pybullet's Panda URDF is missing or laid out differently than expected.
    """
    spec = _build_panda_spec(cfg)
    spec.modelname = "panda_table"
    spec.option.timestep = cfg.sim_dt_s
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0  # stiffer friction than normal forces: grasps do not creep
    spec.visual.global_.offwidth = spec.visual.global_.offheight = 1024
    spec.visual.quality.shadowsize = 2048 if cfg.shadows else 0
    spec.visual.headlight.ambient = [0.3, 0.3, 0.3]
    spec.visual.headlight.diffuse = [0.4, 0.4, 0.4]
    world = spec.worldbody
    world.add_light(name="top", pos=[0.5, 0.0, 1.5], dir=[0.0, 0.0, -1.0], castshadow=cfg.shadows,
                    diffuse=[0.6, 0.6, 0.6])
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2.0, 2.0, 0.05],
                   pos=[0.0, 0.0, -0.75], rgba=[0.35, 0.35, 0.38, 1.0], contype=0, conaffinity=0)
    table_half_m = np.array([0.65, 0.6, 0.025])
    world.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=table_half_m,
                   pos=[0.35, 0.0, -table_half_m[2]], rgba=[0.55, 0.42, 0.3, 1.0],
                   friction=cfg.table_friction, contype=_WORLD_CONTYPE, conaffinity=_WORLD_CONAFFINITY)
    cube = world.add_body(name=CUBE_BODY, pos=[0.5, 0.0, cfg.cube_half_size_m])
    cube.add_freejoint(name="cube_joint")
    cube.add_geom(name="cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[cfg.cube_half_size_m] * 3,
                  mass=cfg.cube_mass_kg, friction=cfg.cube_friction, condim=4, rgba=[0.85, 0.1, 0.1, 1.0],
                  contype=_WORLD_CONTYPE, conaffinity=_WORLD_CONAFFINITY)
    if cfg.with_target:
        target = world.add_body(name=TARGET_BODY, mocap=True, pos=[0.6, 0.0, 0.0])
        target.add_geom(name="target", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[cfg.target_radius_m, 0.0005, 0],
                        rgba=[0.1, 0.8, 0.2, 1.0], contype=0, conaffinity=0)
    if cfg.insertion is not None:
        from .insertion import add_peg_and_fixture

        add_peg_and_fixture(spec, cfg.insertion, (_ROBOT_CONTYPE, _ROBOT_CONAFFINITY),
                            (_WORLD_CONTYPE, _WORLD_CONAFFINITY), HAND_VISUAL_GROUP)
    front_pos = np.array(cfg.front_camera_position_m)
    world.add_camera(name=FRONT_CAMERA, pos=front_pos, fovy=cfg.front_camera_fovy_deg,
                     quat=_look_at_quat(front_pos, np.array(cfg.front_camera_lookat_m)))
    with warnings.catch_warnings():  # pybullet's visual .obj files lack some texture coordinates
        warnings.filterwarnings("ignore", message=".*texture coordinate.*")
        return spec.compile()


def _axis_angle(rotvec) -> tuple[np.ndarray, float]:
    """(unit axis (3,), angle rad) of a rotation vector; any axis for a zero rotation."""
    rotvec = np.asarray(rotvec, float)
    angle = float(np.linalg.norm(rotvec))
    return (rotvec / angle if angle > 0 else np.array([0.0, 0.0, 1.0])), angle


class PandaPhysics:
    """The compiled scene and its state, with the ids the arm, cameras and tasks need.

    Attributes:
        config: the :class:`SceneConfig` the model was built from.
        model: the compiled ``mujoco.MjModel``.
        data: the ``mujoco.MjData`` every component reads and steps.
    """

    def __init__(self, config: SceneConfig | None = None):
        self.config = config if config is not None else SceneConfig()
        self.model = build_model(self.config)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.arm_qpos_adr = np.array([m.jnt_qposadr[m.joint(j).id] for j in ARM_JOINTS])
        self.arm_dof_adr = np.array([m.jnt_dofadr[m.joint(j).id] for j in ARM_JOINTS])
        self.arm_actuator_ids = np.array([m.actuator(j).id for j in ARM_JOINTS])
        self.finger_qpos_adr = np.array([m.jnt_qposadr[m.joint(j).id] for j in FINGER_JOINTS])
        self.finger_actuator_id = m.actuator("fingers").id
        self.tcp_site_id = m.site(TCP_SITE).id
        self.cube_body_id = m.body(CUBE_BODY).id
        self.cube_geom_id = m.geom("cube").id
        self.cube_qpos_adr = int(m.jnt_qposadr[m.joint("cube_joint").id])
        self.pad_geom_ids = (m.geom("panda_leftfinger_pad").id, m.geom("panda_rightfinger_pad").id)
        hand_root = m.body("panda_hand").id
        self.hand_body_ids = frozenset(b for b in range(m.nbody) if self._has_ancestor(b, hand_root))
        self.target_mocap_id = int(m.body_mocapid[m.body(TARGET_BODY).id]) if self.config.with_target else -1
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.insertion = None
        """the peg and the fixture (:class:`~robot_rl.sim.mujoco.insertion.MujocoPegHole`) with ``config.insertion``."""
        if self.config.insertion is not None:
            from .insertion import MujocoPegHole

            self.insertion = MujocoPegHole(self)
        # Built-in values the randomisation and sim-parameter hooks scale or restore.
        self.table_geom_id = m.geom("table").id
        self._friction_geoms = (self.cube_geom_id, self.table_geom_id, *self.pad_geom_ids,
                                *(self.insertion.friction_geom_ids() if self.insertion is not None else ()))
        self._nominal = {
            "cube_mass": float(m.body_mass[self.cube_body_id]), "cube_inertia": m.body_inertia[self.cube_body_id].copy(),
            "friction": m.geom_friction[list(self._friction_geoms), 0].copy(),
            "cam_pos": m.cam_pos.copy(), "cam_quat": m.cam_quat.copy(), "geom_rgba": m.geom_rgba.copy(),
            "cam_pos_builtin": m.cam_pos.copy(), "cam_quat_builtin": m.cam_quat.copy(),
            "light_dir": m.light_dir.copy(), "light_diffuse": m.light_diffuse.copy(),
            "headlight_ambient": np.array(m.vis.headlight.ambient),
            "damping": m.dof_damping[self.arm_dof_adr].copy(), "frictionloss": m.dof_frictionloss[self.arm_dof_adr].copy(),
            "armature": m.dof_armature[self.arm_dof_adr].copy(),
            "finger_force": m.actuator_forcerange[self.finger_actuator_id].copy(),
        }

    # ------------------------------------------------------------------ randomisation / sysid hooks
    def set_object_mass_scale(self, scale: float) -> None:
        """Cube mass (and inertia) = ``scale`` x the built-in mass (``SceneConfig.cube_mass_kg``)."""
        self.model.body_mass[self.cube_body_id] = self._nominal["cube_mass"] * scale
        self.model.body_inertia[self.cube_body_id] = self._nominal["cube_inertia"] * scale

    def object_mass_kg(self) -> float:
        """Current cube mass, kg."""
        return float(self.model.body_mass[self.cube_body_id])

    def set_friction_scale(self, scale: float) -> None:
        """Sliding friction of the cube, table and finger pads (and of the peg and fixture of an
        insertion scene) = ``scale`` x their built-in values."""
        self.model.geom_friction[list(self._friction_geoms), 0] = self._nominal["friction"] * scale

    def friction_coefficients(self) -> dict[str, float]:
        """Current sliding friction coefficients of ``cube``, ``table`` and the (left) ``pad``; with
        a peg and fixture also ``peg_fixture``, the coefficient of their contact (MuJoCo uses the
        larger of the two geoms')."""
        f = self.model.geom_friction[:, 0]
        out = {"cube": float(f[self.cube_geom_id]), "table": float(f[self.table_geom_id]),
               "pad": float(f[self.pad_geom_ids[0]])}
        if self.insertion is not None:
            out["peg_fixture"] = float(max(f[self.insertion.peg_geom_id], f[self.insertion.fixture_geom_ids[0]]))
        return out

    def set_geom_rgba(self, name: str, rgba) -> None:
        """Colour (4,) RGBA in [0, 1] of the geom ``name`` (``cube``, ``table``, ``floor``, ``target``)."""
        self.model.geom_rgba[self.model.geom(name).id] = rgba

    def geom_rgba(self, name: str) -> np.ndarray:
        """(4,) RGBA of the geom ``name``."""
        return self.model.geom_rgba[self.model.geom(name).id].copy()

    def set_light(self, direction, intensity: float, ambient: float) -> None:
        """The top light: (3,) unit ``direction`` it shines along (base frame), diffuse
        ``intensity`` and headlight ``ambient`` level, both in [0, 1] (grey light)."""
        d = np.asarray(direction, float)
        self.model.light_dir[0] = d / np.linalg.norm(d)
        self.model.light_diffuse[0] = intensity
        self.model.vis.headlight.ambient[:] = ambient

    def set_camera_pose_offset(self, name: str, position_m, rotation_rotvec_rad) -> None:
        """Move camera ``name`` from its built-in pose: (3,) translation in metres and (3,)
        rotation vector in radians, both in the camera's parent frame (base for ``front``,
        hand for ``wrist``); the rotation turns the camera about its own position."""
        cid = self.model.camera(name).id
        self.model.cam_pos[cid] = self._nominal["cam_pos"][cid] + np.asarray(position_m, float)
        offset_quat = np.empty(4)
        mujoco.mju_axisAngle2Quat(offset_quat, *_axis_angle(rotation_rotvec_rad))
        mujoco.mju_mulQuat(self.model.cam_quat[cid], offset_quat, self._nominal["cam_quat"][cid])

    def camera_position_offset_m(self, name: str) -> np.ndarray:
        """(3,) current position offset of camera ``name`` from its (calibrated) pose, parent frame, metres."""
        cid = self.model.camera(name).id
        return self.model.cam_pos[cid] - self._nominal["cam_pos"][cid]

    def set_camera_calibration(self, name: str, position_m, rotation_rotvec_rad) -> None:
        """Move camera ``name`` for good to a calibrated pose: (3,) translation, metres, and (3,)
        rotation vector, radians, from its built-in pose, parent frame (as
        :meth:`set_camera_pose_offset`, whose jitter then applies around the calibrated pose)."""
        cid = self.model.camera(name).id
        nom = self._nominal
        nom["cam_pos"][cid] = nom["cam_pos_builtin"][cid] + np.asarray(position_m, float)
        offset_quat = np.empty(4)
        mujoco.mju_axisAngle2Quat(offset_quat, *_axis_angle(rotation_rotvec_rad))
        mujoco.mju_mulQuat(nom["cam_quat"][cid], offset_quat, nom["cam_quat_builtin"][cid])
        self.set_camera_pose_offset(name, np.zeros(3), np.zeros(3))

    def camera_parent_rotation(self, name: str) -> np.ndarray:
        """(3, 3) rotation of camera ``name``'s parent frame in the base frame (identity for ``front``,
        the hand's rotation for ``wrist``; at the current state)."""
        body = self.model.cam_bodyid[self.model.camera(name).id]
        return self.data.xmat[body].reshape(3, 3).copy()

    def arm_joint_damping(self) -> np.ndarray:
        """(7,) viscous damping of the arm joints, N·m·s/rad."""
        return self.model.dof_damping[self.arm_dof_adr].copy()

    def apply_sim_params(self, params) -> None:
        """Apply a :class:`robot_rl.sim.params.SimParams` (``None`` fields restore the built-in values)."""
        m, nom, dof = self.model, self._nominal, self.arm_dof_adr
        m.dof_damping[dof] = nom["damping"] if params.joint_damping_nms_per_rad is None else params.joint_damping_nms_per_rad
        m.dof_frictionloss[dof] = nom["frictionloss"] if params.joint_frictionloss_nm is None else params.joint_frictionloss_nm
        m.dof_armature[dof] = nom["armature"] if params.armature_kgm2 is None else params.armature_kgm2
        force = nom["finger_force"][1] if params.gripper_force_n is None else params.gripper_force_n
        m.actuator_forcerange[self.finger_actuator_id] = (-force, force)

    def _has_ancestor(self, body: int, ancestor: int) -> bool:
        while body != 0:
            if body == ancestor:
                return True
            body = int(self.model.body_parentid[body])
        return False

    def reset(self) -> None:
        """Reset the state to the model defaults (time 0, cube at its default pose)."""
        mujoco.mj_resetData(self.model, self.data)

    def forward(self) -> None:
        """Recompute positions, contacts and sensors after the state was set directly."""
        mujoco.mj_forward(self.model, self.data)

    def tcp_position(self) -> np.ndarray:
        """(3,) float64 tool-centre-point position, metres, base frame (a copy)."""
        return self.data.site_xpos[self.tcp_site_id].copy()

    def cube_position(self) -> np.ndarray:
        """(3,) float64 cube centre, metres, base frame (a copy)."""
        return self.data.qpos[self.cube_qpos_adr:self.cube_qpos_adr + 3].copy()

    def cube_quaternion_wxyz(self) -> np.ndarray:
        """(4,) float64 cube orientation, quaternion wxyz (MuJoCo order), base frame (a copy)."""
        return self.data.qpos[self.cube_qpos_adr + 3:self.cube_qpos_adr + 7].copy()

    def set_cube_pose(self, position: np.ndarray, yaw_rad: float) -> None:
        """Place the cube at rest: (3,) centre in metres (base frame) and yaw about z in radians."""
        adr = self.cube_qpos_adr
        self.data.qpos[adr:adr + 3] = position
        self.data.qpos[adr + 3:adr + 7] = (np.cos(yaw_rad / 2), 0.0, 0.0, np.sin(yaw_rad / 2))
        dof = self.model.jnt_dofadr[self.model.joint("cube_joint").id]
        self.data.qvel[dof:dof + 6] = 0.0

    def target_position(self) -> np.ndarray:
        """(3,) float64 centre of the target marker, metres, base frame.

        Raises:
            ValueError: the scene was built without a target (``SceneConfig.with_target``).
        """
        self._require_target()
        return self.data.mocap_pos[self.target_mocap_id].copy()

    def set_target_position(self, position: np.ndarray) -> None:
        """Move the target marker to a (3,) position in metres, base frame."""
        self._require_target()
        self.data.mocap_pos[self.target_mocap_id] = position

    def _require_target(self) -> None:
        if self.target_mocap_id < 0:
            raise ValueError("this scene has no target marker; build it with SceneConfig(with_target=True)")

    def pads_touching_cube(self) -> tuple[bool, bool]:
        """Whether the (left, right) finger pad is in contact with the cube now."""
        left = right = False
        for i in range(self.data.ncon):
            pair = {int(self.data.contact.geom1[i]), int(self.data.contact.geom2[i])}
            if self.cube_geom_id in pair:
                left = left or self.pad_geom_ids[0] in pair
                right = right or self.pad_geom_ids[1] in pair
        return left, right

    def renderer(self, height: int, width: int) -> mujoco.Renderer:
        """A ``mujoco.Renderer`` of this model for ``height`` x ``width`` pixels, shared by cameras.

        Shadows follow ``SceneConfig.shadows``; reflections and the skybox are always off (they
        cost render time and carry no task information).
        """
        key = (height, width)
        if key not in self._renderers:
            r = mujoco.Renderer(self.model, height=height, width=width)
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.config.shadows
            r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
            self._renderers[key] = r
        return self._renderers[key]

    def close(self) -> None:
        """Free the renderers (GL contexts). Idempotent."""
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
