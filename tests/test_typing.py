"""A user's script type-checks against the package as installed: mypy --strict, with no
expression of type ``Any`` in the user's own code, accepts a typical script, and rejects a
misspelt ``connect()`` option, a wrongly typed one, a misspelt ``Engine`` argument and a
write to a read-only engine attribute, each with mypy's usual message.

Skipped only when mypy is not installed (``pip install -e '.[lint]'``; CI installs it).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import site
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

import fastfeed
from fastfeed.client import Feed, FeedOptions, FeedOptionsKwargs

GOOD = """
from __future__ import annotations

import numpy as np
import numpy.typing as npt

import fastfeed
from fastfeed import Book, ConnectionEvent, Engine, Feed, Ticker, TradeRing


def on_ticker(t: Ticker) -> None:
    print(t.symbol)


def on_event(ev: ConnectionEvent) -> None:
    print(ev.kind, ev.reason)


async def live() -> None:
    async with fastfeed.connect("ws://127.0.0.1:1/ws/v1/", depth=20, request_timeout=5.0,
                                data_timeout=None, on_ticker=on_ticker,
                                on_event=on_event) as feed:
        f: Feed = feed
        book: Book = f.book("BTC_USDT")
        bids: npt.NDArray[np.float64] = book.bids
        best: float = book.best_bid
        live: bool = book.live
        ring: TradeRing = f.trades
        rows: npt.NDArray[np.void] = ring.latest(10)
        n: int = ring.count
        print(bids, best, live, rows, n)


def offline() -> None:
    with Engine(depth=20, trade_capacity=1024) as eng:
        eng.feed(b'{"method":"server.ping","params":[],"id":1}', 0)
        depth: int = eng.depth
        book = eng.book("BTC_USDT", create=True)
        version: int = book.version
        symbols: list[str] = eng.symbols
        print(depth, version, symbols, eng.trades.capacity)


reveal_type(fastfeed.connect)
reveal_type(Engine.book)
reveal_type(Feed.book)
reveal_type(Feed.trades)
reveal_type(TradeRing.latest)
"""

BAD = """
import fastfeed
from fastfeed import Engine

feed = fastfeed.connect("ws://127.0.0.1:1/ws/v1/", depht=20)
feed2 = fastfeed.connect(depth="20")
eng = Engine(dpeth=20)
eng.depth = 5
"""

CONFIG = """
[mypy]
strict = True
disallow_any_expr = True
warn_unused_configs = True

[mypy-fastfeed.*]
# the package itself is checked by CI's own mypy step (pyproject.toml); here only what a
# user's script sees of it counts
ignore_errors = True
"""


def _mypy_env() -> dict[str, str]:
    """The environment for a mypy run that finds ``fastfeed`` where Python imports it from.

    An editable install (setuptools' import hook) and CI's in-place debug/ASan copies are
    invisible to mypy's search of site-packages: point MYPYPATH at the directory holding the
    imported package, unless that is site-packages itself (a wheel install, found as is)."""
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    root = Path(fastfeed.__file__).resolve().parent.parent
    site_dirs = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if root not in site_dirs:
        env["MYPYPATH"] = str(root)
    return env


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy's messages per script, from one run over both (one cache, one start-up)."""
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[lint]')")
    d = tmp_path_factory.mktemp("typing")
    (d / "good.py").write_text(textwrap.dedent(GOOD))
    (d / "bad.py").write_text(textwrap.dedent(BAD))
    (d / "mypy.ini").write_text(CONFIG)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            str(d / "cache"),
            "--no-error-summary",
            "--hide-error-context",
            "good.py",
            "bad.py",
        ],
        cwd=d,
        env=_mypy_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode in (0, 1), f"mypy crashed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    out: dict[str, list[str]] = {"good.py": [], "bad.py": []}
    for line in proc.stdout.splitlines():
        name = line.split(":", 1)[0]
        assert name in out, f"mypy reported on a file other than the scripts:\n{proc.stdout}"
        out[name].append(line)
    return out


def test_good_script_is_clean_and_typed(mypy_output: dict[str, list[str]]) -> None:
    errors = [m for m in mypy_output["good.py"] if ": error:" in m]
    assert errors == [], "\n".join(mypy_output["good.py"])
    revealed = [m.split("Revealed type is ", 1)[1] for m in mypy_output["good.py"] if "Revealed type is" in m]
    assert len(revealed) == 5, mypy_output["good.py"]
    connect_t, engine_book_t, feed_book_t, feed_trades_t, latest_t = revealed
    for t in revealed:  # numpy arrays have an unspecified shape; nothing else may be Any
        assert "Any" not in t.replace("ndarray[tuple[Any, ...],", "ndarray[<shape>,"), t
    assert "**options: **TypedDict(fastfeed.client.FeedOptionsKwargs" in connect_t
    assert "'depth'?: int" in connect_t
    assert connect_t.endswith('-> fastfeed.client.Feed"')
    assert engine_book_t.endswith('-> fastfeed._book.Book"')
    assert feed_book_t.endswith('-> fastfeed._book.Book"')
    assert feed_trades_t.endswith('-> fastfeed._ring.TradeRing"')
    assert "numpy.void" in latest_t


def test_misspelt_and_mistyped_options_are_type_errors(mypy_output: dict[str, list[str]]) -> None:
    errors = {int(m.split(":")[1]): m for m in mypy_output["bad.py"] if ": error:" in m}
    assert set(errors) == {5, 6, 7, 8}, "\n".join(mypy_output["bad.py"])
    assert re.search(r'Unexpected keyword argument "depht" for "connect".*\[call-arg\]', errors[5])
    assert re.search(r'Argument "depth" to "connect" has incompatible type "str"; expected "int"', errors[6])
    assert re.search(r'Unexpected keyword argument "dpeth" for "Engine".*\[call-arg\]', errors[7])
    assert re.search(r'Property "depth" defined in "Engine" is read-only', errors[8])


def test_misspelt_option_fails_at_run_time_too() -> None:
    with pytest.raises(TypeError, match=r"unknown option.*depht"):
        fastfeed.connect("ws://127.0.0.1:1/ws/v1/", depht=20)  # type: ignore[call-arg]


def test_connect_kwargs_typeddict_matches_options_and_callbacks() -> None:
    """FeedOptionsKwargs is written out by hand (type checkers need it static): it must name
    exactly the FeedOptions fields plus Feed's keyword-only callbacks, with the same types."""
    hints = typing.get_type_hints(FeedOptionsKwargs)
    option_hints = typing.get_type_hints(FeedOptions)
    init_hints = typing.get_type_hints(Feed.__init__)
    callbacks = [
        p.name
        for p in inspect.signature(Feed.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "options"
    ]
    assert set(hints) == {f.name for f in dataclasses.fields(FeedOptions)} | set(callbacks)
    assert not FeedOptionsKwargs.__total__
    for name, t in hints.items():
        assert t == (option_hints[name] if name in option_hints else init_hints[name]), name
