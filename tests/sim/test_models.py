"""Price processes and world models have the statistics they claim, on long seeded paths; the CSV
replay interpolates and refuses what it does not cover."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perpdex.sim.models import (
    CorrelatedPaths,
    CsvReplay,
    DemandWindow,
    GeometricBrownianMotion,
    LiquidityWindow,
    LiquidityWithdrawalModel,
    MertonJumpDiffusion,
    OracleModel,
    RegimeSwitchingVolatility,
    ScheduledShock,
    correlation_matrix,
    demand_paths,
    ewma_momentum,
    ewma_variance_ratio,
)
from perpdex.sim.scenario import resolve_data_path

HOUR_YEARS = 1 / (365 * 24)
N = 400_000  # hourly steps: about 45 years, so sample moments are tight


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_gbm_log_returns_have_the_drift_and_volatility_of_the_model():
    mu, sigma = 0.3, 0.8
    returns = GeometricBrownianMotion(mu, sigma).log_returns(rng().standard_normal(N), HOUR_YEARS, rng(1))
    # E[r] = (mu - sigma^2/2) dt; its standard error is sigma sqrt(dt) / sqrt(N)
    expected_mean = (mu - sigma**2 / 2) * HOUR_YEARS
    standard_error = sigma * math.sqrt(HOUR_YEARS) / math.sqrt(N)
    assert abs(returns.mean() - expected_mean) < 4 * standard_error
    # std of r = sigma sqrt(dt), within 1% (relative standard error ~ 1/sqrt(2N) = 0.11%)
    assert returns.std() == pytest.approx(sigma * math.sqrt(HOUR_YEARS), rel=0.01)


def test_merton_jumps_arrive_at_their_rate_and_keep_the_mean_price_path():
    lam, m, s, sigma, mu = 200.0, -0.02, 0.03, 0.5, 0.1  # 200 jumps a year
    process = MertonJumpDiffusion(mu, sigma, lam, m, s)
    returns = process.log_returns(rng().standard_normal(N), HOUR_YEARS, rng(2))
    # variance per step = sigma^2 dt + lambda dt (m^2 + s^2)
    variance = sigma**2 * HOUR_YEARS + lam * HOUR_YEARS * (m**2 + s**2)
    assert returns.var() == pytest.approx(variance, rel=0.03)
    # the compensator keeps E[S_t+dt / S_t] = exp(mu dt)
    growth = np.exp(returns).mean()
    assert growth == pytest.approx(math.exp(mu * HOUR_YEARS), abs=4 * math.sqrt(variance / N))
    assert process.jump_compensator == pytest.approx(math.exp(m + s**2 / 2) - 1)


def test_regime_switching_spends_time_by_mean_holding_and_scales_volatility():
    process = RegimeSwitchingVolatility(0.0, 0.5, (1.0, 3.0), (30.0, 10.0))
    generator = rng(3)
    regimes = process.regimes(N, HOUR_YEARS, generator)
    # long-run share of time = mean holding / sum: 30 / 40 = 75% calm
    assert (regimes == 0).mean() == pytest.approx(0.75, abs=0.02)
    returns = process.log_returns(rng(4).standard_normal(N), HOUR_YEARS, rng(5))
    assert returns.std() > 0.5 * math.sqrt(HOUR_YEARS)  # the mixture is wider than the calm regime alone
    # with the same rng, regimes and returns line up: high-vol steps are 3x wider
    generator = rng(6)
    regimes = process.regimes(N, HOUR_YEARS, rng(6))
    returns = process.log_returns(rng(7).standard_normal(N), HOUR_YEARS, generator)
    ratio = returns[regimes == 1].std() / returns[regimes == 0].std()
    assert ratio == pytest.approx(3.0, rel=0.03)


def test_cholesky_correlation_is_recovered():
    target = [[1.0, 0.8, 0.5], [0.8, 1.0, 0.3], [0.5, 0.3, 1.0]]
    paths = CorrelatedPaths([GeometricBrownianMotion(0, 0.6)] * 3, target)
    returns = paths.log_returns(200_000, HOUR_YEARS, rng(8))
    assert np.allclose(np.corrcoef(returns.T), target, atol=0.01)


def test_uniform_correlation_and_bad_matrices():
    assert correlation_matrix(0.4, 3)[0, 2] == 0.4
    with pytest.raises(ValueError):
        CorrelatedPaths([GeometricBrownianMotion()] * 3, [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]])  # not PD
    with pytest.raises(ValueError):
        correlation_matrix([[1, 0.2], [0.3, 1]], 2)  # not symmetric


def test_simulated_paths_start_at_the_start_prices_and_are_seeded():
    paths = CorrelatedPaths([GeometricBrownianMotion(0, 0.6), GeometricBrownianMotion(0, 0.9)], 0.5)
    first = paths.simulate([100.0, 10.0], 50, HOUR_YEARS, rng(9))
    again = paths.simulate([100.0, 10.0], 50, HOUR_YEARS, rng(9))
    other = paths.simulate([100.0, 10.0], 50, HOUR_YEARS, rng(10))
    assert first.shape == (51, 2) and list(first[0]) == [100.0, 10.0]
    assert np.array_equal(first, again) and not np.array_equal(first, other)


CSV = """timestamp,market,price
2024-01-01T00:00:00Z,AAA-USD,100
2024-01-01T01:00:00Z,AAA-USD,121
2024-01-01T02:00:00Z,AAA-USD,110
2024-01-01T00:00:00Z,BBB-USD,10
2024-01-01T02:00:00Z,BBB-USD,40
"""
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z in ms


def test_csv_replay_interpolates_log_linearly_and_keeps_the_rows():
    replay = CsvReplay.from_text(CSV)
    times = np.array([T0, T0 + 1_800_000, T0 + 3_600_000, T0 + 7_200_000])
    prices = replay.prices(["AAA-USD", "BBB-USD"], times)
    assert prices[:, 0] == pytest.approx([100, 110, 121, 110])  # halfway in log: sqrt(100 x 121) = 110
    assert prices[:, 1] == pytest.approx([10, 10 * 4**0.25, 20, 40])  # a quarter, half, all of the way to 4x


def test_csv_replay_bridge_noise_is_pinned_at_the_rows():
    replay = CsvReplay.from_text(CSV)
    times = T0 + np.arange(0, 7_200_001, 60_000)  # every minute
    smooth = replay.prices(["AAA-USD"], times)
    noisy = replay.prices(["AAA-USD"], times, rng(11), bridge_vol_annual=1.0)
    at_rows = [0, 60, 120]
    assert noisy[at_rows, 0] == pytest.approx(smooth[at_rows, 0])
    assert not np.allclose(noisy[:, 0], smooth[:, 0])


@pytest.mark.parametrize("text,message", [
    ("time,market,price\n", "needs columns"),
    ("timestamp,market,price\n2024-01-01T00:00:00Z,A-USD,-1\n", "positive"),
    ("timestamp,market,price\n2024-01-01T00:00:00Z,A-USD,1\n2024-01-01T00:00:00Z,A-USD,2\n", "same timestamp"),
], ids=["missing columns", "negative price", "duplicate timestamp"])
def test_csv_replay_rejects_bad_files(text, message):
    with pytest.raises(ValueError, match=message):
        CsvReplay.from_text(text)


def test_csv_replay_refuses_times_and_markets_it_does_not_cover():
    replay = CsvReplay.from_text(CSV)
    with pytest.raises(ValueError, match="covers"):
        replay.prices(["AAA-USD"], np.array([T0, T0 + 3 * 3_600_000]))
    with pytest.raises(ValueError, match="no market"):
        replay.prices(["CCC-USD"], np.array([T0]))


def test_shipped_replay_data_has_three_markets_of_hourly_closes():
    replay = CsvReplay.from_path(resolve_data_path("package:binance_spot_1h_2022-11-06_2022-11-11.csv"))
    assert replay.markets() == ["BTC-USD", "ETH-USD", "SOL-USD"]
    for market in replay.markets():
        times, _ = replay.series[market]
        assert len(times) == 144 and set(np.diff(times)) == {3_600_000}
    sol = replay.series["SOL-USD"][1]
    assert sol.min() / sol[0] < 0.4  # SOL lost more than 60% in the FTX collapse


def test_scheduled_shock_ramps_in_and_rebounds():
    shock = ScheduledShock((0,), start_s=100.0, duration_s=100.0, move=-0.25, rebound=0.2, rebound_s=100.0)
    times = np.array([0.0, 150.0, 200.0, 300.0, 1_000.0])
    prices = shock.apply(np.full((5, 2), 100.0), times)
    assert prices[:, 1] == pytest.approx(100.0)  # other markets untouched
    assert prices[0, 0] == pytest.approx(100.0)
    assert prices[1, 0] == pytest.approx(100 * 0.75**0.5)  # halfway through, in log
    assert prices[2, 0] == pytest.approx(75.0)
    assert prices[4, 0] == pytest.approx(100 * 0.75**0.8)  # a fifth of the log move given back


def test_liquidity_withdrawal_ramps_down_holds_and_recovers():
    window = LiquidityWindow((0,), start_s=100, duration_s=100, ramp_s=10, recovery_s=50, depth_factor=0.2,
                             spread_factor=3.0)
    times = np.array([0.0, 105.0, 150.0, 235.0, 1_000.0])
    depth, spread = LiquidityWithdrawalModel([window]).factors(times, 2, rng())
    assert depth[:, 0] == pytest.approx([1.0, 0.6, 0.2, 0.6, 1.0])
    assert spread[:, 0] == pytest.approx([1.0, 2.0, 3.0, 2.0, 1.0])
    assert np.all(depth[:, 1] == 1.0) and np.all(spread[:, 1] == 1.0)


def test_demand_windows_set_buy_probability_and_bias():
    buy, bias = demand_paths([DemandWindow((1,), 10.0, 20.0, 0.7, 0.3)], np.array([0.0, 15.0, 40.0]), 2)
    assert buy.tolist() == [[0.5, 0.5], [0.5, 0.7], [0.5, 0.5]]
    assert bias[1].tolist() == [0.0, 0.3]


def test_oracle_sources_scatter_around_the_index():
    index = np.full((20_000, 1), 100.0)
    sources = OracleModel(sources=3, noise_bps=2.0).source_prices(index, rng(12))
    assert sources.shape == (20_000, 1, 3)
    assert (sources / 100 - 1).std() == pytest.approx(2e-4, rel=0.03)


def test_volatility_ratio_and_momentum_see_a_crash():
    steps = 2_000
    log_prices = np.zeros((steps, 1))
    log_prices[1_000:, 0] = np.linspace(0, -0.3, 1_000)[:, None].ravel()[: steps - 1_000]
    returns = np.vstack([np.zeros((1, 1)), np.diff(log_prices, axis=0)])
    returns += rng(13).normal(0, 1e-4, returns.shape)
    ratio = ewma_variance_ratio(returns, 10, 500, np.array([1e-8]))
    momentum = ewma_momentum(log_prices, 10, 100)
    assert ratio[1_100, 0] > 2 * ratio[900, 0]
    assert abs(momentum[900, 0]) < 1e-3 and momentum[1_100, 0] < -0.01
