"""Batches: the transactions the sequencer closed together, their state diff, the roots before and after, and
the public header the L1 contract sees. Plus where batches and transactions are kept (memory, a file, the store).

A `Batch` is the full record (the witness a re-execution prover needs); `BatchHeader` is its public part (roots,
digests of transactions and diff, deposits and withdrawals, forced-request resolutions). Digests use BLAKE2s over
canonical bytes (the store codec's transaction bodies), as StarkEx's L1 uses keccak over program output.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from perpdex.core.events import Event
from perpdex.core.exchange import Exchange
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, Withdraw
from perpdex.rollup.encoding import GlobalState, LeafData
from perpdex.rollup.tree import LeafUpdate

BATCH_FORMAT = 2  # 2: the state root commits to the nonces tree


class BatchPolicy(NamedTuple):
    """Close a batch after `max_txs` transactions or once `max_age_ms` of transaction time has passed since its
    first one (None: count only). StarkEx closes batches within up to 4 h (REFERENCES.md, StarkEx figures)."""

    max_txs: int = 10_000
    max_age_ms: int | None = 4 * 3_600_000


class Modification(NamedTuple):
    """A collateral movement the L1 contract must honour: a deposit it holds as pending, or a withdrawal it
    makes claimable once the batch is accepted (StarkEx program output "modifications")."""

    subaccount_id: SubaccountId
    amount_quantums: int  # > 0 deposit, < 0 withdrawal


class ForcedResolution(NamedTuple):
    """How a batch served an L1 forced request: applied by the transactions at `tx_indices`, or rejected: then
    `rejected_tx` was tried just before the transaction at `tx_indices[0]` and the core refused it with `code`
    (it is not in the log; the verifier re-applies it there and must see the same rejection)."""

    request_id: int
    applied: bool
    tx_indices: tuple[int, ...]
    code: str = ""
    rejected_tx: Any = None
    action: tuple = ()  # what was requested, as the L1 contract stores it (`forced_action` in sequencer.py)


class SignedEntry(NamedTuple):
    """A signature a batch carries for its transaction at `tx_index` (see `perpdex.rollup.signatures`)."""

    tx_index: int
    envelope: Any  # signatures.SignedEnvelope


class BatchHeader(NamedTuple):
    """What the L1 contract sees of a batch."""

    batch_id: int
    prev_root: int
    root: int
    liabilities_root: tuple[int, int] | None
    tx_digest: str
    diff_digest: str
    modifications: tuple[Modification, ...]
    forced: tuple[ForcedResolution, ...]
    collateral_held_quote_quantums: int
    n_txs: int
    n_trades: int
    closed_ts_ms: int

    def digest(self) -> str:
        """One hex digest of the whole header (what a proof commits to and a DA committee signs)."""
        body = json.dumps([self.batch_id, hex(self.prev_root), hex(self.root),
                           [hex(x) for x in self.liabilities_root] if self.liabilities_root else None,
                           self.tx_digest, self.diff_digest,
                           [[str(m.subaccount_id), m.amount_quantums] for m in self.modifications],
                           [[f.request_id, f.applied, list(f.tx_indices), f.code, list(f.action)] for f in self.forced],
                           self.collateral_held_quote_quantums, self.n_txs,
                           self.n_trades, self.closed_ts_ms], separators=(",", ":"))
        return hashlib.blake2s(body.encode()).hexdigest()


@dataclass(frozen=True)
class Batch:
    """A closed batch: its transactions (in order), signatures, state diff and commitments."""

    batch_id: int
    first_seq: int  # seq in the tx store of the first transaction (1-based; first_seq > last_seq if empty)
    last_seq: int
    txs: tuple[Any, ...]
    signatures: tuple[SignedEntry, ...]
    forced: tuple[ForcedResolution, ...]
    prev_root: int
    root: int
    positions_root: int
    global_fields: tuple[int, ...]
    changed: tuple[LeafUpdate, ...]  # the state diff: every leaf whose preimage changed
    new_positions: tuple[tuple[SubaccountId, int], ...]
    liabilities_root: tuple[int, int] | None
    opened_ts_ms: int
    closed_ts_ms: int
    n_trades: int  # fills (maker-taker matches) the batch executed
    nodes_rehashed: int
    leaf_hashes: int
    root_update_s: float
    liabilities_s: float
    backend: str
    height: int

    @property
    def global_state(self) -> GlobalState:
        return GlobalState.from_fields(self.global_fields)

    def modifications(self) -> tuple[Modification, ...]:
        mods = []
        for tx in self.txs:
            if type(tx) is Deposit:
                mods.append(Modification(tx.subaccount_id, tx.amount_quantums))
            elif type(tx) is Withdraw:
                mods.append(Modification(tx.subaccount_id, -tx.amount_quantums))
        return tuple(mods)

    def tx_digest(self) -> str:
        return self._tx_digest

    def diff_digest(self) -> str:
        return self._diff_digest

    # computed once per batch (the prover, the contract and the node each ask; a batch is immutable, and
    # dataclasses.replace, as tampering tests do, makes a new batch with its own cache)
    @cached_property
    def _tx_digest(self) -> str:
        return tx_digest(self.txs)

    @cached_property
    def _diff_digest(self) -> str:
        return hashlib.blake2s(diff_bytes(self.changed, self.global_fields)).hexdigest()

    def header(self) -> BatchHeader:
        return BatchHeader(self.batch_id, self.prev_root, self.root, self.liabilities_root, self.tx_digest(),
                           self.diff_digest(), self.modifications(), self.forced,
                           self.global_state.collateral_held_quote_quantums, len(self.txs), self.n_trades,
                           self.closed_ts_ms)

    # --- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict:
        from perpdex.rollup.signatures import envelope_to_json
        from perpdex.store.codec import encode_tx

        return {
            "format": BATCH_FORMAT, "batch_id": self.batch_id, "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "txs": [list(encode_tx(tx)[:3]) for tx in self.txs],
            "signatures": [[s.tx_index, envelope_to_json(s.envelope)] for s in self.signatures],
            "forced": [forced_to_json(f) for f in self.forced],
            "prev_root": hex(self.prev_root), "root": hex(self.root), "positions_root": hex(self.positions_root),
            "global_fields": [hex(x) for x in self.global_fields],
            "changed": [[u.position_id, u.subaccount_id.owner, u.subaccount_id.number,
                         [hex(x) for x in u.leaf.fields()], hex(u.leaf_hash)] for u in self.changed],
            "new_positions": [[sid.owner, sid.number, pid] for sid, pid in self.new_positions],
            "liabilities_root": [hex(x) for x in self.liabilities_root] if self.liabilities_root else None,
            "opened_ts_ms": self.opened_ts_ms, "closed_ts_ms": self.closed_ts_ms, "n_trades": self.n_trades,
            "nodes_rehashed": self.nodes_rehashed, "leaf_hashes": self.leaf_hashes,
            "root_update_s": self.root_update_s, "liabilities_s": self.liabilities_s,
            "backend": self.backend, "height": self.height,
        }

    @classmethod
    def from_json(cls, data: dict) -> Batch:
        from perpdex.rollup.signatures import envelope_from_json
        from perpdex.store.codec import decode_tx

        if data.get("format") != BATCH_FORMAT:
            raise ValueError(f"unknown batch format {data.get('format')!r}")
        return cls(
            batch_id=data["batch_id"], first_seq=data["first_seq"], last_seq=data["last_seq"],
            txs=tuple(decode_tx(name, version, body) for name, version, body in data["txs"]),
            signatures=tuple(SignedEntry(i, envelope_from_json(e)) for i, e in data["signatures"]),
            forced=tuple(forced_from_json(f) for f in data["forced"]),
            prev_root=int(data["prev_root"], 16), root=int(data["root"], 16),
            positions_root=int(data["positions_root"], 16),
            global_fields=tuple(int(x, 16) for x in data["global_fields"]),
            changed=tuple(LeafUpdate(pid, SubaccountId(owner, number),
                                     LeafData.from_fields([int(x, 16) for x in fields]), int(leaf_hash, 16))
                          for pid, owner, number, fields, leaf_hash in data["changed"]),
            new_positions=tuple((SubaccountId(owner, number), pid) for owner, number, pid in data["new_positions"]),
            liabilities_root=((int(data["liabilities_root"][0], 16), int(data["liabilities_root"][1], 16))
                              if data["liabilities_root"] else None),
            opened_ts_ms=data["opened_ts_ms"], closed_ts_ms=data["closed_ts_ms"], n_trades=data["n_trades"],
            nodes_rehashed=data["nodes_rehashed"], leaf_hashes=data["leaf_hashes"],
            root_update_s=data["root_update_s"], liabilities_s=data["liabilities_s"], backend=data["backend"],
            height=data["height"],
        )


def tx_digest(txs) -> str:
    """BLAKE2s over the store codec's canonical encoding of each transaction, in order."""
    from perpdex.store.codec import encode_tx

    h = hashlib.blake2s()
    for tx in txs:
        name, version, body, _ = encode_tx(tx)
        h.update(f"{name}|{version}|{body}\n".encode())
    return h.hexdigest()


