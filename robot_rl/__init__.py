"""robot_rl: human-in-the-loop SAC/RLPD for robot arms.

Importing ``robot_rl`` registers the gymnasium environment IDs (``robot_rl/PandaPickLift-v0`` and
friends, see :mod:`robot_rl.envs`); MuJoCo, PyBullet or a ROS client is imported only when one of
them is made.
"""

__version__ = "0.1.0"

from robot_rl import envs as _envs  # noqa: E402,F401  (registers the env IDs)
