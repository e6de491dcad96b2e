"""The append-only transaction log: one row per applied transaction (seq, ts_ms, type, version,
canonical body, checksum), on SQLite (default, a file) or PostgreSQL (`postgresql://` URLs).

Rows are appended to a pending group and made durable together by `commit()`: one transaction and
one fsync per group, so a caller that accepts group commit pays one sync for many transactions
and a caller that does not commits after each. The log's metadata holds the format version, a
random log id and the market file text, so a log replays standalone. Reading checks every row
(contiguous seq, CRC-32 over seq|ts_ms|type|version|body, strict decode) and names the file and
the sequence number of the first row that fails.

Durability: `durability="full"` is SQLite WAL with `synchronous=FULL` (each commit fsyncs the
WAL) or PostgreSQL `synchronous_commit=on`: a committed row survives a process crash and a power
loss. `"normal"` (SQLite `synchronous=NORMAL`, PostgreSQL `synchronous_commit=off`) survives a
process crash but may lose the last commits on power loss; `"off"` is for throwaway logs.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
import zlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Self

from perpdex.core.errors import PerpdexError
from perpdex.store.codec import CODEC_FAMILY, DEFAULT_CODEC, EncodedTx, TxCodec, parse_body
from perpdex.store.errors import (
    CodecError,
    LogCorruptError,
    LogLockedError,
    LogWriteError,
    NewerVersionError,
    NotALogError,
    StoreError,
)

FORMAT_VERSION = 1
"""Version of the log layout and encoding family. A log with a higher version is refused."""

DURABILITY_LEVELS = ("full", "normal", "off")
READ_BATCH_ROWS = 4096

Row = tuple[int, int, str, int, str, int]  # seq, ts_ms, type, version, body, crc


def row_crc(seq: int, ts_ms: int, type_name: str, version: int, body: str) -> int:
    """CRC-32 of a row's content, seq included, so a damaged, edited or moved row is caught."""
    return zlib.crc32(f"{seq}|{ts_ms}|{type_name}|{version}|{body}".encode())


def default_markets_toml() -> tuple[str, str]:
    """(text, source) of the shipped market file."""
    from perpdex.config.markets import DEFAULT_MARKETS_FILE

    text = resources.files("perpdex.config").joinpath(DEFAULT_MARKETS_FILE).read_text(encoding="utf-8")
    return text, f"perpdex/config/{DEFAULT_MARKETS_FILE}"


def is_postgres_url(location: str | os.PathLike) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class LogMeta:
    """What a log says about itself."""

    format_version: int
    codec: str
    log_id: str
    markets_toml: str
    markets_source: str
    created_unix_ms: int
    perpdex_version: str
    exchange_options: dict[str, Any]  # Exchange constructor options beyond the markets, as JSON


def _exchange_option_types() -> dict[str, type]:
    """Exchange constructor options a log can carry (name -> frozen dataclass of ints)."""
    from perpdex.core.liquidation import LiquidationsConfig

    return {"liquidations_config": LiquidationsConfig}


