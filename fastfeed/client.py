"""The live client: ``fastfeed.connect(...)`` yields a :class:`Feed`.

One picows connection at a time feeds the :class:`~fastfeed.Engine` through the compiled
:class:`~fastfeed._listener.FeedListener`. The Feed adds what the network needs: request
ids and replies, auth, subscriptions (kept in a registry and replayed after every
reconnect), heartbeat, a no-data watchdog, proactive recycling before the server's ~2 h
limit, reconnects with capped exponential backoff and jitter, and bounded fan-out streams
of tickers and private pushes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, TypeVar

from picows import WSMsgType, ws_connect

from . import protocol
from ._engine import Engine
from ._listener import FeedListener
from .errors import FastfeedError
from .protocol import (
    DIGIFINEX_URL,
    AuthError,
    BalanceUpdate,
    ConnectionLost,
    OrderAlgoUpdate,
    OrderUpdate,
    RequestError,
    RequestTimeout,
    Ticker,
)

__all__ = [
    "DIGIFINEX_URL",
    "Feed",
    "FeedOptions",
    "ConnectionEvent",
    "Stream",
    "connect",
]

log = logging.getLogger("fastfeed.client")

T = TypeVar("T")
_ALL = "*"  # registry marker: subscribed to every symbol (empty list on the wire)


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
    max_ticker_symbols: int = 10_000  #: bound on ``latest_tickers`` (input cannot grow it forever)
    timing: int = 0  #: if > 0, keep [recv_ns, done_ns] of the last N data frames (see Feed.timings)
    shm_name: str | None = None  #: publish books and trades in shared memory (fastfeed.attach)
    shm_max_symbols: int = 1024
    shm_checksum: bool = False
    event_log: int = 0  #: if > 0, the engine keeps an hftbacktest-layout event ring of this size
    verify_tls: bool = True  #: verify the server certificate (wss://)
    ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """``kind`` is one of ``connected``, ``disconnected``, ``resubscribed``,
    ``reconnecting``, ``auth_failed``, ``resubscribe_failed``."""

    kind: str
    time_ns: int
    reason: str = ""
    attempt: int = 0
    delay: float = 0.0


class Stream(Generic[T]):
    """A bounded async iterator of pushes. A slow consumer never blocks the frame path:
    past ``maxlen`` items the oldest is dropped and counted in ``dropped``."""

    def __init__(self, maxlen: int, owner: list[Stream[T]]) -> None:
        self._q: collections.deque[T] = collections.deque(maxlen=maxlen)
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._owner = owner
        self.dropped = 0
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
    last_disconnect_reason: str = ""
    dropped: dict[str, int] = field(default_factory=dict)


class Feed:
    """A live DigiFinex v1 connection (use :func:`connect`).

    Market data lands in ``feed.engine``: ``feed.book(symbol)`` and ``feed.trades`` are the
    engine's zero-copy views. Tickers and private pushes are typed records, delivered to
    callbacks and to bounded async iterators (``feed.tickers()``, ``feed.orders()``,
    ``feed.order_algos()``, ``feed.balances()``).
    """

    def __init__(
        self,
        url: str = DIGIFINEX_URL,
        api_key: str | None = None,
        secret: str | None = None,
        *,
        options: FeedOptions | None = None,
        on_event: Callable[[ConnectionEvent], None] | None = None,
        on_ticker: Callable[[Ticker], None] | None = None,
        on_order: Callable[[OrderUpdate], None] | None = None,
        on_order_algo: Callable[[OrderAlgoUpdate], None] | None = None,
        on_balance: Callable[[BalanceUpdate], None] | None = None,
        engine: Engine | None = None,
    ) -> None:
        if (api_key is None) != (secret is None):
            raise ValueError("api_key and secret go together")
        self.url = url
        self.api_key = api_key
        self.__secret = protocol.Secret(secret) if secret is not None else None
        self.options = opts = options or FeedOptions()
        self._own_engine = engine is None
        self.engine = engine or Engine(depth=opts.depth, trade_capacity=opts.trade_capacity,
                                       max_frame=opts.max_frame, shm_name=opts.shm_name,
                                       shm_max_symbols=opts.shm_max_symbols,
                                       shm_checksum=opts.shm_checksum, event_log=opts.event_log)
        self.on_event = on_event
        self.on_ticker = on_ticker
        self.on_order = on_order
        self.on_order_algo = on_order_algo
        self.on_balance = on_balance
        #: latest ticker per symbol
        self.latest_tickers: dict[str, Ticker] = {}
        self.authenticated = False
        self._subs: dict[str, set[str]] = {ch: set() for ch in protocol.PUBLIC_CHANNELS + protocol.PRIVATE_CHANNELS}
        self._streams: dict[str, list[Stream[Any]]] = {k: [] for k in ("ticker", "order", "order_algo", "balance")}
        self._stats = _Stats()
        self._transport: Any = None
        self._listener: FeedListener | None = None
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._next_id = 1
        self._ready = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._first_error: BaseException | None = None
        self._first_done: asyncio.Future[None] | None = None
        self._disconnect_reason = ""
        self._connected_at = 0.0
        self._ever_ready = False
        self._last_run_was_healthy = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> Feed:
        """Connect (retrying with backoff up to ``connect_timeout``), authenticate when keys
        were given, and return once ready. Raises :class:`ConnectionError` or
        :class:`~fastfeed.protocol.AuthError`."""
        if self._supervisor is not None:
            return self
        loop = asyncio.get_running_loop()
        self._first_done = loop.create_future()
        self._supervisor = asyncio.create_task(self._supervise(), name="fastfeed-supervisor")
        try:
            await asyncio.wait_for(asyncio.shield(self._first_done), self.options.connect_timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise ConnectionError(
                f"could not connect to {self.url} within {self.options.connect_timeout:g} s"
                + (f": {self._disconnect_reason}" if self._disconnect_reason else "")
            ) from None
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Disconnect, stop every task and end every stream. Idempotent."""
        self._closing = True
        if self._transport is not None:
            self._transport.disconnect()
        sup, self._supervisor = self._supervisor, None
        if sup is not None and not sup.done():
            sup.cancel()
            try:
                await sup
            except (asyncio.CancelledError, Exception):
                pass
        self._fail_pending(ConnectionLost("feed closed"))
        for streams in self._streams.values():
            for s in list(streams):
                s.close()
        if self._own_engine:
            self.engine.close()  # unlinks a shared-memory segment it created

    async def __aenter__(self) -> Feed:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "connected" if self._ready.is_set() else "disconnected"
        key = f" key={self.api_key[:4]}…" if self.api_key else ""
        return f"<Feed {self.url} {state}{key}>"

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    # -- data --------------------------------------------------------------------------------

    def book(self, symbol: str):
        """The engine's book of ``symbol`` (zero-copy views; see :class:`~fastfeed.Book`),
        registered (empty, not live) if the engine does not know it yet."""
        return self.engine.book(symbol, create=True)

    @property
    def trades(self):
        """The engine's :class:`~fastfeed.TradeRing` (all symbols)."""
        return self.engine.trades

    def tickers(self) -> Stream[Ticker]:
        """A new bounded async iterator of every ticker / all_ticker record."""
        return Stream(self.options.queue_size, self._streams["ticker"])

    def orders(self) -> Stream[OrderUpdate]:
        return Stream(self.options.queue_size, self._streams["order"])

    def order_algos(self) -> Stream[OrderAlgoUpdate]:
        return Stream(self.options.queue_size, self._streams["order_algo"])

    def balances(self) -> Stream[BalanceUpdate]:
        return Stream(self.options.queue_size, self._streams["balance"])

    def timings(self) -> Any:
        """``(n, 2)`` int64 array of ``[recv_ns, done_ns]`` for the last data frames of the
        current connection (wall clock ns; ``done`` = book/ring updated). Needs the
        ``timing=N`` option; empty otherwise."""
        import numpy as np

        lst = self._listener
        return lst.timings() if lst is not None else np.zeros((0, 2), dtype=np.int64)

    @property
    def subscriptions(self) -> dict[str, list[str]]:
        """Channel -> subscribed symbols (``["*"]`` = all), as replayed after reconnects."""
        return {ch: sorted(s) for ch, s in self._subs.items() if s}

    @property
    def stats(self) -> dict[str, Any]:
        st = self._stats
        dropped = dict(st.dropped)
        for name, streams in self._streams.items():
            dropped[name] = dropped.get(name, 0) + sum(s.dropped for s in streams)
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
            "unknown_pushes": st.unknown_pushes,
            "callback_errors": st.callback_errors,
            "dropped": dropped,
            "pending_requests": len(self._pending),
            "engine": self.engine.stats,
        }
        return out

    # -- requests ----------------------------------------------------------------------------

    async def request(self, method: str, params: list[Any] | None = None,
                      timeout: float | None = None) -> Any:
        """Send one request on the current connection and return its ``result``.

        Raises :class:`RequestError` (non-null ``error``), :class:`RequestTimeout`,
        :class:`ConnectionLost` (closed before the reply) or :class:`ConnectionError`
        (not connected)."""
        tr = self._transport
        if tr is None:
            raise ConnectionError("not connected")
        req_id = self._next_id
        self._next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = (method, fut)
        self._stats.requests += 1
        try:
            tr.send(WSMsgType.TEXT, protocol.encode_request(req_id, method, params))
            return await asyncio.wait_for(fut, timeout if timeout is not None else self.options.request_timeout)
        except asyncio.TimeoutError:
            self._stats.request_timeouts += 1
            raise RequestTimeout(f"no reply to {method} (id {req_id}) within "
                                 f"{timeout if timeout is not None else self.options.request_timeout:g} s") from None
        finally:
            self._pending.pop(req_id, None)

    async def _request_when_ready(self, method: str, params: list[Any]) -> Any:
        """A request that survives a reconnect in the middle (retried on the new
        connection, at most three times)."""
        for attempt in range(3):
            await self._wait_ready()
            try:
                return await self.request(method, params)
            except ConnectionLost:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _wait_ready(self) -> None:
        if self._closing:
            raise ConnectionError("feed is closed")
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), self.options.connect_timeout)
            except asyncio.TimeoutError:
                raise ConnectionError(f"not connected to {self.url}") from None

    async def ping(self) -> str:
        """``server.ping`` -> ``"pong"``."""
        await self._wait_ready()
        return await self.request("server.ping")

    async def server_time(self) -> int:
        """``server.time`` -> integer seconds since the epoch."""
        await self._wait_ready()
        return int(await self.request("server.time"))

    async def auth(self) -> None:
        """``server.auth`` with the feed's keys (done automatically on every connect)."""
        if self.api_key is None or self.__secret is None:
            raise AuthError("server.auth", None, "no api_key/secret given")
        params = protocol.auth_params(self.api_key, self.__secret, time.time_ns() // 1_000_000)
        try:
            await self.request("server.auth", params)
        except RequestError as exc:
            self.authenticated = False
            raise AuthError("server.auth", exc.code, exc.message) from None
        self.authenticated = True

    # -- subscriptions -----------------------------------------------------------------------

    async def _subscribe(self, channel: str, symbols: Iterable[str] | None) -> None:
        if channel in protocol.PRIVATE_CHANNELS and self.api_key is None:
            raise AuthError(f"{channel}.subscribe", None, "private channels need api_key and secret")
        syms = [s.upper() for s in (symbols or [])]
        reg = self._subs[channel]
        added = {_ALL} if not syms else set(syms) - reg
        reg |= added
        try:
            for chunk in protocol.chunk_symbols(syms):
                await self._request_when_ready(f"{channel}.subscribe", chunk)
        except RequestError as exc:
            reg -= added
            if channel in protocol.PRIVATE_CHANNELS:
                raise AuthError(exc.method, exc.code, exc.message) from None
            raise
        except BaseException:
            reg -= added
            raise

    async def _unsubscribe(self, channel: str, symbols: Iterable[str] | None) -> None:
        syms = [s.upper() for s in (symbols or [])]
        reg = self._subs[channel]
        if syms:
            reg -= set(syms)
        else:
            reg.clear()
        if self._transport is None:
            return  # nothing to tell a server we are not connected to
        for chunk in protocol.chunk_symbols(syms):
            await self._request_when_ready(f"{channel}.unsubscribe", chunk)

    async def subscribe_trades(self, symbols: Iterable[str] = ()) -> None:
        """Subscribe ``trades`` for ``symbols`` (empty = all); returns once acknowledged."""
        await self._subscribe("trades", symbols)

    async def subscribe_depth(self, symbols: Iterable[str] = ()) -> None:
        await self._subscribe("depth", symbols)

    async def subscribe_ticker(self, symbols: Iterable[str] = ()) -> None:
        await self._subscribe("ticker", symbols)

    async def subscribe_all_ticker(self) -> None:
        await self._subscribe("all_ticker", None)

    async def subscribe_orders(self, symbols: Iterable[str] = ()) -> None:
        await self._subscribe("order", symbols)

    async def subscribe_order_algo(self, symbols: Iterable[str] = ()) -> None:
        await self._subscribe("order_algo", symbols)

    async def subscribe_balance(self, currencies: Iterable[str] = ()) -> None:
        await self._subscribe("balance", currencies)

    async def unsubscribe_trades(self, symbols: Iterable[str] = ()) -> None:
        await self._unsubscribe("trades", symbols)

    async def unsubscribe_depth(self, symbols: Iterable[str] = ()) -> None:
        await self._unsubscribe("depth", symbols)

    async def unsubscribe_ticker(self, symbols: Iterable[str] = ()) -> None:
        await self._unsubscribe("ticker", symbols)

    async def unsubscribe_all_ticker(self) -> None:
        await self._unsubscribe("all_ticker", None)

    async def unsubscribe_orders(self, symbols: Iterable[str] = ()) -> None:
        await self._unsubscribe("order", symbols)

    async def unsubscribe_order_algo(self, symbols: Iterable[str] = ()) -> None:
        await self._unsubscribe("order_algo", symbols)

    async def unsubscribe_balance(self, currencies: Iterable[str] = ()) -> None:
        await self._unsubscribe("balance", currencies)

    async def _resubscribe(self) -> None:
        for channel, reg in self._subs.items():
            if not reg:
                continue
            if channel in protocol.PRIVATE_CHANNELS and not self.authenticated:
                continue
            syms = [] if _ALL in reg else sorted(reg)
            for chunk in protocol.chunk_symbols(syms):
                await self.request(f"{channel}.subscribe", chunk)

    # -- frame path callbacks (called by the listener) ---------------------------------------

    def _on_message(self, msg: Any, recv_ns: int) -> None:
        if not isinstance(msg, dict):
            self._stats.unknown_pushes += 1
            return
        method = msg.get("method")
        if method is None:
            self._on_reply(msg)
            return
        params = msg.get("params")
        if method == "ticker.update" or method == "all_ticker.update":
            latest = self.latest_tickers
            cap = self.options.max_ticker_symbols
            for t in protocol.parse_tickers(params, recv_ns, method == "all_ticker.update"):
                if t.symbol in latest or len(latest) < cap:
                    latest[t.symbol] = t
                else:
                    self._stats.dropped["ticker_symbols"] = self._stats.dropped.get("ticker_symbols", 0) + 1
                self._dispatch("ticker", self.on_ticker, t)
        elif method == "order.update":
            for o in protocol.parse_orders(params, recv_ns):
                self._dispatch("order", self.on_order, o)
        elif method == "order_algo.update":
            for a in protocol.parse_order_algos(params, recv_ns):
                self._dispatch("order_algo", self.on_order_algo, a)
        elif method == "balance.update":
            for b in protocol.parse_balances(params, recv_ns):
                self._dispatch("balance", self.on_balance, b)
        else:
            self._stats.unknown_pushes += 1
            log.debug("unhandled push method %r", method)

    def _dispatch(self, kind: str, callback: Callable[[Any], None] | None, item: Any) -> None:
        for s in self._streams[kind]:
            s.put(item)
        if callback is not None:
            try:
                callback(item)
            except Exception:  # a user callback must never break the frame path
                self._stats.callback_errors += 1
                log.exception("%s callback raised", kind)

    def _on_reply(self, msg: dict[str, Any]) -> None:
        req_id = msg.get("id")
        entry = self._pending.get(req_id) if isinstance(req_id, int) else None
        if entry is None:
            self._stats.unmatched_replies += 1
            log.debug("reply for an id not in flight: %r", req_id)
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
        log.warning("rejected frame: %s", exc)

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for _method, fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: the waiter may be gone already

    # -- connection supervision ---------------------------------------------------------------

    def _emit(self, kind: str, reason: str = "", attempt: int = 0, delay: float = 0.0) -> None:
        ev = ConnectionEvent(kind, time.time_ns(), reason, attempt, delay)
        log.info("%s%s", kind, f": {reason}" if reason else "")
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:
                self._stats.callback_errors += 1
                log.exception("on_event callback raised")

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
        base = min(o.backoff_max, o.backoff_initial * (o.backoff_factor ** attempt))
        return max(0.0, base * (1.0 + random.uniform(-o.jitter, o.jitter)))

    def _first_result(self, exc: BaseException | None) -> None:
        fd = self._first_done
        if fd is not None and not fd.done():
            if exc is None:
                fd.set_result(None)
            else:
                fd.set_exception(exc)

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            fatal = await self._one_connection()
            if self._closing:
                break
            if fatal is not None and not self._ever_ready:
                self._first_result(fatal)  # a refused auth on the first connect is final
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

    async def _one_connection(self) -> BaseException | None:
        """One connection's life. Returns a fatal error (auth refused) or None."""
        self._last_run_was_healthy = False
        opts = self.options
        disconnected = asyncio.get_running_loop().create_future()

        def on_disconnected(code: Any, reason: str) -> None:
            if not disconnected.done():
                disconnected.set_result((code, reason))

        def factory() -> FeedListener:
            lst = FeedListener(self.engine, self._on_message, self._on_frame_error, on_disconnected)
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
                logger_name="fastfeed.picows",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._stats.connect_failures += 1
            self._disconnect_reason = f"connect failed: {type(exc).__name__}: {exc}"
            self._stats.last_disconnect_reason = self._disconnect_reason
            log.debug("connect to %s failed: %r", self.url, exc)
            return None
        self._transport = transport
        self._next_id = 1
        self._connected_at = time.monotonic()
        self.engine.reset_books()  # no stale level survives a reconnect
        self.authenticated = False
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
            except (RequestError, RequestTimeout, ConnectionLost) as exc:
                self._emit("resubscribe_failed", str(exc))
                setup_ok = False
                reason = f"setup failed: {exc}"
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
                    if t.done() and not t.cancelled() and t.result():
                        reason = t.result()
                if disconnected.done() and reason == "closed by server":
                    code, text = disconnected.result()
                    if code is not None:
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
            self._transport = None
            transport.disconnect()
            try:
                await asyncio.wait_for(transport.wait_disconnected(), 5.0)
            except (asyncio.TimeoutError, Exception):
                pass
            self._fail_pending(ConnectionLost(f"connection lost: {reason}"))
            self._stats.disconnects += 1
            self._disconnect_reason = reason
            self._stats.last_disconnect_reason = reason
            if reason == "max_age":
                self._stats.recycles += 1
            self._emit("disconnected", reason)
        return fatal

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
            except ConnectionLost:
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
            if opts.max_age is not None and now - self._connected_at >= opts.max_age:
                return "max_age"
            subscribed = any(self._subs[ch] for ch in protocol.PUBLIC_CHANNELS)
            if opts.data_timeout is not None and subscribed and now - last_seen >= opts.data_timeout:
                return "no data"


def connect(
    url: str = DIGIFINEX_URL,
    api_key: str | None = None,
    secret: str | None = None,
    **options: Any,
) -> Feed:
    """``async with fastfeed.connect(url, api_key, secret, **options) as feed: ...``

    ``options`` are :class:`FeedOptions` fields (``depth``, ``request_timeout``,
    ``ping_interval``, ``max_age``, ``verify_tls``...) plus the callbacks ``on_event``,
    ``on_ticker``, ``on_order``, ``on_order_algo``, ``on_balance`` and ``engine``.
    """
    callbacks = {k: options.pop(k) for k in ("on_event", "on_ticker", "on_order",
                                             "on_order_algo", "on_balance", "engine")
                 if k in options}
    unknown = set(options) - set(FeedOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    return Feed(url, api_key, secret, options=FeedOptions(**options), **callbacks)
