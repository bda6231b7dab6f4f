"""The ``robot_rl/Panda*-v0`` envs (:func:`make_sim_env`), assembled from one simulation backend.

``backend`` names a simulation package (``mujoco`` default, ``pybullet``). Each backend package
(:mod:`robot_rl.sim.mujoco`, :mod:`robot_rl.sim.pybullet`) provides the same four pieces
(``PandaPhysics``, ``SceneConfig``, ``make_arm(physics, workspace, home_tcp_position_m,
control_hz)`` and ``make_camera(physics, name, height, width)``); the env itself (tasks, cameras,
RobotEnv settings) is put together here once, and :mod:`robot_rl.envs` registers it as the
gymnasium IDs. A backend is imported only when its env is made, so registering the IDs
imports no physics engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

import numpy as np

from robot_rl.env import RobotEnv
from robot_rl.errors import ConfigError

from .tasks import TASKS, PegInsertionConfig, PickLiftConfig, PushConfig

#: Size in pixels (height, width) of ``render()`` frames when the env has no front camera.
RENDER_SIZE_PX = (256, 256)
#: Cameras of the Panda table scene.
CAMERAS = ("front", "wrist")

#: Simulation backend name -> package with ``PandaPhysics``, ``SceneConfig``, ``make_arm``, ``make_camera``.
BACKENDS: dict[str, str] = {
    "mujoco": "robot_rl.sim.mujoco",
    "pybullet": "robot_rl.sim.pybullet",
}


def _backend(name: str) -> ModuleType:
    if name not in BACKENDS:
        raise ConfigError(f"unknown sim backend {name!r}; choose one of {sorted(BACKENDS)}")
    return importlib.import_module(BACKENDS[name])


def make_sim_env(task: str = "pick_lift", *, backend: str = "mujoco", cameras: Sequence[str] = (),
                 image_size: int | tuple[int, int] = 128, reward_type: str = "sparse", enable_yaw: bool = False,
                 binary_gripper: bool = True, privileged_state: bool = True, control_hz: float = 10.0,
                 shadows: bool = False, task_config: PickLiftConfig | PushConfig | PegInsertionConfig | None = None,
                 render_mode: str | None = None, sim_params=None, randomize=None, randomize_seed: int | None = None,
                 hand_eye=None, rotation: str = "none", gripper_action: bool = True, fixed_gripper_opening: float = 0.0,
                 wrench_in_state: bool = False, max_ee_step_m: float = 0.03, max_rot_step_rad: float = 0.2,
                 max_tilt_rad: float = np.deg2rad(30.0), max_abs_yaw_rad: float = np.pi / 2,
                 max_contact_force_n: float | None = None, controller: str = "position", impedance=None) -> RobotEnv:
    """A simulated Panda table env: the entry point of the ``robot_rl/Panda*-v0`` IDs.

    Args:
        task: a name of :data:`robot_rl.sim.tasks.TASKS` (``"pick_lift"``, ``"push"``, ``"peg_insertion"``).
        backend: ``"mujoco"`` or ``"pybullet"``.
        cameras: camera names for ``obs["images"]`` (``front``, ``wrist``); none for state only.
        image_size: image size in pixels, ``N`` for N x N or ``(height, width)``.
        reward_type: ``"sparse"`` (1 on success, terminates) or ``"dense"`` (named terms).
        enable_yaw: 5-D actions with a yaw change (``rotation="yaw"``).
        binary_gripper: gripper action > 0 opens, <= 0 closes; False: target opening (a + 1) / 2.
        privileged_state: append the true object poses (the task's ``OBSERVATION_LAYOUT``) to
            ``obs["state"]``.
        control_hz: control rate; 500 / control_hz must be a whole number (2 ms physics steps).
        shadows: render shadows (MuJoCo; about 5x slower image rendering).
        task_config: the task's settings (:class:`PickLiftConfig`, :class:`PushConfig`,
            :class:`PegInsertionConfig`); the task's
            ``default_config()`` when None.
        render_mode: ``None`` or ``"rgb_array"``.
        sim_params: identified parameters (:class:`robot_rl.sim.params.SimParams`, a dict or a
            ``sysid.yaml`` path from ``robot-rl sysid``) applied to the physics; a non-zero
            ``action_latency_steps`` wraps the env in a fixed-latency :class:`DomainRandomization`.
        randomize: a :class:`RandomizationConfig` or a YAML path (``config/randomization.yaml``):
            the env comes wrapped in :class:`robot_rl.sim.randomization.DomainRandomization`.
        randomize_seed: seed of the randomisation draws.
        hand_eye: camera name -> easy_handeye2 YAML from ``robot-rl calibrate hand-eye`` (or
            ``(transform, eye_on_hand)``): the camera is placed at the calibrated pose
            (:mod:`robot_rl.sim.extrinsics`).
        rotation, gripper_action, fixed_gripper_opening, wrench_in_state, max_ee_step_m,
            max_rot_step_rad, max_tilt_rad, max_abs_yaw_rad, max_contact_force_n: the action
            layout, limits and force limit of :class:`RobotEnv` (6-DoF actions: ``rotation="full"``).
        controller: ``"position"`` (differential IK on joint servos, the default) or
            ``"impedance"`` (Cartesian impedance on torque-controlled joints, compliant in contact;
            :mod:`robot_rl.sim.impedance`).
        impedance: the :class:`~robot_rl.sim.impedance.ImpedanceConfig` (or a dict of its
            fields) for ``controller="impedance"``; its defaults when None.

    Returns:
        The :class:`RobotEnv`, or a ``DomainRandomization`` wrapper of it (``.unwrapped`` is the
        RobotEnv) when ``randomize`` or a latency is given.

    Raises:
        ConfigError: unknown task, backend or camera name, a ``task_config`` of another task, or
            other invalid settings.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown sim task {task!r}; choose one of {sorted(TASKS)}")
    task_cls = TASKS[task]
    cfg = task_config if task_config is not None else task_cls.default_config()
    if not isinstance(cfg, type(task_cls.default_config())):
        raise ConfigError(f"task_config for task {task!r} must be a {type(task_cls.default_config()).__name__}, "
                          f"got {type(cfg).__name__}")
    unknown = [c for c in cameras if c not in CAMERAS]
    if unknown:
        raise ConfigError(f"unknown camera(s) {unknown}; the Panda scene has cameras {list(CAMERAS)}")
    b = _backend(backend)
    physics = b.PandaPhysics(b.SceneConfig(shadows=shadows, with_target=task_cls.NEEDS_TARGET,
                                           **task_cls.scene_kwargs(cfg)))
    height, width = (image_size, image_size) if np.isscalar(image_size) else image_size
    arm = b.make_arm(physics, cfg.workspace, np.asarray(cfg.home_tcp_position_m), control_hz,
                     controller=controller, impedance=impedance)
    cams = [b.make_camera(physics, name, height, width) for name in cameras]
    render_camera = None
    if render_mode == "rgb_array" and "front" not in cameras:
        render_camera = b.make_camera(physics, "front", *RENDER_SIZE_PX)
    env = RobotEnv(arm, cams, task_cls(physics, cfg), render_mode=render_mode, render_camera=render_camera,
                   reward_type=reward_type, enable_yaw=enable_yaw, binary_gripper=binary_gripper,
                   privileged_state=privileged_state, rotation=rotation, gripper_action=gripper_action,
                   fixed_gripper_opening=fixed_gripper_opening, wrench_in_state=wrench_in_state,
                   max_ee_step_m=max_ee_step_m, max_rot_step_rad=max_rot_step_rad, max_tilt_rad=max_tilt_rad,
                   max_abs_yaw_rad=max_abs_yaw_rad, max_contact_force_n=max_contact_force_n)
    if hand_eye:
        from .extrinsics import apply_hand_eye

        unknown = [c for c in hand_eye if c not in CAMERAS]
        if unknown:
            raise ConfigError(f"hand_eye names unknown camera(s) {unknown}; the Panda scene has cameras {list(CAMERAS)}")
        apply_hand_eye(env, dict(hand_eye), make_camera=lambda name: b.make_camera(physics, name, 64, 64))
    return _wrap(env, physics, sim_params, randomize, randomize_seed, hand_eye)


