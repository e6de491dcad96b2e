"""STARK-curve signatures of orders, transfers and withdrawals with the dYdX v3 / StarkEx perpetual message
layout, so a message signed by dYdX v3's own client verifies here; ECDSA through fast-stark-crypto.

Message hashes follow dydxprotocol/dydx-v3-python @73252e3, `dydx3/starkex/`:
- `order.py` SignableOrder._calculate_hash: h(h(h(h(sell asset, buy asset), fee asset), part 1), part 2) with
  part 1 = amount sell | amount buy | amount fee | nonce (64, 64, 64, 32 bits) and
  part 2 = ORDER_PREFIX 3 | position id x 3 | expiration hours | 17 zero bits;
- `transfer.py` SignableTransfer._calculate_hash (prefix 4, 81 padding bits);
- `withdrawal.py` SignableWithdrawal._calculate_hash (prefix 6, 49 padding bits);
- `constants.py` for the field widths, `dydx3/constants.py` for asset ids.
The same layout is StarkEx's (stark-perpetual `order/limit_order.cairo`, `transactions/transfer.cairo`).
Golden vectors: tests/vectors/stark_vectors.json (from dydx-v3-python tests/starkex/*.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from perpdex.core.errors import TxError
from perpdex.core.orders import Side
from perpdex.core.tx import PlaceOrder, Transfer, Withdraw
from perpdex.core.units import div_ceil, div_floor
from perpdex.rollup.encoding import market_asset_id, owner_key

ORDER_PREFIX = 3
TRANSFER_PREFIX = 4
WITHDRAWAL_PREFIX = 6
ORDER_PADDING_BITS = 17
TRANSFER_PADDING_BITS = 81
WITHDRAWAL_PADDING_BITS = 49
AMOUNT_BITS = 64
NONCE_BITS = 32
POSITION_ID_BITS = 64
EXPIRATION_HOURS_BITS = 32
HOUR_MS = 3_600_000

# dydx3/constants.py COLLATERAL_ASSET_ID_BY_NETWORK_ID (USDC) and SYNTHETIC_ASSET_ID_MAP; BTC (1e10) and ETH (1e9)
# resolutions equal perpdex's atomic resolutions, so their quantums are the same numbers.
COLLATERAL_ASSET_ID_MAINNET = 0x02893294412A4C8F915F75892B395EBBF6859EC246EC365C3B1F56F47C3A0A5D
COLLATERAL_ASSET_ID_SEPOLIA = 0x01E70C509C4C6BFAFE8B73D2FC1819444B2C0B435D4B82C0F24ADDFF9565CE25
DEFAULT_COLLATERAL_ASSET_ID = COLLATERAL_ASSET_ID_MAINNET
SYNTHETIC_ASSET_ID_BY_MARKET = {
    "BTC-USD": 0x4254432D3130000000000000000000,
    "ETH-USD": 0x4554482D3900000000000000000000,
}


class SignatureError(TxError):
    """A signature is missing, invalid, or signs a message that does not match the transaction."""

    code = "rollup.bad_signature"


class ReplayedNonceError(TxError):
    """This key already used this nonce (a replayed or duplicated signed message)."""

    code = "rollup.replayed_nonce"


def synthetic_asset_id(market_id: str) -> int:
    return SYNTHETIC_ASSET_ID_BY_MARKET.get(market_id) or market_asset_id(market_id)


def _pedersen():
    from fast_stark_crypto import pedersen_hash

    return pedersen_hash


def _check_width(value: int, bits: int, what: str) -> int:
    if type(value) is not int or not 0 <= value < 1 << bits:
        raise SignatureError(f"{what} must fit in {bits} bits", field=what, value=value)
    return value


# --- messages --------------------------------------------------------------------------------------------
class StarkOrder(NamedTuple):
    """dydx3 StarkwareOrder (order type LIMIT_ORDER_WITH_FEES)."""

    position_id: int
    is_buying_synthetic: bool
    asset_id_synthetic: int
    asset_id_collateral: int
    quantums_amount_synthetic: int
    quantums_amount_collateral: int
    quantums_amount_fee: int  # the most fee the signer pays (collateral quantums)
    nonce: int
    expiration_epoch_hours: int

    @property
    def asset_id_fee(self) -> int:
        return self.asset_id_collateral

    def message_hash(self) -> int:
        h = _pedersen()
        if self.is_buying_synthetic:
            sell_asset, buy_asset = self.asset_id_collateral, self.asset_id_synthetic
            sell_amount, buy_amount = self.quantums_amount_collateral, self.quantums_amount_synthetic
        else:
            sell_asset, buy_asset = self.asset_id_synthetic, self.asset_id_collateral
            sell_amount, buy_amount = self.quantums_amount_synthetic, self.quantums_amount_collateral
        part_1 = _check_width(sell_amount, AMOUNT_BITS, "amount_sell")
        part_1 = (part_1 << AMOUNT_BITS) + _check_width(buy_amount, AMOUNT_BITS, "amount_buy")
        part_1 = (part_1 << AMOUNT_BITS) + _check_width(self.quantums_amount_fee, AMOUNT_BITS, "amount_fee")
        part_1 = (part_1 << NONCE_BITS) + _check_width(self.nonce, NONCE_BITS, "nonce")
        part_2 = ORDER_PREFIX
        for _ in range(3):
            part_2 = (part_2 << POSITION_ID_BITS) + _check_width(self.position_id, POSITION_ID_BITS, "position_id")
        part_2 = (part_2 << EXPIRATION_HOURS_BITS) + _check_width(self.expiration_epoch_hours, EXPIRATION_HOURS_BITS,
                                                                  "expiration_epoch_hours")
        part_2 <<= ORDER_PADDING_BITS
        assets_hash = h(h(sell_asset, buy_asset), self.asset_id_fee)
        return h(h(assets_hash, part_1), part_2)


class StarkTransfer(NamedTuple):
    """dydx3 StarkwareTransfer: collateral from one position to another, no fee."""

    sender_position_id: int
    receiver_position_id: int
    receiver_public_key: int
    quantums_amount: int
    nonce: int
    expiration_epoch_hours: int
    asset_id_collateral: int = DEFAULT_COLLATERAL_ASSET_ID

    def message_hash(self) -> int:
        h = _pedersen()
        part_1 = h(h(self.asset_id_collateral, 0), self.receiver_public_key)  # fee asset 0: no transfer fees
        part_2 = _check_width(self.sender_position_id, POSITION_ID_BITS, "sender_position_id")
        part_2 = (part_2 << POSITION_ID_BITS) + _check_width(self.receiver_position_id, POSITION_ID_BITS,
                                                             "receiver_position_id")
        part_2 = (part_2 << POSITION_ID_BITS) + self.sender_position_id  # the fee position: the sender
        part_2 = (part_2 << NONCE_BITS) + _check_width(self.nonce, NONCE_BITS, "nonce")
        part_3 = TRANSFER_PREFIX
        part_3 = (part_3 << AMOUNT_BITS) + _check_width(self.quantums_amount, AMOUNT_BITS, "quantums_amount")
        part_3 = (part_3 << AMOUNT_BITS) + 0  # max fee amount: 0
        part_3 = (part_3 << EXPIRATION_HOURS_BITS) + _check_width(self.expiration_epoch_hours, EXPIRATION_HOURS_BITS,
                                                                  "expiration_epoch_hours")
        part_3 <<= TRANSFER_PADDING_BITS
        return h(h(part_1, part_2), part_3)


class StarkWithdrawal(NamedTuple):
    """dydx3 StarkwareWithdrawal."""

    position_id: int
    quantums_amount: int
    nonce: int
    expiration_epoch_hours: int
    asset_id_collateral: int = DEFAULT_COLLATERAL_ASSET_ID

    def message_hash(self) -> int:
        packed = WITHDRAWAL_PREFIX
        packed = (packed << POSITION_ID_BITS) + _check_width(self.position_id, POSITION_ID_BITS, "position_id")
        packed = (packed << NONCE_BITS) + _check_width(self.nonce, NONCE_BITS, "nonce")
        packed = (packed << AMOUNT_BITS) + _check_width(self.quantums_amount, AMOUNT_BITS, "quantums_amount")
        packed = (packed << EXPIRATION_HOURS_BITS) + _check_width(self.expiration_epoch_hours, EXPIRATION_HOURS_BITS,
                                                                  "expiration_epoch_hours")
        packed <<= WITHDRAWAL_PADDING_BITS
        return _pedersen()(self.asset_id_collateral, packed)


Message = StarkOrder | StarkTransfer | StarkWithdrawal


# --- ECDSA over the STARK curve -----------------------------------------------------------------------------
def public_key(private_key: int) -> int:
    """The STARK public key (x coordinate) of a private key."""
    from fast_stark_crypto import get_public_key

    return get_public_key(private_key)


def sign(private_key: int, message_hash: int) -> tuple[int, int]:
    """(r, s): deterministic RFC 6979 nonce, as dydx3's py_sign with seed None (the golden vectors agree)."""
    from fast_stark_crypto import sign as _sign

    return _sign(private_key, message_hash)


