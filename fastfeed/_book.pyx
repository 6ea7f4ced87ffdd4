"""Book: one symbol's order book in two fixed-capacity sorted float64 arrays.

Each side is a C-contiguous ``(depth, 2)`` float64 array of ``[price, amount]`` rows kept
sorted best-first (bids descending, asks ascending) plus a live row count. An update is a
search and a move of rows. The rules (deletions, trimming, crossing) are in
docs/engine-semantics.md; the pure-Python twin of these rules is fastfeed/book.py.

Layout ("end-anchored", docs/engine-semantics.md section 7): a private book keeps the
``n`` rows of a side at the END of its array, rows ``depth - n .. depth - 1``, best first.
Updates land near the top of the book, so an insert or a deletion moves the few rows
better than it one row toward the front instead of the many rows worse than it toward the
back, and removing the best ``k`` rows (crossing) moves nothing. Views stay best-first,
C-contiguous and zero-copy (a slice ``[depth - n:]``). A book in shared memory
(``attach_shm``) keeps its rows at the START (rows ``0 .. n - 1``): the segment's layout,
which readers in other processes rely on, is unchanged. A full side (``n == depth``) is
the same in both.

The end-anchored row operations are C in _bookops.h (also compiled into the engine, whose
depth path calls them without going through this class: ``book_apply`` in _book.pxd):
most updates there take no data-dependent branch (a 16-row compare for the row, a fixed
window of rows moved by -1, 0 or +1), see the comment at its top. The front-anchored ones
(``front``) are the Cython functions below; the logged path (``_apply_logged``) uses
either through ``upsert``.
"""

from libc.math cimport NAN
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memmove

from fastfeed._atomic cimport (
    FF_BOOK_F_LIVE,
    ff_book_checksum,
    ff_book_hdr,
    ff_fence_release,
    ff_store_relaxed_u64,
    ff_store_release_u64,
)
from fastfeed._events cimport (
    EV_DEPTH,
    EV_DEPTH_CLEAR,
    EV_DEPTH_SNAPSHOT,
    FF_EV_BUY,
    FF_EV_EXCH,
    FF_EV_LOCAL,
    FF_EV_SELL,
    EventRing,
)

import numpy as np

cimport numpy as cnp

from fastfeed.errors import InternalError
from fastfeed.layout import readonly

cnp.import_array()

__all__ = ["Book", "book_frame"]


