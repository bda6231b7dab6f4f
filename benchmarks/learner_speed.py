"""Learner gradient steps per second, robot_rl's SAC/RLPD update against a naive one, same run.

One step = one update at UTD 1 with batch 256 (``--batch-size``): one critic minibatch update (+
Polyak), one actor and one temperature update. Settings: state (20-dim state, 4-dim action) and
pixels (two 128x128 cameras, ``--image-size``, + 8-dim state, 4-dim action), both with a 10-critic
LayerNorm ensemble (RLPD).

The baseline is the common way SAC code is written (LeRobot's SAC, for example): a Python loop
over E separate critic networks (all E target critics evaluated, then a subset taken), each camera
encoded on its own, and the images encoded separately for the critic, the target and the actor
passes (here 3 encoder passes; the actor pass without grad), default Adam and a per-parameter
Polyak loop. It uses the same encoder architecture and DrQ shift, so the ratio measures the
implementation, not the model. Variants run interleaved over several rounds (median kept)
because other processes on a small machine make single timings noisy.

    python benchmarks/learner_speed.py                      # ~4 minutes on 2 CPU cores
    python benchmarks/learner_speed.py --pixel-steps 10 --pixel-rounds 3 --no-compile
    # the CPU scale of benchmarks/classifier_reward.py
    python benchmarks/learner_speed.py --image-size 64 --encoder-channels 16 --batch-size 128 --num-critics 2 \
        --pixel-steps 10 --pixel-rounds 3 --no-compile
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import tyro
from torch import nn

from robot_rl.agent import SACAgent, SACConfig, random_shift, resolve_device
from robot_rl.batch import Batch, Obs
from robot_rl.policies.networks import Actor


@dataclass
class Args:
    """Learner speed benchmark."""

    state_steps: int = 40
    """timed steps per round, state setting."""
    pixel_steps: int = 3
    """timed steps per round, pixel setting."""
    state_rounds: int = 5
    """interleaved timing rounds, state setting (the median is reported)."""
    pixel_rounds: int = 2
    """interleaved timing rounds, pixel setting (the median is reported)."""
    num_critics: int = 10
    """critic ensemble size E."""
    compile: bool = True
    """also time torch.compile variants (first steps include compilation; printed separately)."""
    pixels: bool = True
    """run the pixel setting."""
    image_size: int = 128
    """camera side in pixels, pixel setting (64 is the CPU scale of benchmarks/classifier_reward.py)."""
    encoder_channels: int = 32
    """filters per conv layer of the image encoder, pixel setting."""
    batch_size: int = 256
    """transitions per gradient step."""
    device: str = "cpu"
    """'cpu', 'cuda', 'auto' ..."""
    threads: int = 0
    """torch intra-op threads (0: torch's default)."""


def make_batch(n: int, state_dim: int, action_dim: int, cams: dict[str, tuple[int, int, int]],
               device: torch.device) -> Batch:
    def obs() -> Obs:
        return Obs(torch.randn(n, state_dim), {k: torch.randint(0, 256, (n, *s), dtype=torch.uint8) for k, s in cams.items()})

    return Batch(obs(), torch.rand(n, action_dim) * 2 - 1, torch.randn(n), obs(), (torch.rand(n) < 0.05).float()).to(device)


class NaiveSAC(nn.Module):
    """The baseline update (see the module docstring); same networks and losses as SACAgent."""

    def __init__(self, state_dim: int, cams: dict[str, tuple[int, int, int]], action_dim: int, cfg: SACConfig) -> None:
        super().__init__()
        self.cfg, self.cams = cfg, sorted(cams)
        latent = 0
        if cams:
            layers: list[nn.Module] = []
            in_ch = 3
            for s in cfg.encoder_strides:
                layers += [nn.Conv2d(in_ch, cfg.encoder_channels, 3, stride=s), nn.ReLU()]
                in_ch = cfg.encoder_channels
            self.conv = nn.Sequential(*layers)
            h, w, _ = cams[self.cams[0]]
            flat = self.conv(torch.zeros(1, 3, h, w)).numel() * len(cams)
            latent = cfg.encoder_latent_dim
            self.projection = nn.Sequential(nn.Linear(flat, latent), nn.LayerNorm(latent), nn.Tanh())
        feat = state_dim + latent

        def critic() -> nn.Sequential:
            dims, layers = feat + action_dim, []
            for h in cfg.hidden_dims:
                layers += [nn.Linear(dims, h), nn.LayerNorm(h), nn.ReLU()]
                dims = h
            return nn.Sequential(*layers, nn.Linear(dims, 1))

        self.actor = Actor(feat, action_dim, cfg.hidden_dims)
        self.critics = nn.ModuleList(critic() for _ in range(cfg.num_critics))
        self.targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.zeros(()))
        enc = list(self.conv.parameters()) + list(self.projection.parameters()) if cams else []
        self.critic_optim = torch.optim.Adam(list(self.critics.parameters()) + enc, lr=cfg.critic_lr)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.temperature_optim = torch.optim.Adam([self.log_alpha], lr=cfg.temperature_lr)
        self.target_entropy = -action_dim / 2

    def features(self, obs: Obs) -> torch.Tensor:
        if not self.cams:
            return obs.state
        per_camera = []
        for name in self.cams:  # each camera on its own
            x = random_shift(obs.images[name], self.cfg.image_shift_pad).permute(0, 3, 1, 2).float() / 255 - 0.5
            per_camera.append(self.conv(x.contiguous()).flatten(1))
        return torch.cat([obs.state, self.projection(torch.cat(per_camera, 1))], 1)

    def q_all(self, critics: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([c(x).squeeze(-1) for c in critics])  # (E, B), one member at a time

    def update(self, b: Batch) -> None:
        cfg, alpha = self.cfg, self.log_alpha.exp().detach()
        with torch.no_grad():
            next_feats = self.features(b.next_obs)  # encoder pass 1: target
            next_a, next_logp = self.actor.sample(next_feats)
            next_q = self.q_all(self.targets, torch.cat([next_feats, next_a], 1))
            next_q = next_q[torch.randperm(cfg.num_critics)[: cfg.critic_subset_size]].min(0).values
            y = b.reward + cfg.gamma * (1 - b.terminated) * (next_q - alpha * next_logp)
        q = self.q_all(self.critics, torch.cat([self.features(b.obs), b.action], 1))  # encoder pass 2: critic
        critic_loss = F.mse_loss(q, y.expand_as(q))
        self.critic_optim.zero_grad()
        critic_loss.backward()
        self.critic_optim.step()
        with torch.no_grad():
            feats = self.features(b.obs)  # encoder pass 3: actor
        a, logp = self.actor.sample(feats)
        actor_loss = (alpha * logp - self.q_all(self.critics, torch.cat([feats, a], 1)).mean(0)).mean()
        self.actor_optim.zero_grad()
        actor_loss.backward()
        self.actor_optim.step()
        temperature_loss = self.log_alpha.exp() * (-logp.detach().mean() - self.target_entropy)
        self.temperature_optim.zero_grad()
        temperature_loss.backward()
        self.temperature_optim.step()
        with torch.no_grad():
            for p, tp in zip(self.critics.parameters(), self.targets.parameters()):
                tp.data.copy_(cfg.tau * p.data + (1 - cfg.tau) * tp.data)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], object], n: int, device: torch.device) -> float:
    """Seconds per call of ``step`` over ``n`` calls."""
    sync(device)
    t = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return (time.perf_counter() - t) / n


