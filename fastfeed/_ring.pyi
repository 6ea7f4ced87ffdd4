from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from typing_extensions import Self, disjoint_base

from .errors import TradesOverwritten

__all__ = ["MirrorRing", "TradeRing", "TradesOverwritten", "trades_frame"]

def trades_frame(view: npt.NDArray[np.void], symbols: Sequence[str]) -> pd.DataFrame: ...

@disjoint_base
class MirrorRing:
    @property
    def capacity(self) -> int: ...
    @property
    def count(self) -> int: ...
    def __len__(self) -> int: ...
    def latest(self, n: int = -1) -> npt.NDArray[np.void]: ...
    def since(self, seq: int) -> npt.NDArray[np.void]: ...
    @property
    def shared(self) -> bool: ...

@disjoint_base
class TradeRing(MirrorRing):
    symbols: list[str]
    def __new__(cls, capacity: int = 65536, symbols: list[str] | None = None) -> Self: ...
    def to_pandas(self, n: int = -1) -> pd.DataFrame: ...
