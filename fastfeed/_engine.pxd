from libc.stdint cimport int32_t, int64_t, uint64_t

from fastfeed._book cimport Book
from fastfeed._events cimport EventRing
from fastfeed._inflate cimport Inflater
from fastfeed._parse cimport M_COUNT, Parser, uchar
from fastfeed._ring cimport TradeRing
from fastfeed._shm cimport ShmWriter

cdef enum:
    N_REASONS = 11

cdef struct SymSlot:
    uint64_t hash
    int32_t index                  # -1 = empty slot
    int32_t length
    uchar name[32]


cdef class Engine:
    cdef Inflater inflater
    cdef Parser parser
    cdef readonly Py_ssize_t depth
    cdef readonly Py_ssize_t max_symbols
    cdef readonly size_t max_frame
    cdef readonly TradeRing trades
    cdef readonly EventRing events  # opt-in event log (Engine(event_log=N)), else None
    cdef ShmWriter _shm            # shared-memory segment (Engine(shm_name=...)), else None
    cdef bint _plain               # neither: books use the original apply, nothing else
    cdef list _books               # symbol index -> Book or None
    cdef list _symbols             # symbol index -> name
    cdef dict _index               # name -> symbol index
    cdef SymSlot* slots            # open-addressing table: symbol bytes -> index
    cdef Py_ssize_t n_slots
    cdef int64_t* hwm              # per symbol index: highest trade id seen
    cdef Py_ssize_t hwm_cap
    # counters
    cdef int64_t frames
    cdef int64_t bytes_in
    cdef int64_t bytes_inflated
    cdef int64_t crossed
    cdef int64_t dup_trades
    cdef int64_t msg_counts[M_COUNT]
    cdef int64_t rejects[N_REASONS]

    cdef object feed_ptr(self, const uchar* data, Py_ssize_t size, int64_t recv_ns, bint text)
    cdef int32_t _symbol_index(self, const uchar* name, Py_ssize_t n) except -1
    cdef int32_t _register(self, str name) except -1
    cdef Book _book_at(self, int32_t idx)
    cdef object _reject_parse(self, int code)
    cdef object _reject_symbol_limit(self)
