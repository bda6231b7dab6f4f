"""Manipulation tasks on the Panda table scene: pick-and-lift and push, for every sim backend.

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

from robot_rl.envs import PICK_LIFT_EPISODE_STEPS, PUSH_EPISODE_STEPS
from robot_rl.interfaces import Task, WorkspaceBox


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


#: Task name -> task class: the ``task`` argument of :func:`robot_rl.sim.envs.make_sim_env` and of
#: :class:`robot_rl.ros.env.RosRobotEnv` (the names :mod:`robot_rl.envs` registers IDs for).
TASKS: dict[str, type[PickLiftTask] | type[PushTask]] = {"pick_lift": PickLiftTask, "push": PushTask}
