"""Canonical encoding of rollup state into STARK field elements: a subaccount's leaf (StarkEx position layout)
and the global market state (oracle prices, funding indices, the exchange's own balances); and their values.

A leaf is StarkEx's position hash input (position/hash.cairo, PerpetualEscapeVerifier.computeFxpBalance):
each position packs `asset_id << 128 | (funding_entry + 2**63) << 64 | (size + 2**63)`; then the owner key;
then one word packing the biased USDC balance, the isolated market, the margin mode, the subaccount number and
the position count. Every biased field has a fixed width, so encoding raises rather than wrapping; decoding is
the exact inverse. Amounts stay in the core's units: base quantums, quote quantums, subticks, ppm index units.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

from perpdex.core.state import MarginMode, Subaccount, SubaccountId
from perpdex.core.units import PPM, USDC_ASSET_ID
from perpdex.rollup.hashing import STARK_PRIME, HashBackend, bytes_to_felt, hash_chain

BALANCE_BIAS = 2**63  # StarkEx BALANCE_LOWER_BOUND = -2**63 (definitions/constants.cairo)
FUNDING_BIAS = 2**63  # StarkEx FUNDING_INDEX_LOWER_BOUND = -2**63
ASSET_ID_BITS = 120  # StarkEx ASSET_ID_UPPER_BOUND = 2**120: an asset packs into one field element
N_POSITIONS_BITS = 16  # StarkEx N_ASSETS_UPPER_BOUND = 2**16
NUMBER_BITS = 8  # dYdX v4 subaccount numbers 0..127
MODE_BITS = 8
SUM_BITS = 125  # Merkle-sum tree: each child's sum below 2**125, so two pack into one element
MARKET_ID_MAX_BYTES = 15  # 15 ASCII bytes < 2**120 (dYdX v3 synthetic ids: b"BTC-10" padded to 15 bytes)
_MODE_CODES = {MarginMode.CROSS: 0, MarginMode.ISOLATED: 1}
_MODES = {code: mode for mode, code in _MODE_CODES.items()}


class EncodingError(ValueError):
    """A value does not fit its fixed-width field in the state tree (a leaf cannot be committed)."""


def _biased(value: int, bias: int, what: str) -> int:
    if not -bias <= value < bias:
        raise EncodingError(f"{what} {value} is outside [-2**63, 2**63): the state tree's field width")
    return value + bias


def market_asset_id(market_id: str) -> int:
    """A market's synthetic asset id: its ASCII id right-padded to 15 bytes (dYdX v3 SYNTHETIC_ASSET_ID_MAP uses
    the same shape, e.g. 0x4254432d3130 + zero bytes for "BTC-10")."""
    raw = market_id.encode("ascii")
    if len(raw) > MARKET_ID_MAX_BYTES:
        raise EncodingError(f"market id {market_id!r} is longer than {MARKET_ID_MAX_BYTES} bytes")
    return int.from_bytes(raw.ljust(MARKET_ID_MAX_BYTES, b"\0"), "big")


def market_id_from_asset_id(asset_id: int) -> str:
    return asset_id.to_bytes(MARKET_ID_MAX_BYTES, "big").rstrip(b"\0").decode("ascii")


def owner_key(owner: str) -> int:
    """The owner as a field element: a hex STARK public key ("0x...") is used as is (so a signature's key and
    the leaf's key are the same number); any other owner name is BLAKE2s-hashed to 250 bits."""
    if owner.startswith("0x"):
        try:
            value = int(owner, 16)
        except ValueError:
            value = -1
        if 0 <= value < STARK_PRIME:
            return value
    return bytes_to_felt(owner.encode("utf-8"))


class PositionEntry(NamedTuple):
    """One perpetual position in a leaf: market asset id, signed size (base quantums, long > 0) and the market's
    funding index when it last settled (ppm of a quote quantum per base quantum)."""

    asset_id: int
    size_base_quantums: int
    funding_entry: int

    def packed(self) -> int:
        return ((self.asset_id << 128) | (_biased(self.funding_entry, FUNDING_BIAS, "funding entry") << 64)
                | _biased(self.size_base_quantums, BALANCE_BIAS, "position size"))

    @classmethod
    def unpack(cls, word: int) -> PositionEntry:
        return cls(word >> 128, (word & (2**64 - 1)) - BALANCE_BIAS, ((word >> 64) & (2**64 - 1)) - FUNDING_BIAS)


class LeafData(NamedTuple):
    """What the state tree commits to for one subaccount (its leaf preimage)."""

    owner_key: int
    number: int
    usdc_quote_quantums: int
    margin_mode: int  # 0 cross, 1 isolated
    isolated_asset_id: int  # 0 unless isolated
    positions: tuple[PositionEntry, ...]  # sorted by asset id

    def fields(self) -> tuple[int, ...]:
        """The field elements hashed into the leaf: packed positions, owner key, packed last word."""
        if len(self.positions) >= 2**N_POSITIONS_BITS:
            raise EncodingError("too many positions for one leaf")
        last = _biased(self.usdc_quote_quantums, BALANCE_BIAS, "USDC balance")
        last = (last << ASSET_ID_BITS) | self.isolated_asset_id
        last = (last << MODE_BITS) | self.margin_mode
        last = (last << NUMBER_BITS) | self.number
        last = (last << N_POSITIONS_BITS) | len(self.positions)
        return (*(entry.packed() for entry in self.positions), self.owner_key, last)

    @classmethod
    def from_fields(cls, fields: tuple[int, ...] | list[int]) -> LeafData:
        """Inverse of `fields`; raises EncodingError on a malformed preimage."""
        if len(fields) < 2:
            raise EncodingError("a leaf preimage has at least the owner key and the last word")
        last = fields[-1]
        n_positions = last & (2**N_POSITIONS_BITS - 1)
        if len(fields) != n_positions + 2:
            raise EncodingError(f"leaf preimage has {len(fields)} words for {n_positions} positions")
        last >>= N_POSITIONS_BITS
        number = last & (2**NUMBER_BITS - 1)
        last >>= NUMBER_BITS
        mode = last & (2**MODE_BITS - 1)
        last >>= MODE_BITS
        isolated = last & (2**ASSET_ID_BITS - 1)
        usdc = (last >> ASSET_ID_BITS) - BALANCE_BIAS
        return cls(fields[-2], number, usdc, mode, isolated,
                   tuple(PositionEntry.unpack(word) for word in fields[:-2]))

    def leaf_hash(self, backend: HashBackend) -> int:
        """StarkEx position_hash shape: h(h(chain(positions), owner key), last word)."""
        fields = self.fields()
        assets_hash = hash_chain(backend, fields[:-2])
        return backend.hash2(backend.hash2(assets_hash, fields[-2]), fields[-1])


def leaf_of(subaccount: Subaccount) -> LeafData:
    """Encode a core subaccount. Only USDC collateral can be committed today (raises EncodingError otherwise)."""
    for asset_id in subaccount.collateral:
        if asset_id != USDC_ASSET_ID:
            raise EncodingError(f"collateral asset {asset_id} has no place in the state tree leaf yet")
    sid = subaccount.subaccount_id
    positions = tuple(sorted(PositionEntry(market_asset_id(market_id), size, subaccount.funding_entries[market_id])
                             for market_id, size in subaccount.positions.items()))
    isolated = market_asset_id(subaccount.isolated_market_id) if subaccount.isolated_market_id else 0
    return LeafData(owner_key(sid.owner), sid.number, subaccount.usdc_quote_quantums,
                    _MODE_CODES[subaccount.margin_mode], isolated, positions)


def margin_mode_of(code: int) -> MarginMode:
    mode = _MODES.get(code)
    if mode is None:
        raise EncodingError(f"unknown margin mode code {code}")
    return mode


def subaccount_identity(subaccount_id: SubaccountId) -> tuple[int, int]:
    return owner_key(subaccount_id.owner), subaccount_id.number


# --- the global state -----------------------------------------------------------------------------------
class MarketGlobal(NamedTuple):
    """One market in the global state: what valuing a position needs."""

    asset_id: int
    oracle_price_subticks: int  # 0 before the first oracle price
    funding_index: int
    quantum_conversion_exponent: int  # quote = base x subticks x 10**qce

    def fields(self) -> tuple[int, ...]:
        return (self.asset_id, _biased(self.oracle_price_subticks, BALANCE_BIAS, "oracle price"),
                _biased(self.funding_index, FUNDING_BIAS, "funding index"),
                _biased(self.quantum_conversion_exponent, BALANCE_BIAS, "quantum conversion exponent"))


class GlobalState(NamedTuple):
    """The exchange-wide part of the commitment (StarkEx's shared state: funding indices and oracle prices),
    plus the exchange's own balances and the collateral it holds (deposited - withdrawn, quote quantums)."""

    markets: tuple[MarketGlobal, ...]  # sorted by asset id
    collateral_held_quote_quantums: int
    insurance_fund_quote_quantums: int
    fees_collected_quote_quantums: int
    funding_dust_ppm: int
    last_ts_ms: int
    position_count: int

    def fields(self) -> tuple[int, ...]:
        words: list[int] = [len(self.markets)]
        for market in self.markets:
            words.extend(market.fields())
        words.extend(_biased(value, BALANCE_BIAS, name) for value, name in (
            (self.collateral_held_quote_quantums, "collateral held"),
            (self.insurance_fund_quote_quantums, "insurance fund"),
            (self.fees_collected_quote_quantums, "fees collected"),
            (self.funding_dust_ppm, "funding dust"),
            (self.last_ts_ms, "last ts"),
            (self.position_count, "position count")))
        return tuple(words)

    @classmethod
    def from_fields(cls, fields: tuple[int, ...] | list[int]) -> GlobalState:
        if not fields:
            raise EncodingError("empty global state preimage")
        count = fields[0]
        if len(fields) != 1 + 4 * count + 6:
            raise EncodingError(f"global state preimage has {len(fields)} words for {count} markets")
        markets = []
        for i in range(count):
            asset_id, price, index, qce = fields[1 + 4 * i: 5 + 4 * i]
            markets.append(MarketGlobal(asset_id, price - BALANCE_BIAS, index - FUNDING_BIAS, qce - BALANCE_BIAS))
        tail = [value - BALANCE_BIAS for value in fields[1 + 4 * count:]]
        return cls(tuple(markets), *tail)

    def state_hash(self, backend: HashBackend) -> int:
        return hash_chain(backend, self.fields())

    def market(self, asset_id: int) -> MarketGlobal:
        for market in self.markets:
            if market.asset_id == asset_id:
                return market
        raise EncodingError(f"asset {asset_id:#x} is not in the global state")


def global_state_of(exchange, position_count: int) -> GlobalState:
    """The global state of a core `Exchange` (read only), with the rollup's count of assigned position ids."""
    markets = []
    for market_id, market in exchange.markets.items():
        markets.append(MarketGlobal(market_asset_id(market_id), market.oracle_price_subticks or 0,
                                    market.funding_index, market.params.quantum_conversion_exponent))
    held = (exchange.total_deposited.get(USDC_ASSET_ID, 0) - exchange.total_withdrawn.get(USDC_ASSET_ID, 0))
    return GlobalState(tuple(sorted(markets)), held, exchange.insurance_fund_quote_quantums,
                       exchange.fees_collected_quote_quantums, exchange.funding_dust_ppm, exchange.last_ts_ms,
                       position_count)


# --- valuing a leaf (escape hatch and proof of liabilities) --------------------------------------------
def account_value_exact(leaf: LeafData, state: GlobalState) -> Fraction:
    """Exact value of a subaccount at the global state's prices: USDC + sum of position notionals
    (size x price x 10**qce, not rounded) + unsettled funding (-(index - entry) x size / 1e6, not rounded).

    StarkEx PerpetualEscapeVerifier.computeFxpBalance values a position the same way (collateral + balance x
    price + funding) and floors once at the end; `account_value` does that floor.
    Raises EncodingError when a position's market is missing from the global state.
    """
    value = Fraction(leaf.usdc_quote_quantums)
    for entry in leaf.positions:
        market = state.market(entry.asset_id)
        qce = market.quantum_conversion_exponent
        notional = Fraction(entry.size_base_quantums * market.oracle_price_subticks) * Fraction(10) ** qce
        funding = Fraction(-(market.funding_index - entry.funding_entry) * entry.size_base_quantums, PPM)
        value += notional + funding
    return value


def account_value(leaf: LeafData, state: GlobalState) -> int:
    """`account_value_exact` floored: against the account, so exits never pay out rounding (quote quantums)."""
    exact = account_value_exact(leaf, state)
    return exact.numerator // exact.denominator
