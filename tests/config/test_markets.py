"""The market file: the shipped default loads, and every bad file raises MarketFileError whose
`.field` names the field at fault.

The shipped values come from dYdX v4 protocol/scripts/genesis/sample_pregenesis.json
(dydxprotocol/v4-chain @84d4664); the bad-file cases are our own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perpdex.config.markets import load_markets, parse_markets
from perpdex.core.errors import MarketFileError, ParamsError
from perpdex.core.params import MarketType

# A small valid file: one tier and two markets, in the shape of the shipped markets.toml.
VALID_TOML = """\
[liquidity_tiers.large-cap]
tier_id = 0
initial_margin_ppm = 20_000
maintenance_fraction_ppm = 600_000
impact_notional_quote_quantums = 10_000_000_000

[[markets]]
market_id = "BTC-USD"
atomic_resolution = -10
quantum_conversion_exponent = -9
step_base_quantums = 1_000_000
subticks_per_tick = 100_000
min_order_base_quantums = 1_000_000
liquidity_tier = "large-cap"
maker_fee_ppm = 100
taker_fee_ppm = 500
oracle_staleness_ms = 60_000

[[markets]]
market_id = "ETH-USD"
atomic_resolution = -9
quantum_conversion_exponent = -9
step_base_quantums = 1_000_000
subticks_per_tick = 100_000
min_order_base_quantums = 1_000_000
liquidity_tier = "large-cap"
maker_fee_ppm = 100
taker_fee_ppm = 500
oracle_staleness_ms = 60_000
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "markets.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped default ----------------------------------------------------------------------

def test_shipped_default_loads_btc_eth_sol_and_more() -> None:
    markets = {market.market_id: market for market in load_markets()}
    assert {"BTC-USD", "ETH-USD", "SOL-USD"} <= markets.keys()
    assert len(markets) >= 5
    for market in markets.values():
        market.validate()  # loaded markets are already valid; validating again does not raise


# dYdX v4 protocol/scripts/genesis/sample_pregenesis.json perpetual and clob pair params; the tier
# fractions are that file's liquidity tiers 0 (Large-Cap) and 1 (Small-Cap). Columns: market,
# atomic resolution, qce, step base quantums, subticks per tick, IM ppm, MF ppm.
SHIPPED_MARKET_CASES = {
    "BTC-USD has a $1 tick, a 0.0001 BTC step and the large-cap tier": (
        "BTC-USD", -10, -9, 1_000_000, 100_000, 20_000, 600_000),
    "ETH-USD has a $0.1 tick, a 0.001 ETH step and the large-cap tier": (
        "ETH-USD", -9, -9, 1_000_000, 100_000, 20_000, 600_000),
    "SOL-USD has a $0.01 tick, a 0.1 SOL step and the small-cap tier": (
        "SOL-USD", -7, -9, 1_000_000, 1_000_000, 100_000, 500_000),
}


@pytest.mark.parametrize(("market_id", "atomic_resolution", "qce", "step", "subticks_per_tick", "im_ppm", "mf_ppm"),
                         SHIPPED_MARKET_CASES.values(), ids=SHIPPED_MARKET_CASES.keys())
def test_shipped_market_parameters(market_id: str, atomic_resolution: int, qce: int, step: int,
                                   subticks_per_tick: int, im_ppm: int, mf_ppm: int) -> None:
    market = {market.market_id: market for market in load_markets()}[market_id]
    assert market.atomic_resolution == atomic_resolution
    assert market.quantum_conversion_exponent == qce
    assert market.step_base_quantums == step
    assert market.subticks_per_tick == subticks_per_tick
    assert market.min_order_base_quantums == step  # dYdX v4 x/clob/types/clob_pair.go: min order = one step
    assert market.liquidity_tier.initial_margin_ppm == im_ppm
    assert market.liquidity_tier.maintenance_fraction_ppm == mf_ppm


def test_shipped_isolated_market_has_a_maker_rebate_within_the_taker_fee() -> None:
    isolated = [market for market in load_markets() if market.market_type is MarketType.ISOLATED]
    assert isolated
    for market in isolated:
        assert market.maker_fee_ppm < 0
        assert market.maker_fee_ppm + market.taker_fee_ppm >= 0


