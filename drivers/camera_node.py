"""The ROS 2 camera node: one :class:`~robot_rl.interfaces.Camera` backend published as ROS topics.

Topics (realsense2_camera's layout, :func:`robot_rl.ros.convert.camera_topics`), for
``camera_name:=front``:

* ``/camera/front/color/image_raw`` (``sensor_msgs/Image``, rgb8, frame ``front_color_optical_frame``);
* ``/camera/front/color/camera_info`` (``sensor_msgs/CameraInfo``, same stamp);
* ``/camera/front/aligned_depth_to_color/image_raw`` (``sensor_msgs/Image``, 16UC1 millimetres),
  only with ``enable_depth:=true`` and a backend that gives depth (realsense).

Backends (``backend`` parameter): ``realsense`` (:mod:`robot_rl.drivers.realsense`), ``opencv``
(:mod:`robot_rl.drivers.opencv_camera`: USB/V4L2 cameras, video files, streams), ``replay``
(:mod:`robot_rl.drivers.bag_replay`: a rosbag2 recording, header stamps kept) and ``sim`` (one
camera of a robot_rl sim env, :mod:`robot_rl.sim.static_camera`). Live backends stamp frames with
the wall clock at publication.

Lifecycle (``rclpy.lifecycle``; ``ros2 lifecycle set /camera configure`` or a
``lifecycle_msgs/srv/ChangeState`` request on ``/camera/change_state``): ``configure`` opens the
backend (an error leaves the node unconfigured; with autostart the process exits 1 and prints the
message), ``activate`` starts a timer at ``rate_hz``, ``deactivate`` stops it, ``cleanup`` closes
the backend. ``autostart`` (default true) configures and activates at start.

Parameters are ROS 2 parameters with descriptors (``ros2 param describe /camera rate_hz``); all are
read-only at runtime except ``rate_hz``, which takes effect at once (the publishing timer restarts).

Hand-eye extrinsics (``hand_eye_file``): with ``tf2_msgs`` importable (a ROS 2 install) they are
published on ``/tf_static`` (``tf2_msgs/TFMessage``, TRANSIENT_LOCAL, as tf2's static broadcaster
does), so rviz2 and tf2 listeners see ``<parent> -> <name>_color_optical_frame``. ``tf2_msgs`` is
not on PyPI: without it the same transform is published as ``geometry_msgs/TransformStamped`` on
``/camera/<name>/extrinsics`` (TRANSIENT_LOCAL, so late subscribers get it) and the node logs this
once at configure.

Example:
    python -m robot_rl.drivers.camera_node --ros-args -p backend:=replay -p bag_path:=episode_0001 \\
        -p bag_image_topic:=/camera/front/color/image_raw -p camera_name:=front
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from robot_rl.errors import ConfigError
from robot_rl.interfaces import Camera
from robot_rl.ros.convert import camera_info_msg, camera_topics, image_msg, optical_frame
from robot_rl.ros.node import LifecycleNode, QoSProfile, QOS_PRESETS, parse_ros_args, run_node

#: String parameters whose values are often all digits (serial numbers, device indices).
_STRING_PARAMS = ("serial", "device")


def _realsense(node: CameraNode) -> Camera:
    from robot_rl.drivers.realsense import RealSenseCamera

    return RealSenseCamera(node.camera_name, serial=node.p["serial"] or None, width=node.p["width"], height=node.p["height"],
                           fps=node.p["fps"], enable_depth=node.p["enable_depth"], timeout_s=node.p["read_timeout_s"])


def _opencv(node: CameraNode) -> Camera:
    from robot_rl.drivers.opencv_camera import OpenCVCamera

    return OpenCVCamera(node.camera_name, device=node.p["device"], width=node.p["width"], height=node.p["height"],
                        fps=float(node.p["fps"]), camera_info_url=node.p["camera_info_url"],
                        timeout_s=node.p["read_timeout_s"], loop=node.p["loop"])


def _replay(node: CameraNode) -> Camera:
    from robot_rl.drivers.bag_replay import ReplayCamera

    if not node.p["bag_path"]:
        raise ConfigError("backend 'replay' needs bag_path (a rosbag2 folder or .mcap file): -p bag_path:=/path/to/bag")
    topic = node.p["bag_image_topic"] or camera_topics(node.camera_name)["image"]
    return ReplayCamera(node.p["bag_path"], topic, node.p["bag_info_topic"], loop=node.p["loop"], name=node.camera_name)


def _sim(node: CameraNode) -> Camera:
    from robot_rl.sim.static_camera import SimCamera

    return SimCamera(node.p["sim_env"], node.p["sim_camera"] or node.camera_name, width=node.p["width"],
                     height=node.p["height"], backend=node.p["sim_backend"], seed=node.p["sim_seed"])


#: Backend name -> factory building the camera from the node's parameters.
BACKENDS: dict[str, Callable[[CameraNode], Camera]] = {"realsense": _realsense, "opencv": _opencv, "replay": _replay, "sim": _sim}


def register_backend(name: str, factory: Callable[[CameraNode], Camera]) -> None:
    """Add a camera backend selectable with ``-p backend:=<name>``; ``factory(node)`` reads ``node.p``."""
    BACKENDS[name] = factory


class CameraNode(LifecycleNode):
    """Publishes one camera's colour images, CameraInfo and optional aligned depth.

    Args:
        argv: command line (``--ros-args -p backend:=opencv ...``).
        **kwargs: passed to :class:`~robot_rl.ros.node.Node` (``parameter_overrides``, ``domain_id``...).

    Raises:
        ConfigError: an invalid parameter (unknown backend or QoS, bad camera name, rate <= 0).
    """

    def __init__(self, argv: Sequence[str] = (), **kwargs: Any) -> None:
        # `-p serial:=123456789012` and `-p device:=0` parse as YAML ints; these are strings.
        digits = {k: str(v) for k, v in parse_ros_args(argv).parameters.items()
                  if k in _STRING_PARAMS and isinstance(v, int) and not isinstance(v, bool)}
        kwargs["parameter_overrides"] = {**digits, **(kwargs.get("parameter_overrides") or {})}
        super().__init__("camera", argv=argv, **kwargs)
        d = self.declare_parameter
        p: dict[str, Any] = {}
        p["backend"] = d("backend", "realsense", "camera backend", choices=sorted(BACKENDS))
        self.camera_name = p["camera_name"] = d("camera_name", "front", "camera name: topics /camera/<name>/color/..., frame <name>_color_optical_frame")
        rate = self._overrides.get("rate_hz", 30.0)
        if isinstance(rate, (int, float)) and not isinstance(rate, bool) and not rate > 0:
            raise ConfigError(f"rate_hz must be positive, got {rate} Hz.")
        p["rate_hz"] = d("rate_hz", 30.0, "publish rate; each tick reads one frame from the backend; changeable at runtime",
                         units="Hz", min_value=0.01, max_value=1000.0, on_change=self._on_rate_change)
        p["width"] = d("width", 640, "image width requested from the device / rendered by sim (opencv: 0 keeps the device's)", units="px")
        p["height"] = d("height", 480, "image height requested from the device / rendered by sim (opencv: 0 keeps the device's)", units="px")
        p["fps"] = d("fps", 30, "frame rate requested from the device (realsense, opencv)", units="Hz")
        p["read_timeout_s"] = d("read_timeout_s", 1.0, "how long one read waits for a frame before the tick is skipped", units="s")
        p["serial"] = d("serial", "", "realsense: serial number of the device; empty for the first one found")
        p["device"] = d("device", "0", "opencv: device index (0), device path (/dev/video0), video file or stream URL")
        p["camera_info_url"] = d("camera_info_url", "", "opencv: camera_info YAML (file:///path.yaml or a path); empty: pinhole guess")
        p["enable_depth"] = d("enable_depth", False, "realsense: also publish depth aligned to colour (16UC1)", units="mm")
        p["bag_path"] = d("bag_path", "", "replay: rosbag2 folder or .mcap file")
        p["bag_image_topic"] = d("bag_image_topic", "", "replay: Image or CompressedImage topic in the bag; empty: this camera's image topic")
        p["bag_info_topic"] = d("bag_info_topic", "", "replay: CameraInfo topic in the bag; empty: <image topic folder>/camera_info if present")
        p["loop"] = d("loop", False, "replay / opencv video file: start again after the last frame")
        p["shutdown_when_done"] = d("shutdown_when_done", False, "replay / video file: exit (code 0) after the last frame is published")
        p["wait_for_subscribers"] = d("wait_for_subscribers", 0, "publish only once this many subscriptions matched "
                                      "both the image and the camera_info topic (replay: so no frame is lost)", units="subscriptions")
        p["qos"] = d("qos", "reliable", "publisher QoS: 'reliable' (reliable, depth qos_depth; default, as realsense-ros: "
                     "best-effort 640x480 frames are lost by Fast DDS, about half at 30 Hz here) or 'sensor' (best effort, depth 5)",
                     choices=("sensor", "reliable"))
        p["qos_depth"] = d("qos_depth", 10, "KEEP_LAST history depth of the 'reliable' QoS", units="messages")
        p["sim_env"] = d("sim_env", "robot_rl/PandaPickLift-v0", "sim: gymnasium env ID whose scene is rendered")
        p["sim_camera"] = d("sim_camera", "", "sim: camera of the scene (front, wrist); empty: camera_name")
        p["sim_backend"] = d("sim_backend", "mujoco", "sim: rendering backend", choices=("mujoco", "pybullet"))
        p["sim_seed"] = d("sim_seed", 0, "sim: reset seed of the static scene")
        p["hand_eye_file"] = d("hand_eye_file", "", "easy_handeye2 YAML from `robot-rl calibrate hand-eye`: published on "
                               "/tf_static as <parent frame> -> <name>_color_optical_frame (without tf2_msgs: as "
                               "TransformStamped on /camera/<name>/extrinsics); empty: no extrinsics")
        self.p = p
        topics = camera_topics(self.camera_name)
        self.frame_id = optical_frame(self.camera_name)
        #: Topic of the extrinsics when tf2_msgs (for /tf_static) is not installed.
        self.extrinsics_topic = f"/camera/{self.camera_name}/extrinsics"
        self._tf_pub = None
        qos = QOS_PRESETS["sensor"] if p["qos"] == "sensor" else QoSProfile(p["qos_depth"], True)
        self.image_pub = self.create_publisher("sensor_msgs/msg/Image", topics["image"], qos)
        self.info_pub = self.create_publisher("sensor_msgs/msg/CameraInfo", topics["info"], qos)
        self.depth_pub = self.create_publisher("sensor_msgs/msg/Image", topics["depth"], qos) if p["enable_depth"] else None
        self.camera: Camera | None = None
        self.frames_published = 0
        self._waiting_logged = False
        self.finished = False

    # -- lifecycle -------------------------------------------------------------------------------

    def on_configure(self) -> None:
        """Open the backend (raises its error: DeviceUnavailableError, ConfigError, ...) and publish the extrinsics."""
        if self.p["hand_eye_file"]:
            self._publish_extrinsics(self.p["hand_eye_file"])
        self.camera = BACKENDS[self.p["backend"]](self)
        intr = self.camera.intrinsics
        self.get_logger().info(f"{self.p['backend']} camera {self.camera_name!r} open: {intr.width} x {intr.height} px, "
                               f"publishing on {self.image_pub.topic} at {self.p['rate_hz']} Hz")

    def _on_rate_change(self, rate_hz: float) -> None:
        """``rate_hz`` set at runtime: restart the publishing timer at the new rate when active."""
        self.p["rate_hz"] = rate_hz
        if self.is_active and not self.finished:
            self.start_work_timer(1.0 / rate_hz, self._tick)

    def on_activate(self) -> None:
        """Start publishing at ``rate_hz``."""
        self.finished = False
        self.start_work_timer(1.0 / self.p["rate_hz"], self._tick)

    def on_deactivate(self) -> None:
        """Stop publishing (the device stays open)."""
        self.stop_work_timer()

    def on_cleanup(self) -> None:
        """Close the backend."""
        if self.camera is not None:
            self.camera.close()
            self.camera = None

    def on_shutdown(self) -> None:
        """Stop the timer and close the backend."""
        self.on_deactivate()
        self.on_cleanup()

    # -- publishing --------------------------------------------------------------------------------

    def _publish_extrinsics(self, path: str) -> None:
        """Publish the hand-eye result on ``/tf_static`` (TRANSIENT_LOCAL, as tf2's static broadcaster).

        The transform is parent <- camera optical frame: the effector frame for an eye-in-hand
        camera, the robot base frame for a static one (the YAML's ``parameters``). Without
        ``tf2_msgs`` (not on PyPI) it goes out as ``geometry_msgs/TransformStamped`` on
        ``/camera/<name>/extrinsics`` instead, logged once.

        Raises:
            CalibrationError: the file is missing or not in the easy_handeye2 shape.
        """
        from scipy.spatial.transform import Rotation

        from robot_rl.calibration.hand_eye import load_hand_eye_yaml
        from robot_rl.ros.messages import TYPESTORE
        from robot_rl.ros.node import header

        T, params = load_hand_eye_yaml(path)
        parent = params.get("robot_effector_frame" if params.get("eye_on_hand", True) else "robot_base_frame") or "base_link"
        t, q = T[:3, 3], Rotation.from_matrix(T[:3, :3]).as_quat(canonical=True)
        M = TYPESTORE.types
        transform = M["geometry_msgs/msg/TransformStamped"](
            header=header(self.now(), parent), child_frame_id=self.frame_id,
            transform=M["geometry_msgs/msg/Transform"](
                translation=M["geometry_msgs/msg/Vector3"](x=float(t[0]), y=float(t[1]), z=float(t[2])),
                rotation=M["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))))
        if getattr(self, "_tf_pub", None) is None:
            try:
                self._tf_pub = self.create_publisher("tf2_msgs/msg/TFMessage", "/tf_static", "static")
            except ConfigError as e:
                self._tf_pub = self.create_publisher("geometry_msgs/msg/TransformStamped", self.extrinsics_topic, "static")
                self.get_logger().warning(f"/tf_static needs tf2_msgs ({e}); publishing the extrinsics as "
                                          f"geometry_msgs/TransformStamped on {self.extrinsics_topic} (TRANSIENT_LOCAL) instead.")
        if self._tf_pub.typename == "tf2_msgs/msg/TFMessage":
            self._tf_pub.publish(M["tf2_msgs/msg/TFMessage"](transforms=[transform]))
        else:
            self._tf_pub.publish(transform)
        self.get_logger().info(f"extrinsics from {path}: {parent} -> {self.frame_id}, t = {t.round(4).tolist()} m, "
                               f"on {self._tf_pub.topic}")

    def _subscribers_ready(self) -> bool:
        need = self.p["wait_for_subscribers"]
        if need <= 0:
            return True
        ready = self.image_pub.get_subscription_count() >= need and self.info_pub.get_subscription_count() >= need
        if not ready and not self._waiting_logged:
            self._waiting_logged = True
            self.get_logger().info(f"waiting for {need} subscription(s) on {self.image_pub.topic} and {self.info_pub.topic}")
        if ready:
            self.p["wait_for_subscribers"] = 0  # once matched, later subscribers do not pause the stream
        return ready

    def _tick(self) -> None:
        if self.camera is None or not self._subscribers_ready():
            return
        try:
            frame = self.camera.read()
        except TimeoutError as e:
            self.get_logger().warning(str(e))
            return
        except EOFError:
            self._finish()
            return
        stamp = frame.stamp if getattr(self.camera, "recorded_stamps", False) else self.now()
        self.image_pub.publish(image_msg(frame.rgb, stamp, self.frame_id))
        self.info_pub.publish(camera_info_msg(self.camera.intrinsics, stamp, self.frame_id))
        if self.depth_pub is not None and frame.depth is not None:
            self.depth_pub.publish(image_msg(frame.depth, stamp, self.frame_id))
        self.frames_published += 1
        if getattr(self.camera, "exhausted", False):
            self._finish()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.stop_work_timer()
        self.get_logger().info(f"replay finished: {self.frames_published} frames published")
        if self.p["shutdown_when_done"]:
            # Give reliable subscribers time to acknowledge the last frames before the writers go.
            self.create_timer(0.5, self.shutdown)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``robot_rl_camera_node``: run the camera node until SIGINT/SIGTERM (or the end
    of a replay with ``shutdown_when_done``). Returns 0, or 1 if the camera could not be opened."""
    return run_node(lambda args: CameraNode(args), argv)


if __name__ == "__main__":
    sys.exit(main())
