"""The rollup's state commitment: a sparse Merkle tree of subaccount leaves plus the global market state, and a
Merkle-sum tree of account values (proof of liabilities). Only changed nodes are rehashed; both give proofs.

    tree = StateTree(make_backend("pedersen"))
    commitment = tree.commit(exchange)          # after a batch: changed leaves, nodes rehashed, new root
    proof = tree.state_proof(subaccount_id)     # membership proof against commitment.root
    assert proof.verify(make_backend("pedersen"), commitment.root)

State root = h(h(positions_root, global_state_hash), nonces_root): the nonces tree holds every (key, nonce) a signed
message used, so the root says which signed messages have executed (StarkEx keeps its orders tree in the state for
the same reason) and a new sequencer or verifier need not trust anyone's list. Position ids are assigned by the rollup in first-seen order
(new subaccounts of one batch in sorted SubaccountId order), so a replay with the same batches assigns the same
ids; each leaf carries its owner key and subaccount number, so a proof says whose position it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from perpdex.core.state import Subaccount, SubaccountId
from perpdex.rollup.encoding import (
    SUM_BITS,
    EncodingError,
    GlobalState,
    LeafData,
    account_value,
    global_state_of,
    leaf_of,
    market_asset_id,
)
from perpdex.rollup.hashing import HashBackend
from perpdex.rollup.parallel import HashWorkers

DEFAULT_HEIGHT = 64  # StarkEx PERPETUAL_POSITION_ID_UPPER_BOUND = 2**64 (PerpetualConstants.sol)
NONCE_TREE_HEIGHT = 64  # as StarkEx's orders tree (ORDER_TREE_HEIGHT = 64)
NONCE_KINDS = {"StarkOrder": 0, "StarkTransfer": 1, "StarkWithdrawal": 2}


def nonce_leaf(backend: HashBackend, public_key: int, nonce: int, kind: str) -> tuple[int, int]:
    """(slot, leaf) of a used nonce in the nonces tree: leaf = h(public key, kind << 64 | nonce), slot = its low
    64 bits. A slot holding another leaf is a collision, refused like a replay (odds ~2**-64 per pair)."""
    leaf = backend.hash2(public_key, (NONCE_KINDS[kind] << 64) | nonce)
    return leaf & ((1 << NONCE_TREE_HEIGHT) - 1), leaf
EMPTY_LEAF = 0
Node = TypeVar("Node")  # a tree node: a hash, or (hash, sum) in the Merkle-sum tree


class TreeError(ValueError):
    """A leaf index out of range, a negative sum, or a proof asked for an unknown subaccount."""


class SparseMerkleTree:
    """A binary Merkle tree of 2**height leaves, almost all empty (hash 0). Empty subtrees hash to a per-level
    default, so only non-default nodes are stored. `update` rehashes the union of the changed leaves' paths
    once each and returns how many internal nodes it hashed."""

    def __init__(self, backend: HashBackend, height: int = DEFAULT_HEIGHT, *, workers: int | None = 1) -> None:
        if not 1 <= height <= 251:
            raise TreeError("height must be within 1..251")
        self.backend = backend
        self.height = height
        self.hashers = HashWorkers(backend, workers)
        self.defaults = empty_subtree_hashes(backend, height)
        self.levels: list[dict[int, int]] = [{} for _ in range(height + 1)]

    @property
    def root(self) -> int:
        return self.levels[self.height].get(0, self.defaults[self.height])

    def leaf(self, index: int) -> int:
        return self.levels[0].get(index, EMPTY_LEAF)

    def update(self, leaves: Mapping[int, int]) -> int:
        """Set leaf hashes (index -> hash, 0 empties a leaf) and rehash their paths; returns internal nodes hashed."""
        if not leaves:
            return 0
        size = 1 << self.height
        level0 = self.levels[0]
        for index, leaf_hash in leaves.items():
            if not 0 <= index < size:
                raise TreeError(f"leaf index {index} outside the tree of height {self.height}")
            if leaf_hash:
                level0[index] = leaf_hash
            else:
                level0.pop(index, None)
        hash_pairs = self.hashers.pairs

        def hash_level(below: dict[int, int], default_below: int, parents: list[int]) -> list[int]:
            get = below.get
            return hash_pairs([(get(2 * parent, default_below), get(2 * parent + 1, default_below))
                               for parent in parents])

        return _rehash_upward(self.levels, self.defaults, leaves, hash_level)

    def proof(self, index: int) -> tuple[int, ...]:
        """Sibling hashes from the leaf's level up to just below the root."""
        if not 0 <= index < 1 << self.height:
            raise TreeError(f"leaf index {index} outside the tree")
        siblings = []
        for level in range(self.height):
            siblings.append(self.levels[level].get(index ^ 1, self.defaults[level]))
            index >>= 1
        return tuple(siblings)


