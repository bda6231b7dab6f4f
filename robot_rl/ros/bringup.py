"""``robot-rl bringup <params.yaml>``: start a node graph as processes, without ``ros2 launch``.

The graph is the parameter file itself: a ROS 2 parameter YAML (``config/sim.yaml``,
``config/real.yaml``) whose top-level entries are node names. A node's kind, and so its
executable, is the first word of its name (``sim``, ``camera_front`` -> camera node,
``arm``, ``teleop``, ``recorder``, see :data:`NODE_KINDS`). ``launch/sim.launch.py`` and
``launch/real.launch.py`` read the same file through :func:`node_graph`, so ``ros2 launch`` and
``robot-rl bringup`` start the same nodes with the same parameters.

Each node runs as ``python -m <module> --ros-args -r __node:=<name> --params-file <yaml>``, a real
ROS 2 node on rclpy (the Jazzy wheels from PyPI, ``pip install -e .[ros]``, or a sourced ROS 2
install); ``ros2 launch`` itself (``launch`` / ``launch_ros``) is not on PyPI, hence this command.
The ROS domain is ``ROS_DOMAIN_ID`` of the calling environment, as for ``ros2 launch``. Output lines are prefixed with the
node name and also written to ``<log_dir>/<name>.log``. A node that exits with an error stops
the whole graph (as ``required=True`` in ``ros2 launch``) and bringup exits 1 naming it; Ctrl-C
or SIGTERM sends SIGINT to every node (a clean lifecycle shutdown: bags closed, arm held), then
SIGKILL after ``stop_timeout_s``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from robot_rl.errors import ConfigError
from robot_rl.ros.node import read_params_yaml

#: node kind -> (console script, Python module); the kind is the node name's first word.
NODE_KINDS: dict[str, tuple[str, str]] = {
    "sim": ("robot_rl_sim_node", "robot_rl.sim.node"),
    "camera": ("robot_rl_camera_node", "robot_rl.drivers.camera_node"),
    "arm": ("robot_rl_arm_node", "robot_rl.drivers.arm_node"),
    "teleop": ("robot_rl_teleop_node", "robot_rl.drivers.teleop.node"),
    "recorder": ("robot_rl_recorder", "robot_rl.ros.recorder"),
}


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: ``name`` (ROS node name), ``kind``, ``executable``, ``module``."""

    name: str
    kind: str
    executable: str
    module: str


def node_kind(name: str) -> str:
    """Kind of a node from its name: ``camera_front`` -> ``camera``.

    Raises:
        ConfigError: the name does not start with a known kind.
    """
    kind = name.strip("/").split("/")[-1].split("_")[0]
    if kind not in NODE_KINDS:
        raise ConfigError(f"node {name!r}: its name must start with one of {sorted(NODE_KINDS)} (e.g. 'camera_front'), "
                          "which selects the executable.")
    return kind


def node_graph(params_file: str | Path) -> list[NodeSpec]:
    """The nodes of a parameter file, in file order (see the module docstring).

    Raises:
        ConfigError: missing file, not a ROS 2 parameter file, a wildcard-only file, or a node
            name of unknown kind.
    """
    path = Path(params_file)
    data = read_params_yaml(path)
    specs = []
    for key, body in data.items():
        name = str(key)
        if name in ("/**", "**"):
            continue
        if not isinstance(body, dict) or "ros__parameters" not in body:
            raise ConfigError(f"{path}: entry {name!r} has no 'ros__parameters' map (ROS 2 parameter file format).")
        kind = node_kind(name)
        executable, module = NODE_KINDS[kind]
        specs.append(NodeSpec(name.strip("/"), kind, executable, module))
    if not specs:
        raise ConfigError(f"{path} names no nodes.")
    return specs


def node_command(spec: NodeSpec, params_file: str | Path) -> list[str]:
    """The command line that starts ``spec`` as ``ros2 launch`` would (``ros2 run robot_rl
    <executable> --ros-args -r __node:=<name> --params-file <params_file>``), with this Python.

    Example:
        >>> node_command(NodeSpec("camera_front", "camera", *NODE_KINDS["camera"]), "config/real.yaml")[1:]
        ['-m', 'robot_rl.drivers.camera_node', '--ros-args', '-r', '__node:=camera_front', '--params-file', 'config/real.yaml']
    """
    return [sys.executable, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}", "--params-file", str(params_file)]


@dataclass
class _Running:
    spec: NodeSpec
    process: subprocess.Popen
    log: Path
    threads: list[threading.Thread] = field(default_factory=list)


def _pump(stream: object, prefix: str, log_file: object, echo: bool) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        log_file.write(raw)  # type: ignore[attr-defined]
        log_file.flush()  # type: ignore[attr-defined]
        if echo:
            sys.stderr.write(f"[{prefix}] {raw.decode(errors='replace')}")
            sys.stderr.flush()
    log_file.close()  # type: ignore[attr-defined]