cdef extern from *:
    """
    /* The drift comparison (Book.drift_compare): a merge walk of a side of the replaced
     * book (o) and the new one (n), both best first with distinct prices. A step compares
     * the two next prices: ``o`` advances unless the new row is better, ``n`` unless ours is
     * better, both when equal. ``ff_drift_walk`` walks both sides at once while both are
     * open (each step waits for the last one's loads: two independent walks overlap),
     * ``ff_drift_end`` finishes one alone and adds its counts. */
    typedef struct {
        const double *o, *oe, *n, *ne, *o0, *n0;
        Py_ssize_t common, changed;
    } ff_walk;

    static inline void ff_walk_init(ff_walk *w, const double *o, Py_ssize_t no,
                                    const double *n, Py_ssize_t nn)
    {
        Py_ssize_t i = 0, k = no < nn ? no : nn;
        w->o = w->o0 = o;
        w->oe = o + 2 * no;
        w->n = w->n0 = n;
        w->ne = n + 2 * nn;
        w->changed = 0;
        /* The rows both books share from the top (same price, same amount: a book that
         * did not drift is all such rows) are the walk's first steps, each advancing both
         * with ``common`` += 1: taken at a row compare each (one vector compare with SSE2;
         * ``==`` on both: a NaN amount stops here, and the walk counts it as changed). */
    #if defined(__SSE2__)
        while (i < k && _mm_movemask_pd(_mm_cmpeq_pd(_mm_loadu_pd(o + 2 * i),
                                                     _mm_loadu_pd(n + 2 * i))) == 3)
            i++;
    #else
        while (i < k && o[2 * i] == n[2 * i] && o[2 * i + 1] == n[2 * i + 1])
            i++;
    #endif
        w->o += 2 * i;
        w->n += 2 * i;
        w->common = i;
    }

    /* one step; desc: bids (higher is better). ``!(pn > po)`` / ``pn >= po`` rather than
     * ``==`` plus one ordering: two compares, each one flag test, no NaN special case */
    #define FF_DRIFT_STEP(o, n, common, changed, desc) do {                         \
        double po_ = (o)[0], pn_ = (n)[0];                                         \
        Py_ssize_t ao_ = (desc) ? !(pn_ > po_) : !(pn_ < po_);                     \
        Py_ssize_t an_ = (desc) ? (pn_ >= po_) : (pn_ <= po_);                     \
        Py_ssize_t eq_ = ao_ & an_;                                                \
        (changed) += eq_ & ((o)[1] != (n)[1]);                                     \
        (common) += eq_;                                                           \
        (o) += 2 * ao_;                                                            \
        (n) += 2 * an_;                                                            \
    } while (0)

    static inline void ff_drift_walk(ff_walk *b, ff_walk *a)
    {
        const double *bo = b->o, *boe = b->oe, *bn = b->n, *bne = b->ne;
        const double *ao = a->o, *aoe = a->oe, *an = a->n, *ane = a->ne;
        Py_ssize_t bc = 0, bx = 0, ac = 0, ax = 0, k;
        /* a step advances each side by at most a row: the smallest number of rows any of
         * the four has left is a number of steps none can run out in (checked once) */
        for (;;) {
            k = (boe - bo) < (bne - bn) ? (boe - bo) : (bne - bn);
            if ((aoe - ao) < k) k = aoe - ao;
            if ((ane - an) < k) k = ane - an;
            k /= 2;
            if (k <= 0)
                break;
            while (k--) {
                FF_DRIFT_STEP(bo, bn, bc, bx, 1);
                FF_DRIFT_STEP(ao, an, ac, ax, 0);
            }
        }
        b->o = bo; b->n = bn; b->common += bc; b->changed += bx;
        a->o = ao; a->n = an; a->common += ac; a->changed += ax;
    }

    /* finish the walk alone; c[0] += levels only in the new side (missing from ours),
     * c[1] += only in ours (extra), c[2] += same price, other amount (changed) */
    static inline void ff_drift_end(ff_walk *w, int desc, Py_ssize_t *c)
    {
        const double *o = w->o, *oe = w->oe, *n = w->n, *ne = w->ne;
        Py_ssize_t common = w->common, changed = w->changed;
        if (desc) {
            while (o < oe && n < ne)
                FF_DRIFT_STEP(o, n, common, changed, 1);
        } else {
            while (o < oe && n < ne)
                FF_DRIFT_STEP(o, n, common, changed, 0);
        }
        c[0] += (n - w->n0) / 2 - common;
        c[1] += (o - w->o0) / 2 - common;
        c[2] += changed;
    }

    /* fill_sorted's one pass over a side's levels lv[0 .. n) (price, amount pairs, n >= 2):
     * checks that the prices are strictly increasing (up) / decreasing (!up) and every
     * amount > 0 (a NaN fails both, as ``not x > y`` does), and writes the ``m`` best rows
     * best first to a[0 .. 2m): the first m levels in order (rev == 0), or the last m
     * reversed (rev == 1). Returns 1 when every level qualifies, else 0 (the rows written
     * are then meaningless). SSE2: a level is one vector (p, a); the test is (p, a) >
     * (p_prev, 0) with the prices negated for a decreasing side (exact: only compared),
     * one compare per level, the verdicts and-ed; elsewhere the same in scalars. */
    #if defined(__SSE2__)
    #define FF_FILL_TEST(i) do {                                                       \
        cur = _mm_xor_pd(_mm_loadu_pd(lv + 2 * (i)), sgn);                              \
        ok = _mm_and_pd(ok, _mm_cmpgt_pd(cur, _mm_move_sd(zero, prev)));                \
        prev = cur;                                                                    \
    } while (0)
    static inline int ff_fill_rows(double *a, const double *lv, Py_ssize_t n, Py_ssize_t m,
                                   int up, int rev)
    {
        const __m128d zero = _mm_setzero_pd();
        const __m128d sgn = up ? zero : _mm_set_sd(-0.0);
        __m128d prev, cur, ok;
        Py_ssize_t i;
        /* level 0: its amount only (its price is tested by level 1's test) */
        prev = _mm_xor_pd(_mm_loadu_pd(lv), sgn);
        ok = _mm_or_pd(_mm_cmpgt_pd(prev, zero), _mm_castsi128_pd(_mm_set_epi64x(0, -1)));
        if (!rev) {
            _mm_storeu_pd(a, _mm_loadu_pd(lv));
            for (i = 1; i < m; i++) {
                FF_FILL_TEST(i);
                _mm_storeu_pd(a + 2 * i, _mm_loadu_pd(lv + 2 * i));
            }
            for (; i < n; i++)
                FF_FILL_TEST(i);
        } else {
            double *d = a + 2 * (n - 1);                /* row n - 1 - i for level i */
            for (i = 1; i < n - m; i++)
                FF_FILL_TEST(i);
            if (n == m)
                _mm_storeu_pd(d, _mm_loadu_pd(lv));
            for (i = (n - m > 1 ? n - m : 1); i < n; i++) {
                FF_FILL_TEST(i);
                _mm_storeu_pd(d - 2 * i, _mm_loadu_pd(lv + 2 * i));
            }
        }
        return _mm_movemask_pd(ok) == 3;
    }
    #undef FF_FILL_TEST
    #else
    static inline int ff_fill_rows(double *a, const double *lv, Py_ssize_t n, Py_ssize_t m,
                                   int up, int rev)
    {
        Py_ssize_t i;
        int bad = 0;
        for (i = 0; i < m; i++) {
            const double *s = rev ? lv + 2 * (n - 1 - i) : lv + 2 * i;
            a[2 * i] = s[0];
            a[2 * i + 1] = s[1];
        }
        if (up) {
            for (i = 1; i < n; i++)
                bad |= !(lv[2 * i] > lv[2 * i - 2]);
        } else {
            for (i = 1; i < n; i++)
                bad |= !(lv[2 * i] < lv[2 * i - 2]);
        }
        for (i = 0; i < n; i++)
            bad |= !(lv[2 * i + 1] > 0.0);
        return !bad;
    }
    #endif
    """
    ctypedef struct ff_walk:
        pass
    void ff_walk_init(ff_walk* w, const double* o, Py_ssize_t no, const double* n,
                      Py_ssize_t nn) noexcept nogil
    void ff_drift_walk(ff_walk* b, ff_walk* a) noexcept nogil
    void ff_drift_end(ff_walk* w, int desc, Py_ssize_t* c) noexcept nogil
    int ff_fill_rows(double* a, const double* lv, Py_ssize_t n, Py_ssize_t m, int up,
                     int rev) noexcept nogil


