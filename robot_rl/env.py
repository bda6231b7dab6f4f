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
from scipy.spatial.transform import Rotation

from robot_rl.errors import ConfigError
from robot_rl.interfaces import (
    Arm,
    ArmCommand,
    ArmState,
    Camera,
    Task,
    limit_tool_orientation,
    tool_down_quaternion,
    tool_yaw_rad,
)

logger = logging.getLogger(__name__)

#: Names and sizes of the proprioceptive entries at the start of ``obs["state"]``.
PROPRIO_LAYOUT: tuple[tuple[str, int], ...] = (
    ("ee_position", 3),  # TCP position, metres, base frame
    ("ee_linear_velocity", 3),  # TCP linear velocity, m/s, base frame
    ("ee_yaw_cos_sin", 2),  # cos and sin of the tool yaw about the base z axis
    ("gripper", 1),  # opening in [0, 1], 0 closed
)
#: Entry after :data:`PROPRIO_LAYOUT` with ``rotation="full"``: the tool orientation as the first two
#: columns of its rotation matrix (tool x then tool y axis, base frame); continuous, unlike Euler
#: angles or quaternions (Zhou et al. 2019, "On the Continuity of Rotation Representations in
#: Neural Networks", arXiv:1812.07035).
ROTATION_ENTRY: tuple[str, int] = ("ee_rotation_6d", 6)
#: Entry after those with ``wrench_in_state``: force (N) then torque about the TCP (N·m), tool frame,
#: measured by the (simulated) wrist F/T sensor (:meth:`ArmState.wrench_in_tool_frame`).
WRENCH_ENTRY: tuple[str, int] = ("ee_wrench", 6)
#: ``info`` keys of :meth:`RobotEnv.step` that are not reward terms (every other key is one).
NON_REWARD_INFO_KEYS = ("is_success", "ee_force_n", "ee_torque_nm", "force_limit_exceeded", "sim_unstable")
#: Rotation action layouts: none, a yaw change, or a base-frame rotation vector.
ROTATIONS = ("none", "yaw", "full")


