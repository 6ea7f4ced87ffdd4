"""Shared memory under hostile or damaged segments (issue 10, defect 1).

A segment is a file anyone with the owner's rights can write. Every size, count and offset
a reader takes from it must be checked against the file before use: a bad one is a
:class:`~fastfeed.errors.ShmLayoutError` (or its subclass ``ShmCorrupt``), never a SIGBUS
or a read outside the mapping.

Every probe runs in a forked child (``isolated``): a SIGBUS/SIGSEGV regression kills only
the child and fails the test with the signal, instead of killing the test run.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fastfeed.errors import ShmCorrupt, ShmLayoutError
from fastfeed.shm import attach, segment_path

from helpers import compiled_engine_cls, depth_text, trade, trades_text

pytestmark = [
    pytest.mark.native,  # reaches compiled code: part of CI's debug and ASan runs
    pytest.mark.skipif(sys.platform != "linux", reason="POSIX shm under /dev/shm"),
]

MAGIC = 0x0031764D48534646
READY = 1
# ff_shm_header (fastfeed/_atomic.pxd): name -> (offset, struct format)
FIELDS = {
    "magic": (0, "<Q"),
    "layout": (8, "<I"),
    "header_size": (12, "<I"),
    "state": (16, "<I"),
    "flags": (20, "<I"),
    "writer_pid": (24, "<q"),
    "writer_start": (32, "<q"),
    "create_ns": (40, "<q"),
    "total_size": (48, "<Q"),
    "depth": (56, "<q"),
    "max_symbols": (64, "<q"),
    "ring_capacity": (72, "<q"),
    "symtab_off": (80, "<Q"),
    "books_off": (88, "<Q"),
    "book_stride": (96, "<Q"),
    "ring_off": (104, "<Q"),
    "event_capacity": (112, "<q"),
    "ticker_capacity": (120, "<q"),
    "n_symbols": (128, "<q"),
    "event_off": (136, "<Q"),
    "ticker_off": (144, "<Q"),
    "trade_count": (192, "<q"),
    "event_count": (200, "<q"),
    "ticker_count": (208, "<q"),
}
LAYOUT = 2
DEPTH, SLOTS, RING = 4, 4, 8


def _layout(depth: int, slots: int, ring: int) -> tuple[int, int, int, int, int]:
    """(symtab_off, books_off, book_stride, ring_off, total_size), as documented in
    docs/shm-and-exports.md: 512-byte header, 64-byte symbol slots, per book a 64-byte
    header and 2 x depth x 16 bytes of rows, 2 x ring x 56-byte trades; regions 64-byte
    aligned, the total a multiple of 4096."""

    def up(n: int, a: int) -> int:
        return -(-n // a) * a

    books = up(512 + 64 * slots, 64)
    stride = up(64 + 32 * depth, 64)
    ring_off = up(books + slots * stride, 64)
    return 512, books, stride, ring_off, up(ring_off + 2 * ring * 56, 4096)


def rings_layout(depth: int, slots: int, ring: int, events: int, tickers: int) -> tuple[int, int, int]:
    """(event_off, ticker_off, total_size) with an event log (2 x events x 64 B) and a ticker
    history (2 x tickers x 152 B) after the trade ring, each 64-byte aligned, 0 = absent."""

    def up(n: int, a: int) -> int:
        return -(-n // a) * a

    ring_off = _layout(depth, slots, ring)[3]
    end = ring_off + 2 * ring * 56
    event_off = ticker_off = 0
    if events:
        event_off = up(end, 64)
        end = event_off + 2 * events * 64
    if tickers:
        ticker_off = up(end, 64)
        end = ticker_off + 2 * tickers * 152
    return event_off, ticker_off, up(end, 4096)


def put(buf: bytearray, field: str, value: int) -> None:
    off, fmt = FIELDS[field]
    struct.pack_into(fmt, buf, off, value)


def image(
    symbols: tuple[str, ...] = ("A_USDT",),
    *,
    g_depth: int = DEPTH,
    g_slots: int = SLOTS,
    g_ring: int = RING,
    g_events: int = 0,
    g_tickers: int = 0,
    **fields: int,
) -> bytearray:
    """A segment file as a writer of this version lays it out (``fastfeed/_shm.pyx``) for
    the geometry ``g_*``, with ``fields`` of the header overridden afterwards."""
    depth, slots, ring = g_depth, g_slots, g_ring
    symtab, books, stride, ring_off, _ = _layout(depth, slots, ring)
    event_off, ticker_off, total = rings_layout(depth, slots, ring, g_events, g_tickers)
    buf = bytearray(total)
    for k, v in dict(
        magic=MAGIC,
        layout=LAYOUT,
        header_size=512,
        state=READY,
        flags=0,
        writer_pid=os.getpid(),
        writer_start=0,
        create_ns=1,
        total_size=total,
        depth=depth,
        max_symbols=slots,
        ring_capacity=ring,
        symtab_off=symtab,
        books_off=books,
        book_stride=stride,
        ring_off=ring_off,
        event_capacity=g_events,
        ticker_capacity=g_tickers,
        event_off=event_off,
        ticker_off=ticker_off,
        n_symbols=len(symbols),
        trade_count=0,
        event_count=0,
        ticker_count=0,
    ).items():
        put(buf, k, v)
    for i, s in enumerate(symbols):
        raw = s.encode("latin-1")
        struct.pack_into("<I", buf, symtab + 64 * i, len(raw))
        buf[symtab + 64 * i + 8 : symtab + 64 * i + 8 + len(raw)] = raw
    for k, v in fields.items():
        put(buf, k, v)
    return buf


def book_at(idx: int) -> int:
    _, books, stride, _, _ = _layout(DEPTH, SLOTS, RING)
    return books + idx * stride


def write(name: str, data: bytes | bytearray) -> None:
    with open(segment_path(name), "wb") as f:
        f.write(data)


def isolated(fn: Callable[[], Any]) -> tuple[str, Any]:
    """Run ``fn`` in a forked child. Returns ``("ok", result)`` or ``("raised",
    (exception class name, reason, message))``; a child killed by a signal fails the test."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        try:
            try:
                out: tuple[str, Any] = ("ok", fn())
            except BaseException as exc:
                out = ("raised", (type(exc).__name__, getattr(exc, "reason", None), str(exc)))
            with os.fdopen(w, "wb") as f:
                pickle.dump(out, f)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        pytest.fail(f"the probe was killed by {signal.Signals(os.WTERMSIG(status)).name}")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    return pickle.loads(data)


