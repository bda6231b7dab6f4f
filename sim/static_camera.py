"""One camera of a robot_rl sim env, rendering a static scene (the camera node's ``sim`` backend).

The env is reset once with a seed and never stepped, so every frame shows the same scene; use it
to run the camera node and its consumers without hardware. (The sim node, which steps the
physics, publishes the same topics with a moving scene.)
"""

from __future__ import annotations

import time

from robot_rl.errors import ConfigError
from robot_rl.interfaces import Camera, CameraIntrinsics, Frame


class SimCamera(Camera):
    """Renders camera ``camera`` of a gymnasium env ``env_id`` built with ``cameras=(camera,)``.

    Args:
        env_id: a robot_rl sim env ID (``robot_rl/PandaPickLift-v0``, ``robot_rl/PandaPush-v0``).
        camera: camera name of the scene (``front``, ``wrist``).
        width: image width in pixels.
        height: image height in pixels.
        backend: physics/rendering backend, ``"mujoco"`` or ``"pybullet"``.
        seed: reset seed of the (static) scene.

    Raises:
        ConfigError: unknown env ID, camera or backend (the message lists the valid ones).
    """

    def __init__(self, env_id: str = "robot_rl/PandaPickLift-v0", camera: str = "front", *, width: int = 128,
                 height: int = 128, backend: str = "mujoco", seed: int = 0) -> None:
        from robot_rl.envs import make_env

        self.name = camera
        self._env = make_env(env_id, cameras=(camera,), image_size=(int(height), int(width)), backend=backend)
        self._env.reset(seed=seed)
        cameras = getattr(self._env.unwrapped, "cameras", None)
        if not cameras or camera not in cameras:
            self._env.close()
            raise ConfigError(f"env {env_id} has no camera {camera!r} (cameras: {sorted(cameras or {})}).")
        self._camera = cameras[camera]

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """The simulated camera's pinhole intrinsics (K in pixels, no distortion)."""
        return self._camera.intrinsics

    def read(self) -> Frame:
        """Render the scene.

        Returns:
            :class:`Frame` with ``rgb`` (height, width, 3) uint8 and ``stamp`` = wall-clock seconds
            (the scene is static, so sim time would not advance).
        """
        return Frame(rgb=self._camera.read().rgb, stamp=time.time())

    def close(self) -> None:
        """Close the env and its renderer. Idempotent."""
        env, self._env = getattr(self, "_env", None), None
        if env is not None:
            env.close()
