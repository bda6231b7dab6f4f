"""Env steps per second of ``robot_rl/PandaPickLift-v0``: state only, two cameras, with shadows, and PyBullet.

Usage:
    python benchmarks/sim_speed.py [--steps 300] [--image-size 128]

Each configuration runs random actions (episodes reset as they end) after a short warm-up and
prints steps/s and the ratio to the baseline (both cameras with shadows on, MuJoCo's default look).
The PyBullet rows (``backend="pybullet"``) render with its CPU tiny renderer.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import robot_rl  # noqa: F401  (registers the IDs)


def steps_per_second(steps: int, **kwargs) -> float:
    """Random-action env steps per second of the pick-lift env made with ``kwargs``."""
    env = gym.make("robot_rl/PandaPickLift-v0", **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(10):  # warm-up: renderer contexts, caches
        env.step(env.action_space.sample())
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="timed env steps per configuration")
    parser.add_argument("--image-size", type=int, default=128, help="camera image size in pixels (square)")
    args = parser.parse_args()
    cams = {"cameras": ("front", "wrist"), "image_size": args.image_size}
    configs = [
        ("state only", {}),
        (f"front+wrist {args.image_size}px, shadows off", {**cams, "shadows": False}),
        (f"front+wrist {args.image_size}px, shadows on (baseline)", {**cams, "shadows": True}),
        ("pybullet: state only", {"backend": "pybullet"}),
        (f"pybullet: front+wrist {args.image_size}px", {**cams, "backend": "pybullet"}),
    ]
    rates = {name: steps_per_second(args.steps, **kw) for name, kw in configs}
    baseline = rates[configs[2][0]]
    width = max(len(n) for n in rates)
    print(f"{'configuration':<{width}}  {'steps/s':>8}  {'vs baseline':>11}")
    for name, rate in rates.items():
        print(f"{name:<{width}}  {rate:8.1f}  {rate / baseline:10.1f}x")


if __name__ == "__main__":
    main()
