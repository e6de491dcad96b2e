"""The simulation report: ONE self-contained HTML page (plotly with its JavaScript embedded, no
network needed) drawn from the run's tables and key figures; sections with no data say so.

Reads only what `perpdex.sim.recorder` declares (Parquet tables or the same in memory) and
`summary.json`; it never recomputes exchange figures.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NO_EVENTS = "no events in this run"
PNL_PARTS = (("price_pnl_usd", "price PnL", 1), ("funding_usd", "funding", 1), ("fees_usd", "fees", -1),
             ("liquidation_fees_usd", "liquidation fees", -1), ("other_usd", "other", 1))
KIND_ORDER = ("market_maker", "directional", "arbitrageur", "noise")
COLORS = {"index": "#1f77b4", "mid": "#ff7f0e", "cross": "#d62728", "isolated": "#9467bd", "market_maker": "#2ca02c",
          "directional": "#d62728", "arbitrageur": "#1f77b4", "noise": "#7f7f7f"}


def _times(table: pa.Table) -> np.ndarray:
    return table.column("ts_ms").to_numpy().astype("datetime64[ms]")


def _where(table: pa.Table, column: str, value: Any) -> pa.Table:
    return table.filter(pc.equal(table.column(column), value))


def _figure_html(figure: Any) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})


def _empty(message: str = NO_EVENTS) -> str:
    return f'<p class="empty">{html.escape(message)}</p>'


def _layout(figure: Any, title: str, height: int = 420, **extra: Any) -> Any:
    figure.update_layout(title=title, height=height, margin={"l": 60, "r": 20, "t": 60, "b": 40},
                         legend={"orientation": "h", "y": -0.15}, template="plotly_white", **extra)
    return figure


def _markets(table: pa.Table) -> list[str]:
    seen: list[str] = []
    for value in table.column("market_id").to_pylist():
        if value not in seen:
            seen.append(value)
    return seen


# --- sections --------------------------------------------------------------------------------------
def prices_section(prices: pa.Table) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    markets = _markets(prices) if prices.num_rows else []
    if not markets:
        return _empty("no price samples")
    figure = make_subplots(rows=len(markets), cols=1, shared_xaxes=True, subplot_titles=markets,
                           vertical_spacing=0.06)
    for row, market_id in enumerate(markets, start=1):
        rows = _where(prices, "market_id", market_id)
        times = _times(rows)
        figure.add_trace(go.Scatter(x=times, y=rows.column("index_price").to_numpy(), name="index",
                                    line={"color": COLORS["index"], "width": 1.5}, showlegend=row == 1,
                                    legendgroup="index"), row=row, col=1)
        figure.add_trace(go.Scatter(x=times, y=rows.column("book_mid").to_numpy(), name="book mid",
                                    line={"color": COLORS["mid"], "width": 1}, showlegend=row == 1,
                                    legendgroup="mid"), row=row, col=1)
        figure.update_yaxes(title_text="USD", row=row, col=1)
    return _figure_html(_layout(figure, "Index vs book mid", height=260 * len(markets) + 80))


def premium_section(prices: pa.Table) -> str:
    import plotly.graph_objects as go

    if not prices.num_rows:
        return _empty("no price samples")
    figure = go.Figure()
    for market_id in _markets(prices):
        rows = _where(prices, "market_id", market_id)
        times = _times(rows)
        figure.add_trace(go.Scatter(x=times, y=rows.column("premium_bps").to_numpy(), name=f"{market_id} premium",
                                    line={"width": 0.6}, opacity=0.35, legendgroup=market_id))
        figure.add_trace(go.Scatter(x=times, y=rows.column("funding_8h_bps").to_numpy(),
                                    name=f"{market_id} funding seen", line={"width": 2}, legendgroup=market_id))
    figure.update_yaxes(title_text="bps")
    return _figure_html(_layout(figure, "Premium of the book mid over the index, and the funding rate per 8 h agents "
                                        "saw (the exchange's predicted rate)"))


def funding_section(funding: pa.Table, prices: pa.Table) -> str:
    import plotly.graph_objects as go

    if not funding.num_rows:
        return _empty() + premium_section(prices)
    figure = go.Figure()
    for market_id in _markets(funding):
        rows = _where(funding, "market_id", market_id)
        rate = rows.column("funding_rate_ppm").to_numpy(zero_copy_only=False) / 100  # ppm -> bps
        figure.add_trace(go.Bar(x=_times(rows), y=rate, name=market_id))
    figure.update_yaxes(title_text="bps per interval (longs pay when > 0)")
    return _figure_html(_layout(figure, "Funding rate per interval", barmode="group")) + premium_section(prices)


def open_interest_section(open_interest: pa.Table) -> str:
    import plotly.graph_objects as go

    if not open_interest.num_rows:
        return _empty("no open interest samples")
    figure = go.Figure()
    for market_id in _markets(open_interest):
        rows = _where(open_interest, "market_id", market_id)
        figure.add_trace(go.Scatter(x=_times(rows), y=rows.column("open_interest_usd").to_numpy(), name=market_id))
    figure.update_yaxes(title_text="USD at the oracle price")
    return _figure_html(_layout(figure, "Open interest"))


def liquidity_section(prices: pa.Table) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not prices.num_rows:
        return _empty("no price samples")
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True,
                           subplot_titles=("spread (bps)", "depth within 1% of mid, bid + ask (USD)"))
    for market_id in _markets(prices):
        rows = _where(prices, "market_id", market_id)
        times = _times(rows)
        figure.add_trace(go.Scatter(x=times, y=rows.column("spread_bps").to_numpy(), name=market_id,
                                    legendgroup=market_id, line={"width": 1}), row=1, col=1)
        depth = rows.column("bid_depth_usd").to_numpy() + rows.column("ask_depth_usd").to_numpy()
        figure.add_trace(go.Scatter(x=times, y=depth, name=market_id, legendgroup=market_id, showlegend=False,
                                    line={"width": 1}), row=2, col=1)
    return _figure_html(_layout(figure, "Liquidity: spread and depth", height=560))


def liquidations_section(liquidations: pa.Table) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fills = _where(liquidations, "kind", "liquidation") if liquidations.num_rows else liquidations
    if not fills.num_rows:
        return _empty()
    times = _times(fills).astype("datetime64[m]")
    bucket = (times.astype("int64") // 15 * 15).astype("datetime64[m]")  # 15-minute buckets
    modes = fills.column("margin_mode").to_pylist()
    notional = fills.column("notional_usd").to_numpy(zero_copy_only=False)
    figure = make_subplots(rows=1, cols=2, column_widths=[0.72, 0.28],
                           subplot_titles=("liquidated notional per 15 minutes (USD)", "by margin mode"))
    totals: dict[str, tuple[float, set[str]]] = {}
    subaccounts = fills.column("subaccount").to_pylist()
    for mode in sorted(set(modes)):
        mask = np.array([m == mode for m in modes])
        keys, inverse = np.unique(bucket[mask], return_inverse=True)
        sums = np.bincount(inverse, weights=notional[mask])
        figure.add_trace(go.Bar(x=keys, y=sums, name=mode, marker_color=COLORS.get(mode)), row=1, col=1)
        totals[mode] = (float(notional[mask].sum()), {s for s, m in zip(subaccounts, modes) if m == mode})
    figure.add_trace(go.Bar(x=list(totals), y=[len(v[1]) for v in totals.values()], name="subaccounts",
                            marker_color=[COLORS.get(mode, "#333") for mode in totals],
                            text=[f"${v[0]:,.0f}" for v in totals.values()], showlegend=False), row=1, col=2)
    figure.update_yaxes(title_text="subaccounts liquidated", row=1, col=2)
    return _figure_html(_layout(figure, "Liquidations over time and by margin mode", barmode="stack"))


def insurance_section(insurance: pa.Table) -> str:
    import plotly.graph_objects as go

    if not insurance.num_rows:
        return _empty("no insurance fund samples")
    times = _times(insurance)
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=times, y=insurance.column("insurance_fund_quote_quantums").to_numpy() / 1e6,
                                name="insurance fund", line={"color": "#2ca02c"}))
    figure.add_trace(go.Scatter(x=times, y=insurance.column("bad_debt_quote_quantums").to_numpy() / 1e6,
                                name="bad debt outstanding", line={"color": "#d62728", "dash": "dot"}))
    figure.add_trace(go.Scatter(x=times, y=insurance.column("fees_collected_quote_quantums").to_numpy() / 1e6,
                                name="trading fees collected", line={"color": "#7f7f7f", "width": 1}, yaxis="y2"))
    figure.update_layout(yaxis={"title": "USD"}, yaxis2={"title": "fees USD", "overlaying": "y", "side": "right"})
    return _figure_html(_layout(figure, "Insurance fund, bad debt and fees"))


def bad_debt_section(liquidations: pa.Table) -> str:
    rows = [row for row in liquidations.to_pylist() if row["kind"] in ("deleverage", "bad_debt")] \
        if liquidations.num_rows else []
    if not rows:
        return _empty()
    header = "<tr><th>time (UTC)</th><th>event</th><th>subaccount</th><th>type</th><th>mode</th><th>market</th>" \
             "<th>size (base quantums)</th><th>price (subticks)</th><th>bad debt (USD)</th></tr>"
    body = []
    for row in rows[:200]:
        when = str(np.datetime64(row["ts_ms"], "ms")).replace("T", " ")[:19]
        debt = "" if row["bad_debt_quote_quantums"] is None else f"{row['bad_debt_quote_quantums'] / 1e6:,.2f}"
        cells = [when, "ADL (deleverage)" if row["kind"] == "deleverage" else "bad debt", row["subaccount"],
                 row["agent_type"], row["margin_mode"], row["market_id"] or "",
                 "" if row["size_base_quantums"] is None else f"{row['size_base_quantums']:,}",
                 "" if row["fill_price_subticks"] is None else f"{row['fill_price_subticks']:,}", debt]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    more = f"<p>{len(rows) - 200} more rows in tables/liquidations.parquet</p>" if len(rows) > 200 else ""
    return f'<table class="data">{header}{"".join(body)}</table>{more}'


def pnl_section(agent_pnl: pa.Table, pnl_by_type: pa.Table) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not agent_pnl.num_rows:
        return _empty("no agents")
    kinds = [k for k in KIND_ORDER if k in set(agent_pnl.column("agent_type").to_pylist())]
    kinds += sorted(set(agent_pnl.column("agent_type").to_pylist()) - set(kinds))
    rows = agent_pnl.to_pylist()
    figure = make_subplots(rows=1, cols=2, subplot_titles=("final PnL by part (USD)", "total PnL over time (USD)"))
    for column, label, sign in PNL_PARTS:
        values = [sign * sum(r[column] for r in rows if r["agent_type"] == kind) for kind in kinds]
        if column == "other_usd" and not any(abs(v) > 0.005 for v in values):
            continue
        figure.add_trace(go.Bar(x=kinds, y=values, name=label), row=1, col=1)
    hedges = [sum(r["hedge_pnl_usd"] for r in rows if r["agent_type"] == kind) for kind in kinds]
    if any(abs(v) > 0.005 for v in hedges):
        figure.add_trace(go.Bar(x=kinds, y=hedges, name="off-exchange hedge", marker_pattern_shape="/"), row=1, col=1)
    totals = [sum(r["total_pnl_usd"] for r in rows if r["agent_type"] == kind) for kind in kinds]
    figure.add_trace(go.Scatter(x=kinds, y=totals, mode="markers", name="total (on exchange)",
                                marker={"symbol": "diamond", "size": 12, "color": "black"}), row=1, col=1)
    if pnl_by_type.num_rows:
        for kind in kinds:
            series = _where(pnl_by_type, "agent_type", kind)
            figure.add_trace(go.Scatter(x=_times(series), y=series.column("total_pnl_usd").to_numpy(), name=kind,
                                        line={"color": COLORS.get(kind)}, legendgroup=f"t-{kind}"), row=1, col=2)
    return _figure_html(_layout(figure, "PnL per agent type: price, funding, fees", barmode="relative", height=460))


def accounts_section(accounts: pa.Table) -> str:
    import plotly.graph_objects as go

    if not accounts.num_rows:
        return _empty("no account samples")
    figure = go.Figure()
    groups = sorted({(k, m) for k, m in zip(accounts.column("agent_type").to_pylist(),
                                           accounts.column("margin_mode").to_pylist())})
    for kind, mode in groups:
        rows = accounts.filter(pc.and_(pc.equal(accounts.column("agent_type"), kind),
                                       pc.equal(accounts.column("margin_mode"), mode)))
        below = rows.column("below_initial").to_numpy()
        if not below.any():
            continue
        figure.add_trace(go.Scatter(x=_times(rows), y=below, name=f"{kind} ({mode}) below initial",
                                    line={"shape": "hv"}))
    if not figure.data:
        return _empty("no account fell below initial margin")
    figure.update_yaxes(title_text="subaccounts")
    return _figure_html(_layout(figure, "Subaccounts below initial margin (they can only reduce risk)"))


# --- the rollup ----------------------------------------------------------------------------------
NO_ROLLUP = "this run did not go through the rollup (perpdex sim run SCENARIO --rollup)"
MAX_GANTT_BATCHES = 400


def _ms_times(values: Sequence[int | None]) -> np.ndarray:
    return np.array([np.datetime64(v, "ms") if v is not None else np.datetime64("NaT") for v in values])


def _waiting_series(withdrawals: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Withdrawals applied but not yet final, over time: (times, count, USD) as steps; a withdrawal
    is final from its batch's acceptance on (finals first at a tie)."""
    rows = withdrawals.to_pylist()
    changes = []
    for row in rows:
        changes.append((row["ts_ms"], 1, 1, row["amount_usd"]))
        if row["final_ms"] is not None:
            changes.append((row["final_ms"], 0, -1, -row["amount_usd"]))
    changes.sort()
    times, counts, values = [], [], []
    count, value = 0, 0.0
    for ts_ms, _, delta, amount in changes:
        count += delta
        value += amount
        if times and times[-1] == ts_ms:
            counts[-1], values[-1] = count, value
        else:
            times.append(ts_ms)
            counts.append(count)
            values.append(value)
    return np.array(times, dtype="datetime64[ms]"), np.array(counts), np.array(values)


