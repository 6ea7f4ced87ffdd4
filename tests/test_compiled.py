"""The compiled extensions are present, and the compiled hot path (depth, trade and ticker
pushes) allocates no Python objects.

These tests FAIL (never skip) when the extensions did not build or load.
"""

from __future__ import annotations

import gc
import importlib
import json
import random
import sys
import zlib
from collections.abc import Callable
from typing import Any

import pytest

import fastfeed

from helpers import compiled_engine_cls

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

MODULES = (
    "_inflate",
    "_parse",
    "_events",
    "_book",
    "_ring",
    "_ticker",
    "_shm",
    "_engine",
    "_hook",
    "_listener",
)


@pytest.mark.parametrize("name", MODULES)
def test_extension_imports(name: str) -> None:
    mod = importlib.import_module(f"fastfeed.{name}")
    path = getattr(mod, "__file__", "") or ""
    assert path.endswith((".so", ".pyd")), f"fastfeed.{name} is not an extension module: {path!r}"


def test_package_reports_compiled() -> None:
    assert fastfeed.COMPILED, f"fastfeed.COMPILED is false: {fastfeed._IMPORT_ERROR!r}"
    assert fastfeed.Engine.__module__ == "fastfeed._engine"


# --- zero allocations on the hot path --------------------------------------------------------

SEED = 20240611
SYMBOLS = [f"SYM{i}_USDT" for i in range(10)]


def _num(rng: random.Random, lo: float, hi: float, places: int) -> str:
    return f"{rng.uniform(lo, hi):.{places}f}"


def _depth(rng: random.Random, clean: bool) -> str:
    def side(lo: float, hi: float, n: int) -> list[list[str]]:
        return [
            [_num(rng, lo, hi, 2), "0" if rng.random() < 0.3 and not clean else _num(rng, 0.001, 5, 4)]
            for _ in range(n)
        ]

    n = 30 if clean else rng.randint(0, 4)
    m = 30 if clean else rng.randint(0, 4)
    lv = {"asks": side(100.0, 110.0, n), "bids": side(90.0, 100.0, m)}
    return json.dumps({"method": "depth.update", "params": [clean, lv, rng.choice(SYMBOLS)], "id": None})


def _trades(rng: random.Random, next_id: list[int]) -> str:
    trades = []
    for _ in range(rng.randint(1, 3)):
        next_id[0] += 1
        trades.append(
            {
                "id": next_id[0],
                "time": round(1.7e9 + next_id[0] / 1000, 6),
                "price": _num(rng, 90, 110, 2),
                "amount": _num(rng, 0.001, 2, 4),
                "type": rng.choice(("buy", "sell")),
            }
        )
    trades.reverse()  # newest first
    return json.dumps({"method": "trades.update", "params": [False, trades, rng.choice(SYMBOLS)], "id": None})


def _ticker(rng: random.Random) -> str:
    """A ticker push in the documented (flat) or the live (nested) shape; values as the
    server writes them, now and then as bare numbers, zero-padded or with many digits."""

    def num(lo: float, hi: float) -> Any:
        r = rng.random()
        if r < 0.1:
            return round(rng.uniform(lo, hi), 4)
        return _num(rng, lo, hi, 8 if r < 0.3 else (20 if r < 0.35 else 2))

    rec = {
        "symbol": rng.choice(SYMBOLS),
        "open_24h": num(90, 110),
        "low_24h": num(80, 90),
        "high_24h": num(110, 120),
        "base_volume_24h": num(1, 1e6),
        "quote_volume_24h": num(1, 1e8),
        "last": num(90, 110),
        "last_qty": num(0.001, 5),
        "best_bid": num(90, 100),
        "best_bid_size": num(0.001, 5),
        "best_ask": num(100, 110),
        "best_ask_size": num(0.001, 5),
        "change_24h": "0.46",
        "timestamp": 1_700_000_000_000 + rng.randrange(10**9),
    }
    recs = [rec] if rng.random() < 0.7 else [dict(rec, symbol=s) for s in rng.sample(SYMBOLS, 3)]
    method = rng.choice(("ticker.update", "all_ticker.update"))
    return json.dumps({"method": method, "params": recs if rng.random() < 0.5 else [recs], "id": None})


