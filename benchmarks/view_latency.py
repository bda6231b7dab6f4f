"""The actor's step latency with and without the Rerun view (``--view``), p50 and p99.

Usage:
    python benchmarks/view_latency.py [--steps 400] [--warmup 50] [--image-size 64] [--grpc]

One :class:`robot_rl.actor.ActorLoop` per env (state: ``robot_rl/PandaPickLift-v0``; pixels:
``robot_rl/PandaPickLiftPixels-v0`` at ``--image-size``), acting with the learner's (untrained,
stochastic) policy on the CPU, one torch thread. Each row times :meth:`ActorLoop.step` end to end
(observation in -> policy -> action out -> env step -> chunk and view bookkeeping) over
``--steps`` steps after ``--warmup``; the modes run in the same process, interleaved in blocks of
50 steps so that drift in the machine's load hits them alike:

* ``off``: no view (the default);
* ``rrd``: ``--view --view-target <tmp>/view.rrd`` (every camera frame);
* ``rrd/4``: the same with ``--view-every-frames 4``;
* ``grpc`` (``--grpc``): streaming to a ``rerun --serve-grpc --bind 127.0.0.1`` process, like a live viewer.

Prints milliseconds per step and each mode's ratio to ``off``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robot_rl.agent import SACConfig
from robot_rl.train import TrainConfig, Trainer
from robot_rl.view import LiveView, ee_position_slice

BLOCK = 50


def measure(env_id: str, env_kwargs: dict[str, str], steps: int, warmup: int, folder: Path,
            grpc_url: str | None) -> dict[str, np.ndarray]:
    """Step latencies (s) of each mode for one env."""
    trainer = Trainer(TrainConfig(env=env_id, env_kwargs=env_kwargs, total_env_steps=steps, num_demos=0,
                                  eval_every_steps=0, checkpoint_every_steps=0, progress=False, final_video=False,
                                  run_dir=folder / env_id.replace("/", "_"), agent=SACConfig(hidden_dims=(256, 256))))
    actor, policy = trainer.actor, trainer.learner.policy
    cameras = list(actor.layout.image_shapes)
    ee = ee_position_slice(actor.env)
    views = {"off": None,
             "rrd": LiveView(folder / f"{actor.env.spec.id.split('/')[-1]}.rrd", cameras, 1, ee),
             "rrd/4": LiveView(folder / f"{actor.env.spec.id.split('/')[-1]}_4.rrd", cameras, 4, ee)}
    if grpc_url is not None:
        views["grpc"] = LiveView(grpc_url, cameras, 1, ee)
    times: dict[str, list[float]] = {k: [] for k in views}
    for _ in range(warmup):
        actor.step(policy)
    for _ in range(-(-steps // BLOCK)):
        for mode, view in views.items():
            actor.view = view
            for _ in range(BLOCK):
                t0 = time.perf_counter()
                actor.step(policy)
                times[mode].append(time.perf_counter() - t0)
    actor.view = None
    for view in views.values():
        if view is not None:
            view.close()
    trainer.close()
    return {k: np.array(v[:steps]) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--grpc", action="store_true", help="also stream to a local `rerun --serve-grpc` process")
    args = parser.parse_args()
    torch.set_num_threads(1)
    server = None
    grpc_url = None
    if args.grpc:
        port = 9877
        server = subprocess.Popen([str(Path(sys.executable).parent / "rerun"), "--serve-grpc", "--port", str(port),
                                   "--bind", "127.0.0.1", "--server-memory-limit", "256MiB"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2.0)
        grpc_url = f"rerun+http://127.0.0.1:{port}/proxy"
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, env_id, kw in (("state", "robot_rl/PandaPickLift-v0", {}),
                                      (f"pixels {args.image_size}x{args.image_size}", "robot_rl/PandaPickLiftPixels-v0",
                                       {"image_size": str(args.image_size)})):
                for mode, t in measure(env_id, kw, args.steps, args.warmup, Path(tmp), grpc_url).items():
                    rows.append((label, mode, t))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    print(f"ActorLoop.step latency, {args.steps} steps per mode, CPU, 1 torch thread")
    print(f"{'env':<16} {'view':<6} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'p50 ratio':>10} {'p99 ratio':>10}")
    base = {}
    for label, mode, t in rows:
        p50, p99 = np.percentile(t, 50) * 1e3, np.percentile(t, 99) * 1e3
        if mode == "off":
            base[label] = (p50, p99)
        b50, b99 = base[label]
        print(f"{label:<16} {mode:<6} {p50:8.2f} {p99:8.2f} {t.mean() * 1e3:8.2f} {p50 / b50:9.2f}x {p99 / b99:9.2f}x")


if __name__ == "__main__":
    main()
