"""Tickers in C: the latest ticker per symbol (``TickerTable``) and every ticker record in
arrival order (``TickerRing``), both numpy ``TICKER_DTYPE`` arrays.

``ticker.update`` / ``all_ticker.update`` pushes are parsed by ``Parser._ticker_params``
into C records and stored here without creating a Python object (a new symbol name is the
only allocation, once per symbol). :class:`fastfeed.protocol.Ticker` objects are built
only when asked for (``TickerTable.get``, ``TickerRing.records``).

Exactness (docs/engine-semantics.md section 6): every value gets exactly what
``fastfeed.protocol.Ticker.from_dict`` gives it. Decimal strings and JSON numbers become
the correctly rounded double (the C parser falls back to CPython's own conversion for long
mantissas and large exponents); values that only Python's ``float()``/``int()`` can judge
exactly (escaped or non-ASCII text, spaces, ``_``, ``inf``/``nan`` words, numbers longer
than 1024 characters) make the whole push take the Python path (decoded like before and
passed to ``protocol.parse_tickers``); the rows it stores are the same.
"""

from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from fastfeed._parse cimport TickerC, uchar

import numpy as np

cimport numpy as cnp

from fastfeed._json import loads_exact as _loads_exact
from fastfeed.errors import TickersOverwritten
from fastfeed.layout import TICKER_DTYPE, readonly
from fastfeed.protocol import Ticker, parse_tickers
from orjson import JSONDecodeError as _OrjsonError
from orjson import loads as _orjson_loads

cnp.import_array()

__all__ = ["TickerRing", "TickerTable"]


cdef extern from "_fastnum.h":
    # symbol-name hash for the open-addressing table (word at a time; see _fastnum.h) and
    # the name compare (both buffers at least 32 bytes)
    uint64_t ff_symhash(const uchar* p, Py_ssize_t n) noexcept nogil
    bint ff_symeq(const uchar* a, const uchar* b, Py_ssize_t n) noexcept nogil


cdef extern from *:
    """
    #include <string.h>
    /* dst[0:32] = src[0:n] then zeros (n = 0..32; src: 32 readable bytes): a record's
     * name field from the parser's symbol buffer, whose bytes past n are not zeros. */
    static inline void ff_name32(char *dst, const unsigned char *src, Py_ssize_t n)
    {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        int i;
        for (i = 0; i < 4; i++) {
            uint64_t w;
            Py_ssize_t k = n - 8 * i;
            memcpy(&w, src + 8 * i, 8);
            if (k < 8)
                w = k > 0 ? w & ((1ULL << (8 * k)) - 1) : 0;
            memcpy(dst + 8 * i, &w, 8);
        }
    #else
        memset(dst, 0, 32);
        memcpy(dst, src, (size_t)n);
    #endif
    }
    """
    void ff_name32(char* dst, const uchar* src, Py_ssize_t n) noexcept nogil


cdef object _make(const TickerRecord* r, list symbols):
    """The Ticker of one record (``symbols``: index -> name, reused)."""
    cdef Py_ssize_t n = 0
    if 0 <= r.symbol < len(symbols):
        name = symbols[r.symbol]
    else:
        while n < 32 and r.name[n] != 0:
            n += 1
        name = PyUnicode_DecodeASCII(r.name, n, NULL)
    return Ticker(name, r.f[0], r.f[1], r.f[2], r.f[3], r.f[4], r.f[5], r.f[6], r.f[7],
                  r.f[9], r.f[10], r.timestamp, r.recv_ns, r.all_ticker != 0, r.f[8])


