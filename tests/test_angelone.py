"""AngelOneBroker / AngelOneMarketData / SmartApiSession against recorded-shape answers (no network)."""
import base64
import hashlib
import hmac
import json
import os
import stat
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import responses
from freezegun import freeze_time

from rustro.broker import angelone_parse as ap
from rustro.broker.angelone import AngelOneBroker, AngelOneMarketData, build_angel, connect
from rustro.broker.angelone_session import SmartApiSession
from rustro.broker.base import (AmbiguousOrder, AuthExpired, BrokerError, OrderRejected,
                                OrderRequest, RateLimited, TransientError)
from rustro.broker.ratelimit import RateLimiter
from rustro.clock import IST, VirtualClock
from rustro.config import Config
from rustro.credentials import Secrets
from rustro.market.base import DataError

BASE = "https://api.test"
SEC = "/rest/secure/angelbroking"
P = {
    "login": "/rest/auth/angelbroking/user/v1/loginByPassword",
    "tokens": "/rest/auth/angelbroking/jwt/v1/generateTokens",
    "logout": f"{SEC}/user/v1/logout",
    "rms": f"{SEC}/user/v1/getRMS",
    "place": f"{SEC}/order/v1/placeOrder",
    "modify": f"{SEC}/order/v1/modifyOrder",
    "cancel": f"{SEC}/order/v1/cancelOrder",
    "book": f"{SEC}/order/v1/getOrderBook",
    "details": f"{SEC}/order/v1/details/05ebf91b-bea4-4a1d-b0f2-4259606570e3",
    "trades": f"{SEC}/order/v1/getTradeBook",
    "positions": f"{SEC}/order/v1/getPosition",
    "ltp": f"{SEC}/order/v1/getLtpData",
    "quote": f"{SEC}/market/v1/quote",
    "candles": f"{SEC}/historical/v1/getCandleData",
}
MASTER_URL = "https://files.test/OpenAPIScripMaster.json"
DATA = Path(__file__).parent / "data" / "angel"
ORDER_ROW = json.loads((DATA / "order_row.json").read_text())
TRADE_ROW = json.loads((DATA / "trade_row.json").read_text())
POSITION_ROW = json.loads((DATA / "position_row.json").read_text())
RMS_DATA = json.loads((DATA / "rms.json").read_text())
QUOTE_ROW = json.loads((DATA / "quote_full.json").read_text())

SECRETS = Secrets(api_key="kEy-SeCrEt-4242", client_code="Z9876543", mpin="7319",
                  totp_secret="JBSWY3DPEHPK3PXPJBSWY3DP")
TOKENS_1 = {"jwtToken": "eyJ.jwt-one.sig", "refreshToken": "eyJ.refresh-one.sig",
            "feedToken": "eyJ.feed-one.sig"}
TOKENS_2 = {"jwtToken": "eyJ.jwt-two.sig", "refreshToken": "eyJ.refresh-two.sig",
            "feedToken": "eyJ.feed-two.sig"}
SENSITIVE = [SECRETS.api_key, SECRETS.client_code, SECRETS.mpin, SECRETS.totp_secret,
             *TOKENS_1.values(), *TOKENS_2.values()]
T0 = datetime(2026, 1, 6, 9, 5, tzinfo=IST)  # a Tuesday
RATE_TEXT = "Access denied because of exceeding access rate"
HTML = ("<html><head><title>Request Rejected</title></head><body>The requested URL was rejected. "
        "Your support ID is: 1234567890</body></html>")


def ok(data):
    return json.dumps({"status": True, "message": "SUCCESS", "errorcode": "", "data": data})


def fail(code, message, status=False):
    return json.dumps({"status": status, "message": message, "errorcode": code, "data": None})


def gateway(code="AG8001", message="Invalid Token"):
    return json.dumps({"success": False, "message": message, "errorCode": code, "data": ""})


@dataclass
class Env:
    rsps: responses.RequestsMock
    clock: VirtualClock
    session: SmartApiSession
    broker: AngelOneBroker
    md: AngelOneMarketData
    tmp: Path
    events: list = field(default_factory=list)

    def add(self, method, key, body="", status=200, **kw):
        url = BASE + P[key] if key in P else key
        self.rsps.add(method, url, body=body, status=status, **kw)

    def calls(self, key):
        url = BASE + P[key] if key in P else key
        return [c for c in self.rsps.calls if c.request.url.split("?")[0] == url]

    def kinds(self):
        return [k for k, _ in self.events]

    def elapsed(self):
        return (self.clock.now() - T0).total_seconds()


def make_session(clock, tmp, events, secrets=SECRETS):
    return SmartApiSession(BASE, secrets, clock, RateLimiter(clock), timeout=5,
                           token_cache_path=tmp / "token.json",
                           on_event=lambda k, p: events.append((k, p)),
                           mac_address="02:fc:00:00:00:01")


