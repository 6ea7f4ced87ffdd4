"""A short, deterministic run of the differential fuzzer for the builtin inflate decoder
(fuzz/ffinflate_fuzz.c, see docs/fuzzing.md): _ffinflate.h compiled on its own with
AddressSanitizer and UBSan (when the compiler has them), fed a fixed-seed sequence of zlib
frames (random settings) and their mutants, each checked against zlib's inflate with
several output capacities. FF_OK must mean zlib's exact output; no sanitizer report."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

#: reaches compiled code (the decoder in C): part of CI's debug and ASan runs
pytestmark = pytest.mark.native

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "fuzz" / "ffinflate_fuzz.c"
SEED = 20261126
ITERATIONS = 4000


def _compiler() -> list[str]:
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if not cc or shutil.which(cc[0]) is None:
        pytest.skip("no C compiler")
    return cc


def _build(tmp_path: Path) -> Path:
    cc = _compiler()
    exe = tmp_path / "ffinflate_fuzz_sa"
    base = [*cc, "-DFF_FUZZ_STANDALONE", "-O1", "-g", "-I", str(ROOT / "fastfeed"), str(HARNESS)]
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    for flags in (san, []):  # sanitizers if the toolchain has them
        r = subprocess.run([*base, *flags, "-lz", "-o", str(exe)], capture_output=True, timeout=300)
        if r.returncode == 0:
            return exe
    raise AssertionError(f"cannot build the harness: {r.stderr.decode(errors='replace')}")


def test_ffinflate_differential_fixed_seed(tmp_path: Path) -> None:
    exe = _build(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # its own ASan runtime
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1"
    r = subprocess.run([str(exe), str(SEED), str(ITERATIONS)], capture_output=True, timeout=600, env=env)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode(errors="replace")
    m = re.search(r"ff_ok (\d+) ff_nospace (\d+) ff_unsure (\d+) zlib_ok (\d+)", out)
    assert m, out
    ok, nospace, unsure, zlib_ok = map(int, m.groups())
    # every outcome was reached: the run exercised acceptance, not only refusals
    assert ok > ITERATIONS // 4 and nospace > 0 and unsure > 0 and zlib_ok > ITERATIONS // 10
