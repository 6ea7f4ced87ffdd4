"""Sharded feed throughput over loopback: 1 shard vs 2 shards, side by side in one run.

A sender process serves a pre-generated, consistent depth stream (the bundled exchange's
``pregenerate`` cycle, depth channel only) to every connection, each connection getting the
frames of the symbols it subscribed, written in ~256 KiB chunks as fast as the socket
drains. The sender does almost no per-frame work (the frames are pre-built; one
``write`` moves hundreds of them), so on this 2-core machine nearly all CPU left goes to the
client: the bundled exchange proper renders frames in Python and would itself be the
bottleneck of a 2-shard client.

For each configuration (``connect`` = the plain one-connection feed;
``fastfeed.connect_sharded(url, shards=N)`` with N = 1, 2 in process mode, the default, and
in thread mode), after a warm-up (the kernel's socket buffers, autotuned to several MB, fill
up first) the client is measured over a window:

* **msg/s**: data frames applied per second (summed over shards) - the sustained rate: the
  sender writes only when the client's socket drains, so this is what the client keeps up
  with; **backlog** at the window's end: frames written by the sender and not yet applied
  (what sits in the socket buffers), in ms at that rate, and its **growth** over the
  window (about 0 when the rate is sustained; process mode reads the shards' frame counts
  as reported every 0.1 s, so expect +-100 ms of noise there);
* ``rejects`` must be 0 (every frame parsed and applied).

Rounds are interleaved (1 shard, 2 shards, control, ... reversed every other round) and the
best round of each row is kept. The control row is GIL-free work (sha256 of 1 MiB blocks, as
in ``fastfeed bench``'s thread row): 2 threads vs 1, what the machine allowed two threads
during the run (other processes take cores too; ~1.8-2.0 when quiet).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_shards.py            # 3 rounds, 4 s windows
    python benchmarks/bench_shards.py --rounds 5 --seconds 6 --symbols 12

Target (issue 12): 2 shards >= 1.6x the msg/s of 1 shard (the process-mode row).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing as mp
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_ROOT = Path(__file__).resolve().parent.parent
if any((_ROOT / "fastfeed").glob("_engine*.so")):
    sys.path.insert(0, str(_ROOT))

from bench_live import blast_chunks, ws_accept, ws_reply, ws_requests  # noqa: E402  (the blaster, one place)

TARGET = 1.6
#: (row, shards, mode): shards 0 = plain fastfeed.connect
CONFIGS = [
    ("connect", 0, ""),
    ("1 process", 1, "process"),
    ("2 processes", 2, "process"),
    ("1 thread", 1, "thread"),
    ("2 threads", 2, "thread"),
]
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
    "BCH_USDT",
    "XLM_USDT",
]
WARMUP_FRAMES = 200_000
WARMUP_SECONDS = 2.0


# -- the sender process -------------------------------------------------------------------------


def _depth_frames(symbols: list[str], pregenerate: int) -> dict[str, list[bytes]]:
    """The pre-generated cycle's depth frames (WebSocket-framed zlib), per symbol, in order.
    Each symbol's list starts with its snapshot and ends back at the opening book, so it
    can be looped."""
    from fastfeed.exchange import Exchange, ExchangeConfig
    from fastfeed.exchange.market import CH_DEPTH

    ex = Exchange(ExchangeConfig(symbols=symbols, seed=1, pregenerate=pregenerate, snapshot_interval=None))
    ex._build_cycle()  # the consistent cycle (see ExchangeConfig.pregenerate)
    nsym = len(symbols)
    out: dict[str, list[bytes]] = {s: [] for s in symbols}
    for (key, _count, wire), dyn in zip(ex._cycle, ex._cycle_dyn):
        ch, i = divmod(key, nsym)
        if ch == CH_DEPTH and dyn is None:
            out[symbols[i]].append(wire)
    return out


def _chunks(frames: dict[str, list[bytes]], symbols: list[str]) -> list[tuple[bytes, int]]:
    """The subscribed symbols' frames interleaved round-robin, cut into ~CHUNK byte writes:
    ``(bytes, frames in it)``. Each symbol's frames stay in order, so looping is consistent."""
    lists = [frames[s] for s in symbols]
    seq: list[bytes] = []
    for k in range(max(len(x) for x in lists)):
        for x in lists:
            if k < len(x):
                seq.append(x[k])
    return blast_chunks(seq)


