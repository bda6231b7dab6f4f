"""Actor and learner as two processes on one machine: env steps/s against either one alone.

Runs real ``robot-rl learner`` and ``robot-rl actor`` processes (ZeroMQ on 127.0.0.1, free ports)
and ``robot-rl train`` on pick-and-lift from state (``robot_rl/PandaPickLift-v0``, ``--num-demos``
scripted demos, default 2; SAC defaults: batch 256, UTD 2, 2 critics; update ratio 1, i.e. one
agent update (= UTD critic steps) per env step; evaluation, checkpoints and video off). Every
process runs until this script stops it (SIGTERM, then SIGKILL after ``--stop-timeout-s``, on errors
and Ctrl-C too). Rates are taken over a window of ``--measure-s`` seconds that starts
``--warmup-s`` seconds after the first env step reached the learner (``train``: after its first
episode ended; learner alone: after its first update), so start-up, demo recording and the first
updates are not counted:

* learner side: ``received_transitions`` and ``updates`` of the learner's ``status.json``
  (rewritten about once a second with the learner's own clock, ``wall_s``), first and last
  snapshot in the window;
* ``robot-rl train``: ``env_steps`` and ``updates`` of its ``episodes.csv`` rows (one per 50-step
  episode, with ``wall_time``), first and last row in the window.

"updates" are agent updates (``SACAgent.update`` calls, UTD critic steps each; the ``updates`` of
``status.json`` and ``episodes.csv`` count critic steps and are divided by UTD here), so update
ratio 1 means one of them per env step.

Settings (``cores`` = the CPUs this script may use; ``--threads N`` pins it and its children to N):

* **actor alone**: actor (``--torch-threads 1``, its default) against a learner that never updates
  (``--learning-starts`` larger than the run): the actor loop at full speed with a fixed policy;
* **learner alone**: a learner with no actor, ``--update-ratio 0`` (update as fast as possible) on
  the demo transitions (so it needs ``--num-demos`` >= 1), automatic threads (alone: every core);
  its updates/s count as env steps/s at update ratio 1 (one update per env step). Also shown, for
  reference: ``SACAgent.update`` alone in this process with ``cores`` threads
  (``benchmarks/learner_speed.py``-style timing of the same settings; no replay sampling, no
  transport);
* (a) **train alone**: ``robot-rl train``, one process doing both in memory (the in-memory baseline);
* (b) **actor + learner, automatic shares**: the defaults (actor ``--torch-threads 1``, learner
  ``--torch-threads 0``: :mod:`robot_rl.threads` gives it what the actor leaves);
* (c) **actor + learner, every core each**: ``--torch-threads <cores>`` on both (torch's default:
  the oversubscribed baseline).

The goal (issue 17): with actor and learner sharing the cores, env steps/s (actor side, as the
learner receives them) within 20% of the better of running either alone, i.e.
``env steps/s >= 0.8 * max(actor alone env steps/s, learner alone updates/s)``. The actor is not
throttled by the learner, so in (b) and (c) the learner can fall behind update ratio 1; the table
also shows its updates/s, the updates it owes at the end of the window (env steps received minus
agent updates done: the backlog at update ratio 1) and the training rate ``min(env steps/s,
updates/s)`` (env steps/s that are trained on at update ratio 1).

By default the processes register their thread claims in a private :mod:`robot_rl.threads`
registry (``XDG_RUNTIME_DIR`` set to a temporary directory), so other robot_rl processes on the
machine do not change their shares, nor they those of the others; ``--shared-registry`` uses the
machine's registry.

    python benchmarks/actor_learner_sharing.py             # ~3-4 minutes on 2 idle CPU cores (estimate)
    python benchmarks/actor_learner_sharing.py --measure-s 60 --warmup-s 10
    python benchmarks/actor_learner_sharing.py --quick     # smoke run, ~1 minute (5 process start-ups)
    python benchmarks/actor_learner_sharing.py --quick --settings shared   # one setting only
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from robot_rl.agent import SACConfig
from robot_rl.threads import available_cores
from robot_rl.transport.link import free_port_pair

CLI = [sys.executable, "-m", "robot_rl.cli"]
ENV_ID = "robot_rl/PandaPickLift-v0"
UTD = SACConfig.utd_ratio  # critic steps per agent update; status.json / episodes.csv "updates" count critic steps
NEVER = 10**9  # --learning-starts / --total-env-steps larger than any run here
SETTINGS = ("actor", "learner", "train", "shared", "oversubscribed", "agent")
_LIVE: list[subprocess.Popen] = []  # every process started and not yet reaped




def spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "w") as f:  # the child keeps its own descriptor
        proc = subprocess.Popen([*CLI, *args], stdout=f, stderr=subprocess.STDOUT, env=env)
    proc.log_path = log  # type: ignore[attr-defined]
    _LIVE.append(proc)
    return proc


def tail(proc: subprocess.Popen, n: int = 3000) -> str:
    path = Path(getattr(proc, "log_path", ""))
    return path.read_text(errors="replace")[-n:] if path.is_file() else ""


def stop(proc: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns the exit code."""
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    finally:
        if proc in _LIVE:
            _LIVE.remove(proc)
    return proc.returncode


