import json
import sqlite3
from datetime import date
from decimal import Decimal

import pytest

from rustro.market.instruments import (
    INSTRUMENT_COLUMNS, INSTRUMENTS_DDL, Instrument, InstrumentMaster, MasterError, atm_strike,
    check_master, parse_expiry, parse_master, parse_master_json,
)

E1, E2, E3 = date(2026, 1, 6), date(2026, 1, 13), date(2026, 1, 27)   # NIFTY Tuesdays
MON = {1: "JAN", 2: "FEB"}


def dmy(d: date) -> str:
    return f"{d.day:02d}{MON[d.month]}{d.year}"


def idx(token, symbol, name):
    return {"token": token, "symbol": symbol, "name": name, "expiry": "", "strike": "0.000000",
            "lotsize": "1", "instrumenttype": "AMXIDX", "exch_seg": "NSE", "tick_size": "0.000000"}


def fut(token, name, expiry, lot="65"):
    return {"token": token, "symbol": f"{name}{expiry.strftime('%d')}{MON[expiry.month]}26FUT",
            "name": name, "expiry": dmy(expiry), "strike": "-1.000000", "lotsize": lot,
            "instrumenttype": "FUTIDX", "exch_seg": "NFO", "tick_size": "10.000000"}


def opt(token, name, expiry, strike, cp, lot="65", seg="NFO", itype="OPTIDX"):
    return {"token": token, "symbol": f"{name}{expiry.strftime('%d')}{MON[expiry.month]}26{strike}{cp}",
            "name": name, "expiry": dmy(expiry), "strike": f"{strike * 100}.000000", "lotsize": lot,
            "instrumenttype": itype, "exch_seg": seg, "tick_size": "5.000000"}


def base_rows():
    rows = [
        idx("99926000", "Nifty 50", "NIFTY"),
        idx("99926017", "India VIX", "INDIA VIX"),
        idx("99926009", "Nifty Bank", "BANKNIFTY"),
        {"token": "3045", "symbol": "SBIN-EQ", "name": "SBIN", "expiry": "", "strike": "-1.000000",
         "lotsize": "1", "instrumenttype": "", "exch_seg": "NSE", "tick_size": "5.000000"},
        fut("50001", "NIFTY", E3), fut("50002", "NIFTY", date(2026, 2, 24)),
        fut("50003", "BANKNIFTY", E3, lot="30"),
        opt("60001", "SBIN", E3, 800, "CE", itype="OPTSTK"),
        opt("60002", "SENSEX", E1, 80000, "CE", seg="BFO"),
        opt("60003", "NIFTYNXT50", E3, 70000, "CE"),
        opt("60004", "MIDCPNIFTY", E3, 13000, "PE"),
        opt("70001", "BANKNIFTY", E3, 51200, "CE", lot="30"),
    ]
    tok = 10000
    for e in (E3, E1, E2):   # deliberately out of order
        for strike in (24100, 23900, 24000, 24050, 23950, 24150, 23850):
            for cp in ("PE", "CE"):
                tok += 1
                rows.append(opt(str(tok), "NIFTY", e, strike, cp))
    return rows


@pytest.fixture(scope="module")
def master():
    return parse_master(base_rows())


def test_index_rows_and_vix(master):
    spot = master.spot("Nifty 50")
    assert (spot.token, spot.exchange, spot.instrument_type, spot.expiry) == ("99926000", "NSE", "AMXIDX", None)
    assert master.spot("NIFTY 50").token == "99926000"
    assert master.vix().token == "99926017" and master.vix().name == "INDIA VIX"
    assert master.spot("Nifty Bank").token == "99926009"
    with pytest.raises(LookupError, match="Nifty Fin Service"):
        master.spot("Nifty Fin Service")


def test_keeps_only_wanted_rows(master):
    names = {(i.name, i.instrument_type) for i in master.instruments}
    assert ("SBIN", "") not in names and ("SBIN", "OPTSTK") not in names
    assert not {"SENSEX", "NIFTYNXT50", "MIDCPNIFTY"} & {i.name for i in master.instruments}
    assert len(master) == 3 + 3 + 1 + 42
    assert master.rows_total == len(base_rows()) and master.skipped == {}
    only_nifty = parse_master(base_rows(), underlyings="nifty")
    assert only_nifty.expiries("BANKNIFTY") == [] and only_nifty.expiries("NIFTY") == [E1, E2, E3]
    with pytest.raises(LookupError, match="BANKNIFTY"):
        only_nifty.near_future("BANKNIFTY", E1)


