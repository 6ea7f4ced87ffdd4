"""Capture and replay of raw WebSocket payloads.

A capture is an append-only file holding every payload a client received, exactly as it
arrived (zlib bytes or plain JSON text), with its local receive time and frame type.

File format (version 1, all integers little-endian)::

    file header   16 bytes   magic b"FFCAP\\x00\\r\\n" (8s), version u16 = 1, flags u16 = 0,
                             meta_len u32
    metadata      meta_len   UTF-8 JSON object: {"url": str, "start_ns": int,
                             "created_by": str, ...any extra keys}
    records       repeated   recv_ns i64 (time.time_ns() at receive), length u32,
                             frame type u8 (1 = TEXT, 2 = BINARY: the WebSocket opcode),
                             flags u8 = 0, reserved u16 = 0, crc32 u32 (zlib.crc32 of the
                             payload), then ``length`` payload bytes

A record is 20 bytes of header plus its payload; there is no index or footer, so a writer
only ever appends. Readers memory-map the file and stream records; a torn last record
(crash mid-write: short header, short payload, a zero-filled tail, or a bad CRC on the
final record) is detected, logged and skipped (``CaptureReader.torn_bytes``). Damage
followed by further data is reported as :class:`CaptureError` after the good records.

Replay (:func:`replay`) feeds a capture through an :class:`fastfeed.Engine` at full speed
(optionally with a progress bar) or paced at the recorded speed. The local exchange can also
serve a capture over a real socket (``ExchangeConfig(capture=...)``).
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Literal, NamedTuple, Sequence

import numpy as np
import orjson

__all__ = [
    "MAGIC",
    "VERSION",
    "FRAME_TEXT",
    "FRAME_BINARY",
    "FILE_HEADER",
    "RECORD_HEADER",
    "INDEX_DTYPE",
    "CaptureError",
    "CaptureHeader",
    "Record",
    "CaptureWriter",
    "CaptureReader",
    "ReplayStats",
    "replay",
    "record",
]

log = logging.getLogger("fastfeed.capture")

MAGIC = b"FFCAP\x00\r\n"
VERSION = 1
FRAME_TEXT = 1
FRAME_BINARY = 2
#: magic, version, flags, meta_len
FILE_HEADER = struct.Struct("<8sHHI")
#: recv_ns, length, frame type, flags, reserved, crc32
RECORD_HEADER = struct.Struct("<qIBBHI")
#: One row of :meth:`CaptureReader.index`.
INDEX_DTYPE = np.dtype(
    [("offset", "<i8"), ("length", "<u4"), ("recv_ns", "<i8"), ("msg_type", "u1")]
)
_MAX_META = 1 << 20


class CaptureError(Exception):
    """The file is not a readable capture (bad magic or version, damaged header or body)."""


@dataclass(frozen=True)
class CaptureHeader:
    """What a capture's header says: format version, URL, start time (ns since the epoch)
    and the whole metadata object."""

    version: int
    url: str
    start_ns: int
    meta: dict[str, Any] = field(default_factory=dict)


class Record(NamedTuple):
    """One captured payload. ``payload`` is a read-only memoryview into the mapped file,
    valid until the reader is closed (copy it with ``bytes()`` to keep it longer)."""

    recv_ns: int
    msg_type: int
    payload: memoryview


def _frame_type(msg_type: Any) -> int:
    value = int(getattr(msg_type, "value", msg_type))
    if value not in (FRAME_TEXT, FRAME_BINARY):
        raise ValueError(f"frame type must be TEXT (1) or BINARY (2), not {msg_type!r}")
    return value


def _encode_header(url: str, start_ns: int, meta: dict[str, Any] | None) -> tuple[bytes, CaptureHeader]:
    from . import __version__

    obj: dict[str, Any] = {"url": url, "start_ns": int(start_ns), "created_by": f"fastfeed {__version__}"}
    if meta:
        obj.update({k: v for k, v in meta.items() if k not in ("url", "start_ns")})
    blob = orjson.dumps(obj)
    if len(blob) > _MAX_META:
        raise ValueError("capture metadata too large")
    return FILE_HEADER.pack(MAGIC, VERSION, 0, len(blob)) + blob, CaptureHeader(VERSION, url, int(start_ns), obj)


def _decode_header(buf: bytes | mmap.mmap | memoryview, path: object) -> tuple[CaptureHeader, int]:
    if len(buf) < FILE_HEADER.size:
        raise CaptureError(f"{path}: not a capture file (too short for a header)")
    magic, version, _flags, meta_len = FILE_HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise CaptureError(f"{path}: not a capture file (bad magic)")
    if version != VERSION:
        raise CaptureError(f"{path}: unsupported capture format version {version}")
    end = FILE_HEADER.size + meta_len
    if meta_len > _MAX_META or end > len(buf):
        raise CaptureError(f"{path}: truncated capture header")
    try:
        meta = orjson.loads(bytes(buf[FILE_HEADER.size:end]))
    except orjson.JSONDecodeError as exc:
        raise CaptureError(f"{path}: damaged capture header: {exc}") from None
    if not isinstance(meta, dict):
        raise CaptureError(f"{path}: damaged capture header (metadata is not an object)")
    return CaptureHeader(version, str(meta.get("url", "")), int(meta.get("start_ns", 0)), meta), end


class CaptureWriter:
    """Append payloads to a capture file.

    ``mode``: ``"x"`` create (fail if the file exists), ``"w"`` overwrite, ``"a"`` append to
    an existing capture (a torn tail is cut off first; the existing header is kept) or
    create it. Records are buffered (``buffering`` bytes); :meth:`flush` pushes them to the
    OS, :meth:`close` also ``fsync``s if ``fsync=True``. Use as a context manager.
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
        self._pack = RECORD_HEADER.pack
        self._crc = zlib.crc32
        if mode == "a" and self.path.exists() and self.path.stat().st_size > 0:
            with CaptureReader(self.path) as reader:
                self.header = reader.header
                good_end = reader.scan_end()
            if good_end < self.path.stat().st_size:
                log.warning("%s: cutting off a torn tail of %d bytes before appending",
                            self.path, self.path.stat().st_size - good_end)
                os.truncate(self.path, good_end)
            self._f: IO[bytes] = open(self.path, "ab", buffering=buffering)
        else:
            blob, self.header = _encode_header(url, time.time_ns() if start_ns is None else start_ns, meta)
            self._f = open(self.path, "xb" if mode == "x" else "wb", buffering=buffering)
            try:
                self._f.write(blob)
                self._f.flush()
            except BaseException:
                self._f.close()
                raise

    @property
    def closed(self) -> bool:
        return self._f.closed

    def write(self, payload: bytes | bytearray | memoryview | str, recv_ns: int | None = None,
              msg_type: Any = FRAME_BINARY) -> None:
        """Append one payload. ``recv_ns`` defaults to ``time.time_ns()``; ``msg_type`` is
        1/2, ``FRAME_TEXT``/``FRAME_BINARY`` or a ``picows.WSMsgType``. A ``str`` payload
        is stored as UTF-8."""
        if isinstance(payload, str):
            payload = payload.encode()
        typ = msg_type if msg_type is FRAME_BINARY or msg_type is FRAME_TEXT else _frame_type(msg_type)
        n = len(payload) if not isinstance(payload, memoryview) else payload.nbytes
        f = self._f
        f.write(self._pack(time.time_ns() if recv_ns is None else recv_ns, n, typ, 0, 0, self._crc(payload)))
        f.write(payload)
        self.records += 1
        self.bytes_written += RECORD_HEADER.size + n

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

    def __enter__(self) -> "CaptureWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CaptureReader:
    """Stream the records of a capture file through a read-only memory map.

    Iterating yields :class:`Record` objects in file order. After the end is reached
    ``torn_bytes`` tells how many trailing bytes were a torn record and skipped (0 if the
    file ended cleanly). Payload memoryviews stay valid until :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], *, verify: bool = True) -> None:
        self.path = Path(path)
        self.verify = verify
        self.torn_bytes = 0
        self._index: np.ndarray | None = None
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise CaptureError(f"{self.path}: empty file, not a capture")
            self._mm: mmap.mmap | None = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.size = size
        self._mv: memoryview | None = memoryview(self._mm)
        try:
            self.header, self.data_start = _decode_header(self._mm, self.path)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ scanning
    def _damage(self, pos: int, why: str) -> None:
        """Decide whether damage at ``pos`` is a torn tail (skip) or corruption (raise)."""
        assert self._mm is not None
        rest = np.frombuffer(self._mm, dtype=np.uint8, offset=pos)
        if why == "short" or why == "crc_last" or not rest.any():
            self.torn_bytes = self.size - pos
            log.warning("%s: torn last record at offset %d (%d bytes, %s) skipped",
                        self.path, pos, self.torn_bytes, why)
            return
        raise CaptureError(f"{self.path}: corrupt record at offset {pos} ({why})")

    def _walk(self, start: int | None = None) -> Iterator[tuple[int, int, int, int]]:
        """Yield ``(offset_of_payload, length, recv_ns, msg_type)`` of each good record."""
        mm = self._mm
        if mm is None:
            raise ValueError("capture reader is closed")
        end = self.size
        pos = self.data_start if start is None else start
        unpack = RECORD_HEADER.unpack_from
        hsize = RECORD_HEADER.size
        crc32 = zlib.crc32
        mv = self._mv
        verify = self.verify
        self.torn_bytes = 0
        while pos < end:
            if end - pos < hsize:
                self._damage(pos, "short")
                return
            recv_ns, length, typ, flags, reserved, crc = unpack(mm, pos)
            body = pos + hsize
            if (typ != FRAME_BINARY and typ != FRAME_TEXT) or flags or reserved:
                self._damage(pos, "bad record header")
                return
            stop = body + length
            if stop > end:
                self._damage(pos, "short")
                return
            if verify and crc32(mv[body:stop]) != crc:  # type: ignore[index]
                self._damage(pos, "crc_last" if stop == end else "bad crc")
                return
            yield body, length, recv_ns, typ
            pos = stop

    def __iter__(self) -> Iterator[Record]:
        mv = self._mv
        for body, length, recv_ns, typ in self._walk():
            yield Record(recv_ns, typ, mv[body:body + length])  # type: ignore[index]

    def scan_end(self) -> int:
        """File offset just past the last good record (walks the whole file)."""
        end = self.data_start
        for body, length, _, _ in self._walk():
            end = body + length
        return end

    def index(self) -> np.ndarray:
        """All good records as a structured array (:data:`INDEX_DTYPE`: payload offset,
        length, recv_ns, msg_type). Built once by a full scan, then cached."""
        if self._index is None:
            rows = list(self._walk())
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
        """The payload at a given offset (as found in :meth:`index`)."""
        if self._mv is None:
            raise ValueError("capture reader is closed")
        return self._mv[offset:offset + length]

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

    def __enter__(self) -> "CaptureReader":
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
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
        except ImportError:  # pragma: no cover - rich is optional
            return
        self._rich = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TransferSpeedColumn(), TimeRemainingColumn(),
            console=Console(file=self.stream), transient=False,
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
) -> ReplayStats:
    """Feed every payload of a capture through ``engine`` (default: a new
    ``fastfeed.Engine()``), passing the recorded receive time as ``recv_ns``.

    ``speed=None`` runs at full speed; ``speed=1.0`` reproduces the recorded pacing,
    ``2.0`` twice as fast. Frames the engine rejects (``FastfeedError``) are counted in
    ``errors``/``error_reasons`` and skipped unless ``stop_on_error``. ``on_message`` gets
    every non-``None`` result of ``feed`` (replies, tickers, private pushes).
    """
    from .errors import FastfeedError

    if speed is not None and speed <= 0:
        raise ValueError("speed must be > 0 or None")
    if engine is None:
        from . import Engine

        engine = Engine()
    own = not isinstance(source, CaptureReader)
    reader: CaptureReader = source if isinstance(source, CaptureReader) else CaptureReader(source)
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
) -> int:
    """Connect to ``url``, send ``requests`` (``(method, params)`` pairs, e.g.
    ``("depth.subscribe", ["BTC_USDT"])``), and record every received payload into
    ``path`` until ``duration`` seconds passed, ``max_frames`` were recorded or the server
    closed the connection. Sends ``server.ping`` every ``ping_interval`` seconds.
    Returns the number of recorded frames."""
    from picows import WSListener, WSMsgType, ws_connect

    writer = CaptureWriter(path, url, meta=meta, mode=mode)
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    class _Recorder(WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            mt = frame.msg_type
            if mt is WSMsgType.BINARY or mt is WSMsgType.TEXT:
                if done.done():
                    return
                writer.write(frame.get_payload_as_memoryview(), time.time_ns(), mt.value)
                if max_frames is not None and writer.records >= max_frames:
                    done.set_result(None)
            elif mt is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            elif mt is WSMsgType.PING:
                transport.send_pong(frame.get_payload_as_bytes())

    transport = None
    try:
        transport, _ = await ws_connect(_Recorder, url, enable_auto_pong=False)
        for i, (method, params) in enumerate(requests, 1):
            transport.send(WSMsgType.TEXT, orjson.dumps({"id": i, "method": method, "params": list(params)}))
        next_id = len(requests) + 1
        deadline = None if duration is None else loop.time() + duration
        closed = asyncio.ensure_future(transport.wait_disconnected())
        try:
            while not done.done() and not closed.done():
                timeout = ping_interval if deadline is None else min(ping_interval, deadline - loop.time())
                if timeout <= 0:
                    break
                await asyncio.wait({done, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not closed.done() and (deadline is None or loop.time() < deadline):
                    transport.send(WSMsgType.TEXT, orjson.dumps({"id": next_id, "method": "server.ping", "params": []}))
                    next_id += 1
        finally:
            if not closed.done():
                transport.send_close()
                transport.disconnect()
            await closed
    finally:
        if not done.done():
            done.cancel()
        writer.close()
    return writer.records
