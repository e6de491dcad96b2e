"""Tests of the vectorized margin screen: it never misses an account the exact integer check
flags (full recomputes and one-market moves), confirms exactly, and reads an Exchange's state."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perpdex.config.markets import load_markets
from perpdex.core.exchange import Exchange
from perpdex.core.margin import account_risk, initial_margin_ppm_at
from perpdex.core.orders import Side
from perpdex.core.params import LiquidityTier, MarketParams
from perpdex.core.screen import MarginScreen, tolerance_quote_quantums
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, OraclePrice, OracleUpdate, PlaceOrder
from perpdex.core.units import QUOTE

SHIPPED = {params.market_id: params for params in load_markets()}
BTC = SHIPPED["BTC-USD"]
BTC_UNIT = 10**10  # base quantums in 1 BTC (atomic resolution -10)
BTC_DOLLAR = 100_000  # subticks in $1 of BTC-USD
ETH_DOLLAR = 1_000_000  # subticks in $1 of ETH-USD (atomic resolution -9)
ALICE, BOB, CAROL = SubaccountId("alice"), SubaccountId("bob"), SubaccountId("carol")


def _tier(name: str, initial_margin_ppm: int, maintenance_fraction_ppm: int) -> LiquidityTier:
    return LiquidityTier(tier_id=90, name=name, initial_margin_ppm=initial_margin_ppm,
                         maintenance_fraction_ppm=maintenance_fraction_ppm, impact_notional_quote_quantums=QUOTE)


# The shipped markets plus odd ones: ceilings that rarely divide, 100%/100%, no maintenance at all,
# quote = base x subticks (qce 0) and a fine qce of -12.
POOL: list[MarketParams] = [*SHIPPED.values(),
                            replace(BTC, market_id="ODD-USD", liquidity_tier=_tier("odd", 333_333, 777_777)),
                            replace(BTC, market_id="FULL-USD", liquidity_tier=_tier("full", 1_000_000, 1_000_000)),
                            replace(BTC, market_id="FREE-USD", liquidity_tier=_tier("free", 50_000, 0)),
                            replace(BTC, market_id="UNIT-USD", quantum_conversion_exponent=0),
                            replace(BTC, market_id="FINE-USD", quantum_conversion_exponent=-12)]


class _Market:
    """A priced market for the independent exact check (margin.PricedMarket)."""

    def __init__(self, params: MarketParams, price_subticks: int, open_interest_base_quantums: int) -> None:
        self.params = params
        self.oracle_price_subticks = price_subticks
        self.open_interest_base_quantums = open_interest_base_quantums
        self.quantum_conversion_divisor = 10 ** -params.quantum_conversion_exponent
        self.initial_margin_ppm = initial_margin_ppm_at(params.liquidity_tier, open_interest_base_quantums,
                                                        price_subticks, self.quantum_conversion_divisor)


def exact_liquidatable(usdc, positions, markets, prices, open_interest=None) -> set[int]:
    """Rows `margin.account_risk` calls liquidatable, computed without the screen."""
    open_interest = open_interest or [0] * len(markets)
    priced = {params.market_id: _Market(params, price, oi)
              for params, price, oi in zip(markets, prices, open_interest)}
    flagged = set()
    for row, (balance, sizes) in enumerate(zip(usdc, positions)):
        held = {params.market_id: int(size) for params, size in zip(markets, sizes) if size}
        if account_risk(int(balance), held, priced).is_liquidatable():
            flagged.add(row)
    return flagged


def positions_risk_at(sizes, markets, prices):
    priced = {params.market_id: _Market(params, price, 0) for params, price in zip(markets, prices)}
    held = {params.market_id: int(size) for params, size in zip(markets, sizes) if size}
    return account_risk(0, held, priced)


# --- strategies ---------------------------------------------------------------------------
sizes = st.one_of(
    st.just(0), st.just(0),
    st.integers(-1_000, 1_000),  # notional truncates to a few quanta or to zero
    st.integers(-10**13, 10**13),  # up to 1,000 BTC
    st.integers(-2**62, 2**62),  # past 2**53: inexact as floats
)
prices = st.one_of(st.integers(1, 10**11), st.integers(10**11, 10**15), st.integers(0, 10))


@st.composite
def population(draw, moves_count: int = 0):
    """(markets, usdc, positions, initial prices, moves, final prices, open interest); most
    accounts sit within a few quanta of maintenance at the final prices, on either side."""
    markets = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=4, unique_by=lambda p: p.market_id))
    m = len(markets)
    n = draw(st.integers(1, 10))
    positions = [[draw(sizes) for _ in range(m)] for _ in range(n)]
    initial = [draw(prices) for _ in range(m)]
    moves = draw(st.lists(st.tuples(st.integers(0, m - 1), prices), min_size=moves_count, max_size=moves_count))
    final = list(initial)
    for j, price in moves:
        final[j] = price
    if not moves_count:
        final = [draw(prices) for _ in range(m)]
    usdc = []
    for row_sizes in positions:
        risk = positions_risk_at(row_sizes, markets, final)
        balance = risk.maintenance_requirement - risk.net_collateral + draw(st.integers(-4, 4))
        if draw(st.integers(0, 4)) == 0 or abs(balance) > 2**62:
            balance = draw(st.integers(-10**15, 10**15))
        usdc.append(balance)
    open_interest = [draw(st.integers(0, 10**15)) for _ in range(m)]
    return markets, usdc, positions, initial, moves, final, open_interest


def build(markets, usdc, positions, initial, open_interest) -> MarginScreen:
    return MarginScreen(np.array(usdc, dtype=np.int64), np.array(positions, dtype=np.int64), markets, initial,
                        open_interest)


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- properties ---------------------------------------------------------------------------
@FAST
@given(population())
def test_full_recompute_candidates_include_every_exactly_liquidatable_account(case):
    markets, usdc, positions, initial, _, final, oi = case
    screen = build(markets, usdc, positions, initial, oi)
    assert exact_liquidatable(usdc, positions, markets, initial, oi) <= set(screen.screen_all(initial).tolist())
    exact = exact_liquidatable(usdc, positions, markets, final, oi)
    candidates = screen.screen_all(final)
    assert exact <= set(candidates.tolist())
    assert set(screen.confirm(candidates).tolist()) == exact
    assert set(screen.confirm(range(len(usdc))).tolist()) == exact
    assert set(screen.liquidatable_after_all(final).tolist()) == exact


@FAST
@given(population(moves_count=6))
def test_one_market_moves_never_miss_and_end_where_a_full_recompute_does(case):
    markets, usdc, positions, initial, moves, final, oi = case
    screen = build(markets, usdc, positions, initial, oi)
    current = list(initial)
    for j, price in moves:
        current[j] = price
        candidates = screen.update_market(j, price)
        assert exact_liquidatable(usdc, positions, markets, current, oi) <= set(candidates.tolist())
    assert current == final and list(screen.prices_subticks) == final
    exact = exact_liquidatable(usdc, positions, markets, final, oi)
    incremental = screen.confirm(screen.update_market(0, final[0]))  # no move: same candidates
    fresh = build(markets, usdc, positions, final, oi)
    assert set(incremental.tolist()) == exact
    assert set(fresh.liquidatable_after_all(final).tolist()) == exact
    # Each of the running floats and a fresh full recompute is within the tolerance of the real
    # NC and MMR, so they are within twice the tolerance of each other.
    tolerance = screen.tolerance_quote_quantums
    assert np.all(np.abs(screen.net_collateral - fresh.net_collateral) <= 2 * tolerance)
    assert np.all(np.abs(screen.maintenance - fresh.maintenance) <= 2 * tolerance)


@FAST
@given(population(moves_count=4))
def test_market_ids_and_column_indexes_move_the_same_market(case):
    markets, usdc, positions, initial, moves, _, oi = case
    by_index = build(markets, usdc, positions, initial, oi)
    by_id = build(markets, usdc, positions, initial, oi)
    for j, price in moves:
        assert np.array_equal(by_index.liquidatable_after_move(j, price),
                              by_id.liquidatable_after_move(markets[j].market_id, price))


# --- named cases --------------------------------------------------------------------------
ONE_BTC_AT_100K = 100_000 * BTC_DOLLAR  # $100,000 in subticks


def _single_btc(usdc: int, size: int, price: int) -> MarginScreen:
    return MarginScreen(np.array([usdc]), np.array([[size]]), [BTC], [price])


@pytest.mark.parametrize(("offset_quote_quantums", "liquidatable"), [(0, False), (-1, True), (1, False)],
                         ids=["NC equal to MMR is safe", "NC one quantum under MMR is liquidatable",
                              "NC one quantum over MMR is safe"])
def test_maintenance_boundary_is_exact(offset_quote_quantums, liquidatable):
    size, price = BTC_UNIT, ONE_BTC_AT_100K  # 1 BTC at $100,000: NC of positions $100,000
    usdc = 1_200 * QUOTE - 100_000 * QUOTE + offset_quote_quantums  # MMR = 1.2% x $100,000 = $1,200
    screen = _single_btc(usdc, size, price)
    assert screen.exact_risk(0).maintenance_requirement == 1_200 * QUOTE
    assert 0 in screen.screen_all([price])  # within the tolerance either way
    assert screen.confirm([0]).tolist() == ([0] if liquidatable else [])


def test_rounding_the_float_margins_miss_is_caught_by_the_tolerance():
    # (10**10 + 1) x (10**10 - 1) = 10**20 - 1: a notional of 99_999_999_999.999999999 quanta
    size = BTC_UNIT + 1  # 1 BTC + 1 base quantum
    price = ONE_BTC_AT_100K - 1  # $100,000 less one subtick
    notional = (size * price) // 10**9  # 99_999_999_999 (truncated from 99_999_999_999.999999999)
    maintenance = -(-(-(-notional * 20_000) // 10**6) * 600_000 // 10**6)  # ceil(ceil(N x 2%) x 60%)
    usdc = maintenance - notional - 1  # NC = MMR - 1: liquidatable
    screen = _single_btc(usdc, size, price)
    assert screen.exact_risk(0).is_liquidatable()
    # The floats alone say safe: nc = NC + 0.999999999 and mm < MMR by the ceilings.
    assert screen.net_collateral[0] >= screen.maintenance[0]
    assert screen.screen_all([price]).tolist() == [0]
    assert screen.confirm([0]).tolist() == [0]


def test_accounts_without_positions_are_never_liquidatable():
    screen = MarginScreen(np.array([-5 * QUOTE, 0, 7]), np.zeros((3, 1), dtype=np.int64), [BTC], [ONE_BTC_AT_100K])
    assert screen.screen_all([ONE_BTC_AT_100K]).size == 0
    assert screen.confirm([0, 1, 2]).size == 0


def test_positions_in_a_market_without_maintenance_are_never_liquidatable():
    free = next(params for params in POOL if params.market_id == "FREE-USD")
    screen = MarginScreen(np.array([-10**12]), np.array([[BTC_UNIT]]), [free], [ONE_BTC_AT_100K])
    assert screen.update_market("FREE-USD", 1).size == 0
    assert screen.confirm([0]).size == 0


def test_tolerance_is_three_quanta_per_market_with_nothing_to_round():
    from fractions import Fraction
    # 3 x 4 markets, plus the comparison's own rounding, rounded up to the next whole quantum
    assert tolerance_quote_quantums(4, 0, 0, Fraction(0), Fraction(0)) == 13.0
    screen = _single_btc(10**15, BTC_UNIT, ONE_BTC_AT_100K)
    before = screen.tolerance_quote_quantums
    for step in range(1, 200):
        screen.update_market(0, ONE_BTC_AT_100K + step % 2)
    assert screen.updates_since_full == 199
    assert screen.tolerance_quote_quantums >= before
    screen.screen_all([ONE_BTC_AT_100K])
    assert screen.updates_since_full == 0 and screen.tolerance_quote_quantums == before


@pytest.mark.parametrize(("usdc", "positions", "error"), [
    (np.array([1.5]), np.array([[1]]), TypeError),
    (np.array([1]), np.array([[1.0]]), TypeError),
    (np.array([1, 2]), np.array([[1]]), ValueError),
    (np.array([1]), np.array([[np.iinfo(np.int64).min]]), ValueError),
], ids=["float balances are refused", "float sizes are refused", "one size row per balance",
        "sizes must negate within int64"])
def test_bad_arrays_are_refused(usdc, positions, error):
    with pytest.raises(error):
        MarginScreen(usdc, positions, [BTC], [ONE_BTC_AT_100K])


def test_prices_must_be_whole_subticks():
    screen = _single_btc(0, BTC_UNIT, ONE_BTC_AT_100K)
    with pytest.raises(ValueError):
        screen.screen_all([1.5])
    with pytest.raises(ValueError):
        screen.update_market(0, -1)
    with pytest.raises(ValueError):
        screen.screen_all([1, 2])


# --- from an Exchange ---------------------------------------------------------------------
def _traded_exchange() -> Exchange:
    """Alice shorts 1 BTC to Bob at $100,000. Bob put up $2,500 and paid the $50 taker fee:
    NC = $2,450 against MMR 1.2% x price, so he is liquidatable below about $98,735."""
    ex = Exchange(load_markets())
    ex.apply(Deposit(1, ALICE, 200_000 * QUOTE))
    ex.apply(Deposit(1, BOB, 2_500 * QUOTE))
    ex.apply(Deposit(1, CAROL, 1_000 * QUOTE))
    ex.apply(OracleUpdate(2, (OraclePrice("BTC-USD", (100_000 * BTC_DOLLAR,)),
                              OraclePrice("ETH-USD", (3_000 * ETH_DOLLAR,)))))
    ex.apply(PlaceOrder(3, ALICE, "BTC-USD", Side.SELL, BTC_UNIT, 100_000 * BTC_DOLLAR))
    ex.apply(PlaceOrder(4, BOB, "BTC-USD", Side.BUY, BTC_UNIT, 100_000 * BTC_DOLLAR))
    assert ex.subaccounts[BOB].positions == {"BTC-USD": BTC_UNIT}
    return ex


def _exchange_liquidatable(ex: Exchange) -> set[SubaccountId]:
    return {sid for sid, sub in ex.subaccounts.items()
            if account_risk(sub.usdc_quote_quantums, sub.positions, ex.markets).is_liquidatable()}


def test_from_exchange_reads_rows_columns_prices_and_open_interest():
    ex = _traded_exchange()
    screen = MarginScreen.from_exchange(ex)
    assert screen.subaccount_ids == tuple(ex.subaccounts)
    assert screen.market_ids == tuple(ex.markets)
    assert screen.prices_subticks[0] == 100_000 * BTC_DOLLAR
    for row, sid in enumerate(screen.subaccount_ids):
        sub = ex.subaccounts[sid]
        assert screen.exact_risk(row) == account_risk(sub.usdc_quote_quantums, sub.positions, ex.markets)
    assert screen.confirm(screen.screen_all(screen.prices_subticks)).size == 0


@pytest.mark.parametrize(("btc_usd", "expected"), [(98_000, {BOB}), (99_000, set()), (101_000, set())],
                         ids=["BTC at $98,000 puts Bob under maintenance", "BTC at $99,000 leaves him above it",
                              "a rise hurts only Alice, who has $200,000"])
def test_from_exchange_finds_what_the_exchange_itself_would(btc_usd, expected):
    ex = _traded_exchange()
    screen = MarginScreen.from_exchange(ex)
    moved = screen.liquidatable_after_move("BTC-USD", btc_usd * BTC_DOLLAR)
    assert {screen.subaccount_ids[row] for row in moved} == expected
    ex.apply(OracleUpdate(5, (OraclePrice("BTC-USD", (btc_usd * BTC_DOLLAR,)),)))
    assert _exchange_liquidatable(ex) == expected
    after = MarginScreen.from_exchange(ex)
    rows = after.liquidatable_after_all(after.prices_subticks)
    assert {after.subaccount_ids[row] for row in rows} == expected