def test_strike_tick_and_expiry_are_converted(master):
    ce = master.atm("NIFTY", E2, 24000, "CE", 50)
    assert ce.strike == 24000.0 and ce.tick_size == 0.05 and ce.lot_size == 65
    assert ce.expiry == E2 and ce.option_type == "CE" and ce.symbol == "NIFTY13JAN2624000CE"
    f = master.near_future("NIFTY", E1)
    assert f.strike is None and f.option_type is None and f.tick_size == 0.1 and f.expiry == E3
    assert master.spot("Nifty 50").tick_size == 0.0 and master.spot("Nifty 50").strike is None
    assert master.lot_size("70001") == 30 and master.tick_size("70001") == 0.05
    assert master.by_token("70001").strike == 51200.0


def test_parse_expiry():
    assert parse_expiry("28OCT2025") == date(2025, 10, 28)
    assert parse_expiry("06jan2026") == date(2026, 1, 6)
    for bad in ("31FEB2026", "28OCT25", "28XYZ2025", "", "2025-10-28"):
        with pytest.raises(ValueError, match="DDMMMYYYY"):
            parse_expiry(bad)


def test_near_future_rolls_after_expiry(master):
    assert master.near_future("NIFTY", E3).token == "50001"          # expiry day still counts
    assert master.near_future("nifty", date(2026, 1, 28)).token == "50002"
    with pytest.raises(LookupError, match="NIFTY"):
        master.near_future("NIFTY", date(2026, 3, 1))


def test_expiries_chain_and_tokens(master):
    assert master.expiries("NIFTY") == [E1, E2, E3]
    chain = master.chain("NIFTY", E1)
    assert [o.strike for o in chain] == sorted(o.strike for o in chain) and len(chain) == 14
    assert [o.option_type for o in chain[:2]] == ["CE", "PE"]
    assert master.chain("NIFTY", date(2026, 1, 7)) == []
    with pytest.raises(LookupError, match="99999"):
        master.by_token("99999")


def test_nearest_expiry_respects_min_dte(master):
    assert master.nearest_expiry("NIFTY", E1, min_dte=1) == E2      # no entries in today's expiry
    assert master.nearest_expiry("NIFTY", E1, min_dte=0) == E1
    assert master.nearest_expiry("NIFTY", date(2026, 1, 5), min_dte=1) == E1
    assert master.nearest_expiry("NIFTY", date(2026, 1, 5), min_dte=2) == E2
    with pytest.raises(LookupError, match="DTE >= 1"):
        master.nearest_expiry("NIFTY", E3, min_dte=1)


@pytest.mark.parametrize("spot,step,cp,off,want", [
    (24024.99, 50, "CE", 0, 24000), (24025, 50, "CE", 0, 24050), (24025.0, 50, "PE", 0, 24050),
    (24074.999999, 50, "CE", 0, 24050), (24075, 50, "PE", 0, 24100), (51150, 100, "CE", 0, 51200),
    (51149.99, 100, "PE", 0, 51100), (24025, 50, "CE", 2, 24150), (24025, 50, "PE", 2, 23950),
    (24010, 50, "PE", 1, 23950), (24010, 50, "CE", 1, 24050),
])
def test_atm_strike_half_up_and_otm_offsets(spot, step, cp, off, want):
    assert atm_strike(spot, step, cp, off) == Decimal(want)


@pytest.mark.parametrize("args,match", [
    ((0, 50, "CE"), "spot"), ((float("nan"), 50, "CE"), "spot"), ((24000, 0, "CE"), "strike_step"),
    ((24000, 50, "XX"), "option_type"), ((24000, 50, "CE", -1), "offset_steps"),
])
def test_atm_strike_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        atm_strike(*args)


