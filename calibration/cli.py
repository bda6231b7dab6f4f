"""``robot-rl calibrate intrinsics | hand-eye``: configs and runners."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from robot_rl.errors import CalibrationError

from .charuco import ChArucoBoard


@dataclass
class IntrinsicsCliConfig:
    """Calibrate a camera's intrinsics from ChArUco views; writes ROS camera_info YAML."""

    out: Path
    """output camera_info YAML (point the camera node's camera_info_url at it)."""
    images: Path | None = None
    """folder of board images (png/jpg), one view each."""
    bag: Path | None = None
    """rosbag2 (MCAP or sqlite3) with the camera's image topic, instead of --images."""
    topic: str = "/camera/front/color/image_raw"
    """image topic in --bag (sensor_msgs/Image or CompressedImage)."""
    every: int = 10
    """use every N-th bag message (neighbouring frames add little)."""
    camera_name: str = "front"
    """camera_name written to the YAML."""
    board: ChArucoBoard = ChArucoBoard()
    """the printed board."""
    min_corners: int = 12
    """reject views with fewer ChArUco corners."""
    min_sharpness: float = 200.0
    """reject views whose board area's Laplacian variance (grey levels²) is lower (blurred)."""
    outlier_factor: float = 3.0
    """reject views whose reprojection error exceeds this times the median view's."""
    min_views: int = 8
    """fewest usable views."""


@dataclass
class HandEyeCliConfig:
    """Hand-eye calibration from recorded pairs (--samples) or a simulated collection (--sim)."""

    out: Path
    """output YAML in the easy_handeye2 shape (parameters + transform)."""
    samples: Path | None = None
    """folder with poses.yaml ({samples: [{image: a.png, position: [x,y,z] m, quaternion_xyzw: [...]}]},
    EE pose base <- gripper from the arm) and the images it names."""
    camera_info: Path | None = None
    """camera_info YAML of the camera (from `robot-rl calibrate intrinsics`); required with --samples."""
    eye_in_hand: bool = True
    """camera on the gripper (True) or fixed with the board on the gripper (False)."""
    sim: bool = False
    """collect the pairs in the MuJoCo scene instead (wrist camera for eye-in-hand, front camera for
    eye-to-hand) and compare with the sim's ground truth."""
    n_poses: int = 30
    """number of scripted poses for --sim."""
    board: ChArucoBoard = ChArucoBoard()
    """the printed board."""
    robot_base_frame: str = "panda_link0"
    """parameters.robot_base_frame."""
    robot_effector_frame: str = "panda_hand_tcp"
    """parameters.robot_effector_frame."""
    tracking_base_frame: str = "front_color_optical_frame"
    """parameters.tracking_base_frame (the camera's optical frame)."""


def run_intrinsics(cfg: IntrinsicsCliConfig) -> str:
    """Calibrate, save, and return the summary text."""
    from .intrinsics import calibrate_intrinsics, iter_bag_images, iter_image_dir, save_intrinsics

    if (cfg.images is None) == (cfg.bag is None):
        raise CalibrationError("give exactly one of --images DIR or --bag BAG (with --topic).")
    views = list(iter_image_dir(cfg.images)) if cfg.images is not None else list(
        iter_bag_images(cfg.bag, cfg.topic, cfg.every))
    result = calibrate_intrinsics(views, cfg.board, min_corners=cfg.min_corners, min_sharpness=cfg.min_sharpness,
                                  outlier_factor=cfg.outlier_factor, min_views=cfg.min_views, progress=True)
    save_intrinsics(result, cfg.out, cfg.camera_name)
    return result.summary() + f"\nwrote {cfg.out}"


def _sim_pairs(cfg: HandEyeCliConfig):
    from .hand_eye import sample_look_at_poses
    from .sim_board import TABLE_BOARD_CENTRE_M, BoardScene, render_views

    scene = BoardScene(cfg.board, "table" if cfg.eye_in_hand else "hand")
    if cfg.eye_in_hand:
        truth = np.linalg.inv(scene.tcp_pose()) @ scene.camera_pose("wrist")
        c = np.array(TABLE_BOARD_CENTRE_M)
        poses = sample_look_at_poses(cfg.n_poses, c + [-0.12, -0.15, 0.28], c + [0.08, 0.15, 0.42], c, 10, 40)
        images, tcps = render_views(scene, "wrist", poses, truth)
        K = scene.camera("wrist").intrinsics.K
    else:
        truth = scene.camera_pose("front")
        mount = np.linalg.inv(scene.tcp_pose()) @ scene.board_pose()
        poses = sample_look_at_poses(cfg.n_poses, np.array([0.35, -0.25, 0.1]), np.array([0.75, 0.25, 0.4]),
                                     truth[:3, 3], 35, 30)
        images, tcps = render_views(scene, "front", poses, mount)
        K = scene.camera("front").intrinsics.K
    scene.close()
    return images, tcps, K, np.zeros(5), truth


def _recorded_pairs(cfg: HandEyeCliConfig):
    import cv2

    from .camera_info import load_camera_info_yaml
    from .hand_eye import pose_matrix

    if cfg.samples is None or cfg.camera_info is None:
        raise CalibrationError("give --samples DIR (with poses.yaml) and --camera-info YAML, or --sim.")
    doc = yaml.safe_load((cfg.samples / "poses.yaml").read_text())
    intr = load_camera_info_yaml(cfg.camera_info)
    images, tcps = [], []
    for s in doc["samples"]:
        bgr = cv2.imread(str(cfg.samples / s["image"]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CalibrationError(f"cannot read {cfg.samples / s['image']} named in poses.yaml.")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        tcps.append(pose_matrix(np.array(s["position"], float), np.array(s["quaternion_xyzw"], float)))
    return images, tcps, intr.K, intr.D, None


def run_hand_eye(cfg: HandEyeCliConfig) -> str:
    """Detect the board in every image, solve with all five methods, save, return the summary."""
    from tqdm import tqdm

    from .charuco import detect_charuco, estimate_board_pose
    from .hand_eye import calibrate_hand_eye, save_hand_eye_yaml, transform_difference

    images, tcps, K, D, truth = _sim_pairs(cfg) if cfg.sim else _recorded_pairs(cfg)
    G, C, skipped = [], [], []
    for i, (image, tcp) in enumerate(tqdm(list(zip(images, tcps)), desc="board poses", unit="view")):
        try:
            C.append(estimate_board_pose(detect_charuco(image, cfg.board), K, D))
            G.append(tcp)
        except CalibrationError as e:
            skipped.append(f"  view {i} skipped: {e}")
    result = calibrate_hand_eye(G, C, eye_in_hand=cfg.eye_in_hand)
    save_hand_eye_yaml(cfg.out, result, robot_base_frame=cfg.robot_base_frame,
                       robot_effector_frame=cfg.robot_effector_frame, tracking_base_frame=cfg.tracking_base_frame)
    text = "\n".join(skipped + [result.summary()])
    if truth is not None:
        dt, dr = transform_difference(result.transform, truth)
        text += f"\nerror to the sim's ground truth: {dt:.2f} mm, {dr:.3f} deg"
    return text + f"\nwrote {cfg.out}"
