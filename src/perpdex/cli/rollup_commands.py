"""CLI commands of the rollup: `verify LOG`, `exit --account A --at-root R LOG`, `escape-drill RUN`. They parse,
call `perpdex.rollup` and render; bad input is one line on stderr and exit code 2, a failed check exit code 1.

Wire into the main app with `app.add_typer(rollup_app, name="rollup")`; runnable alone as
`python -m perpdex.cli.rollup_commands verify LOG`. A LOG is a store log (SQLite file or postgresql:// URL);
its batches come from `<LOG>.rollup.jsonl` when the sequencer recorded one, else the log is re-batched with
`--batch-txs` / `--batch-ms` (the same policy always gives the same batches and roots).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from perpdex.core.errors import PerpdexError

rollup_app = typer.Typer(help="Validity rollup: verify batches, prove an exit, run the escape drill.",
                         no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
console = Console()
if not console.is_terminal:
    console = Console(width=150)
err_console = Console(stderr=True)

LOG_HELP = "The store log: a SQLite file (as written by DurableExchange) or a postgresql:// URL."
BATCHES_HELP = "Batch file (JSON lines); default <LOG>.rollup.jsonl when it exists, else the log is re-batched."
BACKEND_HELP = "Hash for the state tree when re-batching: pedersen, poseidon or blake2s."


class RollupCliError(Exception):
    """A problem with the command's own input, reported as one line."""


@contextmanager
def _one_line_errors() -> Iterator[None]:
    from perpdex.rollup.encoding import EncodingError
    from perpdex.rollup.l1 import L1Error
    from perpdex.rollup.tree import TreeError
    from perpdex.store.errors import StoreError

    try:
        yield
    except (StoreError, PerpdexError, RollupCliError, L1Error, TreeError, EncodingError, OSError, ValueError) as error:
        text = f"{error.filename}: {error.strerror}" if isinstance(error, OSError) and error.filename else str(error)
        print(f"perpdex: error: {text}".replace("\n", " "), file=sys.stderr)
        raise typer.Exit(2) from None


def _read_log(log: str):
    """(markets, [tx, ...]) of a store log, every row checked."""
    from perpdex.store import open_log

    with open_log(log) as opened:
        markets = opened.markets()
        txs = [tx for _, tx in opened.records()]
    return markets, txs


def _recorded_batches(log: str, batches: Path | None):
    from perpdex.rollup.batch import JsonlBatchStore

    store = JsonlBatchStore(batches) if batches is not None else JsonlBatchStore.beside(log)
    if batches is not None and not store.path.exists():
        raise RollupCliError(f"{batches}: no such batch file")
    return list(store.batches()) if store.path.exists() else None


def _rebatch(markets, txs, backend: str, batch_txs: int, batch_ms: int | None):
    """Run the log's transactions through a sequencer with this policy: the batches an operator would have
    closed. Every transaction of a log was accepted once, so each must apply again."""
    from perpdex.core.exchange import Exchange
    from perpdex.rollup import BatchPolicy, MemoryTxStore, Sequencer, StateTree, make_backend

    sequencer = Sequencer(MemoryTxStore(Exchange(markets)), StateTree(make_backend(backend)),
                          BatchPolicy(batch_txs, batch_ms))
    for seq, tx in enumerate(txs, start=1):
        try:
            sequencer.submit(tx)
        except PerpdexError as error:
            raise RollupCliError(f"seq {seq} is rejected on replay: {error}") from None
    sequencer.flush()
    return list(sequencer.batches.batches()), sequencer


def _batches_for(log: str, batches: Path | None, backend: str, batch_txs: int, batch_ms: int | None):
    markets, txs = _read_log(log)
    recorded = _recorded_batches(log, batches)
    if recorded is None:
        produced, _ = _rebatch(markets, txs, backend, batch_txs, batch_ms)
        return markets, txs, produced, "re-batched"
    batched = [tx for batch in recorded for tx in batch.txs]
    if batched != txs[:len(batched)]:
        first = next(i for i, (a, b) in enumerate(zip(batched, txs)) if a != b) if len(batched) <= len(txs) else len(txs)
        raise RollupCliError(f"the batch file disagrees with the log at seq {first + 1}")
    return markets, txs, recorded, "recorded"


