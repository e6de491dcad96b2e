"""Run a scenario into an output folder: the transaction log (SQLite), Parquet tables, summary.json
with the key figures and final digest, the effective scenario, report.html and PNG charts.

The log is written by one small function, `write_tx_log`, so it can be swapped for perpdex.store's
log; `read_tx_log` / `replay_tx_log` read it back and replay it to the same digest.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from perpdex.core.exchange import Exchange
from perpdex.core.liquidation import LiquidationsConfig
from perpdex.core.params import MarketParams
from perpdex.core.tx import Tx
from perpdex.sim.engine import Simulation, SimulationResult, SystemStep, build_liquidations_config
from perpdex.sim.recorder import write_tables
from perpdex.sim.scenario import Scenario, scenario_to_toml
from perpdex.store import create_log, open_log, replay
from perpdex.store.codec import DEFAULT_CODEC

if TYPE_CHECKING:
    from rich.console import Console

TX_LOG_FILE = "tx_log.sqlite"
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


# --- the transaction log ---------------------------------------------------------------------------
def write_tx_log(path: Path, txs: Iterable[Tx], markets_toml_text: str,
                 liquidations_config: LiquidationsConfig | None = None) -> int:
    """Write applied transactions, in order, to a new perpdex.store log (SQLite) with the markets
    and liquidation parameters the run used, so `perpdex replay`, `export`, `query` and
    `funding explain` read a simulation like any other run. Group commits, no fsync per row (a
    run's log is written after the fact; the store's durable path is for live exchanges).
    An existing file is replaced; returns how many transactions were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if stale.exists():
            stale.unlink()
    options = {"liquidations_config": liquidations_config} if liquidations_config is not None else None
    log = create_log(path, markets_toml_text, markets_source="perpdex sim", durability="off",
                     exchange_options=options)
    count = 0
    try:
        encode = DEFAULT_CODEC.encode
        for tx in txs:
            log.append(encode(tx))
            count += 1
            if not count % 100_000:
                log.commit()
        log.commit()
    finally:
        log.close()
    return count


def read_tx_log(path: Path) -> list[Tx]:
    """The transactions of a run's log, in order."""
    with open_log(path) as log:
        return [tx for _, tx in log.records()]


def replay_tx_log(path: Path) -> Exchange:
    """A fresh exchange (markets and liquidation parameters from the log) with every logged tx applied."""
    return replay(path).exchange


def markets_to_toml(markets: Sequence[MarketParams]) -> str:
    """A market file (perpdex.config.markets format) for these exact parameters; fields at their
    default are left out, each distinct liquidity tier is written once."""
    tiers: dict[str, dict[str, Any]] = {}
    out_markets = []
    for params in markets:
        tier = params.liquidity_tier
        tier_fields = {f.name: _toml_value(getattr(tier, f.name)) for f in dataclasses.fields(tier) if f.name != "name"}
        if tier.name in tiers and tiers[tier.name] != tier_fields:
            raise ValueError(f"two different liquidity tiers are both named {tier.name!r}")
        tiers[tier.name] = tier_fields
        entry: dict[str, Any] = {}
        for f in dataclasses.fields(params):
            value = getattr(params, f.name)
            if f.name == "liquidity_tier":
                entry[f.name] = tier.name
            elif f.name == "funding_overrides":
                if value:
                    entry["funding"] = dict(value)  # the market file's `funding` table
            elif f.default is dataclasses.MISSING or value != f.default:
                entry[f.name] = _toml_value(value)
        out_markets.append(entry)
    return tomli_w.dumps({"liquidity_tiers": tiers, "markets": out_markets})


def _toml_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_toml_value(item) for item in value]
    return value


# --- one run into a folder ---------------------------------------------------------------------------
@dataclass
class RunOutput:
    result: SimulationResult
    out_dir: Path
    summary: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


