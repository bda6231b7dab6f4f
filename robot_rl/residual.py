"""Residual RL on a frozen base policy: the env adds the base policy's action to the observation,
and a small residual actor (``--agent.residual-scale``) learns a bounded correction on top of it.

How a run is set up::

    robot-rl train --env robot_rl/PandaPickLift-v0 --env-kwargs base_policy <bc_out>/policy \\
        --agent.residual-scale 0.2

``--env-kwargs base_policy <spec>`` makes :func:`robot_rl.envs.make_env` wrap the env in
:class:`BaseActionWrapper`, so every command that makes the run's env (``train``, ``learner``,
``actor``, ``eval``, ``record-demos``, :meth:`Policy.from_run <robot_rl.policies.policy.Policy.from_run>`)
sees the same observation: the env's own entries plus ``base_action``
(:data:`robot_rl.layout.BASE_ACTION_KEY`), the base policy's action for the current observation,
(A,) float32 in the learner's [-1, 1] units. The action space is not changed: the env executes
absolute actions, so scripted demos, teleop interventions and stored transitions are the actions
actually executed. The residual actor (:class:`robot_rl.policies.networks.ResidualActor`) reads
``base_action`` from its input and acts ``clip(base + residual_scale * r, -1, 1)``; its mean output
layer starts at zero, so before any update it IS the base policy.

Env kwargs read here (popped before the env constructor sees them):

* ``base_policy``: the spec, see :func:`load_base_policy`;
* ``base_policy_kwargs``: a dict of keyword arguments for the base policy's loader or factory,
  e.g. ``--env-kwargs base_policy_kwargs '{"device": "cuda"}'``;
* ``base_execute_steps``: actions of each chunk executed before the base policy plans again
  (LeRobot's ``n_action_steps``); default: the whole chunk.

Demos: episodes recorded through the wrapper (``robot-rl record-demos --env-kwargs base_policy
<spec>``, or the scripted demos a residual ``train`` run records) store the entry like any other
observation leaf, ``obs/base_action`` (T+1, A) float32 in [-1, 1] (a Box observation is stored as
``obs/observation``; format in :mod:`robot_rl.demos`). Episodes recorded without it are labelled
when a residual run loads them (:func:`robot_rl.record.load_demo_buffer`, :func:`label_observations`).

The base policy plug-in interface (:class:`BasePolicy`) is two methods: ``reset()`` at every episode
start, and ``predict_chunk(observation) -> (T, A)`` float32 actions in the env's units (T >= 1), for
the env's raw observation (without ``base_action``). A robot_rl policy directory or run directory
is a base policy of chunk length 1 (its deterministic action). Anything else plugs in as
``module:factory``: the module is imported and ``factory(observation_space, action_space, **kwargs)``
must return an object with those two methods; a factory that declares an ``env`` parameter also gets
the env it runs in (privileged sim controllers such as ``robot_rl.sim.scripted``; those cannot label
recorded demos, which have no simulator state behind them).

A LeRobot ACT or diffusion checkpoint as base policy (NOT tested here: LeRobot 0.4.4 requires
torch < 2.11 and this environment has torch 2.14, so it cannot be installed next to robot_rl; the
example follows LeRobot's documented ``PreTrainedPolicy`` API, ``from_pretrained``, ``reset()``,
``predict_action_chunk(batch) -> (B, T, A)``). Put a module like this on ``PYTHONPATH``::

    # my_lerobot_base.py
    import numpy as np
    import torch
    from lerobot.policies.act.modeling_act import ACTPolicy  # or diffusion.modeling_diffusion.DiffusionPolicy

    class LeRobotBase:
        def __init__(self, observation_space, action_space, path, device="cpu"):
            self.policy = ACTPolicy.from_pretrained(path).to(device).eval()
            self.device = device

        def reset(self):
            self.policy.reset()  # clears LeRobot's own action queue

        def predict_chunk(self, observation):
            # map robot_rl's observation onto the checkpoint's features (names from its config.json)
            batch = {"observation.state": torch.as_tensor(observation["state"])[None].to(self.device)}
            with torch.no_grad():
                chunk = self.policy.predict_action_chunk(batch)[0]  # (T, A), un-normalised env units
            return chunk.cpu().numpy().astype(np.float32)

    def make(observation_space, action_space, path, device="cpu"):
        return LeRobotBase(observation_space, action_space, path, device)

and run ``--env-kwargs base_policy my_lerobot_base:make base_policy_kwargs '{"path": "<ckpt>"}'
base_execute_steps 50`` (ACT's ``n_action_steps``). Cameras map the same way
(``observation.images.<name>`` as (1, 3, H, W) float32 in [0, 1]). ``select_action(batch)``, which
returns one (1, A) action and runs LeRobot's own queue, works as a chunk of length 1 instead.

Sources:
    Ankile et al. 2024, "From Imitation to Refinement -- Residual RL for Precise Visual Assembly"
    (ResiP), arXiv:2407.16677: frozen chunked base policy, per-step residual with the base action in
    the residual's input. Yuan et al. 2024, "Policy Decorator", arXiv:2412.13630: bounded residual
    scale, residual initialised at zero. Action chunks executed ``n_action_steps`` at a time as in
    LeRobot (github.com/huggingface/lerobot, ``ACTConfig.n_action_steps``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from robot_rl.errors import ConfigError, ObservationLayoutError
from robot_rl.layout import BASE_ACTION_KEY, ActionScaler

#: env kwargs :func:`robot_rl.envs.make_env` hands to :class:`BaseActionWrapper` instead of the env.
BASE_POLICY_KEY = "base_policy"
BASE_POLICY_KWARGS_KEY = "base_policy_kwargs"
BASE_EXECUTE_STEPS_KEY = "base_execute_steps"
#: the observation key of a Box-observation env once wrapped (the box moves under it).
BOX_OBSERVATION_KEY = "observation"


@runtime_checkable
class BasePolicy(Protocol):
    """The base policy plug-in interface: a frozen policy trained elsewhere.

    ``reset()`` is called at every episode start, before the first ``predict_chunk``;
    ``predict_chunk(observation)`` gets the env's raw observation (the env's own space, without
    ``base_action``) and returns a (T, A) float32 action chunk in the env's action units, T >= 1.
    """

    def reset(self) -> None:
        """Forget the previous episode (queued actions, recurrent state, controller phase)."""

    def predict_chunk(self, observation: Any) -> np.ndarray:
        """(T, A) float32 actions in env units, T >= 1, the first one for ``observation``."""


@dataclass(frozen=True)
class BasePolicySettings:
    """The ``base_policy*`` env kwargs of a residual-RL env (see the module docstring)."""

    spec: str
    """what :func:`load_base_policy` resolves: a policy directory, a run directory or ``module:factory``."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """keyword arguments of the loader or factory (``base_policy_kwargs``)."""
    execute_steps: int | None = None
    """actions of each chunk executed before re-planning (``base_execute_steps``); None: the whole chunk."""

    def __post_init__(self) -> None:
        if not isinstance(self.spec, str) or not self.spec:
            raise ConfigError(f"base_policy must be a policy directory, a run directory or 'module:factory', "
                              f"got {self.spec!r}")
        if not isinstance(self.kwargs, dict):
            raise ConfigError(f"base_policy_kwargs must be a JSON object, e.g. '{{\"device\": \"cuda\"}}', "
                              f"got {self.kwargs!r}")
        if self.execute_steps is not None and (not isinstance(self.execute_steps, int) or self.execute_steps < 1):
            raise ConfigError(f"base_execute_steps must be an integer >= 1 (or left out: the whole chunk), "
                              f"got {self.execute_steps!r}")


def pop_base_policy_settings(env_kwargs: dict[str, Any]) -> BasePolicySettings | None:
    """Remove the ``base_policy*`` entries from parsed env kwargs (in place).

    Args:
        env_kwargs: parsed env kwargs (:func:`robot_rl.envs.parse_env_kwargs`).

    Returns:
        The settings, or None when there is no ``base_policy`` (an ordinary env).

    Raises:
        ConfigError: ``base_policy_kwargs`` or ``base_execute_steps`` without ``base_policy``, or bad values.
    """
    spec = env_kwargs.pop(BASE_POLICY_KEY, None)
    kwargs = env_kwargs.pop(BASE_POLICY_KWARGS_KEY, None)
    steps = env_kwargs.pop(BASE_EXECUTE_STEPS_KEY, None)
    if spec is None:
        if kwargs is not None or steps is not None:
            raise ConfigError(f"{BASE_POLICY_KWARGS_KEY} / {BASE_EXECUTE_STEPS_KEY} were given without "
                              f"{BASE_POLICY_KEY}; add --env-kwargs {BASE_POLICY_KEY} <policy dir | run dir | module:factory>")
        return None
    return BasePolicySettings(str(spec), {} if kwargs is None else kwargs, steps)


def absolute_base_policy(env_kwargs: dict[str, str]) -> dict[str, str]:
    """``env_kwargs`` with a ``base_policy`` that names an existing directory made absolute, so a run's
    ``config.json`` still finds it from another working directory (``robot-rl eval``, ``--resume``);
    ``module:factory`` specs and kwargs without a base policy come back unchanged (a copy)."""
    out = dict(env_kwargs)
    spec = out.get(BASE_POLICY_KEY)
    if isinstance(spec, str) and Path(spec).is_dir():
        out[BASE_POLICY_KEY] = str(Path(spec).resolve())
    return out


class RobotRLBasePolicy:
    """A robot_rl :class:`~robot_rl.policies.policy.Policy` as a base policy: its deterministic
    action as a chunk of length 1.

    Args:
        policy: the policy; it must read the env's raw observation layout.
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def reset(self) -> None:
        """Nothing to forget: the policy is memoryless."""

    def predict_chunk(self, observation: Any) -> np.ndarray:
        """(1, A) float32: the policy's deterministic action in env units."""
        return self.policy.act(observation, deterministic=True)[None]


