"""PaperBroker: a durable, pessimistic simulated exchange that speaks the `Broker` protocol.

It is a separate party with its own SQLite file: an order is acknowledged only once committed
there, so a bot that crashes and restarts reconciles against it exactly as it would against Angel.

Orders walk Angel's statuses on the bot's clock: "put order req received" at placement; once
`latency_ms` has elapsed they are validated ("rejected" with an Angel-like `text`, or "open"),
then fill ("complete") or are cancelled. Matching is lazy: it runs at `clock.now()` whenever the
broker is asked anything, and only orders whose latency has elapsed can change. Fills always cross
the spread (BUY at the ask, SELL at the bid; see `paper_rules.crossing_price`).

Account model, kept simple on purpose: the account starts every trading day with `capital` in
cash. net = capital - today's buy value + today's sell value; utilised = cash blocked by working
BUY orders (unfilled qty x limit price, or the validation-time price for MARKET) plus short margin;
available_cash = net - utilised. Positions come from today's fills only (intraday: nothing carries
over), and a DAY order still working when its trading day has passed is cancelled.

Strict like Angel, not kinder: a SELL beyond the long position is accepted when the margin is
there (`allow_short`), because Angel accepts it and only the bot's own guards may stop it. Short
margin = `short_margin_per_unit` x the units that would be short if every working SELL filled
(an open short position plus working sells beyond the long). With `book_lag_sec` the order book,
order details and trade book show an order (and its fills) only that long after it was placed,
as Angel's books lag the exchange; matching, positions and funds do not wait.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

from ..clock import Clock, ist
from ..market.base import MarketData, Quote
from .base import BrokerOrder, BrokerPosition, Fill, Funds, OrderAck, OrderRejected, OrderRequest
from .paper_matching import MatchingMixin
from .paper_rules import (CANCELLED, COMPLETE, OPEN, PENDING, REJECTED, ContractSpec,
                          make_order_id, make_unique_order_id, paise, positions_from_fills,
                          request_refusal)
from .paper_store import PaperStore, StorePool, parse_time, to_broker_order, to_fill

__all__ = ["PaperBroker", "ContractSpec"]

log = logging.getLogger(__name__)


class PaperBroker(MatchingMixin):
    name = "paper"

    def __init__(self, db_path: str | Path, clock: Clock, market: MarketData,
                 contracts: Callable[[str], Any], capital: float, latency_ms: int = 200,
                 partial_fill_prob: float = 0.0, seed: int = 0, price_band_pct: float = 50.0,
                 on_event: Callable[[str, dict], None] | None = None, allow_short: bool = True,
                 short_margin_per_unit: float = 2000.0, book_lag_sec: float = 0.0,
                 stores: StorePool | None = None):
        if capital < 0:
            raise ValueError(f"paper capital must be >= 0, got {capital}")
        if latency_ms < 0:
            raise ValueError(f"paper latency_ms must be >= 0, got {latency_ms}")
        if not 0.0 <= partial_fill_prob <= 1.0:
            raise ValueError(f"paper partial_fill_prob must be in [0, 1], got {partial_fill_prob}")
        if price_band_pct <= 0:
            raise ValueError(f"paper price_band_pct must be > 0, got {price_band_pct}")
        if not 0.0 <= short_margin_per_unit < float("inf"):
            raise ValueError(f"paper short_margin_per_unit must be >= 0, "
                             f"got {short_margin_per_unit}")
        if not 0.0 <= book_lag_sec < float("inf"):
            raise ValueError(f"paper book_lag_sec must be >= 0, got {book_lag_sec}")
        self.clock = clock
        self.market = market
        self.contracts = contracts
        self.capital_paise = paise(capital)
        self.latency = timedelta(milliseconds=latency_ms)
        self.partial_fill_prob = partial_fill_prob
        self.seed = seed
        self.price_band_pct = price_band_pct
        self.on_event = on_event
        self.allow_short = allow_short
        self.short_margin_paise = paise(short_margin_per_unit)
        self.book_lag_sec = book_lag_sec   # stated, so the bot can wait exactly this long
        self.book_lag = timedelta(seconds=book_lag_sec)
        # reads remembered per state (see PaperStore); a backtest lends one connection to all days
        self._owns_store = stores is None
        self._store = PaperStore(db_path, memo=True) if stores is None else stores.get(db_path)
        self._lock = threading.RLock()
        self._events: list[tuple[str, dict]] = []

    def login(self) -> None:
        """Nothing to log in to: kept so the paper broker is a drop-in `Broker`."""

    store = property(lambda self: self._store)  # its own database, for tests and crashtest.py

    def close(self) -> None:
        if self._owns_store:  # a borrowed store is closed by its pool's owner
            self._store.close()

    def __enter__(self) -> "PaperBroker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # the Broker protocol ---------------------------------------------------------------------
    def place_order(self, req: OrderRequest) -> OrderAck:
        code, message = request_refusal(req.tag, req.side, req.order_type, req.variety,
                                        req.product, req.duration, req.qty, req.price)
        if code:
            raise OrderRejected(message, code)
        spec = self._spec(req.token)
        with self._lock:
            self._match()
            now = self._now()
            with self._write():
                seq = self._store.next_order_seq()
                order_id = make_order_id(now.date(), seq)
                unique_id = make_unique_order_id(self.seed, seq)
                self._store.insert_order({
                    "order_id": order_id, "seq": seq, "unique_order_id": unique_id,
                    "trading_day": now.date(), "tag": req.tag, "exchange": req.exchange,
                    "symbol": req.symbol, "token": req.token, "side": req.side,
                    "order_type": req.order_type, "product": req.product,
                    "variety": req.variety, "duration": req.duration, "qty": req.qty,
                    "price": req.price if req.order_type == "LIMIT" else 0.0,
                    "lot_size": spec.lot_size, "tick_size": spec.tick_size,
                    "freeze_qty": spec.freeze_qty, "status": PENDING, "placed_at": now,
                    "eligible_at": now + self.latency, "updated": now})
                self._event("order_placed", order_id=order_id, tag=req.tag, side=req.side,
                            qty=req.qty, price=req.price, status=PENDING)
        return OrderAck(order_id=order_id, unique_order_id=unique_id)

    def modify_order(self, order_id: str, req: OrderRequest) -> None:
        with self._lock:
            self._match()
            now = self._now()
            with self._write():
                row = self._order_or_raise(order_id)
                if row["status"] != OPEN:
                    raise OrderRejected(f"order {order_id} is {row['status']}: only open orders "
                                        "can be modified")
                code, message = request_refusal(row["tag"], row["side"], req.order_type,
                                                row["variety"], row["product"], row["duration"],
                                                req.qty, req.price)
                if code:
                    raise OrderRejected(f"modify of order {order_id}: {message}", code)
                if req.qty <= row["filled_qty"]:
                    raise OrderRejected(f"modify of order {order_id}: quantity {req.qty} must "
                                        f"exceed the filled quantity {row['filled_qty']}")
                price = req.price if req.order_type == "LIMIT" else 0.0
                text, ref = self._refusal(row, req.qty, price, req.order_type, {})
                if text:
                    raise OrderRejected(f"modify of order {order_id} refused: {text}")
                self._store.update_order(order_id, qty=req.qty, price=price,
                                         order_type=req.order_type, ref_price=ref,
                                         eligible_at=now + self.latency, updated=now)
                self._event("order_modified", order_id=order_id, qty=req.qty, price=price,
                            status=OPEN)

    def cancel_order(self, order_id: str, variety: str = "NORMAL") -> None:
        with self._lock:
            self._match()
            now = self._now()
            with self._write():
                row = self._order_or_raise(order_id)
                if row["status"] in (COMPLETE, REJECTED, CANCELLED):
                    raise OrderRejected(f"order {order_id} is {row['status']}: cannot cancel")
                self._store.update_order(order_id, status=CANCELLED, updated=now)
                self._event("order_cancelled", order_id=order_id, filled_qty=row["filled_qty"],
                            cancelled_qty=row["qty"] - row["filled_qty"], status=CANCELLED)

    def order_details(self, unique_order_id: str) -> BrokerOrder:
        """An order still hidden by the book lag is 'not found', exactly like an unknown id."""
        with self._lock:
            self._match()
            row = self._store.order_by_unique_id(unique_order_id)
            now = self._now()
        if row is None or not self._shown(row, now):
            raise OrderRejected(f"Order not found: {unique_order_id}", "AB1007")
        return to_broker_order(row)

    def state_version(self) -> int | None:
        """A number that changes whenever the books may have: the store's commit count. None
        with a book lag, whose books also change as time passes (an order comes into view)."""
        return None if self.book_lag else self._store.commits

    def order_book(self) -> list[BrokerOrder]:
        """Today's orders only, like Angel's."""
        if self.book_lag:  # what the book shows depends on the time as well
            return [to_broker_order(r) for r in self.book_rows()[0]]
        with self._lock:
            self._match()
            day = self._now().date()
            return self._remembered(("order_book", day), lambda: map(
                to_broker_order, self._store.orders_on(day)))

    def trade_book(self) -> list[Fill]:
        """Today's fills, one per fill."""
        if self.book_lag:
            return [to_fill(r) for r in self.book_rows()[1]]
        with self._lock:
            self._match()
            return [f for f, _ in self._today_fills(self._now().date())]

    def book_rows(self) -> tuple[list[dict], list[dict]]:
        """Today's stored (order rows, fill rows) as the books show them now: an order younger
        than `book_lag_sec` is left out, and so are its fills. Public so the sandbox can build
        Angel-shaped rows from exactly what the books show."""
        with self._lock:
            self._match()
            now = self._now()
            orders = self._store.orders_on(now.date())
            fills = self._store.fills_on(now.date())
        shown = [o for o in orders if self._shown(o, now)]
        if len(shown) == len(orders):
            return orders, fills
        ids = {o["order_id"] for o in shown}
        return shown, [f for f in fills if f["order_id"] in ids]

    def positions(self) -> list[BrokerPosition]:
        with self._lock:
            self._match()
            fills = self._today_fills(self._now().date())
        ltps: dict[tuple[str, str], float] = {}
        for f, _ in fills:
            key = (f.exchange, f.token)
            if key not in ltps:
                quote = self._fetch_quote(*key)
                ltps[key] = quote.ltp if quote else 0.0
        return positions_from_fills(fills, ltps)

    def funds(self) -> Funds:
        with self._lock:
            self._match()
            day = self._now().date()
            bought, sold = self._store.cash_flows(day)
            blocked = self._blocked(day, exclude="")
        net = self.capital_paise - bought + sold
        return Funds(available_cash=(net - blocked) / 100, net=net / 100, utilised=blocked / 100)

    # helpers ---------------------------------------------------------------------------------
    def _today_fills(self, day: date) -> list[tuple[Fill, str]]:
        """(fill, product) of the day's fills, oldest first."""
        return self._remembered(("fills", day), lambda: (
            (to_fill(r), r["product"]) for r in self._store.fills_on(day)))

    def _remembered(self, key: tuple, make: Callable[[], Any]) -> list:
        """`make()`'s (frozen) records, built once per store state; a fresh list each call."""
        return list(self._store.memoized(key, lambda: tuple(make())))

    def _shown(self, row: dict, now: datetime) -> bool:
        """Whether Angel's books would show this order yet (always, without a book lag)."""
        return not self.book_lag or parse_time(row["placed_at"]) + self.book_lag <= now

    def _order_or_raise(self, order_id: str) -> dict:
        row = self._store.order(order_id)
        if row is None:
            raise OrderRejected(f"Order not found: {order_id}", "AB1013")
        return row

    def _spec(self, token: str) -> ContractSpec:
        try:
            spec = self.contracts(token)
        except LookupError:
            spec = None
        if spec is None:
            raise OrderRejected(f"Symbol not found: token {token!r}", "AB1009")
        lot, freeze = int(spec.lot_size), int(spec.freeze_qty or 0)
        if lot <= 0 or spec.tick_size <= 0:
            raise ValueError(f"contract {token!r}: lot_size and tick_size must be > 0, "
                             f"got {spec.lot_size} and {spec.tick_size}")
        return ContractSpec(lot, float(spec.tick_size), freeze)

    def _quote(self, row: dict, cache: dict) -> Quote | None:
        key = (row["exchange"], row["token"])
        if key not in cache:
            cache[key] = self._fetch_quote(*key)
        return cache[key]

    def _fetch_quote(self, exchange: str, token: str) -> Quote | None:
        """The market's quote, or None: a paper exchange without a quote simply cannot match."""
        try:
            return self.market.quote(exchange, token)
        except Exception as exc:  # any data-source failure means "no quote right now"
            log.warning("paper broker: no quote for %s %s (%s)", exchange, token,
                        type(exc).__name__)
            return None

    def _now(self) -> datetime:
        return ist(self.clock.now())

    @contextmanager
    def _write(self) -> Iterator[None]:
        """A store transaction whose events are delivered only once it has committed."""
        self._events.clear()
        try:
            with self._store.transaction():
                yield
        except BaseException:
            self._events.clear()
            raise
        events, self._events = self._events, []
        for kind, payload in events:
            if self.on_event is None:
                continue
            try:
                self.on_event(kind, payload)
            except Exception:  # a debugging hook must never undo a committed broker fact
                log.exception("paper broker on_event(%s) failed", kind)

    def _event(self, kind: str, **payload) -> None:
        self._events.append((kind, payload))
