"""Hand-eye calibration: ``robot-rl calibrate hand-eye``.

Two set-ups, each from pairs (EE pose base <- gripper from the arm, board pose camera <- board
from :func:`~robot_rl.calibration.charuco.estimate_board_pose`):

- eye-in-hand (camera on the gripper, board fixed): solves gripper <- camera;
- eye-to-hand (camera fixed, board held by the gripper): solves base <- camera.

All five solvers of ``cv2.calibrateHandEye`` run (OpenCV calib3d docs, "calibrateHandEye"):
Tsai & Lenz 1989 ("A new technique for fully autonomous and efficient 3D robotics hand/eye
calibration", IEEE T-RA 5(3)), Park & Martin 1994, Horaud & Dornaika 1995, Andreff et al. 1999,
Daniilidis 1999 (dual quaternions). Their agreement (largest pairwise difference) is reported and
the consensus is the medoid: the method closest to all others. Degenerate inputs (too few poses,
too little rotation, rotations about one axis only, methods that disagree) raise
:class:`~robot_rl.errors.CalibrationError` instead of returning a wrong transform.

The result is saved in the easy_handeye2 YAML shape::

    parameters: {name, calibration_type: eye_in_hand, eye_on_hand: true, robot_base_frame,
                 robot_effector_frame, tracking_base_frame, tracking_marker_frame, freehand_robot_movement}
    transform: {translation: {x, y, z}, rotation: {x, y, z, w}}

``transform`` is effector <- camera (eye-in-hand) or base <- camera (eye-to-hand); metres,
quaternion xyzw, as easy_handeye2 publishes it from the parent (effector / base) frame to the
child (``tracking_base_frame``, the camera optical frame).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from robot_rl.errors import CalibrationError

#: The five cv2.calibrateHandEye methods by name.
METHODS: dict[str, int] = {
    "tsai": cv2.CALIB_HAND_EYE_TSAI, "park": cv2.CALIB_HAND_EYE_PARK, "horaud": cv2.CALIB_HAND_EYE_HORAUD,
    "andreff": cv2.CALIB_HAND_EYE_ANDREFF, "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS,
}


def _inv(T: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def transform_difference(A: np.ndarray, B: np.ndarray) -> tuple[float, float]:
    """(translation difference in mm, rotation difference in degrees) of two (4, 4) transforms."""
    return (float(np.linalg.norm(A[:3, 3] - B[:3, 3]) * 1e3),
            float(np.degrees(Rotation.from_matrix(A[:3, :3].T @ B[:3, :3]).magnitude())))


def pose_matrix(position_m: np.ndarray, quaternion_xyzw: np.ndarray) -> np.ndarray:
    """(4, 4) float64 transform from a (3,) position in metres and a (4,) quaternion xyzw."""
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = Rotation.from_quat(quaternion_xyzw).as_matrix(), position_m
    return T


def check_pose_diversity(base_T_gripper: list[np.ndarray], min_poses: int = 5, min_rotation_deg: float = 10.0,
                         min_axis_spread: float = 0.15) -> None:
    """Refuse pose sets from which no hand-eye solver can recover the transform.

    A hand-eye solution needs at least two relative motions with non-parallel rotation axes
    (Tsai & Lenz 1989, sec. III): otherwise the translation along the common axis is
    unobservable, and small rotations amplify noise.

    Args:
        base_T_gripper: (4, 4) EE poses, metres.
        min_poses: fewest poses (3 is the mathematical minimum; 10-20 are typical).
        min_rotation_deg: the largest relative rotation between two poses must reach this.
        min_axis_spread: second singular value / first of the rotation axes of the relative
            motions (weighted by angle); 0 = all about one axis.

    Raises:
        CalibrationError: too few poses, too small rotations, or rotations all about one axis.
    """
    n = len(base_T_gripper)
    if n < max(3, min_poses):
        raise CalibrationError(f"hand-eye calibration needs at least {max(3, min_poses)} robot poses, got {n}; "
                               "record more poses with the board in view (10-20, tilted in different directions).")
    axes, angles = [], []
    for i, j in itertools.combinations(range(n), 2):
        rvec = Rotation.from_matrix(base_T_gripper[i][:3, :3].T @ base_T_gripper[j][:3, :3]).as_rotvec()
        angle = float(np.linalg.norm(rvec))
        angles.append(angle)
        if angle > np.radians(1.0):
            axes.append(rvec)
    max_deg = float(np.degrees(max(angles)))
    if max_deg < min_rotation_deg:
        raise CalibrationError(f"degenerate pose set: the gripper rotates at most {max_deg:.1f} deg between poses "
                               f"(need {min_rotation_deg:.0f}); tilt the tool 15-30 deg about different axes between poses.")
    s = np.linalg.svd(np.array(axes), compute_uv=False)
    spread = float(s[1] / s[0]) if len(s) > 1 else 0.0
    if spread < min_axis_spread:
        raise CalibrationError(f"degenerate pose set: the relative rotations are all about one axis (spread {spread:.3f} "
                               f"< {min_axis_spread}), e.g. yaw only; the translation along that axis cannot be "
                               "recovered. Tilt the tool about at least two different axes (roll and pitch, not only yaw).")


@dataclass
class HandEyeResult:
    """A hand-eye calibration.

    Attributes:
        transform: (4, 4) float64 consensus: gripper <- camera (eye-in-hand) or base <- camera
            (eye-to-hand); metres.
        method: name of the consensus method (a key of :data:`METHODS`).
        eye_in_hand: the set-up.
        per_method: (4, 4) result of every method.
        agreement_mm: largest pairwise translation difference between methods, mm.
        agreement_deg: largest pairwise rotation difference between methods, degrees.
        residual_mm / residual_deg: RMS spread of the board pose in the fixed frame (base for
            eye-in-hand, gripper for eye-to-hand) over all poses with the consensus transform;
            a calibration consistent with every pose has a small spread.
        n_poses: number of pose pairs used.
    """

    transform: np.ndarray
    method: str
    eye_in_hand: bool
    per_method: dict[str, np.ndarray] = field(default_factory=dict)
    agreement_mm: float = 0.0
    agreement_deg: float = 0.0
    residual_mm: float = 0.0
    residual_deg: float = 0.0
    n_poses: int = 0

    def summary(self) -> str:
        """Multi-line text: each method's translation (mm) and rotation, agreement and residuals."""
        lines = [f"{'eye-in-hand: gripper <- camera' if self.eye_in_hand else 'eye-to-hand: base <- camera'}, "
                 f"{self.n_poses} poses"]
        for name, T in self.per_method.items():
            dt, dr = transform_difference(T, self.transform)
            rv = np.degrees(Rotation.from_matrix(T[:3, :3]).as_rotvec())
            lines.append(f"  {name:<10} t = {np.array2string(T[:3, 3] * 1e3, precision=2)} mm  "
                         f"rotvec = {np.array2string(rv, precision=3)} deg  (to consensus {dt:.2f} mm, {dr:.3f} deg)")
        lines.append(f"methods agree within {self.agreement_mm:.2f} mm, {self.agreement_deg:.3f} deg; consensus: "
                     f"{self.method}; board-pose residual {self.residual_mm:.2f} mm, {self.residual_deg:.3f} deg RMS")
        return "\n".join(lines)


