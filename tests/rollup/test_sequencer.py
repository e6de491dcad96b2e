"""The sequencer: batches close by count and by transaction time, each records its transactions, state diff and
the root after it; rejected transactions are not batched; through the durable store, batches persist beside the log."""

from __future__ import annotations

import pytest

from perpdex.core.errors import PerpdexError
from perpdex.core.exchange import Exchange
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, Withdraw
from perpdex.core.units import QUOTE
from perpdex.rollup import (
    Batch,
    BatchPolicy,
    DurableTxStore,
    JsonlBatchStore,
    MemoryTxStore,
    Sequencer,
    StateTree,
    make_backend,
    workload,
)
from perpdex.rollup.batch import diff_bytes

ALICE, BOB = SubaccountId("alice"), SubaccountId("bob")


def sequencer(markets, policy, **options) -> Sequencer:
    return Sequencer(MemoryTxStore(Exchange(markets)), StateTree(make_backend("blake2s")), policy, **options)


def test_a_batch_closes_every_n_transactions(markets):
    seq = sequencer(markets, BatchPolicy(max_txs=3, max_age_ms=None))
    for ts in range(1, 8):
        seq.submit(Deposit(ts, ALICE, QUOTE))
    batches = list(seq.batches.batches())
    assert [len(b.txs) for b in batches] == [3, 3]
    assert seq.open_count == 1
    assert batches[1].prev_root == batches[0].root
    assert [(b.first_seq, b.last_seq) for b in batches] == [(1, 3), (4, 6)]


def test_a_batch_closes_when_its_transaction_time_is_up(markets):
    seq = sequencer(markets, BatchPolicy(max_txs=1_000, max_age_ms=1_000))
    seq.submit(Deposit(100, ALICE, QUOTE))
    seq.submit(Deposit(1_099, BOB, QUOTE))
    assert seq.batch_count == 0
    seq.submit(Deposit(1_100, ALICE, QUOTE))  # 100 + 1_000: the first batch closes before this one applies
    batch = seq.last_batch
    assert len(batch.txs) == 2 and batch.closed_ts_ms == 1_100 and batch.opened_ts_ms == 100
    assert seq.tick(2_099) is None and seq.tick(2_100) is not None  # no new transaction needed


def test_a_batch_records_its_diff_and_the_root_after_it(markets):
    seq = sequencer(markets, BatchPolicy(max_txs=10, max_age_ms=None))
    seq.submit(Deposit(1, ALICE, 10 * QUOTE))
    seq.submit(Deposit(1, BOB, 5 * QUOTE))
    first = seq.flush()
    assert {(u.subaccount_id, u.leaf.usdc_quote_quantums) for u in first.changed} == {(ALICE, 10 * QUOTE),
                                                                                      (BOB, 5 * QUOTE)}
    assert first.new_positions == ((ALICE, 0), (BOB, 1))  # new ids in sorted subaccount order
    assert first.root == seq.tree.root and first.global_state.collateral_held_quote_quantums == 15 * QUOTE
    seq.submit(Withdraw(2, BOB, QUOTE))
    second = seq.flush()
    assert [(u.position_id, u.leaf.usdc_quote_quantums) for u in second.changed] == [(1, 4 * QUOTE)]
    assert second.nodes_rehashed == 64  # one leaf: its path only
    assert second.prev_root == first.root != second.root
    assert len(diff_bytes(second.changed, second.global_fields)) > 0


def test_a_rejected_transaction_changes_nothing_and_is_not_batched(markets):
    seq = sequencer(markets, BatchPolicy(max_txs=10, max_age_ms=None))
    seq.submit(Deposit(1, ALICE, QUOTE))
    with pytest.raises(PerpdexError):
        seq.submit(Withdraw(2, ALICE, 2 * QUOTE))
    assert seq.open_count == 1 and seq.rejected == 1


def test_batches_through_the_durable_store_persist_and_round_trip(markets, tmp_path):
    from perpdex.store import DurableExchange, open_log

    log_path = tmp_path / "run.db"
    durable = DurableExchange.create(log_path, snapshots=None, durability="off")
    batches = JsonlBatchStore.beside(log_path)
    seq = Sequencer(DurableTxStore(durable), StateTree(make_backend("blake2s")), BatchPolicy(50, None),
                    batches=batches)
    accepted = 0
    for tx in [*workload.genesis(10), *workload.trading(10, 120)]:
        try:
            seq.submit(tx)
            accepted += 1
        except PerpdexError:
            pass
    seq.flush()
    durable.close()
    stored = list(batches.batches())
    assert sum(len(b.txs) for b in stored) == accepted
    log = open_log(log_path)
    logged = [tx for _, tx in log.records()]
    log.close()
    assert logged == [tx for b in stored for tx in b.txs]  # the log holds exactly the batched transactions
    assert stored[-1].last_seq == accepted and stored[0].first_seq == 1
    again = Batch.from_json(stored[1].to_json())
    assert again == stored[1] and again.header() == stored[1].header()
