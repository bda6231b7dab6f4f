"""``RosRobotEnv``: the gymnasium env over the camera and arm nodes' ROS 2 topics.

The same :class:`~robot_rl.env.RobotEnv` that runs a simulator in-process, with topic clients as
its arm, cameras and task, so an actor (``robot-rl actor``, ``robot-rl eval``, a scripted
controller) runs unchanged against the sim node (:mod:`robot_rl.sim.node`) or the real nodes:

* :class:`~robot_rl.ros.clients.RosArm` and :class:`~robot_rl.ros.clients.RosCamera` (see
  :mod:`robot_rl.ros.clients`) are the arm and the cameras;
* :class:`RosTask` reads the sim's ``/task/state`` (privileged object poses, success, reward
  terms) with the same stamp as the arm state, and resets the sim through ``/sim/reset``.
  Without a simulator (``task="none"``) it has no privileged state; success can come from a
  ``std_msgs/Bool`` topic (a reward node).

Every wait has a timeout and a clear error that names the missing topic (stale data is never
used silently: a state older than ``stale_after_s`` is an error).

The sim tasks' observation layouts, workspace boxes and episode lengths are read from the task
classes (:data:`robot_rl.sim.tasks.TASKS`, which import no physics engine), so the gymnasium IDs
``robot_rl/RosPandaPickLift-v0``, ``robot_rl/RosPandaPickLiftPixels-v0``,
``robot_rl/RosPandaPush-v0``, ``robot_rl/RosPandaPushPixels-v0`` (:mod:`robot_rl.envs`) mirror
the sim IDs (same observation and action spaces, same episode lengths); building one needs no
running node.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from robot_rl.env import RobotEnv
from robot_rl.errors import ConfigError, DeviceUnavailableError, WireError
from robot_rl.interfaces import Task, WorkspaceBox
from robot_rl.ros import convert
from robot_rl.ros.clients import RosArm, RosCamera, RosConnection
from robot_rl.sim.tasks import TASKS

#: Task without a simulator (a real setup): no privileged state, no sim reset.
NO_SIM_TASK = "none"
#: Privileged observation entries (name, size) of each task, in the order the sim node publishes
#: them: the sim tasks' own ``OBSERVATION_LAYOUT``.
TASK_OBSERVATIONS: dict[str, tuple[tuple[str, int], ...]] = {
    **{name: cls.OBSERVATION_LAYOUT for name, cls in TASKS.items()}, NO_SIM_TASK: ()}


def _sim_task_config(task: str) -> Any:
    """The sim task's default config (workspace box, episode length); the pick-and-lift task's for
    ``task="none"``."""
    return TASKS.get(task, TASKS["pick_lift"]).default_config()


class RosTask(Task):
    """Task state over ``/task/state`` and episode resets over ``/sim/reset`` (see the module docstring).

    Args:
        connection: the shared node.
        task: ``pick_lift``, ``push`` (sim tasks, privileged state from the sim node) or ``none``.
        arm: task state is read with the stamp of this arm's newest state.
        max_episode_steps: truncation length in control steps; None: the sim task's episode length
            (:class:`~robot_rl.interfaces.Task`'s default for ``task="none"``).
        success_topic: for ``task="none"``: a ``std_msgs/Bool`` topic that says success.
        reset_timeout_s: how long a sim reset may take, seconds.
        state_timeout_s: how long to wait for the task state that goes with the arm's newest
            state, seconds (the sim node publishes both in the same tick, task state first; a
            busy machine can delay it, a missing one is an error).

    Attributes:
        task_class_name: the sim task class mirrored (``PickLiftTask``, ``PushTask``; ``RosTask``
            for ``none``), which names the scripted controller (``robot_rl.sim.scripted``).
    """

    def __init__(self, connection: RosConnection, task: str, arm: RosArm, max_episode_steps: int | None = None,
                 success_topic: str = "", reset_timeout_s: float = 10.0, state_timeout_s: float = 5.0) -> None:
        if task not in TASK_OBSERVATIONS:
            raise ConfigError(f"unknown task {task!r}; use one of {sorted(TASK_OBSERVATIONS)}.")
        self.c, self.task, self.arm = connection, task, arm
        self.task_class_name = TASKS[task].__name__ if task in TASKS else type(self).__name__
        if max_episode_steps is not None:
            self.max_episode_steps = max_episode_steps
        elif task in TASKS:
            self.max_episode_steps = _sim_task_config(task).max_episode_steps
        self.reset_timeout_s, self.state_timeout_s = reset_timeout_s, state_timeout_s
        self._states: dict[float, tuple[bool, dict, dict]] = {}
        self._reset_done: set[int] = set()  # request ids answered
        self._success = False
        node = connection.node
        if task != NO_SIM_TASK:
            node.create_subscription("std_msgs/msg/Float64MultiArray", convert.TASK_STATE, self._on_state, 50)
            self._reset_done_sub = node.create_subscription(convert.RESET_TYPE, convert.RESET_DONE, self._on_reset_done)
            self._reset_pub = node.create_publisher(convert.RESET_TYPE, convert.RESET_REQUEST)
        elif success_topic:
            node.create_subscription("std_msgs/msg/Bool", success_topic, self._on_success)

    def _on_state(self, msg: Any) -> None:
        stamp, success, obs, terms = convert.task_state_from_msg(msg)
        self._states[stamp] = (success, obs, terms)
        while len(self._states) > 20:
            self._states.pop(next(iter(self._states)))
        self.c.notify()

    def _on_reset_done(self, msg: Any) -> None:
        try:
            self._reset_done.add(convert.reset_from_msg(msg)[0])
        except WireError:
            return  # not an answer of ours
        self.c.notify()

    def _on_success(self, msg: Any) -> None:
        self._success = bool(msg.data)

    def _current(self) -> tuple[bool, dict, dict]:
        if self.task == NO_SIM_TASK:
            return self._success, {}, {}
        stamp = self.arm.state().stamp
        # the task state carries its stamp as float64 seconds, the arm state as sec + nanosec:
        # match within 10 us (float64 resolves ~0.24 us at today's epoch; ticks are >= 1 ms apart)
        match = lambda: next((k for k in reversed(list(self._states)) if abs(k - stamp) < 1e-5), None)  # noqa: E731
        if not self.c.wait_for(lambda: match() is not None, self.state_timeout_s):
            newest = max(list(self._states), default=None)
            raise DeviceUnavailableError(f"no {convert.TASK_STATE} for the arm state stamped {stamp:.6f} within {self.state_timeout_s:g} s "
                                         f"(newest task state: {'none' if newest is None else f'{newest:.6f}'}); "
                                         "is the sim node publishing its task state (publish_task_state)?")
        return self._states[match()]

    def initialize_episode(self, rng: np.random.Generator) -> None:
        """Reset the sim with a seed drawn from ``rng``; wait for its reply and the new state.

        Raises:
            DeviceUnavailableError: the sim node did not answer within ``reset_timeout_s``.
        """
        self._success = False
        if self.task == NO_SIM_TASK:
            return
        seed = int(rng.integers(0, 2**62))
        request_id = secrets.randbits(62)  # unique per reset: a repeated seed is still a new episode
        request = convert.reset_msg(request_id, seed)
        self._reset_done.clear()  # late answers to earlier requests
        sent = time.time()
        deadline = time.monotonic() + self.reset_timeout_s
        # only the sim node publishes reset_done: wait until it is matched, not just any subscriber
        # of /sim/reset (a recorder); then repeat the request until answered (discovery of our
        # writer by the sim's reader may lag; the sim resets once per request id and re-answers repeats)
        if not self.c.wait_for(lambda: self._reset_done_sub.get_publisher_count() > 0, self.reset_timeout_s):
            raise DeviceUnavailableError(f"no sim node publishes {convert.RESET_DONE} within {self.reset_timeout_s} s; start the sim node "
                                         "(robot-rl bringup config/sim.yaml) on this ROS domain.")
        while True:
            self._reset_pub.publish(request)
            if self.c.wait_for(lambda: request_id in self._reset_done, 0.5):
                break
            if time.monotonic() > deadline:
                raise DeviceUnavailableError(f"the sim node did not answer the reset on {convert.RESET_DONE} within {self.reset_timeout_s} s.")
        self._reset_done.discard(request_id)
        self.arm.wait_for_state_after(sent)

    def get_observation(self) -> dict[str, np.ndarray]:
        """Privileged entries of :data:`TASK_OBSERVATIONS` for the current arm state (float32)."""
        layout = TASK_OBSERVATIONS[self.task]
        if not layout:
            return {}
        _, obs, _ = self._current()
        missing = [k for k, _ in layout if k not in obs]
        if missing:
            raise ConfigError(f"/task/state lacks {missing}; is the sim node running the {self.task} task?")
        return {k: obs[k] for k, _ in layout}

    def is_success(self) -> bool:
        """Success as the sim (or the success topic) reports it for the current arm state."""
        return self._current()[0]

    def get_reward_terms(self) -> dict[str, float]:
        """The sim's dense reward terms for the current arm state."""
        return dict(self._current()[2])


class _PlaceholderTask(Task):
    """Gives RobotEnv the observation layout at construction without waiting for any topic."""

    def __init__(self, task: str, max_episode_steps: int) -> None:
        self.layout = TASK_OBSERVATIONS[task]
        self.max_episode_steps = max_episode_steps

    def initialize_episode(self, rng: np.random.Generator) -> None:  # pragma: no cover - never called
        raise NotImplementedError

    def get_observation(self) -> dict[str, np.ndarray]:
        return {k: np.zeros(n, np.float32) for k, n in self.layout}

    def is_success(self) -> bool:  # pragma: no cover - never called
        return False


class RosRobotEnv(RobotEnv):
    """:class:`RobotEnv` over ROS 2 topics (see the module docstring); the entry point of the
    ``robot_rl/RosPanda*-v0`` IDs.

    Args:
        task: a sim node task (:data:`robot_rl.sim.tasks.TASKS`: ``pick_lift``, ``push``) or ``none``
            (a real setup).
        cameras: camera names (``/camera/<name>/...`` topics) whose frames form ``obs["images"]``.
        image_size: expected image height and width, pixels (int or (H, W)).
        control_hz: step rate, Hz (the sim node's ``control_rate_hz``).
        privileged_state: append the sim's object poses to ``state`` (sim only).
        reset: ``"sim"``: episodes start with a ``/sim/reset``; ``"home"``: the arm drives to
            ``home_position_m`` and the scene is not reset (a person or script resets it).
        workspace: ``(low, high)`` box, metres, base frame, targets are clipped into (default: the
            sim task's ``workspace``, the pick-and-lift task's for ``task="none"``).
        workspace_file: a parameter file from ``robot-rl calibrate workspace`` (the arm node's box).
        home_position_m: TCP home position for ``reset="home"``, metres, base frame.
        sync_tolerance_s: camera-behind-arm offset accepted, seconds (0 for the sim node).
        resize_images: resize camera frames to ``image_size`` (False: a size mismatch is an error).
        node_name: this client's node name.
        max_episode_steps: see :class:`RosTask` (the registered IDs use the sim task's).
        kwargs: the remaining :class:`RobotEnv` arguments (``reward_type``, ``enable_yaw``,
            ``max_ee_step_m``, ...).

    Raises:
        ConfigError: unknown task or reset mode.
    """

    def __init__(self, task: str = "pick_lift", cameras: Sequence[str] = (), image_size: int | tuple[int, int] = 128,
                 control_hz: float = 10.0, privileged_state: bool = True, reset: str = "sim",
                 workspace: tuple[Sequence[float], Sequence[float]] | None = None, workspace_file: str = "",
                 home_position_m: Sequence[float] = (0.5, 0.0, 0.2),
                 sync_tolerance_s: float = 0.0, resize_images: bool = True, success_topic: str = "", node_name: str = "robot_rl_env",
                 max_episode_steps: int | None = None, **kwargs: Any) -> None:
        if task not in TASK_OBSERVATIONS:
            raise ConfigError(f"unknown task {task!r}; use one of {sorted(TASK_OBSERVATIONS)}.")
        if reset not in ("sim", "home"):
            raise ConfigError(f"reset must be 'sim' or 'home', got {reset!r}.")
        if reset == "sim" and task == NO_SIM_TASK:
            raise ConfigError(f"reset='sim' needs a sim task (one of {sorted(TASKS)}); use reset='home' on a real setup.")
        height, width = (image_size, image_size) if np.isscalar(image_size) else image_size
        if workspace_file:
            from robot_rl.calibration.workspace import load_workspace_yaml

            box = load_workspace_yaml(workspace_file)
        elif workspace is not None:
            box = WorkspaceBox(tuple(workspace[0]), tuple(workspace[1]))
        else:
            box = _sim_task_config(task).workspace
        self.connection = RosConnection(node_name)
        try:
            arm = RosArm(self.connection, control_hz, box, home_position_m, home_by_reset=reset == "sim")
            cams = [RosCamera(self.connection, name, height, width, arm, sync_tolerance_s, resize=resize_images) for name in cameras]
            task_client = RosTask(self.connection, task, arm, max_episode_steps, success_topic,
                                  state_timeout_s=arm.state_timeout_s)
            super().__init__(arm, cams, _PlaceholderTask(task, task_client.max_episode_steps),
                             privileged_state=privileged_state, **kwargs)
            self.task = task_client
        except Exception:
            self.connection.close()
            raise

    def close(self) -> None:
        """Stop streaming commands and leave the ROS graph. Idempotent."""
        super().close()
        self.connection.close()
