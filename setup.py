"""robot_rl: human-in-the-loop RL for robot arms (ament_python package and pip package).

Every top-level folder of the repository installs under the ``robot_rl`` import name:
``sim/`` -> ``robot_rl.sim``, ``policies/`` -> ``robot_rl.policies`` and so on, so no generic
module names (``sim``, ``drivers``) leak into a user's environment.
"""

import re
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "robot_rl"
# Folders of the repository that become sub-packages of robot_rl.
SUBPACKAGES = ["policies", "sim", "drivers", "calibration"]

# ROS 2 from PyPI (the ros-python-wheels builds: CPython 3.11, Linux x86_64 only). The distribution
# is named once, in robot_rl/ros/distro.py, read here without importing robot_rl.
with open("robot_rl/ros/distro.py", encoding="utf-8") as f:
    ROS_DISTRO = re.search(r'^ROS_DISTRO = "(\w+)"', f.read(), re.M).group(1)
ROS_WHEEL_MARKER = 'python_version == "3.11" and sys_platform == "linux" and platform_machine == "x86_64"'
# rclpy with the Fast DDS middleware (without it `import rclpy` fails on librmw_fastrtps_cpp.so) and
# the message packages robot_rl publishes or subscribes; tf2_msgs is not on PyPI (camera node docstring).
ROS_PACKAGES = ["rclpy[fastrtps]", "std-msgs", "sensor-msgs", "geometry-msgs", "trajectory-msgs", "lifecycle-msgs", "std-srvs"]
ROS_REQUIRES = [f"ros-{ROS_DISTRO}-{name}; {ROS_WHEEL_MARKER}" for name in ROS_PACKAGES]

packages = find_packages(include=[PACKAGE, f"{PACKAGE}.*"])
package_dir = {PACKAGE: PACKAGE}
for folder in SUBPACKAGES:
    for sub in find_packages(where=".", include=[folder, f"{folder}.*"]):
        packages.append(f"{PACKAGE}.{sub}")
    package_dir[f"{PACKAGE}.{folder}"] = folder

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Human-in-the-loop SAC/RLPD for robot arms: MuJoCo/PyBullet sim, ROS 2 nodes, VLM rewards",
    long_description=open("README.md", encoding="utf-8").read() if glob("README.md") else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=packages,
    package_dir=package_dir,
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml")),
    ],
    install_requires=[
        "numpy>=1.24",
        "gymnasium>=1.0",
        "mujoco>=3.2",
        "pybullet>=3.2.6",
        "scipy>=1.14",  # Rotation.from_quat(scalar_first=...), as_quat(canonical=...)
        "torch>=2.2",
        "torchvision>=0.17",
        "tyro>=0.8",
        "tensorboard>=2.14",
        "tqdm>=4.65",
        "imageio>=2.31",
        "imageio-ffmpeg>=0.4.9",
        "matplotlib>=3.7",
        "safetensors>=0.4",
        "pyzmq>=25",
        "msgpack>=1.0",
        "crc32c>=2.3",
        "rosbags>=0.10",
        "pyyaml>=6",
        # image resizing, camera calibration (ChArUco), compressed images; <5 because OpenCV 5.0 wheels
        # lack cv2.calibrateHandEye (only the CALIB_HAND_EYE_* constants), which `robot-rl calibrate hand-eye` needs
        "opencv-python-headless>=4.8,<5",
    ],
    extras_require={
        # ROS 2 Jazzy's Python wheels (rclpy on Fast DDS + message packages): `pip install -e .[ros]`
        "ros": ROS_REQUIRES,
        # the test suite runs the ROS 2 nodes on rclpy, so it installs the ros extra
        "test": ["pytest>=8", "pytest-timeout>=2.2", "pygame>=2.5", "pyspacemouse>=1.1", "franky-control>=0.9",
                 "pyrealsense2>=2.54", "ur-rtde>=1.5", "opencv-python-headless>=4.8,<5", "mcap>=1.1",
                 "open_clip_torch>=2.24", "transformers>=4.40", "rerun-sdk>=0.24", *ROS_REQUIRES],
        # the operator's live view and `robot-rl view` (robot_rl.view): Rerun's SDK, viewer and web viewer
        "view": ["rerun-sdk>=0.24"],
        # zero-shot VLM rewards (robot_rl.rewards.vlm): CLIP/SigLIP through open_clip or transformers
        "vlm": ["open_clip_torch>=2.24", "transformers>=4.40"],
        # cameras: Intel RealSense (needs Debian libusb-1.0-0) and USB/V4L2 cameras through OpenCV
        "cameras": ["pyrealsense2>=2.54", "opencv-python-headless>=4.8,<5"],
        # Universal Robots arms through ur_rtde
        "ur": ["ur-rtde>=1.5"],
        # Franka arms (Panda, FR3) through franky-control (bundles libfranka)
        "franka": ["franky-control>=0.9"],
        # teleop devices: gamepad (pygame) and 3Dconnexion SpaceMouse (pyspacemouse; needs the
        # hidapi library: Debian libhidapi-hidraw0, macOS brew install hidapi)
        "teleop": ["pygame>=2.5", "pyspacemouse>=1.1"],
    },
    entry_points={
        "console_scripts": [
            "robot-rl = robot_rl.cli:main",
            # ROS 2 nodes (ros2 run robot_rl <name>, or robot-rl bringup)
            "robot_rl_camera_node = robot_rl.drivers.camera_node:main",
            "robot_rl_arm_node = robot_rl.drivers.arm_node:main",
            "robot_rl_teleop_node = robot_rl.drivers.teleop.node:main",
            "robot_rl_sim_node = robot_rl.sim.node:main",
            "robot_rl_recorder = robot_rl.ros.recorder:main",
            "robot_rl_reward_node = robot_rl.rewards.node:main",
        ],
    },
    zip_safe=True,
)
