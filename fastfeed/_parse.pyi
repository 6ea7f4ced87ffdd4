from typing_extensions import final

__all__ = ["METHOD_NAMES", "Parser", "parse_decimal_py", "validate_json_py"]

METHOD_NAMES: tuple[str, ...]

@final
class Parser:
    """Reusable message parser (C-level API only; see docs/engine-semantics.md)."""

def parse_decimal_py(s: str | bytes) -> float: ...
def validate_json_py(data: bytes | bytearray | memoryview) -> str: ...
