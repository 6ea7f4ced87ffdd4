from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t

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


cdef class TradeRing:
    cdef object _arr               # numpy structured array, 2 x capacity records (mirror)
    cdef object _ro                # read-only array over _arr: views are slices of it
    cdef TradeRecord* buf
    cdef readonly Py_ssize_t capacity
    cdef uint64_t mask
    cdef readonly int64_t count    # trades ever written = next sequence number
    cdef public object symbols     # list of symbol names (index -> name), shared with Engine
    cdef int64_t* shm_count        # published count in a shared-memory segment, or NULL

    cdef void push(self, int64_t id, double time, int64_t recv_ns, double price,
                   double amount, int32_t symbol, int8_t side) noexcept
    cdef int attach_shm(self, object arr, int64_t* count_ptr) except -1
