"""Order updates pushed by the order-status socket, waiting for the next execution step.

A pushed row is the same `BrokerOrder` a poll returns, and the execution step observes it through
the same path (fills first, then the status, through the order machine). This inbox keeps, per
tag, only the newest update not yet absorbed, so duplicates and late arrivals are harmless: an
update is dropped when it shows fewer fills than one already held or observed (fills only grow), when it
is older than one already held, or when it would reopen an update already final.
"""
from __future__ import annotations

from datetime import datetime

from .broker.base import BrokerOrder


def is_stale(new: BrokerOrder, old: BrokerOrder | None, observed_fills: int = 0,
             observed_at: datetime | None = None) -> bool:
    """True when `new` says nothing newer than `old` (held) or than what was observed."""
    if new.filled_qty < observed_fills:
        return True
    if observed_at is not None and new.updated is not None and new.updated < observed_at:
        return True
    if old is None:
        return False
    if new.filled_qty < old.filled_qty or (old.terminal and not new.terminal):
        return True
    return new.updated is not None and old.updated is not None and new.updated < old.updated


class OrderInbox:
    def __init__(self):
        self._by_tag: dict[str, BrokerOrder] = {}
        self.taken = self.dropped = 0

    def offer(self, seen: BrokerOrder, observed_fills: int = 0,
              observed_at: datetime | None = None) -> bool:
        """Keep `seen` unless it is stale; True if kept."""
        if is_stale(seen, self._by_tag.get(seen.tag), observed_fills, observed_at):
            self.dropped += 1
            return False
        self._by_tag[seen.tag] = seen
        self.taken += 1
        return True

    def peek(self, tag: str) -> BrokerOrder | None:
        return self._by_tag.get(tag)

    def absorbed(self, tag: str, filled_qty: int) -> None:
        """The step observed the held update: forget it once its fills are all journaled (if the
        trade book still lags, it stays for the next step)."""
        held = self._by_tag.get(tag)
        if held is not None and filled_qty >= held.filled_qty:
            del self._by_tag[tag]

    def __len__(self) -> int:
        return len(self._by_tag)
