"""``robot-rl export-policy``: a training run's latest checkpoint as a deployable policy directory.

The directory holds ``policy.safetensors`` + ``policy.json`` (load with
:meth:`robot_rl.policies.policy.Policy.load`, which imports neither the learner nor a simulator)
and, unless ``--no-torchscript``, ``policy.torchscript.pt`` (``torch.jit.load``; deterministic
actions in the env's units from ``(state, *camera images)``). ONNX is not written: torch's exporters
need the ``onnx`` / ``onnxscript`` packages, which robot_rl does not depend on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ExportPolicyConfig:
    """Export the latest checkpoint of a training run as a deployable policy directory."""

    run_dir: Path
    """run directory printed by `robot-rl train` or `robot-rl learner` (holds config.json and checkpoints/)."""
    out: Path | None = None
    """output directory (default <run_dir>/policy); files of an earlier export there are replaced."""
    device: str = "cpu"
    """device the policy is loaded and traced on: 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. The TorchScript
    module runs on the device it was traced on; the safetensors file is always written from CPU."""
    torchscript: bool = True
    """also write policy.torchscript.pt (torch.jit.trace of the deterministic forward in env units)."""


def export_policy(cfg: ExportPolicyConfig) -> dict[str, Any]:
    """Build the run's :class:`~robot_rl.policies.policy.Policy` and write it to ``cfg.out``.

    Makes the run's env once to read its observation and action spaces (see
    :meth:`Policy.from_run`), so it runs where the simulator is installed.

    Returns:
        ``out`` (directory), ``checkpoint``, ``env``, ``env_steps``, ``files`` (written, in the
        directory), ``torchscript`` (its path, or None when not asked for or when tracing failed,
        which a warning explains), ``onnx`` (why it is not written).

    Raises:
        CheckpointError: the run directory, its config or its checkpoint is missing or does not fit.
        ConfigError / DeviceUnavailableError: the env cannot be made, or the device does not exist.
    """
    from robot_rl.agent import resolve_device
    from robot_rl.policies.policy import PARAMS_FILE, SPEC_FILE, TORCHSCRIPT_FILE, Policy

    run_dir = Path(cfg.run_dir)
    out = Path(cfg.out) if cfg.out is not None else run_dir / "policy"
    policy = Policy.from_run(run_dir, resolve_device(cfg.device))
    policy.save(out)
    files = [PARAMS_FILE, SPEC_FILE]
    torchscript = None
    if cfg.torchscript:
        torchscript = policy.export_torchscript(out / TORCHSCRIPT_FILE)
    else:
        (out / TORCHSCRIPT_FILE).unlink(missing_ok=True)  # never leave an older export's module next to new weights
    if torchscript is not None:
        files.append(TORCHSCRIPT_FILE)
    return {"out": str(out), "checkpoint": str(run_dir / "checkpoints" / policy.metadata["checkpoint"]),
            "env": policy.metadata["env"], "env_steps": policy.metadata["env_steps"], "files": files,
            "torchscript": None if torchscript is None else str(torchscript),
            "onnx": "not written: torch.onnx needs the onnx/onnxscript packages, not robot_rl dependencies"}
