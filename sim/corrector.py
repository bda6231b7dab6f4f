"""A scripted stand-in for the human supervisor of human-in-the-loop RL (simulation only).

:class:`ScriptedCorrector` is a :class:`~robot_rl.interfaces.Teleop` that watches the policy
and steps in the way a HIL-SERL operator does (Luo et al. 2024, arXiv:2410.21845): when the
robot stalls or undoes its progress it takes over with the task's privileged scripted
controller (:mod:`robot_rl.sim.scripted`), steers it past the sticking point, and hands back.
Wrapped by :class:`robot_rl.intervention.InterventionWrapper`, it turns any simulated task into
an intervention experiment with no human present.

Registered as teleop ``"scripted"``: the teleop registry builds it lazily with
``ScriptedCorrector(env=env, **kwargs)``, ``kwargs`` being fields of :class:`CorrectorConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.config_io import check_fields
from robot_rl.env import RobotEnv
from robot_rl.errors import ConfigError
from robot_rl.interfaces import Teleop, TeleopCommand
from robot_rl.sim.scripted import scripted_policy_for


@dataclass
class CorrectorConfig:
    """When the scripted corrector takes over and when it hands back.

    Progress is measured with the task's potential: the sum of its dense reward terms
    (``Task.get_reward_terms()``; pick-and-lift: reach 0..0.25, grasp 0.25, lift 0..1, success 1),
    what a person watching sees: the gripper getting closer, grasping, lifting. The scripted
    pick-and-lift raises it by 0.01 to 0.5 per step except for the 3 steps its gripper closes.
    """

    patience_steps: int = 5
    """take over after this many consecutive policy steps without progress (0.5 s at 10 Hz; the script itself pauses 3 steps to close the gripper)."""
    min_progress: float = 0.01
    """a step makes progress when the potential exceeds its value at the last progress step (or at the hand-over) by more than this (dense-reward units; ~1 cm closer to the cube at 10 cm distance)."""
    max_regress: float = 0.1
    """take over at once when the potential falls this far below that best (a dropped cube, a lost grasp: a person reacts at once)."""
    max_deviation_m: float | None = None
    """also take over after patience_steps consecutive proposals whose TCP displacement differs from the script's by more than this, metres (None: off; see ScriptedCorrector for why it is off)."""
    min_takeover_steps: int = 3
    """once engaged, steer at least this many control steps."""
    max_takeover_steps: int = 10
    """hand back after this many control steps at the latest."""
    handback_progress: float = 0.05
    """after min_takeover_steps, hand back once the potential exceeds the policy's best by this much: the arm is past the point where the policy got stuck ("back on track")."""
    max_takeovers_per_episode: int | None = 1
    """at most this many take-overs per episode (None: no limit); a person's attention budget. 1 learns fastest (see ScriptedCorrector)."""
    takeover_probability: float = 1.0
    """each time a trigger fires, take over with this probability (seeded), else keep watching and count patience again: an imperfect supervisor."""
    always_engaged: bool = False
    """steer every step regardless of the policy (a scripted demonstrator behind the Teleop interface)."""
    review_successes: bool = True
    """mark a reward model's false successes from the privileged success check (the operator's failure button after a wrong success; robot_rl.rewards.feedback)."""
    review_missed_successes: bool = False
    """also press success when the privileged check says success and the reward model does not (the operator's success button on a missed success: a positive label for robot_rl.rewards.feedback). Off by default: benchmarks/classifier_reward.py measured the loop with false successes only."""