@rollup_app.command("verify")
def verify(log: str = typer.Argument(..., help=LOG_HELP),
           batches: Path | None = typer.Option(None, help=BATCHES_HELP),
           backend: str = typer.Option("pedersen", help=BACKEND_HELP),
           batch_txs: int = typer.Option(10_000, help="Re-batching: close a batch every N transactions."),
           batch_ms: int | None = typer.Option(None, help="Re-batching: and after T ms of transaction time."),
           as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Replay the log, verify every batch by re-execution and print the final root."""
    from perpdex.core.exchange import Exchange
    from perpdex.rollup import ReexecutionProver, ReexecutionVerifier, VerificationError

    with _one_line_errors():
        markets, txs, batch_list, source = _batches_for(log, batches, backend, batch_txs, batch_ms)
        if not batch_list:
            raise RollupCliError("the log has no batch to verify")
        verifier = ReexecutionVerifier(lambda: Exchange(markets), backend=batch_list[0].backend,
                                       height=batch_list[0].height,
                                       commit_liabilities=batch_list[0].liabilities_root is not None)
        prover = ReexecutionProver()
        for batch in batch_list:
            try:
                verifier.verify(batch.header(), prover.prove(batch))
            except VerificationError as error:
                print(f"perpdex: verification failed: {error}", file=sys.stderr)
                raise typer.Exit(1) from None
        result = {"log": str(log), "batches": len(batch_list), "source": source,
                  "transactions": sum(len(b.txs) for b in batch_list), "log_transactions": len(txs),
                  "backend": batch_list[0].backend, "final_root": hex(batch_list[-1].root),
                  "liabilities_sum_quote_quantums": batch_list[-1].liabilities_root[1]
                  if batch_list[-1].liabilities_root else None}
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"rollup verify {log}", title_justify="left", show_header=False)
    for key, value in result.items():
        table.add_row(key, str(value))
    console.print(table)
    console.print(f"all {len(batch_list)} batches verified; final root {result['final_root']}")


def _parse_account(text: str):
    from perpdex.core.state import SubaccountId

    owner, _, number = text.rpartition("/")
    if owner and number.isdigit():
        return SubaccountId(owner, int(number))
    return SubaccountId(text, 0)


@rollup_app.command("exit")
def exit_proof(log: str = typer.Argument(..., help=LOG_HELP),
               account: str = typer.Option(..., help="Subaccount: OWNER or OWNER/NUMBER."),
               at_root: str = typer.Option("latest", help="A batch's state root (hex), or 'latest'."),
               batches: Path | None = typer.Option(None, help=BATCHES_HELP),
               backend: str = typer.Option("pedersen", help=BACKEND_HELP),
               batch_txs: int = typer.Option(10_000, help="Re-batching: close a batch every N transactions."),
               batch_ms: int | None = typer.Option(None, help="Re-batching: and after T ms of transaction time.")) -> None:
    """Print a subaccount's escape proof at a root (its leaf, Merkle path and the global state), verify it, and
    show what the escape hatch would pay."""
    from perpdex.core.exchange import Exchange
    from perpdex.rollup import StateTree, make_backend
    from perpdex.rollup.encoding import account_value
    from perpdex.rollup.sequencer import reexecute

    with _one_line_errors():
        subaccount_id = _parse_account(account)
        markets, _, batch_list, _ = _batches_for(log, batches, backend, batch_txs, batch_ms)
        if not batch_list:
            raise RollupCliError("the log has no batch")
        wanted = batch_list[-1].root if at_root == "latest" else int(at_root, 16)
        exchange = Exchange(markets)
        tree = StateTree(make_backend(batch_list[0].backend), batch_list[0].height, commit_liabilities=False)
        for batch in batch_list:
            if reexecute(batch, exchange, tree).root != batch.root:
                raise RollupCliError(f"batch {batch.batch_id} does not reproduce its root")
            if tree.root == wanted:
                break
        else:
            raise RollupCliError(f"no batch of this log has root {at_root}")
        proof = tree.state_proof(subaccount_id)
        checker = make_backend(batch_list[0].backend)
        verified = proof.verify(checker, wanted)
        value = account_value(proof.leaf, proof.global_state)
        print(json.dumps({"account": str(subaccount_id), "root": hex(wanted), "verified": verified,
                          "escape_value_quote_quantums": max(value, 0), "account_value_quote_quantums": value,
                          "proof": proof.to_json()}, indent=2))
        if not verified:
            raise typer.Exit(1)


@rollup_app.command("escape-drill")
def escape_drill_cmd(run: str = typer.Argument(..., help="A finished run's store log. " + LOG_HELP),
                     backend: str = typer.Option("pedersen", help=BACKEND_HELP),
                     batch_txs: int = typer.Option(10_000, help="Close a batch every N transactions."),
                     batch_ms: int | None = typer.Option(None, help="And after T ms of transaction time."),
                     as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Settle a finished run on the L1 model, file a forced withdrawal the operator ignores, freeze after the
    grace period, escape every account with its Merkle proof, and prove the exits sum to the collateral held."""
    from perpdex.rollup import BatchPolicy, build_node, escape_drill

    with _one_line_errors():
        markets, txs = _read_log(run)
        node = build_node(markets, backend=backend, policy=BatchPolicy(batch_txs, batch_ms))
        for seq, tx in enumerate(txs, start=1):
            try:
                node.submit(tx)
            except PerpdexError as error:
                raise RollupCliError(f"seq {seq} is rejected on replay: {error}") from None
        report = escape_drill(node)
    data = report.to_json()
    data.pop("per_account")
    data["batches"] = node.sequencer.batch_count
    if as_json:
        print(json.dumps(data))
    else:
        table = Table(title=f"escape drill {run}", title_justify="left", show_header=False)
        for key, value in data.items():
            table.add_row(key, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
        console.print(table)
        verdict = "exits sum exactly to the collateral held" if report.exits_equal_collateral else "EXITS DO NOT ADD UP"
        console.print(f"{report.accounts} accounts exited after the freeze: {verdict}")
    if not report.exits_equal_collateral:
        raise typer.Exit(1)


def bench_rollup(subaccounts: int = typer.Option(100_000, min=100, help="Funded subaccounts."),
                 batch_txs: int = typer.Option(10_000, min=100, help="Transactions per batch."),
                 batches: int = typer.Option(2, min=1, help="Trading batches."),
                 backends: str = typer.Option("pedersen,poseidon,blake2s", help="Hash backends, comma-separated; "
                                              "the first runs the sequencer."),
                 signatures: int = typer.Option(4_000, min=0, help="Signatures to verify (0: skip)."),
                 seed: int = typer.Option(1), as_json: bool = typer.Option(False, "--json")) -> None:
    """Sequencer tx/s, per-batch nodes rehashed and root-update time per hash (vs hash calls x one hash's cost
    in the same run), signature verifications/s on one core and all cores."""
    from perpdex.bench.rollup import run

    with _one_line_errors():
        result = run(subaccounts, batch_txs, batches, seed, tuple(b.strip() for b in backends.split(",") if b.strip()),
                     signatures)
    flat = {k: v for k, v in result.items() if k != "per_batch"}
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        console.print(f"sequencer ({result['sequencer_backend']}): {result['sequencer_tx_per_s']:,.0f} tx/s over "
                      f"{result['subaccounts']:,} subaccounts, batches of {result['batch_txs']:,} "
                      f"(apply alone {result['apply_only_tx_per_s']:,.0f} tx/s; BLAKE2s with liabilities "
                      f"{result['sequencer_tx_per_s_blake2s_with_liabilities']:,.0f} tx/s)")
        table = Table(title="root update per batch", title_justify="left")
        cores = result["cores"]
        for column in ("hash", "hashes/s", "nodes rehashed", "hash calls", "root update s (1 core)",
                       "x (calls x cost)", f"root update s ({cores} cores)", "speed-up"):
            table.add_column(column, justify="right")
        for name in backends.split(","):
            name = name.strip()
            if f"{name}_hash_per_s" in result:
                spread = result.get(f"{name}_root_update_s_per_batch_all_cores")
                table.add_row(name, f"{result[f'{name}_hash_per_s']:,.0f}",
                              f"{result[f'{name}_nodes_rehashed_per_batch']:,.0f}",
                              f"{result[f'{name}_hash_calls_per_batch']:,.0f}",
                              f"{result[f'{name}_root_update_s_per_batch']:.3f}",
                              f"{result[f'{name}_ratio_to_hash_cost']:.2f}",
                              "inline" if spread is None else f"{spread:.3f}",
                              "" if spread is None else f"{result[f'{name}_root_update_speedup']:.2f}x")
        console.print(table)
        if "verify_per_s_one_core" in result:
            console.print(f"signatures: {result['verify_per_s_one_core']:,.0f}/s on one core, "
                          f"{result['verify_per_s_all_cores']:,.0f}/s on {cores} cores "
                          f"({result['parallel_speedup']:.2f}x); signed orders through the sequencer "
                          f"{result['signed_sequencer_tx_per_s_one_core']:,.0f} tx/s on one core, "
                          f"{result['signed_sequencer_tx_per_s_all_cores']:,.0f} tx/s on {cores} "
                          f"({result['signed_sequencer_speedup']:.2f}x)")
    print("RESULT bench=rollup ok=" + str(result["ok"]).lower() + " " + " ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in flat.items()
        if isinstance(v, (int, float, str)) and k not in ("ok", "root")))


def register(app: typer.Typer, bench_app: typer.Typer | None = None) -> None:
    """Add `rollup verify|exit|escape-drill` to the main app (and `bench rollup` to its bench group)."""
    app.add_typer(rollup_app, name="rollup")
    if bench_app is not None:
        bench_app.command("rollup")(bench_rollup)


rollup_app.command("bench")(bench_rollup)  # also `python -m perpdex.cli.rollup_commands bench`

if __name__ == "__main__":  # pragma: no cover
    rollup_app()
