"""The local SmartAPI sandbox against the real Angel One client, in process, on a virtual clock.

The sandbox runs its HTTP server in a thread on an ephemeral port; the client and the sandbox
share one VirtualClock, so rate limits and order latency are exact and nothing sleeps.
"""
import json
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pyotp
import pytest
import requests

from rustro.app import load_clock_file
from rustro.broker.angelone import AngelOneBroker, connect
from rustro.broker.base import (AmbiguousOrder, BrokerError, OrderRequest, TransientError,
                                find_by_tag)
from rustro.broker.paper_store import parse_time
from rustro.calendar import TradingCalendar
from rustro.clock import IST, AcceleratedClock, VirtualClock
from rustro.config import Config
from rustro.credentials import Secrets
from rustro.market.base import round_to_tick
from rustro.market.instruments import parse_master
from rustro.sandbox import build_sandbox
from rustro.sandbox import main as sandbox_main
from rustro.sandbox.auth import SANDBOX_SECRETS, AuthFailure, TokenStore, export_lines
from rustro.sandbox.faults import FaultPlan, FaultSpecError, parse_faults
from rustro.sandbox.limits import DENIED_TEXT
from rustro.sandbox.routes import MASTER_PATH, ROUTE_NAMES, aggregate
from rustro.sandbox.server import SandboxServer
from rustro.sandbox.service import sandbox_day, write_clock_file

T0 = datetime(2026, 10, 14, 10, 30, tzinfo=IST)   # a Wednesday, mid-session
SEC = "/rest/secure/angelbroking"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@dataclass
class Env:
    clock: VirtualClock
    sandbox: object
    server: SandboxServer
    broker: AngelOneBroker
    md: object
    cfg: Config
    tmp: Path
    events: list = field(default_factory=list)

    @property
    def url(self):
        return self.server.url

    def raw(self, method, path, body=None, jwt=None, key=SANDBOX_SECRETS.api_key, query="",
            wait=True):
        """One request by hand; `wait` first lets a second pass so rate limits stay out of it."""
        if wait:
            self.clock.advance(1.1)
        headers = {"Content-type": "application/json", "X-PrivateKey": key}
        if jwt:
            headers["Authorization"] = f"Bearer {jwt}"
        data = None if body is None else json.dumps(body)
        return requests.request(method, self.url + path + query, headers=headers, data=data,
                                timeout=5)

    def login_raw(self):
        r = self.raw("POST", "/rest/auth/angelbroking/user/v1/loginByPassword", {
            "clientcode": SANDBOX_SECRETS.client_code, "password": SANDBOX_SECRETS.mpin,
            "totp": pyotp.TOTP(SANDBOX_SECRETS.totp_secret).now()})
        return r.json()["data"]["jwtToken"]

    def store_orders(self):
        return self.sandbox.exchange.store.orders_on(self.clock.now().date())

    def option(self, offset=0, kind="CE"):
        """A listed near-ATM option of the nearest expiry, as a master row."""
        spot = self.sandbox.exchange.market.ltp("NSE", "99926000")
        rows = [r for r in self.md.instrument_master()
                if r["instrumenttype"] == "OPTIDX" and r["symbol"].endswith(kind)]
        expiry = min(datetime.strptime(r["expiry"], "%d%b%Y").date() for r in rows
                     if datetime.strptime(r["expiry"], "%d%b%Y").date() > T0.date())
        chain = sorted((r for r in rows if datetime.strptime(r["expiry"], "%d%b%Y").date() == expiry),
                       key=lambda r: abs(float(r["strike"]) / 100 - spot))
        return chain[offset]

    def request(self, tag, row, side="BUY", qty=None, price=None, marketable=True):
        q = self.md.quote("NFO", row["token"])
        if price is None:   # at the touch fills; 10 % under the bid waits
            touch = q.ask if side == "BUY" else q.bid
            price = touch if marketable else round_to_tick(q.bid * 0.9, 0.05, "down")
        return OrderRequest(tag, "NFO", row["symbol"], row["token"], side,
                            qty or int(row["lotsize"]), price)


