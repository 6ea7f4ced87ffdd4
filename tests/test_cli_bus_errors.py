"""``fastfeed publish`` / ``archive`` and the bus library against an unreachable NATS server
or a bad output path: one line on stderr (no traceback from nats-py's default error
handler), the documented exit status, and the reason the connection failed (not a bare
``TimeoutError``)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from test_cli import ff

from fastfeed import bus
from fastfeed.archive import archive
from fastfeed.errors import BusError

pytest.importorskip("nats")


def _refusing_url() -> str:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    return f"nats://127.0.0.1:{port}"


def _one_error_line(stderr: str, command: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"fastfeed {command}: error: cannot connect to NATS at nats://127.0.0.1:")
    return lines[0]


def test_archive_unreachable_nats_is_one_line_exit_3(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    r = ff("archive", "--nats", _refusing_url(), "-o", str(tmp_path / "ds" / "sub"), "--idle-exit", "1")
    assert r.returncode == 3, r.stderr
    assert "ConnectionRefusedError" in _one_error_line(r.stderr, "archive")
    assert not (tmp_path / "ds").exists()  # the directory is made only once connected


def test_publish_unreachable_nats_names_the_refusal() -> None:
    r = ff("publish", "BTC_USDT", "--nats", _refusing_url(), "--demo", "--seconds", "1")
    assert r.returncode == 3, r.stderr
    assert "ConnectionRefusedError" in _one_error_line(r.stderr, "publish")


def test_library_connect_errors_name_the_last_nats_error(tmp_path: Path) -> None:
    url = _refusing_url()

    async def body() -> None:
        with pytest.raises(BusError, match="last error: ConnectionRefusedError") as ei:
            async with bus.subscribe(url, symbols=["BTC_USDT"], connect_timeout=0.5):
                pass
        assert ei.value.reason == "bus_connect"
        with pytest.raises(BusError, match="last error: ConnectionRefusedError") as ei:
            await archive(url, tmp_path / "ds", idle_exit=0.5, connect_timeout=0.5)
        assert ei.value.reason == "bus_connect"
        assert not (tmp_path / "ds").exists()

    asyncio.run(body())


@pytest.mark.parametrize("sub", ["", "sub"])
def test_archive_output_that_is_a_file_exits_4(tmp_path: Path, sub: str) -> None:
    pytest.importorskip("pyarrow")
    f = tmp_path / "afile"
    f.write_text("x")
    out = f / sub if sub else f
    r = ff("archive", "--nats", _refusing_url(), "-o", str(out), "--idle-exit", "1")
    assert r.returncode == 4, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"fastfeed archive: error: {'cannot create ' if sub else ''}{out}")
    assert f.read_text() == "x"


def _nats_group(command: str) -> list[str]:
    """The option strings of a command's "NATS connection" argument group."""
    from fastfeed.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    (g,) = [g for g in sub._action_groups if g.title == "NATS connection"]
    return [o for a in g._group_actions for o in a.option_strings]


def test_publish_and_archive_share_one_nats_option_group() -> None:
    opts = _nats_group("archive")
    assert opts == _nats_group("publish")
    assert {"--nats", "--creds", "--user", "--tls-ca", "--tls-cert", "--tls-key"} <= set(opts)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tls-key", "k.pem"], "--tls-key needs --tls-cert"),
        (["--tls-ca", "missing-ca.pem"], "TLS files"),
    ],
)
def test_archive_tls_flags_are_checked_before_connecting(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    pytest.importorskip("pyarrow")
    r = ff("archive", "--nats", _refusing_url(), "-o", str(tmp_path / "ds"), *extra)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "ds").exists()
