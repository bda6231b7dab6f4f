"""Two trainings on one machine: speed of each against one alone, with and without core sharing.

Runs real ``robot-rl train`` processes (pick-and-lift from state, no demos, a fixed number of env
steps with one update per step, evaluation and video off) and reports wall-clock and env steps/s:

1. one run alone, automatic thread share (``--torch-threads 0``: every core, it is alone);
2. two runs started together, automatic shares (:mod:`robot_rl.threads` splits the cores);
3. two runs started together, each with every core (``--torch-threads <cores>``: what torch does
   by default, the oversubscription this module removes); the baseline, same run.

The goal (the learner issue): each of two trainings side by side keeps >= 0.4 of one alone's
speed (a fair split of the cores keeps 0.5).

    python benchmarks/thread_sharing.py                 # ~3 minutes on 2 CPU cores
    python benchmarks/thread_sharing.py --steps 2000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from robot_rl.threads import available_cores


def _train(run_dir: Path, steps: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "robot_rl.cli", "train", "--env", "robot_rl/PandaPickLift-v0", "--num-demos", "0",
           "--total-env-steps", str(steps), "--eval-every-steps", "0", "--eval-episodes", "1",
           "--checkpoint-every-steps", "0", "--no-final-video", "--no-progress", "--torch-threads", str(threads),
           "--run-dir", str(run_dir)]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**env, "MUJOCO_GL": "egl"})


def _together(root: Path, tag: str, n: int, steps: int, threads: int) -> list[float]:
    t0 = time.perf_counter()
    procs = [_train(root / f"{tag}_{i}", steps, threads) for i in range(n)]
    walls = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"robot-rl train failed:\n{err.decode()[-2000:]}")
        walls.append(time.perf_counter() - t0)
    return walls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1000, help="env steps per training run")
    args = p.parse_args()
    cores = available_cores()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        alone = _together(root, "alone", 1, args.steps, 0)[0]
        shared = _together(root, "shared", 2, args.steps, 0)
        oversub = _together(root, "oversubscribed", 2, args.steps, cores)
    print(f"robot-rl train, pick-and-lift from state, {args.steps} env steps each, {cores} cores\n")
    print("| setting | wall s (each) | env steps/s (each) | speed kept vs alone |")
    print("|---|---:|---:|---:|")
    print(f"| one alone, automatic share | {alone:.1f} | {args.steps / alone:.1f} | 1.00 |")
    for name, walls in (("two together, automatic shares (robot_rl.threads)", shared),
                        (f"two together, {cores} threads each (baseline: torch's default)", oversub)):
        kept = [alone / w for w in walls]
        print(f"| {name} | {' / '.join(f'{w:.1f}' for w in walls)} | "
              f"{' / '.join(f'{args.steps / w:.1f}' for w in walls)} | {' / '.join(f'{k:.2f}' for k in kept)} |")


if __name__ == "__main__":
    main()
