"""The rollup layer (StarkEx model): sequencer and batches, the state tree and proof of liabilities, STARK-key
signatures, fairness checks, provers and verifiers, and the L1 contract with forced requests and the escape hatch.

    from perpdex.rollup import build_node
    node = build_node(markets)                    # sequencer + re-execution prover + L1 contract (rollup mode)
    node.submit_many(txs); node.finish()          # batches closed, proved, accepted
    report = escape_drill(node)                   # freeze, everyone exits, exits sum to the collateral held
"""

from __future__ import annotations

from collections.abc import Iterable

from perpdex.core.exchange import Exchange
from perpdex.core.params import MarketParams
from perpdex.rollup.batch import (
    Batch,
    BatchHeader,
    BatchPolicy,
    DurableTxStore,
    ForcedResolution,
    JsonlBatchStore,
    JsonlJournal,
    MemoryBatchStore,
    MemoryJournal,
    MemoryTxStore,
    Modification,
)
from perpdex.rollup.encoding import GlobalState, LeafData, account_value, account_value_exact
from perpdex.rollup.hashing import BACKENDS, STARK_PRIME, make_backend
from perpdex.rollup.l1 import (
    Committee,
    DataAvailability,
    EscapeDrillReport,
    GasModel,
    L1Chain,
    L1Error,
    RollupNode,
    StarkExContract,
    escape_drill,
)
from perpdex.rollup.prover import (
    Proof,
    ProvingTimeModel,
    ReexecutionProver,
    ReexecutionVerifier,
    VerificationError,
)
from perpdex.rollup.sequencer import ForcedTradeRequest, ForcedWithdrawalRequest, ResumeError, Sequencer
from perpdex.rollup.tree import Commitment, LiabilityProof, StateProof, StateTree


def build_node(markets: Iterable[MarketParams], *, backend: str = "pedersen", policy: BatchPolicy | None = None,
               data_availability: DataAvailability = DataAvailability.ROLLUP, committee: Committee | None = None,
               proving: ProvingTimeModel | None = None, height: int = 64, store=None, batches=None,
               require_signatures: bool = False, liquidations_config=None, commit_liabilities: bool = True,
               check_validity: bool = True, on_accepted=None) -> RollupNode:
    """A ready operator on one chain: sequencer over a fresh exchange (or `store`), re-execution prover and
    verifier (`check_validity`: StarkEx fairness checks too), and a contract starting at the empty state's root;
    `on_accepted(batch, record)` runs after each accepted batch (RollupNode)."""
    markets = list(markets)

    def make_exchange() -> Exchange:
        return Exchange(markets, liquidations_config)

    tx_store = store if store is not None else MemoryTxStore(make_exchange())
    tree = StateTree(make_backend(backend), height, commit_liabilities=commit_liabilities)
    sequencer = Sequencer(tx_store, tree, policy or BatchPolicy(), batches=batches, require_signatures=require_signatures)
    verifier = ReexecutionVerifier(make_exchange, backend=backend, height=height, commit_liabilities=commit_liabilities,
                                   check_validity=check_validity)
    contract = StarkExContract(L1Chain(), verifier, genesis_root=tree.root, data_availability=data_availability,
                               committee=committee, backend=make_backend(backend))
    return RollupNode(sequencer, ReexecutionProver(proving), contract, on_accepted=on_accepted)


__all__ = [
    "BACKENDS", "STARK_PRIME", "Batch", "BatchHeader", "BatchPolicy", "Commitment", "Committee", "DataAvailability",
    "DurableTxStore", "EscapeDrillReport", "ForcedResolution", "ForcedTradeRequest", "ForcedWithdrawalRequest",
    "GasModel", "GlobalState", "JsonlBatchStore", "JsonlJournal", "L1Chain", "L1Error", "LeafData",
    "LiabilityProof", "MemoryBatchStore", "MemoryJournal", "MemoryTxStore", "Modification", "Proof",
    "ProvingTimeModel", "ReexecutionProver", "ReexecutionVerifier", "ResumeError", "RollupNode", "Sequencer", "StarkExContract", "StateProof", "StateTree",
    "VerificationError", "account_value", "account_value_exact", "build_node", "escape_drill", "make_backend",
]
