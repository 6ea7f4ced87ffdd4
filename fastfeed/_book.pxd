from libc.stdint cimport int64_t

from fastfeed._atomic cimport ff_book_hdr
from fastfeed._events cimport EventRing
from fastfeed._parse cimport Level


cdef extern from "_bookops.h":
    # row operations on an end-anchored side (a private book's rows; ff_lower: any sorted
    # rows): see _bookops.h. Level arrays are passed as (price, amount) pairs of doubles
    # (fastfeed/_parse.pyx checks that layout at import).
    Py_ssize_t ff_lower(const double* a, Py_ssize_t n, double price, int desc) noexcept nogil
    Py_ssize_t ff_upsert_end(double* base, Py_ssize_t n, Py_ssize_t cap, Py_ssize_t i,
                             double price, double amount) noexcept nogil
    Py_ssize_t ff_apply_end(double* ab, Py_ssize_t* pna, double* bb, Py_ssize_t* pnb,
                            Py_ssize_t cap, const double* asks, Py_ssize_t n_asks,
                            const double* bids, Py_ssize_t n_bids) noexcept nogil


cdef class Book:
    cdef readonly str symbol
    cdef readonly Py_ssize_t depth
    cdef object _bid_arr           # numpy float64 (depth, 2), rows [price, amount]
    cdef object _ask_arr
    cdef object _bid_ro            # read-only arrays over the same memory (layout.readonly):
    cdef object _ask_ro            # every view handed out is a slice of these
    cdef double* bid               # data pointers of the arrays above
    cdef double* ask
    cdef readonly Py_ssize_t n_bids
    cdef readonly Py_ssize_t n_asks
    cdef readonly int64_t version
    cdef readonly int64_t recv_ns
    cdef ff_book_hdr* hdr          # shared-memory header (seqlock, counts), NULL if private
    cdef bint checksum             # also publish ff_book_checksum (shared memory only)
    # front: rows at the start of the arrays (shared memory), else at the end
    # (rows depth-n..depth-1), best first either way
    cdef bint front
    cdef readonly bint live        # a clean snapshot applied since creation / reset / stale
    cdef readonly int64_t stale_since  # ns the book last went stale; 0 while live or never live
    cdef readonly int64_t drift_checks  # clean snapshots compared with the live book they replaced
    cdef readonly int64_t drifts   # of those, the ones that differed
    cdef readonly int64_t last_drift    # levels that differed in the last check

    cdef void clear(self) noexcept nogil
    cdef Py_ssize_t apply(self, const Level* asks, Py_ssize_t n_asks, const Level* bids,
                          Py_ssize_t n_bids, bint clean, int64_t recv_ns) noexcept nogil
    cdef Py_ssize_t apply_ex(self, const Level* asks, Py_ssize_t n_asks, const Level* bids,
                             Py_ssize_t n_bids, bint clean, int64_t recv_ns, EventRing log,
                             int64_t sym) noexcept
    cdef Py_ssize_t _apply_logged(self, const Level* asks, Py_ssize_t n_asks,
                                  const Level* bids, Py_ssize_t n_bids, bint clean,
                                  int64_t recv_ns, EventRing log, int64_t sym) noexcept
    cdef void reset(self, EventRing log, int64_t sym, int64_t now_ns) noexcept
    cdef bint mark_stale(self, int64_t now_ns) noexcept
    cdef void save_rows(self, double* out) noexcept nogil
    cdef Py_ssize_t drift_compare(self, const double* old, Py_ssize_t old_bids,
                                  Py_ssize_t old_asks, Py_ssize_t* counts) noexcept nogil
    cdef Py_ssize_t drift_snapshot(self, const Level* asks, Py_ssize_t n_asks,
                                   const Level* bids, Py_ssize_t n_bids, int64_t recv_ns,
                                   double* spare, Py_ssize_t* counts) noexcept nogil
    cdef void _publish_begin(self) noexcept nogil
    cdef void _publish_end(self) noexcept nogil
    cdef int attach_shm(self, object bid_arr, object ask_arr, ff_book_hdr* hdr,
                        bint checksum) except -1


cdef inline Py_ssize_t book_apply(Book b, const Level* asks, Py_ssize_t n_asks,
                                  const Level* bids, Py_ssize_t n_bids, bint clean,
                                  int64_t recv_ns) noexcept nogil:
    """``b.apply(...)`` (same result), with an increment to a private book inlined into the
    caller: ``ff_apply_end`` directly, not through the Book's vtable (the engine's depth
    path, another extension module). Snapshots and shared-memory books: ``b.apply``."""
    cdef Py_ssize_t crossed
    if clean or b.front:
        return b.apply(asks, n_asks, bids, n_bids, clean, recv_ns)
    crossed = ff_apply_end(b.ask, &b.n_asks, b.bid, &b.n_bids, b.depth,
                           <const double*>asks, n_asks, <const double*>bids, n_bids)
    b.version += 1
    b.recv_ns = recv_ns
    return crossed
