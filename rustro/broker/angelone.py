"""Angel One SmartAPI as a `Broker` and a `MarketData`, both over one `SmartApiSession`.

placeOrder is never retried blindly: an ambiguous outcome (timeout, reset, 5xx, empty or HTML body,
status true without an orderid) is resolved by looking the request's `ordertag` up in the order
book, a few times with backoff on the bot's clock; if the tag is not there, AmbiguousOrder goes to
the caller, who decides. No second placeOrder is ever sent from here.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote as urlquote

from rustro.broker import ratelimit as rl
from rustro.broker.angelone_parse import (angel_minute, candle_chunks, interval_length,
                                          parse_candles, parse_fill, parse_funds, parse_ltp,
                                          parse_order, parse_position, parse_quotes, rows)
from rustro.broker.angelone_session import (CANCEL_ORDER, CANDLES, LTP, MODIFY_ORDER,
                                            ORDER_BOOK, ORDER_DETAILS, PLACE_ORDER, POSITION,
                                            QUOTE, RMS, TRADE_BOOK, EventSink, SmartApiSession)
from rustro.broker.base import (BUY, SELL, AmbiguousOrder, BrokerError, BrokerOrder,
                                BrokerPosition, Fill, Funds, OrderAck, OrderRequest, find_by_tag)
from rustro.clock import Clock, ist
from rustro.config import Config
from rustro.credentials import Secrets
from rustro.market.base import TICK, Bar, DataError, Quote, check_price, on_tick
from rustro.market.instruments import MasterError, check_master

MAX_TAG = 20            # Angel's ordertag limit (AB4008 above it)
QUOTE_BATCH = 50        # tokens per market/v1/quote request
VIX_TOKEN = "99926017"
KNOWN_SYMBOLS = {("NSE", "99926000"): "Nifty 50", ("NSE", VIX_TOKEN): "India VIX"}


def validate_order(req: OrderRequest) -> None:
    """Refuse, before anything is sent, a request Angel would reject or we could not reconcile."""
    if not req.tag or len(req.tag) > MAX_TAG:
        raise ValueError(f"order tag {req.tag!r}: must be 1..{MAX_TAG} characters "
                         f"(it is the idempotency key sent as ordertag)")
    if req.side not in (BUY, SELL):
        raise ValueError(f"order {req.tag}: side {req.side!r} is not BUY or SELL")
    if not isinstance(req.qty, int) or isinstance(req.qty, bool) or req.qty <= 0:
        raise ValueError(f"order {req.tag}: qty {req.qty!r} must be a positive whole number")
    if req.order_type not in ("LIMIT", "MARKET"):
        raise ValueError(f"order {req.tag}: order_type {req.order_type!r} is not LIMIT/MARKET")
    if req.order_type == "LIMIT" and (req.price <= 0 or not on_tick(req.price, TICK)):
        raise ValueError(f"order {req.tag}: price {req.price!r} must be > 0 on the {TICK} tick")
    for name in ("exchange", "symbol", "token"):
        if not getattr(req, name):
            raise ValueError(f"order {req.tag}: {name} is empty")


def _price(req: OrderRequest) -> str:
    return "0" if req.order_type == "MARKET" else f"{req.price:.2f}"


def order_body(req: OrderRequest) -> dict[str, str]:
    """placeOrder fields exactly as the SDK sends them: every value a string."""
    return {"variety": req.variety, "tradingsymbol": req.symbol, "symboltoken": req.token,
            "transactiontype": req.side, "exchange": req.exchange, "ordertype": req.order_type,
            "producttype": req.product, "duration": req.duration, "price": _price(req),
            "triggerprice": "0", "squareoff": "0", "stoploss": "0",
            "quantity": str(req.qty), "ordertag": req.tag}


class AngelOneBroker:
    name = "angelone"

    def __init__(self, session: SmartApiSession, resolve_tries: int = 3,
                 resolve_backoff: float = 1.0):
        self.session = session
        self.resolve_tries = resolve_tries
        self.resolve_backoff = resolve_backoff

    def login(self) -> None:
        self.session.login()

    def logout(self) -> None:
        self.session.logout()

    def place_order(self, req: OrderRequest) -> OrderAck:
        """status true only means 'accepted for processing': watch the order for its outcome."""
        validate_order(req)
        try:
            data = self.session.call(PLACE_ORDER, order_body(req))
        except AmbiguousOrder as err:
            return self._resolve(req.tag, err.text)
        order_id = str(data.get("orderid") or "") if isinstance(data, dict) else ""
        if not order_id:
            return self._resolve(req.tag, f"{PLACE_ORDER.name}: status true without an orderid")
        return OrderAck(order_id, str(data.get("uniqueorderid") or ""))

    def _resolve(self, tag: str, why: str) -> OrderAck:
        """Find the order our tag names; it may take the order system a moment to show it."""
        last = ""
        for attempt in range(self.resolve_tries):
            self.session.clock.sleep(self.resolve_backoff * 2 ** attempt)
            try:
                found = find_by_tag(self, tag)
            except BrokerError as err:
                last = f"; last lookup failed: {err}"
                continue
            if found:
                self.session.emit("broker_error", route=PLACE_ORDER.name, error="AmbiguousOrder",
                                   tag=tag, resolved=True, order_id=found.order_id)
                return OrderAck(found.order_id, found.unique_order_id)
        self.session.emit("broker_error", route=PLACE_ORDER.name, error="AmbiguousOrder",
                           tag=tag, resolved=False, message=why)
        raise AmbiguousOrder(self.session.redact(
            f"{why}; tag {tag!r} not in the order book after {self.resolve_tries} looks{last}"))

    def modify_order(self, order_id: str, req: OrderRequest) -> None:
        validate_order(req)
        self.session.call(MODIFY_ORDER, {
            "variety": req.variety, "orderid": _need(order_id, "order_id"),
            "ordertype": req.order_type, "producttype": req.product, "duration": req.duration,
            "price": _price(req), "quantity": str(req.qty), "tradingsymbol": req.symbol,
            "symboltoken": req.token, "exchange": req.exchange})

    def cancel_order(self, order_id: str, variety: str = "NORMAL") -> None:
        self.session.call(CANCEL_ORDER, {"variety": variety,
                                         "orderid": _need(order_id, "order_id")})

    def order_details(self, unique_order_id: str) -> BrokerOrder:
        uid = _need(unique_order_id, "unique_order_id")

        def parse(data: object) -> BrokerOrder:
            if not isinstance(data, dict):
                raise BrokerError(f"{ORDER_DETAILS.name}: no order row for uniqueorderid {uid!r}")
            return parse_order(data, ORDER_DETAILS.name)

        return self.session.call(ORDER_DETAILS, suffix=urlquote(uid, safe=""), parse=parse)

    def order_book(self) -> list[BrokerOrder]:
        return self.session.call(ORDER_BOOK, parse=lambda data: [
            parse_order(r, ORDER_BOOK.name) for r in rows(data, ORDER_BOOK.name)])

    def trade_book(self) -> list[Fill]:
        day = self.session.trading_day()
        return self.session.call(TRADE_BOOK, parse=lambda data: [
            parse_fill(r, TRADE_BOOK.name, day) for r in rows(data, TRADE_BOOK.name)])

    def positions(self) -> list[BrokerPosition]:
        return self.session.call(POSITION, parse=lambda data: [
            parse_position(r, POSITION.name) for r in rows(data, POSITION.name)])

    def funds(self) -> Funds:
        return self.session.call(RMS, parse=lambda data: parse_funds(data, RMS.name))


def _need(value: str, name: str) -> str:
    if not value or not str(value).strip():
        raise ValueError(f"{name} is empty")
    return str(value).strip()


class AngelOneMarketData:
    """Quotes, LTP, completed candles and the instrument master, as of the session's clock.

    `underlyings`: the master is kept (on disk and in memory) only if it has options for each of
    them; a master that fails is deleted, so the next call downloads it again.
    Candle rows refused by the parser are skipped (a missing bar) and kept in `rejected` until
    `drain_rejected()` hands them to whoever journals them.
    """

    def __init__(self, session: SmartApiSession, master_url: str,
                 master_dir: str | os.PathLike = ".", underlyings: tuple[str, ...] = ()):
        self.session = session
        self.clock: Clock = session.clock
        self.master_url = master_url
        self.master_dir = Path(master_dir)
        self.underlyings = tuple(underlyings)
        self._master: list[dict] | None = None
        self._master_day = ""
        self._symbols: dict[tuple[str, str], str] = dict(KNOWN_SYMBOLS)
        self.rejected: list[DataError] = []

    def drain_rejected(self) -> list[DataError]:
        """Market-data rows refused since the last drain (oldest first), and forget them."""
        out, self.rejected = self.rejected, []
        return out

    # ---- instrument master: one streamed download per day, cached on disk ------------------
    def instrument_master(self) -> list[dict]:
        day = self.session.trading_day().isoformat()
        if self._master is not None and self._master_day == day:
            return self._master
        path = self.master_dir / f"scripmaster-{day}.json"
        if not path.is_file():
            self.master_dir.mkdir(parents=True, exist_ok=True)
            self.session.download(self.master_url, path, "instrument master")
            for old in self.master_dir.glob("scripmaster-*.json"):
                if old != path:
                    old.unlink(missing_ok=True)
        try:
            master = json.loads(path.read_bytes())
        except (ValueError, RecursionError) as exc:
            path.unlink(missing_ok=True)  # never reuse a bad file; the next call downloads again
            raise BrokerError(f"instrument master: {path.name} is not JSON ({exc})") from None
        if not isinstance(master, list) or not all(isinstance(r, dict) for r in master):
            path.unlink(missing_ok=True)
            raise BrokerError(f"instrument master: {path.name} is not a list of rows")
        if self.underlyings:
            try:
                check_master(master, self.underlyings)
            except MasterError as exc:
                path.unlink(missing_ok=True)  # a corrected file must be downloaded, not this one
                raise BrokerError(f"instrument master: {path.name} rejected, not cached: "
                                  f"{exc}") from None
        self._master, self._master_day = master, day
        for r in master:
            if r.get("exch_seg") and r.get("token") and r.get("symbol"):
                self._symbols.setdefault((str(r["exch_seg"]), str(r["token"])), str(r["symbol"]))
        return master

    def register_symbol(self, exchange: str, token: str, symbol: str) -> None:
        """Tell getLtpData the trading symbol of a token (saves loading the master for it)."""
        self._symbols[(exchange, token)] = symbol

    def _symbol(self, exchange: str, token: str) -> str:
        if (exchange, token) not in self._symbols:
            self.instrument_master()
        try:
            return self._symbols[(exchange, token)]
        except KeyError:
            raise BrokerError(f"{LTP.name}: token {token!r} on {exchange} is not in the "
                              f"instrument master") from None

    # ---- prices -----------------------------------------------------------------------------
    def ltp(self, exchange: str, token: str) -> float:
        body = {"exchange": exchange, "tradingsymbol": self._symbol(exchange, token),
                "symboltoken": token}
        return self.session.call(LTP, body, parse=lambda data: parse_ltp(data, LTP.name, token))

    def vix(self) -> float:
        """India VIX; a level <= 0 is a DataError (it would silently disarm the VIX breaker)."""
        return check_price(self.ltp("NSE", VIX_TOKEN), LTP.name, "ltp", allow_zero=False,
                           token=VIX_TOKEN)

    def quotes(self, exchange: str, tokens: list[str]) -> dict[str, Quote]:
        """FULL-mode quotes in batches of 50; tokens Angel could not fetch are left out."""
        out: dict[str, Quote] = {}
        for i in range(0, len(tokens), QUOTE_BATCH):
            batch = list(tokens[i:i + QUOTE_BATCH])
            got = self.session.call(QUOTE, {"mode": "FULL", "exchangeTokens": {exchange: batch}},
                                    parse=lambda d: parse_quotes(d, QUOTE.name, self.clock.now()))
            out.update((q.token, q) for q in got)
        return out

    def quote(self, exchange: str, token: str) -> Quote:
        got = self.quotes(exchange, [token])
        if token not in got:
            raise BrokerError(f"{QUOTE.name}: token {token!r} on {exchange} was not fetched")
        return got[token]

    def candles(self, exchange: str, token: str, interval: str,
                start: datetime, end: datetime) -> list[Bar]:
        """Completed bars with start in [start, end), fetched in chunks of the interval's max days."""
        length = interval_length(interval)
        start, end, now = ist(start), ist(end), self.clock.now()
        bars: dict[datetime, Bar] = {}
        for lo, hi in candle_chunks(interval, start, min(end, now)):
            got = self.session.call(CANDLES, {
                "exchange": exchange, "symboltoken": token, "interval": interval,
                "fromdate": angel_minute(lo),  # Angel wants from < to, at minute resolution
                "todate": angel_minute(max(hi, lo + timedelta(minutes=1)))},
                parse=lambda d: parse_candles(d, CANDLES.name, self.rejected))
            bars.update((b.start, b) for b in got if start <= b.start < end
                        and b.start + length <= now)
        return [bars[t] for t in sorted(bars)]


