from libc.stdint cimport int64_t, uint64_t

from fastfeed._ring cimport MirrorRing

# Byte-for-byte the layout of fastfeed.events.EVENT_DTYPE (hftbacktest's event, 64 bytes).
cdef struct EventRecord:
    uint64_t ev
    int64_t exch_ts
    int64_t local_ts
    double px
    double qty
    uint64_t order_id
    int64_t ival
    double fval

cdef enum:
    EV_DEPTH = 1
    EV_TRADE = 2
    EV_DEPTH_CLEAR = 3
    EV_DEPTH_SNAPSHOT = 4

cdef extern from *:
    """
    #define FF_EV_EXCH  (1ULL << 31)
    #define FF_EV_LOCAL (1ULL << 30)
    #define FF_EV_BUY   (1ULL << 29)
    #define FF_EV_SELL  (1ULL << 28)
    """
    uint64_t FF_EV_EXCH
    uint64_t FF_EV_LOCAL
    uint64_t FF_EV_BUY
    uint64_t FF_EV_SELL


cdef class EventRing(MirrorRing):
    cdef EventRecord* buf
    cdef readonly int64_t frame    # frame id stamped on new rows (in fval); the engine sets it

    cdef void _set_buf(self, void* data) noexcept

    cdef void push(self, uint64_t ev, int64_t exch_ts, int64_t local_ts, double px,
                   double qty, uint64_t order_id, int64_t ival) noexcept
