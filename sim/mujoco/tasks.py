"""The pick-and-lift and push tasks; backend-independent, defined in :mod:`robot_rl.sim.tasks`."""

from ..tasks import PickLiftConfig, PickLiftScales, PickLiftTask, PushConfig, PushScales, PushTask, TableScene

__all__ = ["PickLiftConfig", "PickLiftScales", "PickLiftTask", "PushConfig", "PushScales", "PushTask", "TableScene"]