@pytest.fixture
def env(tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        clock = VirtualClock(T0)
        events: list = []
        session = make_session(clock, tmp_path, events)
        e = Env(rsps, clock, session, AngelOneBroker(session),
                AngelOneMarketData(session, MASTER_URL, tmp_path / "master"), tmp_path, events)
        yield e
    # whatever the test did: no secret and no live token ever reached the journal callback
    blob = json.dumps(e.events)
    for s in SENSITIVE:
        assert s not in blob


@pytest.fixture
def live(env):
    """Logged in with TOKENS_1; HTTP call log cleared."""
    env.add("POST", "login", ok(TOKENS_1))
    env.session.login()
    env.rsps.calls.reset()
    env.events.clear()
    return env


def order(tag="r1-NIFTY-0001", **kw):
    base = dict(tag=tag, exchange="NFO", symbol="NIFTY13JAN2624000CE", token="48223", side="BUY",
                qty=65, price=112.5)
    base.update(kw)
    return OrderRequest(**base)


# ---- routes table: (method, path key, happy data, call, check) -------------------------------
CANDLE_ROWS = [["2026-01-05T10:15:00+05:30", 100, 101.5, 99.0, 100.5, 0],
               ["2026-01-05T11:15:00+05:30", "100.5", "102", "100", "101.75", "1200"]]


def _check_candles(bars):
    assert [b.start for b in bars] == [datetime(2026, 1, 5, 10, 15, tzinfo=IST),
                                       datetime(2026, 1, 5, 11, 15, tzinfo=IST)]
    assert (bars[1].open, bars[1].high, bars[1].close, bars[1].volume) == (100.5, 102, 101.75, 1200)


ROUTES = {
    "funds": ("GET", "rms", RMS_DATA, lambda e: e.broker.funds(),
              lambda f: (f.available_cash, f.net, f.utilised) == (100000.0, 99250.5, 749.5)),
    "order_book": ("GET", "book", [ORDER_ROW], lambda e: e.broker.order_book(),
                   lambda b: [o.order_id for o in b] == ["260106000000970"]),
    "order_details": ("GET", "details", ORDER_ROW,
                      lambda e: e.broker.order_details("05ebf91b-bea4-4a1d-b0f2-4259606570e3"),
                      lambda o: o.status == "trigger pending"),
    "trade_book": ("GET", "trades", [TRADE_ROW], lambda e: e.broker.trade_book(),
                   lambda fills: [f.fill_id for f in fills] == ["50005750"]),
    "positions": ("GET", "positions", [POSITION_ROW], lambda e: e.broker.positions(),
                  lambda ps: [p.net_qty for p in ps] == [-30]),
    "ltp": ("POST", "ltp", {"exchange": "NSE", "tradingsymbol": "Nifty 50",
                            "symboltoken": "99926000", "ltp": 24012.35},
            lambda e: e.md.ltp("NSE", "99926000"), lambda v: v == 24012.35),
    "quote": ("POST", "quote", {"fetched": [QUOTE_ROW], "unfetched": []},
              lambda e: e.md.quote("NFO", "48223"), lambda q: (q.bid, q.ask) == (112.4, 112.6)),
    "candles": ("POST", "candles", CANDLE_ROWS,
                lambda e: e.md.candles("NSE", "99926000", "ONE_HOUR",
                                       datetime(2026, 1, 5, 9, 15, tzinfo=IST),
                                       datetime(2026, 1, 5, 15, 30, tzinfo=IST)),
                lambda bars: _check_candles(bars) is None),
    "modify": ("POST", "modify", {"orderid": "260106000000970", "uniqueorderid": "u"},
               lambda e: e.broker.modify_order("260106000000970", order(price=113.0)),
               lambda r: r is None),
    "cancel": ("POST", "cancel", {"orderid": "260106000000970", "uniqueorderid": "u"},
               lambda e: e.broker.cancel_order("260106000000970"), lambda r: r is None),
}
ORDER_ROUTES = {"modify", "cancel"}
ROUTES_NAME_RE = ("getRMS|getOrderBook|orderDetails|getTradeBook|getPosition|getLtpData|quote|"
                  "getCandleData|modifyOrder|cancelOrder")
FAULTS = {
    "empty body": dict(body=""),
    "HTTP 400 empty body": dict(body="", status=400),
    "HTML page": dict(body=HTML, status=200),
    "HTTP 502": dict(body="Bad Gateway", status=502),
    "read timeout": dict(body=requests.exceptions.ReadTimeout("read timed out")),
    "connect timeout": dict(body=requests.exceptions.ConnectTimeout("connect timed out")),
    "connection reset": dict(body=requests.exceptions.ConnectionError("reset by peer")),
    "AB1004 catch-all": dict(body=fail("AB1004", "Something Went Wrong, Please Try After Sometime")),
}


@pytest.mark.parametrize("name", ROUTES)
def test_happy_path(live, name):
    method, key, data, call, check = ROUTES[name]
    live.add(method, key, ok(data))
    assert check(call(live))
    assert len(live.calls(key)) == 1


@pytest.mark.parametrize("name", ROUTES)
def test_status_false_is_a_definitive_error_naming_route_and_code(live, name):
    method, key, _, call, _ = ROUTES[name]
    live.add(method, key, fail("AB1012", "Invalid Product Type"))
    with pytest.raises(BrokerError) as info:
        call(live)
    err = info.value
    assert err.code == "AB1012" and "Invalid Product Type" in str(err)
    assert isinstance(err, OrderRejected) == (name in ORDER_ROUTES)
    assert not isinstance(err, (TransientError, AuthExpired, RateLimited))
    assert len(live.calls(key)) == 1
    assert ("broker_error", "AB1012") in [(k, p.get("code")) for k, p in live.events]


@pytest.mark.parametrize("name", ROUTES)
def test_gateway_invalid_token_refreshes_then_retries_once(live, name):
    method, key, data, call, check = ROUTES[name]
    live.add(method, key, gateway("AG8001"))
    live.add(method, key, ok(data))
    live.add("POST", "tokens", ok(TOKENS_2))
    assert check(call(live))
    calls = live.calls(key)
    assert len(calls) == 2 and len(live.calls("tokens")) == 1
    assert calls[0].request.headers["Authorization"] == f"Bearer {TOKENS_1['jwtToken']}"
    assert calls[1].request.headers["Authorization"] == f"Bearer {TOKENS_2['jwtToken']}"
    refresh_body = json.loads(live.calls("tokens")[0].request.body)
    assert refresh_body == {"refreshToken": TOKENS_1["refreshToken"]}
    assert "Authorization" not in live.calls("tokens")[0].request.headers
    assert "token_refreshed" in live.kinds()


@pytest.mark.parametrize("name", ROUTES)
def test_auth_error_twice_gives_up_after_one_retry(live, name):
    method, key, _, call, _ = ROUTES[name]
    live.add(method, key, gateway("AG8002", "Token Expired"))
    live.add("POST", "tokens", ok(TOKENS_2))
    with pytest.raises(AuthExpired, match="AG8002"):
        call(live)
    assert len(live.calls(key)) == 2


@pytest.mark.parametrize("name", ROUTES)
def test_rate_limit_403_backs_off_then_retries(live, name):
    method, key, data, call, check = ROUTES[name]
    live.add(method, key, RATE_TEXT, status=403, content_type="text/plain")
    live.add(method, key, ok(data))
    assert check(call(live))
    assert len(live.calls(key)) == 2
    assert live.kinds().count("rate_limited") == 1
    assert live.elapsed() >= 1.0  # backed off on the bot's clock


@pytest.mark.parametrize("name", ROUTES)
def test_rate_limit_gives_up_after_three_tries(live, name):
    method, key, _, call, _ = ROUTES[name]
    live.add(method, key, RATE_TEXT, status=403)
    with pytest.raises(RateLimited, match=ROUTES_NAME_RE):
        call(live)
    assert len(live.calls(key)) == 3
    assert [p["backoff_sec"] for k, p in live.events if k == "rate_limited"] == [1, 2, 4]



@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", ROUTES)
def test_transient_faults_retry_reads_once_and_never_order_actions(live, name, fault):
    method, key, _, call, _ = ROUTES[name]
    live.add(method, key, **FAULTS[fault])
    with pytest.raises(TransientError) as info:
        call(live)
    assert not isinstance(info.value, AmbiguousOrder)
    assert len(live.calls(key)) == (1 if name in ORDER_ROUTES else 2)
    assert info.value.text.split(":")[0] in ROUTES_NAME_RE.split("|")


@pytest.mark.parametrize("name", [n for n in ROUTES if n not in ORDER_ROUTES])
def test_transient_fault_then_success_on_a_read(live, name):
    method, key, data, call, check = ROUTES[name]
    live.add(method, key, body="")
    live.add(method, key, ok(data))
    assert check(call(live))


# ---- placeOrder ------------------------------------------------------------------------------
def book_row(tag, orderid="260106000000971", uid="9b2c7e52-0000-4000-8000-000000000001"):
    return dict(ORDER_ROW, ordertag=tag, orderid=orderid, uniqueorderid=uid, orderstatus="open")


def test_place_order_happy_path_sends_the_sdk_body(live):
    live.add("POST", "place", ok({"script": "NIFTY13JAN2624000CE", "orderid": "260106000000971",
                                  "uniqueorderid": "9b2c7e52"}))
    ack = live.broker.place_order(order())
    assert (ack.order_id, ack.unique_order_id) == ("260106000000971", "9b2c7e52")
    body = json.loads(live.calls("place")[0].request.body)
    assert body == {"variety": "NORMAL", "tradingsymbol": "NIFTY13JAN2624000CE",
                    "symboltoken": "48223", "transactiontype": "BUY", "exchange": "NFO",
                    "ordertype": "LIMIT", "producttype": "INTRADAY", "duration": "DAY",
                    "price": "112.50", "triggerprice": "0", "squareoff": "0", "stoploss": "0",
                    "quantity": "65", "ordertag": "r1-NIFTY-0001"}
    assert len(live.calls("book")) == 0


def test_place_order_status_false_is_rejected_without_lookup(live):
    live.add("POST", "place", fail("AB4008", "ordertag length should be less than 20 characters"))
    with pytest.raises(OrderRejected, match="AB4008.*placeOrder"):
        live.broker.place_order(order())
    assert len(live.calls("place")) == 1 and len(live.calls("book")) == 0


@pytest.mark.parametrize("fault", ["read timeout", "empty body", "HTTP 400 empty body",
                                   "HTML page", "HTTP 502", "connection reset", "AB1004 catch-all"])
def test_ambiguous_place_is_resolved_by_tag_with_one_post(live, fault):
    live.add("POST", "place", **FAULTS[fault])
    live.add("GET", "book", ok(None))                                    # not there yet
    live.add("GET", "book", ok([book_row("other-tag", "1", "u-1"), book_row("r1-NIFTY-0001")]))
    ack = live.broker.place_order(order())
    assert (ack.order_id, ack.unique_order_id) == ("260106000000971",
                                                   "9b2c7e52-0000-4000-8000-000000000001")
    assert len(live.calls("place")) == 1
    assert len(live.calls("book")) == 2
    resolved = [p for k, p in live.events if k == "broker_error" and "resolved" in p]
    assert resolved == [{"route": "placeOrder", "error": "AmbiguousOrder", "tag": "r1-NIFTY-0001",
                         "resolved": True, "order_id": "260106000000971"}]


def test_ambiguous_place_not_in_book_raises_with_one_post(live):
    live.add("POST", "place", body=requests.exceptions.ReadTimeout("read timed out"))
    live.add("GET", "book", ok([book_row("other-tag")]))
    with pytest.raises(AmbiguousOrder, match="r1-NIFTY-0001") as info:
        live.broker.place_order(order())
    assert "placeOrder" in str(info.value)
    assert len(live.calls("place")) == 1
    assert len(live.calls("book")) == 3              # resolve_tries
    assert live.elapsed() >= 1 + 2 + 4               # backoff on the bot's clock
    assert [p["resolved"] for k, p in live.events if "resolved" in p] == [False]


def test_ambiguous_place_survives_a_failing_lookup(live):
    live.add("POST", "place", body="")
    live.add("GET", "book", body=requests.exceptions.ReadTimeout())
    live.add("GET", "book", body=requests.exceptions.ReadTimeout())  # the read's own retry
    live.add("GET", "book", ok([book_row("r1-NIFTY-0001")]))
    assert live.broker.place_order(order()).order_id == "260106000000971"
    assert len(live.calls("place")) == 1


def test_status_true_without_orderid_is_ambiguous(live):
    live.add("POST", "place", ok(None))
    live.add("GET", "book", ok([book_row("r1-NIFTY-0001")]))
    assert live.broker.place_order(order()).order_id == "260106000000971"
    assert len(live.calls("place")) == 1


def test_place_connect_timeout_is_not_sent_so_not_ambiguous(live):
    live.add("POST", "place", body=requests.exceptions.ConnectTimeout())
    with pytest.raises(TransientError) as info:
        live.broker.place_order(order())
    assert not isinstance(info.value, AmbiguousOrder)
    assert len(live.calls("place")) == 1 and len(live.calls("book")) == 0


def test_place_rate_limited_is_resent_with_the_same_tag(live):
    live.add("POST", "place", RATE_TEXT, status=403)
    live.add("POST", "place", ok({"orderid": "260106000000971", "uniqueorderid": "u-9"}))
    assert live.broker.place_order(order()).order_id == "260106000000971"
    tags = [json.loads(c.request.body)["ordertag"] for c in live.calls("place")]
    assert tags == ["r1-NIFTY-0001", "r1-NIFTY-0001"]


def test_place_invalid_token_refreshes_and_resends(live):
    live.add("POST", "place", gateway())
    live.add("POST", "place", ok({"orderid": "260106000000971", "uniqueorderid": "u-9"}))
    live.add("POST", "tokens", ok(TOKENS_2))
    assert live.broker.place_order(order()).order_id == "260106000000971"
    assert len(live.calls("place")) == 2


@pytest.mark.parametrize("bad, match", [
    (dict(tag="x" * 21), "1..20"), (dict(tag=""), "1..20"), (dict(side="HOLD"), "side"),
    (dict(qty=0), "qty"), (dict(qty=6.5), "qty"), (dict(price=112.52), "price"),
    (dict(price=0.0), "price"), (dict(order_type="STOPLOSS_LIMIT"), "order_type"),
    (dict(token=""), "token"),
])
def test_bad_order_is_refused_before_sending(live, bad, match):
    with pytest.raises(ValueError, match=match):
        live.broker.place_order(order(**bad))
    assert len(live.rsps.calls) == 0


def test_market_order_sends_price_zero_and_modify_body(live):
    live.add("POST", "place", ok({"orderid": "1", "uniqueorderid": "u"}))
    live.add("POST", "modify", ok({"orderid": "1", "uniqueorderid": "u"}))
    live.broker.place_order(order(order_type="MARKET", price=0.0))
    assert json.loads(live.calls("place")[0].request.body)["price"] == "0"
    live.broker.modify_order("1", order(price=113.05, qty=130))
    assert json.loads(live.calls("modify")[0].request.body) == {
        "variety": "NORMAL", "orderid": "1", "ordertype": "LIMIT", "producttype": "INTRADAY",
        "duration": "DAY", "price": "113.05", "quantity": "130",
        "tradingsymbol": "NIFTY13JAN2624000CE", "symboltoken": "48223", "exchange": "NFO"}


# ---- parsing of rows -------------------------------------------------------------------------
def test_order_row_uses_orderstatus_and_parses_numbers_and_time(live):
    live.add("GET", "book", ok([ORDER_ROW]))
    (o,) = live.broker.order_book()
    assert o.status == "trigger pending"               # not `status` ("modified")
    assert (o.qty, o.filled_qty, o.avg_price, o.price) == (65, 65, 112.35, 112.5)
    assert o.tag == "r1-NIFTY-0001" and o.side == "BUY"
    assert o.unique_order_id == "05ebf91b-bea4-4a1d-b0f2-4259606570e3"
    assert o.updated == datetime(2026, 1, 6, 10, 0, 16, tzinfo=IST)


def test_empty_books_come_as_null(live):
    for key in ("book", "trades", "positions"):
        live.add("GET", key, ok(None))
    assert live.broker.order_book() == []
    assert live.broker.trade_book() == []
    assert live.broker.positions() == []


@pytest.mark.parametrize("field_, value", [("quantity", "abc"), ("quantity", "6.5"),
                                           ("quantity", None), ("price", "1O2"),
                                           ("orderstatus", ""), ("updatetime", "2026-01-06")])
def test_garbage_order_field_names_field_and_route(live, field_, value):
    live.add("GET", "book", ok([dict(ORDER_ROW, **{field_: value})]))
    with pytest.raises(BrokerError) as info:
        live.broker.order_book()
    assert "getOrderBook" in str(info.value) and field_ in str(info.value)


def test_missing_field_is_named(live):
    row = {k: v for k, v in ORDER_ROW.items() if k != "uniqueorderid"}
    live.add("GET", "book", ok([row]))
    with pytest.raises(BrokerError, match="getOrderBook.*'uniqueorderid' missing"):
        live.broker.order_book()


def test_trade_fill_time_takes_the_trading_day_from_the_clock(live):
    live.add("GET", "trades", ok([TRADE_ROW]))
    (f,) = live.broker.trade_book()
    assert f.time == datetime(2026, 1, 6, 13, 27, 53, tzinfo=IST)
    assert (f.qty, f.price, f.order_id, f.side) == (65, 112.35, "260106000000970", "BUY")


def test_positions_are_signed_and_parsed_from_strings(live):
    live.add("GET", "positions", ok([POSITION_ROW]))
    (p,) = live.broker.positions()
    assert (p.net_qty, p.sell_qty, p.sell_avg, p.ltp, p.unrealised) == (-30, 30, 165.0, 165.45, 0)
    assert (p.token, p.product) == ("52630", "INTRADAY")


def test_funds_need_cash_but_tolerate_null_others(live):
    live.add("GET", "rms", ok(dict(RMS_DATA, net=None, utiliseddebits=None)))
    f = live.broker.funds()
    assert (f.available_cash, f.net, f.utilised) == (100000.0, 0.0, 0.0)
    live.rsps.replace("GET", BASE + P["rms"], body=ok(dict(RMS_DATA, availablecash=None)))
    with pytest.raises(BrokerError, match="getRMS.*availablecash"):
        live.broker.funds()


def test_status_as_string_and_data_null_string(live):
    live.add("GET", "book", json.dumps({"status": "true", "message": "SUCCESS", "errorcode": "",
                                        "data": "null"}))
    assert live.broker.order_book() == []
    live.add("GET", "positions", fail("AB1016", "Position not found", status="false"))
    with pytest.raises(BrokerError, match="AB1016"):
        live.broker.positions()


def test_order_details_not_found(live):
    live.add("GET", "details", fail("AB1007", "Order not found"))
    with pytest.raises(BrokerError, match="AB1007.*orderDetails"):
        live.broker.order_details("05ebf91b-bea4-4a1d-b0f2-4259606570e3")


# ---- market data -------------------------------------------------------------------------------
def test_ltp_body_and_string_price(live):
    live.add("POST", "ltp", ok({"ltp": "14.35"}))
    assert live.md.vix() == 14.35
    assert json.loads(live.calls("ltp")[0].request.body) == {
        "exchange": "NSE", "tradingsymbol": "India VIX", "symboltoken": "99926017"}


def test_ltp_of_an_unknown_token_looks_its_symbol_up_in_the_master(live):
    live.add("GET", MASTER_URL, json.dumps([{"token": "48223", "symbol": "NIFTY13JAN2624000CE",
                                             "exch_seg": "NFO"}]))
    live.add("POST", "ltp", ok({"ltp": 112.5}))
    assert live.md.ltp("NFO", "48223") == 112.5
    assert json.loads(live.calls("ltp")[0].request.body)["tradingsymbol"] == "NIFTY13JAN2624000CE"
    with pytest.raises(BrokerError, match="'777'"):
        live.md.ltp("NFO", "777")
    assert len(live.calls(MASTER_URL)) == 1


def test_quote_best_bid_ask_and_feed_time(live):
    live.add("POST", "quote", ok({"fetched": [QUOTE_ROW], "unfetched": []}))
    q = live.md.quote("NFO", "48223")
    assert (q.token, q.ltp, q.bid, q.ask) == ("48223", 112.5, 112.4, 112.6)
    assert q.ts == datetime(2026, 1, 6, 10, 46, 10, tzinfo=IST)
    assert json.loads(live.calls("quote")[0].request.body) == {
        "mode": "FULL", "exchangeTokens": {"NFO": ["48223"]}}


def test_quote_with_an_empty_side_has_no_spread(live):
    row = dict(QUOTE_ROW, depth={"buy": [], "sell": QUOTE_ROW["depth"]["sell"]})
    live.add("POST", "quote", ok({"fetched": [row], "unfetched": []}))
    q = live.md.quote("NFO", "48223")
    assert q.bid == 0 and q.spread_pct == float("inf")


def test_quote_unfetched_token_is_an_error(live):
    live.add("POST", "quote", ok({"fetched": [], "unfetched": [{"exchange": "NFO",
                                                                  "symbolToken": "48223"}]}))
    with pytest.raises(BrokerError, match="quote.*'48223'"):
        live.md.quote("NFO", "48223")


def test_quotes_are_batched_by_fifty_at_one_per_second(live):
    tokens = [str(40000 + i) for i in range(120)]
    for _ in range(3):
        live.add("POST", "quote", ok({"fetched": [], "unfetched": []}))
    live.md.quotes("NFO", tokens)
    sent = [json.loads(c.request.body)["exchangeTokens"]["NFO"] for c in live.calls("quote")]
    assert [len(s) for s in sent] == [50, 50, 20] and sum(sent, []) == tokens
    assert live.elapsed() == pytest.approx(2.0)  # the strict 1/s quote limit


def test_candles_90_days_of_minutes_are_chunked_within_30_days(live):
    live.add("POST", "candles", ok([]))
    start = datetime(2025, 10, 1, 9, 15, tzinfo=IST)
    live.md.candles("NSE", "99926000", "ONE_MINUTE", start, start + timedelta(days=90))
    bodies = [json.loads(c.request.body) for c in live.calls("candles")]
    assert [(b["fromdate"], b["todate"]) for b in bodies] == [
        ("2025-10-01 09:15", "2025-10-31 09:15"),
        ("2025-10-31 09:16", "2025-11-30 09:16"),
        ("2025-11-30 09:17", "2025-12-30 09:15")]
    fmt = "%Y-%m-%d %H:%M"
    for b in bodies:
        span = datetime.strptime(b["todate"], fmt) - datetime.strptime(b["fromdate"], fmt)
        assert timedelta(0) < span <= timedelta(days=30)
        assert (b["exchange"], b["symboltoken"], b["interval"]) == ("NSE", "99926000", "ONE_MINUTE")


def test_candles_return_completed_bars_in_range_once_each(live):
    live.clock.set(datetime(2026, 1, 6, 12, 30, tzinfo=IST))
    rows = [["2026-01-06T09:15:00+05:30", 1, 2, 0.5, 1.5, 0],   # before start: dropped
            ["2026-01-06T10:15:00+05:30", 1, 2, 0.5, 1.5, 0],
            ["2026-01-06T11:15:00+05:30", 1, 2, 0.5, 1.5, 0],   # complete at 12:15
            ["2026-01-06T12:15:00+05:30", 1, 2, 0.5, 1.5, 0]]   # still forming: dropped
    live.add("POST", "candles", ok(rows))
    bars = live.md.candles("NSE", "99926000", "ONE_HOUR", datetime(2026, 1, 6, 10, 0, tzinfo=IST),
                           datetime(2026, 1, 6, 15, 30, tzinfo=IST))
    assert [b.start.hour for b in bars] == [10, 11]
    assert json.loads(live.calls("candles")[0].request.body)["todate"] == "2026-01-06 12:30"


def test_candles_bad_input_and_bad_rows(live):
    t = datetime(2026, 1, 5, 9, 15, tzinfo=IST)
    with pytest.raises(ValueError, match="TWO_HOUR"):
        live.md.candles("NSE", "1", "TWO_HOUR", t, t + timedelta(days=1))
    with pytest.raises(ValueError, match="naive"):
        live.md.candles("NSE", "1", "ONE_HOUR", datetime(2026, 1, 5), t)
    assert live.md.candles("NSE", "1", "ONE_HOUR", t, t) == []
    # a bad row is a missing bar, reported for the journal rather than failing the whole call
    live.add("POST", "candles", ok([["2026-01-05T10:15:00", 1, 2, 0.5, 1, 0]]))
    assert live.md.candles("NSE", "1", "ONE_HOUR", t, t + timedelta(days=1)) == []
    [err] = live.md.drain_rejected()
    assert isinstance(err, DataError) and isinstance(err, BrokerError)
    assert (err.route, err.index, err.field) == ("getCandleData", 0, "timestamp")
    assert "getCandleData row 0" in str(err)
    live.rsps.replace("POST", BASE + P["candles"], body=ok([["2026-01-05T10:15:00+05:30", 1, "x",
                                                              3, 4, 0]]))
    assert live.md.candles("NSE", "1", "ONE_HOUR", t, t + timedelta(days=1)) == []
    [err] = live.md.drain_rejected()
    assert (err.field, err.value) == ("high", "x") and "'high'" in str(err)
    live.rsps.replace("POST", BASE + P["candles"], body=ok({"candles": []}))
    with pytest.raises(BrokerError, match="getCandleData.*not a list"):   # the answer itself
        live.md.candles("NSE", "1", "ONE_HOUR", t, t + timedelta(days=1))


BAD_CANDLES = {   # name: (row, field named, value named)
    "zero open": (["2026-01-05T11:15:00+05:30", 0, 2, 1, 1.5, 10], "open", 0.0),
    "negative low": (["2026-01-05T11:15:00+05:30", 1, 2, -1, 1.5, 10], "low", -1.0),
    "high below low": (["2026-01-05T11:15:00+05:30", 1.5, 1, 2, 1.5, 10], "high", 1.0),
    "open above high": (["2026-01-05T11:15:00+05:30", 3, 2, 1, 1.5, 10], "open", 3.0),
    "close below low": (["2026-01-05T11:15:00+05:30", 1.5, 2, 1, 0.5, 10], "close", 0.5),
    "NaN close": (["2026-01-05T11:15:00+05:30", 1.5, 2, 1, "NaN", 10], "close", "NaN"),
    "inf high": (["2026-01-05T11:15:00+05:30", 1.5, "inf", 1, 1.5, 10], "high", "inf"),
    "negative volume": (["2026-01-05T11:15:00+05:30", 1.5, 2, 1, 1.5, -5], "volume", -5.0),
    "short row": (["2026-01-05T11:15:00+05:30", 1.5, 2, 1, 1.5], "row", None),
}


@pytest.mark.parametrize("name", BAD_CANDLES)
def test_bad_candle_is_skipped_as_a_missing_bar_and_reported(live, name):
    bad, field_, value = BAD_CANDLES[name]
    rows = [["2026-01-05T10:15:00+05:30", 1, 2, 0.5, 1.5, 0], bad,
            ["2026-01-05T12:15:00+05:30", 1, 2, 0.5, 1.5, 0]]
    live.add("POST", "candles", ok(rows))
    bars = live.md.candles("NSE", "99926000", "ONE_HOUR", datetime(2026, 1, 5, 9, 15, tzinfo=IST),
                           datetime(2026, 1, 5, 15, 30, tzinfo=IST))
    assert [b.start.hour for b in bars] == [10, 12]            # 11:15 is a gap, not a bar
    [err] = live.md.drain_rejected()
    assert (err.route, err.index, err.field) == ("getCandleData", 1, field_)
    if value is not None:
        assert err.value == value
    p = err.payload()
    json.dumps(p, allow_nan=False)                              # the journal takes it as is
    assert p["route"] == "getCandleData" and p["index"] == 1 and p["field"] == field_
    assert live.md.drain_rejected() == []


@pytest.mark.parametrize("where, value", [("ltp", -1), ("buy", -112.4), ("sell", -0.05)])
def test_quote_with_a_negative_price_is_a_data_error_naming_the_row(live, where, value):
    row = json.loads(json.dumps(QUOTE_ROW))
    if where == "ltp":
        row["ltp"] = value
    else:
        row["depth"][where][0]["price"] = value
    live.add("POST", "quote", ok({"fetched": [row], "unfetched": []}))
    with pytest.raises(DataError) as info:
        live.md.quote("NFO", "48223")
    err = info.value
    assert isinstance(err, BrokerError) and isinstance(err, ValueError)
    assert (err.route, err.index, err.token, err.value) == ("quote", 0, "48223", value)
    assert err.field == ("ltp" if where == "ltp" else f"depth.{where}[0].price")
    assert "quote row 0 (token 48223)" in str(err)


@pytest.mark.parametrize("value", [-0.05, "-14.2"])
def test_negative_ltp_is_a_data_error(live, value):
    live.add("POST", "ltp", ok({"ltp": value}))
    with pytest.raises(DataError, match="getLtpData.*'ltp'.*>= 0"):
        live.md.ltp("NSE", "99926000")


@pytest.mark.parametrize("value", [-14.35, 0, "0.00"])
def test_negative_or_zero_vix_is_a_data_error(live, value):
    live.add("POST", "ltp", ok({"ltp": value}))
    with pytest.raises(DataError, match="getLtpData.*99926017.*'ltp'"):
        live.md.vix()


def test_a_data_error_survives_the_sessions_secret_scrubbing(live):
    """SmartApiSession rebuilds a parse error as type(err)(text, code) when it masks a secret."""
    row = dict(QUOTE_ROW, ltp=-1, symbolToken=TOKENS_1["jwtToken"])
    live.add("POST", "quote", ok({"fetched": [row], "unfetched": []}))
    with pytest.raises(DataError) as info:
        live.md.quotes("NFO", ["48223"])
    assert TOKENS_1["jwtToken"] not in str(info.value)
    assert (info.value.route, info.value.field, info.value.index) == ("quote", "ltp", 0)


@pytest.mark.parametrize("call, match", [   # each ended in another exception type (or junk) before
    pytest.param(lambda: ap.num({"price": 10 ** 400}, "price", "getOrderBook"),
                 r"getOrderBook: field 'price' is not a number", id="int beyond float: Overflow"),
    pytest.param(lambda: ap.parse_response("getRMS", 200, "[" * 100_000),
                 r"getRMS: non-JSON body", id="deep nesting: RecursionError"),
    pytest.param(lambda: ap.parse_candle(["0001-01-01T00:00:00+14:00", 1, 2, 0.5, 1, 0],
                                         "getCandleData", 4),
                 r"getCandleData row 4: field 'timestamp'", id="year 1 in IST: OverflowError"),
    pytest.param(lambda: ap.parse_quote([], "quote", T0), r"quote: quote row is list",
                 id="list row: AttributeError"),
    pytest.param(lambda: ap.text({"orderid": {"a": 1}}, "orderid", "getOrderBook"),
                 r"getOrderBook: field 'orderid' is not text", id="object as text: was str()"),
])
def test_junk_is_a_named_broker_error_not_a_crash(call, match):
    with pytest.raises(BrokerError, match=match):
        call()


def _master_rows(with_options):
    rows = [{"token": "99926000", "symbol": "Nifty 50", "name": "NIFTY", "expiry": "",
             "strike": "0.000000", "lotsize": "1", "instrumenttype": "AMXIDX", "exch_seg": "NSE",
             "tick_size": "0.000000"},
            {"token": "50001", "symbol": "NIFTY27JAN26FUT", "name": "NIFTY", "expiry": "27JAN2026",
             "strike": "-1.000000", "lotsize": "65", "instrumenttype": "FUTIDX", "exch_seg": "NFO",
             "tick_size": "10.000000"}]
    if with_options:
        rows.append({"token": "48223", "symbol": "NIFTY13JAN2624000CE", "name": "NIFTY",
                     "expiry": "13JAN2026", "strike": "2400000.000000", "lotsize": "65",
                     "instrumenttype": "OPTIDX", "exch_seg": "NFO", "tick_size": "5.000000"})
    return rows


def test_master_without_options_is_not_cached_and_a_corrected_one_is_read(env):
    md = AngelOneMarketData(env.session, MASTER_URL, env.tmp / "master",
                            underlyings=("NIFTY", "BANKNIFTY"))
    env.add("GET", MASTER_URL, json.dumps(_master_rows(with_options=False)))
    with pytest.raises(BrokerError, match="rejected, not cached.*no NIFTY, BANKNIFTY options"):
        md.instrument_master()
    assert not any((env.tmp / "master").glob("*"))             # nothing on disk
    with pytest.raises(BrokerError, match="rejected"):         # nor in memory: read again
        md.ltp("NFO", "48223")
    assert len(env.calls(MASTER_URL)) == 2 and env.calls("ltp") == []
    # options for one underlying only: still refused, naming the one missing
    env.rsps.replace("GET", MASTER_URL, body=json.dumps(_master_rows(with_options=True)))
    with pytest.raises(BrokerError, match="no BANKNIFTY options") as info:
        md.instrument_master()
    assert "NIFTY," not in str(info.value)
    assert not any((env.tmp / "master").glob("*"))
    assert len(env.calls(MASTER_URL)) == 3                     # every call read the file again
    md.underlyings = ("NIFTY",)
    assert md.instrument_master() == _master_rows(with_options=True)
    assert md.instrument_master() == _master_rows(with_options=True)
    assert len(env.calls(MASTER_URL)) == 4                     # a good one is cached
    assert (env.tmp / "master" / "scripmaster-2026-01-06.json").is_file()


def test_a_bad_master_left_on_disk_is_deleted_not_reused(env):
    """A file cached by an older build (or for another config) is checked like a fresh one."""
    (env.tmp / "master").mkdir()
    cached = env.tmp / "master" / "scripmaster-2026-01-06.json"
    cached.write_text(json.dumps(_master_rows(with_options=False)))
    env.add("GET", MASTER_URL, json.dumps(_master_rows(with_options=True)))
    md = AngelOneMarketData(env.session, MASTER_URL, env.tmp / "master", underlyings=("NIFTY",))
    with pytest.raises(BrokerError, match="no NIFTY options"):
        md.instrument_master()
    assert not cached.exists() and env.calls(MASTER_URL) == []
    assert md.instrument_master() == _master_rows(with_options=True)
    assert len(env.calls(MASTER_URL)) == 1


def test_instrument_master_streams_to_a_daily_cache(env):
    rows = [{"token": "99926000", "symbol": "Nifty 50", "exch_seg": "NSE"}]
    env.add("GET", MASTER_URL, json.dumps(rows))
    assert env.md.instrument_master() == rows
    assert env.md.instrument_master() == rows
    assert len(env.calls(MASTER_URL)) == 1
    assert (env.tmp / "master" / "scripmaster-2026-01-06.json").is_file()
    other = AngelOneMarketData(env.session, MASTER_URL, env.tmp / "master")
    assert other.instrument_master() == rows           # same day: the file is reused
    assert len(env.calls(MASTER_URL)) == 1
    env.clock.advance(86400)
    assert other.instrument_master() == rows           # next day: downloaded again
    assert len(env.calls(MASTER_URL)) == 2
    assert sorted(p.name for p in (env.tmp / "master").iterdir()) == ["scripmaster-2026-01-07.json"]
    assert env.calls(MASTER_URL)[0].request.url == MASTER_URL


@pytest.mark.parametrize("body, status, err", [("<html>oops</html>", 200, BrokerError),
                                               ('{"a": 1}', 200, BrokerError),
                                               ("", 500, TransientError),
                                               (requests.exceptions.ReadTimeout(), 200,
                                                TransientError)])
def test_instrument_master_failures_leave_no_cache(env, body, status, err):
    env.add("GET", MASTER_URL, body=body, status=status)
    with pytest.raises(err, match="instrument master"):
        env.md.instrument_master()
    assert not any((env.tmp / "master").glob("*"))


# ---- session: headers, login, tokens, cache --------------------------------------------------
def test_headers_are_the_sdks(live):
    live.add("GET", "book", ok(None))
    live.broker.order_book()
    h = live.calls("book")[0].request.headers
    assert h["Content-type"] == "application/json" and h["Accept"] == "application/json"
    assert (h["X-UserType"], h["X-SourceID"]) == ("USER", "WEB")
    assert (h["X-ClientLocalIP"], h["X-ClientPublicIP"]) == ("127.0.0.1", "106.193.147.98")
    assert h["X-MACAddress"] == "02:fc:00:00:00:01"
    assert h["X-PrivateKey"] == SECRETS.api_key
    assert h["Authorization"] == f"Bearer {TOKENS_1['jwtToken']}"


def _totp(secret: str, unix: int) -> str:
    """RFC 6238 by hand, so the test does not trust pyotp to check pyotp."""
    key = base64.b32decode(secret)
    digest = hmac.new(key, struct.pack(">Q", unix // 30), hashlib.sha1).digest()
    off = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[off:off + 4])[0] & 0x7FFFFFFF) % 10**6:06d}"


