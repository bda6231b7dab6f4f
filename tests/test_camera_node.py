"""The camera node and its backends: replay, RealSense, OpenCV, sim; camera_info YAML files.

Node tests run the node as a real process (``python -m robot_rl.drivers.camera_node``) on an
isolated DDS domain and subscribe from this process; bags are real rosbag2 files written with
rosbags. No RealSense or V4L2 device exists on the test machine, so those backends are tested for
their fast, clear failure; the OpenCV backend's reading path runs on a video file.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.errors import ConfigError, DeviceUnavailableError
from robot_rl.interfaces import CameraIntrinsics
from robot_rl.ros.convert import camera_info_msg, camera_topics, image_msg, image_to_array, optical_frame
from robot_rl.ros.messages import TYPESTORE
from robot_rl.ros.node import Node, QoSProfile, stamp_to_seconds

from conftest import start_node, stop_node

NODE = "robot_rl.drivers.camera_node"
TOPICS = camera_topics("front")
K = np.array([[50.0, 0.0, 31.5], [0.0, 51.0, 23.5], [0.0, 0.0, 1.0]])
D = np.array([0.1, -0.05, 0.001, 0.002, 0.01])
INTRINSICS = CameraIntrinsics(width=64, height=48, K=K, D=D)
T0 = 1_700_000_000.0


def frame_rgb(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    """(h, w, 3) uint8 image whose content identifies frame ``i``."""
    rng = np.random.default_rng(i)
    img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    img[0, 0] = (i, 255 - i, i % 7)
    return img


def stamp_of(i: int) -> float:
    return T0 + i * 0.0333


def write_bag(path: Path, n: int, *, storage: str = "mcap", with_info: bool = True, compressed: bool = False) -> Path:
    """A rosbag2 with ``n`` frames on the front camera's image topic (and its camera_info)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(path, version=9, storage_plugin=plugin)
    writer.open()
    image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    img_conn = writer.add_connection(TOPICS["image"], image_type, typestore=TYPESTORE)
    info_conn = writer.add_connection(TOPICS["info"], "sensor_msgs/msg/CameraInfo", typestore=TYPESTORE) if with_info else None
    other = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=TYPESTORE)
    frame = optical_frame("front")
    for i in range(n):
        t_ns = int(stamp_of(i) * 1e9)
        if compressed:
            import cv2

            ok, png = cv2.imencode(".png", frame_rgb(i)[:, :, ::-1])
            assert ok
            from robot_rl.ros.node import header

            msg = TYPESTORE.types[image_type](header=header(stamp_of(i), frame), format="rgb8; png compressed bgr8",
                                               data=png.ravel())
        else:
            msg = image_msg(frame_rgb(i), stamp_of(i), frame)
        writer.write(img_conn, t_ns, TYPESTORE.serialize_cdr(msg, image_type))
        if info_conn is not None:
            writer.write(info_conn, t_ns, TYPESTORE.serialize_cdr(camera_info_msg(INTRINSICS, stamp_of(i), frame),
                                                                  "sensor_msgs/msg/CameraInfo"))
    writer.write(other, int(T0 * 1e9), TYPESTORE.serialize_cdr(TYPESTORE.types["sensor_msgs/msg/JointState"](
        header=TYPESTORE.types["std_msgs/msg/Header"](stamp=TYPESTORE.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                                                      frame_id=""),
        name=[], position=np.zeros(0), velocity=np.zeros(0), effort=np.zeros(0)), "sensor_msgs/msg/JointState"))
    writer.close()
    return path


def wait_exit(proc: subprocess.Popen, timeout_s: float) -> int | None:
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None


# --------------------------------------------------------------------------- replay node


