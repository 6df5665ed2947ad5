"""The paper exchange's matching: how a working order expires, is validated (refused as Angel
would refuse it, or opened) and fills across the spread. `PaperBroker` mixes it in; it works on the
broker's store, clock, quotes and event hooks (see `rustro/broker/paper.py` for the model)."""
from __future__ import annotations

import random
from datetime import date, datetime

from ..market.base import Quote, round_to_tick
from .base import BUY
from .paper_rules import (CANCELLED, COMPLETE, OPEN, PENDING, REJECTED, ContractSpec,
                          blocked_paise, crossing_price, fill_quantity, funds_refusal, make_fill_id,
                          paise, position_key, short_exposure, short_refusal, static_refusal)
from .paper_store import parse_time


class MatchingMixin:
    # matching --------------------------------------------------------------------------------
    def _match(self) -> None:
        """Advance every working order to `clock.now()`: expire, validate, fill. Every request
        starts here, so this is where the store learns of other connections' commits."""
        self._store.sync()
        now = self._now()
        today = now.date().isoformat()
        quotes: dict[tuple[str, str], Quote | None] = {}
        if not self._store.has_working_orders():  # nothing can change: no empty commit
            return
        with self._write():
            for row in self._store.working_orders():
                if row["trading_day"] < today:
                    self._store.update_order(
                        row["order_id"], status=CANCELLED, updated=now,
                        text=f"Order cancelled at the end of trading day {row['trading_day']} "
                             "(DAY validity).")
                    self._event("order_expired", order_id=row["order_id"], status=CANCELLED)
                    continue
                if parse_time(row["eligible_at"]) > now:
                    continue
                if row["status"] == PENDING:
                    row = self._validate(row, now, quotes)
                if row["status"] == OPEN:
                    self._try_fill(row, now, quotes)

    def _validate(self, row: dict, now: datetime, quotes: dict) -> dict:
        text, ref = self._refusal(row, row["qty"], row["price"], row["order_type"], quotes)
        status = REJECTED if text else OPEN
        self._store.update_order(row["order_id"], status=status, text=text, ref_price=ref,
                                 updated=now)
        self._event("order_rejected" if text else "order_open", order_id=row["order_id"],
                    status=status, text=text)
        return {**row, "status": status, "text": text, "ref_price": ref}

    def _refusal(self, row: dict, qty: int, price: float, order_type: str,
                 quotes: dict) -> tuple[str, float]:
        """(rejection text or '', price that blocks cash) for `row` at `qty` / `price`."""
        quote = self._quote(row, quotes)
        ltp = quote.ltp if quote else 0.0
        spec = ContractSpec(row["lot_size"], row["tick_size"], row["freeze_qty"])
        text = static_refusal(qty, price, order_type, spec, ltp, self.price_band_pct)
        if order_type == "LIMIT":
            ref = price
        else:
            touch = (quote.ask if row["side"] == BUY else quote.bid) if quote else 0.0
            ref = touch if touch > 0 else ltp
            if not text and ref <= 0:
                text = f"No price available for a MARKET order in {row['symbol']}."
        if not text:
            text = self._account_refusal(row, qty - row["filled_qty"], ref)
        return text, ref

    def _account_refusal(self, row: dict, remaining: int, ref_price: float) -> str:
        """A BUY needs its value in cash, bar the part covering an open short; a SELL needs short
        margin for its part beyond the long still unsold, or with shorts off is refused. Other
        working orders on the same side and position count first, as in `blocked_paise`."""
        day = date.fromisoformat(row["trading_day"])
        bought, sold = self._store.cash_flows(day)
        available = self.capital_paise - bought + sold - self._blocked(day, row["order_id"])
        key = position_key(row)
        held = self._store.net_qty(day, *key)
        working = sum(o["qty"] - o["filled_qty"] for o in self._open_orders(day, row["order_id"])
                      if o["side"] == row["side"] and position_key(o) == key)
        if row["side"] == BUY:
            covering = min(remaining, max(0, -held - working))
            return funds_refusal(available, (remaining - covering) * paise(ref_price))
        if not self.allow_short:
            return short_refusal(remaining, held - working)
        short = short_exposure(held, working + remaining) - short_exposure(held, working)
        return funds_refusal(available, short * self.short_margin_paise)

    def _try_fill(self, row: dict, now: datetime, quotes: dict) -> None:
        quote = self._quote(row, quotes)
        touch = crossing_price(row["side"], row["order_type"], row["price"], quote)
        if touch is None:
            if row["duration"] == "IOC":
                self._store.update_order(row["order_id"], status=CANCELLED, updated=now,
                                         text="IOC order cancelled: nothing to match at the touch.")
                self._event("order_cancelled", order_id=row["order_id"], status=CANCELLED)
            return
        price = round_to_tick(touch, row["tick_size"])
        remaining = row["qty"] - row["filled_qty"]
        rng = random.Random(f"{self.seed}:{row['order_id']}:{row['fills']}")
        qty = fill_quantity(remaining, row["lot_size"], row["filled_qty"] == 0,
                            self.partial_fill_prob, rng)
        fill_seq = self._store.next_fill_seq()
        fill_id = make_fill_id(fill_seq)
        self._store.insert_fill({
            "fill_id": fill_id, "seq": fill_seq, "order_id": row["order_id"],
            "trading_day": row["trading_day"], "exchange": row["exchange"],
            "symbol": row["symbol"], "token": row["token"], "product": row["product"],
            "side": row["side"], "qty": qty, "price": price, "time": now})
        filled = row["filled_qty"] + qty
        status, text = OPEN, row["text"]
        if filled == row["qty"]:
            status = COMPLETE
        elif row["duration"] == "IOC":
            status, text = CANCELLED, "IOC order: unfilled quantity cancelled."
        self._store.update_order(row["order_id"], status=status, text=text, filled_qty=filled,
                                 filled_paise=row["filled_paise"] + qty * paise(price),
                                 fills=row["fills"] + 1, eligible_at=now + self.latency,
                                 updated=now)
        self._event("order_fill", order_id=row["order_id"], fill_id=fill_id, side=row["side"],
                    qty=qty, price=price, filled_qty=filled, status=status)

    def _open_orders(self, day: date, exclude: str) -> list[dict]:
        return [o for o in self._store.working_orders()
                if o["status"] == OPEN and o["trading_day"] == day.isoformat()
                and o["order_id"] != exclude]

    def _blocked(self, day: date, exclude: str) -> int:
        """Paise held back by working orders other than `exclude` (see `blocked_paise`)."""
        return blocked_paise(self._open_orders(day, exclude), self._store.net_by_key(day),
                             self.short_margin_paise)

