"""Hashing spread over cores gives exactly the sequential results and call counts: Pedersen on threads,
Poseidon on worker processes, for tree levels, Merkle-sum nodes, leaves and whole state-tree commits."""

from __future__ import annotations

import random

import pytest

from perpdex.core.exchange import Exchange
from perpdex.rollup import workload
from perpdex.rollup.encoding import LeafData, PositionEntry, market_asset_id
from perpdex.rollup.hashing import STARK_PRIME, make_backend
from perpdex.rollup.parallel import MIN_ITEMS_PER_PROCESS, HashWorkers
from perpdex.rollup.tree import StateTree


def _pairs(count: int, seed: int = 3) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randrange(STARK_PRIME), rng.randrange(STARK_PRIME)) for _ in range(count)]


@pytest.mark.parametrize("name", ["pedersen", "poseidon", "blake2s"])
def test_pairs_and_sum_nodes_on_two_workers_equal_one(name):
    count = 2 * MIN_ITEMS_PER_PROCESS + 5  # enough to split for every kind, and not a multiple of the split
    pairs = _pairs(count)
    one, two = make_backend(name), make_backend(name)
    assert HashWorkers(two, 2).pairs(pairs) == HashWorkers(one, 1).pairs(pairs)
    triples = [(left, right, i) for i, (left, right) in enumerate(pairs)]
    assert HashWorkers(two, 2).sum_nodes(triples) == HashWorkers(one, 1).sum_nodes(triples)
    assert one.calls == two.calls == 3 * count


def test_leaves_on_two_workers_equal_one_with_exact_call_counts():
    btc = market_asset_id("BTC-USD")
    leaves = [LeafData(i + 1, i % 3, 1_000 * i, 0, 0, (PositionEntry(btc, i - 70, 5),) if i % 2 else ())
              for i in range(140)]
    one, two = make_backend("pedersen"), make_backend("pedersen")
    assert HashWorkers(two, 2).leaves(leaves) == [leaf.leaf_hash(one) for leaf in leaves]
    assert one.calls == two.calls


def test_small_inputs_stay_inline():
    backend = make_backend("pedersen")
    workers = HashWorkers(backend, 2)
    assert workers.pairs([]) == []
    assert workers.pairs([(1, 2)]) == [backend.hash2(1, 2)]


@pytest.mark.parametrize("name", ["pedersen", "poseidon"])
def test_state_tree_commits_the_same_root_on_one_and_two_workers(markets, name):
    exchange = Exchange(markets)
    for tx in workload.genesis(150):
        exchange.apply(tx)
    trees = {workers: StateTree(make_backend(name), workers=workers) for workers in (1, 2)}
    commitments = {workers: tree.commit(exchange) for workers, tree in trees.items()}
    assert commitments[1].root == commitments[2].root
    assert commitments[1].nodes_rehashed == commitments[2].nodes_rehashed
    assert trees[1].backend.calls == trees[2].backend.calls
    assert trees[1].liabilities.root == trees[2].liabilities.root