cdef inline Py_ssize_t lower_asc(const double* a, Py_ssize_t n, double price) noexcept nogil:
    """First row whose price >= price (ascending side): ``ff_lower`` (_bookops.h)."""
    return ff_lower(a, n, price, 0)


cdef inline Py_ssize_t lower_desc(const double* a, Py_ssize_t n, double price) noexcept nogil:
    """First row whose price <= price (descending side): ``ff_lower`` (_bookops.h)."""
    return ff_lower(a, n, price, 1)


cdef inline double* top(double* base, Py_ssize_t n, Py_ssize_t cap, bint front) noexcept nogil:
    """The best row of a side of ``n`` rows in an array of ``cap`` rows at ``base``: the
    start (``front``, shared memory) or the ``n``-th row from the end (private books)."""
    if front:
        return base
    return base + 2 * (cap - n)


cdef inline Py_ssize_t upsert(double* base, Py_ssize_t n, Py_ssize_t cap, Py_ssize_t i,
                              double price, double amount, bint front) noexcept nogil:
    """Set ``amount`` at row i from the top (which holds ``price``) or insert a row there.
    New count. End-anchored (``ff_upsert_end``, _bookops.h): the ``i`` better rows move
    (toward the front), not the ``n - i`` worse ones; a full side (``n == cap``) is
    anchored at both ends. Front-anchored (shared memory): the worse rows move."""
    if not front:
        return ff_upsert_end(base, n, cap, i, price, amount)
    cdef double* a = base
    if i < n and a[2 * i] == price:
        if amount == 0.0:
            memmove(a + 2 * i, a + 2 * (i + 1), (n - i - 1) * 2 * sizeof(double))
            return n - 1
        a[2 * i + 1] = amount
        return n
    if amount == 0.0 or i >= cap:
        return n            # absent deletion, or worse than a full side: discarded
    if n == cap:
        n -= 1              # the worst row falls off
    memmove(a + 2 * (i + 1), a + 2 * i, (n - i) * 2 * sizeof(double))
    a[2 * i] = price
    a[2 * i + 1] = amount
    return n + 1


cdef inline Py_ssize_t fill_sorted(double* base, Py_ssize_t cap, const Level* lv, Py_ssize_t n,
                                   bint ascending, bint front) noexcept nogil:
    """Snapshot fast path: when the levels of one side are strictly monotonic in price
    (either direction) with every amount > 0, applying them one by one to an empty side
    leaves exactly the best ``cap`` of them, sorted; write that directly. Returns the new
    row count, or -1 when the levels do not qualify (the caller applies them one by one;
    the rows this wrote are beyond the side's count then, and are overwritten).

    One pass (``ff_fill_rows``): the direction is taken from the first two levels, the
    rows are written where that direction puts them while every level (those beyond
    ``cap`` too: a repeated price or a deletion among them changes which levels are left)
    is checked against it."""
    cdef Py_ssize_t m
    cdef bint up
    if n < 2:
        return -1
    up = lv[1].price > lv[0].price
    m = n if n < cap else cap
    if not ff_fill_rows(top(base, m, cap, front), <const double*>lv, n, m, up, up != ascending):
        return -1
    return m


cdef inline Py_ssize_t drop_front(double* base, Py_ssize_t n, Py_ssize_t cap, Py_ssize_t k,
                                  bint front) noexcept nogil:
    """Remove the best ``k`` rows (crossed levels). End-anchored: nothing moves."""
    if front:
        memmove(base, base + 2 * k, (n - k) * 2 * sizeof(double))
    return n - k


