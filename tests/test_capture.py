"""The capture file format: writing, streaming memory-mapped reading, torn tails, damage,
append mode, and replay through an engine (with a stand-in engine, so these tests do not
depend on the compiled extensions)."""

from __future__ import annotations

import io
import os
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastfeed.capture import (
    FILE_HEADER,
    FRAME_BINARY,
    FRAME_TEXT,
    MAGIC,
    RECORD_HEADER,
    VERSION,
    CaptureError,
    CaptureReader,
    CaptureWriter,
    replay,
)
from fastfeed.errors import InflateError, ParseError

URL = "wss://openapi.digifinex.com/ws/v1/"


def write_capture(path: Path, records: list[tuple[bytes, int, int]], **kw: Any) -> None:
    with CaptureWriter(path, URL, start_ns=123, **kw) as w:
        for payload, recv_ns, typ in records:
            w.write(payload, recv_ns, typ)


def sample_records(n: int = 20) -> list[tuple[bytes, int, int]]:
    out = []
    for i in range(n):
        text = b'{"method":"depth.update","params":[false,{"asks":[["%d.5","1"]]},"BTC_USDT"],"id":null}' % (
            100 + i
        )
        if i % 3 == 0:
            out.append((text, 1_000 + i, FRAME_TEXT))
        else:
            out.append((zlib.compress(text), 1_000 + i, FRAME_BINARY))
    return out


def read_all(path: Path, **kw: Any) -> tuple[list[tuple[bytes, int, int]], int]:
    with CaptureReader(path, **kw) as r:
        recs = [(bytes(rec.payload), rec.recv_ns, rec.msg_type) for rec in r]
        return recs, r.torn_bytes


def test_roundtrip_header_and_index(tmp_path: Path) -> None:
    path = tmp_path / "a.ffcap"
    recs = sample_records(50)
    with CaptureWriter(path, URL, start_ns=42, meta={"symbols": ["BTC_USDT"]}) as w:
        for payload, recv_ns, typ in recs[:48]:
            w.write(payload, recv_ns, typ)
        w.write(recs[48][0].decode(), recs[48][1], recs[48][2])  # str payloads are UTF-8
        w.write(memoryview(recs[49][0]), recs[49][1], recs[49][2])
        assert w.records == 50
    assert w.closed
    raw = path.read_bytes()
    assert raw[:8] == MAGIC and struct.unpack_from("<H", raw, 8)[0] == VERSION
    with CaptureReader(path) as r:
        assert r.header.url == URL and r.header.start_ns == 42 and r.header.version == VERSION
        assert r.header.meta["symbols"] == ["BTC_USDT"] and r.header.meta["created_by"].startswith("fastfeed")
        got = [(bytes(x.payload), x.recv_ns, x.msg_type) for x in r]
        assert got == recs and r.torn_bytes == 0
        idx = r.index()
        assert len(r) == 50 and idx["recv_ns"].tolist() == [x[1] for x in recs]
        assert idx["msg_type"].tolist() == [x[2] for x in recs]
        assert bytes(r.payload(int(idx["offset"][7]), int(idx["length"][7]))) == recs[7][0]
        assert int(idx["offset"][-1] + idx["length"][-1]) == r.size == len(raw)


def test_writer_defaults_and_modes(tmp_path: Path) -> None:
    path = tmp_path / "m.ffcap"
    before = time.time_ns()
    with CaptureWriter(path, URL) as w:
        w.write(b"{}")  # recv_ns defaults to now, BINARY by default
    with CaptureReader(path) as r:
        (rec,) = list(r)
        assert rec.msg_type == FRAME_BINARY and before <= rec.recv_ns <= time.time_ns()
        assert before <= r.header.start_ns <= time.time_ns()
    with pytest.raises(FileExistsError):
        CaptureWriter(path, URL)
    write_capture(path, sample_records(3), mode="w")
    assert len(read_all(path)[0]) == 3
    with CaptureWriter(path, "ignored", mode="a") as w:  # append keeps the header
        w.write(b"[1]", 5, FRAME_TEXT)
    recs, torn = read_all(path)
    assert len(recs) == 4 and recs[-1] == (b"[1]", 5, FRAME_TEXT) and torn == 0
    with CaptureReader(path) as r:
        assert r.header.url == URL
    with CaptureWriter(tmp_path / "new.ffcap", URL, mode="a") as w:  # append creates
        w.write(b"{}", 1)
    with pytest.raises(ValueError):
        CaptureWriter(tmp_path / "x.ffcap", mode="r")  # type: ignore[arg-type]
    with CaptureWriter(tmp_path / "t.ffcap", URL, fsync=True) as w:
        with pytest.raises(ValueError):
            w.write(b"x", 1, 9)
        try:
            from picows import WSMsgType
        except ImportError:  # pragma: no cover
            pass
        else:
            w.write(b"{}", 1, WSMsgType.TEXT)
    assert read_all(tmp_path / "t.ffcap")[0] == [(b"{}", 1, FRAME_TEXT)]


