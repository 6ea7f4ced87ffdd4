"""Snapshots listed in price order take a fast path in the compiled book (filled directly
instead of level by level). Whatever the order, size, depth or crossing, the result must be
the one the rules give: the reference engine's."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

import fastfeed
from fastfeed.reference import ReferenceEngine

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

SEED = 424242


def _snapshot(rng: random.Random) -> bytes:
    mid = rng.choice([100.0, 0.00123, 65000.5])
    tick = mid * 1e-4

    def side(sign: int) -> list[list[str]]:
        n = rng.choice([0, 1, 2, 3, 7, 30, 60])
        px = [mid + sign * tick * (i + 1 + rng.choice([0, 0, 0, -3])) for i in range(n)]
        order = rng.choice(["asc", "desc", "shuffle", "dup"])
        if order == "asc":
            px.sort()
        elif order == "desc":
            px.sort(reverse=True)
        elif order == "shuffle":
            rng.shuffle(px)
        elif px:
            px.append(px[0])
        amt = [("0" if rng.random() < 0.05 else f"{rng.uniform(0.001, 5):.4f}") for _ in px]
        return [[f"{p:.10g}", a] for p, a in zip(px, amt)]

    asks, bids = side(+1), side(-1)
    if rng.random() < 0.2 and bids:  # a crossing bid
        bids.insert(rng.randrange(len(bids) + 1), [f"{mid + tick * rng.choice([1, 2, 5]):.10g}", "1"])
    params = [True, {"asks": asks, "bids": bids}, "X_USDT"]
    if rng.random() < 0.5:
        params[1] = {"bids": bids, "asks": asks}  # key order must not matter
    return json.dumps({"method": "depth.update", "params": params, "id": None}).encode()


@pytest.mark.parametrize("depth", [1, 2, 5, 30, 200])
def test_snapshots_match_the_reference(depth: int) -> None:
    rng = random.Random(SEED + depth)
    eng, ref = fastfeed.Engine(depth=depth), ReferenceEngine(depth=depth)
    for i in range(400):
        msg = _snapshot(rng)
        if rng.random() < 0.3:  # an increment in between
            inc = json.loads(msg)
            inc["params"][0] = False
            msg = json.dumps(inc).encode()
        eng.feed(msg)
        ref.feed(msg)
        b, r = eng.book("X_USDT"), ref.book("X_USDT")
        assert np.array_equal(b.bids, r.bids) and np.array_equal(b.asks, r.asks), (i, msg)
        assert eng.stats["crossed_levels_removed"] == ref.stats["crossed_levels_removed"]
        # the drift check of a snapshot against the live book it replaces (deep books here:
        # long merge walks, either side running out first, empty sides)
        assert eng.stats["drift"] == ref.stats["drift"], (i, msg)
        assert eng.drift_log[-1:] == ref.drift_log[-1:], (i, msg)
        assert (b.drift_checks, b.drifts, b.last_drift) == (r.drift_checks, r.drifts, r.last_drift)


def test_books_of_many_symbols_match_the_reference() -> None:
    """The engine finds a symbol's book by index in a table that grows with the symbol table:
    books created on first depth sight, by ``book(create=True)`` or after the symbol came with
    trades, across several growths, each get their own updates."""
    rng = random.Random(SEED)
    eng, ref = fastfeed.Engine(depth=5), ReferenceEngine(depth=5)
    names = [f"S{i}_USDT" for i in range(300)]
    for i, name in enumerate(names):
        if i % 3 == 1:
            for e in (eng, ref):
                e.book(name, create=True)
        elif i % 3 == 2:
            trade = [{"id": 1 + i, "time": 1700000000.5, "amount": "2", "price": "1.5", "type": "buy"}]
            msg = json.dumps({"method": "trades.update", "params": [False, trade, name], "id": None})
            eng.feed(msg.encode())
            ref.feed(msg.encode())
    for k in range(3000):
        name = rng.choice(names)
        level = [[f"{rng.randint(1, 40)}", f"{rng.choice([0, 1, 2.5])}"]]
        params = [rng.random() < 0.1, {"asks": [[f"{100 + rng.randint(1, 9)}", "1"]], "bids": level}, name]
        msg = json.dumps({"method": "depth.update", "params": params, "id": None}).encode()
        eng.feed(msg)
        ref.feed(msg)
        b, r = eng.book(name), ref.book(name)
        assert np.array_equal(b.bids, r.bids) and np.array_equal(b.asks, r.asks), (k, msg)
    for name in names:
        b, r = eng.book(name), ref.book(name)
        assert np.array_equal(b.bids, r.bids) and np.array_equal(b.asks, r.asks), name
        assert (b.version, b.live) == (r.version, r.live), name
