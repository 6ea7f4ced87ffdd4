"""The bundled exchange as an oracle: every mode serves a stream whose books are never
crossed between messages, whose ``clean=true`` snapshots equal the book a client holds just
before them, whose trade ids only increase (also across a cycle wrap and an exchange
restart on the same seed), and whose tickers move and carry consistent 24 h fields.

Nothing of fastfeed or of the exchange is used on the receiving side: frames come from a
plain ``websockets`` client, are decoded with ``zlib.decompress`` + ``json.loads`` and
applied to a *naive* book written here (a dict per side: ``clean`` replaces, amount ``0``
deletes, anything else sets the level; no sorting, no trimming, no crossed-level removal,
so an inconsistent stream shows up instead of being repaired).

What "equal" means, exactly: the exchange keeps ``book_levels`` levels per side and sends
every level that leaves its book, also one pushed out of the window, as an explicit
``"0"`` deletion. So the naive book never holds more than ``book_levels`` levels a side,
and a snapshot (which lists the exchange's whole book) must equal the naive book in full,
level for level and amount for amount, not only within a window.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fastfeed.exchange import Exchange, ExchangeConfig

from helpers import WS_GUARDS, decode_frame, run_guarded

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402

SYMS = ["BTC_USDT", "ETH_USDT", "XRP_USDT", "DOGE_USDT"]
LEVELS = 12


class NaiveBook:
    """Dict book by price string value (``Decimal``): what a careless client would keep."""

    def __init__(self) -> None:
        self.sides: dict[str, dict[Decimal, Decimal]] = {"asks": {}, "bids": {}}

    @staticmethod
    def side_of(levels: list[list[str]]) -> dict[Decimal, Decimal]:
        out: dict[Decimal, Decimal] = {}
        for px, amt in levels:
            assert isinstance(px, str) and isinstance(amt, str)
            out[Decimal(px)] = Decimal(amt)
        return out

    def apply(self, clean: bool, levels: dict[str, list[list[str]]]) -> int:
        """Apply one push; return how many of its levels, applied one by one in message
        order (asks, then bids, as engines do), landed on a price crossed by the other
        side at that moment."""
        if clean:
            self.sides = {"asks": {}, "bids": {}}
        crossing = 0
        for name, other, sign in (("asks", "bids", 1), ("bids", "asks", -1)):
            side, opp = self.sides[name], self.sides[other]
            for px, amt in levels.get(name, []):
                price = Decimal(px)
                if Decimal(amt) == 0:
                    side.pop(price, None)
                else:
                    side[price] = Decimal(amt)
                    crossing += any(sign * (price - p) <= 0 for p in opp)
        return crossing

    def crossed(self) -> bool:
        a, b = self.sides["asks"], self.sides["bids"]
        return bool(a and b and max(b) >= min(a))


class StreamChecker:
    """Feeds decoded pushes in order and records every violation (with its message index)."""

    def __init__(self, levels: int) -> None:
        self.levels = levels
        self.books: dict[str, NaiveBook] = {}
        self.errors: list[str] = []
        self.n = 0
        self.depth = 0
        self.snapshots_checked = 0
        self.crossing_levels = 0
        self.trade_ids: dict[str, list[int]] = {}
        self.tickers: dict[str, list[tuple[str, ...]]] = {}

    def err(self, what: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(f"message {self.n}: {what}")

    def feed(self, msg: dict[str, Any]) -> None:
        self.n += 1
        method = msg.get("method")
        if method == "depth.update":
            self._depth(*msg["params"])
        elif method == "trades.update":
            self._trades(*msg["params"])
        elif method in ("ticker.update", "all_ticker.update"):
            params = msg["params"]
            if len(params) == 1 and isinstance(params[0], list):
                params = params[0]
            for t in params:
                self._ticker(t)

    def _depth(self, clean: bool, levels: dict[str, list[list[str]]], sym: str) -> None:
        self.depth += 1
        book = self.books.get(sym)
        if clean and book is not None:
            self.snapshots_checked += 1
            for name in ("asks", "bids"):
                snap = NaiveBook.side_of(levels[name])
                if snap != book.sides[name]:
                    missing = set(book.sides[name]) - set(snap)
                    extra = set(snap) - set(book.sides[name])
                    self.err(
                        f"{sym} snapshot {name} differs from the book before it "
                        f"(missing {len(missing)}, extra {len(extra)})"
                    )
        if book is None:
            if not clean:
                self.err(f"{sym}: first depth push is not a snapshot")
            book = self.books[sym] = NaiveBook()
        self.crossing_levels += book.apply(clean, levels)
        if book.crossed():
            self.err(
                f"{sym} crossed: best bid {max(book.sides['bids'])} >= best ask {min(book.sides['asks'])}"
            )
        for name in ("asks", "bids"):
            if not 0 < len(book.sides[name]) <= self.levels:
                self.err(f"{sym} {name}: {len(book.sides[name])} levels")

    def _trades(self, clean: bool, trades: list[dict[str, Any]], sym: str) -> None:
        if clean:  # the replay of recent trades after a subscribe
            return
        ids = self.trade_ids.setdefault(sym, [])
        for t in reversed(trades):  # pushes carry the newest trade first
            if not isinstance(t["id"], int):
                self.err(f"{sym}: trade id {t['id']!r} is not an integer")
            elif ids and t["id"] <= ids[-1]:
                self.err(f"{sym}: trade id {t['id']} after {ids[-1]}")
            ids.append(t["id"])

    def _ticker(self, t: dict[str, Any]) -> None:
        sym = t["symbol"]
        for k in ("open_24h", "high_24h", "low_24h", "last", "best_bid", "best_ask", "base_volume_24h"):
            if not isinstance(t.get(k), str):
                self.err(f"{sym} ticker: {k} missing or not a string")
                return
        hi, lo, last = Decimal(t["high_24h"]), Decimal(t["low_24h"]), Decimal(t["last"])
        if not hi >= last >= lo > 0:
            self.err(f"{sym} ticker: high {hi} last {last} low {lo}")
        if not hi >= Decimal(t["open_24h"]) >= lo:
            self.err(f"{sym} ticker: open {t['open_24h']} outside [{lo}, {hi}]")
        if not Decimal(t["best_bid"]) < Decimal(t["best_ask"]):
            self.err(f"{sym} ticker: best bid {t['best_bid']} >= best ask {t['best_ask']}")
        self.tickers.setdefault(sym, []).append(
            (t["last"], t["best_bid"], t["best_ask"], t["base_volume_24h"], str(t["timestamp"]))
        )

    def assert_ok(self) -> None:
        assert not self.errors, "\n".join(self.errors)
        # not even inside a push: no engine has to remove a crossed level
        assert self.crossing_levels == 0, f"{self.crossing_levels} levels crossed the other side mid-push"

    def assert_tickers_move(self, symbols: list[str]) -> None:
        for s in symbols:
            seen = self.tickers.get(s, [])
            assert len(seen) >= 3, f"{s}: only {len(seen)} tickers"
            for field, name in enumerate(("last", "best_bid", "best_ask", "base_volume_24h", "timestamp")):
                assert len({v[field] for v in seen}) > 1, f"{s}: ticker {name} never changed"


async def collect(
    url: str,
    until: Callable[[StreamChecker], bool],
    checker: StreamChecker,
    *,
    all_ticker: bool = True,
    raw: list[bytes | str] | None = None,
) -> StreamChecker:
    """Subscribe to everything with a plain ``websockets`` client and feed the checker
    until ``until(checker)`` holds."""
    async with connect(
        url, compression=None, ping_interval=None, max_size=None, **WS_GUARDS, max_queue=None
    ) as ws:
        rid = 0
        for method in ("depth.subscribe", "trades.subscribe", "ticker.subscribe") + (
            ("all_ticker.subscribe",) if all_ticker else ()
        ):
            rid += 1
            await ws.send(json.dumps({"id": rid, "method": method, "params": SYMS}))
        while not until(checker):
            frame = await ws.recv()
            if raw is not None:
                raw.append(frame)
            msg = decode_frame(frame)
            if msg.get("method") is None:
                assert msg["error"] is None, msg
                continue
            checker.feed(msg)
    return checker


def cfg(**kw: Any) -> ExchangeConfig:
    base: dict[str, Any] = dict(symbols=SYMS, book_levels=LEVELS, idle_timeout=None)
    base.update(kw)
    return ExchangeConfig(**base)


# -- live simulation --------------------------------------------------------------------------


@pytest.mark.parametrize("seed,shuffle", [(1, False), (2, False), (3, True), (20240501, False)])
def test_live_stream_is_consistent_for_a_naive_book(seed: int, shuffle: bool) -> None:
    async def body() -> StreamChecker:
        ex = Exchange(cfg(seed=seed, rate=4000, snapshot_interval=0.05, all_ticker_interval=0.05))
        ex.faults.shuffle_levels = shuffle
        async with ex:
            return await collect(
                ex.url, lambda c: c.depth >= 6000 and c.snapshots_checked >= 12, StreamChecker(LEVELS)
            )

    c = run_guarded(body)
    c.assert_ok()
    assert c.snapshots_checked >= 12
    assert sum(map(len, c.trade_ids.values())) > 500
    c.assert_tickers_move(SYMS)


# -- pre-generated cycle ----------------------------------------------------------------------


@pytest.mark.parametrize("seed,shuffle", [(4, False), (5, True)])
def test_pregenerated_stream_is_consistent_across_cycle_wraps(seed: int, shuffle: bool) -> None:
    n = 3000

    async def body() -> tuple[StreamChecker, int, int]:
        ex = Exchange(cfg(seed=seed, rate=None, pregenerate=n, batch=256, all_ticker_interval=0.02))
        ex.faults.shuffle_levels = shuffle
        async with ex:
            assert ex._cycle is not None
            size = len(ex._cycle)
            # at least three whole cycles after the subscription: two wraps seen
            c = await collect(ex.url, lambda c: c.n >= 4 * size, StreamChecker(LEVELS))
            return c, size, ex._cycle_wraps

    c, size, wraps = run_guarded(body)
    c.assert_ok()
    assert wraps >= 3
    assert c.snapshots_checked >= 2 * len(SYMS)  # the snapshots at every wrap, at least
    assert sum(map(len, c.trade_ids.values())) > size // 4
    c.assert_tickers_move(SYMS)


# -- trade ids across a restart -----------------------------------------------------------------


@pytest.mark.parametrize("pregenerate", [0, 2000])
def test_trade_ids_keep_increasing_across_a_restart_on_the_same_seed(pregenerate: int) -> None:
    async def one_run() -> StreamChecker:
        ex = Exchange(cfg(seed=9, rate=None if pregenerate else 3000, pregenerate=pregenerate, batch=256))
        async with ex:
            return await collect(
                ex.url,
                lambda c: sum(map(len, c.trade_ids.values())) >= 300,
                StreamChecker(LEVELS),
                all_ticker=False,
            )

    async def body() -> tuple[StreamChecker, StreamChecker]:
        first = await one_run()
        await asyncio.sleep(0.01)  # a later start (the ids are derived from the start time)
        return first, await one_run()

    first, second = run_guarded(body)
    first.assert_ok()
    second.assert_ok()
    last_before = max(max(ids) for ids in first.trade_ids.values())
    first_after = min(min(ids) for ids in second.trade_ids.values())
    assert first_after > last_before


# -- serving a capture ------------------------------------------------------------------------


def test_served_capture_of_a_live_stream_is_consistent(tmp_path: Path) -> None:
    from fastfeed.capture import CaptureWriter

    path = tmp_path / "live.ffcap"

    async def body() -> StreamChecker:
        raw: list[bytes | str] = []
        async with Exchange(cfg(seed=11, rate=3000, snapshot_interval=0.05)) as ex:
            await collect(ex.url, lambda c: c.depth >= 2000, StreamChecker(LEVELS), raw=raw)
        with CaptureWriter(path, "ws://127.0.0.1/ws/v1/") as w:
            for i, frame in enumerate(raw):
                if isinstance(frame, str):
                    w.write(frame.encode(), recv_ns=i + 1, msg_type=1)
                else:
                    w.write(frame, recv_ns=i + 1, msg_type=2)
        pushes = [m for m in map(decode_frame, raw) if m.get("method") is not None]
        served = StreamChecker(LEVELS)
        async with Exchange(ExchangeConfig(capture=path)) as ex:
            async with connect(
                ex.url, compression=None, ping_interval=None, max_size=None, **WS_GUARDS
            ) as ws:
                await ws.send('{"id": 1, "method": "depth.subscribe", "params": ["BTC_USDT"]}')
                got = []
                async for frame in ws:
                    msg = decode_frame(frame)
                    if msg.get("method") is not None:
                        got.append(msg)
                        served.feed(msg)
        assert got == pushes, "the served capture differs from the recording"
        return served

    served = run_guarded(body)
    served.assert_ok()
    assert served.depth >= 2000 and served.snapshots_checked > 0
