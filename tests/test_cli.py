"""The ``fastfeed`` command run as a user runs it: ``python -m fastfeed ...`` in a
subprocess with no terminal (plain output), against a local exchange started as
``python -m fastfeed exchange --port 0`` (nothing here touches the internet).

Covered: demo (timed, Ctrl-C, forced reconnects, and the rich view on a pseudo-terminal),
watch (public and private channels), record -> replay -> export (npz, parquet, csv), bench
--quick, and the error paths with their exit codes (2 bad arguments, 3 connection
failure, 4 bad file).
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from fastfeed.capture import CaptureReader
from fastfeed.events import EVENT_DTYPE

from helpers import one_error_line

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "cli-test-key", "cli-test-secret"
SYMS = ["BTC_USDT", "ETH_USDT"]

ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("FASTFEED_API_KEY", "FASTFEED_API_SECRET", "FASTFEED_URL", "COLUMNS", "LINES")
}
ENV["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")

#: Hang guards, not verdicts: a command or a wait that takes this long is hung. Nothing here
#: checks how fast a command ran or how many messages a timed run got (that is load, and
#: the benchmarks' business); timed runs (``--seconds``) are checked for what they must
#: hold however slow the machine (messages the server sends with its subscribe replies,
#: the summary, a deadline that was honoured).
HANG_GUARD = 120.0


def ff(
    *args: str, env: dict[str, str] | None = None, timeout: float = HANG_GUARD
) -> subprocess.CompletedProcess[str]:
    """``python -m fastfeed ARGS`` to completion, no terminal, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "fastfeed", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env or ENV,
        cwd=ROOT,
        timeout=timeout,
    )


def num(text: str) -> int:
    return int(text.replace(",", ""))


class Lines:
    """Collects a stream's lines on a thread, so a test can wait for one without blocking."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        self._t = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._t.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._q.put(line)
        self._q.put(None)

    def wait(self, pred: Callable[[str], bool], timeout: float = HANG_GUARD) -> str:
        """The first (further) line matching ``pred``; ``timeout`` is a hang guard."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"hung: no matching line after {timeout:g} s; got {self.lines!r}")
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"stream ended; got {self.lines!r}")
            self.lines.append(line)
            if pred(line):
                return line

    def rest(self) -> str:
        self._t.join(HANG_GUARD)
        while True:
            try:
                line = self._q.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines)


