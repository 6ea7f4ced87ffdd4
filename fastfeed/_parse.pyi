METHOD_NAMES: tuple[str, ...]

class Parser:
    """Reusable message parser (C-level API only; see docs/engine-semantics.md)."""

def parse_decimal_py(s: str | bytes) -> float: ...
def validate_json_py(data: bytes | bytearray | memoryview) -> str: ...
