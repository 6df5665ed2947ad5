"""backtest_report: every metric against numbers worked out by hand on a tiny fixed trade list, the
text and JSON renderings, the sweep ranking; backtest_html: an offline, deterministic HTML file,
and (with chromium) what it looks like."""
import json
import math
import shutil
import subprocess
import sys

import pytest

from rustro import backtest_report as br

CAPITAL = 100_000.0
D1, D2, D3, D4 = "2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08"


def trade(pid, day, t_in, t_out, gross, costs, reason, qty=75):
    return {"day": day, "position_id": pid, "underlying": "NIFTY", "option_type": "CE",
            "symbol": f"NIFTY{pid}CE", "qty": qty, "entry_time": f"{day}T{t_in}+05:30",
            "entry_price": 100.0, "exit_time": f"{day}T{t_out}+05:30", "exit_price": 110.0,
            "exit_reason": reason, "gross": gross, "costs": costs, "net": gross - costs}


# Four trading days, four trades (D3 has none):
#   T1 D1 10:15 -> 10:45 (30 min)  gross  1200  costs 200  net  1000  trailing_stop
#   T2 D1 13:15 -> 13:25 (10 min)  gross -1800  costs 200  net -2000  hard_stop
#   T3 D2 11:15 -> 12:15 (60 min)  gross  3200  costs 200  net  3000  trailing_stop
#   T4 D4 14:15 -> 15:20 (65 min)  gross  -300  costs 200  net  -500  eod
TRADES = [
    trade("T3", D2, "11:15:00", "12:15:00", 3200.0, 200.0, "trailing_stop"),  # order must not matter
    trade("T1", D1, "10:15:00", "10:45:00", 1200.0, 200.0, "trailing_stop"),
    trade("T2", D1, "13:15:00", "13:25:00", -1800.0, 200.0, "hard_stop"),
    trade("T4", D4, "14:15:00", "15:20:00", -300.0, 200.0, "eod"),
]
DAYS = [
    {"day": D1, "state": "closed", "decisions": {"allowed": 2, "blocked": 3, "no_signal": 1},
     "blocked": {"rsi": 2, "vwap": 1}, "filters": ["rsi", "vix", "vwap"]},
    {"day": D2, "state": "closed", "decisions": {"allowed": 1, "blocked": 2, "no_signal": 0},
     "blocked": {"rsi": 1, "size": 1}, "filters": ["rsi", "vix", "vwap"]},
    {"day": D3, "state": "closed", "decisions": {"allowed": 0, "blocked": 0, "no_signal": 6},
     "blocked": {}, "filters": []},
    {"day": D4, "state": "halted", "decisions": {"allowed": 1, "blocked": 0, "no_signal": 2},
     "blocked": {}, "filters": ["rsi", "vix", "vwap"], "open_positions": 0, "job_errors": 0},
]
META = {"from": D1, "to": D4, "seed": 7, "overrides": {"risk.max_trades_per_day": 2}}


