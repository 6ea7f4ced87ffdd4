"""The live client under careless use and a hostile server (issue 10: defects 3, 4, 7, 8,
9, 10 and 11, client side).

Live tests use the bundled exchange in-process (127.0.0.1, port 0); hostile replies are
crafted by replacing one of the exchange's request handlers for the test. Registry and
frame-path rules are also checked with direct calls (no network), which keeps them
deterministic.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import struct
import tracemalloc
import zlib
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_client import KEY, SECRET, SYMS, exchange, run, until

import fastfeed
from fastfeed import client as client_mod
from fastfeed import protocol
from fastfeed.errors import ConnectFailed, FastfeedError, FeedClosed, NotConnected
from fastfeed.exchange import Exchange
from fastfeed.exchange.wire import OP_BINARY, OP_CLOSE, OP_TEXT, ws_frame
from fastfeed.protocol import AuthError, BadReply, ConnectionLost, RequestError, RequestTimeout

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

ESC = "\x1b[2J\x1b]0;pwned\x07\u202eevil\x9b"


def raw(ex: Exchange, payload: bytes | str, text: bool = False) -> None:
    """Send one crafted message to every client of ``ex`` (zlib BINARY or plain TEXT)."""
    data = payload.encode() if isinstance(payload, str) else payload
    ex.faults._raw(None, OP_TEXT if text else OP_BINARY, data if text else zlib.compress(data))


def reply_with(ex: Exchange, method: str, make: Any) -> None:
    """Answer ``method`` with ``make(req_id)`` (raw JSON text) instead of the real handler."""

    def handler(conn: Any, req_id: Any, params: list[Any]) -> None:
        conn.write(ws_frame(OP_TEXT, make(req_id).encode()))

    ex._handlers[method] = handler


def refuse(ex: Exchange, method: str, message: str = "refused by the test") -> Any:
    """Make the exchange answer ``method`` with an error; returns the real handler."""
    real = ex._handlers[method]

    def handler(conn: Any, req_id: Any, params: list[Any]) -> None:
        ex._error(conn, req_id, 1, message)

    ex._handlers[method] = handler
    return real


class FakeTransport:
    """Stands in for a connection in the direct-call tests (nothing is sent through it)."""

    def disconnect(self) -> None:
        pass


def has_bids(feed: fastfeed.Feed, symbol: str) -> bool:
    """The book of ``symbol`` exists and has bids (without creating it)."""
    book = feed.engine.books.get(symbol)
    return book is not None and book.n_bids > 0


def order_msg() -> dict[str, Any]:
    return {
        "method": "order.update",
        "params": [{"id": "1d8e", "symbol": "BTC_USDT", "status": 0}],
        "id": None,
    }


def deliver(feed: fastfeed.Feed, msg: dict[str, Any], recv_ns: int = 0) -> None:
    """A push as the listener hands it on: ticker pushes go through the engine's ticker
    table (as JSON text, NaN/Infinity written as such: a rejected frame), the others to
    ``_on_message``."""
    if msg.get("method") in ("ticker.update", "all_ticker.update"):
        feed._feed_payload(json.dumps(msg), recv_ns)
    else:
        feed._on_message(msg, recv_ns)


def ticker_msg(symbol: Any = "BTC_USDT", **fields: Any) -> dict[str, Any]:
    rec = {"symbol": symbol, "last": "100.5", "timestamp": 1_700_000_000_000, **fields}
    return {"method": "ticker.update", "params": [rec], "id": None}


# ------------------------------------------------------------------------------------------
# defect 3: the subscription registry and input validation


BAD_NAMES: list[tuple[Any, type[Exception]]] = [
    ("BTC_USDT", TypeError),  # a single str would be split into letters
    (b"BTC_USDT", TypeError),
    ([b"BTC_USDT"], TypeError),
    ([None], TypeError),
    ([42], TypeError),
    (42, TypeError),
    ([""], ValueError),
    (["ÉTH_USDT"], ValueError),
    (["BTC USDT"], ValueError),
    (["BTC\tUSDT"], ValueError),
    (["X" * 33], ValueError),
    (["BTC_USDT\x1b[2J"], ValueError),
]

SUB_METHODS = [
    "subscribe_trades",
    "subscribe_depth",
    "subscribe_ticker",
    "subscribe_orders",
    "subscribe_order_algo",
    "subscribe_balance",
    "unsubscribe_trades",
    "unsubscribe_depth",
    "unsubscribe_ticker",
    "unsubscribe_orders",
    "unsubscribe_order_algo",
    "unsubscribe_balance",
]


def test_validate_symbols_rules() -> None:
    assert protocol.validate_symbols(["btc_usdt", "BTC_USDT", "eth_usdt"]) == ["BTC_USDT", "ETH_USDT"]
    assert protocol.validate_symbols([]) == [] and protocol.validate_symbols(None) == []
    assert protocol.validate_symbols(("X" * 32,)) == ["X" * 32]
    assert protocol.validate_symbols(iter(["a"])) == ["A"]
    for names, exc in BAD_NAMES:
        with pytest.raises(exc):
            protocol.validate_symbols(names)
    with pytest.raises(TypeError, match="pass a list"):
        protocol.validate_symbols("BTC_USDT")
    # the same rule as the engine's symbol check
    assert protocol.is_valid_symbol("!~") and not protocol.is_valid_symbol("a\x7f")
    with pytest.raises(ValueError):  # chunk_symbols checks too
        list(protocol.chunk_symbols(["a b"]))


@pytest.mark.parametrize("method", SUB_METHODS)
@pytest.mark.parametrize("names, exc", BAD_NAMES, ids=[repr(n)[:20] for n, _ in BAD_NAMES])
def test_every_subscribe_method_validates_before_sending(
    method: str, names: Any, exc: type[Exception]
) -> None:
    async def body() -> None:
        feed = fastfeed.Feed("ws://127.0.0.1:1/", KEY, SECRET)
        sent: list[Any] = []

        async def fake(m: str, params: list[Any]) -> Any:
            sent.append((m, params))
            return {"status": "success"}

        feed._request_when_ready = fake  # type: ignore[method-assign]
        feed._transport = FakeTransport()  # "connected": unsubscribe would send
        with pytest.raises(exc):
            await getattr(feed, method)(names)
        assert sent == [] and feed.subscriptions == {}
        await feed.close()

    run(body)


def test_bad_names_send_nothing_on_a_live_connection() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex, fastfeed.connect(ex.url) as feed:
            n = ex.stats["requests"]
            for names, exc in BAD_NAMES:
                with pytest.raises(exc):
                    await feed.subscribe_depth(names)
            assert ex.stats["requests"] == n and feed.stats["requests"] == 0
            assert feed.subscriptions == {}

    run(body)


class Script:
    """A scripted ``_request_when_ready``: each call pops the next outcome."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, list[Any]]] = []
        self.gate: dict[int, asyncio.Event] = {}

    async def __call__(self, method: str, params: list[Any]) -> Any:
        i = len(self.calls)
        self.calls.append((method, params))
        if i in self.gate:
            await self.gate[i].wait()
        out = self.outcomes[i]
        if isinstance(out, BaseException):
            raise out
        return out


