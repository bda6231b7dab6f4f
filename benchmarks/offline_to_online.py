"""Start from what the demos teach: BC, Cal-QL -> online, WSRL and residual RL against RLPD from scratch.

For each seed, ``--demos`` scripted demos are recorded once (``robot-rl record-demos``) and every
method gets exactly those episodes:

(a) ``rlpd``      RLPD from scratch (today's default: demos 50/50 in every batch, random networks);
(b) ``bc``        behaviour cloning alone (``robot-rl train-bc``), evaluated once: a constant;
(c) ``calql``     Cal-QL pretraining on the demos, then online RLPD from those networks
                  (``--pretrain.steps``; Nakamoto et al. 2023, arXiv:2303.05479);
(d) ``wsrl``      the same pretraining, then WSRL: a warm-up rollout of the pretrained policy and
                  online training without the offline data (Zhou et al. 2024, arXiv:2412.07762);
(e) ``residual``  SAC learning a bounded residual on the frozen BC policy of (b)
                  (``--env-kwargs base_policy <bc>/policy --agent.residual-scale``; Ankile et al.
                  2024, arXiv:2407.16677).

Every training run evaluates its deterministic policy at env step 0 (before any online update)
and every ``--eval-every`` env steps; the table gives the success at step 0, the env steps to
``--threshold`` and the lowest success after step 0 (the "unlearning" dip offline-to-online
methods are known for), against BC's success. ``--corrector`` also runs (a) and the methods named
by ``--corrector-methods`` with the scripted corrector intervening (``--teleop scripted``) and
reports the intervention steps spent until the threshold.

    python benchmarks/offline_to_online.py --seeds 1 2 3 --jobs 2 --corrector
    python benchmarks/offline_to_online.py --env robot_rl/PandaPegInsertion-v0 -- --env-kwargs reward_type dense

Extra arguments after ``--`` go to every ``robot-rl train`` and ``robot-rl train-bc`` run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: method -> extra ``robot-rl train`` flags ({bc} is the seed's BC policy directory)
METHODS = {
    "rlpd": [],
    "calql": ["--pretrain.steps", "{pretrain_steps}", "--pretrain.cql-num-actions", "{cql_actions}"],
    "wsrl": ["--pretrain.steps", "{pretrain_steps}", "--pretrain.cql-num-actions", "{cql_actions}",
             "--pretrain.online", "wsrl"],
    "residual": ["--env-kwargs", "base_policy", "{bc}", "--agent.residual-scale", "{residual_scale}"],
}


def _run(cmd: list[str], log: Path) -> int:
    with open(log, "w") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "MUJOCO_GL": "egl"},
                              check=False).returncode


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "robot_rl.cli", *args]


def prepare_seed(env: str, seed: int, demos: int, root: Path, extra_env: list[str], bc_steps: int,
                 eval_episodes: int, threads: int) -> dict:
    """Record the seed's demos and train its BC policy; returns paths and BC's success."""
    demo_dir, bc_dir = root / f"demos__seed{seed}", root / f"bc__seed{seed}"
    rc = _run(_cli("record-demos", "--env", env, *extra_env, "--num-episodes", str(demos), "--seed", str(10_000 + seed),
                   "--out", str(demo_dir)), root / f"demos__seed{seed}.log")
    if rc != 0:
        raise RuntimeError(f"record-demos failed for seed {seed}: see {root}/demos__seed{seed}.log")
    t0 = time.perf_counter()
    rc = _run(_cli("train-bc", "--env", env, *extra_env, "--demos", str(demo_dir), "--out", str(bc_dir),
                   "--seed", str(seed), "--max-steps", str(bc_steps), "--eval-episodes", str(eval_episodes),
                   "--torch-threads", str(threads), "--no-progress"), root / f"bc__seed{seed}.log")
    results = json.loads((bc_dir / "results.json").read_text()) if rc == 0 else {}
    return {"seed": seed, "demos": demo_dir, "bc": bc_dir / "policy", "bc_success": results.get("eval_success_rate"),
            "bc_wall_s": time.perf_counter() - t0}


def run_method(env: str, method: str, flags: list[str], seed: int, prep: dict, steps: int, eval_every: int,
               eval_episodes: int, threshold: float, root: Path, extra: list[str], threads: int,
               corrector: bool, fill: dict, stop_early: bool) -> dict:
    """One ``robot-rl train`` of ``method`` on the seed's demos; the figures read back from its evals.csv."""
    tag = f"{method}{'_corrector' if corrector else ''}"
    run_dir = root / f"{tag}__seed{seed}"
    flags = [f.format(bc=prep["bc"], **fill) for f in flags]
    cmd = _cli("train", "--env", env, "--seed", str(seed), "--demos", str(prep["demos"]),
               "--total-env-steps", str(steps), "--eval-every-steps", str(eval_every),
               "--eval-episodes", str(eval_episodes), "--eval-at-start",
               "--stop-at-success", str(threshold if stop_early else 0.0),
               "--checkpoint-every-steps", str(max(steps // 2, 1)), "--run-dir", str(run_dir), "--no-progress",
               "--no-final-video", "--torch-threads", str(threads),
               *(["--teleop", "scripted"] if corrector else []), *flags, *extra)
    t0 = time.perf_counter()
    rc = _run(cmd, root / f"{tag}__seed{seed}.log")
    rows = []
    if (run_dir / "evals.csv").exists():
        with open(run_dir / "evals.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    first = next((r for r in rows if int(r["env_steps"]) == 0), None)
    hit = next((r for r in rows if float(r["success_rate"]) >= threshold), None)
    after0 = [float(r["success_rate"]) for r in rows if int(r["env_steps"]) > 0]
    return {"method": tag, "seed": seed, "ok": rc == 0, "start": float(first["success_rate"]) if first else None,
            "steps": int(hit["env_steps"]) if hit else None,
            "interventions": int(hit["intervention_steps"] or 0) if hit else None,
            "min_after_start": min(after0) if after0 else None, "best": max((float(r["success_rate"]) for r in rows),
                                                                             default=0.0),
            "wall_s": time.perf_counter() - t0, "run_dir": str(run_dir)}


def _fmt(x: float | None, missing: str = "-", pct: bool = False) -> str:
    if x is None or x == float("inf"):
        return missing
    return f"{x:.0%}" if pct else f"{x:,.0f}"


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="robot_rl/PandaPickLift-v0")
    p.add_argument("--env-kwargs", nargs="*", default=[], help="env kwargs for every command, as key value pairs")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--steps", type=int, default=3_000, help="env-step budget per training run")
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--pretrain-steps", type=int, default=1_500, help="Cal-QL gradient updates before (c) and (d)")
    p.add_argument("--cql-actions", type=int, default=4,
                   help="Cal-QL's sampled actions per kind and state (the default 10 costs 2.3x more on a CPU)")
    p.add_argument("--residual-scale", type=float, default=0.2, help="bound of (e)'s residual, in [-1, 1] action units")
    p.add_argument("--bc-steps", type=int, default=20_000, help="BC gradient steps (early stopping ends sooner)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--stop-early", action="store_true",
                   help="stop a run at its first evaluation >= threshold (faster, but the dip after it goes unseen)")
    p.add_argument("--corrector", action="store_true", help="also run with the scripted corrector intervening")
    p.add_argument("--corrector-methods", nargs="+", default=["rlpd", "calql", "residual"], choices=list(METHODS))
    p.add_argument("--jobs", type=int, default=2, help="runs trained in parallel")
    p.add_argument("--out", type=Path, default=Path("runs/bench_offline_to_online"))
    args = p.parse_args(argv)
    if len(args.env_kwargs) % 2:
        p.error("--env-kwargs takes key value pairs")
    extra_env = ["--env-kwargs", *args.env_kwargs] if args.env_kwargs else []
    root = args.out / time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    fill = {"pretrain_steps": args.pretrain_steps, "residual_scale": args.residual_scale,
            "cql_actions": args.cql_actions}
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        preps = {s: f.result() for s, f in zip(args.seeds, [pool.submit(
            prepare_seed, args.env, s, args.demos, root, extra_env, args.bc_steps, args.eval_episodes, threads)
            for s in args.seeds])}
        jobs = [(m, s, False) for s in args.seeds for m in args.methods]
        if args.corrector:
            jobs += [(m, s, True) for s in args.seeds for m in args.corrector_methods]
        # seed-major order: the methods of one seed train side by side under the same machine load
        # (env kwargs go after the method's flags: tyro keeps the last --env-kwargs, so join them)
        futs = [pool.submit(run_method, args.env, m, _join_env_kwargs(METHODS[m], args.env_kwargs), s, preps[s],
                            args.steps, args.eval_every, args.eval_episodes, args.threshold, root, extra, threads, c,
                            fill, args.stop_early) for m, s, c in jobs]
        results = [f.result() for f in futs]
    print(f"\n{args.env} {' '.join(args.env_kwargs)}: {args.demos} scripted demos per seed, env steps to >= "
          f"{args.threshold:.0%} eval success ({args.eval_episodes} deterministic episodes at step 0 and every "
          f"{args.eval_every} steps, never intervened), budget {args.steps} steps, Cal-QL {args.pretrain_steps} "
          f"updates, residual scale {args.residual_scale}, seeds {args.seeds}, {args.jobs} runs in parallel, "
          f"{threads} torch thread(s) each, {time.perf_counter() - t0:.0f} s in all; extra: {' '.join(extra) or '-'}")
    bc = [preps[s]["bc_success"] for s in args.seeds]
    print(f"{'method':<20}{'seed':>6}{'step-0 succ':>13}{'steps to thr':>14}{'interv.':>9}{'min after 0':>13}"
          f"{'vs BC':>8}{'best':>7}{'wall s':>8}")
    for s in args.seeds:
        print(f"{'bc':<20}{s:>6}{_fmt(preps[s]['bc_success'], pct=True):>13}{'-':>14}{'-':>9}{'-':>13}{'':>8}"
              f"{_fmt(preps[s]['bc_success'], pct=True):>7}{preps[s]['bc_wall_s']:>8.0f}")
    medians = {}
    for tag in dict.fromkeys(r["method"] for r in results):
        rs = [r for r in results if r["method"] == tag]
        for r in rs:
            bcs = preps[r["seed"]]["bc_success"]
            dip = None if r["min_after_start"] is None or bcs is None else r["min_after_start"] - bcs
            print(f"{tag:<20}{r['seed']:>6}{_fmt(r['start'], pct=True):>13}{_fmt(r['steps'], f'>{args.steps}'):>14}"
                  f"{_fmt(r['interventions']):>9}{_fmt(r['min_after_start'], pct=True):>13}"
                  f"{'-' if dip is None else f'{dip * 100:+.0f}':>8}{r['best']:>7.0%}{r['wall_s']:>8.0f}"
                  + ("" if r["ok"] else "   (run failed: see its log)"))
        medians[tag] = statistics.median(r["steps"] or float("inf") for r in rs)
        interv = [r["interventions"] for r in rs if r["interventions"] is not None]
        print(f"{tag:<20}{'median':>6}{'':>13}{_fmt(medians[tag], f'>{args.steps}'):>14}"
              f"{_fmt(statistics.median(interv)) if interv and len(interv) == len(rs) else '-':>9}")
    base = medians.get("rlpd")
    if base:
        for tag, m in medians.items():
            if tag != "rlpd" and m != float("inf"):
                print(f"ratio rlpd / {tag} (median env steps to {args.threshold:.0%}): "
                      + (f"> {args.steps / m:.1f}x" if base == float("inf") else f"{base / m:.2f}x"))
    print(f"BC success per seed: {', '.join(_fmt(b, pct=True) for b in bc)}; runs and logs: {root}")


def _join_env_kwargs(flags: list[str], env_kwargs: list[str]) -> list[str]:
    """A method's flags with the benchmark's ``--env-kwargs`` merged into one ``--env-kwargs`` list."""
    if not env_kwargs:
        return flags
    if "--env-kwargs" not in flags:
        return [*flags, "--env-kwargs", *env_kwargs]
    i = flags.index("--env-kwargs")
    j = next((k for k in range(i + 1, len(flags)) if flags[k].startswith("--")), len(flags))
    return [*flags[:j], *env_kwargs, *flags[j:]]


if __name__ == "__main__":
    main()
