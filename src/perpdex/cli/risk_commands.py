"""`perpdex risk report|carry|stress|liqprice|var|joint|guardrails` and `perpdex bench risk`: parse,
call `perpdex.risk`, render with rich. A bad portfolio or data file is one line on stderr naming the
field, and exit code 2. With no PORTFOLIO the shipped example runs on the shipped data slice, offline.

Wiring (in cli/main.py): `app.add_typer(risk_app, name="risk")` and
`bench_app.command("risk")(bench_risk)`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from perpdex.core.errors import PerpdexError

risk_app = typer.Typer(help="Risk lab for a portfolio TOML: funding carry and stress, liquidation prices, VaR/ES, "
                            "joint liquidation, guardrails, and an HTML/PNG/JSON report.", no_args_is_help=True)
console = Console()
if not console.is_terminal:
    console = Console(width=150)  # piped or captured output: don't squeeze tables into 80 columns

PORTFOLIO_ARG = typer.Argument(None, help="Portfolio TOML (default: the shipped example).", show_default=False)
PRICES_OPT = typer.Option(None, "--prices", help="Hourly price CSV/Parquet, wide or long (default: shipped slice).")
FUNDING_OPT = typer.Option(None, "--funding", help="Funding CSV/Parquet (timestamp, market, rate[, interval_hours]) "
                                                   "or a sim run folder (default: shipped slice).")
VENUE_OPT = typer.Option(None, "--venue", help="Venue to use when the funding file has several (default binance).")
LOOKBACK_OPT = typer.Option(None, "--lookback-days", min=1.0, help="Use only the last N days of history.")
JSON_OPT = typer.Option(False, "--json", help="Print the result as JSON.")
OUT_OPT = typer.Option("out/risk", "--out", help="Output folder: report.html, figures.json, results.json, charts/*.png.")


def _fail(error: PerpdexError) -> typer.Exit:
    print(f"perpdex: error: {error}", file=sys.stderr)
    return typer.Exit(code=2)


def _inputs(portfolio: Path | None, prices: Path | None = None, funding: Path | None = None,
            venue: str | None = None, *, need_prices: bool = True, need_funding: bool = True) -> tuple[Any, Any, Any]:
    from perpdex.risk.history import load_funding, load_prices
    from perpdex.risk.portfolio import load_portfolio

    loaded = load_portfolio(portfolio)
    price_history = load_prices(prices) if need_prices else None
    funding_history = load_funding(funding, venue=venue) if need_funding else None
    return loaded, price_history, funding_history


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column in ("market", "account", "layout", "asset", "method",
                                                              "window", "scenario", "accounts") else "right")
    for row in rows:
        table.add_row(*[_cell(value) for value in row])
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _progress(total: int, label: str) -> tuple[Progress, Any]:
    progress = Progress(TextColumn(label), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} paths"),
                        TimeElapsedColumn(), console=console, transient=True)
    task = progress.add_task(label, total=total)
    return progress, lambda done: progress.advance(task, done)


@risk_app.command("report")
def risk_report(
    portfolio: Path | None = PORTFOLIO_ARG,
    out: Path = OUT_OPT,
    prices: Path | None = PRICES_OPT, funding: Path | None = FUNDING_OPT, venue: str | None = VENUE_OPT,
    lookback_days: float | None = LOOKBACK_OPT,
    paths: int = typer.Option(20_000, "--paths", min=100, help="Joint-liquidation Monte Carlo paths."),
    var_paths: int = typer.Option(100_000, "--var-paths", min=100, help="VaR Monte Carlo paths."),
    horizon_hours: int = typer.Option(120, "--horizon-hours", min=1, help="Joint-liquidation horizon (hours)."),
    target: float = typer.Option(0.01, "--target", min=1e-6, max=0.5, help="Liquidation probability target."),
    vol_scale: float = typer.Option(1.0, "--vol-scale", min=0.01, help="Stress: scale every volatility."),
    seed: int = typer.Option(7, "--seed"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar over Monte Carlo paths."),
    as_json: bool = JSON_OPT,
) -> None:
    """Every analysis of the portfolio, written as one offline HTML report plus PNG charts and JSON."""
    from perpdex.risk.report import RiskOptions, analyze, write_report

    try:
        loaded, price_history, funding_history = _inputs(portfolio, prices, funding, venue)
        options = RiskOptions(lookback_days=lookback_days, var_paths=var_paths, joint_paths=paths,
                              joint_horizon_hours=horizon_hours, target_probability=target, vol_scale=vol_scale,
                              seed=seed)
        if progress and not as_json:
            bar, advance = _progress(paths, "joint liquidation")
            with bar:
                report = analyze(loaded, price_history, funding_history, options, progress=advance)
        else:
            report = analyze(loaded, price_history, funding_history, options)
        written = write_report(report, out)
    except PerpdexError as error:
        raise _fail(error) from None
    if as_json:
        _print_json({name: str(path) for name, path in written.items()})
        return
    var99 = report.var.figure("monte_carlo", 0.99, 1.0)
    given = report.joint.layout("as given")
    console.print(f"[bold]{report.portfolio['name']}[/bold]: equity ${report.portfolio['equity_usd']:,.2f}; "
                  f"funding {report.carry.horizon_hours / 24:g} d ${report.carry.total_paid_usd:,.2f}; "
                  f"1-day 99% VaR (MC) ${var99.var_usd:,.0f}; P(liquidation, {horizon_hours} h) "
                  f"{100 * given.liquidation_probability:.2f}%; buffer for {100 * target:g}%: "
                  f"${report.guardrails.buffer.buffer_usd:,.0f}")
    for advice in report.guardrails.advice:
        console.print(f"  - {advice}")
    console.print(f"report: {written['report'].resolve()}")
    console.print(f"folder: {Path(out).resolve()}/ (report.html, figures.json, results.json, charts/*.png)")
    print(f"REPORT {written['report'].resolve()}")


@risk_app.command("carry")
def risk_carry(portfolio: Path | None = PORTFOLIO_ARG, funding: Path | None = FUNDING_OPT,
               venue: str | None = VENUE_OPT,
               horizon_days: float = typer.Option(30.0, "--horizon-days", min=0.01, help="Carry horizon (days)."),
               lookback_days: float | None = LOOKBACK_OPT, as_json: bool = JSON_OPT) -> None:
    """Expected funding paid (+) or received (-) over a horizon, per position and in total."""
    from perpdex.risk.carry import expected_carry

    try:
        loaded, _, funding_history = _inputs(portfolio, funding=funding, venue=venue, need_prices=False)
        result = expected_carry(loaded, funding_history, horizon_hours=24 * horizon_days, lookback_days=lookback_days)
    except PerpdexError as error:
        raise _fail(error) from None
    if as_json:
        _print_json(result.to_dict())
        return
    console.print(_table(f"funding carry over {horizon_days:g} days (USD, + paid)",
                         ["market", "account", "notional $", "rate/8h bps", "annualized %", "paid $"],
                         [[p.market_id, p.account, p.notional_usd, p.mean_rate_per_hour * 8e4,
                           100 * p.annualized_rate, p.expected_paid_usd] for p in result.positions]))
    console.print(f"total ${result.total_paid_usd:,.2f} ({result.total_paid_pct_of_equity:.2f}% of equity); "
                  f"missing history: {', '.join(result.missing_assets) or 'none'}; source {result.source}")


@risk_app.command("stress")
def risk_stress(portfolio: Path | None = PORTFOLIO_ARG, funding: Path | None = FUNDING_OPT,
                venue: str | None = VENUE_OPT, as_json: bool = JSON_OPT) -> None:
    """Funding stress: worst and percentile cost of every 3-, 4-, 5-day window, funding held at its
    95th/99th percentile for 5 days, and the carry drag compounded on position size."""
    from perpdex.risk.carry import funding_stress

    try:
        loaded, _, funding_history = _inputs(portfolio, funding=funding, venue=venue, need_prices=False)
        result = funding_stress(loaded, funding_history, keep_series=False)
    except PerpdexError as error:
        raise _fail(error) from None
    if as_json:
        _print_json(result.to_dict())
        return
    names = list(result.windows[0].percentiles_usd) if result.windows else []
    console.print(_table("funding cost over every window of history (USD, + paid)",
                         ["window", "windows", "worst $"] + [f"{n} $" for n in names] + ["best $"],
                         [[f"{w.days:g} days", w.windows, w.worst_cost_usd] + [w.percentiles_usd[n] for n in names]
                          + [w.best_cost_usd] for w in result.windows]))
    console.print(_table("funding held at a percentile", ["scenario", "days", "each adverse $", "portfolio $"],
                         [[f"p{h.percentile:g}", h.days, h.each_adverse_total_usd, h.portfolio_total_usd]
                          for h in result.held]))
    console.print(_table("carry drag compounded on position size",
                         ["scenario", "days", "simple $", "compounded $", "% notional", "% equity"],
                         [[d.scenario, d.days, d.simple_cost_usd, d.compounded_cost_usd, d.compounded_pct_of_notional,
                           d.compounded_pct_of_equity] for d in result.drag]))


@risk_app.command("liqprice")
def risk_liqprice(portfolio: Path | None = PORTFOLIO_ARG, as_json: bool = JSON_OPT) -> None:
    """Exact liquidation prices: each isolated position's, each cross market's (others fixed), and the
    cross account's boundary over joint moves of its two largest exposures."""
    from perpdex.risk.liquidation_prices import liquidation_prices

    try:
        loaded, _, _ = _inputs(portfolio, need_prices=False, need_funding=False)
        result = liquidation_prices(loaded)
    except PerpdexError as error:
        raise _fail(error) from None
    if as_json:
        _print_json(result.to_dict())
        return
    console.print(_table("liquidation prices (exact on the core's margin; others fixed)",
                         ["account", "market", "mark", "liquidation", "move %", "subticks", "last safe", "closed form"],
                         [[p.account, p.market_id, p.mark_price, p.liquidation_price, p.move_pct,
                           p.liquidation_price_subticks, p.last_safe_price_subticks, p.closed_form_price]
                          for p in result.isolated + result.cross]))
    surface = result.surface
    if surface is not None and surface.y_market is not None:
        rows = [[f"{100 * x:+.1f}%", f"{100 * y:+.2f}%" if y is not None else "none"]
                for x, y in zip(surface.moves, surface.boundary_y_move)][::4]
        console.print(_table(f"cross boundary: {surface.y_market} move that liquidates, per {surface.x_market} move",
                             [f"{surface.x_market} move", f"{surface.y_market} move"], rows))


