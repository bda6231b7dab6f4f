"""``robot-rl calibrate hand-eye-samples``: collect hand-eye pose pairs from a running arm and camera.

The arm node (or sim node) and the camera node run as usual. This tool subscribes ``/arm/ee_pose``
and the camera's ``image_raw`` and saves a sample (the image as PNG plus the TCP pose) each time
the arm comes to rest at a new pose, while a person moves the arm between poses: by hand-guiding
(Franka's guiding mode, UR freedrive: the only way to get the tilted poses hand-eye needs on an
arm node that takes position + yaw commands), or with ``--teleop keyboard|gamepad|spacemouse``,
whose twist goes to ``/arm/delta_twist_cmds`` through the arm node's safety gate.

A sample is taken when the TCP has stayed within ``still_mm`` / ``still_deg`` for ``still_s``
seconds, is at least ``min_move_mm`` or ``min_turn_deg`` away from every earlier sample, and (with
``--board-check``) the ChArUco board is detected in the image taken after the arm stopped. With a
teleop device, its success button takes a sample at once (no stillness wait) and its reset button
ends the collection. The output folder is what ``robot-rl calibrate hand-eye --samples`` reads:
``poses.yaml`` (``samples: [{image, position, quaternion_xyzw, stamp}]``) and the PNGs.
Samples are written as they are taken, so Ctrl-C or a crash keeps every sample so far.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from robot_rl.errors import CalibrationError, ConfigError

from .charuco import ChArucoBoard


def _turn_deg(quats_xyzw: list[np.ndarray], quat_xyzw: np.ndarray) -> np.ndarray:
    """(N,) rotation angles in degrees from each of N quaternions (xyzw) to one more."""
    return np.degrees((Rotation.from_quat(np.reshape(quats_xyzw, (-1, 4))).inv() * Rotation.from_quat(quat_xyzw)).magnitude())


@dataclass
class SampleCriteria:
    """When a pose counts as a new sample (see the module doc)."""

    still_s: float = 0.5
    """the TCP must rest this long, seconds."""
    still_mm: float = 1.0
    """largest TCP motion while resting, mm."""
    still_deg: float = 0.3
    """largest TCP rotation while resting, degrees."""
    min_move_mm: float = 20.0
    """a new sample is at least this far from every earlier one (or turned by min_turn_deg), mm."""
    min_turn_deg: float = 5.0
    """... or turned at least this much, degrees."""


class HandEyeSampleWriter:
    """Writes samples into ``out_dir`` (PNG + ``poses.yaml``, rewritten after every sample).

    Raises:
        ConfigError: ``out_dir`` already holds a ``poses.yaml`` (samples are never overwritten).
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        if (self.out_dir / "poses.yaml").exists():
            raise ConfigError(f"{self.out_dir} already holds poses.yaml; choose a new --out folder (samples are never overwritten).")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.samples: list[dict[str, Any]] = []

    def add(self, rgb: np.ndarray, position_m: np.ndarray, quaternion_xyzw: np.ndarray, stamp_s: float) -> Path:
        """Save one ``(H, W, 3) uint8`` RGB image with the TCP pose (base frame, metres, xyzw)."""
        import cv2

        name = f"sample_{len(self.samples):03d}.png"
        path = self.out_dir / name
        if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)):
            raise CalibrationError(f"could not write {path}")
        self.samples.append({"image": name, "position": [float(v) for v in position_m],
                             "quaternion_xyzw": [float(v) for v in quaternion_xyzw], "stamp": float(stamp_s)})
        tmp = self.out_dir / "poses.yaml.tmp"
        tmp.write_text(yaml.safe_dump({"samples": self.samples}, sort_keys=False))
        tmp.replace(self.out_dir / "poses.yaml")  # atomic: a crash never leaves a half-written file
        return path


