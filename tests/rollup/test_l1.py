"""The L1 contract model: roots only with a verified proof and available data, deposits pending until included,
withdrawals final only once their batch is accepted, forced requests with a 7-day grace period, freeze, and the
escape hatch: every account exits with a Merkle proof at the last accepted root and the exits sum exactly."""

from __future__ import annotations

from dataclasses import replace

import pytest

from perpdex.core.orders import Side
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, OraclePrice, OracleUpdate, PlaceOrder, Withdraw
from perpdex.core.units import QUOTE
from perpdex.rollup import (
    Committee,
    DataAvailability,
    L1Error,
    ReexecutionProver,
    escape_drill,
)
from perpdex.rollup.batch import diff_bytes
from perpdex.rollup.encoding import account_value
from perpdex.rollup.l1 import DAY_MS, FREEZE_GRACE_PERIOD_MS, account_key
from tests.rollup.conftest import run_workload, small_node

ALICE, BOB, CAROL = SubaccountId("alice"), SubaccountId("bob"), SubaccountId("carol")
BTC = 100_000  # subticks per $1 of BTC-USD


def test_default_grace_period_is_seven_days():
    assert FREEZE_GRACE_PERIOD_MS == 7 * DAY_MS  # starkex-contracts LibConstants.sol FREEZE_GRACE_PERIOD


def test_deposits_stay_pending_until_an_accepted_batch_includes_them(markets):
    node = small_node(markets)
    node.submit(Deposit(1, ALICE, 10 * QUOTE))
    contract = node.contract
    assert contract.pending_deposits == {account_key(ALICE): 10 * QUOTE} and contract.balance == 10 * QUOTE
    node.sequencer.flush()
    assert contract.pending_deposits  # batch closed, proof not ready yet
    node.finish()
    assert contract.pending_deposits == {} and contract.collateral_at_root == 10 * QUOTE


def test_an_operator_cannot_credit_a_deposit_nobody_made(markets):
    node = small_node(markets, max_txs=1)
    node.deposit_on_l1 = False
    node.submit(Deposit(1, ALICE, 10 * QUOTE))
    with pytest.raises(L1Error) as refused:
        node.finish()
    assert refused.value.code == "DEPOSIT_NOT_PENDING" and node.contract.next_batch_id == 0


def test_a_withdrawal_is_final_only_after_its_batch_is_proven_and_accepted(markets):
    node = small_node(markets)
    node.submit(Deposit(1, ALICE, 10 * QUOTE))
    node.submit(Withdraw(2, ALICE, 3 * QUOTE))
    node.sequencer.flush()
    assert node.contract.withdrawable(ALICE) == 0  # applied off-chain, not final
    assert node.contract.withdraw(ALICE) == 0
    ready = node.queue[0][2]
    node.advance(ready - 1)
    assert node.contract.withdrawable(ALICE) == 0
    node.advance(ready)
    assert node.contract.withdraw(ALICE) == 3 * QUOTE
    assert node.contract.balance == 7 * QUOTE == node.contract.collateral_at_root


def test_a_root_without_a_valid_proof_is_refused(markets):
    node = small_node(markets)
    node.submit(Deposit(1, ALICE, 10 * QUOTE))
    batch = node.sequencer.flush()
    node.queue.clear()
    genesis_root = node.contract.root
    lie = replace(batch, root=batch.root ^ 1)
    with pytest.raises(L1Error) as refused:
        node.contract.update_state(lie.header(), ReexecutionProver().prove(lie),
                                   diff=diff_bytes(lie.changed, lie.global_fields))
    assert refused.value.code == "INVALID_PROOF"
    assert node.contract.root == genesis_root and node.contract.next_batch_id == 0
    with pytest.raises(L1Error) as no_data:
        node.contract.update_state(batch.header(), ReexecutionProver().prove(batch))
    assert no_data.value.code == "MISSING_DATA"  # rollup mode: the diff must be posted


def test_validium_needs_a_committee_quorum(markets):
    committee = Committee([11, 22, 33], quorum=2)
    node = small_node(markets, data_availability=DataAvailability.VALIDIUM, committee=committee)
    node.committee_members = 1
    node.submit(Deposit(1, ALICE, 10 * QUOTE))
    with pytest.raises(L1Error) as refused:
        node.finish()
    assert refused.value.code == "NO_DATA_AVAILABILITY_QUORUM"
    node.committee_members = 2
    node.finish()
    assert node.contract.next_batch_id == 1
    assert node.contract.updates[0].calldata_bytes == 0  # nothing posted in validium mode


