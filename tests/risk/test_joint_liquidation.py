"""Joint liquidation Monte Carlo: its margin mirror agrees with the core at the exact liquidation price,
first passage matches the closed form for one asset, funding and spikes are charged, runs reproduce."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from perpdex.risk.joint_liquidation import (
    NO_SPIKES,
    AccountSet,
    FundingSpikeModel,
    LiquidityModel,
    MarketModel,
    SimulationConfig,
    account_set,
    joint_liquidation,
    maintenance_by_asset,
    margin_excess,
    simulate,
    summarize,
)
from perpdex.risk.liquidation_prices import liquidation_prices
from perpdex.risk.portfolio import load_portfolio

ONE_ASSET = MarketModel(("X",), (0.01,), ((1.0,),), None, (0.0,))


def single_long(equity: float, notional: float = 100_000.0) -> AccountSet:
    return AccountSet(np.array([[notional]]), np.array([equity]), ("isolated:0",), ("all isolated",))


def test_the_float_mirror_agrees_with_the_core_at_the_exact_liquidation_prices():
    portfolio = load_portfolio()
    assets = tuple(portfolio.assets())
    accounts = account_set(portfolio, assets)
    maintenance = maintenance_by_asset(portfolio, assets)
    marks = {e.asset: e.mark_price for e in portfolio.exposures()}
    report = liquidation_prices(portfolio)
    for price in report.isolated + report.cross:
        column = accounts.labels.index(price.account)  # the "as given" columns come first
        relative = np.ones(len(assets))
        relative[assets.index(price.market_id.split("-")[0])] = price.liquidation_price / marks[
            price.market_id.split("-")[0]]
        # NC - MMR at the core's exact liquidation price: zero up to rounding (a few cents)
        assert abs(margin_excess(accounts, maintenance, relative)[column]) < 0.05


def first_passage_probability(barrier: float, sigma: float, hours: int) -> float:
    """P(min of a discretely monitored random walk with drift -sigma^2/2 per hour <= barrier), by the
    continuous formula (Brownian motion with drift) with Broadie-Glasserman-Kou's continuity correction:
    barrier shifted by -0.5826 sigma sqrt(dt)."""
    b = barrier - 0.5826 * sigma
    mu = -0.5 * sigma**2
    scale = sigma * math.sqrt(hours)
    return float(stats.norm.cdf((b - mu * hours) / scale)
                 + math.exp(2 * mu * b / sigma**2) * stats.norm.cdf((b + mu * hours) / scale))


@pytest.mark.parametrize("equity", [10_000.0, 20_000.0], ids=["10x long", "5x long"])
def test_liquidation_probability_of_one_long_matches_first_passage(equity):
    accounts = single_long(equity)
    maintenance = np.array([0.012])
    outcomes = simulate(ONE_ASSET, accounts, SimulationConfig(paths=60_000, horizon_hours=120, seed=3),
                        spikes=NO_SPIKES, maintenance_fractions=maintenance)
    # liquidated when NC0 + N (e^x - 1) < m N e^x, i.e. x < ln((N - NC0) / (N (1 - m)))
    barrier = math.log((100_000 - equity) / (100_000 * (1 - 0.012)))
    expected = first_passage_probability(barrier, 0.01, 120)
    got = outcomes.liquidated[:, 0].mean()
    assert got == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / 60_000) + 0.003)


def test_base_funding_is_charged_every_hour_and_a_calm_market_liquidates_nobody():
    model = MarketModel(("X",), (1e-9,), ((1.0,),), None, (1e-4,))
    outcomes = simulate(model, single_long(20_000.0), SimulationConfig(paths=200, horizon_hours=120, seed=1),
                        spikes=NO_SPIKES, maintenance_fractions=np.array([0.012]))
    assert not outcomes.liquidated.any()
    # a long pays 1 bp an hour on $100,000 for 120 hours: $1,200
    assert outcomes.equity_end[:, 0] == pytest.approx(20_000.0 - 1_200.0, abs=0.5)


def test_funding_spikes_are_paid_by_the_crowded_side():
    model = MarketModel(("X",), (0.0,), ((1.0,),), None, (0.0,))  # no move: momentum counts as up
    config = SimulationConfig(paths=500, horizon_hours=48, seed=2)
    every_hour = FundingSpikeModel(start_probability=1.0, duration_hours=24, rate_per_hour=0.01)
    long = simulate(model, single_long(10_000.0), config, spikes=every_hour, maintenance_fractions=np.array([0.012]))
    assert long.liquidated.all()  # 1%/h on a 10x long: gone within a few hours
    short = simulate(model, single_long(10_000.0, -100_000.0), config, spikes=every_hour,
                     maintenance_fractions=np.array([0.012]))
    assert not short.liquidated.any()  # the longs pay; the short collects


def test_runs_reproduce_with_the_seed_whatever_the_threads():
    portfolio = load_portfolio()
    one = joint_liquidation(portfolio, _prices(), None, config=SimulationConfig(paths=3_000, seed=5, threads=1))
    two = joint_liquidation(portfolio, _prices(), None, config=SimulationConfig(paths=3_000, seed=5, threads=2))
    assert np.array_equal(one.outcomes.first_hour, two.outcomes.first_hour)
    assert np.array_equal(one.outcomes.equity_end, two.outcomes.equity_end)


def test_layouts_share_the_same_equity_and_report_loss_given_liquidation():
    result = joint_liquidation(load_portfolio(), _prices(), None, config=SimulationConfig(paths=5_000, seed=9))
    equities = {layout.layout: layout.equity_usd for layout in result.layouts}
    assert equities["all cross"] == pytest.approx(equities["as given"])
    assert equities["all isolated"] == pytest.approx(equities["as given"])
    for layout in result.layouts:
        if layout.liquidation_probability:
            assert layout.expected_liquidation_cost_given_liquidation_usd > 0
            assert layout.time_to_liquidation_hours["p10"] <= layout.time_to_liquidation_hours["p90"]
            assert layout.cumulative_probability[-1] == pytest.approx(layout.liquidation_probability)


def test_liquidity_withdrawal_makes_liquidations_cost_more():
    accounts = single_long(10_000.0)
    common = {"spikes": NO_SPIKES, "maintenance_fractions": np.array([0.012])}
    config = SimulationConfig(paths=20_000, horizon_hours=120, seed=4)
    calm = summarize(simulate(ONE_ASSET, accounts, config, liquidity=LiquidityModel(withdrawal_multiplier=1.0),
                              **common), accounts, "all isolated", 120)
    thin = summarize(simulate(ONE_ASSET, accounts, config, liquidity=LiquidityModel(withdrawal_move=0.0,
                                                                                     withdrawal_multiplier=5.0),
                              **common), accounts, "all isolated", 120)
    assert thin.liquidation_probability == calm.liquidation_probability  # same paths, same liquidations
    assert thin.expected_liquidation_cost_given_liquidation_usd > calm.expected_liquidation_cost_given_liquidation_usd


_CACHE: dict[str, object] = {}


def _prices():
    from perpdex.risk.history import load_prices

    if "prices" not in _CACHE:
        _CACHE["prices"] = load_prices()
    return _CACHE["prices"]
