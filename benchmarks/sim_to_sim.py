"""Sim-to-real proxy: train in MuJoCo, evaluate zero-shot in PyBullet (the "real" robot here).

    python benchmarks/sim_to_sim.py                                     # plain and dr (~2 x 6 min alone on 2 cores)
    python benchmarks/sim_to_sim.py --variants plain dr dr_sysid --sim-params sysid.yaml --jobs 2
    python benchmarks/sim_to_sim.py --variants plain dr dr_sysid --sim-params sysid.yaml --seeds 1 2 3 --jobs 2
    python benchmarks/sim_to_sim.py --runs plain_s1=runs/a plain_s2=runs/b dr_s1=runs/c   # evaluate existing runs
    python benchmarks/sim_to_sim.py --env robot_rl/PandaPegInsertion-v0 --steps 12000 \
        --env-kwargs controller impedance reward_type dense                   # peg insertion (~15-20 min a run on one core)
    python benchmarks/sim_to_sim.py --env robot_rl/PandaPegInsertion-v0 --runs plain=runs/x --episodes 30

Variants: ``plain`` (MuJoCo as is), ``dr`` (MuJoCo with ``--randomize``, by default
``config/randomization_proxy.yaml``: mass, friction, action noise, control-period jitter, EE
position / velocity observation noise) and ``dr_sysid`` (the same plus the fitted parameters of
``--sim-params``, written by ``robot-rl sysid --source-backend pybullet``). Each run is evaluated
on the same seeds in MuJoCo (without randomisation or fitted parameters) and in PyBullet; the table
gives the success rates and the fraction of the MuJoCo success retained in PyBullet (goal: >= 80 %).

``--env`` picks the task (default: state pick-and-lift); ``--env-kwargs`` go to every training run
(and so, through the run's config, to its evaluations, which only override ``backend``,
``randomize`` and ``sim_params``). ``--randomize`` defaults per env (:data:`DEFAULT_RANDOMIZE`):
for peg insertion ``config/randomization_insertion.yaml`` (friction of peg and fixture, hole
clearance 0.8-1.2 mm, action and EE observation noise; the hole's pose is the task's own draw).
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
PICK_LIFT = "robot_rl/PandaPickLift-v0"
#: env ID -> randomisation config of its dr variants (``--randomize`` overrides it)
DEFAULT_RANDOMIZE = {PICK_LIFT: ROOT / "config" / "randomization_proxy.yaml",
                     "robot_rl/PandaPegInsertion-v0": ROOT / "config" / "randomization_insertion.yaml"}


def train_command(name: str, out: Path, steps: int, seed: int, extra_kwargs: list[str],
                  env_id: str = PICK_LIFT) -> tuple[list[str], Path]:
    """``robot-rl train`` command of one variant (``env_id``, 20 scripted demos) and its run dir.

    ``extra_kwargs``: flat ``--env-kwargs`` list (``["controller", "impedance", ...]``)."""
    run = out / name
    cmd = [sys.executable, "-m", "robot_rl.cli", "train", "--env", env_id, "--num-demos", "20",
           "--total-env-steps", str(steps), "--run-dir", str(run), "--seed", str(seed), "--no-progress"]
    if extra_kwargs:
        cmd += ["--env-kwargs", *extra_kwargs]
    return cmd, run


def train_all(commands: dict[str, tuple[list[str], Path]], jobs: int, threads: int | None = None) -> dict[str, Path]:
    """Run the training commands, ``jobs`` at a time, each with ``threads`` torch threads (default cores / jobs)."""
    pending, running = list(commands.items()), {}
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
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
    parser.add_argument("--env", default=PICK_LIFT, help="gymnasium ID of the state task to train and evaluate")
    parser.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY VALUE",
                        help="env kwargs of every training run, e.g. controller impedance reward_type dense")
    parser.add_argument("--randomize", type=Path, default=None,
                        help="randomisation config of the dr variants (default per env: "
                             + ", ".join(f"{k}: {v.relative_to(ROOT)}" for k, v in DEFAULT_RANDOMIZE.items()) + ")")
    parser.add_argument("--sim-params", type=Path, default=None, help="sysid.yaml of the dr_sysid variant")
    parser.add_argument("--jobs", type=int, default=1, help="training runs at a time")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch threads per training run (default cores / jobs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train every variant once per seed (runs <variant>_s<seed>) and add the mean; overrides --seed")
    args = parser.parse_args()
    seeds = args.seeds or [args.seed]
    if len(args.env_kwargs) % 2:
        parser.error(f"--env-kwargs takes KEY VALUE pairs, got {args.env_kwargs}")
    if args.randomize is None:
        args.randomize = DEFAULT_RANDOMIZE.get(args.env)
    if args.randomize is None and not args.runs and any(v.startswith("dr") for v in args.variants):
        parser.error(f"no default randomisation config for {args.env}: pass --randomize <yaml>")
    # run name -> (variant, run dir); --runs names may carry a seed suffix "_s<seed>"
    runs = {k: Path(v) for k, v in (item.split("=", 1) for item in args.runs)}
    if not runs:
        if "dr_sysid" in args.variants and args.sim_params is None:
            parser.error("dr_sysid needs --sim-params (write one with `robot-rl sysid --source-backend pybullet --out sysid.yaml`)")
        args.out.mkdir(parents=True, exist_ok=True)
        commands = {}
        for seed in seeds:
            dr_kwargs = ["randomize", str(args.randomize.resolve()) if args.randomize else "", "randomize_seed", str(seed)]
            kwargs = {"plain": [], "dr": dr_kwargs,
                      "dr_sysid": dr_kwargs + ["sim_params", str(args.sim_params.resolve()) if args.sim_params else ""]}
            for v in args.variants:
                name = v if len(seeds) == 1 else f"{v}_s{seed}"
                commands[name] = train_command(name, args.out, args.steps, seed, [*args.env_kwargs, *kwargs[v]], args.env)
        runs = train_all(commands, args.jobs, args.torch_threads)
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
