"""Replay bytes per transition with two 128x128 cameras (target <= 100 KB).

Fills robot_rl's ReplayBuffer with real episodes of the pixel pick-and-lift env (front + wrist
cameras, 128x128) and reports the bytes it holds per stored transition, against the baseline
layout most SAC code bases use (obs and next_obs stored separately, images as uint8, as in
SERL / LeRobot's buffers), computed from the same observation space in the same run.

    python benchmarks/replay_memory.py [--env robot_rl/PandaPickLiftPixels-v0] [--episodes 4]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from robot_rl.envs import make_env  # noqa: E402
from robot_rl.layout import ActionScaler, ObsLayout  # noqa: E402
from robot_rl.replay import ReplayBuffer  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="robot_rl/PandaPickLiftPixels-v0")
    p.add_argument("--episodes", type=int, default=4)
    args = p.parse_args()

    env = make_env(args.env)
    layout = ObsLayout.from_space(env.observation_space)
    scaler = ActionScaler.from_space(env.action_space)
    lengths = []
    capacity = 0
    episodes = []
    rng = np.random.default_rng(0)
    for ep in range(args.episodes):
        obs, _ = env.reset(seed=ep)
        traj = [obs]
        done = False
        while not done:
            a = rng.uniform(-1, 1, scaler.dim).astype(np.float32)
            obs, r, term, trunc, _ = env.step(scaler.to_env(a))
            traj.append((a, r, obs, term))
            done = term or trunc
        episodes.append(traj)
        lengths.append(len(traj) - 1)
        capacity += len(traj)
    env.close()
    buf = ReplayBuffer(layout, scaler.dim, capacity)
    for traj in episodes:
        buf.start_episode(traj[0])
        for a, r, o, term in traj[1:]:
            buf.add(a, r, o, term)
        buf.end_episode()
    n = len(buf)
    ours = buf.nbytes / n
    img_bytes = sum(int(np.prod(s)) for s in layout.image_shapes.values())
    baseline = 2 * (img_bytes + 4 * layout.state_dim) + 4 * scaler.dim + 4 + 1  # obs + next_obs + a, r, done
    print(f"env {args.env}: cameras {layout.image_shapes}, state {layout.state_dim}, action {scaler.dim}, "
          f"{args.episodes} episodes of mean length {np.mean(lengths):.1f}")
    print(f"{'layout':<44}{'bytes/transition':>18}{'KB (1000 B)':>14}")
    print(f"{'baseline: obs + next_obs stored separately':<44}{baseline:>18,.0f}{baseline / 1000:>14.1f}")
    print(f"{'robot_rl ReplayBuffer (s_t+1 = next row)':<44}{ours:>18,.0f}{ours / 1000:>14.1f}")
    print(f"ratio baseline / robot_rl: {baseline / ours:.2f}x; robot_rl = {ours / 1024:.1f} KiB; "
          f"target <= 100 KB (1000 B): {'met' if ours <= 100_000 else 'missed'}, <= 100 KiB: {'met' if ours <= 102_400 else 'missed'}")
    print(f"(one observation is {img_bytes:,} image bytes; each episode adds one final-observation row, "
          f"i.e. a factor (T+1)/T = {(np.mean(lengths) + 1) / np.mean(lengths):.3f} at T = {np.mean(lengths):.0f})")


if __name__ == "__main__":
    main()
