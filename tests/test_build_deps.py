"""setup.py rebuilds an extension when a header of the package changes.

The compiled modules include fastfeed/_fastnum.h; an edit to it changes neither the .pyx
nor the generated .c. Both of setup.py's skip rules must see it: setuptools' timestamp
check (the extension's ``depends``) and the content-hashed compile cache (``_c_key``).
Before this was fixed, an edited header left the old object file and the old cached
extension in place (a stale build that tests then ran against).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
import setuptools

ROOT = Path(__file__).resolve().parent.parent


def _run_setup(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    got: dict[str, Any] = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: got.update(kw))
    monkeypatch.setattr(sys, "argv", ["setup.py", "--name"])
    monkeypatch.chdir(ROOT)
    return runpy.run_path(str(ROOT / "setup.py"), run_name="not_main") | {"_setup": got}


def test_every_extension_depends_on_the_package_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = _run_setup(monkeypatch)
    headers = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "fastfeed").glob("*.h"))
    assert "fastfeed/_fastnum.h" in headers
    exts = ns["_setup"]["ext_modules"]
    assert exts
    for ext in exts:
        assert sorted(Path(d).as_posix() for d in ext.depends) == headers, ext.name


def test_compile_cache_key_covers_the_package_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = _run_setup(monkeypatch)
    build_ext = ns["BuildExt"]
    ext = ns["_setup"]["ext_modules"][0]
    cmd = build_ext.__new__(build_ext)
    cmd._numpy_version = "x"
    real_read = ns["_read"]
    key = cmd._c_key(ext)
    header = str(ROOT / "fastfeed" / "_fastnum.h")

    def read(path: str) -> bytes:
        data = real_read(path)
        return data + b"/* edited */" if str(path) == header else data

    monkeypatch.setitem(build_ext._c_key.__globals__, "_read", read)
    assert cmd._c_key(ext) != key