def _wrap(env: RobotEnv, physics, sim_params, randomize, randomize_seed: int | None, hand_eye=None):
    """Apply identified sim parameters and wrap in :class:`DomainRandomization` when asked."""
    if sim_params is None and randomize is None:
        return env
    from dataclasses import replace

    from .params import load_sim_params
    from .randomization import DomainRandomization, RandomizationConfig, load_randomization_yaml

    params = load_sim_params(sim_params)
    physics.apply_sim_params(params)
    if randomize is None:
        config = RandomizationConfig()
    elif isinstance(randomize, RandomizationConfig):
        config = randomize
    else:
        config = load_randomization_yaml(randomize)
    if config.camera_pose_std == "hand_eye":
        from .extrinsics import hand_eye_uncertainty

        if not hand_eye:
            raise ConfigError("camera_pose_std: hand_eye needs the env's hand_eye={camera: YAML} calibrations")
        stds = [hand_eye_uncertainty(src) for src in hand_eye.values()]
        config = replace(config, camera_pose_std=(max(s[0] for s in stds), max(s[1] for s in stds)), cameras=tuple(hand_eye))
    if config.action_latency_steps is None and params.action_latency_steps:
        config = replace(config, action_latency_steps=(params.action_latency_steps,) * 2)
    if config == RandomizationConfig():
        return env
    return DomainRandomization(env, config, seed=randomize_seed)
