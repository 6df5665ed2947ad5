"""Backtest metrics and their text / JSON rendering: pure functions over closed trades and days.

Inputs are plain dicts, as `rustro.backtest` reads them from the journal (`positions`, the
`v_trades` columns, and `entry_decision` events):

- a trade: day, position_id, underlying, option_type, symbol, qty, entry_time, entry_price,
  exit_time, exit_price, exit_reason, gross, costs, net (times ISO 8601, money in rupees);
- a day: day, state, job_errors, open_positions, decisions {allowed, blocked, no_signal},
  blocked {filter name: entries it blocked}.

The formulas (README "Backtests" repeats them):

- win: a trade whose net P&L is > 0; loss: net <= 0 (as `v_daily_pnl`); win rate = wins / trades.
- profit factor = sum of winning nets / |sum of losing nets|; undefined (null, "n/a") without a
  losing net below zero.
- equity after the i-th closed trade (trades in exit-time order) E_i = capital + sum of their nets,
  E_0 = capital; drawdown D_i = max(E_0..E_i) - E_i; max drawdown = max D_i in rupees, and
  max drawdown % = max of D_i / max(E_0..E_i) * 100 (both from the same closed-trade curve).
- daily return r_d = net P&L of day d / capital, for every simulated trading day (0 without trades);
  Sharpe = mean(r) / stdev(r) * sqrt(245) with the sample stdev (n - 1);
  Sortino = mean(r) / sqrt(sum(min(r_d, 0)^2) / n) * sqrt(245) (downside deviation, target 0).
  Both undefined (null) with fewer than two days or a zero denominator. Capital is fixed (it does
  not compound), so the ratios equal those of the rupee P&L.
- hold time = exit_time - entry_time; the average is over closed trades.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from datetime import datetime

from tabulate import tabulate

TRADING_DAYS_PER_YEAR = 245  # NSE sessions in a year, about: the annualisation of the daily ratios
REPORT_HINT = "pip install 'rustro[report]'"


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def by_entry(trades: list[dict]) -> list[dict]:
    return sorted(trades, key=lambda t: (t["entry_time"], t["position_id"]))


def by_exit(trades: list[dict]) -> list[dict]:
    return sorted(trades, key=lambda t: (t["exit_time"], t["position_id"]))


# --- the metrics ---------------------------------------------------------------------------
def profit_factor(nets: list[float]) -> float | None:
    won = math.fsum(n for n in nets if n > 0)
    lost = -math.fsum(n for n in nets if n < 0)
    return won / lost if lost > 0 else None


def equity_curve(trades: list[dict], capital: float) -> list[tuple[str | None, float]]:
    """[(None, capital), (exit_time, equity after that trade), ...] in exit-time order."""
    out: list[tuple[str | None, float]] = [(None, capital)]
    nets: list[float] = []
    for t in by_exit(trades):
        nets.append(t["net"])
        out.append((t["exit_time"], capital + math.fsum(nets)))
    return out


def drawdowns(equity: list[float]) -> list[tuple[float, float, float]]:
    """(peak, drawdown in rupees, drawdown in % of the peak) at each point of an equity curve."""
    out, peak = [], -math.inf
    for e in equity:
        peak = max(peak, e)
        dd = peak - e
        out.append((peak, dd, dd / peak * 100 if peak > 0 else 0.0))
    return out


def max_drawdown(equity: list[float]) -> tuple[float, float]:
    dds = drawdowns(equity)
    return max(d[1] for d in dds), max(d[2] for d in dds)


def daily_returns(days: list[dict], trades: list[dict], capital: float) -> list[float]:
    return [math.fsum(t["net"] for t in trades if t["day"] == d["day"]) / capital for d in days]


def sharpe(returns: list[float]) -> float | None:
    if len(returns) < 2:
        return None
    sd = statistics.stdev(returns)
    return statistics.fmean(returns) / sd * math.sqrt(TRADING_DAYS_PER_YEAR) if sd > 0 else None


def sortino(returns: list[float]) -> float | None:
    if len(returns) < 2:
        return None
    downside = math.sqrt(math.fsum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    return statistics.fmean(returns) / downside * math.sqrt(TRADING_DAYS_PER_YEAR) if downside > 0 else None


def hold_seconds(trade: dict) -> float:
    return (_ts(trade["exit_time"]) - _ts(trade["entry_time"])).total_seconds()


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def summarize(days: list[dict], trades: list[dict], capital: float) -> dict:
    """Every summary metric, unrounded (see the module docstring for the formulas)."""
    nets = [t["net"] for t in by_entry(trades)]
    wins, losses = [n for n in nets if n > 0], [n for n in nets if n <= 0]
    dd, dd_pct = max_drawdown([e for _, e in equity_curve(trades, capital)])
    rets = daily_returns(days, trades, capital)
    net = math.fsum(nets)
    return {
        "days": len(days), "trades": len(trades), "wins": len(wins), "losses": len(losses),
        "win_rate_pct": len(wins) / len(nets) * 100 if nets else None,
        "gross": math.fsum(t["gross"] for t in trades), "costs": math.fsum(t["costs"] for t in trades),
        "net": net, "return_pct": net / capital * 100,
        "profit_factor": profit_factor(nets),
        "avg_trade": _mean(nets), "avg_win": _mean(wins), "avg_loss": _mean(losses),
        "best_trade": max(nets) if nets else None, "worst_trade": min(nets) if nets else None,
        "max_drawdown": dd, "max_drawdown_pct": dd_pct,
        "sharpe": sharpe(rets), "sortino": sortino(rets),
        "avg_hold_sec": _mean([hold_seconds(t) for t in trades]),
    }


def exits_by_reason(trades: list[dict]) -> dict[str, int]:
    counts = Counter(t["exit_reason"] or "unknown" for t in trades)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def blocked_by_filter(days: list[dict]) -> dict[str, int]:
    """Entries each filter blocked (a blocked entry counts once for every filter that failed)."""
    counts: Counter = Counter()
    for d in days:
        counts.update({name: 0 for name in d.get("filters", ())})
        counts.update(d.get("blocked", {}))
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def decisions(days: list[dict]) -> dict[str, int]:
    out = {"allowed": 0, "blocked": 0, "no_signal": 0}
    for d in days:
        for k in out:
            out[k] += d.get("decisions", {}).get(k, 0)
    return out


def day_rows(days: list[dict], trades: list[dict], capital: float) -> list[dict]:
    """Per day: trades, wins, gross, costs, net, and equity and drawdown at the day's end."""
    curve = equity_curve(trades, capital)
    dds = drawdowns([e for _, e in curve])
    rows = []
    for d in days:
        mine = [t for t in trades if t["day"] == d["day"]]
        upto = max((i for i, (ts, _) in enumerate(curve) if ts is None or ts[:10] <= d["day"]))
        rows.append({"day": d["day"], "state": d["state"], "trades": len(mine),
                     "wins": sum(t["net"] > 0 for t in mine),
                     "gross": math.fsum(t["gross"] for t in mine),
                     "costs": math.fsum(t["costs"] for t in mine),
                     "net": math.fsum(t["net"] for t in mine), "equity": curve[upto][1],
                     "drawdown": dds[upto][1], "open_positions": d.get("open_positions", 0),
                     "job_errors": d.get("job_errors", 0)})
    return rows


