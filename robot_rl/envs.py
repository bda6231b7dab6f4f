"""robot_rl's gymnasium environment IDs, registered when ``robot_rl`` is imported, and
:func:`make_env`, which makes any gymnasium env by ID with clear errors.

Entry points are strings, so registering imports neither MuJoCo, PyBullet nor a ROS client
library; the backend is imported by ``gymnasium.make``.

========================================= ==================================================================
ID                                        observation
========================================= ==================================================================
``robot_rl/PandaPickLift-v0``             state: proprioception + true cube pose
``robot_rl/PandaPickLiftPixels-v0``       state: proprioception; images: front + wrist, 128 x 128
``robot_rl/PandaPush-v0``                 state: proprioception + true cube pose + target position
``robot_rl/PandaPushPixels-v0``           state: proprioception; images: front + wrist, 128 x 128
``robot_rl/PandaPegInsertion-v0``         state: proprioception + wrist wrench + true hole pose and
                                          peg pose relative to the hole; 6-D actions, no gripper,
                                          impedance control (sim only: no ROS twin yet)
``robot_rl/PandaPegInsertionPixels-v0``   state: proprioception + wrist wrench; images: front +
                                          wrist, 128 x 128; as PegInsertion otherwise
``robot_rl/PandaPegInsertionTilted-v0``   as PegInsertion, the hole's axis tilted 8.6-17 degrees
``robot_rl/RosPanda<same>-v0``            the four pick-lift and push IDs over ROS 2 topics, against
                                          the sim node or real nodes (:class:`robot_rl.ros.env.RosRobotEnv`)
========================================= ==================================================================

The simulated IDs take ``backend`` (``"mujoco"``, the default, or ``"pybullet"``: same
observation and action spaces), the keyword arguments of
:func:`robot_rl.sim.envs.make_sim_env` (``cameras``, ``image_size``, ``reward_type``,
``enable_yaw``, ``control_hz``, ...) and gymnasium's ``max_episode_steps``; the ROS IDs take
those of :class:`~robot_rl.ros.env.RosRobotEnv`. A sim ID and its ROS twin have the same
observation and action spaces and episode lengths. Every ID also takes ``base_policy`` (with
``base_policy_kwargs``, ``base_execute_steps``), which :func:`make_env` handles itself: residual RL,
see :mod:`robot_rl.residual`.
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym

from robot_rl.errors import ConfigError
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.residual import BaseActionWrapper, pop_base_policy_settings
from robot_rl.torch_setup import preload_torch


#: Episode lengths in control steps (10 Hz); the sim task configs default to the same numbers.
PICK_LIFT_EPISODE_STEPS = 50
PUSH_EPISODE_STEPS = 60
PEG_INSERTION_EPISODE_STEPS = 60

#: Entry points of the simulated and the ROS IDs; both take the task name as ``task``.
SIM_ENTRY_POINT = "robot_rl.sim.envs:make_sim_env"
ROS_ENTRY_POINT = "robot_rl.ros.env:RosRobotEnv"

_PIXELS = {"cameras": ("front", "wrist"), "image_size": 128, "privileged_state": False}

#: (name, task, episode length in control steps, default kwargs): each is registered twice, as
#: ``robot_rl/Panda<name>-v0`` (simulated in process) and ``robot_rl/RosPanda<name>-v0`` (the
#: same task over ROS 2 topics). Task names are those of :data:`robot_rl.sim.tasks.TASKS`.
TASK_ENVS = (
    ("PickLift", "pick_lift", PICK_LIFT_EPISODE_STEPS, {}),
    ("PickLiftPixels", "pick_lift", PICK_LIFT_EPISODE_STEPS, _PIXELS),
    ("Push", "push", PUSH_EPISODE_STEPS, {}),
    ("PushPixels", "push", PUSH_EPISODE_STEPS, _PIXELS),
)
#: Peg insertion (:class:`robot_rl.sim.tasks.PegInsertionTask`): 6-DoF TCP deltas (xyz, then a
#: base-frame rotation vector), no gripper action (the gripper stays closed on the peg: an opening of
#: 0.25 puts the pads on the 16 mm peg), the compliant impedance controller, the wrist wrench in the state.
_INSERTION = {"rotation": "full", "gripper_action": False, "fixed_gripper_opening": 0.25, "controller": "impedance",
              "wrench_in_state": True}
#: (name, task, episode length, default kwargs) registered only as simulated IDs: the sim node, which
#: the ROS twins drive, has no peg and fixture.
SIM_ONLY_TASK_ENVS = (
    ("PegInsertion", "peg_insertion", PEG_INSERTION_EPISODE_STEPS, _INSERTION),
    ("PegInsertionPixels", "peg_insertion", PEG_INSERTION_EPISODE_STEPS, {**_INSERTION, **_PIXELS}),
    ("PegInsertionTilted", "peg_insertion_tilted", PEG_INSERTION_EPISODE_STEPS, _INSERTION),
)
SIM_ENV_IDS = tuple(f"robot_rl/Panda{name}-v0" for name, *_ in TASK_ENVS + SIM_ONLY_TASK_ENVS)
ROS_ENV_IDS = tuple(f"robot_rl/RosPanda{name}-v0" for name, *_ in TASK_ENVS)


def register_envs() -> None:
    """Register :data:`SIM_ENV_IDS` (:data:`TASK_ENVS` and :data:`SIM_ONLY_TASK_ENVS`) and :data:`ROS_ENV_IDS`
    with gymnasium (skipping IDs already
    registered). Runs when this module is imported, which ``import robot_rl`` does."""
    for (_, task, steps, kwargs), sim_id, ros_id in zip(TASK_ENVS, SIM_ENV_IDS, ROS_ENV_IDS):
        for env_id, entry_point in ((sim_id, SIM_ENTRY_POINT), (ros_id, ROS_ENTRY_POINT)):
            if env_id not in gym.registry:
                gym.register(id=env_id, entry_point=entry_point, max_episode_steps=steps, kwargs={"task": task, **kwargs})
    for name, task, steps, kwargs in SIM_ONLY_TASK_ENVS:
        if f"robot_rl/Panda{name}-v0" not in gym.registry:
            gym.register(id=f"robot_rl/Panda{name}-v0", entry_point=SIM_ENTRY_POINT, max_episode_steps=steps,
                         kwargs={"task": task, **kwargs})


register_envs()


def robot_rl_env_ids() -> list[str]:
    """The gymnasium IDs robot_rl registers (``robot_rl/...``)."""
    return sorted(k for k in gym.registry if k.startswith("robot_rl/"))


def parse_env_kwargs(raw: dict[str, str]) -> dict[str, Any]:
    """Command-line env kwargs (strings) -> Python values: JSON where it parses, else the string.

    ``{"image_size": "96", "reward_type": "dense", "cameras": '["front"]'}`` ->
    ``{"image_size": 96, "reward_type": "dense", "cameras": ["front"]}``.
    """
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError:
            out[key] = value
    return out


def make_env(env_id: str, render: bool = False, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` with robot_rl's IDs registered and a checked observation layout.

    Args:
        env_id: a gymnasium ID (``robot_rl/PandaPickLift-v0``, ``Pendulum-v1``, or
            ``some_module:SomeEnv-v0`` to import a third-party module that registers it).
        render: ask for ``render_mode="rgb_array"`` (for evaluation videos).
        kwargs: passed to the env constructor.

    The kwargs ``base_policy`` (and ``base_policy_kwargs``, ``base_execute_steps``) are not passed to
    the env: they wrap it in :class:`robot_rl.residual.BaseActionWrapper`, which adds the base
    policy's action to the observation as ``base_action`` (residual RL, ``--agent.residual-scale``).

    Raises:
        ConfigError: the ID is unknown (the message lists robot_rl's IDs), or a base policy that cannot
            be loaded or does not fit the env (see :func:`robot_rl.residual.load_base_policy`).
        ObservationLayoutError: the env's observation or action space cannot be learned from.
    """
    preload_torch()  # before the env can open an EGL context (robot_rl/torch_setup.py says why)
    ids = robot_rl_env_ids()
    base = pop_base_policy_settings(kwargs)
    if render:
        kwargs.setdefault("render_mode", "rgb_array")
    try:
        env = gym.make(env_id, **kwargs)
    except TypeError as e:
        raise ConfigError(f"bad keyword arguments for {env_id}: {e}. Check --env-kwargs names and values.") from e
    except (gym.error.NameNotFound, gym.error.NamespaceNotFound, gym.error.VersionNotFound,
            gym.error.UnregisteredEnv, gym.error.DeprecatedEnv, ModuleNotFoundError) as e:
        raise ConfigError(
            f"unknown env ID {env_id!r} ({e}). robot_rl's IDs: {', '.join(ids)}. Any gymnasium ID works; "
            "for a third-party package use 'package_module:EnvId-v0' so gymnasium imports it first."
        ) from e
    if base is not None:
        try:
            env = BaseActionWrapper(env, base.spec, base.execute_steps, base.kwargs)
        except BaseException:
            env.close()
            raise
    ObsLayout.from_space(env.observation_space)
    ActionScaler.from_space(env.action_space)
    return env
