"""In-process checks of the ``fastfeed`` command's pieces: the parser and its help, the
logging flags, argument errors (exit 2, one line), and the view's histogram, formatting
and rendering (the subprocess tests are in test_cli.py)."""

from __future__ import annotations

import io
import logging
import math

import numpy as np
import pytest

from fastfeed import cli
from fastfeed.cli import build_parser, main
from fastfeed.live import (
    LogHistogram,
    Monitor,
    fmt_bytes,
    fmt_ns,
    fmt_num,
    plain_line,
    render,
    summary_lines,
)

COMMANDS = ["demo", "watch", "record", "replay", "export", "bench", "exchange"]


def test_help_lists_every_command_exit_codes_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"    {name} " in out
    for needle in (
        "exit status:",
        "bad arguments",
        "connection failure",
        "bad file",
        "130",
        "FASTFEED_API_KEY",
        "FASTFEED_API_SECRET",
        "FASTFEED_URL",
        "-v, --verbose",
        "-q, --quiet",
    ):
        assert needle in out, needle


@pytest.mark.parametrize(
    "name, flags",
    [
        ("demo", ["--seconds", "--symbols", "--rate", "--depth", "--book", "--plain", "--drop-every"]),
        (
            "watch",
            ["SYMBOL", "--url", "--depth", "--orders", "--balance", "--connect-timeout", "FASTFEED_API_KEY"],
        ),
        (
            "record",
            ["SYMBOL", "-o FILE", "--seconds", "--url", "--demo", "--force", "--append", "--max-messages"],
        ),
        ("replay", ["FILE", "--speed X|max", "--depth", "--progress"]),
        ("export", ["FILE", "--to {npz,parquet,csv}", "-o OUT", "--what", "--symbols", "pyarrow"]),
        ("bench", ["--quick", "--rounds", "--json", "--check"]),
        ("exchange", ["--port", "--rate", "--capture"]),
    ],
)
def test_each_command_documents_its_flags(
    name: str, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    for flag in flags:
        assert flag in out, flag
    assert "-v, --verbose" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--rate", "fast"],
        ["demo", "--seconds", "0"],
        ["demo", "--depth", "0"],
        ["demo", "--channels", "depth,nope"],
        ["demo", "--symbols", "ÉTH_USDT"],
        ["watch"],
        ["watch", "BTC_USDT", "--url", "https://example.com/"],
        ["record", "BTC_USDT", "-o", "x", "--force", "--append"],
        ["record", "BTC_USDT", "-o", "x", "--demo", "--url", "ws://127.0.0.1:1/"],
        ["replay"],
        ["replay", "x", "--speed", "0"],
        ["export", "x", "--to", "npz", "--what", "trades", "-o", "x.npz"],
        ["export", "x", "--to", "xlsx", "-o", "x"],
        ["bench", "--rounds", "0"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FASTFEED_URL", raising=False)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and lines[0].startswith("fastfeed")


def test_private_channels_without_keys_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FASTFEED_API_KEY", raising=False)
    monkeypatch.setenv("FASTFEED_API_SECRET", "s")
    assert main(["watch", "BTC_USDT", "--balance", "USDT", "--url", "ws://127.0.0.1:1/"]) == 2
    assert "needs FASTFEED_API_KEY and FASTFEED_API_SECRET" in capsys.readouterr().err


def test_bad_fastfeed_url_in_the_environment_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTFEED_URL", "http://nope")
    assert main(["watch", "BTC_USDT"]) == 2
    assert "FASTFEED_URL" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, level",
    [
        ([], logging.WARNING),
        (["-v"], logging.INFO),
        (["-vv"], logging.DEBUG),
        (["-q"], logging.ERROR),
        (["-qq"], logging.CRITICAL),
        (["--log-level", "INFO"], logging.INFO),
    ],
)
def test_verbosity_flags_set_stdlib_logging(flags: list[str], level: int) -> None:
    args = build_parser().parse_args(["replay", "x", *flags])
    assert cli._log_level(args) == level
    args = build_parser().parse_args([*flags, "replay", "x"])  # before the command too
    assert cli._log_level(args) == level


def test_symbol_lists_accept_spaces_and_commas() -> None:
    assert cli._symbol_list(["btc_usdt,ETH_USDT", "eth_usdt", " sol_usdt "]) == [
        "BTC_USDT",
        "ETH_USDT",
        "SOL_USDT",
    ]
    with pytest.raises(cli.UsageError):
        cli._symbol_list(["BTC\x7fUSDT"])
    for bad in ("ÉTH_USDT", "BTC_USDT٣", "X" * 33):  # non-ASCII letters/digits, too long: the client's rule
        with pytest.raises(cli.UsageError):
            cli._symbol_list([bad])


# ---------------------------------------------------------------------------- view
def test_log_histogram_percentiles_match_numpy_to_the_bin_width() -> None:
    rng = np.random.default_rng(1)
    print("seed 1")
    v = rng.lognormal(mean=9, sigma=1.2, size=50_000).astype(np.int64) + 1
    h = LogHistogram()
    h.add(v[:20_000])
    h.add(v[20_000:])
    h.add(np.array([0, -5], dtype=np.int64))
    assert h.n == len(v) and h.nonpositive == 2
    for q in (50, 90, 99, 99.9):
        exact = float(np.percentile(v, q))
        assert abs(h.percentile(q) / exact - 1) < 0.03, q
    assert h.max == v.max() and h.min == v.min()
    assert math.isclose(h.mean, v.mean())
    assert math.isnan(LogHistogram().percentile(50))


def test_formatting() -> None:
    assert fmt_ns(850) == "850 ns"
    assert fmt_ns(12_345) == "12.3 us"
    assert fmt_ns(1_234_000, "µs") == "1.23 ms"
    assert fmt_ns(2.5e9) == "2.50 s"
    assert fmt_ns(float("nan")) == "-"
    assert fmt_bytes(512) == "512 B" and fmt_bytes(12_300) == "12.30 kB" and fmt_bytes(4.56e6) == "4.56 MB"
    assert fmt_num(0.1 + 0.2) == "0.3" and fmt_num(60000.5) == "60000.5" and fmt_num(1.5, 3) == "1.500"
    assert fmt_num(1.734e-05) == "0.00001734"


def test_views_render_before_any_data() -> None:
    """The live view, the plain line and the summary all cope with a monitor that has not
    seen a feed yet (the first frame on screen is drawn before connecting)."""
    m = Monitor(["BTC_USDT"], title="fastfeed demo", url="ws://127.0.0.1:1/")
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=100).print(render(m))
    assert "BTC_USDT book" in buf.getvalue() and "keys:" in buf.getvalue()
    assert "msg/s" in plain_line(m)
    text = "\n".join(summary_lines(m))
    assert "fastfeed demo:" in text and "(no books)" in text


