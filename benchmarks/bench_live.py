"""Live benchmark over loopback: the local exchange (its own process) sends at fixed rates;
fastfeed's client and a reference client (``websockets`` + ``zlib`` + ``json`` + dict book)
take turns receiving, each measured side by side in one run.

For every (rate, client) pair:

* **msgs/s kept**: data frames the client processed per second of the window, and the
  **backlog** (frames the exchange had written to the socket but the client had not
  processed at the instant the window ended, from the exchange's send log). A client
  "keeps up" when its backlog stays under 50 ms worth of the rate.
* **latency** from the exchange's socket write of frame k to the moment the client's book
  (or trade ring) reflects frame k: p50 / p99 / p99.9 in microseconds. Both processes read
  the same wall clock; frame k on the wire is frame k at the client (one TCP connection).

    python benchmarks/bench_live.py                 # 10k, 100k, 200k and max msg/s, 5 s windows
    python benchmarks/bench_live.py --quick         # shorter windows
    python benchmarks/bench_live.py --rates 10000 200000 max --seconds 8
    python benchmarks/bench_live.py --rates max --rounds 3    # interleaved rounds, best kept

Rate ``max`` measures the clients, not the sender: the bundled exchange renders trades
frames in Python as it sends them and, on a 2-core machine, could not outrun fastfeed
(fastfeed's backlog was 0 at "max": the exchange was the bottleneck). So at ``max`` every
client gets the same **blaster** process instead: the exchange's pre-generated cycle
(depth and trades, rendered once; ``--pregenerate`` frames), WebSocket-framed and cut into
~256 KiB writes, written as fast as the socket drains (one write moves ~1,500 frames). It
starts after both subscribe requests, always at the cycle's start, and logs each write
like the exchange's send log, so backlog and latency are computed the same way. A
client keeps the socket full at ``max`` when its backlog stays > 0: then its msg/s is its
own processing rate (the latency at ``max`` is mostly the time frames wait in the socket
buffers). Trade ids repeat when the cycle wraps; fastfeed's de-duplication window (512
trades per symbol) is far smaller than one cycle's trades, so nothing is dropped as a
duplicate and both clients apply every frame.

Targets (issue): fastfeed sustains >= 150k msg/s on one core without backlog; p50 and p99
latency >= 3x lower than the reference client; at rate ``max``, fastfeed's msg/s >= 3.5x
those of the picows+zlib+orjson+dict client (issue 13's live row, printed with a verdict).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import multiprocessing as mp
import os
import platform
import struct
import sys
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_ROOT = Path(__file__).resolve().parent.parent
if any((_ROOT / "fastfeed").glob("_engine*.so")):
    sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402

from fastfeed.exchange.wire import ws_frame  # noqa: E402

SYMBOLS = [
    "BTC_USDT",
    "ETH_USDT",
    "SOL_USDT",
    "XRP_USDT",
    "DOGE_USDT",
    "LTC_USDT",
    "TRX_USDT",
    "ADA_USDT",
    "DOT_USDT",
    "LINK_USDT",
]


# -- the exchange process ------------------------------------------------------------------


def _exchange_main(rate: float | None, pregenerate: int, conn: Any) -> None:
    """Run the exchange until told to stop; then hand back the send log of the client."""
    from fastfeed.exchange import Exchange, ExchangeConfig

    async def main() -> None:
        cfg = ExchangeConfig(
            symbols=SYMBOLS,
            seed=1,
            rate=rate,
            pregenerate=pregenerate,
            send_log=True,
            idle_timeout=None,
            snapshot_interval=None,
            batch=512,
        )
        async with Exchange(cfg) as ex:
            conn.send(ex.url)
            loop = asyncio.get_running_loop()
            cmd = await loop.run_in_executor(None, conn.recv)
            assert cmd == "stop"
            ex.pause()
            out = []
            for c in list(ex.connections):
                out.append((c.frames_sent, np.array(c.send_log or [], dtype=np.int64).reshape(-1, 3)))
            conn.send(out)

    asyncio.run(main())


class ExchangeProcess:
    def __init__(self, rate: float | None, pregenerate: int) -> None:
        ctx = mp.get_context("spawn")
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_exchange_main, args=(rate, pregenerate, child), daemon=True)
        self.proc.start()
        if not self.parent.poll(120):
            raise RuntimeError("exchange process did not start")
        self.url: str = self.parent.recv()

    def stop(self) -> list[tuple[int, np.ndarray]]:
        self.parent.send("stop")
        if not self.parent.poll(60):
            raise RuntimeError("exchange process did not answer")
        out = self.parent.recv()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
        return out


# -- the blaster process (rate "max") ---------------------------------------------------------

CHUNK = 256 * 1024
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def ws_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The server side of the WebSocket handshake (the blaster servers of the benchmarks)."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


async def ws_requests(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lock: asyncio.Lock
) -> AsyncIterator[tuple[dict[str, Any], Any]]:
    """The client's JSON requests, each with the result to send back (``"pong"`` for
    ``server.ping``, else success), until it closes; WebSocket pings are answered here
    (under ``lock``, so they never interleave with the server's writes)."""
    while True:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
        raw = await reader.readexactly(n)
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(raw))
        op = b0 & 0x0F
        if op == 0x8:
            return
        if op == 0x9:
            async with lock:
                writer.write(ws_frame(0xA, payload))
            continue
        if op not in (0x1, 0x2):
            continue
        req = json.loads(payload)
        yield req, "pong" if req.get("method", "") == "server.ping" else {"status": "success"}


