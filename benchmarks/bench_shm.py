"""Shared-memory benchmark: the reader's snapshot cost and the writer's publishing cost.

Two tables, each measured side by side in interleaved rounds (ratios are what count on a
shared, noisy machine; see benchmarks/README.md):

1. **Reader snapshot cost**, ns per call, for books of 10 / 50 / 200 levels a side
   (``--levels``), reader and writer in one process, writer idle:
   ``ShmBook.read_into`` (consistent copy into caller arrays, no allocation),
   ``ShmBook.snapshot`` (consistent copy into two new numpy arrays), ``ShmBook.best_bid``
   (seqlock read of the top), and for reference the writer's own ``Book.snapshot()``.
   ``--contended`` adds the same ``snapshot`` while another process rewrites that book
   at full speed (retries included) and reports the retry rate.
2. **Writer slowdown**: the corpus (benchmarks/corpus.py) fed through a plain
   ``Engine`` and through ``Engine(shm_name=...)`` (default, and with ``shm_checksum``), as
   zlib frames (what a live writer costs) and as plain JSON (parse+apply only, the
   harshest ratio). Target: shm / plain <= 1.15 on the zlib pipeline.

    python benchmarks/bench_shm.py                 # --n 50000 --rounds 7
    python benchmarks/bench_shm.py --quick         # small, a few seconds
    python benchmarks/bench_shm.py --contended     # also the contended snapshot row
    python benchmarks/bench_shm.py --json out.json
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
if any((_ROOT / "fastfeed").glob("_engine*.so")) or importlib.util.find_spec("fastfeed") is None:
    sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402
from corpus import make_corpus  # noqa: E402

__all__ = ["TARGET", "format_table", "main", "run"]

#: shm / plain on the full (zlib) pipeline.
TARGET = 1.15
QUICK = {"n": 10_000, "rounds": 3, "calls": 20_000}
DEFAULT = {"n": 50_000, "rounds": 7, "calls": 100_000}
perf_counter_ns = time.perf_counter_ns


def _name(tag: str) -> str:
    return f"bench-{os.getpid()}-{tag}"


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def _book_frame(levels: int, version: int) -> bytes:
    """A clean snapshot of ``levels`` rows a side, prices shifted by ``version``."""
    d = (version % 97) * 0.01
    asks = [[f"{100.0 + d + 0.01 * i:.2f}", f"{1 + (i + version) % 9}.5"] for i in range(levels)]
    bids = [[f"{99.0 + d - 0.01 * i:.2f}", f"{1 + (i + version) % 7}.25"] for i in range(levels)]
    return json.dumps(
        {"method": "depth.update", "params": [True, {"asks": asks, "bids": bids}, "BENCH_USDT"], "id": None},
        separators=(",", ":"),
    ).encode()


# ----------------------------------------------------------------------------- reader
def _time_calls(fn: Callable[[], Any], calls: int) -> float:
    gc.disable()
    try:
        t0 = perf_counter_ns()
        for _ in range(calls):
            fn()
        t1 = perf_counter_ns()
    finally:
        gc.enable()
    return (t1 - t0) / calls


def _loop_overhead(calls: int) -> float:
    def noop() -> None:
        return None

    return _time_calls(noop, calls)


def _contender(name: str, levels: int, seconds: float, ready: Any) -> None:
    """Another process: rewrite the book of segment ``name`` for ``seconds``."""
    import fastfeed

    frames = [_book_frame(levels, v) for v in range(64)]
    with fastfeed.Engine(depth=max(levels, 1), shm_name=name) as eng:
        eng.feed(frames[0])
        ready.send(True)
        ready.close()
        feed = eng.feed
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            for f in frames:
                feed(f)
            i += 1


def reader_costs(
    levels_list: Sequence[int], rounds: int, calls: int, contended: bool
) -> dict[int, dict[str, float]]:
    import fastfeed
    from fastfeed.shm import attach

    out: dict[int, dict[str, float]] = {}
    overhead = min(_loop_overhead(calls) for _ in range(3))
    for levels in levels_list:
        name = _name(f"r{levels}")
        with fastfeed.Engine(depth=levels, shm_name=name, shm_checksum=True) as eng:
            eng.feed(_book_frame(levels, 1))
            book = eng.book("BENCH_USDT")
            with attach(name) as reader:
                rb = reader.book("BENCH_USDT")
                assert rb.read(verify=True).version == 1
                ob = np.empty((levels, 2))
                oa = np.empty((levels, 2))
                rows: dict[str, Callable[[], Any]] = {
                    "read_into": lambda: rb.read_into(ob, oa),
                    "snapshot": rb.snapshot,
                    "best_bid": lambda: rb.best_bid,
                    "writer Book.snapshot": book.snapshot,
                }
                res: dict[str, list[float]] = {k: [] for k in rows}
                for r in range(rounds):
                    order = list(rows)
                    order = order[r % len(order) :] + order[: r % len(order)]
                    for k in order:
                        res[k].append(max(_time_calls(rows[k], calls) - overhead, 0.0))
                out[levels] = {k: min(v) for k, v in res.items()}
        if contended:
            out[levels].update(_contended(levels, rounds, calls, overhead))
    return out


def _contended(levels: int, rounds: int, calls: int, overhead: float) -> dict[str, float]:
    from fastfeed.shm import attach, unlink_segment

    name = _name(f"c{levels}")
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    seconds = 2.0 + rounds * calls * 5e-6
    proc = ctx.Process(target=_contender, args=(name, levels, seconds, send))
    proc.start()
    send.close()
    try:
        if not recv.poll(30):
            raise RuntimeError("contender did not start")
        recv.recv()
        with attach(name) as reader:
            rb = reader.book("BENCH_USDT")
            best = float("inf")
            v0 = rb.version
            for _ in range(rounds):
                best = min(best, _time_calls(rb.snapshot, calls) - overhead)
            writes = rb.version - v0
        return {"snapshot (writer busy)": best, "writer msgs during": float(writes)}
    finally:
        recv.close()
        proc.join(seconds + 30)
        if proc.is_alive():  # pragma: no cover
            proc.kill()
            proc.join()
        unlink_segment(name)


# ----------------------------------------------------------------------------- writer
def _pass(feed: Callable[[bytes], Any], payloads: Sequence[bytes]) -> int:
    gc.disable()
    try:
        t0 = perf_counter_ns()
        for p in payloads:
            feed(p)
        t1 = perf_counter_ns()
    finally:
        gc.enable()
    return t1 - t0


def writer_costs(n: int, seed: int, rounds: int, depth: int) -> dict[str, Any]:
    import fastfeed

    frames = make_corpus(n, seed=seed)
    payloads = {"zlib": [f.zlib for f in frames], "plain": [f.plain for f in frames]}
    makers: dict[str, Callable[[], Any]] = {
        "plain": lambda: fastfeed.Engine(depth=depth),
        "shm": lambda: fastfeed.Engine(depth=depth, shm_name=_name("w")),
        "shm + checksum": lambda: fastfeed.Engine(depth=depth, shm_name=_name("w"), shm_checksum=True),
        "event_log": lambda: fastfeed.Engine(depth=depth, event_log=1 << 16),
    }
    times: dict[tuple[str, str], list[int]] = {(k, p): [] for k in makers for p in payloads}
    # warm-up and sanity: every variant ends in the same state
    ref = None
    for k, make in makers.items():
        eng = make()
        for p in payloads["zlib"]:
            eng.feed(p)
        state = [(b.bids.tobytes(), b.asks.tobytes()) for b in eng.books.values()]
        eng.close()
        if ref is None:
            ref = state
        elif state != ref:
            raise AssertionError(f"{k}: books differ from the plain engine")
    for r in range(rounds):
        keys = list(times)
        keys = keys[r % len(keys) :] + keys[: r % len(keys)]
        for k, p in keys:
            eng = makers[k]()
            try:
                times[(k, p)].append(_pass(eng.feed, payloads[p]))
            finally:
                eng.close()
    per_msg = {key: min(v) / n for key, v in times.items()}
    ratios: dict[tuple[str, str], tuple[float, float, float]] = {}
    for k in makers:
        for p in payloads:
            per_round = [a / b for a, b in zip(times[(k, p)], times[("plain", p)])]
            ratios[(k, p)] = (per_msg[(k, p)] / per_msg[("plain", p)], min(per_round), max(per_round))
    return {"per_msg": per_msg, "ratios": ratios, "n": n}


# ----------------------------------------------------------------------------- report
def run(
    n: int, seed: int, rounds: int, calls: int, levels: Sequence[int], depth: int, contended: bool
) -> dict[str, Any]:
    return {
        "reader": reader_costs(levels, rounds, calls, contended),
        "writer": writer_costs(n, seed, rounds, depth),
        "args": {"n": n, "seed": seed, "rounds": rounds, "calls": calls, "depth": depth},
    }


def format_table(res: dict[str, Any]) -> str:
    lines = []
    reader = res["reader"]
    cols = list(next(iter(reader.values())).keys()) if reader else []
    lines.append("reader, ns per call (min over rounds, loop overhead removed)")
    lines.append(f"{'levels/side':>12}" + "".join(f"{c:>24}" for c in cols))
    for levels, row in reader.items():
        lines.append(
            f"{levels:>12}" + "".join(f"{row[c]:>24.0f}" if "msgs" in c else f"{row[c]:>24.1f}" for c in cols)
        )
    w = res["writer"]
    lines.append("")
    lines.append(
        f"writer, ns per message over a {w['n']}-frame corpus (min over rounds); "
        "ratio vs the plain Engine on the same payloads"
    )
    lines.append(
        f"{'variant':<20}{'payload':>8}{'ns/msg':>10}{'ratio':>8}{'rounds min..max':>18}{'verdict':>10}"
    )
    for (k, p), ns in w["per_msg"].items():
        ratio, lo, hi = w["ratios"][(k, p)]
        verdict = ""
        if k == "shm" and p == "zlib":
            verdict = "ok" if ratio <= TARGET else "MISSED"
        lines.append(f"{k:<20}{p:>8}{ns:>10.1f}{ratio:>7.3f}x{lo:>9.3f}..{hi:<7.3f}{verdict:>10}")
    lines.append(
        f"target: shm / plain on zlib frames (the live pipeline) <= {TARGET}x; the "
        "plain-payload rows (parse+apply only) show the cost without inflate."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=DEFAULT["n"], help="corpus frames")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=DEFAULT["rounds"])
    ap.add_argument("--calls", type=int, default=DEFAULT["calls"], help="reader calls per round")
    ap.add_argument("--levels", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--depth", type=int, default=200, help="writer engine depth")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--contended", action="store_true", help="also time snapshots while another process rewrites the book"
    )
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.rounds, args.calls = QUICK["n"], QUICK["rounds"], QUICK["calls"]
    import fastfeed

    if not fastfeed.COMPILED:
        print("fastfeed's compiled extensions are not built", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    res = run(args.n, args.seed, args.rounds, args.calls, args.levels, args.depth, args.contended)
    print(format_table(res))
    print(
        f"elapsed {time.monotonic() - t0:.1f} s, cpus {os.cpu_count()}, loadavg "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if args.json:
        w = res["writer"]
        dump = {
            "reader": {str(k): v for k, v in res["reader"].items()},
            "writer": {
                f"{k}|{p}": {"ns_per_msg": ns, "ratio": w["ratios"][(k, p)][0]}
                for (k, p), ns in w["per_msg"].items()
            },
            "args": res["args"],
        }
        Path(args.json).write_text(json.dumps(dump, indent=2))
    if args.check and res["writer"]["ratios"][("shm", "zlib")][0] > TARGET:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