# --- the stable object (--json) -------------------------------------------------------------
def _r(x, nd=2):
    return None if x is None else round(x, nd)


_ROUND = {"win_rate_pct": 2, "return_pct": 4, "max_drawdown_pct": 4, "profit_factor": 4,
          "sharpe": 4, "sortino": 4, "avg_hold_sec": 1}


def build_report(meta: dict, days: list[dict], trades: list[dict], capital: float) -> dict:
    """The report object `backtest --json` prints; its keys are stable. meta: from, to, seed,
    overrides (--set) and anything else to echo."""
    summary = {k: (_r(v, _ROUND.get(k, 2)) if isinstance(v, float) else v)
               for k, v in summarize(days, trades, capital).items()}
    rows = [{k: (_r(v) if isinstance(v, float) else v) for k, v in r.items()}
            for r in day_rows(days, trades, capital)]
    trade_rows = [{**{k: t[k] for k in TRADE_KEYS}, "hold_sec": hold_seconds(t),
                   "modeled": bool(t.get("modeled"))} for t in by_entry(trades)]
    return {"range": {"from": meta["from"], "to": meta["to"], "seed": meta["seed"]},
            "capital": capital, "overrides": meta.get("overrides", {}),
            "stopped_by": meta.get("stopped_by"), "summary": summary,
            "exits_by_reason": exits_by_reason(trades), "decisions": decisions(days),
            "blocked_by_filter": blocked_by_filter(days), "days": rows, "trades": trade_rows}


