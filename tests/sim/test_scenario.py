"""Scenario files: the shipped ones validate and say what the issue asks; bad files and overrides
fail with one error naming the field; `--set` overrides land where they say."""

from __future__ import annotations

import pytest

from perpdex.core.errors import PerpdexError
from perpdex.sim.engine import build_liquidations_config, build_markets
from perpdex.sim.scenario import (
    ScenarioError,
    apply_overrides,
    list_scenarios,
    load_scenario,
    parse_override,
    parse_scenario,
    scenario_to_toml,
)
from tests.sim.tiny import TINY, tiny

SHIPPED = ("calm", "cascade", "default", "ftx-2022", "funding-squeeze", "proof-lag")


def test_shipped_scenarios_are_listed_and_valid():
    assert set(SHIPPED) <= set(list_scenarios())
    for name in list_scenarios():
        scenario = load_scenario(name)
        assert scenario.name == name
        build_markets(scenario)  # every market exists in the shipped market file


def test_default_scenario_is_what_the_issue_asks_for():
    scenario = load_scenario("default")
    assert scenario.market_ids == ["BTC-USD", "ETH-USD", "SOL-USD"]
    assert scenario.days == 3
    assert scenario.agent_count >= 500
    eth_drops = [s for s in scenario.shocks if s.market == "ETH-USD" and s.move == -0.25]
    assert eth_drops and 24 <= eth_drops[0].at_hours < 48  # on day 2
    assert any(w.market in ("ETH-USD", "*") and w.depth_factor < 0.5 for w in scenario.liquidity_withdrawals)
    # order budget: makers' ladders plus noise flow comfortably above 1,000,000 orders
    agents = scenario.agents
    steps = scenario.steps
    maker_orders = (agents.market_makers.count_per_market * 3 * 2 * agents.market_makers.levels
                    * steps * scenario.step_seconds / agents.market_makers.requote_seconds)
    noise_orders = agents.noise.count * agents.noise.act_probability * steps
    assert maker_orders + noise_orders > 1_000_000


def test_funding_squeeze_is_five_days_of_one_sided_demand():
    scenario = load_scenario("funding-squeeze")
    assert scenario.days >= 5
    assert any(d.buy_probability > 0.5 and d.duration_hours >= 4 * 24 for d in scenario.demand)


def test_cascade_is_cross_margined_and_correlated():
    scenario = load_scenario("cascade")
    assert scenario.agents.directional.isolated_fraction == 0
    assert scenario.index.correlation >= 0.8
    assert len({s.market for s in scenario.shocks}) == len(scenario.markets)


def _raw(**changes):
    raw = {key: value for key, value in TINY.items()}
    raw.update(changes)
    return raw


BAD_CASES = [
    ("agents.noise.count", lambda raw: apply_overrides(raw, ["agents.noise.count=-1"])),
    ("agents.noise.cuont", lambda raw: apply_overrides(raw, ["agents.noise.cuont=5"])),
    ("markets.BTC-USD.start_price_usd", lambda raw: apply_overrides(raw, ["markets.BTC-USD.start_price_usd=0"])),
    ("markets.BTC-USD.vol_annual", lambda raw: apply_overrides(raw, ['markets.BTC-USD.vol_annual="high"'])),
    ("shocks[0].market", lambda raw: apply_overrides(raw, ['shocks.0.market="DOGE-USD"'])),
    ("index.correlation", lambda raw: apply_overrides(raw, ["index.correlation=[[1, 0.5], [0.4, 1]]"])),
    ("index.correlation", lambda raw: apply_overrides(raw, ["index.correlation=1.5"])),
    ("start", lambda raw: apply_overrides(raw, ['start="yesterday"'])),
    ("days", lambda raw: apply_overrides(raw, ["days=0"])),
    ("agents.directional.leverage", lambda raw: apply_overrides(raw, ["agents.directional.leverage=[10, 2]"])),
    ("index", lambda raw: apply_overrides(raw, ['index.model="csv"'])),
]


