"""Angel One's two WebSockets as pure bytes <-> records: SmartWebSocketV2 market data and the
order-status socket. No sockets here: the client (`ws_client.py`) and the sandbox both use it, so a
packet the sandbox builds is parsed by exactly the code that parses Angel's.

Binary ticks are little-endian, one per frame, prices int64 paise (divided by 100 here): LTP 51
bytes, QUOTE 123, SNAP_QUOTE 379 (best five included). DEPTH (443 bytes, deprecated by Angel in
April 2025) is refused. Anything that is not exactly one of these layouts, or that carries an
impossible value, raises `FrameError` naming the field and its offset: a garbage frame is dropped
by the client, never half-believed.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..clock import IST
from .angelone_parse import parse_order
from .base import BrokerError, BrokerOrder

LTP, QUOTE, SNAP_QUOTE, DEPTH = 1, 2, 3, 4
MODE_NAMES = {LTP: "LTP", QUOTE: "QUOTE", SNAP_QUOTE: "SNAP_QUOTE", DEPTH: "DEPTH"}
PACKET_LEN = {LTP: 51, QUOTE: 123, SNAP_QUOTE: 379}
SUBSCRIBE, UNSUBSCRIBE = 1, 0
# exchangeType codes and the instrument master's exch_seg they stand for
EXCHANGE_TYPES = {1: "NSE", 2: "NFO", 3: "BSE", 4: "BFO", 5: "MCX", 7: "NCX", 13: "CDS"}
EXCHANGE_CODES = {v: k for k, v in EXCHANGE_TYPES.items()}
FO_TYPES = frozenset({2, 4})      # derivatives segments: prices on the 5-paise tick
TICK_PAISE = 5
MAX_TOKENS_PER_CONNECTION = 1000  # Angel's limit per socket (E1002 beyond it)
MAX_CONNECTIONS = 3               # per client code, for each of the two sockets
MAX_CORRELATION_ID = 10
PING, PONG = "ping", "pong"
TOKEN_LEN = 25

_HEADER = struct.Struct("<BB25sqqq")        # mode, exchange type, token, seq, exch ts (ms), ltp
_QUOTE_TAIL = struct.Struct("<qqqddqqqq")   # ltq, atp, volume, tbq, tsq, open, high, low, close
_SNAP_HEAD = struct.Struct("<qqd")          # last traded ts (s), oi, oi change %
_LEVEL = struct.Struct("<hqqh")             # flag (1 bid, 0 ask), qty, price (paise), orders
_SNAP_TAIL = struct.Struct("<qqqq")         # upper circuit, lower circuit, 52w high, 52w low
assert _HEADER.size == 51 and 51 + _QUOTE_TAIL.size == 123
assert 123 + _SNAP_HEAD.size + 10 * _LEVEL.size + _SNAP_TAIL.size == 379


class FrameError(ValueError):
    """A frame we refuse: wrong length for its mode, unknown mode or exchange, a bad token, an
    impossible value. The message names the field and its byte offset."""


@dataclass(frozen=True)
class Level:
    side: str        # "bid" (flag 1) or "ask" (flag 0)
    qty: int
    price: float     # rupees
    orders: int


@dataclass(frozen=True)
class Tick:
    """One decoded binary packet. QUOTE fields are None on an LTP packet, SNAP fields on both."""
    mode: int
    exchange_type: int
    token: str
    sequence: int
    exchange_ts: datetime            # aware IST, from epoch milliseconds
    ltp: float                       # rupees
    last_qty: int | None = None
    avg_price: float | None = None
    volume: int | None = None
    total_buy_qty: float | None = None
    total_sell_qty: float | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None       # previous close
    last_trade_ts: datetime | None = None
    open_interest: int | None = None
    oi_change_pct: float | None = None
    best_five: tuple[Level, ...] = ()
    upper_circuit: float | None = None
    lower_circuit: float | None = None
    high_52w: float | None = None
    low_52w: float | None = None

    @property
    def exchange(self) -> str:
        return EXCHANGE_TYPES[self.exchange_type]

    @property
    def bid(self) -> float:
        """Best bid in rupees (SNAP_QUOTE only; 0 when the side is empty or not sent)."""
        return max((lv.price for lv in self.best_five if lv.side == "bid" and lv.qty > 0),
                   default=0.0)

    @property
    def ask(self) -> float:
        return min((lv.price for lv in self.best_five if lv.side == "ask" and lv.qty > 0),
                   default=0.0)


@dataclass(frozen=True)
class Pong:
    pass


@dataclass(frozen=True)
class ErrorFrame:
    """A JSON text error from the market socket (E1001 bad payload, E1002 subscription limit)."""
    code: str
    message: str
    correlation_id: str = ""


@dataclass(frozen=True)
class OrderUpdate:
    """One order-status socket message. `order` is None for AB00 (the blank greeting)."""
    status_code: str                 # AB00..AB11
    user_id: str
    error_message: str
    order: BrokerOrder | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)


ORDER_STATUS_CODES = {
    "AB00": "initial", "AB01": "open", "AB02": "cancelled", "AB03": "rejected",
    "AB04": "modified", "AB05": "complete", "AB06": "amo request received",
    "AB07": "cancelled amo", "AB08": "modify amo request received", "AB09": "open pending",
    "AB10": "trigger pending", "AB11": "modify pending"}


# --- prices --------------------------------------------------------------------------------------
def to_rupees(paise: int, name: str, offset: int, fo: bool = False) -> float:
    """int64 paise -> rupees; negative is refused, and on F&O so is a price off the 0.05 tick."""
    if paise < 0:
        raise FrameError(f"field {name!r} at byte {offset} is negative: {paise} paise")
    if fo and paise % TICK_PAISE:
        raise FrameError(f"field {name!r} at byte {offset} is off the 0.05 tick: {paise} paise")
    return round(paise / 100, 2)


def to_paise(rupees: float) -> int:
    return int(round(rupees * 100))


def _epoch_ms(ms: int, name: str, offset: int) -> datetime:
    if not 0 < ms < 10 ** 14:
        raise FrameError(f"field {name!r} at byte {offset} is not an epoch in ms: {ms}")
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).astimezone(IST)


def _epoch_s(s: int, name: str, offset: int) -> datetime | None:
    if s == 0:
        return None
    if not 0 < s < 10 ** 11:
        raise FrameError(f"field {name!r} at byte {offset} is not an epoch in seconds: {s}")
    return datetime.fromtimestamp(s, tz=timezone.utc).astimezone(IST)


# --- binary ticks --------------------------------------------------------------------------------
def decode_tick(frame: bytes) -> Tick:
    """One binary packet -> Tick, exactly per the SmartWebSocketV2 layout, else FrameError."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise FrameError(f"a tick is a binary frame, got {type(frame).__name__}")
    frame = bytes(frame)
    if len(frame) < 2:
        raise FrameError(f"frame of {len(frame)} bytes is shorter than its header")
    mode, ex = frame[0], frame[1]
    if mode == DEPTH:
        raise FrameError("field 'mode' at byte 0 is 4 (DEPTH): deprecated and not subscribed")
    if mode not in PACKET_LEN:
        raise FrameError(f"field 'mode' at byte 0 is {mode}, not 1 (LTP), 2 (QUOTE) or 3 (SNAP)")
    if len(frame) != PACKET_LEN[mode]:
        raise FrameError(f"a {MODE_NAMES[mode]} packet is {PACKET_LEN[mode]} bytes, got "
                         f"{len(frame)}")
    if ex not in EXCHANGE_TYPES:
        raise FrameError(f"field 'exchange_type' at byte 1 is {ex}, not one of "
                         f"{sorted(EXCHANGE_TYPES)}")
    _, _, raw_token, seq, ts_ms, ltp = _HEADER.unpack_from(frame, 0)
    token = _token(raw_token)
    fo = ex in FO_TYPES
    base = dict(mode=mode, exchange_type=ex, token=token, sequence=seq,
                exchange_ts=_epoch_ms(ts_ms, "exchange_timestamp", 35),
                ltp=to_rupees(ltp, "ltp", 43, fo))
    if mode == LTP:
        return Tick(**base)
    ltq, atp, vol, tbq, tsq, o, h, lo, c = _QUOTE_TAIL.unpack_from(frame, 51)
    for name, off, v in (("last_traded_qty", 51, ltq), ("volume", 67, vol)):
        if v < 0:
            raise FrameError(f"field {name!r} at byte {off} is negative: {v}")
    for name, off, v in (("total_buy_qty", 75, tbq), ("total_sell_qty", 83, tsq)):
        if not math.isfinite(v) or v < 0:
            raise FrameError(f"field {name!r} at byte {off} is not a finite quantity >= 0: {v}")
    base.update(last_qty=ltq, avg_price=to_rupees(atp, "average_traded_price", 59),
                volume=vol, total_buy_qty=tbq, total_sell_qty=tsq,
                open=to_rupees(o, "open", 91, fo), high=to_rupees(h, "high", 99, fo),
                low=to_rupees(lo, "low", 107, fo), close=to_rupees(c, "close", 115, fo))
    if mode == QUOTE:
        return Tick(**base)
    return Tick(**base, **_snap_fields(frame, fo))


