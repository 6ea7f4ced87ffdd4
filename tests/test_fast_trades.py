"""The parser fast path's trade-at-a-time reader (``ff_trade`` in fastfeed/_fasttrade.h).

A trade object in the exchange's shape, ``{"id":I,"time":T,"amount":"A","price":"P",
"type":"buy"}`` (amount and price in either order), is matched as a unit: SSE2 digit masks
over 48 bytes from its ``{`` and over 48 from its first quoted decimal give the ends of all
four numbers, whose (at most 16) digits are gathered and converted together. Anything else
is read key by key, as before. These tests put every number shape in each of the four
places, at every alignment and next to both ends of the buffer, and check the usual
contract (tests/test_fastpath.py ``check_text``): the fast path gives up or agrees bit for
bit with the general parser, which agrees with ``float()``; and what the documented limits
allow (<= 16 digits, mantissa <= 2**53, price > 0) is taken.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest
from test_fast_levels import decimal_shapes, run_fuzzer
from test_fastpath import bits, check_text, parse_at_guard_pages

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

ROOT = Path(__file__).resolve().parent.parent

#: a trade as the exchange sends it (live order)
FILL = '{"id":3282941823,"time":1716000000.782931,"amount":"762.8","price":"0.52335","type":"buy"}'


def trade(
    tid: str = "3282941823",
    time: str = "1716000000.782931",
    amount: str = "762.8",
    price: str = "0.52335",
    side: str = "buy",
    price_first: bool = False,
) -> str:
    """One trade object's text (numbers given as their JSON text; decimals unquoted here)."""
    if price_first:
        return '{"id":%s,"time":%s,"price":"%s","amount":"%s","type":"%s"}' % (tid, time, price, amount, side)
    return '{"id":%s,"time":%s,"amount":"%s","price":"%s","type":"%s"}' % (tid, time, amount, price, side)


def trades(items: list[str], symbol: str = "BTC_USDT", clean: str = "false") -> bytes:
    return (
        '{"method":"trades.update","params":[%s,[%s],"%s"],"id":null}' % (clean, ",".join(items), symbol)
    ).encode()


def quoted_ok(s: str) -> bool:
    """Whether ff_trade's limits take the quoted decimal ``s``: ``digits ['.' digits]``,
    <= 16 digits in all, mantissa <= 2**53."""
    ip, _, fp = s.partition(".")
    if not ip.isdigit() or (fp and not fp.isdigit()) or "." in fp:
        return False
    return len(ip) + len(fp) <= 16 and int(ip + fp) <= 2**53


def bare_ok(s: str) -> bool:
    """The same for a bare JSON number (no leading zero, a digit after the point)."""
    ip, dot, fp = s.partition(".")
    return quoted_ok(s) and not (len(ip) > 1 and ip[0] == "0") and not (dot and not fp)


def _trade_of(fast: object, index: int) -> tuple[object, ...]:
    assert isinstance(fast, tuple)
    return tuple(fast[5][index])


def test_every_decimal_shape_in_each_place() -> None:
    """Every shape as the amount and the price (both key orders), as the time, and the
    integer ones as the id; as the first trade of three and as the last (near the end)."""
    rng = random.Random(1313)
    taken = 0
    for s in decimal_shapes(rng, 18):
        for price_first in (False, True):
            for index in (0, 2):
                for field in ("amount", "price", "time", "tid"):
                    if field == "tid" and not s.isdigit():
                        continue
                    t = trade(price_first=price_first, **{field: s})
                    items = [t, FILL, FILL] if index == 0 else [FILL, FILL, t]
                    fast = check_text(trades(items, symbol="S" if index else "BTC_USDT"))
                    if field in ("amount", "price"):
                        ok = quoted_ok(s) and (field == "amount" or float(s) > 0)
                    elif field == "time":
                        ok = bare_ok(s)
                    else:
                        ok = bare_ok(s) and len(s) <= 16
                    if ok:
                        assert fast is not None, f"not taken: {t}"
                    if fast is None:
                        continue
                    taken += 1
                    got = _trade_of(fast, index)
                    want = {"tid": (0, int), "time": (1, float), "price": (2, float), "amount": (3, float)}
                    pos, conv = want[field]
                    assert bits(got[pos]) == bits(conv(s)), f"{t}: {got}"
    assert taken > 6000


#: number texts each place must refuse or read exactly as the general parser does
ODD = (
    "1e5",
    "1E-5",
    "-1",
    "+1",
    ".5",
    "1.",
    "0.",
    "00",
    "007",
    "1.2.3",
    "",
    " 1",
    "1 ",
    "0",
    "0.0",
    "9007199254740992",
    "9007199254740993",
    "900719925474099.3",
    "0.9007199254740993",
    "1234567890123456",
    "12345678901234567",
    "1716000000.7829315",
    "1716000000.782931000",
    "1716000000",
    "99999999.99999999",
    "true",
    "null",
    '"1"',
)


@pytest.mark.parametrize("s", ODD, ids=[repr(s) for s in ODD])
def test_odd_numbers_in_each_place(s: str) -> None:
    for price_first in (False, True):
        texts = [
            '{"id":%s,"time":1,"amount":"1","price":"1","type":"buy"}' % s,
            '{"id":1,"time":%s,"amount":"1","price":"1","type":"buy"}' % s,
            trade(amount=s, price_first=price_first),
            trade(price=s, price_first=price_first),
            trade(amount=s, price_first=price_first).replace('"%s"' % s, s),
        ]
        for t in texts:
            check_text(trades([t, FILL]))
            check_text(trades([FILL, t]))


