"""Soak test: the live client against the local exchange (its own process) at a steady
rate over loopback, for minutes or hours, recording memory, backlog, errors and reconnects.

    python benchmarks/soak.py --minutes 60            # the documented 1-hour run (by hand)
    python benchmarks/soak.py --ci                    # the CI mode: 2 minutes, checked

Every ``--every`` seconds it samples: RSS of this process, frames processed, rejected
frames, reconnects, and the backlog = bytes waiting unread in the client socket's kernel
receive queue (FIONREAD). At the end it prints the samples and a verdict:

* RSS growth, fitted over the samples after the warm-up (first 20%), in MB/hour
  (target < 5 MB/hour);
* errors (rejected frames, bad frames, request errors/timeouts) (target 0);
* reconnects (target 0);
* backlog (target: never more than 50 ms of traffic unread).

``--check`` makes the exit code 1 when a target is missed. In ``--ci`` mode a 2-minute run
cannot resolve 5 MB/hour, so the RSS check there is "< 3 MB after the warm-up".
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import re
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
_ROOT = Path(__file__).resolve().parent.parent
if any((_ROOT / "fastfeed").glob("_engine*.so")):
    sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402

SYMBOLS = ["BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT", "DOGE_USDT",
           "LTC_USDT", "TRX_USDT", "ADA_USDT", "DOT_USDT", "LINK_USDT"]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def start_exchange(rate: int, pregenerate: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastfeed", "exchange", "--port", "0", "--rate", str(rate),
         "--pregenerate", str(pregenerate), "--symbols", ",".join(SYMBOLS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=str(_ROOT), env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    line = proc.stdout.readline() if proc.stdout else ""
    m = re.search(r"(ws://\S+)", line)
    if not m:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"exchange did not start: {line!r} {err}")
    return proc, m.group(1)


def unread_bytes(feed: Any) -> int:
    tr = feed._transport
    if tr is None:
        return 0
    sock = tr.underlying_transport.get_extra_info("socket")
    if sock is None:
        return 0
    buf = bytearray(4)
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    return int.from_bytes(buf, sys.byteorder)


async def soak(url: str, seconds: float, every: float) -> list[dict[str, Any]]:
    import fastfeed

    samples: list[dict[str, Any]] = []
    async with fastfeed.connect(url, data_timeout=10.0) as feed:
        await feed.subscribe_depth(SYMBOLS)
        await feed.subscribe_trades(SYMBOLS)
        await feed.subscribe_ticker(SYMBOLS)
        t0 = time.monotonic()
        while True:
            await asyncio.sleep(every)
            st = feed.stats
            eng = st["engine"]
            samples.append({
                "t": round(time.monotonic() - t0, 2),
                "rss_mb": rss_bytes() / 2**20,
                "frames": eng["frames"],
                "rejects": sum(eng["rejects"].values()),
                "bad_frames": st["bad_frames"],
                "request_errors": st["request_errors"] + st["request_timeouts"],
                "reconnects": st["reconnects"],
                "unread_bytes": unread_bytes(feed),
            })
            if samples[-1]["t"] >= seconds:
                break
    return samples


def verdict(samples: list[dict[str, Any]], rate: int, ci: bool) -> dict[str, Any]:
    warm = samples[max(1, len(samples) // 5):]
    t = np.array([s["t"] for s in warm])
    rss = np.array([s["rss_mb"] for s in warm])
    slope_mb_h = float(np.polyfit(t, rss, 1)[0] * 3600) if len(warm) >= 3 else float("nan")
    growth_mb = float(rss[-1] - rss[0]) if len(rss) else 0.0
    last = samples[-1]
    dt = samples[-1]["t"] - samples[0]["t"]
    msgs_s = (samples[-1]["frames"] - samples[0]["frames"]) / dt if dt > 0 else 0.0
    avg_frame = 160  # bytes on the wire per frame, about (corpus average)
    max_unread = max(s["unread_bytes"] for s in samples)
    res = {
        "seconds": last["t"],
        "msgs_per_s": msgs_s,
        "rss_start_mb": samples[0]["rss_mb"],
        "rss_end_mb": last["rss_mb"],
        "rss_growth_after_warmup_mb": growth_mb,
        "rss_slope_mb_per_hour": slope_mb_h,
        "errors": last["rejects"] + last["bad_frames"] + last["request_errors"],
        "reconnects": last["reconnects"],
        "max_unread_bytes": max_unread,
    }
    backlog_ok = max_unread <= 0.05 * rate * avg_frame
    rss_ok = growth_mb < 3.0 if ci else slope_mb_h < 5.0
    res["ok"] = bool(rss_ok and res["errors"] == 0 and res["reconnects"] == 0 and backlog_ok
                     and msgs_s > 0.8 * rate)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=50_000, help="messages/s the exchange sends")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--pregenerate", type=int, default=200_000, help="frames in the exchange's cycle")
    ap.add_argument("--ci", action="store_true", help="2 minutes, 5 s samples, --check")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--json", help="write samples and verdict to this file")
    args = ap.parse_args(argv)
    if args.ci:
        args.minutes, args.every, args.check = 2.0, 5.0, True
        args.pregenerate = min(args.pregenerate, 100_000)
    proc, url = start_exchange(args.rate, args.pregenerate)
    try:
        samples = asyncio.run(soak(url, args.minutes * 60, args.every))
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"{'t s':>8}{'rss MB':>9}{'frames':>12}{'errors':>8}{'reconn':>8}{'unread B':>10}")
    for s in samples:
        print(f"{s['t']:>8.0f}{s['rss_mb']:>9.1f}{s['frames']:>12,}"
              f"{s['rejects'] + s['bad_frames'] + s['request_errors']:>8}{s['reconnects']:>8}"
              f"{s['unread_bytes']:>10,}")
    v = verdict(samples, args.rate, args.ci)
    print()
    for k, val in v.items():
        print(f"{k:>28}: {val:,.2f}" if isinstance(val, float) else f"{k:>28}: {val}")
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": samples, "verdict": v}, indent=1))
    return 0 if (v["ok"] or not args.check) else 1


if __name__ == "__main__":
    sys.exit(main())