@risk_app.command("var")
def risk_var(portfolio: Path | None = PORTFOLIO_ARG, prices: Path | None = PRICES_OPT,
             funding: Path | None = FUNDING_OPT, venue: str | None = VENUE_OPT,
             lookback_days: float | None = LOOKBACK_OPT,
             paths: int = typer.Option(100_000, "--paths", min=100, help="Monte Carlo paths."),
             seed: int = typer.Option(7, "--seed"), as_json: bool = JSON_OPT) -> None:
    """VaR and ES at 95/99% over 1 and 5 days: historical, parametric and Student-t Monte Carlo, net of
    funding drag and move-dependent slippage."""
    from perpdex.risk.var import value_at_risk

    try:
        loaded, price_history, funding_history = _inputs(portfolio, prices, funding, venue)
        result = value_at_risk(loaded, price_history, funding_history, lookback_days=lookback_days, mc_paths=paths,
                               seed=seed, keep_samples=0)
    except PerpdexError as error:
        raise _fail(error) from None
    if as_json:
        _print_json(result.to_dict())
        return
    console.print(_table("VaR / ES (USD loss)", ["method", "confidence", "horizon", "VaR $", "ES $", "VaR % equity"],
                         [[f.method, f"{f.confidence:.0%}", f"{f.horizon_days:g} d", f.var_usd, f.es_usd,
                           f.var_pct_of_equity] for f in result.figures]))
    console.print(f"assets {', '.join(result.assets)}; daily vols "
                  f"{', '.join(f'{100 * v:.2f}%' for v in result.daily_vols)}; t dof {result.dof:.2f}; "
                  f"funding drag {result.funding_drag_usd}")


