"""SmartAPI route handlers: the synthetic market and a PaperBroker behind Angel's REST shapes.

Each handler takes the parsed JSON body (or the path suffix) and returns the envelope's `data`, or
raises ApiError for a business failure (status false with an AB code, HTTP 200). Paths are written
from the spec (section 1), not imported from the client, so a wrong path in either shows up.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from ..broker.base import OrderRejected, OrderRequest
from ..broker.paper import ContractSpec, PaperBroker
from ..broker.paper_store import PaperStore
from ..calendar import TradingCalendar, at
from ..clock import IST, Clock, ist
from ..config import Config
from ..market.base import ONE_DAY, ONE_HOUR, ONE_MINUTE, Bar, Quote
from . import rows

_SEC = "/rest/secure/angelbroking"
MASTER_PATH = "/OpenAPI_File/files/OpenAPIScripMaster.json"
SESSION_OPEN, SESSION_CLOSE = time(9, 15), time(15, 30)
MAX_TAG = 20
MAX_QUOTE_TOKENS = 50
EXCHANGES = ("NSE", "NFO", "BSE", "BFO", "MCX", "CDS")
# interval -> (minutes per bar, max days per request), spec 3.8
INTERVALS = {"ONE_MINUTE": (1, 30), "THREE_MINUTE": (3, 60), "FIVE_MINUTE": (5, 100),
             "TEN_MINUTE": (10, 100), "FIFTEEN_MINUTE": (15, 200), "THIRTY_MINUTE": (30, 200),
             "ONE_HOUR": (60, 400), "ONE_DAY": (0, 2000)}
CATCH_ALL = ("AB1004", "Something Went Wrong, Please Try After Sometime")


@dataclass(frozen=True)
class RouteDef:
    name: str          # the short name used in fault specs and logs
    method: str
    path: str          # exact path, or a prefix when `prefix` is set
    group: str | None  # rate-limit group (rustro.broker.ratelimit), None = not limited
    auth: str          # "jwt" (Bearer), "login", "refresh", or "none" (the instrument master)
    prefix: bool = False


ROUTES = (
    RouteDef("loginByPassword", "POST", "/rest/auth/angelbroking/user/v1/loginByPassword",
             "login", "login"),
    RouteDef("generateTokens", "POST", "/rest/auth/angelbroking/jwt/v1/generateTokens",
             "generateTokens", "refresh"),
    RouteDef("getProfile", "GET", f"{_SEC}/user/v1/getProfile", "getProfile", "jwt"),
    RouteDef("logout", "POST", f"{_SEC}/user/v1/logout", "logout", "jwt"),
    RouteDef("getRMS", "GET", f"{_SEC}/user/v1/getRMS", "getRMS", "jwt"),
    RouteDef("placeOrder", "POST", f"{_SEC}/order/v1/placeOrder", "placeOrder", "jwt"),
    RouteDef("modifyOrder", "POST", f"{_SEC}/order/v1/modifyOrder", "modifyOrder", "jwt"),
    RouteDef("cancelOrder", "POST", f"{_SEC}/order/v1/cancelOrder", "cancelOrder", "jwt"),
    RouteDef("getOrderBook", "GET", f"{_SEC}/order/v1/getOrderBook", "getOrderBook", "jwt"),
    RouteDef("getTradeBook", "GET", f"{_SEC}/order/v1/getTradeBook", "getTradeBook", "jwt"),
    RouteDef("orderDetails", "GET", f"{_SEC}/order/v1/details/", "orderDetails", "jwt", True),
    RouteDef("getLtpData", "POST", f"{_SEC}/order/v1/getLtpData", "getLtpData", "jwt"),
    RouteDef("getPosition", "GET", f"{_SEC}/order/v1/getPosition", "getPosition", "jwt"),
    RouteDef("quote", "POST", f"{_SEC}/market/v1/quote", "quote", "jwt"),
    RouteDef("getCandleData", "POST", f"{_SEC}/historical/v1/getCandleData", "getCandleData",
             "jwt"),
    RouteDef("master", "GET", MASTER_PATH, None, "none"),
)
ROUTE_NAMES = frozenset(r.name for r in ROUTES)


def match_route(path: str) -> tuple[RouteDef | None, str]:
    """The route serving `path` (query string already removed) and the suffix after a prefix."""
    for r in ROUTES:
        if r.prefix and path.startswith(r.path) and len(path) > len(r.path):
            return r, path[len(r.path):]
        if path == r.path:
            return r, ""
    return None, ""


class ApiError(Exception):
    """A business failure: HTTP 200, status false, this AB code."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def _field(body: dict, name: str) -> str:
    value = body.get(name)
    if value is None or not str(value).strip():
        raise ApiError("AB2000", f"Invalid request: {name} is required")
    return str(value).strip()


