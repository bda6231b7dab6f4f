"""Small gymnasium envs written as a third-party package would, for tests/test_third_party_envs.py.

``make_env("third_party_envs:EglRendererEnv-v0")`` imports this module (with ``tests/`` on
``PYTHONPATH``), which registers the IDs below, as a user's own package would.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

TINY_XML = """
<mujoco>
  <worldbody>
    <light pos="0 0 1"/>
    <geom type="plane" size="1 1 0.1" rgba=".8 .8 .8 1"/>
    <body name="ball" pos="0 0 .1"><freejoint/><geom size=".05" rgba="1 0 0 1"/></body>
  </worldbody>
</mujoco>
"""
FRAME_SIZE = (48, 64)
"""(height, width) of every rendered frame, pixels."""
EPISODE_STEPS = 10
"""steps until truncation."""


class EglRendererEnv(gym.Env):
    """A 1-D point mass that creates its ``mujoco.Renderer`` (an EGL context under ``MUJOCO_GL=egl``)
    in its constructor, as many third-party MuJoCo envs do.

    Observation: (2,) float32 [position m, velocity m/s]; action: (1,) float32 velocity command in
    [-1, 1] m/s; reward: -|position|; success when |position| < 0.05 m; truncated after
    :data:`EPISODE_STEPS` steps. ``render()`` returns one (H, W, 3) uint8 frame.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.model = mujoco.MjModel.from_xml_string(TINY_XML)
        self.data = mujoco.MjData(self.model)
        self.renderer = mujoco.Renderer(self.model, *FRAME_SIZE)
        self.position, self.velocity, self.steps = 0.0, 0.0, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.position, self.velocity], np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.position, self.velocity, self.steps = float(self.np_random.uniform(-0.5, 0.5)), 0.0, 0
        return self._obs(), {}

    def step(self, action: np.ndarray):
        self.velocity = float(np.clip(action, -1.0, 1.0)[0])
        self.position += 0.1 * self.velocity
        self.steps += 1
        success = abs(self.position) < 0.05
        return self._obs(), -abs(self.position), False, self.steps >= EPISODE_STEPS, {"is_success": success}

    def _frame(self) -> np.ndarray:
        self.data.qpos[0] = self.position
        mujoco.mj_forward(self.model, self.data)
        self.renderer.update_scene(self.data)
        return self.renderer.render()

    def render(self) -> np.ndarray | None:
        return self._frame() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        self.renderer.close()


class MultiCameraEnv(EglRendererEnv):
    """:class:`EglRendererEnv` whose ``render()`` returns a list of two (H, W, 3) uint8 frames, one
    per camera (the second upside down), as multi-camera envs do."""

    def render(self) -> list[np.ndarray] | None:
        if self.render_mode != "rgb_array":
            return None
        frame = self._frame()
        return [frame, frame[::-1].copy()]


gym.register("EglRendererEnv-v0", entry_point=EglRendererEnv, max_episode_steps=EPISODE_STEPS)
gym.register("MultiCameraEnv-v0", entry_point=MultiCameraEnv, max_episode_steps=EPISODE_STEPS)
