"""Public market simulation: per-symbol random-walk mid, a consistent book, trades that walk
the book, tickers computed from that state.

Prices and amounts are integers internally (ticks and lots), formatted to decimal strings
only on the way out, so the book a client rebuilds from the pushes is *exactly* the
exchange's book: every delta is derived from a real change of the book, the book is never
crossed at the end of an event, and it holds ``book_levels`` levels per side (keep that
below the client's depth so nothing is trimmed). :meth:`Market.book` returns the state
after everything generated so far, as float64 arrays equal to ``float(str)`` of the sent
strings.

The generator is deterministic for a given ``seed``, start time and sequence of calls (the
start time only sets the first trade id, see :func:`first_trade_id`).
"""

from __future__ import annotations

import math
import random
import time
import zlib
from collections import deque
from typing import Any, NamedTuple

import numpy as np
import orjson

from .config import ExchangeConfig, SymbolSpec

__all__ = [
    "CHANNELS",
    "CH_DEPTH",
    "CH_TICKER",
    "CH_TRADES",
    "N_CHANNELS",
    "TRADE_IDS_PER_MS",
    "Frame",
    "Market",
    "TickerState",
    "first_trade_id",
]

CH_DEPTH = 0
CH_TRADES = 1
CH_TICKER = 2
N_CHANNELS = 3
#: Public per-symbol channels in index order.
CHANNELS = ("depth", "trades", "ticker")

#: One generated push: (routing key = channel * nsym + symbol index, clean flag, JSON bytes).
Frame = tuple[int, bool, bytes]

#: Trade ids reserved per millisecond of start time (see :func:`first_trade_id`).
TRADE_IDS_PER_MS = 1000


def first_trade_id(seed: int, start_time: float) -> int:
    """The first trade id of a market started at ``start_time`` (Unix seconds) with ``seed``:
    ``start_ms * TRADE_IDS_PER_MS + crc32(seed) % TRADE_IDS_PER_MS``.

    Ids then only increase (by one per trade), so a later start on the same seed begins
    above every id the earlier run served as long as that run served fewer than
    ``TRADE_IDS_PER_MS`` ids per millisecond (a million a second) on average, far beyond
    what the exchange can produce. The values (about 1.7e15 today) stay below 2**53 until
    the year 2255, so they are exact as int64 and as double."""
    start_ms = int(start_time * 1000)
    return start_ms * TRADE_IDS_PER_MS + zlib.crc32(str(seed).encode()) % TRADE_IDS_PER_MS


class TickerState(NamedTuple):
    """The integer state behind one ticker (ticks, lots, lots*ticks), see ``Market.ticker``."""

    idx: int
    open_t: int
    low_t: int
    high_t: int
    last_t: int
    last_lots: int
    base_lots: int
    quote_units: int
    bid_t: int
    bid_lots: int
    ask_t: int
    ask_lots: int


_P_DEPTH = 0.62
_P_TRADE = 0.30  # + _P_DEPTH; the rest are ticker pushes
_TRADE_COUNTS = (1, 1, 1, 1, 2, 2, 3)


def _fmt(value: int, decimals: int, out_decimals: int | None) -> str:
    """Integer ``value`` scaled by ``10**-decimals`` as an exact decimal string.
    ``out_decimals=None``: minimal form (``"0.1"``, ``"5"``); otherwise that many decimals."""
    if decimals == 0:
        if out_decimals:
            return f"{value}." + "0" * out_decimals
        return str(value)
    div = _POW10[decimals]
    q, r = divmod(value, div)
    frac = str(r + div)[1:]  # zero-padded to `decimals` digits
    if out_decimals is None:
        frac = frac.rstrip("0")
        return f"{q}.{frac}" if frac else str(q)
    if out_decimals > decimals:
        frac += "0" * (out_decimals - decimals)
    return f"{q}.{frac}"


_POW10 = [10**i for i in range(40)]


