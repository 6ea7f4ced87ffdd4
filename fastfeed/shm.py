"""Cross-process, zero-copy books, trades, tickers and the event log through named shared
memory.

The writer is an ordinary engine (or live feed) created with a segment name::

    eng = fastfeed.Engine(shm_name="digifinex",       # books, trades, tickers in /fastfeed.digifinex
                          event_log=65536)            # ... and the event log
    ...                                               # feed it as usual
    eng.close()                                       # unlink at shutdown (also at exit)

Any other process on the machine attaches read-only::

    with fastfeed.attach("digifinex") as feed:
        book = feed.book("BTC_USDT")
        bids, asks = book.snapshot()                  # a consistent copy (seqlock)
        book.bids                                     # zero-copy read-only live view (may be torn)
        feed.trades.snapshot(100)                     # consistent copy of the newest trades
        rows = feed.events.snapshot_since(seq)        # event rows seq.. (None: no event_log)
        feed.tickers.snapshot(10)                     # the newest ticker records
        feed.symbols                                  # grows as the writer sees symbols

Consistency: each book has a seqlock (odd while the writer applies a message); readers
copy, re-check and retry a bounded number of times (then
:class:`~fastfeed.errors.ShmTornRead`). The writer never waits for readers. Copies of the
record rings (trades, events, tickers: :class:`ShmRing`) are checked against the ring's
published count, so records overwritten while they were copied are detected. The segment
layout and the lifecycle (creation, stale segments of crashed writers, closing) are
described in ``fastfeed/_shm.pyx``.

Memory validity: arrays from a reader (zero-copy views and copies alike) never dangle: the
mapping is released only when the last of them is gone, even after ``close()`` or after
the writer unlinked the segment; a view of a segment whose writer is gone simply stops
changing. Zero-copy views are read-only and keep the row count they were taken with;
copies are the caller's (writable).

Trust: every size, count and offset read from a segment is validated before use (the
header's geometry once, at attach; counts on every read). A damaged or crafted segment
raises :class:`~fastfeed.errors.ShmLayoutError` (or its subclass
:class:`~fastfeed.errors.ShmCorrupt`), never a crash. One exception: a process of the
writer's own user that truncates the segment file *after* a reader (or the writer) has
started using a book or the trade ring makes the next read of those pages end in SIGBUS;
the size is checked at attach and before each part of the segment is first used, not on
every read (see docs/shm-and-exports.md).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ._shm import (
    STATES,
    BookSnapshot,
    ShmBook,
    ShmEvents,
    ShmReader,
    ShmRing,
    ShmTickers,
    ShmTrades,
    ShmWriter,
    segment_path,
    shm_filename,
    unlink_segment,
    validate_name,
)
from .errors import (
    ShmCorrupt,
    ShmError,
    ShmFull,
    ShmInUse,
    ShmLayoutError,
    ShmNotFound,
    ShmStale,
    ShmTornRead,
)

__all__ = [
    "STATES",
    "BookSnapshot",
    "ShmBook",
    "ShmCorrupt",
    "ShmError",
    "ShmEvents",
    "ShmFull",
    "ShmInUse",
    "ShmLayoutError",
    "ShmNotFound",
    "ShmReader",
    "ShmRing",
    "ShmStale",
    "ShmTickers",
    "ShmTornRead",
    "ShmTrades",
    "ShmWriter",
    "attach",
    "book_checksum",
    "list_segments",
    "segment_path",
    "shm_filename",
    "unlink_segment",
    "validate_name",
]

if TYPE_CHECKING:
    from .shards import ShardedReader

_M64 = (1 << 64) - 1
_K1 = 0x9E3779B97F4A7C15
_K2 = 0xC2B2AE3D27D4EB4F


def attach(name: str, *, allow_stale: bool = False, timeout: float = 2.0) -> ShmReader | ShardedReader:
    """Attach read-only to the segment a writer publishes as ``name``.

    Raises :class:`~fastfeed.errors.ShmNotFound` if no such segment exists (or its writer
    closed it), :class:`~fastfeed.errors.ShmStale` if its writer died (unless
    ``allow_stale``, to read the frozen data), :class:`~fastfeed.errors.ShmLayoutError` if
    it is not a fastfeed segment or its header is inconsistent with itself or the file
    (every size, count and offset is checked before use). Waits up to ``timeout`` seconds
    for a segment that is being created.

    A sharded feed (``connect_sharded(..., shm_name=name)``) writes one segment per shard
    (``name.shard<i>-of<n>``): when no segment ``name`` exists but a complete set of shard
    segments does, a :class:`~fastfeed.shards.ShardedReader` over them is returned (the
    same ``book(sym)`` / ``symbols`` / ``close()``; see :func:`fastfeed.shards.attach_shards`).
    """
    name = validate_name(name)
    if not os.path.exists(segment_path(name)):
        from .shards import _SEG_RE, attach_shards

        if any((m := _SEG_RE.match(s)) and m["base"] == name for s in list_segments()):
            return attach_shards(name, allow_stale=allow_stale, timeout=timeout)
    return ShmReader(name, allow_stale, timeout)


def book_checksum(bids: Any, asks: Any, version: int) -> int:
    """The checksum the writer stores with a book state (``BookSnapshot.checksum``),
    computed with numpy: four Fletcher-style lanes over the 64-bit words
    ``[n_bids, n_asks, version, bid rows..., ask rows...]`` (IEEE bit patterns), word ``i``
    in lane ``i % 4`` (``a += w; b += a`` mod 2**64), combined as the XOR over lanes ``l``
    of ``(a * K1 + b * K2) * (2 * l + 1)`` mod 2**64. Same as ``ff_book_checksum`` in C."""
    b = np.ascontiguousarray(bids, dtype=np.float64).reshape(-1)
    a = np.ascontiguousarray(asks, dtype=np.float64).reshape(-1)
    head = np.array([len(b) // 2, len(a) // 2, version], dtype=np.int64).view(np.uint64)
    words = np.concatenate([head, b.view(np.uint64), a.view(np.uint64)])
    out = 0
    for lane in range(4):
        w = words[lane::4]
        if len(w):
            run = np.cumsum(w, dtype=np.uint64)  # wraps mod 2**64
            sa = int(run[-1])
            sb = int(np.sum(run, dtype=np.uint64))
        else:
            sa = sb = 0
        out ^= (((sa * _K1 + sb * _K2) & _M64) * (2 * lane + 1)) & _M64
    return out


def list_segments() -> list[str]:
    """Names of the fastfeed segments that exist on this machine (Linux: ``/dev/shm``)."""
    try:
        entries = os.listdir("/dev/shm")
    except OSError:
        return []
    return sorted(e[len("fastfeed.") :] for e in entries if e.startswith("fastfeed."))
