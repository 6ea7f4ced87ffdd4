from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t

from fastfeed._atomic cimport ff_store_release_i64

# Byte-for-byte the layout of fastfeed.layout.TRADE_DTYPE (56 bytes, aligned).
cdef struct TradeRecord:
    int64_t id
    int64_t seq
    double time
    int64_t recv_ns
    double price
    double amount
    int32_t symbol
    int8_t side


cdef class MirrorRing:
    # The ring every record ring shares (trades, event rows, tickers): 2 x capacity records,
    # each written at i and i + capacity, so the newest n are one contiguous slice.
    cdef object _arr               # numpy structured array, 2 x capacity records (mirror)
    cdef object _ro                # read-only array over _arr: views are slices of it
    cdef readonly Py_ssize_t capacity
    cdef uint64_t mask
    cdef readonly int64_t count    # records ever written = next sequence number
    cdef str _what                 # "trade", "event row", ...: the overwritten message
    cdef str _hint                 # appended to that message
    cdef object _overwritten       # the IndexError subclass since() raises
    cdef int64_t* shm_count        # published count in a shared-memory segment, or NULL

    cdef void* _allocate(self, Py_ssize_t capacity, int max_log2, str capacity_name,
                         object dtype, size_t itemsize, str what, object overwritten,
                         str hint) except NULL
    cdef void _set_buf(self, void* data) noexcept
    cdef int attach_shm(self, object arr, int64_t* count_ptr) except -1


cdef class TradeRing(MirrorRing):
    cdef TradeRecord* buf
    cdef void _set_buf(self, void* data) noexcept
    cdef public object symbols     # list of symbol names (index -> name), shared with Engine

    cdef void push(self, int64_t id, double time, int64_t recv_ns, double price,
                   double amount, int32_t symbol, int8_t side) noexcept


cdef inline void trade_put(TradeRecord* buf, uint64_t i, uint64_t capacity, int64_t seq,
                           int64_t id, double time, int64_t recv_ns, double price,
                           double amount, int32_t symbol, int8_t side) noexcept nogil:
    """Write trade record ``seq`` at ``buf[i]`` and at its mirror ``buf[i + capacity]``
    (``i = seq & mask``); the caller then advances and publishes ``count``."""
    cdef TradeRecord* r = &buf[i]
    cdef TradeRecord* m = &buf[i + capacity]
    # each field stored twice from registers (a struct copy would read the fresh record
    # back through the store buffer)
    r.id = id
    m.id = id
    r.seq = seq
    m.seq = seq
    r.time = time
    m.time = time
    r.recv_ns = recv_ns
    m.recv_ns = recv_ns
    r.price = price
    m.price = price
    r.amount = amount
    m.amount = amount
    r.symbol = symbol
    m.symbol = symbol
    r.side = side
    m.side = side


cdef inline void trade_push(TradeRing ring, int64_t id, double time, int64_t recv_ns,
                            double price, double amount, int32_t symbol,
                            int8_t side) noexcept:
    """``TradeRing.push``: the record written at ``i`` and at its mirror ``i + capacity``
    (``trade_put``); ``count`` then published."""
    trade_put(ring.buf, <uint64_t>ring.count & ring.mask, <uint64_t>ring.capacity, ring.count,
              id, time, recv_ns, price, amount, symbol, side)
    ring.count += 1
    if ring.shm_count != NULL:
        ff_store_release_i64(ring.shm_count, ring.count)