cdef inline Py_ssize_t crossed_rows(const double* a, Py_ssize_t n, double price,
                                    bint desc) noexcept nogil:
    """How many of the best rows of a side cross a new level at ``price`` on the other side:
    bids (``desc``) with price >= it, asks with price <= it."""
    cdef Py_ssize_t k
    if desc:
        k = lower_desc(a, n, price)
        while k < n and a[2 * k] >= price:
            k += 1
    else:
        k = lower_asc(a, n, price)
        while k < n and a[2 * k] <= price:
            k += 1
    return k


cdef inline Py_ssize_t apply_front(double* ab, Py_ssize_t* pna, double* bb, Py_ssize_t* pnb,
                                   Py_ssize_t cap, const Level* asks, Py_ssize_t n_asks,
                                   const Level* bids, Py_ssize_t n_bids) noexcept nogil:
    """``ff_apply_end`` (_bookops.h) for a front-anchored book (shared memory): the levels
    of one increment, asks then bids, with crossing; the counts updated. Crossed levels
    removed."""
    cdef Py_ssize_t i
    cdef Py_ssize_t k
    cdef Py_ssize_t crossed = 0
    cdef double price
    cdef double amount
    # The loops work on locals: the row stores (double) could alias the counts as far as
    # the compiler knows, which would reload them after every store.
    cdef Py_ssize_t na = pna[0]
    cdef Py_ssize_t nb = pnb[0]
    for i in range(n_asks):
        price = asks[i].price
        amount = asks[i].amount
        k = lower_asc(ab, na, price)
        na = upsert(ab, na, cap, k, price, amount, True)
        if amount != 0.0 and nb > 0 and bb[0] >= price:
            k = crossed_rows(bb, nb, price, True)
            crossed += k
            nb = drop_front(bb, nb, cap, k, True)
    for i in range(n_bids):
        price = bids[i].price
        amount = bids[i].amount
        k = lower_desc(bb, nb, price)
        nb = upsert(bb, nb, cap, k, price, amount, True)
        if amount != 0.0 and na > 0 and ab[0] <= price:
            k = crossed_rows(ab, na, price, False)
            crossed += k
            na = drop_front(ab, na, cap, k, True)
    pna[0] = na
    pnb[0] = nb
    return crossed


cdef inline Py_ssize_t log_upsert(double* base, Py_ssize_t n, Py_ssize_t cap, Py_ssize_t i,
                                  double price, double amount, bint front, EventRing log,
                                  uint64_t ev, int64_t ts, int64_t sym) noexcept:
    """``upsert`` that also logs what it changed (see fastfeed.events)."""
    cdef const double* a = top(base, n, cap, front)
    if i < n and a[2 * i] == price:
        log.push(ev, ts, ts, price, amount, 0, sym)                  # update or delete
    elif amount != 0.0 and i < cap:
        if n == cap:
            log.push(ev, ts, ts, a[2 * (n - 1)], 0.0, 0, sym)       # the worst row falls off
        log.push(ev, ts, ts, price, amount, 0, sym)                  # insert
    return upsert(base, n, cap, i, price, amount, front)


cdef inline void log_front(const double* a, Py_ssize_t k, EventRing log, uint64_t ev,
                           int64_t ts, int64_t sym) noexcept:
    """Log the removal of the first ``k`` rows (crossed levels)."""
    cdef Py_ssize_t j
    for j in range(k):
        log.push(ev, ts, ts, a[2 * j], 0.0, 0, sym)


cdef inline double* bid_top(Book b) noexcept nogil:
    """The best bid row of ``b`` (valid while ``n_bids > 0``), the rest best first after it."""
    return top(b.bid, b.n_bids, b.depth, b.front)


cdef inline double* ask_top(Book b) noexcept nogil:
    """The best ask row of ``b`` (valid while ``n_asks > 0``), the rest best first after it."""
    return top(b.ask, b.n_asks, b.depth, b.front)


cdef object _rows(const double* src, Py_ssize_t n):
    """A new (n, 2) float64 array holding a copy of ``n`` rows at ``src``."""
    cdef cnp.npy_intp dims[2]
    dims[0] = <cnp.npy_intp>n
    dims[1] = 2
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT64, 0)
    memcpy(cnp.PyArray_DATA(out), src, <size_t>n * 2 * sizeof(double))
    return out


