"""Camera intrinsics from ChArUco views: ``robot-rl calibrate intrinsics``.

Each view is checked before it is used, and every rejected view keeps its reason:

1. ``no board``: no marker of the board found;
2. ``blurred``: variance of the Laplacian inside the detected board area below a threshold
   (Pech-Pacheco et al. 2000, "Diatom autofocusing in brightfield microscopy: a comparative study");
3. ``too few corners`` / ``corners on one line``: the view does not constrain a homography;
4. ``outlier``: after a first fit, reprojection error above ``k x`` the median view's error
   (and above an absolute floor), then the camera is fitted again without it.

The fit is Zhang's method as implemented by ``cv2.calibrateCameraExtended`` (Zhang 2000, "A
flexible new technique for camera calibration", IEEE TPAMI 22(11); OpenCV calib3d docs), with
the plumb_bob model (k1, k2, p1, p2, k3) that ROS ``camera_calibration`` writes; k3 is held at 0
by default, as ``cameracalibrator`` does, because few views rarely constrain it.

Example (the result is what the camera node's ``camera_info_url`` loads)::

    robot-rl calibrate intrinsics --images shots/ --out calibration/front.yaml --camera-name front
    robot-rl calibrate intrinsics --bag run.mcap --topic /camera/front/color/image_raw --out front.yaml
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from robot_rl.errors import CalibrationError
from robot_rl.interfaces import CameraIntrinsics

from .camera_info import save_camera_info_yaml
from .charuco import ChArucoBoard, CharucoDetection, _gray, detect_charuco, points_are_planar_spread


@dataclass
class ViewReport:
    """What happened to one view.

    Attributes:
        name: file name, bag timestamp or index of the view.
        used: whether the view is in the final fit.
        reason: why it was rejected ("" when used).
        n_corners: ChArUco corners detected.
        sharpness: variance of the Laplacian over the board area (grey levels²); NaN if no board.
        error_px: RMS reprojection error of this view in the final fit (or the first fit, for an
            outlier), pixels; NaN when never fitted.
    """

    name: str
    used: bool = False
    reason: str = ""
    n_corners: int = 0
    sharpness: float = float("nan")
    error_px: float = float("nan")


@dataclass
class IntrinsicsResult:
    """A camera calibration.

    Attributes:
        intrinsics: size (px), ``K`` (3, 3) float64 px, ``D`` (5,) float64 plumb_bob coefficients.
        rms_px: overall RMS reprojection error of the used views, pixels.
        views: one :class:`ViewReport` per input view, in input order.
    """

    intrinsics: CameraIntrinsics
    rms_px: float
    views: list[ViewReport] = field(default_factory=list)

    @property
    def n_used(self) -> int:
        """Number of views in the final fit."""
        return sum(v.used for v in self.views)

    def summary(self) -> str:
        """Multi-line text: K, D, RMS and every view's fate."""
        K = self.intrinsics.K
        lines = [f"fx={K[0, 0]:.2f} fy={K[1, 1]:.2f} cx={K[0, 2]:.2f} cy={K[1, 2]:.2f} px  "
                 f"D={np.array2string(np.asarray(self.intrinsics.D), precision=4)}",
                 f"RMS reprojection error {self.rms_px:.3f} px over {self.n_used}/{len(self.views)} views"]
        for v in self.views:
            state = f"used, {v.error_px:.3f} px" if v.used else f"rejected: {v.reason}"
            lines.append(f"  {v.name}: {v.n_corners} corners, sharpness {v.sharpness:.0f} -- {state}")
        return "\n".join(lines)


def board_sharpness(gray: np.ndarray, corners_px: np.ndarray) -> float:
    """Variance of the Laplacian of ``gray`` (H, W) uint8 inside the bounding box of (N, 2)
    ``corners_px``, in grey levels²; a blurred board scores low."""
    x0, y0 = np.floor(corners_px.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners_px.max(axis=0)).astype(int) + 1
    roi = gray[max(y0, 0):max(y1, 1), max(x0, 0):max(x1, 1)]
    if roi.size < 9:
        roi = gray
    return float(cv2.Laplacian(roi, cv2.CV_64F).var())