class RobotEnv(gym.Env):
    """End-effector delta control of an arm with a parallel gripper, observed by cameras.

    Observation (``gymnasium.spaces.Dict``):
        * ``state``: (S,) float32, the proprioception of :data:`PROPRIO_LAYOUT`, then
          :data:`ROTATION_ENTRY` (``rotation="full"``) and :data:`WRENCH_ENTRY`
          (``wrench_in_state``), followed, when ``privileged_state`` is True, by the task's
          observation entries (see :attr:`state_layout`);
        * ``images``: ``{camera name: (H, W, 3) uint8}``, present only when there are cameras.

    Action: ``Box(-1, 1, (A,), float32)``, laid out as (:attr:`action_layout` names the entries)

    * ``dx, dy, dz``: TCP displacement, times ``max_ee_step_m`` metres per step, base frame;
    * ``rotation="yaw"``: ``dyaw``, the change of the tool yaw about base z, times
      ``max_rot_step_rad``; ``rotation="full"``: ``rx, ry, rz``, a rotation vector (axis-angle,
      radians = a x ``max_rot_step_rad``) **in the base frame**, applied as
      ``R_target = exp(r) · R_current``. Base frame because teleop devices give angular
      velocities in the base frame (a SpaceMouse, MoveIt Servo's ``TwistStamped`` in the planning
      frame), so :meth:`action_from_twist` is a plain scaling ``r = omega · dt``, and the policy's
      rotation axes do not turn with the tool; HIL-SERL composes its rotation deltas the same way
      (``Rotation.from_euler("xyz", a) * R_current``, serl_robot_infra ``franka_env.py``).
      ``rotation="none"``: the tool keeps pointing down at its yaw at reset;
    * ``gripper`` (only with ``gripper_action``): with ``binary_gripper`` (default) ``a > 0``
      opens fully and ``a <= 0`` closes, as a real parallel gripper is usually commanded (open /
      grasp); otherwise the target opening is ``(a + 1) / 2``. Without ``gripper_action`` the
      gripper is held at ``fixed_gripper_opening`` (insertion: the peg stays grasped).

    A 4-D ``[dx, dy, dz, gripper]`` action is the default (pick-and-lift). The target is the
    measured TCP pose plus the delta; the position is clipped into the arm's workspace box, the
    orientation (``"full"``) into the orientation workspace of :func:`limit_tool_orientation`
    (tilt of the tool z axis from pointing down <= ``max_tilt_rad``, yaw within
    ``+-max_abs_yaw_rad``), so no action sequence can command a pose outside them.

    Reward: ``"sparse"``: 1.0 on success, else 0.0, and the episode terminates on success;
    ``"dense"``: the sum of the task's named reward terms (each also in ``info``), no
    termination on success. ``info`` always has ``is_success`` (bool), the reward terms,
    ``ee_force_n`` and ``ee_torque_nm`` (magnitudes of the measured wrist wrench at the end of
    the step, N and N·m), and after a step ``force_limit_exceeded`` (bool). With
    ``max_contact_force_n``, a step whose measured force exceeds it terminates the episode as a
    failure (``is_success`` False, sparse reward 0, dense reward the task's terms of that step;
    ``force_limit_exceeded`` True).

    Args:
        arm: the arm; its ``control_hz`` sets the step rate.
        cameras: cameras whose frames form ``obs["images"]`` (names must be unique).
        task: reset distribution, success check and reward terms.
        reward_type: ``"sparse"`` or ``"dense"``.
        rotation: ``"none"``, ``"yaw"`` or ``"full"`` (see Action).
        enable_yaw: the former switch of ``rotation="yaw"``; True means ``rotation="yaw"``.
        gripper_action: the action ends with a gripper entry; False drops it.
        fixed_gripper_opening: the opening in [0, 1] the gripper is held at without
            ``gripper_action`` (0.0 = closed, for a held peg).
        binary_gripper: gripper action thresholded at 0 into open / close (HIL-SERL treats the
            gripper as discrete for the same reason: a Gaussian policy centred near 0 would hold
            a continuous gripper half open and never grasp).
        privileged_state: append the task's observation entries (true object poses) to ``state``.
        wrench_in_state: append :data:`WRENCH_ENTRY` (the wrist wrench, tool frame) to ``state``.
        max_ee_step_m: TCP displacement in metres of a full action (1.0) per step.
        max_rot_step_rad: rotation in radians of a full action per step (yaw or rotation vector
            per axis).
        max_yaw_step_rad: the former name of ``max_rot_step_rad`` for the yaw action; when given
            it sets the yaw step.
        max_tilt_rad: largest angle between the commanded tool z axis and base -z, radians.
        max_abs_yaw_rad: the commanded tool yaw is clipped to +-this, radians.
        max_contact_force_n: end the episode as a failure when the measured force magnitude
            exceeds this, N; None: no limit.
        render_mode: ``None`` or ``"rgb_array"``.
        render_camera: camera for ``render()``; defaults to the camera named ``front`` (or the
            first camera).

    Raises:
        ConfigError: unknown reward type, rotation or render mode, ``enable_yaw`` with another
            rotation, limits out of range, duplicate camera names, or no camera to render with.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, arm: Arm, cameras: Sequence[Camera], task: Task, *, reward_type: str = "sparse",
                 rotation: str = "none", enable_yaw: bool = False, gripper_action: bool = True,
                 fixed_gripper_opening: float = 0.0, binary_gripper: bool = True, privileged_state: bool = True,
                 wrench_in_state: bool = False, max_ee_step_m: float = 0.03, max_rot_step_rad: float = 0.2,
                 max_yaw_step_rad: float | None = None, max_tilt_rad: float = np.deg2rad(30.0),
                 max_abs_yaw_rad: float = np.pi / 2, max_contact_force_n: float | None = None,
                 render_mode: str | None = None, render_camera: Camera | None = None):
        if reward_type not in ("sparse", "dense"):
            raise ConfigError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        if rotation not in ROTATIONS:
            raise ConfigError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
        if enable_yaw:
            if rotation not in ("none", "yaw"):
                raise ConfigError(f"enable_yaw=True means rotation='yaw'; it contradicts rotation={rotation!r}: pass only rotation")
            rotation = "yaw"
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not 0.0 <= fixed_gripper_opening <= 1.0:
            raise ConfigError(f"fixed_gripper_opening must lie in [0, 1] (0 closed), got {fixed_gripper_opening}")
        if not (0.0 <= max_tilt_rad <= np.pi / 2 and 0.0 <= max_abs_yaw_rad <= np.pi):
            raise ConfigError(f"max_tilt_rad must lie in [0, pi/2] and max_abs_yaw_rad in [0, pi], "
                              f"got {max_tilt_rad}, {max_abs_yaw_rad}")
        if max_ee_step_m <= 0 or max_rot_step_rad <= 0 or (max_yaw_step_rad is not None and max_yaw_step_rad <= 0):
            raise ConfigError(f"max_ee_step_m, max_rot_step_rad and max_yaw_step_rad must be positive, got "
                              f"{max_ee_step_m}, {max_rot_step_rad}, {max_yaw_step_rad}")
        if max_contact_force_n is not None and not max_contact_force_n > 0:
            raise ConfigError(f"max_contact_force_n must be positive (N) or None, got {max_contact_force_n}")
        names = [c.name for c in cameras]
        if len(set(names)) != len(names):
            raise ConfigError(f"camera names must be unique, got {names}")
        self.arm, self.task = arm, task
        self.cameras = {c.name: c for c in cameras}
        self.reward_type, self.privileged_state = reward_type, privileged_state
        self.rotation, self.enable_yaw = rotation, rotation == "yaw"
        self.gripper_action, self.fixed_gripper_opening = bool(gripper_action), float(fixed_gripper_opening)
        self.binary_gripper, self.wrench_in_state = binary_gripper, bool(wrench_in_state)
        self.max_ee_step_m, self.max_rot_step_rad = float(max_ee_step_m), float(max_rot_step_rad)
        self.max_yaw_step_rad = float(max_rot_step_rad if max_yaw_step_rad is None else max_yaw_step_rad)
        self.max_tilt_rad, self.max_abs_yaw_rad = float(max_tilt_rad), float(max_abs_yaw_rad)
        self.max_contact_force_n = None if max_contact_force_n is None else float(max_contact_force_n)
        self.render_mode = render_mode
        self.render_camera = render_camera or self.cameras.get("front") or next(iter(self.cameras.values()), None)
        if render_mode == "rgb_array" and self.render_camera is None:
            raise ConfigError("render_mode='rgb_array' needs a camera: pass render_camera or a camera named 'front'")
        self.metadata = {**self.metadata, "render_fps": arm.control_hz}
        self.control_hz = arm.control_hz
        self.max_episode_steps = task.max_episode_steps

        #: names of the action entries in order, e.g. ``("dx", "dy", "dz", "gripper")``.
        self.action_layout: tuple[str, ...] = ("dx", "dy", "dz") + {
            "none": (), "yaw": ("dyaw",), "full": ("rx", "ry", "rz")}[rotation] + (("gripper",) if gripper_action else ())
        self.state_layout: tuple[tuple[str, int], ...] = (
            PROPRIO_LAYOUT + ((ROTATION_ENTRY,) if rotation == "full" else ()) + ((WRENCH_ENTRY,) if wrench_in_state else ())
            + (tuple((k, int(np.size(v))) for k, v in task.get_observation().items()) if privileged_state else ()))
        state_dim = sum(n for _, n in self.state_layout)
        spaces: dict[str, gym.Space] = {"state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}
        if self.cameras:
            spaces["images"] = gym.spaces.Dict({
                name: gym.spaces.Box(0, 255, (c.intrinsics.height, c.intrinsics.width, 3), np.uint8)
                for name, c in self.cameras.items()})
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (len(self.action_layout),), np.float32)
        self._home_yaw_rad = 0.0
        self.episode_step = 0
        self.last_command: ArmCommand | None = None

    # ------------------------------------------------------------------ observation
    def _state_vector(self, s: ArmState) -> np.ndarray:
        yaw = tool_yaw_rad(s.ee_quaternion)
        parts = [s.ee_position, s.ee_velocity[:3], [np.cos(yaw), np.sin(yaw)], [s.gripper]]
        if self.rotation == "full":
            parts.append(Rotation.from_quat(s.ee_quaternion).as_matrix()[:, :2].T.ravel())  # tool x, then tool y
        if self.wrench_in_state:
            parts.append(s.wrench_in_tool_frame())
        if self.privileged_state:
            parts.extend(np.ravel(v) for v in self.task.get_observation().values())
        return np.concatenate(parts).astype(np.float32)

    def _observation(self, s: ArmState) -> dict[str, Any]:
        obs: dict[str, Any] = {"state": self._state_vector(s)}
        if self.cameras:
            obs["images"] = {name: c.read().rgb for name, c in self.cameras.items()}
        return obs

    def _info(self, s: ArmState) -> dict[str, Any]:
        wrench = np.asarray(s.wrench, dtype=np.float64)
        return {"is_success": bool(self.task.is_success()), **self.task.get_reward_terms(),
                "ee_force_n": float(np.linalg.norm(wrench[:3])), "ee_torque_nm": float(np.linalg.norm(wrench[3:]))}

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Home the arm, randomise the task with the env's ``np_random``, tare the wrist F/T
        sensor (arms with ``tare_wrench``: the weight of what the gripper now holds reads as
        zero); returns ``(obs, info)``."""
        super().reset(seed=seed)
        self.arm.home()
        self.task.initialize_episode(self.np_random)
        tare = getattr(self.arm, "tare_wrench", None)
        if callable(tare):
            tare()
        self.episode_step = 0
        self.last_command = None
        state = self.arm.state()
        self._home_yaw_rad = tool_yaw_rad(state.ee_quaternion)
        return self._observation(state), self._info(state)

    def _layout_text(self) -> str:
        return (f"[{', '.join(self.action_layout)}] (rotation={self.rotation!r}, "
                f"gripper_action={self.gripper_action})")

    def target_from_action(self, action: np.ndarray, s: ArmState) -> ArmCommand:
        """The command an action asks for from state ``s``, with the env's limits applied.

        Args:
            action: (A,) array laid out as :attr:`action_layout`; values outside [-1, 1] are clipped.
            s: the measured arm state the deltas apply to.

        Returns:
            The :class:`ArmCommand`: position = measured + delta (the arm clips it into its
            workspace box), orientation within the tilt and yaw limits, gripper opening.

        Raises:
            ValueError: the action has the wrong shape (the message names the expected layout).
        """
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}: {self._layout_text()}, got shape {a.shape}")
        a = np.clip(a, -1.0, 1.0)
        target = s.ee_position + a[:3] * self.max_ee_step_m
        if self.rotation == "full":
            rotvec = a[3:6] * self.max_rot_step_rad  # base frame: R_target = exp(r) R_current
            quat = (Rotation.from_rotvec(rotvec) * Rotation.from_quat(s.ee_quaternion)).as_quat()
            quat = limit_tool_orientation(quat, self.max_tilt_rad, self.max_abs_yaw_rad)
        else:
            yaw = tool_yaw_rad(s.ee_quaternion) + a[3] * self.max_yaw_step_rad if self.rotation == "yaw" else self._home_yaw_rad
            quat = tool_down_quaternion(float(np.clip(yaw, -self.max_abs_yaw_rad, self.max_abs_yaw_rad)))
        if not self.gripper_action:
            gripper = self.fixed_gripper_opening
        else:
            gripper = float(a[-1] > 0.0) if self.binary_gripper else float((a[-1] + 1.0) / 2.0)
        return ArmCommand(np.asarray(target, dtype=np.float64), quat, gripper)

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Execute one control period.

        Args:
            action: (A,) array in [-1, 1] laid out as :attr:`action_layout` (values outside are
                clipped), see the class doc.

        Returns:
            ``(obs, reward, terminated, truncated, info)``; ``truncated`` is True only when the
            simulator diverged (``info["sim_unstable"]``; the episode length limit comes from
            gymnasium's ``TimeLimit`` wrapper).

        Raises:
            ValueError: the action has the wrong shape (the message names the expected layout).
        """
        self.last_command = self.arm.command(self.target_from_action(action, self.arm.state()))
        self.episode_step += 1
        state = self.arm.state()
        info = self._info(state)
        success = info["is_success"]
        terms = self.task.get_reward_terms()
        if self.reward_type == "sparse":
            reward, terminated = float(success), bool(self.task.get_termination())
        else:
            reward, terminated = float(sum(terms.values())), bool(self.task.get_termination() and not success)
        info["force_limit_exceeded"] = self.max_contact_force_n is not None and info["ee_force_n"] > self.max_contact_force_n
        if info["force_limit_exceeded"]:
            # a failure: the episode ends, and a success in the same step earns nothing
            terminated, info["is_success"] = True, False
            if self.reward_type == "sparse":
                reward = 0.0
            logger.info("contact force %.1f N above the limit %.1f N at step %d; episode terminated",
                        info["ee_force_n"], self.max_contact_force_n, self.episode_step)
        truncated = False
        if getattr(self.arm, "sim_unstable", False):
            # the simulator diverged and reset its state: end the episode (truncated, so the learner
            # bootstraps and no reward is credited) and say so
            truncated, info["sim_unstable"] = True, True
            logger.warning("the simulation diverged at step %d (MuJoCo reset its state); episode truncated", self.episode_step)
        return self._observation(state), reward, terminated, truncated, info

    def action_from_twist(self, twist: np.ndarray, gripper: float | None, previous_action: np.ndarray | None = None
                          ) -> np.ndarray:
        """Convert a teleop command (EE twist + gripper opening) into this env's action.

        The linear part is integrated over one control period (``twist * dt`` metres) and
        divided by ``max_ee_step_m``, each axis clipped to [-1, 1]. The angular part (rad/s,
        base frame): with ``rotation="yaw"`` the z rate times ``dt`` divided by the yaw step,
        clipped; with ``"full"`` the rotation vector ``omega * dt`` (the exact rotation of a
        constant angular velocity over one period, base frame, as the action is) divided by
        ``max_rot_step_rad`` and scaled down as a whole when an entry exceeds 1 (the axis is kept);
        with ``"none"`` ignored (the tool stays pointing down).

        Args:
            twist: (6,) float, linear m/s then angular rad/s, robot base frame.
            gripper: desired opening in [0, 1] (1 = open); None keeps the gripper action of
                ``previous_action`` (open when there is none). Ignored without ``gripper_action``.
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
        if self.rotation == "yaw":
            parts.append(float(np.clip(tw[5] * dt / self.max_yaw_step_rad, -1.0, 1.0)))
        elif self.rotation == "full":
            r = tw[3:] * dt / self.max_rot_step_rad
            parts.extend(r / max(1.0, float(np.max(np.abs(r)))))
        if self.gripper_action:
            if gripper is None:
                g = float(previous_action[-1]) if previous_action is not None else 1.0
            elif self.binary_gripper:
                g = 1.0 if gripper > 0.5 else -1.0
            else:
                g = float(np.clip(2.0 * gripper - 1.0, -1.0, 1.0))
            parts.append(g)
        return np.asarray(parts, dtype=np.float32)

    def twist_from_action(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        """Inverse of :meth:`action_from_twist`: ``(twist (6,) float64 m/s and rad/s, base frame, gripper opening 0..1)``.

        Lets scripted controllers, which produce actions, stand in for a human behind the
        :class:`~robot_rl.interfaces.Teleop` interface. Without ``gripper_action`` the gripper is
        ``fixed_gripper_opening``.
        """
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        twist = np.zeros(6)
        twist[:3] = a[:3] * self.max_ee_step_m * self.control_hz
        if self.rotation == "yaw":
            twist[5] = a[3] * self.max_yaw_step_rad * self.control_hz
        elif self.rotation == "full":
            twist[3:] = a[3:6] * self.max_rot_step_rad * self.control_hz
        if not self.gripper_action:
            return twist, self.fixed_gripper_opening
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
