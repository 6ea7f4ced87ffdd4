"""Fixtures shared by the engine tests.

Every engine test runs against both implementations through ``engine_cls``: ``compiled``
(``fastfeed.Engine``; FAILS when the extensions did not load, it is never skipped) and
``reference`` (``fastfeed.reference.ReferenceEngine``). Run only one with ``-k reference`` or
``-k compiled``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

from fastfeed.reference import ReferenceEngine

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
