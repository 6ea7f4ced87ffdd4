"""A snapshot replacing a live book takes, in a plain engine (no event log, no shared
memory), a one-pass path in the compiled book (``Book.drift_snapshot``: the new rows are
filled into spare memory, compared with the live rows in place, then copied over them)
when both sides are in price order and nothing crosses; any other snapshot takes the
general path (copy the book, apply, compare). Either way the books, the crossing count and
the drift counters and log must be the rules' (the reference engine's), and the same as the
general path's (an engine with an event log always takes it)."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

import fastfeed
from fastfeed.reference import ReferenceEngine
from fastfeed.shm import attach

from helpers import assert_state_equal

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native


def _side(rng: random.Random, sign: int, tick: float, mid: float) -> list[list[str]]:
    n = rng.choice([0, 1, 2, 3, 8, 30, 31, 60, 250])
    # prices on a grid near the top: consecutive snapshots share many of them
    steps = rng.sample(range(1, 2 * n + 4), n)
    px = [mid + sign * tick * s for s in steps]
    order = rng.choice(["best_first", "best_last", "best_first", "best_last", "shuffle", "dup"])
    if order == "best_first":
        px.sort(reverse=sign < 0)
    elif order == "best_last":
        px.sort(reverse=sign > 0)
    elif order == "shuffle":
        rng.shuffle(px)
    elif px:
        px.insert(rng.randrange(len(px)), px[rng.randrange(len(px))])
    amounts = [rng.choice(["1", "2", "0.5"]) for _ in px]
    if px and rng.random() < 0.1:
        amounts[rng.randrange(len(px))] = "0"  # a deletion in a snapshot: general path
    return [[f"{p:.8g}", a] for p, a in zip(px, amounts)]


def _message(rng: random.Random, clean: bool) -> bytes:
    mid, tick = 100.0, 0.01
    asks, bids = _side(rng, +1, tick, mid), _side(rng, -1, tick, mid)
    if rng.random() < 0.15 and bids:  # a crossing bid at or above some asks
        bids.insert(rng.randrange(len(bids) + 1), [f"{mid + tick * rng.choice([1, 2, 7]):.8g}", "1"])
    sides = {"asks": asks, "bids": bids}
    if rng.random() < 0.5:
        sides = {"bids": bids, "asks": asks}
    return json.dumps({"method": "depth.update", "params": [clean, sides, "X_USDT"], "id": None}).encode()


def _book_state(eng: Any) -> tuple[Any, ...]:
    b = eng.book("X_USDT")
    return (
        b.bids.tolist(),
        b.asks.tolist(),
        b.version,
        b.recv_ns,
        b.live,
        (b.drift_checks, b.drifts, b.last_drift),
        eng.stats["crossed_levels_removed"],
        eng.stats["drift"],
        [tuple(r) for r in eng.drift_log],
    )


def _run(depth: int, seed: int, *others: Any) -> Any:
    rng = random.Random(seed)
    plain = fastfeed.Engine(depth=depth)
    general = fastfeed.Engine(depth=depth, event_log=1 << 16)  # the general path only
    ref = ReferenceEngine(depth=depth)
    for i in range(300):
        msg = _message(rng, clean=rng.random() < 0.8)
        for eng in (plain, general, ref, *others):
            assert eng.feed(msg, i) is None
        for eng in (general, *others):
            assert _book_state(plain) == _book_state(eng), (i, msg)
        assert_state_equal(plain, ref, f"step {i}")
    return plain


@pytest.mark.parametrize("depth", [1, 2, 5, 30, 200])
def test_snapshots_on_a_live_book_match_the_reference_and_the_general_path(depth: int) -> None:
    plain = _run(depth, 1313 + depth)
    drift = plain.stats["drift"]
    assert drift["checks"] > 150 and 0 < drift["drifted"] < drift["checks"] + 1


@pytest.mark.parametrize("depth", [5, 200])
def test_the_one_pass_path_in_shared_memory(depth: int, shm_name: str) -> None:
    """A shared-memory book takes the same path inside its seqlock: same books and drift,
    and what a reader of the segment sees is the book."""
    with fastfeed.Engine(depth=depth, shm_name=shm_name) as shared:
        _run(depth, 77 + depth, shared)
        with attach(shm_name) as r:
            seen = r.book("X_USDT").read()
            b = shared.book("X_USDT")
            assert np.array_equal(seen.bids, b.bids) and np.array_equal(seen.asks, b.asks)


def test_a_book_that_agrees_is_no_drift() -> None:
    """Rows the two books share from the top are skipped at a compare each: a snapshot equal
    to the book, or equal down to some row, counts what the walk counts."""
    eng, ref = fastfeed.Engine(depth=50), ReferenceEngine(depth=50)
    asks = [[f"{100 + i / 100:.2f}", "1"] for i in range(1, 41)]
    bids = [[f"{100 - i / 100:.2f}", "2"] for i in range(1, 41)]

    def snap(a: list[list[str]], b: list[list[str]]) -> None:
        msg = json.dumps(
            {"method": "depth.update", "params": [True, {"asks": a, "bids": b}, "S"], "id": None}
        )
        for e in (eng, ref):
            e.feed(msg)

    snap(asks, bids)
    snap(asks[::-1], bids)  # the same book, asks best last
    assert (eng.book("S").drifts, eng.book("S").drift_checks) == (0, 1)
    snap(asks[:20] + [[asks[20][0], "3"]] + asks[21:], bids[:35])  # one amount differs at row 20
    snap(asks[:10] + asks[11:], bids[:35] + [["90", "1"]])  # a row missing at 10, one beyond ours
    assert [tuple(r)[3:] for r in eng.drift_log] == [(0, 0, 1), (0, 1, 1)]
    assert_state_equal(eng, ref)


def test_the_one_pass_path_counts_missing_extra_and_changed() -> None:
    """Best-last asks longer than the depth (the best ``depth`` of them kept, reversed) and
    best-first bids, against a live book: the window, the counts and the rows."""
    eng = fastfeed.Engine(depth=4, drift_log_size=4)
    ref = ReferenceEngine(depth=4, drift_log_size=4)

    def snap(asks: list[list[str]], bids: list[list[str]], t: int) -> None:
        msg = json.dumps(
            {"method": "depth.update", "params": [True, {"asks": asks, "bids": bids}, "S"], "id": None}
        )
        for e in (eng, ref):
            e.feed(msg, t)

    snap(
        [["105", "1"], ["104", "1"], ["103", "1"], ["102", "1"], ["101", "1"]], [["99", "1"], ["98", "1"]], 1
    )
    b = eng.book("S")
    assert b.asks.tolist() == [[101, 1], [102, 1], [103, 1], [104, 1]]
    # asks: 101 gone (extra in ours), 101.5 new (missing), 102 changed; 105 lies beyond the
    # window (our last ask is 104); bids: 98.5 new, 97 beyond ours
    snap(
        [["105", "1"], ["104", "1"], ["103", "1"], ["102", "3"], ["101.5", "1"]],
        [["99", "1"], ["98.5", "2"], ["98", "1"], ["97", "1"]],
        2,
    )
    assert b.asks.tolist() == [[101.5, 1], [102, 3], [103, 1], [104, 1]]
    assert b.bids.tolist() == [[99, 1], [98.5, 2], [98, 1], [97, 1]]
    assert [tuple(r)[3:] for r in eng.drift_log] == [(2, 1, 1)]
    assert (b.drift_checks, b.drifts, b.last_drift) == (1, 1, 4)
    assert_state_equal(eng, ref)
    # the same snapshot again: no drift
    snap(
        [["105", "1"], ["104", "1"], ["103", "1"], ["102", "3"], ["101.5", "1"]],
        [["99", "1"], ["98.5", "2"], ["98", "1"], ["97", "1"]],
        3,
    )
    assert (b.drift_checks, b.drifts, b.last_drift) == (2, 1, 0)
    assert np.array_equal(b.bids, ref.book("S").bids)
    assert_state_equal(eng, ref)