class TxLog:
    """Append-only log of applied transactions. One writer at a time (enforced by a lock);
    any number of readers. Use `open_log` / `create_log` rather than the backends directly."""

    backend = "?"

    def __init__(self, location: str, *, readonly: bool, durability: str, codec: TxCodec) -> None:
        if durability not in DURABILITY_LEVELS:
            raise ValueError(f"durability must be one of {DURABILITY_LEVELS}, got {durability!r}")
        self.location = location
        self.readonly = readonly
        self.durability = durability
        self.codec = codec
        self.meta: LogMeta
        self.durable_seq = 0  # last committed seq
        self.last_seq = 0  # last assigned seq (committed or pending)
        self._pending: list[Row] = []

    # --- backend hooks ---------------------------------------------------------------------
    def _insert_rows(self, rows: list[Row]) -> None:
        raise NotImplementedError

    def _fetch_batches(self, from_seq: int, until_seq: int | None,
                       batch_rows: int) -> Generator[Sequence[Row], None, None]:
        raise NotImplementedError

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        raise NotImplementedError

    def _execute_in_transaction(self, statements: list[tuple[str, tuple]]) -> None:
        raise NotImplementedError

    def _db_errors(self) -> tuple[type[BaseException], ...]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- writing -------------------------------------------------------------------------
    def append(self, encoded: EncodedTx) -> int:
        """Add an encoded transaction to the pending group; returns its seq. Not durable (nor
        visible to readers) until `commit()` returns."""
        if self.readonly:
            raise StoreError("log is open read-only", location=self.location)
        seq = self.last_seq + 1
        self._pending.append((seq, encoded.ts_ms, encoded.type_name, encoded.version, encoded.body,
                              row_crc(seq, encoded.ts_ms, encoded.type_name, encoded.version, encoded.body)))
        self.last_seq = seq
        return seq

    def append_tx(self, tx: Any) -> int:
        """Encode and append (pending) a transaction; raises MalformedTxError for a bad one."""
        return self.append(self.codec.encode(tx))

    def commit(self) -> int:
        """Make every pending row durable in one transaction; returns the durable seq. On a
        failure the pending rows are dropped and LogWriteError is raised."""
        if not self._pending:
            return self.durable_seq
        rows, self._pending = self._pending, []
        try:
            self._insert_rows(rows)
        except BaseException as exc:
            self._resync()
            if isinstance(exc, self._db_errors()):
                raise LogWriteError(f"appending seq {rows[0][0]}..{rows[-1][0]} failed: {exc}",
                                    location=self.location, seq=rows[0][0]) from exc
            raise
        self.durable_seq = rows[-1][0]
        return self.durable_seq

    def _resync(self) -> None:
        """After a failed commit: what is durable is what the database holds (the commit may have
        landed before the failure was seen)."""
        try:
            self.durable_seq = self._max_seq()
        except Exception:  # noqa: BLE001, S110 - the connection itself may be gone; keep what we knew
            pass
        self.last_seq = self.durable_seq

    def discard_pending(self) -> None:
        self._pending.clear()
        self.last_seq = self.durable_seq

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def record_checkpoint(self, seq: int, digest: str) -> None:
        """Record the state digest after `seq` (durably); snapshots are checked against it.
        Raises ReplayDivergenceError-worthy StoreError if a different digest is already there."""
        if self.readonly:
            raise StoreError("log is open read-only", location=self.location)
        existing = self.checkpoint(seq)
        if existing is not None:
            if existing != digest:
                raise StoreError(f"the log already records digest {existing} at this seq, not {digest}",
                                 location=self.location, seq=seq)
            return
        try:
            self._execute_in_transaction([(self._sql("INSERT INTO {checkpoints}(seq, digest) VALUES ({p}, {p})"),
                                           (seq, digest))])
        except self._db_errors() as exc:
            raise LogWriteError(f"recording the checkpoint failed: {exc}", location=self.location, seq=seq) from exc

    def quarantine_from(self, seq: int) -> int:
        """Move rows seq.. (a damaged tail) into the quarantine table, nothing deleted for good;
        returns how many moved. Only for recovery that the caller asked for explicitly."""
        if self.readonly:
            raise StoreError("log is open read-only", location=self.location)
        moved = self._query(self._sql("SELECT COUNT(*) FROM {txlog} WHERE seq >= {p}"), (seq,))[0][0]
        now_ms = int(time.time() * 1000)
        self._execute_in_transaction([
            (self._sql("INSERT INTO {quarantine}(seq, ts_ms, type, version, body, crc, quarantined_unix_ms) "
                       "SELECT seq, ts_ms, type, version, body, crc, {p} FROM {txlog} WHERE seq >= {p}"),
             (now_ms, seq)),
            (self._sql("DELETE FROM {txlog} WHERE seq >= {p}"), (seq,)),
            (self._sql("DELETE FROM {checkpoints} WHERE seq >= {p}"), (seq,)),
        ])
        self.durable_seq = self.last_seq = self._max_seq()
        return moved

    # --- reading -------------------------------------------------------------------------
    def checkpoint(self, seq: int) -> str | None:
        rows = self._query(self._sql("SELECT digest FROM {checkpoints} WHERE seq = {p}"), (seq,))
        return rows[0][0] if rows else None

    def checkpoints(self) -> dict[int, str]:
        """seq -> recorded state digest after that seq."""
        return dict(self._query(self._sql("SELECT seq, digest FROM {checkpoints} ORDER BY seq")))

    def rows(self, from_seq: int = 1, until_seq: int | None = None,
             batch_rows: int = READ_BATCH_ROWS) -> Generator[Sequence[Row], None, None]:
        """Raw committed rows in seq order, in batches; damaged storage raises LogCorruptError."""
        next_seq = from_seq
        batches = self._fetch_batches(from_seq, until_seq, batch_rows)
        try:
            for batch in batches:
                if batch:
                    next_seq = batch[-1][0] + 1
                yield batch
        except self._db_errors() as exc:
            raise LogCorruptError(f"cannot read the log past this point: {exc}", location=self.location,
                                  seq=next_seq) from exc
        finally:
            batches.close()  # end the read (cursor, transaction) now, not when garbage collected

    def records(self, from_seq: int = 1, until_seq: int | None = None,
                batch_rows: int = READ_BATCH_ROWS) -> Iterator[tuple[int, Any]]:
        """(seq, tx) for each committed row from `from_seq`, checked: no gap, checksum, decode.
        Raises LogCorruptError / CodecError / NewerVersionError naming the file and seq."""
        batches = self.rows(from_seq, until_seq, batch_rows)
        try:
            yield from self._checked(batches, from_seq)
        finally:
            batches.close()

    def _checked(self, batches: Iterator[Sequence[Row]], from_seq: int) -> Iterator[tuple[int, Any]]:
        codec = self.codec
        specs: dict[str, Any] = {}
        expected = from_seq
        crc32 = zlib.crc32
        for batch in batches:
            for row in batch:
                try:
                    seq, ts_ms, type_name, version, body, crc = row
                    if seq != expected:
                        raise LogCorruptError(f"seq {expected} is missing: the next row is seq {seq}",
                                              location=self.location, seq=expected)
                    if crc32(f"{seq}|{ts_ms}|{type_name}|{version}|{body}".encode()) != crc:
                        raise LogCorruptError("checksum mismatch: the row was damaged or edited",
                                              location=self.location, seq=seq)
                    spec = specs.get(type_name)
                    if spec is None:
                        spec = codec.spec(type_name)
                        if spec is None:
                            raise CodecError(f"unknown transaction type {type_name!r} (written by a newer perpdex?)")
                        specs[type_name] = spec
                    if version == spec.version:
                        tx = spec.decode_value(parse_body(body))
                    else:
                        tx = codec.decode_parsed(spec, version, parse_body(body))
                except StoreError as exc:
                    if exc.location is None:
                        exc.location, exc.seq = self.location, expected
                    raise
                except (ValueError, TypeError, AttributeError) as exc:
                    raise LogCorruptError(f"row does not parse: {exc}", location=self.location,
                                          seq=expected) from None
                yield seq, tx
                expected += 1

    def count(self) -> int:
        return self._query(self._sql("SELECT COUNT(*) FROM {txlog}"))[0][0]

    def _max_seq(self) -> int:
        return self._query(self._sql("SELECT COALESCE(MAX(seq), 0) FROM {txlog}"))[0][0]

    # --- metadata --------------------------------------------------------------------------
    _TABLES: ClassVar[dict[str, str]] = {"meta": "meta", "txlog": "txlog", "checkpoints": "checkpoints",
                                         "quarantine": "quarantine"}
    _PARAM = "?"
    _SEQ_KEY = "INTEGER PRIMARY KEY"  # SQLite: the rowid itself

    def _sql(self, template: str) -> str:
        return template.format(p=self._PARAM, seq_key=self._SEQ_KEY, **self._TABLES)

    def _schema(self) -> list[str]:
        return [self._sql(statement) for statement in (
            "CREATE TABLE IF NOT EXISTS {meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            ("CREATE TABLE IF NOT EXISTS {txlog} (seq {seq_key}, ts_ms BIGINT NOT NULL, "
             "type TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL, crc BIGINT NOT NULL)"),
            "CREATE TABLE IF NOT EXISTS {checkpoints} (seq {seq_key}, digest TEXT NOT NULL)",
            ("CREATE TABLE IF NOT EXISTS {quarantine} (seq BIGINT NOT NULL, ts_ms BIGINT, type TEXT, "
             "version INTEGER, body TEXT, crc BIGINT, quarantined_unix_ms BIGINT NOT NULL)"),
        )]

    def _initialize(self, markets_toml: str, markets_source: str, exchange_options: dict[str, Any] | None) -> None:
        """Create the tables and the metadata of a new, empty log."""
        import dataclasses
        import json

        from perpdex.config.markets import parse_markets

        parse_markets(markets_toml, markets_source or "<markets>")  # refuse a log that could never replay
        meta = {"format_version": str(FORMAT_VERSION), "codec": CODEC_FAMILY, "log_id": uuid.uuid4().hex,
                "markets_toml": markets_toml, "markets_source": markets_source,
                "created_unix_ms": str(int(time.time() * 1000)), "perpdex_version": _perpdex_version()}
        if exchange_options:
            known = _exchange_option_types()
            encoded = {}
            for name, value in exchange_options.items():
                if name not in known or type(value) is not known[name]:
                    raise ValueError(f"unknown exchange option {name}={value!r} (known: {sorted(known)})")
                encoded[name] = dataclasses.asdict(value)  # type: ignore[call-overload]
            meta["exchange_options"] = json.dumps(encoded, sort_keys=True)
        statements: list[tuple[str, tuple]] = [(statement, ()) for statement in self._schema()]
        statements += [(self._sql("INSERT INTO {meta}(key, value) VALUES ({p}, {p})"), item) for item in meta.items()]
        self._execute_in_transaction(statements)

    def _load_meta(self) -> None:
        try:
            rows = self._query(self._sql("SELECT key, value FROM {meta}"))
        except self._db_errors() as exc:
            raise NotALogError(f"not a perpdex log (no readable metadata: {exc})", location=self.location) from exc
        meta = dict(rows)
        try:
            format_version = int(meta["format_version"])
        except (KeyError, ValueError):
            raise NotALogError("not a perpdex log (no format version in its metadata)", location=self.location) from None
        if format_version > FORMAT_VERSION:
            raise NewerVersionError(f"log format {format_version} is newer than this perpdex reads (up to "
                                    f"{FORMAT_VERSION}); upgrade perpdex to read it", location=self.location)
        if meta.get("codec") != CODEC_FAMILY:
            raise NewerVersionError(f"unknown encoding {meta.get('codec')!r} (this perpdex reads {CODEC_FAMILY!r})",
                                    location=self.location)
        try:
            import json

            options = json.loads(meta.get("exchange_options", "{}"))
            self.meta = LogMeta(format_version, meta["codec"], meta["log_id"], meta["markets_toml"],
                                meta.get("markets_source", ""), int(meta.get("created_unix_ms", "0")),
                                meta.get("perpdex_version", ""), options)
        except (KeyError, ValueError) as exc:
            raise NotALogError(f"not a perpdex log (metadata incomplete: {exc})", location=self.location) from None
        self.durable_seq = self.last_seq = self._max_seq()

    def markets(self) -> list:
        """The log's market parameters (from the stored market file text)."""
        from perpdex.config.markets import parse_markets

        try:
            return parse_markets(self.meta.markets_toml, f"{self.location} (stored market file)")
        except PerpdexError as exc:
            raise LogCorruptError(f"the stored market file does not parse: {exc}", location=self.location) from exc

    def exchange_kwargs(self) -> dict[str, Any]:
        """Keyword arguments besides the markets to build this log's Exchange (`Exchange(markets,
        **log.exchange_kwargs())`). An option this perpdex does not know raises NewerVersionError."""
        known = _exchange_option_types()
        kwargs = {}
        for name, fields in self.meta.exchange_options.items():
            if name not in known:
                raise NewerVersionError(f"the log needs exchange option {name!r}, unknown to this perpdex",
                                        location=self.location)
            try:
                value = known[name](**fields)
                value.validate()
            except (TypeError, PerpdexError) as exc:
                raise LogCorruptError(f"stored exchange option {name} is invalid: {exc}",
                                      location=self.location) from exc
            kwargs[name] = value
        return kwargs

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r}, last_seq={self.last_seq})"