def _joint(portfolio: Path | None, prices: Path | None, funding: Path | None, venue: str | None, paths: int,
           horizon_hours: int, seed: int, vol_scale: float, lookback_days: float | None, show_progress: bool) -> Any:
    from perpdex.risk.joint_liquidation import SimulationConfig, joint_liquidation

    loaded, price_history, funding_history = _inputs(portfolio, prices, funding, venue)
    config = SimulationConfig(paths=paths, horizon_hours=horizon_hours, seed=seed, vol_scale=vol_scale)
    if show_progress:
        bar, advance = _progress(paths, "joint liquidation")
        with bar:
            return loaded, price_history, joint_liquidation(loaded, price_history, funding_history, config=config,
                                                            lookback_days=lookback_days, progress=advance)
    return loaded, price_history, joint_liquidation(loaded, price_history, funding_history, config=config,
                                                    lookback_days=lookback_days)


@risk_app.command("joint")
def risk_joint(portfolio: Path | None = PORTFOLIO_ARG, prices: Path | None = PRICES_OPT,
               funding: Path | None = FUNDING_OPT, venue: str | None = VENUE_OPT,
               lookback_days: float | None = LOOKBACK_OPT,
               paths: int = typer.Option(20_000, "--paths", min=100, help="Monte Carlo paths."),
               horizon_hours: int = typer.Option(120, "--horizon-hours", min=1, help="Horizon (hours)."),
               vol_scale: float = typer.Option(1.0, "--vol-scale", min=0.01, help="Stress: scale every volatility."),
               seed: int = typer.Option(11, "--seed"),
               progress: bool = typer.Option(True, "--progress/--no-progress"), as_json: bool = JSON_OPT) -> None:
    """Monte Carlo joint liquidation (correlated fat tails, funding spikes, liquidity withdrawal): the
    portfolio as given vs all cross vs all isolated."""
    try:
        _, _, result = _joint(portfolio, prices, funding, venue, paths, horizon_hours, seed, vol_scale, lookback_days,
                              progress and not as_json)
    except PerpdexError as error:
        raise _fail(error) from None
    if as_json:
        _print_json(result.to_dict())
        return
    console.print(_table(f"joint liquidation: {result.paths:,} paths x {result.horizon_hours} h "
                         f"({result.seconds:.2f} s)",
                         ["layout", "accounts", "P(liq) %", "se %", "loss | liq $", "cost | liq $", "shortfall | liq $",
                          "E[loss] $", "median h"],
                         [[x.layout, ", ".join(x.accounts), 100 * x.liquidation_probability, 100 * x.standard_error,
                           x.expected_loss_given_liquidation_usd, x.expected_liquidation_cost_given_liquidation_usd,
                           x.expected_shortfall_given_liquidation_usd, x.expected_loss_usd,
                           x.time_to_liquidation_hours.get("median")] for x in result.layouts]))