class _Symbol:
    """State of one simulated symbol."""

    __slots__ = (
        "_acache",
        "_amount_out",
        "_pcache",
        "_price_out",
        "ad",
        "adiv",
        "asks",
        "base_lots",
        "bids",
        "gap",
        "gap2",
        "high_t",
        "idx",
        "last_lots",
        "last_t",
        "log_lo",
        "log_span",
        "lot_hi",
        "lot_lo",
        "low_t",
        "mid",
        "name",
        "open_t",
        "pd",
        "pdiv",
        "quote_units",
        "recent",
        "sigma",
        "spec",
        "window",
    )

    def __init__(self, spec: SymbolSpec, idx: int, cfg: ExchangeConfig) -> None:
        self.spec = spec
        self.idx = idx
        self.name = spec.name
        self.pd = spec.price_decimals
        self.ad = spec.amount_decimals
        self.pdiv = 10**self.pd
        self.adiv = 10**self.ad
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.mid = max(spec.price * self.pdiv, 10.0)
        self.gap = max(1, round(spec.price * 2e-5 * self.pdiv))
        self.sigma = 0.6 * self.gap
        self.lot_lo = max(1, int(200.0 / spec.price * self.adiv))
        self.lot_hi = max(self.lot_lo + 1, int(20000.0 / spec.price * self.adiv))
        self.log_lo = math.log(self.lot_lo)
        self.log_span = math.log(self.lot_hi) - self.log_lo
        self.gap2 = 2 * self.gap
        self.window = int(cfg.book_levels * 1.5 * self.gap) + 2
        self.recent: deque[dict[str, Any]] = deque(maxlen=max(cfg.trade_replay, 0))
        self.open_t = self.low_t = self.high_t = self.last_t = int(self.mid)
        self.base_lots = 0
        self.quote_units = 0
        self.last_lots = 0
        self._pcache: dict[int, str] = {}
        self._acache: dict[int, str] = {}
        padded = cfg.number_style == "padded"
        self._price_out: int | None = max(8, self.pd) if padded else self.pd
        self._amount_out: int | None = max(8, self.ad) if padded else None

    def pstr(self, ticks: int) -> str:
        s = self._pcache.get(ticks)
        if s is None:
            if len(self._pcache) > 200_000:
                self._pcache.clear()
            s = self._pcache[ticks] = _fmt(ticks, self.pd, self._price_out)
        return s

    def astr(self, lots: int) -> str:
        s = self._acache.get(lots)
        if s is None:
            if len(self._acache) > 200_000:
                self._acache.clear()
            s = self._acache[lots] = _fmt(lots, self.ad, self._amount_out)
        return s

    def price(self, ticks: int) -> float:
        return float(ticks / self.pdiv)

    def on_trade(self, ticks: int, lots: int) -> None:
        self.last_t = ticks
        self.last_lots = lots
        self.low_t = min(self.low_t, ticks)
        self.high_t = max(self.high_t, ticks)
        self.base_lots += lots
        self.quote_units += ticks * lots


