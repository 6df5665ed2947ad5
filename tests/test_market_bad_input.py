"""Impossible market data stops at the boundary: a bad candle is a missing bar (and a journal-ready
report), a bad VIX, spot or quote is "market data unavailable" (DataError, a BrokerError)."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime, time

import pytest

from rustro.broker.base import BrokerError
from rustro.calendar import at
from rustro.clock import VirtualClock
from rustro.config import Config
from rustro.market.base import ONE_HOUR, ONE_MINUTE, DataError, check_candle, check_price
from rustro.market.feed import MAX_REJECTED, MarketFeed
from rustro.market.instruments import parse_master
from rustro.market.synthetic import SyntheticMarket

from conftest import DAY  # a Friday, an ordinary trading day

NOON = at(DAY, time(12, 20))   # the 09:15, 10:15 and 11:15 hourly bars have closed


class Broken:
    """A synthetic market whose answers can be made impossible, like a broken feed's."""

    def __init__(self, inner: SyntheticMarket):
        self.inner = inner
        self.bars: dict[tuple[str, datetime], dict] = {}   # (interval, start) -> fields to force
        self.values: dict[str, float] = {}                  # "vix" / "ltp" -> forced value
        self.quote_fields: dict[str, float] = {}
        self.parser_rejects: list[DataError] = []            # what a source parser refused
        self.fail_candles = False

    def instrument_master(self):
        return self.inner.instrument_master()

    def candles(self, exchange, token, interval, start, end):
        bars = self.inner.candles(exchange, token, interval, start, end)
        if self.fail_candles:
            raise BrokerError("getCandleData: data is not a list of candles")
        return [replace(b, **self.bars.get((interval, b.start), {})) for b in bars]

    def drain_rejected(self):
        out, self.parser_rejects = self.parser_rejects, []
        return out

    def ltp(self, exchange, token):
        return self.values.get("ltp", self.inner.ltp(exchange, token))

    def vix(self):
        return self.values.get("vix", self.inner.vix())

    def quote(self, exchange, token):
        return replace(self.inner.quote(exchange, token), **self.quote_fields)


@pytest.fixture
def feed():
    clock = VirtualClock(NOON)
    cfg = Config()
    market = Broken(SyntheticMarket(clock, 42, underlyings=("NIFTY",)))
    master = parse_master(market.instrument_master(), ["NIFTY"])
    return MarketFeed(market, clock, cfg, master, DAY)


BAD_BARS = {
    "high below low": ({"high": 1.0, "low": 2.0}, "high"),
    "zero prices": ({"open": 0.0, "high": 0.0, "low": 0.0, "close": 0.0}, "open"),
    "negative low": ({"low": -5.0}, "low"),
    "open above high": ({"open": 1e9}, "open"),
    "close below low": ({"close": 1.0}, "close"),
    "NaN close": ({"close": math.nan}, "close"),
    "inf high": ({"high": math.inf}, "high"),
    "negative volume": ({"volume": -1.0}, "volume"),
}


@pytest.mark.parametrize("name", BAD_BARS)
def test_bad_hourly_bar_is_a_gap_and_reported(feed, name):
    forced, field = BAD_BARS[name]
    bad_start = at(DAY, time(10, 15))
    feed.market.bars[(ONE_HOUR, bad_start)] = forced
    new = feed.refresh_hourly("NIFTY")
    assert [b.start.time() for b in new] == [time(9, 15), time(11, 15)]
    assert feed.missing_hourly("NIFTY", NOON) == [bad_start]     # gap detection sees it
    [row] = feed.drain_rejected()
    spot = feed.underlyings["NIFTY"].spot
    assert (row["route"], row["index"], row["field"]) == ("candles", 1, field)
    assert (row["token"], row["symbol"], row["interval"]) == (spot.token, "Nifty 50", ONE_HOUR)
    assert "10:15" in row["row"] and "candles row 1" in row["error"]
    json.dumps(row, allow_nan=False)                               # journal-ready as it is
    assert feed.drain_rejected() == []


def test_reported_rows_can_be_journaled(feed, journal):
    feed.market.bars[(ONE_HOUR, at(DAY, time(9, 15)))] = {"close": math.nan}
    feed.load_hourly("NIFTY")
    rows = feed.drain_rejected()
    for row in rows:
        journal.record("data_error", row, day=DAY)
    [ev] = journal.events(DAY, kinds=("data_error",))
    assert ev.payload["field"] == "close" and ev.payload["value"] == "nan"


def test_bad_bars_are_skipped_in_history_daily_and_vwap(feed):
    nifty = feed.underlyings["NIFTY"]
    feed.market.bars[(ONE_HOUR, at(DAY, time(9, 15)))] = {"open": -1.0}
    feed.load_hourly("NIFTY")
    assert at(DAY, time(9, 15)) not in {b.start for b in nifty.hourly.bars()}
    assert len(nifty.hourly) > 100
    daily = feed.market.inner.candles("NSE", nifty.spot.token, "ONE_DAY",
                                      at(DAY, time(0)).replace(year=DAY.year - 1), at(DAY, time(9)))
    feed.market.bars[("ONE_DAY", daily[-1].start)] = {"high": 1.0}
    assert daily[-1].start not in {b.start for b in feed.daily_bars("NIFTY")}
    feed.market.bars[(ONE_MINUTE, at(DAY, time(9, 20)))] = {"volume": -100.0}
    price, vwap = feed.future_vwap("NIFTY")
    assert price > 0 and vwap is not None and math.isfinite(vwap)
    assert [r["interval"] for r in feed.drain_rejected()] == [ONE_HOUR, "ONE_DAY", ONE_MINUTE]


