"""Place the simulated cameras where a hand-eye calibration says the real ones are.

``gymnasium.make(ID, hand_eye={"front": "front_handeye.yaml", "wrist": "wrist_handeye.yaml"})``
(and the sim node's ``hand_eye_files`` parameter) load each ``robot-rl calibrate hand-eye``
result (easy_handeye2 YAML) and move that camera of the MuJoCo or PyBullet scene to it:

* eye-to-hand (``eye_on_hand: false``): the transform is base <- camera optical frame;
* eye-in-hand (``eye_on_hand: true``): the transform is TCP <- camera optical frame, so the camera
  rides on the hand at that offset.

The pose becomes the camera's new built-in pose (``set_camera_calibration`` of the backend's
``PandaPhysics``); domain randomisation's camera jitter then applies around it, which is what
"camera pose jitter drawn from the calibration's uncertainty" means (``camera_pose_std`` in
:class:`robot_rl.sim.randomization.RandomizationConfig`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import CalibrationError, ConfigError


def _pose_matrix(position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = rotation, position
    return T


def tcp_pose_matrix(arm: Any) -> np.ndarray:
    """(4, 4) base <- TCP of a robot_rl arm's current state (position m, quaternion xyzw)."""
    from scipy.spatial.transform import Rotation

    s = arm.state()
    return _pose_matrix(np.asarray(s.ee_position, float), Rotation.from_quat(s.ee_quaternion).as_matrix())


def place_camera(physics: Any, arm: Any, camera: Any, transform: np.ndarray, eye_on_hand: bool) -> None:
    """Move ``camera`` so its optical frame (z forward, x right, y down) is at ``transform``.

    Args:
        physics: the backend's ``PandaPhysics`` (``set_camera_calibration``, ``camera_parent_rotation``).
        arm: the scene's arm (its TCP pose anchors an eye-in-hand transform).
        camera: the scene's camera object (``name``, ``pose()`` -> optical frame in the base frame).
        transform: (4, 4) parent <- camera optical frame, metres: parent = TCP when ``eye_on_hand``,
            else the base frame.
        eye_on_hand: see ``transform``.

    Raises:
        ConfigError: ``transform`` is not a rigid transform.
    """
    from scipy.spatial.transform import Rotation

    T = np.asarray(transform, float)
    if T.shape != (4, 4) or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6) or not np.allclose(T[3], [0, 0, 0, 1]):
        raise ConfigError(f"camera {camera.name!r}: the hand-eye transform must be a (4, 4) rigid transform, got {T.tolist()}")
    physics.set_camera_calibration(camera.name, np.zeros(3), np.zeros(3))  # back to the built-in pose
    physics.set_camera_pose_offset(camera.name, np.zeros(3), np.zeros(3))
    want = tcp_pose_matrix(arm) @ T if eye_on_hand else T
    p_nom, r_nom = camera.pose()
    r_par = physics.camera_parent_rotation(camera.name)
    # set_camera_calibration takes a parent-frame translation and a rotation about the camera's
    # own position, applied on the left of the parent-frame orientation
    d_pos = r_par.T @ (want[:3, 3] - p_nom)
    d_rot = r_par.T @ want[:3, :3] @ r_nom.T @ r_par
    physics.set_camera_calibration(camera.name, d_pos, Rotation.from_matrix(d_rot).as_rotvec())


def hand_eye_uncertainty(source: Any) -> tuple[float, float]:
    """1-sigma pose uncertainty of a ``robot-rl calibrate hand-eye`` result, for camera jitter.

    The larger of the calibration's residual (RMS spread of the board pose over all poses) and
    the disagreement between the OpenCV methods, in translation and in rotation (the ``robot_rl``
    block the tool writes next to easy_handeye2's fields).

    Args:
        source: the YAML path, or ``(transform, eye_on_hand)`` (no uncertainty: an error).

    Returns:
        ``(position std m, rotation std deg)``.

    Raises:
        CalibrationError: the file is missing or has no ``robot_rl`` block (e.g. written by
            easy_handeye2 itself): give ``camera_pose_std`` as numbers instead.
    """
    import yaml

    if not isinstance(source, (str, Path)) or not Path(source).is_file():
        raise CalibrationError(f"camera_pose_std: hand_eye needs a hand-eye YAML file from `robot-rl calibrate hand-eye`, got {source!r}")
    block = (yaml.safe_load(Path(source).read_text()) or {}).get("robot_rl") or {}
    try:
        mm = max(float(block["residual_mm"]), float(block["agreement_mm"]))
        deg = max(float(block["residual_deg"]), float(block["agreement_deg"]))
    except (KeyError, TypeError, ValueError):
        raise CalibrationError(f"{source} has no robot_rl uncertainty block (residual_mm/deg, agreement_mm/deg); "
                               "give camera_pose_std as (position std m, rotation std deg) instead") from None
    return mm / 1000.0, deg


def apply_hand_eye(env: Any, sources: dict[str, Any], make_camera: Any = None) -> dict[str, np.ndarray]:
    """Place each named camera of a robot_rl sim env at its hand-eye calibration.

    Args:
        env: a ``robot_rl/Panda*`` sim env (its ``.unwrapped`` RobotEnv has ``arm`` and ``cameras``).
        sources: camera name -> easy_handeye2 YAML path (from ``robot-rl calibrate hand-eye``),
            or ``(transform (4, 4), eye_on_hand)``.
        make_camera: ``name -> camera`` for cameras the env does not observe (their pose is still
            set, e.g. for the render camera); ``None``: such names are an error.

    Returns:
        camera name -> the (4, 4) transform applied.

    Raises:
        CalibrationError: a file is missing or not in the easy_handeye2 shape.
        ConfigError: an unknown camera name.
    """
    from robot_rl.calibration.hand_eye import load_hand_eye_yaml

    base = env.unwrapped
    arm = base.arm
    arm.home()  # the TCP and the hand are where a reset puts them (any rigid pose would do)
    applied = {}
    for name, src in sources.items():
        if isinstance(src, (str, Path)):
            if not Path(src).is_file():
                raise CalibrationError(f"hand-eye file {src} for camera {name!r} does not exist; "
                                       "write it with `robot-rl calibrate hand-eye --out ...`")
            T, params = load_hand_eye_yaml(src)
            eye_on_hand = bool(params.get("eye_on_hand", True))
        else:
            T, eye_on_hand = src
        camera = base.cameras.get(name)
        temporary = camera is None and make_camera is not None
        if camera is None:
            if make_camera is None:
                raise ConfigError(f"hand_eye names camera {name!r}, which this env does not have; its cameras: {sorted(base.cameras)}")
            camera = make_camera(name)
        try:
            place_camera(arm.physics, arm, camera, T, eye_on_hand)
        finally:
            if temporary:
                camera.close()
        applied[name] = np.asarray(T, float)
    return applied