def verify(public_key_x: int, message_hash: int, r: int, s: int) -> bool:
    from fast_stark_crypto import rs_verify_signature

    try:
        return bool(rs_verify_signature(hex(public_key_x), hex(message_hash), hex(r), hex(s)))
    except (ValueError, OverflowError, TypeError):
        return False


def _verify_chunk(items: Sequence[tuple[int, int, int, int]]) -> list[bool]:
    return [verify(*item) for item in items]


def _on_threads(check: Callable[[Sequence[Any]], list[bool]], items: Sequence[Any], workers: int | None) -> list[bool]:
    """`check` over `items` split across `workers` threads (default: every core; 1 = inline), order kept.
    Threads suffice: fast-stark-crypto's verify and Pedersen hash release the GIL (verify: one thread
    ~1,570/s, two ~3,090/s measured here), and cost no process start-up or pickling."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(items) < 2 * workers:
        return check(items)
    from perpdex.rollup.parallel import thread_pool

    size = -(-len(items) // workers)
    results = list(thread_pool(workers).map(check, [items[i: i + size] for i in range(0, len(items), size)]))
    return [ok for chunk in results for ok in chunk]


def verify_many(items: Sequence[tuple[int, int, int, int]], workers: int | None = None) -> list[bool]:
    """Verify (public key, message hash, r, s) tuples on `workers` threads (see `_on_threads`)."""
    return _on_threads(_verify_chunk, items, workers)


def _verify_envelopes_chunk(envelopes: Sequence[SignedEnvelope]) -> list[bool]:
    return [envelope.verify() for envelope in envelopes]


def verify_envelopes(envelopes: Sequence[SignedEnvelope], workers: int | None = None) -> list[bool]:
    """Each envelope's message hash and STARK signature checked, on `workers` threads. Pure functions of the
    envelopes, so a sequencer may run them ahead of the state-dependent checks (Sequencer.submit_many)."""
    return _on_threads(_verify_envelopes_chunk, envelopes, workers)


# --- signed transactions --------------------------------------------------------------------------------
class SignedEnvelope(NamedTuple):
    """A StarkEx message, its signer's public key and the signature, carried beside a core transaction."""

    message: Any  # StarkOrder | StarkTransfer | StarkWithdrawal
    public_key: int
    r: int
    s: int

    @property
    def nonce(self) -> int:
        return self.message.nonce

    def message_hash(self) -> int:
        return self.message.message_hash()

    def verify(self) -> bool:
        try:
            return verify(self.public_key, self.message_hash(), self.r, self.s)
        except SignatureError:
            return False


