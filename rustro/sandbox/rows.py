"""Angel-shaped rows, built from the paper exchange's records: pure, no I/O.

The quirks are deliberate (spec 3.3-3.8): order rows carry prices as JSON numbers but quantities
as strings; trade book, position and RMS fields are all strings; trade rows have neither
uniqueorderid nor ordertag and a time-only `filltime`; quote rows are camelCase.
"""
from __future__ import annotations

from datetime import datetime

from ..broker.base import BrokerPosition, Funds
from ..broker.paper_rules import PENDING
from ..broker.paper_store import parse_time
from ..market.base import Bar, Quote, round_to_tick

ANGEL_TIME = "%d-%b-%Y %H:%M:%S"


def angel_time(dt: datetime) -> str:
    return dt.strftime(ANGEL_TIME)


def _s2(x: float) -> str:
    return f"{x:.2f}"


def instrument_fields(inst: dict | None) -> dict:
    """instrumenttype / strikeprice (rupees) / optiontype / expirydate of a master row."""
    inst = inst or {}
    itype, symbol = inst.get("instrumenttype", ""), inst.get("symbol", "")
    strike = float(inst.get("strike") or -100) / 100
    option = symbol[-2:] if itype.startswith("OPT") and symbol[-2:] in ("CE", "PE") else ""
    return {"instrumenttype": itype, "strikeprice": strike if option else -1.0,
            "optiontype": option, "expirydate": inst.get("expiry", "")}


def _avg(o: dict) -> float:
    return round(o["filled_paise"] / o["filled_qty"] / 100, 2) if o["filled_qty"] else 0.0


def order_row(o: dict, inst: dict | None, modified: bool = False) -> dict:
    """One getOrderBook / order-details row from a paper store order row."""
    status = o["status"]
    updated = angel_time(parse_time(o["updated"]))
    at_exchange = status != PENDING
    filled, qty = o["filled_qty"], o["qty"]
    return {
        "variety": o["variety"], "ordertype": o["order_type"], "producttype": o["product"],
        "duration": o["duration"], "price": float(o["price"]), "triggerprice": 0,
        "quantity": str(qty), "disclosedquantity": "0", "squareoff": 0, "stoploss": 0,
        "trailingstoploss": 0, "tradingsymbol": o["symbol"], "transactiontype": o["side"],
        "exchange": o["exchange"], "symboltoken": o["token"], **instrument_fields(inst),
        "lotsize": str(o["lot_size"]),
        "cancelsize": str(qty - filled) if status == "cancelled" else "0",
        "averageprice": _avg(o), "filledshares": str(filled), "unfilledshares": str(qty - filled),
        "orderid": o["order_id"], "text": o["text"] or "",
        # After a modify Angel may show status "modified" while orderstatus is the state.
        "status": "modified" if modified and status == "open" else status, "orderstatus": status,
        "updatetime": updated, "exchtime": angel_time(parse_time(o["placed_at"])) if at_exchange else "",
        "exchorderupdatetime": updated if at_exchange else "", "fillid": "", "filltime": "",
        "parentorderid": "", "ordertag": o["tag"], "uniqueorderid": o["unique_order_id"],
        "exchangeorderid": f"{1_100_000_000_000_000 + o['seq']}" if at_exchange else "",
    }


def trade_row(f: dict, inst: dict | None) -> dict:
    """One getTradeBook row (one per exchange fill) from a paper store fill row."""
    fields = instrument_fields(inst)
    return {
        "exchange": f["exchange"], "producttype": f["product"], "tradingsymbol": f["symbol"],
        "instrumenttype": fields["instrumenttype"], "symbolgroup": "XX",
        "strikeprice": f"{fields['strikeprice']:.1f}", "optiontype": fields["optiontype"],
        "expirydate": fields["expirydate"], "marketlot": str((inst or {}).get("lotsize", "1")),
        "precision": "2", "multiplier": "-1", "tradevalue": _s2(f["qty"] * f["price"]),
        "transactiontype": f["side"], "fillprice": _s2(f["price"]), "fillsize": str(f["qty"]),
        "orderid": f["order_id"], "fillid": f["fill_id"],
        "filltime": parse_time(f["time"]).strftime("%H:%M:%S"),
    }