@pytest.mark.timeout(60)
def test_replay_node_delivers_every_frame_in_order(ros_domain: int, tmp_path: Path) -> None:
    n = 60
    bag = write_bag(tmp_path / "bag", n)
    images, infos = [], []
    listener = Node("listener")
    try:
        listener.create_subscription("sensor_msgs/msg/CameraInfo", TOPICS["info"], infos.append, QoSProfile(200, True))
        listener.create_subscription("sensor_msgs/msg/Image", TOPICS["image"], images.append, QoSProfile(200, True))
        log = tmp_path / "node.log"
        proc = start_node(NODE, "-p", "backend:=replay", "-p", f"bag_path:={bag}", "-p", "camera_name:=front",
                          "-p", "qos:=reliable", "-p", "wait_for_subscribers:=1", "-p", "rate_hz:=100.0",
                          "-p", "shutdown_when_done:=true", log_path=str(log))
        try:
            listener.spin(timeout_s=25.0, until=lambda: len(images) >= n and len(infos) >= n)
            code = wait_exit(proc, 10.0)
        finally:
            stop_node(proc)
        out = log.read_text()
        assert len(images) == n, f"got {len(images)} of {n} frames; node log:\n{out}"
        for i, msg in enumerate(images):
            assert msg.header.frame_id == "front_color_optical_frame"
            assert msg.encoding == "rgb8" and (msg.height, msg.width) == (48, 64)
            assert stamp_to_seconds(msg.header.stamp) == pytest.approx(stamp_of(i), abs=1e-6)
            assert image_to_array(msg).tobytes() == frame_rgb(i).tobytes(), f"frame {i} differs"
        assert len(infos) == n
        for msg, img in zip(infos, images):
            assert msg.header.stamp == img.header.stamp and msg.header.frame_id == img.header.frame_id
            assert (msg.width, msg.height) == (64, 48)
            np.testing.assert_allclose(np.asarray(msg.k).reshape(3, 3), K)
            np.testing.assert_allclose(msg.d, D)
        assert "replay finished" in out
        assert code == 0, f"node did not exit 0 after the replay (code {code}); log:\n{out}"
    finally:
        listener.shutdown()


def test_replay_camera_reads_bag_in_order_loops_and_decodes_compressed(tmp_path: Path) -> None:
    from robot_rl.drivers.bag_replay import ReplayCamera

    cam = ReplayCamera(write_bag(tmp_path / "sqlite", 3, storage="sqlite3"), TOPICS["image"])
    assert cam.name == "front" and cam.frame_count == 3 and cam.info_topic == TOPICS["info"]
    np.testing.assert_allclose(cam.intrinsics.K, K)
    for i in range(3):
        assert not cam.exhausted
        f = cam.read()
        assert f.rgb.dtype == np.uint8 and np.array_equal(f.rgb, frame_rgb(i)) and f.stamp == pytest.approx(stamp_of(i))
    assert cam.exhausted
    with pytest.raises(EOFError):
        cam.read()
    cam.close()

    looped = ReplayCamera(write_bag(tmp_path / "png", 2, compressed=True, with_info=False), TOPICS["image"], loop=True)
    frames = [looped.read() for _ in range(5)]
    assert not looped.exhausted
    assert [np.array_equal(f.rgb, frame_rgb(i % 2)) for i, f in enumerate(frames)] == [True] * 5
    assert looped.intrinsics.width == 64 and looped.intrinsics.K[0, 0] == 64.0  # pinhole guess without camera_info
    looped.close()


def test_replay_missing_bag_or_topic_is_a_config_error_listing_topics(tmp_path: Path) -> None:
    from robot_rl.drivers.bag_replay import ReplayCamera

    bag = write_bag(tmp_path / "bag", 2)
    with pytest.raises(ConfigError, match="has no topic '/camera/wrist/color/image_raw'") as err:
        ReplayCamera(bag, "/camera/wrist/color/image_raw")
    assert TOPICS["image"] in str(err.value) and "/joint_states" in str(err.value)
    with pytest.raises(ConfigError, match="not sensor_msgs/msg/Image"):
        ReplayCamera(bag, "/joint_states")
    with pytest.raises(ConfigError, match="no sensor_msgs/msg/CameraInfo topic '/nope'"):
        ReplayCamera(bag, TOPICS["image"], "/nope")
    with pytest.raises(ConfigError, match="does not exist"):
        ReplayCamera(tmp_path / "missing", TOPICS["image"])


# --------------------------------------------------------------------------- RealSense


