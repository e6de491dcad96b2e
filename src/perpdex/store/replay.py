"""Rebuild the exchange from a log: from genesis (the log's market file) or from the newest good
snapshot, then the tail, up to the end or `until_seq`. What recovery skipped, it says.

Every logged transaction was accepted when it was appended, so a rejection on replay is not bad
input but a divergence (the log was written by other code, or the core lost determinism) and
raises ReplayDivergenceError naming the file and seq. A damaged row raises LogCorruptError /
CodecError at its seq: replay never skips a row.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from perpdex.core.errors import PerpdexError
from perpdex.core.events import Event
from perpdex.core.exchange import Exchange
from perpdex.store.errors import ReplayDivergenceError, StoreError
from perpdex.store.log import TxLog, open_log
from perpdex.store.snapshot import SnapshotInfo, SnapshotStore, default_snapshot_dir

logger = logging.getLogger("perpdex.store")

ProgressCallback = Callable[[int, int], None]
"""progress(done, total): transactions replayed so far and to replay in all."""

EventsCallback = Callable[[int, Any, list[Event], Exchange], None]
"""on_events(seq, tx, events, exchange) after each transaction is applied."""

PROGRESS_EVERY = 8192


@dataclass
class ReplayResult:
    """The rebuilt exchange and how it was reached."""

    exchange: Exchange
    last_seq: int  # the state is the one after this seq
    replayed: int  # transactions applied from the log (the tail, when starting from a snapshot)
    snapshot: SnapshotInfo | None  # where replay started, None for genesis
    seconds: float  # reading, decoding and applying; the digest is computed on first use
    issues: list[str] = field(default_factory=list)  # snapshots skipped and why
    checkpoints_verified: int = 0
    known_digest: str | None = None

    @property
    def digest(self) -> str:
        """`Exchange.digest()` of the rebuilt state (computed once, on first use)."""
        if self.known_digest is None:
            self.known_digest = self.exchange.digest()
        return self.known_digest

    @property
    def start_seq(self) -> int:
        return self.snapshot.seq if self.snapshot is not None else 0

    @property
    def tx_per_s(self) -> float:
        return self.replayed / self.seconds if self.seconds > 0 else float("inf")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (restored after). Replay builds a large, long-lived
    state and the core makes almost no cyclic garbage (139 objects over 155,000 transactions of
    the apply benchmark's flow), while the collector's full passes over the growing state cost
    about 10% of replay time. Reference counting still frees everything else at once."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def genesis(log: TxLog) -> Exchange:
    """A fresh exchange on the log's own market file and options."""
    return Exchange(log.markets(), **log.exchange_kwargs())


def load_best_snapshot(log: TxLog, snapshots: SnapshotStore, until_seq: int | None = None,
                       issues: list[str] | None = None) -> tuple[Exchange, SnapshotInfo] | None:
    """The newest snapshot at or before `until_seq` (and the log's end) that passes every check;
    each one rejected is logged as a warning and described in `issues`."""
    for seq, path in snapshots.paths():
        if until_seq is not None and seq > until_seq:
            continue  # later than asked for: not a problem (one past the log's end is, and load says so)
        try:
            return snapshots.load(path, log)
        except StoreError as exc:
            message = f"snapshot skipped: {exc}"
            logger.warning(message)
            if issues is not None:
                issues.append(message)
    return None


def replay(log: TxLog | str | os.PathLike, *, until_seq: int | None = None,
           snapshots: SnapshotStore | str | os.PathLike | None | bool = None,
           progress: ProgressCallback | None = None, on_events: EventsCallback | None = None,
           verify_checkpoints: bool = False, snapshot_every: int | None = None) -> ReplayResult:
    """Rebuild the state after `until_seq` (default: the whole log).

    `log`: an open TxLog or a location (opened read-only, closed after). `snapshots`: a store,
    a directory, True for the log's default directory, None/False for a replay from genesis.
    `verify_checkpoints` compares the digest at every checkpoint the log recorded on the way
    (ReplayDivergenceError on a difference). `snapshot_every` writes a snapshot (and records its
    checkpoint, so the log must be open for writing) every N transactions on the way.
    Raises StoreError subclasses naming the file and seq; `until_seq` past the log's end too.
    """
    with gc_paused():
        return _replay(log, until_seq=until_seq, snapshots=snapshots, progress=progress, on_events=on_events,
                       verify_checkpoints=verify_checkpoints, snapshot_every=snapshot_every)


