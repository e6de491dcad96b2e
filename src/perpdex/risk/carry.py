"""Funding carry of a portfolio: expected funding paid or received over a horizon, the worst and
percentile funding cost over every 3-, 4- and 5-day window, funding held at a high percentile, and the
carry drag compounded on position size. Costs in USD, positive = paid by the trader.

A position of signed notional N (long > 0, at the mark) pays rate x N at each settlement (positive
rates: longs pay shorts, as in the shared data and the core's funding index). Notionals are held
at today's marks: the windows replay history's rates on today's positions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from perpdex.risk.history import HOUR_S, FundingHistory
from perpdex.risk.portfolio import Portfolio, RiskDataError

HOURS_PER_YEAR = 24 * 365
DEFAULT_WINDOWS_DAYS = (3, 4, 5)
DEFAULT_PERCENTILES = (50.0, 95.0, 99.0)
DEFAULT_DRAG_HORIZONS_DAYS = (30, 90, 365)


# --- expected carry --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PositionCarry:
    index: int
    market_id: str
    account: str
    notional_usd: float  # signed, at the mark
    mean_rate_per_hour: float  # fraction; positive: longs pay
    annualized_rate: float  # mean_rate_per_hour x 8760
    expected_paid_usd: float  # over the horizon; negative = received
    has_history: bool


@dataclass(frozen=True)
class CarryResult:
    horizon_hours: float
    lookback_days: float | None
    positions: list[PositionCarry]
    total_paid_usd: float
    equity_usd: float
    missing_assets: list[str]
    source: str

    @property
    def total_paid_pct_of_equity(self) -> float:
        return 100.0 * self.total_paid_usd / self.equity_usd if self.equity_usd else float("nan")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["total_paid_pct_of_equity"] = self.total_paid_pct_of_equity
        return out


def expected_carry(portfolio: Portfolio, funding: FundingHistory, *, horizon_hours: float = 24 * 30,
                   lookback_days: float | None = None) -> CarryResult:
    """Expected funding over `horizon_hours` at each market's average historical rate (over the last
    `lookback_days`, or all of it); markets without history count zero and are listed."""
    if horizon_hours <= 0:
        raise RiskDataError("horizon must be positive", field="horizon_hours", value=horizon_hours)
    rows = []
    missing: list[str] = []
    for exposure in portfolio.exposures():
        series = funding.get(exposure.asset)
        rate = series.mean_hourly_rate(lookback_days) if series is not None else 0.0
        if series is None and exposure.asset not in missing:
            missing.append(exposure.asset)
        rows.append(PositionCarry(exposure.index, exposure.market_id, exposure.account, exposure.notional, rate,
                                  rate * HOURS_PER_YEAR, rate * horizon_hours * exposure.notional, series is not None))
    return CarryResult(horizon_hours, lookback_days, rows, float(sum(r.expected_paid_usd for r in rows)),
                       portfolio.equity_usd(), missing, funding.source)


# --- cost series -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FundingCostSeries:
    """Hourly funding cost (USD, positive = paid) of each position on a common hourly grid: the
    hours every held asset with history covers."""

    times_s: npt.NDArray[np.int64]
    costs: npt.NDArray[np.float64]  # (hours, positions)
    position_labels: list[str]
    missing_assets: list[str]

    @property
    def total(self) -> npt.NDArray[np.float64]:
        return self.costs.sum(axis=1)


def funding_cost_series(portfolio: Portfolio, funding: FundingHistory) -> FundingCostSeries:
    """History's settlements applied to today's notionals (rate x signed notional at each
    settlement hour, 0 between), cut to the hours all assets with history cover."""
    exposures = portfolio.exposures()
    grids = {}
    for exposure in exposures:
        series = funding.get(exposure.asset)
        if series is not None and exposure.asset not in grids:
            grids[exposure.asset] = series.hourly_grid()
    missing = list(dict.fromkeys(e.asset for e in exposures if e.asset not in grids))
    labels = [f"{e.market_id} ({e.account})" for e in exposures]
    if not grids:
        return FundingCostSeries(np.zeros(0, np.int64), np.zeros((0, len(exposures))), labels, missing)
    start = max(times[0] for times, _ in grids.values())
    end = min(times[-1] for times, _ in grids.values())
    if end < start:
        raise RiskDataError(f"{funding.source}: the funding histories of {', '.join(grids)} do not overlap",
                            field="funding", value=funding.source)
    times = np.arange(start, end + HOUR_S, HOUR_S, dtype=np.int64)
    costs = np.zeros((times.size, len(exposures)))
    for j, exposure in enumerate(exposures):
        if exposure.asset in grids:
            grid_times, payments = grids[exposure.asset]
            offset = (start - grid_times[0]) // HOUR_S
            costs[:, j] = payments[offset:offset + times.size] * exposure.notional
    return FundingCostSeries(times, costs, labels, missing)


def rolling_sums(values: npt.NDArray[np.float64], window: int) -> npt.NDArray[np.float64]:
    """Sum over every run of `window` consecutive rows (axis 0); len(values) - window + 1 rows."""
    if window <= 0:
        raise ValueError("window must be positive")
    if values.shape[0] < window:
        return np.zeros((0,) + values.shape[1:])
    cumulative = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0)])
    return cumulative[window:] - cumulative[:-window]


# --- stress windows ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowStress:
    days: float
    windows: int  # how many windows (one per starting hour)
    worst_cost_usd: float
    worst_start_s: int | None
    worst_end_s: int | None  # exclusive
    percentiles_usd: dict[str, float]  # "p95" -> cost
    best_cost_usd: float
    per_position_worst_usd: list[float]  # over the common period
    per_position_worst_full_history_usd: list[float]  # over each asset's own whole history


@dataclass(frozen=True)
class HeldPercentile:
    percentile: float
    days: float
    per_position_usd: list[float]  # each position at its own adverse percentile
    each_adverse_total_usd: float  # sum of the above: every position at once (an upper bound)
    portfolio_total_usd: float  # the portfolio's hourly cost at that percentile, held


@dataclass(frozen=True)
class CompoundedDrag:
    scenario: str  # "mean", "p95 held", ...
    days: float
    simple_cost_usd: float  # rate x notional x hours, summed over positions
    compounded_cost_usd: float  # funding paid out of a position that shrinks (grows) as it pays
    compounded_pct_of_notional: float
    compounded_pct_of_equity: float


@dataclass(frozen=True)
class StressResult:
    period_start_s: int | None
    period_end_s: int | None
    windows: list[WindowStress]
    held: list[HeldPercentile]
    drag: list[CompoundedDrag]
    position_labels: list[str]
    missing_assets: list[str]
    source: str
    window_costs: dict[str, list[float]] = field(default_factory=dict)  # days -> every window's total (charts)

    def to_dict(self, *, with_series: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not with_series:
            out.pop("window_costs")
        return out


def held_percentile_cost(notional: float, rates_per_hour: npt.NDArray[np.float64], percentile: float,
                         hours: float) -> float:
    """Funding held for `hours` at the `percentile` of the hourly cost r x N (adverse for the side:
    a long sees high rates, a short low ones)."""
    if rates_per_hour.size == 0:
        return 0.0
    return float(np.percentile(rates_per_hour * notional, percentile)) * hours


def compounded_cost(notional: float, rate_per_hour: float, hours: float) -> float:
    """Cost (USD, + = paid) of funding paid hour by hour out of the position itself, so the size
    compounds: |N| x (1 - (1 - side x r)^hours), side = sign(N). Equals the simple cost N x r x hours
    to first order; receiving (side x r < 0) grows the position instead."""
    side = np.sign(notional)
    return float(abs(notional) * (1.0 - (1.0 - side * rate_per_hour) ** hours))


def funding_stress(portfolio: Portfolio, funding: FundingHistory, *,
                   windows_days: tuple[float, ...] = DEFAULT_WINDOWS_DAYS,
                   percentiles: tuple[float, ...] = DEFAULT_PERCENTILES,
                   held_percentiles: tuple[float, ...] = (95.0, 99.0), held_days: float = 5.0,
                   drag_horizons_days: tuple[float, ...] = DEFAULT_DRAG_HORIZONS_DAYS,
                   keep_series: bool = True) -> StressResult:
    """Funding stress of today's positions replayed over the history: every `windows_days` window
    (one per starting hour), funding held at `held_percentiles` for `held_days`, and the carry drag
    compounded on position size at the mean rate and at each held percentile."""
    series = funding_cost_series(portfolio, funding)
    exposures = portfolio.exposures()
    windows: list[WindowStress] = []
    window_costs: dict[str, list[float]] = {}
    for days in windows_days:
        length = round(days * 24)
        sums = rolling_sums(series.costs, length)
        totals = sums.sum(axis=1)
        if totals.size:
            worst = int(np.argmax(totals))
            start = int(series.times_s[worst])
            entry = WindowStress(float(days), int(totals.size), float(totals[worst]), start, start + length * HOUR_S,
                                 {f"p{p:g}": float(np.percentile(totals, p)) for p in percentiles},
                                 float(totals.min()), [float(v) for v in sums.max(axis=0)], [])
        else:
            entry = WindowStress(float(days), 0, 0.0, None, None, {f"p{p:g}": 0.0 for p in percentiles}, 0.0,
                                 [0.0] * len(exposures), [])
        full = []
        for exposure in exposures:
            history = funding.get(exposure.asset)
            own = rolling_sums(history.hourly_grid()[1] * exposure.notional, length) if history is not None else None
            full.append(float(own.max()) if own is not None and own.size else 0.0)
        entry = WindowStress(entry.days, entry.windows, entry.worst_cost_usd, entry.worst_start_s, entry.worst_end_s,
                             entry.percentiles_usd, entry.best_cost_usd, entry.per_position_worst_usd, full)
        windows.append(entry)
        if keep_series:
            window_costs[f"{days:g}"] = totals.tolist()
    hours = held_days * 24
    held = []
    for percentile in held_percentiles:
        per_position = []
        for exposure in exposures:
            history = funding.get(exposure.asset)
            rates = history.hourly_rates if history is not None else np.zeros(0)
            per_position.append(held_percentile_cost(exposure.notional, rates, percentile, hours))
        portfolio_rate = _portfolio_hourly_costs(exposures, funding)
        portfolio_total = float(np.percentile(portfolio_rate, percentile)) * hours if portfolio_rate.size else 0.0
        held.append(HeldPercentile(percentile, held_days, per_position, float(sum(per_position)), portfolio_total))
    drag = []
    equity = portfolio.equity_usd()
    gross = float(sum(abs(e.notional) for e in exposures))
    scenarios: list[tuple[str, list[float]]] = [("mean", [_mean_rate(funding, e.asset) for e in exposures])]
    for item in held:
        scenarios.append((f"p{item.percentile:g} held", [
            cost / (e.notional * hours) if e.notional and hours else 0.0
            for cost, e in zip(item.per_position_usd, exposures)]))
    for label, scenario_rates in scenarios:
        for days in drag_horizons_days:
            h = days * 24
            simple = float(sum(e.notional * r * h for e, r in zip(exposures, scenario_rates)))
            compounded = float(sum(compounded_cost(e.notional, r, h) for e, r in zip(exposures, scenario_rates)))
            drag.append(CompoundedDrag(label, float(days), simple, compounded,
                                       100.0 * compounded / gross if gross else 0.0,
                                       100.0 * compounded / equity if equity else float("nan")))
    times = series.times_s
    return StressResult(int(times[0]) if times.size else None, int(times[-1]) + HOUR_S if times.size else None,
                        windows, held, drag, series.position_labels, series.missing_assets, funding.source,
                        window_costs)


def _mean_rate(funding: FundingHistory, asset: str) -> float:
    series = funding.get(asset)
    return series.mean_hourly_rate() if series is not None else 0.0


def _portfolio_hourly_costs(exposures: list[Any], funding: FundingHistory) -> npt.NDArray[np.float64]:
    """The portfolio's funding cost per hour at each hour of common coverage, with each settlement
    spread evenly over its interval (so 8-hourly and hourly venues mix)."""
    grids = []
    for exposure in exposures:
        series = funding.get(exposure.asset)
        if series is None:
            continue
        hours = series.times_s // HOUR_S
        spread_start = hours - series.interval_hours.astype(np.int64)
        start, end = int(spread_start.min()), int(hours.max())
        per_hour = np.zeros(end - start)
        for rate, first, last in zip(series.hourly_rates, spread_start - start, hours - start):
            per_hour[first:last] = rate
        grids.append((start, per_hour * exposure.notional))
    if not grids:
        return np.zeros(0)
    start = max(s for s, _ in grids)
    end = min(s + len(v) for s, v in grids)
    if end <= start:
        return np.zeros(0)
    return np.sum([v[start - s:end - s] for s, v in grids], axis=0)