async def _serve(frames: dict[str, list[bytes]], sent: Any, conn: Any) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await ws_accept(reader, writer)
        blaster: asyncio.Task[None] | None = None
        lock = asyncio.Lock()  # replies and data chunks never interleave mid-frame

        async def blast(symbols: list[str]) -> None:
            chunks = _chunks(frames, symbols)
            while True:
                for data, n in chunks:
                    async with lock:
                        writer.write(data)
                        await writer.drain()
                    sent.value += n

        try:
            async for req, result in ws_requests(reader, writer, lock):
                async with lock:
                    writer.write(ws_reply(req.get("id"), result))
                    await writer.drain()
                method = req.get("method", "")
                if method == "depth.subscribe" and blaster is None:
                    blaster = asyncio.create_task(blast([s.upper() for s in req["params"]]))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if blaster is not None:
                blaster.cancel()
                try:
                    await blaster
                except (asyncio.CancelledError, ConnectionError):
                    pass
            writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn.send(f"ws://127.0.0.1:{port}/ws/v1/")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # "stop"
    server.close()


def _sender_main(symbols: list[str], pregenerate: int, sent: Any, conn: Any) -> None:
    frames = _depth_frames(symbols, pregenerate)
    asyncio.run(_serve(frames, sent, conn))


class Sender:
    def __init__(self, symbols: list[str], pregenerate: int) -> None:
        ctx = mp.get_context("spawn")
        self.sent = ctx.Value("q", 0, lock=False)
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_sender_main, args=(symbols, pregenerate, self.sent, child), daemon=True
        )
        self.proc.start()
        if not self.parent.poll(300):
            raise RuntimeError("sender process did not start")
        self.url: str = self.parent.recv()

    def stop(self) -> None:
        self.parent.send("stop")
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


# -- the client ---------------------------------------------------------------------------------


async def _measure(
    url: str, symbols: list[str], shards: int, mode: str, seconds: float, sent: Any
) -> dict[str, Any]:
    import fastfeed

    opts: dict[str, Any] = dict(ping_interval=3600, data_timeout=None, max_age=None)
    if shards == 0:
        feed: Any = fastfeed.connect(url, **opts)

        def engine_stats() -> dict[str, Any]:
            return feed.engine.stats

    else:
        feed = fastfeed.connect_sharded(url, shards=shards, symbols=symbols, mode=mode, **opts)

        def engine_stats() -> dict[str, Any]:  # process mode: as of the shards' last report
            return feed.stats["engine"]

    async with feed:
        base = sent.value
        await feed.subscribe_depth(symbols)

        def frames() -> int:
            return int(engine_stats().get("frames", 0))

        # warm-up: the socket buffers fill up (Linux autotunes them to several MB), after
        # which the sender only writes as fast as the client applies
        t_warm = time.monotonic()
        while (frames() < WARMUP_FRAMES or time.monotonic() - t_warm < WARMUP_SECONDS) and (
            time.monotonic() - t_warm < 120
        ):
            await asyncio.sleep(0.05)
        f0, w0, t0 = frames(), sent.value - base, time.monotonic()
        await asyncio.sleep(seconds)
        f1, w1, t1 = frames(), sent.value - base, time.monotonic()
        rejects = sum(engine_stats().get("rejects", {}).values())
    return _result(f0, w0, t0, f1, w1, t1, rejects)


def _result(f0: int, w0: int, t0: float, f1: int, w1: int, t1: float, rejects: int) -> dict[str, Any]:
    """Rate over the window; backlog (written - applied, frames) at its start and end."""
    rate = (f1 - f0) / (t1 - t0)
    b0, b1 = max(0, w0 - f0), max(0, w1 - f1)
    return {
        "rate": rate,
        "frames": f1 - f0,
        "backlog": b1,
        "backlog_ms": 1000.0 * b1 / rate if rate else float("inf"),
        "growth_ms": 1000.0 * (b1 - b0) / rate if rate else float("inf"),
        "rejects": rejects,
    }