def _replay(log: TxLog | str | os.PathLike, *, until_seq: int | None,
            snapshots: SnapshotStore | str | os.PathLike | None | bool, progress: ProgressCallback | None,
            on_events: EventsCallback | None, verify_checkpoints: bool, snapshot_every: int | None) -> ReplayResult:
    if not isinstance(log, TxLog):
        with open_log(log, readonly=snapshot_every is None) as opened:
            return replay(opened, until_seq=until_seq, snapshots=snapshots, progress=progress,
                          on_events=on_events, verify_checkpoints=verify_checkpoints,
                          snapshot_every=snapshot_every)
    started = time.perf_counter()
    if until_seq is not None and (until_seq < 0 or until_seq > log.durable_seq):
        raise StoreError(f"--until {until_seq} is outside the log, which holds seq 1..{log.durable_seq}",
                         location=log.location, seq=until_seq)
    store = _snapshot_store(log, snapshots)
    issues: list[str] = []
    found = load_best_snapshot(log, store, until_seq, issues) if store is not None else None
    exchange, info = found if found is not None else (genesis(log), None)
    start = info.seq if info is not None else 0
    end = log.durable_seq if until_seq is None else until_seq
    total = end - start
    checkpoints = log.checkpoints() if verify_checkpoints else {}
    if snapshot_every is not None and store is None:
        raise StoreError("snapshot_every needs a snapshot directory", location=log.location)
    next_snapshot = (start // snapshot_every + 1) * snapshot_every if snapshot_every else None
    apply = exchange.apply
    done = 0
    verified = 0
    if progress is not None:
        progress(0, total)
    seq = start
    for seq, tx in log.records(start + 1, end):
        try:
            events = apply(tx)
        except PerpdexError as exc:
            raise ReplayDivergenceError(f"the logged {type(tx).__name__} is rejected on replay: {exc}",
                                        location=log.location, seq=seq) from exc
        except Exception as exc:  # a bug, or a state from other code: name the row, keep the cause
            raise ReplayDivergenceError(f"applying the logged {type(tx).__name__} raised {type(exc).__name__}: "
                                        f"{exc} (a bug in perpdex?)", location=log.location, seq=seq) from exc
        if on_events is not None:
            on_events(seq, tx, events, exchange)
        done += 1
        if checkpoints and seq in checkpoints:
            verified += _verify(log, exchange, seq, checkpoints[seq])
        if next_snapshot is not None and seq >= next_snapshot:
            assert store is not None and snapshot_every is not None
            write_snapshot(log, store, exchange, seq)
            next_snapshot = (seq // snapshot_every + 1) * snapshot_every
        if progress is not None and not done % PROGRESS_EVERY:
            progress(done, total)
    if seq != end:
        raise StoreError(f"the log ends at seq {seq}, expected {end}", location=log.location, seq=seq + 1)
    if progress is not None:
        progress(done, total)
    digest = None
    if checkpoints and end in checkpoints and end == start:
        digest = exchange.digest()
        verified += _verify(log, exchange, end, checkpoints[end], digest)
    return ReplayResult(exchange, end, done, info, time.perf_counter() - started, issues, verified, digest)


def _verify(log: TxLog, exchange: Exchange, seq: int, recorded: str, digest: str | None = None) -> int:
    actual = digest if digest is not None else exchange.digest()
    if actual != recorded:
        raise ReplayDivergenceError(f"state digest {actual[:16]}... differs from the {recorded[:16]}... the log "
                                    f"recorded here", location=log.location, seq=seq)
    return 1


def write_snapshot(log: TxLog, store: SnapshotStore, exchange: Exchange, seq: int) -> SnapshotInfo:
    """Record the digest after `seq` in the log, then write the snapshot file (in that order, so
    a snapshot on disk always has its digest in the log)."""
    digest = exchange.digest()
    log.record_checkpoint(seq, digest)
    return store.write(exchange, seq, log.meta.log_id, digest)


def _snapshot_store(log: TxLog, snapshots: SnapshotStore | str | os.PathLike | None | bool) -> SnapshotStore | None:
    if snapshots is None or snapshots is False:
        return None
    if isinstance(snapshots, SnapshotStore):
        return snapshots
    if snapshots is True:
        directory = default_snapshot_dir(log.location)
        if directory is None:
            raise StoreError("a PostgreSQL log needs an explicit snapshot directory", location=log.location)
        return SnapshotStore(directory)
    return SnapshotStore(snapshots)
