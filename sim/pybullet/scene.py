"""The PyBullet scene: the same Franka Panda, table, cube and target as :mod:`robot_rl.sim.mujoco.scene`.

The arm is pybullet's ``pybullet_data/franka_panda/panda.urdf`` (the file the MuJoCo scene loads),
with the same flat finger pads added as extra collision boxes on the fingertips. Each
:class:`PandaPhysics` owns its own ``DIRECT`` client, so several scenes in one process share no
state.

Frames: the world frame is the robot base frame (``panda_link0``): x forward, y left, z up, origin
at the base, the table top at z = 0.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet
import pybullet_data
from pybullet_utils.bullet_client import BulletClient

from ..geometry import TableSceneConfig
from ..insertion import PegHoleGeometry

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
FINGER_LINKS = ("panda_leftfinger", "panda_rightfinger")
TCP_LINK = "panda_grasptarget"
HAND_LINK = "panda_hand"
FRONT_CAMERA = "front"
WRIST_CAMERA = "wrist"

#: Travel of each finger from closed to fully open (URDF joint limit), metres.
FINGER_TRAVEL_M = 0.04

# Finger pads as in the MuJoCo scene (finger frame: y across the gap, z along the finger), metres.
_PAD_HALF_M = (0.0085, 0.003, 0.0105)
_PAD_INNER_FACE_M, _PAD_CENTRE_ALONG_M = -0.0021, 0.0445


@dataclass
class SceneConfig(TableSceneConfig):
    """What the scene contains and how it is simulated; geometry and cameras as the MuJoCo scene."""

    solver_iterations: int = 100
    """constraint solver iterations per step (PyBullet's default 50 lets firm grasps creep)."""
    cube_lateral_friction: float = 1.0
    """Coulomb friction coefficient of the cube (PyBullet multiplies the two bodies' coefficients)."""
    pad_lateral_friction: float = 1.5
    """friction coefficient of the fingers (and pads)."""
    table_lateral_friction: float = 0.5
    """table friction; low enough that the cube slides when pushed."""
    insertion: PegHoleGeometry | None = None
    """add a peg held by the hand and a fixture with a square hole (:mod:`robot_rl.sim.pybullet.insertion`)."""


def _panda_urdf_with_pads(directory: Path) -> str:
    """The pybullet Panda URDF with absolute mesh paths and a box pad collision on each fingertip."""
    text = (directory / "panda.urdf").read_text().replace("package://", f"{directory}/")
    size = " ".join(f"{2 * h}" for h in _PAD_HALF_M)
    for link, sign in zip(FINGER_LINKS, (1.0, -1.0)):
        y = sign * (_PAD_INNER_FACE_M + _PAD_HALF_M[1])
        pad = (f'<collision><origin rpy="0 0 0" xyz="0 {y} {_PAD_CENTRE_ALONG_M}"/>'
               f'<geometry><box size="{size}"/></geometry></collision>\n')
        pattern = re.compile(rf'(<link name="{link}">.*?)(</link>)', re.S)
        text, n = pattern.subn(lambda m: m.group(1) + pad + m.group(2), text, count=1)
        if n != 1:
            raise RuntimeError(f"unexpected layout of {directory / 'panda.urdf'}: no link {link}")
    return text


class PandaPhysics:
    """A PyBullet ``DIRECT`` client holding the scene, with the ids the arm, cameras and tasks need.

    Implements :class:`robot_rl.sim.tasks.TableScene`.

    Attributes:
        config: the :class:`SceneConfig` the scene was built from.
        client: the ``BulletClient`` of this scene (all calls go through it).
        robot: body id of the Panda.
        time: simulation time in seconds since the last :meth:`reset`.
    """

    def __init__(self, config: SceneConfig | None = None):
        self.config = cfg = config if config is not None else SceneConfig()
        self.client = p = BulletClient(connection_mode=pybullet.DIRECT)
        self._closed = False
        p.setPhysicsEngineParameter(fixedTimeStep=cfg.sim_dt_s, numSolverIterations=cfg.solver_iterations,
                                    numSubSteps=0, deterministicOverlappingPairs=1)
        p.setGravity(0.0, 0.0, -9.81)
        directory = Path(pybullet_data.getDataPath()) / "franka_panda"
        with tempfile.NamedTemporaryFile("w", suffix=".urdf", delete=True) as f:
            f.write(_panda_urdf_with_pads(directory))
            f.flush()
            self.robot = p.loadURDF(f.name, useFixedBase=True, flags=pybullet.URDF_USE_INERTIA_FROM_FILE)
        joints = {p.getJointInfo(self.robot, j)[1].decode(): j for j in range(p.getNumJoints(self.robot))}
        links = {p.getJointInfo(self.robot, j)[12].decode(): j for j in range(p.getNumJoints(self.robot))}
        self.arm_joint_ids = [joints[n] for n in ARM_JOINTS]
        self.finger_joint_ids = [joints[n] for n in FINGER_JOINTS]
        self.movable_joint_ids = [j for j in range(p.getNumJoints(self.robot))
                                  if p.getJointInfo(self.robot, j)[2] != pybullet.JOINT_FIXED]
        self.tcp_link = links[TCP_LINK]
        self.hand_link = links[HAND_LINK]
        self.finger_links = tuple(links[n] for n in FINGER_LINKS)
        self.hand_links = {self.hand_link, *self.finger_links}
        for j in range(-1, p.getNumJoints(self.robot)):
            p.changeDynamics(self.robot, j, linearDamping=0.0, angularDamping=0.0)
        for j in self.finger_links:
            p.changeDynamics(self.robot, j, lateralFriction=cfg.pad_lateral_friction)
        for j in self.finger_joint_ids:
            p.changeDynamics(self.robot, j, jointDamping=0.0)
        table_half_m = [0.65, 0.6, 0.025]
        self.table = p.createMultiBody(
            baseMass=0.0, baseCollisionShapeIndex=p.createCollisionShape(pybullet.GEOM_BOX, halfExtents=table_half_m),
            baseVisualShapeIndex=p.createVisualShape(pybullet.GEOM_BOX, halfExtents=table_half_m,
                                                     rgbaColor=[0.55, 0.42, 0.3, 1.0]),
            basePosition=[0.35, 0.0, -table_half_m[2]])
        p.changeDynamics(self.table, -1, lateralFriction=cfg.table_lateral_friction)
        h = cfg.cube_half_size_m
        self.cube = p.createMultiBody(
            baseMass=cfg.cube_mass_kg, baseCollisionShapeIndex=p.createCollisionShape(pybullet.GEOM_BOX, halfExtents=[h] * 3),
            baseVisualShapeIndex=p.createVisualShape(pybullet.GEOM_BOX, halfExtents=[h] * 3, rgbaColor=[0.85, 0.1, 0.1, 1.0]),
            basePosition=[0.5, 0.0, h])
        p.changeDynamics(self.cube, -1, lateralFriction=cfg.cube_lateral_friction, linearDamping=0.0,
                         angularDamping=0.0)
        self.target = -1
        if cfg.with_target:
            self.target = p.createMultiBody(
                baseMass=0.0, baseCollisionShapeIndex=-1,
                baseVisualShapeIndex=p.createVisualShape(pybullet.GEOM_CYLINDER, radius=cfg.target_radius_m, length=0.001,
                                                         rgbaColor=[0.1, 0.8, 0.2, 1.0]),
                basePosition=[0.6, 0.0, 0.0])
        self.insertion = None
        """the peg and the fixture (:class:`~robot_rl.sim.pybullet.insertion.PybulletPegHole`) with ``config.insertion``."""
        if cfg.insertion is not None:
            from .insertion import PybulletPegHole

            self.insertion = PybulletPegHole(self)
        self.time = 0.0
        p.stepSimulation()  # the first step after loading builds caches later steps reuse: take it once
        self._state_id = p.saveState()
        # Randomisation / sim-parameter state read by the cameras and the arm.
        self.light: dict[str, object] = {}
        """extra ``getCameraImage`` lighting arguments (``lightDirection``, ...); empty = PyBullet's defaults."""
        self.camera_offsets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        """camera name -> ((3,) position offset m, (3, 3) rotation), parent frame (see set_camera_pose_offset)."""
        self.camera_calibrations: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        """camera name -> ((3,) position m, (3, 3) rotation) of the calibrated pose from the built-in
        one, parent frame (see set_camera_calibration); offsets apply on top."""
        self.finger_force_limit_n: float | None = None
        """finger servo force limit per finger, N; None = the arm's built-in value."""
        info = p.getDynamicsInfo(self.cube, -1)
        self._nominal = {"cube_mass": info[0], "cube_inertia": np.array(info[2]),
                         "friction": {self.cube: cfg.cube_lateral_friction, self.table: cfg.table_lateral_friction},
                         "pad_friction": cfg.pad_lateral_friction,
                         "peg_fixture_friction": ({b: p.getDynamicsInfo(b, -1)[1] for b in
                                                   (self.insertion.peg, self.insertion.fixture)}
                                                  if self.insertion is not None else {}),
                         "damping": [p.getJointInfo(self.robot, j)[6] for j in self.arm_joint_ids]}
        self._geoms = {"cube": self.cube, "table": self.table, **({"target": self.target} if cfg.with_target else {})}

    # ------------------------------------------------------------------ randomisation / sysid hooks
    def set_object_mass_scale(self, scale: float) -> None:
        """Cube mass (and inertia) = ``scale`` x the built-in mass (``SceneConfig.cube_mass_kg``)."""
        self.client.changeDynamics(self.cube, -1, mass=self._nominal["cube_mass"] * scale,
                                   localInertiaDiagonal=(self._nominal["cube_inertia"] * scale).tolist())

    def object_mass_kg(self) -> float:
        """Current cube mass, kg."""
        return float(self.client.getDynamicsInfo(self.cube, -1)[0])

    def set_friction_scale(self, scale: float) -> None:
        """Lateral friction of the cube, table and fingers = ``scale`` x their built-in values.

        The peg and the fixture of an insertion scene each get ``sqrt(scale)`` x their built-in
        value: PyBullet multiplies two bodies' coefficients, so their contact's friction is
        ``scale`` x the nominal ``PegHoleGeometry.friction``, as in MuJoCo."""
        for body, mu in self._nominal["friction"].items():
            self.client.changeDynamics(body, -1, lateralFriction=mu * scale)
        for link in self.finger_links:
            self.client.changeDynamics(self.robot, link, lateralFriction=self._nominal["pad_friction"] * scale)
        for body, mu in self._nominal["peg_fixture_friction"].items():
            self.client.changeDynamics(body, -1, lateralFriction=mu * float(np.sqrt(scale)))

    def friction_coefficients(self) -> dict[str, float]:
        """Current lateral friction coefficients of ``cube``, ``table`` and the (left) ``pad``; with
        a peg and fixture also ``peg_fixture``, the coefficient of their contact (the product of
        the two bodies', as PyBullet combines them)."""
        info = self.client.getDynamicsInfo
        out = {"cube": float(info(self.cube, -1)[1]), "table": float(info(self.table, -1)[1]),
               "pad": float(info(self.robot, self.finger_links[0])[1])}
        if self.insertion is not None:
            out["peg_fixture"] = float(info(self.insertion.peg, -1)[1] * info(self.insertion.fixture, -1)[1])
        return out

    def set_geom_rgba(self, name: str, rgba) -> None:
        """Colour (4,) RGBA in [0, 1] of ``cube``, ``table`` or ``target``."""
        self.client.changeVisualShape(self._body(name), -1, rgbaColor=[float(c) for c in rgba])

    def geom_rgba(self, name: str) -> np.ndarray:
        """(4,) RGBA of ``cube``, ``table`` or ``target``."""
        return np.array(self.client.getVisualShapeData(self._body(name))[0][7])

    def _body(self, name: str) -> int:
        if name not in self._geoms:
            raise ValueError(f"no coloured body {name!r}; this scene has {sorted(self._geoms)}")
        return self._geoms[name]

    def set_light(self, direction, intensity: float, ambient: float) -> None:
        """The renderer's light: (3,) unit ``direction`` it shines along (base frame), diffuse
        ``intensity`` and ``ambient`` coefficients in [0, 1] (PyBullet's defaults: 0.35, 0.6)."""
        d = np.asarray(direction, float)
        self.light = {"lightDirection": (-d / np.linalg.norm(d)).tolist(), "lightDiffuseCoeff": float(intensity),
                      "lightAmbientCoeff": float(ambient)}

    def set_camera_pose_offset(self, name: str, position_m, rotation_rotvec_rad) -> None:
        """Move camera ``name`` from its built-in pose: (3,) translation in metres and (3,)
        rotation vector in radians, both in the camera's parent frame (base for ``front``,
        hand for ``wrist``); the rotation turns the camera about its own position."""
        from scipy.spatial.transform import Rotation

        self.camera_offsets[name] = (np.asarray(position_m, float).copy(),
                                     Rotation.from_rotvec(rotation_rotvec_rad).as_matrix())

    def set_camera_calibration(self, name: str, position_m, rotation_rotvec_rad) -> None:
        """Move camera ``name`` for good to a calibrated pose: (3,) translation, metres, and (3,)
        rotation vector, radians, from its built-in pose, parent frame (as
        :meth:`set_camera_pose_offset`, whose jitter then applies around the calibrated pose)."""
        from scipy.spatial.transform import Rotation

        self.camera_calibrations[name] = (np.asarray(position_m, float).copy(),
                                          Rotation.from_rotvec(rotation_rotvec_rad).as_matrix())

    def camera_parent_rotation(self, name: str) -> np.ndarray:
        """(3, 3) rotation of camera ``name``'s parent frame in the base frame (identity for ``front``,
        the hand's rotation for ``wrist``; at the current state)."""
        from scipy.spatial.transform import Rotation

        if name != "wrist":
            return np.eye(3)
        quat = self.client.getLinkState(self.robot, self.hand_link, computeForwardKinematics=1)[5]
        return Rotation.from_quat(quat).as_matrix()

    def camera_position_offset_m(self, name: str) -> np.ndarray:
        """(3,) current position offset of camera ``name`` from its built-in pose, parent frame, metres."""
        return self.camera_offsets.get(name, (np.zeros(3), None))[0].copy()

    def apply_sim_params(self, params) -> None:
        """Apply a :class:`robot_rl.sim.params.SimParams` (``None`` fields restore the built-in values).

        Raises:
            ConfigError: ``joint_frictionloss_nm`` or ``armature_kgm2`` is set: PyBullet models
                neither (its joint motors are velocity constraints); fit those for MuJoCo only.
        """
        from robot_rl.errors import ConfigError

        unsupported = [n for n in ("joint_frictionloss_nm", "armature_kgm2") if getattr(params, n) is not None]
        if unsupported:
            raise ConfigError(f"the PyBullet backend cannot apply {unsupported} (no joint armature or dry-friction "
                              "model); leave them out (null) of the sim params for backend='pybullet'")
        self._joint_damping = [float(nominal if params.joint_damping_nms_per_rad is None else params.joint_damping_nms_per_rad)
                               for nominal in self._nominal["damping"]]
        for j, damping in zip(self.arm_joint_ids, self._joint_damping):
            self.client.changeDynamics(self.robot, j, jointDamping=damping)
        self.finger_force_limit_n = params.gripper_force_n

    def arm_joint_damping(self) -> np.ndarray:
        """(7,) viscous damping of the arm joints, N·m·s/rad, as last set (PyBullet's getJointInfo
        keeps reporting the URDF value after ``changeDynamics(jointDamping=...)``)."""
        return np.array(getattr(self, "_joint_damping", self._nominal["damping"]), float)

    def reset(self) -> None:
        """Restore the state right after construction (time 0, cube at its default pose)."""
        self.client.restoreState(self._state_id)
        self.time = 0.0

    def forward(self) -> None:
        """Nothing to recompute: PyBullet updates link poses on every query."""

    def step(self, n: int = 1) -> None:
        """Advance the simulation by ``n`` physics steps."""
        for _ in range(n):
            self.client.stepSimulation()
        self.time += n * self.config.sim_dt_s

    def tcp_position(self) -> np.ndarray:
        """(3,) float64 tool-centre-point position, metres, base frame."""
        return np.array(self.client.getLinkState(self.robot, self.tcp_link, computeForwardKinematics=1)[4])

    def cube_position(self) -> np.ndarray:
        """(3,) float64 cube centre, metres, base frame."""
        return np.array(self.client.getBasePositionAndOrientation(self.cube)[0])

    def cube_quaternion_wxyz(self) -> np.ndarray:
        """(4,) float64 cube orientation, quaternion wxyz (MuJoCo order, as the tasks expect), base frame."""
        x, y, z, w = self.client.getBasePositionAndOrientation(self.cube)[1]
        return np.array([w, x, y, z])

    def set_cube_pose(self, position: np.ndarray, yaw_rad: float) -> None:
        """Place the cube at rest: (3,) centre in metres (base frame) and yaw about z in radians."""
        quat = (0.0, 0.0, np.sin(yaw_rad / 2), np.cos(yaw_rad / 2))
        self.client.resetBasePositionAndOrientation(self.cube, list(map(float, position)), quat)
        self.client.resetBaseVelocity(self.cube, [0.0] * 3, [0.0] * 3)

    def target_position(self) -> np.ndarray:
        """(3,) float64 centre of the target marker, metres, base frame.

        Raises:
            ValueError: the scene was built without a target (``SceneConfig.with_target``).
        """
        self._require_target()
        return np.array(self.client.getBasePositionAndOrientation(self.target)[0])

    def set_target_position(self, position: np.ndarray) -> None:
        """Move the target marker to a (3,) position in metres, base frame."""
        self._require_target()
        self.client.resetBasePositionAndOrientation(self.target, list(map(float, position)), (0.0, 0.0, 0.0, 1.0))

    def _require_target(self) -> None:
        if self.target < 0:
            raise ValueError("this scene has no target marker; build it with SceneConfig(with_target=True)")

    def pads_touching_cube(self) -> tuple[bool, bool]:
        """Whether the (left, right) finger (pad or finger hull) is in contact with the cube now."""
        return tuple(bool(self.client.getContactPoints(self.robot, self.cube, link, -1)) for link in self.finger_links)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` disconnected the client."""
        return self._closed

    def close(self) -> None:
        """Disconnect the client. Idempotent."""
        if not self._closed:
            self._closed = True
            self.client.disconnect()