def test_parquet_without_pyarrow_is_a_clear_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = cli.importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "pyarrow" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(cli.importlib.util, "find_spec", find_spec)
    assert main(["export", "x.ffcap", "--to", "parquet", "-o", "out.parquet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--to parquet needs pyarrow" in err[0] and "pip install pyarrow" in err[0]


def test_summary_shows_rejected_pushes_and_errors_escaped() -> None:
    feed_stats = {
        "engine": {},
        "connects": 1,
        "bad_pushes": {"bad_symbol": 3},
        "callback_errors": 2,
        "supervisor_errors": 1,
        "last_error": "RuntimeError: \x1b[2Jboom",
        "last_disconnect_reason": "closed by server (code 4000: \x1b]0;x\x07)",
    }

    m = Monitor(["BTC_USDT"])
    m._stats = feed_stats
    text = "\n".join(summary_lines(m))
    assert "rejected push records  bad_symbol 3  callback errors 2  supervisor errors 1" in text
    assert "\x1b" not in text and "\x07" not in text and "\\x1b[2Jboom" in text


def test_cli_channels_are_one_list_each_with_a_feed_method() -> None:
    """--channels of demo, watch and record all offer cli.CHANNELS, and the live loop
    subscribes each through Feed.subscribe_<name>."""
    from fastfeed import Feed

    for ch in cli.CHANNELS:
        assert callable(getattr(Feed, f"subscribe_{ch}", None)), ch
    for argv in (["demo"], ["watch", "BTC_USDT"], ["record", "BTC_USDT", "-o", "x.ffcap"]):
        assert build_parser().parse_args(argv).channels == list(cli.CHANNELS)


def test_cli_and_library_share_the_symbol_rule() -> None:
    """One symbol rule: what the client's subscribe_* accepts, every command accepts."""
    from fastfeed.protocol import validate_symbols

    for name in ("BTC_USDT", "BTC/USDT", "1INCH-USDT", "X" * 32, "a.b"):
        assert cli._symbol_list([name]) == validate_symbols([name])
    for bad in ("ÉTH_USDT", "X" * 33, "BTC\x7fUSDT"):
        with pytest.raises(ValueError):
            validate_symbols([bad])
        with pytest.raises(cli.UsageError):
            cli._symbol_list([bad])
