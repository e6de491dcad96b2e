"""`DurableExchange`: an in-memory `Exchange` whose every accepted transaction is durable in the
log before its events are returned; opening one recovers it from the newest good snapshot + tail.

Why apply first, then log (and why that is still write-ahead for everything acknowledged):
the log must hold exactly the accepted transactions, and only `Exchange.apply` knows whether a
transaction is accepted; it validates and commits atomically, and a rejection (PerpdexError)
changes nothing. So each transaction is (1) encoded, which checks its field types, (2) applied
in memory, (3) appended to the log and committed with fsync, and only then (4) are its events
returned: nobody outside hears of a transaction before it is durable. A crash between (2) and
(3) loses a transaction that was never acknowledged, and recovery, which replays the log, simply
does not have it: the same outcome as a crash before (1). A crash after (3) and before (4) leaves
a durable transaction whose caller saw no answer; it is in the log and replayed once (a client
that retries must use an idempotency key such as `client_id`, as on any exchange). Replay applies
each row exactly once, so nothing is applied twice.

The one case this order must handle itself: the append fails while the process lives (disk full,
I/O error, database gone). The in-memory state is then one transaction ahead of the log, so the
DurableExchange marks itself broken and refuses every later transaction (LogWriteError) until it
is reopened, which rebuilds the state from the log. The same holds when `Exchange.apply` raises
something other than a PerpdexError (a bug: the state may be half-written).

Group commit (`apply_batch`): the caller hands over several transactions, each is applied in
memory in order, all accepted ones are committed with one fsync, then every result is returned.
Between the in-memory apply and the commit, a later transaction of the batch sees the earlier
ones' effects: they are all acknowledged together or not at all, so no caller ever sees a result
that depends on an unacknowledged transaction. Readers of `exchange` in the same process may see
applied-but-not-yet-durable state during a batch; treat it as a cache, the log as the truth.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any, Self

from perpdex.core.errors import PerpdexError
from perpdex.core.events import Event
from perpdex.core.exchange import Exchange
from perpdex.store.codec import DEFAULT_CODEC, TxCodec
from perpdex.store.errors import (
    CodecError,
    LogCorruptError,
    LogWriteError,
    StoreError,
)
from perpdex.store.log import TxLog, create_log, open_log
from perpdex.store.replay import ProgressCallback, ReplayResult, genesis, replay, write_snapshot
from perpdex.store.snapshot import SnapshotInfo, SnapshotStore, default_snapshot_dir

logger = logging.getLogger("perpdex.store")

DEFAULT_SNAPSHOT_EVERY = 10_000


class DurableExchange:
    """Write-ahead wrapper around an in-memory `Exchange` (see the module docstring).

    Build it with `create` (new log) or `open` (recover an existing one). Read the state through
    `exchange`; change it only through `apply` / `apply_batch`, never `exchange.apply`.
    """

    def __init__(self, log: TxLog, exchange: Exchange, *, snapshots: SnapshotStore | None = None,
                 snapshot_every: int | None = DEFAULT_SNAPSHOT_EVERY, recovery: ReplayResult | None = None,
                 codec: TxCodec = DEFAULT_CODEC) -> None:
        if log.readonly:
            raise StoreError("a DurableExchange needs the log open for writing", location=log.location)
        if exchange.tx_count != log.durable_seq:
            raise StoreError(f"the exchange has {exchange.tx_count} transactions applied but the log holds "
                             f"{log.durable_seq}", location=log.location)
        if snapshot_every is not None and snapshot_every < 1:
            raise ValueError("snapshot_every must be >= 1 (or None for no snapshots)")
        self._log = log
        self._exchange = exchange
        self._codec = codec
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every if snapshots is not None else None
        self.recovery = recovery
        self.snapshot_failures: list[str] = []
        self._broken: BaseException | None = None
        # recovered from a snapshot at S (or from genesis: 0): the next one is due N after it
        self._last_snapshot_seq = recovery.start_seq if recovery is not None else log.durable_seq

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def create(cls, location: str | os.PathLike, markets_toml: str | None = None, *, markets_source: str = "",
               snapshots: SnapshotStore | str | os.PathLike | bool | None = True,
               snapshot_every: int | None = DEFAULT_SNAPSHOT_EVERY, durability: str = "full",
               liquidations_config: Any = None, codec: TxCodec = DEFAULT_CODEC) -> DurableExchange:
        """A new, empty log at `location` on this market file text (default: shipped markets) and
        liquidation settings (default: the core's). `snapshots`: True for `<log>.snapshots/`
        beside a SQLite log, a directory, or None."""
        options = {"liquidations_config": liquidations_config} if liquidations_config is not None else None
        log = create_log(location, markets_toml, markets_source=markets_source, durability=durability, codec=codec,
                         exchange_options=options)
        try:
            store = _store(location, snapshots)
            return cls(log, genesis(log), snapshots=store, snapshot_every=snapshot_every, codec=codec)
        except BaseException:
            log.close()
            raise

    @classmethod
    def open(cls, location: str | os.PathLike, *, snapshots: SnapshotStore | str | os.PathLike | bool | None = True,
             snapshot_every: int | None = DEFAULT_SNAPSHOT_EVERY, durability: str = "full",
             progress: ProgressCallback | None = None, quarantine_damaged_tail: bool = False,
             codec: TxCodec = DEFAULT_CODEC) -> DurableExchange:
        """Recover an existing log: newest good snapshot (each skipped one is reported in
        `recovery.issues`), then the tail. A damaged row raises LogCorruptError naming the file
        and seq, unless `quarantine_damaged_tail`, which moves that row and every later one to the
        log's quarantine table (kept, not deleted), reports it, and recovers to the row before."""
        log = open_log(location, readonly=False, durability=durability, codec=codec)
        try:
            store = _store(location, snapshots)
            issues: list[str] = []
            while True:
                damaged: tuple[int, str] | None = None
                try:
                    result = replay(log, snapshots=store, progress=progress)
                    break
                except (LogCorruptError, CodecError) as exc:
                    if not quarantine_damaged_tail or exc.seq is None or exc.seq > log.durable_seq:
                        raise
                    damaged = (exc.seq, str(exc))
                bad_seq, why = damaged  # quarantined outside the handler: the failed read is over
                moved = log.quarantine_from(bad_seq)
                message = (f"damaged log tail quarantined: {moved} row(s) from seq {bad_seq} moved to the "
                           f"quarantine table ({why}); recovered to seq {bad_seq - 1}")
                logger.warning(message)
                issues.append(message)
            result.issues[:0] = issues
            return cls(log, result.exchange, snapshots=store, snapshot_every=snapshot_every, recovery=result,
                       codec=codec)
        except BaseException:
            log.close()
            raise

    @classmethod
    def open_or_create(cls, location: str | os.PathLike, markets_toml: str | None = None, **options: Any) -> DurableExchange:
        """`open` if a log exists at `location`, else `create` (SQLite paths only)."""
        path = str(location)
        if not path.startswith(("postgresql://", "postgres://")) and not os.path.exists(path):
            create_options = {k: v for k, v in options.items() if k not in ("progress", "quarantine_damaged_tail")}
            return cls.create(location, markets_toml, **create_options)
        return cls.open(location, **options)

    # --- reading -----------------------------------------------------------------------------
    @property
    def exchange(self) -> Exchange:
        """The in-memory state (read it; do not call its `apply`)."""
        return self._exchange

    @property
    def log(self) -> TxLog:
        return self._log

    @property
    def last_seq(self) -> int:
        """Seq of the last durable transaction; the state is the one after it."""
        return self._log.durable_seq

    @property
    def broken(self) -> BaseException | None:
        """Why this instance refuses transactions (None while healthy)."""
        return self._broken

    # --- writing -----------------------------------------------------------------------------
    def apply(self, tx: Any) -> list[Event]:
        """Apply one transaction and make it durable (one commit, one fsync) before returning
        its events. Raises its PerpdexError when rejected (nothing applied, nothing logged),
        LogWriteError when the log could not be written (this instance is then broken)."""
        self._check_usable()
        encoded = self._codec.encode(tx)
        try:
            events = self._exchange.apply(tx)
        except PerpdexError:
            raise
        except BaseException as exc:
            self._break(exc)
            raise
        try:
            self._log.append(encoded)
            self._log.commit()
        except BaseException as exc:
            self._break(exc)
            raise
        self._maybe_snapshot()
        return events

    def apply_batch(self, txs: Iterable[Any]) -> list[list[Event] | PerpdexError]:
        """Group commit: apply each transaction in order, commit every accepted one with one
        fsync, then return per transaction its events or the PerpdexError that rejected it."""
        self._check_usable()
        results: list[list[Event] | PerpdexError] = []
        encode, apply, append = self._codec.encode, self._exchange.apply, self._log.append
        try:
            for tx in txs:
                try:
                    encoded = encode(tx)
                    events = apply(tx)
                except PerpdexError as rejection:
                    results.append(rejection)
                    continue
                append(encoded)
                results.append(events)
            self._log.commit()
        except BaseException as exc:
            self._break(exc)
            raise
        self._maybe_snapshot()
        return results

    def snapshot(self) -> SnapshotInfo:
        """Write a snapshot of the current state now (and record its digest in the log)."""
        self._check_usable()
        if self.snapshots is None:
            raise StoreError("no snapshot directory configured", location=self._log.location)
        info = write_snapshot(self._log, self.snapshots, self._exchange, self._log.durable_seq)
        self._last_snapshot_seq = info.seq
        return info

    def _maybe_snapshot(self) -> None:
        every = self.snapshot_every
        if every is None or self._log.durable_seq - self._last_snapshot_seq < every:
            return
        try:
            self.snapshot()
        except (StoreError, OSError) as exc:
            # the transactions are durable; only recovery speed suffers, so say so and go on
            message = f"snapshot at seq {self._log.durable_seq} failed: {exc}"
            logger.warning(message)
            self.snapshot_failures.append(message)
            self._last_snapshot_seq = self._log.durable_seq

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise LogWriteError(f"this DurableExchange stopped after a failure ({self._broken!r}); its in-memory "
                                f"state may be ahead of the log: reopen it to recover from the log",
                                location=self._log.location, seq=self._log.durable_seq + 1)
        if self._log.connection is None:  # type: ignore[attr-defined]
            raise StoreError("the log is closed", location=self._log.location)

    def _break(self, exc: BaseException) -> None:
        self._broken = exc
        self._log.discard_pending()
        logger.error("DurableExchange on %s stopped: %r", self._log.location, exc)

    # --- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DurableExchange({self._log.location!r}, last_seq={self.last_seq})"


def _store(location: str | os.PathLike, snapshots: SnapshotStore | str | os.PathLike | bool | None) -> SnapshotStore | None:
    if snapshots is None or snapshots is False:
        return None
    if isinstance(snapshots, SnapshotStore):
        return snapshots
    if snapshots is True:
        directory = default_snapshot_dir(location)
        if directory is None:
            raise StoreError("a PostgreSQL log needs an explicit snapshot directory (snapshots=PATH)",
                             location=str(location))
        return SnapshotStore(directory)
    return SnapshotStore(snapshots)