def ws_reply(req_id: Any, result: Any) -> bytes:
    """A reply frame as the exchange sends it (zlib-compressed JSON)."""
    body = json.dumps({"error": None, "result": result, "id": req_id}).encode()
    return ws_frame(0x2, zlib.compress(body))


def blast_frames(pregenerate: int) -> list[bytes]:
    """The exchange's pre-generated cycle as complete WebSocket frames (depth and trades
    pushes in the order the exchange sends them; tickers left out, as nobody subscribes
    to them here). Depth frames are the cycle's own; trades frames are rendered once, as
    the exchange renders them on the cycle's first pass. The cycle is consistent across
    its wrap (it ends with the opening books), so it can be looped."""
    from fastfeed.exchange import Exchange, ExchangeConfig
    from fastfeed.exchange.market import CH_DEPTH, CH_TRADES

    ex = Exchange(
        ExchangeConfig(symbols=SYMBOLS, seed=1, pregenerate=pregenerate, snapshot_interval=None, batch=512)
    )
    ex._build_cycle()
    assert ex._cycle is not None
    nsym = len(SYMBOLS)
    now = time.time()
    out: list[bytes] = []
    for (key, _clean, wire), dyn in zip(ex._cycle, ex._cycle_dyn):
        ch = key // nsym
        if ch == CH_DEPTH:
            out.append(wire)
        elif ch == CH_TRADES:
            assert dyn is not None
            out.append(ex._render_cycle_frame(dyn, 0, now))
    return out


def blast_chunks(frames: list[bytes]) -> list[tuple[bytes, int]]:
    """``frames`` cut into ~CHUNK byte writes: ``(bytes, frames in it)``."""
    out: list[tuple[bytes, int]] = []
    buf: list[bytes] = []
    size = 0
    for f in frames:
        buf.append(f)
        size += len(f)
        if size >= CHUNK:
            out.append((b"".join(buf), len(buf)))
            buf, size = [], 0
    if buf:
        out.append((b"".join(buf), len(buf)))
    return out


