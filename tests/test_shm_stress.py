"""Multi-process stress test of the shared-memory books and trade ring.

One writer process applies depth and trade pushes at full speed for a few seconds
(increments, deletions, 80-level snapshots trimmed to the depth, crossing updates, a small
trade ring that wraps constantly). Several reader processes take snapshots the whole time
and check every one of them:

* each side sorted strictly best-first, amounts > 0, no crossed book, rows <= depth;
* the checksum of the rows equals the one the writer stored with that version;
* versions never go backwards (per reader, per book), seq is even;
* trade windows are contiguous by sequence number and every record is intact (its price,
  amount, side and time are functions of its id, so a torn record is caught).

Zero violations allowed. Processes are spawned (no fork) and the segment is unlinked
whatever happens. Nothing depends on machine load: the writer starts once every reader is
attached and keeps writing (at least ``WRITE_SECONDS``) until every reader has seen enough
(``MIN_*`` below), so a busy machine makes the test slower, not failing; ``HANG_GUARD`` only
stops a run that cannot progress at all.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import sys
import time
import uuid
from typing import Any

import numpy as np
import pytest

from fastfeed.shm import unlink_segment

pytestmark = [
    pytest.mark.slow,
    pytest.mark.native,  # reaches compiled code: part of CI's debug and ASan runs
    pytest.mark.skipif(sys.platform != "linux", reason="POSIX shm under /dev/shm"),
]

DEPTH = 64
SYMBOLS = ["S0_USDT", "S1_USDT", "S2_USDT"]
WRITE_SECONDS = 3.0
READERS = 3
HANG_GUARD = 300.0  # seconds; a hang guard, not a timing verdict
MIN_MESSAGES = 20_000
MIN_SNAPSHOTS = 300  # per reader: book snapshots,
MIN_TRADE_SNAPSHOTS = 100  # trade windows,
MIN_VERSIONS = 20  # distinct versions seen per book


def trade_fields(tid: int) -> tuple[float, float, int, float]:
    """price, amount, side, time of trade ``tid`` (the writer's and the readers' rule)."""
    return float(f"{100 + (tid % 1000) / 100:.2f}"), float(tid % 7 + 1), 1 if tid % 2 == 0 else -1, float(tid)


def depth_payloads(n: int, seed: int) -> list[bytes]:
    """Depth pushes: increments with deletions and crossings, and 80-level snapshots."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sym = rng.choice(SYMBOLS)
        if rng.random() < 0.04:
            lv = {
                "asks": [[f"{100 + 0.01 * k:.2f}", f"{rng.randint(1, 99) / 10}"] for k in range(1, 81)],
                "bids": [[f"{100 - 0.01 * k:.2f}", f"{rng.randint(1, 99) / 10}"] for k in range(80)],
            }
            rng.shuffle(lv["asks"])
            out.append(json.dumps({"method": "depth.update", "params": [True, lv, sym], "id": None}).encode())
        else:

            def side(lo: int, hi: int) -> list[list[str]]:
                return [
                    [
                        f"{100 + 0.01 * rng.randint(lo, hi):.2f}",
                        "0" if rng.random() < 0.3 else f"{rng.randint(1, 99) / 10}",
                    ]
                    for _ in range(rng.randint(0, 8))
                ]

            lv = {"asks": side(-5, 90), "bids": side(-90, 5)}  # overlapping: crossings
            out.append(
                json.dumps({"method": "depth.update", "params": [False, lv, sym], "id": None}).encode()
            )
    return out


def trade_payload(tid: int) -> bytes:
    """A push of trades ``tid - 1`` and ``tid`` (newest first)."""
    objs = []
    for t in (tid, tid - 1):
        price, amount, side, _ = trade_fields(t)
        objs.append(
            '{"id":%d,"time":%d,"price":"%.2f","amount":"%d","type":"%s"}'
            % (t, t, price, amount, "buy" if side > 0 else "sell")
        )
    sym = SYMBOLS[tid % len(SYMBOLS)]
    return (
        '{"method":"trades.update","params":[false,[%s],"%s"],"id":null}' % (",".join(objs), sym)
    ).encode()