def test_rows_refused_by_the_source_parser_are_collected_with_their_instrument(feed):
    feed.market.parser_rejects.append(
        DataError("getCandleData", 3, "high", "x", "is not a finite number",
                  row=["2026-11-20T11:15:00+05:30", 1, "x", 1, 1, 0]))
    feed.refresh_hourly("NIFTY")
    [row] = feed.drain_rejected()
    assert (row["route"], row["index"], row["field"], row["value"]) == ("getCandleData", 3, "high", "x")
    assert row["token"] == feed.underlyings["NIFTY"].spot.token and row["interval"] == ONE_HOUR
    # a call that fails as a whole still hands over what its earlier chunks refused
    feed.market.parser_rejects.append(DataError("getCandleData", 0, "low", -1, "must be > 0"))
    feed.market.fail_candles = True
    with pytest.raises(BrokerError):
        feed.refresh_hourly("NIFTY")
    assert [r["field"] for r in feed.drain_rejected()] == ["low"]


def test_rejected_rows_are_bounded_between_drains(feed):
    err = DataError("candles", 0, "open", 0.0, "must be > 0")
    for _ in range(MAX_REJECTED + 5):
        feed._reject(err, feed.underlyings["NIFTY"].spot, ONE_HOUR)
    rows = feed.drain_rejected()
    assert len(rows) == MAX_REJECTED + 1 and "5 older refused rows dropped" in rows[0]["error"]
    assert feed.drain_rejected() == []


@pytest.mark.parametrize("value", [-14.2, 0.0, math.nan, math.inf])
def test_bad_vix_is_unavailable_not_calm(feed, value):
    feed.market.values["vix"] = value
    with pytest.raises(DataError, match=r"vix.*'vix'") as info:
        feed.vix()
    assert info.value.token == feed.vix_instrument.token


@pytest.mark.parametrize("value", [-24000.0, 0.0, math.nan])
def test_bad_spot_or_future_price_is_a_data_error(feed, value):
    feed.market.values["ltp"] = value
    with pytest.raises(DataError, match="'ltp'"):
        feed.spot_price("NIFTY")
    with pytest.raises(DataError, match="'ltp'"):
        feed.future_vwap("NIFTY")


@pytest.mark.parametrize("field", ["ltp", "bid", "ask"])
def test_negative_quote_price_is_a_data_error(feed, field):
    inst, _ = feed.option_for("NIFTY", "CE", feed.spot_price("NIFTY"))
    assert feed.quote(inst).ask > 0
    feed.market.quote_fields[field] = -0.05
    with pytest.raises(DataError, match=f"quote \\(token {inst.token}\\).*'{field}'"):
        feed.quote(inst)


def test_zero_bid_or_ask_is_an_empty_side_not_an_error(feed):
    inst, _ = feed.option_for("NIFTY", "PE", feed.spot_price("NIFTY"))
    feed.market.quote_fields.update(bid=0.0, ask=0.0)
    assert feed.quote(inst).spread_pct == math.inf


def test_data_error_is_what_the_bot_treats_as_market_data_unavailable():
    from rustro.desk import PIPELINE_ERRORS
    assert issubclass(DataError, BrokerError) and issubclass(DataError, PIPELINE_ERRORS)
    assert issubclass(DataError, ValueError)   # exits.price_of and guards catch ValueError too
    err = DataError("getCandleData", 2, "close", math.nan, "is not a finite number")
    assert str(err) == "getCandleData row 2: field 'close' is not a finite number: nan"
    assert err.payload() == {"route": "getCandleData", "index": 2, "field": "close",
                             "value": "nan", "error": str(err)}


@pytest.mark.parametrize("args, field", [
    ((1, 2, 0.5, 1.5, 0), None), ((2, 2, 2, 2, 0), None),
    ((0.5, 2, 1, 1.5, 0), "open"), ((1, 2, 1, 2.5, 0), "close"), ((1, 2, 1, 1, -1), "volume"),
    ((1, 2, 1, True, 0), "close"), ((1, "2", 1, 1, 0), "high"), ((1, 2, 1, 1, math.nan), "volume"),
])
def test_check_candle(args, field):
    if field is None:
        check_candle(*args, "r")
    else:
        with pytest.raises(DataError) as info:
            check_candle(*args, "r", 7)
        assert (info.value.field, info.value.index) == (field, 7)


def test_check_price():
    assert check_price(0, "r", "bid") == 0.0 and check_price(1, "r", "ltp", allow_zero=False) == 1.0
    with pytest.raises(DataError, match="must be > 0"):
        check_price(0.0, "r", "vix", allow_zero=False)
    with pytest.raises(DataError, match="not a finite number"):
        check_price("12", "r", "ltp")