class ScriptedCorrector(Teleop):
    """Scripted supervisor: takes over from a stuck or erring policy with the task's scripted controller.

    The scripted controller runs at every step, engaged or not, so that its phase (approach,
    descend, close, lift ...) follows the state, whoever moved the arm. Per step, exactly once,
    with the task potential ``phi`` (see :class:`CorrectorConfig`):

    * policy in control: a step with ``phi > best + min_progress`` makes progress and sets
      ``best = phi`` (``best`` starts at ``phi`` when the policy gets control, so slow steady
      progress adds up). Take over after ``patience_steps``
      steps without progress, or at once when ``phi < best - max_regress``; optionally also
      after ``patience_steps`` proposals straying from the script (``max_deviation_m``). Each
      trigger is subject to ``max_takeovers_per_episode`` and ``takeover_probability``;
    * engaged: steer with the scripted action; after ``min_takeover_steps`` hand back once
      ``phi > best + handback_progress``, after ``max_takeover_steps`` in any case.

    Why progress and not action disagreement by default: an RL policy finds its own route.
    Measured on pick-and-lift (a policy at 85% success after 2k steps of training, 20 episodes):
    it lifted the cube in 8 to 9 steps where the script takes 10 to 13, and its actions
    differed from the script's by more than 3 cm per step at 85-100% of its steps; a corrector
    judging actions took over almost every episode and forced the slower route on it. A person
    watching intervenes when the arm stalls or undoes progress, which the potential captures.

    Why one take-over per episode by default: every rescue turns a stall into a success, so the
    critic learns that stalling is nearly as good as progressing (a few steps of discount) and
    the policy, evaluated without help, keeps stalling. Measured with
    ``benchmarks/intervention_efficiency.py`` (pick-and-lift from state, 5 demos, seeds 1-3):
    env steps to 90% eval success 1,785 / 2,031 / 1,258 with one take-over per episode
    (184-266 intervention steps), 2,510 / 1,500 / 3,509 without a limit (648-1,396 intervention
    steps), 2,531 / 3,000 / 1,750 without interventions. With only 2 demos the unlimited
    corrector did better (seed 1: 90% at 3.5k steps; one take-over: 40% at 4k): when demos are
    scarce the rescues are the main source of successful data.

    The step protocol: :class:`~robot_rl.intervention.InterventionWrapper` calls
    :meth:`observe_policy_action` with the policy's proposal, then :meth:`read`; the step's
    decision is made in whichever comes first. A step with ``episode_step == 0`` starts a new
    episode (counters and budget reset).

    Args:
        env: the env the corrector supervises (the wrapped env or any wrapper of a
            :class:`~robot_rl.env.RobotEnv` whose task has a scripted controller).
        config: settings; :class:`CorrectorConfig` defaults when None.
        seed: seed of the take-over coin (``takeover_probability``).
        **settings: fields of :class:`CorrectorConfig` overriding ``config`` (how the teleop
            registry passes them: ``ScriptedCorrector(env=env, patience_steps=3)``).

    Raises:
        ConfigError: unknown or invalid settings, an env that is not a RobotEnv, or a task
            without a scripted controller.

    Example:
        >>> import gymnasium as gym, numpy as np, robot_rl
        >>> from robot_rl.intervention import InterventionWrapper
        >>> env = gym.make("robot_rl/PandaPickLift-v0")
        >>> env = InterventionWrapper(env, ScriptedCorrector(env=env, seed=0))
        >>> obs, _ = env.reset(seed=0)
        >>> infos = [env.step(np.array([0, 0, 1, 1], np.float32))[-1] for _ in range(7)]
        >>> [i["intervention"] for i in infos]  # 5 upward steps without progress, then it takes over
        [False, False, False, False, False, True, True]
        >>> env.close()
    """

    def __init__(self, env: gym.Env, config: CorrectorConfig | None = None, *, seed: int | None = None,
                 **settings: Any) -> None:
        check_fields(CorrectorConfig, settings, "scripted-corrector settings")
        self.config = replace(config if config is not None else CorrectorConfig(), **settings)
        c = self.config
        if c.patience_steps < 1 or c.min_takeover_steps < 1:
            raise ConfigError("patience_steps and min_takeover_steps must be >= 1, got "
                              f"{c.patience_steps}, {c.min_takeover_steps}")
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
        self._pending = False  # this step was decided in observe_policy_action(); read() must not decide again
        self._start_episode()

    # ------------------------------------------------------------------ state
    def _start_episode(self) -> None:
        self.engaged = False
        self.takeovers = 0  # take-overs in this episode
        self.potential = self.potential_now()
        self._best = self.potential  # best potential since the policy got control
        self._stall = 0  # consecutive policy steps without progress
        self._stray = 0  # consecutive straying proposals (max_deviation_m)
        self._engaged_for = 0  # control steps steered in the current take-over
        self.scripted_action: np.ndarray | None = None

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state to checkpoint at an episode boundary (the take-over coin's RNG)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (at an episode boundary)."""
        self.rng.bit_generator.state = state["rng"]

    # ------------------------------------------------------------------ judging
    def potential_now(self) -> float:
        """The task potential: sum of the task's dense reward terms in the current state (dimensionless)."""
        return float(sum(self._env.task.get_reward_terms().values()))

    def strays(self, proposal: np.ndarray, scripted: np.ndarray) -> bool:
        """True if the (A,) ``proposal`` moves the TCP more than ``max_deviation_m`` away from the (A,)
        ``scripted`` action's target (env action units in, metres compared); False when that check is off."""
        if self.config.max_deviation_m is None:
            return False
        p, s = np.clip(np.asarray(proposal, np.float64), -1, 1), np.clip(np.asarray(scripted, np.float64), -1, 1)
        return bool(np.linalg.norm(p[:3] - s[:3]) * self._env.max_ee_step_m > self.config.max_deviation_m)

    def _hand_back(self) -> None:
        self.engaged, self._best, self._stall, self._stray = False, self.potential, 0, 0

    def _decide(self, proposal: np.ndarray | None) -> None:
        """Run the script for the current step and decide whether to steer (once per step)."""
        c = self.config
        if self._env.episode_step == 0:
            self._start_episode()
        self.scripted_action = np.asarray(self._script(None), np.float32)
        if c.always_engaged:
            self.engaged = True
            return
        if self._env.episode_step == 0:
            return  # nothing to judge before the first step
        self.potential = phi = self.potential_now()
        if self.engaged:
            back_on_track = self._engaged_for >= c.min_takeover_steps and phi > self._best + c.handback_progress
            if back_on_track or self._engaged_for >= c.max_takeover_steps:
                self._hand_back()
            else:
                self._engaged_for += 1
            return
        if phi > self._best + c.min_progress:
            self._best, self._stall = phi, 0
        else:
            self._stall += 1  # best is kept: slow steady progress adds up to min_progress within patience
        self._stray = self._stray + 1 if proposal is not None and self.strays(proposal, self.scripted_action) else 0
        fired = self._stall >= c.patience_steps or phi < self._best - c.max_regress or self._stray >= c.patience_steps
        budget_left = c.max_takeovers_per_episode is None or self.takeovers < c.max_takeovers_per_episode
        if fired and budget_left:
            self._stall = self._stray = 0
            if c.takeover_probability >= 1.0 or self.rng.random() < c.takeover_probability:
                self.engaged, self.takeovers, self._engaged_for = True, self.takeovers + 1, 1

    def review_success(self, info: dict[str, Any]) -> bool:
        """The operator's verdict on a reward model's success at this step (the env has stepped):
        True when it is false, from the task's privileged success check (a person watching the arm);
        False when ``review_successes`` is off. ``info`` is the step's info (not used: the check
        reads the simulator directly)."""
        return bool(self.config.review_successes and not self._env.task.is_success())

    def review_missed_success(self, info: dict[str, Any]) -> bool:
        """The operator's verdict on a step the reward model did not call success: True when the
        privileged check says the task is done (``review_missed_successes`` on), else False."""
        return bool(self.config.review_missed_successes and self._env.task.is_success())

    # ------------------------------------------------------------------ Teleop
    def observe_policy_action(self, action: np.ndarray) -> None:
        """Judge the policy's (A,) proposal (env action units) for the coming step; call before :meth:`read`."""
        self._decide(np.asarray(action))
        self._pending = True

    def read(self) -> TeleopCommand:
        """The command for the coming step: the scripted action as a twist while engaged, else idle."""
        if not self._pending:
            self._decide(None)
        self._pending = False
        if not self.engaged:
            return TeleopCommand(twist=np.zeros(6))
        twist, gripper = self._env.twist_from_action(self.scripted_action)
        return TeleopCommand(twist=twist, gripper=gripper, engaged=True)