OK = {"status": "success"}
FAILURES = [
    RequestError("depth.subscribe", 1, "refused"),
    RequestTimeout("no reply"),
    ConnectionLost("connection lost"),
]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda e: type(e).__name__)
def test_a_failed_repeat_keeps_what_was_acknowledged(failure: Exception) -> None:
    async def body() -> None:
        feed = fastfeed.Feed("ws://127.0.0.1:1/")
        feed._request_when_ready = script = Script(OK, failure, OK, failure, OK, failure)  # type: ignore
        await feed.subscribe_depth()  # all symbols, acknowledged
        with pytest.raises(type(failure)):
            await feed.subscribe_depth()  # the repeat fails: "*" was acknowledged, it stays
        assert feed.subscriptions == {"depth": ["*"]}
        await feed.subscribe_trades(["BTC_USDT"])
        with pytest.raises(type(failure)):
            await feed.subscribe_trades(["btc_usdt", "ETH_USDT"])  # only ETH_USDT was new
        assert feed.subscriptions == {"depth": ["*"], "trades": ["BTC_USDT"]}
        await feed.subscribe_ticker(["SOL_USDT"])
        with pytest.raises(type(failure)):
            await feed.subscribe_ticker()
        assert feed.subscriptions["ticker"] == ["SOL_USDT"]
        assert len(script.calls) == 6
        await feed.close()

    run(body)


