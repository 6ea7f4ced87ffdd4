"""setup.py's build cache: a generated .c is reused only for the same inputs.

The Cython step is skipped when a module's key (its sources, the Cython version and
options, ...) matches the stamp of the .c in the tree. A build for another Python (CI's
plugin jobs build the same tree on Python 3.13 after the main job's build) gets another
numpy in its isolated build environment, and `cimport numpy` reads that numpy's own
__init__.pxd: the .c of one numpy does not compile against another's headers, so the key
must change with numpy.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def setup_module(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """setup.py's namespace, without running setup()."""
    setuptools = pytest.importorskip("setuptools")  # the test extra installs it (and Cython)
    pytest.importorskip("Cython")
    monkeypatch.setattr(setuptools, "setup", lambda **kw: None)
    monkeypatch.chdir(ROOT)
    return runpy.run_path(str(ROOT / "setup.py"), run_name="fastfeed_setup_under_test")


def test_the_cython_key_changes_with_numpy(setup_module: dict[str, Any]) -> None:
    build_ext = setup_module["BuildExt"]
    ext = next(e for e in setup_module["extensions"] if e.name == "fastfeed._events")
    keys = []
    for version in ("2.3.5", "2.5.5", "2.5.5"):
        cmd = object.__new__(build_ext)
        cmd._numpy_version = version
        keys.append(cmd._cython_key(ext))
    assert keys[0] != keys[1]  # another numpy: cythonize again
    assert keys[1] == keys[2]  # the same inputs: reuse the .c
