"""Guardrails: the buffer search meets the target and moves the right way as the target and the
volatility change; max weights sit exactly at the stressed boundary; haircuts widen with vol and size."""

from __future__ import annotations

import numpy as np
import pytest

from perpdex.risk.guardrails import (
    dynamic_haircuts,
    find_buffer,
    guardrails,
    liquidation_probability_with_buffer,
    max_weights,
    stable_buffer,
)
from perpdex.risk.history import load_prices
from perpdex.risk.joint_liquidation import SimulationConfig, joint_liquidation
from perpdex.risk.portfolio import load_portfolio

TARGETS = (0.002, 0.005, 0.01, 0.02, 0.05)


@pytest.fixture(scope="module")
def prices():
    return load_prices()


@pytest.fixture(scope="module")
def runs(prices):
    portfolio = load_portfolio()
    return {scale: joint_liquidation(portfolio, prices, None, config=SimulationConfig(paths=12_000, seed=21,
                                                                                        vol_scale=scale))
            for scale in (0.8, 1.0, 1.3)}


def test_the_buffer_found_by_search_meets_the_target_and_a_dollar_less_does_not(runs):
    result = stable_buffer(runs[1.0], target=0.01)
    assert result.account == "cross (as given)" and result.base_probability > 0.01
    assert result.probability_with_buffer <= 0.01
    min_excess = runs[1.0].outcomes.min_excess[:, 0]
    assert liquidation_probability_with_buffer(min_excess, result.equity_usd, result.buffer_usd - 2.0) > 0.01
    # the same figure from the quantile of the per-path worst margin excess
    assert result.buffer_usd == pytest.approx(result.quantile_buffer_usd, abs=30.0)
    assert result.leverage_after < result.leverage_before and 0 < result.scale_to_meet_target < 1
    assert liquidation_probability_with_buffer(min_excess, result.equity_usd, 0.0, result.scale_to_meet_target) <= 0.01


def test_the_buffer_shrinks_as_the_target_loosens(runs):
    buffers = [stable_buffer(runs[1.0], target=t).buffer_usd for t in TARGETS]
    assert buffers == sorted(buffers, reverse=True) and buffers[0] > buffers[-1]


def test_the_buffer_grows_with_volatility(runs):
    buffers = [stable_buffer(runs[scale], target=0.01).buffer_usd for scale in (0.8, 1.0, 1.3)]
    assert buffers == sorted(buffers) and buffers[0] < buffers[-1]


def test_probability_falls_monotonically_along_the_buffer_curve(runs):
    curve = stable_buffer(runs[1.0], target=0.01).buffer_curve
    probabilities = [p for _, p in curve]
    assert probabilities == sorted(probabilities, reverse=True)


def test_no_buffer_when_the_target_is_already_met():
    min_excess = np.array([-10.0, 5.0, 7.0, 9.0], dtype=np.float32)
    assert find_buffer(min_excess, 100.0, 0.01) == (0.0, 0)  # equity 100 covers every path


def test_max_weight_is_the_weight_at_which_the_stressed_move_meets_maintenance(prices):
    portfolio = load_portfolio()
    for limit in max_weights(portfolio, prices):
        equity = 1.0
        notional = limit.max_weight * equity
        q, m = limit.stress_move, limit.maintenance_fraction
        moved = 1.0 - q if limit.notional_usd > 0 else 1.0 + q
        # after the adverse move: NC = E - N q equals MMR = m N (1 -/+ q)
        assert equity - notional * q == pytest.approx(m * notional * moved)
        assert limit.breach == (limit.weight > limit.max_weight)


def test_haircuts_are_zero_for_usdc_and_widen_with_size(prices):
    small = dynamic_haircuts(prices, ["BTC", "SOL"], size_usd=10_000)
    large = dynamic_haircuts(prices, ["BTC", "SOL"], size_usd=10_000_000)
    assert small[0].asset == "USDC" and small[0].haircut == 0.0
    for s, big in zip(small[1:], large[1:]):
        assert 0 < s.haircut < big.haircut <= 1
    btc, sol = small[1], small[2]
    assert sol.volatility_haircut > btc.volatility_haircut  # SOL moves more
    assert max(btc.history_haircut) > 2 * min(btc.history_haircut)  # stress periods widen it


def test_guardrails_give_advice_for_the_example(prices, runs):
    result = guardrails(load_portfolio(), prices, runs[1.0])
    assert any("USDC" in line for line in result.advice)
    assert {c.asset for c in result.haircuts} >= {"USDC", "BTC"}
    assert result.buffer.buffer_in_collateral["USDC"] == pytest.approx(result.buffer.buffer_usd)
