"""``RobotEnv``: a gymnasium environment composed of one Arm, N Cameras and a Task.

Backend-agnostic: the same class runs the MuJoCo simulation (:mod:`robot_rl.sim.mujoco`) and,
later, real hardware (:mod:`robot_rl.drivers`), because it only talks to the interfaces of
:mod:`robot_rl.interfaces`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.interfaces import Arm, ArmCommand, ArmState, Camera, Task, tool_down_quaternion, tool_yaw_rad  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

#: Names and sizes of the proprioceptive entries at the start of ``obs["state"]``.
PROPRIO_LAYOUT: tuple[tuple[str, int], ...] = (
    ("ee_position", 3),  # TCP position, metres, base frame
    ("ee_linear_velocity", 3),  # TCP linear velocity, m/s, base frame
    ("ee_yaw_cos_sin", 2),  # cos and sin of the tool yaw about the base z axis
    ("gripper", 1),  # opening in [0, 1], 0 closed
)


class RobotEnv(gym.Env):
    """End-effector delta control of an arm with a parallel gripper, observed by cameras.

    Observation (``gymnasium.spaces.Dict``):
        * ``state``: (S,) float32, the proprioception of :data:`PROPRIO_LAYOUT` followed, when
          ``privileged_state`` is True, by the task's observation entries (see
          :attr:`state_layout`);
        * ``images``: ``{camera name: (H, W, 3) uint8}``, present only when there are cameras.

    Action: ``Box(-1, 1, (4,) or (5,), float32)``: TCP displacement x, y, z (times
    ``max_ee_step_m`` metres per step, base frame), the yaw change (times ``max_yaw_step_rad``,
    only with ``enable_yaw``), then the gripper: with ``binary_gripper`` (default) ``a > 0`` opens
    fully and ``a <= 0`` closes, as a real parallel gripper is usually commanded (open / grasp);
    otherwise the target opening is ``(a + 1) / 2``. The target is the measured TCP position plus the displacement, clipped into
    the arm's workspace box; with yaw disabled the tool keeps its yaw at reset.

    Reward: ``"sparse"``: 1.0 on success, else 0.0, and the episode terminates on success;
    ``"dense"``: the sum of the task's named reward terms (each also in ``info``), no
    termination on success. ``info`` always has ``is_success`` (bool) and the reward terms.

    Args:
        arm: the arm; its ``control_hz`` sets the step rate.
        cameras: cameras whose frames form ``obs["images"]`` (names must be unique).
        task: reset distribution, success check and reward terms.
        reward_type: ``"sparse"`` or ``"dense"``.
        enable_yaw: add the yaw action (5-D actions instead of 4-D).
        binary_gripper: gripper action thresholded at 0 into open / close (HIL-SERL treats the
            gripper as discrete for the same reason: a Gaussian policy centred near 0 would hold
            a continuous gripper half open and never grasp).
        privileged_state: append the task's observation entries (true object poses) to ``state``.
        max_ee_step_m: TCP displacement in metres of a full action (1.0) per step.
        max_yaw_step_rad: yaw change in radians of a full action per step.
        max_abs_yaw_rad: the commanded tool yaw is clipped to +-this.
        render_mode: ``None`` or ``"rgb_array"``.
        render_camera: camera for ``render()``; defaults to the camera named ``front`` (or the
            first camera).

    Raises:
        ConfigError: unknown reward type or render mode, duplicate camera names, or no camera
            to render with.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, arm: Arm, cameras: Sequence[Camera], task: Task, *, reward_type: str = "sparse",
                 enable_yaw: bool = False, binary_gripper: bool = True, privileged_state: bool = True,
                 max_ee_step_m: float = 0.03,
                 max_yaw_step_rad: float = 0.2, max_abs_yaw_rad: float = np.pi / 2,
                 render_mode: str | None = None, render_camera: Camera | None = None):
        if reward_type not in ("sparse", "dense"):
            raise ConfigError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        names = [c.name for c in cameras]
        if len(set(names)) != len(names):
            raise ConfigError(f"camera names must be unique, got {names}")
        self.arm, self.task = arm, task
        self.cameras = {c.name: c for c in cameras}
        self.reward_type, self.enable_yaw, self.privileged_state = reward_type, enable_yaw, privileged_state
        self.binary_gripper = binary_gripper
        self.max_ee_step_m, self.max_yaw_step_rad, self.max_abs_yaw_rad = max_ee_step_m, max_yaw_step_rad, max_abs_yaw_rad
        self.render_mode = render_mode
        self.render_camera = render_camera or self.cameras.get("front") or next(iter(self.cameras.values()), None)
        if render_mode == "rgb_array" and self.render_camera is None:
            raise ConfigError("render_mode='rgb_array' needs a camera: pass render_camera or a camera named 'front'")
        self.metadata = {**self.metadata, "render_fps": arm.control_hz}
        self.control_hz = arm.control_hz
        self.max_episode_steps = task.max_episode_steps

        self.state_layout: tuple[tuple[str, int], ...] = PROPRIO_LAYOUT + (
            tuple((k, int(np.size(v))) for k, v in task.get_observation().items()) if privileged_state else ())
        state_dim = sum(n for _, n in self.state_layout)
        spaces: dict[str, gym.Space] = {"state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}
        if self.cameras:
            spaces["images"] = gym.spaces.Dict({
                name: gym.spaces.Box(0, 255, (c.intrinsics.height, c.intrinsics.width, 3), np.uint8)
                for name, c in self.cameras.items()})
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (5 if enable_yaw else 4,), np.float32)
        self._home_yaw_rad = 0.0
        self.episode_step = 0
        self.last_command: ArmCommand | None = None

    # ------------------------------------------------------------------ observation
    def _state_vector(self, s: ArmState) -> np.ndarray:
        yaw = tool_yaw_rad(s.ee_quaternion)
        parts = [s.ee_position, s.ee_velocity[:3], [np.cos(yaw), np.sin(yaw)], [s.gripper]]
        if self.privileged_state:
            parts.extend(np.ravel(v) for v in self.task.get_observation().values())
        return np.concatenate(parts).astype(np.float32)

    def _observation(self, s: ArmState) -> dict[str, Any]:
        obs: dict[str, Any] = {"state": self._state_vector(s)}
        if self.cameras:
            obs["images"] = {name: c.read().rgb for name, c in self.cameras.items()}
        return obs

    def _info(self) -> dict[str, Any]:
        return {"is_success": bool(self.task.is_success()), **self.task.get_reward_terms()}

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Home the arm, randomise the task with the env's ``np_random``; returns ``(obs, info)``."""
        super().reset(seed=seed)
        self.arm.home()
        self.task.initialize_episode(self.np_random)
        self.episode_step = 0
        self.last_command = None
        state = self.arm.state()
        self._home_yaw_rad = tool_yaw_rad(state.ee_quaternion)
        return self._observation(state), self._info()

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Execute one control period.

        Args:
            action: (4,) or (5,) array in [-1, 1] (values outside are clipped), see the class doc.

        Returns:
            ``(obs, reward, terminated, truncated, info)``; ``truncated`` is True only when the
            simulator diverged (``info["sim_unstable"]``; the episode length limit comes from
            gymnasium's ``TimeLimit`` wrapper).

        Raises:
            ValueError: the action has the wrong shape.
        """
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {a.shape}")
        a = np.clip(a, -1.0, 1.0)
        s = self.arm.state()
        target = s.ee_position + a[:3] * self.max_ee_step_m
        if self.enable_yaw:
            yaw = tool_yaw_rad(s.ee_quaternion) + a[3] * self.max_yaw_step_rad
        else:
            yaw = self._home_yaw_rad
        yaw = float(np.clip(yaw, -self.max_abs_yaw_rad, self.max_abs_yaw_rad))
        gripper = float(a[-1] > 0.0) if self.binary_gripper else float((a[-1] + 1.0) / 2.0)
        self.last_command = self.arm.command(ArmCommand.tool_down(target, yaw, gripper))
        self.episode_step += 1
        info = self._info()
        success = info["is_success"]
        if self.reward_type == "sparse":
            reward, terminated = float(success), bool(self.task.get_termination())
        else:
            terms = [v for k, v in info.items() if k != "is_success"]
            reward, terminated = float(sum(terms)), bool(self.task.get_termination() and not success)
        truncated = False
        if getattr(self.arm, "sim_unstable", False):
            # the simulator diverged and reset its state: end the episode (truncated, so the learner
            # bootstraps and no reward is credited) and say so
            truncated, info["sim_unstable"] = True, True
            logger.warning("the simulation diverged at step %d (MuJoCo reset its state); episode truncated", self.episode_step)
        return self._observation(self.arm.state()), reward, terminated, truncated, info

    def action_from_twist(self, twist: np.ndarray, gripper: float | None, previous_action: np.ndarray | None = None
                          ) -> np.ndarray:
        """Convert a teleop command (EE twist + gripper opening) into this env's action.

        The linear part is integrated over one control period (``twist * dt`` metres) and
        divided by ``max_ee_step_m``; the yaw rate (``twist[5]``, rad/s about the base z axis)
        likewise by ``max_yaw_step_rad`` when ``enable_yaw``. Roll and pitch rates are ignored
        (the tool stays pointing down). Both are clipped to [-1, 1]: a twist faster than one
        full action per step saturates.

        Args:
            twist: (6,) float, linear m/s then angular rad/s, robot base frame.
            gripper: desired opening in [0, 1] (1 = open); None keeps the gripper action of
                ``previous_action`` (open when there is none).
            previous_action: (A,) the last action sent, for ``gripper=None``.

        Returns:
            (A,) float32 action in [-1, 1]; the binary gripper gets +1 (open) or -1 (close).

        Raises:
            ValueError: ``twist`` is not 6 numbers.
        """
        tw = np.asarray(twist, dtype=np.float64).reshape(-1)
        if tw.shape != (6,):
            raise ValueError(f"twist must have 6 entries (vx, vy, vz m/s, wx, wy, wz rad/s), got shape {np.shape(twist)}")
        dt = 1.0 / self.control_hz
        parts = list(np.clip(tw[:3] * dt / self.max_ee_step_m, -1.0, 1.0))
        if self.enable_yaw:
            parts.append(float(np.clip(tw[5] * dt / self.max_yaw_step_rad, -1.0, 1.0)))
        if gripper is None:
            g = float(previous_action[-1]) if previous_action is not None else 1.0
        elif self.binary_gripper:
            g = 1.0 if gripper > 0.5 else -1.0
        else:
            g = float(np.clip(2.0 * gripper - 1.0, -1.0, 1.0))
        parts.append(g)
        return np.asarray(parts, dtype=np.float32)

    def twist_from_action(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        """Inverse of :meth:`action_from_twist`: ``(twist (6,) float64 m/s and rad/s, gripper opening 0..1)``.

        Lets scripted controllers, which produce actions, stand in for a human behind the
        :class:`~robot_rl.interfaces.Teleop` interface.
        """
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        twist = np.zeros(6)
        twist[:3] = a[:3] * self.max_ee_step_m * self.control_hz
        if self.enable_yaw:
            twist[5] = a[3] * self.max_yaw_step_rad * self.control_hz
        gripper = float(a[-1] > 0.0) if self.binary_gripper else float((a[-1] + 1.0) / 2.0)
        return twist, gripper

    def render(self) -> np.ndarray | None:
        """(H, W, 3) uint8 frame of the render camera when ``render_mode="rgb_array"``, else None."""
        if self.render_mode != "rgb_array":
            return None
        return self.render_camera.read().rgb

    def close(self) -> None:
        """Stop the arm and close the cameras and the arm. Idempotent."""
        self.arm.stop()
        for cam in {*self.cameras.values(), *([self.render_camera] if self.render_camera else [])}:
            cam.close()
        self.arm.close()