def test_concurrent_calls_on_one_symbol() -> None:
    async def body() -> None:
        feed = fastfeed.Feed("ws://127.0.0.1:1/")
        # call A (new name) is refused after call B for the same name was acknowledged:
        # the server has the name (B), so it stays
        s = Script(OK, RequestError("depth.subscribe", 1, "refused"))
        s.gate[0] = asyncio.Event()
        s.gate[1] = asyncio.Event()
        feed._request_when_ready = s  # type: ignore[method-assign]
        a = asyncio.ensure_future(feed.subscribe_depth(["BTC_USDT"]))
        b = asyncio.ensure_future(feed.subscribe_depth(["BTC_USDT"]))
        await asyncio.sleep(0)
        s.gate[0].set()  # A acknowledged
        await a
        s.gate[1].set()  # B refused
        with pytest.raises(RequestError):
            await b
        assert feed.subscriptions == {"depth": ["BTC_USDT"]}

        # an unsubscribe issued while a subscribe is in flight wins, whatever the reply
        s2 = Script(OK, OK)
        s2.gate[0] = asyncio.Event()
        feed._request_when_ready = s2  # type: ignore[method-assign]
        feed._transport = FakeTransport()
        sub = asyncio.ensure_future(feed.subscribe_trades(["ETH_USDT"]))
        await asyncio.sleep(0)
        assert feed.subscriptions["trades"] == ["ETH_USDT"]  # in flight: replayed on reconnect
        await feed.unsubscribe_trades(["ETH_USDT"])
        s2.gate[0].set()
        await sub
        assert "trades" not in feed.subscriptions

        # two calls add a new name; the first fails while the second is in flight: the
        # second decides (refused -> gone; acknowledged -> kept)
        for second, kept in ((RequestError("ticker.subscribe", 1, "no"), False), (OK, True)):
            s3 = Script(RequestTimeout("no reply"), second, OK)
            s3.gate[0] = asyncio.Event()
            s3.gate[1] = asyncio.Event()
            feed._request_when_ready = s3  # type: ignore[method-assign]
            first = asyncio.ensure_future(feed.subscribe_ticker(["XRP_USDT"]))
            again = asyncio.ensure_future(feed.subscribe_ticker(["XRP_USDT"]))
            await asyncio.sleep(0)
            s3.gate[0].set()
            with pytest.raises(RequestTimeout):
                await first
            assert feed.subscriptions["ticker"] == ["XRP_USDT"]  # the second is still in flight
            s3.gate[1].set()
            if kept:
                await again
                assert feed.subscriptions["ticker"] == ["XRP_USDT"]
                await feed.unsubscribe_ticker(["XRP_USDT"])
            else:
                with pytest.raises(RequestError):
                    await again
            assert "ticker" not in feed.subscriptions
        assert all(not ops for ops in feed._ops.values())  # nothing kept once no call is in flight
        feed._transport = None
        await feed.close()

    run(body)


def test_refused_repeat_subscribe_survives_a_reconnect_live() -> None:
    """The reported case: subscribe_depth() acknowledged, a repeat refused -> the feed still
    has the subscription and re-requests it after a reconnect."""

    async def body() -> None:
        async with exchange() as ex:
            async with fastfeed.connect(ex.url, backoff_initial=0.05) as feed:
                await feed.subscribe_depth()
                real = refuse(ex, "depth.subscribe")
                with pytest.raises(RequestError):
                    await feed.subscribe_depth()
                with pytest.raises(RequestError):
                    await feed.subscribe_depth(["BTC_USDT"])
                assert feed.subscriptions == {"depth": ["*"]}
                ex._handlers["depth.subscribe"] = real
                ex.faults.drop()
                await until(lambda: feed.stats["resubscribes"] == 1 and feed.connected, what="resubscribe")
                await until(lambda: all(has_bids(feed, s) for s in SYMS), what="books after reconnect")

    run(body)


# ------------------------------------------------------------------------------------------
# defect 4: the supervisor


def test_permanent_argument_errors_fail_at_once() -> None:
    with pytest.raises(ValueError, match="not a WebSocket URL"):
        fastfeed.connect("http://127.0.0.1:1/")
    with pytest.raises(ValueError):
        fastfeed.connect("ws://")
    with pytest.raises(TypeError):
        fastfeed.connect(b"ws://127.0.0.1:1/")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="secret must be str or bytes"):
        fastfeed.connect("ws://127.0.0.1:1/", KEY, 12345)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secret is empty"):
        fastfeed.connect("ws://127.0.0.1:1/", KEY, "")
    with pytest.raises(TypeError, match="api_key"):
        fastfeed.connect("ws://127.0.0.1:1/", 5, SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="api_key"):
        fastfeed.connect("ws://127.0.0.1:1/", "key\x1b", SECRET)
    with pytest.raises(TypeError) as ei:
        fastfeed.connect("ws://127.0.0.1:1/", KEY, 12345)  # type: ignore[arg-type]
    assert "12345" not in str(ei.value)  # a secret's value is never shown


def test_secret_value_never_in_the_type_error() -> None:
    class Weird:
        def __repr__(self) -> str:
            return "TOPSECRET"

    with pytest.raises(TypeError) as ei:
        fastfeed.connect("ws://127.0.0.1:1/", KEY, Weird())  # type: ignore[arg-type]
    assert "TOPSECRET" not in str(ei.value)


def test_unexpected_error_before_the_first_connection_fails_start_with_it() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex:
            feed = fastfeed.connect(ex.url, connect_timeout=3600)
            events: list[str] = []
            feed.on_event = lambda e: events.append(e.kind)

            async def broken() -> None:
                raise RuntimeError("boom in setup")

            feed._resubscribe = broken  # type: ignore[method-assign]
            with pytest.raises(RuntimeError, match="boom in setup"):
                await feed.start()  # at once, not after connect_timeout (the hang guard is 120 s)
            assert "error" in events
            assert feed.stats["supervisor_errors"] == 1 and "boom" in feed.stats["last_error"]
            with pytest.raises(FeedClosed):
                await feed.start()

    run(body)


