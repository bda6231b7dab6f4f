"""robot_rl: human-in-the-loop SAC/RLPD for robot arms.

Importing ``robot_rl`` registers the gymnasium environment IDs of the simulated tasks
(``robot_rl/PandaPickLift-v0`` and friends, see :mod:`robot_rl.sim_registration`); MuJoCo is
imported only when one of them is made.
"""

__version__ = "0.1.0"

from robot_rl import sim_registration as _sim_registration  # noqa: E402,F401  (registers the env IDs)
