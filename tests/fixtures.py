"""Shared test fixtures: markets built from self-describing names, an exchange builder and
amounts in human units (`10 * QUOTE`, `btc(0.5)`, `usd_btc(100_000)`)."""

from __future__ import annotations

from dataclasses import replace

from perpdex.config.markets import load_markets
from perpdex.core.exchange import Exchange
from perpdex.core.invariants import check_invariants
from perpdex.core.params import LiquidityTier, MarketParams
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, OraclePrice, OracleUpdate
from perpdex.core.units import QUOTE

ALICE, BOB, CAROL, DAVE = (SubaccountId(name) for name in ("alice", "bob", "carol", "dave"))
BTC_UNIT = 10**10  # base quantums in 1 BTC (atomic resolution -10)
BTC_DOLLAR = 100_000  # subticks in $1 of BTC-USD
ETH_UNIT = 10**9
ETH_DOLLAR = 1_000_000

BTC_USD_IMF_20PCT_MMF_10PCT = LiquidityTier(  # dYdX v4 testutil BtcUsd_20PercentInitial_10PercentMaintenance
    tier_id=3, name="test-20-10", initial_margin_ppm=200_000, maintenance_fraction_ppm=500_000,
    impact_notional_quote_quantums=2_500 * QUOTE)


def default_markets() -> dict[str, MarketParams]:
    return {market.market_id: market for market in load_markets()}


def make_market(market_id: str = "BTC-USD", **overrides) -> MarketParams:
    """A market from the shipped file with fields overridden (dYdX's GeneratePerpetual(With...))."""
    return replace(default_markets()[market_id], **overrides)


def btc(amount: float | int) -> int:
    """BTC to base quantums (exact for the step multiples tests use)."""
    return round(amount * BTC_UNIT)


def usd_btc(price: int) -> int:
    """A whole-dollar BTC-USD price in subticks."""
    return price * BTC_DOLLAR


def oracle(ts_ms: int, **prices_subticks: int) -> OracleUpdate:
    """OracleUpdate from keyword prices: oracle(5, BTC_USD=usd_btc(100_000))."""
    return OracleUpdate(ts_ms, tuple(OraclePrice(name.replace("_", "-"), (price,))
                                     for name, price in prices_subticks.items()))


def funded_exchange(markets: list[MarketParams] | None = None, *, usdc: int = 100_000 * QUOTE,
                    owners: tuple[SubaccountId, ...] = (ALICE, BOB, CAROL, DAVE),
                    btc_price: int = usd_btc(100_000)) -> Exchange:
    """An exchange whose owners each hold `usdc` and with a fresh BTC-USD (and ETH-USD) price at ts 1."""
    ex = Exchange(markets if markets is not None else load_markets())
    for owner in owners:
        ex.apply(Deposit(1, owner, usdc))
    prices = {"BTC_USD": btc_price}
    if "ETH-USD" in ex.markets:
        prices["ETH_USD"] = 3_000 * ETH_DOLLAR
    ex.apply(oracle(1, **prices))
    check_invariants(ex)
    return ex