def _frames(n: int, kind: str, plain: bool, rng: random.Random, next_id: list[int]) -> list[bytes]:
    out = []
    for _ in range(n):
        k = kind if kind != "mixed" else rng.choice(("depth", "depth", "trades", "ticker"))
        if k == "depth":
            text = _depth(rng, clean=rng.random() < 0.03)
        elif k == "ticker":
            text = _ticker(rng)
        else:
            text = _trades(rng, next_id)
        raw = text.encode()
        out.append(raw if plain else zlib.compress(raw))
    return out


def _run(feed: Callable[[Any], Any], frames: list[bytes]) -> None:
    for p in frames:
        feed(p)


@pytest.mark.parametrize("encoding", ["zlib", "plain"])
@pytest.mark.parametrize("kind", ["depth", "trades", "ticker", "mixed"])
def test_hot_path_zero_allocations(kind: str, encoding: str) -> None:
    """~10k depth/trade/ticker frames after a warm-up leave ``sys.getallocatedblocks()``
    unchanged (a ticker symbol's name is created once, in the warm-up)."""
    cls = compiled_engine_cls()
    rng = random.Random(SEED)
    next_id = [3_000_000_000]
    eng = cls(depth=50, trade_capacity=4096)
    plain = encoding == "plain"
    # warm-up: every symbol's book exists, every code path ran once
    warm = [zlib.compress(_depth(rng, True).replace(SYMBOLS[0], s).encode()) for s in SYMBOLS]
    warm += _frames(400, "mixed", plain, rng, next_id)
    warm += [_ticker(rng).encode() for _ in range(200)]
    measured = _frames(10_000, kind, plain, rng, next_id)
    feed = eng.feed
    _run(feed, warm)
    stats_before = eng.stats
    gc.collect()
    gc.disable()
    try:
        _run(feed, [])
        b0 = sys.getallocatedblocks()
        _run(feed, [])
        b1 = sys.getallocatedblocks()
        before = sys.getallocatedblocks()
        _run(feed, measured)
        after = sys.getallocatedblocks()
    finally:
        gc.enable()
    baseline = b1 - b0  # the int returned by the first getallocatedblocks() call, etc.
    stats = eng.stats
    n_msgs = sum(stats["messages"].values()) - sum(stats_before["messages"].values())
    assert n_msgs == len(measured), "every measured frame must be an accepted depth/trade/ticker push"
    assert stats["rejects"] == stats_before["rejects"]
    assert stats["tickers"]["rejects"] == stats_before["tickers"]["rejects"]
    assert eng._ticker_slow_frames == 0
    delta = after - before - baseline
    assert delta == 0, f"{delta} Python blocks allocated over {len(measured)} {kind} {encoding} frames"


def test_build_tracks_fastfeed_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """setup.py rebuilds an extension when one of fastfeed's own C headers changes
    (_fastnum.h, _ffinflate.h): setuptools sees them as dependencies and the compile
    cache's key covers their contents. (Regression: the .c only #includes them, so an
    edited header left the old extension in place, from setuptools' time check or from
    the cache.)"""
    import os
    import runpy

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    setup_py = os.path.join(root, "setup.py")
    if not os.path.exists(setup_py):
        pytest.skip("not a source checkout")
    headers = sorted(f for f in os.listdir(os.path.join(root, "fastfeed")) if f.endswith(".h"))
    assert "_ffinflate.h" in headers and "_fastnum.h" in headers
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["setup.py", "--name"])  # parse only, build nothing
    ns = runpy.run_path(setup_py, run_name="fastfeed_setup")
    for ext in ns["extensions"]:
        assert sorted(os.path.basename(d) for d in ext.depends) == headers, ext.name

    ext = next(e for e in ns["extensions"] if e.name == "fastfeed._inflate")
    ext.sources = ["fastfeed/_inflate.pyx"]  # any existing file: the key hashes its bytes
    key_of = ns["BuildExt"]._c_key
    fake = type("B", (), {"_numpy_version": "x"})()
    before = key_of(fake, ext)
    g = key_of.__globals__
    real_read = g["_read"]

    def edited(path: str) -> bytes:
        data = real_read(path)
        return data + b"/* edited */" if path.endswith("_ffinflate.h") else data

    monkeypatch.setitem(g, "_read", edited)
    assert key_of(fake, ext) != before
