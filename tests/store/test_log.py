"""The SQLite log: rows in order with checksums, metadata that makes a log replay standalone,
one writer, and every kind of bad input named by file and seq."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit
from perpdex.core.units import QUOTE
from perpdex.store import (
    CodecError,
    LogCorruptError,
    LogLockedError,
    NewerVersionError,
    NotALogError,
    StoreError,
    create_log,
    open_log,
    replay,
)
from perpdex.store.log import FORMAT_VERSION, default_markets_toml

ALICE = SubaccountId("alice")


def deposits(count: int) -> list[Deposit]:
    return [Deposit(1 + i, ALICE, (i + 1) * QUOTE) for i in range(count)]


def test_rows_come_back_in_order_after_commit_and_not_before(tmp_path):
    with create_log(tmp_path / "a.db") as log:
        seqs = [log.append_tx(tx) for tx in deposits(3)]
        assert seqs == [1, 2, 3] and log.durable_seq == 0
        with open_log(tmp_path / "a.db") as reader:
            assert list(reader.records()) == []  # pending rows are invisible until committed
        assert log.commit() == 3
    with open_log(tmp_path / "a.db") as reader:
        assert [(seq, tx) for seq, tx in reader.records()] == list(enumerate(deposits(3), start=1))
        assert [seq for seq, _ in reader.records(2, 2)] == [2]


def test_the_log_holds_its_market_file_and_settings(tmp_path):
    with create_log(tmp_path / "a.db") as log:
        pass
    with open_log(tmp_path / "a.db") as log:
        assert log.meta.markets_toml == default_markets_toml()[0]
        assert log.meta.format_version == FORMAT_VERSION and len(log.meta.log_id) == 32
        assert [m.market_id for m in log.markets()][:2] == ["BTC-USD", "ETH-USD"]
    connection = sqlite3.connect(tmp_path / "a.db")
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_log_with_a_custom_market_file_replays_on_it(tmp_path):
    text = default_markets_toml()[0].replace("taker_fee_ppm = 500", "taker_fee_ppm = 700")
    with create_log(tmp_path / "a.db", text, markets_source="mine.toml") as log:
        log.append_tx(Deposit(1, ALICE, QUOTE))
        log.commit()
    result = replay(tmp_path / "a.db")
    assert result.exchange.markets["BTC-USD"].params.taker_fee_ppm == 700


def test_an_invalid_market_file_is_refused_before_anything_is_written(tmp_path):
    from perpdex.core.errors import MarketFileError

    with pytest.raises(MarketFileError):
        create_log(tmp_path / "a.db", "[[markets]]\nmarket_id = 'X'\n")


def test_one_writer_at_a_time_and_readers_alongside(tmp_path):
    with create_log(tmp_path / "a.db") as writer:
        with pytest.raises(LogLockedError, match="another process is writing"):
            open_log(tmp_path / "a.db", readonly=False)
        writer.append_tx(Deposit(1, ALICE, QUOTE))
        writer.commit()
        with open_log(tmp_path / "a.db") as reader:
            assert reader.durable_seq == 1
    open_log(tmp_path / "a.db", readonly=False).close()  # the lock went with the writer


def test_creating_over_an_existing_file_is_refused(tmp_path):
    (tmp_path / "a.db").write_text("precious")
    with pytest.raises(StoreError, match="already exists"):
        create_log(tmp_path / "a.db")
    assert (tmp_path / "a.db").read_text() == "precious"


@pytest.mark.parametrize("content", [b"not a database at all\n" * 10, b""], ids=["text file", "empty file"])
def test_a_file_that_is_not_a_log_is_named_and_left_untouched(tmp_path, content):
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    for readonly in (True, False):
        with pytest.raises(NotALogError, match="not a perpdex log") as error:
            open_log(path, readonly=readonly)
        assert error.value.location == str(path) and str(path) in str(error.value)
    assert path.read_bytes() == content


def test_a_missing_log_is_named(tmp_path):
    with pytest.raises(NotALogError, match="no such log file"):
        open_log(tmp_path / "nope.db")


def test_a_newer_log_format_is_refused_with_the_file_named(tmp_path):
    with create_log(tmp_path / "a.db"):
        pass
    connection = sqlite3.connect(tmp_path / "a.db")
    connection.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION + 1),))
    connection.commit()
    connection.close()
    before = hashlib.sha256((tmp_path / "a.db").read_bytes()).hexdigest()
    with pytest.raises(NewerVersionError, match=f"log format {FORMAT_VERSION + 1} is newer") as error:
        open_log(tmp_path / "a.db", readonly=False)
    assert error.value.location == str(tmp_path / "a.db")
    assert hashlib.sha256((tmp_path / "a.db").read_bytes()).hexdigest() == before  # nothing overwritten


def _log_of(tmp_path, count: int = 5):
    path = tmp_path / "a.db"
    with create_log(path) as log:
        for tx in deposits(count):
            log.append_tx(tx)
        log.commit()
    return path


def _sql(path, statement: str, *params) -> None:
    connection = sqlite3.connect(path)
    connection.execute(statement, params)
    connection.commit()
    connection.close()


@pytest.mark.parametrize("statement, params, error, message", [
    ("UPDATE txlog SET body = replace(body, '3000000', '9000000') WHERE seq = 3", (), LogCorruptError,
     "checksum mismatch"),
    ("UPDATE txlog SET type = 'Withdraw' WHERE seq = 3", (), LogCorruptError, "checksum mismatch"),
    ("UPDATE txlog SET ts_ms = 99 WHERE seq = 3", (), LogCorruptError, "checksum mismatch"),
    ("DELETE FROM txlog WHERE seq = 3", (), LogCorruptError, "seq 3 is missing"),
    ("UPDATE txlog SET body = '[3,[\"alice\",0],3000000', crc = ? WHERE seq = 3",
     ("crc", '[3,["alice",0],3000000'), CodecError, "not valid JSON"),
    ("UPDATE txlog SET version = 2, crc = ? WHERE seq = 3", ("crc-version", None), NewerVersionError,
     "Deposit version 2 is newer"),
    ("UPDATE txlog SET type = 'NoSuchTx', crc = ? WHERE seq = 3", ("crc-type", None), CodecError,
     "unknown transaction type 'NoSuchTx'"),
], ids=["a damaged body", "an edited type", "an edited timestamp", "a missing row",
        "a body that does not parse (checksum recomputed)", "a newer row version", "an unknown type"])
def test_bad_rows_are_reported_with_file_and_seq(tmp_path, statement, params, error, message):
    from perpdex.store.log import row_crc

    path = _log_of(tmp_path)
    with open_log(path) as log:
        seq, ts_ms, type_name, version, body, _ = next(row for batch in log.rows(3, 3) for row in batch)
    if params and params[0] == "crc":
        params = (row_crc(3, ts_ms, type_name, version, params[1]),)
    elif params and params[0] == "crc-version":
        params = (row_crc(3, ts_ms, type_name, 2, body),)
    elif params and params[0] == "crc-type":
        params = (row_crc(3, ts_ms, "NoSuchTx", version, body),)
    _sql(path, statement, *params)
    with open_log(path) as log:
        got = []
        with pytest.raises(error, match=message) as raised:
            for seq, _tx in log.records():
                got.append(seq)
    assert got == [1, 2]  # every good row before the bad one was read
    assert raised.value.seq == 3 and raised.value.location == str(path)
    assert f"{path}: seq 3: " in str(raised.value)


def test_a_truncated_database_file_is_reported_not_read_silently(tmp_path):
    path = tmp_path / "a.db"
    with create_log(path, durability="off") as log:
        for start in range(0, 4_000, 500):
            for i in range(start, start + 500):
                log.append_tx(Deposit(i, SubaccountId(f"user{i:05d}" * 8), QUOTE))
            log.commit()
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    size = path.stat().st_size
    with open(path, "r+b") as file:
        file.truncate(size // 2)
    with pytest.raises((LogCorruptError, NotALogError)) as raised, open_log(path) as log:
        for _ in log.records():
            pass
    assert str(path) in str(raised.value)


def test_quarantine_moves_a_damaged_tail_aside_without_deleting_it(tmp_path):
    path = _log_of(tmp_path)
    _sql(path, "UPDATE txlog SET body = 'garbage' WHERE seq = 4")
    with open_log(path, readonly=False) as log:
        assert log.quarantine_from(4) == 2
        assert log.durable_seq == 3
        assert [seq for seq, _ in log.records()] == [1, 2, 3]
    kept = sqlite3.connect(path).execute("SELECT seq, body FROM quarantine ORDER BY seq").fetchall()
    assert [seq for seq, _ in kept] == [4, 5] and kept[0][1] == "garbage"


def test_liquidation_settings_travel_with_the_log(tmp_path):
    from dataclasses import replace

    from perpdex.core.liquidation import LiquidationsConfig
    from perpdex.store import DurableExchange

    config = replace(LiquidationsConfig(), max_liquidation_fee_ppm=7_000)
    with DurableExchange.create(tmp_path / "a.db", liquidations_config=config, snapshots=None) as durable:
        assert durable.exchange.liquidations_config == config
        durable.apply(Deposit(1, ALICE, QUOTE))
    assert replay(tmp_path / "a.db").exchange.liquidations_config == config
    connection = sqlite3.connect(tmp_path / "a.db")
    connection.execute("UPDATE meta SET value = '{\"margin_engine\": {}}' WHERE key = 'exchange_options'")
    connection.commit()
    connection.close()
    with pytest.raises(NewerVersionError, match="exchange option 'margin_engine'"):
        replay(tmp_path / "a.db")
