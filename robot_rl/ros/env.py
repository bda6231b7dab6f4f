"""``RosRobotEnv``: the gymnasium env over the camera and arm nodes' ROS 2 topics.

The same :class:`~robot_rl.env.RobotEnv` that runs a simulator in-process, with topic clients as
its arm, cameras and task, so an actor (``robot-rl actor``, ``robot-rl eval``, a scripted
controller) runs unchanged against the sim node (:mod:`robot_rl.sim.node`) or the real nodes:

* :class:`RosArm` caches the newest ``/joint_states`` + ``/arm/ee_pose`` + ``/arm/ee_twist`` +
  ``/arm/wrench`` of one stamp; ``command()`` publishes the pose target on
  ``/arm/equilibrium_pose`` and the gripper on ``/arm/gripper_cmd``, keeps re-sending them at
  ``command_rate_hz`` (so the arm node's 0.1 s command timeout holds the arm only when this
  process stops), and returns once a state newer than the command has arrived and one control
  period has passed;
* :class:`RosCamera` caches the newest ``/camera/<cam>/color/image_raw`` (+ ``camera_info``);
  ``read()`` returns the newest frame no older than the arm state it goes with (minus
  ``sync_tolerance_s``): time synchronisation by stamps;
* :class:`RosTask` reads the sim's ``/task/state`` (privileged object poses, success, reward
  terms) with the same stamp as the arm state, and resets the sim through ``/sim/reset``.
  Without a simulator (``task="none"``) it has no privileged state; success can come from a
  ``std_msgs/Bool`` topic (a reward node).

Every wait has a timeout and a clear error that names the missing topic (stale data is never
used silently: a state older than ``stale_after_s`` is an error).

Gymnasium IDs ``robot_rl/RosPandaPickLift-v0``, ``robot_rl/RosPandaPickLiftPixels-v0``,
``robot_rl/RosPandaPush-v0``, ``robot_rl/RosPandaPushPixels-v0`` mirror the sim IDs (same
observation and action spaces, same episode lengths); building one needs no running node.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from robot_rl.env import RobotEnv
from robot_rl.errors import ConfigError, DeviceUnavailableError, WireError
from robot_rl.interfaces import Arm, ArmCommand, ArmState, Camera, CameraIntrinsics, Frame, Task, WorkspaceBox
from robot_rl.ros import convert
from robot_rl.ros.node import Node, stamp_to_seconds

#: Privileged observation entries (name, size) of the sim tasks, in the order the sim publishes
#: them; ``tests/test_ros_env.py`` checks them against the sim tasks.
TASK_OBSERVATIONS: dict[str, tuple[tuple[str, int], ...]] = {
    "pick_lift": (("cube_position", 3), ("cube_quaternion", 4), ("cube_minus_tcp", 3)),
    "push": (("cube_position", 3), ("cube_quaternion", 4), ("target_position", 3), ("cube_minus_tcp", 3),
             ("target_minus_cube", 3)),
    "none": (),
}
#: Scripted-controller name (``robot_rl.sim.scripted.SCRIPTED_POLICIES``) of each task.
TASK_CLASS_NAMES = {"pick_lift": "PickLiftTask", "push": "PushTask", "none": "RosTask"}
#: Workspace boxes of the sim tasks (metres, base frame), for clipping before sending.
DEFAULT_WORKSPACE = WorkspaceBox((0.35, -0.2, 0.01), (0.65, 0.2, 0.3))


class _Connection:
    """One node shared by the env's arm, cameras and task, spinning in a daemon thread."""

    def __init__(self, node_name: str, namespace: str = "") -> None:
        self.node = Node(node_name, namespace=namespace)
        self.cond = threading.Condition()
        self.thread = self.node.spin_in_thread()

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, predicate: Any, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.05))
        return True

    def close(self) -> None:
        self.node.shutdown()


