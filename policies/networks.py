"""Networks of the SAC/RLPD learner: image encoders, the tanh-Gaussian actor, the critic ensemble.

Shapes: B batch, N cameras, E ensemble members, S state dim, A action dim, L image latent dim.
Images arrive as the replay buffer stores them: camera name -> (B, H, W, 3) uint8 RGB.

Sources:
    DrQ encoder: Kostrikov et al. 2020, "Image Augmentation Is All You Need", arXiv:2004.13649
    (reference: github.com/denisyarats/drq); Yarats et al. 2021, DrQ-v2, arXiv:2107.09645.
    Latent Linear -> LayerNorm -> tanh: Yarats et al. 2019, SAC-AE, arXiv:1910.01741.
    Critic ensemble with LayerNorm: Ball et al. 2023, RLPD, arXiv:2302.02948
    (reference: github.com/ikostrikov/rlpd).
    Tanh-squashed Gaussian: Haarnoja et al. 2018, arXiv:1812.05905, appendix C.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.errors import ConfigError, PretrainedWeightsError

# ImageNet channel statistics torchvision's pretrained ResNets expect (RGB, inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# log std range of the actor (DrQ / CleanRL): log_std = tanh-rescaled into [LOG_STD_MIN, LOG_STD_MAX].
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(in_dim: int, hidden_dims: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """Linear-ReLU stack ``in_dim -> hidden_dims... -> out_dim`` (no activation on the output)."""
    layers: list[nn.Module] = []
    for h in hidden_dims:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def _camera_groups(image_shapes: dict[str, tuple[int, int, int]]) -> list[list[str]]:
    """Camera names grouped by (H, W, 3) in sorted-name order; each group is encoded as one batch."""
    groups: dict[tuple[int, int, int], list[str]] = {}
    for name in sorted(image_shapes):
        shape = tuple(image_shapes[name])
        if len(shape) != 3 or shape[2] != 3:
            raise ConfigError(f"camera '{name}' has shape {shape}; image encoders take (H, W, 3) uint8 RGB")
        groups.setdefault(shape, []).append(name)
    return list(groups.values())


def _stack_cameras(images: dict[str, torch.Tensor], names: list[str], memory_format: torch.memory_format) -> torch.Tensor:
    """(B, H, W, 3) uint8 per camera -> (B*N, 3, H, W) float32 in [0, 255], batch-major (b0c0, b0c1, ...)."""
    x = torch.stack([images[n] for n in names], dim=1).flatten(0, 1)  # (B*N, H, W, 3) uint8
    # permute gives a channels-last strided view; the float copy keeps or changes that layout.
    return x.permute(0, 3, 1, 2).to(torch.float32, memory_format=memory_format)


class StateNormalizer(nn.Module):
    """Fixed affine normalisation of the state vector: ``clip((x - mean) / std, -clip, clip)``.

    The statistics are set once (from the demos, :meth:`fit`) and then frozen, so a checkpoint
    holds them and a resumed or deployed policy sees exactly the inputs it was trained on.
    Identity until fitted.

    Args:
        state_dim: S.
        min_std: floor of each std (constant entries, such as the yaw cosine when yaw is off,
            would otherwise divide by zero), in the state's own units.
        clip: bound of the normalised values.
    """

    def __init__(self, state_dim: int, min_std: float = 1e-2, clip: float = 10.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(state_dim))
        self.register_buffer("std", torch.ones(state_dim))
        self.min_std, self.clip = min_std, clip

    @torch.no_grad()
    def fit(self, states: torch.Tensor, identity_dims: tuple[int, ...] = ()) -> None:
        """Set mean and std from (N, S) float32 states (N >= 2).

        Args:
            identity_dims: state indices left unnormalised (mean 0, std 1), e.g. the base policy's
                action in a residual-RL observation, which the residual actor reads as it is.
        """
        if states.ndim != 2 or states.shape[1] != self.mean.shape[0] or states.shape[0] < 2:
            raise ValueError(f"fit() needs (N >= 2, {self.mean.shape[0]}) states, got {tuple(states.shape)}")
        self.mean.copy_(states.mean(0))
        self.std.copy_(states.std(0).clamp_min(self.min_std))
        if identity_dims:
            idx = torch.as_tensor(identity_dims, dtype=torch.long, device=self.mean.device)
            self.mean[idx], self.std[idx] = 0.0, 1.0

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """(B, S) float32 -> (B, S) float32 normalised."""
        return ((state - self.mean) / self.std).clamp(-self.clip, self.clip)


class ImageEncoder(nn.Module):
    """Camera dict -> (B, L) latent: per-camera conv features, concatenated, Linear -> LayerNorm -> tanh.

    ``backbone="drqv2"``: trainable DrQ-style conv stack (3x3 kernels, ``channels`` filters, no
    padding, ReLU, strides ``strides``), inputs scaled to ``x / 255 - 0.5``. DrQ uses strides
    (2, 1, 1, 1) on 84x84 images.
    ``backbone="resnet18"``: torchvision ResNet-18 up to global average pooling (512 features per
    camera), frozen (``requires_grad=False``, always eval mode, run under ``no_grad``), ImageNet
    normalisation; weights from ``pretrained`` (a local ``.safetensors`` / torch state-dict path,
    or ``"imagenet"`` for torchvision's download). Only the projection is trained then.

    Conv weights are shared by all cameras; cameras of the same size run as one batch of B*N.

    Args:
        image_shapes: camera name -> (H, W, 3).
        latent_dim: L, output features.
        backbone: ``"drqv2"`` or ``"resnet18"``.
        strides: drqv2 conv strides, one per layer.
        channels: drqv2 filters per layer.
        pretrained: resnet18 weights (path or ``"imagenet"``); None keeps random weights
            (frozen random features: only for tests).
        channels_last: run the convs in ``torch.channels_last`` memory format (faster with oneDNN
            on CPU and with cuDNN; see benchmarks/learner_speed.py).

    Raises:
        ConfigError: unknown backbone, bad image shape, images too small for the conv stack.
        PretrainedWeightsError: weights missing, unreadable, or not downloadable.
    """

    def __init__(self, image_shapes: dict[str, tuple[int, int, int]], latent_dim: int = 50, backbone: str = "drqv2",
                 strides: tuple[int, ...] = (2, 1, 1, 1), channels: int = 32, pretrained: str | Path | None = None,
                 channels_last: bool = True) -> None:
        super().__init__()
        if not image_shapes:
            raise ConfigError("ImageEncoder needs at least one camera; state-only agents use no encoder")
        self.groups = _camera_groups(image_shapes)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.frozen = backbone == "resnet18"
        if backbone == "drqv2":
            layers: list[nn.Module] = []
            in_ch = 3
            for s in strides:
                layers += [nn.Conv2d(in_ch, channels, 3, stride=s), nn.ReLU(inplace=True)]
                in_ch = channels
            self.backbone = nn.Sequential(*layers)
            mean, std = (0.5, 0.5, 0.5), (1.0, 1.0, 1.0)  # x / 255 - 0.5 (DrQ)
        elif backbone == "resnet18":
            self.backbone = frozen_resnet18(pretrained)
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        else:
            raise ConfigError(f"unknown image encoder '{backbone}'; use 'drqv2' (trainable conv) or 'resnet18' (frozen)")
        self.backbone.to(memory_format=self.memory_format)
        # (x / 255 - mean) / std as one in-place multiply-add on [0, 255] pixels
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std).view(1, 3, 1, 1)), persistent=False)
        self.register_buffer("offset", -torch.tensor(mean).view(1, 3, 1, 1) / torch.tensor(std).view(1, 3, 1, 1),
                             persistent=False)
        feat_dim = 0
        with torch.no_grad():
            for names in self.groups:
                h, w, _ = image_shapes[names[0]]
                probe = torch.zeros(1, h, w, 3, dtype=torch.uint8)
                try:
                    feat_dim += self._features({n: probe for n in names}, names).shape[1]
                except RuntimeError as e:
                    raise ConfigError(f"cameras {names} of size {h}x{w} are too small for conv strides {strides}; "
                                      "use larger images or fewer/smaller strides") from e
        self.feature_dim = feat_dim
        self.projection = nn.Sequential(nn.Linear(feat_dim, latent_dim), nn.LayerNorm(latent_dim), nn.Tanh())

    def train(self, mode: bool = True) -> ImageEncoder:
        """Set train/eval mode; a frozen backbone always stays in eval mode (BatchNorm statistics)."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def _features(self, images: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
        """(B, N*F) backbone features of one camera group, flattened (h, w, C) per camera."""
        b = images[names[0]].shape[0]
        x = _stack_cameras(images, names, self.memory_format).mul_(self.scale).add_(self.offset)
        x = self.backbone(x)  # (B*N, C, h, w)
        # (h, w, C) order is a free view for channels-last output and fixes the Linear's layout.
        return x.permute(0, 2, 3, 1).reshape(b, -1)

    def forward(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """Encode camera name -> (B, H, W, 3) uint8 into a (B, L) float32 latent in (-1, 1)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            feats = torch.cat([self._features(images, names) for names in self.groups], dim=1)
        return self.projection(feats)


def frozen_resnet18(weights: str | Path | None) -> nn.Module:
    """torchvision ResNet-18 without its classifier (outputs (B, 512, 1, 1)), frozen, eval mode.

    Args:
        weights: local ``.safetensors`` or torch state-dict file (keys as torchvision names them;
            ``fc.*`` is ignored), ``"imagenet"`` (torchvision's ``IMAGENET1K_V1``, downloaded),
            or None (random weights).

    Raises:
        PretrainedWeightsError: the file is missing/unreadable/mismatched, or the download failed.
    """
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    if weights is not None:
        net.load_state_dict(_resnet18_state_dict(weights), strict=False)  # strict=False: no fc.* keys
    net.requires_grad_(False)
    return nn.Sequential(*list(net.children())[:-1]).eval()  # drop fc: ends at global average pooling


def _resnet18_state_dict(weights: str | Path) -> dict[str, torch.Tensor]:
    import torchvision

    if str(weights) == "imagenet":
        try:
            sd = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except Exception as e:  # noqa: BLE001 - URLError, timeouts, SSL, HTTP errors: one message
            raise PretrainedWeightsError(
                f"could not download the ImageNet ResNet-18 weights ({type(e).__name__}: {e}). On a machine without "
                "internet access, save them elsewhere with `torch.save(torchvision.models.resnet18(weights='IMAGENET1K_V1')"
                ".state_dict(), 'resnet18.pt')` and pass the local file path as the pretrained weights instead"
            ) from e
    else:
        path = Path(weights)
        if not path.is_file():
            raise PretrainedWeightsError(f"ResNet-18 weights file {path} does not exist; pass a local .safetensors or "
                                         "torch state-dict file, or 'imagenet' to download torchvision's weights")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                sd = load_file(str(path))
            else:
                sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user-facing error
            raise PretrainedWeightsError(f"cannot read ResNet-18 weights {path} ({type(e).__name__}: {e})") from e
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    expected = {k for k in torchvision.models.resnet18(weights=None).state_dict() if not k.startswith("fc.")}
    if set(sd) != expected:
        raise PretrainedWeightsError(f"{weights} is not a torchvision ResNet-18 state dict: missing "
                                     f"{sorted(expected - set(sd))[:3]}, unexpected {sorted(set(sd) - expected)[:3]}")
    return sd


def tanh_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Log-density in nats of the action ``tanh(x)`` under ``tanh(N(mean, exp(log_std)^2))``.

    ``sum_a [log N(x; mean, std) - log(1 - tanh(x)^2)]``, the Jacobian written stably as
    ``2 (log 2 - x - softplus(-2x))`` (Haarnoja et al. 2018, arXiv:1812.05905, eq. 26).

    Args:
        x: (B, A) float32 pre-tanh values (for a given action a in (-1, 1): ``atanh(a)``).
        mean / log_std: (B, A) float32 of the pre-tanh Gaussian (:meth:`Actor.dist_params`).

    Returns:
        (B,) float32.
    """
    gauss = -0.5 * ((x - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    return (gauss - 2.0 * (math.log(2.0) - x - F.softplus(-2.0 * x))).sum(-1)


class Actor(nn.Module):
    """Tanh-squashed diagonal Gaussian policy ``pi(a | features)``, actions in (-1, 1)^A.

    ``log_std`` is squashed into [LOG_STD_MIN, LOG_STD_MAX] = [-5, 2] with a rescaled tanh (DrQ).
    Log-probabilities include the tanh change of variables (Haarnoja et al. 2018, arXiv:1812.05905,
    eq. 26), computed stably as ``log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x))``.

    Args:
        in_dim: S + L, the features the actor reads.
        action_dim: A.
        hidden_dims: MLP widths.
    """

    def __init__(self, in_dim: int, action_dim: int, hidden_dims: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.net = mlp(in_dim, hidden_dims, 2 * action_dim)

    def dist_params(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S+L) -> mean (B, A), log_std (B, A) of the pre-tanh Gaussian."""
        mean, log_std = self.net(features).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1.0)
        return mean, log_std

    def sample(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample: action (B, A) in (-1, 1) and its log-probability (B,) in nats."""
        mean, log_std = self.dist_params(features)
        x = mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(x), tanh_gaussian_log_prob(x, mean, log_std)

    def deterministic(self, features: torch.Tensor) -> torch.Tensor:
        """tanh(mean): the (B, A) action used for evaluation and deployment."""
        return torch.tanh(self.dist_params(features)[0])


class ResidualActor(Actor):
    """Residual tanh-Gaussian actor on a frozen base policy's action (residual RL).

    The base action is read from the features at ``base_action_index`` (the state comes first in
    the features, and the state normaliser leaves those dims raw), in [-1, 1]. The actor's own
    tanh-Gaussian output ``r`` in (-1, 1)^A is a bounded correction:
    ``action = clip(base + residual_scale * r, -1, 1)``, so ``|action - base| <= residual_scale``
    elementwise. The mean rows of the output layer start at zero (weights and bias), so before any
    update ``deterministic`` returns the base action exactly. Parameter names are those of
    :class:`Actor` (``net.*``): the base index is a non-persistent buffer, rebuilt from the layout.

    Args:
        in_dim: S + L, the features the actor reads.
        action_dim: A.
        hidden_dims: MLP widths.
        base_action_index: A indices of the base action in the features (``ObsLayout.base_action_index``).
        residual_scale: bound of the correction in [-1, 1] action units, > 0.

    Raises:
        ConfigError: ``base_action_index`` of another length than A or outside the features, or
            ``residual_scale <= 0``.

    Sources: Ankile et al. 2024, ResiP, arXiv:2407.16677 (base action in the residual's input);
    Yuan et al. 2024, Policy Decorator, arXiv:2412.13630 (bounded residual scale, zero initialisation).
    """

    def __init__(self, in_dim: int, action_dim: int, hidden_dims: tuple[int, ...], base_action_index: tuple[int, ...],
                 residual_scale: float) -> None:
        super().__init__(in_dim, action_dim, hidden_dims)
        index = tuple(int(i) for i in base_action_index)
        if len(index) != action_dim:
            raise ConfigError(f"the base action in the observation has {len(index)} entries but the env has A={action_dim} "
                              "actions; the base policy must act in the env's own action space")
        if index and not 0 <= min(index) <= max(index) < in_dim:
            raise ConfigError(f"base action indices {index} lie outside the {in_dim} actor features")
        if not residual_scale > 0:
            raise ConfigError(f"residual_scale must be > 0 for a residual actor, got {residual_scale}")
        self.residual_scale = float(residual_scale)
        self.register_buffer("base_index", torch.as_tensor(index, dtype=torch.long), persistent=False)
        with torch.no_grad():  # the mean rows of the output layer: r's mean starts at 0, the policy at the base
            self.net[-1].weight[:action_dim].zero_()
            self.net[-1].bias[:action_dim].zero_()

    def base_action(self, features: torch.Tensor) -> torch.Tensor:
        """(B, S+L) -> (B, A) base action in [-1, 1], as it stands in the features."""
        return features.index_select(1, self.base_index)

    def sample(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample: action (B, A) ``clip(base + scale * r, -1, 1)`` and the
        log-probability (B,) of the residual r in nats (the scale is a constant shift of it)."""
        residual, log_prob = super().sample(features)
        return (self.base_action(features) + self.residual_scale * residual).clamp(-1.0, 1.0), log_prob

    def deterministic(self, features: torch.Tensor) -> torch.Tensor:
        """(B, A) ``clip(base + scale * tanh(mean), -1, 1)``: evaluation and deployment."""
        return (self.base_action(features) + self.residual_scale * super().deterministic(features)).clamp(-1.0, 1.0)


class EnsembleLinear(nn.Module):
    """E independent ``Linear(in_dim, out_dim)`` layers evaluated as one batched matmul.

    Weight (E, in, out), bias (E, 1, out); each member is initialised like ``nn.Linear``
    (uniform in ±1/sqrt(in_dim) for weight and bias).
    """

    def __init__(self, num_members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(num_members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """x (E', B, in) or (B, in) shared by all -> (E', B, out); ``members`` (E',) int64 selects E' members."""
        w, b = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        if x.dim() == 2:
            return torch.matmul(x, w) + b  # broadcasts (B, in) @ (E', in, out)
        return torch.baddbmm(b, x, w)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last dim with a separate affine (E, 1, D) per ensemble member."""

    def __init__(self, num_members: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_members, 1, dim))
        self.bias = nn.Parameter(torch.zeros(num_members, 1, dim))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """x (E', B, D) -> (E', B, D)."""
        w, b = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return torch.addcmul(b, F.layer_norm(x, x.shape[-1:]), w)


class CriticEnsemble(nn.Module):
    """E Q-functions ``Q_e(features, action)``, each an MLP ``[Linear -> LayerNorm -> ReLU]* -> Linear``,
    all evaluated in one batched pass (no Python loop over members).

    Args:
        in_dim: S + L + A.
        hidden_dims: MLP widths.
        num_members: E (RLPD: 10).
        layer_norm: LayerNorm after each hidden Linear (RLPD's key stabiliser at high UTD).
    """

    def __init__(self, in_dim: int, hidden_dims: tuple[int, ...] = (256, 256), num_members: int = 10,
                 layer_norm: bool = True) -> None:
        super().__init__()
        self.num_members = num_members
        self.hidden = nn.ModuleList()
        self.norms = nn.ModuleList()
        for h in hidden_dims:
            self.hidden.append(EnsembleLinear(num_members, in_dim, h))
            if layer_norm:
                self.norms.append(EnsembleLayerNorm(num_members, h))
            in_dim = h
        self.out = EnsembleLinear(num_members, in_dim, 1)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, S+L+A) -> Q-values (E', B); ``members`` (E',) int64 evaluates only those members."""
        for i, linear in enumerate(self.hidden):
            x = linear(x, members)
            if self.norms:
                x = self.norms[i](x, members)
            x = F.relu(x)
        return self.out(x, members).squeeze(-1)
