"""Typed errors of the exchange core: a stable code, the field at fault and its value.
A `PerpdexError` rejects a transaction and leaves state unchanged; `InvariantViolation` is our bug."""

from __future__ import annotations

from typing import Any


class PerpdexError(Exception):
    """Base of every rejection. `code` is stable across versions; `field` names the input at fault."""

    code = "perpdex.error"

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value

    def __str__(self) -> str:
        where = f" [{self.field}={self.value!r}]" if self.field is not None else ""
        return f"{self.code}: {self.message}{where}"

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "value": _jsonable(self.value), "message": self.message}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


# --- transactions in general -------------------------------------------------------------
class TxError(PerpdexError):
    code = "tx.invalid"


class MalformedTxError(TxError):
    code = "tx.malformed"


class TimestampError(TxError):
    code = "tx.timestamp_out_of_order"


class UnknownTxTypeError(TxError):
    code = "tx.unknown_type"


# --- markets and parameters ----------------------------------------------------------------
class MarketError(PerpdexError):
    code = "market.invalid"


class UnknownMarketError(MarketError):
    code = "market.unknown"


class ParamsError(MarketError):
    code = "market.bad_params"


class MarketFileError(ParamsError):
    code = "market.bad_file"


# --- accounts and collateral ---------------------------------------------------------------
class AccountError(PerpdexError):
    code = "account.invalid"


class UnknownSubaccountError(AccountError):
    code = "account.unknown_subaccount"


class UnknownAssetError(AccountError):
    code = "account.unknown_asset"


class InsufficientBalanceError(AccountError):
    code = "account.insufficient_balance"


class MarginModeError(AccountError):
    code = "account.margin_mode"


# --- orders -------------------------------------------------------------------------------
class OrderError(PerpdexError):
    code = "order.invalid"


class OffStepError(OrderError):
    code = "order.size_off_step"


class OffTickError(OrderError):
    code = "order.price_off_tick"


class BelowMinOrderSizeError(OrderError):
    code = "order.below_min_size"


class UnknownOrderError(OrderError):
    code = "order.unknown"


class OrderNotOpenError(OrderError):
    code = "order.not_open"


class DuplicateClientIdError(OrderError):
    code = "order.duplicate_client_id"


class PostOnlyWouldCrossError(OrderError):
    code = "order.post_only_would_cross"


class ReduceOnlyError(OrderError):
    code = "order.reduce_only_would_increase"


class ExpiredOrderError(OrderError):
    code = "order.already_expired"


# --- margin ---------------------------------------------------------------------------------
class MarginError(PerpdexError):
    """The account after the change fails the margin rule; `result` says how."""

    code = "margin.insufficient"

    def __init__(self, message: str, *, field: str | None = None, value: Any = None, result: Any = None) -> None:
        super().__init__(message, field=field, value=value)
        self.result = result


class WithdrawalExceedsFreeCollateralError(MarginError):
    code = "margin.withdrawal_exceeds_free_collateral"


# --- oracle --------------------------------------------------------------------------------
class OracleError(PerpdexError):
    code = "oracle.invalid"


class StaleOracleError(OracleError):
    code = "oracle.stale"


class MissingOraclePriceError(OracleError):
    code = "oracle.missing_price"


class InvariantViolation(AssertionError):
    """An impossible state: a bug in perpdex, never a user's fault. Not a PerpdexError on purpose."""
