"""Config field helpers shared by the section modules: range metadata that `config._check_range`
enforces, and the error every bad value raises."""
from __future__ import annotations

from dataclasses import field


class ConfigError(ValueError):
    """A bad configuration value; the message starts with the key path."""


def _rng(lo=None, hi=None, lo_open=False, hi_open=False):
    return {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open}


def rng(lo, hi, **kw):
    """A field that must lie in [lo, hi]."""
    return field(metadata=_rng(lo, hi), **kw)


def pos(hi, **kw):
    """A field that must be > 0 and <= hi."""
    return field(metadata=_rng(0, hi, lo_open=True), **kw)


def nonneg(hi, **kw):
    """A field that must be >= 0 and <= hi."""
    return field(metadata=_rng(0, hi), **kw)


def pct(hi=100, **kw):
    """A percentage in (0, hi]."""
    return field(metadata=_rng(0, hi, lo_open=True), **kw)


def frac(**kw):
    """A fraction in [0, 1)."""
    return field(metadata=_rng(0, 1, hi_open=True), **kw)


MAX_INT64 = 2**63 - 1  # SQLite's largest integer: a seed is journaled
