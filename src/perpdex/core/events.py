"""Events: what each applied transaction did, with the numbers that justified it.
Immutable records (NamedTuple: as immutable as frozen dataclasses, 4x cheaper to build); reports, the store and the API read them instead of recomputing."""

from __future__ import annotations

from typing import NamedTuple

from perpdex.core.orders import CancelReason, OrderStatus
from perpdex.core.state import MarginMode, SubaccountId


class Deposited(NamedTuple):
    ts_ms: int
    subaccount_id: SubaccountId
    asset_id: int
    amount_quantums: int


class Withdrawn(NamedTuple):
    ts_ms: int
    subaccount_id: SubaccountId
    asset_id: int
    amount_quantums: int
    free_collateral_after_quote_quantums: int


class Transferred(NamedTuple):
    ts_ms: int
    sender: SubaccountId
    recipient: SubaccountId
    asset_id: int
    amount_quantums: int


class MarginModeSet(NamedTuple):
    ts_ms: int
    subaccount_id: SubaccountId
    margin_mode: MarginMode
    isolated_market_id: str | None


class OrderAccepted(NamedTuple):
    """An order entered the exchange: `status` is OPEN (it may fill at once) or UNTRIGGERED."""

    ts_ms: int
    order_id: int
    subaccount_id: SubaccountId
    market_id: str
    is_buy: bool
    size_base_quantums: int
    price_subticks: int
    status: OrderStatus
    client_id: int | None


class Fill(NamedTuple):
    """One match at the maker's price. Fees are positive when paid, negative for a rebate."""

    ts_ms: int
    market_id: str
    price_subticks: int
    size_base_quantums: int
    quote_quantums: int
    taker_is_buy: bool
    taker_order_id: int
    taker_subaccount_id: SubaccountId
    taker_fee_quote_quantums: int
    maker_order_id: int
    maker_subaccount_id: SubaccountId
    maker_fee_quote_quantums: int


class OrderFinished(NamedTuple):
    """An order left the book or the trigger list: filled, canceled (with why) or expired."""

    ts_ms: int
    order_id: int
    subaccount_id: SubaccountId
    market_id: str
    status: OrderStatus
    filled_base_quantums: int
    remaining_base_quantums: int
    reason: CancelReason | None = None
    detail: str | None = None


class OrderRested(NamedTuple):
    """The unfilled part of an order now rests on the book."""

    ts_ms: int
    order_id: int
    market_id: str
    price_subticks: int
    remaining_base_quantums: int


class OrderTriggered(NamedTuple):
    ts_ms: int
    order_id: int
    market_id: str
    oracle_price_subticks: int
    trigger_price_subticks: int


class OraclePriceUpdated(NamedTuple):
    ts_ms: int
    market_id: str
    price_subticks: int
    source_count: int


class FundingRateComputed(NamedTuple):
    """One market's funding interval closed: the rate (ppm per 8 h), the premium it came from, how
    many samples, whether a clamp or cap bound it, and how far the funding index moved."""

    ts_ms: int
    market_id: str
    funding_model: str
    funding_rate_8h_ppm: int
    premium_ppm: int
    samples: int
    clamp_hit: bool
    interval_ms: int
    oracle_price_subticks: int
    funding_index_delta: int
    funding_index_after: int


class FundingPaid(NamedTuple):
    """A position settled its funding (lazily, when its subaccount was next touched). `paid` is what
    it paid in quote quantums (negative: received), dYdX's per-position figure; `settlement_ppm` is the
    exact amount it received in ppm of a quote quantum. The subaccount's USDC moves by the floor of
    the sum of its positions' settlements, so the figures can differ by under one quantum each."""

    ts_ms: int
    subaccount_id: SubaccountId
    market_id: str
    size_base_quantums: int
    funding_index_entry: int
    funding_index_now: int
    paid_quote_quantums: int
    settlement_ppm: int


class Liquidated(NamedTuple):
    """One liquidation fill: the liquidated subaccount sold (closing a long) or bought against a
    resting maker at `fill_price_subticks`, no worse than the fillable price. The insurance fund
    delta is what the subaccount paid the fund (negative: the fund covered a fill below bankruptcy)."""

    ts_ms: int
    subaccount_id: SubaccountId
    market_id: str
    size_base_quantums: int  # signed change of the liquidated position
    fill_price_subticks: int
    fillable_price_subticks: int
    bankruptcy_price_subticks: int
    net_collateral_before_quote_quantums: int
    maintenance_before_quote_quantums: int
    insurance_fund_delta_quote_quantums: int
    maker_subaccount_id: SubaccountId
    maker_order_id: int


