"""ChArUco boards: definition, printable image, corner detection and board pose.

A ChArUco board is a chessboard whose white squares hold ArUco markers: each detected marker
names the chessboard corners next to it, so a partly visible or occluded board still gives
corners with known ids, refined to sub-pixel accuracy on the chessboard saddle points.

Board frame (OpenCV's): origin at the board's top-left outer corner as drawn by
:meth:`ChArucoBoard.image`, x to the right along the ``squares_x`` squares, y down along the
``squares_y`` squares, z into the board (away from a camera that sees the printed side); metres.

Source: OpenCV ``aruco`` module (``cv::aruco::CharucoBoard``, ``CharucoDetector``), tutorial
"Detection of ChArUco Board Corners", https://docs.opencv.org/4.x/df/d4a/tutorial_charuco_detection.html;
Garrido-Jurado et al. 2014, "Automatic generation and detection of highly reliable fiducial
markers under occlusion".

Example:
    >>> board = ChArucoBoard(squares_x=5, squares_y=4, square_length_m=0.04, marker_length_m=0.03)
    >>> img = board.image(pixels_per_square=40)
    >>> img.shape
    (160, 200)
    >>> det = detect_charuco(np.dstack([img] * 3), board)
    >>> len(det.ids)  # every inner corner: (5 - 1) * (4 - 1)
    12
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from robot_rl.errors import CalibrationError


@dataclass(frozen=True)
class ChArucoBoard:
    """A ChArUco board as printed: square counts, sizes in metres and the ArUco dictionary."""

    squares_x: int = 7
    """number of chessboard squares along the board's x axis (image width when printed)."""
    squares_y: int = 5
    """number of chessboard squares along the board's y axis."""
    square_length_m: float = 0.04
    """edge length of one chessboard square, metres (measure the print: scale errors scale translations)."""
    marker_length_m: float = 0.03
    """edge length of one ArUco marker inside a white square, metres (< square_length_m)."""
    dictionary: str = "DICT_4X4_50"
    """OpenCV predefined ArUco dictionary name (``cv2.aruco.DICT_*``); it needs
    ``squares_x * squares_y / 2`` markers. 4x4 bits detect best at low resolution."""

    def __post_init__(self) -> None:
        if self.squares_x < 2 or self.squares_y < 2:
            raise CalibrationError(f"a ChArUco board needs at least 2 x 2 squares, got {self.squares_x} x {self.squares_y}.")
        if not 0 < self.marker_length_m < self.square_length_m:
            raise CalibrationError(f"marker_length_m={self.marker_length_m} must be positive and smaller than "
                                   f"square_length_m={self.square_length_m}.")
        if not hasattr(cv2.aruco, self.dictionary):
            raise CalibrationError(f"unknown ArUco dictionary {self.dictionary!r}; use a cv2.aruco.DICT_* name "
                                   "such as DICT_4X4_50, DICT_5X5_100 or DICT_6X6_250.")

    @property
    def size_m(self) -> tuple[float, float]:
        """(width, height) of the chessboard area in metres."""
        return self.squares_x * self.square_length_m, self.squares_y * self.square_length_m

    @property
    def n_corners(self) -> int:
        """Number of inner chessboard corners (the ChArUco corners), ``(squares_x - 1) * (squares_y - 1)``."""
        return (self.squares_x - 1) * (self.squares_y - 1)

    def cv_board(self) -> cv2.aruco.CharucoBoard:
        """The ``cv2.aruco.CharucoBoard`` of this definition."""
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_length_m,
                                      self.marker_length_m, dictionary)

    def corner_points_m(self) -> np.ndarray:
        """(n_corners, 3) float64 positions of the ChArUco corners in the board frame, metres
        (row ``i`` is corner id ``i``; z = 0)."""
        return np.asarray(self.cv_board().getChessboardCorners(), dtype=np.float64).reshape(-1, 3)

    def image(self, pixels_per_square: int = 100, margin_px: int = 0) -> np.ndarray:
        """The board drawn for printing or as a simulator texture.

        Args:
            pixels_per_square: resolution; print at ``square_length_m`` per that many pixels.
            margin_px: white border around the chessboard area, pixels.

        Returns:
            (squares_y * pixels_per_square + 2 margin_px, squares_x * pixels_per_square + 2 margin_px)
            uint8 grayscale image; its top-left chessboard corner is the board-frame origin.
        """
        w = self.squares_x * pixels_per_square + 2 * margin_px
        h = self.squares_y * pixels_per_square + 2 * margin_px
        return self.cv_board().generateImage((w, h), marginSize=margin_px, borderBits=1)


