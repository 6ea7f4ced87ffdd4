"""The DigiFinex ``LiveMarketDataClient``: fastfeed's per-frame changes as nautilus data.

fastfeed owns the connection (picows, heartbeats, reconnects with resubscription), inflates
and parses every frame in compiled code, keeps the books and de-duplicates trades. The
client only listens to the feed's per-frame hook (``Feed(on_frame=...)``,
docs/integration.md) and turns each frame's event rows into nautilus objects:

* a depth frame -> one :class:`OrderBookDeltas` (``CLEAR`` + ``ADD`` rows with
  ``F_SNAPSHOT`` for a ``clean=true`` snapshot, ``UPDATE`` / ``DELETE`` for an increment,
  ``F_LAST`` on the last delta; ``sequence`` = fastfeed's frame id). The rows say what the
  engine *did* (trimming and crossing removals included), so nautilus's book equals
  ``feed.book(symbol)`` level by level;
* a new connection (fastfeed's ``reset``: the books were emptied) -> a ``CLEAR`` per book,
  then the server's snapshot -> ``CLEAR`` + snapshot. A gap in the event rows (never in
  normal operation: the hook is synchronous) or rows already overwritten -> ``CLEAR`` +
  the engine's current book (``feed.resync()``), counted in ``stats["resyncs"]``;
* a trades frame -> one :class:`TradeTick` per stored trade (fastfeed drops the
  duplicates a resubscription replays, so each trade arrives once);
* a ticker frame -> one :class:`QuoteTick` per ticker record (best bid / ask and sizes).

Precision: nautilus rounds every price and size to its instrument's precision without a
word. Here each value is converted by :class:`PrecisionGuard`, which refuses a value that
has digits beyond the precision (or is out of nautilus's range, negative, NaN): counted in
``stats["rejects"]`` by reason and logged (the first of each reason per instrument, then
every 1000th). Nothing is rounded: a level whose price does not fit cannot be represented
and is left out; a level whose size does not fit is withdrawn from nautilus's book (a
``DELETE``: no older size stays standing); such a trade or quote is left out. So every
level nautilus holds is exactly one of ``feed.book(symbol)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.data.messages import (
    RequestInstrument,
    RequestInstruments,
    SubscribeInstrument,
    SubscribeInstruments,
    SubscribeOrderBook,
    SubscribeQuoteTicks,
    SubscribeTradeTicks,
    UnsubscribeInstrument,
    UnsubscribeInstruments,
    UnsubscribeOrderBook,
    UnsubscribeQuoteTicks,
    UnsubscribeTradeTicks,
)
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, QuoteTick, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, BookType, OrderSide, RecordFlag
from nautilus_trader.model.identifiers import ClientId, InstrumentId, TradeId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import FIXED_PRECISION, PRICE_MAX, QUANTITY_MAX

from ... import events as E
from ...client import ConnectionEvent, Feed, FeedOptions
from ...errors import EventsOverwritten
from ...layout import TICKER_DTYPE
from ...sinks import FrameChange
from .config import DIGIFINEX, DIGIFINEX_VENUE, DigiFinexDataClientConfig
from .providers import DigiFinexInstrumentProvider, _pair_name

__all__ = ["DigiFinexDataClient", "PrecisionGuard"]

# a double parsed from a decimal with at most `precision` decimals, times 10**precision, is
# within 2 ulp of that integer (two correctly rounded operations); 8e-16 is ~3.6 ulp
_REL_TOL = 8e-16

_KIND = E.KIND_MASK
_CLEAR = E.DEPTH_CLEAR_EVENT
_SNAPSHOT = E.DEPTH_SNAPSHOT_EVENT
_TRADE = E.TRADE_EVENT
_BUY = E.BUY_EVENT
_SELL = E.SELL_EVENT

_ADD = BookAction.ADD
_UPDATE = BookAction.UPDATE
_DELETE = BookAction.DELETE
_BOOK_CLEAR = BookAction.CLEAR
_OBUY = OrderSide.BUY
_OSELL = OrderSide.SELL
_NO_SIDE = OrderSide.NO_ORDER_SIDE
_F_LAST = int(RecordFlag.F_LAST)
_F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)
_BUYER = AggressorSide.BUYER
_SELLER = AggressorSide.SELLER
_NO_AGGRESSOR = AggressorSide.NO_AGGRESSOR

_delta = OrderBookDelta.from_raw
_trade = TradeTick.from_raw
_quote = QuoteTick.from_raw

_TK = {name: i for i, name in enumerate(TICKER_DTYPE.names or ())}
_TK_SYMBOL, _TK_TS = _TK["symbol"], _TK["timestamp"]
_TK_BID, _TK_BID_SIZE = _TK["best_bid"], _TK["best_bid_size"]
_TK_ASK, _TK_ASK_SIZE = _TK["best_ask"], _TK["best_ask_size"]

_LOG_EVERY = 1000
_CACHE_MAX = 1 << 14


class PrecisionGuard:
    """Exact conversion of fastfeed's float64 values to nautilus raw fixed-point integers at
    one precision: ``raw(x)`` is ``round(x * 10**precision) * 10**(FIXED_PRECISION -
    precision)`` when ``x`` has no digits beyond ``precision`` decimals (judged to within
    ~3.6 ulp of the double, i.e. every value parsed from such a decimal passes and every
    value with a further non-zero digit inside the double's 15-16 significant digits fails)
    and lies in ``0 .. max_value``; otherwise ``-1`` (the caller counts the rejection).
    ``precision`` is 0..FIXED_PRECISION."""

    __slots__ = ("limit", "max_value", "mult", "precision", "scale")

    def __init__(self, precision: int, max_value: float) -> None:
        if not 0 <= precision <= FIXED_PRECISION:
            raise ValueError(f"precision must be in 0..{FIXED_PRECISION}, not {precision}")
        self.precision = precision
        self.max_value = max_value
        self.scale = float(10**precision)
        self.mult: int = 10 ** int(FIXED_PRECISION - precision)
        self.limit = float(max_value) * self.scale

    def raw(self, x: float) -> int:
        y = x * self.scale
        if not 0.0 <= y <= self.limit:  # also NaN
            return -1
        n = int(y + 0.5)
        d = y - n
        if d > y * _REL_TOL or -d > y * _REL_TOL:
            return -1
        return n * self.mult


class _Target:
    """What nautilus wants of one venue symbol, and how to convert its values."""

    __slots__ = ("book", "iid", "pcache", "pp", "price", "quotes", "size", "sp", "symbol", "trades")

    def __init__(self, symbol: str, instrument: Instrument) -> None:
        self.symbol = symbol
        self.iid: InstrumentId = instrument.id
        self.pp: int = instrument.price_precision
        self.sp: int = instrument.size_precision
        self.price = PrecisionGuard(self.pp, float(PRICE_MAX))
        self.size = PrecisionGuard(self.sp, float(QUANTITY_MAX))
        #: price -> raw (or -1): book levels and trade prices repeat (sizes seldom do), and
        #: the exact conversion is the costliest Python step per value; bounded (emptied
        #: when full)
        self.pcache: dict[float, int] = {}
        self.book = False
        self.trades = False
        self.quotes = False

    def price_raw(self, x: float) -> int:
        raw = self.price.raw(x)
        cache = self.pcache
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[x] = raw
        return raw


class DigiFinexDataClient(LiveMarketDataClient):
    """Market data of DigiFinex spot through fastfeed (see the module docstring).

    ``connect()`` starts a :class:`fastfeed.Feed` on ``config.url`` (first connection within
    ``config.connect_timeout``; later drops are fastfeed's reconnects, which replay the
    subscriptions; nautilus sees a ``CLEAR`` and the new snapshot). Subscriptions made
    before the connection are sent once it is up. ``stats``: what was delivered and
    refused. ``feed``: the running feed (its books, trades, stats), None while disconnected.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        instrument_provider: DigiFinexInstrumentProvider,
        config: DigiFinexDataClientConfig,
        name: str | None = None,
    ) -> None:
        super().__init__(
            loop=loop,
            client_id=ClientId(name or DIGIFINEX),
            venue=DIGIFINEX_VENUE,
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            instrument_provider=instrument_provider,
            config=config,
        )
        self._config = config
        self._provider = instrument_provider
        self.feed: Feed | None = None
        self._targets: dict[str, _Target] = {}  # venue symbol -> target (any subscription)
        self._books: dict[str, _Target] = {}  # venue symbol -> target, order book subscribed
        self._trade_targets: dict[str, _Target] = {}
        self._quote_targets: dict[str, _Target] = {}
        self._tk_cache: list[_Target | None] = []  # by the engine's ticker symbol index
        self._expect = -1  # event-log row the next change starts at (-1: any)
        self._tk_seen = 0  # ticker history records already handled
        self.deltas = 0
        self.trades = 0
        self.quotes = 0
        self.resyncs = 0
        self.gaps = 0
        self.errors = 0
        self.refused = 0
        self.rejects: dict[str, int] = {}
        self._reject_log: dict[tuple[str, str], int] = {}

    # -- statistics --------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """``deltas`` (OrderBookDeltas batches), ``trades``, ``quotes`` delivered;
        ``resyncs`` (CLEAR + snapshot from fastfeed's book after a gap or overwrite),
        ``gaps``, ``errors`` (exceptions on the frame path: each followed by a resync),
        ``refused`` (subscriptions refused: another venue, a symbol not ``BASE_QUOTE``, or
        no precisions known; each logged with what to do),
        ``rejects`` (reason -> count: ``price_precision`` / ``size_precision``, values
        left out; ``trades_lost`` / ``quotes_lost``, records overwritten before they were
        read, which only a single frame larger than the event log or ticker history can
        cause)."""
        return {
            "deltas": self.deltas,
            "trades": self.trades,
            "quotes": self.quotes,
            "resyncs": self.resyncs,
            "gaps": self.gaps,
            "errors": self.errors,
            "refused": self.refused,
            "rejects": dict(self.rejects),
        }

    def _reject(self, reason: str, t: _Target, value: float, what: str) -> None:
        n = self.rejects[reason] = self.rejects.get(reason, 0) + 1
        key = (reason, t.symbol)
        seen = self._reject_log[key] = self._reject_log.get(key, 0) + 1
        if seen == 1 or seen % _LOG_EVERY == 0:
            self._log.error(
                f"{t.iid}: {what} {value!r} does not fit the instrument's precision "
                f"(price {t.pp}, size {t.sp}) or range: left out, not rounded "
                f"({reason}: {n} so far)"
            )

    # -- connection ----------------------------------------------------------------------------

    async def _connect(self) -> None:
        await self._provider.initialize()
        for inst in self._provider.get_all().values():
            self._handle_data(inst)
        for cur in self._provider.currencies().values():
            self._cache.add_currency(cur)
        cfg = self._config
        opts = FeedOptions(**(cfg.feed_options or {}))
        opts.event_log = max(opts.event_log, cfg.event_log)
        if "connect_timeout" not in (cfg.feed_options or {}):
            opts.connect_timeout = cfg.connect_timeout
        feed = Feed(cfg.url, options=opts, on_frame=self._on_frame, on_event=self._on_event)
        self._expect = -1
        self._tk_seen = feed.engine.ticker_history.count
        self._tk_cache = []
        await feed.start()
        self.feed = feed
        for channel, targets in (
            ("depth", self._books),
            ("trades", self._trade_targets),
            ("ticker", self._quote_targets),
        ):
            if targets:  # subscribed before the connection
                await getattr(feed, f"subscribe_{channel}")(list(targets))

    async def _disconnect(self) -> None:
        feed, self.feed = self.feed, None
        if feed is not None:
            await feed.close()

    def _on_event(self, event: ConnectionEvent) -> None:
        if event.kind in ("connected", "resubscribed") or (
            event.kind == "disconnected" and self.feed is None  # our own close (_disconnect)
        ):
            self._log.info(f"fastfeed: {event.kind} {event.reason}".rstrip())
        else:
            self._log.warning(f"fastfeed: {event.kind} {event.reason}".rstrip())

    # -- the per-frame hook --------------------------------------------------------------------

    def _on_frame(self, change: FrameChange) -> None:
        """fastfeed's per-frame hook (synchronous, on the frame path; never raises)."""
        kind = change.kind
        try:
            if change.seq != self._expect and self._expect >= 0:
                # rows were never seen: rebuild every book from the engine (which already
                # holds this frame) and go on
                self.gaps += 1
                self._expect = change.end
                self._resync(list(self._books.values()))
                if kind == "depth" or kind == "reset":
                    return
            self._expect = change.end
            if kind == "depth":
                t = self._books.get(change.symbol or "")
                if t is not None:
                    try:
                        rows = change.rows().tolist()
                    except EventsOverwritten:
                        self._resync([t])
                        return
                    self._emit_book(t, rows, self._clock.timestamp_ns())
            elif kind == "trades":
                t = self._trade_targets.get(change.symbol or "")
                if t is not None:
                    try:
                        rows = change.rows().tolist()
                    except EventsOverwritten:
                        self.rejects["trades_lost"] = self.rejects.get("trades_lost", 0) + change.n_rows
                        return
                    self._emit_trades(t, rows, self._clock.timestamp_ns())
            elif kind == "ticker" or kind == "all_ticker":
                self._on_tickers()
            elif kind == "reset":
                try:
                    rows = change.rows().tolist()
                except EventsOverwritten:
                    self._resync(list(self._books.values()))
                    return
                self._emit_rows(rows)
        except Exception as exc:  # never break fastfeed's frame path; rebuild instead
            self.errors += 1
            self._log.exception(f"fastfeed frame {change!r}", exc)
            try:
                self._resync(list(self._books.values()))
            except Exception as exc2:
                self._log.exception("resync after an error", exc2)

    def _emit_book(self, t: _Target, rows: list[tuple[Any, ...]], ts_init: int) -> None:
        """One OrderBookDeltas for ``rows`` (one book's event rows of one frame, as tuples)."""
        if not rows:
            return
        iid, pp, sp = t.iid, t.pp, t.sp
        pcache = t.pcache
        sg = t.size
        sscale, smult, slimit = sg.scale, sg.mult, sg.limit
        seq = int(rows[0][7])  # the frame id: every row of a frame carries it
        last_i = len(rows) - 1
        deltas = []
        snap = 0
        for i, (ev, _exch_ts, local_ts, px, qty, _oid, _ival, _fval) in enumerate(rows):
            k = ev & _KIND
            flags = snap | _F_LAST if i == last_i else snap
            if k == _CLEAR:
                snap = _F_SNAPSHOT
                flags |= _F_SNAPSHOT
                deltas.append(
                    _delta(iid, _BOOK_CLEAR, _NO_SIDE, 0, pp, 0, sp, 0, flags, seq, local_ts, ts_init)
                )
                continue
            if k == _TRADE:
                continue
            p = pcache.get(px)
            if p is None:
                p = t.price_raw(px)
            if p < 0:
                self._reject("price_precision", t, px, "price")
                continue
            if qty == 0.0:
                action, q = _DELETE, 0
            else:
                y = qty * sscale  # PrecisionGuard.raw, inlined (the costliest step per level)
                n = int(y + 0.5) if 0.0 < y <= slimit else 0
                dd = y - n
                if n <= 0 or dd > y * _REL_TOL or -dd > y * _REL_TOL:
                    # the level's size cannot be said exactly: withdraw the level (never
                    # leave an older size standing, never round)
                    self._reject("size_precision", t, qty, "size")
                    action, q = _DELETE, 0
                else:
                    q = n * smult
                    action = _ADD if k == _SNAPSHOT else _UPDATE
            side = _OBUY if ev & _BUY else _OSELL
            deltas.append(_delta(iid, action, side, p, pp, q, sp, 0, flags, seq, local_ts, ts_init))
        if not deltas:
            return
        d = deltas[-1]
        if not d.flags & _F_LAST:  # the frame's last row was refused: mark the one before
            o = d.order
            deltas[-1] = _delta(
                iid,
                d.action,
                o.side,
                o.price.raw,
                pp,
                o.size.raw,
                sp,
                0,
                d.flags | _F_LAST,
                seq,
                d.ts_event,
                ts_init,
            )
        self.deltas += 1
        self._handle_data(OrderBookDeltas(iid, deltas))

    def _emit_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Rows of several books (a reset, a resync): one OrderBookDeltas per book."""
        by_ival: dict[int, list[tuple[Any, ...]]] = {}
        for r in rows:
            by_ival.setdefault(r[6], []).append(r)
        feed = self.feed
        if feed is None:
            return
        names = feed.engine.symbols
        ts_init = self._clock.timestamp_ns()
        for ival, part in by_ival.items():
            t = self._books.get(names[ival]) if 0 <= ival < len(names) else None
            if t is not None:
                self._emit_book(t, part, ts_init)

    def _resync(self, targets: Iterable[_Target]) -> None:
        """CLEAR + the engine's current levels for the books of ``targets``."""
        feed = self.feed
        if feed is None:
            return
        have = feed.engine.books
        names = [t.symbol for t in targets if t.symbol in have]
        if not names:
            return
        rows, _seq = feed.resync(names)
        self.resyncs += 1
        self._emit_rows(rows.tolist())

    def _emit_trades(self, t: _Target, rows: list[tuple[Any, ...]], ts_init: int) -> None:
        iid, pp, sp = t.iid, t.pp, t.sp
        pcache = t.pcache
        size = t.size.raw
        handle = self._handle_data
        for ev, exch_ts, _local_ts, px, qty, oid, _ival, _fval in rows:
            if ev & _KIND != _TRADE:
                continue
            p = pcache.get(px)
            if p is None:
                p = t.price_raw(px)
            if p < 0:
                self._reject("price_precision", t, px, "trade price")
                continue
            q = size(qty)
            if q <= 0:
                self._reject("size_precision", t, qty, "trade size")
                continue
            side = _BUYER if ev & _BUY else (_SELLER if ev & _SELL else _NO_AGGRESSOR)
            handle(_trade(iid, p, pp, q, sp, side, TradeId(str(oid)), exch_ts, ts_init))
            self.trades += 1

    def _on_tickers(self) -> None:
        feed = self.feed
        if feed is None:
            return
        eng = feed.engine
        hist = eng.ticker_history
        count = hist.count
        first, self._tk_seen = self._tk_seen, count
        if not self._quote_targets or count <= first:
            return
        if count - first > hist.capacity:  # more records in one frame than the history holds
            self.rejects["quotes_lost"] = self.rejects.get("quotes_lost", 0) + count - first - hist.capacity
            first = count - hist.capacity
        cache = self._tk_cache
        ts_init = self._clock.timestamp_ns()
        handle = self._handle_data
        for r in hist.since(first).tolist():
            idx = r[_TK_SYMBOL]
            if idx >= len(cache):
                names = eng.ticker_symbols
                cache.extend(self._quote_targets.get(n) for n in names[len(cache) :])
                if idx >= len(cache):
                    continue
            t = cache[idx]
            if t is None:
                continue
            price, size = t.price_raw, t.size.raw
            bp, ap = price(r[_TK_BID]), price(r[_TK_ASK])
            if bp < 0 or ap < 0:
                self._reject("price_precision", t, r[_TK_BID] if bp < 0 else r[_TK_ASK], "quote price")
                continue
            bs, as_ = size(r[_TK_BID_SIZE]), size(r[_TK_ASK_SIZE])
            if bs < 0 or as_ < 0:
                self._reject(
                    "size_precision", t, r[_TK_BID_SIZE] if bs < 0 else r[_TK_ASK_SIZE], "quote size"
                )
                continue
            ts = r[_TK_TS] * 1_000_000
            handle(_quote(t.iid, bp, ap, t.pp, t.pp, bs, as_, t.sp, t.sp, ts, ts_init))
            self.quotes += 1

    # -- subscriptions -------------------------------------------------------------------------

    def _target(self, instrument_id: InstrumentId) -> _Target | None:
        if instrument_id.venue != DIGIFINEX_VENUE:
            self.refused += 1
            self._log.error(f"{instrument_id}: not a {DIGIFINEX} instrument")
            return None
        symbol = instrument_id.symbol.value.upper()
        t = self._targets.get(symbol)
        if t is None:
            inst = self._provider.for_symbol(symbol)
            if inst is None:
                self.refused += 1
                try:
                    _pair_name(symbol)
                except ValueError as exc:  # BTC-USDT, BTC/USDT, BTCUSDT...
                    self._log.error(f"{instrument_id}: {exc}: instruments are e.g. BTC_USDT.{DIGIFINEX}")
                    return None
                self._log.error(
                    f"{instrument_id}: no instrument (precisions unknown): add it to "
                    f"DigiFinexDataClientConfig.instruments as {{{symbol!r}: (price_precision, size_precision)}}"
                )
                return None
            t = self._targets[symbol] = _Target(symbol, inst)
        return t

    def _subs_changed(self) -> None:
        self._tk_cache = []  # rebuilt on the next ticker frame

    async def _send(self, method: str, symbol: str) -> None:
        feed = self.feed
        if feed is not None:
            await getattr(feed, method)([symbol])

    async def _subscribe_order_book_deltas(self, command: SubscribeOrderBook) -> None:
        if command.book_type == BookType.L3_MBO:
            self._log.error(f"{command.instrument_id}: DigiFinex publishes L2 books only (no L3_MBO)")
            return
        t = self._target(command.instrument_id)
        if t is None:
            return
        t.book = True
        self._books[t.symbol] = t
        self._resync([t])  # a book fastfeed already holds: nautilus starts from it
        await self._send("subscribe_depth", t.symbol)

    async def _unsubscribe_order_book_deltas(self, command: UnsubscribeOrderBook) -> None:
        t = self._books.pop(command.instrument_id.symbol.value.upper(), None)
        if t is not None:
            t.book = False
            await self._send("unsubscribe_depth", t.symbol)

    async def _subscribe_trade_ticks(self, command: SubscribeTradeTicks) -> None:
        t = self._target(command.instrument_id)
        if t is None:
            return
        t.trades = True
        self._trade_targets[t.symbol] = t
        await self._send("subscribe_trades", t.symbol)

    async def _unsubscribe_trade_ticks(self, command: UnsubscribeTradeTicks) -> None:
        t = self._trade_targets.pop(command.instrument_id.symbol.value.upper(), None)
        if t is not None:
            t.trades = False
            await self._send("unsubscribe_trades", t.symbol)

    async def _subscribe_quote_ticks(self, command: SubscribeQuoteTicks) -> None:
        t = self._target(command.instrument_id)
        if t is None:
            return
        t.quotes = True
        self._quote_targets[t.symbol] = t
        self._subs_changed()
        await self._send("subscribe_ticker", t.symbol)

    async def _unsubscribe_quote_ticks(self, command: UnsubscribeQuoteTicks) -> None:
        t = self._quote_targets.pop(command.instrument_id.symbol.value.upper(), None)
        if t is not None:
            t.quotes = False
            self._subs_changed()
            await self._send("unsubscribe_ticker", t.symbol)

    # instruments are static (DigiFinexInstrumentProvider): nothing to stream
    async def _subscribe_instruments(self, command: SubscribeInstruments) -> None:
        pass

    async def _subscribe_instrument(self, command: SubscribeInstrument) -> None:
        pass

    async def _unsubscribe_instruments(self, command: UnsubscribeInstruments) -> None:
        pass

    async def _unsubscribe_instrument(self, command: UnsubscribeInstrument) -> None:
        pass

    async def _request_instrument(self, request: RequestInstrument) -> None:
        inst = self._provider.find(request.instrument_id)
        if inst is None:
            self._log.error(f"{request.instrument_id}: no such instrument")
            return
        self._handle_instrument(inst, request.id, request.start, request.end, request.params)

    async def _request_instruments(self, request: RequestInstruments) -> None:
        insts = [i for i in self._provider.get_all().values() if i.venue == request.venue]
        self._handle_instruments(request.venue, insts, request.id, request.start, request.end, request.params)
