"""Mutable state of the exchange: subaccounts with per-asset collateral and positions, and markets
with their book, oracle price and open interest. Written only by `Exchange` commits."""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Any, NamedTuple

from perpdex.core.book import OrderBook
from perpdex.core.errors import MissingOraclePriceError
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


_new_object = object.__new__


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
                 "cost_basis", "funding_epoch")

    def __init__(self, subaccount_id: SubaccountId, margin_mode: MarginMode = MarginMode.CROSS,
                 isolated_market_id: str | None = None, collateral: dict[int, int] | None = None,
                 positions: dict[str, int] | None = None, funding_entries: dict[str, int] | None = None,
                 cost_basis: dict[str, int] | None = None) -> None:
        self.subaccount_id = subaccount_id
        self.margin_mode = margin_mode
        self.isolated_market_id = isolated_market_id
        self.collateral: dict[int, int] = collateral if collateral is not None else {}
        self.positions: dict[str, int] = positions if positions is not None else {}
        # the market's funding index when each position last settled (dYdX PerpetualPosition.FundingIndex)
        self.funding_entries: dict[str, int] = funding_entries if funding_entries is not None else {}
        # what each open position cost, signed like it (quote quantums, average cost; see `trade`): entry
        # price and unrealized PnL come from it (Hyperliquid ranks auto-deleveraging by them)
        self.cost_basis: dict[str, int] = cost_basis if cost_basis is not None else {}
        # derived, not state: Exchange.funding_epoch when this version was committed (every committed
        # version was settled first), so `settled` can skip the per-position check until an index moves
        self.funding_epoch = -1

    def copy(self) -> Subaccount:
        # slot by slot, without `__init__`'s defaults (handlers copy once per order and per maker)
        copy = _new_object(Subaccount)
        copy.subaccount_id = self.subaccount_id
        copy.margin_mode = self.margin_mode
        copy.isolated_market_id = self.isolated_market_id
        copy.collateral = self.collateral.copy()
        copy.positions = self.positions.copy()
        copy.funding_entries = self.funding_entries.copy()
        copy.cost_basis = self.cost_basis.copy()
        copy.funding_epoch = -1  # not committed yet, as a new Subaccount
        return copy

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
            self.cost_basis.pop(market_id, None)

    def trade(self, market_id: str, delta_base_quantums: int, quote_quantums: int, funding_index: int) -> None:
        """Change a position by a trade of `delta_base_quantums` worth `quote_quantums` (>= 0, the value exchanged,
        fees apart) and keep its average cost: adding adds the trade's value, reducing keeps the cost per unit
        (scaled, truncated toward zero: under one quantum, and no money moves by it), flipping starts the new side
        at the trade's price. Moves no collateral (the caller does); settled first, as `set_position`.
        (Inlined: liquidations call it for every fill and offset.)"""
        positions = self.positions
        size = positions.get(market_id, 0)
        new = size + delta_base_quantums
        basis = self.cost_basis
        if not new:
            positions.pop(market_id, None)
            self.funding_entries.pop(market_id, None)
            basis.pop(market_id, None)
            return
        positions[market_id] = new
        self.funding_entries[market_id] = funding_index
        buying = delta_base_quantums > 0
        if size == 0 or (size > 0) == buying:  # opened or added: the trade's value joins the cost
            basis[market_id] = basis.get(market_id, 0) + (quote_quantums if buying else -quote_quantums)
        elif (new > 0) == (size > 0):  # reduced: the same cost per unit; basis x new >= 0, truncated
            scaled = basis[market_id] * new
            basis[market_id] = scaled // size if size > 0 else -(scaled // -size)
        else:  # flipped: the part of the trade past zero, at its price; value x new >= 0, truncated
            scaled = (quote_quantums if buying else -quote_quantums) * new
            basis[market_id] = scaled // delta_base_quantums if buying else -(scaled // -delta_base_quantums)

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
        self.funding_state: Any = None  # the model's state, from the first funding observation on
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

    def require_oracle_price(self) -> int:
        """The oracle price (subticks); raises MissingOraclePriceError before the market's first one."""
        price = self.oracle_price_subticks
        if price is None:
            market_id = self.params.market_id
            raise MissingOraclePriceError(f"no oracle price for {market_id} yet", field="market_id", value=market_id)
        return price

    def oracle_is_fresh(self, ts_ms: int) -> bool:
        return self.oracle_ts_ms is not None and ts_ms - self.oracle_ts_ms <= self.params.oracle_staleness_ms