def calibrate_intrinsics(views: Iterable[tuple[str, np.ndarray]], board: ChArucoBoard, *,
                         min_corners: int = 12, min_sharpness: float = 200.0, outlier_factor: float = 3.0,
                         outlier_floor_px: float = 0.5, min_views: int = 8, fix_k3: bool = True,
                         progress: bool = False) -> IntrinsicsResult:
    """Calibrate a camera from images of a ChArUco board.

    Args:
        views: ``(name, image)`` pairs; image (H, W, 3) uint8 RGB or (H, W) uint8 gray, all one size.
        board: the printed board.
        min_corners: reject views with fewer ChArUco corners.
        min_sharpness: reject views whose board area has a Laplacian variance below this
            (grey levels²); sharp sim/real boards score in the thousands, a 5 px blur ~ tens.
        outlier_factor: reject views whose error exceeds this times the median view error ...
        outlier_floor_px: ... and exceeds this many pixels (so tiny noise spreads reject nothing).
        min_views: fewest usable views; 10-20 varied views (tilted, in the image corners) are typical.
        fix_k3: hold k3 = 0 (ROS cameracalibrator's default).
        progress: show a tqdm progress bar over the views.

    Returns:
        :class:`IntrinsicsResult` with the camera, overall RMS and a report per view.

    Raises:
        CalibrationError: images of different sizes, or fewer than ``min_views`` usable views
            (the message lists each rejection reason and what to do).
    """
    reports: list[ViewReport] = []
    detections: list[tuple[int, CharucoDetection]] = []
    size: tuple[int, int] | None = None
    items: Iterable[tuple[str, np.ndarray]] = views
    if progress:
        from tqdm import tqdm

        items = tqdm(views, desc="detecting ChArUco corners", unit="view")
    for name, image in items:
        gray = _gray(image)
        if size is None:
            size = (gray.shape[1], gray.shape[0])
        elif size != (gray.shape[1], gray.shape[0]):
            raise CalibrationError(f"view {name} is {gray.shape[1]}x{gray.shape[0]} px but earlier views are "
                                   f"{size[0]}x{size[1]}; calibrate one camera at one resolution at a time.")
        rep = ViewReport(name=str(name))
        reports.append(rep)
        try:
            det = detect_charuco(gray, board)
        except CalibrationError:
            lap = float(cv2.Laplacian(gray, cv2.CV_64F).var())
            rep.sharpness = lap
            rep.reason = "no board (no marker found)" + (", image blurred" if lap < min_sharpness else "")
            continue
        rep.n_corners = len(det.ids)
        if rep.n_corners >= 2:
            rep.sharpness = board_sharpness(gray, det.corners_px)
        if rep.n_corners >= 2 and rep.sharpness < min_sharpness:
            rep.reason = f"blurred (sharpness {rep.sharpness:.0f} < {min_sharpness:.0f})"
        elif rep.n_corners < min_corners:
            rep.reason = f"too few corners ({rep.n_corners} < {min_corners})"
        elif not points_are_planar_spread(det.object_points_m):
            rep.reason = "corners on one line"
        else:
            detections.append((len(reports) - 1, det))

    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0

    def fit(dets: list[tuple[int, CharucoDetection]]):
        obj = [d.object_points_m.astype(np.float32).reshape(-1, 1, 3) for _, d in dets]
        img = [d.corners_px.astype(np.float32).reshape(-1, 1, 2) for _, d in dets]
        rms, K, D, _r, _t, _si, _se, per_view = cv2.calibrateCameraExtended(obj, img, size, None, None, flags=flags)
        return float(rms), K, D.ravel(), per_view.ravel()

    def check_enough(dets):
        if len(dets) < min_views:
            reasons = "; ".join(f"{r.name}: {r.reason}" for r in reports if r.reason) or "none rejected"
            raise CalibrationError(
                f"only {len(dets)} usable views of {len(reports)}, need {min_views}. Rejected: {reasons}. "
                "Take more sharp views with most of the board visible, tilted up to ~45 deg and covering the "
                "image corners, or lower min_views / min_corners / min_sharpness if you know why.")

    check_enough(detections)
    rms, K, D, per_view = fit(detections)
    limit = max(outlier_factor * float(np.median(per_view)), outlier_floor_px)
    kept = []
    for (i, det), err in zip(detections, per_view):
        reports[i].error_px = float(err)
        if err > limit:
            reports[i].reason = f"outlier (error {err:.2f} px > {limit:.2f} px)"
        else:
            kept.append((i, det))
    if len(kept) < len(detections):
        check_enough(kept)
        rms, K, D, per_view = fit(kept)
    for (i, _), err in zip(kept, per_view):
        reports[i].used, reports[i].error_px = True, float(err)
    assert size is not None
    return IntrinsicsResult(CameraIntrinsics(width=size[0], height=size[1], K=K, D=D), rms, reports)


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def iter_image_dir(directory: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """``(file name, (H, W, 3) uint8 RGB)`` for each image file in ``directory``, sorted by name.

    Raises:
        CalibrationError: the folder does not exist or holds no images.
    """
    d = Path(directory)
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES) if d.is_dir() else []
    if not files:
        raise CalibrationError(f"no images ({', '.join(_IMAGE_SUFFIXES)}) in {d}; point --images at the folder of board views.")
    for p in files:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CalibrationError(f"cannot read image {p}; remove it or convert it to PNG.")
        yield p.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iter_bag_images(bag: str | Path, topic: str, every: int = 1) -> Iterator[tuple[str, np.ndarray]]:
    """``(stamp in ns as text, (H, W, 3) uint8 RGB)`` of ``sensor_msgs/Image`` or
    ``CompressedImage`` messages on ``topic`` of a rosbag2 (MCAP or sqlite3), every ``every``-th.

    Raises:
        CalibrationError: the topic is not in the bag, or an image encoding is not rgb8 / bgr8 / mono8.
    """
    from rosbags.highlevel import AnyReader

    with AnyReader([Path(bag)]) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        if not conns:
            topics = sorted({c.topic for c in reader.connections})
            raise CalibrationError(f"topic {topic!r} is not in {bag}; it has {topics}.")
        for k, (conn, stamp, raw) in enumerate(reader.messages(connections=conns)):
            if k % every:
                continue
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.msgtype.endswith("CompressedImage"):
                bgr = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
                yield str(stamp), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                continue
            data = np.frombuffer(msg.data, np.uint8)
            if msg.encoding in ("rgb8", "bgr8"):
                img = data.reshape(msg.height, msg.step)[:, :msg.width * 3].reshape(msg.height, msg.width, 3)
                yield str(stamp), img[:, :, ::-1].copy() if msg.encoding == "bgr8" else img.copy()
            elif msg.encoding in ("mono8", "8UC1"):
                img = data.reshape(msg.height, msg.step)[:, :msg.width]
                yield str(stamp), np.repeat(img[:, :, None], 3, axis=2)
            else:
                raise CalibrationError(f"image encoding {msg.encoding!r} on {topic} is not supported; record rgb8, "
                                       "bgr8, mono8 or compressed images.")


def save_intrinsics(result: IntrinsicsResult, path: str | Path, camera_name: str) -> None:
    """Write ``result`` as ROS camera_info YAML (what the camera node's ``camera_info_url`` loads)."""
    save_camera_info_yaml(path, result.intrinsics, camera_name)
