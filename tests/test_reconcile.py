from rustro.broker.base import BrokerPosition
from rustro.recovery import compare_positions, render_recon


def pos(token, qty, symbol="S"):
    return {"token": token, "symbol": symbol, "open_qty": qty}


def bpos(token, qty, symbol="S"):
    return BrokerPosition("NFO", symbol, token, "INTRADAY", qty)


def test_matching_positions_are_ok():
    rows = compare_positions([pos("1", 65)], [bpos("1", 65), bpos("2", 0)])
    assert [(r.token, r.verdict) for r in rows] == [("1", "ok")]


def test_unknown_broker_position():
    rows = compare_positions([], [bpos("9", 130, "NIFTY...CE")])
    assert rows[0].verdict == "unknown_broker_position" and rows[0].broker_qty == 130


def test_quantity_mismatch_and_missing():
    rows = compare_positions([pos("1", 130), pos("2", 65)], [bpos("1", 65)])
    assert {r.token: r.verdict for r in rows} == {"1": "quantity_mismatch", "2": "missing_at_broker"}
    assert "quantity_mismatch" in render_recon(rows)


def test_flat_everywhere_is_empty():
    assert compare_positions([], [bpos("1", 0)]) == []