def test_unexpected_error_after_ready_is_reported_and_retried() -> None:
    events: list[fastfeed.ConnectionEvent] = []

    async def body() -> None:
        async with exchange() as ex:
            async with fastfeed.connect(ex.url, on_event=events.append, backoff_initial=0.05) as feed:
                await feed.subscribe_depth(["BTC_USDT"])
                real = feed._resubscribe
                calls = {"n": 0}

                async def flaky() -> None:
                    calls["n"] += 1
                    if calls["n"] == 1:
                        raise RuntimeError("boom\x1b[2J")
                    await real()

                feed._resubscribe = flaky  # type: ignore[method-assign]
                ex.faults.drop()
                await until(lambda: feed.stats["supervisor_errors"] == 1, what="supervisor error")
                await until(lambda: feed.connected and feed.stats["connects"] == 3, what="recovered")
                await until(lambda: has_bids(feed, "BTC_USDT"), what="book")
                assert "boom" in feed.stats["last_error"] and "\x1b" not in feed.stats["last_error"]

    run(body)
    err = [e for e in events if e.kind == "error"]
    assert len(err) == 1 and "RuntimeError: boom" in err[0].reason and "\x1b" not in err[0].reason


def test_a_drop_during_resubscribe_is_noticed_at_once() -> None:
    """The server drops the connection instead of answering the resubscribe: the request
    fails at the moment of the drop (request_timeout is 3600 s, the hang guard 120 s)."""

    async def body() -> None:
        async with exchange() as ex:
            async with fastfeed.connect(ex.url, backoff_initial=0.05, request_timeout=3600) as feed:
                await feed.subscribe_depth(SYMS)
                real = ex._handlers["depth.subscribe"]
                drops = {"n": 0}

                def drop_instead(conn: Any, req_id: Any, params: list[Any]) -> None:
                    drops["n"] += 1
                    ex._handlers["depth.subscribe"] = real  # the next connection works
                    conn.drop()

                ex._handlers["depth.subscribe"] = drop_instead
                ex.faults.drop()
                await until(lambda: drops["n"] == 1, what="resubscribe dropped")
                await until(lambda: feed.connected and feed.stats["resubscribes"] >= 1, what="recovered")
                assert (
                    "lost during setup" in feed.stats["last_disconnect_reason"]
                    or feed.stats["disconnects"] >= 2
                )
                await until(lambda: all(has_bids(feed, s) for s in SYMS), what="books")

    run(body)


def test_a_request_in_flight_fails_at_the_drop() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex:
            async with fastfeed.connect(ex.url, request_timeout=3600, backoff_initial=0.05) as feed:
                ex._handlers["server.time"] = lambda conn, req_id, params: conn.drop()
                with pytest.raises(ConnectionLost):
                    await feed.request("server.time")
                await until(lambda: feed.connected, what="reconnect")

    run(body)


def test_after_close_everything_fails_fast() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex:
            feed = fastfeed.connect(ex.url)
            await feed.start()
            await feed.close()
            assert feed.closed
            for call in (
                feed.start(),
                feed.ping(),
                feed.subscribe_depth(["BTC_USDT"]),
                feed.unsubscribe_depth(["BTC_USDT"]),
                feed.request("server.ping"),
            ):
                with pytest.raises(FeedClosed):
                    await call
            assert issubclass(FeedClosed, ConnectionError) and issubclass(FeedClosed, FastfeedError)
            for stream in (feed.tickers(), feed.orders(), feed.order_algos(), feed.balances()):
                assert [x async for x in stream] == []  # ends at once
            # a feed never started: requests say so instead of waiting
            other = fastfeed.connect(ex.url)
            with pytest.raises(NotConnected):
                await other.ping()
            await other.close()

    run(body)


def test_close_wakes_callers_waiting_for_a_connection() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex:
            feed = fastfeed.connect(ex.url, connect_timeout=3600, backoff_initial=0.05)
            await feed.start()
            ex.faults.stall()
            feed._ready.clear()  # as while reconnecting
            waiter = asyncio.ensure_future(feed.subscribe_depth(["BTC_USDT"]))
            await asyncio.sleep(0.05)
            await feed.close()
            with pytest.raises(FeedClosed):
                await waiter

    run(body)


# ------------------------------------------------------------------------------------------
# defect 7: no value in any reply or push raises out of the frame path


def test_overflowing_ticker_field_is_a_counted_rejection() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex, fastfeed.connect(ex.url) as feed:
            raw(ex, '{"method":"ticker.update","params":[{"symbol":"BTC_USDT","timestamp":1e400}],"id":null}')
            raw(ex, '{"method":"order.update","params":[{"symbol":"BTC_USDT","status":1e400}],"id":null}')
            await until(lambda: sum(feed.stats["bad_pushes"].values()) == 2, what="rejections")
            assert feed.stats["bad_pushes"] == {"bad_field": 2}
            assert await feed.ping() == "pong"
            assert feed.stats["connects"] == 1 and feed.stats["bad_frames"] == 0
            assert feed.latest_tickers == {}

    run(body)


