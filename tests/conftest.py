"""Shared pytest fixtures: an isolated ROS 2 domain on loopback, and node processes in it."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

_COUNTER = itertools.count()


@pytest.fixture
def ros_domain(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A ROS domain ID of its own for this test (from the pid and a counter, so parallel test
    runs on one host do not see each other), loopback-only discovery, and the DDS backend.

    Node processes started with :func:`start_node` inherit it. Yields the domain ID.
    """
    from robot_rl.ros import qos

    domain = 1 + (os.getpid() * 7 + next(_COUNTER)) % 200
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("CYCLONEDDS_URI", qos.localhost_config_xml())
    monkeypatch.setenv("ROBOT_RL_ROS_BACKEND", "dds")
    yield domain


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
