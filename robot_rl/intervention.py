"""Human interventions: a teleop device overrides the policy and tags the step.

:class:`InterventionWrapper` sits outermost around a :class:`~robot_rl.env.RobotEnv` (outside
gymnasium's ``TimeLimit``, so it sees every episode end). While the human holds the teleop
engaged, the human's action replaces the policy's; the step is tagged in ``info`` so that the
learner can put it into both its online and its demo buffer (HIL-SERL: Luo et al. 2024,
"Precise and Dexterous Robotic Manipulation via Human-in-the-Loop Reinforcement Learning",
arXiv:2410.21845). The human's buttons end the episode (success / failure / reset).
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.interfaces import Teleop, TeleopCommand

#: Reward of a step the human marks a success when the env uses the sparse reward (as RobotEnv's).
SPARSE_SUCCESS_REWARD = 1.0
#: Reward of a step the operator marks a success the reward model missed (a binary classifier's success reward).
MISSED_SUCCESS_REWARD = 1.0
#: RLIF reward of the step at which the human takes over (Luo et al. 2023, arXiv:2311.12996).
RLIF_TAKEOVER_REWARD = -1.0


class InterventionWrapper(gym.Wrapper):
    """Let a :class:`~robot_rl.interfaces.Teleop` override the policy, tag the step, end episodes.

    Each :meth:`step`:

    1. if the teleop has a method ``observe_policy_action(action)`` (the scripted corrector
       :class:`robot_rl.sim.corrector.ScriptedCorrector` has), it is called with the policy's
       (A,) action, env units, so that a scripted supervisor can judge it;
    2. ``teleop.read()``; while ``cmd.engaged`` the executed action is
       ``env.unwrapped.action_from_twist(cmd.twist, cmd.gripper, previous_action)`` (the human's),
       else the policy's action clipped to the action space;
    3. the env steps with the executed action;
    4. the buttons: ``success`` ends the episode with ``terminated=True``,
       ``info["is_success"]=True`` and, when the env's reward is sparse
       (``env.unwrapped.reward_type == "sparse"``), ``reward = SPARSE_SUCCESS_REWARD`` (1.0);
       ``failure`` or ``reset`` end it with ``truncated=True``. The step is executed first, so
       the transition is a real one.

    ``info`` of every step has ``intervention`` (bool: the human chose the action) and
    ``action`` ((A,) float32, the action actually executed, env units), plus ``policy_action``
    ((A,) float32, what the policy proposed) and ``takeover`` (bool: engaged now, not at the
    previous step). ``info`` of the last step of an episode (terminated or truncated) also has
    the episode's ``intervention_steps`` (int), ``intervention_takeovers`` (int: switches from
    not engaged to engaged) and ``intervention_rate`` (intervention steps / steps, float).

    5. a false success: when a reward model ended the episode on its success
       (``info["reward_model_success"]``, :class:`~robot_rl.rewards.base.RewardModelWrapper`) and
       the human did not press success, the verdict is reviewed. A teleop with
       ``review_success(info) -> bool`` (the scripted corrector: the privileged success check)
       answers at once; a human device's ``failure`` button counts when pressed at that step or
       within ``false_success_window_s`` seconds after it (the loop waits, the arm holding still,
       as the episode is over anyway). A false success is stored as the human's label: reward 0,
       ``terminated=False``, ``truncated=True`` (the episode was cut, not finished),
       ``info["is_success"]=False`` and ``info["false_success"]=True``; the learner turns the frame
       into a negative label for the success classifier (:mod:`robot_rl.rewards.feedback`).
       The other way round, a missed success: with a reward model that did not call success at
       this step, the human's success button (or a teleop's ``review_missed_success(info)`` ->
       True: the scripted corrector with ``review_missed_successes``) ends the episode as a
       success, reward ``MISSED_SUCCESS_REWARD`` (1.0), ``info["missed_success"]=True``: a positive
       label.

    With ``rlif_reward`` the task reward is replaced by RLIF's intervention reward: -1 at a
    take-over step (``engaged`` False at the previous step of the episode, True now; the first
    step counts as following a non-engaged one), 0 at every other step, also at a success
    button. Termination and truncation are unchanged.
    Source: Luo et al. 2023, "RLIF: Interactive Imitation Learning as Reinforcement Learning",
    arXiv:2311.12996.

    Args:
        env: a (wrapped) env whose ``unwrapped`` has ``action_from_twist`` (a robot_rl
            :class:`~robot_rl.env.RobotEnv`) and a Box action space.
        teleop: the human's device, or a scripted stand-in; :meth:`close` closes it too.
        rlif_reward: replace the task reward with the RLIF intervention reward.
        false_success_window_s: how long (s) to wait for the failure button after a reward model's
            success (0: only a press at that step counts). Not used with a teleop that has
            ``review_success``.

    Raises:
        ConfigError: the env cannot turn teleop twists into actions.
    """

    def __init__(self, env: gym.Env, teleop: Teleop, *, rlif_reward: bool = False,
                 false_success_window_s: float = 0.0) -> None:
        super().__init__(env)
        if not callable(getattr(env.unwrapped, "action_from_twist", None)):
            raise ConfigError(f"InterventionWrapper needs an env whose unwrapped env has action_from_twist() "
                              f"(a robot_rl RobotEnv); {type(env.unwrapped).__name__} has none")
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ConfigError(f"InterventionWrapper needs a Box action space, got {env.action_space}")
        self.teleop = teleop
        self.rlif_reward = rlif_reward
        if false_success_window_s < 0:
            raise ConfigError(f"false_success_window_s must be >= 0 seconds, got {false_success_window_s}")
        self.false_success_window_s = float(false_success_window_s)
        self._observe = getattr(teleop, "observe_policy_action", None)
        self._review = getattr(teleop, "review_success", None)
        self._review_missed = getattr(teleop, "review_missed_success", None)
        self._start_episode()

    def _start_episode(self) -> None:
        self._previous_action: np.ndarray | None = None
        self._was_engaged = False
        self._steps = self._intervention_steps = self._takeovers = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env and the episode's intervention counters; returns ``(obs, info)``.

        A teleop with ``sync_gripper(opening)`` (the human devices) is told the gripper's opening
        after the reset, so that its next gripper toggle flips from the real state.
        """
        self._start_episode()
        out = self.env.reset(seed=seed, options=options)
        sync = getattr(self.teleop, "sync_gripper", None)
        arm = getattr(self.env.unwrapped, "arm", None)
        if callable(sync) and arm is not None:
            sync(float(arm.state().gripper))
        return out

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step with the policy's ``action`` ((A,) env units) unless the human overrides it.

        Returns:
            ``(obs, reward, terminated, truncated, info)``, see the class docstring.
        """
        space: gym.spaces.Box = self.env.action_space
        policy_action = np.clip(np.asarray(action, np.float32), space.low, space.high).astype(np.float32)
        if self._observe is not None:
            self._observe(policy_action)
        cmd: TeleopCommand = self.teleop.read()
        engaged = bool(cmd.engaged)
        if engaged:
            executed = np.asarray(self.env.unwrapped.action_from_twist(cmd.twist, cmd.gripper, self._previous_action),
                                  np.float32)
        else:
            executed = policy_action
        obs, reward, terminated, truncated, info = self.env.step(executed)
        takeover = engaged and not self._was_engaged
        self._was_engaged = engaged
        self._previous_action = executed
        self._steps += 1
        self._intervention_steps += int(engaged)
        self._takeovers += int(takeover)
        info = dict(info)
        if cmd.success:
            terminated = True
            info["is_success"] = True
            if getattr(self.env.unwrapped, "reward_type", None) == "sparse":
                reward = SPARSE_SUCCESS_REWARD
        if cmd.failure or cmd.reset:
            truncated = True
        if info.get("reward_model_success") and not cmd.success and self._false_success(cmd, info):
            reward, terminated, truncated = 0.0, False, True
            info.update(is_success=False, false_success=True)
        elif "reward_model_version" in info and not info.get("reward_model_success") and (
                cmd.success or (callable(self._review_missed) and self._review_missed(info))):
            reward, terminated, truncated = MISSED_SUCCESS_REWARD, True, False
            info.update(is_success=True, missed_success=True)
        if self.rlif_reward:
            reward = RLIF_TAKEOVER_REWARD if takeover else 0.0
        info.update(intervention=engaged, takeover=takeover, action=executed, policy_action=policy_action)
        if terminated or truncated:
            info.update(intervention_steps=self._intervention_steps, intervention_takeovers=self._takeovers,
                        intervention_rate=self._intervention_steps / self._steps)
        return obs, float(reward), bool(terminated), bool(truncated), info

    def _false_success(self, cmd: TeleopCommand, info: dict[str, Any]) -> bool:
        """Whether the reward model's success at this step is false (see the class docstring, 5)."""
        if callable(self._review):
            return bool(self._review(info))
        if cmd.failure:
            return True
        deadline = time.monotonic() + self.false_success_window_s
        while time.monotonic() < deadline:
            if self.teleop.read().failure:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        """Close the env and the teleop device."""
        try:
            self.teleop.close()
        finally:
            self.env.close()


def intervention_segments(intervention: np.ndarray) -> list[tuple[int, int]]:
    """Step ranges ``[start, stop)`` of the contiguous runs of True in a (T,) bool array.

    Each run is one take-over; the learner stores it in the demo buffer as one segment.

    Example:
        >>> intervention_segments(np.array([0, 1, 1, 0, 0, 1], bool))
        [(1, 3), (5, 6)]
    """
    flags = np.concatenate([[False], np.asarray(intervention, np.bool_), [False]])
    edges = np.flatnonzero(flags[1:] != flags[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
