"""The canonical, versioned encoding of transactions in the log: one JSON array per transaction.
A registry by type name holds, per NamedTuple type, a version, a strict decoder and upgraders.

Format (family "json-array", log format 1). A transaction is stored as its type name (`PlaceOrder`),
its type version (an int, 1 until the type's fields change) and a body: the JSON array of its
fields in declaration order, with nested NamedTuples (`SubaccountId`, `OraclePrice`) as arrays,
tuples as arrays, enums as their value (`Side.BUY` -> 1, `TimeInForce.IOC` -> "ioc"), None as
null, ints in decimal. `json.dumps(tx, separators=(",", ":"))` with ASCII escapes: equal
transactions give equal bytes, so the body is canonical and safe to hash.

Decoding is driven by the type hints of the NamedTuple and is strict: every field must have its
exact JSON type (`true` is not an int, `1.0` is not an int), enums must be known values, arrays
must have the declared length. Decoders are generated once per type (like `namedtuple` does),
because replay decodes every row and must stay cheap beside `Exchange.apply`.

Versions: a type registered at version N decodes rows of version N; an older row is upgraded
step by step by the type's upgraders (`{1: fn}` turns a version-1 body into a version-2 body),
and by default by padding the body with the defaults of fields appended since. A row of a newer
version than the registry knows raises `NewerVersionError`; it is never guessed at. Types added
later (FundingTick, Liquidate, Deleverage, ...) need only `register_tx_type(cls)`; every member of
`perpdex.core.tx.Tx` is registered at version 1 unless registered otherwise first.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, NamedTuple

from perpdex.core import tx as core_tx
from perpdex.core.errors import MalformedTxError
from perpdex.store.errors import CodecError, NewerVersionError

CODEC_FAMILY = "json-array"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False, check_circular=False).encode
_loads = json.loads
_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner: a third of json.loads' cost per small body


def _default(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


try:  # the C encoder built once, not per call as JSONEncoder.encode does; same bytes as _dumps
    from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
    from json.encoder import encode_basestring_ascii as _escape_ascii

    _c_encoder = _c_make_encoder(None, _default, _escape_ascii, None, ":", ",", False, False, False)

    def _encode_body(value: Any) -> str:
        return "".join(_c_encoder(value, 0))
except ImportError:  # pragma: no cover - CPython always has the C accelerator

    def _encode_body(value: Any) -> str:
        return _dumps(value)


def parse_body(body: str | bytes) -> Any:
    """Parse one canonical JSON body; CodecError when it is not exactly one JSON value."""
    try:
        if not isinstance(body, str):
            body = bytes(body).decode("utf-8")
        value, end = _scan_once(body, 0)
    except StopIteration:
        raise CodecError("body is not valid JSON: no JSON value at the start") from None
    except (ValueError, RecursionError, TypeError) as exc:
        raise CodecError(f"body is not valid JSON: {exc}") from None
    if end != len(body):
        raise CodecError(f"body is not valid JSON: extra data after the JSON value at offset {end}")
    return value


Upgrader = Callable[[list], list]
_INTERN_LIMIT = 1_000_000  # shared instances kept per small NamedTuple type


class EncodedTx(NamedTuple):
    """A transaction ready for the log: `type_name`, `version`, canonical JSON `body`, `ts_ms`."""

    type_name: str
    version: int
    body: str
    ts_ms: int


class TxSpec:
    """One registered transaction type: its version, strict decoder and encoder check."""

    __slots__ = (
        "check_value",
        "cls",
        "decode_value",
        "encoded_defaults",
        "fields",
        "fingerprint",
        "name",
        "upgraders",
        "version",
    )

    def __init__(self, cls: type, name: str, version: int, upgraders: Mapping[int, Upgrader]) -> None:
        self.cls = cls
        self.name = name
        self.version = version
        self.fields: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]
        defaults: dict[str, Any] = cls._field_defaults  # type: ignore[attr-defined]
        self.encoded_defaults = {name: _loads(_dumps(value)) for name, value in defaults.items()}
        self.upgraders = dict(upgraders)
        self.decode_value, self.check_value = _compile(cls)
        self.fingerprint = schema_fingerprint(cls)

    def upgrade(self, version: int, value: list) -> list:
        """Bring a body of an older `version` up to this spec's version."""
        while version < self.version:
            upgrader = self.upgraders.get(version)
            value = upgrader(value) if upgrader is not None else self._pad(value)
            version += 1
        return value

    def _pad(self, value: list) -> list:
        """Default upgrade: fields appended since were given defaults; fill them in."""
        if type(value) is not list or len(value) > len(self.fields):
            return value  # the decoder reports the shape
        missing = self.fields[len(value):]
        if any(name not in self.encoded_defaults for name in missing):
            raise CodecError(f"{self.name}: no upgrader for an old body missing {', '.join(missing)}")
        return value + [self.encoded_defaults[name] for name in missing]


