"""Manipulation tasks on the Panda table scene: pick-and-lift, push and peg insertion, for every sim backend.

The tasks read and set the scene only through :class:`TableScene` (cube and target poses, the TCP
position, finger-pad contacts), which the MuJoCo and the PyBullet scenes both implement, so reset
distributions, success checks and reward terms are the same code in both backends.

Each task follows dm_control / MuJoCo Playground: ``default_config()`` returns a fresh config
dataclass, dense reward terms are weighted by a named ``scales`` block and reported one by one.
Each task class also states its privileged observation layout (``OBSERVATION_LAYOUT``), which the
ROS env (:mod:`robot_rl.ros.env`) reads from here; this module imports no physics engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from robot_rl.envs import PEG_INSERTION_EPISODE_STEPS, PICK_LIFT_EPISODE_STEPS, PUSH_EPISODE_STEPS
from robot_rl.errors import ConfigError
from robot_rl.interfaces import Task, WorkspaceBox

from .insertion import PegHoleGeometry


class TableScene(Protocol):
    """What a task needs of a simulated Panda table scene (positions in metres, base frame)."""

    config: object
    """the scene config; tasks read ``config.cube_half_size_m`` (metres)."""

    def forward(self) -> None:
        """Recompute derived quantities after the state was set directly."""

    def tcp_position(self) -> np.ndarray:
        """(3,) tool-centre-point position."""

    def cube_position(self) -> np.ndarray:
        """(3,) cube centre."""

    def cube_quaternion_wxyz(self) -> np.ndarray:
        """(4,) cube orientation, quaternion wxyz."""

    def set_cube_pose(self, position: np.ndarray, yaw_rad: float) -> None:
        """Place the cube at rest at a (3,) centre with a yaw about z in radians."""

    def target_position(self) -> np.ndarray:
        """(3,) target centre; raises ``ValueError`` when the scene has no target."""

    def set_target_position(self, position: np.ndarray) -> None:
        """Move the target marker to a (3,) position."""

    def pads_touching_cube(self) -> tuple[bool, bool]:
        """Whether the (left, right) finger pad touches the cube now."""


def _tanh_closeness(distance_m: float, length_m: float) -> float:
    """1 at distance 0, falling smoothly to 0; 0.24 at ``length_m`` (dimensionless)."""
    return float(1.0 - np.tanh(distance_m / length_m))


def _cube_quaternion_xyzw(scene: TableScene) -> np.ndarray:
    """(4,) float32 cube orientation, quaternion xyzw with w >= 0 (one of the two equivalent signs)."""
    return Rotation.from_quat(scene.cube_quaternion_wxyz(), scalar_first=True).as_quat(canonical=True).astype(np.float32)


@dataclass
class PickLiftScales:
    """Weights of the dense pick-and-lift reward terms (each term is in [0, 1] before scaling)."""

    reach: float = 0.25
    """TCP close to the cube centre."""
    grasp: float = 0.25
    """both finger pads touch the cube."""
    lift: float = 1.0
    """cube height above rest, as a fraction of ``success_height_m``."""
    success: float = 1.0
    """the cube is lifted to ``success_height_m``."""


@dataclass
class PickLiftConfig:
    """Pick up the cube and lift it."""

    max_episode_steps: int = PICK_LIFT_EPISODE_STEPS
    """episode length in control steps (5 s at 10 Hz), as registered with gymnasium."""
    cube_xy_centre_m: tuple[float, float] = (0.5, 0.0)
    """centre of the cube's start region, base frame."""
    cube_xy_half_range_m: tuple[float, float] = (0.04, 0.04)
    """the cube starts uniformly within this half extent around the centre."""
    cube_yaw_half_range_rad: float = np.pi / 4
    """cube yaw is uniform in +-this (a cube repeats every pi / 2, so pi / 4 covers all)."""
    success_height_m: float = 0.05
    """success when the cube centre is this far above its resting height."""
    reach_length_m: float = 0.1
    """distance at which the reach term has fallen to 0.24 of its maximum."""
    workspace: WorkspaceBox = field(default_factory=lambda: WorkspaceBox((0.35, -0.2, 0.01), (0.65, 0.2, 0.3)))
    """box (base frame, metres) the TCP target is clipped into."""
    home_tcp_position_m: tuple[float, float, float] = (0.5, 0.0, 0.14)
    """TCP position at the start of every episode (tool down, gripper open)."""
    scales: PickLiftScales = field(default_factory=PickLiftScales)
    """weights of the dense reward terms."""


