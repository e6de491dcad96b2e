"""The store: a durable, append-only log of applied transactions (SQLite or PostgreSQL), snapshots,
replay to any seq, and Parquet / DuckDB exports. It wraps the core and never changes it.

    from perpdex.store import DurableExchange, replay, export, query

    with DurableExchange.create("run.db") as dx:      # or .open("run.db") to recover
        events = dx.apply(tx)                          # durable (fsync) before it returns
        results = dx.apply_batch(txs)                  # group commit: one fsync for the batch
    print(replay("run.db").digest)                     # same state, bit for bit
    export("run.db", "out/")                           # fills.parquet, orders.parquet, ...
    query("run.db", "SELECT market_id, sum(notional_usd) FROM fills GROUP BY 1").table
"""

import logging

logging.getLogger("perpdex.store").addHandler(logging.NullHandler())  # a library: the app decides output

from perpdex.store.codec import (
    DEFAULT_CODEC,
    EncodedTx,
    TxCodec,
    decode_tx,
    encode_tx,
    register_tx_type,
    schema_fingerprint,
)
from perpdex.store.durable import DurableExchange
from perpdex.store.errors import (
    CodecError,
    ExportError,
    LogCorruptError,
    LogLockedError,
    LogWriteError,
    NewerVersionError,
    NotALogError,
    ReplayDivergenceError,
    SnapshotError,
    StoreError,
)
from perpdex.store.export import (
    TABLES,
    ExportResult,
    QueryResult,
    export,
    export_tables,
    query,
    register_event_exporter,
)
from perpdex.store.log import (
    FORMAT_VERSION,
    LogMeta,
    PostgresTxLog,
    SqliteTxLog,
    TxLog,
    create_log,
    open_log,
)
from perpdex.store.replay import ReplayResult, replay
from perpdex.store.snapshot import SnapshotInfo, SnapshotStore, default_snapshot_dir

__all__ = [
    "DEFAULT_CODEC", "FORMAT_VERSION", "TABLES", "CodecError", "DurableExchange", "EncodedTx", "ExportError",
    "ExportResult", "LogCorruptError", "LogLockedError", "LogMeta", "LogWriteError", "NewerVersionError",
    "NotALogError", "PostgresTxLog", "QueryResult", "ReplayDivergenceError", "ReplayResult", "SnapshotError",
    "SnapshotInfo", "SnapshotStore", "SqliteTxLog", "StoreError", "TxCodec", "TxLog", "create_log",
    "decode_tx", "default_snapshot_dir", "encode_tx", "export", "export_tables", "open_log", "query",
    "register_event_exporter", "register_tx_type", "replay", "schema_fingerprint",
]
