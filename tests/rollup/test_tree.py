"""The state tree: leaf encoding round-trips and refuses what does not fit, only changed nodes are rehashed,
incremental commits equal a rebuild, membership and liabilities proofs verify and catch tampering."""

from __future__ import annotations

from fractions import Fraction

import pytest

from perpdex.core.invariants import check_invariants
from perpdex.core.state import MarginMode, Subaccount, SubaccountId
from perpdex.rollup.encoding import (
    EncodingError,
    GlobalState,
    LeafData,
    MarketGlobal,
    PositionEntry,
    account_value,
    account_value_exact,
    leaf_of,
    market_asset_id,
    market_id_from_asset_id,
    owner_key,
)
from perpdex.rollup.hashing import make_backend
from perpdex.rollup.tree import (
    MerkleSumTree,
    SparseMerkleTree,
    StateProof,
    StateTree,
    TreeError,
    merkle_root_from_path,
)
from tests.rollup.conftest import run_workload, small_node


def test_leaf_encoding_round_trips_a_subaccount_with_positions_and_isolation():
    sub = Subaccount(SubaccountId("0x3b865a18323b8d147a12c556bfb1d502516c325b1477a23ba6c77af31f020fd", 5),
                     MarginMode.ISOLATED, "ETH-USD", {0: -1_234_567},
                     {"ETH-USD": -3_000_000}, {"ETH-USD": -42})
    leaf = leaf_of(sub)
    assert leaf.owner_key == 0x3b865a18323b8d147a12c556bfb1d502516c325b1477a23ba6c77af31f020fd  # a STARK key as is
    assert LeafData.from_fields(leaf.fields()) == leaf
    assert leaf.positions == (PositionEntry(market_asset_id("ETH-USD"), -3_000_000, -42),)
    assert market_id_from_asset_id(leaf.isolated_asset_id) == "ETH-USD"


@pytest.mark.parametrize("collateral, positions, entries", [
    ({0: 2**63}, {}, {}),  # balance above StarkEx's 2**63 bound
    ({0: 1}, {"BTC-USD": -(2**63) - 1}, {"BTC-USD": 0}),
    ({0: 1}, {"BTC-USD": 1}, {"BTC-USD": 2**63}),  # funding entry out of range
    ({7: 1}, {}, {}),  # a collateral asset with no place in the leaf
], ids=["balance too large", "position too short", "funding entry too large", "unknown collateral asset"])
def test_leaf_encoding_refuses_values_outside_fixed_widths(collateral, positions, entries):
    sub = Subaccount(SubaccountId("alice"), collateral=collateral, positions=positions, funding_entries=entries)
    with pytest.raises(EncodingError):
        leaf_of(sub).fields()


def test_one_leaf_update_rehashes_exactly_its_path():
    tree = SparseMerkleTree(make_backend("blake2s"), height=64)
    assert tree.update({5: 111}) == 64
    assert tree.update({4: 222}) == 64  # sibling: the same path above the leaf level
    assert tree.update({4: 223, 5: 112}) == 64  # two leaves under one parent share the whole path
    # two leaves in different halves share only the root
    assert tree.update({0: 1, 2**63: 2}) == 2 * 64 - 1


def test_sparse_tree_proofs_verify_and_empty_leaves_are_provable():
    backend = make_backend("blake2s")
    tree = SparseMerkleTree(backend, height=16)
    tree.update({3: 33, 9: 99, 40_000: 7})
    for index, leaf in ((3, 33), (9, 99), (40_000, 7), (12, 0)):
        assert merkle_root_from_path(backend, index, leaf, tree.proof(index)) == tree.root
    assert merkle_root_from_path(backend, 3, 34, tree.proof(3)) != tree.root
    with pytest.raises(TreeError):
        tree.update({2**16: 1})


