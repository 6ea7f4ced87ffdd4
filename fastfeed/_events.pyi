from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import EventsOverwritten as EventsOverwritten

__all__ = ["EventRing", "EventsOverwritten"]


class EventRing:
    capacity: int
    count: int
    frame: int
    def __init__(self, capacity: int = 65536) -> None: ...
    def __len__(self) -> int: ...
    def latest(self, n: int = -1) -> np.ndarray: ...
    def since(self, seq: int) -> np.ndarray: ...
    def to_pandas(self, n: int = -1, symbols: Sequence[str] | None = None) -> pd.DataFrame: ...
