from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from picows import WSFrame, WSListener, WSTransport

from ._engine import Engine
from .errors import FastfeedError

def now_ns() -> int: ...

class FeedListener(WSListener):
    frames: int
    bad_frames: int
    callback_errors: int
    last_recv_ns: int
    timed_frames: int
    on_tickers: Callable[[int, int], None] | None
    ticker_streams: list[Any] | None
    ticker_callback: bool
    close_code: int | None
    close_reason: str
    on_raw: Callable[[bytes, int, int], None] | None
    on_frame: Callable[[Any, int], None] | None
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