def test_incremental_commits_equal_a_full_rebuild_after_a_trading_run(markets):
    node = small_node(markets)
    run_workload(node)
    node.sequencer.flush()
    tree = node.sequencer.tree
    check_invariants(node.sequencer.exchange)
    incremental = (tree.root, tree.liabilities.root)
    fresh = StateTree(make_backend("blake2s"))
    for sid in tree.subaccount_ids:  # same first-seen ids
        fresh.position_ids[sid] = len(fresh.subaccount_ids)
        fresh.subaccount_ids.append(sid)
    commitment = fresh.commit(node.sequencer.exchange)
    assert (commitment.root, commitment.liabilities_root) == incremental
    batches = list(node.sequencer.batches.batches())
    assert all(b.nodes_rehashed < len(b.changed) * 64 for b in batches if len(b.changed) > 1)  # shared paths


def test_state_proof_of_every_subaccount_verifies_and_tampering_fails(markets):
    node = small_node(markets, backend="pedersen")
    run_workload(node, accounts=12, txs=120)
    node.sequencer.flush()
    tree = node.sequencer.tree
    backend = make_backend("pedersen")
    for sid in tree.subaccount_ids:
        assert tree.state_proof(sid).verify(backend, tree.root)
    proof = tree.state_proof(tree.subaccount_ids[0])
    leaf = proof.leaf
    richer = leaf._replace(usdc_quote_quantums=leaf.usdc_quote_quantums + 1)
    assert not proof._replace(leaf_fields=richer.fields()).verify(backend, tree.root)
    state = proof.global_state
    assert not proof._replace(global_fields=state._replace(
        insurance_fund_quote_quantums=state.insurance_fund_quote_quantums + 1).fields()).verify(backend, tree.root)
    assert not proof._replace(position_id=proof.position_id + 1).verify(backend, tree.root)
    assert StateProof.from_json(proof.to_json()) == proof


def test_liabilities_sum_equals_collateral_held_and_each_user_can_check_inclusion(markets):
    node = small_node(markets)
    run_workload(node)
    node.sequencer.flush()
    tree = node.sequencer.tree
    _, root_sum = tree.liabilities.root
    assert root_sum == tree.global_state.collateral_held_quote_quantums  # solvent: the sum is exactly the collateral
    backend = make_backend("blake2s")
    total = 0
    for sid in tree.subaccount_ids:
        proof = tree.liability_proof(sid)
        assert proof.verify(backend, tree.liabilities.root)
        total += proof.value_quote_quantums
    insurance, operator = tree.exchange_liability_proofs()
    assert insurance.verify(backend, tree.liabilities.root) and operator.verify(backend, tree.liabilities.root)
    assert total + insurance.value_quote_quantums + operator.value_quote_quantums == root_sum
    cheated = tree.liability_proof(tree.subaccount_ids[0])
    assert not cheated._replace(value_quote_quantums=cheated.value_quote_quantums - 1).verify(
        backend, tree.liabilities.root)


def test_sum_tree_rejects_negative_values():
    with pytest.raises(TreeError):
        MerkleSumTree(make_backend("blake2s"), 8).update({1: (5, -1)})


def test_account_value_floors_once_against_the_account():
    btc = market_asset_id("BTC-USD")
    state = GlobalState.from_fields(GlobalState((MarketGlobal(btc, 100_000 * 100_000, 10, -9),), 0, 0, 0, 0, 0,
                                                1).fields())
    leaf = LeafData(owner_key("alice"), 0, 5, 0, 0, (PositionEntry(btc, 1_000_001, 0),))
    # $5 of USDC (5 quantums) + long 1_000_001 base quantums at $100,000 (1e10 subticks, qce -9):
    # notional 1_000_001 x 1e10 x 1e-9 = 10_000_010; funding owed (10 - 0) x 1_000_001 / 1e6 = 10.000010
    assert account_value_exact(leaf, state) == 5 + 10_000_010 - Fraction(10_000_010, 10**6)
    assert account_value(leaf, state) == 10_000_004  # 10_000_004.99999 floored, against the account
