"""Rollup test fixtures: the shipped markets, a small node (BLAKE2s for speed unless a test needs Pedersen) and a
short seeded workload from `perpdex.rollup.workload`."""

from __future__ import annotations

import pytest

from perpdex.config.markets import load_markets
from perpdex.core.exchange import Exchange
from perpdex.rollup import BatchPolicy, build_node, workload

ACCOUNTS = 60
TRADING_TXS = 600


@pytest.fixture(scope="session")
def markets():
    return load_markets()


def make_exchange(markets) -> Exchange:
    return Exchange(markets)


def small_node(markets, *, backend: str = "blake2s", max_txs: int = 150, max_age_ms=None, **options):
    return build_node(markets, backend=backend, policy=BatchPolicy(max_txs, max_age_ms), **options)


def run_workload(node, accounts: int = ACCOUNTS, txs: int = TRADING_TXS, seed: int = 7) -> int:
    accepted = node.submit_many(workload.genesis(accounts))
    return accepted + node.submit_many(workload.trading(accounts, txs, seed=seed))