class PickLiftTask(Task):
    """Grasp the cube with the fingers and lift it ``success_height_m`` above the table.

    Privileged observation: :attr:`OBSERVATION_LAYOUT` (see :meth:`get_observation`).

    Args:
        physics: the scene (built without a target marker).
        config: task settings; ``default_config()`` when None.
    """

    #: (name, size) of the entries of :meth:`get_observation`, in order.
    OBSERVATION_LAYOUT: ClassVar[tuple[tuple[str, int], ...]] = (
        ("cube_position", 3), ("cube_quaternion", 4), ("cube_minus_tcp", 3))
    #: the scene needs the target marker (``SceneConfig(with_target=True)``).
    NEEDS_TARGET: ClassVar[bool] = False

    def __init__(self, physics: TableScene, config: PickLiftConfig | None = None):
        self.physics = physics
        self.config = config if config is not None else self.default_config()
        self.max_episode_steps = self.config.max_episode_steps
        self.rest_height_m = physics.config.cube_half_size_m

    @staticmethod
    def default_config() -> PickLiftConfig:
        """A fresh :class:`PickLiftConfig` with the default settings."""
        return PickLiftConfig()

    @staticmethod
    def scene_kwargs(config: object) -> dict[str, object]:
        """Keyword arguments of the backends' ``SceneConfig`` this task needs beyond the table scene: none."""
        return {}

    def initialize_episode(self, rng: np.random.Generator) -> None:
        """Place the cube at rest at a random position and yaw within the configured ranges."""
        c = self.config
        xy = np.asarray(c.cube_xy_centre_m) + rng.uniform(-1.0, 1.0, 2) * np.asarray(c.cube_xy_half_range_m)
        yaw = rng.uniform(-c.cube_yaw_half_range_rad, c.cube_yaw_half_range_rad)
        self.physics.set_cube_pose(np.array([xy[0], xy[1], self.rest_height_m]), yaw)
        self.physics.forward()

    def get_observation(self) -> dict[str, np.ndarray]:
        """``cube_position`` (3,) metres, ``cube_quaternion`` (4,) xyzw, and ``cube_minus_tcp`` (3,)
        metres (cube centre relative to the tool centre point: the quantity the grasp depends on,
        given directly so the networks need not resolve centimetres from two ~0.5 m inputs);
        float32, base frame."""
        cube = self.physics.cube_position()
        return {"cube_position": cube.astype(np.float32),
                "cube_quaternion": _cube_quaternion_xyzw(self.physics),
                "cube_minus_tcp": (cube - self.physics.tcp_position()).astype(np.float32)}

    def lift_height_m(self) -> float:
        """Height of the cube centre above its resting height, metres."""
        return float(self.physics.cube_position()[2] - self.rest_height_m)

    def is_success(self) -> bool:
        """The cube is at least ``success_height_m`` above its resting height."""
        return self.lift_height_m() >= self.config.success_height_m

    def get_reward_terms(self) -> dict[str, float]:
        """Scaled ``reach``, ``grasp``, ``lift`` and ``success`` terms; their sum is the dense reward."""
        c, s = self.config, self.config.scales
        dist = float(np.linalg.norm(self.physics.tcp_position() - self.physics.cube_position()))
        grasped = all(self.physics.pads_touching_cube())
        return {
            "reach": s.reach * _tanh_closeness(dist, c.reach_length_m),
            "grasp": s.grasp * float(grasped),
            "lift": s.lift * float(np.clip(self.lift_height_m() / c.success_height_m, 0.0, 1.0)),
            "success": s.success * float(self.is_success()),
        }


@dataclass
class PushScales:
    """Weights of the dense push reward terms (each term is in [0, 1] before scaling)."""

    reach: float = 0.25
    """TCP close to the cube centre."""
    push: float = 1.0
    """cube close to the target centre."""
    success: float = 1.0
    """the cube is within ``success_radius_m`` of the target."""


