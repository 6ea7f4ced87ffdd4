"""Coverage-guided fuzzing of inflate + parse + apply with atheris (libFuzzer for Python).

Run (atheris is not a test dependency: ``pip install atheris`` first)::

    python tests/test_fuzz_atheris.py -max_total_time=600          # corpus in $TMPDIR
    python tests/test_fuzz_atheris.py CORPUS_DIR -max_total_time=3600 -jobs=2

Each input is decoded by ``payloads_of`` into engine settings (depth, max_frame, inflate
backend, encoding) and up to four payloads, fed to a fresh compiled/reference engine pair
through ``test_fuzz.Pair``: the same properties as the hypothesis fuzzer (no crash, no hang,
typed and counted rejections that change nothing, book/ring invariants, compiled ==
reference after every payload). A violated property raises, and libFuzzer writes the input
to ``crash-<sha1>`` (replay: ``python tests/test_fuzz_atheris.py crash-<sha1>``).

Coverage guidance: atheris instruments the Python modules of ``fastfeed`` (the reference
engine, which mirrors every rule branch by branch, the JSON fallback and the errors;
``FASTFEED_ATHERIS_INSTRUMENT`` lists other module prefixes); the compiled extensions are not instrumented (that needs clang's
``-fsanitize=fuzzer-no-link`` and an ASan+libFuzzer runtime that atheris' wheel does not
ship), they are checked differentially on every input. The seed corpus is written from
``test_fuzz.SEEDS`` and a libFuzzer dictionary of the protocol's tokens is passed by default.

Under pytest this module only runs the target on the seed corpus and on a few thousand
deterministic pseudo-random inputs (no atheris needed), so the harness cannot rot.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

try:  # this file is also a script (the atheris harness), run without pytest
    import pytest
except ImportError:  # pragma: no cover
    pass
else:
    #: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
    pytestmark = pytest.mark.native


HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # run as a script: import the test helpers, and fastfeed from this
    sys.path.insert(0, str(HERE))  # checkout unless PYTHONPATH or an install provide it
    sys.path.append(str(HERE.parent))

#: Separates payloads inside one fuzz input.
SEP = b"\x00\xfe\x00"
DEPTHS = (1, 2, 3, 5, 8, 200)
MAX_FRAMES = (600, 4096, 1 << 16, 8 << 20)
ENCODINGS = ("plain", "zlib", "str", "raw", "zlib-bytearray", "memoryview")

#: libFuzzer dictionary: the protocol's tokens and the edges of the number rules.
DICTIONARY = [
    b'"method"',
    b'"params"',
    b'"id"',
    b'"asks"',
    b'"bids"',
    b'"price"',
    b'"amount"',
    b'"time"',
    b'"type"',
    b'"buy"',
    b'"sell"',
    b'"depth.update"',
    b'"trades.update"',
    b'"ticker.update"',
    b'"result"',
    b'"error"',
    b"null",
    b"true",
    b"false",
    b'"BTC_USDT"',
    b"\\u0000",
    b"\\ud800",
    b"1e308",
    b"1e309",
    b"-0",
    b"9223372036854775807",
    b"9223372036854775808",
    b"NaN",
    b"Infinity",
    b"\x78\x9c",
    b"\x78\xda",
    b"\x78\x01",
]


def payloads_of(data: bytes) -> tuple[dict[str, Any], list[Any]]:
    """Decode one fuzz input: 2 setting bytes, then payload texts separated by ``SEP``."""
    from fastfeed._inflate import BACKENDS

    if len(data) < 2:
        return {}, []
    b0, b1 = data[0], data[1]
    settings = {
        "depth": DEPTHS[b1 % len(DEPTHS)],
        "max_frame": MAX_FRAMES[(b1 // len(DEPTHS)) % len(MAX_FRAMES)],
        "backend": BACKENDS[(b1 // 24) % len(BACKENDS)],
        "capacity": 16,
    }
    enc = ENCODINGS[b0 % len(ENCODINGS)]
    out: list[Any] = []
    for text in data[2:].split(SEP)[:4]:
        if enc == "plain":
            out.append(text)
        elif enc == "zlib":
            out.append(zlib.compress(text))
        elif enc == "str":
            out.append(text.decode("utf-8", "surrogateescape"))
        elif enc == "raw":  # the fuzzer mutates compressed bytes directly
            out.append(text)
        elif enc == "zlib-bytearray":
            out.append(bytearray(zlib.compress(text)))
        else:
            out.append(memoryview(bytearray(text)))
    return settings, out


def fuzz_one_input(data: bytes) -> None:
    """The fuzz target: every property of ``test_fuzz.Pair.feed`` on every payload."""
    from test_fuzz import KnownBug, Pair

    settings, payloads = payloads_of(data)
    if not payloads:
        return
    pair = Pair(**settings)
    for payload in payloads:
        try:
            pair.feed(payload)
        except KnownBug:
            return


def seed_corpus() -> list[bytes]:
    """Seed inputs: every seed frame, plain and as raw zlib bytes, and a few streams."""
    from test_fuzz import SEEDS

    out = []
    for i, text in enumerate(SEEDS):
        out.append(bytes([1, i % 48]) + text)  # zlib-compressed by the harness
        out.append(bytes([3, (i * 7) % 48]) + zlib.compress(text))  # raw compressed bytes
        out.append(bytes([2, 50 + i]) + text)  # str
    out.append(bytes([1, 3]) + SEP.join(SEEDS[:4]))
    return out


def test_seed_corpus_passes_the_target() -> None:
    for data in seed_corpus():
        fuzz_one_input(data)


def test_target_on_pseudo_random_inputs() -> None:
    """The target on deterministic byte-level mutations of the seed corpus (a libFuzzer-like
    smoke run without atheris)."""
    rng = random.Random(2024)
    corpus = seed_corpus()
    for _ in range(1500):
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            pos = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
            elif op == 1:
                data[pos:pos] = rng.choice(DICTIONARY)
            elif op == 2:
                del data[pos : pos + rng.randint(1, 8)]
            else:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        fuzz_one_input(bytes(data))


def main(argv: list[str]) -> None:
    import atheris

    # Only fastfeed's Python modules: instrumenting the oracle's helpers too (numpy-heavy
    # snapshots) made libFuzzer's RSS grow ~13 KiB per input, out of memory within an hour.
    include = os.environ.get("FASTFEED_ATHERIS_INSTRUMENT", "fastfeed").split(",")
    with atheris.instrument_imports(include=[m for m in include if m]):
        import test_fuzz  # noqa: F401

        import fastfeed.reference  # noqa: F401

    args = list(argv)
    if not any(not a.startswith("-") for a in args[1:]):  # no corpus dir: use one in $TMPDIR
        corpus = Path(tempfile.gettempdir()) / "fastfeed-atheris-corpus"
        corpus.mkdir(exist_ok=True)
        args.append(str(corpus))
    for a in args[1:]:
        if not a.startswith("-") and Path(a).is_dir() and not any(Path(a).iterdir()):
            for i, data in enumerate(seed_corpus()):
                (Path(a) / f"seed-{i:03d}").write_bytes(data)
    if not any(a.startswith("-dict=") for a in args):
        dict_path = Path(tempfile.gettempdir()) / "fastfeed-atheris.dict"
        lines = ['"' + "".join("\\x%02x" % b for b in tok) + '"\n' for tok in DICTIONARY]
        dict_path.write_text("".join(lines))
        args.append(f"-dict={dict_path}")
    atheris.Setup(args, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
