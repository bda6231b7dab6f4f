"""Learning-side networks and the deployable policy.

* :mod:`robot_rl.policies.networks`: image encoders, the tanh-Gaussian actor, the critic ensemble.
* :mod:`robot_rl.policies.policy`: :class:`~robot_rl.policies.policy.Policy`, the small object that
  acts on a robot (state normaliser + encoder + actor + observation layout + action bounds), saved
  as ``policy.safetensors`` + ``policy.json``; it imports neither the learner nor a simulator.

Nothing is imported here, so ``import robot_rl.policies.networks`` stays as light as it was.
"""
