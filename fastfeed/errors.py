"""Typed errors raised by fastfeed. Every error carries a short machine-readable ``reason``
that is also the key under which the rejection is counted in ``Engine.stats["rejects"]``."""

from __future__ import annotations

__all__ = [
    "FastfeedError",
    "FrameError",
    "InflateError",
    "FrameTooLarge",
    "MessageError",
    "ParseError",
    "TradesOverwritten",
    "EventsOverwritten",
    "UnknownSymbol",
    "EngineBusy",
    "ShmError",
    "ShmNotFound",
    "ShmInUse",
    "ShmStale",
    "ShmFull",
    "ShmTornRead",
    "ShmLayoutError",
    "CaptureError",
    "ShmCorrupt",
    "NotConnected",
    "ConnectFailed",
    "FeedClosed",
    "RequestError",
    "AuthError",
    "RequestTimeout",
    "ConnectionLost",
    "BadReply",
    "REJECT_REASONS",
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


class UnknownSymbol(FastfeedError, KeyError):
    """``Engine.book(symbol)`` / ``Engine.symbol_index(symbol)`` for a symbol the engine does
    not know (never seen in data, never registered with ``create=True``). A ``KeyError``, so
    ``except KeyError`` keeps working; ``str()`` is the plain message."""

    reason = "unknown_symbol"

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


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


class CaptureError(FastfeedError):
    """A file is not a readable capture: bad magic or version, a damaged or wrongly typed
    header, or a corrupt record. ``offset`` is the byte offset of the damage and ``record``
    the 1-based number of the damaged record in the file, when the error is about one
    record (else ``None``). Also raised by ``CaptureWriter`` when it refuses to append."""

    reason = "capture"

    def __init__(self, message: str, reason: str | None = None, *, offset: int | None = None,
                 record: int | None = None) -> None:
        super().__init__(message, reason)
        self.offset = offset
        self.record = record


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
