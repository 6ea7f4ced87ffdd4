"""The book/trade event log in hftbacktest's event layout.

Every change the engine applies to a book and every trade it stores can be logged as one
row of :data:`EVENT_DTYPE` (``Engine(event_log=N)`` keeps the newest ``N`` rows in
``Engine.events``; :func:`fastfeed.export.capture_to_npz` converts a whole capture). The
layout and flag bits are hftbacktest's (``np.savez_compressed(path, data=rows)`` loads
there as is):

======== ===== ==========================================================================
field    type  meaning
======== ===== ==========================================================================
ev       u8    flags: ``EXCH_EVENT | LOCAL_EVENT``, a side (``BUY_EVENT``/``SELL_EVENT``)
               and a kind in the low byte (``DEPTH_EVENT`` 1, ``TRADE_EVENT`` 2,
               ``DEPTH_CLEAR_EVENT`` 3, ``DEPTH_SNAPSHOT_EVENT`` 4)
exch_ts  i8    exchange time, ns: the trade's ``time`` (seconds as sent) x 1e9, rounded;
               depth pushes carry no exchange time, so ``exch_ts == local_ts`` for them
local_ts i8    local receive time of the frame, ns (``recv_ns``)
px       f8    price (0 for a clear)
qty      f8    amount; 0 deletes the level (depth rows)
order_id u8    the trade id (trades); 0 for depth rows
ival     i8    fastfeed's symbol index (``Engine.symbols[ival]``)
fval     f8    the frame id: ``Engine.frames`` of the frame that logged the row (rows of one
               frame share it; 0 for rows logged outside a frame, e.g. ``reset_books()``);
               a whole number, exact up to 2**53 frames (:func:`frame_ids`)
======== ===== ==========================================================================

Depth rows describe what the engine *did* to its book (docs/engine-semantics.md), not the
raw message: a ``clean=true`` push is one ``DEPTH_CLEAR_EVENT`` row (no side flag: both
sides) followed by ``DEPTH_SNAPSHOT_EVENT`` rows; an increment gives ``DEPTH_EVENT`` rows.
Every inserted or updated level is a row with its new amount; a deleted level, a level
that fell off the end of a full side and every crossed level removed is a row with
``qty = 0``; deletions of absent levels and levels discarded beyond the depth give no row.
So applying the rows in order to an empty book (:func:`replay_books`) rebuilds exactly the
engine's books. ``Engine.reset_books()`` logs a side-less clear row per book that had data.

The frame id lives in hftbacktest's ``fval`` field (which hftbacktest leaves to the user)
so that the rows keep hftbacktest's exact layout; :func:`frame_ids` reads it as integers.
The per-frame hook (:class:`fastfeed.sinks.FrameChange`) hands out each frame's rows, and
:func:`snapshot_rows` rebuilds a consumer that fell behind (``EventsOverwritten``).

Live/stale (``Book.live``): hftbacktest has no event for it, so ``Engine.mark_stale()``
logs no row. In the rows, a book is live from a ``DEPTH_SNAPSHOT`` sequence (after its
clear row) until a ``reset_books()`` clear row that is not followed by snapshot rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

from .book import BookSide

__all__ = [
    "BUY_EVENT",
    "DEPTH_CLEAR_EVENT",
    "DEPTH_EVENT",
    "DEPTH_SNAPSHOT_EVENT",
    "EVENT_DTYPE",
    "EXCH_EVENT",
    "KIND_MASK",
    "KIND_NAMES",
    "LOCAL_EVENT",
    "SELL_EVENT",
    "TRADE_EVENT",
    "events_to_pandas",
    "frame_ids",
    "kinds",
    "replay_books",
    "sides",
    "snapshot_rows",
]

EXCH_EVENT = 1 << 31
LOCAL_EVENT = 1 << 30
BUY_EVENT = 1 << 29
SELL_EVENT = 1 << 28

DEPTH_EVENT = 1
TRADE_EVENT = 2
DEPTH_CLEAR_EVENT = 3
DEPTH_SNAPSHOT_EVENT = 4

#: The kind lives in the low byte of ``ev``.
KIND_MASK = 0xFF
KIND_NAMES = {
    DEPTH_EVENT: "depth",
    TRADE_EVENT: "trade",
    DEPTH_CLEAR_EVENT: "depth_clear",
    DEPTH_SNAPSHOT_EVENT: "depth_snapshot",
}

#: hftbacktest's event row (64 bytes, aligned). Matches ``EventRecord`` in ``_events.pxd``.
EVENT_DTYPE = np.dtype(
    [
        ("ev", "u8"),
        ("exch_ts", "i8"),
        ("local_ts", "i8"),
        ("px", "f8"),
        ("qty", "f8"),
        ("order_id", "u8"),
        ("ival", "i8"),
        ("fval", "f8"),
    ],
    align=True,
)
assert EVENT_DTYPE.itemsize == 64


def kinds(rows: np.ndarray) -> npt.NDArray[np.uint8]:
    """The kind of every row (``ev & 0xFF``) as uint8."""
    ev: npt.NDArray[np.uint64] = rows["ev"]
    out: npt.NDArray[np.uint8] = (ev & np.uint64(KIND_MASK)).astype(np.uint8)
    return out


def sides(rows: np.ndarray) -> npt.NDArray[np.int8]:
    """+1 for ``BUY_EVENT`` rows, -1 for ``SELL_EVENT`` rows, 0 for neither (int8)."""
    ev: npt.NDArray[np.uint64] = rows["ev"]
    buy = (ev & np.uint64(BUY_EVENT)) != 0
    sell = (ev & np.uint64(SELL_EVENT)) != 0
    out: npt.NDArray[np.int8] = buy.astype(np.int8) - sell.astype(np.int8)
    return out


def frame_ids(rows: np.ndarray) -> np.ndarray:
    """The frame id of every row (the ``fval`` field) as int64."""
    return rows["fval"].astype(np.int64)


def snapshot_rows(engine: Any, symbols: Iterable[str] | None = None) -> np.ndarray:
    """Rows that rebuild the current books from nothing, in :data:`EVENT_DTYPE`: per book
    (of ``symbols``, default every book of ``engine``; an :class:`~fastfeed.Engine`, the
    reference engine or a live ``Feed``), a side-less ``DEPTH_CLEAR_EVENT`` row, then one
    row per level, asks best first, then bids best first: ``DEPTH_SNAPSHOT_EVENT`` rows
    for a live book, ``DEPTH_EVENT`` rows for a stale one (levels kept, not live; see
    above). ``local_ts = exch_ts`` = the book's last update time, ``fval`` = the engine's
    current frame id. Applied after a reset (:func:`replay_books` into new dict books, or a
    consumer's own book) they give exactly ``engine.book(sym)``, level by level: how a
    consumer resyncs after :class:`~fastfeed.errors.EventsOverwritten`. A new array (the
    caller's). Unknown symbols raise :class:`~fastfeed.errors.UnknownSymbol`."""
    eng: Any = getattr(engine, "engine", engine)  # a Feed -> its engine
    names = list(eng.books) if symbols is None else list(symbols)
    frame = float(eng.frames)
    xl = EXCH_EVENT | LOCAL_EVENT
    parts: list[np.ndarray] = []
    for name in names:
        book = eng.book(name)
        idx = eng.symbol_index(name)
        bids, asks = book.snapshot()
        kind = DEPTH_SNAPSHOT_EVENT if book.live else DEPTH_EVENT
        out = np.zeros(1 + len(asks) + len(bids), dtype=EVENT_DTYPE)
        ts = int(book.recv_ns)
        out["exch_ts"] = ts
        out["local_ts"] = ts
        out["ival"] = idx
        out["fval"] = frame
        out["ev"][0] = xl | DEPTH_CLEAR_EVENT
        na = len(asks)
        out["ev"][1 : 1 + na] = xl | kind | SELL_EVENT
        out["ev"][1 + na :] = xl | kind | BUY_EVENT
        if na:
            out["px"][1 : 1 + na] = asks[:, 0]
            out["qty"][1 : 1 + na] = asks[:, 1]
        if len(bids):
            out["px"][1 + na :] = bids[:, 0]
            out["qty"][1 + na :] = bids[:, 1]
        parts.append(out)
    if not parts:
        return np.zeros(0, dtype=EVENT_DTYPE)
    return np.concatenate(parts)


def events_to_pandas(rows: np.ndarray, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """A DataFrame of event rows: the raw fields, plus ``kind`` (name), ``side`` (+1/-1/0),
    ``symbol`` (name, when ``symbols`` is given) and ``exch_dt`` / ``local_dt`` (UTC)."""
    import pandas as pd

    rows = np.asarray(rows)
    if rows.dtype != EVENT_DTYPE:
        raise TypeError(f"expected EVENT_DTYPE rows, got {rows.dtype}")
    df: pd.DataFrame = pd.DataFrame({name: rows[name] for name in EVENT_DTYPE.names or ()})
    k = kinds(rows)
    names = np.array(["?"] * 256, dtype=object)
    for code, name in KIND_NAMES.items():
        names[code] = name
    df["kind"] = names[k]
    df["side"] = sides(rows)
    if symbols is not None:
        table = np.array(list(symbols) + [""], dtype=object)
        ival = rows["ival"]
        ok = (ival >= 0) & (ival < len(table) - 1)
        df["symbol"] = table[np.where(ok, ival, -1)]
    df["exch_dt"] = pd.to_datetime(rows["exch_ts"], unit="ns", utc=True)
    df["local_dt"] = pd.to_datetime(rows["local_ts"], unit="ns", utc=True)
    return df


DictBooks = dict[int, tuple[dict[float, float], dict[float, float]]]


def replay_books(rows: np.ndarray | Iterable[np.ndarray], books: DictBooks | None = None) -> DictBooks:
    """Apply depth rows to dict books ``{ival: ({bid px: qty}, {ask px: qty})}`` (created on
    first sight; pass ``books`` to continue: its dicts are updated in place). Trade rows are
    ignored. Each row sets one level as given (qty 0 removes it): the rows already carry
    every removal the engine made (crossing, trimming), so no book rule is applied again.
    The levels are kept by :class:`fastfeed.book.BookSide` (the reference book's sides), and
    each side dict comes out best first. Slow (a Python loop): meant for checks, not for
    backtests."""
    if books is None:
        books = {}
    sides: dict[int, tuple[BookSide, BookSide]] = {}
    chunks = [rows] if isinstance(rows, np.ndarray) else rows
    for chunk in chunks:
        for ev, px, qty, ival in zip(
            chunk["ev"].tolist(), chunk["px"].tolist(), chunk["qty"].tolist(), chunk["ival"].tolist()
        ):
            kind = ev & KIND_MASK
            if kind == TRADE_EVENT:
                continue
            book = sides.get(ival)
            if book is None:
                book = sides[ival] = _sides_of(books.setdefault(ival, ({}, {})))
            if kind == DEPTH_CLEAR_EVENT:
                if ev & BUY_EVENT or not ev & SELL_EVENT:
                    book[0].clear()
                if ev & SELL_EVENT or not ev & BUY_EVENT:
                    book[1].clear()
                continue
            (book[0] if ev & BUY_EVENT else book[1]).set(px, qty)
    for ival, (bid_side, ask_side) in sides.items():
        for levels, side in zip(books[ival], (bid_side, ask_side)):
            levels.clear()
            levels.update(side.levels())
    return books


def _sides_of(book: tuple[dict[float, float], dict[float, float]]) -> tuple[BookSide, BookSide]:
    """The dict book ``(bids, asks)`` given to :func:`replay_books` as two sides."""
    out = (BookSide(bids=True), BookSide(bids=False))
    for levels, side in zip(book, out):
        for px, qty in levels.items():
            side.set(px, qty)
    return out
