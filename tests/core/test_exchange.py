"""Exchange behaviour through transactions only: collateral moves, matching and order types,
conditional orders, margin and isolation rules, and typed rejections that change nothing."""

from __future__ import annotations

import pytest

from perpdex.core import errors
from perpdex.core.events import Fill, OrderFinished, OrderRested, OrderTriggered
from perpdex.core.invariants import check_invariants
from perpdex.core.orders import CancelReason, ConditionType, OrderStatus, OrderType, Side, TimeInForce
from perpdex.core.state import MarginMode, SubaccountId
from perpdex.core.tx import (
    CancelOrder, Deposit, OraclePrice, OracleUpdate, PlaceOrder, SetMarginMode, Transfer, Withdraw,
)
from perpdex.core.units import QUOTE
from tests.fixtures import ALICE, BOB, CAROL, DAVE, btc, funded_exchange, oracle, usd_btc

BUY, SELL = Side.BUY, Side.SELL


def limit(ts, who, side, size, price, **kw) -> PlaceOrder:
    return PlaceOrder(ts, who, "BTC-USD", side, size, price, **kw)


def assert_rejected(ex, tx, error_type, field=None):
    """The tx raises `error_type` naming `field`, and the state digest is unchanged."""
    before = ex.digest()
    with pytest.raises(error_type) as caught:
        ex.apply(tx)
    assert ex.digest() == before
    if field is not None:
        assert caught.value.field == field
    return caught.value


def fills(events):
    return [e for e in events if isinstance(e, Fill)]


def finished(events, order_id):
    return [e for e in events if isinstance(e, OrderFinished) and e.order_id == order_id]


# --- collateral ----------------------------------------------------------------------------
def test_deposit_withdraw_transfer_move_collateral_and_conserve_it():
    ex = funded_exchange()
    ex.apply(Withdraw(2, ALICE, 1_000 * QUOTE))
    ex.apply(Transfer(2, BOB, SubaccountId("bob", 1), 500 * QUOTE))
    assert ex.subaccount(ALICE).usdc_quote_quantums == 99_000 * QUOTE
    assert ex.subaccount(SubaccountId("bob", 1)).usdc_quote_quantums == 500 * QUOTE
    assert ex.total_withdrawn[0] == 1_000 * QUOTE
    check_invariants(ex)


def test_withdrawal_above_free_collateral_is_rejected():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(1), usd_btc(100_000)))
    ex.apply(limit(2, BOB, BUY, btc(1), usd_btc(100_000)))
    # Bob: long 1 BTC at $100k, IMR 2% = $2,000, paid $50 taker fee: free = 100,000 - 50 - 2,000
    assert ex.free_collateral(BOB) == (100_000 - 50 - 2_000) * QUOTE
    assert_rejected(ex, Withdraw(3, BOB, 97_951 * QUOTE), errors.WithdrawalExceedsFreeCollateralError,
                    "amount_quantums")
    ex.apply(Withdraw(3, BOB, 97_950 * QUOTE))
    assert ex.free_collateral(BOB) == 0


def test_transfer_checks_sender_margin_and_rejects_self_transfer():
    ex = funded_exchange()
    assert_rejected(ex, Transfer(2, ALICE, ALICE, 1), errors.MalformedTxError, "recipient")
    assert_rejected(ex, Transfer(2, ALICE, BOB, 100_001 * QUOTE), errors.WithdrawalExceedsFreeCollateralError,
                    "amount_quantums")


# --- matching --------------------------------------------------------------------------------
def test_price_time_priority_better_price_then_older_order():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(100_010)))  # order 1
    ex.apply(limit(3, BOB, SELL, btc(0.1), usd_btc(100_005)))    # order 2: better price
    ex.apply(limit(4, CAROL, SELL, btc(0.1), usd_btc(100_005)))  # order 3: same price, later
    events = ex.apply(limit(5, DAVE, BUY, btc(0.25), usd_btc(100_010)))
    assert [(f.maker_order_id, f.size_base_quantums, f.price_subticks) for f in fills(events)] == [
        (2, btc(0.1), usd_btc(100_005)), (3, btc(0.1), usd_btc(100_005)), (1, btc(0.05), usd_btc(100_010))]
    assert ex.order_status(1) == (OrderStatus.PARTIALLY_FILLED, btc(0.05), btc(0.05))
    assert ex.order_status(4) == (OrderStatus.FILLED, btc(0.25), 0)
    check_invariants(ex)


