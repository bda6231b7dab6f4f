"""Real-robot bringup: camera nodes, the arm node, the teleop node and the episode recorder.

    ros2 launch robot_rl real.launch.py                       # config/real.yaml from the package share
    ros2 launch robot_rl real.launch.py params_file:=lab.yaml skip:=teleop

Hardware nodes are lifecycle nodes that configure and activate on start (``autostart``); a node
that cannot open its device (no RealSense, arm not reachable) logs why and exits 1. The nodes
are the top-level entries of ``params_file``, read by ``robot_rl.ros.bringup.node_graph``, so
``robot-rl bringup config/real.yaml`` starts the same graph where ``ros2 launch`` is not
installed (the nodes run on rclpy either way).
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
    arm = {"host": LaunchConfiguration("robot_ip").perform(context)} if LaunchConfiguration("robot_ip").perform(context) else {}
    return [
        Node(package="robot_rl", executable=spec.executable, name=spec.name, output="screen", emulate_tty=True,
             parameters=[params_file, arm if spec.kind == "arm" else {}])
        for spec in node_graph(params_file) if spec.name not in skip
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([FindPackageShare("robot_rl"), "config", "real.yaml"]),
                              description="ROS 2 parameter file; its top-level node names are the nodes started"),
        DeclareLaunchArgument("robot_ip", default_value="", description="arm controller address (overrides the arm node's host)"),
        DeclareLaunchArgument("skip", default_value="", description="comma-separated node names not to start (e.g. teleop)"),
        OpaqueFunction(function=_nodes),
    ])
