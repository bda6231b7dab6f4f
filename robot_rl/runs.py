"""Run directories and checkpoints.

A run directory (``runs/<env>__<exp>__<seed>__<time>``) holds::

    config.json            the full TrainConfig / LearnerConfig, written once
    run.json               run directory format and mode (train or learner)
    demos/                 scripted demos recorded for this run (episode files)
    replay/log_*.rrl       every transition chunk, in order (robot_rl.learner: the run's dataset)
    checkpoints/step_<N>/  agent.pt (tensors only) + state.json (counters, RNG states); N = env steps
    checkpoints/latest     name of the newest complete checkpoint
    episodes.csv           one row per training episode
    evals.csv              env_steps, success_rate, mean_return, ... per evaluation
    tb/                    TensorBoard logs (x-axis: env steps)

Checkpoints are written into a temporary directory and renamed, then ``latest`` is replaced
atomically: a crash at any moment leaves the previous checkpoint intact. Nothing in a run
directory is ever overwritten by a new run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from robot_rl.config_io import dataclass_from_dict
from robot_rl.errors import CheckpointError, RunDirectoryExistsError

CHECKPOINT_FORMAT = "robot_rl.checkpoint"
CHECKPOINT_VERSION = 1


def make_run_dir(root: Path, env_id: str, exp_name: str, seed: int, explicit: Path | None = None) -> Path:
    """Create a new, empty run directory and return it.

    Raises:
        RunDirectoryExistsError: ``explicit`` exists already (runs are never overwritten; pass
            ``--resume <dir>`` to continue it or choose another name).
    """
    if explicit is None:
        env_short = re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id.split("/")[-1])
        stamp = time.strftime("%Y%m%d-%H%M%S")
        explicit = root / f"{env_short}__{exp_name}__{seed}__{stamp}"
        n = 1
        while explicit.exists():  # two runs started in the same second
            explicit = root / f"{env_short}__{exp_name}__{seed}__{stamp}-{n}"
            n += 1
    try:
        explicit.mkdir(parents=True, exist_ok=False)
    except FileExistsError as e:
        raise RunDirectoryExistsError(
            f"run directory {explicit} already exists; robot_rl never overwrites a run. "
            f"Continue it with `robot-rl train --resume {explicit}` or pass another --run-dir."
        ) from e
    return explicit


def save_config(run_dir: Path, config: Any) -> None:
    """Write ``config`` (a dataclass) as ``config.json``."""
    (run_dir / "config.json").write_text(json.dumps(to_jsonable(config), indent=2))


def to_jsonable(obj: Any) -> Any:
    """Dataclasses / Paths / tuples -> plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


def from_jsonable(cls: type, data: dict, where: str = "config") -> Any:
    """Rebuild dataclass ``cls`` from :func:`to_jsonable` output.

    Raises:
        CheckpointError: ``data`` has keys ``cls`` does not know (the message names them, the
            valid ones and ``where``).
    """
    return dataclass_from_dict(cls, data, where, error=CheckpointError,
                               hint="it was written by another robot_rl version")


def load_config(run_dir: Path, cls: type) -> Any:
    """Read ``config.json`` of a run directory into dataclass ``cls``.

    Raises:
        CheckpointError: the run directory or its config is missing.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a robot_rl run directory (no config.json); "
                              "pass the directory `robot-rl train` printed at its start")
    return from_jsonable(cls, json.loads(path.read_text()), str(path))


def save_checkpoint(run_dir: Path, step: int, tensors: dict[str, Any], state: dict[str, Any], keep: int = 2) -> Path:
    """Atomically write checkpoint ``step`` and point ``checkpoints/latest`` at it.

    Args:
        tensors: tensors and plain numbers (saved with ``torch.save``, loadable with
            ``weights_only=True``).
        state: JSON-serialisable counters and RNG states.
        keep: how many newest checkpoints to keep (older ones are deleted after the new one
            is complete).
    """
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(exist_ok=True)
    name = f"step_{step:09d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(tensors, tmp / "agent.pt")
    (tmp / "state.json").write_text(json.dumps({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    latest_tmp = ckpt_root / ".latest.tmp"
    latest_tmp.write_text(name)
    os.replace(latest_tmp, ckpt_root / "latest")
    for old in sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old)
    return final


def latest_checkpoint(run_dir: Path) -> Path:
    """Path of the newest complete checkpoint of a run.

    Raises:
        CheckpointError: the run has no checkpoint yet.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise CheckpointError(f"{run_dir} is not a robot_rl run directory (no config.json)")
    pointer = run_dir / "checkpoints" / "latest"
    if not pointer.is_file():
        raise CheckpointError(f"{run_dir} has no checkpoint yet (the run stopped before its first one); "
                              "start a new run instead of resuming")
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    if not (path / "agent.pt").is_file() or not (path / "state.json").is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete; delete checkpoints/latest to fall back, "
                              "or start a new run")
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``(tensors, state)`` of a checkpoint directory (tensors loaded with ``weights_only=True``).

    Raises:
        CheckpointError: missing files, another format version, or unreadable data.
    """
    path = Path(path)
    try:
        state = json.loads((path / "state.json").read_text())
        tensors = torch.load(path / "agent.pt", map_location=map_location, weights_only=True)
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint {path} is missing {e.filename}") from e
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user-facing error
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from e
    if state.get("format") != CHECKPOINT_FORMAT or state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {state.get('format')} v{state.get('version')}; "
                              f"this robot_rl reads {CHECKPOINT_FORMAT} v{CHECKPOINT_VERSION}")
    return tensors, state
