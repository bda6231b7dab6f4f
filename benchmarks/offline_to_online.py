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
    rc = _run(cmd, root / f"{tag}__seed{seed}.log")
    return {**read_run(run_dir, threshold), "ok": rc == 0}


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_run(run_dir: Path, threshold: float) -> dict:
    """The figures of one finished training run, from its ``evals.csv`` and ``episodes.csv``.

    Returns:
        ``start`` (success at env step 0), ``steps`` (env steps of the first evaluation >= threshold,
        None when never), ``interventions`` (intervention steps up to then, or over the whole run
        when never: ``interventions_total``), ``min_after_start`` (lowest success after step 0),
        ``best``, ``wall_s`` (of the last evaluation), ``env_steps``.
    """
    rows, episodes = _rows(run_dir / "evals.csv"), _rows(run_dir / "episodes.csv")
    first = next((r for r in rows if int(r["env_steps"]) == 0), None)
    hit = next((r for r in rows if float(r["success_rate"]) >= threshold), None)
    after0 = [float(r["success_rate"]) for r in rows if int(r["env_steps"]) > 0]
    tag, seed = run_dir.name.rsplit("__seed", 1)
    return {"method": tag, "seed": int(seed), "ok": bool(rows),
            "start": float(first["success_rate"]) if first else None,
            "steps": int(hit["env_steps"]) if hit else None,
            "interventions": int(hit["intervention_steps"] or 0) if hit else None,
            "interventions_total": sum(int(e["intervention_steps"] or 0) for e in episodes),
            "min_after_start": min(after0) if after0 else None,
            "best": max((float(r["success_rate"]) for r in rows), default=0.0),
            "wall_s": float(rows[-1]["wall_s"]) if rows else 0.0,
            "env_steps": int(rows[-1]["env_steps"]) if rows else 0}


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
                   help="Cal-QL's sampled actions per kind and state (the default 10 puts 31 instead of 13 rows per sample through the critic: ~2.4x the work)")
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
    p.add_argument("--report", type=Path, default=None, help="only print the table of an earlier benchmark directory")
    args = p.parse_args(argv)
    if args.report is not None:
        report(args.report, args.threshold)
        return
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
    print(f"\n{args.env} {' '.join(args.env_kwargs)}: {args.demos} scripted demos per seed, "
          f"{args.eval_episodes} deterministic evaluation episodes at step 0 and every {args.eval_every} steps "
          f"(never intervened), budget {args.steps} steps, Cal-QL {args.pretrain_steps} updates, residual scale "
          f"{args.residual_scale}, {args.jobs} runs in parallel, {threads} torch thread(s) each, "
          f"{time.perf_counter() - t0:.0f} s in all; extra: {' '.join(extra) or '-'}")
    for r in results:
        if not r["ok"]:
            print(f"{r['method']} seed {r['seed']}: the run failed, see {root}/{r['method']}__seed{r['seed']}.log")
    report(root, args.threshold)


def report(root: Path, threshold: float) -> None:
    """Print the table of a benchmark directory (every ``<method>__seed<N>`` run and ``bc__seed<N>``)."""
    bc = {}
    for d in sorted(d for d in root.glob("bc__seed*") if d.is_dir()):
        results = json.loads((d / "results.json").read_text()) if (d / "results.json").is_file() else {}
        bc[int(d.name.rsplit("__seed", 1)[1])] = results.get("eval_success_rate")
    runs = [read_run(d, threshold) for d in sorted(root.glob("*__seed*"))
            if d.is_dir() and not d.name.startswith(("bc__", "demos__"))]
    budget = max((r["env_steps"] for r in runs), default=0)
    print(f"env steps to >= {threshold:.0%} eval success; 'interv.' = intervention steps up to then (in brackets: "
          f"over the whole {budget}-step run when never reached); 'min after 0' = lowest eval success after step 0, "
          f"'vs BC' its difference to BC's success (points)")
    print(f"{'method':<20}{'seed':>6}{'step-0 succ':>13}{'steps to thr':>14}{'interv.':>9}{'min after 0':>13}"
          f"{'vs BC':>8}{'best':>7}{'wall s':>8}")
    for seed, success in bc.items():
        print(f"{'bc':<20}{seed:>6}{_fmt(success, pct=True):>13}{'-':>14}{'-':>9}{'-':>13}{'':>8}"
              f"{_fmt(success, pct=True):>7}{'':>8}")
    medians = {}
    for tag in sorted(dict.fromkeys(r["method"] for r in runs), key=lambda t: (t.endswith("corrector"), t)):
        rs = [r for r in runs if r["method"] == tag]
        for r in rs:
            dip = (None if r["min_after_start"] is None or bc.get(r["seed"]) is None
                   else r["min_after_start"] - bc[r["seed"]])
            interv = _fmt(r["interventions"]) if r["steps"] is not None else (
                f"({r['interventions_total']:,})" if r["interventions_total"] else "-")
            print(f"{tag:<20}{r['seed']:>6}{_fmt(r['start'], pct=True):>13}{_fmt(r['steps'], f'>{budget}'):>14}"
                  f"{interv:>9}{_fmt(r['min_after_start'], pct=True):>13}"
                  f"{'-' if dip is None else f'{dip * 100:+.0f}':>8}{r['best']:>7.0%}{r['wall_s']:>8.0f}")
        medians[tag] = statistics.median(float("inf") if r["steps"] is None else r["steps"] for r in rs)
        interv = [r["interventions"] for r in rs if r["interventions"] is not None]
        print(f"{tag:<20}{'median':>6}{'':>13}{_fmt(medians[tag], f'>{budget}'):>14}"
              f"{_fmt(statistics.median(interv)) if len(interv) == len(rs) else '-':>9}")
    base = medians.get("rlpd")
    for tag, m in medians.items():
        if base is not None and tag != "rlpd" and not tag.endswith("corrector"):
            ratio = ("n/a" if m == float("inf") else "inf (reached at step 0)" if m == 0 else
                     f"> {budget / m:.1f}x" if base == float("inf") else f"{base / m:.2f}x")
            print(f"ratio rlpd / {tag} (median env steps to {threshold:.0%}): {ratio}")
    print(f"runs and logs: {root}")


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
