"""Factories that assemble :class:`~robot_rl.env.RobotEnv` from the MuJoCo backend.

These are the gymnasium entry points of the ``robot_rl/Panda*-v0`` IDs
(see :mod:`robot_rl.sim_registration`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robot_rl.env import RobotEnv
from robot_rl.interfaces import Task, WorkspaceBox

from ..envs import RENDER_SIZE_PX, _check_cameras
from .arm import MujocoArm
from .camera import MujocoCamera
from .scene import ARM_VISUAL_GROUP, WRIST_CAMERA, PandaPhysics, SceneConfig
from .tasks import PickLiftConfig, PickLiftTask, PushConfig, PushTask



def _make_env(physics: PandaPhysics, task: Task, workspace: WorkspaceBox, home_tcp_position_m: Sequence[float], *, cameras: Sequence[str],
              image_size: int | tuple[int, int], control_hz: float, render_mode: str | None,
              **env_kwargs) -> RobotEnv:
    height, width = (image_size, image_size) if np.isscalar(image_size) else image_size
    arm = MujocoArm(physics, workspace, np.asarray(home_tcp_position_m), control_hz=control_hz)
    cams = [MujocoCamera(physics, name, height, width,
                         hidden_geom_groups=(ARM_VISUAL_GROUP,) if name == WRIST_CAMERA else ())
            for name in cameras]
    render_camera = None
    if render_mode == "rgb_array" and "front" not in cameras:
        render_camera = MujocoCamera(physics, "front", *RENDER_SIZE_PX)
    return RobotEnv(arm, cams, task, render_mode=render_mode, render_camera=render_camera, **env_kwargs)


def make_pick_lift_env(*, cameras: Sequence[str] = (), image_size: int | tuple[int, int] = 128,
                       reward_type: str = "sparse", enable_yaw: bool = False, binary_gripper: bool = True,
                       privileged_state: bool = True, control_hz: float = 10.0, shadows: bool = False, task_config: PickLiftConfig | None = None,
                       render_mode: str | None = None) -> RobotEnv:
    """The Panda pick-and-lift env.

    Args:
        cameras: camera names for ``obs["images"]`` (``front``, ``wrist``); none for state only.
        image_size: image size in pixels, ``N`` for N x N or ``(height, width)``.
        reward_type: ``"sparse"`` (1 on success, terminates) or ``"dense"`` (named terms).
        enable_yaw: 5-D actions with a yaw change.
        binary_gripper: gripper action > 0 opens, <= 0 closes; False: target opening (a + 1) / 2.
        privileged_state: append the true cube pose to ``obs["state"]``.
        control_hz: control rate; 500 / control_hz must be a whole number (2 ms physics steps).
        shadows: render shadows (about 5x slower image rendering).
        task_config: task settings; ``PickLiftTask.default_config()`` when None.
        render_mode: ``None`` or ``"rgb_array"``.

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
                  privileged_state: bool = True, control_hz: float = 10.0, shadows: bool = False, task_config: PushConfig | None = None,
                  render_mode: str | None = None) -> RobotEnv:
    """The Panda push env; arguments as :func:`make_pick_lift_env` (``task_config``: :class:`PushConfig`).

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
