"""Replay rebuilds the state bit for bit (digest), to any seq, from genesis or a snapshot plus the
tail; snapshots are checked against the log and skipped, with a reason, when anything is off."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from perpdex.core.errors import PerpdexError
from perpdex.core.exchange import Exchange
from perpdex.core.invariants import check_invariants
from perpdex.store import (
    DurableExchange,
    LogCorruptError,
    NewerVersionError,
    ReplayDivergenceError,
    SnapshotError,
    SnapshotStore,
    StoreError,
    create_log,
    open_log,
    replay,
)
from perpdex.store.replay import write_snapshot
from perpdex.store.snapshot import MAGIC

from .conftest import write_log


def direct_digests(accepted: list, markets) -> list[str]:
    """Digest after each accepted tx, applied straight to an Exchange (no store involved)."""
    exchange = Exchange(markets)
    digests = []
    for tx in accepted:
        exchange.apply(tx)
        digests.append(exchange.digest())
    return digests


def test_replay_equals_the_exchange_that_wrote_the_log(log_path):
    path, digest, accepted = log_path
    result = replay(path)
    assert result.digest == digest
    assert result.last_seq == result.replayed == len(accepted) == result.exchange.tx_count
    assert result.snapshot is None and result.issues == []
    check_invariants(result.exchange)


def test_replay_until_a_seq_is_the_state_at_that_point_in_history(log_path):
    path, _, accepted = log_path
    with open_log(path) as log:
        markets = log.markets()
    digests = direct_digests(accepted, markets)
    for until in (1, len(accepted) // 3, len(accepted) - 1):
        assert replay(path, until_seq=until).digest == digests[until - 1]
    assert replay(path, until_seq=0).digest == Exchange(markets).digest()
    with pytest.raises(StoreError, match=f"outside the log, which holds seq 1..{len(accepted)}"):
        replay(path, until_seq=len(accepted) + 1)


def test_progress_is_reported_from_zero_to_the_total(log_path):
    path, _, accepted = log_path
    seen = []
    replay(path, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, len(accepted)) and seen[-1] == (len(accepted), len(accepted))


def test_snapshot_plus_tail_recovers_the_same_state(log_path, tmp_path):
    path, digest, accepted = log_path
    store = SnapshotStore(tmp_path / "snaps")
    with open_log(path, readonly=False) as log:
        state = replay(log, until_seq=500).exchange
        write_snapshot(log, store, state, 500)
    result = replay(path, snapshots=store)
    assert result.snapshot is not None and result.start_seq == 500
    assert result.replayed == len(accepted) - 500 and result.digest == digest
    # a point before the snapshot still replays from genesis
    assert replay(path, snapshots=store, until_seq=400).start_seq == 0


def test_writing_snapshots_on_the_way_and_verifying_checkpoints(log_path, tmp_path):
    path, digest, _accepted = log_path
    store = SnapshotStore(tmp_path / "snaps", keep=2)
    first = replay(path, snapshots=store, snapshot_every=300)
    assert first.digest == digest
    assert [seq for seq, _ in store.paths()] == [1200, 900]  # the newest two kept
    with open_log(path) as log:
        assert sorted(log.checkpoints()) == [300, 600, 900, 1200]
    verified = replay(path, verify_checkpoints=True)
    assert verified.checkpoints_verified == 4 and verified.digest == digest
    resumed = replay(path, snapshots=store)
    assert resumed.start_seq == 1200 and resumed.digest == digest


def _snapshot_at(path, tmp_path, seq: int = 600) -> tuple[SnapshotStore, os.PathLike]:
    store = SnapshotStore(tmp_path / "snaps")
    with open_log(path, readonly=False) as log:
        info = write_snapshot(log, store, replay(log, until_seq=seq).exchange, seq)
    return store, info.path


def _flip_byte(file, offset_from_end: int = 100) -> None:
    data = bytearray(file.read_bytes())
    data[-offset_from_end] ^= 0xFF
    file.write_bytes(bytes(data))


def _rewrite_header(file, **changes) -> None:
    data = file.read_bytes()
    end = data.index(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC):end])
    header.update(changes)
    file.write_bytes(MAGIC + json.dumps(header).encode() + data[end:])


@pytest.mark.parametrize("damage, message", [
    (lambda f: _flip_byte(f), "payload hash mismatch"),
    (lambda f: f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2]), "truncated"),
    (lambda f: f.write_bytes(f.read_bytes()[:10]), "truncated header|bad magic"),
    (lambda f: f.write_bytes(b""), "bad magic"),
    (lambda f: _rewrite_header(f, digest="0" * 64), "differs from the log's"),
    (lambda f: _rewrite_header(f, log_id="f" * 32), "belongs to another log"),
    (lambda f: _rewrite_header(f, format_version=99), "snapshot format 99 is newer"),
    (lambda f: _rewrite_header(f, core_code="0" * 32), "other perpdex core code"),
], ids=["a flipped byte", "a truncated payload", "a truncated header", "an empty file", "a digest the log never recorded",
        "a snapshot of another log", "a newer snapshot format", "written by other core code"])
def test_a_bad_snapshot_is_reported_and_recovery_falls_back(log_path, tmp_path, damage, message):
    path, digest, _accepted = log_path
    store, file = _snapshot_at(path, tmp_path)
    damage(file)
    with open_log(path) as log, pytest.raises((SnapshotError, NewerVersionError), match=message) as raised:
        store.load(file, log)
    assert str(file) in str(raised.value)
    result = replay(path, snapshots=store)
    assert result.start_seq == 0 and result.digest == digest  # fell back to genesis: never used
    assert len(result.issues) == 1 and str(file) in result.issues[0] and "seq 600" in result.issues[0]


def test_recovery_falls_back_to_the_newest_good_snapshot(log_path, tmp_path):
    path, digest, _ = log_path
    store = SnapshotStore(tmp_path / "snaps")
    with open_log(path, readonly=False) as log:
        for seq in (300, 600, 900):
            write_snapshot(log, store, replay(log, until_seq=seq).exchange, seq)
    _flip_byte(store.path_for(900))
    result = replay(path, snapshots=store)
    assert result.start_seq == 600 and result.digest == digest and "seq 900" in result.issues[0]


def test_a_snapshot_past_the_end_of_the_log_reveals_a_truncated_log(log_path, tmp_path):
    path, _, accepted = log_path
    store, _file = _snapshot_at(path, tmp_path, seq=len(accepted))
    connection = sqlite3.connect(path)
    connection.execute("DELETE FROM txlog WHERE seq > ?", (len(accepted) - 10,))
    connection.commit()
    connection.close()
    result = replay(path, snapshots=store)
    assert result.last_seq == len(accepted) - 10 and result.start_seq == 0
    assert "past the end of the log" in result.issues[0] and "lost its tail" in result.issues[0]


def test_interrupted_snapshot_writes_are_ignored(log_path, tmp_path):
    path, digest, _ = log_path
    store, _ = _snapshot_at(path, tmp_path, seq=600)
    (store.directory / ".snapshot-000000000900.pdsnap.999999.tmp").write_bytes(b"PERPDEX-SNAPSHOT\n{")
    result = replay(path, snapshots=store)
    assert result.start_seq == 600 and result.issues == [] and result.digest == digest
    store.prune()
    assert not list(store.directory.glob("*.tmp"))


def test_a_logged_transaction_rejected_on_replay_is_a_divergence_named_by_seq(tmp_path):
    from perpdex.core.state import SubaccountId
    from perpdex.core.tx import Deposit, Withdraw
    from perpdex.store.codec import DEFAULT_CODEC

    path = tmp_path / "a.db"
    with create_log(path) as log:  # written behind the exchange's back: the second row was never accepted
        log.append(DEFAULT_CODEC.encode(Deposit(1, SubaccountId("a"), 10)))
        log.append(DEFAULT_CODEC.encode(Withdraw(2, SubaccountId("a"), 1_000)))
        log.commit()
    with pytest.raises(ReplayDivergenceError, match="the logged Withdraw is rejected on replay") as raised:
        replay(path)
    assert raised.value.seq == 2 and str(path) in str(raised.value)


def test_a_checkpoint_that_disagrees_is_a_divergence(log_path):
    path, _, _ = log_path
    with open_log(path, readonly=False) as log:
        log.record_checkpoint(100, "0" * 64)
    with pytest.raises(ReplayDivergenceError, match="differs from the") as raised:
        replay(path, verify_checkpoints=True)
    assert raised.value.seq == 100


def test_replay_stops_at_a_damaged_row_and_names_it(log_path):
    path, _, _ = log_path
    connection = sqlite3.connect(path)
    connection.execute("UPDATE txlog SET body = body || ' ' WHERE seq = 777")
    connection.commit()
    connection.close()
    with pytest.raises(LogCorruptError, match="checksum mismatch") as raised:
        replay(path)
    assert raised.value.seq == 777
    assert replay(path, until_seq=776).last_seq == 776  # everything before it is still good


def test_the_scripted_demo_session_through_the_store(tmp_path):
    """The demo (quotes, stops, a crash, liquidations, the insurance fund) logged and replayed."""
    from perpdex.sim.scripted import ScriptedSession

    session = ScriptedSession()
    logged = []
    apply = session.exchange.apply

    def recording_apply(tx):
        events = apply(tx)
        logged.append(tx)
        return events

    session.exchange.apply = recording_apply  # type: ignore[method-assign]
    session.run()
    del session.exchange.apply
    digest, accepted = write_log(tmp_path / "demo.db", logged)
    assert accepted == logged and digest == session.exchange.digest()
    assert replay(tmp_path / "demo.db").digest == digest


def test_durable_exchange_rejections_are_never_logged(tmp_path, flow):
    with DurableExchange.create(tmp_path / "a.db", snapshots=None) as durable:
        rejected = 0
        for tx in flow[:300]:
            try:
                durable.apply(tx)
            except PerpdexError:
                rejected += 1
        assert rejected > 0 and durable.last_seq == 300 - rejected
        digest = durable.exchange.digest()
    assert replay(tmp_path / "a.db").digest == digest