def test_error_reply_with_an_overflowing_code_is_a_request_error() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex, fastfeed.connect(ex.url) as feed:
            reply_with(
                ex,
                "depth.subscribe",
                lambda i: f'{{"error":{{"code":1e400,"message":"no"}},"result":null,"id":{i}}}',
            )
            with pytest.raises(RequestError) as ei:
                await feed.subscribe_depth(["BTC_USDT"])
            assert ei.value.code is None and ei.value.message == "no"
            assert feed.stats["connects"] == 1 and await feed.ping() == "pong"

    run(body)


def test_id_true_does_not_answer_request_1() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex, fastfeed.connect(ex.url) as feed:
            real = ex._handlers["server.ping"]

            def twice(conn: Any, req_id: Any, params: list[Any]) -> None:
                for bogus in ("true", "1.0", '"1"', "[1]"):
                    conn.write(ws_frame(OP_TEXT, f'{{"error":null,"result":"WRONG","id":{bogus}}}'.encode()))
                real(conn, req_id, params)

            ex._handlers["server.ping"] = twice
            assert await feed.ping() == "pong"  # request 1: only the real reply answers it
            assert feed.stats["unmatched_replies"] == 4

    run(body)


@pytest.mark.parametrize(
    "result", ['"junk"', "1e400", "true", "null", "-5", '{"t":1}', "[1]", '"9' + "9" * 30 + '"']
)
def test_server_time_with_a_junk_result_is_a_bad_reply(result: str) -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex, fastfeed.connect(ex.url) as feed:
            reply_with(ex, "server.time", lambda i: f'{{"error":null,"result":{result},"id":{i}}}')
            with pytest.raises(BadReply) as ei:
                await feed.server_time()
            assert isinstance(ei.value, RequestError) and ei.value.method == "server.time"
            assert feed.stats["connects"] == 1

    run(body)


def test_ping_and_auth_results_are_checked() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex:
            async with fastfeed.connect(ex.url) as feed:
                reply_with(ex, "server.ping", lambda i: f'{{"error":null,"result":{{"a":1}},"id":{i}}}')
                with pytest.raises(BadReply):
                    await feed.ping()
            reply_with(ex, "server.auth", lambda i: f'{{"error":null,"result":{{"status":"nope"}},"id":{i}}}')
            with pytest.raises(AuthError, match="unexpected result"):
                async with fastfeed.connect(ex.url, KEY, SECRET):
                    pass

    run(body)


def test_a_raising_message_handler_never_drops_the_connection() -> None:
    """Last resort: even a bug in the message handling stays inside the frame path."""

    async def body() -> None:
        async with exchange(rate=0) as ex:
            feed = fastfeed.connect(ex.url)
            feed._handle_message = lambda msg, recv_ns: 1 / 0  # type: ignore[method-assign]
            async with feed:
                raw(ex, orjson.dumps(order_msg()))
                await until(lambda: feed.stats["bad_pushes"].get("internal") == 1, what="counted")
                assert feed.stats["connects"] == 1
            feed2 = fastfeed.connect(ex.url, backoff_initial=0.05)
            feed2._on_message = lambda msg, recv_ns: 1 / 0  # type: ignore[method-assign]
            async with feed2:  # the listener's own guard: picows never sees the exception
                raw(ex, orjson.dumps(order_msg()))
                await asyncio.sleep(0.2)
                assert feed2._listener is not None
                await until(lambda: feed2.stats["listener_errors"] >= 1, what="listener guard")
                assert feed2.stats["connects"] == 1 and feed2.connected

    run(body)


def test_hostile_close_frame() -> None:
    """A close code outside the enum and a close reason with escape sequences."""
    events: list[fastfeed.ConnectionEvent] = []

    async def body() -> None:
        async with exchange(rate=0) as ex:
            async with fastfeed.connect(ex.url, on_event=events.append, backoff_initial=0.05) as feed:
                ex.faults._raw(None, OP_CLOSE, struct.pack("!H", 4321) + ESC.encode())
                await until(lambda: feed.stats["disconnects"] == 1 and feed.connected, what="reconnect")
                ex.faults._raw(None, OP_CLOSE, struct.pack("!H", 2999) + b"x")  # not a valid code
                await until(lambda: feed.stats["disconnects"] == 2 and feed.connected, what="reconnect 2")

    run(body)
    reasons = [e.reason for e in events if e.kind == "disconnected"]
    assert any("4321" in r for r in reasons), reasons
    assert all("\x1b" not in r and "\u202e" not in r and "\x9b" not in r for r in reasons)
    assert any("\\x1b[2J" in r for r in reasons)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["1e400", "-1e400", "nan", "inf", "9" * 30, "", ESC, "BTC_USDT", "x" * 70]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = {
    "ticker.update": [
        "symbol",
        "last",
        "last_qty",
        "best_bid",
        "best_bid_size",
        "best_ask",
        "best_ask_size",
        "open_24h",
        "high_24h",
        "low_24h",
        "base_volume_24h",
        "quote_volume_24h",
        "timestamp",
    ],
    "all_ticker.update": ["symbol", "last", "timestamp"],
    "order.update": [
        "id",
        "symbol",
        "side",
        "type",
        "status",
        "mode",
        "price",
        "amount",
        "filled",
        "price_avg",
        "notional",
        "timestamp",
    ],
    "order_algo.update": [
        "id",
        "symbol",
        "side",
        "status",
        "mode",
        "algo_price",
        "trigger_price",
        "amount",
        "timestamp",
    ],
    "balance.update": ["currency", "free", "total", "used"],
}


