"""The simulator on the rollup: one state machine (soft funding: the same log and digest as without
the rollup), every batch accepted and verified, batch timing from the proving model, withdrawals
final when their batch is accepted, finalized funding from accepted batches only, and the log
replaying to the run's digest; bad `[rollup]` input names its field."""

from __future__ import annotations

import itertools
import json

import pytest
import typer
from typer.testing import CliRunner

from perpdex.cli.sim_commands import sim_app
from perpdex.core.tx import FundingFinalize, FundingTick, Withdraw
from perpdex.sim.engine import Simulation
from perpdex.sim.rollup import max_waiting
from perpdex.sim.run import markets_to_toml, read_tx_log, replay_tx_log, run_scenario, write_tx_log
from perpdex.sim.scenario import ScenarioError
from tests.sim.tiny import tiny

MINUTE_MS = 60_000
# 6-minute batches proved in 3 minutes + 2 ms per transaction: about a dozen batches in 72 minutes
FAST = ("withdrawals.per_agent_per_day=20", "rollup.batch_max_age_hours=0.1", "rollup.proving_fixed_minutes=3",
        "rollup.proving_per_tx_ms=2")
ROLLUP = ("rollup.enabled=true", *FAST)
FINALIZED = (*ROLLUP, 'rollup.funding="finalized"')


@pytest.fixture(scope="module")
def plain():
    return Simulation(tiny(*FAST)).run()


@pytest.fixture(scope="module")
def soft():
    return Simulation(tiny(*ROLLUP)).run()


@pytest.fixture(scope="module")
def finalized():
    return Simulation(tiny(*FINALIZED)).run()


def test_soft_funding_through_the_rollup_is_the_same_run(plain, soft):
    assert soft.rollup is not None and plain.rollup is None
    assert soft.exchange is soft.rollup.sequencer.exchange  # one state machine
    assert soft.txs == plain.txs
    assert soft.digest == plain.digest
    assert plain.key_figures()["withdrawals"] > 5  # the agents do withdraw


@pytest.mark.parametrize("run", ["soft", "finalized"])
def test_every_batch_is_accepted_and_verified(run, request):
    result = request.getfixturevalue(run)
    rollup = result.rollup
    batches = rollup.batch_list()
    assert len(batches) >= 10
    contract, verifier = rollup.node.contract, rollup.verifier
    assert contract.next_batch_id == len(batches) == len(verifier.accepted)
    assert [record.batch_id for record in contract.updates] == list(range(len(batches)))
    assert contract.root == rollup.sequencer.root == verifier.root and not rollup.node.queue
    # the replica the verifier re-executed is the run's final state
    assert verifier.exchange.digest() == result.digest
    assert sum(len(batch.txs) for batch in batches) == len(result.txs)
    assert [tx for batch in batches for tx in batch.txs] == result.txs
    figures = result.key_figures()["rollup"]
    assert figures["batches"] == figures["batches_accepted"] == len(batches) and figures["settled"]


def test_batch_timing_follows_the_policy_and_the_proving_model(soft):
    spec = soft.scenario.rollup
    rows = soft.recorder.records("batches")
    assert [row["batch_id"] for row in rows] == list(range(len(rows)))
    max_age_ms = round(spec.batch_max_age_hours * 3_600_000)
    for row, batch in zip(rows, soft.rollup.batch_list()):
        proving_ms = min(round(spec.proving_fixed_minutes * MINUTE_MS) + round(spec.proving_per_tx_ms * row["txs"]),
                         round(spec.proving_max_hours * 3_600_000))
        assert row["proof_ready_ms"] - row["closed_ms"] == row["proof_latency_ms"] == proving_ms
        assert row["accepted_ms"] >= row["proof_ready_ms"]
        assert row["accepted_ms"] % 12_000 == 0  # L1 accepts in whole 12 s blocks
        assert row["first_tx_ms"] <= row["last_tx_ms"] <= row["closed_ms"] <= row["first_tx_ms"] + max_age_ms
        assert row["time_to_finality_ms"] == row["accepted_ms"] - row["first_tx_ms"]
        assert row["txs"] == len(batch.txs) and row["first_tx_ms"] == batch.txs[0].ts_ms
    accepted = [row["accepted_ms"] for row in rows]
    assert accepted == sorted(accepted)  # in order
    closed = [row["closed_ms"] for row in rows[:-1]]
    assert all(b - a == max_age_ms for a, b in itertools.pairwise(closed))  # closed by age on a steady flow