class TxCodec:
    """A registry of transaction types by name, with canonical encode and strict decode."""

    def __init__(self) -> None:
        self._by_name: dict[str, TxSpec] = {}
        self._by_type: dict[type, TxSpec] = {}

    def register(self, cls: type, *, version: int = 1, upgraders: Mapping[int, Upgrader] | None = None,
                 name: str | None = None) -> TxSpec:
        """Register a NamedTuple transaction type under `name` (default: the class name) at
        `version` (>= 1). Raises TypeError for a field type that has no canonical encoding
        (floats, dicts, unannotated fields) and ValueError for a clash with another type."""
        if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
            raise TypeError(f"{cls!r} is not a NamedTuple type")
        if type(version) is not int or version < 1:
            raise ValueError(f"version must be a positive int, got {version!r}")
        if "ts_ms" not in cls._fields:  # type: ignore[attr-defined]
            raise TypeError(f"{cls.__name__} has no ts_ms field: every transaction carries its time")
        name = name or cls.__name__
        existing = self._by_name.get(name)
        if existing is not None and existing.cls is not cls:
            raise ValueError(f"transaction type name {name!r} already registered for {existing.cls!r}")
        spec = TxSpec(cls, name, version, upgraders or {})
        self._by_name[name] = spec
        self._by_type[cls] = spec
        return spec

    def spec(self, name: str) -> TxSpec | None:
        return self._by_name.get(name)

    def specs(self) -> list[TxSpec]:
        return sorted(self._by_name.values(), key=lambda spec: spec.name)

    def is_registered(self, cls: type) -> bool:
        return cls in self._by_type

    def encode(self, tx: Any) -> EncodedTx:
        """Canonical encoding of a transaction. Raises MalformedTxError (a rejection, nothing
        written) when the type is not registered or a field has the wrong Python type."""
        spec = self._by_type.get(type(tx))
        if spec is None:
            why = UNSUPPORTED.get(type(tx).__name__)
            raise MalformedTxError(f"transaction type {type(tx).__name__} is not registered with the store codec"
                                   + (f" ({why})" if why else ""), field="type", value=type(tx).__name__)
        spec.check_value(tx)
        return EncodedTx(spec.name, spec.version, _encode_body(tx), tx.ts_ms)

    def decode(self, type_name: str, version: int, body: str | bytes) -> Any:
        """The transaction a stored row holds. Raises CodecError for a body that does not parse
        or does not match its type, NewerVersionError for a version this registry does not know."""
        spec = self._by_name.get(type_name)
        if spec is None:
            raise CodecError(f"unknown transaction type {type_name!r}")
        return self.decode_parsed(spec, version, parse_body(body))

    def decode_parsed(self, spec: TxSpec, version: int, value: Any) -> Any:
        if version != spec.version:
            if type(version) is not int or version < 1:
                raise CodecError(f"{spec.name}: bad type version {version!r}")
            if version > spec.version:
                raise NewerVersionError(f"{spec.name} version {version} is newer than this perpdex reads "
                                        f"(up to {spec.version}); upgrade perpdex to read this log")
            value = spec.upgrade(version, value)
        return spec.decode_value(value)


# --- decoder and checker generation ---------------------------------------------------------
class _Ctx:
    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"CodecError": CodecError, "MalformedTxError": MalformedTxError,
                                          "_describe": _describe, "_tuple_new": tuple.__new__}
        self.counter = 0

    def var(self, prefix: str = "v") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, value: Any, prefix: str = "c") -> str:
        name = self.var(f"_{prefix}")
        self.namespace[name] = value
        return name


