"""The feed's per-frame hook, compiled (``Feed.on_frame`` / ``Feed.changes()``).

:class:`FrameHook` is what ``Feed`` installs as the listener's ``on_frame(msg, recv_ns)``
when some consumer wants frames: it reads the engine's ``last_kind`` / ``last_symbol`` /
``frames`` and the event-log and ticker-history counts in C, builds the
:class:`FrameChange` and hands it to the feed's ``changes()`` streams and ``on_frame``
callbacks. Python runs only where it must: the consumers themselves, ``push_symbols`` for
private-channel pushes (their symbols are in the decoded message), and the feed's
``callback_failed`` / ``returned`` / ``update_hooks`` (a raising or async callback, the last
consumer gone).
"""

from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint64_t

cimport cython

from fastfeed._engine cimport Engine
from fastfeed._events cimport EventRing
from fastfeed._ticker cimport TickerRing

import weakref

import numpy as np

from .events import EVENT_DTYPE

__all__ = ["FrameChange", "FrameHook"]

_NO_ROWS = np.zeros(0, dtype=EVENT_DTYPE)
_NO_ROWS.flags.writeable = False


@cython.freelist(16)
cdef class FrameChange:
    """What one frame changed (the per-frame hook's argument).

    ``frame``: the frame id (``Engine.frames`` after the frame; the ``fval`` of its event
    rows; 0 for a ``reset``). ``recv_ns``: its local receive time. ``kind``: ``depth``,
    ``trades``, ``ticker``, ``all_ticker``, ``order``, ``order_algo``, ``balance``, or
    ``reset`` (the feed emptied every book on a new connection:
    ``Engine.reset_books()``). ``symbol``: the symbol of a depth / trades frame, else
    None. ``symbols``: every symbol (currency for balance) the frame names, at most 10000.
    ``seq`` / ``end``: the event-log row numbers of this frame's rows, ``seq`` included,
    ``end`` excluded (both ``Engine.events.count`` values; equal when the event log is
    off or the frame logged nothing, e.g. a duplicate trade).
    """

    cdef public int64_t frame
    cdef public int64_t recv_ns
    cdef public str kind
    cdef public object symbol
    cdef public tuple symbols
    cdef public int64_t seq
    cdef public int64_t end
    cdef object _ring

    def __init__(self, int64_t frame, int64_t recv_ns, str kind, object symbol,
                 tuple symbols, int64_t seq, int64_t end, object ring):
        self.frame = frame
        self.recv_ns = recv_ns
        self.kind = kind
        self.symbol = symbol
        self.symbols = symbols
        self.seq = seq
        self.end = end
        self._ring = ring

    @property
    def n_rows(self):
        return self.end - self.seq

    def rows(self):
        """This frame's event rows (:data:`~fastfeed.events.EVENT_DTYPE`), oldest first: a
        zero-copy read-only view of the engine's event ring, valid until ``capacity -
        n_rows`` more rows are logged (``.copy()`` it to keep it). Empty when the feed has
        no event log. Raises :class:`~fastfeed.errors.EventsOverwritten` once the ring has
        overwritten them (a consumer that fell behind: rebuild it with ``feed.resync()``)."""
        cdef EventRing ring
        cdef int64_t stop
        cdef Py_ssize_t start
        if self._ring is None or self.end == self.seq:
            return _NO_ROWS
        if type(self._ring) is not EventRing or self.seq < 0 or self.end < self.seq:
            return self._ring.since(self.seq)[: self.end - self.seq]
        ring = <EventRing>self._ring
        if ring.count - self.seq > ring.capacity:
            return ring.since(self.seq)  # raises EventsOverwritten
        # ring.since(seq)[:end - seq] in one slice of the mirror ring
        stop = self.end if self.end < ring.count else ring.count
        if stop <= self.seq:
            return ring._ro[0:0]
        start = <Py_ssize_t>(<uint64_t>self.seq & ring.mask)
        return ring._ro[start:start + <Py_ssize_t>(stop - self.seq)]

    def __reduce__(self):
        return (FrameChange, (self.frame, self.recv_ns, self.kind, self.symbol, self.symbols,
                              self.seq, self.end, self._ring))

    def __repr__(self):
        what = (
            self.symbol
            if self.symbol is not None
            else ",".join(self.symbols[:3]) + ("..." if len(self.symbols) > 3 else "")
        )
        return f"<FrameChange frame={self.frame} {self.kind} {what} rows {self.seq}..{self.end}>"


