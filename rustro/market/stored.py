"""`StoredMarket`: a `MarketData` served from the market-data store, as of its clock.

Nothing from the clock's future: a candle is served once it is complete (and, for a recorded
one, once the recorded bot had received it); a quote is the latest answer asked at or before the
clock, else (no recorded quote) the close of the token's last completed minute bar. Hourly and
daily candles missing from the store are built from its minute bars (session-aligned).

A price the store does not have is a `DataGap` (a BrokerError, so the bot treats it as "market
data unavailable": no entry) and is reported once per token per day through `on_gap` (journaled
as a `data_gap` event). With `fill_missing="model"` a missing option quote is priced instead by
Black-76 from the index and the VIX (rustro/market/options.py) and reported through `on_model`,
so the backtest report flags every trade such a price touched.

`window` (replay only) widens "as of the clock" to the recorded job being replayed: the
answers the recorded bot got during that job are served in the order it got them.
"""
from __future__ import annotations

import bisect
import copy
import math
from datetime import date, datetime, time, timedelta
from typing import Callable

import numpy as np

from ..broker.base import BrokerError
from ..calendar import at
from ..clock import ist
from .base import ONE_DAY, ONE_HOUR, ONE_MINUTE, Bar, Quote, round_to_tick
from .store import MarketStore, QuoteRow, from_s, from_us, us

SESSION_OPEN, SESSION_CLOSE = time(9, 15), time(15, 30)
LENGTH = {ONE_MINUTE: timedelta(minutes=1), ONE_HOUR: timedelta(hours=1), ONE_DAY: timedelta(days=1)}
STALE_BAR_SEC = 300   # a minute bar older than this is no quote
VIX_TOKEN = "99926017"


class DataGap(BrokerError):
    """The store has no price for this token at this instant."""


