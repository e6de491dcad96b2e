"""Carry and funding stress windows on a tiny synthetic history whose answers are known by hand."""

from __future__ import annotations

from datetime import UTC

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perpdex.risk.carry import compounded_cost, expected_carry, funding_stress, rolling_sums
from perpdex.risk.history import load_funding
from perpdex.risk.portfolio import RiskDataError, parse_portfolio

HOUR_S = 3_600
START_S = 1_704_067_200  # 2024-01-01T00:00:00Z
SETTLEMENTS = 30  # every 8 hours: hours 0, 8, ..., 232
SPIKES = (10, 11, 12)  # settlements at 10x the usual rate


def btc_rate(k: int) -> float:
    return 0.001 if k in SPIKES else 0.0001


def write_history(path) -> None:
    """BTC: 1 bp per 8 h, 10 bps at settlements 10-12; ETH: 2 bps per 8 h throughout."""
    lines = ["timestamp,market,rate,interval_hours"]
    for k in range(SETTLEMENTS):
        stamp = f"{START_S + 8 * HOUR_S * k}"
        lines.append(f"{_iso(int(stamp))},BTC-USDT-PERP,{btc_rate(k)},8")
        lines.append(f"{_iso(int(stamp))},ETH-USDT-PERP,0.0002,8")
    path.write_text("\n".join(lines) + "\n")


def _iso(seconds: int) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# long 1 BTC at $10,000 (notional $10,000), short 2 ETH at $1,000 (notional -$2,000)
PORTFOLIO = """
cross_collateral_usd = 5000
[[positions]]
market = "BTC-USD"
size = 1
entry_price = 10000
[[positions]]
market = "ETH-USD"
size = -2
entry_price = 1000
"""


@pytest.fixture()
def funding(tmp_path):
    path = tmp_path / "funding.csv"
    write_history(path)
    return load_funding(path)


def test_expected_carry_is_the_mean_hourly_rate_times_horizon_times_notional(funding):
    result = expected_carry(parse_portfolio(PORTFOLIO), funding, horizon_hours=24)
    btc, eth = result.positions
    # BTC: (27 x 0.0001 + 3 x 0.001) / 240 h = 2.375e-5 per hour; x 24 h x $10,000 = $5.70 paid
    assert btc.mean_rate_per_hour == pytest.approx(2.375e-5)
    assert btc.expected_paid_usd == pytest.approx(5.70)
    # ETH: 0.0002 / 8 h x 24 h x -$2,000 = -$1.20 (the short receives)
    assert eth.expected_paid_usd == pytest.approx(-1.20)
    assert result.total_paid_usd == pytest.approx(4.50) and result.missing_assets == []


@pytest.mark.parametrize(("days", "windows", "worst", "best"), [
    (3, 162, 36.0 - 3.6, 9.0 - 3.6),  # 9 settlements: 3 spikes + 6 normal; ETH 9 x -$0.40
    (4, 138, 39.0 - 4.8, 12.0 - 4.8),  # 12 settlements
    (5, 114, 42.0 - 6.0, 15.0 - 6.0),  # 15 settlements
], ids=["every 3-day window: worst $32.40, best $5.40", "every 4-day window: worst $34.20, best $7.20",
        "every 5-day window: worst $36.00, best $9.00"])
def test_every_window_of_history_is_costed_and_the_worst_one_holds_the_spike(funding, days, windows, worst, best):
    stress = funding_stress(parse_portfolio(PORTFOLIO), funding)
    window = next(w for w in stress.windows if w.days == days)
    # a 72-hour window on the hourly grid from hour 0 to hour 232 (233 hours): 233 - 72 + 1 = 162 windows
    assert window.windows == windows
    assert window.worst_cost_usd == pytest.approx(worst)
    assert window.best_cost_usd == pytest.approx(best)
    assert best <= window.percentiles_usd["p50"] <= window.percentiles_usd["p95"] <= worst
    # the worst window starts at or before the first spike (hour 80) and ends after the last (hour 96)
    assert window.worst_start_s <= START_S + 80 * HOUR_S and window.worst_end_s > START_S + 96 * HOUR_S
    settlements = 3 * days
    # per position: BTC's worst holds the spikes; the ETH short receives the same $0.40 every settlement
    assert window.per_position_worst_usd == pytest.approx([3 * 10.0 + (settlements - 3) * 1.0, -0.4 * settlements])


def test_funding_held_at_its_95th_percentile_for_five_days(funding):
    stress = funding_stress(parse_portfolio(PORTFOLIO), funding)
    held = next(h for h in stress.held if h.percentile == 95)
    btc, eth = held.per_position_usd
    # BTC hourly costs: 27 x $0.125 and 3 x $1.25; the 95th percentile (linear, index 27.55) is $1.25;
    # held 120 hours: $150
    assert btc == pytest.approx(150.0)
    # the ETH short always receives 0.0002 / 8 x $2,000 = $0.05 an hour: -$6 over 120 hours
    assert eth == pytest.approx(-6.0)
    assert held.each_adverse_total_usd == pytest.approx(144.0)


def test_carry_drag_compounded_on_size_is_below_the_simple_cost_when_paying_and_above_when_receiving():
    simple = 10_000 * 1e-4 * 100
    assert compounded_cost(10_000, 1e-4, 1) == pytest.approx(1.0)  # one hour: exactly N x r
    assert compounded_cost(10_000, 1e-4, 100) < simple  # the position shrinks as it pays
    assert compounded_cost(10_000, 1e-4, 100) == pytest.approx(simple, rel=0.01)
    assert compounded_cost(-10_000, 1e-4, 100) < -simple  # a short receiving grows: more received
    assert compounded_cost(10_000, 0.5, 2) == pytest.approx(7_500.0)  # 10,000 x (1 - 0.5^2)


def test_rolling_sums_cover_every_window():
    assert rolling_sums(__import__("numpy").arange(5.0), 2).tolist() == [1.0, 3.0, 5.0, 7.0]


def test_a_simulation_funding_table_reads_as_a_history(tmp_path):
    table = pa.table({"ts_ms": [START_S * 1000 + k * 3_600_000 for k in range(48)], "market_id": ["BTC-USD"] * 48,
                      "funding_rate_ppm": [10] * 48, "interval_ms": [3_600_000] * 48})
    (tmp_path / "tables").mkdir()
    pq.write_table(table, tmp_path / "tables" / "funding.parquet")
    history = load_funding(tmp_path)  # a run folder
    series = history.get("BTC")
    assert series.interval_hours.tolist() == [1.0] * 48 and series.mean_hourly_rate() == pytest.approx(1e-5)


def test_a_funding_file_without_a_rate_names_the_column(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("timestamp,market,value\n2024-01-01T00:00:00Z,BTC-USD,1\n")
    with pytest.raises(RiskDataError) as caught:
        load_funding(path)
    assert caught.value.field == "funding.rate"