def stop_all(timeout: float) -> None:
    for proc in list(reversed(_LIVE)):  # actors (started last) before their learner
        with contextlib.suppress(Exception):
            stop(proc, timeout)


def read_status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def wait_for(cond, timeout: float, what: str, procs: list[subprocess.Popen]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"robot-rl {p.args[3]} exited ({p.returncode}) while waiting for "
                                   f"{what}:\n{tail(p)}")
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n" + "\n".join(tail(p) for p in procs))


@dataclass
class Rate:
    """Counters over a measurement window."""

    env_steps_per_s: float = float("nan")
    updates_per_s: float = float("nan")
    seconds: float = float("nan")
    owed_updates: float = float("nan")  # update ratio 1: received - updates (learner side) at the window's end
    threads: str = ""


@dataclass
class Bench:
    args: argparse.Namespace
    root: Path
    env: dict[str, str]
    cores: int

    def learner_args(self, run: Path, port: int, threads: int, *extra: str) -> list[str]:
        a = self.args
        return ["learner", "--env", ENV_ID, "--port", str(port), "--run-dir", str(run), "--no-progress",
                "--num-demos", str(a.num_demos), "--seed", "1", "--total-env-steps", "0",
                "--eval-every-steps", "0", "--checkpoint-every-steps", "0", "--checkpoint-every-s", str(float(NEVER)),
                "--torch-threads", str(threads), "--device", "cpu", *extra]

    def actor_args(self, tag: str, port: int, threads: int) -> list[str]:
        return ["actor", "--env", ENV_ID, "--port", str(port), "--no-progress", "--total-env-steps", "0",
                "--spool-dir", str(self.root / f"{tag}_spool"), "--seed", "1", "--torch-threads", str(threads),
                "--drain-timeout-s", "2", "--params-timeout-s", str(self.args.start_timeout_s), "--device", "cpu"]

    def window_from_status(self, run: Path, procs: list[subprocess.Popen], started) -> tuple[dict, dict]:
        """Status snapshots at the window's start and end; ``started(status)`` says the warm-up may begin."""
        a = self.args
        wait_for(lambda: started(read_status(run)), a.start_timeout_s, "the first env step / update", procs)
        time.sleep(a.warmup_s)
        first = wait_for(lambda: read_status(run) or None, 10, "status.json", procs)
        time.sleep(a.measure_s)
        last = first
        deadline = time.monotonic() + 5  # the next rewrite (about once a second)
        while time.monotonic() < deadline and last.get("wall_s") == first.get("wall_s"):
            time.sleep(0.1)
            last = read_status(run) or last
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a process exited ({p.returncode}) during the measurement:\n{tail(p)}")
        return first, last

    @staticmethod
    def rate(first: dict, last: dict) -> Rate:
        dt = float(last["wall_s"]) - float(first["wall_s"])
        r = Rate(seconds=dt)
        if dt > 0:
            r.env_steps_per_s = (last["received_transitions"] - first["received_transitions"]) / dt
            r.updates_per_s = (last["updates"] - first["updates"]) / UTD / dt
        r.owed_updates = last["received_transitions"] - last["updates"] / UTD
        return r

    def learner_alone(self) -> Rate:
        run, port = self.root / "learner_alone", free_port_pair()
        learner = spawn(self.learner_args(run, port, 0, "--update-ratio", "0"), self.root / "learner_alone.log",
                        self.env)
        try:
            first, last = self.window_from_status(run, [learner], lambda s: s.get("updates", 0) > 0)
        finally:
            stop(learner, self.args.stop_timeout_s)
        r = self.rate(first, last)
        r.env_steps_per_s, r.owed_updates, r.threads = float("nan"), float("nan"), "learner auto (alone)"
        return r

    def actor_learner(self, tag: str, actor_threads: int, learner_threads: int, updates: bool = True) -> Rate:
        run, port = self.root / tag, free_port_pair()
        extra = [] if updates else ["--learning-starts", str(NEVER)]
        learner = spawn(self.learner_args(run, port, learner_threads, *extra), self.root / f"{tag}_learner.log",
                        self.env)
        actor = None
        try:
            wait_for(lambda: read_status(run).get("pid") == learner.pid, self.args.start_timeout_s,
                     "the learner to serve", [learner])
            actor = spawn(self.actor_args(tag, port, actor_threads), self.root / f"{tag}_actor.log", self.env)
            first, last = self.window_from_status(run, [learner, actor],
                                                  lambda s: s.get("received_transitions", 0) > 0)
        finally:
            if actor is not None:
                stop(actor, self.args.stop_timeout_s)
            stop(learner, self.args.stop_timeout_s)
        r = self.rate(first, last)
        fmt = lambda n: "auto" if n == 0 else str(n)
        r.threads = f"actor {fmt(actor_threads)}, learner {fmt(learner_threads)}"
        if not updates:
            r.updates_per_s, r.owed_updates = float("nan"), float("nan")
        return r

    def train_alone(self) -> Rate:
        a, run = self.args, self.root / "train_alone"
        cmd = ["train", "--env", ENV_ID, "--num-demos", str(a.num_demos), "--seed", "1", "--total-env-steps",
               str(NEVER), "--eval-every-steps", "0", "--eval-episodes", "1", "--checkpoint-every-steps", "0",
               "--checkpoint-every-s", str(float(NEVER)), "--no-final-video", "--no-progress", "--torch-threads", "0",
               "--device", "cpu", "--run-dir", str(run)]
        proc = spawn(cmd, self.root / "train_alone.log", self.env)
        csv_path = run / "episodes.csv"

        def rows() -> list[dict]:
            try:
                with open(csv_path, newline="") as f:
                    return [r for r in csv.DictReader(f) if r.get("wall_time")]
            except OSError:
                return []

        try:
            wait_for(lambda: rows(), a.start_timeout_s + 60, "the first training episode", [proc])
            t_start = time.time() + a.warmup_s
            # at least two episode ends inside the window: wait past --measure-s for the second when needed
            deadline = t_start + a.measure_s
            while True:
                inside = [r for r in rows() if float(r["wall_time"]) >= t_start]
                if time.time() >= deadline and len(inside) >= 2:
                    break
                if time.time() > deadline + a.start_timeout_s:
                    raise RuntimeError(f"robot-rl train wrote {len(inside)} episode rows in the window\n{tail(proc)}")
                if proc.poll() is not None:
                    raise RuntimeError(f"robot-rl train exited ({proc.returncode}):\n{tail(proc)}")
                time.sleep(0.2)
        finally:
            stop(proc, a.stop_timeout_s)
        first, last = inside[0], inside[-1]
        dt = float(last["wall_time"]) - float(first["wall_time"])
        return Rate(env_steps_per_s=(int(last["env_steps"]) - int(first["env_steps"])) / dt,
                    updates_per_s=(int(last["updates"]) - int(first["updates"])) / UTD / dt, seconds=dt,
                    owed_updates=int(last["env_steps"]) - int(last["updates"]) / UTD, threads="train auto (alone)")

    def agent_update_alone(self) -> float:
        """``SACAgent.update`` per second in this process with ``cores`` threads, the learner's settings
        (this env's observation and action sizes, SACConfig defaults), median of rounds."""
        import gymnasium as gym
        import torch

        import robot_rl  # noqa: F401 - registers the env IDs
        from robot_rl.agent import SACAgent, SACConfig
        from robot_rl.layout import ObsLayout

        try:  # run as a script: benchmarks/ is on sys.path
            from learner_speed import make_batch, time_steps
        except ImportError:  # python -m benchmarks.actor_learner_sharing
            from benchmarks.learner_speed import make_batch, time_steps

        torch.set_num_threads(self.cores)
        env = gym.make(ENV_ID)
        layout = ObsLayout.from_space(env.observation_space)
        action_dim = int(env.action_space.shape[0])
        env.close()
        cfg, device = SACConfig(), torch.device("cpu")
        torch.manual_seed(0)
        agent = SACAgent(layout.state_dim, dict(layout.image_shapes), action_dim, cfg, device)
        batch = make_batch(cfg.utd_ratio * cfg.batch_size, layout.state_dim, action_dim, dict(layout.image_shapes),
                           device)
        step = lambda: agent.update(batch)
        time_steps(step, 3, device)
        n = 5 if self.args.quick else 20
        seconds = [time_steps(step, n, device) for _ in range(3)]
        torch.set_num_threads(1)  # leave the cores to the processes measured next
        return 1.0 / statistics.median(seconds)


