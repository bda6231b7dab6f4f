"""Simulation bringup: the sim node (MuJoCo or PyBullet) behind the real camera and arm topics.

    ros2 launch robot_rl sim.launch.py                       # config/sim.yaml from the package share
    ros2 launch robot_rl sim.launch.py params_file:=my.yaml backend:=pybullet

The nodes are the top-level entries of ``params_file`` (a ROS 2 parameter file; a node's name
starts with its kind: sim, camera_<name>, arm, teleop, recorder), read by
``robot_rl.ros.bringup.node_graph``: ``robot-rl bringup config/sim.yaml`` starts the same graph
where ``ros2 launch`` is not installed (``launch`` / ``launch_ros`` are not on PyPI; the nodes run
on rclpy either way).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from robot_rl.ros.bringup import node_graph


def _nodes(context, *args, **kwargs):
    params_file = LaunchConfiguration("params_file").perform(context)
    skip = {s for s in LaunchConfiguration("skip").perform(context).split(",") if s}
    overrides = {"sim": {"backend": LaunchConfiguration("backend").perform(context)}}
    return [
        Node(package="robot_rl", executable=spec.executable, name=spec.name, output="screen", emulate_tty=True,
             parameters=[params_file, overrides.get(spec.kind, {})])
        for spec in node_graph(params_file) if spec.name not in skip
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([FindPackageShare("robot_rl"), "config", "sim.yaml"]),
                              description="ROS 2 parameter file; its top-level node names are the nodes started"),
        DeclareLaunchArgument("backend", default_value="mujoco", choices=["mujoco", "pybullet"],
                              description="physics engine of the sim node"),
        DeclareLaunchArgument("skip", default_value="", description="comma-separated node names not to start (e.g. teleop)"),
        OpaqueFunction(function=_nodes),
    ])