def _blaster_main(pregenerate: int, conn: Any) -> None:
    """Serve one client at a time: reply to its requests; once it subscribed to depth and
    trades, write the cycle's chunks in a loop until told to stop; then hand back
    ``[(frames_sent, send_log)]`` (send_log rows: first frame, frames, write time ns)."""
    chunks = blast_chunks(blast_frames(pregenerate))
    state: dict[str, Any] = {"sent": 0, "log": [], "blaster": None}

    async def blast(writer: asyncio.StreamWriter, lock: asyncio.Lock) -> None:
        log = state["log"]
        while True:
            for data, n in chunks:
                async with lock:
                    writer.write(data)
                    log.append((state["sent"], n, time.time_ns()))
                    state["sent"] += n
                    await writer.drain()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await ws_accept(reader, writer)
        lock = asyncio.Lock()  # replies and data chunks never interleave mid-frame
        subscribed: set[str] = set()
        try:
            async for req, result in ws_requests(reader, writer, lock):
                async with lock:
                    writer.write(ws_reply(req.get("id"), result))
                    await writer.drain()
                method = req.get("method", "")
                if method in ("depth.subscribe", "trades.subscribe"):
                    subscribed.add(method)
                    if len(subscribed) == 2 and state["blaster"] is None:
                        state["blaster"] = asyncio.create_task(blast(writer, lock))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the process is stopping (asyncio.run cancels us)
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(client, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn.send(f"ws://127.0.0.1:{port}/ws/v1/")
        cmd = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        assert cmd == "stop"
        task = state["blaster"]
        if task is not None:
            task.cancel()
        log = np.array(state["log"], dtype=np.int64).reshape(-1, 3)
        conn.send([(state["sent"], log)])
        server.close()

    asyncio.run(main())


class BlasterProcess:
    """The rate-``max`` sender (see the module docstring); the interface of ExchangeProcess."""

    def __init__(self, pregenerate: int) -> None:
        ctx = mp.get_context("spawn")
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_blaster_main, args=(pregenerate, child), daemon=True)
        self.proc.start()
        if not self.parent.poll(300):
            raise RuntimeError("blaster process did not start")
        self.url: str = self.parent.recv()

    def stop(self) -> list[tuple[int, np.ndarray]]:
        self.parent.send("stop")
        if not self.parent.poll(60):
            raise RuntimeError("blaster process did not answer")
        out = self.parent.recv()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
        return out


def send_times(log: np.ndarray, n: int) -> np.ndarray:
    """Per-frame send time (ns) of frames 0..n-1 from (first_frame, frames, time_ns) rows."""
    out = np.full(n, -1, dtype=np.int64)
    for first, count, ns in log:
        lo, hi = int(first), min(int(first + count), n)
        if lo < n:
            out[lo:hi] = ns
    return out


# -- the clients -------------------------------------------------------------------------------


async def run_fastfeed(url: str, seconds: float, window_end: Any) -> dict[str, Any]:
    import fastfeed

    async with fastfeed.connect(
        url, timing=1 << 22, ping_interval=3600, data_timeout=None, max_age=None
    ) as feed:
        await feed.subscribe_depth(SYMBOLS)
        await feed.subscribe_trades(SYMBOLS)
        lst = feed._listener
        t0 = time.monotonic()
        f0 = lst.timed_frames
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        processed = lst.timed_frames
        t_end = time.time_ns()
        rows = feed.timings()
        exch = await window_end()
        first_index = processed - len(rows)
        stats = feed.stats["engine"]
    return {
        "processed": processed,
        "window_frames": processed - f0,
        "elapsed": elapsed,
        "done_ns": rows[:, 1],
        "first_index": first_index,
        "rejects": sum(stats["rejects"].values()),
        "exchange": exch,
        "t_end": t_end,
    }


async def run_reference(url: str, seconds: float, window_end: Any) -> dict[str, Any]:
    """What a typical Python client does: websockets + zlib + json + dict book."""
    import json

    import websockets

    books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
    trades: list[tuple[Any, ...]] = []
    done: list[int] = []
    stop = asyncio.Event()

    async def reader(ws: Any) -> None:
        async for raw in ws:
            data = zlib.decompress(raw) if isinstance(raw, bytes) and raw[:1] != b"{" else raw
            msg = json.loads(data)
            m = msg.get("method")
            if m == "depth.update":
                clean, lv, sym = msg["params"]
                bids, asks = books.setdefault(sym, ({}, {}))
                if clean:
                    bids.clear()
                    asks.clear()
                for side, book in (("asks", asks), ("bids", bids)):
                    for px, qty in lv.get(side, ()):
                        p, q = float(px), float(qty)
                        if q == 0.0:
                            book.pop(p, None)
                        else:
                            book[p] = q
            elif m == "trades.update":
                for t in reversed(msg["params"][1]):
                    trades.append((t["id"], t["time"], float(t["price"]), float(t["amount"]), t["type"]))
            done.append(time.time_ns())
            if stop.is_set():
                return

    async with websockets.connect(url, max_size=None, compression=None) as ws:
        for i, ch in enumerate(("depth", "trades")):
            await ws.send(json.dumps({"id": i + 1, "method": f"{ch}.subscribe", "params": SYMBOLS}))
        task = asyncio.create_task(reader(ws))
        t0 = time.monotonic()
        f0 = len(done)
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        processed = len(done)
        t_end = time.time_ns()
        exch = await window_end()
        stop.set()
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
    return {
        "processed": processed,
        "window_frames": processed - f0,
        "elapsed": elapsed,
        "done_ns": np.array(done[:processed], dtype=np.int64),
        "first_index": 0,
        "rejects": 0,
        "exchange": exch,
        "t_end": t_end,
    }