@dataclass
class PushConfig:
    """Push the cube onto the target disc."""

    max_episode_steps: int = PUSH_EPISODE_STEPS
    """episode length in control steps (6 s at 10 Hz), as registered with gymnasium."""
    cube_xy_centre_m: tuple[float, float] = (0.45, 0.0)
    """centre of the cube's start region, base frame."""
    cube_xy_half_range_m: tuple[float, float] = (0.03, 0.05)
    """the cube starts uniformly within this half extent around the centre."""
    cube_yaw_half_range_rad: float = np.pi / 4
    """cube yaw is uniform in +-this."""
    target_xy_centre_m: tuple[float, float] = (0.58, 0.0)
    """centre of the target's region, base frame."""
    target_xy_half_range_m: tuple[float, float] = (0.02, 0.08)
    """the target lies uniformly within this half extent around its centre."""
    success_radius_m: float = 0.03
    """success when the cube centre is within this horizontal distance of the target centre."""
    reach_length_m: float = 0.1
    """distance at which the reach term has fallen to 0.24 of its maximum."""
    push_length_m: float = 0.1
    """cube-to-target distance at which the push term has fallen to 0.24 of its maximum."""
    workspace: WorkspaceBox = field(default_factory=lambda: WorkspaceBox((0.3, -0.2, 0.015), (0.7, 0.2, 0.3)))
    """box (base frame, metres) the TCP target is clipped into."""
    home_tcp_position_m: tuple[float, float, float] = (0.45, 0.0, 0.14)
    """TCP position at the start of every episode (tool down, gripper open)."""
    scales: PushScales = field(default_factory=PushScales)
    """weights of the dense reward terms."""


class PushTask(Task):
    """Push the cube across the table until its centre lies on the target disc.

    Privileged observation: :attr:`OBSERVATION_LAYOUT` (see :meth:`get_observation`).

    Args:
        physics: the scene, built with ``SceneConfig(with_target=True)``.
        config: task settings; ``default_config()`` when None.

    Raises:
        ValueError: the scene has no target marker.
    """

    #: (name, size) of the entries of :meth:`get_observation`, in order.
    OBSERVATION_LAYOUT: ClassVar[tuple[tuple[str, int], ...]] = (
        ("cube_position", 3), ("cube_quaternion", 4), ("target_position", 3), ("cube_minus_tcp", 3),
        ("target_minus_cube", 3))
    #: the scene needs the target marker (``SceneConfig(with_target=True)``).
    NEEDS_TARGET: ClassVar[bool] = True

    def __init__(self, physics: TableScene, config: PushConfig | None = None):
        physics.target_position()  # raises if the scene has no target
        self.physics = physics
        self.config = config if config is not None else self.default_config()
        self.max_episode_steps = self.config.max_episode_steps

    @staticmethod
    def default_config() -> PushConfig:
        """A fresh :class:`PushConfig` with the default settings."""
        return PushConfig()

    @staticmethod
    def scene_kwargs(config: object) -> dict[str, object]:
        """Keyword arguments of the backends' ``SceneConfig`` this task needs beyond the table scene: none."""
        return {}

    def initialize_episode(self, rng: np.random.Generator) -> None:
        """Place the cube and the target at random positions (and the cube at a random yaw)."""
        c = self.config
        half = self.physics.config.cube_half_size_m
        xy = np.asarray(c.cube_xy_centre_m) + rng.uniform(-1.0, 1.0, 2) * np.asarray(c.cube_xy_half_range_m)
        yaw = rng.uniform(-c.cube_yaw_half_range_rad, c.cube_yaw_half_range_rad)
        self.physics.set_cube_pose(np.array([xy[0], xy[1], half]), yaw)
        target = np.asarray(c.target_xy_centre_m) + rng.uniform(-1.0, 1.0, 2) * np.asarray(c.target_xy_half_range_m)
        self.physics.set_target_position(np.array([target[0], target[1], 0.0]))
        self.physics.forward()

    def get_observation(self) -> dict[str, np.ndarray]:
        """Cube position (3,), cube quaternion (4,) xyzw, target position (3,), cube minus TCP (3,)
        and target minus cube (3,); float32, metres, base frame."""
        cube, target = self.physics.cube_position(), self.physics.target_position()
        return {"cube_position": cube.astype(np.float32),
                "cube_quaternion": _cube_quaternion_xyzw(self.physics),
                "target_position": target.astype(np.float32),
                "cube_minus_tcp": (cube - self.physics.tcp_position()).astype(np.float32),
                "target_minus_cube": (target - cube).astype(np.float32)}

    def cube_to_target_m(self) -> float:
        """Horizontal distance from the cube centre to the target centre, metres."""
        return float(np.linalg.norm(self.physics.cube_position()[:2] - self.physics.target_position()[:2]))

    def is_success(self) -> bool:
        """The cube centre is within ``success_radius_m`` of the target centre."""
        return self.cube_to_target_m() <= self.config.success_radius_m

    def get_reward_terms(self) -> dict[str, float]:
        """Scaled ``reach``, ``push`` and ``success`` terms; their sum is the dense reward."""
        c, s = self.config, self.config.scales
        dist = float(np.linalg.norm(self.physics.tcp_position() - self.physics.cube_position()))
        return {
            "reach": s.reach * _tanh_closeness(dist, c.reach_length_m),
            "push": s.push * _tanh_closeness(self.cube_to_target_m(), c.push_length_m),
            "success": s.success * float(self.is_success()),
        }


