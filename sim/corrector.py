"""A scripted stand-in for the human supervisor of human-in-the-loop RL (simulation only).

:class:`ScriptedCorrector` is a :class:`~robot_rl.interfaces.Teleop` that watches the policy
and steps in the way a HIL-SERL operator does (Luo et al. 2024, arXiv:2410.21845): when the
robot goes the wrong way for a moment it takes over with the task's privileged scripted
controller (:mod:`robot_rl.sim.scripted`), steers for a few steps, and hands back once the
policy would do the right thing again. Wrapped by :class:`robot_rl.intervention.InterventionWrapper`,
it turns any simulated task into an intervention experiment with no human present.

Registered as teleop ``"scripted"``: the teleop registry builds it lazily with
``ScriptedCorrector(env=env, **kwargs)``, ``kwargs`` being fields of :class:`CorrectorConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.env import RobotEnv
from robot_rl.errors import ConfigError
from robot_rl.interfaces import Teleop, TeleopCommand
from robot_rl.sim.scripted import scripted_policy_for


@dataclass
class CorrectorConfig:
    """When the scripted corrector takes over and when it hands back.

    A proposal of the policy *strays* when, compared with the scripted controller's action in
    the same state, it moves the TCP target more than ``max_deviation_m`` away from the
    script's, or turns the tool more than ``max_yaw_deviation_rad`` away (yaw actions only), or
    (``judge_gripper``) commands the gripper the other way (open vs close).
    """

    max_deviation_m: float = 0.015
    """a proposal strays when its TCP displacement differs from the script's by more than this, metres (a full action moves max_ee_step_m, 0.03 m in the Panda tasks)."""
    max_yaw_deviation_rad: float = 0.1
    """with yaw actions, a proposal also strays when its yaw change differs from the script's by more than this, radians."""
    judge_gripper: bool = True
    """a gripper command opposite to the script's (open vs close; continuous: openings 0.5 apart) also strays."""
    patience_steps: int = 3
    """take over at the N-th consecutive straying proposal (that one is replaced; N - 1 were executed), like a human's reaction time (0.3 s at 10 Hz)."""
    min_takeover_steps: int = 5
    """once engaged, steer at least this many control steps."""
    max_takeover_steps: int = 20
    """hand back after this many control steps at the latest."""
    handback_agree_steps: int = 2
    """after min_takeover_steps, hand back once this many consecutive proposals of the (overridden) policy did not stray."""
    max_takeovers_per_episode: int | None = None
    """at most this many take-overs per episode (None: no limit); a human's attention budget."""
    takeover_probability: float = 1.0
    """each time patience runs out, take over with this probability (seeded), else keep watching and count patience again: an imperfect supervisor."""
    always_engaged: bool = False
    """steer every step regardless of the policy (a scripted demonstrator behind the Teleop interface)."""


