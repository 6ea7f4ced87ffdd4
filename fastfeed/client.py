"""The live client: ``fastfeed.connect(...)`` yields a :class:`Feed`.

One picows connection at a time feeds the :class:`~fastfeed.Engine` through the compiled
:class:`~fastfeed._listener.FeedListener`. The Feed adds what the network needs: request
ids and replies, auth, subscriptions (kept in a registry and replayed after every
reconnect), heartbeat, a no-data watchdog, proactive recycling before the server's ~2 h
limit, reconnects with capped exponential backoff and jitter, and bounded fan-out streams
of tickers and private pushes.

Nothing from the network can raise out of the frame path: a bad push is a counted
rejection (``stats["bad_pushes"]``), a bad reply a typed error to the request's caller.
The supervisor catches every exception of a connection attempt, reports it (an ``error``
event, ``stats["supervisor_errors"]``/``["last_error"]``) and retries, or fails ``start()``
at once when nothing was ever connected and retrying cannot help. Text from the network
is escaped (:func:`fastfeed.protocol.safe_text`) before it reaches a log line, an event
reason or an exception message.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import random
import ssl
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    TypedDict,
    TypeVar,
)
from urllib.parse import urlsplit

from picows import WSMsgType, ws_connect

from . import channels, protocol
from ._book import Book
from ._engine import Engine
from ._hook import FrameHook
from ._listener import FeedListener
from ._ring import TradeRing
from .errors import ConnectFailed, FastfeedError, FeedClosed, NotConnected, UnknownSymbol
from .protocol import (
    DIGIFINEX_URL,
    AuthError,
    BadReply,
    BalanceUpdate,
    ConnectionLost,
    OrderAlgoUpdate,
    OrderUpdate,
    RequestError,
    RequestTimeout,
    Ticker,
    safe_text,
)
from .sinks import KIND_NAMES, FrameChange, hooks, push_symbols

if sys.version_info >= (3, 11):
    from typing import Unpack
elif TYPE_CHECKING:
    from typing_extensions import Unpack
if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "DIGIFINEX_URL",
    "ConnectionEvent",
    "Feed",
    "FeedOptions",
    "FeedOptionsKwargs",
    "Stream",
    "TickerMap",
    "connect",
]

log = logging.getLogger("fastfeed.client")

T = TypeVar("T")
_ALL = "*"  # registry marker: subscribed to every symbol (empty list on the wire)

#: Seconds between two log lines about the same repeated problem (a raising callback, bad
#: pushes, rejected frames); the first occurrence is logged at once, later ones are counted
#: and summarised at most once per interval.
LOG_INTERVAL = 10.0

#: Error codes that say "not now" rather than "not this name" (200005: rate limit exceeded):
#: a resubscribe refused with one of them reconnects with backoff instead of dropping names.
TRANSIENT_CODES = frozenset({200005})

_CALLBACKS = ("on_event", "on_ticker", "on_order", "on_order_algo", "on_balance", "on_raw", "on_frame")

#: non-hot push method -> its channel row (the rows with a Python parser)
_PUSHES = {m: c for m, c in channels.BY_UPDATE.items() if c.parser is not None and not c.hot}
#: stream kind -> the Feed attribute holding its callback (``on_ticker`` -> ``_on_ticker``)
_CALLBACK_ATTR = {kind: f"_on_{kind}" for kind in channels.STREAMS}


def _check_callback(name: str, cb: Any) -> None:
    """Callbacks run synchronously on the frame path: ``async def`` ones are refused here
    (they would only create coroutines that never run). Use the async iterators
    (``feed.tickers()``, ``feed.orders()``...) to consume pushes from async code."""
    if cb is None:
        return
    if not callable(cb):
        raise TypeError(f"{name} must be callable, not {type(cb).__name__}")
    # not a callability test (callable() ran above): the bound __call__ of a callable object
    # is fetched to see whether it is `async def`
    call = getattr(cb, "__call__", None)  # noqa: B004
    if inspect.iscoroutinefunction(cb) or inspect.iscoroutinefunction(call):
        raise TypeError(
            f"{name} must be a plain function: async callbacks are not supported (they would "
            "never run); iterate feed.tickers()/orders()/order_algos()/balances() from async code"
        )


def _check_url(url: Any) -> str:
    """A ``ws://`` or ``wss://`` URL with a host: ``TypeError``/``ValueError`` at once."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"bad URL {safe_text(url, 100)!r}: {exc}") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(
            f"not a WebSocket URL: {safe_text(url, 100)!r} (expected ws://HOST[:PORT]/PATH or wss://...)"
        )
    if not url.isprintable() or not url.isascii():
        raise ValueError(f"URL {safe_text(url, 100)!r} has non-ASCII or control characters")
    return url


class _LogLimiter:
    """One log line per problem key at once, then counted lines at most every
    ``LOG_INTERVAL`` seconds (with how many occurrences were not logged)."""

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state: dict[str, list[float]] = {}  # key -> [last_logged, suppressed]

    def hit(self, key: str) -> tuple[bool, int]:
        """``(log_now, suppressed_since_last_line)``; the first hit of a key returns
        ``(True, -1)``."""
        now = time.monotonic()
        st = self._state.get(key)
        if st is None:
            if len(self._state) >= 256:  # bounded: keys come from a small fixed set
                self._state.clear()
            self._state[key] = [now, 0]
            return True, -1
        if now - st[0] >= LOG_INTERVAL:
            n = int(st[1])
            st[0], st[1] = now, 0
            return True, n
        st[1] += 1
        return False, 0


