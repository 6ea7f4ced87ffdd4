"""The :class:`Monitor`: samples a live feed for the views (rates, latencies, events)."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..protocol import safe_text
from .format import _decimals


# ---------------------------------------------------------------------------- histogram
class LogHistogram:
    """Counts of positive values (ns) in log-spaced bins, 100 per decade (~2.3 % wide), from
    1 ns to 10^12 ns: run-long percentiles in bounded memory. Values <= 0 (clock skew) are
    counted in ``nonpositive`` and left out of the percentiles."""

    PER_DECADE = 100
    DECADES = 12

    def __init__(self) -> None:
        self.counts = np.zeros(self.PER_DECADE * self.DECADES, dtype=np.int64)
        self.n = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.nonpositive = 0

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        v = np.asarray(values, dtype=np.int64)
        pos = v[v > 0]
        self.nonpositive += len(v) - len(pos)
        if not len(pos):
            return
        idx = np.minimum((np.log10(pos) * self.PER_DECADE).astype(np.int64), len(self.counts) - 1)
        self.counts += np.bincount(idx, minlength=len(self.counts))
        self.n += len(pos)
        self.total += float(pos.sum())
        self.min = min(self.min, float(pos.min()))
        self.max = max(self.max, float(pos.max()))

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100), to the bin's resolution; NaN when empty."""
        if not self.n:
            return math.nan
        target = max(1, math.ceil(q / 100.0 * self.n))
        i = int(np.searchsorted(np.cumsum(self.counts), target))
        mid = 10.0 ** ((i + 0.5) / self.PER_DECADE)
        return min(max(mid, self.min), self.max)


def _pcts(values: np.ndarray) -> tuple[float, float, float, float]:
    """p50, p99, p99.9 and max of a window of values (NaN when empty)."""
    if not len(values):
        return (math.nan,) * 4
    p = np.percentile(values, [50, 99, 99.9])
    return float(p[0]), float(p[1]), float(p[2]), float(values.max())


# ---------------------------------------------------------------------------- monitor
@dataclass
class Event:
    time_ns: int
    kind: str
    reason: str


