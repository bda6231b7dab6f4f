"""Simulated cameras of a PyBullet :class:`~robot_rl.sim.pybullet.scene.PandaPhysics` scene.

Poses and fields of view match the MuJoCo scene's ``front`` and ``wrist`` cameras.
"""

from __future__ import annotations

import numpy as np
import pybullet
from scipy.spatial.transform import Rotation

from robot_rl.interfaces import Camera, CameraIntrinsics, Frame

from ..kinematics import pinhole_intrinsics

from .scene import FRONT_CAMERA, WRIST_CAMERA, PandaPhysics

#: Wrist camera mount in the hand frame (z towards the fingertips), metres: beside the flange,
#: looking at the fingertips, as in the MuJoCo scene.
WRIST_POSITION_M = np.array([0.06, 0.0, 0.02])
WRIST_LOOKAT_M = np.array([0.0, 0.0, 0.13])
WRIST_UP = np.array([1.0, 0.0, 0.0])
_NEAR_M, _FAR_M = 0.01, 10.0


def _optical_rotation(position: np.ndarray, lookat: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(3, 3) rotation whose columns are the optical x (right), y (down), z (forward) axes."""
    forward = lookat - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


class PybulletCamera(Camera):
    """A camera of the PyBullet scene rendered with ``getCameraImage`` (CPU tiny renderer).

    Args:
        physics: the scene to render.
        name: ``front`` (fixed) or ``wrist`` (on the hand).
        height: image height in pixels.
        width: image width in pixels.

    Raises:
        ValueError: ``name`` is not a camera of the scene.
    """

    def __init__(self, physics: PandaPhysics, name: str, height: int = 128, width: int = 128):
        fovy = {FRONT_CAMERA: physics.config.front_camera_fovy_deg, WRIST_CAMERA: physics.config.wrist_camera_fovy_deg}
        if name not in fovy:
            raise ValueError(f"unknown camera {name!r}; this scene has cameras {list(fovy)}")
        self.name = name
        self.physics = physics
        self.height, self.width = int(height), int(width)
        self.fovy_deg = float(fovy[name])
        self._intrinsics = pinhole_intrinsics(self.height, self.width, self.fovy_deg)
        self._projection = physics.client.computeProjectionMatrixFOV(
            fov=self.fovy_deg, aspect=self.width / self.height, nearVal=_NEAR_M, farVal=_FAR_M)
        self._closed = False

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """Pinhole intrinsics: focal length ``(H / 2) / tan(fovy / 2)`` px, principal point at the image centre."""
        return self._intrinsics

    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Camera optical frame (z forward, x right, y down) in the base frame.

        Returns:
            ``(position, rotation)``: (3,) float64 metres and (3, 3) float64 rotation whose columns
            are the optical x, y, z axes in base coordinates.
        """
        cfg = self.physics.config
        offset_m, offset_rot = self.physics.camera_offsets.get(self.name, (np.zeros(3), np.eye(3)))
        cal_m, cal_rot = self.physics.camera_calibrations.get(self.name, (np.zeros(3), np.eye(3)))
        offset_m, offset_rot = cal_m + offset_m, offset_rot @ cal_rot  # the jitter turns about the calibrated pose
        if self.name == FRONT_CAMERA:
            position = np.array(cfg.front_camera_position_m, float)
            rot = _optical_rotation(position, np.array(cfg.front_camera_lookat_m, float), np.array([0.0, 0.0, 1.0]))
            return position + offset_m, offset_rot @ rot
        ls = self.physics.client.getLinkState(self.physics.robot, self.physics.hand_link, computeForwardKinematics=1)
        hand_pos, hand_rot = np.array(ls[4]), Rotation.from_quat(ls[5]).as_matrix()
        local_rot = offset_rot @ _optical_rotation(WRIST_POSITION_M, WRIST_LOOKAT_M, WRIST_UP)
        return hand_pos + hand_rot @ (WRIST_POSITION_M + offset_m), hand_rot @ local_rot

    def read(self) -> Frame:
        """Render the current simulation state.

        Returns:
            A :class:`Frame` with ``rgb`` (H, W, 3) uint8 and ``stamp`` = simulation time in seconds.

        Raises:
            RuntimeError: the camera was closed.
        """
        if self._closed:
            raise RuntimeError(f"camera {self.name!r} is closed")
        position, rot = self.pose()
        view = self.physics.client.computeViewMatrix(cameraEyePosition=position.tolist(),
                                                     cameraTargetPosition=(position + rot[:, 2]).tolist(),
                                                     cameraUpVector=(-rot[:, 1]).tolist())
        _, _, rgba, _, _ = self.physics.client.getCameraImage(
            self.width, self.height, viewMatrix=view, projectionMatrix=self._projection,
            renderer=pybullet.ER_TINY_RENDERER, shadow=int(self.physics.config.shadows),
            flags=pybullet.ER_NO_SEGMENTATION_MASK, **self.physics.light)
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(self.height, self.width, 4)[..., :3].copy()
        return Frame(rgb=rgb, stamp=float(self.physics.time))

    def close(self) -> None:
        """Stop rendering; the client is closed by ``PandaPhysics.close``. Idempotent."""
        self._closed = True