def connect(cfg: Config, secrets: Secrets, clock: Clock, on_event: EventSink | None = None,
            home: str | os.PathLike = ".") -> tuple[AngelOneBroker, AngelOneMarketData]:
    """The broker and market data for a paper or live run, sharing one session and limiter.

    A relative token cache path is taken under `home`; the instrument master is cached in
    `home`/cache.
    """
    b, home = cfg.broker, Path(home)
    # 50 ms on every wait: our send time is not the gateway's arrival time
    limiter = rl.RateLimiter(clock, rl.default_limits(b.quote_per_sec), margin=0.05)
    # Angel wants the caller's public IP in a header; the registered static IP is that address
    ip = {"public_ip": b.static_ip} if b.static_ip else {}
    session = SmartApiSession(b.base_url, secrets, clock, limiter, b.timeout_sec,
                              token_cache_path=home / b.token_cache, on_event=on_event, **ip)
    return AngelOneBroker(session), AngelOneMarketData(
        session, b.instrument_master_url, home / "cache",
        underlyings=tuple(u.name for u in cfg.underlyings))


def build_angel(svc, secrets: Secrets) -> tuple[AngelOneMarketData, AngelOneBroker]:
    """What rustro.desk wires for paper and live: broker events journaled, caches beside it."""
    broker, market = connect(svc.cfg, secrets, svc.clock,
                             on_event=lambda kind, payload: svc.journal.record(kind, payload),
                             home=Path(svc.journal.path).parent)
    broker.resolve_tries = 0  # the bot resolves a lost reply by tag on later ticks, never by sleeping
    return market, broker


__all__ = ["AngelOneBroker", "AngelOneMarketData", "SmartApiSession", "build_angel", "connect",
           "order_body", "validate_order"]
