"""Counts that make no sense (0, negative) end in one line naming the flag, never in a traceback."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
from pathlib import Path

import pytest

import robot_rl.validate
from robot_rl.errors import ConfigError
from robot_rl.record import RecordDemosConfig, record_demos, success_summary
from robot_rl.rewards.train_classifier import TrainClassifierConfig, train_classifier


def robot_rl_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robot_rl.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})


@pytest.mark.parametrize("args,message", [
    (["record-demos", "--num-episodes", "0"], "--num-episodes must be >= 1, got 0"),  # was a ZeroDivisionError
    (["eval", "--episodes", "0"], "--episodes must be >= 1, got 0"),
])
def test_cli_rejects_zero_counts_in_one_line(tmp_path, args, message):
    if args[0] == "record-demos":
        args = [*args, "--out", str(tmp_path / "demos")]
    else:
        args = [*args, "--run-dir", str(tmp_path)]
    proc = robot_rl_cli(*args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().count("\n") == 0  # one line
    assert not (tmp_path / "demos").exists()  # nothing was created before the check


@pytest.mark.parametrize("kwargs,flag", [({"seed": -1}, "--seed"), ({"action_noise": -0.1}, "--action-noise"),
                                         ({"max_attempts_factor": 0.5}, "--max-attempts-factor"),
                                         ({"teleop_linear_speed_mps": 0.0}, "--teleop-linear-speed-mps"),
                                         ({"teleop_yaw_rate_rps": float("nan")}, "--teleop-yaw-rate-rps")])
def test_record_demos_checks_counts_before_opening_anything(tmp_path, kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        record_demos(RecordDemosConfig(out=tmp_path / "demos", **kwargs), progress=False)
    assert not (tmp_path / "demos").exists()


def test_success_summary_without_attempts_has_no_rate():
    assert success_summary(0, 0, Path("d"), 0.0) == "recorded 0 successful episodes of 0 attempts (n/a success) into d in 0.0 s"
    assert "(75% success)" in success_summary(3, 4, Path("d"), 1.23)


@pytest.mark.parametrize("kwargs,flag", [({"epochs": 0}, "--epochs"), ({"patience": 0}, "--patience"),
                                         ({"batch_size": 0}, "--batch-size"), ({"shift_pad": -1}, "--shift-pad"),
                                         ({"seed": -3}, "--seed")])
def test_train_reward_classifier_checks_counts_first(tmp_path, kwargs, flag):
    with pytest.raises(ConfigError, match=flag):  # no --demos either: the count is reported first
        train_classifier(TrainClassifierConfig(out=tmp_path / "clf", progress=False, **kwargs))


def test_validate_docstring_examples_run():
    result = doctest.testmod(robot_rl.validate)
    assert result.attempted == 4 and result.failed == 0
