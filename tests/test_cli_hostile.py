"""``fastfeed watch`` against a hostile or mistaken endpoint, run as a user runs it (a
subprocess, no terminal): server text with escape sequences never reaches the terminal raw
(issue 10, defect 9), and wss:// to a plain server is one line with a TLS hint, exit 3,
no "--- Logging error ---" and no traceback (defect 11). Also the command's log formatter."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from test_cli import HANG_GUARD, ctrl_c_after, ff, one_error_line, popen

from fastfeed import cli
from fastfeed.exchange import Exchange, ExchangeConfig

ESC = "\x1b[2J\x1b]0;pwned\x07\u202eevil\x9b"
RAW = ("\x1b", "\x07", "\u202e", "\x9b")


@contextmanager
def exchange_thread(setup: Callable[[Exchange], None] | None = None) -> Iterator[str]:
    """The bundled exchange on its own loop in a thread (the CLI under test is a
    subprocess); ``setup(ex)`` runs on that loop before the URL is handed out."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        ex = Exchange(ExchangeConfig(symbols=["BTC_USDT", "ETH_USDT"], seed=3, rate=200))
        await ex.start()
        try:
            if setup is not None:
                setup(ex)
            box["stop"] = stop = asyncio.Event()
            box["loop"] = asyncio.get_running_loop()
            box["url"] = ex.url
            ready.set()
            await stop.wait()
        finally:
            await ex.close()

    def main() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # pragma: no cover - reported below
            box["error"] = exc
            ready.set()

    t = threading.Thread(target=main, daemon=True)
    t.start()
    assert ready.wait(HANG_GUARD), "exchange did not start"
    assert "error" not in box, box.get("error")
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        t.join(HANG_GUARD)


def assert_clean(r: Any) -> None:
    for stream in (r.stdout, r.stderr):
        for c in RAW:
            assert c not in stream, (c, stream)
    assert "Logging error" not in r.stderr and "Traceback" not in r.stderr


def test_refusal_text_with_escape_sequences_is_escaped() -> None:
    def setup(ex: Exchange) -> None:
        def refuse(conn: Any, req_id: Any, params: list[Any]) -> None:
            ex._error(conn, req_id, 1, ESC)

        ex._handlers["depth.subscribe"] = refuse

    with exchange_thread(setup) as url:
        r = ff("watch", "BTC_USDT", "--url", url, "--seconds", "1", "--channels", "depth")
    assert r.returncode == 1, r.stdout + r.stderr
    line = one_error_line(r.stderr, "watch")
    assert "subscription refused" in line and "\\x1b[2J" in line
    assert_clean(r)


def test_close_reason_with_escape_sequences_is_escaped() -> None:
    def setup(ex: Exchange) -> None:
        real = ex._handlers["depth.subscribe"]

        def then_close(conn: Any, req_id: Any, params: list[Any]) -> None:
            real(conn, req_id, params)
            if not getattr(ex, "_closed_once", False):
                ex._closed_once = True  # type: ignore[attr-defined]
                asyncio.get_running_loop().call_later(0.2, conn.close, 4000, ESC)

        ex._handlers["depth.subscribe"] = then_close

    with exchange_thread(setup) as url:
        # waited for (not expected within a --seconds window), then Ctrl-C
        with popen("watch", "BTC_USDT", "--url", url, "--channels", "depth", "--interval", "0.5") as proc:
            text, err = ctrl_c_after(proc, lambda ln: "connection disconnected" in ln)
            r = subprocess.CompletedProcess(proc.args, proc.returncode, text, err)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "connection disconnected: closed by server (code 4000: \\x1b[2J" in r.stdout, r.stdout
    assert_clean(r)


def test_wss_to_a_plain_server_is_one_line_with_a_tls_hint() -> None:
    """The exchange (plain ws) waits 5 s for an HTTP request, then resets the connection;
    the client's TLS layer reports that through the event loop. Whether the first attempt
    fails before --connect-timeout or not, the one line carries the hint."""
    with exchange_thread() as url:
        wss = url.replace("ws://", "wss://")
        r = ff("watch", "BTC_USDT", "--url", wss, "--connect-timeout", "8")
    assert r.returncode == 3, r.stdout + r.stderr
    line = one_error_line(r.stderr, "watch")
    assert f"could not connect to {wss}" in line
    assert "TLS" in line and "ws:// URL" in line
    assert_clean(r)


# ---------------------------------------------------------------------------- log formatting
def _formatted(record: logging.LogRecord) -> str:
    buf = io.StringIO()
    h = logging.StreamHandler(buf)
    h.setFormatter(cli._SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    h.handle(record)
    return buf.getvalue()


def _record(msg: Any, args: Any = (), exc_info: Any = None) -> logging.LogRecord:
    return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_safe_formatter() -> None:
    out = _formatted(_record("server said %s", (ESC,)))
    assert out == "ERROR x: server said \\x1b[2J\\x1b]0;pwned\\x07\\u202eevil\\x9b\n"
    out = _formatted(_record("two %s %s", ("args-missing",)))  # a bad log call: shown, not a dump
    assert "bad log call" in out and out.count("\n") == 1
    out = _formatted(_record("multi\nline message"))
    assert out == "ERROR x: multi\\nline message\n"
    out = _formatted(_record("tls", exc_info=(type, ConnectionResetError, BaseException.__traceback__)))
    assert out.startswith("ERROR x: tls\n(unprintable exception")
    try:
        raise ValueError("real")
    except ValueError as exc:
        out = _formatted(_record("with traceback", exc_info=(ValueError, exc, exc.__traceback__)))
    assert "Traceback" in out and "ValueError: real" in out


def test_loop_exception_handler_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        cli._quiet_transport_errors(loop)
        with caplog.at_level(logging.DEBUG, logger="fastfeed.cli"):
            loop.call_exception_handler(
                {
                    "message": "SSL handshake failed\nprotocol: x",
                    "exception": ConnectionResetError,
                    "transport": object(),
                }
            )
            loop.call_exception_handler({"message": "other " + ESC, "exception": RuntimeError("boom")})

    asyncio.run(body())
    recs = [r for r in caplog.records if r.name == "fastfeed.cli"]
    assert [r.levelno for r in recs] == [logging.DEBUG, logging.ERROR]
    assert "ConnectionResetError" in recs[0].getMessage() and "\n" not in recs[0].getMessage()
    assert "boom" in recs[1].getMessage() and "\x1b" not in recs[1].getMessage()
