"""``fastfeed export`` in-process on a small hand-made capture: every format goes through
the one pump of fastfeed.export (CSV included), and ``--symbols`` that match nothing are
an error, not an empty file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from fastfeed.capture import CaptureWriter
from fastfeed.cli import main
from fastfeed.export import capture_events, capture_to_csv

from helpers import depth_text, trade, trades_text

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native


@pytest.fixture()
def small_capture(tmp_path: Path) -> Path:
    path = tmp_path / "small.ffcap"
    frames = [
        depth_text(True, "BTC_USDT", [["101.5", "2"], ["102", "1"]], [["100.25", "3"]]),
        depth_text(True, "ETH_USDT", [["11.5", "2"]], [["10.5", "4"]]),
        trades_text(
            False, "BTC_USDT", [trade(7, "101.5", "0.5", "buy", 1.25), trade(6, "100.25", "1", "sell", 1.0)]
        ),
        depth_text(False, "BTC_USDT", [["101.5", "0"]], None),
        trades_text(False, "ETH_USDT", [trade(3, "11.5", "2", "buy", 2.0)]),
    ]
    with CaptureWriter(path, "ws://127.0.0.1:1/ws/v1/") as w:
        for i, text in enumerate(frames):
            w.write(text, 1_000_000_000 + i)
    return path


def test_csv_rows_are_the_pumps_event_rows(small_capture: Path, tmp_path: Path) -> None:
    """CSV is one more writer of the same rows as npz/parquet (capture_events)."""
    rows, _ = capture_events(small_capture)
    out = tmp_path / "e.csv"
    st = capture_to_csv(small_capture, out)
    with out.open(newline="") as f:
        lines = list(csv.DictReader(f))
    assert st.rows == len(lines) == len(rows) > 0
    assert [int(r["local_ts"]) for r in lines] == rows["local_ts"].tolist()
    assert [float(r["price"]) for r in lines] == rows["px"].tolist()
    assert [float(r["qty"]) for r in lines] == rows["qty"].tolist()
    assert {r["symbol"] for r in lines} == {"BTC_USDT", "ETH_USDT"}
    st = capture_to_csv(small_capture, out, what="trades", symbols=["eth_usdt"])
    with out.open(newline="") as f:
        trades = list(csv.DictReader(f))
    assert st.rows == 1 and trades[0]["symbol"] == "ETH_USDT" and trades[0]["side"] == "buy"
    assert float(trades[0]["price"]) == 11.5 and st.unmatched == []


@pytest.mark.parametrize("fmt", ["csv", "npz", "parquet"])
def test_export_symbols_matching_nothing_is_an_error(
    fmt: str, small_capture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"out.{fmt}"
    assert main(["export", str(small_capture), "-o", str(out), "--symbols", "NOPE_USDT"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "no data for NOPE_USDT" in err[0] and "BTC_USDT, ETH_USDT" in err[0], err
    assert "exported" not in captured.out
    assert not out.exists()


def test_export_symbols_partly_matching_notes_the_rest(
    small_capture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.npz"
    assert main(["export", str(small_capture), "-o", str(out), "--symbols", "btc_usdt NOPE_USDT"]) == 0
    captured = capsys.readouterr()
    assert "note: no data for NOPE_USDT" in captured.err
    with np.load(out) as z:
        assert len(z["data"]) > 0 and list(z["symbols"]) == ["BTC_USDT", "ETH_USDT"]
