"""SmartWebSocketV2 and order-status frames, byte for byte against the published layout.

Every packet here is built by hand with struct.pack from the offset table (little-endian, prices
in paise), never with the encoder under test, so a layout mistake in the codec cannot hide.
"""
import json
import re
import struct
from datetime import datetime

import pytest

from rustro.broker import ws_codec as wc
from rustro.clock import IST

TS_MS = 1735201464000            # 26-Dec-2024 13:54:24 IST, the community sample's timestamp
TOKEN = b"48223".ljust(25, b"\x00")


def header(mode=1, ex=2, token=TOKEN, seq=7, ts=TS_MS, ltp=19075):
    return struct.pack("<B", mode) + struct.pack("<B", ex) + token + struct.pack("<q", seq) + \
        struct.pack("<q", ts) + struct.pack("<q", ltp)


def quote_tail(ltq=65, atp=18990, vol=123450, tbq=5200.0, tsq=4100.5, o=18500, h=19500, lo=18005,
               c=18800):
    return struct.pack("<q", ltq) + struct.pack("<q", atp) + struct.pack("<q", vol) + \
        struct.pack("<d", tbq) + struct.pack("<d", tsq) + struct.pack("<q", o) + \
        struct.pack("<q", h) + struct.pack("<q", lo) + struct.pack("<q", c)


def snap_tail(levels=None):
    out = struct.pack("<q", 1735201460) + struct.pack("<q", 987650) + struct.pack("<d", 4.25)
    levels = levels or ([(1, 130, 19070 - 5 * i, 3 + i) for i in range(5)]
                        + [(0, 65, 19080 + 5 * i, 1 + i) for i in range(5)])
    for flag, qty, price, orders in levels:
        out += struct.pack("<h", flag) + struct.pack("<q", qty) + struct.pack("<q", price) + \
            struct.pack("<h", orders)
    return out + struct.pack("<q", 40000) + struct.pack("<q", 5) + struct.pack("<q", 52000) + \
        struct.pack("<q", 1000)


def test_ltp_packet_is_51_bytes_and_every_field_decodes():
    frame = header()
    assert len(frame) == 51
    t = wc.decode_tick(frame)
    assert (t.mode, t.exchange_type, t.exchange, t.token, t.sequence) == (1, 2, "NFO", "48223", 7)
    assert t.exchange_ts == datetime(2024, 12, 26, 13, 54, 24, tzinfo=IST)
    assert t.ltp == 190.75 and t.last_qty is None and t.best_five == ()


def test_quote_packet_every_field():
    frame = header(mode=2) + quote_tail()
    assert len(frame) == 123
    t = wc.decode_tick(frame)
    assert t.mode == 2 and t.ltp == 190.75
    assert t.last_qty == 65 and t.avg_price == 189.90 and t.volume == 123450
    assert t.total_buy_qty == 5200.0 and t.total_sell_qty == 4100.5
    assert (t.open, t.high, t.low, t.close) == (185.0, 195.0, 180.05, 188.0)
    assert t.open_interest is None and t.best_five == ()


def test_snap_quote_packet_every_field_and_best_five():
    frame = header(mode=3) + quote_tail() + snap_tail()
    assert len(frame) == 379
    t = wc.decode_tick(frame)
    assert t.last_trade_ts == datetime(2024, 12, 26, 13, 54, 20, tzinfo=IST)
    assert t.open_interest == 987650 and t.oi_change_pct == 4.25
    assert len(t.best_five) == 10
    assert t.best_five[0] == wc.Level("bid", 130, 190.70, 3)
    assert t.best_five[9] == wc.Level("ask", 65, 191.00, 5)
    assert (t.bid, t.ask) == (190.70, 190.80)
    assert (t.upper_circuit, t.lower_circuit, t.high_52w, t.low_52w) == (400.0, 0.05, 520.0, 10.0)


def test_index_packet_on_nse_cm_keeps_paise_precision():
    t = wc.decode_tick(header(ex=1, token=b"99926000".ljust(25, b"\x00"), seq=0, ltp=2441237))
    assert (t.exchange, t.token, t.ltp) == ("NSE", "99926000", 24412.37)


@pytest.mark.parametrize("mode", [1, 2, 3])
def test_encoder_builds_the_same_bytes_as_the_table(mode):
    frame = {1: header(), 2: header(mode=2) + quote_tail(),
             3: header(mode=3) + quote_tail() + snap_tail()}[mode]
    assert wc.encode_tick(wc.decode_tick(frame)) == frame


@pytest.mark.parametrize("frame, words", [
    (header()[:50], "51 bytes, got 50"),
    (header(mode=2) + quote_tail()[:-1], "123 bytes, got 122"),
    (header(mode=3) + quote_tail(), "379 bytes, got 123"),
    (header() + b"\x00", "51 bytes, got 52"),
    (b"\x01", "shorter than its header"),
    (header(mode=9), "'mode' at byte 0 is 9"),
    (header(mode=4), "DEPTH"),
    (header(ex=6), "'exchange_type' at byte 1 is 6"),
    (header(token=b"\xff" * 25), "'token' at byte 2"),
    (header(token=b"\x00" * 25), "'token' at byte 2"),
    (header(ltp=-5), "'ltp' at byte 43 is negative"),
    (header(ltp=19073), "'ltp' at byte 43 is off the 0.05 tick"),
    (header(ts=0), "'exchange_timestamp' at byte 35"),
    (header(mode=2) + quote_tail(vol=-1), "'volume' at byte 67"),
    (header(mode=2) + quote_tail(tbq=float("nan")), "'total_buy_qty' at byte 75"),
    (header(mode=3) + quote_tail() + snap_tail([(7, 1, 5, 1)] * 10), "best_five[0].flag"),
])
def test_truncated_and_garbage_packets_raise_frame_error_naming_the_field(frame, words):
    with pytest.raises(wc.FrameError, match=re.escape(words)):
        wc.decode_tick(frame)


