"""Sim-to-real proxy: train in MuJoCo, evaluate zero-shot in PyBullet (the "real" robot here).

    python benchmarks/sim_to_sim.py                                   # trains both variants (~2 x 6 min on 2 cores)
    python benchmarks/sim_to_sim.py --runs plain=runs/a dr=runs/b     # evaluate existing runs
    python benchmarks/sim_to_sim.py --sim-params sysid.yaml           # the DR run also trains on fitted sim parameters

Variants: ``plain`` (MuJoCo as is) and ``dr`` (MuJoCo with ``config/randomization.yaml``: lighting,
colours, camera jitter, mass, friction, action latency and noise, control-period jitter; plus a
``sysid.yaml`` from ``robot-rl sysid --source-backend pybullet`` when given). Each run is evaluated
over the same seeds in MuJoCo (without randomisation) and in PyBullet; the table gives the success
rates and the fraction of the MuJoCo success retained in PyBullet (goal: >= 80 %).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

ROOT = Path(__file__).resolve().parents[1]


def train(name: str, out: Path, steps: int, seed: int, extra_kwargs: list[str]) -> Path:
    """Train one variant with ``robot-rl train`` (state pick-and-lift, 20 scripted demos)."""
    run = out / name
    cmd = [sys.executable, "-m", "robot_rl.cli", "train", "--env", "robot_rl/PandaPickLift-v0", "--num-demos", "20",
           "--total-env-steps", str(steps), "--run-dir", str(run), "--seed", str(seed), "--no-progress"]
    if extra_kwargs:
        cmd += ["--env-kwargs", *extra_kwargs]
    print(f"training {name}: {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return run


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
    parser.add_argument("--sim-params", type=Path, default=None, help="sysid.yaml to train the dr variant on")
    args = parser.parse_args()
    runs = dict(item.split("=", 1) for item in args.runs)
    runs = {k: Path(v) for k, v in runs.items()}
    if not runs:
        args.out.mkdir(parents=True, exist_ok=True)
        dr_kwargs = ["randomize", str(ROOT / "config" / "randomization.yaml"), "randomize_seed", str(args.seed)]
        if args.sim_params is not None:
            dr_kwargs += ["sim_params", str(args.sim_params.resolve())]
        runs = {"plain": train("plain", args.out, args.steps, args.seed, []),
                "dr": train("dr", args.out, args.steps, args.seed, dr_kwargs)}
    print(f"\n{'run':<8} {'MuJoCo':>8} {'PyBullet':>9} {'retained':>9}   ({args.episodes} episodes each, same seeds)")
    for name, run in runs.items():
        mj, pb = evaluate(run, "mujoco", args.episodes), evaluate(run, "pybullet", args.episodes)
        retained = pb / mj if mj > 0 else float("nan")
        print(f"{name:<8} {mj:>8.2f} {pb:>9.2f} {retained:>8.0%}", flush=True)


if __name__ == "__main__":
    main()