@pytest.mark.parametrize("field,make", BAD_CASES, ids=[f"{case[0]} is named" for case in BAD_CASES])
def test_a_bad_field_is_named_in_one_line(field, make):
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(make(_raw()), "tiny.toml")
    error = caught.value
    assert error.field == field
    message = str(error)
    assert "\n" not in message and field in message and "tiny.toml" in message
    assert isinstance(error, PerpdexError) and error.code == "sim.bad_scenario"


def test_a_file_that_is_not_toml_is_named(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = [unclosed\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.field == "file" and "broken.toml" in str(caught.value)


def test_an_unknown_scenario_name_lists_the_shipped_ones():
    with pytest.raises(ScenarioError) as caught:
        load_scenario("nope")
    assert caught.value.field == "scenario" and "default" in str(caught.value)


def test_a_market_missing_from_the_market_file_is_named():
    scenario = tiny(markets={"FOO-USD": {"start_price_usd": 1.0}}, shocks=[], liquidity_withdrawals=[])
    with pytest.raises(ScenarioError) as caught:
        build_markets(scenario)
    assert caught.value.field == "markets.FOO-USD"


def test_an_isolated_type_market_is_refused_by_name():
    scenario = tiny(markets={"EIGEN-USD": {"start_price_usd": 3.0}}, shocks=[], liquidity_withdrawals=[])
    with pytest.raises(ScenarioError) as caught:
        build_markets(scenario)
    assert caught.value.field == "markets.EIGEN-USD" and "isolated" in str(caught.value)


def test_overrides_reach_scenario_and_exchange_parameters():
    scenario = tiny("markets.ETH-USD.imf_ppm=100000", "agents.noise.count=3", "shocks.0.move=-0.5",
                    "liquidations.max_liquidation_fee_ppm=5000", "description=plain words")
    markets = {m.market_id: m for m in build_markets(scenario)}
    assert markets["ETH-USD"].liquidity_tier.initial_margin_ppm == 100_000
    assert markets["BTC-USD"].liquidity_tier.initial_margin_ppm == 20_000  # the shared tier is untouched
    assert scenario.agents.noise.count == 3
    assert scenario.shocks[0].move == -0.5
    assert scenario.description == "plain words"  # a bare word is kept as a string
    assert build_liquidations_config(scenario).max_liquidation_fee_ppm == 5_000


@pytest.mark.parametrize("text,field", [("noequals", "--set"), ("a..b=1", "--set"), ("shocks.7.move=1", "shocks.7"),
                                        ("days.x=1", "days.x")],
                         ids=["no equals sign", "empty key part", "list index out of range", "through a value"])
def test_bad_overrides_are_named(text, field):
    with pytest.raises(ScenarioError) as caught:
        apply_overrides(dict(TINY, shocks=[dict(TINY["shocks"][0])]), [text])
    assert caught.value.field == field


def test_override_values_are_read_as_toml():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=0.5") == (["a"], 0.5)
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override('a="x y"') == (["a"], "x y")
    assert parse_override("a=word") == (["a"], "word")


def test_bad_liquidation_parameter_is_named():
    with pytest.raises(ScenarioError) as caught:
        build_liquidations_config(tiny("liquidations.max_liquidation_fee_ppm=0"))
    assert caught.value.field == "liquidations.max_liquidation_fee_ppm"


def test_effective_scenario_round_trips_through_toml(tmp_path):
    scenario = tiny("agents.noise.count=7")
    path = tmp_path / "effective.toml"
    path.write_text(scenario_to_toml(scenario))
    assert load_scenario(path) == scenario


def test_proof_lag_is_the_default_market_through_the_rollup_with_finalized_funding():
    proof_lag, default = load_scenario("proof-lag"), load_scenario("default")
    rollup = proof_lag.rollup
    assert rollup.enabled and rollup.funding == "finalized"
    assert rollup.batch_max_age_hours == 4 and rollup.proving_fixed_minutes == 20  # StarkEx's figures
    assert proof_lag.withdrawals.per_agent_per_day > 0
    assert not default.rollup.enabled and default.withdrawals.per_agent_per_day == 0  # default unchanged
    same = {"name", "description", "rollup", "withdrawals"}
    assert proof_lag.model_dump(exclude=same) == default.model_dump(exclude=same)
