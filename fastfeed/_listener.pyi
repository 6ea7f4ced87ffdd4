from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from picows import WSFrame, WSListener, WSTransport
from typing_extensions import disjoint_base

from ._engine import Engine
from .errors import FastfeedError

__all__ = ["FeedListener", "now_ns"]

def now_ns() -> int: ...

@disjoint_base
class FeedListener(WSListener):
    @property
    def frames(self) -> int: ...
    @property
    def bad_frames(self) -> int: ...
    @property
    def callback_errors(self) -> int: ...
    @property
    def last_recv_ns(self) -> int: ...
    @property
    def timed_frames(self) -> int: ...
    on_tickers: Callable[[int, int], None] | None
    ticker_streams: list[Any] | None
    ticker_callback: bool
    on_raw: Callable[[bytes, int, int], None] | None
    on_frame: Callable[[Any, int], None] | None
    @property
    def close_code(self) -> int | None: ...
    @property
    def close_reason(self) -> str: ...
    def __init__(
        self,
        engine: Engine,
        on_message: Callable[[Any, int], None],
        on_frame_error: Callable[[FastfeedError], None],
        on_disconnected: Callable[[int | None, str], None] | None = None,
        on_raw: Callable[[bytes, int, int], None] | None = None,
        on_frame: Callable[[Any, int], None] | None = None,
    ) -> None: ...
    def enable_timing(self, capacity: int = 65536) -> None: ...
    def timings(self) -> npt.NDArray[np.int64]: ...
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None: ...
    def on_ws_disconnected(self, transport: WSTransport) -> None: ...
