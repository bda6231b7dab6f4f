"""``robot-rl bringup``: the shipped configs start real node processes; launch files read the same graph."""

from __future__ import annotations

import ast
import importlib
import re
import threading
import time
from pathlib import Path

import gymnasium as gym
import pytest

import robot_rl  # noqa: F401
from robot_rl.errors import ConfigError
from robot_rl.ros.bringup import NODE_KINDS, bringup, node_graph
from robot_rl.sim.scripted import scripted_policy_for

ROOT = Path(__file__).resolve().parents[1]

def _is_node_graph(path: Path) -> bool:
    """A ROS 2 parameter file (some top-level entry has ros__parameters), not another config (randomization.yaml)."""
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    return isinstance(data, dict) and any(isinstance(v, dict) and "ros__parameters" in v for v in data.values())


CONFIGS = sorted(p for p in (ROOT / "config").glob("*.yaml") if _is_node_graph(p))


def _console_scripts() -> dict[str, str]:
    text = (ROOT / "setup.py").read_text()
    return dict(re.findall(r'"(robot_rl_\w+) = ([\w.]+):main"', text))


def test_every_node_kind_is_a_console_script_with_a_main() -> None:
    scripts = _console_scripts()
    for executable, module in NODE_KINDS.values():
        assert scripts.get(executable) == module, f"setup.py lacks {executable} = {module}:main"
        assert callable(importlib.import_module(module).main)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_config_parameters_are_all_declared_by_their_nodes(config: Path, ros_domain) -> None:
    """A typo in a config YAML would silently keep a default: every key must be a declared parameter."""
    specs = node_graph(config)
    assert specs
    for spec in specs:
        module = importlib.import_module(spec.module)
        node_cls = next(v for k, v in vars(module).items() if k.endswith("Node") and isinstance(v, type) and v.__module__ == module.__name__)
        node = node_cls(["--ros-args", "-r", f"__node:={spec.name}", "--params-file", str(config)])
        try:
            assert node.undeclared_overrides() == [], f"{config.name}: {spec.name} does not declare {node.undeclared_overrides()}"
        finally:
            node.shutdown()


@pytest.mark.parametrize("launch_file", ["sim.launch.py", "real.launch.py"])
def test_launch_files_build_their_nodes_from_the_same_graph(launch_file: str) -> None:
    """``ros2 launch`` cannot run here; check statically that the launch file uses node_graph and describes its arguments."""
    tree = ast.parse((ROOT / "launch" / launch_file).read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert any(c.func.id == "node_graph" for c in calls)
    declared = [c for c in calls if c.func.id == "DeclareLaunchArgument"]
    assert declared and all(any(k.arg == "description" for k in c.keywords) for c in declared)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in ast.walk(tree))
    default_config = launch_file.replace(".launch.py", ".yaml")
    assert (ROOT / "config" / default_config).exists()


def test_bringup_sim_graph_runs_episodes_and_records_them(ros_domain, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    stop, ready, result = threading.Event(), threading.Event(), {}
    thread = threading.Thread(target=lambda: result.update(code=bringup(
        ROOT / "config" / "sim.yaml", skip=["teleop"], log_dir=tmp_path / "logs", echo=False, ready=ready, stop=stop)))
    thread.start()
    try:
        assert ready.wait(30)
        env = gym.make("robot_rl/RosPandaPickLiftPixels-v0")
        env.unwrapped.task.reset_timeout_s = 60.0
        policy = scripted_policy_for(env)
        successes = []
        for ep in range(2):
            obs, _ = env.reset(seed=ep)
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(policy(obs))
                done = terminated or truncated
            successes.append(info["is_success"])
        env.close()
        time.sleep(1.0)  # let the recorder take the last messages
    finally:
        stop.set()
        thread.join(60)
    logs = {p.name: p.read_text()[-1500:] for p in (tmp_path / "logs").glob("*.log")}
    assert result.get("code") == 0, logs
    assert successes == [True, True], logs
    from rosbags.rosbag2 import Reader

    bags = sorted((tmp_path / "bags").glob("sim-*/episode_*"))
    assert len(bags) >= 2, (list((tmp_path / "bags").rglob("*")), logs)
    with Reader(bags[1]) as reader:  # the first scripted episode
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts.get("/joint_states", 0) >= 8 and counts.get("/camera/front/color/image_raw", 0) >= 8, counts
    assert "/arm/equilibrium_pose" in counts and "/task/state" in counts


def test_bringup_stops_the_graph_when_a_node_fails(tmp_path, ros_domain) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("sim:\n  ros__parameters:\n    backend: gazebo\n")
    start = time.monotonic()
    assert bringup(config, log_dir=tmp_path / "logs", echo=False, run_for_s=60) == 1
    assert time.monotonic() - start < 30
    assert "must be one of" in (tmp_path / "logs" / "sim.log").read_text()
    config.write_text("simulator:\n  ros__parameters: {}\n")
    with pytest.raises(ConfigError, match="must start with one of"):
        node_graph(config)
    with pytest.raises(ConfigError, match="not nodes of"):
        bringup(ROOT / "config" / "sim.yaml", skip=["telop"])
