"""Finalized funding: observations wait for `FundingFinalize`; an interval closes once all its
observations are proven, with the rate soft funding computes from them; bad input changes nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from perpdex.config.markets import load_markets, parse_markets
from perpdex.core.errors import MalformedTxError, ParamsError
from perpdex.core.events import FundingRateComputed
from perpdex.core.exchange import Exchange
from perpdex.core.handlers.funding_finalize import FinalizesTheFutureError
from perpdex.core.handlers.funding_tick import FundingNotDueError
from perpdex.core.invariants import check_invariants
from perpdex.core.orders import Side, TimeInForce
from perpdex.core.params import FundingFinality
from perpdex.core.tx import FundingFinalize, FundingTick, PlaceOrder
from perpdex.store.codec import DEFAULT_CODEC
from tests.core.test_funding_flow import HOUR_MS, publish_index, rich_perp
from tests.fixtures import ALICE, BOB, CAROL, btc, usd_btc

HALF_HOUR_MS = HOUR_MS // 2


def finalized_markets():
    return [replace(m, funding_finality=FundingFinality.FINALIZED) for m in load_markets()]


def btc_rates(events) -> list[FundingRateComputed]:
    return [e for e in events if isinstance(e, FundingRateComputed) and e.market_id == "BTC-USD"]


def test_observations_wait_and_a_funding_tick_closes_nothing():
    ex, ts = rich_perp(finalized_markets())
    btc_market = ex.markets["BTC-USD"]
    # the index every 4 s for an hour: 900 observations held, none fed to the model yet
    assert len(btc_market.funding_observations) == 900
    assert btc_market.funding_state.votes_ppm == () and btc_market.funding_state.vote_rounds == 0
    before = ex.digest()
    with pytest.raises(FundingNotDueError):
        ex.apply(FundingTick(ts))
    assert ex.digest() == before


def test_finalizing_through_the_tick_time_gives_exactly_the_soft_state():
    """Same observations, same interval [0, 1 h): the rate, the index and the model state equal soft
    funding's; the observation stamped at 1 h opens the next interval in both."""
    soft, ts = rich_perp()
    final, _ = rich_perp(finalized_markets())
    [soft_rate] = btc_rates(soft.apply(FundingTick(ts)))
    [final_rate] = btc_rates(final.apply(FundingFinalize(ts, ts)))
    assert final_rate == soft_rate and 0 < final_rate.premium_ppm < 1_000
    assert final.markets["BTC-USD"].funding_index == soft.markets["BTC-USD"].funding_index
    assert not final.markets["BTC-USD"].funding_observations
    assert final.digest() == soft.digest()
    check_invariants(final)


def test_half_proven_hour_sees_what_a_half_hour_lag_sees_and_moves_no_index():
    lagged = [replace(m, funding_lag_ms=HALF_HOUR_MS) for m in load_markets()]
    lag, ts = rich_perp(lagged)
    final, _ = rich_perp(finalized_markets())
    [lag_rate] = btc_rates(lag.apply(FundingTick(ts)))
    assert final.apply(FundingFinalize(ts, HALF_HOUR_MS)) == []  # the hour is not proven: nothing closes
    market = final.markets["BTC-USD"]
    assert market.funding_index == 0 and market.funding_interval_start_ms == 0
    assert len(market.funding_observations) == 450  # 30 min + 4 s .. 60 min
    assert final.predicted_funding("BTC-USD").premium_ppm == lag_rate.premium_ppm