def test_withdrawals_wait_for_their_batch_to_be_accepted(soft):
    rows = soft.recorder.records("withdrawals")
    withdraws = [tx for tx in soft.txs if type(tx) is Withdraw]
    assert len(rows) == len(withdraws) > 5
    accepted = {row["batch_id"]: row["accepted_ms"] for row in soft.recorder.records("batches")}
    batch_of = {id(tx): batch.batch_id for batch in soft.rollup.batch_list() for tx in batch.txs}
    for row, tx in zip(rows, withdraws):
        assert (row["ts_ms"], row["subaccount"], row["amount_quote_quantums"]) == (
            tx.ts_ms, str(tx.subaccount_id), tx.amount_quantums)
        assert row["batch_id"] == batch_of[id(tx)]
        assert row["final_ms"] == accepted[row["batch_id"]]
        assert row["wait_ms"] == row["final_ms"] - row["ts_ms"] > 0
    figures = soft.key_figures()["rollup"]
    assert figures["max_withdrawals_waiting"] == max_waiting(rows) and figures["max_withdrawals_waiting"]["count"] >= 1


def test_max_waiting_counts_withdrawals_not_yet_final():
    rows = [{"ts_ms": 0, "final_ms": 10, "amount_quote_quantums": 1_000_000},
            {"ts_ms": 5, "final_ms": 20, "amount_quote_quantums": 2_000_000},
            {"ts_ms": 10, "final_ms": 20, "amount_quote_quantums": 4_000_000}]  # the first is final at 10
    assert max_waiting(rows)["count"] == 2 and max_waiting(rows)["usd"] == 6.0


def test_the_proven_state_trails_the_matched_one(soft):
    rows = soft.recorder.records("proven_balances")
    assert rows and rows[0]["proven_batch_id"] is None and rows[0]["subaccounts_proven"] == 0
    proven_ids = [row["proven_batch_id"] for row in rows if row["proven_batch_id"] is not None]
    assert proven_ids == sorted(proven_ids) and len(set(proven_ids)) > 3
    for row in rows:
        assert row["proven_lag_ms"] >= 0 and row["subaccounts_proven"] <= row["subaccounts_matched"]
        if row["proven_up_to_ms"] is not None:
            assert row["proven_lag_ms"] == row["ts_ms"] - row["proven_up_to_ms"]
    assert any(row["equity_matched_usd"] != row["equity_proven_usd"] for row in rows[1:])


def test_withdrawals_keep_the_pnl_split_exact(soft):
    for row in soft.recorder.records("agent_pnl"):
        assert row["other_usd"] == pytest.approx(0.0, abs=1e-6), row
        assert row["total_pnl_usd"] == pytest.approx(row["equity_usd"] + row["withdrawn_usd"] - row["deposits_usd"],
                                                     abs=1e-6)
    assert sum(row["withdrawn_usd"] for row in soft.recorder.records("agent_pnl")) == pytest.approx(
        soft.key_figures()["withdrawn_usd"])


