"""The backtest's HTML report: an interactive equity curve with a marker per trade, the drawdown and
the daily P&L (plotly, the optional extra `rustro[report]`). The file is self-contained: plotly.js
is embedded (`include_plotlyjs=True`), so it opens offline; element ids are fixed, so the same
report gives the same bytes."""
from __future__ import annotations

import html
from datetime import date, timedelta
from pathlib import Path

from .backtest_report import _summary_rows, drawdowns, equity_curve, money

BAR_MS = 5 * 3600 * 1000  # a day's bar spans most of its session (09:52 - 14:52)
GREEN, RED, BLUE, GREY = "#1a9850", "#d73027", "#2c7bb6", "#888888"
STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
         "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
         "td,th{padding:3px 12px;border-bottom:1px solid #ddd;text-align:left}"
         "td.n{text-align:right;font-variant-numeric:tabular-nums}")


def available() -> bool:
    try:
        import plotly  # noqa: F401
    except ImportError:
        return False
    return True


def _local(ts: str) -> str:
    """'2026-10-14T10:56:05+05:30' -> '2026-10-14 10:56:05' (plotly.js has no time zones)."""
    return ts[:19].replace("T", " ")


def _points(rep: dict) -> list[tuple[str, float, dict | None]]:
    """The equity curve in time order: the start, each trade's exit, each day's close."""
    capital = rep["capital"]
    trades = [{**t} for t in rep["trades"]]
    curve = equity_curve(trades, capital)
    by_exit = sorted(trades, key=lambda t: (t["exit_time"], t["position_id"]))
    pts = [(f"{rep['days'][0]['day']} 09:15:00", capital, None)] if rep["days"] else []
    pts += [(_local(ts), eq, t) for (ts, eq), t in zip(curve[1:], by_exit)]
    pts += [(f"{d['day']} 15:30:00", d["equity"], None) for d in rep["days"]]
    return sorted(pts, key=lambda p: (p[0], p[2] is None))


def _breaks(rep: dict) -> list[dict]:
    """Hide nights, weekends and holidays on the time axis."""
    days = [d["day"] for d in rep["days"]]
    gaps = []
    if days:
        d, last, have = date.fromisoformat(days[0]), date.fromisoformat(days[-1]), set(days)
        while d <= last:
            if d.weekday() < 5 and d.isoformat() not in have:
                gaps.append(f"{d.isoformat()} 09:00:00")
            d += timedelta(days=1)
    # a holiday hides only its 09:00-16:00: breaks that overlap (a whole day over the nightly
    # break) make plotly draw the line in the wrong places
    out = [dict(bounds=["sat", "mon"]), dict(bounds=[16, 9], pattern="hour")]
    return out + ([dict(values=gaps, dvalue=7 * 3600 * 1000)] if gaps else [])


def _hover(i: int, t: dict) -> str:
    return (f"#{i} {t['symbol']} x {t['qty']}<br>in {t['entry_time'][11:19]} @ {t['entry_price']:.2f}"
            f"<br>out {t['exit_time'][11:19]} @ {t['exit_price']:.2f} ({t['exit_reason']})"
            f"<br>net {money(t['net'])}")