def _control(seconds: float) -> tuple[float, float]:
    """GIL-free work (sha256 of 1 MiB blocks): throughput of 1 thread and of 2 threads
    (blocks/s), each over about ``seconds``."""
    block = b"\x5a" * (1 << 20)
    t = time.perf_counter()
    k = 0
    while time.perf_counter() - t < 0.2:
        hashlib.sha256(block).digest()
        k += 1
    reps = max(4, int(k / 0.2 * seconds))

    def work(n: int) -> None:
        for _ in range(n):
            hashlib.sha256(block).digest()

    t0 = time.perf_counter()
    work(reps)
    one = reps / (time.perf_counter() - t0)
    threads = [threading.Thread(target=work, args=(reps,)) for _ in range(2)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    two = 2 * reps / (time.perf_counter() - t0)
    return one, two


def run(rounds: int, seconds: float, nsym: int, pregenerate: int, say: Any = print) -> dict[str, Any]:
    symbols = SYMBOLS[:nsym]
    say(f"building the depth cycle ({pregenerate} frames, {nsym} symbols) ...")
    sender = Sender(symbols, pregenerate)
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k, _, _ in CONFIGS}
    ctrl1: list[float] = []
    ctrl2: list[float] = []
    try:
        order = [*CONFIGS, ("control", -1, "")]
        for r in range(rounds):
            for name, n, mode in order if r % 2 == 0 else order[::-1]:
                if n < 0:
                    one, two = _control(min(seconds, 2.0))
                    ctrl1.append(one)
                    ctrl2.append(two)
                    say(f"  round {r + 1}: control 2 threads / 1 = {two / one:.2f}")
                    continue
                res = asyncio.run(_measure(sender.url, symbols, n, mode, seconds, sender.sent))
                rows[name].append(res)
                say(
                    f"  round {r + 1}: {name:<11} {res['rate']:>10,.0f} msg/s  backlog "
                    f"{res['backlog_ms']:.0f} ms ({res['growth_ms']:+.0f} ms over the window)"
                )
    finally:
        sender.stop()
    best = {k: max(v, key=lambda x: x["rate"]) for k, v in rows.items()}
    return {
        "rows": best,
        "all": rows,
        "speedup": best["2 processes"]["rate"] / best["1 process"]["rate"],
        "speedups": [b["rate"] / a["rate"] for a, b in zip(rows["1 process"], rows["2 processes"])],
        "thread_speedup": best["2 threads"]["rate"] / best["1 thread"]["rate"],
        "thread_speedups": [b["rate"] / a["rate"] for a, b in zip(rows["1 thread"], rows["2 threads"])],
        "control": max(ctrl2[i] / ctrl1[i] for i in range(len(ctrl1))),
        "controls": [ctrl2[i] / ctrl1[i] for i in range(len(ctrl1))],
        "symbols": nsym,
        "seconds": seconds,
        "rounds": rounds,
    }


def format_table(res: dict[str, Any]) -> str:
    lines = [
        (
            f"fastfeed sharded feed, loopback, {res['symbols']} symbols (depth), {res['rounds']} rounds "
            f"x {res['seconds']:g} s windows, best round per row; "
            f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs"
        ),
        f"{'configuration':<34}{'msg/s':>12}{'backlog ms':>12}{'growth ms':>11}{'rejects':>9}",
    ]
    labels = {
        "connect": "connect() (one connection)",
        "1 process": "connect_sharded(shards=1)",
        "2 processes": "connect_sharded(shards=2)",
        "1 thread": "  mode='thread', shards=1",
        "2 threads": "  mode='thread', shards=2",
    }
    for k, row in res["rows"].items():
        lines.append(
            f"{labels[k]:<34}{row['rate']:>12,.0f}{row['backlog_ms']:>12.0f}"
            f"{row['growth_ms']:>+11.0f}{row['rejects']:>9}"
        )
    sp = res["speedup"]
    lines.append(
        f"{'2 shards / 1 shard (processes)':<34}{sp:>12.2f}   target >= {TARGET}: "
        + ("met" if sp >= TARGET else "NOT met")
        + f"  (per round: {', '.join(f'{x:.2f}' for x in res['speedups'])})"
    )
    lines.append(
        f"{'2 shards / 1 shard (threads)':<34}{res['thread_speedup']:>12.2f}"
        f"   (per round: {', '.join(f'{x:.2f}' for x in res['thread_speedups'])})"
    )
    lines.append(
        f"{'  control: GIL-free sha256, 2 thr / 1':<34}{res['control']:>12.2f}"
        f"   (per round: {', '.join(f'{x:.2f}' for x in res['controls'])}; ~1.8-2.0 on 2 idle cores)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--symbols", type=int, default=12, choices=range(2, len(SYMBOLS) + 1), metavar="N")
    ap.add_argument("--pregenerate", type=int, default=60_000)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    a = ap.parse_args(argv)
    res = run(a.rounds, a.seconds, a.symbols, a.pregenerate, say=lambda s: print(s, file=sys.stderr))
    if a.json:
        print(json.dumps({k: v for k, v in res.items() if k != "all"}, default=float))
    else:
        print(format_table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
