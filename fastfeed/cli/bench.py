"""``fastfeed bench``: the side-by-side engine benchmark."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import _int_range
from .exitcodes import EXIT_OK, CommandError, FileError
from .registry import command

_BENCH_EPILOG = """\
Runs fastfeed.bench.engine (shipped in the package): fastfeed's inflate-only floor,
parse+apply and full pipeline beside zlib+json/orjson/msgspec dict-book clients, on one
seeded corpus, in interleaved rounds; prints ns/message, msgs/s, the ratios and their
targets. --quick takes a few seconds. Absolute numbers vary between machines and runs;
ratios from one run are what to compare.
"""


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small corpus (5000 frames), 3 rounds: a few seconds")
    p.add_argument(
        "--n", type=_int_range(1, 100_000_000), default=None, help="corpus frames (default 100000)"
    )
    p.add_argument("--rounds", type=_int_range(1, 1000), default=None, help="interleaved rounds (default 7)")
    p.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    p.add_argument(
        "--stat", choices=["min", "median"], default="min", help="statistic over rounds (default min)"
    )
    p.add_argument("--no-alloc", action="store_true", help="skip the allocation check")
    p.add_argument("--no-by-kind", action="store_true", help="skip the per-kind breakdown")
    p.add_argument("--json", metavar="OUT", default=None, help="also write the raw result as JSON")
    p.add_argument("--check", action="store_true", help="exit 1 if a target ratio is missed")


@command("bench", "run the side-by-side engine benchmark and print the table", epilog=_BENCH_EPILOG)(
    _bench_args
)
def _run_bench(args: argparse.Namespace) -> int:
    import json

    from ..bench import engine as bench

    base = bench.QUICK if args.quick else bench.DEFAULT
    n = args.n if args.n is not None else base["n"]
    rounds = args.rounds if args.rounds is not None else base["rounds"]

    def progress(msg: str) -> None:
        print(f"# {msg}", file=sys.stderr, flush=True)

    result = bench.run(
        n,
        args.seed,
        rounds,
        stat=args.stat,
        alloc_check=not args.no_alloc,
        by_kind=not args.no_by_kind,
        progress=progress,
    )
    print(bench.format_table(result), flush=True)
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(result, indent=2, default=str))
        except OSError as exc:
            raise FileError(f"cannot write {args.json}: {exc.strerror or exc}") from None
    if args.check:
        missed = [q["name"] for q in result["ratios"] if q["ok"] is False]
        if missed or result.get("problems"):
            raise CommandError("targets missed: " + ", ".join(missed) if missed else "sanity check failed")
    return EXIT_OK
