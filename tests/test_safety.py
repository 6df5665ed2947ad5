"""The operator's safety levers and the bot's own: kill switch, shutdown flatten, data gaps, a
corrupt journal, and what `status` shows of it all."""
import json
import signal
from datetime import date, time, timedelta

from rustro.app import run_day
from rustro.broker.base import TransientError
from rustro.config import Config
from rustro.credentials import Secrets
from rustro.desk import build_desk
from rustro.journal import Journal

from fakes import on_event

from conftest import run_cli

DAY = date(2026, 10, 14)  # seed 42: an entry at 10:15




def test_kill_switch_exits_and_halts(tmp_path):
    j = tmp_path / "journal.sqlite"
    res = run_day(Config(), "sim", j, DAY, 42, Secrets(),
                  build_desk=on_event("position_opened", lambda svc: svc.kill_file.write_text("stop")))
    assert res.state == "closed"
    with Journal.open_readonly(j) as jj:
        trips = [e for e in jj.events(kinds=("breaker_tripped",)) if e.payload["breaker"] == "kill_switch"]
        assert len(trips) == 1
        closed = jj.query("SELECT exit_reason, exit_time FROM positions")
        assert [r[0] for r in closed] == ["kill_switch"]
        assert "halted" in [r[0] for r in jj.query("SELECT dst FROM transitions")]
        entries = [e for e in jj.events(kinds=("order_intent",))
                   if e.payload["purpose"] == "entry" and e.ts > trips[0].ts]
        assert entries == []


def test_halt_command_writes_the_kill_file(tmp_path):
    j = tmp_path / "journal.sqlite"
    r = run_cli("halt", "--journal", j)
    assert r.returncode == 0 and (tmp_path / "KILL").exists()
    run_cli("run", "--sim", "--date", DAY.isoformat(), "--journal", j, "--quiet")
    with Journal.open_readonly(j) as jj:
        assert jj.events(kinds=("order_intent",)) == []  # halted from the first monitor tick
        assert "halted" in [r[0] for r in jj.query("SELECT dst FROM transitions")]


def test_sigterm_with_a_position_flattens_then_stops(tmp_path):
    j = tmp_path / "journal.sqlite"
    res = run_day(Config(), "sim", j, DAY, 42, Secrets(),
                  build_desk=on_event("position_opened", lambda svc: signal.raise_signal(signal.SIGTERM)))
    assert res.shutdown == "SIGTERM" and res.state == "entry_window"  # flattened, then stopped
    with Journal.open_readonly(j) as jj:
        sd = jj.events(kinds=("shutdown",))[0].payload
        assert sd["signal"] == "SIGTERM" and sd["open_positions"] == 1 and sd["flatten_on_shutdown"]
        assert [r[0] for r in jj.query("SELECT exit_reason FROM positions")] == ["shutdown"]
    # the next start resumes the day: flat, back to entries, and closes normally
    res2 = run_day(Config(), "sim", j, DAY, 42, Secrets(), build_desk=build_desk)
    assert res2.state == "closed"
    with Journal.open_readonly(j) as jj:
        assert jj.query("SELECT COUNT(*) FROM positions WHERE status = 'open'")[0][0] == 0


def test_hourly_bar_gap_is_journaled_backfilled_and_healed(tmp_path):
    j = tmp_path / "journal.sqlite"
    calls = {"n": 0}

    def drop_bar(svc):
        market = svc.desk.market
        real = market.candles

        def candles(exchange, token, interval, start, end):
            bars = real(exchange, token, interval, start, end)
            if interval == "ONE_HOUR" and calls["n"] < 2 and start.date() == DAY:
                calls["n"] += 1
                return [b for b in bars if b.start.time() != time(10, 15)]
            return bars
        market.candles = candles

    res = run_day(Config(), "sim", j, DAY, 42, Secrets(), build_desk=on_event("daily_bias", drop_bar))
    assert res.state == "closed"
    with Journal.open_readonly(j) as jj:
        gaps = jj.events(kinds=("data_gap",))
        assert gaps and gaps[0].payload["missing"] == ["2026-10-14T10:15:00+05:30"]
        assert gaps[0].ts.time() >= time(11, 15)
        assert jj.events(kinds=("data_healed",))


