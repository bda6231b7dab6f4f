"""Gymnasium IDs of the simulated tasks, registered when ``robot_rl`` is imported.

Entry points are strings, so registering imports neither MuJoCo nor PyBullet; the backend is
imported by ``gymnasium.make``.

=================================  ==========================================================
ID                                 observation
=================================  ==========================================================
``robot_rl/PandaPickLift-v0``      state: proprioception + true cube pose
``robot_rl/PandaPickLiftPixels-v0`` state: proprioception; images: front + wrist, 128 x 128
``robot_rl/PandaPush-v0``          state: proprioception + true cube pose + target position
``robot_rl/PandaPushPixels-v0``    state: proprioception; images: front + wrist, 128 x 128
=================================  ==========================================================

Every ID takes ``backend`` (``"mujoco"``, the default, or ``"pybullet"``: same observation and
action spaces), the keyword arguments of :func:`robot_rl.sim.envs.make_pick_lift_env`
(``cameras``, ``image_size``, ``reward_type``, ``enable_yaw``, ``control_hz``, ...) and
gymnasium's ``max_episode_steps``.
"""

from __future__ import annotations

import gymnasium as gym

#: Episode lengths in control steps (10 Hz); the task configs default to the same numbers.
PICK_LIFT_EPISODE_STEPS = 50
PUSH_EPISODE_STEPS = 60

_PIXELS = {"cameras": ("front", "wrist"), "image_size": 128, "privileged_state": False}

#: (ID, entry point, episode length in control steps, default kwargs)
SIM_ENVS = (
    ("robot_rl/PandaPickLift-v0", "robot_rl.sim.envs:make_pick_lift_env", PICK_LIFT_EPISODE_STEPS, {}),
    ("robot_rl/PandaPickLiftPixels-v0", "robot_rl.sim.envs:make_pick_lift_env", PICK_LIFT_EPISODE_STEPS, _PIXELS),
    ("robot_rl/PandaPush-v0", "robot_rl.sim.envs:make_push_env", PUSH_EPISODE_STEPS, {}),
    ("robot_rl/PandaPushPixels-v0", "robot_rl.sim.envs:make_push_env", PUSH_EPISODE_STEPS, _PIXELS),
)


_ROS_PIXELS = {"cameras": ("front", "wrist"), "image_size": 128, "privileged_state": False}

#: The same tasks over ROS 2 topics (robot_rl.ros.env.RosRobotEnv, against the sim node or real
#: nodes): same observation and action spaces and episode lengths as the IDs above.
ROS_ENVS = (
    ("robot_rl/RosPandaPickLift-v0", "robot_rl.ros.env:make_ros_env", PICK_LIFT_EPISODE_STEPS, {"task": "pick_lift"}),
    ("robot_rl/RosPandaPickLiftPixels-v0", "robot_rl.ros.env:make_ros_env", PICK_LIFT_EPISODE_STEPS,
     {"task": "pick_lift", **_ROS_PIXELS}),
    ("robot_rl/RosPandaPush-v0", "robot_rl.ros.env:make_ros_env", PUSH_EPISODE_STEPS, {"task": "push"}),
    ("robot_rl/RosPandaPushPixels-v0", "robot_rl.ros.env:make_ros_env", PUSH_EPISODE_STEPS, {"task": "push", **_ROS_PIXELS}),
)


def register_sim_envs() -> None:
    """Register :data:`SIM_ENVS` and :data:`ROS_ENVS` with gymnasium (skipping IDs already registered)."""
    for env_id, entry_point, steps, kwargs in (*SIM_ENVS, *ROS_ENVS):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=steps, kwargs=dict(kwargs))


register_sim_envs()
