"""The risk lab's report: every analysis of a portfolio run once (`analyze`), then one self-contained
HTML page (plotly.js embedded, works offline), PNG charts (matplotlib, Agg) and JSON (figures, results).

Files written into the output folder: `report.html`, `figures.json` (every plotly figure as JSON),
`results.json` (every number of every analysis), `charts/*.png` (one per figure).
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from perpdex.risk.carry import CarryResult, StressResult, expected_carry, funding_stress
from perpdex.risk.guardrails import GuardrailsResult, guardrails
from perpdex.risk.history import FundingHistory, PriceHistory, load_funding, load_prices
from perpdex.risk.joint_liquidation import JointResult, SimulationConfig, joint_liquidation
from perpdex.risk.liquidation_prices import LiquidationReport, liquidation_prices
from perpdex.risk.portfolio import Portfolio
from perpdex.risk.var import VarResult, value_at_risk

REPORT_FILE = "report.html"
FIGURES_FILE = "figures.json"
RESULTS_FILE = "results.json"
CHARTS_FOLDER = "charts"
LAYOUT_COLORS = {"as given": "#1f77b4", "all cross": "#d62728", "all isolated": "#9467bd"}
METHOD_COLORS = {"historical": "#1f77b4", "parametric": "#ff7f0e", "monte_carlo": "#2ca02c"}


@dataclass(frozen=True)
class RiskOptions:
    carry_horizon_hours: float = 24 * 30
    lookback_days: float | None = None  # of price and funding history used for estimates (None: all)
    var_paths: int = 100_000
    joint_paths: int = 20_000
    joint_horizon_hours: int = 120
    target_probability: float = 0.01
    vol_scale: float = 1.0
    seed: int = 7


@dataclass
class RiskReport:
    portfolio: dict[str, Any]
    carry: CarryResult
    stress: StressResult
    liquidation: LiquidationReport
    var: VarResult
    joint: JointResult
    guardrails: GuardrailsResult
    options: RiskOptions
    prices_source: str
    funding_source: str
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"portfolio": self.portfolio, "options": asdict(self.options), "prices_source": self.prices_source,
                "funding_source": self.funding_source, "seconds": self.seconds, "carry": self.carry.to_dict(),
                "funding_stress": self.stress.to_dict(), "liquidation_prices": self.liquidation.to_dict(),
                "var": self.var.to_dict(), "joint_liquidation": self.joint.to_dict(),
                "guardrails": self.guardrails.to_dict()}


def analyze(portfolio: Portfolio, prices: PriceHistory | None = None, funding: FundingHistory | None = None,
            options: RiskOptions = RiskOptions(), progress: Callable[[int], None] | None = None) -> RiskReport:
    """Run every analysis (shipped data slice by default). `progress(paths)` follows the joint MC."""
    prices = prices or load_prices()
    funding = funding or load_funding()
    seconds: dict[str, float] = {}

    def timed(name: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = action()
        seconds[name] = time.perf_counter() - started
        return result

    carry = timed("carry", lambda: expected_carry(portfolio, funding, horizon_hours=options.carry_horizon_hours,
                                                  lookback_days=options.lookback_days))
    stress = timed("funding_stress", lambda: funding_stress(portfolio, funding))
    liquidation = timed("liquidation_prices", lambda: liquidation_prices(portfolio))
    var = timed("var", lambda: value_at_risk(portfolio, prices, funding, lookback_days=options.lookback_days,
                                             mc_paths=options.var_paths, seed=options.seed))
    config = SimulationConfig(paths=options.joint_paths, horizon_hours=options.joint_horizon_hours,
                              seed=options.seed, vol_scale=options.vol_scale)
    joint = timed("joint_liquidation", lambda: joint_liquidation(portfolio, prices, funding, config=config,
                                                                 lookback_days=options.lookback_days,
                                                                 progress=progress))
    yearly = expected_carry(portfolio, funding, horizon_hours=24 * 365).total_paid_usd
    rails = timed("guardrails", lambda: guardrails(portfolio, prices, joint, target=options.target_probability,
                                                   horizon_days=options.joint_horizon_hours / 24,
                                                   expected_carry_per_year_usd=yearly))
    return RiskReport(portfolio.summary(), carry, stress, liquidation, var, joint, rails, options, prices.source,
                      funding.source, seconds)


# --- figures (plotly) ------------------------------------------------------------------------------
def _layout(figure: Any, title: str, height: int = 420, **extra: Any) -> Any:
    figure.update_layout(title=title, height=height, margin={"l": 60, "r": 20, "t": 60, "b": 50},
                         template="plotly_white", legend={"orientation": "h", "y": -0.2}, **extra)
    return figure


def build_figures(report: RiskReport) -> dict[str, Any]:
    """Every chart of the report as a plotly figure, by name."""
    import plotly.graph_objects as go

    figures: dict[str, Any] = {}
    carry = report.carry
    labels = [f"{p.market_id} ({p.account})" for p in carry.positions]
    values = [p.expected_paid_usd for p in carry.positions]
    figures["carry"] = _layout(go.Figure(go.Bar(
        x=labels, y=values, marker_color=["#d62728" if v > 0 else "#2ca02c" for v in values],
        text=[f"{v:,.0f}" for v in values], textposition="outside")),
        f"Expected funding over {carry.horizon_hours / 24:g} days (USD, + paid / - received): total "
        f"{carry.total_paid_usd:,.0f}")
    figure = go.Figure()
    for days, costs in report.stress.window_costs.items():
        figure.add_trace(go.Histogram(x=costs, name=f"{days}-day windows", opacity=0.6, nbinsx=80))
    figures["funding_windows"] = _layout(figure, "Funding cost of every 3-, 4- and 5-day window of history "
                                         "(today's positions, USD)", barmode="overlay", xaxis_title="USD paid")
    surface = report.liquidation.surface
    if surface is not None:
        moves = [100 * m for m in surface.moves]
        if surface.y_market is not None:
            figure = go.Figure(go.Heatmap(x=moves, y=moves, z=surface.cushion_usd, colorscale="RdYlGn", zmid=0,
                                          colorbar={"title": "NC - MMR $"}))
            boundary_x = [x for x, y in zip(moves, surface.boundary_y_move) if y is not None]
            boundary_y = [100 * y for y in surface.boundary_y_move if y is not None]
            figure.add_trace(go.Scatter(x=boundary_x, y=boundary_y, mode="lines", name="liquidation boundary (exact)",
                                        line={"color": "black", "width": 2}))
            figure.add_trace(go.Scatter(x=[0], y=[0], mode="markers", name="now", marker={"color": "black", "size": 9}))
            _layout(figure, f"Cross account: margin cushion over joint moves of {surface.x_market} and "
                            f"{surface.y_market}", height=560, xaxis_title=f"{surface.x_market} move %",
                    yaxis_title=f"{surface.y_market} move %", yaxis_range=[moves[0], moves[-1]])
        else:
            figure = _layout(go.Figure(go.Scatter(x=moves, y=surface.cushion_usd[0], mode="lines")),
                             f"Cross account: margin cushion vs {surface.x_market} move", xaxis_title="move %")
        figures["liquidation_surface"] = figure
    prices = report.liquidation.isolated + report.liquidation.cross
    figures["liquidation_distance"] = _layout(go.Figure(go.Bar(
        x=[f"{p.market_id} ({p.account})" for p in prices],
        y=[p.move_pct if p.move_pct is not None else 0.0 for p in prices],
        text=[f"{p.liquidation_price:,.6g}" if p.liquidation_price is not None else "none" for p in prices],
        textposition="outside", marker_color=["#9467bd" if p.mode == "isolated" else "#d62728" for p in prices])),
        "Move to the liquidation price (%, others fixed); label: the price", yaxis_title="%")
    figure = go.Figure()
    for method in ("historical", "parametric", "monte_carlo"):
        items = [f for f in report.var.figures if f.method == method]
        figure.add_trace(go.Bar(x=[f"VaR {f.confidence:.0%} {f.horizon_days:g}d" for f in items],
                                y=[f.var_usd for f in items], name=f"{method} VaR", marker_color=METHOD_COLORS[method]))
        figure.add_trace(go.Bar(x=[f"ES {f.confidence:.0%} {f.horizon_days:g}d" for f in items],
                                y=[f.es_usd for f in items], name=f"{method} ES", marker_color=METHOD_COLORS[method],
                                opacity=0.55))
    figures["var"] = _layout(figure, "Value at risk and expected shortfall (USD loss)", barmode="group")
    figure = go.Figure()
    for key, sample in report.var.pnl_samples.items():
        if key.endswith("@1d"):
            figure.add_trace(go.Histogram(x=sample, name=key.replace("@1d", " 1-day PnL"), opacity=0.55, nbinsx=100,
                                          histnorm="probability density"))
    for f in report.var.figures:
        if f.horizon_days == 1 and f.confidence == 0.99:
            figure.add_vline(x=-f.var_usd, line_dash="dash", line_color=METHOD_COLORS[f.method],
                             annotation_text=f"99% VaR {f.method}", annotation_position="top left")
    figures["pnl_distribution"] = _layout(figure, "1-day PnL: historical vs Monte Carlo (USD)", barmode="overlay")
    figure = go.Figure()
    hours = list(range(1, report.joint.horizon_hours + 1))
    for layout in report.joint.layouts:
        figure.add_trace(go.Scatter(x=hours, y=[100 * p for p in layout.cumulative_probability], name=layout.layout,
                                    line={"color": LAYOUT_COLORS.get(layout.layout)}))
    figures["joint_liquidation"] = _layout(figure, f"Probability of a liquidation by hour t ({report.joint.paths:,} "
                                                   "paths, funding spikes, liquidity withdrawal)",
                                           xaxis_title="hours", yaxis_title="%")
    buffer = report.guardrails.buffer
    figure = go.Figure(go.Scatter(x=[b for b, _ in buffer.buffer_curve], y=[100 * p for _, p in buffer.buffer_curve],
                                  mode="lines", name="liquidation probability"))
    figure.add_hline(y=100 * buffer.target_probability, line_dash="dash", annotation_text="target")
    figure.add_vline(x=buffer.buffer_usd, line_dash="dot", annotation_text=f"buffer {buffer.buffer_usd:,.0f}")
    figures["buffer"] = _layout(figure, f"Stable-collateral buffer vs {buffer.horizon_hours}-hour liquidation "
                                        f"probability ({buffer.account})", xaxis_title="USDC added",
                                yaxis_title="%")
    weights = report.guardrails.weights
    if weights:
        figures["max_weights"] = _layout(go.Figure([
            go.Bar(x=[w.asset for w in weights], y=[w.weight for w in weights], name="weight (|notional| / equity)"),
            go.Bar(x=[w.asset for w in weights], y=[w.max_weight for w in weights], name="max weight (99% 5-day move)")]),
            "Cross account: weight per asset vs its maximum", barmode="group")
    figure = go.Figure()
    for cut in report.guardrails.haircuts:
        if cut.history_days:
            figure.add_trace(go.Scatter(x=np.array(cut.history_days, dtype="datetime64[s]"),
                                        y=[100 * h for h in cut.history_haircut], name=cut.asset, mode="lines",
                                        line={"width": 1}))
    figures["haircuts"] = _layout(figure, "Dynamic collateral haircut (volatility part, 99% over 5 days, EWMA)",
                                  yaxis_title="%")
    return figures


# --- PNG (matplotlib) ----------------------------------------------------------------------------------
def write_pngs(report: RiskReport, folder: Path) -> dict[str, Path]:
    """One PNG per chart, matplotlib with the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def save(name: str, figure: Any) -> None:
        figure.tight_layout()
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        paths[f"chart:{name}"] = path

    figure, axis = plt.subplots(figsize=(9, 3.8))
    carry = report.carry
    values = [p.expected_paid_usd for p in carry.positions]
    axis.bar([f"{p.market_id}\n{p.account}" for p in carry.positions], values,
             color=["#d62728" if v > 0 else "#2ca02c" for v in values])
    axis.axhline(0, color="#444", lw=0.8)
    axis.set_title(f"Expected funding over {carry.horizon_hours / 24:g} days (USD, + paid)")
    save("carry", figure)
    figure, axis = plt.subplots(figsize=(9, 3.8))
    for days, costs in report.stress.window_costs.items():
        if costs:
            axis.hist(costs, bins=80, alpha=0.5, label=f"{days}-day windows")
    axis.set_title("Funding cost of every window of history (USD)")
    axis.legend()
    save("funding_windows", figure)
    surface = report.liquidation.surface
    if surface is not None:
        moves = np.array(surface.moves) * 100
        figure, axis = plt.subplots(figsize=(7.5, 6))
        if surface.y_market is not None:
            grid = np.array(surface.cushion_usd)
            limit = float(np.abs(grid).max()) or 1.0
            mesh = axis.pcolormesh(moves, moves, grid, cmap="RdYlGn", vmin=-limit, vmax=limit, shading="auto")
            figure.colorbar(mesh, ax=axis, label="NC - MMR (USD)")
            xs = [x for x, y in zip(moves, surface.boundary_y_move) if y is not None]
            ys = [100 * y for y in surface.boundary_y_move if y is not None]
            axis.plot(xs, ys, color="black", lw=2, label="liquidation boundary")
            axis.plot([0], [0], "ko", label="now")
            axis.set_ylim(moves[0], moves[-1])
            axis.set_xlabel(f"{surface.x_market} move %")
            axis.set_ylabel(f"{surface.y_market} move %")
            axis.legend(loc="lower right")
        else:
            axis.plot(moves, surface.cushion_usd[0])
            axis.axhline(0, color="black")
            axis.set_xlabel(f"{surface.x_market} move %")
        axis.set_title("Cross account liquidation surface")
        save("liquidation_surface", figure)
    figure, axis = plt.subplots(figsize=(9, 3.8))
    items = report.liquidation.isolated + report.liquidation.cross
    axis.bar([f"{p.market_id}\n{p.account}" for p in items], [p.move_pct or 0.0 for p in items],
             color=["#9467bd" if p.mode == "isolated" else "#d62728" for p in items])
    axis.axhline(0, color="#444", lw=0.8)
    axis.set_title("Move to the liquidation price (%, others fixed)")
    save("liquidation_distance", figure)
    figure, axis = plt.subplots(figsize=(10, 4))
    keys = sorted({(f.confidence, f.horizon_days) for f in report.var.figures})
    x = np.arange(len(keys))
    for j, method in enumerate(("historical", "parametric", "monte_carlo")):
        axis.bar(x + (j - 1) * 0.27, [report.var.figure(method, c, h).var_usd for c, h in keys], 0.27,
                 label=f"{method} VaR", color=METHOD_COLORS[method])
        axis.scatter(x + (j - 1) * 0.27, [report.var.figure(method, c, h).es_usd for c, h in keys], color="black",
                     marker="_", s=200, zorder=3, label="ES" if j == 0 else None)
    axis.set_xticks(x, [f"{c:.0%} {h:g}d" for c, h in keys])
    axis.set_title("VaR (bars) and ES (marks), USD loss")
    axis.legend(fontsize=8)
    save("var", figure)
    figure, axis = plt.subplots(figsize=(9, 3.8))
    for key, sample in report.var.pnl_samples.items():
        if key.endswith("@1d"):
            axis.hist(sample, bins=100, alpha=0.5, density=True, label=key)
    axis.set_title("1-day PnL (USD)")
    axis.legend()
    save("pnl_distribution", figure)
    figure, axis = plt.subplots(figsize=(9, 3.8))
    for layout in report.joint.layouts:
        axis.plot(range(1, report.joint.horizon_hours + 1), [100 * p for p in layout.cumulative_probability],
                  label=layout.layout, color=LAYOUT_COLORS.get(layout.layout))
    axis.set_xlabel("hours")
    axis.set_ylabel("%")
    axis.set_title("Probability of a liquidation by hour t")
    axis.legend()
    save("joint_liquidation", figure)
    figure, axis = plt.subplots(figsize=(9, 3.8))
    buffer = report.guardrails.buffer
    axis.plot([b for b, _ in buffer.buffer_curve], [100 * p for _, p in buffer.buffer_curve])
    axis.axhline(100 * buffer.target_probability, ls="--", color="#777", label="target")
    axis.axvline(buffer.buffer_usd, ls=":", color="black", label=f"buffer {buffer.buffer_usd:,.0f}")
    axis.set_xlabel("USDC added")
    axis.set_ylabel("%")
    axis.set_title(f"Liquidation probability vs stable-collateral buffer ({buffer.account})")
    axis.legend()
    save("buffer", figure)
    if report.guardrails.weights:
        figure, axis = plt.subplots(figsize=(8, 3.5))
        weights = report.guardrails.weights
        x = np.arange(len(weights))
        axis.bar(x - 0.2, [w.weight for w in weights], 0.4, label="weight")
        axis.bar(x + 0.2, [w.max_weight for w in weights], 0.4, label="max weight")
        axis.set_xticks(x, [w.asset for w in weights])
        axis.set_title("Cross account: weight per asset (x equity) vs max")
        axis.legend()
        save("max_weights", figure)
    figure, axis = plt.subplots(figsize=(9, 3.8))
    for cut in report.guardrails.haircuts:
        if cut.history_days:
            axis.plot(np.array(cut.history_days, dtype="datetime64[s]"), [100 * h for h in cut.history_haircut],
                      lw=0.8, label=cut.asset)
    axis.set_title("Dynamic collateral haircut (volatility part, %)")
    axis.legend(fontsize=8)
    save("haircuts", figure)
    return paths