def fmt(x: float, spec: str = ".1f") -> str:
    return "-" if math.isnan(x) else format(x, spec)  # NaN -> "-"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=0,
                   help="cores to use (pins this script and its processes to the first N CPUs it may use); "
                        "0: all of them. Also the --torch-threads of setting (c) and of the SACAgent.update timing")
    p.add_argument("--warmup-s", type=float, default=6.0, help="seconds after the first env step before the window")
    p.add_argument("--measure-s", type=float, default=20.0, help="length of each measurement window (s)")
    p.add_argument("--num-demos", type=int, default=2, help="scripted demos recorded by each learner / train run")
    p.add_argument("--start-timeout-s", type=float, default=120.0, help="give up on a process that does not start")
    p.add_argument("--stop-timeout-s", type=float, default=20.0, help="SIGTERM, then SIGKILL after this long")
    p.add_argument("--shared-registry", action="store_true",
                   help="register thread claims in the machine's robot_rl.threads registry (default: a private one)")
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS),
                   help="what to run (default: all); the ratios need actor and learner")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 s warm-up, 4 s windows")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = p.parse_args()
    if args.quick:
        args.warmup_s, args.measure_s = 1.0, 4.0
    if "learner" in args.settings and args.num_demos < 1:
        p.error("the 'learner' setting (learner alone) trains on demo transitions: --num-demos must be >= 1")

    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if args.threads > 0 and allowed and args.threads < len(allowed):
        os.sched_setaffinity(0, allowed[: args.threads])  # children inherit the mask: ThreadShare sees N cores
    cores = available_cores()
    import torch

    torch.set_num_threads(1)  # this process mostly waits; the SACAgent.update timing sets its own count

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(MUJOCO_GL=env.get("MUJOCO_GL", "egl"), PYTHONUNBUFFERED="1")
    load = os.getloadavg()[0]
    results: dict[str, Rate] = {}
    agent_ups = float("nan")
    with tempfile.TemporaryDirectory(prefix="actor_learner_sharing_") as tmp:
        root = Path(tmp)
        if not args.shared_registry:
            (root / "xdg").mkdir(mode=0o700)
            env["XDG_RUNTIME_DIR"] = str(root / "xdg")
        bench = Bench(args, root, env, cores)
        try:
            steps = [("actor", "actor alone", lambda: bench.actor_learner("actor_alone", 1, 0, updates=False)),
                     ("learner", "learner alone", bench.learner_alone),
                     ("train", "(a) train alone", bench.train_alone),
                     ("shared", "(b) actor + learner, automatic shares", lambda: bench.actor_learner("shared", 1, 0)),
                     ("oversubscribed", f"(c) actor + learner, {cores} threads each",
                      lambda: bench.actor_learner("oversubscribed", cores, cores))]
            for key, name, fn in steps:
                if key in args.settings:
                    print(f"{name} ...", flush=True)
                    results[name] = fn()
            if "agent" in args.settings:
                print("SACAgent.update alone in this process ...", flush=True)
                agent_ups = bench.agent_update_alone()
        finally:
            stop_all(args.stop_timeout_s)

    actor_alone = results.get("actor alone", Rate()).env_steps_per_s
    learner_alone = results.get("learner alone", Rate()).updates_per_s
    best = max((x for x in (actor_alone, learner_alone) if not math.isnan(x)), default=float("nan"))
    print(f"\n{ENV_ID} from state, {args.num_demos} demos, SAC defaults (batch 256, UTD 2, 2 critics), update ratio 1; "
          f"{cores} cores, load average at start {load:.2f}; windows of {args.measure_s:.0f} s after "
          f"{args.warmup_s:.0f} s of warm-up{' (--quick: rough)' if args.quick else ''}\n")
    print("| setting | torch threads | env steps/s | agent updates/s | trained env steps/s (min) | "
          "updates owed at end | env steps/s vs better alone |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        trained = min(r.env_steps_per_s, r.updates_per_s) if name.startswith("(") else float("nan")
        vs = r.env_steps_per_s / best if name.startswith("(") else float("nan")
        if name == "learner alone":  # its updates/s count as env steps/s at update ratio 1
            vs = learner_alone / best
        elif name == "actor alone":
            vs = actor_alone / best
        print(f"| {name} | {r.threads} | {fmt(r.env_steps_per_s)} | {fmt(r.updates_per_s)} | {fmt(trained)} | "
              f"{fmt(r.owed_updates, '.0f')} | {fmt(vs, '.2f')} |")
    print(f"\nSACAgent.update alone in this process ({cores} threads, no replay sampling or transport): "
          f"{fmt(agent_ups)} updates/s")
    print(f"better of either alone: max(actor alone {fmt(actor_alone)} env steps/s, learner alone {fmt(learner_alone)} "
          f"updates/s = env steps/s at update ratio 1) = {fmt(best)} env steps/s; goal: >= {fmt(0.8 * best)}")
    if not ("actor alone" in results and "learner alone" in results):
        print("(the goal needs both 'actor' and 'learner' in --settings; a missing one is left out of the maximum)")
    for name in [n for n in results if n.startswith(("(b)", "(c)"))]:
        r = results[name]
        verdict = "n/a" if math.isnan(best) else "MET" if r.env_steps_per_s >= 0.8 * best else "MISSED"
        print(f"goal (within 20% of the better alone) {name}: {fmt(r.env_steps_per_s)} env steps/s = "
              f"{fmt(r.env_steps_per_s / best, '.2f')} x -> {verdict}; the learner trains "
              f"{fmt(min(r.env_steps_per_s, r.updates_per_s))} of them per s at update ratio 1 "
              f"({fmt(r.updates_per_s / learner_alone, '.2f')} x learner alone)")
    if args.json:
        out = {"cores": cores, "load_average": load, "args": vars(args), "agent_update_alone_per_s": agent_ups,
               "better_alone_env_steps_per_s": best,
               "settings": {k: {kk: vv for kk, vv in vars(v).items()} for k, v in results.items()}}
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all(5.0)