class InsertionParts(Protocol):
    """The peg and the fixture of an insertion scene (``physics.insertion``; metres, base frame,
    quaternions xyzw; frames as in :mod:`robot_rl.sim.insertion`)."""

    geometry: PegHoleGeometry
    """the current sizes; the success check reads the hole's from here (with clearance randomisation,
    :meth:`robot_rl.sim.mujoco.insertion.MujocoPegHole.set_clearance`, they differ from the task config's)."""

    def set_grasp(self, offset_x_m: float, offset_z_m: float, tilt_rad: float) -> None:
        """Hold the peg at this grasp offset (:func:`robot_rl.sim.insertion.peg_in_tool`)."""

    def set_hole_pose(self, position: np.ndarray, rotation: Rotation) -> None:
        """Place the fixture: (3,) hole-entry centre and the hole frame's rotation."""

    def hole_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(3,) hole-entry centre and (4,) quaternion of the hole frame."""

    def peg_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(3,) peg tip and (4,) quaternion of the peg frame."""


class InsertionScene(TableScene, Protocol):
    """A :class:`TableScene` built with ``SceneConfig(insertion=PegHoleGeometry(...))``."""

    insertion: InsertionParts


@dataclass
class PegInsertionScales:
    """Weights of the dense peg-insertion reward terms (each term is in [0, 1] before scaling)."""

    reach: float = 0.25
    """peg tip close to where success begins: on the hole's axis, ``success_depth_m`` below the entry."""
    align: float = 0.25
    """peg axis and faces turned like the hole's (the square's 90 degree symmetry is free)."""
    insert: float = 1.0
    """insertion depth as a fraction of ``success_depth_m`` (0 while the tip is not over the opening)."""
    success: float = 1.0
    """the peg tip is ``success_depth_m`` deep in the hole."""