def test_fill_pays_maker_and_taker_fees_at_the_maker_price():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(1), usd_btc(100_000)))
    [fill] = fills(ex.apply(limit(3, BOB, BUY, btc(1), usd_btc(100_500))))
    assert fill.price_subticks == usd_btc(100_000)
    assert fill.quote_quantums == 100_000 * QUOTE
    assert fill.taker_fee_quote_quantums == 50 * QUOTE   # 500 ppm of $100,000
    assert fill.maker_fee_quote_quantums == 10 * QUOTE   # 100 ppm
    assert ex.subaccount(ALICE).usdc_quote_quantums == (200_000 - 10) * QUOTE
    assert ex.subaccount(BOB).usdc_quote_quantums == -50 * QUOTE
    assert ex.fees_collected_quote_quantums == 60 * QUOTE
    assert ex.market("BTC-USD").open_interest_base_quantums == btc(1)
    check_invariants(ex)


def test_maker_rebate_is_paid_from_the_taker_fee_and_rounds_against_the_maker():
    ex = funded_exchange()
    for who in (ALICE, BOB):
        ex.apply(SetMarginMode(2, SubaccountId(who.owner, 1), MarginMode.ISOLATED, "EIGEN-USD"))
        ex.apply(Transfer(2, who, SubaccountId(who.owner, 1), 1_000 * QUOTE))
    ex.apply(OracleUpdate(3, (OraclePrice("EIGEN-USD", (3_000_000_000,)),)))  # $3.000
    ex.apply(PlaceOrder(4, SubaccountId("alice", 1), "EIGEN-USD", SELL, 7 * 10**6, 3_001_000_000))
    [fill] = fills(ex.apply(PlaceOrder(5, SubaccountId("bob", 1), "EIGEN-USD", BUY, 7 * 10**6, 3_001_000_000)))
    # 7 EIGEN at $3.001 = $21.007 = 21_007_000 quote quantums; maker -50 ppm = -1_050.35 -> ceil -1_050
    assert fill.quote_quantums == 21_007_000
    assert fill.maker_fee_quote_quantums == -1_050
    assert fill.taker_fee_quote_quantums == 10_504  # 500 ppm: 10_503.5 rounds up
    assert ex.fees_collected_quote_quantums == 10_504 - 1_050
    check_invariants(ex)


def test_partial_fill_rests_the_remainder():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(100_000)))
    events = ex.apply(limit(3, BOB, BUY, btc(0.3), usd_btc(100_000)))
    assert [type(e) for e in events][-1] is OrderRested
    assert ex.order_status(2) == (OrderStatus.PARTIALLY_FILLED, btc(0.1), btc(0.2))
    assert ex.market("BTC-USD").book.best_bid() == usd_btc(100_000)
    check_invariants(ex)


def test_ioc_cancels_the_remainder():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(100_000)))
    events = ex.apply(limit(3, BOB, BUY, btc(0.3), usd_btc(100_000), time_in_force=TimeInForce.IOC))
    [done] = finished(events, 2)
    assert (done.status, done.reason, done.filled_base_quantums) == (OrderStatus.CANCELED,
                                                                      CancelReason.IOC_REMAINDER, btc(0.1))
    assert ex.market("BTC-USD").book.best_bid() is None


def test_fok_fills_all_or_nothing():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(100_000)))
    events = ex.apply(limit(3, BOB, BUY, btc(0.2), usd_btc(100_000), time_in_force=TimeInForce.FOK))
    assert not fills(events)
    assert finished(events, 2)[0].reason is CancelReason.FOK_NOT_FILLED
    assert ex.order_status(1) == (OrderStatus.OPEN, 0, btc(0.1))
    assert len(fills(ex.apply(limit(4, BOB, BUY, btc(0.1), usd_btc(100_000), time_in_force=TimeInForce.FOK)))) == 1
    check_invariants(ex)


def test_post_only_that_would_cross_is_rejected():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(100_000)))
    assert_rejected(ex, limit(3, BOB, BUY, btc(0.1), usd_btc(100_000), time_in_force=TimeInForce.POST_ONLY),
                    errors.PostOnlyWouldCrossError, "price_subticks")
    ex.apply(limit(3, BOB, BUY, btc(0.1), usd_btc(99_999), time_in_force=TimeInForce.POST_ONLY))
    assert ex.market("BTC-USD").book.best_bid() == usd_btc(99_999)