class Monitor:
    """Samples a live feed. Create it first (its ``on_*`` methods are the feed's
    callbacks), :meth:`attach` the feed, then call :meth:`sample` periodically."""

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        title: str = "fastfeed",
        url: str = "",
        depth: int = 10,
        window: float = 2.0,
        channels: Sequence[str] = (),
    ) -> None:
        self.symbols = [s.upper() for s in symbols]
        self.title = title
        self.url = url
        self.depth = depth
        self.window = window
        self.channels = list(channels)
        self.selected = 0
        self.feed: Any = None
        self.started = time.monotonic()
        self.started_ns = time.time_ns()
        self.ended: float | None = None
        self.proc = LogHistogram()  #: recv -> done per data frame (inflate + parse + apply)
        self.wire = LogHistogram()  #: trade time (exchange clock) -> recv (local clock)
        self._proc_recent: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self._wire_recent: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self._rates: collections.deque[tuple[float, int, int, int]] = collections.deque()
        self._last_recv_ns = 0
        self._trade_pos = 0
        self._connects: list[int] = [0]
        self.history_trades = 0  #: trades that happened before their connection (sent on subscribe)
        self.trades_seen = 0
        self.trades_by_symbol: collections.Counter[str] = collections.Counter()
        self.events: collections.deque[Event] = collections.deque(maxlen=6)
        self.orders: collections.deque[Any] = collections.deque(maxlen=6)
        self.order_count = 0
        self.balances: dict[str, Any] = {}
        self.balance_count = 0
        self.printer: Any = None  #: called with a line for every connection event (plain mode)
        self._stats: dict[str, Any] = {}
        self._px_dec: dict[str, int] = {}
        self._qty_dec: dict[str, int] = {}

    # -- callbacks -------------------------------------------------------------------------
    def on_event(self, ev: Any) -> None:
        reason = safe_text(ev.reason, 300) if ev.reason else ""
        self.events.append(Event(ev.time_ns, safe_text(ev.kind, 40), reason))
        if ev.kind == "connected":
            self._connects.append(ev.time_ns)
            if len(self._connects) > 100_000:  # bounded: keep the newest connection times
                del self._connects[1:50_000]
        if self.printer is not None:
            self.printer(
                f"[{self.elapsed:7.1f}s] connection {safe_text(ev.kind, 40)}"
                + (f": {reason}" if reason else "")
            )

    def on_order(self, order: Any) -> None:
        self.orders.append(order)
        self.order_count += 1

    def on_balance(self, bal: Any) -> None:
        if bal.currency in self.balances or len(self.balances) < 1000:  # bounded
            self.balances[bal.currency] = bal
        self.balance_count += 1

    # -- precision -------------------------------------------------------------------------
    def learn(self, symbol: str, prices: Iterable[float] = (), amounts: Iterable[float] = ()) -> None:
        """Widen ``symbol``'s price / amount decimals to cover these values (so that every
        view prints the symbol's prices with one precision; it only ever grows). Bounded: at
        most 10_000 symbols are tracked."""
        if symbol not in self._px_dec and len(self._px_dec) >= 10_000:
            return
        pd_ = _decimals(prices)
        ad = _decimals(amounts)
        if pd_ > self._px_dec.get(symbol, -1):
            self._px_dec[symbol] = pd_
        if ad > self._qty_dec.get(symbol, -1):
            self._qty_dec[symbol] = ad

    def decimals(self, symbol: str) -> tuple[int | None, int | None]:
        """``(price decimals, amount decimals)`` seen so far for ``symbol`` (None: nothing
        seen yet, print the shortest exact form)."""
        return self._px_dec.get(symbol), self._qty_dec.get(symbol)

    def _learn_books(self) -> None:
        books = self.books()
        for s in self.symbols[:1000]:
            b = books.get(s)
            if b is not None and (b.n_bids or b.n_asks):
                bids, asks = b.bids[:10], b.asks[:10]
                self.learn(
                    s, bids[:, 0].tolist() + asks[:, 0].tolist(), bids[:, 1].tolist() + asks[:, 1].tolist()
                )
        tickers = getattr(self.feed, "latest_tickers", None) or {}
        for s in self.symbols[:1000]:
            tk = tickers.get(s)
            if tk is not None:
                self.learn(s, (tk.last, tk.best_bid, tk.best_ask))

    # -- sampling --------------------------------------------------------------------------
    def attach(self, feed: Any) -> None:
        self.feed = feed
        self._trade_pos = feed.trades.count
        self.sample()

    @property
    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def stop(self) -> None:
        """Freeze the clock (the summary's duration)."""
        if self.ended is None:
            self.ended = time.monotonic()

    def sample(self) -> None:
        feed = self.feed
        if feed is None:
            return
        now = time.monotonic()
        self._stats = st = feed.stats
        eng = st["engine"]
        self._rates.append((now, eng["frames"], eng["bytes_in"], eng["bytes_inflated"]))
        while len(self._rates) > 2 and now - self._rates[1][0] >= self.window:
            self._rates.popleft()
        # processing time per data frame
        t = feed.timings()
        if len(t):
            new = t[t[:, 0] > self._last_recv_ns]
            if len(new):
                self._last_recv_ns = int(new[-1, 0])
                d = new[:, 1] - new[:, 0]
                self.proc.add(d)
                self._proc_recent.append((now, d))
        # trade time -> receive time
        ring = feed.trades
        count = ring.count
        n_new = count - self._trade_pos
        if n_new > 0:
            recs = ring.latest(min(n_new, ring.capacity // 2))
            recv = recs["recv_ns"]
            exch = np.rint(recs["time"] * 1e9).astype(np.int64)
            # A trade older than the connection it arrived on is history the server sent
            # on subscribe, not a live push: leave it out of the latency.
            conns = np.asarray(self._connects, dtype=np.int64)
            since = conns[np.maximum(np.searchsorted(conns, recv, side="right") - 1, 0)]
            live = exch >= since
            self.history_trades += int(len(live) - np.count_nonzero(live))
            wire = (recv - exch)[live]
            self.wire.add(wire)
            self._wire_recent.append((now, wire))
            self.trades_seen += n_new
            syms = feed.engine.symbols
            idx, cnt = np.unique(recs["symbol"], return_counts=True)
            tail = recs[-256:]
            for i, c in zip(idx.tolist(), cnt.tolist()):
                if 0 <= i < len(syms):
                    self.trades_by_symbol[syms[i]] += c
                    mine = tail[tail["symbol"] == i]
                    if len(mine):
                        self.learn(syms[i], mine["price"].tolist(), mine["amount"].tolist())
            self._trade_pos = count
        for dq in (self._proc_recent, self._wire_recent):
            while dq and now - dq[0][0] > self.window:
                dq.popleft()
        self._learn_books()

    # -- derived numbers -------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, Any]:
        return self._stats

    def rates(self) -> tuple[float, float, float]:
        """Frames/s, bytes in/s and inflated bytes/s over the last ``window`` seconds."""
        if len(self._rates) < 2:
            return 0.0, 0.0, 0.0
        t0, f0, b0, i0 = self._rates[0]
        t1, f1, b1, i1 = self._rates[-1]
        dt = t1 - t0
        if dt <= 0:
            return 0.0, 0.0, 0.0
        return (f1 - f0) / dt, (b1 - b0) / dt, (i1 - i0) / dt

    def proc_window(self) -> tuple[float, float, float, float]:
        vals = [a for _, a in self._proc_recent]
        return _pcts(np.concatenate(vals) if vals else np.zeros(0, np.int64))

    def wire_window(self) -> tuple[float, float, float, float]:
        vals = [a for _, a in self._wire_recent]
        return _pcts(np.concatenate(vals) if vals else np.zeros(0, np.int64))

    @property
    def selected_symbol(self) -> str:
        return self.symbols[self.selected % len(self.symbols)] if self.symbols else ""

    def select(self, i: int) -> None:
        if self.symbols:
            self.selected = i % len(self.symbols)

    def messages(self) -> dict[str, int]:
        eng = self._stats.get("engine", {})
        return {k: v for k, v in eng.get("messages", {}).items() if v}

    def rejects(self) -> dict[str, int]:
        eng = self._stats.get("engine", {})
        return {k: v for k, v in eng.get("rejects", {}).items() if v}

    def books(self) -> dict[str, Any]:
        if self.feed is None:
            return {}
        return self.feed.engine.books