def popen(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fastfeed", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or ENV,
        cwd=ROOT,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def exchange_url() -> Iterator[str]:
    """``fastfeed exchange`` in a subprocess (three symbols, one API account)."""
    proc = popen(
        "exchange",
        "--port",
        "0",
        "--rate",
        "400",
        "--seed",
        "5",
        "--symbols",
        "BTC_USDT,ETH_USDT,SOL_USDT",
        "--account",
        f"{KEY}:{SECRET}",
        "--private-interval",
        "0.2",
    )
    try:  # communicate() below reads and closes both pipes
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fastfeed exchange listening on ws://127.0.0.1:"), line
        yield line.split()[-1]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:  # pragma: no cover - only on a hang
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


CAPTURE_MESSAGES = 500


@pytest.fixture(scope="module")
def capture(exchange_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A recording of ``CAPTURE_MESSAGES`` messages of BTC_USDT and ETH_USDT from the local
    exchange (a message count, not a time: the same content on a fast and a busy machine)."""
    path = tmp_path_factory.mktemp("cap") / "two.ffcap"
    r = ff("record", *SYMS, "-o", str(path), "--url", exchange_url, "--max-messages", str(CAPTURE_MESSAGES))
    assert r.returncode == 0, r.stderr
    m = re.search(r"recorded ([\d,]+) messages \(.*\) in [\d.]+ s .* to (\S+)", r.stdout)
    assert m, r.stdout
    assert m.group(2) == str(path)
    assert "replay it: fastfeed replay" in r.stdout
    assert f"from {exchange_url} to {path}" in r.stderr  # the start line
    n = num(m.group(1))
    assert n == CAPTURE_MESSAGES
    return path, n


# ---------------------------------------------------------------------------- demo
def check_summary(out: str, title: str, symbols: list[str]) -> dict[str, int]:
    """The end summary is there and sane; returns a few of its numbers."""
    assert f"fastfeed {title}: " in out, out
    m = re.search(r"messages  ([\d,]+) frames \(([\d,]+)/s\)", out)
    assert m, out
    by = re.search(r"by method  (.*)", out)
    assert by, out
    for method in ("depth.update", "trades.update", "ticker.update"):
        assert method in by.group(1), out
    assert re.search(r"rejects    none", out), out
    assert re.search(r"processing per data frame .*\n  mean [\d.]+ [num]?s  p50 [\d.]+ [num]?s  p99 ", out), (
        out
    )
    assert "trade time -> recv" in out
    rec = re.search(r"connects (\d+)  reconnects (\d+)", out)
    assert rec, out
    assert "top of book at the end:" in out
    for s in symbols:
        assert re.search(
            rf"^  {s} +[\d.]+ x [\d.]+ \| [\d.]+ x [\d.]+ +spread [\d.]+ +\d+/\d+ levels", out, re.M
        ), out
    return {"frames": num(m.group(1)), "connects": int(rec.group(1)), "reconnects": int(rec.group(2))}


def test_demo_runs_for_n_seconds_with_plain_lines() -> None:
    """``--seconds`` ends the run with a summary. How many frames or status lines a 2.5 s
    run gets depends on the machine; what it must hold does not: the snapshots the exchange
    sends with its subscribe replies (in the summary), and a status line (the last pass of
    the view loop comes after the first --interval, since 1 s < 2.5 s)."""
    r = ff("demo", "--seconds", "2.5", "--rate", "800", "--symbols", "BTC_USDT", "eth_usdt", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    out = r.stdout
    assert out.startswith("fastfeed demo: connecting to ws://127.0.0.1:")
    status = [ln for ln in out.splitlines() if re.match(r"\[ +[\d.]+s\] +[\d,]+ msg/s", ln)]
    assert len(status) >= 1, out
    assert all("proc p50" in ln and "trade->recv" in ln and "BTC_USDT" in ln for ln in status)
    elapsed = [float(re.match(r"\[ *([\d.]+)s\]", ln).group(1)) for ln in status]  # type: ignore[union-attr]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 1.0  # one per --interval (1 s), at most
    nums = check_summary(out, "demo", SYMS)
    assert nums["frames"] >= 6  # at least the depth, trades and ticker snapshots of both symbols
    assert nums["connects"] == 1 and nums["reconnects"] == 0
    assert "seed 3" in out


def ctrl_c_after(
    proc: subprocess.Popen[str], pred: Callable[[str], bool], watch: str = "stdout"
) -> tuple[str, str]:
    """Wait (hang guard only) for a line of the ``watch`` stream matching ``pred``, send
    Ctrl-C, and return ``(stdout, stderr)`` once the command has exited (the watched one
    from that line on, the other whole)."""
    watched = Lines(getattr(proc, watch))
    other = proc.stderr if watch == "stdout" else proc.stdout
    try:
        watched.wait(pred)
        proc.send_signal(signal.SIGINT)
        rest = other.read()  # type: ignore[union-attr]
        proc.wait(HANG_GUARD)
    finally:
        if proc.poll() is None:  # pragma: no cover - only on a hang
            proc.kill()
            proc.wait()
    return (watched.rest(), rest) if watch == "stdout" else (rest, watched.rest())


def test_demo_stops_on_ctrl_c_with_summary_and_exit_0() -> None:
    with popen("demo", "--rate", "500", "--interval", "0.5") as proc:
        text, err = ctrl_c_after(proc, lambda ln: "msg/s" in ln)
    assert proc.returncode == 0, err
    assert err == ""
    assert "(interrupted)" in text
    check_summary(text, "demo", ["BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT"])


def test_demo_counts_reconnects() -> None:
    """The exchange drops the connection every second: the demo shows the reconnect as it
    happens (waited for, not expected within a time) and counts it in the summary."""
    with popen("demo", "--rate", "400", "--symbols", "BTC_USDT", "--drop-every", "1") as proc:
        text, err = ctrl_c_after(proc, lambda ln: "connection resubscribed" in ln)
    assert proc.returncode == 0, err
    nums = check_summary(text, "demo", ["BTC_USDT"])
    assert nums["reconnects"] >= 1 and nums["connects"] == nums["reconnects"] + 1
    assert "connection disconnected" in text and "connection resubscribed" in text


@pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")
def test_demo_live_view_on_a_terminal() -> None:
    """On a (pseudo-)terminal: the rich view, a key switches the book, q quits."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 130, 0, 0))
    env = dict(ENV, TERM="xterm-256color")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastfeed", "demo", "--rate", "400", "--interval", "0.2"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(slave)
    buf = b""
    sent: list[bytes] = []
    deadline = time.monotonic() + HANG_GUARD
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                buf += chunk
            if not sent and b"keys:" in buf and b"BTC_USDT book" in buf:
                os.write(master, b"2")
                sent.append(b"2")
            elif sent == [b"2"] and b"ETH_USDT book" in buf:
                os.write(master, b"q")
                sent.append(b"q")
        proc.wait(HANG_GUARD)
    finally:
        os.close(master)
        if proc.poll() is None:  # pragma: no cover - only on a hang
            proc.kill()
            proc.wait()
    text = buf.decode(errors="replace")
    assert sent == [b"2", b"q"], text[-3000:]
    assert proc.returncode == 0, text[-3000:]
    assert "inflate+parse+apply" in text and "last trades" in text and "tickers" in text
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text)
    check_summary(plain, "demo", ["BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT"])


# ---------------------------------------------------------------------------- watch
def test_watch_a_local_endpoint(exchange_url: str) -> None:
    r = ff(
        "watch", "BTC_USDT", "eth_usdt,SOL_USDT", "--url", exchange_url, "--seconds", "1.5", "--depth", "5"
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert f"fastfeed watch: connecting to {exchange_url} (BTC_USDT, ETH_USDT, SOL_USDT" in r.stdout
    check_summary(r.stdout, "watch", ["BTC_USDT", "ETH_USDT", "SOL_USDT"])


def test_watch_private_channels_take_keys_from_the_environment(exchange_url: str) -> None:
    r = ff("watch", "BTC_USDT", "--balance", "--orders", "--url", exchange_url, "--seconds", "1.5")
    assert r.returncode == 2
    assert "FASTFEED_API_KEY" in one_error_line(r.stderr, "watch")

    env = dict(ENV, FASTFEED_API_KEY=KEY, FASTFEED_API_SECRET=SECRET)
    # Balance updates come from the exchange's private tick (every 0.2 s), not with the
    # subscribe reply: a 1.5 s run normally gets several, a starved one maybe none. So run
    # until one did (each run checked in full); the deadline is a hang guard.
    deadline = time.monotonic() + HANG_GUARD
    while True:
        r = ff(
            "watch", "BTC_USDT", "--balance", "--orders", "--url", exchange_url, "--seconds", "1.5", env=env
        )
        assert r.returncode == 0, r.stderr
        m = re.search(r"private  (\d+) order updates, (\d+) balance updates", r.stdout)
        assert m, r.stdout
        assert SECRET not in r.stdout + r.stderr
        if int(m.group(2)) > 0:
            break
        assert time.monotonic() < deadline, f"hung: no balance update in any run; last: {r.stdout}"

    env["FASTFEED_API_SECRET"] = "wrong"
    r = ff("watch", "BTC_USDT", "--orders", "--url", exchange_url, "--seconds", "1", env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "authentication refused" in one_error_line(r.stderr, "watch")


def test_watch_unknown_symbol_is_one_error_line(exchange_url: str) -> None:
    r = ff("watch", "NOPE_USDT", "--url", exchange_url, "--seconds", "1")
    assert r.returncode == 1
    assert "subscription refused" in one_error_line(r.stderr, "watch")


# ---------------------------------------------------------------------------- record -> replay -> export
def test_record_then_replay(capture: tuple[Path, int]) -> None:
    path, n = capture
    with CaptureReader(path) as reader:
        assert len(reader) == n and reader.torn_bytes == 0
        assert reader.header.meta["symbols"] == SYMS
    r = ff("replay", str(path))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith(f"replay {path}\n")
    with CaptureReader(path) as reader:
        times = reader.index()["recv_ns"]
    span = (int(times[-1]) - int(times[0])) / 1e9  # the capture's own span, however long it took
    m = re.search(r"^  ([\d,]+) frames, [^\n]*?(?:, recorded over ([\d.]+) s)?$", out, re.M)
    assert m and num(m.group(1)) == n, out
    assert m.group(2) == (f"{span:.1f}" if span > 0 else None), out
    assert re.search(r"fed at max speed in [\d.]+ s: [\d,]+ frames/s, .*/frame", out), out
    by = re.search(r"messages by method  (.*)", out)
    assert by and all(k in by.group(1) for k in ("reply 3", "depth.update", "trades.update", "ticker.update"))
    assert re.search(r"^rejects +none$", out, re.M)
    assert re.search(r"^trades stored +[1-9]", out, re.M)
    for s in SYMS:
        assert re.search(
            rf"^  {s} +[\d.]+ x [\d.]+ \| [\d.]+ x [\d.]+ +spread [\d.]+ +\d+/\d+ levels", out, re.M
        ), out

    r = ff("replay", str(path), "--speed", "20")
    assert r.returncode == 0, r.stderr
    assert "fed at speed x20 in" in r.stdout


def test_record_refuses_to_overwrite_then_appends(
    capture: tuple[Path, int], exchange_url: str, tmp_path: Path
) -> None:
    path, _ = capture
    before = path.read_bytes()
    r = ff("record", "BTC_USDT", "-o", str(path), "--url", exchange_url, "--seconds", "1")
    assert r.returncode == 4
    assert "exists" in one_error_line(r.stderr, "record")
    assert path.read_bytes() == before

    copy = tmp_path / "copy.ffcap"
    copy.write_bytes(before)
    r = ff("record", "BTC_USDT", "-o", str(copy), "--append", "--url", exchange_url, "--max-messages", "25")
    assert r.returncode == 0, r.stderr
    assert "recorded 25 messages" in r.stdout
    with CaptureReader(copy) as a, CaptureReader(path) as b:
        assert len(a) == len(b) + 25


def test_record_is_safe_to_interrupt(exchange_url: str, tmp_path: Path) -> None:
    path = tmp_path / "cut.ffcap"
    with popen("record", "SOL_USDT", "-o", str(path), "--url", exchange_url, "--interval", "0.3") as proc:
        # a progress line (one per --interval) with messages and a rate
        out, _ = ctrl_c_after(
            proc,
            lambda ln: re.search(r"recording SOL_USDT -> .* [1-9][\d,]* msgs .* msg/s", ln) is not None,
            watch="stderr",
        )
    assert proc.returncode == 0
    m = re.search(r"recorded ([\d,]+) messages .* \(interrupted\)", out)
    assert m, out
    with CaptureReader(path) as reader:
        assert len(reader) == num(m.group(1)) and reader.torn_bytes == 0
    r = ff("replay", str(path))
    assert r.returncode == 0 and "SOL_USDT" in r.stdout


def test_record_stops_after_seconds(exchange_url: str, tmp_path: Path) -> None:
    """``--seconds N`` stops the recording once N seconds have passed (never before; how
    many messages arrived in that time is the machine's business), and the file is whole."""
    path = tmp_path / "timed.ffcap"
    r = ff("record", "ETH_USDT", "-o", str(path), "--url", exchange_url, "--seconds", "1")
    assert r.returncode == 0, r.stderr
    m = re.search(r"recorded ([\d,]+) messages \(.*\) in ([\d.]+) s", r.stdout)
    assert m, r.stdout
    assert float(m.group(2)) >= 1.0 and "(interrupted)" not in r.stdout
    with CaptureReader(path) as reader:
        assert len(reader) == num(m.group(1)) and reader.torn_bytes == 0


def test_record_from_the_bundled_exchange(tmp_path: Path) -> None:
    path = tmp_path / "demo.ffcap"
    r = ff("record", "BTC_USDT", "--demo", "--rate", "1000", "-o", str(path), "--max-messages", "300")
    assert r.returncode == 0, r.stderr
    assert "recorded 300 messages" in r.stdout and "bundled exchange" in r.stderr
    with CaptureReader(path) as reader:
        assert len(reader) == 300


def test_export_npz(capture: tuple[Path, int], tmp_path: Path) -> None:
    path, n = capture
    out = tmp_path / "events.npz"
    r = ff("export", str(path), "--to", "npz", "-o", str(out))
    assert r.returncode == 0, r.stderr
    m = re.search(
        rf"exported ([\d,]+) event rows from ([\d,]+) frames to {re.escape(str(out))} \(npz, ", r.stdout
    )
    assert m and num(m.group(2)) == n, r.stdout
    with np.load(out) as z:
        data, symbols = z["data"], list(z["symbols"])
    assert data.dtype == EVENT_DTYPE and len(data) == num(m.group(1)) > 0
    assert sorted(symbols) == SYMS

    one = tmp_path / "btc"  # no suffix: --to says npz, numpy adds .npz
    r = ff("export", str(path), "--to", "npz", "-o", str(one), "--symbols", "BTC_USDT")
    assert r.returncode == 0, r.stderr
    with np.load(str(one) + ".npz") as z:
        btc = z["data"]
    assert 0 < len(btc) < len(data)
    assert set(btc["ival"].tolist()) == {symbols.index("BTC_USDT")}


def test_export_csv_events_and_trades(capture: tuple[Path, int], tmp_path: Path) -> None:
    import csv

    path, _ = capture
    ev = tmp_path / "events.csv"  # format from the suffix
    r = ff("export", str(path), "-o", str(ev))
    assert r.returncode == 0, r.stderr
    with ev.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert num(re.search(r"exported ([\d,]+) event rows", r.stdout).group(1)) == len(rows) > 0  # type: ignore[union-attr]
    assert list(rows[0]) == ["local_ts", "exch_ts", "symbol", "kind", "side", "price", "qty", "trade_id"]
    assert {r_["kind"] for r_ in rows} >= {"depth_clear", "depth_snapshot", "depth", "trade"}
    assert {r_["symbol"] for r_ in rows} == set(SYMS)

    tr = tmp_path / "trades.csv"
    r = ff("export", str(path), "--to", "csv", "--what", "trades", "--symbols", "eth_usdt", "-o", str(tr))
    assert r.returncode == 0, r.stderr
    with tr.open(newline="") as f:
        trades = list(csv.DictReader(f))
    assert trades and {t["symbol"] for t in trades} == {"ETH_USDT"}
    assert {t["side"] for t in trades} <= {"buy", "sell"}
    ids = [int(t["id"]) for t in trades]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(float(t["price"]) > 0 and float(t["amount"]) > 0 for t in trades)


def test_export_parquet(capture: tuple[Path, int], tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    path, _ = capture
    out = tmp_path / "trades.parquet"
    r = ff("export", str(path), "--to", "parquet", "--what", "trades", "-o", str(out))
    assert r.returncode == 0, r.stderr
    table = pq.read_table(out)
    assert table.num_rows == num(re.search(r"exported ([\d,]+) trades", r.stdout).group(1)) > 0  # type: ignore[union-attr]
    assert set(table.column("symbol").to_pylist()) == set(SYMS)

    out = tmp_path / "events.parquet"
    r = ff("export", str(path), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert pq.read_table(out).num_rows == num(re.search(r"exported ([\d,]+) event rows", r.stdout).group(1))  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- bench
def test_bench_quick() -> None:
    r = ff("bench", "--quick", timeout=5 * HANG_GUARD)  # a few seconds normally
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "corpus: n=5000 seed=1; rounds=3" in out
    for row in ("inflate-only", "fastfeed parse+apply (plain)", "fastfeed full", "zlib+json.loads+dict book"):
        assert re.search(rf"^\w+ {re.escape(row)}.* +[\d.]+ +[\d.]+ +[\d,]+ +[\d.]+x", out, re.M), out
    assert "target ratio" in out
    assert "# round 3/3 done" in r.stderr


# ---------------------------------------------------------------------------- error paths
@pytest.mark.parametrize(
    "args, needle",
    [
        (["watch", "BTC_USDT", "--url", "http://example.com/ws"], "not a WebSocket URL"),
        (["watch", "BTC_USDT", "--url", "ws://"], "not a WebSocket URL"),
        (["record", "BTC_USDT", "-o", "x.ffcap", "--url", "example.com:443"], "not a WebSocket URL"),
        (["demo", "--seconds", "-1"], "must be > 0"),
        (["demo", "--book", "DOGE_USDT", "--seconds", "1"], "is not one of the symbols"),
        (["replay", "x.ffcap", "--speed", "fast"], "not a speed"),
        (["export", "x.ffcap", "-o", "x.txt"], "pass --to"),
        (["record", "BTC_USDT"], "required: -o/--output"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], needle: str) -> None:
    r = ff(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout == ""
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_unreachable_endpoint_exits_3(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws/v1/"
    r = ff("watch", "BTC_USDT", "--url", url, "--connect-timeout", "1")
    assert r.returncode == 3
    assert f"could not connect to {url} within 1 s" in one_error_line(r.stderr, "watch")

    out = tmp_path / "never.ffcap"
    r = ff("record", "BTC_USDT", "-o", str(out), "--url", url, "--connect-timeout", "1")
    assert r.returncode == 3
    assert f"could not connect to {url}" in r.stderr.strip().splitlines()[-1]
    assert not out.exists()  # nothing left behind


@pytest.fixture()
def bad_files(capture: tuple[Path, int], tmp_path: Path) -> dict[str, Path]:
    good = capture[0].read_bytes()
    files = {
        "missing": tmp_path / "missing.ffcap",
        "empty": tmp_path / "empty.ffcap",
        "garbage": tmp_path / "garbage.ffcap",
        "corrupt": tmp_path / "corrupt.ffcap",
        "directory": tmp_path,
    }
    files["empty"].write_bytes(b"")
    files["garbage"].write_bytes(b"this is not a capture file\n" * 20)
    with CaptureReader(capture[0]) as reader:
        mid = reader.index()[len(reader) // 2]
    damaged = bytearray(good)
    damaged[int(mid["offset"]) + int(mid["length"]) // 2] ^= 0xFF  # a payload byte mid-file: bad CRC
    files["corrupt"].write_bytes(bytes(damaged))
    return files


@pytest.mark.parametrize(
    "kind, needle",
    [
        ("missing", "no such file"),
        ("empty", "empty file"),
        ("garbage", "not a capture file"),
        ("corrupt", "corrupt record at offset"),
        ("directory", "is a directory"),
    ],
)
def test_bad_files_exit_4(bad_files: dict[str, Path], kind: str, needle: str, tmp_path: Path) -> None:
    path = bad_files[kind]
    r = ff("replay", str(path))
    assert r.returncode == 4, r.stdout + r.stderr
    assert needle in one_error_line(r.stderr, "replay")
    if kind == "corrupt":  # the good part is still summarised
        assert "(damaged)" in r.stdout and "top of book at the end:" in r.stdout
    else:
        assert r.stdout == ""
    out = tmp_path / "out.npz"
    r = ff("export", str(path), "-o", str(out))
    assert r.returncode == 4
    assert needle in one_error_line(r.stderr, "export")
    assert not out.exists()


def test_torn_tail_is_skipped_not_an_error(capture: tuple[Path, int], tmp_path: Path) -> None:
    path, n = capture
    torn = tmp_path / "torn.ffcap"
    torn.write_bytes(path.read_bytes()[:-5])  # as if the recorder was killed mid-write
    r = ff("replay", str(torn), "-q")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # -q: the capture reader's warning is not logged
    assert re.search(r"^torn tail +\d+ bytes skipped", r.stdout, re.M)
    m = re.search(r"^  ([\d,]+) frames", r.stdout, re.M)
    assert m and num(m.group(1)) == n - 1


def test_replay_summary_counts_dropped_trades_per_reason(tmp_path: Path) -> None:
    """A capture whose second session replays trades already stored (what a resubscribe
    sends) and then, after an exchange restart, trades with lower ids: the replayed ones
    are dropped and counted by reason, the new ones stored (no id black-holes a symbol)."""
    from fastfeed.capture import CaptureWriter

    def trades(clean: bool, ids: list[int], t0: float = 1700000000.0) -> str:
        rows = [
            {"id": i, "time": t0 + i, "price": f"{100 + i}", "amount": "1", "type": "buy"}
            for i in sorted(ids, reverse=True)
        ]
        return json.dumps({"method": "trades.update", "id": None, "params": [clean, rows, "BTC_USDT"]})

    path = tmp_path / "dedup.ffcap"
    with CaptureWriter(path, "ws://127.0.0.1:1/ws/v1/") as w:
        w.write(trades(True, [1, 2, 3]))
        w.write(trades(False, [4]))
    with CaptureWriter(path, "ws://127.0.0.1:1/ws/v1/", mode="a") as w:
        w.write(trades(True, [2, 3, 4]))  # the replay after a resubscribe
        w.write(trades(False, [5]))
        w.write(trades(False, [1], t0=1700000500.0))  # ids restarted: another trade, stored
    r = ff("replay", str(path))
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("trades stored"))
    assert line.split()[2] == "6", line
    assert "replayed 3" in line and "duplicate" not in line, line
    assert "stored out of id order" in line, line