def bringup(params_file: str | Path, *, only: list[str] | None = None, skip: list[str] | None = None,
            log_dir: str | Path | None = None, echo: bool = True, stop_timeout_s: float = 10.0,
            run_for_s: float | None = None, ready: threading.Event | None = None,
            stop: threading.Event | None = None) -> int:
    """Start the graph of ``params_file`` and supervise it until Ctrl-C, ``stop``, or a node failure.

    Args:
        params_file: ROS 2 parameter YAML naming the nodes.
        only: start just these node names.
        skip: do not start these node names (e.g. ``teleop`` on a headless machine).
        log_dir: where ``<name>.log`` files go (default ``./bringup_logs/<timestamp>``).
        echo: also print every node's output, prefixed with its name.
        stop_timeout_s: SIGINT grace period before SIGKILL, seconds.
        run_for_s: stop by itself after this many seconds (tests, benchmarks).
        ready: set once every process has been started.
        stop: set it to stop the graph (as Ctrl-C does).

    Returns:
        0 after a requested stop with every node ending cleanly, 1 if a node failed.

    Raises:
        ConfigError: a bad parameter file or an unknown name in ``only``/``skip``.
    """
    params = Path(params_file).resolve()
    specs = node_graph(params)
    names = {s.name for s in specs}
    unknown = sorted((set(only or []) | set(skip or [])) - names)
    if unknown:
        raise ConfigError(f"{unknown} are not nodes of {params}; its nodes are {sorted(names)}.")
    specs = [s for s in specs if (not only or s.name in only) and s.name not in (skip or [])]
    log_root = Path(log_dir) if log_dir else Path("bringup_logs") / time.strftime("%Y%m%d-%H%M%S")
    log_root.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    env = dict(os.environ)
    env.setdefault("MUJOCO_GL", "egl")
    terminal_owner = next((s.name for s in specs if s.kind == "teleop"), None)
    running: list[_Running] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    failed: list[str] = []
    try:
        for spec in specs:
            log = log_root / f"{spec.name}.log"
            cmd = node_command(spec, params)
            # only the teleop node reads the terminal (keyboard teleop); the others get no stdin
            stdin = None if spec.name == terminal_owner else subprocess.DEVNULL
            proc = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=spec.name != terminal_owner)
            r = _Running(spec, proc, log)
            t = threading.Thread(target=_pump, args=(proc.stdout, spec.name, open(log, "wb"), echo), daemon=True)
            t.start()
            r.threads.append(t)
            running.append(r)
            print(f"bringup: started {spec.name} ({spec.executable}, pid {proc.pid}), log {log}", file=sys.stderr)
        if ready is not None:
            ready.set()
        deadline = None if run_for_s is None else time.monotonic() + run_for_s
        while not stop.is_set():
            for r in running:
                code = r.process.poll()
                if code is not None:
                    failed.append(f"{r.spec.name} exited with {code} (see {r.log})")
            if failed:
                break
            if deadline is not None and time.monotonic() > deadline:
                break
            stop.wait(0.1)
    finally:
        for r in running:
            if r.process.poll() is None:
                r.process.send_signal(signal.SIGINT)
        end = time.monotonic() + stop_timeout_s
        for r in running:
            try:
                r.process.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                r.process.kill()
                r.process.wait()
                failed.append(f"{r.spec.name} did not stop within {stop_timeout_s} s and was killed")
            for t in r.threads:
                t.join(timeout=2.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for line in failed:
        print(f"bringup: {line}", file=sys.stderr)
    clean = [r for r in running if r.process.returncode not in (0, -signal.SIGINT)]
    return 1 if failed or clean else 0


@dataclass
class BringupConfig:
    """Start the nodes of a ROS 2 parameter file (config/sim.yaml, config/real.yaml) as processes."""

    params_file: tyro.conf.Positional[str]
    """ROS 2 parameter YAML; its top-level node names (sim, camera_<name>, arm, teleop, recorder) are the graph."""
    only: tuple[str, ...] = ()
    """start only these nodes."""
    skip: tuple[str, ...] = ()
    """do not start these nodes (e.g. teleop on a machine without a terminal)."""
    log_dir: str | None = None
    """directory for one log file per node (default bringup_logs/<timestamp>)."""
    quiet: bool = False
    """do not echo node output (it still goes to the log files)."""


def run_bringup(cfg: BringupConfig) -> int:
    """CLI entry of :func:`bringup`."""
    return bringup(cfg.params_file, only=list(cfg.only), skip=list(cfg.skip), log_dir=cfg.log_dir, echo=not cfg.quiet)