cdef class TickerRing(MirrorRing):
    """Every stored ticker record, oldest to newest, in a ring of ``capacity`` records (a
    power of two), like :class:`~fastfeed.TradeRing`: ``count`` records were ever written,
    the one with ``seq == s`` is kept until ``s + capacity`` records exist.

    ``latest(n)`` / ``since(seq)`` are zero-copy read-only ``TICKER_DTYPE`` views; a view
    keeps the records it was taken with and stays correct until ``capacity - n`` more
    records are written (its oldest rows are then overwritten in place: check ``seq``);
    the memory stays valid as long as the view lives. ``records(seq)`` builds
    :class:`~fastfeed.protocol.Ticker` objects (the only place they are made).
    """

    def __cinit__(self, Py_ssize_t capacity=8192, symbols=None):
        self.buf = <TickerRecord*>self._allocate(capacity, 32, "capacity", TICKER_DTYPE,
                                                 sizeof(TickerRecord), "ticker record",
                                                 TickersOverwritten, "")
        self.symbols = symbols if symbols is not None else []

    cdef void _set_buf(self, void* data) noexcept:
        self.buf = <TickerRecord*>data

    cdef void push(self, TickerRecord* r) noexcept:
        ticker_push(self, r)

    def records(self, int64_t seq=0):
        """:class:`~fastfeed.protocol.Ticker` objects of the records with ``seq >= seq``
        still held, oldest first (records already overwritten are left out: compare the
        length with ``count - seq``)."""
        cdef int64_t first = self.count - self.capacity
        cdef list out = []
        cdef list names = self.symbols
        if seq > first:
            first = seq
        if first < 0:
            first = 0
        while first < self.count:
            out.append(_make(&self.buf[<uint64_t>first & self.mask], names))
            first += 1
        return out


cdef TickerRecord _ZERO_RECORD          # all zeros (a C global): a fresh record, padding too
memset(&_ZERO_RECORD, 0, sizeof(TickerRecord))


