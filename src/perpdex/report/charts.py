"""PNG charts of a simulation run (matplotlib, Agg backend: no display needed), for people who read
the report without a browser. One file per topic; a topic with no data gets a card saying so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from perpdex.report.html import KIND_ORDER, NO_EVENTS, PNL_PARTS

DPI = 110


def _times(table: pa.Table) -> np.ndarray:
    return table.column("ts_ms").to_numpy().astype("datetime64[ms]")


def _where(table: pa.Table, column: str, value: Any) -> pa.Table:
    return table.filter(pc.equal(table.column(column), value))


def _markets(table: pa.Table) -> list[str]:
    return list(dict.fromkeys(table.column("market_id").to_pylist()))


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def _empty_card(path: Path, title: str, message: str = NO_EVENTS) -> Path:
    figure, axis = plt.subplots(figsize=(8, 2.2))
    axis.axis("off")
    axis.set_title(title)
    axis.text(0.5, 0.5, message, ha="center", va="center", fontsize=14, color="#777", style="italic")
    return _save(figure, path)


def prices_chart(prices: pa.Table, path: Path) -> Path:
    if not prices.num_rows:
        return _empty_card(path, "Index vs book mid", "no price samples")
    markets = _markets(prices)
    figure, axes = plt.subplots(len(markets), 1, figsize=(11, 2.8 * len(markets)), sharex=True, squeeze=False)
    for axis, market_id in zip(axes[:, 0], markets):
        rows = _where(prices, "market_id", market_id)
        times = _times(rows)
        axis.plot(times, rows.column("index_price").to_numpy(), label="index", lw=1.4)
        axis.plot(times, rows.column("book_mid").to_numpy(), label="book mid", lw=0.8)
        axis.set_title(market_id, loc="left")
        axis.set_ylabel("USD")
        axis.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right")
    return _save(figure, path)


def premium_chart(prices: pa.Table, funding: pa.Table, path: Path) -> Path:
    figure, axis = plt.subplots(figsize=(11, 3.5))
    if funding.num_rows:
        for market_id in _markets(funding):
            rows = _where(funding, "market_id", market_id)
            axis.step(_times(rows), rows.column("funding_rate_ppm").to_numpy(zero_copy_only=False) / 100,  # ppm -> bps
                      where="post", label=f"{market_id} funding")
        axis.set_title("Funding rate per interval (bps; longs pay when > 0)")
    else:
        for market_id in _markets(prices) if prices.num_rows else []:
            rows = _where(prices, "market_id", market_id)
            axis.plot(_times(rows), rows.column("funding_8h_bps").to_numpy(), lw=1, label=market_id)
        axis.set_title(f"Funding: {NO_EVENTS}; the rate per 8 h agents saw (bps)")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper right")
    return _save(figure, path)


def open_interest_chart(open_interest: pa.Table, path: Path) -> Path:
    if not open_interest.num_rows:
        return _empty_card(path, "Open interest", "no samples")
    figure, axis = plt.subplots(figsize=(11, 3.5))
    for market_id in _markets(open_interest):
        rows = _where(open_interest, "market_id", market_id)
        axis.plot(_times(rows), rows.column("open_interest_usd").to_numpy() / 1e6, label=market_id)
    axis.set_title("Open interest (million USD)")
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(figure, path)


def liquidations_chart(liquidations: pa.Table, path: Path) -> Path:
    fills = _where(liquidations, "kind", "liquidation") if liquidations.num_rows else liquidations
    if not fills.num_rows:
        return _empty_card(path, "Liquidations")
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [3, 1]})
    times = _times(fills)
    notional = fills.column("notional_usd").to_numpy(zero_copy_only=False)
    modes = np.array(fills.column("margin_mode").to_pylist())
    subaccounts = np.array(fills.column("subaccount").to_pylist())
    for mode in sorted(set(modes)):
        mask = modes == mode
        left.scatter(times[mask], notional[mask], s=8, label=mode, alpha=0.7)
    left.set_title("Liquidation fills (USD notional)")
    left.grid(alpha=0.3)
    left.legend()
    labels = sorted(set(modes))
    right.bar(labels, [len(set(subaccounts[modes == mode])) for mode in labels], color=["#d62728", "#9467bd"][:len(labels)])
    right.set_title("Liquidated, by margin mode")
    return _save(figure, path)


def insurance_chart(insurance: pa.Table, path: Path) -> Path:
    if not insurance.num_rows:
        return _empty_card(path, "Insurance fund", "no samples")
    figure, axis = plt.subplots(figsize=(11, 3.5))
    times = _times(insurance)
    axis.plot(times, insurance.column("insurance_fund_quote_quantums").to_numpy() / 1e6, label="insurance fund",
              color="#2ca02c")
    axis.plot(times, insurance.column("bad_debt_quote_quantums").to_numpy() / 1e6, label="bad debt", color="#d62728",
              ls=":")
    axis.set_title("Insurance fund and bad debt (USD)")
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(figure, path)


def pnl_chart(agent_pnl: pa.Table, path: Path) -> Path:
    if not agent_pnl.num_rows:
        return _empty_card(path, "PnL per agent type", "no agents")
    rows = agent_pnl.to_pylist()
    present = {r["agent_type"] for r in rows}
    kinds = [k for k in KIND_ORDER if k in present] + sorted(present - set(KIND_ORDER))
    figure, axis = plt.subplots(figsize=(10, 4))
    x = np.arange(len(kinds))
    parts = [(label, [sign * sum(r[col] for r in rows if r["agent_type"] == k) for k in kinds])
             for col, label, sign in PNL_PARTS + (("hedge_pnl_usd", "off-exchange hedge", 1),)]
    width = 0.8 / len(parts)
    for j, (label, values) in enumerate(parts):
        axis.bar(x + (j - (len(parts) - 1) / 2) * width, values, width, label=label)
    totals = [sum(r["total_pnl_usd"] for r in rows if r["agent_type"] == k) for k in kinds]
    axis.scatter(x, totals, marker="D", color="black", zorder=3, label="total")
    axis.axhline(0, color="#444", lw=0.8)
    axis.set_xticks(x, kinds)
    axis.set_title("PnL per agent type (USD): price, funding, fees")
    axis.grid(alpha=0.3, axis="y")
    axis.legend(fontsize=8)
    return _save(figure, path)


def rollup_chart(batches: pa.Table | None, withdrawals: pa.Table | None, proven: pa.Table | None,
                 path: Path) -> Path:
    """Per batch: proof latency and time to finality; withdrawals waiting; the proven state's lag."""
    if batches is None or not batches.num_rows:
        return _empty_card(path, "Rollup", "this run did not go through the rollup (--rollup)")
    from perpdex.report.html import _waiting_series

    figure, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    closed = batches.column("closed_ms").to_numpy().astype("datetime64[ms]")
    for column, label in (("proof_latency_ms", "proof latency"), ("finality_mean_ms", "mean time to finality"),
                          ("time_to_finality_ms", "first tx's time to finality")):
        values = batches.column(column).to_numpy(zero_copy_only=False).astype(np.float64) / 60_000
        axes[0].plot(closed, values, marker="o", ms=3, label=label)
    axes[0].set_title("Per batch (minutes)")
    axes[0].legend(fontsize=8)
    if withdrawals is not None and withdrawals.num_rows:
        times, counts, _ = _waiting_series(withdrawals)
        axes[1].step(times, counts, where="post")
    axes[1].set_title("Withdrawals waiting for finality")
    if proven is not None and proven.num_rows:
        axes[2].plot(_times(proven), proven.column("proven_lag_ms").to_numpy() / 3_600_000, color="#d62728")
    axes[2].set_title("Proven state lag (hours)")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.tick_params(axis="x", labelrotation=30, labelsize=8)
    return _save(figure, path)


def write_charts(folder: Path, tables: dict[str, pa.Table]) -> dict[str, Path]:
    """Every chart into `folder`; returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "chart:prices": prices_chart(tables["prices"], folder / "prices.png"),
        "chart:funding": premium_chart(tables["prices"], tables["funding"], folder / "funding.png"),
        "chart:open_interest": open_interest_chart(tables["open_interest"], folder / "open_interest.png"),
        "chart:liquidations": liquidations_chart(tables["liquidations"], folder / "liquidations.png"),
        "chart:insurance_fund": insurance_chart(tables["insurance_fund"], folder / "insurance_fund.png"),
        "chart:pnl": pnl_chart(tables["agent_pnl"], folder / "pnl_by_type.png"),
        "chart:rollup": rollup_chart(tables.get("batches"), tables.get("withdrawals"), tables.get("proven_balances"),
                                     folder / "rollup.png"),
    }
