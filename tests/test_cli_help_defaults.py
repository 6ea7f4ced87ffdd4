"""What `fastfeed COMMAND --help` says a default is, is what the command does; a refused
symbol says the rule it broke."""

from __future__ import annotations

import argparse
import re

import pytest

from fastfeed.cli import build_parser


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["demo", "watch", "record", "publish"])
def test_channels_help_names_the_default_in_its_order(command: str) -> None:
    p = _subparser(command)
    action = next(a for a in p._actions if "--channels" in a.option_strings)
    m = re.search(r"\(default ([a-z_,]+)\)", action.help or "")
    assert m, action.help
    assert m.group(1).split(",") == list(action.default)
    # and the parsed default is that list
    argv = ["--nats", "nats://127.0.0.1:4222"] if command == "publish" else []
    argv += [] if command == "demo" else ["BTC_USDT"]
    argv += ["-o", "x.ffcap"] if command == "record" else []
    assert p.parse_args(argv).channels == m.group(1).split(",")


@pytest.mark.parametrize(
    ("name", "why"),
    [("A" * 33, "33 characters, at most 32"), ("ÉTH_USDT", "only printable ASCII characters, no spaces")],
)
def test_a_refused_symbol_says_the_rule(name: str, why: str) -> None:
    from fastfeed.cli import UsageError, _symbol_list

    with pytest.raises(UsageError) as ei:
        _symbol_list([name])
    assert str(ei.value) == f"invalid symbol {name!r} ({why})"


def test_exchange_config_refused_symbol_says_the_rule() -> None:
    from fastfeed.exchange import ExchangeConfig

    with pytest.raises(
        ValueError, match=r"invalid symbol 'A B' \(1-32 printable ASCII characters without spaces\)"
    ):
        ExchangeConfig(symbols=["A B"])
