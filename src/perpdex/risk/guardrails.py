"""Guardrails for a cross account: the largest weight each asset may have before its own stressed move
liquidates the account, dynamic collateral haircuts (volatility now and position size), and the
stable-collateral buffer that holds the liquidation probability under a target, found by search on the
joint-liquidation paths, with what it costs in capital efficiency.

Buffer and scale are exact on the simulated paths: with x_t = PnL - funding - MMR (per unit of the
current positions) and NC(0) the start equity, the account is liquidated with a USDC buffer B iff
NC(0) + B + min_t x_t < 0, and with positions scaled by k iff NC(0) + k min_t x_t < 0; so each
probability is a monotone step function of B (or k) on the same paths, and bisection finds the
smallest B (largest k) that meets the target.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from perpdex.risk.history import PriceHistory
from perpdex.risk.joint_liquidation import JointResult
from perpdex.risk.portfolio import Portfolio, RiskDataError

DEFAULT_TARGET = 0.01
DEFAULT_OPPORTUNITY_RATE = 0.05  # per year: what idle USDC could earn elsewhere


# --- max weight per asset ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AssetWeightLimit:
    """One asset of the cross account: its weight |N| / equity, its stressed adverse move over the
    horizon (the historical `confidence` quantile), and the largest weight that survives that move
    alone (others unchanged): |N| q < E - m |N| (1 -/+ q)  =>  max weight = 1 / (q + m (1 -/+ q))."""

    asset: str
    market_id: str
    notional_usd: float
    weight: float
    stress_move: float  # adverse, as a positive fraction
    maintenance_fraction: float
    max_weight: float
    max_notional_usd: float
    breach: bool


def adverse_moves(prices: PriceHistory, assets: list[str], *, confidence: float, horizon_days: float
                  ) -> dict[str, tuple[float, float]]:
    """Per asset (worst fall, worst rise) as positive fractions: the (1 - c) and c quantiles of
    overlapping `horizon_days` log returns, as simple moves."""
    history = prices.select(assets)
    returns = history.log_returns(round(24 * horizon_days))
    if returns.shape[0] < 20:
        raise RiskDataError(f"{prices.source}: too little history for {horizon_days:g}-day moves", field="prices",
                            value=returns.shape[0])
    out = {}
    for j, asset in enumerate(assets):
        fall = -math.expm1(float(np.quantile(returns[:, j], 1.0 - confidence)))
        rise = math.expm1(float(np.quantile(returns[:, j], confidence)))
        out[asset] = (max(fall, 0.0), max(rise, 0.0))
    return out


def max_weights(portfolio: Portfolio, prices: PriceHistory, *, confidence: float = 0.99,
                horizon_days: float = 5.0) -> list[AssetWeightLimit]:
    """Max weight per asset in the cross account (empty without cross positions)."""
    cross = next((a for a in portfolio.accounts() if a.label == "cross"), None)
    if cross is None or not cross.positions:
        return []
    equity = portfolio.risk(cross).net_collateral / 1e6
    exposures = [e for e in portfolio.exposures() if e.account == "cross"]
    by_asset: dict[str, list[Any]] = {}
    for exposure in exposures:
        by_asset.setdefault(exposure.asset, []).append(exposure)
    moves = adverse_moves(prices, list(by_asset), confidence=confidence, horizon_days=horizon_days)
    out = []
    for asset, members in by_asset.items():
        notional = sum(e.notional for e in members)
        m = members[0].maintenance_fraction
        fall, rise = moves[asset]
        q = fall if notional >= 0 else rise
        denominator = q + m * (1.0 - q if notional >= 0 else 1.0 + q)
        max_weight = 1.0 / denominator if denominator > 0 else math.inf
        weight = abs(notional) / equity if equity > 0 else math.inf
        out.append(AssetWeightLimit(asset, members[0].market_id, notional, weight, q, m, max_weight,
                                    max_weight * max(equity, 0.0), weight > max_weight))
    return out


# --- dynamic haircuts ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Haircut:
    """Collateral haircut of an asset posted as collateral: a volatility part, 1 - exp(-z sigma
    sqrt(h)) with sigma the EWMA daily volatility now (RiskMetrics, lambda 0.94), so it widens as
    markets get rough, plus a size part, `size_factor` x sqrt(size / $1M) (a large deposit cannot be
    sold at the price: Drift's size-decaying asset weights), capped at 100%."""

    asset: str
    daily_vol_now: float
    volatility_haircut: float
    size_haircut: float
    haircut: float
    size_usd: float
    collateral_value_usd: float  # size x (1 - haircut)
    history_days: list[int] = field(default_factory=list)  # UTC days (seconds) of the series below
    history_haircut: list[float] = field(default_factory=list)  # volatility haircut through the history


def ewma_daily_vol(daily_returns: npt.NDArray[np.float64], decay: float = 0.94) -> npt.NDArray[np.float64]:
    """RiskMetrics EWMA volatility per day (the estimate available at the end of each day)."""
    variance = np.empty_like(daily_returns)
    running = float(np.var(daily_returns[: min(30, daily_returns.size)])) if daily_returns.size else 0.0
    for t, value in enumerate(daily_returns):
        running = decay * running + (1.0 - decay) * value * value
        variance[t] = running
    return np.sqrt(variance)


def dynamic_haircuts(prices: PriceHistory, assets: list[str], *, size_usd: float, confidence: float = 0.99,
                     horizon_days: float = 5.0, decay: float = 0.94, size_factor: float = 0.05) -> list[Haircut]:
    """Haircuts for posting `size_usd` of each asset as collateral; USDC first (no haircut)."""
    z = float(stats.norm.ppf(confidence))
    out = [Haircut("USDC", 0.0, 0.0, 0.0, 0.0, size_usd, size_usd)]
    history = prices.select(assets)
    for j, asset in enumerate(assets):
        closes = history.closes[:, j]
        times = history.times_s
        day_end = (times % 86_400) == 0
        daily_prices = closes[day_end]
        days = times[day_end]
        finite = np.isfinite(daily_prices)
        daily_prices, days = daily_prices[finite], days[finite]
        returns = np.diff(np.log(daily_prices))
        vols = ewma_daily_vol(returns, decay)
        series = -np.expm1(-z * vols * math.sqrt(horizon_days))
        vol_now = float(vols[-1]) if vols.size else 0.0
        vol_cut = float(series[-1]) if series.size else 0.0
        size_cut = size_factor * math.sqrt(max(size_usd, 0.0) / 1e6)
        total = min(1.0, vol_cut + size_cut)
        out.append(Haircut(asset, vol_now, vol_cut, size_cut, total, size_usd, size_usd * (1.0 - total),
                           days[1:].tolist(), series.tolist()))
    return out


# --- the stable-collateral buffer -------------------------------------------------------------------------
@dataclass(frozen=True)
class BufferResult:
    account: str  # which account of the joint simulation: "cross (as given)" or "all cross"
    target_probability: float
    horizon_hours: int
    paths: int
    equity_usd: float
    gross_notional_usd: float
    base_probability: float
    buffer_usd: float  # smallest USDC buffer with probability <= target (bisection on the paths)
    probability_with_buffer: float
    search_iterations: int
    quantile_buffer_usd: float  # the same from the quantile of min_t x_t (cross-check)
    scale_to_meet_target: float  # or: cut positions to this fraction, no buffer
    leverage_before: float
    leverage_after: float
    capital_efficiency_loss_pct: float  # 1 - leverage_after / leverage_before
    opportunity_rate: float
    opportunity_cost_per_year_usd: float
    expected_carry_per_year_usd: float | None
    buffer_curve: list[tuple[float, float]]  # (buffer USD, probability)
    buffer_in_collateral: dict[str, float]  # asset -> buffer needed if posted in that asset (haircut)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def liquidation_probability_with_buffer(min_excess: npt.NDArray[np.floating], equity: float, buffer: float,
                                        scale: float = 1.0) -> float:
    """Share of paths liquidated within the horizon with a USDC `buffer` added and positions scaled
    by `scale`: NC(0) + buffer + scale x min_t x_t < 0."""
    return float(np.mean(scale * min_excess.astype(np.float64) < -(equity + buffer)))


