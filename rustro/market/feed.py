"""What the bot knows of the market today, per underlying: contracts, bars, indicator inputs, gaps.

Reads only through a `MarketData` (synthetic, Angel One, or the sandbox), so every mode sees the
same numbers the same way. Pure computations live in `indicators` and `strategy`; this module
fetches, windows and notices gaps.

It is also the boundary where impossible market data stops, whatever the source: a candle with a
zero/negative/NaN price, high < low, open or close outside [low, high] or negative volume is
dropped (so it is a missing bar to gap detection) and kept in `rejected`; the rows the Angel parser
refused for the same call are collected there too. The desk drains them (`drain_rejected`) and
journals each as a `data_error` event. A bad VIX, spot or quote raises DataError (a BrokerError):
"market data unavailable" to the caller.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from .. import indicators
from ..calendar import at, dte
from .bars import BarWindow, find_gaps
from .base import (ONE_DAY, ONE_HOUR, ONE_MINUTE, Bar, DataError, Quote, check_bar,
                   check_price)
from .instruments import Instrument, InstrumentMaster

log = logging.getLogger(__name__)
MAX_REJECTED = 1000   # kept between drains; older ones are counted, not kept


@dataclass
class UnderlyingFeed:
    name: str
    spot: Instrument
    future: Instrument
    strike_step: int
    freeze_qty: int
    hourly: BarWindow


@dataclass(frozen=True)
class HourlyView:
    """Indicator values on the last closed hourly bar of one underlying."""
    bar_start: datetime
    close: float
    adx: float
    plus_di: float
    minus_di: float
    rsi: float
    ema: float
    bars: int


class MarketFeed:
    def __init__(self, market, clock, cfg, master: InstrumentMaster, day: date):
        self.market, self.clock, self.cfg, self.master, self.day = market, clock, cfg, master, day
        self.vix_instrument = master.vix()
        self.rejected: list[dict] = []
        self.rejected_dropped = 0
        self.underlyings: dict[str, UnderlyingFeed] = {}
        for u in cfg.underlyings:
            master.require_options(u.name)
            spot = master.spot(u.spot_name)
            self.underlyings[u.name] = UnderlyingFeed(
                u.name, spot, master.near_future(u.name, day), u.strike_step, u.freeze_qty,
                BarWindow(spot.token, ONE_HOUR, maxlen=cfg.data.indicator_history_bars + 100))

    # --- refused data ----------------------------------------------------------------------
    def _reject(self, err: DataError, inst: Instrument, interval: str) -> None:
        payload = {**err.payload(), "exchange": inst.exchange, "token": inst.token,
                   "symbol": inst.symbol, "interval": interval}
        log.warning("market data refused: %s", payload["error"])
        self.rejected.append(payload)
        if len(self.rejected) > MAX_REJECTED:
            del self.rejected[0]
            self.rejected_dropped += 1

    def drain_rejected(self) -> list[dict]:
        """Rows refused since the last drain, oldest first, as JSON-safe `data_error` payloads
        (route, index, field, value, error, exchange, token, symbol, interval, row)."""
        out, self.rejected = self.rejected, []
        if self.rejected_dropped:
            out.insert(0, {"route": "feed", "error": f"{self.rejected_dropped} older refused rows "
                                                     f"dropped (more than {MAX_REJECTED} undrained)"})
            self.rejected_dropped = 0
        return out

    def _candles(self, inst: Instrument, interval: str, start: datetime, end: datetime) -> list[Bar]:
        """`market.candles` without the bars we refuse; a refused bar is a missing bar."""
        drain = getattr(self.market, "drain_rejected", None)
        try:
            got = self.market.candles(inst.exchange, inst.token, interval, start, end)
        finally:
            for err in drain() if drain is not None else ():   # refused by the source's parser
                self._reject(err, inst, interval)
        bars = []
        for i, b in enumerate(got):
            try:
                bars.append(check_bar(b, "candles", i))
            except DataError as err:
                self._reject(err, inst, interval)
        return bars

    # --- daily -------------------------------------------------------------------------------
    def daily_bars(self, name: str) -> list[Bar]:
        """Completed daily sessions before today (today's forming bar excluded)."""
        f = self.underlyings[name]
        start = at(self.day, self.cfg.session.market_open) - timedelta(days=self.cfg.data.daily_history_days)
        bars = self._candles(f.spot, ONE_DAY, start, at(self.day, self.cfg.session.pre_open))
        return [b for b in bars if b.start.date() < self.day]

    # --- hourly ------------------------------------------------------------------------------
    def load_hourly(self, name: str) -> int:
        """Fill the hourly window: enough history for `indicator_history_bars` closed bars."""
        f = self.underlyings[name]
        sessions = math.ceil(self.cfg.data.indicator_history_bars / 7)  # 7 hourly bars a session
        days_back = math.ceil(sessions * 7 / 5) + 15                   # weekends and holidays
        start = at(self.day - timedelta(days=days_back), self.cfg.session.market_open)
        f.hourly.extend(self._candles(f.spot, ONE_HOUR, start, self.clock.now()))
        return len(f.hourly)

    def refresh_hourly(self, name: str) -> list[Bar]:
        """Fetch today's closed hourly bars; returns the ones not seen before (a repeat replaces)."""
        f = self.underlyings[name]
        bars = self._candles(f.spot, ONE_HOUR, at(self.day, self.cfg.session.market_open),
                             self.clock.now())
        return [b for b in bars if f.hourly.upsert(b)]

    def missing_hourly(self, name: str, now: datetime) -> list[datetime]:
        """Session hourly bars that should have closed by `now` but are not in the window."""
        s = self.cfg.session
        today = self.underlyings[name].hourly.on(self.day)
        return find_gaps(today, self.day, now, ONE_HOUR, s.market_open, s.market_close,
                         s.bar_ready_grace_sec)

    def hourly_view(self, name: str) -> HourlyView | None:
        f = self.underlyings[name]
        a = f.hourly.arrays()
        if len(a["close"]) == 0:
            return None
        c = self.cfg
        adx, pdi, mdi = indicators.adx(a["high"], a["low"], a["close"], c.signal.hourly_adx_period)
        rsi = indicators.rsi(a["close"], c.filters.rsi_period)
        ema = indicators.ema(a["close"], c.filters.ema_period)
        return HourlyView(a["start"][-1], float(a["close"][-1]), float(adx[-1]), float(pdi[-1]),
                          float(mdi[-1]), float(rsi[-1]), float(ema[-1]), len(a["close"]))

    # --- VWAP on the near-month future ---------------------------------------------------------
    def future_vwap(self, name: str) -> tuple[float | None, float | None]:
        """(future price, session VWAP) from today's completed minute bars of the future."""
        f = self.underlyings[name].future
        bars = self._candles(f, ONE_MINUTE, at(self.day, self.cfg.session.market_open),
                             self.clock.now())
        if not bars:
            return None, None
        h, lo, cl, v = (np.array([getattr(b, k) for b in bars], dtype=float)
                        for k in ("high", "low", "close", "volume"))
        if v.sum() <= 0:
            return float(cl[-1]), None
        vw = indicators.vwap(h, lo, cl, v, np.zeros(len(bars), dtype=np.int64))
        price = check_price(self.market.ltp(f.exchange, f.token), "ltp", "ltp", allow_zero=False,
                            token=f.token)
        return price, float(vw[-1])

    # --- contracts ---------------------------------------------------------------------------
    def option_for(self, name: str, option_type: str, spot: float) -> tuple[Instrument, int]:
        """The ATM (plus offset) option of the nearest expiry with DTE >= min_dte, and its DTE."""
        f = self.underlyings[name]
        expiry = self.master.nearest_expiry(name, self.day, self.cfg.options.min_dte)
        inst = self.master.atm(name, expiry, spot, option_type, f.strike_step,
                               self.cfg.options.strike_offset_steps)
        return inst, dte(self.day, expiry)

    def spot_price(self, name: str) -> float:
        """The index level (> 0), else DataError."""
        f = self.underlyings[name].spot
        return check_price(self.market.ltp(f.exchange, f.token), "ltp", "ltp", allow_zero=False,
                           token=f.token)

    def vix(self) -> float:
        """India VIX (> 0), else DataError: a bad VIX is no VIX, never a calm market."""
        return check_price(self.market.vix(), "vix", "vix", allow_zero=False,
                           token=self.vix_instrument.token)

    def quote(self, inst: Instrument) -> Quote:
        """The option's quote; a negative or non-finite ltp, bid or ask is a DataError."""
        q = self.market.quote(inst.exchange, inst.token)
        for field in ("ltp", "bid", "ask"):
            check_price(getattr(q, field), "quote", field, token=inst.token)
        return q
