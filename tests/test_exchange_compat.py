"""Wire compatibility of the local exchange with an independent WebSocket client library
(``websockets``): nothing of fastfeed is used on the client side except ``zlib``/``json``
decoding written here from docs/protocol.md."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import numpy as np
import pytest

from fastfeed.exchange import Exchange, ExchangeConfig, auth_params

from helpers import WS_GUARDS, decode_frame, run_guarded

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

SYMS = ["BTC_USDT", "ETH_USDT"]


class Book:
    """A dict book, applied by price as docs/protocol.md prescribes (no sequence numbers)."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def apply(self, clean: bool, levels: dict[str, list[list[str]]]) -> None:
        if clean:
            self.bids.clear()
            self.asks.clear()
        for side, book in (("asks", self.asks), ("bids", self.bids)):
            for px, amt in levels.get(side, []):
                if float(amt) == 0:
                    book.pop(float(px), None)
                else:
                    book[float(px)] = float(amt)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        bids = np.array(sorted(self.bids.items(), reverse=True), dtype=np.float64).reshape(-1, 2)
        asks = np.array(sorted(self.asks.items()), dtype=np.float64).reshape(-1, 2)
        return bids, asks


async def request(
    ws: Any, rid: int, method: str, params: list[Any] | None = None, pushes: list[Any] | None = None
) -> dict[str, Any]:
    await ws.send(json.dumps({"id": rid, "method": method, "params": params or []}))
    while True:
        msg = decode_frame(await ws.recv())
        if msg.get("method") is None and msg.get("id") == rid:
            return msg
        if pushes is not None:
            pushes.append(msg)


def test_websockets_client_speaks_to_the_exchange() -> None:
    async def body() -> None:
        conf = ExchangeConfig(seed=3, symbols=SYMS, rate=1500, accounts={"k": "s"}, private_interval=0.02)
        async with Exchange(conf) as ex:
            # max_queue=None: pushes keep coming after the last recv(); with a bounded queue
            # websockets would stop reading once 16 are queued, and then never read the pong
            # or the server's CLOSE (a busy machine queues more before the close)
            async with connect(
                ex.url, compression=None, max_size=None, ping_interval=None, max_queue=None, **WS_GUARDS
            ) as ws:
                pushes: list[Any] = []
                assert await request(ws, 1, "server.ping") == {"error": None, "result": "pong", "id": 1}
                t = await request(ws, 2, "server.time")
                assert isinstance(t["result"], int)
                ack = await request(ws, 3, "depth.subscribe", ["btc_usdt", "ETH_USDT"], pushes)
                assert ack == {"error": None, "result": {"status": "success"}, "id": 3}
                await request(ws, 4, "trades.subscribe", SYMS, pushes)
                await request(ws, 5, "ticker.subscribe", ["BTC_USDT"], pushes)
                while sum(1 for p in pushes if p["method"] == "depth.update") < 200:
                    pushes.append(decode_frame(await ws.recv()))
                ex.pause()
                await request(ws, 6, "server.ping", None, pushes)  # everything before it is here
                books = {s: Book() for s in SYMS}
                methods = set()
                for p in pushes:
                    methods.add(p["method"])
                    assert p["id"] is None
                    if p["method"] == "depth.update":
                        clean, levels, sym = p["params"]
                        books[sym].apply(clean, levels)
                    elif p["method"] == "trades.update":
                        ids = [tr["id"] for tr in p["params"][1]]
                        assert ids == sorted(ids, reverse=True)
                assert methods == {"depth.update", "trades.update", "ticker.update"}
                for s in SYMS:
                    bids, asks = ex.book(s)
                    got_bids, got_asks = books[s].arrays()
                    np.testing.assert_array_equal(got_bids, bids)
                    np.testing.assert_array_equal(got_asks, asks)
                # private channels: refused before auth, flowing after
                rep = await request(ws, 7, "order.subscribe", [])
                assert rep["error"]["code"] == 6
                rep = await request(ws, 8, "server.auth", auth_params("k", "s"))
                assert rep["result"] == {"status": "success"}
                assert (await request(ws, 9, "balance.subscribe", []))["error"] is None
                ex.resume()
                while True:
                    msg = decode_frame(await ws.recv())
                    if msg.get("method") == "balance.update":
                        assert set(msg["params"][0]) == {"currency", "free", "total", "used"}
                        break
                pong_waiter = await ws.ping(b"hello")  # WebSocket-level PING is answered
                await asyncio.wait_for(pong_waiter, 60)
            # a clean close from the client side
            assert ws.close_code == 1000

    run_guarded(body)


def test_websockets_client_sees_text_replies_and_server_close() -> None:
    async def body() -> None:
        # the idle close ends the test; 3 s leaves the requests before it a wide margin
        conf = ExchangeConfig(
            seed=3, symbols=SYMS, rate=0, text_replies=True, error_style="string", idle_timeout=3.0
        )
        async with Exchange(conf) as ex:
            async with connect(ex.url + "?anything", compression=None, ping_interval=None, **WS_GUARDS) as ws:
                await ws.send('{"id": 1, "method": "server.ping", "params": []}')
                raw = await ws.recv()
                assert isinstance(raw, str) and json.loads(raw) == {"error": None, "result": "pong", "id": 1}
                await ws.send('{"id": 2, "method": "what.ever"}')
                err = json.loads(await ws.recv())
                assert isinstance(err["error"], str) and err["result"] is None and err["id"] == 2
                with pytest.raises(ConnectionClosed) as info:  # idle timeout closes with 1000
                    await ws.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1000
                assert info.value.rcvd.reason == "idle timeout"
            assert not ex.connections

    run_guarded(body)


def test_websockets_client_receives_a_served_capture(tmp_path: Any) -> None:
    from fastfeed.capture import CaptureWriter

    path = tmp_path / "c.ffcap"
    payloads = [
        json.dumps(
            {
                "method": "trades.update",
                "params": [
                    True,
                    [{"id": i, "time": 1.5, "price": "1", "amount": "2", "type": "buy"}],
                    "BTC_USDT",
                ],
                "id": None,
            }
        ).encode()
        for i in range(50)
    ]
    with CaptureWriter(path, "wss://example/ws/v1/") as w:
        for i, p in enumerate(payloads):
            w.write(zlib.compress(p) if i % 2 else p, recv_ns=i, msg_type=2 if i % 2 else 1)

    async def body() -> None:
        async with Exchange(ExchangeConfig(capture=path)) as ex:
            async with connect(ex.url, compression=None, ping_interval=None, **WS_GUARDS) as ws:
                await ws.send('{"id": 1, "method": "trades.subscribe", "params": ["BTC_USDT"]}')
                assert decode_frame(await ws.recv())["id"] == 1
                got = []
                with pytest.raises(ConnectionClosed):
                    while True:
                        frame = await ws.recv()
                        assert isinstance(frame, (str if len(got) % 2 == 0 else bytes))
                        got.append(decode_frame(frame))
                assert got == [json.loads(p) for p in payloads]
                assert ws.close_code == 1000

    run_guarded(body)
