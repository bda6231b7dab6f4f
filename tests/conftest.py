"""Shared pytest fixtures: an isolated ROS 2 domain on loopback, and node processes in it."""

from __future__ import annotations

import fcntl
import itertools
import os
import select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator

import pytest

from robot_rl.torch_setup import preload_torch

# Before any test opens an EGL context (MuJoCo rendering): triton's LLVM segfaults when it loads
# after Mesa's (see robot_rl.torch_setup). make_env does this too, but tests that render through a
# scene directly and later build an optimiser in the same pytest process would miss it.
preload_torch()

_COUNTER = itertools.count()
#: Where `pip install -e .[test]` installs rclpy (setup.py's ros extra); there the ROS tests never skip.
_ROS_WHEELS_PLATFORM = sys.version_info[:2] == (3, 11) and sys.platform == "linux" and os.uname().machine == "x86_64"


@pytest.fixture
def ros_domain(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A ROS domain ID of its own for this test (from the pid and a counter, so parallel test
    runs on one host do not see each other) and loopback-only discovery
    (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, ROS 2's own variable). rclpy is the only backend;
    nothing is pinned.

    Node processes started with :func:`start_node` inherit it. Yields the domain ID.
    """
    if not _ROS_WHEELS_PLATFORM:
        try:
            import rclpy  # noqa: F401
        except ImportError:
            pytest.skip("rclpy is not importable and ROS 2 Jazzy's PyPI wheels exist only for CPython 3.11 on Linux "
                        "x86_64; source a ROS 2 install to run the ROS tests here")
    domain = 1 + (os.getpid() * 7 + next(_COUNTER)) % 200
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.delenv("ROS_STATIC_PEERS", raising=False)
    yield domain


class UserNode:
    """A plain rclpy node in a context of its own, written as a ROS 2 user writes one: generated
    message classes (``sensor_msgs.msg.Image``), rclpy's QoS profiles, rclpy's executor, stock
    settings (the test's ``ROS_DOMAIN_ID`` and ``ROS_AUTOMATIC_DISCOVERY_RANGE`` from the environment).

    Use as a context manager; :meth:`spin_until` spins its executor.
    """

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, condition, timeout_s: float) -> bool:
        """Spin until ``condition()`` is true or ``timeout_s`` seconds passed; returns ``condition()``."""
        end = time.monotonic() + timeout_s
        while not condition() and time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)
        return bool(condition())

    def call(self, srv_type, name: str, request, timeout_s: float = 10.0):
        """Call a service and return its response (AssertionError if no server or no answer in time)."""
        client = self.node.create_client(srv_type, name)
        try:
            assert self.spin_until(client.service_is_ready, timeout_s), f"service {name} not available"
            future = client.call_async(request)
            assert self.spin_until(future.done, timeout_s), f"no answer from {name}"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()

    def __enter__(self) -> "UserNode":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def random_observations(env, n: int, seed: int = 0) -> list:
    """``n`` observations of ``env`` visited with uniform random actions (resets at episode ends)."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    while len(out) < n:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
        out.append(obs)
    return out


def start_node(module: str, *ros_args: str, log_path: str | None = None, extra_env: dict | None = None) -> subprocess.Popen:
    """Start ``python -m module --ros-args ...`` in the current ROS environment (see :func:`ros_domain`).

    stdout and stderr go to ``log_path`` (or are inherited); end it with :func:`stop_node`.
    """
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), **(extra_env or {}))
    out = open(log_path, "wb") if log_path else None
    args = [sys.executable, "-m", module]
    if ros_args:
        args += ["--ros-args", *ros_args]
    return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)


def stop_node(process: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """SIGINT a node process (a clean ROS shutdown), SIGKILL it after ``timeout_s``; returns its exit code."""
    import signal

    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _controlling_tty_and_default_sigint() -> None:
    """Child side of :class:`PtyProcess`: the pty becomes the controlling terminal, and SIGINT gets
    its default disposition back (a test run started in the background, e.g. under ``nohup``,
    inherits SIGINT ignored, and Python would then ignore Ctrl-C from the terminal too)."""
    import signal

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class PtyProcess:
    """A child process whose stdin/stdout/stderr and controlling terminal are a fresh pty."""

    def __init__(self, args: list[str]) -> None:
        self.master, self.slave = os.openpty()
        self.saved = termios.tcgetattr(self.slave)
        self.output = b""
        env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(args, stdin=self.slave, stdout=self.slave, stderr=self.slave, cwd=REPO, env=env,
                                     start_new_session=True,  # setsid, then make the pty the controlling terminal:
                                     preexec_fn=_controlling_tty_and_default_sigint)

    def pump(self, timeout_s: float = 0.0) -> None:
        end = time.monotonic() + timeout_s
        while True:
            ready, _, _ = select.select([self.master], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                return
            try:
                self.output += os.read(self.master, 4096)
            except OSError:
                return

    def wait_for(self, text: str, timeout_s: float = 20.0) -> None:
        end = time.monotonic() + timeout_s
        while text.encode() not in self.output:
            assert time.monotonic() < end and self.proc.poll() is None, \
                f"waiting for {text!r}; output so far:\n{self.output.decode(errors='replace')}"
            self.pump(0.05)

    def hold_key(self, key: bytes, duration_s: float, repeat_s: float = 0.04) -> None:
        """Send ``key`` every ``repeat_s`` for ``duration_s``, as a terminal's auto-repeat does."""
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            os.write(self.master, key)
            self.pump(repeat_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)