def test_rollup_mode_prices_gas_per_trade_and_calldata(markets):
    node = small_node(markets, max_txs=10_000)
    run_workload(node, accounts=20, txs=200)
    node.finish()
    update = node.contract.updates[0]
    batch = next(node.sequencer.batches.batches())
    assert batch.n_trades > 0 and update.published_gas == 426 * batch.n_trades
    assert update.calldata_gas > 0 and update.calldata_bytes > 0


def test_a_served_forced_withdrawal_cannot_freeze_the_exchange(markets):
    node = small_node(markets)
    node.submit(Deposit(1, ALICE, 10 * QUOTE))
    request = node.contract.forced_withdrawal_request(ALICE, 4 * QUOTE)
    node.serve_forced(2)
    node.finish()
    assert node.contract.withdraw(ALICE) == 4 * QUOTE
    node.contract.chain.advance_by(FREEZE_GRACE_PERIOD_MS)
    with pytest.raises(L1Error) as refused:
        node.contract.freeze_request(request.request_id)
    assert refused.value.code == "FORCED_ACTION_UNREQUESTED" and not node.contract.frozen


def test_an_unaffordable_forced_withdrawal_is_served_by_a_proven_rejection(markets):
    node = small_node(markets)
    node.submit(Deposit(1, ALICE, 10 * QUOTE))
    request = node.contract.forced_withdrawal_request(ALICE, 11 * QUOTE)
    node.serve_forced(2)
    node.finish()
    resolution = next(node.sequencer.batches.batches()).forced[0]
    assert not resolution.applied and resolution.code == "margin.withdrawal_exceeds_free_collateral"
    assert node.contract.forced[request.request_id].served


def test_a_forced_trade_is_executed_between_the_two_parties(markets):
    node = small_node(markets)
    for who in (ALICE, BOB):
        node.submit(Deposit(1, who, 50_000 * QUOTE))
    node.submit(OracleUpdate(1, (OraclePrice("BTC-USD", (100_000 * BTC,)),)))
    request = node.contract.forced_trade_request(ALICE, BOB, "BTC-USD", 10_000_000, 100_000 * BTC)
    node.serve_forced(2)
    node.finish()
    assert node.contract.forced[request.request_id].served
    assert node.sequencer.exchange.subaccount(ALICE).positions == {"BTC-USD": 10_000_000}


def test_a_forced_trade_is_served_whatever_the_book_holds(markets):
    """A better ask and a crossing bid resting from a third trader do not get in the way: the trade settles
    between the two parties alone, at the agreed price, with no fee."""
    node = small_node(markets)
    for who in (ALICE, BOB, CAROL):
        node.submit(Deposit(1, who, 50_000 * QUOTE))
    node.submit(OracleUpdate(1, (OraclePrice("BTC-USD", (100_000 * BTC,)),)))
    node.submit(PlaceOrder(1, CAROL, "BTC-USD", Side.SELL, 10_000_000, 99_000 * BTC))  # a cheaper ask
    node.submit(PlaceOrder(1, CAROL, "BTC-USD", Side.BUY, 10_000_000, 98_000 * BTC))  # a bid
    request = node.contract.forced_trade_request(ALICE, BOB, "BTC-USD", 10_000_000, 97_000 * BTC)
    node.serve_forced(2)
    node.finish()
    assert node.contract.forced[request.request_id].served
    exchange = node.sequencer.exchange
    assert exchange.subaccount(ALICE).positions == {"BTC-USD": 10_000_000}
    assert exchange.subaccount(BOB).positions == {"BTC-USD": -10_000_000}
    assert exchange.subaccount(ALICE).usdc_quote_quantums == 50_000 * QUOTE - 97 * QUOTE  # 0.001 BTC at $97,000
    assert exchange.subaccount(BOB).usdc_quote_quantums == 50_000 * QUOTE + 97 * QUOTE
    assert not exchange.subaccount(CAROL).positions  # the book was not touched
    book = exchange.markets["BTC-USD"].book
    assert (book.best_bid(), book.best_ask()) == (98_000 * BTC, 99_000 * BTC)


def test_an_unaffordable_forced_trade_is_served_by_a_proven_rejection(markets):
    node = small_node(markets)
    for who in (ALICE, BOB):
        node.submit(Deposit(1, who, 100 * QUOTE))
    node.submit(OracleUpdate(1, (OraclePrice("BTC-USD", (100_000 * BTC,)),)))
    request = node.contract.forced_trade_request(ALICE, BOB, "BTC-USD", 1_000_000_000, 100_000 * BTC)  # 0.1 BTC
    node.serve_forced(2)
    node.finish()  # the verifier re-applies the rejected trade and gets the same error
    resolution = next(node.sequencer.batches.batches()).forced[0]
    assert not resolution.applied and resolution.code == "margin.insufficient"
    assert node.contract.forced[request.request_id].served
    assert not node.sequencer.exchange.subaccount(ALICE).positions