_KINDS = {"order": StarkOrder, "transfer": StarkTransfer, "withdrawal": StarkWithdrawal}
_KIND_OF = {cls: kind for kind, cls in _KINDS.items()}


def envelope_to_json(envelope: SignedEnvelope) -> dict:
    message = envelope.message
    return {"kind": _KIND_OF[type(message)], "message": [int(x) if isinstance(x, bool) else x for x in message],
            "public_key": hex(envelope.public_key), "r": hex(envelope.r), "s": hex(envelope.s)}


def envelope_from_json(data: dict) -> SignedEnvelope:
    cls = _KINDS[data["kind"]]
    values = list(data["message"])
    if cls is StarkOrder:
        values[1] = bool(values[1])
    return SignedEnvelope(cls(*values), int(data["public_key"], 16), int(data["r"], 16), int(data["s"], 16))


def expiration_hours(ts_ms: int) -> int:
    """ceil(ms / 1 h): dydx3 rounds expirations up to whole hours."""
    return div_ceil(ts_ms, HOUR_MS)


def order_collateral_quantums(size_base_quantums: int, price_subticks: int, quantum_conversion_exponent: int,
                              is_buy: bool) -> int:
    """Collateral a limit order trades at its limit price: rounded up for a buy (the most it pays) and down for a
    sell (the least it accepts), as dydx3 SignableOrder does."""
    numerator = size_base_quantums * price_subticks
    denominator = 10 ** -quantum_conversion_exponent
    return div_ceil(numerator, denominator) if is_buy else div_floor(numerator, denominator)


