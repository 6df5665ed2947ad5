"""Property-based fuzzing of every parser of outside data: Angel's route answers and the
instrument master. Whatever JSON-like junk arrives, parsing ends in a parsed value that holds the
parser's promises, or in a named error (BrokerError naming the route / MasterError), never another
exception (KeyError, TypeError, AttributeError, OverflowError, RecursionError...).
"""
from __future__ import annotations

import json
import math
import os
from datetime import date, datetime
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rustro.broker import angelone_parse as ap  # noqa: E402
from rustro.broker.angelone_session import SmartApiSession  # noqa: E402
from rustro.broker.base import BrokerError  # noqa: E402
from rustro.clock import IST, VirtualClock  # noqa: E402
from rustro.credentials import Secrets  # noqa: E402
from rustro.market.base import DataError, check_candle  # noqa: E402
from rustro.market.instruments import (INSTRUMENT_COLUMNS, InstrumentMaster,  # noqa: E402
                                       MasterError, parse_master, parse_master_json)

# Random examples locally; fixed ones under CI (a fuzz find must not fail an unrelated landing).
# RUSTRO_FUZZ_EXAMPLES=5000 for a deeper hunt.
FUZZ = settings(max_examples=int(os.environ.get("RUSTRO_FUZZ_EXAMPLES", 100)), deadline=None,
                database=None, derandomize=bool(os.environ.get("CI")),
                suppress_health_check=[HealthCheck.too_slow])
DATA = Path(__file__).parent / "data" / "angel"
ORDER_ROW = json.loads((DATA / "order_row.json").read_text())
TRADE_ROW = json.loads((DATA / "trade_row.json").read_text())
POSITION_ROW = json.loads((DATA / "position_row.json").read_text())
RMS_DATA = json.loads((DATA / "rms.json").read_text())
QUOTE_ROW = json.loads((DATA / "quote_full.json").read_text())
NOW = datetime(2026, 1, 6, 10, 47, tzinfo=IST)
DAY = date(2026, 1, 6)

# ---------------------------------------------------------------- JSON-like junk
CHARS = st.characters(exclude_categories=("Cs",))  # no codec: skips a slow one-off charmap build


def text(max_size: int):
    return st.text(CHARS, max_size=max_size)


TRICKY = st.sampled_from([
    "", " ", "NaN", "nan", "-nan", "inf", "-Infinity", "1e999", "-1e999", "1e-999", "-0", "0",
    "-1", "12.5", "65", "65.0", "0x41", "1_000", "abc", "null", "None", "true", "false", "[]",
    "{}", "\x00", "٣", "06-Jan-2026 10:46:10", "31-Feb-2026 10:00:00", "13:27:53", "25:61:61",
    "2026-01-05T10:15:00+05:30", "2026-01-05T10:15:00", "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00", "28OCT2025", "31FEB2026", "99JAN0000",
])
HUGE = st.sampled_from([10 ** 400, -10 ** 400, 2 ** 63, -2 ** 63, 2 ** 1024, 1e308, -1e308,
                        5e-324, float("nan"), float("inf"), float("-inf")])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text(12),
                    TRICKY, HUGE)
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(text(8), TRICKY), inner, max_size=4)),
    max_leaves=8)


@st.composite
def like(draw, sample: dict, keep: float = 0.6):
    """`sample` with a few keys replaced by junk or dropped (many, now and then), plus extra
    junk keys. `keep`: the chance a drawn key keeps a valid-looking value."""
    row = dict(sample)
    keys = sorted(sample)
    most = len(keys) if draw(st.integers(0, 9)) == 0 else 4
    for key in draw(st.lists(st.sampled_from(keys), max_size=most, unique=True)):
        choice = draw(st.integers(0, 9))
        if choice < keep * 10:
            row[key] = draw(st.one_of(TRICKY, HUGE))
        elif choice < 9:
            row[key] = draw(JUNK)
        else:
            del row[key]
    row.update(draw(st.dictionaries(text(6), JUNK, max_size=2)))
    return row


def rows_of(sample: dict):
    """A list payload: rows like `sample`, with the odd non-object row; or junk for the list."""
    row = st.one_of(like(sample), like(sample), like(sample), JUNK)
    return st.one_of(st.lists(row, max_size=4), st.none(), JUNK)