def test_every_torn_tail_is_skipped_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "t.ffcap"
    recs = sample_records(6)
    write_capture(path, recs)
    full = path.read_bytes()
    last_len = RECORD_HEADER.size + len(recs[-1][0])
    start_of_last = len(full) - last_len
    for cut in range(1, last_len):  # crash after writing only part of the last record
        path.write_bytes(full[: start_of_last + cut])
        got, torn = read_all(path)
        assert got == recs[:-1], cut
        assert torn == cut
    assert "torn last record" in caplog.text
    path.write_bytes(full[:start_of_last])  # a clean cut between records is not torn
    got, torn = read_all(path)
    assert got == recs[:-1] and torn == 0


def test_zero_filled_tail_and_bad_crc_on_last_record(tmp_path: Path) -> None:
    path = tmp_path / "z.ffcap"
    recs = sample_records(5)
    write_capture(path, recs)
    full = path.read_bytes()
    path.write_bytes(full + b"\0" * 4096)  # filesystem extended the file, data never landed
    got, torn = read_all(path)
    assert got == recs and torn == 4096
    unlanded = bytearray(full)
    unlanded[-3:] = b"\0\0\0"  # the last payload's final bytes never landed (zeros)
    path.write_bytes(bytes(unlanded))
    got, torn = read_all(path)
    assert got == recs[:-1] and torn == RECORD_HEADER.size + len(recs[-1][0])
    damaged = bytearray(full)
    damaged[-1] ^= 0xFF  # a complete last record with a bad CRC: corruption, not a torn tail
    path.write_bytes(bytes(damaged))
    with pytest.raises(CaptureError, match="corrupt record"):
        read_all(path)


def test_damage_before_the_end_is_an_error_after_the_good_records(tmp_path: Path) -> None:
    path = tmp_path / "d.ffcap"
    recs = sample_records(5)
    write_capture(path, recs)
    with CaptureReader(path) as r:
        offsets = r.index()["offset"].tolist()
    raw = bytearray(path.read_bytes())
    raw[offsets[2] + 3] ^= 0x01  # flip a payload bit of record 2
    path.write_bytes(bytes(raw))
    got = []
    with CaptureReader(path) as r:
        with pytest.raises(CaptureError, match="corrupt record"):
            for rec in r:
                got.append(bytes(rec.payload))
    assert got == [x[0] for x in recs[:2]]
    assert len(read_all(path, verify=False)[0]) == 5  # without CRC checks the data is read as is
    raw = bytearray(path.read_bytes())
    raw[offsets[1] - RECORD_HEADER.size + 12] = 7  # a bad frame type in a record header
    path.write_bytes(bytes(raw))
    with CaptureReader(path) as r, pytest.raises(CaptureError):
        list(r)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty"),
        (b"FFCAP", "too short"),
        (b"NOTACAPT" + b"\0" * 8, "bad magic"),
        (FILE_HEADER.pack(MAGIC, 99, 0, 0), "version 99"),
        (FILE_HEADER.pack(MAGIC, VERSION, 0, 100) + b"{}", "truncated capture header"),
        (FILE_HEADER.pack(MAGIC, VERSION, 0, 3) + b"{x}", "damaged"),
        (FILE_HEADER.pack(MAGIC, VERSION, 0, 2) + b"[]", "not an object"),
    ],
)
def test_not_a_capture(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.ffcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=match):
        CaptureReader(path)


