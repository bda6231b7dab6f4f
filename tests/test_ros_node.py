"""The node API on rclpy: parameters, names, timers, lifecycle services, /rosout, domains, graph.

Every test here runs real rclpy nodes in this pytest process (one rclpy Context per node); the
whole file in one process also checks that several contexts end without aborting the interpreter.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import UserNode, start_node, stop_node
from robot_rl.errors import ConfigError
from robot_rl.ros.node import LifecycleNode, Node, load_params_file, make_message, parse_ros_args, resolve_name


def test_ros_args_and_params_file(tmp_path, ros_domain) -> None:
    params = tmp_path / "p.yaml"
    params.write_text(textwrap.dedent("""
        /**:
          ros__parameters:
            rate_hz: 5.0
            name_prefix: all
        cam:
          ros__parameters:
            rate_hz: 30
            limits: {max_speed: 0.2}
        other:
          ros__parameters:
            rate_hz: 1.0
    """))
    argv = ["--ros-args", "--params-file", str(params), "-p", "flag:=true", "-r", "__ns:=/robot", "-r", "/chatter:=/renamed"]
    node = Node("cam", argv=argv)
    try:
        assert node.fully_qualified_name == "/robot/cam"
        assert node.declare_parameter("rate_hz", 10.0, "rate", units="Hz") == 30.0  # int from YAML coerced to float
        assert node.declare_parameter("limits.max_speed", 0.5, "speed", units="m/s") == 0.2
        assert node.declare_parameter("flag", False, "a flag") is True
        assert node.declare_parameter("name_prefix", "x", "wildcard entry") == "all"
        assert node.declare_parameter("untouched", [1, 2], "default") == [1, 2]
        with pytest.raises(ConfigError, match="declared twice"):
            node.declare_parameter("flag", False, "again")
        with pytest.raises(ConfigError, match="no declared parameter"):
            node.get_parameter("nope")
        with pytest.raises(ConfigError, match="is a bool"):
            node.set_parameter("flag", "yes")
        assert node.resolve_topic_name("~/cmd") == "/robot/cam/cmd"
        assert node.resolve_topic_name("image") == "/robot/image"
        assert node.resolve_topic_name("/chatter") == "/renamed"
        assert node.undeclared_overrides() == []
        assert node.describe_parameters()[0].units == "Hz"
    finally:
        node.shutdown()
    with pytest.raises(ConfigError, match="ros__parameters"):
        (tmp_path / "bad.yaml").write_text("cam: {rate: 1}\n")
        load_params_file(tmp_path / "bad.yaml", "/cam")
    with pytest.raises(ConfigError, match="name:=value"):
        parse_ros_args(["--ros-args", "-p", "novalue"])
    with pytest.raises(ConfigError, match="not a valid ROS 2 name"):
        resolve_name("bad name", "", "n")


def test_wrong_parameter_type_is_a_clear_error(ros_domain) -> None:
    node = Node("n", argv=["--ros-args", "-p", "rate_hz:=fast"])
    try:
        with pytest.raises(ConfigError, match="rate_hz .* is a float"):
            node.declare_parameter("rate_hz", 10.0, "rate", units="Hz")
        with pytest.raises(ConfigError, match="must be one of"):
            Node("m", argv=["--ros-args", "-p", "mode:=c"]).declare_parameter("mode", "a", "m", choices=("a", "b"))
    finally:
        node.shutdown()


def test_pub_sub_timer_and_typed_publish(ros_domain) -> None:
    a, b = Node("talker"), Node("listener")
    try:
        received = []
        b.create_subscription("sensor_msgs/msg/JointState", "/joint_states", received.append)
        pub = a.create_publisher("sensor_msgs/msg/JointState", "joint_states")
        # both sides must have discovered each other: a reader that has not yet matched the writer
        # misses its first samples (VOLATILE), even though the writer already counts the reader
        assert pub.wait_for_subscribers(1, 5.0)
        deadline = time.monotonic() + 5.0
        while b._subscriptions[0].get_publisher_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        count = [0]

        def tick() -> None:
            count[0] += 1
            pub.publish(make_message("sensor_msgs/msg/JointState", name=["j1"], position=np.array([float(count[0])])))

        timer = a.create_timer(0.01, tick)
        a.spin_in_thread()
        b.spin(timeout_s=5.0, until=lambda: len(received) >= 50)
        timer.cancel()
        assert [m.position[0] for m in received[:50]] == list(range(1, 51))  # reliable, in order
        with pytest.raises(ConfigError, match="takes sensor_msgs/msg/JointState"):
            pub.publish(make_message("std_msgs/msg/String", data="x"))
        with pytest.raises(ConfigError, match="no field"):
            make_message("std_msgs/msg/String", text="x")
        with pytest.raises(ConfigError, match="period must be positive"):
            a.create_timer(0.0, tick)
    finally:
        a.shutdown()
        b.shutdown()


class _Device(LifecycleNode):
    def __init__(self, fail_configure: bool) -> None:
        super().__init__("device")
        self.fail_configure, self.calls = fail_configure, []

    def on_configure(self) -> None:
        self.calls.append("configure")
        if self.fail_configure:
            raise RuntimeError("no device on /dev/video9")

    def on_activate(self) -> None:
        self.calls.append("activate")

    def on_deactivate(self) -> None:
        self.calls.append("deactivate")

    def on_cleanup(self) -> None:
        self.calls.append("cleanup")

    def on_shutdown(self) -> None:
        self.calls.append("shutdown")


def test_lifecycle_states_services_and_transition_events(ros_domain) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState

    watcher = Node("watcher")
    events = []
    watcher.create_subscription("lifecycle_msgs/msg/TransitionEvent", "/device/transition_event", events.append)
    watcher.spin_in_thread()
    node = _Device(fail_configure=False)
    try:
        deadline = time.monotonic() + 10.0  # the watcher must have matched before the first event
        while watcher._subscriptions[0].get_publisher_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        with pytest.raises(ConfigError, match="cannot activate from state 'unconfigured'"):
            node.trigger("activate")
        assert node.start() and node.state == "active"
        assert node.trigger("deactivate") and node.trigger("cleanup") and node.state == "unconfigured"
        # the standard lifecycle services, called by a plain rclpy client
        node.spin_in_thread()
        with UserNode("lifecycle_client") as user:
            assert user.call(GetState, "/device/get_state", GetState.Request()).current_state.label == "unconfigured"
            refused = user.call(ChangeState, "/device/change_state", ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVATE)))
            assert not refused.success and node.state == "unconfigured"  # not allowed: refused, node alive
            ok = user.call(ChangeState, "/device/change_state", ChangeState.Request(transition=Transition(label="configure")))
            assert ok.success and node.state == "inactive"
            labels = {t.transition.label for t in user.call(GetAvailableTransitions, "/device/get_available_transitions",
                                                          GetAvailableTransitions.Request()).available_transitions}
            assert labels == {"activate", "cleanup", "shutdown"}
        node.shutdown()
        assert node.calls == ["configure", "activate", "deactivate", "cleanup", "configure", "shutdown"]
        primary = ("unconfigured", "inactive", "active", "finalized")
        expected = [("unconfigured", "inactive"), ("inactive", "active"), ("active", "inactive"), ("inactive", "unconfigured"),
                    ("unconfigured", "inactive"), ("inactive", "finalized")]

        def finished():  # rcl publishes each transition as two events: start -> transition state -> goal
            return [(e.start_state.label, e.goal_state.label) for e in events if e.goal_state.label in primary]

        deadline = time.monotonic() + 5.0
        while len(finished()) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        steps = [e.start_state.label for e in events if e.goal_state.label in primary]
        assert [e.goal_state.label for e in events if e.goal_state.label in primary] == [g for _, g in expected], steps
    finally:
        watcher.shutdown()
    failing = _Device(fail_configure=True)
    assert not failing.start() and failing.state == "unconfigured"
    assert "no device" in str(failing.last_error)
    failing.shutdown()


class _Ticker(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("ticker")
        self.ticks = 0

    def _tick(self) -> None:
        self.ticks += 1

    def on_activate(self) -> None:
        self.start_work_timer(0.01, self._tick)

    def on_deactivate(self) -> None:
        self.stop_work_timer()


def test_work_timer_runs_only_while_active(ros_domain) -> None:
    node = _Ticker()
    try:
        node.spin_in_thread()
        assert node.start()
        deadline = time.monotonic() + 5.0
        while node.ticks < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert node.ticks >= 10
        assert node.trigger("deactivate")
        time.sleep(0.05)  # a tick already dispatched may still finish
        stopped = node.ticks
        time.sleep(0.2)
        assert node.ticks == stopped  # deactivated: no more ticks
        node.stop_work_timer()  # idempotent
        assert node.trigger("activate")
        # starting again replaces the timer rather than adding a second one: ~1 tick per 10 ms
        node.start_work_timer(0.01, node._tick)
        before = node.ticks
        time.sleep(0.5)
        assert 10 <= node.ticks - before <= 60
    finally:
        node.shutdown()


def test_logs_reach_rosout_and_nodes_are_announced(ros_domain) -> None:
    listener = Node("rosout_listener")
    logs, infos = [], []
    listener.create_subscription("rcl_interfaces/msg/Log", "/rosout", logs.append, 100)
    listener.spin_in_thread()
    script = textwrap.dedent("""
        import time
        from robot_rl.ros.node import Node
        n = Node("speaker", namespace="/lab")
        n.create_publisher("std_msgs/msg/String", "chatter")
        for i in range(400):
            n.get_logger().warning(f"message {i}")
            time.sleep(0.05)
        n.shutdown()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30.0
    while len(logs) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    stop_node(proc)
    stderr = proc.stderr.read()
    assert "[WARN]" in stderr and "[lab.speaker]: message 0" in stderr, stderr
    listener.shutdown()
    assert logs, "nothing on /rosout"
    assert logs[-1].name == "lab.speaker" and logs[-1].level == 30 and logs[-1].msg.startswith("message ")
    del infos


def test_nodes_and_their_topics_are_in_the_ros_graph(ros_domain) -> None:
    """What ``ros2 node list`` / ``ros2 topic info`` read: a plain rclpy node sees our node and its entities."""
    node = Node("announced", namespace="/lab")
    try:
        node.create_publisher("std_msgs/msg/String", "chatter")
        node.create_subscription("std_msgs/msg/String", "other", lambda m: None)
        with UserNode("graph_reader") as user:
            assert user.spin_until(lambda: ("announced", "/lab") in user.node.get_node_names_and_namespaces(), 10.0)
            assert user.spin_until(lambda: user.node.count_publishers("/lab/chatter") == 1, 10.0)
            assert user.node.count_subscribers("/lab/other") == 1
            assert ("/lab/chatter", ["std_msgs/msg/String"]) in user.node.get_topic_names_and_types()
    finally:
        node.shutdown()


def test_domain_id_argument_is_honoured(ros_domain) -> None:
    """Each node has its own rclpy Context: ``domain_id`` overrides ROS_DOMAIN_ID for that node only."""
    other = 1 + (ros_domain + 100) % 200
    a, b, c = Node("a_node"), Node("b_node", domain_id=other), Node("c_node", domain_id=other)
    try:
        assert (a.domain_id, b.domain_id, c.domain_id) == (ros_domain, other, other)
        got = []
        c.create_subscription("std_msgs/msg/String", "/only_here", got.append)
        a.create_publisher("std_msgs/msg/String", "/only_here")
        pub_b = b.create_publisher("std_msgs/msg/String", "/only_here")
        assert pub_b.wait_for_subscribers(1, 10.0)
        time.sleep(0.5)
        assert c._subscriptions[0].get_publisher_count() == 1  # b's publisher; a's is in another domain
    finally:
        for n in (a, b, c):
            n.shutdown()


def test_missing_message_package_is_a_clear_error_and_the_node_keeps_running(ros_domain) -> None:
    """tf2_msgs is not on PyPI: a runtime subscription to it fails with the fix named; the node goes on."""
    pytest.importorskip("rclpy")
    try:
        import tf2_msgs  # noqa: F401
        pytest.skip("tf2_msgs is installed here (a ROS 2 install)")
    except ImportError:
        pass
    node = Node("survivor")
    try:
        with pytest.raises(ConfigError, match="tf2_msgs.*not installed.*not on PyPI"):
            node.create_subscription("tf2_msgs/msg/TFMessage", "/tf", lambda m: None)
        with pytest.raises(ConfigError, match="not in the ROS 2 jazzy typestore"):
            node.create_publisher("sensor_msgs/msg/Imag", "/x")
        got = []
        node.create_subscription("std_msgs/msg/String", "/still_alive", got.append)
        pub = node.create_publisher("std_msgs/msg/String", "/still_alive")
        assert pub.wait_for_subscribers(1, 5.0)
        pub.publish(make_message("std_msgs/msg/String", data="ok"))
        node.spin(timeout_s=5.0, until=lambda: bool(got))
        assert [m.data for m in got] == ["ok"]
    finally:
        node.shutdown()


def test_node_process_stops_cleanly_on_sigint(ros_domain, tmp_path) -> None:
    proc = start_node("robot_rl.sim.node", "-p", "control_rate_hz:=20.0", log_path=str(tmp_path / "log"))
    listener = Node("js")
    got = []
    listener.create_subscription("sensor_msgs/msg/JointState", "/joint_states", got.append)
    listener.spin(timeout_s=30.0, until=lambda: len(got) >= 5)
    listener.shutdown()
    assert len(got) >= 5
    assert stop_node(proc) == 0
    log = (tmp_path / "log").read_text()
    assert "shutdown: inactive -> finalized" in log


def test_bad_parameter_makes_the_node_exit_with_a_message(ros_domain, tmp_path) -> None:
    proc = start_node("robot_rl.sim.node", "-p", "backend:=gazebo", log_path=str(tmp_path / "log"))
    assert proc.wait(timeout=60) == 1
    assert "must be one of" in (tmp_path / "log").read_text()


def test_node_whose_message_package_is_missing_fails_at_start_with_the_fix(ros_domain) -> None:
    """A node that needs a message package that is not installed exits 1 at start, naming the wheel."""
    if importlib.util.find_spec("nav_msgs") is not None:
        pytest.skip("nav_msgs is installed here")
    script = textwrap.dedent("""
        import sys
        from robot_rl.ros.node import Node, run_node

        class Odometer(Node):
            def __init__(self, argv):
                super().__init__("odometer", argv=argv)
                self.create_publisher("nav_msgs/msg/Odometry", "/odom")

        sys.exit(run_node(Odometer, []))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "nav_msgs/msg/Odometry cannot be loaded" in proc.stderr and "pip install ros-jazzy-nav-msgs" in proc.stderr