def find_buffer(min_excess: npt.NDArray[np.floating], equity: float, target: float, *, tolerance_usd: float = 1.0
                ) -> tuple[float, int]:
    """(smallest buffer with probability <= target within `tolerance_usd`, iterations): bisection."""
    if liquidation_probability_with_buffer(min_excess, equity, 0.0) <= target:
        return 0.0, 0
    low, high = 0.0, max(1.0, -(equity + float(min_excess.min())) + 1.0)
    iterations = 0
    while high - low > tolerance_usd:
        middle = 0.5 * (low + high)
        iterations += 1
        if liquidation_probability_with_buffer(min_excess, equity, middle) <= target:
            high = middle
        else:
            low = middle
    return high, iterations


def find_scale(min_excess: npt.NDArray[np.floating], equity: float, target: float, *, tolerance: float = 1e-4) -> float:
    """Largest position scale in (0, 1] with probability <= target and no buffer (bisection)."""
    if liquidation_probability_with_buffer(min_excess, equity, 0.0, 1.0) <= target:
        return 1.0
    low, high = 0.0, 1.0
    while high - low > tolerance:
        middle = 0.5 * (low + high)
        if liquidation_probability_with_buffer(min_excess, equity, 0.0, middle) <= target:
            low = middle
        else:
            high = middle
    return low


