"""The ATM strike rule and exact strike arithmetic (decimal, half up), pure."""
from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

OPTION_TYPES = ("CE", "PE")


def atm_strike(spot: float, strike_step: float, option_type: str, offset_steps: int = 0) -> Decimal:
    """Spot to the nearest step (half up, exact decimal), then `offset_steps` OTM (CE up, PE down)."""
    if option_type not in OPTION_TYPES:
        raise ValueError(f"option_type must be CE or PE, got {option_type!r}")
    if isinstance(spot, bool) or not isinstance(spot, (int, float, Decimal)) \
            or not math.isfinite(spot) or spot <= 0:
        raise ValueError(f"spot must be a positive finite number, got {spot!r}")
    if isinstance(strike_step, bool) or not isinstance(strike_step, (int, float, Decimal)) \
            or not math.isfinite(strike_step) or strike_step <= 0:
        raise ValueError(f"strike_step must be a positive number, got {strike_step!r}")
    if isinstance(offset_steps, bool) or not isinstance(offset_steps, int) or offset_steps < 0:
        raise ValueError(f"offset_steps must be a whole number >= 0, got {offset_steps!r}")
    step = Decimal(str(strike_step))
    n = (Decimal(str(spot)) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    n += offset_steps if option_type == "CE" else -offset_steps
    return n * step


def _paise(strike: float | Decimal) -> int:
    if type(strike) is float:  # a float within 1e-6 paise of a whole paisa: that paisa, quickly
        x = strike * 100
        n = round(x)
        if abs(x - n) < 1e-6:
            return n
    return int((Decimal(str(strike)) * 100).to_integral_value(rounding=ROUND_HALF_UP))


def _fmt(strike: float | Decimal) -> str:
    return f"{float(strike):.2f}".rstrip("0").rstrip(".")
