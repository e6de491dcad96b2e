"""Joint liquidation by Monte Carlo: hourly paths of correlated fat-tailed prices with funding spikes
and liquidity withdrawal, and the margin accounts of a portfolio (as given, all cross, all isolated)
checked every hour; probability, loss given liquidation and time to liquidation. Vectorized numpy.

Per path and hour, with E_a = P_a / P_a,0 - 1 the move of asset a and W[a, g] the signed notional
(USD at the start) account g holds in a (positions of one market net, as in a core subaccount):
  NC_g(t)  = NC_g(0) + sum_a W[a, g] E_a(t) - funding_g(t)
  MMR_g(t) = sum_a |W[a, g]| (1 + E_a(t)) x MMF_a            (MMF_a = IMF x maintenance fraction)
  funding_g(t) = sum over hours <= t of sum_a rate_a(h) W[a, g] (1 + E_a(h))   (rate > 0: longs pay)
the float mirror of `margin.account_risk` (truncation and ceilings drop out at this scale). An
account is liquidated at the first hour NC < MMR; it is then closed at the oracle price less a
slippage that widens with the move and more so after a sharp 24-hour move (liquidity withdrawal),
and pays the liquidation fee out of what is left (dYdX: up to 1.5% of notional); what the close
cannot cover is a shortfall for the insurance fund.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from perpdex.risk.history import FundingHistory, PriceHistory
from perpdex.risk.portfolio import Portfolio, RiskDataError
from perpdex.risk.var import estimate_dof

LAYOUTS = ("as given", "all cross", "all isolated")


# --- models ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MarketModel:
    """Per-asset inputs of the simulation: hourly log-return volatility, correlation, Student-t
    degrees of freedom (None: normal) and the mean funding rate per hour."""

    assets: tuple[str, ...]
    hourly_vols: tuple[float, ...]
    correlation: tuple[tuple[float, ...], ...]
    dof: float | None
    base_funding_per_hour: tuple[float, ...]

    def arrays(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        return np.array(self.hourly_vols), np.array(self.correlation), np.array(self.base_funding_per_hour)


@dataclass(frozen=True)
class FundingSpikeModel:
    """Funding spikes: each hour an asset starts a spike with `start_probability`; it lasts
    `duration_hours` at `rate_per_hour` (0.05%/h = 0.4% per 8 h, about the largest 8-hour rates
    settled in the shared data), paid by the side the trailing `momentum_hours` move favoured
    (crowded longs after a rally pay, shorts after a drop)."""

    start_probability: float = 1.0 / 240.0  # one spike per asset per 10 days on average
    duration_hours: int = 24
    rate_per_hour: float = 0.0005
    momentum_hours: int = 24


@dataclass(frozen=True)
class LiquidityModel:
    """Liquidation slippage as a fraction of notional: `base` + `move_multiplier` x |move since start|,
    times `withdrawal_multiplier` when the trailing 24-hour |move| exceeds `withdrawal_move` (makers
    pull their quotes after a sharp move); plus the liquidation fee, capped by what the account has left."""

    base: float = 0.001
    move_multiplier: float = 0.05
    withdrawal_move: float = 0.08
    withdrawal_multiplier: float = 3.0
    liquidation_fee: float = 0.015  # dYdX v4 mainnet max_liquidation_fee_ppm 15_000


NO_SPIKES = FundingSpikeModel(start_probability=0.0)


@dataclass(frozen=True)
class SimulationConfig:
    paths: int = 20_000
    horizon_hours: int = 120
    seed: int = 11
    vol_scale: float = 1.0  # stress: scale every volatility
    mixing_hours: int = 24  # hours sharing one Student-t mixing draw (24: daily returns are t)
    chunk_paths: int = 2_048
    threads: int = 2
    dtype: str = "float32"


# --- accounts as matrices ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AccountSet:
    """Accounts as columns: `exposures[a, g]` signed USD notional of asset a in account g at the start,
    `net_collateral[g]` NC at the start (USD), `layout[g]` and `label[g]` name them."""

    exposures: npt.NDArray[np.float64]
    net_collateral: npt.NDArray[np.float64]
    labels: tuple[str, ...]
    layouts: tuple[str, ...]


def account_set(portfolio: Portfolio, assets: tuple[str, ...],
                hourly_vols: npt.NDArray[np.float64] | None = None) -> AccountSet:
    """The portfolio's accounts in three layouts: as given (its cross account and each isolated
    position alone), all cross (every position in one account on all the equity) and all isolated
    (each position alone, the equity split pro rata to |notional| x volatility, so that every
    position sits about as many standard deviations from its liquidation; without vols, pro rata
    to initial requirement)."""
    exposures = portfolio.exposures()
    index = {asset: j for j, asset in enumerate(assets)}
    columns: list[npt.NDArray[np.float64]] = []
    collateral: list[float] = []
    labels: list[str] = []
    layouts: list[str] = []

    def add(layout: str, label: str, members: list[Any], net_collateral: float) -> None:
        column = np.zeros(len(assets))
        for exposure in members:
            column[index[exposure.asset]] += exposure.notional
        columns.append(column)
        collateral.append(net_collateral)
        labels.append(label)
        layouts.append(layout)

    for account in portfolio.accounts():
        members = [e for e in exposures if e.account == account.label]
        add("as given", account.label, members, portfolio.risk(account).net_collateral / 1e6)
    equity = portfolio.equity_usd()
    add("all cross", "cross", exposures, equity)
    if hourly_vols is not None:
        weight = np.array([abs(e.notional) * hourly_vols[index[e.asset]] for e in exposures])
    else:
        weight = np.array([abs(e.notional) * e.initial_fraction for e in exposures])
    shares = weight / weight.sum() if weight.sum() else np.full(len(exposures), 1 / len(exposures))
    for exposure, share in zip(exposures, shares):
        add("all isolated", f"isolated:{exposure.index}", [exposure], equity * float(share))
    return AccountSet(np.column_stack(columns), np.array(collateral), tuple(labels), tuple(layouts))


def calibrate(portfolio: Portfolio, prices: PriceHistory, funding: FundingHistory | None = None, *,
              lookback_days: float | None = None, dof: float | None = None) -> MarketModel:
    """Hourly vols and correlation from hourly log returns, t degrees of freedom from daily returns'
    kurtosis (`var.estimate_dof`) unless given, mean funding per hour from the history (0 without)."""
    assets = tuple(portfolio.assets())
    history = prices.select(list(assets)).window(lookback_days)
    hourly = history.log_returns(1)
    if hourly.shape[0] < 48:
        raise RiskDataError(f"{prices.source}: fewer than 48 hourly returns", field="prices", value=hourly.shape[0])
    covariance = np.atleast_2d(np.cov(hourly, rowvar=False))
    vols = np.sqrt(np.diag(covariance))
    correlation = covariance / np.outer(vols, vols)
    nu = dof if dof is not None else estimate_dof(history.log_returns(24, stride=24))
    base = []
    for asset in assets:
        series = funding.get(asset) if funding is not None else None
        base.append(series.mean_hourly_rate() if series is not None else 0.0)
    return MarketModel(assets, tuple(float(v) for v in vols), tuple(tuple(float(c) for c in row) for row in correlation),
                       nu, tuple(base))


# --- the engine -------------------------------------------------------------------------------------
def margin_excess(accounts: AccountSet, maintenance_fractions: npt.NDArray[np.float64],
                  relative_prices: npt.NDArray[np.float64], funding_paid: npt.NDArray[np.float64] | float = 0.0
                  ) -> npt.NDArray[np.float64]:
    """NC - MMR (USD) of every account at prices `relative_prices[..., a]` = P_a / P_a,0, after
    `funding_paid` per account: the float mirror of `margin.account_risk` the engine checks each hour
    (it computes the same sum as one matrix product)."""
    relative = np.asarray(relative_prices, dtype=float)
    net = accounts.net_collateral + (relative - 1.0) @ accounts.exposures - funding_paid
    requirement = relative @ (np.abs(accounts.exposures) * np.asarray(maintenance_fractions)[:, None])
    return net - requirement


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run numpy's OpenBLAS on one thread inside the block (restored after). The engine's products
    are skinny (paths x hours rows, ~10 columns): a multi-threaded BLAS gains nothing on them and,
    next to our own chunk threads or on a busy machine, loses up to 10x spinning. Finds the loaded
    OpenBLAS through /proc/self/maps (Linux); elsewhere, or if absent, changes nothing."""
    setter = getter = None
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
        for path in paths:
            library = ctypes.CDLL(path)
            for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
                setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    break
            if setter is not None and getter is not None:
                break
    except OSError:
        setter = getter = None
    if setter is None or getter is None:
        yield
        return
    previous = int(getter())
    setter(1)
    try:
        yield
    finally:
        setter(previous)


