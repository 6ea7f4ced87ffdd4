"""Typed errors raised by fastfeed: the one home of every exception class the package
defines. Every error carries a short machine-readable ``reason`` (for the engine's
rejections also the key under which it is counted in ``Engine.stats["rejects"]``).

Policy. Every error fastfeed raises for a condition of its own - bad data from the network,
a file or shared memory, a connection, a request, a closed or exhausted object - is a
:class:`FastfeedError` subclass defined here; the other modules import (and re-export)
them from here. Where a builtin was raised before, the class also subclasses that builtin,
so ``except ConnectionError`` / ``KeyError`` / ``ValueError`` keeps working. A caller's
mistake in an argument (a wrong type, a negative size) is a plain ``TypeError`` /
``ValueError``, as everywhere in Python. The CLI's own errors live with the CLI.

The tree (``tests/test_errors_tree.py`` checks it against the classes)::

    FastfeedError
        FrameError
            InflateError
            FrameTooLarge
        MessageError
            ParseError
        DecodeError
        TradesOverwritten (IndexError)
        EventsOverwritten (IndexError)
        TickersOverwritten (IndexError)
        UnknownSymbol (KeyError)
        UnknownChannel (KeyError)
        ShmError
            ShmNotFound
            ShmInUse
            ShmStale
            ShmFull
            ShmTornRead
            ShmLayoutError
                ShmCorrupt
            ShmClosed (ValueError)
            ShmOSError (OSError)
        CaptureError
            CaptureRefused (ValueError)
            CaptureClosed (ValueError)
            CaptureRangeError (ValueError)
        ExportOverflow (ValueError)
        NotConnected (ConnectionError)
            ConnectFailed
            FeedClosed
        RequestError
            AuthError
            BadReply
        RequestTimeout (TimeoutError)
        ConnectionLost (ConnectionError)
        ExchangeError
            RequestRefused
            NoMarket (RuntimeError)
        InternalError (RuntimeError)
        BusError
            BusRecordError (ValueError)
        EngineBusy (RuntimeError)
"""

from __future__ import annotations

__all__ = [
    "REJECT_REASONS",
    "AuthError",
    "BadReply",
    "BusError",
    "BusRecordError",
    "CaptureClosed",
    "CaptureError",
    "CaptureRangeError",
    "CaptureRefused",
    "ConnectFailed",
    "ConnectionLost",
    "DecodeError",
    "EngineBusy",
    "EventsOverwritten",
    "ExchangeError",
    "ExportOverflow",
    "FastfeedError",
    "FeedClosed",
    "FrameError",
    "FrameTooLarge",
    "InflateError",
    "InternalError",
    "MessageError",
    "NoMarket",
    "NotConnected",
    "ParseError",
    "RequestError",
    "RequestRefused",
    "RequestTimeout",
    "ShmClosed",
    "ShmCorrupt",
    "ShmError",
    "ShmFull",
    "ShmInUse",
    "ShmLayoutError",
    "ShmNotFound",
    "ShmOSError",
    "ShmStale",
    "ShmTornRead",
    "TickersOverwritten",
    "TradesOverwritten",
    "UnknownChannel",
    "UnknownSymbol",
]

#: Every rejection reason the engine can count, in a stable order.
REJECT_REASONS = (
    "empty",
    "zlib_error",
    "zlib_truncated",
    "zlib_trailing",
    "too_large",
    "bad_json",
    "too_deep",
    "bad_message",
    "bad_number",
    "symbol_limit",
    "shm_full",
)


class FastfeedError(Exception):
    """Base class of every fastfeed error."""

    reason: str = "error"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class FrameError(FastfeedError):
    """The frame could not be turned into JSON text (inflate failed or too large)."""


class InflateError(FrameError):
    """The zlib stream is empty, corrupt, truncated or followed by trailing bytes."""

    reason = "zlib_error"


class FrameTooLarge(FrameError):
    """The frame inflates (or is) larger than the engine's ``max_frame`` cap."""

    reason = "too_large"


class MessageError(FastfeedError):
    """The JSON text is not an acceptable message."""


class ParseError(MessageError):
    """Bad JSON, too deep, wrong shape or types, or a bad number. Nothing was applied."""

    reason = "bad_message"


class TradesOverwritten(FastfeedError, IndexError):
    """``TradeRing.since(seq)`` asked for trades the ring has already overwritten."""

    reason = "overwritten"


