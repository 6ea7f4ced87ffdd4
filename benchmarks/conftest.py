"""pytest configuration for the opt-in benchmark suite (``pytest benchmarks/ --benchmark-only``).

Not part of the default test run: pyproject.toml sets ``testpaths = ["tests"]``. The
project's ``filterwarnings = error`` and ``--strict-markers`` apply here too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

# Importing bench_engine puts this checkout on sys.path when its extensions are built in
# place, the same way the standalone script benchmarks it.
import bench_engine  # noqa: E402,F401
from corpus import Frame, make_corpus  # noqa: E402

SEED = 1


@pytest.fixture(scope="session")
def corpus() -> list[Frame]:
    """A small seeded corpus; its first 10 frames are one snapshot per symbol."""
    print(f"\nbenchmark corpus: make_corpus(5000, seed={SEED})")
    return make_corpus(5000, seed=SEED)
