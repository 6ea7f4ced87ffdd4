"""Damaged captures (issue 10, defect 2): a torn tail is only a short final record; damage
anywhere else is a CaptureError naming the offset, and appending never cuts off anything but
a proven torn tail. Appending keeps the header true; header fields of the wrong type are a
CaptureError (exit 4 from the CLI). Random mutations never raise anything but CaptureError."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastfeed.capture import (
    FILE_HEADER,
    FRAME_BINARY,
    FRAME_TEXT,
    MAGIC,
    MAX_PAYLOAD,
    RECORD_HEADER,
    RECORD_SESSION,
    VERSION,
    CaptureError,
    CaptureReader,
    CaptureWriter,
    replay,
)
from fastfeed.errors import FastfeedError

from helpers import one_error_line

URL = "wss://openapi.digifinex.com/ws/v1/"
ROOT = Path(__file__).resolve().parent.parent
HSIZE = RECORD_HEADER.size


def payload(i: int) -> bytes:
    return (
        b'{"method":"depth.update","params":[true,{"asks":[["%d.5","1"]],"bids":[["%d.5","2"]]},'
        b'"BTC_USDT"],"id":null}' % (100 + i, 90 + i)
    )


def records(n: int = 10) -> list[tuple[bytes, int, int]]:
    """``(payload, recv_ns, type)``: TEXT and zlib BINARY payloads alternating."""
    out = []
    for i in range(n):
        text = payload(i)
        out.append((text, 1_000 + i, FRAME_TEXT) if i % 2 else (zlib.compress(text), 1_000 + i, FRAME_BINARY))
    return out


def write(
    path: Path,
    recs: list[tuple[bytes, int, int]],
    *,
    start_ns: int = 500,
    meta: dict[str, Any] | None = None,
    mode: str = "x",
) -> None:
    with CaptureWriter(path, URL, start_ns=start_ns, meta=meta, mode=mode) as w:  # type: ignore[arg-type]
        for p, t, typ in recs:
            w.write(p, t, typ)


def read(path: Path, **kw: Any) -> list[tuple[bytes, int, int]]:
    with CaptureReader(path, **kw) as r:
        return [(bytes(rec.payload), rec.recv_ns, rec.msg_type) for rec in r]


def offsets(path: Path) -> list[int]:
    """Offset of each record's header."""
    with CaptureReader(path) as r:
        return [int(o) - HSIZE for o in r.index()["offset"]]


@pytest.fixture()
def ten(tmp_path: Path) -> tuple[Path, list[tuple[bytes, int, int]], list[int]]:
    path = tmp_path / "ten.ffcap"
    recs = records(10)
    write(path, recs, meta={"symbols": ["BTC_USDT"]})
    return path, recs, offsets(path)


def assert_corrupt_at(path: Path, off: int, number: int, good_before: list[Any]) -> None:
    """The reader yields the good records before the damage, then CaptureError naming it;
    appending is refused with the same error and the file stays byte-identical."""
    before = path.read_bytes()
    got = []
    with CaptureReader(path) as r:
        with pytest.raises(CaptureError, match=f"corrupt record at offset {off} ") as info:
            for rec in r:
                got.append((bytes(rec.payload), rec.recv_ns, rec.msg_type))
    assert got == good_before
    assert info.value.offset == off and info.value.record == number
    assert isinstance(info.value, FastfeedError)
    with pytest.raises(CaptureError, match=f"offset {off} "):
        CaptureWriter(path, URL, mode="a")
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------- mid-file damage
@pytest.mark.parametrize(
    "how",
    [
        "huge",
        "max+1",
        "u32 max",
        "past the end",
        "larger by 1",
        "larger by 9",
        "smaller by 1",
        "smaller by half",
        "zero",
    ],
)
def test_damaged_length_of_record_4_of_10_is_corruption(ten: Any, how: str) -> None:
    path, recs, offs = ten
    raw = bytearray(path.read_bytes())
    off = offs[3]
    real = len(recs[3][0])
    new = {
        "huge": 1 << 31,
        "max+1": MAX_PAYLOAD + 1,
        "u32 max": 0xFFFFFFFF,
        "past the end": len(raw),
        "larger by 1": real + 1,
        "larger by 9": real + 9,
        "smaller by 1": real - 1,
        "smaller by half": real // 2,
        "zero": 0,
    }[how]
    struct.pack_into("<I", raw, off + 8, new)
    path.write_bytes(bytes(raw))
    assert_corrupt_at(path, off, 4, recs[:3])
    # skipping resynchronises on record 5: exactly record 4 is lost, and reported
    with CaptureReader(path, on_corrupt="skip") as r:
        got = [(bytes(rec.payload), rec.recv_ns, rec.msg_type) for rec in r]
        assert r.damaged == [(off, offs[4] - off)] and r.skipped_bytes == offs[4] - off
        assert r.torn_bytes == 0
    assert got == recs[:3] + recs[4:]


