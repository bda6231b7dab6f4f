"""Reward models: rewards from camera frames instead of hand-written reward code.

* :mod:`robot_rl.rewards.base`: the :class:`RewardModel` interface and the gymnasium wrapper
  that replaces an env's reward (and termination) with a model's;
* VLM-RM zero-shot rewards (CLIP-style models) and learned success classifiers build on it.
"""
