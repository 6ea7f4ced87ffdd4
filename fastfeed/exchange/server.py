"""The local DigiFinex-compatible exchange: a picows WebSocket server speaking the spot v1
API over loopback, driven by the simulated market (or by a capture file).

Data path: the market produces pushes as JSON bytes; each is zlib-compressed once and
wrapped in a complete WebSocket frame once, then routed to every subscribed connection. A
connection receives a whole batch in a single ``transport.write`` (server frames are not
masked, so pre-built frames can be concatenated). Requests and replies go through the same
path, so ordering on one connection is the order of events in the server.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import os
import random
import time
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import orjson
from picows import (
    WSCloseCode,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from .. import channels as _channels
from ..errors import NoMarket, RequestRefused
from .book import SimBook
from .config import ExchangeConfig, SymbolSpec
from .market import CH_DEPTH, CH_TICKER, CH_TRADES, CHANNELS, N_CHANNELS, Frame, Market, TickerState
from .private import AccountSim
from .wire import (
    OP_BINARY,
    OP_TEXT,
    ErrorCode,
    encode_json,
    error_envelope,
    reply_envelope,
    sign_auth,
    ws_frame,
    zlib_compress,
)

__all__ = ["PRIVATE_CHANNELS", "Connection", "Exchange", "Faults"]

log = logging.getLogger("fastfeed.exchange")

#: Private channels (subscription needs ``server.auth`` first), from the channel table.
PRIVATE_CHANNELS = _channels.PRIVATE_CHANNELS

#: A routed, ready-to-write frame: (routing key, clean flag, complete WebSocket frame).
WireFrame = tuple[int, bool, bytes]

_VALID_CLOSE = set(range(1000, 1004)) | set(range(1007, 1012)) | set(range(3000, 5000))
_SAMPLE_DEPTH = (
    b'{"method":"depth.update","params":[false,{"asks":[["11702.81","0.001"],["11699.92","0.008"],'
    b'["11788.73","0"],["11787.24","0"]],"bids":[["11642.72","13.1172"],["11627.05","2.1258"],'
    b'["11621.42","0"],["11620.87","0"]]},"BTC_USDT"],"id":null}'
)
_conn_ids = itertools.count(1)


class Connection(WSListener):
    """Server side of one client connection: subscriptions, auth state, timers, writes.

    Attributes useful to tests: ``id``, ``path``, ``account`` (api key after auth),
    ``frames_sent``, ``bytes_sent``, ``requests``, ``stalled``, ``replay_done``
    (an :class:`asyncio.Event` set when a served capture has been sent completely),
    ``closed`` (an :class:`asyncio.Event` set on disconnect).
    """

    def __init__(self, exchange: Exchange, request: WSUpgradeRequest) -> None:
        super().__init__()
        self.exchange = exchange
        self.id = next(_conn_ids)
        self.path = request.path.decode("latin-1") if request is not None else ""
        self.transport: WSTransport | None = None
        nsym = exchange.market.nsym if exchange.market is not None else 0
        self.mask = bytearray(N_CHANNELS * nsym)
        self.has_public = False
        self.all_ticker = False
        self.account: str | None = None
        self.private: dict[str, set[str]] = {ch: set() for ch in PRIVATE_CHANNELS}
        self.stalled = False
        self.backlog: list[bytes] = []
        self.paused = False
        self.connected_at = 0.0
        self.last_rx = 0.0
        self.frames_sent = 0
        self.bytes_sent = 0
        #: with ``ExchangeConfig(send_log=True)``: one ``(first_frame, frames, time_ns)`` per
        #: socket write, so a benchmark can tell when frame k left the exchange
        self.send_log: list[tuple[int, int, int]] | None = [] if exchange.config.send_log else None
        self.requests = 0
        self.replay_task: asyncio.Task[None] | None = None
        self.replay_done = asyncio.Event()
        self.closed = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._timer: asyncio.TimerHandle | None = None
        self._frag: list[bytes] | None = None
        self._write: Callable[[bytes], None] | None = None
        self._is_closing: Callable[[], bool] | None = None

    # ------------------------------------------------------------------ picows callbacks
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        ut = transport.underlying_transport
        try:
            ut.set_write_buffer_limits(high=self.exchange.config.write_buffer_high)
        except Exception:  # pragma: no cover - transports without flow-control knobs
            pass
        self._write = ut.write
        self._is_closing = ut.is_closing
        loop = asyncio.get_running_loop()
        self.connected_at = self.last_rx = loop.time()
        self.exchange._on_connect(self)
        self._arm(loop)

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        self.last_rx = asyncio.get_running_loop().time()
        mt = frame.msg_type
        if mt is WSMsgType.TEXT or mt is WSMsgType.BINARY:
            if frame.fin:
                self.exchange._handle_request(self, frame.get_payload_as_bytes())
            else:
                self._frag = [frame.get_payload_as_bytes()]
        elif mt is WSMsgType.CONTINUATION:
            if self._frag is None:
                return
            self._frag.append(frame.get_payload_as_bytes())
            if sum(map(len, self._frag)) > self.exchange.config.max_request_size:
                self._frag = None
                self.close(int(WSCloseCode.MESSAGE_TOO_BIG.value), "request too large")
            elif frame.fin:
                data, self._frag = b"".join(self._frag), None
                self.exchange._handle_request(self, data)
        elif mt is WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif mt is WSMsgType.CLOSE:
            try:
                code = frame.get_close_code()
                value = code.value if isinstance(code, WSCloseCode) else int(code)
            except ValueError:
                value = 1000
            if not transport.is_close_frame_sent:
                transport.send_close(WSCloseCode(value) if value in _VALID_CLOSE else WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.replay_task is not None and not self.replay_task.done():
            self.replay_task.cancel()
        self.backlog.clear()
        self._resumed.set()
        self.exchange._on_disconnect(self)
        self.closed.set()

    def pause_writing(self) -> None:
        self.paused = True
        self._resumed.clear()
        self.exchange._backpressured.add(self)

    def resume_writing(self) -> None:
        self.paused = False
        self._resumed.set()
        self.exchange._backpressured.discard(self)
        self.exchange._wake.set()

    # ------------------------------------------------------------------ timers
    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        cfg = self.exchange.config
        deadlines = []
        if cfg.idle_timeout is not None:
            deadlines.append(self.last_rx + cfg.idle_timeout)
        if cfg.max_connection_age is not None:
            deadlines.append(self.connected_at + cfg.max_connection_age)
        if deadlines:
            self._timer = loop.call_at(min(deadlines), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.is_disconnected:
            return
        cfg = self.exchange.config
        loop = asyncio.get_running_loop()
        now = loop.time()
        if cfg.max_connection_age is not None and now >= self.connected_at + cfg.max_connection_age:
            log.info("connection %d: age limit reached, closing", self.id)
            self.close(1000, "connection age limit")
        elif cfg.idle_timeout is not None and now >= self.last_rx + cfg.idle_timeout:
            log.info("connection %d: idle for %.1f s, closing", self.id, now - self.last_rx)
            self.close(1000, "idle timeout")
        else:
            self._arm(loop)

    # ------------------------------------------------------------------ writing
    @property
    def is_disconnected(self) -> bool:
        t = self.transport
        return t is None or t.is_disconnected

    def write(self, data: bytes, frames: int = 1) -> None:
        """Write complete WebSocket frame bytes (buffered while stalled)."""
        t = self.transport
        if t is None or t.is_disconnected or t.is_close_frame_sent or self._is_closing():  # type: ignore[misc]
            return
        if self.stalled:
            self.backlog.append(data)
            return
        self._write(data)  # type: ignore[misc]
        if self.send_log is not None:
            self.send_log.append((self.frames_sent, frames, time.time_ns()))
        self.frames_sent += frames
        self.bytes_sent += len(data)

    def send_json(self, payload: bytes, *, reply: bool = False) -> None:
        """Send one JSON message: zlib BINARY, or plain TEXT for replies if configured."""
        if reply and self.exchange.config.text_replies:
            self.write(ws_frame(OP_TEXT, payload))
        else:
            self.write(ws_frame(OP_BINARY, zlib_compress(payload, self.exchange.config.compress_level)))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a CLOSE frame and disconnect (pending output is flushed first)."""
        t = self.transport
        if t is None or t.is_disconnected:
            return
        self.stalled = False
        if self.backlog:
            data, self.backlog = b"".join(self.backlog), []
            self.write(data)
        if not t.is_close_frame_sent:
            t.send_close(WSCloseCode(code), reason.encode())
        t.disconnect()

    def drop(self, graceful: bool = False) -> None:
        """Disconnect without a CLOSE frame (``graceful=False``: TCP abort, data lost)."""
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.disconnect(graceful)

    def _update_public(self) -> None:
        self.has_public = any(self.mask)
        self.exchange._subs_changed()

    def subscribed(self, channel: str, symbol: str) -> bool:
        """Whether this connection currently receives ``channel`` pushes of ``symbol``."""
        m = self.exchange.market
        if m is None or symbol.upper() not in m.index:
            return False
        return bool(self.mask[CHANNELS.index(channel) * m.nsym + m.index[symbol.upper()]])

    async def wait_resumed(self) -> None:
        await self._resumed.wait()


