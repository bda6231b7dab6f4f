"""Simulated backends (MuJoCo, later PyBullet) of the robot_rl Arm / Camera / Task interfaces."""