def _check_policy_fits(policy: Any, spec: str, observation_space: gym.Space, action_space: gym.Space) -> None:
    try:
        policy.check_env(observation_space, action_space)
    except ObservationLayoutError as e:
        raise ConfigError(f"base policy {spec} does not fit the env it should act in (the base policy sees the env's "
                          f"own observation, without '{BASE_ACTION_KEY}'): {e}") from e


def _robot_rl_policy(load: Callable[..., Any], spec: str, observation_space: gym.Space, action_space: gym.Space,
                     kwargs: dict[str, Any]) -> BasePolicy:
    unknown = sorted(set(kwargs) - {"device"})
    if unknown:
        raise ConfigError(f"base_policy {spec}: a robot_rl policy takes only 'device' in base_policy_kwargs, got {unknown}")
    policy = load(spec, device=kwargs.get("device", "cpu"))
    _check_policy_fits(policy, spec, observation_space, action_space)
    return RobotRLBasePolicy(policy)


def _load_policy_dir(spec: str, observation_space: gym.Space, action_space: gym.Space, env: gym.Env | None,
                     **kwargs: Any) -> BasePolicy:
    from robot_rl.policies.policy import Policy

    return _robot_rl_policy(Policy.load, spec, observation_space, action_space, kwargs)


def _load_run_dir(spec: str, observation_space: gym.Space, action_space: gym.Space, env: gym.Env | None,
                  **kwargs: Any) -> BasePolicy:
    from robot_rl.policies.policy import Policy

    return _robot_rl_policy(Policy.from_run, spec, observation_space, action_space, kwargs)