def stable_buffer(joint: JointResult, *, target: float = DEFAULT_TARGET,
                  opportunity_rate: float = DEFAULT_OPPORTUNITY_RATE, expected_carry_per_year_usd: float | None = None,
                  haircuts: list[Haircut] | None = None, curve_points: int = 41) -> BufferResult:
    """The USDC buffer that keeps the cross account's liquidation probability within the joint
    simulation's horizon at or below `target` (the portfolio's own cross account if it has one,
    else every position in one cross account), and what it costs."""
    if joint.outcomes is None or joint.accounts is None:
        raise ValueError("the joint result carries no path outcomes")
    accounts = joint.accounts
    column = next((g for g, (layout, label) in enumerate(zip(accounts.layouts, accounts.labels))
                   if layout == "as given" and label == "cross" and np.any(accounts.exposures[:, g])), None)
    name = "cross (as given)"
    if column is None:
        column = accounts.layouts.index("all cross")
        name = "all cross"
    min_excess = joint.outcomes.min_excess[:, column]
    equity = float(accounts.net_collateral[column])
    gross = float(np.abs(accounts.exposures[:, column]).sum())
    base = liquidation_probability_with_buffer(min_excess, equity, 0.0)
    buffer, iterations = find_buffer(min_excess, equity, target)
    quantile_buffer = max(0.0, -equity - float(np.quantile(min_excess.astype(np.float64), target)))
    scale = find_scale(min_excess, equity, target)
    top = max(buffer * 2.0, equity * 0.5, 1.0)
    curve = [(float(b), liquidation_probability_with_buffer(min_excess, equity, float(b)))
             for b in np.linspace(0.0, top, curve_points)]
    before = gross / equity if equity > 0 else math.inf
    after = gross / (equity + buffer) if equity + buffer > 0 else math.inf
    in_collateral = {}
    for cut in haircuts or []:
        in_collateral[cut.asset] = buffer / (1.0 - cut.haircut) if cut.haircut < 1 else math.inf
    return BufferResult(name, target, joint.horizon_hours, joint.paths, equity, gross, base, buffer,
                        liquidation_probability_with_buffer(min_excess, equity, buffer), iterations, quantile_buffer,
                        scale, before, after, 100.0 * (1.0 - after / before) if before and math.isfinite(before) else 0.0,
                        opportunity_rate, buffer * opportunity_rate, expected_carry_per_year_usd, curve, in_collateral)


