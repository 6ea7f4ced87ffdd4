"""The local exchange over a real socket (127.0.0.1, port 0): every method of the API
document, subscriptions, pushes, replies and error replies. Clients are the small picows
helper (``SimpleClient``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from fastfeed.exchange import BookSet, ErrorCode, Exchange, ExchangeConfig, SimpleClient, auth_params

from helpers import run_guarded

SEED = 7
SYMS = ["BTC_USDT", "ETH_USDT", "XRP_USDT"]


run = run_guarded  # one async test body with the hang guard


def cfg(**kw: Any) -> ExchangeConfig:
    base: dict[str, Any] = dict(seed=SEED, symbols=SYMS, rate=0)
    base.update(kw)
    return ExchangeConfig(**base)


def assert_books_equal(ex: Exchange, books: BookSet, symbols: list[str]) -> None:
    for s in symbols:
        bids, asks = ex.book(s)
        np.testing.assert_array_equal(books[s].bids, bids, err_msg=s)
        np.testing.assert_array_equal(books[s].asks, asks, err_msg=s)


def test_ping_and_time_echo_any_request_id() -> None:
    async def body() -> None:
        async with Exchange(cfg()) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                for rid in (1, 1620432002431491, 5234567890.1234567, "42", 2**70):
                    rep = await c.request("server.ping", req_id=rid)
                    assert rep == {"error": None, "result": "pong", "id": rid}
                c.send('{"method":"server.ping","id":77}')  # doc form without params
                await c.wait_for(lambda: any(r["id"] == 77 for r in c.replies))
                before = int(time.time())
                rep = await c.request("server.time")
                after = time.time()
                assert rep["error"] is None and before <= rep["result"] <= after  # whole seconds
                assert isinstance(rep["result"], int)
                assert c.frame_types["BINARY"] == c.frames  # zlib BINARY by default
            finally:
                await c.close()

    run(body)


def test_depth_subscribe_snapshot_then_increments_rebuild_the_book() -> None:
    async def body() -> None:
        async with Exchange(cfg(rate=2000)) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                rep = await c.request("depth.subscribe", ["btc_usdt", "ETH_USDT"])
                assert rep == {"error": None, "result": {"status": "success"}, "id": 1}
                await c.wait_for(lambda: len(c.pushes("depth.update")) > 300)
                ex.pause()
                await c.ping()
                depth = c.pushes("depth.update")
                first = {}
                for m in depth:
                    first.setdefault(m["params"][2], m)
                assert set(first) == {"BTC_USDT", "ETH_USDT"}  # upper-cased, XRP never sent
                for m in first.values():
                    clean, levels, _ = m["params"]
                    assert clean is True
                    assert len(levels["asks"]) == len(levels["bids"]) == ex.config.book_levels
                assert any(m["params"][0] is False for m in depth)
                books = BookSet()
                for m in c.messages:
                    books.feed(m)
                assert_books_equal(ex, books, ["BTC_USDT", "ETH_USDT"])
                assert set(c.methods) == {"depth.update"}
            finally:
                await c.close()

    run(body)


def test_trades_subscribe_replays_recent_trades_then_streams() -> None:
    async def body() -> None:
        async with Exchange(cfg(trade_replay=10)) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                await c.request("depth.subscribe", [])  # wake the market; rate=0, drive it by hand
                ex.step(600)
                expected = ex.market.recent_trades("XRP_USDT")
                await c.request("trades.subscribe", ["XRP_USDT"])
                ex.step(600)
                await c.ping()
                trades = c.pushes("trades.update")
                assert trades and all(m["params"][2] == "XRP_USDT" for m in trades)
                replay = trades[0]["params"]
                assert replay[0] is True and len(replay[1]) == 10
                assert replay[1] == expected
                hwm = replay[1][0]["id"]
                assert [t["id"] for t in replay[1]] == sorted((t["id"] for t in replay[1]), reverse=True)
                for m in trades[1:]:
                    assert m["params"][0] is False
                    ids = [t["id"] for t in m["params"][1]]
                    assert ids == sorted(ids, reverse=True) and ids[-1] > hwm
                    hwm = ids[0]
                assert ex.market.recent_trades("XRP_USDT")[0]["id"] == hwm
            finally:
                await c.close()

    run(body)


def test_ticker_and_all_ticker() -> None:
    async def body() -> None:
        async with Exchange(cfg(rate=1000, all_ticker_interval=0.02, ticker_nested=False)) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                await c.request("ticker.subscribe", ["ETH_USDT"])
                await c.wait_for(lambda: len(c.pushes("ticker.update")) >= 3)
                for m in c.pushes("ticker.update"):
                    (t,) = m["params"]
                    assert t["symbol"] == "ETH_USDT" and float(t["best_bid"]) < float(t["best_ask"])
                await c.request("all_ticker.subscribe")
                await c.wait_for(lambda: len(c.pushes("all_ticker.update")) >= 3)
                first = c.pushes("all_ticker.update")[0]
                assert {t["symbol"] for t in first["params"]} == set(SYMS)
                rep = await c.request("all_ticker.unsubscribe")
                n = len(c.pushes("all_ticker.update"))
                assert rep["result"] == {"status": "success"}
                n_ticker = len(c.pushes("ticker.update"))
                await c.wait_for(lambda: len(c.pushes("ticker.update")) >= n_ticker + 3)
                assert len(c.pushes("all_ticker.update")) == n
            finally:
                await c.close()

    run(body)


def test_unsubscribe_stops_pushes_and_empty_list_means_all() -> None:
    async def body() -> None:
        async with Exchange(cfg()) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                await c.request("depth.subscribe", ["BTC_USDT", "ETH_USDT"])
                await c.request("trades.subscribe", [])
                ex.step(300)
                await c.request("depth.unsubscribe", ["btc_usdt"])
                mark = len(c.messages)
                ex.step(300)
                await c.ping()
                after = c.messages[mark:]
                assert not any(m["method"] == "depth.update" and m["params"][2] == "BTC_USDT" for m in after)
                assert any(m["method"] == "depth.update" and m["params"][2] == "ETH_USDT" for m in after)
                await c.request("depth.unsubscribe", [])
                await c.request("trades.unsubscribe")  # no params at all: also "all"
                mark = len(c.messages)
                ex.step(300)
                await c.ping()
                assert c.messages[mark:] == []
                conn = next(iter(ex.connections))
                assert not conn.has_public and not conn.subscribed("depth", "ETH_USDT")
            finally:
                await c.close()

    run(body)


def test_subscribe_argument_errors() -> None:
    async def body() -> None:
        async with Exchange(cfg(symbols=[f"S{i}_USDT" for i in range(40)])) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                rep = await c.request("depth.subscribe", ["NOPE_USDT"])
                assert rep["error"]["code"] == ErrorCode.INVALID_ARGUMENT and rep["result"] is None
                assert "NOPE_USDT" in rep["error"]["message"]
                rep = await c.request("trades.subscribe", [f"S{i}_USDT" for i in range(31)])
                assert rep["error"]["code"] == ErrorCode.INVALID_ARGUMENT
                rep = await c.request("trades.subscribe", [f"S{i}_USDT" for i in range(30)])
                assert rep["error"] is None
                rep = await c.request("ticker.subscribe", [1, 2])
                assert rep["error"]["code"] == ErrorCode.INVALID_ARGUMENT
                rep = await c.request("depth.subscribe", "BTC_USDT")  # type: ignore[arg-type]
                assert rep["error"]["code"] == ErrorCode.INVALID_ARGUMENT
            finally:
                await c.close()

    run(body)


def test_malformed_and_unknown_requests_get_error_replies_never_a_crash() -> None:
    async def body() -> None:
        async with Exchange(cfg()) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                bad = [
                    "not json",
                    "[1, 2]",
                    '{"id": 5}',
                    '{"id": 6, "method": "nope.nope", "params": []}',
                    '{"id": 7, "method": "server.ping", "params": {}}',
                    '{"ping": "12", "method": "ping", "params": []}',  # a live client's keepalive
                    '{"id": 8, "method": 3}',
                    '{"id": 9, "method": "server.auth", "params": ["only-key"]}',
                    "\xff\xfe",
                    "",
                ]
                for text in bad:
                    c.send(text)
                c.send(b"\x00\x01garbage", binary=True)
                c.send('{"id": 10, "method": "server.ping", "param": []}')  # a Java client's spelling
                c.send('{"id": 11, "method": "server.ping", "params": []}', binary=True)
                await c.wait_for(lambda: len(c.replies) == len(bad) + 3)
                errors = [r for r in c.replies if r["error"] is not None]
                assert len(errors) == len(bad) + 1
                by_id = {r["id"]: r for r in c.replies}
                assert by_id[6]["error"]["code"] == ErrorCode.METHOD_NOT_FOUND
                assert by_id[5]["error"]["code"] == ErrorCode.INVALID_ARGUMENT
                assert by_id[10]["result"] == "pong" and by_id[11]["result"] == "pong"
                assert all(r["result"] is None for r in errors)
                assert (await c.ping())["result"] == "pong"  # still alive
                assert ex.stats["error_replies"] == len(errors)
                c.send('{"id": 12, "method": "server.ping", "params": ["' + "x" * 70000 + '"]}')
                await c.wait_closed()  # beyond max_request_size: closed with 1009, not a crash
                assert c.close_code == 1009
            finally:
                await c.close()
            c = await SimpleClient.connect(ex.url)
            try:
                assert (await c.ping())["result"] == "pong"
            finally:
                await c.close()

    run(body)


def test_string_errors_and_text_replies() -> None:
    async def body() -> None:
        async with Exchange(cfg(error_style="string", text_replies=True, rate=500)) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                rep = await c.request("nope")
                assert isinstance(rep["error"], str) and "nope" in rep["error"]
                assert (await c.ping())["result"] == "pong"
                assert c.frame_types == {"TEXT": 2}
                await c.request("depth.subscribe", ["BTC_USDT"])
                await c.wait_for(lambda: c.frame_types["BINARY"] >= 5)  # pushes stay zlib
            finally:
                await c.close()

    run(body)


def test_private_channels_need_auth_then_flow() -> None:
    async def body() -> None:
        conf = cfg(accounts={"key1": "secret1"}, private_interval=0.01, auth_window=60)
        async with Exchange(conf) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                for ch in ("order", "order_algo", "balance"):
                    for op in ("subscribe", "unsubscribe"):
                        rep = await c.request(f"{ch}.{op}", ["BTC_USDT"])
                        assert rep["error"]["code"] == ErrorCode.REQUIRE_AUTH
                key, ts, sig = auth_params("key1", "secret1")
                rep = await c.request("server.auth", [key, ts, "A" * 44])
                assert rep["error"]["code"] == ErrorCode.REQUIRE_AUTH
                rep = await c.request("server.auth", auth_params("other", "secret1"))
                assert rep["error"]["code"] == ErrorCode.REQUIRE_AUTH
                rep = await c.request(
                    "server.auth", auth_params("key1", "secret1", int(time.time() * 1000) - 3_600_000)
                )
                assert "window" in rep["error"]["message"]
                rep = await c.request("server.auth", [key, int(ts), sig])  # numeric timestamp accepted
                assert rep == {"error": None, "result": {"status": "success"}, "id": rep["id"]}
                for ch, params in (("order", []), ("order_algo", []), ("balance", ["usdt"])):
                    assert (await c.request(f"{ch}.subscribe", params))["error"] is None
                await c.wait_for(
                    lambda: all(
                        len(c.pushes(m)) >= 3 for m in ("order.update", "balance.update", "order_algo.update")
                    ),
                    timeout=60,
                )
                assert {m["params"][0]["currency"] for m in c.pushes("balance.update")} == {"USDT"}
                o = c.pushes("order.update")[0]["params"][0]
                assert o["symbol"] in SYMS and len(o["id"]) == 32
                await c.request("order.unsubscribe", [])
                n = len(c.pushes("order.update"))
                nb = len(c.pushes("balance.update"))
                await c.wait_for(lambda: len(c.pushes("balance.update")) >= nb + 5, timeout=60)
                assert len(c.pushes("order.update")) == n
                assert ex.account("key1") is not None and ex.account("key1").steps > 0
            finally:
                await c.close()

    run(body)


def test_any_path_is_answered_and_connections_are_tracked() -> None:
    async def body() -> None:
        async with Exchange(cfg()) as ex:
            base = ex.url.removesuffix("/ws/v1/")
            clients = [await SimpleClient.connect(u) for u in (ex.url, base + "/", base + "/other/path?x=1")]
            try:
                await ex.wait_for_connections(3, timeout=120)  # a hang guard
                for c in clients:
                    assert (await c.ping())["result"] == "pong"
                paths = sorted(conn.path for conn in ex.iter_connections())
                assert paths == sorted(["/ws/v1/", "/", "/other/path?x=1"])
                assert ex.stats["connections_total"] == 3
            finally:
                for c in clients:
                    await c.close()

    run(body)


def test_two_clients_see_the_same_market() -> None:
    async def body() -> None:
        async with Exchange(cfg(rate=3000, snapshot_interval=0.05, book_levels=20)) as ex:
            a = await SimpleClient.connect(ex.url)
            b = await SimpleClient.connect(ex.url)
            try:
                await a.request("depth.subscribe", [])
                await b.request("depth.subscribe", ["ETH_USDT"])
                await a.wait_for(lambda: sum(m["params"][0] for m in a.pushes("depth.update")) > 3 * 3)
                ex.pause()
                await a.ping()
                await b.ping()
                ba, bb = BookSet(), BookSet()
                for m in a.messages:
                    ba.feed(m)
                for m in b.messages:
                    bb.feed(m)
                assert_books_equal(ex, ba, SYMS)
                assert_books_equal(ex, bb, ["ETH_USDT"])
                assert set(bb.books) == {"ETH_USDT"}
            finally:
                await a.close()
                await b.close()

    run(body)


@pytest.mark.parametrize("shuffle", [False, True])
def test_pregenerated_cycle_keeps_books_consistent_across_wraps(shuffle: bool) -> None:
    async def body() -> None:
        conf = cfg(rate=None, pregenerate=1500, batch=256, all_ticker_interval=0.02)
        ex = Exchange(conf)
        ex.faults.shuffle_levels = shuffle
        async with ex:
            assert ex._cycle is not None and len(ex._cycle) >= 1500
            c = await SimpleClient.connect(ex.url)
            try:
                await c.request("depth.subscribe", [])
                await c.request("trades.subscribe", [])
                await c.request("all_ticker.subscribe")
                await c.wait_for(
                    lambda: c.frames > 4000 and len(c.pushes("all_ticker.update")) > 2, timeout=120
                )
                ex.pause()
                await c.ping()
                books = BookSet()
                seen: set[str] = set()
                for m in c.pushes("depth.update"):
                    sym = m["params"][2]
                    if sym not in seen:  # a depth subscription starts at the next snapshot
                        assert m["params"][0] is True
                        seen.add(sym)
                    books.feed(m)
                assert seen == set(SYMS)
                assert_books_equal(ex, books, SYMS)
            finally:
                await c.close()

    run(body)


def test_periodic_snapshots() -> None:
    async def body() -> None:
        async with Exchange(cfg(rate=200, snapshot_interval=0.02)) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                await c.request("depth.subscribe", ["BTC_USDT"])
                await c.wait_for(lambda: sum(m["params"][0] for m in c.pushes("depth.update")) >= 4)
            finally:
                await c.close()

    run(body)
