"""Wire format of every actor <-> learner message: a msgpack header plus raw array buffers.

A message is a ZeroMQ multipart message ``[header, buf_0, ..., buf_{n-1}]``:

* ``header`` (msgpack map, at most :data:`MAX_HEADER_BYTES`)::

      {"schema": "robot_rl.wire", "v": 1, "kind": str, "seq": int, "sender": str,
       "arrays": [[name, dtype, shape], ...], "meta": {...}}

* ``buf_i``: the C-ordered little-endian bytes of array ``i`` (``prod(shape) * itemsize`` bytes).

Kinds: ``"transitions"`` (actor -> learner, a chunk of consecutive steps of one episode, see
:mod:`robot_rl.transport.messages`), ``"ack"`` (learner -> actor: every chunk up to ``seq`` is on
the learner's disk), ``"params"`` (learner -> actors: one ``uint8`` array holding safetensors bytes),
``"error"`` (learner -> actor: why a message was refused).

Nothing is ever unpickled: msgpack decodes only plain types (ext types are refused), arrays are
``numpy.frombuffer`` views with a whitelisted dtype, and safetensors is a JSON header plus raw
tensors. Every length is checked before use, so a truncated, oversized, malformed or
other-version message raises :class:`~robot_rl.errors.WireError` with its ``reason``, and
nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import msgpack
import numpy as np

from robot_rl.errors import WireError

SCHEMA = "robot_rl.wire"
SCHEMA_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAYS = 256
MAX_NDIM = 8
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
KINDS = ("transitions", "ack", "params", "error")
#: dtypes allowed on the wire (little-endian); anything else (objects, strings) is refused.
DTYPES = {name: np.dtype(name).newbyteorder("<") for name in
          ("uint8", "int8", "uint16", "int16", "int32", "int64", "float16", "float32", "float64", "bool")}


@dataclass
class Message:
    """A decoded message.

    Attributes:
        kind: one of :data:`KINDS`.
        seq: sequence number (chunk number for ``transitions``, acknowledged chunk for ``ack``,
            parameter version for ``params``).
        sender: actor ID or ``"learner"``.
        arrays: name -> read-only numpy array (views of the received buffers, no copy).
        meta: small JSON-like dict (msgpack types only).
    """

    kind: str
    seq: int = 0
    sender: str = ""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of all array payloads."""
        return int(sum(a.nbytes for a in self.arrays.values()))


def _refuse_ext(code: int, data: bytes) -> Any:
    raise WireError(f"msgpack extension type {code} is not allowed in a robot_rl header", "malformed")


def encode(msg: Message) -> list[Any]:
    """Frames of ``msg`` for ``socket.send_multipart(frames, copy=False)``.

    Returns:
        ``[header bytes, buffer_0, ...]``; the buffers are the arrays' memory (made contiguous
        little-endian first when they are not), so nothing is copied for contiguous arrays.

    Raises:
        WireError: unknown kind, an array dtype not in :data:`DTYPES`, too many arrays, or a
            header over :data:`MAX_HEADER_BYTES`.
    """
    if msg.kind not in KINDS:
        raise WireError(f"unknown message kind {msg.kind!r}; one of {KINDS}", "malformed")
    if len(msg.arrays) > MAX_ARRAYS:
        raise WireError(f"{len(msg.arrays)} arrays in one message, at most {MAX_ARRAYS}", "oversized")
    specs, bufs = [], []
    for name, arr in msg.arrays.items():
        a = np.asarray(arr)
        key = a.dtype.name
        if key not in DTYPES:
            raise WireError(f"array {name!r} has dtype {a.dtype}, which the wire format does not carry; "
                            f"use one of {sorted(DTYPES)}", "malformed")
        a = np.ascontiguousarray(a, dtype=DTYPES[key])
        specs.append([str(name), key, list(a.shape)])
        bufs.append(a.reshape(-1).view(np.uint8) if a.size else b"")
    header = msgpack.packb({"schema": SCHEMA, "v": SCHEMA_VERSION, "kind": msg.kind, "seq": int(msg.seq),
                            "sender": str(msg.sender), "arrays": specs, "meta": msg.meta}, use_bin_type=True)
    if len(header) > MAX_HEADER_BYTES:
        raise WireError(f"message header is {len(header)} bytes, at most {MAX_HEADER_BYTES}: keep meta small", "oversized")
    return [header, *bufs]


