"""Seeded, realistic DigiFinex spot WebSocket v1 corpus for benchmarks.

The mix follows docs/architecture.md ("How performance is judged"):

- ~61% ``depth.update`` increments, 0-4 levels a side (never both empty), ~30% of the levels
  deletions (amount ``"0"``), upserts first then deletions, as the live server sends them;
- ~3% ``depth.update`` 30-level ``clean=true`` snapshots (asks in descending order, as seen
  live), plus one snapshot per symbol at the start so every book is populated;
- ~29% ``trades.update`` pushes with 1-3 trades, newest first, increasing ids > 2**31,
  float ``time`` seconds;
- ~6.5% ``ticker.update`` pushes in the documented shape;
- 10 symbols with realistic prices, tick sizes and activity (BTC busier than a small coin);
- a random walk of each mid price; the generator keeps its own book per symbol so deletions
  hit levels that exist and the books a consumer builds stay realistic (uncrossed mostly).

Every frame is compact JSON as the live server sends it and compressed on its own with
``zlib.compress(json_bytes)`` (zlib's default level, RFC 1950 header + Adler-32), because
each server data frame is an independent zlib stream.

CLI::

    python -m fastfeed.bench.corpus --n 100000 --seed 1 --out corpus.ffcorp   # or benchmarks/corpus.py

writes the corpus in a simple length-prefixed format (see :func:`save_corpus`) and prints the
mix and average sizes. :func:`load_corpus` reads it back.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "KINDS",
    "MIX",
    "SYMBOLS",
    "Frame",
    "corpus_stats",
    "format_stats",
    "load_corpus",
    "make_corpus",
    "save_corpus",
]

#: Frame kinds. ``depth`` (increment) and ``snapshot`` both carry method ``depth.update``.
KINDS = ("depth", "snapshot", "trades", "ticker")

#: Probability of each kind after the initial per-symbol snapshots.
MIX = {"depth": 0.615, "snapshot": 0.03, "trades": 0.29, "ticker": 0.065}

_METHOD = {
    "depth": "depth.update",
    "snapshot": "depth.update",
    "trades": "trades.update",
    "ticker": "ticker.update",
}

SNAPSHOT_LEVELS = 30
#: Levels per side the generator keeps in its own view of the book.
_BOOK_LEVELS = 60
_DELETE_SHARE = 0.22  # plus the stale levels deleted first: ~30% of levels in all
_FIRST_TRADE_ID = 3_282_939_928  # > 2**31, as seen live (fixtures A1)
_START_TIME = 1_716_000_000.0  # exchange seconds


class Frame(NamedTuple):
    """One server data frame: ``zlib`` is what arrives on the wire, ``plain`` the JSON inside."""

    method: str
    kind: str
    symbol: str
    zlib: bytes
    plain: bytes


@dataclass(frozen=True)
class _Spec:
    symbol: str
    mid: float  # starting mid price
    tick_dp: int  # price decimals (tick = 10**-tick_dp)
    amount_dp: int  # amount decimals
    amount_scale: float  # typical level size
    weight: float  # share of the symbol's activity


#: The 10 symbols: realistic prices, tick sizes, lot sizes and activity.
SYMBOLS: tuple[_Spec, ...] = (
    _Spec("BTC_USDT", 60000.12, 2, 6, 0.25, 0.22),
    _Spec("ETH_USDT", 3000.45, 2, 4, 3.0, 0.17),
    _Spec("SOL_USDT", 145.678, 3, 3, 40.0, 0.11),
    _Spec("XRP_USDT", 0.52341, 5, 1, 5000.0, 0.10),
    _Spec("DOGE_USDT", 0.123456, 6, 0, 40000.0, 0.09),
    _Spec("LTC_USDT", 81.23, 2, 4, 30.0, 0.07),
    _Spec("DFT_USDT", 0.0312, 5, 2, 20000.0, 0.07),
    _Spec("TRX_USDT", 0.1198, 6, 1, 30000.0, 0.06),
    _Spec("PEPE_USDT", 0.0001234, 8, 0, 5.0e7, 0.06),
    _Spec("SHIB_USDT", 0.00001734, 9, 0, 2.0e8, 0.05),
)


def _fmt(ticks: int, dp: int) -> str:
    """Minimal decimal string of ``ticks * 10**-dp``, as the live server sends (``"0.1"``)."""
    if dp == 0:
        return str(ticks)
    s = str(ticks).rjust(dp + 1, "0")
    s = f"{s[:-dp]}.{s[-dp:]}".rstrip("0")
    return s[:-1] if s.endswith(".") else s


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class _SymbolSim:
    """Per-symbol market simulation: mid random walk and the generator's own book."""

    def __init__(self, spec: _Spec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.tick = 10.0**-spec.tick_dp
        self.mid = max(round(spec.mid / self.tick), 50)  # mid in ticks
        # Typical spread and level spacing in ticks: ~1-3 bps for the majors.
        self.spacing = max(1, round(self.mid * 0.00004))
        self.bids: dict[int, int] = {}  # price ticks -> amount (in 10**-amount_dp units)
        self.asks: dict[int, int] = {}
        self.open_24h = self.mid
        self.low_24h = self.mid
        self.volume = 0.0
        self.quote_volume = 0.0
        self.last = self.mid
        self.last_qty = self._amount()

    # --- helpers -------------------------------------------------------------------------
    def _amount(self) -> int:
        """A positive level size in amount units (log-normal, at least one unit)."""
        spec = self.spec
        v = spec.amount_scale * self.rng.lognormvariate(0.0, 1.0)
        return max(1, round(v * 10**spec.amount_dp))

    def _offset(self) -> int:
        """Distance from the mid in ticks for a new level: mostly near the top of the book."""
        k = 1 + int(self.rng.expovariate(1.0 / 8.0))
        return k * self.spacing + self.rng.randrange(self.spacing)

    def step(self) -> None:
        """Random walk of the mid (a few ticks at a time, slight mean reversion)."""
        r = self.rng.random()
        if r < 0.30:
            d = self.rng.choice((-1, 1)) * self.spacing * (1 + int(self.rng.expovariate(1.0)))
            drift = self.open_24h - self.mid
            if drift and self.rng.random() < 0.1:
                d = abs(d) if drift > 0 else -abs(d)
            self.mid = max(self.mid + d, 10 * self.spacing)
            self.low_24h = min(self.low_24h, self.mid)

    def best(self) -> tuple[int, int]:
        bid = max(self.bids) if self.bids else self.mid - self.spacing
        ask = min(self.asks) if self.asks else self.mid + self.spacing
        return bid, ask

    def _trim(self) -> None:
        for side, rev in ((self.bids, True), (self.asks, False)):
            if len(side) > _BOOK_LEVELS:
                for p in sorted(side, reverse=not rev)[: len(side) - _BOOK_LEVELS]:
                    del side[p]

    def _level_str(self, p: int, a: int) -> list[str]:
        return [_fmt(p, self.spec.tick_dp), _fmt(a, self.spec.amount_dp)]

    # --- frames --------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """A 30-level clean snapshot around the current mid; replaces the generator's book."""
        self.bids.clear()
        self.asks.clear()
        for side, sign in ((self.bids, -1), (self.asks, 1)):
            p = self.mid + sign * (self.spacing // 2 + 1)
            while len(side) < SNAPSHOT_LEVELS:
                side[p] = self._amount()
                p += sign * self.spacing * (1 + int(self.rng.expovariate(1.5)))
        # As captured live (fixtures A2/A4): asks descending (best last), bids descending.
        asks = [self._level_str(p, self.asks[p]) for p in sorted(self.asks, reverse=True)]
        bids = [self._level_str(p, self.bids[p]) for p in sorted(self.bids, reverse=True)]
        return {
            "method": "depth.update",
            "params": [True, {"asks": asks, "bids": bids}, self.spec.symbol],
            "id": None,
        }

    def _side_update(self, side: dict[int, int], sign: int, n: int) -> list[list[str]]:
        """n levels for one side: levels the walk has crossed are deleted first, then
        deletions of existing levels (near the top more often) and upserts near the mid."""
        upserts: dict[int, int] = {}
        deletes: list[int] = []
        # Levels at or through the mid (the walk moved past them): a live server deletes them.
        stale = sorted((p for p in side if (p - self.mid) * sign <= 0), key=lambda q: -q * sign)
        for _ in range(n):
            if stale:
                p = stale.pop()
            elif side and self.rng.random() < _DELETE_SHARE:
                ordered = sorted(side, key=lambda q: (q - self.mid) * sign)
                p = ordered[min(int(self.rng.expovariate(1.0 / 6.0)), len(ordered) - 1)]
            else:
                p = self.mid + sign * self._offset()
                a = self._amount() if p not in side or self.rng.random() < 0.8 else side[p] + 1
                side[p] = a
                upserts[p] = a
                continue
            del side[p]
            if p in upserts:
                del upserts[p]
            else:
                deletes.append(p)
        # Live increments: upserts first, then deletions, each group in descending order.
        out = [self._level_str(p, upserts[p]) for p in sorted(upserts, reverse=True)]
        out += [[_fmt(p, self.spec.tick_dp), "0"] for p in sorted(deletes, reverse=True)]
        return out

    def depth(self) -> dict:
        nb = self.rng.randint(0, 4)
        na = self.rng.randint(0, 4)
        if nb == 0 and na == 0:
            if self.rng.random() < 0.5:
                nb = 1
            else:
                na = 1
        asks = self._side_update(self.asks, 1, na)
        bids = self._side_update(self.bids, -1, nb)
        self._trim()
        return {
            "method": "depth.update",
            "params": [False, {"asks": asks, "bids": bids}, self.spec.symbol],
            "id": None,
        }

    def trades(self, next_id: int, now: float) -> tuple[dict, int]:
        n = self.rng.choice((1, 1, 1, 2, 2, 3))
        trades = []
        t = now
        for _ in range(n):
            next_id += self.rng.randint(1, 40)
            t += self.rng.random() * 0.001
            side = self.rng.choice(("buy", "sell"))
            bid, ask = self.best()
            p = ask if side == "buy" else bid
            a = max(1, self._amount() // self.rng.randint(1, 20))
            self.last, self.last_qty = p, a
            px = p * self.tick
            qty = a * 10.0**-self.spec.amount_dp
            self.volume += qty
            self.quote_volume += qty * px
            trades.append(
                {
                    "id": next_id,
                    "time": round(t, 6),
                    "amount": _fmt(a, self.spec.amount_dp),
                    "price": _fmt(p, self.spec.tick_dp),
                    "type": side,
                }
            )
        trades.reverse()  # newest first
        return ({"method": "trades.update", "params": [False, trades, self.spec.symbol], "id": None}, next_id)

    def ticker(self, now: float) -> dict:
        spec = self.spec
        bid, ask = self.best()
        t = {
            "symbol": spec.symbol,
            "open_24h": _fmt(self.open_24h, spec.tick_dp),
            "low_24h": _fmt(self.low_24h, spec.tick_dp),
            "base_volume_24h": f"{self.volume + 1000 * spec.amount_scale:.8f}",
            "quote_volume_24h": f"{self.quote_volume + 1000 * spec.amount_scale * spec.mid:.8f}",
            "last": _fmt(self.last, spec.tick_dp),
            "last_qty": _fmt(self.last_qty, spec.amount_dp),
            "best_bid": _fmt(bid, spec.tick_dp),
            "best_bid_size": _fmt(self.bids.get(bid, 1), spec.amount_dp),
            "best_ask": _fmt(ask, spec.tick_dp),
            "best_ask_size": _fmt(self.asks.get(ask, 1), spec.amount_dp),
            "timestamp": int(now * 1000),
        }
        return {"method": "ticker.update", "params": [t], "id": None}


def _frame(kind: str, symbol: str, obj: dict) -> Frame:
    plain = _dumps(obj)
    return Frame(_METHOD[kind], kind, symbol, zlib.compress(plain), plain)


def make_corpus(n: int, seed: int = 1, symbols: int = 10) -> list[Frame]:
    """Generate ``n`` frames (deterministic for a given ``seed`` and Python version).

    The first ``symbols`` frames are one 30-level snapshot per symbol; the rest follow
    :data:`MIX`. ``symbols`` takes the first entries of :data:`SYMBOLS` (1..10).
    """
    if not 1 <= symbols <= len(SYMBOLS):
        raise ValueError(f"symbols must be in 1..{len(SYMBOLS)}")
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)
    sims = [_SymbolSim(spec, random.Random(rng.getrandbits(64))) for spec in SYMBOLS[:symbols]]
    weights = [s.spec.weight for s in sims]
    kinds = list(MIX)
    kind_weights = [MIX[k] for k in kinds]
    out: list[Frame] = []
    for sim in sims[:n]:
        out.append(_frame("snapshot", sim.spec.symbol, sim.snapshot()))
    next_id = _FIRST_TRADE_ID
    now = _START_TIME
    while len(out) < n:
        # ~250 frames/s; the 3 ms floor keeps trade times increasing across pushes.
        now += 0.003 + rng.expovariate(1.0 / 0.001)
        sim = rng.choices(sims, weights)[0]
        sim.step()
        kind = rng.choices(kinds, kind_weights)[0]
        if kind == "depth":
            obj = sim.depth()
        elif kind == "snapshot":
            obj = sim.snapshot()
        elif kind == "trades":
            obj, next_id = sim.trades(next_id, now)
        else:
            obj = sim.ticker(now)
        out.append(_frame(kind, sim.spec.symbol, obj))
    return out


# --- file format --------------------------------------------------------------------------
# header: b"FFCORP1\n"; then per frame:
#   u8 kind index (KINDS), u8 symbol length, u32 plain length, u32 zlib length (little endian),
#   symbol bytes, plain bytes, zlib bytes.
_MAGIC = b"FFCORP1\n"
_REC = struct.Struct("<BBII")


def save_corpus(frames: Iterable[Frame], path: str) -> int:
    """Write frames to ``path`` (length-prefixed records); returns the number written."""
    count = 0
    with open(path, "wb") as f:
        f.write(_MAGIC)
        for fr in frames:
            sym = fr.symbol.encode()
            f.write(_REC.pack(KINDS.index(fr.kind), len(sym), len(fr.plain), len(fr.zlib)))
            f.write(sym)
            f.write(fr.plain)
            f.write(fr.zlib)
            count += 1
    return count


def load_corpus(path: str) -> list[Frame]:
    """Read a file written by :func:`save_corpus`."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(_MAGIC):
        raise ValueError(f"{path}: not a fastfeed corpus file")
    pos = len(_MAGIC)
    out: list[Frame] = []
    while pos < len(data):
        if pos + _REC.size > len(data):
            raise ValueError(f"{path}: truncated record header at byte {pos}")
        k, ls, lp, lz = _REC.unpack_from(data, pos)
        pos += _REC.size
        end = pos + ls + lp + lz
        if end > len(data) or k >= len(KINDS):
            raise ValueError(f"{path}: corrupt record at byte {pos - _REC.size}")
        sym = data[pos : pos + ls].decode()
        plain = data[pos + ls : pos + ls + lp]
        zdata = data[pos + ls + lp : end]
        pos = end
        out.append(Frame(_METHOD[KINDS[k]], KINDS[k], sym, zdata, plain))
    return out


# --- statistics ---------------------------------------------------------------------------
def corpus_stats(frames: Sequence[Frame]) -> dict:
    """Mix, sizes and level statistics of a corpus (for printing and for sanity tests)."""
    n = len(frames)
    by_kind: dict[str, dict] = {}
    for kind in KINDS:
        fs = [f for f in frames if f.kind == kind]
        if not fs:
            continue
        by_kind[kind] = {
            "count": len(fs),
            "share": len(fs) / n,
            "avg_plain": sum(len(f.plain) for f in fs) / len(fs),
            "avg_zlib": sum(len(f.zlib) for f in fs) / len(fs),
        }
    levels = deletes = incs = 0
    per_side: Counter[int] = Counter()
    trades = 0
    trade_pushes = 0
    for f in frames:
        if f.kind == "depth":
            incs += 1
            book = json.loads(f.plain)["params"][1]
            for side in ("asks", "bids"):
                lv = book.get(side, [])
                per_side[len(lv)] += 1
                levels += len(lv)
                deletes += sum(1 for _, a in lv if float(a) == 0.0)
        elif f.kind == "trades":
            trade_pushes += 1
            trades += len(json.loads(f.plain)["params"][1])
    return {
        "frames": n,
        "symbols": len({f.symbol for f in frames}),
        "by_kind": by_kind,
        "avg_plain": sum(len(f.plain) for f in frames) / n if n else 0.0,
        "avg_zlib": sum(len(f.zlib) for f in frames) / n if n else 0.0,
        "depth_levels_per_side": (levels / (2 * incs)) if incs else 0.0,
        "depth_levels_per_side_hist": dict(sorted(per_side.items())),
        "depth_delete_share": (deletes / levels) if levels else 0.0,
        "trades_per_push": (trades / trade_pushes) if trade_pushes else 0.0,
    }


def format_stats(st: dict) -> str:
    lines = [
        f"frames {st['frames']}, symbols {st['symbols']}, "
        f"avg plain {st['avg_plain']:.1f} B, avg zlib {st['avg_zlib']:.1f} B "
        f"(zlib/plain {st['avg_zlib'] / st['avg_plain']:.2f})"
        if st["frames"]
        else "empty"
    ]
    lines.append(f"{'kind':<10}{'count':>9}{'share':>8}{'avg plain B':>13}{'avg zlib B':>12}")
    for kind, k in st["by_kind"].items():
        lines.append(
            f"{kind:<10}{k['count']:>9}{k['share']:>8.1%}{k['avg_plain']:>13.1f}{k['avg_zlib']:>12.1f}"
        )
    hist = ", ".join(f"{k}:{v}" for k, v in st["depth_levels_per_side_hist"].items())
    lines.append(
        f"depth increments: {st['depth_levels_per_side']:.2f} levels/side "
        f"({hist}), deletions {st['depth_delete_share']:.1%} of levels"
    )
    lines.append(f"trades pushes: {st['trades_per_push']:.2f} trades/push")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="number of frames (default 100000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--symbols", type=int, default=10, help="number of symbols (1..10)")
    ap.add_argument("--out", help="write the corpus to this file")
    ap.add_argument("--show", type=int, default=0, metavar="K", help="print the first K frames")
    args = ap.parse_args(argv)
    frames = make_corpus(args.n, seed=args.seed, symbols=args.symbols)
    print(f"corpus: n={args.n} seed={args.seed} symbols={args.symbols}")
    print(format_stats(corpus_stats(frames)))
    for fr in frames[: args.show]:
        print(fr.plain.decode())
    if args.out:
        save_corpus(frames, args.out)
        print(f"wrote {len(frames)} frames to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
