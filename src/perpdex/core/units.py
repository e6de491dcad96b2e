"""Units of the exchange core: one integer type per unit, precision constants and bounds.
Every conversion between units lives here, with its equation and its rounding direction."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import NewType

# Integer units (dYdX v4 names: x/clob/types/orderbook.go, x/subaccounts/types/subaccount.go).
BaseQuantums = NewType("BaseQuantums", int)  # 10**atomic_resolution of one base asset unit
QuoteQuantums = NewType("QuoteQuantums", int)  # 1e-6 USDC
Subticks = NewType("Subticks", int)  # price unit: quote = base * subticks * 10**qce
Ppm = NewType("Ppm", int)  # parts per million; PPM = 100%
TimestampMs = NewType("TimestampMs", int)  # UNIX milliseconds, carried by every tx
AssetId = NewType("AssetId", int)
MarketId = NewType("MarketId", str)  # "BTC-USD"

PPM = 1_000_000  # 100%
QUOTE_ATOMIC_RESOLUTION = -6  # USDC has 6 decimals
QUOTE = 10**6  # quote quantums in 1 USDC: write amounts as `10 * QUOTE`
USDC_ASSET_ID = AssetId(0)  # dYdX v4 asset 0 is USDC

# Bounds checked when a tx is decoded. Python ints never overflow, but the rollup's
# state-tree leaves and the dYdX v3 order hash have fixed widths (StarkEx
# definitions/constants.cairo uses BALANCE_UPPER_BOUND = 2**63).
MAX_BALANCE_QUANTUMS = 2**63 - 1
MAX_ORDER_SIZE_BASE_QUANTUMS = 2**63 - 1  # dYdX v4 order quantums are uint64
MAX_SUBTICKS = 2**63 - 1
MAX_TIMESTAMP_MS = 2**63 - 1


def div_floor(numerator: int, denominator: int) -> int:
    """Quotient rounded toward negative infinity (Python's `//`)."""
    return numerator // denominator


def div_ceil(numerator: int, denominator: int) -> int:
    """Quotient rounded toward positive infinity."""
    return -((-numerator) // denominator)


def div_trunc(numerator: int, denominator: int) -> int:
    """Quotient rounded toward zero, as Go's big.Int `Quo`: -7/2 = -3 (Python's -7//2 = -4)."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


def div_round(numerator: int, denominator: int, *, round_up: bool) -> int:
    """Quotient rounded toward +inf when `round_up`, else toward -inf."""
    return -((-numerator) // denominator) if round_up else numerator // denominator


def mul_ppm(value: int, ppm: int, *, round_up: bool) -> int:
    """value * ppm / 1e6, rounded toward +inf if `round_up` else toward -inf.

    dYdX v4 lib/big_math.go BigMulPpm(val, ppm, roundUp). No default: every caller says
    which way it rounds and whom that protects.
    """
    product = value * ppm
    return -((-product) // PPM) if round_up else product // PPM


def base_to_quote_quantums(
    size_base_quantums: int, price_subticks: int, quantum_conversion_exponent: int
) -> int:
    """Notional of a signed size at a price: base * subticks * 10**qce, truncated toward zero.

    Truncation toward zero matches dYdX v4 (lib/quantums.go, x/clob/types FillAmountToQuoteQuantums):
    a long's notional rounds down, a short's negative notional rounds up, so neither side's
    value is ever overstated. With step and tick sizes validated by `MarketParams`, a fill of a
    whole number of steps at a whole number of ticks is exact and never rounds.
    """
    product = size_base_quantums * price_subticks
    if quantum_conversion_exponent >= 0:
        return product * 10**quantum_conversion_exponent
    denominator = 10**-quantum_conversion_exponent
    return product // denominator if product >= 0 else -((-product) // denominator)


def subticks_per_unit_exponent(atomic_resolution: int, quantum_conversion_exponent: int) -> int:
    """Exponent e with subticks = price_usd * 10**e.

    quote = base * subticks * 10**qce; one whole base unit is 10**-ar base quantums and one USDC
    is 10**6 quote quantums, so price_usd = subticks * 10**(qce - ar - 6) and e = ar + 6 - qce.
    BTC-USD (ar=-10, qce=-9): e = 5, so $1 = 100_000 subticks.
    """
    return atomic_resolution - QUOTE_ATOMIC_RESOLUTION - quantum_conversion_exponent


def price_to_subticks(
    price: Decimal | str | int,
    atomic_resolution: int,
    quantum_conversion_exponent: int,
    *,
    round_up: bool | None = None,
) -> int:
    """Human price (USD per whole base unit) to subticks.

    With `round_up=None` the price must convert exactly (raises ValueError otherwise); else it
    rounds toward +inf (`True`) or -inf (`False`). Decimal is used only here, at the edge.
    """
    try:
        value = Decimal(price)
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal price: {price!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite price: {price!r}")
    scaled = value.scaleb(subticks_per_unit_exponent(atomic_resolution, quantum_conversion_exponent))
    integral = scaled.to_integral_value(rounding="ROUND_FLOOR")
    if integral == scaled:
        return int(integral)
    if round_up is None:
        raise ValueError(f"price {price} is finer than one subtick")
    return int(integral) + (1 if round_up else 0)


def subticks_to_price(
    price_subticks: int, atomic_resolution: int, quantum_conversion_exponent: int
) -> Decimal:
    """Subticks to a human price (USD per whole base unit), exactly."""
    exponent = subticks_per_unit_exponent(atomic_resolution, quantum_conversion_exponent)
    return Decimal(price_subticks).scaleb(-exponent)


def size_to_base_quantums(size: Decimal | str | int, atomic_resolution: int) -> int:
    """Human size (whole base units) to base quantums; must convert exactly (else ValueError)."""
    try:
        value = Decimal(size)
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal size: {size!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite size: {size!r}")
    scaled = value.scaleb(-atomic_resolution)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"size {size} is finer than one base quantum")
    return int(scaled)


def base_quantums_to_size(size_base_quantums: int, atomic_resolution: int) -> Decimal:
    """Base quantums to whole base units, exactly."""
    return Decimal(size_base_quantums).scaleb(atomic_resolution)


def quote_quantums_to_usd(amount_quote_quantums: int) -> Decimal:
    """Quote quantums to USDC, exactly."""
    return Decimal(amount_quote_quantums).scaleb(QUOTE_ATOMIC_RESOLUTION)


def usd_to_quote_quantums(amount: Decimal | str | int) -> int:
    """USDC to quote quantums; must convert exactly (else ValueError)."""
    try:
        value = Decimal(amount)
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal amount: {amount!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {amount!r}")
    scaled = value.scaleb(-QUOTE_ATOMIC_RESOLUTION)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"amount {amount} is finer than one quote quantum")
    return int(scaled)


def median_int(values: list[int] | tuple[int, ...]) -> int:
    """Median of integers; for an even count the mean of the middle pair, rounded half away
    from zero (dYdX v4 lib/math.go Median: 8.5 -> 9, -8.5 -> -9, 0.5 -> 1, -4.5 -> -5)."""
    ordered = sorted(values)
    count = len(ordered)
    if not count:
        raise ValueError("median of no values")
    middle = count // 2
    if count % 2:
        return ordered[middle]
    total = ordered[middle - 1] + ordered[middle]
    half = abs(total) // 2 + abs(total) % 2  # |total| / 2 rounded up: away from zero
    return half if total >= 0 else -half