def _hostile_feed() -> fastfeed.Feed:
    feed = fastfeed.Feed("ws://127.0.0.1:1/", options=fastfeed.FeedOptions(max_ticker_symbols=50))
    return feed


@given(
    method=st.sampled_from(sorted(FIELDS)),
    values=st.lists(JSON, min_size=13, max_size=13),
    shape=st.sampled_from(["flat", "nested", "params", "record"]),
)
def test_any_json_in_any_push_field_never_raises(method: str, values: list[Any], shape: str) -> None:
    async def body() -> None:
        feed = _hostile_feed()
        got: list[Any] = []
        for cb in ("on_ticker", "on_order", "on_order_algo", "on_balance"):
            setattr(feed, cb, got.append)
        rec = dict(zip(FIELDS[method], values))
        params: Any = {"flat": [rec], "nested": [[rec]], "params": values[0], "record": [values[0], rec]}[
            shape
        ]
        deliver(feed, {"method": method, "params": params, "id": None}, 123)
        for item in got:  # whatever was accepted is well typed and bounded
            for name in item.__slots__:
                v = getattr(item, name)
                assert isinstance(v, (str, int, float, tuple)), (name, v)
                if isinstance(v, str):
                    assert len(v) <= protocol.MAX_FIELD_LEN
            assert protocol.is_valid_symbol(getattr(item, "symbol", getattr(item, "currency", None)))
        assert feed.stats["bad_pushes"].get("internal", 0) == 0
        await feed.close()

    asyncio.run(body())


@given(
    reply=st.dictionaries(st.sampled_from(["id", "error", "result", "method", "params"]), JSON, max_size=5),
    method=st.sampled_from(["server.ping", "server.time", "server.auth", "depth.subscribe"]),
)
def test_any_json_in_any_reply_field_never_raises(reply: dict[str, Any], method: str) -> None:
    async def body() -> None:
        feed = _hostile_feed()
        fut = asyncio.get_running_loop().create_future()
        feed._pending[1] = (method, fut)
        feed._on_message(reply, 0)
        assert feed.stats["bad_pushes"].get("internal", 0) == 0
        if fut.done():
            assert reply.get("id") == 1 and type(reply.get("id")) is int
            exc = fut.exception()
            if exc is not None:
                assert isinstance(exc, RequestError) and "\x1b" not in str(exc)
            else:
                result = fut.result()
                for check in (protocol.parse_pong, protocol.parse_server_time, protocol.check_auth_result):
                    try:
                        check(result)
                    except RequestError:
                        pass
        await feed.close()

    asyncio.run(body())


# ------------------------------------------------------------------------------------------
# defect 8: memory bounded in bytes


def _grown(fn: Any) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fn()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_huge_ticker_names_do_not_pin_memory() -> None:
    """97 KiB on the wire used to pin 63 MiB: names over 32 bytes are rejected, counted."""
    feed = fastfeed.Feed("ws://127.0.0.1:1/", options=fastfeed.FeedOptions(max_ticker_symbols=10_000))
    stream = feed.tickers()

    def flood() -> None:
        for i in range(300):
            name = f"{i:06d}" + "A" * 60_000
            deliver(
                feed,
                {"method": "all_ticker.update", "params": [[{"symbol": name, "last": "1"}]], "id": None},
                0,
            )

    grown = _grown(flood)
    assert feed.latest_tickers == {} and len(stream) == 0
    assert feed.stats["bad_pushes"] == {"bad_symbol": 300}
    assert grown < 256 * 1024, f"{grown} bytes kept"
    asyncio.run(feed.close())