def diff_bytes(changed: tuple[LeafUpdate, ...], global_fields: tuple[int, ...]) -> bytes:
    """The state diff as the bytes a rollup-mode batch posts on L1: per changed leaf its position id (8 bytes)
    and preimage words (32 bytes each), then the global state words (StarkEx data_availability.cairo outputs
    the changed positions and the funding and price tables in the same spirit)."""
    parts = [len(changed).to_bytes(4, "big")]
    for update in changed:
        fields = update.leaf.fields()
        parts.append(update.position_id.to_bytes(8, "big") + len(fields).to_bytes(2, "big"))
        parts.extend(word.to_bytes(32, "big") for word in fields)
    parts.append(len(global_fields).to_bytes(2, "big"))
    parts.extend(word.to_bytes(32, "big") for word in global_fields)
    return b"".join(parts)


# --- where transactions and batches are kept ----------------------------------------------------------------
class TxStore(Protocol):
    """Applies transactions to an exchange and keeps them: in memory, or durably through `perpdex.store`."""

    @property
    def exchange(self) -> Exchange: ...

    @property
    def last_seq(self) -> int: ...

    def apply(self, tx: Any) -> list[Event]: ...

    def txs_after(self, seq: int) -> list[Any]:
        """The kept transactions with seq > `seq`, in order (a restarted sequencer's open batch)."""
        ...


