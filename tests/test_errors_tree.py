"""One error tree: every exception class fastfeed defines lives in fastfeed/errors.py under
FastfeedError, errors.py documents the tree, old import paths keep working, and the raise
sites that used builtins for fastfeed's own conditions raise typed errors (that are still
the builtin they were)."""

from __future__ import annotations

import ast
import asyncio
import builtins
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest

import fastfeed
from fastfeed import errors
from fastfeed.errors import FastfeedError

#: reaches compiled code: part of CI's debug and ASan runs (`pytest -m native`, see conftest.py)
pytestmark = pytest.mark.native

PKG = Path(fastfeed.__file__).parent
# The CLI's own errors live with the CLI (it is being split into a package elsewhere).
EXCLUDED = ("fastfeed.cli",)
#: framework plugins import their framework (an extra the main venv does not have): their
#: modules are checked where it is installed (the plugin's own CI job)
NEEDS = {"fastfeed.plugins.nautilus": "nautilus_trader"}


def _modules() -> list[str]:
    names = ["fastfeed"]
    for info in pkgutil.walk_packages([str(PKG)], "fastfeed."):
        if any(info.name == x or info.name.startswith(x + ".") for x in EXCLUDED):
            continue
        if any(
            (info.name == p or info.name.startswith(p + ".")) and importlib.util.find_spec(dep) is None
            for p, dep in NEEDS.items()
        ):
            continue
        names.append(info.name)
    return names


def _is_exception_name(name: str) -> bool:
    obj = getattr(builtins, name, None)
    return (isinstance(obj, type) and issubclass(obj, BaseException)) or name in errors.__all__


def _source_files() -> list[Path]:
    out = []
    for p in sorted(PKG.rglob("*")):
        if p.suffix not in (".py", ".pyx") or p.name == "errors.py":
            continue
        rel = p.relative_to(PKG.parent).with_suffix("").as_posix().replace("/", ".")
        if any(rel == x or rel.startswith(x + ".") for x in EXCLUDED):
            continue
        out.append(p)
    return out


def test_no_exception_class_is_defined_outside_errors_py() -> None:
    """Static: no class statement outside errors.py (nested ones included, .pyx too)
    derives from an exception."""
    found = []
    for path in _source_files():
        text = path.read_text()
        if path.suffix == ".py":
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ClassDef):
                    bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
                    if any(_is_exception_name(b) for b in bases):
                        found.append(f"{path.name}: class {node.name}({', '.join(bases)})")
        else:
            for m in re.finditer(r"^\s*(?:cdef\s+)?class\s+(\w+)\s*\(([^)]*)\)", text, re.M):
                bases = [b.strip().split(".")[-1] for b in m.group(2).split(",")]
                if any(_is_exception_name(b) for b in bases):
                    found.append(f"{path.name}: class {m.group(1)}({m.group(2)})")
    assert found == []


def test_every_exception_class_in_the_package_is_in_the_tree() -> None:
    """Dynamic: every exception class reachable from a fastfeed module's namespace is an
    errors.py class (a re-export of it) and a FastfeedError."""
    bad = []
    for name in _modules():
        mod = importlib.import_module(name)
        for attr, obj in vars(mod).items():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseException)
                and obj.__module__.startswith("fastfeed")
            ):
                if obj.__module__ != "fastfeed.errors" or not issubclass(obj, FastfeedError):
                    bad.append(f"{name}.{attr}")
                elif getattr(errors, obj.__name__, None) is not obj:
                    bad.append(f"{name}.{attr} (not exported by errors.py)")
    assert bad == []


def _documented_tree() -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """name -> (parent in the tree, builtins it also is) from errors.py's docstring."""
    doc = errors.__doc__ or ""
    block = doc.split("The tree", 1)[1].split("::", 1)[1]
    out: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        m = re.fullmatch(r"( *)(\w+)(?: \(([\w, ]+)\))?", line)
        assert m, f"unreadable tree line {line!r}"
        indent, name = len(m.group(1)), m.group(2)
        extra = tuple(x.strip() for x in m.group(3).split(",")) if m.group(3) else ()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        out[name] = (stack[-1][1] if stack else None, extra)
        stack.append((indent, name))
    return out


