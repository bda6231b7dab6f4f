"""The PyBullet backend's pieces for :mod:`robot_rl.sim.envs` (which assembles the env once for
every backend), and its env factories.

Same observation and action spaces as the MuJoCo backend; the ``robot_rl/Panda*-v0`` IDs reach
these through ``backend="pybullet"`` (see :mod:`robot_rl.sim_registration`).
"""

from __future__ import annotations

import numpy as np

from robot_rl.env import RobotEnv
from robot_rl.interfaces import WorkspaceBox

from .. import envs as _envs
from .arm import PybulletArm
from .camera import PybulletCamera
from .scene import PandaPhysics, SceneConfig

__all__ = ["PandaPhysics", "SceneConfig", "make_arm", "make_camera", "make_pick_lift_env", "make_push_env"]


def make_arm(physics: PandaPhysics, workspace: WorkspaceBox, home_tcp_position_m: np.ndarray,
             control_hz: float) -> PybulletArm:
    """The scene's Panda as an :class:`~robot_rl.interfaces.Arm` (see :class:`PybulletArm`)."""
    return PybulletArm(physics, workspace, home_tcp_position_m, control_hz=control_hz)


def make_camera(physics: PandaPhysics, name: str, height: int, width: int) -> PybulletCamera:
    """Camera ``name`` of the scene rendering (height, width) images."""
    return PybulletCamera(physics, name, height, width)


def make_pick_lift_env(**kwargs) -> RobotEnv:
    """:func:`robot_rl.sim.envs.make_pick_lift_env` with ``backend="pybullet"``."""
    return _envs.make_pick_lift_env(backend="pybullet", **kwargs)


def make_push_env(**kwargs) -> RobotEnv:
    """:func:`robot_rl.sim.envs.make_push_env` with ``backend="pybullet"``."""
    return _envs.make_push_env(backend="pybullet", **kwargs)