@dataclass
class PegInsertionConfig:
    """Insert the peg held in the gripper into the square hole of the fixture."""

    max_episode_steps: int = PEG_INSERTION_EPISODE_STEPS
    """episode length in control steps (6 s at 10 Hz), as registered with gymnasium."""
    geometry: PegHoleGeometry = field(default_factory=PegHoleGeometry)
    """peg and hole sizes (clearance 1 mm: 0.5 mm of play per side)."""
    hole_xy_centre_m: tuple[float, float] = (0.5, 0.0)
    """centre of the region of the hole's entry, base frame."""
    hole_xy_half_range_m: tuple[float, float] = (0.04, 0.06)
    """the hole's entry lies uniformly within this half extent around the centre."""
    hole_yaw_half_range_rad: float = 0.3
    """the fixture's yaw about the base z axis is uniform in +-this (the square repeats every pi / 2)."""
    hole_tilt_range_rad: tuple[float, float] = (0.0, 0.0)
    """the hole's axis leans from vertical by an angle uniform in this range, towards a uniform random
    direction (the fixture rests on the table on its lowest corner); (0, 0): upright. With the grasp
    tilt it must stay within the env's ``max_tilt_rad`` (30 degrees by default)."""
    grasp_offset_x_half_range_m: float = 0.003
    """the peg sits uniformly within +-this along the pads (tool x) from a centred grasp."""
    grasp_offset_z_half_range_m: float = 0.005
    """... and within +-this deeper or shallower in the grip (tool z)."""
    grasp_tilt_half_range_rad: float = 0.1
    """... and tilted uniformly within +-this about the pads' normal (tool y; 0.1 rad = 5.7 degrees).
    A tilted peg fits a hole of clearance c down to depth d while tilt < ~c / d (0.05 rad at the
    success depth); measured with a tool-down descent (yaw corrected, roll / pitch not; 10 episodes
    each): MuJoCo 10/10 at 0.08 rad, 0/10 at 0.1 rad (jammed); PyBullet 10/10 at 0.1 rad, because its
    grasp constraint yields and the peg turns in the hand. So roll and pitch actions matter here."""
    success_depth_m: float = 0.02
    """success when the peg tip is this far below the hole's entry (and inside the opening)."""
    reach_length_m: float = 0.05
    """tip-to-goal distance at which the reach term has fallen to 0.24 of its maximum (the goal: on the
    hole's axis, ``success_depth_m`` below the entry)."""
    align_length_rad: float = 0.1
    """peg-to-hole rotation angle at which the align term has fallen to 0.24 of its maximum."""
    workspace: WorkspaceBox = field(default_factory=lambda: WorkspaceBox((0.38, -0.15, 0.04), (0.62, 0.15, 0.25)))
    """box (base frame, metres) the TCP target is clipped into; its floor lets the peg tip reach the
    table (the hole's floor) but not the TCP."""
    home_tcp_position_m: tuple[float, float, float] = (0.5, 0.0, 0.15)
    """TCP position at the start of every episode (tool down, peg tip 10.5 cm above the table)."""
    scales: PegInsertionScales = field(default_factory=PegInsertionScales)
    """weights of the dense reward terms."""


def _square_symmetric_relative(hole: Rotation, peg: Rotation) -> Rotation:
    """The peg's rotation in the hole frame, ``hole^-1 * peg``, taken as the smallest of the four
    equivalent ones (a square peg fits the square hole in four yaws 90 degrees apart)."""
    rel = hole.inv() * peg
    options = [Rotation.from_rotvec([0.0, 0.0, k * np.pi / 2]) * rel for k in range(4)]
    return min(options, key=lambda r: r.magnitude())


