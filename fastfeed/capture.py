"""Capture and replay of raw WebSocket payloads.

A capture is an append-only file holding every payload a client received, exactly as it
arrived (zlib bytes or plain JSON text), with its local receive time and frame type.

File format (version 2; version 1 files are read too; all integers little-endian)::

    file header   16 bytes   magic b"FFCAP\\x00\\r\\n" (8s), version u16 = 2, flags u16 = 0,
                             meta_len u32 (at most 1 MiB)
    metadata      meta_len   UTF-8 JSON object, the first recording session:
                             {"url": str, "start_ns": int, "created_by": str,
                              "symbols": [str, ...], "channels": [str, ...], ...any extra keys}
    records       repeated   recv_ns i64 (time.time_ns() at receive), length u32,
                             type u8, flags u8 = 0, reserved u16 = 0, crc32 u32 (zlib.crc32
                             of the payload), then ``length`` payload bytes

Record types: 1 = TEXT and 2 = BINARY (the WebSocket opcode of a received payload, at most
:data:`MAX_PAYLOAD` bytes), 16 = SESSION (version 2): the metadata object of a recording
session appended later (``CaptureWriter(mode="a")``), same keys as the file header,
``recv_ns`` = its ``start_ns``. Readers fold the sessions into :attr:`CaptureReader.header`:
the symbols and channels are the union over all sessions, ``start_ns`` the earliest start,
``end_ns`` the latest receive time of a record. Nothing in the file counts records or
states an end time, so no crash can leave a header claiming more than the file holds.

A record is 20 bytes of header plus its payload; there is no index or footer, so a writer
only ever appends. A **torn tail** is what a crash mid-write leaves: the bytes after the
last good record are a prefix of one record, short of its declared length (its header
declares a plausible type and a length within the limit, no non-zero byte lies beyond its
declared extent, the payload present does not match its CRC, and its last declared bytes
are missing or zero: a complete final record whose CRC fails is corruption, never a torn
tail), possibly followed or replaced by zero bytes (a file
extended by the filesystem whose data never landed), and no valid record (good header and
CRC) starts anywhere in it. Readers skip a torn tail and report it
(``CaptureReader.torn_bytes``); ``CaptureWriter(mode="a")`` cuts off exactly that tail and
nothing else. Any other damage is **corruption**: a :class:`CaptureError` naming the byte
offset and the record number (by default; ``on_corrupt="skip"`` resynchronises on the next
valid record, skips the damaged bytes and reports them in ``CaptureReader.damaged``), and
``CaptureWriter(mode="a")`` refuses to touch the file.

Replay (:func:`replay`) feeds a capture through an :class:`fastfeed.Engine` at full speed
(optionally with a progress bar) or paced at the recorded speed. The local exchange can also
serve a capture over a real socket (``ExchangeConfig(capture=...)``).
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import operator
import os
import struct
import sys
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

import numpy as np
import orjson

from .errors import CaptureClosed, CaptureError, CaptureRangeError, CaptureRefused  # importable from here too

try:  # POSIX: one writer per capture file at a time
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FILE_HEADER",
    "FRAME_BINARY",
    "FRAME_TEXT",
    "INDEX_DTYPE",
    "MAGIC",
    "MAX_PAYLOAD",
    "RECORD_HEADER",
    "RECORD_SESSION",
    "SUPPORTED_VERSIONS",
    "VERSION",
    "CaptureError",
    "CaptureHeader",
    "CaptureReader",
    "CaptureWriter",
    "Record",
    "ReplayStats",
    "record",
    "replay",
]

log = logging.getLogger("fastfeed.capture")

MAGIC = b"FFCAP\x00\r\n"
#: The format version this module writes.
VERSION = 2
#: The format versions this module reads (and appends to; a version 1 file becomes 2).
SUPPORTED_VERSIONS = (1, 2)
FRAME_TEXT = 1
FRAME_BINARY = 2
#: Record type of a session record (metadata of an appended recording session).
RECORD_SESSION = 16
#: Largest payload a record may hold; a longer declared length is corruption.
MAX_PAYLOAD = 1 << 26
#: magic, version, flags, meta_len
FILE_HEADER = struct.Struct("<8sHHI")
#: recv_ns, length, frame type, flags, reserved, crc32
RECORD_HEADER = struct.Struct("<qIBBHI")
#: One row of :meth:`CaptureReader.index`.
INDEX_DTYPE = np.dtype([("offset", "<i8"), ("length", "<u4"), ("recv_ns", "<i8"), ("msg_type", "u1")])
_MAX_META = 1 << 20
_HSIZE = RECORD_HEADER.size
_DATA_TYPES = (FRAME_TEXT, FRAME_BINARY)
_RECORD_TYPES = (FRAME_TEXT, FRAME_BINARY, RECORD_SESSION)
#: Bytes 12..15 of a plausible record header (type, flags, reserved), to find the next one.
_RESYNC_PATTERNS = tuple(bytes((t, 0, 0, 0)) for t in _RECORD_TYPES)
_INT64_MAX = (1 << 63) - 1
_STR_FIELDS = ("url", "created_by")
_LIST_FIELDS = ("symbols", "channels")
OnCorrupt = Literal["raise", "skip"]


@dataclass(frozen=True)
class CaptureHeader:
    """What a capture says about itself, with every appended session folded in.

    ``version`` (format), ``url`` and ``meta`` of the first session (``meta`` with
    ``symbols``, ``channels`` and ``start_ns`` replaced by the merged values), ``start_ns``
    the earliest session start (ns since the epoch), ``symbols`` the union of all sessions'
    symbols in order of appearance, ``end_ns`` the latest receive time of a record (0 if
    none; derived from the records, never stored), ``sessions`` each session's own metadata
    in file order (the file header's first)."""

    version: int
    url: str
    start_ns: int
    meta: dict[str, Any] = field(default_factory=dict)
    symbols: tuple[str, ...] = ()
    end_ns: int = 0
    sessions: tuple[dict[str, Any], ...] = ()


class Record(NamedTuple):
    """One captured payload. ``payload`` is a read-only memoryview into the mapped file,
    valid until the reader is closed (copy it with ``bytes()`` to keep it longer)."""

    recv_ns: int
    msg_type: int
    payload: memoryview


def _frame_type(msg_type: Any) -> int:
    value = int(getattr(msg_type, "value", msg_type))
    if value not in (FRAME_TEXT, FRAME_BINARY):
        raise CaptureRefused(f"frame type must be TEXT (1) or BINARY (2), not {msg_type!r}", "bad_frame_type")
    return value


# ---------------------------------------------------------------------------- metadata
def _printable(text: str, limit: int = 4096) -> bool:
    """No control, format (bidi overrides, zero-width...) or separator characters, and
    at most ``limit`` characters: header text is shown on terminals."""
    return len(text) <= limit and not any(
        ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or unicodedata.category(c) in ("Cf", "Zl", "Zp") for c in text
    )


def _meta_problem(meta: Any) -> str | None:
    """Why ``meta`` is not an acceptable session metadata object (``None`` if it is)."""
    if not isinstance(meta, dict):
        return f"metadata is not an object but {type(meta).__name__}"
    for key in _STR_FIELDS:
        if key in meta:
            value = meta[key]
            if not isinstance(value, str):
                return f"{key!r} must be a string, not {type(value).__name__}"
            if not _printable(value):
                return f"{key!r} holds control characters or is over-long (> 4096)"
    if "start_ns" in meta:
        value = meta["start_ns"]
        if not isinstance(value, int) or isinstance(value, bool):
            return f"'start_ns' must be an integer, not {type(value).__name__}"
        if not 0 <= value <= _INT64_MAX:
            return f"'start_ns' out of range: {value}"
    for key in _LIST_FIELDS:
        if key in meta:
            value = meta[key]
            if not isinstance(value, list):
                return f"{key!r} must be a list of strings, not {type(value).__name__}"
            for item in value:
                if not isinstance(item, str):
                    return f"{key!r} must be a list of strings, not hold {type(item).__name__}"
                if not item or not _printable(item, 64):
                    return f"{key!r} holds an empty or over-long (> 64) name, or control characters"
    return None


def _decode_meta(blob: bytes | memoryview, where: str) -> dict[str, Any]:
    try:
        meta = orjson.loads(bytes(blob))
    except orjson.JSONDecodeError as exc:
        raise CaptureError(f"{where}: damaged capture header: {exc}") from None
    if not isinstance(meta, dict):
        raise CaptureError(f"{where}: damaged capture header (metadata is not an object)")
    problem = _meta_problem(meta)
    if problem is not None:
        raise CaptureError(f"{where}: bad capture header: {problem}")
    return meta


def _session_meta(url: Any, start_ns: Any, meta: Any) -> tuple[dict[str, Any], bytes]:
    """The metadata object of a new session and its JSON, checked like a reader will."""
    from . import __version__

    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    if isinstance(start_ns, bool):
        raise TypeError("start_ns must be an int, not bool")
    start_ns = operator.index(start_ns)
    if meta is not None and not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, not {type(meta).__name__}")
    obj: dict[str, Any] = {"url": url, "start_ns": start_ns, "created_by": f"fastfeed {__version__}"}
    if meta:
        obj.update({k: v for k, v in meta.items() if k not in ("url", "start_ns")})
    problem = _meta_problem(obj)
    if problem is not None:
        raise CaptureRefused(f"capture metadata: {problem}", "bad_meta")
    blob = orjson.dumps(obj)
    if len(blob) > _MAX_META:
        raise CaptureRefused("capture metadata too large", "bad_meta")
    return obj, blob


def _merge(version: int, sessions: Sequence[dict[str, Any]], end_ns: int) -> CaptureHeader:
    """The header a reader shows: the first session, with every later one folded in."""
    first = sessions[0]
    starts = [s["start_ns"] for s in sessions if s.get("start_ns")]
    start = min(starts) if starts else int(first.get("start_ns", 0))
    meta = dict(first)
    meta["start_ns"] = start
    symbols: tuple[str, ...] = ()
    for key in _LIST_FIELDS:
        if any(key in s for s in sessions):
            merged = list(dict.fromkeys(x for s in sessions for x in s.get(key, ())))
            meta[key] = merged
            if key == "symbols":
                symbols = tuple(merged)
    return CaptureHeader(version, str(first.get("url", "")), start, meta, symbols, end_ns, tuple(sessions))


def _decode_header(buf: bytes | mmap.mmap | memoryview, path: object) -> tuple[CaptureHeader, int]:
    if len(buf) < FILE_HEADER.size:
        raise CaptureError(f"{path}: not a capture file (too short for a header)")
    magic, version, flags, meta_len = FILE_HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise CaptureError(f"{path}: not a capture file (bad magic)")
    if version not in SUPPORTED_VERSIONS:
        raise CaptureError(f"{path}: unsupported capture format version {version}")
    if flags:
        raise CaptureError(f"{path}: unsupported capture header flags {flags:#x}")
    end = FILE_HEADER.size + meta_len
    if meta_len > _MAX_META or end > len(buf):
        raise CaptureError(
            f"{path}: truncated capture header (metadata of {meta_len} bytes, file of {len(buf)})"
        )
    meta = _decode_meta(buf[FILE_HEADER.size : end], str(path))
    return _merge(version, [meta], 0), end


# ---------------------------------------------------------------------------- writer
def _lock(fd: int, path: Path) -> None:
    if fcntl is None:  # pragma: no cover - Windows
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise CaptureError(f"{path}: another capture writer has this file open") from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class CaptureWriter:
    """Append payloads to a capture file.

    ``mode``: ``"x"`` create (fail if the file exists), ``"w"`` overwrite, ``"a"`` append to
    an existing capture or create it. Appending first reads the whole file, checking every
    record's structure and CRC: corruption anywhere raises :class:`CaptureError` (offset and
    record number in the message) and leaves the file untouched; a torn tail (see the module
    docstring) is cut off, and only that (``truncated`` tells how many bytes). A version 1
    file is marked version 2; then a session record holding ``url``, ``start_ns`` and
    ``meta`` of this session is appended, so the header readers show stays true (symbols
    united, earliest start). ``header`` is that merged header; ``start_offset`` is where
    this writer's bytes begin (the session record, or the first record of a new file),
    which :meth:`discard` cuts back to. The file is locked
    (``flock``) while open, so a second writer gets :class:`CaptureError` instead of
    interleaving records or cutting off a tail that is still being written.

    Records are buffered (``buffering`` bytes); :meth:`flush` pushes them to the OS,
    :meth:`close` also ``fsync``s if ``fsync=True``. Use as a context manager.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        url: str = "",
        *,
        start_ns: int | None = None,
        meta: dict[str, Any] | None = None,
        mode: Literal["x", "w", "a"] = "x",
        buffering: int = 1 << 20,
        fsync: bool = False,
    ) -> None:
        if mode not in ("x", "w", "a"):
            raise ValueError("mode must be 'x', 'w' or 'a'")
        self.path = Path(path)
        self.fsync = fsync
        self.records = 0
        self.bytes_written = 0
        self.truncated = 0
        self.start_offset = 0
        self._pack = RECORD_HEADER.pack
        self._crc = zlib.crc32
        start = time.time_ns() if start_ns is None else start_ns
        session, blob = _session_meta(url, start, meta)
        flags = {"x": os.O_CREAT | os.O_EXCL, "w": os.O_CREAT, "a": os.O_CREAT}[mode]
        fd = os.open(self.path, os.O_RDWR | flags | getattr(os, "O_BINARY", 0), 0o666)
        try:
            _lock(fd, self.path)
            size = os.fstat(fd).st_size
            if mode == "a" and size > 0:
                self.header = self._prepare_append(fd, session, blob)
            else:
                os.ftruncate(fd, 0)
                _write_all(fd, FILE_HEADER.pack(MAGIC, VERSION, 0, len(blob)) + blob)
                self.start_offset = FILE_HEADER.size + len(blob)
                self.header = _merge(VERSION, [session], 0)
            os.lseek(fd, 0, os.SEEK_END)
            self._f: IO[bytes] = open(fd, "wb", buffering=buffering)
        except BaseException:
            os.close(fd)
            raise

    def _prepare_append(self, fd: int, session: dict[str, Any], blob: bytes) -> CaptureHeader:
        """Validate the existing capture, cut off a proven torn tail, add a session record."""
        reader = CaptureReader._from_fd(self.path, fd)
        try:
            good_end = reader.scan_end()  # raises CaptureError on corruption, nothing written yet
            torn = reader.torn_bytes
            old = reader.header
        finally:
            reader.close()
        if torn:
            log.warning(
                "%s: cutting off a torn tail of %d bytes at offset %d before appending",
                self.path,
                torn,
                good_end,
            )
            os.ftruncate(fd, good_end)
            self.truncated = torn
        if old.version < VERSION:  # the file will hold a session record: mark it version 2
            os.pwrite(fd, struct.pack("<H", VERSION), 8)
        start = session["start_ns"]
        rec = self._pack(start, len(blob), RECORD_SESSION, 0, 0, zlib.crc32(blob)) + blob
        self.start_offset = os.lseek(fd, 0, os.SEEK_END)
        _write_all(fd, rec)
        return _merge(VERSION, [*old.sessions, session], old.end_ns)

    @property
    def closed(self) -> bool:
        return self._f.closed

    def write(
        self,
        payload: bytes | bytearray | memoryview | str,
        recv_ns: int | None = None,
        msg_type: Any = FRAME_BINARY,
    ) -> None:
        """Append one payload (at most :data:`MAX_PAYLOAD` bytes, else
        :class:`~fastfeed.errors.CaptureRefused`, a ``ValueError``).
        ``recv_ns`` defaults to ``time.time_ns()``; ``msg_type`` is 1/2,
        ``FRAME_TEXT``/``FRAME_BINARY`` or a ``picows.WSMsgType``. A ``str`` payload is
        stored as UTF-8."""
        if isinstance(payload, str):
            payload = payload.encode()
        typ = msg_type if msg_type is FRAME_BINARY or msg_type is FRAME_TEXT else _frame_type(msg_type)
        n = len(payload) if not isinstance(payload, memoryview) else payload.nbytes
        if n > MAX_PAYLOAD:
            raise CaptureRefused(
                f"payload of {n} bytes exceeds the capture limit of {MAX_PAYLOAD}", "too_large"
            )
        f = self._f
        f.write(self._pack(time.time_ns() if recv_ns is None else recv_ns, n, typ, 0, 0, self._crc(payload)))
        f.write(payload)
        self.records += 1
        self.bytes_written += _HSIZE + n

    def flush(self) -> None:
        """Hand buffered records to the OS."""
        self._f.flush()

    def close(self) -> None:
        """Flush (and fsync if asked) and close. Safe to call twice."""
        if self._f.closed:
            return
        try:
            self._f.flush()
            if self.fsync:
                os.fsync(self._f.fileno())
        finally:
            self._f.close()

    def discard(self) -> None:
        """Take back everything this writer wrote and close: the file is cut back to
        ``start_offset`` (an appending writer's session record and records go, a torn tail
        it cut off stays cut off; a new file keeps its header only). For a session that
        failed before recording anything (the caller may then delete a new file)."""
        if self._f.closed:
            return
        try:
            self._f.flush()
            os.ftruncate(self._f.fileno(), self.start_offset)
            self.records = self.bytes_written = 0
        finally:
            self.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- reader
class _Walk:
    """What one pass over the records found."""

    __slots__ = ("complete", "damaged", "end_ns", "good_end", "sessions", "torn_bytes")

    def __init__(self, first: dict[str, Any], data_start: int) -> None:
        self.torn_bytes = 0
        self.good_end = data_start
        self.damaged: list[tuple[int, int]] = []
        self.sessions: list[dict[str, Any]] = [first]
        self.end_ns = 0
        self.complete = False


class CaptureReader:
    """Stream the records of a capture file through a read-only memory map.

    Iterating yields :class:`Record` objects (TEXT/BINARY payloads) in file order; session
    records are folded into :attr:`header` (``file_header`` is what the file header alone
    says: the first session). ``verify`` checks every payload's CRC.

    Damage (see the module docstring): a torn tail is skipped, logged and reported in
    ``torn_bytes`` (0 if the file ended cleanly). Corruption raises :class:`CaptureError`
    naming the offset and record number after the good records before it
    (``on_corrupt="raise"``, the default), or with ``on_corrupt="skip"`` is logged and
    skipped up to the next valid record and listed in ``damaged`` as
    ``(offset, length)`` pairs (``skipped_bytes`` is their sum). These attributes describe
    the last complete or ongoing pass (iteration, :meth:`index`, :meth:`scan_end`).

    Payload memoryviews stay valid until :meth:`close`. The file must not be truncated by
    someone else while it is mapped.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, verify: bool = True, on_corrupt: OnCorrupt = "raise"
    ) -> None:
        self._setup(path, verify, on_corrupt)
        with open(self.path, "rb") as f:
            self._map(f.fileno())

    @classmethod
    def _from_fd(cls, path: str | os.PathLike[str], fd: int) -> CaptureReader:
        """A strict, verifying reader over an already open file descriptor (for append)."""
        self = cls.__new__(cls)
        self._setup(path, True, "raise")
        self._map(fd)
        return self

    def _setup(self, path: str | os.PathLike[str], verify: bool, on_corrupt: str) -> None:
        if on_corrupt not in ("raise", "skip"):
            raise ValueError("on_corrupt must be 'raise' or 'skip'")
        self.path = Path(path)
        self.verify = verify
        self.on_corrupt = on_corrupt
        self.torn_bytes = 0
        self.damaged: list[tuple[int, int]] = []
        self._index: np.ndarray | None = None
        self._header: CaptureHeader | None = None
        self._mm: mmap.mmap | None = None
        self._mv: memoryview | None = None

    def _map(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0:
            raise CaptureError(f"{self.path}: empty file, not a capture")
        self._mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        self.size = len(self._mm)
        self._mv = memoryview(self._mm)
        try:
            self.file_header, self.data_start = _decode_header(self._mm, self.path)
        except BaseException:
            self.close()
            raise

    @property
    def header(self) -> CaptureHeader:
        """The merged header (see :class:`CaptureHeader`). The first access walks the
        record headers once (without CRC checks on data records, skipping damage) unless a
        full pass already did; it never raises for damage."""
        if self._header is None:
            st = _Walk(self.file_header.sessions[0], self.data_start)
            for _ in self._walk(st, verify=False, policy="skip", report=False):
                pass
            self._header = _merge(self.file_header.version, st.sessions, st.end_ns)
        return self._header

    @property
    def skipped_bytes(self) -> int:
        """Bytes of corrupt regions skipped (``on_corrupt="skip"``) in the last pass."""
        return sum(n for _, n in self.damaged)

    # ------------------------------------------------------------------ damage
    def _plausible(self, q: int) -> bool:
        """A whole, plausible record header at ``q`` whose extent fits in the file."""
        if q + _HSIZE > self.size:
            return False
        _, length, typ, flags, reserved, _ = RECORD_HEADER.unpack_from(self._mm, q)  # type: ignore[arg-type]
        if flags or reserved or typ not in _RECORD_TYPES:
            return False
        return bool(length <= (_MAX_META if typ == RECORD_SESSION else MAX_PAYLOAD))

    def _valid_at(self, q: int) -> bool:
        """A complete record with a good CRC at ``q``, followed by the end of the file, a
        short tail or another plausible record header (so a few stray bytes inside damaged
        data are not taken for a record)."""
        if not self._plausible(q):
            return False
        _, length, _, _, _, crc = RECORD_HEADER.unpack_from(self._mm, q)  # type: ignore[arg-type]
        stop = q + _HSIZE + length
        if stop > self.size or zlib.crc32(self._mv[q + _HSIZE : stop]) != crc:  # type: ignore[index]
            return False
        return self.size - stop < _HSIZE or self._plausible(stop)

    def _resync(self, start: int, limit: int) -> int | None:
        """Offset of the first valid record starting in ``[start, limit)``, or ``None``."""
        mm = self._mm
        assert mm is not None
        stop = min(self.size, limit + 16)
        nxt = [mm.find(p, start + 12, stop) for p in _RESYNC_PATTERNS]
        while True:
            live = [k for k in nxt if k >= 0]
            if not live:
                return None
            k = min(live)
            if self._valid_at(k - 12):
                return k - 12
            nxt = [mm.find(p, k + 1, stop) if v == k else v for p, v in zip(_RESYNC_PATTERNS, nxt)]

    def _nonzero_end(self, pos: int) -> int:
        """Offset just past the last non-zero byte at or after ``pos`` (``pos`` if none)."""
        mm = self._mm
        assert mm is not None
        hi = self.size
        chunk = 1 << 20
        while hi > pos:
            lo = max(pos, hi - chunk)
            kept = mm[lo:hi].rstrip(b"\0")
            if kept:
                return lo + len(kept)
            hi = lo
        return pos

    def _torn_tail(self, pos: int) -> bool:
        """Whether the bytes from ``pos`` to the end are a proven torn tail: a prefix of one
        record (plausible header fields, nothing non-zero beyond its declared extent, the
        payload present not matching its CRC), or zeros, with no valid record inside."""
        mm, mv, size = self._mm, self._mv, self.size
        assert mm is not None and mv is not None
        p = self._nonzero_end(pos) - pos
        if p == 0:
            return True  # zero-filled: the file was extended but the data never landed
        recv_ns, length, typ, flags, reserved, crc = RECORD_HEADER.unpack(
            mm[pos : pos + _HSIZE].ljust(_HSIZE, b"\0")
        )
        if flags or reserved:
            return False
        if typ not in _RECORD_TYPES and not (typ == 0 and p <= 12):  # type byte absent or zero-filled
            return False
        if length > (_MAX_META if typ == RECORD_SESSION else MAX_PAYLOAD) or p > _HSIZE + length:
            return False  # an absurd length, or data beyond this record's extent
        body = pos + _HSIZE
        for end in {size, pos + p}:  # the payload is all there under a damaged length field?
            if end > body and zlib.crc32(mv[body:end]) == crc:
                return False
        if typ in _RECORD_TYPES and body + length <= size and zlib.crc32(mv[body : body + length]) == crc:
            return False  # a complete, intact record is not torn
        if body + length <= pos + p:
            return False  # all of its bytes landed (the last one non-zero): damaged, not torn
        return self._resync(pos + 1, pos + p) is None

    def _why(self, pos: int) -> str:
        if self.size - pos < _HSIZE:
            return f"only {self.size - pos} bytes left, a record header needs {_HSIZE}"
        _, length, typ, flags, reserved, _ = RECORD_HEADER.unpack_from(self._mm, pos)  # type: ignore[arg-type]
        if typ not in _RECORD_TYPES or flags or reserved:
            return f"bad record header: type {typ}, flags {flags}, reserved {reserved}"
        limit = _MAX_META if typ == RECORD_SESSION else MAX_PAYLOAD
        if length > limit:
            return f"length {length} exceeds the limit of {limit}"
        if pos + _HSIZE + length > self.size:
            return f"length {length} runs {pos + _HSIZE + length - self.size} bytes past the end of the file"
        return f"crc mismatch over {length} payload bytes"

    # ------------------------------------------------------------------ scanning
    def _walk(
        self, st: _Walk, *, verify: bool, policy: str, report: bool
    ) -> Iterator[tuple[int, int, int, int]]:
        """Yield ``(offset_of_payload, length, recv_ns, msg_type)`` of each good TEXT/BINARY
        record, collecting sessions into ``st`` and handling damage per ``policy``."""
        mm, mv = self._mm, self._mv
        if mm is None or mv is None:
            raise CaptureClosed("capture reader is closed")
        end = self.size
        pos = self.data_start
        unpack = RECORD_HEADER.unpack_from
        crc32 = zlib.crc32
        number = 0
        while pos < end:
            number += 1
            bad = end - pos < _HSIZE
            if not bad:
                recv_ns, length, typ, flags, reserved, crc = unpack(mm, pos)
                body = pos + _HSIZE
                stop = body + length
                if typ == FRAME_BINARY or typ == FRAME_TEXT:
                    if not (
                        flags
                        or reserved
                        or length > MAX_PAYLOAD
                        or stop > end
                        or (verify and crc32(mv[body:stop]) != crc)
                    ):
                        if recv_ns > st.end_ns:
                            st.end_ns = recv_ns
                        st.good_end = stop
                        yield body, length, recv_ns, typ
                        pos = stop
                        continue
                elif (
                    typ == RECORD_SESSION
                    and not (flags or reserved)
                    and length <= _MAX_META
                    and stop <= end
                    and crc32(mv[body:stop]) == crc
                ):
                    try:
                        st.sessions.append(
                            _decode_meta(mv[body:stop], f"{self.path}: session record at offset {pos}")
                        )
                    except CaptureError as exc:
                        if policy == "raise":
                            raise CaptureError(
                                f"{exc} (record {number})", offset=pos, record=number
                            ) from None
                        if report:
                            log.warning("%s; skipped", exc)
                        st.damaged.append((pos, stop - pos))
                    pos = st.good_end = stop
                    continue
            # damage at pos: a torn tail, or corruption
            if self._torn_tail(pos):
                st.torn_bytes = end - pos
                if report:
                    log.warning(
                        "%s: torn last record at offset %d (%d bytes) skipped", self.path, pos, st.torn_bytes
                    )
                break
            why = self._why(pos)
            nxt = self._resync(pos + 1, end)
            if policy == "raise":
                more = (
                    f"; valid records resume at offset {nxt}"
                    if nxt is not None
                    else "; no valid record follows"
                )
                raise CaptureError(
                    f"{self.path}: corrupt record at offset {pos} (record {number}: {why}){more}",
                    offset=pos,
                    record=number,
                )
            skip_to = end if nxt is None else nxt
            st.damaged.append((pos, skip_to - pos))
            if report:
                log.warning(
                    "%s: corrupt record at offset %d (record %d: %s); skipped %d bytes",
                    self.path,
                    pos,
                    number,
                    why,
                    skip_to - pos,
                )
            pos = skip_to
        st.complete = True

    def _pass(self) -> Iterator[tuple[int, int, int, int]]:
        """A public pass: its outcome lands in ``torn_bytes``/``damaged`` as it goes."""
        st = self._last = _Walk(self.file_header.sessions[0], self.data_start)
        self.torn_bytes = 0
        self.damaged = st.damaged
        try:
            yield from self._walk(st, verify=self.verify, policy=self.on_corrupt, report=True)
        finally:
            self.torn_bytes = st.torn_bytes
        if self._header is None and st.complete:
            self._header = _merge(self.file_header.version, st.sessions, st.end_ns)

    def __iter__(self) -> Iterator[Record]:
        mv = self._mv
        for body, length, recv_ns, typ in self._pass():
            yield Record(recv_ns, typ, mv[body : body + length])  # type: ignore[index]

    def scan_end(self) -> int:
        """File offset just past the last good record (walks the whole file)."""
        for _ in self._pass():
            pass
        return self._last.good_end

    def index(self) -> np.ndarray:
        """All good records as a structured array (:data:`INDEX_DTYPE`: payload offset,
        length, recv_ns, msg_type). Built once by a full scan, then cached."""
        if self._index is None:
            rows = list(self._pass())
            idx = np.empty(len(rows), dtype=INDEX_DTYPE)
            if rows:
                arr = np.array(rows, dtype=np.int64)
                idx["offset"] = arr[:, 0]
                idx["length"] = arr[:, 1]
                idx["recv_ns"] = arr[:, 2]
                idx["msg_type"] = arr[:, 3]
            self._index = idx
        return self._index

    def __len__(self) -> int:
        return len(self.index())

    def payload(self, offset: int, length: int) -> memoryview:
        """The payload at a given offset (as found in :meth:`index`); ``ValueError`` if
        the range is not inside the file's records."""
        if self._mv is None:
            raise CaptureClosed("capture reader is closed")
        offset, length = int(offset), int(length)
        if offset < self.data_start or length < 0 or offset + length > self.size:
            raise CaptureRangeError(f"payload range {offset}+{length} is outside the records of {self.path}")
        return self._mv[offset : offset + length]

    # ------------------------------------------------------------------ lifetime
    @property
    def closed(self) -> bool:
        return self._mm is None

    def close(self) -> None:
        """Unmap the file. If payload views are still referenced elsewhere the mapping is
        released when the last of them goes away."""
        mv, mm = self._mv, self._mm
        self._mv = self._mm = None
        if mv is not None:
            mv.release()
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                log.debug("%s: payload views still alive; the mapping closes with them", self.path)

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- replay
@dataclass
class ReplayStats:
    """Outcome of :func:`replay`."""

    frames: int = 0
    bytes: int = 0
    errors: int = 0
    error_reasons: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    first_ns: int = 0
    last_ns: int = 0
    torn_bytes: int = 0
    #: ``(offset, length)`` of each corrupt region skipped (``on_corrupt="skip"``).
    damaged: list[tuple[int, int]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Frames per second of wall time."""
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0


class _Progress:
    """A progress display over bytes of the capture: rich if importable, else plain lines."""

    def __init__(self, total: int, stream: IO[str] | None, label: str) -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self._last = 0.0
        self._rich: Any = None
        self._task: Any = None
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
        except ImportError:  # pragma: no cover - rich is optional
            return
        self._rich = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
            transient=False,
        )
        self._rich.start()
        self._task = self._rich.add_task(label, total=self.total)

    def update(self, done: int, frames: int) -> None:
        if self._rich is not None:
            self._rich.update(self._task, completed=done)
            return
        now = time.monotonic()
        if now - self._last >= 0.5:
            self._last = now
            self.stream.write(f"\r{self.label}: {100.0 * done / self.total:5.1f}% {frames} frames")
            self.stream.flush()

    def close(self, done: int, frames: int) -> None:
        if self._rich is not None:
            self._rich.update(self._task, completed=done)
            self._rich.stop()
        else:
            self.stream.write(f"\r{self.label}: {100.0 * done / self.total:5.1f}% {frames} frames\n")
            self.stream.flush()


def replay(
    source: str | os.PathLike[str] | CaptureReader,
    engine: Any = None,
    *,
    speed: float | None = None,
    progress: bool = False,
    progress_file: IO[str] | None = None,
    on_message: Callable[[Any], None] | None = None,
    stop_on_error: bool = False,
    on_corrupt: OnCorrupt = "raise",
) -> ReplayStats:
    """Feed every payload of a capture through ``engine`` (default: a new
    ``fastfeed.Engine()``), passing the recorded receive time as ``recv_ns``.

    ``speed=None`` runs at full speed; ``speed=1.0`` reproduces the recorded pacing,
    ``2.0`` twice as fast. Frames the engine rejects (``FastfeedError``) are counted in
    ``errors``/``error_reasons`` and skipped unless ``stop_on_error``. ``on_message`` gets
    every non-``None`` result of ``feed`` (replies, private pushes; ticker pushes are stored
    in the engine's ticker table, ``engine.tickers`` / ``engine.ticker_history``).
    ``on_corrupt`` is passed to the :class:`CaptureReader` opened for a path source (an
    open reader keeps its own): ``"raise"`` stops at corruption with :class:`CaptureError`
    after feeding the good records before it, ``"skip"`` skips it (``stats.damaged``).
    """
    from .errors import FastfeedError

    if speed is not None and speed <= 0:
        raise ValueError("speed must be > 0 or None")
    if engine is None:
        from . import Engine

        engine = Engine()
    own = not isinstance(source, CaptureReader)
    reader: CaptureReader = (
        source if isinstance(source, CaptureReader) else CaptureReader(source, on_corrupt=on_corrupt)
    )
    stats = ReplayStats()
    bar = _Progress(reader.size, progress_file, f"replay {reader.path.name}") if progress else None
    feed = engine.feed
    t_start = time.perf_counter()
    wall0 = time.perf_counter_ns()
    first = None
    hsize = RECORD_HEADER.size
    done = reader.data_start
    try:
        for rec in reader:
            recv_ns = rec.recv_ns
            if first is None:
                first = stats.first_ns = recv_ns
            if speed is not None:
                due = wall0 + int((recv_ns - first) / speed)
                wait = due - time.perf_counter_ns()
                if wait > 200_000:
                    time.sleep(wait / 1e9)
            try:
                result = feed(rec.payload, recv_ns)
            except FastfeedError as exc:
                stats.errors += 1
                reason = getattr(exc, "reason", type(exc).__name__)
                stats.error_reasons[reason] = stats.error_reasons.get(reason, 0) + 1
                if stop_on_error:
                    raise
                result = None
            if result is not None and on_message is not None:
                on_message(result)
            n = len(rec.payload)
            stats.frames += 1
            stats.bytes += n
            stats.last_ns = recv_ns
            done += hsize + n
            if bar is not None and not stats.frames & 0x3FF:
                bar.update(done, stats.frames)
    finally:
        stats.elapsed = time.perf_counter() - t_start
        stats.torn_bytes = reader.torn_bytes
        stats.damaged = list(reader.damaged)
        if bar is not None:
            bar.close(done, stats.frames)
        if own:
            reader.close()
    return stats


# ---------------------------------------------------------------------------- record
async def record(
    url: str,
    path: str | os.PathLike[str],
    requests: Sequence[tuple[str, Sequence[Any]]] = (),
    *,
    duration: float | None = None,
    max_frames: int | None = None,
    ping_interval: float = 20.0,
    meta: dict[str, Any] | None = None,
    mode: Literal["x", "w", "a"] = "x",
    reconnect: bool = False,
    connect_timeout: float = 30.0,
) -> int:
    """Connect to ``url``, send ``requests`` (``(method, params)`` pairs, e.g.
    ``("depth.subscribe", ["BTC_USDT"])``), and record every received payload into
    ``path`` until ``duration`` seconds passed, ``max_frames`` were recorded or the server
    closed the connection. Sends ``server.ping`` every ``ping_interval`` seconds.
    Returns the number of recorded frames.

    This is the real client with a capture sink, nothing else:
    ``Feed(url, sinks=[CaptureSink(path, mode=mode, meta=meta)])``
    (:mod:`fastfeed.sinks`); the file's session record holds ``url`` and ``meta``.
    Subscriptions of public channels go through the feed (``feed.subscribe_*``), other
    requests through ``feed.request``; a refused one raises its
    :class:`~fastfeed.protocol.RequestError` (what was recorded so far stays in the file).
    ``reconnect=True`` keeps recording across lost connections (the feed reconnects
    with backoff and resubscribes) instead of stopping. A first connection that fails for
    ``connect_timeout`` s raises :class:`~fastfeed.errors.ConnectFailed` (a
    ``ConnectionError``); the file then holds only its header.
    """
    from . import protocol
    from .client import ConnectionEvent, Feed, FeedOptions
    from .sinks import CaptureSink

    if max_frames is not None and max_frames < 1:
        raise ValueError("max_frames must be >= 1")
    stop = asyncio.Event()

    def on_event(ev: ConnectionEvent) -> None:
        if ev.kind == "disconnected" and not reconnect:
            stop.set()  # the server closed the connection (or it was lost): the recording ends

    sink = CaptureSink(path, mode=mode, meta=meta, max_records=max_frames, on_full=stop.set)
    opts = FeedOptions(
        ping_interval=ping_interval,
        connect_timeout=connect_timeout,
        data_timeout=60.0 if reconnect else None,
        max_age=110 * 60.0 if reconnect else None,
        trade_capacity=1024,
    )
    feed = Feed(url, options=opts, on_event=on_event, sinks=[sink])
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await feed.start()
        for method, params in requests:
            channel, _, verb = method.partition(".")
            if verb == "subscribe" and channel in protocol.PUBLIC_CHANNELS:
                call = feed._subscribe(channel, list(params))
            else:
                call = feed.request(method, list(params))
            task = asyncio.ensure_future(call)
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # stopped first (closed, max_frames): the reply does not matter
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                break
            task.result()
        timeout = None if duration is None else max(0.0, duration)
        await asyncio.wait({stopped}, timeout=timeout)
    finally:
        stopped.cancel()
        await asyncio.gather(stopped, return_exceptions=True)
        await feed.close()  # closes the sink: flushed and closed
    return sink.records
