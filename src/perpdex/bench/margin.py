"""`perpdex bench margin`: the vectorized liquidation screen on a seeded population of subaccounts,
against a naive dense numpy screen and the exact pure-Python check extrapolated to every account."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from perpdex.config.markets import load_markets
from perpdex.core.errors import InvariantViolation
from perpdex.core.margin import account_risk
from perpdex.core.params import MarketParams, MarketType
from perpdex.core.screen import MarginScreen
from perpdex.core.state import MarketState
from perpdex.core.units import PPM, price_to_subticks

FULL_TARGET_MS = 20.0
INCREMENTAL_TARGET_MS = 5.0
EXACT_SAMPLE_SIZE = 20_000
REPEATS = 7

# Typical index prices (USD) of the shipped cross markets; extra markets clone them in turn.
USD_PRICES = {"BTC-USD": "60000", "ETH-USD": "3000", "SOL-USD": "150", "LINK-USD": "15",
              "DOGE-USD": "0.15", "XRP-USD": "0.6"}
POPULARITY = {"BTC-USD": 0.55, "ETH-USD": 0.45, "SOL-USD": 0.25, "LINK-USD": 0.12, "DOGE-USD": 0.15,
              "XRP-USD": 0.15}  # chance an account holds each market; clones get 0.1


def bench_markets(count: int) -> list[tuple[MarketParams, int, float]]:
    """`count` cross markets with (params, oracle price in subticks, holding probability): the
    shipped ones first, then renamed copies (BTC2-USD, ...) of them in turn."""
    shipped = [params for params in load_markets()
               if params.market_type is MarketType.CROSS and params.market_id in USD_PRICES]
    out = []
    for j in range(count):
        template = shipped[j % len(shipped)]
        params = template
        popularity = POPULARITY[template.market_id]
        if j >= len(shipped):
            base = template.market_id.split("-")[0]
            params = replace(template, market_id=f"{base}{j // len(shipped) + 1}-USD")
            popularity = 0.1
        price = price_to_subticks(USD_PRICES[template.market_id], template.atomic_resolution,
                                  template.quantum_conversion_exponent, round_up=False)
        out.append((params, price, popularity))
    return out


def make_population(accounts: int, markets: list[tuple[MarketParams, int, float]], seed: int
                    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(usdc_quote_quantums, positions_base_quantums) of a seeded population.

    Each market is held with its popularity (about 2 positions an account, some hold none), long
    or short at random, with a log-normal notional (median $5,000, a tail to $50M) on the step
    grid. Equity / gross notional is log-normal around 25% (4x leverage); accounts drawn below
    maintenance sit just above it instead, so a move of 1-3% pushes a tail under.
    """
    rng = np.random.default_rng(seed)
    m = len(markets)
    positions = np.zeros((accounts, m), dtype=np.int64)
    gross = np.zeros(accounts)
    signed = np.zeros(accounts)
    requirement = np.zeros(accounts)
    for j, (params, price, popularity) in enumerate(markets):
        divisor = 10 ** -params.quantum_conversion_exponent
        held = rng.random(accounts) < popularity
        notional_usd = np.clip(rng.lognormal(np.log(5_000.0), 1.5, accounts), 10.0, 5e7)
        size = notional_usd * PPM * divisor / price  # base quantums
        steps = np.maximum(np.rint(size / params.step_base_quantums), 1).astype(np.int64)
        side = np.where(rng.random(accounts) < 0.5, 1, -1)
        column = np.where(held, side * steps * params.step_base_quantums, 0)
        positions[:, j] = column
        notional = column * (price / divisor)  # quote quantums, float
        signed += notional
        gross += np.abs(notional)
        tier = params.liquidity_tier
        requirement += np.abs(notional) * (tier.initial_margin_ppm * tier.maintenance_fraction_ppm / PPM**2)
    equity = gross * rng.lognormal(np.log(0.25), 0.9, accounts)
    low = equity < requirement
    equity[low] = requirement[low] * (1.0 + rng.exponential(0.3, int(low.sum())))
    idle = gross == 0
    equity[idle] = rng.lognormal(np.log(1_000.0 * PPM), 1.0, int(idle.sum()))
    usdc = np.rint(equity - signed).astype(np.int64)
    return usdc, positions


def _best_ms(action: Callable[[], object], repeats: int = REPEATS, setup: Callable[[], object] | None = None
             ) -> float:
    best = float("inf")
    for _ in range(repeats):
        if setup is not None:
            setup()
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def naive_dense_screen(positions: npt.NDArray[np.float64], usdc: npt.NDArray[np.float64],
                       scale: npt.NDArray[np.float64], maintenance_fraction: npt.NDArray[np.float64]
                       ) -> npt.NDArray[np.intp]:
    """The baseline a first implementation writes: n x m notionals, row sums, compare."""
    notional = positions * scale
    net_collateral = usdc + notional.sum(axis=1)
    maintenance = (np.abs(notional) * maintenance_fraction).sum(axis=1)
    return np.flatnonzero((net_collateral < maintenance) & (maintenance > 0))