class PegInsertionTask(Task):
    """Insert the peg held in the gripper ``success_depth_m`` deep into the fixture's square hole.

    Each episode places the fixture at a random position and yaw on the table and the peg at a
    random grasp offset in the hand (along the pads, in the grip, tilted about the pads' normal);
    see :mod:`robot_rl.sim.insertion` for the geometry and frames. The table cube of the shared
    scene is parked out of reach, behind the robot.

    Source: the insertion tasks of SERL (Luo et al. 2024, arXiv:2401.16013: peg / PCB insertion
    with a held part, randomised target, impedance control) and HIL-SERL (arXiv:2410.21845); the
    sizes and ranges here are ours.

    Privileged observation: :attr:`OBSERVATION_LAYOUT` (see :meth:`get_observation`).

    Args:
        physics: a scene built with ``SceneConfig(**PegInsertionTask.scene_kwargs(config))``.
        config: task settings; ``default_config()`` when None.

    Raises:
        ConfigError: the hole's pose range, with the grasp offsets, puts the peg's tip outside
            the TCP workspace (in xy, or the TCP cannot go low enough to reach the success
            depth), or the success depth is not within the hole's depth; checked here, before
            anything moves.
        ValueError: the scene has no peg and fixture.
    """

    #: (name, size) of the entries of :meth:`get_observation`, in order.
    OBSERVATION_LAYOUT: ClassVar[tuple[tuple[str, int], ...]] = (
        ("hole_position", 3), ("hole_quaternion", 4), ("peg_tip_in_hole", 3), ("peg_rotation_in_hole", 3),
        ("peg_tip_minus_tcp", 3))
    #: the scene needs the target marker (``SceneConfig(with_target=True)``).
    NEEDS_TARGET: ClassVar[bool] = False
    #: where the unused table cube waits (base frame, metres): behind the robot, out of the workspace.
    CUBE_PARKING_XY_M: ClassVar[tuple[float, float]] = (-0.2, 0.45)

    def __init__(self, physics: InsertionScene, config: PegInsertionConfig | None = None):
        self.config = config if config is not None else self.default_config()
        check_insertion_config(self.config)
        if getattr(physics, "insertion", None) is None:
            raise ValueError("this scene has no peg and fixture; build it with "
                             "SceneConfig(**PegInsertionTask.scene_kwargs(config))")
        self.physics = physics
        self.max_episode_steps = self.config.max_episode_steps

    @staticmethod
    def default_config() -> PegInsertionConfig:
        """A fresh :class:`PegInsertionConfig` with the default settings."""
        return PegInsertionConfig()

    @staticmethod
    def scene_kwargs(config: PegInsertionConfig) -> dict[str, object]:
        """Keyword arguments of the backends' ``SceneConfig`` this task needs (the peg and fixture)."""
        return {"insertion": config.geometry}

    def initialize_episode(self, rng: np.random.Generator) -> None:
        """Draw the fixture's pose and the grasp offset (in that order, from ``rng``) and set them."""
        c, ins = self.config, self.physics.insertion
        xy = np.asarray(c.hole_xy_centre_m) + rng.uniform(-1.0, 1.0, 2) * np.asarray(c.hole_xy_half_range_m)
        yaw = rng.uniform(-c.hole_yaw_half_range_rad, c.hole_yaw_half_range_rad)
        grasp = rng.uniform(-1.0, 1.0, 3) * [c.grasp_offset_x_half_range_m, c.grasp_offset_z_half_range_m,
                                            c.grasp_tilt_half_range_rad]
        rotation = Rotation.from_rotvec([0.0, 0.0, yaw])
        if c.hole_tilt_range_rad[1] > 0.0:  # drawn last, and only when tilting: upright draws stay the same
            tilt, direction = rng.uniform(*c.hole_tilt_range_rad), rng.uniform(0.0, 2 * np.pi)
            rotation = Rotation.from_rotvec(tilt * np.array([-np.sin(direction), np.cos(direction), 0.0])) * rotation
        half = self.physics.config.cube_half_size_m
        self.physics.set_cube_pose(np.array([*self.CUBE_PARKING_XY_M, half]), 0.0)
        ins.set_hole_pose(np.array([xy[0], xy[1], self.entry_height_m(rotation)]), rotation)
        ins.set_grasp(*map(float, grasp))
        self.physics.forward()

    def entry_height_m(self, hole_rotation: Rotation) -> float:
        """Height of the hole's entry above the table when the fixture, turned by ``hole_rotation``,
        rests on the table on its lowest corner (``hole_depth_m`` when upright), metres."""
        g = self.physics.insertion.geometry  # the scene's current one (its clearance may be randomised)
        f = g.fixture_half_width_m
        corners = np.array([[x, y, z] for x in (-f, f) for y in (-f, f) for z in (0.0, -g.hole_depth_m)])
        return float(-hole_rotation.apply(corners)[:, 2].min())

    # ------------------------------------------------------------------ geometry
    def hole_pose(self) -> tuple[np.ndarray, Rotation]:
        """(3,) hole-entry centre (metres, base frame) and the hole frame's rotation."""
        pos, quat = self.physics.insertion.hole_pose()
        return pos, Rotation.from_quat(quat)

    def peg_pose(self) -> tuple[np.ndarray, Rotation]:
        """(3,) peg tip (metres, base frame) and the peg frame's rotation."""
        pos, quat = self.physics.insertion.peg_pose()
        return pos, Rotation.from_quat(quat)

    def peg_tip_in_hole(self) -> np.ndarray:
        """(3,) float64 peg tip in the hole frame, metres (z < 0: inside, below the entry)."""
        hole_pos, hole_rot = self.hole_pose()
        return hole_rot.inv().apply(self.physics.insertion.peg_pose()[0] - hole_pos)

    def peg_rotation_in_hole(self) -> Rotation:
        """The peg frame's rotation relative to the hole frame, the smallest of the four the
        square's symmetry allows (identity when the peg is aligned)."""
        return _square_symmetric_relative(self.hole_pose()[1], self.peg_pose()[1])

    def insertion_depth_m(self) -> float:
        """How far the peg tip is below the hole's entry, metres, while it is over the opening
        (inside its square in the hole's xy); 0 otherwise."""
        tip = self.peg_tip_in_hole()
        # the scene's current geometry: with clearance randomisation it differs from config.geometry
        over_opening = bool(np.all(np.abs(tip[:2]) <= self.physics.insertion.geometry.hole_half_width_m))
        return max(0.0, float(-tip[2])) if over_opening else 0.0

    # ------------------------------------------------------------------ Task
    def get_observation(self) -> dict[str, np.ndarray]:
        """Float32 entries: ``hole_position`` (3,) metres and ``hole_quaternion`` (4,) xyzw (w >= 0),
        base frame; ``peg_tip_in_hole`` (3,) metres and ``peg_rotation_in_hole`` (3,) rotation
        vector in radians, in the hole frame (zero when the peg is aligned at the entry; given
        directly so the networks need not resolve millimetres from two ~0.5 m inputs); and
        ``peg_tip_minus_tcp`` (3,) metres, base frame (where the grasp put the tip)."""
        hole_pos, hole_rot = self.hole_pose()
        tip = self.physics.insertion.peg_pose()[0]
        return {"hole_position": hole_pos.astype(np.float32),
                "hole_quaternion": hole_rot.as_quat(canonical=True).astype(np.float32),
                "peg_tip_in_hole": hole_rot.inv().apply(tip - hole_pos).astype(np.float32),
                "peg_rotation_in_hole": self.peg_rotation_in_hole().as_rotvec().astype(np.float32),
                "peg_tip_minus_tcp": (tip - self.physics.tcp_position()).astype(np.float32)}

    def is_success(self) -> bool:
        """The peg tip is at least ``success_depth_m`` below the entry, inside the opening."""
        return self.insertion_depth_m() >= self.config.success_depth_m

    def get_reward_terms(self) -> dict[str, float]:
        """Scaled ``reach``, ``align``, ``insert`` and ``success`` terms; their sum is the dense reward."""
        c, s = self.config, self.config.scales
        to_goal = self.peg_tip_in_hole() + [0.0, 0.0, c.success_depth_m]
        return {
            "reach": s.reach * _tanh_closeness(float(np.linalg.norm(to_goal)), c.reach_length_m),
            "align": s.align * _tanh_closeness(self.peg_rotation_in_hole().magnitude(), c.align_length_rad),
            "insert": s.insert * float(np.clip(self.insertion_depth_m() / c.success_depth_m, 0.0, 1.0)),
            "success": s.success * float(self.is_success()),
        }