def run_scenario(scenario: Scenario, out_dir: Path, seed: int | None = None, *, progress: bool = False,
                 console: Console | None = None, system_steps: Sequence[SystemStep] = (),
                 render: bool = True) -> RunOutput:
    """Simulate and write everything to `out_dir`: tx_log.sqlite, tables/*.parquet, summary.json,
    scenario.toml, and (with `render`) report.html and charts/*.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    simulation = Simulation(scenario, seed, system_steps=system_steps)
    result = simulation.run(progress=progress, console=console)
    started = time.perf_counter()
    paths: dict[str, Path] = {}
    paths["tx_log"] = out_dir / TX_LOG_FILE
    config = build_liquidations_config(scenario)
    write_tx_log(paths["tx_log"], result.txs, markets_to_toml(result.markets), config)
    (out_dir / "scenario.toml").write_text(scenario_to_toml(scenario))  # the run's inputs, beside its log
    paths["scenario"] = out_dir / "scenario.toml"
    tables = result.recorder.tables()
    for name, path in write_tables(tables, out_dir / "tables").items():
        paths[f"table:{name}"] = path
    paths["scenario"] = out_dir / "scenario.toml"
    paths["scenario"].write_text(scenario_to_toml(scenario), encoding="utf-8")
    summary = result.key_figures()
    summary["output_seconds"] = 0.0
    paths["summary"] = out_dir / "summary.json"
    if render:
        # the report is a shell above sim; imported here so one call writes the whole folder
        from perpdex.report import write_report_bundle

        paths.update(write_report_bundle(out_dir, tables, summary))
    summary["output_seconds"] = round(time.perf_counter() - started, 3)
    summary["files"] = {name: str(path.relative_to(out_dir)) for name, path in paths.items() if name != "summary"}
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return RunOutput(result, out_dir, summary, paths)


def _duration(minutes: float | None) -> str:
    if minutes is None:
        return "n/a"
    return f"{minutes / 60:.2f} h" if abs(minutes) >= 120 else f"{minutes:.1f} min"


def rollup_rows(rollup: dict[str, Any]) -> list[tuple[str, str]]:
    """The rollup's key figures as (figure, value) rows for the CLI table."""
    def spread(figure: dict[str, float | None]) -> str:
        return (f"mean {_duration(figure['mean'])}, p50 {_duration(figure['p50'])}, p99 {_duration(figure['p99'])}, "
                f"max {_duration(figure['max'])}")

    waiting = rollup["max_withdrawals_waiting"]
    batches = (f"{rollup['batches']:,} ({rollup['batches_accepted']:,} accepted, "
               f"{'settled' if rollup['settled'] else 'NOT settled'}), one every "
               f"{_duration(rollup['batch_interval_minutes'])}, {rollup['txs_per_batch_mean'] or 0:,.0f} "
               f"txs each; {rollup['hash']}, funding {rollup['funding']}")
    waiting_text = f"{waiting['count']:,} worth ${waiting['usd']:,.0f}" + (f" at {waiting['at']}" if waiting["at"] else "")
    cost = (f"commit {rollup['commit_seconds']:.1f} s, accept + verify {rollup['verify_seconds']:.1f} s, "
            f"{rollup['published_gas']:,} gas")
    return [
        ("rollup batches", batches),
        ("proof latency", spread(rollup["proof_latency_minutes"])),
        ("time to finality (per tx)", spread(rollup["time_to_finality_minutes"])),
        ("withdrawal wait", spread(rollup["withdrawal_wait_minutes"]) if rollup["withdrawals"] else "no withdrawals"),
        ("withdrawals waiting (max)", waiting_text),
        ("proven state lag", spread(rollup["proven_lag_minutes"])),
        ("rollup cost", cost),
    ]


def summary_table(summary: dict[str, Any]) -> Any:
    """The key figures as a rich Table (printed at the end of `perpdex sim run`)."""
    from rich.table import Table

    def usd(value: float) -> str:
        return f"-${-value:,.0f}" if value < 0 else f"${value:,.0f}"

    table = Table(title=f"{summary['scenario']} (seed {summary['seed']}): {summary['start']} .. {summary['end']}",
                  title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("agents", f"{summary['agents']:,} ({', '.join(f'{n} {k}' for k, n in summary['agents_by_type'].items())})"),
        ("orders submitted / accepted", f"{summary['orders_submitted']:,} / {summary['orders_accepted']:,}"),
        ("cancels, fills", f"{summary['cancels_submitted']:,}, {summary['fills']:,}"),
        ("traded", usd(summary["traded_usd"])),
        ("fees collected", usd(summary["fees_collected_usd"])),
        ("liquidated subaccounts (fills)",
         f"{summary['liquidated_subaccounts']:,} ({summary['liquidation_fills']:,}) "
         + " ".join(f"{mode}={n}" for mode, n in summary['liquidated_by_margin_mode'].items())),
        ("liquidated notional", usd(summary["liquidated_notional_usd"])),
        ("deleverages, bankrupt subaccounts", f"{summary['deleverages']:,}, {summary['bankrupt_subaccounts']:,}"),
        ("insurance fund start -> end", f"{usd(summary['insurance_fund_start_usd'])} -> "
                                        f"{usd(summary['insurance_fund_usd'])}"),
        ("bad debt", usd(summary["bad_debt_usd"])),
        ("funding intervals closed", f"{summary['funding_intervals']:,}"),
        ("rejected", f"{summary['rejected']:,}" + (
            " (" + ", ".join(f"{code} {n:,}" for code, n in list(summary['rejected_by_reason'].items())[:3]) + ")"
            if summary['rejected'] else "")),
    ]
    for market_id, market in summary["per_market"].items():
        rows.append((f"{market_id} index", f"{market['index_change_pct']:+.1f}% (max drawdown "
                                            f"{market['max_drawdown_pct']:.1f}%), max |premium| "
                                            f"{market['max_abs_premium_bps']} bps"))
    for market_id, funding in summary.get("funding", {}).items():
        rows.append((f"{market_id} funding", f"mean {funding['mean_8h_bps']:+.2f} bps / 8 h, longs paid in "
                                             f"{funding['longs_paid_share']:.0%} of {funding['intervals']} intervals"))
    for kind, pnl in summary["pnl_by_type_usd"].items():
        rows.append((f"PnL {kind}", f"{usd(pnl['total_pnl_usd'])} = price {usd(pnl['price_pnl_usd'])} "
                                    f"+ funding {usd(pnl['funding_usd'])} - fees {usd(pnl['fees_usd'])} "
                                    f"- liquidation {usd(pnl['liquidation_fees_usd'])}"))
    if summary.get("withdrawals"):
        rows.append(("withdrawals", f"{summary['withdrawals']:,} ({usd(summary['withdrawn_usd'])})"))
    rollup = summary.get("rollup")
    if rollup:
        rows.extend(rollup_rows(rollup))
    rows.append(("wall time", f"{summary['wall_seconds']:.1f} s ({summary['orders_per_s']:,.0f} orders/s)"))
    rows.append(("final digest", summary["final_digest"]))
    for name, value in rows:
        table.add_row(name, value)
    return table
