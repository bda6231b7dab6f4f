"""Env steps and wall-clock to reach >= 90% eval success, median over seeds.

Each seed is a real ``robot-rl train`` process (20 scripted demos recorded into its run, RLPD
50/50 sampling) that evaluates every ``--eval-every`` env steps and stops at the threshold. The
baseline, measured in the same run when ``--baseline`` is given, is plain SAC: the same learner
with no demos.

    python benchmarks/sample_efficiency.py                       # (a) state, target <= 10k steps
    python benchmarks/sample_efficiency.py --pixels              # (b) front + wrist 128x128, target <= 20k
    python benchmarks/sample_efficiency.py --seeds 1 2 3 --jobs 2 --baseline

Extra arguments after ``--`` go to every ``robot-rl train`` (e.g. ``-- --agent.utd-ratio 4``).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_seed(env: str, seed: int, steps: int, demos: int, eval_every: int, eval_episodes: int, threshold: float,
             root: Path, tag: str, extra: list[str], threads: int) -> dict:
    run_dir = root / f"{tag}__seed{seed}"
    cmd = [sys.executable, "-m", "robot_rl.cli", "train", "--env", env, "--seed", str(seed),
           "--total-env-steps", str(steps), "--num-demos", str(demos), "--eval-every-steps", str(eval_every),
           "--eval-episodes", str(eval_episodes), "--stop-at-success", str(threshold),
           "--checkpoint-every-steps", str(max(steps // 2, 1)), "--run-dir", str(run_dir), "--no-progress",
           "--no-final-video", "--torch-threads", str(threads), *extra]
    t0 = time.perf_counter()
    log = open(root / f"{tag}__seed{seed}.log", "w")
    proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MUJOCO_GL": "egl"})
    wall = time.perf_counter() - t0
    rows = list(csv.DictReader(open(run_dir / "evals.csv"))) if (run_dir / "evals.csv").exists() else []
    hit = next((r for r in rows if float(r["success_rate"]) >= threshold), None)
    return {"seed": seed, "ok": proc.returncode == 0, "steps": int(hit["env_steps"]) if hit else None,
            "wall_s": float(hit["wall_s"]) if hit else None, "best": max((float(r["success_rate"]) for r in rows), default=0.0),
            "total_wall_s": wall, "run_dir": str(run_dir)}


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pixels", action="store_true", help="pixel variant (front + wrist 128x128)")
    p.add_argument("--env", default=None, help="env ID (default: pick-and-lift, state or pixels)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--steps", type=int, default=None, help="env-step budget per seed (default 10k state / 20k pixels)")
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--jobs", type=int, default=2, help="seeds trained in parallel")
    p.add_argument("--baseline", action="store_true", help="also run plain SAC without demos")
    p.add_argument("--out", type=Path, default=Path("runs/bench_sample_efficiency"))
    args = p.parse_args(argv)
    env = args.env or ("robot_rl/PandaPickLiftPixels-v0" if args.pixels else "robot_rl/PandaPickLift-v0")
    steps = args.steps or (20_000 if args.pixels else 10_000)
    root = args.out / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    variants = [("rlpd_20demos", args.demos)] + ([("sac_no_demos", 0)] if args.baseline else [])
    results = {}
    for tag, demos in variants:
        with ThreadPoolExecutor(args.jobs) as pool:
            futs = [pool.submit(run_seed, env, s, steps, demos, args.eval_every, args.eval_episodes, args.threshold,
                                root, tag, extra, threads) for s in args.seeds]
            results[tag] = [f.result() for f in futs]
    print(f"\n{env}: env steps to >= {args.threshold:.0%} eval success ({args.eval_episodes} episodes every "
          f"{args.eval_every} steps), budget {steps} steps, seeds {args.seeds}, {args.jobs} in parallel, "
          f"{threads} torch thread(s) each; extra args: {' '.join(extra) or '-'}")
    print(f"{'variant':<16}{'seed':>6}{'steps':>9}{'wall s':>9}{'best eval':>11}")
    medians = {}
    for tag, rs in results.items():
        for r in rs:
            wall = f"{r['wall_s']:.0f}" if r["wall_s"] else "-"
            reached_s = str(r["steps"]) if r["steps"] else f">{steps}"
            print(f"{tag:<16}{r['seed']:>6}{reached_s:>9}{wall:>9}{r['best']:>11.2f}"
                  + ("" if r["ok"] else "   (train failed: see log)"))
        reached = [r["steps"] if r["steps"] else float("inf") for r in rs]
        walls = [r["wall_s"] if r["wall_s"] else float("inf") for r in rs]
        medians[tag] = (statistics.median(reached), statistics.median(walls))
        m_steps, m_wall = medians[tag]
        m_steps_s = f"{m_steps:.0f}" if m_steps != float("inf") else f">{steps}"
        m_wall_s = f"{m_wall:.0f}" if m_wall != float("inf") else "-"
        print(f"{tag:<16}{'median':>6}{m_steps_s:>9}{m_wall_s:>9}")
    if "sac_no_demos" in medians:
        a, b = medians["rlpd_20demos"][0], medians["sac_no_demos"][0]
        ratio = "n/a" if a == float("inf") else (f">= {steps / a:.1f}x" if b == float("inf") else f"{b / a:.1f}x")
        print(f"ratio (SAC without demos / RLPD with demos, env steps): {ratio}")
    print(f"runs and logs: {root}")


if __name__ == "__main__":
    main()
