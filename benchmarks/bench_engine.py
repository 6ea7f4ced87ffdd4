"""Side-by-side benchmark of fastfeed against the floor and typical Python clients: the code
is :mod:`fastfeed.bench.engine` (what ``fastfeed bench`` runs, so that it works from an
installed wheel); this script runs it on the checkout it belongs to.

    python benchmarks/bench_engine.py                  # default: --n 100000 --rounds 7
    python benchmarks/bench_engine.py --quick          # small corpus, few rounds (< 15 s)
    python benchmarks/bench_engine.py --json out.json  # also write the raw result
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# numpy's OpenBLAS starts worker threads that busy-wait; nothing here uses BLAS, and on a
# 2-core machine a spinning thread would steal time from the contestants.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
# Benchmark the checkout this file belongs to when its extensions are built in place
# (`python setup.py build_ext --inplace`); otherwise whatever `import fastfeed` finds.
if any((_ROOT / "fastfeed").glob("_engine*.so")) or importlib.util.find_spec("fastfeed") is None:
    sys.path.insert(0, str(_ROOT))

from fastfeed.bench.engine import *  # noqa: E402,F403
from fastfeed.bench.engine import ENGINE_KW, main, make_dict_client  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
