"""Image topics over ROS 2 (rclpy, Fast DDS): latency, throughput, loss; the sim node's 10 Hz jitter.

    python benchmarks/ros_topics.py                 # all cases, ~1 minute
    python benchmarks/ros_topics.py --seconds 5     # shorter

Cases (each a publisher process and this process subscribing, over rclpy with its default
middleware, Fast DDS as in a stock ROS 2 Jazzy install, discovery limited to this host
(``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``), through robot_rl's node API, so serialisation and
conversion to numpy are included; Fast DDS's transports are its defaults, UDP and shared memory,
unless ``FASTDDS_BUILTIN_TRANSPORTS`` is set):

* one 640x480 rgb8 camera at 30 Hz (``sensor`` QoS: best effort, depth 5; and ``reliable``);
* two 128x128 rgb8 cameras at 10 Hz;
* the same 640x480 stream as fast as the publisher can go (throughput ceiling).

The publisher starts when the subscriber has matched it (a TRANSIENT_LOCAL ``/bench/go``), so a
frame lost to one-sided discovery is not counted as loss. Latency is receive time minus the header stamp set just before ``publish`` (one host, one
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
import tempfile
import textwrap
import threading
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
# set before rclpy initialises (it reads them once per process); the publisher processes inherit them
os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

from robot_rl.ros import convert  # noqa: E402
from robot_rl.ros.node import Node, QoSProfile, stamp_to_seconds  # noqa: E402

PUBLISHER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from robot_rl.ros import convert
    from robot_rl.ros.node import Node, QoSProfile
    cams, h, w, rate, seconds, reliable = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6] == "1"
    node = Node("bench_publisher")
    profile = QoSProfile(10, True) if reliable else "sensor"
    pubs = [node.create_publisher("sensor_msgs/msg/Image", convert.camera_topics(c)["image"], profile) for c in cams]
    go = []
    node.create_subscription("std_msgs/msg/Empty", "/bench/go", go.append, "static")
    node.spin_in_thread()
    # start when the subscriber says it has matched every publisher (discovery is not symmetric:
    # a best-effort frame sent before the reader knows the writer is lost, and would count as loss)
    deadline = time.monotonic() + 60
    while not go and time.monotonic() < deadline:
        time.sleep(0.01)
    if not go:
        sys.exit("no go from the subscriber within 60 s")
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


def ros_case(cams: list[str], h: int, w: int, rate: float, seconds: float, reliable: bool) -> dict:
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
    subs = [node.create_subscription("sensor_msgs/msg/Image", convert.camera_topics(c)["image"], lambda m, c=c: on_image(c, m), profile)
            for c in cams]
    go = node.create_publisher("std_msgs/msg/Empty", "/bench/go", "static")
    node.spin_in_thread()
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, ",".join(cams), str(h), str(w), str(rate), str(seconds), "1" if reliable else "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while min(s.get_publisher_count() for s in subs) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    go.publish(node.msg("std_msgs/msg/Empty"))  # TRANSIENT_LOCAL: the publisher gets it whenever it matches
    out, err = proc.communicate(timeout=seconds + 120)
    node.shutdown()
    if proc.returncode != 0:
        raise RuntimeError(err[-2000:])
    sent = int(out.split()[-1])
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
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.sim.node", "--ros-args", "-p", "env:=robot_rl/PandaPickLiftPixels-v0"],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while len(arrivals) < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    n0 = len(arrivals)
    if n0 >= 5:
        time.sleep(seconds)
    if proc.poll() is None:
        proc.send_signal(2)
        proc.wait(timeout=20)
    node.shutdown()
    if len(arrivals) - n0 < 3:
        log.seek(0)
        raise RuntimeError(f"the sim node published {len(arrivals)} states (exit code {proc.returncode}); its output:\n"
                           + log.read().decode(errors="replace")[-2000:])
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
    import rclpy

    transports = os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "DEFAULT")
    print(f"image topics over ROS 2: rclpy, {rclpy.get_rmw_implementation_identifier()} (transports {transports}), "
          f"this host only, separate processes; {s:g} s per case; latency in ms\n")
    print(f"{'case':<44} {'path':<12} {'sent':>6} {'recv':>6} {'Hz':>7} {'MB/s':>7} {'p50':>7} {'p99':>7}")
    cases = [("640x480 rgb8 @ 30 Hz, sensor QoS", ["front"], 480, 640, 30.0, False),
             ("640x480 rgb8 @ 30 Hz, reliable", ["front"], 480, 640, 30.0, True),
             ("2 x 128x128 rgb8 @ 10 Hz, sensor QoS", ["front", "wrist"], 128, 128, 10.0, False),
             ("640x480 rgb8, as fast as possible, reliable", ["front"], 480, 640, 0.0, True)]
    for label, cams, h, w, rate, reliable in cases:
        for path, fn in (("rclpy", lambda: ros_case(cams, h, w, rate, s, reliable)), ("in-process", lambda: inprocess_case(cams, h, w, rate, s))):
            r = fn()
            print(f"{label:<44} {path:<12} {r['sent']:>6} {r['received']:>6} {r['rate']:>7.1f} {r['mb_s']:>7.1f} {r['p50']:>7.2f} {r['p99']:>7.2f}", flush=True)
    j = jitter_case(max(s, 10.0))
    print(f"\nsim node control loop at 10 Hz (MuJoCo, 2 x 128x128 cameras), {j['ticks']} ticks, mean period {j['period_ms']:.2f} ms")
    print(f"  |period - 100 ms| at the node (stamps):   p50 {j['node_p50']:.2f} ms  p99 {j['node_p99']:.2f} ms  max {j['node_max']:.2f} ms")
    print(f"  |period - 100 ms| at a subscriber:        p50 {j['arrival_p50']:.2f} ms  p99 {j['arrival_p99']:.2f} ms  max {j['arrival_max']:.2f} ms")


if __name__ == "__main__":
    main()