def make_env(tmp_path, faults="", secrets=SANDBOX_SECRETS):
    clock = VirtualClock(T0)
    cfg = Config()
    sandbox = build_sandbox(cfg, clock, 42, tmp_path / "sandbox.sqlite", faults, SANDBOX_SECRETS)
    server = SandboxServer(sandbox.app)
    server.start()
    cfg = replace(cfg, broker=replace(cfg.broker, base_url=server.url,
                                      instrument_master_url=server.url + MASTER_PATH))
    events: list = []
    broker, md = connect(cfg, secrets, clock, on_event=lambda k, p: events.append((k, p)),
                         home=tmp_path)
    return Env(clock, sandbox, server, broker, md, cfg, tmp_path, events)


@pytest.fixture
def envs(tmp_path):
    made = []

    def make(faults="", secrets=SANDBOX_SECRETS, sub="a"):
        d = tmp_path / sub
        d.mkdir()
        e = make_env(d, faults, secrets)
        made.append(e)
        return e
    yield make
    for e in made:
        e.broker.session.http.close()
        e.server.stop()
        e.sandbox.close()


@pytest.fixture
def env(envs):
    return envs()


# ---- auth ---------------------------------------------------------------------------------
def test_login_with_totp_issues_jwt_like_tokens(env):
    env.broker.login()
    s = env.broker.session
    assert s.jwt.count(".") == 2 and s.refresh_token and s.feed_token
    assert s.jwt != s.refresh_token
    r = env.raw("GET", f"{SEC}/user/v1/getProfile", jwt=s.jwt, query="?%7B%22refreshToken%22%7D")
    assert r.json()["data"]["clientcode"] == SANDBOX_SECRETS.client_code


