"""Share a machine's cores among the robot_rl compute processes running on it.

Two torch processes that each use every core oversubscribe them: measured on a 2-core machine,
a state update that runs at 75 updates/s alone ran at 15 updates/s in each of two such processes
(OpenMP threads spinning against each other), and two ``robot-rl train`` runs side by side took
81.6 s each against 16 s alone. With one thread each they kept 67 updates/s each.

:class:`ThreadShare` registers each robot_rl compute process (a learner, an actor, a
``robot-rl train``) in a per-user directory, one small file per PID saying its role and how many
threads it claims: a fixed ``--torch-threads N`` claims N (the actor's default is 1), an automatic
share (``--torch-threads 0``, the learner's and train's default) claims what is left:
``max(1, (cores - fixed claims) // automatic processes)``. :meth:`ThreadShare.refresh` (at episode
ends, and about once a second in the learner) recounts the live processes and resizes torch's
thread pool, so a process that was alone first gives cores back when a second one starts. Files
of processes that died, even by SIGKILL, do not count (their PID is gone, or now belongs to a
process with another start time) and are removed.

``cores`` are the CPUs this process may run on (``os.sched_getaffinity``), so ``taskset -c 0,1``
or a container's CPU set bound it. A fixed ``--torch-threads N`` (N > 0) opts out: that process
uses N (and registers it, so that the automatic ones leave those cores free).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def registry_dir() -> Path:
    """Where processes register: ``$XDG_RUNTIME_DIR/robot_rl/threads`` or ``<tmp>/robot_rl-<uid>/threads``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(runtime) / "robot_rl" if runtime else Path(tempfile.gettempdir()) / f"robot_rl-{os.getuid()}"
    return root / "threads"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), or "" without /proc;
    it tells a live registered process from an unrelated one that reused a dead one's PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return ""


def _alive(pid: int, start_time: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start_time or _start_time(pid) in ("", start_time)


class ThreadShare:
    """This process's share of the cores for torch (see the module docstring); one per process
    (the registry is keyed by PID).

    Args:
        requested: ``--torch-threads``: N > 0 uses exactly N threads; 0 shares the cores
            automatically with the other registered robot_rl processes.
        role: what this process is (``learner``, ``actor``, ``train``), written into its file.
        min_interval_s: :meth:`refresh` looks at the registry at most this often.

    Attributes:
        threads: the torch intra-op thread count in use now.
    """

    def __init__(self, requested: int = 0, role: str = "robot_rl", min_interval_s: float = 1.0) -> None:
        import torch

        self._torch = torch
        self.requested, self.role, self.min_interval_s = int(requested), role, min_interval_s
        self._file: Path | None = None
        self._checked = 0.0
        self.threads = torch.get_num_threads()
        if self.requested > 0:
            self._set(self.requested)
        directory = registry_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._file = directory / str(os.getpid())
            self._file.write_text(f"{role} {self.requested} {_start_time(os.getpid())}")
        except OSError:  # a read-only or odd /tmp: fall back to torch's own default
            self._file = None
        self.refresh(force=True)

    def census(self) -> tuple[int, int]:
        """``(fixed threads claimed, automatic processes)`` over the live registered processes,
        this one included; files of dead processes are removed."""
        fixed, automatic = 0, 0
        for entry in registry_dir().iterdir():
            if not entry.name.isdigit():
                continue
            try:
                _, claim, start = (entry.read_text().split() + ["", "", ""])[:3]
            except OSError:
                continue
            if not _alive(int(entry.name), start):
                entry.unlink(missing_ok=True)
                continue
            claim_n = int(claim) if claim.isdigit() else 0
            fixed += claim_n
            automatic += claim_n == 0
        return fixed, max(automatic, 1)

    def refresh(self, force: bool = False) -> int:
        """Resize torch's thread pool to this process's share now; returns the thread count."""
        if self.requested > 0 or self._file is None:
            return self.threads
        now = time.monotonic()
        if not force and now - self._checked < self.min_interval_s:
            return self.threads
        self._checked = now
        fixed, automatic = self.census()
        self._set(max(1, (available_cores() - fixed) // automatic))
        return self.threads

    def _set(self, n: int) -> None:
        if n != self._torch.get_num_threads():
            self._torch.set_num_threads(n)
        self.threads = n

    def close(self) -> None:
        """Unregister (the others take the cores back at their next refresh). Idempotent."""
        if self._file is not None:
            self._file.unlink(missing_ok=True)
            self._file = None

    def __del__(self) -> None:  # best effort; a SIGKILLed process is skipped by PID instead
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