@dataclass
class GuardrailsResult:
    weights: list[AssetWeightLimit]
    haircuts: list[Haircut]
    buffer: BufferResult
    advice: list[str]

    def to_dict(self, *, with_series: bool = False) -> dict[str, Any]:
        haircuts = []
        for cut in self.haircuts:
            item = asdict(cut)
            if not with_series:
                item.pop("history_days")
                item.pop("history_haircut")
            haircuts.append(item)
        return {"weights": [asdict(w) for w in self.weights], "haircuts": haircuts, "buffer": self.buffer.to_dict(),
                "advice": self.advice}


def guardrails(portfolio: Portfolio, prices: PriceHistory, joint: JointResult, *, target: float = DEFAULT_TARGET,
               confidence: float = 0.99, horizon_days: float = 5.0,
               opportunity_rate: float = DEFAULT_OPPORTUNITY_RATE,
               expected_carry_per_year_usd: float | None = None) -> GuardrailsResult:
    """Max weights, haircuts (for posting the buffer's size in each held asset) and the buffer, with
    plain-words advice comparing cross and isolated margin on the same paths."""
    weights = max_weights(portfolio, prices, confidence=confidence, horizon_days=horizon_days)
    provisional = stable_buffer(joint, target=target, opportunity_rate=opportunity_rate,
                                expected_carry_per_year_usd=expected_carry_per_year_usd)
    size = max(provisional.buffer_usd, 0.1 * max(provisional.equity_usd, 0.0), 1.0)
    haircuts = dynamic_haircuts(prices, portfolio.assets(), size_usd=size, confidence=confidence,
                                horizon_days=horizon_days)
    buffer = stable_buffer(joint, target=target, opportunity_rate=opportunity_rate,
                           expected_carry_per_year_usd=expected_carry_per_year_usd, haircuts=haircuts)
    advice = []
    for limit in weights:
        if limit.breach:
            advice.append(f"{limit.asset}: weight {limit.weight:.2f}x equity exceeds {limit.max_weight:.2f}x; a "
                          f"{100 * limit.stress_move:.1f}% adverse {horizon_days:g}-day move alone would liquidate "
                          "the cross account")
    by_layout = {item.layout: item for item in joint.layouts}
    cross, isolated = by_layout.get("all cross"), by_layout.get("all isolated")
    if cross is not None and isolated is not None:
        better = "cross" if cross.liquidation_probability <= isolated.liquidation_probability else "isolated"
        advice.append(f"On the same paths: all cross {100 * cross.liquidation_probability:.2f}% vs all isolated "
                      f"{100 * isolated.liquidation_probability:.2f}% chance of a liquidation within "
                      f"{joint.horizon_hours} h; {better} margin liquidates less often (isolated caps each loss "
                      f"at its collateral: {isolated.expected_loss_given_liquidation_usd:,.0f} vs "
                      f"{cross.expected_loss_given_liquidation_usd:,.0f} USD lost given a liquidation).")
    if buffer.buffer_usd > 0:
        advice.append(f"Add {buffer.buffer_usd:,.0f} USDC to the {buffer.account} account to bring its "
                      f"{joint.horizon_hours}-hour liquidation probability from {100 * buffer.base_probability:.2f}% "
                      f"to <= {100 * target:g}% (leverage {buffer.leverage_before:.2f}x -> "
                      f"{buffer.leverage_after:.2f}x, ~{buffer.opportunity_cost_per_year_usd:,.0f} USD/year idle), "
                      f"or cut positions to {100 * buffer.scale_to_meet_target:.0f}% of their size.")
    else:
        advice.append(f"The {buffer.account} account already meets the {100 * target:g}% target "
                      f"({100 * buffer.base_probability:.2f}%): no buffer needed.")
    return GuardrailsResult(weights, haircuts, buffer, advice)
