"""The bus's history: a durable JetStream consumer writing a Parquet dataset.

``fastfeed archive --nats URL -o DIR`` (or :func:`archive`) reads the ``depth`` and
``trades`` subjects of the bus (docs/bus.md) with a durable pull consumer and writes::

    DIR/events/date=YYYY-MM-DD/symbol=SYM/part-<first>-<last>.parquet   (book events)
    DIR/trades/date=YYYY-MM-DD/symbol=SYM/part-<first>-<last>.parquet   (trades)

(``<first>-<last>``: the stream sequences the file covers). The columns are those of
``fastfeed export`` (:func:`fastfeed.export.events_to_arrow` /
:func:`~fastfeed.export.trades_to_arrow`, ``symbol`` as a plain string; the ``date`` and
``symbol`` directories are Hive partitions, so ``pyarrow.dataset``, pandas, polars and DuckDB
read DIR/events as one table). The date is the UTC date of ``local_ts`` (events) /
``recv_ns`` (trades).

Delivery: messages are acknowledged (``AckPolicy.ALL``: one ack for everything up to the
newest message written) only after the row group holding them was written and renamed into
place, so a crash loses nothing acknowledged; messages written but not yet acknowledged when
a crash hits are delivered again, and their rows written again (at-least-once: the file
names say which stream sequences each file holds, so a reader can drop repeats).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import bus
from .errors import BusError, BusRecordError
from .events import KIND_MASK, TRADE_EVENT

__all__ = ["ArchiveStats", "archive", "check_out_dir"]

log = logging.getLogger(__name__)

_DAY = 86_400 * 10**9


@dataclass
class ArchiveStats:
    """What :func:`archive` did: ``messages`` read, ``event_rows`` / ``trade_rows`` written,
    ``files`` written, ``acked`` (messages acknowledged), ``rejected`` (not bus records),
    ``paths`` of the files."""

    messages: int = 0
    event_rows: int = 0
    trade_rows: int = 0
    files: int = 0
    acked: int = 0
    rejected: int = 0
    paths: list[str] = field(default_factory=list)


class _Writer:
    def __init__(self, out: Path, compression: str) -> None:
        self.out = out
        self.compression = compression
        self.events: dict[str, list[np.ndarray]] = {}
        self.trades: dict[str, list[np.ndarray]] = {}
        self.rows = 0
        self.first_seq = 0
        self.last_seq = 0

    def add(self, kind: str, sym: str, recs: np.ndarray, sseq: int) -> None:
        if kind == "depth":
            keep = (recs["ev"] & np.uint64(KIND_MASK)) != TRADE_EVENT
            recs = recs[keep] if not keep.all() else recs
            if len(recs):
                self.events.setdefault(sym, []).append(recs.copy())
        else:
            self.trades.setdefault(sym, []).append(recs.copy())
        self.rows += len(recs)
        if not self.first_seq:
            self.first_seq = sseq
        self.last_seq = sseq

    def write(self, stats: ArchiveStats) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from .export import events_to_arrow, trades_to_arrow

        tag = f"part-{self.first_seq:012d}-{self.last_seq:012d}"
        for what, groups, ts_field in (
            ("events", self.events, "local_ts"),
            ("trades", self.trades, "recv_ns"),
        ):
            for sym, chunks in groups.items():
                rows = np.concatenate(chunks)
                if what == "events":
                    rows = rows.copy()
                    rows["ival"] = 0
                    table = events_to_arrow(rows, [sym])
                    stats.event_rows += len(rows)
                else:
                    rows = rows.copy()
                    rows["symbol"] = 0
                    table = trades_to_arrow(rows, [sym])
                    stats.trade_rows += len(rows)
                i = table.column_names.index("symbol")
                table = table.set_column(i, "symbol", table.column("symbol").cast(pa.string()))
                days = rows[ts_field] // _DAY
                for day in np.unique(days):
                    part = table.filter(pa.array(days == day)) if len(np.unique(days)) > 1 else table
                    date = time.strftime("%Y-%m-%d", time.gmtime(int(day) * 86_400))
                    d = self.out / what / f"date={date}" / f"symbol={sym}"
                    d.mkdir(parents=True, exist_ok=True)
                    path = d / f"{tag}.parquet"
                    tmp = d / f".{tag}.parquet.tmp"
                    pq.write_table(part, tmp, compression=self.compression)
                    os.replace(tmp, path)
                    stats.files += 1
                    stats.paths.append(str(path))
        self.events, self.trades, self.rows, self.first_seq, self.last_seq = {}, {}, 0, 0, 0


def check_out_dir(out: str | os.PathLike[str]) -> None:
    """``NotADirectoryError`` unless ``out`` is a directory or could be made one (its
    nearest existing ancestor is a directory): checked before connecting, while the
    directory itself is made only once connected."""
    p = Path(out)
    if p.exists():
        if not p.is_dir():
            raise NotADirectoryError(f"{p} exists and is not a directory")
        return
    q = p.parent
    while not q.exists() and q != q.parent:
        q = q.parent
    if q.exists() and not q.is_dir():
        raise NotADirectoryError(f"cannot create {p}: {q} is not a directory")


async def archive(
    nats_url: str | list[str],
    out_dir: str | os.PathLike[str],
    *,
    stream: str = "FASTFEED",
    prefix: str = "fastfeed.digifinex",
    durable: str = "fastfeed-archive",
    row_group: int = 1 << 16,
    flush_interval: float = 5.0,
    idle_exit: float | None = None,
    stop: asyncio.Event | None = None,
    compression: str = "zstd",
    batch: int = 512,
    **nats_options: Any,
) -> ArchiveStats:
    """Archive the bus into a Parquet dataset under ``out_dir`` until ``stop`` is set, or
    (``idle_exit``) no message came for that many seconds. A row group (one file per
    date and symbol) is written when ``row_group`` rows are pending or ``flush_interval`` s
    passed, then everything up to it is acknowledged. The durable consumer ``durable``
    resumes where the last acknowledged message left off. ``nats_options``: those of
    :data:`fastfeed.bus.NATS_OPTIONS` (``tls`` or ``tls_ca`` / ``tls_cert`` / ``tls_key``,
    ``tls_hostname``, ``creds``, ``user``, ``password``, ``token``, ``nkeys_seed``,
    ``connect_timeout``, ``reconnect_wait``), as for :class:`fastfeed.bus.NatsSink`
    (:func:`fastfeed.bus.nats_options`). ``out_dir`` is created once NATS is connected (a
    server that cannot be reached leaves no directory behind). Needs pyarrow."""
    import nats
    from nats.js import api

    prefix = bus._check_prefix(prefix)
    unknown = sorted(set(nats_options) - set(bus.NATS_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)}")
    opts = bus.nats_options(nats_url, name="fastfeed-archive", **nats_options)
    url = bus._redact(",".join(opts["servers"]))
    out = Path(out_dir)
    check_out_dir(out)
    last_error: list[BaseException] = []

    async def on_error(exc: Exception) -> None:
        # without an error_cb nats-py logs every failed attempt with a traceback
        last_error[:] = [exc]
        log.debug("archive: NATS error %s", type(exc).__name__)

    opts["error_cb"] = on_error
    try:
        nc = await asyncio.wait_for(nats.connect(**opts), opts["connect_timeout"] + 1)
    except Exception as exc:
        raise bus._connect_error(url, exc, last_error[0] if last_error else None) from None
    try:
        out.mkdir(parents=True, exist_ok=True)  # only once connected: a failed start leaves nothing
    except BaseException:
        await nc.close()
        raise
    stats = ArchiveStats()
    writer = _Writer(out, compression)
    pending_last: Any = None
    try:
        js = nc.jetstream()
        cfg = api.ConsumerConfig(
            ack_policy=api.AckPolicy.ALL,
            ack_wait=max(60.0, flush_interval * 4),
            max_ack_pending=-1,
            filter_subjects=[f"{prefix}.depth.>", f"{prefix}.trades.>"],
        )
        try:
            psub = await js.pull_subscribe("", durable=durable, stream=stream, config=cfg)
        except Exception as exc:
            raise BusError(
                f"cannot create the durable consumer {durable!r} on {stream!r}: "
                f"{type(exc).__name__}: {str(exc)[:200]}",
                "bus_stream",
            ) from None
        loop = asyncio.get_running_loop()
        last_flush = last_msg = loop.time()

        async def flush() -> None:
            nonlocal pending_last, last_flush
            last_flush = loop.time()
            if pending_last is None:
                return
            writer.write(stats)
            await pending_last.ack_sync()  # AckPolicy.ALL: everything up to it
            stats.acked = stats.messages
            pending_last = None

        while stop is None or not stop.is_set():
            try:
                msgs = await psub.fetch(batch, timeout=min(1.0, flush_interval))
            except asyncio.TimeoutError:  # nats-py's TimeoutError, or a bare one from fetch
                msgs = []
            now = loop.time()
            for m in msgs:
                stats.messages += 1
                pending_last = m
                try:
                    h, kind, recs = bus.decode(m.data)
                    sym = bytes(h["symbol"]).decode("ascii")
                    if kind not in ("depth", "trades") or not sym:
                        raise BusRecordError("not a depth or trades message", "bus_kind")
                except BusRecordError:
                    stats.rejected += 1
                    continue
                if len(recs):
                    writer.add(kind, sym, recs, int(m.metadata.sequence.stream))
            if msgs:
                last_msg = now
            if writer.rows >= row_group or now - last_flush >= flush_interval:
                await flush()
            if idle_exit is not None and not msgs and now - last_msg >= idle_exit:
                break
        await flush()
    finally:
        await nc.close()
    return stats