def test_market_order_sweeps_within_its_slippage_bound():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(101_000)))
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(106_000)))  # beyond oracle + 5%
    events = ex.apply(PlaceOrder(3, BOB, "BTC-USD", BUY, btc(0.2), order_type=OrderType.MARKET,
                                 time_in_force=TimeInForce.IOC))
    assert [f.price_subticks for f in fills(events)] == [usd_btc(101_000)]
    assert finished(events, 3)[0].reason is CancelReason.IOC_REMAINDER
    assert_rejected(ex, PlaceOrder(4, BOB, "BTC-USD", BUY, btc(0.1), order_type=OrderType.MARKET),
                    errors.MalformedTxError, "time_in_force")


def test_good_til_time_order_expires_and_never_fills_after():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(100_000), good_til_ts_ms=10))
    ex.apply(limit(5, CAROL, SELL, btc(0.1), usd_btc(100_100)))
    events = ex.apply(limit(10, BOB, BUY, btc(0.1), usd_btc(100_100)))
    assert [f.maker_order_id for f in fills(events)] == [2]  # order 1 expired at ts 10
    assert ex.order_status(1) == (OrderStatus.EXPIRED, 0, 0)
    assert_rejected(ex, limit(11, ALICE, SELL, btc(0.1), usd_btc(100_000), good_til_ts_ms=11),
                    errors.ExpiredOrderError, "good_til_ts_ms")
    check_invariants(ex)


def test_self_trade_cancels_the_resting_order_and_the_taker_goes_on():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(100_000)))  # 1: Alice's own
    ex.apply(limit(3, BOB, SELL, btc(0.1), usd_btc(100_000)))    # 2
    events = ex.apply(limit(4, ALICE, BUY, btc(0.1), usd_btc(100_000)))
    assert finished(events, 1)[0].reason is CancelReason.SELF_TRADE
    assert [f.maker_order_id for f in fills(events)] == [2]
    check_invariants(ex)


def test_reduce_only_needs_an_opposite_position_and_is_capped_by_it():
    ex = funded_exchange()
    assert_rejected(ex, limit(2, BOB, SELL, btc(0.1), usd_btc(100_000), reduce_only=True), errors.ReduceOnlyError,
                    "reduce_only")
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(100_000)))
    ex.apply(limit(3, BOB, BUY, btc(0.1), usd_btc(100_000)))     # Bob long 0.1
    ex.apply(limit(4, CAROL, BUY, btc(0.5), usd_btc(100_000)))   # resting bid 0.5
    events = ex.apply(limit(5, BOB, SELL, btc(0.3), usd_btc(100_000), reduce_only=True,
                            time_in_force=TimeInForce.IOC))
    assert [f.size_base_quantums for f in fills(events)] == [btc(0.1)]
    assert finished(events, 4)[0].reason is CancelReason.REDUCE_ONLY_RESIZE
    assert "BTC-USD" not in ex.subaccount(BOB).positions
    check_invariants(ex)


def test_resting_reduce_only_order_is_canceled_when_the_position_closes():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(100_000)))
    ex.apply(limit(3, BOB, BUY, btc(0.1), usd_btc(100_000)))                        # Bob long 0.1
    ex.apply(limit(4, BOB, SELL, btc(0.1), usd_btc(105_000), reduce_only=True))      # 3: take-profit rests
    ex.apply(limit(5, CAROL, BUY, btc(0.1), usd_btc(100_000)))
    events = ex.apply(limit(6, BOB, SELL, btc(0.1), usd_btc(100_000)))              # closes elsewhere
    assert finished(events, 3)[0].reason is CancelReason.REDUCE_ONLY_RESIZE
    check_invariants(ex)


