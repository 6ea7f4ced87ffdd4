"""The ``native`` selection (CI's debug and AddressSanitizer runs: ``pytest -m native``) is
decided once per test module: each module either says ``pytest.mark.native`` in its
``pytestmark`` or is listed in ``NOT_NATIVE`` below with the reason. A new test module that
does neither fails here, so nothing that reaches compiled code silently drops out of the
sanitizer runs (the old hand-kept list in ci/run.sh did: ``test_limits.py`` with the
symbol-table growth, the client tests with the listener, the exports, ...).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

#: Test modules outside the native selection, and why. Tests in them that take a fixture
#: reaching compiled code (``engine_cls``, ``shm_name``) are marked anyway (conftest.py).
NOT_NATIVE = {
    # no compiled code reached in this process
    "test_capture.py": "the capture file format, pure Python (replay with stand-in engines)",
    "test_capture_damage.py": "damaged captures, pure Python; its CLI checks run in a subprocess",
    "test_docs.py": "documentation text only",
    "test_exchange_compat.py": "the bundled exchange against an independent websockets client",
    "test_exchange_market.py": "the exchange's market simulation, pure Python",
    "test_exchange_oracle.py": "the exchange against an independent decoder, pure Python",
    "test_exchange_protocol.py": "the exchange's protocol with SimpleClient and BookSet, pure Python",
    "test_markers.py": "this check",
    "test_build_deps.py": "setup.py's rebuild rules, no compiled code",
    "test_typing.py": "runs mypy on user scripts (static)",
    # reach compiled code only in child processes, or are soak/live-process runs: slow under
    # ASan (every child pays the interpreter and numpy start-up) for paths that the
    # in-process native tests already cover
    "test_cli.py": "CLI commands in subprocesses (~60 s already without ASan)",
    "test_cli_hostile.py": "CLI commands in subprocesses against hostile servers",
    "test_cli_units.py": "CLI argument handling, no engine in this process",
    "test_cli_bench.py": "fastfeed bench in subprocesses (the engine paths it times are native-tested)",
    "test_cli_readme.py": "README commands and text, CLI in subprocesses",
    "test_exchange_cli.py": "the exchange command in subprocesses",
    "test_exchange_soak.py": "soak run (opt-in)",
    "test_faults_live.py": "live exchange process killed, stalled and restarted under the client",
    "test_bus.py": "a nats-server process and live feeds; the engine paths it drives are native-tested",
    "test_cli_bus_errors.py": "publish/archive commands in subprocesses against unreachable NATS servers",
    "test_cli_help_defaults.py": "argparse help texts and symbol-list parsing, no engine",
}


def _marks_native(path: Path) -> bool:
    """Does the module's top-level ``pytestmark`` include ``pytest.mark.native``?"""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return "pytest.mark.native" in ast.unparse(node.value)
    return False


MODULES = sorted(p.name for p in TESTS.glob("test_*.py"))


@pytest.mark.parametrize("name", MODULES)
def test_every_module_decides_native(name: str) -> None:
    native = _marks_native(TESTS / name)
    if name in NOT_NATIVE:
        assert not native, f"{name} is marked native and listed in NOT_NATIVE: pick one"
    else:
        assert native, (
            f"{name}: reaches compiled code? add `pytestmark = pytest.mark.native`; "
            "if not, list it in NOT_NATIVE in tests/test_markers.py with the reason"
        )


def test_not_native_lists_only_existing_modules() -> None:
    assert set(NOT_NATIVE) <= set(MODULES), set(NOT_NATIVE) - set(MODULES)


def test_native_marker_is_registered(pytestconfig: pytest.Config) -> None:
    markers = pytestconfig.getini("markers")
    assert any(m.startswith("native:") for m in markers), markers
