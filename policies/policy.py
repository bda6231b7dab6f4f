"""The deployable policy: state normaliser + image encoder + actor, the observation layout and the
action scaling, and nothing of the learner (no critics, optimisers, replay, simulator).

What runs on a robot PC imports this module, ``robot_rl.layout`` (gymnasium + numpy),
``robot_rl.policies.networks`` and ``robot_rl.errors`` only: never ``robot_rl.agent``,
``robot_rl.learner``, ``robot_rl.train``, ``robot_rl.sim``, ``robot_rl.drivers``, MuJoCo or PyBullet
(tests/test_policy.py checks this in a fresh interpreter). The one exception is
:meth:`Policy.from_run` without an explicit layout, which makes the run's env to read its spaces
and so imports the simulator; it runs on the learner's side (``robot-rl export-policy``).

A saved policy is a directory::

    policy.safetensors        flat tensors, keys actor.*, encoder.*, state_norm.*
    policy.json               format/version, observation layout, action bounds, network settings, metadata
    policy.torchscript.pt     optional (robot-rl export-policy): traced deterministic forward in env units

Shapes: B batch, S state dim, A action dim, L image latent dim, (H, W, 3) a camera image.

A residual policy (``network.residual_scale > 0``, :class:`~robot_rl.policies.networks.ResidualActor`)
reads the base policy's action from the ``base_action`` entry of its observation (part of its state
vector) and returns ``clip(base + residual_scale * r, -1, 1)`` in env units from :meth:`Policy.act`,
its TorchScript module included. It does not run the base policy itself: act on observations of
the env made with the same ``base_policy`` env kwargs (``metadata["env_kwargs"]``,
:mod:`robot_rl.residual`).

Sources:
    Tanh-Gaussian actor: Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications",
    arXiv:1812.05905. Image encoder: Kostrikov et al. 2020 (DrQ), arXiv:2004.13649.
    The split of the deployable policy from the learner follows Stable-Baselines3's ``policies``
    (``BasePolicy.save`` / ``load``, ``predict``) and LeRobot's ``PreTrainedPolicy`` directories.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robot_rl.errors import CheckpointError, ConfigError, ObservationLayoutError
from robot_rl.layout import BASE_ACTION_KEY, ActionScaler, ObsLayout
from robot_rl.policies.networks import Actor, ImageEncoder, ResidualActor, StateNormalizer

#: ``format`` and ``version`` of ``policy.json``; a reader refuses any other pair.
POLICY_FORMAT = "robot_rl.policy"
POLICY_VERSION = 1
#: File names inside a policy directory.
PARAMS_FILE = "policy.safetensors"
SPEC_FILE = "policy.json"
TORCHSCRIPT_FILE = "policy.torchscript.pt"
#: Key prefixes of the flat parameter dict (the prefixes of the agent modules the policy shares).
PARAM_PREFIXES = ("actor", "encoder", "state_norm")


@dataclass(frozen=True)
class PolicyConfig:
    """Network settings a policy needs to rebuild its modules (a subset of the learner's ``SACConfig``).

    No defaults: the learner's ``SACConfig`` is the one home of the default values; build this from
    it with :meth:`from_agent_config`, or from a saved ``policy.json``.

    Raises:
        ConfigError: ``pretrained_weights`` given for an encoder other than ``resnet18``, or a negative
            ``residual_scale``.
    """

    hidden_dims: tuple[int, ...]
    """hidden widths of the actor MLP."""
    encoder: str
    """image encoder: 'drqv2' (trainable convs) or 'resnet18' (frozen torchvision backbone + projection)."""
    encoder_latent_dim: int
    """image latent size L."""
    encoder_strides: tuple[int, ...]
    """drqv2 conv strides, one 3x3 conv per entry."""
    encoder_channels: int
    """drqv2 filters per conv layer."""
    channels_last: bool
    """run the image encoder in torch.channels_last memory format (same numbers, speed only)."""
    pretrained_weights: str | None
    """resnet18 weights the learner started from (path or 'imagenet'); a saved policy carries the
    backbone in its tensors, so loading one never reads this file."""
    residual_scale: float = 0.0
    """0: an ordinary actor; > 0: a residual actor acting ``clip(base + residual_scale * r, -1, 1)``
    on the base action in the observation (see ``SACConfig.residual_scale``). The one default here:
    policies saved before residual RL existed lack the field and are ordinary ones."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        object.__setattr__(self, "encoder_strides", tuple(int(s) for s in self.encoder_strides))
        object.__setattr__(self, "residual_scale", float(self.residual_scale))
        if not self.residual_scale >= 0:
            raise ConfigError(f"residual_scale must be >= 0 (0: an ordinary policy), got {self.residual_scale}")
        if self.pretrained_weights is not None and self.encoder != "resnet18":
            raise ConfigError(f"pretrained_weights is only used by encoder='resnet18' (got encoder='{self.encoder}'); "
                              "set --agent.encoder resnet18 or drop the weights")

    @classmethod
    def from_agent_config(cls, config: Any) -> PolicyConfig:
        """Read this config's fields by name from a ``SACConfig``-like object or a dict (extra fields
        such as learning rates are ignored).

        Args:
            config: an object with attributes, or a mapping (e.g. ``config.json``'s ``"agent"``).

        Raises:
            ConfigError: a field is missing (the message names it).
        """
        names = [f.name for f in fields(cls)]
        get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
        optional = {f.name for f in fields(cls) if f.default is not MISSING}
        missing = [n for n in names if n not in optional and get(n, _MISSING) is _MISSING]
        if missing:
            raise ConfigError(f"agent config {type(config).__name__} lacks the network settings {missing}; "
                              "pass a SACConfig (or its JSON from a run's config.json)")
        return cls(**{n: get(n) for n in names if get(n, _MISSING) is not _MISSING})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def feature_dim(self, state_dim: int, image_shapes: dict[str, tuple[int, int, int]]) -> int:
        """S + L with cameras, S without: the width of the actor's (and critics') input features."""
        return state_dim + (self.encoder_latent_dim if image_shapes else 0)

    def make_encoder(self, image_shapes: dict[str, tuple[int, int, int]],
                     load_pretrained: bool = True) -> ImageEncoder | None:
        """A fresh image encoder for ``image_shapes`` (camera -> (H, W, 3)), or None without cameras.

        Args:
            load_pretrained: read ``pretrained_weights`` into a resnet18 backbone; False builds it with
                random weights (for loading a saved policy, whose tensors carry the backbone).

        Raises:
            ConfigError / PretrainedWeightsError: see :class:`~robot_rl.policies.networks.ImageEncoder`.
        """
        if not image_shapes:
            return None
        return ImageEncoder(image_shapes, self.encoder_latent_dim, self.encoder, self.encoder_strides,
                            self.encoder_channels, self.pretrained_weights if load_pretrained else None,
                            self.channels_last)

    def make_actor(self, state_dim: int, image_shapes: dict[str, tuple[int, int, int]], action_dim: int,
                   base_action_index: tuple[int, ...] | None = None) -> Actor:
        """A fresh tanh-Gaussian actor reading :meth:`feature_dim` features, A = ``action_dim``; a
        :class:`~robot_rl.policies.networks.ResidualActor` on the base action at ``base_action_index``
        (state indices, ``ObsLayout.base_action_index``) when ``residual_scale > 0``.

        Raises:
            ConfigError: ``residual_scale > 0`` without a base action in the observation, or a base
                action of another length than ``action_dim``.
        """
        feature_dim = self.feature_dim(state_dim, image_shapes)
        if self.residual_scale > 0:
            if base_action_index is None:
                raise ConfigError(f"residual_scale={self.residual_scale} needs the base policy's action in the "
                                  f"observation ('{BASE_ACTION_KEY}'), and this env has none: pass --env-kwargs "
                                  "base_policy <policy dir | run dir | module:factory> (robot_rl.residual), or "
                                  "--agent.residual-scale 0 for an ordinary policy")
            return ResidualActor(feature_dim, action_dim, self.hidden_dims, base_action_index, self.residual_scale)
        return Actor(feature_dim, action_dim, self.hidden_dims)


_MISSING = object()


def describe_layout(layout: ObsLayout, scaler: ActionScaler | None = None) -> str:
    """One line naming every state leaf, camera and the action bounds, for error messages."""
    state = ", ".join(f"{'/'.join(p) or '<root>'}{list(s)}" for p, s in zip(layout.state_paths, layout.state_shapes))
    cams = ", ".join(f"{n}{list(s)} at {'/'.join(layout.image_paths[n]) or '<root>'}"
                     for n, s in layout.image_shapes.items())
    text = f"state S={layout.state_dim} [{state or 'none'}]; cameras [{cams or 'none'}]"
    if scaler is not None:
        text += f"; actions A={scaler.dim} low {scaler.low.tolist()} high {scaler.high.tolist()}"
    return text


def layout_to_dict(layout: ObsLayout) -> dict[str, Any]:
    """An :class:`ObsLayout` as plain JSON types (paths and shapes as lists, camera order kept)."""
    return {"state_paths": [list(p) for p in layout.state_paths],
            "state_shapes": [list(s) for s in layout.state_shapes],
            "image_paths": {k: list(v) for k, v in layout.image_paths.items()},
            "image_shapes": {k: list(v) for k, v in layout.image_shapes.items()}}


def layout_from_dict(data: dict[str, Any]) -> ObsLayout:
    """Inverse of :func:`layout_to_dict`.

    Raises:
        KeyError / TypeError / ValueError: ``data`` is not a layout dict (callers turn this into their error).
    """
    return ObsLayout(tuple(tuple(str(k) for k in p) for p in data["state_paths"]),
                     tuple(tuple(int(d) for d in s) for s in data["state_shapes"]),
                     {str(k): tuple(str(x) for x in v) for k, v in data["image_paths"].items()},
                     {str(k): tuple(int(d) for d in v) for k, v in data["image_shapes"].items()})


class Policy(nn.Module):
    """A SAC policy that acts on raw gymnasium observations: split by the layout, normalise the
    state, encode the cameras, tanh-Gaussian actor, rescale to the env's action bounds.

    Build it with :meth:`from_modules` (shares a learner's modules), :meth:`build` (fresh modules),
    :meth:`from_spec` (a JSON spec + flat tensors, e.g. a parameter message), :meth:`load` (a saved
    directory) or :meth:`from_run` (a training run's latest checkpoint).

    Features are ``cat(state_norm(state), encoder(images))`` exactly as ``SACAgent.features`` computes
    them without augmentation, so :meth:`act_normalized` equals ``SACAgent.act`` bit for bit for the
    same weights and torch RNG state.

    Args:
        layout: how observations split into state (S,) float32 and camera images (H, W, 3) uint8.
        scaler: the env's action bounds (actions are produced in [-1, 1] and mapped onto them).
        state_norm: the fixed state normaliser (S).
        encoder: image encoder, None exactly when the layout has no cameras.
        actor: tanh-Gaussian actor reading S (+ L) features.
        config: the network settings the modules were built with.
        metadata: JSON-able notes saved with the policy (env ID, env kwargs, source run ...).

    Raises:
        ConfigError: the modules do not fit the layout or the action dimension.
    """

    def __init__(self, layout: ObsLayout, scaler: ActionScaler, state_norm: StateNormalizer,
                 encoder: ImageEncoder | None, actor: Actor, config: PolicyConfig,
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__()
        if int(state_norm.mean.shape[0]) != layout.state_dim:
            raise ConfigError(f"state normaliser has S={state_norm.mean.shape[0]} but the layout's state vector has "
                              f"S={layout.state_dim}")
        if (encoder is None) != (not layout.image_shapes):
            raise ConfigError(f"the layout has cameras {list(layout.image_shapes)} but the encoder is {type(encoder).__name__}; "
                              "pass an ImageEncoder exactly when there are cameras")
        first, last = actor.net[0], actor.net[-1]
        feature_dim = config.feature_dim(layout.state_dim, layout.image_shapes)
        if first.in_features != feature_dim or last.out_features != 2 * scaler.dim:
            raise ConfigError(f"actor maps {first.in_features} features to {last.out_features // 2} actions; the layout and "
                              f"action space need {feature_dim} features (S={layout.state_dim} + latent) and A={scaler.dim}")
        if (config.residual_scale > 0) != isinstance(actor, ResidualActor) or (
                isinstance(actor, ResidualActor) and actor.residual_scale != config.residual_scale):
            raise ConfigError(f"the config has residual_scale={config.residual_scale} but the actor is a "
                              f"{type(actor).__name__}; build the actor with config.make_actor")
        self.layout, self.scaler, self.config = layout, scaler, config
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.state_norm, self.encoder, self.actor = state_norm, encoder, actor

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_modules(cls, layout: ObsLayout, scaler: ActionScaler, state_norm: StateNormalizer,
                     encoder: ImageEncoder | None, actor: Actor, config: PolicyConfig | Any,
                     metadata: dict[str, Any] | None = None) -> Policy:
        """A policy that SHARES the given modules (no copy): it always acts with their current
        weights, e.g. ``Policy.from_modules(layout, scaler, agent.state_norm, agent.encoder,
        agent.actor, agent.cfg)`` in the in-process trainer. Train/eval mode is left as it is.
        Moving this policy (``.to``) moves the shared modules too.

        Args:
            config: a :class:`PolicyConfig` or a ``SACConfig``-like object (read by :meth:`PolicyConfig.from_agent_config`).

        Raises:
            ConfigError: see the class.
        """
        if not isinstance(config, PolicyConfig):
            config = PolicyConfig.from_agent_config(config)
        return cls(layout, scaler, state_norm, encoder, actor, config, metadata)

    @classmethod
    def build(cls, layout: ObsLayout, scaler: ActionScaler, config: PolicyConfig | Any,
              device: torch.device | str = "cpu", load_pretrained: bool = True,
              metadata: dict[str, Any] | None = None) -> Policy:
        """Fresh modules (random weights, identity normaliser) in eval mode on ``device``.

        Args:
            config: a :class:`PolicyConfig` or a ``SACConfig``-like object.
            load_pretrained: read a resnet18 encoder's ``pretrained_weights``; False when the weights
                will come from :meth:`load_params` anyway (no file or download needed).

        Raises:
            ConfigError / PretrainedWeightsError: bad settings, images too small, unreadable weights.
        """
        if not isinstance(config, PolicyConfig):
            config = PolicyConfig.from_agent_config(config)
        policy = cls(layout, scaler, StateNormalizer(layout.state_dim),
                     config.make_encoder(layout.image_shapes, load_pretrained),
                     config.make_actor(layout.state_dim, layout.image_shapes, scaler.dim, layout.base_action_index),
                     config, metadata)
        return policy.to(device).eval().requires_grad_(False)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], params: dict[str, torch.Tensor],
                  device: torch.device | str = "cpu") -> Policy:
        """Rebuild a policy from :meth:`spec` output and flat tensors (``policy.json`` +
        ``policy.safetensors``, or a parameter message's meta + tensors).

        Args:
            spec: the JSON-able dict of :meth:`spec`.
            params: flat tensors with keys ``actor.*``, ``encoder.*``, ``state_norm.*`` on any device.
            device: where the policy runs.

        Raises:
            CheckpointError: another format/version, missing or malformed fields, tensors that do not fit.
        """
        if not isinstance(spec, dict) or spec.get("format") != POLICY_FORMAT or spec.get("version") != POLICY_VERSION:
            got = (spec.get("format"), spec.get("version")) if isinstance(spec, dict) else type(spec).__name__
            raise CheckpointError(f"policy spec has format/version {got}; this robot_rl reads "
                                  f"{POLICY_FORMAT} v{POLICY_VERSION} (export the run again with this version)")
        try:
            layout = layout_from_dict(spec["observation"])
            low = np.asarray(spec["action"]["low"], np.float64)
            high = np.asarray(spec["action"]["high"], np.float64)
            config = PolicyConfig(**spec["network"])
            metadata = spec.get("metadata") or {}
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"policy spec is malformed ({type(e).__name__}: {e}); it needs 'observation' "
                                  "(state_paths, state_shapes, image_paths, image_shapes), 'action' (low, high) and "
                                  "'network' (PolicyConfig fields)") from e
        if low.ndim != 1 or low.shape != high.shape or not np.all(low < high):
            raise CheckpointError(f"policy spec has action bounds low {low.tolist()} high {high.tolist()}; "
                                  "they must be 1-D, of one length, with low < high")
        policy = cls.build(layout, ActionScaler(low, high), config, device, load_pretrained=False, metadata=metadata)
        policy.load_params(params)
        return policy

    @classmethod
    def load(cls, directory: str | Path, device: torch.device | str = "cpu") -> Policy:
        """Read a directory written by :meth:`save` (or ``robot-rl export-policy``).

        Raises:
            CheckpointError: the directory or a file is missing or unreadable, another format version,
                or tensors that do not fit the spec.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        spec_path, params_path = directory / SPEC_FILE, directory / PARAMS_FILE
        missing = [p.name for p in (spec_path, params_path) if not p.is_file()]
        if missing:
            raise CheckpointError(f"{directory} is not a policy directory: {' and '.join(missing)} missing. Write one "
                                  "with `robot-rl export-policy --run-dir <run>` or Policy.save(directory)")
        try:
            spec = json.loads(spec_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{spec_path} cannot be read ({type(e).__name__}: {e})") from e
        try:
            params = load_file(str(params_path), device="cpu")
        except (OSError, SafetensorError) as e:
            raise CheckpointError(f"{params_path} cannot be read ({type(e).__name__}: {e})") from e
        try:
            return cls.from_spec(spec, params, device)
        except CheckpointError as e:
            raise CheckpointError(f"{directory}: {e}") from e

    @classmethod
    def from_run(cls, run_dir: str | Path, device: torch.device | str = "cpu", layout: ObsLayout | None = None,
                 scaler: ActionScaler | None = None) -> Policy:
        """The policy of a training run's latest checkpoint (``robot-rl train`` or ``robot-rl learner`` runs).

        Reads ``config.json`` (``env``, ``env_kwargs``, ``agent``) and the checkpoint's
        ``tensors["agent"]["networks"]`` (the ``actor.*``, ``encoder.*``, ``state_norm.*`` entries).
        Without ``layout`` and ``scaler`` the run's env is made (``robot_rl.envs.make_env`` with the
        run's env kwargs) to read its spaces, and closed again: that imports the simulator, so call
        it on the learner's side, or pass both to avoid it. Reward settings do not change the spaces.

        Args:
            run_dir: directory printed by ``robot-rl train`` / ``robot-rl learner``.
            device: where the policy runs.
            layout / scaler: the env's observation layout and action bounds (both or neither).

        Returns:
            The policy, with metadata ``env``, ``env_kwargs`` (as in config.json), ``run_dir``,
            ``checkpoint`` and ``env_steps``.

        Raises:
            CheckpointError: no run directory, no checkpoint, or a config/checkpoint that does not fit.
            ConfigError: the env cannot be made.
        """
        from robot_rl.runs import latest_checkpoint, load_checkpoint

        run_dir = Path(run_dir)
        if (layout is None) != (scaler is None):
            raise ConfigError("pass both layout and scaler, or neither (then the run's env is made to read them)")
        ckpt = latest_checkpoint(run_dir)  # also checks config.json exists
        try:
            raw = json.loads((run_dir / "config.json").read_text())
            env_id, env_kwargs, agent_cfg = raw["env"], raw.get("env_kwargs") or {}, raw["agent"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{run_dir}/config.json is not a robot_rl run config ({type(e).__name__}: {e}); "
                                  "it needs 'env', 'env_kwargs' and 'agent'") from e
        try:
            config = PolicyConfig.from_agent_config(agent_cfg)
        except ConfigError as e:
            raise CheckpointError(f"{run_dir}/config.json: {e}") from e
        if layout is None:
            from robot_rl.envs import make_env, parse_env_kwargs

            env = make_env(env_id, **parse_env_kwargs(env_kwargs))
            try:
                layout, scaler = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
            finally:
                env.close()
        tensors, state = load_checkpoint(ckpt, map_location="cpu")
        try:
            networks = tensors["agent"]["networks"]
        except (KeyError, TypeError) as e:
            raise CheckpointError(f"checkpoint {ckpt} holds no agent networks (tensors['agent']['networks'])") from e
        params = {k: v for k, v in networks.items() if k.split(".", 1)[0] in PARAM_PREFIXES}
        metadata = {"env": env_id, "env_kwargs": env_kwargs, "run_dir": str(run_dir), "checkpoint": ckpt.name,
                    "env_steps": state.get("env_steps", state.get("received"))}
        policy = cls.build(layout, scaler, config, device, load_pretrained=False, metadata=metadata)
        try:
            policy.load_params(params)
        except CheckpointError as e:
            raise CheckpointError(f"checkpoint {ckpt} does not fit the run's env and config.json: {e}") from e
        return policy

    # ------------------------------------------------------------------ parameters
    @property
    def device(self) -> torch.device:
        """Where the (possibly shared) actor's parameters are now."""
        return next(self.actor.parameters()).device

    @property
    def camera_names(self) -> tuple[str, ...]:
        """Camera names in layout order (the order of the TorchScript module's image arguments)."""
        return tuple(self.layout.image_shapes)

    def _modules_by_prefix(self) -> dict[str, nn.Module]:
        return {p: m for p, m in (("actor", self.actor), ("encoder", self.encoder), ("state_norm", self.state_norm))
                if m is not None}

    def params(self) -> dict[str, torch.Tensor]:
        """Flat dict of contiguous copies on the policy's device, keys
        ``actor.*``, ``encoder.*`` (with cameras), ``state_norm.*``."""
        return {f"{prefix}.{k}": v.detach().clone(memory_format=torch.contiguous_format)
                for prefix, module in self._modules_by_prefix().items() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def load_params(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy flat tensors (:meth:`params` format, any device)
        into the modules. Nothing is changed unless every key and shape fits.

        Raises:
            CheckpointError: missing or unexpected keys, or a shape mismatch (the message names them).
        """
        expected = {f"{p}.{k}": v for p, m in self._modules_by_prefix().items() for k, v in m.state_dict().items()}
        missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        wrong = [f"{k} {tuple(tensors[k].shape)} (needs {tuple(v.shape)})" for k, v in expected.items()
                 if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)]
        if missing or unexpected or wrong:
            parts = [f"missing {missing}" if missing else "", f"unexpected {unexpected}" if unexpected else "",
                     f"wrong shapes {wrong}" if wrong else ""]
            raise CheckpointError(f"policy tensors do not fit this policy ({describe_layout(self.layout, self.scaler)}, "
                                  f"network {self.config.to_dict()}): {'; '.join(p for p in parts if p)}. "
                                  "They come from another env layout or other network settings")
        for prefix, module in self._modules_by_prefix().items():
            module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})

    # ------------------------------------------------------------------ acting
    def features(self, state: torch.Tensor, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """Actor input features: normalised state and image latents.

        Args:
            state: (B, S) float32. images: camera -> (B, H, W, 3) uint8 (or float in [0, 255]).

        Returns:
            (B, S + L) float32, as ``SACAgent.features(obs, augment=False)``.
        """
        state = self.state_norm(state)
        if self.encoder is None:
            return state
        return torch.cat([state, self.encoder(images)], dim=1)

    def forward(self, state: torch.Tensor, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """Deterministic batched actions tanh(mean) for tracing and batch evaluation.

        Args:
            state: (B, S) float32 on the policy's device.
            images: camera name -> (B, H, W, 3) uint8, the layout's cameras.

        Returns:
            (B, A) float32 in [-1, 1] (not env units; see :meth:`act`).
        """
        return self.actor.deterministic(self.features(state, images))

    def _check_split(self, state: Any, images: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        state = np.asarray(state, dtype=np.float32)
        if state.shape != (self.layout.state_dim,):
            raise ObservationLayoutError(f"state has shape {state.shape}; this policy reads ({self.layout.state_dim},) "
                                         f"float32 ({describe_layout(self.layout)})")
        if set(images) != set(self.layout.image_shapes):
            raise ObservationLayoutError(f"got cameras {sorted(images)}; this policy reads {sorted(self.layout.image_shapes)}")
        out = {}
        for name, shape in self.layout.image_shapes.items():
            img = np.asarray(images[name])
            if img.shape != shape or img.dtype != np.uint8:
                raise ObservationLayoutError(f"camera '{name}' image is {img.dtype} {img.shape}; this policy reads "
                                             f"uint8 {shape} (H, W, RGB)")
            out[name] = img
        return state, out

    def act_normalized(self, state: np.ndarray, images: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        """Action for one already split observation, in the learner's [-1, 1] units.

        Equals ``SACAgent.act(Obs.single(state, images, device), deterministic)[0]`` bit for bit for
        the same weights and torch RNG state: the stochastic branch draws its noise through
        ``Actor.sample`` (one ``randn_like`` of shape (1, A) on the policy's device).

        Args:
            state: (S,) float32 (see :meth:`robot_rl.layout.ObsLayout.split`).
            images: camera name -> (H, W, 3) uint8 RGB, exactly the layout's cameras.
            deterministic: tanh(mean) if True, else a sample of the tanh-Gaussian.

        Returns:
            (A,) float32 numpy array in [-1, 1].

        Raises:
            ObservationLayoutError: a shape, dtype or camera name that the policy does not read.
        """
        state, images = self._check_split(state, images)
        device = self.device
        state_t = torch.as_tensor(state, device=device).unsqueeze(0)
        images_t = {k: torch.as_tensor(v, device=device).unsqueeze(0) for k, v in images.items()}
        with torch.no_grad():
            feats = self.features(state_t, images_t)
            action = self.actor.deterministic(feats) if deterministic else self.actor.sample(feats)[0]
        return action[0].cpu().numpy()

    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Action for one raw observation of the env, in the env's action units.

        Args:
            obs: one observation of the env the policy was trained on (dict or array), split by the layout.
            deterministic: tanh(mean) (deployment, evaluation) if True, else a policy sample.

        Returns:
            (A,) float32 numpy array in the env's units, within its [low, high] bounds.

        Raises:
            ObservationLayoutError: the observation does not have the policy's layout.
        """
        try:
            state, images = self.layout.split(obs)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ObservationLayoutError(f"observation does not fit the policy's layout ({type(e).__name__}: {e}); "
                                         f"the policy reads {describe_layout(self.layout)}") from e
        return self.scaler.to_env(self.act_normalized(state, images, deterministic))

    def check_env(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """Check that an env's spaces are those the policy was trained on.

        Raises:
            ObservationLayoutError: the observation layout (state leaves, shapes, cameras) or the action
                bounds differ; the message names both.
        """
        ours = describe_layout(self.layout, self.scaler)
        try:
            layout, scaler = ObsLayout.from_space(observation_space), ActionScaler.from_space(action_space)
        except ObservationLayoutError as e:
            raise ObservationLayoutError(f"the env's spaces cannot be read ({e}); the policy needs {ours}") from e
        same_actions = (scaler.low.shape == self.scaler.low.shape and np.array_equal(scaler.low, self.scaler.low)
                        and np.array_equal(scaler.high, self.scaler.high))
        if layout != self.layout or not same_actions:
            raise ObservationLayoutError(
                f"the env does not match the policy.\n  policy: {ours}\n  env:    {describe_layout(layout, scaler)}\n"
                "Make the env with the env ID and env kwargs the policy was trained with (policy.json 'metadata')")

    # ------------------------------------------------------------------ saving
    def spec(self) -> dict[str, Any]:
        """Everything but the tensors, as plain JSON types (the contents of ``policy.json``):
        ``format``, ``version``, ``observation`` (layout), ``action`` (low, high in env units),
        ``network`` (:class:`PolicyConfig`), ``torchscript_inputs`` (argument order of the traced
        module) and ``metadata``."""
        return {"format": POLICY_FORMAT, "version": POLICY_VERSION, "observation": layout_to_dict(self.layout),
                "action": {"low": self.scaler.low.tolist(), "high": self.scaler.high.tolist()},
                "network": self.config.to_dict(), "torchscript_inputs": ["state", *self.camera_names],
                "metadata": self.metadata}

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write ``policy.safetensors`` and ``policy.json`` into ``directory`` (created if needed;
        each file is written to a temporary name and renamed, so a crash leaves no half file).

        Args:
            metadata: JSON-able entries added to (and overriding) :attr:`metadata`, e.g. ``env``, ``env_kwargs``.

        Returns:
            The directory.

        Raises:
            TypeError: metadata that JSON cannot encode.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        spec = self.spec()
        spec["metadata"] = {**self.metadata, **(metadata or {})}
        text = json.dumps(spec, indent=2)  # before any file is touched: fails on non-JSON metadata
        tmp = directory / (PARAMS_FILE + ".tmp")
        save_file({k: v.cpu() for k, v in self.params().items()}, str(tmp), metadata={"format": POLICY_FORMAT})
        os.replace(tmp, directory / PARAMS_FILE)
        tmp = directory / (SPEC_FILE + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, directory / SPEC_FILE)
        return directory

    def export_torchscript(self, path: str | Path) -> Path | None:
        """Trace the deterministic batched forward in env units with ``torch.jit.trace`` and save it.

        The traced module takes ``(state, *images)``: state (B, S) float32, then one (B, H, W, 3)
        uint8 tensor per camera in :attr:`camera_names` order, on the device the policy is on now,
        and returns (B, A) float32 actions in the env's units (clipped to [low, high], with the
        arithmetic of :meth:`ActionScaler.to_env`, so a batch of one equals :meth:`act` bit for bit
        on CPU; larger batches may differ in the last bits, as matrix products of other shapes do).
        ``torch.jit`` is deprecated in recent torch (its FutureWarnings are silenced here) but still
        the one format that loads with torch alone. Load it with ``torch.jit.load(path)``; it
        needs torch only.

        ONNX is not exported: ``torch.onnx.export`` needs the ``onnx`` (legacy exporter) or
        ``onnxscript`` (default exporter) packages, which are not robot_rl dependencies.

        Returns:
            ``path``, or None when tracing failed (a ``RuntimeWarning`` says why; nothing is written
            and an older file at ``path`` is removed so a stale module is never left behind).
        """
        path = Path(path)
        wrapper = _EnvUnitPolicy(self)
        device = self.device
        example = (torch.zeros(2, self.layout.state_dim, device=device),
                   *(torch.zeros(2, *self.layout.image_shapes[n], dtype=torch.uint8, device=device)
                     for n in self.camera_names))
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=FutureWarning)
                traced = torch.jit.trace(wrapper, example)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                torch.jit.save(traced, str(tmp))
                os.replace(tmp, path)
        except Exception as e:  # noqa: BLE001 - any tracing failure: warn, never break the export
            path.unlink(missing_ok=True)
            warnings.warn(f"TorchScript export failed ({type(e).__name__}: {e}); no {path.name} written. "
                          "policy.safetensors + policy.json remain the deployable policy (Policy.load)",
                          RuntimeWarning, stacklevel=2)
            return None
        return path


class _EnvUnitPolicy(nn.Module):
    """``(state, *images) -> (B, A)`` float32 env-unit actions: the traceable deterministic forward."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy
        self.names = policy.camera_names
        device = policy.device
        self.register_buffer("low", torch.as_tensor(policy.scaler.low, dtype=torch.float64, device=device))
        self.register_buffer("high", torch.as_tensor(policy.scaler.high, dtype=torch.float64, device=device))

    def forward(self, state: torch.Tensor, *images: torch.Tensor) -> torch.Tensor:
        action = self.policy(state, dict(zip(self.names, images))).clamp(-1.0, 1.0)
        # ActionScaler.to_env's arithmetic: (a + 1) * 0.5 in float32 (numpy keeps the array's dtype with a
        # Python float), then low + that * (high - low) in float64, rounded to float32
        return (self.low + ((action + 1.0) * 0.5).double() * (self.high - self.low)).float()
