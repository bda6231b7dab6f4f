"""Identified simulation parameters (:class:`SimParams`), written by ``robot-rl sysid`` and loaded
by both backends (``gymnasium.make(ID, sim_params="sysid.yaml")``).

Each field left ``None`` keeps the backend's built-in value; the arm-joint values apply to all
seven Panda joints alike (one number each keeps the fit fast and well posed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from robot_rl.config_io import dataclass_from_dict, load_yaml_dataclass
from robot_rl.errors import ConfigError


@dataclass
class SimParams:
    """Simulation parameters a system identification fits; ``None`` = the backend default."""

    joint_damping_nms_per_rad: float | None = None
    """viscous damping of each arm joint, N·m·s/rad (MuJoCo default 1.0, PyBullet 0.0)."""
    joint_frictionloss_nm: float | None = None
    """dry (Coulomb) friction of each arm joint, N·m (MuJoCo ``frictionloss``; default 0; MuJoCo only)."""
    armature_kgm2: float | None = None
    """reflected rotor inertia added to each arm joint, kg·m² (MuJoCo default 0.1; MuJoCo only)."""
    gripper_force_n: float | None = None
    """force limit of the finger servo, N (MuJoCo: the one servo of both fingers, default 20;
    PyBullet: per finger, default 40)."""
    action_latency_steps: int = 0
    """actions take effect this many control steps late (applied by a wrapper, see
    :class:`robot_rl.sim.randomization.DomainRandomization`)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and float(value) < 0:
                raise ConfigError(f"SimParams.{f.name} must be >= 0, got {value}")
        if int(self.action_latency_steps) != self.action_latency_steps:
            raise ConfigError(f"SimParams.action_latency_steps must be a whole number of control steps, "
                              f"got {self.action_latency_steps}")
        self.action_latency_steps = int(self.action_latency_steps)

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{field: value}`` (floats, ints, None) for YAML."""
        return {k: (None if v is None else (int(v) if k == "action_latency_steps" else float(v)))
                for k, v in asdict(self).items()}


def save_sim_params(params: SimParams, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``params`` to a YAML file: ``sim_params:`` plus optional ``extra`` top-level entries
    (the fit report). Returns the path."""
    import yaml

    path = Path(path)
    doc = {"sim_params": params.to_dict(), **(extra or {})}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def load_sim_params(source: str | Path | dict | SimParams | None) -> SimParams:
    """A :class:`SimParams` from a YAML path, a mapping (with or without the ``sim_params`` key) or
    an instance; ``None`` gives the defaults.

    Raises:
        ConfigError: the file is missing or has unknown keys.
    """
    if source is None:
        return SimParams()
    if isinstance(source, SimParams):
        return source
    if isinstance(source, dict):
        return dataclass_from_dict(SimParams, source.get("sim_params", source), "sim_params")
    return load_yaml_dataclass(source, SimParams, section="sim_params",
                               missing_hint=f"write one with `robot-rl sysid --out {source}`")
