"""Sim cameras placed at a hand-eye calibration (robot_rl.sim.extrinsics), both backends."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import robot_rl  # noqa: F401  (registers the env IDs)
from robot_rl.calibration.hand_eye import HandEyeResult, save_hand_eye_yaml, transform_difference
from robot_rl.errors import CalibrationError, ConfigError
from robot_rl.sim.extrinsics import tcp_pose_matrix

BACKENDS = ["mujoco", "pybullet"]
ENV = "robot_rl/PandaPickLiftPixels-v0"


def _pose(camera) -> np.ndarray:
    p, r = camera.pose()
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = r, p
    return T


def _perturbed(T: np.ndarray, dp, rotvec_deg) -> np.ndarray:
    D = np.eye(4)
    D[:3, :3], D[:3, 3] = Rotation.from_rotvec(np.deg2rad(rotvec_deg)).as_matrix(), dp
    return T @ D


@pytest.mark.parametrize("backend", BACKENDS)
def test_eye_to_hand_camera_sits_at_the_calibration_and_sees_another_image(backend, tmp_path):
    ref = gym.make(ENV, backend=backend)
    ref.reset(seed=0)
    built_in = _pose(ref.unwrapped.cameras["front"])
    image_ref = ref.unwrapped.cameras["front"].read().rgb
    ref.close()
    want = _perturbed(built_in, [0.03, -0.02, 0.04], [4.0, -3.0, 6.0])
    path = tmp_path / "front_handeye.yaml"
    save_hand_eye_yaml(path, HandEyeResult(want, "park", eye_in_hand=False))
    env = gym.make(ENV, backend=backend, hand_eye={"front": str(path)})
    env.reset(seed=0)
    dt_mm, dr_deg = transform_difference(_pose(env.unwrapped.cameras["front"]), want)
    assert dt_mm < 1e-3 and dr_deg < 1e-3
    assert np.abs(env.unwrapped.cameras["front"].read().rgb.astype(int) - image_ref).mean() > 2.0
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_eye_in_hand_camera_rides_on_the_tcp_at_the_calibration(backend):
    ref = gym.make(ENV, backend=backend)
    ref.reset(seed=0)
    built_in = np.linalg.inv(tcp_pose_matrix(ref.unwrapped.arm)) @ _pose(ref.unwrapped.cameras["wrist"])
    ref.close()
    want = _perturbed(built_in, [0.01, 0.015, -0.005], [-5.0, 2.0, 8.0])
    env = gym.make(ENV, backend=backend, hand_eye={"wrist": (want, True)})
    env.reset(seed=1)
    for action in ([1, 0, 0, 1], [0, 1, -1, -1], [-1, -1, 1, 1]):  # the hand moves: the camera follows it
        env.step(np.asarray(action, np.float32))
        got = np.linalg.inv(tcp_pose_matrix(env.unwrapped.arm)) @ _pose(env.unwrapped.cameras["wrist"])
        dt_mm, dr_deg = transform_difference(got, want)
        assert dt_mm < 1e-3 and dr_deg < 1e-3, (dt_mm, dr_deg)
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_randomised_jitter_turns_about_the_calibrated_pose(backend):
    from robot_rl.sim.randomization import RandomizationConfig

    env = gym.make(ENV, backend=backend)
    env.reset(seed=0)
    want = _perturbed(_pose(env.unwrapped.cameras["front"]), [0.05, 0.0, 0.0], [0.0, 0.0, 10.0])
    env.close()
    cfg = RandomizationConfig(camera_pose_std=(0.002, 0.2), cameras=("front",))
    env = gym.make(ENV, backend=backend, hand_eye={"front": (want, False)}, randomize=cfg, randomize_seed=0)
    errors = []
    for seed in range(5):
        env.reset(seed=seed)
        errors.append(transform_difference(_pose(env.unwrapped.cameras["front"]), want))
    errors = np.array(errors)
    assert 0.0 < errors[:, 0].max() < 15.0 and 0.0 < errors[:, 1].max() < 1.5  # jitter of a few mm / tenths of a degree
    env.close()


def test_bad_hand_eye_input_is_explained(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        gym.make(ENV, hand_eye={"front": str(tmp_path / "missing.yaml")})
    with pytest.raises(ConfigError, match="rigid transform"):
        gym.make(ENV, hand_eye={"front": (np.ones((4, 4)), False)})
    with pytest.raises(ConfigError, match="unknown camera"):
        gym.make(ENV, hand_eye={"side": (np.eye(4), False)})


def test_sim_node_places_its_cameras_from_hand_eye_files(ros_domain, tmp_path):
    import time

    from conftest import start_node, stop_node

    path = tmp_path / "front_handeye.yaml"
    ref = gym.make(ENV)
    ref.reset(seed=0)
    save_hand_eye_yaml(path, HandEyeResult(_perturbed(_pose(ref.unwrapped.cameras["front"]), [0.02, 0, 0], [0, 0, 3]), "park", eye_in_hand=False))
    ref.close()
    log = tmp_path / "sim.log"
    node = start_node("robot_rl.sim.node", "-p", f"env:={ENV}", "-p", f"hand_eye_files:=[front:{path}]", log_path=str(log))
    try:
        deadline = time.monotonic() + 30
        while "placed at the hand-eye calibration" not in log.read_text() and time.monotonic() < deadline and node.poll() is None:
            time.sleep(0.2)
        assert f"camera 'front' placed at the hand-eye calibration {path}" in log.read_text(), log.read_text()
    finally:
        assert stop_node(node) == 0, log.read_text()
    bad = start_node("robot_rl.sim.node", "-p", f"env:={ENV}", "-p", "hand_eye_files:=[front]", log_path=str(log))
    assert bad.wait(30) == 1
    assert "'<camera>:<yaml path>'" in log.read_text()


def test_camera_jitter_from_the_calibrations_uncertainty(tmp_path):
    """randomize camera_pose_std: hand_eye draws the jitter with the calibration's own residual."""
    from robot_rl.sim.randomization import RandomizationConfig

    ref = gym.make(ENV)
    ref.reset(seed=0)
    want = _pose(ref.unwrapped.cameras["front"])
    ref.close()
    path = tmp_path / "front_handeye.yaml"
    save_hand_eye_yaml(path, HandEyeResult(want, "park", eye_in_hand=False, residual_mm=3.0, residual_deg=0.2,
                                           agreement_mm=0.5, agreement_deg=0.6))
    cfg = RandomizationConfig(camera_pose_std="hand_eye")
    env = gym.make(ENV, hand_eye={"front": str(path)}, randomize=cfg, randomize_seed=0)
    offsets = []
    for seed in range(40):
        info = env.reset(seed=seed)[1]
        assert set(info["randomization"]["camera_offsets"]) == {"front"}  # only the calibrated camera
        offsets.append(info["randomization"]["camera_offsets"]["front"])
    env.close()
    pos = np.array([o["position_m"] for o in offsets])
    rot = np.array([o["rotation_deg"] for o in offsets])
    assert pos.std() == pytest.approx(0.003, rel=0.25) and rot.std() == pytest.approx(0.6, rel=0.25)
    with pytest.raises(ConfigError, match="needs the env's hand_eye"):
        gym.make(ENV, randomize=cfg)
    bare = tmp_path / "easy_handeye2.yaml"
    bare.write_text("transform:\n  translation: {x: 1, y: 0, z: 0.5}\n  rotation: {x: 0, y: 0, z: 0, w: 1}\n")
    with pytest.raises(CalibrationError, match="no robot_rl uncertainty"):
        gym.make(ENV, hand_eye={"front": str(bare)}, randomize=cfg)
