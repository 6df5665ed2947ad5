"""`rustro sandbox --store PATH --date D`: the sandbox serves a recorded or imported day's prices
from the market-data store behind the same SmartAPI routes, to the bot's own Angel client."""
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from rustro.broker.angelone import connect
from rustro.broker.base import OrderRequest
from rustro.clock import IST, VirtualClock
from rustro.config import Config
from rustro.market.base import ONE_HOUR, ONE_MINUTE
from rustro.market.store import MarketStore
from rustro.sandbox import build_sandbox
from rustro.sandbox.recorded import check_day
from rustro.sandbox.routes import MASTER_PATH
from rustro.sandbox.server import SandboxServer
from tests.test_backtest_store import make_store
from tests.test_sandbox import SANDBOX_SECRETS

DAY = date(2026, 10, 14)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("st") / "m.sqlite", first=date(2026, 10, 12))


@pytest.fixture
def env(tmp_path, store_path):
    clock = VirtualClock(datetime(2026, 10, 14, 11, 30, 20, tzinfo=IST))
    cfg = Config()
    sandbox = build_sandbox(cfg, clock, 42, tmp_path / "sandbox.sqlite", "", SANDBOX_SECRETS,
                            store=store_path)
    server = SandboxServer(sandbox.app)
    server.start()
    cfg = replace(cfg, broker=replace(cfg.broker, base_url=server.url,
                                      instrument_master_url=server.url + MASTER_PATH))
    broker, md = connect(cfg, SANDBOX_SECRETS, clock, home=tmp_path)
    broker.login()
    yield clock, md, broker
    broker.session.http.close()
    server.stop()
    sandbox.close()


def stored_close(store_path, token, minute):
    s = MarketStore(store_path, readonly=True)
    try:
        (row,) = s.bars(token, ONE_MINUTE, int(minute.timestamp()), int(minute.timestamp()) + 1)
        return row[4]
    finally:
        s.close()


def test_the_bots_client_gets_the_stored_days_prices(env, store_path):
    clock, md, broker = env
    last = datetime(2026, 10, 14, 11, 29, tzinfo=IST)  # the last complete minute at 11:30:20
    assert md.ltp("NSE", "99926000") == stored_close(store_path, "99926000", last)
    option = next(r for r in md.instrument_master() if r["instrumenttype"] == "OPTIDX"
                  and MarketStore(store_path, readonly=True).bars(
                      r["token"], ONE_MINUTE, int(last.timestamp()), int(last.timestamp()) + 1))
    q = md.quote("NFO", option["token"])
    assert q.ltp == q.bid == q.ask == stored_close(store_path, option["token"], last)
    hourly = md.candles("NSE", "99926000", ONE_HOUR, datetime(2026, 10, 14, 9, 15, tzinfo=IST),
                        clock.now())
    assert [b.start.hour for b in hourly] == [9, 10]  # 11:15 is not complete yet
    # and an order at the touch fills at the stored price
    ack = broker.place_order(OrderRequest("st-1", "NFO", option["symbol"], option["token"], "BUY",
                                          int(option["lotsize"]), q.ask))
    clock.advance(1)
    (fill,) = [f for f in broker.trade_book() if f.order_id == ack.order_id]
    assert fill.price == q.ask


def test_a_day_missing_from_the_store_is_refused(store_path):
    check_day(store_path, DAY)
    with pytest.raises(ValueError, match="no instrument master or no minute bars for 2026-10-16"):
        check_day(store_path, DAY + timedelta(days=2))