def test_finalized_funding_closes_intervals_only_from_accepted_batches(soft, finalized):
    txs = finalized.txs
    assert not any(type(tx) is FundingTick for tx in txs)
    finalizes = [tx for tx in txs if type(tx) is FundingFinalize]
    batches = {row["batch_id"]: row for row in finalized.recorder.records("batches")}
    # one per batch accepted before the run ended, in order, sent at its acceptance, covering up to
    # its last transaction or just before the age it closed at
    assert len(finalizes) >= 8
    for tx, (batch_id, row) in zip(finalizes, sorted(batches.items())):
        assert tx.ts_ms == row["accepted_ms"]
        assert tx.up_to_ms == max(row["last_tx_ms"], row["closed_ms"] - 1)
    assert [tx.up_to_ms for tx in finalizes] == sorted(tx.up_to_ms for tx in finalizes)
    # the soft run closed its funding hour at the tick; the finalized one when that hour was proven
    soft_rates = soft.recorder.records("funding")
    final_rates = finalized.recorder.records("funding")
    assert soft_rates and final_rates
    hour_end = min(row["ts_ms"] for row in soft_rates)
    proven_at = min(tx.ts_ms for tx in finalizes if tx.up_to_ms + 1 >= hour_end)
    assert min(row["ts_ms"] for row in final_rates) == proven_at > hour_end
    assert finalized.digest != soft.digest
    assert all(m.params.funding_finality.value == "finalized" for m in finalized.exchange.markets.values())


def test_the_log_of_a_finalized_run_replays_to_its_digest(finalized, tmp_path):
    path = tmp_path / "tx_log.sqlite"
    write_tx_log(path, finalized.txs, markets_to_toml(finalized.markets))
    assert read_tx_log(path) == finalized.txs
    assert replay_tx_log(path).digest() == finalized.digest