class StoredMarket:
    def __init__(self, store: MarketStore, clock, fill_missing: str = "none",
                 on_gap: Callable[[dict], None] | None = None,
                 on_model: Callable[[dict], None] | None = None, rate: float = 0.065):
        self.store, self.clock, self.fill_missing = store, clock, fill_missing
        self.on_gap, self.on_model, self.rate = on_gap, on_model, rate
        self.s = _Shared()              # the day's data and the replay window, shared by views
        self.channel = "desk"           # who asks: the desk, or the paper broker (`view`)
        self._served: dict[tuple, int] = {}

    def view(self, channel: str) -> "StoredMarket":
        """The same data for another asker: the paper broker is served the answers its recorded
        counterpart got, else (a live day: the exchange priced fills) the desk's, unconsumed."""
        other = copy.copy(self)
        other.channel, other._served = channel, {}
        return other

    # compatibility with the attribute names the rest of this module reads
    window = property(lambda self: self.s.window)

    # --- the day's data, loaded once -------------------------------------------------------
    def _now(self) -> datetime:
        return ist(self.clock.now())

    def _load_day(self) -> date:
        d, sh = self._now().date(), self.s
        if d != sh.day:
            sh.day, sh.minutes, sh.master, sh.by_token = d, {}, None, {}
            lo = us(at(d, time(0)))
            sh.quotes = {}
            for q in self.store.quotes(lo, lo + 86_400_000_000):
                sh.quotes.setdefault((q.token, q.kind, q.channel), []).append(q)
            sh.asked = {k: [q.asked for q in v] for k, v in sh.quotes.items()}
        return d

    def _day_minutes(self, token: str) -> tuple[list[int], list[tuple]]:
        d = self._load_day()
        if token not in self.s.minutes:
            lo = int(at(d, time(0)).timestamp())
            rows = self.store.bars(token, ONE_MINUTE, lo, lo + 86_400)
            self.s.minutes[token] = ([r[0] for r in rows], rows)
        return self.s.minutes[token]

    # --- instruments -------------------------------------------------------------------------
    def instrument_master(self) -> list[dict]:
        """The day's stored master, else every stored contract not yet expired that day."""
        d, sh = self._load_day(), self.s
        if sh.master is None:
            sh.master = self.store.master(d) or self.store.directory(listed_on=d)
            sh.by_token = {str(r.get("token")): r for r in sh.master}
        return sh.master

    # --- candles -----------------------------------------------------------------------------
    def candles(self, exchange: str, token: str, interval: str, start: datetime,
                end: datetime) -> list[Bar]:
        now = self._now()
        horizon = self.window[1] if self.window else us(now) + 1
        lo, hi = int(ist(start).timestamp()), int(min(ist(end), now).timestamp()) + 1
        out = []
        for ts, o, h, low, c, v, _oi, seen in self.store.bars(token, interval, lo, hi):
            begin = from_s(ts)
            if begin >= end or (seen is None and _bar_end(begin, interval) > now) or (
                    seen is not None and seen >= horizon):
                continue
            out.append(Bar(begin, o, h, low, c, v))
        if interval in (ONE_HOUR, ONE_DAY) and self.window is None:
            # days the store holds no such bars for: built from its minute bars (not in a
            # replay, where only what the recorded bot received is served)
            held = {b.start.date() for b in out}
            built = [b for b in self._built(token, interval, ist(start), min(ist(end), now), now,
                                            held) if b.start.date() not in held]
            if built:
                out = sorted(out + built, key=lambda b: b.start)
        return out

    def _built(self, token: str, interval: str, start: datetime, end: datetime,
               now: datetime, held: set[date] = frozenset()) -> list[Bar]:
        """Hourly or daily bars from the stored minute bars, complete ones only. The bars of
        days before today are built once per process (`_BUILT`): history does not change."""
        today = now.date()
        days = [start.date() + timedelta(days=i) for i in range((end.date() - start.date()).days + 1)
                if start.date() + timedelta(days=i) not in held]
        key = (str(self.store.path), token, interval)
        cache = _BUILT.setdefault(key, {})
        missing = [d for d in days if d < today and d not in cache]
        if missing:
            rows = []
            for first, last in _runs(missing):  # one range query per run of consecutive days
                rows += self.store.bars(token, ONE_MINUTE, int(at(first, time(0)).timestamp()),
                                        int(at(last, time(0)).timestamp()) + 86_400)
            built = _aggregate(rows, interval)
            for d in missing:
                cache[d] = built.get(d, [])
            if len(cache) > _BUILT_MAX_DAYS:
                for d in sorted(cache)[:len(cache) - _BUILT_MAX_DAYS]:
                    del cache[d]
        out: list[Bar] = []
        for d in days:
            if d < today:
                bars = cache.get(d)
                if bars is None:
                    continue
            else:
                lo = int(at(d, time(0)).timestamp())
                bars = _aggregate(self.store.bars(token, ONE_MINUTE, lo, lo + 86_400),
                                  interval).get(d, [])
            for b in bars:
                if start <= b.start < end and _bar_end(b.start, interval) <= now:
                    out.append(b)
        return out

    # --- prices ------------------------------------------------------------------------------
    def _answers(self, token: str, kind: str, channel: str) -> tuple[list[QuoteRow], list[int]]:
        sh = self.s
        rows = sh.quotes.get((token, kind, channel), [])
        errors = sh.quotes.get((token, kind + "_error", channel), [])
        if errors:
            rows = sorted(rows + errors, key=lambda q: q.asked)
            return rows, [q.asked for q in rows]
        return rows, sh.asked.get((token, kind, channel), [])

    def _recorded(self, token: str, kind: str) -> QuoteRow | None:
        """The recorded answer to serve now. In a replay window: this asker's n-th answer of the
        window for its n-th ask (the last once they run out), the clock moving on to the instant
        it was asked. Otherwise the latest answer asked at or before the clock; a paper broker
        with no answer of its own in the window is served the desk's that way."""
        self._load_day()
        now = us(self._now())
        for channel in dict.fromkeys((self.channel, "desk")):
            rows, keys = self._answers(token, kind, channel)
            if not keys:
                continue
            own = channel == self.channel
            if own and self.s.window:
                i0, i1 = (bisect.bisect_left(keys, x) for x in self.s.window)
                if i0 < i1:
                    n = self._served.get((token, kind), 0)
                    self._served[(token, kind)] = n + 1
                    row = rows[min(i0 + n, i1 - 1)]
                    if row.asked > now and hasattr(self.clock, "set"):
                        self.clock.set(from_us(row.asked))  # the clock follows the recording
                    return _usable(row, kind, token)
                if self.channel != "desk":
                    continue
            i = bisect.bisect_right(keys, now) - 1
            if i >= 0:
                return _usable(rows[i], kind, token)
        return None

    def add_answers(self, rows: list[QuoteRow]) -> None:
        """Answers known from elsewhere than the store (a replay's exchange fills), by asker."""
        self._load_day()
        sh = self.s
        for q in rows:
            sh.quotes.setdefault((q.token, q.kind, q.channel), []).append(q)
        for key in {(q.token, q.kind, q.channel) for q in rows}:
            sh.quotes[key].sort(key=lambda q: q.asked)
            sh.asked[key] = [q.asked for q in sh.quotes[key]]

    def begin_window(self, lo: datetime, hi: datetime) -> None:
        """Replay: serve the answers recorded during the job run in [lo, hi)."""
        self.s.window, self._served = (us(lo), us(hi)), {}
        self.s.windows += 1

    def _bar_close(self, token: str) -> tuple[float, datetime] | None:
        keys, rows = self._day_minutes(token)
        now = self._now()
        i = bisect.bisect_right(keys, int((now - timedelta(minutes=1)).timestamp())) - 1
        if i < 0 or rows[i][0] < now.timestamp() - STALE_BAR_SEC - 60:
            return None
        return rows[i][4], from_s(rows[i][0] + 60)

    def _gap(self, token: str, kind: str) -> DataGap:
        d = self._load_day()
        if (token, kind) not in self.s.reported and self.on_gap is not None:
            self.s.reported.add((token, kind))
            self.instrument_master()
            inst = self.s.by_token.get(token, {})
            self.on_gap({"underlying": inst.get("name") or "market", "token": token,
                         "symbol": inst.get("symbol", ""), "call": kind, "day": d,
                         "reason": f"no {kind} in the market-data store at this instant",
                         "action": "no entry" if kind == "quote" else "unavailable"})
        return DataGap(f"{kind}: no price for token {token} at {self._now():%Y-%m-%d %H:%M:%S} "
                       f"in the market-data store")

    def ltp(self, exchange: str, token: str) -> float:
        row = self._recorded(token, "ltp") or self._recorded(token, "quote")
        if row is not None:
            return row.ltp
        got = self._bar_close(token)
        if got is None:
            raise self._gap(token, "ltp")
        return got[0]

    def vix(self) -> float:
        row = self._recorded(VIX_TOKEN, "vix") or self._recorded(VIX_TOKEN, "ltp")
        if row is not None:
            return row.ltp
        return self.ltp("NSE", VIX_TOKEN)

    def quote(self, exchange: str, token: str) -> Quote:
        row = self._recorded(token, "quote")
        if row is not None:
            return Quote(token, row.ltp, row.bid, row.ask, from_us(row.ts))
        got = self._bar_close(token)
        if got is not None:
            return Quote(token, got[0], got[0], got[0], got[1])
        if self.fill_missing == "model":
            modeled = self._modeled(token)
            if modeled is not None:
                return modeled
        raise self._gap(token, "quote")

    def _modeled(self, token: str) -> Quote | None:
        """Black-76 from the index and the VIX at this instant (--fill-missing model)."""
        from .options import black76_scalar, implied_vol_scalar, option_quote_from_price
        self.instrument_master()
        inst = self.s.by_token.get(token)
        if not inst or inst.get("instrumenttype") != "OPTIDX":
            return None
        spot_row = next((r for r in self.s.master if r.get("instrumenttype") == "AMXIDX"
                         and r.get("name") in (inst["name"], _INDEX_NAMES.get(inst["name"]))), None)
        try:
            spot = self.ltp(spot_row["exch_seg"], str(spot_row["token"])) if spot_row else None
            vix = self.vix()
        except DataGap:
            return None
        if spot is None:
            return None
        expiry = datetime.strptime(inst["expiry"].title(), "%d%b%Y")
        t = max((at(expiry.date(), SESSION_CLOSE) - self._now()).total_seconds(), 60.0) / (365 * 86400)
        strike = float(inst["strike"]) / 100
        fwd = spot * math.exp(self.rate * t)
        iv = implied_vol_scalar(vix, strike, fwd, t)
        theo = black76_scalar(fwd, strike, t, iv, self.rate, inst["symbol"].endswith("CE"))
        bid, ask = option_quote_from_price(max(theo, 0.0), math.log(strike / fwd))
        ltp = round_to_tick(max((bid + ask) / 2, 0.05))
        if self.on_model is not None and (token, "model") not in self.s.reported:
            self.s.reported.add((token, "model"))
            self.on_model({"token": token, "symbol": inst["symbol"], "spot": spot, "vix": vix,
                           "reason": "option quote missing from the store: Black-76 price"})
        return Quote(token, ltp, bid, ask, self._now())

    def next_change(self, now: datetime, watch=None) -> datetime | None:
        """Prices here move at minute boundaries and at recorded answers: the next of either."""
        nxt = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        self._load_day()
        later = [keys[bisect.bisect_right(keys, us(now))]
                 for keys in self.s.asked.values() if keys and keys[-1] > us(now)]
        return min([nxt] + [from_us(a) for a in later])


