"""SAC with automatic temperature and the RLPD choices, from state and/or pixels.

Sources:
    Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications", arXiv:1812.05905.
    Ball et al. 2023, "Efficient Online RL with Offline Data" (RLPD), arXiv:2302.02948,
    reference github.com/ikostrikov/rlpd: critic ensemble with LayerNorm, min over a random
    subset for the target, high update-to-data (UTD) ratio, ensemble-mean actor objective.
    Kostrikov et al. 2020, "Image Augmentation Is All You Need" (DrQ), arXiv:2004.13649, and
    Yarats et al. 2021 (DrQ-v2), arXiv:2107.09645: random-shift augmentation, a shared encoder
    trained by the critic only, no target encoder.
    Nakamoto et al. 2023 (Cal-QL), arXiv:2303.05479, and Kumar et al. 2020 (CQL),
    arXiv:2006.04779: the offline critic regulariser of pretraining (:mod:`robot_rl.offline`).
    Layout after CleanRL's ``sac_continuous_action.py``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from robot_rl.batch import Batch, Obs
from robot_rl.errors import CheckpointError, ConfigError, DeviceUnavailableError
from robot_rl.offline import PretrainConfig, cql_action_values, cql_regularizer
from robot_rl.policies.networks import CriticEnsemble, StateNormalizer
from robot_rl.policies.policy import PolicyConfig


@dataclass
class SACConfig:
    """SAC/RLPD learner settings."""

    gamma: float = 0.99
    """discount factor per env step."""
    tau: float = 0.005
    """Polyak rate of the target critics (target <- (1 - tau) target + tau online), after every critic step."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic ensemble and the image encoder."""
    temperature_lr: float = 3e-4
    """Adam learning rate of log(alpha)."""
    batch_size: int = 256
    """transitions per critic minibatch."""
    utd_ratio: int = 2
    """critic updates per env step (each on its own minibatch); RLPD uses 20 from state. Compute grows
    linearly with it; 2 keeps CPU training fast, raise it on a GPU for sample efficiency."""
    num_critics: int = 2
    """critic ensemble size E. SERL / HIL-SERL use 2 (the default: 2.5x faster on CPU and enough at this
    UTD ratio); RLPD uses 10, which pays off with its UTD of 20."""
    critic_subset_size: int = 2
    """target = min over this many randomly chosen target critics (RLPD/REDQ: 2)."""
    init_temperature: float = 0.01
    """initial entropy temperature alpha. RLPD uses 1.0; with sparse 0/1 manipulation rewards that makes
    the entropy bonus dwarf the task reward (measured here: Q ~ 50 of pure entropy, a uniform policy
    after 5k steps), so the default is HIL-SERL's / LeRobot's 0.01."""
    target_entropy: float | None = None
    """entropy target in nats; None: -action_dim / 2 (RLPD)."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """hidden widths of the actor and of every critic."""
    critic_layer_norm: bool = True
    """LayerNorm after each hidden layer of the critics (RLPD)."""
    backup_entropy: bool = False
    """subtract alpha * log pi(a'|s') in the critic target (soft Q backup). Off by default as in SERL /
    HIL-SERL, whose sparse-reward episodes end at success; on is textbook SAC."""
    actor_update_period: int = 1
    """update the actor and temperature on every N-th ``update`` call (delayed policy updates)."""
    actor_warmup_updates: int = 0
    """``update`` calls that train the critic only before the first actor and temperature step: the critic
    learns the value of the policy it starts from (a residual on a base policy, a pretrained actor) before
    the actor follows its gradient, instead of the random critic's (residual-RL critic warm-up)."""
    max_grad_norm: float | None = None
    """clip each network's gradient to this global L2 norm; None: no clipping."""
    encoder: Literal["drqv2", "resnet18"] = "drqv2"
    """image encoder: 'drqv2' trainable convs, or 'resnet18' frozen torchvision backbone + trained projection."""
    encoder_latent_dim: int = 50
    """image latent size L (Linear -> LayerNorm -> tanh on the concatenated camera features; DrQ: 50)."""
    encoder_strides: tuple[int, ...] = (2, 2, 2, 1)
    """drqv2 conv strides, one 3x3 conv per entry. DrQ uses (2, 1, 1, 1) on 84x84 images; (2, 2, 2, 1)
    suits 128x128 cameras (13x13 feature map, ~2.5x less compute than DrQ at 84x84)."""
    encoder_channels: int = 32
    """drqv2 filters per conv layer."""
    pretrained_weights: str | None = None
    """resnet18 weights: local .safetensors / torch state-dict path, or 'imagenet' (needs internet)."""
    image_shift_pad: int = 4
    """DrQ random-shift augmentation: max shift in pixels (edges replicated); 0 disables."""
    channels_last: bool = True
    """run the image encoder in torch.channels_last memory format (faster on CPU and GPU)."""
    normalize_state: bool = True
    """normalise the state vector with mean / std of the demo states, fixed before training (identity
    without demos). Positions of ~0.5 m that matter to a centimetre train slowly unnormalised."""
    residual_scale: float = 0.0
    """residual RL (ResiP, Ankile et al. 2024, arXiv:2407.16677; Policy Decorator, Yuan et al. 2024,
    arXiv:2412.13630): 0 trains an ordinary policy; > 0 makes the actor output a residual r in [-1, 1]
    and act ``clip(base + residual_scale * r, -1, 1)`` on the base policy's action that the env adds
    to the observation (``--env-kwargs base_policy <dir>``, :mod:`robot_rl.residual`); the residual's
    output layer starts at zero, so the first policy is the base policy."""
    compile: bool = False
    """torch.compile the networks (slow first updates; see benchmarks/learner_speed.py)."""