@pytest.mark.parametrize("utc", ["2026-01-06 03:35:00", "2026-01-06 03:35:31"])
def test_login_sends_mpin_and_current_totp(env, utc):
    env.add("POST", "login", ok(dict(TOKENS_1, jwtToken="Bearer " + TOKENS_1["jwtToken"])))
    with freeze_time(utc):
        env.session.login()
    (call,) = env.calls("login")
    unix = int(datetime.fromisoformat(utc).replace(tzinfo=timezone.utc).timestamp())
    assert json.loads(call.request.body) == {"clientcode": SECRETS.client_code,
                                             "password": SECRETS.mpin,
                                             "totp": _totp(SECRETS.totp_secret, unix)}
    assert "Authorization" not in call.request.headers
    assert env.session.jwt == TOKENS_1["jwtToken"]     # the "Bearer " prefix is not doubled
    assert env.kinds() == ["login"] and env.events[0][1]["source"] == "totp"


def test_invalid_totp_is_an_error_without_secrets(env):
    env.add("POST", "login", fail("AB1050", f"Invalid totp for {SECRETS.client_code}"))
    with pytest.raises(BrokerError, match="AB1050") as info:
        env.session.login()
    assert SECRETS.client_code not in str(info.value)
    assert len(env.calls("login")) == 1