def attach_and_read(name: str) -> Callable[[], Any]:
    """Attach and touch everything a user would: symbols, books, trades."""

    def probe() -> Any:
        r = attach(name, timeout=0.05)
        out = [r.symbols]
        for s in r.symbols:
            b = r.book(s)
            out.append((b.snapshot()[0].tolist(), b.bids.tolist(), b.n_bids, len(b)))
        out.append(r.trades.snapshot().tolist())
        out.append(r.trades.latest().tolist())
        return out

    return probe


def assert_layout_error(result: tuple[str, Any], match: str, cls: type = ShmLayoutError) -> None:
    kind, value = result
    assert kind == "raised", f"no error: {value!r}"
    name, reason, message = value
    assert name in {c.__name__ for c in (cls, *cls.__subclasses__())}, value
    assert match in message, value
    assert reason in ("layout", "corrupt", "truncated")


# --- the crafted header of the report and its relatives --------------------------------


def test_valid_crafted_image_attaches(shm_name: str) -> None:
    """The synthetic image is right: without damage it attaches and reads."""
    write(shm_name, image())
    assert isolated(attach_and_read(shm_name)) == ("ok", [["A_USDT"], ([], [], 0, 0), [], []])


def test_4k_file_claiming_a_million_symbols(shm_name: str) -> None:
    """The reported crash: 4 KiB, valid magic, 1,000,000 symbols -> SIGBUS in _refresh."""
    buf = image()[:4096]
    put(buf, "max_symbols", 1_000_000)
    put(buf, "n_symbols", 1_000_000)
    write(shm_name, buf)
    assert_layout_error(isolated(attach_and_read(shm_name)), "do not match its geometry")
    # also with offsets and size that agree with the claim (only the file is too short)
    symtab, books, stride, ring_off, total = _layout(DEPTH, 1_000_000, RING)
    for k, v in dict(
        symtab_off=symtab, books_off=books, book_stride=stride, ring_off=ring_off, total_size=total
    ).items():
        put(buf, k, v)
    write(shm_name, buf)
    assert_layout_error(isolated(attach_and_read(shm_name)), "the file has 4096 bytes")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"depth": 1 << 40}, "depth 1099511627776 is not between 1 and"),
        ({"depth": 0}, "depth 0 is not between"),
        ({"depth": -5}, "depth -5 is not between"),
        ({"max_symbols": 0}, "max_symbols 0 is not between"),
        ({"max_symbols": -1}, "max_symbols -1 is not between"),
        ({"max_symbols": 1 << 62}, "is not between 1 and"),
        ({"ring_capacity": 6}, "ring_capacity 6 is not a power of two"),
        ({"ring_capacity": 0}, "ring_capacity 0 is not a power of two"),
        ({"ring_capacity": -8}, "ring_capacity -8 is not a power of two"),
        ({"ring_capacity": 1 << 62}, "is not a power of two between"),
        ({"depth": DEPTH * 2}, "do not match its geometry"),  # rows would overrun
        ({"max_symbols": SLOTS + 1}, "do not match its geometry"),
        ({"ring_capacity": RING * 64}, "do not match its geometry"),
        ({"books_off": 1 << 40}, "do not match its geometry"),  # offsets beyond size
        ({"ring_off": 2**64 - 64}, "do not match its geometry"),
        ({"book_stride": 8}, "do not match its geometry"),
        ({"symtab_off": 64}, "do not match its geometry"),
        ({"total_size": 1 << 50}, "do not match its geometry"),
        ({"writer_pid": 1 << 40}, "is not a process id"),  # was an OverflowError
        ({"writer_pid": -1}, "is not a process id"),
        ({"state": 9}, "unknown state 9"),
        ({"flags": 0x80}, "unknown flags 0x80"),
        ({"header_size": 4096}, "is not a fastfeed segment"),
        ({"layout": 1}, "is not a fastfeed segment"),  # the layout before the event log
        ({"layout": 3}, "is not a fastfeed segment"),
    ],
)
def test_bad_header_fields(shm_name: str, fields: dict[str, int], match: str) -> None:
    write(shm_name, image(**fields))
    assert_layout_error(isolated(attach_and_read(shm_name)), match)