class Deleveraged(NamedTuple):
    """A bankrupt position offset against an opposing one at the bankruptcy price (no book, no fund)."""

    ts_ms: int
    subaccount_id: SubaccountId
    offsetting_subaccount_id: SubaccountId
    market_id: str
    size_base_quantums: int  # signed change of the deleveraged position
    quote_quantums: int  # what the deleveraged subaccount received (the offsetting one paid it)
    # the deleveraged subaccount just before this offset, so a verifier can check from the event that
    # `quote_quantums` is the least amount keeping its change valid (rollup.validity.check_deleverage_fair)
    position_before_base_quantums: int = 0
    net_collateral_before_quote_quantums: int = 0
    initial_before_quote_quantums: int = 0
    maintenance_before_quote_quantums: int = 0
    initial_margin_ppm: int = 0  # the market's initial fraction at that moment (it follows open interest)


class InsuranceFundChanged(NamedTuple):
    ts_ms: int
    delta_quote_quantums: int
    balance_quote_quantums: int
    cause_subaccount_id: SubaccountId


class BackstopTakeover(NamedTuple):
    """Hyperliquid-style backstop: a vault took over a subaccount's positions and its remaining
    collateral (below 2/3 of maintenance); the owner keeps nothing of it."""

    ts_ms: int
    subaccount_id: SubaccountId
    vault_subaccount_id: SubaccountId
    positions: tuple[tuple[str, int], ...]
    collateral_quote_quantums: int
    net_collateral_quote_quantums: int
    maintenance_quote_quantums: int


class FundTakeover(NamedTuple):
    """Paradex-style: the insurance fund's account took `share_ppm` of every position of a
    liquidatable subaccount at the oracle price, for `penalty` (paid to the fund's account)."""

    ts_ms: int
    subaccount_id: SubaccountId
    fund_subaccount_id: SubaccountId
    share_ppm: int
    positions: tuple[tuple[str, int], ...]  # the sizes taken (signed as they were held)
    penalty_quote_quantums: int
    net_collateral_before_quote_quantums: int
    maintenance_before_quote_quantums: int


class SocializedLoss(NamedTuple):
    """A bankrupt account's shortfall, made whole and owed by everyone: repaid by withdrawal haircuts."""

    ts_ms: int
    subaccount_id: SubaccountId
    amount_quote_quantums: int
    outstanding_quote_quantums: int


class WithdrawalHaircut(NamedTuple):
    """Part of a withdrawal kept to repay the socialized loss (the account paid `amount`, received less)."""

    ts_ms: int
    subaccount_id: SubaccountId
    haircut_quote_quantums: int
    outstanding_after_quote_quantums: int


class BadDebt(NamedTuple):
    """Negative net collateral that neither the book, the insurance fund nor deleveraging absorbed."""

    ts_ms: int
    subaccount_id: SubaccountId
    amount_quote_quantums: int
    positions_left: int


class LiquidationStalled(NamedTuple):
    """A liquidatable subaccount the step could not reduce (no liquidity within the fillable price,
    or the window's limits), with net collateral still >= 0: no debt yet, it is retried next step."""

    ts_ms: int
    subaccount_id: SubaccountId
    market_id: str
    reason: str


class ForcedTradeExecuted(NamedTuple):
    """A forced trade settled between its two parties at the agreed price, no book and no fee (StarkEx)."""

    ts_ms: int
    market_id: str
    buyer: SubaccountId
    seller: SubaccountId
    size_base_quantums: int
    price_subticks: int
    quote_quantums: int  # paid by the buyer to the seller


Event = (Deposited | Withdrawn | Transferred | MarginModeSet | OrderAccepted | Fill | OrderFinished
         | FundingRateComputed | FundingPaid
         | OrderRested | OrderTriggered | OraclePriceUpdated | Liquidated | Deleveraged | InsuranceFundChanged
         | BackstopTakeover | FundTakeover | SocializedLoss | WithdrawalHaircut | BadDebt | LiquidationStalled
         | ForcedTradeExecuted)
