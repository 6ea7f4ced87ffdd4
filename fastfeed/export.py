"""Research exports: captures to hftbacktest ``.npz`` event files and to Parquet.

* :func:`capture_to_npz` replays a capture through an engine with the event log on and
  writes every applied book change and every stored trade as hftbacktest event rows
  (:data:`fastfeed.events.EVENT_DTYPE`) with ``np.savez_compressed(out, data=rows, ...)``.
* :func:`capture_to_parquet` writes the same rows (or the trades) to a Parquet file with
  pyarrow, an optional dependency (``pip install pyarrow``; in a clone ``pip install -e '.[parquet]'``).
* :func:`capture_to_csv` writes the same rows (or the trades) as CSV text.
* :func:`capture_events` returns the rows as one array, for use in memory.

All of them run one pump (``_pump``: capture -> engine -> chunks of rows); each output is
just a writer of those chunks.

A *source* is a capture file path (read with :class:`fastfeed.capture.CaptureReader`), an
open ``CaptureReader``, or any iterable of ``(recv_ns, payload)`` pairs (or of objects with
``recv_ns`` and ``payload`` attributes, such as capture ``Record`` objects). Frames the
engine rejects are counted and skipped, as in :func:`fastfeed.capture.replay`. A corrupt
capture raises :class:`~fastfeed.errors.CaptureError` (naming the offset) unless
``on_corrupt="skip"``, which skips the damaged bytes and lists them in
``ExportStats.damaged``; a torn last record is always skipped (``ExportStats.torn_bytes``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from .errors import ExportOverflow, FastfeedError
from .events import EVENT_DTYPE, kinds, sides
from .layout import TRADE_DTYPE

if TYPE_CHECKING:
    from ._events import EventRing
    from ._ring import TradeRing

__all__ = [
    "ExportStats",
    "capture_events",
    "capture_to_csv",
    "capture_to_npz",
    "capture_to_parquet",
    "events_to_arrow",
    "iter_source",
    "trades_to_arrow",
]

Source = Any  # str | os.PathLike | CaptureReader | Iterable[tuple[int, payload]]

#: Default event-log ring of the export engine (rows; 16 MiB x 2 mirror).
DEFAULT_RING = 1 << 18


@dataclass
class ExportStats:
    """What an export did: frames fed, frames rejected (by reason), rows written, the
    symbol table (``ival`` / ``symbol`` index -> name), wall time, output path."""

    frames: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    symbols: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    path: str = ""
    #: Bytes of a torn last record skipped (capture sources).
    torn_bytes: int = 0
    #: ``(offset, length)`` of each corrupt region skipped (``on_corrupt="skip"``).
    damaged: list[tuple[int, int]] = field(default_factory=list)
    #: Asked-for symbols (``symbols=``) that never appeared in the capture (so no rows).
    unmatched: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- sources
def _is_path(source: Any) -> bool:
    return isinstance(source, (str, bytes, os.PathLike))


def iter_source(source: Source, on_corrupt: str = "raise") -> Iterator[tuple[int, Any]]:
    """Yield ``(recv_ns, payload)`` from a capture path, a ``CaptureReader`` or an iterable
    of pairs / records. Payloads from a capture are memoryviews valid while iterating.
    ``on_corrupt`` applies to a capture opened from a path (see ``CaptureReader``)."""
    if _is_path(source):
        from .capture import CaptureReader

        with CaptureReader(source, on_corrupt=on_corrupt) as reader:  # type: ignore[arg-type]
            for rec in reader:
                yield rec.recv_ns, rec.payload
        return
    for item in source:
        if hasattr(item, "payload"):
            yield int(item.recv_ns), item.payload
        else:
            recv_ns, payload = item
            yield int(recv_ns), payload


def _source_size(source: Source) -> int:
    if _is_path(source):
        try:
            return os.path.getsize(source)
        except OSError:
            return 0
    size = getattr(source, "size", None)
    if isinstance(size, int):
        return size
    try:
        return len(source)
    except TypeError:
        return 0


class _Progress:
    """Progress over the source (bytes of a capture, else frames): a rich bar when rich
    is importable, else a plain line on ``stream`` updated at most twice a second."""

    def __init__(self, total: int, label: str, stream: IO[str] | None, unit: str) -> None:
        self.total = max(int(total), 1)
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.unit = unit
        self._last = 0.0
        self._rich: Any = None
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )
        except ImportError:  # pragma: no cover - rich is optional
            return
        self._rich = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[rows]} rows"),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
            transient=False,
        )
        self._rich.start()
        self._task = self._rich.add_task(label, total=self.total, rows=0)

    def update(self, done: int, rows: int) -> None:
        if self._rich is not None:
            self._rich.update(self._task, completed=min(done, self.total), rows=rows)
            return
        now = time.monotonic()
        if now - self._last >= 0.5:  # pragma: no cover - only without rich
            self._last = now
            self.stream.write(f"\r{self.label}: {100.0 * done / self.total:5.1f}% {rows} rows")
            self.stream.flush()

    def close(self, done: int, rows: int) -> None:
        if self._rich is not None:
            self._rich.update(self._task, completed=min(done, self.total), rows=rows)
            self._rich.stop()
        else:  # pragma: no cover - only without rich
            self.stream.write(f"\r{self.label}: {100.0 * done / self.total:5.1f}% {rows} rows\n")
            self.stream.flush()


# ----------------------------------------------------------------------------- the pump
def _pump(
    source: Source,
    sink: Callable[[np.ndarray, list[str]], None],
    *,
    what: str,
    depth: int,
    ring: int,
    progress: bool | None,
    progress_file: IO[str] | None,
    label: str,
    on_corrupt: str = "raise",
) -> ExportStats:
    """Feed ``source`` through a fresh engine; hand every new chunk of event rows (or trade
    records) to ``sink(chunk, symbols)`` in order. The chunks are views: copy to keep."""
    from ._engine import Engine

    if what not in ("events", "trades"):
        raise ValueError("what must be 'events' or 'trades'")
    buf: EventRing | TradeRing | None
    if what == "events":
        eng = Engine(depth=depth, trade_capacity=1024, event_log=ring)
        buf = eng.events
    else:
        eng = Engine(depth=depth, trade_capacity=ring)
        buf = eng.trades
    if buf is None:
        raise ValueError(f"ring must be positive, not {ring!r}")
    capacity = buf.capacity
    high = capacity // 2
    stats = ExportStats()
    from .capture import RECORD_HEADER

    reader = None
    if _is_path(source):  # open it here to read back what the reader skipped
        from .capture import CaptureReader

        reader = source = CaptureReader(source, on_corrupt=on_corrupt)  # type: ignore[arg-type]
    bytes_mode = _is_path(source) or hasattr(source, "data_start")
    total = _source_size(source)
    if progress is None:
        progress = bool(getattr(progress_file or sys.stderr, "isatty", lambda: False)())
    bar = None
    if progress:
        bar = _Progress(total, label, progress_file, "B" if bytes_mode else "frames")
    feed = eng.feed
    pos = 0
    done = 0
    hsize = RECORD_HEADER.size
    t0 = time.perf_counter()

    def drain() -> None:
        nonlocal pos
        try:
            chunk = buf.since(pos)
        except IndexError:
            raise ExportOverflow(
                f"the export ring ({capacity} rows) overflowed within one frame; "
                f"pass a larger ring= (e.g. {capacity * 4})"
            ) from None
        if len(chunk):
            sink(chunk, eng.symbols)
            stats.rows += len(chunk)
        pos = buf.count

    try:
        for recv_ns, payload in iter_source(source):
            try:
                feed(payload, recv_ns)
            except FastfeedError as exc:
                reason = getattr(exc, "reason", type(exc).__name__)
                stats.rejects[reason] = stats.rejects.get(reason, 0) + 1
            stats.frames += 1
            if buf.count - pos >= high:
                drain()
            if bar is not None:
                n = payload.nbytes if isinstance(payload, memoryview) else len(payload)
                done += hsize + n if bytes_mode else 1
                if not stats.frames & 0x3FF:
                    bar.update(done, stats.rows + buf.count - pos)
        drain()
    finally:
        stats.elapsed = time.perf_counter() - t0
        stats.symbols = eng.symbols
        if hasattr(source, "torn_bytes") and hasattr(source, "damaged"):
            stats.torn_bytes = source.torn_bytes
            stats.damaged = list(source.damaged)
        if reader is not None:
            reader.close()
        if bar is not None:
            bar.close(total if bytes_mode else done, stats.rows)
    return stats


# ----------------------------------------------------------------------------- npz
def _select(rows: np.ndarray, wanted: set[int] | None, field_name: str) -> np.ndarray:
    if wanted is None:
        return rows
    return rows[np.isin(rows[field_name], np.fromiter(wanted, dtype=np.int64))]


def _names_of(symbols: Sequence[str] | str | None) -> list[str] | None:
    if symbols is None:
        return None
    return [symbols.upper()] if isinstance(symbols, str) else list(dict.fromkeys(s.upper() for s in symbols))


def _wanted(symbols: Sequence[str] | str | None) -> Callable[[list[str]], set[int] | None]:
    names = _names_of(symbols)
    if names is None:
        return lambda table: None
    wanted = set(names)
    return lambda table: {i for i, s in enumerate(table) if s in wanted}


def _unmatched(symbols: Sequence[str] | str | None, table: Sequence[str]) -> list[str]:
    """The asked-for symbols the engine never saw."""
    names = _names_of(symbols)
    seen = set(table)
    return [] if names is None else [s for s in names if s not in seen]


def capture_events(
    source: Source,
    *,
    symbols: Sequence[str] | str | None = None,
    depth: int = 200,
    ring: int = DEFAULT_RING,
    progress: bool | None = False,
    progress_file: IO[str] | None = None,
    on_corrupt: str = "raise",
) -> tuple[np.ndarray, ExportStats]:
    """All event rows of ``source`` as one :data:`~fastfeed.events.EVENT_DTYPE` array
    (owned by the caller), optionally only those of ``symbols``. ``depth`` is the engine's
    book depth (rows reproduce a book of that depth). ``on_corrupt``: see the module
    docstring."""
    chunks: list[np.ndarray] = []
    pick = _wanted(symbols)

    def sink(chunk: np.ndarray, table: list[str]) -> None:
        chunks.append(_select(chunk, pick(table), "ival").copy())

    stats = _pump(
        source,
        sink,
        what="events",
        depth=depth,
        ring=ring,
        progress=progress,
        progress_file=progress_file,
        label="events",
        on_corrupt=on_corrupt,
    )
    rows = np.concatenate(chunks) if chunks else np.empty(0, dtype=EVENT_DTYPE)
    stats.rows = len(rows)
    stats.unmatched = _unmatched(symbols, stats.symbols)
    return rows, stats


def capture_to_npz(
    capture_path: Source,
    out_path: str | os.PathLike[str],
    *,
    symbols: Sequence[str] | str | None = None,
    depth: int = 200,
    ring: int = DEFAULT_RING,
    include_symbols: bool = True,
    progress: bool | None = None,
    progress_file: IO[str] | None = None,
    on_corrupt: str = "raise",
) -> ExportStats:
    """Convert a capture to an hftbacktest event file.

    Writes ``np.savez_compressed(out_path, data=rows, symbols=names)``: ``data`` holds
    the :data:`~fastfeed.events.EVENT_DTYPE` rows (``np.load(out)["data"]`` has exactly that
    dtype), ``symbols`` the symbol names that ``ival`` indexes (left out with
    ``include_symbols=False``). hftbacktest simulates one asset per file: pass
    ``symbols="BTC_USDT"`` to keep one symbol's rows. ``progress`` shows a bar (default:
    when stderr is a terminal). ``on_corrupt``: see the module docstring. Returns
    :class:`ExportStats`.
    """
    rows, stats = capture_events(
        capture_path,
        symbols=symbols,
        depth=depth,
        ring=ring,
        progress=progress,
        progress_file=progress_file,
        on_corrupt=on_corrupt,
    )
    arrays: dict[str, Any] = {"data": rows}
    if include_symbols:
        arrays["symbols"] = np.array(stats.symbols, dtype=str)
    np.savez_compressed(out_path, **arrays)
    stats.path = os.fspath(out_path)
    if not stats.path.endswith(".npz"):
        stats.path += ".npz"  # numpy appends the suffix
    return stats


# ----------------------------------------------------------------------------- arrow / parquet
def _pyarrow() -> Any:
    try:
        import pyarrow as pa
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Parquet/Arrow export needs pyarrow: pip install pyarrow (in a clone: pip install -e '.[parquet]')"
        ) from exc
    return pa


def _names(index: np.ndarray, symbols: Sequence[str]) -> Any:
    pa = _pyarrow()
    table = list(symbols)
    idx = np.where((index >= 0) & (index < len(table)), index, -1).astype(np.int32)
    mask = idx < 0
    return pa.DictionaryArray.from_arrays(
        pa.array(np.where(mask, 0, idx), type=pa.int32(), mask=mask if mask.any() else None),
        pa.array(table if table else [""], type=pa.string()),
    )


def events_to_arrow(rows: np.ndarray, symbols: Sequence[str] | None = None) -> Any:
    """Event rows as a ``pyarrow.Table``: the eight raw columns (same types), plus ``kind``
    (uint8: 1 depth, 2 trade, 3 clear, 4 snapshot), ``side`` (int8: +1 buy, -1 sell, 0),
    ``symbol`` (dictionary-encoded names, when ``symbols`` is given) and ``exch_time`` /
    ``local_time`` (``timestamp[ns, UTC]``)."""
    pa = _pyarrow()
    rows = np.asarray(rows)
    if rows.dtype != EVENT_DTYPE:
        raise TypeError(f"expected EVENT_DTYPE rows, got {rows.dtype}")
    cols: dict[str, Any] = {
        name: pa.array(np.ascontiguousarray(rows[name])) for name in EVENT_DTYPE.names or ()
    }
    cols["kind"] = pa.array(kinds(rows))
    cols["side"] = pa.array(sides(rows))
    if symbols is not None:
        cols["symbol"] = _names(rows["ival"], symbols)
    ts = pa.timestamp("ns", tz="UTC")
    cols["exch_time"] = pa.array(np.ascontiguousarray(rows["exch_ts"]), type=pa.int64()).cast(ts)
    cols["local_time"] = pa.array(np.ascontiguousarray(rows["local_ts"]), type=pa.int64()).cast(ts)
    return pa.table(cols)


def trades_to_arrow(rows: np.ndarray, symbols: Sequence[str]) -> Any:
    """Trade records (:data:`fastfeed.TRADE_DTYPE`) as a ``pyarrow.Table``: the raw fields,
    ``symbol`` names (dictionary-encoded) instead of the index, ``exch_time`` (the
    exchange ``time`` rounded to microseconds) and ``recv_time``, both ``timestamp`` UTC."""
    pa = _pyarrow()
    rows = np.asarray(rows)
    if rows.dtype != TRADE_DTYPE:
        raise TypeError(f"expected TRADE_DTYPE records, got {rows.dtype}")
    cols: dict[str, Any] = {}
    for name in ("seq", "id", "side", "price", "amount", "time", "recv_ns"):
        cols[name] = pa.array(np.ascontiguousarray(rows[name]))
    cols["symbol"] = _names(rows["symbol"], symbols)
    us = np.round(rows["time"] * 1e6).astype(np.int64)
    cols["exch_time"] = pa.array(us, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    cols["recv_time"] = pa.array(np.ascontiguousarray(rows["recv_ns"]), type=pa.int64()).cast(
        pa.timestamp("ns", tz="UTC")
    )
    return pa.table(cols)


def capture_to_parquet(
    capture_path: Source,
    out_path: str | os.PathLike[str],
    *,
    what: str = "events",
    symbols: Sequence[str] | str | None = None,
    depth: int = 200,
    ring: int = DEFAULT_RING,
    compression: str = "zstd",
    progress: bool | None = None,
    progress_file: IO[str] | None = None,
    on_corrupt: str = "raise",
) -> ExportStats:
    """Convert a capture to Parquet (needs pyarrow), streamed in row groups.

    ``what="events"``: the event rows (:func:`events_to_arrow` columns);
    ``what="trades"``: the stored trades (:func:`trades_to_arrow` columns). The symbol
    dictionary is the engine's final symbol table, so ``symbol`` is resolved for every
    row. ``symbols`` keeps only those symbols' rows. ``on_corrupt``: see the module
    docstring. Returns :class:`ExportStats`.
    """
    pa = _pyarrow()
    import pyarrow.parquet as pq

    pick = _wanted(symbols)
    pending: list[np.ndarray] = []
    pending_rows = 0
    writer: list[Any] = []
    field_name = "ival" if what == "events" else "symbol"
    to_table = events_to_arrow if what == "events" else trades_to_arrow
    written = 0

    def flush(table_symbols: list[str]) -> None:
        nonlocal pending, pending_rows
        if not pending:
            return
        rows = np.concatenate(pending)
        pending, pending_rows = [], 0
        table = to_table(rows, table_symbols)
        # Dictionary columns may grow from one row group to the next: write plain strings.
        if "symbol" in table.column_names:
            i = table.column_names.index("symbol")
            table = table.set_column(i, "symbol", table.column("symbol").cast(pa.string()))
        if not writer:
            writer.append(pq.ParquetWriter(os.fspath(out_path), table.schema, compression=compression))
        writer[0].write_table(table)

    def sink(chunk: np.ndarray, table_symbols: list[str]) -> None:
        nonlocal pending_rows, written
        rows = _select(chunk, pick(table_symbols), field_name).copy()
        pending.append(rows)
        pending_rows += len(rows)
        written += len(rows)
        if pending_rows >= 1 << 20:
            flush(table_symbols)

    try:
        stats = _pump(
            capture_path,
            sink,
            what=what,
            depth=depth,
            ring=ring,
            progress=progress,
            progress_file=progress_file,
            label=what,
            on_corrupt=on_corrupt,
        )
        flush(stats.symbols)
        if not writer:  # no rows at all: still write a valid, empty file
            empty = np.empty(0, dtype=EVENT_DTYPE if what == "events" else TRADE_DTYPE)
            table = to_table(empty, stats.symbols)
            if "symbol" in table.column_names:
                i = table.column_names.index("symbol")
                table = table.set_column(i, "symbol", table.column("symbol").cast(pa.string()))
            writer.append(pq.ParquetWriter(os.fspath(out_path), table.schema, compression=compression))
    finally:
        for w in writer:
            w.close()
    stats.rows = written
    stats.path = os.fspath(out_path)
    stats.unmatched = _unmatched(symbols, stats.symbols)
    return stats


# ----------------------------------------------------------------------------- csv
#: CSV header of each ``what``
CSV_COLUMNS = {
    "events": ("local_ts", "exch_ts", "symbol", "kind", "side", "price", "qty", "trade_id"),
    "trades": ("recv_ns", "time", "symbol", "id", "side", "price", "amount"),
}


def capture_to_csv(
    capture_path: Source,
    out_path: str | os.PathLike[str],
    *,
    what: str = "events",
    symbols: Sequence[str] | str | None = None,
    depth: int = 200,
    ring: int = DEFAULT_RING,
    progress: bool | None = None,
    progress_file: IO[str] | None = None,
    on_corrupt: str = "raise",
) -> ExportStats:
    """Convert a capture to CSV text, streamed (the same pump and rows as the other exports).

    ``what="events"``: one line per event row: ``local_ts, exch_ts, symbol, kind`` (name:
    depth, trade, clear, snapshot), ``side`` (+1 buy, -1 sell, 0), ``price, qty, trade_id``;
    ``what="trades"``: one line per stored trade: ``recv_ns, time, symbol, id, side`` (buy /
    sell), ``price, amount``. ``symbols`` keeps only those symbols' rows; symbols absent from
    the capture are listed in ``ExportStats.unmatched``. ``on_corrupt``: see the module
    docstring. Returns :class:`ExportStats`.
    """
    import csv

    from .events import KIND_NAMES

    if what not in CSV_COLUMNS:
        raise ValueError("what must be 'events' or 'trades'")
    pick = _wanted(symbols)
    kind_names = [KIND_NAMES.get(i, "?") for i in range(256)]
    field_name = "ival" if what == "events" else "symbol"
    written = 0
    with open(out_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS[what])

        def sink(chunk: np.ndarray, table: list[str]) -> None:
            nonlocal written
            chunk = _select(chunk, pick(table), field_name)
            if not len(chunk):
                return
            names = [table[i] if 0 <= i < len(table) else "" for i in chunk[field_name].tolist()]
            if what == "events":
                w.writerows(
                    zip(
                        chunk["local_ts"].tolist(),
                        chunk["exch_ts"].tolist(),
                        names,
                        [kind_names[k] for k in kinds(chunk).tolist()],
                        sides(chunk).tolist(),
                        chunk["px"].tolist(),
                        chunk["qty"].tolist(),
                        chunk["order_id"].tolist(),
                    )
                )
            else:
                w.writerows(
                    zip(
                        chunk["recv_ns"].tolist(),
                        chunk["time"].tolist(),
                        names,
                        chunk["id"].tolist(),
                        ["buy" if s > 0 else "sell" for s in chunk["side"].tolist()],
                        chunk["price"].tolist(),
                        chunk["amount"].tolist(),
                    )
                )
            written += len(chunk)

        stats = _pump(
            capture_path,
            sink,
            what=what,
            depth=depth,
            ring=ring,
            progress=progress,
            progress_file=progress_file,
            label=what,
            on_corrupt=on_corrupt,
        )
    stats.rows = written
    stats.path = os.fspath(out_path)
    stats.unmatched = _unmatched(symbols, stats.symbols)
    return stats
