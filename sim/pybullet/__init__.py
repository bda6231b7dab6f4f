"""PyBullet backend: the same Panda table scene and Arm / Camera as :mod:`robot_rl.sim.mujoco`,
with the same observation and action spaces.

:mod:`robot_rl.sim.envs` assembles the ``robot_rl/Panda*-v0`` envs from a backend package's four
pieces: ``PandaPhysics``, ``SceneConfig``, :func:`make_arm` and :func:`make_camera`.
"""

import numpy as np

from robot_rl.interfaces import WorkspaceBox

from .arm import PybulletArm
from .camera import PybulletCamera
from .scene import PandaPhysics, SceneConfig

__all__ = ["PandaPhysics", "PybulletArm", "PybulletCamera", "SceneConfig", "make_arm", "make_camera"]


def make_arm(physics: PandaPhysics, workspace: WorkspaceBox, home_tcp_position_m: np.ndarray,
             control_hz: float, controller: str = "position", impedance=None) -> PybulletArm:
    """The scene's Panda as an :class:`~robot_rl.interfaces.Arm` (see :class:`PybulletArm`): ``controller``
    ``"position"`` or ``"impedance"`` with an :class:`~robot_rl.sim.impedance.ImpedanceConfig` (or a
    dict of its fields; defaults when None)."""
    return PybulletArm(physics, workspace, home_tcp_position_m, control_hz=control_hz, controller=controller,
                 impedance=impedance)


def make_camera(physics: PandaPhysics, name: str, height: int, width: int) -> PybulletCamera:
    """Camera ``name`` of the scene rendering (height, width) images."""
    return PybulletCamera(physics, name, height, width)