def test_errors_py_documents_the_tree() -> None:
    tree = _documented_tree()
    classes = {n: c for n, c in vars(errors).items() if isinstance(c, type) and issubclass(c, FastfeedError)}
    assert set(tree) == set(classes), "every error class is in the docstring's tree, and only those"
    assert set(classes) <= set(errors.__all__)
    for name, cls in classes.items():
        parent, extra = tree[name]
        ours = [b for b in cls.__bases__ if issubclass(b, FastfeedError)]
        others = [b.__name__ for b in cls.__bases__ if not issubclass(b, FastfeedError)]
        if cls is FastfeedError:
            assert parent is None
            continue
        assert [b.__name__ for b in ours] == [parent], name
        assert tuple(others) == extra, name
        assert cls.__doc__, f"{name} has no docstring"


def test_old_import_paths_still_work() -> None:
    from fastfeed.capture import CaptureError
    from fastfeed.exchange import DecodeError
    from fastfeed.exchange.simple_client import DecodeError as D2
    from fastfeed.protocol import AuthError, BadReply, ConnectionLost, RequestError, RequestTimeout

    assert CaptureError is errors.CaptureError
    assert DecodeError is D2 is errors.DecodeError
    assert (AuthError, BadReply, ConnectionLost, RequestError, RequestTimeout) == (
        errors.AuthError,
        errors.BadReply,
        errors.ConnectionLost,
        errors.RequestError,
        errors.RequestTimeout,
    )
    exported = [n for n in fastfeed.__all__ if n in errors.__all__]
    assert "FastfeedError" in exported
    for name in exported:
        assert getattr(fastfeed, name) is getattr(errors, name)


# -- the raise sites converted to typed errors --------------------------------------------------


def _capture(tmp_path: Path) -> Path:
    from fastfeed.capture import FRAME_TEXT, CaptureWriter

    path = tmp_path / "one.ffcap"
    with CaptureWriter(path, "ws://x/") as w:
        w.write(b'{"id":1,"result":"pong","error":null}', 1, FRAME_TEXT)
    return path


def test_capture_reader_closed_and_range_are_typed(tmp_path: Path) -> None:
    from fastfeed.capture import CaptureReader

    r = CaptureReader(_capture(tmp_path))
    with pytest.raises(errors.CaptureRangeError) as info:
        r.payload(r.size - 2, 10)
    assert isinstance(info.value, ValueError) and info.value.reason == "range"
    r.close()
    with pytest.raises(errors.CaptureClosed) as closed:
        r.payload(r.data_start, 1)
    assert isinstance(closed.value, ValueError) and isinstance(closed.value, errors.CaptureError)
    with pytest.raises(errors.CaptureClosed):
        list(r)


def test_capture_writer_refusals_are_typed(tmp_path: Path) -> None:
    from fastfeed.capture import MAX_PAYLOAD, CaptureWriter

    with CaptureWriter(tmp_path / "w.ffcap", "ws://x/") as w:
        with pytest.raises(errors.CaptureRefused) as big:
            w.write(memoryview(bytearray(MAX_PAYLOAD + 1)), 1)
        assert big.value.reason == "too_large" and isinstance(big.value, ValueError)
        with pytest.raises(errors.CaptureRefused) as kind:
            w.write(b"{}", 1, 9)
        assert kind.value.reason == "bad_frame_type"
    with pytest.raises(errors.CaptureRefused) as meta:
        CaptureWriter(tmp_path / "m.ffcap", "ws://x/", meta={"k": "x" * (1 << 20)})
    assert meta.value.reason == "bad_meta" and isinstance(meta.value, ValueError)