async def run_picows_orjson(url: str, seconds: float, window_end: Any) -> dict[str, Any]:
    """The fastest plain-Python client we know: picows + zlib.decompress + orjson + dict
    book (the issue's live-row peer)."""
    import orjson
    from picows import WSListener, WSMsgType, ws_connect

    books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
    trades: list[tuple[Any, ...]] = []
    done: list[int] = []
    unzip, loads, now = zlib.decompress, orjson.loads, time.time_ns

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                return
            raw = frame.get_payload_as_bytes()
            msg = loads(unzip(raw) if raw[:1] != b"{" else raw)
            m = msg.get("method")
            if m == "depth.update":
                clean, lv, sym = msg["params"]
                bids, asks = books.setdefault(sym, ({}, {}))
                if clean:
                    bids.clear()
                    asks.clear()
                for side, book in (("asks", asks), ("bids", bids)):
                    for px, qty in lv.get(side, ()):
                        p, q = float(px), float(qty)
                        if q == 0.0:
                            book.pop(p, None)
                        else:
                            book[p] = q
            elif m == "trades.update":
                for t in reversed(msg["params"][1]):
                    trades.append((t["id"], t["time"], float(t["price"]), float(t["amount"]), t["type"]))
            done.append(now())

    transport, _ = await ws_connect(Listener, url, max_frame_size=1 << 26)
    try:
        for i, ch in enumerate(("depth", "trades")):
            transport.send(
                WSMsgType.TEXT, orjson.dumps({"id": i + 1, "method": f"{ch}.subscribe", "params": SYMBOLS})
            )
        t0 = time.monotonic()
        f0 = len(done)
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        processed = len(done)
        t_end = time.time_ns()
        exch = await window_end()
    finally:
        transport.disconnect()
    return {
        "processed": processed,
        "window_frames": processed - f0,
        "elapsed": elapsed,
        "done_ns": np.array(done[:processed], dtype=np.int64),
        "first_index": 0,
        "rejects": 0,
        "exchange": exch,
        "t_end": t_end,
    }


CLIENTS = {
    "fastfeed": run_fastfeed,
    "picows+zlib+orjson+dict": run_picows_orjson,
    "websockets+json+dict": run_reference,
}
#: issue 13's live row: fastfeed's max msg/s over this peer's, target >= 3.5
LIVE_PEER, LIVE_TARGET = "picows+zlib+orjson+dict", 3.5