def test_header_only_capture_and_closed_reader(tmp_path: Path) -> None:
    path = tmp_path / "h.ffcap"
    CaptureWriter(path, URL).close()
    r = CaptureReader(path)
    assert list(r) == [] and len(r) == 0 and r.torn_bytes == 0
    r.close()
    r.close()
    assert r.closed
    with pytest.raises(ValueError):
        list(r)


def test_payload_views_survive_reader_close(tmp_path: Path) -> None:
    path = tmp_path / "v.ffcap"
    write_capture(path, sample_records(3))
    r = CaptureReader(path)
    views = [rec.payload for rec in r]
    r.close()  # views still referenced: the mapping stays until they go
    assert bytes(views[0]).startswith(b"{")
    del views


class FakeEngine:
    """Records what ``replay`` feeds; raises like the engine on bad frames."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, int]] = []

    def feed(self, payload: Any, recv_ns: int = 0) -> Any:
        data = bytes(payload)
        self.calls.append((data, recv_ns))
        if data.startswith(b"\xff"):
            raise InflateError("bad", "zlib_error")
        if data == b"{bad":
            raise ParseError("bad", "bad_json")
        text = data if data[:1] == b"{" else zlib.decompress(data)
        return None if b"depth.update" in text else {"reply": True}


def test_replay_feeds_every_payload_with_its_receive_time(tmp_path: Path) -> None:
    path = tmp_path / "r.ffcap"
    recs = sample_records(10) + [
        (b"\xff\x00", 2000, FRAME_BINARY),
        (b"{bad", 2001, FRAME_TEXT),
        (b'{"error":null,"result":"pong","id":1}', 2002, FRAME_TEXT),
    ]
    write_capture(path, recs)
    eng = FakeEngine()
    got: list[Any] = []
    stats = replay(path, eng, on_message=got.append)
    assert eng.calls == [(p, t) for p, t, _ in recs]
    assert stats.frames == 13 and stats.errors == 2
    assert stats.error_reasons == {"zlib_error": 1, "bad_json": 1}
    assert got == [{"reply": True}]
    assert stats.first_ns == 1000 and stats.last_ns == 2002 and stats.bytes == sum(len(p) for p, _, _ in recs)
    assert stats.rate > 0 and stats.torn_bytes == 0
    with pytest.raises(InflateError):
        replay(path, FakeEngine(), stop_on_error=True)
    with pytest.raises(ValueError):
        replay(path, FakeEngine(), speed=0)
    with CaptureReader(path) as reader:  # a reader can be passed in (and stays open)
        assert replay(reader, FakeEngine()).frames == 13
        assert not reader.closed


def test_replay_progress_rich_and_plain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.ffcap"
    write_capture(path, sample_records(3000))
    out = io.StringIO()
    stats = replay(path, FakeEngine(), progress=True, progress_file=out)
    assert stats.frames == 3000 and "100" in out.getvalue()
    monkeypatch.setitem(sys.modules, "rich.progress", None)  # as if rich were not installed
    out = io.StringIO()
    replay(path, FakeEngine(), progress=True, progress_file=out)
    assert out.getvalue().rstrip().endswith("100.0% 3000 frames")


class FakeClock:
    """Stands in for the ``time`` module inside ``fastfeed.capture``: ``perf_counter[_ns]``
    read a virtual clock that only ``sleep`` (and the engine's simulated work) advances, so
    pacing is checked exactly, whatever the machine's load."""

    def __init__(self) -> None:
        self.ns = 7_000_000_000
        self.sleeps: list[float] = []

    def perf_counter_ns(self) -> int:
        return self.ns

    def perf_counter(self) -> float:
        return self.ns / 1e9

    def monotonic(self) -> float:
        return self.ns / 1e9

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.ns += round(seconds * 1e9)

    def __getattr__(self, name: str) -> Any:  # anything else: the real module
        return getattr(time, name)


class ClockedEngine(FakeEngine):
    """A FakeEngine noting the virtual time of each feed; each feed takes ``work_ns``."""

    def __init__(self, clock: FakeClock, work_ns: int = 0) -> None:
        super().__init__()
        self.clock, self.work_ns = clock, work_ns
        self.fed_at: list[int] = []

    def feed(self, payload: Any, recv_ns: int = 0) -> Any:
        self.fed_at.append(self.clock.ns)
        self.clock.ns += self.work_ns
        return super().feed(payload, recv_ns)


@pytest.mark.parametrize(
    ("speed", "work_ms", "fed_ms"),
    [
        (1.0, 0, [0, 40, 80, 120, 160]),  # the recorded pacing
        (4.0, 0, [0, 10, 20, 30, 40]),  # four times as fast
        (None, 0, [0, 0, 0, 0, 0]),  # full speed: no waiting at all
        (1.0, 30, [0, 40, 80, 120, 160]),  # work is taken out of the wait, not added to it
        (1.0, 50, [0, 50, 100, 150, 200]),  # behind schedule: no sleeping, no drift built up
        (0.5, 0, [0, 80, 160, 240, 320]),  # half speed
    ],
)
def test_replay_at_recorded_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, speed: float | None, work_ms: int, fed_ms: list[int]
) -> None:
    """Paced replay feeds frame i at ``start + (recv_ns[i] - recv_ns[0]) / speed`` (or as
    soon as the engine is free, if it is behind), with the recorded ``recv_ns``. Checked on
    a virtual clock: the verdict is exact and cannot depend on the machine's load."""
    import fastfeed.capture as capture_mod

    step = 40_000_000  # 40 ms between frames: 0.16 s recorded
    path = tmp_path / "s.ffcap"
    recs = [(b"{}", 10**18 + i * step, FRAME_TEXT) for i in range(5)]
    write_capture(path, recs)
    clock = FakeClock()
    monkeypatch.setattr(capture_mod, "time", clock)
    start = clock.ns
    eng = ClockedEngine(clock, work_ns=work_ms * 1_000_000)
    stats = replay(path, eng, speed=speed)
    assert stats.frames == 5 and [c[1] for c in eng.calls] == [r[1] for r in recs]
    assert [t - start for t in eng.fed_at] == pytest.approx([ms * 1_000_000 for ms in fed_ms], abs=1000)
    # the virtual clock moved only by the engine's work and replay's sleeps
    assert sum(clock.sleeps) == pytest.approx((fed_ms[-1] - 4 * work_ms) / 1000, abs=1e-5)
    assert stats.elapsed == pytest.approx((fed_ms[-1] + work_ms) / 1000, abs=1e-5)


