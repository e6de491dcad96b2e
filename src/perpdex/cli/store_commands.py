"""CLI commands of the store: `replay`, `export`, `query` and `bench store`. They parse, call
`perpdex.store` and render; bad input is one line on stderr naming the file and seq, exit code 2.

Wired into the main app by `app.command("replay")(replay)` and so on (see `register`); runnable
alone as `python -m perpdex.cli.store_commands replay LOG`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from perpdex.core.errors import PerpdexError

console = Console()
err_console = Console(stderr=True)
if not console.is_terminal:
    console = Console(width=150)  # piped or captured: don't squeeze tables (or wrap digests) at 80
if not err_console.is_terminal:
    err_console = Console(stderr=True, width=200)

LOG_HELP = "The log: a SQLite file (as written by DurableExchange) or a postgresql:// URL."


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Store, core and file errors become one line on stderr and exit code 2."""
    from perpdex.store.errors import StoreError

    try:
        yield
    except (StoreError, PerpdexError, OSError) as error:
        text = str(error) if not isinstance(error, OSError) or not error.filename else (
            f"{error.filename}: {error.strerror}")
        print(f"perpdex: error: {text}".replace("\n", " "), file=sys.stderr)
        raise typer.Exit(2) from None


@contextmanager
def _progress(label: str, enabled: bool = True) -> Iterator:
    """A rich progress bar on stderr; yields the replay progress callback."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _snapshot_choice(log: str, snapshots: Path | None, no_snapshots: bool):
    from perpdex.store.snapshot import default_snapshot_dir

    if no_snapshots:
        return None
    if snapshots is not None:
        return snapshots
    directory = default_snapshot_dir(log)
    return directory if directory is not None and directory.is_dir() else None


def replay(log: str = typer.Argument(..., help=LOG_HELP),
           until: int | None = typer.Option(None, "--until", min=0, help="Stop after this seq (a point in history)."),
           snapshots: Path | None = typer.Option(None, "--snapshots",
                                                 help="Snapshot folder (default: <log>.snapshots/ if it exists)."),
           no_snapshots: bool = typer.Option(False, "--no-snapshots", help="Replay every row from genesis."),
           snapshot_every: int = typer.Option(0, "--snapshot-every", min=0,
                                              help="Write a snapshot every N transactions while replaying "
                                                   "(records their digests in the log); 0: none."),
           verify: bool = typer.Option(False, "--verify", help="Check the digest at every checkpoint the log recorded."),
           as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Rebuild the exchange state from a log; print the digest, the transaction count and the time."""
    from perpdex.store.replay import replay as store_replay
    from perpdex.store.snapshot import default_snapshot_dir

    with _one_line_errors():
        store = _snapshot_choice(log, snapshots, no_snapshots)
        if snapshot_every and store is None:
            store = snapshots or default_snapshot_dir(log)
            if store is None:
                raise typer.BadParameter("--snapshot-every needs --snapshots for a PostgreSQL log")
        with _progress("replaying", not as_json) as progress:
            result = store_replay(log, until_seq=until, snapshots=store, progress=progress,
                                  verify_checkpoints=verify, snapshot_every=snapshot_every or None)
        for issue in result.issues:
            err_console.print(f"[yellow]warning:[/] {issue}", highlight=False, soft_wrap=True)
        summary = {"log": log, "last_seq": result.last_seq, "transactions": result.last_seq,
                   "replayed": result.replayed, "from_snapshot_seq": result.start_seq, "seconds": result.seconds,
                   "tx_per_s": result.tx_per_s, "checkpoints_verified": result.checkpoints_verified,
                   "digest": result.digest, "issues": result.issues}
        if as_json:
            print(json.dumps(summary, indent=2))
            return
        start = f"snapshot at seq {result.start_seq:,}" if result.snapshot else "genesis"
        console.print(f"replayed {result.replayed:,} transactions from {start} to seq {result.last_seq:,} "
                      f"in {result.seconds:.2f} s ({result.tx_per_s:,.0f} tx/s)"
                      + (f"; {result.checkpoints_verified} checkpoint digests verified" if verify else ""),
                      highlight=False)
        console.print(f"transactions {result.last_seq:,}", highlight=False)
        console.print(f"state digest {result.digest}", highlight=False)


