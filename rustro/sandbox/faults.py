"""Fault injection for the sandbox: the spec grammar and a seeded per-call decision.

Spec: comma-separated items, each `KIND:ROUTE:PROB` (KIND one of timeout, 5xx, html, empty, reject,
lost; ROUTE a short route name or `*`; PROB in [0, 1]) or `ag8001_after:N` (a session token dies
after N authenticated calls) or `partial:P` (the exchange's partial-fill probability) or `lag:N`
(the order book, order details and trade book show an order only N sandbox seconds after it was
placed, as Angel's books lag the exchange).

`lost` only strikes placeOrder, modifyOrder and cancelOrder (`lost:*:P` means those three): the
action is committed, then the connection is dropped without a reply, so the client alone must
find out what happened. A `timeout` on those routes does the same; `lost` keeps reads untouched.

WebSocket faults (`rustro/sandbox/ws.py`): `ws_drop:N` closes every socket connection each N
sandbox seconds; `ws_silence:N` makes the market socket send no tick for N sandbox seconds, then
ticks for N, and so on (the connection stays up and answers pings); `ws_garbage:P` replaces each
frame by garbage (a truncated, unknown-mode or non-JSON frame) with probability P; `ws_delay:N`
pushes each order update N sandbox seconds late.

Decisions are a pure function of (seed, route, how many times the route was called, rule index):
the same sequence of calls against the same spec and seed meets the same faults.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

ROUTE_FAULTS = ("timeout", "5xx", "html", "empty", "reject", "lost")
# Faults that, on a route that changes the order book, strike after the change was committed:
# the worst case, where the action happened but its answer is lost.
AFTER_ACTION = frozenset({"timeout", "5xx", "empty", "lost"})
MUTATING_ROUTES = frozenset({"placeOrder", "modifyOrder", "cancelOrder"})
ONLY_MUTATING = frozenset({"lost"})   # kinds that exist only on the routes above
WS_FAULTS = {"ws_drop": "ws_drop_sec", "ws_silence": "ws_silence_sec",
             "ws_garbage": "ws_garbage_prob", "ws_delay": "ws_delay_sec"}


class FaultSpecError(ValueError):
    """A --faults spec that cannot be understood; the message names the bad item."""


@dataclass(frozen=True)
class FaultRule:
    kind: str
    route: str      # a route name, or "*" for every SmartAPI route (never the instrument master)
    prob: float

    def matches(self, route: str) -> bool:
        if self.kind in ONLY_MUTATING and route not in MUTATING_ROUTES:
            return False
        return self.route == route or (self.route == "*" and route != "master")


@dataclass(frozen=True)
class FaultSpec:
    rules: tuple[FaultRule, ...] = ()
    ag8001_after: int = 0          # 0 = tokens never die early
    partial_fill_prob: float | None = None
    book_lag_sec: float = 0.0      # 0 = the books show an order at once
    ws_drop_sec: float = 0.0       # sockets closed by the server every N sandbox seconds
    ws_silence_sec: float = 0.0    # market socket alternates N s silent, N s ticking
    ws_garbage_prob: float = 0.0   # a frame replaced by garbage
    ws_delay_sec: float = 0.0      # order updates pushed this late

    @property
    def empty(self) -> bool:
        return (not self.rules and not self.ag8001_after and self.partial_fill_prob is None
                and not self.book_lag_sec and not self.ws_faults)

    @property
    def ws_faults(self) -> bool:
        return bool(self.ws_drop_sec or self.ws_silence_sec or self.ws_garbage_prob
                    or self.ws_delay_sec)


def _prob(text: str, item: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise FaultSpecError(f"fault {item!r}: probability {text!r} is not a number") from None
    if not 0.0 <= p <= 1.0:
        raise FaultSpecError(f"fault {item!r}: probability {p} is not in [0, 1]")
    return p


def _seconds(text: str, item: str) -> float:
    try:
        n = float(text)
    except ValueError:
        raise FaultSpecError(f"fault {item!r}: seconds {text!r} is not a number") from None
    if not 0.0 < n < float("inf"):
        raise FaultSpecError(f"fault {item!r}: seconds {n} must be > 0")
    return n


def _route(kind: str, route: str, item: str, routes: frozenset[str] | set[str]) -> str:
    """`route` when `kind` may strike it, else FaultSpecError naming the item."""
    if route != "*" and route not in routes:
        raise FaultSpecError(f"fault {item!r}: unknown route {route!r} "
                             f"(one of {', '.join(sorted(routes))} or *)")
    if route != "*" and kind in ONLY_MUTATING and route not in MUTATING_ROUTES:
        raise FaultSpecError(f"fault {item!r}: {kind} strikes only "
                             f"{', '.join(sorted(MUTATING_ROUTES))} or *, not {route!r}")
    return route


def parse_faults(spec: str, routes: frozenset[str] | set[str]) -> FaultSpec:
    """The FaultSpec of `spec`; `routes` are the route names a rule may name (besides `*`)."""
    rules: list[FaultRule] = []
    after, partial, lag = 0, None, 0.0
    ws: dict[str, float] = {}
    for raw in (spec or "").split(","):
        item = raw.strip()
        if not item:
            continue
        parts = [p.strip() for p in item.split(":")]
        kind = parts[0].lower()
        if kind == "ag8001_after":
            if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) < 1:
                raise FaultSpecError(f"fault {item!r}: expected ag8001_after:N with N >= 1")
            after = int(parts[1])
        elif kind == "partial":
            if len(parts) != 2:
                raise FaultSpecError(f"fault {item!r}: expected partial:P")
            partial = _prob(parts[1], item)
        elif kind == "lag":
            if len(parts) != 2:
                raise FaultSpecError(f"fault {item!r}: expected lag:N (seconds)")
            lag = _seconds(parts[1], item)
        elif kind in WS_FAULTS:
            if len(parts) != 2:
                raise FaultSpecError(f"fault {item!r}: expected {kind}:"
                                     f"{'P' if kind == 'ws_garbage' else 'N (seconds)'}")
            ws[WS_FAULTS[kind]] = (_prob(parts[1], item) if kind == "ws_garbage"
                                   else _seconds(parts[1], item))
        elif kind in ROUTE_FAULTS:
            if len(parts) != 3:
                raise FaultSpecError(f"fault {item!r}: expected {kind}:ROUTE:PROB")
            route = _route(kind, parts[1], item, routes)
            rules.append(FaultRule(kind, route, _prob(parts[2], item)))
        else:
            raise FaultSpecError(f"fault {item!r}: unknown kind {parts[0]!r} (one of "
                                 f"{', '.join(ROUTE_FAULTS)}, ag8001_after, partial, lag, "
                                 f"{', '.join(WS_FAULTS)})")
    return FaultSpec(tuple(rules), after, partial, lag, **ws)


@dataclass
class FaultPlan:
    """Decides, call by call, which fault (if any) strikes a route."""
    spec: FaultSpec
    seed: int
    calls: dict[str, int] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=dict)   # "kind:route" -> count, for tests
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def decide(self, route: str) -> str | None:
        with self._lock:
            n = self.calls.get(route, 0)
            self.calls[route] = n + 1
            for i, rule in enumerate(self.spec.rules):
                if not rule.matches(route) or rule.prob <= 0:
                    continue
                if random.Random(f"{self.seed}|{route}|{n}|{i}").random() < rule.prob:
                    key = f"{rule.kind}:{route}"
                    self.injected[key] = self.injected.get(key, 0) + 1
                    return rule.kind
        return None


def strikes_after(kind: str, route: str) -> bool:
    """True when `kind` on `route` hits once the action is done (the answer is what is lost)."""
    return kind in AFTER_ACTION and route in MUTATING_ROUTES
