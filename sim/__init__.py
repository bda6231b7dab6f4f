"""Simulated backends (MuJoCo, PyBullet) of the robot_rl Arm / Camera / Task interfaces, and their shared tasks."""
