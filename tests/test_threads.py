"""Sharing the cores among robot_rl processes on one machine (robot_rl.threads), with real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from robot_rl.threads import ThreadShare, available_cores, registry_dir

CHILD = """
import sys, time
from pathlib import Path
from robot_rl.threads import ThreadShare
share = ThreadShare(int(sys.argv[1]), "child")
Path(sys.argv[2]).write_text(str(share.threads))
while not Path(sys.argv[3]).exists():
    time.sleep(0.02)
"""


@pytest.fixture(autouse=True)
def private_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _child(tmp_path, requested: int, name: str) -> tuple[subprocess.Popen, int]:
    ready, release = tmp_path / f"{name}.threads", tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(requested), str(ready), str(release)], env=dict(os.environ))
    deadline = time.monotonic() + 60
    while not ready.exists() or not ready.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "the child did not register"
        time.sleep(0.02)
    return proc, int(ready.read_text())


def test_automatic_shares_split_the_cores_and_grow_back(tmp_path):
    cores = available_cores()
    share = ThreadShare(0, "learner")
    assert share.threads == cores == torch.get_num_threads()  # alone: every core
    proc, child_threads = _child(tmp_path, 0, "second")
    assert child_threads == max(1, cores // 2)  # it saw this process registered
    assert share.refresh(force=True) == max(1, cores // 2) == torch.get_num_threads()  # gave cores back
    (tmp_path / "release").touch()
    proc.wait(30)
    assert share.refresh(force=True) == cores  # the other one left: the cores come back
    share.close()
    assert not any(registry_dir().iterdir())


def test_fixed_claims_are_left_free_and_dead_processes_do_not_count(tmp_path):
    cores = available_cores()
    directory = registry_dir()
    directory.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (directory / str(dead.pid)).write_text("learner 0 123")  # killed without cleaning up
    (directory / "999999999").write_text("train 0")  # no such PID
    actor, actor_threads = _child(tmp_path, 1, "actor")  # the actor's default: one thread, claimed
    try:
        learner = ThreadShare(0, "learner")
        assert actor_threads == 1 and learner.threads == max(1, cores - 1)
        assert sorted(p.name for p in directory.iterdir()) == sorted([str(os.getpid()), str(actor.pid)])  # stale removed
        learner.close()
    finally:
        (tmp_path / "release").touch()
        actor.wait(30)


def test_the_learner_takes_its_share(tmp_path):
    from robot_rl.agent import SACConfig
    from robot_rl.learner import Learner, LearnerConfig

    proc, _ = _child(tmp_path, 0, "other")
    try:
        lr = Learner(LearnerConfig(env="Pendulum-v1", num_demos=0, run_dir=tmp_path / "lrun", progress=False,
                                   agent=SACConfig(hidden_dims=(8,))), None, "learner")
        assert lr.threads.threads == torch.get_num_threads() == max(1, available_cores() // 2)
        lr.close()
    finally:
        (tmp_path / "release").touch()
        proc.wait(30)
