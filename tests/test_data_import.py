"""`rustro data import DIR`: documented columns, validated row by row, all or nothing, idempotent;
and `rustro data download`: Angel's getCandleData (recorded-shape replies, no network), chunked
by the interval's day limit, paced by the rate limiter, resumable and deduplicated."""
import json
from datetime import date, datetime, timedelta

import pytest
import responses

from rustro import cli
from rustro.broker.angelone import AngelOneMarketData
from rustro.clock import IST, VirtualClock
from rustro.config import Config
from rustro.market.base import ONE_DAY, ONE_MINUTE
from rustro.market.download import download, missing_runs
from rustro.market.store import MarketStore
from tests.conftest import REPO
from tests.test_angelone import BASE, MASTER_URL, P, TOKENS_1, make_session, ok

OPTION = {"token": "48223", "symbol": "NIFTY20OCT2625000CE", "name": "NIFTY", "expiry": "20OCT2026",
          "strike": "2500000.000000", "lotsize": "65", "instrumenttype": "OPTIDX",
          "exch_seg": "NFO", "tick_size": "5.000000"}
GOOD = ("timestamp,open,high,low,close,volume,oi\n"
        "2026-10-14 09:15,100,101,99,100.5,650,1300\n"
        "2026-10-14 09:16,100.5,102,100,101,1300,1950\n")


def write(d, name, text):
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)


def run(tmp_path, capsys, directory):
    rc = cli.main(["data", "import", str(directory), "--config", str(REPO / "config.toml"),
                   "--store", str(tmp_path / "m.sqlite")])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def store_with_master(tmp_path):
    s = MarketStore(tmp_path / "m.sqlite")
    s.put_master(date(2026, 10, 14), [OPTION])
    s.close()


def bars(tmp_path):
    s = MarketStore(tmp_path / "m.sqlite")
    try:
        return {t: s.bars(t, ONE_MINUTE, 0, 2**40) for t in ("48223", "99926000")}
    finally:
        s.close()


def test_a_good_directory_imports_and_again_changes_nothing(tmp_path, capsys, store_with_master):
    d = tmp_path / "in"
    write(d, "NIFTY20OCT2625000CE.csv", GOOD)
    write(d, "Nifty 50.csv", "timestamp,open,high,low,close,volume,oi\n"
                             "2026-10-14T09:15:00+05:30,25000,25010,24990,25005,0,\n")
    rc, out, err = run(tmp_path, capsys, d)
    assert rc == 0, err
    assert "imported 3 bars from 2 file(s)" in out
    first = bars(tmp_path)
    assert [r[:7] for r in first["48223"]] == [
        (int(datetime(2026, 10, 14, 9, 15, tzinfo=IST).timestamp()), 100, 101, 99, 100.5, 650, 1300),
        (int(datetime(2026, 10, 14, 9, 16, tzinfo=IST).timestamp()), 100.5, 102, 100, 101, 1300, 1950)]
    assert first["99926000"][0][6] is None  # an index has no open interest
    assert run(tmp_path, capsys, d)[0] == 0
    assert bars(tmp_path) == first


@pytest.mark.parametrize("line, where", [
    ("2026-10-14 09:17,100,99,101,100,5,0", "row 4 column high"),           # high < low
    ("2026-10-14 09:17,100,101,99,abc,5,0", "row 4 column close"),
    ("2026-10-14 09:17,100,101,99,102,5,0", "row 4 column close"),          # outside [low, high]
    ("2026-10-14 09:17,100,101,99,100,-5,0", "row 4 column volume"),
    ("2026-10-14 09:17,100,101,99,100,5.5,0", "row 4 column volume"),
    ("2026-10-14 09:16,100,101,99,100,5,0", "row 4 column timestamp"),      # not ascending
    ("2026-10-14 15:30,100,101,99,100,5,0", "row 4 column timestamp"),      # after the session
    ("2026-10-14 09:17:30,100,101,99,100,5,0", "row 4 column timestamp"),   # not a minute start
    ("2026-10-14T09:17:00+00:00,100,101,99,100,5,0", "row 4 column timestamp"),  # not IST
    ("2026-10-14 09:17,nan,101,99,100,5,0", "row 4 column open"),
    ("2026-10-14 09:17,100,101,99,100,5", "row 4: 6 values"),
])
def test_a_malformed_file_is_rejected_naming_row_and_column_and_nothing_is_imported(
        tmp_path, capsys, store_with_master, line, where):
    d = tmp_path / "in"
    write(d, "Nifty 50.csv", "timestamp,open,high,low,close,volume,oi\n2026-10-14 09:15,1,2,1,2,0,\n")
    write(d, "NIFTY20OCT2625000CE.csv", GOOD + line + "\n")
    rc, out, err = run(tmp_path, capsys, d)
    assert rc == 2
    assert f"NIFTY20OCT2625000CE.csv {where}" in err and "nothing imported" in err
    assert bars(tmp_path) == {"48223": [], "99926000": []}  # not even the good file


def test_unknown_symbols_bad_headers_and_parquet_without_pyarrow_are_refused(tmp_path, capsys,
                                                                            store_with_master):
    d = tmp_path / "a"
    write(d, "NIFTY99XXX.csv", GOOD)
    assert "'NIFTY99XXX' is in no instrument master" in run(tmp_path, capsys, d)[2]
    d = tmp_path / "b"
    write(d, "Nifty 50.csv", "time,open,high,low,close,volume\n")
    assert "Nifty 50.csv row 1: header" in run(tmp_path, capsys, d)[2]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        d = tmp_path / "c"
        write(d, "Nifty 50.parquet", "not really parquet")
        assert "Parquet needs pyarrow" in run(tmp_path, capsys, d)[2]


