cimport cython
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t

from fastfeed._atomic cimport ff_store_release_i64
from fastfeed._parse cimport TickerC, uchar
from fastfeed._ring cimport MirrorRing

# Byte-for-byte the layout of fastfeed.layout.TICKER_DTYPE (152 bytes, aligned).
cdef struct TickerRecord:
    int64_t seq
    int64_t recv_ns
    int64_t timestamp
    double f[11]                   # fastfeed.layout.TICKER_FIELDS order
    char name[32]
    int32_t symbol
    int8_t all_ticker


cdef struct NameSlot:
    uint64_t hash
    int32_t index                  # -1 = empty slot
    int32_t length
    uchar name[32]


cdef class TickerRing(MirrorRing):
    cdef TickerRecord* buf
    cdef public object symbols     # Engine.ticker_symbols (index -> name), shared

    cdef void _set_buf(self, void* data) noexcept
    cdef void push(self, TickerRecord* r) noexcept


cdef inline void ticker_push(TickerRing ring, TickerRecord* r) noexcept:
    """``ring.push(r)`` inlined (TickerTable._store): sets ``r.seq``, writes the record
    and its mirror copy, publishes the count."""
    cdef uint64_t i = <uint64_t>ring.count & ring.mask
    r.seq = ring.count
    ring.buf[i] = r[0]
    ring.buf[i + <uint64_t>ring.capacity] = r[0]
    ring.count += 1
    if ring.shm_count != NULL:
        ff_store_release_i64(ring.shm_count, ring.count)


@cython.final
cdef class TickerTable:
    cdef object _arr               # numpy TICKER_DTYPE array, max_symbols rows
    cdef object _ro
    cdef TickerRecord* rows
    cdef readonly Py_ssize_t max_symbols
    cdef readonly list symbols     # index -> name
    cdef dict _index               # name -> index
    cdef NameSlot* slots           # open addressing: name bytes -> index
    cdef Py_ssize_t n_slots
    # counters
    cdef int64_t records           # records stored (history ring rows)
    cdef int64_t bad_shape
    cdef int64_t bad_symbol
    cdef int64_t bad_field
    cdef int64_t dropped_symbols   # records of symbols beyond max_symbols (history only)
    cdef int64_t n_slow            # pushes decoded in Python (exact fallback)

    cdef int _grow(self) except -1
    cdef int32_t index_of(self, const uchar* name, Py_ssize_t n, uint64_t h) except -2
    cdef int _store(self, TickerRing ring, TickerRecord* rec, Py_ssize_t n,
                    uint64_t h) except -1
    cdef int apply(self, TickerRing ring, const TickerC* recs, Py_ssize_t n,
                   Py_ssize_t bad_shape, Py_ssize_t bad_symbol, Py_ssize_t bad_field,
                   bint all_ticker, int64_t recv_ns) except -1
    cdef int apply_slow(self, TickerRing ring, bytes text, bint big_int, bint all_ticker,
                        int64_t recv_ns) except -1
