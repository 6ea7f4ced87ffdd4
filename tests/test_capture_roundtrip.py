"""Record → replay round trips: a client records live traffic from the local exchange while
its engine builds books; replaying the capture (offline, and over a real socket served by
the exchange) must end with the same books and trades. Runs against both engines through
the shared ``engine_cls`` fixture."""

from __future__ import annotations

import asyncio
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fastfeed.capture import FRAME_BINARY, FRAME_TEXT, CaptureReader, CaptureWriter, record, replay
from fastfeed.exchange import BookSet, Exchange, ExchangeConfig, SimpleClient, decode_payload

from helpers import run_guarded

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

SEED = 5
SYMS = ["BTC_USDT", "ETH_USDT", "DOGE_USDT"]


run = run_guarded  # one async test body with the hang guard


def assert_engine_books(engine: Any, expected: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for sym, (bids, asks) in expected.items():
        book = engine.book(sym)
        np.testing.assert_array_equal(book.bids, bids, err_msg=f"{sym} bids")
        np.testing.assert_array_equal(book.asks, asks, err_msg=f"{sym} asks")


def record_live(path: Path, engine: Any, shuffle: bool) -> tuple[dict[str, Any], int, list[int]]:
    """Run the exchange, record a client's traffic; return the exchange's final books, the
    number of frames received and the ids of the exchange's recent BTC trades."""

    async def body() -> tuple[dict[str, Any], int, list[int]]:
        ex = Exchange(
            ExchangeConfig(seed=SEED, symbols=SYMS, rate=4000, snapshot_interval=0.05, trade_replay=5)
        )
        ex.faults.shuffle_levels = shuffle
        async with ex:
            with CaptureWriter(path, ex.url, meta={"test": "round trip"}) as w:
                c = await SimpleClient.connect(ex.url, engine=engine, capture=w, keep=False)
                try:
                    await c.request("depth.subscribe", [])
                    await c.request("trades.subscribe", SYMS)
                    await c.request("ticker.subscribe", ["BTC_USDT"])
                    await c.wait_for(lambda: c.frames > 1500, timeout=120)
                    ex.pause()
                    await c.ping()  # every push sent before the pause is now in the engine
                    ex.faults.send_garbage()  # the capture keeps bad frames too
                    await c.ping()
                    assert c.errors == ["zlib_error"]
                finally:
                    await c.close()
            return ex.books(), c.frames, [t["id"] for t in ex.market.recent_trades("BTC_USDT")]

    return run(body)


@pytest.mark.parametrize("shuffle", [False, True], ids=["live-order", "shuffled"])
def test_record_then_replay_gives_the_live_books(tmp_path: Path, engine_cls: Any, shuffle: bool) -> None:
    path = tmp_path / "live.ffcap"
    live = engine_cls(depth=200, trade_capacity=65536)
    expected, frames, recent_btc = record_live(path, live, shuffle)
    assert set(expected) == set(SYMS)
    assert_engine_books(live, expected)  # the live client agrees with the exchange

    with CaptureReader(path) as r:
        assert r.header.meta["test"] == "round trip" and r.header.url.startswith("ws://127.0.0.1:")
        assert len(r) == frames and r.torn_bytes == 0

    replayed = engine_cls(depth=200, trade_capacity=65536)
    stats = replay(path, replayed)
    assert stats.frames == frames and stats.errors == 1 and stats.error_reasons == {"zlib_error": 1}
    assert_engine_books(replayed, expected)
    np.testing.assert_array_equal(replayed.trades.latest(-1), live.trades.latest(-1))  # incl. recv_ns
    ids = live.trades.latest(-1)
    btc = ids[ids["symbol"] == live.symbol_index("BTC_USDT")]["id"]
    assert btc[-len(recent_btc) :].tolist() == list(reversed(recent_btc))
    assert replayed.stats["messages"] == live.stats["messages"]

    # an independent oracle: the pure-Python book with the same rules
    books = BookSet()
    with CaptureReader(path) as r:
        for rec in r:
            try:
                books.feed(decode_payload(rec.payload))
            except Exception:
                pass
    for sym, (bids, asks) in expected.items():
        np.testing.assert_array_equal(books[sym].bids, bids)
        np.testing.assert_array_equal(books[sym].asks, asks)

    # recorded traffic re-played over a real socket by the exchange
    served = engine_cls(depth=200, trade_capacity=65536)

    async def serve() -> SimpleClient:
        async with Exchange(ExchangeConfig(capture=path)) as ex:
            c = await SimpleClient.connect(ex.url, engine=served, keep=False)
            try:
                assert (await c.request("depth.subscribe", ["BTC_USDT"]))["error"] is None
                await c.wait_closed(timeout=120)  # the exchange closes after the last frame
                return c
            finally:
                await c.close()

    c = run(serve)
    assert c.close_code == 1000 and c.close_reason == "end of capture"
    assert c.errors == ["zlib_error"]
    assert_engine_books(served, expected)
    np.testing.assert_array_equal(served.trades.latest(-1)["id"], live.trades.latest(-1)["id"])


def _synthetic_capture(path: Path, n: int, step_ns: int) -> list[bytes]:
    """Pushes with a reply in between, alternating TEXT and zlib BINARY frames."""
    payloads = []
    with CaptureWriter(path, "wss://example/ws/v1/") as w:
        for i in range(n):
            p = json.dumps(
                {
                    "method": "depth.update",
                    "params": [
                        i == 0,
                        {"asks": [[f"{100 + i}.5", "1"]], "bids": [["99", str(i + 1)]]},
                        "BTC_USDT",
                    ],
                    "id": None,
                }
            ).encode()
            payloads.append(p)
            if i % 2:
                w.write(zlib.compress(p), 10**18 + i * step_ns, FRAME_BINARY)
            else:
                w.write(p, 10**18 + i * step_ns, FRAME_TEXT)
            if i == 1:
                w.write(b'{"error":null,"result":"pong","id":1}', 10**18 + i * step_ns, FRAME_TEXT)
    return payloads


def test_serving_a_capture_at_recorded_speed_and_with_replies(tmp_path: Path) -> None:
    path = tmp_path / "s.ffcap"
    payloads = _synthetic_capture(path, 6, 40_000_000)  # 0.2 s recorded

    async def body() -> None:
        loop = asyncio.get_running_loop()
        async with Exchange(ExchangeConfig(capture=path, capture_speed=1.0, capture_close=False)) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                t0 = loop.time()  # before the request: the replay cannot have started earlier
                await c.request("trades.subscribe", [])
                conn = next(iter(ex.connections))
                await asyncio.wait_for(conn.replay_done.wait(), 120)  # a hang guard
                assert loop.time() - t0 >= 0.18  # paced: never faster than recorded (0.2 s)
                assert (await c.ping())["result"] == "pong"  # still open: capture_close=False
                assert [json.dumps(m).encode() for m in c.messages] == [
                    json.dumps(json.loads(p)).encode() for p in payloads
                ]
                assert c.frame_types == {"TEXT": 3, "BINARY": 3 + 2}  # recorded types; live replies are zlib
                assert len(c.replies) == 2  # our ack and pong; the captured reply was skipped
            finally:
                await c.close()
        async with Exchange(ExchangeConfig(capture=path, capture_skip_replies=False)) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                await c.request("all_ticker.subscribe")
                await c.wait_closed()
                assert len(c.replies) == 2 and len(c.messages) == 6  # ack + the recorded reply
            finally:
                await c.close()

    run(body)


def test_record_function_against_the_exchange(tmp_path: Path) -> None:
    async def body() -> None:
        async with Exchange(ExchangeConfig(seed=SEED, symbols=SYMS, rate=3000)) as ex:
            n = await record(
                ex.url,
                tmp_path / "a.ffcap",
                [("depth.subscribe", ["BTC_USDT"]), ("trades.subscribe", [])],
                max_frames=300,
            )
            assert n == 300
            # duration: never stops early (how much arrives in 0.3 s is the machine's business)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            n = await record(ex.url, tmp_path / "d.ffcap", [("ticker.subscribe", ["ETH_USDT"])], duration=0.3)
            assert loop.time() - t0 >= 0.3
            with CaptureReader(tmp_path / "d.ffcap") as r:
                assert len(r) == n
        async with Exchange(ExchangeConfig(seed=SEED, symbols=SYMS, rate=0)) as ex:
            # a quiet market: after the ack and the ticker snapshot only the pongs come
            n = await record(
                ex.url,
                tmp_path / "b.ffcap",
                [("ticker.subscribe", ["ETH_USDT"])],
                max_frames=4,
                ping_interval=0.05,
            )
            assert n == 4
        with CaptureReader(tmp_path / "a.ffcap") as r:
            pushes = sum(1 for rec in r if decode_payload(rec.payload).get("method") is not None)
        async with Exchange(
            ExchangeConfig(capture=tmp_path / "a.ffcap")
        ) as ex:  # closes after the last frame
            n = await record(ex.url, tmp_path / "c.ffcap", [("depth.subscribe", [])])  # until closed
            assert n == 1 + pushes  # the live ack, then the recorded pushes (recorded acks skipped)

    run(body)
    with CaptureReader(tmp_path / "a.ffcap") as r:
        recs = list(r)
        assert len(recs) == 300
        first = decode_payload(recs[0].payload)
        assert first == {"error": None, "result": {"status": "success"}, "id": 1}
        assert decode_payload(recs[1].payload)["params"][0] is True  # the snapshot follows the ack
        times = [rec.recv_ns for rec in recs]
        assert times == sorted(times)
    with CaptureReader(tmp_path / "b.ffcap") as r:
        msgs = [decode_payload(rec.payload) for rec in r]
        assert msgs[0]["result"] == {"status": "success"} and msgs[1]["method"] == "ticker.update"
        assert [m["result"] for m in msgs[2:]] == ["pong", "pong"]
