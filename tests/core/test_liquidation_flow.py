"""Liquidation through transactions: the step after each oracle update, a requested Liquidate,
the insurance fund covering fills below bankruptcy, deleveraging when it cannot, isolation."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perpdex.core.errors import PerpdexError
from perpdex.core.events import (
    BadDebt, Deleveraged, InsuranceFundChanged, Liquidated, LiquidationStalled,
)
from perpdex.core.handlers.liquidate import NotLiquidatableError
from perpdex.core.invariants import check_invariants
from perpdex.core.orders import Side, TimeInForce
from perpdex.core.state import MarginMode, SubaccountId
from perpdex.core.tx import InsuranceFundDeposit, Liquidate, PlaceOrder, SetMarginMode, Transfer
from perpdex.core.units import QUOTE
from tests.fixtures import ALICE, BOB, CAROL, DAVE, btc, funded_exchange, oracle, usd_btc

BOB_ISO = SubaccountId("bob", 1)
BUY, SELL = Side.BUY, Side.SELL


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def bob_long_one_btc(ex, collateral_usd: int, who=BOB_ISO):
    """`who` (isolated to BTC-USD when it is bob/1) buys 1 BTC at $100,000 from carol."""
    if who == BOB_ISO:
        ex.apply(SetMarginMode(2, BOB_ISO, MarginMode.ISOLATED, "BTC-USD"))
    ex.apply(Transfer(2, BOB, who, collateral_usd * QUOTE) if who != BOB else Transfer(2, BOB, DAVE, 1))
    ex.apply(PlaceOrder(3, CAROL, "BTC-USD", SELL, btc(1), usd_btc(100_000)))
    ex.apply(PlaceOrder(3, who, "BTC-USD", BUY, btc(1), usd_btc(100_000), time_in_force=TimeInForce.IOC))
    assert ex.subaccount(who).positions == {"BTC-USD": btc(1)}


def test_isolated_position_is_liquidated_by_the_step_and_the_cross_account_is_untouched():
    ex = funded_exchange()
    bob_long_one_btc(ex, 3_000)
    ex.apply(PlaceOrder(4, ALICE, "BTC-USD", BUY, btc(0.5), usd_btc(97_900)))
    ex.apply(PlaceOrder(4, ALICE, "BTC-USD", BUY, btc(1), usd_btc(97_800)))  # within the fillable price
    cross_before = ex.subaccount(BOB).collateral.copy()
    # $98,000: NC = 3,000 - 50 fee - 2,000 = $950 < MMR 1.2% x 98,000 = $1,176
    events = ex.apply(oracle(5, BTC_USD=usd_btc(98_000)))
    fills = of(events, Liquidated)
    assert fills and {f.subaccount_id for f in fills} == {BOB_ISO}
    assert fills[0].net_collateral_before_quote_quantums == 950 * QUOTE
    assert fills[0].maintenance_before_quote_quantums == 1_176 * QUOTE
    assert all(f.fill_price_subticks >= f.fillable_price_subticks for f in fills)  # sells no lower
    assert not ex.risk(BOB_ISO).is_liquidatable()
    assert ex.subaccount(BOB).collateral == cross_before and not ex.subaccount(BOB).positions
    assert ex.insurance_fund_quote_quantums == sum(f.insurance_fund_delta_quote_quantums for f in fills) > 0
    check_invariants(ex)


def test_cross_liquidation_does_not_touch_the_owners_isolated_subaccount():
    ex = funded_exchange(usdc=3_000 * QUOTE)
    ex.apply(SetMarginMode(2, BOB_ISO, MarginMode.ISOLATED, "ETH-USD"))
    ex.apply(Transfer(2, BOB, BOB_ISO, 500 * QUOTE))
    ex.apply(PlaceOrder(3, CAROL, "BTC-USD", SELL, btc(1), usd_btc(100_000)))
    ex.apply(PlaceOrder(3, BOB, "BTC-USD", BUY, btc(1), usd_btc(100_000), time_in_force=TimeInForce.IOC))
    ex.apply(PlaceOrder(4, ALICE, "BTC-USD", BUY, btc(1), usd_btc(98_690)))  # fillable at 98,700: ~98,649
    iso_before = ex.subaccount(BOB_ISO).collateral.copy()
    events = ex.apply(oracle(5, BTC_USD=usd_btc(98_900)))  # NC 2,500-50-1,100 = $1,350 >= MMR $1,186.80
    assert not of(events, Liquidated)
    events = ex.apply(oracle(6, BTC_USD=usd_btc(98_700)))  # NC $1,150 < MMR $1,184.40
    assert {f.subaccount_id for f in of(events, Liquidated)} == {BOB}
    assert ex.subaccount(BOB_ISO).collateral == iso_before
    check_invariants(ex)


def test_requested_liquidation_of_a_healthy_account_is_rejected_and_changes_nothing():
    ex = funded_exchange()
    bob_long_one_btc(ex, 3_000)
    before = ex.digest()
    with pytest.raises(NotLiquidatableError) as caught:
        ex.apply(Liquidate(5, BOB_ISO))
    assert caught.value.field == "subaccount_id" and ex.digest() == before


def test_empty_book_stalls_then_a_requested_liquidation_closes_it():
    ex = funded_exchange()
    bob_long_one_btc(ex, 3_000)
    events = ex.apply(oracle(5, BTC_USD=usd_btc(98_000)))
    assert of(events, LiquidationStalled) and not of(events, Liquidated)
    assert ex.risk(BOB_ISO).is_liquidatable()  # NC $950 >= 0: no debt, no deleveraging
    ex.apply(PlaceOrder(6, ALICE, "BTC-USD", BUY, btc(1), usd_btc(97_800)))
    events = ex.apply(Liquidate(7, BOB_ISO))
    assert of(events, Liquidated) and not ex.risk(BOB_ISO).is_liquidatable()
    check_invariants(ex)


def test_insurance_fund_covers_a_fill_below_bankruptcy():
    ex = funded_exchange()
    bob_long_one_btc(ex, 3_000)
    ex.apply(InsuranceFundDeposit(4, DAVE, 10_000 * QUOTE))
    ex.apply(PlaceOrder(4, ALICE, "BTC-USD", BUY, btc(1), usd_btc(95_000)))
    # $96,000: NC = 950 - 2,000 = -$1,050; bankruptcy $97,050 > bid $95,000 >= fillable ~$94,272
    events = ex.apply(oracle(5, BTC_USD=usd_btc(96_000)))
    fills = of(events, Liquidated)
    assert sum(abs(f.size_base_quantums) for f in fills) == btc(1)
    assert all(f.insurance_fund_delta_quote_quantums < 0 for f in fills)  # the fund paid
    paid = -sum(f.insurance_fund_delta_quote_quantums for f in fills)
    assert paid == 2_050 * QUOTE  # sold at 95,000 what needed 97,050
    assert ex.insurance_fund_quote_quantums == 10_000 * QUOTE - paid
    assert of(events, InsuranceFundChanged)
    assert ex.risk(BOB_ISO).net_collateral == 0 and not of(events, BadDebt)
    check_invariants(ex)


def test_without_a_fund_the_bankrupt_position_is_deleveraged_at_the_bankruptcy_price():
    ex = funded_exchange()
    bob_long_one_btc(ex, 3_000)
    ex.apply(PlaceOrder(4, ALICE, "BTC-USD", BUY, btc(1), usd_btc(95_000)))
    carol_before = ex.subaccount(CAROL).usdc_quote_quantums
    events = ex.apply(oracle(5, BTC_USD=usd_btc(96_000)))
    assert not of(events, Liquidated)  # the fund (0) cannot cover the fill below bankruptcy
    [offset] = of(events, Deleveraged)
    assert (offset.offsetting_subaccount_id, offset.size_base_quantums) == (CAROL, -btc(1))
    assert offset.quote_quantums == 97_050 * QUOTE  # the bankruptcy price, not the book's 95,000
    assert ex.subaccount(CAROL).usdc_quote_quantums == carol_before - 97_050 * QUOTE
    assert not ex.subaccount(BOB_ISO).positions and ex.risk(BOB_ISO).net_collateral == 0
    assert not ex.subaccount(CAROL).positions and not of(events, BadDebt)
    check_invariants(ex)


# --- property: after every oracle update nobody with positions stays below maintenance unless
# the step said why (stalled for lack of liquidity, or bad debt) --------------------------------
move = st.tuples(st.integers(-600, 600), st.integers(0, 3), st.booleans(), st.integers(1, 30))


@pytest.mark.parametrize("policy", ["dydx", "hyperliquid", "paradex"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(move, min_size=3, max_size=25), st.integers(1_500, 6_000))
def test_liquidation_step_leaves_nobody_silently_below_maintenance(policy, moves, collateral_usd):
    from perpdex.config.markets import load_markets
    from perpdex.core.liquidation import LiquidationsConfig
    ex = funded_exchange(usdc=20_000 * QUOTE)
    ex.liquidations_config = LiquidationsConfig(policy=policy)  # before any position exists
    traders = [SubaccountId(f"t{i}") for i in range(4)]
    from perpdex.core.tx import Deposit
    for i, trader in enumerate(traders):
        ex.apply(Deposit(2, trader, (collateral_usd + 500 * i) * QUOTE))
    price = 100_000
    ts = 3
    for step, (change, who, is_buy, depth) in enumerate(moves):
        ts += 1_000
        trader = traders[who]
        try:  # traders lean on leverage; makers (alice, carol) quote both sides
            ex.apply(PlaceOrder(ts, CAROL, "BTC-USD", SELL, btc(0.1) * depth, usd_btc(price + 10 + step)))
            ex.apply(PlaceOrder(ts, ALICE, "BTC-USD", BUY, btc(0.1) * depth, usd_btc(price - 10 - step)))
            ex.apply(PlaceOrder(ts, trader, "BTC-USD", BUY if is_buy else SELL, btc(0.1) * depth,
                                usd_btc(price + (200 if is_buy else -200)), time_in_force=TimeInForce.IOC))
        except PerpdexError:
            pass
        price = max(1_000, price + change * 10)
        events = ex.apply(oracle(ts + 1, BTC_USD=usd_btc(price)))
        check_invariants(ex)
        explained = {e.subaccount_id for e in events if isinstance(e, (LiquidationStalled, BadDebt))}
        for sid, sub in ex.subaccounts.items():
            if sub.positions and ex.risk(sid).is_liquidatable():
                assert sid in explained, f"{sid} left below maintenance without a reason"


def test_lazy_candidates_follow_deleveraging_order():
    """The handler walks holders lazily; with no cost basis in state (PnL 0) that must be the
    order `liquidation.deleveraging_order` defines."""
    from perpdex.core.handlers.liquidate import _offsetting_candidates
    from perpdex.core.liquidation import DeleveragingCandidate, deleveraging_order
    from perpdex.core.margin import notional_quote_quantums
    from perpdex.core.tx import Deposit
    ex = funded_exchange(usdc=1_000_000 * QUOTE)
    shorts = [SubaccountId(f"s{i}") for i in (3, 1, 2, 0)]
    for i, short in enumerate(shorts):
        ex.apply(Deposit(2 + i, short, (1_500 + 1_000 * i) * QUOTE))
        ex.apply(PlaceOrder(2 + i, ALICE, "BTC-USD", BUY, btc(0.1), usd_btc(100_000)))
        ex.apply(PlaceOrder(2 + i, short, "BTC-USD", SELL, btc(0.1), usd_btc(100_000), time_in_force=TimeInForce.IOC))
    ex.apply(oracle(9, BTC_USD=usd_btc(110_000)))  # every short loses $1,000: s3 keeps the least
    market = ex.market("BTC-USD")
    expected = deleveraging_order(
        [DeleveragingCandidate(sid, ex.subaccount(sid).positions["BTC-USD"],
                               notional_quote_quantums(ex.subaccount(sid).positions["BTC-USD"],
                                                       market.oracle_price_subticks, market.quantum_conversion_divisor),
                               ex.risk(sid).net_collateral, 0)
         for sid in ex.holders["BTC-USD"] if sid != ALICE],
        delta_base_quantums=-btc(0.4))
    assert list(_offsetting_candidates(ex, ALICE, "BTC-USD", btc(0.4))) == [c.subaccount_id for c in expected]
    assert [c.subaccount_id.owner for c in expected] == ["s0", "s1", "s2", "s3"]


def test_walk_skips_closed_holders_until_a_commit_may_reopen_them():
    """The handler's holder walk starts past holders it found closed (deleveraging never reopens
    one); a commit that can reopen one (a liquidation fill) resets it, so the order stays
    `deleveraging_order`'s."""
    from perpdex.core.handlers import liquidate as handler
    from perpdex.core.plan import Plan
    from perpdex.core.tx import Deposit
    ex = funded_exchange(usdc=1_000_000 * QUOTE)
    shorts = [SubaccountId(f"s{i}") for i in range(3)]
    for i, short in enumerate(shorts):
        ex.apply(Deposit(2 + i, short, 50_000 * QUOTE))
        ex.apply(PlaceOrder(2 + i, ALICE, "BTC-USD", BUY, btc(0.1), usd_btc(100_000)))
        ex.apply(PlaceOrder(2 + i, short, "BTC-USD", SELL, btc(0.1), usd_btc(100_000), time_in_force=TimeInForce.IOC))
    market = ex.market("BTC-USD")

    def set_position(sid, size):
        step = Plan()
        copy = ex.subaccount(sid).copy()
        copy.set_position("BTC-USD", size, market.funding_index)
        step.subaccounts[sid] = copy
        ex.commit_step(step)

    handler._begin_step(ex)
    try:
        assert list(handler._offsetting_candidates(ex, ALICE, "BTC-USD", btc(0.3))) == shorts
        set_position(shorts[0], 0)  # closed, as a deleveraging offset leaves it
        assert list(handler._offsetting_candidates(ex, ALICE, "BTC-USD", btc(0.3))) == shorts[1:]
        assert handler._STEP_HOLDERS[("BTC-USD", True)].start == 1  # s0 is skipped from now on
        set_position(shorts[0], -btc(0.1))  # reopened, as only a fill can
        handler._reset_walks()
        assert list(handler._offsetting_candidates(ex, ALICE, "BTC-USD", btc(0.3))) == shorts
    finally:
        handler._end_step()
