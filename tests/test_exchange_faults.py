"""Connection lifetime and fault injection of the local exchange: idle disconnect, age
limit, drop, stall, truncated/garbage/oversized frames, shuffled levels, duplicate trades,
HTTP 502 handshakes, periodic faults and write back-pressure."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any

import numpy as np
import pytest
from picows import WSHandshakeError

import fastfeed
from fastfeed.exchange import BookSet, Exchange, ExchangeConfig, SimpleClient

from helpers import run_guarded

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

SEED = 11
SYMS = ["BTC_USDT", "ETH_USDT"]


run = run_guarded  # one async test body with the hang guard


def cfg(**kw: Any) -> ExchangeConfig:
    base: dict[str, Any] = dict(seed=SEED, symbols=SYMS, rate=0)
    base.update(kw)
    return ExchangeConfig(**base)


def make_engine() -> Any:
    if fastfeed.COMPILED:
        return fastfeed.Engine(depth=200, trade_capacity=65536)
    try:
        from fastfeed.reference import ReferenceEngine  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("no engine: compiled extensions not built and no reference engine")
    return ReferenceEngine(depth=200, trade_capacity=65536)


#: The idle timeout of these tests. The active client talks every 50 ms, 60x as often: for
#: the server to close it, the process would have to get no CPU for ~3 s (a busy machine
#: slows the test down, it does not fail it).
IDLE = 3.0


def test_idle_connections_are_closed_active_ones_are_not() -> None:
    async def body() -> None:
        async with Exchange(cfg(idle_timeout=IDLE)) as ex:
            loop = asyncio.get_running_loop()
            t0 = loop.time()  # before both connections: neither can have been idle longer
            idle = await SimpleClient.connect(ex.url)
            busy = await SimpleClient.connect(ex.url)
            try:
                while not idle.closed:  # the busy client keeps talking, the idle one does not
                    await busy.ping()
                    await asyncio.sleep(0.05)
                assert loop.time() - t0 >= IDLE * 0.99  # never early (a late close is no error)
                assert idle.close_code == 1000 and idle.close_reason == "idle timeout"
                while loop.time() - t0 < 1.5 * IDLE:  # still alive well past the idle timeout
                    await asyncio.sleep(0.05)
                    await busy.ping()
                assert not busy.closed
            finally:
                await idle.close()
                await busy.close()

    run(body)


def test_websocket_pings_count_as_traffic() -> None:
    async def body() -> None:
        async with Exchange(cfg(idle_timeout=IDLE)) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                assert c.transport is not None
                rtts = await c.transport.measure_roundtrip_time(3)  # PING/PONG frames
                assert len(rtts) == 3
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                while loop.time() - t0 < 1.5 * IDLE:
                    await asyncio.sleep(0.05)
                    await c.transport.measure_roundtrip_time(1)
                assert not c.closed
            finally:
                await c.close()

    run(body)


def test_max_connection_age() -> None:
    async def body() -> None:
        async with Exchange(cfg(idle_timeout=None, max_connection_age=0.3)) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                while not c.closed:
                    try:
                        await c.ping()
                    except ConnectionError:
                        break
                    await asyncio.sleep(0.03)
                await c.wait_closed()
                assert c.close_code == 1000 and c.close_reason == "connection age limit"
            finally:
                await c.close()

    run(body)


def test_drop_closes_without_a_close_frame() -> None:
    async def body() -> None:
        async with Exchange(cfg()) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                await c.ping()
                ex.faults.drop()
                await c.wait_closed()
                assert c.close_code is None  # abnormal closure (1006 for the client)
                with pytest.raises(ConnectionError):
                    await c.ping()
            finally:
                await c.close()

    run(body)


def test_stall_holds_everything_back_until_unstalled() -> None:
    async def body() -> None:
        async with Exchange(cfg()) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                await c.request("depth.subscribe", ["BTC_USDT"])
                ex.faults.stall()
                frames = c.frames
                ex.step(200)
                with pytest.raises(asyncio.TimeoutError):
                    await c.ping(timeout=0.2)
                assert c.frames == frames
                ex.faults.unstall()
                await c.wait_for(lambda: any(r["result"] == "pong" for r in c.replies))
                assert (await c.ping())["result"] == "pong"
                books = BookSet()
                for m in c.messages:
                    books.feed(m)
                bids, _ = ex.book("BTC_USDT")
                np.testing.assert_array_equal(books["BTC_USDT"].bids, bids)
                ex.faults.stall(seconds=0.05)  # timed stall
                assert (await c.ping())["result"] == "pong"
            finally:
                await c.close()

    run(body)


@pytest.mark.parametrize("use_engine", [False, True])
def test_truncated_garbage_and_oversized_frames(use_engine: bool) -> None:
    engine = make_engine() if use_engine else None

    async def body() -> None:
        async with Exchange(cfg()) as ex:
            c = await SimpleClient.connect(ex.url, engine=engine, keep=not use_engine)
            try:
                ex.faults.send_truncated()
                ex.faults.send_garbage(size=100)
                ex.faults.send_oversized(size=(8 << 20) + 10)
                ex.faults.send_oversized(size=(8 << 20) + 10, compressed=False)
                await c.ping()
                assert c.errors == ["zlib_truncated", "zlib_error", "too_large", "too_large"]
            finally:
                await c.close()

    run(body)


def test_shuffled_levels_still_rebuild_the_book() -> None:
    async def body() -> None:
        async with Exchange(cfg()) as ex:
            ex.faults.shuffle_levels = True
            assert ex.faults.shuffle_levels
            c = await SimpleClient.connect(ex.url)
            try:
                await c.request("depth.subscribe", [])
                ex.step(1000)
                await c.ping()
                books = BookSet()
                unordered = 0
                for m in c.pushes("depth.update"):
                    px = [float(p) for p, _ in m["params"][1]["bids"]]
                    unordered += px not in (sorted(px), sorted(px, reverse=True))
                    books.feed(m)
                assert unordered > 10
                for s in SYMS:
                    bids, asks = ex.book(s)
                    np.testing.assert_array_equal(books[s].bids, bids)
                    np.testing.assert_array_equal(books[s].asks, asks)
            finally:
                await c.close()

    run(body)


def test_duplicate_trades() -> None:
    async def body() -> None:
        async with Exchange(cfg()) as ex:
            ex.faults.duplicate_trades = True
            c = await SimpleClient.connect(ex.url)
            try:
                await c.request("trades.subscribe", ["BTC_USDT"])
                ex.step(500)
                await c.ping()
                pushes = [m for m in c.pushes("trades.update") if m["params"][0] is False]
                assert len(pushes) >= 20 and len(pushes) % 2 == 0
                assert pushes[0::2] == pushes[1::2]  # every push twice in a row
            finally:
                await c.close()

    run(body)


def test_duplicate_trades_are_deduplicated_by_the_engine() -> None:
    engine = make_engine()

    async def body() -> None:
        async with Exchange(cfg()) as ex:
            ex.faults.duplicate_trades = True
            c = await SimpleClient.connect(ex.url, engine=engine, keep=False)
            try:
                await c.request("trades.subscribe", [])
                ex.step(500)
                await c.ping()
                assert engine.stats["duplicate_trades"] > 0
                ids = engine.trades.latest(50)["id"]
                assert np.all(np.diff(ids[ids > 0]) != 0)
            finally:
                await c.close()

    run(body)


def test_http_502_on_handshake() -> None:
    async def body() -> None:
        async with Exchange(cfg()) as ex:
            ex.faults.reject_handshakes = 2
            for _ in range(2):
                with pytest.raises(WSHandshakeError) as info:
                    await SimpleClient.connect(ex.url)
                assert "502" in str(info.value) or (
                    info.value.response is not None and info.value.response.status == 502
                )
            c = await SimpleClient.connect(ex.url)
            try:
                assert (await c.ping())["result"] == "pong"
            finally:
                await c.close()

    run(body)


def test_periodic_faults() -> None:
    async def body() -> None:
        async with Exchange(cfg()) as ex:
            c = await SimpleClient.connect(ex.url)
            try:
                ex.faults.every(0.02, "send_garbage", size=10)
                await c.wait_for(lambda: c.errors.count("zlib_error") >= 3)
            finally:
                await c.close()

    run(body)


async def _raw_ws_connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws/v1/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


def _client_text_frame(text: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
    assert len(text) < 126
    return struct.pack("!BB", 0x81, 0x80 | len(text)) + mask + body


def test_slow_reader_applies_backpressure_instead_of_buffering_forever() -> None:
    async def body() -> None:
        conf = cfg(rate=None, pregenerate=2000, write_buffer_high=256 * 1024)
        async with Exchange(conf) as ex:
            reader, writer = await _raw_ws_connect(ex.port)
            try:
                writer.write(_client_text_frame(b'{"id":1,"method":"depth.subscribe","params":[]}'))
                # The client never reads: once the kernel buffers are full the server must
                # stop generating instead of queueing without bound.
                generated = -1
                while generated != ex.stats["market_frames"] or not ex._backpressured:
                    generated = ex.stats["market_frames"]
                    await asyncio.sleep(0.2)
                conn = next(iter(ex.connections))
                assert conn.paused and conn.transport is not None
                buffered = conn.transport.underlying_transport.get_write_buffer_size()
                assert buffered < 256 * 1024 + 2 * conf.batch * 2000
                await reader.read(1 << 20)  # reading lets it go on
                while ex.stats["market_frames"] == generated:
                    await reader.read(1 << 20)
            finally:
                writer.close()
                await writer.wait_closed()

    run(body)