TRADE_KEYS = ("day", "position_id", "underlying", "option_type", "symbol", "qty", "entry_time",
              "entry_price", "exit_time", "exit_price", "exit_reason", "gross", "costs", "net")


# --- text -----------------------------------------------------------------------------------
def money(x) -> str:
    return "n/a" if x is None else f"{x:,.2f}"


def ratio(x, nd=2) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def duration(sec) -> str:
    if sec is None:
        return "n/a"
    s = int(round(sec))
    h, m = divmod(s // 60, 60)
    return f"{h}h {m:02d}m {s % 60:02d}s" if h else f"{m}m {s % 60:02d}s"


def _summary_rows(rep: dict) -> list[list[str]]:
    s = rep["summary"]
    pf = s["profit_factor"]
    pf_text = ratio(pf) if pf is not None else ("inf (no losing trade)" if s["wins"] else "n/a")
    return [
        ["trading days", str(s["days"])],
        ["trades", f"{s['trades']} ({s['wins']} won, {s['losses']} lost)"],
        ["win rate", "n/a" if s["win_rate_pct"] is None else f"{s['win_rate_pct']:.2f} %"],
        ["gross P&L", money(s["gross"])], ["costs", money(s["costs"])],
        ["net P&L", f"{money(s['net'])} ({s['return_pct']:.2f} % of capital)"],
        ["profit factor", pf_text],
        ["avg trade / win / loss",
         f"{money(s['avg_trade'])} / {money(s['avg_win'])} / {money(s['avg_loss'])}"],
        ["best / worst trade", f"{money(s['best_trade'])} / {money(s['worst_trade'])}"],
        ["max drawdown", f"{money(s['max_drawdown'])} ({s['max_drawdown_pct']:.2f} %)"],
        ["Sharpe (daily, x sqrt 245)", ratio(s["sharpe"])],
        ["Sortino (daily, x sqrt 245)", ratio(s["sortino"])],
        ["avg hold", duration(s["avg_hold_sec"])],
    ]


def _table(title: str, rows: list[list], headers: list[str], empty: str, align: str = "") -> str:
    """align: one letter per column, l or r (default: the first left, the others right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    cols = tuple("right" if a == "r" else "left" for a in align)
    body = (tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True,
                     colalign=cols) if rows else f"  ({empty})")
    return f"{title}\n{body}"


def render_text(rep: dict) -> str:
    r = rep["range"]
    head = (f"Backtest {r['from']} .. {r['to']}, seed {r['seed']}, capital {money(rep['capital'])}"
            + "".join(f"\n  --set {k}={_value(v)}" for k, v in rep["overrides"].items()))
    out = [head, _table("Summary", _summary_rows(rep), ["metric", "value"], "", "ll")]
    out.append(_table("Days", [[d["day"], d["state"], d["trades"], d["wins"], money(d["gross"]),
                                money(d["costs"]), money(d["net"]), money(d["equity"]),
                                money(d["drawdown"])] for d in rep["days"]],
                      ["day", "state", "trades", "wins", "gross", "costs", "net", "equity", "drawdown"],
                      "no trading day in the range", "llrrrrrrr"))
    out.append(_table("Trades", [[i, t["day"], t["entry_time"][11:19], t["exit_time"][11:19],
                                  ("*" if t.get("modeled") else "") + t["symbol"],
                                  t["qty"], f"{t['entry_price']:.2f}", f"{t['exit_price']:.2f}",
                                  duration(t["hold_sec"]), t["exit_reason"], money(t["gross"]),
                                  money(t["costs"]), money(t["net"])]
                                 for i, t in enumerate(rep["trades"], 1)],
                      ["#", "day", "in", "out", "symbol", "qty", "entry", "exit", "hold", "reason",
                       "gross", "costs", "net"], "no closed trade", "rllllrrrrlrrr"))
    out.append(_table("Exits by reason", [[k, v] for k, v in rep["exits_by_reason"].items()],
                      ["reason", "trades"], "no closed trade"))
    dec = rep["decisions"]
    out.append(_table(f"Entries blocked by filter ({dec['blocked']} blocked, {dec['allowed']} allowed, "
                      f"{dec['no_signal']} hourly closes without a signal)",
                      [[k, v] for k, v in rep["blocked_by_filter"].items()],
                      ["filter", "entries blocked"], "no entry reached the filters"))
    if any(t.get("modeled") for t in rep["trades"]):
        out.append("* a missing option quote of this trade's contract was priced by Black-76 from "
                   "the index and VIX (--fill-missing model): not a market price")
    if rep["stopped_by"]:
        out.append(f"WARNING: stopped by {rep['stopped_by']}: the days after the last one above did not run")
    warn = [d for d in rep["days"] if d["job_errors"] or d["open_positions"]]
    for d in warn:
        out.append(f"WARNING: {d['day']}: {d['job_errors']} job error(s), {d['open_positions']} "
                   f"position(s) open at the close (python rustro.py status --day {d['day']})")
    return "\n\n".join(out)


# --- parameter sweeps -----------------------------------------------------------------------
def sweep_rows(combos: list[tuple[dict, dict]]) -> list[dict]:
    """combos: [(values {key: value}, report)] in grid order -> rows ranked by net P&L (highest
    first; ties keep grid order)."""
    rows = []
    for i, (values, rep) in enumerate(combos):
        s = rep["summary"]
        rows.append({"combination": i, "values": values, "net": s["net"], "trades": s["trades"],
                     "win_rate_pct": s["win_rate_pct"], "max_drawdown": s["max_drawdown"],
                     "max_drawdown_pct": s["max_drawdown_pct"], "sharpe": s["sharpe"]})
    rows.sort(key=lambda r: (-r["net"], r["combination"]))
    return [{"rank": k, **r} for k, r in enumerate(rows, 1)]


def render_sweep(rows: list[dict], meta: dict) -> str:
    keys = list(rows[0]["values"]) if rows else []
    sets = "".join(f"\n  --set {k}={_value(v)}" for k, v in meta.get("overrides", {}).items())
    head = (f"Sweep {meta['from']} .. {meta['to']}, seed {meta['seed']}: {len(rows)} combinations, "
            f"ranked by net P&L{sets}")
    table = tabulate([[r["rank"], *[_value(r["values"][k]) for k in keys], money(r["net"]), r["trades"],
                       "n/a" if r["win_rate_pct"] is None else f"{r['win_rate_pct']:.2f}",
                       f"{money(r['max_drawdown'])} ({r['max_drawdown_pct']:.2f} %)", ratio(r["sharpe"])]
                      for r in rows],
                     headers=["rank", *keys, "net", "trades", "win %", "max drawdown", "Sharpe"],
                     tablefmt="simple", disable_numparse=True,
                     colalign=("right",) * (len(keys) + 6))
    return f"{head}\n\n{table}"


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)