@risk_app.command("guardrails")
def risk_guardrails(portfolio: Path | None = PORTFOLIO_ARG, prices: Path | None = PRICES_OPT,
                    funding: Path | None = FUNDING_OPT, venue: str | None = VENUE_OPT,
                    lookback_days: float | None = LOOKBACK_OPT,
                    target: float = typer.Option(0.01, "--target", min=1e-6, max=0.5,
                                                 help="Liquidation probability target over the horizon."),
                    paths: int = typer.Option(20_000, "--paths", min=100, help="Monte Carlo paths."),
                    horizon_hours: int = typer.Option(120, "--horizon-hours", min=1),
                    seed: int = typer.Option(11, "--seed"),
                    progress: bool = typer.Option(True, "--progress/--no-progress"), as_json: bool = JSON_OPT) -> None:
    """Max weight per asset, dynamic collateral haircuts, and the stable-collateral buffer that keeps the
    liquidation probability under the target (found by search), with its capital-efficiency cost."""
    from perpdex.risk.guardrails import guardrails

    try:
        loaded, price_history, joint = _joint(portfolio, prices, funding, venue, paths, horizon_hours, seed, 1.0,
                                              lookback_days, progress and not as_json)
        result = guardrails(loaded, price_history, joint, target=target, horizon_days=horizon_hours / 24)
    except PerpdexError as error:
        raise _fail(error) from None
    if as_json:
        _print_json(result.to_dict())
        return
    buffer = result.buffer
    console.print(_table("max weight per asset (cross account)",
                         ["asset", "notional $", "weight", "stress move %", "max weight", "breach"],
                         [[w.asset, w.notional_usd, w.weight, 100 * w.stress_move, w.max_weight, w.breach]
                          for w in result.weights]))
    console.print(_table("dynamic collateral haircuts", ["asset", "vol/day %", "haircut %", "counts as $ per posted $"],
                         [[c.asset, 100 * c.daily_vol_now, 100 * c.haircut, 1 - c.haircut] for c in result.haircuts]))
    console.print(_table(f"stable-collateral buffer ({buffer.account}, target {100 * target:g}%)",
                         ["base P %", "buffer $", "P after %", "scale instead", "leverage", "after",
                          "efficiency lost %", "idle $/year"],
                         [[100 * buffer.base_probability, buffer.buffer_usd, 100 * buffer.probability_with_buffer,
                           buffer.scale_to_meet_target, buffer.leverage_before, buffer.leverage_after,
                           buffer.capital_efficiency_loss_pct, buffer.opportunity_cost_per_year_usd]]))
    for advice in result.advice:
        console.print(f"  - {advice}")


