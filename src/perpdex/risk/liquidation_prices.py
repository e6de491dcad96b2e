"""Liquidation prices of a portfolio, exact on the core's margin functions: each isolated position's,
each cross market's holding the others fixed, and the cross account's surface over joint moves of its
two largest exposures.

Exactness: the price searched is an oracle price in integer subticks and the test is the core's own
`margin.account_risk` at that price (`Portfolio.risk`). For one market's price p, NC - MMR of the
account is monotone in p (a long's notional rises by one quantum at a time while its maintenance
requirement rises by at most one: ceil(ceil(n x IMF) x MF) with IMF, MF <= 1), so bisection over
subticks finds the boundary exactly: liquidatable at the reported price, not one subtick before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from perpdex.core.liquidation import binance_isolated_liquidation_price
from perpdex.core.units import MAX_SUBTICKS, PPM, QUOTE, base_quantums_to_size
from perpdex.risk.portfolio import MarginAccount, Portfolio

DEFAULT_SURFACE_MOVES = tuple(np.round(np.linspace(-0.5, 0.5, 41), 6))  # -50% .. +50% in 2.5% steps


@dataclass(frozen=True)
class LiquidationPrice:
    """Where one account gets liquidated as one market's oracle price moves (others fixed).

    `liquidation_price_subticks` is the first oracle price, moving adversely from the mark, at which
    the account is liquidatable (NC < MMR); `last_safe_price_subticks` is one subtick before it.
    None: no positive price liquidates it (a long whose collateral covers a fall to zero, or a
    market with no net position in the account)."""

    account: str
    market_id: str
    mode: str  # "isolated" or "cross"
    position_indices: tuple[int, ...]
    size_base_quantums: int  # the account's net size in the market
    mark_price_subticks: int
    liquidation_price_subticks: int | None
    last_safe_price_subticks: int | None
    liquidation_price: float | None  # USD
    mark_price: float  # USD
    move_pct: float | None  # (liquidation - mark) / mark, in %
    already_liquidatable: bool
    closed_form_price: float | None  # Binance isolated formula (no rounding); isolated positions only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cushion_negative(portfolio: Portfolio, account: MarginAccount, overrides: dict[str, int], market_id: str,
                      price_subticks: int) -> bool:
    risk = portfolio.risk(account, {**overrides, market_id: price_subticks})
    return risk.net_collateral < risk.maintenance_requirement


def liquidation_threshold_subticks(portfolio: Portfolio, account: MarginAccount, market_id: str,
                                   prices_subticks: Mapping[str, int] | None = None) -> int | None:
    """The boundary oracle price of `market_id` (others at `prices_subticks` or their marks): for a
    long the highest price at which the account is liquidatable (safe one subtick above), for a
    short the lowest (safe one subtick below). None when no price in [1, MAX_SUBTICKS] separates a
    liquidatable from a safe price (no net position, collateral covering a fall to zero, or
    liquidatable everywhere). Exact: bisection on NC < MMR over integer subticks."""
    overrides = dict(prices_subticks or {})
    size = account.positions.get(market_id, 0)
    if not size:
        return None
    start = overrides.get(market_id, portfolio.mark_prices_subticks[market_id])

    def below(price: int) -> bool:
        return _cushion_negative(portfolio, account, overrides, market_id, price)

    # the price at which a long is safest is the highest, for a short the lowest
    worst, best = (1, MAX_SUBTICKS) if size > 0 else (MAX_SUBTICKS, 1)
    if not below(worst):
        return None
    safe = start
    if below(safe):  # find a safe price beyond the start, doubling away from the worst end
        safe = start
        while below(safe):
            if safe == best:
                return None
            safe = min(safe * 2, MAX_SUBTICKS) if size > 0 else max(safe // 2, 1)
        bad = start
    else:
        bad = worst
        if size < 0:  # a short: look for a liquidatable price by doubling up from the start
            bad = start
            while not below(bad):
                bad = min(bad * 2, MAX_SUBTICKS)
    while abs(safe - bad) > 1:
        middle = (safe + bad) // 2
        if below(middle):
            bad = middle
        else:
            safe = middle
    # NC < MMR with MMR = 0 is not liquidatable (Risk.is_liquidatable): only at a price so small
    # that every notional truncates to zero; then no price liquidates the account.
    if not portfolio.risk(account, {**overrides, market_id: bad}).is_liquidatable():
        return None
    return bad


def liquidation_price_subticks(portfolio: Portfolio, account: MarginAccount, market_id: str,
                               prices_subticks: Mapping[str, int] | None = None) -> tuple[int | None, bool]:
    """(first liquidatable oracle price of `market_id` moving adversely from its current price,
    already liquidatable there?) with other markets at `prices_subticks` or their marks. When the
    account is liquidatable already, the price is the current one."""
    overrides = dict(prices_subticks or {})
    start = overrides.get(market_id, portfolio.mark_prices_subticks[market_id])
    if portfolio.risk(account, overrides).is_liquidatable():
        return start, True
    return liquidation_threshold_subticks(portfolio, account, market_id, overrides), False


def _closed_form(portfolio: Portfolio, account: MarginAccount, market_id: str) -> float | None:
    """Binance's isolated formula (core.liquidation.binance_isolated_liquidation_price) with the
    market's maintenance fraction and no maintenance amount: the same price without rounding."""
    params = portfolio.markets[market_id]
    tier = params.liquidity_tier
    indices = account.position_indices
    position = portfolio.positions[indices[0]]
    size = base_quantums_to_size(position.size_base_quantums, params.atomic_resolution)
    entry = portfolio.price(market_id, position.entry_price_subticks)
    try:
        price = binance_isolated_liquidation_price(
            wallet_balance=str(account.collateral_quote_quantums / QUOTE), position_size=str(size),
            entry_price=repr(entry),
            maintenance_margin_rate=f"{tier.initial_margin_ppm * tier.maintenance_fraction_ppm}e-12",
            maintenance_amount=0)
    except ValueError:
        return None
    return float(price) if price > 0 else None