def resolve_device(name: str) -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` into a device that exists here.

    ``"auto"`` picks CUDA, then MPS, then CPU.

    Raises:
        DeviceUnavailableError: a GPU was requested but none (or not that index) is visible.
        ConfigError: the name is none of the above.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"unknown device '{name}'; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from e
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceUnavailableError(
                f"device '{name}' requested but torch sees no CUDA GPU (torch {torch.__version__}, built for CUDA "
                f"{torch.version.cuda}); pass --device cpu (or auto), or check the driver and CUDA_VISIBLE_DEVICES")
        if device.index is not None and device.index >= count:
            raise DeviceUnavailableError(f"device '{name}' requested but only {count} CUDA GPU(s) are visible "
                                         f"(cuda:0..cuda:{count - 1}); pick one of those or check CUDA_VISIBLE_DEVICES")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceUnavailableError(f"device '{name}' requested but Apple MPS is not available here; "
                                         "pass --device cpu (or auto)")
    elif device.type != "cpu":
        raise ConfigError(f"unsupported device '{name}'; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return device


def random_shift(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Translate each image of the batch by its own random integer shift in [-pad, pad] pixels (DrQ).

    Equivalent to DrQ's replicate-pad by ``pad`` then random crop back to (H, W): output pixel
    (i, j) of sample b is input pixel (clamp(i + dy_b), clamp(j + dx_b)). Vectorised gather, no
    loop over the batch, stays on the input's device.

    Args:
        images: (B, H, W, C) tensor of any dtype (uint8 from the replay buffer).
        pad: maximum shift in pixels; 0 returns the input unchanged.

    Returns:
        (B, H, W, C) tensor of the input dtype.

    Source: Kostrikov et al. 2020, "Image Augmentation Is All You Need", arXiv:2004.13649.
    """
    if pad == 0:
        return images
    b, h, w = images.shape[:3]
    shift = torch.randint(-pad, pad + 1, (b, 2), device=images.device)
    rows = (torch.arange(h, device=images.device) + shift[:, :1]).clamp_(0, h - 1)  # (B, H)
    cols = (torch.arange(w, device=images.device) + shift[:, 1:]).clamp_(0, w - 1)  # (B, W)
    batch = torch.arange(b, device=images.device)[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]]


def _adam(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where the device supports it, else the multi-tensor (foreach) one."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=lr, foreach=True)


def _minibatch(batch: Batch, lo: int, hi: int) -> Batch:
    """Rows [lo, hi) of ``batch`` as views (no copy)."""
    def obs(o: Obs) -> Obs:
        return Obs(o.state[lo:hi], {k: v[lo:hi] for k, v in o.images.items()})

    return Batch(obs(batch.obs), batch.action[lo:hi], batch.reward[lo:hi], obs(batch.next_obs), batch.terminated[lo:hi])


class SACAgent(nn.Module):
    """SAC/RLPD learner: networks, target critics, optimisers, temperature, and the update.

    Features: state (B, S) concatenated with the image latent (B, L) when there are cameras.
    The encoder is trained by the critic loss only; the actor reads its output detached.

    Args:
        state_dim: S (0 for pixels only).
        image_shapes: camera name -> (H, W, 3); empty for state only.
        action_dim: A; actions live in [-1, 1].
        config: learner settings.
        device: where networks and updates run (see :func:`resolve_device`).
        base_action_index: state indices of the base policy's action (residual RL,
            ``ObsLayout.base_action_index``); needed when ``config.residual_scale > 0``.

    Raises:
        ConfigError: inconsistent settings (see the messages).
    """

    def __init__(self, state_dim: int, image_shapes: dict[str, tuple[int, int, int]], action_dim: int,
                 config: SACConfig, device: torch.device | str = "cpu",
                 base_action_index: tuple[int, ...] | None = None) -> None:
        super().__init__()
        cfg = config
        if not 1 <= cfg.critic_subset_size <= cfg.num_critics:
            raise ConfigError(f"critic_subset_size={cfg.critic_subset_size} must be in [1, num_critics={cfg.num_critics}]")
        if cfg.utd_ratio < 1 or cfg.batch_size < 1 or cfg.actor_update_period < 1:
            raise ConfigError("utd_ratio, batch_size and actor_update_period must be >= 1")
        if state_dim == 0 and not image_shapes:
            raise ConfigError("the agent needs a state vector, cameras, or both; got neither")
        self.cfg = cfg
        self.device = torch.device(device)
        policy_cfg = PolicyConfig.from_agent_config(cfg)  # the policy's networks are built in one place
        self.encoder = policy_cfg.make_encoder(image_shapes)
        feature_dim = policy_cfg.feature_dim(state_dim, image_shapes)
        self.state_norm = StateNormalizer(state_dim)
        self.actor = policy_cfg.make_actor(state_dim, image_shapes, action_dim, base_action_index)
        self.critic = CriticEnsemble(feature_dim + action_dim, cfg.hidden_dims, cfg.num_critics, cfg.critic_layer_norm)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))
        self.action_dim = action_dim
        self.target_entropy = -action_dim / 2 if cfg.target_entropy is None else cfg.target_entropy
        self.to(self.device)
        encoder_params = [p for p in self.encoder.parameters() if p.requires_grad] if self.encoder else []
        self.critic_params = list(self.critic.parameters()) + encoder_params
        self.critic_optim = _adam(self.critic_params, cfg.critic_lr)
        self.actor_optim = _adam(list(self.actor.parameters()), cfg.actor_lr)
        self.temperature_optim = _adam([self.log_alpha], cfg.temperature_lr)
        self.num_updates = 0  # update() calls so far; drives actor_update_period
        if cfg.compile:
            for module in (self.encoder, self.actor, self.critic, self.target_critic):
                if module is not None:
                    module.compile()

    def features(self, obs: Obs, augment: bool = False) -> torch.Tensor:
        """(B, S + L) float32: state, then the image latent (DrQ-shifted images if ``augment``)."""
        state = self.state_norm(obs.state)
        if self.encoder is None:
            return state
        pad = self.cfg.image_shift_pad if augment else 0
        return torch.cat([state, self.encoder({k: random_shift(v, pad) for k, v in obs.images.items()})], dim=1)

    @torch.no_grad()
    def act(self, obs: Obs, deterministic: bool = False) -> torch.Tensor:
        """Actions (B, A) float32 in [-1, 1] on the agent's device: tanh(mean) or a policy sample."""
        feats = self.features(obs.to(self.device))
        return self.actor.deterministic(feats) if deterministic else self.actor.sample(feats)[0]

    def _step(self, optim: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.max_grad_norm is not None:
            for group in optim.param_groups:
                nn.utils.clip_grad_norm_(group["params"], self.cfg.max_grad_norm, foreach=True)
        optim.step()

    def update(self, batch: Batch, cql: PretrainConfig | None = None,
               mc_return: torch.Tensor | None = None) -> dict[str, float]:
        """``utd_ratio`` critic steps on consecutive minibatches, then one actor and temperature step.

        With ``cql`` (offline pretraining) each critic loss adds ``cql.cql_alpha`` times the CQL(H)
        regulariser, calibrated by ``mc_return`` when ``cql.calibrated`` (Cal-QL, see
        :func:`robot_rl.offline.cql_regularizer`); the actor and temperature steps are unchanged.

        Args:
            batch: ``utd_ratio * batch_size`` transitions on the agent's device.
            cql: the pretraining settings, or None for the online (SAC/RLPD) critic loss.
            mc_return: (``utd_ratio * batch_size``,) float32 Monte-Carlo return-to-go of each
                batch row's s (:meth:`robot_rl.replay.ReplayBuffer.return_to_go`); needed when
                ``cql.calibrated``.

        Returns:
            ``losses/critic`` (mean over minibatches, CQL term included), ``losses/actor``,
            ``losses/temperature``, ``values/alpha``, ``values/entropy`` (-log pi, nats),
            ``values/q_mean``, ``values/q_std`` (std across the ensemble), ``values/target_q_mean``;
            actor/temperature entries only on updates that step the actor. With ``cql`` also
            ``losses/cql`` (the regulariser's mean), ``values/cql_q_rand``, ``values/cql_q_pi``,
            ``values/cql_q_next_pi``, ``values/cql_ood``, ``values/cql_bound_rate``.

        Raises:
            ConfigError: the batch does not hold ``utd_ratio * batch_size`` rows, or Cal-QL without ``mc_return``.
        """
        cfg, n = self.cfg, self.cfg.batch_size
        if len(batch.obs) != cfg.utd_ratio * n:
            raise ConfigError(f"update() needs utd_ratio * batch_size = {cfg.utd_ratio} * {n} rows, got {len(batch.obs)}")
        if cql is not None and cql.calibrated and mc_return is None:
            raise ConfigError("Cal-QL (cql.calibrated) needs mc_return, the return-to-go of each batch row; "
                              "pass ReplayBuffer.return_to_go(gamma)[idx] or set calibrated=False for plain CQL")
        alpha = self.log_alpha.detach().exp()
        critic_logs, cql_logs = [], []
        for i in range(cfg.utd_ratio):
            mb = _minibatch(batch, i * n, (i + 1) * n)
            with torch.no_grad():  # target: y = r + gamma (1 - term) (min_subset Q'(s', a') - alpha log pi(a'|s'))
                next_feats = self.features(mb.next_obs, augment=True)
                next_action, next_log_prob = self.actor.sample(next_feats)
                subset = torch.randperm(cfg.num_critics, device=self.device)[: cfg.critic_subset_size]
                next_q = self.target_critic(torch.cat([next_feats, next_action], 1), subset).min(0).values
                if cfg.backup_entropy:
                    next_q = next_q - alpha * next_log_prob
                target_q = mb.reward + cfg.gamma * (1.0 - mb.terminated) * next_q
            feats = self.features(mb.obs, augment=True)  # the one encoder pass with grad
            q = self.critic(torch.cat([feats, mb.action], 1))  # (E, B)
            critic_loss = (q - target_q).pow(2).mean()  # mean over members and batch (RLPD)
            if cql is not None:  # Cal-QL / CQL(H): push down Q of sampled actions, up Q of the data's
                values = cql_action_values(self.critic, self.actor, feats, next_feats, cql.cql_num_actions)
                bound = None if mc_return is None or not cql.calibrated else mc_return[i * n:(i + 1) * n]
                reg, extra = cql_regularizer(q, *values, bound, self.action_dim, cql.cql_temperature)
                critic_loss = critic_loss + cql.cql_alpha * reg.mean()
                cql_logs.append(torch.stack([reg.detach().mean(), *extra.values()]))
            self._step(self.critic_optim, critic_loss)
            torch._foreach_lerp_(list(self.target_critic.parameters()), list(self.critic.parameters()), cfg.tau)
            critic_logs.append(torch.stack([critic_loss.detach(), q.detach().mean(), q.detach().std(0).mean(),
                                            target_q.mean()]))
        self.num_updates += 1
        logs = dict(zip(["losses/critic", "values/q_mean", "values/q_std", "values/target_q_mean"],
                        torch.stack(critic_logs).mean(0).tolist()))
        if cql_logs:
            logs.update(zip(["losses/cql", *(f"values/{k}" for k in extra)], torch.stack(cql_logs).mean(0).tolist()))
        if self.num_updates % cfg.actor_update_period == 0 and self.num_updates > cfg.actor_warmup_updates:
            feats = feats.detach()  # last minibatch's features: the actor does not train the encoder
            action, log_prob = self.actor.sample(feats)
            self.critic.requires_grad_(False)  # gradients flow through the critic to the action only
            q_pi = self.critic(torch.cat([feats, action], 1)).mean(0)  # ensemble mean (RLPD)
            self.critic.requires_grad_(True)
            actor_loss = (alpha * log_prob - q_pi).mean()
            self._step(self.actor_optim, actor_loss)
            entropy = -log_prob.detach().mean()
            temperature_loss = self.log_alpha.exp() * (entropy - self.target_entropy)  # arXiv:1812.05905 eq. 18
            self._step(self.temperature_optim, temperature_loss)
            logs.update(zip(["losses/actor", "losses/temperature", "values/entropy", "values/alpha"],
                            torch.stack([actor_loss.detach(), temperature_loss.detach(), entropy,
                                         self.log_alpha.detach().exp()]).tolist()))
        return logs

    def checkpoint_state(self) -> dict:
        """Everything a bit-identical resume needs: networks, target critics, log alpha, optimiser
        states and the update counter; tensors and plain numbers only (``torch.load(weights_only=True)``).
        The torch RNG state is the caller's to save (the trainer saves it with this)."""
        return {"networks": self.state_dict(), "critic_optim": self.critic_optim.state_dict(),
                "actor_optim": self.actor_optim.state_dict(),
                "temperature_optim": self.temperature_optim.state_dict(), "num_updates": self.num_updates}

    def load_checkpoint_state(self, state: dict) -> None:
        """Restore :meth:`checkpoint_state` output (tensors may be on any device).

        Raises:
            CheckpointError: the checkpoint was written by an agent of another shape or config.
        """
        try:
            self.load_state_dict(state["networks"])
            self.critic_optim.load_state_dict(state["critic_optim"])
            self.actor_optim.load_state_dict(state["actor_optim"])
            self.temperature_optim.load_state_dict(state["temperature_optim"])
            self.num_updates = int(state["num_updates"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"the checkpoint does not fit this agent ({type(e).__name__}: {e}); it was written "
                                  "with other observation/action spaces or other network settings") from e
