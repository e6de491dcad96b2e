"""The `perpdex` command line: demo, markets and benchmarks. It only parses, calls and renders;
every error becomes one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from perpdex.cli import rollup_commands, store_commands
from perpdex.cli.risk_commands import bench_risk, risk_app
from perpdex.cli.sim_commands import bench_sim, sim_app
from perpdex.core.errors import PerpdexError
from perpdex.store.errors import StoreError

app = typer.Typer(help="perpdex: a perpetual-futures exchange engine and risk lab.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
bench_app = typer.Typer(help="Benchmarks: figures, ratios to a baseline measured in the same run, a RESULT line.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")
funding_app = typer.Typer(help="Funding on a recorded run: explain its rates, compare the venues' models.",
                          no_args_is_help=True)
app.add_typer(funding_app, name="funding")
liquidation_app = typer.Typer(help="The loss-waterfall lab: liquidation policies side by side.", no_args_is_help=True)
app.add_typer(liquidation_app, name="liquidation")
store_commands.register(app, bench_app)  # replay, export, query, bench store
rollup_commands.register(app, bench_app)  # rollup verify|exit|escape-drill, bench rollup
app.add_typer(sim_app, name="sim")
bench_app.command("sim")(bench_sim)
app.add_typer(risk_app, name="risk")
bench_app.command("risk")(bench_risk)
console = Console()
if not console.is_terminal:
    console = Console(width=150)  # piped or captured output: don't squeeze tables into 80 columns


class CliError(Exception):
    """A problem with the command's own input (a path, an option), reported like a PerpdexError."""


@app.command()
def demo(out: Path = typer.Option(Path("out/demo"), help="Folder for steps.json, events.jsonl, summary.json.")) -> None:
    """A short scripted walkthrough on the exchange core: what cross and isolated margin, stops and a
    crash do to five accounts, step by step (the full simulation is `perpdex sim run`)."""
    from perpdex.sim.scripted import run_demo

    session, summary = run_demo(out)
    for step in session.steps:
        table = Table(title=step.title, title_justify="left", show_lines=False)
        for column in ("subaccount", "who", "positions", "NC $", "IMR $", "MMR $", "free $", "status"):
            table.add_column(column, justify="right" if column.endswith("$") else "left")
        for row in step.accounts:
            positions = ", ".join(f"{m} {s}" for m, s in row["positions"].items()) or "-"
            style = "bold red" if row["status"] == "LIQUIDATABLE" else ("yellow" if row["status"] != "healthy" else "")
            table.add_row(row["subaccount"], row["who"], positions, _usd(row["net_collateral_usd"]),
                          _usd(row["initial_requirement_usd"]), _usd(row["maintenance_requirement_usd"]),
                          _usd(row["free_collateral_usd"]), row["status"], style=style)
        console.print(table)
        for note in step.notes:
            console.print(f"  - {note}")
    console.print(f"\n{summary['transactions']} transactions, {summary['fills']} fills, "
                  f"${summary['traded_notional_usd']} traded, ${summary['fees_collected_usd']} fees; "
                  f"liquidated: {', '.join(summary['liquidated_subaccounts']) or 'none'} "
                  f"({summary['liquidation_fills']} fills); insurance fund ${summary['insurance_fund_usd']}, "
                  f"bad debt ${summary['bad_debt_usd']}")
    console.print(f"state digest {summary['state_digest']}")
    console.print(f"results: {out.resolve()}/ (summary.json, steps.json, events.jsonl)")


def _usd(text: str) -> str:
    return f"{float(text):,.2f}"


@app.command()
def markets(file: Path | None = typer.Option(None, help="Market TOML file (default: the shipped dYdX v4 set).")) -> None:
    """List the markets of a market file with their grid, margin and fees."""
    from perpdex.config.markets import load_markets
    from perpdex.core.units import subticks_to_price

    table = Table(title=f"markets ({file or 'default'})", title_justify="left")
    for column in ("market", "type", "tick $", "step", "IMF", "MMF", "OI caps $", "maker", "taker", "stale ms"):
        table.add_column(column)
    for m in load_markets(file):
        tier = m.liquidity_tier
        step = (m.step_base_quantums * 10**(12 + m.atomic_resolution)) / 10**12
        caps = (f"{tier.open_interest_lower_cap_quote_quantums // 10**6:,}-"
                f"{tier.open_interest_upper_cap_quote_quantums // 10**6:,}"
                if tier.open_interest_upper_cap_quote_quantums else "-")
        table.add_row(m.market_id, m.market_type.value,
                      str(subticks_to_price(m.subticks_per_tick, m.atomic_resolution, m.quantum_conversion_exponent)),
                      f"{step:g}", f"{tier.initial_margin_ppm / 1e4:g}%",
                      f"{tier.initial_margin_ppm * tier.maintenance_fraction_ppm / 1e10:g}%", caps,
                      f"{m.maker_fee_ppm / 1e4:g}%", f"{m.taker_fee_ppm / 1e4:g}%", str(m.oracle_staleness_ms))
    console.print(table)


