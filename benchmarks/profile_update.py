"""Where the time of one SAC/RLPD learner update goes on the CPU: torch.profiler over warm updates.

For each setting, ``--warmup`` untimed ``SACAgent.update(batch)`` calls, then ``--state-updates`` /
``--pixel-updates`` calls timed without the profiler (ms/update), then the same number under
``torch.profiler.profile(activities=[CPU], record_shapes=False)``. Printed per setting:

* the top ``--top`` ops by SELF CPU time (time in the op itself, not in the ops it calls; self
  times do not overlap, so they add up to the time spent in ops) with calls and ms per update and
  % of the total self CPU time;
* the same time grouped (markdown table; op names matched by the regular expressions in
  ``GROUPS``, the first match wins): matmul / linear, convolution (+ backward), optimizer (Adam's
  foreach / fused kernels and ``Optimizer.step`` / ``zero_grad``, and the other ``_foreach`` ops:
  the Polyak ``_foreach_lerp_`` and the foreach gradient clipping), elementwise / activation /
  reductions / losses, LayerNorm, data movement (copies, cat / stack, indexing, views,
  allocation, random numbers), autograd bookkeeping (the backward nodes' own time, their kernels
  are counted in their groups), other (its largest ops are named); plus "Python between ops": the
  ``update`` range's own time (the update's Python code and the dispatcher between ops).

Self CPU time is the time the calling thread spends in an op; with ``--threads`` > 1 the op's
intra-op threads work in parallel under it, so the groups are shares of wall-clock time, not of
CPU-seconds.

Settings (4-dim actions, as ``benchmarks/learner_flops.py``, whose ``Setting`` and batch helper
``benchmarks/learner_speed.make_batch`` are reused):

* state: 20-dim state, batch 256, 2 critics, hidden (256, 256), UTD 2 (the ``SACConfig`` defaults);
* pixels (CPU scale, as ``robot-rl learner --pixel-preset cpu``): two 64x64 cameras, 16 filters,
  8-dim state, batch 128, UTD 1.

``--trace out.json`` also writes a Chrome trace per setting (``out_state.json``,
``out_pixels.json``; open in chrome://tracing or https://ui.perfetto.dev) of a separate, short
profile of ``--trace-updates`` updates (a trace of every profiled update would be very large).

    python benchmarks/profile_update.py --threads 2                 # ~1 minute on 2 idle CPU cores (estimate)
    python benchmarks/profile_update.py --threads 2 --trace /tmp/update.json
    python benchmarks/profile_update.py --threads 1 --settings state
    python benchmarks/profile_update.py --quick                     # seconds: check that it runs

(Lines ``USDT: ... profiler_start`` / ``profiler_stop`` on stderr come from torch's profiler backend.)
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # before torch: keep the profiler backend's INFO / ERROR lines off stderr

import torch
from torch.profiler import ProfilerActivity, profile, record_function

try:  # run as a script: benchmarks/ is on sys.path
    from learner_flops import ACTION_DIM, Setting
    from learner_speed import make_batch, time_steps
except ImportError:  # python -m benchmarks.profile_update
    from benchmarks.learner_flops import ACTION_DIM, Setting
    from benchmarks.learner_speed import make_batch, time_steps

from robot_rl.agent import SACAgent, SACConfig
from robot_rl.threads import available_cores

UPDATE_RANGE = "update (Python between ops)"

# (group, regex on the lower-case op name); the first match wins, so the order matters.
GROUPS: list[tuple[str, str]] = [
    ("Python between ops", re.escape(UPDATE_RANGE.lower())),
    ("autograd bookkeeping", r"backward\d$|^autograd::|accumulategrad|^torch::autograd"),
    ("convolution (+ backward)", r"conv|mkldnn_convolution"),
    ("matmul / linear", r"\b(aten::)?(addmm|mm|bmm|baddbmm|matmul|linear|addmv|mv|dot)\b"),
    ("optimizer (Adam, foreach / fused; Polyak lerp, grad clipping)", r"optimizer|_foreach|adam"),
    ("LayerNorm", r"layer_norm|layernorm"),
    ("data movement / copies / indexing",
     (r"copy|_to_copy|aten::to\b|contiguous|clone|\bcat\b|stack|index|gather|scatter|slice|select|\bview|reshape"
      r"|permute|transpose|expand|empty|zeros|ones|fill_|full|pad|narrow|squeeze|as_strided|aten::t\b|unbind|split"
      r"|chunk|flatten|detach|alias|_unsafe_view|resize_|set_|randint|randperm|rand|normal_|uniform_|random_"
      r"|bernoulli|arange|new_|lift|item|_local_scalar_dense|unfold|roll|repeat|flip|grid_sampler|constant_pad")),
    ("elementwise / activation / reductions",
     (r"add|\bsub|mul|div|relu|threshold|tanh|exp|log|sigmoid|softplus|clamp|clip|pow|sqrt|rsqrt|neg|abs|where"
      r"|maximum|minimum|\bmin\b|\bmax\b|amin|amax|sum|mean|mse|loss|sign|square|reciprocal|erf|gelu|\bgt\b|\blt\b"
      r"|\bge\b|\ble\b|\beq\b|\bne\b|logical|softmax|norm|var|std|prod|cumsum|floor|ceil|round|fmod|remainder"
      r"|lerp|addcdiv|addcmul")),
]
_GROUP_RE = [(g, re.compile(p)) for g, p in GROUPS]


def group_of(name: str) -> str:
    low = name.lower()
    return next((g for g, r in _GROUP_RE if r.search(low)), "other")


def profiled_settings() -> dict[str, Setting]:
    cams = {"front": (64, 64, 3), "wrist": (64, 64, 3)}
    return {
        "state": Setting("state S=20, batch 256, E=2, hidden (256, 256), UTD 2", 20, {},
                         SACConfig(batch_size=256, num_critics=2, hidden_dims=(256, 256), utd_ratio=2)),
        "pixels": Setting("CPU pixels 2x64x64, 16 filters, S=8, batch 128, E=2, UTD 1", 8, cams,
                          SACConfig(batch_size=128, num_critics=2, hidden_dims=(256, 256), encoder_channels=16,
                                    utd_ratio=1)),
    }


def run_setting(key: str, setting: Setting, updates: int, args: argparse.Namespace) -> dict[str, float]:
    device, cfg = torch.device("cpu"), setting.config
    torch.manual_seed(0)
    agent = SACAgent(setting.state_dim, setting.cams, ACTION_DIM, cfg, device)
    batch = make_batch(cfg.utd_ratio * cfg.batch_size, setting.state_dim, ACTION_DIM, setting.cams, device)

    def step() -> None:
        with record_function(UPDATE_RANGE):
            agent.update(batch)

    time_steps(step, args.warmup, device)
    plain_ms = time_steps(step, updates, device) * 1e3
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        t = time.perf_counter()
        for _ in range(updates):
            step()
        profiled_ms = (time.perf_counter() - t) / updates * 1e3
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total_us = sum(e.self_cpu_time_total for e in events)

    print(f"\n### {setting.name}\n")
    print(f"{updates} updates after {args.warmup} warm-up, {torch.get_num_threads()} threads: "
          f"{plain_ms:.2f} ms/update without the profiler, {profiled_ms:.2f} ms/update under it; "
          f"self CPU time in ops and the update range {total_us / 1e3 / updates:.2f} ms/update\n")
    print(f"| op (top {args.top} by self CPU) | group | calls/update | self CPU ms/update | % of total |")
    print("|---|---|---:|---:|---:|")
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.top]:
        print(f"| `{e.key}` | {group_of(e.key)} | {e.count / updates:.1f} | "
              f"{e.self_cpu_time_total / 1e3 / updates:.3f} | {100 * e.self_cpu_time_total / total_us:.1f} |")
    groups: dict[str, float] = {g: 0.0 for g, _ in GROUPS}
    groups["other"] = 0.0
    others: dict[str, float] = {}
    for e in events:
        g = group_of(e.key)
        groups[g] += e.self_cpu_time_total
        if g == "other":
            others[e.key] = e.self_cpu_time_total
    print("\n| group | self CPU ms/update | % of total |\n|---|---:|---:|")
    for g, us in sorted(groups.items(), key=lambda kv: kv[1], reverse=True):
        print(f"| {g} | {us / 1e3 / updates:.3f} | {100 * us / total_us:.1f} |")
    if others:
        top_other = sorted(others.items(), key=lambda kv: kv[1], reverse=True)[:5]
        print("\nlargest ops in 'other': " + ", ".join(f"`{k}` {100 * v / total_us:.1f}%" for k, v in top_other))

    if args.trace:
        path = Path(args.trace)
        out = path.with_name(f"{path.stem}_{key}{path.suffix or '.json'}")
        with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as trace_prof:
            for _ in range(args.trace_updates):
                step()
        trace_prof.export_chrome_trace(str(out))
        print(f"\nwrote a Chrome trace of {args.trace_updates} updates to {out}")
    return {"plain_ms": plain_ms, "profiled_ms": profiled_ms, **{g: us / 1e3 / updates for g, us in groups.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: every core this process may use)")
    p.add_argument("--settings", nargs="+", choices=("state", "pixels"), default=["state", "pixels"])
    p.add_argument("--warmup", type=int, default=5, help="untimed updates first")
    p.add_argument("--state-updates", type=int, default=500, help="timed and profiled updates, state setting")
    p.add_argument("--pixel-updates", type=int, default=100, help="timed and profiled updates, pixel setting")
    p.add_argument("--top", type=int, default=15, help="ops listed per setting")
    p.add_argument("--trace", default=None, help="also write Chrome traces: <stem>_<setting>.json next to this path")
    p.add_argument("--trace-updates", type=int, default=3, help="updates in each Chrome trace")
    p.add_argument("--quick", action="store_true", help="seconds: 1 warm-up, 10 state and 2 pixel updates")
    args = p.parse_args()
    if args.quick:
        args.warmup, args.state_updates, args.pixel_updates, args.trace_updates = 1, 10, 2, 1
    torch.set_num_threads(args.threads or available_cores())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    chosen = profiled_settings()
    summary = {}
    for key in args.settings:
        n = args.state_updates if key == "state" else args.pixel_updates
        summary[key] = run_setting(key, chosen[key], n, args)
    if len(summary) > 1:
        names = [g for g, _ in GROUPS] + ["other"]
        print("\n### summary: % of self CPU time per group\n")
        print("| group | " + " | ".join(summary) + " |\n|---|" + "---:|" * len(summary))
        for g in names:
            cells = []
            for s in summary.values():
                total = sum(s[x] for x in names)
                cells.append(f"{100 * s[g] / total:.1f}")
            print(f"| {g} | " + " | ".join(cells) + " |")
        print("| ms/update (no profiler) | " + " | ".join(f"{s['plain_ms']:.2f}" for s in summary.values()) + " |")


if __name__ == "__main__":
    main()
