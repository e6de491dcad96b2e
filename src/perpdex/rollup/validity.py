"""Fairness checks on operator-chosen amounts, as StarkEx's Cairo program makes them: a fill within each signed
order's limits and fee, a liquidation at a fair price, a deleverage at the one fair amount, a funding tick within
the maximum rate for the time elapsed. Each check raises its own error, with the values, where it is made.

Sources: starkware-libs/stark-perpetual @40f0282, src/services/perpetual/cairo/:
- `order/validate_limit_order.cairo` validate_limit_order_fairness (fee ratio, asset ratio with one unit of
  rounding allowed on the collateral side);
- `transactions/liquidate.cairo` (the liquidated position must be liquidatable and may only shrink);
- `transactions/deleverage.cairo` (UNDELEVERAGABLE_POSITION; UNFAIR_DELEVERAGE: one unit less collateral for
  the deleveraged position must make the transaction invalid);
- `transactions/funding_tick.cairo` validate_funding_index_diff_in_range:
  |index change| <= max funding rate x price x time elapsed.
`BatchValidator` applies them to the events a batch's re-execution produces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perpdex.core.errors import TxError
from perpdex.core.events import Deleveraged, Fill, FundingRateComputed, Liquidated, OrderAccepted
from perpdex.core.funding import FUNDING_PERIOD_MS, HOUR_MS
from perpdex.core.margin import Risk, TransitionResult, check_transition, moved_risk
from perpdex.rollup.signatures import StarkOrder

DEFAULT_MAX_FUNDING_RATE_8H_PPM = 1_000_000  # 100% per 8 h, for funding models that state no cap of their own


class ValidityError(TxError):
    """An operator-chosen amount is unfair (the batch is invalid)."""

    code = "rollup.validity"


class InvalidFulfillmentFeeRatioError(ValidityError):
    code = "rollup.invalid_fulfillment_fee_ratio"  # StarkEx INVALID_FULFILLMENT_FEE_RATIO


class InvalidFulfillmentAssetsRatioError(ValidityError):
    code = "rollup.invalid_fulfillment_assets_ratio"  # StarkEx INVALID_FULFILLMENT_ASSETS_RATIO


class InvalidFulfillmentAmountError(ValidityError):
    code = "rollup.invalid_fulfillment_amount"  # StarkEx INVALID_FULFILLMENT_INFO: more than signed


class UnliquidatablePositionError(ValidityError):
    code = "rollup.unliquidatable_position"  # StarkEx UNLIQUIDATABLE_POSITION


class UnfairLiquidationPriceError(ValidityError):
    code = "rollup.unfair_liquidation_price"


class IllegalPositionTransitionError(ValidityError):
    code = "rollup.illegal_position_transition"  # StarkEx ILLEGAL_POSITION_TRANSITION_ENLARGING_SYNTHETIC_HOLDINGS


class UndeleveragablePositionError(ValidityError):
    code = "rollup.undeleveragable_position"  # StarkEx UNDELEVERAGABLE_POSITION


class UnfairDeleverageError(ValidityError):
    code = "rollup.unfair_deleverage"  # StarkEx UNFAIR_DELEVERAGE


class OutOfRangeFundingIndexError(ValidityError):
    code = "rollup.out_of_range_funding_index"  # StarkEx OUT_OF_RANGE_FUNDING_INDEX / funding diff check


# --- limit orders ----------------------------------------------------------------------------------------
def check_limit_order_fill(order: StarkOrder, actual_synthetic: int, actual_collateral: int, actual_fee: int,
                           filled_before: int = 0) -> None:
    """A fill of a signed order is fair: the signer gets no worse a price and pays no more fee, per collateral,
    than signed, and the order's synthetic amount is not exceeded over all its fills.

    actual_fee / actual_collateral <= signed fee / signed collateral, cross-multiplied; buying synthetic:
    (actual_sold - 1) / actual_bought < signed sell / signed buy; selling: actual_sold / (actual_bought + 1) <
    signed sell / signed buy (one unit of collateral rounding either way, as validate_limit_order.cairo).
    A negative fee (a maker rebate) always passes the fee check.
    """
    if not 1 <= actual_synthetic or filled_before + actual_synthetic > order.quantums_amount_synthetic:
        raise InvalidFulfillmentAmountError(
            f"fill of {actual_synthetic} after {filled_before} exceeds the signed {order.quantums_amount_synthetic}",
            field="actual_synthetic", value=actual_synthetic)
    amount_collateral = order.quantums_amount_collateral
    if actual_fee * amount_collateral > order.quantums_amount_fee * actual_collateral:
        raise InvalidFulfillmentFeeRatioError(
            f"fee {actual_fee} on {actual_collateral} exceeds the signed {order.quantums_amount_fee} on "
            f"{amount_collateral}", field="actual_fee", value=actual_fee)
    if order.is_buying_synthetic:
        actual_sold, actual_bought = actual_collateral, actual_synthetic
        amount_sell, amount_buy = amount_collateral, order.quantums_amount_synthetic
        if actual_sold == 0:
            return  # a buyer is always willing to get synthetic for free
        fair = (actual_sold - 1) * amount_buy < amount_sell * actual_bought
    else:
        actual_sold, actual_bought = actual_synthetic, actual_collateral
        amount_sell, amount_buy = order.quantums_amount_synthetic, amount_collateral
        fair = actual_sold * amount_buy < amount_sell * (actual_bought + 1)
    if not fair:
        raise InvalidFulfillmentAssetsRatioError(
            f"sold {actual_sold} for {actual_bought}: worse than the signed {amount_sell} for {amount_buy}",
            field="actual_collateral", value=actual_collateral)


# --- liquidations -----------------------------------------------------------------------------------------
def check_liquidation_fill(event: Liquidated, *, first_of_order: bool = True) -> None:
    """A liquidation fill is fair: the subaccount was below maintenance (NC < MMR) when its liquidation order
    started (checked on the order's first fill), the fill only shrinks its position, and the price is no worse
    for it than the fillable price (a sell at or above, a buy at or below)."""
    if first_of_order and not event.net_collateral_before_quote_quantums < event.maintenance_before_quote_quantums:
        raise UnliquidatablePositionError(
            f"net collateral {event.net_collateral_before_quote_quantums} >= maintenance "
            f"{event.maintenance_before_quote_quantums}", field="subaccount_id", value=str(event.subaccount_id))
    if event.size_base_quantums == 0:
        raise IllegalPositionTransitionError("an empty liquidation fill", field="size_base_quantums", value=0)
    selling = event.size_base_quantums < 0  # closing a long
    price, fillable = event.fill_price_subticks, event.fillable_price_subticks
    if (selling and price < fillable) or (not selling and price > fillable):
        raise UnfairLiquidationPriceError(
            f"fill at {price} is worse for the liquidated subaccount than the fillable price {fillable}",
            field="fill_price_subticks", value=price)


# --- deleveraging -----------------------------------------------------------------------------------------
def deleverage_is_valid(before: Risk, after: Risk) -> bool:
    """The deleveraged subaccount's change passes the one validity rule (margin.check_transition)."""
    return check_transition(before, after) is TransitionResult.SUCCESS


def check_deleverage_fair(before: Risk, risk_after: Callable[[int], Risk], quote_quantums: int) -> None:
    """StarkEx deleverage.cairo, in perpdex's risk terms. The deleveraged subaccount must be deleveragable (below
    maintenance: NC < MMR; StarkEx asks TV < 0, perpdex deleverages when the book cannot absorb a liquidation)
    and must receive the least collateral that keeps its change valid: valid at `quote_quantums`, invalid at
    `quote_quantums - 1` (one unit more would overpay it at the offsetting account's expense).
    `risk_after(q)` is the deleveraged subaccount's risk after the offset if it receives q quote quantums."""
    if not before.net_collateral < before.maintenance_requirement:
        raise UndeleveragablePositionError(
            f"net collateral {before.net_collateral} >= maintenance {before.maintenance_requirement}",
            field="net_collateral", value=before.net_collateral)
    if not deleverage_is_valid(before, risk_after(quote_quantums)):
        raise UnfairDeleverageError(f"receiving {quote_quantums} leaves the deleveraged subaccount riskier",
                                    field="quote_quantums", value=quote_quantums)
    if deleverage_is_valid(before, risk_after(quote_quantums - 1)):
        raise UnfairDeleverageError(f"{quote_quantums} overpays the deleveraged subaccount: one unit less is valid",
                                    field="quote_quantums", value=quote_quantums)


# --- funding ticks ------------------------------------------------------------------------------------------
def check_funding_tick(index_delta: int, elapsed_ms: int, price_subticks: int, quantum_conversion_exponent: int,
                       max_rate_8h_ppm: int) -> None:
    """|index change| <= max rate x price x elapsed (funding_tick.cairo), in perpdex's index units: the index is
    ppm of a quote quantum per base quantum, so max change = max rate (ppm per 8 h) x elapsed / 8 h x price x
    10**qce. Cross-multiplied, exact: |delta| x 8 h x 10**-qce <= max rate x elapsed x price."""
    if elapsed_ms < 0:
        raise OutOfRangeFundingIndexError("funding time went backwards", field="elapsed_ms", value=elapsed_ms)
    left = abs(index_delta) * FUNDING_PERIOD_MS
    right = max_rate_8h_ppm * elapsed_ms * price_subticks
    if quantum_conversion_exponent <= 0:
        left *= 10 ** -quantum_conversion_exponent
    else:
        right *= 10 ** quantum_conversion_exponent
    if left > right:
        raise OutOfRangeFundingIndexError(
            f"funding index moved {index_delta} in {elapsed_ms} ms at price {price_subticks}: above the maximum "
            f"rate of {max_rate_8h_ppm} ppm per 8 h", field="funding_index_delta", value=index_delta)


def max_funding_rate_8h_ppm(funding_model: Any) -> int:
    """The largest 8-hour rate a market's funding model can apply: dYdX's clamp (600% x (IMF - MMF)), the
    continuous model's cap, or a per-interval cap scaled to 8 h at the shortest interval; else the default."""
    rate = getattr(funding_model, "max_abs_funding_rate_ppm", None)
    if rate is not None:
        return rate
    params = getattr(funding_model, "params", None)
    if params is not None:
        if getattr(params, "max_rate_8h_ppm", None) is not None:
            return params.max_rate_8h_ppm
        cap = getattr(params, "rate_cap_per_interval_ppm", None)
        if cap is not None:
            shortest = min(getattr(params, name) for name in ("interval_ms", "capped_interval_ms", "restore_interval_ms")
                           if hasattr(params, name)) if hasattr(params, "interval_ms") else HOUR_MS
            return cap * (FUNDING_PERIOD_MS // shortest)
    return DEFAULT_MAX_FUNDING_RATE_8H_PPM


# --- a batch's events ----------------------------------------------------------------------------------------
class BatchValidator:
    """Runs the fairness checks over the events of a re-executed batch, transaction by transaction.

    Signed orders are matched to their core order id by the OrderAccepted event of the signed PlaceOrder; each
    later fill of that order (taker or maker side) is checked against the signed amounts, cumulatively.
    Deleverages are checked from the figures each `Deleveraged` event carries (`check_deleverage_fair`).
    """

    def __init__(self, exchange: Any) -> None:
        self.exchange = exchange
        self.signed_orders: dict[int, tuple[StarkOrder, int]] = {}  # order id -> (signed order, filled so far)
        self.checked = {"fills": 0, "liquidations": 0, "funding_ticks": 0, "deleverages": 0}

    def before_tx(self, tx: Any) -> dict[str, int]:
        """What a check needs from the state before `tx`: each market's funding interval start."""
        return {market_id: market.funding_interval_start_ms for market_id, market in self.exchange.markets.items()}

    def after_tx(self, tx: Any, events: list, signed: StarkOrder | None, before: dict[str, int]) -> None:
        order: tuple | None = None  # the liquidation order the last Liquidated event belonged to
        for event in events:
            kind = type(event)
            if kind is OrderAccepted and signed is not None and event.subaccount_id == tx.subaccount_id:
                self.signed_orders[event.order_id] = (signed, 0)
            elif kind is Fill:
                self._check_fill(event)
            elif kind is Liquidated:
                # One liquidation order (IOC at one fillable price) fills against several makers; only its first
                # fill must find the subaccount below maintenance: that fill may lift it above, and dYdX still
                # executes the rest of the order it sized at the start (x/clob liquidation order). A new order
                # of the same subaccount and market gets a new fillable price (its risk moved), so a new key.
                key = (event.subaccount_id, event.market_id, event.fillable_price_subticks)
                check_liquidation_fill(event, first_of_order=key != order)
                order = key
                self.checked["liquidations"] += 1
            elif kind is FundingRateComputed:
                market = self.exchange.markets[event.market_id]
                check_funding_tick(event.funding_index_delta, event.ts_ms - before[event.market_id],
                                   event.oracle_price_subticks, market.params.quantum_conversion_exponent,
                                   max_funding_rate_8h_ppm(market.funding_model))
                self.checked["funding_ticks"] += 1
            elif kind is Deleveraged:
                self._check_deleverage(event)
                self.checked["deleverages"] += 1

    def _check_deleverage(self, event: Deleveraged) -> None:
        """`check_deleverage_fair` from the event's before-offset figures: the account's risk after receiving q is
        `margin.moved_risk` (exact), at the oracle price of the transaction, which only an OracleUpdate sets, and
        the initial fraction the event reports."""
        market = self.exchange.markets[event.market_id]
        size = event.position_before_base_quantums
        before = Risk(event.net_collateral_before_quote_quantums, event.initial_before_quote_quantums,
                      event.maintenance_before_quote_quantums)

        def risk_after(received: int) -> Risk:
            return moved_risk(before, received, size, size + event.size_base_quantums, market.oracle_price_subticks,
                              market.quantum_conversion_divisor, market.params.liquidity_tier,
                              event.initial_margin_ppm)

        check_deleverage_fair(before, risk_after, event.quote_quantums)

    def _check_fill(self, fill: Fill) -> None:
        for order_id, fee in ((fill.taker_order_id, fill.taker_fee_quote_quantums),
                              (fill.maker_order_id, fill.maker_fee_quote_quantums)):
            signed = self.signed_orders.get(order_id)
            if signed is None:
                continue
            order, filled = signed
            check_limit_order_fill(order, fill.size_base_quantums, fill.quote_quantums, fee, filled)
            self.signed_orders[order_id] = (order, filled + fill.size_base_quantums)
            self.checked["fills"] += 1
