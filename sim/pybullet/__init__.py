"""PyBullet backend: the same Panda table scene, Arm / Camera and tasks as :mod:`robot_rl.sim.mujoco`."""

from ..tasks import PickLiftConfig, PickLiftTask, PushConfig, PushTask
from .arm import PybulletArm
from .camera import PybulletCamera
from .envs import make_pick_lift_env, make_push_env
from .scene import PandaPhysics, SceneConfig

__all__ = ["PandaPhysics", "PickLiftConfig", "PickLiftTask", "PushConfig", "PushTask", "PybulletArm",
           "PybulletCamera", "SceneConfig", "make_pick_lift_env", "make_push_env"]
