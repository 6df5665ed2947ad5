"""The market-data store, the recorder that fills it in paper and live, and the store-backed market
that serves it as of the clock (backtest --data store)."""
import sqlite3
from datetime import date, datetime, timedelta

import pytest

from rustro.clock import IST, VirtualClock
from rustro.market.base import ONE_HOUR, ONE_MINUTE, Quote
from rustro.market.recorder import Recorder, RecordingMarket
from rustro.market.store import MarketStore, QuoteRow, us
from rustro.market.stored import DataGap, StoredMarket
from tests.fakes import SetMarket

DAY = date(2026, 10, 14)


def t(h, m, s=0):
    return datetime(2026, 10, 14, h, m, s, tzinfo=IST)


def minute_rows(start, n, price=100.0):
    return [(int((start + timedelta(minutes=i)).timestamp()), price + i, price + i + 1,
             price + i - 1, price + i + 0.5, 10.0, None) for i in range(n)]


def test_bars_upsert_is_idempotent_and_keeps_the_first_instant_seen(tmp_path):
    s = MarketStore(tmp_path / "m.sqlite")
    s.put_bars("1", ONE_MINUTE, minute_rows(t(9, 15), 5), seen=us(t(9, 21)))
    s.put_bars("1", ONE_MINUTE, minute_rows(t(9, 15), 5), seen=us(t(9, 30)))
    s.put_bars("1", ONE_MINUTE, minute_rows(t(9, 15), 5))  # imported history: no instant
    s.commit()
    rows = s.bars("1", ONE_MINUTE, int(t(9, 0).timestamp()), int(t(10, 0).timestamp()))
    assert len(rows) == 5 and {r[7] for r in rows} == {us(t(9, 21))}
    assert s.counts()["bars"] == 5


def test_master_is_stored_compressed_and_feeds_the_contract_directory(tmp_path):
    s = MarketStore(tmp_path / "m.sqlite")
    rows = [{"token": "7", "symbol": "NIFTY20OCT2625000CE", "name": "NIFTY", "expiry": "20OCT2026",
             "strike": "2500000.000000", "instrumenttype": "OPTIDX", "exch_seg": "NFO"},
            {"token": "8", "symbol": "NIFTY13OCT2625000CE", "name": "NIFTY", "expiry": "13OCT2026",
             "strike": "2500000.000000", "instrumenttype": "OPTIDX", "exch_seg": "NFO"}]
    s.put_master(DAY, rows)
    s.commit()
    assert s.master(DAY) == rows and s.master(date(2026, 10, 15)) is None
    assert s.contract_by_symbol("NIFTY20OCT2625000CE")["token"] == "7"
    assert [r["token"] for r in s.directory(listed_on=DAY)] == ["7"]  # 13 Oct has expired
    blob = sqlite3.connect(tmp_path / "m.sqlite").execute("SELECT length(data) FROM masters").fetchone()[0]
    assert blob < len(str(rows))


def test_recorder_stores_each_answer_with_the_instant_asked_and_arrived(tmp_path):
    clock = VirtualClock(t(10, 0, 5))
    inner = SetMarket(clock, {"42": (99.0, 101.0)})
    events = []
    rec = Recorder(tmp_path / "m.sqlite", clock, DAY, lambda k, p: events.append((k, p)))
    market = RecordingMarket(inner, rec)
    q = market.quote("NFO", "42")
    assert q == inner.quote("NFO", "42")  # handed to the bot unchanged
    market.vix()
    rec.close()
    rows = MarketStore(tmp_path / "m.sqlite").quotes(0, us(t(23, 0)))
    assert [(r.token, r.kind, r.channel, r.bid, r.ask) for r in rows] == [
        ("42", "quote", "desk", 99.0, 101.0), ("99926017", "vix", "desk", 14.0, 14.0)]
    assert rows[0].asked == rows[0].arrived == us(t(10, 0, 5))
    assert events == []


def test_a_failing_store_never_fails_the_decision_and_is_journaled_once_per_streak(tmp_path):
    clock = VirtualClock(t(10, 0))
    inner = SetMarket(clock, {"42": (99.0, 101.0)})
    events = []
    rec = Recorder(tmp_path / "missing-dir" / "m.sqlite", clock, DAY,
                   lambda k, p: events.append((k, p)))
    market = RecordingMarket(inner, rec)
    for _ in range(3):
        assert market.quote("NFO", "42").bid == 99.0
    assert [k for k, _ in events] == ["market_store_error"]
    assert "unable to open" in events[0][1]["error"]
    (tmp_path / "missing-dir").mkdir()
    market.quote("NFO", "42")
    assert [k for k, _ in events] == ["market_store_error", "market_store_recovered"]
    assert events[1][1]["writes_lost"] == 3
    rec.close()


def test_a_failed_call_is_recorded_and_re_raised(tmp_path):
    clock = VirtualClock(t(10, 0))
    rec = Recorder(tmp_path / "m.sqlite", clock, DAY, lambda k, p: None)
    market = RecordingMarket(SetMarket(clock, {}), rec)
    with pytest.raises(KeyError):
        market.quote("NFO", "404")
    rec.close()
    assert [r.kind for r in MarketStore(tmp_path / "m.sqlite").quotes(0, us(t(23, 0)))] == ["quote_error"]


