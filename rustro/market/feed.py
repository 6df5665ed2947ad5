"""What the bot knows of the market today, per underlying: contracts, bars, indicator inputs, gaps.

Reads only through a `MarketData` (synthetic, Angel One, or the sandbox), so every mode sees the
same numbers the same way. Pure computations live in `indicators` and `strategy`; this module
fetches, windows and notices gaps.
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
from .base import ONE_DAY, ONE_HOUR, ONE_MINUTE, Bar
from .instruments import Instrument, InstrumentMaster

log = logging.getLogger(__name__)


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
        self.underlyings: dict[str, UnderlyingFeed] = {}
        for u in cfg.underlyings:
            master.require_options(u.name)
            spot = master.spot(u.spot_name)
            self.underlyings[u.name] = UnderlyingFeed(
                u.name, spot, master.near_future(u.name, day), u.strike_step, u.freeze_qty,
                BarWindow(spot.token, ONE_HOUR, maxlen=cfg.data.indicator_history_bars + 100))

    # --- daily -------------------------------------------------------------------------------
    def daily_bars(self, name: str) -> list[Bar]:
        """Completed daily sessions before today (today's forming bar excluded)."""
        f = self.underlyings[name]
        start = at(self.day, self.cfg.session.market_open) - timedelta(days=self.cfg.data.daily_history_days)
        bars = self.market.candles(f.spot.exchange, f.spot.token, ONE_DAY, start, at(self.day, self.cfg.session.pre_open))
        return [b for b in bars if b.start.date() < self.day]

    # --- hourly ------------------------------------------------------------------------------
    def load_hourly(self, name: str) -> int:
        """Fill the hourly window: enough history for `indicator_history_bars` closed bars."""
        f = self.underlyings[name]
        sessions = math.ceil(self.cfg.data.indicator_history_bars / 7)  # 7 hourly bars a session
        days_back = math.ceil(sessions * 7 / 5) + 15                   # weekends and holidays
        start = at(self.day - timedelta(days=days_back), self.cfg.session.market_open)
        f.hourly.extend(self.market.candles(f.spot.exchange, f.spot.token, ONE_HOUR, start,
                                            self.clock.now()))
        return len(f.hourly)

    def refresh_hourly(self, name: str) -> list[Bar]:
        """Fetch today's closed hourly bars; returns the ones not seen before (a repeat replaces)."""
        f = self.underlyings[name]
        bars = self.market.candles(f.spot.exchange, f.spot.token, ONE_HOUR,
                                   at(self.day, self.cfg.session.market_open), self.clock.now())
        return [b for b in bars if f.hourly.upsert(b)]

    def missing_hourly(self, name: str, now: datetime) -> list[datetime]:
        """Session hourly bars that should have closed by `now` but are not in the window."""
        s = self.cfg.session
        today = [b for b in self.underlyings[name].hourly.bars() if b.start.date() == self.day]
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
        bars = self.market.candles(f.exchange, f.token, ONE_MINUTE,
                                   at(self.day, self.cfg.session.market_open), self.clock.now())
        if not bars:
            return None, None
        h, lo, cl, v = (np.array([getattr(b, k) for b in bars], dtype=float)
                        for k in ("high", "low", "close", "volume"))
        if v.sum() <= 0:
            return float(cl[-1]), None
        vw = indicators.vwap(h, lo, cl, v, np.zeros(len(bars), dtype=np.int64))
        price = self.market.ltp(f.exchange, f.token)
        return float(price), float(vw[-1])

    # --- contracts ---------------------------------------------------------------------------
    def option_for(self, name: str, option_type: str, spot: float) -> tuple[Instrument, int]:
        """The ATM (plus offset) option of the nearest expiry with DTE >= min_dte, and its DTE."""
        f = self.underlyings[name]
        expiry = self.master.nearest_expiry(name, self.day, self.cfg.options.min_dte)
        inst = self.master.atm(name, expiry, spot, option_type, f.strike_step,
                               self.cfg.options.strike_offset_steps)
        return inst, dte(self.day, expiry)

    def spot_price(self, name: str) -> float:
        f = self.underlyings[name].spot
        return self.market.ltp(f.exchange, f.token)

    def vix(self) -> float:
        return self.market.vix()

    def quote(self, inst: Instrument):
        return self.market.quote(inst.exchange, inst.token)