def _token(raw: bytes) -> str:
    text = raw.rstrip(b"\x00")
    if not text or b"\x00" in text or not text.isdigit():
        raise FrameError(f"field 'token' at byte 2 is not NUL-padded ASCII digits: {raw!r}")
    return text.decode("ascii")


def _snap_fields(frame: bytes, fo: bool) -> dict:
    lts, oi, oi_pct = _SNAP_HEAD.unpack_from(frame, 123)
    if oi < 0:
        raise FrameError(f"field 'open_interest' at byte 131 is negative: {oi}")
    levels = []
    for i in range(10):
        off = 147 + i * _LEVEL.size
        flag, qty, price, orders = _LEVEL.unpack_from(frame, off)
        if flag not in (0, 1):
            raise FrameError(f"field 'best_five[{i}].flag' at byte {off} is {flag}, not 0 or 1")
        if qty < 0 or orders < 0:
            raise FrameError(f"field 'best_five[{i}]' at byte {off} has a negative qty or orders")
        levels.append(Level("bid" if flag == 1 else "ask", qty,
                            to_rupees(price, f"best_five[{i}].price", off + 10, fo), orders))
    uc, lc, h52, l52 = _SNAP_TAIL.unpack_from(frame, 347)
    return dict(last_trade_ts=_epoch_s(lts, "last_traded_timestamp", 123), open_interest=oi,
                oi_change_pct=oi_pct if math.isfinite(oi_pct) else None,
                best_five=tuple(levels),
                upper_circuit=to_rupees(uc, "upper_circuit", 347),
                lower_circuit=to_rupees(lc, "lower_circuit", 355),
                high_52w=to_rupees(h52, "high_52w", 363), low_52w=to_rupees(l52, "low_52w", 371))