def test_replay_does_not_sleep_for_tiny_gaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame due in 200 us or less is fed at once (no sleep call); the schedule stays
    absolute, so the next frame's wait includes the skipped gap."""
    import fastfeed.capture as capture_mod

    path = tmp_path / "t.ffcap"
    write_capture(
        path,
        [(b"{}", 10**18 + i * 150_000, FRAME_TEXT) for i in range(2)]
        + [(b"{}", 10**18 + 150_000 + 1_000_000, FRAME_TEXT)],
    )
    clock = FakeClock()
    monkeypatch.setattr(capture_mod, "time", clock)
    eng = ClockedEngine(clock)
    replay(path, eng, speed=1.0)
    assert clock.sleeps == [pytest.approx(1.15e-3, abs=1e-6)]  # one sleep, to 1.15 ms
    assert [t - eng.fed_at[0] for t in eng.fed_at] == [0, 0, pytest.approx(1_150_000, abs=1000)]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=300), st.integers(0, 2**62), st.sampled_from([1, 2])), max_size=12),
    st.integers(0, 10_000),
)
def test_any_truncation_reads_a_prefix(
    tmp_path_factory: pytest.TempPathFactory, recs: list[tuple[bytes, int, int]], cut: int
) -> None:
    path = tmp_path_factory.mktemp("h") / "x.ffcap"
    write_capture(path, recs)
    full = path.read_bytes()
    with CaptureReader(path) as r:
        header_end = r.data_start
    assert read_all(path) == (recs, 0)
    keep = header_end + cut % (len(full) - header_end + 1)
    path.write_bytes(full[:keep])
    got, torn = read_all(path)
    assert got == recs[: len(got)]
    consumed = header_end + sum(RECORD_HEADER.size + len(p) for p, _, _ in got)
    assert consumed + torn == keep
    os.remove(path)


def test_index_is_numpy_structured(tmp_path: Path) -> None:
    path = tmp_path / "i.ffcap"
    write_capture(path, sample_records(4))
    with CaptureReader(path) as r:
        idx = r.index()
        assert isinstance(idx, np.ndarray) and idx.dtype.names == ("offset", "length", "recv_ns", "msg_type")
        assert r.index() is idx