def test_ticker_table_bounded_by_count_and_bytes() -> None:
    feed = fastfeed.Feed(
        "ws://127.0.0.1:1/", options=fastfeed.FeedOptions(max_ticker_symbols=1000, queue_size=10)
    )

    def fill(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            deliver(feed, ticker_msg(f"S{i:030d}"), 0)  # 31-byte names: valid

    fill(0, 1000)
    grown = _grown(lambda: fill(1000, 6000))  # 5000 more distinct names: none kept
    assert len(feed.latest_tickers) == 1000
    assert feed.stats["dropped"]["ticker_symbols"] == 5000
    assert grown < 256 * 1024, f"{grown} bytes kept"
    asyncio.run(feed.close())


def test_private_push_with_huge_strings_is_rejected() -> None:
    feed = fastfeed.Feed("ws://127.0.0.1:1/", KEY, SECRET)
    orders, balances = feed.orders(), feed.balances()
    big = "x" * 1_000_000
    feed._on_message({"method": "order.update", "params": [{"id": big, "symbol": "BTC_USDT"}], "id": None}, 0)
    feed._on_message(
        {"method": "order.update", "params": [{"id": "a", "symbol": "BTC_USDT", "side": big}], "id": None}, 0
    )
    feed._on_message(
        {"method": "balance.update", "params": [{"currency": "USDT", "free": big}], "id": None}, 0
    )
    feed._on_message(
        {"method": "order.update", "params": [{"id": "ok", "symbol": "BTC_USDT"}], "id": None}, 0
    )
    assert len(orders) == 1 and len(balances) == 0
    assert feed.stats["bad_pushes"] == {"bad_field": 3}
    asyncio.run(feed.close())


def test_fragmented_message_over_the_cap_is_rejected_before_it_is_held() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex:
            eng = fastfeed.Engine(max_frame=64 * 1024)
            async with fastfeed.connect(ex.url, engine=eng, max_frame=64 * 1024) as feed:
                part = b"x" * 40_000
                frames = (
                    bytes([OP_TEXT, 126])
                    + struct.pack("!H", len(part))
                    + part
                    + bytes([0x00, 126])
                    + struct.pack("!H", len(part))
                    + part
                    + bytes([0x80, 126])
                    + struct.pack("!H", len(part))
                    + part
                )
                for c in ex.connections:
                    c.write(frames)
                await until(lambda: feed.stats["bad_frames"] == 1, what="rejected")
                assert await feed.ping() == "pong" and feed.stats["connects"] == 1

    run(body)


# ------------------------------------------------------------------------------------------
# defect 9: network text is escaped before a terminal, a log line or an exception


def test_safe_text() -> None:
    assert protocol.safe_text("plain text [b]") == "plain text [b]"
    out = protocol.safe_text(ESC)
    assert out.isprintable() and "\x1b" not in out and "\u202e" not in out and "\x9b" not in out
    assert out == "\\x1b[2J\\x1b]0;pwned\\x07\\u202eevil\\x9b"
    assert protocol.safe_text("x" * 500, 10) == "x" * 10 + "..."
    assert protocol.safe_text(b"a\x1bb") == "a\\x1bb"
    assert protocol.safe_text({"a": "\x1b"}).isprintable()
    assert protocol.safe_text(protocol.safe_text(ESC)) == protocol.safe_text(ESC)  # idempotent


def test_error_text_is_escaped_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    events: list[fastfeed.ConnectionEvent] = []
    errors: list[str] = []

    async def body() -> None:
        async with exchange(rate=0) as ex:
            async with fastfeed.connect(ex.url, on_event=events.append, backoff_initial=0.05) as feed:
                refuse(ex, "depth.subscribe", ESC)
                with pytest.raises(RequestError) as ei:
                    await feed.subscribe_depth(["BTC_USDT"])
                errors.append(str(ei.value))
                errors.append(ei.value.message)
                for c in list(ex.connections):
                    c.close(4000, ESC)
                await until(lambda: feed.stats["disconnects"] == 1 and feed.connected, what="reconnect")
                raw(ex, '{"method":"ticker.update","params":[{"symbol":"\\u001b[2J","last":"1"}],"id":null}')
                raw(ex, "\x1b[2J not json", text=True)
                await until(
                    lambda: feed.stats["bad_frames"] == 1 and feed.stats["bad_pushes"], what="counted"
                )

    with caplog.at_level(logging.DEBUG):
        run(body)
    texts = errors + [e.reason for e in events] + [r.getMessage() for r in caplog.records]
    assert any("pwned" in t for t in texts)
    for t in texts:
        assert "\x1b" not in t and "\u202e" not in t and "\x9b" not in t and "\x07" not in t, repr(t)


# ------------------------------------------------------------------------------------------
# defect 10 (client part): async callbacks, raising callbacks


async def _async_cb(x: Any) -> None:  # pragma: no cover - never runs
    pass


class _AsyncCallable:
    async def __call__(self, x: Any) -> None:  # pragma: no cover - never runs
        pass


@pytest.mark.parametrize("name", list(client_mod._CALLBACKS))
@pytest.mark.parametrize(
    "cb",
    [_async_cb, _AsyncCallable(), functools.partial(_async_cb)],
    ids=["async def", "async __call__", "partial"],
)
def test_async_callbacks_are_refused_at_registration(name: str, cb: Any) -> None:
    with pytest.raises(TypeError, match="async callbacks are not supported"):
        fastfeed.connect("ws://127.0.0.1:1/", **{name: cb})
    feed = fastfeed.Feed("ws://127.0.0.1:1/")
    with pytest.raises(TypeError, match="async callbacks"):
        setattr(feed, name, cb)
    with pytest.raises(TypeError, match="callable"):
        setattr(feed, name, 5)
    setattr(feed, name, print)  # plain functions are fine
    asyncio.run(feed.close())


def test_callback_returning_a_coroutine_is_counted_not_silent(caplog: pytest.LogCaptureFixture) -> None:
    feed = fastfeed.Feed("ws://127.0.0.1:1/")
    feed.on_ticker = lambda t: _async_cb(t)  # passes the check, returns a coroutine
    with caplog.at_level(logging.ERROR, logger="fastfeed.client"):
        deliver(feed, ticker_msg(), 0)
    assert feed.stats["callback_errors"] == 1
    assert "returned an awaitable" in caplog.text
    asyncio.run(feed.close())


def test_raising_callback_logs_one_traceback_then_counted_lines(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = fastfeed.Feed("ws://127.0.0.1:1/")

    def bad(t: Any) -> None:
        raise ValueError("callback bug")

    feed.on_ticker = bad
    monkeypatch.setattr(client_mod, "LOG_INTERVAL", 1e9)  # nothing is due again in this test
    with caplog.at_level(logging.DEBUG, logger="fastfeed.client"):
        for _ in range(100):
            deliver(feed, ticker_msg(), 0)
    recs = [r for r in caplog.records if "callback raised" in r.getMessage()]
    assert len(recs) == 1 and recs[0].exc_info is not None
    assert feed.stats["callback_errors"] == 100
    caplog.clear()
    monkeypatch.setattr(client_mod, "LOG_INTERVAL", 0.0)  # every error is due: counted lines
    with caplog.at_level(logging.DEBUG, logger="fastfeed.client"):
        for _ in range(3):
            deliver(feed, ticker_msg(), 0)
    recs = [r for r in caplog.records if "callback raised" in r.getMessage()]
    assert len(recs) == 3 and all(r.exc_info is None for r in recs)
    assert "99 more since the last line" in recs[0].getMessage()
    assert feed.stats["callback_errors"] == 103
    assert len(feed.latest_tickers) == 1  # the data path itself was not affected
    asyncio.run(feed.close())


# ------------------------------------------------------------------------------------------
# defect 11: logging, and TLS mistakes


def test_log_guard_repairs_an_exception_class_in_exc_info(capsys: pytest.CaptureFixture[str]) -> None:
    """aiofastnet hands the loop's exception handler the exception *class*: the stdlib
    then prints "--- Logging error ---" and ~50 lines. The guard makes it one line."""
    client_mod._install_log_guard()
    client_mod._install_log_guard()  # idempotent
    lg = logging.getLogger("asyncio")
    assert lg.filters.count(client_mod._GUARD) == 1
    handler = logging.StreamHandler()
    lg.addHandler(handler)
    try:
        lg.error("SSL handshake failed", exc_info=(type, ConnectionResetError, BaseException.__traceback__))
    finally:
        lg.removeHandler(handler)
    err = capsys.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err
    assert err.strip() == "SSL handshake failed (ConnectionResetError)"


def test_no_log_call_with_mismatched_arguments() -> None:
    """Every %-style log call in fastfeed has as many arguments as placeholders."""
    import ast
    from pathlib import Path

    pkg = Path(fastfeed.__file__).parent
    bad = []
    checked = 0
    for path in sorted(pkg.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("debug", "info", "warning", "error", "exception", "critical")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("log", "logger", "_log")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                checked += 1
                fmt = node.args[0].value.replace("%%", "")
                n = fmt.count("%")
                if n != len(node.args) - 1:
                    bad.append(f"{path.name}:{node.lineno}: {fmt!r} with {len(node.args) - 1} args")
    assert checked > 20 and not bad, (checked, bad)


def test_tls_errors_that_retrying_cannot_fix_fail_start_at_once() -> None:
    import ssl

    assert client_mod.Feed._permanent(ssl.SSLCertVerificationError("bad cert"))
    e = ssl.SSLError(1, "wrong version")
    e.reason = "WRONG_VERSION_NUMBER"  # type: ignore[misc]
    assert client_mod.Feed._permanent(e)
    assert not client_mod.Feed._permanent(ConnectionResetError())
    assert not client_mod.Feed._permanent(ConnectionRefusedError())
    assert not client_mod.Feed._permanent(asyncio.TimeoutError())
    feed = fastfeed.Feed("wss://127.0.0.1:1/")
    assert "ws:// URL" in feed._tls_hint(ConnectionResetError())
    assert "ws:// URL" in feed._tls_hint(None)
    assert feed._tls_hint(ConnectionRefusedError()) == ""
    assert fastfeed.Feed("ws://127.0.0.1:1/")._tls_hint(ConnectionResetError()) == ""
    asyncio.run(feed.close())


def test_wss_to_a_plain_server_names_tls() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex:
            url = ex.url.replace("ws://", "wss://")
            with pytest.raises(ConnectFailed) as ei:
                async with fastfeed.connect(url, connect_timeout=1.0):
                    pass
            assert isinstance(ei.value, ConnectionError)
            assert "could not connect" in str(ei.value) and "ws:// URL" in str(ei.value)

    run(body)