class Faults:
    """Fault injection. Switches (attributes) and actions (methods), all usable from tests
    while the exchange runs; ``conn=None`` applies an action to every connection."""

    def __init__(self, exchange: Exchange) -> None:
        self._ex = exchange
        #: Send every trades push twice (clients must de-duplicate by id).
        self.duplicate_trades = False
        #: Answer the next N WebSocket upgrade requests with HTTP 502 (as seen live).
        self.reject_handshakes = 0
        self._oversized: dict[tuple[int, bool], bytes] = {}
        self._periodic: list[asyncio.Task[None]] = []

    @property
    def shuffle_levels(self) -> bool:
        """Emit depth levels in random order (live: snapshots descending, increments
        upserts-then-deletions). Pre-generated cycles are built with the value at start."""
        m = self._ex.market
        return bool(m is not None and m.shuffle_levels)

    @shuffle_levels.setter
    def shuffle_levels(self, value: bool) -> None:
        if self._ex.market is not None:
            self._ex.market.shuffle_levels = bool(value)

    def _targets(self, conn: Connection | None) -> list[Connection]:
        return [conn] if conn is not None else list(self._ex.connections)

    def drop(self, conn: Connection | None = None, graceful: bool = False) -> None:
        """Drop connections without a CLOSE frame (the client sees 1006)."""
        for c in self._targets(conn):
            c.drop(graceful)

    def kill_mid_frame(self, conn: Connection | None = None) -> None:
        """Write the first half of a depth push's WebSocket frame, then abort the TCP
        connection: the client sees a frame cut off in the middle (a killed server)."""
        wire = ws_frame(OP_BINARY, zlib_compress(self._sample()))
        for c in self._targets(conn):
            t = c.transport
            if t is None or t.is_disconnected:
                continue
            t.underlying_transport.write(wire[: len(wire) // 2])
            t.disconnect(False)

    def stall(self, seconds: float | None = None, conn: Connection | None = None) -> None:
        """Stop writing anything (pushes and replies are held back, the socket stays open)
        until :meth:`unstall` or for ``seconds``."""
        loop = asyncio.get_running_loop()
        for c in self._targets(conn):
            c.stalled = True
            if seconds is not None:
                loop.call_later(seconds, self.unstall, c)

    def unstall(self, conn: Connection | None = None) -> None:
        """Resume writing and flush what was held back, in order."""
        for c in self._targets(conn):
            if not c.stalled:
                continue
            c.stalled = False
            if c.backlog:
                data, c.backlog = b"".join(c.backlog), []
                c.write(data)

    def _raw(self, conn: Connection | None, opcode: int, payload: bytes) -> None:
        wire = ws_frame(opcode, payload)
        for c in self._targets(conn):
            c.write(wire)

    def _sample(self) -> bytes:
        m = self._ex.market
        return m.snapshot(0)[2] if m is not None else _SAMPLE_DEPTH

    def send_truncated(self, conn: Connection | None = None) -> None:
        """Send a BINARY frame holding the first half of a valid zlib stream."""
        z = zlib_compress(self._sample())
        self._raw(conn, OP_BINARY, z[: max(3, len(z) // 2)])

    def send_garbage(self, conn: Connection | None = None, size: int = 64) -> None:
        """Send a BINARY frame of random bytes that is neither zlib nor JSON."""
        self._raw(conn, OP_BINARY, b"\xff" + os.urandom(max(0, size - 1)))

    def send_oversized(
        self, conn: Connection | None = None, size: int = 9 * 1024 * 1024, compressed: bool = True
    ) -> None:
        """Send a depth push of ``size`` bytes of JSON (whitespace-padded): by default as a
        small zlib frame that inflates beyond the engine's 8 MiB cap, else as plain TEXT."""
        key = (size, compressed)
        data = self._oversized.get(key)
        if data is None:
            body = _SAMPLE_DEPTH
            text = b"{" + b" " * max(0, size - len(body)) + body[1:]
            data = self._oversized[key] = zlib.compress(text, 6) if compressed else text
        self._raw(conn, OP_BINARY if compressed else OP_TEXT, data)

    def every(self, interval: float, action: str, /, **kwargs: Any) -> asyncio.Task[None]:
        """Run ``action`` (a method name of this object) every ``interval`` seconds until
        the exchange closes. Returns the task."""
        fn = getattr(self, action)

        async def run() -> None:
            while True:
                await asyncio.sleep(interval)
                fn(**kwargs)

        task = asyncio.get_running_loop().create_task(run())
        self._periodic.append(task)
        return task


class Exchange:
    """A DigiFinex spot v1 compatible WebSocket server on loopback::

        async with Exchange(ExchangeConfig(rate=1000, seed=1)) as ex:
            url = ex.url               # ws://127.0.0.1:<port>/ws/v1/
            ex.faults.stall()          # fault switches, see Faults
            bids, asks = ex.book("BTC_USDT")

    Keyword arguments override fields of ``config`` (or of the default config).
    Everything runs on the event loop that calls :meth:`start`; no threads.
    """

    def __init__(self, config: ExchangeConfig | None = None, **overrides: Any) -> None:
        if config is None:
            config = ExchangeConfig(**overrides)
        elif overrides:
            config = config.replace(**overrides)
        self.config = config
        self.market: Market | None = Market(config) if config.capture is None else None
        self.faults = Faults(self)
        self.connections: set[Connection] = set()
        self.stats: dict[str, int] = {
            "connections_total": 0,
            "requests": 0,
            "error_replies": 0,
            "market_frames": 0,
        }
        self.host = config.host
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._paused = False
        self._wake = asyncio.Event()
        self._backpressured: set[Connection] = set()
        self._accounts: dict[str, AccountSim] = {}
        self._specs: dict[str, SymbolSpec] = {s.name: s for s in config.specs()}
        self._union: bytearray | None = None
        self._conn_event = asyncio.Event()
        self._cycle: list[WireFrame] | None = None
        #: per cycle position: None (send the pre-built frame) or what to render at send
        #: time: (CH_TRADES, symbol, ((id, price, amount, type), ...)) / (CH_TICKER, symbol, state)
        self._cycle_dyn: list[tuple[int, int, Any] | None] = []
        self._cycle_pos = 0
        self._cycle_sent = 0
        self._cycle_wraps = 0
        self._cycle_ids = 0
        self._cycle_tick_pos: list[list[int]] = []
        self._cycle_tick_state: list[list[TickerState]] = []
        self._cycle_tick_first: list[TickerState] = []
        self._cycle_tick_end: list[TickerState] = []
        self._generated = 0
        self._capture: Any = None
        self._capture_rows: tuple[list[int], list[int], list[int], list[int]] | None = None
        nsym = self.market.nsym if self.market is not None else 0
        self._nsym = nsym
        self._trades_lo, self._trades_hi = CH_TRADES * nsym, (CH_TRADES + 1) * nsym
        self._handlers = self._build_handlers()

    def _build_handlers(self) -> dict[str, Callable[[Connection, Any, list[Any]], None]]:
        """The method handlers, from the channel table (``fastfeed.channels``): a plain
        request is served by ``_h_<method>`` (``server.ping`` -> ``_h_ping``); a channel
        by the handlers of its ``route`` (market: per-symbol routing of the simulated
        market, broadcast: all_ticker, private: per account). A channel nothing here
        generates (a public one the market does not simulate) is answered
        ``METHOD_NOT_FOUND``."""
        handlers: dict[str, Callable[[Connection, Any, list[Any]], None]] = {}
        for ch in _channels.CHANNELS:
            if ch.route == "request":
                assert ch.request is not None
                handlers[ch.request] = getattr(self, "_h_" + ch.request.split(".", 1)[1])
                continue
            assert ch.subscribe is not None and ch.unsubscribe is not None
            if ch.route == "market":
                if ch.name not in CHANNELS:
                    continue
                sub, unsub = (self._public_handler(CHANNELS.index(ch.name), on) for on in (True, False))
            elif ch.route == "broadcast" and ch.name == "all_ticker":  # the one broadcast source
                sub, unsub = self._h_all_ticker_sub, self._h_all_ticker_unsub
            elif ch.route == "private":
                sub, unsub = self._private_handler(ch.name, True), self._private_handler(ch.name, False)
            else:  # nothing here generates it (tests/test_channels.py checks the routes)
                continue
            handlers[ch.subscribe], handlers[ch.unsubscribe] = sub, unsub
        return handlers

    # ------------------------------------------------------------------ lifetime
    @property
    def url(self) -> str:
        """``ws://host:port/ws/v1/`` once started."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{self.config.path}"

    async def start(self) -> Exchange:
        """Build the pre-generated cycle or load the capture (if configured), then listen."""
        cfg = self.config
        if cfg.capture is not None:
            self._load_capture()
        elif cfg.pregenerate:
            self._build_cycle()
        self._server = await ws_create_server(
            self._listener_factory,
            cfg.host,
            cfg.port,
            enable_auto_pong=False,
            max_frame_size=cfg.max_request_size,
            use_aiofastnet=cfg.use_aiofastnet,
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        if self.market is not None:
            if cfg.rate != 0:
                self._tasks.append(loop.create_task(self._pump(), name="fastfeed-exchange-pump"))
            if cfg.snapshot_interval and self._cycle is None:
                self._tasks.append(
                    loop.create_task(self._snapshot_loop(), name="fastfeed-exchange-snapshots")
                )
            self._tasks.append(loop.create_task(self._all_ticker_loop(), name="fastfeed-exchange-all-ticker"))
        self._tasks.append(loop.create_task(self._private_loop(), name="fastfeed-exchange-private"))
        log.info(
            "exchange listening on %s (%s)",
            self.url,
            "capture " + str(cfg.capture)
            if cfg.capture is not None
            else f"{len(cfg.symbols)} symbols, rate {cfg.rate}, seed {self.market.seed if self.market else None}",
        )
        return self

    async def close(self) -> None:
        """Stop the timers, close every connection (1001) and the listening socket."""
        tasks = self._tasks + self.faults._periodic
        self._tasks, self.faults._periodic = [], []
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        conns = list(self.connections)
        for c in conns:
            c.close(1001, "server shutdown")
        if conns:
            waits = [asyncio.ensure_future(c.closed.wait()) for c in conns]
            _, pending = await asyncio.wait(waits, timeout=2.0)
            for w in pending:
                w.cancel()
            for c in conns:
                if not c.closed.is_set():
                    c.drop(graceful=False)
            if pending:
                await asyncio.wait([asyncio.ensure_future(c.closed.wait()) for c in conns], timeout=1.0)
        replays = [c.replay_task for c in conns if c.replay_task is not None]
        for t in replays:
            t.cancel()
        if replays:
            await asyncio.gather(*replays, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._capture is not None:
            self._capture.close()
            self._capture = None

    async def __aenter__(self) -> Exchange:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def serve_forever(self) -> None:
        """Run until cancelled (then close)."""
        if self._server is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    # ------------------------------------------------------------------ control
    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Stop generating market, ticker, snapshot and private traffic (requests are
        still answered). Takes effect immediately: nothing more is generated after it."""
        self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        self._paused = False
        self._wake.set()

    def step(self, n: int = 1) -> int:
        """Generate ``n`` market pushes now and route them (also when paused or
        ``rate=0``). Returns the number of pushes generated."""
        frames = self._next_frames(n)
        self._broadcast(frames)
        return self._generated

    async def wait_for_connections(self, n: int = 1, timeout: float = 5.0) -> None:
        """Wait until at least ``n`` clients are connected."""

        async def wait() -> None:
            while len(self.connections) < n:
                self._conn_event.clear()
                await self._conn_event.wait()

        await asyncio.wait_for(wait(), timeout)

    def account(self, api_key: str) -> AccountSim | None:
        """The private simulation of an account (after someone authenticated with it)."""
        return self._accounts.get(api_key)

    # ------------------------------------------------------------------ state
    def book(self, symbol: str) -> tuple[np.ndarray, np.ndarray]:
        """``(bids, asks)`` of ``symbol`` after everything sent so far: float64 ``(n, 2)``
        arrays of ``[price, amount]``, best first, equal to the book of a client that
        applied every depth push of this symbol (engine semantics, no trimming)."""
        if self.market is None:
            raise NoMarket("no simulated market when serving a capture")
        if self._cycle is None:
            return self.market.book(symbol)
        return self._cycle_book(symbol)

    def books(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """:meth:`book` of every symbol."""
        if self.market is None:
            return {}
        return {s: self.book(s) for s in self.market.symbols}

    # ------------------------------------------------------------------ connections
    def _listener_factory(self, request: WSUpgradeRequest) -> Any:
        if self.faults.reject_handshakes > 0:
            self.faults.reject_handshakes -= 1
            log.info("rejecting a handshake with HTTP 502 (fault injection)")
            return WSUpgradeResponseWithListener(
                WSUpgradeResponse.create_error_response(502, b"502 Bad Gateway"), None
            )
        return Connection(self, request)

    def _on_connect(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.stats["connections_total"] += 1
        self._conn_event.set()
        log.debug("connection %d opened on %s", conn.id, conn.path)

    def _on_disconnect(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self._backpressured.discard(conn)
        self._subs_changed()
        self._wake.set()
        log.debug("connection %d closed (%d frames sent)", conn.id, conn.frames_sent)

    def _subs_changed(self) -> None:
        self._union = None

    def _union_mask(self) -> bytearray:
        u = self._union
        if u is None:
            u = bytearray(N_CHANNELS * self._nsym)
            for c in self.connections:
                if c.has_public:
                    for i, v in enumerate(c.mask):
                        if v:
                            u[i] = 1
            self._union = u
        return u

    # ------------------------------------------------------------------ requests
    def _reply(self, conn: Connection, req_id: Any, result: Any) -> None:
        conn.send_json(encode_json(reply_envelope(req_id, result)), reply=True)

    def _error(self, conn: Connection, req_id: Any, code: int, message: str) -> None:
        self.stats["error_replies"] += 1
        conn.send_json(
            encode_json(error_envelope(req_id, code, message, self.config.error_style)), reply=True
        )

    def _handle_request(self, conn: Connection, data: bytes) -> None:
        self.stats["requests"] += 1
        conn.requests += 1
        try:  # the stdlib keeps request ids exact (orjson turns huge integers into floats)
            msg = json.loads(data)
        except (ValueError, RecursionError):
            self._error(conn, None, ErrorCode.INVALID_ARGUMENT, "invalid JSON")
            return
        if not isinstance(msg, dict):
            self._error(conn, None, ErrorCode.INVALID_ARGUMENT, "request must be a JSON object")
            return
        req_id = msg.get("id")
        method = msg.get("method")
        if not isinstance(method, str):
            self._error(conn, req_id, ErrorCode.INVALID_ARGUMENT, "method must be a string")
            return
        params = msg["params"] if "params" in msg else msg.get("param")
        if params is None:
            params = []
        if not isinstance(params, list):
            self._error(conn, req_id, ErrorCode.INVALID_ARGUMENT, "params must be an array")
            return
        handler = self._handlers.get(method)
        if handler is None:
            self._error(conn, req_id, ErrorCode.METHOD_NOT_FOUND, f"method not found: {method[:64]}")
            return
        try:
            handler(conn, req_id, params)
        except RequestRefused as exc:
            self._error(conn, req_id, exc.code, exc.message)
        except Exception:
            log.exception("internal error handling %s", method)
            self._error(conn, req_id, ErrorCode.INTERNAL_ERROR, "internal error")

    def _h_ping(self, conn: Connection, req_id: Any, params: list[Any]) -> None:
        self._reply(conn, req_id, "pong")

    def _h_time(self, conn: Connection, req_id: Any, params: list[Any]) -> None:
        self._reply(conn, req_id, int(time.time()))

    def _h_auth(self, conn: Connection, req_id: Any, params: list[Any]) -> None:
        if len(params) != 3 or not all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in params):
            raise RequestRefused(
                ErrorCode.INVALID_ARGUMENT, "params must be [api_key, timestamp_ms, signature]"
            )
        key, ts, sig = (str(p) for p in params)
        secret = self.config.accounts.get(key)
        if secret is None:
            raise RequestRefused(ErrorCode.REQUIRE_AUTH, "auth failed: unknown api key")
        if self.config.auth_window is not None:
            try:
                ts_ms = int(ts)
            except ValueError:
                raise RequestRefused(ErrorCode.INVALID_ARGUMENT, "timestamp must be milliseconds") from None
            if abs(time.time() * 1000 - ts_ms) > self.config.auth_window * 1000:
                raise RequestRefused(
                    ErrorCode.REQUIRE_AUTH, "auth failed: timestamp outside the allowed window"
                )
        if not hmac.compare_digest(sign_auth(secret, ts).encode(), sig.encode()):
            raise RequestRefused(ErrorCode.REQUIRE_AUTH, "auth failed: invalid signature")
        if conn.account != key:
            for subs in conn.private.values():
                subs.clear()
        conn.account = key
        if key not in self._accounts:
            self._accounts[key] = AccountSim(
                key, list(self._specs.values()), self._price_of, self._account_rng(key)
            )
        self._reply(conn, req_id, {"status": "success"})

    def _account_rng(self, key: str) -> random.Random:
        seed = self.market.seed if self.market is not None else (self.config.seed or 0)
        return random.Random(f"{seed}:{key}")

    def _price_of(self, symbol: str) -> float:
        m = self.market
        if m is not None and symbol in m.index:
            return m.mid_price(m.index[symbol])
        spec = self._specs.get(symbol)
        return spec.price if spec is not None else 1.0

    def _names(self, params: list[Any]) -> list[str]:
        limit = self.config.max_subscribe_symbols
        if limit is not None and len(params) > limit:
            raise RequestRefused(ErrorCode.INVALID_ARGUMENT, f"too many symbols in one request (max {limit})")
        out = []
        for p in params:
            if (
                not isinstance(p, str)
                or not 0 < len(p) <= 32
                or not p.isascii()
                or not p.isprintable()
                or " " in p
            ):
                raise RequestRefused(ErrorCode.INVALID_ARGUMENT, "symbols must be non-empty strings")
            out.append(p.upper())
        return out

    def _indices(self, params: list[Any]) -> list[int]:
        names = self._names(params)
        m = self.market
        assert m is not None
        if not names:
            return list(range(m.nsym))
        out = []
        for n in names:
            i = m.index.get(n)
            if i is None:
                raise RequestRefused(ErrorCode.INVALID_ARGUMENT, f"unknown symbol: {n}")
            if i not in out:
                out.append(i)
        return out

    def _public_handler(self, ch: int, subscribe: bool) -> Callable[[Connection, Any, list[Any]], None]:
        def handler(conn: Connection, req_id: Any, params: list[Any]) -> None:
            if self.market is None:  # serving a capture: acknowledge, start streaming
                self._names(params)
                self._reply(conn, req_id, {"status": "success"})
                if subscribe:
                    self._start_capture(conn)
                return
            idx = self._indices(params)
            base = ch * self._nsym
            self._reply(conn, req_id, {"status": "success"})
            if not subscribe:
                for i in idx:
                    conn.mask[base + i] = 0
                conn._update_public()
                return
            # a pre-generated cycle cannot snapshot the present: a new depth subscription
            # waits (2) for the symbol's next snapshot in the cycle
            pending = self._cycle is not None and ch == CH_DEPTH
            for i in idx:
                if conn.mask[base + i] != 1:
                    conn.mask[base + i] = 2 if pending else 1
            conn._update_public()
            if self._cycle is None or ch == CH_TICKER:
                m = self.market
                now = time.time()
                if ch == CH_DEPTH:
                    frames = [m.snapshot(i) for i in idx]
                elif ch == CH_TRADES:
                    frames = [m.trades_snapshot(i) for i in idx]
                else:
                    frames = [
                        (base + i, False, m.tickers_payload(self._ticker_states([i]), now)) for i in idx
                    ]
                level = self.config.compress_level
                conn.write(
                    b"".join(ws_frame(OP_BINARY, zlib_compress(f[2], level)) for f in frames), len(frames)
                )
            self._wake.set()

        return handler

    def _h_all_ticker_sub(self, conn: Connection, req_id: Any, params: list[Any]) -> None:
        self._reply(conn, req_id, {"status": "success"})
        if self.market is None:
            self._start_capture(conn)
            return
        conn.all_ticker = True
        conn.send_json(
            self.market.tickers_payload(self._ticker_states(None), time.time(), "all_ticker.update")
        )
        self._wake.set()

    def _h_all_ticker_unsub(self, conn: Connection, req_id: Any, params: list[Any]) -> None:
        conn.all_ticker = False
        self._reply(conn, req_id, {"status": "success"})

    def _private_handler(self, ch: str, subscribe: bool) -> Callable[[Connection, Any, list[Any]], None]:
        def handler(conn: Connection, req_id: Any, params: list[Any]) -> None:
            if conn.account is None:
                raise RequestRefused(ErrorCode.REQUIRE_AUTH, "require auth")
            names = self._names(params)
            subs = conn.private[ch]
            if subscribe:
                subs.update(names or ["*"])
            elif names:
                subs.difference_update(names)
            else:
                subs.clear()
            self._reply(conn, req_id, {"status": "success"})

        return handler

    # ------------------------------------------------------------------ market traffic
    def _wire(self, payload: bytes) -> bytes:
        return ws_frame(OP_BINARY, zlib_compress(payload, self.config.compress_level))

    def _next_frames(self, n: int) -> list[WireFrame]:
        """The next ``n`` (or, live, slightly more: a trade event yields two pushes) market
        pushes, compressed and framed; live frames nobody subscribed to are dropped after
        generation. ``self._generated`` is set to the number of pushes generated."""
        if self._cycle is not None:
            return self._next_cycle_frames(n)
        m = self.market
        assert m is not None
        frames = m.generate(n, time.time())
        self._generated = len(frames)
        self.stats["market_frames"] += len(frames)
        wanted = self._union_mask()
        level = self.config.compress_level
        return [
            (key, clean, ws_frame(OP_BINARY, zlib_compress(payload, level)))
            for key, clean, payload in frames
            if wanted[key]
        ]

    def _broadcast(self, frames: Sequence[WireFrame]) -> None:
        if not frames:
            return
        dup = self.faults.duplicate_trades
        lo, hi = self._trades_lo, self._trades_hi
        for c in list(self.connections):
            if not c.has_public:
                continue
            mask = c.mask
            parts: list[bytes] = []
            ap = parts.append
            for key, clean, wire in frames:
                mk = mask[key]
                if not mk:
                    continue
                if mk != 1:
                    if not clean:
                        continue
                    mask[key] = 1
                ap(wire)
                if dup and lo <= key < hi:
                    ap(wire)
            if parts:
                c.write(b"".join(parts), len(parts))

    def _public_listeners(self) -> bool:
        for c in self.connections:
            if c.has_public or c.all_ticker:
                return True
        return False

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        rate = self.config.rate
        batch = self.config.batch
        t0 = loop.time()
        sent = 0
        while True:
            if self._paused or self._backpressured or not self._public_listeners():
                self._wake.clear()
                await self._wake.wait()
                t0, sent = loop.time(), 0
                continue
            if rate is None:
                n = batch
            else:
                now = loop.time()
                due = int((now - t0) * rate) - sent
                if due <= 0:
                    await asyncio.sleep(max((sent + 1) / rate - (now - t0), 0.0005))
                    continue
                if due > 4 * batch:  # far behind: give up on catching up the backlog
                    t0 = now - (sent + batch) / rate
                    due = batch
                n = min(due, batch)
            frames = self._next_frames(n)
            self._broadcast(frames)
            sent += self._generated
            if rate is None or n >= batch:
                await asyncio.sleep(0)

    async def _snapshot_loop(self) -> None:
        interval = self.config.snapshot_interval
        assert interval and self.market is not None
        m = self.market
        while True:
            await asyncio.sleep(interval)
            if self._paused:
                continue
            wanted = self._union_mask()
            frames = [m.snapshot(i) for i in range(m.nsym) if wanted[CH_DEPTH * m.nsym + i]]
            self._broadcast([(k, c, self._wire(p)) for k, c, p in frames])

    async def _all_ticker_loop(self) -> None:
        m = self.market
        assert m is not None
        while True:
            await asyncio.sleep(self.config.all_ticker_interval)
            if self._paused:
                continue
            targets = [c for c in self.connections if c.all_ticker]
            if not targets:
                continue
            # live: the symbols whose ticker changed (a slice, as live); a pre-generated
            # cycle: every symbol, as of the current position in the cycle
            dirty = m.take_dirty_tickers() if self._cycle is None else None
            if dirty == []:
                continue
            wire = self._wire(m.tickers_payload(self._ticker_states(dirty), time.time(), "all_ticker.update"))
            for c in targets:
                c.write(wire)

    async def _private_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.private_interval)
            if self._paused:
                continue
            self.private_step()

    def private_step(self) -> int:
        """Advance every account that has a subscribed connection by one tick and route the
        resulting pushes. Returns the number of pushes generated."""
        count = 0
        for key, acct in self._accounts.items():
            conns = [c for c in self.connections if c.account == key and any(c.private.values())]
            if not conns:
                continue
            for ch, name, payload in acct.step():
                count += 1
                wire = None
                for c in conns:
                    subs = c.private[ch]
                    if "*" in subs or name in subs:
                        if wire is None:
                            wire = self._wire(payload)
                        c.write(wire)
        return count

    # ------------------------------------------------------------------ pre-generated cycle
    def _build_cycle(self) -> None:
        """Pre-generate the cycle (see ``ExchangeConfig.pregenerate``).

        Layout: a snapshot of every symbol, then the market's events in order, each
        followed (with probability ``snapshot_fraction``) by a snapshot of a random symbol
        taken right there, so it equals the book after exactly the pushes before it; at
        the end depth pushes per symbol that take the book back to its state at the
        start. So the stream is consistent also across the wrap: the opening snapshots
        equal the book before them. Depth pushes are pre-built; trades and ticker pushes
        are rendered when sent (current time, ids moved on by one cycle's worth per wrap,
        24 h volumes accumulated), so trade ids keep increasing and tickers move."""
        m = self.market
        assert m is not None
        cfg = self.config
        t = time.perf_counter()
        rng = m.rng
        nsym = m.nsym
        start = [m.book_state(i) for i in range(nsym)]
        raw: list[Frame] = [m.snapshot(i) for i in range(nsym)]
        dyn: list[tuple[int, int, Any] | None] = [None] * nsym
        first_id = m.next_trade_id
        self._cycle_tick_first = [m.ticker_state(i) for i in range(nsym)]
        tick_pos: list[list[int]] = [[] for _ in range(nsym)]
        tick_state: list[list[TickerState]] = [[] for _ in range(nsym)]
        now = time.time()
        while len(raw) < cfg.pregenerate:
            for f in m.generate(1, now):  # one event: its pushes, nothing after them
                ch, i = divmod(f[0], nsym)
                spec: tuple[int, int, Any] | None = None
                if ch == CH_TRADES:
                    trades = orjson.loads(f[2])["params"][1]
                    spec = (
                        CH_TRADES,
                        i,
                        tuple((d["id"], d["price"], d["amount"], d["type"]) for d in trades),
                    )
                elif ch == CH_TICKER:
                    st = m.ticker_state(i)
                    tick_pos[i].append(len(raw))
                    tick_state[i].append(st)
                    spec = (CH_TICKER, i, st)
                raw.append(f)
                dyn.append(spec)
            if cfg.snapshot_fraction and rng.random() < cfg.snapshot_fraction:
                raw.append(m.snapshot(rng.randrange(nsym)))
                dyn.append(None)
        for i in range(nsym):  # close the loop: back to the opening books
            for f in m.restore_book(i, start[i]):
                raw.append(f)
                dyn.append(None)
        self._cycle_ids = m.next_trade_id - first_id
        self._cycle_tick_pos, self._cycle_tick_state = tick_pos, tick_state
        self._cycle_tick_end = [m.ticker_state(i) for i in range(nsym)]
        self._cycle_dyn = dyn
        level = cfg.compress_level
        self._cycle = [(k, c, ws_frame(OP_BINARY, zlib_compress(p, level))) for k, c, p in raw]
        log.info(
            "pre-generated a cycle of %d frames (%.1f MB) in %.2f s",
            len(self._cycle),
            sum(len(w) for _, _, w in self._cycle) / 1e6,
            time.perf_counter() - t,
        )

    def _next_cycle_frames(self, n: int) -> list[WireFrame]:
        """The next ``n`` frames of the cycle (those nobody subscribed to are skipped)."""
        cyc = self._cycle
        assert cyc is not None
        dyn = self._cycle_dyn
        size = len(cyc)
        wanted = self._union_mask()
        pos, wraps = self._cycle_pos, self._cycle_wraps
        now = time.time()
        out: list[WireFrame] = []
        ap = out.append
        for _ in range(n):
            f = cyc[pos]
            if wanted[f[0]]:
                d = dyn[pos]
                ap(f if d is None else (f[0], f[1], self._render_cycle_frame(d, wraps, now)))
            pos += 1
            if pos == size:
                pos = 0
                wraps += 1
        self._cycle_pos, self._cycle_wraps = pos, wraps
        self._cycle_sent += n
        self.stats["market_frames"] += n
        self._generated = n
        return out

    def _render_cycle_frame(self, spec: tuple[int, int, Any], wraps: int, now: float) -> bytes:
        ch, i, data = spec
        m = self.market
        assert m is not None
        if ch == CH_TRADES:
            off = wraps * self._cycle_ids
            ts: float | int = int(now) if self.config.integer_trade_time else round(now, 6)
            trades = [
                {"id": tid + off, "time": ts, "price": px, "amount": amt, "type": kind}
                for tid, px, amt, kind in data
            ]
            payload = orjson.dumps(
                {"method": "trades.update", "params": [False, trades, m.symbols[i]], "id": None}
            )
        else:
            payload = m.tickers_payload([self._cycle_ticker(data, wraps)], now)
        return self._wire(payload)

    def _cycle_ticker(self, st: TickerState, wraps: int) -> TickerState:
        """A ticker state of the cycle as of its ``wraps``-th repetition: 24 h volumes grow by
        one cycle's worth per wrap, high/low cover every cycle already served."""
        if wraps == 0:
            return st
        end, first = self._cycle_tick_end[st.idx], self._cycle_tick_first[st.idx]
        return st._replace(
            low_t=end.low_t,
            high_t=end.high_t,
            base_lots=st.base_lots + wraps * (end.base_lots - first.base_lots),
            quote_units=st.quote_units + wraps * (end.quote_units - first.quote_units),
        )

    def _ticker_states(self, indices: list[int] | None) -> list[TickerState]:
        """Ticker states of symbols (None = all): live, the market's; with a pre-generated
        cycle, the last ticker state sent before the current cycle position."""
        m = self.market
        assert m is not None
        idx = list(range(m.nsym)) if indices is None else indices
        if self._cycle is None:
            return [m.ticker_state(i) for i in idx]
        pos, wraps = self._cycle_pos, self._cycle_wraps
        out = []
        for i in idx:
            j = bisect_left(self._cycle_tick_pos[i], pos) - 1
            if j >= 0:
                out.append(self._cycle_ticker(self._cycle_tick_state[i][j], wraps))
            elif wraps == 0:
                out.append(self._cycle_tick_first[i])
            else:
                out.append(self._cycle_ticker(self._cycle_tick_end[i], wraps - 1))
        return out

    def _cycle_book(self, symbol: str) -> tuple[np.ndarray, np.ndarray]:
        m = self.market
        cyc = self._cycle
        assert m is not None and cyc is not None
        i = m.index[symbol.upper()]
        key = CH_DEPTH * m.nsym + i
        pos = self._cycle_pos
        # The book is the result of the frames since the last snapshot of the symbol;
        # every cycle starts with snapshots, so look back from pos (wrapping once if the
        # current cycle has not yet passed this symbol's opening snapshot).
        seq: list[bytes] = []
        if self._cycle_sent == 0:
            seq = [cyc[i][2]]
        else:
            j = pos - 1
            found = False
            while j >= 0:
                k, clean, wire = cyc[j]
                if k == key:
                    seq.append(wire)
                    if clean:
                        found = True
                        break
                j -= 1
            if not found:
                j = len(cyc) - 1
                while j >= pos:
                    k, clean, wire = cyc[j]
                    if k == key:
                        seq.append(wire)
                        if clean:
                            break
                    j -= 1
            seq.reverse()
        book = SimBook(10**9)
        for wire in seq:
            hl = 2 if wire[1] < 126 else (4 if wire[1] == 126 else 10)
            book.apply_message(orjson.loads(zlib.decompress(wire[hl:])))
        return book.bids, book.asks

    # ------------------------------------------------------------------ capture serving
    def _load_capture(self) -> None:
        from ..capture import CaptureReader

        reader = CaptureReader(self.config.capture)  # type: ignore[arg-type]
        idx = reader.index()
        keep = np.ones(len(idx), dtype=bool)
        if self.config.capture_skip_replies:
            for n, row in enumerate(idx):
                data = bytes(reader.payload(int(row["offset"]), int(row["length"])))
                try:
                    text = data if data.lstrip()[:1] in (b"{", b"[") else zlib.decompress(data)
                    msg = orjson.loads(text)
                except (zlib.error, orjson.JSONDecodeError):
                    continue  # damaged frames are replayed as recorded
                if isinstance(msg, dict) and msg.get("method") is None:
                    keep[n] = False
        idx = idx[keep]
        self._capture = reader
        self._capture_rows = (
            idx["offset"].tolist(),
            idx["length"].tolist(),
            idx["recv_ns"].tolist(),
            idx["msg_type"].tolist(),
        )
        log.info(
            "serving capture %s: %d frames (%d replies skipped)",
            self.config.capture,
            len(idx),
            int((~keep).sum()),
        )

    def _start_capture(self, conn: Connection) -> None:
        if conn.replay_task is None:
            conn.replay_task = asyncio.get_running_loop().create_task(self._serve_capture(conn))

    async def _serve_capture(self, conn: Connection) -> None:
        assert self._capture_rows is not None
        offsets, lengths, recv, types = self._capture_rows
        reader = self._capture
        speed = self.config.capture_speed
        batch = self.config.batch
        loop = asyncio.get_running_loop()
        n = len(offsets)
        t0 = loop.time()
        first = recv[0] if n else 0
        i = 0
        while i < n:
            if conn.is_disconnected:
                return
            if conn.paused:
                await conn.wait_resumed()
                continue
            if speed is None:
                j = min(n, i + batch)
            else:
                due = first + (loop.time() - t0) * 1e9 * speed
                j = min(bisect_right(recv, due, i), i + batch)
                if j == i:
                    await asyncio.sleep(max((recv[i] - first) / speed / 1e9 - (loop.time() - t0), 0.0))
                    continue
            parts = [ws_frame(types[k], reader.payload(offsets[k], lengths[k])) for k in range(i, j)]
            conn.write(b"".join(parts), j - i)
            i = j
            await asyncio.sleep(0)
        conn.replay_done.set()
        if self.config.capture_close:
            conn.close(1000, "end of capture")

    # convenience for tests/tools
    def iter_connections(self) -> Iterable[Connection]:
        """The open connections, oldest first."""
        return sorted(self.connections, key=lambda c: c.id)
