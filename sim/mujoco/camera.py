"""Simulated cameras of a :class:`~robot_rl.sim.mujoco.scene.PandaPhysics` scene."""

from __future__ import annotations

import mujoco
import numpy as np

from robot_rl.interfaces import Camera, CameraIntrinsics, Frame

from ..kinematics import pinhole_intrinsics

from .scene import PandaPhysics


class MujocoCamera(Camera):
    """A camera of the MuJoCo model rendered offscreen with ``mujoco.Renderer``.

    Args:
        physics: the scene to render.
        name: a camera name of the model (``front``, ``wrist``).
        height: image height in pixels.
        width: image width in pixels.
        hidden_geom_groups: geom groups not drawn by this camera (the wrist camera skips
            ``ARM_VISUAL_GROUP``, the arm links it cannot see, which halves its render time).

    Raises:
        ValueError: ``name`` is not a camera of the model (the message lists the cameras).
    """

    def __init__(self, physics: PandaPhysics, name: str, height: int = 128, width: int = 128,
                 hidden_geom_groups: tuple[int, ...] = ()):
        model = physics.model
        names = [model.camera(i).name for i in range(model.ncam)]
        if name not in names:
            raise ValueError(f"unknown camera {name!r}; this scene has cameras {names}")
        self.name = name
        self.physics = physics
        self.camera_id = names.index(name)
        self.height, self.width = int(height), int(width)
        # MuJoCo renders a symmetric frustum with vertical field of view fovy and square pixels.
        self._intrinsics = pinhole_intrinsics(self.height, self.width, model.cam_fovy[self.camera_id])
        self._option = mujoco.MjvOption()
        for group in hidden_geom_groups:
            self._option.geomgroup[group] = 0
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
        data = self.physics.data
        rot = data.cam_xmat[self.camera_id].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])  # MuJoCo looks along -z, y up
        return data.cam_xpos[self.camera_id].copy(), rot

    def read(self) -> Frame:
        """Render the current simulation state.

        Returns:
            A :class:`Frame` with ``rgb`` (H, W, 3) uint8 and ``stamp`` = simulation time in seconds.

        Raises:
            RuntimeError: the camera was closed.
        """
        if self._closed:
            raise RuntimeError(f"camera {self.name!r} is closed")
        renderer = self.physics.renderer(self.height, self.width)
        renderer.update_scene(self.physics.data, camera=self.camera_id, scene_option=self._option)
        return Frame(rgb=renderer.render().copy(), stamp=float(self.physics.data.time))

    def close(self) -> None:
        """Stop rendering; the shared renderer is freed by ``PandaPhysics.close``. Idempotent."""
        self._closed = True