def export(log: str = typer.Argument(..., help=LOG_HELP),
           out: Path = typer.Option(..., "--out", help="Folder for the Parquet tables and _export.json."),
           until: int | None = typer.Option(None, "--until", min=0, help="Export history up to this seq."),
           as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Write Parquet tables (fills, orders, funding payments and rates, liquidations, balances,
    positions, transactions, markets) for polars, pandas and DuckDB."""
    from perpdex.store.export import export as store_export

    with _one_line_errors():
        with _progress("exporting", not as_json) as progress:
            result = store_export(log, out, until_seq=until, progress=progress)
        summary = {"log": log, "out": str(out), "rows": result.rows, "last_seq": result.last_seq,
                   "transactions": result.tx_count, "seconds": result.seconds, "digest": result.digest}
        if as_json:
            print(json.dumps(summary, indent=2))
            return
        table = Table(title=f"exported to {out}", title_justify="left")
        table.add_column("table")
        table.add_column("rows", justify="right")
        table.add_column("file")
        for name, rows in result.rows.items():
            table.add_row(name, f"{rows:,}", str(result.files[name]))
        console.print(table)
        console.print(f"transactions {result.tx_count:,} (to seq {result.last_seq:,}) in {result.seconds:.2f} s",
                      highlight=False)
        console.print(f"state digest {result.digest}", highlight=False)


def query(log: str = typer.Argument(..., help=LOG_HELP + " Or a folder written by `export`."),
          sql: str = typer.Argument(..., help="DuckDB SQL over fills, orders, funding_payments, funding_rates, "
                                              "liquidations, balances, positions, transactions, markets."),
          until: int | None = typer.Option(None, "--until", min=0, help="Query history up to this seq."),
          output: str = typer.Option("table", "--format", help="table, csv or json."),
          limit: int = typer.Option(50, "--limit", min=1, help="Rows shown in table format.")) -> None:
    """Run DuckDB SQL over the log's tables; the result on stdout, digest and time on stderr."""
    from perpdex.store.export import query as store_query

    if output not in ("table", "csv", "json"):
        raise typer.BadParameter("--format must be table, csv or json")
    with _one_line_errors():
        with _progress("replaying", output == "table") as progress:
            result = store_query(log, sql, until_seq=until, progress=progress)
        data = result.table
        if output == "csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(data, sys.stdout.buffer)
            sys.stdout.flush()
        elif output == "json":
            print(json.dumps(data.to_pylist(), default=str, indent=1))
        else:
            table = Table(title_justify="left")
            for name in data.column_names:
                table.add_column(name, overflow="fold")
            for row in data.slice(0, limit).to_pylist():
                table.add_row(*(_cell(value) for value in row.values()))
            console.print(table)
            if data.num_rows > limit:
                console.print(f"... {data.num_rows - limit:,} more rows (--limit, or --format csv)")
        err_console.print(f"{data.num_rows:,} rows; transactions {result.tx_count:,} (to seq {result.last_seq:,}), "
                          f"{result.seconds:.2f} s; state digest {result.digest}", highlight=False)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e15 else f"{value:.6g}"
    return str(value)


def bench_store(transactions: int = typer.Option(200_000, min=1_000, help="Transactions of the apply flow."),
                subaccounts: int = typer.Option(10_000, min=10),
                group_size: int = typer.Option(1_000, "--group", min=1, help="Transactions per group commit."),
                durable_sample: int = typer.Option(2_000, "--durable-sample", min=10,
                                                   help="Transactions timed with one fsync each."),
                seed: int = typer.Option(1),
                postgres: str | None = typer.Option(None, "--postgres", help="Also time a postgresql:// URL "
                                                    "(its perpdex tables must not exist yet)."),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """Durable append (per tx and group commit), replay and recovery; targets replay >= 50,000 tx/s,
    group-commit append >= 20,000 tx/s on SQLite."""
    from perpdex.bench.store import GROUP_APPEND_TARGET_TX_PER_S, REPLAY_TARGET_TX_PER_S, run

    with _one_line_errors():
        result = run(transactions=transactions, subaccounts=subaccounts, seed=seed, group_size=group_size,
                     durable_sample=durable_sample, postgres_url=postgres)
    group_ratio = result["append_group_tx_per_s"] / GROUP_APPEND_TARGET_TX_PER_S
    lines = [
        f"store on the apply flow: {result['transactions']:,} txs, {result['logged']:,} accepted and logged",
        (f"  append, group commit ({group_size:,}/fsync): {result['append_group_tx_per_s']:,.0f} tx/s "
         f"(target {GROUP_APPEND_TARGET_TX_PER_S:,}; {group_ratio:.2f}x)"),
        f"  append, fsync per tx:          {result['append_durable_tx_per_s']:,.0f} tx/s",
        (f"  DurableExchange.apply_batch:   {result['durable_exchange_group_tx_per_s']:,.0f} tx/s over the whole "
         f"flow, rejections included (encode + apply + append + one fsync per {group_size:,}); "
         f".apply, one fsync each: {result['durable_exchange_single_tx_per_s']:,.0f} tx/s"),
        (f"  replay from genesis:           {result['replay_tx_per_s']:,.0f} tx/s (target {REPLAY_TARGET_TX_PER_S:,}; "
         f"{result['replay_tx_per_s'] / REPLAY_TARGET_TX_PER_S:.2f}x); the same txs through Exchange.apply alone: "
         f"{result['apply_only_tx_per_s']:,.0f} tx/s, replay at {result['replay_vs_apply_only']:.0%} of that"),
        (f"  recovery: snapshot at seq {result['recovery_from_seq']:,} ({result['snapshot_bytes'] / 1e6:.1f} MB) + "
         f"{result['recovery_tail']:,} tail txs in {result['recovery_seconds']:.2f} s"),
        (f"  digests equal (replay, recovery vs direct apply): {result['digest_matches']}, "
         f"{result['recovery_digest_matches']}"),
        f"state digest {result['digest']}",
    ]
    for key in ("postgres_append_group_tx_per_s", "postgres_append_durable_tx_per_s", "postgres_read_decode_tx_per_s"):
        if key in result:
            lines.append(f"  {key.replace('_', ' ')}: {result[key]:,.0f}")
    ok = bool(result["replay_ok"] and result["append_group_ok"] and result["digest_matches"]
              and result["recovery_digest_matches"])
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for line in lines:
            console.print(line, highlight=False)
    print("RESULT bench=store ok=" + str(ok).lower() + " " + " ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
        if isinstance(v, (int, float, str)) and k != "digest"))


def register(app: typer.Typer, bench_app: typer.Typer | None = None) -> None:
    """Add the store commands to the main app (and `bench store` to its bench group)."""
    app.command("replay")(replay)
    app.command("export")(export)
    app.command("query")(query)
    if bench_app is not None:
        bench_app.command("store")(bench_store)


store_app = typer.Typer(help="perpdex store commands.", no_args_is_help=True, pretty_exceptions_enable=False,
                        add_completion=False)
_store_bench = typer.Typer(help="Benchmarks.", no_args_is_help=True)
store_app.add_typer(_store_bench, name="bench")
register(store_app, _store_bench)


if __name__ == "__main__":
    store_app()