def calibrate_hand_eye(base_T_gripper: list[np.ndarray], camera_T_board: list[np.ndarray], eye_in_hand: bool = True,
                       *, min_poses: int = 5, min_rotation_deg: float = 10.0, min_axis_spread: float = 0.15,
                       max_disagreement_mm: float = 10.0, max_disagreement_deg: float = 2.0) -> HandEyeResult:
    """Solve AX = XB with all five OpenCV methods and return their consensus.

    Args:
        base_T_gripper: N (4, 4) EE poses base <- gripper (the arm's ``ee_position`` /
            ``ee_quaternion``), metres.
        camera_T_board: N (4, 4) board poses camera <- board, metres, same order.
        eye_in_hand: True: camera on the gripper (solve gripper <- camera); False: camera
            fixed and the board on the gripper (solve base <- camera).
        min_poses, min_rotation_deg, min_axis_spread: see :func:`check_pose_diversity`.
        max_disagreement_mm, max_disagreement_deg: refuse the result when the methods'
            largest pairwise difference exceeds these (they disagree on noisy or degenerate data).

    Returns:
        :class:`HandEyeResult`.

    Raises:
        CalibrationError: unequal list lengths, a degenerate pose set, or methods that disagree.
    """
    if len(base_T_gripper) != len(camera_T_board):
        raise CalibrationError(f"{len(base_T_gripper)} robot poses but {len(camera_T_board)} board poses; "
                               "record them in pairs (one board pose per robot pose).")
    G = [np.asarray(T, dtype=np.float64) for T in base_T_gripper]
    C = [np.asarray(T, dtype=np.float64) for T in camera_T_board]
    check_pose_diversity(G, min_poses, min_rotation_deg, min_axis_spread)
    # OpenCV solves gripper <- camera from gripper->base motions; for eye-to-hand the same solver
    # with base <- gripper replaced by its inverse returns base <- camera (OpenCV docs).
    motions = G if eye_in_hand else [_inv(T) for T in G]
    R_g = [T[:3, :3] for T in motions]
    t_g = [T[:3, 3].reshape(3, 1) for T in motions]
    R_c = [T[:3, :3] for T in C]
    t_c = [T[:3, 3].reshape(3, 1) for T in C]
    per_method: dict[str, np.ndarray] = {}
    for name, flag in METHODS.items():
        R, t = cv2.calibrateHandEye(R_g, t_g, R_c, t_c, method=flag)
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, np.asarray(t).ravel()
        if np.all(np.isfinite(T)):
            per_method[name] = T
    if len(per_method) < 3:
        raise CalibrationError("fewer than three hand-eye methods gave a finite result; the pose set is degenerate: "
                               "record poses tilted about different axes with the board fully in view.")
    names = list(per_method)
    diffs = {(a, b): transform_difference(per_method[a], per_method[b]) for a, b in itertools.combinations(names, 2)}
    agreement_mm = max(d[0] for d in diffs.values())
    agreement_deg = max(d[1] for d in diffs.values())

    def cost(a: str) -> float:  # 1 mm ~ 0.1 deg
        return sum(d[0] + 10.0 * d[1] for (p, q), d in diffs.items() if a in (p, q))

    method = min(names, key=cost)
    X = per_method[method]
    if agreement_mm > max_disagreement_mm or agreement_deg > max_disagreement_deg:
        raise CalibrationError(
            f"the hand-eye methods disagree by {agreement_mm:.1f} mm / {agreement_deg:.2f} deg (limits "
            f"{max_disagreement_mm} mm / {max_disagreement_deg} deg): the data are too noisy or degenerate. Record more "
            "poses with larger tilts about different axes, keep the board sharp and fully in view, and check that the "
            "robot poses and images are paired in time (the arm must be still when the image is taken).")
    # Board in the fixed frame, per pose: base <- board (eye-in-hand) or gripper <- board (eye-to-hand).
    fixed = [g @ X @ c for g, c in zip(G, C)] if eye_in_hand else [_inv(g) @ X @ c for g, c in zip(G, C)]
    ref = fixed[0].copy()
    ref[:3, 3] = np.mean([f[:3, 3] for f in fixed], axis=0)
    res = np.array([transform_difference(f, ref) for f in fixed])
    return HandEyeResult(transform=X, method=method, eye_in_hand=eye_in_hand, per_method=per_method,
                         agreement_mm=agreement_mm, agreement_deg=agreement_deg,
                         residual_mm=float(np.sqrt(np.mean(res[:, 0] ** 2))),
                         residual_deg=float(np.sqrt(np.mean(res[:, 1] ** 2))), n_poses=len(G))


