"""MuJoCo backend: the Franka Panda at a table as Arm / Camera implementations.

:mod:`robot_rl.sim.envs` assembles the ``robot_rl/Panda*-v0`` envs from a backend package's four
pieces: ``PandaPhysics``, ``SceneConfig``, :func:`make_arm` and :func:`make_camera` (the tasks are
backend-independent, :mod:`robot_rl.sim.tasks`).

Importing this package sets ``MUJOCO_GL=egl`` (headless rendering) unless it is already set.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from robot_rl.interfaces import WorkspaceBox  # noqa: E402

from .arm import MujocoArm  # noqa: E402
from .camera import MujocoCamera  # noqa: E402
from .scene import ARM_VISUAL_GROUP, WRIST_CAMERA, PandaPhysics, SceneConfig  # noqa: E402

__all__ = ["MujocoArm", "MujocoCamera", "PandaPhysics", "SceneConfig", "make_arm", "make_camera"]


def make_arm(physics: PandaPhysics, workspace: WorkspaceBox, home_tcp_position_m: np.ndarray,
             control_hz: float, controller: str = "position", impedance=None) -> MujocoArm:
    """The scene's Panda as an :class:`~robot_rl.interfaces.Arm` (see :class:`MujocoArm`): ``controller``
    ``"position"`` or ``"impedance"`` with an :class:`~robot_rl.sim.impedance.ImpedanceConfig` (or a
    dict of its fields; defaults when None)."""
    return MujocoArm(physics, workspace, home_tcp_position_m, control_hz=control_hz, controller=controller,
                 impedance=impedance)


def make_camera(physics: PandaPhysics, name: str, height: int, width: int) -> MujocoCamera:
    """Camera ``name`` of the scene rendering (height, width) images; the wrist camera skips the
    arm links it cannot see (half its render time)."""
    return MujocoCamera(physics, name, height, width,
                        hidden_geom_groups=(ARM_VISUAL_GROUP,) if name == WRIST_CAMERA else ())
