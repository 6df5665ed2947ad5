"""Small fakes shared by tests: a market whose quotes a test sets, a broker with scripted failures."""
from rustro.broker.base import AmbiguousOrder
from rustro.market.base import Quote


class SetMarket:
    """MarketData whose quotes are set by the test: quotes[token] = (bid, ask)."""

    def __init__(self, clock, quotes=None):
        self.clock = clock
        self.quotes = dict(quotes or {})
        self.vix_value = 14.0

    def quote(self, exchange, token):
        bid, ask = self.quotes[token]
        return Quote(token, (bid + ask) / 2, bid, ask, self.clock.now())

    def ltp(self, exchange, token):
        return self.quote(exchange, token).ltp

    def vix(self):
        return self.vix_value

    def candles(self, *a):
        return []

    def instrument_master(self):
        return []


class ScriptedBroker:
    """Wraps a real broker; `fail_place` makes place_order place the order and then raise
    AmbiguousOrder (the reply was lost), or raise without placing (`lose_order`)."""

    def __init__(self, inner, fail_place=False, lose_order=False):
        self.inner, self.fail_place, self.lose_order = inner, fail_place, lose_order
        self.place_calls = 0
        self.name = "scripted"
        self.on_place = None

    def place_order(self, req):
        self.place_calls += 1
        if self.on_place:
            self.on_place(req)
        if self.lose_order:
            raise AmbiguousOrder("read timeout after send")
        ack = self.inner.place_order(req)
        if self.fail_place:
            raise AmbiguousOrder("empty body from placeOrder")
        return ack

    def __getattr__(self, name):
        return getattr(self.inner, name)


def on_event(kind, action):
    """build_desk whose desk calls `action(svc)` right after the first journaled event of `kind`."""
    def build(svc, day, secrets):
        from rustro.desk import build_desk
        build_desk(svc, day, secrets)
        desk, real, done = svc.desk, svc.desk.rec, []

        def rec(k, payload):
            real(k, payload)
            if k == kind and not done:
                done.append(k)
                action(svc)
        desk.rec = rec
    return build


def assert_never_short(paper_db):
    """From the broker's own trade book, fill after fill: no token's BUY - SELL ever below zero."""
    import sqlite3
    conn = sqlite3.connect(f"file:{paper_db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT token, side, qty FROM fills ORDER BY seq").fetchall()
    finally:
        conn.close()
    net = {}
    for token, side, qty in rows:
        net[token] = net.get(token, 0) + (qty if side == "BUY" else -qty)
        assert net[token] >= 0, f"token {token} went net short ({net[token]}) in the broker's trade book"
    return rows