def empty_subtree_hashes(backend: HashBackend, height: int) -> list[int]:
    """defaults[0] = empty leaf (0); defaults[l + 1] = h(defaults[l], defaults[l])."""
    defaults = [EMPTY_LEAF]
    for _ in range(height):
        defaults.append(backend.hash2(defaults[-1], defaults[-1]))
    return defaults


def merkle_root_from_path(backend: HashBackend, index: int, leaf_hash: int, siblings: tuple[int, ...]) -> int:
    node = leaf_hash
    for sibling in siblings:
        node = backend.hash2(sibling, node) if index & 1 else backend.hash2(node, sibling)
        index >>= 1
    return node


# --- Merkle-sum tree (proof of liabilities) ----------------------------------------------------------------
def sum_node_hash(backend: HashBackend, left: tuple[int, int], right: tuple[int, int]) -> int:
    """h(h(left hash, right hash), left sum << 125 | right sum): the node binds each child's sum, not only the
    total, so no prover can move value between siblings (the flaw of the first Merkle-sum proposals)."""
    return backend.hash2(backend.hash2(left[0], right[0]), (left[1] << SUM_BITS) | right[1])


def sum_leaf_hash(backend: HashBackend, owner_key: int, number: int, value: int) -> int:
    return backend.hash2(backend.hash2(owner_key, number), value)


class MerkleSumTree:
    """Like `SparseMerkleTree`, each node a (hash, sum) pair with sum = left sum + right sum, all sums >= 0."""

    def __init__(self, backend: HashBackend, height: int = DEFAULT_HEIGHT, *, workers: int | None = 1) -> None:
        self.backend = backend
        self.height = height
        self.hashers = HashWorkers(backend, workers)
        defaults = [(0, 0)]
        for _ in range(height):
            defaults.append((sum_node_hash(backend, defaults[-1], defaults[-1]), 0))
        self.defaults = defaults
        self.levels: list[dict[int, tuple[int, int]]] = [{} for _ in range(height + 1)]

    @property
    def root(self) -> tuple[int, int]:
        return self.levels[self.height].get(0, self.defaults[self.height])

    def update(self, leaves: Mapping[int, tuple[int, int]]) -> int:
        """Set (leaf hash, value) pairs; (0, 0) empties a leaf. Returns internal nodes hashed."""
        if not leaves:
            return 0
        level0 = self.levels[0]
        for index, (leaf_hash, value) in leaves.items():
            if not 0 <= value < 1 << SUM_BITS or not 0 <= index < 1 << self.height:
                raise TreeError(f"sum leaf {index} value {value} out of range")
            if leaf_hash or value:
                level0[index] = (leaf_hash, value)
            else:
                level0.pop(index, None)
        limit = 1 << SUM_BITS
        sum_nodes = self.hashers.sum_nodes

        def hash_level(below: dict[int, tuple[int, int]], default_below: tuple[int, int],
                       parents: list[int]) -> list[tuple[int, int]]:
            items, totals = [], []
            for parent in parents:
                left = below.get(2 * parent, default_below)
                right = below.get(2 * parent + 1, default_below)
                total = left[1] + right[1]
                if total >= limit:
                    raise TreeError("liabilities sum exceeds the tree's sum width")
                items.append((left[0], right[0], (left[1] << SUM_BITS) | right[1]))  # as sum_node_hash
                totals.append(total)
            return list(zip(sum_nodes(items), totals))

        return _rehash_upward(self.levels, self.defaults, leaves, hash_level)

    def leaf(self, index: int) -> tuple[int, int]:
        return self.levels[0].get(index, (0, 0))

    def proof(self, index: int) -> tuple[tuple[int, int], ...]:
        siblings = []
        for level in range(self.height):
            siblings.append(self.levels[level].get(index ^ 1, self.defaults[level]))
            index >>= 1
        return tuple(siblings)


