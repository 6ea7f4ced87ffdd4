"""Shared data layouts: numpy dtypes used by the compiled engine and the reference, and
:func:`readonly`, how every view handed to users is made read-only."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["TRADE_DTYPE", "SIDE_BUY", "SIDE_SELL", "DriftRecord", "readonly"]

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
    if arr.size == 0:     # nothing to share (and memoryview cannot cast empty shapes)
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
