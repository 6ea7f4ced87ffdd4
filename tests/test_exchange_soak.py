"""The CI soak's verdict (benchmarks/soak.py --ci) depends only on what machine load cannot
change: errors, reconnects, lost frames and bounded memory. A slow, backlogged run on a busy
machine passes; one lost frame, one error, one reconnect or a growing RSS fails."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

_SOAK = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"


@pytest.fixture(scope="module")
def soak() -> Any:
    spec = importlib.util.spec_from_file_location("fastfeed_soak", _SOAK)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def samples(
    n: int = 12, *, rate: float, unread: int, rss_step: float = 0.0, **last: int
) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append(
            {
                "t": 5.0 * (i + 1),
                "rss_mb": 50.0 + rss_step * i,
                "frames": int(rate * 5 * (i + 1)),
                "rejects": 0,
                "bad_frames": 0,
                "request_errors": 0,
                "reconnects": 0,
                "unread_bytes": unread,
            }
        )
    out[-1].update(last)
    return out


COUNTS = {"frames_sent": 1000, "received": 1000, "connections_total": 1}


def test_a_slow_backlogged_run_passes_in_ci_but_not_in_the_benchmark(soak: Any) -> None:
    busy = samples(rate=5_000, unread=40 * 2**20)  # 10% of the rate, seconds of backlog
    v = soak.verdict(busy, COUNTS, 50_000, True, 32.0)
    assert v["ok"], v
    assert v["info_max_backlog_ms"] > 50 and v["info_msgs_per_s"] < 0.8 * 50_000
    bench = soak.verdict(busy, COUNTS, 50_000, False, 32.0)  # by hand: timing targets apply
    assert not bench["ok"]
    assert not bench["checks"]["backlog_50ms"] and not bench["checks"]["rate_kept"]


@pytest.mark.parametrize(
    "change,check",
    [
        (dict(counts={"frames_sent": 1001, "received": 1000, "connections_total": 1}), "no_loss"),
        (dict(counts={}), "no_loss"),
        (dict(counts={"frames_sent": 1000, "received": 1000, "connections_total": 2}), "no_reconnects"),
        (dict(last={"reconnects": 1}), "no_reconnects"),
        (dict(last={"rejects": 1}), "no_errors"),
        (dict(last={"bad_frames": 2}), "no_errors"),
        (dict(last={"request_errors": 1}), "no_errors"),
        (dict(rss_step=4.0), "memory_bounded"),
    ],
)
def test_counts_and_memory_decide_the_ci_verdict(soak: Any, change: dict[str, Any], check: str) -> None:
    s = samples(rate=50_000, unread=0, rss_step=change.get("rss_step", 0.0), **change.get("last", {}))
    v = soak.verdict(s, change.get("counts", COUNTS), 50_000, True, 32.0)
    assert not v["ok"] and not v["checks"][check], v
    assert [k for k, good in v["checks"].items() if not good] == [check]
