"""The benchmark corpus; the code lives in :mod:`fastfeed.bench.corpus` (so that
``fastfeed bench`` works from an installed wheel). This script and ``from corpus import ...``
in the benchmarks keep working::

    python benchmarks/corpus.py --n 100000 --seed 1 --out corpus.ffcorp
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if any((_ROOT / "fastfeed").glob("_engine*.so")) and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))  # the checkout's in-place build, as bench_engine.py does

from fastfeed.bench.corpus import (  # noqa: E402
    KINDS,
    MIX,
    SYMBOLS,
    Frame,
    corpus_stats,
    format_stats,
    load_corpus,
    main,
    make_corpus,
    save_corpus,
)

__all__ = [
    "KINDS",
    "MIX",
    "SYMBOLS",
    "Frame",
    "corpus_stats",
    "format_stats",
    "load_corpus",
    "main",
    "make_corpus",
    "save_corpus",
]

if __name__ == "__main__":
    sys.exit(main())