def test_exchange_book_without_market_is_typed(tmp_path: Path) -> None:
    from fastfeed.exchange import Exchange, ExchangeConfig

    ex = Exchange(ExchangeConfig(capture=str(_capture(tmp_path))))
    with pytest.raises(errors.NoMarket) as info:
        ex.book("BTC_USDT")
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, errors.ExchangeError)


def test_exchange_decoder_errors_are_typed() -> None:
    from fastfeed.exchange import decode_payload

    for payload, reason in ((b"", "empty"), (b"\x78\x9c\x01", "zlib_truncated"), (b"{nope", "bad_json")):
        with pytest.raises(errors.DecodeError) as info:
            decode_payload(payload)
        assert info.value.reason == reason and isinstance(info.value, FastfeedError)


def test_simple_client_disconnected_is_connection_lost() -> None:
    from fastfeed.exchange import SimpleClient

    async def main() -> None:
        c = SimpleClient()
        c.disconnected.set()
        with pytest.raises(errors.ConnectionLost) as info:
            await c.request("server.ping")
        assert isinstance(info.value, ConnectionError)
        with pytest.raises(errors.ConnectionLost):
            await c.wait_for(lambda: False)

    asyncio.run(main())


def test_export_ring_overflow_is_typed() -> None:
    from fastfeed.export import capture_events

    depth = (
        '{"method":"depth.update","params":[true,{"asks":[%s],"bids":[]},"BTC_USDT"],"id":null}'
        % ",".join(f'["{100 + i}","1"]' for i in range(20))
    ).encode()
    with pytest.raises(errors.ExportOverflow) as info:
        capture_events([(1, depth)], ring=4)
    assert isinstance(info.value, ValueError) and "ring" in str(info.value)


def test_nonstandard_json_constants_are_bad_json(engine_cls: Any) -> None:
    """The reference raised a private ValueError subclass inside its decoder; now the same
    ParseError as the compiled engine, whatever the literal."""
    for lit in (b"NaN", b"Infinity", b"-Infinity"):
        with pytest.raises(errors.ParseError) as info:
            engine_cls().feed(b'{"method":"x","params":[' + lit + b"]}")
        assert info.value.reason == "bad_json"


def test_shm_unknown_symbol_and_os_errors_are_typed() -> None:
    import os
    import uuid

    from fastfeed import Engine, attach
    from fastfeed._shm import unlink_segment
    from fastfeed.errors import ShmError, ShmOSError, UnknownSymbol

    name = f"test-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    try:
        with Engine(depth=4, trade_capacity=16, shm_name=name), attach(name) as reader:
            with pytest.raises(UnknownSymbol) as exc:
                reader.book("NOPE_USDT")
            assert isinstance(exc.value, KeyError)
            with pytest.raises(UnknownSymbol):
                reader.symbol_index("NOPE_USDT")
    finally:
        unlink_segment(name)
    err = ShmOSError(13, "shm_open('x'): Permission denied")
    assert isinstance(err, ShmError) and isinstance(err, OSError)
    assert (err.errno, err.strerror, err.reason) == (13, "shm_open('x'): Permission denied", "os_error")


def test_ticker_errors_are_typed() -> None:
    from fastfeed import Engine
    from fastfeed.client import TickerMap
    from fastfeed.errors import TickersOverwritten, UnknownSymbol

    eng = Engine(ticker_capacity=2)
    for i in range(4):
        eng.feed('{"method":"ticker.update","params":[{"symbol":"btc_usdt","last":"%d"}]}' % (i + 1))
    with pytest.raises(TickersOverwritten) as exc:
        eng.ticker_history.since(0)
    assert isinstance(exc.value, IndexError)
    latest = TickerMap(eng)
    assert latest["BTC_USDT"].last == 4.0
    for bad in ("not a symbol", 7):
        with pytest.raises(UnknownSymbol):
            latest[bad]  # type: ignore[index]
