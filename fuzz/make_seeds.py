"""Write seed inputs for fuzz/ffinflate_fuzz.c from the benchmark corpus.

Usage: python fuzz/make_seeds.py DIR [N]   (N frames of fastfeed.bench.corpus, default 400)

Each frame gives two seeds: its zlib bytes in raw mode (mode byte 0) and its JSON text in
structured mode (mode byte 1 and random zlib settings; see the harness's header comment).
"""

from __future__ import annotations

import hashlib
import os
import random
import sys

from fastfeed.bench.corpus import make_corpus


def main(argv: list[str]) -> int:
    out = argv[1]
    n = int(argv[2]) if len(argv) > 2 else 400
    os.makedirs(out, exist_ok=True)
    rng = random.Random(5)
    written = 0
    for f in make_corpus(n, seed=1):
        settings = bytes(rng.randrange(256) for _ in range(4))
        for data in (b"\x00" + f.zlib, b"\x01" + settings + b"\x00" + f.plain[:4000]):
            path = os.path.join(out, hashlib.sha1(data).hexdigest())
            if not os.path.exists(path):
                with open(path, "wb") as fh:
                    fh.write(data)
                written += 1
    print(f"{written} seeds written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