@pytest.mark.parametrize(
    "field_at, value",
    [
        (12, 7),  # frame type
        (12, 0),
        (13, 1),  # flags
        (14, 1),  # reserved
        (16, None),  # crc flipped
        (HSIZE + 2, None),  # a payload byte flipped
    ],
)
def test_other_damage_to_a_middle_record_is_corruption(ten: Any, field_at: int, value: int | None) -> None:
    path, recs, offs = ten
    raw = bytearray(path.read_bytes())
    at = offs[3] + field_at
    raw[at] = raw[at] ^ 0x5A if value is None else value
    path.write_bytes(bytes(raw))
    assert_corrupt_at(path, offs[3], 4, recs[:3])
    assert read(path, on_corrupt="skip") == recs[:3] + recs[4:]


def test_damage_in_the_first_record_and_message_says_where_data_resumes(ten: Any) -> None:
    path, recs, offs = ten
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, offs[0] + 8, 1 << 30)
    path.write_bytes(bytes(raw))
    with pytest.raises(CaptureError, match=rf"record 1: length {1 << 30} .* resume at offset {offs[1]}$"):
        read(path)
    assert_corrupt_at(path, offs[0], 1, [])


@pytest.mark.parametrize("how", ["larger", "smaller", "zero", "type", "huge"])
def test_a_damaged_header_of_the_last_record_with_its_payload_intact_is_not_torn(ten: Any, how: str) -> None:
    """The last record is complete; only its header is damaged: cutting it off would lose
    an intact payload, so this is corruption too."""
    path, recs, offs = ten
    raw = bytearray(path.read_bytes())
    off, real = offs[9], len(recs[9][0])
    if how == "type":
        raw[off + 12] = 9
    else:
        struct.pack_into(
            "<I", raw, off + 8, {"larger": real + 40, "smaller": real - 3, "zero": 0, "huge": 1 << 31}[how]
        )
    path.write_bytes(bytes(raw))
    assert_corrupt_at(path, off, 10, recs[:9])


@pytest.mark.parametrize("where", ["payload bit", "crc field"])
def test_a_complete_last_record_with_a_bad_crc_is_corruption_not_a_torn_tail(ten: Any, where: str) -> None:
    """A torn tail is only a short final record: a full-length last record whose CRC fails
    (a flipped bit) is damage, so append refuses instead of cutting it off."""
    path, recs, offs = ten
    raw = bytearray(path.read_bytes())
    off = offs[9]
    raw[off + 20 + 5 if where == "payload bit" else off + 16] ^= 0x10
    path.write_bytes(bytes(raw))
    assert_corrupt_at(path, off, 10, recs[:9])


def test_garbage_after_the_last_record_is_corruption(ten: Any) -> None:
    path, recs, _ = ten
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"this is not a record, it is text appended by mistake\n" * 3)
    assert_corrupt_at(path, size, 11, recs)