def _check_header(h: Any) -> None:
    if not isinstance(h, dict):
        raise WireError("header is not a msgpack map", "malformed")
    if h.get("schema") != SCHEMA:
        raise WireError(f"header schema is {h.get('schema')!r}, expected {SCHEMA!r}: not a robot_rl peer", "malformed")
    if h.get("v") != SCHEMA_VERSION:
        raise WireError(f"peer speaks robot_rl wire schema v{h.get('v')}, this side v{SCHEMA_VERSION}: "
                        "run the same robot_rl version on actor and learner", "version")
    if h.get("kind") not in KINDS:
        raise WireError(f"unknown message kind {h.get('kind')!r}", "malformed")
    if not isinstance(h.get("seq"), int) or isinstance(h.get("seq"), bool) or h["seq"] < 0:
        raise WireError("header field seq must be a non-negative integer", "malformed")
    if not isinstance(h.get("sender"), str) or len(h["sender"]) > 256:
        raise WireError("header field sender must be a string of at most 256 characters", "malformed")
    if not isinstance(h.get("meta"), dict):
        raise WireError("header field meta must be a map", "malformed")
    arrays = h.get("arrays")
    if not isinstance(arrays, list) or len(arrays) > MAX_ARRAYS:
        raise WireError(f"header field arrays must be a list of at most {MAX_ARRAYS} [name, dtype, shape]", "malformed")


def decode(frames: Sequence[Any], max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message:
    """Parse the frames of one message (``bytes``, ``memoryview`` or ``zmq.Frame``).

    Args:
        frames: ``[header, buf_0, ...]`` as received.
        max_message_bytes: refuse messages whose frames add up to more than this.

    Returns:
        The :class:`Message`; arrays are read-only views into the frames.

    Raises:
        WireError: with ``reason`` ``"oversized"``, ``"truncated"`` (a buffer shorter or longer than
            its header says, or a missing buffer), ``"version"`` or ``"malformed"``.
    """
    views = [memoryview(getattr(f, "buffer", f)).cast("B") for f in frames]
    if not views:
        raise WireError("empty message", "truncated")
    total = sum(v.nbytes for v in views)
    if total > max_message_bytes:
        raise WireError(f"message of {total} bytes exceeds the limit of {max_message_bytes}", "oversized")
    if views[0].nbytes > MAX_HEADER_BYTES:
        raise WireError(f"header of {views[0].nbytes} bytes exceeds {MAX_HEADER_BYTES}", "oversized")
    try:
        header = msgpack.unpackb(views[0], raw=False, use_list=True, strict_map_key=True, ext_hook=_refuse_ext)
    except WireError:
        raise
    except Exception as e:  # noqa: BLE001 - msgpack raises several types for garbage
        raise WireError(f"header is not valid msgpack ({type(e).__name__}: {e})", "malformed") from None
    _check_header(header)
    specs = header["arrays"]
    if len(specs) != len(views) - 1:
        raise WireError(f"header lists {len(specs)} arrays but {len(views) - 1} buffers arrived", "truncated")
    arrays: dict[str, np.ndarray] = {}
    for spec, buf in zip(specs, views[1:]):
        if (not isinstance(spec, list) or len(spec) != 3 or not isinstance(spec[0], str)
                or spec[1] not in DTYPES or not isinstance(spec[2], list) or len(spec[2]) > MAX_NDIM
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in spec[2])):
            raise WireError(f"bad array spec {str(spec)[:80]}: expected [name, dtype in {sorted(DTYPES)}, shape]", "malformed")
        name, dtype, shape = spec[0], DTYPES[spec[1]], tuple(spec[2])
        expected = math.prod(shape) * dtype.itemsize
        if expected != buf.nbytes:
            raise WireError(f"array {name!r} {spec[1]}{list(shape)} needs {expected} bytes, its buffer has {buf.nbytes}",
                            "truncated")
        if name in arrays:
            raise WireError(f"array {name!r} appears twice", "malformed")
        arr = np.frombuffer(buf, dtype=dtype).reshape(shape) if expected else np.zeros(shape, dtype)
        arr.flags.writeable = False
        arrays[name] = arr
    return Message(kind=header["kind"], seq=header["seq"], sender=header["sender"], arrays=arrays, meta=header["meta"])