def named(err: Exception, *words: str) -> None:
    """The error says where: its text names the route (or the given words)."""
    text = str(err)
    assert text and any(w in text for w in words), f"{type(err).__name__} not named: {text!r}"


def finite(*xs: float) -> None:
    for x in xs:
        assert isinstance(x, float) and math.isfinite(x), x


def whole(*xs: int) -> None:
    for x in xs:
        assert isinstance(x, int) and not isinstance(x, bool), x


# ---------------------------------------------------------------- envelopes (every route, login)
def envelopes():
    data = st.one_of(JUNK, st.just(ORDER_ROW), st.just([TRADE_ROW]))
    normal = st.fixed_dictionaries({}, optional={
        "status": st.one_of(st.booleans(), TRICKY, JUNK), "message": JUNK,
        "errorcode": st.one_of(st.sampled_from(["", "AG8001", "AB1004", "AB1007"]), JUNK),
        "data": data})
    gateway = st.fixed_dictionaries({}, optional={
        "success": st.one_of(st.booleans(), TRICKY, JUNK), "message": JUNK,
        "errorCode": st.one_of(st.sampled_from(["AG8001", "AB1010"]), JUNK), "data": data})
    as_json = st.one_of(normal, gateway, JUNK).map(lambda v: json.dumps(v, allow_nan=True))
    return st.one_of(as_json, text(40), TRICKY,
                     st.integers(1, 300).map(lambda n: "[" * n + "]" * n),
                     st.just("[" * 100_000))


@FUZZ
@given(body=envelopes(), status=st.sampled_from([200, 400, 403, 429, 500, 502]),
       order_route=st.booleans())
def test_fuzz_response_envelope(body, status, order_route):
    try:
        ap.parse_response("loginByPassword", status, body, order_route)
    except BrokerError as err:
        named(err, "loginByPassword")


@FUZZ
@given(data=st.one_of(like({"jwtToken": "eyJ.a.b", "refreshToken": "eyJ.c.d",
                            "feedToken": "eyJ.e.f"}), JUNK))
def test_fuzz_login_tokens(data):
    session = SmartApiSession("https://api.test", Secrets(api_key="k", client_code="c",
                                                          mpin="1", totp_secret="JBSWY3DP"),
                              VirtualClock(NOW), mac_address="02:00:00:00:00:01")
    route = type("Route", (), {"name": "generateTokens"})()
    try:
        session._take_tokens(data, route)
    except BrokerError as err:
        named(err, "generateTokens")
    else:
        assert session.jwt and session.refresh_token and isinstance(session.feed_token, str)


# ---------------------------------------------------------------- order book / details / trades
def _check_order(o) -> None:
    whole(o.qty, o.filled_qty)
    finite(o.price, o.avg_price)
    assert o.order_id and o.unique_order_id and o.symbol and o.token and o.status
    assert o.updated is None or o.updated.tzinfo is not None


@FUZZ
@given(data=rows_of(ORDER_ROW))
def test_fuzz_order_book(data):
    try:
        for o in (ap.parse_order(r, "getOrderBook") for r in ap.rows(data, "getOrderBook")):
            _check_order(o)
    except BrokerError as err:
        named(err, "getOrderBook")


@FUZZ
@given(row=st.one_of(like(ORDER_ROW, keep=0.8), JUNK))
def test_fuzz_order_details(row):
    try:
        _check_order(ap.parse_order(row, "orderDetails"))
    except BrokerError as err:
        named(err, "orderDetails")


@FUZZ
@given(data=rows_of(TRADE_ROW))
def test_fuzz_trade_book(data):
    try:
        for f in (ap.parse_fill(r, "getTradeBook", DAY) for r in ap.rows(data, "getTradeBook")):
            whole(f.qty)
            finite(f.price)
            assert f.fill_id and f.order_id and f.time.date() == DAY and f.time.tzinfo is not None
    except BrokerError as err:
        named(err, "getTradeBook")


@FUZZ
@given(row=st.one_of(like(TRADE_ROW, keep=0.8), JUNK))
def test_fuzz_trade_row_alone(row):
    try:
        ap.parse_fill(row, "getTradeBook", DAY)
    except BrokerError as err:
        named(err, "getTradeBook")