def test_atm_contract_lookup(master):
    assert master.atm("NIFTY", E1, 24024.99, "CE", 50).symbol == "NIFTY06JAN2624000CE"
    assert master.atm("NIFTY", E1, 24025, "PE", 50).symbol == "NIFTY06JAN2624050PE"
    assert master.atm("NIFTY", E1, 24025, "CE", 50, offset_steps=2).strike == 24150.0
    assert master.atm("NIFTY", E1, 24025, "PE", 50, offset_steps=2).strike == 23950.0
    with pytest.raises(LookupError, match=r"NIFTY 2026-01-06 24200 CE .*23850\.\.24150"):
        master.atm("NIFTY", E1, 24025, "CE", 50, offset_steps=3)
    with pytest.raises(LookupError, match="FINNIFTY 2026-01-06 24050 PE .*no strikes"):
        master.atm("FINNIFTY", E1, 24025, "PE", 50)


def test_bad_rows_skipped_and_counted():
    rows = base_rows()
    n = len(rows)
    bad = [
        {**opt("80001", "NIFTY", E1, 24200, "CE"), "strike": ""},            # n: missing strike
        {k: v for k, v in opt("80002", "NIFTY", E1, 24250, "CE").items() if k != "strike"},
        {**opt("80003", "NIFTY", E1, 24300, "CE"), "expiry": "31FEB2026"},   # n+2
        {**opt("80004", "NIFTY", E1, 24350, "CE"), "lotsize": "sixty-five"},
        {**opt("80005", "NIFTY", E1, 24400, "CE"), "strike": "abc"},
        {**opt("80006", "NIFTY", E1, 24450, "CE"), "token": ""},
        {**fut("80007", "NIFTY", E2), "expiry": "31FEB2026"},
        {**opt("80008", "NIFTY", E1, 24500, "CE"), "strike": "nan"},
        {**opt("10001", "NIFTY", E1, 24550, "CE")},                          # token reused
        "not a row",
        {**opt("80009", "NIFTY", E1, 24600, "CE"), "symbol": "NIFTY06JAN2624600XX"},
        {**opt("80010", "NIFTY", E1, 24650, "CE"), "lotsize": "0"},
    ]
    m = parse_master(rows + bad)
    assert m.skipped == {"missing_strike": 2, "bad_expiry": 2, "bad_lot": 2, "bad_strike": 2,
                         "missing_token": 1, "duplicate_token": 1, "not_an_object": 1,
                         "bad_option_type": 1}
    assert m.skip_examples["missing_strike"] == [n, n + 1]
    assert m.skip_examples["bad_expiry"] == [n + 2, n + 6]
    assert m.skip_examples["bad_lot"] == [n + 3, n + 11]
    assert len(m) == len(parse_master(rows))          # every good row kept
    assert m.by_token("10001").strike == 24100.0      # the first row with a token wins


def test_require_options():
    m = parse_master(base_rows())
    m.require_options("NIFTY")
    m.require_options("BANKNIFTY")
    with pytest.raises(MasterError, match="no FINNIFTY options"):
        m.require_options("FINNIFTY")
    no_opts = parse_master([r for r in base_rows() if r["instrumenttype"] != "OPTIDX"])
    with pytest.raises(MasterError, match="no NIFTY options"):
        no_opts.require_options("NIFTY")


def test_parse_master_json_bytes_and_str():
    raw = json.dumps(base_rows())
    a, b = parse_master_json(raw), parse_master_json(raw.encode())
    assert a.to_records() == b.to_records() == parse_master(base_rows()).to_records()
    with pytest.raises(MasterError, match="not valid JSON"):
        parse_master_json(b'[{"token": ')
    with pytest.raises(MasterError, match="array"):
        parse_master_json('{"data": []}')
    with pytest.raises(MasterError, match="list of rows"):
        parse_master({"token": "1"})