def account_liquidation_prices(portfolio: Portfolio, account: MarginAccount,
                               prices_subticks: Mapping[str, int] | None = None) -> list[LiquidationPrice]:
    """One `LiquidationPrice` per market the account holds (others fixed at marks or `prices_subticks`)."""
    out = []
    isolated = account.label != "cross"
    for market_id in account.positions:
        price, already = liquidation_price_subticks(portfolio, account, market_id, prices_subticks)
        size = account.positions[market_id]
        mark = (prices_subticks or {}).get(market_id, portfolio.mark_prices_subticks[market_id])
        safe = None if price is None or already else (price + 1 if size > 0 else price - 1)
        usd = portfolio.price(market_id, price) if price is not None else None
        mark_usd = portfolio.price(market_id, mark)
        indices = tuple(i for i in account.position_indices if portfolio.positions[i].market_id == market_id)
        out.append(LiquidationPrice(
            account.label, market_id, "isolated" if isolated else "cross", indices, size, mark, price, safe, usd,
            mark_usd, 100.0 * (usd - mark_usd) / mark_usd if usd is not None else None, already,
            _closed_form(portfolio, account, market_id) if isolated else None))
    return out


# --- the cross surface ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiquidationSurface:
    """NC - MMR of the cross account (USD) over a grid of relative moves of its two largest
    exposures (x, y), from the core's margin at integer prices, and the exact boundary: for each x
    move, the y move at which the account becomes liquidatable (None: none within the price range)."""

    account: str
    x_market: str
    y_market: str | None
    moves: list[float]  # fractions, shared by both axes
    cushion_usd: list[list[float]]  # [y][x]
    liquidatable: list[list[bool]]  # [y][x]
    boundary_y_move: list[float | None]  # per x move
    x_notional_usd: float
    y_notional_usd: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _moved(price_subticks: int, move: float) -> int:
    return max(1, round(price_subticks * (1.0 + move)))


def liquidation_surface(portfolio: Portfolio, moves: Sequence[float] = DEFAULT_SURFACE_MOVES
                        ) -> LiquidationSurface | None:
    """The cross account's surface over its two largest |notional| markets; None without cross positions."""
    cross = next((a for a in portfolio.accounts() if a.label == "cross"), None)
    if cross is None or not cross.positions:
        return None
    notionals = {}
    for market_id, size in cross.positions.items():
        params = portfolio.markets[market_id]
        notionals[market_id] = float(base_quantums_to_size(size, params.atomic_resolution)) * portfolio.price(market_id)
    ranked = sorted(notionals, key=lambda m: (-abs(notionals[m]), m))
    x_market = ranked[0]
    y_market = ranked[1] if len(ranked) > 1 else None
    marks = portfolio.mark_prices_subticks
    moves = [float(m) for m in moves]
    y_moves = moves if y_market is not None else [0.0]
    cushion = []
    flags = []
    for y_move in y_moves:
        row, row_flags = [], []
        for x_move in moves:
            prices = {x_market: _moved(marks[x_market], x_move)}
            if y_market is not None:
                prices[y_market] = _moved(marks[y_market], y_move)
            risk = portfolio.risk(cross, prices)
            row.append((risk.net_collateral - risk.maintenance_requirement) / QUOTE)
            row_flags.append(risk.is_liquidatable())
        cushion.append(row)
        flags.append(row_flags)
    boundary: list[float | None] = []
    for x_move in moves:
        if y_market is None:
            boundary.append(None)
            continue
        fixed = {x_market: _moved(marks[x_market], x_move)}
        price = liquidation_threshold_subticks(portfolio, cross, y_market, fixed)
        boundary.append(None if price is None else price / marks[y_market] - 1.0)
    return LiquidationSurface("cross", x_market, y_market, moves, cushion, flags, boundary, notionals[x_market],
                              notionals[y_market] if y_market is not None else None)


# --- everything ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiquidationReport:
    isolated: list[LiquidationPrice]
    cross: list[LiquidationPrice]
    surface: LiquidationSurface | None

    def to_dict(self) -> dict[str, Any]:
        return {"isolated": [p.to_dict() for p in self.isolated], "cross": [p.to_dict() for p in self.cross],
                "surface": self.surface.to_dict() if self.surface is not None else None}


def liquidation_prices(portfolio: Portfolio, *, surface_moves: Sequence[float] = DEFAULT_SURFACE_MOVES
                       ) -> LiquidationReport:
    """Isolated positions' liquidation prices, the cross account's single-asset ones and its surface."""
    isolated: list[LiquidationPrice] = []
    cross: list[LiquidationPrice] = []
    for account in portfolio.accounts():
        prices = account_liquidation_prices(portfolio, account)
        if account.label == "cross":
            cross.extend(prices)
        else:
            isolated.extend(prices)
    return LiquidationReport(isolated, cross, liquidation_surface(portfolio, surface_moves))


def maintenance_fraction(portfolio: Portfolio, market_id: str) -> float:
    """IMF x maintenance fraction of a market, as a float (for scenario math)."""
    tier = portfolio.markets[market_id].liquidity_tier
    return tier.initial_margin_ppm * tier.maintenance_fraction_ppm / PPM**2


__all__ = [
    "LiquidationPrice",
    "LiquidationReport",
    "LiquidationSurface",
    "account_liquidation_prices",
    "liquidation_price_subticks",
    "liquidation_prices",
    "liquidation_surface",
    "liquidation_threshold_subticks",
    "maintenance_fraction",
]