def _qty(text: str) -> int:
    try:
        q = int(text)
    except ValueError:
        raise ApiError("AB2000", f"Invalid quantity {text!r}") from None
    if q <= 0:
        raise ApiError("AB2000", f"Invalid quantity {text!r}")
    return q


def _price(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise ApiError("AB2000", f"Invalid price {text!r}") from None
    if not p >= 0 or p == float("inf"):
        raise ApiError("AB2000", f"Invalid price {text!r}")
    return p


def _angel_minute(text) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=IST)
    except (TypeError, ValueError):
        raise ApiError(*CATCH_ALL) from None


class Exchange:
    """The market and the order system behind the routes; one instance per sandbox."""

    def __init__(self, cfg: Config, clock: Clock, market, calendar: TradingCalendar,
                 db_path: str | Path, seed: int, partial_fill_prob: float | None = None,
                 book_lag_sec: float = 0.0):
        self.cfg, self.clock, self.market, self.calendar = cfg, clock, market, calendar
        self._freeze = {u.name: u.freeze_qty for u in cfg.underlyings}
        self._master: tuple[date, list[dict], dict[str, dict], bytes] | None = None
        prob = cfg.paper.partial_fill_prob if partial_fill_prob is None else partial_fill_prob
        # Angel's rules, not the bot's: shorts are accepted when margin allows (cfg.paper), and
        # the books may lag the exchange (the lag:N fault) while positions and funds do not.
        self.paper = PaperBroker(db_path, clock, market, self.contract, cfg.bot.capital,
                                 latency_ms=cfg.paper.latency_ms, partial_fill_prob=prob,
                                 seed=seed, allow_short=cfg.paper.allow_short,
                                 short_margin_per_unit=cfg.paper.short_margin_per_unit,
                                 book_lag_sec=book_lag_sec)
        self.store = PaperStore(db_path)   # a second, read-side connection for Angel-shaped rows
        self._modified: set[str] = set()
        self._ohlc: dict[tuple, dict] = {}
        self._closes: dict[tuple, float] = {}
        self._lock = threading.RLock()

    def close(self) -> None:
        self.paper.close()
        self.store.close()

    # ---- instruments ---------------------------------------------------------------------
    def _master_state(self):
        today = ist(self.clock.now()).date()
        with self._lock:
            if self._master is None or self._master[0] != today:
                master = self.market.instrument_master()
                self._master = (today, master, {r["token"]: r for r in master},
                                json.dumps(master).encode())
            return self._master

    def master_bytes(self) -> bytes:
        return self._master_state()[3]

    def instrument(self, token: str, exchange: str | None = None) -> dict | None:
        row = self._master_state()[2].get(str(token))
        if row is None or (exchange is not None and row["exch_seg"] != exchange):
            return None
        return row

    def contract(self, token: str) -> ContractSpec | None:
        """What the paper exchange enforces for `token`: lot, tick (master paise / 100), freeze."""
        row = self.instrument(token, "NFO")
        if row is None:
            return None
        return ContractSpec(int(row["lotsize"]), float(row["tick_size"]) / 100,
                            self._freeze.get(row["name"], 0))

    def _known(self, exchange: str, token: str) -> dict:
        row = self.instrument(token, exchange)
        if row is None:
            raise ApiError("AB1009", f"Symbol not found: token {token!r} on {exchange!r}")
        return row

    # ---- orders --------------------------------------------------------------------------
    def place(self, body: dict) -> dict:
        tag = str(body.get("ordertag") or "")
        if len(tag) > MAX_TAG:
            raise ApiError("AB4008", f"ordertag length should be less than {MAX_TAG} characters")
        exchange, token = _field(body, "exchange"), _field(body, "symboltoken")
        inst = self._known(exchange, token)
        symbol = _field(body, "tradingsymbol")
        if symbol != inst["symbol"]:
            raise ApiError("AB1009", f"Invalid symbol: {symbol!r} is not token {token}")
        req = OrderRequest(tag=tag, exchange=exchange, symbol=symbol, token=token,
                           side=_field(body, "transactiontype"), qty=_qty(_field(body, "quantity")),
                           price=_price(str(body.get("price") or "0")),
                           order_type=_field(body, "ordertype"), product=_field(body, "producttype"),
                           variety=_field(body, "variety"), duration=_field(body, "duration"))
        ack = self._paper(self.paper.place_order, req)
        return {"script": symbol, "orderid": ack.order_id, "uniqueorderid": ack.unique_order_id}

    def modify(self, body: dict) -> dict:
        order_id = _field(body, "orderid")
        row = self.store.order(order_id)
        if row is None:
            raise ApiError("AB1013", f"Order not found: {order_id}")
        req = OrderRequest(tag=row["tag"], exchange=row["exchange"], symbol=row["symbol"],
                           token=row["token"], side=row["side"], qty=_qty(_field(body, "quantity")),
                           price=_price(str(body.get("price") or "0")),
                           order_type=_field(body, "ordertype"), product=row["product"],
                           variety=row["variety"], duration=row["duration"])
        self._paper(self.paper.modify_order, order_id, req)
        self._modified.add(order_id)
        return {"orderid": order_id, "uniqueorderid": row["unique_order_id"]}

    def cancel(self, body: dict) -> dict:
        order_id = _field(body, "orderid")
        row = self.store.order(order_id)
        if row is None:
            raise ApiError("AB1013", f"Order not found: {order_id}")
        self._paper(self.paper.cancel_order, order_id, _field(body, "variety"))
        return {"orderid": order_id, "uniqueorderid": row["unique_order_id"]}

    @staticmethod
    def _paper(fn, *args):
        try:
            return fn(*args)
        except OrderRejected as exc:
            raise ApiError(exc.code or "AB2000", exc.text) from None

    def order_book(self) -> list[dict] | None:
        """Exactly the orders the paper books show now (matched up to now, minus any lag)."""
        out = [self._order_row(o) for o in self.paper.book_rows()[0]]
        return out or None

    def order_details(self, unique_order_id: str) -> dict:
        try:
            self.paper.order_details(unique_order_id)   # an order hidden by the lag: not found
        except OrderRejected:
            raise ApiError("AB1007", "Order not found") from None
        return self._order_row(self.store.order_by_unique_id(unique_order_id))

    def _order_row(self, o: dict) -> dict:
        return rows.order_row(o, self.instrument(o["token"]), o["order_id"] in self._modified)

    def trade_book(self) -> list[dict] | None:
        out = [rows.trade_row(f, self.instrument(f["token"])) for f in self.paper.book_rows()[1]]
        return out or None

    def positions(self) -> list[dict] | None:
        out = [rows.position_row(p, self.instrument(p.token),
                                 self.prev_close(p.exchange, p.token))
               for p in self.paper.positions()]
        return out or None

    def rms(self) -> dict:
        return rows.rms_data(self.paper.funds(), self.paper.positions())

    # ---- market data ---------------------------------------------------------------------
    def _market_quote(self, exchange: str, token: str) -> Quote:
        try:
            return self.market.quote(exchange, token)
        except (LookupError, ValueError) as exc:
            raise ApiError("AB1018", f"Failed to get symbol details: {exc}") from None

    def prev_close(self, exchange: str, token: str) -> float:
        """The previous session's close (Angel's `close`), 0.0 when there is none."""
        day = ist(self.clock.now()).date()
        key = (exchange, token, day)
        if key not in self._closes:
            prev = self.calendar.previous_trading_day(day)
            try:
                bars = self.market.candles(exchange, token, ONE_DAY, at(prev, time(0)),
                                           at(prev, time(0)) + timedelta(days=1))
            except (LookupError, ValueError):
                bars = []
            self._closes[key] = bars[-1].close if bars else 0.0
        return self._closes[key]

    def ohlc(self, exchange: str, token: str, q: Quote) -> dict:
        """Today's open/high/low/volume/VWAP so far from completed minute bars, prev close."""
        key = (exchange, token, q.ts)
        if key in self._ohlc:
            return self._ohlc[key]
        now = ist(self.clock.now())
        start = at(now.date(), SESSION_OPEN)
        bars = self.market.candles(exchange, token, ONE_MINUTE, start, now) if now > start else []
        vol = sum(b.volume for b in bars)
        out = {"open": bars[0].open if bars else q.ltp,
               "high": max([b.high for b in bars] + [q.ltp]),
               "low": min([b.low for b in bars] + [q.ltp]),
               "close": self.prev_close(exchange, token), "volume": int(vol),
               "avg": round(sum(b.close * b.volume for b in bars) / vol, 2) if vol else q.ltp}
        if len(self._ohlc) > 512:
            self._ohlc.clear()
        self._ohlc[key] = out
        return out

    def ltp(self, body: dict) -> dict:
        exchange, token = _field(body, "exchange"), _field(body, "symboltoken")
        inst = self._known(exchange, token)
        q = self._market_quote(exchange, token)
        o = self.ohlc(exchange, token, q)
        return {"exchange": exchange, "tradingsymbol": inst["symbol"], "symboltoken": token,
                "open": o["open"], "high": o["high"], "low": o["low"], "close": o["close"],
                "ltp": q.ltp}

    def quote(self, body: dict) -> dict:
        mode = str(body.get("mode") or "")
        if mode not in ("LTP", "OHLC", "FULL"):
            raise ApiError("AB2000", f"Invalid mode {mode!r}: one of LTP, OHLC, FULL")
        wanted = body.get("exchangeTokens")
        if not isinstance(wanted, dict) or not all(isinstance(v, list) for v in wanted.values()):
            raise ApiError("AB2000", "Invalid exchangeTokens: expected {exchange: [tokens]}")
        if sum(len(v) for v in wanted.values()) > MAX_QUOTE_TOKENS:
            raise ApiError("AB2000", f"Maximum {MAX_QUOTE_TOKENS} tokens allowed per request")
        fetched, unfetched = [], []
        for exchange, tokens in wanted.items():
            for token in map(str, tokens):
                inst = self.instrument(token, exchange)
                if inst is None:
                    unfetched.append({"exchange": exchange, "symbolToken": token,
                                      "message": "Failed to get symbol details",
                                      "errorCode": "AB1018"})
                    continue
                q = self._market_quote(exchange, token)
                fetched.append(rows.quote_row(
                    mode, exchange, inst["symbol"], q, self.ohlc(exchange, token, q),
                    int(inst["lotsize"]), float(inst["tick_size"]) / 100))
        return {"fetched": fetched, "unfetched": unfetched}

    def candles(self, body: dict) -> list[list] | None:
        exchange, token = str(body.get("exchange") or ""), str(body.get("symboltoken") or "")
        interval = str(body.get("interval") or "")
        if exchange not in EXCHANGES or interval not in INTERVALS:
            raise ApiError(*CATCH_ALL)
        lo = _angel_minute(body.get("fromdate"))
        hi = _angel_minute(body.get("todate"))
        minutes, max_days = INTERVALS[interval]
        if lo >= hi or hi - lo > timedelta(days=max_days):
            raise ApiError(*CATCH_ALL)
        inst = self.instrument(token, exchange)
        if inst is None:
            raise ApiError("AB1018", f"Failed to get symbol details: token {token!r}")
        end = hi + timedelta(minutes=1)  # Angel's todate is inclusive
        name = {"ONE_DAY": ONE_DAY, "ONE_HOUR": ONE_HOUR, "ONE_MINUTE": ONE_MINUTE}.get(interval)
        try:
            bars = (self.market.candles(exchange, token, name, lo, end) if name
                    else aggregate(self.market.candles(exchange, token, ONE_MINUTE, lo, end),
                                   minutes))
        except (LookupError, ValueError) as exc:
            raise ApiError("AB1018", f"Failed to get symbol details: {exc}") from None
        index = inst["instrumenttype"] == "AMXIDX"
        return [rows.candle_row(b, index) for b in bars]

    def profile(self, client: str) -> dict:
        return {"clientcode": client, "name": "Sandbox User", "email": "", "mobileno": "",
                "exchanges": ["nse_fo", "nse_cm", "bse_cm"],
                "products": ["MARGIN", "MIS", "NRML", "CNC", "CO", "BO"],
                "lastlogintime": "", "broker": ""}


def aggregate(minute_bars: list[Bar], minutes: int) -> list[Bar]:
    """Session-aligned N-minute bars from completed one-minute bars; only whole buckets (or the
    session's last, shorter one once it is complete)."""
    buckets: dict[datetime, list[Bar]] = {}
    for b in minute_bars:
        t0 = at(b.start.date(), SESSION_OPEN)
        k = int((b.start - t0).total_seconds() // 60) // minutes
        buckets.setdefault(t0 + timedelta(minutes=k * minutes), []).append(b)
    out = []
    for start in sorted(buckets):
        group = buckets[start]
        close_at = at(start.date(), SESSION_CLOSE)
        size = min(minutes, int((close_at - start).total_seconds() // 60))
        if len(group) < size:
            continue
        out.append(Bar(start, group[0].open, max(b.high for b in group),
                       min(b.low for b in group), group[-1].close,
                       sum(b.volume for b in group)))
    return out
