"""The L1 side: a simulated chain with block time and a StarkEx-style contract that accepts a new state root only
with a verified proof, holds deposits pending until a batch includes them, makes withdrawals claimable only once
their batch is accepted, takes forced requests, freezes when one goes unserved past the grace period, and lets
every user escape with a Merkle proof. Plus `RollupNode` (sequencer + prover + contract on one clock) and the
escape drill.

Modelled on starkware-libs/starkex-contracts @f3b2506, scalable-dex/contracts/src/: `components/Freezable.sol`
(validateFreezeRequest: request time + FREEZE_GRACE_PERIOD, 7 days in `libraries/LibConstants.sol`),
`perpetual/interactions/ForcedWithdrawals.sol` and `ForcedTrades.sol` (requests, then freezeRequest),
`perpetual/components/PerpetualEscapes.sol` (escape once per position, only when frozen) and
`PerpetualEscapeVerifier.sol` (a position's value = collateral + sum of balance x price + funding, must be > 0).
Accounts on L1 are (owner key, subaccount number), as StarkEx's (stark key, position id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from perpdex.core.errors import PerpdexError
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit
from perpdex.rollup.batch import Batch, BatchHeader, diff_bytes
from perpdex.rollup.encoding import account_value, owner_key
from perpdex.rollup.hashing import MASK_250, HashBackend
from perpdex.rollup.prover import Proof, Prover, VerificationError, Verifier
from perpdex.rollup.sequencer import (
    ForcedTradeRequest,
    ForcedWithdrawalRequest,
    Sequencer,
    forced_action,
)
from perpdex.rollup.signatures import public_key as stark_public_key
from perpdex.rollup.signatures import sign as stark_sign
from perpdex.rollup.signatures import verify as stark_verify
from perpdex.rollup.tree import LiabilityProof, StateProof

DAY_MS = 86_400_000
FREEZE_GRACE_PERIOD_MS = 7 * DAY_MS  # LibConstants.sol FREEZE_GRACE_PERIOD = 7 days
BLOCK_TIME_MS = 12_000  # Ethereum slot time
GAS_PER_PERPETUAL_TRADE = 426  # StarkEx, optimized batches (REFERENCES.md, "StarkEx's published figures")
CALLDATA_GAS_NONZERO_BYTE = 16  # EIP-2028
CALLDATA_GAS_ZERO_BYTE = 4

AccountKey = tuple[int, int]  # (owner key, subaccount number)


def account_key(subaccount_id: SubaccountId) -> AccountKey:
    return owner_key(subaccount_id.owner), subaccount_id.number


class L1Error(Exception):
    """The contract refused a call (StarkEx reverts with a reason string; `code` is that reason)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class L1Chain:
    """A chain whose time moves in whole blocks; callers move it forward, never back."""

    def __init__(self, block_time_ms: int = BLOCK_TIME_MS, start_ms: int = 0) -> None:
        self.block_time_ms = block_time_ms
        self.now_ms = start_ms - start_ms % block_time_ms

    @property
    def block_number(self) -> int:
        return self.now_ms // self.block_time_ms

    def advance_to(self, ts_ms: int) -> int:
        """Move to the first block at or after `ts_ms` (no-op if already later); returns the block time."""
        if ts_ms > self.now_ms:
            self.now_ms = -(-ts_ms // self.block_time_ms) * self.block_time_ms
        return self.now_ms

    def advance_by(self, ms: int) -> int:
        return self.advance_to(self.now_ms + ms)


class DataAvailability(str, Enum):
    ROLLUP = "rollup"  # the state diff is posted on L1 with each update
    VALIDIUM = "validium"  # the diff stays off-chain; a committee signs that it holds it


@dataclass(frozen=True)
class GasModel:
    """Gas of a state update in rollup mode: StarkEx's published ~426 gas per perpetual trade in optimized batches
    (calibration), and the calldata cost of posting this model's diff bytes (EIP-2028) for comparison."""

    gas_per_trade: int = GAS_PER_PERPETUAL_TRADE
    nonzero_byte_gas: int = CALLDATA_GAS_NONZERO_BYTE
    zero_byte_gas: int = CALLDATA_GAS_ZERO_BYTE

    def published_gas(self, n_trades: int) -> int:
        return self.gas_per_trade * n_trades

    def calldata_gas(self, data: bytes) -> int:
        zeros = data.count(0)
        return zeros * self.zero_byte_gas + (len(data) - zeros) * self.nonzero_byte_gas


class Committee:
    """A data-availability committee for validium mode: members sign the header digest with STARK keys."""

    def __init__(self, private_keys: Iterable[int], quorum: int) -> None:
        self.private_keys = list(private_keys)
        self.public_keys = [stark_public_key(key) for key in self.private_keys]
        if not 1 <= quorum <= len(self.private_keys):
            raise ValueError("quorum must be within 1..members")
        self.quorum = quorum

    def sign(self, header: BatchHeader, members: int | None = None) -> list[tuple[int, int, int]]:
        message = header_message(header)
        return [(pub, *stark_sign(key, message))
                for key, pub in list(zip(self.private_keys, self.public_keys))[:members or len(self.private_keys)]]


def header_message(header: BatchHeader) -> int:
    """The header digest as a field element (what committee members sign)."""
    return int(header.digest(), 16) & MASK_250


class ForcedRequestState(NamedTuple):
    request_id: int
    action: tuple
    requested_ms: int
    served: bool


class UpdateRecord(NamedTuple):
    """One accepted state update."""

    batch_id: int
    root: int
    accepted_ms: int
    published_gas: int
    calldata_gas: int
    calldata_bytes: int


class StarkExContract:
    """The L1 contract model (see the module docstring). Token amounts are USDC quote quantums; `balance` is what
    the contract holds. `collateral_at_root` is deposits minus withdrawals of the accepted batches: the collateral
    the committed state accounts for (each batch's header must agree with it)."""

    def __init__(self, chain: L1Chain, verifier: Verifier, *, genesis_root: int,
                 data_availability: DataAvailability = DataAvailability.ROLLUP, committee: Committee | None = None,
                 grace_period_ms: int = FREEZE_GRACE_PERIOD_MS, gas: GasModel | None = None,
                 backend: HashBackend | None = None) -> None:
        if data_availability is DataAvailability.VALIDIUM and committee is None:
            raise ValueError("validium mode needs a data-availability committee")
        self.chain = chain
        self.verifier = verifier
        self.root = genesis_root
        self.liabilities_root: tuple[int, int] | None = None
        self.data_availability = data_availability
        self.committee = committee
        self.grace_period_ms = grace_period_ms
        self.gas = gas or GasModel()
        self.backend = backend
        self.next_batch_id = 0
        self.balance = 0
        self.collateral_at_root = 0
        self.pending_deposits: dict[AccountKey, int] = {}
        self.pending_withdrawals: dict[AccountKey, int] = {}  # claimable
        self.paid_out = 0
        self.forced: dict[int, ForcedRequestState] = {}
        self.frozen = False
        self.frozen_ms: int | None = None
        self.escapes_used: set[int] = set()
        self.exchange_escaped = False
        self.updates: list[UpdateRecord] = []

    # --- deposits and withdrawals ----------------------------------------------------------------
    def deposit(self, subaccount_id: SubaccountId, amount_quantums: int) -> None:
        """A user sends tokens; they wait, pending, until an accepted batch includes the deposit."""
        if self.frozen:
            raise L1Error("STATE_FROZEN")
        if amount_quantums <= 0:
            raise L1Error("ILLEGAL_AMOUNT")
        key = account_key(subaccount_id)
        self.pending_deposits[key] = self.pending_deposits.get(key, 0) + amount_quantums
        self.balance += amount_quantums

    def reclaim_deposit(self, subaccount_id: SubaccountId) -> int:
        """After a freeze, deposits no batch included go back to their senders (StarkEx deposit cancel/reclaim)."""
        if not self.frozen:
            raise L1Error("NOT_FROZEN", "deposits are reclaimed here only after a freeze")
        amount = self.pending_deposits.pop(account_key(subaccount_id), 0)
        self._pay(amount)
        return amount

    def withdraw(self, subaccount_id: SubaccountId | AccountKey) -> int:
        """Claim what accepted batches (or escapes) made withdrawable; returns the amount paid."""
        key = account_key(subaccount_id) if isinstance(subaccount_id, SubaccountId) else subaccount_id
        amount = self.pending_withdrawals.pop(key, 0)
        self._pay(amount)
        return amount

    def withdrawable(self, subaccount_id: SubaccountId) -> int:
        return self.pending_withdrawals.get(account_key(subaccount_id), 0)

    def _pay(self, amount: int) -> None:
        if amount > self.balance:
            raise L1Error("INSUFFICIENT_BALANCE", f"paying {amount} from {self.balance}")
        self.balance -= amount
        self.paid_out += amount

    # --- state updates --------------------------------------------------------------------------
    def update_state(self, header: BatchHeader, proof: Proof, *, diff: bytes | None = None,
                     committee_signatures: list[tuple[int, int, int]] | None = None) -> UpdateRecord:
        """Accept a batch: the right next batch from the current root, its data available (the diff posted, or a
        committee quorum's signatures), a proof the verifier accepts, deposits that are pending, collateral that
        adds up, and forced-request outcomes that match the requests. Raises L1Error and changes nothing else."""
        if self.frozen:
            raise L1Error("STATE_FROZEN")
        if header.batch_id != self.next_batch_id:
            raise L1Error("WRONG_BATCH_ID", f"expected {self.next_batch_id}, got {header.batch_id}")
        if header.prev_root != self.root:
            raise L1Error("WRONG_PREVIOUS_ROOT")
        calldata_gas = calldata_bytes = 0
        if self.data_availability is DataAvailability.ROLLUP:
            if diff is None or hashlib.blake2s(diff).hexdigest() != header.diff_digest:
                raise L1Error("MISSING_DATA", "rollup mode needs the batch's state diff on chain")
            calldata_gas, calldata_bytes = self.gas.calldata_gas(diff), len(diff)
        else:
            self._check_committee(header, committee_signatures or [])
        pending = dict(self.pending_deposits)
        withdrawals: dict[AccountKey, int] = {}
        net = 0
        for mod in header.modifications:
            key = account_key(mod.subaccount_id)
            if mod.amount_quantums > 0:
                if pending.get(key, 0) < mod.amount_quantums:
                    raise L1Error("DEPOSIT_NOT_PENDING", f"{mod.subaccount_id} deposits {mod.amount_quantums}")
                pending[key] -= mod.amount_quantums
            else:
                withdrawals[key] = withdrawals.get(key, 0) - mod.amount_quantums
            net += mod.amount_quantums
        if self.collateral_at_root + net != header.collateral_held_quote_quantums:
            raise L1Error("COLLATERAL_MISMATCH", f"{self.collateral_at_root} + {net} != "
                                                 f"{header.collateral_held_quote_quantums}")
        for resolution in header.forced:
            request = self.forced.get(resolution.request_id)
            if request is None or request.served or tuple(request.action) != tuple(resolution.action):
                raise L1Error("UNKNOWN_FORCED_REQUEST", f"request {resolution.request_id}")
        try:
            self.verifier.verify(header, proof)
        except VerificationError as error:
            raise L1Error("INVALID_PROOF", str(error)) from None
        # every check passed: write
        self.pending_deposits = {key: amount for key, amount in pending.items() if amount}
        for key, amount in withdrawals.items():
            self.pending_withdrawals[key] = self.pending_withdrawals.get(key, 0) + amount
        self.collateral_at_root = header.collateral_held_quote_quantums
        for resolution in header.forced:
            self.forced[resolution.request_id] = self.forced[resolution.request_id]._replace(served=True)
        self.root = header.root
        self.liabilities_root = header.liabilities_root
        self.next_batch_id += 1
        record = UpdateRecord(header.batch_id, header.root, self.chain.now_ms, self.gas.published_gas(header.n_trades),
                              calldata_gas, calldata_bytes)
        self.updates.append(record)
        return record

    def _check_committee(self, header: BatchHeader, signatures: list[tuple[int, int, int]]) -> None:
        assert self.committee is not None
        message = header_message(header)
        members = set(self.committee.public_keys)
        signers = {pub for pub, r, s in signatures if pub in members and stark_verify(pub, message, r, s)}
        if len(signers) < self.committee.quorum:
            raise L1Error("NO_DATA_AVAILABILITY_QUORUM", f"{len(signers)} of {self.committee.quorum} signatures")

    # --- forced requests, freeze, escape -----------------------------------------------------------
    def forced_withdrawal_request(self, subaccount_id: SubaccountId, amount_quantums: int) -> ForcedWithdrawalRequest:
        """ForcedWithdrawals.forcedWithdrawalRequest: starts the operator's grace period."""
        if self.frozen:
            raise L1Error("STATE_FROZEN")
        request = ForcedWithdrawalRequest(len(self.forced), subaccount_id, amount_quantums, self.chain.now_ms)
        self.forced[request.request_id] = ForcedRequestState(request.request_id, forced_action(request),
                                                             self.chain.now_ms, False)
        return request

    def forced_trade_request(self, buyer: SubaccountId, seller: SubaccountId, market_id: str, size_base_quantums: int,
                             price_subticks: int) -> ForcedTradeRequest:
        """ForcedTrades.forcedTradeRequest (both parties' consent is assumed checked: StarkEx takes the
        counterparty's signature)."""
        if self.frozen:
            raise L1Error("STATE_FROZEN")
        request = ForcedTradeRequest(len(self.forced), buyer, seller, market_id, size_base_quantums, price_subticks,
                                     self.chain.now_ms)
        self.forced[request.request_id] = ForcedRequestState(request.request_id, forced_action(request),
                                                             self.chain.now_ms, False)
        return request

    def unserved_requests(self) -> list[ForcedRequestState]:
        return [state for state in self.forced.values() if not state.served]

    def freeze_request(self, request_id: int) -> None:
        """Anyone may freeze the exchange once a forced request is unserved past the grace period
        (Freezable.validateFreezeRequest: FORCED_ACTION_UNREQUESTED / FORCED_ACTION_PENDING)."""
        if self.frozen:
            raise L1Error("STATE_FROZEN")
        request = self.forced.get(request_id)
        if request is None or request.served:
            raise L1Error("FORCED_ACTION_UNREQUESTED")
        if self.chain.now_ms < request.requested_ms + self.grace_period_ms:
            raise L1Error("FORCED_ACTION_PENDING", f"grace period ends at {request.requested_ms + self.grace_period_ms}")
        self.frozen = True
        self.frozen_ms = self.chain.now_ms

    def escape(self, proof: StateProof) -> int:
        """PerpetualEscapes.escape: once per position, only when frozen, with a Merkle proof of the position at the
        last accepted root. Pays (as claimable) its value at that root's prices and funding indices, floored;
        nothing for a position worth <= 0. Returns the amount made claimable."""
        if not self.frozen:
            raise L1Error("NOT_FROZEN")
        if proof.position_id in self.escapes_used:
            raise L1Error("ESCAPE_ALREADY_USED")
        if self.backend is None or not proof.verify(self.backend, self.root):
            raise L1Error("ESCAPE_LACKS_PROOF")
        leaf = proof.leaf
        amount = max(account_value(leaf, proof.global_state), 0)
        self.escapes_used.add(proof.position_id)
        key = (leaf.owner_key, leaf.number)
        self.pending_withdrawals[key] = self.pending_withdrawals.get(key, 0) + amount
        return amount

    def escape_exchange(self, insurance: LiabilityProof, operator: LiabilityProof) -> tuple[int, int]:
        """The exchange's own balances (insurance fund, operator's fees and rounding) exit with proofs of their
        leaves in the last accepted liabilities tree. Returns (insurance, operator) amounts made claimable."""
        if not self.frozen:
            raise L1Error("NOT_FROZEN")
        if self.exchange_escaped:
            raise L1Error("ESCAPE_ALREADY_USED")
        if self.liabilities_root is None or self.backend is None:
            raise L1Error("ESCAPE_LACKS_PROOF", "no liabilities root was committed")
        for proof, number in ((insurance, 0), (operator, 1)):
            if proof.owner_key != 0 or proof.number != number or not proof.verify(self.backend, self.liabilities_root):
                raise L1Error("ESCAPE_LACKS_PROOF")
        self.exchange_escaped = True
        for proof in (insurance, operator):
            key = (0, proof.number)
            self.pending_withdrawals[key] = self.pending_withdrawals.get(key, 0) + proof.value_quote_quantums
        return insurance.value_quote_quantums, operator.value_quote_quantums


# --- the node: sequencer, prover and contract on one clock --------------------------------------------
class BatchTimeline(NamedTuple):
    batch_id: int
    n_txs: int
    closed_ms: int
    proof_ready_ms: int
    accepted_ms: int | None


class RollupNode:
    """Runs the operator: transactions go to the sequencer (a Deposit is first made on L1 by its user), each
    closed batch is proved (ready after the modelled proving time) and submitted to the contract once ready, in
    order. `censor` lists forced request ids the operator ignores. Time is transaction time.
    `on_accepted(batch, record)` is called after the contract accepts each batch (the simulator hooks in there)."""

    def __init__(self, sequencer: Sequencer, prover: Prover, contract: StarkExContract, *,
                 deposit_on_l1: bool = True, committee_members: int | None = None,
                 on_accepted: Callable[[Batch, UpdateRecord], None] | None = None) -> None:
        self.sequencer = sequencer
        self.prover = prover
        self.contract = contract
        self.deposit_on_l1 = deposit_on_l1
        self.committee_members = committee_members
        self.on_accepted = on_accepted
        self.queue: list[tuple[Batch, Proof, int]] = []
        self.timeline: list[BatchTimeline] = []
        self.censor: set[int] = set()
        self.served: set[int] = set()
        previous = sequencer.on_batch

        def on_batch(batch: Batch) -> None:
            if previous is not None:
                previous(batch)
            self._on_batch(batch)

        sequencer.on_batch = on_batch

    @classmethod
    def resume(cls, sequencer: Sequencer, prover: Prover, contract: StarkExContract, **options: Any) -> RollupNode:
        """The operator restarted with a resumed sequencer (`Sequencer.resume`) against the same L1 contract (the
        chain outlives the operator): the closed batches the contract has not accepted are proved again and
        queued, ready at their close time plus the proving time as before; every forced request a closed batch or
        the open batch already serves counts as served, so none is served twice."""
        node = cls(sequencer, prover, contract, **options)
        accepted_ms = {record.batch_id: record.accepted_ms for record in contract.updates}
        for batch in sequencer.batches.batches():
            node.served.update(resolution.request_id for resolution in batch.forced)
            if batch.batch_id >= contract.next_batch_id:
                node._on_batch(batch)
            else:
                ready = batch.closed_ts_ms + prover.prove(batch).proving_time_ms
                node.timeline.append(BatchTimeline(batch.batch_id, len(batch.txs), batch.closed_ts_ms, ready,
                                                   accepted_ms.get(batch.batch_id)))
        node.served.update(resolution.request_id for resolution in sequencer.open_forced)
        return node

    def submit(self, tx: Any, signature: Any = None) -> list:
        if self.deposit_on_l1 and type(tx) is Deposit:
            self.contract.chain.advance_to(tx.ts_ms)
            self.contract.deposit(tx.subaccount_id, tx.amount_quantums)
        self.advance(tx.ts_ms)
        return self.sequencer.submit(tx, signature)

    def submit_many(self, txs: Iterable[Any]) -> int:
        """Submit each transaction, skipping rejected ones (as a client would); returns how many were accepted."""
        accepted = 0
        for tx in txs:
            try:
                self.submit(tx)
            except PerpdexError:
                continue
            accepted += 1
        return accepted

    def serve_forced(self, ts_ms: int) -> None:
        """Include every unserved, uncensored forced request in the open batch."""
        for state in self.contract.unserved_requests():
            if state.request_id in self.censor or state.request_id in self.served:
                continue
            action = state.action
            if action[0] == "withdrawal":
                withdrawal = ForcedWithdrawalRequest(state.request_id, SubaccountId(action[1], action[2]), action[3],
                                                     state.requested_ms)
                self.sequencer.serve_forced_withdrawal(withdrawal, ts_ms)
                self.served.add(state.request_id)
            else:
                _, b_owner, b_number, s_owner, s_number, market_id, size, price = action
                trade = ForcedTradeRequest(state.request_id, SubaccountId(b_owner, b_number),
                                           SubaccountId(s_owner, s_number), market_id, size, price, state.requested_ms)
                self.sequencer.serve_forced_trade(trade, ts_ms)
                self.served.add(state.request_id)

    def _on_batch(self, batch: Batch) -> None:
        proof = self.prover.prove(batch)
        ready = batch.closed_ts_ms + proof.proving_time_ms
        self.queue.append((batch, proof, ready))
        self.timeline.append(BatchTimeline(batch.batch_id, len(batch.txs), batch.closed_ts_ms, ready, None))

    def advance(self, now_ms: int) -> None:
        """Submit, in order, every queued batch whose proof is ready by `now_ms`."""
        while self.queue and self.queue[0][2] <= now_ms and not self.contract.frozen:
            batch, proof, ready = self.queue[0]
            self.contract.chain.advance_to(ready)
            header = batch.header()
            if self.contract.data_availability is DataAvailability.ROLLUP:
                record = self.contract.update_state(header, proof, diff=diff_bytes(batch.changed, batch.global_fields))
            else:
                assert self.contract.committee is not None
                record = self.contract.update_state(header, proof,
                                                    committee_signatures=self.contract.committee.sign(
                                                        header, self.committee_members))
            self.queue.pop(0)  # only once accepted: a refused update stays queued (the operator may retry)
            self.timeline[batch.batch_id] = self.timeline[batch.batch_id]._replace(accepted_ms=self.contract.chain.now_ms)
            if self.on_accepted is not None:
                self.on_accepted(batch, record)

    def finish(self) -> None:
        """Close the open batch and submit every proof, however long it takes."""
        self.sequencer.flush()
        if self.queue:
            self.advance(max(ready for _, _, ready in self.queue))


# --- the escape drill ---------------------------------------------------------------------------------------------
@dataclass
class EscapeDrillReport:
    """What the drill did and the identity it proved, in quote quantums:
    sum of user exits + insurance exit + operator exit == collateral held at the frozen root, and the contract
    ends holding nothing once every claim and every pending deposit is paid."""

    root: int
    accounts: int
    exits_paid: int  # user escapes, summed
    accounts_with_nothing: int
    bad_debt: int
    insurance_exit: int
    operator_exit: int
    collateral_at_root: int
    withdrawals_claimed_before_freeze: int  # final withdrawals of accepted batches, claimed as usual
    escape_claims_paid: int  # what the contract paid out for the escapes (must equal the three exits)
    deposits_reclaimed: int
    contract_balance_after: int
    frozen_ms: int
    exits_equal_collateral: bool
    fees_collected: int = 0
    rounding: int = 0
    per_account: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = dict(self.__dict__)
        data["root"] = hex(self.root)
        data["per_account"] = {k: v for k, v in list(self.per_account.items())[:50]}
        return data


def escape_drill(node: RollupNode, *, progress: Callable[[int, int], None] | None = None) -> EscapeDrillReport:
    """Freeze a finished run and get everyone out: submit every batch, file a forced withdrawal the operator
    ignores, wait out the grace period, freeze, then escape every subaccount with its Merkle proof at the last
    accepted root, the insurance fund and the operator with liabilities proofs, and pay every claim.
    Raises L1Error if any step is refused (which would mean the escape hatch does not work)."""
    contract, sequencer = node.contract, node.sequencer
    node.finish()
    tree = sequencer.tree
    if tree.root != contract.root:
        raise L1Error("DRILL_NOT_SETTLED", "the last batch is not accepted")
    # withdrawals already final before the freeze are claimable as usual, then the censored request
    if not tree.subaccount_ids:
        raise L1Error("DRILL_EMPTY", "no subaccount to escape")
    paid_before = contract.paid_out
    for key in list(contract.pending_withdrawals):
        contract.withdraw(key)
    withdrawals_before = contract.paid_out - paid_before
    victim = tree.subaccount_ids[0]
    request = contract.forced_withdrawal_request(victim, 1)
    node.censor.add(request.request_id)
    contract.chain.advance_by(contract.grace_period_ms)
    contract.freeze_request(request.request_id)
    collateral_at_root = contract.collateral_at_root
    exits = 0
    empty = 0
    per_account: dict[str, int] = {}
    total = len(tree.subaccount_ids)
    for done, sid in enumerate(tree.subaccount_ids, start=1):
        amount = contract.escape(tree.state_proof(sid))
        exits += amount
        empty += amount == 0
        per_account[str(sid)] = amount
        if progress is not None and (done % 1000 == 0 or done == total):
            progress(done, total)
    insurance_proof, operator_proof = tree.exchange_liability_proofs()
    insurance_exit, operator_exit = contract.escape_exchange(insurance_proof, operator_proof)
    paid_before = contract.paid_out
    for key in list(contract.pending_withdrawals):
        contract.withdraw(key)
    escape_claims = contract.paid_out - paid_before
    reclaimed = 0
    for key in list(contract.pending_deposits):
        amount = contract.pending_deposits.pop(key)
        contract._pay(amount)
        reclaimed += amount
    state = tree.global_state
    assert state is not None
    bad_debt = tree.total_bad_debt
    return EscapeDrillReport(
        root=contract.root, accounts=total, exits_paid=exits, accounts_with_nothing=empty, bad_debt=bad_debt,
        insurance_exit=insurance_exit, operator_exit=operator_exit, collateral_at_root=collateral_at_root,
        withdrawals_claimed_before_freeze=withdrawals_before, escape_claims_paid=escape_claims,
        deposits_reclaimed=reclaimed, contract_balance_after=contract.balance, frozen_ms=contract.frozen_ms or 0,
        exits_equal_collateral=(exits + insurance_exit + operator_exit == collateral_at_root == escape_claims
                                and contract.balance == 0),
        fees_collected=state.fees_collected_quote_quantums,
        rounding=operator_exit - state.fees_collected_quote_quantums, per_account=per_account)
