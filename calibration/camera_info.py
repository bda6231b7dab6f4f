"""Camera intrinsics as ROS ``camera_info`` YAML files (the format ``camera_calibration`` writes).

The file is what ``ros2 run camera_calibration cameracalibrator`` saves and what
``camera_info_manager`` loads from a ``camera_info_url``::

    image_width: 640
    image_height: 480
    camera_name: front
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, t1, t2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
    projection_matrix: {rows: 3, cols: 4, data: [fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0]}

Only the monocular part is used here: :class:`~robot_rl.interfaces.CameraIntrinsics` keeps the
size, ``K`` and ``D``; the rectification and projection matrices are written as identity and
``[K | 0]`` (a monocular camera's values) and checked for shape when read.

Example:
    >>> import numpy as np, tempfile, os
    >>> from robot_rl.interfaces import CameraIntrinsics
    >>> K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    >>> path = os.path.join(tempfile.mkdtemp(), "front.yaml")
    >>> save_camera_info_yaml(path, CameraIntrinsics(640, 480, K, np.zeros(5)), "front")
    >>> float(load_camera_info_yaml(path).K[0, 0])
    500.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import yaml

from robot_rl.errors import ConfigError
from robot_rl.interfaces import CameraIntrinsics


def camera_info_path(url: str) -> Path:
    """Local path of a ``camera_info_url``: ``file:///abs/path.yaml`` or a plain path.

    Raises:
        ConfigError: another URL scheme (``package://`` needs ament's index, which is not used
            here: give the file path instead).
    """
    if "://" not in url:
        return Path(url).expanduser()
    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise ConfigError(f"camera_info_url {url!r}: only file:///path/to/camera.yaml or a plain file path is supported; "
                          "resolve package:// URLs to a file path first.")
    return Path(parsed.netloc + parsed.path)


def _matrix(data: dict[str, Any], key: str, rows: int | None, cols: int | None, path: Path) -> np.ndarray:
    entry = data.get(key)
    if not isinstance(entry, dict) or "data" not in entry:
        raise ConfigError(f"camera info file {path}: '{key}' must be a map with rows, cols and data "
                          "(the format camera_calibration writes).")
    values = np.asarray(entry["data"], dtype=np.float64).ravel()
    r, c = int(entry.get("rows", rows or 1)), int(entry.get("cols", cols or values.size))
    if (rows is not None and r != rows) or (cols is not None and c != cols) or values.size != r * c:
        want = f"{rows} x {cols}" if rows is not None and cols is not None else f"{r} x {c}"
        raise ConfigError(f"camera info file {path}: '{key}' has rows={r}, cols={c} and {values.size} values; expected {want}.")
    return values.reshape(r, c)


def load_camera_info_yaml(path: str | Path) -> CameraIntrinsics:
    """Read intrinsics from a ROS camera_info YAML file (or ``file://`` URL).

    Args:
        path: the YAML file, as a path or ``file:///...`` URL.

    Returns:
        :class:`CameraIntrinsics` with ``width``/``height`` in pixels, ``K`` (3, 3) float64 in
        pixels and ``D`` (N,) float64 distortion coefficients (``plumb_bob``: k1, k2, t1, t2, k3).

    Raises:
        ConfigError: the file is missing, not YAML, or lacks / mis-sizes a field (the message
            names the field).
    """
    p = camera_info_path(str(path))
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"camera info file {p} does not exist; calibrate the camera "
                          "(camera_calibration cameracalibrator) or point camera_info_url at its YAML file.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"camera info file {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"camera info file {p} must be a YAML map with image_width, image_height, camera_matrix, ...")
    missing = [k for k in ("image_width", "image_height", "camera_matrix") if k not in data]
    if missing:
        raise ConfigError(f"camera info file {p} lacks {missing} (the format camera_calibration writes).")
    K = _matrix(data, "camera_matrix", 3, 3, p)
    D = _matrix(data, "distortion_coefficients", 1, None, p).ravel() if "distortion_coefficients" in data else np.zeros(5)
    if "rectification_matrix" in data:
        _matrix(data, "rectification_matrix", 3, 3, p)
    if "projection_matrix" in data:
        _matrix(data, "projection_matrix", 3, 4, p)
    width, height = int(data["image_width"]), int(data["image_height"])
    if width <= 0 or height <= 0:
        raise ConfigError(f"camera info file {p}: image size {width} x {height} px must be positive.")
    return CameraIntrinsics(width=width, height=height, K=K, D=D)


def save_camera_info_yaml(path: str | Path, intrinsics: CameraIntrinsics, camera_name: str,
                          distortion_model: str = "plumb_bob") -> None:
    """Write intrinsics as a ROS camera_info YAML file that :func:`load_camera_info_yaml` and
    ``camera_info_manager`` read.

    Args:
        path: output file (its folder is created).
        intrinsics: size in pixels, ``K`` (3, 3) pixels, ``D`` (N,) distortion coefficients.
        camera_name: the ``camera_name`` field (usually the camera node's ``camera_name``).
        distortion_model: ``plumb_bob`` (5 coefficients) or ``rational_polynomial`` (8).

    Raises:
        ConfigError: ``K`` is not 3 x 3.
    """
    K = np.asarray(intrinsics.K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ConfigError(f"camera matrix K must be 3 x 3, got shape {K.shape}.")
    D = np.asarray(intrinsics.D, dtype=np.float64).ravel()
    P = np.zeros((3, 4))
    P[:, :3] = K

    def mat(a: np.ndarray) -> dict[str, Any]:
        a2 = np.atleast_2d(a)
        return {"rows": int(a2.shape[0]), "cols": int(a2.shape[1]), "data": [float(x) for x in a2.ravel()]}

    doc = {
        "image_width": int(intrinsics.width), "image_height": int(intrinsics.height), "camera_name": camera_name,
        "camera_matrix": mat(K), "distortion_model": distortion_model, "distortion_coefficients": mat(D[None, :]),
        "rectification_matrix": mat(np.eye(3)), "projection_matrix": mat(P),
    }
    out = camera_info_path(str(path))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