def test_run_scenario_writes_the_rollup_tables_and_figures(tmp_path):
    output = run_scenario(tiny(*FINALIZED, days=0.03), tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rollup = summary["rollup"]
    assert rollup["batches"] > 3 and rollup["settled"] and rollup["funding"] == "finalized"
    for key in ("proof_latency_minutes", "time_to_finality_minutes", "withdrawal_wait_minutes", "proven_lag_minutes"):
        assert set(rollup[key]) == {"mean", "p50", "p99", "max"} and rollup[key]["mean"] is not None
    assert rollup["max_withdrawals_waiting"]["count"] >= 1
    for table in ("batches", "withdrawals", "proven_balances"):
        assert (tmp_path / "run" / "tables" / f"{table}.parquet").is_file()
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<h2>Rollup: batches, proofs and finality</h2>" in page and "Proof latency" in page
    assert replay_tx_log(tmp_path / "run" / "tx_log.sqlite").digest() == output.result.digest


@pytest.mark.parametrize("overrides, field", [
    (('rollup.funding="finalized"',), "rollup.funding"),
    (("rollup.enabled=true", 'rollup.hash="md5"'), "rollup.hash"),
    (("rollup.enabled=true", "rollup.batch_max_txs=0"), "rollup.batch_max_txs"),
    (("rollup.enabled=true", "rollup.batch_max_age_hours=-1"), "rollup.batch_max_age_hours"),
    (("rollup.enabled=true", "rollup.proving_fixed_minutes=120", "rollup.proving_max_hours=1"),
     "rollup.proving_max_hours"),
    (("rollup.enabled=true", "rollup.bathc_max_txs=5"), "rollup.bathc_max_txs"),
    (("withdrawals.fraction=2",), "withdrawals.fraction"),
], ids=["finalized funding without the rollup", "an unknown hash", "empty batches", "a negative batch age",
        "a proving cap under the fixed proving time", "a misspelt key", "withdrawing more than everything"])
def test_bad_rollup_input_names_the_field(overrides, field):
    with pytest.raises(ScenarioError) as caught:
        tiny(*overrides)
    assert caught.value.field == field and field in str(caught.value)


def test_the_cli_flag_runs_through_the_rollup_and_reports_bad_input(tmp_path):
    app = typer.Typer()
    app.add_typer(sim_app, name="sim")
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["sim", "run", "calm", "--rollup", "--out", str(out), "--no-progress",
                                 "--set", "days=0.02", "--set", "agents.noise.count=20",
                                 "--set", "agents.directional.count=5", "--set", "rollup.batch_max_age_hours=0.1"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "rollup batches" in result.output and "proof latency" in result.output
    assert json.loads((out / "summary.json").read_text())["rollup"]["batches"] >= 3
    bad = runner.invoke(app, ["sim", "run", "calm", "--rollup", "--set", 'rollup.hash="sha1"', "--out", str(out)])
    assert bad.exit_code == 2 and "rollup.hash" in bad.stderr and "Traceback" not in bad.output


def test_an_hour_proven_as_it_ends_gets_the_soft_rate_at_the_same_time():
    """Batches close on the hour and are proved at once: the first hour's batch is accepted in the L1
    block at the hour, so FundingFinalize closes that hour right after the hour's oracle update, where
    the soft FundingTick does, with the same observations: the same rate, premium and index. (Agents
    here ignore the funding rate, so both runs send the same orders until then.)"""
    instant = ("rollup.enabled=true", "rollup.batch_max_age_hours=1", "rollup.proving_fixed_minutes=0",
               "rollup.proving_per_tx_ms=0", "funding.min_votes_per_sample=3",  # a vote per 20 s step
               "agents.arbitrageurs.count=0", "agents.market_makers.funding_widen=0",
               "agents.market_makers.funding_pull=0")
    soft_run = Simulation(tiny(*instant, days=0.05)).run()
    final_run = Simulation(tiny(*instant, 'rollup.funding="finalized"', days=0.05)).run()
    soft_rates = soft_run.recorder.records("funding")
    final_rates = final_run.recorder.records("funding")
    assert len(soft_rates) == len(final_rates) == 2  # BTC-USD and ETH-USD, one hour each
    assert final_rates == soft_rates and any(row["premium_ppm"] for row in soft_rates)
    assert [type(tx).__name__ for tx in final_run.txs].count("FundingFinalize") == 1


@pytest.mark.parametrize("overrides", [('rollup.hash="pedersen"',), ("rollup.commit_liabilities=false",)],
                         ids=["StarkEx's Pedersen hash", "without the liabilities tree"])
def test_the_state_tree_options_change_the_commitments_not_the_run(overrides):
    base = ("rollup.enabled=true", "rollup.batch_max_age_hours=0.5", "rollup.proving_fixed_minutes=3")
    reference = Simulation(tiny(*base, days=0.02)).run()
    other = Simulation(tiny(*base, *overrides, days=0.02)).run()
    assert other.digest == reference.digest and other.txs == reference.txs
    rows, reference_rows = other.recorder.records("batches"), reference.recorder.records("batches")
    assert [row["accepted_ms"] for row in rows] == [row["accepted_ms"] for row in reference_rows]
    assert other.key_figures()["rollup"]["settled"]
    assert other.rollup.sequencer.tree.backend.name == other.scenario.rollup.hash
    if other.scenario.rollup.hash != reference.scenario.rollup.hash:  # another hash: other roots
        assert all(a["root"] != b["root"] for a, b in zip(rows, reference_rows))
    else:  # the same state root; no liabilities root beside it
        assert [row["root"] for row in rows] == [row["root"] for row in reference_rows]
        assert all(batch.liabilities_root is None for batch in other.rollup.batch_list())
        assert all(batch.liabilities_root is not None for batch in reference.rollup.batch_list())


def test_the_verifier_runs_starkex_fairness_checks_unless_told_not_to():
    checked = Simulation(tiny(*ROLLUP, days=0.02)).run()
    assert checked.rollup.verifier.check_validity and checked.key_figures()["rollup"]["settled"]
    unchecked = Simulation(tiny(*ROLLUP, "rollup.fairness_checks=false", days=0.02)).run()
    assert not unchecked.rollup.verifier.check_validity and checked.digest == unchecked.digest