def test_alignment_and_lengths() -> None:
    """Trades of every number length around the windows' edges (id 1..17 digits, time
    1..18 characters, amount and price 1..17) at every offset mod 16, sell and buy."""
    rng = random.Random(77)
    taken = 0
    for pad in range(16):
        for _ in range(60):
            tid = str(rng.randrange(1, 10)) + "".join(
                rng.choice("0123456789") for _ in range(rng.randrange(17))
            )
            ti = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 18)))
            ti = str(rng.randrange(1, 10)) + ti[1:]
            if len(ti) > 2 and rng.randrange(3):
                cut = rng.randrange(1, len(ti) - 1)
                ti = ti[:cut] + "." + ti[cut:]
            nums = []
            for _f in range(2):
                n = rng.randrange(1, 18)
                d = "".join(rng.choice("0123456789") for _ in range(n))
                cut = rng.randrange(1, n + 1)
                nums.append(d[:cut] + ("." + d[cut:] if cut < n else ""))
            if float(nums[1]) == 0:
                nums[1] = "1" + nums[1]
            t = trade(tid, ti, nums[0], nums[1], rng.choice(("buy", "sell")), bool(rng.randrange(2)))
            pre = trade(tid="1" * (pad + 1))
            text = trades([pre, t], symbol="S" * rng.randint(1, 32))
            fast = check_text(text)
            if len(tid) <= 16 and bare_ok(ti) and quoted_ok(nums[0]) and quoted_ok(nums[1]):
                assert fast is not None, text
                taken += 1
                got = _trade_of(fast, 1)
                assert bits(got[:4]) == bits((int(tid), float(ti), float(nums[1]), float(nums[0]))), text
    assert taken > 300


def test_separators_and_punctuation_in_the_windows() -> None:
    """Every byte of a trade replaced by each interesting byte, deleted, or a quote put
    before it: the fast path gives up or agrees with the general parser."""
    import test_fuzz

    for t in (FILL, trade(price_first=True, side="sell")):
        base = trades([t, FILL])
        start = base.index(b"[{") + 1
        for i in range(start, start + len(t) + 1):
            for c in test_fuzz.INTERESTING_BYTES:
                check_text(base[:i] + bytes([c]) + base[i + 1 :])
            check_text(base[:i] + base[i + 1 :])
            check_text(base[:i] + b'"' + base[i:])


def test_live_and_doc_shapes() -> None:
    """The live capture (integer time, amount first) and the documented example (price
    first, 6-digit fraction): taken, equal to float()."""
    live = trades(
        ['{"id":3282939928,"time":1597419159,"amount":"0.1","price":"11687.04","type":"sell"}'],
        symbol="ETH_USDT",
        clean="true",
    )
    doc = trades(
        ['{"id":7172173,"time":1523339279.761838,"price":"398.59","amount":"0.027","type":"buy"}'],
        symbol="ETH_USDT",
        clean="true",
    )
    fast = check_text(live)
    assert fast is not None and bits(_trade_of(fast, 0)) == bits(
        (3282939928, 1597419159.0, 11687.04, 0.1, -1)
    )
    fast = check_text(doc)
    assert fast is not None and bits(_trade_of(fast, 0)) == bits(
        (7172173, 1523339279.761838, 398.59, 0.027, 1)
    )


@pytest.mark.skipif(sys.platform != "linux", reason="mprotect guard pages via ctypes: Linux only")
def test_nothing_read_outside_the_message() -> None:
    """Trade pushes whose trades sit next to the end of the message (every prefix, every
    symbol length) against a PROT_NONE page after it, and the same texts right after a
    PROT_NONE page: a read outside the message kills the child."""
    texts: list[bytes] = []
    for sym in ("A", "AB_C", "BTC_USDT", "S" * 15, "S" * 16, "S" * 31):
        text = trades(
            [FILL, trade("1", "1", "0", "1", "sell", True), trade(amount="12345678.12345678")], symbol=sym
        )
        texts += [text[:k] for k in range(len(text) - 140, len(text) + 1)]
    texts += [trades([trade("7", "1", "1", "1")], symbol="S" * k) for k in range(1, 33)]
    texts += [b'{"method":"trades.update","params":[true,[' + FILL.encode() + b"]]}"]
    parse_at_guard_pages(texts)


def test_trade_reader_differential_fuzz(tmp_path: Path) -> None:
    """fuzz/trades_fuzz.c: _fasttrade.h compiled on its own (ASan + UBSan when the compiler
    has them), a fixed-seed run of random trades in exact-size buffers; every trade the
    reader takes equals the key-by-key readers and strtod() bit for bit."""
    out = run_fuzzer("trades_fuzz", tmp_path, "20261126", "300000")
    m = re.search(r"taken (\d+) refused (\d+)", out)
    if m is None:
        assert "no trade reader" in out, out
        return
    taken, refused = map(int, m.groups())
    assert taken > 30_000 and refused > 100_000, out
