"""Shared helpers for the engine tests: payload encodings, message builders, state snapshots."""

from __future__ import annotations

import asyncio
import json
import math
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

import fastfeed

__all__ = [
    "BYTE_CODECS",
    "CODECS",
    "assert_snapshot_equal",
    "assert_state_equal",
    "compiled_engine_cls",
    "depth_text",
    "encode",
    "levels",
    "snapshot",
    "trade",
    "trades_text",
]

#: Every way a payload can be handed to ``feed``.
CODECS = (
    "bytes",
    "bytearray",
    "memoryview",
    "zlib-bytes",
    "zlib-bytearray",
    "zlib-memoryview",
    "str",
)
#: The bytes-like codecs (those that can carry invalid UTF-8).
BYTE_CODECS = tuple(c for c in CODECS if c != "str")


def compiled_engine_cls() -> type:
    """``fastfeed.Engine``, or a test FAILURE (never a skip) saying why it did not load."""
    if not fastfeed.COMPILED:
        pytest.fail(
            f"compiled extensions not loaded: {fastfeed._IMPORT_ERROR!r} "
            "(build them with `pip install -e .`)",
            pytrace=False,
        )
    return fastfeed.Engine


def encode(text: str | bytes, codec: str) -> bytes | bytearray | memoryview | str:
    """Turn JSON text into a payload of the given codec."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if codec == "str":
        return raw.decode("utf-8", "surrogatepass")
    if codec.startswith("zlib-"):
        raw = zlib.compress(raw)
        codec = codec[5:]
    if codec == "bytes":
        return raw
    if codec == "bytearray":
        return bytearray(raw)
    if codec == "memoryview":
        return memoryview(bytearray(raw))
    raise ValueError(codec)


def depth_text(
    clean: bool,
    symbol: str,
    asks: list[list[Any]] | None = None,
    bids: list[list[Any]] | None = None,
) -> str:
    """A compact ``depth.update`` push (a side given as None is left out)."""
    lv: dict[str, Any] = {}
    if asks is not None:
        lv["asks"] = asks
    if bids is not None:
        lv["bids"] = bids
    return json.dumps(
        {"method": "depth.update", "params": [clean, lv, symbol], "id": None},
        separators=(",", ":"),
    )


def trade(
    tid: int, price: str = "100.5", amount: str = "1", side: str = "buy", time: Any = 1.5
) -> dict[str, Any]:
    """One trade object as it appears in ``params[1]``."""
    return {"id": tid, "time": time, "price": price, "amount": amount, "type": side}


def trades_text(clean: bool, symbol: str, trades: list[dict[str, Any]]) -> str:
    """A compact ``trades.update`` push (trades newest first, as on the wire)."""
    return json.dumps(
        {"method": "trades.update", "params": [clean, trades, symbol], "id": None},
        separators=(",", ":"),
    )


def levels(rows: list[tuple[float, float]]) -> np.ndarray:
    """Expected book side as a float64 (n, 2) array."""
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def snapshot(engine: Any) -> dict[str, Any]:
    """A deep copy of everything observable in an engine (books, ring, counters, symbols)."""
    books = {}
    for name in engine.symbols:
        b = engine.book(name)
        books[name] = (
            np.array(b.bids, dtype=np.float64, copy=True),
            np.array(b.asks, dtype=np.float64, copy=True),
            int(b.version),
            int(b.recv_ns),
            float(b.best_bid),
            float(b.best_ask),
            (bool(b.live), int(b.stale_since), int(b.drift_checks), int(b.drifts), int(b.last_drift)),
        )
    ring = engine.trades
    hist = engine.ticker_history
    return {
        "ticker_symbols": list(engine.ticker_symbols),
        "tickers": np.array(engine.tickers, copy=True),
        "ticker_count": int(hist.count),
        "ticker_history": np.array(hist.latest(hist.capacity), copy=True),
        "symbols": list(engine.symbols),
        "books": books,
        "ring_count": int(ring.count),
        "ring": np.array(ring.latest(ring.capacity), copy=True),
        "stats": engine.stats,
        "drift_log": [tuple(r) for r in engine.drift_log],
    }


def _same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_snapshot_equal(a: dict[str, Any], b: dict[str, Any], where: str = "") -> None:
    """Assert two snapshots are identical (exact float equality)."""
    assert a["symbols"] == b["symbols"], where
    assert a["books"].keys() == b["books"].keys(), where
    for name in a["books"]:
        ab, bb = a["books"][name], b["books"][name]
        for i, field in enumerate(("bids", "asks")):
            assert ab[i].shape == bb[i].shape, f"{where} {name} {field}: {ab[i]!r} != {bb[i]!r}"
            assert np.array_equal(ab[i], bb[i]), f"{where} {name} {field}: {ab[i]!r} != {bb[i]!r}"
        assert ab[2:4] == bb[2:4], f"{where} {name} version/recv_ns {ab[2:4]} != {bb[2:4]}"
        assert _same_float(ab[4], bb[4]) and _same_float(ab[5], bb[5]), f"{where} {name} best"
        assert ab[6] == bb[6], f"{where} {name} live/stale_since/drift {ab[6]} != {bb[6]}"
    assert a["ring_count"] == b["ring_count"], where
    ra, rb = a["ring"], b["ring"]
    assert ra.shape == rb.shape, f"{where} ring shape {ra.shape} != {rb.shape}"
    for field in ra.dtype.names:
        assert np.array_equal(ra[field], rb[field]), (
            f"{where} ring field {field}: {ra[field]!r} != {rb[field]!r}"
        )
    assert a["ticker_symbols"] == b["ticker_symbols"], where
    assert a["ticker_count"] == b["ticker_count"], where
    for key in ("tickers", "ticker_history"):
        assert_ticker_rows_equal(a[key], b[key], f"{where} {key}")
    assert a["stats"] == b["stats"], f"{where} stats {a['stats']} != {b['stats']}"
    assert a["drift_log"] == b["drift_log"], f"{where} drift_log {a['drift_log']} != {b['drift_log']}"


def assert_ticker_rows_equal(a: np.ndarray, b: np.ndarray, where: str = "") -> None:
    """Two TICKER_DTYPE arrays hold the same rows, floats compared bit for bit (NaN and
    -0.0 included)."""
    assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.shape} != {b.shape}"
    for field in a.dtype.names:
        x, y = a[field], b[field]
        if x.dtype.kind == "f":
            x, y = x.view(np.uint64), y.view(np.uint64)
        assert np.array_equal(x, y), f"{where} field {field}: {a[field]!r} != {b[field]!r}"


def assert_state_equal(e1: Any, e2: Any, where: str = "") -> None:
    """Assert two engines expose identical state."""
    assert_snapshot_equal(snapshot(e1), snapshot(e2), where)


# -- the live samples (docs/protocol.md, "Sample frames") -------------------------------

#: A1, normalized to strict JSON (only the quoting changed).
A1 = (
    '{"method":"trades.update","params":[true,[{"id":3282939928,"time":1597419159,'
    '"amount":"0.1","price":"11687.04","type":"sell"}],"ETH_USDT"],"id":null}'
)
#: A2, verbatim: snapshot with asks in descending order.
A2 = """   {
      "method": "depth.update",
      "params": [
        true,
        {
          "asks": [
            ["11702.01", "0.001"],
            ["11700.24", "0.8716"],
            ["11699.57", "0.1029"]
          ],
          "bids": [
            ["11697.89", "0.2184"],
            ["11697.13", "7.0356"],
            ["11696.79", "0.2149"]
          ]
        },
        "BTC_USDT"
      ],
      "id": null
    }"""
#: A3, verbatim: increment, upserts then deletions of absent levels.
A3 = """   {
      "method": "depth.update",
      "params": [
        false,
        {
          "asks": [
            ["11702.81", "0.001"],
            ["11699.92", "0.008"],
            ["11788.73", "0"],
            ["11787.24", "0"]
          ],
          "bids": [
            ["11642.72", "13.1172"],
            ["11627.05", "2.1258"],
            ["11621.42", "0"],
            ["11620.87", "0"]
          ]
        },
        "BTC_USDT"
      ],
      "id": null
    }"""
#: A4, verbatim: zero-padded to 8 decimals, asks descending.
A4 = """{
 "method": "depth.update",
 "params": [
   true,
   {
     "asks": [
       [
         "10249.68000000",
         "0.00200000"
       ],
       [
         "10249.67000000",
         "0.00110000"
       ]
     ],
     "bids": [
       [
         "10249.61000000",
         "0.86570000"
       ],
       [
         "10248.44000000",
         "1.00190000"
       ]
     ]
   },
   "BTC_USDT"
 ],
 "id": null
}"""


# -- an independent websockets client's pieces (exchange compat and oracle tests) -------------

#: websockets' handshake and close timeouts (10 s by default) as hang guards: under load the
#: close handshake waits for the exchange to take in the CLOSE behind its pushes, and an
#: abort there would read as an abnormal closure (1006), not as the slow machine it is.
WS_GUARDS: dict[str, Any] = {"open_timeout": 60, "close_timeout": 60}


#: The hang guard of the async tests: generous, so that a slow or busy machine never turns
#: into a failure; every verdict is about counts and state, never about how fast.
HANG_GUARD = 120.0


def run_guarded(
    fn: Callable[[], Awaitable[Any]], timeout: float = HANG_GUARD, *, no_tasks_left: bool = False
) -> Any:
    """Run ``fn()``; ``timeout`` is a hang guard only: tests stop on counts, never on time.
    With ``no_tasks_left``, also check that the body left no asyncio task behind."""

    async def main() -> Any:
        result = await asyncio.wait_for(fn(), timeout)
        if no_tasks_left:
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert not others, f"tasks left behind: {others}"
        return result

    return asyncio.run(main())


async def until(pred: Callable[[], bool], what: str = "", timeout: float = HANG_GUARD) -> None:
    """Wait until ``pred()`` holds; ``timeout`` is a hang guard (it firing means a hang)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"hung: still waiting for {what or pred} after {timeout:g} s")
        await asyncio.sleep(0.01)


def one_error_line(err: str, command: str) -> str:
    """stderr holds exactly one line, ``fastfeed COMMAND: error: ...`` (no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fastfeed {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def decode_frame(frame: bytes | str) -> Any:
    """A server frame decoded without fastfeed's code, as docs/protocol.md says: TEXT is
    JSON; BINARY is one zlib stream, or JSON if it starts with ``{``."""
    if isinstance(frame, str):
        return json.loads(frame)
    if frame[:1] == b"{":
        return json.loads(frame)
    assert frame[0] == 0x78  # zlib header, as captured live
    return json.loads(zlib.decompress(frame))