def encode_tick(t: Tick) -> bytes:
    """The packet Angel would send for `t` (the sandbox's side; decode_tick(encode_tick(t)) == t)."""
    if t.mode not in PACKET_LEN:
        raise ValueError(f"cannot encode mode {t.mode}")
    token = t.token.encode("ascii")
    if len(token) > TOKEN_LEN:
        raise ValueError(f"token {t.token!r} is longer than {TOKEN_LEN} bytes")
    out = _HEADER.pack(t.mode, t.exchange_type, token.ljust(TOKEN_LEN, b"\x00"), t.sequence,
                       int(round(t.exchange_ts.timestamp() * 1000)), to_paise(t.ltp))
    if t.mode == LTP:
        return out
    out += _QUOTE_TAIL.pack(t.last_qty or 0, to_paise(t.avg_price or 0), t.volume or 0,
                            float(t.total_buy_qty or 0), float(t.total_sell_qty or 0),
                            *(to_paise(v or 0) for v in (t.open, t.high, t.low, t.close)))
    if t.mode == QUOTE:
        return out
    lts = int(t.last_trade_ts.timestamp()) if t.last_trade_ts else 0
    out += _SNAP_HEAD.pack(lts, t.open_interest or 0, float(t.oi_change_pct or 0.0))
    levels = list(t.best_five) + [Level("bid", 0, 0.0, 0)] * (10 - len(t.best_five))
    for lv in levels[:10]:
        out += _LEVEL.pack(1 if lv.side == "bid" else 0, lv.qty, to_paise(lv.price), lv.orders)
    out += _SNAP_TAIL.pack(*(to_paise(v or 0) for v in (t.upper_circuit, t.lower_circuit,
                                                         t.high_52w, t.low_52w)))
    return out


# --- text frames of the market socket ------------------------------------------------------------
def subscription_message(correlation_id: str, mode: int, tokens: dict[int, list[str]],
                         action: int = SUBSCRIBE) -> str:
    """The JSON text frame that (un)subscribes `tokens` ({exchangeType: [token, ...]})."""
    if action not in (SUBSCRIBE, UNSUBSCRIBE):
        raise ValueError(f"action {action!r} is not 1 (subscribe) or 0 (unsubscribe)")
    if mode not in PACKET_LEN:
        raise ValueError(f"mode {mode!r} is not 1 (LTP), 2 (QUOTE) or 3 (SNAP_QUOTE)")
    if not correlation_id or len(correlation_id) > MAX_CORRELATION_ID:
        raise ValueError(f"correlationID {correlation_id!r} must be 1..{MAX_CORRELATION_ID} chars")
    count = sum(len(v) for v in tokens.values())
    if count == 0 or count > MAX_TOKENS_PER_CONNECTION:
        raise ValueError(f"{count} tokens: a subscription holds 1..{MAX_TOKENS_PER_CONNECTION}")
    for ex in tokens:
        if ex not in EXCHANGE_TYPES:
            raise ValueError(f"exchangeType {ex!r} is not one of {sorted(EXCHANGE_TYPES)}")
    return json.dumps({"correlationID": correlation_id, "action": action, "params": {
        "mode": mode, "tokenList": [{"exchangeType": ex, "tokens": [str(t) for t in toks]}
                                    for ex, toks in sorted(tokens.items()) if toks]}})


