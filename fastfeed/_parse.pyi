from typing_extensions import final

__all__ = [
    "FAST_PATH_AVAILABLE",
    "METHOD_NAMES",
    "Parser",
    "parse_batch_py",
    "parse_decimal_py",
    "parse_py",
    "parse_tickers_py",
    "set_fast_path",
    "validate_json_py",
]

METHOD_NAMES: tuple[str, ...]
FAST_PATH_AVAILABLE: bool

@final
class Parser:
    """Reusable message parser (C-level API only; see docs/engine-semantics.md)."""

def parse_decimal_py(s: str | bytes) -> float: ...
def validate_json_py(data: bytes | bytearray | memoryview) -> str: ...
def set_fast_path(enabled: bool) -> bool: ...
def parse_py(
    data: str | bytes | bytearray | memoryview,
    path: str = "auto",
    parser: Parser | None = None,
) -> (
    tuple[
        str,
        bool | None,
        str | None,
        list[tuple[float, float]],
        list[tuple[float, float]],
        list[tuple[int, float, float, float, int]],
        int,
    ]
    | None
): ...
def parse_tickers_py(
    data: str | bytes | bytearray | memoryview,
    path: str = "auto",
    parser: Parser | None = None,
) -> tuple[str, list[tuple[str, tuple[float, ...], int]], int, int, int, bool] | None: ...
def parse_batch_py(payloads: list[bytes], path: str = "auto", parser: Parser | None = None) -> int: ...