def test_client_ids_are_unique_per_subaccount_and_cancel_by_them():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, BUY, btc(0.1), usd_btc(99_000), client_id=7))
    ex.apply(limit(2, BOB, BUY, btc(0.1), usd_btc(99_000), client_id=7))  # other subaccount: fine
    assert_rejected(ex, limit(3, ALICE, BUY, btc(0.1), usd_btc(98_000), client_id=7),
                    errors.DuplicateClientIdError, "client_id")
    ex.apply(CancelOrder(4, ALICE, client_id=7))
    assert ex.order_status(1)[0] is OrderStatus.CANCELED
    ex.apply(limit(5, ALICE, BUY, btc(0.1), usd_btc(98_000), client_id=7))  # free again
    assert_rejected(ex, CancelOrder(6, ALICE, order_id=2), errors.UnknownOrderError, "order_id")  # Bob's
    assert_rejected(ex, CancelOrder(6, ALICE, order_id=1), errors.OrderNotOpenError, "order_id")
    assert_rejected(ex, CancelOrder(6, ALICE, order_id=99), errors.UnknownOrderError, "order_id")
    check_invariants(ex)


# --- conditional orders ------------------------------------------------------------------
def test_stop_loss_triggers_on_the_oracle_and_executes_as_market():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(100_000)))
    ex.apply(limit(3, BOB, BUY, btc(0.1), usd_btc(100_000)))  # Bob long
    ex.apply(PlaceOrder(4, BOB, "BTC-USD", SELL, btc(0.1), order_type=OrderType.MARKET,
                        time_in_force=TimeInForce.IOC, reduce_only=True, condition=ConditionType.STOP_LOSS,
                        trigger_price_subticks=usd_btc(95_000)))  # order 3
    ex.apply(limit(5, CAROL, BUY, btc(0.1), usd_btc(94_000)))
    assert ex.order_status(3)[0] is OrderStatus.UNTRIGGERED
    assert not [e for e in ex.apply(oracle(6, BTC_USD=usd_btc(95_001))) if isinstance(e, OrderTriggered)]
    events = ex.apply(oracle(7, BTC_USD=usd_btc(95_000)))  # inclusive: triggers at the trigger price
    assert [e.order_id for e in events if isinstance(e, OrderTriggered)] == [3]
    assert [(f.taker_order_id, f.price_subticks) for f in fills(events)] == [(3, usd_btc(94_000))]
    assert ex.order_status(3) == (OrderStatus.FILLED, btc(0.1), 0)
    assert "BTC-USD" not in ex.subaccount(BOB).positions
    check_invariants(ex)


def test_take_profit_limit_rests_after_trigger():
    ex = funded_exchange()
    ex.apply(PlaceOrder(2, BOB, "BTC-USD", BUY, btc(0.1), usd_btc(90_000), condition=ConditionType.TAKE_PROFIT,
                        trigger_price_subticks=usd_btc(91_000)))
    ex.apply(oracle(3, BTC_USD=usd_btc(90_500)))
    assert ex.order_status(1)[0] is OrderStatus.OPEN
    assert ex.market("BTC-USD").book.best_bid() == usd_btc(90_000)
    check_invariants(ex)


def test_triggered_order_that_fails_margin_is_canceled_not_the_oracle_update():
    ex = funded_exchange(usdc=1_000 * QUOTE)
    ex.apply(PlaceOrder(2, BOB, "BTC-USD", BUY, btc(1), usd_btc(101_000), condition=ConditionType.STOP_LOSS,
                        trigger_price_subticks=usd_btc(101_000)))  # $101k notional on $1k: 1% margin
    events = ex.apply(oracle(3, BTC_USD=usd_btc(101_000)))
    [done] = finished(events, 1)
    assert done.reason is CancelReason.TRIGGER_REJECTED and "margin" in done.detail
    assert ex.market("BTC-USD").oracle_price_subticks == usd_btc(101_000)
    check_invariants(ex)


def test_canceling_an_untriggered_order():
    ex = funded_exchange()
    ex.apply(PlaceOrder(2, BOB, "BTC-USD", BUY, btc(0.1), usd_btc(90_000), condition=ConditionType.TAKE_PROFIT,
                        trigger_price_subticks=usd_btc(91_000)))
    ex.apply(CancelOrder(3, BOB, order_id=1))
    assert ex.order_status(1)[0] is OrderStatus.CANCELED
    assert not ex.market("BTC-USD").untriggered
    check_invariants(ex)


# --- margin ------------------------------------------------------------------------------
def test_order_is_rejected_when_its_worst_case_fill_breaks_initial_margin():
    ex = funded_exchange(usdc=2_100 * QUOTE)
    # 1 BTC at $100k needs $2,000 initial margin plus the $50 taker fee: $2,100 is enough
    ex.apply(limit(2, ALICE, BUY, btc(1), usd_btc(100_000)))
    error = assert_rejected(ex, limit(3, BOB, BUY, btc(1.1), usd_btc(100_000)), errors.MarginError,
                            "size_base_quantums")
    assert error.result.value == "newly_undercollateralized"


def test_maker_that_fails_its_margin_check_at_fill_is_canceled_and_matching_goes_on():
    ex = funded_exchange(usdc=100_000 * QUOTE)
    ex.apply(Deposit(2, SubaccountId("erin"), 2_100 * QUOTE))
    ex.apply(limit(2, SubaccountId("erin"), SELL, btc(1), usd_btc(100_000)))          # order 1
    ex.apply(Withdraw(3, SubaccountId("erin"), 1_000 * QUOTE))  # orders reserve nothing: allowed
    ex.apply(limit(4, ALICE, SELL, btc(1), usd_btc(100_000)))                           # order 2
    events = ex.apply(limit(5, BOB, BUY, btc(1), usd_btc(100_000)))
    assert finished(events, 1)[0].reason is CancelReason.MAKER_UNDERCOLLATERALIZED
    assert [f.maker_order_id for f in fills(events)] == [2]
    check_invariants(ex)


def test_account_below_initial_margin_may_only_reduce_risk():
    ex = funded_exchange(usdc=3_000 * QUOTE)
    ex.apply(limit(2, ALICE, SELL, btc(1), usd_btc(100_000)))
    ex.apply(limit(3, BOB, BUY, btc(1), usd_btc(100_000)))
    ex.apply(oracle(4, BTC_USD=usd_btc(99_000)))  # Bob: NC $1,950, IMR $1,980: below initial
    assert not ex.risk(BOB).is_initial_collateralized()
    ex.apply(limit(5, CAROL, BUY, btc(1), usd_btc(99_000)))
    ex.apply(limit(5, CAROL, SELL, btc(1), usd_btc(99_100)))
    assert_rejected(ex, limit(6, BOB, BUY, btc(0.1), usd_btc(99_100)), errors.MarginError)
    assert_rejected(ex, Withdraw(6, BOB, 1), errors.WithdrawalExceedsFreeCollateralError)
    ex.apply(limit(6, BOB, SELL, btc(0.5), usd_btc(99_000)))  # reducing is allowed
    assert ex.subaccount(BOB).positions["BTC-USD"] == btc(0.5)
    check_invariants(ex)


# --- isolation -----------------------------------------------------------------------------
def test_isolated_subaccount_trades_only_its_market_and_its_loss_stays_there():
    ex = funded_exchange()
    bob_iso = SubaccountId("bob", 1)
    ex.apply(SetMarginMode(2, bob_iso, MarginMode.ISOLATED, "BTC-USD"))
    ex.apply(Transfer(2, BOB, bob_iso, 3_000 * QUOTE))
    assert_rejected(ex, PlaceOrder(3, bob_iso, "ETH-USD", BUY, 10**9, 3_000 * 10**6), errors.MarginModeError,
                    "market_id")
    ex.apply(limit(3, ALICE, SELL, btc(1), usd_btc(100_000)))
    ex.apply(limit(3, bob_iso, BUY, btc(1), usd_btc(100_000)))
    ex.apply(oracle(4, BTC_USD=usd_btc(98_000)))
    assert ex.risk(bob_iso).is_liquidatable()
    assert ex.risk(BOB).net_collateral == 97_000 * QUOTE  # the cross account is untouched
    assert_rejected(ex, SetMarginMode(5, bob_iso, MarginMode.CROSS), errors.MarginModeError, "margin_mode")
    check_invariants(ex)


def test_isolated_market_trades_only_in_an_isolated_subaccount():
    ex = funded_exchange()
    ex.apply(OracleUpdate(2, (OraclePrice("EIGEN-USD", (3_000_000_000,)),)))
    assert_rejected(ex, PlaceOrder(3, ALICE, "EIGEN-USD", BUY, 10**6, 3_000_000_000), errors.MarginModeError,
                    "market_id")


# --- oracle --------------------------------------------------------------------------------
def test_index_is_the_median_of_sources():
    ex = funded_exchange()
    ex.apply(OracleUpdate(2, (OraclePrice("BTC-USD", (usd_btc(100), usd_btc(300), usd_btc(101), usd_btc(99))),)))
    assert ex.market("BTC-USD").oracle_price_subticks == usd_btc(100) + usd_btc(1) // 2  # mean of 100 and 101


def test_stale_oracle_blocks_risk_increasing_orders_but_not_reductions():
    ex = funded_exchange()
    ex.apply(limit(2, ALICE, SELL, btc(0.1), usd_btc(100_000)))
    ex.apply(limit(2, BOB, BUY, btc(0.1), usd_btc(100_000)))
    stale = 1 + 60_001
    assert_rejected(ex, limit(stale, BOB, BUY, btc(0.1), usd_btc(99_000)), errors.StaleOracleError, "market_id")
    assert_rejected(ex, Withdraw(stale, BOB, QUOTE), errors.StaleOracleError, "market_id")
    ex.apply(limit(stale, BOB, SELL, btc(0.1), usd_btc(101_000)))  # reduces: allowed


# --- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("tx, error_type, field", [
    (PlaceOrder(5, ALICE, "NOPE-USD", BUY, btc(0.1), usd_btc(1)), errors.UnknownMarketError, "market_id"),
    (limit(5, ALICE, BUY, btc(0.1) + 1, usd_btc(100_000)), errors.OffStepError, "size_base_quantums"),
    (limit(5, ALICE, BUY, btc(0.1), usd_btc(100_000) + 1), errors.OffTickError, "price_subticks"),
    (limit(5, ALICE, BUY, 0, usd_btc(100_000)), errors.MalformedTxError, "size_base_quantums"),
    (limit(5, ALICE, BUY, btc(0.1), None), errors.MalformedTxError, "price_subticks"),
    (limit(5, ALICE, BUY, btc(0.1), -usd_btc(1)), errors.MalformedTxError, "price_subticks"),
    (limit(5, ALICE, "buy", btc(0.1), usd_btc(1)), errors.MalformedTxError, "side"),
    (limit(5, SubaccountId("zed"), BUY, btc(0.1), usd_btc(1)), errors.UnknownSubaccountError, "subaccount_id"),
    (limit(5, ALICE, BUY, btc(0.1), usd_btc(1), condition=ConditionType.STOP_LOSS), errors.MalformedTxError,
     "trigger_price_subticks"),
    (limit(5, ALICE, BUY, btc(100), usd_btc(100_000)), errors.MarginError, "size_base_quantums"),
    (Deposit(5, ALICE, 0), errors.MalformedTxError, "amount_quantums"),
    (Deposit(5, ALICE, 10, asset_id=3), errors.UnknownAssetError, "asset_id"),
    (Deposit(5, ("alice", 0), 10), errors.MalformedTxError, "subaccount_id"),
    (Withdraw(5, ALICE, 100_001 * QUOTE), errors.WithdrawalExceedsFreeCollateralError, "amount_quantums"),
    (CancelOrder(5, ALICE), errors.MalformedTxError, "order_id"),
    (OracleUpdate(5, (OraclePrice("BTC-USD", ()),)), errors.MalformedTxError, "prices.source_prices_subticks"),
    (OracleUpdate(5, (OraclePrice("BTC-USD", (0,)),)), errors.MalformedTxError,
     "prices[BTC-USD].source_prices_subticks"),
    (OracleUpdate(5, (OraclePrice("XYZ-USD", (1,)),)), errors.UnknownMarketError, "prices.market_id"),
    (SetMarginMode(5, ALICE, MarginMode.ISOLATED, "NOPE-USD"), errors.UnknownMarketError, "isolated_market_id"),
    (Deposit(0, ALICE, 10), errors.TimestampError, "ts_ms"),
], ids=[
    "unknown market", "size off the step grid", "price off the tick grid", "zero size", "limit order without price",
    "negative price", "side that is not a Side", "unknown subaccount", "condition without trigger price",
    "insufficient margin", "zero deposit", "unknown collateral asset", "subaccount id that is a plain tuple",
    "withdrawal above free collateral", "cancel naming no order", "oracle market without sources",
    "zero oracle price", "oracle price of unknown market", "isolated to an unknown market",
    "timestamp going backwards",
])
def test_bad_input_raises_a_typed_error_naming_the_field_and_changes_nothing(tx, error_type, field):
    ex = funded_exchange()
    ex.apply(limit(4, BOB, BUY, btc(0.1), usd_btc(99_000)))
    error = assert_rejected(ex, tx, error_type, field)
    assert isinstance(error, errors.PerpdexError) and error.code and str(error)
