import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["Book", "book_frame"]

def book_frame(
    bids: npt.ArrayLike,
    asks: npt.ArrayLike,
    symbol: str | None = None,
    version: int | None = None,
    recv_ns: int | None = None,
    live: bool | None = None,
    stale_since: int | None = None,
) -> pd.DataFrame: ...

class Book:
    symbol: str
    depth: int
    n_bids: int
    n_asks: int
    version: int
    recv_ns: int
    live: bool
    stale_since: int
    drift_checks: int
    drifts: int
    last_drift: int
    def __init__(self, symbol: str, depth: int = 200) -> None: ...
    @property
    def bids(self) -> npt.NDArray[np.float64]: ...
    @property
    def asks(self) -> npt.NDArray[np.float64]: ...
    @property
    def best_bid(self) -> float: ...
    @property
    def best_ask(self) -> float: ...
    @property
    def shared(self) -> bool: ...
    def snapshot(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def to_pandas(self) -> pd.DataFrame: ...
    def __len__(self) -> int: ...