@pytest.mark.parametrize("bad, code", [
    (dict(totp_secret="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "AB1050"),
    (dict(mpin="0000"), "AB1007"), (dict(client_code="X9999999"), "AB1007")])
def test_wrong_login_is_refused_with_angels_code(envs, bad, code):
    e = envs(secrets=replace(SANDBOX_SECRETS, **bad))
    with pytest.raises(BrokerError) as err:
        e.broker.login()
    assert err.value.code == code
    assert not e.broker.session.jwt


def test_bad_api_key_and_bad_token_answer_in_the_gateway_dialect_with_http_200(env):
    jwt = env.login_raw()
    r = env.raw("GET", f"{SEC}/order/v1/getOrderBook", jwt=jwt, key="not-the-key")
    assert r.status_code == 200 and r.json()["errorCode"] == "AG8004"
    r = env.raw("GET", f"{SEC}/order/v1/getOrderBook", jwt=jwt + "x")
    assert r.status_code == 200
    assert r.json() == {"success": False, "message": "Invalid Token", "errorCode": "AG8001",
                        "data": ""}
    assert env.raw("GET", f"{SEC}/order/v1/getOrderBook").json()["errorCode"] == "AG8003"


def test_tokens_expire_at_the_next_five_am(env):
    store = TokenStore(env.clock)
    jwt = store.issue("S1")["jwtToken"]
    assert store.authenticate(f"Bearer {jwt}") == "S1"
    env.clock.set(datetime(2026, 10, 15, 5, 0, tzinfo=IST))
    with pytest.raises(AuthFailure) as err:
        store.authenticate(f"Bearer {jwt}")
    assert (err.value.code, err.value.gateway) == ("AG8001", True)


def test_ag8001_after_n_calls_makes_the_client_refresh_and_carry_on(envs):
    e = envs("ag8001_after:3")
    prices = [e.md.ltp("NSE", "99926000") for _ in range(10)]
    assert len(prices) == 10 and all(p > 0 for p in prices)
    assert e.sandbox.app.tokens.expired_by_fault >= 2
    kinds = [k for k, _ in e.events]
    assert kinds.count("token_refreshed") == e.sandbox.app.tokens.expired_by_fault
    assert "AG8001" in {p.get("code") for k, p in e.events if k == "broker_error"}


def test_logout_kills_the_session(env):
    env.broker.login()
    jwt = env.broker.session.jwt
    env.broker.logout()
    r = env.raw("GET", f"{SEC}/user/v1/getRMS", jwt=jwt)
    assert r.json()["errorCode"] == "AG8001"


# ---- orders -------------------------------------------------------------------------------
def test_place_modify_cancel_walk_angels_statuses(env):
    row = env.option()
    req = env.request("pmc-1", row, marketable=False)
    ack = env.broker.place_order(req)
    assert re.fullmatch(r"261014\d{9}", ack.order_id) and UUID.match(ack.unique_order_id)
    assert env.broker.order_details(ack.unique_order_id).status == "put order req received"
    env.clock.advance(1)
    assert env.broker.order_details(ack.unique_order_id).status == "open"
    env.broker.modify_order(ack.order_id, replace(req, price=round(req.price - 0.5, 2)))
    jwt = env.broker.session.jwt
    raw = env.raw("GET", f"{SEC}/order/v1/details/{ack.unique_order_id}", jwt=jwt).json()["data"]
    assert (raw["status"], raw["orderstatus"], raw["price"]) == ("modified", "open",
                                                                 round(req.price - 0.5, 2))
    env.broker.cancel_order(ack.order_id)
    o = env.broker.order_details(ack.unique_order_id)
    assert (o.status, o.filled_qty) == ("cancelled", 0)
    raw = env.raw("GET", f"{SEC}/order/v1/details/{ack.unique_order_id}", jwt=jwt).json()["data"]
    assert raw["cancelsize"] == row["lotsize"] and raw["ordertag"] == "pmc-1"
    with pytest.raises(BrokerError):
        env.broker.cancel_order(ack.order_id)   # already terminal


def test_details_by_numeric_orderid_is_order_not_found(env):
    ack = env.broker.place_order(env.request("num-1", env.option()))
    with pytest.raises(BrokerError) as err:
        env.broker.order_details(ack.order_id)
    assert err.value.code == "AB1007"


def test_order_book_and_trade_book_have_angels_types_and_null_when_empty(env):
    jwt = env.login_raw()
    for route in ("getOrderBook", "getTradeBook", "getPosition"):
        body = env.raw("GET", f"{SEC}/order/v1/{route}", jwt=jwt, query="?%7B%7D").json()
        assert body["status"] is True and body["data"] is None, route
    row = env.option()
    ack = env.broker.place_order(env.request("book-1", row))
    env.clock.advance(1)
    book = env.raw("GET", f"{SEC}/order/v1/getOrderBook", jwt=env.broker.session.jwt).json()["data"]
    (o,) = book
    assert isinstance(o["price"], float) and isinstance(o["averageprice"], float)
    for k in ("quantity", "filledshares", "unfilledshares", "lotsize", "cancelsize"):
        assert isinstance(o[k], str), k
    assert (o["orderstatus"], o["status"], o["filledshares"]) == ("complete", "complete",
                                                                 row["lotsize"])
    assert (o["ordertag"], o["uniqueorderid"], o["orderid"]) == ("book-1", ack.unique_order_id,
                                                                 ack.order_id)
    assert o["instrumenttype"] == "OPTIDX" and o["optiontype"] == "CE"
    assert re.fullmatch(r"\d\d-[A-Z][a-z]{2}-2026 \d\d:\d\d:\d\d", o["updatetime"])
    trades = env.raw("GET", f"{SEC}/order/v1/getTradeBook",
                     jwt=env.broker.session.jwt).json()["data"]
    (t,) = trades
    assert all(isinstance(v, str) for v in t.values())
    assert "uniqueorderid" not in t and "ordertag" not in t
    assert re.fullmatch(r"\d\d:\d\d:\d\d", t["filltime"]) and t["orderid"] == ack.order_id
    assert float(t["fillprice"]) == o["averageprice"] and t["fillsize"] == row["lotsize"]
    (fill,) = env.broker.trade_book()
    assert (fill.order_id, fill.qty, fill.price) == (ack.order_id, int(row["lotsize"]),
                                                     o["averageprice"])


def test_positions_and_rms_after_a_round_trip(env):
    row = env.option()
    lot = int(row["lotsize"])
    cash0 = env.broker.funds().available_cash
    assert cash0 == env.cfg.bot.capital
    env.broker.place_order(env.request("rt-buy", row, qty=2 * lot))
    env.clock.advance(1)
    (pos,) = env.broker.positions()
    assert pos.net_qty == 2 * lot and pos.ltp > 0
    env.clock.advance(120)
    env.broker.place_order(env.request("rt-sell", row, side="SELL", qty=2 * lot))
    env.clock.advance(1)
    (pos,) = env.broker.positions()
    fills = env.broker.trade_book()
    buy = next(f for f in fills if f.side == "BUY")
    sell = next(f for f in fills if f.side == "SELL")
    assert (pos.net_qty, pos.buy_qty, pos.sell_qty) == (0, 2 * lot, 2 * lot)
    assert pos.realised == pytest.approx((sell.price - buy.price) * 2 * lot, abs=0.01)
    raw = env.raw("GET", f"{SEC}/order/v1/getPosition", jwt=env.broker.session.jwt).json()["data"]
    assert all(isinstance(v, str) for v in raw[0].values()) and raw[0]["netqty"] == "0"
    rms = env.raw("GET", f"{SEC}/user/v1/getRMS", jwt=env.broker.session.jwt).json()["data"]
    assert re.fullmatch(r"-?\d+\.\d{4}", rms["availablecash"])
    assert env.broker.funds().available_cash == pytest.approx(cash0 + pos.realised, abs=0.01)


def test_ordertag_over_20_chars_and_unknown_token_are_refused(env):
    jwt = env.login_raw()
    row = env.option()
    body = {"variety": "NORMAL", "tradingsymbol": row["symbol"], "symboltoken": row["token"],
            "transactiontype": "BUY", "exchange": "NFO", "ordertype": "LIMIT",
            "producttype": "INTRADAY", "duration": "DAY", "price": "10.00", "quantity": "65",
            "ordertag": "x" * 21}
    r = env.raw("POST", f"{SEC}/order/v1/placeOrder", body, jwt=jwt).json()
    assert (r["status"], r["errorcode"]) == (False, "AB4008")
    r = env.raw("POST", f"{SEC}/order/v1/placeOrder",
                {**body, "ordertag": "ok", "symboltoken": "99999"}, jwt=jwt).json()
    assert (r["status"], r["errorcode"]) == (False, "AB1009")
    # status true only means "accepted": a bad lot size is rejected at validation, with a text
    ack = env.broker.place_order(env.request("odd-qty", row, qty=7))
    env.clock.advance(1)
    o = env.broker.order_details(ack.unique_order_id)
    assert o.status == "rejected" and "lot size" in o.text


# ---- market data --------------------------------------------------------------------------
def test_ltp_and_vix_match_the_synthetic_market(env):
    market = env.sandbox.exchange.market
    assert env.md.ltp("NSE", "99926000") == market.ltp("NSE", "99926000")
    assert env.md.vix() == market.vix()
    r = env.raw("POST", f"{SEC}/order/v1/getLtpData",
                {"exchange": "NSE", "tradingsymbol": "Nifty 50", "symboltoken": "99926000"},
                jwt=env.broker.session.jwt).json()["data"]
    assert r["low"] <= r["ltp"] <= r["high"] and r["close"] > 0


def test_quote_bid_ask_depth_and_limits(env):
    row = env.option()
    q = env.md.quote("NFO", row["token"])
    mq = env.sandbox.exchange.market.quote("NFO", row["token"])
    assert (q.bid, q.ask, q.ltp, q.ts) == (mq.bid, mq.ask, mq.ltp, mq.ts)
    jwt = env.broker.session.jwt
    body = {"mode": "FULL", "exchangeTokens": {"NFO": [row["token"], "12345"]}}
    data = env.raw("POST", f"{SEC}/market/v1/quote", body, jwt=jwt).json()["data"]
    (f,) = data["fetched"]
    assert [lvl["price"] for lvl in f["depth"]["buy"]][:2] == [mq.bid, round(mq.bid - 0.05, 2)]
    assert len(f["depth"]["sell"]) == 5 and f["tradingSymbol"] == row["symbol"]
    assert data["unfetched"][0]["symbolToken"] == "12345"
    env.clock.advance(1)
    too_many = {"mode": "LTP", "exchangeTokens": {"NFO": [row["token"]] * 51}}
    r = env.raw("POST", f"{SEC}/market/v1/quote", too_many, jwt=jwt).json()
    assert r["status"] is False


def test_candles_match_the_market_and_refuse_bad_ranges(env):
    market = env.sandbox.exchange.market
    start = datetime(2026, 9, 1, 9, 15, tzinfo=IST)
    got = env.md.candles("NSE", "99926000", "ONE_HOUR", start, T0)
    want = [b for b in market.candles("NSE", "99926000", "ONE_HOUR", start, T0)]
    assert [(b.start, b.close) for b in got] == [(b.start, b.close) for b in want]
    assert all(b.volume == 0 for b in got)
    jwt = env.broker.session.jwt
    base = {"exchange": "NSE", "symboltoken": "99926000", "interval": "ONE_MINUTE"}
    for frm, to in (("2026-10-14 10:00", "2026-10-14 10:00"), ("2026-10-14 10:00", "2026-10-14 09:00"),
                    ("2026-09-01 09:15", "2026-10-14 10:00")):   # equal, reversed, > 30 days
        env.clock.advance(1)
        r = env.raw("POST", f"{SEC}/historical/v1/getCandleData",
                    {**base, "fromdate": frm, "todate": to}, jwt=jwt).json()
        assert (r["status"], r["errorcode"], r["data"]) == (False, "AB1004", None), (frm, to)
    env.clock.advance(1)
    r = env.raw("POST", f"{SEC}/historical/v1/getCandleData",
                {**base, "interval": "FIVE_MINUTE", "fromdate": "2026-10-14 09:15",
                 "todate": "2026-10-14 10:29"}, jwt=jwt).json()["data"]
    minutes = market.candles("NSE", "99926000", "ONE_MINUTE", start.replace(month=10, day=14), T0)
    assert [row[0] for row in r][:2] == ["2026-10-14T09:15:00+05:30", "2026-10-14T09:20:00+05:30"]
    assert len(r) == 15 and r[0][2] == max(b.high for b in minutes[:5])
    assert r[-1][4] == minutes[74].close


def test_aggregate_keeps_only_whole_buckets(env):
    market = env.sandbox.exchange.market
    minutes = market.candles("NSE", "99926000", "ONE_MINUTE",
                             datetime(2026, 10, 14, 9, 15, tzinfo=IST), T0)   # 75 bars
    bars = aggregate(minutes[:-1], 15)
    assert len(bars) == 4 and bars[-1].close == minutes[59].close


def test_master_download_is_parsed_by_the_bots_parser(env):
    rows = env.md.instrument_master()
    master = parse_master(rows, ["NIFTY"])
    master.require_options("NIFTY")
    assert len(master) == len(rows) and not master.skipped
    assert master.spot("Nifty 50").token == "99926000"
    assert (env.tmp / "cache" / "scripmaster-2026-10-14.json").is_file()


# ---- rate limits and faults ---------------------------------------------------------------
def test_rate_limit_answers_403_plain_text_without_waiting(env):
    jwt = env.login_raw()
    first = env.raw("GET", f"{SEC}/order/v1/getOrderBook", jwt=jwt)
    second = env.raw("GET", f"{SEC}/order/v1/getOrderBook", jwt=jwt, wait=False)
    assert first.status_code == 200
    assert (second.status_code, second.text) == (403, DENIED_TEXT)
    assert second.headers["Content-Type"].startswith("text/plain")
    env.clock.advance(0.5)
    assert env.raw("GET", f"{SEC}/order/v1/getOrderBook", jwt=jwt, wait=False).status_code == 403
    env.clock.advance(0.5)
    assert env.raw("GET", f"{SEC}/order/v1/getOrderBook", jwt=jwt, wait=False).status_code == 200


@pytest.mark.parametrize("kind, check", [
    ("5xx", lambda r: r.status_code == 503 and r.text.startswith("<html>")),
    ("html", lambda r: r.status_code == 200 and "Request Rejected" in r.text),
    ("empty", lambda r: r.status_code == 200 and r.content == b""),
    ("reject", lambda r: r.json()["errorcode"] == "AB1004" and r.json()["status"] is False)])
def test_each_fault_kind_on_a_read(envs, kind, check):
    e = envs(f"{kind}:getOrderBook:1")
    jwt = e.login_raw()
    assert check(e.raw("GET", f"{SEC}/order/v1/getOrderBook", jwt=jwt))
    assert e.raw("GET", f"{SEC}/user/v1/getRMS", jwt=jwt).json()["status"] is True


def test_timeout_fault_hangs_up_without_answering(envs):
    e = envs("timeout:getRMS:1")
    jwt = e.login_raw()
    with pytest.raises(requests.ConnectionError):
        e.raw("GET", f"{SEC}/user/v1/getRMS", jwt=jwt)


@pytest.mark.parametrize("kind", ["empty", "timeout", "5xx"])
def test_place_order_reply_lost_leaves_exactly_one_order(envs, kind):
    e = envs(f"{kind}:placeOrder:1")
    row = e.option()
    e.broker.resolve_backoff = 0.5
    ack = e.broker.place_order(e.request("lost-1", row))
    orders = e.store_orders()
    assert [o["tag"] for o in orders] == ["lost-1"] and ack.order_id == orders[0]["order_id"]
    assert e.sandbox.app.calls["placeOrder"] == 1
    assert ("broker_error", "AmbiguousOrder") in {(k, p.get("error")) for k, p in e.events}


def test_html_on_place_order_is_refused_before_the_book(envs):
    e = envs("html:placeOrder:1")
    with pytest.raises(AmbiguousOrder):
        e.broker.place_order(e.request("waf-1", e.option()))
    assert e.store_orders() == [] and e.sandbox.app.calls["placeOrder"] == 1


def test_partial_fault_fills_in_parts(envs):
    e = envs("partial:1")
    row = e.option()
    lot = int(row["lotsize"])
    ack = e.broker.place_order(e.request("part-1", row, qty=4 * lot))
    e.clock.advance(0.5)
    first = e.broker.order_details(ack.unique_order_id)
    assert 0 < first.filled_qty < 4 * lot and first.status == "open"
    e.clock.advance(1)
    e.broker.order_details(ack.unique_order_id)
    e.clock.advance(1)
    fills = e.broker.trade_book()
    assert len(fills) >= 2 and sum(f.qty for f in fills) == 4 * lot


def test_lost_place_order_stores_the_order_and_drops_the_reply(envs):
    e = envs("lost:placeOrder:1.0")
    row = e.option()
    jwt = e.login_raw()
    body = {"variety": "NORMAL", "tradingsymbol": row["symbol"], "symboltoken": row["token"],
            "transactiontype": "BUY", "exchange": "NFO", "ordertype": "LIMIT",
            "producttype": "INTRADAY", "duration": "DAY", "price": "1.00",
            "quantity": row["lotsize"], "ordertag": "raw-lost"}
    with pytest.raises(requests.ConnectionError):
        e.raw("POST", f"{SEC}/order/v1/placeOrder", body, jwt=jwt)
    assert [o["tag"] for o in e.store_orders()] == ["raw-lost"]
    e.broker.resolve_backoff = 0.5
    ack = e.broker.place_order(e.request("lost-1", row))   # resolved by tag from the book
    orders = e.store_orders()
    assert [o["tag"] for o in orders] == ["raw-lost", "lost-1"]
    assert ack.order_id == orders[1]["order_id"]
    assert e.sandbox.app.faults.injected == {"lost:placeOrder": 2}
    assert ("AmbiguousOrder", True) in {(p.get("error"), p.get("resolved"))
                                        for k, p in e.events if k == "broker_error"}


def test_lost_reply_behind_a_lagging_book_stays_ambiguous_until_the_book_shows_it(envs):
    e = envs("lost:placeOrder:1.0,lag:10")
    e.broker.resolve_backoff = 0.5   # looks 0.5, 1.5 and 3.5 s after the drop: all too early
    with pytest.raises(AmbiguousOrder, match="lost-2"):
        e.broker.place_order(e.request("lost-2", e.option()))
    [stored] = e.store_orders()
    assert stored["tag"] == "lost-2"
    e.clock.set(parse_time(stored["placed_at"]) + timedelta(seconds=10))
    found = find_by_tag(e.broker, "lost-2")
    assert found is not None and found.order_id == stored["order_id"]


def test_lost_star_strikes_modify_and_cancel_after_the_action_but_never_reads(envs):
    e = envs("lost:*:1.0")
    row = e.option()
    e.broker.resolve_backoff = 0.5
    req = e.request("lost-3", row, marketable=False)
    ack = e.broker.place_order(req)
    e.clock.advance(1)
    assert e.broker.order_details(ack.unique_order_id).status == "open"   # a read: untouched
    with pytest.raises(TransientError):
        e.broker.modify_order(ack.order_id, replace(req, price=round(req.price - 0.5, 2)))
    assert e.store_orders()[0]["price"] == round(req.price - 0.5, 2)
    with pytest.raises(TransientError):
        e.broker.cancel_order(ack.order_id)
    assert e.broker.order_details(ack.unique_order_id).status == "cancelled"
    assert set(e.sandbox.app.faults.injected) == {"lost:placeOrder", "lost:modifyOrder",
                                                  "lost:cancelOrder"}


def test_lag_hides_an_order_from_the_three_books_for_n_seconds_not_from_positions(envs):
    e = envs("lag:5")
    row = e.option()
    ack = e.broker.place_order(e.request("lag-1", row))
    placed = parse_time(e.store_orders()[0]["placed_at"])
    jwt = e.broker.session.jwt

    def books(after: float):
        e.clock.set(placed + timedelta(seconds=after))
        get = lambda path: e.raw("GET", f"{SEC}/order/v1/{path}", jwt=jwt, wait=False).json()
        return (get("getOrderBook")["data"], get("getTradeBook")["data"],
                get(f"details/{ack.unique_order_id}"), get("getPosition")["data"])

    for after in (1.0, 3.99):   # the 1/s books cannot be asked again 1 ms later: details can
        book, trades, details, positions = books(after)
        assert (book, trades) == (None, None), after
        assert (details["status"], details["errorcode"]) == (False, "AB1007"), after
        assert [p["netqty"] for p in positions] == [row["lotsize"]], after   # filled at once
    e.clock.set(placed + timedelta(seconds=4.999))
    assert e.raw("GET", f"{SEC}/order/v1/details/{ack.unique_order_id}", jwt=jwt,
                 wait=False).json()["errorcode"] == "AB1007"
    book, trades, details, _ = books(5.0)
    assert [(o["orderid"], o["orderstatus"]) for o in book] == [(ack.order_id, "complete")]
    assert [t["orderid"] for t in trades] == [ack.order_id]
    assert details["data"]["uniqueorderid"] == ack.unique_order_id


def test_a_sell_beyond_holdings_is_accepted_like_angel_and_goes_negative(env):
    row = env.option()
    lot = int(row["lotsize"])
    ack = env.broker.place_order(env.request("short-1", row, side="SELL"))
    env.clock.advance(1)
    assert env.broker.order_details(ack.unique_order_id).status == "complete"
    (pos,) = env.broker.positions()
    assert (pos.net_qty, pos.sell_qty) == (-lot, lot)
    margin = lot * env.cfg.paper.short_margin_per_unit
    assert env.broker.funds().available_cash == pytest.approx(
        env.cfg.bot.capital + lot * pos.sell_avg - margin, abs=0.01)


def test_fault_spec_parsing_names_the_bad_item():
    spec = parse_faults(" timeout:placeOrder:0.1, html:*:0.02 ,ag8001_after:40,partial:0.5",
                        ROUTE_NAMES)
    assert [(r.kind, r.route, r.prob) for r in spec.rules] == [("timeout", "placeOrder", 0.1),
                                                               ("html", "*", 0.02)]
    assert (spec.ag8001_after, spec.partial_fill_prob) == (40, 0.5)
    assert parse_faults("", ROUTE_NAMES).empty
    for bad, word in (("boom:quote:0.1", "boom"), ("html:nowhere:0.1", "nowhere"),
                      ("html:quote:1.5", "1.5"), ("html:quote", "html:quote"),
                      ("ag8001_after:0", "ag8001_after"), ("partial:x", "x")):
        with pytest.raises(FaultSpecError, match=re.escape(word)):
            parse_faults(bad, ROUTE_NAMES)


def test_lost_and_lag_parse_and_their_errors_name_the_bad_item():
    spec = parse_faults("lost:placeOrder:0.25, lost:*:1, lag:2.5", ROUTE_NAMES)
    assert [(r.kind, r.route, r.prob) for r in spec.rules] == [("lost", "placeOrder", 0.25),
                                                               ("lost", "*", 1.0)]
    assert spec.book_lag_sec == 2.5 and not spec.empty
    assert not parse_faults("lag:1", ROUTE_NAMES).empty
    for bad, words in (("lost:getOrderBook:1", ("'lost:getOrderBook:1'", "'getOrderBook'")),
                       ("lost:nowhere:0.1", ("'lost:nowhere:0.1'", "unknown route 'nowhere'")),
                       ("lost:placeOrder", ("'lost:placeOrder'", "lost:ROUTE:PROB")),
                       ("lost:cancelOrder:2", ("'lost:cancelOrder:2'", "[0, 1]")),
                       ("lag:0", ("'lag:0'", "> 0")), ("lag:-1", ("'lag:-1'", "> 0")),
                       ("lag:soon", ("'lag:soon'", "'soon'")), ("lag:nan", ("'lag:nan'",)),
                       ("lag", ("'lag'", "lag:N")), ("lag:1:2", ("'lag:1:2'", "lag:N"))):
        with pytest.raises(FaultSpecError) as err:
            parse_faults(bad, ROUTE_NAMES)
        assert all(w in str(err.value) for w in words), (bad, str(err.value))


def test_lost_never_strikes_a_read_even_through_star():
    plan = FaultPlan(parse_faults("lost:*:1", ROUTE_NAMES), 7)
    assert [plan.decide(r) for r in ("getOrderBook", "orderDetails", "quote", "master")] == [
        None] * 4
    assert [plan.decide(r) for r in ("placeOrder", "modifyOrder", "cancelOrder")] == [
        "lost"] * 3


def test_fault_decisions_are_seeded_and_never_hit_the_master_via_star():
    spec = parse_faults("empty:*:0.5", ROUTE_NAMES)
    def run(seed, route="quote"):
        plan = FaultPlan(spec, seed)
        return [plan.decide(route) for _ in range(40)]
    assert run(1) == run(1) != run(2)
    assert 5 < run(1).count("empty") < 35
    assert run(1, "master") == [None] * 40


# ---- the command ---------------------------------------------------------------------------
def test_sandbox_day_defaults_to_the_next_trading_day_and_refuses_holidays():
    cal = TradingCalendar()
    assert sandbox_day(cal, None, date(2026, 10, 17)) == date(2026, 10, 19)   # Saturday
    assert sandbox_day(cal, None, date(2026, 10, 14)) == date(2026, 10, 14)
    with pytest.raises(ValueError, match="2026-10-18"):
        sandbox_day(cal, date(2026, 10, 18), date(2026, 10, 14))


def test_clock_file_is_what_the_bot_reads(tmp_path):
    clock = AcceleratedClock(datetime(2026, 10, 14, 9, 0, tzinfo=IST), 400.0, 1_000_000.0)
    write_clock_file(tmp_path / "c.json", clock)
    back = load_clock_file(tmp_path / "c.json")
    assert (back.start, back.factor, back.wall_epoch) == (clock.start, 400.0, 1_000_000.0)


@pytest.mark.parametrize("change, word", [(dict(faults="nope:1"), "nope"),
                                          (dict(date=date(2026, 10, 18)), "not a trading day"),
                                          (dict(speed=0.0), "--speed")])
def test_main_refuses_bad_arguments_with_exit_2(tmp_path, capsys, change, word):
    args = SimpleNamespace(port=0, faults="", date=date(2026, 10, 14), speed=10.0, seed=42,
                           clock_file=str(tmp_path / "c.json"), db=str(tmp_path / "d.sqlite"))
    for k, v in change.items():
        setattr(args, k, v)
    assert sandbox_main(Config(), args) == 2
    assert word in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_export_lines_name_every_variable():
    lines = export_lines(SANDBOX_SECRETS)
    assert [l.split("=")[0] for l in lines] == [
        "export SMARTAPI_API_KEY", "export SMARTAPI_CLIENT_CODE", "export SMARTAPI_MPIN",
        "export SMARTAPI_TOTP_SECRET"]
    assert Secrets(*(l.split("=", 1)[1] for l in lines)).complete
