"""Seeded, swappable models of the world around the exchange: index price processes (GBM, Merton
jumps, regime-switching volatility, Cholesky-correlated assets, CSV replay), scheduled shocks,
liquidity withdrawal, demand and the oracle. Each is handed a `numpy.random.Generator`; none keeps one.

Floats are fine here (DESIGN.md: analytics and simulation inputs); the engine turns prices into
integer subticks before they reach the exchange. Times are seconds from the run's start unless a
name says `_ms`; rates are annualised (`dt_years` = step length in years, 365-day year).
"""

from __future__ import annotations

import csv
import io
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
SECONDS_PER_YEAR = 365.0 * 86_400.0


# --- single-asset log-return processes ----------------------------------------------------------
class PriceProcess(ABC):
    """One asset's log returns, driven by given standard-normal shocks so several assets can share
    correlated shocks (`CorrelatedPaths`); the rng draws anything else (jumps, regimes)."""

    @abstractmethod
    def log_returns(self, shocks: FloatArray, dt_years: float, rng: np.random.Generator) -> FloatArray:
        """Log returns of len(shocks) steps of `dt_years` each."""


@dataclass(frozen=True)
class GeometricBrownianMotion(PriceProcess):
    """dS/S = mu dt + sigma dW: log returns (mu - sigma^2/2) dt + sigma sqrt(dt) z."""

    drift_annual: float = 0.0
    vol_annual: float = 0.6

    def __post_init__(self) -> None:
        if self.vol_annual < 0 or not math.isfinite(self.vol_annual):
            raise ValueError("vol_annual must be a finite number >= 0")

    def log_returns(self, shocks: FloatArray, dt_years: float, rng: np.random.Generator) -> FloatArray:
        mu, sigma = self.drift_annual, self.vol_annual
        return (mu - 0.5 * sigma * sigma) * dt_years + sigma * math.sqrt(dt_years) * shocks


@dataclass(frozen=True)
class MertonJumpDiffusion(PriceProcess):
    """GBM plus compound-Poisson jumps (Merton 1976): N ~ Poisson(lambda dt) jumps per step, each
    log jump ~ Normal(jump_mean, jump_std^2). The drift is compensated by lambda k,
    k = E[e^J] - 1 = exp(jump_mean + jump_std^2/2) - 1, so E[S_t] = S_0 e^(mu t) as for GBM."""

    drift_annual: float = 0.0
    vol_annual: float = 0.6
    jump_intensity_annual: float = 0.0  # lambda: expected jumps per year
    jump_mean: float = 0.0
    jump_std: float = 0.0

    def __post_init__(self) -> None:
        if self.vol_annual < 0 or self.jump_intensity_annual < 0 or self.jump_std < 0:
            raise ValueError("vol, jump intensity and jump std must be >= 0")

    @property
    def jump_compensator(self) -> float:
        return math.exp(self.jump_mean + 0.5 * self.jump_std**2) - 1.0

    def log_returns(self, shocks: FloatArray, dt_years: float, rng: np.random.Generator) -> FloatArray:
        mu, sigma, lam = self.drift_annual, self.vol_annual, self.jump_intensity_annual
        diffusion = (mu - 0.5 * sigma * sigma - lam * self.jump_compensator) * dt_years \
            + sigma * math.sqrt(dt_years) * shocks
        counts = rng.poisson(lam * dt_years, size=len(shocks))
        # sum of n normal jumps is Normal(n m, n s^2)
        jumps = counts * self.jump_mean + np.sqrt(counts) * self.jump_std * rng.standard_normal(len(shocks))
        return diffusion + jumps