def test_truncated_and_extended_files(shm_name: str) -> None:
    good = image(g_depth=64, g_slots=16, g_ring=64)
    assert len(good) > 4 * 4096
    for size in (len(good) - 4096, len(good) - 1, 4096, 600):
        write(shm_name, good[:size])
        assert_layout_error(isolated(attach_and_read(shm_name)), f"the file has {size} bytes")
    write(shm_name, good + bytes(4096))
    assert_layout_error(isolated(attach_and_read(shm_name)), f"the file has {len(good) + 4096}")


def test_file_shorter_than_a_header(shm_name: str) -> None:
    write(shm_name, image()[:100])
    assert_layout_error(isolated(attach_and_read(shm_name)), "has 100 bytes, less than a header")


# --- counts in the symbol table, the books and the trade ring ---------------------------


@pytest.mark.parametrize(
    ("n_symbols", "match"),
    [
        (SLOTS + 1, f"n_symbols {SLOTS + 1} is not between 0 and max_symbols {SLOTS}"),
        (-1, "n_symbols -1 is not between"),
        (1 << 62, "is not between 0 and max_symbols"),
    ],
)
def test_symbol_count_beyond_the_slots(shm_name: str, n_symbols: int, match: str) -> None:
    write(shm_name, image(n_symbols=n_symbols))
    assert_layout_error(isolated(attach_and_read(shm_name)), match, ShmCorrupt)


@pytest.mark.parametrize(
    ("length", "name", "match"),
    [
        (0, b"", "name length of 0"),
        (33, b"A" * 33, "name length of 33"),
        (57, b"A" * 56, "name length of 57"),
        (2**32 - 1, b"A", "name length of 4294967295"),
        (3, b"\xff\xfeA", "is not ASCII"),
    ],
)
def test_bad_symbol_names(shm_name: str, length: int, name: bytes, match: str) -> None:
    buf = image(("OK",) * 1)
    symtab = _layout(DEPTH, SLOTS, RING)[0]
    put(buf, "n_symbols", 2)
    struct.pack_into("<I", buf, symtab + 64, length)
    buf[symtab + 64 + 8 : symtab + 64 + 8 + len(name)] = name
    write(shm_name, buf)
    assert_layout_error(isolated(attach_and_read(shm_name)), match, ShmCorrupt)


def test_duplicate_symbol_names(shm_name: str) -> None:
    write(shm_name, image(("A", "B", "A")))
    assert_layout_error(isolated(attach_and_read(shm_name)), "symbol 'A' appears twice", ShmCorrupt)


