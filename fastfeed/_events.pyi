from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from typing_extensions import Self, disjoint_base

from ._ring import MirrorRing
from .errors import EventsOverwritten as EventsOverwritten

__all__ = ["EventRing", "EventsOverwritten"]

@disjoint_base
class EventRing(MirrorRing):
    @property
    def frame(self) -> int: ...
    def __new__(cls, capacity: int = 65536) -> Self: ...
    def to_pandas(self, n: int = -1, symbols: Sequence[str] | None = None) -> pd.DataFrame: ...
