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
    "UnknownSymbol",
    "ShmError",
    "ShmNotFound",
    "ShmInUse",
    "ShmStale",
    "ShmFull",
    "ShmTornRead",
    "ShmLayoutError",
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


class UnknownSymbol(FastfeedError, KeyError):
    """``Engine.book(symbol)`` / ``Engine.symbol_index(symbol)`` for a symbol the engine does
    not know (never seen in data, never registered with ``create=True``). A ``KeyError``, so
    ``except KeyError`` keeps working; ``str()`` is the plain message."""

    reason = "unknown_symbol"

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


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
    """The segment has no free symbol slot (``Engine(shm_max_symbols=...)``)."""

    reason = "full"


class ShmTornRead(ShmError):
    """A reader found no consistent state within its retry budget (the writer kept
    overwriting what it read, or died in the middle of an update)."""

    reason = "torn_read"


class ShmLayoutError(ShmError):
    """The segment is not a fastfeed segment of a layout this version understands."""

    reason = "layout"