@pytest.fixture
def store(tmp_path):
    s = MarketStore(tmp_path / "m.sqlite")
    s.put_bars("1", ONE_MINUTE, minute_rows(t(9, 15), 120, price=25000.0))
    s.put_quote(QuoteRow("42", us(t(10, 0, 5)), "desk", "quote", us(t(10, 0, 6)), 50.0, 49.5,
                         50.5, us(t(10, 0))))
    s.put_master(DAY, [{"token": "42", "symbol": "NIFTY20OCT2625000CE", "name": "NIFTY",
                        "expiry": "20OCT2026", "strike": "2500000.000000", "lotsize": "65",
                        "instrumenttype": "OPTIDX", "exch_seg": "NFO", "tick_size": "5.000000"},
                       {"token": "1", "symbol": "Nifty 50", "name": "NIFTY", "expiry": "",
                        "strike": "0", "lotsize": "1", "instrumenttype": "AMXIDX",
                        "exch_seg": "NSE", "tick_size": "0"}])
    s.put_quote(QuoteRow("99926017", us(t(9, 30)), "desk", "vix", us(t(9, 30)), 13.0, 13.0, 13.0,
                         us(t(9, 30))))
    s.commit()
    return s


def test_stored_market_serves_nothing_from_the_future(store):
    clock = VirtualClock(t(10, 0, 30))
    m = StoredMarket(store, clock)
    bars = m.candles("NSE", "1", ONE_MINUTE, t(9, 15), t(15, 30))
    assert bars[-1].start == t(9, 59)  # the 10:00 bar is not complete at 10:00:30
    hourly = m.candles("NSE", "1", ONE_HOUR, t(9, 15), t(15, 30))
    assert hourly == []  # the 09:15 hourly bar completes only at 10:15
    clock.set(t(10, 15))
    assert [b.start for b in m.candles("NSE", "1", ONE_HOUR, t(9, 15), t(15, 30))] == [t(9, 15)]
    assert m.ltp("NSE", "1") == bars[-1].close + 15  # the 10:14 bar's close
    with pytest.raises(DataGap):
        StoredMarket(store, VirtualClock(t(10, 0))).quote("NFO", "42")  # asked at 10:00:05
    assert StoredMarket(store, VirtualClock(t(10, 0, 5))).quote("NFO", "42") == Quote(
        "42", 50.0, 49.5, 50.5, t(10, 0))


def test_a_missing_option_quote_is_a_journaled_gap_unless_modeled(store):
    gaps, models = [], []
    clock = VirtualClock(t(9, 20))
    m = StoredMarket(store, clock, on_gap=gaps.append, on_model=models.append)
    for _ in range(2):
        with pytest.raises(DataGap):
            m.quote("NFO", "42")
    assert len(gaps) == 1 and gaps[0]["symbol"] == "NIFTY20OCT2625000CE"
    assert gaps[0]["action"] == "no entry"
    m = StoredMarket(store, VirtualClock(t(9, 40)), fill_missing="model", on_model=models.append)
    q = m.quote("NFO", "42")
    assert 0 < q.bid < q.ask and q.ltp > 0
    assert models[0]["symbol"] == "NIFTY20OCT2625000CE" and models[0]["vix"] == 13.0


@pytest.mark.parametrize("text, err", [
    ('[store]\npath = "data/"', "store.path: must name a file"),
    ('[store]\npath = "  "', "store.path: must name a file"),
    ('[bot]\njournal = "j.sqlite"\n[store]\npath = "j.sqlite"', "store.path: must not be the journal"),
    ('[store]\nrecord = "yes"', "store.record"),
])
def test_store_config_is_checked(tmp_path, text, err):
    from rustro.config import ConfigError, load_config
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=err):
        load_config(p)


def test_store_path_defaults_beside_the_journal(tmp_path):
    from rustro.market.store import default_store_path
    assert default_store_path(tmp_path / "j.sqlite") == tmp_path / "j.market.sqlite"
    assert default_store_path(tmp_path / "j.sqlite", "m.sqlite") == tmp_path / "m.sqlite"


def test_replay_windows_serve_the_recorded_answers_in_order_and_never_before_their_instant(tmp_path):
    """In a replayed job, the n-th ask gets the n-th answer the recorded job got (the clock moving
    to its instant); a paper broker without answers of its own gets the desk's as of the clock."""
    s = MarketStore(tmp_path / "m.sqlite")
    for sec, price in ((1, 10.0), (3, 11.0), (7, 12.0)):  # job A asked twice, job B once
        s.put_quote(QuoteRow("42", us(t(10, 0, sec)), "desk", "quote", us(t(10, 0, sec)), price,
                             price - 0.5, price + 0.5, us(t(10, 0, sec))))
    s.put_quote(QuoteRow("42", us(t(10, 0, 8)), "broker", "quote", us(t(10, 0, 8)), 20.0, 20.0,
                         20.0, us(t(10, 0, 8))))
    s.commit()
    clock = VirtualClock(t(10, 0, 0))
    desk = StoredMarket(s, clock)
    broker = desk.view("broker")
    desk.begin_window(t(10, 0, 0), t(10, 0, 5))                 # job A
    with pytest.raises(DataGap):   # nothing asked by 10:00:00 yet: never the future
        StoredMarket(s, VirtualClock(t(10, 0, 0))).quote("NFO", "42")
    assert desk.quote("NFO", "42").ltp == 10.0 and clock.now() == t(10, 0, 1)
    assert broker.quote("NFO", "42").ltp == 10.0  # the desk's, as of the clock
    assert desk.quote("NFO", "42").ltp == 11.0 and clock.now() == t(10, 0, 3)
    assert desk.quote("NFO", "42").ltp == 11.0   # more asks than answers: the last one
    clock.set(t(10, 0, 5))
    desk.begin_window(t(10, 0, 5), t(10, 0, 10))                # job B
    assert broker.quote("NFO", "42").ltp == 20.0 and clock.now() == t(10, 0, 8)  # its own answer
    assert desk.quote("NFO", "42").ltp == 12.0
