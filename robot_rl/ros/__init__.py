"""The ROS 2 layer: the node API and its backends, topic names and conversions, the topic clients
and the env built from them.

* :mod:`~robot_rl.ros.node`: one small node API (parameters, lifecycle, pub/sub, timers) over
  rclpy, robot_rl's only ROS 2 backend (:mod:`~robot_rl.ros._rclpy`; ROS 2 Jazzy wheels from PyPI:
  ``pip install -e .[ros]``), with :mod:`~robot_rl.ros.messages` (rosbags messages as CDR, rclpy type
  support), :mod:`~robot_rl.ros.qos` (QoS presets) and :mod:`~robot_rl.ros.distro` (the ROS 2
  distribution, named once);
* :mod:`~robot_rl.ros.convert`: topic names and robot_rl interfaces <-> ROS 2 messages;
* :mod:`~robot_rl.ros.clients`: ``RosArm``, ``RosCamera``, ``RosTeleop``, clients of devices
  that other nodes publish;
* :mod:`~robot_rl.ros.env`: ``RosRobotEnv``, the gymnasium env over those clients
  (``robot_rl/RosPanda*-v0``);
* :mod:`~robot_rl.ros.safety`: the arm nodes' command gate; :mod:`~robot_rl.ros.recorder`: rosbag2
  MCAP recording; :mod:`~robot_rl.ros.bringup`: ``robot-rl bringup``.
"""
