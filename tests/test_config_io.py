"""The one YAML/JSON-to-dataclass loader: unknown keys, type conversion, files."""

from __future__ import annotations

import doctest
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import robot_rl.config_io
from robot_rl.config_io import check_fields, dataclass_from_dict, load_yaml_dataclass
from robot_rl.errors import CheckpointError, ConfigError


@dataclass
class Inner:
    size_px: int = 1
    path: Path | None = None


@dataclass
class Outer:
    box: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (1.0, 1.0))
    std: tuple[float, float] | str | None = None
    names: tuple[str, ...] = ("a",)
    inner: Inner = field(default_factory=Inner)


def test_docstring_example_runs():
    result = doctest.testmod(robot_rl.config_io)
    assert result.attempted > 0 and result.failed == 0


def test_values_follow_the_type_hints():
    cfg = dataclass_from_dict(Outer, {"box": [[0, 1], [2, 3]], "std": [0.1, 2], "names": ["x", "y"],
                                      "inner": {"path": "w.pt"}}, "cfg.yaml")
    assert cfg.box == ((0, 1), (2, 3)) and cfg.std == (0.1, 2) and cfg.names == ("x", "y")
    assert cfg.inner == Inner(1, Path("w.pt"))
    assert dataclass_from_dict(Outer, {"std": "hand_eye"}, "cfg.yaml").std == "hand_eye"


def test_unknown_keys_name_themselves_the_valid_keys_and_the_source():
    with pytest.raises(ConfigError, match=r"cfg.yaml: inner: unknown key\(s\) \['size'\] for Inner; valid keys: \['path', 'size_px'\]"):
        dataclass_from_dict(Outer, {"inner": {"size": 2}}, "cfg.yaml")
    with pytest.raises(CheckpointError, match=r"run/config.json: unknown key\(s\) \['new'\] .*another version"):
        dataclass_from_dict(Inner, {"new": 1}, "run/config.json", error=CheckpointError, hint="another version")
    with pytest.raises(ConfigError, match="expected a mapping of Inner fields, got list"):
        dataclass_from_dict(Inner, [1], "cfg.yaml")
    with pytest.raises(ConfigError, match=r"settings: unknown key\(s\) \['x'\]"):
        check_fields(Inner, {"x": 1, "size_px": 2}, "settings")


def test_yaml_files_with_and_without_a_section(tmp_path):
    (tmp_path / "a.yaml").write_text("inner:\n  size_px: 3\n")
    (tmp_path / "b.yaml").write_text("outer:\n  names: [p, q]\nother: 1\n")
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml_dataclass(tmp_path / "a.yaml", Outer, section="outer").inner.size_px == 3
    assert load_yaml_dataclass(tmp_path / "b.yaml", Outer, section="outer").names == ("p", "q")
    assert load_yaml_dataclass(tmp_path / "empty.yaml", Outer) == Outer()
    with pytest.raises(ConfigError, match="Outer file .*missing.yaml does not exist; run the tool"):
        load_yaml_dataclass(tmp_path / "missing.yaml", Outer, missing_hint="run the tool")