class EventsOverwritten(FastfeedError, IndexError):
    """``EventRing.since(seq)`` (``Engine(event_log=N)``) asked for event rows the ring has
    already overwritten: the consumer fell more than ``N`` rows behind. Rebuild it from the
    current books instead of replaying."""

    reason = "overwritten"


class TickersOverwritten(FastfeedError, IndexError):
    """``Engine.ticker_history.since(seq)`` asked for ticker records the history ring has
    already overwritten. Also an ``IndexError``."""

    reason = "overwritten"


class UnknownSymbol(FastfeedError, KeyError):
    """``Engine.book(symbol)`` / ``Engine.symbol_index(symbol)`` for a symbol the engine does
    not know (never seen in data, never registered with ``create=True``). A ``KeyError``, so
    ``except KeyError`` keeps working; ``str()`` is the plain message."""

    reason = "unknown_symbol"

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownChannel(FastfeedError, KeyError):
    """A channel name that is not in the channel table (``fastfeed.channels.get``). A
    ``KeyError``; ``str()`` is the plain message."""

    reason = "unknown_channel"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DecodeError(FastfeedError):
    """``fastfeed.exchange.decode_payload`` (the exchange's small, independent decoder)
    could not decode a payload. ``reason`` is the engine's reject reason for the same
    payload (``empty``, ``zlib_error``, ``zlib_truncated``, ``zlib_trailing``,
    ``too_large``, ``bad_json``); note the argument order ``(reason, message)``."""

    reason = "decode"

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason, reason)


class EngineBusy(FastfeedError, RuntimeError):
    """An ``Engine`` (or ``Inflater``) was fed from a second thread while another thread was
    feeding it (feeding releases the GIL). Nothing was changed or counted; feed each engine
    from one thread at a time (one engine per thread or shard, or a lock of your own)."""

    reason = "busy"


class ShmError(FastfeedError):
    """A shared-memory segment (``Engine(shm_name=...)`` / ``fastfeed.attach``) problem."""

    reason = "shm"


class ShmNotFound(ShmError):
    """``attach(name)``: no segment of that name exists (no writer, or it closed)."""

    reason = "not_found"


class ShmInUse(ShmError):
    """``Engine(shm_name=name)``: a live writer already publishes under that name."""

    reason = "in_use"


class ShmStale(ShmError):
    """``attach(name)``: the segment's writer died without closing it (its data is frozen)."""

    reason = "stale"


class ShmFull(ShmError):
    """The segment has no free symbol slot (``Engine(shm_max_symbols=...)``). A frame
    that would add a symbol beyond the slots is rejected with it and counted as
    ``stats["rejects"]["shm_full"]``."""

    reason = "shm_full"


class ShmTornRead(ShmError):
    """A reader found no consistent state within its retry budget (the writer kept
    overwriting what it read, or died in the middle of an update)."""

    reason = "torn_read"


class ShmLayoutError(ShmError):
    """The segment is not a fastfeed segment of a layout this version understands."""

    reason = "layout"


class ShmClosed(ShmError, ValueError):
    """A shared-memory mapping was used after ``close()``. Also a ``ValueError``."""

    reason = "closed"


class ShmOSError(ShmError, OSError):
    """A system call on a shared-memory segment failed (``shm_open``, ``mmap``, ``fstat``,
    ``ftruncate``, ...). Also an ``OSError`` with ``errno`` and ``strerror`` set, so
    ``except ShmError`` catches every shared-memory failure."""

    reason = "os_error"

    def __init__(self, err: int, message: str) -> None:
        OSError.__init__(self, err, message)


class InternalError(FastfeedError, RuntimeError):
    """A self-check of fastfeed itself failed (a compiled struct of the wrong size, a
    resource attached twice). Never caused by data: a bug or a broken build to report.
    Also a ``RuntimeError``."""

    reason = "internal"


class CaptureError(FastfeedError):
    """A file is not a readable capture: bad magic or version, a damaged or wrongly typed
    header, or a corrupt record. ``offset`` is the byte offset of the damage and ``record``
    the 1-based number of the damaged record in the file, when the error is about one
    record (else ``None``). Also raised by ``CaptureWriter`` when it refuses to append."""

    reason = "capture"

    def __init__(
        self, message: str, reason: str | None = None, *, offset: int | None = None, record: int | None = None
    ) -> None:
        super().__init__(message, reason)
        self.offset = offset
        self.record = record


