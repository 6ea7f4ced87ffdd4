"""The bus: books and trades published on NATS JetStream, rebuilt on other hosts.

Publisher: a sink on the live client (``fastfeed publish`` on the command line)::

    from fastfeed.bus import NatsSink
    async with fastfeed.connect(url, sinks=[NatsSink("nats://127.0.0.1:4222")]) as feed:
        await feed.subscribe_depth(["BTC_USDT"])
        ...

Consumer, on any host that reaches the NATS server::

    async with fastfeed.bus.subscribe("nats://10.0.0.5:4222", symbols=["BTC_USDT"]) as remote:
        book = remote.book("BTC_USDT")      # bids, asks, best_bid, best_ask, version, live
        remote.trades.latest(10)            # TRADE_DTYPE records

Subjects (``prefix`` ``fastfeed.digifinex`` by default, all in one JetStream stream,
``FASTFEED`` by default): ``PREFIX.depth.SYM`` (every applied book change, as the engine's
event-log rows), ``PREFIX.book.SYM`` (periodic full snapshots, and one after any loss),
``PREFIX.trades.SYM`` (:data:`~fastfeed.layout.TRADE_DTYPE` records), ``PREFIX.ticker.SYM``
(:data:`TICKER_DTYPE`, the engine's ticker records), ``PREFIX.status`` (:data:`STATUS_DTYPE`: the feed's connection
events, feed resets, publisher start/stop) and ``PREFIX.schema`` (the schema, published
at start). Each message is one :data:`HEADER_DTYPE` header (96 bytes) followed by
``count`` records of ``record_size`` bytes; :func:`decode` checks every size and count and
returns numpy views (``np.frombuffer``, no JSON). docs/bus.md is the full description.

Sequencing: per symbol, every ``depth`` message takes the next ``seq`` (1, 2, ...); a
``book`` snapshot carries the ``seq`` of the last depth message it includes. A consumer
applies a snapshot, then the depth messages with ``seq`` = last + 1; any other ``seq`` is
a gap (a message the publisher dropped on overflow, or lost while NATS was away): the book
goes not-live until the next snapshot, which the publisher sends at once after any loss.
``session`` (random per publisher start) tells a publisher restart from a gap.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import concurrent.futures
import itertools
import json
import logging
import os
import pickle
import secrets
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import events as E
from . import layout as _layout
from .errors import (
    BusError,
    BusRecordError,
    EventsOverwritten,
    ShmTornRead,
    TickersOverwritten,
    TradesOverwritten,
    UnknownSymbol,
)
from .layout import TRADE_DTYPE
from .reference import ReferenceBook
from .sinks import Sink

if TYPE_CHECKING:
    from .client import ConnectionEvent, Feed, FeedOptions

__all__ = [
    "FLAG_CLEAN",
    "FLAG_LIVE",
    "FLAG_RESET",
    "FLAG_STALE",
    "HEADER_DTYPE",
    "KINDS",
    "MAGIC",
    "NATS_OPTIONS",
    "SCHEMA_VERSION",
    "STATUS_DTYPE",
    "STATUS_KINDS",
    "TICKER_DTYPE",
    "NatsSink",
    "RemoteBook",
    "RemoteFeed",
    "RemoteTrades",
    "StatusEvent",
    "decode",
    "encode",
    "nats_options",
    "schema",
    "subject_safe",
    "subscribe",
]

log = logging.getLogger("fastfeed.bus")

#: The first four bytes of every bus message.
MAGIC = 0x42464646  # b"FFFB" little-endian
#: Bumped on any incompatible change of the header or a record dtype.
SCHEMA_VERSION = 3  # 2: STATUS_DTYPE has shard / shards; 3: tickers are layout.TICKER_DTYPE

#: The fixed header of every message (96 bytes, little-endian, aligned).
HEADER_DTYPE = np.dtype(
    [
        ("magic", "<u4"),
        ("schema", "<u2"),  # SCHEMA_VERSION
        ("kind", "u1"),  # KINDS index
        ("flags", "u1"),  # FLAG_* bits
        ("record_size", "<u4"),  # itemsize of the record dtype of ``kind``
        ("count", "<u4"),  # records after the header
        ("seq", "<u8"),  # per symbol: depth/book share one sequence, trades/ticker own ones
        ("version", "<u8"),  # the publisher's Book.version after these records (depth/book)
        ("recv_ns", "<i8"),  # local receive time of the newest frame in the message
        ("publish_ns", "<i8"),  # when the publisher sealed the message
        ("session", "<u8"),  # random per publisher start: a change is a publisher restart
        ("stale_since", "<i8"),  # the publisher's Book.stale_since (depth/book)
        ("symbol", "S32"),  # ASCII, NUL-padded ("" for status / schema)
    ],
    align=True,
)
assert HEADER_DTYPE.itemsize == 96
_HEADER = struct.Struct("<IHBBIIQQqqQq32s")  # HEADER_DTYPE, packed by struct (faster per message)
assert _HEADER.size == HEADER_DTYPE.itemsize

#: A status record: ``kind`` indexes :data:`STATUS_KINDS`; ``shard`` of ``shards`` is the
#: publishing shard (0 of 1 for an unsharded feed: see ``connect_sharded(..., sinks=)``):
#: its connection events and resets concern that shard's symbols only; ``reason`` is
#: escaped text, never a credential (UTF-8, NUL-padded, cut at 120 bytes).
STATUS_DTYPE = np.dtype(
    [
        ("time_ns", "<i8"),
        ("delay", "<f8"),
        ("attempt", "<i4"),
        ("kind", "u1"),
        ("shard", "<u2"),
        ("shards", "<u2"),
        ("reason", "S120"),
    ],
    align=True,
)

#: A ticker record: the engine's own :data:`fastfeed.layout.TICKER_DTYPE` row (152 bytes:
#: ``seq`` its number in the feed's ticker history, ``recv_ns``, ``timestamp``, the
#: :data:`~fastfeed.layout.TICKER_FIELDS` floats with NaN for missing, ``name``, ``symbol``
#: the feed's ticker-table index, ``all_ticker``), every record the feed stored, as stored.
TICKER_DTYPE = _layout.TICKER_DTYPE

#: Message kinds (``HEADER_DTYPE["kind"]``) and their record dtypes.
KINDS: tuple[str, ...] = ("schema", "depth", "book", "trades", "ticker", "status")
_K_SCHEMA, _K_DEPTH, _K_BOOK, _K_TRADES, _K_TICKER, _K_STATUS = range(6)
RECORD_DTYPES: dict[str, np.dtype] = {
    "schema": np.dtype("u1"),
    "depth": E.EVENT_DTYPE,
    "book": E.EVENT_DTYPE,
    "trades": TRADE_DTYPE,
    "ticker": TICKER_DTYPE,
    "status": STATUS_DTYPE,
}
_SIZES = tuple(RECORD_DTYPES[k].itemsize for k in KINDS)

FLAG_CLEAN = 1  #: the records rebuild the book from empty (a snapshot, or a clean=true push)
FLAG_RESET = 2  #: the feed emptied its books (new exchange connection) / publisher start
FLAG_LIVE = 4  #: the publisher's book is live after these records
FLAG_STALE = 8  #: a stale marker: the publisher's book went stale (no records)

#: ``STATUS_DTYPE["kind"]`` names: the feed's connection events, then the publisher's own.
STATUS_KINDS: tuple[str, ...] = (
    "other",
    "connected",
    "disconnected",
    "reconnecting",
    "resubscribed",
    "auth_failed",
    "resubscribe_failed",
    "error",
    "subscription_refused",
    "drift",
    "reset",
    "publisher_start",
    "publisher_stop",
    "bus_reconnected",
)
_STATUS_CODE = {name: i for i, name in enumerate(STATUS_KINDS)}

MAX_SYMBOL = 32
#: A message larger than this is refused by :func:`decode` (NATS' default max_payload is 1 MB).
MAX_MESSAGE = 64 << 20


def schema() -> dict[str, Any]:
    """The schema as a JSON-able dict (published on ``PREFIX.schema``): header and record
    dtypes as ``numpy.lib.format`` descriptors, kinds, flags and status kinds."""
    from numpy.lib import format as npformat

    return {
        "magic": MAGIC,
        "schema_version": SCHEMA_VERSION,
        "header": npformat.dtype_to_descr(HEADER_DTYPE),
        "header_size": HEADER_DTYPE.itemsize,
        "kinds": list(KINDS),
        "records": {k: npformat.dtype_to_descr(d) for k, d in RECORD_DTYPES.items()},
        "record_sizes": {k: d.itemsize for k, d in RECORD_DTYPES.items()},
        "flags": {"clean": FLAG_CLEAN, "reset": FLAG_RESET, "live": FLAG_LIVE, "stale": FLAG_STALE},
        "status_kinds": list(STATUS_KINDS),
        "event_flags": {
            "exch": E.EXCH_EVENT,
            "local": E.LOCAL_EVENT,
            "buy": E.BUY_EVENT,
            "sell": E.SELL_EVENT,
            "kind_mask": E.KIND_MASK,
        },
        "event_kinds": {v: k for k, v in E.KIND_NAMES.items()},
    }


def encode(
    kind: str,
    records: bytes | np.ndarray,
    *,
    symbol: str = "",
    seq: int = 0,
    flags: int = 0,
    version: int = 0,
    recv_ns: int = 0,
    session: int = 0,
    stale_since: int = 0,
    publish_ns: int | None = None,
) -> bytes:
    """One bus message: the header, then ``records`` (an array of the kind's dtype, or its
    bytes). ``ValueError`` for an unknown kind, a symbol that is not 0..32 ASCII bytes, or
    records whose size is not a whole number of records."""
    k = KINDS.index(kind)
    size = _SIZES[k]
    body = records.tobytes() if isinstance(records, np.ndarray) else bytes(records)
    if len(body) % size:
        raise ValueError(f"{len(body)} bytes is not a whole number of {size}-byte {kind} records")
    sym = symbol.encode("ascii")
    if len(sym) > MAX_SYMBOL:
        raise ValueError(f"symbol longer than {MAX_SYMBOL} bytes")
    head = _HEADER.pack(
        MAGIC,
        SCHEMA_VERSION,
        k,
        flags,
        size,
        len(body) // size,
        seq,
        version,
        recv_ns,
        time.time_ns() if publish_ns is None else publish_ns,
        session,
        stale_since,
        sym,
    )
    return head + body


def decode(payload: bytes | bytearray | memoryview) -> tuple[np.void, str, np.ndarray]:
    """``(header, kind, records)`` of one bus message: the header as a numpy record of
    :data:`HEADER_DTYPE`, the kind name, and the records as a read-only array of that
    kind's dtype viewing ``payload`` (no copy: valid as long as ``payload`` is; ``.copy()``
    to keep). Raises :class:`~fastfeed.errors.BusRecordError` for anything that is not a
    valid message: too short or too long, bad magic, another schema version, an unknown
    kind, a record size that is not the kind's, a count that does not match the length, a
    symbol that is not printable ASCII."""
    mv = memoryview(payload)
    n = mv.nbytes
    hs = HEADER_DTYPE.itemsize
    if n < hs:
        raise BusRecordError(f"bus message of {n} bytes is shorter than the {hs}-byte header", "bus_short")
    if n > MAX_MESSAGE:
        raise BusRecordError(f"bus message of {n} bytes exceeds {MAX_MESSAGE}", "bus_too_large")
    h = np.frombuffer(mv[:hs], dtype=HEADER_DTYPE)[0]
    if int(h["magic"]) != MAGIC:
        raise BusRecordError("not a fastfeed bus message (bad magic)", "bus_magic")
    if int(h["schema"]) != SCHEMA_VERSION:
        raise BusRecordError(
            f"bus schema version {int(h['schema'])}, expected {SCHEMA_VERSION}", "bus_schema"
        )
    k = int(h["kind"])
    if k >= len(KINDS):
        raise BusRecordError(f"unknown bus message kind {k}", "bus_kind")
    kind = KINDS[k]
    size = _SIZES[k]
    if int(h["record_size"]) != size:
        raise BusRecordError(f"{kind} record size {int(h['record_size'])}, expected {size}", "bus_size")
    count = int(h["count"])
    if count * size != n - hs:
        raise BusRecordError(f"{kind} message says {count} records but carries {n - hs} bytes", "bus_count")
    sym = bytes(h["symbol"])
    if not (sym.isascii() and (not sym or sym.decode("ascii").isprintable()) and b" " not in sym):
        raise BusRecordError("bus message symbol is not printable ASCII", "bus_symbol")
    recs = (
        np.frombuffer(mv[hs:].toreadonly(), dtype=RECORD_DTYPES[kind])
        if count
        else np.zeros(0, dtype=RECORD_DTYPES[kind])
    )
    return h, kind, recs


def _redact(url: str) -> str:
    """``url`` without any ``user:password@`` / token part (for logs and errors)."""
    out = []
    for part in str(url).split(","):
        scheme, sep, rest = part.partition("://")
        if not sep:
            scheme, rest = "", part
        if "@" in rest:
            rest = "***@" + rest.rsplit("@", 1)[1]
        out.append(f"{scheme}{sep}{rest}")
    return ",".join(out)


def _connect_error(url: str, exc: BaseException, last: BaseException | None) -> BusError:
    """The one-line ``BusError`` of a failed first NATS connect: what ended the wait
    (usually a timeout) and the last error nats-py reported while retrying (e.g. a refused
    connection), escaped, instead of a bare ``TimeoutError``."""
    from .protocol import safe_text

    why = type(exc).__name__
    if last is not None and last is not exc:
        why += f" (last error: {type(last).__name__}: {safe_text(str(last))})"
    return BusError(f"cannot connect to NATS at {url}: {why}", "bus_connect")


#: The keywords of a NATS connection's address-independent options, taken alike by
#: :class:`NatsSink`, :func:`subscribe` and :func:`fastfeed.archive.archive` (see
#: :func:`nats_options`).
NATS_OPTIONS: tuple[str, ...] = (
    "tls",
    "tls_hostname",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "creds",
    "nkeys_seed",
    "user",
    "password",
    "token",
    "connect_timeout",
    "reconnect_wait",
)


def nats_options(
    url: str | list[str],
    *,
    name: str,
    tls: ssl.SSLContext | None = None,
    tls_hostname: str | None = None,
    tls_ca: str | os.PathLike[str] | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
    creds: str | os.PathLike[str] | None = None,
    nkeys_seed: str | None = None,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    connect_timeout: float = 5.0,
    reconnect_wait: float = 0.25,
) -> dict[str, Any]:
    """The keyword arguments of ``nats.connect`` for ``url`` (one or a list of
    ``nats://`` / ``tls://`` / ``ws://`` / ``wss://`` URLs) and the security options, the one
    place publisher, consumer and archive turn them into a connection: ``tls`` (an
    ``ssl.SSLContext``) or ``tls_ca`` / ``tls_cert`` / ``tls_key`` (file paths: a context
    is built here; ``OSError`` / ``ssl.SSLError`` for unreadable files), ``tls_hostname``,
    ``creds`` (a ``.creds`` file), ``nkeys_seed``, ``user`` / ``password``, ``token``.
    Reconnects forever, every ``reconnect_wait`` s. ``ValueError`` for a URL that is not
    a NATS URL (shown without credentials) or conflicting TLS options."""
    servers = [url] if isinstance(url, str) else list(url)
    for s in servers:
        if not isinstance(s, str) or not s.startswith(("nats://", "tls://", "ws://", "wss://")):
            raise ValueError(f"not a NATS URL: {_redact(str(s))!r} (nats://HOST:PORT or tls://HOST:PORT)")
    if not servers:
        raise ValueError("no NATS URL")
    if tls_key is not None and tls_cert is None:
        raise ValueError("tls_key needs tls_cert")
    if tls is not None and (tls_ca is not None or tls_cert is not None):
        raise ValueError("pass tls= (an SSLContext) or tls_ca / tls_cert / tls_key, not both")
    if tls is None and (tls_ca is not None or tls_cert is not None):
        tls = ssl.create_default_context(cafile=None if tls_ca is None else os.fspath(tls_ca))
        if tls_cert is not None:
            tls.load_cert_chain(os.fspath(tls_cert), None if tls_key is None else os.fspath(tls_key))
    if not connect_timeout > 0 or not reconnect_wait >= 0:
        raise ValueError("connect_timeout must be > 0 and reconnect_wait >= 0")
    opts: dict[str, Any] = {
        "servers": servers,
        "name": name,
        "connect_timeout": connect_timeout,
        "reconnect_time_wait": reconnect_wait,
        "max_reconnect_attempts": -1,
        "allow_reconnect": True,
    }
    if tls is not None:
        opts["tls"] = tls
    if tls_hostname is not None:
        opts["tls_hostname"] = tls_hostname
    if creds is not None:
        opts["user_credentials"] = os.fspath(creds)
    if nkeys_seed is not None:
        opts["nkeys_seed"] = nkeys_seed
    if user is not None:
        opts["user"] = user
    if password is not None:
        opts["password"] = password
    if token is not None:
        opts["token"] = token
    return opts


def _check_symbol(sym: Any) -> str:
    if not isinstance(sym, str):
        raise TypeError(f"symbol must be a str, not {type(sym).__name__}")
    s = sym.upper()
    if not subject_safe(s):
        raise ValueError(f"bad symbol {sym[:40]!r}: 1..32 of A-Z a-z 0-9 _ - (one subject token)")
    return s


_SUBJECT_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def subject_safe(symbol: str) -> bool:
    """True when ``symbol`` can be one NATS subject token: 1..32 of ``A-Z a-z 0-9 _ -``
    (a ``.``, ``*``, ``>`` or space would change the subject's meaning). The publisher skips
    (and counts in ``stats["skipped_symbols"]``) books of other names; never raises."""
    return (
        isinstance(symbol, str) and 0 < len(symbol) <= MAX_SYMBOL and all(c in _SUBJECT_SAFE for c in symbol)
    )


def _check_prefix(prefix: str) -> str:
    parts = prefix.split(".") if isinstance(prefix, str) else []
    if not parts or any(
        not p or not p.isascii() or not p.isprintable() or any(c in p for c in " *>") for p in parts
    ):
        raise ValueError(f"bad subject prefix {prefix!r}")
    return prefix


async def _ensure_stream(
    js: Any, stream: str, prefix: str, *, storage: str, max_age: float, max_bytes: int, replicas: int
) -> None:
    from nats.js import api
    from nats.js.errors import NotFoundError

    subjects = [f"{prefix}.>"]
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        cfg = api.StreamConfig(
            name=stream,
            subjects=subjects,
            storage=api.StorageType.FILE if storage == "file" else api.StorageType.MEMORY,
            retention=api.RetentionPolicy.LIMITS,
            max_age=max_age,
            max_bytes=max_bytes,
            num_replicas=replicas,
            discard=api.DiscardPolicy.OLD,
        )
        await js.add_stream(cfg)
        return
    if not any(s in (info.config.subjects or []) for s in subjects):
        raise BusError(f"stream {stream!r} exists without the subjects {subjects}", "bus_stream")


def _now() -> int:
    return time.time_ns()


# =============================================================================================
# Publisher
# =============================================================================================


def _gather(rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``rows[idx]`` (an index array or a boolean mask) for a contiguous record array whose
    itemsize is a multiple of 8: whole rows are moved as uint64 words, ~20x faster than a
    structured fancy index."""
    words = rows.view(np.uint64).reshape(len(rows), rows.dtype.itemsize // 8)
    out = words.take(idx, axis=0) if idx.dtype != np.bool_ else words[idx]
    return out.view(rows.dtype).reshape(-1)


def _split(rows: np.ndarray, field: str) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Group records by their symbol index ``field``, keeping each symbol's records in ring
    order: ``(rows sorted by symbol, [(index, lo, hi), ...])``. A radix sort on 16-bit keys
    when they fit, and one gather of whole rows."""
    ival = rows[field]
    i0 = int(ival[0])
    if (ival == i0).all():
        return rows, [(i0, 0, len(rows))]
    lo_, hi_ = int(ival.min()), int(ival.max())
    key = (ival - lo_).astype(np.uint16) if hi_ - lo_ <= 0xFFFF else ival
    rows = _gather(rows, np.argsort(key, kind="stable"))
    sval = rows[field]
    iv = sval.tolist()
    edges = [0, *(np.flatnonzero(sval[1:] != sval[:-1]) + 1).tolist(), len(iv)]
    return rows, [(iv[lo], lo, hi) for lo, hi in itertools.pairwise(edges)]


class _Batch:
    __slots__ = ("chunks", "count", "flags")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.count = 0
        self.flags = 0


class NatsSink(Sink):
    """Publish the feed's books, trades, tickers and connection events on NATS JetStream.

    ``NatsSink(nats_url, *, stream="FASTFEED", prefix="fastfeed.digifinex", ...)``, attached
    with ``fastfeed.connect(url, sinks=[NatsSink(...)])``. ``feed.start()`` connects to NATS
    (``BusError`` if it cannot within ``connect_timeout``), creates the stream if missing
    (subjects ``PREFIX.>``; ``storage`` ``file``/``memory``, ``max_age`` s, ``max_bytes``),
    and publishes the schema. It sets the feed's event log to at least ``event_log`` rows
    (the depth records are the engine's event rows).

    The publisher runs on a thread of its own with its own event loop (``publisher="thread"``,
    default; ``"loop"`` runs it on the feed's loop; ``"process"`` in a process of its own,
    see below): every ``batch_interval`` s it reads the
    rows, trades and tickers the engine applied (between two frames, under the GIL), groups
    them into per-symbol messages (sealed at ``batch_records`` records) in a bounded queue of
    ``queue_size`` messages, and publishes them with acked async JetStream publishes, at most
    ``max_inflight`` awaiting their ack (an ack not back within ``ack_timeout`` s counts as
    lost). The feed's loop runs no timer for the sink: it only takes the ``book`` snapshots
    the publisher asks for and hands over connection events, each placed at its event-log
    position. The feed never waits on the bus: when the queue is full a depth message is
    dropped (``stats["dropped_messages"]`` / ``["dropped_records"]``) and the symbol gets a
    fresh ``book`` snapshot as soon as there is room; the same after a failed publish and
    after NATS reconnects. Snapshots of every book also go out every ``snapshot_interval`` s
    (a late joiner starts from the last one).

    Security: ``tls`` (an ``ssl.SSLContext``; use ``tls://`` URLs), ``tls_hostname``,
    ``creds`` (a ``.creds`` file), ``nkeys_seed``, ``user`` / ``password``, ``token`` go to
    the NATS connection only (:func:`nats_options`); they never appear in subjects,
    payloads, logs or ``repr``. ``tls_ca`` / ``tls_cert`` / ``tls_key`` (file paths) build
    the TLS context and keep the sink picklable.

    ``publisher="process"``: the publisher runs in a process of its own (``python -m
    fastfeed._bus_publisher``, started by ``open()``, configuration and credentials through a
    private socket pair, never argv or the environment), which shares no GIL with the feed.
    It reads the books, the event log, trades and tickers from the feed's shared-memory
    segment (the sink gives the feed a private one, ``ffbus.PID.RANDOM``, unless the feed
    has ``shm_name``), as consistent copies; control items and snapshots cross the socket
    pair (a bounded buffer: what the publisher process does not read in time is dropped,
    counted in ``stats["control_lost"]`` and followed by a resync). If it dies it is
    restarted with a new session (``stats["publisher_restarts"]``; consumers re-sync),
    retried until it starts; ``stats`` are its own, reported every 50 ms; its log records
    are logged by the feed process. It runs in a session of its own (a terminal's Ctrl-C
    reaches only the feed process, which closes it). A TLS context must be given as files
    (``tls_ca`` ...).

    ``cpu_budget`` (default 0.1, ``None``: off; thread mode): the publisher thread shares
    the GIL with the feed, so it keeps its CPU share near this fraction of a core by waiting
    longer between passes (up to 16 ``batch_interval``; bigger batches, fewer wake-ups) when
    it is above; under load a message's latency grows by as much, never the feed's work.

    Shards: ``shard`` / ``shards`` go into every status record; ``for_shard(i, n)`` is
    what ``connect_sharded(..., sinks=[sink])`` gives each shard, and a sink pickles as its
    configuration (a shard process builds and opens its own; docs/bus.md, "A sharded feed").
    """

    def __init__(
        self,
        nats_url: str | list[str] = "nats://127.0.0.1:4222",
        *,
        stream: str = "FASTFEED",
        prefix: str = "fastfeed.digifinex",
        batch_interval: float = 0.001,
        batch_records: int = 256,
        snapshot_interval: float = 5.0,
        queue_size: int = 4096,
        max_inflight: int = 512,
        ack_timeout: float = 5.0,
        event_log: int = 1 << 16,
        storage: str = "file",
        max_age: float = 24 * 3600.0,
        max_bytes: int = 1 << 30,
        replicas: int = 1,
        create_stream: bool = True,
        connect_timeout: float = 5.0,
        reconnect_wait: float = 0.25,
        close_timeout: float = 5.0,
        name: str = "fastfeed-publisher",
        tls: ssl.SSLContext | None = None,
        tls_hostname: str | None = None,
        creds: str | os.PathLike[str] | None = None,
        nkeys_seed: str | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        shard: int = 0,
        shards: int = 1,
        publisher: str = "thread",
        cpu_budget: float | None = 0.1,
    ) -> None:
        #: every constructor argument: what :meth:`for_shard` and pickling rebuild the sink from
        self._config: dict[str, Any] = {k: v for k, v in locals().items() if k != "self"}
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 65535:
            raise ValueError("shards must be an int 1..65535")
        if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < shards:
            raise ValueError(f"shard must be an int 0..{shards - 1}")
        if batch_interval <= 0 or batch_records < 1 or queue_size < 2 or max_inflight < 1:
            raise ValueError("batch_interval > 0, batch_records >= 1, queue_size >= 2, max_inflight >= 1")
        if snapshot_interval <= 0 or ack_timeout <= 0 or event_log < 1:
            raise ValueError("snapshot_interval, ack_timeout and event_log must be > 0")
        if cpu_budget is not None and not 0 < cpu_budget <= 1:
            raise ValueError("cpu_budget is None or a fraction in (0, 1]")
        if publisher not in ("thread", "loop", "process"):
            raise ValueError("publisher is 'thread', 'loop' or 'process'")
        if publisher == "process" and tls is not None:
            raise ValueError(
                "publisher='process' sends the configuration to the publisher process, and an "
                "SSLContext does not pickle: pass tls_ca / tls_cert / tls_key (file paths) instead"
            )
        if storage not in ("file", "memory"):
            raise ValueError("storage is 'file' or 'memory'")
        self._nats_opts = nats_options(
            nats_url,
            name=name,
            tls=tls,
            tls_hostname=tls_hostname,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            creds=creds,
            nkeys_seed=nkeys_seed,
            user=user,
            password=password,
            token=token,
            connect_timeout=connect_timeout,
            reconnect_wait=reconnect_wait,
        )
        self.url = _redact(",".join(self._nats_opts["servers"]))  #: the NATS URL(s), credentials removed
        self.stream = stream
        self.prefix = _check_prefix(prefix)
        self.batch_ns = int(batch_interval * 1e9)
        self.batch_interval = batch_interval
        self.batch_records = batch_records
        self.snapshot_interval = snapshot_interval
        self.queue_size = queue_size
        self.max_inflight = max_inflight
        self.ack_timeout = ack_timeout
        self.event_log = event_log
        self._stream_cfg: dict[str, Any] = {
            "storage": storage,
            "max_age": max_age,
            "max_bytes": max_bytes,
            "replicas": replicas,
        }
        self.create_stream = create_stream
        self.close_timeout = close_timeout
        #: ``"thread"``: the NATS client runs on a thread of its own with its own event
        #: loop (the feed's loop only queues sealed messages); ``"loop"``: on the feed's loop
        self.publisher = publisher
        #: the publisher thread's share of one core (so of the GIL it shares with the feed)
        #: it keeps to by batching longer: up to 16 ``batch_interval`` between passes
        self.cpu_budget = cpu_budget
        self.shard = shard  #: this sink's shard (0 unsharded): in every status record
        self.shards = shards  #: the number of shards publishing to the stream (1 unsharded)
        #: random per start: consumers tell a publisher restart by it
        self.session = 0
        self._feed: Feed | None = None
        self._nc: Any = None
        self._last_nats_error: BaseException | None = None
        self._js: Any = None
        self._queue: collections.deque[tuple[str, bytes, int, str]] = collections.deque()
        self._batches: dict[tuple[int, str], _Batch] = {}
        self._seq: dict[tuple[int, str], int] = {}
        self._subjects: dict[tuple[int, str], str] = {}
        self._need_snapshot: dict[str, None] = {}
        self._books: dict[str, Any] = {}
        self._seen: set[str] = set()
        #: feed side -> bus side, in order: (what, event-log position, ...): status records,
        #: stale markers, snapshots taken on the feed's loop, close (see :meth:`_collect`)
        self._ctl: collections.deque[tuple[Any, ...]] = collections.deque()
        self._snap_pending = False  # a snapshot request is on its way to the feed's loop
        self._next_snapshot = 0.0  # monotonic time of the next periodic snapshot of every book
        self._feed_loop: asyncio.AbstractEventLoop | None = None
        self._bus_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._proc: Any = None  # publisher="process": the publisher process (feed side)
        self._conn: Any = None  # ... the pipe to it (feed side) or to the feed (in it)
        self._child = False  # this object is the bus side inside the publisher process
        self._restart_task: asyncio.Task[None] | None = None  # (feed side) restarting the process
        self._restarting = False  # (feed side) _restart_process is running
        self._resync_due = False  # (feed side) control items were dropped: send a resync
        self._answering = False  # (feed side) answering the publisher process's snapshot request
        self._child_said_done = False  # (feed side) the publisher process reported its close done
        self._child_stats: dict[str, int] = {}  # (feed side) its last reported stats
        self._private_shm: str | None = None  # the segment configure() gave the feed
        self._parent_gone = False  # (in the publisher process) the feed process went away
        self._ready: asyncio.Future[None] | None = None
        self._child_done: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._acks: dict[int, tuple[int, str, int]] = {}  # token -> kind, symbol, deadline
        self._ack_prefix = ""
        self._ack_sub: Any = None
        self._ack_ns = int(ack_timeout * 1e9)
        self._token = 0
        self._ev_seen = 0
        self._frames_seen = -1
        self._pub_version: dict[str, int] = {}
        self._n_symbols = -1
        self._book_list: list[tuple[str, Any]] = []
        self._ticks = 0
        self._ticker_seen = 0
        self._ticker_table_due = False  # publish the ticker table's rows from before open()
        self._safe: dict[str, bool] = {}
        self._trade_seen = 0
        self._status_seq = 0
        self._open = False  # open() succeeded (feed side)
        self._closing = False  # close() began (feed side)
        self._finishing = False  # the bus side took the close: drain, then end
        self._finishing_now = False  # ... and has yet to send publisher_stop
        self._close_deadline = 0.0
        self._stopped = False
        self._drop_next = 0  # test hook: drop this many next depth messages as on overflow
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "messages",
                "records",
                "bytes",
                "acked",
                "publish_errors",
                "dropped_messages",
                "dropped_records",
                "snapshots",
                "trades_lost",
                "events_lost",
                "tickers_lost",
                "control_lost",
                "publisher_restarts",
                "bus_disconnects",
                "bus_reconnects",
                "max_queue",
                "max_inflight",
                "internal_errors",
                "skipped_symbols",
            ),
            0,
        )

    def __repr__(self) -> str:
        sh = f" shard={self.shard}/{self.shards}" if self.shards > 1 else ""
        return f"<NatsSink {self.url} stream={self.stream} prefix={self.prefix}{sh}>"

    def for_shard(self, shard: int, shards: int) -> NatsSink:
        """A new, unopened sink with this one's configuration for shard ``shard`` of
        ``shards`` (what ``connect_sharded(..., sinks=[sink])`` gives each shard: the same
        stream and prefix; each symbol belongs to one shard, so its sequence numbers come
        from one sink)."""
        return NatsSink(**{**self._config, "shard": shard, "shards": shards})

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its configuration only (a shard process builds its own sink); an
        ``ssl.SSLContext`` does not pickle: give ``tls_ca`` / ``tls_cert`` / ``tls_key``."""
        if self._config["tls"] is not None:
            raise TypeError(
                "a NatsSink with tls= (an SSLContext) cannot go to another process: "
                "pass tls_ca / tls_cert / tls_key (file paths) instead"
            )
        return (_sink_from_config, (self._config,))

    # -- lifecycle ---------------------------------------------------------------------------

    def configure(self, options: FeedOptions) -> None:
        options.event_log = max(options.event_log, self.event_log)
        if self.publisher == "process" and options.shm_name is None:
            # the publisher process reads the books, the event log, trades and tickers
            # from the feed's shared-memory segment: a private one unless the feed has one
            options.shm_name = f"ffbus.{os.getpid()}.{secrets.token_hex(4)}"
            self._private_shm = options.shm_name

    async def open(self, feed: Feed) -> None:
        self._feed = feed
        self.session = secrets.randbits(63) | 1
        loop = self._feed_loop = asyncio.get_running_loop()
        ring = feed.engine.events
        self._ev_seen = ring.count if ring is not None else 0
        self._trade_seen = feed.trades.count
        self._ticker_seen = feed.engine.ticker_history.count
        self._ticker_table_due = True
        self._next_snapshot = time.monotonic() + self.snapshot_interval
        if self.publisher == "process":
            try:
                await self._start_process()
            except BaseException:
                self._stopped = True
                if self._private_shm is not None and feed.engine.shm_name == self._private_shm:
                    # the segment configure() gave the feed is this sink's: a failed start
                    # must not leave it in /dev/shm until the feed object is collected
                    feed.engine.close()
                raise
            self._open = True
            self._restart_if_gone()
            log.info(
                "publishing on NATS %s stream %s prefix %s (publisher process)",
                self.url,
                self.stream,
                self.prefix,
            )
            return
        self._ctl.append(("status", self._ev_seen, "publisher_start", _now(), "", 0, 0.0, FLAG_RESET))
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self.publisher == "thread":
            self._thread = threading.Thread(
                target=self._bus_thread, args=(ready,), name="fastfeed-bus-publisher", daemon=True
            )
            self._thread.start()
        else:
            self._bus_loop = loop
            self._tasks = [loop.create_task(self._bus_main(ready), name="fastfeed-bus")]
        try:
            await asyncio.wrap_future(ready)
        except BaseException:
            self._stopped = True
            await self._join_bus()
            raise
        self._open = True
        log.info("publishing on NATS %s stream %s prefix %s", self.url, self.stream, self.prefix)

    async def close(self) -> None:
        """Hand the close to the bus side, which publishes what the feed applied until now,
        a ``publisher_stop`` status, the snapshots still due and every ack (up to
        ``close_timeout`` s), then closes NATS; wait for it."""
        if not self._open or self._closing:
            return
        self._closing = True
        restart = self._restart_task
        if restart is not None and not restart.done():
            # a publisher process being restarted (or waiting to be): stop that; a process
            # it already started gets the close below
            restart.cancel()
            await asyncio.gather(restart, return_exceptions=True)
        self._close_deadline = time.monotonic() + self.close_timeout
        self._send_ctl(("close", self._position()))
        await self._join_bus()

    async def _join_bus(self) -> None:
        """Wait for the bus side (its pump, the NATS connection; its thread or process) to
        end; past ``close_timeout`` + 5 s, tell it to stop at once."""
        if self._proc is not None:
            await self._join_process()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, self._thread.join, self.close_timeout + 5.0
            )
            if self._thread.is_alive():
                self._stopped = True
                await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 5.0)
        for t in self._tasks:
            try:
                await asyncio.wait_for(asyncio.shield(t), self.close_timeout + 5.0)
            except asyncio.TimeoutError:
                self._stopped = True
                try:
                    await asyncio.wait_for(t, 5.0)
                except (asyncio.CancelledError, Exception):
                    pass
            except (asyncio.CancelledError, Exception):
                pass

    # -- the feed side: only what must happen between two frames, on the feed's loop ------

    def _position(self) -> int:
        """(feed side) The event log's count now: where a control item goes in the rows."""
        assert self._feed is not None
        ring = self._feed.engine.events
        return ring.count if ring is not None else 0

    def on_event(self, event: ConnectionEvent) -> None:
        """(feed side) A connection event: a status record, after every row the feed
        applied before it; on ``disconnected`` a stale marker per book (the feed marked its
        books stale, which logs no row), with the books' state taken now."""
        if not self._open or self._closing:
            return
        assert self._feed is not None
        pos = self._position()
        if event.kind == "disconnected":
            states = [
                (sym, bk.version, bk.recv_ns, bk.stale_since, bk.live)
                for sym, bk in list(self._feed.engine.books.items())
            ]
            self._send_ctl(("stale", pos, states))
        self._send_ctl(
            ("status", pos, event.kind, event.time_ns, event.reason, event.attempt, event.delay, 0)
        )

    def snapshot(self, symbols: Iterable[str] | None = None) -> int:
        """(on the feed's loop) Take a ``book`` snapshot of ``symbols`` (default every book)
        now and hand it to the publisher, which sends it after the depth messages holding
        every change it includes; returns how many were handed over (a full queue on the
        bus side leaves a symbol due, and it is taken again later; with a publisher process
        that is not reading its pipe, a snapshot past the pipe's bound is dropped and
        counted in ``stats["control_lost"]``, and a resync follows)."""
        assert self._feed is not None
        eng = self._feed.engine
        books = eng.books
        names = list(books) if symbols is None else [str(s).upper() for s in symbols]
        pos = self._position()
        n = 0
        for sym in names:
            bk = books.get(sym)
            if bk is None or not subject_safe(sym):
                self._send_ctl(("skip", pos, sym))
                continue
            rows = E.snapshot_rows(eng, [sym])
            n += self._send_ctl(("book", pos, sym, rows, (bk.version, bk.recv_ns, bk.stale_since, bk.live)))
        return n

    def _feed_snapshots(self, symbols: list[str]) -> None:
        """(feed side) The bus side asked for snapshots of ``symbols``. (With a publisher
        process the answer is never dropped at the pipe's bound: the process asks again only
        after it read this one, so answers hold one round of snapshots at most.)"""
        self._answering = True
        try:
            self.snapshot(symbols)
        finally:
            try:
                self._send_ctl(("snapdone", self._position()))
            finally:
                self._answering = False

    def _send_ctl(self, item: tuple[Any, ...]) -> bool:
        """(feed side) Hand a control item to the bus side: its deque, or the pipe to the
        publisher process (a dead process loses it: its successor starts with a reset; past
        the pipe's bound it is dropped and counted, a resync follows). True if handed over."""
        if self._child or self.publisher != "process":
            self._ctl.append(item)
            return True
        conn = self._conn
        if conn is None or conn.closed:
            return False  # no publisher process now: the next one starts with a reset
        try:
            if item[0] == "close" or self._answering:  # never dropped (see _feed_snapshots)
                return bool(conn.send(("ctl", item)))
            self._maybe_resync(conn)
            if conn.send(("ctl", item), droppable=True):
                return True
            self._ctl_lost()
        except OSError:
            pass
        return False

    def _ctl_lost(self) -> None:
        """(feed side) A control item or snapshot did not fit in the pipe's bounded buffer
        (the publisher process is not reading: stopped or stuck): counted, and once the
        buffer has room a resync (every book snapshotted) follows."""
        self.stats["control_lost"] += 1
        self._resync_due = True
        if self.stats["control_lost"] in (1, 10, 100, 1000) or self.stats["control_lost"] % 10000 == 0:
            log.warning(
                "bus: the publisher process is not reading its pipe (%d bytes waiting): "
                "%d control items / snapshots dropped so far; a resync follows",
                self._conn.backlog if self._conn is not None else 0,
                self.stats["control_lost"],
            )

    def _maybe_resync(self, conn: _Pipe) -> None:
        """(feed side) After dropped control items: once the pipe's buffer is below half its
        limit, a ``resync`` item (at the event log's position now): the publisher process
        snapshots every book and asks for snapshots again."""
        if self._resync_due and conn.backlog <= conn.limit // 2:
            self._resync_due = False
            conn.send(("ctl", ("resync", self._position())))

    # -- publisher="process": the feed side of the publisher process ------------------------

    def _tune(self, **attrs: Any) -> None:
        """Set bus-side attributes (``queue_size``, ``max_inflight``, the ``_drop_next`` test
        hook) here and, with a publisher process, in it (tests)."""
        for k, v in attrs.items():
            setattr(self, k, v)
        if self._conn is not None and not self._child:
            try:
                self._conn.send(("tune", attrs))
            except OSError:
                pass
            if "_pipe_limit" in attrs:
                self._conn.limit = attrs["_pipe_limit"]

    async def _start_process(self) -> None:
        """(feed side) Start the publisher process (``python -m fastfeed._bus_publisher``,
        not multiprocessing: a user's ``__main__`` is never re-imported), hand it the
        configuration, the segment name and where to start, and wait until it is connected
        to NATS (its ``BusError`` if not; the process is then gone).

        It runs in a session of its own: a terminal's Ctrl-C, Ctrl-Z or hang-up reach only
        the feed process (which closes the publisher process in order); the publisher
        process also ends when the feed process is gone (its pipe closes)."""
        assert self._feed is not None
        eng = self._feed.engine
        shm_name = eng.shm_name
        if shm_name is None:
            raise BusError(
                "NatsSink(publisher='process') needs the feed's shared-memory segment: attach the "
                "sink with fastfeed.connect(..., sinks=[sink]) so that it can configure the feed "
                "(or give the feed's engine a shm_name)",
                "bus_config",
            )
        if eng.shm is not None and eng.shm.closed:
            raise BusError(
                f"the feed's shared-memory segment {shm_name!r} is closed (the feed was closed, "
                "or an earlier start failed): create a new Feed",
                "bus_config",
            )
        loop = asyncio.get_running_loop()
        mine, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "fastfeed._bus_publisher", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            mine.close()
            raise BusError(f"cannot start the publisher process: {exc}", "bus_process") from exc
        finally:
            theirs.close()
        self._ready = ready = loop.create_future()
        self._child_done = loop.create_future()
        self._child_said_done = False
        self._child_stats = dict.fromkeys(self.stats, 0)
        self._resync_due = False  # the new process starts with a reset and snapshots anyway
        self._conn = _Pipe(mine, loop, self._on_child)
        start = {
            "session": self.session,
            "events": self._ev_seen,
            "trades": self._trade_seen,
            "tickers": self._ticker_seen,
            "time_ns": _now(),
            "private": shm_name == self._private_shm,
        }
        self._conn.send(("start", self._config, shm_name, start))
        try:
            await asyncio.wait_for(asyncio.shield(ready), self._nats_opts["connect_timeout"] + 60.0)
        except BaseException:
            await self._join_process(kill=True)
            # the publisher process may still have reported its end: nobody awaits it now
            if ready.done():
                if not ready.cancelled():
                    ready.exception()
            else:
                ready.cancel()
            raise

    def _on_child(self, msg: tuple[Any, ...] | None) -> None:
        """(feed side, on the feed's loop) A message from the publisher process; None: its
        pipe closed (the process ended). An error here is counted (``internal_errors``) and
        logged, never raised into the loop (the pipe's next messages still get handled)."""
        try:
            self._on_child_msg(msg)
        except Exception as exc:
            self.stats["internal_errors"] += 1
            log.warning(
                "bus: handling a message of the publisher process failed: %s: %s", type(exc).__name__, exc
            )
        conn = self._conn
        if msg is not None and conn is not None and not conn.closed:
            try:
                self._maybe_resync(conn)
            except OSError:
                pass

    def _on_child_msg(self, msg: tuple[Any, ...] | None) -> None:
        what = msg[0] if msg is not None else "eof"
        if what == "stats":
            for k, v in msg[1].items():  # type: ignore[index]
                if k in ("max_queue", "max_inflight"):
                    self.stats[k] = max(self.stats.get(k, 0), v)
                else:
                    self.stats[k] = self.stats.get(k, 0) + v - self._child_stats.get(k, 0)
                self._child_stats[k] = v
        elif what == "snap":
            self._feed_snapshots(list(msg[1]))  # type: ignore[index]
        elif what == "log":
            log.log(int(msg[1]), "publisher process: %s", msg[2])  # type: ignore[index]
        elif what == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif what == "error":
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(BusError(str(msg[2]), str(msg[1])))  # type: ignore[index]
        elif what == "done":
            self._child_said_done = True
            if self._child_done is not None and not self._child_done.done():
                self._child_done.set_result(None)
        elif what == "eof":
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(
                    BusError("the publisher process ended before it connected to NATS", "bus_process")
                )
            if self._child_done is not None and not self._child_done.done():
                self._child_done.set_result(None)
            if not self._open or self._stopped or self._restarting:
                return  # (a start that fails raises; a restart attempt retries)
            if self._closing:
                if not self._child_said_done:
                    log.warning(
                        "bus: the publisher process ended during the close, before it had "
                        "published everything (exit %s)",
                        self._proc_exit(),
                    )
                return
            self._schedule_restart()

    def _schedule_restart(self) -> None:
        self.stats["publisher_restarts"] += 1
        self._restarting = True
        self._restart_task = asyncio.get_running_loop().create_task(self._restart_process())

    def _restart_if_gone(self) -> None:
        """(feed side) Right after a start: a process that ended between its ``ready`` and
        now (its end was seen while the start was not done yet) is restarted too."""
        if self._conn is None or self._conn.closed:
            self._schedule_restart()

    def _proc_exit(self) -> Any:
        return self._proc.poll() if self._proc is not None else None

    async def _restart_process(self) -> None:
        """(feed side) A new publisher process after one died: a new session from the
        current positions (its ``publisher_start`` is a reset for consumers; every book it
        publishes gets a fresh snapshot first). If it cannot start (NATS unreachable, ...),
        try again after ``reconnect_wait`` s, doubling up to 5 s, until it starts or the
        feed closes: the sink never stays without a publisher."""
        delay = max(0.05, float(self._config["reconnect_wait"]))
        attempts = 0
        try:
            proc = self._proc
            await self._join_process(kill=True)
            log.warning(
                "bus: the publisher process ended (exit %s); restarting it",
                proc.returncode if proc is not None else None,
            )
            while not (self._closing or self._stopped):
                assert self._feed is not None
                self.session = secrets.randbits(63) | 1
                eng = self._feed.engine
                self._ev_seen = eng.events.count if eng.events is not None else 0
                self._trade_seen = self._feed.trades.count
                self._ticker_seen = eng.ticker_history.count
                attempts += 1
                try:
                    await self._start_process()
                    if self._conn is None or self._conn.closed:  # ended right after its ready
                        self.stats["publisher_restarts"] += 1
                        await self._join_process(kill=True)
                        continue
                    if attempts > 1:
                        log.warning("bus: the publisher process restarted (attempt %d)", attempts)
                    return
                except Exception as exc:
                    if attempts in (1, 10, 100) or attempts % 1000 == 0:
                        log.warning(
                            "bus: the publisher process could not be restarted (attempt %d): %s; "
                            "retrying every %.2g s at most",
                            attempts,
                            exc,
                            5.0,
                        )
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
        finally:
            self._restarting = False

    async def _join_process(self, kill: bool = False) -> None:
        """(feed side) Wait for the publisher process to publish what is left and end (up to
        ``close_timeout`` + 5 s), then make sure it is gone and close the pipe."""
        proc, conn = self._proc, self._conn
        if proc is None:
            return
        loop = asyncio.get_running_loop()
        if not kill and self._child_done is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._child_done), self.close_timeout + 5.0)
            except asyncio.TimeoutError:
                pass
        for sig in (proc.terminate, proc.kill):
            if proc.poll() is not None:
                break
            if kill or sig is proc.kill or self._child_done is None or not self._child_done.done():
                sig()
            try:
                await loop.run_in_executor(None, proc.wait, 5.0)
            except subprocess.TimeoutExpired:
                continue
        if conn is not None:
            conn.close()
        if self._proc is proc:
            self._proc = self._conn = None

    # -- publisher="process": inside the publisher process ---------------------------------

    async def _child_main(self, pipe: _Pipe, shm_name: str, start: dict[str, Any]) -> None:
        """(the publisher process) Attach the feed's segment, connect to NATS, tell the feed
        (``ready`` or ``error``), then run the bus side until the feed's close (or the end
        of the feed process: what was logged until then still goes out)."""
        from ._shm import ShmReader

        self._child = True
        self._conn = pipe
        loop = asyncio.get_running_loop()
        self._bus_loop = loop
        try:
            reader = ShmReader(shm_name)
        except Exception as exc:
            pipe.send(("error", "bus_process", f"the publisher process cannot attach {shm_name!r}: {exc}"))
            await pipe.drain(5.0)
            return
        if reader.events is None:
            pipe.send(("error", "bus_process", f"shared-memory segment {shm_name!r} has no event log"))
            await pipe.drain(5.0)
            return
        self._feed = _ShmFeed(reader)  # type: ignore[assignment]
        self.session = int(start["session"])
        self._ev_seen = int(start["events"])
        self._trade_seen = int(start["trades"])
        self._ticker_seen = int(start["tickers"])
        self._ticker_table_due = True
        self._next_snapshot = time.monotonic() + self.snapshot_interval
        self._ctl.append(
            ("status", self._ev_seen, "publisher_start", int(start["time_ns"]), "", 0, 0.0, FLAG_RESET)
        )
        pipe.on_message = self._on_parent
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        main = loop.create_task(self._bus_main(ready))
        try:
            await asyncio.wrap_future(ready)
        except Exception as exc:
            reason = exc.reason if isinstance(exc, BusError) else "bus_process"
            pipe.send(
                ("error", reason, str(exc) if isinstance(exc, BusError) else f"{type(exc).__name__}: {exc}")
            )
            await main
            await pipe.drain(5.0)
            return
        pipe.send(("ready",))

        async def report() -> None:
            while True:
                # (refused while the feed process is not reading: the next one has the totals)
                pipe.send(("stats", dict(self.stats)), droppable=True)
                await asyncio.sleep(0.05)

        rep = loop.create_task(report())
        try:
            await main
        finally:
            rep.cancel()
            if self._parent_gone and start.get("private") and not reader.writer_alive:
                # the feed process died without closing: its private segment would stay in
                # /dev/shm for good (no later writer reuses a random name)
                from ._shm import unlink_segment

                try:
                    unlink_segment(shm_name)
                except OSError:
                    pass
            pipe.send(("stats", dict(self.stats)))
            pipe.send(("done",))
            await pipe.drain(5.0)

    def _on_parent(self, msg: tuple[Any, ...] | None) -> None:
        """(the publisher process) A message from the feed process; None: the feed process
        is gone, so close as if it had asked: publish what it logged, then stop. An error
        here is counted (``internal_errors``), never raised into the loop."""
        try:
            self._on_parent_msg(msg)
        except Exception as exc:
            self.stats["internal_errors"] += 1
            log.warning("bus: handling a message of the feed process failed: %s: %s", type(exc).__name__, exc)

    def _on_parent_msg(self, msg: tuple[Any, ...] | None) -> None:
        if msg is None:
            self._parent_gone = True
            if not self._finishing:
                self._closing = True
                self._close_deadline = time.monotonic() + self.close_timeout
                ev = self._feed.engine.events if self._feed is not None else None
                self._ctl.append(("close", ev.count if ev is not None else 0))
            return
        if msg[0] == "ctl":
            self._ctl.append(msg[1])
        elif msg[0] == "tune":
            for k, v in msg[1].items():
                if k in ("queue_size", "max_inflight", "_drop_next"):
                    setattr(self, k, v)
                elif k == "_pipe_limit" and self._conn is not None:
                    self._conn.limit = v

    # -- the bus side: the NATS client on its own thread and loop (or the feed's) -----------

    def _bus_thread(self, ready: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._bus_loop = loop
        try:
            loop.run_until_complete(self._bus_main(ready))
        except BaseException as exc:  # never silent; open() gets it if it was waiting
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("bus: publisher thread ended: %s", type(exc).__name__)
        finally:
            loop.close()

    async def _bus_main(self, ready: concurrent.futures.Future[None]) -> None:
        """The bus side's whole life: connect, create the stream, publish the schema (then
        ``ready``), run the pump until the close is done (or :meth:`_join_bus` stops it),
        close NATS."""
        import nats

        opts = dict(self._nats_opts)
        opts.update(
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        try:
            self._nc = await asyncio.wait_for(nats.connect(**opts), opts["connect_timeout"] + 1)
        except Exception as exc:
            ready.set_exception(_connect_error(self.url, exc, self._last_nats_error))
            return
        try:
            self._js = self._nc.jetstream(timeout=self.ack_timeout)
            self._ack_prefix = self._nc.new_inbox()
            self._ack_sub = await self._nc.subscribe(f"{self._ack_prefix}.*", cb=self._on_ack)
            if self.create_stream:
                await _ensure_stream(self._js, self.stream, self.prefix, **self._stream_cfg)
            await self._js.publish(
                f"{self.prefix}.schema", encode("schema", json.dumps(schema()).encode(), session=self.session)
            )
        except BusError as exc:
            await self._nc.close()
            self._nc = None
            ready.set_exception(exc)
            return
        except Exception as exc:
            await self._nc.close()
            self._nc = None
            ready.set_exception(
                BusError(
                    f"NATS stream {self.stream!r} unusable: {type(exc).__name__}: {str(exc)[:200]}",
                    "bus_stream",
                )
            )
            return
        ready.set_result(None)
        try:
            await self._pump()
        finally:
            try:
                await asyncio.wait_for(self._nc.close(), self.close_timeout)
            except Exception:
                pass

    def _to_feed(self, fn: Callable[[], None], symbols: list[str] | None = None) -> None:
        """(bus side) Run ``fn`` on the feed's loop (it needs the books between two frames);
        in the publisher process: ask the feed process for the snapshots of ``symbols``."""
        if self._child:
            try:
                if not self._conn.send(("snap", symbols or []), droppable=True):
                    self._snap_pending = False  # the feed process is not reading: ask again later
            except (OSError, ValueError):  # the feed process is gone: the close follows
                self._snap_pending = False
            return
        fl = self._feed_loop
        if fl is None or fl is self._bus_loop:
            fn()
            return
        try:
            fl.call_soon_threadsafe(fn)
        except RuntimeError:  # the feed's loop is closed
            self._snap_pending = False

    async def _pump(self) -> None:
        """(bus side) Every ``batch_interval``: collect what the feed applied (:meth:`_collect`)
        and publish the queue with acked JetStream publishes: each message is a NATS publish
        with a reply subject under this sink's ack inbox; the stream's ack (or error) comes
        back there (:meth:`_on_ack`). At most ``max_inflight`` await their ack; one not back
        within ``ack_timeout`` is lost. After the close: until everything is out and acked,
        or ``close_timeout``."""
        q = self._queue
        acks = self._acks
        publish = self._nc.publish
        prefix = self._ack_prefix
        hs = HEADER_DTYPE.itemsize
        stats = self.stats
        poll = self.batch_interval
        # (a publisher process has a core of its own: no budget there)
        budget = self.cpu_budget if self._bus_loop is not self._feed_loop and not self._child else None
        cpu0, wall0, share, delay = time.thread_time(), time.monotonic(), 0.0, poll
        sweep_every = max(1, int(0.005 / poll))
        n = 0
        while not self._stopped:
            try:
                self._collect()
            except Exception as exc:
                stats["internal_errors"] += 1
                if stats["internal_errors"] in (1, 10, 100, 1000):
                    log.warning("bus: publisher tick failed: %s: %s", type(exc).__name__, exc)
            while q and len(acks) < self.max_inflight:
                subject, payload, kind, sym = q.popleft()
                self._token += 1
                token = self._token
                try:
                    await publish(subject, payload, reply=f"{prefix}.{token}")
                except Exception as exc:  # not connected and the buffer full, closed
                    self._lost(kind, sym, exc)
                    if self._stopped:
                        return
                    continue
                acks[token] = (kind, sym, time.monotonic_ns() + self._ack_ns)
                if len(acks) > stats["max_inflight"]:
                    stats["max_inflight"] = len(acks)
                stats["messages"] += 1
                stats["bytes"] += len(payload)
                stats["records"] += (len(payload) - hs) // _SIZES[kind]
            n += 1
            if n % sweep_every == 0:
                self._sweep_acks()
            if self._finishing:
                if not (q or acks or self._need_snapshot or self._snap_pending or self._ctl):
                    return
                if time.monotonic() >= self._close_deadline:
                    log.warning(
                        "bus: %d messages unpublished at close (%d queued, %d awaiting acks, "
                        "%d snapshots due)",
                        len(q) + len(acks),
                        len(q),
                        len(acks),
                        len(self._need_snapshot),
                    )
                    return
            if budget is None or self._finishing:
                await asyncio.sleep(poll)
                continue
            # the thread's CPU share since the last pass (the acks it handled while asleep
            # included): above the budget, the next pass waits longer and batches more
            cpu1, wall1 = time.thread_time(), time.monotonic()
            if wall1 > wall0:
                share = 0.5 * share + 0.5 * (cpu1 - cpu0) / (wall1 - wall0)
            cpu0, wall0 = cpu1, wall1
            delay = _budget_delay(poll, delay, share, budget)
            await asyncio.sleep(delay)

    def _collect(self) -> None:
        """(bus side) Turn what the feed applied since the last call into queued messages:
        the event-log rows, trades and tickers (read from the engine between two of its
        frames: a frame's changes appear all at once under the GIL), with the feed side's
        control items (status, stale markers, snapshots, close) at their place in the rows;
        seal every batch; ask the feed's loop for the snapshots due."""
        feed = self._feed
        if feed is None:
            return
        eng = feed.engine
        ctl = self._ctl
        items = [ctl.popleft() for _ in range(len(ctl))] if ctl else None  # before the rows
        ring = eng.events
        frames = eng.frames
        cnt = ring.count if ring is not None else 0
        self._ticks += 1
        if frames != self._frames_seen or cnt != self._ev_seen or items:
            self._frames_seen = frames
            base = self._ev_seen
            rows: np.ndarray | None = None
            if ring is not None and cnt != base:
                try:
                    rows = ring.since(base)
                    self._ev_seen = base + len(rows)
                except EventsOverwritten:  # fell more than the log behind: snapshot everything
                    self.stats["events_lost"] += 1
                    self._ev_seen = base = ring.count
                    for sym in list(eng.books):
                        self._need_snapshot[sym] = None
            done = 0
            nrows = 0 if rows is None else len(rows)
            for it in items or ():
                p = min(max(it[1] - base, 0), nrows)
                if p > done:
                    assert rows is not None
                    self._depth_rows(rows[done:p])
                    done = p
                self._control(it)
            if done < nrows:
                assert rows is not None
                self._depth_rows(rows[done:] if done else rows)
            self._on_trades()
            self._on_tickers()
            # frames that changed a book's version without logging a row still go out (the
            # header carries the version); checked for up to 256 books
            books = self._all_books()
            if len(books) <= 256:
                pub = self._pub_version
                for sym, bk in books:
                    if bk.version != pub.get(sym, 0) and (_K_DEPTH, sym) not in self._batches:
                        self._add(_K_DEPTH, sym, b"", 0)
            self._seal_all()
            if self._finishing_now:
                self._finishing_now = False
                self._status("publisher_stop", _now())
        now = time.monotonic()
        if now >= self._next_snapshot and not self._finishing:
            self._next_snapshot = now + self.snapshot_interval
            self._snapshot_all()
        if self._need_snapshot and not self._snap_pending and len(self._queue) < self.queue_size // 2:
            self._snap_pending = True
            syms = list(self._need_snapshot)
            self._to_feed(lambda: self._feed_snapshots(syms), syms)

    def _control(self, it: tuple[Any, ...]) -> None:
        """(bus side) One feed-side control item, after the rows logged before it."""
        what = it[0]
        if what == "status":
            _, _, kind, time_ns, reason, attempt, delay, flags = it
            self._status(kind, time_ns, reason=reason, attempt=attempt, delay=delay, flags=flags)
        elif what == "stale":
            for sym, *state in it[2]:
                if not subject_safe(sym):
                    continue
                self._seal((_K_DEPTH, sym))
                self._add(_K_DEPTH, sym, b"", 0, FLAG_STALE)
                self._seal((_K_DEPTH, sym), tuple(state))
        elif what == "book":
            _, _, sym, rows, state = it
            self._seal((_K_DEPTH, sym))  # the snapshot includes every change before it
            self._seen.add(sym)
            if len(self._queue) >= self.queue_size - 1:
                self._need_snapshot[sym] = None
                return
            version, recv_ns, stale_since, live = state
            payload = encode(
                "book",
                rows,
                symbol=sym,
                seq=self._seq.get((_K_DEPTH, sym), 0),
                flags=FLAG_CLEAN | (FLAG_LIVE if live else 0),
                version=version,
                recv_ns=recv_ns,
                session=self.session,
                stale_since=stale_since,
            )
            if self._enqueue(f"{self.prefix}.book.{sym}", payload, _K_BOOK, sym, len(rows)):
                self._need_snapshot.pop(sym, None)
                self.stats["snapshots"] += 1
        elif what == "skip":
            self._need_snapshot.pop(it[2], None)
        elif what == "snapdone":
            self._snap_pending = False
        elif what == "resync":
            # (publisher process) the feed side dropped control items or snapshots (this
            # process was not reading its pipe): every book gets a fresh snapshot, and a
            # snapshot request whose answer may have been dropped is asked again
            self._snap_pending = False
            self._snapshot_all()
        elif what == "close":
            self._finishing = self._finishing_now = True
            if self._child:  # (the feed side's close() set these in its own process)
                self._closing = True
                self._close_deadline = time.monotonic() + self.close_timeout

    def _book(self, sym: str) -> Any:
        b = self._books.get(sym)
        if b is None:
            assert self._feed is not None
            b = self._books[sym] = self._feed.engine.book(sym)
        return b

    def _add(self, kind: int, sym: str, data: bytes, count: int, flags: int = 0) -> None:
        ok = self._safe.get(sym)
        if ok is None:
            ok = self._safe[sym] = subject_safe(sym)
        if not ok:
            self.stats["skipped_symbols"] += 1
            return
        key = (kind, sym)
        b = self._batches.get(key)
        if b is not None and flags & FLAG_CLEAN and b.count:
            self._seal(key)  # rows that start from an empty book start a message: a sync point
            b = None
        if b is None:
            b = self._batches[key] = _Batch()
        b.chunks.append(data)
        b.count += count
        b.flags |= flags
        if b.count >= self.batch_records:
            self._seal(key)

    def _all_books(self) -> list[tuple[str, Any]]:
        assert self._feed is not None
        eng = self._feed.engine
        names = eng.symbols
        if len(names) != self._n_symbols:
            self._n_symbols = len(names)
            self._book_list = list(eng.books.items())
            for n, b in self._book_list:
                self._books[n] = b
        return self._book_list

    def _depth_rows(self, rows: np.ndarray) -> None:
        """(bus side) Queue event-log rows as ``depth`` records, per symbol in log order; a
        symbol's rows are split at each side-less clear (a clean=true push or a reset) so
        that each piece can be a sync point. One stable sort by symbol and one pass over the
        clears, whatever the number of symbols and rows."""
        assert self._feed is not None
        ev = rows["ev"]
        kinds = ev & np.uint64(E.KIND_MASK)
        trade = kinds == E.TRADE_EVENT
        if trade.any():  # trades go out as TRADE_DTYPE records
            rows = _gather(rows, ~trade)
            if not len(rows):
                return
            ev = rows["ev"]
            kinds = ev & np.uint64(E.KIND_MASK)
        names = self._feed.engine.symbols
        nn = len(names)
        rows, groups = _split(rows, "ival")
        ev = rows["ev"]
        kinds = ev & np.uint64(E.KIND_MASK)
        clear = (kinds == E.DEPTH_CLEAR_EVENT) & ((ev & np.uint64(E.BUY_EVENT | E.SELL_EVENT)) == 0)
        starts = np.flatnonzero(clear).tolist()
        buf = rows.tobytes()  # one copy; each piece is a slice of it
        rs = rows.dtype.itemsize
        if not starts:  # the common case: increments only
            for i, lo, hi in groups:
                if 0 <= i < nn:
                    self._add(_K_DEPTH, names[i], buf[lo * rs : hi * rs], hi - lo)
            return
        fval = rows["fval"]
        reset = False
        for i, lo, hi in groups:
            if not 0 <= i < nn:
                continue
            sym = names[i]
            k = bisect.bisect_left(starts, lo)
            cuts = []
            while k < len(starts) and starts[k] < hi:
                cuts.append(starts[k])
                k += 1
            if not cuts:
                self._add(_K_DEPTH, sym, buf[lo * rs : hi * rs], hi - lo)
                continue
            if cuts[0] != lo:
                self._add(_K_DEPTH, sym, buf[lo * rs : cuts[0] * rs], cuts[0] - lo)
            for a, b in itertools.pairwise([*cuts, hi]):
                is_reset = float(fval[a]) == 0.0  # logged outside a frame: reset_books()
                reset |= is_reset
                self._add(
                    _K_DEPTH,
                    sym,
                    buf[a * rs : b * rs],
                    b - a,
                    FLAG_CLEAN | (FLAG_RESET if is_reset else 0),
                )
        if reset:
            self._status("reset", _now())

    def _on_trades(self) -> None:
        assert self._feed is not None
        ring = self._feed.trades
        cnt = ring.count
        if cnt == self._trade_seen:
            return
        new = self._ring_since(ring, self._trade_seen, cnt, TradesOverwritten, "trades_lost")
        self._trade_seen = self._seen_after(new, self._trade_seen, cnt)
        if not len(new):
            return
        names = self._feed.engine.symbols
        new, groups = _split(new, "symbol")
        buf = new.tobytes()  # one copy; each symbol's records are a slice of it
        rs = new.dtype.itemsize
        for i, lo, hi in groups:
            if 0 <= i < len(names):
                self._add(_K_TRADES, names[i], buf[lo * rs : hi * rs], hi - lo)

    def _ring_since(
        self, ring: Any, seen: int, cnt: int, overwritten: type[Exception], stat: str
    ) -> np.ndarray:
        """(bus side) The records of ``ring`` from ``seen`` on; if some were overwritten
        before they were read, the oldest it still holds, the ones missing counted in
        ``stats[stat]``. In a publisher process the writer goes on meanwhile: the copy may
        end past ``cnt`` (the count read before it), and the records say where it ends."""
        try:
            return ring.since(seen)  # type: ignore[no-any-return]
        except overwritten:
            new = ring.latest()
            first = int(new["seq"][0]) if len(new) else cnt
            self.stats[stat] += max(first - seen, 0)
            return new  # type: ignore[no-any-return]

    @staticmethod
    def _seen_after(new: np.ndarray, seen: int, cnt: int) -> int:
        """Where the next read starts after ``new``: past its last record (which may be
        past ``cnt`` when the writer went on while it was copied), never back."""
        last = int(new["seq"][-1]) + 1 if len(new) else cnt
        return max(last, cnt, seen)

    def _on_tickers(self) -> None:
        """(bus side) Queue the ticker records stored since the last call, per symbol, as
        stored (``TICKER_DTYPE``); a symbol beyond the feed's ticker table (index -1) by
        its ``name``."""
        assert self._feed is not None
        eng = self._feed.engine
        ring = eng.ticker_history
        if self._ticker_table_due:  # each symbol's latest from before open(), once
            self._ticker_table_due = False
            table = eng.tickers
            for rec in table[(table["recv_ns"] != 0) & (table["seq"] < self._ticker_seen)]:
                self._add(_K_TICKER, rec["name"].decode("ascii", "replace"), rec.tobytes(), 1)
        cnt = ring.count
        if cnt == self._ticker_seen:
            return
        new = self._ring_since(ring, self._ticker_seen, cnt, TickersOverwritten, "tickers_lost")
        self._ticker_seen = self._seen_after(new, self._ticker_seen, cnt)
        if not len(new):
            return
        new, groups = _split(new, "symbol")
        buf = new.tobytes()
        rs = new.dtype.itemsize
        names = new["name"]
        for i, lo, hi in groups:
            if i >= 0:  # one symbol of the ticker table: its records share the name
                self._add(_K_TICKER, names[lo].decode("ascii", "replace"), buf[lo * rs : hi * rs], hi - lo)
                continue
            for j in range(lo, hi):  # not in the ticker table: one record at a time
                self._add(_K_TICKER, names[j].decode("ascii", "replace"), buf[j * rs : (j + 1) * rs], 1)

    def _status(
        self,
        kind: str,
        time_ns: int,
        *,
        reason: str = "",
        attempt: int = 0,
        delay: float = 0.0,
        flags: int = 0,
    ) -> None:
        rec = np.zeros(1, dtype=STATUS_DTYPE)
        r = rec[0]
        r["time_ns"] = time_ns
        r["delay"] = delay
        r["attempt"] = attempt
        r["kind"] = _STATUS_CODE.get(kind, 0)
        r["shard"] = self.shard
        r["shards"] = self.shards
        r["reason"] = reason.encode("utf-8", "replace")[:120]
        self._status_seq += 1
        payload = encode(
            "status", rec, seq=self._status_seq, flags=flags, recv_ns=time_ns, session=self.session
        )
        self._enqueue(f"{self.prefix}.status", payload, _K_STATUS, "", 1)

    def _seal_all(self) -> None:
        for key in list(self._batches):
            self._seal(key)

    def _seal(self, key: tuple[int, str], state: tuple[Any, ...] | None = None) -> None:
        """Turn the pending batch of ``key`` into a message (next seq) and queue it. A depth
        message's header takes the book's ``version``, ``recv_ns``, ``stale_since`` and
        ``live`` from ``state`` (taken on the feed side) or, by default, from the book now."""
        b = self._batches.pop(key, None)
        if b is None:
            return
        kind, sym = key
        seq = self._seq[key] = self._seq.get(key, 0) + 1
        flags = b.flags
        version = stale_since = recv_ns = 0
        if kind == _K_DEPTH:
            if sym not in self._seen:  # a new book: a first snapshot for late joiners
                self._seen.add(sym)
                self._need_snapshot[sym] = None
            if state is None:
                bk = self._book(sym)
                version, recv_ns, stale_since, live = bk.version, bk.recv_ns, bk.stale_since, bk.live
            else:
                version, recv_ns, stale_since, live = state
            self._pub_version[sym] = version
            if live:
                flags |= FLAG_LIVE
            if self._drop_next > 0:  # test hook: a message lost on the way, unnoticed
                self._drop_next -= 1
                self.stats["dropped_messages"] += 1
                self.stats["dropped_records"] += b.count
                return
        payload = encode(
            KINDS[kind],
            b"".join(b.chunks),
            symbol=sym,
            seq=seq,
            flags=flags,
            version=version,
            recv_ns=recv_ns,
            session=self.session,
            stale_since=stale_since,
        )
        subject = self._subjects.get(key)
        if subject is None:
            subject = self._subjects[key] = f"{self.prefix}.{KINDS[kind]}.{sym}"
        self._enqueue(subject, payload, kind, sym, b.count)

    def _dropped(self, sym: str, count: int) -> None:
        self.stats["dropped_messages"] += 1
        self.stats["dropped_records"] += count
        self._need_snapshot[sym] = None

    def _enqueue(self, subject: str, payload: bytes, kind: int, sym: str, count: int) -> bool:
        q = self._queue
        if len(q) >= self.queue_size:
            if kind in (_K_DEPTH, _K_BOOK):
                self._dropped(sym, count)
            else:
                self.stats["dropped_messages"] += 1
                self.stats["dropped_records"] += count
            return False
        q.append((subject, payload, kind, sym))
        if len(q) > self.stats["max_queue"]:
            self.stats["max_queue"] = len(q)
        return True

    async def _on_ack(self, msg: Any) -> None:
        try:
            token = int(msg.subject.rsplit(".", 1)[1])
        except (ValueError, IndexError):
            return
        entry = self._acks.pop(token, None)
        if entry is None:
            return  # came back after it was counted as lost
        data = msg.data
        if not data or b'"error"' in data:  # no responders (no stream) or a stream error
            self._lost(entry[0], entry[1], BusError("publish refused by the stream", "bus_stream"))
        else:
            self.stats["acked"] += 1

    def _sweep_acks(self) -> None:
        acks = self._acks
        if not acks:
            return
        now = time.monotonic_ns()
        while acks:
            token = next(iter(acks))
            kind, sym, deadline = acks[token]
            if deadline > now:
                break
            del acks[token]
            self._lost(kind, sym, asyncio.TimeoutError("no ack"))

    def _lost(self, kind: int, sym: str, exc: BaseException) -> None:
        """(bus side) A message not published or not acked: a depth/book loss gets the symbol
        a fresh snapshot (taken on the feed's loop when the bus side asks)."""
        self.stats["publish_errors"] += 1
        if kind in (_K_DEPTH, _K_BOOK) and sym:
            self._need_snapshot[sym] = None
        if self.stats["publish_errors"] in (1, 10, 100, 1000) or self.stats["publish_errors"] % 10000 == 0:
            log.warning(
                "bus: publish failed (%s; %d so far)", type(exc).__name__, self.stats["publish_errors"]
            )

    def _snapshot_all(self) -> None:
        """(bus side) Every book is due a snapshot."""
        if self._feed is not None:
            for sym in list(self._feed.engine.books):
                self._need_snapshot[sym] = None

    async def _on_error(self, exc: Exception) -> None:
        self._last_nats_error = exc
        log.debug("bus: NATS error %s", type(exc).__name__)

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        self.stats["bus_disconnects"] += 1
        log.warning("bus: NATS connection to %s lost; reconnecting", self.url)

    async def _on_reconnected(self) -> None:
        self.stats["bus_reconnects"] += 1
        log.warning("bus: NATS reconnected to %s", self.url)
        if self.create_stream:
            try:
                await _ensure_stream(self._js, self.stream, self.prefix, **self._stream_cfg)
            except Exception as exc:
                log.warning("bus: stream check after reconnect failed: %s", type(exc).__name__)
        self._status("bus_reconnected", _now())
        self._snapshot_all()


def _budget_delay(poll: float, delay: float, share: float, budget: float | None) -> float:
    """The publisher thread's next pause, from its last one (``delay``) and its CPU share
    since: longer in proportion while the share is above ``budget`` (at most doubled per
    pass, up to ``16 * poll``), shorter in proportion while below (at most halved, down to
    ``poll``); ``poll`` without a budget."""
    if budget is None:
        return poll
    ratio = share / budget
    if ratio > 1.0:
        return min(16.0 * poll, delay * min(ratio, 2.0))
    return max(poll, delay * max(ratio, 0.5))


def _sink_from_config(config: dict[str, Any]) -> NatsSink:
    return NatsSink(**config)


class _Pipe:
    """Length-prefixed pickles both ways between the feed process and its publisher process
    over a private socket pair, on each side's asyncio loop, never blocking it: what the
    socket does not take at once waits in a buffer written when it can. The buffer is
    bounded: while it holds ``limit`` bytes or more (the other process is not reading: it is
    stopped or stuck), ``send(msg, droppable=True)`` refuses the message and returns False
    (the caller counts the loss and re-syncs); messages that must not be lost (start,
    ready, close, done: a few bytes each) always go in. ``on_message(msg)`` gets each
    message; ``None`` once the other end closed."""

    MAX = 1 << 28
    LIMIT = 64 << 20  #: bytes waiting for the socket past which droppable messages are refused

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[..., None],
        limit: int = LIMIT,
    ) -> None:
        sock.setblocking(False)
        self.sock, self.loop, self.on_message = sock, loop, on_message
        self.limit = limit
        self._out = bytearray()
        self._in = bytearray()
        self.closed = False
        loop.add_reader(sock.fileno(), self._readable)

    @property
    def backlog(self) -> int:
        """Bytes waiting for the socket (the other process has not read them yet)."""
        return len(self._out)

    def send(self, obj: Any, droppable: bool = False) -> bool:
        """Send ``obj``; False if it was ``droppable`` and the buffer is full (not sent).
        OSError once the pipe is closed."""
        if self.closed:
            raise OSError("the pipe to the other process is closed")
        if droppable and len(self._out) >= self.limit:
            return False
        data = pickle.dumps(obj, protocol=5)
        frame = struct.pack("<I", len(data)) + data
        if self._out:
            self._out += frame
            return True
        try:
            n = self.sock.send(frame)
        except BlockingIOError:
            n = 0
        except OSError:
            self._gone()
            raise
        if n < len(frame):
            self._out += frame[n:]
            self.loop.add_writer(self.sock.fileno(), self._writable)
        return True

    def _writable(self) -> None:
        try:
            n = self.sock.send(self._out)
        except BlockingIOError:
            return
        except OSError:
            self._gone()
            return
        del self._out[:n]
        if not self._out:
            self.loop.remove_writer(self.sock.fileno())

    def _readable(self) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._gone()
            return
        buf = self._in
        buf += data
        while len(buf) >= 4:
            (n,) = struct.unpack_from("<I", buf)
            if n > self.MAX:
                log.warning("bus: a %d-byte message on the publisher pipe; closing it", n)
                self._gone()
                return
            if len(buf) < 4 + n:
                break
            msg = pickle.loads(bytes(buf[4 : 4 + n]))
            del buf[: 4 + n]
            self.on_message(msg)
            if self.closed:
                return

    async def drain(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while self._out and not self.closed and time.monotonic() < end:
            await asyncio.sleep(0.005)

    def _gone(self) -> None:
        if not self.closed:
            self.close()
            self.on_message(None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.loop.remove_reader(self.sock.fileno())
            self.loop.remove_writer(self.sock.fileno())
        except (ValueError, RuntimeError):  # a closed loop or socket
            pass
        self.sock.close()


class _Consistent:
    """A shared-memory record ring read the way the bus side reads the engine's rings:
    ``count``, ``since(seq)`` / ``latest(n)`` as consistent copies (a copy the writer may
    have overwritten meanwhile is never returned: the ring's ``...Overwritten`` error)."""

    def __init__(self, ring: Any, overwritten: type[IndexError]) -> None:
        self._r = ring
        self._overwritten = overwritten

    @property
    def count(self) -> int:
        return int(self._r.count)

    def __len__(self) -> int:
        return min(self.count, int(self._r.capacity) - 1)

    def since(self, seq: int) -> np.ndarray:
        try:
            return self._r.snapshot_since(seq)  # type: ignore[no-any-return]
        except ShmTornRead as exc:  # the writer kept overwriting it: as lost as overwritten
            raise self._overwritten(str(exc)) from exc

    def latest(self, n: int = -1) -> np.ndarray:
        try:
            return self._r.snapshot(n)  # type: ignore[no-any-return]
        except ShmTornRead:
            return np.zeros(0, dtype=self._r.snapshot(0).dtype)


class _ShmEngine:
    """What the bus side reads of an engine, from the feed's shared-memory segment (in the
    publisher process)."""

    def __init__(self, reader: Any) -> None:
        self._r = reader
        self.events = _Consistent(reader.events, EventsOverwritten)
        self.trades = _Consistent(reader.trades, TradesOverwritten)
        self.ticker_history = _Consistent(reader.tickers, TickersOverwritten)
        self._frames = 0

    @property
    def frames(self) -> int:
        """(no frame counter in the segment: every pass looks at the books' versions)"""
        self._frames += 1
        return self._frames

    @property
    def symbols(self) -> list[str]:
        return self._r.symbols  # type: ignore[no-any-return]

    @property
    def books(self) -> dict[str, Any]:
        return self._r.books  # type: ignore[no-any-return]

    def book(self, symbol: str) -> Any:
        return self._r.book(symbol)

    @property
    def tickers(self) -> np.ndarray:
        """The latest record of each symbol the ticker history still holds."""
        h = self.ticker_history.latest()
        if not len(h):
            return h
        _, last = np.unique(h["name"][::-1], return_index=True)
        return h[np.sort(len(h) - 1 - last)]


class _ShmFeed:
    def __init__(self, reader: Any) -> None:
        self.engine = _ShmEngine(reader)
        self.trades = self.engine.trades


class _PipeLog(logging.Handler):
    """(the publisher process) Log records go to the feed process, which logs them."""

    def __init__(self, pipe: _Pipe, stats: dict[str, int]) -> None:
        super().__init__(logging.INFO)
        self.pipe = pipe
        self.stats = stats

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if not self.pipe.send(("log", record.levelno, record.getMessage()), droppable=True):
                self.stats["control_lost"] += 1  # the feed process is not reading
        except Exception:
            pass


def _publisher_main(fd: int) -> int:
    """The publisher process (``python -m fastfeed._bus_publisher FD``): read the start
    message from the socket ``fd``, then run the bus side of a :class:`NatsSink` over the
    feed's shared-memory segment until the feed closes it (or goes away)."""
    import signal

    # this process runs in a session of its own (a terminal's Ctrl-C reaches the feed process
    # only, which closes this one in order); a SIGINT sent to it anyway changes nothing
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return 1
        head += chunk
    (n,) = struct.unpack("<I", head)
    body = bytearray()
    while len(body) < n:
        chunk = sock.recv(min(1 << 20, n - len(body)))
        if not chunk:
            return 1
        body += chunk
    what, config, shm_name, start = pickle.loads(bytes(body))
    if what != "start":
        return 1

    async def main() -> None:
        sink = NatsSink(**config)
        pipe = _Pipe(sock, asyncio.get_running_loop(), lambda msg: None)
        handler = _PipeLog(pipe, sink.stats)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        try:
            await sink._child_main(pipe, shm_name, start)
        finally:
            log.removeHandler(handler)
            pipe.close()

    asyncio.run(main())
    return 0


# =============================================================================================
# Consumer
# =============================================================================================


class RemoteBook(ReferenceBook):
    """A book rebuilt from the bus, with the :class:`~fastfeed.Book` API (``bids``,
    ``asks``, ``best_bid``, ``best_ask``, ``version``, ``recv_ns``, ``live``,
    ``stale_since``, ``snapshot()``, ``to_pandas()``). ``bids`` / ``asks`` are read-only
    copies taken when read. ``live`` is the publisher's ``live`` while this book is in
    sequence; it is False from a detected gap until the next snapshot (``synced`` False)."""

    def __init__(self, symbol: str, depth: int = 200) -> None:
        super().__init__(symbol, depth)
        self.synced = False  #: in sequence with the publisher (a snapshot applied, no gap since)
        #: feed resets applied to this book (its publishing feed or shard reconnected to
        #: the exchange and rebuilt it from empty)
        self.resets = 0

    def _apply_rows(self, rows: np.ndarray) -> None:
        """Apply event rows (what the publisher's engine did) in order."""
        ev = rows["ev"].tolist()
        px = rows["px"].tolist()
        qty = rows["qty"].tolist()
        buy, sell, mask, clear = E.BUY_EVENT, E.SELL_EVENT, E.KIND_MASK, E.DEPTH_CLEAR_EVENT
        for e, p, q in zip(ev, px, qty):
            k = e & mask
            if k == clear:
                if e & buy or not e & sell:
                    self.bid_side.clear()
                if e & sell or not e & buy:
                    self.ask_side.clear()
            elif k != E.TRADE_EVENT:
                (self.bid_side if e & buy else self.ask_side).set(p, q)

    def _load(self, rows: np.ndarray) -> None:
        """Replace the levels by a snapshot (a clear row, asks best first, bids best first)."""
        ev = rows["ev"]
        body = rows[1:] if len(rows) and (int(ev[0]) & E.KIND_MASK) == E.DEPTH_CLEAR_EVENT else rows
        kinds = body["ev"] & np.uint64(E.KIND_MASK)
        if len(body) and not np.isin(kinds, (E.DEPTH_EVENT, E.DEPTH_SNAPSHOT_EVENT)).all():
            self.clear()
            self._apply_rows(rows)
            return
        isbuy = (body["ev"] & np.uint64(E.BUY_EVENT)) != 0
        bids, asks = body[isbuy], body[~isbuy]
        bk, ak = (-bids["px"]).tolist(), asks["px"].tolist()
        if bk != sorted(bk) or ak != sorted(ak):  # not in book order: apply one by one
            self.clear()
            self._apply_rows(rows)
            return
        self.bid_side.keys, self.bid_side.amounts = bk, bids["qty"].tolist()
        self.ask_side.keys, self.ask_side.amounts = ak, asks["qty"].tolist()

    def _header(self, h: np.void, now_ns: int) -> None:
        self.version = int(h["version"])
        self.recv_ns = int(h["recv_ns"])
        live = bool(int(h["flags"]) & FLAG_LIVE)
        if live:
            self.live, self.stale_since = True, 0
        elif self.live or not self.stale_since:
            self.live = False
            self.stale_since = int(h["stale_since"]) or now_ns

    def _desync(self, now_ns: int) -> None:
        self.synced = False
        if self.live:
            self.live = False
            self.stale_since = now_ns


class RemoteTrades:
    """Trades received from the bus: a ring of the newest ``capacity`` records in
    :data:`~fastfeed.layout.TRADE_DTYPE` (``symbol`` is an index into
    ``RemoteFeed.symbols``; ``seq`` is the publisher's ring sequence). Same reading API as
    :class:`~fastfeed.TradeRing`: ``count``, ``len()``, ``latest(n)``, ``since(seq)``
    (here ``seq`` counts the records this ring received, from 0), ``to_pandas(n)``; every
    result is a copy (the caller's)."""

    def __init__(self, capacity: int = 65536, symbols: list[str] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.symbols = symbols if symbols is not None else []
        self._buf = np.zeros(capacity, dtype=TRADE_DTYPE)
        self.count = 0

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    def _append(self, recs: np.ndarray) -> None:
        n = len(recs)
        if n >= self.capacity:
            recs = recs[-self.capacity :]
            self.count += n - self.capacity
            n = self.capacity
        start = self.count % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = recs[:first]
        if first < n:
            self._buf[: n - first] = recs[first:]
        self.count += n

    def _gather(self, first: int) -> np.ndarray:
        idx = np.arange(first, self.count) % self.capacity
        return self._buf[idx]

    def latest(self, n: int = -1) -> np.ndarray:
        have = len(self)
        n = have if n < 0 else min(n, have)
        return self._gather(self.count - n)

    def since(self, seq: int) -> np.ndarray:
        if seq < self.count - self.capacity:
            raise TradesOverwritten(
                f"trades before {self.count - self.capacity} were overwritten", "trades_overwritten"
            )
        return self._gather(max(seq, 0))

    def to_pandas(self, n: int = -1) -> Any:
        from ._ring import trades_frame

        return trades_frame(self.latest(n), self.symbols)


class StatusEvent:
    """One status record from the publisher: ``kind`` (a :data:`STATUS_KINDS` name),
    ``time_ns``, ``reason``, ``attempt``, ``delay``, ``session`` and ``seq`` (both the
    publishing sink's: each shard has its own), ``shard`` of ``shards`` (0 of 1 unsharded):
    a ``disconnected`` / ``reset`` of shard k concerns the symbols of shard k only (their
    books go stale and are reset by their own ``depth`` messages; the other books are
    untouched)."""

    __slots__ = ("attempt", "delay", "kind", "reason", "seq", "session", "shard", "shards", "time_ns")

    def __init__(
        self,
        kind: str,
        time_ns: int,
        reason: str,
        attempt: int,
        delay: float,
        session: int,
        seq: int,
        shard: int = 0,
        shards: int = 1,
    ) -> None:
        self.kind, self.time_ns, self.reason = kind, time_ns, reason
        self.attempt, self.delay, self.session, self.seq = attempt, delay, session, seq
        self.shard, self.shards = shard, shards

    def __repr__(self) -> str:
        sh = f" shard {self.shard}/{self.shards}" if self.shards > 1 else ""
        return f"<StatusEvent {self.kind}{sh} {self.reason!r}>"


class _SymState:
    __slots__ = ("expect", "last_sseq", "session", "sub", "ticker", "trade_seq")

    def __init__(self) -> None:
        self.expect = 0
        self.session = 0
        self.sub: Any = None
        self.last_sseq = 0
        self.trade_seq = 0
        self.ticker: np.void | None = None


class RemoteFeed:
    """Books, trades and tickers of some symbols rebuilt from the bus (see
    :func:`subscribe`). ``book(sym)``, ``trades``, ``latest_tickers`` (``{sym: TICKER_DTYPE
    record}``), ``status`` (the newest status events, a bounded deque), ``on_status``
    (called with each :class:`StatusEvent`), ``stats`` (``messages``, ``rejected``,
    ``gaps``, ``snapshots``, ``resyncs``, ``resets``, ``publisher_restarts``,
    ``trade_gaps``, ``bus_reconnects``)."""

    def __init__(
        self,
        nats_url: str | list[str],
        symbols: Iterable[str],
        *,
        stream: str = "FASTFEED",
        prefix: str = "fastfeed.digifinex",
        depth: int = 200,
        trade_capacity: int = 65536,
        status_size: int = 1000,
        on_status: Callable[[StatusEvent], None] | None = None,
        heartbeat: float = 1.0,
        connect_timeout: float = 5.0,
        reconnect_wait: float = 0.25,
        name: str = "fastfeed-consumer",
        tls: ssl.SSLContext | None = None,
        tls_hostname: str | None = None,
        creds: str | os.PathLike[str] | None = None,
        nkeys_seed: str | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(symbols, str):
            raise TypeError("symbols must be a list of symbols")
        self.symbols: list[str] = list(dict.fromkeys(_check_symbol(s) for s in symbols))
        if not self.symbols:
            raise ValueError("subscribe needs at least one symbol")
        self._nats_opts = nats_options(
            nats_url,
            name=name,
            tls=tls,
            tls_hostname=tls_hostname,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            creds=creds,
            nkeys_seed=nkeys_seed,
            user=user,
            password=password,
            token=token,
            connect_timeout=connect_timeout,
            reconnect_wait=reconnect_wait,
        )
        self.url = _redact(",".join(self._nats_opts["servers"]))
        self.stream = stream
        self.prefix = _check_prefix(prefix)
        self.heartbeat = heartbeat
        self._books = {s: RemoteBook(s, depth) for s in self.symbols}
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self._state = {s: _SymState() for s in self.symbols}
        self.trades = RemoteTrades(trade_capacity, self.symbols)
        self.latest_tickers: dict[str, np.void] = {}
        self.status: collections.deque[StatusEvent] = collections.deque(maxlen=status_size)
        self.on_status = on_status
        self._nc: Any = None
        self._last_nats_error: BaseException | None = None
        self._js: Any = None
        self._status_sub: Any = None
        self._waiter: asyncio.Task[None] | None = None
        self._update = asyncio.Event()
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "messages",
                "rejected",
                "gaps",
                "snapshots",
                "resyncs",
                "resets",
                "publisher_restarts",
                "trade_gaps",
                "bus_reconnects",
                "callback_errors",
            ),
            0,
        )

    def __repr__(self) -> str:
        return f"<RemoteFeed {self.url} {len(self.symbols)} symbols>"

    def book(self, symbol: str) -> RemoteBook:
        """The rebuilt book of ``symbol`` (one of ``symbols``; else
        :class:`~fastfeed.errors.UnknownSymbol`)."""
        b = self._books.get(symbol.upper() if isinstance(symbol, str) else symbol)
        if b is None:
            raise UnknownSymbol(
                f"{str(symbol)[:40]!r} is not one of this consumer's symbols", "unknown_symbol"
            )
        return b

    def synced(self, symbols: Iterable[str] | None = None) -> bool:
        """True when every book of ``symbols`` (default all) is in sequence."""
        return all(self._books[_check_symbol(s)].synced for s in (symbols or self.symbols))

    async def wait(self, cond: Callable[[], bool], timeout: float | None = None) -> None:
        """Wait until ``cond()`` is true, checked after each message (``TimeoutError``
        after ``timeout`` s)."""

        async def loop() -> None:
            while not cond():
                self._update.clear()
                await self._update.wait()

        await asyncio.wait_for(loop(), timeout)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> RemoteFeed:
        import nats

        opts = dict(self._nats_opts)
        opts.update(error_cb=self._on_error, reconnected_cb=self._on_reconnected)
        try:
            self._nc = await asyncio.wait_for(nats.connect(**opts), opts["connect_timeout"] + 1)
        except Exception as exc:
            raise _connect_error(self.url, exc, self._last_nats_error) from None
        self._js = self._nc.jetstream()
        try:
            self._status_sub = await self._nc.subscribe(f"{self.prefix}.status", cb=self._on_status_msg)
            if await self._stream_exists():
                for sym in self.symbols:
                    await self._start_symbol(sym)
            else:  # no publisher yet: start once the stream appears
                self._waiter = asyncio.get_running_loop().create_task(self._wait_for_stream())
        except BusError:
            await self._nc.close()
            raise
        except Exception as exc:
            await self._nc.close()
            raise BusError(
                f"cannot read stream {self.stream!r}: {type(exc).__name__}: {str(exc)[:200]}", "bus_stream"
            ) from None
        return self

    async def _stream_exists(self) -> bool:
        from nats.js.errors import NotFoundError

        try:
            await self._js.stream_info(self.stream)
            return True
        except NotFoundError:
            return False

    async def _wait_for_stream(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat / 4)
            try:
                if not await self._stream_exists():
                    continue
                for sym in self.symbols:
                    if self._state[sym].sub is None:
                        await self._start_symbol(sym)
                return
            except Exception as exc:
                log.debug("bus consumer: waiting for stream %s: %s", self.stream, type(exc).__name__)

    async def close(self) -> None:
        if self._waiter is not None:
            self._waiter.cancel()
            try:
                await self._waiter
            except (asyncio.CancelledError, Exception):
                pass
            self._waiter = None
        if self._nc is not None:
            try:
                await asyncio.wait_for(self._nc.close(), 5.0)
            except Exception:
                pass
            self._nc = None

    async def __aenter__(self) -> RemoteFeed:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _start_symbol(self, sym: str, start_seq: int | None = None) -> None:
        """(Re)create the ordered consumer of ``PREFIX.*.SYM``: from ``start_seq``, else
        from the last snapshot in the stream, else from new messages."""
        from nats.js import api
        from nats.js.errors import NotFoundError

        st = self._state[sym]
        if st.sub is not None:
            try:
                await st.sub.unsubscribe()
            except Exception:
                pass
            st.sub = None
        if start_seq is None:
            try:
                last = await self._js.get_last_msg(self.stream, f"{self.prefix}.book.{sym}")
                start_seq = int(last.seq)
            except NotFoundError:
                start_seq = None
        if start_seq is not None:
            policy, cfg = api.DeliverPolicy.BY_START_SEQUENCE, api.ConsumerConfig(opt_start_seq=start_seq)
        else:
            policy, cfg = api.DeliverPolicy.NEW, api.ConsumerConfig()

        async def cb(msg: Any, sym: str = sym) -> None:
            self._on_msg(sym, msg)

        st.sub = await self._js.subscribe(
            f"{self.prefix}.*.{sym}",
            stream=self.stream,
            cb=cb,
            ordered_consumer=True,
            idle_heartbeat=self.heartbeat,
            deliver_policy=policy,
            config=cfg,
        )

    # -- messages ------------------------------------------------------------------------

    def _on_msg(self, sym: str, msg: Any) -> None:
        try:
            h, kind, recs = decode(msg.data)
        except BusRecordError:
            self.stats["rejected"] += 1
            return
        if bytes(h["symbol"]).decode("ascii") != sym or kind not in ("depth", "book", "trades", "ticker"):
            self.stats["rejected"] += 1
            return
        self.stats["messages"] += 1
        st = self._state[sym]
        try:
            st.last_sseq = int(msg.metadata.sequence.stream)
        except Exception:
            pass
        now = _now()
        book = self._books[sym]
        session = int(h["session"])
        seq = int(h["seq"])
        if kind == "book":
            if book.synced and session == st.session and seq < st.expect - 1:
                return  # older than what we hold
            if st.session and session != st.session:
                self.stats["publisher_restarts"] += 1
            if not book.synced:
                self.stats["resyncs"] += 1
            st.session = session
            try:
                book._load(recs)
            except Exception:
                self.stats["rejected"] += 1
                book.clear()
                book._desync(now)
                return
            self.stats["snapshots"] += 1
            book.synced = True
            st.expect = seq + 1
            book._header(h, now)
        elif kind == "depth":
            if not book.synced or session != st.session:
                if book.synced:  # a new publisher while we were in sequence
                    self.stats["gaps"] += 1
                    book._desync(now)
                flags = int(h["flags"])
                if (
                    flags & FLAG_CLEAN
                    and len(recs)
                    and int(recs["ev"][0]) & E.KIND_MASK == E.DEPTH_CLEAR_EVENT
                    and not int(recs["ev"][0]) & (E.BUY_EVENT | E.SELL_EVENT)
                ):
                    # rows that start from an empty book (a clean=true push, a feed reset):
                    # a sync point as good as a snapshot
                    if st.session and session != st.session:
                        self.stats["publisher_restarts"] += 1
                    if flags & FLAG_RESET:
                        self.stats["resets"] += 1
                        book.resets += 1
                    self.stats["resyncs"] += 1
                    st.session = session
                    book.clear()
                    book._apply_rows(recs)
                    book.synced = True
                    st.expect = seq + 1
                    book._header(h, now)
                    self._update.set()
                return
            if seq < st.expect:
                return  # already in the snapshot
            if seq > st.expect:
                self.stats["gaps"] += 1
                book._desync(now)
                return
            st.expect = seq + 1
            if int(h["flags"]) & FLAG_RESET:
                self.stats["resets"] += 1
                book.resets += 1
            book._apply_rows(recs)
            book._header(h, now)
        elif kind == "trades":
            if st.trade_seq and session == st.session and seq != st.trade_seq + 1 and seq > st.trade_seq:
                self.stats["trade_gaps"] += 1
            if seq <= st.trade_seq and session == st.session:
                return
            st.trade_seq = seq
            out = recs.copy()
            out["symbol"] = self._index[sym]
            self.trades._append(out)
        else:
            self.latest_tickers[sym] = recs[-1].copy() if len(recs) else None  # type: ignore[assignment]
            if self.latest_tickers[sym] is None:
                del self.latest_tickers[sym]
        self._update.set()

    async def _on_status_msg(self, msg: Any) -> None:
        try:
            h, kind, recs = decode(msg.data)
        except BusRecordError:
            self.stats["rejected"] += 1
            return
        if kind != "status":
            self.stats["rejected"] += 1
            return
        for r in recs:
            code = int(r["kind"])
            ev = StatusEvent(
                STATUS_KINDS[code] if code < len(STATUS_KINDS) else "other",
                int(r["time_ns"]),
                bytes(r["reason"]).decode("utf-8", "replace"),
                int(r["attempt"]),
                float(r["delay"]),
                int(h["session"]),
                int(h["seq"]),
                int(r["shard"]),
                int(r["shards"]),
            )
            self.status.append(ev)
            if self.on_status is not None:
                try:
                    self.on_status(ev)
                except Exception:
                    self.stats["callback_errors"] += 1
        self._update.set()

    async def _on_error(self, exc: Exception) -> None:
        self._last_nats_error = exc
        log.debug("bus consumer: NATS error %s", type(exc).__name__)

    async def _on_reconnected(self) -> None:
        """After a NATS reconnect (e.g. a server restart) recreate each consumer from the
        next stream message (ordered consumers may not survive a restart)."""
        self.stats["bus_reconnects"] += 1
        for sym in self.symbols:
            st = self._state[sym]
            try:
                await self._start_symbol(sym, st.last_sseq + 1 if st.last_sseq else None)
            except Exception as exc:
                log.warning("bus consumer: resubscribing %s failed: %s", sym, type(exc).__name__)
        self._update.set()


def subscribe(nats_url: str | list[str], symbols: Iterable[str], **kwargs: Any) -> RemoteFeed:
    """A :class:`RemoteFeed` of ``symbols``: ``async with fastfeed.bus.subscribe(url,
    symbols=[...]) as remote:`` connects, starts each book from the last snapshot in the
    stream and applies the later changes (keywords: see :class:`RemoteFeed`; the
    connection's :data:`NATS_OPTIONS`, ``tls`` or ``tls_ca`` / ``tls_cert`` / ``tls_key``,
    ``creds``, ``user``/``password``, ``token``, ``nkeys_seed``, as for :class:`NatsSink`)."""
    return RemoteFeed(nats_url, symbols, **kwargs)