def _load_factory(spec: str, observation_space: gym.Space, action_space: gym.Space, env: gym.Env | None,
                  **kwargs: Any) -> BasePolicy:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"base_policy {spec!r}: cannot import module {module_name!r} ({type(e).__name__}: {e}); "
                          "put it on PYTHONPATH or install its package") from e
    factory = getattr(module, attr, None)
    if not callable(factory):
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ConfigError(f"base_policy {spec!r}: module {module_name} has no callable {attr!r}; its callables: "
                          f"{', '.join(public) or 'none'}")
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if "env" in params:
        if env is not None:
            kwargs = {**kwargs, "env": env}
        elif params["env"].default is inspect.Parameter.empty:
            raise ConfigError(f"base policy {spec} reads the simulator (its factory needs the env), so it cannot label "
                              "recorded observations; record the demos through it instead: robot-rl record-demos "
                              f"--env-kwargs {BASE_POLICY_KEY} {spec}")
    if params:
        try:
            inspect.signature(factory).bind(observation_space, action_space, **kwargs)
        except TypeError as e:
            raise ConfigError(f"base_policy {spec!r}: {attr}{inspect.signature(factory)} does not take "
                              f"(observation_space, action_space, **{kwargs}) ({e}); fix base_policy_kwargs") from e
    base = factory(observation_space, action_space, **kwargs)
    if not isinstance(base, BasePolicy):
        raise ConfigError(f"base_policy {spec!r} returned a {type(base).__name__}, which lacks reset() and/or "
                          "predict_chunk(observation) -> (T, A) actions; see robot_rl.residual.BasePolicy")
    return base


