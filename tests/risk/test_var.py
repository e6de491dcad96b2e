"""VaR and ES: closed-form normal cases, the three methods on a linear portfolio of simulated normal
returns, funding drag and slippage, and Kupiec's POF test (golden region and a backtest on simulated data)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perpdex.risk.history import PriceHistory
from perpdex.risk.portfolio import parse_portfolio
from perpdex.risk.var import (
    NO_SLIPPAGE,
    SlippageModel,
    backtest_var,
    kupiec_pof,
    normal_var_es,
    simulate_t_returns,
    value_at_risk,
    var_es,
)


# Standard normal table: Phi^-1(0.95) = 1.6448536, phi(1.6448536) = 0.1031356;
# Phi^-1(0.99) = 2.3263479, phi(2.3263479) = 0.0266521.
@pytest.mark.parametrize(("confidence", "var", "es"), [
    (0.95, 1.6448536 * 20_000, 0.1031356 / 0.05 * 20_000),
    (0.99, 2.3263479 * 20_000, 0.0266521 / 0.01 * 20_000),
], ids=["95%: $1M at 2% daily vol loses $32,897 (VaR) and $41,254 beyond it (ES)",
        "99%: $46,527 VaR and $53,304 ES"])
def test_normal_closed_form(confidence, var, es):
    got_var, got_es = normal_var_es(0.0, 20_000.0, confidence)
    assert got_var == pytest.approx(var, rel=1e-6) and got_es == pytest.approx(es, rel=1e-5)


def test_var_es_of_a_sample_are_the_quantile_and_the_tail_mean():
    pnl = np.arange(-99.0, 1.0)  # -99 .. 0, 100 values
    var, es = var_es(pnl, 0.95)
    assert var == pytest.approx(94.05)  # np.quantile linear at 0.05 x 99 = 4.95 -> -94.05
    assert es == pytest.approx(-np.mean(np.arange(-99.0, -94.0)))  # the five values at or below: 97


PORTFOLIO = """
cross_collateral_usd = 100000
[[positions]]
market = "BTC-USD"
size = 10
entry_price = 50000
[[positions]]
market = "ETH-USD"
size = -100
entry_price = 2000
"""
NOTIONALS = np.array([500_000.0, -200_000.0])


def synthetic_prices(hours: int, vols: tuple[float, float], rho: float, seed: int) -> tuple[PriceHistory, np.ndarray]:
    rng = np.random.default_rng(seed)
    cov = np.array([[vols[0] ** 2, rho * vols[0] * vols[1]], [rho * vols[0] * vols[1], vols[1] ** 2]])
    returns = rng.multivariate_normal([0.0, 0.0], cov, hours)
    closes = np.vstack([np.zeros(2), np.cumsum(returns, axis=0)])
    closes = np.exp(closes) * np.array([50_000.0, 2_000.0])
    times = 1_600_000_000 - 1_600_000_000 % 3600 + 3600 * np.arange(hours + 1, dtype=np.int64)
    return PriceHistory(times, ("BTC", "ETH"), closes, "synthetic"), returns


@pytest.fixture(scope="module")
def linear_normal():
    prices, returns = synthetic_prices(4 * 8760, (0.005, 0.007), 0.6, seed=3)
    result = value_at_risk(parse_portfolio(PORTFOLIO), prices, None, slippage=NO_SLIPPAGE, mc_paths=200_000,
                           dof=math.inf, revaluation="linear", seed=1)
    return result, returns


def test_parametric_var_is_z_times_the_linear_portfolio_std(linear_normal):
    result, returns = linear_normal
    for days in (1, 5):
        covariance = np.cov(returns, rowvar=False) * 24 * days
        std = math.sqrt(NOTIONALS @ covariance @ NOTIONALS)
        for confidence in (0.95, 0.99):
            var, es = normal_var_es(0.0, std, confidence)
            figure = result.figure("parametric", confidence, days)
            assert figure.var_usd == pytest.approx(var, rel=1e-9) and figure.es_usd == pytest.approx(es, rel=1e-9)
            # component VaR sums to the whole
            assert sum(result.parametric_contributions_usd[f"{confidence:g}@{days:g}d"]) == pytest.approx(var)


def test_monte_carlo_normal_matches_the_closed_form(linear_normal):
    result, _ = linear_normal
    for days in (1, 5):
        for confidence in (0.95, 0.99):
            closed = result.figure("parametric", confidence, days)
            mc = result.figure("monte_carlo", confidence, days)
            assert mc.var_usd == pytest.approx(closed.var_usd, rel=0.02)
            assert mc.es_usd == pytest.approx(closed.es_usd, rel=0.03)


def test_historical_var_on_normal_returns_matches_the_closed_form(linear_normal):
    result, _ = linear_normal
    closed = result.figure("parametric", 0.95, 1)
    assert result.figure("historical", 0.95, 1).var_usd == pytest.approx(closed.var_usd, rel=0.06)


def test_funding_drag_and_slippage_add_to_the_loss():
    prices, _ = synthetic_prices(2000, (0.005, 0.007), 0.6, seed=4)
    portfolio = parse_portfolio(PORTFOLIO)
    plain = value_at_risk(portfolio, prices, None, slippage=NO_SLIPPAGE, mc_paths=20_000, dof=5.0, seed=2)
    slipped = value_at_risk(portfolio, prices, None, slippage=SlippageModel(0.001, 0.1), mc_paths=20_000, dof=5.0,
                            seed=2)
    for before, after in zip(plain.figures, slipped.figures):
        assert after.var_usd > before.var_usd
    # slippage on the exit: base 10 bps of $700,000 gross = $700 at least, widening with the move
    assert slipped.figure("parametric", 0.99, 1).var_usd - plain.figure("parametric", 0.99, 1).var_usd > 700


def test_student_t_shocks_have_unit_variance_and_fatter_tails():
    rng = np.random.default_rng(0)
    draws = simulate_t_returns(rng, 400_000, 1, np.array([1.0]), np.eye(1), 5.0)[:, 0]
    assert np.std(draws) == pytest.approx(1.0, rel=0.02)
    assert np.quantile(draws, 0.001) < -3.4  # normal: -3.09; unit-variance t(5): about -3.9


# Kupiec (1995) POF test: for T = 1000 days at p = 1% the 95% non-rejection region is 4 < x < 17
# (Kupiec, "Techniques for verifying the accuracy of risk measurement models", J. Derivatives 3(2);
# reproduced in Jorion, "Value at Risk", table "Model backtesting, 95% nonrejection confidence regions").
@pytest.mark.parametrize(("exceptions", "rejected"), [(4, True), (5, False), (10, False), (16, False), (17, True)],
                         ids=lambda v: str(v))
def test_kupiec_region_for_1000_days_at_99pct(exceptions, rejected):
    _, p_value = kupiec_pof(exceptions, 1000, 0.99)
    assert (p_value < 0.05) is rejected


def test_kupiec_statistic_values():
    assert kupiec_pof(10, 1000, 0.99)[0] == pytest.approx(0.0, abs=1e-9)  # exactly the expected rate
    assert kupiec_pof(0, 255, 0.99)[0] == pytest.approx(-2 * 255 * math.log(0.99))  # 5.126


def test_backtest_on_simulated_data_accepts_a_correct_model_and_rejects_wrong_ones():
    rng = np.random.default_rng(42)
    normal = rng.standard_normal(3000)
    right = backtest_var(normal, confidence=0.99, window=250)
    assert not right.rejected_at_5pct and abs(right.exceptions - right.expected_exceptions) < 12
    assert not backtest_var(normal, confidence=0.95, window=250, method="historical").rejected_at_5pct
    too_low = backtest_var(normal, confidence=0.99, window=250, scale=0.7)
    assert too_low.rejected_at_5pct and too_low.exceptions > 2 * too_low.expected_exceptions
    fat = rng.standard_t(2.5, 3000)  # fat tails a normal VaR underestimates at 99%
    assert backtest_var(fat, confidence=0.99, window=250).rejected_at_5pct
