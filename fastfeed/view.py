"""Terminal views of a live :class:`~fastfeed.Feed` for the ``fastfeed`` command.

:class:`Monitor` samples a feed a few times a second (rates from the engine's counters,
per-frame processing time from ``Feed.timings()``, trade time -> receive latency from the
trade ring, connection events, private pushes). Three renderings read it:

* :func:`render` - the rich live view (book, trades, tickers, rates, latency);
* :func:`plain_line` - one line per interval when stdout is not a terminal;
* :func:`summary_lines` - the one-screen summary printed at the end.

Everything here runs on the event loop's thread; nothing is rendered from another thread.
Text that came from the network (event reasons, order fields, balance strings, symbol names)
is escaped with :func:`fastfeed.protocol.safe_text` before it is shown; the rich view builds
``Text`` objects (never markup strings), so ``[`` in such text is not interpreted either.
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from .protocol import safe_text

__all__ = [
    "LogHistogram",
    "Monitor",
    "fmt_bytes",
    "fmt_count",
    "fmt_ns",
    "fmt_num",
    "plain_line",
    "render",
    "summary_lines",
    "top_of_book_lines",
]


# ---------------------------------------------------------------------------- formatting
def fmt_ns(ns: float, micro: str = "us") -> str:
    """``850 ns``, ``12.3 us``, ``1.23 ms``, ``2.50 s`` (``micro`` is the µ spelling)."""
    if ns != ns:  # NaN
        return "-"
    a = abs(ns)
    if a < 1e3:
        return f"{ns:.0f} ns"
    if a < 1e6:
        v = ns / 1e3
        return f"{v:.1f} {micro}" if abs(v) < 100 else f"{v:.0f} {micro}"
    if a < 1e9:
        v = ns / 1e6
        return f"{v:.2f} ms" if abs(v) < 10 else (f"{v:.1f} ms" if abs(v) < 100 else f"{v:.0f} ms")
    return f"{ns / 1e9:.2f} s"


def fmt_count(n: float) -> str:
    return f"{n:,.0f}"


def fmt_bytes(n: float) -> str:
    """Decimal units: ``512 B``, ``12.3 kB``, ``4.56 MB``, ``1.20 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            v = n / scale
            return f"{v:.2f} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{n:.0f} B"


def _decimals(values: Iterable[float], cap: int = 10) -> int:
    """The number of decimals needed to print every value exactly (at most ``cap``)."""
    best = 0
    for v in values:
        if not math.isfinite(v):
            continue
        s = np.format_float_positional(v, trim="-", precision=cap)
        if "." in s:
            best = max(best, len(s) - s.index(".") - 1)
    return min(best, cap)


def fmt_num(v: float, decimals: int | None = None) -> str:
    """A price or amount: exact shortest form, or ``decimals`` fixed digits."""
    if not math.isfinite(v):
        return "-"
    if decimals is None:
        return np.format_float_positional(v, trim="-", precision=10)
    return f"{v:.{decimals}f}"