def _plain_namedtuple_new(cls: type) -> bool:
    """Whether `cls(*fields)` is exactly `tuple.__new__(cls, fields)`: its __new__ is the one
    namedtuple generates (a subclass may override it to validate; then we call it)."""
    code = getattr(cls.__new__, "__code__", None)
    fields = tuple(cls._fields)  # type: ignore[attr-defined]
    return (code is not None and code.co_filename == "<string>" and cls.__new__.__name__ == "__new__"
            and code.co_varnames[1:1 + len(fields)] == fields and code.co_argcount == len(fields) + 1)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_namedtuple(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def _union_args(tp: Any) -> tuple | None:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return typing.get_args(tp)
    return None


def _hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    missing = [name for name in cls._fields if name not in hints]  # type: ignore[attr-defined]
    if missing:
        raise TypeError(f"{cls.__name__}: fields without a type annotation: {missing}")
    return hints


def _scalar_type(tp: Any) -> type | None:
    if tp in (int, str, bool):
        return tp
    if tp is float:
        raise TypeError("float fields have no canonical encoding; transactions carry exact ints")
    return None


def _gen_decode(tp: Any, var: str, path: str, ctx: _Ctx, indent: str, top: bool = False) -> list[str]:
    """Lines that check the parsed JSON value in `var` against `tp` and leave the Python value in it."""
    bad = f"{indent}    raise CodecError(f'{path}: expected {_type_name(tp)}, got {{_describe({var})}}')"
    scalar = _scalar_type(tp)
    if scalar is not None:
        return [f"{indent}if type({var}) is not {scalar.__name__}:", bad]
    args = _union_args(tp)
    if args is not None:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"{path}: only `X | None` unions are supported, got {tp!r}")
        return [f"{indent}if {var} is not None:", *_gen_decode(rest[0], var, path, ctx, indent + "    ")]
    if isinstance(tp, type) and issubclass(tp, Enum):
        value_types = {type(member.value) for member in tp}
        if len(value_types) != 1 or not value_types <= {int, str}:
            raise TypeError(f"{path}: enum {tp.__name__} needs all-int or all-str values")
        value_type = value_types.pop().__name__
        table = ctx.const({member.value: member for member in tp}, "enum")
        found = ctx.var("e")
        return [f"{indent}{found} = {table}.get({var}) if type({var}) is {value_type} else None",
                f"{indent}if {found} is None:", bad, f"{indent}{var} = {found}"]
    if _is_namedtuple(tp):
        hints = _hints(tp)
        names = [ctx.var("f") for _ in tp._fields]
        cls = ctx.const(tp, "t")
        shape = (f"{indent}    raise CodecError(f'{path}: expected a {len(names)}-field array ({tp.__name__}), "
                 f"got {{_describe({var})}}')")
        lines = [f"{indent}if type({var}) is not list or len({var}) != {len(names)}:", shape,
                 f"{indent}{', '.join(names)}{',' if len(names) == 1 else ''} = {var}"]
        for field, name in zip(tp._fields, names):
            lines += _gen_decode(hints[field], name, f"{path}.{field}", ctx, indent)
        if not top and _plain_namedtuple_new(tp) and all(_scalar_type(hints[f]) for f in tp._fields):
            # a small all-scalar value (SubaccountId): one shared instance per value, so the
            # exchange's dict lookups on it hit by identity; bounded by the distinct values seen
            cache, key, found = ctx.const({}, "cache"), ctx.var("k"), ctx.var("o")
            lines += [f"{indent}{key} = ({', '.join(names)},)",
                      f"{indent}{found} = {cache}.get({key})",
                      f"{indent}if {found} is None:",
                      f"{indent}    if len({cache}) >= {_INTERN_LIMIT}:",
                      f"{indent}        {cache}.clear()",
                      f"{indent}    {found} = {cache}[{key}] = _tuple_new({cls}, {key})",
                      f"{indent}{var} = {found}"]
        elif _plain_namedtuple_new(tp):  # skip the generated __new__'s Python frame: same object
            lines.append(f"{indent}{var} = _tuple_new({cls}, ({', '.join(names)},))")
        else:
            lines.append(f"{indent}{var} = {cls}({', '.join(names)})")
        return lines
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item, acc = ctx.var("i"), ctx.var("a")
        return [f"{indent}if type({var}) is not list:", bad, f"{indent}{acc} = []",
                f"{indent}for {item} in {var}:",
                *_gen_decode(args[0], item, f"{path}[]", ctx, indent + "    "),
                f"{indent}    {acc}.append({item})", f"{indent}{var} = tuple({acc})"]
    if origin is tuple and args and Ellipsis not in args:
        names = [ctx.var("p") for _ in args]
        lines = [f"{indent}if type({var}) is not list or len({var}) != {len(args)}:", bad,
                 f"{indent}{', '.join(names)}{',' if len(names) == 1 else ''} = {var}"]
        for index, (arg, name) in enumerate(zip(args, names)):
            lines += _gen_decode(arg, name, f"{path}[{index}]", ctx, indent)
        lines.append(f"{indent}{var} = ({', '.join(names)}{',' if len(names) == 1 else ''})")
        return lines
    raise TypeError(f"{path}: type {tp!r} has no canonical encoding")


