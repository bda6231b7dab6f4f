"""One-line checks of the numbers users pass on the command line, raising :class:`~robot_rl.errors.ConfigError`.

Call them at the top of a command, before anything is built, so a count that makes no sense
(``--num-episodes 0``, ``--batch-size -1``) ends in one line that names the flag, the value and
what to do, never in a ZeroDivisionError deep inside a loop. NaN fails every check.

Example:
    >>> require_at_least("--num-episodes", 3, 1)
    >>> require_at_least("--agent.hidden-dims", (16, 16), 1)
    >>> require_at_least("--num-episodes", 0, 1, "record at least one episode")
    Traceback (most recent call last):
    ...
    robot_rl.errors.ConfigError: --num-episodes must be >= 1, got 0; record at least one episode
    >>> require_positive("--lr", 0.0)
    Traceback (most recent call last):
    ...
    robot_rl.errors.ConfigError: --lr must be > 0, got 0.0
"""

from __future__ import annotations

from collections.abc import Sequence

from robot_rl.errors import ConfigError


def require_at_least(flag: str, value: float | Sequence[float], minimum: float, hint: str = "") -> None:
    """Raise unless ``value >= minimum`` (every entry, for a sequence such as ``hidden_dims``).

    Args:
        flag: the option as the user types it (``--num-episodes``, ``--agent.batch-size``).
        value: the number (or numbers) given.
        minimum: the smallest value that makes sense.
        hint: what to do instead, appended after ``;``.

    Raises:
        ConfigError: ``value`` (or an entry of it) is below ``minimum`` or NaN.
    """
    values = value if isinstance(value, Sequence) else (value,)
    if not all(v >= minimum for v in values):  # "not >=" so that NaN fails
        raise ConfigError(f"{flag} must be >= {minimum}, got {value}" + (f"; {hint}" if hint else ""))


def require_positive(flag: str, value: float, hint: str = "") -> None:
    """Raise unless ``value > 0`` (rates, durations, factors).

    Raises:
        ConfigError: ``value`` is zero, negative or NaN.
    """
    if not value > 0:
        raise ConfigError(f"{flag} must be > 0, got {value}" + (f"; {hint}" if hint else ""))