# --- download ---------------------------------------------------------------------------------
MASTER = [{"token": "99926000", "symbol": "Nifty 50", "name": "NIFTY", "expiry": "", "strike": "0",
           "lotsize": "1", "instrumenttype": "AMXIDX", "exch_seg": "NSE", "tick_size": "0"},
          {"token": "99926017", "symbol": "India VIX", "name": "INDIA VIX", "expiry": "",
           "strike": "0", "lotsize": "1", "instrumenttype": "AMXIDX", "exch_seg": "NSE",
           "tick_size": "0"}, OPTION,
          {**OPTION, "token": "48224", "symbol": "NIFTY20OCT2625000PE"},
          {**OPTION, "token": "48999", "symbol": "NIFTY20OCT2630000CE", "strike": "3000000.000000"}]


def candle_reply(request):
    """getCandleData as Angel answers: rows [ISO start, o, h, l, c, v], two bars per session."""
    body = json.loads(request.body)
    lo = datetime.strptime(body["fromdate"], "%Y-%m-%d %H:%M").replace(tzinfo=IST)
    hi = datetime.strptime(body["todate"], "%Y-%m-%d %H:%M").replace(tzinfo=IST)
    assert hi - lo <= timedelta(days=30 if body["interval"] == ONE_MINUTE else 2000)
    rows, d = [], lo.date()
    while d <= hi.date():
        if d.weekday() < 5:
            times = ([datetime(d.year, d.month, d.day, 9, 15, tzinfo=IST)] if body["interval"] == ONE_DAY
                     else [datetime(d.year, d.month, d.day, 9, 15 + i, tzinfo=IST) for i in range(2)])
            rows += [[t.isoformat(), 25000, 25010, 24990, 25005, 0] for t in times if lo <= t <= hi]
        d += timedelta(days=1)
    return 200, {}, ok(rows)


@pytest.fixture
def angel(tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        clock = VirtualClock(datetime(2026, 10, 16, 18, 0, tzinfo=IST))
        session = make_session(clock, tmp_path, [])
        rsps.add("POST", BASE + P["login"], body=ok(TOKENS_1))
        rsps.add("GET", MASTER_URL, body=json.dumps(MASTER))
        rsps.add_callback("POST", BASE + P["candles"], callback=candle_reply)
        session.login()
        yield rsps, clock, AngelOneMarketData(session, MASTER_URL, tmp_path / "master")


def candle_calls(rsps):
    return [json.loads(c.request.body) for c in rsps.calls if c.request.url.endswith("getCandleData")]


def test_download_chunks_paces_resumes_and_deduplicates(tmp_path, angel):
    rsps, clock, market = angel
    store = MarketStore(tmp_path / "m.sqlite")
    t0 = clock.now()
    got = download(Config(), market, store, date(2026, 8, 1), date(2026, 10, 14), clock.now().date(),
                   expiries=1, strikes=2)
    calls = candle_calls(rsps)
    # Nifty 50 and VIX: minute bars in 30-day chunks (3) and daily bars in one; the two options
    # near the money (the 30000 strike is out of range): 3 chunks each
    assert sorted((c["symboltoken"], c["interval"]) for c in calls).count(("99926000", ONE_MINUTE)) == 3
    assert {(c["symboltoken"], c["interval"]) for c in calls} == {
        ("99926000", ONE_MINUTE), ("99926000", ONE_DAY), ("99926017", ONE_MINUTE),
        ("99926017", ONE_DAY), ("48223", ONE_MINUTE), ("48224", ONE_MINUTE)}
    assert len(calls) == 14
    # paced by the getCandleData limit (3 per second) on the session's clock
    assert (clock.now() - t0).total_seconds() >= (len(calls) - 3) / 3
    counts = store.counts()
    fetched = store.conn.execute("SELECT COUNT(*) FROM bars WHERE interval != 'ONE_HOUR'").fetchone()[0]
    assert fetched == got.bars > 0 and store.master(clock.now().date()) == MASTER
    # the hourly history the strategy reads is built from the minute bars as they are stored
    assert store.bars("99926000", "ONE_HOUR", 0, 2**40)[0][:5] == (
        int(datetime(2026, 8, 3, 9, 15, tzinfo=IST).timestamp()), 25000, 25010, 24990, 25005)
    # a rerun asks for nothing it has, and stores nothing twice
    rsps.calls.reset()
    again = download(Config(), market, store, date(2026, 8, 1), date(2026, 10, 14), clock.now().date(),
                     expiries=1, strikes=2)
    assert candle_calls(rsps) == [] and again.bars == 0 and store.counts() == counts
    # extending the range fetches only the new days
    rsps.calls.reset()
    download(Config(), market, store, date(2026, 8, 1), date(2026, 10, 16), clock.now().date(),
             expiries=1, strikes=2)
    new = candle_calls(rsps)
    assert new and all(c["fromdate"].startswith("2026-10-15") for c in new)
    store.close()


def test_missing_runs_are_the_gaps_in_what_is_held():
    days = [date(2026, 10, d) for d in (12, 13, 14, 15, 16)]
    assert missing_runs(days, {date(2026, 10, 14)}) == [(days[0], days[1]), (days[3], days[4])]
    assert missing_runs(days, set(days)) == []