class Market:
    """The public market of the local exchange (all configured symbols)."""

    def __init__(
        self, config: ExchangeConfig, seed: int | None = None, start_time: float | None = None
    ) -> None:
        self.config = config
        if seed is None:
            seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**32)
        self.seed = seed
        #: Unix time the market started (sets the first trade id).
        self.start_time = time.time() if start_time is None else float(start_time)
        self.rng = random.Random(seed)
        self._random = self.rng.random
        self.levels = config.book_levels
        self.symbols: tuple[str, ...] = tuple(config.symbols)
        self.nsym = len(self.symbols)
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.symbols)}
        self._s = [_Symbol(spec, i, config) for i, spec in enumerate(config.specs())]
        #: The id of the first trade: ``config.first_trade_id`` if set, else derived from the
        #: seed and the start time (:func:`first_trade_id`).
        self.first_trade_id = (
            config.first_trade_id
            if config.first_trade_id is not None
            else first_trade_id(seed, self.start_time)
        )
        self.next_trade_id = self.first_trade_id
        #: Fault switch: emit levels in random order instead of the live server's order.
        self.shuffle_levels = False
        #: Symbols whose ticker changed since the last ``take_dirty_tickers()``.
        self.dirty: set[int] = set()
        self.events = 0
        for s in self._s:
            self._init_book(s)

    # ------------------------------------------------------------------ lots, levels
    def _lots(self, s: _Symbol) -> int:
        return int(math.exp(s.log_lo + self._random() * s.log_span)) or 1

    def _below(self, n: int) -> int:
        """A uniform integer in ``0 .. n-1`` (cheaper than ``randrange``; n < 2**40)."""
        return int(self._random() * n)

    def _edges(self, s: _Symbol) -> tuple[int, int]:
        """(highest allowed bid tick, lowest allowed ask tick): bids < mid < asks."""
        return math.ceil(s.mid) - 1, math.floor(s.mid) + 1

    def _init_book(self, s: _Symbol) -> None:
        max_bid, min_ask = self._edges(s)
        self._refill(s, s.bids, {}, -1, max_bid)
        self._refill(s, s.asks, {}, 1, min_ask)

    def _edit(self, s: _Symbol, side: dict[int, int], ch: dict[int, int], sign: int, edge: int) -> None:
        rnd = self._random
        for _ in range(self._below(5)):
            r = rnd()
            n = len(side)
            if r < 0.30 and n > self.levels // 2:
                t = tuple(side)[self._below(n)]
                del side[t]
                ch[t] = 0
            elif r < 0.65 and n:
                t = tuple(side)[self._below(n)]
                side[t] = ch[t] = self._lots(s)
            else:
                t = edge + sign * self._below(3 * s.gap + 1)
                if t >= 1:
                    side[t] = ch[t] = self._lots(s)

    def _refill(self, s: _Symbol, side: dict[int, int], ch: dict[int, int], sign: int, edge: int) -> None:
        """Keep the side inside its price window (``edge`` .. ``edge ± window``), anchored
        at the mid (best level within two gaps of the edge) and ``levels`` deep."""
        levels = self.levels
        limit = edge + sign * s.window
        if side:
            if sign > 0:
                best, worst = min(side), max(side)
                if worst > limit:
                    for t in [t for t in side if t > limit]:
                        del side[t]
                        ch[t] = 0
            else:
                best, worst = max(side), min(side)
                if worst < limit:
                    for t in [t for t in side if t < limit]:
                        del side[t]
                        ch[t] = 0
            if (best - edge) * sign > s.gap2:
                t = edge + sign * self._below(s.gap + 1)
                if t >= 1:
                    side[t] = ch[t] = self._lots(s)
        n = len(side)
        if n > levels:
            ordered = sorted(side) if sign > 0 else sorted(side, reverse=True)
            for t in ordered[levels:]:
                del side[t]
                ch[t] = 0
        elif n < levels:
            span = s.window + 1
            for _ in range(4 * levels):
                t = edge + sign * self._below(span)
                if t >= 1 and t not in side:
                    side[t] = ch[t] = self._lots(s)
                    n += 1
                    if n >= levels:
                        break

    def _level_list(self, s: _Symbol, ch: dict[int, int], snapshot: bool) -> list[list[str]]:
        if self.shuffle_levels:
            items = list(ch.items())
            self.rng.shuffle(items)
            return [[s.pstr(t), s.astr(v)] for t, v in items]
        if snapshot:  # live snapshots list both sides in descending price order
            return [[s.pstr(t), s.astr(ch[t])] for t in sorted(ch, reverse=True)]
        # live increments: upserts first, then deletions, each group descending
        ups = sorted((t for t, v in ch.items() if v), reverse=True)
        dels = sorted((t for t, v in ch.items() if not v), reverse=True)
        zero = s.astr(0)
        return [[s.pstr(t), s.astr(ch[t])] for t in ups] + [[s.pstr(t), zero] for t in dels]

    def _depth_json(self, s: _Symbol, clean: bool, ca: dict[int, int], cb: dict[int, int]) -> bytes:
        levels: dict[str, Any] = {
            "asks": self._level_list(s, ca, clean),
            "bids": self._level_list(s, cb, clean),
        }
        return orjson.dumps({"method": "depth.update", "params": [clean, levels, s.name], "id": None})

    # ------------------------------------------------------------------ events
    def _depth_event(self, s: _Symbol, out: list[Frame]) -> None:
        rng = self.rng
        ca: dict[int, int] = {}
        cb: dict[int, int] = {}
        s.mid = max(s.mid + rng.gauss(0.0, s.sigma), 10.0)
        max_bid, min_ask = self._edges(s)
        # A client applies the asks of a push before its bids: a new ask at or below a bid
        # this push deletes would cross it for a moment (the engine removes the bid as
        # crossed, a naive client holds a crossed book mid-message). So asks stay above
        # every current bid; the spread closes on the next event.
        if s.bids:
            min_ask = max(min_ask, max(s.bids) + 1)
        if s.bids and max(s.bids) > max_bid:
            for t in [t for t in s.bids if t > max_bid]:
                del s.bids[t]
                cb[t] = 0
        if s.asks and min(s.asks) < min_ask:
            for t in [t for t in s.asks if t < min_ask]:
                del s.asks[t]
                ca[t] = 0
        self._edit(s, s.asks, ca, 1, min_ask)
        self._edit(s, s.bids, cb, -1, max_bid)
        self._refill(s, s.asks, ca, 1, min_ask)
        self._refill(s, s.bids, cb, -1, max_bid)
        if not ca and not cb:
            side, ch = (s.asks, ca) if (self._random() < 0.5 or not s.bids) else (s.bids, cb)
            t = tuple(side)[self._below(len(side))]
            side[t] = ch[t] = self._lots(s)
        out.append((CH_DEPTH * self.nsym + s.idx, False, self._depth_json(s, False, ca, cb)))

    def _trade_event(self, s: _Symbol, now: float, out: list[Frame]) -> None:
        buy = self._random() < 0.5
        side = s.asks if buy else s.bids
        if not side:
            self._depth_event(s, out)
            return
        ordered = sorted(side) if buy else sorted(side, reverse=True)
        ntr = min(len(ordered), _TRADE_COUNTS[self._below(len(_TRADE_COUNTS))])
        ch: dict[int, int] = {}
        trades: list[dict[str, Any]] = []
        ts: float | int = int(now) if self.config.integer_trade_time else round(now, 6)
        kind = "buy" if buy else "sell"
        for j in range(ntr):
            t = ordered[j]
            lots = side[t]
            take = lots if j < ntr - 1 else 1 + self._below(lots)
            rest = lots - take
            if rest:
                side[t] = ch[t] = rest
            else:
                del side[t]
                ch[t] = 0
            tid = self.next_trade_id
            self.next_trade_id = tid + 1
            trades.append({"id": tid, "time": ts, "price": s.pstr(t), "amount": s.astr(take), "type": kind})
            s.on_trade(t, take)
        max_bid, min_ask = self._edges(s)
        if buy:
            self._refill(s, s.asks, ch, 1, min_ask)
        else:
            self._refill(s, s.bids, ch, -1, max_bid)
        s.recent.extend(trades)
        trades.reverse()  # pushes carry the newest trade first
        out.append(
            (
                CH_TRADES * self.nsym + s.idx,
                False,
                orjson.dumps({"method": "trades.update", "params": [False, trades, s.name], "id": None}),
            )
        )
        ca, cb = (ch, {}) if buy else ({}, ch)
        out.append((CH_DEPTH * self.nsym + s.idx, False, self._depth_json(s, False, ca, cb)))

    def generate(self, n: int, now: float | None = None) -> list[Frame]:
        """Advance the market by events until at least ``n`` pushes were produced (a trade
        event yields a trades push and a depth push) and return them in order."""
        if now is None:
            now = time.time()
        out: list[Frame] = []
        syms = self._s
        nsym = self.nsym
        rnd = self._random
        while len(out) < n:
            s = syms[int(rnd() * nsym)]
            self.dirty.add(s.idx)
            r = rnd()
            if r < _P_DEPTH:
                self._depth_event(s, out)
            elif r < _P_DEPTH + _P_TRADE:
                self._trade_event(s, now, out)
            else:
                out.append((CH_TICKER * nsym + s.idx, False, self._ticker_push([s], now)))
            self.events += 1
        return out

    # ------------------------------------------------------------------ book state
    def book_state(self, i: int) -> tuple[float, dict[int, int], dict[int, int]]:
        """A copy of symbol ``i``'s state: ``(mid, asks, bids)`` with ``{ticks: lots}`` sides."""
        s = self._s[i]
        return s.mid, dict(s.asks), dict(s.bids)

    def restore_book(self, i: int, state: tuple[float, dict[int, int], dict[int, int]]) -> list[Frame]:
        """Put symbol ``i``'s book back to ``state`` (from :meth:`book_state`) and return the
        ``clean=false`` depth pushes that take a client's book there (none if nothing
        changed).

        One push per side, each listing its deletions first, then its upserts (descending;
        random order with ``shuffle_levels``). The side facing the move goes first (asks
        when the saved mid is at or above the current one, else bids): the book stays
        ``bids < mid < asks`` for either mid, so it is never crossed, not even inside a
        push applied level by level, no side is ever empty, and neither holds more than
        ``book_levels`` levels."""
        s = self._s[i]
        mid, asks, bids = state
        order = ((s.asks, asks, "asks"), (s.bids, bids, "bids"))
        if mid < s.mid:
            order = order[::-1]
        out: list[Frame] = []
        for cur, want, name in order:
            dels = sorted((t for t in cur if t not in want), reverse=True)
            ups = sorted((t for t, v in want.items() if cur.get(t) != v), reverse=True)
            cur.clear()
            cur.update(want)
            if not dels and not ups:
                continue
            zero = s.astr(0)
            levels = [[s.pstr(t), zero] for t in dels] + [[s.pstr(t), s.astr(want[t])] for t in ups]
            if self.shuffle_levels:
                self.rng.shuffle(levels)
            sides: dict[str, Any] = {"asks": [], "bids": []}
            sides[name] = levels
            payload = orjson.dumps({"method": "depth.update", "params": [False, sides, s.name], "id": None})
            out.append((CH_DEPTH * self.nsym + i, False, payload))
        s.mid = mid
        return out

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, i: int) -> Frame:
        """A ``clean=true`` depth push with the whole current book of symbol ``i``."""
        s = self._s[i]
        return (CH_DEPTH * self.nsym + i, True, self._depth_json(s, True, s.asks, s.bids))

    def trades_snapshot(self, i: int) -> Frame:
        """A ``clean=true`` trades push replaying the recent trades, newest first."""
        s = self._s[i]
        recent = list(s.recent)
        recent.reverse()
        payload = orjson.dumps({"method": "trades.update", "params": [True, recent, s.name], "id": None})
        return (CH_TRADES * self.nsym + i, True, payload)

    def ticker_state(self, i: int) -> TickerState:
        """The current :class:`TickerState` of symbol ``i``."""
        s = self._s[i]
        bb = max(s.bids) if s.bids else 0
        ba = min(s.asks) if s.asks else 0
        return TickerState(
            i,
            s.open_t,
            s.low_t,
            s.high_t,
            s.last_t,
            s.last_lots,
            s.base_lots,
            s.quote_units,
            bb,
            s.bids[bb] if bb else 0,
            ba,
            s.asks[ba] if ba else 0,
        )

    def ticker_from_state(self, st: TickerState, now: float) -> dict[str, Any]:
        """The ticker object of a :class:`TickerState` (all numeric fields but
        ``timestamp`` as strings). ``low_24h <= last, open_24h <= high_24h`` always."""
        s = self._s[st.idx]
        return {
            "symbol": s.name,
            "open_24h": s.pstr(st.open_t),
            "high_24h": s.pstr(st.high_t),
            "low_24h": s.pstr(st.low_t),
            "base_volume_24h": s.astr(st.base_lots),
            "quote_volume_24h": _fmt(st.quote_units, s.pd + s.ad, None),
            "last": s.pstr(st.last_t),
            "last_qty": s.astr(st.last_lots),
            "best_bid": s.pstr(st.bid_t) if st.bid_t else "0",
            "best_bid_size": s.astr(st.bid_lots) if st.bid_t else "0",
            "best_ask": s.pstr(st.ask_t) if st.ask_t else "0",
            "best_ask_size": s.astr(st.ask_lots) if st.ask_t else "0",
            "timestamp": int(now * 1000),
        }

    def ticker(self, i: int, now: float | None = None) -> dict[str, Any]:
        """The ticker object of symbol ``i`` (all numeric fields but ``timestamp`` as
        strings): 24 h open/high/low, volumes, last trade, best bid/ask of the book."""
        return self.ticker_from_state(self.ticker_state(i), time.time() if now is None else now)

    def tickers_payload(self, states: list[TickerState], now: float, method: str = "ticker.update") -> bytes:
        """A ``ticker.update`` (or ``all_ticker.update``) push of the given states."""
        tickers = [self.ticker_from_state(st, now) for st in states]
        params: list[Any] = [tickers] if self.config.ticker_nested else tickers
        return orjson.dumps({"method": method, "params": params, "id": None})

    def _ticker_push(self, syms: list[_Symbol], now: float, method: str = "ticker.update") -> bytes:
        return self.tickers_payload([self.ticker_state(s.idx) for s in syms], now, method)

    def ticker_frame(self, i: int, now: float | None = None) -> Frame:
        """A ``ticker.update`` push for symbol ``i``."""
        return (CH_TICKER * self.nsym + i, False, self._ticker_push([self._s[i]], now or time.time()))

    def all_ticker_payload(self, indices: list[int] | None = None, now: float | None = None) -> bytes:
        """An ``all_ticker.update`` push for the given symbols (default: all)."""
        syms = self._s if indices is None else [self._s[i] for i in indices]
        return self._ticker_push(syms, now or time.time(), "all_ticker.update")

    def take_dirty_tickers(self) -> list[int]:
        """Symbols whose ticker changed since the previous call, sorted."""
        out = sorted(self.dirty)
        self.dirty.clear()
        return out

    # ------------------------------------------------------------------ inspection
    def book(self, symbol: str) -> tuple[np.ndarray, np.ndarray]:
        """``(bids, asks)``: float64 ``(n, 2)`` arrays ``[price, amount]``, best first —
        the book a client holds after applying every push generated so far."""
        s = self._s[self.index[symbol.upper()]]
        bids = np.array(
            [(t / s.pdiv, s.bids[t] / s.adiv) for t in sorted(s.bids, reverse=True)], dtype=np.float64
        ).reshape(-1, 2)
        asks = np.array([(t / s.pdiv, s.asks[t] / s.adiv) for t in sorted(s.asks)], dtype=np.float64).reshape(
            -1, 2
        )
        return bids, asks

    def recent_trades(self, symbol: str) -> list[dict[str, Any]]:
        """The recent trades of ``symbol`` (what a ``clean=true`` replay sends), newest first."""
        recent = list(self._s[self.index[symbol.upper()]].recent)
        recent.reverse()
        return recent

    def mid_price(self, i: int) -> float:
        """Current mid price of symbol ``i``."""
        s = self._s[i]
        return float(s.mid / s.pdiv)

    def spec(self, i: int) -> SymbolSpec:
        """The :class:`SymbolSpec` of symbol ``i``."""
        return self._s[i].spec