def save_hand_eye_yaml(path: str | Path, result: HandEyeResult, *, name: str = "robot_rl_handeye",
                       robot_base_frame: str = "panda_link0", robot_effector_frame: str = "panda_hand_tcp",
                       tracking_base_frame: str = "camera_color_optical_frame",
                       tracking_marker_frame: str = "charuco_board") -> None:
    """Write ``result`` in the easy_handeye2 YAML shape (``parameters`` + ``transform``), plus a
    ``robot_rl`` block with each method's result and the agreement (ignored by easy_handeye2)."""
    T = result.transform
    q = Rotation.from_matrix(T[:3, :3]).as_quat(canonical=True)
    doc: dict[str, Any] = {
        "parameters": {
            "name": name, "calibration_type": "eye_in_hand" if result.eye_in_hand else "eye_on_base",
            "eye_on_hand": bool(result.eye_in_hand), "robot_base_frame": robot_base_frame,
            "robot_effector_frame": robot_effector_frame, "tracking_base_frame": tracking_base_frame,
            "tracking_marker_frame": tracking_marker_frame, "freehand_robot_movement": False,
        },
        "transform": {"translation": {k: float(v) for k, v in zip("xyz", T[:3, 3])},
                      "rotation": {k: float(v) for k, v in zip("xyzw", q)}},
        "robot_rl": {"method": result.method, "n_poses": result.n_poses, "agreement_mm": result.agreement_mm,
                     "agreement_deg": result.agreement_deg, "residual_mm": result.residual_mm,
                     "residual_deg": result.residual_deg,
                     "per_method": {m: {"translation": [float(v) for v in X[:3, 3]],
                                        "rotation_xyzw": [float(v) for v in Rotation.from_matrix(X[:3, :3]).as_quat(canonical=True)]}
                                    for m, X in result.per_method.items()}},
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(doc, sort_keys=False))