@dataclass
class CharucoDetection:
    """ChArUco corners found in one image.

    Attributes:
        ids: (N,) int32 corner ids (row index into :meth:`ChArucoBoard.corner_points_m`).
        corners_px: (N, 2) float32 sub-pixel corner positions, pixels (OpenCV convention: the
            centre of the top-left pixel is (0, 0)).
        object_points_m: (N, 3) float64 the same corners in the board frame, metres.
        n_markers: number of ArUco markers detected.
    """

    ids: np.ndarray
    corners_px: np.ndarray
    object_points_m: np.ndarray
    n_markers: int


def _gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise CalibrationError(f"expected a uint8 image, got {image.dtype}; convert (e.g. np.clip(x, 0, 255).astype(np.uint8)).")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise CalibrationError(f"expected an (H, W, 3) RGB or (H, W) gray image, got shape {image.shape}.")


def detect_charuco(image: np.ndarray, board: ChArucoBoard, min_corners: int = 1) -> CharucoDetection:
    """Detect the board's ChArUco corners in one image.

    Args:
        image: (H, W, 3) uint8 RGB or (H, W) uint8 grayscale.
        board: the board definition (dictionary and sizes must match the print).
        min_corners: raise when fewer corners are found.

    Returns:
        :class:`CharucoDetection` (corners refined to sub-pixel by OpenCV's ``CharucoDetector``).

    Raises:
        CalibrationError: no marker of the board is in view, or fewer than ``min_corners``
            corners were found (the message says which and what to change).
    """
    gray = _gray(image)
    detector = cv2.aruco.CharucoDetector(board.cv_board())
    corners, ids, _marker_corners, marker_ids = detector.detectBoard(gray)
    n_markers = 0 if marker_ids is None else len(marker_ids)
    if n_markers == 0:
        raise CalibrationError(f"board not in view: no ArUco marker of {board.dictionary} found in the "
                               f"{gray.shape[1]}x{gray.shape[0]} image; check the board is visible, lit, in focus "
                               "and that the dictionary matches the print.")
    n = 0 if ids is None else len(ids)
    if n < min_corners:
        raise CalibrationError(f"too few ChArUco corners: {n} found ({n_markers} markers), need {min_corners}; "
                               "move the camera so more of the board is in view, or closer.")
    ids = np.asarray(ids, dtype=np.int32).ravel() if n else np.zeros(0, np.int32)
    corners_px = np.asarray(corners, dtype=np.float32).reshape(-1, 2) if n else np.zeros((0, 2), np.float32)
    return CharucoDetection(ids=ids, corners_px=corners_px, object_points_m=board.corner_points_m()[ids],
                            n_markers=n_markers)


def points_are_planar_spread(object_points_m: np.ndarray, min_ratio: float = 0.05) -> bool:
    """Whether (N, 3) board points span a 2-D area (not all on one line): the smaller singular
    value of the centred x, y coordinates is at least ``min_ratio`` times the larger."""
    xy = np.asarray(object_points_m, dtype=np.float64)[:, :2]
    if len(xy) < 3:
        return False
    s = np.linalg.svd(xy - xy.mean(axis=0), compute_uv=False)
    return bool(s[0] > 0 and s[1] >= min_ratio * s[0])


def estimate_board_pose(detection: CharucoDetection, K: np.ndarray, D: np.ndarray | None = None,
                        min_corners: int = 6) -> np.ndarray:
    """Pose of the board in the camera optical frame from its detected corners.

    Solves the planar PnP problem with IPPE (Collins & Bartoli 2014, "Infinitesimal Plane-based
    Pose Estimation") and refines it with Levenberg-Marquardt on the reprojection error
    (``cv2.solvePnP`` + ``cv2.solvePnPRefineLM``, OpenCV calib3d docs).

    Args:
        detection: corners from :func:`detect_charuco`.
        K: (3, 3) camera matrix, pixels.
        D: (N,) distortion coefficients (OpenCV order k1, k2, p1, p2[, k3, ...]); None = none.
        min_corners: fewest corners accepted (at least 4; more gives a stabler pose).

    Returns:
        (4, 4) float64 transform camera <- board: ``p_cam = T @ p_board``, translation in metres.

    Raises:
        CalibrationError: too few corners, corners all on one line, or PnP failed.
    """
    n = len(detection.ids)
    if n < max(4, min_corners):
        raise CalibrationError(f"too few ChArUco corners for a board pose: {n}, need {max(4, min_corners)}; "
                               "bring more of the board into view.")
    if not points_are_planar_spread(detection.object_points_m):
        raise CalibrationError(f"the {n} detected corners lie on one line of the board, which does not fix its pose; "
                               "bring more rows of the board into view.")
    K = np.asarray(K, dtype=np.float64)
    D = np.zeros(5) if D is None else np.asarray(D, dtype=np.float64).ravel()
    obj = detection.object_points_m.astype(np.float64)
    img = detection.corners_px.astype(np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, D, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CalibrationError("solvePnP found no board pose; check K and D belong to this camera and image size.")
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, D, rvec, tvec)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rvec.ravel()).as_matrix()
    T[:3, 3] = tvec.ravel()
    return T
