"""Mutable state of the exchange: subaccounts with per-asset collateral and positions, and markets
with their book, oracle price and open interest. Written only by `Exchange` commits."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from perpdex.core.book import OrderBook
from perpdex.core.margin import initial_margin_ppm_at
from perpdex.core.orders import Order
from perpdex.core.params import MarketParams
from perpdex.core.units import USDC_ASSET_ID


class SubaccountId(NamedTuple):
    """dYdX v4 SubaccountId: an owner address and a subaccount number (0..127 in dYdX)."""

    owner: str
    number: int = 0

    def __str__(self) -> str:
        return f"{self.owner}/{self.number}"


class MarginMode(str, Enum):
    CROSS = "cross"  # every position shares the subaccount's collateral
    ISOLATED = "isolated"  # one market only; its collateral backs that position alone


class Subaccount:
    """Collateral per asset (quantums; USDC is asset 0 and may be negative while positions
    back it) and perpetual positions (signed base quantums, long > 0; zero is never stored).

    Handlers work on copies (`copy`) and `Exchange` swaps the copy in on commit, so a rejected
    transaction never touches the stored object.
    """

    __slots__ = ("subaccount_id", "margin_mode", "isolated_market_id", "collateral", "positions")

    def __init__(self, subaccount_id: SubaccountId, margin_mode: MarginMode = MarginMode.CROSS,
                 isolated_market_id: str | None = None, collateral: dict[int, int] | None = None,
                 positions: dict[str, int] | None = None) -> None:
        self.subaccount_id = subaccount_id
        self.margin_mode = margin_mode
        self.isolated_market_id = isolated_market_id
        self.collateral: dict[int, int] = collateral if collateral is not None else {}
        self.positions: dict[str, int] = positions if positions is not None else {}

    def copy(self) -> Subaccount:
        return Subaccount(self.subaccount_id, self.margin_mode, self.isolated_market_id,
                          dict(self.collateral), dict(self.positions))

    @property
    def usdc_quote_quantums(self) -> int:
        return self.collateral.get(USDC_ASSET_ID, 0)

    def add_usdc(self, delta_quote_quantums: int) -> None:
        balance = self.collateral.get(USDC_ASSET_ID, 0) + delta_quote_quantums
        if balance:
            self.collateral[USDC_ASSET_ID] = balance
        else:
            self.collateral.pop(USDC_ASSET_ID, None)

    def set_position(self, market_id: str, size_base_quantums: int) -> None:
        if size_base_quantums:
            self.positions[market_id] = size_base_quantums
        else:
            self.positions.pop(market_id, None)

    def __repr__(self) -> str:
        mode = self.margin_mode.value + (f":{self.isolated_market_id}" if self.isolated_market_id else "")
        return f"Subaccount({self.subaccount_id} {mode} collateral={self.collateral} positions={self.positions})"


class MarketState:
    """One market's live state. `untriggered` holds conditional orders waiting for the oracle."""

    __slots__ = ("params", "book", "oracle_price_subticks", "oracle_ts_ms", "open_interest_base_quantums",
                 "quantum_conversion_divisor", "initial_margin_ppm", "untriggered")

    def __init__(self, params: MarketParams) -> None:
        if params.quantum_conversion_exponent > 0:
            raise ValueError("perpdex markets need quantum_conversion_exponent <= 0")
        self.params = params
        self.book = OrderBook(params.market_id)
        self.oracle_price_subticks: int | None = None
        self.oracle_ts_ms: int | None = None
        self.open_interest_base_quantums = 0  # total long size = total short size
        self.quantum_conversion_divisor = 10 ** -params.quantum_conversion_exponent
        self.initial_margin_ppm = params.liquidity_tier.initial_margin_ppm  # at the current OI: see refresh
        self.untriggered: dict[int, Order] = {}

    def refresh_initial_margin(self) -> None:
        """Recompute the OI-scaled initial fraction after the price or open interest changed."""
        if self.oracle_price_subticks is not None:
            self.initial_margin_ppm = initial_margin_ppm_at(self.params.liquidity_tier, self.open_interest_base_quantums,
                                                            self.oracle_price_subticks, self.quantum_conversion_divisor)

    def oracle_is_fresh(self, ts_ms: int) -> bool:
        return self.oracle_ts_ms is not None and ts_ms - self.oracle_ts_ms <= self.params.oracle_staleness_ms
