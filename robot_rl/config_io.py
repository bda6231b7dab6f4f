"""Settings files into dataclasses: one loader, one check for unknown keys.

Every YAML or JSON mapping robot_rl reads into a settings dataclass (sim parameters, randomisation
ranges, run configs, saved classifiers, scripted-corrector settings) goes through
:func:`dataclass_from_dict`, so a misspelt key is always an error that names the unknown keys,
the valid ones and where they came from, and values are converted by the fields' type hints the
same way everywhere (lists to tuples, strings to paths, mappings to nested dataclasses).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Box:
    ...     low: tuple[float, float] = (0.0, 0.0)
    ...     high: tuple[float, float] = (1.0, 1.0)
    >>> dataclass_from_dict(Box, {"low": [0.1, 0.2]}, "box.yaml")
    Box(low=(0.1, 0.2), high=(1.0, 1.0))
    >>> dataclass_from_dict(Box, {"hihg": [2, 2]}, "box.yaml")
    Traceback (most recent call last):
    ...
    robot_rl.errors.ConfigError: box.yaml: unknown key(s) ['hihg'] for Box; valid keys: ['high', 'low']
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from robot_rl.errors import ConfigError

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: Any, where: str, *, error: type[Exception] = ConfigError,
                        hint: str = "") -> T:
    """Build dataclass ``cls`` from a mapping of field names to values.

    Values are converted by the fields' type hints: a list becomes a tuple (element by element)
    for a ``tuple`` field, a string a ``Path`` for a ``Path`` field, a mapping a nested
    dataclass (checked the same way); other values are passed as they are, and ``cls`` validates
    them (``__post_init__``).

    Args:
        cls: a dataclass type.
        data: the mapping (a parsed YAML or JSON document or one section of it).
        where: where the mapping came from, for error messages (a file path, ``"sim_params"``).
        error: the exception class raised for unknown keys or a non-mapping.
        hint: a sentence appended to those errors (how to fix it).

    Returns:
        The ``cls`` instance.

    Raises:
        error: ``data`` is not a mapping, or has keys ``cls`` has no field for (the message names
            the unknown keys, the valid keys and ``where``).
    """
    if not isinstance(data, dict):
        raise error(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}"
                    + (f"; {hint}" if hint else ""))
    check_fields(cls, data, where, error=error, hint=hint)
    hints = typing.get_type_hints(cls)
    return cls(**{k: _coerce(hints[k], v, f"{where}: {k}", error, hint) for k, v in data.items()})


def check_fields(cls: type, keys: Any, where: str, *, error: type[Exception] = ConfigError, hint: str = "") -> None:
    """Raise ``error`` if ``keys`` (names, or a mapping's keys) holds a name ``cls`` has no field for.

    The message names the unknown keys, ``cls``'s valid keys and ``where``; ``hint`` is appended.
    For keyword settings applied with ``dataclasses.replace`` to an existing instance.
    """
    names = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(keys) - set(names))
    if unknown:
        raise error(f"{where}: unknown key(s) {unknown} for {cls.__name__}; valid keys: {names}"
                    + (f"; {hint}" if hint else ""))


def load_yaml_dataclass(path: str | Path, cls: type[T], *, section: str | None = None, missing_hint: str = "",
                        error: type[Exception] = ConfigError) -> T:
    """Read a YAML file into dataclass ``cls`` with :func:`dataclass_from_dict`.

    Args:
        path: the YAML file; an empty file gives ``cls()``.
        cls: a dataclass type.
        section: a top-level key the fields may sit under (``sim_params:``); a file without it
            is read as the fields themselves.
        missing_hint: a sentence for the missing-file error (how to write one).
        error: the exception class raised.

    Raises:
        error: the file is missing or not YAML, or holds unknown keys (see :func:`dataclass_from_dict`).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise error(f"{cls.__name__} file {path} does not exist" + (f"; {missing_hint}" if missing_hint else ""))
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise error(f"{path} is not valid YAML: {e}") from None
    if section is not None and isinstance(doc, dict) and section in doc:
        doc = doc[section] or {}
    return dataclass_from_dict(cls, doc, str(path), error=error)


def _coerce(tp: Any, value: Any, where: str, error: type[Exception], hint: str) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        for arg in options:
            if _fits(arg, value):
                return _coerce(arg, value, where, error, hint)
        return value
    if dataclasses.is_dataclass(tp):
        return dataclass_from_dict(tp, value, where, error=error, hint=hint)
    if tp is Path:
        return Path(value)
    if (origin is tuple or tp is tuple) and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where, error, hint) for v in value)
        if args and len(args) == len(value):
            return tuple(_coerce(a, v, where, error, hint) for a, v in zip(args, value))
        return tuple(value)
    return value


def _fits(tp: Any, value: Any) -> bool:
    """Whether ``value`` (parsed YAML / JSON) can stand for type ``tp`` (to pick a Union member)."""
    origin = typing.get_origin(tp) or tp
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    if origin in (tuple, list):
        return isinstance(value, (list, tuple))
    if tp is Path:
        return isinstance(value, (str, Path))
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(origin, type):
        return isinstance(value, origin)
    return True