def test_a_censoring_operator_gets_frozen_and_everyone_exits_exactly(markets):
    node = small_node(markets, backend="pedersen", max_txs=200)
    run_workload(node, accounts=25, txs=250)
    node.finish()
    contract = node.contract
    victim = node.sequencer.tree.subaccount_ids[3]
    request = contract.forced_withdrawal_request(victim, 1 * QUOTE)
    node.censor.add(request.request_id)
    node.submit(Deposit(contract.chain.now_ms, ALICE, 5 * QUOTE))  # life goes on, the request is ignored
    node.serve_forced(contract.chain.now_ms)
    node.finish()
    assert not contract.forced[request.request_id].served
    contract.chain.advance_to(request.requested_ts_ms + FREEZE_GRACE_PERIOD_MS - contract.chain.block_time_ms)
    with pytest.raises(L1Error) as early:
        contract.freeze_request(request.request_id)
    assert early.value.code == "FORCED_ACTION_PENDING"
    contract.chain.advance_to(request.requested_ts_ms + FREEZE_GRACE_PERIOD_MS)
    contract.freeze_request(request.request_id)  # anyone may call it
    assert contract.frozen
    with pytest.raises(L1Error) as frozen:
        contract.deposit(BOB, QUOTE)
    assert frozen.value.code == "STATE_FROZEN"
    tree = node.sequencer.tree
    for key in list(contract.pending_withdrawals):
        contract.withdraw(key)
    held = contract.collateral_at_root
    assert contract.balance == held  # nothing pending: the contract holds exactly the committed collateral
    exits = sum(contract.escape(tree.state_proof(sid)) for sid in tree.subaccount_ids)
    insurance, operator = contract.escape_exchange(*tree.exchange_liability_proofs())
    assert exits + insurance + operator == held
    with pytest.raises(L1Error) as twice:
        contract.escape(tree.state_proof(victim))
    assert twice.value.code == "ESCAPE_ALREADY_USED"
    paid = sum(contract.withdraw(key) for key in list(contract.pending_withdrawals))
    assert paid == held and contract.balance == 0


def test_exits_use_the_last_accepted_root_not_the_sequencers_latest_state(markets):
    node = small_node(markets, max_txs=10_000)
    for who in (ALICE, BOB):
        node.submit(Deposit(1, who, 10_000 * QUOTE))
    node.submit(OracleUpdate(1, (OraclePrice("BTC-USD", (100_000 * BTC,)),)))
    node.submit(PlaceOrder(2, BOB, "BTC-USD", Side.SELL, 10_000_000, 100_000 * BTC))
    node.submit(PlaceOrder(2, ALICE, "BTC-USD", Side.BUY, 10_000_000, 100_000 * BTC))
    node.finish()
    contract = node.contract
    accepted_tree = contract.verifier.tree  # the verifier's replica sits at the accepted root
    assert accepted_tree.root == contract.root
    node.submit(OracleUpdate(contract.chain.now_ms, (OraclePrice("BTC-USD", (90_000 * BTC,)),)))  # not yet proven
    node.sequencer.flush()
    request = contract.forced_withdrawal_request(ALICE, QUOTE)
    contract.chain.advance_by(FREEZE_GRACE_PERIOD_MS)
    contract.freeze_request(request.request_id)  # freezes before the price-move batch is accepted
    proof = accepted_tree.state_proof(ALICE)
    assert not node.sequencer.tree.state_proof(ALICE).verify(contract.backend, contract.root)
    paid = contract.escape(proof)
    # long 0.001 BTC valued at the accepted $100,000, not the unproven $90,000
    assert paid == account_value(proof.leaf, proof.global_state)
    assert proof.global_state.market(proof.leaf.positions[0].asset_id).oracle_price_subticks == 100_000 * BTC


def test_escape_drill_freezes_a_finished_run_and_exits_sum_to_the_collateral_held(markets):
    node = small_node(markets, max_txs=100)
    run_workload(node, accounts=30, txs=300, seed=11)
    report = escape_drill(node)
    assert report.exits_equal_collateral
    assert report.exits_paid + report.insurance_exit + report.operator_exit == report.collateral_at_root
    assert report.escape_claims_paid == report.collateral_at_root and report.contract_balance_after == 0
    assert report.accounts == 30 and report.operator_exit >= report.fees_collected
