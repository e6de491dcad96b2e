"""The canonical encoding: every registered transaction type round-trips exactly (hypothesis),
bodies are canonical, decoding is strict, versions are honoured and new types need only registration."""

from __future__ import annotations

import json
import typing
from enum import Enum
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpdex.core import tx as core_tx
from perpdex.core.errors import MalformedTxError
from perpdex.core.orders import Side, TimeInForce
from perpdex.core.state import SubaccountId
from perpdex.core.tx import Deposit, OraclePrice, OracleUpdate, PlaceOrder
from perpdex.store import codec as codec_module
from perpdex.store.codec import DEFAULT_CODEC, TxCodec
from perpdex.store.errors import CodecError, NewerVersionError


def strategy_for(tp):
    """A hypothesis strategy for any type the codec supports, read from the same type hints."""
    if tp is int:
        return st.integers(min_value=-(2**80), max_value=2**80)
    if tp is str:
        return st.text(max_size=12)
    if tp is bool:
        return st.booleans()
    args = typing.get_args(tp)
    if type(None) in args:
        (inner,) = [arg for arg in args if arg is not type(None)]
        return st.none() | strategy_for(inner)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields"):
        hints = typing.get_type_hints(tp)
        return st.builds(tp, *(strategy_for(hints[name]) for name in tp._fields))
    if typing.get_origin(tp) is tuple and args[-1] is Ellipsis:
        return st.lists(strategy_for(args[0]), max_size=4).map(tuple)
    raise AssertionError(f"no strategy for {tp!r}")