def test_summary_metrics_by_hand():
    s = br.summarize(DAYS, TRADES, CAPITAL)
    assert (s["days"], s["trades"], s["wins"], s["losses"]) == (4, 4, 2, 2)
    assert s["win_rate_pct"] == 50.0
    assert s["gross"] == 2300.0            # 1200 - 1800 + 3200 - 300
    assert s["costs"] == 800.0             # 4 x 200
    assert s["net"] == 1500.0              # 1000 - 2000 + 3000 - 500
    assert s["return_pct"] == 1.5          # 1500 / 100000
    assert s["profit_factor"] == 1.6       # (1000 + 3000) / (2000 + 500)
    assert (s["avg_trade"], s["avg_win"], s["avg_loss"]) == (375.0, 2000.0, -1250.0)
    assert (s["best_trade"], s["worst_trade"]) == (3000.0, -2000.0)
    # equity by exit: 100000, 101000, 99000, 102000, 101500; peaks 100000, 101000, 101000, 102000,
    # 102000; drawdowns 0, 0, 2000, 0, 500 -> 2000 rupees, 2000 / 101000 = 1.980198... %
    assert s["max_drawdown"] == 2000.0
    assert s["max_drawdown_pct"] == pytest.approx(1.9801980198, abs=1e-9)
    # daily returns (net / capital): -0.01, 0.03, 0, -0.005; mean 0.00375
    # sample variance: (0.01375^2 + 0.02625^2 + 0.00375^2 + 0.00875^2) / 3 = 0.00096875 / 3
    # Sharpe = 0.00375 / sqrt(0.00096875 / 3) * sqrt(245) = sqrt(42.1875 / 968.75 * 245) = 3.26640...
    assert s["sharpe"] == pytest.approx(3.266398, abs=1e-6)
    # downside deviation: sqrt((0.01^2 + 0.005^2) / 4) = sqrt(0.00003125)
    # Sortino = 0.00375 / sqrt(0.00003125) * sqrt(245) = 3 * sqrt(245 / 20) = 10.5
    assert s["sortino"] == pytest.approx(10.5, abs=1e-9)
    assert s["avg_hold_sec"] == 2475.0     # (1800 + 600 + 3600 + 3900) / 4 = 41 min 15 s


def test_equity_curve_and_drawdowns():
    curve = br.equity_curve(TRADES, CAPITAL)
    assert [e for _, e in curve] == [100_000.0, 101_000.0, 99_000.0, 102_000.0, 101_500.0]
    assert curve[0][0] is None and curve[1][0] == f"{D1}T10:45:00+05:30"
    dds = br.drawdowns([e for _, e in curve])
    assert [d[0] for d in dds] == [100_000.0, 101_000.0, 101_000.0, 102_000.0, 102_000.0]
    assert [d[1] for d in dds] == [0.0, 0.0, 2000.0, 0.0, 500.0]
    assert dds[4][2] == pytest.approx(500 / 102_000 * 100)


def test_day_rows_by_hand():
    rows = br.day_rows(DAYS, TRADES, CAPITAL)
    got = [(r["day"], r["state"], r["trades"], r["wins"], r["gross"], r["costs"], r["net"], r["equity"],
            r["drawdown"]) for r in rows]
    assert got == [(D1, "closed", 2, 1, -600.0, 400.0, -1000.0, 99_000.0, 2000.0),
                   (D2, "closed", 1, 1, 3200.0, 200.0, 3000.0, 102_000.0, 0.0),
                   (D3, "closed", 0, 0, 0.0, 0.0, 0.0, 102_000.0, 0.0),
                   (D4, "halted", 1, 0, -300.0, 200.0, -500.0, 101_500.0, 500.0)]


def test_exits_blocked_and_decisions():
    assert list(br.exits_by_reason(TRADES).items()) == [("trailing_stop", 2), ("eod", 1), ("hard_stop", 1)]
    # a filter evaluated but never failing is listed with 0; "size" comes from the failed lists
    assert list(br.blocked_by_filter(DAYS).items()) == [("rsi", 3), ("size", 1), ("vwap", 1), ("vix", 0)]
    assert br.decisions(DAYS) == {"allowed": 4, "blocked": 5, "no_signal": 9}


def test_undefined_ratios():
    one = [trade("A", D1, "10:15:00", "10:20:00", 500.0, 100.0, "eod")]
    s = br.summarize(DAYS[:1], one, CAPITAL)
    assert s["profit_factor"] is None           # no losing trade
    assert s["sharpe"] is None and s["sortino"] is None  # one day
    s = br.summarize(DAYS[:2], one, CAPITAL)     # returns 0.004, 0: no day below zero
    # mean 0.002, sample stdev sqrt(2 x 0.002^2 / 1) = 0.002 sqrt(2): Sharpe = sqrt(245 / 2)
    assert s["sortino"] is None and s["sharpe"] == pytest.approx(math.sqrt(245 / 2))
    s = br.summarize(DAYS, [], CAPITAL)
    assert s["trades"] == 0 and s["win_rate_pct"] is None and s["avg_hold_sec"] is None
    assert s["max_drawdown"] == 0.0 and s["sharpe"] is None and s["net"] == 0.0
    assert br.profit_factor([-5.0, 0.0]) == 0.0


