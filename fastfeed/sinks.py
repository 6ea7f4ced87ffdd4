"""Sinks: the one way data leaves a live feed besides the zero-copy views.

A sink is attached to the real client, ``fastfeed.connect(url, sinks=[...])`` (or
``Feed(..., sinks=[...])``), and sees what it asks for:

* ``on_raw(payload, recv_ns, msg_type)``: every complete data payload exactly as received
  (``bytes``: zlib or JSON text), before the engine, with the local receive time the
  engine stamps on it (ns, ``time.time_ns`` clock) and the WebSocket type (1 text,
  2 binary). Rejected frames and replies are seen too: this is what a capture needs.
* ``on_frame(change)``: after each frame that changed something was applied, a
  :class:`FrameChange` saying which kind and symbol(s) changed and giving that frame's
  event-log rows (the per-frame hook for frameworks; also ``Feed(on_frame=...)`` and
  ``async for change in feed.changes()``).
* ``on_event(event)``: every :class:`~fastfeed.client.ConnectionEvent` (connected,
  disconnected, reconnecting, ...).
* ``open(feed)`` once when the feed starts, ``close()`` once when it closes.

Subclass :class:`Sink` and override what you need (the feed only calls the methods a sink
overrides, and enables the raw hook only when some sink wants raw payloads), or pass any
object with some of these methods. Sink methods run synchronously on the frame path, like
the feed's callbacks: one that raises is counted in ``feed.stats["callback_errors"]`` and
logged (rate-limited); it never breaks the connection.

Sinks shipped here:

* :class:`CaptureSink`: records every payload into a capture file
  (:class:`~fastfeed.capture.CaptureWriter`; session metadata: url, symbols, channels).
* :class:`EventLogSink` and :class:`ShmSink`: the engine's event log and shared-memory
  publishing. They run inside the compiled engine (no Python call per frame); as sinks
  they only configure the feed's engine (``FeedOptions.event_log`` / ``shm_name``...).

* :class:`fastfeed.bus.NatsSink` (extra ``nats``): books, trades and tickers on NATS
  JetStream, rebuilt on other hosts by ``fastfeed.bus.subscribe`` (docs/bus.md). It polls
  the event log on a timer rather than taking a Python call per frame.

``open`` and ``close`` may be coroutine functions (a sink holding a network connection):
``feed.start()`` / ``feed.close()`` await them.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from .events import EVENT_DTYPE

if TYPE_CHECKING:
    from .capture import CaptureWriter
    from .client import ConnectionEvent, Feed, FeedOptions

__all__ = [
    "KIND_NAMES",
    "CaptureSink",
    "EventLogSink",
    "FrameChange",
    "ShmSink",
    "Sink",
    "SinkLike",
    "hooks",
    "push_symbols",
]

#: ``FrameChange.kind`` by the engine's method code (``Engine.last_kind``); replies (0) and
#: unknown methods (8) change nothing and give no FrameChange.
KIND_NAMES: dict[int, str] = {
    1: "depth",
    2: "trades",
    3: "ticker",
    4: "all_ticker",
    5: "order",
    6: "order_algo",
    7: "balance",
}

if TYPE_CHECKING:
    from ._hook import FrameChange
else:
    try:  # compiled: the per-frame hook (fastfeed._hook.FrameHook) builds these in C
        from ._hook import FrameChange
    except ImportError:  # no compiled modules (fastfeed.COMPILED is false): the same in Python
        _NO_ROWS = np.zeros(0, dtype=EVENT_DTYPE)
        _NO_ROWS.flags.writeable = False

        class FrameChange:
            """What one frame changed (the per-frame hook's argument).

            ``frame``: the frame id (``Engine.frames`` after the frame; the ``fval`` of its event
            rows; 0 for a ``reset``). ``recv_ns``: its local receive time. ``kind``: ``depth``,
            ``trades``, ``ticker``, ``all_ticker``, ``order``, ``order_algo``, ``balance``, or
            ``reset`` (the feed emptied every book on a new connection:
            ``Engine.reset_books()``). ``symbol``: the symbol of a depth / trades frame, else
            None. ``symbols``: every symbol (currency for balance) the frame names, at most 10000.
            ``seq`` / ``end``: the event-log row numbers of this frame's rows, ``seq`` included,
            ``end`` excluded (both ``Engine.events.count`` values; equal when the event log is
            off or the frame logged nothing, e.g. a duplicate trade).
            """

            __slots__ = ("_ring", "end", "frame", "kind", "recv_ns", "seq", "symbol", "symbols")

            def __init__(
                self,
                frame: int,
                recv_ns: int,
                kind: str,
                symbol: str | None,
                symbols: tuple[str, ...],
                seq: int,
                end: int,
                ring: Any,
            ) -> None:
                self.frame = frame
                self.recv_ns = recv_ns
                self.kind = kind
                self.symbol = symbol
                self.symbols = symbols
                self.seq = seq
                self.end = end
                self._ring = ring

            @property
            def n_rows(self) -> int:
                return self.end - self.seq

            def rows(self) -> np.ndarray:
                """This frame's event rows (:data:`~fastfeed.events.EVENT_DTYPE`), oldest first: a
                zero-copy read-only view of the engine's event ring, valid until ``capacity -
                n_rows`` more rows are logged (``.copy()`` it to keep it). Empty when the feed has
                no event log. Raises :class:`~fastfeed.errors.EventsOverwritten` once the ring has
                overwritten them (a consumer that fell behind: rebuild it with ``feed.resync()``)."""
                if self._ring is None or self.end == self.seq:
                    return _NO_ROWS
                rows: np.ndarray = self._ring.since(self.seq)[: self.end - self.seq]
                return rows

            def __repr__(self) -> str:
                what = (
                    self.symbol
                    if self.symbol is not None
                    else ",".join(self.symbols[:3]) + ("..." if len(self.symbols) > 3 else "")
                )
                return f"<FrameChange frame={self.frame} {self.kind} {what} rows {self.seq}..{self.end}>"


@runtime_checkable
class SinkLike(Protocol):
    """Anything with ``close()`` and some of ``open``, ``on_raw``, ``on_frame``,
    ``on_event`` (see the module docstring)."""

    def close(self) -> Awaitable[None] | None: ...


class Sink:
    """Base class of sinks: every method does nothing; override what you need."""

    def configure(self, options: FeedOptions) -> None:
        """Adjust the feed's options before its engine is built (engine-side sinks)."""

    def open(self, feed: Feed) -> Awaitable[None] | None:
        """Called once by ``feed.start()``, before the first connection (may be a
        coroutine function: it is awaited)."""

    def on_raw(self, payload: bytes, recv_ns: int, msg_type: int) -> None:
        """A complete data payload as received (before the engine)."""

    def on_frame(self, change: FrameChange) -> None:
        """A frame was applied; ``change.rows()`` are valid during the call."""

    def on_event(self, event: ConnectionEvent) -> None:
        """A connection event."""

    def close(self) -> Awaitable[None] | None:
        """Called once by ``feed.close()`` (also after a failed ``start()``; may be a
        coroutine function: it is awaited)."""


def hooks(sink: Any) -> dict[str, Callable[..., Any]]:
    """The hook methods ``sink`` really provides: a :class:`Sink` subclass's overrides, or
    any callable attribute of a duck-typed sink. ``TypeError`` if it provides none."""
    out: dict[str, Callable[..., Any]] = {}
    for name in ("configure", "open", "on_raw", "on_frame", "on_event", "close"):
        fn = getattr(sink, name, None)
        if fn is None or not callable(fn):
            continue
        if isinstance(sink, Sink) and getattr(type(sink), name) is getattr(Sink, name):
            continue  # the base class's no-op
        out[name] = fn
    if not out:
        raise TypeError(
            f"{type(sink).__name__} is not a sink: it has none of open, on_raw, on_frame, on_event, close"
        )
    return out


class CaptureSink(Sink):
    """Record every payload of the feed into a capture file (``fastfeed.capture`` format).

    ``CaptureSink(path, mode="x", meta=None, buffering=1 MiB, fsync=False,
    flush_interval=1.0)``: the file is opened by ``feed.start()`` (the session record
    holds the feed's url, the start time and ``meta``, e.g. ``{"symbols": [...],
    "channels": [...]}``) with :class:`~fastfeed.capture.CaptureWriter` (``mode`` ``x``,
    ``w`` or ``a``: see there; a corrupt file refused for appending raises
    :class:`~fastfeed.errors.CaptureError` from ``start()``). Each payload is written with
    the receive time the engine stamps on it. Buffered records are handed to the OS at
    least every ``flush_interval`` s of recv time, on every disconnect and at close, so a
    crash loses at most that much. ``records`` / ``bytes`` count what was recorded;
    ``max_records`` stops recording (and calls ``on_full()``, if given) after that many.
    Pass ``writer=`` to record into a :class:`CaptureWriter` you opened yourself (then
    ``path`` is ignored, and the sink only flushes it at close: closing it, or
    :meth:`~fastfeed.capture.CaptureWriter.discard`, is yours).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        mode: Literal["x", "w", "a"] = "x",
        meta: dict[str, Any] | None = None,
        buffering: int = 1 << 20,
        fsync: bool = False,
        flush_interval: float = 1.0,
        max_records: int | None = None,
        on_full: Callable[[], None] | None = None,
        writer: CaptureWriter | None = None,
    ) -> None:
        if writer is None and path is None:
            raise TypeError("CaptureSink needs a path or a writer")
        if max_records is not None and max_records < 1:
            raise ValueError("max_records must be >= 1")
        self.path = path
        self.mode = mode
        self.meta = meta
        self.buffering = buffering
        self.fsync = fsync
        self.flush_ns = int(flush_interval * 1e9)
        self.max_records = max_records
        self.on_full = on_full
        self.writer = writer
        self._own_writer = writer is None
        self.records = 0
        self.bytes = 0
        self._last_flush = 0

    @property
    def full(self) -> bool:
        return self.max_records is not None and self.records >= self.max_records

    def open(self, feed: Feed) -> None:
        if self.writer is None:
            from .capture import CaptureWriter

            self.writer = CaptureWriter(
                self.path,  # type: ignore[arg-type]
                feed.url,
                meta=self.meta,
                mode=self.mode,
                buffering=self.buffering,
                fsync=self.fsync,
            )

    def on_raw(self, payload: bytes, recv_ns: int, msg_type: int) -> None:
        w = self.writer
        if w is None or w.closed or self.full:
            return
        w.write(payload, recv_ns, msg_type)
        self.records += 1
        self.bytes += len(payload)
        if recv_ns - self._last_flush >= self.flush_ns:
            self._last_flush = recv_ns
            w.flush()
        if self.full and self.on_full is not None:
            self.on_full()

    def on_event(self, event: ConnectionEvent) -> None:
        if event.kind == "disconnected":
            self.flush()

    def flush(self) -> None:
        w = self.writer
        if w is not None and not w.closed:
            w.flush()

    def close(self) -> None:
        if self.writer is None:
            return
        if self._own_writer:
            self.writer.close()
        else:
            self.flush()


@dataclass
class EventLogSink(Sink):
    """The engine's event log (``Engine.events``, hftbacktest rows) as a sink: sets
    ``FeedOptions.event_log = capacity`` (the rows are written in C on the frame path)."""

    capacity: int = 1 << 16

    def configure(self, options: FeedOptions) -> None:
        if self.capacity < 1:
            raise ValueError("EventLogSink capacity must be >= 1")
        options.event_log = max(options.event_log, self.capacity)


@dataclass
class ShmSink(Sink):
    """Shared-memory publishing of the books and trades (``fastfeed.attach(name)`` reads
    them) as a sink: sets ``FeedOptions.shm_name`` / ``shm_max_symbols`` /
    ``shm_checksum`` (the engine writes the segment in C on the frame path)."""

    name: str
    max_symbols: int = 1024
    checksum: bool = False

    def configure(self, options: FeedOptions) -> None:
        if options.shm_name is not None and options.shm_name != self.name:
            raise ValueError(f"two shared-memory names: {options.shm_name!r} and {self.name!r}")
        options.shm_name = self.name
        options.shm_max_symbols = self.max_symbols
        options.shm_checksum = options.shm_checksum or self.checksum


def _name(value: Any) -> str | None:
    if (
        isinstance(value, str)
        and 0 < len(value) <= 32
        and value.isascii()
        and value.isprintable()
        and " " not in value
    ):
        return value.upper()
    return None


def push_symbols(msg: Any, limit: int = 10000) -> tuple[str, ...]:
    """The symbols (currencies for balance) a decoded push names, in order, each once: the
    ``symbol`` / ``currency`` of its records (records of another shape, names that are not
    1..32 printable ASCII characters without spaces are left out). Never raises."""
    try:
        params = msg.get("params") if isinstance(msg, dict) else msg
        if isinstance(params, dict):
            params = [params]
        if not isinstance(params, (list, tuple)):
            return ()
        out: dict[str, None] = {}
        for rec in params[:limit]:
            if isinstance(rec, dict):
                name = _name(rec.get("symbol")) or _name(rec.get("currency"))
            else:  # a parsed record
                name = _name(getattr(rec, "symbol", None)) or _name(getattr(rec, "currency", None))
            if name is not None:
                out[name] = None
        return tuple(out)
    except Exception:
        return ()
