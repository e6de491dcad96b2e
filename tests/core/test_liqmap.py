"""The liquidation map is exact: each row equals what the exchange itself does after that move."""

from __future__ import annotations

import copy

from perpdex.core.events import Liquidated
from perpdex.core.tx import OraclePrice, OracleUpdate
from perpdex.lab.liqmap import liquidation_map
from perpdex.sim.scripted import ScriptedSession


def test_each_row_matches_a_real_move_and_leaves_the_state_untouched():
    session = ScriptedSession()
    session.run()
    ex = session.exchange
    before = ex.digest()
    rows = liquidation_map(ex, "ETH-USD", range(-20, 1, 10))
    assert ex.digest() == before
    price = ex.market("ETH-USD").oracle_price_subticks
    for row in rows:
        clone = copy.deepcopy(ex)
        events = clone.apply(OracleUpdate(clone.last_ts_ms, (OraclePrice("ETH-USD", (price * (100 + row.move_pct) // 100,)),)))
        notional = sum(abs(e.size_base_quantums) * e.fill_price_subticks for e in events
                       if isinstance(e, Liquidated)) / 10**9 / 10**6
        assert notional == row.first_round_notional_usd
