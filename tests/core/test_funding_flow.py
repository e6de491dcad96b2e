"""Funding through transactions: premium observations from the book, FundingTick moving the index,
lazy settlement when a subaccount is touched, views that include it, zero-sum up to kept dust."""

from __future__ import annotations

from dataclasses import replace

import pytest

from perpdex.config.markets import load_markets
from perpdex.core.events import FundingPaid, FundingRateComputed
from perpdex.core.exchange import Exchange
from perpdex.core.handlers.funding_tick import FundingNotDueError
from perpdex.core.invariants import check_invariants
from perpdex.core.orders import Side, TimeInForce
from perpdex.core.tx import Deposit, FundingTick, PlaceOrder
from perpdex.core.units import QUOTE
from tests.fixtures import ALICE, BOB, CAROL, btc, oracle, usd_btc

HOUR_MS = 3_600_000


def rich_perp(markets=None) -> tuple[Exchange, int]:
    """Bob long and carol short 1 BTC at $100,000; alice bids $100,100 and asks $100,200 (the perp
    trades above the index), and the index is published every 4 s for one hour."""
    ex = Exchange(markets if markets is not None else load_markets())
    for who in (ALICE, BOB, CAROL):
        ex.apply(Deposit(0, who, 100_000 * QUOTE))
    ex.apply(oracle(0, BTC_USD=usd_btc(100_000)))
    ex.apply(PlaceOrder(0, CAROL, "BTC-USD", Side.SELL, btc(1), usd_btc(100_000)))
    ex.apply(PlaceOrder(0, BOB, "BTC-USD", Side.BUY, btc(1), usd_btc(100_000), time_in_force=TimeInForce.IOC))
    ex.apply(PlaceOrder(0, ALICE, "BTC-USD", Side.BUY, btc(1), usd_btc(100_100)))
    ex.apply(PlaceOrder(0, ALICE, "BTC-USD", Side.SELL, btc(1), usd_btc(100_200)))
    return ex, publish_index(ex, 0, HOUR_MS)


def publish_index(ex: Exchange, ts: int, duration_ms: int) -> int:
    """The index at $100,000 every 4 s (each crossing of the 4 s cadence observes the premium)."""
    end = ts + duration_ms
    while ts < end:
        ts += 4_000
        ex.apply(oracle(ts, BTC_USD=usd_btc(100_000)))
    return ts


def test_funding_tick_before_the_interval_ends_is_rejected_and_changes_nothing():
    ex = Exchange(load_markets())
    ex.apply(oracle(1, BTC_USD=usd_btc(100_000)))
    before = ex.digest()
    with pytest.raises(FundingNotDueError):
        ex.apply(FundingTick(1_000))
    assert ex.digest() == before


def test_premium_from_the_book_sets_the_rate_and_longs_pay_shorts_lazily():
    ex, ts = rich_perp()
    [first] = [e for e in ex.apply(FundingTick(ts)) if isinstance(e, FundingRateComputed)
               and e.market_id == "BTC-USD"]
    # the first hour is partial (observations from 4 s on): 59 of 60 samples, padded with a zero
    assert 0 < first.premium_ppm < 1_000
    ts = publish_index(ex, ts, HOUR_MS)
    [rate] = [e for e in ex.apply(FundingTick(ts)) if isinstance(e, FundingRateComputed)
              and e.market_id == "BTC-USD"]
    # impact bid ~$100,100 vs index $100,000: premium just under 0.1%. dYdX's impact price rounds the
    # base quantums it accumulates UP (memclob getImpactPriceSubticks), so the price is a hair below
    # $100,100 and the premium truncates to 999 ppm; rate = premium + 0 default funding.
    assert (rate.premium_ppm, rate.funding_rate_8h_ppm, rate.clamp_hit) == (999, 999, False)
    # index delta: 999 ppm x 1 h / 8 h x 10 quote quantums per base quantum ($100,000 / 1e10)
    # = 1,248.75, truncated toward zero = 1,248 (a 1 BTC long pays $12.48 for the hour)
    assert rate.funding_index_delta == 1_248
    index = ex.market("BTC-USD").funding_index
    assert index == first.funding_index_delta + 1_248
    owed = index * btc(1) // 10**6  # 1 BTC x index ppm, in quote quantums
    # nothing is settled yet, but every view includes it
    bob_usdc = ex.subaccount(BOB).usdc_quote_quantums
    assert ex.risk(BOB).net_collateral == bob_usdc + 100_000 * QUOTE - owed  # 1 BTC at the $100,000 index
    check_invariants(ex)
    paid = [e for e in ex.apply(Deposit(ts, BOB, 1)) if isinstance(e, FundingPaid)]
    assert [(e.paid_quote_quantums, e.settlement_ppm) for e in paid] == [(owed, -owed * 10**6)]
    assert ex.subaccount(BOB).usdc_quote_quantums == bob_usdc - owed + 1
    received = [e for e in ex.apply(Deposit(ts, CAROL, 1)) if isinstance(e, FundingPaid)]
    assert received[0].paid_quote_quantums == -owed  # carol, short, receives exactly what bob paid
    check_invariants(ex)


def test_settlement_rounds_against_the_trader_and_the_dust_is_kept():
    ex, ts = rich_perp()
    ex.apply(PlaceOrder(ts, CAROL, "BTC-USD", Side.SELL, btc(0.0003), usd_btc(100_100),
                        time_in_force=TimeInForce.IOC))  # alice now long 0.0003 BTC
    ex.apply(FundingTick(ts))
    # alice: 0.0003 BTC = 3,000,000 base quantums x 1,250 = 3.75e9 ppm -> pays 3,750 exactly; make it odd:
    ex.apply(oracle(ts + 4_000, BTC_USD=usd_btc(100_000)))
    for who in (ALICE, BOB, CAROL):
        ex.apply(Deposit(ts + 4_000, who, 1))
    assert ex.funding_dust_ppm >= 0
    check_invariants(ex)


