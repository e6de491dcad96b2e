"""Golden tables for `perpdex.core.units`: directed division, ppm products, base -> quote notional,
the integer median, and the price/size/USDC conversions at the edge.

Every table ports a dYdX v4 test (dydxprotocol/v4-chain @84d4664, paths under `protocol/`) and
keeps its case names as ids, unless the comment says the cases are our own.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from perpdex.core.units import (
    QUOTE,
    base_quantums_to_size,
    base_to_quote_quantums,
    div_ceil,
    div_floor,
    div_round,
    div_trunc,
    median_int,
    mul_ppm,
    price_to_subticks,
    quote_quantums_to_usd,
    size_to_base_quantums,
    subticks_per_unit_exponent,
    subticks_to_price,
    usd_to_quote_quantums,
)

MAX_UINT64 = 2**64 - 1
MAX_UINT32 = 2**32 - 1

# Market configurations from src/perpdex/config/markets.toml (dYdX v4 sample_pregenesis.json):
# (atomic_resolution, quantum_conversion_exponent).
BTC_USD = (-10, -9)  # subticks_per_unit_exponent 5: $1 = 100_000 subticks
ETH_USD = (-9, -9)  # subticks_per_unit_exponent 6: $1 = 1_000_000 subticks


# --- division helpers -------------------------------------------------------------------------

# dYdX v4 protocol/lib/big_math_test.go TestBigDivCeil (BigDivCeil is the true ceiling for any signs).
BIG_DIV_CEIL_CASES = {
    "Divides evenly": (10, 5, 2),
    "Doesn't divide evenly": (10, 3, 4),
    "Negative numerator": (-10, 3, -3),
    "Negative numerator 2": (-1, 2, 0),
    "Negative denominator": (10, -3, -3),
    "Negative denominator 2": (1, -2, 0),
    "Negative numerator and denominator": (-10, -3, 4),
    "Negative numerator and denominator 2": (-1, -2, 1),
    "Zero numerator": (0, 3, 0),
}


@pytest.mark.parametrize(("numerator", "denominator", "expected"), BIG_DIV_CEIL_CASES.values(),
                         ids=BIG_DIV_CEIL_CASES.keys())
def test_div_ceil_matches_big_div_ceil(numerator: int, denominator: int, expected: int) -> None:
    assert div_ceil(numerator, denominator) == expected
    # div_round(round_up=True) is the same ceiling.
    assert div_round(numerator, denominator, round_up=True) == expected


def test_div_ceil_by_zero_raises() -> None:
    # dYdX v4 protocol/lib/big_math_test.go TestBigDivCeil "Zero denominator": panics.
    with pytest.raises(ZeroDivisionError):
        div_ceil(10, 0)


# Our own cases: floor, truncation and rounding of the same quotients with every sign. Go's
# big.Int Quo truncates toward zero and Div is Euclidean (= floor for a positive divisor); see
# dYdX v4 protocol/lib/big_math.go BigDivFloor and /work/research/dydx_margin.md section
# "Go integer-division semantics".
DIVISION_CASES = {
    # name: (numerator, denominator, floor, ceil, trunc)
    "a positive quotient that divides evenly is exact in every direction": (10, 5, 2, 2, 2),
    "a positive remainder floors down, ceils up and truncates down": (7, 2, 3, 4, 3),
    "a negative numerator floors away from zero and truncates toward zero": (-7, 2, -4, -3, -3),
    "a negative denominator floors away from zero and truncates toward zero": (7, -2, -4, -3, -3),
    "two negatives give a positive quotient that floors and truncates down": (-7, -2, 3, 4, 3),
    "minus one half floors to minus one and truncates to zero": (-1, 2, -1, 0, 0),
    "one half floors and truncates to zero and ceils to one": (1, 2, 0, 1, 0),
    "zero divided by anything is zero": (0, -3, 0, 0, 0),
    "a quotient above int64 stays exact": (10**24 + 1, 10**6, 10**18, 10**18 + 1, 10**18),
    "a negative quotient below int64 stays exact": (-(10**24) - 1, 10**6, -(10**18) - 1, -(10**18), -(10**18)),
}


@pytest.mark.parametrize(("numerator", "denominator", "floor", "ceil", "trunc"), DIVISION_CASES.values(),
                         ids=DIVISION_CASES.keys())
def test_directed_division(numerator: int, denominator: int, floor: int, ceil: int, trunc: int) -> None:
    assert div_floor(numerator, denominator) == floor
    assert div_ceil(numerator, denominator) == ceil
    assert div_trunc(numerator, denominator) == trunc
    assert div_round(numerator, denominator, round_up=False) == floor
    assert div_round(numerator, denominator, round_up=True) == ceil


# --- mul_ppm ----------------------------------------------------------------------------------

# dYdX v4 protocol/lib/big_math_test.go TestBigMulPpm: roundUp -> ceiling, else floor (Div).
BIG_MUL_PPM_CASES = {
    "Positive round down": (543_211, 876_543, False, 476_147),
    "Negative round down": (-543_211, 876_543, False, -476_148),
    "Positive round up": (543_211, 876_543, True, 476_148),
    "Negative round up": (-543_211, 876_543, True, -476_147),
    "Zero val": (0, 876_543, True, 0),
    "Zero ppm": (543_211, 0, True, 0),
    "Zero val and ppm": (0, 0, True, 0),
    "Negative val": (-543_211, 876_543, True, -476_147),
    "Negative ppm": (543_211, -876_543, True, -476_147),
    "Negative val and ppm": (-543_211, -876_543, True, 476_148),
    "Greater than max int64": (10**24, 10_000, True, 10**22),
}


@pytest.mark.parametrize(("value", "ppm", "round_up", "expected"), BIG_MUL_PPM_CASES.values(),
                         ids=BIG_MUL_PPM_CASES.keys())
def test_mul_ppm_matches_big_mul_ppm(value: int, ppm: int, round_up: bool, expected: int) -> None:
    assert mul_ppm(value, ppm, round_up=round_up) == expected


# dYdX v4 protocol/lib/big_math_test.go TestBigIntMulPpm: always floors (toward -inf), which is
# mul_ppm(..., round_up=False).
BIG_INT_MUL_PPM_CASES = {
    "Ppm of 5": (1_000_000, 5, 5),
    "Ppm of 10^6": (1_000_000, 1_000_000, 1_000_000),
    "Ppm of 0": (1_000_000, 0, 0),
    "Ppm over 10^6": (1_000_000, 1_000_000_000, 1_000_000_000),
    "Ppm of max uint32": (1_000_000, MAX_UINT32, 4_294_967_295),
    "Positive rounding towards negative infinity": (3, 500_000, 1),  # 1.5 -> 1
    "Negative rounding towards negative infinity": (-3, 500_000, -2),  # -1.5 -> -2
    "0 input": (0, 1_000_000, 0),
    "Input greater than max uint": (10**24, 10_000, 10**22),
}


@pytest.mark.parametrize(("value", "ppm", "expected"), BIG_INT_MUL_PPM_CASES.values(),
                         ids=BIG_INT_MUL_PPM_CASES.keys())
def test_mul_ppm_round_down_matches_big_int_mul_ppm(value: int, ppm: int, expected: int) -> None:
    assert mul_ppm(value, ppm, round_up=False) == expected


# --- base_to_quote_quantums -------------------------------------------------------------------

# dYdX v4 protocol/lib/quantums_test.go TestBaseToQuoteQuantums. dYdX takes (baseQuantums,
# baseAtomicResolution, price, priceExponent); ours takes (size, price_subticks, qce) with the
# same price integer as subticks and qce = priceExponent + atomicResolution + 6.
# Columns: baseQuantums, atomicResolution, price, priceExponent, expected quote quantums.
BASE_TO_QUOTE_CASES = {
    "Converts from base to quote quantums": (1, -6, 1, 1, 10),
    "Correctly converts negative value": (-100, -6, 1, 1, -1_000),
    "priceExponent is negative": (5_000_000, -6, 7, -5, 350),
    "priceExponent is zero": (5_000_000, -6, 7, 0, 35_000_000),
    "baseCurrencyAtomicResolution is greater than 10^6": (5_000_000, -8, 7, 0, 350_000),
    "baseCurrencyAtomicResolution is less than 10^6": (5_000_000, -4, 7, 1, 35_000_000_000),
    "Calculation rounds down": (9, -8, 1, 1, 0),
    "Negative calculation rounds up": (-9, -8, 1, 1, 0),
    "Calculation overflows": (MAX_UINT64, -6, 2, 0, 36_893_488_147_419_103_230),
    "Calculation underflows": (-MAX_UINT64, -6, 2, 0, -36_893_488_147_419_103_230),
    # Same file, BenchmarkBaseToQuoteQuantums assertions.
    "BenchmarkBaseToQuoteQuantums priceExponent -10": (
        1_234_123_412_341, -8, 18_446_744_073_709_551_610, -10, 22_765_558_742_827_551_059),
    "BenchmarkBaseToQuoteQuantums priceExponent 10": (
        1_234_123_412_341, -8, 18_446_744_073_709_551_610, 10,
        2_276_555_874_282_755_105_905_825_041_901_000_000_000),
}


@pytest.mark.parametrize(("base_quantums", "atomic_resolution", "price", "price_exponent", "expected"),
                         BASE_TO_QUOTE_CASES.values(), ids=BASE_TO_QUOTE_CASES.keys())
def test_base_to_quote_quantums_matches_dydx(base_quantums: int, atomic_resolution: int, price: int,
                                             price_exponent: int, expected: int) -> None:
    quantum_conversion_exponent = price_exponent + atomic_resolution + 6
    assert base_to_quote_quantums(base_quantums, price, quantum_conversion_exponent) == expected


# dYdX v4 protocol/x/clob/types/quantums_test.go TestFillAmountToQuoteQuantums: (baseQuantums,
# subticks, qce) -> quote. FillAmountToQuoteQuantums floors; every case has a positive size,
# where floor and our truncation toward zero agree.
FILL_AMOUNT_CASES = {
    "Converts from base to quote quantums": (1, 1, 1, 10),
    "quantumConversionExponent is negative": (1_000, 5_000_000, -4, 500_000),
    "quantumConversionExponent is zero": (5_000_000, 1, 0, 5_000_000),
    "Calculation rounds down and can return 0 quoteQuantums": (9, 1, -1, 0),
    "Calculation overflows": (MAX_UINT64, 1, 6, 18_446_744_073_709_551_615_000_000),
}


@pytest.mark.parametrize(("base_quantums", "subticks", "qce", "expected"), FILL_AMOUNT_CASES.values(),
                         ids=FILL_AMOUNT_CASES.keys())
def test_base_to_quote_quantums_matches_fill_amount(base_quantums: int, subticks: int, qce: int,
                                                    expected: int) -> None:
    assert base_to_quote_quantums(base_quantums, subticks, qce) == expected


# --- median_int -------------------------------------------------------------------------------

# dYdX v4 protocol/lib/math_test.go TestMedian_Int32 (lib.Median rounds an even count's mean half
# away from zero). Several upstream names say "odd number input" for six values: kept verbatim.
MEDIAN_INT32_CASES = {
    "Odd number input": ([2, 0, 1, 3, 4], 2),
    "Even number input, middle numbers are both odd": ([5, 11, 1, 3, 12, 50], 8),
    "Even number input, middle numbers are odd and even": ([5, 12, 1, 3, 12, 50], 9),  # 8.5
    "Even number input, middle numbers are even and odd": ([6, 11, 1, 3, 12, 50], 9),  # 8.5
    "Even number input, middle numbers are both even": ([6, 12, 1, 3, 12, 50], 9),
    "All negative, even number input, middle numbers are both odd": ([-6, -12, -1, -3, -12, -50], -9),
    "All negative, even number input,  middle numbers are even and odd": ([-5, -12, -1, -3, -12, -50], -9),
    "All negative, even number input, middle numbers are odd and even": ([-6, -11, -1, -3, -12, -50], -9),
    "All negative, even number input, middle numbers are both even": ([-6, -12, -1, -3, -12, -50], -9),
    "Mixed signs, odd number input": ([6, 12, 1, -12, -50], 1),
    "Mixed signs, even number input, middle numbers both non-negative": ([-12, 20, 100, 1, 0, -50], 1),
    "Mixed signs, odd number input, middle numbers both non-positive": ([-12, 20, 100, -9, 0, -50], -5),
    "Mixed signs, odd number input, middle numbers different signs, both odd": (
        [-12, 20, 100, -9, 1, -50], -4),
    "Mixed signs, odd number input, middle numbers different signs, both even": (
        [-12, 6, 100, -2, 20, -50], 2),
    "Mixed signs, odd number input, middle numbers different signs, even and odd, negative median": (
        [-12, 5, 100, -10, 20, -50], -3),
    "Mixed signs, odd number input, middle numbers different signs, even and odd, positive median": (
        [-12, 5, 100, -4, 20, -50], 1),
    "Mixed signs, odd number input, middle numbers different signs, odd and even, negative median": (
        [-12, 2, 100, -9, 20, -50], -4),
    "Mixed signs, odd number input, middle numbers different signs, odd and even, positive median": (
        [-12, 16, 100, -9, 20, -50], 4),
}


@pytest.mark.parametrize(("values", "expected"), MEDIAN_INT32_CASES.values(), ids=MEDIAN_INT32_CASES.keys())
def test_median_int_matches_median_int32(values: list[int], expected: int) -> None:
    assert median_int(values) == expected


# dYdX v4 protocol/lib/math_test.go TestMedian_Uint64 (non-negative values: half rounds up).
MEDIAN_UINT64_CASES = {
    "Odd number input": ([2, 0, 1, 3, 4], 2),
    "Even number input, middle numbers are both odd": ([5, 11, 1, 3, 12, 50], 8),
    "Even number input, middle numbers are odd and even": ([5, 12, 1, 3, 12, 50], 9),
    "Even number input, middle numbers are even and odd": ([6, 11, 1, 3, 12, 50], 9),
    "Even number input, middle numbers are both even": ([6, 12, 1, 3, 12, 50], 9),
}


@pytest.mark.parametrize(("values", "expected"), MEDIAN_UINT64_CASES.values(),
                         ids=MEDIAN_UINT64_CASES.keys())
def test_median_int_matches_median_uint64(values: list[int], expected: int) -> None:
    assert median_int(tuple(values)) == expected


def test_median_int_of_no_values_raises() -> None:
    # dYdX v4 protocol/lib/math_test.go TestMedian_Int32 "Empty input causes error".
    with pytest.raises(ValueError):
        median_int([])


def test_median_int_does_not_reorder_its_input() -> None:
    values = [5, 11, 1, 3, 12, 50]
    median_int(values)
    assert values == [5, 11, 1, 3, 12, 50]


# --- prices and subticks ----------------------------------------------------------------------

# dYdX v4 protocol/x/clob/types/price_to_subticks_test.go TestPriceToSubticks. dYdX's market
# price (Price, Exponent) is the human price Price * 10**Exponent; quote AR is -6 throughout.
# Columns: human price, atomic resolution, qce, expected subticks.
PRICE_TO_SUBTICKS_CASES = {
    "typical BTC configuration, at $10_000": ("10000", -10, -8, 100_000_000),
    "typical ETH configuration, at $1_200": ("1200", -9, -9, 1_200_000_000),
}


@pytest.mark.parametrize(("price", "atomic_resolution", "qce", "expected"), PRICE_TO_SUBTICKS_CASES.values(),
                         ids=PRICE_TO_SUBTICKS_CASES.keys())
def test_price_to_subticks_matches_dydx(price: str, atomic_resolution: int, qce: int, expected: int) -> None:
    assert price_to_subticks(price, atomic_resolution, qce) == expected


def test_price_to_subticks_retains_digits_if_not_divisible() -> None:
    # dYdX v4 protocol/x/clob/types/price_to_subticks_test.go "retains digits if not divisible":
    # $1_200 at baseAR -18, qce -9 is 12/10 subticks. dYdX keeps the rational; we refuse to
    # round silently and round only in the direction the caller names.
    with pytest.raises(ValueError):
        price_to_subticks("1200", -18, -9)
    assert price_to_subticks("1200", -18, -9, round_up=False) == 1
    assert price_to_subticks("1200", -18, -9, round_up=True) == 2


# dYdX v4 protocol/x/clob/types/price_to_subticks_test.go TestSubticksToPrice. Columns: subticks,
# atomic resolution, qce, expected human price.
SUBTICKS_TO_PRICE_CASES = {
    "typical BTC configuration, at $10_000": (100_000_000, -10, -8, Decimal("10000")),
    "typical ETH configuration, at $1_200": (1_200_000_000, -9, -9, Decimal("1200")),
    "high base atomic resolution, at $1000": (1, -18, -9, Decimal("1000")),
}


@pytest.mark.parametrize(("subticks", "atomic_resolution", "qce", "expected"), SUBTICKS_TO_PRICE_CASES.values(),
                         ids=SUBTICKS_TO_PRICE_CASES.keys())
def test_subticks_to_price_matches_dydx(subticks: int, atomic_resolution: int, qce: int,
                                        expected: Decimal) -> None:
    assert subticks_to_price(subticks, atomic_resolution, qce) == expected


def test_subticks_per_unit_exponent_of_shipped_btc_and_eth() -> None:
    # markets.toml: BTC-USD ar -10, qce -9 -> e = -10 + 6 + 9 = 5; ETH-USD ar -9 -> e = 6.
    assert subticks_per_unit_exponent(*BTC_USD) == 5
    assert subticks_per_unit_exponent(*ETH_USD) == 6


# Our own cases on the shipped BTC-USD and ETH-USD configurations (markets.toml). The two genesis
# prices come from dYdX v4 protocol/scripts/genesis/sample_pregenesis.json (BTC 2_868_819_524 at
# exponent -5, ETH 1_811_985_252 at exponent -6): with qce -9 subticks equal that integer.
PRICE_ROUND_TRIP_CASES = {
    "BTC at $100,000 is ten billion subticks": (BTC_USD, "100000", 10_000_000_000),
    "BTC one tick of $1 is 100,000 subticks": (BTC_USD, "1", 100_000),
    "BTC one subtick is $0.00001": (BTC_USD, "0.00001", 1),
    "BTC genesis price $28,688.19524 is its oracle integer": (BTC_USD, "28688.19524", 2_868_819_524),
    "ETH at $3,000 is three billion subticks": (ETH_USD, "3000", 3_000_000_000),
    "ETH one tick of $0.1 is 100,000 subticks": (ETH_USD, "0.1", 100_000),
    "ETH one subtick is $0.000001": (ETH_USD, "0.000001", 1),
    "ETH genesis price $1,811.985252 is its oracle integer": (ETH_USD, "1811.985252", 1_811_985_252),
}


@pytest.mark.parametrize(("market", "price", "subticks"), PRICE_ROUND_TRIP_CASES.values(),
                         ids=PRICE_ROUND_TRIP_CASES.keys())
def test_price_subticks_round_trip(market: tuple[int, int], price: str, subticks: int) -> None:
    assert price_to_subticks(price, *market) == subticks
    assert price_to_subticks(Decimal(price), *market) == subticks
    assert subticks_to_price(subticks, *market) == Decimal(price)
    assert price_to_subticks(subticks_to_price(subticks, *market), *market) == subticks


def test_price_to_subticks_accepts_an_int_price() -> None:
    assert price_to_subticks(100_000, *BTC_USD) == 10_000_000_000


# Our own cases: a BTC price finer than one subtick ($0.00001) is refused unless the caller says
# which way to round. Columns: price, round_up, expected subticks.
FINE_PRICE_CASES = {
    "a price a tenth of a subtick above rounds down to the whole subtick": ("100000.000001", False, 10_000_000_000),
    "a price a tenth of a subtick above rounds up to the next subtick": ("100000.000001", True, 10_000_000_001),
    "a price nine tenths of a subtick above still rounds down": ("100000.000009", False, 10_000_000_000),
    "an exact price ignores the rounding direction": ("100000", True, 10_000_000_000),
}


@pytest.mark.parametrize(("price", "round_up", "expected"), FINE_PRICE_CASES.values(),
                         ids=FINE_PRICE_CASES.keys())
def test_price_to_subticks_rounds_only_when_asked(price: str, round_up: bool, expected: int) -> None:
    assert price_to_subticks(price, *BTC_USD, round_up=round_up) == expected


@pytest.mark.parametrize("price", ["100000.000001", "0.000001", "1e-6"],
                         ids=["a BTC price a tenth of a subtick above a whole one",
                              "a BTC price of a tenth of one subtick",
                              "a BTC price in exponent notation finer than a subtick"])
def test_price_finer_than_a_subtick_raises(price: str) -> None:
    with pytest.raises(ValueError):
        price_to_subticks(price, *BTC_USD)


@pytest.mark.parametrize("price", ["abc", "", "NaN", "Infinity", "-Infinity"],
                         ids=["not a number", "empty", "not a number (NaN)", "infinite", "negative infinite"])
def test_price_that_is_not_a_finite_decimal_raises(price: str) -> None:
    with pytest.raises(ValueError):
        price_to_subticks(price, *BTC_USD)


# --- sizes and USDC ---------------------------------------------------------------------------

# Our own cases on the shipped markets (markets.toml step sizes in the comments). Columns:
# human size, atomic resolution, base quantums.
SIZE_CASES = {
    "one BTC is ten billion base quantums": ("1", -10, 10_000_000_000),
    "one BTC step of 0.0001 is one million base quantums": ("0.0001", -10, 1_000_000),
    "one BTC base quantum is 1e-10 BTC": ("0.0000000001", -10, 1),
    "a short of 2.5 ETH is negative": ("-2.5", -9, -2_500_000_000),
    "one ETH step of 0.001 is one million base quantums": ("0.001", -9, 1_000_000),
    "one DOGE step of 100 DOGE is one million base quantums": ("100", -4, 1_000_000),
    "zero is zero": ("0", -10, 0),
}


@pytest.mark.parametrize(("size", "atomic_resolution", "base_quantums"), SIZE_CASES.values(),
                         ids=SIZE_CASES.keys())
def test_size_base_quantums_round_trip(size: str, atomic_resolution: int, base_quantums: int) -> None:
    assert size_to_base_quantums(size, atomic_resolution) == base_quantums
    assert base_quantums_to_size(base_quantums, atomic_resolution) == Decimal(size)


@pytest.mark.parametrize(("size", "atomic_resolution"),
                         [("0.00000000001", -10), ("1.00000000005", -10), ("0.0000000001", -9), ("abc", -10),
                          ("NaN", -10)],
                         ids=["a tenth of a BTC base quantum", "one BTC and half a base quantum",
                              "a tenth of an ETH base quantum", "not a number", "not a number (NaN)"])
def test_size_finer_than_a_base_quantum_or_not_a_number_raises(size: str, atomic_resolution: int) -> None:
    with pytest.raises(ValueError):
        size_to_base_quantums(size, atomic_resolution)


# Our own cases: USDC has 6 decimals (units.QUOTE_ATOMIC_RESOLUTION = -6, dYdX v4
# protocol/lib/constants.go QuoteCurrencyAtomicResolution).
USD_CASES = {
    "ten dollars is ten QUOTE": ("10", 10 * QUOTE),
    "a dollar and a half": ("1.5", 1_500_000),
    "one quote quantum is a millionth of a dollar": ("0.000001", 1),
    "a negative amount stays negative": ("-2.25", -2_250_000),
    "zero is zero": ("0", 0),
}


@pytest.mark.parametrize(("amount", "quote_quantums"), USD_CASES.values(), ids=USD_CASES.keys())
def test_usd_quote_quantums_round_trip(amount: str, quote_quantums: int) -> None:
    assert usd_to_quote_quantums(amount) == quote_quantums
    assert quote_quantums_to_usd(quote_quantums) == Decimal(amount)


@pytest.mark.parametrize("amount", ["0.0000001", "1.0000005", "abc", "Infinity"],
                         ids=["a tenth of a quote quantum", "a dollar and half a quote quantum", "not a number",
                              "infinite"])
def test_usd_finer_than_a_quote_quantum_or_not_a_number_raises(amount: str) -> None:
    with pytest.raises(ValueError):
        usd_to_quote_quantums(amount)