def figure(rep: dict):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    pts = _points(rep)
    xs, eq = [p[0] for p in pts], [p[1] for p in pts]
    dd = [-d[1] for d in drawdowns(eq)]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.55, 0.2, 0.25],
                        subplot_titles=("Equity (capital + closed-trade net P&L)", "Drawdown",
                                        "Daily net P&L"))
    fig.add_trace(go.Scatter(x=xs, y=eq, mode="lines", line=dict(color=BLUE, shape="hv"),
                             name="equity", hovertemplate="%{x}<br>%{y:,.2f}<extra></extra>"), 1, 1)
    order = {t["position_id"]: i for i, t in enumerate(rep["trades"], 1)}
    exits = [p for p in pts if p[2] is not None]
    fig.add_trace(go.Scatter(
        x=[p[0] for p in exits], y=[p[1] for p in exits], mode="markers", name="trade exit",
        marker=dict(size=10, symbol="circle", line=dict(width=1, color="#222"),
                    color=[GREEN if p[2]["net"] > 0 else RED for p in exits]),
        text=[_hover(order[p[2]["position_id"]], p[2]) for p in exits],
        hovertemplate="%{text}<extra></extra>"), 1, 1)
    entries = [(_local(t["entry_time"]), _equity_at(pts, _local(t["entry_time"])), t) for t in rep["trades"]]
    fig.add_trace(go.Scatter(
        x=[e[0] for e in entries], y=[e[1] for e in entries], mode="markers", name="trade entry",
        marker=dict(size=9, symbol="triangle-up", color=GREY),
        text=[f"#{order[e[2]['position_id']]} entry {e[2]['symbol']} @ {e[2]['entry_price']:.2f}"
              for e in entries], hovertemplate="%{text}<extra></extra>"), 1, 1)
    fig.add_trace(go.Scatter(x=xs, y=dd, mode="lines", fill="tozeroy", line=dict(color=RED, shape="hv"),
                             name="drawdown", hovertemplate="%{x}<br>%{y:,.2f}<extra></extra>"), 2, 1)
    fig.add_trace(go.Bar(x=[f"{d['day']} 12:22:30" for d in rep["days"]], y=[d["net"] for d in rep["days"]],
                         width=BAR_MS, marker_color=[GREEN if d["net"] > 0 else RED for d in rep["days"]],
                         name="daily net",
                         hovertemplate="%{x|%Y-%m-%d}<br>net %{y:,.2f}<extra></extra>"), 3, 1)
    if rep["days"]:
        fig.update_xaxes(range=[f"{rep['days'][0]['day']} 09:00:00", f"{rep['days'][-1]['day']} 16:00:00"])
    fig.update_xaxes(rangebreaks=_breaks(rep))
    fig.update_yaxes(tickformat=",.0f")
    fig.update_layout(height=820, template="plotly_white", hovermode="closest",
                      margin=dict(l=70, r=30, t=50, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.04, x=0))
    return fig


def _equity_at(pts: list, x: str) -> float:
    before = [p[1] for p in pts if p[0] <= x]
    return before[-1] if before else pts[0][1]


def _table(rows: list[list], headers: list[str] | None = None, numeric_from: int = 99) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>" if headers else ""
    body = "".join("<tr>" + "".join(f"<td{' class=n' if i >= numeric_from else ''}>{html.escape(str(c))}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def _page(title: str, parts: list[str]) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write_report(rep: dict, path: Path) -> Path:
    r = rep["range"]
    title = f"rustro backtest {r['from']} .. {r['to']} (seed {r['seed']})"
    fig = figure(rep)
    trades = [[i, t["day"], t["entry_time"][11:19], t["exit_time"][11:19], t["symbol"], t["qty"],
               f"{t['entry_price']:.2f}", f"{t['exit_price']:.2f}", t["exit_reason"], money(t["net"])]
              for i, t in enumerate(rep["trades"], 1)]
    parts = [_table(_summary_rows(rep)),
             fig.to_html(full_html=False, include_plotlyjs=True, div_id="equity",
                         config={"displaylogo": False}),
             "<h2>Trades</h2>",
             _table(trades, ["#", "day", "in", "out", "symbol", "qty", "entry", "exit", "reason", "net"], 5)]
    path.write_text(_page(title, parts), encoding="utf-8")
    return path


def write_sweep(rows: list[dict], reports: list[dict], meta: dict, path: Path) -> Path:
    """Every combination's daily equity on one chart, and the ranking table."""
    import plotly.graph_objects as go
    fig = go.Figure()
    for row in rows:
        rep = reports[row["combination"]]
        label = ", ".join(f"{k}={v}" for k, v in row["values"].items())
        fig.add_trace(go.Scatter(x=[d["day"] for d in rep["days"]], y=[d["equity"] for d in rep["days"]],
                                 mode="lines+markers", name=f"#{row['rank']} {label}"))
    fig.update_layout(height=600, template="plotly_white", title="Equity at each day's close",
                      yaxis=dict(tickformat=",.0f"))
    keys = list(rows[0]["values"]) if rows else []
    table = [[r["rank"], *[r["values"][k] for k in keys], money(r["net"]), r["trades"],
              "n/a" if r["win_rate_pct"] is None else f"{r['win_rate_pct']:.2f}",
              money(r["max_drawdown"]), "n/a" if r["sharpe"] is None else f"{r['sharpe']:.2f}"] for r in rows]
    title = f"rustro sweep {meta['from']} .. {meta['to']} (seed {meta['seed']})"
    headers = ["rank", *keys, "net", "trades", "win %", "max drawdown", "Sharpe"]
    parts = [_table(table, headers, 1 + len(keys)),
             fig.to_html(full_html=False, include_plotlyjs=True, div_id="sweep",
                         config={"displaylogo": False})]
    path.write_text(_page(title, parts), encoding="utf-8")
    return path