def book_frame(bids, asks, symbol=None, version=None, recv_ns=None, live=None,
               stale_since=None):
    """A DataFrame of both sides: columns side ('bid'/'ask'), level, price, amount. The
    book's ``symbol``, ``version``, ``recv_ns`` and ``recv_dt`` (UTC), ``live`` and
    ``stale_since`` (ns, 0 while live) go to ``df.attrs`` (those given)."""
    import pandas as pd

    bids = np.asarray(bids, dtype=np.float64).reshape(-1, 2)
    asks = np.asarray(asks, dtype=np.float64).reshape(-1, 2)
    df = pd.DataFrame(
        {
            "side": np.array(["bid"] * len(bids) + ["ask"] * len(asks), dtype=object),
            "level": np.concatenate([np.arange(len(bids)), np.arange(len(asks))]),
            "price": np.concatenate([bids[:, 0], asks[:, 0]]),
            "amount": np.concatenate([bids[:, 1], asks[:, 1]]),
        }
    )
    if symbol is not None:
        df.attrs["symbol"] = symbol
    if version is not None:
        df.attrs["version"] = int(version)
    if recv_ns is not None:
        df.attrs["recv_ns"] = int(recv_ns)
        df.attrs["recv_dt"] = pd.Timestamp(int(recv_ns), unit="ns", tz="UTC")
    if live is not None:
        df.attrs["live"] = bool(live)
    if stale_since is not None:
        df.attrs["stale_since"] = int(stale_since)
    return df


cdef inline Py_ssize_t _drift_tally(Book book, ff_walk* b, ff_walk* a,
                                    Py_ssize_t* counts) noexcept nogil:
    """Walk a snapshot's rows against the rows they replace (``b`` and ``a``, set up by
    ``ff_walk_init``), set ``counts`` = [missing, extra, changed] and update the book's
    drift counters; returns the levels that differ."""
    cdef Py_ssize_t total
    counts[0] = 0
    counts[1] = 0
    counts[2] = 0
    ff_drift_walk(b, a)
    ff_drift_end(b, 1, counts)
    ff_drift_end(a, 0, counts)
    total = counts[0] + counts[1] + counts[2]
    book.drift_checks += 1
    book.last_drift = total
    if total:
        book.drifts += 1
    return total