@dataclass(frozen=True)
class Subscription:
    correlation_id: str
    action: int
    mode: int
    tokens: dict[int, tuple[str, ...]]


def parse_subscription(text: str) -> Subscription:
    """The sandbox's side of `subscription_message`; ValueError names what is wrong (E1001)."""
    try:
        d = json.loads(text)
        params = d["params"]
        action, mode = d["action"], params["mode"]
        lists = params["tokenList"]
        tokens: dict[int, tuple[str, ...]] = {}
        for item in lists:
            ex = item["exchangeType"]
            if ex not in EXCHANGE_TYPES:
                raise ValueError(f"exchangeType {ex!r}")
            tokens[ex] = tuple(str(t) for t in item["tokens"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"invalid request payload: {exc}") from None
    if action not in (SUBSCRIBE, UNSUBSCRIBE) or mode not in PACKET_LEN:
        raise ValueError(f"invalid request payload: action {action!r}, mode {mode!r}")
    return Subscription(str(d.get("correlationID") or ""), action, mode, tokens)


def error_message(code: str, message: str, correlation_id: str = "") -> str:
    return json.dumps({"correlationID": correlation_id, "errorCode": code,
                       "errorMessage": message})


def decode_text(text: str) -> Pong | ErrorFrame:
    """A text frame from the market socket: `pong`, or an E100x JSON error; else FrameError."""
    if text.strip() == PONG:
        return Pong()
    try:
        d = json.loads(text)
    except ValueError:
        raise FrameError(f"text frame is neither 'pong' nor JSON: {text[:60]!r}") from None
    if not isinstance(d, dict) or not d.get("errorCode"):
        raise FrameError(f"text frame is not an error message: {text[:60]!r}")
    return ErrorFrame(str(d["errorCode"]), str(d.get("errorMessage") or ""),
                      str(d.get("correlationID") or ""))


# --- the order-status socket ---------------------------------------------------------------------
ORDER_ROUTE = "order-status socket"


def decode_order_update(text: str | bytes) -> OrderUpdate:
    """One order-status message; the orderData row is parsed as an order-book row. A message that
    is not JSON, lacks `order-status`, or whose row misses a field raises FrameError naming it."""
    try:
        d: Any = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise FrameError(f"{ORDER_ROUTE}: message is not JSON: {str(text)[:60]!r}") from None
    if not isinstance(d, dict) or not isinstance(d.get("order-status"), str):
        raise FrameError(f"{ORDER_ROUTE}: field 'order-status' missing: {str(text)[:60]!r}")
    code = d["order-status"]
    if code not in ORDER_STATUS_CODES:
        raise FrameError(f"{ORDER_ROUTE}: field 'order-status' is {code!r}, not AB00..AB11")
    data = d.get("orderData")
    order = None
    if code != "AB00":
        if not isinstance(data, dict):
            raise FrameError(f"{ORDER_ROUTE}: field 'orderData' is not an object ({code})")
        try:
            order = parse_order(data, ORDER_ROUTE)
        except BrokerError as exc:
            raise FrameError(str(exc)) from None
    return OrderUpdate(code, str(d.get("user-id") or ""), str(d.get("error-message") or ""),
                       order, d)


def encode_order_update(code: str, user_id: str, row: dict | None) -> str:
    """The sandbox's side: an order-book row wrapped as Angel's order socket sends it."""
    return json.dumps({"user-id": user_id, "status-code": "200", "order-status": code,
                       "error-message": "", "orderData": row or {}})


def status_code_for(orderstatus: str) -> str:
    """The AB code of an order-book `orderstatus` (the sandbox pushes one per transition)."""
    s = orderstatus.strip().lower()
    for code, word in ORDER_STATUS_CODES.items():
        if word == s and code != "AB00":
            return code
    return {"validation pending": "AB09", "put order req received": "AB09",
            "modify validation pending": "AB11", "cancel pending": "AB01"}.get(s, "AB01")
