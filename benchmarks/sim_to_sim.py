"""Sim-to-real proxy: train in MuJoCo, evaluate zero-shot in PyBullet (the "real" robot here).

    python benchmarks/sim_to_sim.py                                     # plain and dr (~2 x 6 min alone on 2 cores)
    python benchmarks/sim_to_sim.py --variants plain dr dr_sysid --sim-params sysid.yaml --jobs 2
    python benchmarks/sim_to_sim.py --variants plain dr dr_sysid --sim-params sysid.yaml --seeds 1 2 3 --jobs 2
    python benchmarks/sim_to_sim.py --runs plain_s1=runs/a plain_s2=runs/b dr_s1=runs/c   # evaluate existing runs

Variants: ``plain`` (MuJoCo as is), ``dr`` (MuJoCo with ``--randomize``, by default
``config/randomization_proxy.yaml``: mass, friction, action noise, control-period jitter, EE
position / velocity observation noise) and ``dr_sysid`` (the same plus the fitted parameters of
``--sim-params``, written by ``robot-rl sysid --source-backend pybullet``). Each run is evaluated
on the same seeds in MuJoCo (without randomisation or fitted parameters) and in PyBullet; the table
gives the success rates and the fraction of the MuJoCo success retained in PyBullet (goal: >= 80 %).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

ROOT = Path(__file__).resolve().parents[1]


def train_command(name: str, out: Path, steps: int, seed: int, extra_kwargs: list[str]) -> tuple[list[str], Path]:
    """``robot-rl train`` command of one variant (state pick-and-lift, 20 scripted demos) and its run dir."""
    run = out / name
    cmd = [sys.executable, "-m", "robot_rl.cli", "train", "--env", "robot_rl/PandaPickLift-v0", "--num-demos", "20",
           "--total-env-steps", str(steps), "--run-dir", str(run), "--seed", str(seed), "--no-progress"]
    if extra_kwargs:
        cmd += ["--env-kwargs", *extra_kwargs]
    return cmd, run


def train_all(commands: dict[str, tuple[list[str], Path]], jobs: int) -> dict[str, Path]:
    """Run the training commands, ``jobs`` at a time (each with ``torch_threads`` = cores / jobs)."""
    pending, running = list(commands.items()), {}
    threads = max(1, (os.cpu_count() or 1) // jobs)
    while pending or running:
        while pending and len(running) < jobs:
            name, (cmd, run) = pending.pop(0)
            print(f"training {name}: {' '.join(cmd[2:])}", flush=True)
            running[name] = subprocess.Popen([*cmd, "--torch-threads", str(threads)], cwd=ROOT)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                if proc.returncode != 0:
                    raise SystemExit(f"training {name} failed with exit code {proc.returncode}")
                del running[name]
        time.sleep(1.0)
    return {name: run for name, (_, run) in commands.items()}


def evaluate(run: Path, backend: str, episodes: int) -> float:
    """Success rate of the run's latest checkpoint in ``backend`` (no randomisation, fixed seeds)."""
    from robot_rl.evaluate import EvalConfig, run_eval

    result = run_eval(EvalConfig(run_dir=run, episodes=episodes, video=False, device="cpu", seed=777,
                                 env_kwargs={"backend": backend, "randomize": "null", "sim_params": "null"},
                                 out=run / f"eval_{backend}"))
    return float(result["success_rate"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=[], help="name=run_dir pairs to evaluate instead of training")
    parser.add_argument("--steps", type=int, default=5000, help="env steps per training run")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per backend")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "sim_to_sim")
    parser.add_argument("--variants", nargs="+", default=["plain", "dr"], choices=["plain", "dr", "dr_sysid"])
    parser.add_argument("--randomize", type=Path, default=ROOT / "config" / "randomization_proxy.yaml",
                        help="randomisation config of the dr variants")
    parser.add_argument("--sim-params", type=Path, default=None, help="sysid.yaml of the dr_sysid variant")
    parser.add_argument("--jobs", type=int, default=1, help="training runs at a time")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train every variant once per seed (runs <variant>_s<seed>) and add the mean; overrides --seed")
    args = parser.parse_args()
    seeds = args.seeds or [args.seed]
    # run name -> (variant, run dir); --runs names may carry a seed suffix "_s<seed>"
    runs = {k: Path(v) for k, v in (item.split("=", 1) for item in args.runs)}
    if not runs:
        if "dr_sysid" in args.variants and args.sim_params is None:
            parser.error("dr_sysid needs --sim-params (write one with `robot-rl sysid --source-backend pybullet --out sysid.yaml`)")
        args.out.mkdir(parents=True, exist_ok=True)
        commands = {}
        for seed in seeds:
            dr_kwargs = ["randomize", str(args.randomize.resolve()), "randomize_seed", str(seed)]
            kwargs = {"plain": [], "dr": dr_kwargs,
                      "dr_sysid": dr_kwargs + ["sim_params", str(args.sim_params.resolve()) if args.sim_params else ""]}
            for v in args.variants:
                name = v if len(seeds) == 1 else f"{v}_s{seed}"
                commands[name] = train_command(name, args.out, args.steps, seed, kwargs[v])
        runs = train_all(commands, args.jobs)
    print(f"\n{'run':<14} {'MuJoCo':>8} {'PyBullet':>9} {'retained':>9}   ({args.episodes} episodes each, same seeds)")
    by_variant: dict[str, list[tuple[float, float]]] = {}
    for name, run in runs.items():
        mj, pb = evaluate(run, "mujoco", args.episodes), evaluate(run, "pybullet", args.episodes)
        by_variant.setdefault(re.sub(r"_s\d+$", "", name), []).append((mj, pb))
        print(f"{name:<14} {mj:>8.2f} {pb:>9.2f} {pb / mj if mj > 0 else float('nan'):>8.0%}", flush=True)
    for variant, results in by_variant.items():
        if len(results) > 1:
            mj, pb = (float(np.mean(x)) for x in zip(*results))
            print(f"{variant + ' mean':<14} {mj:>8.2f} {pb:>9.2f} {pb / mj if mj > 0 else float('nan'):>8.0%}"
                  f"   (over {len(results)} seeds)", flush=True)

if __name__ == "__main__":
    main()
