"""How close the SAC/RLPD learner and the deployable policy come to this machine's measured peak.

For each setting, one ``SACAgent.update(batch)`` call (``--utd-ratio`` critic steps, each with its
target pass, critic forward/backward and Polyak update, then one actor and one temperature step):

* FLOPs per update, COUNTED with ``torch.utils.flop_counter.FlopCounterMode`` over forward and
  backward of one warm update. It counts matrix products and convolutions only (mm, addmm, bmm,
  conv and their backward; 2 FLOPs per multiply-add); elementwise ops, LayerNorm, the optimiser and
  the DrQ shift are not counted, so the figure is the useful work, not everything the CPU does;
* updates/s, the median over ``--rounds`` interleaved rounds of ``--steps`` timed updates each
  (``--state-steps`` for the state setting), after ``--warmup`` untimed ones (interleaved because other processes on a small machine make
  single timings noisy; helpers from ``benchmarks/learner_speed.py``);
* achieved GFLOP/s = FLOPs x updates/s, and its fraction of the peak measured by this script.

The peak is measured here, in the same process and thread count: the best of ``--peak-repeats``
timings of a square matmul (``--matmul-size``, fp32 and bf16) and of a channels-last 3x3 conv shaped
like the encoder's second layer (batch 256, 32 -> 32 filters, 63x63 input, stride 2), FLOPs counted
the same way. "peak" is the higher fp32 figure; bf16 rows are shown against it too. A CPU without
AVX512_BF16 or AMX only emulates bf16 (measured on the 2-core AVX2 VM, 2026-12-07: a bf16 matmul at
~1 GFLOP/s, the state update under bf16 autocast 10-17x slower than fp32), so there ``--bf16`` pixel
rows take minutes per update.

Settings (4-dim actions, ``SACConfig`` defaults unless said: 2 critics, hidden (256, 256), UTD 2):
state (20-dim state, batch 256); pixels at the ``SACConfig`` defaults (two 128x128 cameras, strides
(2, 2, 2, 1), 32 filters, 8-dim state, batch 256); and the CPU scale of
``benchmarks/classifier_reward.py`` (two 64x64 cameras, 16 filters, batch 128; that benchmark trains
at UTD 1: pass ``--utd-ratio 1`` for its exact update). On a GPU the state and default pixel
settings also run at batch 1024 (``--batch-sizes``). ``--bf16`` adds rows with the update under
``torch.autocast(dtype=torch.bfloat16)`` (reported as not supported, with the error, if the update
fails under autocast); ``--compile`` adds rows with ``SACConfig(compile=True)`` (their FLOPs are the
eager count: the same math).

The policy: ``robot_rl.policies.policy.Policy`` (state normaliser + encoder + actor, built fresh
with ``Policy.build``) acting on ONE observation through ``act_normalized(state, images,
deterministic=True)``, numpy in and out as on the robot PC: FLOPs of one call and latency p50 / p99
over ``--latency-calls`` calls, for each setting's observation.

    python benchmarks/learner_flops.py --threads 2              # 1-2 minutes on 2 idle CPU cores (estimate)
    python benchmarks/learner_flops.py --threads 2 --bf16 --compile --json learner_flops.json
    python benchmarks/learner_flops.py --threads 1 --rounds 1 --steps 2    # check that it runs
    python benchmarks/learner_flops.py --device cuda --bf16 --compile      # adds batch 1024 rows
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import gymnasium as gym
import numpy as np
import torch
import tyro
from torch.utils.flop_counter import FlopCounterMode

try:  # run as a script: benchmarks/ is on sys.path
    from learner_speed import make_batch, sync, time_steps
except ImportError:  # python -m benchmarks.learner_flops
    from benchmarks.learner_speed import make_batch, sync, time_steps

from robot_rl.agent import SACAgent, SACConfig, resolve_device
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.policies.policy import Policy, PolicyConfig

ACTION_DIM = 4


@dataclass
class Args:
    """Learner FLOPs, throughput and fraction of the measured peak."""

    device: str = "cpu"
    """'cpu', 'cuda', 'cuda:N' or 'auto'."""
    threads: int = 0
    """torch intra-op threads, torch.set_num_threads (0: torch's default)."""
    rounds: int = 3
    """interleaved timing rounds (the median is reported)."""
    steps: int = 5
    """timed updates per round, pixel settings."""
    state_steps: int = 50
    """timed updates per round, state settings."""
    warmup: int = 2
    """untimed updates before counting FLOPs and timing (a compiled variant compiles in them)."""
    utd_ratio: int = SACConfig.utd_ratio
    """critic steps per update (SACConfig's default)."""
    batch_sizes: tuple[int, ...] = ()
    """batch sizes of the state and default pixel settings; empty: 256 on CPU, 256 and 1024 on a GPU.
    The CPU-scale setting always uses batch 128."""
    bf16: bool = False
    """add rows with the update under torch.autocast(bfloat16)."""
    compile: bool = False
    """add rows with SACConfig(compile=True) (the warm-up includes compilation)."""
    skip_pixels: bool = False
    """run the state setting only."""
    matmul_size: int = 0
    """side of the square peak matmul; 0: 2048 on CPU, 8192 on a GPU."""
    peak_repeats: int = 5
    """timings per peak kernel (the best is kept)."""
    latency_calls: int = 200
    """policy act_normalized calls per latency measurement."""
    json: str | None = None
    """write every number (and the settings) to this JSON file."""


@dataclass
class Setting:
    """One learner configuration: observation shapes and the agent's settings."""

    name: str
    state_dim: int
    cams: dict[str, tuple[int, int, int]]
    config: SACConfig = field(default_factory=SACConfig)


def settings(args: Args, device: torch.device) -> list[Setting]:
    """The state, default-pixel and CPU-scale settings of the module docstring."""
    batches = args.batch_sizes or ((256,) if device.type == "cpu" else (256, 1024))
    utd = args.utd_ratio
    out = [Setting(f"state S=20, batch {b}", 20, {}, SACConfig(batch_size=b, utd_ratio=utd)) for b in batches]
    if not args.skip_pixels:
        cams = {"front": (128, 128, 3), "wrist": (128, 128, 3)}
        out += [Setting(f"pixels 2x128x128, 32 filters, batch {b}", 8, cams, SACConfig(batch_size=b, utd_ratio=utd))
                for b in batches]
        small = {"front": (64, 64, 3), "wrist": (64, 64, 3)}
        out.append(Setting("CPU scale: pixels 2x64x64, 16 filters, batch 128", 8, small,
                           SACConfig(batch_size=128, encoder_channels=16, utd_ratio=utd)))
    return out


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (matmuls and convolutions, forward and backward) by FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def reason(e: Exception) -> str:
    """First line of an exception, shortened, for a table cell."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:160]}"


def measure_peak(args: Args, device: torch.device) -> dict[str, float]:
    """Best-of-N GFLOP/s of an fp32 and a bf16 square matmul and of an fp32 channels-last 3x3 conv.

    The matmul side doubles from 256 up to ``--matmul-size`` while one call takes under 0.05 s, so a
    dtype the hardware only emulates (bf16 without AVX512_BF16 / AMX: ~1 GFLOP/s) is timed on a
    smaller matrix instead of for minutes; the side used is reported.
    """
    max_n = args.matmul_size or (2048 if device.type == "cpu" else 8192)
    calls = 1 if device.type == "cpu" else 10  # one CPU matmul takes ~0.1 s; GPU calls need batching
    torch.manual_seed(0)
    result: dict[str, float] = {}

    def best(fn: Callable[[], object]) -> float:
        flops = count_flops(fn)
        seconds = min(time_steps(fn, calls, device) for _ in range(args.peak_repeats))
        return flops / seconds / 1e9

    for dtype, key in ((torch.float32, "matmul_fp32"), (torch.bfloat16, "matmul_bf16")):
        n = 256
        try:
            while True:
                a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
                if n >= max_n or time_steps(lambda: a @ b, calls, device) > 0.05:
                    break
                n = min(2 * n, max_n)
            result[key], result[key + "_size"] = best(lambda: a @ b), n
        except RuntimeError as e:
            print(f"  {key}: not supported ({reason(e)})")
            result[key], result[key + "_size"] = float("nan"), n
    conv = torch.nn.Conv2d(32, 32, 3, stride=2).to(device, memory_format=torch.channels_last).requires_grad_(False)
    x = torch.randn(256, 32, 63, 63, device=device).contiguous(memory_format=torch.channels_last)
    time_steps(lambda: conv(x), 1, device)  # warm-up (oneDNN / cuDNN picks its kernel)
    result["conv_fp32"] = best(lambda: conv(x))
    result["peak_fp32"] = max(result["matmul_fp32"], result["conv_fp32"])
    return result


@dataclass
class Variant:
    """One timed row: a setting's update, eager / bf16 autocast / compiled."""

    label: str
    step: Callable[[], object]
    timed_steps: int
    flops: int = 0
    warmup_s: float = float("nan")
    error: str = ""
    seconds: list[float] = field(default_factory=list)


def build_variants(setting: Setting, args: Args, device: torch.device) -> list[Variant]:
    """Agents and batch of one setting; each variant warmed up and (eager, bf16) FLOP-counted."""
    cfg = setting.config
    desc = f"{setting.name}, E={cfg.num_critics}, UTD {cfg.utd_ratio}"
    steps = args.state_steps if not setting.cams else args.steps
    batch = make_batch(cfg.utd_ratio * cfg.batch_size, setting.state_dim, ACTION_DIM, setting.cams, device)
    torch.manual_seed(0)
    agent = SACAgent(setting.state_dim, setting.cams, ACTION_DIM, cfg, device)

    def eager() -> object:
        return agent.update(batch)

    def bf16() -> object:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return agent.update(batch)

    variants = [Variant(desc, eager, steps)]
    if args.bf16:
        variants.append(Variant(f"{desc}, bf16 autocast", bf16, steps))
    if args.compile:
        compiled = SACAgent(setting.state_dim, setting.cams, ACTION_DIM, replace(cfg, compile=True), device)
        variants.append(Variant(f"{desc}, torch.compile", lambda: compiled.update(batch), steps))
    for v in variants:
        try:
            v.warmup_s = time_steps(v.step, args.warmup, device) * args.warmup
            if "torch.compile" in v.label:
                v.flops = variants[0].flops  # same math; FlopCounterMode does not see into compiled graphs
            else:
                v.flops = count_flops(v.step)
        except Exception as e:  # noqa: BLE001 - any failure becomes a "not supported" row, not a crash
            v.error = reason(e)
        status = f"not supported ({v.error})" if v.error else f"{v.flops / 1e9:.3f} GFLOP, warm-up {v.warmup_s:.1f} s"
        print(f"  {v.label}: {status}", flush=True)
    return variants


def policy_latency(setting: Setting, args: Args, device: torch.device) -> dict[str, float | str]:
    """FLOPs and p50 / p99 latency (ms) of ``Policy.act_normalized`` on one observation of ``setting``."""
    spaces: dict[str, gym.Space] = {"state": gym.spaces.Box(-np.inf, np.inf, (setting.state_dim,), np.float32)}
    spaces.update({k: gym.spaces.Box(0, 255, s, np.uint8) for k, s in setting.cams.items()})
    layout = ObsLayout.from_space(gym.spaces.Dict(spaces))
    scaler = ActionScaler.from_space(gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32))
    torch.manual_seed(0)
    policy = Policy.build(layout, scaler, PolicyConfig.from_agent_config(setting.config), device)
    rng = np.random.default_rng(0)
    state = rng.standard_normal(setting.state_dim).astype(np.float32)
    images = {k: rng.integers(0, 256, s, dtype=np.uint8) for k, s in setting.cams.items()}

    def call() -> np.ndarray:
        return policy.act_normalized(state, images, deterministic=True)

    for _ in range(10):
        call()
    flops = count_flops(call)
    ms = []
    for _ in range(args.latency_calls):
        t = time.perf_counter()
        call()  # returns a numpy array: on a GPU this includes the copy back, so the call is complete
        ms.append((time.perf_counter() - t) * 1e3)
    return {"setting": setting.name.split(", batch")[0], "flops": flops, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "calls": args.latency_calls}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main(args: Args) -> None:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    hw = (torch.cuda.get_device_name(device) if device.type == "cuda" else
          f"{cpu_name()}, {os.cpu_count()} CPUs, torch CPU capability {torch.backends.cpu.get_cpu_capability()}")
    env = {"device": str(device), "hardware": hw, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "load_average": load, "float32_matmul_precision": torch.get_float32_matmul_precision()}
    print(f"device {device} ({hw}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {load:.2f}, fp32 matmul precision '{env['float32_matmul_precision']}'", flush=True)

    print("peak:", flush=True)
    peak = measure_peak(args, device)
    n32, n16 = int(peak["matmul_fp32_size"]), int(peak["matmul_bf16_size"])
    peak_lines = [f"matmul {n32}x{n32} fp32: {peak['matmul_fp32']:.1f} GFLOP/s",
                  f"matmul {n16}x{n16} bf16: {peak['matmul_bf16']:.1f} GFLOP/s",
                  f"conv 3x3 channels-last fp32, (256, 32, 63, 63) -> 32 filters, stride 2: {peak['conv_fp32']:.1f} GFLOP/s",
                  f"peak (higher fp32 figure, best of {args.peak_repeats}): {peak['peak_fp32']:.1f} GFLOP/s"]
    for line in peak_lines:
        print(f"  {line}", flush=True)

    setting_list = settings(args, device)
    variants: list[Variant] = []
    for s in setting_list:
        print(f"{s.name}:", flush=True)
        variants += build_variants(s, args, device)
    timed = [v for v in variants if not v.error]
    for r in range(args.rounds):
        for v in timed:
            v.seconds.append(time_steps(v.step, v.timed_steps, device))
        print(f"  round {r + 1}/{args.rounds} done", flush=True)

    print("policy act_normalized, one observation, deterministic:", flush=True)
    observations = {s.name.split(", batch")[0]: s for s in setting_list}  # the batch size does not matter here
    latency = [policy_latency(s, args, device) for s in observations.values()]

    rows = []
    for v in variants:
        row: dict[str, object] = {"setting": v.label, "flops": v.flops, "warmup_s": v.warmup_s, "error": v.error}
        if not v.error:
            rate = 1.0 / statistics.median(v.seconds)
            gflops = v.flops * rate / 1e9
            row.update(updates_per_s=rate, gflop_per_s=gflops, pct_of_peak=100 * gflops / peak["peak_fp32"],
                       seconds_per_update_by_round=v.seconds, timed_updates_per_round=v.timed_steps)
        rows.append(row)

    print(f"\n| setting | FLOPs/update | updates/s | GFLOP/s | % of peak |\n|---|---:|---:|---:|---:|")
    for row in rows:
        if row["error"]:
            print(f"| {row['setting']} | not supported: {row['error']} | | | |")
        else:
            print(f"| {row['setting']} | {row['flops'] / 1e9:.3f} G | {row['updates_per_s']:.3g} | "
                  f"{row['gflop_per_s']:.1f} | {row['pct_of_peak']:.1f} |")
    print(f"\npeak ({torch.get_num_threads()} threads): " + "; ".join(peak_lines))
    print("FLOPs: matmuls and convolutions only (FlopCounterMode), forward + backward of one warm update; "
          "% of the fp32 peak, bf16 rows included.")
    print(f"\npolicy act_normalized (1 observation, deterministic, {args.latency_calls} calls):")
    for lat in latency:
        print(f"  {lat['setting']}: {lat['flops'] / 1e6:.3g} MFLOP, p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "args": asdict(args), "peak_gflop_per_s": peak, "updates": rows,
                       "policy_latency": latency}, f, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main(tyro.cli(Args))