@pytest.mark.parametrize(
    ("n_bids", "n_asks"), [(DEPTH + 1, 0), (0, DEPTH + 1), (1 << 62, 1), (-1, 0), (0, -(1 << 62))]
)
def test_book_row_counts_beyond_depth(shm_name: str, n_bids: int, n_asks: int) -> None:
    """A corrupt row count is a typed error for every read path, never a memcpy of it."""
    buf = image()
    off = book_at(0)
    struct.pack_into("<Qqqq", buf, off, 2, n_bids, n_asks, 1)  # seq even, counts, version
    write(shm_name, buf)

    def probe() -> Any:
        b = attach(shm_name).book("A_USDT")
        b.max_retries = 5
        out = []
        for what in (
            "snapshot",
            "read",
            "read_into",
            "bids",
            "asks",
            "n_bids",
            "n_asks",
            "best_bid",
            "best_ask",
            "len",
            "to_pandas",
        ):
            try:
                if what == "read_into":
                    b.read_into(np.empty((DEPTH, 2)), np.empty((DEPTH, 2)))
                elif what == "len":
                    len(b)
                elif what in ("snapshot", "read", "to_pandas"):
                    getattr(b, what)()
                else:
                    getattr(b, what)
                out.append((what, "no error"))
            except ShmCorrupt as exc:
                out.append((what, exc.reason))
        return out

    kind, out = isolated(probe)
    assert kind == "ok", out
    per_side = {"bids", "n_bids", "best_bid", "asks", "n_asks", "best_ask"}
    bad_side = {w for w in per_side if ("bid" in w) == (not 0 <= n_bids <= DEPTH)}
    for what, res in out:
        if what in per_side and what not in bad_side:
            assert res == "no error", (what, res)
        else:
            assert res == "corrupt", (what, res)


@pytest.mark.parametrize("count", [-1, -(1 << 62)])
def test_negative_trade_count(shm_name: str, count: int) -> None:
    write(shm_name, image(trade_count=count))

    def probe() -> Any:
        t = attach(shm_name).trades
        out = []
        for call in (
            lambda: t.count,
            lambda: len(t),
            lambda: t.latest(),
            lambda: t.since(0),
            lambda: t.snapshot(),
            lambda: t.snapshot_since(0),
            lambda: t.to_pandas(),
        ):
            try:
                call()
                out.append("no error")
            except ShmCorrupt as exc:
                out.append(exc.reason)
        return out

    assert isolated(probe) == ("ok", ["corrupt"] * 7)


def test_huge_trade_count_stays_in_the_ring(shm_name: str) -> None:
    """Any count is masked into the ring: a huge one reads (garbage) records, in bounds."""
    write(shm_name, image(trade_count=(1 << 63) - 1))

    def probe() -> Any:
        t = attach(shm_name).trades
        return len(t.latest()), len(t.snapshot()), len(t.since((1 << 63) - 3))

    assert isolated(probe) == ("ok", (RING, RING - 1, 2))


# --- a segment changed or truncated after attach ----------------------------------------


def test_layout_fields_are_read_once(shm_name: str) -> None:
    """A process that rewrites the header's geometry after attach redirects neither the
    reader nor the writer: both keep the layout they validated/created."""
    eng = compiled_engine_cls()(depth=DEPTH, trade_capacity=RING, shm_name=shm_name, shm_max_symbols=SLOTS)
    try:
        eng.feed(depth_text(True, "A", bids=[["1", "2"]]))
        r = attach(shm_name)
        assert r.book("A").snapshot()[0].tolist() == [[1.0, 2.0]]
        mm = np.memmap(segment_path(shm_name), dtype="<u8", mode="r+", shape=(16,))
        mm[7] = 1 << 40  # depth
        mm[8] = 1 << 40  # max_symbols
        mm[9] = 1 << 40  # ring_capacity
        mm[10] = 0  # symtab_off
        mm[11] = 1 << 40  # books_off
        mm[12] = 1 << 40  # book_stride
        mm[13] = 1 << 40  # ring_off
        mm.flush()
        del mm
        eng.feed(depth_text(True, "B", bids=[["3", "4"]]))  # writer: cached layout
        eng.feed(trades_text(False, "B", [trade(1, "5", "1")]))
        assert r.symbols == ["A", "B"]  # reader: cached layout
        assert r.book("B").snapshot()[0].tolist() == [[3.0, 4.0]]
        assert r.trades.snapshot()["price"].tolist() == [5.0]
        r.close()
    finally:
        eng.close()