def test_missing_credentials_are_named_not_shown(tmp_path):
    s = make_session(VirtualClock(T0), tmp_path, [], Secrets(api_key="abc"))
    with pytest.raises(BrokerError, match="SMARTAPI_CLIENT_CODE.*SMARTAPI_MPIN") as info:
        s.login()
    assert "abc" not in str(info.value)


def test_first_call_logs_in_lazily(env):
    env.add("POST", "login", ok(TOKENS_1))
    env.add("GET", "positions", ok(None))
    assert env.broker.positions() == []
    assert len(env.calls("login")) == 1


def test_token_cache_is_0600_and_reused_the_same_day(env):
    env.add("POST", "login", ok(TOKENS_1))
    env.session.login()
    path = env.tmp / "token.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cached = json.loads(path.read_text())
    assert (cached["jwt"], cached["refresh"], cached["feed"], cached["trading_day"]) == (
        TOKENS_1["jwtToken"], TOKENS_1["refreshToken"], TOKENS_1["feedToken"], "2026-01-06")
    assert SECRETS.client_code not in path.read_text() and SECRETS.api_key not in path.read_text()

    again = make_session(env.clock, env.tmp, env.events)
    again.login()                                      # same day: no HTTP
    assert len(env.calls("login")) == 1 and again.jwt == TOKENS_1["jwtToken"]
    assert env.events[-1] == ("login", {"source": "cache", "trading_day": "2026-01-06"})

    other = make_session(env.clock, env.tmp, env.events,
                         Secrets("other-key-1", "Q1111111", "1111", SECRETS.totp_secret))
    env.rsps.replace("POST", BASE + P["login"], body=ok(TOKENS_2))
    other.login()                                      # another account: fresh login
    assert len(env.calls("login")) == 2

    env.clock.advance(86400)
    tomorrow = make_session(env.clock, env.tmp, env.events)
    tomorrow.login()                                   # a new trading day: fresh login
    assert len(env.calls("login")) == 3


