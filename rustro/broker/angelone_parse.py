"""Pure translation of SmartAPI answers: the three envelope dialects, mixed number types, row shapes.

Nothing here does I/O. Every error names the route and the field or code, so a journal line alone
says what Angel sent that we could not use.
"""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any

from rustro.broker.base import (AuthExpired, BrokerError, BrokerOrder, BrokerPosition, Fill,
                                Funds, OrderRejected, RateLimited, TransientError)
from rustro.clock import IST
from rustro.market.base import Bar, DataError, Quote, check_candle, check_price

AUTH_CODES = frozenset({"AG8001", "AG8002", "AG8003", "AG8004", "AB1010", "AB1011",
                        "AB8050", "AB8051"})
TRANSIENT_CODES = frozenset({"AB1004", "AB2001", "AB2000"})
RATE_LIMIT_TEXT = "exceeding access rate"
ANGEL_TIME = "%d-%b-%Y %H:%M:%S"  # order book updatetime / quote exchFeedTime, IST
_MISSING = object()

# getCandleData: bar length and the most days one request may span (spec 3.8).
INTERVALS: dict[str, tuple[timedelta, int]] = {
    "ONE_MINUTE": (timedelta(minutes=1), 30), "THREE_MINUTE": (timedelta(minutes=3), 60),
    "FIVE_MINUTE": (timedelta(minutes=5), 100), "TEN_MINUTE": (timedelta(minutes=10), 100),
    "FIFTEEN_MINUTE": (timedelta(minutes=15), 200), "THIRTY_MINUTE": (timedelta(minutes=30), 200),
    "ONE_HOUR": (timedelta(hours=1), 400), "ONE_DAY": (timedelta(days=1), 2000),
}


