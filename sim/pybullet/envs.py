"""Factories that assemble :class:`~robot_rl.env.RobotEnv` from the PyBullet backend.

Same signatures, observation and action spaces as :mod:`robot_rl.sim.mujoco.envs`; reached through
the ``robot_rl/Panda*-v0`` IDs with ``backend="pybullet"`` (see :mod:`robot_rl.sim_registration`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robot_rl.env import RobotEnv
from robot_rl.interfaces import Task, WorkspaceBox

from ..envs import RENDER_SIZE_PX, _check_cameras
from ..tasks import PickLiftConfig, PickLiftTask, PushConfig, PushTask
from .arm import PybulletArm
from .camera import PybulletCamera
from .scene import PandaPhysics, SceneConfig


def _make_env(physics: PandaPhysics, task: Task, workspace: WorkspaceBox, home_tcp_position_m: Sequence[float], *,
              cameras: Sequence[str], image_size: int | tuple[int, int], control_hz: float, render_mode: str | None,
              **env_kwargs) -> RobotEnv:
    height, width = (image_size, image_size) if np.isscalar(image_size) else image_size
    arm = PybulletArm(physics, workspace, np.asarray(home_tcp_position_m), control_hz=control_hz)
    cams = [PybulletCamera(physics, name, height, width) for name in cameras]
    render_camera = None
    if render_mode == "rgb_array" and "front" not in cameras:
        render_camera = PybulletCamera(physics, "front", *RENDER_SIZE_PX)
    return RobotEnv(arm, cams, task, render_mode=render_mode, render_camera=render_camera, **env_kwargs)


def make_pick_lift_env(*, cameras: Sequence[str] = (), image_size: int | tuple[int, int] = 128,
                       reward_type: str = "sparse", enable_yaw: bool = False, binary_gripper: bool = True,
                       privileged_state: bool = True, control_hz: float = 10.0, shadows: bool = False,
                       task_config: PickLiftConfig | None = None, render_mode: str | None = None) -> RobotEnv:
    """The PyBullet Panda pick-and-lift env; arguments as :func:`robot_rl.sim.mujoco.envs.make_pick_lift_env`.

    Raises:
        ConfigError: unknown camera name or other invalid settings.
    """
    _check_cameras(cameras)
    cfg = task_config if task_config is not None else PickLiftTask.default_config()
    physics = PandaPhysics(SceneConfig(shadows=shadows))
    task = PickLiftTask(physics, cfg)
    return _make_env(physics, task, cfg.workspace, cfg.home_tcp_position_m, cameras=cameras, image_size=image_size,
                     control_hz=control_hz, render_mode=render_mode, reward_type=reward_type,
                     enable_yaw=enable_yaw, binary_gripper=binary_gripper, privileged_state=privileged_state)


def make_push_env(*, cameras: Sequence[str] = (), image_size: int | tuple[int, int] = 128,
                  reward_type: str = "sparse", enable_yaw: bool = False, binary_gripper: bool = True,
                  privileged_state: bool = True, control_hz: float = 10.0, shadows: bool = False,
                  task_config: PushConfig | None = None, render_mode: str | None = None) -> RobotEnv:
    """The PyBullet Panda push env; arguments as :func:`robot_rl.sim.mujoco.envs.make_push_env`.

    Raises:
        ConfigError: unknown camera name or other invalid settings.
    """
    _check_cameras(cameras)
    cfg = task_config if task_config is not None else PushTask.default_config()
    physics = PandaPhysics(SceneConfig(shadows=shadows, with_target=True))
    task = PushTask(physics, cfg)
    return _make_env(physics, task, cfg.workspace, cfg.home_tcp_position_m, cameras=cameras, image_size=image_size,
                     control_hz=control_hz, render_mode=render_mode, reward_type=reward_type,
                     enable_yaw=enable_yaw, binary_gripper=binary_gripper, privileged_state=privileged_state)
