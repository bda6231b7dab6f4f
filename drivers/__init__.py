"""Real hardware backends of the robot_rl interfaces and their ROS 2 nodes.

Arms: :mod:`~robot_rl.drivers.franka` (franky), :mod:`~robot_rl.drivers.ur` (ur_rtde),
:mod:`~robot_rl.drivers.ros2_control` (a bridge to any ros2_control arm); cameras:
:mod:`~robot_rl.drivers.realsense`, :mod:`~robot_rl.drivers.opencv_camera`,
:mod:`~robot_rl.drivers.bag_replay`; teleop devices: :mod:`robot_rl.drivers.teleop`; nodes:
:mod:`~robot_rl.drivers.arm_node`, :mod:`~robot_rl.drivers.camera_node`. Vendor SDKs are imported
only when a backend is built. Clients of devices that another process publishes on ROS 2 topics
are in :mod:`robot_rl.ros.clients`.
"""