@dataclass(frozen=True)
class RegimeSwitchingVolatility(PriceProcess):
    """GBM whose volatility jumps between regimes (a continuous-time Markov chain): regime i has
    vol `vol_annual * vol_multipliers[i]` and lasts an exponential time of mean `mean_hours[i]`,
    then moves to one of the other regimes, chosen uniformly. In the long run the share of time in
    regime i is mean_hours[i] / sum(mean_hours) (the jump chain is uniform, so time shares follow
    the holding times). `regimes()` draws the regime path alone."""

    drift_annual: float = 0.0
    vol_annual: float = 0.6
    vol_multipliers: tuple[float, ...] = (1.0, 3.0)
    mean_hours: tuple[float, ...] = (48.0, 6.0)
    start_regime: int = 0

    def __post_init__(self) -> None:
        if len(self.vol_multipliers) != len(self.mean_hours) or not self.vol_multipliers:
            raise ValueError("one vol multiplier and one mean holding time per regime")
        if any(h <= 0 for h in self.mean_hours) or any(m < 0 for m in self.vol_multipliers):
            raise ValueError("mean holding times must be > 0 and multipliers >= 0")

    def regimes(self, steps: int, dt_years: float, rng: np.random.Generator) -> npt.NDArray[np.int64]:
        """Regime index of each step, drawn by exponential holding times."""
        out = np.empty(steps, dtype=np.int64)
        dt_hours = dt_years * SECONDS_PER_YEAR / 3_600.0
        regime, position, count = self.start_regime, 0, len(self.mean_hours)
        while position < steps:
            stay_steps = max(1, int(round(rng.exponential(self.mean_hours[regime]) / dt_hours)))
            out[position:position + stay_steps] = regime
            position += stay_steps
            if count > 1:
                regime = int((regime + 1 + rng.integers(0, count - 1)) % count)
        return out

    def log_returns(self, shocks: FloatArray, dt_years: float, rng: np.random.Generator) -> FloatArray:
        regimes = self.regimes(len(shocks), dt_years, rng)
        sigma = self.vol_annual * np.asarray(self.vol_multipliers, dtype=np.float64)[regimes]
        return (self.drift_annual - 0.5 * sigma * sigma) * dt_years + sigma * math.sqrt(dt_years) * shocks


def correlation_matrix(value: float | Sequence[Sequence[float]], size: int) -> FloatArray:
    """A full correlation matrix from one off-diagonal value or a matrix; must be positive definite."""
    if isinstance(value, int | float):
        matrix = np.full((size, size), float(value))
        np.fill_diagonal(matrix, 1.0)
    else:
        matrix = np.asarray(value, dtype=np.float64)
    if matrix.shape != (size, size):
        raise ValueError(f"correlation needs a {size}x{size} matrix")
    if not np.allclose(matrix, matrix.T) or not np.allclose(np.diag(matrix), 1.0):
        raise ValueError("correlation must be symmetric with ones on the diagonal")
    return matrix


class CorrelatedPaths:
    """Several assets whose Brownian shocks are correlated: Z = E @ L.T with L the Cholesky factor
    of the correlation matrix and E independent standard normals, so Corr(Z) = L L^T = C. Each
    asset's own process turns its column of Z into log returns (jumps and regimes stay per asset)."""

    def __init__(self, processes: Sequence[PriceProcess], correlation: float | Sequence[Sequence[float]] = 0.0):
        self.processes = list(processes)
        self.correlation = correlation_matrix(correlation, len(self.processes))
        try:
            self.cholesky = np.linalg.cholesky(self.correlation)
        except np.linalg.LinAlgError as exc:
            raise ValueError("correlation matrix is not positive definite") from exc

    def shocks(self, steps: int, rng: np.random.Generator) -> FloatArray:
        independent = rng.standard_normal((steps, len(self.processes)))
        return independent @ self.cholesky.T

    def log_returns(self, steps: int, dt_years: float, rng: np.random.Generator) -> FloatArray:
        """(steps, assets) log returns."""
        shocks = self.shocks(steps, rng)
        columns = [process.log_returns(shocks[:, j], dt_years, rng) for j, process in enumerate(self.processes)]
        return np.column_stack(columns) if columns else np.empty((steps, 0))

    def simulate(self, start_prices: Sequence[float], steps: int, dt_years: float,
                 rng: np.random.Generator) -> FloatArray:
        """(steps + 1, assets) prices starting at `start_prices`."""
        returns = self.log_returns(steps, dt_years, rng)
        log_paths = np.vstack([np.zeros((1, len(self.processes))), np.cumsum(returns, axis=0)])
        return np.asarray(start_prices, dtype=np.float64) * np.exp(log_paths)


