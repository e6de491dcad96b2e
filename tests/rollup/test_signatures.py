"""STARK-key signatures: dYdX v3's own golden signatures reproduce with perpdex's message layout; fast-stark-crypto
and StarkWare's C++ agree; the sequencer requires signatures when asked, rejects bad ones and replayed nonces; the
verifier re-checks them."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from crypto_cpp_py.cpp_bindings import cpp_verify
from crypto_cpp_py.utils import cpp_inv_mod_curve_size

from perpdex.core.errors import PerpdexError
from perpdex.core.exchange import Exchange
from perpdex.core.orders import Side
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, OraclePrice, OracleUpdate, PlaceOrder, Transfer, Withdraw
from perpdex.core.units import QUOTE
from perpdex.rollup import (
    BatchPolicy,
    MemoryTxStore,
    ReexecutionProver,
    ReexecutionVerifier,
    Sequencer,
    StateProof,
    StateTree,
    VerificationError,
    make_backend,
)
from perpdex.rollup.batch import SignedEntry
from perpdex.rollup.signatures import (
    ReplayedNonceError,
    SignatureError,
    StarkOrder,
    StarkTransfer,
    StarkWithdrawal,
    expiration_hours,
    nonce_from_client_id,
    order_message,
    public_key,
    sign,
    sign_message,
    verify,
    verify_many,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "stark_vectors.json").read_text())
KEYS = {name: int(pair["private"], 16) for name, pair in VECTORS["keys"].items()}
BTC = 100_000


def _split(signature_hex: str) -> tuple[int, int]:
    return int(signature_hex[:64], 16), int(signature_hex[64:], 16)


def _order() -> StarkOrder:
    o = VECTORS["order"]
    return StarkOrder(o["position_id"], o["is_buying_synthetic"], int(o["asset_id_synthetic"], 16),
                      int(o["asset_id_collateral"], 16), o["quantums_amount_synthetic"],
                      o["quantums_amount_collateral"], o["quantums_amount_fee"], nonce_from_client_id(o["client_id"]),
                      o["expiration_epoch_hours"])


def _transfer() -> StarkTransfer:
    t = VECTORS["transfer"]
    return StarkTransfer(t["sender_position_id"], t["receiver_position_id"], int(t["receiver_public_key"], 16),
                         t["quantums_amount"], nonce_from_client_id(t["client_id"]), t["expiration_epoch_hours"],
                         int(t["asset_id_collateral"], 16))


def _withdrawal() -> StarkWithdrawal:
    w = VECTORS["withdrawal"]
    return StarkWithdrawal(w["position_id"], w["quantums_amount"], nonce_from_client_id(w["client_id"]),
                           w["expiration_epoch_hours"], int(w["asset_id_collateral"], 16))


GOLDEN = [
    ("order, odd y", _order, "order", "odd_y"),
    ("order, even y", _order, "order", "even_y"),
    ("transfer", _transfer, "transfer", "odd_y"),
    ("withdrawal", _withdrawal, "withdrawal", "odd_y"),
]


@pytest.mark.parametrize("make, kind, key", [g[1:] for g in GOLDEN], ids=[g[0] for g in GOLDEN])
def test_dydx_v3_client_signatures_reproduce_and_verify(make, kind, key):
    message_hash = make().message_hash()
    expected = _split(VECTORS[kind]["signatures"][key])
    assert sign(KEYS[key], message_hash) == expected  # same hash layout, same RFC 6979 nonce as dydx3
    public = int(VECTORS["keys"][key]["public"], 16)
    assert public_key(KEYS[key]) == public
    assert verify(public, message_hash, *expected)
    r, s = expected
    assert cpp_verify(message_hash, r, cpp_inv_mod_curve_size(s), public)  # StarkWare's C++ agrees
    assert not verify(public, message_hash ^ 1, r, s)


def test_fast_signatures_verify_with_starkware_cpp_on_random_messages():
    rng = random.Random(5)
    for _ in range(5):
        private = rng.randrange(1, 2**250)
        message = rng.randrange(2**251)
        r, s = sign(private, message)
        assert cpp_verify(message, r, cpp_inv_mod_curve_size(s), public_key(private))


def test_verify_many_on_two_threads_agrees_with_one():
    private = 0x1234567
    public = public_key(private)
    items = []
    for message in range(1, 21):
        r, s = sign(private, message)
        items.append((public, message, r, s if message % 5 else s ^ 1))  # every 5th is bad
    assert verify_many(items, workers=2) == verify_many(items, workers=1) == [m % 5 != 0 for m in range(1, 21)]


# --- the sequencer -------------------------------------------------------------------------------------------
ALICE_KEY, BOB_KEY = 0xA11CE, 0xB0B


def _owner(private: int) -> SubaccountId:
    return SubaccountId(hex(public_key(private)))


@pytest.fixture()
def signed_setup(markets):
    seq = Sequencer(MemoryTxStore(Exchange(markets)), StateTree(make_backend("blake2s")), BatchPolicy(100, None),
                    require_signatures=True)
    alice, bob = _owner(ALICE_KEY), _owner(BOB_KEY)
    seq.submit(Deposit(1, alice, 10_000 * QUOTE))
    seq.submit(Deposit(1, bob, 10_000 * QUOTE))
    seq.submit(OracleUpdate(1, (OraclePrice("BTC-USD", (100_000 * BTC,)),)))
    seq.flush()  # position ids are committed with the batch
    return seq, alice, bob


def _signed_order(seq, who, key, side, size, price, *, nonce, ts=2):
    tx = PlaceOrder(ts, who, "BTC-USD", side, size, price)
    message = order_message(tx, seq.tree.position_ids[who], -9, limit_fee_ppm=1_000, nonce=nonce,
                            expiration_epoch_hours=expiration_hours(ts) + 24)
    return tx, sign_message(message, key)


def test_the_sequencer_requires_valid_signatures_and_rejects_replays(signed_setup):
    seq, alice, bob = signed_setup
    sell, sell_sig = _signed_order(seq, bob, BOB_KEY, Side.SELL, 10_000_000, 100_000 * BTC, nonce=1)
    with pytest.raises(SignatureError):
        seq.submit(sell)  # unsigned through a signing sequencer
    with pytest.raises(SignatureError):
        seq.submit(sell, sign_message(sell_sig.message, ALICE_KEY))  # the wrong key
    with pytest.raises(SignatureError):
        seq.submit(sell, sell_sig._replace(r=sell_sig.r ^ 1))  # a broken signature
    with pytest.raises(SignatureError):
        seq.submit(sell._replace(size_base_quantums=20_000_000), sell_sig)  # a different order than signed
    seq.submit(sell, sell_sig)
    with pytest.raises(ReplayedNonceError):
        seq.submit(sell, sell_sig)  # the same signed order again
    buy, buy_sig = _signed_order(seq, alice, ALICE_KEY, Side.BUY, 10_000_000, 100_000 * BTC, nonce=1)
    events = seq.submit(buy, buy_sig)  # the same nonce under another key is fine
    assert any(type(e).__name__ == "Fill" for e in events)
    withdrawal = Withdraw(3, alice, QUOTE)
    message = StarkWithdrawal(seq.tree.position_ids[alice], QUOTE, 7, expiration_hours(3) + 1)
    seq.submit(withdrawal, sign_message(message, ALICE_KEY))
    transfer = Transfer(3, alice, bob, QUOTE)
    message = StarkTransfer(seq.tree.position_ids[alice], seq.tree.position_ids[bob], public_key(BOB_KEY), QUOTE, 8,
                            expiration_hours(3) + 1)
    seq.submit(transfer, sign_message(message, ALICE_KEY))
    assert len(seq.flush().signatures) == 4


def test_the_verifier_rechecks_signatures_in_a_batch(markets, signed_setup):
    seq, _, bob = signed_setup
    sell, sell_sig = _signed_order(seq, bob, BOB_KEY, Side.SELL, 10_000_000, 100_000 * BTC, nonce=1)
    seq.submit(sell, sell_sig)
    batch = seq.flush()
    batches = list(seq.batches.batches())
    verifier = ReexecutionVerifier(lambda: Exchange(markets), backend="blake2s")
    prover = ReexecutionProver()
    verifier.verify(batches[0].header(), prover.prove(batches[0]))
    forged = replace(batch, signatures=(SignedEntry(0, sell_sig._replace(s=sell_sig.s ^ 2)),))
    with pytest.raises(VerificationError):
        verifier.verify(forged.header(), prover.prove(forged))
    verifier.verify(batch.header(), prover.prove(batch))


def test_submit_many_checks_signatures_on_threads_and_matches_one_by_one(markets):
    def setup():
        seq = Sequencer(MemoryTxStore(Exchange(markets)), StateTree(make_backend("blake2s")), BatchPolicy(100, None),
                        require_signatures=True)
        for who in (_owner(ALICE_KEY), _owner(BOB_KEY)):
            seq.submit(Deposit(1, who, 10_000 * QUOTE))
        seq.submit(OracleUpdate(1, (OraclePrice("BTC-USD", (100_000 * BTC,)),)))
        seq.flush()
        return seq

    reference = setup()
    alice, bob = _owner(ALICE_KEY), _owner(BOB_KEY)
    items = []
    for nonce in range(1, 9):
        side, who, key = (Side.SELL, bob, BOB_KEY) if nonce % 2 else (Side.BUY, alice, ALICE_KEY)
        items.append(_signed_order(reference, who, key, side, 10_000_000, (100_000 + nonce) * BTC, nonce=nonce))
    items.append(items[0])  # a replayed nonce
    tx, envelope = _signed_order(reference, alice, ALICE_KEY, Side.BUY, 10_000_000, 90_000 * BTC, nonce=20)
    items.append((tx, envelope._replace(s=envelope.s ^ 1)))  # a broken signature
    items.append((items[2][0], None))  # unsigned
    one_by_one = []
    for tx, envelope in items:
        try:
            one_by_one.append(reference.submit(tx, envelope))
        except PerpdexError as error:
            one_by_one.append(error)
    batched = setup()
    results = batched.submit_many(items, workers=2)
    assert [type(r) if isinstance(r, PerpdexError) else r for r in results] == \
        [type(r) if isinstance(r, PerpdexError) else r for r in one_by_one]
    assert [type(r) for r in results[-3:]] == [ReplayedNonceError, SignatureError, SignatureError]
    assert batched.flush().root == reference.flush().root


def test_used_nonces_are_committed_in_the_state_root(markets, signed_setup):
    """The root commits to the nonces tree: a sequencer that lost its in-memory list still refuses a replay of
    a committed nonce, and a batch that hides a signature fails verification (its root no longer matches)."""
    from perpdex.rollup.sequencer import NonceRegistry

    seq, _, bob = signed_setup
    before = seq.tree.nonces.root
    sell, sell_sig = _signed_order(seq, bob, BOB_KEY, Side.SELL, 10_000_000, 100_000 * BTC, nonce=1)
    seq.submit(sell, sell_sig)
    batch = seq.flush()
    assert seq.tree.nonces.root != before and seq.tree.nonce_used(sell_sig.public_key, 1, "StarkOrder")
    seq.nonces = NonceRegistry()  # as if the list were lost: the committed tree still knows
    again, again_sig = _signed_order(seq, bob, BOB_KEY, Side.SELL, 10_000_000, 101_000 * BTC, nonce=1, ts=3)
    with pytest.raises(ReplayedNonceError):
        seq.submit(again, again_sig)
    verifier = ReexecutionVerifier(lambda: Exchange(markets), backend="blake2s")
    prover = ReexecutionProver()
    first = next(seq.batches.batches())
    verifier.verify(first.header(), prover.prove(first))
    hidden = replace(batch, signatures=())
    with pytest.raises(VerificationError):
        verifier.verify(hidden.header(), prover.prove(hidden))
    verifier.verify(batch.header(), prover.prove(batch))
    proof = seq.tree.state_proof(bob)
    assert proof.nonces_root == seq.tree.nonces.root and proof.verify(make_backend("blake2s"), seq.tree.root)
    assert StateProof.from_json(proof.to_json()) == proof
