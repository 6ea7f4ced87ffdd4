from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

from ._engine import Engine
from ._events import EventRing

__all__ = ["FrameChange", "FrameHook"]

@disjoint_base
class FrameChange:
    frame: int
    recv_ns: int
    kind: str
    symbol: str | None
    symbols: tuple[str, ...]
    seq: int
    end: int
    def __init__(
        self,
        frame: int,
        recv_ns: int,
        kind: str,
        symbol: str | None,
        symbols: tuple[str, ...],
        seq: int,
        end: int,
        ring: EventRing | None,
    ) -> None: ...
    @property
    def n_rows(self) -> int: ...
    def rows(self) -> npt.NDArray[np.void]: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

@disjoint_base
class FrameHook:
    fns: list[Callable[[FrameChange], Any]]
    ev_seen: int
    tk_seen: int
    @property
    def streams(self) -> list[Any]: ...
    def __init__(
        self,
        engine: Engine,
        kind_names: dict[int, str],
        push_symbols: Callable[[Any], tuple[str, ...]],
        streams: list[Any],
        callback_failed: Callable[[str, BaseException], None],
        returned: Callable[[str, Any], None],
        update_hooks: Callable[[], None],
    ) -> None: ...
    def start(self) -> None: ...
    def __call__(self, msg: Any, recv_ns: int) -> None: ...
    def emit(
        self, frame: int, recv_ns: int, kind: str, symbol: str | None, symbols: tuple[str, ...]
    ) -> None: ...