cdef inline FrameChange _make(int64_t frame, int64_t recv_ns, str kind, object symbol,
                              tuple symbols, int64_t seq, int64_t end, object ring):
    cdef FrameChange c = FrameChange.__new__(FrameChange)
    c.frame = frame
    c.recv_ns = recv_ns
    c.kind = kind
    c.symbol = symbol
    c.symbols = symbols
    c.seq = seq
    c.end = end
    c._ring = ring
    return c


cdef object _held(fn):
    """A callable returning ``fn``; a bound method is held weakly (the feed owns its hook:
    no reference cycle through it), returning None once its object is gone."""
    if getattr(fn, "__self__", None) is not None and hasattr(fn, "__func__"):
        return weakref.WeakMethod(fn)
    return lambda: fn


@cython.auto_pickle(False)  # a feed's live hook: nothing to pickle
cdef class FrameHook:
    """``hook(msg, recv_ns)``: the listener's per-frame hook of one feed.

    ``FrameHook(engine, kind_names, push_symbols, streams, callback_failed, returned,
    update_hooks)``: ``kind_names`` maps ``Engine.last_kind`` to ``FrameChange.kind``
    (:data:`fastfeed.sinks.KIND_NAMES`); ``push_symbols(msg)`` names a private push's
    symbols; ``streams`` is the feed's list of ``changes()`` streams (the same list object:
    each gets ``put(change)``); ``fns`` the ``on_frame`` callbacks (set by the feed).
    A callback that raises goes to ``callback_failed("on_frame", exc)``, one that returns
    something other than None to ``returned("on_frame", result)`` (the feed's async
    check); neither stops the other consumers or the frame path. With no consumer left,
    a call runs ``update_hooks()`` (which switches the hook off) and does nothing else.
    Those three are held weakly when they are bound methods (the feed's own: no reference
    cycle between a feed and its hook); once their object is gone they are skipped.
    ``ev_seen`` / ``tk_seen``: the event-log rows / ticker-history records already
    accounted to a change (:meth:`start` sets both to the engine's counts).
    """

    cdef Engine engine
    cdef list _kinds                 # last_kind -> str or None
    cdef object _push_symbols
    cdef readonly list streams
    cdef public list fns
    cdef object _failed
    cdef object _returned
    cdef object _update
    cdef public int64_t ev_seen
    cdef public int64_t tk_seen
    cdef list _single                # symbol index -> (name,), cached

    def __init__(self, Engine engine not None, dict kind_names not None, push_symbols,
                 list streams not None, callback_failed, returned, update_hooks):
        self.engine = engine
        top = max([k for k in kind_names if isinstance(k, int) and 0 <= k < 256] + [0])
        self._kinds = [kind_names.get(i) for i in range(top + 1)]
        for k in self._kinds:
            if k is not None and type(k) is not str:
                raise TypeError("kind_names values must be str")
        self._push_symbols = push_symbols
        self.streams = streams
        self.fns = []
        self._failed = _held(callback_failed)
        self._returned = _held(returned)
        self._update = _held(update_hooks)
        self._single = []

    def start(self):
        """Take the engine's current event-log and ticker-history counts as seen (the
        rows and records before now belong to no change)."""
        cdef EventRing ring = self.engine.events
        self.ev_seen = ring.count if ring is not None else 0
        self.tk_seen = self.engine.ticker_history.count

    def __call__(self, msg, int64_t recv_ns):
        cdef Engine eng = self.engine
        cdef int code = eng.last_kind
        cdef int64_t tk_first
        cdef int32_t idx
        cdef object kind, symbol
        cdef tuple symbols
        if not self.fns and not self.streams:  # the last consumer went away
            fn = self._update()
            if fn is not None:
                fn()
            return
        tk_first = self.tk_seen
        self.tk_seen = eng.ticker_history.count
        if code < 0 or code >= len(self._kinds):
            return
        kind = self._kinds[code]
        if kind is None:  # a reply or an unknown method: nothing changed
            return
        idx = eng.last_symbol
        if idx >= 0:  # depth / trades: one symbol, known by index
            symbols = self._one(eng, idx)
            symbol = symbols[0]
        elif kind == "ticker" or kind == "all_ticker":  # stored by the engine: its records name them
            symbol = None
            symbols = self._ticker_symbols(eng, tk_first)
        else:
            symbol = None
            symbols = self._push_symbols(msg)
        self._emit(eng.frames, recv_ns, <str>kind, symbol, symbols)

    cdef tuple _one(self, Engine eng, int32_t idx):
        cdef list cache = self._single
        cdef list names = eng._symbols
        while PyList_GET_SIZE(cache) <= idx:
            if PyList_GET_SIZE(cache) >= PyList_GET_SIZE(names):
                raise IndexError(f"symbol index {idx} out of range")
            cache.append((names[PyList_GET_SIZE(cache)],))
        return <tuple>PyList_GET_ITEM(cache, idx)

    cdef tuple _ticker_symbols(self, Engine eng, int64_t first):
        """The symbols of the ticker records stored from sequence number ``first`` on, in
        order, each once (the records still held, when one frame stored more than the
        history holds)."""
        cdef TickerRing hist = eng.ticker_history
        cdef list names = eng._tickers.symbols
        cdef Py_ssize_t n_names = PyList_GET_SIZE(names)
        cdef int64_t count = hist.count
        cdef int64_t s
        cdef int32_t i, prev = -1
        cdef dict seen
        cdef list out
        if first < count - hist.capacity:
            first = count - hist.capacity
        if first < 0:
            first = 0
        if first >= count:
            return ()
        if count - first == 1:  # the common case: one record
            i = hist.buf[<uint64_t>first & hist.mask].symbol
            if 0 <= i < n_names:
                return (<object>PyList_GET_ITEM(names, i),)
            return ()
        seen = {}
        out = []
        for s in range(first, count):
            i = hist.buf[<uint64_t>s & hist.mask].symbol
            if i == prev or i < 0 or i >= n_names:
                continue
            prev = i
            if PyDict_GetItem(seen, i) != NULL:
                continue
            PyDict_SetItem(seen, i, None)
            out.append(<object>PyList_GET_ITEM(names, i))
        return tuple(out)

    def emit(self, int64_t frame, int64_t recv_ns, str kind not None, symbol, tuple symbols not None):
        """Hand out one change (the feed's ``reset`` change; the hook's own changes): its
        rows are the event-log rows since the last change."""
        self._emit(frame, recv_ns, kind, symbol, symbols)

    cdef _emit(self, int64_t frame, int64_t recv_ns, str kind, object symbol, tuple symbols):
        cdef EventRing ring = self.engine.events
        cdef int64_t end = ring.count if ring is not None else 0
        cdef int64_t seq = self.ev_seen
        cdef FrameChange change
        self.ev_seen = end
        change = _make(frame, recv_ns, kind, symbol, symbols, seq, end, ring)
        if self.streams:
            for st in self.streams:
                st.put(change)
        for fn in self.fns:
            try:
                result = fn(change)
            except Exception as exc:  # a user callback must never break the frame path
                report = self._failed()
                if report is not None:
                    report("on_frame", exc)
                continue
            if result is not None:
                check = self._returned()
                if check is not None:
                    check("on_frame", result)
