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
from robot_rl.ros.bringup import NODE_KINDS, bringup, node_command, node_graph
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
    """``ros2 launch`` cannot run here (``launch`` / ``launch_ros`` are not on PyPI), so the launch file
    is checked statically: it starts one ``launch_ros`` Node per entry of ``node_graph(params_file)``,
    the same list bringup starts, with the entry's executable and name and the same parameter file
    first (what :func:`node_command` gives bringup's processes), and describes every argument."""
    tree = ast.parse((ROOT / "launch" / launch_file).read_text())
    comps = [n for n in ast.walk(tree) if isinstance(n, ast.ListComp)]
    graph_comps = [c for c in comps if any(isinstance(g.iter, ast.Call) and getattr(g.iter.func, "id", "") == "node_graph"
                                           for g in c.generators)]
    assert len(graph_comps) == 1, "the launch file must build its nodes from node_graph(params_file)"
    comp = graph_comps[0]
    (gen,) = comp.generators
    assert [a.id for a in gen.iter.args] == ["params_file"]
    node = comp.elt
    assert isinstance(node, ast.Call) and node.func.id == "Node"
    kw = {k.arg: k.value for k in node.keywords}
    assert ast.unparse(kw["package"]) == "'robot_rl'"
    assert ast.unparse(kw["executable"]) == f"{gen.target.id}.executable" and ast.unparse(kw["name"]) == f"{gen.target.id}.name"
    assert isinstance(kw["parameters"], ast.List) and ast.unparse(kw["parameters"].elts[0]) == "params_file"
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    declared = [c for c in calls if c.func.id == "DeclareLaunchArgument"]
    assert declared and all(any(k.arg == "description" for k in c.keywords) for c in declared)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in ast.walk(tree))
    config = ROOT / "config" / launch_file.replace(".launch.py", ".yaml")
    assert config.exists()
    # bringup starts exactly these executables, under these names, with the same file
    for spec in node_graph(config):
        cmd = node_command(spec, config)
        assert cmd[cmd.index("-m") + 1] == spec.module and _console_scripts()[spec.executable] == spec.module
        assert cmd[-4:] == ["-r", f"__node:={spec.name}", "--params-file", str(config)]


#: what the sim node publishes every control tick, one stamp for all (robot_rl.sim.node)
PER_TICK = ("/joint_states", "/arm/ee_pose", "/arm/ee_twist", "/arm/wrench", "/task/state",
            "/camera/front/color/image_raw", "/camera/front/color/camera_info",
            "/camera/wrist/color/image_raw", "/camera/wrist/color/camera_info")


def _wait_for_log(path: Path, text: str, timeout_s: float, running: threading.Thread) -> None:
    end = time.monotonic() + timeout_s
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < end and running.is_alive(), \
            f"{path.name} never said {text!r}:\n" + (path.read_text()[-2000:] if path.exists() else "")
        time.sleep(0.1)


def test_bringup_sim_graph_runs_episodes_and_records_them(ros_domain, tmp_path, monkeypatch) -> None:
    """config/sim.yaml as shipped (teleop skipped): the sim node and the recorder as processes,
    RosRobotEnv and the scripted controller here; one MCAP bag per episode, read back by rosbags."""
    from rosbags.rosbag2 import Reader

    from robot_rl.ros.messages import TYPESTORE

    monkeypatch.chdir(tmp_path)
    stop, ready, result = threading.Event(), threading.Event(), {}
    logs_dir = tmp_path / "logs"
    thread = threading.Thread(target=lambda: result.update(code=bringup(
        ROOT / "config" / "sim.yaml", skip=["teleop"], log_dir=logs_dir, echo=False, ready=ready, stop=stop)))
    thread.start()
    steps: list[int] = []
    successes = []
    try:
        assert ready.wait(30)
        # the first reset must split the bags: wait until the recorder follows the sim's topics
        _wait_for_log(logs_dir / "recorder.log", "recording /sim/reset_done", 60, thread)
        _wait_for_log(logs_dir / "recorder.log", "recording /camera/wrist/color/image_raw", 60, thread)
        env = gym.make("robot_rl/RosPandaPickLiftPixels-v0")
        env.unwrapped.task.reset_timeout_s = 60.0
        policy = scripted_policy_for(env)
        for ep in range(2):
            obs, _ = env.reset(seed=ep)
            done, n = False, 0
            while not done:
                obs, _, terminated, truncated, info = env.step(policy(obs))
                done, n = terminated or truncated, n + 1
            successes.append(info["is_success"])
            steps.append(n)
        env.close()
        time.sleep(1.0)  # let the recorder take the last messages
    finally:
        stop.set()
        thread.join(60)
    logs = {p.name: p.read_text()[-1500:] for p in logs_dir.glob("*.log")}
    assert result.get("code") == 0, logs
    assert successes == [True, True], logs
    (run,) = (tmp_path / "bags").glob("sim-*")
    bags = sorted(run.glob("episode_*"))
    # bag 0: from start to the first reset; bag k: episode k, ended by the next reset's reply
    assert [b.name for b in bags] == ["episode_0000", "episode_0001", "episode_0002"], (bags, logs)
    for k, bag in enumerate(bags[1:], start=1):
        assert sorted(p.suffix for p in bag.iterdir()) == [".mcap", ".yaml"]
        with Reader(bag) as reader:
            counts = {c.topic: c.msgcount for c in reader.connections}
            types = {c.topic: c.msgtype for c in reader.connections}
            ticks = counts["/joint_states"]
            assert ticks >= steps[k - 1], (k, counts, steps)  # every env step waited for a new sim tick
            for topic in PER_TICK:  # one message per tick; a tick at the split may fall on either side
                assert abs(counts[topic] - ticks) <= 1, (k, topic, counts)
            assert counts["/arm/equilibrium_pose"] >= steps[k - 1] and counts["/arm/gripper_cmd"] >= steps[k - 1]
            assert counts["/sim/reset_done"] == (1 if k < len(bags) - 1 else 0), (k, counts)
            assert types["/camera/front/color/image_raw"] == "sensor_msgs/msg/Image"
            assert types["/joint_states"] == "sensor_msgs/msg/JointState"
            joints = [c for c in reader.connections if c.topic in ("/joint_states", "/camera/front/color/image_raw")]
            stamps = []
            for conn, _, raw in reader.messages(connections=joints):
                msg = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
                if conn.topic == "/joint_states":
                    stamps.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
                else:
                    assert (msg.height, msg.width, msg.encoding) == (128, 128, "rgb8")
            assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


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