class MemoryTxStore:
    """Transactions in a list beside an in-memory exchange (simulation, tests, the verifier's replica)."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self.txs: list[Any] = []

    @property
    def exchange(self) -> Exchange:
        return self._exchange

    @property
    def last_seq(self) -> int:
        return len(self.txs)

    def apply(self, tx: Any) -> list[Event]:
        events = self._exchange.apply(tx)
        self.txs.append(tx)
        return events

    def txs_after(self, seq: int) -> list[Any]:
        return self.txs[seq:]


class DurableTxStore:
    """Through the store: `perpdex.store.DurableExchange.apply` makes each accepted transaction durable (fsync)
    before its events come back; `last_seq` is the log's seq."""

    def __init__(self, durable: Any) -> None:
        self.durable = durable

    @property
    def exchange(self) -> Exchange:
        return self.durable.exchange

    @property
    def last_seq(self) -> int:
        return self.durable.last_seq

    def apply(self, tx: Any) -> list[Event]:
        return self.durable.apply(tx)

    def txs_after(self, seq: int) -> list[Any]:
        return [tx for _, tx in self.durable.log.records(seq + 1)]


def append_json_line(path: Path, value: Any) -> None:
    """One compact JSON line appended, flushed and fsynced (durable before the caller goes on)."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(value, separators=(",", ":")) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class Journal(Protocol):
    """What the open batch holds beyond the tx store's transactions, kept durably so a restarted sequencer can put
    it back (`Sequencer.resume`): the signature each accepted signed transaction carried (by its seq in the tx
    store) and each forced-request resolution (by the batch it was served in)."""

    def signature(self, seq: int, envelope: Any) -> None: ...

    def forced(self, batch_id: int, resolution: ForcedResolution) -> None: ...

    def signatures(self) -> dict[int, Any]: ...

    def forced_in(self, batch_id: int) -> list[ForcedResolution]: ...


class MemoryJournal:
    def __init__(self) -> None:
        self.signed: dict[int, Any] = {}
        self.resolutions: list[tuple[int, ForcedResolution]] = []

    def signature(self, seq: int, envelope: Any) -> None:
        self.signed[seq] = envelope

    def forced(self, batch_id: int, resolution: ForcedResolution) -> None:
        self.resolutions.append((batch_id, resolution))

    def signatures(self) -> dict[int, Any]:
        return dict(self.signed)

    def forced_in(self, batch_id: int) -> list[ForcedResolution]:
        return [resolution for batch, resolution in self.resolutions if batch == batch_id]


class JsonlJournal:
    """One JSON line per record (`<log>.journal.jsonl` beside a store log), fsynced each: ["sig", seq, envelope]
    or ["forced", batch id, resolution]. A torn last line (a crash mid-write, never acknowledged) is skipped."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @classmethod
    def beside(cls, log_path: str | os.PathLike) -> JsonlJournal:
        return cls(Path(str(log_path) + ".journal.jsonl"))

    def _append(self, record: list) -> None:
        append_json_line(self.path, record)

    def signature(self, seq: int, envelope: Any) -> None:
        from perpdex.rollup.signatures import envelope_to_json

        self._append(["sig", seq, envelope_to_json(envelope)])

    def forced(self, batch_id: int, resolution: ForcedResolution) -> None:
        self._append(["forced", batch_id, forced_to_json(resolution)])

    def _records(self) -> list[list]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                if record[0] not in ("sig", "forced"):
                    raise ValueError(f"unknown record kind {record[0]!r}")
            except (ValueError, TypeError, IndexError) as exc:
                if number == len(lines):
                    break
                raise ValueError(f"{self.path}:{number}: not a journal record ({exc})") from None
            records.append(record)
        return records

    def signatures(self) -> dict[int, Any]:
        from perpdex.rollup.signatures import envelope_from_json

        return {seq: envelope_from_json(data) for kind, seq, data in self._records() if kind == "sig"}

    def forced_in(self, batch_id: int) -> list[ForcedResolution]:
        return [forced_from_json(data) for kind, batch, data in self._records() if kind == "forced" and batch == batch_id]


