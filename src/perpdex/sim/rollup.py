"""The simulator on the rollup: the run's exchange is the sequencer's, every transaction goes through
`RollupNode.submit`, and batches close, are proved and are accepted on L1 in transaction time.

One state machine: `RollupRun.exchange` is the sequencer's exchange and the simulation drives only it
(its log replays to the run's digest as without the rollup). Around it the StarkEx model of
`perpdex.rollup`: a sequencer closing batches by count or age, a re-execution prover whose proof is
ready after `ProvingTimeModel` time, an L1 contract that accepts batches in order, each verified by
re-executing it on a replica. That replica is the proven state (the state at the last accepted root),
which the recorder sets beside the matched one. With finalized funding, each accepted batch is
followed, at the first transaction at or after its acceptance, by `FundingFinalize(accepted_ms,
covered_ms)`: covered_ms is the batch's last transaction's time, or closed_ms - 1 when it closed by
age at closed_ms (no transaction lies between the two, so nothing stamped before closed_ms can still
come). At the end of the run the open batch is closed and every proof submitted (`finish`); no
FundingFinalize follows those last acceptances (the run is over).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from perpdex.core.exchange import Exchange
from perpdex.core.liquidation import LiquidationsConfig
from perpdex.core.params import FundingFinality, MarketParams
from perpdex.core.tx import FundingFinalize, Tx, Withdraw
from perpdex.rollup import build_node
from perpdex.rollup.batch import Batch, BatchPolicy, MemoryBatchStore
from perpdex.rollup.l1 import UpdateRecord
from perpdex.rollup.prover import ProvingTimeModel
from perpdex.sim.scenario import RollupSpec, format_time_ms

MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def batch_policy(spec: RollupSpec) -> BatchPolicy:
    return BatchPolicy(spec.batch_max_txs, max(1, round(spec.batch_max_age_hours * HOUR_MS)))


def proving_model(spec: RollupSpec) -> ProvingTimeModel:
    return ProvingTimeModel(fixed_ms=round(spec.proving_fixed_minutes * MINUTE_MS), per_tx_ms=spec.proving_per_tx_ms,
                            max_ms=round(spec.proving_max_hours * HOUR_MS))


class RollupRun:
    """The rollup node a simulation runs on (see the module docstring). `system_txs(ts_ms)` gives the
    transactions the operator sends before a transaction at `ts_ms` (FundingFinalize of batches
    accepted by then); `apply(tx)` sequences one transaction (its events, or its PerpdexError)."""

    def __init__(self, spec: RollupSpec, markets: Sequence[MarketParams],
                 liquidations_config: LiquidationsConfig | None = None) -> None:
        self.spec = spec
        self.batches = MemoryBatchStore()
        self.node = build_node(markets, backend=spec.hash, policy=batch_policy(spec), proving=proving_model(spec),
                               height=spec.tree_height, batches=self.batches, liquidations_config=liquidations_config,
                               commit_liabilities=spec.commit_liabilities, check_validity=spec.fairness_checks,
                               on_accepted=self._on_accepted)
        self.sequencer = self.node.sequencer
        self.exchange = self.sequencer.exchange
        self.verifier = self.node.contract.verifier
        self.finalized_funding = spec.funding == "finalized"
        self._finalize_due: deque[tuple[int, int]] = deque()  # (accepted ms, last tx ms) awaiting FundingFinalize
        self.last_accepted: tuple[int, int, int] | None = None  # (batch id, accepted ms, last tx ms)
        self.funding_horizon_ms: int | None = None  # up_to of the last FundingFinalize sent
        self.funding_finalizes_sent = 0
        self.final_withdrawals = 0  # Withdraw transactions in accepted batches, and their quote quantums
        self.final_withdrawn_quote_quantums = 0
        self.verify_seconds = 0.0  # accepting batches: contract checks + re-execution + the replica's commit
        self.finished = False

    @property
    def proven_exchange(self) -> Exchange:
        """The state at the last accepted root (the verifier's replica; read only)."""
        return self.verifier.exchange

    # --- driving ------------------------------------------------------------------------------------
    def advance(self, ts_ms: int) -> None:
        """Submit to L1 every batch whose proof is ready by `ts_ms` (in order)."""
        queue = self.node.queue
        if queue and queue[0][2] <= ts_ms:
            started = time.perf_counter()
            self.node.advance(ts_ms)
            self.verify_seconds += time.perf_counter() - started

    def system_txs(self, ts_ms: int) -> Sequence[Tx]:
        """FundingFinalize for every batch accepted by `ts_ms` (finalized funding only), in order."""
        self.advance(ts_ms)
        due = self._finalize_due
        if not due or due[0][0] > ts_ms:
            return ()
        out = []
        while due and due[0][0] <= ts_ms:
            accepted_ms, up_to_ms = due.popleft()
            out.append(FundingFinalize(max(accepted_ms, self.exchange.last_ts_ms), up_to_ms))
            self.funding_horizon_ms = up_to_ms
        self.funding_finalizes_sent += len(out)
        return out

    def predicted_funding_8h(self, exchange: Exchange, market_id: str) -> float | None:
        """The funding rate agents see (fraction per 8 h). A market with finalized funding publishes the
        rate its open interval would close at on what is proven so far: the model run to the proven
        horizon (as soft funding's prediction runs to now), None before anything is proven."""
        market = exchange.markets[market_id]
        if market.params.funding_finality is not FundingFinality.FINALIZED:
            result = exchange.predicted_funding(market_id)
            return None if result is None else result.funding_rate_8h_ppm / 1e6
        horizon = self.funding_horizon_ms
        if market.funding_state is None or horizon is None:
            return None
        at_ms = max(horizon + 1, market.funding_interval_start_ms)
        result, _ = market.funding_model.rate_for_interval(market.funding_state, at_ms)  # on a copy: models are pure
        return result.funding_rate_8h_ppm / 1e6

    def apply(self, tx: Tx) -> list[Any]:
        return self.node.submit(tx)

    def finish(self) -> None:
        """Close the open batch and accept every proof, however long it takes (nothing more is sent)."""
        self.finished = True
        started = time.perf_counter()
        self.node.finish()
        self.verify_seconds += time.perf_counter() - started

    def _on_accepted(self, batch: Batch, record: UpdateRecord) -> None:
        last_tx_ms = batch.txs[-1].ts_ms if batch.txs else batch.closed_ts_ms
        covered_ms = max(last_tx_ms, batch.closed_ts_ms - 1)  # closed by age: nothing comes in between
        self.last_accepted = (batch.batch_id, record.accepted_ms, last_tx_ms)
        for tx in batch.txs:
            if type(tx) is Withdraw:
                self.final_withdrawals += 1
                self.final_withdrawn_quote_quantums += tx.amount_quantums
        if self.finalized_funding and not self.finished:
            self._finalize_due.append((record.accepted_ms, covered_ms))

    # --- what the recorder reads ------------------------------------------------------------------------
    def batch_list(self) -> list[Batch]:
        return list(self.batches.batches())

    def batch_rows(self) -> list[tuple]:
        """One row per batch, in the recorder's `batches` column order."""
        node = self.node
        updates = {record.batch_id: record for record in node.contract.updates}
        rows = []
        for batch in self.batch_list():
            timeline = node.timeline[batch.batch_id]
            record = updates.get(batch.batch_id)
            times = np.fromiter((tx.ts_ms for tx in batch.txs), dtype=np.int64, count=len(batch.txs))
            first = int(times[0]) if len(times) else batch.opened_ts_ms
            last = int(times[-1]) if len(times) else batch.closed_ts_ms
            accepted = timeline.accepted_ms
            withdrawals = sum(1 for tx in batch.txs if type(tx) is Withdraw)
            rows.append((
                batch.batch_id, len(batch.txs), batch.n_trades, withdrawals, first, last, batch.closed_ts_ms,
                timeline.proof_ready_ms, accepted, timeline.proof_ready_ms - batch.closed_ts_ms,
                None if accepted is None else accepted - timeline.proof_ready_ms,
                None if accepted is None else accepted - first,
                None if accepted is None or not len(times) else float(accepted - times.mean()),
                len(batch.changed), batch.root_update_s + batch.liabilities_s,
                None if record is None else record.calldata_bytes, None if record is None else record.published_gas,
                hex(batch.root)))
        return rows

    def finality_waits_ms(self) -> np.ndarray:
        """Every transaction's wait from its time to its batch's acceptance (ms), in log order."""
        parts = []
        for batch in self.batch_list():
            accepted = self.node.timeline[batch.batch_id].accepted_ms
            if accepted is None or not batch.txs:
                continue
            times = np.fromiter((tx.ts_ms for tx in batch.txs), dtype=np.int64, count=len(batch.txs))
            parts.append(accepted - times)
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def withdrawal_finality(self) -> list[tuple[int, int | None]]:
        """(batch id, accepted ms or None) of every Withdraw in log order."""
        out = []
        for batch in self.batch_list():
            accepted = self.node.timeline[batch.batch_id].accepted_ms
            out.extend((batch.batch_id, accepted) for tx in batch.txs if type(tx) is Withdraw)
        return out


# --- key figures -----------------------------------------------------------------------------------
def _minutes(values: np.ndarray) -> dict[str, float | None]:
    """mean, p50, p99 and max of durations in ms, as minutes (None when there are none)."""
    if not len(values):
        return {"mean": None, "p50": None, "p99": None, "max": None}
    values = np.asarray(values, dtype=np.float64) / MINUTE_MS
    return {"mean": round(float(values.mean()), 2), "p50": round(float(np.percentile(values, 50)), 2),
            "p99": round(float(np.percentile(values, 99)), 2), "max": round(float(values.max()), 2)}


def max_waiting(withdrawals: list[dict[str, Any]]) -> dict[str, Any]:
    """The most withdrawals applied but not yet final at once (a withdrawal is final from its batch's
    acceptance on), their value, and when; withdrawals never made final wait to the end."""
    changes = []
    for row in withdrawals:
        changes.append((row["ts_ms"], 1, 1, row["amount_quote_quantums"]))
        if row["final_ms"] is not None:
            changes.append((row["final_ms"], 0, -1, -row["amount_quote_quantums"]))  # finals first at a tie
    changes.sort()
    count = amount = 0
    best = (0, 0, None)
    for ts_ms, _, delta, value in changes:
        count += delta
        amount += value
        if (count, amount) > best[:2]:
            best = (count, amount, ts_ms)
    return {"count": best[0], "usd": round(best[1] / 1e6, 2), "at": format_time_ms(best[2]) if best[2] else None}


def rollup_key_figures(rollup: RollupRun, recorder: Any) -> dict[str, Any]:
    """The rollup's figures for summary.json: batch cadence, proof latency, time to finality (per
    transaction), withdrawals waiting on it, the proven state's lag, and what the rollup cost."""
    spec = rollup.spec
    batches = recorder.records("batches")
    withdrawals = recorder.records("withdrawals")
    proven = recorder.records("proven_balances")
    closed = np.array([row["closed_ms"] for row in batches], dtype=np.int64)
    waits = np.array([row["wait_ms"] for row in withdrawals if row["wait_ms"] is not None], dtype=np.int64)
    contract = rollup.node.contract
    # the peak once something is proven (before the first accepted batch every deposit is unproven)
    peak = max((row for row in proven if row["proven_batch_id"] is not None), key=lambda row: row["equity_unproven_usd"],
               default=None)
    return {
        "hash": spec.hash, "funding": spec.funding, "commit_liabilities": spec.commit_liabilities,
        "batch_max_txs": spec.batch_max_txs, "batch_max_age_hours": spec.batch_max_age_hours,
        "proving": {"fixed_minutes": spec.proving_fixed_minutes, "per_tx_ms": spec.proving_per_tx_ms,
                    "max_hours": spec.proving_max_hours},
        "batches": len(batches),
        "batches_accepted": sum(1 for row in batches if row["accepted_ms"] is not None),
        "settled": contract.root == rollup.sequencer.root and not rollup.node.queue,
        "txs_per_batch_mean": round(float(np.mean([row["txs"] for row in batches])), 1) if batches else None,
        "batch_interval_minutes": round(float(np.diff(closed).mean()) / MINUTE_MS, 2) if len(closed) > 1 else None,
        "proof_latency_minutes": _minutes(np.array([row["proof_latency_ms"] for row in batches])),
        "accept_wait_minutes": _minutes(np.array([row["accept_wait_ms"] for row in batches
                                                  if row["accept_wait_ms"] is not None])),
        "time_to_finality_minutes": _minutes(rollup.finality_waits_ms()),
        "withdrawals": len(withdrawals),
        "withdrawal_wait_minutes": _minutes(waits),
        "max_withdrawals_waiting": max_waiting(withdrawals),
        "proven_lag_minutes": _minutes(np.array([row["proven_lag_ms"] for row in proven])),
        "max_equity_unproven_usd": round(peak["equity_unproven_usd"], 2) if peak else None,
        "max_equity_unproven_at": format_time_ms(peak["ts_ms"]) if peak else None,
        "funding_finalize_txs": rollup.funding_finalizes_sent,
        "published_gas": sum(row["published_gas"] or 0 for row in batches),
        "calldata_bytes": sum(row["calldata_bytes"] or 0 for row in batches),
        "commit_seconds": round(sum(row["commit_seconds"] for row in batches), 3),
        "verify_seconds": round(rollup.verify_seconds, 3),
    }