def test_json_object_is_stable_and_rounded():
    rep = br.build_report(META, DAYS, TRADES, CAPITAL)
    assert list(rep) == ["range", "capital", "overrides", "stopped_by", "summary", "exits_by_reason",
                         "decisions", "blocked_by_filter", "days", "trades"]
    assert rep["range"] == {"from": D1, "to": D4, "seed": 7}
    assert rep["summary"]["max_drawdown_pct"] == 1.9802 and rep["summary"]["sharpe"] == 3.2664
    assert rep["summary"]["sortino"] == 10.5 and rep["summary"]["profit_factor"] == 1.6
    assert [t["position_id"] for t in rep["trades"]] == ["T1", "T2", "T3", "T4"]  # by entry time
    assert rep["trades"][3]["hold_sec"] == 3900.0
    assert set(rep["days"][0]) == {"day", "state", "trades", "wins", "gross", "costs", "net", "equity",
                                   "drawdown", "open_positions", "job_errors"}
    assert json.loads(json.dumps(rep)) == rep


def test_text_report_shows_the_hand_numbers():
    text = br.render_text(br.build_report(META, DAYS, TRADES, CAPITAL))
    for expected in ["Backtest 2026-01-05 .. 2026-01-08, seed 7, capital 100,000.00",
                     "--set risk.max_trades_per_day=2", "4 (2 won, 2 lost)", "50.00 %",
                     "1,500.00 (1.50 % of capital)", "2,300.00", "800.00", "1.60",
                     "375.00 / 2,000.00 / -1,250.00", "3,000.00 / -2,000.00", "2,000.00 (1.98 %)",
                     "3.27", "10.50", "41m 15s", "1h 05m 00s",
                     "Entries blocked by filter (5 blocked, 4 allowed, 9 hourly closes without a signal)"]:
        assert expected in text, expected
    lines = text.splitlines()
    assert any(l.split()[:3] == ["2026-01-05", "closed", "2"] and l.split()[-2:] == ["99,000.00", "2,000.00"]
               for l in lines)
    assert any(l.split() == ["rsi", "3"] for l in lines) and any(l.split() == ["vix", "0"] for l in lines)
    assert "WARNING" not in text


def test_text_report_without_trades_and_with_warnings():
    days = [{**DAYS[0], "job_errors": 2, "open_positions": 1}]
    text = br.render_text(br.build_report({**META, "stopped_by": "SIGINT"}, days, [], CAPITAL))
    assert "(no closed trade)" in text and "profit factor                n/a" in text
    assert "WARNING: 2026-01-05: 2 job error(s), 1 position(s) open at the close" in text
    assert "WARNING: stopped by SIGINT" in text


def test_profit_factor_text_without_losses():
    one = [trade("A", D1, "10:15:00", "10:20:00", 500.0, 100.0, "eod")]
    assert "inf (no losing trade)" in br.render_text(br.build_report(META, DAYS[:1], one, CAPITAL))


def test_sweep_ranks_by_net_then_grid_order():
    def rep(net, trades):
        return {"summary": {"net": net, "trades": trades, "win_rate_pct": 50.0, "max_drawdown": 10.0,
                            "max_drawdown_pct": 0.01, "sharpe": 1.0}}
    rows = br.sweep_rows([({"k": 1}, rep(5.0, 1)), ({"k": 2}, rep(9.0, 2)), ({"k": 3}, rep(5.0, 3))])
    got = [(r["rank"], r["values"]["k"], r["combination"]) for r in rows]
    assert got == [(1, 2, 1), (2, 1, 0), (3, 3, 2)]
    text = br.render_sweep(rows, {"from": D1, "to": D4, "seed": 42, "overrides": {"a.b": [1, 2]}})
    assert "3 combinations, ranked by net P&L" in text and "--set a.b=[1, 2]" in text
    assert text.splitlines()[-3].split()[:3] == ["1", "2", "9.00"]