def forced_to_json(f: ForcedResolution) -> list:
    from perpdex.store.codec import encode_tx

    return [f.request_id, f.applied, list(f.tx_indices), f.code,
            list(encode_tx(f.rejected_tx)[:3]) if f.rejected_tx is not None else None, list(f.action)]


def forced_from_json(data: list) -> ForcedResolution:
    from perpdex.store.codec import decode_tx

    request_id, applied, indices, code, rejected, action = data
    return ForcedResolution(request_id, applied, tuple(indices), code, decode_tx(*rejected) if rejected else None,
                            tuple(action))


class BatchStore(Protocol):
    def append(self, batch: Batch) -> None: ...

    def batches(self) -> Iterator[Batch]: ...


class MemoryBatchStore:
    def __init__(self) -> None:
        self.items: list[Batch] = []

    def append(self, batch: Batch) -> None:
        self.items.append(batch)

    def batches(self) -> Iterator[Batch]:
        return iter(self.items)


class JsonlBatchStore:
    """One JSON line per batch in a file (by default `<log>.rollup.jsonl` beside a store log), flushed and
    fsynced per batch. The store's log holds the transactions; this file holds the batch boundaries, diffs,
    roots and signatures, so `perpdex rollup verify LOG` can check every batch."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @classmethod
    def beside(cls, log_path: str | os.PathLike) -> JsonlBatchStore:
        return cls(Path(str(log_path) + ".rollup.jsonl"))

    def append(self, batch: Batch) -> None:
        append_json_line(self.path, batch.to_json())

    def batches(self) -> Iterator[Batch]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield Batch.from_json(json.loads(line))
                    except (ValueError, KeyError, TypeError) as exc:
                        raise ValueError(f"{self.path}:{number}: not a batch record ({exc})") from None