def test_stale_prices_open_a_data_gap_that_blocks_entries(tmp_path):
    j = tmp_path / "journal.sqlite"

    def stall_vix(svc):
        market, clock = svc.desk.market, svc.clock
        real = market.vix

        def vix():
            if time(10, 0) <= clock.now().time() < time(11, 30):
                raise TransientError("empty body from quote")
            return real()
        market.vix = vix

    run_day(Config(), "sim", j, DAY, 42, Secrets(), build_desk=on_event("daily_bias", stall_vix))
    with Journal.open_readonly(j) as jj:
        gap = jj.events(kinds=("data_gap",))[0]
        assert gap.payload["underlying"] == "feed" and gap.ts.time() >= time(10, 1)
        healed = jj.events(kinds=("data_healed",))[0]
        assert healed.ts.time() >= time(11, 30)
        health = [e.payload for e in jj.events(kinds=("filter_result",))
                  if e.payload["name"] == "health" and gap.ts < e.ts < healed.ts]
        assert all(not h["passed"] for h in health)


def test_corrupt_journal_refuses_to_trade(tmp_path):
    j = tmp_path / "journal.sqlite"
    j.write_bytes(b"garbage" * 1000)
    r = run_cli("run", "--sim", "--date", DAY.isoformat(), "--journal", j, "--quiet")
    assert r.returncode == 3 and "refusing to trade" in r.stderr
    assert j.read_bytes() == b"garbage" * 1000  # untouched


def test_status_shows_positions_trades_pnl_and_breakers(tmp_path):
    j = tmp_path / "journal.sqlite"
    run_cli("run", "--sim", "--date", DAY.isoformat(), "--journal", j, "--quiet")
    text = run_cli("status", "--journal", j).stdout
    for heading in ("Timeline", "Positions", "Trades", "Orders", "Fills", "P&L", "Risk", "Breakers"):
        assert heading in text
    assert "trailing_stop" in text
    st = json.loads(run_cli("status", "--journal", j, "--json").stdout)
    with Journal.open_readonly(j) as jj:
        net = round(jj.query("SELECT SUM(net_pnl) FROM v_trades")[0][0], 2)
    assert st["pnl"]["realized_net"] == net and st["pnl"]["unrealized"] == 0
    assert len(st["fills"]) == 4 and all(o["status"] == "complete" for o in st["orders"])
    risk = st["risk"]
    assert risk["consecutive_losses"]["limit"] == 3 and risk["trades_today"]["value"] == 2
    assert set(risk["breakers"]) == {"vix", "daily_loss", "consecutive_losses", "kill_switch",
                                     "broker_mismatch"}


def test_position_without_quotes_is_still_exited_after_stale_exit_sec(tmp_path):
    j = tmp_path / "journal.sqlite"
    state = {}

    def on_open(svc):  # once the position exists, its option stops quoting for ten minutes
        market, clock = svc.desk.market, svc.clock
        real = market.quote
        state["since"] = clock.now()
        state["token"] = next(iter(svc.desk.book.holdings.values())).pos.token

        def quote(exchange, tok):
            if tok == state["token"] and clock.now() < state["since"] + timedelta(minutes=10):
                raise TransientError("quote timed out")
            return real(exchange, tok)
        market.quote = quote

    run_day(Config(), "sim", j, DAY, 42, Secrets(), build_desk=on_event("stop_updated", on_open))
    with Journal.open_readonly(j) as jj:
        first = jj.query("SELECT * FROM positions ORDER BY entry_time")[0]
        errors = [e for e in jj.events(kinds=("broker_error",)) if e.payload.get("call") == "quote"]
        assert len(errors) == 1  # one row for the whole failure streak, not one per tick
        sig = [e for e in jj.events(kinds=("exit_signal",)) if e.payload["position_id"] == first["position_id"]]
        assert sig[0].payload["primary"] == "stale_price"
        assert (sig[0].ts - state["since"]).total_seconds() >= 180  # stale_exit_sec after the last price
        assert (sig[0].ts - state["since"]).total_seconds() < 180 + 10
        assert first["status"] == "closed"