def test_symbol_count_changed_after_attach(shm_name: str) -> None:
    buf = image(("A", "B"))
    write(shm_name, buf)

    def probe() -> Any:
        r = attach(shm_name)
        out = [r.symbols]
        mm = np.memmap(segment_path(shm_name), dtype="<i8", mode="r+", shape=(64,))
        for bad in (SLOTS + 1, 1, -7):
            mm[16] = bad  # n_symbols
            mm.flush()
            try:
                r.symbols
                out.append("no error")
            except ShmCorrupt as exc:
                out.append(str(exc))
        mm[16] = 2
        mm.flush()
        out.append(r.symbols)
        return out

    kind, out = isolated(probe)
    assert kind == "ok", out
    assert out[0] == ["A", "B"] and out[-1] == ["A", "B"]
    assert "n_symbols 5 is not between 0 and max_symbols 4" in out[1]
    assert "n_symbols went back from 2 to 1" in out[2]
    assert "n_symbols -7 is not between" in out[3]


def test_trade_count_going_back(shm_name: str) -> None:
    write(shm_name, image(trade_count=5))

    def probe() -> Any:
        t = attach(shm_name).trades
        first = t.count
        mm = np.memmap(segment_path(shm_name), dtype="<i8", mode="r+", shape=(64,))
        mm[24] = 3  # trade_count
        mm.flush()
        try:
            t.snapshot()
            return first, "no error"
        except ShmCorrupt as exc:
            return first, str(exc)

    kind, (first, err) = isolated(probe)
    assert kind == "ok" and first == 5
    assert "trade_count 3 went back (was 5)" in err


def test_truncated_after_attach(shm_name: str) -> None:
    """A segment truncated while attached: the reader checks the file's size before it
    reads a part of the segment it has not read before (new symbols, new books), so a
    truncation that happened before that is an error, not a SIGBUS. (A truncation racing
    with a read cannot be caught without a signal handler: see docs/shm-and-exports.md.)"""
    buf = image(("A", "B"), g_depth=64, g_slots=16, g_ring=64)
    assert len(buf) > 4 * 4096
    put(buf, "n_symbols", 1)
    write(shm_name, buf)

    def probe() -> Any:
        r = attach(shm_name)
        out: list[Any] = [r.symbols]
        mm = np.memmap(segment_path(shm_name), dtype="<i8", mode="r+", shape=(64,))
        mm[16] = 2  # B is published
        mm.flush()
        del mm
        os.truncate(segment_path(shm_name), 4096)
        for call in (lambda: r.symbols, lambda: r.book("A")):
            try:
                call()
                out.append("no error")
            except ShmCorrupt as exc:
                out.append((exc.reason, str(exc)))
        return out

    kind, out = isolated(probe)
    assert kind == "ok", out
    assert out[0] == ["A"]
    for reason, msg in out[1:]:
        assert reason == "truncated" and "was truncated to 4096 bytes" in msg


# --- the writer meeting a damaged segment under its name --------------------------------


@pytest.mark.parametrize(
    "fields",
    [{"writer_pid": 1 << 40}, {"writer_pid": -3}, {"writer_pid": 0, "depth": -1, "max_symbols": 1 << 62}],
)
def test_writer_replaces_a_damaged_stale_segment(shm_name: str, fields: dict[str, int]) -> None:
    write(shm_name, image(**fields))

    def probe() -> Any:
        eng = compiled_engine_cls()(depth=DEPTH, shm_name=shm_name)
        eng.feed(depth_text(True, "A", bids=[["1", "1"]]))
        with attach(shm_name) as r:
            return r.writer_pid == os.getpid(), r.book("A").snapshot()[0].tolist()

    assert isolated(probe) == ("ok", (True, [[1.0, 1.0]]))


def test_writer_geometry_is_bounded(shm_name: str) -> None:
    Engine = compiled_engine_cls()
    for kw, match in (
        ({"depth": (1 << 20) + 1}, "depth 1048577 is not between 1 and 1048576"),
        ({"shm_max_symbols": 0}, "max_symbols must be >= 1"),
        ({"shm_max_symbols": (1 << 20) + 1}, "max_symbols 1048577"),
    ):
        with pytest.raises(ValueError, match=match):
            Engine(shm_name=shm_name, **kw)
        assert not os.path.exists(segment_path(shm_name))