def test_random_garbage_never_decodes_silently():
    import random
    rng = random.Random(5)
    for n in (0, 1, 13, 51, 123, 379, 500):
        for _ in range(50):
            frame = bytes(rng.randrange(256) for _ in range(n))
            try:
                t = wc.decode_tick(frame)
            except wc.FrameError:
                continue
            assert t.token.isdigit() and t.ltp >= 0   # a valid-looking frame is a valid one


def test_subscribe_and_unsubscribe_messages_match_the_documented_json():
    msg = wc.subscription_message("abcde12345", wc.LTP, {1: ["26009", "99926000"], 2: ["48223"]})
    assert json.loads(msg) == {"correlationID": "abcde12345", "action": 1, "params": {
        "mode": 1, "tokenList": [{"exchangeType": 1, "tokens": ["26009", "99926000"]},
                                 {"exchangeType": 2, "tokens": ["48223"]}]}}
    back = wc.parse_subscription(wc.subscription_message("x", 3, {2: ["1"]}, wc.UNSUBSCRIBE))
    assert (back.action, back.mode, back.tokens) == (0, 3, {2: ("1",)})


def test_subscription_limits_and_bad_fields_are_refused():
    with pytest.raises(ValueError, match="1001 tokens"):
        wc.subscription_message("c", wc.LTP, {2: [str(i) for i in range(1001)]})
    wc.subscription_message("c", wc.LTP, {2: [str(i) for i in range(1000)]})
    with pytest.raises(ValueError, match="correlationID"):
        wc.subscription_message("abcdefghijk", wc.LTP, {1: ["1"]})
    with pytest.raises(ValueError, match="mode 4"):
        wc.subscription_message("c", wc.DEPTH, {1: ["1"]})
    with pytest.raises(ValueError, match="exchangeType 6"):
        wc.subscription_message("c", wc.LTP, {6: ["1"]})
    with pytest.raises(ValueError, match="invalid request payload"):
        wc.parse_subscription('{"action": 1}')


def test_text_frames_pong_and_error_json():
    assert wc.decode_text("pong") == wc.Pong()
    err = wc.decode_text('{"correlationID":"abcde12345","errorCode":"E1002",'
                         '"errorMessage":"Invalid Request. Subscription Limit Exceeded"}')
    assert err == wc.ErrorFrame("E1002", "Invalid Request. Subscription Limit Exceeded",
                                "abcde12345")
    assert wc.decode_text(wc.error_message("E1001", "Invalid Request Payload")).code == "E1001"
    for bad in ("hello", "[1]", '{"a": 1}'):
        with pytest.raises(wc.FrameError):
            wc.decode_text(bad)


ORDER_DATA = {"variety": "NORMAL", "ordertype": "LIMIT", "producttype": "INTRADAY",
              "duration": "DAY", "price": 265.65, "quantity": "65", "tradingsymbol":
              "NIFTY20OCT2625000CE", "transactiontype": "BUY", "exchange": "NFO",
              "symboltoken": "48223", "averageprice": 265.62, "filledshares": "65",
              "unfilledshares": "0", "orderid": "261014000001", "text": "", "status": "complete",
              "orderstatus": "complete", "updatetime": "14-Oct-2026 10:15:07",
              "ordertag": "E1014NIFB0", "uniqueorderid": "8f0c-uuid"}


def test_order_update_feeds_an_order_book_row():
    msg = json.dumps({"user-id": "A496209", "status-code": "200", "order-status": "AB05",
                      "error-message": "", "orderData": ORDER_DATA})
    u = wc.decode_order_update(msg)
    assert (u.status_code, u.user_id) == ("AB05", "A496209")
    o = u.order
    assert (o.order_id, o.unique_order_id, o.tag, o.status, o.filled_qty, o.qty) == (
        "261014000001", "8f0c-uuid", "E1014NIFB0", "complete", 65, 65)
    assert o.avg_price == 265.62 and o.price == 265.65
    assert o.updated == datetime(2026, 10, 14, 10, 15, 7, tzinfo=IST)
    back = wc.decode_order_update(wc.encode_order_update("AB05", "A496209", ORDER_DATA))
    assert back.order == o


def test_ab00_greeting_has_no_order_and_bad_messages_name_the_field():
    blank = {k: "" for k in ORDER_DATA}
    assert wc.decode_order_update(json.dumps({"order-status": "AB00", "orderData": blank})).order \
        is None
    with pytest.raises(wc.FrameError, match="not JSON"):
        wc.decode_order_update("{oops")
    with pytest.raises(wc.FrameError, match="'order-status' missing"):
        wc.decode_order_update("{}")
    with pytest.raises(wc.FrameError, match="AB99"):
        wc.decode_order_update('{"order-status": "AB99"}')
    row = dict(ORDER_DATA)
    del row["orderid"]
    with pytest.raises(wc.FrameError, match="'orderid'"):
        wc.decode_order_update(wc.encode_order_update("AB01", "u", row))


def test_every_orderstatus_maps_to_its_ab_code():
    assert wc.status_code_for("complete") == "AB05"
    assert wc.status_code_for("open") == "AB01"
    assert wc.status_code_for("rejected") == "AB03"
    assert wc.status_code_for("cancelled") == "AB02"
    assert wc.status_code_for("open pending") == "AB09"
    assert wc.status_code_for("validation pending") == "AB09"
