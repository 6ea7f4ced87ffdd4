"""Instruments: DigiFinex spot pairs as nautilus ``CurrencyPair`` with the venue's precisions.

nautilus rounds every ``Price`` / ``Quantity`` to its instrument's precision without a word,
so the precisions must be the venue's. They come from a static list (no REST call at start,
works offline): :data:`STATIC_PRECISIONS`, the bundled exchange's markets
(:class:`fastfeed.exchange.config.SymbolSpec`), plus ``DigiFinexDataClientConfig.instruments``
for any other pair or to correct one. The data client checks every value against them
anyway: a value with more decimals is a counted rejection, never rounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.model.currencies import Currency
from nautilus_trader.model.identifiers import InstrumentId, Symbol
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import FIXED_PRECISION, Price, Quantity

from ...exchange.config import DEFAULT_SYMBOLS, SymbolSpec
from ...protocol import validate_symbols
from .config import DIGIFINEX_VENUE

__all__ = [
    "STATIC_PRECISIONS",
    "DigiFinexInstrumentProvider",
    "check_precisions",
    "instrument_id",
    "make_instrument",
]

#: ``{symbol: (price_precision, size_precision)}``: the markets of the bundled exchange.
STATIC_PRECISIONS: dict[str, tuple[int, int]] = {
    s: (spec.price_decimals, spec.amount_decimals)
    for s in DEFAULT_SYMBOLS
    for spec in [SymbolSpec.for_symbol(s)]
}


def instrument_id(symbol: str) -> InstrumentId:
    """``BTC_USDT`` -> ``InstrumentId("BTC_USDT.DIGIFINEX")``."""
    return InstrumentId(Symbol(symbol.upper()), DIGIFINEX_VENUE)


def _pair_name(symbol: str) -> tuple[str, str, str]:
    """``btc_usdt`` -> ``("BTC_USDT", "BTC", "USDT")``; ``ValueError`` naming the venue's
    spelling for ``BTC-USDT``, ``BTC/USDT``, ``BTCUSDT``..."""
    name = validate_symbols([symbol])[0]
    base, sep, quote = name.partition("_")
    if not sep or not base or not quote:
        hint = ""
        for other in ("-", "/"):
            b, found, q = name.partition(other)
            if found and b and q:
                hint = f" (DigiFinex spells it {b}_{q})"
        raise ValueError(f"not a DigiFinex spot symbol BASE_QUOTE: {symbol!r}{hint}")
    return name, base, quote


def check_precisions(precisions: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """``{symbol: (price_precision, size_precision)}`` checked and normalised (symbols
    upper-cased): ``ValueError`` for a symbol not of the form ``BASE_QUOTE`` or a pair that
    is not two ints in 0..FIXED_PRECISION; ``TypeError`` if ``precisions`` is not a mapping."""
    if not isinstance(precisions, Mapping):
        raise TypeError(
            f"instruments must be a dict {{symbol: (price_precision, size_precision)}}, "
            f"not {type(precisions).__name__}"
        )
    out: dict[str, tuple[int, int]] = {}
    for sym, pair in precisions.items():
        name = _pair_name(sym)[0]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{name}: precisions are (price_precision, size_precision), not {pair!r}")
        for what, p in zip(("price", "size"), pair):
            if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p <= FIXED_PRECISION:
                raise ValueError(
                    f"{name}: {what} precision must be an int in 0..{FIXED_PRECISION}, not {p!r}"
                )
        out[name] = (pair[0], pair[1])
    return out


def make_instrument(symbol: str, price_precision: int, size_precision: int, ts: int = 0) -> CurrencyPair:
    """The ``CurrencyPair`` of DigiFinex spot ``symbol`` (``BASE_QUOTE``) with these
    precisions (0..FIXED_PRECISION each; ``ValueError`` otherwise)."""
    name, base, quote = _pair_name(symbol)
    check_precisions({name: (price_precision, size_precision)})
    return CurrencyPair(
        instrument_id=instrument_id(name),
        raw_symbol=Symbol(name),
        base_currency=Currency.from_str(base, strict=False),
        quote_currency=Currency.from_str(quote, strict=False),
        price_precision=price_precision,
        size_precision=size_precision,
        price_increment=Price(Decimal(1).scaleb(-price_precision), price_precision),
        size_increment=Quantity(Decimal(1).scaleb(-size_precision), size_precision),
        ts_event=ts,
        ts_init=ts,
    )


class DigiFinexInstrumentProvider(InstrumentProvider):
    """Every pair of :data:`STATIC_PRECISIONS` plus ``precisions`` (which override it),
    loaded at construction (static: ``load_all_async`` / ``initialize`` only re-add them,
    with ``filters`` ``{"symbols": [...]}`` keeping those)."""

    def __init__(
        self,
        precisions: Mapping[str, tuple[int, int]] | None = None,
        config: InstrumentProviderConfig | None = None,
    ) -> None:
        super().__init__(config=config or InstrumentProviderConfig(load_all=True))
        table = dict(STATIC_PRECISIONS)
        table.update(check_precisions(precisions or {}))
        self.precisions = table
        self._all = {name: make_instrument(name, pp, sp) for name, (pp, sp) in table.items()}
        self._add_all(None)

    def _add_all(self, filters: dict[str, Any] | None) -> None:
        wanted = None if not filters or "symbols" not in filters else {s.upper() for s in filters["symbols"]}
        for name, inst in self._all.items():
            if wanted is None or name in wanted:
                self.add_currency(inst.base_currency)
                self.add_currency(inst.quote_currency)
                self.add(inst)

    async def load_all_async(self, filters: dict[str, Any] | None = None) -> None:
        self._add_all(filters)

    def for_symbol(self, symbol: str) -> CurrencyPair | None:
        """The instrument of venue symbol ``symbol`` (``BTC_USDT``), or None."""
        return self._all.get(symbol.upper())