def position_row(p: BrokerPosition, inst: dict | None, prev_close: float) -> dict:
    """One getPosition row: every value a string, netqty signed units."""
    fields = instrument_fields(inst)
    buy_amt, sell_amt = p.buy_qty * p.buy_avg, p.sell_qty * p.sell_avg
    return {
        "exchange": p.exchange, "symboltoken": p.token, "producttype": p.product,
        "tradingsymbol": p.symbol, "symbolname": (inst or {}).get("name", ""),
        "instrumenttype": fields["instrumenttype"], "priceden": "1.00", "pricenum": "1.00",
        "genden": "1.00", "gennum": "1.00", "precision": "2", "multiplier": "-1",
        "boardlotsize": "1", "buyqty": str(p.buy_qty), "sellqty": str(p.sell_qty),
        "buyamount": _s2(buy_amt), "sellamount": _s2(sell_amt), "symbolgroup": "XX",
        "strikeprice": f"{fields['strikeprice']:.1f}", "optiontype": fields["optiontype"],
        "expirydate": fields["expirydate"], "lotsize": str((inst or {}).get("lotsize", "1")),
        "cfbuyqty": "0", "cfsellqty": "0", "cfbuyamount": "0.00", "cfsellamount": "0.00",
        "buyavgprice": _s2(p.buy_avg), "sellavgprice": _s2(p.sell_avg),
        "avgnetprice": _s2(p.buy_avg if p.net_qty > 0 else p.sell_avg if p.net_qty < 0 else 0.0),
        "netvalue": _s2(sell_amt - buy_amt), "netqty": str(p.net_qty),
        "totalbuyvalue": _s2(buy_amt), "totalsellvalue": _s2(sell_amt),
        "cfbuyavgprice": "0.00", "cfsellavgprice": "0.00", "totalbuyavgprice": _s2(p.buy_avg),
        "totalsellavgprice": _s2(p.sell_avg), "netprice": "0.00",
        "pnl": _s2(p.realised + p.unrealised), "realised": _s2(p.realised),
        "unrealised": _s2(p.unrealised), "ltp": _s2(p.ltp), "close": _s2(prev_close),
    }


def rms_data(funds: Funds, positions: list[BrokerPosition]) -> dict:
    """getRMS `data`: decimal strings with four places, as Angel sends them."""
    def s4(x: float) -> str:
        return f"{x:.4f}"
    premium = sum(p.buy_qty * p.buy_avg for p in positions)
    return {"net": s4(funds.net), "availablecash": s4(funds.available_cash),
            "availableintradaypayin": s4(0), "availablelimitmargin": s4(0), "collateral": s4(0),
            "m2munrealized": s4(sum(p.unrealised for p in positions)),
            "m2mrealized": s4(sum(p.realised for p in positions)),
            "utiliseddebits": s4(funds.utilised), "utilisedspan": None,
            "utilisedoptionpremium": s4(premium), "utilisedholdingsales": None,
            "utilisedexposure": None, "utilisedturnover": None, "utilisedpayout": s4(0)}


def depth(q: Quote, lot: int, tick: float) -> dict:
    """Five levels a side stepping one tick away from the touch; empty sides are zeros."""
    def side(best: float, sign: int) -> list[dict]:
        if best <= 0:
            return [{"price": 0.0, "quantity": 0, "orders": 0} for _ in range(5)]
        return [{"price": max(0.0, round_to_tick(best + sign * i * tick, tick)),
                 "quantity": lot * (i + 1) * 3, "orders": i + 1} for i in range(5)]
    return {"buy": side(q.bid, -1), "sell": side(q.ask, 1)}


def quote_row(mode: str, exchange: str, symbol: str, q: Quote, ohlc: dict, lot: int,
              tick: float) -> dict:
    """One `fetched` row of market/v1/quote in LTP, OHLC or FULL mode."""
    row: dict = {"exchange": exchange, "tradingSymbol": symbol, "symbolToken": q.token,
                 "ltp": q.ltp}
    if mode == "LTP":
        return row
    row.update(open=ohlc["open"], high=ohlc["high"], low=ohlc["low"], close=ohlc["close"])
    if mode == "OHLC":
        return row
    close = ohlc["close"]
    change = round(q.ltp - close, 2) if close else 0.0
    row.update({
        "lastTradeQty": lot, "exchFeedTime": angel_time(q.ts), "exchTradeTime": angel_time(q.ts),
        "netChange": change, "percentChange": round(change / close * 100, 2) if close else 0.0,
        "avgPrice": ohlc["avg"], "tradeVolume": ohlc["volume"], "opnInterest": 0,
        "lowerCircuit": round_to_tick(close * 0.8, tick or 0.05) if close else 0.0,
        "upperCircuit": round_to_tick(close * 1.2, tick or 0.05) if close else 0.0,
        "totBuyQuan": lot * 45, "totSellQuan": lot * 45, "52WeekLow": 0.0, "52WeekHigh": 0.0,
        "depth": depth(q, lot, tick or 0.05)})
    return row


def candle_row(b: Bar, index: bool) -> list:
    """[ISO start with +05:30, open, high, low, close, volume]; index volume is 0."""
    return [b.start.isoformat(), b.open, b.high, b.low, b.close, 0 if index else int(b.volume)]
