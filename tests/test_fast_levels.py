"""The parser fast path's level-at-a-time reader (``ff_level32`` in fastfeed/_fastnum.h).

A depth level ``["P","A"]`` with its ``,`` / ``]`` that fits within 32 bytes, with at least
33 bytes of the message from its ``[`` on, is matched as a unit: an SSE2 digit mask over 32
bytes gives the ends of both numbers, each mantissa is gathered from the 8-byte words that
end at its point and at its closing quote (8 digits; 9..16 digits take two words each, out of
line), both are converted and divided together. Anything else is read number by number
(ff_qdecimal), as before. These tests put every number shape *in that window* (the level
followed by enough bytes), at every alignment and next to both ends of the buffer, and check
the usual contract (tests/test_fastpath.py ``check_text``): the fast path gives up or agrees
bit for bit with the general parser, which agrees with ``float()``; and what the documented
limits allow (digit runs <= 16, <= 19 digits, mantissa <= 2**53, price > 0) is taken.
The symbol's SSE2 reader (``ff_symbol``, symbols shorter than 16 bytes) is checked here too.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from test_fastpath import bits, check_text, parse_at_guard_pages

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

ROOT = Path(__file__).resolve().parent.parent

#: a filler level after the one under test: at least 33 bytes from its '[' to the end
FILL = '["1","1"]'


def depth(asks: list[str], bids: list[str], symbol: str = "BTC_USDT", clean: str = "false") -> bytes:
    """A compact depth push; levels given as their JSON text."""
    return (
        '{"method":"depth.update","params":[%s,{"asks":[%s],"bids":[%s]},"%s"],"id":null}'
        % (clean, ",".join(asks), ",".join(bids), symbol)
    ).encode()


def level(p: str, a: str) -> str:
    return '["%s","%s"]' % (p, a)


def within(s: str) -> bool:
    """Whether the fast path's documented limits take the quoted decimal ``s``."""
    ip, _, fp = s.partition(".")
    if not ip.isdigit() or (fp and not fp.isdigit()) or s.count(".") > 1:
        return False
    return len(ip) <= 16 and len(fp) <= 16 and len(ip) + len(fp) <= 19 and int(ip + fp) <= 2**53


def decimal_shapes(rng: random.Random, most: int = 20) -> list[str]:
    """Decimal texts with 0..most integer and 0..most fraction digits (the 8 and 16 digit
    boundaries of the words on both sides), random, all-zero, all-nine and leading-zero."""
    out = []
    for ni in range(most + 1):
        for nf in [None, *range(most + 1)]:
            for kind in ("random", "zeros", "nines", "lead0"):
                digits = {"zeros": "0", "nines": "9"}.get(kind, "0123456789")
                ip = "".join(rng.choice(digits) for _ in range(ni))
                if kind == "lead0" and ni:
                    ip = "0" + ip[1:]
                if kind == "zeros" and ni:
                    ip = ip[:-1] + "1"  # a non-zero price unless the fraction says otherwise
                s = ip if nf is None else ip + "." + "".join(rng.choice(digits) for _ in range(nf))
                if s and s != ".":
                    out.append(s)
    return out


def test_every_decimal_shape_in_the_window() -> None:
    """Every shape as the price and as the amount of a level followed by more levels (the
    window path), and of the last level of the message (near the buffer's end)."""
    rng = random.Random(1313)
    taken = 0
    for s in decimal_shapes(rng):
        slots = [
            (depth([level(s, "2"), FILL, FILL], [FILL]), 3, 0, 0),
            (depth([FILL], [level("3", s), FILL, FILL]), 4, 0, 1),
            (depth([FILL, level(s, "0.5")], [FILL]), 3, 1, 0),
            (depth([FILL], [FILL, level("7.25", s)]), 4, 1, 1),
            (depth([level(s, s), FILL], [], symbol="A"), 3, 0, 0),
        ]
        for text, side, index, field in slots:
            fast = check_text(text)
            ok = within(s) and (field == 1 or float(s) > 0)
            if ok:
                assert fast is not None, f"not taken: {text!r}"
            if fast is None:
                continue
            taken += 1
            assert bits(fast[side][index][field]) == bits(float(s)), f"{text!r}: {fast[side]}"
    assert taken > 3000


