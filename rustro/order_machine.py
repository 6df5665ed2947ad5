"""The state machine of one order: which moves are legal, and what a broker status means for us.

One table of legal edges (the `transitions` library enforces it, as for the day). Every source of
updates — our own actions, polling, reconciliation, later the order WebSocket — is reduced to a
target state and asked of the table: a legal edge moves the order, an illegal one (an ack after a
fill, an 'open' after 'complete') is refused and the state stays as it was.
"""
from __future__ import annotations

from .fsm import new_model, shared_machine

INTENT, SENT, UNKNOWN, NEVER_PLACED = "intent", "sent", "unknown", "never_placed"
OPEN, PARTIAL, MODIFY_PENDING, CANCEL_PENDING = "open", "partial", "modify_pending", "cancel_pending"
COMPLETE, CANCELLED, REJECTED = "complete", "cancelled", "rejected"
STATES = [INTENT, SENT, UNKNOWN, NEVER_PLACED, OPEN, PARTIAL, MODIFY_PENDING, CANCEL_PENDING,
          COMPLETE, CANCELLED, REJECTED]

# Final at the broker. NEVER_PLACED is our conclusion, not the broker's: a later sighting revives it.
TERMINAL = frozenset({COMPLETE, CANCELLED, REJECTED, NEVER_PLACED})
# The broker may hold (or come to hold) unfilled quantity: counts as exposure in flight.
IN_FLIGHT = frozenset({INTENT, SENT, UNKNOWN, OPEN, PARTIAL, MODIFY_PENDING, CANCEL_PENDING})
# Not yet seen at the broker: found only by looking the tag up.
UNSEEN = frozenset({INTENT, SENT, UNKNOWN})
_WORKING = [OPEN, PARTIAL, MODIFY_PENDING, CANCEL_PENDING]

# trigger, sources, destination: every legal move of an order.
EDGES = [
    ("send", INTENT, SENT),
    ("lost", SENT, UNKNOWN),
    ("ack", [INTENT, SENT, UNKNOWN, NEVER_PLACED], OPEN),
    ("never_placed", [INTENT, SENT, UNKNOWN], NEVER_PLACED),
    ("resend", NEVER_PLACED, SENT),
    ("part_fill", [SENT, UNKNOWN, NEVER_PLACED, OPEN, MODIFY_PENDING, CANCEL_PENDING], PARTIAL),
    ("fill", [SENT, UNKNOWN, NEVER_PLACED] + _WORKING, COMPLETE),
    ("modify", [OPEN, PARTIAL], MODIFY_PENDING),
    ("modified", MODIFY_PENDING, OPEN),
    ("modified_part", MODIFY_PENDING, PARTIAL),
    ("cancel", [SENT, UNKNOWN, OPEN, PARTIAL, MODIFY_PENDING], CANCEL_PENDING),
    ("cancelled", [SENT, UNKNOWN, NEVER_PLACED] + _WORKING, CANCELLED),
    ("reject", [SENT, UNKNOWN, NEVER_PLACED, OPEN, MODIFY_PENDING, CANCEL_PENDING], REJECTED),
    ("cancel_refused", CANCEL_PENDING, OPEN),
    ("cancel_refused_part", CANCEL_PENDING, PARTIAL),
]

# Angel's `orderstatus` values (lower case) that mean "accepted, still working at the broker".
_BROKER_WORKING = frozenset({"put order req received", "validation pending", "open pending",
                             "open", "trigger pending", "modified", "modify validation pending",
                             "after market order req received", "amo req received"})


class IllegalOrderMove(RuntimeError):
    pass


def _edge_index() -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for trigger, sources, dst in EDGES:
        for src in ([sources] if isinstance(sources, str) else sources):
            out.setdefault((src, dst), trigger)
    return out


EDGE_BY_PAIR = _edge_index()
_ORDER_MACHINE = shared_machine(STATES, EDGES, INTENT)


def broker_target(status: str, filled_qty: int, qty: int, current: str) -> str:
    """Our state for what the broker reports. Fills count before words: a 'cancelled' order with
    fills is still cancelled (its fills stand), an 'open' one with fills is partial."""
    s = (status or "").strip().lower()
    if s == "complete" or (qty > 0 and filled_qty >= qty):
        return COMPLETE
    if s == "rejected":
        return REJECTED
    if s == "cancelled":
        return CANCELLED
    if s == "cancel pending":
        return CANCEL_PENDING
    if s == "modify pending":
        return MODIFY_PENDING
    if s in _BROKER_WORKING:
        if current == CANCEL_PENDING:
            return current  # our cancel is still on its way: the broker's word predates it
        return PARTIAL if filled_qty > 0 else OPEN
    return current  # an unknown word moves nothing


class OrderMachine:
    """The legal-move checker for one order (state lives here; the journal records each move)."""

    def __init__(self, state: str = INTENT):
        if state == "acked":  # journals written before the order machine existed
            state = OPEN
        if state not in STATES:
            raise ValueError(f"unknown order state {state!r}")
        self._fsm = new_model(_ORDER_MACHINE, state)

    @property
    def state(self) -> str:
        return self._fsm.state

    def trigger_to(self, target: str) -> str | None:
        """The trigger that moves us to `target`; None when already there; raises if illegal."""
        if target == self.state:
            return None
        trig = EDGE_BY_PAIR.get((self.state, target))
        if trig is None:
            raise IllegalOrderMove(f"{self.state} -> {target} is not a legal order move")
        return trig

    def move(self, trigger: str) -> str:
        if trigger not in _ORDER_MACHINE.get_triggers(self.state):
            raise IllegalOrderMove(f"'{trigger}' is not allowed from '{self.state}'")
        self._fsm.trigger(trigger)
        return self.state
