"""Intel RealSense cameras (D400 series, L515) through ``pyrealsense2``, imported lazily.

Colour arrives as ``rgb8``; depth, when enabled, is aligned to the colour image with
``rs.align(rs.stream.color)`` and converted to millimetres with the depth sensor's scale, so
``Frame.depth[v, u]`` is the distance along the optical axis of colour pixel ``(u, v)``.

Facts this driver is built around (``../shared/HARDWARE_NOTES.md``): with no device attached,
``rs.context().query_devices()`` answers in ~0.04 s, but ``pipeline.start()`` blocks 15 s before
failing, so the device list is always checked first.

Install: ``pip install pyrealsense2`` (``robot_rl[cameras]``); on Debian also ``libusb-1.0-0``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError, DeviceUnavailableError
from robot_rl.interfaces import Camera, CameraIntrinsics, Frame

_CHECKS = ("check that the camera is plugged into a USB 3 port with a USB 3 cable (a USB 2 link limits "
           "resolutions and often drops frames), that `rs-enumerate-devices` lists it, and that no other process "
           "(realsense-viewer, another node) holds it")


def _import_sdk() -> Any:
    try:
        import pyrealsense2 as rs
    except ImportError as e:
        raise DeviceUnavailableError(
            f"pyrealsense2 is not importable ({e}); install it with `pip install pyrealsense2` "
            "(or `pip install robot_rl[cameras]`) and, on Debian/Ubuntu, `apt install libusb-1.0-0`.") from e
    return rs


def list_realsense_serials() -> list[str]:
    """Serial numbers of the connected RealSense devices (fast: no stream is started).

    Raises:
        DeviceUnavailableError: pyrealsense2 is not installed.
    """
    rs = _import_sdk()
    return [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]


class RealSenseCamera(Camera):
    """A RealSense colour (+ aligned depth) camera.

    Args:
        name: camera name (topics ``/camera/<name>/...``).
        serial: serial number of the device to open; None or "" for the first one found.
        width: colour (and depth) width in pixels (a mode the device supports, e.g. 640).
        height: colour (and depth) height in pixels (e.g. 480).
        fps: frame rate in Hz (6, 15, 30, 60 for most D400 modes).
        enable_depth: also stream depth, aligned to colour, as ``(H, W) uint16`` millimetres.
        timeout_s: how long :meth:`read` waits for a frame set, seconds.

    Raises:
        DeviceUnavailableError: the SDK is missing, no device is connected, ``serial`` is not among
            the connected ones, or the stream cannot start (the message lists what to check).
            Raised within a fraction of a second when nothing is connected.
    """

    def __init__(self, name: str = "front", *, serial: str | None = None, width: int = 640, height: int = 480,
                 fps: int = 30, enable_depth: bool = True, timeout_s: float = 1.0) -> None:
        if width <= 0 or height <= 0 or fps <= 0:
            raise ConfigError(f"RealSense mode {width} x {height} px at {fps} Hz: all must be positive.")
        self.name = name
        self.enable_depth = enable_depth
        self.timeout_s = float(timeout_s)
        rs = self._rs = _import_sdk()
        serials = list_realsense_serials()
        if not serials:
            raise DeviceUnavailableError(f"no RealSense device found (camera {name!r}); {_CHECKS}.")
        if serial and serial not in serials:
            raise DeviceUnavailableError(f"RealSense with serial {serial!r} not found; connected serials: {serials}. "
                                         f"Set the 'serial' parameter to one of them, or {_CHECKS}.")
        config = rs.config()
        if serial:
            config.enable_device(serial)
        config.enable_stream(rs.stream.color, width, height, rs.format.rgb8, fps)
        if enable_depth:
            config.enable_stream(rs.stream.depth, width, height, rs.format.z16, fps)
        self._pipeline = rs.pipeline()
        try:
            profile = self._pipeline.start(config)
        except RuntimeError as e:
            raise DeviceUnavailableError(
                f"RealSense {serial or serials[0]} could not start {width} x {height} @ {fps} Hz "
                f"(colour{' + depth' if enable_depth else ''}): {e}. List the supported modes with `rs-enumerate-devices`; "
                f"also {_CHECKS}.") from e
        self._started = True
        intr = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
        self._intrinsics = CameraIntrinsics(
            width=int(intr.width), height=int(intr.height),
            K=np.array([[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]]),
            D=np.asarray(intr.coeffs, dtype=np.float64))
        # Depth units in metres per count (0.001 on D400, 0.00025 on L515); millimetres per count below.
        self._mm_per_unit = profile.get_device().first_depth_sensor().get_depth_scale() * 1000.0 if enable_depth else 1.0
        self._align = rs.align(rs.stream.color) if enable_depth else None

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """Intrinsics of the colour stream (and of the aligned depth): K in pixels, D as the SDK reports them
        (Brown-Conrady / ``plumb_bob`` order k1, k2, p1, p2, k3)."""
        return self._intrinsics

    def read(self) -> Frame:
        """Wait for the next frame set.

        Returns:
            :class:`Frame`: ``rgb`` (H, W, 3) uint8, ``depth`` (H, W) uint16 mm aligned to ``rgb``
            (0 = no reading) when enabled, ``stamp`` in seconds since the Unix epoch (the device's
            global/system time stamp when it has one, else the arrival time).

        Raises:
            TimeoutError: no frame set within ``timeout_s``.
            RuntimeError: the camera was closed.
        """
        if not self._started:
            raise RuntimeError(f"RealSense camera {self.name!r} is closed.")
        rs = self._rs
        try:
            frames = self._pipeline.wait_for_frames(int(self.timeout_s * 1000))
        except RuntimeError as e:
            raise TimeoutError(f"RealSense camera {self.name!r}: no frames within {self.timeout_s} s ({e}); {_CHECKS}.") from e
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        rgb = np.asanyarray(color.get_data()).copy()
        domain = color.get_frame_timestamp_domain()
        stamp = color.get_timestamp() / 1000.0 if domain in (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time) else time.time()
        depth = None
        if self._align is not None:
            raw = np.asanyarray(frames.get_depth_frame().get_data())
            if abs(self._mm_per_unit - 1.0) < 1e-9:
                depth = raw.copy()
            else:
                depth = np.clip(np.rint(raw * self._mm_per_unit), 0, np.iinfo(np.uint16).max).astype(np.uint16)
        return Frame(rgb=rgb, stamp=stamp, depth=depth)

    def close(self) -> None:
        """Stop the pipeline. Idempotent."""
        if getattr(self, "_started", False):
            self._started = False
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass
