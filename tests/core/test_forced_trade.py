"""ForcedTrade (StarkEx perpetual forced trade): settled between its two parties at the agreed price with no book
and no fee, under the same margin, margin-mode and oracle rules as an order; every bad input a typed error that
changes nothing."""

from __future__ import annotations

import pytest

from perpdex.core import errors
from perpdex.core.events import ForcedTradeExecuted, OrderFinished
from perpdex.core.invariants import check_invariants
from perpdex.core.orders import CancelReason, Side
from perpdex.core.state import MarginMode, SubaccountId
from perpdex.core.tx import Deposit, ForcedTrade, PlaceOrder, SetMarginMode
from perpdex.core.units import QUOTE
from perpdex.store.codec import DEFAULT_CODEC
from tests.core.test_exchange import assert_rejected
from tests.fixtures import ALICE, BOB, CAROL, btc, funded_exchange, oracle, usd_btc


def trade(ts, buyer, seller, size, price, market="BTC-USD") -> ForcedTrade:
    return ForcedTrade(ts, buyer, seller, market, size, price)


def test_a_forced_trade_moves_positions_and_collateral_between_the_two_parties_only():
    ex = funded_exchange()
    ex.apply(PlaceOrder(2, CAROL, "BTC-USD", Side.SELL, btc(1), usd_btc(90_000)))  # a better ask is not taken
    fees_before = ex.fees_collected_quote_quantums
    events = ex.apply(trade(3, ALICE, BOB, btc(0.5), usd_btc(101_000)))
    assert events == [ForcedTradeExecuted(3, "BTC-USD", ALICE, BOB, btc(0.5), usd_btc(101_000), 50_500 * QUOTE)]
    assert ex.subaccount(ALICE).positions == {"BTC-USD": btc(0.5)}
    assert ex.subaccount(BOB).positions == {"BTC-USD": -btc(0.5)}
    assert ex.subaccount(ALICE).usdc_quote_quantums == 100_000 * QUOTE - 50_500 * QUOTE
    assert ex.subaccount(BOB).usdc_quote_quantums == 100_000 * QUOTE + 50_500 * QUOTE
    assert ex.markets["BTC-USD"].open_interest_base_quantums == btc(0.5)
    assert ex.fees_collected_quote_quantums == fees_before and not ex.subaccount(CAROL).positions
    check_invariants(ex)
    ex.apply(trade(4, BOB, ALICE, btc(0.5), usd_btc(100_000)))  # closing it brings open interest back to 0
    assert ex.markets["BTC-USD"].open_interest_base_quantums == 0
    assert not ex.subaccount(ALICE).positions and not ex.subaccount(BOB).positions
    check_invariants(ex)


def test_a_party_that_would_miss_initial_margin_rejects_the_trade_and_names_itself():
    ex = funded_exchange(usdc=1_000 * QUOTE)
    error = assert_rejected(ex, trade(2, ALICE, BOB, btc(1), usd_btc(100_000)), errors.MarginError, "buyer")
    assert error.value == str(ALICE)
    ex.apply(Deposit(2, ALICE, 1_000_000 * QUOTE))
    assert_rejected(ex, trade(3, ALICE, BOB, btc(1), usd_btc(100_000)), errors.MarginError, "seller")


@pytest.mark.parametrize("tx, error_type, field", [
    (trade(2, ALICE, BOB, btc(0.1), usd_btc(100_000), market="NOPE-USD"), errors.UnknownMarketError, "market_id"),
    (trade(2, ALICE, ALICE, btc(0.1), usd_btc(100_000)), errors.MalformedTxError, "seller"),
    (trade(2, ALICE, BOB, 0, usd_btc(100_000)), errors.MalformedTxError, "size_base_quantums"),
    (trade(2, ALICE, BOB, btc(0.1) + 1, usd_btc(100_000)), errors.OffStepError, "size_base_quantums"),
    (trade(2, ALICE, BOB, btc(0.1), -1), errors.MalformedTxError, "price_subticks"),
    (trade(2, ALICE, BOB, btc(0.1), usd_btc(100_000) + 1), errors.OffTickError, "price_subticks"),
    (trade(2, ALICE, SubaccountId("nobody"), btc(0.1), usd_btc(100_000)), errors.UnknownSubaccountError, "seller"),
], ids=["unknown market", "same subaccount", "zero size", "off step", "negative price", "off tick",
        "unknown seller"])
def test_bad_forced_trades_are_typed_errors_that_change_nothing(tx, error_type, field):
    assert_rejected(funded_exchange(), tx, error_type, field)


def test_a_stale_oracle_blocks_a_trade_that_adds_risk_but_not_one_that_reduces_both_sides():
    ex = funded_exchange()
    ex.apply(trade(2, ALICE, BOB, btc(0.5), usd_btc(100_000)))
    stale_ms = 2 + ex.markets["BTC-USD"].params.oracle_staleness_ms + 1
    assert_rejected(ex, trade(stale_ms, ALICE, BOB, btc(0.1), usd_btc(100_000)), errors.StaleOracleError,
                    "market_id")
    ex.apply(trade(stale_ms, BOB, ALICE, btc(0.1), usd_btc(100_000)))  # both reduce
    assert ex.subaccount(ALICE).positions == {"BTC-USD": btc(0.4)}


def test_an_isolated_subaccount_trades_only_its_market():
    ex = funded_exchange()
    isolated = SubaccountId("alice", 1)
    ex.apply(Deposit(2, isolated, 10_000 * QUOTE))
    ex.apply(SetMarginMode(2, isolated, MarginMode.ISOLATED, "ETH-USD"))
    assert_rejected(ex, trade(3, isolated, BOB, btc(0.01), usd_btc(100_000)), errors.MarginModeError, None)


def test_a_position_closed_by_a_forced_trade_cancels_its_reduce_only_orders():
    ex = funded_exchange()
    ex.apply(trade(2, ALICE, BOB, btc(0.5), usd_btc(100_000)))
    ex.apply(PlaceOrder(3, ALICE, "BTC-USD", Side.SELL, btc(0.5), usd_btc(120_000), reduce_only=True))
    events = ex.apply(trade(4, BOB, ALICE, btc(0.5), usd_btc(100_000)))
    finished = [e for e in events if isinstance(e, OrderFinished)]
    assert [e.reason for e in finished] == [CancelReason.REDUCE_ONLY_RESIZE]
    assert not ex.orders_by_subaccount.get(ALICE)
    check_invariants(ex)


def test_forced_trades_round_trip_through_the_store_codec_and_replay():
    tx = trade(2, ALICE, BOB, btc(0.5), usd_btc(100_000))
    encoded = DEFAULT_CODEC.encode(tx)
    assert DEFAULT_CODEC.decode(encoded.type_name, encoded.version, encoded.body) == tx
    one, two = funded_exchange(), funded_exchange()
    for ex in (one, two):
        ex.apply(tx)
        ex.apply(oracle(3, BTC_USD=usd_btc(90_000)))
    assert one.digest() == two.digest()