def test_token_cache_tightens_a_loose_leftover_file(env):
    loose = env.tmp / "token.json.tmp"
    loose.write_text("junk")
    os.chmod(loose, 0o644)
    env.add("POST", "login", ok(TOKENS_1))
    env.session.login()
    assert stat.S_IMODE(os.stat(env.tmp / "token.json").st_mode) == 0o600


def test_expired_refresh_token_falls_back_to_totp_login(live):
    live.add("GET", "book", gateway("AG8001"))
    live.add("GET", "book", ok(None))
    live.add("POST", "tokens", fail("AB8051", "Refresh token expired"))
    live.rsps.replace("POST", BASE + P["login"], body=ok(TOKENS_2))
    assert live.broker.order_book() == []
    assert len(live.calls("tokens")) == 1 and len(live.calls("login")) == 1
    assert live.calls("book")[1].request.headers["Authorization"] == f"Bearer {TOKENS_2['jwtToken']}"
    assert json.loads((live.tmp / "token.json").read_text())["jwt"] == TOKENS_2["jwtToken"]


def test_stale_cached_token_is_replaced_on_first_auth_error(env):
    env.add("POST", "login", ok(TOKENS_1))
    env.session.login()
    fresh = make_session(env.clock, env.tmp, env.events)
    env.add("GET", "rms", gateway("AG8001"))
    env.add("GET", "rms", ok(RMS_DATA))
    env.add("POST", "tokens", ok(TOKENS_2))
    assert AngelOneBroker(fresh).funds().available_cash == 100000.0
    assert fresh.jwt == TOKENS_2["jwtToken"]


