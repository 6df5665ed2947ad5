"""Write tests/data/talib_reference.json: deterministic OHLCV series and TA-Lib's outputs on them.

    pip install ta-lib   # a dev-machine tool only; never a project dependency
    python scripts/gen_talib_reference.py

Run once and commit the JSON; tests compare rustro.indicators against it without TA-Lib.
Series: "walk" (400 bars, seeded random walk of index-like prices ~24000 on the 0.05 tick),
"flat_start" (flat bars, then inside bars, then a walk: TA-Lib's zero branches of RSI/DI/ADX),
"flat" (one price throughout) and "long_flat" (a walk, 1,200 identical bars, a walk; period 2
only: its Wilder sums decay to zero, where ADX holds). NaN is written as null.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import talib

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "talib_reference.json"
TICK = 0.05
PERIODS = (5, 14, 20)


def on_tick(x: np.ndarray) -> np.ndarray:
    return np.round(np.round(x / TICK) * TICK, 2)


def walk(n_bars: int, seed: int, start: float = 24000.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    opens, closes = np.empty(n_bars), np.empty(n_bars)
    price = start
    for i in range(n_bars):
        opens[i] = price + rng.normal(0, 4)              # a small gap from the last close
        price = opens[i] + rng.normal(0, 25)
        closes[i] = price
    o, c = on_tick(opens), on_tick(closes)
    h = on_tick(np.maximum(o, c) + np.abs(rng.normal(0, 12, n_bars)))
    l = on_tick(np.minimum(o, c) - np.abs(rng.normal(0, 12, n_bars)))
    v = rng.integers(1_000, 200_000, n_bars).astype(float)
    return {"open": o, "high": h, "low": l, "close": c, "volume": v}


def flat_start(seed: int) -> dict[str, np.ndarray]:
    """20 identical bars, 15 identical inside bars with range (TR > 0, no DM), then a walk."""
    w = walk(45, seed, start=24000.0)
    flat = {k: np.full(20, 24000.0) for k in ("open", "high", "low", "close")}
    inside = {"open": np.full(15, 24000.0), "high": np.full(15, 24010.0),
              "low": np.full(15, 23990.0), "close": np.full(15, 24000.0)}
    out = {k: np.concatenate([flat[k], inside[k], w[k]]) for k in flat}
    out["volume"] = np.concatenate([np.zeros(20), np.full(15, 5_000.0), w["volume"]])
    return out


def flat(n_bars: int) -> dict[str, np.ndarray]:
    out = {k: np.full(n_bars, 23950.5) for k in ("open", "high", "low", "close")}
    out["volume"] = np.full(n_bars, 1_000.0)
    return out


def long_flat(seed: int) -> dict[str, np.ndarray]:
    a, b = walk(60, seed), walk(60, seed + 1)
    flat_part = {k: np.full(1200, a["close"][-1]) for k in ("open", "high", "low", "close")}
    flat_part["volume"] = np.full(1200, 100.0)
    b = {k: v - (b["close"][0] - a["close"][-1]) if k != "volume" else v for k, v in b.items()}
    return {k: on_tick(np.concatenate([a[k], flat_part[k], b[k]])) if k != "volume"
            else np.concatenate([a[k], flat_part[k], b[k]]) for k in a}


def outputs(s: dict[str, np.ndarray], periods) -> dict[str, list]:
    h, l, c = s["high"], s["low"], s["close"]
    res = {}
    for n in periods:
        res[f"SMA_{n}"] = talib.SMA(c, n)
        res[f"EMA_{n}"] = talib.EMA(c, n)
        res[f"RSI_{n}"] = talib.RSI(c, n)
        res[f"ATR_{n}"] = talib.ATR(h, l, c, n)
        res[f"ADX_{n}"] = talib.ADX(h, l, c, n)
        res[f"PLUS_DI_{n}"] = talib.PLUS_DI(h, l, c, n)
        res[f"MINUS_DI_{n}"] = talib.MINUS_DI(h, l, c, n)
    return {k: to_json(v) for k, v in res.items()}


def to_json(a: np.ndarray) -> list:
    return [None if np.isnan(x) else float(x) for x in a]


def main() -> None:
    series = {"walk": (walk(400, seed=20240611), PERIODS),
              "flat_start": (flat_start(seed=7), PERIODS), "flat": (flat(40), PERIODS),
              "long_flat": (long_flat(seed=99), (2,))}
    doc = {
        "generator": "scripts/gen_talib_reference.py",
        "talib_python": talib.__version__,
        "talib_c": talib.__ta_version__.decode() if isinstance(talib.__ta_version__, bytes)
        else str(talib.__ta_version__),
        "numpy": np.__version__,
        "series": {name: {"periods": list(periods),
                          "inputs": {k: to_json(v) for k, v in s.items()},
                          "outputs": outputs(s, periods)}
                   for name, (s, periods) in series.items()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes) with TA-Lib {doc['talib_python']} "
          f"(C {doc['talib_c']})", file=sys.stderr)


if __name__ == "__main__":
    main()
