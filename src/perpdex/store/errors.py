"""Typed errors of the store: a stable code, the file (or URL) at fault and the sequence number.
Not PerpdexErrors on purpose: those reject a transaction, these say stored data cannot be trusted."""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """Base of every store problem. `code` is stable; `location` is the log file, URL or snapshot
    file at fault; `seq` the sequence number concerned (None when the whole file is)."""

    code = "store.error"

    def __init__(self, message: str, *, location: str | None = None, seq: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.seq = seq

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        at = f"seq {self.seq}: " if self.seq is not None else ""
        return f"{self.code}: {where}{at}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "location": self.location, "seq": self.seq, "message": self.message}


class CodecError(StoreError):
    """A stored transaction that does not decode (bad JSON, wrong field types, unknown type)."""

    code = "store.bad_encoding"


class NewerVersionError(StoreError):
    """Written by a newer perpdex: a log format, a row's type version or a snapshot format we
    do not know. Never guessed at."""

    code = "store.newer_version"


class NotALogError(StoreError):
    """The file or database is not a perpdex log (or does not exist)."""

    code = "store.not_a_log"


class LogCorruptError(StoreError):
    """A row that fails its checksum or does not decode, a gap in the sequence, an unreadable file."""

    code = "store.corrupt_log"


class LogLockedError(StoreError):
    """Another writer holds the log; a log has one writer at a time."""

    code = "store.locked"


class LogWriteError(StoreError):
    """Appending to the log failed. The transaction was applied in memory but is not durable, so
    the `DurableExchange` that raised it refuses further transactions until reopened."""

    code = "store.write_failed"


class ReplayDivergenceError(StoreError):
    """Replay disagrees with the log: a logged transaction was rejected, or the state digest at a
    checkpoint differs. The log was written by other code, or the core is not deterministic."""

    code = "store.replay_diverged"


class SnapshotError(StoreError):
    """A snapshot that is truncated, corrupt, from another log, or whose state does not match the
    digest the log recorded for its sequence number. Recovery skips it and says so."""

    code = "store.bad_snapshot"


class ExportError(StoreError):
    """An export or query that cannot be carried out (bad output folder, bad SQL)."""

    code = "store.export_failed"