def _duration(minutes: float) -> str:
    return f"{minutes / 60:,.2f} h" if abs(minutes) >= 120 else f"{minutes:,.1f} min"


def rollup_text(rollup: dict[str, Any]) -> str:
    def spread(figure: dict[str, Any]) -> str:
        if figure.get("mean") is None:
            return "n/a"
        return (f"mean {_duration(figure['mean'])}, p50 {_duration(figure['p50'])}, p99 {_duration(figure['p99'])}, "
                f"max {_duration(figure['max'])}")

    waiting = rollup["max_withdrawals_waiting"]
    proving = rollup["proving"]
    return (
        f"<p>{rollup['batches']:,} batches ({rollup['batches_accepted']:,} accepted on L1"
        f"{'' if rollup['settled'] else ', NOT all settled'}), closed every {rollup['batch_max_txs']:,} transactions or "
        f"{rollup['batch_max_age_hours']:g} h of transaction time (one every "
        f"{_duration(rollup['batch_interval_minutes'] or 0)} on average, {rollup['txs_per_batch_mean'] or 0:,.0f} "
        f"transactions each), proved in {proving['fixed_minutes']:g} min + {proving['per_tx_ms']:g} ms per "
        f"transaction (at most {proving['max_hours']:g} h); state tree hash {html.escape(rollup['hash'])}, "
        f"liabilities {'committed' if rollup['commit_liabilities'] else 'not committed'}, funding "
        f"<b>{html.escape(rollup['funding'])}</b>"
        + (f" ({rollup['funding_finalize_txs']:,} FundingFinalize transactions)" if rollup["funding"] == "finalized"
           else "") + ".</p>"
        f"<ul><li>Proof latency (batch closed to proof ready): {spread(rollup['proof_latency_minutes'])}.</li>"
        f"<li>Time to finality of a transaction (its time to its batch's acceptance): "
        f"{spread(rollup['time_to_finality_minutes'])}.</li>"
        f"<li>Withdrawals: {rollup['withdrawals']:,}, waiting for finality {spread(rollup['withdrawal_wait_minutes'])}; "
        f"at most {waiting['count']:,} waiting at once, worth {_usd(waiting['usd'])}"
        + (f" ({html.escape(waiting['at'])})" if waiting.get("at") else "") + ".</li>"
        f"<li>The proven state (last accepted root) lags the matched one by {spread(rollup['proven_lag_minutes'])}; "
        f"at most {_usd(rollup['max_equity_unproven_usd'])} of account equity differed from its proven value "
        f"(summed per subaccount, after the first accepted batch).</li>"
        f"<li>Cost: {rollup['commit_seconds']:,.1f} s committing state trees, {rollup['verify_seconds']:,.1f} s "
        f"accepting (re-execution verifier), {rollup['published_gas']:,} gas at StarkEx's published 426 per trade, "
        f"{rollup['calldata_bytes']:,} bytes of state diffs.</li></ul>")


