"""The live client (``fastfeed.connect``) end to end against the bundled local exchange.

Every test starts a real :class:`fastfeed.exchange.Exchange` on 127.0.0.1 port 0 in-process
and talks to it over a real socket with the compiled picows listener.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from typing import Any

import numpy as np
import pytest

import fastfeed
from fastfeed.exchange import Exchange, ExchangeConfig
from fastfeed.protocol import AuthError, RequestError, RequestTimeout

from helpers import run_guarded, until

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

KEY, SECRET = "fastfeed-test-key", "s3cr3t-do-not-print"
SYMS = ["BTC_USDT", "ETH_USDT", "SOL_USDT"]


#: Hang guards, not verdicts: a test body or a wait that takes this long is hung. They are
#: generous so that a slow or busy machine never turns into a failure; every verdict here
#: is about counts and state, never about how fast something happened.
HANG_GUARD = 120.0


#: one async test body with the hang guard; it must leave no task behind
run = functools.partial(run_guarded, no_tasks_left=True)


def exchange(**kw: Any) -> Exchange:
    cfg = dict(symbols=SYMS, seed=7, rate=2000.0, accounts={KEY: SECRET}, private_interval=0.05)
    cfg.update(kw)
    return Exchange(ExchangeConfig(**cfg))


def assert_books_equal(feed: fastfeed.Feed, ex: Exchange, symbols: list[str]) -> None:
    for s in symbols:
        bids, asks = ex.book(s)
        book = feed.book(s)
        np.testing.assert_array_equal(book.bids, bids[: book.depth], err_msg=f"{s} bids")
        np.testing.assert_array_equal(book.asks, asks[: book.depth], err_msg=f"{s} asks")


# -- requests ------------------------------------------------------------------------------


def test_ping_time_and_error_replies() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex, fastfeed.connect(ex.url) as feed:
            assert await feed.ping() == "pong"
            before = int(time.time())
            t = await feed.server_time()
            assert isinstance(t, int) and before <= t <= time.time()  # the server's clock is ours
            with pytest.raises(RequestError) as ei:
                await feed.request("no.such_method", [])
            assert ei.value.code == 4 and ei.value.method == "no.such_method"
            assert feed.stats["request_errors"] == 1

    run(body)


def test_error_reply_as_plain_string_and_text_frames() -> None:
    async def body() -> None:
        async with exchange(rate=0, error_style="string", text_replies=True) as ex:
            async with fastfeed.connect(ex.url) as feed:
                assert await feed.ping() == "pong"
                with pytest.raises(RequestError) as ei:
                    await feed.request("no.such_method", [])
                assert ei.value.code is None and ei.value.message

    run(body)


def test_request_timeout_when_server_stalls() -> None:
    """A stalled server never answers, so the short timeout of that request must fire;
    the requests to the healthy server keep the (generous) default."""

    async def body() -> None:
        async with exchange(rate=0) as ex:
            async with fastfeed.connect(ex.url, request_timeout=HANG_GUARD, ping_interval=3600) as feed:
                ex.faults.stall()
                with pytest.raises(RequestTimeout, match="within 0.3 s"):
                    await feed.request("server.ping", timeout=0.3)
                assert feed.stats["request_timeouts"] == 1
                ex.faults.unstall()  # the late pong is an unmatched reply, not this ping's
                assert await feed.ping() == "pong"
                assert feed.stats["request_timeouts"] == 1 and feed.stats["connects"] == 1
                assert feed.stats["unmatched_replies"] == 1

    run(body)


# -- public channels -----------------------------------------------------------------------


def test_depth_trades_ticker_all_ticker_end_to_end() -> None:
    async def body() -> None:
        async with exchange() as ex, fastfeed.connect(ex.url) as feed:
            tickers = feed.tickers()
            await feed.subscribe_depth(SYMS)
            await feed.subscribe_trades(SYMS)
            await feed.subscribe_ticker(["btc_usdt"])  # symbols are upper-cased
            await feed.subscribe_all_ticker()
            await until(lambda: all(feed.book(s).n_bids and feed.book(s).n_asks for s in SYMS), what="books")
            await until(lambda: feed.trades.count > 0, what="trades")
            t = await asyncio.wait_for(tickers.__anext__(), HANG_GUARD)
            assert isinstance(t, fastfeed.Ticker) and t.symbol in SYMS
            await until(
                lambda: (
                    any(x.all_ticker for x in feed.latest_tickers.values())
                    or feed.stats["engine"]["messages"]["all_ticker.update"] > 0
                ),
                what="all_ticker",
            )
            for s in SYMS:
                b = feed.book(s)
                assert b.best_bid < b.best_ask
                assert np.all(np.diff(b.bids[:, 0]) < 0) and np.all(np.diff(b.asks[:, 0]) > 0)
            tr = feed.trades.latest(feed.trades.count)
            names = feed.engine.symbols
            assert {names[i] for i in np.unique(tr["symbol"])} <= set(SYMS)
            assert set(feed.subscriptions) == {"depth", "trades", "ticker", "all_ticker"}

            # unsubscribe: the traffic of that channel stops. The server handles requests in
            # order and a ping's reply comes after everything sent before it, so after the
            # round trip no trade can still be in flight; then the market moves on (many
            # depth updates, new trades generated) and none of its trades arrive.
            await feed.unsubscribe_trades([])
            await feed.unsubscribe_all_ticker()
            await feed.ping()
            n, next_id = feed.trades.count, ex.market.next_trade_id
            all_tickers = feed.stats["engine"]["messages"]["all_ticker.update"]
            depth0 = feed.stats["engine"]["messages"]["depth.update"]
            await until(
                lambda: (
                    feed.stats["engine"]["messages"]["depth.update"] >= depth0 + 500
                    and ex.market.next_trade_id > next_id + 20
                ),
                what="more market traffic",
            )
            await feed.ping()
            assert feed.trades.count == n
            assert feed.stats["engine"]["messages"]["all_ticker.update"] == all_tickers
            assert "trades" not in feed.subscriptions and "all_ticker" not in feed.subscriptions

    run(body)


def test_more_than_30_symbols_are_split_into_several_requests() -> None:
    many = [f"C{i:02d}_USDT" for i in range(45)]

    async def body() -> None:
        async with exchange(symbols=many, rate=0, max_subscribe_symbols=30) as ex:
            async with fastfeed.connect(ex.url) as feed:
                before = feed.stats["requests"]
                await feed.subscribe_depth(many)
                assert feed.stats["requests"] - before == 2
                await until(lambda: all(feed.book(s).version > 0 for s in many), what="snapshots")

    run(body)


def test_high_rate_books_equal_the_exchange_books() -> None:
    async def body() -> None:
        async with exchange(rate=None, batch=256) as ex, fastfeed.connect(ex.url) as feed:
            await feed.subscribe_depth(SYMS)
            await feed.subscribe_trades(SYMS)
            # as fast as the exchange can send: a count of updates, however long it takes
            await until(lambda: feed.stats["engine"]["messages"]["depth.update"] > 5000, what="updates")
            ex.pause()
            # the exchange no longer sends; drain what is in flight, then compare
            await feed.ping()
            assert_books_equal(feed, ex, SYMS)
            st = feed.stats["engine"]
            assert sum(st["rejects"].values()) == 0

    run(body)


# -- private channels ----------------------------------------------------------------------


def test_auth_and_private_channels() -> None:
    async def body() -> None:
        async with exchange() as ex:
            async with fastfeed.connect(ex.url, KEY, SECRET) as feed:
                assert feed.authenticated
                orders, algos, balances = feed.orders(), feed.order_algos(), feed.balances()
                seen: list[Any] = []
                feed.on_order = seen.append
                await feed.subscribe_orders(SYMS)
                await feed.subscribe_order_algo(SYMS)
                await feed.subscribe_balance(["USDT", "BTC"])
                o = await asyncio.wait_for(orders.__anext__(), HANG_GUARD)
                a = await asyncio.wait_for(algos.__anext__(), HANG_GUARD)
                b = await asyncio.wait_for(balances.__anext__(), HANG_GUARD)
                assert isinstance(o, fastfeed.OrderUpdate) and len(o.id) == 32 and o.symbol in SYMS
                assert isinstance(a, fastfeed.OrderAlgoUpdate) and -2 <= a.status <= 2
                assert isinstance(b, fastfeed.BalanceUpdate) and b.currency
                assert seen and seen[0] == o
                await feed.unsubscribe_orders([])
                await feed.unsubscribe_order_algo([])
                await feed.unsubscribe_balance([])
                assert not feed.subscriptions

    run(body)


def test_auth_refused_and_private_channels_without_auth() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex:
            with pytest.raises(AuthError) as ei:
                async with fastfeed.connect(ex.url, KEY, "wrong-secret"):
                    pass
            assert "wrong-secret" not in str(ei.value)
            async with fastfeed.connect(ex.url) as feed:
                with pytest.raises(AuthError):
                    await feed.subscribe_orders(["BTC_USDT"])  # no keys: refused locally
                # and the server refuses a private subscribe before auth
                with pytest.raises(RequestError):
                    await feed.request("balance.subscribe", ["USDT"])

    run(body)


def test_secret_never_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex:
            async with fastfeed.connect(ex.url, KEY, SECRET) as feed:
                assert SECRET not in repr(feed) and SECRET not in str(feed.stats)
                assert SECRET not in repr(vars(feed))

    with caplog.at_level(logging.DEBUG):
        run(body)
    assert SECRET not in caplog.text


# -- connection faults ---------------------------------------------------------------------


def test_drop_reconnects_resubscribes_and_rebuilds_books() -> None:
    events: list[fastfeed.ConnectionEvent] = []

    async def body() -> None:
        async with exchange() as ex:
            async with fastfeed.connect(
                ex.url, KEY, SECRET, on_event=events.append, backoff_initial=0.05
            ) as feed:
                await feed.subscribe_depth(SYMS)
                await feed.subscribe_trades(SYMS)
                await feed.subscribe_balance([])
                await until(lambda: all(feed.book(s).n_bids for s in SYMS), what="books")
                n_trades = feed.trades.count
                ex.faults.drop()
                await until(lambda: feed.stats["connects"] == 2 and feed.connected, what="reconnect")
                await until(lambda: feed.stats["resubscribes"] == 1, what="resubscribe")
                assert feed.authenticated
                await until(lambda: feed.trades.count > n_trades, what="trades after reconnect")
                await until(lambda: all(feed.book(s).n_bids for s in SYMS), what="books rebuilt")
                ex.pause()
                await feed.ping()
                assert_books_equal(feed, ex, SYMS)
                ids = feed.trades.latest(feed.trades.count)["id"]
                per_symbol = feed.trades.latest(feed.trades.count)
                for i in np.unique(per_symbol["symbol"]):
                    sym_ids = ids[per_symbol["symbol"] == i]
                    assert len(np.unique(sym_ids)) == len(sym_ids), "duplicate trades after replay"

    run(body)
    kinds = [e.kind for e in events]
    assert kinds[0] == "connected" and "disconnected" in kinds and "reconnecting" in kinds
    assert kinds.count("connected") == 2 and "resubscribed" in kinds


def test_heartbeat_keeps_an_idle_connection_alive() -> None:
    """Pings every 0.1 s keep a connection alive past a 3 s idle timeout (a spurious close
    would need the process to get no CPU for ~3 s: a margin of 30 ping intervals), and
    without pings the server closes it (bound to happen: nothing is sent)."""

    async def body() -> None:
        async with exchange(rate=0, idle_timeout=3.0) as ex:
            async with fastfeed.connect(ex.url, ping_interval=0.1, data_timeout=None) as feed:
                loop = asyncio.get_running_loop()
                t0, pings0 = loop.time(), ex.stats["requests"]
                # past the idle timeout by the event loop's clock, and pinged all along
                await until(
                    lambda: loop.time() - t0 > 4.5 and ex.stats["requests"] - pings0 >= 20,
                    what="4.5 s of pings",
                )
                assert feed.connected and feed.stats["connects"] == 1 and feed.stats["disconnects"] == 0
        async with exchange(rate=0, idle_timeout=0.5) as ex:
            async with fastfeed.connect(
                ex.url, ping_interval=3600, data_timeout=None, backoff_initial=0.05
            ) as feed:
                # without pings the server closes the idle connection; the client comes back
                await until(lambda: feed.stats["disconnects"] >= 1, what="idle close")
                await until(lambda: feed.connected, what="reconnect")

    run(body)


def test_max_age_recycle() -> None:
    async def body() -> None:
        async with exchange() as ex:
            async with fastfeed.connect(ex.url, max_age=0.5) as feed:
                await feed.subscribe_depth(["BTC_USDT"])
                await until(lambda: feed.stats["recycles"] >= 1 and feed.connected, what="recycle")
                assert feed.stats["last_disconnect_reason"] == "max_age"
                await until(lambda: feed.book("BTC_USDT").n_bids > 0, what="book after recycle")

    run(body)


def test_no_data_watchdog_reconnects() -> None:
    async def body() -> None:
        async with exchange() as ex:
            async with fastfeed.connect(
                ex.url, data_timeout=0.4, ping_interval=30, backoff_initial=0.05
            ) as feed:
                await feed.subscribe_depth(["BTC_USDT"])
                ex.faults.stall()
                await until(lambda: feed.stats["disconnects"] >= 1, what="watchdog")
                assert feed.stats["last_disconnect_reason"] == "no data"
                ex.faults.unstall()
                await until(lambda: feed.connected and feed.book("BTC_USDT").n_bids > 0, what="recovered")

    run(body)


def test_handshake_refused_then_recovers() -> None:
    async def body() -> None:
        async with exchange(rate=0) as ex:
            ex.faults.reject_handshakes = 3
            async with fastfeed.connect(
                ex.url,
                backoff_initial=0.02,
                backoff_max=0.1,
                connect_timeout=HANG_GUARD,
                handshake_timeout=HANG_GUARD,
            ) as feed:
                assert await feed.ping() == "pong"
                assert feed.stats["connect_failures"] == 3

    run(body)


def test_connect_fails_clearly_when_nothing_listens() -> None:
    async def body() -> None:
        ex = exchange(rate=0)
        await ex.start()
        url = ex.url
        await ex.close()
        with pytest.raises(ConnectionError, match="could not connect"):
            async with fastfeed.connect(url, connect_timeout=0.5, backoff_initial=0.05):
                pass

    run(body)


def test_bad_frames_are_counted_not_fatal() -> None:
    async def body() -> None:
        async with exchange() as ex, fastfeed.connect(ex.url) as feed:
            await feed.subscribe_depth(["BTC_USDT"])
            ex.faults.send_garbage()
            ex.faults.send_truncated()
            await until(lambda: feed.stats["bad_frames"] == 2, what="rejections")
            rej = feed.stats["engine"]["rejects"]
            assert rej["zlib_error"] + rej["zlib_truncated"] == 2
            assert await feed.ping() == "pong" and feed.stats["connects"] == 1

    run(body)


def test_slow_consumer_drops_oldest_and_counts() -> None:
    async def body() -> None:
        async with exchange(rate=3000) as ex, fastfeed.connect(ex.url, queue_size=5) as feed:
            stream = feed.tickers()
            await feed.subscribe_ticker(SYMS)
            await until(lambda: stream.dropped > 0, what="drops")
            assert len(stream) == 5
            assert feed.stats["dropped"]["ticker"] >= stream.dropped
            stream.close()
            assert [x async for x in stream]  # the queued items are still delivered, then it ends

    run(body)


def test_uvloop_when_installed() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def body() -> None:
        async with exchange() as ex, fastfeed.connect(ex.url) as feed:
            await feed.subscribe_depth(["BTC_USDT"])
            await until(lambda: feed.book("BTC_USDT").n_bids > 0, what="book")
            assert isinstance(asyncio.get_running_loop(), uvloop.Loop)

    async def main() -> None:
        await asyncio.wait_for(body(), HANG_GUARD)

    uvloop.run(main())


def test_missing_pong_reconnects() -> None:
    """The stalled connection never answers, so its pong timeout must fire. The recovery
    check does not depend on the short pong timeout: if a busy machine delayed a pong on
    the new connection past it, the feed would reconnect again and the subscribe (which
    survives reconnects) and the book would still arrive."""

    async def body() -> None:
        async with exchange(rate=0) as ex:
            async with fastfeed.connect(
                ex.url, ping_interval=0.1, pong_timeout=0.3, data_timeout=None, backoff_initial=0.05
            ) as feed:
                ex.faults.stall()  # this connection only; the next one is served normally
                await until(lambda: feed.stats["disconnects"] >= 1, what="pong timeout")
                assert feed.stats["last_disconnect_reason"] == "pong timeout"
                ex.faults.unstall()
                await until(lambda: feed.connected, what="reconnect")
                await feed.subscribe_depth(["BTC_USDT"])
                await until(lambda: feed.connected and feed.book("BTC_USDT").n_bids > 0, what="book")
                assert feed.stats["connects"] >= 2

    run(body)


def test_shared_memory_books_from_a_live_feed() -> None:
    name = f"fastfeed-test-{os.getpid()}"

    async def body() -> None:
        async with exchange() as ex, fastfeed.connect(ex.url, shm_name=name) as feed:
            await feed.subscribe_depth(SYMS)
            await until(lambda: all(feed.book(s).n_bids for s in SYMS), what="books")
            ex.pause()
            await feed.ping()
            reader = fastfeed.attach(name)
            try:
                for s in SYMS:
                    bids, asks = reader.book(s).snapshot()
                    np.testing.assert_array_equal(bids, feed.book(s).bids)
                    np.testing.assert_array_equal(asks, feed.book(s).asks)
            finally:
                reader.close()
        with pytest.raises(fastfeed.ShmNotFound):  # unlinked when the feed closed
            fastfeed.attach(name)

    run(body)
