"""The sequencer: orders transactions, applies each to the exchange through a `TxStore` (the durable store or a
list), checks signatures and nonces, serves L1 forced requests, and closes a batch every N txs or T ms.

    sequencer = Sequencer(MemoryTxStore(Exchange(markets)), StateTree(make_backend()), BatchPolicy(10_000, None))
    sequencer.submit(tx)                          # events, or the PerpdexError that rejected it
    batch = sequencer.close_batch()               # also closes by itself by count or transaction time

Closing by time uses transaction time (`ts_ms`): a transaction at or after `opened + max_age_ms` first closes
the open batch, so a batch never spans more than T ms of transaction time. The time is an input, as in the core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from perpdex.core.errors import PerpdexError
from perpdex.core.events import Event, Fill
from perpdex.core.exchange import Exchange
from perpdex.core.state import SubaccountId
from perpdex.core.tx import ForcedTrade, Withdraw
from perpdex.rollup.batch import (
    Batch,
    BatchPolicy,
    BatchStore,
    ForcedResolution,
    MemoryBatchStore,
    Journal,
    SignedEntry,
    TxStore,
)
from perpdex.rollup.signatures import (
    ReplayedNonceError,
    SignatureError,
    SignedEnvelope,
    check_envelope,
    verify_envelopes,
)
from perpdex.rollup.tree import Commitment, StateTree


class ForcedWithdrawalRequest(NamedTuple):
    """An L1 forced withdrawal (StarkEx ForcedWithdrawals.forcedWithdrawalRequest)."""

    request_id: int
    subaccount_id: SubaccountId
    amount_quantums: int
    requested_ts_ms: int


class ForcedTradeRequest(NamedTuple):
    """An L1 forced trade both parties agreed to: `buyer` buys `size_base_quantums` of `market_id` from `seller`
    at `price_subticks` (StarkEx ForcedTrades.forcedTradeRequest)."""

    request_id: int
    buyer: SubaccountId
    seller: SubaccountId
    market_id: str
    size_base_quantums: int
    price_subticks: int
    requested_ts_ms: int


class ResumeError(Exception):
    """A sequencer cannot restart from these batches and this store (they do not describe one history)."""


class NonceRegistry:
    """(public key, nonce) pairs already used by accepted signed transactions (StarkEx keeps fulfilled orders in
    its orders tree for the same reason: a signed message executes once)."""

    def __init__(self) -> None:
        self.used: set[tuple[int, int, str]] = set()

    @staticmethod
    def key(envelope: SignedEnvelope) -> tuple[int, int, str]:
        return envelope.public_key, envelope.nonce, type(envelope.message).__name__

    def check(self, envelope: SignedEnvelope, tree: StateTree | None = None) -> None:
        """Refuse a used nonce; with `tree`, also one whose slot in the committed nonces tree is taken."""
        if self.key(envelope) in self.used or (tree is not None and tree.nonce_used(*self.key(envelope))):
            raise ReplayedNonceError("this key already used this nonce", field="nonce", value=envelope.nonce)

    def add(self, envelope: SignedEnvelope) -> None:
        self.used.add(self.key(envelope))


class Sequencer:
    """Applies transactions in the order it receives them and closes batches (see the module docstring).

    `require_signatures`: every PlaceOrder, Transfer and Withdraw must carry a valid signature (the API's mode);
    otherwise signatures are checked when given (trusted simulation agents may omit them).
    `on_batch` is called with each closed batch (the prover pipeline hooks in there).
    """

    def __init__(self, store: TxStore, tree: StateTree, policy: BatchPolicy | None = None, *,
                 batches: BatchStore | None = None, require_signatures: bool = False,
                 on_batch: Callable[[Batch], None] | None = None, journal: Journal | None = None) -> None:
        policy = policy or BatchPolicy()
        if policy.max_txs < 1 or (policy.max_age_ms is not None and policy.max_age_ms < 1):
            raise ValueError("a batch policy needs max_txs >= 1 and max_age_ms >= 1 (or None)")
        self.store = store
        self.tree = tree
        self.policy = policy
        self.batches = batches if batches is not None else MemoryBatchStore()
        self.require_signatures = require_signatures
        self.on_batch = on_batch
        self.journal = journal
        self.nonces = NonceRegistry()
        self.batch_count = 0
        self.last_batch: Batch | None = None
        self._reset_open(store.last_seq + 1)
        self.rejected = 0

    @classmethod
    def resume(cls, store: TxStore, tree: StateTree, make_exchange: Callable[[], Exchange],
               policy: BatchPolicy | None = None, *, batches: BatchStore,
               journal: Journal | None = None, require_signatures: bool = False,
               on_batch: Callable[[Batch], None] | None = None) -> Sequencer:
        """A sequencer restarted over a recovered tx store (`store.exchange` holds every logged transaction) and
        the batches it had closed. Re-executes each closed batch on a fresh exchange (`make_exchange()`), commits
        `tree` (fresh) at each boundary and checks the root each batch recorded, so a damaged or foreign batch
        file stops the restart (ResumeError); restores the nonces the batches' signatures used; then opens a batch
        with the transactions logged after the last one, with their signatures and forced-request resolutions
        from `journal`, and checks that re-applying them reaches the store's own state (digest). Raises
        ResumeError naming the batch."""
        closed = list(batches.batches())
        replica = make_exchange()
        nonces = NonceRegistry()
        for expected_id, batch in enumerate(closed):
            if batch.batch_id != expected_id or batch.prev_root != tree.root:
                raise ResumeError(f"batch {batch.batch_id} does not follow batch {expected_id - 1}")
            try:
                root = reexecute(batch, replica, tree).root
            except PerpdexError as error:
                raise ResumeError(f"batch {batch.batch_id}: a transaction is rejected on re-execution: "
                                  f"{error}") from None
            if root != batch.root:
                raise ResumeError(f"batch {batch.batch_id}: re-execution does not reach its root")
            for entry in batch.signatures:
                nonces.add(entry.envelope)
        last_seq = closed[-1].last_seq if closed else 0
        open_txs = store.txs_after(last_seq)
        signatures = journal.signatures() if journal is not None else {}
        sequencer = cls(store, tree, policy, batches=batches, require_signatures=require_signatures,
                        on_batch=on_batch, journal=journal)
        sequencer.nonces = nonces
        sequencer.batch_count = len(closed)
        sequencer.last_batch = closed[-1] if closed else None
        sequencer._reset_open(last_seq + 1)
        for offset, tx in enumerate(open_txs):
            events = replica.apply(tx)
            envelope = signatures.get(last_seq + 1 + offset)
            if envelope is not None:
                sequencer.nonces.add(envelope)
                sequencer._signatures.append(SignedEntry(len(sequencer._txs), envelope))
            sequencer._record(tx, events)
        if journal is not None:
            sequencer._forced = journal.forced_in(len(closed))
        if replica.digest() != store.exchange.digest():
            raise ResumeError("the closed batches and the open transactions do not reach the store's state")
        return sequencer

    @property
    def exchange(self):
        return self.store.exchange

    @property
    def root(self) -> int:
        return self.tree.root

    def _reset_open(self, first_seq: int) -> None:
        self._txs: list[Any] = []
        self._signatures: list[SignedEntry] = []
        self._forced: list[ForcedResolution] = []
        self._first_seq = first_seq
        self._opened_ts_ms: int | None = None
        self._last_ts_ms = 0
        self._trades = 0

    @property
    def open_count(self) -> int:
        return len(self._txs)

    @property
    def open_forced(self) -> tuple[ForcedResolution, ...]:
        """Forced requests the open batch serves."""
        return tuple(self._forced)

    # --- transactions ---------------------------------------------------------------------------
    def submit(self, tx: Any, signature: SignedEnvelope | None = None, *,
               signature_valid: bool | None = None) -> list[Event]:
        """Apply one transaction (closing the open batch first if its time is up); returns its events or
        raises its PerpdexError (SignatureError, ReplayedNonceError, or the core's), changing nothing.
        `signature_valid`: the envelope's STARK signature already checked (see `submit_many`)."""
        self._maybe_close_by_time(tx.ts_ms)
        if signature is None:
            if self.require_signatures and type(tx).__name__ in ("PlaceOrder", "Transfer", "Withdraw"):
                self.rejected += 1
                raise SignatureError(f"{type(tx).__name__} needs a signature", field="signature", value=None)
        else:
            try:
                self.nonces.check(signature, self.tree)
                check_envelope(tx, signature, self.tree.position_ids.get, self._qce, signature_valid=signature_valid)
            except PerpdexError:
                self.rejected += 1
                raise
        try:
            events = self.store.apply(tx)
        except PerpdexError:
            self.rejected += 1
            raise
        if signature is not None:
            if self.journal is not None:  # durable before the events go back, as the tx itself
                self.journal.signature(self.store.last_seq, signature)
            self.nonces.add(signature)
            self._signatures.append(SignedEntry(len(self._txs), signature))
        self._record(tx, events)
        if len(self._txs) >= self.policy.max_txs:
            self.close_batch()
        return events

    def submit_many(self, items: Sequence[tuple[Any, SignedEnvelope | None]], *,
                    workers: int | None = None) -> list[list[Event] | PerpdexError]:
        """Submit (transaction, signature or None) pairs in order; each result is the events or the error that
        rejected it. The STARK signatures, pure functions of their envelopes, are checked first on `workers`
        threads (every core by default); everything that depends on state (keys, position ids, nonces, margin)
        is still checked in order, one transaction at a time, exactly as `submit` does."""
        signed = [signature for _, signature in items if signature is not None]
        valid = iter(verify_envelopes(signed, workers))
        results: list[list[Event] | PerpdexError] = []
        for tx, signature in items:
            try:
                results.append(self.submit(tx, signature,
                                           signature_valid=None if signature is None else next(valid)))
            except PerpdexError as error:
                results.append(error)
        return results

    def _qce(self, market_id: str) -> int:
        return self.exchange.market(market_id).params.quantum_conversion_exponent

    def _record(self, tx: Any, events: list[Event]) -> None:
        if self._opened_ts_ms is None:
            self._opened_ts_ms = tx.ts_ms
        self._last_ts_ms = tx.ts_ms
        self._txs.append(tx)
        self._trades += sum(1 for event in events if type(event) is Fill)

    def _maybe_close_by_time(self, ts_ms: int) -> None:
        age = self.policy.max_age_ms
        if age is not None and self._opened_ts_ms is not None and ts_ms >= self._opened_ts_ms + age:
            self.close_batch(closed_ts_ms=self._opened_ts_ms + age)

    def tick(self, now_ms: int) -> Batch | None:
        """Close the open batch if its time is up at `now_ms` (transaction time), without a new transaction."""
        age = self.policy.max_age_ms
        if age is not None and self._opened_ts_ms is not None and now_ms >= self._opened_ts_ms + age:
            return self.close_batch(closed_ts_ms=self._opened_ts_ms + age)
        return None

    # --- forced requests ---------------------------------------------------------------------------
    def serve_forced_withdrawal(self, request: ForcedWithdrawalRequest, ts_ms: int) -> ForcedResolution:
        """Include an L1 forced withdrawal: applied as a Withdraw, or recorded as rejected (not enough free
        collateral, unknown subaccount) with the rejected transaction, so the verifier can re-check the rejection.
        Either way the request is served once the batch is accepted."""
        self._maybe_close_by_time(ts_ms)
        tx = Withdraw(ts_ms, request.subaccount_id, request.amount_quantums)
        index = len(self._txs)
        try:
            events = self.store.apply(tx)
        except PerpdexError as error:
            resolution = ForcedResolution(request.request_id, False, (index,), error.code, tx,
                                          forced_action(request))
        else:
            self._record(tx, events)
            resolution = ForcedResolution(request.request_id, True, (index,), action=forced_action(request))
        self._add_forced(resolution)
        return resolution

    def serve_forced_trade(self, request: ForcedTradeRequest, ts_ms: int) -> ForcedResolution:
        """Include an L1 forced trade: applied as a core ForcedTrade (settled between the two parties at the
        agreed price, no book, no fee), or recorded as rejected with the core's reason (a party fails the margin
        rule, a stale oracle, ...) so the verifier can re-check the rejection. Either way it is served."""
        self._maybe_close_by_time(ts_ms)
        tx = ForcedTrade(ts_ms, request.buyer, request.seller, request.market_id, request.size_base_quantums,
                         request.price_subticks)
        index = len(self._txs)
        try:
            events = self.store.apply(tx)
        except PerpdexError as error:
            resolution = ForcedResolution(request.request_id, False, (index,), error.code, tx, forced_action(request))
        else:
            self._record(tx, events)
            resolution = ForcedResolution(request.request_id, True, (index,), action=forced_action(request))
        self._add_forced(resolution)
        return resolution

    def _add_forced(self, resolution: ForcedResolution) -> None:
        if self.journal is not None:  # durable before the request counts as served, as a signature
            self.journal.forced(self.batch_count, resolution)
        self._forced.append(resolution)

    # --- batches -------------------------------------------------------------------------------
    def close_batch(self, closed_ts_ms: int | None = None) -> Batch | None:
        """Commit the state, record the batch, hand it to `on_batch`; None when nothing is open."""
        if not self._txs and not self._forced:
            return None
        prev_root = self.tree.root
        commitment = self.tree.commit(self.exchange, batch_nonces(self._signatures))
        txs = tuple(self._txs)
        batch = Batch(
            batch_id=self.batch_count, first_seq=self._first_seq, last_seq=self.store.last_seq, txs=txs,
            signatures=tuple(self._signatures), forced=tuple(self._forced), prev_root=prev_root,
            root=commitment.root, positions_root=commitment.positions_root,
            global_fields=commitment.global_state.fields(), changed=commitment.changed,
            new_positions=commitment.new_positions, liabilities_root=commitment.liabilities_root,
            opened_ts_ms=self._opened_ts_ms if self._opened_ts_ms is not None else self._last_ts_ms,
            closed_ts_ms=closed_ts_ms if closed_ts_ms is not None else self._last_ts_ms,
            n_trades=self._trades, nodes_rehashed=commitment.nodes_rehashed, leaf_hashes=commitment.leaf_hashes,
            root_update_s=commitment.root_update_s, liabilities_s=commitment.liabilities_s,
            backend=self.tree.backend.name, height=self.tree.height,
        )
        self.batches.append(batch)
        self.batch_count += 1
        self.last_batch = batch
        self._reset_open(self.store.last_seq + 1)
        if self.on_batch is not None:
            self.on_batch(batch)
        return batch

    def flush(self) -> Batch | None:
        return self.close_batch()


def reexecute(batch: Batch, exchange: Exchange, tree: StateTree) -> Commitment:
    """Apply a closed batch's transactions to `exchange` (at the batch's previous root) and commit `tree` with the
    nonces its signatures used: the commitment to compare with the batch's claims. Raises what applying raises."""
    for tx in batch.txs:
        exchange.apply(tx)
    return tree.commit(exchange, batch_nonces(batch.signatures))


def batch_nonces(signatures: Sequence[SignedEntry]) -> list[tuple[int, int, str]]:
    """The (public key, nonce, kind) each signed transaction of a batch used, for the state tree's nonces."""
    return [NonceRegistry.key(entry.envelope) for entry in signatures]


def forced_action(request: ForcedWithdrawalRequest | ForcedTradeRequest) -> tuple:
    """A forced request's parameters as plain values (what the L1 contract stores and a batch echoes)."""
    if isinstance(request, ForcedWithdrawalRequest):
        sid = request.subaccount_id
        return ("withdrawal", sid.owner, sid.number, request.amount_quantums)
    return ("trade", request.buyer.owner, request.buyer.number, request.seller.owner, request.seller.number,
            request.market_id, request.size_base_quantums, request.price_subticks)
