"""Shared data layouts: numpy dtypes used by the compiled engine and the reference, and
:func:`readonly`, how every view handed to users is made read-only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "SIDE_BUY",
    "SIDE_SELL",
    "TICKER_DTYPE",
    "TICKER_FIELDS",
    "TICKER_NAME_LEN",
    "TRADE_DTYPE",
    "DriftRecord",
    "readonly",
    "ticker_from_row",
    "trades_frame",
]

SIDE_BUY = 1
SIDE_SELL = -1

#: One trade record. Matches ``TradeRecord`` in ``_ring.pxd`` byte for byte (56 bytes).
#: ``seq`` is the ring's monotonic sequence number, ``time`` the exchange time in seconds
#: as sent, ``recv_ns`` the local receive time of the frame, ``side`` +1 buy / -1 sell,
#: ``symbol`` an index into ``Engine.symbols``.
TRADE_DTYPE = np.dtype(
    [
        ("id", "<i8"),
        ("seq", "<i8"),
        ("time", "<f8"),
        ("recv_ns", "<i8"),
        ("price", "<f8"),
        ("amount", "<f8"),
        ("symbol", "<i4"),
        ("side", "i1"),
    ],
    align=True,
)
assert TRADE_DTYPE.itemsize == 56

#: The float fields of a ticker, in record order (``TickerC.f`` in ``_parse.pxd``); a field
#: the push left out (or sent as ``null`` / ``""``) is NaN.
TICKER_FIELDS = (
    "last",
    "last_qty",
    "best_bid",
    "best_bid_size",
    "best_ask",
    "best_ask_size",
    "open_24h",
    "low_24h",
    "high_24h",
    "base_volume_24h",
    "quote_volume_24h",
)
#: Bytes of the ``name`` field (the longest symbol, ``protocol.MAX_SYMBOL_LEN``).
TICKER_NAME_LEN = 32

#: One ticker record: a row of ``Engine.tickers`` (the latest per symbol) and of
#: ``Engine.ticker_history`` (every record, in arrival order). Matches ``TickerRecord`` in
#: ``_ticker.pxd`` byte for byte (152 bytes). ``seq`` is the record's sequence number in
#: the history ring, ``recv_ns`` the local receive time of the frame, ``timestamp`` the
#: exchange time in ms (0 when missing), the floats as in :class:`fastfeed.protocol.Ticker`
#: (NaN when missing), ``name`` the upper-cased symbol (ASCII, NUL-padded), ``symbol`` its
#: index into ``Engine.ticker_symbols`` (-1 in the history for a symbol beyond
#: ``max_ticker_symbols``, which has no row in the table), ``all_ticker`` 1 for an
#: ``all_ticker.update`` record, 0 for ``ticker.update``.
TICKER_DTYPE = np.dtype(
    [("seq", "<i8"), ("recv_ns", "<i8"), ("timestamp", "<i8")]
    + [(f, "<f8") for f in TICKER_FIELDS]
    + [("name", f"S{TICKER_NAME_LEN}"), ("symbol", "<i4"), ("all_ticker", "i1")],
    align=True,
)
assert TICKER_DTYPE.itemsize == 152


def ticker_from_row(row: np.void, symbols: list[str] | None = None) -> Any:
    """The :class:`fastfeed.protocol.Ticker` of one ``TICKER_DTYPE`` row (a new object;
    ``symbols``: ``Engine.ticker_symbols``, to reuse the name objects)."""
    from .protocol import Ticker

    idx = int(row["symbol"])
    name = symbols[idx] if symbols is not None and 0 <= idx < len(symbols) else row["name"].decode("ascii")
    return Ticker(
        symbol=name,
        last=float(row["last"]),
        last_qty=float(row["last_qty"]),
        best_bid=float(row["best_bid"]),
        best_bid_size=float(row["best_bid_size"]),
        best_ask=float(row["best_ask"]),
        best_ask_size=float(row["best_ask_size"]),
        open_24h=float(row["open_24h"]),
        low_24h=float(row["low_24h"]),
        base_volume_24h=float(row["base_volume_24h"]),
        quote_volume_24h=float(row["quote_volume_24h"]),
        timestamp=int(row["timestamp"]),
        recv_ns=int(row["recv_ns"]),
        all_ticker=bool(row["all_ticker"]),
        high_24h=float(row["high_24h"]),
    )


def trades_frame(view: np.ndarray, symbols: Sequence[str]) -> Any:
    """Trade records (``TRADE_DTYPE``) as a DataFrame: symbol names resolved, ``time`` and
    ``recv_ns`` both raw and as datetimes (``exch_dt``, ``recv_dt``, UTC). A copy. (The
    compiled ``TradeRing.to_pandas`` and the reference ring's both use it.)"""
    import pandas as pd

    names = np.array([*symbols, ""], dtype=object)
    sym = view["symbol"]
    df = pd.DataFrame(
        {
            "seq": view["seq"],
            "id": view["id"],
            "symbol": names[np.where((sym >= 0) & (sym < len(names) - 1), sym, -1)],
            "side": view["side"],
            "price": view["price"],
            "amount": view["amount"],
            "time": view["time"],
            "recv_ns": view["recv_ns"],
        }
    )
    df["exch_dt"] = pd.to_datetime(np.round(view["time"] * 1e6).astype("int64"), unit="us", utc=True)
    df["recv_dt"] = pd.to_datetime(view["recv_ns"], unit="ns", utc=True)
    return df


def readonly(arr: np.ndarray) -> np.ndarray:
    """A read-only array over the memory of the C-contiguous array ``arr`` (no copy) that
    cannot be made writable again.

    Plain ``view.flags.writeable = False`` is not enough: numpy lets anyone set the flag
    back on a view whose base array is writable. The array returned here is built on a
    read-only ``memoryview`` of ``arr``, so it and every slice, view or transpose of it
    refuse ``flags.writeable = True``, item assignment, ``sort()``, ``np.copyto`` ... with
    ``ValueError``. ``arr`` itself stays writable for its owner (the engine), and stays
    alive as long as the returned array (or any view of it) does.

    This guards against accidental writes; it is not a security boundary (code in the
    same process can always reach the memory, e.g. through ctypes).
    """
    if arr.size == 0:  # nothing to share (and memoryview cannot cast empty shapes)
        return np.frombuffer(b"", dtype=arr.dtype).reshape(arr.shape)
    ro = np.frombuffer(arr.data.cast("B").toreadonly(), dtype=arr.dtype)  # arr.data: memoryview(arr)
    return ro.reshape(arr.shape)


class DriftRecord(NamedTuple):
    """One snapshot that disagreed with the live book it replaced (``Engine.drift_log``).

    ``seq``: 1 for the engine's first drift, then 2, 3... (pick new records with
    ``r.seq > last_seen``); ``symbol``; ``recv_ns`` of the snapshot; levels within the
    prices both books cover that the snapshot has and the replaced book lacked
    (``missing``), that the replaced book had and the snapshot lacks (``extra``), and that
    both have with another amount (``changed``). See docs/engine-semantics.md.
    """

    seq: int
    symbol: str
    recv_ns: int
    missing: int
    extra: int
    changed: int