def _perpdex_version() -> str:
    try:
        from importlib.metadata import version

        return version("perpdex")
    except Exception:  # noqa: BLE001 - metadata is informative only
        return "unknown"


# --- SQLite ----------------------------------------------------------------------------------
class SqliteTxLog(TxLog):
    """The embedded default: one SQLite file in WAL mode. The writer holds an flock on the file."""

    backend = "sqlite"

    def __init__(self, path: str | os.PathLike, *, readonly: bool = True, create: bool = False,
                 markets_toml: str | None = None, markets_source: str = "", durability: str = "full",
                 codec: TxCodec = DEFAULT_CODEC, exchange_options: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        super().__init__(str(self.path), readonly=readonly, durability=durability, codec=codec)
        self._lock_fd: int | None = None
        self.connection: sqlite3.Connection | None = None
        exists = self.path.exists()
        if create and exists and self.path.stat().st_size > 0:
            raise StoreError("a file already exists here; open it instead of creating a log", location=self.location)
        if not create and not exists:
            raise NotALogError("no such log file", location=self.location)
        try:
            if readonly:
                self.connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                                  isolation_level=None, check_same_thread=False)
            else:
                self.connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.connection.execute("PRAGMA busy_timeout = 10000")
            if not readonly:
                self._take_lock()
            if not create:
                self._load_meta()  # before any write: a file that is not a log is left untouched
            if not readonly:
                mode = self.connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"cannot switch the log to WAL mode (got {mode})", location=self.location)
                level = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}[durability]
                self.connection.execute(f"PRAGMA synchronous = {level}")
            if create:
                if markets_toml is None:
                    markets_toml, markets_source = default_markets_toml()
                self._initialize(markets_toml, markets_source, exchange_options)
                self._load_meta()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise NotALogError(f"not a perpdex log (SQLite: {exc})", location=self.location) from exc
        except BaseException:
            self.close()
            raise

    def _take_lock(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LogLockedError("another process is writing this log", location=self.location) from None
        self._lock_fd = fd

    def _db_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def _insert_rows(self, rows: list[Row]) -> None:
        connection = self.connection
        assert connection is not None
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany("INSERT INTO txlog(seq, ts_ms, type, version, body, crc) VALUES (?, ?, ?, ?, ?, ?)",
                                   rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _execute_in_transaction(self, statements: list[tuple[str, tuple]]) -> None:
        connection = self.connection
        assert connection is not None
        connection.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                connection.execute(sql, params)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        assert self.connection is not None
        return self.connection.execute(sql, params).fetchall()

    def _fetch_batches(self, from_seq: int, until_seq: int | None,
                       batch_rows: int) -> Generator[Sequence[Row], None, None]:
        assert self.connection is not None
        cursor = self.connection.execute(
            "SELECT seq, ts_ms, type, version, body, crc FROM txlog WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (from_seq, until_seq if until_seq is not None else 2**63 - 1))
        try:
            while True:
                batch = cursor.fetchmany(batch_rows)
                if not batch:
                    return
                yield batch
        finally:
            cursor.close()

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            finally:
                self.connection = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


# --- PostgreSQL ------------------------------------------------------------------------------
class PostgresTxLog(TxLog):
    """The same log in PostgreSQL (psycopg 3): tables perpdex_meta, perpdex_txlog,
    perpdex_checkpoints, perpdex_quarantine in the connection's schema; the writer holds a
    session advisory lock, released by the server when the connection ends (even on SIGKILL)."""

    backend = "postgresql"
    _TABLES: ClassVar[dict[str, str]] = {"meta": "perpdex_meta", "txlog": "perpdex_txlog",
                                         "checkpoints": "perpdex_checkpoints", "quarantine": "perpdex_quarantine"}
    _PARAM = "%s"
    _SEQ_KEY = "BIGINT PRIMARY KEY"

    def __init__(self, url: str, *, readonly: bool = True, create: bool = False, markets_toml: str | None = None,
                 markets_source: str = "", durability: str = "full", codec: TxCodec = DEFAULT_CODEC,
                 exchange_options: dict[str, Any] | None = None) -> None:
        super().__init__(_redact(url), readonly=readonly, durability=durability, codec=codec)
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise StoreError("PostgreSQL logs need psycopg (pip install 'psycopg[binary]')",
                             location=self.location) from exc
        self._psycopg = psycopg
        self.url = url
        self.connection: Any = None
        self._cursor_counter = 0
        try:
            self.connection = psycopg.connect(url, autocommit=True)
            self.connection.execute("SET synchronous_commit TO " + ("on" if durability == "full" else "off"))
            if readonly:
                self.connection.execute("SET default_transaction_read_only TO on")
            else:
                key = "SELECT pg_try_advisory_lock(hashtext(current_schema() || '.perpdex_txlog'))"
                if not self.connection.execute(key).fetchone()[0]:
                    raise LogLockedError("another session is writing this log", location=self.location)
            if create:
                exists = self.connection.execute("SELECT to_regclass('perpdex_meta') IS NOT NULL").fetchone()[0]
                if exists:
                    raise StoreError("a perpdex log already exists in this database/schema; open it instead",
                                     location=self.location)
                if markets_toml is None:
                    markets_toml, markets_source = default_markets_toml()
                self._initialize(markets_toml, markets_source, exchange_options)
            elif not self.connection.execute("SELECT to_regclass('perpdex_meta') IS NOT NULL").fetchone()[0]:
                raise NotALogError("no perpdex log in this database/schema", location=self.location)
            self._load_meta()
        except psycopg.Error as exc:
            self.close()
            raise NotALogError(f"cannot open the PostgreSQL log: {exc}".strip(), location=self.location) from exc
        except BaseException:
            self.close()
            raise

    def _db_errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg.Error,)

    def _insert_rows(self, rows: list[Row]) -> None:
        with self.connection.transaction(), self.connection.cursor() as cursor:
            cursor.executemany("INSERT INTO perpdex_txlog(seq, ts_ms, type, version, body, crc) "
                               "VALUES (%s, %s, %s, %s, %s, %s)", rows)

    def _execute_in_transaction(self, statements: list[tuple[str, tuple]]) -> None:
        with self.connection.transaction():
            for sql, params in statements:
                self.connection.execute(sql, params)

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.connection.execute(sql, params).fetchall()

    def _fetch_batches(self, from_seq: int, until_seq: int | None,
                       batch_rows: int) -> Generator[Sequence[Row], None, None]:
        self._cursor_counter += 1
        with (self.connection.transaction(),
              self.connection.cursor(name=f"perpdex_read_{self._cursor_counter}") as cursor):
            cursor.itersize = batch_rows
            cursor.execute("SELECT seq, ts_ms, type, version, body, crc FROM perpdex_txlog "
                           "WHERE seq >= %s AND seq <= %s ORDER BY seq",
                           (from_seq, until_seq if until_seq is not None else 2**63 - 1))
            while True:
                batch = cursor.fetchmany(batch_rows)
                if not batch:
                    return
                yield batch

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            finally:
                self.connection = None


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        pass
    return url


# --- opening -------------------------------------------------------------------------------
def _sqlite_path(location: str | os.PathLike) -> str:
    text = str(location)
    for prefix in ("sqlite:///", "sqlite://", "sqlite:"):
        if text.startswith(prefix):
            return text[len(prefix):] if prefix != "sqlite:///" else "/" + text[len(prefix):]
    return text


def open_log(location: str | os.PathLike, *, readonly: bool = True, durability: str = "full",
             codec: TxCodec = DEFAULT_CODEC) -> TxLog:
    """Open an existing log: a SQLite file path (or `sqlite:///path`) or a `postgresql://` URL.
    Raises NotALogError, NewerVersionError or LogLockedError (a second writer)."""
    if is_postgres_url(location):
        return PostgresTxLog(str(location), readonly=readonly, durability=durability, codec=codec)
    return SqliteTxLog(_sqlite_path(location), readonly=readonly, durability=durability, codec=codec)


def create_log(location: str | os.PathLike, markets_toml: str | None = None, *, markets_source: str = "",
               durability: str = "full", codec: TxCodec = DEFAULT_CODEC,
               exchange_options: dict[str, Any] | None = None) -> TxLog:
    """Create a new, empty log holding the market file text (default: the shipped markets) and
    any other Exchange constructor options (`{"liquidations_config": LiquidationsConfig(...)}`),
    open for writing. Refuses to overwrite an existing file or log."""
    if is_postgres_url(location):
        return PostgresTxLog(str(location), readonly=False, create=True, markets_toml=markets_toml,
                             markets_source=markets_source, durability=durability, codec=codec,
                             exchange_options=exchange_options)
    return SqliteTxLog(_sqlite_path(location), readonly=False, create=True, markets_toml=markets_toml,
                       markets_source=markets_source, durability=durability, codec=codec,
                       exchange_options=exchange_options)