def _time_naive_dense(usdc: npt.NDArray[np.int64], positions: npt.NDArray[np.int64],
                      params: list[MarketParams], prices: list[int]) -> float:
    """Best of 3 of `naive_dense_screen` on a row-major float64 copy (freed on return)."""
    dense = positions.astype(np.float64)
    dense_usdc = usdc.astype(np.float64)
    scale = np.array([price / 10 ** -p.quantum_conversion_exponent for p, price in zip(params, prices)])
    tiers = [p.liquidity_tier for p in params]
    fraction = np.array([t.initial_margin_ppm * t.maintenance_fraction_ppm / PPM**2 for t in tiers])
    naive_dense_screen(dense, dense_usdc, scale, fraction)  # warm-up
    return _best_ms(lambda: naive_dense_screen(dense, dense_usdc, scale, fraction), repeats=3)


def run(accounts: int = 1_000_000, markets: int = 10, seed: int = 0) -> dict:
    """Time the screen on `accounts` x `markets`: full recompute after every price moves 1-3%,
    one market moving 2.5%, a naive dense numpy screen, and the exact check on a sample."""
    table = bench_markets(markets)
    params = [entry[0] for entry in table]
    base_prices = [entry[1] for entry in table]
    usdc, positions = make_population(accounts, table, seed)
    open_interest = [int(x) for x in np.clip(positions, 0, None).sum(axis=0)]
    rng = np.random.default_rng(seed + 1)
    moves = rng.uniform(0.01, 0.03, markets) * np.where(rng.random(markets) < 0.5, -1, 1)
    moved_prices = [round(price * (1 + move)) for price, move in zip(base_prices, moves)]
    one_market_price = round(base_prices[0] * 0.975)  # the first market (BTC) falls 2.5%

    screen = MarginScreen(usdc, positions, params, base_prices, open_interest)

    # Full recompute: warm up, then best of REPEATS at the moved prices.
    screen.screen_all(moved_prices)
    full_ms = _best_ms(lambda: screen.screen_all(moved_prices))
    candidates_full = screen.screen_all(moved_prices)
    started = time.perf_counter()
    confirmed_full = screen.confirm(candidates_full)
    confirm_full_ms = (time.perf_counter() - started) * 1e3

    # One market moves: each timed call starts from a full recompute at the base prices.
    screen.screen_all(base_prices)
    screen.update_market(0, one_market_price)
    incremental_ms = _best_ms(lambda: screen.update_market(0, one_market_price),
                              setup=lambda: screen.screen_all(base_prices))
    screen.screen_all(base_prices)
    candidates_incremental = screen.update_market(0, one_market_price)
    tolerance = screen.tolerance_quote_quantums
    confirmed_incremental = screen.confirm(candidates_incremental)
    after_move = list(base_prices)
    after_move[0] = one_market_price
    incremental_matches_full = bool(np.array_equal(confirmed_incremental,
                                                   screen.liquidatable_after_all(after_move)))

    naive_ms = _time_naive_dense(usdc, positions, params, moved_prices)

    # Exact pure-Python check on a sample of accounts held as dicts, extrapolated.
    sample_size = min(EXACT_SAMPLE_SIZE, accounts)
    sample = np.random.default_rng(seed + 2).choice(accounts, size=sample_size, replace=False)
    market_states = {}
    for p, price, oi in zip(params, moved_prices, open_interest):
        state = MarketState(p)
        state.oracle_price_subticks = price
        state.open_interest_base_quantums = oi
        market_states[p.market_id] = state
    ids = [p.market_id for p in params]
    accounts_as_dicts = [(int(usdc[row]), {ids[j]: size for j, size in enumerate(positions[row].tolist())
                                           if size}) for row in sample]
    started = time.perf_counter()
    exact_flags = [account_risk(balance, held, market_states).is_liquidatable()
                   for balance, held in accounts_as_dicts]
    exact_ms = (time.perf_counter() - started) * 1e3
    sample_confirmed = set(confirmed_full.tolist())
    if any(flag and int(row) not in sample_confirmed for flag, row in zip(exact_flags, sample)):
        raise InvariantViolation("the screen missed an account the exact check flags")

    return {
        "accounts": accounts,
        "markets": markets,
        "full_screen_ms": full_ms,
        "incremental_screen_ms": incremental_ms,
        "naive_dense_screen_ms": naive_ms,
        "exact_python_extrapolated_ms": exact_ms * accounts / max(sample_size, 1),
        "exact_sample_size": sample_size,
        "candidates_full": int(candidates_full.size),
        "confirmed_full": int(confirmed_full.size),
        "candidates_incremental": int(candidates_incremental.size),
        "confirmed_incremental": int(confirmed_incremental.size),
        "full_target_ms": FULL_TARGET_MS,
        "incremental_target_ms": INCREMENTAL_TARGET_MS,
        "full_ok": full_ms <= FULL_TARGET_MS,
        "incremental_ok": incremental_ms <= INCREMENTAL_TARGET_MS,
        # extras: how the figures were checked
        "confirm_full_ms": confirm_full_ms,
        "tolerance_quote_quantums": tolerance,
        "incremental_matches_full": incremental_matches_full,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
