"""Backend-dispatching entry points of the ``robot_rl/Panda*-v0`` gymnasium IDs.

``backend`` names a simulation package (``mujoco`` default, ``pybullet``); the factory of that
backend is imported only when called, so registering the IDs imports no physics engine.
"""

from __future__ import annotations

import importlib

from robot_rl.env import RobotEnv
from robot_rl.errors import ConfigError

#: Size in pixels (height, width) of ``render()`` frames when the env has no front camera.
RENDER_SIZE_PX = (256, 256)

#: Simulation backend name -> module with ``make_pick_lift_env`` and ``make_push_env``.
BACKENDS: dict[str, str] = {
    "mujoco": "robot_rl.sim.mujoco.envs",
    "pybullet": "robot_rl.sim.pybullet.envs",
}


def _check_cameras(cameras: Sequence[str]) -> None:
    known = ("front", "wrist")
    unknown = [c for c in cameras if c not in known]
    if unknown:
        raise ConfigError(f"unknown camera(s) {unknown}; the Panda scene has cameras {list(known)}")


def _factory(backend: str, name: str):
    if backend not in BACKENDS:
        raise ConfigError(f"unknown sim backend {backend!r}; choose one of {sorted(BACKENDS)}")
    return getattr(importlib.import_module(BACKENDS[backend]), name)


def make_pick_lift_env(*, backend: str = "mujoco", **kwargs) -> RobotEnv:
    """The Panda pick-and-lift env of ``backend``; ``kwargs`` as :func:`robot_rl.sim.mujoco.envs.make_pick_lift_env`.

    Raises:
        ConfigError: unknown backend, camera name or other invalid settings.
    """
    return _factory(backend, "make_pick_lift_env")(**kwargs)


def make_push_env(*, backend: str = "mujoco", **kwargs) -> RobotEnv:
    """The Panda push env of ``backend``; ``kwargs`` as :func:`robot_rl.sim.mujoco.envs.make_push_env`.

    Raises:
        ConfigError: unknown backend, camera name or other invalid settings.
    """
    return _factory(backend, "make_push_env")(**kwargs)
