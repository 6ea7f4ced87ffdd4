from libc.stdint cimport int32_t, int64_t, uint64_t

from fastfeed._book cimport Book
from fastfeed._events cimport EventRing
from fastfeed._inflate cimport Inflater
from fastfeed._parse cimport M_COUNT, Parser, Trade, uchar
from fastfeed._ring cimport TradeRing
from fastfeed._shm cimport ShmWriter
from fastfeed._ticker cimport TickerRing, TickerTable

cdef enum:
    N_REASONS = 11

cdef enum:
    D_TEXT_TOO_LARGE = -100        # Engine._decode: a plain-JSON payload beyond max_frame
    FEED_BATCH = 16                # feed_many: frames decoded per GIL release (at most)

cdef struct SymSlot:
    uint64_t hash
    int32_t index                  # -1 = empty slot
    int32_t length
    uchar name[32]


cdef struct DriftC:                # one drift_log entry (DriftRecord once read)
    int64_t seq
    int64_t recv_ns
    int64_t symbol                 # symbol index
    int64_t missing
    int64_t extra
    int64_t changed


cdef struct Dedup:                 # per symbol: the newest stored trades (section 4)
    # An entry is a trade's id (what a lookup scans) and the sequence number of its record
    # in the trade ring, where the whole trade is compared on an id match. Before the ring
    # overwrites a record that is still an entry here, the trade is copied to spill (same
    # slot): those entries are always the oldest ones, ``spilled`` of them. All three
    # arrays are NULL until the first trade, then grow together up to the window.
    int64_t* ids
    int64_t* seqs
    Trade* spill
    int64_t hi                     # highest id held (-1: empty)
    int64_t last                   # id of the last stored trade (-1: none)
    int32_t cap                    # entries allocated
    int32_t n                      # entries held (<= window)
    int32_t head                   # once full (n == window): the oldest entry, next to go
    int32_t spilled                # the oldest entries whose trade is in spill


cdef class Engine:
    cdef Inflater inflater
    cdef Parser parser             # the parser of the frame being applied
    cdef list _parsers             # feed_many's FEED_BATCH parsers (created on first use)
    cdef void* _pp[FEED_BATCH]     # ... the same objects, for the nogil decode loop
    cdef readonly Py_ssize_t depth
    cdef readonly Py_ssize_t max_symbols
    cdef readonly size_t max_frame
    cdef readonly TradeRing trades
    cdef readonly EventRing events  # opt-in event log (Engine(event_log=N)), else None
    cdef readonly TickerRing ticker_history  # every stored ticker record (history ring)
    cdef TickerTable _tickers      # latest ticker per symbol
    cdef ShmWriter _shm            # shared-memory segment (Engine(shm_name=...)), else None
    cdef bint _plain               # neither: books use the original apply, nothing else
    cdef bint _busy                # a thread is feeding (maybe without the GIL): EngineBusy
    cdef list _books               # symbol index -> Book or None
    # the same Books by pointer (borrowed from _books), NULL for None; dedup_cap entries
    cdef void** _bookp
    cdef list _symbols             # symbol index -> name
    cdef dict _index               # name -> symbol index
    cdef SymSlot* slots            # open-addressing table: symbol bytes -> index
    cdef Py_ssize_t n_slots
    cdef Dedup* dedup              # per symbol index: trade de-duplication window
    cdef Py_ssize_t dedup_cap
    cdef readonly Py_ssize_t trade_dedup_window
    cdef readonly bint drift_check  # compare snapshots with the live books they replace
    cdef double* scratch           # 4 * depth doubles: the rows a snapshot replaces
    cdef DriftC* drift_ring        # the newest drift_log_size drifts (slot: seq % size)
    cdef readonly Py_ssize_t drift_log_size
    # the last frame fed (the per-frame hook reads these: fastfeed.sinks)
    cdef readonly int last_kind      # its method code (M_REPLY .. M_UNKNOWN), -1 if rejected
    cdef readonly int32_t last_symbol  # its symbol index (depth / trades), else -1
    # counters
    cdef readonly int64_t frames     # frames fed, rejected ones included (= the frame id)
    cdef int64_t bytes_in
    cdef int64_t bytes_inflated
    cdef int64_t crossed
    cdef int64_t dup_trades        # dropped trades in all (= replayed + duplicate)
    cdef int64_t replayed_trades   # ... dropped from clean=true pushes
    cdef int64_t ooo_trades        # stored trades whose id was not above the last stored
    cdef int64_t drift_checks
    cdef int64_t drifted
    cdef int64_t msg_counts[M_COUNT]
    cdef int64_t rejects[N_REASONS]

    cdef object feed_ptr(self, const uchar* data, Py_ssize_t size, int64_t recv_ns, bint text,
                         bint stable=*)
    cdef object _feed_obj(self, object payload, int64_t recv_ns)
    cdef int _enter(self) except -1
    cdef int _feed_batch(self, list batch, int64_t recv_ns, bint raise_errors,
                         list out) except -1
    cdef int32_t _symbol_index(self, const uchar* name, Py_ssize_t n, uint64_t h) except -1
    cdef int32_t _register(self, str name) except -1
    cdef Book _book_at(self, int32_t idx)
    cdef object _lookup(self, object symbol, bint create)
    cdef int _dedup_reserve(self, Dedup* d, Py_ssize_t k) except -1
    cdef void _apply_checked(self, Book book, int32_t idx, int64_t recv_ns) noexcept
    cdef void _drift_found(self, int32_t idx, int64_t recv_ns, Py_ssize_t* counts) noexcept
    cdef object _reject_parse(self, int code)
    cdef object _reject_symbol_limit(self)
