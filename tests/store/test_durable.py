"""DurableExchange: durable before acknowledged, rejected never logged, a failed append stops it
(state ahead of the log), group commit = one fsync per batch, reopening recovers."""

from __future__ import annotations

import sqlite3

import pytest

from perpdex.core.errors import PerpdexError
from perpdex.core.events import Deposited
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, Withdraw
from perpdex.core.units import QUOTE
from perpdex.store import DurableExchange, LogCorruptError, LogWriteError, open_log, replay

ALICE = SubaccountId("alice")


def test_a_transaction_is_in_the_log_before_its_events_are_returned(tmp_path):
    path = tmp_path / "a.db"
    with DurableExchange.create(path, snapshots=None) as durable:
        seen_by_reader = []
        original_commit = durable.log.commit

        def commit_then_look():
            seq = original_commit()
            with open_log(path) as reader:  # another connection: only committed rows are visible
                seen_by_reader.append([s for s, _ in reader.records()])
            return seq

        durable.log.commit = commit_then_look  # type: ignore[method-assign]
        events = durable.apply(Deposit(1, ALICE, 5 * QUOTE))
        assert events == [Deposited(1, ALICE, 0, 5 * QUOTE)]
        assert seen_by_reader == [[1]]


def test_a_rejected_transaction_changes_nothing_and_is_not_logged(tmp_path):
    with DurableExchange.create(tmp_path / "a.db", snapshots=None) as durable:
        durable.apply(Deposit(1, ALICE, 5 * QUOTE))
        digest = durable.exchange.digest()
        with pytest.raises(PerpdexError):
            durable.apply(Withdraw(2, ALICE, 50 * QUOTE))
        assert durable.last_seq == 1 and durable.exchange.digest() == digest and durable.broken is None
        durable.apply(Withdraw(3, ALICE, 1 * QUOTE))  # still usable
        assert durable.last_seq == 2


def test_a_failed_append_stops_the_exchange_until_reopened(tmp_path):
    path = tmp_path / "a.db"
    durable = DurableExchange.create(path, snapshots=None)
    durable.apply(Deposit(1, ALICE, 5 * QUOTE))
    good = durable.exchange.digest()

    def disk_full(rows):
        raise sqlite3.OperationalError("database or disk is full")

    durable.log._insert_rows = disk_full  # type: ignore[method-assign]
    with pytest.raises(LogWriteError, match="disk is full") as raised:
        durable.apply(Deposit(2, ALICE, 7 * QUOTE))
    assert raised.value.seq == 2
    assert durable.exchange.digest() != good  # applied in memory, not durable: the state is ahead
    with pytest.raises(LogWriteError, match="reopen it to recover"):
        durable.apply(Deposit(3, ALICE, 1 * QUOTE))
    durable.close()
    with DurableExchange.open(path, snapshots=None) as reopened:
        assert reopened.last_seq == 1 and reopened.exchange.digest() == good  # never acknowledged, gone


def test_a_bug_in_apply_also_stops_it(tmp_path):
    with DurableExchange.create(tmp_path / "a.db", snapshots=None) as durable:
        def broken_apply(tx):
            raise KeyError("half-written")

        durable._exchange.apply = broken_apply  # type: ignore[method-assign]
        with pytest.raises(KeyError):
            durable.apply(Deposit(1, ALICE, QUOTE))
        assert isinstance(durable.broken, KeyError) and durable.last_seq == 0


def test_group_commit_applies_in_order_with_one_commit_per_batch(tmp_path, flow):
    path = tmp_path / "a.db"
    with DurableExchange.create(path, snapshots=None) as durable:
        commits = []
        insert = durable.log._insert_rows

        def counting(rows):
            commits.append(len(rows))
            insert(rows)

        durable.log._insert_rows = counting  # type: ignore[method-assign]
        results = durable.apply_batch(flow[:200])
        assert len(results) == 200 and len(commits) == 1
        accepted = [tx for tx, r in zip(flow[:200], results) if not isinstance(r, PerpdexError)]
        assert commits == [len(accepted)] == [durable.last_seq]
        assert any(isinstance(r, PerpdexError) for r in results)
        digest = durable.exchange.digest()
    with open_log(path) as log:
        assert [tx for _, tx in log.records()] == accepted
    assert replay(path).digest == digest


def test_reopening_recovers_from_the_newest_snapshot_and_the_tail(tmp_path, flow):
    path = tmp_path / "a.db"
    with DurableExchange.create(path, snapshot_every=250) as durable:
        for start in range(0, len(flow), 40):
            durable.apply_batch(flow[start:start + 40])
        digest, last = durable.exchange.digest(), durable.last_seq
        assert durable.snapshot_failures == []
    snapshots = sorted((tmp_path / "a.db.snapshots").glob("*.pdsnap"))
    assert len(snapshots) == 3  # keep=3
    with DurableExchange.open(path) as reopened:
        recovery = reopened.recovery
        assert recovery.start_seq > 0 and recovery.start_seq + recovery.replayed == last
        assert reopened.exchange.digest() == digest and recovery.issues == []
        reopened.apply(Deposit(10**7, ALICE, QUOTE))  # and it goes on
    assert replay(path).last_seq == last + 1


def test_a_damaged_tail_is_refused_by_default_and_quarantined_on_request(tmp_path, flow):
    path = tmp_path / "a.db"
    with DurableExchange.create(path, snapshots=None) as durable:
        durable.apply_batch(flow[:400])
        last = durable.last_seq
    connection = sqlite3.connect(path)
    connection.execute("UPDATE txlog SET body = 'x' || body WHERE seq = ?", (last - 5,))
    connection.commit()
    connection.close()
    with pytest.raises(LogCorruptError, match=f"seq {last - 5}: checksum mismatch"):
        DurableExchange.open(path, snapshots=None)
    with DurableExchange.open(path, snapshots=None, quarantine_damaged_tail=True) as recovered:
        assert recovered.last_seq == last - 6
        assert "6 row(s) from seq" in recovered.recovery.issues[0]
    assert replay(path, until_seq=last - 6).digest == replay(path).digest


def test_open_or_create(tmp_path):
    with DurableExchange.open_or_create(tmp_path / "a.db", snapshots=None) as durable:
        durable.apply(Deposit(1, ALICE, QUOTE))
    with DurableExchange.open_or_create(tmp_path / "a.db", snapshots=None) as durable:
        assert durable.last_seq == 1