class RosArm(Arm):
    """Arm over the arm node's topics (see the module docstring).

    Args:
        connection: the shared node.
        control_hz: rate of :meth:`command` (one control period per call), Hz.
        workspace: box (base frame, metres) targets are clipped into before sending (the arm
            node enforces its own box as well).
        command_rate_hz: re-send rate of the current target, Hz (must beat the arm node's
            command timeout: 50 Hz against 0.1 s).
        stale_after_s: a newest state older than this is an error, seconds.
        state_timeout_s: how long :meth:`command` and the first :meth:`state` wait, seconds.
        home_position_m: TCP home position for :meth:`home` when not homed by a sim reset.
        home_by_reset: :meth:`home` does nothing because the sim's reset homes the arm.
    """

    def __init__(self, connection: _Connection, control_hz: float = 10.0, workspace: WorkspaceBox = DEFAULT_WORKSPACE,
                 command_rate_hz: float = 50.0, stale_after_s: float = 1.0, state_timeout_s: float = 5.0,
                 home_position_m: Sequence[float] = (0.5, 0.0, 0.2), home_by_reset: bool = True) -> None:
        self.c, self.control_hz, self.workspace = connection, float(control_hz), workspace
        self.stale_after_s, self.state_timeout_s = stale_after_s, state_timeout_s
        self.home_position_m, self.home_by_reset = np.asarray(home_position_m, np.float64), home_by_reset
        node = connection.node
        self._parts: dict[str, dict[float, Any]] = {k: {} for k in ("joint_states", "ee_pose", "ee_twist", "wrench")}
        self._state: ArmState | None = None
        self._state_received = 0.0
        self._lock = threading.Lock()
        for key, typename, topic in (("joint_states", "sensor_msgs/msg/JointState", convert.JOINT_STATES),
                                     ("ee_pose", "geometry_msgs/msg/PoseStamped", convert.EE_POSE),
                                     ("ee_twist", "geometry_msgs/msg/TwistStamped", convert.EE_TWIST),
                                     ("wrench", "geometry_msgs/msg/WrenchStamped", convert.WRENCH)):
            node.create_subscription(typename, topic, lambda m, k=key: self._on_part(k, m), 50)
        self._pose_pub = node.create_publisher("geometry_msgs/msg/PoseStamped", convert.POSE_CMD)
        self._gripper_pub = node.create_publisher("std_msgs/msg/Float64", convert.GRIPPER_CMD)
        self._target: ArmCommand | None = None
        self._next_tick = 0.0
        node.create_timer(1.0 / command_rate_hz, self._resend)

    # -- receiving ----------------------------------------------------------------------------------

    def _on_part(self, key: str, msg: Any) -> None:
        stamp = stamp_to_seconds(msg.header.stamp)
        with self._lock:
            parts = self._parts[key]
            parts[stamp] = msg
            while len(parts) > 20:
                parts.pop(next(iter(parts)))
            complete = [s for s in self._parts["joint_states"] if s in self._parts["ee_pose"]]
            if not complete:
                return
            newest = max(complete)
            if self._state is not None and newest <= self._state.stamp:
                return
            self._state = convert.arm_state_from_msgs(
                self._parts["joint_states"][newest], self._parts["ee_pose"][newest],
                self._parts["ee_twist"].get(newest), self._parts["wrench"].get(newest))
            self._state_received = time.time()
        self.c.notify()

    def wait_for_state_after(self, t: float, timeout_s: float | None = None) -> ArmState:
        """Block until a state stamped after ``t`` (seconds, wall clock) arrived; return it.

        Raises:
            DeviceUnavailableError: none within ``timeout_s`` (default ``state_timeout_s``).
        """
        timeout_s = self.state_timeout_s if timeout_s is None else timeout_s
        if not self.c.wait_for(lambda: self._state is not None and self._state.stamp > t, timeout_s):
            have = "never received" if self._state is None else f"newest is {time.time() - self._state.stamp:.2f} s old"
            raise DeviceUnavailableError(
                f"no arm state on {convert.JOINT_STATES} + {convert.EE_POSE} within {timeout_s:.1f} s ({have}); "
                "is the arm node or sim node running on this ROS domain (ROS_DOMAIN_ID) and active?")
        return self._state

    def state(self) -> ArmState:
        """The newest complete arm state (waits for the first one).

        Raises:
            DeviceUnavailableError: no state yet within ``state_timeout_s``, or the newest is
                older than ``stale_after_s`` (the arm node stopped publishing).
        """
        if self._state is None:
            return self.wait_for_state_after(-np.inf)
        age = time.time() - self._state_received
        if age > self.stale_after_s:
            raise DeviceUnavailableError(
                f"arm state is stale: nothing new on {convert.JOINT_STATES} for {age:.2f} s (limit {self.stale_after_s} s); "
                "the arm node stopped publishing or was deactivated.")
        return self._state

    # -- commanding ---------------------------------------------------------------------------------

    def _send(self, cmd: ArmCommand) -> None:
        now = time.time()
        self._gripper_pub.publish(convert.gripper_command_msg(cmd.gripper))
        self._pose_pub.publish(convert.pose_command_msg(cmd, now))

    def _resend(self) -> None:
        target = self._target
        if target is not None:
            self._send(target)

    def command(self, cmd: ArmCommand) -> ArmCommand:
        """Send a target for one control period and return when it has been applied (see class doc).

        Args:
            cmd: TCP target (metres, base frame; clipped into :attr:`workspace`), tool yaw (rad),
                gripper opening in [0, 1].

        Returns:
            The command sent, after clipping.

        Raises:
            DeviceUnavailableError: no arm state newer than the command within ``state_timeout_s``.
        """
        target = ArmCommand(ee_target_position=self.workspace.clip(cmd.ee_target_position),
                            ee_target_yaw=float(cmd.ee_target_yaw), gripper=float(np.clip(cmd.gripper, 0.0, 1.0)))
        sent_at = time.time()
        self._target = target
        self._send(target)
        self._next_tick = max(self._next_tick + 1.0 / self.control_hz, time.monotonic())
        self.wait_for_state_after(sent_at)
        delay = self._next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return target

    def stop_streaming(self) -> None:
        """Stop re-sending the last target (the arm node then holds after its command timeout)."""
        self._target = None

    def home(self) -> None:
        """Move to the home pose: a sim reset does it (``home_by_reset``), else a pose target and a wait."""
        self.stop_streaming()
        if self.home_by_reset:
            return
        start = self.state()
        target = ArmCommand(self.workspace.clip(self.home_position_m), 0.0, 1.0)
        deadline = time.monotonic() + 15.0
        while np.linalg.norm(self.state().ee_position - target.ee_target_position) > 0.01:
            if time.monotonic() > deadline:
                raise DeviceUnavailableError(f"arm did not reach home {target.ee_target_position} m within 15 s (from {start.ee_position}).")
            self.command(target)
        self.stop_streaming()

    def stop(self) -> None:
        """Hold: stop sending targets (the arm node holds position after its command timeout)."""
        self.stop_streaming()