@pytest.mark.parametrize("model", ["dydx", "binance", "hyperliquid", "continuous", "epoch_smoothed"])
def test_every_funding_model_runs_in_the_exchange_and_stays_zero_sum(model):
    overrides = {"binance": (("interval_ms", HOUR_MS),), "epoch_smoothed": (("window", 2),)}.get(model, ())
    markets = [replace(m, funding_model=model, funding_overrides=overrides) for m in load_markets()]
    ex, ts = rich_perp(markets)
    events = ex.apply(FundingTick(ts))
    rates = [e for e in events if isinstance(e, FundingRateComputed) and e.market_id == "BTC-USD"]
    assert rates and rates[0].funding_model == model
    assert rates[0].funding_rate_8h_ppm > 0  # the perp trades rich: longs pay
    for who in (ALICE, BOB, CAROL):
        ex.apply(Deposit(ts, who, 1))
    check_invariants(ex)


def test_unknown_funding_model_in_the_market_file_names_the_field(tmp_path):
    from perpdex.config.markets import parse_markets
    from perpdex.core.errors import MarketFileError
    text = (tmp_path / "m.toml")
    default = open(__import__("perpdex.config", fromlist=["x"]).__path__[0] + "/markets.toml").read()
    text.write_text(default.replace('oracle_staleness_ms = 60_000\n', 'oracle_staleness_ms = 60_000\nfunding_model = "nope"\n', 1))
    with pytest.raises(MarketFileError) as caught:
        parse_markets(text.read_text(), str(text))
    assert caught.value.field == "markets[BTC-USD].funding.model"


def test_predicted_funding_is_the_rate_so_far_and_writes_nothing():
    ex, ts = rich_perp()
    before = ex.digest()
    predicted = ex.predicted_funding("BTC-USD")
    assert predicted is not None and predicted.funding_rate_8h_ppm > 0
    assert ex.digest() == before
    [rate] = [e for e in ex.apply(FundingTick(ts)) if isinstance(e, FundingRateComputed) and e.market_id == "BTC-USD"]
    assert rate.funding_rate_8h_ppm == predicted.funding_rate_8h_ppm


def test_lagged_funding_sees_the_book_as_of_the_lag():
    """With a 30-minute lag the first hour's tick sees only its first half-hour of observations,
    so the padded mean is about half of the unlagged one."""
    lagged = [replace(m, funding_lag_ms=30 * 60_000) for m in load_markets()]
    now_ex, ts = rich_perp()
    lag_ex, _ = rich_perp(lagged)
    now = [e for e in now_ex.apply(FundingTick(ts)) if isinstance(e, FundingRateComputed) and e.market_id == "BTC-USD"]
    late = [e for e in lag_ex.apply(FundingTick(ts)) if isinstance(e, FundingRateComputed) and e.market_id == "BTC-USD"]
    assert 0 < late[0].premium_ppm < now[0].premium_ppm
    assert abs(late[0].premium_ppm - now[0].premium_ppm // 2) <= 20
    check_invariants(lag_ex)


def test_predicted_payment_per_position_in_the_account_view():
    ex, ts = rich_perp()
    ts = publish_index(ex, ts, 0)
    ex.apply(FundingTick(ts))  # close the partial first hour
    ts = publish_index(ex, ts, 3_600_000 - 4_000)
    predicted = ex.predicted_funding_payments(BOB)
    # the hour's samples at 999 ppm so far: a 1 BTC long would pay up to $12.48 if it closed now
    assert 12_000_000 < predicted["BTC-USD"] <= 12_480_000
    assert ex.predicted_funding_payments(CAROL)["BTC-USD"] == -predicted["BTC-USD"]


def test_oi_imbalance_funding_charges_the_crowded_side_against_the_pool():
    """GMX-style: with alice as the pool (owner prefix "alice"), bob's and carol's trades against her
    leave the traders net long, so longs pay; on the whole (always balanced) book the rate is zero."""
    from perpdex.core.state import SubaccountId
    pooled = [replace(m, funding_model="oi_imbalance", funding_overrides=(("pool_owner_prefix", "alice"),))
              for m in load_markets()]
    ex, ts = rich_perp(pooled)
    dave = SubaccountId("dave")
    ex.apply(Deposit(ts, dave, 100_000 * QUOTE))
    ex.apply(PlaceOrder(ts, dave, "BTC-USD", Side.BUY, btc(1), usd_btc(100_200), time_in_force=TimeInForce.IOC))
    ts = publish_index(ex, ts, HOUR_MS)  # traders: bob +1, carol -1, dave +1 -> long 2, short 1
    [rate] = [e for e in ex.apply(FundingTick(ts)) if isinstance(e, FundingRateComputed) and e.market_id == "BTC-USD"]
    assert rate.funding_model == "oi_imbalance" and rate.funding_rate_8h_ppm > 0
    balanced = [replace(m, funding_model="oi_imbalance") for m in load_markets()]
    ex2, ts2 = rich_perp(balanced)
    ts2 = publish_index(ex2, ts2, HOUR_MS)
    [flat] = [e for e in ex2.apply(FundingTick(ts2)) if isinstance(e, FundingRateComputed) and e.market_id == "BTC-USD"]
    assert flat.funding_rate_8h_ppm == 0
    check_invariants(ex)
