"""Side-by-side benchmark of fastfeed against the floor and typical Python clients
(what ``fastfeed bench`` runs; part of the package so it works from an installed wheel).

One seeded corpus (:mod:`fastfeed.bench.corpus`), one run, interleaved rounds: every round runs each
contestant once over the whole corpus (the order rotates from round to round) with a fresh
engine / state, so drift on a shared, noisy machine hits every contestant alike. Numbers are
ns per message over the whole corpus; the verdicts are ratios between contestants.

    fastfeed bench                                     # default: --n 100000 --rounds 7
    fastfeed bench --quick                             # small corpus, few rounds (< 15 s)
    python -m fastfeed.bench.engine --json out.json    # also write the raw result

How fastfeed is called, and what the numbers describe: rows b, c (and their variants)
call ``Engine.feed(payload)`` once per frame from a Python loop, exactly as the peers
(d..h) call theirs; that is what an application feeding an engine from Python pays, and
the target rows use it (so "orjson.loads alone / parse+apply" compares two Python calls
per message). The live client does not make that call: ``FeedListener`` hands picows'
buffer to ``Engine.feed_ptr`` from C (the same per-frame GIL rule as ``feed``), so
rows b/c overstate its cost by the Python call (~30-50 ns/msg here). Row b2 is the
batch API replay uses (``Engine.feed_many``: no Python call per frame; with another
Python thread, one GIL release per run of up to 16 frames); it is printed beside b, not
used for the verdicts. The contestants run on the interpreter's only Python thread, so
``feed``, ``feed_many`` and ``Inflater.inflate_len`` skip their GIL release (rows a and
c alike); a
process with another Python thread (e.g. asyncio's executor after a DNS lookup) pays
it, ~35 ns per frame here.

Importable: ``run(n, seed, rounds) -> dict`` and ``format_table(result) -> str``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import sys
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# numpy's OpenBLAS starts worker threads that busy-wait; nothing here uses BLAS, and on a
# 2-core machine a spinning thread would steal time from the contestants.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .corpus import Frame, corpus_stats, format_stats, make_corpus

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a runtime dependency of fastfeed
    orjson = None  # type: ignore[assignment]
try:
    import msgspec
except ImportError:  # pragma: no cover - optional (the bench extra)
    # unused-ignore: the assignment only conflicts when msgspec is installed (the bench extra)
    msgspec = None  # type: ignore[assignment, unused-ignore]

__all__ = ["CONTESTANTS", "TARGETS", "format_table", "main", "make_dict_client", "run"]

perf_counter_ns = time.perf_counter_ns

ENGINE_KW: dict[str, Any] = {"depth": 200, "trade_capacity": 65536}
QUICK = {"n": 5_000, "rounds": 3}
DEFAULT = {"n": 100_000, "rounds": 7}

# ---------------------------------------------------------------------------------------
# The typical Python client: zlib.decompress + a JSON decoder + dict books.
# ---------------------------------------------------------------------------------------


def make_dict_client(loads: Callable[[bytes], Any], decompress: bool = True):
    """Return ``(on_message, books, trades)`` for a straightforward Python feed client.

    Books are ``{symbol: (bids, asks)}`` with ``dict`` price -> amount per side (floats, as
    fastfeed produces); amount 0 deletes, ``clean=true`` replaces. Trades go oldest first
    into a ``deque(maxlen=65536)`` as tuples, de-duplicated by a per-symbol id high-water
    mark (less work than fastfeed's window of stored trades, which also survives id resets;
    the same result on this corpus, whose ids only increase). Other messages are returned
    decoded. The dict book neither keeps
    levels sorted, nor trims to a depth, nor removes crossed levels: less work than
    fastfeed does, which favours this peer.
    """
    books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
    trades: deque = deque(maxlen=ENGINE_KW["trade_capacity"])
    hwm: dict[str, int] = {}
    append = trades.append
    unzip = zlib.decompress

    def on_message(payload: bytes):
        msg = loads(unzip(payload) if decompress else payload)
        method = msg.get("method")
        if method == "depth.update":
            clean, levels, symbol = msg["params"]
            book = books.get(symbol)
            if book is None:
                book = books[symbol] = ({}, {})
            bids, asks = book
            if clean:
                bids.clear()
                asks.clear()
            for side, key in ((asks, "asks"), (bids, "bids")):
                for price, amount in levels.get(key, ()):
                    a = float(amount)
                    if a:
                        side[float(price)] = a
                    else:
                        side.pop(float(price), None)
            return None
        if method == "trades.update":
            _clean, items, symbol = msg["params"]
            last = top = hwm.get(symbol, -1)
            for t in reversed(items):
                tid = t["id"]
                if tid > last:
                    append(
                        (
                            tid,
                            float(t["time"]),
                            float(t["price"]),
                            float(t["amount"]),
                            1 if t["type"] == "buy" else -1,
                            symbol,
                        )
                    )
                    if tid > top:
                        top = tid
            hwm[symbol] = top
            return None
        return msg

    return on_message, books, trades


# ---------------------------------------------------------------------------------------
# Contestants
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contestant:
    key: str
    label: str
    payload: str  # "zlib" or "plain": which bytes of each frame it is fed
    needs: str  # "fastfeed", "orjson", "msgspec" or "" (stdlib only)
    make: Callable[[], Callable[[bytes], Any]]  # fresh state, returns the per-message call
    batch: bool = False  # make() returns a call taking the whole list of payloads at once


def _backends() -> tuple[str, ...]:
    """The inflate backends of this build, the default (fastest) first, e.g.
    ("isal", "libdeflate", "zlib")."""
    try:
        from fastfeed._inflate import BACKENDS
    except ImportError:  # pragma: no cover - not built
        return ("zlib",)
    return tuple(BACKENDS)


DEFAULT_BACKEND = _backends()[0]


def _make_inflate_only(backend: str = "auto"):
    import fastfeed

    return fastfeed.Inflater(max_size=8 * 1024 * 1024, backend=backend).inflate_len


def _make_engine(backend: str = "auto"):
    import fastfeed

    return fastfeed.Engine(**ENGINE_KW, inflate_backend=backend).feed


def _make_engine_many(backend: str = "auto"):
    """The batch API (replay, ``fastfeed replay``): one ``Engine.feed_many`` call over the
    whole corpus, no Python call per frame (one GIL release per run of up to 16 frames
    when another Python thread exists; none here)."""
    import fastfeed

    return fastfeed.Engine(**ENGINE_KW, inflate_backend=backend).feed_many


def _make_engine_no_drift(backend: str = "auto"):
    import fastfeed

    return fastfeed.Engine(**ENGINE_KW, inflate_backend=backend, drift_check=False).feed


def _make_engine_general(backend: str = "auto"):
    """fastfeed with the parser's fast path off (the general parser reads every message):
    beside row b, what the fast path saves. Same results either way."""
    import fastfeed
    from fastfeed import _parse

    prev = _parse.set_fast_path(False)
    try:
        return fastfeed.Engine(**ENGINE_KW, inflate_backend=backend).feed
    finally:
        _parse.set_fast_path(prev)


def _make_msgspec_decode():
    return msgspec.json.Decoder().decode


CONTESTANTS: tuple[Contestant, ...] = (
    Contestant("inflate", f"a inflate-only ({DEFAULT_BACKEND})", "zlib", "fastfeed", _make_inflate_only),
    Contestant("parse_apply", "b fastfeed parse+apply (plain)", "plain", "fastfeed", _make_engine),
    # the same through the batch API replay uses (no Python call per frame): beside row b,
    # what the per-frame Python call + GIL release of Engine.feed cost
    Contestant(
        "parse_apply_many",
        "b2 parse+apply, feed_many (replay)",
        "plain",
        "fastfeed",
        _make_engine_many,
        batch=True,
    ),
    # the same without the parser's fast path (general parser only)
    Contestant(
        "parse_apply_general", "b1 parse+apply, general parser", "plain", "fastfeed", _make_engine_general
    ),
    Contestant("full", f"c fastfeed full ({DEFAULT_BACKEND})", "zlib", "fastfeed", _make_engine),
    # the cost of comparing each snapshot with the live book it replaces (drift check)
    Contestant(
        "full_nodrift", "c1 fastfeed full, drift check off", "zlib", "fastfeed", _make_engine_no_drift
    ),
    # every other backend of this build side by side (same results): inflate-only and full
    *(
        c
        for i, b in enumerate(_backends()[1:], 2)
        for c in (
            Contestant(
                f"inflate_{b}",
                f"a{i} inflate-only ({b})",
                "zlib",
                "fastfeed",
                functools.partial(_make_inflate_only, b),
            ),
            Contestant(
                f"full_{b}",
                f"c{i} fastfeed full ({b})",
                "zlib",
                "fastfeed",
                functools.partial(_make_engine, b),
            ),
        )
    ),
    Contestant("py_json", "d zlib+json.loads+dict book", "zlib", "", lambda: make_dict_client(json.loads)[0]),
    Contestant(
        "py_orjson",
        "e zlib+orjson.loads+dict book",
        "zlib",
        "orjson",
        lambda: make_dict_client(orjson.loads)[0],
    ),
    Contestant(
        "py_msgspec",
        "f zlib+msgspec decode+dict book",
        "zlib",
        "msgspec",
        lambda: make_dict_client(_make_msgspec_decode())[0],
    ),
    Contestant("orjson_alone", "g orjson.loads alone (plain)", "plain", "orjson", lambda: orjson.loads),
    # For reference: Python's zlib sets up a new z_stream per call (no reset, no reuse).
    Contestant("zlib_alone", "h zlib.decompress alone (python)", "zlib", "", lambda: zlib.decompress),
)


def _inflate_key(b: str) -> str:
    return "inflate" if b == DEFAULT_BACKEND else f"inflate_{b}"


def _full_key(b: str) -> str:
    return "full" if b == DEFAULT_BACKEND else f"full_{b}"


#: Issue 13's target rows, in its order: (name, numerator, denominator, comparison,
#: threshold). ratio = t[num] / t[den]; a denominator of None: the row is t[num] in
#: ns/msg. "full_best" is the fastest full-pipeline contestant of the run. Three more
#: rows are printed with them: Python allocations per depth/trade/ticker frame, the
#: 2-thread speed-up (``threads``) and the live loopback row (bench_live.py).
TARGETS: tuple[tuple[str, str, str | None, str, float], ...] = (
    ("parse+apply, corpus mix (ns/msg)", "parse_apply", None, "<=", 280.0),
    ("orjson.loads alone / parse+apply", "orjson_alone", "parse_apply", ">=", 3.5),
    *(
        (f"full / inflate-only, same backend ({b})", _full_key(b), _inflate_key(b), "<=", 1.18)
        for b in _backends()
    ),
    ("full (best backend) / zlib.decompress", "full_best", "zlib_alone", "<=", 0.85),
)
#: Further ratios, printed after the targets (the earlier issues' rows).
OTHER_RATIOS: tuple[tuple[str, str, str, str, float], ...] = (
    ("drift check: full / check off", "full", "full_nodrift", "<=", 1.05),
    ("py-json-dict / full", "py_json", "full", ">=", 4.0),
    ("py-orjson-dict / full", "py_orjson", "full", ">=", 1.8),
)
THREADS_TARGET = 1.6  # 2 threads (own engine, half the corpus each) vs 1 thread: speed-up
ALLOC_KINDS = ("depth", "trades", "ticker")


def _available(c: Contestant) -> str | None:
    """None if the contestant can run, else why not."""
    if c.needs == "fastfeed":
        try:
            import fastfeed
        except ImportError as exc:  # pragma: no cover
            return f"fastfeed not importable: {exc}"
        if not fastfeed.COMPILED:
            return "fastfeed compiled extensions not built"
    elif c.needs == "orjson" and orjson is None:
        return "orjson not installed"
    elif c.needs == "msgspec" and msgspec is None:
        return "msgspec not installed"
    return None


def _time_pass(fn: Callable[[bytes], Any], payloads: Sequence[bytes], batch: bool = False) -> int:
    """ns for one pass of ``fn`` over ``payloads`` (``batch``: one call with the whole
    list), gc disabled."""
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = perf_counter_ns()
        if batch:
            fn(payloads)  # type: ignore[arg-type]
        else:
            for p in payloads:
                fn(p)
        t1 = perf_counter_ns()
    finally:
        if gc_was:
            gc.enable()
    return t1 - t0


def _per_frame_ns(fn: Callable[[bytes], Any], payloads: Sequence[bytes]) -> list[int]:
    """ns of each call, timed one by one (includes the timer's own overhead)."""
    out = [0] * len(payloads)
    pc = perf_counter_ns
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for i, p in enumerate(payloads):
            t0 = pc()
            fn(p)
            out[i] = pc() - t0
    finally:
        if gc_was:
            gc.enable()
    return out


def _by_kind(
    contestants: Sequence[Contestant],
    frames: Sequence[Frame],
    payloads: dict[str, list[bytes]],
    passes: int = 2,
) -> dict[str, dict[str, float]]:
    """Mean ns per frame of each kind for each contestant.

    Every frame is timed on its own, ``passes`` times with fresh state (the work per frame
    is the same each pass), keeping each frame's minimum to drop interrupts; the same loop
    around ``len(p)`` is subtracted (timer overhead). Rough by nature: for where the time
    goes, not for the verdicts.
    """
    kinds = sorted({f.kind for f in frames}, key=lambda k: ("depth", "snapshot", "trades", "ticker").index(k))
    idx = {k: [i for i, f in enumerate(frames) if f.kind == k] for k in kinds}
    base = [min(ts) for ts in zip(*(_per_frame_ns(len, payloads["zlib"]) for _ in range(passes)))]
    out: dict[str, dict[str, float]] = {}
    for c in contestants:
        if c.batch:  # one call for all frames: no per-frame time
            continue
        best = [min(ts) for ts in zip(*(_per_frame_ns(c.make(), payloads[c.payload]) for _ in range(passes)))]
        out[c.key] = {k: sum(best[i] - base[i] for i in ii) / len(ii) for k, ii in idx.items()}
    return out


def _kind_mix(
    kind_ns: dict[str, dict[str, float]],
    frames: Sequence[Frame],
    per_msg: dict[str, float],
    payloads: Sequence[bytes],
    rounds: int = 25,
) -> dict[str, Any]:
    """The per-kind rows weighted by the corpus mix, beside each contestant's whole-corpus
    row, and the loop floor: ns/msg of ``for p in payloads: len(p)`` (the loop and a call,
    which every whole-corpus row pays and the per-kind rows subtract as timer overhead).

    whole row ~= weighted + loop floor + what picking each frame's minimum of 2 passes
    takes off the per-kind rows (~0-25 ns/msg here) + for engines, in rounds whose fresh
    engine gets fresh pages from malloc, the first-touch page faults of its trade and
    ticker rings (~300 faults per 30k-frame pass, +20-30 ns/msg; the per-kind rows'
    second pass reuses the first's memory). The gap between the two is the harness, every
    contestant shows it, not the interleaving of kinds (the per-kind frames are timed in
    corpus order too; callgrind counts the same instructions per frame whether the corpus
    is interleaved or grouped by kind).
    """
    n = len(frames)
    share: dict[str, float] = {}
    for f in frames:
        share[f.kind] = share.get(f.kind, 0.0) + 1.0 / n
    floor = min(_time_pass(len, payloads) for _ in range(rounds)) / len(payloads)
    rows = {
        key: {"weighted": sum(share[k] * v for k, v in ns.items()), "whole": per_msg.get(key)}
        for key, ns in kind_ns.items()
    }
    return {"loop_floor_ns": floor, "rows": rows}


# ---------------------------------------------------------------------------------------
# Allocation checks (fastfeed b and c)
# ---------------------------------------------------------------------------------------


def _blocks_delta(fn: Callable[[bytes], Any], payloads: Sequence[bytes]) -> int:
    getblocks = sys.getallocatedblocks
    gc.collect()
    gc.disable()
    try:
        b0 = getblocks()
        for p in payloads:
            fn(p)
        b1 = getblocks()
    finally:
        gc.enable()
    return b1 - b0


def _transient_frames(fn: Callable[[bytes], Any], payloads: Sequence[bytes]) -> int:
    """Frames during which the traced heap rose above its level at the end of the frame
    (something was allocated and freed again): tracemalloc's peak vs current per call."""
    import tracemalloc

    tracemalloc.start()
    try:
        reset = tracemalloc.reset_peak
        traced = tracemalloc.get_traced_memory
        count = 0
        cur = peak = 0
        for p in payloads:
            reset()
            fn(p)
            cur, peak = traced()
            if peak > cur:
                count += 1
        return count
    finally:
        tracemalloc.stop()


def _alloc_check(
    frames: Sequence[Frame], payload: str, kind: str | None = None, transient_sample: int = 2000
) -> dict:
    """Python allocations per frame on the hot path of Engine.feed: depth and trade frames
    (``kind`` None), or the frames of one ``kind`` ("depth", "trades", "ticker", ...).

    A fresh engine is fed the first 10% of the corpus and the first frame of every symbol
    of every kind (a symbol's first push creates its name, book or ticker row: once per
    symbol, not per frame, so it belongs to the warm-up); then the
    ``sys.getallocatedblocks()`` delta over the remaining frames of the kind (each fed
    once, so trades are new, not duplicates) is divided by their count, after subtracting
    the same measurement around a no-op call (the harness's own blocks). ``transient``
    counts, over a sample of further frames under tracemalloc, frames that allocated memory
    inside ``feed`` and freed it or handed it back (a decoded message returned and dropped
    is one), which the blocks delta cannot see.
    """
    warm_n = max(10, len(frames) // 10)
    firsts: dict[tuple[str, str], int] = {}
    for i, f in enumerate(frames):
        firsts.setdefault((f.method, f.symbol), i)
    warm = sorted(set(range(min(warm_n, len(frames)))) | set(firsts.values()))
    warm_set = set(warm)
    rest = [f for i, f in enumerate(frames) if i not in warm_set]
    if kind is None:
        hot = [getattr(f, payload) for f in rest if f.method in ("depth.update", "trades.update")]
    else:
        hot = [getattr(f, payload) for f in rest if f.kind == kind]
    if len(hot) < 20:
        return {"frames": 0, "blocks_per_frame": float("nan"), "transient": None, "transient_sample": 0}
    sample_n = min(transient_sample, max(0, len(hot) // 4))
    measured, sample = hot[: len(hot) - sample_n], hot[len(hot) - sample_n :]
    feed = _make_engine()
    for i in warm:
        feed(getattr(frames[i], payload))

    def noop(p: bytes) -> None:
        return None

    baseline = _blocks_delta(noop, measured)
    delta = _blocks_delta(feed, measured) - baseline
    transient = _transient_frames(feed, sample) - _transient_frames(noop, sample)
    return {
        "frames": len(measured),
        "blocks_delta": delta,
        "blocks_per_frame": delta / len(measured),
        "transient": transient,
        "transient_sample": len(sample),
    }


# ---------------------------------------------------------------------------------------
# Threads: engines in parallel (the GIL is released around inflate + parse)
# ---------------------------------------------------------------------------------------


def _threads(frames: Sequence[Frame], rounds: int) -> dict:
    """1 thread vs 2 threads, each with its own Engine on half the corpus (the symbols
    split in two, so each half is a complete feed), ``feed_many`` of the zlib payloads.
    One thread feeds both halves one after the other (two engines); two threads feed one
    half each at the same time. Interleaved rounds; speed-up = min 1-thread time / min
    2-thread time (~2 on 2 idle cores if nothing held the GIL)."""
    import threading

    import fastfeed

    symbols = sorted({f.symbol for f in frames})
    group = {s: i % 2 for i, s in enumerate(symbols)}
    halves = [[f.zlib for f in frames if group[f.symbol] == h] for h in (0, 1)]

    def engines():
        return [fastfeed.Engine(**ENGINE_KW) for _ in halves]

    def one() -> int:
        es = engines()
        gc.collect()
        t0 = perf_counter_ns()
        for e, h in zip(es, halves):
            e.feed_many(h)
        return perf_counter_ns() - t0

    def two() -> int:
        es = engines()
        gc.collect()
        ready = threading.Barrier(3)
        threads = [
            threading.Thread(target=lambda e=e, h=h: (ready.wait(), e.feed_many(h)))
            for e, h in zip(es, halves)
        ]
        for t in threads:
            t.start()
        ready.wait()
        t0 = perf_counter_ns()
        for t in threads:
            t.join()
        return perf_counter_ns() - t0

    # Control: work that holds no GIL at all (hashlib on 1 MiB blocks), the same way: what
    # this machine allows two threads right now (other processes take cores too).
    import hashlib

    block = b"\x5a" * (1 << 20)
    reps = max(4, len(frames) // 2000)

    def hash_work(k: int) -> None:
        for _ in range(k):
            hashlib.sha256(block).digest()

    def c_one() -> int:
        t0 = perf_counter_ns()
        hash_work(2 * reps)
        return perf_counter_ns() - t0

    def c_two() -> int:
        threads = [threading.Thread(target=hash_work, args=(reps,)) for _ in range(2)]
        t0 = perf_counter_ns()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return perf_counter_ns() - t0

    t1: list[int] = []
    t2: list[int] = []
    c1: list[int] = []
    c2: list[int] = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            for fn, out in ((one, t1), (two, t2), (c_one, c1), (c_two, c2))[:: 1 if r % 2 == 0 else -1]:
                out.append(fn())
    finally:
        if gc_was:
            gc.enable()
    n = len(frames)
    return {
        "one_ns_per_msg": min(t1) / n,
        "two_ns_per_msg": min(t2) / n,
        "speedup": min(t1) / min(t2),
        "speedup_rounds": [a / b for a, b in zip(t1, t2)],
        "control_speedup": min(c1) / min(c2),
        "halves": [len(h) for h in halves],
    }


# ---------------------------------------------------------------------------------------
# Sanity: the contestants did the work (no rejects, same books and trades as the peer)
# ---------------------------------------------------------------------------------------


def _sanity(frames: Sequence[Frame]) -> list[str]:
    """Feed the corpus once to fastfeed (zlib and plain) and to the json dict client and
    compare message counts, stored trades and top of book. Returns problems found."""
    problems: list[str] = []
    on_msg, books, trades = make_dict_client(json.loads)
    for f in frames:
        on_msg(f.zlib)
    want = {"depth.update": 0, "trades.update": 0, "ticker.update": 0}
    for f in frames:
        want[f.method] += 1
    import fastfeed

    for payload in ("zlib", "plain"):
        eng = fastfeed.Engine(**ENGINE_KW)
        try:
            for f in frames:
                eng.feed(getattr(f, payload))
        except Exception as exc:
            problems.append(f"{payload}: feed raised {type(exc).__name__}: {exc}")
            continue
        st = eng.stats
        rejects = {k: v for k, v in dict(st.get("rejects", {})).items() if v}
        if rejects:
            problems.append(f"{payload}: rejects {rejects}")
        got = dict(st.get("messages", {}))
        for m, n in want.items():
            if got.get(m, 0) != n:
                problems.append(f"{payload}: messages[{m!r}] = {got.get(m, 0)}, corpus has {n}")
        k = min(len(trades), ENGINE_KW["trade_capacity"])
        if k:
            try:
                ids = [int(x) for x in eng.trades.latest(k)["id"]]
            except Exception as exc:
                problems.append(f"{payload}: trades.latest({k}) raised {exc!r}")
            else:
                if ids != [t[0] for t in list(trades)[-k:]]:
                    problems.append(f"{payload}: latest {k} trade ids differ from the peer's")
        for sym, (bids, asks) in books.items():
            if not bids or not asks or max(bids) >= min(asks):
                continue  # the dict book keeps crossed levels; fastfeed removes them
            book = eng.book(sym)
            if (book.best_bid, book.best_ask) != (max(bids), min(asks)):
                problems.append(
                    f"{payload}: {sym} top {book.best_bid}/{book.best_ask}, dict book {max(bids)}/{min(asks)}"
                )
    return problems


# ---------------------------------------------------------------------------------------
# Machine info
# ---------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    import numpy

    info = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": numpy.__version__,
        "zlib (python)": zlib.ZLIB_RUNTIME_VERSION,
        "orjson": getattr(orjson, "__version__", None),
        "msgspec": getattr(msgspec, "__version__", None),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import fastfeed

        where = Path(fastfeed.__file__).parent
        info["fastfeed"] = f"{fastfeed.__version__} (compiled={fastfeed.COMPILED}, {where})"
        if fastfeed.COMPILED:
            from fastfeed import _inflate

            info["zlib (fastfeed)"] = getattr(_inflate, "ZLIB_RUNTIME_VERSION", None)
    except ImportError as exc:  # pragma: no cover
        info["fastfeed"] = f"not importable: {exc}"
    return info


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def run(
    n: int = DEFAULT["n"],
    seed: int = 1,
    rounds: int = DEFAULT["rounds"],
    *,
    stat: str = "min",
    frames: Sequence[Frame] | None = None,
    alloc_check: bool = True,
    sanity: bool = True,
    by_kind: bool = True,
    threads: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run the side-by-side benchmark and return a JSON-serialisable result.

    ``stat`` ("min" or "median") is the statistic over rounds used for ns/msg and for the
    ratios. Ratios are also given per round (``ratio_rounds``) to show their spread.
    ``frames`` overrides the generated corpus (e.g. one loaded from a file).
    """
    if stat not in ("min", "median"):
        raise ValueError("stat must be 'min' or 'median'")
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    say = progress or (lambda s: None)
    t_start = time.perf_counter()
    if frames is None:
        say(f"building corpus n={n} seed={seed} ...")
        frames = make_corpus(n, seed=seed)
    n = len(frames)
    if n == 0:
        raise ValueError("empty corpus")
    payloads = {"zlib": [f.zlib for f in frames], "plain": [f.plain for f in frames]}

    runnable: list[Contestant] = []
    skipped: dict[str, str] = {}
    for c in CONTESTANTS:
        why = _available(c)
        if why is None:
            runnable.append(c)
        else:
            skipped[c.key] = why

    problems: list[str] = []
    if sanity and any(c.needs == "fastfeed" for c in runnable):
        say("sanity check (fastfeed vs the dict client) ...")
        problems = _sanity(frames)

    say("warm-up ...")
    for c in runnable:
        _time_pass(c.make(), payloads[c.payload], c.batch)

    times: dict[str, list[int]] = {c.key: [] for c in runnable}
    for r in range(rounds):
        k = r % len(runnable)
        order = runnable[k:] + runnable[:k]  # rotate so no contestant always goes first
        for c in order:
            fn = c.make()
            gc.collect()
            times[c.key].append(_time_pass(fn, payloads[c.payload], c.batch))
        say(f"round {r + 1}/{rounds} done")

    pick = min if stat == "min" else _median
    per_msg = {k: pick(v) / n for k, v in times.items()}
    rows = []
    for c in CONTESTANTS:
        if c.key not in times:
            rows.append({"key": c.key, "label": c.label, "skipped": skipped[c.key]})
            continue
        ts = times[c.key]
        row: dict[str, Any] = {
            "key": c.key,
            "label": c.label,
            "payload": c.payload,
            "ns_per_msg": per_msg[c.key],
            "ns_per_msg_min": min(ts) / n,
            "ns_per_msg_median": _median(ts) / n,
            "msgs_per_s": 1e9 / per_msg[c.key] if per_msg[c.key] else float("inf"),
            "vs_inflate": (per_msg[c.key] / per_msg["inflate"]) if "inflate" in per_msg else None,
        }
        rows.append(row)

    fulls = [k for k in per_msg if k == "full" or (k.startswith("full_") and k != "full_nodrift")]
    if fulls:
        best = min(fulls, key=lambda k: per_msg[k])
        per_msg["full_best"] = per_msg[best]
        times["full_best"] = times[best]

    def ratio_rows(specs, target: bool) -> list[dict]:
        out = []
        for name, num, den, cmp, thr in specs:
            row = {
                "name": name,
                "value": None,
                "target": f"{cmp} {thr:g}",
                "ok": None,
                "round_min": None,
                "round_max": None,
                "at_floor": None,
                "is_target": target,
            }
            if num in per_msg and (den is None or den in per_msg):
                if den is None:
                    value = per_msg[num]
                    each = [t / n for t in times[num]]
                else:
                    value = per_msg[num] / per_msg[den]
                    each = [a / b for a, b in zip(times[num], times[den])]
                # The best this ratio can be if fastfeed's full pipeline cost only the floor.
                at_floor = (
                    per_msg[num] / per_msg["inflate"] if den == "full" and "inflate" in per_msg else None
                )
                row.update(
                    value=value,
                    ok=value <= thr if cmp == "<=" else value >= thr,
                    round_min=min(each),
                    round_max=max(each),
                    at_floor=at_floor,
                )
            out.append(row)
        return out

    ratios = ratio_rows(TARGETS, True) + ratio_rows(OTHER_RATIOS, False)

    kind_ns = {}
    if by_kind:
        say("per-kind breakdown ...")
        kind_ns = _by_kind(runnable, frames, payloads)

    allocations = {}
    if alloc_check and "full" in times:
        say("allocation check ...")
        for key, payload in (("parse_apply", "plain"), ("full", "zlib")):
            allocations[key] = _alloc_check(frames, payload)
        for kind in ALLOC_KINDS:
            allocations[f"kind_{kind}"] = _alloc_check(frames, "zlib", kind)

    kind_mix: dict[str, Any] = {}
    if kind_ns:
        kind_mix = _kind_mix(kind_ns, frames, per_msg, payloads["plain"])

    thread_res = {}
    if threads and "full" in times:
        say("threads: 1 vs 2 engines in parallel ...")
        thread_res = _threads(frames, max(3, rounds))

    return {
        "n": n,
        "seed": seed,
        "rounds": rounds,
        "stat": stat,
        "machine": machine_info(),
        "corpus": corpus_stats(frames),
        "rows": rows,
        "round_ns": times,
        "ratios": ratios,
        "allocations": allocations,
        "by_kind": kind_ns,
        "by_kind_mix": kind_mix,
        "problems": problems,
        "threads": thread_res,
        "elapsed_s": time.perf_counter() - t_start,
    }


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------


def _fmt_alloc(a: dict | None) -> str:
    if not a:
        return "-"
    s = f"{a['blocks_per_frame']:.3f}"
    if a.get("transient") is not None:
        s += f" ({a['transient']}/{a['transient_sample']})"
    return s


def _format_ratio_rows(rows: list[dict]) -> list[str]:
    out = [f"{'target ratio':<46}{'value':>9}{'target':>9}{'rounds min..max':>18}{'at floor':>10}  verdict"]
    for q in rows:
        if q["value"] is None:
            out.append(f"{q['name']:<46}{'n/a':>9}{q['target']:>9}{'':>28}  not measured")
            continue
        spread = f"{q['round_min']:.2f}..{q['round_max']:.2f}"
        floor = q.get("at_floor")
        verdict = "ok" if q["ok"] else "MISSED"
        if floor is not None and not q["ok"]:
            cmp, thr = q["target"].split()
            if (floor < float(thr)) if cmp == ">=" else (floor > float(thr)):
                verdict += " (unreachable even at the floor)"
        floor_s = f"{floor:.2f}" if floor is not None else "-"
        out.append(f"{q['name']:<46}{q['value']:>9.2f}{q['target']:>9}{spread:>18}{floor_s:>10}  {verdict}")
    return out


def _format_extra_targets(result: dict) -> list[str]:
    """The allocation, threads and live rows of the issue's table."""
    out = []
    allocs = result.get("allocations") or {}
    got = [allocs.get(f"kind_{k}") for k in ALLOC_KINDS]
    per_kind: list[dict[str, Any]] = [a for a in got if a]
    if len(per_kind) == len(got):
        vals = []
        ok = True
        for a in per_kind:
            if not a.get("frames"):
                vals.append("n/a")
                continue
            vals.append(f"{a['blocks_per_frame']:.2g}")
            ok = ok and not a.get("blocks_delta") and not a.get("transient")
        trans = "/".join(str(a.get("transient")) for a in per_kind)
        out.append(
            f"{'Python allocs per depth/trade/ticker frame':<46}{'/'.join(vals):>9}"
            f"{'0/0/0':>9}{'transient ' + trans:>18}{'-':>10}  "
            f"{'ok' if ok else 'MISSED'}"
        )
    th = result.get("threads") or {}
    if th:
        spread = f"{min(th['speedup_rounds']):.2f}..{max(th['speedup_rounds']):.2f}"
        out.append(
            f"{'2 threads (own Engine, half each) / 1 thread':<46}{th['speedup']:>9.2f}"
            f"{'>= ' + format(THREADS_TARGET, 'g'):>9}{spread:>18}{'-':>10}  "
            f"{'ok' if th['speedup'] >= THREADS_TARGET else 'MISSED'}"
            f"   ({th['one_ns_per_msg']:.0f} vs {th['two_ns_per_msg']:.0f} ns/msg wall)"
        )
        out.append(
            f"{'  control: GIL-free sha256, 2 threads / 1':<46}"
            f"{th['control_speedup']:>9.2f}{'':>9}{'':>28}  what the machine allowed "
            "(other load takes cores)"
        )
    out.append(
        f"{'live loopback max msg/s vs picows+zlib+orjson':<46}{'':>9}{'>= 3.5':>9}"
        f"{'':>28}  see benchmarks/bench_live.py --rates max"
    )
    return out


def format_table(result: dict) -> str:
    """The human-readable report of a :func:`run` result."""
    out: list[str] = []
    m = result["machine"]
    out.append("machine: " + ", ".join(f"{k} {v}" for k, v in m.items() if k != "platform"))
    out.append(f"platform: {m.get('platform')}")
    out.append(
        f"corpus: n={result['n']} seed={result['seed']}; rounds={result['rounds']} "
        f"(interleaved, rotating order), stat={result['stat']} over rounds"
    )
    out.append(format_stats(result["corpus"]))
    out.append("")
    allocs = result.get("allocations", {})
    head = (
        f"{'contestant':<36}{'ns/msg':>10}{'median':>10}{'msgs/s':>12}"
        f"{'vs inflate':>11}  {'allocs/frame (transient)':<26}"
    )
    out.append(head)
    out.append("-" * len(head))
    for r in result["rows"]:
        if "skipped" in r:
            out.append(f"{r['label']:<36}{'skipped: ' + r['skipped']:>43}")
            continue
        vs = f"{r['vs_inflate']:.2f}x" if r["vs_inflate"] is not None else "n/a"
        out.append(
            f"{r['label']:<36}{r['ns_per_msg']:>10.1f}{r['ns_per_msg_median']:>10.1f}"
            f"{r['msgs_per_s']:>12,.0f}{vs:>11}  {_fmt_alloc(allocs.get(r['key'])):<26}"
        )
    out.append("")
    out.append("issue 13 targets (one run, side by side):")
    out.extend(_format_ratio_rows([q for q in result["ratios"] if q.get("is_target", True)]))
    out.extend(_format_extra_targets(result))
    others = [q for q in result["ratios"] if not q.get("is_target", True)]
    if others:
        out.append("")
        out.append("other ratios:")
        out.extend(_format_ratio_rows(others))
    out.append(
        "at floor: the ratio if fastfeed's full pipeline cost no more than "
        "inflate-only (row a), i.e. the best it can reach with this inflater."
    )
    kind_ns = result.get("by_kind") or {}
    if kind_ns:
        kinds = list(next(iter(kind_ns.values())))
        out.append("")
        out.append(
            "per kind, ns/frame (each frame timed alone, min of 2 passes, timer overhead removed; rough):"
        )
        mix = (result.get("by_kind_mix") or {}).get("rows") or {}
        extra = mix and all(r.get("whole") is not None for r in mix.values())
        out.append(
            f"{'contestant':<36}"
            + "".join(f"{k:>10}" for k in kinds)
            + (f"{'mix-wtd':>10}{'whole':>10}" if extra else "")
        )
        for r in result["rows"]:
            if r["key"] in kind_ns:
                line = f"{r['label']:<36}" + "".join(f"{kind_ns[r['key']][k]:>10.0f}" for k in kinds)
                if extra:
                    line += f"{mix[r['key']]['weighted']:>10.0f}{mix[r['key']]['whole']:>10.0f}"
                out.append(line)
        if extra:
            floor = result["by_kind_mix"]["loop_floor_ns"]
            out.append(
                "mix-wtd: the per-kind rows weighted by the corpus mix; whole: the contestant's "
                "whole-corpus row. whole - mix-wtd is the harness, in every row (inflate-only "
                "too): the loop and call the per-kind rows subtract "
                f"({floor:.0f} ns/msg here), their per-frame min-of-2 bias and, for engines, "
                "first-touch page faults of a fresh engine's rings in rounds that get fresh "
                "memory (the per-kind rows keep each frame's faster pass)."
            )
    if allocs:
        out.append("")
        out.append(
            "allocs/frame: sys.getallocatedblocks() delta per depth/trade/ticker frame "
            "fed once to a warmed-up Engine, minus a no-op baseline (target 0); in "
            "brackets: frames of a tracemalloc sample that allocated and freed memory."
        )
    if result.get("problems"):
        out.append("")
        out.append("SANITY PROBLEMS (the numbers above may not mean what they say):")
        out.extend(f"  - {p}" for p in result["problems"])
    out.append(f"elapsed {result['elapsed_s']:.1f} s")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fastfeed side-by-side benchmark (ns/message).")
    ap.add_argument(
        "--n", type=int, default=None, help=f"corpus frames (default {DEFAULT['n']}, --quick {QUICK['n']})"
    )
    ap.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"interleaved rounds (default {DEFAULT['rounds']}, --quick {QUICK['rounds']})",
    )
    ap.add_argument(
        "--stat",
        choices=("min", "median"),
        default="min",
        help="statistic over rounds for ns/msg and ratios (default min)",
    )
    ap.add_argument("--quick", action="store_true", help="small corpus, few rounds (< 15 s)")
    ap.add_argument("--corpus", metavar="FILE", help="use a corpus file written by corpus.py")
    ap.add_argument("--no-alloc", action="store_true", help="skip the allocation check")
    ap.add_argument("--no-by-kind", action="store_true", help="skip the per-kind breakdown")
    ap.add_argument("--no-threads", action="store_true", help="skip the 1 vs 2 threads row")
    ap.add_argument("--json", metavar="OUT", help="write the raw result as JSON")
    ap.add_argument(
        "--check", action="store_true", help="exit 1 if a target ratio is missed or the sanity check fails"
    )
    args = ap.parse_args(argv)
    base = QUICK if args.quick else DEFAULT
    n = args.n if args.n is not None else base["n"]
    rounds = args.rounds if args.rounds is not None else base["rounds"]
    frames = None
    if args.corpus:
        from .corpus import load_corpus

        frames = load_corpus(args.corpus)

    def progress(msg: str) -> None:
        print(f"# {msg}", file=sys.stderr, flush=True)

    result = run(
        n,
        args.seed,
        rounds,
        stat=args.stat,
        frames=frames,
        alloc_check=not args.no_alloc,
        by_kind=not args.no_by_kind,
        threads=not args.no_threads,
        progress=progress,
    )
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    if args.check:
        missed = [q for q in result["ratios"] if q["ok"] is False]
        allocs_bad = [
            k for k, a in result["allocations"].items() if a.get("blocks_delta") or a.get("transient")
        ]
        th = result.get("threads") or {}
        if th and th["speedup"] < THREADS_TARGET:
            missed.append({"name": "threads"})
        if missed or result["problems"] or allocs_bad:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
