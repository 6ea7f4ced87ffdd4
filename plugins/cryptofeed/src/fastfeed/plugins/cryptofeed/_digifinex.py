"""The DigiFinex cryptofeed exchange on fastfeed (see the package docstring).

How a frame reaches a cryptofeed callback::

    picows -> fastfeed engine (inflate, parse, book, event log, ticker history)
      -> Feed.on_frame (sync, on the frame path): FastfeedConnection._on_frame queues
         (FrameChange, ticker range) and wakes the reader -- nothing else per frame
      -> cryptofeed ConnectionHandler: ``async for batch in conn.read()`` (every queued
         change at once) -> DigiFinex.message_handler(batch)
      -> per change: its event rows (depth deltas / snapshots, trades) or ticker records
         -> cryptofeed OrderBook / Trade / Ticker -> book_callback / callback -> yours

Books: fastfeed's event rows say exactly what the engine did to its book (every set
level with its new amount, every removed level with amount 0, a snapshot as a clear row
then its levels), so applying them in order keeps cryptofeed's ``OrderBook`` equal to
``feed.book(symbol)`` level by level. A frame with a clear row is a snapshot for cryptofeed
(``delta=None``); other frames are deltas. A new connection (fastfeed reconnected) logs a
clear row per book: the books are emptied silently, as cryptofeed's own exchanges do on
reconnect, and the server's next snapshot fills them. When the reader fell behind (the
queue dropped changes, or the event log overwrote their rows) the missing rows are read from
the event log; if it no longer holds them, every book is rebuilt from ``feed.resync()`` and
delivered as a snapshot, and the trades still in the log are delivered (``stats``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, ClassVar

import fastfeed
from cryptofeed.connection import AsyncConnection, WebsocketEndpoint
from cryptofeed.defines import ASK, BID, BUY, L2_BOOK, SELL, TICKER, TRADES
from cryptofeed.feed import Feed
from cryptofeed.symbols import Symbol, Symbols
from cryptofeed.types import COMPILED_WITH_ASSERTIONS, OrderBook, Ticker, Trade
from fastfeed.client import FeedOptions, _check_url
from fastfeed.errors import EventsOverwritten
from fastfeed.events import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    EVENT_DTYPE,
    KIND_MASK,
    TRADE_EVENT,
)
from fastfeed.layout import TICKER_DTYPE
from fastfeed.protocol import DIGIFINEX_URL, is_valid_symbol

__all__ = ["DIGIFINEX", "DigiFinex", "FastfeedConnection", "exchange_symbol", "std_symbol"]

LOG = logging.getLogger("fastfeed.plugins.cryptofeed")

#: cryptofeed's id of the exchange (``feed.id``, ``book.exchange``, ``trade.exchange``)
DIGIFINEX = "DIGIFINEX"

#: event log rows the plugin asks fastfeed to keep when ``FeedOptions.event_log`` is 0
DEFAULT_EVENT_LOG = 1 << 16

#: up to this many event rows are read as tuples (``rows.tolist()``), more column by column
_FEW_ROWS = 6
#: the field order ``_apply`` unpacks from ``rows.tolist()``
_EVENT_FIELDS = ("ev", "exch_ts", "local_ts", "px", "qty", "order_id", "ival", "fval")
if EVENT_DTYPE.names != _EVENT_FIELDS:  # pragma: no cover - a layout change must show here
    raise ImportError(f"fastfeed's EVENT_DTYPE changed: {EVENT_DTYPE.names}")

# field positions in TICKER_DTYPE rows as tuples (``records.tolist()``)
_T_TS, _T_BID, _T_ASK, _T_NAME, _T_SYM = (
    TICKER_DTYPE.names.index(n)  # type: ignore[union-attr]
    for n in ("timestamp", "best_bid", "best_ask", "name", "symbol")
)

#: Decimal prices remembered (book levels repeat: ~94% of the prices in a depth stream
#: were seen before; amounts much less, they are converted each time)
_DEC_CACHE_MAX = 1 << 16
_DEC_ZERO = Decimal(0)


def _split(symbol: str) -> tuple[str, str]:
    if not isinstance(symbol, str):
        raise TypeError(f"a symbol must be a str, not {type(symbol).__name__}")
    for sep in ("-", "_"):
        base, found, quote = symbol.partition(sep)
        if found and base and quote and sep not in quote:
            return base.upper(), quote.upper()
    raise ValueError(f"invalid DigiFinex spot symbol {symbol!r}: expected BASE-QUOTE or BASE_QUOTE")


def exchange_symbol(symbol: str) -> str:
    """DigiFinex's name of a symbol: ``BTC-USDT`` (cryptofeed) or ``btc_usdt`` -> ``BTC_USDT``."""
    name = "_".join(_split(symbol))
    if not is_valid_symbol(name):
        raise ValueError(f"invalid DigiFinex spot symbol {symbol!r}")
    return name


