"""``robot-rl calibrate workspace`` against the sim node: a teleop sweep records the box the arm node then enforces."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from conftest import start_node, stop_node
from robot_rl.calibration.workspace import (WorkspaceRecorder, load_workspace_yaml, record_workspace, save_workspace_yaml,
                                            update_params_file)
from robot_rl.errors import CalibrationError, ConfigError
from robot_rl.interfaces import Teleop, TeleopCommand, WorkspaceBox

ROOT = Path(__file__).resolve().parents[1]


class SweepTeleop(Teleop):
    """A person at the teleop device: 0.15 m/s along +x, -x, +y, -y, +z, -z, each for ``leg_s`` seconds."""

    def __init__(self, leg_s: float) -> None:
        self.leg_s, self.start = leg_s, None

    def read(self) -> TeleopCommand:
        self.start = self.start or time.monotonic()
        leg = int((time.monotonic() - self.start) / self.leg_s)
        twist = np.zeros(6)
        if leg < 6:
            twist[leg // 2] = 0.15 * (1 if leg % 2 == 0 else -1)
        return TeleopCommand(twist=twist, engaged=True)


def test_teleop_sweep_records_the_box_within_the_sim_limits(ros_domain, tmp_path) -> None:
    node = start_node("robot_rl.sim.node", "-p", "control_rate_hz:=20.0", log_path=str(tmp_path / "sim.log"))
    try:
        from robot_rl.ros.node import Node

        probe, seen = Node("probe"), []
        probe.create_subscription("geometry_msgs/msg/PoseStamped", "/arm/ee_pose", seen.append)
        probe.spin(timeout_s=60.0, until=lambda: bool(seen))  # the sim node is up
        probe.shutdown()
        assert seen, (tmp_path / "sim.log").read_text()[-2000:]
        recorder = WorkspaceRecorder(margin_m=0.005, min_extent_m=0.05)
        record_workspace(6 * 1.0 + 0.5, recorder, SweepTeleop(leg_s=1.0), progress=False)
    finally:
        stop_node(node)
    box = recorder.box()
    extent = np.subtract(box.high, box.low)
    # each leg moves ~0.15 m at most (fewer when the sim's own workspace box clips it)
    assert recorder.count > 50
    assert np.all(extent > 0.05), (box, extent)
    sim_box = WorkspaceBox((0.35, -0.2, 0.01), (0.65, 0.2, 0.3))  # the pick-and-lift task's box, enforced by the sim node
    assert sim_box.contains(np.array(box.low), tol_m=0.004) and sim_box.contains(np.array(box.high), tol_m=0.004)
    path = save_workspace_yaml(tmp_path / "workspace.yaml", box)
    loaded = load_workspace_yaml(path)
    np.testing.assert_allclose(loaded.low, box.low, atol=1e-4)
    # the arm node accepts the file as its parameters (no undeclared keys)
    from robot_rl.drivers.arm_node import ArmNode

    arm = ArmNode(["--ros-args", "--params-file", str(path)])
    try:
        assert arm.undeclared_overrides() == []
        np.testing.assert_allclose(arm.get_parameter("workspace_low"), np.round(box.low, 4))
    finally:
        arm.shutdown()


def test_update_in_place_keeps_comments_and_other_nodes(tmp_path) -> None:
    config = tmp_path / "real.yaml"
    config.write_text((ROOT / "config" / "real.yaml").read_text())
    box = WorkspaceBox((0.31, -0.2, 0.05), (0.66, 0.21, 0.4))
    update_params_file(config, box)
    text = config.read_text()
    assert "# Real-robot graph" in text and "camera_front:" in text
    assert load_workspace_yaml(config) == WorkspaceBox((0.31, -0.2, 0.05), (0.66, 0.21, 0.4))
    with pytest.raises(ConfigError, match="no top-level 'gripper:' section"):
        update_params_file(config, box, node_name="gripper")


def test_too_small_or_empty_recordings_are_refused() -> None:
    recorder = WorkspaceRecorder(margin_m=0.01, min_extent_m=0.05)
    with pytest.raises(CalibrationError, match="no end-effector pose"):
        recorder.box()
    for x in np.linspace(0.3, 0.6, 20):
        recorder.add(np.array([x, 0.0 + 0.2 * (x > 0.45), 0.1]))
        recorder.add(np.array([x, 0.0, 0.12]))  # z moved only 2 cm
    with pytest.raises(CalibrationError, match="along z"):
        recorder.box()


def test_recording_without_an_arm_is_a_clear_error(ros_domain) -> None:
    # nothing publishes /arm/ee_pose in this domain: refused after the connect timeout, not an empty box
    with pytest.raises(CalibrationError, match="no /arm/ee_pose within 1 s: start the arm node or the sim node"):
        record_workspace(5.0, WorkspaceRecorder(margin_m=0.005, min_extent_m=0.05), SweepTeleop(leg_s=1.0),
                         progress=False, connect_timeout_s=1.0)
