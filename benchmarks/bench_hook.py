"""The cost of fastfeed's per-frame hook (``Feed.on_frame`` / ``Feed.changes()``), side by side.

The seeded corpus (``fastfeed.bench.corpus``: depth increments and snapshots, trades,
tickers over 10 symbols, zlib frames as on the wire) is fed offline, frame by frame, the
way the live listener does it (``Engine.feed``, then the listener's ``on_frame(msg,
recv_ns)``, which is what ``Feed._update_hooks`` installs), to these contestants,
interleaved in every round (each round starting one contestant further), each on a fresh
feed:

1. ``fastfeed alone``: the engine with its event log, no consumer (no hook call);
2. ``floor``: the listener calling a Python no-op instead of the feed's hook (what any
   per-frame Python call costs; not a real consumer);
3. ``+ no-op on_frame``: a ``FrameChange`` per frame handed to a no-op callback;
4. ``+ on_frame reading rows``: the same, the callback reading ``change.rows()``;
5. ``+ changes() stream``: one bounded ``feed.changes()`` stream (drained between rounds
   only: past ``queue_size`` the oldest change is dropped and counted, as for a slow reader).

The table gives µs/frame (the best of the rounds: the least disturbed by other load on the
machine) and each as a ratio of fastfeed alone, and
the hook's own cost (a contestant minus fastfeed alone).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_hook.py          # --n 50000 --rounds 7
    python benchmarks/bench_hook.py --quick
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no spinning BLAS threads on 2 cores

import argparse
import gc
import importlib.util
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if any((_ROOT / "fastfeed").glob("_engine*.so")) or importlib.util.find_spec("fastfeed") is None:
    sys.path.insert(0, str(_ROOT))

from fastfeed.bench.corpus import make_corpus  # noqa: E402
from fastfeed.client import Feed, FeedOptions  # noqa: E402

EVENT_LOG = 1 << 16
URL = "ws://127.0.0.1:9/ws/v1/"  # never connected: frames are fed offline

CONTESTANTS = (
    "fastfeed alone (engine + event log)",
    "floor: a bare Python on_frame(msg, ns)",
    "+ no-op on_frame",
    "+ on_frame reading change.rows()",
    "+ one changes() stream",
)


class _Listener:
    """What ``Feed._update_hooks`` configures on the live ``FeedListener``."""

    on_raw: Any = None
    on_frame: Any = None


def _hooked(feed: Feed) -> Callable[[Any, int], None]:
    """Enable the feed's per-frame hook as a live connection does; return what the
    listener would call per frame."""
    lst = _Listener()
    feed._update_hooks(lst)  # type: ignore[arg-type]
    assert lst.on_frame is not None
    fn: Callable[[Any, int], None] = lst.on_frame
    return fn


def _make(i: int) -> tuple[Callable[[Sequence[bytes]], int], Feed]:
    opts = FeedOptions(event_log=EVENT_LOG)
    if i == 0:
        feed = Feed(URL, options=opts)
        done = None
    elif i == 1:
        feed = Feed(URL, options=opts)
        done = lambda _m, _ns: None
    elif i == 2:
        feed = Feed(URL, options=opts, on_frame=lambda _c: None)
        done = _hooked(feed)
    elif i == 3:
        feed = Feed(URL, options=opts, on_frame=lambda c: c.rows())
        done = _hooked(feed)
    else:
        feed = Feed(URL, options=opts)
        feed.changes()
        done = _hooked(feed)
    feed_fn = feed.engine.feed

    def run(payloads: Sequence[bytes]) -> int:
        ns = 1_700_000_000_000_000_000
        t0 = time.perf_counter_ns()
        if done is not None:
            for p in payloads:
                ns += 1000
                done(feed_fn(p, ns), ns)
        else:
            for p in payloads:
                ns += 1000
                feed_fn(p, ns)
        return time.perf_counter_ns() - t0

    return run, feed


def bench(n: int, rounds: int, seed: int) -> dict[str, Any]:
    payloads = [f.zlib for f in make_corpus(n, seed=seed)]
    times: list[list[int]] = [[] for _ in CONTESTANTS]
    k = len(CONTESTANTS)
    for r in range(rounds):
        for i in [(r + j) % k for j in range(k)]:  # each round starts one further: no order bias
            run, feed = _make(i)
            gc.collect()
            gc.disable()
            try:
                times[i].append(run(payloads))
            finally:
                gc.enable()
            feed.engine.close()
    base = min(times[0])
    out: dict[str, Any] = {"n": len(payloads), "rounds": rounds, "seed": seed, "results": []}
    for name, ts in zip(CONTESTANTS, times):
        med = min(ts)
        out["results"].append(
            {
                "contestant": name,
                "us_per_frame": med / len(payloads) / 1e3,
                "hook_us": (med - base) / len(payloads) / 1e3,
                "x": med / base,
            }
        )
    return out


def format_table(res: dict[str, Any]) -> str:
    lines = [
        (
            f"per-frame hook: {res['n']} corpus frames (seed {res['seed']}), best of "
            f"{res['rounds']} rounds, one process, interleaved"
        ),
        "",
        f"| {'contestant':<38} | {'µs/frame':>8} | {'hook µs':>7} | {'× fastfeed alone':>16} |",
        f"| {'-' * 38} | {'-' * 7}:| {'-' * 6}:| {'-' * 15}:|",
    ]
    for r in res["results"]:
        lines.append(
            f"| {r['contestant']:<38} | {r['us_per_frame']:>8.2f} | {r['hook_us']:>7.2f} | {r['x']:>16.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="corpus frames (default 50000)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds, the best reported (default 7)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="--n 10000 --rounds 3")
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.rounds = 10_000, 3
    print(format_table(bench(a.n, a.rounds, a.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
