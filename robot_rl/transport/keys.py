"""CURVE key pairs for an encrypted, authenticated actor-learner link (``robot-rl keys``).

ZeroMQ's CURVE mechanism (RFC 26/CurveZMQ, Curve25519) encrypts every frame and lets the learner
accept only actors whose public key it holds. ``robot-rl keys --out keys/`` writes::

    keys/learner.key  learner.key_secret          the learner's pair (the secret stays on the GPU box)
    keys/actor0.key   actor0.key_secret  ...      one pair per actor (each secret stays on its robot PC)
    keys/authorized_actors/actor0.key ...         the public keys the learner accepts

Copy ``learner.key`` (public) and ``<actor>.key_secret`` to each robot PC; the learner needs
``learner.key_secret`` and ``authorized_actors/``. Files are ZeroMQ certificates
(``zmq.auth.create_certificates``), secrets readable by the owner only.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from robot_rl.errors import ConfigError, TransportError

AUTHORIZED_DIR = "authorized_actors"


@dataclass
class KeysConfig:
    """Create CURVE key pairs for the learner and N actors (encrypted, authenticated ZeroMQ link)."""

    out: Path = Path("keys")
    """directory to write the certificates into (must not hold keys already)."""
    actors: int = 1
    """number of actor key pairs (actor0, actor1, ...)."""
    actor_names: tuple[str, ...] = ()
    """explicit actor names instead of actor0..N-1 (use the actors' --actor-id)."""


def create_keys(cfg: KeysConfig) -> list[Path]:
    """Write the learner's and the actors' certificates; returns the files written.

    Raises:
        ConfigError: ``out`` already holds keys (keys are never overwritten), or bad names.
    """
    import zmq.auth

    names = list(cfg.actor_names) or [f"actor{i}" for i in range(cfg.actors)]
    if not names or len(set(names)) != len(names) or any(not n or "/" in n or n == "learner" for n in names):
        raise ConfigError(f"actor names must be distinct, non-empty, without '/', not 'learner'; got {names}")
    out = Path(cfg.out)
    if out.exists() and (any(out.glob("*.key")) or any(out.glob("*.key_secret"))):
        raise ConfigError(f"{out} already holds keys; robot_rl never overwrites keys. Choose another --out "
                          "or delete the old keys on purpose.")
    (out / AUTHORIZED_DIR).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in ["learner", *names]:
        public, secret = zmq.auth.create_certificates(str(out), name)
        os.chmod(secret, 0o600)
        written += [Path(public), Path(secret)]
        if name != "learner":
            dst = out / AUTHORIZED_DIR / f"{name}.key"
            shutil.copyfile(public, dst)
            written.append(dst)
    return written


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    import zmq.auth

    if not path.is_file():
        raise TransportError(f"CURVE key file {path} not found; create keys with `robot-rl keys --out <dir>` "
                             "and copy the right files (see `robot-rl keys --help`)")
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except Exception as e:  # noqa: BLE001 - any unreadable certificate is the same error
        raise TransportError(f"{path} is not a ZeroMQ certificate ({e})") from e
    if secret and secret_key is None:
        raise TransportError(f"{path} holds no secret key; pass the .key_secret file's directory")
    return public, secret_key


def learner_keys(directory: Path) -> tuple[bytes, bytes, Path]:
    """``(public, secret, authorized_dir)`` of the learner from a ``robot-rl keys`` directory.

    Raises:
        TransportError: missing or unreadable files, or no authorized actor keys.
    """
    directory = Path(directory)
    public, secret = _load(directory / "learner.key_secret", secret=True)
    authorized = directory / AUTHORIZED_DIR
    if not authorized.is_dir() or not any(authorized.glob("*.key")):
        raise TransportError(f"{authorized} holds no actor public keys: every actor would be refused. "
                             "Put the actors' .key files there (robot-rl keys does).")
    return public, secret, authorized  # type: ignore[return-value]


def actor_keys(directory: Path, actor_id: str) -> tuple[bytes, bytes, bytes]:
    """``(actor public, actor secret, learner public)`` from a directory holding
    ``<actor_id>.key_secret`` and ``learner.key``.

    Raises:
        TransportError: missing or unreadable files.
    """
    directory = Path(directory)
    public, secret = _load(directory / f"{actor_id}.key_secret", secret=True)
    server_public, _ = _load(directory / "learner.key", secret=False)
    return public, secret, server_public  # type: ignore[return-value]