def test_records_round_trip_through_sqlite(master):
    records = master.to_records()
    assert len(records[0]) == len(INSTRUMENT_COLUMNS)
    again = InstrumentMaster.from_records(records)
    assert again.instruments == master.instruments and again.to_records() == records
    db = sqlite3.connect(":memory:")
    db.execute(INSTRUMENTS_DDL)
    db.execute(INSTRUMENTS_DDL)                       # idempotent
    cols = ", ".join(("trading_day",) + INSTRUMENT_COLUMNS)
    marks = ", ".join("?" * (len(INSTRUMENT_COLUMNS) + 1))
    db.executemany(f"INSERT INTO instruments ({cols}) VALUES ({marks})",
                   [("2026-01-06",) + r for r in records])
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(f"INSERT INTO instruments ({cols}) VALUES ({marks})", ("2026-01-06",) + records[0])
    rows = db.execute(f"SELECT {', '.join(INSTRUMENT_COLUMNS)} FROM instruments "
                      "WHERE trading_day = ? ORDER BY rowid", ("2026-01-06",)).fetchall()
    loaded = InstrumentMaster.from_records(rows)
    assert loaded.instruments == master.instruments
    assert loaded.atm("NIFTY", E1, 24025, "CE", 50) == master.atm("NIFTY", E1, 24025, "CE", 50)
    assert loaded.nearest_expiry("NIFTY", E1) == E2 and loaded.vix().token == "99926017"


@pytest.mark.parametrize("i,value,match", [
    (5, "06-01-2026", "bad expiry"), (8, 65.5, "bad lot_size"), (7, "XX", "bad option_type"),
    (0, "", "bad token"), (9, "x", "bad tick_size"),
])
def test_from_records_rejects_bad_columns(master, i, value, match):
    rec = list(next(r for r in master.to_records() if r[7] == "CE"))
    rec[i] = value
    with pytest.raises(MasterError, match=f"record 0 .*{match}"):
        InstrumentMaster.from_records([rec])
    with pytest.raises(MasterError, match="expected 10 columns"):
        InstrumentMaster.from_records([rec[:9]])


def test_duplicate_tokens_rejected_when_building_from_instruments():
    i = Instrument("1", "A", "NIFTY", "NFO", "FUTIDX", E1, None, None, 65, 0.1)
    with pytest.raises(MasterError, match="duplicate token 1"):
        InstrumentMaster([i, i])


def test_require_all_names_every_missing_underlying():
    m = parse_master(base_rows(), ("NIFTY", "BANKNIFTY", "FINNIFTY"))
    m.require_all(["NIFTY", "BANKNIFTY"])
    with pytest.raises(MasterError, match=r"no FINNIFTY options .*rows read \d+, kept \d+"):
        m.require_all(["NIFTY", "FINNIFTY"])
    none = parse_master([r for r in base_rows() if r["instrumenttype"] != "OPTIDX"])
    with pytest.raises(MasterError, match="no NIFTY, BANKNIFTY options"):
        none.require_all(("NIFTY", "BANKNIFTY"))


def test_check_master_refuses_a_master_without_options_for_any_underlying():
    assert len(check_master(base_rows(), ["NIFTY"])) == len(parse_master(base_rows(), ["NIFTY"]))
    with pytest.raises(MasterError, match="no FINNIFTY options"):
        check_master(base_rows(), ["NIFTY", "FINNIFTY"])


@pytest.mark.parametrize("field, value, reason", [
    ("lotsize", float("inf"), "bad_lot"),      # int(inf): OverflowError
    ("lotsize", float("nan"), "bad_lot"),
    ("lotsize", 65.5, "bad_lot"),              # was truncated to 65
    ("lotsize", True, "bad_lot"),              # was lot 1
    pytest.param("tick_size", 10 ** 400, "bad_tick", id="tick_size-10**400"),  # OverflowError
    pytest.param("strike", 10 ** 400, "bad_strike", id="strike-10**400"),
    ("strike", [2400000], "bad_strike"),
    pytest.param("strike", 5e-324, "bad_strike", id="strike-denormal"),  # 0.0 rupees once / 100
])
def test_junk_numbers_in_a_row_are_skipped_not_raised(field, value, reason):
    m = parse_master(base_rows() + [{**opt("90001", "NIFTY", E1, 24000, "CE"), field: value}])
    assert m.skipped == {reason: 1}


def test_a_non_text_name_is_skipped_not_raised():
    rows = base_rows() + [{**opt("90001", "NIFTY", E1, 24000, "CE"), "name": ["NIFTY"]},
                          {**opt("90002", "NIFTY", E1, 24000, "CE"), "name": {"x": 1}},
                          {**idx("90003", "Odd Index", "X"), "name": {"x": 1}}]
    m = parse_master(rows)
    assert "90001" not in {i.token for i in m.instruments}
    assert m.by_token("90003").name == ""
    assert len(m) == len(parse_master(base_rows())) + 1