def test_a_later_damaged_region_is_reported_after_a_skipped_one(ten: Any) -> None:
    path, recs, offs = ten
    raw = bytearray(path.read_bytes())
    raw[offs[2] + HSIZE] ^= 1
    raw[offs[6] + 12] = 99
    path.write_bytes(bytes(raw))
    with CaptureReader(path, on_corrupt="skip") as r:
        assert len(r) == 8
        assert r.damaged == [(offs[2], offs[3] - offs[2]), (offs[6], offs[7] - offs[6])]
    stats = replay(path, _Sink(), on_corrupt="skip")
    assert stats.frames == 8 and stats.damaged == [(offs[2], offs[3] - offs[2]), (offs[6], offs[7] - offs[6])]
    with pytest.raises(CaptureError, match=f"offset {offs[2]} "):
        replay(path, _Sink())


class _Sink:
    def feed(self, data: Any, recv_ns: int) -> None:
        return None


# ---------------------------------------------------------------------------- torn tails
def torn_cuts(recs: list[tuple[bytes, int, int]]) -> list[int]:
    last = HSIZE + len(recs[-1][0])
    return [1, 7, 12, 13, 19, HSIZE, HSIZE + 1, HSIZE + len(recs[-1][0]) // 2, last - 1]


def test_append_cuts_off_exactly_a_torn_tail(ten: Any) -> None:
    path, recs, offs = ten
    full = path.read_bytes()
    for cut in torn_cuts(recs):
        path.write_bytes(full[: offs[9] + cut])  # the recorder died mid-write of record 10
        with CaptureReader(path) as r:
            assert [bytes(x.payload) for x in r] == [p for p, _, _ in recs[:9]] and r.torn_bytes == cut
        with CaptureWriter(path, "ws://other/", start_ns=9_000, mode="a") as w:
            assert w.truncated == cut
            w.write(b'{"id":1}', 9_001, FRAME_TEXT)
        data = path.read_bytes()
        assert data[: offs[9]] == full[: offs[9]]  # everything before the tail is untouched
        assert data[8:10] == struct.pack("<H", VERSION)
        with CaptureReader(path) as r:
            assert [(bytes(x.payload), x.recv_ns, x.msg_type) for x in r] == recs[:9] + [
                (b'{"id":1}', 9_001, 1)
            ]
            assert r.torn_bytes == 0 and r.damaged == []
            assert len(r.header.sessions) == 2


@pytest.mark.parametrize("cut, zeros", [(0, 4096), (HSIZE + 5, 3000), (9, 100), (HSIZE + 10, 0)])
def test_zero_filled_tails_are_torn(ten: Any, cut: int, zeros: int) -> None:
    """A crash can leave the last record partly written and the file extended with zeros."""
    path, recs, offs = ten
    full = path.read_bytes()
    keep = len(full) if cut == 0 else offs[9] + cut
    good = recs if cut == 0 else recs[:9]
    path.write_bytes(full[:keep] + b"\0" * zeros)
    assert read(path) == good
    with CaptureWriter(path, URL, mode="a") as w:
        assert w.truncated == len(full[:keep]) + zeros - (len(full) if cut == 0 else offs[9])
    assert read(path) == good


def test_last_record_with_zeroed_payload_end_is_torn(ten: Any) -> None:
    """The header landed, the payload's last page did not (reads as zeros): torn."""
    path, recs, offs = ten
    raw = bytearray(path.read_bytes())
    raw[-10:] = b"\0" * 10
    path.write_bytes(bytes(raw))
    with CaptureReader(path) as r:
        assert len(r) == 9 and r.torn_bytes == len(raw) - offs[9]


def test_a_torn_tail_that_contains_a_valid_record_is_corruption(ten: Any, tmp_path: Path) -> None:
    """Bytes that parse as a whole record with a good CRC are data, never a torn tail."""
    path, recs, offs = ten
    full = path.read_bytes()
    last = full[offs[9] :]
    # record 10's header claims a payload long enough to swallow a copy of record 9 and 10
    fake = bytearray(last[:HSIZE])
    struct.pack_into("<I", fake, 8, len(last) * 4)
    path.write_bytes(full[: offs[9]] + bytes(fake) + full[offs[8] :])
    assert_corrupt_at(path, offs[9], 10, recs[:9])


# ---------------------------------------------------------------------------- header truth
def test_append_keeps_the_header_true(tmp_path: Path) -> None:
    path = tmp_path / "h.ffcap"
    write(path, records(3), start_ns=5_000, meta={"symbols": ["BTC_USDT", "ETH_USDT"], "channels": ["depth"]})
    with CaptureReader(path) as r:
        h = r.header
        assert h.symbols == ("BTC_USDT", "ETH_USDT") and h.start_ns == 5_000 and h.end_ns == 1_002
        assert len(h.sessions) == 1 and h.version == VERSION
    with CaptureWriter(
        path,
        "ws://127.0.0.1:1/ws/v1/",
        start_ns=9_000,
        mode="a",
        meta={"symbols": ["SOL_USDT", "BTC_USDT"], "channels": ["trades"]},
    ) as w:
        assert w.header.symbols == ("BTC_USDT", "ETH_USDT", "SOL_USDT")
        w.write(b"{}", 20_000, FRAME_TEXT)
        w.write(b"{}", 19_000, FRAME_TEXT)  # a clock step back: the end is still the latest
    # a session whose clock was behind: the start stays the earliest of all
    with CaptureWriter(path, URL, start_ns=4_000, mode="a", meta={"symbols": ["XRP_USDT"]}) as w:
        w.write(b"[]", 4_500, FRAME_TEXT)
    with CaptureReader(path) as r:
        h = r.header
        assert h.url == URL and h.start_ns == 4_000 and h.end_ns == 20_000
        assert h.symbols == ("BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT")
        assert h.meta["symbols"] == list(h.symbols) and h.meta["channels"] == ["depth", "trades"]
        assert h.meta["start_ns"] == 4_000
        assert [s["start_ns"] for s in h.sessions] == [5_000, 9_000, 4_000]
        assert [s["url"] for s in h.sessions] == [URL, "ws://127.0.0.1:1/ws/v1/", URL]
        assert len(r) == 6  # session records are not payloads
        assert [rec.recv_ns for rec in r] == [1_000, 1_001, 1_002, 20_000, 19_000, 4_500]


def test_appending_to_a_version_1_file_upgrades_it(tmp_path: Path) -> None:
    path = tmp_path / "v1.ffcap"
    meta = orjson.dumps({"url": URL, "start_ns": 7, "created_by": "fastfeed 0.0.9", "symbols": ["BTC_USDT"]})
    recs = records(2)
    body = b"".join(RECORD_HEADER.pack(t, len(p), typ, 0, 0, zlib.crc32(p)) + p for p, t, typ in recs)
    path.write_bytes(FILE_HEADER.pack(MAGIC, 1, 0, len(meta)) + meta + body)
    with CaptureReader(path) as r:
        assert r.header.version == 1 and read(path) == recs and r.header.end_ns == 1_001
    with CaptureWriter(path, URL, start_ns=8, mode="a", meta={"symbols": ["ETH_USDT"]}) as w:
        w.write(b"{}", 9, FRAME_TEXT)
    with CaptureReader(path) as r:
        assert r.header.version == 2 and r.header.symbols == ("BTC_USDT", "ETH_USDT")
        assert len(r) == 3


def test_unknown_version_is_refused_for_append_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "v9.ffcap"
    path.write_bytes(FILE_HEADER.pack(MAGIC, 9, 0, 2) + b"{}")
    before = path.read_bytes()
    with pytest.raises(CaptureError, match="version 9"):
        CaptureWriter(path, URL, mode="a")
    assert path.read_bytes() == before


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "busy.ffcap"
    with CaptureWriter(path, URL) as w:
        w.write(b"{}", 1, FRAME_TEXT)
        w.flush()
        before = path.read_bytes()
        for mode in ("a", "w"):
            with pytest.raises(CaptureError, match="another capture writer"):
                CaptureWriter(path, URL, mode=mode)  # type: ignore[arg-type]
            assert path.read_bytes() == before
    with CaptureWriter(path, URL, mode="a"):
        pass


@pytest.mark.parametrize(
    "field, value",
    [
        ("url", 123),
        ("url", None),
        ("url", ["ws://x"]),
        ("url", "ws://x/\x1b[31m"),
        ("start_ns", "123"),
        ("start_ns", 1.5),
        ("start_ns", [1]),
        ("start_ns", True),
        ("start_ns", None),
        ("start_ns", -1),
        ("start_ns", 1 << 63),
        ("start_ns", {"ns": 1}),
        ("created_by", 5),
        ("created_by", {"x": 1}),
        ("symbols", "BTC_USDT"),
        ("symbols", [1, 2]),
        ("symbols", [""]),
        ("symbols", {"BTC_USDT": 1}),
        ("symbols", ["BTC\x07"]),
        ("channels", "depth"),
        ("channels", [None]),
        # text shown on terminals: no bidi overrides / zero-width characters, bounded lengths
        ("symbols", ["\u202eBTC_USDT"]),
        ("symbols", ["BTC\u2066"]),
        ("symbols", ["A" * 100_000]),
        ("url", "ws://x/\u202e"),
        ("created_by", "x" * 5000),
    ],
)
def test_header_fields_of_the_wrong_type_are_capture_errors(tmp_path: Path, field: str, value: Any) -> None:
    meta = {"url": URL, "start_ns": 1, "created_by": "x", "symbols": ["BTC_USDT"], "channels": ["depth"]}
    meta[field] = value
    blob = orjson.dumps(meta)
    path = tmp_path / "bad.ffcap"
    rec = RECORD_HEADER.pack(1, 2, FRAME_TEXT, 0, 0, zlib.crc32(b"{}")) + b"{}"
    path.write_bytes(FILE_HEADER.pack(MAGIC, VERSION, 0, len(blob)) + blob + rec)
    with pytest.raises(CaptureError, match=f"bad capture header: '{field}'"):
        CaptureReader(path)
    with pytest.raises(CaptureError):
        CaptureWriter(path, URL, mode="a")
    # the same metadata in an appended session record is a CaptureError naming its offset
    good = orjson.dumps({"url": URL, "start_ns": 1})
    path.write_bytes(
        FILE_HEADER.pack(MAGIC, VERSION, 0, len(good))
        + good
        + rec
        + RECORD_HEADER.pack(1, len(blob), RECORD_SESSION, 0, 0, zlib.crc32(blob))
        + blob
        + rec
    )
    at = FILE_HEADER.size + len(good) + len(rec)
    with pytest.raises(CaptureError, match=f"session record at offset {at}: bad capture header: '{field}'"):
        read(path)
    with CaptureReader(path, on_corrupt="skip") as r:
        assert len(r) == 2 and r.damaged == [(at, HSIZE + len(blob))]
        assert len(r.header.sessions) == 1  # the bad session is left out of the header
    # and the writer refuses to write such a header in the first place
    kw: dict[str, Any] = {"url": URL, "start_ns": 1}
    if field in kw:
        kw[field] = value
    else:
        kw["meta"] = {field: value}
    if value is not None or field == "url":  # start_ns=None means "now"
        with pytest.raises((TypeError, ValueError)):
            CaptureWriter(tmp_path / "new.ffcap", **kw)
        assert not (tmp_path / "new.ffcap").exists()


@pytest.mark.parametrize(
    "content, match",
    [
        (FILE_HEADER.pack(MAGIC, VERSION, 1, 2) + b"{}", "header flags"),
        (FILE_HEADER.pack(MAGIC, VERSION, 0, 0xFFFFFFFF) + b"{}", "truncated capture header"),
        (FILE_HEADER.pack(MAGIC, VERSION, 0, 4) + b"\xff\xfe{}", "damaged capture header"),
        (FILE_HEADER.pack(MAGIC, VERSION, 0, 9) + b'{"a":1e9999}'[:9], "damaged capture header"),
    ],
)
def test_bad_file_headers(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.ffcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=match):
        CaptureReader(path)


def test_payload_range_is_checked(ten: Any) -> None:
    path, _, _ = ten
    with CaptureReader(path) as r:
        with pytest.raises(ValueError):
            r.payload(r.size - 2, 10)
        with pytest.raises(ValueError):
            r.payload(0, 4)
        with pytest.raises(ValueError):
            r.payload(r.data_start, -1)


def test_writer_refuses_oversized_payloads(tmp_path: Path) -> None:
    path = tmp_path / "big.ffcap"
    with CaptureWriter(path, URL) as w:
        with pytest.raises(ValueError, match="exceeds"):
            w.write(memoryview(bytearray(MAX_PAYLOAD + 1)), 1, FRAME_BINARY)
    assert read(path) == []


# ---------------------------------------------------------------------------- fuzzing
def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, value in ops:
        if not buf:
            break
        at = where % len(buf)
        if kind == 0:
            buf[at] ^= 1 << (value % 8)
        elif kind == 1:
            buf[at] = value & 0xFF
        elif kind == 2:
            del buf[at : at + 1 + value % 40]
        elif kind == 3:
            buf[at:at] = bytes([value & 0xFF]) * (1 + value % 30)
        elif kind == 4:
            del buf[at:]
        elif len(buf) >= 4:  # a plausible-looking length or field value
            struct.pack_into("<I", buf, min(at, len(buf) - 4), value)
    return bytes(buf)


_BASE: dict[str, bytes] = {}


def _base(tmp: Path) -> bytes:
    if "v" not in _BASE:
        path = tmp / "base.ffcap"
        write(path, records(6), meta={"symbols": ["BTC_USDT"]})
        with CaptureWriter(path, URL, start_ns=77, mode="a", meta={"symbols": ["ETH_USDT"]}) as w:
            for p, t, typ in records(3):
                w.write(p, t + 100, typ)
        _BASE["v"] = path.read_bytes()
    return _BASE["v"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 1 << 20), st.integers(0, 0xFFFFFFFF)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_captures_raise_only_capture_errors(tmp_path: Path, ops: list[tuple[int, int, int]]) -> None:
    data = _mutate(_base(tmp_path), ops)
    if not data:
        return  # an empty file is not a capture; appending to it starts a new one
    path = tmp_path / "m.ffcap"
    path.write_bytes(data)
    strict: list[Any] | None
    try:
        strict = read(path)
    except CaptureError:
        strict = None
    for kw in ({"on_corrupt": "skip"}, {"verify": False}, {"verify": False, "on_corrupt": "skip"}):
        try:
            with CaptureReader(path, **kw) as r:
                h = r.header  # never raises for damage
                assert isinstance(h.symbols, tuple) and isinstance(h.end_ns, int)
                list(r)
                len(r)
        except CaptureError as exc:  # the file header itself, or (strict) a corrupt record
            assert kw.get("on_corrupt") != "skip" or exc.offset is None
    try:
        with CaptureWriter(path, URL, start_ns=1, mode="a") as w:
            w.write(b'{"new":1}', 5, FRAME_TEXT)
    except CaptureError:
        assert path.read_bytes() == data  # refused: untouched
        return
    # appended: every record a strict reader saw before is still there, then the new one
    assert strict is not None
    assert read(path) == strict + [(b'{"new":1}', 5, FRAME_TEXT)]


# ---------------------------------------------------------------------------- the command
def ff(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "fastfeed", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_cli_on_a_corrupt_capture(ten: Any, tmp_path: Path) -> None:
    path, recs, offs = ten
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, offs[3] + 8, 1 << 30)
    path.write_bytes(bytes(raw))
    before = path.read_bytes()
    r = ff("record", "BTC_USDT", "-o", str(path), "--append", "--url", "ws://127.0.0.1:9/ws/v1/")
    assert r.returncode == 4, r.stdout + r.stderr
    line = one_error_line(r.stderr, "record")
    assert f"cannot append: {path}: corrupt record at offset {offs[3]} (record 4:" in line
    assert path.read_bytes() == before

    r = ff("replay", str(path))
    assert r.returncode == 4
    assert f"corrupt record at offset {offs[3]}" in one_error_line(r.stderr, "replay")
    assert "(damaged)" in r.stdout
    r = ff("replay", str(path), "--skip-corrupt", "-q")
    assert r.returncode == 0, r.stderr
    assert "  9 frames" in r.stdout
    assert (
        f"corrupt data        1 region(s), {offs[4] - offs[3]} bytes skipped: {offs[4] - offs[3]} at offset {offs[3]}"
        in r.stdout
    )

    for out in ("e.npz", "e.csv"):
        r = ff("export", str(path), "-o", str(tmp_path / out))
        assert r.returncode == 4
        assert f"corrupt record at offset {offs[3]}" in one_error_line(r.stderr, "export")
        assert not (tmp_path / out).exists()
        r = ff("export", str(path), "-o", str(tmp_path / out), "--skip-corrupt", "-q")
        assert r.returncode == 0, r.stderr
        assert "from 9 frames" in r.stdout
        assert (
            f"corrupt data skipped: 1 region(s), {offs[4] - offs[3]} bytes, first at offset {offs[3]}"
            in r.stdout
        )
    assert path.read_bytes() == before


def test_cli_header_of_the_wrong_type_exits_4(tmp_path: Path) -> None:
    path = tmp_path / "t.ffcap"
    blob = orjson.dumps({"url": URL, "start_ns": [1]})
    path.write_bytes(FILE_HEADER.pack(MAGIC, VERSION, 0, len(blob)) + blob)
    for args in (
        ("replay", str(path)),
        ("export", str(path), "-o", str(tmp_path / "o.npz")),
        ("record", "BTC_USDT", "-o", str(path), "--append", "--url", "ws://127.0.0.1:9/ws/v1/"),
    ):
        r = ff(*args)
        assert r.returncode == 4, r.stdout + r.stderr
        assert "bad capture header: 'start_ns' must be an integer, not list" in one_error_line(
            r.stderr, args[0]
        )


def test_cli_append_after_a_torn_tail_notes_the_cut(ten: Any) -> None:
    path, recs, offs = ten
    full = path.read_bytes()
    path.write_bytes(full[: offs[9] + 25])
    # nothing listens on port 9: the append is prepared (torn tail cut), then connecting fails
    r = ff(
        "record",
        "ETH_USDT",
        "-o",
        str(path),
        "--append",
        "--url",
        "ws://127.0.0.1:9/ws/v1/",
        "--connect-timeout",
        "0.5",
    )
    assert r.returncode == 3, r.stdout + r.stderr
    assert "cut off a torn last record (25 bytes" in r.stderr
    # the failed session is taken back: the file is the intact part, header unchanged
    assert path.read_bytes() == full[: offs[9]]
    with CaptureReader(path) as rd:
        assert [bytes(x.payload) for x in rd] == [p for p, _, _ in recs[:9]]
        assert rd.header.symbols == ("BTC_USDT",) and rd.torn_bytes == 0


def test_cli_exchange_refuses_to_serve_a_corrupt_capture(ten: Any) -> None:
    path, recs, offs = ten
    raw = bytearray(path.read_bytes())
    raw[offs[5] + HSIZE] ^= 0x40
    path.write_bytes(bytes(raw))
    r = ff("exchange", "--capture", str(path), "--port", "0")
    assert r.returncode == 4, r.stdout + r.stderr
    assert f"corrupt record at offset {offs[5]} (record 6: crc mismatch" in one_error_line(
        r.stderr, "exchange"
    )
