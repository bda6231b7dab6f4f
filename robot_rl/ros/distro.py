"""The ROS 2 distribution robot_rl is built and tested against: the one place it is named.

``setup.py`` reads :data:`ROS_DISTRO` from this file (without importing robot_rl) to build the
``ros`` extra (``ros-jazzy-rclpy[fastrtps]``, ``ros-jazzy-sensor-msgs``, ...), and error messages
use :func:`pip_package` to name the wheel that provides a missing ROS package.

Example:
    >>> pip_package("tf2_msgs")
    'ros-jazzy-tf2-msgs'
"""

#: ROS 2 distribution of the PyPI wheels in the ``ros`` extra (Jazzy: the LTS, Fast DDS 2.14).
ROS_DISTRO = "jazzy"


def pip_package(ros_package: str) -> str:
    """The PyPI wheel of a ROS 2 package for :data:`ROS_DISTRO`: ``sensor_msgs`` -> ``ros-jazzy-sensor-msgs``."""
    return f"ros-{ROS_DISTRO}-{ros_package.replace('_', '-')}"
