"""The sim node in its own process and RosRobotEnv in this one, over ROS 2 (rclpy) on loopback."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest

import robot_rl  # noqa: F401 - registers the IDs
from conftest import start_node, stop_node
from robot_rl.errors import DeviceUnavailableError
from robot_rl.ros.env import TASK_OBSERVATIONS
from robot_rl.sim.scripted import scripted_policy_for


def _run_episodes(env: gym.Env, n: int) -> list[tuple[bool, int]]:
    policy = scripted_policy_for(env)
    out = []
    for ep in range(n):
        obs, _ = env.reset(seed=ep)
        assert env.observation_space.contains(obs)
        done, steps = False, 0
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs))
            steps += 1
            done = terminated or truncated
        out.append((bool(info["is_success"]), steps))
    return out


@pytest.mark.parametrize(
    ("sim_id", "ros_id", "backend"),
    [("robot_rl/PandaPickLift-v0", "robot_rl/RosPandaPickLift-v0", "mujoco"),
     ("robot_rl/PandaPickLiftPixels-v0", "robot_rl/RosPandaPickLiftPixels-v0", "pybullet"),
     ("robot_rl/PandaPush-v0", "robot_rl/RosPandaPush-v0", "mujoco")],
)
def test_scripted_episodes_succeed_through_the_sim_node(ros_domain, tmp_path, sim_id: str, ros_id: str, backend: str) -> None:
    """The actor side (RosRobotEnv + the scripted controller) runs unchanged against the sim node."""
    node = start_node("robot_rl.sim.node", "-p", f"env:={sim_id}", "-p", f"backend:={backend}", log_path=str(tmp_path / "sim.log"))
    env = gym.make(ros_id)
    try:
        sim_env = gym.make(sim_id, backend=backend)
        assert env.observation_space == sim_env.observation_space and env.action_space == sim_env.action_space
        sim_env.close()
        results = _run_episodes(env, 3)
        # two episodes with the same seed are two resets (the sim must not take the second
        # request for a repeat of the first): both start from the same state
        first, _ = env.reset(seed=11)
        for _ in range(3):
            env.step(np.asarray(env.action_space.high, np.float32))
        moved = env.step(np.asarray(env.action_space.high, np.float32))[0]
        again, _ = env.reset(seed=11)
    finally:
        env.close()
        code = stop_node(node)
    assert all(success for success, _ in results), (results, (tmp_path / "sim.log").read_text()[-2000:])
    state = lambda o: np.concatenate([np.ravel(v) for k, v in sorted(o.items()) if k != "images"])  # noqa: E731
    assert not np.allclose(state(moved), state(first), atol=1e-2)
    np.testing.assert_allclose(state(again), state(first), atol=5e-3)
    assert code == 0, (tmp_path / "sim.log").read_text()[-2000:]


def test_ros_env_builds_without_a_running_node(ros_domain) -> None:
    """The learner only reads the spaces: building a Ros env must not wait for any topic."""
    start = time.monotonic()
    env = gym.make("robot_rl/RosPandaPickLiftPixels-v0")
    assert time.monotonic() - start < 3.0
    assert env.observation_space["images"]["front"].shape == (128, 128, 3)
    assert env.observation_space["state"].shape == (9,)
    env.close()


@pytest.mark.parametrize(("task", "sim_id"), [("pick_lift", "robot_rl/PandaPickLift-v0"), ("push", "robot_rl/PandaPush-v0")])
def test_sim_task_observation_follows_the_layout_the_ros_env_reads(task: str, sim_id: str) -> None:
    """RosRobotEnv takes each task's OBSERVATION_LAYOUT; the sim task's observation must follow it."""
    env = gym.make(sim_id)
    env.reset(seed=0)
    sim_task = env.unwrapped.task
    sim_obs = sim_task.get_observation()
    env.close()
    assert tuple((k, int(np.size(v))) for k, v in sim_obs.items()) == type(sim_task).OBSERVATION_LAYOUT
    assert TASK_OBSERVATIONS[task] == type(sim_task).OBSERVATION_LAYOUT


def test_missing_and_stopped_sim_node_give_clear_errors(ros_domain, tmp_path) -> None:
    env = gym.make("robot_rl/RosPandaPickLift-v0", disable_env_checker=True)
    env.unwrapped.task.reset_timeout_s = 1.0
    start = time.monotonic()
    with pytest.raises(DeviceUnavailableError, match="/sim/reset"):
        env.reset(seed=0)
    assert time.monotonic() - start < 3.0
    node = start_node("robot_rl.sim.node", log_path=str(tmp_path / "sim.log"))
    try:
        env.unwrapped.task.reset_timeout_s = 20.0
        obs, _ = env.reset(seed=0)
        env.step(env.action_space.sample() * 0)
    finally:
        stop_node(node)
    env.unwrapped.arm.state_timeout_s = 0.5
    with pytest.raises(DeviceUnavailableError, match="joint_states"):
        for _ in range(20):
            env.step(np.zeros(4, np.float32))
    env.close()


def test_camera_frames_of_another_size_are_resized_or_refused(ros_domain) -> None:
    from robot_rl.errors import ConfigError
    from robot_rl.ros import convert
    from robot_rl.ros.clients import RosCamera, RosConnection
    from robot_rl.ros.node import Node

    publisher = Node("cam_pub")
    pub = publisher.create_publisher("sensor_msgs/msg/Image", convert.camera_topics("side")["image"], "sensor")
    connection = RosConnection("cam_client")
    try:
        resizing = RosCamera(connection, "side", 32, 32, qos="sensor")  # subscribed now (auto: at the first read)
        strict = RosCamera(connection, "side", 32, 32, resize=False, qos="sensor")
        assert pub.wait_for_subscribers(2, 5.0)
        img = np.zeros((48, 64, 3), np.uint8)
        img[:, 32:] = 200  # right half bright
        for _ in range(5):
            pub.publish(convert.image_msg(img, time.time(), "side_color_optical_frame"))
            time.sleep(0.02)
        frame = resizing.read()
        assert frame.rgb.shape == (32, 32, 3)
        assert frame.rgb[:, :15].max() == 0 and frame.rgb[:, 17:].min() == 200
        with pytest.raises(ConfigError, match="publishes 64x48 images"):
            strict.read()
    finally:
        connection.close()
        publisher.shutdown()


def test_task_state_matches_the_arm_state_despite_float_stamp_rounding(ros_domain) -> None:
    """/task/state carries float64 seconds, the arm state sec + nanosec: equal stamps may differ in the last bits."""
    from types import SimpleNamespace

    from robot_rl.ros import convert
    from robot_rl.ros.clients import RosConnection
    from robot_rl.ros.env import RosTask

    stamp = 1795306777.5000002
    arm = SimpleNamespace(state=lambda: SimpleNamespace(stamp=stamp - 2.4e-7))
    connection = RosConnection("task_client")
    try:
        task = RosTask(connection, "pick_lift", arm)
        obs = {"cube_position": np.ones(3), "cube_quaternion": np.zeros(4), "cube_minus_tcp": np.zeros(3)}
        task._on_state(convert.task_state_msg(stamp - 0.1, False, obs, {}))
        task._on_state(convert.task_state_msg(stamp, True, obs, {"lift": 0.5}))
        assert task.is_success() and task.get_reward_terms() == {"lift": 0.5}
        np.testing.assert_array_equal(task.get_observation()["cube_position"], np.ones(3, np.float32))
    finally:
        connection.close()


def test_camera_matches_the_publishers_reliability_and_reports_lost_frames(ros_domain, caplog) -> None:
    """`RosCamera(qos="auto")` subscribes reliable to a reliable publisher (a best-effort link loses
    large frames) and best effort to a best-effort one; frames missing from the stamp sequence are
    counted and logged, never silent."""
    import logging

    from robot_rl.ros import convert
    from robot_rl.ros.clients import RosCamera, RosConnection
    from robot_rl.ros.node import Node
    from robot_rl.ros.qos import QoSProfile

    publisher = Node("gap_pub")
    reliable_pub = publisher.create_publisher("sensor_msgs/msg/Image", convert.camera_topics("rel")["image"], QoSProfile(10, True))
    sensor_pub = publisher.create_publisher("sensor_msgs/msg/Image", convert.camera_topics("be")["image"], "sensor")
    connection = RosConnection("gap_client")
    try:
        reliable_cam, sensor_cam = RosCamera(connection, "rel", 8, 8), RosCamera(connection, "be", 8, 8)
        assert reliable_cam.qos is None  # chosen at the first read, not when an env is built
        reliable_cam._subscribe(), sensor_cam._subscribe()
        assert reliable_cam.qos == QoSProfile(5, True) and sensor_cam.qos == "sensor"
        assert reliable_pub.wait_for_subscribers(1, 5.0)
        img = np.zeros((8, 8, 3), np.uint8)
        sent = [k for k in range(30) if k not in (10, 11, 12, 20)]  # 4 frames of a 10 Hz stream never sent
        with caplog.at_level(logging.WARNING, logger="robot_rl.ros.clients"):
            for k in sent:
                reliable_pub.publish(convert.image_msg(img, 100.0 + 0.1 * k, "rel_color_optical_frame"))
                time.sleep(0.005)
            assert connection.wait_for(lambda: reliable_cam.received_frames == len(sent), 5.0), reliable_cam.received_frames
        assert reliable_cam.dropped_frames == 4
        assert any("frames on /camera/rel/color/image_raw lost" in r.getMessage() for r in caplog.records)
    finally:
        connection.close()
        publisher.shutdown()