def _snippet(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line[:limit] + ("..." if len(one_line) > limit else "")


def parse_bool(value: Any, field: str, route: str) -> bool:
    """Angel's `status` is a JSON bool in real traffic but the string "true"/"false" in docs."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BrokerError(f"{route}: field {field!r} is not a boolean: {_snippet(repr(value))}")


def classify_code(route: str, code: str, message: str, order_route: bool) -> BrokerError:
    """The exception for a business failure reported with an error code."""
    text = f"{route}: {message or 'no message'} (errorcode {code or 'missing'})"
    if code in AUTH_CODES:
        return AuthExpired(text, code)
    if code in TRANSIENT_CODES:
        return TransientError(text, code)
    return (OrderRejected if order_route else BrokerError)(text, code)


def parse_response(route: str, http_status: int, body: str, order_route: bool = False) -> Any:
    """`data` of a successful answer, or the right BrokerError for any of the three dialects."""
    if http_status == 429 or (http_status == 403 and RATE_LIMIT_TEXT in body.lower()):
        raise RateLimited(f"{route}: HTTP {http_status} access rate exceeded")
    if not body.strip():
        raise TransientError(f"{route}: empty body (HTTP {http_status})")
    try:
        env = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        kind = "HTML page" if body.lstrip()[:1] == "<" else "non-JSON body"
        raise TransientError(f"{route}: {kind} (HTTP {http_status}): "
                             f"{_snippet(body)}") from None
    if isinstance(env, dict) and "status" in env:       # normal dialect
        ok, code = parse_bool(env["status"], "status", route), env.get("errorcode")
    elif isinstance(env, dict) and "success" in env:    # gateway dialect
        ok, code = parse_bool(env["success"], "success", route), env.get("errorCode")
    elif http_status >= 500:
        raise TransientError(f"{route}: HTTP {http_status} without an envelope")
    else:
        raise BrokerError(f"{route}: unrecognised response (HTTP {http_status}): "
                          f"{_snippet(body)}")
    if not ok:
        raise classify_code(route, str(code or ""), str(env.get("message") or ""),
                            order_route)
    data = env.get("data")
    return None if data in ("null", "") else data


def num(row: dict, field: str, route: str, default: Any = _MISSING) -> float:
    """A number sent as a JSON number or a decimal string; null/"" give `default` when one is set."""
    value = row.get(field, _MISSING) if isinstance(row, dict) else _MISSING
    if value is _MISSING and default is _MISSING:
        raise BrokerError(f"{route}: field {field!r} missing")
    if value is _MISSING or value is None or (isinstance(value, str) and not value.strip()):
        if default is _MISSING:
            raise BrokerError(f"{route}: field {field!r} is empty")
        return default
    if isinstance(value, bool):
        raise BrokerError(f"{route}: field {field!r} is not a number: {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float range
        raise BrokerError(f"{route}: field {field!r} is not a number: "
                          f"{_snippet(repr(value))}") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise BrokerError(f"{route}: field {field!r} is not finite: {_snippet(repr(value))}")
    return out


def qty(row: dict, field: str, route: str, default: Any = _MISSING) -> int:
    """A whole quantity, usually sent as a string ("65"); fractions are garbage, not rounded."""
    value = num(row, field, route, default)
    if value != int(value):
        raise BrokerError(f"{route}: field {field!r} is not a whole quantity: {value!r}")
    return int(value)


def text(row: dict, field: str, route: str, required: bool = True) -> str:
    value = row.get(field) if isinstance(row, dict) else None
    if isinstance(value, (dict, list)):
        raise BrokerError(f"{route}: field {field!r} is not text: {_snippet(repr(value))}")
    if value is None or (required and not str(value).strip()):
        if required:
            raise BrokerError(f"{route}: field {field!r} missing or empty")
        return ""
    return str(value).strip()


def angel_time(value: str, field: str, route: str) -> datetime | None:
    """'DD-Mon-YYYY HH:MM:SS' in IST; '' means not yet set."""
    if not value:
        return None
    try:
        return datetime.strptime(value.strip(), ANGEL_TIME).replace(tzinfo=IST)
    except ValueError:
        raise BrokerError(f"{route}: field {field!r} is not a DD-Mon-YYYY HH:MM:SS time: "
                          f"{_snippet(repr(value))}") from None


def rows(data: Any, route: str) -> list[dict]:
    """A list payload; Angel sends `null` rather than [] for empty books."""
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BrokerError(f"{route}: expected a list of rows, got {type(data).__name__}")
    return data


def parse_order(row: dict, route: str) -> BrokerOrder:
    """An order book / order details row. The state is `orderstatus`, never `status`."""
    if not isinstance(row, dict):
        raise BrokerError(f"{route}: order row is {type(row).__name__}, not an object")
    return BrokerOrder(
        order_id=text(row, "orderid", route), unique_order_id=text(row, "uniqueorderid", route),
        tag=text(row, "ordertag", route, required=False),
        exchange=text(row, "exchange", route), symbol=text(row, "tradingsymbol", route),
        token=text(row, "symboltoken", route), side=text(row, "transactiontype", route).upper(),
        qty=qty(row, "quantity", route), price=num(row, "price", route, 0.0),
        status=text(row, "orderstatus", route).lower(),
        filled_qty=qty(row, "filledshares", route, 0),
        avg_price=num(row, "averageprice", route, 0.0),
        text=text(row, "text", route, required=False),
        updated=angel_time(text(row, "updatetime", route, required=False), "updatetime", route))


def parse_fill(row: dict, route: str, trading_day: date) -> Fill:
    """A trade book row; `filltime` is time-only, so the trading day comes from the bot's clock."""
    raw = text(row, "filltime", route)
    try:
        t = time.fromisoformat(raw)
    except ValueError:
        raise BrokerError(f"{route}: field 'filltime' is not HH:MM:SS: "
                          f"{_snippet(repr(raw))}") from None
    return Fill(fill_id=text(row, "fillid", route), order_id=text(row, "orderid", route),
                exchange=text(row, "exchange", route), symbol=text(row, "tradingsymbol", route),
                token=text(row, "symboltoken", route, required=False),
                side=text(row, "transactiontype", route).upper(),
                qty=qty(row, "fillsize", route), price=num(row, "fillprice", route),
                time=datetime.combine(trading_day, t, tzinfo=IST))


def parse_position(row: dict, route: str) -> BrokerPosition:
    """A getPosition row: all strings, `netqty` signed units; P&L is realised + unrealised."""
    return BrokerPosition(
        exchange=text(row, "exchange", route), symbol=text(row, "tradingsymbol", route),
        token=text(row, "symboltoken", route), product=text(row, "producttype", route),
        net_qty=qty(row, "netqty", route), buy_qty=qty(row, "buyqty", route, 0),
        sell_qty=qty(row, "sellqty", route, 0), buy_avg=num(row, "buyavgprice", route, 0.0),
        sell_avg=num(row, "sellavgprice", route, 0.0), realised=num(row, "realised", route, 0.0),
        unrealised=num(row, "unrealised", route, 0.0), ltp=num(row, "ltp", route, 0.0))


def parse_funds(data: Any, route: str) -> Funds:
    """getRMS: decimal strings, some null. Cash is required; the rest default to 0."""
    if not isinstance(data, dict):
        raise BrokerError(f"{route}: expected an object, got {type(data).__name__}")
    return Funds(available_cash=num(data, "availablecash", route),
                 net=num(data, "net", route, 0.0),
                 utilised=num(data, "utiliseddebits", route, 0.0))


def parse_quote(row: dict, route: str, now: datetime, index: int | None = None) -> Quote:
    """A FULL-mode quote row; best bid/ask are depth level 0 (0 when that side is empty).

    A negative ltp, bid or ask is a DataError naming the row: the quote is unusable, not zero.
    """
    if not isinstance(row, dict):
        raise BrokerError(f"{route}: quote row is {type(row).__name__}, not an object")
    depth = row.get("depth") or {}
    if not isinstance(depth, dict):
        raise BrokerError(f"{route}: field 'depth' is not an object")

    def best(side: str) -> float:
        levels = depth.get(side) or []
        if not isinstance(levels, list) or (levels and not isinstance(levels[0], dict)):
            raise BrokerError(f"{route}: field 'depth.{side}' is not a list of levels")
        return num(levels[0], "price", f"{route} depth.{side}[0]") if levels else 0.0

    feed = text(row, "exchFeedTime", route, required=False)
    token = text(row, "symbolToken", route)
    ltp, bid, ask = num(row, "ltp", route), best("buy"), best("sell")
    for field, value in (("ltp", ltp), ("depth.buy[0].price", bid), ("depth.sell[0].price", ask)):
        check_price(value, route, field, index, token=token)
    return Quote(token=token, ltp=ltp, bid=bid, ask=ask,
                 ts=angel_time(feed, "exchFeedTime", route) or now)


def parse_quotes(data: Any, route: str, now: datetime) -> list[Quote]:
    """The `fetched` rows of a quote answer (`unfetched` tokens are simply absent)."""
    fetched = data.get("fetched") if isinstance(data, dict) else None
    if not isinstance(fetched, list) or not all(isinstance(r, dict) for r in fetched):
        raise BrokerError(f"{route}: field 'fetched' missing or not a list of rows")
    return [parse_quote(r, route, now, i) for i, r in enumerate(fetched)]


def parse_ltp(data: Any, route: str, token: str = "") -> float:
    """getLtpData's `ltp`: a finite price >= 0 (a negative one is a DataError, never used)."""
    value = num(data if isinstance(data, dict) else {}, "ltp", route)
    return check_price(value, route, "ltp", token=token)


def parse_candles(data: Any, route: str, rejected: list[DataError] | None = None) -> list[Bar]:
    """The candles of a getCandleData answer.

    A row we cannot use (malformed, a zero or negative price, high < low, open or close outside
    [low, high], NaN, negative volume) raises its DataError, unless `rejected` is given: then the
    row is skipped, so it is a missing bar that gap detection sees, and its error is appended there
    for the journal.
    """
    if data is not None and not isinstance(data, list):
        raise BrokerError(f"{route}: data is not a list of candles")
    bars = []
    for i, row in enumerate(data or []):
        try:
            bars.append(parse_candle(row, route, i))
        except DataError as err:
            err.row = row
            if rejected is None:
                raise
            rejected.append(err)
    return bars


CANDLE_FIELDS = ("open", "high", "low", "close", "volume")


def parse_candle(row: Any, route: str, index: int | None = None) -> Bar:
    """[iso ts with +05:30, open, high, low, close, volume]; the timestamp is the bar's start.

    Every refusal is a DataError naming route, row index, field and value.
    """
    if not isinstance(row, list) or len(row) < 6:
        raise DataError(route, index, "row", row, "is not [ts, o, h, l, c, v]")
    try:
        start = datetime.fromisoformat(row[0]) if isinstance(row[0], str) else None
        start = start.astimezone(IST) if start is not None and start.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: a far offset near year 1 or 9999
        start = None
    if start is None:
        raise DataError(route, index, "timestamp", row[0], "is not an aware ISO time")
    values = []
    for i, field in enumerate(CANDLE_FIELDS, start=1):
        try:
            values.append(num({field: row[i]}, field, route))
        except BrokerError:
            raise DataError(route, index, field, row[i], "is not a finite number") from None
    check_candle(*values, route, index)
    o, h, l, c, v = values
    return Bar(start=start, open=o, high=h, low=l, close=c, volume=v)


def interval_length(interval: str) -> timedelta:
    if interval not in INTERVALS:
        raise ValueError(f"unknown candle interval {interval!r}; one of {sorted(INTERVALS)}")
    return INTERVALS[interval][0]


def candle_chunks(interval: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Split [start, end] into request windows no longer than the interval's max days.

    Windows do not overlap: the next one starts a minute after the previous ends (Angel's
    from/to are minute-resolution and both inclusive).
    """
    interval_length(interval)
    span = timedelta(days=INTERVALS[interval][1])
    out, lo = [], start
    while lo < end:
        hi = min(lo + span, end)
        out.append((lo, hi))
        lo = hi + timedelta(minutes=1)
    return out


def angel_minute(dt: datetime) -> str:
    """The 'YYYY-MM-DD HH:MM' IST form getCandleData wants."""
    return dt.astimezone(IST).strftime("%Y-%m-%d %H:%M")
