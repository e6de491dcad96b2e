"""funding explain / compare on a recorded run (a durable log written through DurableExchange)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from perpdex.core.funding import FUNDING_MODELS
from perpdex.core.orders import Side, TimeInForce
from perpdex.core.tx import Deposit, FundingTick, PlaceOrder
from perpdex.core.units import QUOTE
from perpdex.lab.funding_lab import compare, explain
from perpdex.store import DurableExchange
from tests.fixtures import ALICE, BOB, CAROL, btc, oracle, usd_btc


def record_rich_perp_run(path) -> None:
    """Two hours of a perp trading above its index, with hourly funding ticks, into a durable log
    (one group commit: fsync per transaction would dominate the test)."""
    txs = [Deposit(0, who, 100_000 * QUOTE) for who in (ALICE, BOB, CAROL)]
    txs += [oracle(0, BTC_USD=usd_btc(100_000)),
            PlaceOrder(0, CAROL, "BTC-USD", Side.SELL, btc(1), usd_btc(100_000)),
            PlaceOrder(0, BOB, "BTC-USD", Side.BUY, btc(1), usd_btc(100_000), time_in_force=TimeInForce.IOC),
            PlaceOrder(0, ALICE, "BTC-USD", Side.BUY, btc(1), usd_btc(100_100)),
            PlaceOrder(0, ALICE, "BTC-USD", Side.SELL, btc(1), usd_btc(100_200))]
    ts = 0
    for hour in (1, 2):
        while ts < hour * 3_600_000:
            ts += 4_000
            txs.append(oracle(ts, BTC_USD=usd_btc(100_000)))
        txs.append(FundingTick(ts))
    durable = DurableExchange.create(path, snapshots=False)
    results = durable.apply_batch(txs)
    assert not [r for r in results if isinstance(r, Exception)]
    durable.close()


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("funding") / "run.db"
    record_rich_perp_run(path)
    return path


def test_explain_lists_the_intervals_and_what_a_one_unit_long_paid(log):
    intervals, predicted = explain(log, "BTC-USD")
    assert len(intervals) == 2
    second = intervals[-1]
    assert (second.premium_ppm, second.funding_rate_8h_ppm, second.index_delta) == (999, 999, 1_248)
    assert second.one_unit_long_pays_usd == 12.48  # 1 BTC = 1e10 base quantums x 1,248 ppm of a quote quantum
    assert predicted is not None


def test_compare_runs_every_model_on_the_same_flow(log):
    outcomes = {o.model: o for o in compare(log)}
    assert set(outcomes) == set(FUNDING_MODELS)
    assert outcomes["dydx"].intervals >= 2 and outcomes["dydx"].transferred_usd > 0
    assert outcomes["dydx"].mean_abs_basis_bps == 15.0  # mid $100,150 vs index $100,000 = 0.15%
    assert outcomes["hyperliquid"].transferred_usd > 0


def test_cli_explain_and_compare(log, tmp_path):
    cli = [sys.executable, "-m", "perpdex.cli.main", "funding"]
    explained = subprocess.run([*cli, "explain", "BTC-USD", str(log)], capture_output=True, text=True)
    assert explained.returncode == 0 and "999" in explained.stdout
    compared = subprocess.run([*cli, "compare", str(log), "--market", "BTC-USD", "--out", str(tmp_path / "cmp")],
                              capture_output=True, text=True)
    assert compared.returncode == 0, compared.stderr
    assert (tmp_path / "cmp" / "rates.png").exists()
    bad = subprocess.run([*cli, "explain", "NOPE-USD", str(log)], capture_output=True, text=True)
    assert bad.returncode == 2 and "NOPE-USD" in bad.stderr and "Traceback" not in bad.stderr
