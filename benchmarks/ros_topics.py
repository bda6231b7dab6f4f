"""Image topics over DDS (latency, throughput, loss) and the sim node's 10 Hz control-loop jitter.

    python benchmarks/ros_topics.py                 # all cases, ~1 minute
    python benchmarks/ros_topics.py --seconds 5     # shorter

Cases (each a publisher process and this process subscribing, over Cyclone DDS on loopback with
the ROS 2 wire format, through robot_rl's node API, so serialisation and conversion to numpy
are included):

* one 640x480 rgb8 camera at 30 Hz (``sensor`` QoS: best effort, depth 5; and ``reliable``);
* two 128x128 rgb8 cameras at 10 Hz;
* the same 640x480 stream as fast as the publisher can go (throughput ceiling).

Latency is receive time minus the header stamp set just before ``publish`` (one host, one
clock), measured after conversion back to an ``(H, W, 3) uint8`` array. The baseline is the
in-process path a simulator-in-the-loop env uses: the frame handed to another thread through a
``queue.Queue`` (no serialisation). Jitter: the sim node (MuJoCo, two 128x128 cameras) runs as
its own process at 10 Hz; its tick start times (from the stamps it publishes) and the arrival
times here give the period error.
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("ROBOT_RL_ROS_BACKEND", "dds")
os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))

from robot_rl.ros import convert, qos  # noqa: E402
from robot_rl.ros.node import Node, QoSProfile, stamp_to_seconds  # noqa: E402

os.environ.setdefault("CYCLONEDDS_URI", qos.localhost_config_xml())

PUBLISHER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from robot_rl.ros import convert
    from robot_rl.ros.node import Node, QoSProfile
    cams, h, w, rate, seconds, reliable = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6] == "1"
    node = Node("bench_publisher")
    profile = QoSProfile(10, True) if reliable else "sensor"
    pubs = [node.create_publisher("sensor_msgs/msg/Image", convert.camera_topics(c)["image"], profile) for c in cams]
    for p in pubs:
        p.wait_for_subscribers(1, 10.0)
    time.sleep(0.5)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(4)]
    period = 1.0 / rate if rate > 0 else 0.0
    start = time.monotonic(); n = 0
    while time.monotonic() - start < seconds:
        for p in pubs:
            p.publish(convert.image_msg(frames[n % 4], time.time(), "bench"))
        n += 1
        if period:
            delay = start + n * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    time.sleep(0.5)
    print(n, flush=True)
    node.shutdown()
""")


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def dds_case(cams: list[str], h: int, w: int, rate: float, seconds: float, reliable: bool) -> dict:
    """One publisher process, this process subscribing; latencies in ms."""
    node = Node("bench_subscriber")
    latencies: list[float] = []
    counts = {c: 0 for c in cams}
    lock = threading.Lock()

    def on_image(cam: str, msg) -> None:
        img = convert.image_to_array(msg)
        assert img.shape == (h, w, 3)
        with lock:
            latencies.append((time.time() - stamp_to_seconds(msg.header.stamp)) * 1e3)
            counts[cam] += 1

    profile = QoSProfile(10, True) if reliable else "sensor"
    for c in cams:
        node.create_subscription("sensor_msgs/msg/Image", convert.camera_topics(c)["image"], lambda m, c=c: on_image(c, m), profile)
    node.spin_in_thread()
    proc = subprocess.run([sys.executable, "-c", PUBLISHER, ",".join(cams), str(h), str(w), str(rate), str(seconds), "1" if reliable else "0"],
                          capture_output=True, text=True, timeout=seconds + 60)
    node.shutdown()
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    sent = int(proc.stdout.split()[-1])
    received = min(counts.values())
    return {"sent": sent, "received": received, "rate": received / seconds, "p50": _pct(latencies, 50), "p99": _pct(latencies, 99),
            "mb_s": received * len(cams) * h * w * 3 / seconds / 1e6}