class RosCamera(Camera):
    """Camera over the camera (or sim) node's image and camera_info topics.

    Args:
        connection: the shared node.
        name: camera name (topics ``/camera/<name>/color/...``).
        height, width: expected image size in pixels (the observation space); a different
            received size is a ConfigError.
        arm: frames are synchronised to this arm's newest state: :meth:`read` waits for a frame
            stamped no earlier than ``state.stamp - sync_tolerance_s``.
        sync_tolerance_s: allowed camera-behind-arm offset, seconds (0 for the sim node, whose
            frames carry the arm state's stamp).
        timeout_s: how long :meth:`read` waits, seconds.
        qos: subscription QoS (``"sensor"`` matches best-effort and reliable publishers).
        resize: resize frames of another size to ``(height, width)`` (OpenCV ``INTER_AREA``, as
            HIL-SERL resizes its cameras to 128x128); False makes a size mismatch an error.
    """

    def __init__(self, connection: _Connection, name: str, height: int, width: int, arm: RosArm | None = None,
                 sync_tolerance_s: float = 0.0, timeout_s: float = 2.0, qos: str = "sensor", resize: bool = True) -> None:
        self.c, self.name, self.arm, self.resize = connection, name, arm, resize
        self.sync_tolerance_s, self.timeout_s = sync_tolerance_s, timeout_s
        self._expected = (int(height), int(width))
        self._frames: deque = deque(maxlen=8)
        self._info: CameraIntrinsics | None = None
        topics = convert.camera_topics(name)
        self.topics = topics
        connection.node.create_subscription("sensor_msgs/msg/Image", topics["image"], self._on_image, qos)
        connection.node.create_subscription("sensor_msgs/msg/CameraInfo", topics["info"], self._on_info, qos)

    def _on_image(self, msg: Any) -> None:
        self._frames.append(msg)
        self.c.notify()

    def _on_info(self, msg: Any) -> None:
        self._info = convert.intrinsics_from_camera_info(msg)

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """From ``camera_info`` once received; before that a placeholder of the expected size."""
        if self._info is not None:
            return self._info
        h, w = self._expected
        return CameraIntrinsics(width=w, height=h, K=np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1.0]]))

    def read(self) -> Frame:
        """The newest frame synchronised to the arm state (see class doc).

        Raises:
            TimeoutError: no such frame within ``timeout_s``.
            ConfigError: the frame size differs from the observation space's.
        """
        t_min = -np.inf
        if self.arm is not None and self.arm._state is not None:
            t_min = self.arm._state.stamp - self.sync_tolerance_s - 1e-6
        newest = lambda: self._frames[-1] if self._frames else None  # noqa: E731
        ok = self.c.wait_for(lambda: newest() is not None and stamp_to_seconds(newest().header.stamp) >= t_min, self.timeout_s)
        if not ok:
            raise TimeoutError(f"no frame on {self.topics['image']} stamped at or after the arm state within {self.timeout_s} s; "
                               "is the camera (or sim) node publishing, with matching QoS?")
        frame = convert.frame_from_msgs(newest())
        if frame.rgb.shape[:2] != self._expected:
            if not self.resize:
                raise ConfigError(f"camera {self.name} publishes {frame.rgb.shape[1]}x{frame.rgb.shape[0]} images, the env expects "
                                  f"{self._expected[1]}x{self._expected[0]}; set image_size to match the camera node, or resize_images.")
            import cv2

            h, w = self._expected
            frame = Frame(rgb=cv2.resize(frame.rgb, (w, h), interpolation=cv2.INTER_AREA), stamp=frame.stamp, depth=frame.depth)
        return frame