class CaptureRefused(CaptureError, ValueError):
    """``CaptureWriter`` refuses to write: a payload beyond ``capture.MAX_PAYLOAD``
    (reason ``too_large``), header metadata that is not valid (``bad_meta``), a frame type
    that is not TEXT or BINARY (``bad_frame_type``). Nothing was written. Also a
    ``ValueError`` (what it was before)."""

    reason = "refused"


class CaptureClosed(CaptureError, ValueError):
    """A ``CaptureReader`` was used after ``close()``. Also a ``ValueError``."""

    reason = "closed"


class CaptureRangeError(CaptureError, ValueError):
    """``CaptureReader.payload(offset, length)`` for a range that is not inside the file's
    records. Also a ``ValueError``."""

    reason = "range"


class ExportOverflow(FastfeedError, ValueError):
    """An export's event ring overflowed within one frame (one frame produced more rows
    than the ring holds): pass a larger ``ring=``. Also a ``ValueError``."""

    reason = "export_overflow"


class ShmCorrupt(ShmLayoutError):
    """A value read from a segment is impossible for a fastfeed writer to have written (a
    count beyond its bound, a symbol name of a bad length, a counter that went backwards,
    a file truncated under its readers): the segment is damaged or was written by
    something else. Raised instead of reading outside the segment."""

    reason = "corrupt"


class NotConnected(FastfeedError, ConnectionError):
    """The live client has no connection for a request (also a ``ConnectionError``, so
    ``except ConnectionError`` keeps working)."""

    reason = "not_connected"


class ConnectFailed(NotConnected):
    """``Feed.start()`` could not connect: the first connection did not come up within
    ``connect_timeout``, or failed with an error that retrying cannot fix (a bad URL, a
    TLS certificate or protocol failure, a bad secret type). The message names the cause;
    ``__cause__`` holds the original exception when there is one."""

    reason = "connect_failed"


class FeedClosed(NotConnected):
    """The :class:`~fastfeed.Feed` was closed: ``start()``, requests and subscriptions
    after ``close()`` fail at once with this error."""

    reason = "closed"


# -- requests on a live connection ----------------------------------------------------------


class RequestError(FastfeedError):
    """The server answered a request with a non-null ``error``.

    ``code`` is the integer code when the server sent ``{"code", "message"}`` (``None``
    for the plain string shape); ``message`` the text; ``method`` the request's method.
    """

    reason = "request_error"

    def __init__(self, method: str, code: int | None, message: str) -> None:
        self.method = method
        self.code = code
        self.message = message
        where = f" (code {code})" if code is not None else ""
        super().__init__(f"{method} failed{where}: {message}")


class AuthError(RequestError):
    """``server.auth`` was refused, or a private channel was asked for without auth."""

    reason = "auth_error"


class RequestTimeout(FastfeedError, TimeoutError):
    """No reply to a request within the timeout (the server may just drop requests)."""

    reason = "timeout"


class ConnectionLost(FastfeedError, ConnectionError):
    """The connection closed while a request was waiting for its reply."""

    reason = "connection_lost"


class BadReply(RequestError):
    """The server answered without an ``error`` but with a ``result`` that is not what
    the request returns (e.g. ``server.time`` answered with text). ``code`` is None."""

    reason = "bad_reply"

    def __init__(self, method: str, message: str) -> None:
        super().__init__(method, None, message)


# -- the local exchange (fastfeed.exchange) ---------------------------------------------------


class ExchangeError(FastfeedError):
    """A problem of the bundled local exchange (``fastfeed.exchange``)."""

    reason = "exchange"


class RequestRefused(ExchangeError):
    """The local exchange refuses a client's request: answered on the wire as an error
    reply with ``code`` (an ``exchange.wire.ErrorCode``) and ``message``; never leaves
    the server."""

    reason = "refused"

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NoMarket(ExchangeError, RuntimeError):
    """``Exchange.book()`` while serving a capture: there is no simulated market. Also a
    ``RuntimeError`` (what it was before)."""

    reason = "no_market"


class BusError(FastfeedError):
    """The NATS JetStream bus (:mod:`fastfeed.bus`): the NATS server could not be reached
    (``reason`` ``bus_connect``) or the stream could not be created or read
    (``bus_stream``). The message never holds a credential."""

    reason = "bus"


class BusRecordError(BusError, ValueError):
    """A bus message that is not a valid fastfeed bus record (bad magic, schema version,
    sizes, counts or symbol): :func:`fastfeed.bus.decode` raises it, a consumer counts it
    in ``stats["rejected"]`` and drops the message."""

    reason = "bus_record"