@pytest.mark.parametrize("i,value,match", [
    (6, float("nan"), "bad strike"), (6, float("inf"), "bad strike"), (6, 0.0, "bad strike"),
    (6, -24000.0, "bad strike"), (8, float("inf"), "bad lot_size"), (8, 0, "bad lot_size"),
    (9, float("inf"), "bad tick_size"), (9, -0.05, "bad tick_size"),
])
def test_from_records_rejects_non_finite_or_non_positive_numbers(master, i, value, match):
    """The journal's cached copy is checked like a fresh master: no NaN strike, no inf lot."""
    rec = list(next(r for r in master.to_records() if r[7] == "CE"))
    rec[i] = value
    with pytest.raises(MasterError, match=f"record 0 .*{match}"):
        InstrumentMaster.from_records([rec])


def test_a_repeated_master_parses_as_the_first_and_the_memo_never_mixes_types():
    """The row memo (a backtest parses a master a day) gives the same answer as a first parse,
    per set of underlyings, and a row equal but for a non-string value is parsed afresh."""
    first = parse_master(base_rows(), ["NIFTY"])
    again = parse_master(base_rows(), ["NIFTY"])
    assert again.instruments == first.instruments and again.skipped == first.skipped
    with_bank = parse_master(base_rows(), ["NIFTY", "BANKNIFTY"])
    assert len(with_bank) > len(first)   # the memo is per set of underlyings
    rows = base_rows()
    rows[-1]["lotsize"] = 1               # a JSON number is a whole lot, as "1" is
    assert parse_master(rows, ["NIFTY"]).by_token(rows[-1]["token"]).lot_size == 1
    rows[-1]["lotsize"] = True            # True == 1 in Python, but a boolean lot is refused
    assert parse_master(rows, ["NIFTY"]).skipped == {"bad_lot": 1}
    rows = base_rows()
    parse_master(rows, ["NIFTY"])
    rows[-1]["lotsize"] = "50"            # the same token, another row: parsed afresh
    assert parse_master(rows, ["NIFTY"]).by_token(rows[-1]["token"]).lot_size == 50
    rows[-1]["tick_size"] = "abc"         # and its new reason is not the stored instrument
    assert parse_master(rows, ["NIFTY"]).skipped == {"bad_tick": 1}


@pytest.mark.parametrize("inst", [
    Instrument("99926000", "Nifty 50", "NIFTY", "NSE", "AMXIDX", None, None, None, 1, 0.0),
    Instrument("43210", "NIFTY13JAN2624050CE", "NIFTY", "NFO", "OPTIDX", date(2026, 1, 13),
               24050.0, "CE", 65, 0.05),
    Instrument("7", 'a "quoted"\\ sym\u00e9\U0001f600', "N\u00efFTY\n", "NFO", "FUTIDX",
               date(2026, 1, 27), None, None, 75, 0.1),
    Instrument("8", "X", "NIFTY", "NFO", "OPTIDX", date(2026, 1, 27), 1e-7, "PE", 10**20, 1e300),
    Instrument("9", "X", "NIFTY", "NFO", "OPTIDX", date(2026, 1, 27), 5.0, "PE", True, 0.05),
])
def test_a_cached_record_is_exactly_what_json_dumps_writes(inst):
    from rustro.market.instruments import _record_text
    want = json.dumps([inst.token, inst.symbol, inst.name, inst.exchange, inst.instrument_type,
                       inst.expiry.isoformat() if inst.expiry else None, inst.strike,
                       inst.option_type, inst.lot_size, inst.tick_size],
                      separators=(",", ":"), allow_nan=False)
    assert _record_text(inst) == want


def test_a_non_finite_record_is_refused_as_json_dumps_refuses_it():
    from rustro.market.instruments import _record_text
    with pytest.raises(ValueError):
        _record_text(Instrument("1", "X", "NIFTY", "NFO", "OPTIDX", date(2026, 1, 27),
                                float("nan"), "CE", 75, 0.05))