class ScriptedCorrector(Teleop):
    """Scripted supervisor: takes over from a straying policy with the task's scripted controller.

    The scripted controller runs at every step, engaged or not, so that its phase (approach,
    descend, close, lift ...) follows the state, whoever moved the arm. Per step, exactly once:

    * not engaged: count consecutive straying proposals (see :class:`CorrectorConfig`); at
      ``patience_steps`` of them, take over (subject to ``max_takeovers_per_episode`` and
      ``takeover_probability``);
    * engaged: steer with the scripted action; after ``min_takeover_steps`` hand back as soon
      as ``handback_agree_steps`` consecutive proposals agree with the script ("back on
      track"), and after ``max_takeover_steps`` in any case.

    Why action disagreement rather than distance or progress measures: the script's action is
    computed from the true state every step, so a stalled policy (the script would move), a
    policy heading away from the next waypoint, and a gripper closing too early or opening
    while lifting all show up as disagreement within one step, in metres a human can judge.

    The step protocol: :class:`~robot_rl.intervention.InterventionWrapper` calls
    :meth:`observe_policy_action` with the policy's proposal, then :meth:`read`. Without an
    :meth:`observe_policy_action` call in a step, :meth:`read` judges nothing and only steers
    when engaged (or ``always_engaged``). A step with ``episode_step == 0`` starts a new
    episode (counters and budget reset).

    Args:
        env: the env the corrector supervises (the wrapped env or any wrapper of a
            :class:`~robot_rl.env.RobotEnv` whose task has a scripted controller).
        config: settings; :class:`CorrectorConfig` defaults when None.
        seed: seed of the take-over coin (``takeover_probability``).
        **settings: fields of :class:`CorrectorConfig` overriding ``config`` (how the teleop
            registry passes them: ``ScriptedCorrector(env=env, patience_steps=2)``).

    Raises:
        ConfigError: unknown or invalid settings, an env that is not a RobotEnv, or a task
            without a scripted controller.

    Example:
        >>> import gymnasium as gym, numpy as np, robot_rl
        >>> from robot_rl.intervention import InterventionWrapper
        >>> env = gym.make("robot_rl/PandaPickLift-v0")
        >>> env = InterventionWrapper(env, ScriptedCorrector(env=env, seed=0))
        >>> obs, _ = env.reset(seed=0)
        >>> infos = [env.step(np.array([0, 0, 1, 1], np.float32))[-1] for _ in range(5)]
        >>> [i["intervention"] for i in infos]  # 2 upward steps executed, then it takes over
        [False, False, True, True, True]
        >>> env.close()
    """

    def __init__(self, env: gym.Env, config: CorrectorConfig | None = None, *, seed: int | None = None,
                 **settings: Any) -> None:
        try:
            self.config = replace(config if config is not None else CorrectorConfig(), **settings)
        except TypeError as e:
            names = ", ".join(f.name for f in fields(CorrectorConfig))
            raise ConfigError(f"unknown scripted-corrector setting(s) {sorted(settings)}: {e}; valid: {names}") from e
        c = self.config
        if c.patience_steps < 1 or c.min_takeover_steps < 1 or c.handback_agree_steps < 1:
            raise ConfigError("patience_steps, min_takeover_steps and handback_agree_steps must be >= 1, got "
                              f"{c.patience_steps}, {c.min_takeover_steps}, {c.handback_agree_steps}")
        if c.max_takeover_steps < c.min_takeover_steps:
            raise ConfigError(f"max_takeover_steps ({c.max_takeover_steps}) must be >= min_takeover_steps "
                              f"({c.min_takeover_steps})")
        if not 0.0 <= c.takeover_probability <= 1.0:
            raise ConfigError(f"takeover_probability must be in [0, 1], got {c.takeover_probability}")
        if c.max_takeovers_per_episode is not None and c.max_takeovers_per_episode < 0:
            raise ConfigError(f"max_takeovers_per_episode must be >= 0 or None, got {c.max_takeovers_per_episode}")
        u = env.unwrapped
        if not isinstance(u, RobotEnv):
            raise ConfigError(f"the scripted corrector supervises a robot_rl RobotEnv, got {type(u).__name__}")
        try:
            self._script = scripted_policy_for(env)
        except KeyError as e:
            raise ConfigError(f"the scripted corrector needs a scripted controller for the task: {e}") from e
        self._env = u
        self.rng = np.random.default_rng(seed)
        self._pending = False  # observe_policy_action() processed this step; read() must not again
        self._start_episode()

    # ------------------------------------------------------------------ state
    def _start_episode(self) -> None:
        self.engaged = False
        self.takeovers = 0  # take-overs in this episode
        self._stray_streak = 0  # consecutive straying proposals while not engaged
        self._agree_streak = 0  # consecutive agreeing proposals while engaged
        self._engaged_for = 0  # control steps steered in the current take-over
        self.scripted_action: np.ndarray | None = None

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state to checkpoint at an episode boundary (the take-over coin's RNG)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (at an episode boundary)."""
        self.rng.bit_generator.state = state["rng"]

    # ------------------------------------------------------------------ judging
    def strays(self, proposal: np.ndarray, scripted: np.ndarray) -> bool:
        """True if the (A,) ``proposal`` (env action units) strays from the (A,) ``scripted`` action."""
        u, c = self._env, self.config
        p, s = np.clip(np.asarray(proposal, np.float64), -1, 1), np.clip(np.asarray(scripted, np.float64), -1, 1)
        if np.linalg.norm(p[:3] - s[:3]) * u.max_ee_step_m > c.max_deviation_m:
            return True
        if u.enable_yaw and abs(p[3] - s[3]) * u.max_yaw_step_rad > c.max_yaw_deviation_rad:
            return True
        if c.judge_gripper:
            if u.binary_gripper:
                return bool((p[-1] > 0.0) != (s[-1] > 0.0))
            return bool(abs(p[-1] - s[-1]) / 2.0 > 0.5)
        return False

    def _process(self, proposal: np.ndarray | None) -> None:
        """Run the script for the current step and decide whether to steer (once per step)."""
        c = self.config
        if self._env.episode_step == 0:
            self._start_episode()
        self.scripted_action = np.asarray(self._script(None), np.float32)
        if c.always_engaged:
            self.engaged = True
            return
        strays = proposal is not None and self.strays(proposal, self.scripted_action)
        if self.engaged:
            self._agree_streak = 0 if strays or proposal is None else self._agree_streak + 1
            back_on_track = self._engaged_for >= c.min_takeover_steps and self._agree_streak >= c.handback_agree_steps
            if back_on_track or self._engaged_for >= c.max_takeover_steps:
                self.engaged, self._stray_streak = False, 0
            else:
                self._engaged_for += 1
            return
        self._stray_streak = self._stray_streak + 1 if strays else 0
        budget_left = c.max_takeovers_per_episode is None or self.takeovers < c.max_takeovers_per_episode
        if self._stray_streak >= c.patience_steps and budget_left:
            self._stray_streak = 0
            if c.takeover_probability >= 1.0 or self.rng.random() < c.takeover_probability:
                self.engaged, self.takeovers = True, self.takeovers + 1
                self._engaged_for, self._agree_streak = 1, 0

    # ------------------------------------------------------------------ Teleop
    def observe_policy_action(self, action: np.ndarray) -> None:
        """Judge the policy's (A,) proposal (env action units) for the coming step; call before :meth:`read`."""
        self._process(np.asarray(action))
        self._pending = True

    def read(self) -> TeleopCommand:
        """The command for the coming step: the scripted action as a twist while engaged, else idle."""
        if not self._pending:
            self._process(None)
        self._pending = False
        if not self.engaged:
            return TeleopCommand(twist=np.zeros(6))
        twist, gripper = self._env.twist_from_action(self.scripted_action)
        return TeleopCommand(twist=twist, gripper=gripper, engaged=True)
