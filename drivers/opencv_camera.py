"""USB / V4L2 cameras, video files and network streams through OpenCV's ``cv2.VideoCapture``.

``cv2`` is imported lazily (``pip install opencv-python-headless``). Opening and reading run on a
worker thread with a watchdog, because ``VideoCapture`` can block for a long time on a stuck
device or an unreachable URL. Frames are converted from OpenCV's BGR to RGB.

Intrinsics come from a ROS camera_info YAML file (:mod:`robot_rl.calibration.camera_info`, the
format ``camera_calibration`` writes); without one a pinhole guess is used (``fx = fy = width``
pixels, principal point at the image centre, no distortion) and a warning is logged, since
anything metric computed from it (hand-eye calibration, point clouds) will be wrong.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import re
import threading
import time
from typing import Any

import numpy as np

from robot_rl.calibration.camera_info import load_camera_info_yaml
from robot_rl.errors import ConfigError, DeviceUnavailableError
from robot_rl.interfaces import Camera, CameraIntrinsics, Frame

logger = logging.getLogger(__name__)


def pinhole_guess(width: int, height: int) -> CameraIntrinsics:
    """Uncalibrated guess: ``fx = fy = width`` px (about a 53 degree horizontal field of view), centre principal point."""
    return CameraIntrinsics(width=int(width), height=int(height),
                            K=np.array([[float(width), 0.0, width / 2.0], [0.0, float(width), height / 2.0], [0.0, 0.0, 1.0]]),
                            D=np.zeros(5))


class _Worker:
    """One daemon thread that runs submitted calls in order (a stuck OpenCV call never blocks process exit)."""

    def __init__(self, name: str) -> None:
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                future.set_exception(e)

    def submit(self, fn: Any, *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        self._queue.put(None)


def _parse_source(device: str | int) -> tuple[str | int, str]:
    """``(what to pass to VideoCapture, kind)``; kind is ``device``, ``file`` or ``stream``."""
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        return int(device), "device"
    text = str(device).strip()
    if not text:
        raise ConfigError("OpenCV camera: 'device' is empty; give an index (0), a path (/dev/video0), a video file or a URL.")
    if "://" in text:
        return text, "stream"
    if re.fullmatch(r"/dev/video\d+", text) or text.startswith("/dev/"):
        return text, "device"
    return text, "file"


class OpenCVCamera(Camera):
    """A camera, video file or stream read with ``cv2.VideoCapture``.

    Args:
        name: camera name (topics ``/camera/<name>/...``).
        device: device index (``0``), device path (``/dev/video0``), video file path, or URL
            (``rtsp://...``, ``http://...``).
        width: requested width in pixels (devices only; 0 keeps the device's default). The
            delivered size is what the device chose: see :attr:`intrinsics`.
        height: requested height in pixels (devices only; 0 keeps the default).
        fps: requested frame rate in Hz (devices only; 0 keeps the default).
        camera_info_url: ROS camera_info YAML file (path or ``file://`` URL); "" for a pinhole guess.
        open_timeout_s: watchdog for opening and for the first frame, seconds.
        timeout_s: how long :meth:`read` waits for a frame, seconds.
        loop: for video files, start again at the first frame after the last one.

    Raises:
        DeviceUnavailableError: cv2 is missing, the device node or file does not exist, or the
            source does not open / deliver a first frame within ``open_timeout_s``.
        ConfigError: a bad ``device`` string or camera_info file.
    """

    def __init__(self, name: str = "front", *, device: str | int = 0, width: int = 0, height: int = 0, fps: float = 0.0,
                 camera_info_url: str = "", open_timeout_s: float = 5.0, timeout_s: float = 1.0, loop: bool = False) -> None:
        try:
            import cv2
        except ImportError as e:
            raise DeviceUnavailableError(f"OpenCV is not importable ({e}); install it with `pip install opencv-python-headless` "
                                         "(or `pip install robot_rl[cameras]`).") from e
        self._cv2 = cv2
        self.name = name
        self.timeout_s = float(timeout_s)
        self.loop = loop
        self._exhausted = False
        source, self.kind = _parse_source(device)
        self.source = source
        if self.kind == "device":
            path = source if isinstance(source, str) else f"/dev/video{source}"
            if os.name == "posix" and os.path.isdir("/dev") and not os.path.exists(path):
                present = sorted(p for p in os.listdir("/dev") if p.startswith("video"))
                raise DeviceUnavailableError(
                    f"camera device {path} does not exist (camera {name!r}); video devices here: "
                    f"{['/dev/' + p for p in present] or 'none'}. Check the USB cable, `v4l2-ctl --list-devices`, "
                    "and that your user is in the 'video' group.")
        elif self.kind == "file" and not os.path.isfile(source):
            raise DeviceUnavailableError(f"video file {source} does not exist (camera {name!r}); give an existing file, "
                                         "a device index or path (/dev/video0), or a stream URL.")
        # One worker thread owns the capture: open, read and release all run on it, so a call that
        # blocks inside OpenCV stalls only the worker and the watchdog can give up on it.
        self._worker = _Worker(f"cv2:{name}")
        self._cap = None
        try:
            self._cap, first = self._call(self._open, (width, height, fps), open_timeout_s, "open")
        except BaseException:
            self._worker.shutdown()
            raise
        self._pending = first
        h, w = first.shape[:2]
        if camera_info_url:
            self._intrinsics = load_camera_info_yaml(camera_info_url)
            if (self._intrinsics.width, self._intrinsics.height) != (w, h):
                logger.warning("camera %s: camera_info %s is for %d x %d px but the camera delivers %d x %d px; "
                               "recalibrate or request the calibrated size", name, camera_info_url,
                               self._intrinsics.width, self._intrinsics.height, w, h)
        else:
            self._intrinsics = pinhole_guess(w, h)
            logger.warning("camera %s has no camera_info_url: using a pinhole guess (fx = fy = %d px, centre principal point, "
                           "no distortion); calibrate it (camera_calibration) for metric use", name, w)

    def _call(self, fn: Any, args: tuple, timeout_s: float, what: str) -> Any:
        future = self._worker.submit(fn, *args)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            if what == "open":
                raise DeviceUnavailableError(f"camera {self.name!r}: {self.source} did not open and deliver a frame within "
                                             f"{timeout_s} s; check the device / URL (`v4l2-ctl --list-devices`, "
                                             "`ffprobe <url>`), or raise open_timeout_s.") from None
            raise TimeoutError(f"camera {self.name!r}: no frame from {self.source} within {timeout_s} s.") from None

    def _open(self, width: int, height: int, fps: float) -> tuple[Any, np.ndarray]:
        cv2 = self._cv2
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            raise DeviceUnavailableError(f"camera {self.name!r}: OpenCV cannot open {self.source}; check that it is a camera, "
                                         "video file or stream OpenCV's FFmpeg/V4L2 backends read, and that no other process holds it.")
        if self.kind == "device":
            if width > 0:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height > 0:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps > 0:
                cap.set(cv2.CAP_PROP_FPS, fps)
        ok, bgr = cap.read()
        if not ok or bgr is None:
            cap.release()
            raise DeviceUnavailableError(f"camera {self.name!r}: {self.source} opened but delivered no frame; "
                                         "check the device (another process may hold it) or that the file is a readable video.")
        return cap, self._to_rgb(bgr)

    def _to_rgb(self, bgr: np.ndarray) -> np.ndarray:
        if bgr.ndim == 2:
            return np.ascontiguousarray(np.repeat(bgr[:, :, None], 3, axis=2))
        return np.ascontiguousarray(bgr[:, :, 2::-1])

    def _grab(self) -> np.ndarray | None:
        ok, bgr = self._cap.read()
        if not ok and self.kind == "file" and self.loop:
            self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._cap.read()
        return self._to_rgb(bgr) if ok and bgr is not None else None

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """From ``camera_info_url``, or the pinhole guess of the delivered size (K in pixels, D zeros)."""
        return self._intrinsics

    @property
    def exhausted(self) -> bool:
        """True once a video file (without ``loop``) has delivered its last frame."""
        return self._exhausted

    def read(self) -> Frame:
        """The next frame.

        Returns:
            :class:`Frame` with ``rgb`` (H, W, 3) uint8 RGB and ``stamp`` = arrival time, seconds
            since the Unix epoch.

        Raises:
            TimeoutError: no frame within ``timeout_s`` (device unplugged, stream stalled).
            EOFError: a video file without ``loop`` has no more frames (see :attr:`exhausted`).
            RuntimeError: the camera was closed.
        """
        if self._cap is None:
            raise RuntimeError(f"camera {self.name!r} is closed.")
        if self._pending is not None:
            rgb, self._pending = self._pending, None
        else:
            if self._exhausted:
                raise EOFError(f"video {self.source} has no more frames (set loop to replay it).")
            rgb = self._call(self._grab, (), self.timeout_s, "read")
            if rgb is None:
                if self.kind == "file":
                    self._exhausted = True
                    raise EOFError(f"video {self.source} has no more frames (set loop to replay it).")
                raise TimeoutError(f"camera {self.name!r}: {self.source} returned no frame (unplugged?).")
        return Frame(rgb=rgb, stamp=time.time())

    def close(self) -> None:
        """Release the capture (on its worker thread, without waiting for a stuck call). Idempotent."""
        cap, self._cap = self._cap, None
        if cap is not None:
            self._worker.submit(cap.release)
            self._worker.shutdown()
