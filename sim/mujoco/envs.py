"""The MuJoCo backend's pieces for :mod:`robot_rl.sim.envs` (which assembles the env once for
every backend), and its env factories.

The ``robot_rl/Panda*-v0`` IDs reach these through ``backend="mujoco"`` (the default; see
:mod:`robot_rl.sim_registration`).
"""

from __future__ import annotations

import numpy as np

from robot_rl.env import RobotEnv
from robot_rl.interfaces import WorkspaceBox

from .. import envs as _envs
from .arm import MujocoArm
from .camera import MujocoCamera
from .scene import ARM_VISUAL_GROUP, WRIST_CAMERA, PandaPhysics, SceneConfig

__all__ = ["PandaPhysics", "SceneConfig", "make_arm", "make_camera", "make_pick_lift_env", "make_push_env"]


def make_arm(physics: PandaPhysics, workspace: WorkspaceBox, home_tcp_position_m: np.ndarray,
             control_hz: float) -> MujocoArm:
    """The scene's Panda as an :class:`~robot_rl.interfaces.Arm` (see :class:`MujocoArm`)."""
    return MujocoArm(physics, workspace, home_tcp_position_m, control_hz=control_hz)


def make_camera(physics: PandaPhysics, name: str, height: int, width: int) -> MujocoCamera:
    """Camera ``name`` of the scene rendering (height, width) images; the wrist camera skips the
    arm links it cannot see (half its render time)."""
    return MujocoCamera(physics, name, height, width,
                        hidden_geom_groups=(ARM_VISUAL_GROUP,) if name == WRIST_CAMERA else ())


def make_pick_lift_env(**kwargs) -> RobotEnv:
    """:func:`robot_rl.sim.envs.make_pick_lift_env` with ``backend="mujoco"``."""
    return _envs.make_pick_lift_env(backend="mujoco", **kwargs)


def make_push_env(**kwargs) -> RobotEnv:
    """:func:`robot_rl.sim.envs.make_push_env` with ``backend="mujoco"``."""
    return _envs.make_push_env(backend="mujoco", **kwargs)