cdef class TickerTable:
    """The latest ticker record per symbol: row ``i`` is ``symbols[i]``'s newest record.
    At most ``max_symbols`` symbols get a row; records of further symbols still go to the
    history ring (``symbol == -1``) and are counted in ``dropped_symbols``."""

    def __cinit__(self, Py_ssize_t max_symbols=10000):
        if not 1 <= max_symbols <= 1 << 24:
            raise ValueError("max_ticker_symbols must be 1..16777216")
        self.max_symbols = max_symbols
        self._arr = np.zeros(max_symbols, dtype=TICKER_DTYPE)
        self.rows = <TickerRecord*>cnp.PyArray_DATA(self._arr)
        self._ro = readonly(self._arr)
        self.symbols = []
        self._index = {}
        self.n_slots = 64
        self.slots = <NameSlot*>calloc(self.n_slots, sizeof(NameSlot))
        if self.slots == NULL:
            raise MemoryError()
        for i in range(self.n_slots):
            self.slots[i].index = -1

    def __dealloc__(self):
        free(self.slots)

    cdef int _grow(self) except -1:
        cdef Py_ssize_t n = self.n_slots * 2
        cdef NameSlot* new = <NameSlot*>calloc(n, sizeof(NameSlot))
        cdef Py_ssize_t i
        cdef uint64_t j
        if new == NULL:
            raise MemoryError()
        for i in range(n):
            new[i].index = -1
        for i in range(self.n_slots):
            if self.slots[i].index >= 0:
                j = self.slots[i].hash & <uint64_t>(n - 1)
                while new[j].index >= 0:
                    j = (j + 1) & <uint64_t>(n - 1)
                new[j] = self.slots[i]
        free(self.slots)
        self.slots = new
        self.n_slots = n
        return 0

    cdef int32_t index_of(self, const uchar* name, Py_ssize_t n, uint64_t h) except -2:
        """The row of a symbol (upper-case ASCII bytes, 1..32, in a buffer of at least 32
        bytes; ``h`` its ``ff_symhash``), registered on first sight; -1 when it is new and
        the table is full."""
        cdef uint64_t j = h & <uint64_t>(self.n_slots - 1)
        cdef NameSlot* s
        cdef int32_t idx
        while True:
            s = &self.slots[j]
            if s.index < 0:
                break
            if s.hash == h and s.length == n and ff_symeq(s.name, name, n):
                return s.index
            j = (j + 1) & <uint64_t>(self.n_slots - 1)
        idx = <int32_t>len(self.symbols)
        if idx >= self.max_symbols:
            return -1
        text = PyUnicode_DecodeASCII(<const char*>name, n, NULL)
        self.symbols.append(text)
        self._index[text] = idx
        s.hash = h
        s.index = idx
        s.length = <int32_t>n
        memcpy(s.name, name, n)
        if 2 * len(self.symbols) > self.n_slots:
            self._grow()
        return idx

    cdef int _store(self, TickerRing ring, TickerRecord* rec, Py_ssize_t n,
                    uint64_t h) except -1:
        """Store ``rec``, whose ``name`` (``n`` bytes, zero-padded; ``h`` its
        ``ff_symhash``) is filled in: the history ring, and its symbol's row."""
        cdef int32_t idx = self.index_of(<const uchar*>rec.name, n, h)
        rec.symbol = idx
        ticker_push(ring, rec)
        if idx >= 0:
            self.rows[idx] = rec[0]
        else:
            self.dropped_symbols += 1
        self.records += 1
        return 0

    cdef int apply(self, TickerRing ring, const TickerC* recs, Py_ssize_t n,
                   Py_ssize_t bad_shape, Py_ssize_t bad_symbol, Py_ssize_t bad_field,
                   bint all_ticker, int64_t recv_ns) except -1:
        """Store the good records the parser left in ``recs`` and count the rejected ones
        (no Python object)."""
        cdef TickerRecord rec = _ZERO_RECORD   # padding bytes too: rows hold no stale memory
        cdef const TickerC* t
        cdef Py_ssize_t k
        self.bad_shape += bad_shape
        self.bad_symbol += bad_symbol
        self.bad_field += bad_field
        rec.recv_ns = recv_ns
        rec.all_ticker = 1 if all_ticker else 0
        for k in range(n):
            t = &recs[k]
            rec.timestamp = t.timestamp
            memcpy(rec.f, t.f, sizeof(rec.f))
            ff_name32(rec.name, t.symbol, t.symbol_len)
            self._store(ring, &rec, t.symbol_len, t.symbol_hash)
        return 0

    cdef int apply_slow(self, TickerRing ring, bytes text, bint big_int, bint all_ticker,
                        int64_t recv_ns) except -1:
        """The exact fallback: decode the push as before (orjson, or json when an integer
        may not fit 64 bits) and take ``protocol.parse_tickers``' records."""
        cdef TickerRecord rec
        cdef bytes name
        if big_int:
            obj = _loads_exact(text)
        else:
            try:
                obj = _orjson_loads(text)
            except _OrjsonError:
                obj = _loads_exact(text)
        self.n_slow += 1
        memset(&rec, 0, sizeof(rec))
        rejects = {}
        got = parse_tickers(obj.get("params"), recv_ns, all_ticker, rejects)
        self.bad_shape += rejects.get("bad_shape", 0)
        self.bad_symbol += rejects.get("bad_symbol", 0)
        self.bad_field += rejects.get("bad_field", 0)
        rec.recv_ns = recv_ns
        rec.all_ticker = 1 if all_ticker else 0
        for t in got:
            rec.timestamp = t.timestamp
            rec.f[0] = t.last
            rec.f[1] = t.last_qty
            rec.f[2] = t.best_bid
            rec.f[3] = t.best_bid_size
            rec.f[4] = t.best_ask
            rec.f[5] = t.best_ask_size
            rec.f[6] = t.open_24h
            rec.f[7] = t.low_24h
            rec.f[8] = t.high_24h
            rec.f[9] = t.base_volume_24h
            rec.f[10] = t.quote_volume_24h
            name = t.symbol.encode("ascii")
            memset(rec.name, 0, 32)
            memcpy(rec.name, <char*>name, len(name))
            self._store(ring, &rec, len(name), ff_symhash(<const uchar*>rec.name, len(name)))
        return 0

    def view(self):
        """Zero-copy read-only ``TICKER_DTYPE`` view of the rows of every symbol known so
        far (row ``i`` = ``symbols[i]``). Rows update in place as tickers arrive; a symbol
        first seen later needs a new view. The memory stays valid as long as the view
        lives."""
        return self._ro[:len(self.symbols)]

    def get(self, str name):
        """The :class:`~fastfeed.protocol.Ticker` of ``name`` (upper-case), or None."""
        idx = self._index.get(name)
        if idx is None:
            return None
        return _make(&self.rows[<Py_ssize_t>idx], self.symbols)

    def index(self, str name):
        """The row of ``name`` (upper-case), or -1."""
        return self._index.get(name, -1)

    def stats(self):
        return {
            "records": self.records,
            "rejects": {"bad_shape": self.bad_shape, "bad_symbol": self.bad_symbol,
                        "bad_field": self.bad_field},
            "dropped_symbols": self.dropped_symbols,
        }

    @property
    def slow_frames(self):
        """Ticker pushes that took the exact Python fallback (compiled engine only)."""
        return self.n_slow