def std_symbol(symbol: str) -> str:
    """cryptofeed's name of a symbol: ``BTC_USDT`` (DigiFinex) or ``btc-usdt`` -> ``BTC-USDT``."""
    base, quote = _split(symbol)
    exchange_symbol(symbol)  # the same checks
    return Symbol(base, quote).normalized


def _std_or_same(name: str) -> str:
    """cryptofeed's name of an engine symbol, or the name itself if it has no BASE_QUOTE form."""
    try:
        return std_symbol(name)
    except ValueError:
        return name


class FastfeedConnection(AsyncConnection):
    """cryptofeed's ``AsyncConnection`` over a :class:`fastfeed.Feed`.

    ``_open`` starts the fastfeed feed (connect with retries up to ``connect_timeout``);
    from then on fastfeed keeps the connection: heartbeat, watchdog, reconnect with backoff,
    resubscription. cryptofeed sees one connection that stays open until it closes it.
    ``read()`` yields lists of ``(FrameChange, ticker_end)``: every change the per-frame
    hook queued since the last read (``ticker_end``: for a ticker change, the ticker
    history's count after its frame) (at most ``queue_size``; past that the oldest
    is dropped and counted in ``dropped``: the exchange notices the gap in the event rows).
    ``feed`` is the live :class:`fastfeed.Feed` while open (``feed.book(symbol)``...).
    """

    def __init__(
        self,
        address: str,
        conn_id: str,
        *,
        options: FeedOptions,
        sinks: Iterable[object] = (),
        subscription: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(f"{conn_id}.ws.{AsyncConnection.conn_count}", subscription=subscription)
        self.address = address
        self.options = options
        self.sinks = tuple(sinks)
        self.feed: fastfeed.Feed | None = None
        self.dropped = 0
        self._q: collections.deque[tuple[Any, int]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._tk_start = 0
        self._closing = False

    @property
    def is_open(self) -> bool:
        return self.feed is not None and not self.feed.closed and not self._closing

    async def _open(self) -> None:
        if self.is_open:
            LOG.warning("%s: already open", self.id)
            return
        self._closing = False
        self._q.clear()
        feed = fastfeed.Feed(self.address, options=self.options, on_frame=self._on_frame, sinks=self.sinks)
        self._tk_start = feed.engine.ticker_history.count
        self.feed = self.conn = feed  # type: ignore[assignment]
        try:
            await feed.start()  # ConnectFailed is a ConnectionError: cryptofeed's handler sees it
        except BaseException:
            self.feed = self.conn = None
            raise
        self._reset_counters()

    def _on_frame(self, change: Any) -> None:
        """fastfeed's per-frame hook (synchronous, on the frame path): queue and wake."""
        kind = change.kind
        if kind == "ticker" or kind == "all_ticker":
            tk_end = self.feed.engine.ticker_history.count  # type: ignore[union-attr]
        else:
            tk_end = 0
        q = self._q
        if len(q) >= self.options.queue_size:
            q.popleft()
            self.dropped += 1
        q.append((change, tk_end))
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def read(self) -> AsyncIterator[Any]:  # type: ignore[override]
        loop = asyncio.get_running_loop()
        while True:
            q = self._q
            if q:
                batch = list(q)
                q.clear()
                self.received += len(batch)
                self.last_message = batch[-1][0].recv_ns / 1e9
                yield batch
                continue
            if not self.is_open:
                return
            w = self._waiter = loop.create_future()
            try:
                await w
            finally:
                self._waiter = None

    async def write(self, msg: str) -> None:
        raise NotImplementedError(
            f"{self.id}: requests go through the fastfeed feed (conn.feed.subscribe_depth(...), "
            "conn.feed.request(...))"
        )

    async def close(self) -> None:
        self._closing = True
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
        feed, self.feed, self.conn = self.feed, None, None
        if feed is not None:
            await feed.close()
            LOG.info("%s: closed the fastfeed connection", self.id)
        if self.raw_data_callback is not None:
            await self.raw_data_callback.on_close(self)


class DigiFinex(Feed):  # type: ignore[misc]
    """DigiFinex spot market data (``L2_BOOK``, ``TRADES``, ``TICKER``) for cryptofeed,
    received and kept by fastfeed.

    Arguments beyond cryptofeed's ``Feed`` ones (``symbols``, ``channels`` or
    ``subscription``, ``callbacks``, ``max_depth``, ``config``...):

    ``url``: the WebSocket endpoint (``ws://`` or ``wss://``; default DigiFinex's).
    ``numeric``: ``Decimal`` (cryptofeed's convention, the default: each value is
    ``Decimal(repr(float))``, i.e. the shortest decimal of fastfeed's float64) or ``float``
    (faster; cryptofeed's types accept it only when built without assertions, checked
    here). ``instruments``: DigiFinex symbols (``BTC_USDT``) or cryptofeed ones
    (``BTC-USDT``) to accept besides ``symbols``; there is no REST symbol request:
    DigiFinex spot symbols map by rule, ``BASE-QUOTE`` <-> ``BASE_QUOTE``. ``options``: a
    :class:`fastfeed.FeedOptions` (``event_log`` 0, the default, becomes 65536 rows: the
    plugin reads book deltas and trades from the event log; a reader that falls further
    behind resyncs its books). ``sinks``: fastfeed sinks for the same
    feed (e.g. ``CaptureSink`` to record it; cryptofeed's pcap ``record=`` sees nothing).

    One reconnect layer: fastfeed reconnects and resubscribes; cryptofeed's watchdog is off
    (``timeout=-1``) and ``retries`` defaults to 0 (a feed whose first connection fails,
    after fastfeed's own retries within ``options.connect_timeout``, fails cryptofeed's
    handler). Private channels: cryptofeed 3.0 has no authenticated channel types, so
    there are none here (use :class:`fastfeed.Feed` with keys for orders and balances).

    ``fastfeed`` is the live :class:`fastfeed.Feed` while running; ``stats`` counts
    ``resyncs`` (books rebuilt from ``feed.resync()``), ``gap_fills`` (rows read back from
    the event log after the queue dropped changes), ``lost_rows`` (event rows overwritten
    before they were read: trades among them are lost), ``lost_tickers`` (ticker
    records the ticker history overwrote before they were read) and ``callback_errors``
    (exceptions raised by a callback; see :meth:`message_handler`: with the default
    ``retries=0`` the first one stops the feed, pass ``retries=-1`` to restart the
    connection after each one instead).
    """

    id = DIGIFINEX
    websocket_endpoints: ClassVar[list[WebsocketEndpoint]] = [WebsocketEndpoint(DIGIFINEX_URL)]
    rest_endpoints: ClassVar[list[Any]] = []
    #: cryptofeed channel -> fastfeed channel (fastfeed.channels; ``subscribe_<name>``)
    websocket_channels: ClassVar[dict[str, str]] = {L2_BOOK: "depth", TRADES: "trades", TICKER: "ticker"}
    request_limit = 10

    #: every DigiFinex symbol any instance was given (the static instrument list)
    _known: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        *,
        url: str = DIGIFINEX_URL,
        numeric: type = Decimal,
        instruments: Iterable[str] = (),
        options: FeedOptions | None = None,
        sinks: Iterable[object] = (),
        symbols: Iterable[Any] | None = None,
        subscription: dict[str, Iterable[Any]] | None = None,
        timeout: float = -1,
        retries: int = 0,
        **kwargs: Any,
    ) -> None:
        if numeric is not Decimal and numeric is not float:
            raise ValueError(f"numeric must be Decimal or float, not {numeric!r}")
        if numeric is float and COMPILED_WITH_ASSERTIONS:
            raise ValueError(
                "numeric=float: this cryptofeed build asserts Decimal values in Trade and Ticker "
                "(compiled with assertions); use numeric=Decimal"
            )
        for what, value in (("instruments", instruments), ("symbols", symbols)):
            if isinstance(value, (str, bytes)):
                raise TypeError(f"{what} must be a list of symbols, not a single {type(value).__name__}")
        opts = FeedOptions() if options is None else options
        if not isinstance(opts, FeedOptions):
            raise TypeError(f"options must be a fastfeed.FeedOptions, not {type(opts).__name__}")
        if opts.event_log <= 0:  # the plugin reads book deltas and trades from the event log
            opts = replace(opts, event_log=DEFAULT_EVENT_LOG)
        _check_url(url)  # TypeError / ValueError now, not at connect time
        self.url = url
        self.options = opts
        self.sinks = tuple(sinks)
        self.numeric = numeric
        std_syms = [self._std(s) for s in symbols] if symbols is not None else None
        std_sub = (
            {ch: [self._std(s) for s in syms] for ch, syms in subscription.items()}
            if subscription is not None
            else None
        )
        names = list(instruments) + list(std_syms or ())
        for syms in (std_sub or {}).values():
            names += syms
        for name in names:
            DigiFinex._known[std_symbol(name)] = exchange_symbol(name)
        self._register_symbols()
        super().__init__(symbols=std_syms, subscription=std_sub, timeout=timeout, retries=retries, **kwargs)
        self.stats: dict[str, int] = {
            "resyncs": 0,
            "gap_fills": 0,
            "lost_rows": 0,
            "lost_tickers": 0,
            "callback_errors": 0,
        }
        self._conn: FastfeedConnection | None = None
        self._std_by_ival: list[str] = []
        self._prices: dict[float, Decimal] = {}
        self._reset_state(0)

    @staticmethod
    def _std(symbol: Any) -> str:
        return std_symbol(symbol.normalized if isinstance(symbol, Symbol) else symbol)

    # -- symbols: a static list, no REST ---------------------------------------------------

    @classmethod
    def _register_symbols(cls) -> None:
        """Merge the known symbols into cryptofeed's process-wide table (``Symbols``)."""
        if Symbols.populated(cls.id):
            mapping, info = Symbols.get(cls.id)
            mapping.update(cls._known)
            info.setdefault("instrument_type", {}).update(dict.fromkeys(cls._known, "spot"))
        else:
            Symbols.set(cls.id, dict(cls._known), {"instrument_type": dict.fromkeys(cls._known, "spot")})

    @classmethod
    async def load_symbols(
        cls, conn: Any = None, refresh: bool = False, cache_ttl: float | None = None
    ) -> Any:
        """The static instrument list (every symbol a DigiFinex feed was given): no REST."""
        cls._register_symbols()
        return Symbols.get(cls.id)[0]

    @classmethod
    def symbol_mapping(cls, refresh: bool = False) -> Any:
        cls._register_symbols()
        return Symbols.get(cls.id)[0]

    async def _setup(self) -> None:
        self._register_symbols()  # also after a test cleared cryptofeed's symbol cache
        self.normalized_symbol_mapping = None
        await super()._setup()

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> list[tuple[AsyncConnection, Any, Any]]:
        """One fastfeed connection for the whole subscription (fastfeed chunks requests
        to the server's 30-symbol limit)."""
        if not any(self.subscription.values()):
            return []
        conn = FastfeedConnection(
            self.url, self.id, options=self.options, sinks=self.sinks, subscription=dict(self.subscription)
        )
        return [(conn, self.subscribe, self.message_handler)]

    @property
    def fastfeed(self) -> fastfeed.Feed | None:
        """The live :class:`fastfeed.Feed` (None when not connected)."""
        return self._conn.feed if self._conn is not None else None

    @property
    def address(self) -> str:
        return self.url

    def _reset_state(self, ev_next: int) -> None:
        self._l2_book = {}
        self._ev_next = ev_next  # the next event row this consumer expects
        self._tk_next = 0  # the next ticker history record it expects
        self._dropped_seen = 0

    async def subscribe(self, conn: AsyncConnection) -> None:
        """Called by cryptofeed's handler once per (fastfeed) connection: subscribe through
        fastfeed, which replays the subscriptions itself after every reconnect."""
        if not isinstance(conn, FastfeedConnection) or conn.feed is None:
            raise TypeError(f"{self.id}: subscribe needs an open FastfeedConnection, not {conn!r}")
        self._conn = conn
        feed = conn.feed
        ring = feed.engine.events
        self._reset_state(ring.count if ring is not None else 0)
        self._tk_next = conn._tk_start
        self._dropped_seen = 0
        self._std_by_ival = []
        for chan, syms in self.subscription.items():
            if syms:
                await getattr(feed, f"subscribe_{chan}")(syms)

    async def shutdown(self) -> Any:
        released = await super().shutdown()
        self._conn = None
        return released

    # -- the data path ---------------------------------------------------------------------

    def _symbol_of(self, ival: int) -> str:
        names = self._std_by_ival
        if ival >= len(names):
            mapping = self.exchange_symbol_mapping or {}
            feed = self.fastfeed
            eng_names = feed.engine.symbols if feed is not None else []
            names[len(names) :] = [mapping.get(n) or _std_or_same(n) for n in eng_names[len(names) :]]
            if ival >= len(names):
                raise IndexError(f"fastfeed symbol index {ival} unknown")
        return names[ival]

    async def message_handler(self, msg: Any, conn: AsyncConnection, timestamp: float) -> None:
        """A batch from :meth:`FastfeedConnection.read`: the queued changes, in order.

        The event rows of consecutive depth / trades / reset changes are read from the event
        log in one call (the rows are contiguous there, also across changes the queue
        dropped), then handed out frame by frame; ticker changes in between are delivered
        in their place.

        An exception from a callback (yours or a backend's) is counted in
        ``stats["callback_errors"]`` and re-raised to cryptofeed's connection handler, which
        logs it and drops the rest of the batch: it restarts the connection (a new fastfeed
        feed, fresh snapshots) while ``retries`` allows, else the feed stops and
        ``FeedHandler.run`` raises ``ExhaustedRetries`` (``retries=0``, the default)."""
        try:
            await self._handle_batch(msg, conn, timestamp)
        except Exception:
            self.stats["callback_errors"] += 1
            raise

    async def _handle_batch(self, msg: Any, conn: AsyncConnection, timestamp: float) -> None:
        start = end = self._ev_next
        for change, tk_end in msg:
            kind = change.kind
            if kind == "ticker" or kind == "all_ticker":
                if end > start:
                    await self._rows(start, end)
                    start = end = self._ev_next
                if tk_end > self._tk_next:
                    await self._tickers(tk_end, change.recv_ns / 1e9)
            elif change.end > end:  # rows not handed out yet (depth, trades, reset)
                if change.seq != end:  # the queue dropped changes: their rows come along
                    self.stats["gap_fills"] += 1
                end = change.end
        if end > start:
            await self._rows(start, end)
        if isinstance(conn, FastfeedConnection) and conn.dropped != self._dropped_seen:
            # the queue dropped changes: their ticker records may have no later change to
            # bring them; deliver every record stored so far (later changes skip them)
            self._dropped_seen = conn.dropped
            feed = conn.feed
            if feed is not None and feed.engine.ticker_history.count > self._tk_next:
                await self._tickers(feed.engine.ticker_history.count, timestamp)

    async def _rows(self, start: int, end: int) -> None:
        """Hand out the event rows ``start..end``; if the event log overwrote some, rebuild
        every book from ``feed.resync()`` instead."""
        feed = self.fastfeed
        ring = feed.engine.events if feed is not None else None
        if ring is None:
            return
        try:
            if end == ring.count:  # the newest rows (the usual case): no extra slice
                rows = ring.latest(end - start)
            else:
                rows = ring.since(start)[: end - start]
        except EventsOverwritten:
            await self._resync()
            return
        self._ev_next = end
        await self._apply(rows)

    async def _resync(self) -> None:
        feed = self.fastfeed
        assert feed is not None and feed.engine.events is not None
        ring = feed.engine.events
        first = ring.count - ring.capacity
        self.stats["resyncs"] += 1
        self.stats["lost_rows"] += max(0, first - self._ev_next)
        # the trades still held (books come from the snapshot rows below)
        held = ring.since(max(first, self._ev_next))
        trades = held[(held["ev"] & KIND_MASK) == TRADE_EVENT]  # a copy: safe across awaits
        rows, seq = feed.resync()
        self._ev_next = seq
        LOG.warning(
            "%s: fell more than the event log (%d rows) behind: every book resynced",
            self.id,
            ring.capacity,
        )
        await self._apply(trades)
        self._l2_book = {}
        await self._apply(rows)

    async def _apply(self, rows: Any) -> None:
        """Apply event rows (``EVENT_DTYPE``) in order: each run of depth rows of one frame
        and symbol is one book callback (a snapshot if it holds a clear row), each trade row
        one trade callback; the receipt time is the frame's (the rows' ``local_ts``).

        ``rows`` may be a view of the event ring: its columns are copied into lists here,
        before the first callback (while one awaits, the engine may log over the view)."""
        if len(rows) <= _FEW_ROWS:  # a tuple per row, transposed: cheaper for a few rows
            if not len(rows):
                return
            evs, exch_ts, local_ts, pxs, qtys, oids, ivals, frames = zip(*rows.tolist())
        else:  # column by column (a structured array's tolist() costs ~10x per row)
            evs = rows["ev"].tolist()
            ivals = rows["ival"].tolist()
            frames = rows["fval"].tolist()
            pxs = rows["px"].tolist()
            qtys = rows["qty"].tolist()
            local_ts = rows["local_ts"].tolist()
            exch_ts = rows["exch_ts"].tolist()  # trade rows only; cheaper than looking for them
            oids = rows["order_id"].tolist()
        await self._deliver(evs, ivals, frames, pxs, qtys, local_ts, exch_ts, oids)

    async def _deliver(
        self,
        evs: Sequence[int],
        ivals: Sequence[int],
        frames: Sequence[float],
        pxs: Sequence[float],
        qtys: Sequence[float],
        local_ts: Sequence[int],
        exch_ts: Sequence[int],
        oids: Sequence[int],
    ) -> None:
        """:meth:`_apply` on the rows' columns (lists)."""
        n = len(evs)
        i = 0
        dec = self.numeric is Decimal
        prices = self._prices
        names = self._std_by_ival
        books = self._l2_book
        to_dec = Decimal
        while i < n:
            ev = evs[i]
            ival = ivals[i]
            symbol = names[ival] if 0 <= ival < len(names) else self._symbol_of(ival)
            receipt = local_ts[i] / 1e9
            if ev & KIND_MASK == TRADE_EVENT:
                px, qty = pxs[i], qtys[i]
                if dec:
                    px, qty = to_dec(repr(px)), to_dec(repr(qty))
                t = Trade(
                    self.id,
                    symbol,
                    BUY if ev & BUY_EVENT else SELL,
                    qty,
                    px,
                    exch_ts[i] / 1e9,
                    id=str(oids[i]),
                )
                i += 1
                await self.callback(TRADES, t, receipt)
                continue
            # a run of depth rows of one frame and one symbol: one callback
            frame = frames[i]
            book = books.get(symbol)
            if book is None:
                book = books[symbol] = OrderBook(self.id, symbol, max_depth=self.max_depth)
            bids, asks = book.book.bids, book.book.asks
            snapshot = False
            d_bid: list[tuple[Any, Any]] = []
            d_ask: list[tuple[Any, Any]] = []
            while i < n:
                if frames[i] != frame or ivals[i] != ival:
                    break
                ev = evs[i]
                kind = ev & KIND_MASK
                if kind == TRADE_EVENT:
                    break
                px, qty = pxs[i], qtys[i]
                i += 1
                if kind == DEPTH_CLEAR_EVENT:
                    book = books[symbol] = OrderBook(self.id, symbol, max_depth=self.max_depth)
                    bids, asks = book.book.bids, book.book.asks
                    snapshot = True
                    d_bid.clear()
                    d_ask.clear()
                    continue
                if dec:  # Decimal(repr(x)); prices repeat (book levels): each converted once
                    p = prices.get(px)
                    if p is None:
                        if len(prices) >= _DEC_CACHE_MAX:
                            prices.clear()
                        p = prices[px] = to_dec(repr(px))
                    px = p
                    qty = to_dec(repr(qty)) if qty else _DEC_ZERO
                if ev & BUY_EVENT:
                    side, delta = bids, d_bid
                else:
                    side, delta = asks, d_ask
                if qty:
                    side[px] = qty
                    delta.append((px, qty))
                elif px in side:
                    del side[px]
                    delta.append((px, qty))
            if snapshot:
                if len(bids) or len(asks):
                    await self.book_callback(L2_BOOK, book, receipt, delta=None)
                # else: emptied by a new connection (fastfeed reconnected): the server's
                # snapshot follows
            elif d_bid or d_ask:
                await self.book_callback(L2_BOOK, book, receipt, delta={BID: d_bid, ASK: d_ask})

    async def _tickers(self, end: int, receipt: float) -> None:
        """Deliver the ticker records from the next expected one up to ``end``."""
        feed = self.fastfeed
        if feed is None:
            return
        hist = feed.engine.ticker_history
        start = self._tk_next
        first_held = hist.count - hist.capacity
        if start < first_held:  # overwritten before they were read
            self.stats["lost_tickers"] += first_held - start
            start = first_held
        self._tk_next = end
        if start >= end:
            return
        records = hist.since(start)[: end - start].tolist()
        names = feed.engine.ticker_symbols
        mapping = self.exchange_symbol_mapping or {}
        dec = self.numeric is Decimal
        for r in records:
            idx = r[_T_SYM]
            name = names[idx] if 0 <= idx < len(names) else r[_T_NAME].rstrip(b"\0").decode("ascii")
            symbol = mapping.get(name)
            if symbol is None:  # e.g. an all_ticker record of a symbol not subscribed
                continue
            bid, ask = r[_T_BID], r[_T_ASK]
            if dec:
                bid, ask = Decimal(repr(bid)), Decimal(repr(ask))
            ts = r[_T_TS]
            t = Ticker(self.id, symbol, bid, ask, ts / 1000.0 if ts else None)
            await self.callback(TICKER, t, receipt)