def bench_risk(paths: int = typer.Option(100_000, "--paths", min=1_000, help="Monte Carlo paths."),
               threads: int | None = typer.Option(None, "--threads", min=1, help="Worker threads (default: 2)."),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Joint-liquidation Monte Carlo: 100,000 paths x 5 days hourly x 10 assets; target <= 10 s, with a
    naive per-path loop measured on a few paths in the same run as the baseline."""
    from perpdex.bench.risk import run

    result = run(paths=paths, threads=threads)
    ok = bool(result["ok"])
    if as_json:
        _print_json(result)
    else:
        console.print(f"risk Monte Carlo: {result['paths']:,} paths x {result['steps']} hours x {result['assets']} "
                      f"assets ({result['accounts']} accounts) in {result['seconds']:.2f} s on {result['threads']} "
                      f"threads (target {result['target_seconds']:g} s): {result['path_steps_per_s']:,.0f} path-hours/s")
        console.print(f"  baseline ({result['baseline']}, {result['baseline_paths']} paths, same run): "
                      f"{result['baseline_extrapolated_seconds']:,.0f} s extrapolated; "
                      f"speed-up {result['speedup_vs_baseline']:,.0f}x")
        console.print(f"  P(liquidation): all cross {100 * result['cross_liquidation_probability']:.2f}%, "
                      f"all isolated {100 * result['isolated_liquidation_probability']:.2f}%; peak RSS "
                      f"{result['peak_rss_mb']:,.0f} MB")
    print(f"RESULT bench=risk ok={str(ok).lower()} " + " ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)))