def test_duration_and_money_formats():
    assert br.duration(None) == "n/a" and br.duration(59.6) == "1m 00s" and br.duration(3725) == "1h 02m 05s"
    assert br.money(-1234.5) == "-1,234.50" and br.money(None) == "n/a"


# --- HTML ------------------------------------------------------------------------------------
def html_report(tmp_path):
    pytest.importorskip("plotly")
    from rustro import backtest_html
    rep = br.build_report(META, [{**d, "job_errors": 0, "open_positions": 0} for d in DAYS], TRADES, CAPITAL)
    return backtest_html.write_report(rep, tmp_path / "backtest.html"), rep


def test_html_is_offline_and_deterministic(tmp_path):
    path, rep = html_report(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and 'id="equity"' in text
    assert "<script src=" not in text.replace("\\", "")  # plotly.js is inline: no CDN, no file
    assert len(text) > 1_000_000 and "Plotly.newPlot" in text
    assert "NIFTYT3CE x 75" in text and "trailing_stop" in text and "2,000.00 (1.98 %)" in text
    from rustro import backtest_html
    again = backtest_html.write_report(rep, tmp_path / "again.html")
    assert again.read_bytes() == path.read_bytes()


def test_html_hint_without_plotly(monkeypatch, tmp_path):
    from rustro import backtest, backtest_html
    monkeypatch.setitem(sys.modules, "plotly", None)  # import plotly -> ImportError
    assert not backtest_html.available()
    note = backtest._html_note(lambda p: pytest.fail("must not write"), tmp_path, "backtest.html")
    assert note == "HTML report not written: plotly is not installed (pip install 'rustro[report]')"
    assert backtest._html_note(None, None, "x.html") == ""


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not chromium(), reason="no chromium binary")
def test_html_renders_in_headless_chromium(tmp_path):
    path, _ = html_report(tmp_path)
    shot = tmp_path / "backtest.png"
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--window-size=1400,1300", "--virtual-time-budget=10000"]
    dom = subprocess.run(base + ["--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # plotly ran: three subplots, the equity line, the trade markers and the daily bars are SVG
    assert dom.stdout.count('class="main-svg"') >= 2
    assert dom.stdout.count('class="trace scatter') >= 4 and 'class="trace bars"' in dom.stdout
    assert dom.stdout.count('class="point"') >= 8  # 4 exit + 4 entry markers (and the 4 bars)
    r = subprocess.run(base + [f"--screenshot={shot}", path.as_uri()], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 30_000  # a blank page is a few kB


def test_html_time_axis_hides_nights_weekends_and_holidays():
    pytest.importorskip("plotly")
    from rustro import backtest_html
    rep = {"days": [{"day": "2026-10-16"}, {"day": "2026-10-19"}, {"day": "2026-10-21"}]}  # 20th: holiday
    assert backtest_html._breaks(rep) == [
        {"bounds": ["sat", "mon"]}, {"bounds": [16, 9], "pattern": "hour"},
        {"values": ["2026-10-20 09:00:00"], "dvalue": 7 * 3600 * 1000}]  # its session only: no overlap


def test_sweep_html(tmp_path):
    pytest.importorskip("plotly")
    from rustro import backtest_html
    days = [{**d, "job_errors": 0, "open_positions": 0} for d in DAYS]
    reps = [br.build_report(META, days, TRADES, CAPITAL), br.build_report(META, days, TRADES[:2], CAPITAL)]
    rows = br.sweep_rows([({"exits.trail_gap_pct": 0.01}, reps[0]), ({"exits.trail_gap_pct": 0.02}, reps[1])])
    text = backtest_html.write_sweep(rows, reps, META, tmp_path / "sweep.html").read_text(encoding="utf-8")
    assert 'id="sweep"' in text and "<script src=" not in text
    assert "#1 exits.trail_gap_pct=0.02" in text  # TRADES[:2] = T3 + T1, net 4000 > 1500: ranked first
