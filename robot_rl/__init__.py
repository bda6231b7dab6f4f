"""robot_rl: human-in-the-loop SAC/RLPD for robot arms.

Importing ``robot_rl`` registers the gymnasium environment IDs of the simulated tasks
(``robot_rl/PandaPickLift-v0`` and friends, see :mod:`robot_rl.sim.mujoco.register`).
"""

__version__ = "0.1.0"