def run_setting(title: str, state_dim: int, cams: dict[str, tuple[int, int, int]], steps: int, rounds: int,
                args: Args, device: torch.device) -> list[tuple[str, str, float, float, float]]:
    """Build every variant, warm each up, time them interleaved; rows (setting, variant, steps/s, ratio, warmup s)."""
    base = SACConfig(batch_size=args.batch_size, utd_ratio=1, num_critics=args.num_critics,
                     encoder_channels=args.encoder_channels)
    batch = make_batch(args.batch_size, state_dim, 4, cams, device)
    variants: dict[str, Callable[[], object]] = {}
    torch.manual_seed(0)
    naive = NaiveSAC(state_dim, cams, 4, base).to(device)
    variants["naive baseline (critic loop, 3 encoder passes)"] = lambda: naive.update(batch)
    options = [("robot_rl", {})]
    if cams:
        options = [("robot_rl, channels-last off", {"channels_last": False}), ("robot_rl, channels-last on", {})]
    if args.compile:
        options.append((options[-1][0] + " + torch.compile", {"compile": True}))
    for name, kw in options:
        agent = SACAgent(state_dim, cams, 4, SACConfig(**{**base.__dict__, **kw}), device)
        variants[name] = lambda agent=agent: agent.update(batch)
    warmup_s = {}
    for name, step in variants.items():
        warmup_s[name] = time_steps(step, 2, device) * 2
        print(f"  warmed up {name} ({warmup_s[name]:.1f} s for 2 steps)", flush=True)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in variants.items():
            times[name].append(time_steps(step, steps, device))
    rate = {name: 1.0 / statistics.median(t) for name, t in times.items()}
    baseline = next(iter(rate.values()))
    return [(title, name, r, r / baseline, warmup_s[name]) for name, r in rate.items()]


def main(args: Args) -> None:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {load:.2f}; batch {args.batch_size}, UTD 1, E={args.num_critics}")
    rows = []
    print("state: 20-dim state, 4-dim action", flush=True)
    rows += run_setting("state", 20, {}, args.state_steps, args.state_rounds, args, device)
    if args.pixels:
        n = args.image_size
        print(f"pixels: 2 cameras {n}x{n} ({args.encoder_channels} filters) + 8-dim state, 4-dim action", flush=True)
        rows += run_setting("pixels", 8, {"front": (n, n, 3), "wrist": (n, n, 3)}, args.pixel_steps,
                            args.pixel_rounds, args, device)
    print(f"\n| setting | variant | steps/s | x baseline | first 2 steps (s) |\n|---|---|---:|---:|---:|")
    for setting, name, r, ratio, warm in rows:
        print(f"| {setting} | {name} | {r:.2f} | {ratio:.2f} | {warm:.1f} |")


if __name__ == "__main__":
    main(tyro.cli(Args))
