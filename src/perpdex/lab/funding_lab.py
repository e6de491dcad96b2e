"""Funding explained and compared on a recorded run: where each rate came from, and what every
funding model would have done with the same order flow (perpdex funding explain | compare)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from perpdex.core.errors import UnknownMarketError
from perpdex.core.events import FundingRateComputed, OraclePriceUpdated
from perpdex.core.exchange import Exchange
from perpdex.core.funding import FUNDING_MODELS
from perpdex.core.units import PPM, QUOTE
from perpdex.lab.runs import FlowReplay, load_run


@dataclass(frozen=True, slots=True)
class FundingInterval:
    ts_ms: int
    samples: int
    premium_ppm: int
    clamp_hit: bool
    funding_rate_8h_ppm: int
    interval_ms: int
    index_delta: int
    one_unit_long_pays_usd: float  # what a long of one whole base unit paid for this interval


def explain(log_path: str | Path, market_id: str, last: int = 8) -> tuple[list[FundingInterval], object]:
    """The market's last `last` funding intervals in a recorded run, and the predicted rate of the
    interval still open at its end (None before any observation)."""
    markets, kwargs, txs = load_run(log_path)
    params = {m.market_id: m for m in markets}.get(market_id)
    if params is None:
        raise UnknownMarketError(f"{market_id!r} is not a market of this run", field="market_id", value=market_id)
    exchange = Exchange(markets, **kwargs)
    intervals: list[FundingInterval] = []
    unit_base_quantums = 10 ** -params.atomic_resolution
    for tx in txs:
        for event in exchange.apply(tx):
            if isinstance(event, FundingRateComputed) and event.market_id == market_id:
                paid = event.funding_index_delta * unit_base_quantums / PPM / QUOTE
                intervals.append(FundingInterval(event.ts_ms, event.samples, event.premium_ppm, event.clamp_hit,
                                                 event.funding_rate_8h_ppm, event.interval_ms,
                                                 event.funding_index_delta, paid))
    return intervals[-last:], exchange.predicted_funding(market_id)


@dataclass(frozen=True, slots=True)
class ModelOutcome:
    model: str
    intervals: int
    mean_abs_basis_bps: float  # |book mid - index| / index, averaged over oracle updates with a two-sided book
    transferred_usd: float  # paid by one side to the other over the run (all markets)
    rate_volatility_ppm: float  # standard deviation of the 8-hour rate across intervals
    cap_hits: int
    rejected_txs: int  # the same flow can fail under another model (different balances)
    rates_by_market: dict


def compare(log_path: str | Path, models: list[str] | None = None) -> list[ModelOutcome]:
    """Replay one recorded order flow under every funding model (all markets switched to it, its
    default parameters) and measure what each did. The flow is fixed: agents do not react to the
    different rates, which isolates the mechanism."""
    markets, kwargs, txs = load_run(log_path)
    outcomes = []
    for model in models or list(FUNDING_MODELS):
        exchange = Exchange([replace(m, funding_model=model, funding_overrides=()) for m in markets], **kwargs)
        rates: dict[str, list[int]] = {m.market_id: [] for m in markets}
        basis: list[float] = []
        transferred = 0.0
        cap_hits = 0
        replay = FlowReplay(exchange, txs)
        for event in replay:
            if isinstance(event, FundingRateComputed):
                rates[event.market_id].append(event.funding_rate_8h_ppm)
                cap_hits += event.clamp_hit
                open_interest = exchange.markets[event.market_id].open_interest_base_quantums
                transferred += abs(event.funding_index_delta) * open_interest / PPM / QUOTE
            elif isinstance(event, OraclePriceUpdated):
                book = exchange.markets[event.market_id].book
                bid, ask = book.best_bid(), book.best_ask()
                if bid is not None and ask is not None:
                    basis.append(abs((bid + ask) / 2 - event.price_subticks) / event.price_subticks * 1e4)
        all_rates = [rate for series in rates.values() for rate in series]
        outcomes.append(ModelOutcome(
            model, len(all_rates), statistics.fmean(basis) if basis else 0.0, transferred,
            statistics.pstdev(all_rates) if len(all_rates) > 1 else 0.0, cap_hits, replay.rejected, rates))
    return outcomes


def plot_compare(outcomes: list[ModelOutcome], market_id: str, path: str | Path) -> None:
    """The 8-hour rate per interval of one market under each model (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for outcome in outcomes:
        series = outcome.rates_by_market.get(market_id, [])
        if series:
            ax.plot(range(1, len(series) + 1), [rate / 1e4 for rate in series], marker=".", label=outcome.model)
    ax.set_xlabel("funding interval")
    ax.set_ylabel("rate per 8 h (%)")
    ax.set_title(f"Funding models on the same order flow: {market_id}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