def load_hand_eye_yaml(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an easy_handeye2-shaped YAML file.

    Returns:
        ``(transform, parameters)``: (4, 4) float64 parent <- camera (effector <- camera when
        ``parameters["eye_on_hand"]``, else base <- camera), metres; the ``parameters`` map.

    Raises:
        CalibrationError: the file is missing or lacks ``transform.translation`` / ``rotation``.
    """
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
        tr, rot = doc["transform"]["translation"], doc["transform"]["rotation"]
        T = pose_matrix(np.array([tr["x"], tr["y"], tr["z"]], float), np.array([rot["x"], rot["y"], rot["z"], rot["w"]], float))
    except FileNotFoundError:
        raise CalibrationError(f"hand-eye file {p} does not exist; run `robot-rl calibrate hand-eye` first.") from None
    except (KeyError, TypeError, yaml.YAMLError) as e:
        raise CalibrationError(f"hand-eye file {p} is not in the easy_handeye2 shape (transform: {{translation: "
                               f"{{x, y, z}}, rotation: {{x, y, z, w}}}}): {e!r}") from None
    params = dict(doc.get("parameters") or {})
    if "eye_on_hand" not in params and "calibration_type" in params:
        params["eye_on_hand"] = params["calibration_type"] == "eye_in_hand"
    return T, params


def sample_look_at_poses(n: int, box_lo_m: np.ndarray, box_hi_m: np.ndarray, look_at_m: np.ndarray,
                         max_tilt_deg: float = 15.0, max_roll_deg: float = 45.0, seed: int = 0) -> list[np.ndarray]:
    """A scripted pose set: N poses of a sensor frame whose z axis points (roughly) at a point.

    Positions are uniform in the box; z points at ``look_at_m``, then tilts by up to
    ``max_tilt_deg`` about a random axis perpendicular to it and rolls by up to ``max_roll_deg``
    about it. Varying viewing direction and roll gives rotations about all three axes, which
    hand-eye calibration needs. Use for the camera (eye-in-hand, look at the board) or for the
    board on the gripper (eye-to-hand, look at the camera), then map to TCP poses with the
    nominal mount: ``tcp = pose @ inv(tcp_T_sensor)``.

    Args:
        n: number of poses.
        box_lo_m, box_hi_m: (3,) corners of the position box, metres, base frame.
        look_at_m: (3,) point the z axes aim at, metres, base frame.
        max_tilt_deg, max_roll_deg: angular spread, degrees.
        seed: random seed (the set is reproducible).

    Returns:
        N (4, 4) float64 base <- sensor transforms.
    """
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(n):
        p = rng.uniform(box_lo_m, box_hi_m)
        z = np.asarray(look_at_m, float) - p
        z /= np.linalg.norm(z)
        ref = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        x = np.cross(ref, z)
        x /= np.linalg.norm(x)
        R = np.stack([x, np.cross(z, x), z], axis=1)
        axis = R @ np.array([*rng.normal(size=2), 0.0])
        tilt = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(0, max_tilt_deg))).as_matrix()
        roll = Rotation.from_rotvec([0.0, 0.0, np.radians(rng.uniform(-max_roll_deg, max_roll_deg))]).as_matrix()
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = tilt @ R @ roll, p
        poses.append(T)
    return poses
