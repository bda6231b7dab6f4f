"""Append-only record files: the actor's spool and the learner's replay log share this format.

A record stores the frames of one wire message (:mod:`robot_rl.transport.wire`) verbatim::

    magic b"RRL1" | uint32 n_frames | uint64 payload_bytes | n_frames x uint64 frame length
    | frame bytes ... | uint32 CRC-32C (Castagnoli) of everything before it

all little-endian. A record is written with one ``write`` of its prefix, the frames and its CRC;
a process killed in the middle leaves a torn last record, which the reader detects (short read,
bad magic or CRC) and :func:`repair_segment` truncates away. Records that were acknowledged were
complete, so nothing acknowledged is ever lost.

The learner's log is a directory of segments ``log_000000.rrl``, ``log_000001.rrl`` ... (a new
segment starts past ``segment_bytes``); the actor's spool keeps one record file per unacknowledged
chunk (written to a temporary name and renamed).
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from crc32c import crc32c  # hardware CRC-32C (SSE4.2 / ARMv8): ~20 GB/s, 10x zlib.crc32

MAGIC = b"RRL1"
_PREFIX = struct.Struct("<4sIQ")
_LEN = struct.Struct("<Q")
_CRC = struct.Struct("<I")
MAX_FRAMES = 1024
#: refuse to read records claiming more than this (a corrupt length field must not allocate TBs).
MAX_RECORD_BYTES = 4 * 1024**3


def _as_view(frame: Any) -> memoryview:
    return memoryview(getattr(frame, "buffer", frame)).cast("B")


def record_bytes_prefix(frames: Sequence[Any]) -> tuple[bytes, list[memoryview], bytes]:
    """Prefix, frame views and CRC trailer of one record (written in this order)."""
    views = [_as_view(f) for f in frames]
    prefix = _PREFIX.pack(MAGIC, len(views), sum(v.nbytes for v in views)) + b"".join(_LEN.pack(v.nbytes) for v in views)
    crc = crc32c(prefix)
    for v in views:
        crc = crc32c(v, crc)
    return prefix, views, _CRC.pack(crc)


def write_record(f, frames: Sequence[Any]) -> int:
    """Append one record to the open binary file ``f``; returns the bytes written."""
    prefix, views, trailer = record_bytes_prefix(frames)
    f.write(prefix)
    for v in views:
        f.write(v)
    f.write(trailer)
    return len(prefix) + sum(v.nbytes for v in views) + len(trailer)


def write_record_file(path: Path, frames: Sequence[Any], fsync: bool = False) -> None:
    """Write one record to ``path`` atomically (temporary file + rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write_record(f, frames)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def read_records(path: Path) -> Iterator[tuple[list[memoryview], int]]:
    """Yield ``(frames, end_offset)`` for each complete, CRC-valid record of one file.

    Stops silently at the first torn or corrupt record (use :func:`valid_length` /
    :func:`repair_segment` to find or drop it). Frames are views into one bytes object per record.
    """
    with open(path, "rb") as f:
        offset = 0
        while True:
            head = f.read(_PREFIX.size)
            if len(head) < _PREFIX.size:
                return
            magic, n, payload = _PREFIX.unpack(head)
            if magic != MAGIC or n > MAX_FRAMES or payload > MAX_RECORD_BYTES:
                return
            lens_raw = f.read(_LEN.size * n)
            if len(lens_raw) < _LEN.size * n:
                return
            lens = [_LEN.unpack_from(lens_raw, i * _LEN.size)[0] for i in range(n)]
            if sum(lens) != payload:
                return
            body = f.read(payload + _CRC.size)
            if len(body) < payload + _CRC.size:
                return
            crc = crc32c(head + lens_raw)
            crc = crc32c(memoryview(body)[:payload], crc)
            if _CRC.unpack_from(body, payload)[0] != crc:
                return
            view = memoryview(body)
            frames, pos = [], 0
            for length in lens:
                frames.append(view[pos:pos + length])
                pos += length
            offset += len(head) + len(lens_raw) + len(body)
            yield frames, offset


def read_record_file(path: Path) -> list[memoryview] | None:
    """The frames of a one-record file, or None when it is torn or corrupt."""
    for frames, _ in read_records(path):
        return frames
    return None


def valid_length(path: Path) -> int:
    """Byte length of the longest prefix of ``path`` made of complete, valid records."""
    end = 0
    for _, end in read_records(path):
        pass
    return end


def repair_segment(path: Path) -> int:
    """Truncate a torn or corrupt tail of ``path``; returns the number of bytes dropped."""
    size = path.stat().st_size
    good = valid_length(path)
    if good < size:
        with open(path, "r+b") as f:
            f.truncate(good)
    return size - good


def read_log(directory: Path) -> Iterator[list[memoryview]]:
    """Every complete record of a :class:`SegmentLog` directory, in order, read only.

    For readers of another process's log (``robot-rl view``, ``export-dataset``, ``train-bc
    --interventions-from``): nothing is created, opened for writing or repaired, so a learner still
    appending to the log is never disturbed; a torn last record (one being written now, or left by a
    crash) is skipped. A missing directory holds no records.
    """
    directory = Path(directory)
    for seg in sorted(directory.glob("log_*.rrl")):
        for frames, _ in read_records(seg):
            yield frames


class SegmentLog:
    """Append-only log of records in numbered segment files of one directory.

    Args:
        directory: where the segments live (created if missing).
        segment_bytes: start a new segment once the current one is larger than this.
        fsync: ``os.fsync`` after every record (survives power loss, costs throughput); without
            it records are handed to the OS, which survives any crash of the process itself.

    Opening repairs a torn tail of the last segment (a record the crashed writer never
    finished, hence never acknowledged): only the log's writer may open it; readers use
    :func:`read_log`.
    """

    def __init__(self, directory: Path, segment_bytes: int = 1 << 30, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes, self.fsync = int(segment_bytes), fsync
        self.repaired_bytes = 0
        segs = self.segments()
        if segs:
            self.repaired_bytes = repair_segment(segs[-1])
        self._index = int(segs[-1].stem.split("_")[1]) if segs else 0
        self._file = open(self._path(self._index), "ab")
        self.bytes_written = 0

    def _path(self, index: int) -> Path:
        return self.directory / f"log_{index:06d}.rrl"

    def segments(self) -> list[Path]:
        """Segment files in order."""
        return sorted(self.directory.glob("log_*.rrl"))

    def append(self, frames: Sequence[Any]) -> None:
        """Append one message's frames and hand them to the OS (and the disk with ``fsync``)."""
        if self._file.tell() > self.segment_bytes:
            self._file.close()
            self._index += 1
            self._file = open(self._path(self._index), "ab")
        self.bytes_written += write_record(self._file, frames)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def cut(self, keep_records: int, aside_dir: Path) -> Path | None:
        """Keep the first ``keep_records`` records; move every later one into ``aside_dir``.

        Nothing is deleted: the records after the cut are copied, byte for byte and in order, into
        segment files of ``aside_dir`` (a SegmentLog directory of its own, readable the same way)
        before the log is truncated. Used when a deterministic run resumes from a checkpoint taken
        after ``keep_records`` records and will produce the later ones again.

        Returns:
            ``aside_dir`` when records were moved, else None.
        """
        count, cut_at = 0, None  # (segment index in the list, byte offset)
        segs = self.segments()
        for i, seg in enumerate(segs):
            if count == keep_records:
                cut_at = (i, 0)
                break
            for _, end in read_records(seg):
                count += 1
                if count == keep_records:
                    cut_at = (i, end)
                    break
            if cut_at is not None:
                break
        if cut_at is None:
            return None
        i, offset = cut_at
        tail = [(segs[i], offset)] + [(s, 0) for s in segs[i + 1:]]
        if all(s.stat().st_size <= off for s, off in tail):
            return None
        self._file.close()
        aside_dir = Path(aside_dir)
        n = 0
        while aside_dir.exists():
            n += 1
            aside_dir = aside_dir.with_name(f"{aside_dir.name.split('.')[0]}.{n}")
        aside_dir.mkdir(parents=True)
        tail = [(seg, off) for seg, off in tail if seg.stat().st_size > off]  # no empty aside files
        for k, (seg, off) in enumerate(tail):
            with open(seg, "rb") as src, open(aside_dir / f"log_{k:06d}.rrl", "wb") as dst:
                src.seek(off)
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
        with open(segs[i], "r+b") as f:
            f.truncate(offset)
        for seg in segs[i + 1:]:
            seg.unlink()
        self._index = int(segs[i].stem.split("_")[1])
        self._file = open(self._path(self._index), "ab")
        return aside_dir

    def __iter__(self) -> Iterator[list[memoryview]]:
        """Every record in order (reads the files; safe while appending)."""
        for seg in self.segments():
            for frames, _ in read_records(seg):
                yield frames

    def close(self) -> None:
        """Close the current segment. Idempotent."""
        if not self._file.closed:
            self._file.close()