# --- HTML ----------------------------------------------------------------------------------------------------
_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 16px 24px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
table.data { border-collapse: collapse; font-size: 0.85em; margin: 8px 0; } table.data td, table.data th
{ border: 1px solid #ddd; padding: 3px 8px; } td.num { text-align: right; } .note { color: #555; font-size: 0.9em; }
ul.advice li { margin: 4px 0; }
"""


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]], digits: int = 2) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{_fmt(v, digits)}</td>' if isinstance(v, (int, float)) and not isinstance(v, bool)
        else f"<td>{_fmt(v, digits)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="data"><tr>{head}</tr>{body}</table>'


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_html(report: RiskReport, figures: dict[str, Any]) -> str:
    """The page as one string; the first figure carries plotly.js (include_plotlyjs=True)."""
    embedded = False

    def chart(name: str) -> str:
        nonlocal embedded
        if name not in figures:
            return '<p class="note">no chart (nothing to show)</p>'
        text = figures[name].to_html(full_html=False, include_plotlyjs=not embedded,
                                     config={"displaylogo": False, "responsive": True})
        embedded = True
        return text

    p = report.portfolio
    sections = []
    sections.append(("Portfolio", _table(
        ["#", "market", "account", "size", "entry", "mark", "notional $", "isolated collateral $"],
        [[r["index"], r["market"], r["account"], r["size"], r["entry_price"], r["mark_price"], r["notional_usd"],
          r["isolated_collateral_usd"]] for r in p["positions"]], 4) + _table(
        ["account", "collateral $", "net collateral $", "IMR $", "MMR $", "free collateral $", "liquidatable"],
        [[a["account"], a["collateral_usd"], a["net_collateral_usd"], a["initial_requirement_usd"],
          a["maintenance_requirement_usd"], a["free_collateral_usd"], a["liquidatable"]] for a in p["accounts"]])
        + f'<p class="note">Margin from the core (perpdex.core.margin.account_risk) at the marks. Source: '
          f'{html.escape(p["source"])}; prices {html.escape(report.prices_source)}; funding '
          f'{html.escape(report.funding_source)}.</p>'))
    carry = report.carry
    sections.append(("Funding carry", chart("carry") + _table(
        ["market", "account", "notional $", "mean rate / 8h (bps)", "annualized %", f"paid over {carry.horizon_hours:g} h $"],
        [[c.market_id, c.account, c.notional_usd, c.mean_rate_per_hour * 8 * 1e4, 100 * c.annualized_rate,
          c.expected_paid_usd] for c in carry.positions])
        + f'<p class="note">Total {carry.total_paid_usd:,.2f} USD ({carry.total_paid_pct_of_equity:.2f}% of equity); '
          f'positive = paid. Missing history: {", ".join(carry.missing_assets) or "none"}.</p>'))
    stress = report.stress
    percentile_names = list(stress.windows[0].percentiles_usd) if stress.windows else []
    sections.append(("Funding stress windows", chart("funding_windows") + _table(
        ["window", "windows", "worst $", "worst window"] + [f"{k} $" for k in percentile_names] + ["best $"],
        [[f"{w.days:g} days", w.windows, w.worst_cost_usd, f"{_when(w.worst_start_s)} .. {_when(w.worst_end_s)}"]
         + [w.percentiles_usd[k] for k in percentile_names] + [w.best_cost_usd] for w in stress.windows])
        + _table(["held", "days", "each position at its adverse percentile $", "portfolio percentile $"],
                 [[f"p{h.percentile:g}", h.days, h.each_adverse_total_usd, h.portfolio_total_usd] for h in stress.held])
        + _table(["funding scenario", "days", "simple $", "compounded on size $", "% of notional", "% of equity"],
                 [[d.scenario, d.days, d.simple_cost_usd, d.compounded_cost_usd, d.compounded_pct_of_notional,
                   d.compounded_pct_of_equity] for d in stress.drag])
        + f'<p class="note">Common history {_when(stress.period_start_s)} .. {_when(stress.period_end_s)}; '
          "today's notionals replayed over every window (one per starting hour).</p>"))
    liq = report.liquidation
    rows = [[x.account, x.market_id, x.mark_price, x.liquidation_price, x.move_pct, x.liquidation_price_subticks,
             x.last_safe_price_subticks, x.closed_form_price, x.already_liquidatable] for x in liq.isolated + liq.cross]
    sections.append(("Liquidation prices", _table(
        ["account", "market", "mark", "liquidation price", "move %", "liquidation (subticks)",
         "last safe (subticks)", "closed form (Binance)", "already"], rows, 6)
        + chart("liquidation_distance") + chart("liquidation_surface")
        + '<p class="note">Exact on the core: the account is liquidatable at the reported oracle price and not '
          "one subtick before it (bisection on NC &lt; MMR of perpdex.core.margin). Cross prices hold the other "
          "markets at their marks; the surface shows NC - MMR over joint moves, the black line is the exact "
          "boundary.</p>"))
    var = report.var
    keys = sorted({(f.confidence, f.horizon_days) for f in var.figures})
    sections.append(("VaR and expected shortfall", _table(
        ["confidence", "horizon"] + [f"{m} VaR $" for m in METHOD_COLORS] + [f"{m} ES $" for m in METHOD_COLORS],
        [[f"{c:.0%}", f"{h:g} d"] + [var.figure(m, c, h).var_usd for m in METHOD_COLORS]
         + [var.figure(m, c, h).es_usd for m in METHOD_COLORS] for c, h in keys])
        + chart("var") + chart("pnl_distribution")
        + f'<p class="note">Assets {", ".join(var.assets)}; daily vols '
          f'{", ".join(f"{100 * v:.2f}%" for v in var.daily_vols)}; Student-t dof {_fmt(var.dof)}; '
          f"{var.samples:,} historical 1-day scenarios ({_when(var.history_start_s)} .. {_when(var.history_end_s)}), "
          f"{var.mc_paths:,} Monte Carlo paths. Net of expected funding "
          f'({", ".join(f"{k} d: {v:,.2f}" for k, v in var.funding_drag_usd.items())} USD) and of exit slippage that '
          "widens with the move.</p>"))
    joint = report.joint
    sections.append(("Joint liquidation (Monte Carlo)", chart("joint_liquidation") + _table(
        ["layout", "accounts", "P(liquidation) %", "+/- (1 se)", "loss given liquidation $",
         "liquidation cost given liq. $", "shortfall given liq. $", "expected loss $", "median hours to liq."],
        [[layout.layout, ", ".join(layout.accounts), 100 * layout.liquidation_probability,
          100 * layout.standard_error, layout.expected_loss_given_liquidation_usd,
          layout.expected_liquidation_cost_given_liquidation_usd, layout.expected_shortfall_given_liquidation_usd,
          layout.expected_loss_usd, layout.time_to_liquidation_hours.get("median")] for layout in joint.layouts])
        + f'<p class="note">{joint.paths:,} paths x {joint.horizon_hours} hours in {joint.seconds:.2f} s; '
          f"vol scale {joint.vol_scale:g}; funding spikes {joint.spikes.rate_per_hour * 8 * 1e4:g} bps/8h for "
          f"{joint.spikes.duration_hours} h with probability {joint.spikes.start_probability:.4f}/h per asset; "
          f"liquidation slippage {joint.liquidity.base * 1e4:g} bps + {joint.liquidity.move_multiplier:g} x move, "
          f"x{joint.liquidity.withdrawal_multiplier:g} after a {100 * joint.liquidity.withdrawal_move:g}% 24-hour "
          f"move; fee up to {100 * joint.liquidity.liquidation_fee:g}%.</p>"))
    rails = report.guardrails
    buffer = rails.buffer
    sections.append(("Guardrails", '<ul class="advice">' + "".join(f"<li>{html.escape(a)}</li>" for a in rails.advice)
                     + "</ul>" + chart("buffer") + _table(
        ["target", "base P %", "buffer $", "P with buffer %", "scale instead", "leverage before", "after",
         "capital efficiency lost %", "idle cost / year $", "expected carry / year $"],
        [[f"{100 * buffer.target_probability:g}%", 100 * buffer.base_probability, buffer.buffer_usd,
          100 * buffer.probability_with_buffer, buffer.scale_to_meet_target, buffer.leverage_before,
          buffer.leverage_after, buffer.capital_efficiency_loss_pct, buffer.opportunity_cost_per_year_usd,
          buffer.expected_carry_per_year_usd]])
        + chart("max_weights") + _table(
        ["asset", "notional $", "weight (x equity)", "99% 5-day adverse move %", "max weight", "max notional $", "breach"],
        [[w.asset, w.notional_usd, w.weight, 100 * w.stress_move, w.max_weight, w.max_notional_usd, w.breach]
         for w in rails.weights]) + chart("haircuts") + _table(
        ["collateral", "daily vol now %", "volatility haircut %", "size haircut %", "haircut %", "posted $",
         "counts as $", "buffer if posted in it $"],
        [[c.asset, 100 * c.daily_vol_now, 100 * c.volatility_haircut, 100 * c.size_haircut, 100 * c.haircut,
          c.size_usd, c.collateral_value_usd, buffer.buffer_in_collateral.get(c.asset)] for c in rails.haircuts])))
    title = f"perpdex risk report: {p['name']}"
    body = "\n".join(f"<section><h2>{html.escape(name)}</h2>\n{content}\n</section>" for name, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n"
            f'<p class="note">Equity {p["equity_usd"]:,.2f} USD across {len(p["accounts"])} margin accounts. '
            f"Generated by perpdex.risk; every number is in results.json.</p>\n{body}\n</body></html>\n")


def write_report(report: RiskReport, out_dir: str | Path) -> dict[str, Path]:
    """report.html, figures.json, results.json and charts/*.png in `out_dir`; returns name -> path."""
    import plotly.io as pio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = build_figures(report)
    paths = {"report": out / REPORT_FILE, "figures": out / FIGURES_FILE, "results": out / RESULTS_FILE}
    paths["report"].write_text(render_html(report, figures), encoding="utf-8")
    paths["figures"].write_text(
        "{" + ",".join(f"{json.dumps(name)}:{pio.to_json(figure, validate=False)}" for name, figure in figures.items())
        + "}", encoding="utf-8")
    paths["results"].write_text(json.dumps(report.to_dict(), indent=1, default=_json_default, allow_nan=True),
                                encoding="utf-8")
    paths.update(write_pngs(report, out / CHARTS_FOLDER))
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