#: How :func:`load_base_policy` resolves a spec: the first entry whose test matches loads it.
#: (description, test(spec) -> bool, loader(spec, observation_space, action_space, env, **kwargs)).
SPEC_KINDS: tuple[tuple[str, Callable[[str], bool], Callable[..., BasePolicy]], ...] = (
    ("a robot_rl policy directory (policy.json + policy.safetensors)", lambda s: (Path(s) / "policy.json").is_file(),
     _load_policy_dir),
    ("a robot_rl training run directory (config.json + checkpoints)", lambda s: (Path(s) / "config.json").is_file(),
     _load_run_dir),
    ("'module:factory' (factory(observation_space, action_space, **kwargs) -> BasePolicy)",
     lambda s: ":" in s and not Path(s).exists(), _load_factory),
)


def load_base_policy(spec: str, observation_space: gym.Space, action_space: gym.Space, env: gym.Env | None = None,
                     **kwargs: Any) -> BasePolicy:
    """Resolve a base-policy spec (see :data:`SPEC_KINDS`, tried in order).

    Args:
        spec: a robot_rl policy directory (``Policy.load``), a training run directory
            (``Policy.from_run``) or ``module:factory``.
        observation_space: the env's own observation space (without ``base_action``).
        action_space: the env's action space (a bounded 1-D Box).
        env: the env the policy will act in, handed to factories that declare an ``env`` parameter;
            None where there is no live env (labelling recorded demos).
        kwargs: ``base_policy_kwargs``: ``device`` for robot_rl policies, anything for factories.

    Returns:
        An object with ``reset()`` and ``predict_chunk(observation)``.

    Raises:
        ConfigError: no kind matches, the module or factory cannot be found, the result lacks the
            interface, kwargs the loader does not take, or a robot_rl policy for another observation
            layout or action space (the message names both layouts).
        CheckpointError: a policy or run directory that cannot be read.
    """
    for _, matches, loader in SPEC_KINDS:
        if matches(spec):
            return loader(spec, observation_space, action_space, env, **kwargs)
    kinds = "\n  ".join(desc for desc, _, _ in SPEC_KINDS)
    raise ConfigError(f"base_policy {spec!r} is none of:\n  {kinds}\n(a directory must exist and hold those files)")


