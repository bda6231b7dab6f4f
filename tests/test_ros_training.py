"""Training through ROS 2 on rclpy, end to end, every piece its own process.

The sim node (MuJoCo) publishes the real arm and camera topics; ``robot-rl actor`` runs
``RosRobotEnv`` against it with the scripted corrector as the supervisor and streams transitions
to ``robot-rl learner`` over ZeroMQ. Nothing of ROS, ZeroMQ or the physics is mocked. The
processes are started with the helpers of ``test_hil.py`` (learner / actor over ZeroMQ) and
``conftest.py`` (node processes in this test's ROS domain), one torch thread each so that they
share two cores without oversubscribing them.
"""

from __future__ import annotations

import csv
import json
import os

import pytest
import test_hil
from conftest import start_node, stop_node
from test_hil import _actor, _actor_summary, _free_port_pair, _learner, _output, _status, _stop, _wait

pytestmark = pytest.mark.timeout(300)

#: env steps the actor takes: at the sim node's 10 Hz about 30 s of robot time.
STEPS = 300


@pytest.fixture
def ros_subprocess_env(ros_domain, monkeypatch):
    """The ROS environment of this test (domain, loopback discovery) also for test_hil's process
    helpers, whose environment is a copy taken when test_hil was imported."""
    for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS"):
        if key in os.environ:
            monkeypatch.setitem(test_hil.ENV, key, os.environ[key])
        else:
            monkeypatch.delitem(test_hil.ENV, key, raising=False)
    monkeypatch.setitem(test_hil.ENV, "OMP_NUM_THREADS", "1")
    return ros_domain


def test_actor_and_learner_train_through_the_sim_node(ros_subprocess_env, tmp_path):
    sim = start_node("robot_rl.sim.node", "-p", "env:=robot_rl/PandaPickLift-v0", log_path=str(tmp_path / "sim.log"))
    env = ["--env", "robot_rl/RosPandaPickLift-v0"]  # the learner only reads its spaces: no topic needed
    port = _free_port_pair()
    learner = actor = None
    try:
        learner = _learner(tmp_path, port, *env, "--num-demos", "0", "--publish-every-updates", "4",
                           "--agent.batch-size", "64")
        actor = _actor(tmp_path, port, STEPS, *env, "--teleop", "scripted", "--torch-threads", "1")
        assert actor.wait(240) == 0, _output(actor) + (tmp_path / "sim.log").read_text()[-2000:]
        _wait(lambda: _status(tmp_path / "run").get("received_transitions") == STEPS, 60, "all transitions", learner)
        assert _stop(learner) == 0, _output(learner)
    finally:
        for proc in (actor, learner):
            if proc is not None and proc.poll() is None:
                proc.kill()
        sim_code = stop_node(sim)
    assert sim_code == 0, (tmp_path / "sim.log").read_text()[-2000:]
    status = _status(tmp_path / "run")
    assert status["online_transitions"] == STEPS and status["transport"].get("rejected", 0) == 0
    assert status["updates"] > 0, status
    assert status["interventions"] > 0, "the scripted corrector never took over through ROS"
    summary = _actor_summary(tmp_path)
    assert int(summary["params_version"]) > 0, "the actor never received trained parameters"
    with open(tmp_path / "run" / "episodes.csv") as f:
        episodes = list(csv.DictReader(f))
    assert len(episodes) == int(summary["episodes"]) >= 2, summary
    updates = [int(row["updates"]) for row in episodes]
    assert updates == sorted(updates) and updates[-1] > 0, updates  # the learner trained while the actor acted
    assert sum(int(row["length"]) for row in episodes) <= STEPS
    assert json.loads((tmp_path / "run" / "reward_source.json").read_text())["reward"] == "env"