#: number texts the window must refuse or read exactly as the general parser does
ODD = (
    "1e5",
    "1E-5",
    "1.5e3",
    "-1",
    "+1",
    ".5",
    "1.",
    "0.",
    "00",
    "007",
    "00.10",
    "1.2.3",
    "1..2",
    "",
    " 1",
    "1 ",
    "0x10",
    "١",
    "1\\u0030",
    "Infinity",
    "NaN",
    "0",
    "0.0",
    "0.000000000",
    "9007199254740992",
    "9007199254740993",
    "900719925474099.3",
    "0.9007199254740993",
    "12345678.9",
    "123456789",
    "1234567890123456",
    "12345678901234567",
    "1.2345678901234567",
    "0.00000000000000001",
    "1234567890123456.000",
    "100000000000000000000",
    "99999999.99999999",
)


@pytest.mark.parametrize("s", ODD, ids=[repr(s) for s in ODD])
def test_odd_numbers_in_the_window(s: str) -> None:
    for text in (
        depth([level(s, "2"), FILL, FILL], [FILL]),
        depth([FILL], [level("3", s), FILL, FILL]),
        depth([FILL, '["%s",2]' % s, FILL], []),
        depth([FILL, '[%s,"2"]' % s, FILL], []),
    ):
        fast = check_text(text)
        if fast is not None and within(s):
            got = fast[3] + fast[4]
            assert any(bits(v) == bits(float(s)) for lv in got for v in lv), f"{text!r}: {got}"


