"""The same log on a real PostgreSQL server (started by the session fixture; skipped, saying why,
only when the server binaries are not installed): append, read, replay, locks, damage, recovery."""

from __future__ import annotations

import pytest

from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit
from perpdex.core.units import QUOTE
from perpdex.store import (
    DurableExchange,
    LogCorruptError,
    LogLockedError,
    NotALogError,
    PostgresTxLog,
    create_log,
    export_tables,
    open_log,
    query,
    replay,
)

from .conftest import write_log


def test_a_durable_exchange_on_postgres_replays_to_the_same_digest(pg_url, flow, tmp_path):
    digest, accepted = write_log(pg_url, flow, snapshots=tmp_path / "snaps", snapshot_every=400)
    with open_log(pg_url) as log:
        assert isinstance(log, PostgresTxLog) and log.durable_seq == len(accepted)
        assert [tx for _, tx in log.records()] == accepted
        checkpoints = sorted(log.checkpoints())  # at the first batch end past each 400
        assert len(checkpoints) == 3 and all(seq - k * 400 < 50 for k, seq in enumerate(checkpoints, 1))
    assert replay(pg_url).digest == digest
    recovered = replay(pg_url, snapshots=tmp_path / "snaps")
    assert recovered.start_seq == checkpoints[-1] and recovered.digest == digest
    with DurableExchange.open(pg_url, snapshots=tmp_path / "snaps") as durable:
        assert durable.exchange.digest() == digest
        durable.apply(Deposit(10**9, SubaccountId("late"), QUOTE))
    assert replay(pg_url).last_seq == len(accepted) + 1


def test_exports_and_queries_read_a_postgres_log(pg_url, flow):
    digest, _ = write_log(pg_url, flow[:400])
    exported = export_tables(pg_url)
    assert exported.digest == digest and exported.rows["fills"] > 0
    assert query(pg_url, "SELECT count(*) AS n FROM fills").table.to_pylist() == [{"n": exported.rows["fills"]}]


def test_one_writer_at_a_time_on_postgres(pg_url):
    with create_log(pg_url) as writer:
        with pytest.raises(LogLockedError, match="another session is writing"):
            open_log(pg_url, readonly=False)
        writer.append_tx(Deposit(1, SubaccountId("a"), QUOTE))
        writer.commit()
    with open_log(pg_url, readonly=False) as again:
        assert again.durable_seq == 1


def test_a_damaged_postgres_row_is_named_by_seq(pg_url, flow):
    import psycopg

    write_log(pg_url, flow[:300])
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute("UPDATE perpdex_txlog SET body = body || ' ' WHERE seq = 17")
    with pytest.raises(LogCorruptError, match="checksum mismatch") as raised:
        replay(pg_url)
    assert raised.value.seq == 17 and "postgresql://" in str(raised.value)
    with DurableExchange.open(pg_url, snapshots=None, quarantine_damaged_tail=True) as durable:
        assert durable.last_seq == 16
    with psycopg.connect(pg_url) as connection:
        assert connection.execute("SELECT min(seq) FROM perpdex_quarantine").fetchone()[0] == 17


def test_an_empty_database_is_not_a_log(pg_url):
    with pytest.raises(NotALogError, match="no perpdex log"):
        open_log(pg_url)
    with pytest.raises(NotALogError):
        open_log(pg_url.replace("host=", "host=/nonexistent"))
