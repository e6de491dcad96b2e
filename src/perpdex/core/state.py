"""Mutable state of the exchange: subaccounts with per-asset collateral and positions, and markets
with their book, oracle price and open interest. Written only by `Exchange` commits."""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import NamedTuple

from perpdex.core.book import OrderBook
from perpdex.core.funding import make_funding_model, observation_interval_ms
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

    __slots__ = ("subaccount_id", "margin_mode", "isolated_market_id", "collateral", "positions", "funding_entries",
                 "funding_epoch")

    def __init__(self, subaccount_id: SubaccountId, margin_mode: MarginMode = MarginMode.CROSS,
                 isolated_market_id: str | None = None, collateral: dict[int, int] | None = None,
                 positions: dict[str, int] | None = None, funding_entries: dict[str, int] | None = None) -> None:
        self.subaccount_id = subaccount_id
        self.margin_mode = margin_mode
        self.isolated_market_id = isolated_market_id
        self.collateral: dict[int, int] = collateral if collateral is not None else {}
        self.positions: dict[str, int] = positions if positions is not None else {}
        # the market's funding index when each position last settled (dYdX PerpetualPosition.FundingIndex)
        self.funding_entries: dict[str, int] = funding_entries if funding_entries is not None else {}
        # derived, not state: Exchange.funding_epoch when this version was committed (every committed
        # version was settled first), so `settled` can skip the per-position check until an index moves
        self.funding_epoch = -1

    def copy(self) -> Subaccount:
        return Subaccount(self.subaccount_id, self.margin_mode, self.isolated_market_id,
                          dict(self.collateral), dict(self.positions), dict(self.funding_entries))

    @property
    def usdc_quote_quantums(self) -> int:
        return self.collateral.get(USDC_ASSET_ID, 0)

    def add_usdc(self, delta_quote_quantums: int) -> None:
        balance = self.collateral.get(USDC_ASSET_ID, 0) + delta_quote_quantums
        if balance:
            self.collateral[USDC_ASSET_ID] = balance
        else:
            self.collateral.pop(USDC_ASSET_ID, None)

    def set_position(self, market_id: str, size_base_quantums: int, funding_index: int) -> None:
        """Set a position of a subaccount already settled for funding (`handlers.common.settled`):
        its entry index becomes the market's current one, so nothing accrued is lost or doubled."""
        if size_base_quantums:
            self.positions[market_id] = size_base_quantums
            self.funding_entries[market_id] = funding_index
        else:
            self.positions.pop(market_id, None)
            self.funding_entries.pop(market_id, None)

    def __repr__(self) -> str:
        mode = self.margin_mode.value + (f":{self.isolated_market_id}" if self.isolated_market_id else "")
        return f"Subaccount({self.subaccount_id} {mode} collateral={self.collateral} positions={self.positions})"


class MarketState:
    """One market's live state. `untriggered` holds conditional orders waiting for the oracle."""

    __slots__ = ("params", "book", "oracle_price_subticks", "oracle_ts_ms", "open_interest_base_quantums",
                 "quantum_conversion_divisor", "initial_margin_ppm", "untriggered", "funding_model",
                 "funding_state", "funding_index", "funding_observation_ms", "next_funding_observation_ms",
                 "funding_interval_start_ms", "funding_observations")

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
        self.funding_model = make_funding_model(params.funding_model, params.funding_overrides,
                                                params.liquidity_tier)
        self.funding_state = None  # the model's state, from the first funding observation on
        self.funding_index = 0  # cumulative funding per base quantum of long, ppm of a quote quantum
        self.funding_observation_ms = observation_interval_ms(self.funding_model)
        self.next_funding_observation_ms = 0
        self.funding_interval_start_ms = 0
        # (ts, premium ppm, long OI, short OI) observed but not yet fed to a lagged model (funding_lag_ms > 0)
        self.funding_observations: deque[tuple[int, int, int, int]] = deque()

    def refresh_initial_margin(self) -> None:
        """Recompute the OI-scaled initial fraction after the price or open interest changed."""
        if self.oracle_price_subticks is not None:
            self.initial_margin_ppm = initial_margin_ppm_at(self.params.liquidity_tier, self.open_interest_base_quantums,
                                                            self.oracle_price_subticks, self.quantum_conversion_divisor)

    def oracle_is_fresh(self, ts_ms: int) -> bool:
        return self.oracle_ts_ms is not None and ts_ms - self.oracle_ts_ms <= self.params.oracle_staleness_ms
