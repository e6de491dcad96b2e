"""Fairness of operator-chosen amounts, StarkEx style: the fair amount passes and "one unit worse" is rejected,
for fills of signed orders, funding ticks, deleverages (at the core's bankruptcy amount) and liquidation fills."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpdex.core.events import Fill, Liquidated
from perpdex.core.exchange import Exchange
from perpdex.core.funding import funding_index_delta
from perpdex.core.liquidation import bankruptcy_price_quote_quantums, position_maintenance_risk
from perpdex.core.margin import Risk
from perpdex.core.state import SubaccountId
from perpdex.rollup.signatures import StarkOrder
from perpdex.rollup.validity import (
    BatchValidator,
    InvalidFulfillmentAmountError,
    InvalidFulfillmentAssetsRatioError,
    InvalidFulfillmentFeeRatioError,
    OutOfRangeFundingIndexError,
    UndeleveragablePositionError,
    UnfairDeleverageError,
    UnfairLiquidationPriceError,
    UnliquidatablePositionError,
    check_deleverage_fair,
    check_funding_tick,
    check_limit_order_fill,
    check_liquidation_fill,
    max_funding_rate_8h_ppm,
)

AMOUNT = st.integers(1, 2**40)


def _order(is_buy: bool, synthetic: int, collateral: int, fee: int) -> StarkOrder:
    return StarkOrder(1, is_buy, 0xB7C, 0xC011, synthetic, collateral, fee, 1, 10**6)


# --- signed orders ----------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(synthetic=AMOUNT, collateral=AMOUNT, fee=st.integers(0, 2**30), fraction=st.integers(1, 1000))
def test_a_buyer_pays_at_most_the_signed_price_and_one_unit_more_is_rejected(synthetic, collateral, fee, fraction):
    order = _order(True, synthetic, collateral, fee)
    bought = max(1, synthetic * fraction // 1000)
    # the most collateral a fair fill may take: (sold - 1) x B < S x b, i.e. sold <= ceil(S x b / B)
    most = -(-collateral * bought // synthetic)
    max_fee = fee * most // collateral
    check_limit_order_fill(order, bought, most, max_fee)
    with pytest.raises(InvalidFulfillmentAssetsRatioError):
        check_limit_order_fill(order, bought, most + 1, 0)
    with pytest.raises(InvalidFulfillmentFeeRatioError):
        check_limit_order_fill(order, bought, most, max_fee + 1)


@settings(max_examples=200, deadline=None)
@given(synthetic=AMOUNT, collateral=AMOUNT, fraction=st.integers(1, 1000))
def test_a_seller_gets_at_least_the_signed_price_and_one_unit_less_is_rejected(synthetic, collateral, fraction):
    order = _order(False, synthetic, collateral, 0)
    sold = max(1, synthetic * fraction // 1000)
    # the least collateral a fair fill may pay: sold x B < S x (bought + 1), i.e. bought >= floor(B x sold / S)
    least = collateral * sold // synthetic
    check_limit_order_fill(order, sold, least, 0)
    if least >= 1:
        with pytest.raises(InvalidFulfillmentAssetsRatioError):
            check_limit_order_fill(order, sold, least - 1, 0)


def test_fills_may_not_exceed_the_signed_amount_over_all_of_them():
    order = _order(True, 100, 1_000, 0)
    check_limit_order_fill(order, 60, 600, 0)
    check_limit_order_fill(order, 40, 400, 0, filled_before=60)
    with pytest.raises(InvalidFulfillmentAmountError):
        check_limit_order_fill(order, 41, 410, 0, filled_before=60)
    check_limit_order_fill(order, 10, 100, -3)  # a maker rebate is never too much fee


# --- funding ticks --------------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(rate=st.integers(1, 2_000_000), elapsed=st.integers(1, 8 * 3_600_000), price=st.integers(1, 10**13),
       qce=st.integers(-12, 0), negative=st.booleans())
def test_a_funding_tick_at_the_max_rate_passes_and_one_index_unit_more_is_rejected(rate, elapsed, price, qce,
                                                                                      negative):
    sign = -1 if negative else 1
    at_max = funding_index_delta(sign * rate, elapsed, price, qce)  # the core's index change, truncated
    check_funding_tick(at_max, elapsed, price, qce, rate)
    with pytest.raises(OutOfRangeFundingIndexError):
        check_funding_tick(at_max + sign, elapsed, price, qce, rate)


def test_the_dydx_model_states_its_clamp_as_the_max_rate(markets):
    from perpdex.core.exchange import Exchange

    market = Exchange(markets).markets["BTC-USD"]
    # 600% x (IMF 2% - MMF 1.2%) = 4.8% per 8 h (dYdX v4 funding rate clamp)
    assert max_funding_rate_8h_ppm(market.funding_model) == 48_000


# --- deleverages --------------------------------------------------------------------------------------------
def _risk(usdc: int, size: int, params, price: int) -> Risk:
    position = position_maintenance_risk(size, params, price)
    return Risk(usdc + position.net_collateral, position.initial_requirement, position.maintenance_requirement)


@settings(max_examples=300, deadline=None)
@given(steps=st.integers(1, 10_000), short=st.booleans(), price_dollars=st.integers(1_000, 200_000),
       shortfall_ppm=st.integers(0, 60_000), close_ppm=st.integers(1, 1_000_000))
def test_the_core_bankruptcy_amount_is_the_one_fair_deleverage(markets, steps, short, price_dollars, shortfall_ppm,
                                                                close_ppm):
    params = next(m for m in markets if m.market_id == "BTC-USD")
    price = price_dollars * 100_000
    size = (-1 if short else 1) * steps * params.step_base_quantums
    notional = size * price // 10**9
    # collateral such that the account sits below maintenance (NC < MMR), possibly bankrupt
    mmr = position_maintenance_risk(size, params, price).maintenance_requirement
    usdc = -notional + mmr - 1 - abs(notional) * shortfall_ppm // 1_000_000
    before = _risk(usdc, size, params, price)
    offset_steps = max(1, steps * close_ppm // 1_000_000)
    delta = (1 if short else -1) * offset_steps * params.step_base_quantums
    quote = bankruptcy_price_quote_quantums(size, delta, params=params, oracle_price_subticks=price,
                                            account_risk=before)

    def after(received: int) -> Risk:
        return _risk(usdc + received, size + delta, params, price)

    check_deleverage_fair(before, after, quote)  # the core's amount is the least valid one
    with pytest.raises(UnfairDeleverageError):
        check_deleverage_fair(before, after, quote - 1)  # one unit less: the deleveraged account ends riskier
    with pytest.raises(UnfairDeleverageError):
        check_deleverage_fair(before, after, quote + 1)  # one unit more: the offsetting account overpays


def test_a_healthy_account_is_not_deleveragable(markets):
    params = next(m for m in markets if m.market_id == "BTC-USD")
    before = _risk(10**12, 10**6, params, 10**10)
    with pytest.raises(UndeleveragablePositionError):
        check_deleverage_fair(before, lambda q: before, 0)


# --- liquidation fills -------------------------------------------------------------------------------------------
LIQUIDATED_LONG = Liquidated(1, SubaccountId("alice"), "BTC-USD", -10_000_000, 99_000 * 100_000, 98_500 * 100_000,
                             98_000 * 100_000, 900 * 10**6, 1_200 * 10**6, 0, SubaccountId("bob"), 7)


def test_a_liquidation_fill_at_or_better_than_the_fillable_price_passes():
    check_liquidation_fill(LIQUIDATED_LONG)
    check_liquidation_fill(LIQUIDATED_LONG._replace(fill_price_subticks=LIQUIDATED_LONG.fillable_price_subticks))


@pytest.mark.parametrize("event, error", [
    (LIQUIDATED_LONG._replace(fill_price_subticks=98_500 * 100_000 - 1), UnfairLiquidationPriceError),
    (LIQUIDATED_LONG._replace(size_base_quantums=10_000_000, fill_price_subticks=98_500 * 100_000 + 1),
     UnfairLiquidationPriceError),
    (LIQUIDATED_LONG._replace(net_collateral_before_quote_quantums=1_200 * 10**6), UnliquidatablePositionError),
], ids=["selling a long one subtick below the fillable price", "buying back a short one subtick above it",
        "an account at maintenance is not liquidatable"])
def test_one_unit_worse_liquidation_is_rejected(event, error):
    with pytest.raises(error):
        check_liquidation_fill(event)


def test_only_the_first_fill_of_a_liquidation_order_must_find_the_account_below_maintenance(markets):
    """The first fill may lift the account above maintenance; the rest of that order (same subaccount, market and
    fillable price) still executes. A fill that starts a new order must find it below maintenance again."""
    lifted = LIQUIDATED_LONG._replace(net_collateral_before_quote_quantums=1_300 * 10**6, maker_order_id=8)
    fill = Fill(1, "BTC-USD", 99_000 * 100_000, 10_000_000, 990 * 10**6, False, 0, SubaccountId("alice"), 0, 7,
                SubaccountId("bob"), 0)
    validator = BatchValidator(Exchange(markets))
    before = validator.before_tx(None)
    validator.after_tx(None, [fill, LIQUIDATED_LONG, fill._replace(maker_order_id=8), lifted], None, before)
    assert validator.checked["liquidations"] == 2
    new_order = lifted._replace(fillable_price_subticks=98_400 * 100_000)
    with pytest.raises(UnliquidatablePositionError):
        validator.after_tx(None, [LIQUIDATED_LONG, new_order], None, before)
    with pytest.raises(UnliquidatablePositionError):
        validator.after_tx(None, [lifted], None, before)  # a first fill, in a later transaction


def test_every_deleverage_of_a_real_crash_is_fair_and_one_unit_more_is_not():
    """The liquidation bench's crash at small scale: each Deleveraged event's amount passes
    check_deleverage_fair from the event's own figures, and paying one quantum more fails."""
    from perpdex.bench.liquidation import DOLLAR, build
    from perpdex.core.events import Deleveraged
    from perpdex.core.tx import OraclePrice, OracleUpdate
    from perpdex.rollup.validity import UnfairDeleverageError

    exchange, ts = build(1_500, seed=3)
    validator = BatchValidator(exchange)
    tx = OracleUpdate(ts, (OraclePrice("BTC-USD", (80_000 * DOLLAR,)),))
    before = validator.before_tx(tx)
    events = exchange.apply(tx)
    offsets = [e for e in events if isinstance(e, Deleveraged)]
    assert len(offsets) > 10
    validator.after_tx(tx, events, None, before)
    assert validator.checked["deleverages"] == len(offsets)
    for event in offsets[:20]:
        with pytest.raises(UnfairDeleverageError):
            validator.after_tx(tx, [event._replace(quote_quantums=event.quote_quantums + 1)], None, before)