class RosTask(Task):
    """Task state over ``/task/state`` and episode resets over ``/sim/reset`` (see the module docstring).

    Args:
        connection: the shared node.
        task: ``pick_lift``, ``push`` (sim tasks, privileged state from the sim node) or ``none``.
        arm: task state is read with the stamp of this arm's newest state.
        max_episode_steps: truncation length in control steps.
        success_topic: for ``task="none"``: a ``std_msgs/Bool`` topic that says success.
        reset_timeout_s: how long a sim reset may take, seconds.
    """

    def __init__(self, connection: _Connection, task: str, arm: RosArm, max_episode_steps: int = 100,
                 success_topic: str = "", reset_timeout_s: float = 10.0) -> None:
        if task not in TASK_OBSERVATIONS:
            raise ConfigError(f"unknown task {task!r}; use one of {sorted(TASK_OBSERVATIONS)}.")
        self.c, self.task, self.arm = connection, task, arm
        self.task_class_name = TASK_CLASS_NAMES[task]
        self.max_episode_steps = max_episode_steps
        self.reset_timeout_s = reset_timeout_s
        self._states: dict[float, tuple[bool, dict, dict]] = {}
        self._reset_done: set[int] = set()  # request ids answered
        self._success = False
        node = connection.node
        if task != "none":
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
        if self.task == "none":
            return self._success, {}, {}
        stamp = self.arm.state().stamp
        # the task state carries its stamp as float64 seconds, the arm state as sec + nanosec:
        # match within 10 us (float64 resolves ~0.24 us at today's epoch; ticks are >= 1 ms apart)
        match = lambda: next((k for k in reversed(list(self._states)) if abs(k - stamp) < 1e-5), None)  # noqa: E731
        if not self.c.wait_for(lambda: match() is not None, 2.0):
            raise DeviceUnavailableError(f"no {convert.TASK_STATE} for the arm state stamped {stamp:.6f} within 2 s; "
                                         "is the sim node publishing its task state (publish_task_state)?")
        return self._states[match()]

    def initialize_episode(self, rng: np.random.Generator) -> None:
        """Reset the sim with a seed drawn from ``rng``; wait for its reply and the new state.

        Raises:
            DeviceUnavailableError: the sim node did not answer within ``reset_timeout_s``.
        """
        self._success = False
        if self.task == "none":
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


