"""MirrorRing, the one record ring (trades, event rows, tickers), and TradeRing: a
fixed-capacity ring of trades as a numpy structured array.

Every record is written twice, at ``i`` and ``i + capacity`` of a ``2 * capacity`` buffer
(a mirror), so the newest ``n`` records are always one contiguous slice: ``latest(n)`` and
``since(seq)`` are zero-copy views, oldest to newest.
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t

import numpy as np

cimport numpy as cnp

from fastfeed.errors import InternalError, TradesOverwritten
from fastfeed.layout import TRADE_DTYPE, readonly, trades_frame

cnp.import_array()

__all__ = ["MirrorRing", "TradeRing", "TradesOverwritten", "trades_frame"]


cdef class MirrorRing:
    """The ring shared by :class:`TradeRing`, :class:`~fastfeed._events.EventRing` and
    :class:`~fastfeed._ticker.TickerRing` (not made directly): the newest ``capacity``
    records (``capacity`` rounded up to a power of two) in a ``2 * capacity`` buffer, each
    record written at ``i`` and ``i + capacity``, so the newest ``n`` records are always one
    contiguous slice.

    ``count`` is the number of records ever written; record ``s`` (0-based, its ``seq``) is
    kept until ``s + capacity`` records exist. Views from ``latest(n)`` / ``since(seq)``
    share memory with the ring and are read-only (writes and ``flags.writeable = True``
    raise ``ValueError``): a view keeps the records it was taken with (it never grows) and
    stays correct until ``capacity - n`` more records are written, after which its oldest
    records are overwritten in place (check ``seq``; ``.copy()`` it to keep it). Its memory
    stays valid as long as the view lives.
    """

    def __cinit__(self, *args, **kwargs):
        if type(self) is MirrorRing:
            raise TypeError("MirrorRing is the base of the record rings; make a TradeRing, "
                            "EventRing or TickerRing")
        self.count = 0
        self.shm_count = NULL

    cdef void* _allocate(self, Py_ssize_t capacity, int max_log2, str capacity_name,
                         object dtype, size_t itemsize, str what, object overwritten,
                         str hint) except NULL:
        """Allocate the mirror buffer (called once by the subclass's ``__cinit__``); returns
        its data pointer for the subclass's typed ``buf``."""
        cdef Py_ssize_t cap = 1
        if capacity < 1 or capacity > (<Py_ssize_t>1 << max_log2):
            raise ValueError(f"{capacity_name} must be between 1 and 2**{max_log2}")
        while cap < capacity:
            cap <<= 1
        if itemsize != <size_t>dtype.itemsize:
            raise InternalError(f"the C record and {dtype} disagree on the record size")
        self.capacity = cap
        self.mask = <uint64_t>(cap - 1)
        self._arr = np.zeros(2 * cap, dtype=dtype)
        self._ro = readonly(self._arr)
        self._what = what
        self._overwritten = overwritten
        self._hint = hint
        return cnp.PyArray_DATA(self._arr)

    cdef void _set_buf(self, void* data) noexcept:
        pass                       # each subclass points its typed ``buf`` at ``data``

    cdef int attach_shm(self, object arr, int64_t* count_ptr) except -1:
        """Move the (empty) ring into shared memory: ``arr`` a writable ``2 * capacity``
        array of the ring's dtype over the segment, ``count_ptr`` where ``count`` is
        published (the subclass's ``push`` stores it with a store-release after the record,
        both mirror copies, is complete). Called by the Engine."""
        if self.count:
            raise InternalError(f"attach_shm on a {self._what} ring that was already used")
        if (arr.dtype != self._arr.dtype or arr.shape != (2 * self.capacity,)
                or not arr.flags.c_contiguous or not arr.flags.writeable):
            raise ValueError(f"shared-memory {self._what} ring must be a writable "
                             f"2 x capacity {self._arr.dtype} array")
        self._arr = arr
        self._set_buf(cnp.PyArray_DATA(arr))
        self._ro = readonly(arr)
        self.shm_count = count_ptr
        return 0

    @property
    def shared(self):
        """True when the records live in a shared-memory segment (``Engine(shm_name=...)``)."""
        return self.shm_count != NULL

    def __len__(self):
        """Number of records currently held (at most ``capacity``)."""
        return self.count if self.count < self.capacity else self.capacity

    def latest(self, Py_ssize_t n=-1):
        """Zero-copy read-only view of the newest ``n`` records (all held if ``n < 0``),
        oldest first (valid until ``capacity - n`` more records: see the class doc)."""
        cdef Py_ssize_t held = self.count if self.count < self.capacity else self.capacity
        cdef Py_ssize_t start
        if n < 0 or n > held:
            n = held
        start = <Py_ssize_t>(<uint64_t>(self.count - n) & self.mask)
        return self._ro[start:start + n]

    def since(self, int64_t seq):
        """Zero-copy read-only view of records ``seq, seq + 1, ...`` up to the newest,
        oldest first (valid as ``latest``); empty if ``seq >= count``.

        Raises the ring's ``...Overwritten`` error (an ``IndexError``:
        :class:`~fastfeed.errors.TradesOverwritten`, ``EventsOverwritten``,
        ``TickersOverwritten``) if record ``seq`` was overwritten.
        """
        if seq < 0:
            raise ValueError("seq must be >= 0")
        if seq >= self.count:
            return self._ro[0:0]
        if self.count - seq > self.capacity:
            raise self._overwritten(
                f"{self._what} {seq} was overwritten (ring holds {self.count - self.capacity}.."
                f"{self.count - 1}){self._hint}"
            )
        return self.latest(self.count - seq)

    def __repr__(self):
        return f"<{type(self).__name__} count={self.count} capacity={self.capacity}>"


cdef class TradeRing(MirrorRing):
    """Ring of the latest ``capacity`` trades (``capacity`` rounded up to a power of two).

    ``count`` is the number of trades ever written; the record with sequence number ``s``
    (its ``seq`` field) is kept until ``s + capacity`` trades exist.

    Views from ``latest(n)`` / ``since(seq)`` share memory with the ring and are
    read-only (writes and ``flags.writeable = True`` raise ``ValueError``). A view keeps
    the records it was taken with -- it never grows; take a new one for newer trades --
    and stays correct until ``capacity - n`` more trades are written; after that its
    oldest records are overwritten in place (check the ``seq`` field). Copy it
    (``.copy()``, a writable array of your own) to keep it longer. The memory itself
    stays valid as long as the view lives.
    """

    def __cinit__(self, Py_ssize_t capacity=65536, symbols=None):
        self.buf = <TradeRecord*>self._allocate(capacity, 40, "capacity", TRADE_DTYPE,
                                                sizeof(TradeRecord), "trade",
                                                TradesOverwritten, "")
        self.symbols = symbols if symbols is not None else []

    cdef void _set_buf(self, void* data) noexcept:
        self.buf = <TradeRecord*>data

    cdef void push(self, int64_t id, double time, int64_t recv_ns, double price,
                   double amount, int32_t symbol, int8_t side) noexcept:
        trade_push(self, id, time, recv_ns, price, amount, symbol, side)

    def to_pandas(self, Py_ssize_t n=-1):
        """The newest ``n`` trades as a DataFrame (a copy): symbol names resolved, ``time``
        and ``recv_ns`` both raw and as datetimes (``exch_dt``, ``recv_dt``, UTC)."""
        return trades_frame(self.latest(n), self.symbols)
