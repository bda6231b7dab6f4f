"""``robot-rl calibrate hand-eye-samples`` against the sim node: samples are taken when the arm rests at new poses."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import yaml

from conftest import start_node, stop_node
from robot_rl.calibration.collect import HandEyeSampler, HandEyeSampleWriter, SampleCriteria, collect_hand_eye_samples
from robot_rl.errors import ConfigError
from robot_rl.interfaces import Teleop, TeleopCommand


class MoveAndHoldTeleop(Teleop):
    """A person at the teleop device: waits (hands off) until ``ready()`` (the home sample was
    taken), then 0.1 m/s along each of ``legs`` for ``move_s``, each followed by ``hold_s`` hands off."""

    def __init__(self, legs: list[tuple[float, float, float]], ready, move_s: float = 1.0, hold_s: float = 2.5) -> None:
        self.legs, self.ready, self.move_s, self.hold_s, self.start = legs, ready, move_s, hold_s, None

    def read(self) -> TeleopCommand:
        twist = np.zeros(6)
        if self.start is None:
            if not self.ready():
                return TeleopCommand(twist=twist, engaged=True)
            self.start = time.monotonic()
        leg, phase = divmod(time.monotonic() - self.start, self.move_s + self.hold_s)
        if int(leg) < len(self.legs) and phase < self.move_s:
            twist[:3] = np.array(self.legs[int(leg)]) * 0.1
        return TeleopCommand(twist=twist, engaged=True)


def test_samples_are_taken_at_each_new_resting_pose(ros_domain, tmp_path):
    log = tmp_path / "sim.log"
    node = start_node("robot_rl.sim.node", "-p", "env:=robot_rl/PandaPickLiftPixels-v0", "-p", "cameras:=[front]",
                      log_path=str(log))
    out = tmp_path / "samples"
    poses: list[np.ndarray] = []
    try:
        sampler = HandEyeSampler(SampleCriteria(still_s=0.5, min_move_mm=20.0))
        teleop = MoveAndHoldTeleop([(1, 0, 0), (0, 1, 1), (-1, -1, 0)], ready=lambda: bool(sampler.taken))
        orig = sampler.on_pose

        def record(stamp, p, q):  # keep the poses the arm node reported, to check the saved ones
            poses.append(np.asarray(p))
            orig(stamp, p, q)

        sampler.on_pose = record
        writer = collect_hand_eye_samples(out, "front", 4, sampler, teleop=teleop, duration_s=90, progress=False)
    finally:
        assert stop_node(node) == 0, log.read_text()[-2000:]
    doc = yaml.safe_load((out / "poses.yaml").read_text())
    assert len(doc["samples"]) == len(writer.samples) == 4, log.read_text()[-1500:]
    positions = np.array([s["position"] for s in doc["samples"]])
    # home, then one sample per leg: each leg moved the TCP ~0.1 m along its direction
    steps = np.diff(positions, axis=0)
    for step, leg in zip(steps, [(1, 0, 0), (0, 1, 1), (-1, -1, 0)]):
        direction = np.array(leg, float) / np.linalg.norm(leg)
        assert step @ direction > 0.05 and np.linalg.norm(step - (step @ direction) * direction) < 0.02, steps
    # every saved pose is one the arm reported, and every image is a readable camera frame
    for s in doc["samples"]:
        assert min(np.linalg.norm(p - s["position"]) for p in poses) < 1e-9
        image = cv2.imread(str(out / s["image"]))
        assert image is not None and image.shape == (128, 128, 3) and image.std() > 5
    with pytest.raises(ConfigError, match="never overwritten"):
        HandEyeSampleWriter(out)


def test_sampler_waits_for_rest_a_fresh_image_and_a_new_pose():
    rejected = []
    sampler = HandEyeSampler(SampleCriteria(still_s=0.5, min_move_mm=20.0, min_turn_deg=5.0),
                             board_check=lambda rgb: None if rgb.mean() > 0 else rejected.append(1) or "board not in view")
    q = np.array([1.0, 0.0, 0.0, 0.0])
    img = np.full((4, 4, 3), 100, np.uint8)
    for i in range(10):  # moving 5 mm per 0.1 s
        sampler.on_pose(i * 0.1, np.array([0.5 + 0.005 * i, 0, 0.3]), q)
    sampler.on_image(0.85, img)
    assert sampler.poll() is None  # still moving
    for i in range(10, 17):  # at rest from t = 0.9 s (the pose of step 9)
        sampler.on_pose(i * 0.1, np.array([0.545, 0, 0.3]), q)
    assert sampler.poll() is None  # at rest for 0.7 s, but the newest image is from before the rest
    sampler.on_image(1.55, img)
    assert sampler.poll() is not None
    assert sampler.poll() is None  # the same pose again
    sampler.on_pose(1.7, np.array([0.545, 0.01, 0.3]), q)  # 1 cm away: too close, and not yet at rest
    sampler.on_image(1.75, np.zeros((4, 4, 3), np.uint8))
    for i in range(18, 26):
        sampler.on_pose(i * 0.1, np.array([0.545, 0.05, 0.3]), q)
    sampler.on_image(2.45, np.zeros((4, 4, 3), np.uint8))
    assert sampler.poll() is None and sampler.last_rejection == "board not in view" and rejected
    sampler.on_image(2.5, img)
    assert sampler.poll() is not None