def measure(rate: float | None, client: str, seconds: float, pregenerate: int) -> dict[str, Any]:
    ex: ExchangeProcess | BlasterProcess = (
        BlasterProcess(pregenerate) if rate is None else ExchangeProcess(rate, pregenerate)
    )

    async def window_end() -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, ex.stop)

    try:
        res = asyncio.run(CLIENTS[client](ex.url, seconds, window_end))
    finally:
        if ex.proc.is_alive():
            ex.proc.kill()
    logs = res["exchange"]
    sent, log = max(logs, key=lambda x: x[0]) if logs else (0, np.zeros((0, 3), np.int64))
    done = res["done_ns"]
    first = res["first_index"]
    sends = send_times(log, first + len(done))[first:]
    ok = sends > 0
    lat_us = (done[ok] - sends[ok]) / 1000.0
    # skip the first 10% (connection warm-up, the subscribe burst of snapshots)
    lat_us = lat_us[len(lat_us) // 10 :]
    # frames already written by the exchange when the client's window ended
    written = int(log[log[:, 2] <= res["t_end"]][:, 1].sum()) if len(log) else sent
    backlog = max(0, written - res["processed"])
    pct = np.percentile(lat_us, [50, 99, 99.9]) if len(lat_us) else np.array([np.nan] * 3)
    return {
        "rate": rate,
        "client": client,
        "sent": sent,
        "processed": res["processed"],
        "msgs_per_s": res["window_frames"] / res["elapsed"],
        "backlog": backlog,
        "p50_us": float(pct[0]),
        "p99_us": float(pct[1]),
        "p999_us": float(pct[2]),
        "rejects": res["rejects"],
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    out = [
        (
            f"{'rate':>10}  {'client':<24}{'msgs/s':>12}{'backlog':>10}{'keeps up':>10}"
            f"{'p50 us':>10}{'p99 us':>10}{'p99.9 us':>10}"
        )
    ]
    for r in rows:
        rate = "max" if r["rate"] is None else f"{r['rate']:,.0f}"
        if r["rate"] is None:
            # at max the sender outruns the client: a backlog is expected (the socket stays
            # full); 0 would mean the sender, not the client, set the rate
            keeps_s = "full" if r["backlog"] > 0 else "SENDER"
        else:
            keeps_s = "yes" if r["backlog"] <= max(100, 0.05 * r["rate"]) else "NO"
        out.append(
            f"{rate:>10}  {r['client']:<24}{r['msgs_per_s']:>12,.0f}{r['backlog']:>10,}"
            f"{keeps_s:>10}{r['p50_us']:>10.1f}{r['p99_us']:>10.1f}"
            f"{r['p999_us']:>10.1f}"
        )
    if any(r["rate"] is None for r in rows):
        out.append(
            "rate max: the blaster writes pre-built frames as fast as the socket drains; 'full': "
            "the client's socket never ran dry (backlog > 0), so msgs/s is the client's own rate"
        )
    out.append("")
    by = {(r["rate"], r["client"]): r for r in rows}
    for rate in dict.fromkeys(r["rate"] for r in rows):
        name = "max" if rate is None else f"{rate:,.0f}"
        a = by.get((rate, "fastfeed"))
        for peer in ("websockets+json+dict", LIVE_PEER):
            b = by.get((rate, peer))
            if a and b:
                out.append(
                    f"rate {name}: {peer}/fastfeed  p50 {b['p50_us'] / a['p50_us']:.1f}x  "
                    f"p99 {b['p99_us'] / a['p99_us']:.1f}x  throughput "
                    f"{a['msgs_per_s'] / b['msgs_per_s']:.1f}x"
                )
    a, b = by.get((None, "fastfeed")), by.get((None, LIVE_PEER))
    out.append("")
    if a and b:
        v = a["msgs_per_s"] / b["msgs_per_s"]
        verdict = "ok" if v >= LIVE_TARGET else "MISSED"
        if a["backlog"] == 0 or b["backlog"] == 0:
            verdict += " (a client emptied its socket: sender-bound, not a client measurement)"
        out.append(f"{'target row':<64}{'value':>8}{'target':>9}  verdict")
        out.append(
            f"{'live loopback max msg/s: fastfeed / ' + LIVE_PEER:<64}{v:>8.2f}"
            f"{'>= ' + format(LIVE_TARGET, 'g'):>9}  {verdict}"
        )
    else:
        out.append(f"live loopback row: needs rate 'max' for fastfeed and {LIVE_PEER}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--rates",
        nargs="+",
        default=["10000", "100000", "200000", "max"],
        help="messages/s the exchange sends ('max' = as fast as the client reads)",
    )
    ap.add_argument("--seconds", type=float, default=5.0, help="measurement window per run")
    ap.add_argument("--pregenerate", type=int, default=100_000, help="frames in the exchange's cycle")
    ap.add_argument("--quick", action="store_true", help="2 s windows, 20k-frame cycle")
    ap.add_argument("--clients", nargs="+", default=list(CLIENTS), choices=list(CLIENTS))
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="runs per (rate, client), the clients interleaved; the best msg/s of each is kept",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.pregenerate = 2.0, 20_000
    rates = [None if r == "max" else float(r) for r in args.rates]
    print(
        f"machine: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cpus, exchange in its own process, {len(SYMBOLS)} symbols, "
        f"depth+trades, {args.seconds:g} s windows, {args.rounds} round(s)"
    )
    rows = []
    for rate in rates:
        best: dict[str, dict[str, Any]] = {}
        for rnd in range(args.rounds):
            # interleaved: the client order reverses every round, the best round is kept
            order = args.clients if rnd % 2 == 0 else args.clients[::-1]
            for client in order:
                r = measure(rate, client, args.seconds, args.pregenerate)
                if client not in best or r["msgs_per_s"] > best[client]["msgs_per_s"]:
                    best[client] = r
                print(
                    f"  done: rate={'max' if rate is None else int(rate)} round {rnd + 1} {client}: "
                    f"{r['msgs_per_s']:,.0f} msg/s (backlog {r['backlog']:,})",
                    flush=True,
                )
        rows.extend(best[c] for c in args.clients)
    print()
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
