"""Snapshots of the whole exchange state at a log sequence number, so recovery replays only the tail.
A snapshot is used only after its bytes, its digest and the log's own record of that digest agree.

File format (`snapshot-<seq>.pdsnap`, one directory per log): the line `PERPDEX-SNAPSHOT\\n`, one
line of JSON header (format version, log id, seq, state digest, payload length and BLAKE2b), then
the payload: the `Exchange` pickled. Pickle is acceptable here because a snapshot is a local cache
written by this process for this process, never input from others; it is still never trusted:
loading checks that the same core code wrote it (a fingerprint of `perpdex.core`'s source: a
pickle only fits the classes that made it), the payload's length and hash (truncated / corrupt),
unpickles, recomputes
`Exchange.digest()` and compares it with the header and with the digest the log recorded at that
seq when the snapshot was taken (`TxLog.record_checkpoint`). Any failure raises SnapshotError
naming the file and seq, and recovery moves on to an older snapshot or to a full replay.

Writes are atomic: a temporary file, fsync, rename, fsync of the directory; a crash mid-write
leaves a `.tmp` file that is ignored and removed later.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from perpdex.core.exchange import Exchange
from perpdex.store.errors import NewerVersionError, SnapshotError

if TYPE_CHECKING:
    from perpdex.store.log import TxLog

SNAPSHOT_FORMAT_VERSION = 1
_CODE_FINGERPRINT: str | None = None


def core_code_fingerprint() -> str:
    """BLAKE2b of the source of `perpdex.core`. A pickled state only fits the classes that
    pickled it (a field added to Exchange would be missing from an older pickle), so a snapshot
    written by other core code is skipped and the log replayed instead."""
    global _CODE_FINGERPRINT
    if _CODE_FINGERPRINT is None:
        import perpdex.core.exchange

        root = Path(perpdex.core.exchange.__file__).parent
        digest = hashlib.blake2b(digest_size=16)
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        _CODE_FINGERPRINT = digest.hexdigest()
    return _CODE_FINGERPRINT
MAGIC = b"PERPDEX-SNAPSHOT\n"
_MAX_HEADER_BYTES = 64 * 1024
_NAME = re.compile(r"^snapshot-(\d{12,})\.pdsnap$")


@dataclass(frozen=True)
class SnapshotInfo:
    """Where a snapshot is and what its header says."""

    path: Path
    seq: int
    digest: str
    log_id: str
    format_version: int
    payload_bytes: int
    created_unix_ms: int


def default_snapshot_dir(location: str | os.PathLike) -> Path | None:
    """`<log file>.snapshots/` beside a SQLite log; None for a PostgreSQL URL (give one)."""
    from perpdex.store.log import _sqlite_path, is_postgres_url

    if is_postgres_url(location):
        return None
    return Path(_sqlite_path(location) + ".snapshots")


class SnapshotStore:
    """A directory of snapshots of one log, newest kept (`keep`), older ones pruned."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self.directory = Path(directory)
        self.keep = keep

    def paths(self) -> list[tuple[int, Path]]:
        """(seq, path) of every snapshot file by name, newest first (contents not checked)."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found, reverse=True)

    def path_for(self, seq: int) -> Path:
        return self.directory / f"snapshot-{seq:012d}.pdsnap"

    # --- writing -----------------------------------------------------------------------------
    def write(self, exchange: Exchange, seq: int, log_id: str, digest: str | None = None) -> SnapshotInfo:
        """Write the state after `seq` atomically; returns its info. `digest` defaults to
        `exchange.digest()` (pass it when already computed)."""
        digest = digest if digest is not None else exchange.digest()
        payload = pickle.dumps(exchange, protocol=pickle.HIGHEST_PROTOCOL)
        created = int(time.time() * 1000)
        header = {"format_version": SNAPSHOT_FORMAT_VERSION, "log_id": log_id, "seq": seq, "digest": digest,
                  "tx_count": exchange.tx_count, "payload_bytes": len(payload),
                  "payload_blake2b": hashlib.blake2b(payload, digest_size=32).hexdigest(),
                  "pickle_protocol": pickle.HIGHEST_PROTOCOL, "python": sys.version.split()[0],
                  "core_code": core_code_fingerprint(),
                  "created_unix_ms": created}
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path_for(seq)
        temporary = self.directory / f".{final.name}.{os.getpid()}.tmp"
        with open(temporary, "wb") as file:
            file.write(MAGIC)
            file.write(json.dumps(header, sort_keys=True).encode() + b"\n")
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, final)
        _fsync_directory(self.directory)
        self.prune()
        return SnapshotInfo(final, seq, digest, log_id, SNAPSHOT_FORMAT_VERSION, len(payload), created)

    def prune(self) -> None:
        """Keep the newest `keep` snapshots; remove leftovers of interrupted writes."""
        for _, path in self.paths()[self.keep:]:
            path.unlink(missing_ok=True)
        if self.directory.is_dir():
            for path in self.directory.glob(".snapshot-*.tmp"):
                pid = path.name.rsplit(".", 2)[-2]
                if not pid.isdigit() or int(pid) == os.getpid() or not _process_alive(int(pid)):
                    path.unlink(missing_ok=True)

    # --- reading -----------------------------------------------------------------------------
    def read_header(self, path: Path) -> tuple[dict, int]:
        """(header, payload offset) of a snapshot file; SnapshotError if it is not one (its seq
        then taken from the file name)."""
        location = str(path)
        match = _NAME.match(path.name)
        name_seq = int(match.group(1)) if match else None
        try:
            with open(path, "rb") as file:
                head = file.read(len(MAGIC) + _MAX_HEADER_BYTES)
        except OSError as exc:
            raise SnapshotError(f"cannot read: {exc.strerror}", location=location, seq=name_seq) from exc
        if not head.startswith(MAGIC):
            raise SnapshotError("not a perpdex snapshot (bad magic; truncated or overwritten?)", location=location,
                                seq=name_seq)
        end = head.find(b"\n", len(MAGIC))
        if end < 0:
            raise SnapshotError("truncated header", location=location, seq=name_seq)
        try:
            header = json.loads(head[len(MAGIC):end])
            version = int(header["format_version"])
            header["seq"] = int(header["seq"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(f"unreadable header: {exc}", location=location, seq=name_seq) from None
        if name_seq is not None and header["seq"] != name_seq:
            raise SnapshotError(f"header says seq {header['seq']}, the file name {name_seq}", location=location,
                                seq=name_seq)
        if version > SNAPSHOT_FORMAT_VERSION:
            raise NewerVersionError(f"snapshot format {version} is newer than this perpdex reads (up to "
                                    f"{SNAPSHOT_FORMAT_VERSION})", location=location, seq=header["seq"])
        return header, end + 1

    def load(self, path: Path, log: TxLog | None = None) -> tuple[Exchange, SnapshotInfo]:
        """The exchange a snapshot holds, after every check (see the module docstring). With
        `log`, also checks it belongs to that log and matches the digest the log recorded.
        Raises SnapshotError (or NewerVersionError) naming the file and seq."""
        location = str(path)
        header, offset = self.read_header(path)
        seq = header["seq"]
        try:
            digest, log_id = str(header["digest"]), str(header["log_id"])
            expected_bytes, expected_hash = int(header["payload_bytes"]), str(header["payload_blake2b"])
        except (KeyError, ValueError, TypeError) as exc:
            raise SnapshotError(f"header lacks {exc}", location=location, seq=seq) from None
        if header.get("core_code") != core_code_fingerprint():
            raise SnapshotError("written by other perpdex core code (the state's classes may differ); "
                                "replaying from the log instead", location=location, seq=seq)
        if log is not None:
            if log_id != log.meta.log_id:
                raise SnapshotError(f"belongs to another log (log id {log_id}, this log is {log.meta.log_id})",
                                    location=location, seq=seq)
            if seq > log.durable_seq:
                raise SnapshotError(f"is past the end of the log ({log.location} ends at seq {log.durable_seq}): "
                                    f"the log lost its tail or the snapshot is not from it",
                                    location=location, seq=seq)
            recorded = log.checkpoint(seq)
            if recorded is None:
                raise SnapshotError(f"the log records no digest at seq {seq}, so the snapshot cannot be checked",
                                    location=location, seq=seq)
            if recorded != digest:
                raise SnapshotError(f"digest {digest[:16]}... differs from the log's {recorded[:16]}... at this seq",
                                    location=location, seq=seq)
        try:
            with open(path, "rb") as file:
                file.seek(offset)
                payload = file.read(expected_bytes + 1)
        except OSError as exc:
            raise SnapshotError(f"cannot read: {exc.strerror}", location=location, seq=seq) from exc
        if len(payload) != expected_bytes:
            state = "truncated" if len(payload) < expected_bytes else "longer than its header says"
            raise SnapshotError(f"{state}: payload has {len(payload):,} bytes, header says {expected_bytes:,}",
                                location=location, seq=seq)
        if hashlib.blake2b(payload, digest_size=32).hexdigest() != expected_hash:
            raise SnapshotError("payload hash mismatch: the file is corrupt", location=location, seq=seq)
        try:
            exchange = pickle.loads(payload)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable snapshot
            raise SnapshotError(f"payload does not load: {type(exc).__name__}: {exc}", location=location,
                                seq=seq) from None
        if not isinstance(exchange, Exchange):
            raise SnapshotError(f"payload is a {type(exchange).__name__}, not an Exchange", location=location, seq=seq)
        try:
            actual = exchange.digest()
        except Exception as exc:  # noqa: BLE001 - a state from other code may not even hash
            raise SnapshotError(f"state cannot be digested ({type(exc).__name__}: {exc}); written by other code?",
                                location=location, seq=seq) from None
        if actual != digest:
            raise SnapshotError(f"state digest {actual[:16]}... differs from the header's {digest[:16]}...",
                                location=location, seq=seq)
        if exchange.tx_count != seq:
            raise SnapshotError(f"state has {exchange.tx_count} transactions applied, expected {seq}",
                                location=location, seq=seq)
        if log is not None:
            fresh = Exchange(log.markets(), **log.exchange_kwargs())
            if [market.params for market in exchange.markets.values()] != [m.params for m in fresh.markets.values()]:
                raise SnapshotError("market parameters differ from the log's market file", location=location, seq=seq)
            if getattr(exchange, "liquidations_config", None) != getattr(fresh, "liquidations_config", None):
                raise SnapshotError("liquidation settings differ from the log's", location=location, seq=seq)
        info = SnapshotInfo(path, seq, digest, log_id, int(header["format_version"]), expected_bytes,
                            int(header.get("created_unix_ms", 0)))
        return exchange, info


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
