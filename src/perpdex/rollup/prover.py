"""Proofs of batches: a prover interface with a modelled proving time, and the first prover, honest
re-execution, whose verifier re-applies the batch to the last committed state and checks every claim.

The L1 contract sees a `BatchHeader` and an opaque `Proof`; it asks a `Verifier` whether the proof shows the
header's transition. With `ReexecutionProver` the proof carries the batch itself (the witness) and the verifier
replays it: same transactions accepted, same signatures and nonces, fair operator-chosen amounts
(`validity.BatchValidator`), same forced-request outcomes, same diff, same roots. A STARK prover would carry a
proof blob instead and a verifier that checks it; `Prover` and `Verifier` are the seams for that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from perpdex.core.errors import PerpdexError
from perpdex.core.exchange import Exchange
from perpdex.core.state import SubaccountId
from perpdex.core.tx import ForcedTrade, Withdraw
from perpdex.rollup.batch import Batch, BatchHeader, ForcedResolution
from perpdex.rollup.hashing import make_backend
from perpdex.rollup.sequencer import NonceRegistry, batch_nonces, reexecute
from perpdex.rollup.signatures import StarkOrder, check_envelope
from perpdex.rollup.tree import StateTree, TreeError
from perpdex.rollup.validity import BatchValidator

MINUTE_MS = 60_000


@dataclass(frozen=True)
class ProvingTimeModel:
    """Proving time = fixed + per transaction. Defaults put a StarkEx-sized batch (about 500k transactions: 40
    trades/s for about 4 h) near the ~2 h StarkEx reports, and never past its 12 h worst case
    (REFERENCES.md, "StarkEx's published figures")."""

    fixed_ms: int = 20 * MINUTE_MS
    per_tx_ms: float = 12.0
    max_ms: int = 12 * 60 * MINUTE_MS

    def proving_time_ms(self, n_txs: int) -> int:
        return min(self.fixed_ms + round(self.per_tx_ms * n_txs), self.max_ms)


class Proof(NamedTuple):
    """A proof that `header_digest`'s batch is a valid transition. `witness` is what this prover's verifier
    needs (the batch, for re-execution; a STARK proof would carry its proof bytes here)."""

    batch_id: int
    header_digest: str
    prover: str
    proving_time_ms: int
    witness: Any


class Prover(Protocol):
    name: str

    def proving_time_ms(self, batch: Batch) -> int: ...

    def prove(self, batch: Batch) -> Proof: ...


class Verifier(Protocol):
    def verify(self, header: BatchHeader, proof: Proof) -> None:
        """Return if the proof shows the header's transition from the verifier's last committed root; raise
        VerificationError otherwise."""


class VerificationError(Exception):
    """A proof does not show the claimed transition; `reason` says which claim failed."""

    def __init__(self, reason: str, *, batch_id: int | None = None) -> None:
        super().__init__(f"batch {batch_id}: {reason}" if batch_id is not None else reason)
        self.reason = reason
        self.batch_id = batch_id


class ReexecutionProver:
    """The honest prover: its proof is the batch; it takes the modelled time."""

    name = "reexecution"

    def __init__(self, timing: ProvingTimeModel | None = None) -> None:
        self.timing = timing or ProvingTimeModel()

    def proving_time_ms(self, batch: Batch) -> int:
        return self.timing.proving_time_ms(len(batch.txs))

    def prove(self, batch: Batch) -> Proof:
        return Proof(batch.batch_id, batch.header().digest(), self.name, self.proving_time_ms(batch), batch)


class ReexecutionVerifier:
    """Keeps a replica of the committed state (exchange, state tree, nonces) and advances it only by batches it
    verified. A failed verification may have left the replica part-way; it is rebuilt from the verified
    batches before the next one (the rejected batch never counts)."""

    def __init__(self, make_exchange: Callable[[], Exchange], *, backend: str = "pedersen", height: int = 64,
                 commit_liabilities: bool = True, check_validity: bool = True) -> None:
        self.make_exchange = make_exchange
        self.backend_name = backend
        self.height = height
        self.commit_liabilities = commit_liabilities
        self.check_validity = check_validity
        self.accepted: list[Batch] = []
        self._reset()

    def _reset(self) -> None:
        self.exchange = self.make_exchange()
        self.tree = StateTree(make_backend(self.backend_name), self.height, commit_liabilities=self.commit_liabilities)
        self.nonces = NonceRegistry()
        self._dirty = False

    @property
    def root(self) -> int:
        return self.tree.root

    def _rebuild(self) -> None:
        self._reset()
        for batch in self.accepted:
            reexecute(batch, self.exchange, self.tree)
            for entry in batch.signatures:
                self.nonces.add(entry.envelope)

    def verify(self, header: BatchHeader, proof: Proof) -> None:
        batch = proof.witness
        if not isinstance(batch, Batch):
            raise VerificationError("the proof carries no batch to re-execute", batch_id=header.batch_id)
        if proof.header_digest != header.digest():
            raise VerificationError("the proof is for another header", batch_id=header.batch_id)
        if batch.header() != header:
            raise VerificationError("the header does not match the batch it claims (transactions, diff, roots or "
                                    "modifications)", batch_id=header.batch_id)
        if header.batch_id != len(self.accepted):
            raise VerificationError(f"expected batch {len(self.accepted)}", batch_id=header.batch_id)
        if self._dirty:
            self._rebuild()
        if header.prev_root != self.tree.root:
            raise VerificationError("the batch does not start from the last committed root", batch_id=header.batch_id)
        self._dirty = True  # until re-execution succeeds, the replica may be part-way
        self._reexecute(batch)
        self.accepted.append(batch)
        self._dirty = False

    def _reexecute(self, batch: Batch) -> None:
        fail = lambda reason: VerificationError(reason, batch_id=batch.batch_id)
        ex = self.exchange
        signatures = {entry.tx_index: entry.envelope for entry in batch.signatures}
        rejected_at: dict[int, list[ForcedResolution]] = {}
        applied_at: dict[int, ForcedResolution] = {}
        for resolution in batch.forced:
            if resolution.applied:
                applied_at[resolution.tx_indices[-1]] = resolution
            else:
                rejected_at.setdefault(resolution.tx_indices[0], []).append(resolution)
        validator = BatchValidator(ex) if self.check_validity else None
        for index in range(len(batch.txs) + 1):
            for resolution in rejected_at.get(index, ()):
                self._check_rejection(resolution, fail)
            if index == len(batch.txs):
                break
            tx = batch.txs[index]
            envelope = signatures.get(index)
            if envelope is not None:
                try:
                    self.nonces.check(envelope)
                    check_envelope(tx, envelope, self.tree.position_ids.get,
                                   lambda m: ex.market(m).params.quantum_conversion_exponent)
                except PerpdexError as error:
                    raise fail(f"transaction {index}: signature: {error}") from None
            before = validator.before_tx(tx) if validator is not None else None
            try:
                events = ex.apply(tx)
            except PerpdexError as error:
                raise fail(f"transaction {index} is rejected on re-execution: {error}") from None
            if envelope is not None:
                self.nonces.add(envelope)
            if validator is not None and before is not None:
                signed = envelope.message if envelope is not None and type(envelope.message) is StarkOrder else None
                try:
                    validator.after_tx(tx, events, signed, before)
                except PerpdexError as error:
                    raise fail(f"transaction {index}: {error}") from None
            served = applied_at.get(index)
            if served is not None:
                self._check_applied(served, batch, fail)
        try:
            commitment = self.tree.commit(ex, batch_nonces(batch.signatures))
        except TreeError as error:
            raise fail(f"nonces: {error}") from None
        claims = (("root", commitment.root, batch.root), ("positions root", commitment.positions_root,
                                                          batch.positions_root),
                  ("global state", commitment.global_state.fields(), batch.global_fields),
                  ("new position ids", commitment.new_positions, batch.new_positions),
                  ("liabilities root", commitment.liabilities_root, batch.liabilities_root))
        for name, computed, claimed in claims:
            if computed != claimed:
                raise fail(f"{name} differs from re-execution")
        computed_diff = [(u.position_id, u.leaf.fields(), u.leaf_hash) for u in commitment.changed]
        claimed_diff = [(u.position_id, u.leaf.fields(), u.leaf_hash) for u in batch.changed]
        if computed_diff != claimed_diff:
            raise fail("state diff differs from re-execution")

    def _check_rejection(self, resolution: ForcedResolution, fail) -> None:
        tx = resolution.rejected_tx
        if tx is None or not _matches_action(tx, resolution.action):
            raise fail(f"forced request {resolution.request_id}: the rejected transaction is not the request")
        try:
            self.exchange.apply(tx)
        except PerpdexError as error:
            if error.code != resolution.code:
                raise fail(f"forced request {resolution.request_id}: rejected with {error.code}, "
                           f"not {resolution.code}") from None
            return
        raise fail(f"forced request {resolution.request_id} was claimed rejected but applies")

    @staticmethod
    def _check_applied(resolution: ForcedResolution, batch: Batch, fail) -> None:
        txs = [batch.txs[i] for i in resolution.tx_indices]
        action = resolution.action
        if action and action[0] == "withdrawal":
            if len(txs) != 1 or not _matches_action(txs[0], action):
                raise fail(f"forced withdrawal {resolution.request_id} is not served by its transaction")
            return
        if action and action[0] == "trade":
            if len(txs) != 1 or not _matches_action(txs[0], action):
                raise fail(f"forced trade {resolution.request_id} is not served by its transaction")
            return
        raise fail(f"forced request {resolution.request_id} has an unknown action")


def _matches_action(tx: Any, action: tuple) -> bool:
    if not action:
        return False
    if action[0] == "withdrawal":
        _, owner, number, amount = action
        return type(tx) is Withdraw and tx.subaccount_id == SubaccountId(owner, number) and tx.amount_quantums == amount
    if action[0] == "trade":
        _, b_owner, b_number, s_owner, s_number, market_id, size, price = action
        return tx == ForcedTrade(tx.ts_ms, SubaccountId(b_owner, b_number), SubaccountId(s_owner, s_number),
                                 market_id, size, price)
    return False
