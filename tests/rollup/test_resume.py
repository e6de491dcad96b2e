"""A sequencer restarts from its durable store, batch file and signature file: closed batches re-executed to
their recorded roots, used nonces kept, the open batch and its signatures back, and the next batches verify."""

from __future__ import annotations

from dataclasses import replace

import pytest

from perpdex.config.markets import load_markets
from perpdex.core.exchange import Exchange
from perpdex.core.orders import Side
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, OraclePrice, OracleUpdate, PlaceOrder
from perpdex.core.units import QUOTE
from perpdex.rollup import workload
from perpdex.rollup.batch import (
    BatchPolicy, DurableTxStore, JsonlBatchStore, JsonlJournal, MemoryBatchStore, MemoryTxStore,
)
from perpdex.rollup.hashing import make_backend
from perpdex.rollup.prover import ReexecutionProver, ReexecutionVerifier
from perpdex.rollup.sequencer import ResumeError, Sequencer
from perpdex.rollup.signatures import ReplayedNonceError, expiration_hours, order_message, public_key, sign_message
from perpdex.rollup.tree import StateTree
from perpdex.store import DurableExchange

KEY = 0xA11CE
OWNER = SubaccountId(hex(public_key(KEY)))
BTC = 100_000


def _tree() -> StateTree:
    return StateTree(make_backend("blake2s"))


def _signed(sequencer: Sequencer, nonce: int, ts: int):
    tx = PlaceOrder(ts, OWNER, "BTC-USD", Side.BUY, 1_000_000, (99_000 - nonce) * BTC)
    message = order_message(tx, sequencer.tree.position_ids[OWNER], -9, limit_fee_ppm=0, nonce=nonce,
                            expiration_epoch_hours=expiration_hours(ts) + 24)
    return tx, sign_message(message, KEY)


def test_a_restarted_sequencer_continues_the_history_exactly(tmp_path):
    markets = load_markets()
    log = tmp_path / "ex.db"
    durable = DurableExchange.create(log, snapshots=None)
    batches, journal = JsonlBatchStore.beside(log), JsonlJournal.beside(log)
    policy = BatchPolicy(40, None)
    sequencer = Sequencer(DurableTxStore(durable), _tree(), policy, batches=batches, journal=journal)
    sequencer.submit(Deposit(1, OWNER, 100_000 * QUOTE))
    for tx in workload.genesis(20):
        sequencer.submit(tx)
    sequencer.flush()
    accepted = sequencer.submit_many([(tx, None) for tx in workload.trading(20, 100, seed=3)])
    assert sum(1 for result in accepted if isinstance(result, list)) > 50  # rejections change nothing
    sequencer.submit(*_signed(sequencer, 1, 5_000))  # signed, in the open batch at the "crash"
    replayed = _signed(sequencer, 1, 5_001)
    open_count, closed = sequencer.open_count, sequencer.batch_count
    assert open_count and closed >= 2
    durable.close()  # the process dies here: the open batch exists only in the logs

    recovered = DurableExchange.open(log, snapshots=None)
    resumed = Sequencer.resume(DurableTxStore(recovered), _tree(), lambda: Exchange(markets), policy,
                               batches=batches, journal=journal)
    assert (resumed.batch_count, resumed.open_count) == (closed, open_count)
    with pytest.raises(ReplayedNonceError):
        resumed.submit(*replayed)  # the nonce used before the crash is still used
    resumed.submit(OracleUpdate(6_000, (OraclePrice("BTC-USD", (100_000 * BTC,)),
                                        OraclePrice("ETH-USD", (3_000 * 1_000_000,)))))
    last = resumed.flush()
    assert last.batch_id == closed and any(entry.envelope.nonce == 1 for entry in last.signatures)
    # the whole history, before and after the restart, verifies batch by batch
    verifier = ReexecutionVerifier(lambda: Exchange(markets), backend="blake2s")
    prover = ReexecutionProver()
    for batch in batches.batches():
        verifier.verify(batch.header(), prover.prove(batch))
    assert verifier.tree.root == last.root
    recovered.close()


def test_a_batch_file_that_does_not_match_the_store_stops_the_restart():
    markets = load_markets()
    store = MemoryTxStore(Exchange(markets))
    batches = MemoryBatchStore()
    sequencer = Sequencer(store, _tree(), BatchPolicy(10, None), batches=batches)
    for tx in workload.genesis(15):
        sequencer.submit(tx)
    sequencer.flush()
    batches.items[1] = replace(batches.items[1], root=batches.items[1].root ^ 1)
    with pytest.raises(ResumeError, match="batch 1"):
        Sequencer.resume(store, _tree(), lambda: Exchange(markets), batches=batches)


def test_a_restarted_operator_serves_each_forced_request_once_and_submits_what_was_not_accepted(tmp_path):
    """The chain (contract) outlives the operator. Before the crash: one batch accepted, one closed but still
    proving, and a forced withdrawal served in the open batch. After it, the node re-proves and submits the
    closed batch, does not serve the forced withdrawal again, and the contract ends with it served once."""
    from perpdex.rollup import L1Chain, ReexecutionProver, RollupNode, StarkExContract
    from perpdex.rollup.prover import ProvingTimeModel

    markets = load_markets()
    log = tmp_path / "ex.db"
    durable = DurableExchange.create(log, snapshots=None)
    batches, journal = JsonlBatchStore.beside(log), JsonlJournal.beside(log)
    policy = BatchPolicy(1_000, None)
    sequencer = Sequencer(DurableTxStore(durable), _tree(), policy, batches=batches, journal=journal)
    verifier = ReexecutionVerifier(lambda: Exchange(markets), backend="blake2s")
    contract = StarkExContract(L1Chain(), verifier, genesis_root=sequencer.root, backend=make_backend("blake2s"))
    proving = ProvingTimeModel(fixed_ms=3_600_000, per_tx_ms=0)
    node = RollupNode(sequencer, ReexecutionProver(proving), contract)
    alice = SubaccountId("alice")
    node.submit(Deposit(1, alice, 1_000 * QUOTE))
    sequencer.flush()  # batch 0: ready at 1 h
    node.advance(3_600_002)  # accepted
    node.submit(Deposit(3_600_010, SubaccountId("bob"), 5 * QUOTE))
    sequencer.flush()  # batch 1: closed, proving until 2 h
    request = contract.forced_withdrawal_request(alice, 100 * QUOTE)
    node.serve_forced(3_600_020)  # in the open batch
    assert contract.next_batch_id == 1 and len(sequencer.open_forced) == 1
    durable.close()  # the operator dies; the contract (the chain) lives on

    recovered = DurableExchange.open(log, snapshots=None)
    resumed = Sequencer.resume(DurableTxStore(recovered), _tree(), lambda: Exchange(markets), policy,
                               batches=batches, journal=journal)
    node = RollupNode.resume(resumed, ReexecutionProver(proving), contract)
    node.serve_forced(3_600_030)  # already served by the open batch: nothing new
    assert len(resumed.open_forced) == 1 and resumed.open_count == 1
    node.finish()
    assert contract.next_batch_id == 3 and contract.forced[request.request_id].served
    assert recovered.exchange.subaccount(alice).usdc_quote_quantums == 900 * QUOTE  # withdrawn once
    assert [t.accepted_ms is not None for t in node.timeline] == [True, True, True]
    recovered.close()
