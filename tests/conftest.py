"""Fixtures shared by the tests.

Every engine test runs against both implementations through ``engine_cls``: ``compiled``
(``fastfeed.Engine``; FAILS when the extensions did not load, it is never skipped) and
``reference`` (``fastfeed.reference.ReferenceEngine``). Run only one with ``-k reference`` or
``-k compiled``.

The ``native`` marker selects the tests that reach compiled (Cython/C) code; CI's debug and
AddressSanitizer builds run ``pytest -m native``. A module whose tests drive the compiled
engine, parser, inflate backends, books, rings, event log, shared memory or listener says
``pytestmark = pytest.mark.native``; a test that takes ``engine_cls`` or ``shm_name`` is
marked here whatever its module says (see ``pytest_collection_modifyitems``), and
tests/test_markers.py checks that no test module that reaches compiled code goes unmarked.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

from fastfeed.reference import ReferenceEngine
from fastfeed.shm import unlink_segment

from helpers import CODECS, compiled_engine_cls

# Hypothesis keeps caches (e.g. collected constants) in its home directory: keep it out of the
# repository unless HYPOTHESIS_STORAGE_DIRECTORY says otherwise.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "fastfeed-hypothesis")

# Hypothesis: never write a database into the repository, derandomized so a failure reproduces
# on every run; `FASTFEED_HYPOTHESIS_PROFILE=random` explores new inputs (seeds are printed).
settings.register_profile(
    "fastfeed",
    database=None,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "random",
    database=None,
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("FASTFEED_HYPOTHESIS_PROFILE", "fastfeed"))


@pytest.fixture(params=["compiled", "reference"])
def engine_cls(request: pytest.FixtureRequest) -> Any:
    """The engine class under test (both implementations)."""
    if request.param == "compiled":
        return compiled_engine_cls()
    return ReferenceEngine


@pytest.fixture(params=CODECS)
def codec(request: pytest.FixtureRequest) -> str:
    """How payloads are handed to ``feed`` (see ``helpers.encode``)."""
    return request.param


@pytest.fixture()
def shm_name() -> Iterator[str]:
    """A fresh shared-memory segment name, unlinked after the test (whatever it left)."""
    if sys.platform != "linux":  # pragma: no cover
        pytest.skip("POSIX shm under /dev/shm")
    name = f"test-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        unlink_segment(name)


#: fixtures whose users reach compiled code (``engine_cls``: its ``compiled`` half)
NATIVE_FIXTURES = ("engine_cls", "shm_name")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``native`` every test that takes a fixture reaching compiled code."""
    for item in items:
        if any(f in getattr(item, "fixturenames", ()) for f in NATIVE_FIXTURES):
            item.add_marker(pytest.mark.native)
