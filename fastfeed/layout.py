"""Shared data layouts: numpy dtypes used by the compiled engine and the reference."""

from __future__ import annotations

import numpy as np

__all__ = ["TRADE_DTYPE", "SIDE_BUY", "SIDE_SELL"]

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
