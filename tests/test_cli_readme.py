"""What a new user meets first: README install commands with extras that exist and work as
written, a table saying which feature needs which extra, ``await fastfeed.connect(url)``,
the thread runner of the local exchange, and one ``--symbols`` rule in every command."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import fastfeed
from fastfeed.cli import UsageError, _symbol_list, build_parser
from fastfeed.exchange import Exchange, ExchangeConfig, ThreadedExchange

from helpers import run_guarded

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _extras() -> dict[str, list[str]]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["optional-dependencies"]


def test_readme_pip_commands_name_existing_extras_in_a_form_that_installs() -> None:
    readme = (ROOT / "README.md").read_text()
    extras = _extras()
    commands = re.findall(r"pip install[^`\n]*", readme)
    assert commands
    for cmd in commands:
        for spec in re.findall(r"\S*\[[^\]]*\]\S*", cmd):
            # quoted (zsh would expand bare brackets) and installable from a clone (".[x]"),
            # not "fastfeed[x]" (a PyPI name this project does not publish)
            assert re.fullmatch(r"'\.\[[a-z,]+\]'", spec) or spec == "'.[EXTRA]'", cmd
            names = spec.strip("'.[]").split(",")
            assert spec == "'.[EXTRA]'" or set(names) <= set(extras), cmd


def test_readme_says_which_feature_needs_which_extra() -> None:
    readme = (ROOT / "README.md").read_text()
    table = {
        m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z]+)` \| [^|]+ \| ([^\n]+) \|$", readme, re.M)
    }
    assert set(_extras()) <= set(table), set(_extras()) - set(table)
    assert "to_pandas" in table["pandas"] and "parquet" in table["parquet"]


def test_await_connect_connects_and_close_is_documented() -> None:
    async def go() -> None:
        async with Exchange(ExchangeConfig(rate=0, seed=1, symbols=["BTC_USDT"])) as ex:
            feed = await fastfeed.connect(ex.url, connect_timeout=30)
            try:
                assert feed.connected
                assert (await feed.ping()) is not None
            finally:
                await feed.close()
            assert feed.closed

    run_guarded(go)
    assert "await feed.close()" in (fastfeed.connect.__doc__ or "")
    assert "feed = await" in (fastfeed.connect.__doc__ or "")


def test_threaded_exchange_serves_from_its_thread_and_reraises_start_errors(tmp_path: Path) -> None:
    with ThreadedExchange(ExchangeConfig(rate=0, seed=3, symbols=["BTC_USDT"])) as ex:
        assert ex.url.startswith("ws://127.0.0.1:") and ex.seed == 3

        async def ping() -> None:
            feed = await fastfeed.connect(ex.url, connect_timeout=30)
            try:
                assert await feed.ping() is not None
            finally:
                await feed.close()

        run_guarded(ping)
    with pytest.raises(OSError):  # the capture cannot be read: the error as raised
        ThreadedExchange(ExchangeConfig(capture=tmp_path / "missing.ffcap")).start()


@pytest.mark.parametrize(
    "values",
    [
        ["BTC_USDT", "ETH_USDT"],
        ["btc_usdt,eth_usdt"],
        ["BTC_USDT eth_usdt"],
        ["BTC_USDT, ETH_USDT", "btc_usdt"],
    ],
)
def test_one_symbols_rule(values: list[str]) -> None:
    assert _symbol_list(values) == ["BTC_USDT", "ETH_USDT"]


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--symbols", "{}"],
        ["watch", "{}"],
        ["record", "{}", "-o", "x.ffcap"],
        ["export", "x.ffcap", "-o", "x.csv", "--symbols", "{}"],
        ["exchange", "--symbols", "{}"],
    ],
)
def test_every_command_takes_the_same_symbols_form(argv: list[str]) -> None:
    """The same spellings parse in every command (all go through _symbol_list)."""
    for form in (["BTC_USDT", "ETH_USDT"], ["BTC_USDT,ETH_USDT"], ["btc_usdt eth_usdt"]):
        i = argv.index("{}")
        args = build_parser().parse_args(argv[:i] + form + argv[i + 1 :])
        raw = args.symbols if hasattr(args, "symbols") else args.cfg_symbols
        assert _symbol_list(raw) == ["BTC_USDT", "ETH_USDT"], (argv, form)
    with pytest.raises(UsageError):
        _symbol_list(["ÉTH_USDT"])