def test_a_position_closed_before_the_proof_pays_no_funding():
    """Soft: bob's long pays the hour's funding at the tick. Finalized: bob sells his BTC to alice
    before the batch is proven, so alice, long when the index moves, pays it instead."""
    soft, ts = rich_perp()
    final, _ = rich_perp(finalized_markets())
    soft.apply(FundingTick(ts))
    sell = PlaceOrder(ts, BOB, "BTC-USD", Side.SELL, btc(1), usd_btc(100_100), time_in_force=TimeInForce.IOC)
    soft.apply(sell)
    final.apply(sell)
    [rate] = btc_rates(final.apply(FundingFinalize(ts + 1, ts)))
    # 1 BTC at $100,000 x the hour's rate: what a long pays, in quote quantums (rounded against the payer)
    owed = -(-rate.funding_index_delta * btc(1) // 1_000_000)
    assert owed > 0
    paid_soft = {who: soft.risk(who).net_collateral for who in (ALICE, BOB, CAROL)}
    paid_final = {who: final.risk(who).net_collateral for who in (ALICE, BOB, CAROL)}
    assert paid_final[BOB] - paid_soft[BOB] == owed  # bob kept it
    assert paid_soft[ALICE] - paid_final[ALICE] == owed  # alice paid it
    assert paid_final[CAROL] == paid_soft[CAROL]  # the short receives it either way
    check_invariants(final)


def test_one_finalize_closes_every_proven_interval_in_order():
    final, ts = rich_perp(finalized_markets())
    ts = publish_index(final, ts, 2 * HOUR_MS)
    rates = btc_rates(final.apply(FundingFinalize(ts, ts)))
    assert len(rates) == 3  # [0, 1 h), [1 h, 2 h), [2 h, 3 h)
    assert rates[-1].funding_index_after == final.markets["BTC-USD"].funding_index
    assert sum(r.funding_index_delta for r in rates) == final.markets["BTC-USD"].funding_index
    assert final.markets["BTC-USD"].funding_interval_start_ms == 3 * HOUR_MS


@pytest.mark.parametrize("tx, error", [
    (FundingFinalize(10, 11), FinalizesTheFutureError),
    (FundingFinalize(10, -1), MalformedTxError),
], ids=["finalizing a time after the transaction is rejected", "a negative time is rejected"])
def test_bad_finalize_is_rejected_and_changes_nothing(tx, error):
    ex = Exchange(finalized_markets())
    before = ex.digest()
    with pytest.raises(error) as caught:
        ex.apply(tx)
    assert caught.value.field == "up_to_ms"
    assert ex.digest() == before and ex.tx_count == 0


def test_finalize_on_soft_markets_only_moves_the_clock():
    ex, ts = rich_perp()
    state = ex.markets["BTC-USD"].funding_state
    assert ex.apply(FundingFinalize(ts, ts)) == []
    assert ex.markets["BTC-USD"].funding_state is state and ex.last_ts_ms == ts


def test_a_lag_and_finalized_funding_do_not_mix():
    with pytest.raises(ParamsError) as caught:
        replace(load_markets()[0], funding_finality=FundingFinality.FINALIZED, funding_lag_ms=1_000).validate()
    assert caught.value.field.endswith("funding_lag_ms")


def test_the_market_file_reads_funding_finality():
    text = """
[liquidity_tiers.large]
tier_id = 0
initial_margin_ppm = 20000
maintenance_fraction_ppm = 600000
impact_notional_quote_quantums = 10000000000

[[markets]]
market_id = "BTC-USD"
atomic_resolution = -10
quantum_conversion_exponent = -9
step_base_quantums = 1000000
subticks_per_tick = 100000
min_order_base_quantums = 1000000
liquidity_tier = "large"
maker_fee_ppm = -110
taker_fee_ppm = 500
oracle_staleness_ms = 60000
funding_finality = "finalized"
"""
    [market] = parse_markets(text)
    assert market.funding_finality is FundingFinality.FINALIZED
    with pytest.raises(Exception) as caught:
        parse_markets(text.replace('"finalized"', '"eventually"'))
    assert "funding_finality" in str(caught.value)


@pytest.mark.parametrize("tx", [FundingFinalize(0, 0), FundingFinalize(3_600_000, 1_234_567)],
                         ids=["at genesis", "an hour in"])
def test_funding_finalize_round_trips_through_the_store_codec(tx):
    encoded = DEFAULT_CODEC.encode(tx)
    assert (encoded.type_name, encoded.version) == ("FundingFinalize", 1)
    assert encoded.body == f"[{tx.ts_ms},{tx.up_to_ms}]"
    decoded = DEFAULT_CODEC.decode(encoded.type_name, encoded.version, encoded.body)
    assert decoded == tx and type(decoded) is FundingFinalize
    assert DEFAULT_CODEC.spec("FundingFinalize").fingerprint == "FundingFinalize(ts_ms:int,up_to_ms:int)"
