"""The rollup commands on a small store log: verify (recorded and re-batched), exit proofs, the escape drill,
and one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from perpdex.cli.rollup_commands import rollup_app
from perpdex.core.errors import PerpdexError
from perpdex.rollup import (
    BatchPolicy,
    DurableTxStore,
    JsonlBatchStore,
    Sequencer,
    StateTree,
    make_backend,
    workload,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def run_log(tmp_path_factory):
    from perpdex.store import DurableExchange

    path = tmp_path_factory.mktemp("rollup") / "run.db"
    durable = DurableExchange.create(path, snapshots=None, durability="off")
    seq = Sequencer(DurableTxStore(durable), StateTree(make_backend("blake2s")), BatchPolicy(60, None),
                    batches=JsonlBatchStore.beside(path))
    for tx in [*workload.genesis(12), *workload.trading(12, 150, seed=2)]:
        try:
            seq.submit(tx)
        except PerpdexError:
            pass
    seq.flush()
    durable.close()
    return path, seq.tree.root


def test_verify_checks_every_recorded_batch_and_prints_the_final_root(run_log):
    path, root = run_log
    result = runner.invoke(rollup_app, ["verify", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["final_root"] == hex(root) and data["source"] == "recorded" and data["batches"] >= 2


def test_verify_rebatches_a_log_without_a_batch_file(run_log, tmp_path):
    path, _ = run_log
    result = runner.invoke(rollup_app, ["verify", str(path), "--batches", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2 and "no such batch file" in result.output
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())
    result = runner.invoke(rollup_app, ["verify", str(copy), "--backend", "blake2s", "--batch-txs", "40", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["source"] == "re-batched"


def test_exit_prints_a_verified_proof_at_a_root(run_log):
    path, root = run_log
    result = runner.invoke(rollup_app, ["exit", str(path), "--account", "trader000003", "--at-root", hex(root)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verified"] and data["root"] == hex(root) and data["escape_value_quote_quantums"] > 0
    unknown = runner.invoke(rollup_app, ["exit", str(path), "--account", "nobody", "--at-root", hex(root)])
    assert unknown.exit_code == 2
    wrong = runner.invoke(rollup_app, ["exit", str(path), "--account", "trader000003", "--at-root", "0x1"])
    assert wrong.exit_code == 2 and "no batch" in wrong.output


def test_escape_drill_on_a_finished_run(run_log):
    path, _ = run_log
    result = runner.invoke(rollup_app, ["escape-drill", str(path), "--backend", "blake2s", "--batch-txs", "50",
                                        "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["exits_equal_collateral"] and data["contract_balance_after"] == 0 and data["accounts"] == 12


def test_a_missing_log_is_one_line_and_exit_code_two(tmp_path):
    result = runner.invoke(rollup_app, ["verify", str(tmp_path / "missing.db")])
    assert result.exit_code == 2 and "perpdex: error:" in result.output


@pytest.mark.slow
def test_bench_rollup_reports_every_figure_at_small_scale():
    result = runner.invoke(rollup_app, ["bench", "--subaccounts", "400", "--batch-txs", "200", "--batches", "2",
                                        "--signatures", "40", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[:result.stdout.rindex("RESULT")])
    for backend in ("pedersen", "poseidon", "blake2s"):
        assert data[f"{backend}_nodes_rehashed_per_batch"] > 0 and data[f"{backend}_ratio_to_hash_cost"] > 0
    assert data["sequencer_tx_per_s"] > 0 and data["verify_per_s_one_core"] > 0
    assert data["signed_sequencer_tx_per_s_all_cores"] > 0 and data["signed_orders_accepted"] > 0
    if data["cores"] >= 2:  # the spread runs must reach the same roots (the bench raises otherwise)
        assert data["pedersen_root_update_speedup"] > 0 and data["poseidon_root_update_speedup"] > 0
    assert "RESULT bench=rollup" in result.stdout
