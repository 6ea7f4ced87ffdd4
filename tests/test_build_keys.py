"""setup.py's build cache: the key of a module's generated .c covers every input of
Cython's output, numpy's own ``.pxd`` included (``cimport numpy`` reads it; a .c generated
against one numpy's pxd does not compile with another numpy's headers, which is what a
second build on another Python, with another numpy, ran into)."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
import setuptools

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup_ns() -> dict[str, Any]:
    real = setuptools.setup
    setuptools.setup = lambda **_kw: None  # load the module without building anything
    try:
        return runpy.run_path(str(ROOT / "setup.py"), run_name="fastfeed_setup")
    finally:
        setuptools.setup = real


def test_the_cython_key_follows_numpys_pxd(setup_ns: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    build_ext = setup_ns["BuildExt"]
    ext = next(e for e in setup_ns["extensions"] if e.name == "fastfeed._events")  # cimports numpy
    pxd = build_ext._numpy_pxd()
    assert b"cdef extern" in pxd  # numpy's pxd, read for real
    key = build_ext._cython_key(build_ext.__new__(build_ext), ext)
    monkeypatch.setattr(build_ext, "_numpy_pxd", staticmethod(lambda: pxd + b"# another numpy"))
    assert build_ext._cython_key(build_ext.__new__(build_ext), ext) != key