def check_insertion_config(config: PegInsertionConfig) -> None:
    """Reject a peg-insertion config the arm cannot carry out, before any scene is built or moved.

    The peg tip must reach every point of the hole's entry range from inside the TCP workspace
    (the TCP is ``tip_below_tcp_m`` above the tip, the grasp offsets move the tip by up to
    ``grasp_offset_x_half_range_m + tip_below_tcp_m * tilt`` sideways and
    ``grasp_offset_z_half_range_m`` along the tool), and the success depth must lie within the hole.

    Raises:
        ConfigError: naming the setting, its value and the limit it breaks.
    """
    c, g = config, config.geometry
    if not 0.0 < c.success_depth_m <= g.hole_depth_m:
        raise ConfigError(f"success_depth_m={c.success_depth_m} must be in (0, hole_depth_m={g.hole_depth_m}]")
    if min(g.clearance_m, g.peg_half_width_m, g.hole_depth_m, g.peg_length_m) <= 0.0:
        raise ConfigError(f"peg and hole sizes must be positive, got {g}")
    # TCP xy positions needed to put the tip over every entry point: the tip is off the TCP axis by
    # the x offset and the lever of the grasp's and the hole's tilt (any yaw); a tilted hole's success
    # point lies beside its entry
    tilt = c.grasp_tilt_half_range_rad + c.hole_tilt_range_rad[1]
    lever = (c.grasp_offset_x_half_range_m + (g.tip_below_tcp_m + c.grasp_offset_z_half_range_m) * np.sin(tilt)
             + c.success_depth_m * np.sin(c.hole_tilt_range_rad[1]))
    ws = c.workspace
    for axis, name in ((0, "x"), (1, "y")):
        lo = c.hole_xy_centre_m[axis] - c.hole_xy_half_range_m[axis] - lever
        hi = c.hole_xy_centre_m[axis] + c.hole_xy_half_range_m[axis] + lever
        if lo < ws.low[axis] or hi > ws.high[axis]:
            raise ConfigError(
                f"the hole's {name} range {c.hole_xy_centre_m[axis]} +- {c.hole_xy_half_range_m[axis]} m (plus "
                f"{lever:.4f} m of grasp offset) needs the TCP at {name} in [{lo:.3f}, {hi:.3f}] m, outside the "
                f"workspace [{ws.low[axis]}, {ws.high[axis]}] m; move hole_xy_centre_m, shrink hole_xy_half_range_m "
                "or widen the workspace")
    lowest_tcp_z = g.hole_depth_m - c.success_depth_m + g.tip_below_tcp_m - c.grasp_offset_z_half_range_m
    if lowest_tcp_z < ws.low[2]:
        raise ConfigError(
            f"reaching success_depth_m={c.success_depth_m} in a {g.hole_depth_m} m deep hole needs the TCP down to "
            f"z = {lowest_tcp_z:.3f} m, below the workspace floor {ws.low[2]} m; lower workspace.low[2] or the "
            "success depth")
    if c.hole_yaw_half_range_rad < 0 or min(c.hole_xy_half_range_m) < 0:
        raise ConfigError("hole_xy_half_range_m and hole_yaw_half_range_rad must be >= 0")
    if not 0.0 <= c.hole_tilt_range_rad[0] <= c.hole_tilt_range_rad[1] < np.pi / 4:
        raise ConfigError(f"hole_tilt_range_rad={c.hole_tilt_range_rad} must be (low, high) with 0 <= low <= high < pi / 4")
    if not ws.contains(np.asarray(c.home_tcp_position_m)):
        raise ConfigError(f"home_tcp_position_m={c.home_tcp_position_m} is outside the workspace {ws}")
    home_tip_z = c.home_tcp_position_m[2] - g.tip_below_tcp_m - c.grasp_offset_z_half_range_m
    if home_tip_z <= g.hole_depth_m + g.chamfer_m:
        raise ConfigError(f"at home the peg tip (z = {home_tip_z:.3f} m) would be inside the fixture "
                          f"(top at {g.hole_depth_m + g.chamfer_m} m); raise home_tcp_position_m")


class TiltedPegInsertionTask(PegInsertionTask):
    """:class:`PegInsertionTask` into a hole whose axis leans 0.15 to 0.3 rad (8.6 to 17 degrees) from
    vertical towards a random direction: the peg must be inserted along the tilted axis, so roll and
    pitch actions are needed beyond the grasp's small tilt."""

    @staticmethod
    def default_config() -> PegInsertionConfig:
        """A fresh :class:`PegInsertionConfig` with ``hole_tilt_range_rad=(0.15, 0.3)``."""
        return PegInsertionConfig(hole_tilt_range_rad=(0.15, 0.3))


#: Task name -> task class: the ``task`` argument of :func:`robot_rl.sim.envs.make_sim_env` and of
#: :class:`robot_rl.ros.env.RosRobotEnv` (the names :mod:`robot_rl.envs` registers IDs for).
TASKS: dict[str, type[PickLiftTask | PushTask | PegInsertionTask]] = {
    "pick_lift": PickLiftTask, "push": PushTask, "peg_insertion": PegInsertionTask,
    "peg_insertion_tilted": TiltedPegInsertionTask}
