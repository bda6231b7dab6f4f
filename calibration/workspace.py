"""``robot-rl calibrate workspace``: record the workspace box by moving the arm to its limits.

The arm node (or the sim node) runs as usual; this tool subscribes its ``/arm/ee_pose`` and keeps
every TCP position it sees while a person moves the arm, with the arm node's own teleop or, with
``--teleop keyboard|gamepad|spacemouse``, a teleop device read here whose twist is sent to
``/arm/delta_twist_cmds`` (so the arm node's safety gate stays in charge). When the recording
ends (``--duration-s`` or Ctrl-C) the bounding box of the visited positions, shrunk by
``--margin-m`` on every side, becomes the box:

* written as a ROS 2 parameter file for the arm node (``arm: ros__parameters: workspace_low /
  workspace_high``), which ``robot-rl bringup`` and ``ros2 launch`` pass on, and which
  :class:`robot_rl.ros.env.RosRobotEnv` reads with ``workspace_file``;
* optionally written into an existing parameter file in place (``--update config/real.yaml``):
  only the two value lists of the arm node change, comments and the rest of the file stay.

A box thinner than ``--min-extent-m`` on any axis is refused: the arm was not moved to its
limits along that axis.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from robot_rl.errors import CalibrationError, ConfigError
from robot_rl.interfaces import Teleop, WorkspaceBox


class WorkspaceRecorder:
    """Accumulates TCP positions and turns them into a :class:`WorkspaceBox`.

    Args:
        margin_m: the box is the visited bounding box shrunk by this on every side, metres.
        min_extent_m: smallest accepted box size per axis (after the margin), metres.
    """

    def __init__(self, margin_m: float = 0.01, min_extent_m: float = 0.05) -> None:
        if margin_m < 0 or min_extent_m <= 0:
            raise ConfigError("margin_m must be >= 0 and min_extent_m > 0 (metres).")
        self.margin_m, self.min_extent_m = margin_m, min_extent_m
        self.low = np.full(3, np.inf)
        self.high = np.full(3, -np.inf)
        self.count = 0
        self._lock = threading.Lock()

    def add(self, position_m: np.ndarray) -> None:
        """Record one (3,) TCP position, metres, base frame (non-finite ones are ignored)."""
        p = np.asarray(position_m, np.float64)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            return
        with self._lock:
            self.low = np.minimum(self.low, p)
            self.high = np.maximum(self.high, p)
            self.count += 1

    def box(self) -> WorkspaceBox:
        """The recorded box (see the class doc).

        Raises:
            CalibrationError: nothing recorded, or the box is thinner than ``min_extent_m`` on an axis.
        """
        with self._lock:
            if self.count == 0:
                raise CalibrationError("no end-effector pose was received; is the arm (or sim) node running and publishing /arm/ee_pose?")
            low, high = self.low + self.margin_m, self.high - self.margin_m
        thin = [f"{axis} ({max(h - lo, 0.0) * 100:.1f} cm)" for axis, lo, h in zip("xyz", low, high) if h - lo < self.min_extent_m]
        if thin:
            raise CalibrationError(
                f"the recorded box is thinner than {self.min_extent_m * 100:.0f} cm along {', '.join(thin)} after the "
                f"{self.margin_m * 100:.0f} cm margin: move the arm to both limits along that axis (recorded "
                f"{self.low.round(3).tolist()} .. {self.high.round(3).tolist()} m over {self.count} poses).")
        return WorkspaceBox(tuple(float(v) for v in low), tuple(float(v) for v in high))


def save_workspace_yaml(path: str | Path, box: WorkspaceBox, node_name: str = "arm") -> Path:
    """Write ``box`` as a ROS 2 parameter file for the arm node (metres, base frame); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {node_name: {"ros__parameters": {"workspace_low": [round(v, 4) for v in box.low],
                                            "workspace_high": [round(v, 4) for v in box.high]}}}
    path.write_text("# workspace box (m, base frame) from `robot-rl calibrate workspace`\n" + yaml.safe_dump(data, sort_keys=False))
    return path