def inprocess_case(cams: list[str], h: int, w: int, rate: float, seconds: float) -> dict:
    """Baseline: frames handed to a consumer thread through a queue (what an in-process sim does)."""
    q: queue.Queue = queue.Queue(maxsize=10)
    latencies: list[float] = []
    received = [0]

    def consume() -> None:
        while True:
            item = q.get()
            if item is None:
                return
            stamp, frames = item
            for f in frames:
                assert f.shape == (h, w, 3)
            latencies.append((time.time() - stamp) * 1e3)
            received[0] += 1

    t = threading.Thread(target=consume)
    t.start()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(4)]
    start, n = time.monotonic(), 0
    period = 1.0 / rate if rate > 0 else 0.0
    while time.monotonic() - start < seconds:
        q.put((time.time(), [frames[n % 4].copy() for _ in cams]))
        n += 1
        if period:
            delay = start + n * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    q.put(None)
    t.join()
    return {"sent": n, "received": received[0], "rate": received[0] / seconds, "p50": _pct(latencies, 50), "p99": _pct(latencies, 99),
            "mb_s": received[0] * len(cams) * h * w * 3 / seconds / 1e6}


def jitter_case(seconds: float) -> dict:
    """The sim node (MuJoCo, two 128x128 cameras) at 10 Hz in its own process."""
    node = Node("bench_jitter")
    arrivals, stamps = [], []
    node.create_subscription("sensor_msgs/msg/JointState", convert.JOINT_STATES,
                             lambda m: (arrivals.append(time.monotonic()), stamps.append(stamp_to_seconds(m.header.stamp))))
    node.spin_in_thread()
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.sim.node", "--ros-args", "-p", "env:=robot_rl/PandaPickLiftPixels-v0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(arrivals) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    n0 = len(arrivals)
    time.sleep(seconds)
    proc.send_signal(2)
    proc.wait(timeout=20)
    node.shutdown()
    a, s = np.diff(arrivals[n0:]) * 1e3, np.diff(stamps[n0:]) * 1e3
    err_a, err_s = np.abs(a - 100.0), np.abs(s - 100.0)
    return {"ticks": len(a), "period_ms": float(np.mean(s)), "node_p50": float(np.percentile(err_s, 50)),
            "node_p99": float(np.percentile(err_s, 99)), "node_max": float(err_s.max()),
            "arrival_p50": float(np.percentile(err_a, 50)), "arrival_p99": float(np.percentile(err_a, 99)), "arrival_max": float(err_a.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each case, seconds")
    args = parser.parse_args()
    s = args.seconds
    print(f"image topics over Cyclone DDS (loopback, separate processes), {s:g} s per case; latency in ms\n")
    print(f"{'case':<44} {'path':<12} {'sent':>6} {'recv':>6} {'Hz':>7} {'MB/s':>7} {'p50':>7} {'p99':>7}")
    cases = [("640x480 rgb8 @ 30 Hz, sensor QoS", ["front"], 480, 640, 30.0, False),
             ("640x480 rgb8 @ 30 Hz, reliable", ["front"], 480, 640, 30.0, True),
             ("2 x 128x128 rgb8 @ 10 Hz, sensor QoS", ["front", "wrist"], 128, 128, 10.0, False),
             ("640x480 rgb8, as fast as possible, reliable", ["front"], 480, 640, 0.0, True)]
    for label, cams, h, w, rate, reliable in cases:
        for path, fn in (("DDS", lambda: dds_case(cams, h, w, rate, s, reliable)), ("in-process", lambda: inprocess_case(cams, h, w, rate, s))):
            r = fn()
            print(f"{label:<44} {path:<12} {r['sent']:>6} {r['received']:>6} {r['rate']:>7.1f} {r['mb_s']:>7.1f} {r['p50']:>7.2f} {r['p99']:>7.2f}", flush=True)
    j = jitter_case(max(s, 10.0))
    print(f"\nsim node control loop at 10 Hz (MuJoCo, 2 x 128x128 cameras), {j['ticks']} ticks, mean period {j['period_ms']:.2f} ms")
    print(f"  |period - 100 ms| at the node (stamps):   p50 {j['node_p50']:.2f} ms  p99 {j['node_p99']:.2f} ms  max {j['node_max']:.2f} ms")
    print(f"  |period - 100 ms| at a subscriber:        p50 {j['arrival_p50']:.2f} ms  p99 {j['arrival_p99']:.2f} ms  max {j['arrival_max']:.2f} ms")


if __name__ == "__main__":
    main()
