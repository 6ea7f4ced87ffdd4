"""Benchmark code shipped with the package, so ``fastfeed bench`` runs from an installed wheel.

* :mod:`fastfeed.bench.corpus` - the seeded, realistic DigiFinex v1 message corpus;
* :mod:`fastfeed.bench.engine` - the side-by-side engine benchmark (``run``,
  ``format_table``) that ``fastfeed bench`` prints.

The scripts in the repository's ``benchmarks/`` directory (live, shared-memory, soak
benchmarks, pytest-benchmark) import from here.
"""