def load_workspace_yaml(path: str | Path, node_name: str = "arm") -> WorkspaceBox:
    """The workspace box of ``node_name`` in a ROS 2 parameter file.

    Raises:
        ConfigError: the file, the node or its two parameters are missing or malformed.
    """
    from robot_rl.ros.node import load_params_file

    params = load_params_file(path, f"/{node_name}")
    try:
        low, high = [float(v) for v in params["workspace_low"]], [float(v) for v in params["workspace_high"]]
    except KeyError:
        raise ConfigError(f"{path} sets no workspace_low/workspace_high for node {node_name!r}.") from None
    if len(low) != 3 or len(high) != 3 or any(lo >= h for lo, h in zip(low, high)):
        raise ConfigError(f"{path}: workspace_low {low} must be 3 values below workspace_high {high} (metres).")
    return WorkspaceBox(tuple(low), tuple(high))


def update_params_file(path: str | Path, box: WorkspaceBox, node_name: str = "arm") -> None:
    """Replace the arm node's ``workspace_low`` / ``workspace_high`` values in an existing parameter file.

    Only the two ``[...]`` value lists change (comments and everything else stay).

    Raises:
        ConfigError: the node's section or either parameter is not found exactly once.
    """
    path = Path(path)
    lines = path.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(rf"^{re.escape(node_name)}:\s*(#.*)?$", line)), None)
    if start is None:
        raise ConfigError(f"{path} has no top-level '{node_name}:' section.")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^\S", lines[i]) and not lines[i].startswith("#")), len(lines))
    for key, values in (("workspace_low", box.low), ("workspace_high", box.high)):
        hits = [i for i in range(start, end) if re.match(rf"^\s+{key}:\s*\[", lines[i])]
        if len(hits) != 1:
            raise ConfigError(f"{path}: '{key}: [...]' appears {len(hits)} times in the {node_name} section; expected once.")
        i = hits[0]
        lines[i] = re.sub(r"\[[^\]]*\]", "[" + ", ".join(f"{v:.4f}" for v in values) + "]", lines[i], count=1)
    path.write_text("".join(lines))
    load_workspace_yaml(path, node_name)  # the result must parse


