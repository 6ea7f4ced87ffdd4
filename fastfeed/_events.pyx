"""EventRing: the engine's opt-in log of applied book changes and stored trades.

Rows are hftbacktest events (:data:`fastfeed.events.EVENT_DTYPE`); what each row means is
documented in :mod:`fastfeed.events`. Like the trade ring, every row is written twice
(at ``i`` and ``i + capacity`` of a ``2 * capacity`` buffer) so the newest ``n`` rows are
one contiguous, zero-copy slice.
"""

from libc.stdint cimport int64_t, uint64_t

import numpy as np

cimport numpy as cnp

from fastfeed.errors import EventsOverwritten, InternalError
from fastfeed.events import EVENT_DTYPE, events_to_pandas
from fastfeed.layout import readonly

cnp.import_array()

__all__ = ["EventRing", "EventsOverwritten"]


cdef class EventRing:
    """Ring of the newest ``capacity`` event rows (``capacity`` rounded up to a power of two).

    ``count`` is the number of rows ever written; row ``s`` (0-based) is kept until
    ``s + capacity`` rows exist. Views from ``latest(n)`` / ``since(seq)`` share memory with
    the ring and are read-only (writes and ``flags.writeable = True`` raise
    ``ValueError``): a view keeps the rows it was taken with (it never grows) and stays
    correct until ``capacity - n`` more rows are written, after which its oldest rows are
    overwritten in place (``.copy()`` it to keep it). Its memory stays valid as long as
    the view lives.

    ``frame`` is the frame id stamped into the ``fval`` field of every row written from
    now on (the engine sets it to its frame number before each frame and to 0 for rows
    written outside a frame, such as ``reset_books()``); see :mod:`fastfeed.events`.
    """

    def __cinit__(self, Py_ssize_t capacity=1 << 16):
        cdef Py_ssize_t cap = 1
        if capacity < 1 or capacity > (1 << 36):
            raise ValueError("event log capacity must be between 1 and 2**36")
        while cap < capacity:
            cap <<= 1
        if sizeof(EventRecord) != EVENT_DTYPE.itemsize:
            raise InternalError("EventRecord and EVENT_DTYPE disagree")
        self.capacity = cap
        self.mask = <uint64_t>(cap - 1)
        self._arr = np.zeros(2 * cap, dtype=EVENT_DTYPE)
        self.buf = <EventRecord*>cnp.PyArray_DATA(self._arr)
        self._ro = readonly(self._arr)
        self.count = 0
        self.frame = 0

    cdef void push(self, uint64_t ev, int64_t exch_ts, int64_t local_ts, double px,
                   double qty, uint64_t order_id, int64_t ival) noexcept:
        cdef uint64_t i = <uint64_t>self.count & self.mask
        cdef EventRecord* r = &self.buf[i]
        r.ev = ev
        r.exch_ts = exch_ts
        r.local_ts = local_ts
        r.px = px
        r.qty = qty
        r.order_id = order_id
        r.ival = ival
        r.fval = <double>self.frame
        self.buf[i + <uint64_t>self.capacity] = r[0]
        self.count += 1

    def __len__(self):
        """Number of rows currently held (at most ``capacity``)."""
        return self.count if self.count < self.capacity else self.capacity

    def latest(self, Py_ssize_t n=-1):
        """Zero-copy read-only view of the newest ``n`` rows (all held if ``n < 0``),
        oldest first (valid until ``capacity - n`` more rows: see the class doc)."""
        cdef Py_ssize_t held = self.count if self.count < self.capacity else self.capacity
        cdef Py_ssize_t start
        if n < 0 or n > held:
            n = held
        start = <Py_ssize_t>(<uint64_t>(self.count - n) & self.mask)
        return self._ro[start:start + n]

    def since(self, int64_t seq):
        """Zero-copy read-only view of rows ``seq, seq + 1, ...`` up to the newest, oldest
        first (valid as ``latest``).

        Raises :class:`EventsOverwritten` (an ``IndexError``) if row ``seq`` was overwritten.
        """
        if seq < 0:
            raise ValueError("seq must be >= 0")
        if seq >= self.count:
            return self._ro[0:0]
        if self.count - seq > self.capacity:
            raise EventsOverwritten(
                f"event row {seq} was overwritten (ring holds {self.count - self.capacity}.."
                f"{self.count - 1}); use a larger event_log capacity or read more often"
            )
        return self.latest(self.count - seq)

    def to_pandas(self, Py_ssize_t n=-1, symbols=None):
        """The newest ``n`` rows as a DataFrame (see :func:`fastfeed.events.events_to_pandas`)."""
        return events_to_pandas(self.latest(n), symbols)

    def __repr__(self):
        return f"<EventRing count={self.count} capacity={self.capacity}>"
