"""`perpdex bench store`: durable append (per transaction and group commit), the DurableExchange
end to end, replay from genesis and recovery from a snapshot plus tail, on the apply flow.

The flow is `perpdex.bench.apply.build` (10,000 funded subaccounts, 5 markets: passive quotes,
requoting cancels, marketable IOC orders, oracle moves); only accepted transactions reach a log,
so the logged stream is that flow's accepted part, the heavier share of it. Replay applies every
logged transaction through `Exchange.apply`, so its ceiling is the same stream applied with no
store at all, measured in the same run (`apply_only_tx_per_s`) and reported beside it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from perpdex.bench.apply import build
from perpdex.core.errors import PerpdexError
from perpdex.core.exchange import Exchange
from perpdex.core.tx import Deposit, OraclePrice, OracleUpdate
from perpdex.store.codec import DEFAULT_CODEC
from perpdex.store.durable import DurableExchange
from perpdex.store.log import create_log, default_markets_toml
from perpdex.store.replay import gc_paused, replay

REPLAY_TARGET_TX_PER_S = 50_000
GROUP_APPEND_TARGET_TX_PER_S = 20_000


def logged_flow(subaccounts: int, transactions: int, seed: int) -> tuple[list[Any], list[Any]]:
    """(every transaction, the accepted ones in order) of the apply benchmark's flow, set-up
    deposits and first oracle prices included, on an exchange with the shipped markets."""
    built, flow = build(subaccounts, transactions, seed)
    setup: list[Any] = [Deposit(0, subaccount_id, subaccount.usdc_quote_quantums)
                        for subaccount_id, subaccount in built.subaccounts.items()]
    setup.append(OracleUpdate(0, tuple(OraclePrice(market_id, (market.oracle_price_subticks,))
                                       for market_id, market in built.markets.items()
                                       if market.oracle_price_subticks is not None)))
    everything = setup + flow
    exchange = _fresh_exchange()
    accepted = []
    with gc_paused():
        for tx in everything:
            try:
                exchange.apply(tx)
            except PerpdexError:
                continue
            accepted.append(tx)
    return everything, accepted


def _fresh_exchange() -> Exchange:
    from perpdex.config.markets import parse_markets

    text, source = default_markets_toml()
    return Exchange(parse_markets(text, source))


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def run(transactions: int = 200_000, subaccounts: int = 10_000, seed: int = 1, group_size: int = 1_000,
        durable_sample: int = 2_000, tail: int | None = None, workdir: str | Path | None = None,
        postgres_url: str | None = None) -> dict:
    """Measure the store on the apply flow; returns figures (tx/s, seconds) and the digests.

    `group_size` transactions per commit for the group-commit figures; `durable_sample`
    transactions for the commit-per-transaction figures (each waits for an fsync); `tail`
    transactions after the snapshot for recovery (default: a tenth of the log).
    """
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="perpdex-bench-store-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(transactions, subaccounts, seed, group_size, durable_sample, tail, work, postgres_url)
    finally:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def _run(transactions: int, subaccounts: int, seed: int, group_size: int, durable_sample: int, tail: int | None,
         work: Path, postgres_url: str | None) -> dict:
    everything, accepted = logged_flow(subaccounts, transactions, seed)
    result: dict[str, Any] = {"transactions": len(everything), "logged": len(accepted), "subaccounts": subaccounts,
                              "group_size": group_size}

    # the ceiling: the logged stream through Exchange.apply with no store (same GC policy as replay)
    exchange = _fresh_exchange()
    with gc_paused():
        started = time.perf_counter()
        for tx in accepted:
            exchange.apply(tx)
        result["apply_only_tx_per_s"] = _rate(len(accepted), time.perf_counter() - started)
    expected_digest = exchange.digest()
    del exchange

    encode = DEFAULT_CODEC.encode
    # durable append, group commit: encode + append + one commit (fsync) per group
    with create_log(work / "group.db", durability="full") as log:
        started = time.perf_counter()
        for start in range(0, len(accepted), group_size):
            for tx in accepted[start:start + group_size]:
                log.append(encode(tx))
            log.commit()
        result["append_group_tx_per_s"] = _rate(len(accepted), time.perf_counter() - started)
    # durable append, one commit (fsync) per transaction
    sample = accepted[:durable_sample]
    with create_log(work / "single.db", durability="full") as log:
        started = time.perf_counter()
        for tx in sample:
            log.append(encode(tx))
            log.commit()
        result["append_durable_tx_per_s"] = _rate(len(sample), time.perf_counter() - started)
    if postgres_url is not None:
        result.update(_postgres_append(postgres_url, accepted, group_size, durable_sample))

    # the DurableExchange end to end (encode, apply, append, fsync) on the whole flow, rejections included
    with gc_paused(), DurableExchange.create(work / "durable.db", snapshots=None) as durable:
        started = time.perf_counter()
        for start in range(0, len(everything), group_size):
            durable.apply_batch(everything[start:start + group_size])
        result["durable_exchange_group_tx_per_s"] = _rate(len(everything), time.perf_counter() - started)
    with DurableExchange.create(work / "durable-single.db", snapshots=None) as durable:
        started = time.perf_counter()
        for tx in everything[:durable_sample]:
            try:
                durable.apply(tx)
            except PerpdexError:
                pass
        result["durable_exchange_single_tx_per_s"] = _rate(durable_sample, time.perf_counter() - started)

    # replay from genesis: read, check, decode and apply every row
    replayed = replay(work / "group.db")
    result["replay_tx_per_s"] = replayed.tx_per_s
    result["replay_seconds"] = replayed.seconds
    result["replay_vs_apply_only"] = result["replay_tx_per_s"] / result["apply_only_tx_per_s"]
    result["digest"] = replayed.digest
    result["digest_matches"] = replayed.digest == expected_digest

    # recovery: a snapshot `tail` transactions before the end, then DurableExchange.open
    tail = tail if tail is not None else max(1, len(accepted) // 10)
    snapshot_seq = max(0, len(accepted) - tail)
    snapshots = work / "group.db.snapshots"
    with create_log(work / "recover.db", durability="off") as log:
        for start in range(0, len(accepted), 50_000):
            for tx in accepted[start:start + 50_000]:
                log.append(encode(tx))
            log.commit()
    from perpdex.store.log import open_log
    from perpdex.store.replay import write_snapshot
    from perpdex.store.snapshot import SnapshotStore

    with open_log(work / "recover.db", readonly=False) as log:
        state = replay(log, until_seq=snapshot_seq).exchange
        info = write_snapshot(log, SnapshotStore(snapshots), state, snapshot_seq)
        del state
    result["snapshot_bytes"] = info.payload_bytes
    started = time.perf_counter()
    with DurableExchange.open(work / "recover.db", snapshots=snapshots) as recovered:
        result["recovery_seconds"] = time.perf_counter() - started
        result["recovery_tail"] = recovered.recovery.replayed if recovered.recovery else 0
        result["recovery_from_seq"] = recovered.recovery.start_seq if recovered.recovery else 0
        result["recovery_digest_matches"] = recovered.exchange.digest() == expected_digest
    result["replay_ok"] = result["replay_tx_per_s"] >= REPLAY_TARGET_TX_PER_S
    result["append_group_ok"] = result["append_group_tx_per_s"] >= GROUP_APPEND_TARGET_TX_PER_S
    return result


def _postgres_append(url: str, accepted: list, group_size: int, durable_sample: int) -> dict:
    """Group and per-transaction durable append on PostgreSQL (the log's tables must not exist)."""
    from perpdex.store.log import open_log

    encode = DEFAULT_CODEC.encode
    figures = {}
    with create_log(url, durability="full") as log:
        count = min(len(accepted), 50 * group_size)
        started = time.perf_counter()
        for start in range(0, count, group_size):
            for tx in accepted[start:start + group_size]:
                log.append(encode(tx))
            log.commit()
        figures["postgres_append_group_tx_per_s"] = _rate(count, time.perf_counter() - started)
        sample = accepted[count:count + durable_sample]
        started = time.perf_counter()
        for tx in sample:
            log.append(encode(tx))
            log.commit()
        figures["postgres_append_durable_tx_per_s"] = _rate(len(sample), time.perf_counter() - started)
    with open_log(url) as log:
        started = time.perf_counter()
        rows = sum(1 for _ in log.records())
        figures["postgres_read_decode_tx_per_s"] = _rate(rows, time.perf_counter() - started)
    return figures