@FUZZ
@given(data=rows_of(POSITION_ROW))
def test_fuzz_positions(data):
    try:
        for p in (ap.parse_position(r, "getPosition") for r in ap.rows(data, "getPosition")):
            whole(p.net_qty, p.buy_qty, p.sell_qty)
            finite(p.buy_avg, p.sell_avg, p.realised, p.unrealised, p.ltp)
    except BrokerError as err:
        named(err, "getPosition")


@FUZZ
@given(data=st.one_of(like(RMS_DATA, keep=0.7), JUNK))
def test_fuzz_funds(data):
    try:
        f = ap.parse_funds(data, "getRMS")
    except BrokerError as err:
        named(err, "getRMS")
    else:
        finite(f.available_cash, f.net, f.utilised)


# ---------------------------------------------------------------- market data
@FUZZ
@given(data=st.one_of(like({"exchange": "NSE", "tradingsymbol": "Nifty 50",
                            "symboltoken": "99926000", "ltp": 24012.35}, keep=0.5), JUNK))
def test_fuzz_ltp(data):
    try:
        v = ap.parse_ltp(data, "getLtpData", "99926000")
    except BrokerError as err:
        named(err, "getLtpData")
    else:
        finite(v)
        assert v >= 0


@st.composite
def quote_rows(draw):
    row = draw(like(QUOTE_ROW, keep=0.7))
    if draw(st.booleans()) and isinstance(row.get("depth"), dict):
        depth = dict(row["depth"])
        side = draw(st.sampled_from(["buy", "sell"]))
        level = draw(st.one_of(like({"price": 112.4, "quantity": 650, "orders": 3}), JUNK))
        depth[side] = draw(st.one_of(st.just([level]), st.lists(JUNK, max_size=3), JUNK))
        row["depth"] = depth
    return row


@FUZZ
@given(data=st.one_of(st.fixed_dictionaries(
    {"fetched": st.one_of(st.lists(st.one_of(quote_rows(), JUNK), max_size=3), JUNK)},
    optional={"unfetched": JUNK}), JUNK))
def test_fuzz_quotes(data):
    try:
        quotes = ap.parse_quotes(data, "quote", NOW)
    except BrokerError as err:
        named(err, "quote")
    else:
        for q in quotes:
            finite(q.ltp, q.bid, q.ask)
            assert min(q.ltp, q.bid, q.ask) >= 0 and q.token and q.ts.tzinfo is not None


@FUZZ
@given(row=st.one_of(quote_rows(), JUNK))
def test_fuzz_quote_row_alone(row):
    try:
        ap.parse_quote(row, "quote", NOW, 0)
    except BrokerError as err:
        named(err, "quote")


CANDLE = ["2026-01-05T10:15:00+05:30", 100, 101.5, 99.0, 100.5, 1200]


@st.composite
def candle_rows(draw):
    """Mostly well-shaped rows with one or two junk cells; sometimes junk for the row."""
    if draw(st.integers(0, 4)) == 0:
        return draw(JUNK)
    row = list(CANDLE)
    for i in draw(st.sets(st.integers(0, 5), max_size=2)):
        row[i] = draw(st.one_of(JUNK, st.floats(-1e6, 1e6), TRICKY))
    extra = draw(st.lists(JUNK, max_size=2))
    return row[:draw(st.integers(0, 6))] if draw(st.integers(0, 9)) == 0 else row + extra


@FUZZ
@given(data=st.one_of(st.lists(candle_rows(), max_size=5), JUNK))
def test_fuzz_candles(data):
    rejected: list = []
    try:
        bars = ap.parse_candles(data, "getCandleData", rejected)
    except BrokerError as err:          # only the answer as a whole: not a list
        named(err, "getCandleData")
        assert data is not None and not isinstance(data, list)
        return
    assert len(bars) + len(rejected) == len(data or [])
    for b in bars:                       # every kept bar is a usable one
        check_candle(b.open, b.high, b.low, b.close, b.volume, "kept")
        assert b.start.tzinfo is not None
    for err in rejected:                 # every skipped row is named and journal-ready
        assert isinstance(err, DataError) and err.route == "getCandleData"
        assert isinstance(err.index, int) and err.field
        json.dumps(err.payload(), allow_nan=False)
    try:                                 # strict mode: the first bad row raises its DataError
        assert ap.parse_candles(data, "getCandleData") == bars and not rejected
    except DataError as err:
        assert rejected and err.index == rejected[0].index