def writer_main(name: str, seconds: float, conn: Any, go: Any, satisfied: Any) -> None:
    import fastfeed

    payloads = depth_payloads(12_000, seed=7)
    eng = fastfeed.Engine(depth=DEPTH, trade_capacity=256, shm_name=name, shm_checksum=True)
    try:
        for s in SYMBOLS:  # publish every book before the readers attach
            eng.feed(
                json.dumps(
                    {"method": "depth.update", "id": None, "params": [True, {"bids": [["1", "1"]]}, s]}
                )
            )
        conn.send("ready")
        if not go.wait(HANG_GUARD):
            return
        feed = eng.feed
        n = 0
        tid = 0
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end or (
            (n < MIN_MESSAGES or not all(satisfied[:])) and time.monotonic() < start + HANG_GUARD
        ):
            for k in range(0, len(payloads), 3):
                feed(payloads[k])
                feed(payloads[k + 1])
                feed(payloads[k + 2])
                tid += 2
                feed(trade_payload(tid))
            n += len(payloads) + len(payloads) // 3
        conn.send(
            {"messages": n, "versions": {s: eng.book(s).version for s in SYMBOLS}, "trades": eng.trades.count}
        )
    finally:
        eng.close()
        conn.close()


def reader_main(name: str, deadline_s: float, conn: Any, satisfied: Any, me: int) -> None:
    from fastfeed.errors import ShmError
    from fastfeed.shm import attach, book_checksum

    violations: list[str] = []
    snaps = trade_snaps = 0
    deadline = time.monotonic() + deadline_s

    def bad(msg: str) -> None:
        if len(violations) < 20:
            violations.append(msg)

    last_version = dict.fromkeys(SYMBOLS, -1)
    versions_seen = {s: set() for s in SYMBOLS}
    retries = 0
    with attach(name) as r:
        books = {s: r.book(s) for s in SYMBOLS}
        trades = r.trades
        conn.send("attached")
        last_seq = -1
        final = False
        while True:
            closed = r.state != "ready"
            for s, book in books.items():
                try:
                    snap = book.read()
                except ShmError as exc:
                    bad(f"{s}: {exc!r}")
                    continue
                snaps += 1
                b, a = snap.bids, snap.asks
                if len(b) > DEPTH or len(a) > DEPTH:
                    bad(f"{s} v{snap.version}: {len(b)}/{len(a)} rows > depth {DEPTH}")
                if len(b) > 1 and not np.all(np.diff(b[:, 0]) < 0):
                    bad(f"{s} v{snap.version}: bids not sorted descending")
                if len(a) > 1 and not np.all(np.diff(a[:, 0]) > 0):
                    bad(f"{s} v{snap.version}: asks not sorted ascending")
                if len(b) and len(a) and b[0, 0] >= a[0, 0]:
                    bad(f"{s} v{snap.version}: crossed {b[0, 0]} >= {a[0, 0]}")
                if (len(b) and not np.all(b[:, 1] > 0)) or (len(a) and not np.all(a[:, 1] > 0)):
                    bad(f"{s} v{snap.version}: non-positive amount")
                if book_checksum(b, a, snap.version) != snap.checksum:
                    bad(f"{s} v{snap.version}: checksum mismatch")
                if snap.version < last_version[s]:
                    bad(f"{s}: version went back {last_version[s]} -> {snap.version}")
                if snap.seq % 2:
                    bad(f"{s}: odd seq {snap.seq}")
                last_version[s] = snap.version
                versions_seen[s].add(snap.version)
            try:
                window = trades.snapshot(200)
            except ShmError as exc:
                bad(f"trades: {exc!r}")
                window = None
            if window is not None and len(window):
                trade_snaps += 1
                seq = window["seq"]
                if not np.array_equal(seq, np.arange(seq[0], seq[0] + len(seq))):
                    bad(f"trades: window not contiguous at {seq[0]}")
                if seq[0] < last_seq - 200:
                    bad("trades: window went back")
                last_seq = int(seq[-1])
                for rec in window[:: max(1, len(window) // 16)].tolist():
                    tid, _, t, _, price, amount, _, side = rec
                    if (price, amount, side, t) != trade_fields(tid):
                        bad(f"trades: torn record {rec}")
            if not satisfied[me] and (
                snaps >= MIN_SNAPSHOTS
                and trade_snaps >= MIN_TRADE_SNAPSHOTS
                and all(len(v) >= MIN_VERSIONS for v in versions_seen.values())
            ):
                satisfied[me] = 1
            if final or time.monotonic() > deadline:
                break
            final = closed
        retries = sum(b.retries for b in books.values())
    conn.send(
        {
            "violations": violations,
            "snapshots": snaps,
            "trade_snapshots": trade_snaps,
            "versions_seen": {s: len(v) for s, v in versions_seen.items()},
            "retries": retries,
        }
    )
    conn.close()


def test_readers_never_see_an_inconsistent_book() -> None:
    name = f"stress-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    ctx = mp.get_context("spawn")
    procs: list[Any] = []
    conns: list[Any] = []
    go = ctx.Event()
    satisfied = ctx.Array("b", READERS)
    try:
        wrecv, wsend = ctx.Pipe(duplex=False)
        conns += [wrecv, wsend]
        writer = ctx.Process(
            target=writer_main, args=(name, WRITE_SECONDS, wsend, go, satisfied), name="shm-writer"
        )
        writer.start()
        procs.append(writer)
        wsend.close()
        assert wrecv.poll(HANG_GUARD), "writer did not start"
        assert wrecv.recv() == "ready"
        readers = []
        for i in range(READERS):
            rrecv, rsend = ctx.Pipe(duplex=False)
            conns += [rrecv, rsend]
            p = ctx.Process(
                target=reader_main, args=(name, 2 * HANG_GUARD, rsend, satisfied, i), name=f"shm-reader-{i}"
            )
            p.start()
            rsend.close()
            procs.append(p)
            readers.append(rrecv)
        for i, rrecv in enumerate(readers):
            assert rrecv.poll(HANG_GUARD), f"reader {i} did not attach (exit code {procs[i + 1].exitcode})"
            assert rrecv.recv() == "attached"
        go.set()
        assert wrecv.poll(2 * HANG_GUARD), "writer did not finish"
        wstats = wrecv.recv()
        results = []
        for i, rrecv in enumerate(readers):
            assert rrecv.poll(HANG_GUARD), f"reader {i} did not finish (exit code {procs[i + 1].exitcode})"
            results.append(rrecv.recv())
        for p in procs:
            p.join(HANG_GUARD)
            assert p.exitcode == 0, f"{p.name} exit code {p.exitcode}"
    finally:
        for p in procs:
            if p.is_alive():  # pragma: no cover - only on failure
                p.kill()
                p.join()
        for c in conns:
            c.close()
        unlink_segment(name)
    print(f"writer: {wstats}")
    for i, res in enumerate(results):
        print(
            f"reader {i}: snapshots {res['snapshots']} trade windows {res['trade_snapshots']} "
            f"retries {res['retries']} versions seen {res['versions_seen']}"
        )
    assert wstats["messages"] >= MIN_MESSAGES
    for res in results:
        assert res["violations"] == [], res["violations"]
        # reached before the writer stopped, unless the hang guard ended the run
        assert res["snapshots"] >= MIN_SNAPSHOTS
        assert res["trade_snapshots"] >= MIN_TRADE_SNAPSHOTS
        assert all(n >= MIN_VERSIONS for n in res["versions_seen"].values()), res["versions_seen"]