def _usable(row: QuoteRow, kind: str, token: str) -> QuoteRow:
    if row.kind.endswith("_error"):
        raise DataGap(f"{kind}: token {token} failed at this point of the recorded day")
    return row


class _Shared:
    """A StoredMarket's day (minute bars, recorded answers, master) and replay window."""

    def __init__(self):
        self.day: date | None = None
        self.minutes: dict[str, tuple[list[int], list[tuple]]] = {}
        self.quotes: dict[tuple[str, str, str], list[QuoteRow]] = {}
        self.asked: dict[tuple[str, str, str], list[int]] = {}
        self.master: list[dict] | None = None
        self.by_token: dict[str, dict] = {}
        self.reported: set[tuple[str, str]] = set()
        self.window: tuple[int, int] | None = None
        self.windows = 0


_BUILT: dict[tuple, dict[date, list[Bar]]] = {}
_BUILT_MAX_DAYS = 5000


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive calendar days of the ascending `days`, as (first, last) runs."""
    runs: list[tuple[date, date]] = []
    for d in days:
        if runs and runs[-1][1] + timedelta(days=1) == d:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    return runs


def _bar_end(start: datetime, interval: str) -> datetime:
    if interval not in (ONE_HOUR, ONE_DAY):
        return start + LENGTH.get(interval, timedelta(minutes=1))
    close_at = at(start.date(), SESSION_CLOSE)
    return close_at if interval == ONE_DAY else min(start + LENGTH[interval], close_at)


IST_SEC = 19_800                       # +05:30 in seconds
OPEN_SEC = 9 * 3600 + 15 * 60           # 09:15 after midnight IST


def _aggregate(rows: list[tuple], interval: str) -> dict[date, list[Bar]]:
    """Session-aligned hourly (from 09:15) or daily bars of minute rows, by day (numpy: a year of
    minute bars is ~90 000 rows)."""
    if not rows:
        return {}
    a = np.array([r[:6] for r in rows], dtype=np.float64)
    ts = a[:, 0].astype(np.int64)
    local = ts + IST_SEC
    midnight = local - local % 86_400
    if interval == ONE_DAY:
        key = midnight
    else:
        key = midnight + OPEN_SEC + ((local - midnight - OPEN_SEC) // 3600) * 3600
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)] - 1
    high = np.maximum.reduceat(a[:, 2], starts)
    low = np.minimum.reduceat(a[:, 3], starts)
    vol = np.add.reduceat(a[:, 5], starts)
    out: dict[date, list[Bar]] = {}
    for i, (s0, e0) in enumerate(zip(starts.tolist(), ends.tolist())):
        begin = from_s(int(key[s0]) - IST_SEC)
        out.setdefault(begin.date(), []).append(
            Bar(begin, float(a[s0, 1]), float(high[i]), float(low[i]), float(a[e0, 4]),
                float(vol[i])))
    return out


def put_derived(store: MarketStore, token: str, minute_rows: list[tuple],
                intervals: tuple[str, ...] = (ONE_HOUR, ONE_DAY)) -> None:
    """Store the session-aligned hourly and daily bars of `minute_rows` (history, no `seen`), so a
    backtest reads a year of daily bars as ~250 rows instead of building them from ~90 000."""
    for interval in intervals:
        store.put_bars(token, interval, [
            (int(b.start.timestamp()), b.open, b.high, b.low, b.close, b.volume, None)
            for bars in _aggregate(minute_rows, interval).values() for b in bars])


# The index rows' `name` in Angel's master differs from the option rows' (spec section 5).
_INDEX_NAMES = {"NIFTY": "Nifty 50", "BANKNIFTY": "Nifty Bank", "FINNIFTY": "Nifty Fin Service"}