@dataclass
class HandEyeSampler:
    """Stillness-triggered sample logic over a stream of TCP poses and images (no ROS inside).

    Feed :meth:`on_pose` and :meth:`on_image` from any source; :meth:`poll` returns a sample
    ``(rgb, position, quaternion, stamp)`` when the criteria are met, else ``None``.
    """

    criteria: SampleCriteria = field(default_factory=SampleCriteria)
    board_check: Any = None
    """callable ``rgb -> str | None``: ``None`` when the image is usable, else the reason."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._poses: list[tuple[float, np.ndarray, np.ndarray]] = []  # (stamp, position, quaternion)
        self._image: tuple[float, np.ndarray] | None = None
        self.taken: list[tuple[np.ndarray, np.ndarray]] = []
        self.last_rejection = ""

    def on_pose(self, stamp_s: float, position_m: np.ndarray, quaternion_xyzw: np.ndarray) -> None:
        """One TCP pose: stamp (s), (3,) position (m, base frame), (4,) unit quaternion xyzw."""
        with self._lock:
            self._poses.append((stamp_s, np.asarray(position_m, float), np.asarray(quaternion_xyzw, float)))
            horizon = stamp_s - 4 * self.criteria.still_s
            while self._poses and self._poses[0][0] < horizon:
                self._poses.pop(0)

    def on_image(self, stamp_s: float, rgb: np.ndarray) -> None:
        """The newest camera frame: stamp (s, same clock as the poses), (H, W, 3) uint8 RGB."""
        with self._lock:
            self._image = (stamp_s, rgb)

    def _rest_start(self) -> float | None:
        """Stamp since which the TCP has rested (within the still tolerances), or None."""
        if not self._poses:
            return None
        stamps, positions, quats = zip(*self._poses)
        moved_mm = np.linalg.norm(np.array(positions) - positions[-1], axis=1) * 1e3
        still = (moved_mm <= self.criteria.still_mm) & (_turn_deg(quats, quats[-1]) <= self.criteria.still_deg)
        start = None
        for stamp, ok in zip(reversed(stamps), reversed(still)):
            if not ok:
                break
            start = stamp
        return start

    def poll(self, force: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
        """A new sample ``(rgb (H, W, 3) uint8, position (3,) m, quaternion (4,) xyzw, stamp s)`` if
        the criteria hold now, else None (``force``: skip the stillness test, e.g. a button)."""
        c = self.criteria
        with self._lock:
            if not self._poses or self._image is None:
                return None
            stamp, p, q = self._poses[-1]
            rest = self._rest_start()
            if not force and (rest is None or stamp - rest < c.still_s):
                return None
            image_stamp, rgb = self._image
            if not force and image_stamp < rest + 1e-6:  # an image taken while the arm was still moving
                return None
        if self.taken and np.any((np.linalg.norm([tp - p for tp, _ in self.taken], axis=1) * 1e3 < c.min_move_mm)
                                 & (_turn_deg([tq for _, tq in self.taken], q) < c.min_turn_deg)):
            if force:
                self.last_rejection = "too close to an earlier sample: move or turn the arm further"
            return None
        if self.board_check is not None:
            reason = self.board_check(rgb)
            if reason:
                self.last_rejection = reason
                return None
        self.taken.append((p, q))
        return rgb, p, q, stamp


def board_detector(board: Any, min_corners: int = 6):
    """A ``board_check`` for :class:`HandEyeSampler`: the reason when fewer than ``min_corners``
    ChArUco corners of ``board`` are found, else None."""
    from .charuco import detect_charuco

    def check(rgb: np.ndarray) -> str | None:
        try:
            detect_charuco(rgb, board, min_corners=min_corners)
        except CalibrationError as e:
            return str(e)
        return None

    return check


def collect_hand_eye_samples(out_dir: str | Path, camera: str, n_samples: int, sampler: HandEyeSampler,
                             teleop: Any = None, duration_s: float = 0.0, rate_hz: float = 50.0,
                             stop: threading.Event | None = None, progress: bool = True) -> HandEyeSampleWriter:
    """Collect samples from ``/arm/ee_pose`` and camera ``camera``'s images into ``out_dir``.

    Args:
        out_dir: output folder (``poses.yaml`` + PNGs; must not hold a ``poses.yaml`` yet).
        camera: camera name (topics ``/camera/<camera>/color/image_raw``).
        n_samples: stop after this many samples.
        sampler: the sample logic (criteria, optional board check).
        teleop: optional teleop device: twist -> ``/arm/delta_twist_cmds`` at ``rate_hz``, gripper
            -> ``/arm/gripper_cmd``, success button = take a sample now, reset button = stop.
        duration_s: stop after this long, seconds (0: no limit).
        stop: set it to end early.
        progress: print a line per sample and rejection reasons.

    Returns:
        The writer (``.samples`` lists what was saved).

    Raises:
        ConfigError: ``out_dir`` already holds samples, or a bad camera name.
    """
    from robot_rl.ros import convert
    from robot_rl.ros.node import Node, stamp_to_seconds

    topics = convert.camera_topics(camera)
    writer = HandEyeSampleWriter(out_dir)
    stop = stop or threading.Event()
    node = Node("hand_eye_sampler")
    force = threading.Event()

    def on_pose(msg: Any) -> None:
        p, q = convert.pose_to_arrays(msg.pose)
        sampler.on_pose(stamp_to_seconds(msg.header.stamp), p, q)

    def on_image(msg: Any) -> None:
        sampler.on_image(stamp_to_seconds(msg.header.stamp), convert.image_to_array(msg))

    node.create_subscription("geometry_msgs/msg/PoseStamped", convert.EE_POSE, on_pose, 50)
    node.create_subscription("sensor_msgs/msg/Image", topics["image"], on_image, "sensor")
    if teleop is not None:
        twist_pub = node.create_publisher("geometry_msgs/msg/TwistStamped", convert.TWIST_CMD)
        gripper_pub = node.create_publisher("std_msgs/msg/Float64", convert.GRIPPER_CMD)

        def send() -> None:
            cmd = teleop.read()
            twist_pub.publish(convert.twist_command_msg(cmd.twist, node.now()))
            if cmd.gripper is not None:
                gripper_pub.publish(convert.gripper_command_msg(cmd.gripper))
            if cmd.success:
                force.set()
            if cmd.reset:
                stop.set()

        node.create_timer(1.0 / rate_hz, send)
    node.spin_in_thread()
    start, last_reason = time.monotonic(), ""
    try:
        while not stop.is_set() and len(writer.samples) < n_samples and (duration_s <= 0 or time.monotonic() - start < duration_s):
            time.sleep(0.02)
            forced = force.is_set()
            force.clear()
            sample = sampler.poll(force=forced)
            if sample is not None:
                path = writer.add(*sample)
                if progress:
                    p = sample[1]
                    print(f"sample {len(writer.samples)}/{n_samples}: TCP at {np.round(p, 3).tolist()} m -> {path.name}", flush=True)
            elif progress and sampler.last_rejection and sampler.last_rejection != last_reason:
                last_reason = sampler.last_rejection
                print(f"not taken: {last_reason}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        node.shutdown()
    return writer


@dataclass
class HandEyeSamplesCliConfig:
    """Collect hand-eye samples (image + TCP pose) while the arm is moved from pose to pose."""

    out: Path
    """output folder for poses.yaml and the images (then: robot-rl calibrate hand-eye --samples OUT)."""
    camera: str = "front"
    """camera name: images from /camera/<camera>/color/image_raw."""
    n_samples: int = 20
    """stop after this many samples."""
    duration_s: float = 0.0
    """stop after this long, seconds (0: until n_samples, Ctrl-C or the teleop's reset button)."""
    teleop: str = "none"
    """drive the arm from here: keyboard, gamepad, spacemouse (success button = take a sample now); none: hand-guide it."""
    board_check: bool = True
    """take only images in which the ChArUco board (--board) is detected."""
    board: ChArucoBoard = ChArucoBoard()
    """the printed board."""
    criteria: SampleCriteria = field(default_factory=SampleCriteria)
    """when a resting pose becomes a sample."""


def run_hand_eye_samples(cfg: HandEyeSamplesCliConfig) -> str:
    """CLI entry: collect and return a report."""
    teleop = None
    if cfg.teleop != "none":
        from robot_rl.drivers.teleop import make_teleop

        teleop = make_teleop(cfg.teleop)
    check = board_detector(cfg.board) if cfg.board_check else None
    print(f"move the arm to {cfg.n_samples} poses that show the board to camera {cfg.camera!r} from different "
          "angles (tilt the hand about two axes), and hold each still for a moment")
    try:
        writer = collect_hand_eye_samples(cfg.out, cfg.camera, cfg.n_samples, HandEyeSampler(cfg.criteria, check),
                                          teleop=teleop, duration_s=cfg.duration_s)
    finally:
        if teleop is not None:
            teleop.close()
    return (f"{len(writer.samples)} samples in {cfg.out}; next: robot-rl calibrate hand-eye --samples {cfg.out} "
            f"--camera-info <camera_info.yaml> --out handeye.yaml")
