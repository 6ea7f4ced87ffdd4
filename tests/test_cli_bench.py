"""``fastfeed bench`` runs from an installed package: its benchmark code lives in
fastfeed.bench, not in the repository's benchmarks/ directory (which a wheel lacks)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHECK = r"""
import sys
import fastfeed
from fastfeed.cli import main
rc = main(["bench", "--n", "300", "--rounds", "1", "--no-alloc", "--no-by-kind"])
bad = sorted(name for name, m in list(sys.modules.items())
             if "benchmarks" in str(getattr(m, "__file__", "") or ""))
print("FASTFEED", fastfeed.__file__)
print("RC", rc, "BENCHMARK-MODULES", bad)
"""


def test_bench_runs_from_a_copy_of_the_package_without_benchmarks_dir(tmp_path: Path) -> None:
    """A copy of the package (with its built extensions) alone on sys.path, as a wheel
    install lays it out: `fastfeed bench` runs and loads nothing from a benchmarks/ dir."""
    site = tmp_path / "site"
    shutil.copytree(
        ROOT / "fastfeed", site / "fastfeed", ignore=shutil.ignore_patterns("__pycache__", "*.c", "*.html")
    )
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, %r); exec(%r)" % (str(site), _CHECK)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert f"FASTFEED {site / 'fastfeed'}" in r.stdout, r.stdout
    assert "RC 0 BENCHMARK-MODULES []" in r.stdout, r.stdout + r.stderr
    assert "ns/msg" in r.stdout or "ns/message" in r.stdout, r.stdout


def test_cli_bench_module_does_not_refer_to_the_benchmarks_dir() -> None:
    src = (ROOT / "fastfeed" / "cli" / "bench.py").read_text()
    assert "benchmarks" not in src and "spec_from_file_location" not in src


def test_every_subpackage_is_in_the_wheel() -> None:
    """pyproject lists packages by hand: each fastfeed subpackage (cli, live, bench,
    exchange...) must be there, or a plain wheel install lacks it."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(ROOT / "pyproject.toml", "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "fastfeed").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found <= listed, found - listed