def sum_root_from_path(backend: HashBackend, index: int, leaf: tuple[int, int],
                       siblings: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """Recompute the (hash, sum) root; raises TreeError on a negative or oversized sibling sum."""
    node = leaf
    for sibling in siblings:
        if not 0 <= sibling[1] < 1 << SUM_BITS:
            raise TreeError("a sibling sum is out of range")
        left, right = (sibling, node) if index & 1 else (node, sibling)
        node = (sum_node_hash(backend, left, right), left[1] + right[1])
        index >>= 1
    return node


# --- proofs ----------------------------------------------------------------------------------------------
class StateProof(NamedTuple):
    """A subaccount's leaf preimage and Merkle path, with the global state preimage: enough to recompute the
    state root, and so to value the subaccount at that root (the escape hatch's proof)."""

    position_id: int
    leaf_fields: tuple[int, ...]
    siblings: tuple[int, ...]
    global_fields: tuple[int, ...]
    nonces_root: int  # the nonces tree's root at that state (a sibling of the position and global part)

    @property
    def leaf(self) -> LeafData:
        return LeafData.from_fields(self.leaf_fields)

    @property
    def global_state(self) -> GlobalState:
        return GlobalState.from_fields(self.global_fields)

    def computed_root(self, backend: HashBackend) -> int:
        positions_root = merkle_root_from_path(backend, self.position_id, self.leaf.leaf_hash(backend), self.siblings)
        return backend.hash2(backend.hash2(positions_root, self.global_state.state_hash(backend)), self.nonces_root)

    def verify(self, backend: HashBackend, root: int) -> bool:
        try:
            return self.computed_root(backend) == root
        except (EncodingError, TreeError, ValueError):
            return False

    def to_json(self) -> dict:
        return {"position_id": self.position_id, "leaf_fields": [hex(x) for x in self.leaf_fields],
                "siblings": [hex(x) for x in self.siblings], "global_fields": [hex(x) for x in self.global_fields],
                "nonces_root": hex(self.nonces_root)}

    @classmethod
    def from_json(cls, data: dict) -> StateProof:
        return cls(int(data["position_id"]), tuple(int(x, 16) for x in data["leaf_fields"]),
                   tuple(int(x, 16) for x in data["siblings"]), tuple(int(x, 16) for x in data["global_fields"]),
                   int(data["nonces_root"], 16))


class LiabilityProof(NamedTuple):
    """A leaf of the Merkle-sum tree and its path: the user checks their value is included and, with the root's
    sum, that the sum equals the collateral the L1 contract holds."""

    leaf_index: int
    owner_key: int
    number: int
    value_quote_quantums: int
    siblings: tuple[tuple[int, int], ...]

    def verify(self, backend: HashBackend, root: tuple[int, int]) -> bool:
        try:
            leaf = (sum_leaf_hash(backend, self.owner_key, self.number, self.value_quote_quantums),
                    self.value_quote_quantums)
            return sum_root_from_path(backend, self.leaf_index, leaf, self.siblings) == tuple(root)
        except TreeError:
            return False


# --- the commitment manager -----------------------------------------------------------------------------
class LeafUpdate(NamedTuple):
    """One changed leaf of a batch's state diff."""

    position_id: int
    subaccount_id: SubaccountId
    leaf: LeafData
    leaf_hash: int


@dataclass(frozen=True)
class Commitment:
    """The state commitment after a batch and what it cost to compute."""

    root: int
    positions_root: int
    global_state: GlobalState
    global_hash: int
    nonces_root: int
    changed: tuple[LeafUpdate, ...]
    new_positions: tuple[tuple[SubaccountId, int], ...]  # ids assigned in this batch
    nodes_rehashed: int  # internal nodes of the position tree
    leaf_hashes: int  # hash calls spent on leaf preimages (and the global state and root)
    liabilities_root: tuple[int, int] | None
    liabilities_nodes_rehashed: int
    root_update_s: float  # wall time of the position tree + root part (not the liabilities)
    liabilities_s: float
    timings: dict = field(default_factory=dict, compare=False)


class StateTree:
    """The rollup state over an `Exchange`: position ids, leaves, the position tree, the global state and the
    liabilities tree. `commit(exchange)` brings all of them up to the exchange's current state.

    A subaccount changed since the last commit is found by object identity: `Exchange` replaces a subaccount
    object whenever it changes one (handlers edit copies; `Exchange._commit` swaps them in). Its leaf is then
    re-encoded and compared, so an unchanged copy costs no hash. `rebuild` recomputes everything from scratch;
    tests check the two agree.
    """

    INSURANCE_LEAF_OFFSET = 1  # liabilities leaves at 2**height - 1 (insurance fund) and - 2 (operator)
    OPERATOR_LEAF_OFFSET = 2

    def __init__(self, backend: HashBackend, height: int = DEFAULT_HEIGHT, *, commit_liabilities: bool = True,
                 workers: int | None = None) -> None:
        self.backend = backend
        self.height = height
        self.workers = workers
        self.hashers = HashWorkers(backend, workers)
        self.positions = SparseMerkleTree(backend, height, workers=workers)
        self.commit_liabilities = commit_liabilities
        self.liabilities = MerkleSumTree(backend, height, workers=workers) if commit_liabilities else None
        self.nonces = SparseMerkleTree(backend, NONCE_TREE_HEIGHT)
        self.position_ids: dict[SubaccountId, int] = {}
        self.subaccount_ids: list[SubaccountId] = []  # by position id
        self.leaves: dict[int, LeafData] = {}
        self.global_state: GlobalState | None = None
        self.global_hash = 0
        self.root = backend.hash2(backend.hash2(self.positions.root, 0), self.nonces.root)
        self._seen: dict[SubaccountId, Subaccount] = {}
        self._payouts: dict[int, int] = {}  # position id -> max(value, 0)
        self._bad_debt: dict[int, int] = {}  # position id -> max(-value, 0)
        self.total_payouts = 0
        self.total_bad_debt = 0

    # --- committing -------------------------------------------------------------------------------
    def nonce_used(self, public_key: int, nonce: int, kind: str) -> bool:
        """Whether the nonces tree already holds this (key, nonce, kind), or its slot is taken by another."""
        slot, _ = nonce_leaf(self.backend, public_key, nonce, kind)
        return self.nonces.leaf(slot) != 0

    def commit(self, exchange, used_nonces: Iterable[tuple[int, int, str]] = ()) -> Commitment:
        """Bring the tree up to `exchange` and add `used_nonces` ((public key, nonce, message kind) of the batch's
        signed messages) to the nonces tree. Raises TreeError on a nonce already in the tree."""
        started = time.perf_counter()
        nonce_leaves: dict[int, int] = {}
        for public_key, nonce, kind in used_nonces:
            slot, leaf = nonce_leaf(self.backend, public_key, nonce, kind)
            if self.nonces.leaf(slot) or slot in nonce_leaves:
                raise TreeError(f"nonce {nonce} of key {public_key:#x} is already used (or its slot is taken)")
            nonce_leaves[slot] = leaf
        if nonce_leaves:
            self.nonces.update(nonce_leaves)
        calls_before = self.backend.calls
        changed_ids = [sid for sid, sub in exchange.subaccounts.items() if self._seen.get(sid) is not sub]
        new_ids = sorted(sid for sid in changed_ids if sid not in self.position_ids)
        new_positions = []
        for sid in new_ids:
            position_id = len(self.subaccount_ids)
            if position_id >= (1 << self.height) - 2:
                raise TreeError("the position tree is full")
            self.position_ids[sid] = position_id
            self.subaccount_ids.append(sid)
            new_positions.append((sid, position_id))
        subaccounts = exchange.subaccounts
        changed: list[tuple[int, SubaccountId, LeafData]] = []
        for sid in sorted(changed_ids, key=self.position_ids.__getitem__):
            sub = subaccounts[sid]
            self._seen[sid] = sub
            position_id = self.position_ids[sid]
            leaf = leaf_of(sub)
            if self.leaves.get(position_id) == leaf:
                continue
            self.leaves[position_id] = leaf
            changed.append((position_id, sid, leaf))
        leaf_hashes = self.hashers.leaves([leaf for _, _, leaf in changed])
        updates = [LeafUpdate(position_id, sid, leaf, leaf_hash)
                   for (position_id, sid, leaf), leaf_hash in zip(changed, leaf_hashes)]
        encoded_s = time.perf_counter() - started
        leaf_calls = self.backend.calls - calls_before
        tree_started = time.perf_counter()
        rehashed = self.positions.update({u.position_id: u.leaf_hash for u in updates})
        tree_s = time.perf_counter() - tree_started
        previous_global = self.global_state
        global_state = global_state_of(exchange, len(self.subaccount_ids))
        calls_before_root = self.backend.calls
        global_hash = global_state.state_hash(self.backend) if global_state != previous_global else self.global_hash
        root = self.backend.hash2(self.backend.hash2(self.positions.root, global_hash), self.nonces.root)
        leaf_calls += self.backend.calls - calls_before_root
        self.global_state, self.global_hash, self.root = global_state, global_hash, root
        root_update_s = time.perf_counter() - started
        liabilities_root, liabilities_nodes, liabilities_s = None, 0, 0.0
        if self.liabilities is not None:
            liabilities_started = time.perf_counter()
            liabilities_nodes = self._update_liabilities(exchange, updates, previous_global, global_state)
            liabilities_root = self.liabilities.root
            liabilities_s = time.perf_counter() - liabilities_started
        return Commitment(root, self.positions.root, global_state, global_hash, self.nonces.root, tuple(updates),
                          tuple(new_positions),
                          rehashed, leaf_calls, liabilities_root, liabilities_nodes, root_update_s, liabilities_s,
                          {"encode_s": encoded_s, "tree_s": tree_s})

    def _update_liabilities(self, exchange, updates: list[LeafUpdate], previous: GlobalState | None,
                            state: GlobalState) -> int:
        """Revalue the changed leaves and every holder of a market whose price or funding index moved."""
        assert self.liabilities is not None
        revalue = {u.position_id for u in updates}
        old_markets = {m.asset_id: m for m in previous.markets} if previous is not None else {}
        for market_id, holders in exchange.holders.items():
            asset_id = market_asset_id(market_id)
            old, new = old_markets.get(asset_id), state.market(asset_id)
            if old is None or old.oracle_price_subticks != new.oracle_price_subticks \
                    or old.funding_index != new.funding_index:
                revalue.update(self.position_ids[sid] for sid in holders)
        backend = self.backend
        ids = list(revalue)
        payouts = []
        for position_id in ids:
            value = account_value(self.leaves[position_id], state)
            payout, bad = (value, 0) if value >= 0 else (0, -value)
            self.total_payouts += payout - self._payouts.get(position_id, 0)
            self.total_bad_debt += bad - self._bad_debt.get(position_id, 0)
            self._payouts[position_id], self._bad_debt[position_id] = payout, bad
            payouts.append(payout)
        # sum_leaf_hash = h(h(owner key, number), payout), computed as two rounds over every core
        owners = self.hashers.pairs([(self.leaves[i].owner_key, self.leaves[i].number) for i in ids])
        hashes = self.hashers.pairs(list(zip(owners, payouts)))
        leaves: dict[int, tuple[int, int]] = {i: (h, payout) for i, h, payout in zip(ids, hashes, payouts)}
        insurance, operator = self.exchange_leaf_values(state)
        top = 1 << self.height
        leaves[top - self.INSURANCE_LEAF_OFFSET] = (sum_leaf_hash(backend, 0, 0, insurance), insurance)
        leaves[top - self.OPERATOR_LEAF_OFFSET] = (sum_leaf_hash(backend, 0, 1, operator), operator)
        return self.liabilities.update(leaves)

    def exchange_leaf_values(self, state: GlobalState) -> tuple[int, int]:
        """(insurance fund leaf, operator leaf) of the liabilities tree.

        held = sum of user payouts - bad debt + rounding + fees + insurance (the core's conservation invariant,
        with every account valued exactly and floored). The insurance fund absorbs bad debt first; the operator
        keeps fees plus rounding, i.e. what remains: held - payouts - insurance + bad debt. Both are >= 0 unless
        the exchange is insolvent (then the insurance leaf is 0 and the tree sums to more than is held).
        """
        insurance = max(state.insurance_fund_quote_quantums - self.total_bad_debt, 0)
        operator = (state.collateral_held_quote_quantums - self.total_payouts
                    - state.insurance_fund_quote_quantums + self.total_bad_debt)
        if operator < 0:
            raise TreeError(f"operator leaf {operator} < 0: the exchange state does not conserve collateral")
        return insurance, operator

    def rebuild(self, exchange) -> Commitment:
        """Forget everything and commit the exchange from scratch (same ids: first-seen order is kept)."""
        order = list(self.subaccount_ids)
        fresh = StateTree(self.backend, self.height, commit_liabilities=self.commit_liabilities, workers=self.workers)
        for position_id, sid in enumerate(order):
            fresh.position_ids[sid] = position_id
            fresh.subaccount_ids.append(sid)
        fresh.nonces = self.nonces  # used nonces are history, not exchange state: kept as they are
        commitment = fresh.commit(exchange)
        self.__dict__.update(fresh.__dict__)
        return commitment

    # --- proofs ---------------------------------------------------------------------------------
    def position_id(self, subaccount_id: SubaccountId) -> int:
        position_id = self.position_ids.get(subaccount_id)
        if position_id is None:
            raise TreeError(f"subaccount {subaccount_id} has no position in the state tree")
        return position_id

    def state_proof(self, subaccount_id: SubaccountId) -> StateProof:
        if self.global_state is None:
            raise TreeError("nothing committed yet")
        position_id = self.position_id(subaccount_id)
        return StateProof(position_id, self.leaves[position_id].fields(), self.positions.proof(position_id),
                          self.global_state.fields(), self.nonces.root)

    def liability_proof(self, subaccount_id: SubaccountId) -> LiabilityProof:
        if self.liabilities is None:
            raise TreeError("this tree does not commit liabilities")
        position_id = self.position_id(subaccount_id)
        leaf = self.leaves[position_id]
        return LiabilityProof(position_id, leaf.owner_key, leaf.number, self._payouts.get(position_id, 0),
                              self.liabilities.proof(position_id))

    def exchange_liability_proofs(self) -> tuple[LiabilityProof, LiabilityProof]:
        """Proofs of the insurance fund and operator leaves (owner key 0, numbers 0 and 1)."""
        assert self.liabilities is not None
        top = 1 << self.height
        proofs = []
        for number, offset in ((0, self.INSURANCE_LEAF_OFFSET), (1, self.OPERATOR_LEAF_OFFSET)):
            index = top - offset
            proofs.append(LiabilityProof(index, 0, number, self.liabilities.leaf(index)[1],
                                         self.liabilities.proof(index)))
        return proofs[0], proofs[1]


def _rehash_upward(levels: list[dict[int, Node]], defaults: list[Node], leaves: Iterable[int],
                   hash_level: Callable[[dict[int, Node], Node, list[int]], list[Node]]) -> int:
    """Rehash every ancestor of the changed leaves, level by level up to the root. `hash_level(below,
    default below, parents)` gives the parents' new nodes (one level's nodes are independent of each other,
    so they are hashed together, on every core); a node equal to its level's default is not stored.
    Returns the number of internal nodes rehashed."""
    dirty = {index >> 1 for index in leaves}
    rehashed = 0
    for level in range(len(levels) - 1):
        above, default_above = levels[level + 1], defaults[level + 1]
        parents = list(dirty)
        for parent, node in zip(parents, hash_level(levels[level], defaults[level], parents)):
            if node == default_above:
                above.pop(parent, None)
            else:
                above[parent] = node
        rehashed += len(parents)
        dirty = {parent >> 1 for parent in parents}
    return rehashed