def same(a, b) -> bool:
    """Equal and of the same types all the way down (True == 1 does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


any_registered_tx = st.one_of(*(strategy_for(spec.cls) for spec in DEFAULT_CODEC.specs()))


@settings(max_examples=400, deadline=None)
@given(any_registered_tx)
def test_every_registered_type_round_trips_exactly_and_canonically(tx):
    encoded = DEFAULT_CODEC.encode(tx)
    decoded = DEFAULT_CODEC.decode(encoded.type_name, encoded.version, encoded.body)
    assert same(decoded, tx)
    assert DEFAULT_CODEC.encode(decoded).body == encoded.body  # canonical: same tx, same bytes
    assert encoded.body == json.dumps(json.loads(encoded.body), separators=(",", ":"))  # compact, ASCII


def test_every_core_transaction_type_is_registered():
    core_types = set(typing.get_args(core_tx.Tx))
    assert core_types <= {spec.cls for spec in DEFAULT_CODEC.specs()}
    assert codec_module.UNSUPPORTED == {}


# Pinned encodings: a change to a tx type's fields changes its fingerprint; bump its version
# (and give an upgrader unless fields were only appended with defaults), then update this table.
PINNED = {
    "Deposit": (1, "Deposit(ts_ms:int,subaccount_id:SubaccountId(owner:str,number:int),amount_quantums:int,asset_id:int)"),
    "Withdraw": (1, ("Withdraw(ts_ms:int,subaccount_id:SubaccountId(owner:str,number:int),amount_quantums:int,"
                    "asset_id:int)")),
    "CancelOrder": (1, ("CancelOrder(ts_ms:int,subaccount_id:SubaccountId(owner:str,number:int),order_id:int|None,"
                       "client_id:int|None)")),
    "OracleUpdate": (1, ("OracleUpdate(ts_ms:int,prices:tuple[OraclePrice(market_id:str,"
                        "source_prices_subticks:tuple[int,...]),...])")),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_registered_versions_are_pinned_to_their_encoded_shape(name):
    spec = DEFAULT_CODEC.spec(name)
    assert (spec.version, spec.fingerprint) == PINNED[name]


def test_bodies_are_json_arrays_in_field_order_with_enum_values():
    tx = PlaceOrder(5, SubaccountId("alice", 1), "BTC-USD", Side.SELL, 10_000, 9_900_000_000,
                    time_in_force=TimeInForce.IOC, client_id=7)
    assert DEFAULT_CODEC.encode(tx).body == ('[5,["alice",1],"BTC-USD",-1,10000,9900000000,"limit","ioc",'
                                             'false,7,null,null,null]')
    oracle = OracleUpdate(9, (OraclePrice("ETH-USD", (1, 2, 3)),))
    assert DEFAULT_CODEC.encode(oracle).body == '[9,[["ETH-USD",[1,2,3]]]]'


@pytest.mark.parametrize("body, message", [
    ('[1,["a",0],5]', "expected a 4-field array"),
    ('[1,["a",0],5,0,9]', "expected a 4-field array"),
    ('[true,["a",0],5,0]', "Deposit.ts_ms: expected int"),
    ('[1.0,["a",0],5,0]', "Deposit.ts_ms: expected int"),
    ('[1,["a",0.0],5,0]', "Deposit.subaccount_id.number: expected int"),
    ('[1,"a",5,0]', "Deposit.subaccount_id: expected a 2-field array"),
    ('[1,["a",0],"5",0]', "Deposit.amount_quantums: expected int"),
    ('[1,["a",0],5,0] ', "not valid JSON"),
    ('[1,["a",0],5,0]]', "not valid JSON"),
    ("", "not valid JSON"),
    ("[1,", "not valid JSON"),
], ids=["too few fields", "too many fields", "a bool is not an int", "a float is not an int",
        "nested field type is checked", "a string is not a subaccount", "a quoted number is not an int",
        "trailing space is not canonical", "trailing data", "empty body", "truncated body"])
def test_strict_decoding_rejects_with_the_field_at_fault(body, message):
    with pytest.raises(CodecError, match=message):
        DEFAULT_CODEC.decode("Deposit", 1, body)


def test_unknown_enum_values_and_types_are_rejected():
    body = DEFAULT_CODEC.encode(PlaceOrder(5, SubaccountId("a"), "BTC-USD", Side.BUY, 1, 1)).body
    with pytest.raises(CodecError, match="PlaceOrder.side"):
        DEFAULT_CODEC.decode("PlaceOrder", 1, body.replace(",1,1,1,", ",2,1,1,", 1))
    with pytest.raises(CodecError, match="PlaceOrder.time_in_force"):
        DEFAULT_CODEC.decode("PlaceOrder", 1, body.replace('"gtt"', '"gtc"'))
    with pytest.raises(CodecError, match="unknown transaction type 'NoSuchTx'"):
        DEFAULT_CODEC.decode("NoSuchTx", 1, "[1]")


def test_a_newer_type_version_is_refused_not_guessed():
    with pytest.raises(NewerVersionError, match="Deposit version 2 is newer"):
        DEFAULT_CODEC.decode("Deposit", 2, '[1,["a",0],5,0]')


def test_encoding_checks_python_types_and_rejects_like_a_transaction():
    with pytest.raises(MalformedTxError, match="Deposit.subaccount_id must be SubaccountId"):
        DEFAULT_CODEC.encode(Deposit(1, ("alice", 0), 5))  # type: ignore[arg-type]
    with pytest.raises(MalformedTxError, match="Deposit.amount_quantums must be int"):
        DEFAULT_CODEC.encode(Deposit(1, SubaccountId("alice"), 5.0))  # type: ignore[arg-type]
    with pytest.raises(MalformedTxError, match="PlaceOrder.side must be Side"):
        DEFAULT_CODEC.encode(PlaceOrder(1, SubaccountId("a"), "BTC-USD", 1, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(MalformedTxError, match="not registered"):
        DEFAULT_CODEC.encode(OraclePrice("BTC-USD", (1,)))


# --- types added later need only registration ---------------------------------------------------
class FundingRate(str, Enum):
    CLAMPED = "clamped"
    RAW = "raw"


class FundingTickV1(NamedTuple):
    ts_ms: int
    market_id: str
    rate_ppm: int


class FundingTickV2(NamedTuple):  # a field appended with a default: old rows pad
    ts_ms: int
    market_id: str
    rate_ppm: int
    kind: FundingRate = FundingRate.CLAMPED
    samples: tuple[int, ...] = ()


class FundingTickV3(NamedTuple):  # a field renamed and rescaled: an explicit upgrader
    ts_ms: int
    market_id: str
    rate_ppb: int
    kind: FundingRate = FundingRate.CLAMPED
    samples: tuple[int, ...] = ()


def test_a_new_type_registers_and_old_versions_upgrade():
    old = TxCodec()
    old.register(FundingTickV1, name="FundingTick")
    body = old.encode(FundingTickV1(5, "BTC-USD", -12)).body
    middle = TxCodec()
    middle.register(FundingTickV2, name="FundingTick", version=2)
    assert middle.decode("FundingTick", 1, body) == FundingTickV2(5, "BTC-USD", -12, FundingRate.CLAMPED, ())
    new = TxCodec()
    new.register(FundingTickV3, name="FundingTick", version=3,
                 upgraders={2: lambda v2: [v2[0], v2[1], v2[2] * 1000, *v2[3:]]})
    assert new.decode("FundingTick", 1, body) == FundingTickV3(5, "BTC-USD", -12_000)
    with pytest.raises(NewerVersionError):
        old.decode("FundingTick", 3, new.encode(FundingTickV3(5, "BTC-USD", 1)).body)


def test_types_without_a_canonical_encoding_are_refused_at_registration():
    class WithFloat(NamedTuple):
        ts_ms: int
        rate: float

    class WithoutTime(NamedTuple):
        market_id: str

    with pytest.raises(TypeError, match="float"):
        TxCodec().register(WithFloat)
    with pytest.raises(TypeError, match="ts_ms"):
        TxCodec().register(WithoutTime)
    codec = TxCodec()
    codec.register(FundingTickV1, name="FundingTick")
    with pytest.raises(ValueError, match="already registered"):
        codec.register(FundingTickV2, name="FundingTick")


def test_decoded_subaccount_ids_are_shared_instances():
    body = DEFAULT_CODEC.encode(Deposit(1, SubaccountId("zed", 3), 5)).body
    first = DEFAULT_CODEC.decode("Deposit", 1, body).subaccount_id
    second = DEFAULT_CODEC.decode("Deposit", 1, body).subaccount_id
    assert first == SubaccountId("zed", 3) and first is second and type(first) is SubaccountId
    assert json.loads(body)[1] == ["zed", 3]