@app.command()
def liqmap(market: str = typer.Option("BTC-USD", help="The market that moves."),
           step_pct: int = typer.Option(1, min=1, max=10, help="Move step in percent (-30%..+30%)."),
           out: Path = typer.Option(Path("out/liqmap"), help="Folder for liqmap.json and liqmap.png.")) -> None:
    """Exact liquidation map from the full state: notional liquidated per move, both rounds.

    Runs on the scripted demo's final state (run logs come with the event store)."""
    from perpdex.lab.liqmap import liquidation_map, plot_liquidation_map, rows_as_dicts
    from perpdex.sim.scripted import ScriptedSession

    session = ScriptedSession()
    session.run()
    if market not in session.exchange.markets:
        raise CliError(f"unknown market {market!r} (one of {', '.join(session.exchange.markets)})")
    rows = liquidation_map(session.exchange, market, range(-30, 31, step_pct))
    out.mkdir(parents=True, exist_ok=True)
    (out / "liqmap.json").write_text(json.dumps(rows_as_dicts(rows), indent=2))
    plot_liquidation_map(rows, market, out / "liqmap.png")
    table = Table(title=f"liquidation map: {market}", title_justify="left")
    for column in ("move %", "price $", "round 1 $", "round 2 $", "accounts", "deleveraged $", "fund $", "bad debt $"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(f"{row.move_pct:+d}", f"{row.price_usd:,.2f}", f"{row.first_round_notional_usd:,.0f}",
                      f"{row.second_round_notional_usd:,.0f}", str(row.liquidated_subaccounts),
                      f"{row.deleveraged_notional_usd:,.0f}", f"{row.insurance_fund_change_usd:+,.2f}",
                      f"{row.bad_debt_usd:,.2f}")
    console.print(table)
    console.print(f"results: {out.resolve()}/ (liqmap.json, liqmap.png)")


@funding_app.command("explain")
def funding_explain(market: str = typer.Argument(..., help="Market, e.g. ETH-USD."),
                    log: Path = typer.Argument(..., help="A run's transaction log (perpdex sim run output)."),
                    last: int = typer.Option(8, min=1, help="How many of the last intervals to show.")) -> None:
    """Where each recent funding rate came from: samples, premium, clamp, rate, and what a 1-unit long paid."""
    from perpdex.lab.funding_lab import explain

    intervals, predicted = explain(log, market, last)
    table = Table(title=f"funding: {market} (last {len(intervals)} intervals)", title_justify="left")
    for column in ("ts_ms", "samples", "premium ppm", "clamp", "rate/8h ppm", "interval s", "index delta",
                   "1-unit long pays $"):
        table.add_column(column, justify="right")
    for row in intervals:
        table.add_row(str(row.ts_ms), str(row.samples), str(row.premium_ppm), "HIT" if row.clamp_hit else "-",
                      str(row.funding_rate_8h_ppm), f"{row.interval_ms / 1000:g}", str(row.index_delta),
                      f"{row.one_unit_long_pays_usd:,.6f}")
    console.print(table)
    if predicted is not None:
        console.print(f"open interval so far: premium {predicted.premium_ppm} ppm from {predicted.sample_count} "
                      f"samples -> predicted rate {predicted.funding_rate_8h_ppm} ppm per 8 h")


@funding_app.command("compare")
def funding_compare(log: Path = typer.Argument(..., help="A run's transaction log."),
                    market: str = typer.Option("ETH-USD", help="Market whose rate path is charted."),
                    out: Path = typer.Option(Path("out/funding-compare"), help="Folder for the chart and JSON.")) -> None:
    """One recorded order flow under every funding model: basis, money moved, rate volatility, cap hits."""
    from dataclasses import asdict

    from perpdex.lab.funding_lab import compare, plot_compare

    outcomes = compare(log)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    plot_compare(outcomes, market, out / "rates.png")
    table = Table(title="funding models on the same order flow", title_justify="left")
    for column in ("model", "intervals", "mean |basis| bps", "transferred $", "rate vol ppm", "cap hits", "rejected"):
        table.add_column(column, justify="right")
    for o in outcomes:
        table.add_row(o.model, str(o.intervals), f"{o.mean_abs_basis_bps:.2f}", f"{o.transferred_usd:,.2f}",
                      f"{o.rate_volatility_ppm:,.1f}", str(o.cap_hits), str(o.rejected_txs))
    console.print(table)
    console.print(f"results: {out.resolve()}/ (compare.json, rates.png)")


@liquidation_app.command("compare")
def liquidation_compare(log: Path = typer.Argument(..., help="A (stressed) run's transaction log."),
                        out: Path = typer.Option(Path("out/liquidation-compare"), help="Folder for compare.json.")
                        ) -> None:
    """Replay one run under each liquidation policy (dYdX v4, Hyperliquid-, Paradex-style): who paid."""
    from dataclasses import asdict

    from perpdex.lab.liquidation_compare import compare

    outcomes = compare(log)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    columns = [  # (header, value per outcome); columns that are empty in every policy are left out
        ("liquidated $", lambda o: o.liquidated_notional_usd), ("accounts", lambda o: o.liquidated_subaccounts),
        ("fund drawdown $", lambda o: o.insurance_fund_drawdown_usd),
        ("fund change $", lambda o: o.insurance_fund_change_usd), ("backstops", lambda o: o.backstop_takeovers),
        ("vault PnL $", lambda o: o.backstop_vault_pnl_usd), ("fund takeovers", lambda o: o.fund_takeovers),
        ("fund acct NC $", lambda o: o.fund_account_pnl_usd), ("socialized $", lambda o: o.socialized_loss_usd),
        ("deleveraged $", lambda o: o.deleveraged_notional_usd), ("ADL accounts", lambda o: o.deleveraged_accounts),
        ("bad debt $", lambda o: o.bad_debt_usd), ("rejected txs", lambda o: o.rejected_txs)]
    shown = [(name, get) for name, get in columns if any(get(o) for o in outcomes)]
    table = Table(title="liquidation policies on the same order flow", title_justify="left")
    table.add_column("policy")
    for name, _ in shown:
        table.add_column(name, justify="right")
    for o in outcomes:
        table.add_row(o.policy, *(f"{get(o):,.0f}" if isinstance(get(o), float) else str(get(o)) for _, get in shown))
    console.print(table)
    for o in outcomes:
        if o.loss_paid_by_class_usd:
            paid = ", ".join(f"{cls} ${usd:,.0f}" for cls, usd in o.loss_paid_by_class_usd.items())
            console.print(f"  {o.policy}: deleveraged accounts paid vs the index: {paid}")
    console.print(f"results: {out.resolve()}/compare.json")


def _report(name: str, result: dict, as_json: bool, lines: list[str], ok: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for line in lines:
            console.print(line)
    print(f"RESULT bench={name} ok={str(ok).lower()} " + " ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
        if isinstance(v, (int, float, str)) and k != "checksum" and k != "digest"))


@bench_app.command("book")
def bench_book(ops: int = typer.Option(1_000_000, min=1_000, help="Operations on the book."),
               seed: int = typer.Option(7), as_json: bool = typer.Option(False, "--json")) -> None:
    """One market's book alone: 55% adds, 35% cancels, 10% sweeps; target >= 1,000,000 ops/s."""
    from perpdex.bench.book import run

    result = run(ops, seed)
    lines = [f"book: {result['ops']:,} ops in {result['seconds']:.3f} s = {result['ops_per_s']:,.0f} ops/s "
             f"(target 1,000,000; {result['ops_per_s'] / 1e6:.2f}x)",
             f"baseline (plain deque book, same run): {result['baseline_ops_per_s']:,.0f} ops/s; "
             f"ratio {result['ratio_to_baseline']:.2f}x",
             f"fills {result['fills']:,}, resting mean (2nd half) {result['resting_mean_second_half']:,.0f}, "
             f"checksum {result['checksum']}"]
    _report("book", result, as_json, lines, result["ops_per_s"] >= 1_000_000)


@bench_app.command("apply")
def bench_apply(transactions: int = typer.Option(300_000, min=1_000), subaccounts: int = typer.Option(10_000, min=10),
                seed: int = typer.Option(1), as_json: bool = typer.Option(False, "--json")) -> None:
    """Orders through Exchange.apply with margin checks, fees and events; target >= 100,000 tx/s."""
    from perpdex.bench.apply import run

    result = run(subaccounts, transactions, seed)
    lines = [f"apply: {result['transactions']:,} txs over {result['subaccounts']:,} subaccounts x "
             f"{result['markets']} markets in {result['seconds']:.2f} s = {result['tx_per_s']:,.0f} tx/s "
             f"(target 100,000; {result['tx_per_s'] / 1e5:.2f}x)",
             f"accepted {result['accepted']:,}, rejected {result['rejected']:,}, fills {result['fills']:,}",
             f"baseline (the same orders on bare books, no margin/fees/events): {result['baseline_ops_per_s']:,.0f}"
             f" ops/s; exchange layer costs {result['baseline_ops_per_s'] / result['tx_per_s']:.1f}x",
             f"digest {result['digest']}"]
    _report("apply", result, as_json, lines, result["tx_per_s"] >= 100_000)


@bench_app.command("margin")
def bench_margin(accounts: int = typer.Option(1_000_000, min=1_000), markets_count: int = typer.Option(10, "--markets"),
                 seed: int = typer.Option(0), as_json: bool = typer.Option(False, "--json")) -> None:
    """Vectorized margin screen: full after all prices move (<= 20 ms), one market (<= 5 ms)."""
    from perpdex.bench.margin import run

    result = run(accounts=accounts, markets=markets_count, seed=seed)
    lines = [f"margin screen over {result['accounts']:,} subaccounts x {result['markets']} markets:",
             f"  full screen       {result['full_screen_ms']:.1f} ms (target 20; naive dense numpy "
             f"{result['naive_dense_screen_ms']:.1f} ms, {result['naive_dense_screen_ms'] / result['full_screen_ms']:.1f}x)",
             f"  one-market update {result['incremental_screen_ms']:.2f} ms (target 5)",
             f"  exact pure-Python loop, extrapolated from {result['exact_sample_size']:,}: "
             f"{result['exact_python_extrapolated_ms']:,.0f} ms",
             f"  candidates/confirmed: full {result['candidates_full']}/{result['confirmed_full']}, "
             f"incremental {result['candidates_incremental']}/{result['confirmed_incremental']}"]
    _report("margin", result, as_json, lines, bool(result["full_ok"] and result["incremental_ok"]))


@bench_app.command("liquidation")
def bench_liquidation(subaccounts: int = typer.Option(100_000, min=100), seed: int = typer.Option(3),
                      freeze_setup: bool = typer.Option(True, help="Freeze the setup's objects out of the cyclic "
                                                        "GC before timing, as a long-running venue would."),
                      as_json: bool = typer.Option(False, "--json")) -> None:
    """A 20% crash over leveraged subaccounts; the liquidation step until stable; target <= 5 s."""
    from perpdex.bench.liquidation import run

    result = run(subaccounts, seed, freeze_setup=freeze_setup)
    lines = [f"liquidation: {result['subaccounts']:,} subaccounts, {result['crash_pct']}% crash: "
             f"{result['seconds']:.2f} s over {result['steps']} step(s) (target 5 s; setup state "
             f"{'frozen out of' if freeze_setup else 'left in'} the cyclic GC)",
             f"  liquidated {result['liquidated_subaccounts']:,} subaccounts in {result['liquidation_fills']:,} fills, "
             f"${result['liquidated_notional_usd']:,.0f} notional",
             f"  insurance fund {result['insurance_fund_change_usd']:+,.2f} USD, deleveraged {result['deleveraged']:,}, "
             f"stalled {result['stalled']:,}, bad debt ${result['bad_debt_usd']:,.2f}, "
             f"still liquidatable {result['still_liquidatable']:,}"]
    _report("liquidation", result, as_json, lines, result["seconds"] <= result["target_seconds"])


def main() -> None:
    """Entry point: PerpdexError and input problems become one line and exit code 2."""
    try:
        app()
    except (PerpdexError, StoreError, CliError, OSError) as error:
        print(f"perpdex: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