def record_workspace(duration_s: float, recorder: WorkspaceRecorder, teleop: Teleop | None = None,
                     rate_hz: float = 50.0, stop: threading.Event | None = None, progress: bool = True,
                     connect_timeout_s: float = 15.0) -> int:
    """Record ``/arm/ee_pose`` into ``recorder`` for ``duration_s`` seconds (or until ``stop`` is set).

    Args:
        duration_s: recording time, seconds (``0``: until ``stop`` or Ctrl-C).
        recorder: receives every TCP position.
        teleop: if given, its twist is published on ``/arm/delta_twist_cmds`` at ``rate_hz`` and its
            gripper on ``/arm/gripper_cmd``.
        rate_hz: teleop publish rate, Hz.
        stop: set it to end the recording early.
        progress: print the current box once a second.
        connect_timeout_s: wait this long for the first ``/arm/ee_pose`` and, with ``teleop``, for the
            arm's twist subscription to match, before the teleop starts and the clock runs (ROS 2
            discovery takes a moment; twists sent before it would be lost), seconds.

    Returns:
        Number of poses recorded.

    Raises:
        CalibrationError: no pose (or no twist subscriber) within ``connect_timeout_s``.
    """
    from robot_rl.ros import convert
    from robot_rl.ros.node import Node

    node = Node("workspace_recorder")
    stop = stop or threading.Event()
    node.create_subscription("geometry_msgs/msg/PoseStamped", convert.EE_POSE,
                             lambda m: recorder.add(convert.pose_to_arrays(m.pose)[0]), 50)
    twist_pub = node.create_publisher("geometry_msgs/msg/TwistStamped", convert.TWIST_CMD)
    gripper_pub = node.create_publisher("std_msgs/msg/Float64", convert.GRIPPER_CMD)

    def send() -> None:
        cmd = teleop.read()  # type: ignore[union-attr]
        twist_pub.publish(convert.twist_command_msg(cmd.twist, node.now()))
        if cmd.gripper is not None:
            gripper_pub.publish(convert.gripper_command_msg(cmd.gripper))
        if cmd.success or cmd.reset:
            stop.set()

    node.spin_in_thread()
    deadline = time.monotonic() + connect_timeout_s
    while not recorder.count and time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.02)
    if not recorder.count or (teleop is not None and not twist_pub.wait_for_subscribers(
            1, max(deadline - time.monotonic(), 0.0))):
        node.shutdown()
        missing = f"no {convert.EE_POSE}" if not recorder.count else f"nobody subscribed to {convert.TWIST_CMD}"
        raise CalibrationError(f"{missing} within {connect_timeout_s:.0f} s: start the arm node or the sim node first "
                               "(robot-rl bringup config/sim.yaml, or config/real.yaml) in the same ROS_DOMAIN_ID")
    if teleop is not None:  # only now: twists sent before the arm's subscription matched would be lost
        node.create_timer(1.0 / rate_hz, send)
    start, last_print = time.monotonic(), 0.0
    try:
        while not stop.is_set() and (duration_s <= 0 or time.monotonic() - start < duration_s):
            time.sleep(0.05)
            if progress and time.monotonic() - last_print > 1.0 and recorder.count:
                last_print = time.monotonic()
                print(f"\r{recorder.count} poses, box {recorder.low.round(3).tolist()} .. {recorder.high.round(3).tolist()} m   ",
                      end="", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        node.shutdown()
        if progress:
            print()
    return recorder.count


@dataclass
class WorkspaceCliConfig:
    """Record the workspace box by moving the arm to its limits; writes the arm node's parameters."""

    out: Path = Path("config/workspace.yaml")
    """parameter file to write (arm: ros__parameters: workspace_low/high, metres)."""
    duration_s: float = 60.0
    """recording time in seconds (0: until Ctrl-C, or the teleop's success/reset button)."""
    teleop: str = "none"
    """drive the arm from here: keyboard, gamepad, spacemouse (twists on /arm/delta_twist_cmds); none: move it otherwise."""
    margin_m: float = 0.01
    """shrink the visited box by this on every side (metres)."""
    min_extent_m: float = 0.05
    """refuse a box thinner than this along any axis (metres)."""
    update: Path | None = None
    """also write the box into this existing parameter file (e.g. config/real.yaml), in place."""
    node_name: str = "arm"
    """the arm node's name in the parameter files."""


def run_workspace(cfg: WorkspaceCliConfig) -> str:
    """CLI entry: record, write, and return a one-paragraph report."""
    recorder = WorkspaceRecorder(cfg.margin_m, cfg.min_extent_m)
    teleop: Any = None
    if cfg.teleop != "none":
        from robot_rl.drivers.teleop import make_teleop

        teleop = make_teleop(cfg.teleop)
    print(f"move the arm to the limits of its workspace along x, y and z ({'Ctrl-C' if cfg.duration_s <= 0 else f'{cfg.duration_s:g} s'} to finish)")
    try:
        record_workspace(cfg.duration_s, recorder, teleop)
    finally:
        if teleop is not None:
            teleop.close()
    box = recorder.box()
    path = save_workspace_yaml(cfg.out, box, cfg.node_name)
    lines = [f"workspace box from {recorder.count} poses: low {list(box.low)} m, high {list(box.high)} m", f"wrote {path}"]
    if cfg.update is not None:
        update_params_file(cfg.update, box, cfg.node_name)
        lines.append(f"updated {cfg.update} (section {cfg.node_name})")
    return "\n".join(lines)
