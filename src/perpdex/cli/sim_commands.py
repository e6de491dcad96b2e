"""`perpdex sim run|list` and `perpdex bench sim`: parse, call `perpdex.sim`, render with rich.
A bad scenario (file, name or --set) is one line on stderr naming the field, and exit code 2.

Wiring (in cli/main.py): `app.add_typer(sim_app, name="sim")` and
`bench_app.command("sim")(bench_sim)`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from perpdex.core.errors import PerpdexError

sim_app = typer.Typer(help="Agent-based simulation of the exchange: scenarios, runs and reports.",
                      no_args_is_help=True)
console = Console()


def _fail(error: PerpdexError) -> typer.Exit:
    print(f"perpdex: error: {error}", file=sys.stderr)
    return typer.Exit(code=2)


@sim_app.command("run")
def sim_run(
    scenario: str = typer.Argument("default", help="A shipped scenario name (see `perpdex sim list`) or a TOML file."),
    seed: int | None = typer.Option(None, help="Seed (default: the scenario's own)."),
    out: Path | None = typer.Option(None, help="Output folder (default: out/sim/<scenario>)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a scenario field: --set agents.noise.count=100 "
                                                          "(repeatable; values read as TOML)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar over simulated time."),
    as_json: bool = typer.Option(False, "--json", help="Print summary.json instead of the table."),
    rollup: bool = typer.Option(False, "--rollup", help="Run through the rollup (sequencer, prover, L1): batch "
                                                        "cadence, proof latency, finality (the scenario's [rollup] "
                                                        "table with enabled = true; tune it with --set rollup.x=v)."),
) -> None:
    """Run a scenario: writes the tx log, Parquet tables, summary.json, report.html and PNG charts."""
    from perpdex.sim.run import run_scenario, summary_table
    from perpdex.sim.scenario import load_scenario

    try:
        loaded = load_scenario(scenario, (["rollup.enabled=true"] if rollup else []) + list(overrides))
        folder = out if out is not None else Path("out") / "sim" / loaded.name
        output = run_scenario(loaded, folder, seed, progress=progress and not as_json, console=console)
    except PerpdexError as error:
        raise _fail(error) from None
    summary = output.summary
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    console.print(summary_table(summary))
    report = output.paths["report"].resolve()
    console.print(f"report: {report}")
    console.print(f"folder: {output.out_dir.resolve()}/ (tx_log.sqlite, tables/*.parquet, summary.json, charts/)")
    print(f"REPORT {report}")


@sim_app.command("list")
def sim_list() -> None:
    """The shipped scenarios with their markets, length, agents and description."""
    from perpdex.sim.scenario import list_scenarios, load_scenario

    table = Table(title="shipped scenarios (perpdex sim run NAME)", title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in ("markets", "days", "step", "agents", "index", "description"):
        table.add_column(column)
    try:
        for name in list_scenarios():
            scenario = load_scenario(name)
            table.add_row(name, ", ".join(scenario.market_ids), f"{scenario.days:g}", f"{scenario.step_seconds:g} s",
                          f"{scenario.agent_count:,}", scenario.index.model, scenario.description)
    except PerpdexError as error:
        raise _fail(error) from None
    console.print(table)


def bench_sim(scenario: str = typer.Option("default", help="Scenario to time (name or TOML file)."),
              seed: int | None = typer.Option(None, help="Seed (default: the scenario's own)."),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """The default scenario end to end through Exchange.apply; target <= 60 s with >= 500 agents and
    >= 1,000,000 orders. Prints simulated events/s and orders/s."""
    from perpdex.bench.sim import run

    try:
        result = run(scenario, seed)
    except PerpdexError as error:
        raise _fail(error) from None
    ok = result["seconds"] <= 60 and result["agents"] >= 500 and result["orders"] >= 1_000_000
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        console.print(f"sim {result['scenario']}: {result['agents']:,} agents, {result['simulated_days']:g} simulated "
                      f"days, {result['orders']:,} orders in {result['seconds']:.1f} s (target <= 60 s)")
        console.print(f"  {result['orders_per_s']:,.0f} orders/s, {result['events_per_s']:,.0f} events/s, "
                      f"{result['transactions_per_s']:,.0f} tx/s; {result['fills']:,} fills, "
                      f"{result['liquidated_subaccounts']} subaccounts liquidated, {result['rejected']:,} rejected")
        console.print(f"  digest {result['digest']}")
    print(f"RESULT bench=sim ok={str(ok).lower()} " + " ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
        if isinstance(v, (int, float, str)) and k != "digest"))