cdef class Book:
    """The order book of one symbol.

    ``bids`` / ``asks`` are zero-copy, read-only numpy views ``(n, 2)`` of
    ``[price, amount]`` rows, best first. A view shares memory with the book:

    * its row count ``n`` is the count when it was taken and never changes, while its
      rows change in place with every later update (and may then hold levels that are no
      longer in the book: which rows a kept view shows depends on the layout, see
      docs/engine-semantics.md section 7). So a kept view is only right until the next
      update of this book: read it before feeding the engine again, take a fresh
      ``book.bids`` after, or keep a copy (``snapshot()``, ``.copy()``);
    * it is read-only (writes, ``sort()``, ``np.copyto``, setting ``flags.writeable``
      raise ``ValueError``): the book, and with ``shm_name`` the shared segment other
      processes read, can only be changed by the engine;
    * its memory stays valid as long as the view lives (for a book in shared memory,
      ``Engine(shm_name=...)``, the mapping stays until the last view is gone, even
      after ``Engine.close()``).

    ``snapshot()`` returns writable copies owned by the caller.

    Live or stale: ``live`` is True once a ``clean=true`` snapshot has been applied since
    the book was created, last reset (``Engine.reset_books()``) or last marked stale
    (``Engine.mark_stale()``, e.g. after ``unsubscribe_depth`` or while disconnected).
    Increments applied to a stale book still change it but do not make it live.
    ``stale_since`` is the time (ns) the book last went from live to stale, 0 while live
    and for a book that never was live. Both are published to shared memory with the rows.

    Drift (docs/engine-semantics.md): when a snapshot replaces a live book, the engine
    compares the two over the prices both cover; ``drift_checks`` counts those
    comparisons, ``drifts`` the ones that found a difference and ``last_drift`` the
    levels that differed (missing, extra or with another amount) in the last one.
    """

    def __cinit__(self, str symbol, Py_ssize_t depth=200):
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.symbol = symbol
        self.depth = depth
        self._bid_arr = np.zeros((depth, 2), dtype=np.float64)
        self._ask_arr = np.zeros((depth, 2), dtype=np.float64)
        self.bid = <double*>cnp.PyArray_DATA(self._bid_arr)
        self.ask = <double*>cnp.PyArray_DATA(self._ask_arr)
        self._bid_ro = readonly(self._bid_arr)
        self._ask_ro = readonly(self._ask_arr)
        self.n_bids = 0
        self.n_asks = 0
        self.version = 0
        self.recv_ns = 0
        self.hdr = NULL
        self.checksum = False
        self.front = False
        self.live = False
        self.stale_since = 0
        self.drift_checks = 0
        self.drifts = 0
        self.last_drift = 0

    cdef int attach_shm(self, object bid_arr, object ask_arr, ff_book_hdr* hdr,
                        bint checksum) except -1:
        """Move the (empty) book's rows into shared memory: ``bid_arr`` / ``ask_arr`` are
        writable C-contiguous ``(depth, 2)`` float64 arrays over the segment, ``hdr`` its
        seqlock header. Called by the Engine right after construction."""
        if self.n_bids or self.n_asks or self.version:
            raise InternalError("attach_shm on a book that was already used")
        for arr in (bid_arr, ask_arr):
            if (arr.dtype != np.float64 or arr.shape != (self.depth, 2)
                    or not arr.flags.c_contiguous or not arr.flags.writeable):
                raise ValueError("shared-memory book arrays must be writable C-contiguous "
                                 f"({self.depth}, 2) float64")
        self._bid_arr = bid_arr
        self._ask_arr = ask_arr
        self.bid = <double*>cnp.PyArray_DATA(bid_arr)
        self.ask = <double*>cnp.PyArray_DATA(ask_arr)
        self._bid_ro = readonly(bid_arr)
        self._ask_ro = readonly(ask_arr)
        self.hdr = hdr
        self.checksum = checksum
        self.front = True              # the segment's layout: rows from the start
        self._publish_begin()
        self._publish_end()
        return 0

    cdef void clear(self) noexcept nogil:
        self.n_bids = 0
        self.n_asks = 0

    cdef void _publish_begin(self) noexcept nogil:
        """Seqlock write side, opening: make ``seq`` odd before any row changes."""
        cdef uint64_t s = self.hdr.seq
        ff_store_relaxed_u64(&self.hdr.seq, s + 1)
        ff_fence_release()

    cdef void _publish_end(self) noexcept nogil:
        """Seqlock write side, closing: publish counts, version, checksum; ``seq`` even."""
        cdef ff_book_hdr* h = self.hdr
        h.n_bids = self.n_bids
        h.n_asks = self.n_asks
        h.version = self.version
        h.recv_ns = self.recv_ns
        h.flags = FF_BOOK_F_LIVE if self.live else 0
        h.stale_since = self.stale_since
        if self.checksum:
            h.checksum = ff_book_checksum(bid_top(self), self.n_bids, ask_top(self), self.n_asks,
                                          self.version)
        ff_store_release_u64(&h.seq, (h.seq | 1) + 1)

    cdef Py_ssize_t apply_ex(self, const Level* asks, Py_ssize_t n_asks, const Level* bids,
                             Py_ssize_t n_bids, bint clean, int64_t recv_ns, EventRing log,
                             int64_t sym) noexcept:
        """``apply`` inside the seqlock (shared memory) and/or with the event log."""
        cdef Py_ssize_t crossed
        if self.hdr != NULL:
            self._publish_begin()
        if log is None:
            crossed = self.apply(asks, n_asks, bids, n_bids, clean, recv_ns)
        else:
            crossed = self._apply_logged(asks, n_asks, bids, n_bids, clean, recv_ns, log, sym)
        if self.hdr != NULL:
            self._publish_end()
        return crossed

    cdef void reset(self, EventRing log, int64_t sym, int64_t now_ns) noexcept:
        """Empty both sides, ``version`` += 1, stale (``Engine.reset_books``)."""
        if self.hdr != NULL:
            self._publish_begin()
        if log is not None:
            log.push(FF_EV_EXCH | FF_EV_LOCAL | EV_DEPTH_CLEAR, now_ns, now_ns, 0.0, 0.0, 0, sym)
        self.n_bids = 0
        self.n_asks = 0
        self.version += 1
        if self.live:
            self.live = False
            self.stale_since = now_ns
        if self.hdr != NULL:
            self._publish_end()

    cdef bint mark_stale(self, int64_t now_ns) noexcept:
        """Live -> stale at ``now_ns``, levels kept (``Engine.mark_stale``). True if it
        was live; a stale book is left alone (``stale_since`` keeps the first time)."""
        if not self.live:
            return False
        if self.hdr != NULL:
            self._publish_begin()
        self.live = False
        self.stale_since = now_ns
        if self.hdr != NULL:
            self._publish_end()
        return True

    cdef void save_rows(self, double* out) noexcept nogil:
        """Copy the rows to ``out`` (bids at ``out``, asks at ``out + 2 * depth``)."""
        memcpy(out, bid_top(self), <size_t>self.n_bids * 2 * sizeof(double))
        memcpy(out + 2 * self.depth, ask_top(self), <size_t>self.n_asks * 2 * sizeof(double))

    cdef Py_ssize_t drift_compare(self, const double* old, Py_ssize_t old_bids,
                                  Py_ssize_t old_asks, Py_ssize_t* counts) noexcept nogil:
        """Compare the rows saved by ``save_rows`` (the book a snapshot replaced) with the
        current rows; ``counts`` = [missing, extra, changed] (set, not added to). Updates
        ``drift_checks`` / ``drifts`` / ``last_drift``; returns the levels that differ."""
        cdef ff_walk b
        cdef ff_walk a
        # Over the prices both sides cover (from the best down to the worse of the two
        # last rows): a walk stops when either side runs out, and the rows of the other
        # left then are exactly those beyond them (a row is passed only once every better
        # row of the other side is), so no bound is needed and what a walk passed is what
        # it counts. An empty side covers nothing: its walk stops at once.
        ff_walk_init(&b, old, old_bids, bid_top(self), self.n_bids)
        ff_walk_init(&a, old + 2 * self.depth, old_asks, ask_top(self), self.n_asks)
        return _drift_tally(self, &b, &a, counts)

    cdef Py_ssize_t drift_snapshot(self, const Level* asks, Py_ssize_t n_asks,
                                   const Level* bids, Py_ssize_t n_bids, int64_t recv_ns,
                                   double* spare, Py_ssize_t* counts) noexcept nogil:
        """``save_rows`` + ``apply(clean=True)`` + ``drift_compare`` in one, for the usual
        snapshot: both sides take ``fill_sorted``'s path and nothing crosses. The new rows
        are filled into ``spare`` (4 * depth doubles, bids then asks), compared with the
        live rows in place, then copied over them. Returns what ``drift_compare`` would
        (``counts`` set, the drift counters updated), with the book exactly as ``apply``
        leaves it (no crossed levels); or -1 when the snapshot is not such a one, with
        nothing changed (the caller takes the general path). Logs no events; a book in
        shared memory must be inside its seqlock (``_publish_begin``, the caller's)."""
        cdef Py_ssize_t cap = self.depth
        cdef double* sb = spare
        cdef double* sa = spare + 2 * cap
        cdef Py_ssize_t ma
        cdef Py_ssize_t mb
        cdef Py_ssize_t total
        cdef bint up
        cdef ff_walk b
        cdef ff_walk a
        if n_asks < 2 or n_bids < 2:
            return -1
        ma = n_asks if n_asks < cap else cap
        up = asks[1].price > asks[0].price
        if not ff_fill_rows(sa, <const double*>asks, n_asks, ma, up, not up):
            return -1
        mb = n_bids if n_bids < cap else cap
        up = bids[1].price > bids[0].price
        if not ff_fill_rows(sb, <const double*>bids, n_bids, mb, up, up):
            return -1
        if sb[0] >= sa[0]:
            return -1                   # crossed: apply removes asks (the general path)
        ff_walk_init(&b, bid_top(self), self.n_bids, sb, mb)
        ff_walk_init(&a, ask_top(self), self.n_asks, sa, ma)
        total = _drift_tally(self, &b, &a, counts)
        self.n_bids = mb
        self.n_asks = ma
        memcpy(bid_top(self), sb, <size_t>mb * 2 * sizeof(double))
        memcpy(ask_top(self), sa, <size_t>ma * 2 * sizeof(double))
        self.live = True
        self.stale_since = 0
        self.version += 1
        self.recv_ns = recv_ns
        return total

    cdef Py_ssize_t _apply_logged(self, const Level* asks, Py_ssize_t n_asks,
                                  const Level* bids, Py_ssize_t n_bids, bint clean,
                                  int64_t recv_ns, EventRing log, int64_t sym) noexcept:
        """``apply`` (same result, same rules) that logs every change it makes."""
        cdef Py_ssize_t i
        cdef Py_ssize_t k
        cdef Py_ssize_t crossed = 0
        cdef Py_ssize_t cap = self.depth
        cdef double price
        cdef double amount
        cdef uint64_t base = FF_EV_EXCH | FF_EV_LOCAL
        cdef uint64_t buy
        cdef uint64_t sell
        cdef bint front = self.front
        if clean:
            log.push(base | EV_DEPTH_CLEAR, recv_ns, recv_ns, 0.0, 0.0, 0, sym)
            self.n_bids = 0
            self.n_asks = 0
            self.live = True
            self.stale_since = 0
            base |= EV_DEPTH_SNAPSHOT
        else:
            base |= EV_DEPTH
        buy = base | FF_EV_BUY
        sell = base | FF_EV_SELL
        for i in range(n_asks):
            price = asks[i].price
            amount = asks[i].amount
            k = lower_asc(ask_top(self), self.n_asks, price)
            self.n_asks = log_upsert(self.ask, self.n_asks, cap, k, price, amount, front, log,
                                     sell, recv_ns, sym)
            if amount != 0.0 and self.n_bids > 0 and bid_top(self)[0] >= price:
                k = crossed_rows(bid_top(self), self.n_bids, price, True)
                crossed += k
                log_front(bid_top(self), k, log, buy, recv_ns, sym)
                self.n_bids = drop_front(self.bid, self.n_bids, cap, k, front)
        for i in range(n_bids):
            price = bids[i].price
            amount = bids[i].amount
            k = lower_desc(bid_top(self), self.n_bids, price)
            self.n_bids = log_upsert(self.bid, self.n_bids, cap, k, price, amount, front, log,
                                     buy, recv_ns, sym)
            if amount != 0.0 and self.n_asks > 0 and ask_top(self)[0] <= price:
                k = crossed_rows(ask_top(self), self.n_asks, price, False)
                crossed += k
                log_front(ask_top(self), k, log, sell, recv_ns, sym)
                self.n_asks = drop_front(self.ask, self.n_asks, cap, k, front)
        self.version += 1
        self.recv_ns = recv_ns
        return crossed

    cdef Py_ssize_t apply(self, const Level* asks, Py_ssize_t n_asks, const Level* bids,
                          Py_ssize_t n_bids, bint clean, int64_t recv_ns) noexcept nogil:
        """Apply one parsed depth message. Returns the number of crossed levels removed.
        Touches no Python object: callable without the GIL (the caller owns the book)."""
        cdef Py_ssize_t k
        cdef Py_ssize_t crossed = 0
        cdef Py_ssize_t cap = self.depth
        cdef bint front = self.front
        cdef double price
        cdef Py_ssize_t m
        if clean:
            self.n_bids = 0
            self.n_asks = 0
            self.live = True
            self.stale_since = 0
            # Snapshots usually list each side in price order (asks often descending): fill
            # the empty sides directly instead of inserting level by level. The asks come
            # first in the rules, so the bids may only take the fast path after them.
            m = fill_sorted(self.ask, cap, asks, n_asks, True, front)
            if m >= 0:
                self.n_asks = m
                n_asks = 0                      # done; the bid side is empty: no crossing
                m = fill_sorted(self.bid, cap, bids, n_bids, False, front)
                if m >= 0:
                    self.n_bids = m
                    n_bids = 0
                    price = bid_top(self)[0]
                    if self.n_asks > 0 and ask_top(self)[0] <= price:
                        # each bid removes the asks at or below it: in all, those <= best bid
                        k = crossed_rows(ask_top(self), self.n_asks, price, False)
                        crossed += k
                        self.n_asks = drop_front(self.ask, self.n_asks, cap, k, front)
        if not front:           # end-anchored (private book): _bookops.h
            crossed += ff_apply_end(self.ask, &self.n_asks, self.bid, &self.n_bids, cap,
                                    <const double*>asks, n_asks, <const double*>bids, n_bids)
        else:                   # front-anchored (shared memory)
            crossed += apply_front(self.ask, &self.n_asks, self.bid, &self.n_bids, cap,
                                   asks, n_asks, bids, n_bids)
        self.version += 1
        self.recv_ns = recv_ns
        return crossed

    @property
    def bids(self):
        """Zero-copy read-only ``(n, 2)`` float64 view of the bids, best (highest) first.
        ``n`` is fixed at the current count; the rows change with the next update (see
        the class doc)."""
        if self.front:
            return self._bid_ro[:self.n_bids]
        return self._bid_ro[self.depth - self.n_bids:]

    @property
    def asks(self):
        """Zero-copy read-only ``(n, 2)`` float64 view of the asks, best (lowest) first.
        ``n`` is fixed at the current count; the rows change with the next update (see
        the class doc)."""
        if self.front:
            return self._ask_ro[:self.n_asks]
        return self._ask_ro[self.depth - self.n_asks:]

    @property
    def best_bid(self):
        """Highest bid price, ``nan`` when the side is empty."""
        return bid_top(self)[0] if self.n_bids > 0 else NAN

    @property
    def best_ask(self):
        """Lowest ask price, ``nan`` when the side is empty."""
        return ask_top(self)[0] if self.n_asks > 0 else NAN

    def snapshot(self):
        """A copy ``(bids, asks)`` that later updates do not change (writable, owned by
        the caller)."""
        return _rows(bid_top(self), self.n_bids), _rows(ask_top(self), self.n_asks)

    def to_pandas(self):
        """A DataFrame of both sides (a copy): columns side ('bid'/'ask'), level (0 = best),
        price, amount; bids first. ``df.attrs`` holds symbol, version, recv_ns, recv_dt,
        live and stale_since."""
        return book_frame(self.bids, self.asks,
                          self.symbol, self.version, self.recv_ns, self.live, self.stale_since)

    @property
    def shared(self):
        """True when the rows live in a shared-memory segment (``Engine(shm_name=...)``)."""
        return self.hdr != NULL

    def __len__(self):
        return self.n_bids + self.n_asks

    def __repr__(self):
        return (
            f"<Book {self.symbol} bids={self.n_bids} asks={self.n_asks} "
            f"best={self.best_bid}/{self.best_ask} v{self.version} "
            f"{'live' if self.live else 'stale'}>"
        )
