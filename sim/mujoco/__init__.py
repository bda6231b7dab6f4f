"""MuJoCo backend: the Franka Panda at a table as Arm / Camera / Task implementations.

Importing this package sets ``MUJOCO_GL=egl`` (headless rendering) unless it is already set.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from .arm import DiffIKConfig, MujocoArm  # noqa: E402
from .camera import MujocoCamera  # noqa: E402
from .envs import make_pick_lift_env, make_push_env  # noqa: E402
from .scene import PandaPhysics, SceneConfig  # noqa: E402
from .tasks import PickLiftConfig, PickLiftTask, PushConfig, PushTask  # noqa: E402

__all__ = ["DiffIKConfig", "MujocoArm", "MujocoCamera", "PandaPhysics", "PickLiftConfig", "PickLiftTask",
           "PushConfig", "PushTask", "SceneConfig", "make_pick_lift_env", "make_push_env"]
