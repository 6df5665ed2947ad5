"""The day's instrument master is downloaded once, cached in the journal, and required to hold
options for every configured underlying; refused market-data rows are journaled."""
from dataclasses import replace
from datetime import date, time

from rustro.app import run_day
from rustro.calendar import at
from rustro.config import Config, parse_config
from rustro.credentials import Secrets
from rustro.desk import build_desk
from rustro.journal import Journal

DAY = date(2026, 10, 14)


def counting(calls, drop_options=False, crash_after_load=False):
    def build(svc, day, secrets):
        build_desk(svc, day, secrets)
        market = svc.desk.market
        real = market.instrument_master

        def master():
            calls.append(1)
            rows = real()
            if drop_options:
                rows = [r for r in rows if r["instrumenttype"] != "OPTIDX"]
            return rows
        market.instrument_master = master
        if crash_after_load:
            real_load = svc.desk.load_instruments

            def load():
                real_load()
                raise KeyboardInterrupt("the process dies right after the cache was written")
            svc.desk.load_instruments = load
    return build


def load_then_die(cfg, j, calls):
    """Run the day until the master is loaded and cached, then die (the process is killed)."""
    try:
        run_day(cfg, "sim", j, DAY, 42, Secrets(), build_desk=counting(calls, crash_after_load=True))
    except KeyboardInterrupt:
        pass


def test_restart_reads_the_cached_master_not_the_network(tmp_path):
    j = tmp_path / "journal.sqlite"
    calls = []
    load_then_die(Config(), j, calls)
    assert len(calls) == 1
    with Journal.open_readonly(j) as jj:
        cached = jj.query("SELECT COUNT(*) FROM instruments WHERE trading_day = ?", (DAY.isoformat(),))[0][0]
        loaded = jj.events(kinds=("instruments_loaded",))[0].payload
    assert cached == loaded["kept"] > 0 and loaded["skipped"] == {}
    calls.clear()
    res = run_day(Config(), "sim", j, DAY, 42, Secrets(), build_desk=counting(calls))
    assert calls == [] and res.state == "closed"  # the second start never downloaded


def test_master_without_nifty_options_stops_the_day_before_warmup(tmp_path):
    j = tmp_path / "journal.sqlite"
    res = run_day(Config(), "sim", j, DAY, 42, Secrets(), build_desk=counting([], drop_options=True))
    assert res.state == "closed" and res.job_errors >= 1
    with Journal.open_readonly(j) as jj:
        dsts = [r[0] for r in jj.query("SELECT dst FROM transitions ORDER BY seq")]
        errors = [e.payload["error"] for e in jj.events(kinds=("job_error",))]
        assert "warmup" not in dsts and dsts[-2:] == ["eod_exit", "closed"]
        assert any("NIFTY" in e and "option" in e.lower() for e in errors)
        assert jj.events(kinds=("order_intent",)) == []


def test_a_journal_master_without_options_for_a_configured_underlying_is_read_again(tmp_path):
    j = tmp_path / "journal.sqlite"
    calls = []
    load_then_die(Config(), j, calls)
    assert len(calls) == 1                     # cached for NIFTY only
    two = parse_config({"underlyings": [
        {"name": "NIFTY"},
        {"name": "BANKNIFTY", "spot_name": "Nifty Bank", "strike_step": 100, "freeze_qty": 900}]})
    calls.clear()
    load_then_die(two, j, calls)
    assert len(calls) == 1                     # the cached copy lacked BANKNIFTY: read again
    with Journal.open_readonly(j) as jj:
        [stale] = jj.events(kinds=("instruments_stale",))
        assert "BANKNIFTY" in stale.payload["reason"]
        names = {r[0] for r in jj.query("SELECT DISTINCT name FROM instruments WHERE trading_day = ?",
                                        (DAY.isoformat(),))}
        assert {"NIFTY", "BANKNIFTY"} <= names


def test_a_bad_candle_is_journaled_as_a_data_error_and_a_gap(tmp_path):
    j = tmp_path / "journal.sqlite"
    bad_start = at(DAY, time(11, 15))

    def build(svc, day, secrets):
        build_desk(svc, day, secrets)
        market = svc.desk.market
        real = market.candles

        def candles(exchange, token, interval, start, end):
            return [replace(b, high=b.low / 2) if b.start == bad_start and interval == "ONE_HOUR"
                    else b for b in real(exchange, token, interval, start, end)]
        market.candles = candles

    run_day(Config(), "sim", j, DAY, 42, Secrets(), build_desk=build)
    with Journal.open_readonly(j) as jj:
        errors = [e.payload for e in jj.events(kinds=("data_error",))]
        gaps = [e.payload for e in jj.events(kinds=("data_gap",))]
    assert errors and all(e["field"] == "high" and e["interval"] == "ONE_HOUR" for e in errors)
    assert any(bad_start.isoformat() in e["row"] for e in errors)
    assert any(g.get("underlying") == "NIFTY" and g.get("missing") for g in gaps)


def test_a_schema_1_journal_keeps_its_cached_masters_through_the_migration(tmp_path):
    """Schema 1 cached a row per instrument; schema 2 keeps one JSON row per day behind an
    `instruments` view. Opening an old journal moves every cached master over, unchanged."""
    import sqlite3

    from rustro.market.instruments import INSTRUMENT_COLUMNS, INSTRUMENTS_DDL
    j = tmp_path / "journal.sqlite"
    load_then_die(Config(), j, [])
    cols = ", ".join(INSTRUMENT_COLUMNS)
    with Journal.open_readonly(j) as jj:
        before = sorted(tuple(r) for r in jj.query(f"SELECT trading_day, {cols} FROM instruments"))
    assert len(before) > 1000
    c = sqlite3.connect(j)   # turn the file back into what schema 1 wrote
    c.executescript(f"""DROP VIEW instruments; {INSTRUMENTS_DDL};
        DELETE FROM instrument_masters; UPDATE meta SET value = '1' WHERE key = 'schema_version';
        PRAGMA user_version = 1;""")
    c.executemany(f"INSERT INTO instruments VALUES ({', '.join('?' * 11)})", before)
    c.commit()
    c.close()
    calls = []
    res = run_day(Config(), "sim", j, DAY, 42, Secrets(), build_desk=counting(calls))
    assert res.state == "closed" and calls == []      # the migrated cache served the day
    with Journal.open_readonly(j) as jj:
        after = sorted(tuple(r) for r in jj.query(f"SELECT trading_day, {cols} FROM instruments"))
        kinds = [r[0] for r in jj.query("SELECT type FROM sqlite_master WHERE name = 'instruments'")]
    assert after == before and kinds == ["view"]
