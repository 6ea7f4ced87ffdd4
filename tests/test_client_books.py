"""The live client's book state: live/stale across unsubscribe and disconnects, the
lookup rule of ``Feed.book`` (no empty book for a typo) and drift events.

Network tests run against the bundled exchange on 127.0.0.1 port 0; verdicts are counts
and states, never timings (timeouts are hang guards only).
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

import pytest

import fastfeed
from fastfeed.errors import UnknownSymbol
from fastfeed.exchange import Exchange, ExchangeConfig

from helpers import run_guarded, until

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

SYMS = ["BTC_USDT", "ETH_USDT"]
HANG_GUARD = 120.0


#: one async test body with the hang guard; it must leave no task behind
run = functools.partial(run_guarded, no_tasks_left=True)


def exchange(**kw: Any) -> Exchange:
    cfg: dict[str, Any] = dict(symbols=SYMS, seed=11, rate=500.0)
    cfg.update(kw)
    return Exchange(ExchangeConfig(**cfg))


def depth(clean: bool, symbol: str, bids: list[list[str]], asks: list[list[str]]) -> str:
    return json.dumps(
        {"method": "depth.update", "id": None, "params": [clean, {"bids": bids, "asks": asks}, symbol]}
    )


def test_unsubscribe_marks_books_stale_and_keeps_levels() -> None:
    async def body() -> None:
        async with exchange() as ex, fastfeed.connect(ex.url) as feed:
            await feed.subscribe_depth(SYMS)
            book = feed.book("BTC_USDT")  # subscribed: exists before its snapshot
            await until(lambda: all(feed.book(s).live for s in SYMS), "live books")
            assert book.stale_since == 0 and feed.stats["stale_books"] == 0
            before = time.time_ns()
            await feed.unsubscribe_depth(["BTC_USDT"])
            b = feed.book("BTC_USDT")
            assert not b.live and b.stale_since >= before
            assert b.n_bids > 0 and b.n_asks > 0  # levels kept, flagged
            assert feed.book("ETH_USDT").live  # the other symbol is untouched
            assert feed.stats["stale_books"] == 1
            await feed.unsubscribe_depth()  # all
            assert not feed.book("ETH_USDT").live
            ex.pause()

    run(body)


def test_books_are_stale_while_disconnected_and_live_after_the_next_snapshot() -> None:
    seen: list[tuple[str, list[bool]]] = []
    holder: dict[str, fastfeed.Feed] = {}

    def on_event(ev: fastfeed.ConnectionEvent) -> None:
        feed = holder.get("feed")
        if feed is not None and ev.kind in ("disconnected", "reconnecting"):
            seen.append((ev.kind, [b.live for b in feed.engine.books.values()]))

    async def body() -> None:
        async with exchange() as ex:
            async with fastfeed.connect(ex.url, on_event=on_event, backoff_initial=0.05) as feed:
                holder["feed"] = feed
                await feed.subscribe_depth(SYMS)
                await until(lambda: all(feed.book(s).live for s in SYMS), "live books")
                ex.faults.drop()
                await until(lambda: feed.stats["connects"] == 2 and feed.connected, "reconnect")
                await until(lambda: all(feed.book(s).live for s in SYMS), "live again")
                assert all(feed.book(s).stale_since == 0 for s in SYMS)

    run(body)
    assert seen and seen[0][0] == "disconnected"
    assert all(not any(lives) for _kind, lives in seen), seen


def test_feed_book_of_an_unknown_symbol_raises_and_creates_nothing() -> None:
    name = f"fastfeed-test-books-{os.getpid()}"

    async def body() -> None:
        async with exchange() as ex, fastfeed.connect(ex.url, shm_name=name) as feed:
            await feed.subscribe_depth(["BTC_USDT"])
            with pytest.raises(UnknownSymbol, match="BTCUSDT"):
                feed.book("BTCUSDT")  # a typo
            with pytest.raises(KeyError):  # UnknownSymbol is a KeyError too
                feed.book("ETH_USDT")  # not subscribed to depth
            assert "BTCUSDT" not in feed.engine.books
            reader = fastfeed.attach(name)
            try:
                assert "BTCUSDT" not in reader.symbols
            finally:
                reader.close()
            with pytest.raises(TypeError):
                feed.book(b"BTC_USDT")  # type: ignore[arg-type]
            ex.pause()

    run(body)


def test_a_drifted_book_is_an_event_and_in_stats() -> None:
    events: list[fastfeed.ConnectionEvent] = []
    feed = fastfeed.Feed("ws://127.0.0.1:9/ws/v1/", on_event=events.append)
    eng = feed.engine
    eng.feed(depth(True, "BTC_USDT", [["100", "1"], ["99", "2"]], [["101", "1"], ["102", "2"]]))
    assert eng.book("BTC_USDT").live
    # the server's next snapshot disagrees: 99 has another amount, 98 is missing locally
    eng.feed(depth(True, "BTC_USDT", [["100", "1"], ["99", "3"], ["98", "1"]], [["101", "1"], ["102", "2"]]))
    feed._check_drift()
    drift = [e for e in events if e.kind == "drift"]
    assert len(drift) == 1 and "BTC_USDT" in drift[0].reason
    assert feed.stats["drift"]["drifted"] == 1
    assert feed.stats["drift"]["by_symbol"] == {"BTC_USDT": 1}
    feed._check_drift()  # reported once
    assert len([e for e in events if e.kind == "drift"]) == 1
    # an equal snapshot is no drift
    eng.feed(depth(True, "BTC_USDT", [["100", "1"], ["99", "3"], ["98", "1"]], [["101", "1"], ["102", "2"]]))
    feed._check_drift()
    assert len([e for e in events if e.kind == "drift"]) == 1
    eng.close()


def test_feed_options_reach_the_engine() -> None:
    feed = fastfeed.connect("ws://127.0.0.1:9/ws/v1/", trade_dedup_window=3, drift_check=False)
    assert feed.engine.trade_dedup_window == 3 and feed.engine.drift_check is False
    feed.engine.close()


def test_a_snapshot_before_the_unsubscribe_ack_does_not_leave_the_book_live() -> None:
    """The server may push one more snapshot before it takes the unsubscribe: the book must
    still be stale once ``unsubscribe_depth`` returns (it will not be updated again)."""

    async def body() -> None:
        async with exchange() as ex, fastfeed.connect(ex.url) as feed:
            await feed.subscribe_depth(SYMS)
            await until(lambda: all(feed.book(s).live for s in SYMS), "live books")
            real = feed._request_when_ready

            async def late_snapshot_then_ack(method: str, params: list[Any]) -> Any:
                feed.engine.feed(depth(True, "BTC_USDT", [["1", "1"]], [["2", "1"]]))
                return await real(method, params)

            feed._request_when_ready = late_snapshot_then_ack  # type: ignore[method-assign]
            await feed.unsubscribe_depth(["BTC_USDT"])
            assert not feed.book("BTC_USDT").live
            assert feed.book("ETH_USDT").live
            ex.pause()

    run(body)


def test_a_symbol_refused_on_resubscribe_is_dropped_and_the_rest_goes_on() -> None:
    """After a reconnect the server refuses one name (a delisted symbol): that name leaves
    the registry with a ``subscription_refused`` event, the others are resubscribed and
    the feed stays up (it used to reconnect forever)."""
    events: list[fastfeed.ConnectionEvent] = []

    async def body() -> None:
        ex1 = exchange()
        await ex1.start()
        port = ex1.port
        try:
            async with fastfeed.connect(
                ex1.url, on_event=events.append, backoff_initial=0.05, backoff_max=0.2
            ) as feed:
                await feed.subscribe_depth(SYMS)
                await feed.subscribe_trades(SYMS)
                await until(lambda: all(feed.book(s).live for s in SYMS), "live books")
                await ex1.close()
                await until(lambda: not feed.connected, "disconnect")
                async with exchange(symbols=["BTC_USDT"], port=port) as ex2:
                    await until(
                        lambda: feed.connected and feed.book("BTC_USDT").live,
                        "resubscribed to the remaining symbol",
                    )
                    assert feed.subscriptions == {"depth": ["BTC_USDT"], "trades": ["BTC_USDT"]}
                    assert feed.stats["refused_subscriptions"] == {"depth": 1, "trades": 1}
                    assert feed.stats["connects"] == 2
                    assert not feed.book("ETH_USDT").live
                    ex2.pause()
        finally:
            await ex1.close()

    run(body)
    refused = [e.reason for e in events if e.kind == "subscription_refused"]
    assert len(refused) == 2 and all("ETH_USDT" in r for r in refused), refused
    assert not any(e.kind == "resubscribe_failed" for e in events)