def test_logout_ends_session_and_removes_cache(live):
    live.add("POST", "logout", ok(None))
    live.broker.logout()
    assert json.loads(live.calls("logout")[0].request.body) == {"clientcode": SECRETS.client_code}
    assert not (live.tmp / "token.json").exists()
    assert live.session.jwt == ""


def test_logout_clears_tokens_even_when_angel_refuses(live):
    live.add("POST", "logout", fail("AB2000", "Error not specified"))
    with pytest.raises(TransientError):
        live.broker.logout()
    assert live.session.jwt == "" and not (live.tmp / "token.json").exists()


def test_unrecognised_envelope_is_an_error(live):
    live.add("GET", "book", json.dumps({"foo": 1}))
    with pytest.raises(BrokerError, match="getOrderBook: unrecognised response"):
        live.broker.order_book()
    live.rsps.replace("GET", BASE + P["book"], body=json.dumps({"status": "maybe"}))
    live.clock.advance(1)
    with pytest.raises(BrokerError, match="getOrderBook: field 'status'"):
        live.broker.order_book()


# ---- secrets never leak ---------------------------------------------------------------------
def test_secrets_never_appear_in_exceptions_or_events(env):
    creds = f"{SECRETS.api_key} {SECRETS.client_code} {SECRETS.mpin} {SECRETS.totp_secret}"
    leak = f"{creds} {TOKENS_1['jwtToken']} {TOKENS_1['refreshToken']}"  # once we hold tokens
    messages = []

    def attempt(fn):
        try:
            fn()
        except (BrokerError, ValueError) as exc:
            messages.append(str(exc))
            messages.append(repr(exc))

    env.add("POST", "login", fail("AB1050", f"Invalid totp {creds}"))
    attempt(env.session.login)
    env.rsps.replace("POST", BASE + P["login"], body=ok(TOKENS_1))
    env.session.login()
    for key, method, call in [("book", "GET", env.broker.order_book),
                              ("rms", "GET", env.broker.funds),
                              ("positions", "GET", env.broker.positions),
                              ("trades", "GET", env.broker.trade_book)]:
        env.add(method, key, f"<html>Rejected {leak}</html>")
        attempt(call)
    env.add("POST", "place", fail("AB1006", f"Client {leak} Is Block For Trading"))
    attempt(lambda: env.broker.place_order(order()))
    env.add("POST", "modify", gateway("AB1006", f"blocked {leak}"))
    attempt(lambda: env.broker.modify_order("1", order()))
    env.add("POST", "cancel", json.dumps({"weird": leak}))
    attempt(lambda: env.broker.cancel_order("1"))
    env.add("POST", "ltp", gateway("AG8004", f"Invalid API key {leak}"))
    env.add("POST", "tokens", fail("AB8050", f"Invalid refresh token {leak}"))
    env.rsps.replace("POST", BASE + P["login"], body=fail("AB1007", f"bad login {leak}"))
    attempt(env.md.vix)
    env.add("GET", "rms", ok({"availablecash": leak}))
    env.clock.advance(5)
    attempt(env.broker.funds)
    assert len(messages) >= 2 * 10 and env.events
    blob = "\n".join(messages) + json.dumps(env.events)
    for s in SENSITIVE:
        assert s not in blob, s