def _task_workspace(task: str) -> WorkspaceBox:
    """The sim task's workspace box (the sim node enforces the same one)."""
    from robot_rl.sim.tasks import PickLiftConfig, PushConfig

    return {"pick_lift": PickLiftConfig, "push": PushConfig}.get(task, PickLiftConfig)().workspace


class _PlaceholderTask(Task):
    """Gives RobotEnv the observation layout at construction without waiting for any topic."""

    def __init__(self, task: str) -> None:
        self.layout = TASK_OBSERVATIONS[task]

    def initialize_episode(self, rng: np.random.Generator) -> None:  # pragma: no cover - never called
        raise NotImplementedError

    def get_observation(self) -> dict[str, np.ndarray]:
        return {k: np.zeros(n, np.float32) for k, n in self.layout}

    def is_success(self) -> bool:  # pragma: no cover - never called
        return False


class RosRobotEnv(RobotEnv):
    """:class:`RobotEnv` over ROS 2 topics (see the module docstring).

    Args:
        task: ``pick_lift``, ``push`` (sim node tasks) or ``none`` (a real setup).
        cameras: camera names (``/camera/<name>/...`` topics) whose frames form ``obs["images"]``.
        image_size: expected image height and width, pixels (int or (H, W)).
        control_hz: step rate, Hz (the sim node's ``control_rate_hz``).
        privileged_state: append the sim's object poses to ``state`` (sim only).
        reset: ``"sim"``: episodes start with a ``/sim/reset``; ``"home"``: the arm drives to
            ``home_position_m`` and the scene is not reset (a person or script resets it).
        workspace: ``(low, high)`` box, metres, base frame, targets are clipped into (default: the task's).
        workspace_file: a parameter file from ``robot-rl calibrate workspace`` (the arm node's box).
        sync_tolerance_s: camera-behind-arm offset accepted, seconds (0 for the sim node).
        resize_images: resize camera frames to ``image_size`` (False: a size mismatch is an error).
        node_name: this client's node name.
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
                 max_episode_steps: int = 100, **kwargs: Any) -> None:
        if task not in TASK_OBSERVATIONS:
            raise ConfigError(f"unknown task {task!r}; use one of {sorted(TASK_OBSERVATIONS)}.")
        if reset not in ("sim", "home"):
            raise ConfigError(f"reset must be 'sim' or 'home', got {reset!r}.")
        if reset == "sim" and task == "none":
            raise ConfigError("reset='sim' needs a sim task (pick_lift or push); use reset='home' on a real setup.")
        height, width = (image_size, image_size) if np.isscalar(image_size) else image_size
        if workspace_file:
            from robot_rl.calibration.workspace import load_workspace_yaml

            box = load_workspace_yaml(workspace_file)
        elif workspace is not None:
            box = WorkspaceBox(tuple(workspace[0]), tuple(workspace[1]))
        else:
            box = _task_workspace(task)
        self.connection = _Connection(node_name)
        try:
            arm = RosArm(self.connection, control_hz, box, home_position_m=home_position_m, home_by_reset=reset == "sim")
            cams = [RosCamera(self.connection, name, height, width, arm, sync_tolerance_s, resize=resize_images) for name in cameras]
            super().__init__(arm, cams, _PlaceholderTask(task), privileged_state=privileged_state, **kwargs)
            self.task = RosTask(self.connection, task, arm, max_episode_steps, success_topic)
        except Exception:
            self.connection.close()
            raise

    def close(self) -> None:
        """Stop streaming commands and leave the ROS graph. Idempotent."""
        super().close()
        self.connection.close()


def make_ros_env(task: str = "pick_lift", **kwargs: Any) -> RosRobotEnv:
    """Entry point of the ``robot_rl/RosPanda*-v0`` IDs (see :class:`RosRobotEnv`)."""
    return RosRobotEnv(task=task, **kwargs)