class BaseActionSource:
    """Runs a base policy step by step: plans a chunk, hands out its actions one per step, and plans
    again after ``execute_steps`` of them (or the chunk's end). Shared by :class:`BaseActionWrapper`
    and the labelling of recorded demos, so both give the same actions.

    Args:
        policy: the base policy.
        scaler: the env's action bounds; chunks come in env units and are handed out in [-1, 1].
        execute_steps: actions executed per chunk before re-planning; None: the whole chunk.
        name: the spec, for error messages.
    """

    def __init__(self, policy: BasePolicy, scaler: ActionScaler, execute_steps: int | None = None,
                 name: str = "base policy") -> None:
        self.policy, self.scaler, self.execute_steps, self.name = policy, scaler, execute_steps, name
        self.chunk: np.ndarray | None = None  # (T, A) float32 in [-1, 1]
        self.index = 0  # next row of the chunk
        self.plans = 0  # predict_chunk calls since construction

    def reset(self) -> None:
        """Episode start: reset the base policy and drop the rest of the current chunk."""
        self.policy.reset()
        self.chunk, self.index = None, 0

    def __call__(self, observation: Any) -> np.ndarray:
        """(A,) float32 base action in [-1, 1] for the env's raw ``observation``.

        Raises:
            ConfigError: the base policy returned something other than a finite (T >= 1, A) chunk.
        """
        limit = 0 if self.chunk is None else len(self.chunk) if self.execute_steps is None else min(
            self.execute_steps, len(self.chunk))
        if self.index >= limit:
            raw = np.asarray(self.policy.predict_chunk(observation), dtype=np.float32)
            if raw.ndim != 2 or raw.shape[0] < 1 or raw.shape[1] != self.scaler.dim or not np.all(np.isfinite(raw)):
                raise ConfigError(f"{self.name} returned an action chunk of shape {raw.shape}; predict_chunk must return "
                                  f"finite (T >= 1, A={self.scaler.dim}) actions in env units")
            self.chunk, self.index = self.scaler.from_env(raw), 0
            self.plans += 1
        action = self.chunk[self.index]
        self.index += 1
        return action


def with_base_action(observation: Any, base_action: np.ndarray) -> dict[str, Any]:
    """The observation with ``base_action`` added (a Box observation moves under ``"observation"``).

    Works for one observation and for stacked episode observations (leading T+1 axis) alike.
    """
    if isinstance(observation, dict):
        return {**observation, BASE_ACTION_KEY: base_action}
    return {BOX_OBSERVATION_KEY: observation, BASE_ACTION_KEY: base_action}