def _gen_check(tp: Any, var: str, path: str, ctx: _Ctx, indent: str) -> list[str]:
    """Lines that raise MalformedTxError unless the Python value in `var` has exactly type `tp`."""
    bad = (f"{indent}    raise MalformedTxError(f'{path} must be {_type_name(tp)}, got {{_describe({var})}}', "
           f"field={path!r}, value={var})")
    scalar = _scalar_type(tp)
    if scalar is not None:
        return [f"{indent}if type({var}) is not {scalar.__name__}:", bad]
    args = _union_args(tp)
    if args is not None:
        rest = [arg for arg in args if arg is not type(None)]
        return [f"{indent}if {var} is not None:", *_gen_check(rest[0], var, path, ctx, indent + "    ")]
    if isinstance(tp, type) and issubclass(tp, Enum):
        return [f"{indent}if type({var}) is not {ctx.const(tp, 'enum')}:", bad]
    if _is_namedtuple(tp):
        hints = _hints(tp)
        names = [ctx.var("f") for _ in tp._fields]
        lines = [f"{indent}if type({var}) is not {ctx.const(tp, 't')}:", bad,
                 f"{indent}{', '.join(names)}{',' if len(names) == 1 else ''} = {var}"]
        for field, name in zip(tp._fields, names):
            lines += _gen_check(hints[field], name, f"{path}.{field}", ctx, indent)
        return lines
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = ctx.var("i")
        return [f"{indent}if type({var}) is not tuple:", bad, f"{indent}for {item} in {var}:",
                *_gen_check(args[0], item, f"{path}[]", ctx, indent + "    ")]
    if origin is tuple and args:
        names = [ctx.var("p") for _ in args]
        lines = [f"{indent}if type({var}) is not tuple or len({var}) != {len(args)}:", bad,
                 f"{indent}{', '.join(names)}{',' if len(names) == 1 else ''} = {var}"]
        for index, (arg, name) in enumerate(zip(args, names)):
            lines += _gen_check(arg, name, f"{path}[{index}]", ctx, indent)
        return lines
    raise TypeError(f"{path}: type {tp!r} has no canonical encoding")


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "").replace("'", "")


def _compile(cls: type) -> tuple[Callable[[Any], Any], Callable[[Any], None]]:
    """Generate (decode_value, check_value) for a NamedTuple transaction type."""
    ctx = _Ctx()
    decode_lines = ["def decode_value(value):", *_gen_decode(cls, "value", cls.__name__, ctx, "    ", top=True),
                    "    return value"]
    check_lines = ["def check_value(value):", *_gen_check(cls, "value", cls.__name__, ctx, "    ")]
    namespace = dict(ctx.namespace)
    # generated from type hints only, as collections.namedtuple does; no input reaches this code
    exec(compile("\n".join(decode_lines), f"<perpdex.store.codec decode {cls.__name__}>", "exec"), namespace)  # noqa: S102
    exec(compile("\n".join(check_lines), f"<perpdex.store.codec check {cls.__name__}>", "exec"), namespace)  # noqa: S102
    return namespace["decode_value"], namespace["check_value"]


def schema_fingerprint(tp: Any) -> str:
    """A readable description of a type's encoded shape; changes whenever its encoding would,
    so a test can pin each registered version to its fingerprint."""
    args = _union_args(tp)
    if args is not None:
        return "|".join(schema_fingerprint(arg) if arg is not type(None) else "None" for arg in args)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return f"{tp.__name__}{{{','.join(str(member.value) for member in tp)}}}"
    if _is_namedtuple(tp):
        hints = _hints(tp)
        return f"{tp.__name__}({','.join(f'{f}:{schema_fingerprint(hints[f])}' for f in tp._fields)})"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        return f"tuple[{','.join('...' if arg is Ellipsis else schema_fingerprint(arg) for arg in args)}]"
    return _type_name(tp)


# --- the default registry --------------------------------------------------------------------
DEFAULT_CODEC = TxCodec()


def register_tx_type(cls: type, *, version: int = 1, upgraders: Mapping[int, Upgrader] | None = None,
                     name: str | None = None) -> TxSpec:
    """Register a transaction type with the default codec (see `TxCodec.register`)."""
    return DEFAULT_CODEC.register(cls, version=version, upgraders=upgraders, name=name)


UNSUPPORTED: dict[str, str] = {}
"""Core transaction types the codec could not register, with why (a test asserts it is empty)."""


def register_core_types(codec: TxCodec = DEFAULT_CODEC) -> None:
    """Register every member of `perpdex.core.tx.Tx` not registered yet, at version 1. A type
    whose fields have no canonical encoding is left out (and listed in UNSUPPORTED) rather than
    breaking `import perpdex.store`; encoding one raises MalformedTxError."""
    for cls in typing.get_args(core_tx.Tx):
        if not codec.is_registered(cls):
            try:
                codec.register(cls)
            except (TypeError, ValueError) as exc:
                UNSUPPORTED[cls.__name__] = str(exc)


def encode_tx(tx: Any) -> EncodedTx:
    return DEFAULT_CODEC.encode(tx)


def decode_tx(type_name: str, version: int, body: str | bytes) -> Any:
    return DEFAULT_CODEC.decode(type_name, version, body)


register_core_types()
