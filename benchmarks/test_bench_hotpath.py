"""Opt-in pytest-benchmark suite for fastfeed's hot functions.

Run: ``pytest benchmarks/ --benchmark-only`` (add ``--benchmark-group-by=group``, the
default, to compare each fastfeed call with its Python reference in the same group).
Not collected by the default ``pytest`` run (``testpaths = ["tests"]``).

Single-frame benchmarks repeat one frame, which is idempotent for books (same upsert,
same snapshot) but turns a trades push into the duplicate path after its first call; the
``*_x1000`` benchmarks feed 1000 distinct frames to a fresh engine per round, so their
time is per 1000 messages.
"""

from __future__ import annotations

import json
import zlib

import pytest

pytest.importorskip("pytest_benchmark")
import fastfeed

if not fastfeed.COMPILED:
    pytest.skip("fastfeed's compiled extensions are not built", allow_module_level=True)

orjson = pytest.importorskip("orjson")

from bench_engine import ENGINE_KW, make_dict_client  # noqa: E402
from corpus import Frame  # noqa: E402

PAYLOADS = ["zlib", "plain"]
BATCH = 1000


def _first(corpus: list[Frame], kind: str, pred=lambda m: True) -> Frame:
    for f in corpus[10:]:
        if f.kind == kind and pred(json.loads(f.plain)):
            return f
    raise LookupError(kind)


def _two_a_side(msg: dict) -> bool:
    levels = msg["params"][1]
    return len(levels["asks"]) == 2 and len(levels["bids"]) == 2


@pytest.fixture(scope="module")
def depth_frame(corpus) -> Frame:
    return _first(corpus, "depth", _two_a_side)


@pytest.fixture(scope="module")
def trades_frame(corpus) -> Frame:
    return _first(corpus, "trades", lambda m: len(m["params"][1]) == 2)


@pytest.fixture(scope="module")
def snapshot_frame(corpus) -> Frame:
    return _first(corpus, "snapshot")


def _warm_engine(corpus: list[Frame]):
    eng = fastfeed.Engine(**ENGINE_KW)
    for f in corpus[:10]:  # one snapshot per symbol: every book populated
        eng.feed(f.zlib)
    return eng


def _feed_all(feed, payloads) -> None:
    for p in payloads:
        feed(p)


# --- inflate ------------------------------------------------------------------------------
@pytest.mark.benchmark(group="inflate depth frame")
def test_inflater_inflate_len(benchmark, depth_frame):
    inf = fastfeed.Inflater()
    assert benchmark(inf.inflate_len, depth_frame.zlib) == len(depth_frame.plain)


@pytest.mark.benchmark(group="inflate depth frame")
def test_inflater_inflate_copy(benchmark, depth_frame):
    inf = fastfeed.Inflater()
    assert benchmark(inf.inflate, depth_frame.zlib) == depth_frame.plain


@pytest.mark.benchmark(group="inflate depth frame")
def test_ref_zlib_decompress(benchmark, depth_frame):
    assert benchmark(zlib.decompress, depth_frame.zlib) == depth_frame.plain


# --- depth increment ----------------------------------------------------------------------
@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.benchmark(group="depth increment")
def test_feed_depth(benchmark, corpus, depth_frame, payload):
    eng = _warm_engine(corpus)
    assert benchmark(eng.feed, getattr(depth_frame, payload)) is None


@pytest.mark.benchmark(group="depth increment")
def test_ref_orjson_loads_depth(benchmark, depth_frame):
    benchmark(orjson.loads, depth_frame.plain)


@pytest.mark.benchmark(group="depth increment")
def test_ref_py_orjson_dict_depth(benchmark, corpus, depth_frame):
    on_message = make_dict_client(orjson.loads)[0]
    for f in corpus[:10]:
        on_message(f.zlib)
    assert benchmark(on_message, depth_frame.zlib) is None


# --- snapshot -----------------------------------------------------------------------------
@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.benchmark(group="snapshot 30 levels")
def test_feed_snapshot(benchmark, corpus, snapshot_frame, payload):
    eng = _warm_engine(corpus)
    assert benchmark(eng.feed, getattr(snapshot_frame, payload)) is None


@pytest.mark.benchmark(group="snapshot 30 levels")
def test_ref_py_orjson_dict_snapshot(benchmark, snapshot_frame):
    on_message = make_dict_client(orjson.loads)[0]
    assert benchmark(on_message, snapshot_frame.zlib) is None


# --- trades -------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.benchmark(group="trades push (duplicate after the first call)")
def test_feed_trades_duplicate(benchmark, corpus, trades_frame, payload):
    eng = _warm_engine(corpus)
    assert benchmark(eng.feed, getattr(trades_frame, payload)) is None


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.benchmark(group="trades push x1000 (fresh)")
def test_feed_trades_x1000(benchmark, corpus, payload):
    frames = [getattr(f, payload) for f in corpus if f.kind == "trades"][:BATCH]
    assert len(frames) == BATCH

    def setup():
        return (fastfeed.Engine(**ENGINE_KW).feed, frames), {}

    benchmark.pedantic(_feed_all, setup=setup, rounds=50, warmup_rounds=2)


@pytest.mark.benchmark(group="trades push x1000 (fresh)")
def test_ref_py_orjson_dict_trades_x1000(benchmark, corpus):
    frames = [f.zlib for f in corpus if f.kind == "trades"][:BATCH]

    def setup():
        return (make_dict_client(orjson.loads)[0], frames), {}

    benchmark.pedantic(_feed_all, setup=setup, rounds=50, warmup_rounds=2)


# --- the corpus mix -----------------------------------------------------------------------
@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.benchmark(group="corpus mix x1000 (fresh engine)")
def test_feed_mix_x1000(benchmark, corpus, payload):
    frames = [getattr(f, payload) for f in corpus[:BATCH]]

    def setup():
        return (fastfeed.Engine(**ENGINE_KW).feed, frames), {}

    benchmark.pedantic(_feed_all, setup=setup, rounds=50, warmup_rounds=2)


@pytest.mark.benchmark(group="corpus mix x1000 (fresh engine)")
def test_inflate_len_mix_x1000(benchmark, corpus):
    frames = [f.zlib for f in corpus[:BATCH]]
    inf = fastfeed.Inflater()
    benchmark.pedantic(_feed_all, args=(inf.inflate_len, frames), rounds=50, warmup_rounds=2)


@pytest.mark.benchmark(group="corpus mix x1000 (fresh engine)")
def test_ref_py_orjson_dict_mix_x1000(benchmark, corpus):
    frames = [f.zlib for f in corpus[:BATCH]]

    def setup():
        return (make_dict_client(orjson.loads)[0], frames), {}

    benchmark.pedantic(_feed_all, setup=setup, rounds=50, warmup_rounds=2)