@dataclass
class PathOutcomes:
    """Per path and account: liquidated?, first liquidation hour (1-based; 0 = none), equity at the
    end (residual after a liquidation, else NC at the horizon), liquidation cost (slippage + fee)
    and shortfall (what the close could not cover), and min over hours of NC - MMR - NC(0)."""

    liquidated: npt.NDArray[np.bool_]
    first_hour: npt.NDArray[np.int16]
    equity_end: npt.NDArray[np.float32]
    liquidation_cost: npt.NDArray[np.float32]
    shortfall: npt.NDArray[np.float32]
    min_excess: npt.NDArray[np.float32]


def _running_sum(values: npt.NDArray[Any]) -> None:
    """Cumulative sum over axis 0, in place, one row at a time: on time-major arrays this is many
    times faster than `np.cumsum(axis=0)` (each step is one contiguous vector add)."""
    for t in range(1, values.shape[0]):
        np.add(values[t], values[t - 1], out=values[t])


def _chunk(rng: np.random.Generator, n: int, config: SimulationConfig, vols: npt.NDArray[np.float64],
           cholesky: npt.NDArray[np.float64], dof: float | None, base_funding: npt.NDArray[np.float64],
           exposures: npt.NDArray[np.float64], maintenance: npt.NDArray[np.float64],
           net_collateral: npt.NDArray[np.float64], spikes: FundingSpikeModel, liquidity: LiquidityModel
           ) -> tuple[npt.NDArray[Any], ...]:
    """One chunk of `n` paths. Arrays are time-major, (hours, paths, assets or accounts), so the
    running sums and the minimum over hours are contiguous row operations."""
    dtype = np.dtype(config.dtype)
    hours = config.horizon_hours
    assets = vols.size
    accounts = exposures.shape[1]
    step_vols = vols * config.vol_scale
    # correlated shocks scaled by each asset's vol: z (L^T diag(vol)); fat tails: one chi-square
    # mixing draw per path and block of `mixing_hours` (a row scale commutes with the matmul)
    shocks = rng.standard_normal((hours, n, assets), dtype=dtype)
    if dof is not None and math.isfinite(dof):
        blocks = -(-hours // config.mixing_hours)
        mixing = rng.chisquare(dof, (blocks, n)) / dof
        scale = np.sqrt(((dof - 2.0) / dof if dof > 2 else 1.0) / mixing).astype(dtype)
        shocks *= np.repeat(scale, config.mixing_hours, axis=0)[:hours, :, None]
    log_moves = (shocks.reshape(-1, assets) @ (cholesky.T * step_vols[None, :]).astype(dtype)).reshape(shocks.shape)
    del shocks
    log_moves -= (0.5 * step_vols**2).astype(dtype)  # log drift: prices are martingales
    _running_sum(log_moves)  # cumulative log move
    relative = np.exp(log_moves)  # P / P0
    # funding per asset and hour, as a fraction of the start notional: rate x P / P0
    rate = np.empty_like(relative)
    rate[...] = base_funding.astype(dtype)
    if spikes.start_probability > 0:
        # sparse spike starts: per path and asset a binomial count, each at a uniform hour, paid by
        # the side the trailing move favoured; a signed activity array from a difference array
        counts = rng.binomial(hours, spikes.start_probability, (n, assets))
        if counts.any():
            path_index, asset_index = np.nonzero(counts)
            repeats = counts[path_index, asset_index]
            path_index, asset_index = np.repeat(path_index, repeats), np.repeat(asset_index, repeats)
            start = rng.integers(0, hours, path_index.size)
            earlier = start - spikes.momentum_hours
            trailing = log_moves[start, path_index, asset_index] - np.where(
                earlier >= 0, log_moves[np.maximum(earlier, 0), path_index, asset_index], 0.0)
            sign = np.where(trailing >= 0, 1, -1).astype(np.int16)
            active = np.zeros((hours + 1, n, assets), np.int16)
            np.add.at(active, (start, path_index, asset_index), sign)
            np.add.at(active, (np.minimum(start + spikes.duration_hours, hours), path_index, asset_index), -sign)
            active = active[:hours]
            _running_sum(active)
            rate += active * dtype.type(spikes.rate_per_hour)
    rate *= relative
    _running_sum(rate)  # funding paid so far, per unit of start notional
    # NC - MMR - NC(0) per account: sum W (P/P0 - 1) - funding - sum |W| MMF P/P0
    maintenance_usd = np.abs(exposures) * maintenance[:, None]
    excess = (relative.reshape(-1, assets) @ (exposures - maintenance_usd).astype(dtype)).reshape(hours, n, accounts)
    excess -= (rate.reshape(-1, assets) @ exposures.astype(dtype)).reshape(hours, n, accounts)
    excess -= exposures.sum(axis=0).astype(dtype)
    del rate
    min_excess = excess.min(axis=0)
    liquidated = min_excess < -net_collateral
    first = np.full((n, accounts), hours - 1, dtype=np.int64)  # hour index of liquidation, or the end
    if liquidated.any():
        threshold = (-net_collateral).astype(dtype)
        seen = np.zeros((n, accounts), bool)
        for t in range(hours):
            below = excess[t] < threshold
            first[below & ~seen] = t
            seen |= below
    rows = np.arange(n)
    rel_at = np.empty((n, accounts, assets), dtype)
    excess_at = np.empty((n, accounts))
    for g in range(accounts):
        rel_at[:, g] = relative[first[:, g], rows]
        excess_at[:, g] = excess[first[:, g], rows, g]
    # NC = NC(0) + excess + MMR at the liquidation hour (or the end)
    nc_at = net_collateral + excess_at + (rel_at * maintenance_usd.T[None].astype(dtype)).sum(axis=2)
    # the close at the liquidation hour: slippage on each asset's notional, wider after sharp moves
    cost = np.zeros_like(nc_at)
    for g in range(accounts):
        hit = np.flatnonzero(liquidated[:, g])
        if not hit.size:
            continue
        hour = first[hit, g]
        rel = rel_at[hit, g].astype(np.float64)  # (k, assets)
        earlier = np.maximum(hour - 24, 0)
        trailing_move = np.where((hour >= 24)[:, None],
                                 np.abs(np.exp(log_moves[hour, hit] - log_moves[earlier, hit]) - 1.0),
                                 np.abs(rel - 1.0))
        fraction = liquidity.base + liquidity.move_multiplier * np.abs(rel - 1.0)
        fraction = np.where(trailing_move > liquidity.withdrawal_move, fraction * liquidity.withdrawal_multiplier,
                            fraction)
        notional = np.abs(exposures[:, g]) * rel
        slip = (notional * fraction).sum(axis=1)
        fee = np.minimum(liquidity.liquidation_fee * notional.sum(axis=1), np.maximum(nc_at[hit, g] - slip, 0.0))
        cost[hit, g] = slip + fee
    residual = nc_at - cost
    shortfall = np.where(liquidated, np.maximum(-residual, 0.0), 0.0)
    equity_end = np.where(liquidated, np.maximum(residual, 0.0), nc_at)
    return (liquidated, np.where(liquidated, first + 1, 0).astype(np.int16), equity_end.astype(np.float32),
            np.where(liquidated, cost, 0.0).astype(np.float32), shortfall.astype(np.float32),
            min_excess.astype(np.float32))


def simulate(model: MarketModel, accounts: AccountSet, config: SimulationConfig = SimulationConfig(), *,
             spikes: FundingSpikeModel = FundingSpikeModel(), liquidity: LiquidityModel = LiquidityModel(),
             maintenance_fractions: npt.NDArray[np.float64] | None = None, progress: Any = None) -> PathOutcomes:
    """Run `config.paths` paths in chunks (seeded per chunk from `config.seed`, in `config.threads`
    threads); `maintenance_fractions[a]` is each asset's MMF. `progress(done_paths)` is called per chunk."""
    vols, correlation, base = model.arrays()
    assets = len(model.assets)
    if maintenance_fractions is None:
        raise ValueError("maintenance_fractions are required")
    cholesky = np.asarray(np.linalg.cholesky(correlation + 1e-10 * np.eye(assets)), dtype=np.float64)
    sizes = [min(config.chunk_paths, config.paths - start) for start in range(0, config.paths, config.chunk_paths)]
    seeds = np.random.SeedSequence(config.seed).spawn(len(sizes))

    def work(i: int) -> tuple[npt.NDArray[Any], ...]:
        result = _chunk(np.random.default_rng(seeds[i]), sizes[i], config, vols, cholesky, model.dof, base,
                        accounts.exposures, np.asarray(maintenance_fractions), accounts.net_collateral, spikes,
                        liquidity)
        if progress is not None:
            progress(sizes[i])
        return result

    with single_threaded_blas():
        if config.threads > 1 and len(sizes) > 1:
            with ThreadPoolExecutor(config.threads) as pool:
                parts = list(pool.map(work, range(len(sizes))))
        else:
            parts = [work(i) for i in range(len(sizes))]
    return PathOutcomes(*(np.concatenate([part[k] for part in parts]) for k in range(6)))


# --- summaries -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayoutResult:
    layout: str
    accounts: list[str]
    equity_usd: float
    liquidation_probability: float  # any account liquidated within the horizon
    standard_error: float
    per_account_probability: list[float]
    expected_loss_usd: float  # equity at start - equity at the end, all paths
    expected_loss_given_liquidation_usd: float  # start equity - what is left, of the liquidated accounts
    expected_liquidation_cost_given_liquidation_usd: float  # slippage + fees of the closes
    expected_shortfall_given_liquidation_usd: float  # left to the insurance fund
    time_to_liquidation_hours: dict[str, float]  # mean, median, p10, p90 over liquidated paths (first one)
    cumulative_probability: list[float]  # P(liquidated by hour t), t = 1..horizon


def summarize(outcomes: PathOutcomes, accounts: AccountSet, layout: str, horizon_hours: int) -> LayoutResult:
    columns = [g for g, name in enumerate(accounts.layouts) if name == layout]
    liquidated = outcomes.liquidated[:, columns]
    hit = liquidated.any(axis=1)
    paths = hit.size
    equity0 = float(accounts.net_collateral[columns].sum())
    loss = equity0 - outcomes.equity_end[:, columns].astype(np.float64).sum(axis=1)
    # what the liquidated accounts lost (start equity - what was left after the close)
    lost_by_liquidated = np.where(liquidated, accounts.net_collateral[columns] - outcomes.equity_end[:, columns],
                                  0.0).sum(axis=1)
    first = np.where(liquidated, outcomes.first_hour[:, columns], horizon_hours + 1).min(axis=1)
    times = first[hit].astype(float)
    counts = np.bincount(first[hit], minlength=horizon_hours + 2)[1:horizon_hours + 1]
    probability = float(hit.mean())

    def given(values: npt.NDArray[Any]) -> float:
        return float(values[hit].mean()) if hit.any() else 0.0

    return LayoutResult(
        layout, [accounts.labels[g] for g in columns], equity0, probability,
        float(math.sqrt(probability * (1 - probability) / paths)), [float(v) for v in liquidated.mean(axis=0)],
        float(loss.mean()), given(lost_by_liquidated), given(outcomes.liquidation_cost[:, columns].astype(np.float64).sum(axis=1)),
        given(outcomes.shortfall[:, columns].astype(np.float64).sum(axis=1)),
        {"mean": float(times.mean()), "median": float(np.median(times)), "p10": float(np.percentile(times, 10)),
         "p90": float(np.percentile(times, 90))} if times.size else {},
        (np.cumsum(counts) / paths).tolist())


@dataclass
class JointResult:
    paths: int
    horizon_hours: int
    model: MarketModel
    layouts: list[LayoutResult]
    seconds: float
    spikes: FundingSpikeModel
    liquidity: LiquidityModel
    vol_scale: float
    outcomes: PathOutcomes | None = field(default=None, repr=False)
    accounts: AccountSet | None = field(default=None, repr=False)

    def layout(self, name: str) -> LayoutResult:
        return next(item for item in self.layouts if item.layout == name)

    def to_dict(self) -> dict[str, Any]:
        return {"paths": self.paths, "horizon_hours": self.horizon_hours, "seconds": self.seconds,
                "vol_scale": self.vol_scale, "model": asdict(self.model), "spikes": asdict(self.spikes),
                "liquidity": asdict(self.liquidity), "layouts": [asdict(item) for item in self.layouts]}


def maintenance_by_asset(portfolio: Portfolio, assets: tuple[str, ...]) -> npt.NDArray[np.float64]:
    """Each asset's maintenance fraction (IMF x MF) from its market's liquidity tier."""
    out = np.zeros(len(assets))
    for exposure in portfolio.exposures():
        out[assets.index(exposure.asset)] = exposure.maintenance_fraction
    return out


def joint_liquidation(portfolio: Portfolio, prices: PriceHistory, funding: FundingHistory | None = None, *,
                      config: SimulationConfig = SimulationConfig(), spikes: FundingSpikeModel = FundingSpikeModel(),
                      liquidity: LiquidityModel = LiquidityModel(), lookback_days: float | None = None,
                      dof: float | None = None, model: MarketModel | None = None, progress: Any = None
                      ) -> JointResult:
    """Liquidation probability within the horizon, loss given liquidation and time to liquidation,
    for the portfolio as given, all cross and all isolated, on the same paths."""
    model = model or calibrate(portfolio, prices, funding, lookback_days=lookback_days, dof=dof)
    accounts = account_set(portfolio, model.assets, np.array(model.hourly_vols))
    started = time.perf_counter()
    outcomes = simulate(model, accounts, config, spikes=spikes, liquidity=liquidity,
                        maintenance_fractions=maintenance_by_asset(portfolio, model.assets), progress=progress)
    seconds = time.perf_counter() - started
    layouts = [summarize(outcomes, accounts, name, config.horizon_hours) for name in LAYOUTS]
    return JointResult(config.paths, config.horizon_hours, model, layouts, seconds, spikes, liquidity,
                       config.vol_scale, outcomes, accounts)


__all__ = [
    "LAYOUTS",
    "NO_SPIKES",
    "AccountSet",
    "FundingSpikeModel",
    "JointResult",
    "LayoutResult",
    "LiquidityModel",
    "MarketModel",
    "PathOutcomes",
    "SimulationConfig",
    "account_set",
    "calibrate",
    "joint_liquidation",
    "maintenance_by_asset",
    "margin_excess",
    "simulate",
    "single_threaded_blas",
    "summarize",
]