class TickerMap(Mapping[str, Ticker]):
    """``Feed.latest_tickers``: a read-only mapping symbol -> latest :class:`Ticker`, over
    the engine's ticker table (``Engine.tickers``). Nothing is stored here: each lookup
    builds a new ``Ticker`` from the table row; names are looked up case-insensitively."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __getitem__(self, symbol: str) -> Ticker:
        if not isinstance(symbol, str) or not protocol.is_valid_symbol(symbol):
            raise UnknownSymbol(f"{symbol!r} is not a valid symbol name", "unknown_symbol")
        return self._engine.ticker(symbol)  # UnknownSymbol is a KeyError

    def __contains__(self, symbol: object) -> bool:
        try:
            self[symbol]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._engine.ticker_symbols)

    def __len__(self) -> int:
        return len(self._engine.ticker_symbols)

    def __repr__(self) -> str:
        return f"<TickerMap of {len(self)} symbols>"


@dataclass
class FeedOptions:
    """Tunables of a :class:`Feed` (all have production defaults)."""

    depth: int = 200  #: book levels kept per side
    trade_capacity: int = 65536  #: trade ring size (rounded up to a power of two)
    max_frame: int = 8 * 1024 * 1024  #: inflated-size cap per frame
    request_timeout: float = 10.0  #: seconds to wait for a reply
    connect_timeout: float = 30.0  #: first connection (with retries) must succeed within this
    handshake_timeout: float = 10.0  #: one WebSocket handshake
    ping_interval: float = 20.0  #: server.ping period (the server drops idle clients at ~60 s)
    pong_timeout: float = 10.0  #: no pong within this -> reconnect
    data_timeout: float | None = 60.0  #: no frame at all for this long while subscribed -> reconnect
    max_age: float | None = 110 * 60.0  #: recycle the connection before the server's ~2 h cap
    backoff_initial: float = 0.25
    backoff_max: float = 30.0
    backoff_factor: float = 2.0
    jitter: float = 0.25  #: +- fraction of each backoff delay
    queue_size: int = 10_000  #: per stream; the oldest item is dropped (and counted) beyond it
    max_ticker_symbols: int = 10_000  #: symbols the engine's ticker table keeps (``latest_tickers``)
    timing: int = 0  #: if > 0, keep [recv_ns, done_ns] of the last N data frames (see Feed.timings)
    shm_name: str | None = None  #: publish books and trades in shared memory (fastfeed.attach)
    shm_max_symbols: int = 1024
    shm_checksum: bool = False
    event_log: int = 0  #: if > 0, the engine keeps an hftbacktest-layout event ring of this size
    trade_dedup_window: int = 512  #: per symbol, stored trades a replay is checked against
    drift_check: bool = True  #: compare each snapshot with the live book it replaces
    verify_tls: bool = True  #: verify the server certificate (wss://)
    ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """``kind`` is one of ``connected``, ``disconnected``, ``resubscribed``,
    ``reconnecting``, ``auth_failed``, ``resubscribe_failed``, ``error`` (an unexpected
    exception in the supervisor; ``reason`` names it, the feed retries or ``start()``
    fails with it), ``subscription_refused`` (after a reconnect the server refused to
    resubscribe a name, e.g. a delisted symbol: it is dropped from ``subscriptions`` and
    the rest goes on), ``drift`` (a ``clean=true`` snapshot disagreed with the live book it
    replaced: the book had drifted from the server's; ``reason`` names the symbol and the
    levels missing / extra / changed, see ``Engine.drift_log``). ``reason`` never holds
    raw network text (it is escaped)."""

    kind: str
    time_ns: int
    reason: str = ""
    attempt: int = 0
    delay: float = 0.0


class Stream(Generic[T]):
    """A bounded async iterator of pushes. A slow consumer never blocks the frame path:
    past ``maxlen`` items the oldest is dropped and counted in ``dropped``. Every item is
    a record of bounded size (string fields are capped, see ``protocol.MAX_FIELD_LEN``).
    A stream ends when :meth:`close` or ``Feed.close()`` is called; one created from a
    closed feed is already ended."""

    def __init__(self, maxlen: int, owner: list[Stream[T]], closed: bool = False) -> None:
        self._q: collections.deque[T] = collections.deque(maxlen=maxlen)
        self._waiter: asyncio.Future[None] | None = None
        self._closed = closed
        self._owner = owner
        self.dropped = 0
        if not closed:
            owner.append(self)

    def put(self, item: T) -> None:
        if self._closed:
            return
        if len(self._q) == self._q.maxlen:
            self.dropped += 1
        self._q.append(item)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def close(self) -> None:
        """Stop the iteration (items already queued are still delivered)."""
        self._closed = True
        if self in self._owner:
            self._owner.remove(self)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._q)

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        while not self._q:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._q.popleft()


@dataclass
class _Stats:
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    resubscribes: int = 0
    recycles: int = 0
    requests: int = 0
    request_errors: int = 0
    request_timeouts: int = 0
    unmatched_replies: int = 0
    bad_frames: int = 0
    unknown_pushes: int = 0
    callback_errors: int = 0
    supervisor_errors: int = 0
    listener_errors: int = 0  # of connections that ended (the current one is added in stats)
    last_error: str = ""
    last_disconnect_reason: str = ""
    dropped: dict[str, int] = field(default_factory=dict)
    bad_pushes: dict[str, int] = field(default_factory=dict)
    refused_subscriptions: dict[str, int] = field(default_factory=dict)


class Feed:
    """A live DigiFinex v1 connection (use :func:`connect`).

    Market data lands in ``feed.engine``: ``feed.book(symbol)`` and ``feed.trades`` are the
    engine's zero-copy views. Tickers and private pushes are typed records, delivered to
    callbacks and to bounded async iterators (``feed.tickers()``, ``feed.orders()``,
    ``feed.order_algos()``, ``feed.balances()``).

    Sinks (``sinks=[CaptureSink(path), ...]``, :mod:`fastfeed.sinks`) are how data
    leaves the feed besides the views: raw payloads (``on_raw``), the per-frame hook
    (``on_frame``, or ``async for change in feed.changes()``) with each frame's event rows,
    connection events; :meth:`resync` rebuilds a consumer after an event-log overflow.

    Callbacks (``on_event``, ``on_ticker``, ``on_order``, ``on_order_algo``,
    ``on_balance``, ``on_raw``, ``on_frame``) are plain functions called on the frame path; ``async def`` callbacks
    are refused with ``TypeError`` when set (use the async iterators instead). A callback
    that raises is counted in ``stats["callback_errors"]``; its first exception is logged
    with the traceback, later ones as one counted line at most every ``LOG_INTERVAL`` s.

    The URL (``ws://``/``wss://``), ``api_key`` and ``secret`` are checked here:
    ``TypeError``/``ValueError`` at once, never after a connect timeout.
    """

    def __init__(
        self,
        url: str = DIGIFINEX_URL,
        api_key: str | None = None,
        secret: str | bytes | None = None,
        *,
        options: FeedOptions | None = None,
        on_event: Callable[[ConnectionEvent], None] | None = None,
        on_ticker: Callable[[Ticker], None] | None = None,
        on_order: Callable[[OrderUpdate], None] | None = None,
        on_order_algo: Callable[[OrderAlgoUpdate], None] | None = None,
        on_balance: Callable[[BalanceUpdate], None] | None = None,
        engine: Engine | None = None,
        on_raw: Callable[[bytes, int, int], None] | None = None,
        on_frame: Callable[[FrameChange], None] | None = None,
        sinks: Iterable[object] = (),
    ) -> None:
        if (api_key is None) != (secret is None):
            raise ValueError("api_key and secret go together")
        self.url = _check_url(url)
        if api_key is not None:
            if not isinstance(api_key, str):
                raise TypeError(f"api_key must be a str, not {type(api_key).__name__}")
            if not api_key or not api_key.isprintable() or not api_key.isascii():
                raise ValueError("api_key must be non-empty printable ASCII")
        self.api_key = api_key
        self.__secret = protocol.Secret(secret) if secret is not None else None  # checks the type
        for name, cb in (
            ("on_event", on_event),
            ("on_ticker", on_ticker),
            ("on_order", on_order),
            ("on_order_algo", on_order_algo),
            ("on_balance", on_balance),
            ("on_raw", on_raw),
            ("on_frame", on_frame),
        ):
            _check_callback(name, cb)
        if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Iterable):
            raise TypeError("sinks must be a list of sinks (see fastfeed.sinks)")
        self.sinks: tuple[Any, ...] = tuple(sinks)  #: the attached sinks (fixed at construction)
        self._sink_hooks = [hooks(sk) for sk in self.sinks]  # TypeError for a non-sink
        for h in self._sink_hooks:
            for name in ("on_raw", "on_frame", "on_event"):
                if name in h:
                    _check_callback(f"a sink's {name}", h[name])
        opts = replace(options) if options is not None else FeedOptions()
        configuring = [sk for sk, h in zip(self.sinks, self._sink_hooks) if "configure" in h]
        if configuring and engine is not None:
            names = ", ".join(sorted({type(sk).__name__ for sk in configuring}))
            raise ValueError(
                f"engine-side sinks ({names}) configure the feed's own engine (its event log, "
                "shared memory): do not pass engine=, set those in FeedOptions instead"
            )
        for h in self._sink_hooks:
            if "configure" in h:
                h["configure"](opts)
        self.options = opts
        self._own_engine = engine is None
        self.engine = engine or Engine(
            depth=opts.depth,
            trade_capacity=opts.trade_capacity,
            max_frame=opts.max_frame,
            shm_name=opts.shm_name,
            shm_max_symbols=opts.shm_max_symbols,
            shm_checksum=opts.shm_checksum,
            event_log=opts.event_log,
            trade_dedup_window=opts.trade_dedup_window,
            drift_check=opts.drift_check,
            max_ticker_symbols=opts.max_ticker_symbols,
        )
        self._on_event = on_event
        self._on_ticker = on_ticker
        self._on_order = on_order
        self._on_order_algo = on_order_algo
        self._on_balance = on_balance
        self._on_raw = on_raw
        self._on_frame = on_frame
        self._changes: list[Stream[FrameChange]] = []
        self._raw_fns: list[Callable[..., Any]] = []
        self._sinks_open: list[dict[str, Callable[..., Any]]] = []
        self.authenticated = False
        subscribable = [c.name for c in channels.SUBSCRIBABLE]
        #: channel -> symbols replayed after a reconnect (acknowledged or in flight)
        self._subs: dict[str, set[str]] = {ch: set() for ch in subscribable}
        #: channel -> symbols the server acknowledged
        self._acked: dict[str, set[str]] = {ch: set() for ch in subscribable}
        #: channel -> symbol -> [subscribes in flight, unsubscribes in flight, latest is a
        #: subscribe] (only while a call for the symbol is in flight)
        self._ops: dict[str, dict[str, list[Any]]] = {ch: {} for ch in subscribable}
        self._streams: dict[str, list[Stream[Any]]] = {k: [] for k in channels.STREAMS}
        self._stats = _Stats()
        self._limiter = _LogLimiter()
        #: the listener's per-frame hook (compiled): builds each FrameChange and hands it to
        #: ``_changes`` and the on_frame callbacks (``_frame_fns``); on only with a consumer
        self._frame_done = FrameHook(
            self.engine,
            KIND_NAMES,
            push_symbols,
            self._changes,
            self._callback_failed,
            self._returned,
            self._update_hooks,
        )
        self._transport: Any = None
        self._listener: FeedListener | None = None
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._next_id = 1
        self._gen = 0  # connection generation (a late callback of an old one changes nothing)
        self._ready = asyncio.Event()
        self._closed_ev = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._first_done: asyncio.Future[None] | None = None
        self._disconnect_reason = ""
        self._connect_error: BaseException | None = None
        self._connected_at = 0.0
        self._ever_ready = False
        self._drift_seen = 0  # drift records already reported as events
        self._last_run_was_healthy = False

    # -- callbacks (checked when set) ----------------------------------------------------------

    @property
    def on_event(self) -> Callable[[ConnectionEvent], None] | None:
        return self._on_event

    @on_event.setter
    def on_event(self, cb: Callable[[ConnectionEvent], None] | None) -> None:
        _check_callback("on_event", cb)
        self._on_event = cb

    @property
    def on_ticker(self) -> Callable[[Ticker], None] | None:
        return self._on_ticker

    @on_ticker.setter
    def on_ticker(self, cb: Callable[[Ticker], None] | None) -> None:
        _check_callback("on_ticker", cb)
        self._on_ticker = cb
        if self._listener is not None:
            self._listener.ticker_callback = cb is not None

    @property
    def latest_tickers(self) -> TickerMap:
        """The latest ticker per symbol: a read-only mapping over the engine's ticker table
        (at most ``max_ticker_symbols`` symbols; see :class:`TickerMap`)."""
        return TickerMap(self.engine)

    @property
    def on_order(self) -> Callable[[OrderUpdate], None] | None:
        return self._on_order

    @on_order.setter
    def on_order(self, cb: Callable[[OrderUpdate], None] | None) -> None:
        _check_callback("on_order", cb)
        self._on_order = cb

    @property
    def on_order_algo(self) -> Callable[[OrderAlgoUpdate], None] | None:
        return self._on_order_algo

    @on_order_algo.setter
    def on_order_algo(self, cb: Callable[[OrderAlgoUpdate], None] | None) -> None:
        _check_callback("on_order_algo", cb)
        self._on_order_algo = cb

    @property
    def on_balance(self) -> Callable[[BalanceUpdate], None] | None:
        return self._on_balance

    @on_balance.setter
    def on_balance(self, cb: Callable[[BalanceUpdate], None] | None) -> None:
        _check_callback("on_balance", cb)
        self._on_balance = cb

    @property
    def on_raw(self) -> Callable[[bytes, int, int], None] | None:
        """``on_raw(payload, recv_ns, msg_type)``: every complete data payload as received,
        before the engine (``bytes``; 1 text, 2 binary), e.g. ``CaptureWriter.write``."""
        return self._on_raw

    @on_raw.setter
    def on_raw(self, cb: Callable[[bytes, int, int], None] | None) -> None:
        _check_callback("on_raw", cb)
        self._on_raw = cb
        self._update_hooks()

    @property
    def on_frame(self) -> Callable[[FrameChange], None] | None:
        """``on_frame(change)``: the per-frame hook, called after each applied frame that
        changed something with a :class:`~fastfeed.sinks.FrameChange` (kind, symbol, the
        frame's event rows). See docs/integration.md."""
        return self._on_frame

    @on_frame.setter
    def on_frame(self, cb: Callable[[FrameChange], None] | None) -> None:
        _check_callback("on_frame", cb)
        self._on_frame = cb
        self._update_hooks()

    # -- sinks and the per-frame hook ------------------------------------------------------

    def _raw_hooks(self) -> list[Callable[..., Any]]:
        out = [h["on_raw"] for h in self._sink_hooks if "on_raw" in h]
        return out + ([self._on_raw] if self._on_raw is not None else [])

    def _frame_hooks(self) -> list[Callable[..., Any]]:
        out = [h["on_frame"] for h in self._sink_hooks if "on_frame" in h]
        return out + ([self._on_frame] if self._on_frame is not None else [])

    @property
    def _frame_fns(self) -> list[Callable[..., Any]]:
        """The on_frame callbacks the per-frame hook calls (sinks' first, then the feed's)."""
        return self._frame_done.fns

    @_frame_fns.setter
    def _frame_fns(self, fns: list[Callable[..., Any]]) -> None:
        self._frame_done.fns = fns

    def _update_hooks(self, lst: FeedListener | None = None) -> None:
        """Enable the listener's raw / frame hooks only when something consumes them (no
        Python call per frame otherwise)."""
        lst = lst if lst is not None else self._listener
        if lst is None:
            return
        self._raw_fns = self._raw_hooks()
        self._frame_fns = self._frame_hooks()
        lst.on_raw = self._deliver_raw if self._raw_fns else None
        wants_frames = bool(self._frame_fns or self._changes)
        if wants_frames and lst.on_frame is None:
            self._frame_done.start()  # rows and ticker records before now are not ours
        lst.on_frame = self._frame_done if wants_frames else None

    def _deliver_raw(self, payload: bytes, recv_ns: int, msg_type: int) -> None:
        for fn in self._raw_fns:
            try:
                fn(payload, recv_ns, msg_type)
            except Exception as exc:  # a sink must never break the frame path
                self._callback_failed("on_raw", exc)

    def _change(
        self, frame: int, recv_ns: int, kind: str, symbol: str | None, symbols: tuple[str, ...]
    ) -> None:
        """Hand out a change the listener did not make (the ``reset`` one)."""
        self._frame_done.emit(frame, recv_ns, kind, symbol, symbols)

    def changes(self) -> Stream[FrameChange]:
        """A new bounded async iterator of :class:`~fastfeed.sinks.FrameChange` (one per
        applied frame that changed something, and a ``reset`` one per new connection).
        Past ``queue_size`` pending changes the oldest is dropped and counted in
        ``dropped`` (a consumer notices the gap: ``change.seq`` is past the last ``end`` it
        saw; rebuild it with :meth:`resync`). ``change.rows()`` raises
        :class:`~fastfeed.errors.EventsOverwritten` once the event log overwrote them."""
        st: Stream[FrameChange] = Stream(self.options.queue_size, self._changes, closed=self._closing)
        self._update_hooks()
        return st

    def resync(self, symbols: Iterable[str] | None = None) -> tuple[Any, int]:
        """Rebuild a consumer after an overflow: ``(rows, seq)`` where ``rows`` are, per
        book (of ``symbols``, default every book), a side-less ``DEPTH_CLEAR`` row and the
        book's current levels (see :func:`fastfeed.events.snapshot_rows`), and ``seq`` is
        the event-log row number they are current at. Reset the consumer, apply ``rows``,
        then go on with the changes whose ``end > seq`` (skip the older ones: the rows
        already hold them). Synchronous, so no frame lands in between."""
        from .events import snapshot_rows

        ring = self.engine.events
        return snapshot_rows(self.engine, symbols), (ring.count if ring is not None else 0)

    async def _open_sinks(self) -> None:
        for h in self._sink_hooks:
            if "open" in h:
                try:
                    res = h["open"](self)
                    if inspect.isawaitable(res):  # an async open (e.g. a bus connection)
                        await res
                except BaseException:
                    await self._close_sinks()
                    raise
            self._sinks_open.append(h)

    async def _close_sinks(self) -> None:
        opened, self._sinks_open = self._sinks_open, []
        for h in opened:
            if "close" in h:
                try:
                    res = h["close"]()
                    if inspect.isawaitable(res):  # an async close (flushes what it holds)
                        await res
                except Exception as exc:  # close the others anyway
                    self._callback_failed("sink close", exc)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> Feed:
        """Open the sinks (``sinks=``; a sink's ``open`` error is raised here, before any
        connection), connect (retrying with backoff up to ``connect_timeout``),
        authenticate when keys were given, and return once ready.

        Raises :class:`~fastfeed.errors.ConnectFailed` (a ``ConnectionError``: timed out,
        or an error retrying cannot fix, such as a TLS certificate or protocol failure),
        :class:`~fastfeed.protocol.AuthError`, :class:`~fastfeed.errors.FeedClosed` (after
        :meth:`close`), or the unexpected exception that stopped the first connection."""
        if self._closing:
            raise FeedClosed("feed is closed: create a new Feed to connect again")
        if self._supervisor is not None:
            return self
        _install_log_guard()
        await self._open_sinks()
        loop = asyncio.get_running_loop()
        self._first_done = loop.create_future()
        self._supervisor = asyncio.create_task(self._supervise(), name="fastfeed-supervisor")
        try:
            await asyncio.wait_for(asyncio.shield(self._first_done), self.options.connect_timeout)
        except asyncio.TimeoutError:
            await self.close()
            reason = self._disconnect_reason
            raise ConnectFailed(
                f"could not connect to {self.url} within {self.options.connect_timeout:g} s"
                + (f": {reason}" if reason else "")
                + ("" if reason else self._tls_hint(None))
            ) from self._connect_error
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Disconnect, stop every task and end every stream. Idempotent. Afterwards
        ``start()``, requests and subscriptions raise :class:`~fastfeed.errors.FeedClosed`
        and new streams are already ended."""
        self._closing = True
        self._closed_ev.set()
        if self._transport is not None:
            self._transport.disconnect()
        sup, self._supervisor = self._supervisor, None
        if sup is not None and not sup.done():
            sup.cancel()
            try:
                await sup
            except (asyncio.CancelledError, Exception):
                pass
        self._fail_pending(FeedClosed("feed closed"))
        for streams in (*self._streams.values(), self._changes):
            for s in list(streams):
                s.close()
        await self._close_sinks()
        if self._own_engine:
            self.engine.close()  # unlinks a shared-memory segment it created

    async def __aenter__(self) -> Feed:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __await__(self) -> Generator[Any, None, Feed]:
        """``feed = await fastfeed.connect(url)`` is ``await feed.start()``: connected and
        ready; the caller then owns it and must ``await feed.close()`` (``async with``
        does both)."""
        return self.start().__await__()

    def __repr__(self) -> str:
        state = "closed" if self._closing else ("connected" if self._ready.is_set() else "disconnected")
        key = f" key={self.api_key[:4]}…" if self.api_key else ""
        return f"<Feed {self.url} {state}{key}>"

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or ``start()`` failed)."""
        return self._closing

    # -- data --------------------------------------------------------------------------------

    def book(self, symbol: str) -> Book:
        """The engine's book of ``symbol`` (zero-copy views; see :class:`~fastfeed.Book`).

        A symbol subscribed with ``subscribe_depth`` (or all symbols) always has a book:
        before its first snapshot it is empty and ``live`` is False. Check ``book.live``
        before trusting the levels: a book goes stale (``live`` False, ``stale_since`` set,
        levels kept) when the connection drops or after ``unsubscribe_depth``, and becomes
        live again with the next snapshot. A symbol neither subscribed nor seen in data
        raises :class:`~fastfeed.errors.UnknownSymbol` (a ``KeyError``): a typo never
        creates an empty book."""
        try:
            return self.engine.book(symbol)
        except UnknownSymbol:
            if not isinstance(symbol, str):
                raise
            depth = self._subs["depth"]
            if _ALL in depth or symbol.upper() in depth:
                return self.engine.book(symbol, create=True)
            raise UnknownSymbol(
                f"no book for {safe_text(symbol, 40)!r}: not subscribed with subscribe_depth "
                "and never seen in data",
                "unknown_symbol",
            ) from None

    @property
    def trades(self) -> TradeRing:
        """The engine's :class:`~fastfeed.TradeRing` (all symbols)."""
        return self.engine.trades

    def _stream(self, kind: str) -> Stream[Any]:
        return Stream(self.options.queue_size, self._streams[kind], closed=self._closing)

    def tickers(self) -> Stream[Ticker]:
        """A new bounded async iterator of every ticker / all_ticker record."""
        return self._stream("ticker")

    def orders(self) -> Stream[OrderUpdate]:
        return self._stream("order")

    def order_algos(self) -> Stream[OrderAlgoUpdate]:
        return self._stream("order_algo")

    def balances(self) -> Stream[BalanceUpdate]:
        return self._stream("balance")

    def timings(self) -> npt.NDArray[np.int64]:
        """``(n, 2)`` int64 array of ``[recv_ns, done_ns]`` for the last data frames of the
        current connection (wall clock ns; ``done`` = book/ring updated). Needs the
        ``timing=N`` option; empty otherwise."""
        import numpy as np

        lst = self._listener
        return lst.timings() if lst is not None else np.zeros((0, 2), dtype=np.int64)

    @property
    def subscriptions(self) -> dict[str, list[str]]:
        """Channel -> subscribed symbols (``["*"]`` = all), as replayed after reconnects:
        those acknowledged by the server plus those whose request is in flight."""
        return {ch: sorted(s) for ch, s in self._subs.items() if s}

    @property
    def stats(self) -> dict[str, Any]:
        st = self._stats
        dropped = dict(st.dropped)
        for name, streams in self._streams.items():
            dropped[name] = dropped.get(name, 0) + sum(s.dropped for s in streams)
        eng = self.engine.stats
        tick = eng["tickers"]  # ticker records are parsed and counted by the engine
        if tick["dropped_symbols"]:
            dropped["ticker_symbols"] = tick["dropped_symbols"]
        bad_pushes = dict(st.bad_pushes)
        for reason, n in tick["rejects"].items():
            if n:
                bad_pushes[reason] = bad_pushes.get(reason, 0) + n
        out: dict[str, Any] = {
            "connected": self.connected,
            "connects": st.connects,
            "reconnects": max(0, st.connects - 1),
            "connect_failures": st.connect_failures,
            "disconnects": st.disconnects,
            "last_disconnect_reason": st.last_disconnect_reason,
            "resubscribes": st.resubscribes,
            "recycles": st.recycles,
            "requests": st.requests,
            "request_errors": st.request_errors,
            "request_timeouts": st.request_timeouts,
            "unmatched_replies": st.unmatched_replies,
            "bad_frames": st.bad_frames,
            "bad_pushes": bad_pushes,
            "refused_subscriptions": dict(st.refused_subscriptions),
            "unknown_pushes": st.unknown_pushes,
            "callback_errors": st.callback_errors,
            "listener_errors": st.listener_errors + (self._listener.callback_errors if self._listener else 0),
            "supervisor_errors": st.supervisor_errors,
            "last_error": st.last_error,
            "dropped": dropped,
            "pending_requests": len(self._pending),
            "engine": eng,
            "drift": eng.get("drift", {}),
            "stale_books": sum(1 for b in self.engine.books.values() if not b.live),
        }
        return out

    # -- requests ----------------------------------------------------------------------------

    async def request(
        self, method: str, params: list[Any] | None = None, timeout: float | None = None
    ) -> Any:
        """Send one request on the current connection and return its ``result``.

        Raises :class:`RequestError` (non-null ``error``), :class:`RequestTimeout`,
        :class:`ConnectionLost` (the connection closed before the reply; failed at the
        moment of the drop), :class:`~fastfeed.errors.NotConnected` (not connected) or
        :class:`~fastfeed.errors.FeedClosed` (closed) - all ``FastfeedError``s, the last
        three also ``ConnectionError``s."""
        if not isinstance(method, str):
            raise TypeError(f"method must be a str, not {type(method).__name__}")
        if params is not None and not isinstance(params, list):
            raise TypeError(f"params must be a list, not {type(params).__name__}")
        if self._closing:
            raise FeedClosed("feed is closed")
        tr = self._transport
        if tr is None:
            raise NotConnected(f"not connected to {self.url}")
        req_id = self._next_id
        self._next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = (method, fut)
        self._stats.requests += 1
        wait = timeout if timeout is not None else self.options.request_timeout
        try:
            tr.send(WSMsgType.TEXT, protocol.encode_request(req_id, method, params))
            return await asyncio.wait_for(fut, wait)
        except asyncio.TimeoutError:
            self._stats.request_timeouts += 1
            raise RequestTimeout(f"no reply to {method} (id {req_id}) within {wait:g} s") from None
        finally:
            entry = self._pending.get(req_id)
            if entry is not None and entry[1] is fut:
                del self._pending[req_id]

    async def _request_when_ready(self, method: str, params: list[Any]) -> Any:
        """A request that survives a reconnect in the middle (retried on the new
        connection, at most three times)."""
        for attempt in range(3):
            await self._wait_ready()
            try:
                return await self.request(method, params)
            except (ConnectionLost, NotConnected) as exc:
                if isinstance(exc, FeedClosed) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _wait_ready(self) -> None:
        if self._closing:
            raise FeedClosed("feed is closed")
        if self._ready.is_set():
            return
        if self._supervisor is None:
            raise NotConnected(f"not connected to {self.url} (call start() first)")
        ready = asyncio.ensure_future(self._ready.wait())
        closed = asyncio.ensure_future(self._closed_ev.wait())
        try:
            await asyncio.wait(
                {ready, closed}, timeout=self.options.connect_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
            closed.cancel()
            await asyncio.gather(ready, closed, return_exceptions=True)  # none left behind
        if self._closing:
            raise FeedClosed("feed is closed")
        if not self._ready.is_set():
            raise NotConnected(
                f"not connected to {self.url}"
                + (f": {self._disconnect_reason}" if self._disconnect_reason else "")
            )

    async def ping(self) -> str:
        """``server.ping`` -> ``"pong"`` (a result that is not a string is a
        :class:`~fastfeed.protocol.BadReply`)."""
        await self._wait_ready()
        return protocol.parse_pong(await self.request("server.ping"))

    async def server_time(self) -> int:
        """``server.time`` -> integer seconds since the epoch (anything else the server
        answers is a :class:`~fastfeed.protocol.BadReply`)."""
        await self._wait_ready()
        return protocol.parse_server_time(await self.request("server.time"))

    async def auth(self) -> None:
        """``server.auth`` with the feed's keys (done automatically on every connect).
        Success is ``{"status": "success"}``; a refusal or any other result is an
        :class:`AuthError`."""
        if self.api_key is None or self.__secret is None:
            raise AuthError("server.auth", None, "no api_key/secret given")
        params = protocol.auth_params(self.api_key, self.__secret, time.time_ns() // 1_000_000)
        try:
            result = await self.request("server.auth", params)
        except RequestError as exc:
            self.authenticated = False
            raise AuthError("server.auth", exc.code, exc.message) from None
        try:
            protocol.check_auth_result(result)
        except AuthError:
            self.authenticated = False
            raise
        self.authenticated = True

    # -- subscriptions -----------------------------------------------------------------------
    #
    # Registry rules: ``_subs[ch]`` is what a reconnect replays. A subscribe call adds its
    # names at once (so a reconnect in the middle replays them) and marks them acknowledged
    # when the server says so. If the call fails (refused, timed out, connection lost three
    # times), a name leaves the registry only if the server never acknowledged it: a name
    # acknowledged earlier - or by a concurrent call - stays subscribed, because the server
    # still has it; while another subscribe for it is in flight, that one decides. An
    # unsubscribe takes its names out at once, whatever the server answers, and a subscribe
    # reply that arrives after a later unsubscribe of the name changes nothing.

    def _check_private(self, channel: str) -> None:
        if channels.BY_NAME[channel].private and self.api_key is None:
            raise AuthError(f"{channel}.subscribe", None, "private channels need api_key and secret")

    def _names(self, channel: str, symbols: Iterable[str] | None) -> list[str]:
        return protocol.validate_symbols(symbols, channels.BY_NAME[channel].names or "symbol")

    async def _subscribe(self, channel: str, symbols: Iterable[str] | None) -> None:
        """Subscribe ``channel`` (a row of the channel table) for ``symbols`` (a list; empty
        or None = all); returns once acknowledged. Every ``subscribe_*`` method comes here.
        Names are checked first (``protocol.validate_symbols``): a single ``str``,
        ``bytes``, an empty, non-ASCII, over-long (> 32) or space-containing name raises
        ``TypeError``/``ValueError`` and nothing is sent. If the request fails, a name
        leaves ``subscriptions`` only if the server never acknowledged it: a subscription
        acknowledged earlier survives a refused, timed-out or lost repeat."""
        syms = self._names(channel, symbols)  # TypeError/ValueError before anything else
        self._check_private(channel)
        if self._closing:
            raise FeedClosed("feed is closed")
        reg, acked, ops = self._subs[channel], self._acked[channel], self._ops[channel]
        names = syms or [_ALL]
        for n in names:
            st = ops.setdefault(n, [0, 0, True])
            st[0] += 1
            st[2] = True  # the latest call for n is a subscribe
        reg.update(names)
        ok: set[str] = set()
        try:
            for chunk in protocol.chunk_symbols(syms):
                await self._request_when_ready(f"{channel}.subscribe", chunk)
                for n in chunk or [_ALL]:
                    ok.add(n)
                    if ops[n][2]:  # no unsubscribe came after this call: the server has n
                        acked.add(n)
        except RequestError as exc:
            if channels.BY_NAME[channel].private and not isinstance(exc, AuthError):
                raise AuthError(exc.method, exc.code, exc.message) from None
            raise
        finally:
            for n in names:
                st = ops[n]
                st[0] -= 1
                # failed for n: n leaves the registry unless the server acknowledged it
                # (earlier, or another call did) or another subscribe for n is still in flight
                # (the last one to finish decides); after an unsubscribe it is gone already
                if n not in ok and st[2] and st[0] == 0 and n not in acked:
                    reg.discard(n)
                if st[0] == 0 and st[1] == 0:
                    del ops[n]

    async def _unsubscribe(self, channel: str, symbols: Iterable[str] | None) -> None:
        syms = self._names(channel, symbols)
        if self._closing:
            raise FeedClosed("feed is closed")
        reg, acked, ops = self._subs[channel], self._acked[channel], self._ops[channel]
        names = syms if syms else list(reg | {_ALL})
        for n in names:
            st = ops.setdefault(n, [0, 0, False])
            st[1] += 1
            st[2] = False  # the latest call for n is an unsubscribe
            reg.discard(n)
            acked.discard(n)
        if channel == "depth":
            # the books keep their levels but are no longer updated: say so at once
            self._mark_unsubscribed_stale(syms)
        try:
            if self._transport is None:
                return  # nothing to tell a server we are not connected to
            for chunk in protocol.chunk_symbols(syms):
                await self._request_when_ready(f"{channel}.unsubscribe", chunk)
            if channel == "depth":
                # a snapshot the server sent before it took the unsubscribe made the book
                # live again: it will not be updated any more, so it is stale
                self._mark_unsubscribed_stale(syms)
        finally:
            for n in names:
                st = ops[n]
                st[1] -= 1
                if st[0] == 0 and st[1] == 0:
                    del ops[n]

    def _mark_unsubscribed_stale(self, syms: list[str]) -> None:
        """Mark the books of ``syms`` (all books for ``[]``) stale, except those subscribed
        again meanwhile."""
        depth = self._subs["depth"]
        if not syms:
            if _ALL in depth:
                return
            names = [n for n in self.engine.books if n not in depth]
        else:
            known = self.engine.books
            names = [n for n in syms if n in known and n not in depth and _ALL not in depth]
        self.engine.mark_stale(names)

    # ``subscribe_<x>`` / ``unsubscribe_<x>`` for every subscribable row of the channel
    # table are generated at import (``_install_channel_methods``, end of this module), all
    # going through ``_subscribe`` / ``_unsubscribe``. Declared here for type checkers only;
    # tests/test_channels.py checks that these declarations match the generated methods.
    if TYPE_CHECKING:

        async def subscribe_depth(self, symbols: Iterable[str] = ()) -> None: ...
        async def unsubscribe_depth(self, symbols: Iterable[str] = ()) -> None: ...
        async def subscribe_trades(self, symbols: Iterable[str] = ()) -> None: ...
        async def unsubscribe_trades(self, symbols: Iterable[str] = ()) -> None: ...
        async def subscribe_ticker(self, symbols: Iterable[str] = ()) -> None: ...
        async def unsubscribe_ticker(self, symbols: Iterable[str] = ()) -> None: ...
        async def subscribe_all_ticker(self) -> None: ...
        async def unsubscribe_all_ticker(self) -> None: ...
        async def subscribe_orders(self, symbols: Iterable[str] = ()) -> None: ...
        async def unsubscribe_orders(self, symbols: Iterable[str] = ()) -> None: ...
        async def subscribe_order_algo(self, symbols: Iterable[str] = ()) -> None: ...
        async def unsubscribe_order_algo(self, symbols: Iterable[str] = ()) -> None: ...
        async def subscribe_balance(self, currencies: Iterable[str] = ()) -> None: ...
        async def unsubscribe_balance(self, currencies: Iterable[str] = ()) -> None: ...

    async def _resubscribe(self) -> None:
        for channel, reg in self._subs.items():
            if not reg:
                continue
            if channels.BY_NAME[channel].private and not self.authenticated:
                continue
            syms = [] if _ALL in reg else sorted(reg)
            for chunk in protocol.chunk_symbols(syms):
                try:
                    await self.request(f"{channel}.subscribe", chunk)
                    ok = chunk or [_ALL]
                except RequestError as exc:
                    if isinstance(exc, BadReply) or exc.code in TRANSIENT_CODES:
                        raise  # not a refusal of these names: reconnect with backoff
                    ok = await self._resubscribe_each(channel, chunk, exc)
                self._acked[channel].update(ok)

    async def _resubscribe_each(self, channel: str, chunk: list[str], exc: RequestError) -> list[str]:
        """A resubscribe request was refused: find the names the server refuses (one
        request each) and drop them, with a ``subscription_refused`` event and a count in
        ``stats["refused_subscriptions"]``, so that one delisted symbol cannot keep the
        whole feed down. Returns the names the server accepted."""
        ok: list[str] = []
        for name in chunk or [_ALL]:
            err: RequestError | None = exc if len(chunk) <= 1 else None
            if err is None:
                try:
                    await self.request(f"{channel}.subscribe", [name])
                    ok.append(name)
                    continue
                except RequestError as one:
                    if isinstance(one, BadReply) or one.code in TRANSIENT_CODES:
                        raise
                    err = one
            self._subs[channel].discard(name)
            self._acked[channel].discard(name)
            refused = self._stats.refused_subscriptions
            refused[channel] = refused.get(channel, 0) + 1
            if channel == "depth":
                known = self.engine.books
                self.engine.mark_stale(None if name == _ALL else [n for n in (name,) if n in known])
            self._emit(
                "subscription_refused",
                f"{channel} {name if name != _ALL else '(all)'} dropped: {safe_text(err.message, 200)}",
            )
        return ok

    # -- frame path callbacks (called by the listener) ---------------------------------------

    def _bad_push(self, reason: str, n: int = 1) -> None:
        bp = self._stats.bad_pushes
        bp[reason] = bp.get(reason, 0) + n

    def _note(self, key: str, level: int, text: str) -> None:
        """Log ``text`` once per key at once, then a counted line at most every
        ``LOG_INTERVAL`` seconds."""
        now, suppressed = self._limiter.hit(key)
        if not now:
            return
        if suppressed > 0:
            text += f" ({suppressed} more since the last line)"
        log.log(level, "%s", text)

    def _on_message(self, msg: Any, recv_ns: int) -> None:
        """Never raises: whatever the message holds, a bad push is a counted rejection and
        a bad reply a typed error to its caller."""
        try:
            self._handle_message(msg, recv_ns)
        except Exception as exc:  # last resort: keep the connection, count and log one line
            self._bad_push("internal")
            self._note(
                "internal",
                logging.ERROR,
                f"message handling failed ({type(exc).__name__}: {safe_text(str(exc))}); "
                "counted in stats['bad_pushes']['internal']",
            )

    def _handle_message(self, msg: Any, recv_ns: int) -> None:
        if not isinstance(msg, dict):
            self._stats.unknown_pushes += 1
            return
        method = msg.get("method")
        if method is None:
            self._on_reply(msg)
            return
        params = msg.get("params")
        rejects: dict[str, int] = {}
        # ticker.update / all_ticker.update never get here: the engine stores them
        # (ticker table + history) and the listener calls _on_ticker_records
        ch = _PUSHES.get(method) if isinstance(method, str) else None
        if ch is not None and ch.parser is not None and ch.stream is not None:
            kind = ch.stream
            callback = getattr(self, _CALLBACK_ATTR[kind], None)  # a kind may have only streams
            for rec in ch.parser(params, recv_ns, rejects):
                self._dispatch(kind, callback, rec)
        else:
            self._stats.unknown_pushes += 1
            log.debug("unhandled push method %s", safe_text(method, 60))
        if rejects:
            for reason, n in rejects.items():
                self._bad_push(reason, n)
            self._note(
                "bad_push",
                logging.WARNING,
                f"rejected records in a {safe_text(method, 40)} push: "
                + ", ".join(f"{k} {v}" for k, v in rejects.items())
                + " (counted in stats['bad_pushes'])",
            )

    def _on_ticker_records(self, first_seq: int, recv_ns: int) -> None:
        """The listener stored ticker records ``first_seq..`` (called only while a ticker
        callback or stream exists): build the Ticker objects and hand them on. Records a
        frame pushed out of the history ring before this ran (a frame with more records
        than ``Engine(ticker_capacity=...)``) are counted in ``dropped["ticker_history"]``."""
        ring = self.engine.ticker_history
        records = ring.records(first_seq)
        lost = ring.count - first_seq - len(records)
        if lost > 0:
            self._stats.dropped["ticker_history"] = self._stats.dropped.get("ticker_history", 0) + lost
        for t in records:
            self._dispatch("ticker", self._on_ticker, t)

    def _feed_payload(self, payload: bytes | str, recv_ns: int = 0) -> None:
        """One payload through the engine and on, as the listener hands it (tests; the
        live path is ``FeedListener._deliver``, in C)."""
        first = self.engine.ticker_history.count
        try:
            msg = self.engine.feed(payload, recv_ns)
        except FastfeedError as exc:
            self._on_frame_error(exc)
            return
        if msg is not None:
            self._on_message(msg, recv_ns)
        elif self.engine.ticker_history.count != first and (
            self._on_ticker is not None or self._streams["ticker"]
        ):
            self._on_ticker_records(first, recv_ns)

    def _callback_failed(self, kind: str, exc: BaseException) -> None:
        self._stats.callback_errors += 1
        now, suppressed = self._limiter.hit(f"callback:{kind}")
        if not now:
            return
        if suppressed < 0:
            log.error(
                "%s callback raised (first time; later errors are counted in "
                "stats['callback_errors'] and logged at most every %g s)",
                kind,
                LOG_INTERVAL,
                exc_info=exc,
            )
        else:
            log.error(
                "%s callback raised %s: %s (%d more since the last line; %d in all)",
                kind,
                type(exc).__name__,
                safe_text(str(exc)),
                suppressed,
                self._stats.callback_errors,
            )

    def _call(self, kind: str, callback: Callable[[Any], Any], item: Any) -> None:
        try:
            result = callback(item)
        except Exception as exc:  # a user callback must never break the frame path
            self._callback_failed(kind, exc)
            return
        if result is not None:
            self._returned(kind, result)

    def _returned(self, kind: str, result: Any) -> None:
        """A callback returned ``result`` (not None): an awaitable is an async callback,
        which never runs; counted and logged as a failed callback."""
        if inspect.isawaitable(result):  # e.g. a lambda calling async code
            close = getattr(result, "close", None)
            if close is not None:
                close()  # never awaited: close it (no "never awaited" warning)
            self._callback_failed(
                kind,
                TypeError(
                    f"{kind} callback returned an awaitable: async callbacks are not supported "
                    "(they never run); use the feed's async iterators"
                ),
            )

    def _dispatch(self, kind: str, callback: Callable[[Any], None] | None, item: Any) -> None:
        for s in self._streams[kind]:
            s.put(item)
        if callback is not None:
            self._call(kind, callback, item)

    def _on_reply(self, msg: dict[str, Any]) -> None:
        req_id = protocol.reply_id(msg)
        entry = self._pending.get(req_id) if req_id is not None else None
        if entry is None:
            self._stats.unmatched_replies += 1
            log.debug("reply for an id not in flight: %s", safe_text(msg.get("id"), 40))
            return
        method, fut = entry
        if fut.done():
            return
        error = msg.get("error")
        if error is not None:
            self._stats.request_errors += 1
            code, text = protocol.parse_error(error)
            fut.set_exception(RequestError(method, code, text))
        else:
            fut.set_result(msg.get("result"))

    def _on_frame_error(self, exc: FastfeedError) -> None:
        self._stats.bad_frames += 1
        self._note("bad_frame", logging.WARNING, f"rejected frame: {safe_text(str(exc))}")

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for _method, fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: the waiter may be gone already

    # -- connection supervision ---------------------------------------------------------------

    def _emit(self, kind: str, reason: str = "", attempt: int = 0, delay: float = 0.0) -> None:
        reason = safe_text(reason, 300)
        ev = ConnectionEvent(kind, time.time_ns(), reason, attempt, delay)
        log.info("%s%s", kind, f": {reason}" if reason else "")
        cb = self._on_event
        if cb is not None:
            self._call("on_event", cb, ev)
        for h in self._sink_hooks:
            if "on_event" in h:
                self._call("on_event", h["on_event"], ev)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("wss://"):
            return None
        if self.options.ssl_context is not None:
            return self.options.ssl_context
        ctx = ssl.create_default_context()
        if not self.options.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _backoff(self, attempt: int) -> float:
        o = self.options
        base = min(o.backoff_max, o.backoff_initial * (o.backoff_factor**attempt))
        return max(0.0, base * (1.0 + random.uniform(-o.jitter, o.jitter)))

    def _first_result(self, exc: BaseException | None) -> None:
        fd = self._first_done
        if fd is not None and not fd.done():
            if exc is None:
                fd.set_result(None)
            else:
                fd.set_exception(exc)
                fd.exception()  # retrieved: start() may have timed out already

    def _tls_hint(self, exc: BaseException | None) -> str:
        """A hint for the usual TLS mistakes (wss:// to a plain server)."""
        if not self.url.startswith("wss://"):
            return ""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (
                " (the server's TLS certificate was not accepted: pass ssl_context=... or verify_tls=False)"
            )
        if exc is None or isinstance(
            exc, (ssl.SSLError, ConnectionResetError, ConnectionAbortedError, EOFError)
        ):
            return (
                " (hint: the TLS handshake did not complete - if the server speaks plain "
                "WebSocket, use a ws:// URL; TLS to a non-TLS server fails like this)"
            )
        return ""

    @staticmethod
    def _permanent(exc: BaseException) -> bool:
        """Connect errors that retrying cannot fix (a bad URL or argument, a TLS certificate
        or protocol mismatch): ``start()`` fails with them at once."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        if isinstance(exc, ssl.SSLError):
            why = (getattr(exc, "reason", None) or "").upper()
            return why in (
                "WRONG_VERSION_NUMBER",
                "RECORD_LAYER_FAILURE",
                "HTTP_REQUEST",
                "PACKET_LENGTH_TOO_LONG",
                "UNKNOWN_PROTOCOL",
                "UNSUPPORTED_PROTOCOL",
            )
        return isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, UnicodeError)

    async def _supervise(self) -> None:
        attempt = 0
        try:
            while not self._closing:
                try:
                    fatal = await self._one_connection()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # never let the supervisor die: report, then retry or fail
                    self._stats.supervisor_errors += 1
                    reason = f"{type(exc).__name__}: {safe_text(str(exc))}"
                    self._stats.last_error = reason
                    self._disconnect_reason = reason
                    log.error(
                        "unexpected error in the connection supervisor: %s",
                        reason,
                        exc_info=self._stats.supervisor_errors == 1,
                    )
                    self._emit("error", reason)
                    fatal = exc
                if self._closing:
                    break
                if fatal is not None and not self._ever_ready:
                    self._first_result(fatal)  # never connected: fail start() with the real cause
                    return
                if self._last_run_was_healthy:
                    attempt = 0  # the connection had been up a while: start the backoff afresh
                if self._disconnect_reason == "max_age":
                    delay = 0.0  # a planned recycle: reconnect at once
                else:
                    delay = self._backoff(attempt)
                    attempt += 1
                self._emit("reconnecting", self._disconnect_reason, attempt, delay)
                await asyncio.sleep(delay)
        finally:
            # whatever ended the loop, start() must not wait for a result that never comes
            self._first_result(FeedClosed("feed closed before it connected"))

    async def _one_connection(self) -> BaseException | None:
        """One connection's life. Returns a fatal error (auth refused, or a connect error
        that retrying cannot fix) or None."""
        self._last_run_was_healthy = False
        opts = self.options
        loop = asyncio.get_running_loop()
        disconnected = loop.create_future()
        self._gen += 1
        gen = self._gen

        def on_disconnected(code: Any, text: str) -> None:
            if not disconnected.done():
                disconnected.set_result((code, text))
            if self._gen == gen:
                # noticed at once: requests in flight fail now, not at their timeout
                self._ready.clear()
                self._transport = None
                why = "closed by server" + (f" (code {code})" if code is not None else "")
                self._fail_pending(ConnectionLost(f"connection lost: {why}"))

        def factory() -> FeedListener:
            old = self._listener
            if old is not None:  # keep the count of the previous connection's listener
                self._stats.listener_errors += old.callback_errors
            lst = FeedListener(self.engine, self._on_message, self._on_frame_error, on_disconnected)
            self._update_hooks(lst)
            lst.on_tickers = self._on_ticker_records
            lst.ticker_streams = self._streams["ticker"]
            lst.ticker_callback = self._on_ticker is not None
            if opts.timing > 0:
                lst.enable_timing(opts.timing)
            self._listener = lst
            return lst

        try:
            transport, _ = await ws_connect(
                factory,
                self.url,
                ssl_context=self._ssl_context(),
                websocket_handshake_timeout=opts.handshake_timeout,
                enable_auto_ping=False,
                max_frame_size=opts.max_frame + 1024,
                logger_name=_picows_logger(),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._stats.connect_failures += 1
            text = safe_text(str(exc))
            self._connect_error = exc
            self._disconnect_reason = (
                f"connect failed: {type(exc).__name__}" + (f": {text}" if text else "") + self._tls_hint(exc)
            )
            self._stats.last_disconnect_reason = self._disconnect_reason
            log.debug("connect to %s failed: %s", self.url, self._disconnect_reason)
            if self._permanent(exc) and not self._ever_ready:
                err = ConnectFailed(f"could not connect to {self.url}: {self._disconnect_reason}")
                err.__cause__ = exc
                return err
            return None
        self._transport = transport
        self._next_id = 1
        self._connected_at = time.monotonic()
        self.engine.reset_books()  # no stale level survives a reconnect
        if self._listener is not None and self._listener.on_frame is not None:
            self._change(0, time.time_ns(), "reset", None, tuple(self.engine.books))
        self.authenticated = False
        for acked in self._acked.values():
            acked.clear()  # a new connection: nothing is acknowledged on it yet
        self._stats.connects += 1
        self._emit("connected", attempt=self._stats.connects)
        reason = "closed by server"
        fatal: BaseException | None = None
        tasks: list[asyncio.Task[Any]] = []
        try:
            setup_ok = True
            try:
                if self.api_key is not None:
                    await self.auth()
                await self._resubscribe()
            except AuthError as exc:
                self._emit("auth_failed", exc.message)
                fatal = exc
                setup_ok = False
                reason = f"auth failed: {exc.message}"
            except (RequestError, RequestTimeout, ConnectionLost, NotConnected) as exc:
                setup_ok = False
                if disconnected.done() or isinstance(exc, (ConnectionLost, NotConnected)):
                    reason = f"connection lost during setup: {exc}"
                else:
                    reason = f"setup failed: {exc}"
                self._emit("resubscribe_failed", str(exc))
            if setup_ok and disconnected.done():
                setup_ok = False
                reason = "connection lost during setup"
            if setup_ok:
                if any(self._subs.values()):
                    self._stats.resubscribes += 1 if self._stats.connects > 1 else 0
                    self._emit("resubscribed", ",".join(ch for ch, s in self._subs.items() if s))
                self._ready.set()
                self._ever_ready = True
                self._first_result(None)
                tasks = [asyncio.create_task(self._heartbeat(transport), name="fastfeed-heartbeat")]
                watch = asyncio.create_task(self._watchdog(transport), name="fastfeed-watchdog")
                tasks.append(watch)
                await asyncio.wait([disconnected, *tasks], return_when=asyncio.FIRST_COMPLETED)
                for t in tasks:
                    if t.done() and not t.cancelled() and t.exception() is None and t.result():
                        reason = t.result()
                    elif t.done() and not t.cancelled() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]  # to the supervisor's handler
                if disconnected.done() and reason == "closed by server":
                    code, text = disconnected.result()
                    if code is not None:
                        text = safe_text(text)
                        reason = f"closed by server (code {code}{': ' + text if text else ''})"
                self._last_run_was_healthy = time.monotonic() - self._connected_at > 5.0
        finally:
            self._ready.clear()
            for t in tasks:
                t.cancel()
            for t in tasks:
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
            if self._closing:
                reason = "closed by client"
            self._gen += 1  # from here on, callbacks of this connection change nothing
            self._transport = None
            transport.disconnect()
            try:
                await asyncio.wait_for(transport.wait_disconnected(), 5.0)
            except (asyncio.TimeoutError, Exception):
                pass
            self._fail_pending(ConnectionLost(f"connection lost: {reason}"))
            self.engine.mark_stale()  # levels kept, flagged: nothing updates them now
            self._check_drift()
            self._stats.disconnects += 1
            self._disconnect_reason = reason
            self._stats.last_disconnect_reason = reason
            if reason == "max_age":
                self._stats.recycles += 1
            self._emit("disconnected", reason)
        return fatal

    def _check_drift(self) -> None:
        """A ``drift`` event for every drift record the engine logged since the last call
        (polled by the watchdog; records beyond the engine's ``drift_log_size`` between two
        polls are counted in ``stats["drift"]`` but get no event of their own)."""
        drift = self.engine.stats.get("drift")
        if not drift or drift.get("drifted", 0) <= self._drift_seen:
            return
        for r in self.engine.drift_log:
            if r.seq > self._drift_seen:
                self._emit(
                    "drift",
                    f"{r.symbol}: {r.missing} missing, {r.extra} extra, "
                    f"{r.changed} changed level(s) against the snapshot",
                )
        self._drift_seen = drift["drifted"]

    async def _heartbeat(self, transport: Any) -> str:
        """server.ping every ``ping_interval``; a missing pong ends the connection."""
        opts = self.options
        while True:
            await asyncio.sleep(opts.ping_interval)
            try:
                await self.request("server.ping", timeout=opts.pong_timeout)
            except RequestTimeout:
                return "pong timeout"
            except RequestError:
                continue  # the server answered: it is alive
            except (ConnectionLost, NotConnected):
                return ""

    async def _watchdog(self, transport: Any) -> str:
        """No data for ``data_timeout`` while subscribed, or ``max_age`` reached."""
        opts = self.options
        step = 0.25
        if opts.data_timeout:
            step = min(step, opts.data_timeout / 4)
        last_seen = time.monotonic()
        last_frames = -1
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            lst = self._listener
            frames = lst.frames if lst is not None else 0
            if frames != last_frames:
                last_frames = frames
                last_seen = now
                self._check_drift()
            if opts.max_age is not None and now - self._connected_at >= opts.max_age:
                return "max_age"
            subscribed = any(self._subs[ch] for ch in channels.PUBLIC_CHANNELS)
            if opts.data_timeout is not None and subscribed and now - last_seen >= opts.data_timeout:
                return "no data"


# -- logging guards ---------------------------------------------------------------------------


class _PicowsLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """picows' log calls, made safe: the message is formatted here (a bad format or bad
    arguments never produce a "--- Logging error ---"), network text in it is escaped, and
    tracebacks are kept for DEBUG level only (one line otherwise)."""

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except Exception:
            text = f"{msg!s} {args!r}"
        exc_info = kwargs.pop("exc_info", None)
        if exc_info and not self.logger.isEnabledFor(logging.DEBUG):
            exc = exc_info if isinstance(exc_info, BaseException) else None
            if exc_info is True:
                import sys

                exc = sys.exc_info()[1]
            if exc is not None:
                text += f": {type(exc).__name__}: {exc}"
            exc_info = None
        self.logger.log(level, "%s", safe_text(text, 500), exc_info=exc_info)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kwargs)

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=exc_info, **kwargs)

    def critical(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.CRITICAL, msg, *args, **kwargs)


_PICOWS_LOG: _PicowsLog | None = None


def _picows_logger() -> _PicowsLog:
    global _PICOWS_LOG
    if _PICOWS_LOG is None:
        _PICOWS_LOG = _PicowsLog(logging.getLogger("fastfeed.picows"), {})
    return _PICOWS_LOG


class _ExcInfoGuard(logging.Filter):
    """Repairs records whose ``exc_info`` is not a real exception (aiofastnet reports a
    failed TLS handshake with the exception *class*, which makes the stdlib print
    "--- Logging error ---" and ~50 lines): the exception is named in the message instead.
    Records that are fine pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        ei = record.exc_info
        if ei and not (
            isinstance(ei, tuple)
            and len(ei) == 3
            and isinstance(ei[1], BaseException)
            and (ei[2] is None or hasattr(ei[2], "tb_frame"))
        ):
            bad = ei[1] if isinstance(ei, tuple) and len(ei) == 3 else ei
            name = bad.__name__ if isinstance(bad, type) else type(bad).__name__
            try:
                msg = record.getMessage()
            except Exception:
                msg = str(record.msg)
            record.msg = f"{msg} ({name})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


_GUARD = _ExcInfoGuard()


def _install_log_guard() -> None:
    """Attach :class:`_ExcInfoGuard` to the loggers that report transport errors (idempotent)."""
    for name in ("asyncio", "aiofastnet"):
        lg = logging.getLogger(name)
        if _GUARD not in lg.filters:
            lg.addFilter(_GUARD)


class FeedOptionsKwargs(TypedDict, total=False):
    """The keyword arguments of :func:`connect`, for type checkers: the :class:`FeedOptions`
    fields plus :class:`Feed`'s callbacks and ``engine``. A misspelt option (``depht=20``)
    is a type error here and a ``TypeError`` at run time. Kept equal to ``FeedOptions`` and
    ``Feed.__init__`` by tests/test_typing.py."""

    depth: int
    trade_capacity: int
    max_frame: int
    request_timeout: float
    connect_timeout: float
    handshake_timeout: float
    ping_interval: float
    pong_timeout: float
    data_timeout: float | None
    max_age: float | None
    backoff_initial: float
    backoff_max: float
    backoff_factor: float
    jitter: float
    queue_size: int
    max_ticker_symbols: int
    timing: int
    shm_name: str | None
    shm_max_symbols: int
    shm_checksum: bool
    event_log: int
    trade_dedup_window: int
    drift_check: bool
    verify_tls: bool
    ssl_context: ssl.SSLContext | None
    on_event: Callable[[ConnectionEvent], None] | None
    on_ticker: Callable[[Ticker], None] | None
    on_order: Callable[[OrderUpdate], None] | None
    on_order_algo: Callable[[OrderAlgoUpdate], None] | None
    on_balance: Callable[[BalanceUpdate], None] | None
    on_raw: Callable[[bytes, int, int], None] | None
    on_frame: Callable[[FrameChange], None] | None
    sinks: Iterable[object]
    engine: Engine | None


def connect(
    url: str = DIGIFINEX_URL,
    api_key: str | None = None,
    secret: str | bytes | None = None,
    **options: Unpack[FeedOptionsKwargs],
) -> Feed:
    """``async with fastfeed.connect(url, api_key, secret, **options) as feed: ...``

    Returns the :class:`Feed` unconnected (this function is not a coroutine).
    ``async with`` starts it and closes it at the end; ``feed = await connect(...)`` (or
    ``await feed.start()``) connects it and leaves closing to you: ``await feed.close()``.

    ``options`` are :class:`FeedOptions` fields (``depth``, ``request_timeout``,
    ``ping_interval``, ``max_age``, ``verify_tls``...) plus the callbacks ``on_event``,
    ``on_ticker``, ``on_order``, ``on_order_algo``, ``on_balance``, ``on_raw``,
    ``on_frame``, ``sinks`` (:mod:`fastfeed.sinks`) and ``engine``.
    The URL, keys and callbacks are checked here (``TypeError``/``ValueError``).
    """
    opts: dict[str, Any] = dict(options)
    callbacks = {
        k: opts.pop(k)
        for k in (
            "on_event",
            "on_ticker",
            "on_order",
            "on_order_algo",
            "on_balance",
            "engine",
            "on_raw",
            "on_frame",
            "sinks",
        )
        if k in opts
    }
    unknown = set(opts) - set(FeedOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    return Feed(url, api_key, secret, options=FeedOptions(**opts), **callbacks)


# -- subscribe_* / unsubscribe_* from the channel table ----------------------------------------


def _channel_method(ch: channels.Channel, unsubscribe: bool) -> Callable[..., Any]:
    """``Feed.subscribe_<ch.client>`` (or ``unsubscribe_``): one argument named after what
    the channel lists (``symbols`` / ``currencies``, default ``()`` = all) or none."""
    verb = "unsubscribe" if unsubscribe else "subscribe"
    name = f"{verb}_{ch.client}"
    param = None if ch.names is None else ("currencies" if ch.names == "currency" else "symbols")
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD)]
    if param is not None:
        params.append(P(param, P.POSITIONAL_OR_KEYWORD, default=(), annotation="Iterable[str]"))
    sig = inspect.Signature(params, return_annotation="None")
    channel = ch.name

    async def method(*args: Any, **kwargs: Any) -> None:
        bound = sig.bind(*args, **kwargs)
        self = bound.arguments["self"]
        names = bound.arguments.get(param, ()) if param is not None else None
        if unsubscribe:
            await self._unsubscribe(channel, names)
        else:
            await self._subscribe(channel, names)

    what = f"``{param}`` (a list of {ch.names} names; empty = all)" if param is not None else "every symbol"
    if unsubscribe:
        doc = (
            f"Unsubscribe ``{channel}`` (``{ch.unsubscribe}``) for {what}. The names leave "
            "``subscriptions`` at once, whatever the server answers."
        )
    else:
        doc = (
            f"Subscribe ``{channel}`` (``{ch.subscribe}``) for {what}; returns once "
            "acknowledged"
            + (" (a private channel: needs api_key and secret)" if ch.private else "")
            + ". If the request fails, a name leaves ``subscriptions`` only if the server "
            "never acknowledged it: a subscription acknowledged earlier survives a refused, "
            "timed-out or lost repeat."
        )
    if param is not None:
        doc += (
            " The names are checked first (``protocol.validate_symbols``): a single ``str``, "
            "``bytes``, an empty, non-ASCII, over-long (> 32) or space-containing name raises "
            "``TypeError``/``ValueError`` and nothing is sent."
        )
    method.__name__ = name
    method.__qualname__ = f"Feed.{name}"
    method.__module__ = __name__
    method.__doc__ = doc + " (Generated from the channel table, ``fastfeed.channels``.)"
    method.__signature__ = sig  # type: ignore[attr-defined]
    return method


def _install_channel_methods(cls: type) -> None:
    for ch in channels.SUBSCRIBABLE:
        if ch.client is None:
            continue
        for unsubscribe in (False, True):
            m = _channel_method(ch, unsubscribe)
            setattr(cls, m.__name__, m)


_install_channel_methods(Feed)
