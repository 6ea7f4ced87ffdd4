"""The ``fastfeed`` command: argument errors, help, and ``python -m fastfeed exchange`` as a
real subprocess that a client talks to and that stops cleanly on SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import fastfeed.__main__
from fastfeed.cli import build_parser, main
from fastfeed.exchange import SimpleClient, auth_params

ROOT = Path(__file__).resolve().parents[1]


def test_console_entry_point_is_cli_main() -> None:
    assert fastfeed.__main__.main is main


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["exchange", "--rate", "fast"],
        ["exchange", "--port", "70000"],
        ["exchange", "--book-levels", "500"],
        ["exchange", "--account", "no-colon"],
        ["exchange", "--api-key", "k"],
        ["exchange", "--error-style", "xml"],
        ["exchange", "--capture-speed", "0"],
        ["exchange", "--symbols", "ÉTH_USDT"],
        ["exchange", "--idle-timeout", "-1"],
        ["exchange", "--max-age", "-5"],
        ["exchange", "--auth-window", "nan"],
        ["exchange", "--private-interval", "0"],
        ["exchange", "--all-ticker-interval", "-1"],
        ["exchange", "--rate", "inf"],
        ["exchange", "--compress-level", "12"],
        ["exchange", "--max-subscribe-symbols", "0"],
        ["exchange", "--trade-replay", "-1"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and lines[0].startswith("fastfeed")


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "exchange" in capsys.readouterr().out
    assert main(["exchange", "--help"]) == 0
    assert "--pregenerate" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("fastfeed ")
    assert "exchange" in build_parser().format_help()


def test_runtime_error_is_one_line_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["exchange", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastfeed exchange: error:")


def test_python_m_fastfeed_exchange_serves_and_stops_on_sigint() -> None:
    env = dict(os.environ, FASTFEED_API_KEY="envkey", FASTFEED_API_SECRET="envsecret")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastfeed",
            "exchange",
            "--port",
            "0",
            "--rate",
            "200",
            "--seed",
            "1",
            "--symbols",
            "BTC_USDT,eth_usdt",
            "--account",
            "k:s",
            "--text-replies",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once listening
        start = proc.stdout.readline()
        assert line.startswith("fastfeed exchange listening on ws://127.0.0.1:"), line
        url = line.split()[-1]
        assert url.endswith("/ws/v1/")

        async def talk() -> None:
            c = await SimpleClient.connect(url)
            try:
                assert (await c.ping())["result"] == "pong"
                assert c.frame_types == {"TEXT": 1}
                for key, secret in (("k", "s"), ("envkey", "envsecret")):
                    assert (await c.request("server.auth", auth_params(key, secret)))["error"] is None
                assert (await c.request("depth.subscribe", ["btc_usdt"]))["error"] is None
                await c.wait_for(lambda: len(c.pushes("depth.update", "BTC_USDT")) >= 3)
                rep = await c.request("depth.subscribe", ["SOL_USDT"])
                assert rep["error"]["code"] == 1
            finally:
                await c.close()

        asyncio.run(asyncio.wait_for(talk(), 120))  # hang guards only
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        # the seed and symbols were printed at start, a summary after Ctrl-C
        assert "seed 1" in start and "symbols BTC_USDT,ETH_USDT" in start, start
        assert "fastfeed exchange stopped after" in out and "1 connection(s)" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_every_exchange_config_field_has_a_flag() -> None:
    """The exchange's flags are generated from ExchangeConfig: each field has one, and the
    flags' defaults give ExchangeConfig's defaults (except the CLI's fixed default port)."""
    import dataclasses

    from fastfeed.cli.exchange import _exchange_config, config_flags
    from fastfeed.exchange import ExchangeConfig

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["exchange"]  # type: ignore[attr-defined]
    flags = {opt for a in sub._actions for opt in a.option_strings}
    fields = dataclasses.fields(ExchangeConfig)
    for f in fields:
        assert "--" + f.name.replace("_", "-") in flags, f.name
        assert f.metadata.get("help"), f"{f.name} has no help text"
    import argparse

    assert set(config_flags(argparse.ArgumentParser())) == {f.name for f in fields}
    args = parser.parse_args(["exchange"])
    cfg = _exchange_config(args)
    expected = ExchangeConfig(port=8765, accounts=cfg.accounts)  # accounts may come from the environment
    assert cfg == expected


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--rate", "max"], "rate", None),
        (["--rate", "0"], "rate", 0.0),
        (["--snapshot-interval", "0"], "snapshot_interval", None),
        (["--snapshot-interval", "off"], "snapshot_interval", None),
        (["--max-age", "30"], "max_connection_age", 30.0),
        (["--max-subscribe-symbols", "off"], "max_subscribe_symbols", None),
        (["--number-style", "padded"], "number_style", "padded"),
        (["--ticker-nested"], "ticker_nested", True),
        (["--no-capture-skip-replies"], "capture_skip_replies", False),
        (["--capture-keep-open"], "capture_close", False),
        (["--symbols", "btc_usdt", "eth_usdt,sol_usdt"], "symbols", ("BTC_USDT", "ETH_USDT", "SOL_USDT")),
        (["--account", "a:b", "--accounts", "c:d"], "accounts", {"a": "b", "c": "d"}),
        (["--compress-level", "1"], "compress_level", 1),
    ],
)
def test_exchange_flags_set_config_fields(
    argv: list[str], field: str, value: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastfeed.cli.exchange import _exchange_config

    monkeypatch.delenv("FASTFEED_API_KEY", raising=False)
    cfg = _exchange_config(build_parser().parse_args(["exchange", *argv]))
    assert getattr(cfg, field) == value


def test_exchange_missing_capture_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exchange", "--port", "0", "--capture", str(tmp_path / "missing.ffcap")]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastfeed exchange: error:") and "no such file" in err[0]
    (tmp_path / "junk.ffcap").write_bytes(b"not a capture at all")
    assert main(["exchange", "--port", "0", "--capture", str(tmp_path / "junk.ffcap")]) == 4
