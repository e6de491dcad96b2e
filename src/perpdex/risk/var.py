"""Value at risk and expected shortfall of a portfolio at 95/99% over 1 and 5 days: historical (from
hourly prices), parametric (normal, delta) and Monte Carlo (multivariate Student-t: fat tails and
correlation), each net of the expected funding drag and of a slippage model that widens with the move.

Sign conventions: PnL in USD, a loss is negative; VaR and ES are reported as positive losses. The
portfolio is every position (cross and isolated) valued by asset: PnL = sum N_i (exp(r_i) - 1) for
log returns r_i, N_i the signed notional at the mark. Liquidation is not modelled here (see
`joint_liquidation`); this is the market risk of holding the positions over the horizon.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from perpdex.risk.carry import expected_carry
from perpdex.risk.history import FundingHistory, PriceHistory
from perpdex.risk.portfolio import Portfolio, RiskDataError

Revaluation = Literal["full", "linear"]
DEFAULT_CONFIDENCES = (0.95, 0.99)
DEFAULT_HORIZONS_DAYS = (1, 5)


@dataclass(frozen=True)
class SlippageModel:
    """Cost of exiting a position as a fraction of its notional at the horizon: `base` (half spread
    and impact in a calm book) plus `move_multiplier` x |price move| (books thin as prices move)."""

    base: float = 0.0005  # 5 bps
    move_multiplier: float = 0.05  # a 20% move costs another 1%

    def fraction(self, move: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return self.base + self.move_multiplier * np.abs(np.asarray(move, dtype=float))

    def cost(self, notionals: npt.NDArray[np.float64], log_returns: npt.NDArray[np.float64]
             ) -> npt.NDArray[np.float64]:
        """Exit cost (USD, >= 0) per scenario row of `log_returns` (..., assets)."""
        move = np.expm1(log_returns)
        return (np.abs(notionals) * (1.0 + move) * self.fraction(move)).sum(axis=-1)


NO_SLIPPAGE = SlippageModel(0.0, 0.0)


# --- pure helpers ---------------------------------------------------------------------------------
def var_es(pnl: npt.ArrayLike, confidence: float) -> tuple[float, float]:
    """(VaR, ES) of a PnL sample at `confidence`, both positive losses: VaR = -quantile(pnl, 1 - c),
    ES = -mean of the PnL at or below that quantile."""
    values = np.asarray(pnl, dtype=float)
    if values.size == 0:
        raise ValueError("no PnL samples")
    threshold = float(np.quantile(values, 1.0 - confidence))
    tail = values[values <= threshold]
    return -threshold, -float(tail.mean()) if tail.size else -threshold


def normal_var_es(mean: float, std: float, confidence: float) -> tuple[float, float]:
    """Closed form for a normal PnL: VaR = z s - m, ES = s phi(z) / (1 - c) - m, z = Phi^-1(c)."""
    z = float(stats.norm.ppf(confidence))
    return z * std - mean, std * float(stats.norm.pdf(z)) / (1.0 - confidence) - mean


def portfolio_pnl(notionals: npt.NDArray[np.float64], log_returns: npt.NDArray[np.float64],
                  revaluation: Revaluation = "full") -> npt.NDArray[np.float64]:
    """PnL per scenario row: full revaluation sum N (e^r - 1), or linear (delta) sum N r."""
    if revaluation == "linear":
        return log_returns @ notionals
    return np.expm1(log_returns) @ notionals


def estimate_dof(daily_returns: npt.NDArray[np.float64], *, lower: float = 2.5, upper: float = 30.0) -> float:
    """Student-t degrees of freedom from the pooled excess kurtosis k of standardized returns:
    nu = 4 + 6 / k (the t's kurtosis is 6 / (nu - 4)), clipped to [lower, upper]."""
    standardized = (daily_returns - daily_returns.mean(axis=0)) / daily_returns.std(axis=0)
    kurtosis = float(stats.kurtosis(standardized.ravel(), fisher=True))
    return float(np.clip(4.0 + 6.0 / kurtosis, lower, upper)) if kurtosis > 0 else upper


def simulate_t_returns(rng: np.random.Generator, paths: int, steps: int, vols: npt.NDArray[np.float64],
                       correlation: npt.NDArray[np.float64], dof: float | None,
                       means: npt.NDArray[np.float64] | None = None, *, chunk: int = 50_000
                       ) -> npt.NDArray[np.float64]:
    """Log returns summed over `steps` steps, (paths, assets): each step multivariate Student-t with
    `dof` (None or inf: normal), scaled to unit variance then by `vols` per step, correlated by
    `correlation` (one chi-square mixing draw per path and step: joint fat tails)."""
    assets = len(vols)
    cholesky = np.linalg.cholesky(correlation + 1e-12 * np.eye(assets))
    out = np.empty((paths, assets))
    nu = dof if dof is not None and math.isfinite(dof) else None
    scale = math.sqrt((nu - 2.0) / nu) if nu is not None and nu > 2 else 1.0
    for start in range(0, paths, chunk):
        n = min(chunk, paths - start)
        shocks = rng.standard_normal((n, steps, assets)) @ cholesky.T
        if nu is not None:
            mixing = np.sqrt(rng.chisquare(nu, (n, steps, 1)) / nu)
            shocks = shocks / mixing * scale
        summed = shocks.sum(axis=1) * vols
        if means is not None:
            summed += means * steps
        out[start:start + n] = summed
    return out


def kupiec_pof(exceptions: int, observations: int, confidence: float) -> tuple[float, float]:
    """Kupiec's proportion-of-failures test: (LR statistic, p-value, chi-square 1 dof) for `exceptions`
    losses beyond VaR in `observations` days when the expected rate is p = 1 - confidence.
    LR = -2 ln[(1-p)^(T-x) p^x] + 2 ln[(1-x/T)^(T-x) (x/T)^x]."""
    if observations <= 0 or not 0 <= exceptions <= observations:
        raise ValueError("need 0 <= exceptions <= observations, observations > 0")
    p = 1.0 - confidence
    x, t = exceptions, observations
    rate = x / t

    def log_likelihood(q: float) -> float:
        return (t - x) * (math.log1p(-q) if q < 1 else (0.0 if t == x else -math.inf)) + (
            x * math.log(q) if x else 0.0)

    statistic = -2.0 * (log_likelihood(p) - log_likelihood(rate))
    statistic = max(statistic, 0.0)
    return statistic, float(stats.chi2.sf(statistic, 1))


@dataclass(frozen=True)
class Backtest:
    method: str
    confidence: float
    observations: int
    exceptions: int
    expected_exceptions: float
    lr_statistic: float
    p_value: float
    window: int

    @property
    def rejected_at_5pct(self) -> bool:
        return self.p_value < 0.05


def backtest_var(pnl: npt.NDArray[np.float64], *, confidence: float = 0.99, window: int = 250,
                 method: Literal["parametric", "historical"] = "parametric", scale: float = 1.0) -> Backtest:
    """Rolling one-step VaR from the trailing `window` PnLs (normal with the window's mean and std,
    or the window's empirical quantile), times `scale`; counts the days whose PnL fell below -VaR
    and applies `kupiec_pof`."""
    values = np.asarray(pnl, dtype=float)
    if values.size <= window:
        raise ValueError("need more PnL observations than the window")
    windows = np.lib.stride_tricks.sliding_window_view(values[:-1], window)
    realized = values[window:]
    if method == "parametric":
        z = float(stats.norm.ppf(confidence))
        forecasts = z * windows.std(axis=1, ddof=1) - windows.mean(axis=1)
    else:
        forecasts = -np.quantile(windows, 1.0 - confidence, axis=1)
    forecasts = forecasts * scale
    exceptions = int(np.count_nonzero(realized < -forecasts))
    statistic, p_value = kupiec_pof(exceptions, realized.size, confidence)
    return Backtest(method, confidence, int(realized.size), exceptions, realized.size * (1.0 - confidence),
                    statistic, p_value, window)


# --- the portfolio ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VarFigure:
    method: str  # historical | parametric | monte_carlo
    confidence: float
    horizon_days: float
    var_usd: float
    es_usd: float
    var_pct_of_equity: float


@dataclass
class VarResult:
    assets: list[str]
    notionals_usd: list[float]
    equity_usd: float
    figures: list[VarFigure]
    funding_drag_usd: dict[str, float]  # horizon days -> expected funding paid
    daily_vols: list[float]
    correlation: list[list[float]]
    dof: float | None
    parametric_contributions_usd: dict[str, list[float]]  # "c@hd" -> component VaR per asset (sums to VaR)
    history_start_s: int
    history_end_s: int
    samples: int  # historical scenarios at the 1-day horizon
    mc_paths: int
    source: str
    pnl_samples: dict[str, list[float]] = field(default_factory=dict)  # for charts: method@h -> PnL sample

    def figure(self, method: str, confidence: float, horizon_days: float) -> VarFigure:
        for item in self.figures:
            if item.method == method and item.confidence == confidence and item.horizon_days == horizon_days:
                return item
        raise KeyError((method, confidence, horizon_days))

    def to_dict(self, *, with_samples: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not with_samples:
            out.pop("pnl_samples")
        return out


def exposures_by_asset(portfolio: Portfolio) -> tuple[list[str], npt.NDArray[np.float64]]:
    """Distinct assets and the signed notional (USD, at the marks) held in each, all accounts."""
    assets = portfolio.assets()
    notionals = np.zeros(len(assets))
    for exposure in portfolio.exposures():
        notionals[assets.index(exposure.asset)] += exposure.notional
    return assets, notionals


def value_at_risk(portfolio: Portfolio, prices: PriceHistory, funding: FundingHistory | None = None, *,
                  confidences: tuple[float, ...] = DEFAULT_CONFIDENCES,
                  horizons_days: tuple[float, ...] = DEFAULT_HORIZONS_DAYS, lookback_days: float | None = None,
                  slippage: SlippageModel = SlippageModel(), mc_paths: int = 100_000, dof: float | None = None,
                  seed: int = 7, revaluation: Revaluation = "full", keep_samples: int = 5_000) -> VarResult:
    """VaR and ES by the three methods. Volatilities, correlation and (unless given) the t's degrees of
    freedom come from the last `lookback_days` of hourly prices; drift is taken as zero. Funding drag is
    the expected funding over the horizon (`carry.expected_carry`), subtracted from every scenario;
    slippage is charged on the exit at the horizon (parametric: at each asset's VaR-level move)."""
    assets, notionals = exposures_by_asset(portfolio)
    history = prices.select(assets).window(lookback_days)
    hourly = history.log_returns(1)
    if hourly.shape[0] < 48:
        raise RiskDataError(f"{prices.source}: fewer than 48 hourly returns for {', '.join(assets)}", field="prices",
                            value=hourly.shape[0])
    covariance_daily = np.atleast_2d(np.cov(hourly, rowvar=False)) * 24.0
    vols_daily = np.sqrt(np.diag(covariance_daily))
    correlation = covariance_daily / np.outer(vols_daily, vols_daily)
    daily = history.log_returns(24, stride=24)
    nu = dof if dof is not None else estimate_dof(daily)
    equity = portfolio.equity_usd()
    rng = np.random.default_rng(seed)
    figures: list[VarFigure] = []
    drags: dict[str, float] = {}
    contributions: dict[str, list[float]] = {}
    samples: dict[str, list[float]] = {}
    historical_count = 0
    for days in horizons_days:
        drag = expected_carry(portfolio, funding, horizon_hours=24 * days).total_paid_usd if funding else 0.0
        drags[f"{days:g}"] = drag
        # historical: overlapping `days`-day returns, every hour
        returns = history.log_returns(round(24 * days))
        if returns.shape[0] < 20:
            raise RiskDataError(f"{prices.source}: too little history for a {days:g}-day horizon", field="prices",
                                value=returns.shape[0])
        historical = portfolio_pnl(notionals, returns, revaluation) - slippage.cost(notionals, returns) - drag
        if days == horizons_days[0]:
            historical_count = returns.shape[0]
        # Monte Carlo: daily multivariate-t steps (a fraction of a day as one scaled step)
        steps = max(1, round(days))
        step_vols = vols_daily * math.sqrt(days / steps)
        simulated = simulate_t_returns(rng, mc_paths, steps, step_vols, correlation, nu)
        monte_carlo = portfolio_pnl(notionals, simulated, revaluation) - slippage.cost(notionals, simulated) - drag
        covariance = covariance_daily * days
        std = math.sqrt(max(float(notionals @ covariance @ notionals), 0.0))
        for confidence in confidences:
            z = float(stats.norm.ppf(confidence))
            moves = z * np.sqrt(np.diag(covariance))
            slip = float((np.abs(notionals) * slippage.fraction(moves)).sum())
            var_p, es_p = normal_var_es(0.0, std, confidence)
            var_p, es_p = var_p + drag + slip, es_p + drag + slip
            for method, (var, es) in (("historical", var_es(historical, confidence)),
                                      ("parametric", (var_p, es_p)),
                                      ("monte_carlo", var_es(monte_carlo, confidence))):
                figures.append(VarFigure(method, confidence, float(days), var, es,
                                         100.0 * var / equity if equity else float("nan")))
            marginal = covariance @ notionals / std if std else np.zeros_like(notionals)
            contributions[f"{confidence:g}@{days:g}d"] = (z * notionals * marginal).tolist()
        if keep_samples:
            samples[f"historical@{days:g}d"] = historical[:: max(1, historical.size // keep_samples)].tolist()
            samples[f"monte_carlo@{days:g}d"] = monte_carlo[:keep_samples].tolist()
    return VarResult(assets, notionals.tolist(), equity, figures, drags, vols_daily.tolist(), correlation.tolist(),
                     nu, contributions, int(history.times_s[0]), int(history.times_s[-1]), historical_count,
                     mc_paths, prices.source, samples)
