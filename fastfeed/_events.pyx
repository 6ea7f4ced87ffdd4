"""EventRing: the engine's opt-in log of applied book changes and stored trades.

Rows are hftbacktest events (:data:`fastfeed.events.EVENT_DTYPE`); what each row means is
documented in :mod:`fastfeed.events`. Like the trade ring, every row is written twice
(at ``i`` and ``i + capacity`` of a ``2 * capacity`` buffer) so the newest ``n`` rows are
one contiguous, zero-copy slice.
"""

from libc.stdint cimport int64_t, uint64_t

from fastfeed._atomic cimport ff_store_release_i64
from fastfeed._ring cimport MirrorRing

from fastfeed.errors import EventsOverwritten
from fastfeed.events import EVENT_DTYPE, events_to_pandas

__all__ = ["EventRing", "EventsOverwritten"]


cdef class EventRing(MirrorRing):
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
        self.buf = <EventRecord*>self._allocate(
            capacity, 36, "event log capacity", EVENT_DTYPE, sizeof(EventRecord), "event row",
            EventsOverwritten, "; use a larger event_log capacity or read more often")
        self.frame = 0

    cdef void _set_buf(self, void* data) noexcept:
        self.buf = <EventRecord*>data

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
        if self.shm_count != NULL:
            ff_store_release_i64(self.shm_count, self.count)

    def to_pandas(self, Py_ssize_t n=-1, symbols=None):
        """The newest ``n`` rows as a DataFrame (see :func:`fastfeed.events.events_to_pandas`)."""
        return events_to_pandas(self.latest(n), symbols)