def order_message(tx: PlaceOrder, position_id: int, quantum_conversion_exponent: int, *, limit_fee_ppm: int,
                  nonce: int, expiration_epoch_hours: int,
                  collateral_asset_id: int = DEFAULT_COLLATERAL_ASSET_ID) -> StarkOrder:
    """The StarkEx order a limit PlaceOrder corresponds to. Max fee = ceil(collateral x limit fee), as dydx3."""
    if tx.price_subticks is None:
        raise SignatureError("a signed order needs a limit price", field="price_subticks", value=None)
    is_buy = tx.side is Side.BUY
    collateral = order_collateral_quantums(tx.size_base_quantums, tx.price_subticks, quantum_conversion_exponent,
                                           is_buy)
    fee = div_ceil(collateral * limit_fee_ppm, 1_000_000)
    return StarkOrder(position_id, is_buy, synthetic_asset_id(tx.market_id), collateral_asset_id,
                      tx.size_base_quantums, collateral, fee, nonce, expiration_epoch_hours)


def sign_message(message: Any, private_key: int) -> SignedEnvelope:
    r, s = sign(private_key, message.message_hash())
    return SignedEnvelope(message, public_key(private_key), r, s)


def check_envelope(tx: Any, envelope: SignedEnvelope, position_id_of, market_qce_of, *,
                   signature_valid: bool | None = None) -> None:
    """Raise SignatureError unless `envelope` is a valid signature, by the transaction's owner, of the StarkEx
    message this transaction is. `position_id_of(subaccount_id)` gives committed position ids (None if none);
    `market_qce_of(market_id)` a market's quantum conversion exponent. `signature_valid` is the envelope's own
    check when already done (verify_envelopes); None checks it here."""
    message: Any = envelope.message
    kind: type
    if type(tx) is PlaceOrder:
        owner, kind = tx.subaccount_id, StarkOrder
    elif type(tx) is Transfer:
        owner, kind = tx.sender, StarkTransfer
    elif type(tx) is Withdraw:
        owner, kind = tx.subaccount_id, StarkWithdrawal
    else:
        raise SignatureError(f"{type(tx).__name__} transactions are not signed", field="type", value=type(tx).__name__)
    if type(message) is not kind:
        raise SignatureError(f"a {type(tx).__name__} needs a {kind.__name__} signature", field="signature",
                             value=type(message).__name__)
    signed: Any = message  # checked to be a `kind` above
    if owner_key(owner.owner) != envelope.public_key:
        raise SignatureError("the signing key is not the subaccount owner's key", field="public_key",
                             value=hex(envelope.public_key))
    position_id = position_id_of(owner)
    if position_id is None:
        raise SignatureError("the subaccount has no committed position id yet", field="subaccount_id",
                             value=str(owner))
    if tx.ts_ms >= signed.expiration_epoch_hours * HOUR_MS:
        raise SignatureError("the signed message has expired", field="expiration_epoch_hours",
                             value=signed.expiration_epoch_hours)
    if kind is StarkOrder:
        expected = order_message(tx, position_id, market_qce_of(tx.market_id), limit_fee_ppm=0, nonce=signed.nonce,
                                 expiration_epoch_hours=signed.expiration_epoch_hours,
                                 collateral_asset_id=signed.asset_id_collateral)
        if signed._replace(quantums_amount_fee=0) != expected:
            raise SignatureError("the signed order does not match the order placed", field="signature",
                                 value=signed)
        if tx.good_til_ts_ms is not None and tx.good_til_ts_ms > signed.expiration_epoch_hours * HOUR_MS:
            raise SignatureError("the order lives longer than its signature", field="good_til_ts_ms",
                                 value=tx.good_til_ts_ms)
    elif kind is StarkTransfer:
        receiver = position_id_of(tx.recipient)
        if receiver is None:
            raise SignatureError("a signed transfer needs a recipient with a committed position id",
                                 field="recipient", value=str(tx.recipient))
        if (signed.sender_position_id, signed.receiver_position_id, signed.receiver_public_key,
                signed.quantums_amount) != (position_id, receiver, owner_key(tx.recipient.owner), tx.amount_quantums):
            raise SignatureError("the signed transfer does not match the transfer", field="signature", value=signed)
    elif (signed.position_id, signed.quantums_amount) != (position_id, tx.amount_quantums):
        raise SignatureError("the signed withdrawal does not match the withdrawal", field="signature", value=signed)
    if not (envelope.verify() if signature_valid is None else signature_valid):
        raise SignatureError("invalid STARK signature", field="signature", value=hex(envelope.r))


def nonce_from_client_id(client_id: str) -> int:
    """dydx3/starkex/helpers.py nonce_from_client_id: sha256 of the UTF-8 client id, modulo 2**32."""
    import hashlib

    return int(hashlib.sha256(client_id.encode()).hexdigest(), 16) % (1 << NONCE_BITS)
