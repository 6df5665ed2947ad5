"""`backtest --data store`: the same bot on minute bars from the market-data store. A store filled
with the synthetic market's own bars must decide as the synthetic backtest does; a store without
the option chain must be a journaled data gap (no entry), never an invented price, unless
--fill-missing model, which the report flags on every trade it touched."""
import json
import shutil
import sqlite3
from datetime import date, datetime

import pytest

from rustro import cli
from rustro.calendar import TradingCalendar
from rustro.clock import IST, VirtualClock
from rustro.config import load_config
from rustro.market.store import MarketStore
from rustro.market.store_synthetic import fill_day
from rustro.market.synthetic import SyntheticMarket
from tests.conftest import REPO

DAY = date(2026, 10, 14)  # seed 42 trades twice on this day in sim


def make_store(path, first=date(2026, 8, 25), chain_days=(DAY,)):
    """Index, VIX and future minute bars from `first`, the option chain on `chain_days`."""
    cfg = load_config(REPO / "config.toml")
    cal = TradingCalendar.from_config(cfg)
    clock = VirtualClock(datetime(2026, 8, 1, tzinfo=IST))
    market = SyntheticMarket(clock, 42, calendar=cal)
    store = MarketStore(path)
    for d in cal.trading_days(first, max(chain_days)):
        fill_day(store, market, clock, d, options=d in chain_days)
    store.close()
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    base = tmp_path_factory.mktemp("stores")
    full = make_store(base / "full.sqlite")
    bare = base / "bare.sqlite"
    shutil.copy(full, bare)
    with sqlite3.connect(bare) as c:
        c.execute("DELETE FROM bars WHERE token IN (SELECT token FROM contracts "
                  "WHERE instrumenttype = 'OPTIDX')")
    return full, bare


def backtest(tmp_path, capsys, *extra):
    journal = tmp_path / "bt.sqlite"
    rc = cli.main(["backtest", "--config", str(REPO / "config.toml"), "--journal", str(journal),
                   "--from", DAY.isoformat(), "--to", DAY.isoformat(), "--json", *extra])
    out = capsys.readouterr().out
    return rc, json.loads(out[out.index("{"):]), journal


def trades_of(rep):
    return [(t["symbol"], t["qty"], t["entry_time"], t["exit_time"], t["exit_reason"])
            for t in rep["trades"]]


def test_a_store_of_the_synthetic_bars_trades_as_the_synthetic_backtest(stores, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    rc_sim, sim, _ = backtest(tmp_path / "a", capsys)
    rc, rep, _ = backtest(tmp_path, capsys, "--data", f"store:{stores[0]}")
    assert rc == rc_sim == 0
    assert len(sim["trades"]) == 2 and trades_of(rep) == trades_of(sim)
    assert not any(t["modeled"] for t in rep["trades"])


def test_a_missing_chain_is_a_journaled_data_gap_and_no_entry(stores, tmp_path, capsys):
    rc, rep, journal = backtest(tmp_path, capsys, "--data", f"store:{stores[1]}")
    assert rc == 0 and rep["trades"] == []
    with sqlite3.connect(journal) as c:
        gaps = [json.loads(p) for (p,) in c.execute(
            "SELECT payload FROM events WHERE kind = 'data_gap' AND payload LIKE '%no entry%'")]
        decisions = [json.loads(p) for (p,) in c.execute(
            "SELECT payload FROM events WHERE kind = 'entry_decision'")]
        orders = c.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    assert gaps and all(g["symbol"].startswith("NIFTY") and g["call"] == "quote" for g in gaps)
    assert orders == 0
    assert any(d.get("reason") == "market data unavailable" for d in decisions)


def test_fill_missing_model_prices_the_gap_and_flags_every_trade(stores, tmp_path, capsys):
    rc, rep, journal = backtest(tmp_path, capsys, "--data", f"store:{stores[1]}",
                                "--fill-missing", "model")
    assert rc == 0 and rep["trades"] and all(t["modeled"] for t in rep["trades"])
    cli.main(["backtest", "--config", str(REPO / "config.toml"), "--journal", str(journal),
              "--from", DAY.isoformat(), "--to", DAY.isoformat(), "--data", f"store:{stores[1]}",
              "--fill-missing", "model"])
    text = capsys.readouterr().out
    assert "*NIFTY" in text and "Black-76" in text


def test_a_missing_store_is_a_usage_error(tmp_path, capsys):
    rc = cli.main(["backtest", "--config", str(REPO / "config.toml"), "--journal",
                   str(tmp_path / "bt.sqlite"), "--from", "2026-10-14", "--to", "2026-10-14",
                   "--data", f"store:{tmp_path / 'none.sqlite'}"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    rc = cli.main(["backtest", "--config", str(REPO / "config.toml"), "--journal",
                   str(tmp_path / "bt.sqlite"), "--from", "2026-10-14", "--to", "2026-10-14",
                   "--fill-missing", "model"])
    assert rc == 2 and "--fill-missing is for --data store" in capsys.readouterr().err