def _clock(ns: int) -> str:
    t = ns / 1e9
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(ns // 1_000_000 % 1000):03d}"


def _duration(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


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
        return (math.nan, math.nan, math.nan, math.nan)
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

    def __init__(self, symbols: Sequence[str], *, title: str = "fastfeed", url: str = "",
                 depth: int = 10, window: float = 2.0, channels: Sequence[str] = ()) -> None:
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

    # -- callbacks -------------------------------------------------------------------------
    def on_event(self, ev: Any) -> None:
        reason = safe_text(ev.reason, 300) if ev.reason else ""
        self.events.append(Event(ev.time_ns, safe_text(ev.kind, 40), reason))
        if ev.kind == "connected":
            self._connects.append(ev.time_ns)
            if len(self._connects) > 100_000:  # bounded: keep the newest connection times
                del self._connects[1:50_000]
        if self.printer is not None:
            self.printer(f"[{self.elapsed:7.1f}s] connection {safe_text(ev.kind, 40)}" + (f": {reason}" if reason else ""))

    def on_order(self, order: Any) -> None:
        self.orders.append(order)
        self.order_count += 1

    def on_balance(self, bal: Any) -> None:
        if bal.currency in self.balances or len(self.balances) < 1000:  # bounded
            self.balances[bal.currency] = bal
        self.balance_count += 1

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
            for i, c in zip(idx.tolist(), cnt.tolist()):
                if 0 <= i < len(syms):
                    self.trades_by_symbol[syms[i]] += c
            self._trade_pos = count
        for dq in (self._proc_recent, self._wire_recent):
            while dq and now - dq[0][0] > self.window:
                dq.popleft()

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


# ---------------------------------------------------------------------------- plain text
def plain_line(m: Monitor) -> str:
    """One status line (no colour, ASCII only)."""
    st = m.stats
    eng = st.get("engine", {})
    fps, bps, _ = m.rates()
    p50, p99, p999, _mx = m.proc_window()
    w50, w99, _, _ = m.wire_window()
    rej = sum(m.rejects().values())
    parts = [
        f"[{m.elapsed:7.1f}s]",
        f"{fps:,.0f} msg/s",
        f"{fmt_bytes(bps)}/s",
        f"frames {fmt_count(eng.get('frames', 0))}",
        f"rejects {rej}",
        f"reconnects {st.get('reconnects', 0)}",
        f"| proc p50 {fmt_ns(p50)} p99 {fmt_ns(p99)} p99.9 {fmt_ns(p999)}",
        f"| trade->recv p50 {fmt_ns(w50)} p99 {fmt_ns(w99)}",
    ]
    sym = m.selected_symbol
    book = m.books().get(sym)
    if book is not None and (book.n_bids or book.n_asks):
        parts.append(f"| {sym} {fmt_num(book.best_bid)} / {fmt_num(book.best_ask)}"
                     + ("" if book.live else " STALE"))
    drifted = (st.get("drift") or {}).get("drifted", 0)
    if drifted:
        parts.append(f"| drift {drifted}")
    if not st.get("connected", True):
        parts.append("| DISCONNECTED")
    return "  ".join(parts)


def top_of_book_lines(books: dict[str, Any], symbols: Sequence[str] | None = None, limit: int = 20,
                      trades: dict[str, int] | None = None, indent: str = "  ") -> list[str]:
    """``SYMBOL  bid x size | ask x size  spread  levels`` per symbol (sorted)."""
    first = [s for s in (symbols or ()) if s in books]
    names = first + sorted(s for s in books if s not in first)
    rows: list[tuple[str, ...]] = []
    for s in names[:limit]:
        b = books[s]
        if b.n_bids:
            bid = f"{fmt_num(b.best_bid)} x {fmt_num(float(b.bids[0, 1]))}"
        else:
            bid = "-"
        if b.n_asks:
            ask = f"{fmt_num(b.best_ask)} x {fmt_num(float(b.asks[0, 1]))}"
        else:
            ask = "-"
        if b.n_bids and b.n_asks:
            dec = _decimals([b.best_bid, b.best_ask])
            spread = f"spread {b.best_ask - b.best_bid:.{dec}f}"
        else:
            spread = ""
        extra = f"{b.n_bids}/{b.n_asks} levels"
        if trades is not None:
            extra += f", {fmt_count(trades.get(s, 0))} trades"
        rows.append((s, bid, ask, spread, extra))
    if not rows:
        return [indent + "(no books)"]
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    out = [f"{indent}{r[0]:<{w[0]}}  {r[1]:>{w[1]}} | {r[2]:<{w[2]}}  {r[3]:<{w[3]}}  {r[4]}".rstrip()
           for r in rows]
    if len(names) > limit:
        out.append(f"{indent}... and {len(names) - limit} more")
    return out


def _kv(d: dict[str, int]) -> str:
    return "  ".join(f"{k} {fmt_count(v)}" for k, v in d.items()) if d else "none"


def summary_lines(m: Monitor, *, interrupted: bool = False, note: str = "") -> list[str]:
    """The end-of-run summary (plain text, fits one screen)."""
    st = m.stats
    eng = st.get("engine", {})
    el = m.elapsed
    frames = eng.get("frames", 0)
    out = [f"{m.title}: {el:.1f} s against {m.url}" + (" (interrupted)" if interrupted else "")]
    if note:
        out.append(f"  {note}")
    out.append(f"messages  {fmt_count(frames)} frames ({fmt_count(frames / el if el > 0 else 0)}/s), "
               f"{fmt_bytes(eng.get('bytes_in', 0))} in, {fmt_bytes(eng.get('bytes_inflated', 0))} inflated")
    out.append(f"  by method  {_kv(m.messages())}")
    out.append(f"  rejects    {_kv(m.rejects())}")
    p = m.proc
    out.append(f"processing per data frame (inflate + parse + apply, recv -> done), {fmt_count(p.n)} frames:")
    out.append(f"  mean {fmt_ns(p.mean)}  p50 {fmt_ns(p.percentile(50))}  p99 {fmt_ns(p.percentile(99))}  "
               f"p99.9 {fmt_ns(p.percentile(99.9))}  max {fmt_ns(p.max if p.n else math.nan)}")
    w = m.wire
    if w.n or w.nonpositive:
        skew = f", {w.nonpositive} negative (clock skew)" if w.nonpositive else ""
        hist = f", {fmt_count(m.history_trades)} sent on subscribe left out" if m.history_trades else ""
        out.append(f"trade time -> recv (exchange clock vs local clock), {fmt_count(w.n + w.nonpositive)} "
                   f"live trades{skew}{hist}:")
        out.append(f"  p50 {fmt_ns(w.percentile(50))}  p99 {fmt_ns(w.percentile(99))}  "
                   f"p99.9 {fmt_ns(w.percentile(99.9))}  max {fmt_ns(w.max if w.n else math.nan)}")
    reason = safe_text(st.get("last_disconnect_reason") or "-", 300)
    out.append(f"connection  connects {st.get('connects', 0)}  reconnects {st.get('reconnects', 0)}  "
               f"bad frames {st.get('bad_frames', 0)}  last disconnect: {reason}")
    drift = st.get("drift") or {}
    if drift.get("checks"):
        by = drift.get("by_symbol") or {}
        out.append(f"book drift  {drift.get('drifted', 0)} of {drift['checks']} snapshots disagreed with the live book"
                   + (f"  ({_kv(by)})" if by else ""))
    bad_pushes = st.get("bad_pushes") or {}
    if bad_pushes or st.get("callback_errors") or st.get("supervisor_errors"):
        out.append(f"  rejected push records  {_kv(bad_pushes)}  callback errors {st.get('callback_errors', 0)}  "
                   f"supervisor errors {st.get('supervisor_errors', 0)}"
                   + (f" (last: {safe_text(st['last_error'], 200)})" if st.get("last_error") else ""))
    if m.order_count or m.balance_count:
        out.append(f"private  {m.order_count} order updates, {m.balance_count} balance updates")
    out.append("top of book at the end:")
    out.extend(top_of_book_lines(m.books(), m.symbols, trades=dict(m.trades_by_symbol)))
    return out


# ---------------------------------------------------------------------------- rich view
KEYS_HELP = "keys: 1-9 / <- -> / n p select book   + - levels   q quit   (Ctrl-C also stops)"

Cell = tuple[str, str]  # (text, rich style)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], right: Sequence[bool]) -> list[list[Cell]]:
    """Fixed-width columns as lists of styled cells (one list per line, header first).
    Built by hand: rich's Table measures every cell twice, ~50x slower, and the view is
    redrawn on the event loop that also processes the frames."""
    n = len(headers)
    widths = [len(h) for h in headers]
    for r in rows:
        for i, (t, _) in enumerate(r):
            widths[i] = max(widths[i], len(t))

    def fit(i: int, t: str) -> str:
        return t.rjust(widths[i]) if right[i] else t.ljust(widths[i])

    out = [[(fit(i, headers[i]), "bold") for i in range(n)]]
    out += [[(fit(i, t), style) for i, (t, style) in enumerate(r)] for r in rows]
    return out


def _block_width(block: list[list[Cell]]) -> int:
    return max((sum(len(t) for t, _ in line) + 2 * (len(line) - 1) for line in block), default=0)


def _emit(text: Any, blocks: Sequence[list[list[Cell]]], gap: int = 4) -> None:
    """Append blocks side by side (each a list of lines of cells) to a rich Text."""
    widths = [_block_width(b) for b in blocks]
    height = max((len(b) for b in blocks), default=0)
    for y in range(height):
        for j, b in enumerate(blocks):
            used = 0
            if y < len(b):
                for k, (t, style) in enumerate(b[y]):
                    if k:
                        text.append("  ")
                        used += 2
                    text.append(t, style=style or None)
                    used += len(t)
            if j < len(blocks) - 1:
                text.append(" " * (widths[j] - used + gap))
        text.append("\n")


def render(m: Monitor) -> Any:
    """The rich live view of ``m`` (a renderable)."""
    from rich.panel import Panel
    from rich.text import Text

    st = m.stats
    eng = st.get("engine", {})
    fps, bps, ibps = m.rates()
    p50, p99, p999, pmax = m.proc_window()
    w50, w99, w999, wmax = m.wire_window()
    connected = st.get("connected", False)
    rej = sum(m.rejects().values())
    mu = "µs"
    feed = m.feed

    t = Text(no_wrap=True, overflow="crop")
    t.append(f" {m.title} ", style="bold reverse")
    t.append(f"  {m.url}  ")
    t.append("connected" if connected else "DISCONNECTED", style="green" if connected else "bold red")
    t.append(f"  {_duration(m.elapsed)}\n")
    t.append(f"{fps:,.0f} msg/s", style="bold")
    t.append(f"   in {fmt_bytes(bps)}/s ({fmt_bytes(ibps)}/s inflated)   frames {fmt_count(eng.get('frames', 0))}\n")
    t.append(f"rejects {rej}", style="bold red" if rej else None)
    t.append(f"   reconnects {st.get('reconnects', 0)}", style="bold yellow" if st.get("reconnects") else None)
    drifted = (st.get("drift") or {}).get("drifted", 0)
    t.append(f"   drift {drifted}", style="bold yellow" if drifted else None)
    if st.get("stale_books"):
        t.append(f"   stale books {st['stale_books']}", style="bold yellow")
    t.append(f"   trades {fmt_count(m.trades_seen)}   tickers {len(feed.latest_tickers) if feed is not None else 0}\n\n")
    lat = _table(["last 2 s", "p50", "p99", "p99.9", "max"], [
        [("inflate+parse+apply / frame", ""), (fmt_ns(p50, mu), ""), (fmt_ns(p99, mu), ""), (fmt_ns(p999, mu), ""),
         (fmt_ns(pmax, mu), "")],
        [("trade time -> recv", ""), (fmt_ns(w50, mu), ""), (fmt_ns(w99, mu), ""), (fmt_ns(w999, mu), ""),
         (fmt_ns(wmax, mu), "")],
    ], [False, True, True, True, True])
    lat[0][0] = (lat[0][0][0], "dim")
    _emit(t, [lat])
    t.append("\n")

    # book | last trades
    sym = m.selected_symbol
    book = m.books().get(sym)
    n = m.depth
    rows: list[list[Cell]] = []
    if book is not None:
        bids = np.array(book.bids[:n])
        asks = np.array(book.asks[:n])
        pd_ = _decimals(np.concatenate([bids[:, 0], asks[:, 0]]).tolist())
        ad = _decimals(np.concatenate([bids[:, 1], asks[:, 1]]).tolist())
        for i in range(max(len(bids), len(asks))):
            row: list[Cell] = []
            row += ([(fmt_num(bids[i, 1], ad), ""), (fmt_num(bids[i, 0], pd_), "green")] if i < len(bids)
                    else [("", ""), ("", "")])
            row += ([(fmt_num(asks[i, 0], pd_), "red"), (fmt_num(asks[i, 1], ad), "")] if i < len(asks)
                    else [("", ""), ("", "")])
            rows.append(row)
        title = f"{sym} book  v{book.version}  {book.n_bids}x{book.n_asks} levels"
        title += "  live" if book.live else (
            f"  STALE since {_clock(book.stale_since)}" if book.stale_since else "  STALE (no snapshot yet)")
        if book.drifts:
            title += f"  drift {book.drifts}"
    else:
        title = f"{sym} book  (none yet)"
    bt = [[(title, "bold cyan")]] + _table(["bid size", "bid", "ask", "ask size"], rows, [True] * 4)

    trows: list[list[Cell]] = []
    if feed is not None and feed.trades.count:
        recs = np.array(feed.trades.latest(min(n, feed.trades.count)))[::-1]
        syms = feed.engine.symbols
        for r in recs:
            buy = r["side"] > 0
            si = int(r["symbol"])
            trows.append([(_clock(int(r["recv_ns"])), "dim"), (syms[si] if 0 <= si < len(syms) else "?", ""),
                          ("buy" if buy else "sell", "green" if buy else "red"),
                          (fmt_num(float(r["price"])), ""), (fmt_num(float(r["amount"])), "")])
    tt = [[("last trades", "bold cyan")]] + _table(["time", "symbol", "side", "price", "amount"], trows,
                                                     [False, False, False, True, True])
    _emit(t, [bt, tt])

    tickers = feed.latest_tickers if feed is not None else {}
    if tickers:
        names = [s for s in m.symbols if s in tickers] + sorted(set(tickers) - set(m.symbols))
        krows: list[list[Cell]] = []
        for s in names[:10]:
            tk = tickers[s]
            chg = (tk.last - tk.open_24h) / tk.open_24h * 100 if tk.open_24h else math.nan
            if s == sym:
                mark = ">"
            elif s in m.symbols and m.symbols.index(s) < 9:
                mark = str(m.symbols.index(s) + 1)
            else:
                mark = ""
            krows.append([(mark, "bold"), (s, "bold" if s == sym else ""), (fmt_num(tk.last), ""),
                          (fmt_num(tk.best_bid), "green"), (fmt_num(tk.best_ask), "red"),
                          (f"{chg:+.2f}%" if chg == chg else "-", "green" if chg >= 0 else "red"),
                          (fmt_num(tk.base_volume_24h), "")])
        t.append("\n")
        _emit(t, [[[("tickers", "bold cyan")]] + _table(["", "symbol", "last", "bid", "ask", "24h", "24h volume"],
                                                           krows, [False, False, True, True, True, True, True])])

    if m.order_count or m.balance_count:
        orows = [[(_clock(o.recv_ns), "dim"), (safe_text(o.symbol, 32), ""),
                  (safe_text(o.side, 12), "green" if o.side == "buy" else "red"),
                  (str(o.status), ""), (fmt_num(o.price), ""), (fmt_num(o.amount), ""), (fmt_num(o.filled), "")]
                 for o in reversed(m.orders)]
        ot = [[(f"orders ({m.order_count} updates)", "bold cyan")]] + _table(
            ["time", "symbol", "side", "status", "price", "amount", "filled"], orows,
            [False, False, False, True, True, True, True])
        brows = [[(safe_text(c, 32), ""), (safe_text(m.balances[c].raw[0], 24), ""),
                  (safe_text(m.balances[c].raw[2], 24), ""), (safe_text(m.balances[c].raw[1], 24), "")]
                 for c in sorted(m.balances)[:8]]
        btab = [[(f"balances ({m.balance_count} updates)", "bold cyan")]] + _table(
            ["currency", "free", "used", "total"], brows, [False, True, True, True])
        t.append("\n")
        _emit(t, [ot, btab])

    if m.events:
        t.append("\n")
        for e in list(m.events)[-3:]:
            t.append(f"{_clock(e.time_ns)} {safe_text(e.kind, 40)}"
                     + (f": {safe_text(e.reason, 300)}" if e.reason else "") + "\n", style="dim")
    t.append("\n" + KEYS_HELP, style="dim")
    return Panel(t, expand=False, border_style="blue")
