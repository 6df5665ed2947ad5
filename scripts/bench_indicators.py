"""Time each indicator on 1,000,000 bars (best of several runs) against TA-Lib when importable.

    python scripts/bench_indicators.py [--bars N] [--repeat R]

TA-Lib is not a project dependency; without it only our timings are printed. The table also
shows the largest deviation from TA-Lib past its lookback, |ours - talib| / max(1, |talib|).
Timings on a shared machine are noisy: runs are interleaved and the best of each is kept.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rustro import indicators as ind  # noqa: E402

try:
    import talib
except ImportError:  # pragma: no cover - optional
    talib = None


def series(n_bars: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    close = np.round(24000 + np.cumsum(rng.normal(0, 8, n_bars)), 2)
    high = close + rng.random(n_bars) * 6
    low = close - rng.random(n_bars) * 6
    volume = rng.integers(50, 5000, n_bars).astype(float)
    session = np.arange(n_bars) // 375
    return high, low, close, volume, session


def cases(h, l, c, v, s):
    """(name, ours, talib or None, compare(ours_result, talib_result) -> max deviation)."""
    first = (lambda r: r[0])
    return [
        ("SMA(20)", lambda: ind.sma(c, 20), talib and (lambda: talib.SMA(c, 20)), None),
        ("EMA(20)", lambda: ind.ema(c, 20), talib and (lambda: talib.EMA(c, 20)), None),
        ("RSI(14)", lambda: ind.rsi(c, 14), talib and (lambda: talib.RSI(c, 14)), None),
        ("ATR(14)", lambda: ind.atr(h, l, c, 14), talib and (lambda: talib.ATR(h, l, c, 14)), None),
        ("ADX+DI(14) vs TA-Lib ADX", lambda: ind.adx(h, l, c, 14),
         talib and (lambda: talib.ADX(h, l, c, 14)), first),
        ("ADX+DI(14) vs ADX+PLUS_DI+MINUS_DI", lambda: ind.adx(h, l, c, 14),
         talib and (lambda: (talib.ADX(h, l, c, 14), talib.PLUS_DI(h, l, c, 14),
                             talib.MINUS_DI(h, l, c, 14))), "all"),
        ("VWAP", lambda: ind.vwap(h, l, c, v, s), None, None),
    ]


def deviation(ours: np.ndarray, ref: np.ndarray) -> float:
    if not np.array_equal(np.isnan(ours), np.isnan(ref)):
        return float("inf")
    m = ~np.isnan(ref)
    return float(np.max(np.abs(ours[m] - ref[m]) / np.maximum(1.0, np.abs(ref[m]))))


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    data = series(args.bars)
    rows = []
    for name, ours, theirs, pick in cases(*data):
        t_ours = t_lib = float("inf")
        for _ in range(args.repeat):      # interleave so both see the same machine load
            t_ours = min(t_ours, best_of(ours, 1))
            if theirs:
                t_lib = min(t_lib, best_of(theirs, 1))
        row = [name, f"{t_ours * 1e3:.2f}"]
        if theirs:
            got, ref = ours(), theirs()
            if pick == "all":
                dev = max(deviation(g, r) for g, r in zip(got, ref))
            else:
                dev = deviation(pick(got) if pick else got, ref)
            row += [f"{t_lib * 1e3:.2f}", f"{t_ours / t_lib:.1f}x", f"{dev:.1e}"]
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    lib = f"TA-Lib {talib.__version__}" if talib else "TA-Lib not installed"
    print(f"{args.bars:,} bars, best of {args.repeat}; {lib}")
    print(tabulate(rows, headers=["indicator", "ours ms", "TA-Lib ms", "ratio", "max dev"]))


if __name__ == "__main__":
    main()