def test_alignment_and_level_lengths() -> None:
    """Levels of every length around the 32-byte window (27..36 bytes with the separator)
    starting at every offset mod 16, in arrays of one to four levels: taken, exact."""
    rng = random.Random(77)
    taken = 0
    for pad in range(16):
        for plen in range(1, 18):
            for alen in range(1, 18):
                ip = str(rng.randrange(1, 10)) + "".join(rng.choice("0123456789") for _ in range(plen - 1))
                p = ip if plen < 3 else ip[: plen // 2] + "." + ip[plen // 2 :]
                a = "".join(rng.choice("0123456789") for _ in range(alen))
                if alen > 4:
                    a = a[:2] + "." + a[2:]
                pre = level("1" * (pad + 1), "2")
                n = rng.randint(0, 3)
                text = depth(
                    [pre, level(p, a)] + [FILL] * n, [level(p, a)] * n, symbol="S" * rng.randint(1, 32)
                )
                fast = check_text(text)
                if within(p) and within(a):
                    assert fast is not None, text
                    taken += 1
                    assert bits(fast[3][1]) == bits((float(p), float(a))), text
    assert taken > 3000


def test_separators_and_punctuation_in_the_window() -> None:
    """Every byte of a level in the window replaced by each interesting byte: the fast path
    gives up or agrees with the general parser (which decides the error, if any)."""
    import test_fuzz

    base = depth([level("60084.57", "0.042745"), level("0.000017392", "497356287"), FILL], [FILL])
    start = base.index(b'[["') + 1
    for i in range(start, start + 60):
        for c in test_fuzz.INTERESTING_BYTES:
            check_text(base[:i] + bytes([c]) + base[i + 1 :])
        check_text(base[:i] + base[i + 1 :])
        check_text(base[:i] + b'"' + base[i:])


def test_every_byte_in_the_window() -> None:
    """Each of the 256 byte values at each byte of a level (and around it): the reader's
    digit and point masks (SIMD byte classes: a digit is what two adds leave negative)
    must class every byte as the general parser does, so it gives up or agrees. A digit
    put in place of a digit is always taken, exactly."""
    base = depth([level("60084.57", "0.042745"), FILL, FILL], [FILL])
    start = base.index(b'[["') + 1
    digits = [i for i in range(start, start + 22) if 48 <= base[i] <= 57]
    taken = 0
    for i in range(start - 1, start + 24):
        for c in range(256):
            text = base[:i] + bytes([c]) + base[i + 1 :]
            fast = check_text(text)
            if i in digits and 48 <= c <= 57 and not (i == start + 2 and c == 48):
                assert fast is not None, text  # a leading zero of the price may give up
                taken += 1
    assert taken >= 10 * (len(digits) - 1)


def test_long_numbers_mixed_with_short() -> None:
    """Levels whose price, amount or both have 9..16 digits (the out-of-line reader), next to
    levels of <= 8 digits, as the corpus' small coins send them."""
    rng = random.Random(4242)
    for _ in range(3000):
        lv = []
        for _ in range(rng.randint(1, 6)):
            nums = []
            for _field in range(2):
                n = rng.choice((rng.randint(1, 8), rng.randint(9, 18)))
                digits = "".join(rng.choice("0123456789") for _ in range(n))
                cut = rng.randint(0, n)
                s = (digits[:cut] or "0") + ("." + digits[cut:] if cut < n else "")
                nums.append(s)
            if float(nums[0]) == 0:
                nums[0] = "1" + nums[0]
            lv.append(level(*nums))
        text = depth(lv, list(reversed(lv)))
        fast = check_text(text)
        if all(within(s) for lvl in lv for s in lvl[2:-2].split('","')):
            assert fast is not None, text


@pytest.mark.skipif(sys.platform != "linux", reason="mprotect guard pages via ctypes: Linux only")
def test_nothing_read_outside_the_message() -> None:
    """Depth pushes whose levels sit next to the end of the message (every prefix, and every
    symbol length) placed against a PROT_NONE page after it, and the same texts placed
    right after a PROT_NONE page (the level reader's words reach back up to 5 bytes before a
    level): a read outside the message kills the child."""
    texts: list[bytes] = []
    for sym in ("A", "AB_C", "BTC_USDT", "S" * 15, "S" * 16, "S" * 31):
        text = depth(
            [level("60084.57", "0.042745"), level("0.000017392", "497356287")],
            [level("1", "0"), level("12345678.12345678", "9")],
            symbol=sym,
        )
        texts += [text[:k] for k in range(len(text) - 40, len(text) + 1)]
    texts += [depth([level("1", "2")], [], symbol="S" * k) for k in range(1, 33)]
    parse_at_guard_pages(texts)


#: symbol bytes at the edges of what ff_symbol takes (controls, space, quote, backslash,
#: DEL, non-ASCII, the neighbours of a-z and of the printable range)
EDGE_BYTES = b'\x00\x1f !"\\`{~\x7f\x80\xffaz'


def _symbol_texts() -> list[tuple[str, bytes]]:
    out = []
    for n in range(1, 20):
        for pos in range(n):
            for bad in EDGE_BYTES:
                name = bytearray(b"q" * n)
                name[pos] = bad
                out.append((f"{n}:{pos}:{bad:#x}", bytes(name)))
    return out


def test_symbol_bytes_and_lengths() -> None:
    """Symbols of 1..19 bytes with each edge byte (controls, space, quote, backslash, DEL,
    non-ASCII, the neighbours of a-z) at each position: the fast path gives up or agrees
    with the general parser (upper-cased a-z only, same hash: one symbol in the engine)."""
    taken = 0
    for _id, name in _symbol_texts():
        text = (
            b'{"method":"depth.update","params":[false,{"asks":[["1.5","2"]],"bids":[]},"'
            + name
            + b'"],"id":null}'
        )
        fast: Any = check_text(text)
        if fast is not None:
            taken += 1
            want = bytes(c - 32 if 0x61 <= c <= 0x7A else c for c in name).decode("ascii")
            assert fast[2] == want, (name, fast[2])
    assert taken > 500


def run_fuzzer(name: str, tmp_path: Path, *args: str) -> str:
    """Build ``fuzz/NAME.c`` against the headers in fastfeed/ (ASan + UBSan when the compiler
    has them; skip without a C compiler), run it with ``args`` and return its output, after
    asserting it exited cleanly."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if not cc or shutil.which(cc[0]) is None:
        pytest.skip("no C compiler")
    exe = tmp_path / name
    base = [*cc, "-O1", "-g", "-I", str(ROOT / "fastfeed"), str(ROOT / "fuzz" / f"{name}.c")]
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    for flags in (san, []):  # sanitizers if the toolchain has them
        r = subprocess.run([*base, *flags, "-o", str(exe)], capture_output=True, timeout=300)
        if r.returncode == 0:
            break
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # its own ASan runtime
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1"
    run = subprocess.run([str(exe), *args], capture_output=True, timeout=600, env=env)
    out = run.stdout.decode()
    assert run.returncode == 0, out + run.stderr.decode(errors="replace")
    return out


def test_level_reader_differential_fuzz(tmp_path: Path) -> None:
    """fuzz/levels_fuzz.c: _fastnum.h compiled on its own (ASan + UBSan when the compiler has
    them), a fixed-seed run of random levels in exact-size buffers; every level the window
    reader takes equals the number-by-number path and strtod() bit for bit."""
    out = run_fuzzer("levels_fuzz", tmp_path, "20261126", "300000")
    m = re.search(r"taken (\d+) refused (\d+)", out)
    if m is None:
        assert "no level reader" in out, out
        return
    taken, refused = map(int, m.groups())
    assert taken > 50_000 and refused > 50_000, out