class BaseActionWrapper(gym.Wrapper):
    """Adds the base policy's action to every observation, as ``base_action`` (A,) float32 in [-1, 1].

    Computed at reset (after ``reset()`` of the base policy) and after every step, from the env's
    raw observation; chunks are executed ``execute_steps`` actions at a time (see
    :class:`BaseActionSource`). The action space is unchanged: ``step`` takes the absolute action to
    execute. A Dict observation gets the key added; a Box observation becomes
    ``Dict(observation=box, base_action=...)``.

    Args:
        env: the env (its observation a Dict or a Box, its action space a bounded 1-D Box).
        base_policy: a :class:`BasePolicy`, or a spec for :func:`load_base_policy`.
        execute_steps: actions of each chunk executed before re-planning; None: the whole chunk.
        base_policy_kwargs: keyword arguments for :func:`load_base_policy` when ``base_policy`` is a spec.

    Attributes:
        base_policy: the base policy. base_action: the (A,) float32 [-1, 1] action in the last observation.

    Raises:
        ConfigError: the observation already has ``base_action`` or is neither Dict nor Box, or the
            base policy cannot be loaded or does not fit (see :func:`load_base_policy`).
        ObservationLayoutError: the action space is not a bounded 1-D Box.

    Sources: ResiP (arXiv:2407.16677) and Policy Decorator (arXiv:2412.13630), see the module docstring.
    """

    def __init__(self, env: gym.Env, base_policy: BasePolicy | str, execute_steps: int | None = None,
                 base_policy_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(env)
        raw = env.observation_space
        scaler = ActionScaler.from_space(env.action_space)
        box = gym.spaces.Box(-1.0, 1.0, (scaler.dim,), np.float32)
        if isinstance(raw, gym.spaces.Dict):
            if BASE_ACTION_KEY in raw.spaces:
                raise ConfigError(f"the env's observation already has '{BASE_ACTION_KEY}' (a base policy wrapped twice?); "
                                  "give --env-kwargs base_policy once")
            self.observation_space = gym.spaces.Dict({**raw.spaces, BASE_ACTION_KEY: box})
        elif isinstance(raw, gym.spaces.Box):
            self.observation_space = gym.spaces.Dict({BOX_OBSERVATION_KEY: raw, BASE_ACTION_KEY: box})
        else:
            raise ConfigError(f"residual RL adds '{BASE_ACTION_KEY}' to Dict or Box observations; this env's is a "
                              f"{type(raw).__name__}")
        name = base_policy if isinstance(base_policy, str) else type(base_policy).__name__
        if isinstance(base_policy, str):
            base_policy = load_base_policy(base_policy, raw, env.action_space, env, **(base_policy_kwargs or {}))
        self.base_policy = base_policy
        self.source = BaseActionSource(base_policy, scaler, execute_steps, f"base policy {name}")
        self.base_action = np.zeros(scaler.dim, np.float32)

    def _observe(self, obs: Any) -> dict[str, Any]:
        self.base_action = self.source(obs)
        return with_base_action(obs, self.base_action.copy())

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset the env and the base policy; the observation carries the first chunk's first action."""
        obs, info = self.env.reset(**kwargs)
        self.source.reset()
        return self._observe(obs), info

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Execute ``action`` (absolute, env units) and add the next base action to the observation."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observe(obs), reward, terminated, truncated, info


def _row(tree: Any, t: int) -> Any:
    return {k: _row(v, t) for k, v in tree.items()} if isinstance(tree, dict) else tree[t]


def has_base_action(observations: Any) -> bool:
    """Whether a (stacked) observation tree already carries ``base_action``."""
    return isinstance(observations, dict) and BASE_ACTION_KEY in observations


def label_observations(observations: Any, source: BaseActionSource) -> dict[str, Any]:
    """Add ``base_action`` to one recorded episode's stacked observations (leading axis T+1), running
    the base policy over them in order after a reset, as :class:`BaseActionWrapper` would have.

    Args:
        observations: the episode's raw observation tree (:class:`robot_rl.demos.Episode.observations`).
        source: the base policy runner.

    Returns:
        The tree with ``base_action`` (T+1, A) float32 in [-1, 1] added.
    """
    leaf = observations
    while isinstance(leaf, dict):
        leaf = next(iter(leaf.values()))
    source.reset()
    actions = np.stack([source(_row(observations, t)) for t in range(len(leaf))])
    return with_base_action(observations, actions)


def base_action_source_for(env_id: str, env_kwargs: dict[str, Any]) -> BaseActionSource:
    """The base policy of a residual-RL env's kwargs, for labelling recorded observations (no live env
    is handed to the base policy; the env is made once, without the wrapper, to read its spaces).

    Args:
        env_id: the run's env ID.
        env_kwargs: the run's parsed env kwargs, with ``base_policy``.

    Raises:
        ConfigError: no ``base_policy`` in the kwargs, or one that cannot be loaded (see :func:`load_base_policy`),
            or one that reads the simulator.
    """
    from robot_rl.envs import make_env

    kwargs = dict(env_kwargs)
    settings = pop_base_policy_settings(kwargs)
    if settings is None:
        raise ConfigError(f"the run's observation has '{BASE_ACTION_KEY}' but its env kwargs name no base policy; "
                          f"pass --env-kwargs {BASE_POLICY_KEY} <policy dir | run dir | module:factory>")
    env = make_env(env_id, **kwargs)
    try:
        policy = load_base_policy(settings.spec, env.observation_space, env.action_space, None, **settings.kwargs)
        return BaseActionSource(policy, ActionScaler.from_space(env.action_space), settings.execute_steps,
                                f"base policy {settings.spec}")
    finally:
        env.close()