# ---------------------------------------------------------------- instrument master
MASTER_ROW = {"token": "48223", "symbol": "NIFTY13JAN2624000CE", "name": "NIFTY",
              "expiry": "13JAN2026", "strike": "2400000.000000", "lotsize": "65",
              "instrumenttype": "OPTIDX", "exch_seg": "NFO", "tick_size": "5.000000"}
SAMPLES = [MASTER_ROW,
           {**MASTER_ROW, "token": "50001", "symbol": "NIFTY27JAN26FUT", "expiry": "27JAN2026",
            "strike": "-1.000000", "instrumenttype": "FUTIDX", "tick_size": "10.000000"},
           {"token": "99926000", "symbol": "Nifty 50", "name": "NIFTY", "expiry": "",
            "strike": "0.000000", "lotsize": "1", "instrumenttype": "AMXIDX", "exch_seg": "NSE",
            "tick_size": "0.000000"}]


@st.composite
def master_rows(draw):
    out = []
    for i in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 7))
        if kind == 0:
            out.append(draw(JUNK))
        else:
            row = draw(like(SAMPLES[kind % 3], keep=0.7))
            if "token" in row and draw(st.booleans()):
                row["token"] = str(10000 + i)        # mostly distinct tokens, sometimes not
            out.append(row)
    return out


@FUZZ
@given(rows=st.one_of(master_rows(), JUNK),
       underlyings=st.sampled_from([("NIFTY",), ("NIFTY", "BANKNIFTY"), ("nifty",)]))
def test_fuzz_instrument_master(rows, underlyings):
    try:
        master = parse_master(rows, underlyings)
    except MasterError as err:
        named(err, "instrument master")
        return
    for inst in master.instruments:
        assert isinstance(inst.token, str) and inst.token and isinstance(inst.symbol, str)
        assert isinstance(inst.name, str)
        whole(inst.lot_size)
        assert inst.lot_size > 0
        finite(inst.tick_size)
        if inst.is_option:
            finite(inst.strike)
            assert inst.strike > 0 and inst.option_type in ("CE", "PE")
    assert sum(master.skipped.values()) <= master.rows_total
    try:
        master.require_all(underlyings)
    except MasterError as err:
        named(err, "options")
    # what the journal caches reads back the same
    again = InstrumentMaster.from_records(master.to_records())
    assert again.to_records() == master.to_records()


@FUZZ
@given(raw=st.one_of(st.binary(max_size=60), text(60),
                     st.one_of(master_rows(), JUNK).map(lambda v: json.dumps(v, allow_nan=True))))
def test_fuzz_instrument_master_json(raw):
    try:
        parse_master_json(raw, ("NIFTY",))
    except MasterError as err:
        named(err, "instrument master")


SQL_VALUES = st.one_of(st.none(), st.integers(), st.floats(), text(12), TRICKY,
                       st.sampled_from([2 ** 63, 1e308, float("nan"), float("inf")]))
GOOD_RECORD = ("48223", "NIFTY13JAN2624000CE", "NIFTY", "NFO", "OPTIDX", "2026-01-13", 24000.0,
               "CE", 65, 0.05)


@st.composite
def records(draw):
    rec = list(GOOD_RECORD)
    for i in draw(st.sets(st.integers(0, len(rec) - 1), max_size=2)):
        rec[i] = draw(SQL_VALUES)
    if draw(st.integers(0, 9)) == 0:
        rec = rec[:draw(st.integers(0, len(rec) + 1))]
    return tuple(rec)


@FUZZ
@given(recs=st.lists(records(), max_size=3))
def test_fuzz_instrument_records_from_the_journal(recs):
    """The journal's cached copy (sqlite values) reads back or fails as MasterError."""
    try:
        master = InstrumentMaster.from_records(recs)
    except MasterError as err:
        named(err, "instrument record", "duplicate token")
        return
    for inst in master.instruments:
        whole(inst.lot_size)
        finite(inst.tick_size)
        assert inst.lot_size > 0 and inst.tick_size >= 0
        assert inst.strike is None or (math.isfinite(inst.strike) and inst.strike > 0)
    assert len(INSTRUMENT_COLUMNS) == len(GOOD_RECORD)
