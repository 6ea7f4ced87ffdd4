"""The client's ticker path: ticker pushes are parsed by the engine (ticker table and
history); ``latest_tickers`` is a view of the table, and ``Ticker`` records are built only
for a callback or stream (docs/engine-semantics.md section 4d)."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from test_client import exchange, run, until
from test_client_hostile import raw

import fastfeed
from fastfeed.client import TickerMap

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native


def ticker_text(*symbols: str, last: str = "1.5", method: str = "ticker.update", nested: bool = False) -> str:
    recs = [{"symbol": s, "last": last, "timestamp": 1_700_000_000_000 + i} for i, s in enumerate(symbols)]
    return json.dumps({"method": method, "params": [recs] if nested else recs, "id": None})


def test_latest_tickers_is_a_view_of_the_engine_table() -> None:
    feed = fastfeed.Feed("ws://127.0.0.1:1/")
    latest = feed.latest_tickers
    assert isinstance(latest, TickerMap) and latest == {} and len(latest) == 0
    feed._feed_payload(ticker_text("btc_usdt", "ETH_USDT", nested=True), 5)
    assert len(latest) == 2 and list(latest) == ["BTC_USDT", "ETH_USDT"]  # a live view
    assert "BTC_USDT" in latest and "btc_usdt" in latest and "XRP_USDT" not in latest
    assert 5 not in latest and "BTC USDT" not in latest  # never raises on odd keys
    t = latest["BTC_USDT"]
    assert isinstance(t, fastfeed.Ticker) and t.last == 1.5 and t.recv_ns == 5 and math.isnan(t.best_bid)
    assert latest.get("XRP_USDT") is None
    feed._feed_payload(ticker_text("BTC_USDT", last="2", method="all_ticker.update"), 6)
    assert latest["BTC_USDT"].last == 2.0 and latest["BTC_USDT"].all_ticker
    assert feed.stats["bad_pushes"] == {}
    asyncio.run(feed.close())


def test_records_reach_callback_and_streams_in_order() -> None:
    got: list[fastfeed.Ticker] = []
    feed = fastfeed.Feed("ws://127.0.0.1:1/", on_ticker=got.append)
    stream = feed.tickers()
    feed._feed_payload(ticker_text("A", "B", "A", nested=True), 9)
    feed._feed_payload(ticker_text("C"), 10)
    assert [(t.symbol, t.timestamp, t.recv_ns) for t in got] == [
        ("A", 1_700_000_000_000, 9),
        ("B", 1_700_000_000_001, 9),
        ("A", 1_700_000_000_002, 9),
        ("C", 1_700_000_000_000, 10),
    ]
    assert len(stream) == 4
    assert feed.latest_tickers["A"].timestamp == 1_700_000_000_002
    asyncio.run(feed.close())


def test_records_pushed_out_of_the_history_before_dispatch_are_counted() -> None:
    got: list[fastfeed.Ticker] = []
    feed = fastfeed.Feed("ws://127.0.0.1:1/", on_ticker=got.append, engine=fastfeed.Engine(ticker_capacity=2))
    feed._feed_payload(ticker_text("A", "B", "C", "D", "E"), 1)
    assert [t.symbol for t in got] == ["D", "E"]
    assert feed.stats["dropped"]["ticker_history"] == 3
    assert len(feed.latest_tickers) == 5  # the table has them all
    asyncio.run(feed.close())


def test_bad_records_counted_as_bad_pushes() -> None:
    feed = fastfeed.Feed("ws://127.0.0.1:1/", options=fastfeed.FeedOptions(max_ticker_symbols=1))
    feed._feed_payload(
        '{"method":"ticker.update","params":[{"symbol":"A","last":true},{"symbol":""},5,'
        '{"symbol":"B","last":"1"},{"symbol":"C","last":"1"},{"symbol":"B","last":"1e400"}]}'
    )
    st = feed.stats
    assert st["bad_pushes"] == {"bad_field": 2, "bad_symbol": 1, "bad_shape": 1}
    assert st["dropped"]["ticker_symbols"] == 1 and list(feed.latest_tickers) == ["B"]
    asyncio.run(feed.close())


def test_listener_hands_tickers_on_only_to_consumers() -> None:
    """Over a real connection: with no callback and no stream the listener does not call
    into the feed for ticker frames (the engine still stores them); a callback or a stream
    switches the hand-over on, and off again when it goes."""
    got: list[fastfeed.Ticker] = []
    calls: list[int] = []

    async def body() -> None:
        async with exchange(rate=0) as ex, fastfeed.connect(ex.url) as feed:
            real = feed._on_ticker_records

            def spy(first: int, recv_ns: int) -> None:
                calls.append(first)
                real(first, recv_ns)

            lst = feed._listener
            assert lst is not None and lst.on_tickers is not None
            assert lst.ticker_streams is feed._streams["ticker"] and not lst.ticker_callback
            lst.on_tickers = spy
            raw(ex, ticker_text("A"))
            await until(lambda: "A" in feed.latest_tickers, what="stored")
            assert calls == []
            feed.on_ticker = got.append
            assert lst.ticker_callback
            raw(ex, ticker_text("B"))
            await until(lambda: len(got) == 1, what="callback")
            assert got[0].symbol == "B" and calls == [1]
            feed.on_ticker = None
            assert not lst.ticker_callback
            stream = feed.tickers()
            raw(ex, ticker_text("C", "D"))
            t = await asyncio.wait_for(stream.__anext__(), 30)
            assert t.symbol == "C" and calls == [1, 2]
            stream.close()
            raw(ex, ticker_text("E"))
            await until(lambda: "E" in feed.latest_tickers, what="stored")
            assert calls == [1, 2] and len(got) == 1

    run(body)