def test_realsense_without_device_fails_fast_and_clearly() -> None:
    from robot_rl.drivers.realsense import RealSenseCamera, list_realsense_serials

    if list_realsense_serials():
        pytest.skip("a RealSense is connected; this test checks the no-device error")
    t0 = time.monotonic()
    with pytest.raises(DeviceUnavailableError, match="no RealSense device found") as err:
        RealSenseCamera("front", width=640, height=480, fps=30)
    assert time.monotonic() - t0 < 5.0
    assert "USB 3" in str(err.value) and "rs-enumerate-devices" in str(err.value)


@pytest.mark.timeout(60)
def test_realsense_node_without_device_exits_1_with_the_message(ros_domain: int, tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    t0 = time.monotonic()
    proc = start_node(NODE, "-p", "backend:=realsense", "-p", "camera_name:=front", log_path=str(log))
    code = wait_exit(proc, 25.0)
    stop_node(proc)
    out = log.read_text()
    assert code == 1, f"exit code {code}; log:\n{out}"
    assert "no RealSense device found" in out and "rs-enumerate-devices" in out
    assert time.monotonic() - t0 < 25.0


# --------------------------------------------------------------------------- OpenCV


def test_opencv_missing_device_fails_fast() -> None:
    from robot_rl.drivers.opencv_camera import OpenCVCamera

    for device in ("/dev/video97", 97, "97"):
        t0 = time.monotonic()
        with pytest.raises(DeviceUnavailableError, match="/dev/video97 does not exist"):
            OpenCVCamera("front", device=device)
        assert time.monotonic() - t0 < 1.0
    with pytest.raises(DeviceUnavailableError, match="does not exist"):
        OpenCVCamera("front", device="/nonexistent/video.mp4")


def test_opencv_reads_a_video_file_as_rgb(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    from robot_rl.calibration.camera_info import save_camera_info_yaml
    from robot_rl.drivers.opencv_camera import OpenCVCamera

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video headless")
    for i in range(5):
        bgr = np.zeros((48, 64, 3), np.uint8)
        bgr[..., 0] = 200  # blue in OpenCV's BGR order
        bgr[..., 2] = 10 * i
        writer.write(bgr)
    writer.release()
    save_camera_info_yaml(tmp_path / "front.yaml", INTRINSICS, "front")
    cam = OpenCVCamera("front", device=str(path), camera_info_url=f"file://{tmp_path / 'front.yaml'}")
    np.testing.assert_allclose(cam.intrinsics.K, K)
    frames = []
    while not cam.exhausted:
        try:
            frames.append(cam.read())
        except EOFError:
            break
    assert len(frames) == 5 and cam.exhausted
    for i, f in enumerate(frames):
        assert f.rgb.shape == (48, 64, 3) and f.rgb.dtype == np.uint8
        assert abs(int(f.rgb[..., 2].mean()) - 200) < 8  # blue is the last RGB channel
        assert abs(int(f.rgb[..., 0].mean()) - 10 * i) < 8
    cam.close()
    guessed = OpenCVCamera("front", device=str(path))
    assert guessed.intrinsics.K[0, 0] == 64.0 and guessed.intrinsics.K[0, 2] == 32.0
    guessed.close()


# --------------------------------------------------------------------------- camera_info YAML


def test_camera_info_yaml_round_trip(tmp_path: Path) -> None:
    import yaml

    from robot_rl.calibration.camera_info import load_camera_info_yaml, save_camera_info_yaml

    path = tmp_path / "calib" / "front.yaml"
    save_camera_info_yaml(path, INTRINSICS, "front")
    doc = yaml.safe_load(path.read_text())
    assert doc["camera_name"] == "front" and doc["distortion_model"] == "plumb_bob"
    assert doc["camera_matrix"]["rows"] == 3 and doc["projection_matrix"]["cols"] == 4
    back = load_camera_info_yaml(f"file://{path}")
    assert (back.width, back.height) == (64, 48)
    np.testing.assert_array_equal(back.K, K)
    np.testing.assert_array_equal(back.D, D)
    with pytest.raises(ConfigError, match="does not exist"):
        load_camera_info_yaml(tmp_path / "missing.yaml")
    del doc["camera_matrix"]["data"][0]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="camera_matrix"):
        load_camera_info_yaml(path)


# --------------------------------------------------------------------------- sim


@pytest.mark.timeout(60)
def test_sim_node_publishes_128px_frames_at_the_rate(ros_domain: int, tmp_path: Path) -> None:
    arrivals, shapes, infos = [], [], []
    listener = Node("listener")

    def on_image(msg) -> None:
        arrivals.append(time.monotonic())
        shapes.append(image_to_array(msg).shape)

    try:
        listener.create_subscription("sensor_msgs/msg/Image", TOPICS["image"], on_image, "sensor")
        listener.create_subscription("sensor_msgs/msg/CameraInfo", TOPICS["info"], infos.append, "sensor")
        log = tmp_path / "node.log"
        proc = start_node(NODE, "-p", "backend:=sim", "-p", "camera_name:=front", "-p", "width:=128", "-p", "height:=128",
                          "-p", "rate_hz:=10.0", log_path=str(log))
        try:
            listener.spin(timeout_s=20.0, until=lambda: len(arrivals) >= 1)
            listener.spin(timeout_s=2.0)
        finally:
            code = stop_node(proc)
        out = log.read_text()
        assert len(arrivals) >= 2, f"no frames from the sim node; log:\n{out}"
        assert set(shapes) == {(128, 128, 3)}
        rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
        assert 5.0 < rate < 15.0, f"published at {rate:.1f} Hz, asked 10 Hz"
        assert infos and (infos[-1].width, infos[-1].height) == (128, 128)
        assert code == 0, f"node exit code {code} after SIGINT; log:\n{out}"
    finally:
        listener.shutdown()


def test_hand_eye_extrinsics_reach_a_late_subscriber(ros_domain: int, tmp_path: Path) -> None:
    """The camera node publishes its calibrated pose TRANSIENT_LOCAL, so a plain rclpy listener that starts later
    gets it: on /tf_static (tf2_msgs/TFMessage) in a ROS 2 install, else, tf2_msgs not being on PyPI, as a
    geometry_msgs/TransformStamped on /camera/<name>/extrinsics, which the node says in its log."""
    import importlib.util

    import numpy as np
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from conftest import UserNode
    from robot_rl.calibration.hand_eye import HandEyeResult, pose_matrix, save_hand_eye_yaml

    T = pose_matrix(np.array([0.05, -0.02, 0.04]), np.array([0.0, 0.0, np.sin(0.2), np.cos(0.2)]))
    save_hand_eye_yaml(tmp_path / "wrist.yaml", HandEyeResult(transform=T, method="park", eye_in_hand=True),
                       robot_effector_frame="panda_hand_tcp")
    log = tmp_path / "node.log"
    proc = start_node(NODE, "-p", "backend:=sim", "-p", "camera_name:=wrist", "-p", "width:=64", "-p", "height:=64",
                      "-p", f"hand_eye_file:={tmp_path / 'wrist.yaml'}", log_path=str(log))
    listener = Node("tf_listener")
    have_tf2 = importlib.util.find_spec("tf2_msgs") is not None
    try:
        images: list = []
        listener.create_subscription("sensor_msgs/msg/Image", "/camera/wrist/color/image_raw", images.append, "sensor")
        listener.spin(timeout_s=30.0, until=lambda: bool(images))  # the node is up and has published the extrinsics
        assert images, log.read_text()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        with UserNode("late_tf_listener") as late:
            got: list = []
            if have_tf2:
                from tf2_msgs.msg import TFMessage

                late.node.create_subscription(TFMessage, "/tf_static", lambda m: got.extend(m.transforms), latched)
            else:
                from geometry_msgs.msg import TransformStamped

                late.node.create_subscription(TransformStamped, "/camera/wrist/extrinsics", got.append, latched)
            late.spin_until(lambda: bool(got), 10.0)
    finally:
        listener.shutdown()
        stop_node(proc)
    text = log.read_text()
    assert got, text
    if not have_tf2:
        assert "publishing the extrinsics as geometry_msgs/TransformStamped on /camera/wrist/extrinsics" in text
    tf = got[0]
    assert tf.header.frame_id == "panda_hand_tcp" and tf.child_frame_id == "wrist_color_optical_frame"
    assert np.allclose([tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z], [0.05, -0.02, 0.04])
    assert np.isclose(abs(tf.transform.rotation.z), np.sin(0.2))