def test_a_valid_file_loads_from_a_path(tmp_path: Path) -> None:
    markets = load_markets(write(tmp_path, VALID_TOML))
    assert [market.market_id for market in markets] == ["BTC-USD", "ETH-USD"]
    assert markets[0].liquidity_tier == markets[1].liquidity_tier  # both name "large-cap"
    assert markets[0].market_type is MarketType.CROSS  # the default
    assert load_markets(str(write(tmp_path, VALID_TOML))) == markets  # a str path works too


# --- bad files --------------------------------------------------------------------------------

def _replace(old: str, new: str, count: int = 1) -> str:
    assert VALID_TOML.count(old) >= count
    return VALID_TOML.replace(old, new, count)


# Our own cases. Columns: file text, expected `.field`.
BAD_FILE_CASES = {
    "a file that is not TOML names the file": ("[[markets]\nmarket_id = ", "file"),
    "a market missing its taker fee names that field": (
        _replace("taker_fee_ppm = 500\n", ""), "markets[0].taker_fee_ppm"),
    "a tier missing its initial margin names that field": (
        _replace("initial_margin_ppm = 20_000\n", ""), "liquidity_tiers.large-cap.initial_margin_ppm"),
    "a file with no markets names the markets table": (VALID_TOML.split("[[markets]]")[0], "markets"),
    "an unknown market field names that field": (
        _replace('market_id = "ETH-USD"\n', 'market_id = "ETH-USD"\ncolour = "blue"\n'), "markets[1].colour"),
    "an unknown top-level table names that table": (VALID_TOML + "\n[exchange]\nname = 'x'\n", "exchange"),
    "a negative step names the step": (
        _replace("step_base_quantums = 1_000_000", "step_base_quantums = -1_000_000"),
        "markets[0].step_base_quantums"),
    "a zero tick names the tick": (_replace("subticks_per_tick = 100_000", "subticks_per_tick = 0"),
                                   "markets[0].subticks_per_tick"),
    "a string where an integer belongs names the field": (
        _replace("atomic_resolution = -10", 'atomic_resolution = "-10"'), "markets[0].atomic_resolution"),
    "a price grid that does not give whole quote quantums names the tick": (
        # one step at one tick: 1_000 * 1_000 base-subticks is 1e6 / 1e9 of a quote quantum.
        _replace("step_base_quantums = 1_000_000\nsubticks_per_tick = 100_000\nmin_order_base_quantums = 1_000_000",
                 "step_base_quantums = 1_000\nsubticks_per_tick = 1_000\nmin_order_base_quantums = 1_000"),
        "markets[BTC-USD].subticks_per_tick"),
    "a min order size off the step names the min order size": (
        _replace("min_order_base_quantums = 1_000_000", "min_order_base_quantums = 1_500_000"),
        "markets[BTC-USD].min_order_base_quantums"),
    "an unknown liquidity tier name names the market's tier": (
        _replace('liquidity_tier = "large-cap"', 'liquidity_tier = "mid-cap"'), "markets[0].liquidity_tier"),
    "a duplicate market names the second market's id": (
        _replace('market_id = "ETH-USD"', 'market_id = "BTC-USD"'), "markets[1].market_id"),
    "a maker rebate larger than the taker fee names the maker fee": (
        _replace("maker_fee_ppm = 100", "maker_fee_ppm = -600"), "markets[BTC-USD].maker_fee_ppm"),
}


@pytest.mark.parametrize(("text", "field"), BAD_FILE_CASES.values(), ids=BAD_FILE_CASES.keys())
def test_bad_file_raises_market_file_error_naming_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MarketFileError) as caught:
        load_markets(path)
    assert caught.value.field == field
    assert str(path) in caught.value.message  # the error names the file too
    assert isinstance(caught.value, ParamsError)


@pytest.mark.parametrize("make_path", [
    lambda tmp_path: tmp_path / "missing.toml",
    lambda tmp_path: tmp_path,
], ids=["a path that does not exist names the file", "a directory names the file"])
def test_unreadable_path_raises_market_file_error(tmp_path: Path, make_path) -> None:
    path = make_path(tmp_path)
    with pytest.raises(MarketFileError) as caught:
        load_markets(path)
    assert caught.value.field == "file"
    assert caught.value.value == str(path)


def test_parse_markets_names_its_source() -> None:
    with pytest.raises(MarketFileError) as caught:
        parse_markets("not = [toml", source="inline-test")
    assert caught.value.field == "file"
    assert caught.value.message.startswith("inline-test:")