def rollup_section(batches: pa.Table, withdrawals: pa.Table, proven: pa.Table, summary: dict[str, Any]) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rollup = summary.get("rollup")
    if not batches.num_rows:
        return _empty(NO_ROLLUP)
    parts = [rollup_text(rollup)] if rollup else []
    rows = batches.to_pylist()
    if len(rows) <= MAX_GANTT_BATCHES:
        figure = go.Figure()
        labels = [f"batch {row['batch_id']}" for row in rows]
        for name, start, end, color in (("collecting transactions", "first_tx_ms", "closed_ms", "#9ecae1"),
                                        ("proving", "closed_ms", "proof_ready_ms", "#fd8d3c"),
                                        ("waiting for L1", "proof_ready_ms", "accepted_ms", "#31a354")):
            starts = [row[start] for row in rows]
            lengths = [(row[end] - row[start]) if row[end] is not None else None for row in rows]
            figure.add_trace(go.Bar(y=labels, x=lengths, base=_ms_times(starts), orientation="h", name=name,
                                    marker_color=color))
        figure.update_xaxes(type="date")
        figure.update_yaxes(autorange="reversed")
        parts.append(_figure_html(_layout(figure, "Each batch: collecting transactions, proving, acceptance on L1",
                                          height=min(900, 160 + 18 * len(rows)), barmode="overlay")))
    figure = go.Figure()
    closed = _ms_times([row["closed_ms"] for row in rows])
    for column, name in (("proof_latency_ms", "proof latency (closed to proof ready)"),
                         ("finality_mean_ms", "mean time to finality of its transactions"),
                         ("time_to_finality_ms", "time to finality of its first transaction")):
        values = np.array([row[column] if row[column] is not None else np.nan for row in rows], dtype=np.float64)
        figure.add_trace(go.Scatter(x=closed, y=values / 60_000, name=name, mode="lines+markers"))
    figure.update_yaxes(title_text="minutes")
    figure.update_xaxes(title_text="batch closed")
    parts.append(_figure_html(_layout(figure, "Proof latency and time to finality per batch")))
    if withdrawals.num_rows and withdrawals.column("final_ms").null_count < withdrawals.num_rows:
        times, counts, values = _waiting_series(withdrawals)
        figure = make_subplots(rows=1, cols=2, column_widths=[0.68, 0.32],
                               subplot_titles=("withdrawals waiting for finality", "wait per withdrawal (minutes)"),
                               specs=[[{"secondary_y": True}, {}]])
        figure.add_trace(go.Scatter(x=times, y=counts, name="waiting (count)", line={"shape": "hv"}), row=1, col=1)
        figure.add_trace(go.Scatter(x=times, y=values, name="waiting (USD)", line={"shape": "hv", "dash": "dot"}),
                         row=1, col=1, secondary_y=True)
        waits = withdrawals.column("wait_ms").to_numpy(zero_copy_only=False).astype(np.float64) / 60_000
        figure.add_trace(go.Histogram(x=waits[np.isfinite(waits)], name="withdrawals", nbinsx=40,
                                      marker_color="#7f7f7f", showlegend=False), row=1, col=2)
        figure.update_yaxes(title_text="withdrawals", row=1, col=1, secondary_y=False)
        figure.update_yaxes(title_text="USD", row=1, col=1, secondary_y=True)
        parts.append(_figure_html(_layout(figure, "Withdrawals waiting for their batch to be accepted")))
    else:
        parts.append(_empty("no withdrawals in this run (agents withdraw with --set withdrawals.per_agent_per_day=N)"))
    if proven.num_rows:
        figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                               subplot_titles=("equity and collateral: matched now vs at the last accepted root (USD)",
                                               "how far the proven state lags, and the equity not yet proven"),
                               specs=[[{}], [{"secondary_y": True}]])
        times = _times(proven)
        # before the first accepted batch nothing is proven: those samples are left out of the proven lines
        nothing_proven = np.array([value is None for value in proven.column("proven_batch_id").to_pylist()])

        def proven_only(column: str) -> np.ndarray:
            values = proven.column(column).to_numpy().astype(np.float64)
            values[nothing_proven] = np.nan
            return values

        for column, name, style in (("equity_matched_usd", "equity, matched", {"color": "#1f77b4"}),
                                    ("equity_proven_usd", "equity, proven", {"color": "#1f77b4", "dash": "dot"}),
                                    ("collateral_matched_usd", "USDC balances, matched", {"color": "#2ca02c"}),
                                    ("collateral_proven_usd", "USDC balances, proven",
                                     {"color": "#2ca02c", "dash": "dot"})):
            values = proven_only(column) if "proven" in column else proven.column(column).to_numpy()
            figure.add_trace(go.Scatter(x=times, y=values, name=name, line=style), row=1, col=1)
        figure.add_trace(go.Scatter(x=times, y=proven.column("proven_lag_ms").to_numpy() / 3_600_000,
                                    name="proven state lag (hours)", line={"color": "#d62728"}), row=2, col=1)
        figure.add_trace(go.Scatter(x=times, y=proven_only("equity_unproven_usd"),
                                    name="|matched - proven| equity, summed (USD)", line={"color": "#9467bd"}),
                         row=2, col=1, secondary_y=True)
        figure.update_yaxes(title_text="hours", row=2, col=1, secondary_y=False)
        figure.update_yaxes(title_text="USD", row=2, col=1, secondary_y=True)
        parts.append(_figure_html(_layout(figure, "Matched vs proven balances", height=640)))
        below = proven.column("below_maintenance_matched").to_numpy()
        below_proven = proven.column("below_maintenance_proven").to_numpy()
        if below.any() or below_proven.any():
            figure = go.Figure()
            figure.add_trace(go.Scatter(x=times, y=below, name="below maintenance, matched", line={"shape": "hv"}))
            figure.add_trace(go.Scatter(x=times, y=below_proven, name="below maintenance, proven",
                                        line={"shape": "hv", "dash": "dot"}))
            figure.update_yaxes(title_text="subaccounts")
            parts.append(_figure_html(_layout(figure, "Margin: subaccounts below maintenance, matched vs proven")))
    return "\n".join(parts)