# ---- assembly --------------------------------------------------------------------------------
def test_connect_builds_one_shared_session_from_config(tmp_path):
    clock = VirtualClock(T0)
    broker, md = connect(Config(), SECRETS, clock, home=tmp_path)
    assert broker.session is md.session
    assert broker.session.base_url == "https://apiconnect.angelone.in"
    assert broker.session.limiter.limits["quote"][0] == (1.0, 1)
    assert broker.session.limiter.margin == 0.05
    assert broker.session.token_cache_path == tmp_path / ".token_cache.json"
    assert md.master_dir == tmp_path / "cache"
    assert md.underlyings == tuple(u.name for u in Config().underlyings)  # the master must serve them
    assert broker.name == "angelone"


def test_the_registered_static_ip_is_the_public_ip_header(tmp_path):
    from dataclasses import replace
    cfg = Config()
    cfg = replace(cfg, broker=replace(cfg.broker, static_ip="203.0.113.7"))
    broker, _ = connect(cfg, SECRETS, VirtualClock(T0), home=tmp_path)
    assert broker.session._fixed_headers["X-ClientPublicIP"] == "203.0.113.7"
    default, _ = connect(Config(), SECRETS, VirtualClock(T0), home=tmp_path)
    assert default.session._fixed_headers["X-ClientPublicIP"] != "203.0.113.7"


def test_build_angel_journals_broker_events(tmp_path):
    class Journal:
        path = tmp_path / "journal.sqlite"
        events: list = []

        def record(self, kind, payload):
            self.events.append((kind, payload))

    svc = SimpleNamespace(cfg=Config(), clock=VirtualClock(T0), journal=Journal())
    market, broker = build_angel(svc, SECRETS)
    assert isinstance(market, AngelOneMarketData) and isinstance(broker, AngelOneBroker)
    with responses.RequestsMock() as rsps:
        rsps.add("POST", "https://apiconnect.angelone.in" + P["login"], body=ok(TOKENS_1))
        broker.login()
    assert Journal.events == [("login", {"source": "totp", "trading_day": "2026-01-06"})]
    assert (tmp_path / ".token_cache.json").is_file()