# --- replay of real history ---------------------------------------------------------------------------
def _parse_timestamp_ms(text: str) -> int:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)  # already UNIX milliseconds
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(round(moment.timestamp() * 1_000))


class CsvReplay:
    """Prices from a CSV of `timestamp,market,price` rows (ISO 8601 UTC or UNIX ms; any order),
    interpolated to the simulation's step: log-linear between rows, optionally with Brownian-bridge
    noise so the path between two rows is not a straight line (the rows themselves are kept)."""

    def __init__(self, series: dict[str, tuple[npt.NDArray[np.int64], FloatArray]]) -> None:
        self.series = series

    @classmethod
    def from_text(cls, text: str, source: str = "<csv>") -> CsvReplay:
        reader = csv.DictReader(io.StringIO(text))
        missing = {"timestamp", "market", "price"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{source}: needs columns timestamp, market, price (missing {', '.join(sorted(missing))})")
        rows: dict[str, list[tuple[int, float]]] = {}
        for line, row in enumerate(reader, start=2):
            try:
                ts_ms = _parse_timestamp_ms(row["timestamp"])
                price = float(row["price"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{source}: line {line}: {exc}") from exc
            if not price > 0 or not math.isfinite(price):
                raise ValueError(f"{source}: line {line}: price must be a positive number")
            rows.setdefault(row["market"].strip(), []).append((ts_ms, price))
        series = {}
        for market, points in rows.items():
            points.sort()
            times = np.array([t for t, _ in points], dtype=np.int64)
            if len(times) > 1 and np.any(np.diff(times) == 0):
                raise ValueError(f"{source}: market {market} has two rows with the same timestamp")
            series[market] = (times, np.array([p for _, p in points], dtype=np.float64))
        if not series:
            raise ValueError(f"{source}: no rows")
        return cls(series)

    @classmethod
    def from_path(cls, path: str | Path | Any) -> CsvReplay:
        """From a file path or an importlib.resources entry."""
        return cls.from_text(path.read_text(encoding="utf-8"), str(path))

    def markets(self) -> list[str]:
        return sorted(self.series)

    def span_ms(self, market: str) -> tuple[int, int]:
        times = self.series[market][0]
        return int(times[0]), int(times[-1])

    def prices(self, markets: Sequence[str], times_ms: npt.NDArray[np.int64], rng: np.random.Generator | None = None,
               bridge_vol_annual: float = 0.0) -> FloatArray:
        """(len(times_ms), len(markets)) prices at the given times. Raises ValueError for an
        unknown market or a time outside a market's rows."""
        times_ms = np.asarray(times_ms, dtype=np.int64)
        out = np.empty((len(times_ms), len(markets)))
        for column, market in enumerate(markets):
            if market not in self.series:
                raise ValueError(f"replay has no market {market!r} (it has {', '.join(self.markets())})")
            knots, prices = self.series[market]
            if times_ms[0] < knots[0] or times_ms[-1] > knots[-1]:
                raise ValueError(f"replay of {market} covers {_iso(knots[0])} .. {_iso(knots[-1])}; the run needs "
                                 f"{_iso(times_ms[0])} .. {_iso(times_ms[-1])}")
            log_prices = np.interp(times_ms.astype(np.float64), knots.astype(np.float64), np.log(prices))
            if bridge_vol_annual > 0 and len(times_ms) > 1:
                if rng is None:
                    raise ValueError("bridge noise needs an rng")
                log_prices = log_prices + _brownian_bridge(times_ms, knots, bridge_vol_annual, rng)
            out[:, column] = np.exp(log_prices)
        return out


def _brownian_bridge(times_ms: npt.NDArray[np.int64], knots_ms: npt.NDArray[np.int64], vol_annual: float,
                     rng: np.random.Generator) -> FloatArray:
    """Brownian motion on the time grid minus its linear interpolation between knots: zero at every
    knot (up to the grid), Brownian in between."""
    dt_years = np.diff(times_ms.astype(np.float64)) / 1_000.0 / SECONDS_PER_YEAR
    walk = np.concatenate([[0.0], np.cumsum(vol_annual * np.sqrt(dt_years) * rng.standard_normal(len(dt_years)))])
    grid = times_ms.astype(np.float64)
    inside = knots_ms[(knots_ms >= times_ms[0]) & (knots_ms <= times_ms[-1])].astype(np.float64)
    anchors = np.unique(np.concatenate([[grid[0]], inside, [grid[-1]]]))
    walk_at_anchors = np.interp(anchors, grid, walk)
    return walk - np.interp(grid, anchors, walk_at_anchors)


def _iso(ts_ms: int | np.integer) -> str:
    return datetime.fromtimestamp(int(ts_ms) / 1_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- scheduled moves, liquidity and demand over time ----------------------------------------------------
def _ramp(times_s: FloatArray, start_s: float, duration_s: float) -> FloatArray:
    """0 before start, 1 after start + duration, linear between."""
    if duration_s <= 0:
        return (times_s >= start_s).astype(np.float64)
    return np.clip((times_s - start_s) / duration_s, 0.0, 1.0)


@dataclass(frozen=True)
class ScheduledShock:
    """A deterministic move of some markets' index: log price shifts by log(1 + move) over
    `duration_s` from `start_s`, then a `rebound` fraction of that shift is undone over
    `rebound_s`. Applied on top of any price process (`apply`)."""

    markets: tuple[int, ...]  # column indices
    start_s: float
    duration_s: float
    move: float
    rebound: float = 0.0
    rebound_s: float = 6 * 3_600.0

    def log_offset(self, times_s: FloatArray) -> FloatArray:
        shift = math.log1p(self.move)
        offset = shift * _ramp(times_s, self.start_s, self.duration_s)
        if self.rebound:
            offset -= self.rebound * shift * _ramp(times_s, self.start_s + self.duration_s, self.rebound_s)
        return offset

    def apply(self, prices: FloatArray, times_s: FloatArray) -> FloatArray:
        out = prices.copy()
        factor = np.exp(self.log_offset(times_s))
        for column in self.markets:
            out[:, column] *= factor
        return out


@dataclass(frozen=True)
class LiquidityWindow:
    markets: tuple[int, ...]
    start_s: float
    duration_s: float
    ramp_s: float
    recovery_s: float
    depth_factor: float  # share of normal quote size kept at the bottom
    spread_factor: float  # spread multiplier at the bottom


class LiquidityWithdrawalModel:
    """Market makers' appetite over time: per step and market, a depth factor (x quote size) and
    a spread factor (x spread). In a window both move from 1 to their extreme over `ramp_s`, hold,
    and recover linearly over `recovery_s`; overlapping windows multiply. `jitter` (0..1) scales
    each window's depth factor by a random amount drawn from the rng, per market."""

    def __init__(self, windows: Sequence[LiquidityWindow], jitter: float = 0.0) -> None:
        if not 0 <= jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")
        self.windows = list(windows)
        self.jitter = jitter

    def intensity(self, window: LiquidityWindow, times_s: FloatArray) -> FloatArray:
        """0 outside the window, 1 at full withdrawal."""
        down = _ramp(times_s, window.start_s, window.ramp_s)
        up = _ramp(times_s, window.start_s + window.ramp_s + window.duration_s, window.recovery_s)
        return down * (1.0 - up)

    def factors(self, times_s: FloatArray, markets: int, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
        """(depth, spread), each (len(times_s), markets)."""
        depth = np.ones((len(times_s), markets))
        spread = np.ones((len(times_s), markets))
        for window in self.windows:
            level = self.intensity(window, times_s)
            for column in window.markets:
                depth_floor = window.depth_factor
                if self.jitter:
                    depth_floor = min(1.0, depth_floor * (1.0 + self.jitter * (rng.random() * 2.0 - 1.0)))
                depth[:, column] *= 1.0 - level * (1.0 - depth_floor)
                spread[:, column] *= 1.0 + level * (window.spread_factor - 1.0)
        return depth, spread


@dataclass(frozen=True)
class DemandWindow:
    markets: tuple[int, ...]
    start_s: float
    duration_s: float
    buy_probability: float
    directional_bias: float


def demand_paths(windows: Sequence[DemandWindow], times_s: FloatArray, markets: int) -> tuple[FloatArray, FloatArray]:
    """(buy probability of noise traders, extra lean of directional traders), each (steps, markets);
    0.5 and 0 outside any window; a later window overrides an earlier one where they overlap."""
    buy = np.full((len(times_s), markets), 0.5)
    bias = np.zeros((len(times_s), markets))
    for window in windows:
        inside = (times_s >= window.start_s) & (times_s < window.start_s + window.duration_s)
        for column in window.markets:
            buy[inside, column] = window.buy_probability
            bias[inside, column] = window.directional_bias
    return buy, bias


# --- what agents can estimate from the index ---------------------------------------------------
def ewma_variance_ratio(log_returns: FloatArray, fast_steps: float, slow_steps: float,
                        prior_variance: FloatArray) -> FloatArray:
    """sqrt(fast EWMA of squared returns / slow EWMA), per step (row) and asset: > 1 when volatility
    is above its recent norm. Half-lives in steps; both start at `prior_variance` (per asset). Row t
    uses returns up to t only."""
    steps, assets = log_returns.shape
    fast_alpha = 1.0 - 0.5 ** (1.0 / fast_steps)
    slow_alpha = 1.0 - 0.5 ** (1.0 / slow_steps)
    fast = np.array(prior_variance, dtype=np.float64)
    slow = fast.copy()
    floor = np.maximum(fast * 1e-6, 1e-30)
    out = np.empty((steps, assets))
    squared = log_returns * log_returns
    for t in range(steps):
        fast += fast_alpha * (squared[t] - fast)
        slow += slow_alpha * (squared[t] - slow)
        out[t] = np.sqrt(np.maximum(fast, floor) / np.maximum(slow, floor))
    return out


def ewma_momentum(log_prices: FloatArray, fast_steps: float, slow_steps: float) -> FloatArray:
    """Fast minus slow EWMA of log prices (half-lives in steps), per step and asset: > 0 in an
    up-trend. Row t uses prices up to t only."""
    steps = log_prices.shape[0]
    fast_alpha = 1.0 - 0.5 ** (1.0 / fast_steps)
    slow_alpha = 1.0 - 0.5 ** (1.0 / slow_steps)
    fast = log_prices[0].copy()
    slow = log_prices[0].copy()
    out = np.empty_like(log_prices)
    for t in range(steps):
        fast += fast_alpha * (log_prices[t] - fast)
        slow += slow_alpha * (log_prices[t] - slow)
        out[t] = fast - slow
    return out


# --- the oracle ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class OracleModel:
    """Each update carries `sources` prices per market, each the index times (1 + e), e ~
    Normal(0, noise_bps / 1e4); the exchange takes their median (as dYdX v4's price daemons)."""

    sources: int = 3
    noise_bps: float = 1.0

    def source_prices(self, index_prices: FloatArray, rng: np.random.Generator) -> FloatArray:
        """(steps, markets, sources) source prices for (steps, markets) index prices."""
        if self.sources < 1:
            raise ValueError("an oracle needs at least one source")
        noise = rng.standard_normal(index_prices.shape + (self.sources,)) * (self.noise_bps / 1e4)
        return index_prices[..., None] * (1.0 + noise)
