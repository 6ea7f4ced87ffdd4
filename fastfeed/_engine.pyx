"""Engine: payload -> inflate -> parse -> books / trade ring, with no socket.

The same object sits behind the live client, replay, benchmarks and tests. Depth, trade and
ticker pushes are applied without creating Python objects (tickers go to the ticker table and
history ring, ``fastfeed._ticker``); everything else is decoded with orjson (or the stdlib
``json`` where orjson would not be exact, see ``fastfeed._json``) and returned.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.math cimport llrint
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy

from fastfeed._book cimport Book, book_apply
from fastfeed._events cimport EV_TRADE, FF_EV_BUY, FF_EV_EXCH, FF_EV_LOCAL, FF_EV_SELL, EventRing
from fastfeed._inflate cimport INF_NOMEM, Inflater, other_threads
from fastfeed._parse cimport (
    M_ALL_TICKER,
    M_DEPTH,
    M_TICKER,
    M_TRADES,
    MAX_SYMBOL,
    P_BAD_JSON,
    P_BAD_MESSAGE,
    P_BAD_NUMBER,
    P_NOMEM,
    P_TOO_DEEP,
    Parser,
    Trade,
    uchar,
)
from fastfeed._atomic cimport ff_store_release_i64
from fastfeed._ring cimport TradeRecord, TradeRing, trade_put
from fastfeed._ticker cimport TickerRing, TickerTable

from time import time_ns

from fastfeed._inflate import raise_inflate_error, reason_of
from fastfeed._json import loads_exact as _loads_exact
from orjson import JSONDecodeError as _OrjsonError
from orjson import loads as _orjson_loads
from fastfeed._parse import METHOD_NAMES
from fastfeed._shm import ShmWriter as _ShmWriter
from fastfeed.errors import (
    REJECT_REASONS,
    EngineBusy,
    FastfeedError,
    FrameTooLarge,
    ParseError,
    ShmFull,
    UnknownSymbol,
)
from fastfeed.layout import DriftRecord

__all__ = ["Engine"]

cdef object _NOTHING = object()

cdef dict _REASON_INDEX = {name: i for i, name in enumerate(REJECT_REASONS)}
cdef dict _PARSE_REASON = {
    P_BAD_JSON: "bad_json",
    P_TOO_DEEP: "too_deep",
    P_BAD_MESSAGE: "bad_message",
    P_BAD_NUMBER: "bad_number",
}
cdef int R_TOO_LARGE = REJECT_REASONS.index("too_large")
cdef int R_BAD_JSON = REJECT_REASONS.index("bad_json")
cdef int R_SYMBOL_LIMIT = REJECT_REASONS.index("symbol_limit")
cdef int R_SHM_FULL = REJECT_REASONS.index("shm_full")
assert len(REJECT_REASONS) == N_REASONS


cdef extern from "_fastnum.h":
    # symbol-name hash for the open-addressing table (word at a time; see _fastnum.h)
    uint64_t ff_symhash(const uchar* p, Py_ssize_t n) noexcept nogil
    bint ff_symeq(const uchar* a, const uchar* b, Py_ssize_t n) noexcept nogil
    void ff_prefetch_span(const uchar* p, size_t n) noexcept nogil


cdef inline bint same_trade(const Trade* a, const Trade* b) noexcept nogil:
    """The same trade: id, time, price, amount and side all equal (section 4; values
    compared as numbers, so -0.0 == 0.0, as the reference's tuple comparison does)."""
    return (a.id == b.id and a.price == b.price and a.amount == b.amount
            and a.time == b.time and a.side == b.side)


cdef inline bint same_record(const TradeRecord* r, const Trade* t) noexcept nogil:
    """``same_trade`` against a trade ring record."""
    return (r.id == t.id and r.price == t.price and r.amount == t.amount
            and r.time == t.time and r.side == t.side)


cdef inline bint dedup_find(const Dedup* d, const Trade* t, int32_t window,
                            const TradeRecord* rbuf, uint64_t rmask, int64_t count,
                            int64_t rcap) noexcept nogil:
    """Is this trade (its id and its whole content) remembered? Searched newest first: a
    replay repeats recent trades. The scan reads the ids only; on an id match the whole
    trade is compared: the ring's record while the ring holds it (``count``: the ring's
    next sequence number), else the copy in spill. Whole trades, not a hash of them: two
    different trades with one id must never pass for each other (a correction would be
    dropped)."""
    cdef Py_ssize_t k = d.head if d.n == window else d.n     # one past the newest entry
    cdef Py_ssize_t left = d.n
    cdef int64_t tid = t.id
    cdef int64_t s
    while left > 0:
        k = k - 1 if k > 0 else d.n - 1                      # (wraps only when full)
        if d.ids[k] == tid:
            s = d.seqs[k]
            if (same_record(&rbuf[<uint64_t>s & rmask], t) if count - s <= rcap
                    else same_trade(&d.spill[k], t)):
                return True
        left -= 1
    return False


cdef inline void dedup_add(Dedup* d, int64_t tid, int64_t seq, int32_t window) noexcept nogil:
    """Remember a stored trade: its id and its record's sequence number (room reserved by
    ``Engine._dedup_reserve``); once the window is full the oldest entry goes."""
    cdef int64_t gone
    cdef Py_ssize_t k
    if d.n < window:
        d.ids[d.n] = tid
        d.seqs[d.n] = seq
        d.n += 1
        if tid > d.hi:
            d.hi = tid
        return
    gone = d.ids[d.head]
    if d.spilled:
        d.spilled -= 1          # the oldest entry was the first spilled one
    d.ids[d.head] = tid
    d.seqs[d.head] = seq
    d.head += 1
    if d.head == window:
        d.head = 0
    if tid >= d.hi:
        d.hi = tid
    elif gone == d.hi:          # the highest id left the window: find the new highest
        d.hi = -1
        for k in range(d.n):
            if d.ids[k] > d.hi:
                d.hi = d.ids[k]


cdef inline void dedup_spill(Dedup* dedup, Py_ssize_t n_dedup, const TradeRecord* r,
                             int64_t seq, int32_t window) noexcept nogil:
    """The ring is about to overwrite record ``seq`` (``r``): if it is still an entry of
    its symbol's window, copy the trade to that entry's spill slot. It can only be the
    oldest entry not yet spilled (the ring overwrites in sequence order)."""
    cdef int32_t sym = r.symbol
    cdef Dedup* d
    cdef Py_ssize_t k
    if sym < 0 or sym >= n_dedup:
        return
    d = &dedup[sym]
    if d.spilled >= d.n:
        return
    k = (d.head if d.n == window else 0) + d.spilled
    if k >= d.n:
        k -= d.n
    if d.seqs[k] != seq:
        return
    d.spill[k].id = r.id
    d.spill[k].time = r.time
    d.spill[k].price = r.price
    d.spill[k].amount = r.amount
    d.spill[k].side = r.side
    d.spilled += 1


cdef str _symbol_name(object symbol):
    """``symbol`` upper-cased, checked against the rules for names in pushes (1..32
    printable ASCII characters, 0x21..0x7E): TypeError / ValueError otherwise."""
    if not isinstance(symbol, str):
        raise TypeError(f"symbol must be a str, not {type(symbol).__name__}")
    cdef str name = <str>symbol
    if not 1 <= len(name) <= MAX_SYMBOL or not all(0x21 <= ord(c) <= 0x7E for c in name):
        raise ValueError(f"symbol must be 1..{MAX_SYMBOL} printable ASCII characters "
                         f"(0x21..0x7E): {name[:40]!r}")
    return name.upper()


cdef inline int32_t find_symbol(const SymSlot* slots, Py_ssize_t n_slots, const uchar* name,
                                Py_ssize_t n, uint64_t h) noexcept nogil:
    """The index of the symbol ``name[0:n]`` (``h`` its ``ff_symhash``) in the open-addressing
    table ``slots`` (``n_slots``, a power of two, never full), -1 if absent."""
    cdef Py_ssize_t mask = n_slots - 1
    cdef Py_ssize_t i = <Py_ssize_t>(h & <uint64_t>mask)
    cdef const SymSlot* s
    while True:
        s = &slots[i]
        if s.index < 0:
            return -1
        if s.hash == h and s.length == n and ff_symeq(s.name, name, n):
            return s.index
        i = (i + 1) & mask


cdef inline int64_t seconds_to_ns(double t) noexcept:
    """Exchange seconds as sent -> int64 ns, rounded to nearest (ties to even), clamped."""
    cdef double x = t * 1e9
    if x >= 9.2e18:
        return 9200000000000000000
    if x <= -9.2e18:
        return -9200000000000000000
    return <int64_t>llrint(x)


@cython.final
cdef inline bint _held_by_parser(int rc, Parser ps) noexcept nogil:
    """Whether the parse result of a frame is held entirely by its parser (depth, trades and
    tickers without the exact Python fallback), not read from the JSON text when applied:
    only such frames may be followed by another in one ``_feed_batch`` run, since the next
    frame reuses the inflater's buffer."""
    if rc == M_DEPTH or rc == M_TRADES:
        return True
    return (rc == M_TICKER or rc == M_ALL_TICKER) and not ps.ticker_slow


# -- the hot path (module functions: direct calls the C compiler can inline) -------------

cdef inline int _decode(Engine self, void* ps, const uchar* data, Py_ssize_t size, bint text,
                        const uchar** js, Py_ssize_t* jn, bint* zipped) noexcept nogil:
    """Payload -> JSON text (inflated if compressed) -> parsed into the Parser ``ps`` (by
    pointer: no reference counting; the engine holds it); touches only
    the engine's inflater and the parser (engine-private memory), so it runs without the
    GIL. Returns the parser's method code (>= 0), a parse rejection (``P_*``), an inflate
    rejection (``INF_*``) or ``D_TEXT_TOO_LARGE``; ``jn`` is -1 unless the payload was
    inflated (then ``js`` is the inflater's buffer, valid until its next run) or taken as
    text; ``zipped``: it was inflated (``jn`` bytes)."""
    cdef const uchar* p = data
    cdef const uchar* end = data + size
    cdef int rc
    jn[0] = -1
    zipped[0] = False
    if not text and not (size > 0 and p[0] == 123):     # plain JSON starts with { as a rule
        while p < end and (p[0] == 32 or p[0] == 10 or p[0] == 13 or p[0] == 9):
            p += 1
        text = p < end and (p[0] == 123 or p[0] == 91)
    else:
        text = True
    if text:
        if <size_t>size > self.max_frame:
            return D_TEXT_TOO_LARGE
        ff_prefetch_span(data, <size_t>size)        # (Inflater.run does it for zlib)
        js[0] = data
        jn[0] = size
    else:
        rc = self.inflater.run(data, <size_t>size)
        if rc < 0:
            return rc
        js[0] = self.inflater.out
        jn[0] = <Py_ssize_t>self.inflater.out_len
        zipped[0] = True
    return (<Parser>ps).parse(js[0], jn[0])


cdef inline object _feed_frame(Engine self, const uchar* data, Py_ssize_t size,
                               int64_t recv_ns, bint text, bint stable):
    """One frame, the busy flag held: count, decode, apply (``feed``, ``feed_ptr``)."""
    cdef const uchar* js = NULL
    cdef Py_ssize_t jn
    cdef bint zipped
    cdef int rc
    self.frames += 1
    self.bytes_in += size
    # inflate + parse without the GIL (apply, in _after, holds it: a frame's changes
    # to books, rings and counters appear to other threads all at once)
    if stable and other_threads():
        with nogil:
            rc = _decode(self, <void*>self.parser, data, size, text, &js, &jn, &zipped)
    else:
        rc = _decode(self, <void*>self.parser, data, size, text, &js, &jn, &zipped)
    if zipped:
        self.bytes_inflated += jn
    return _after(self, rc, js, jn, size, recv_ns)


cdef inline int32_t _frame_symbol(Engine self, Parser ps) except -3:
    """The symbol index of the parsed depth / trades frame, registered if new; -2 when the
    table may not grow."""
    cdef int32_t idx = find_symbol(self.slots, self.n_slots, ps.symbol, ps.symbol_len,
                                   ps.symbol_hash)
    if idx < 0:             # new: registered (or -2)
        idx = self._symbol_index(ps.symbol, ps.symbol_len, ps.symbol_hash)
    return idx


cdef inline object _after(Engine self, int rc, const uchar* js, Py_ssize_t jn,
                          Py_ssize_t size, int64_t recv_ns):
    """Apply (or reject) what ``_decode`` made of a frame, with the GIL held. The hot kinds
    here, in order of frequency; rejections and other messages in ``_after_other``."""
    cdef int32_t idx
    cdef Parser ps = self.parser
    cdef Book book
    self.last_kind = -1
    self.last_symbol = -1
    if self.events is not None:
        self.events.frame = self.frames   # the frame id of every row this frame logs
    if rc == M_DEPTH:
        idx = _frame_symbol(self, ps)
        if idx < 0:
            return self._reject_symbol_limit()
        if self._bookp[idx] == NULL:
            self._book_at(idx)          # created on first sight
        # the Book by pointer: no list lookup, no None / type check per frame
        book = <Book>self._bookp[idx]
        if ps.clean and book.live and self.drift_check:
            self._apply_checked(book, idx, recv_ns)
        elif self._plain:
            # inlined for an increment (_book.pxd): no call through the vtable
            self.crossed += book_apply(book, ps.asks, ps.n_asks, ps.bids, ps.n_bids, ps.clean,
                                       recv_ns)
        else:
            self.crossed += book.apply_ex(ps.asks, ps.n_asks, ps.bids, ps.n_bids, ps.clean,
                                          recv_ns, self.events, idx)
        self.msg_counts[M_DEPTH] += 1
        self.last_kind = M_DEPTH
        self.last_symbol = idx
        return None
    if rc == M_TRADES:
        idx = _frame_symbol(self, ps)
        if idx < 0:
            return self._reject_symbol_limit()
        _store_trades(self, ps, idx, recv_ns)
        self.msg_counts[M_TRADES] += 1
        self.last_kind = M_TRADES
        self.last_symbol = idx
        return None
    if rc == M_TICKER or rc == M_ALL_TICKER:
        if ps.ticker_slow:      # a value only Python judges exactly: decode as before
            self._tickers.apply_slow(self.ticker_history,
                                     PyBytes_FromStringAndSize(<const char*>js, jn),
                                     ps.big_int, rc == M_ALL_TICKER, recv_ns)
        else:
            self._tickers.apply(self.ticker_history, ps.tickers, ps.n_tickers,
                                ps.ticker_bad_shape, ps.ticker_bad_symbol,
                                ps.ticker_bad_field, rc == M_ALL_TICKER, recv_ns)
        self.msg_counts[rc] += 1
        self.last_kind = rc     # last_symbol stays -1: a ticker push names many symbols
        return None
    return _after_other(self, rc, js, jn, size)


cdef int _store_trades(Engine self, Parser ps, int32_t idx, int64_t recv_ns) except -1:
    """De-duplicate the parsed trades of symbol ``idx`` and store the new ones, oldest
    first (section 4)."""
    cdef Py_ssize_t i
    cdef const Trade* t
    cdef Dedup* d = &self.dedup[idx]
    cdef int32_t window = <int32_t>self.trade_dedup_window
    cdef TradeRing ring = self.trades
    cdef EventRing log = self.events
    # the ring's state in locals (the record stores cannot alias it then): count written
    # back after the frame's trades (this runs with the GIL held: no one in the process
    # sees the ring in between); a shared-memory count is published after each record, as
    # TradeRing.push does (readers in other processes allow for one record in flight)
    cdef int64_t count = ring.count
    cdef uint64_t rmask = ring.mask
    cdef uint64_t rcap = <uint64_t>ring.capacity
    cdef TradeRecord* rbuf = ring.buf
    cdef int64_t* shm_count = ring.shm_count
    if d.n + ps.n_trades > d.cap and d.cap < window:
        self._dedup_reserve(d, ps.n_trades)
    i = ps.n_trades - 1
    while i >= 0:           # oldest first
        t = &ps.trades[i]
        i -= 1
        if t.id <= d.hi:    # not above every remembered id: look it up
            if dedup_find(d, t, window, rbuf, rmask, count, <int64_t>rcap):
                self.dup_trades += 1
                if ps.clean:
                    self.replayed_trades += 1
                continue
            if t.id <= d.last:
                self.ooo_trades += 1
        if <uint64_t>count >= rcap:     # the slot holds record count - capacity
            dedup_spill(self.dedup, self.dedup_cap, &rbuf[<uint64_t>count & rmask],
                        count - <int64_t>rcap, window)
        trade_put(rbuf, <uint64_t>count & rmask, rcap, count, t.id, t.time, recv_ns, t.price,
                  t.amount, idx, t.side)
        dedup_add(d, t.id, count, window)
        count += 1
        if shm_count != NULL:
            ff_store_release_i64(shm_count, count)
        if log is not None:
            log.push(FF_EV_EXCH | FF_EV_LOCAL | EV_TRADE | (FF_EV_BUY if t.side > 0 else FF_EV_SELL),
                     seconds_to_ns(t.time), recv_ns, t.price, t.amount, <uint64_t>t.id, idx)
        d.last = t.id
    ring.count = count
    return 0


cdef object _after_other(Engine self, int rc, const uchar* js, Py_ssize_t jn,
                         Py_ssize_t size):
    """``_after`` for a rejected frame (raises) and the messages decoded into Python."""
    cdef Parser ps = self.parser
    if rc == D_TEXT_TOO_LARGE:
        self.rejects[R_TOO_LARGE] += 1
        raise FrameTooLarge(f"frame of {size} bytes exceeds the cap ({self.max_frame})",
                            "too_large")
    if INF_NOMEM <= rc < 0:
        self.rejects[_REASON_INDEX[reason_of(rc)]] += 1
        raise_inflate_error(rc, self.max_frame)
    if rc < 0:
        return self._reject_parse(rc)
    try:
        text_obj = PyBytes_FromStringAndSize(<const char*>js, jn)
        if ps.big_int:  # orjson would turn integers beyond 64 bits into floats
            obj = _loads_exact(text_obj)
        else:
            try:
                obj = _orjson_loads(text_obj)
            except _OrjsonError:  # e.g. lone surrogates, which the stdlib accepts
                obj = _loads_exact(text_obj)
    except (ValueError, RecursionError) as exc:   # validated already: should not happen
        self.rejects[R_BAD_JSON] += 1
        raise ParseError(f"bad_json: {exc}", "bad_json") from None
    self.msg_counts[rc] += 1
    self.last_kind = rc
    return obj


cdef class Engine:
    """Inflate, parse and apply DigiFinex v1 frames; no network.

    ``Engine(depth=200, trade_capacity=65536, max_frame=8 MiB)``. ``feed(payload)`` takes
    one WebSocket payload (zlib bytes, or plain JSON as ``str``/bytes) and returns ``None``
    for depth/trade pushes (applied to ``book(symbol)`` / ``trades``) or the decoded
    message (a ``dict``) for anything else. A bad frame raises a
    :class:`~fastfeed.errors.FastfeedError` subclass, is counted in ``stats["rejects"]``
    and changes nothing.

    Options (both off by default, and free when off):

    * ``event_log=N``: also log every applied book change and every stored trade as
      hftbacktest event rows in ``events`` (an :class:`~fastfeed._events.EventRing` of the
      newest ``N`` rows; see :mod:`fastfeed.events`).
    * ``shm_name="NAME"``: place every book, the trade ring, the ticker history and (with
      ``event_log``) the event log in the named shared-memory segment ``/fastfeed.NAME``
      so that other processes can ``fastfeed.attach("NAME")`` (``.trades``, ``.tickers``,
      ``.events``). ``shm_max_symbols`` symbol slots (default: ``max_symbols`` if given,
      else 1024: the segment is then 16.5 MB with the default depth, trade ring and ticker
      history (2.5 MB of it), plus 128 bytes per ``event_log`` row (8 MB for 65536),
      where 10000 slots would reserve 75 MB, more than a container's default 64 MB
      ``/dev/shm``).
      ``max_symbols`` defaults to 10000 without shared memory and to the slot count with
      it. A frame that would add a symbol beyond the slots is rejected like any bad
      frame: :class:`~fastfeed.errors.ShmFull`, counted in
      ``stats["rejects"]["shm_full"]``, nothing applied (``book()`` / ``symbol_index()``
      of a new symbol raise ``ShmFull``). ``shm_checksum=True`` also stores a checksum of
      each published book state for readers to verify (``ShmBook.read(verify=True)``;
      about 50 ns per depth message on a 100-level book). Call ``close()`` (or use the
      engine as a context manager) to unlink the segment; it is also unlinked when the
      engine is garbage-collected and at interpreter exit.

    Trade de-duplication (docs/engine-semantics.md section 4): a trade is dropped iff a
    trade with the same id and content is among the newest ``trade_dedup_window``
    (default 512) trades stored for its symbol; so a replay after (re)subscribing drops
    exactly what is already stored, and no id (huge, reset, backwards) can stop a
    symbol's trades. The windows survive ``reset_books()``. Memory: 16 bytes per entry,
    per symbol that has trades, allocated as trades arrive.

    Drift (section 3b): ``drift_check=True`` (default) compares every ``clean=true``
    snapshot with the live book it replaces; differences are counted in
    ``stats["drift"]``, per book and in ``drift_log`` (the newest ``drift_log_size``
    :class:`~fastfeed.layout.DriftRecord`; default 256). The check allocates nothing.

    The last frame fed: ``frames`` counts every frame (rejected ones too) and is the frame
    id of the last one (event rows carry it, see :mod:`fastfeed.events`); ``last_kind`` is
    its method code (0 reply, 1 depth, 2 trades, 3 ticker, 4 all_ticker, 5 order,
    6 order_algo, 7 balance, 8 unknown; -1 if it was rejected) and ``last_symbol`` the
    symbol index of a depth or trades frame (else -1). :mod:`fastfeed.sinks` builds the
    per-frame hook from them.
    """

    def __cinit__(self, Py_ssize_t depth=200, Py_ssize_t trade_capacity=65536,
                  size_t max_frame=8 * 1024 * 1024, shm_name=None, Py_ssize_t event_log=0,
                  shm_max_symbols=None, bint shm_checksum=False,
                  str inflate_backend="auto", max_symbols=None,
                  Py_ssize_t trade_dedup_window=512, bint drift_check=True,
                  Py_ssize_t drift_log_size=256, Py_ssize_t ticker_capacity=8192,
                  Py_ssize_t max_ticker_symbols=10000):
        if depth < 1:
            raise ValueError("depth must be >= 1")
        if not 1 <= trade_dedup_window <= 1 << 20:
            raise ValueError("trade_dedup_window must be 1..1048576")
        if drift_log_size < 0:
            raise ValueError("drift_log_size must be >= 0")
        if event_log < 0:
            raise ValueError("event_log must be >= 0 (0: off)")
        if shm_name is not None and shm_max_symbols is None:
            shm_max_symbols = max_symbols if max_symbols is not None else 1024
        if max_symbols is None:
            max_symbols = shm_max_symbols if shm_name is not None else 10000
        if max_symbols < 1:
            raise ValueError("max_symbols must be >= 1")
        self.depth = depth
        self.max_symbols = max_symbols
        self.max_frame = max_frame
        self.last_kind = -1
        self.last_symbol = -1
        self.inflater = Inflater(max_frame, inflate_backend)
        self.parser = Parser()
        self._symbols = []
        self._books = []
        self._index = {}
        self.trades = TradeRing(trade_capacity, self._symbols)
        self._tickers = TickerTable(max_ticker_symbols)
        self.ticker_history = TickerRing(ticker_capacity, self._tickers.symbols)
        self.n_slots = 64
        self.slots = <SymSlot*>calloc(self.n_slots, sizeof(SymSlot))
        self.dedup_cap = 64
        self.dedup = <Dedup*>calloc(self.dedup_cap, sizeof(Dedup))
        self._bookp = <void**>calloc(self.dedup_cap, sizeof(void*))
        self.trade_dedup_window = trade_dedup_window
        self.drift_check = drift_check
        self.drift_log_size = drift_log_size
        self.drift_ring = <DriftC*>calloc(drift_log_size if drift_log_size > 0 else 1,
                                          sizeof(DriftC))
        self.scratch = <double*>calloc(4 * depth, sizeof(double))
        if (self.slots == NULL or self.dedup == NULL or self.scratch == NULL
                or self.drift_ring == NULL or self._bookp == NULL):
            raise MemoryError()
        for i in range(self.n_slots):
            self.slots[i].index = -1
        self.events = EventRing(event_log) if event_log > 0 else None
        self._shm = None
        if shm_name is not None:
            self._shm = _ShmWriter(shm_name, depth, shm_max_symbols, self.trades.capacity,
                                   shm_checksum, event_capacity=(self.events.capacity
                                                                 if self.events is not None
                                                                 else 0),
                                   ticker_capacity=self.ticker_history.capacity)
            self.trades.attach_shm(self._shm.trade_array(), self._shm.trade_count_ptr())
            self.ticker_history.attach_shm(self._shm.ticker_array(),
                                           self._shm.ticker_count_ptr())
            if self.events is not None:
                self.events.attach_shm(self._shm.event_array(), self._shm.event_count_ptr())
        self._plain = self.events is None and self._shm is None

    def __dealloc__(self):
        cdef Py_ssize_t i
        free(self.slots)
        free(self.scratch)
        free(self.drift_ring)
        free(self._bookp)
        if self.dedup != NULL:
            for i in range(self.dedup_cap):
                free(self.dedup[i].ids)
                free(self.dedup[i].seqs)
                free(self.dedup[i].spill)
            free(self.dedup)

    # -- symbols ---------------------------------------------------------------------------

    cdef int32_t _register(self, str name) except -1:
        """Give ``name`` (already upper-case) an index; create its table slot."""
        cdef bytes raw = name.encode("ascii")
        cdef Py_ssize_t n = len(raw)
        cdef int32_t idx = len(self._symbols)
        cdef SymSlot* old
        cdef SymSlot* s
        cdef Py_ssize_t old_n
        cdef Py_ssize_t i
        cdef uint64_t h
        cdef Dedup* d
        cdef void** bp
        if n < 1 or n > MAX_SYMBOL:
            raise ValueError(f"symbol must be 1..{MAX_SYMBOL} ASCII bytes: {name!r}")
        if self._shm is not None:
            self._shm.check_room(idx)
        if (idx + 1) * 2 > self.n_slots:       # keep the load factor <= 1/2
            old = self.slots
            old_n = self.n_slots
            self.slots = <SymSlot*>calloc(old_n * 2, sizeof(SymSlot))
            if self.slots == NULL:
                self.slots = old
                raise MemoryError()
            self.n_slots = old_n * 2
            for i in range(self.n_slots):
                self.slots[i].index = -1
            for i in range(old_n):
                if old[i].index >= 0:
                    s = &self.slots[old[i].hash & <uint64_t>(self.n_slots - 1)]
                    while s.index >= 0:
                        s = &self.slots[((s - self.slots) + 1) & (self.n_slots - 1)]
                    s[0] = old[i]
            free(old)
        if idx >= self.dedup_cap:
            bp = <void**>realloc(self._bookp, self.dedup_cap * 2 * sizeof(void*))
            if bp == NULL:
                raise MemoryError()
            self._bookp = bp
            for i in range(self.dedup_cap, self.dedup_cap * 2):
                bp[i] = NULL
            d = <Dedup*>realloc(self.dedup, self.dedup_cap * 2 * sizeof(Dedup))
            if d == NULL:
                raise MemoryError()
            self.dedup = d
            for i in range(self.dedup_cap, self.dedup_cap * 2):
                self.dedup[i].ids = NULL
                self.dedup[i].seqs = NULL
                self.dedup[i].spill = NULL
                self.dedup[i].cap = 0
                self.dedup[i].n = 0
                self.dedup[i].head = 0
                self.dedup[i].spilled = 0
                self.dedup[i].hi = -1
                self.dedup[i].last = -1
            self.dedup_cap *= 2
        self.dedup[idx].hi = -1
        self.dedup[idx].last = -1
        h = ff_symhash(<const uchar*><char*>raw, n)
        s = &self.slots[h & <uint64_t>(self.n_slots - 1)]
        while s.index >= 0:
            s = &self.slots[((s - self.slots) + 1) & (self.n_slots - 1)]
        s.hash = h
        s.index = idx
        s.length = <int32_t>n
        memcpy(s.name, <char*>raw, n)
        self._symbols.append(name)
        self._books.append(None)
        self._index[name] = idx
        if self._shm is not None:
            self._shm.add_symbol(idx, raw)
        return idx

    cdef int32_t _symbol_index(self, const uchar* name, Py_ssize_t n, uint64_t h) except -1:
        """The index of the symbol ``name[0:n]`` (1..32 bytes in a buffer of at least 32;
        ``h`` = ``ff_symhash(name, n)``, which the parser computed), registered if new; -2
        when the table may not grow."""
        cdef int32_t idx = find_symbol(self.slots, self.n_slots, name, n, h)
        if idx >= 0:
            return idx
        if len(self._symbols) >= self.max_symbols or (
                self._shm is not None and len(self._symbols) >= self._shm.max_symbols):
            return -2  # input may not grow the symbol table past max_symbols / shm slots
        return self._register(PyBytes_FromStringAndSize(<const char*>name, n).decode("ascii"))

    cdef Book _book_at(self, int32_t idx):
        cdef object b = self._books[idx]
        if b is None:
            b = Book(self._symbols[idx], self.depth)
            if self._shm is not None:
                bids, asks = self._shm.book_arrays(idx)
                (<Book>b).attach_shm(bids, asks, self._shm.book_hdr(idx), self._shm.checksum)
            self._books[idx] = b
            self._bookp[idx] = <void*>b
        return <Book>b

    cdef int _dedup_reserve(self, Dedup* d, Py_ssize_t k) except -1:
        """Room for ``k`` more entries (up to the window) before anything is stored, so
        that a failed allocation changes nothing."""
        cdef Py_ssize_t need = d.n + k
        cdef Py_ssize_t cap
        cdef Trade* spill
        cdef int64_t* ids
        if need > self.trade_dedup_window:
            need = self.trade_dedup_window
        if need <= d.cap:
            return 0
        cap = d.cap * 2 if d.cap >= 8 else 16
        if cap < need:
            cap = need
        if cap > self.trade_dedup_window:
            cap = self.trade_dedup_window
        # each array is kept as soon as it has grown (realloc may move it): if a later one
        # fails, the earlier ones are merely larger than cap says, and nothing else changed
        # (spill: room only; written when the ring overwrites an entry's record)
        ids = <int64_t*>realloc(d.ids, cap * sizeof(int64_t))
        if ids == NULL:
            raise MemoryError()
        d.ids = ids
        ids = <int64_t*>realloc(d.seqs, cap * sizeof(int64_t))
        if ids == NULL:
            raise MemoryError()
        d.seqs = ids
        spill = <Trade*>realloc(d.spill, cap * sizeof(Trade))
        if spill == NULL:
            raise MemoryError()
        d.spill = spill
        d.cap = <int32_t>cap
        return 0

    cdef void _apply_checked(self, Book book, int32_t idx, int64_t recv_ns) noexcept:
        """Apply the parsed snapshot to the live ``book`` with the drift check (section 3b):
        keep the rows it replaces, apply, compare. Without an event log,
        ``Book.drift_snapshot`` does all three in one pass for the usual snapshot (in a
        shared-memory book inside its seqlock, as ``apply_ex`` would)."""
        cdef Parser ps = self.parser
        cdef Py_ssize_t old_nb = book.n_bids
        cdef Py_ssize_t old_na = book.n_asks
        cdef Py_ssize_t counts[3]
        cdef Py_ssize_t total
        cdef bint shared = book.hdr != NULL
        if self.events is None:
            if shared:
                book._publish_begin()
            # the usual snapshot in one pass (no copy of the book); -1: not such a one,
            # nothing changed
            total = book.drift_snapshot(ps.asks, ps.n_asks, ps.bids, ps.n_bids, recv_ns,
                                        self.scratch, counts)
            if total < 0:
                book.save_rows(self.scratch)
                self.crossed += book.apply(ps.asks, ps.n_asks, ps.bids, ps.n_bids, True,
                                           recv_ns)
                total = book.drift_compare(self.scratch, old_nb, old_na, counts)
            if shared:
                book._publish_end()
        else:
            book.save_rows(self.scratch)
            self.crossed += book.apply_ex(ps.asks, ps.n_asks, ps.bids, ps.n_bids, True,
                                          recv_ns, self.events, idx)
            total = book.drift_compare(self.scratch, old_nb, old_na, counts)
        self.drift_checks += 1
        if total:
            self._drift_found(idx, recv_ns, counts)

    cdef void _drift_found(self, int32_t idx, int64_t recv_ns, Py_ssize_t* counts) noexcept:
        """Count a drift and log it (no Python object: ``drift_log`` builds them)."""
        cdef DriftC* r
        self.drifted += 1
        if self.drift_log_size > 0:
            r = &self.drift_ring[self.drifted % self.drift_log_size]
            r.seq = self.drifted
            r.recv_ns = recv_ns
            r.symbol = idx
            r.missing = counts[0]
            r.extra = counts[1]
            r.changed = counts[2]

    # -- the hot path ----------------------------------------------------------------------

    cdef object _reject_parse(self, int code):
        cdef str reason = _PARSE_REASON.get(code, "bad_message")
        cdef Py_ssize_t off
        if code == P_NOMEM:
            raise MemoryError("out of memory while parsing")
        self.rejects[_REASON_INDEX[reason]] += 1
        off = self.parser.error_offset()
        where = f" at byte {off}" if off >= 0 else ""
        raise ParseError(f"{reason}{where}", reason)

    cdef object _reject_symbol_limit(self):
        if self._shm is not None and len(self._symbols) >= self._shm.max_symbols:
            self.rejects[R_SHM_FULL] += 1
            raise ShmFull(f"shm_full: a new symbol beyond the {self._shm.max_symbols} "
                          f"symbol slots of shared-memory segment {self._shm.name!r}; "
                          "raise Engine(shm_max_symbols=...)", "shm_full")
        self.rejects[R_SYMBOL_LIMIT] += 1
        raise ParseError(f"symbol_limit: a new symbol beyond max_symbols={self.max_symbols}",
                         "symbol_limit")

    cdef object feed_ptr(self, const uchar* data, Py_ssize_t size, int64_t recv_ns, bint text,
                         bint stable=True):
        """Feed one payload by pointer (the listener's entry point). See ``feed``.

        ``stable``: the ``size`` bytes at ``data`` stay alive and unchanged until this
        returns, even while the GIL is released (bytes, a held view of bytes, picows' read
        buffer inside its callback). If not, the payload is inflated/parsed with the GIL
        held. Raises :class:`~fastfeed.errors.EngineBusy` (nothing changed or counted) if
        another thread is feeding this engine."""
        if self._busy:
            self._enter()               # raises EngineBusy
        self._busy = True
        try:
            return _feed_frame(self, data, size, recv_ns, text, stable)
        finally:
            self._busy = False

    cdef int _feed_batch(self, list batch, int64_t recv_ns, bint raise_errors,
                         list out) except -1:
        """Feed a list of up to FEED_BATCH ``bytes`` (feed_many): frames are inflated and
        parsed without the GIL into one parser each, up to and including the first that
        is not held by its parser (see _held_by_parser); then applied in order with the GIL,
        exactly as ``_feed_frame`` would. One GIL release per run of hot frames, not per frame,
        so that engines in several threads do not queue for the GIL at every frame. While
        this is the interpreter's only Python thread (``other_threads``), nothing is gained
        by releasing the GIL: the frames are fed one by one with it held, one parser.

        Relies on: a depth/trade/ticker push's parse result (levels, trades, symbol, clean,
        ticker rows; not a ticker frame needing the Python fallback) is held in its parser,
        not pointers into the JSON text, since the inflater's buffer is reused by the next
        frame of the run; only the run's last frame (a non-hot or rejected one, or the last
        of the batch) may read its text (``jss``) in ``_after``."""
        cdef Py_ssize_t n = len(batch)
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t j
        cdef Py_ssize_t stop
        cdef const uchar* ptrs[FEED_BATCH]
        cdef Py_ssize_t sizes[FEED_BATCH]
        cdef const uchar* jss[FEED_BATCH]
        cdef Py_ssize_t jns[FEED_BATCH]
        cdef int rcs[FEED_BATCH]
        cdef bint zipped[FEED_BATCH]
        cdef Parser first = self.parser
        if not other_threads():
            # no thread could run while the GIL is released: frame by frame with the
            # GIL held, one parser (what feed does, minus the Python call per frame)
            for j in range(n):
                try:
                    msg = _feed_frame(self, <const uchar*>PyBytes_AS_STRING(batch[j]),
                                      PyBytes_GET_SIZE(batch[j]), recv_ns, False, False)
                except FastfeedError:
                    if raise_errors:
                        raise       # the frames after this one are not fed
                    continue
                if msg is not None:
                    out.append(msg)
            return 0
        if self._parsers is None:
            self._parsers = [self.parser] + [Parser() for _ in range(FEED_BATCH - 1)]
            for j in range(FEED_BATCH):
                self._pp[j] = <void*>self._parsers[j]
        for j in range(n):
            ptrs[j] = <const uchar*>PyBytes_AS_STRING(batch[j])
            sizes[j] = PyBytes_GET_SIZE(batch[j])
        try:
            while i < n:
                with nogil:
                    j = i
                    while j < n:
                        rcs[j] = _decode(self, self._pp[j], ptrs[j], sizes[j], False,
                                         &jss[j], &jns[j], &zipped[j])
                        j += 1
                        if not _held_by_parser(rcs[j - 1], <Parser>self._pp[j - 1]):
                            break
                    stop = j
                for j in range(i, stop):
                    self.parser = <Parser>self._pp[j]
                    self.frames += 1
                    self.bytes_in += sizes[j]
                    if zipped[j]:
                        self.bytes_inflated += jns[j]
                    i = j + 1
                    try:
                        msg = _after(self, rcs[j], jss[j], jns[j], sizes[j], recv_ns)
                    except FastfeedError:
                        if raise_errors:
                            raise       # frames decoded after this one are not fed
                        continue
                    if msg is not None:
                        out.append(msg)
        finally:
            self.parser = first
        return 0

    cdef object _feed_obj(self, object payload, int64_t recv_ns):
        """``feed`` without the busy check (the caller holds it)."""
        cdef Py_buffer view
        cdef bytes enc
        if type(payload) is bytes:
            return _feed_frame(self, <const uchar*>PyBytes_AS_STRING(payload),
                               PyBytes_GET_SIZE(payload), recv_ns, False, True)
        if type(payload) is str:
            try:
                enc = (<str>payload).encode("utf-8")
            except UnicodeEncodeError:
                self.frames += 1
                self.last_kind = -1
                self.last_symbol = -1
                self.rejects[R_BAD_JSON] += 1
                raise ParseError("bad_json: text is not encodable as UTF-8", "bad_json") from None
            return _feed_frame(self, <const uchar*>PyBytes_AS_STRING(enc),
                               PyBytes_GET_SIZE(enc), recv_ns, True, True)
        # a held view: the buffer can be neither freed nor resized meanwhile; only bytes
        # behind a memoryview cannot change either, so only they are read without the GIL
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        try:
            return _feed_frame(self, <const uchar*>view.buf, view.len, recv_ns, False,
                               type(payload) is memoryview and type(payload.obj) is bytes)
        finally:
            PyBuffer_Release(&view)

    cdef int _enter(self) except -1:
        if self._busy:
            raise EngineBusy("this Engine is being fed by another thread (or from inside "
                             "its own feed_many); feed each engine from one thread at a "
                             "time", "busy")
        self._busy = True
        return 0

    def feed(self, payload, int64_t recv_ns=0):
        """Feed one WebSocket payload.

        ``payload``: zlib-compressed bytes (a binary frame), or plain JSON text as ``str``,
        ``bytes``, ``bytearray`` or ``memoryview`` (binary payloads starting with ``{`` are
        taken as plain JSON). ``recv_ns``: the local receive time stamped on the update.
        Returns ``None`` for ``depth.update`` / ``trades.update`` / ``ticker.update`` /
        ``all_ticker.update`` (applied: books, ``trades``, ``tickers`` and
        ``ticker_history``), else the decoded message. Raises ``InflateError``,
        ``FrameTooLarge`` or ``ParseError``.

        Threads: inflating and parsing run without the GIL (for ``bytes``, ``str`` and
        memoryviews of ``bytes``; a ``bytearray`` or other writable buffer is read with
        the GIL held, since another thread could write into it; and not released while
        this is the interpreter's only Python thread); applying the result to books,
        rings and counters holds it. One thread feeds an engine at a time: a call
        while another thread is feeding it raises :class:`~fastfeed.errors.EngineBusy`
        and changes nothing. See docs/engine-semantics.md section 8.
        """
        cdef const uchar* data
        cdef const uchar* js = NULL
        cdef Py_ssize_t jn
        cdef Py_ssize_t size
        cdef bint zipped
        cdef int rc
        if self._busy:
            self._enter()               # raises EngineBusy
        self._busy = True
        try:
            if type(payload) is bytes:  # the common case: _feed_frame, written out here
                data = <const uchar*>PyBytes_AS_STRING(payload)
                size = PyBytes_GET_SIZE(payload)
                self.frames += 1
                self.bytes_in += size
                # inflate + parse without the GIL while another thread could use it
                if other_threads():
                    with nogil:
                        rc = _decode(self, <void*>self.parser, data, size, False, &js, &jn,
                                     &zipped)
                else:
                    rc = _decode(self, <void*>self.parser, data, size, False, &js, &jn, &zipped)
                if zipped:
                    self.bytes_inflated += jn
                return _after(self, rc, js, jn, size, recv_ns)
            return self._feed_obj(payload, recv_ns)
        finally:
            self._busy = False

    def feed_many(self, payloads, int64_t recv_ns=0, bint raise_errors=False):
        """Feed every payload of an iterable (replay, benchmarks: no Python call per frame).

        Returns the list of decoded non-hot messages, in order. Bad frames are counted in
        ``stats["rejects"]`` and skipped, unless ``raise_errors`` is true. The engine is
        busy (``EngineBusy`` for any other ``feed``) until this returns.

        Runs of ``bytes`` payloads are taken from the iterable up to 16 at a time and,
        when another Python thread exists, inflated + parsed with one GIL release (then
        applied in order, with the GIL; alone, they are fed one by one with the GIL held):
        the result is that of feeding them one by one, but the iterable runs up to 15
        payloads ahead, and with ``raise_errors`` the ones taken after the bad frame are
        not fed.
        """
        cdef list out = []
        cdef list batch = []
        cdef object other
        cdef object it = iter(payloads)
        cdef object nothing = _NOTHING
        self._enter()
        try:
            while True:
                del batch[:]
                other = nothing
                for payload in it:
                    if type(payload) is bytes:
                        if not batch and not other_threads():
                            # alone in the interpreter: nothing to gain from a batch
                            # (no GIL release), fed at once as feed would
                            try:
                                msg = _feed_frame(self, <const uchar*>PyBytes_AS_STRING(payload),
                                                  PyBytes_GET_SIZE(payload), recv_ns, False,
                                                  False)
                            except FastfeedError:
                                if raise_errors:
                                    raise
                                continue
                            if msg is not None:
                                out.append(msg)
                            continue
                        batch.append(payload)
                        if len(batch) == FEED_BATCH:
                            break
                    else:
                        other = payload
                        break
                if batch:
                    self._feed_batch(batch, recv_ns, raise_errors, out)
                if other is not nothing:
                    try:
                        msg = self._feed_obj(other, recv_ns)
                    except FastfeedError:
                        if raise_errors:
                            raise
                        continue
                    if msg is not None:
                        out.append(msg)
                elif len(batch) < FEED_BATCH:
                    break           # the iterable is exhausted
        finally:
            self._busy = False
        return out

    # -- access ------------------------------------------------------------------------------

    cdef object _lookup(self, object symbol, bint create):
        """The index of a symbol (validated, upper-cased); UnknownSymbol unless known or
        ``create``."""
        cdef str name = _symbol_name(symbol)
        idx = self._index.get(name)
        if idx is None:
            if not create:
                raise UnknownSymbol(
                    f"unknown symbol {name!r}: not seen in data and not registered "
                    "(book(symbol, create=True) registers it)", "unknown_symbol")
            idx = self._register(name)
        return idx

    def book(self, symbol, *, bint create=False):
        """The :class:`Book` of ``symbol`` (case-insensitive).

        Rule: a symbol the engine knows (seen in a depth or trades push, or registered
        before) gives its book (empty and not ``live`` if no depth has arrived yet). An
        unknown symbol raises :class:`~fastfeed.errors.UnknownSymbol` (a ``KeyError``)
        and registers nothing, unless ``create=True``: then it is registered (an empty,
        stale book; with ``shm_name`` also published) -- what a client does for the
        symbols it subscribes to. A name that is not a ``str`` raises ``TypeError``; one
        that is not 1..32 printable ASCII characters, ``ValueError``.
        """
        return self._book_at(self._lookup(symbol, create))

    def mark_stale(self, symbols=None, int64_t now_ns=0):
        """Mark books stale, keeping their levels (after ``unsubscribe_depth``, or when the
        connection drops): ``live`` becomes False and ``stale_since`` ``now_ns`` (0: the
        current time) for each live book of ``symbols`` (an iterable of names, not a
        single ``str``; None: every book). The next ``clean=true`` snapshot makes a book
        live again. Books already stale keep their ``stale_since``. Every name is checked
        first (TypeError / ValueError / UnknownSymbol): nothing is marked if one is bad.
        Returns the number of books that went from live to stale."""
        cdef Book b
        cdef int n = 0
        if isinstance(symbols, (str, bytes, bytearray)):
            raise TypeError("symbols must be an iterable of names (or None), not a single "
                            f"{type(symbols).__name__}")
        if now_ns == 0:
            now_ns = time_ns()
        if symbols is None:
            targets = range(len(self._books))
        else:
            targets = [self._lookup(s, False) for s in symbols]
        for idx in targets:
            obj = self._books[idx]
            if obj is not None:
                b = <Book>obj
                n += b.mark_stale(now_ns)
        return n

    def reset_books(self, int64_t now_ns=0):
        """Empty every book, e.g. after a reconnect, so that no stale level survives until
        the fresh snapshot arrives (books still at version 0 never had data and are left
        alone). Each book's ``version`` still increases and each
        becomes stale (``live`` False; a live one gets ``stale_since = now_ns``, 0: the
        current time) until its next snapshot. Trade de-duplication state is kept, so the
        trades a resubscribe replays are dropped. (Logged as a ``DEPTH_CLEAR_EVENT`` row
        per book, stamped ``now_ns``.)"""
        cdef Book b
        cdef int32_t idx = 0
        if now_ns == 0:
            now_ns = time_ns()
        if self.events is not None:
            self.events.frame = 0    # rows outside any frame carry frame id 0
        for obj in self._books:
            if obj is not None and (<Book>obj).version > 0:  # version 0: empty, never live
                b = <Book>obj
                b.reset(self.events, idx, now_ns)
            idx += 1

    @property
    def drift_log(self):
        """The newest ``drift_log_size`` drift records (a list of
        :class:`~fastfeed.layout.DriftRecord`, oldest first; a copy)."""
        cdef int64_t seq
        cdef DriftC* r
        out = []
        if self.drift_log_size == 0:
            return out
        seq = self.drifted - self.drift_log_size + 1
        if seq < 1:
            seq = 1
        while seq <= self.drifted:
            r = &self.drift_ring[seq % self.drift_log_size]
            out.append(DriftRecord(r.seq, self._symbols[r.symbol], r.recv_ns, r.missing,
                                   r.extra, r.changed))
            seq += 1
        return out

    # -- shared memory -----------------------------------------------------------------------

    @property
    def shm_name(self):
        """The shared-memory segment name (``Engine(shm_name=...)``), or None."""
        return self._shm.name if self._shm is not None else None

    @property
    def shm(self):
        """The :class:`~fastfeed._shm.ShmWriter` of the segment, or None."""
        return self._shm

    @property
    def inflate_backend(self):
        """The inflate backend in use: ``"isal"``, ``"libdeflate"`` or ``"zlib"`` (see
        ``Inflater``)."""
        return self.inflater.backend

    def close(self):
        """Close the shared-memory segment, if any: readers see ``state == 'closed'`` and
        the name is unlinked (``attach`` fails from now on). The engine keeps working on
        its (now private) books; views taken earlier stay valid. Idempotent."""
        if self._shm is not None:
            self._shm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def books(self):
        """``{symbol: Book}`` of every book that exists."""
        return {s: b for s, b in zip(self._symbols, self._books) if b is not None}

    @property
    def symbols(self):
        """Symbol names in index order (the ``symbol`` field of trade records)."""
        return list(self._symbols)

    # -- tickers -----------------------------------------------------------------------------

    @property
    def tickers(self):
        """The latest ticker of every symbol seen in a ticker push: a zero-copy read-only
        ``fastfeed.layout.TICKER_DTYPE`` array, row ``i`` for ``ticker_symbols[i]``.

        Rows are updated in place by every ticker push (copy the array to keep a
        snapshot); a symbol first seen after the view was taken needs a new view. The
        memory stays valid as long as the view lives (even after the engine is gone)."""
        return self._tickers.view()

    def ticker(self, symbol):
        """The latest :class:`~fastfeed.protocol.Ticker` of ``symbol`` (case-insensitive),
        a new object built from its row. A symbol without a ticker raises
        :class:`~fastfeed.errors.UnknownSymbol` (a ``KeyError``); a name that is not a
        ``str`` ``TypeError``, one that is not 1..32 printable ASCII ``ValueError``."""
        cdef str name = _symbol_name(symbol)
        got = self._tickers.get(name)
        if got is None:
            raise UnknownSymbol(f"no ticker for {name!r}", "unknown_symbol")
        return got

    @property
    def ticker_symbols(self):
        """Symbols seen in ticker pushes, in row order of ``tickers`` (the ``symbol`` field
        of ticker records); at most ``max_ticker_symbols``."""
        return list(self._tickers.symbols)

    @property
    def _ticker_slow_frames(self):
        """Ticker pushes decoded by the exact Python fallback (tests, benchmarks)."""
        return self._tickers.slow_frames

    @property
    def max_ticker_symbols(self):
        """Most symbols the ticker table keeps (``Engine(max_ticker_symbols=...)``)."""
        return self._tickers.max_symbols

    def symbol_index(self, symbol, *, bint create=False):
        """The index of ``symbol`` in ``symbols``; same rule as :meth:`book` (an unknown
        symbol raises :class:`~fastfeed.errors.UnknownSymbol` unless ``create=True``)."""
        return self._lookup(symbol, create)

    @property
    def stats(self):
        """Counters: frames, bytes_in, bytes_inflated, messages, rejects,
        crossed_levels_removed, duplicate_trades (all trades dropped), dropped_trades
        (by reason: ``replayed`` from ``clean=true`` pushes, ``duplicate`` from others),
        out_of_order_trades (stored trades whose id was not above the previous stored
        trade's of their symbol: id resets, backwards ids, reused ids), drift
        (``checks``, ``drifted``, ``by_symbol`` {symbol: drifted snapshots}), tickers
        (``records`` stored, ``rejects`` by reason: ``bad_shape``, ``bad_symbol``,
        ``bad_field``, ``dropped_symbols``: records of symbols beyond
        ``max_ticker_symbols``); a fresh dict each call. See docs/engine-semantics.md section 5."""
        cdef Book b
        by_symbol = {}
        for obj in self._books:
            if obj is not None:
                b = <Book>obj
                if b.drifts:
                    by_symbol[b.symbol] = b.drifts
        return {
            "frames": self.frames,
            "bytes_in": self.bytes_in,
            "bytes_inflated": self.bytes_inflated,
            "messages": {name: self.msg_counts[i] for i, name in enumerate(METHOD_NAMES)},
            "rejects": {name: self.rejects[i] for i, name in enumerate(REJECT_REASONS)},
            "crossed_levels_removed": self.crossed,
            "duplicate_trades": self.dup_trades,
            "dropped_trades": {"replayed": self.replayed_trades,
                               "duplicate": self.dup_trades - self.replayed_trades},
            "out_of_order_trades": self.ooo_trades,
            "drift": {"checks": self.drift_checks, "drifted": self.drifted,
                      "by_symbol": by_symbol},
            "tickers": self._tickers.stats(),
        }

    def __repr__(self):
        shm = f" shm={self._shm.name!r}" if self._shm is not None else ""
        return (f"<Engine symbols={len(self._symbols)} frames={self.frames} "
                f"trades={self.trades.count}{shm}>")
