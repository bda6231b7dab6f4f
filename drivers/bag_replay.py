"""A camera that replays the images of a rosbag2 recording (MCAP or sqlite3), read with ``rosbags``.

Used to re-run the camera node (and everything downstream) on recorded data: frames come out in
bag order, one per :meth:`ReplayCamera.read`, with the stamps of their recorded headers.

Example:
    >>> cam = ReplayCamera("episode_0001", image_topic="/camera/front/color/image_raw")  # doctest: +SKIP
    >>> while not cam.exhausted:                                                        # doctest: +SKIP
    ...     frame = cam.read()
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.interfaces import Camera, CameraIntrinsics, Frame
from robot_rl.ros.convert import image_to_array, intrinsics_from_camera_info
from robot_rl.ros.messages import TYPESTORE
from robot_rl.ros.node import stamp_to_seconds

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


def _decode_compressed(msg: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a ``sensor_msgs/CompressedImage`` (jpeg/png), decoded with cv2."""
    try:
        import cv2
    except ImportError as e:
        raise ConfigError(f"the bag's images are CompressedImage ({msg.format!r}); decoding them needs OpenCV: "
                          "pip install opencv-python-headless") from e
    bgr = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConfigError(f"cannot decode a CompressedImage of format {msg.format!r} (jpeg and png are supported).")
    return np.ascontiguousarray(bgr[:, :, ::-1])


class ReplayCamera(Camera):
    """Images of one topic of a rosbag2, in bag order.

    Args:
        bag_path: the bag folder (with ``metadata.yaml``) or a single ``.mcap`` file.
        image_topic: a ``sensor_msgs/Image`` (any encoding :func:`image_to_array` reads: rgb8,
            bgr8, mono8 ...) or ``sensor_msgs/CompressedImage`` topic.
        info_topic: its ``sensor_msgs/CameraInfo`` topic; "" for ``<image topic's folder>/camera_info``
            when that exists in the bag. Without one, intrinsics are a pinhole guess of the first
            image's size.
        loop: after the last frame, start again at the first (stamps repeat).
        name: camera name; default: derived from the topic (``/camera/<name>/...``) or ``replay``.

    Raises:
        ConfigError: the bag does not exist or cannot be read, the image topic is not in it or is
            of another type (the message lists the bag's topics and types), or it has no messages.
    """

    #: Frames carry the bag's recorded header stamps; the camera node republishes them unchanged.
    recorded_stamps = True

    def __init__(self, bag_path: str | Path, image_topic: str, info_topic: str = "", *, loop: bool = False,
                 name: str | None = None) -> None:
        from rosbags.rosbag2 import Reader

        path = Path(bag_path).expanduser()
        if not path.exists():
            raise ConfigError(f"bag {path} does not exist; give a rosbag2 folder (with metadata.yaml) or an .mcap file.")
        try:
            self._reader = Reader(path)
            self._reader.open()
        except Exception as e:  # noqa: BLE001 - rosbags raises several reader errors
            raise ConfigError(f"cannot read bag {path}: {e}. Is it a rosbag2 (MCAP or sqlite3) recording?") from e
        self.bag_path = path
        self.loop = loop
        topics = {c.topic: c.msgtype for c in self._reader.connections}
        listing = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "none"
        if image_topic not in topics:
            self._reader.close()
            raise ConfigError(f"bag {path} has no topic {image_topic!r}; its topics: {listing}. Set bag_image_topic to one of them.")
        if topics[image_topic] not in (IMAGE, COMPRESSED):
            self._reader.close()
            raise ConfigError(f"topic {image_topic} in bag {path} is {topics[image_topic]}, not {IMAGE} or {COMPRESSED}; its topics: {listing}.")
        if not info_topic:
            guess = image_topic.rsplit("/", 1)[0] + "/camera_info"
            info_topic = guess if topics.get(guess) == CAMERA_INFO else ""
        elif topics.get(info_topic) != CAMERA_INFO:
            self._reader.close()
            raise ConfigError(f"bag {path} has no {CAMERA_INFO} topic {info_topic!r}; its topics: {listing}. "
                              "Set bag_info_topic to one of them, or to '' to use <image folder>/camera_info if present.")
        self.image_topic, self.info_topic = image_topic, info_topic
        parts = image_topic.strip("/").split("/")
        self.name = name or (parts[1] if len(parts) > 2 and parts[0] == "camera" else "replay")
        self._image_conns = [c for c in self._reader.connections if c.topic == image_topic]
        self.frame_count = sum(c.msgcount for c in self._image_conns)
        if self.frame_count == 0:
            self._reader.close()
            raise ConfigError(f"topic {image_topic} in bag {path} has no messages.")
        self._intrinsics = self._first_intrinsics()
        self._messages: Iterator[tuple[Any, int, bytes]] = self._reader.messages(connections=self._image_conns)
        self._exhausted = False
        self._next: Frame | None = None
        self.frames_read = 0

    def _first_intrinsics(self) -> CameraIntrinsics:
        if self.info_topic:
            conns = [c for c in self._reader.connections if c.topic == self.info_topic]
            for conn, _, raw in self._reader.messages(connections=conns):
                return intrinsics_from_camera_info(TYPESTORE.deserialize_cdr(raw, conn.msgtype))
        for conn, _, raw in self._reader.messages(connections=self._image_conns):
            h, w = self._decode(conn, raw).rgb.shape[:2]
            from robot_rl.drivers.opencv_camera import pinhole_guess

            return pinhole_guess(w, h)
        raise ConfigError(f"topic {self.image_topic} in bag {self.bag_path} has no messages.")

    def _decode(self, conn: Any, raw: bytes) -> Frame:
        msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
        rgb = _decode_compressed(msg) if conn.msgtype == COMPRESSED else image_to_array(msg)
        if rgb.ndim != 3:
            raise ConfigError(f"topic {self.image_topic} holds {msg.encoding} images; the replay camera plays colour images "
                              "(rgb8, bgr8, rgba8, bgra8, mono8).")
        return Frame(rgb=rgb, stamp=stamp_to_seconds(msg.header.stamp))

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """From the bag's first CameraInfo on :attr:`info_topic`, else a pinhole guess (fx = fy = width px)."""
        return self._intrinsics

    @property
    def exhausted(self) -> bool:
        """True when every frame has been read and ``loop`` is off (the next :meth:`read` raises EOFError)."""
        if self.loop or self._exhausted:
            return self._exhausted
        if self._next is None:
            item = next(self._messages, None)
            if item is None:
                self._exhausted = True
            else:
                self._next = self._decode(item[0], item[2])
        return self._exhausted

    def read(self) -> Frame:
        """The next frame of the bag.

        Returns:
            :class:`Frame` with ``rgb`` (H, W, 3) uint8 RGB and ``stamp`` = the recorded header
            stamp, seconds.

        Raises:
            EOFError: the bag has no more frames and ``loop`` is off.
            RuntimeError: the camera was closed.
        """
        if self._reader is None:
            raise RuntimeError(f"replay camera {self.name!r} is closed.")
        done = EOFError(f"bag {self.bag_path}: all {self.frame_count} frames of {self.image_topic} were read.")
        if self._exhausted:
            raise done
        if self._next is not None:
            frame, self._next = self._next, None
        else:
            item = next(self._messages, None)
            if item is None:
                if not self.loop:
                    self._exhausted = True
                    raise done
                self._messages = self._reader.messages(connections=self._image_conns)
                item = next(self._messages)
            frame = self._decode(item[0], item[2])
        self.frames_read += 1
        return frame

    def close(self) -> None:
        """Close the bag. Idempotent."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
