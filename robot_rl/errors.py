"""Every error class robot_rl raises, in one place.

Each error message says what was wrong and what to do about it. All derive from
:class:`RobotRLError` so a caller can catch the family; each also derives from the closest
built-in (``ValueError``, ``FileNotFoundError`` ...) so generic handlers keep working.
"""


class RobotRLError(Exception):
    """Base class of every robot_rl error."""


class ConfigError(RobotRLError, ValueError):
    """A setting is invalid or inconsistent (unknown env ID, impossible sizes, bad device)."""


class ObservationLayoutError(RobotRLError, ValueError):
    """An environment's observation or action space cannot be used by the learner."""


class DemoFormatError(RobotRLError, ValueError):
    """A demo file is missing fields, of another format version, truncated or corrupt."""


class CheckpointError(RobotRLError, FileNotFoundError):
    """A checkpoint or run directory is missing, incomplete or does not match the config."""


class RunDirectoryExistsError(RobotRLError, FileExistsError):
    """A run directory already exists; robot_rl never overwrites one."""


class DeviceUnavailableError(RobotRLError, RuntimeError):
    """A device is not available: a compute device (``cuda``, ``mps``), or a camera, arm or teleop
    device that is not connected or whose SDK is not installed."""


class PretrainedWeightsError(RobotRLError, OSError):
    """Pretrained encoder weights are missing, unreadable, of another architecture, or could not be downloaded."""


class WireError(RobotRLError, ValueError):
    """A ZeroMQ message between actor and learner is malformed, oversized, truncated or of
    another schema version. ``reason`` names the category (``"malformed"``, ``"oversized"``,
    ``"truncated"``, ``"version"``, ``"layout"``) so receivers can count rejections."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class TransportError(RobotRLError, ConnectionError):
    """The actor-learner link cannot do what was asked: nobody answers, CURVE keys are missing
    or refused, an address is unusable, or the other side speaks another schema version."""


class CalibrationError(RobotRLError, ValueError):
    """A camera or hand-eye calibration cannot give a trustworthy answer: the board is not in view,
    too few corners or views, blurred frames, or a degenerate set of robot poses."""
