"""Every inflate backend compiled into this build gives the same output and the same
rejection reasons (zlib is always there; libdeflate when the build found it)."""

from __future__ import annotations

import os
import random
import zlib

import pytest

from fastfeed._inflate import BACKENDS, Inflater
from fastfeed.errors import FastfeedError


#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

SEED = 1234


def _cases() -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    text = b'{"method":"depth.update","params":[false,{"asks":[["1.5","2"]],"bids":[]},"BTC_USDT"],"id":null}'
    big = bytes(rng.getrandbits(8) for _ in range(200_000))  # incompressible: buffer growth
    good = [text, b"", b"x" * 70_000, big, os.urandom(10)]
    cases = [(f"good{i}", zlib.compress(g, rng.choice([1, 6, 9]))) for i, g in enumerate(good)]
    z = zlib.compress(text)
    cases += [
        ("empty", b""),
        ("header_only", z[:2]),
        ("bad_header", b"\x78\x00" + z[2:]),
        ("bad_adler", z[:-1] + bytes([z[-1] ^ 0xFF])),
        ("trailing", z + b"\x00"),
        ("two_streams", z + z),
        ("raw_deflate", zlib.compress(text)[2:-4]),
        ("garbage", b"\xff" + os.urandom(40)),
        ("too_large", zlib.compress(b"\x00" * (3 << 20))),
        ("too_large_corrupt_tail", zlib.compress(b"\x00" * (3 << 20))[:-3] + b"\x00\x00\x00"),
    ]
    for cut in (3, 5, len(z) // 2, len(z) - 4, len(z) - 1):
        cases.append((f"truncated{cut}", z[:cut]))
    for i in range(40):  # random bit flips
        b = bytearray(z)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        cases.append((f"flip{i}", bytes(b)))
    return cases


CASES = _cases()


def _outcome(backend: str, data: bytes) -> tuple[str, bytes]:
    inf = Inflater(2 << 20, backend=backend)
    try:
        return "ok", inf.inflate(data)
    except FastfeedError as exc:
        return exc.reason, b""


def test_zlib_is_always_built() -> None:
    assert "zlib" in BACKENDS
    assert Inflater(backend="zlib").backend == "zlib"
    with pytest.raises(ValueError):
        Inflater(backend="no-such-backend")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,data", CASES, ids=[c[0] for c in CASES])
def test_backend_matches_zlib(backend: str, name: str, data: bytes) -> None:
    got = _outcome(backend, data)
    want = _outcome("zlib", data)
    assert got[0] == want[0], f"{backend} says {got[0]}, zlib says {want[0]}"
    assert got[1] == want[1]
    if want[0] == "ok":
        assert got[1] == zlib.decompress(data)
    if name.startswith("good"):
        assert want[0] == "ok"
    if name.startswith("too_large"):
        assert want[0] == "too_large"


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_buffer_never_exceeds_cap(backend: str) -> None:
    inf = Inflater(1 << 20, backend=backend)
    with pytest.raises(FastfeedError):
        inf.inflate(zlib.compress(b"\x00" * (64 << 20)))
    assert inf.buffer_size <= (1 << 20) + 1
    assert inf.rejected == 1 and inf.frames == 1
