"""Honest re-execution: the verifier accepts the honest batches in order and rejects any tampering with a
transaction, the diff, a root, the liabilities commitment or a forced-request outcome; then still accepts the
honest batch. Proving time is fixed + per transaction."""

from __future__ import annotations

from dataclasses import replace

import pytest

from perpdex.core.errors import PerpdexError
from perpdex.core.exchange import Exchange
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, Withdraw
from perpdex.rollup import (
    BatchPolicy,
    ForcedResolution,
    MemoryTxStore,
    ProvingTimeModel,
    ReexecutionProver,
    ReexecutionVerifier,
    Sequencer,
    StateTree,
    VerificationError,
    make_backend,
    workload,
)


@pytest.fixture(scope="module")
def honest_batches(markets):
    seq = Sequencer(MemoryTxStore(Exchange(markets)), StateTree(make_backend("blake2s")), BatchPolicy(120, None))
    for tx in [*workload.genesis(30), *workload.trading(30, 400, seed=3)]:
        try:
            seq.submit(tx)
        except PerpdexError:
            pass
    seq.flush()
    return list(seq.batches.batches())


def verifier(markets) -> ReexecutionVerifier:
    return ReexecutionVerifier(lambda: Exchange(markets), backend="blake2s")


def check(verifier_, batch):
    verifier_.verify(batch.header(), ReexecutionProver().prove(batch))


def test_honest_batches_verify_in_order(markets, honest_batches):
    v = verifier(markets)
    for batch in honest_batches:
        check(v, batch)
    assert v.root == honest_batches[-1].root


def _tamper_tx(batch):
    index = next(i for i, tx in enumerate(batch.txs) if type(tx) is Deposit)
    txs = list(batch.txs)
    txs[index] = txs[index]._replace(amount_quantums=txs[index].amount_quantums + 1)
    return replace(batch, txs=tuple(txs))


def _tamper_diff(batch):
    update = batch.changed[0]
    leaf = update.leaf._replace(usdc_quote_quantums=update.leaf.usdc_quote_quantums + 1)
    return replace(batch, changed=(update._replace(leaf=leaf), *batch.changed[1:]))


TAMPERS = {
    "a transaction's amount": _tamper_tx,
    "a transaction dropped": lambda b: replace(b, txs=b.txs[:-1]),
    "a leaf of the diff": _tamper_diff,
    "a leaf left out of the diff": lambda b: replace(b, changed=b.changed[1:]),
    "the root": lambda b: replace(b, root=b.root ^ 1),
    "the positions root": lambda b: replace(b, positions_root=b.positions_root ^ 1),
    "the global state": lambda b: replace(b, global_fields=(*b.global_fields[:-1], b.global_fields[-1] + 1)),
    "the liabilities root": lambda b: replace(b, liabilities_root=(b.liabilities_root[0], b.liabilities_root[1] + 1)),
    "the previous root": lambda b: replace(b, prev_root=b.prev_root ^ 1),
    # a withdrawal the account can afford, claimed refused at the end of the batch (censorship dressed up)
    "a forced withdrawal claimed rejected": lambda b: replace(b, forced=(ForcedResolution(
        0, False, (len(b.txs),), "margin.withdrawal_exceeds_free_collateral",
        Withdraw(b.txs[-1].ts_ms, SubaccountId("trader000000"), 1), ("withdrawal", "trader000000", 0, 1)),)),
}


@pytest.mark.parametrize("tamper", list(TAMPERS.values()), ids=list(TAMPERS))
def test_tampering_fails_verification_and_the_honest_batch_still_verifies(markets, honest_batches, tamper):
    v = verifier(markets)
    check(v, honest_batches[0])
    with pytest.raises(VerificationError):
        check(v, tamper(honest_batches[1]))
    check(v, honest_batches[1])  # the replica recovered from the failed attempt
    assert v.root == honest_batches[1].root


def test_a_proof_for_one_header_does_not_verify_another(markets, honest_batches):
    v = verifier(markets)
    proof = ReexecutionProver().prove(honest_batches[0])
    with pytest.raises(VerificationError):
        v.verify(honest_batches[1].header(), proof)
    with pytest.raises(VerificationError):
        check(v, honest_batches[1])  # out of order: batch 0 first


def test_proving_time_is_fixed_plus_per_transaction_capped_at_twelve_hours():
    model = ProvingTimeModel(fixed_ms=60_000, per_tx_ms=2.5, max_ms=3_600_000)
    assert model.proving_time_ms(0) == 60_000
    assert model.proving_time_ms(10_000) == 60_000 + 25_000
    assert model.proving_time_ms(10**9) == 3_600_000
    # default: a StarkEx-sized batch (~500k txs) near the published ~2 h
    assert 100 * 60_000 <= ProvingTimeModel().proving_time_ms(500_000) <= 140 * 60_000