def rejections_section(rejections: pa.Table) -> str:
    if not rejections.num_rows:
        return _empty("no transaction was rejected")
    rows = sorted(rejections.to_pylist(), key=lambda r: -r["count"])
    body = "".join(f"<tr><td>{html.escape(r['agent_type'])}</td><td>{html.escape(r['code'])}</td>"
                   f"<td class='num'>{r['count']:,}</td></tr>" for r in rows)
    return f'<table class="data"><tr><th>agent type</th><th>reason</th><th>count</th></tr>{body}</table>'


# --- text summary ----------------------------------------------------------------------------------
def _usd(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"-${-value:,.0f}" if value < 0 else f"${value:,.0f}"


def summary_html(summary: dict[str, Any]) -> str:
    s = summary
    lines = [
        f"<b>{html.escape(str(s.get('scenario')))}</b>: {html.escape(str(s.get('description', '')))}",
        f"{s.get('start')} to {s.get('end')} ({s.get('days')} simulated days, {s.get('steps', 0):,} steps of "
        f"{s.get('step_seconds')} s), seed {s.get('seed')}, markets {', '.join(s.get('markets', []))}.",
        f"{s.get('agents', 0):,} agents ("
        + ", ".join(f"{n} {html.escape(k)}" for k, n in s.get("agents_by_type", {}).items())
        + f") sent {s.get('orders_submitted', 0):,} orders and {s.get('cancels_submitted', 0):,} cancels; "
        f"{s.get('fills', 0):,} fills traded {_usd(s.get('traded_usd'))}; the exchange collected "
        f"{_usd(s.get('fees_collected_usd'))} in fees.",
        f"Liquidations: {s.get('liquidated_subaccounts', 0):,} subaccounts in {s.get('liquidation_fills', 0):,} fills "
        f"({', '.join(f'{mode} {n}' for mode, n in s.get('liquidated_by_margin_mode', {}).items()) or 'none'}), "
        f"{_usd(s.get('liquidated_notional_usd'))} notional; {s.get('deleverages', 0):,} deleverages (ADL), "
        f"{s.get('bankrupt_subaccounts', 0):,} bankrupt subaccounts, bad debt {_usd(s.get('bad_debt_usd'))}.",
        f"Insurance fund {_usd(s.get('insurance_fund_start_usd'))} at the start, "
        f"{_usd(s.get('insurance_fund_usd'))} at the end. Funding: {s.get('funding_intervals', 0):,} market "
        "intervals closed" + ("; " + "; ".join(
            f"{html.escape(m)} mean {f['mean_8h_bps']:+.2f} bps per 8 h (range {f['min_8h_bps']:+.2f} to "
            f"{f['max_8h_bps']:+.2f}), longs paid in {f['longs_paid_share']:.0%} of intervals"
            for m, f in s.get("funding", {}).items()) if s.get("funding") else " (no funding in this run)") + ".",
    ]
    market_lines = []
    for market_id, m in s.get("per_market", {}).items():
        market_lines.append(
            f"<li>{html.escape(market_id)}: index {m['index_change_pct']:+.1f}% (max drawdown "
            f"{m['max_drawdown_pct']:.1f}%), median spread {m['median_spread_bps']} bps (max {m['max_spread_bps']}), "
            f"max |premium| {m['max_abs_premium_bps']} bps, traded {_usd(m['traded_usd'])}, "
            f"open interest at the end {_usd(m['open_interest_usd'])}</li>")
    pnl_lines = []
    for kind, p in s.get("pnl_by_type_usd", {}).items():
        hedge = f"; off-exchange hedge {_usd(p['hedge_pnl_usd'])}" if p.get("hedge_pnl_usd") else ""
        pnl_lines.append(
            f"<li>{html.escape(kind)}: {_usd(p['total_pnl_usd'])} = price {_usd(p['price_pnl_usd'])} + funding "
            f"{_usd(p['funding_usd'])} - fees {_usd(p['fees_usd'])} - liquidation fees "
            f"{_usd(p['liquidation_fees_usd'])}{hedge}</li>")
    tail = (f"Rejected transactions: {s.get('rejected', 0):,}. Wall time {s.get('wall_seconds')} s "
            f"({s.get('orders_per_s') or 0:,.0f} orders/s). Final state digest <code>{s.get('final_digest')}</code>.")
    return ("<p>" + "</p><p>".join(lines) + "</p><ul>" + "".join(market_lines) + "</ul><p>PnL by agent type:</p><ul>"
            + "".join(pnl_lines) + "</ul><p>" + tail + "</p>")


# --- the page --------------------------------------------------------------------------------------
_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 16px 24px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
.empty { color: #777; font-style: italic; padding: 12px; background: #f6f6f6; }
table.data { border-collapse: collapse; font-size: 0.85em; } table.data td, table.data th { border: 1px solid #ddd;
padding: 3px 8px; } td.num { text-align: right; } .summary { background: #fafafa; padding: 8px 16px; }
"""


def _table(tables: dict[str, pa.Table], name: str) -> pa.Table:
    """A table of the run, or an empty one with its declared columns (folders written before it existed)."""
    if name in tables:
        return tables[name]
    from perpdex.sim.recorder import TABLES

    return pa.schema([pa.field(column, kind) for column, kind in TABLES[name]]).empty_table()


def render_report(tables: dict[str, pa.Table], summary: dict[str, Any]) -> str:
    """The whole page as one string, plotly.js inlined."""
    from plotly.offline import get_plotlyjs

    sections: Sequence[tuple[str, str]] = (
        ("Key figures", f'<div class="summary">{summary_html(summary)}</div>'),
        ("Index vs book mid", prices_section(tables["prices"])),
        ("Funding rate per interval", funding_section(tables["funding"], tables["prices"])),
        ("Open interest", open_interest_section(tables["open_interest"])),
        ("Liquidity", liquidity_section(tables["prices"])),
        ("Liquidations", liquidations_section(tables["liquidations"])),
        ("Accounts at risk", accounts_section(tables["accounts_at_risk"])),
        ("Insurance fund", insurance_section(tables["insurance_fund"])),
        ("Bad debt and ADL events", bad_debt_section(tables["liquidations"])),
        ("PnL per agent type", pnl_section(tables["agent_pnl"], tables["pnl_by_type"])),
        ("Rollup: batches, proofs and finality", rollup_section(_table(tables, "batches"),
                                                                _table(tables, "withdrawals"),
                                                                _table(tables, "proven_balances"), summary)),
        ("Rejected transactions", rejections_section(tables["rejections"])),
    )
    title = f"perpdex simulation: {summary.get('scenario', '')}"
    body = "\n".join(f"<section><h2>{html.escape(name)}</h2>\n{content}\n</section>" for name, content in sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style>\n<script type=\"text/javascript\">{get_plotlyjs()}</script>\n</head>\n<body>"
            f"<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def write_report(path: Path, tables: dict[str, pa.Table], summary: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(tables, summary), encoding="utf-8")
    return path
