"""Property-based fuzzing of config loading: whatever a config file holds, loading ends in a Config
or in a one-line ConfigError that starts with a key path (or names the file), never another
exception. A Config that loads is also usable: the day plan builds and the sizing, cost and order
arithmetic stays finite (no OverflowError mid-day)."""
import copy
import dataclasses
import json
import math
import re
import tomllib
import typing
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from rustro.clock import IST
from rustro.config import Config, ConfigError, UnderlyingConfig, load_config, parse_config

CONFIG_TOML = Path(__file__).resolve().parent.parent / "config.toml"
SHIPPED = tomllib.loads(CONFIG_TOML.read_text(encoding="utf-8"))
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _section_cls(name: str):
    return UnderlyingConfig if name == "underlyings" else type(getattr(Config(), name))


SCHEMA = {sec.name: [f.name for f in dataclasses.fields(_section_cls(sec.name))]
          for sec in dataclasses.fields(Config)}
SCHEMA_PATHS = {(s,) for s in SCHEMA} | {(s, k) for s, keys in SCHEMA.items() for k in keys}
FIELD_NAMES = sorted({k for keys in SCHEMA.values() for k in keys})


# --- a tiny TOML writer (inline tables and arrays only, so any nesting is one valid line) -----------

def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_str(k)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (datetime, date, time)):  # datetime before date: it is one
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))  # pragma: no cover


def toml_doc(doc: dict) -> str:
    return "".join(f"{_toml_key(k)} = {toml_value(v)}\n" for k, v in doc.items())


# --- strategies ---------------------------------------------------------------------------------------

EDGE_NUMBERS = [0, -1, 1, 5, 7, 50, 100, 1000, 2**31, 2**63 - 1, 2**63, -2**63, 2**64, 10**18, 10**400,
                -10**400, 0.0, -0.0, 0.5, 1e-300, 5e-324, 1e10, 1e300, 1e308, -1e308,
                float("nan"), float("inf"), float("-inf")]
EDGE_STRINGS = ["", " ", "09:15", "9:15", "10:00", "15:30", "23:59", "00:00", "25:00", "09:60", "1_0:00",
                "2026-12-31", "20261231", "2026-W01-1", "DEBUG", "debug", "BOGUS", "NIFTY", "BANKNIFTY",
                "SENSEX", "auto", "sim", "live", "http://127.0.0.1:1", "ftp://x", "journal.sqlite", "a\x00b",
                "line\nbreak", "\x7f", "ınfo", "..", "/"]

numbers = st.one_of(st.sampled_from(EDGE_NUMBERS), st.integers(-1000, 1000), st.integers(),
                    st.integers(2**31, 2**80), st.integers(-2**80, -2**31), st.floats(),
                    st.floats(-1e6, 1e6), st.floats(1e12, 1e308), st.floats(-1e308, -1e12))
hh_mm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 24), st.integers(0, 60))
scalars = st.one_of(
    numbers, st.booleans(), st.text(max_size=12), st.sampled_from(EDGE_STRINGS), hh_mm,
    st.dates(min_value=date(1, 1, 1)), st.times(),
    st.datetimes(timezones=st.sampled_from([None, timezone.utc, timezone(timedelta(hours=5, minutes=30))])),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES + list(SCHEMA)), st.text(max_size=8))
values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                      st.dictionaries(keys, kids, max_size=3)),
                      max_leaves=8)


@st.composite
def mutated_docs(draw, base=SHIPPED):
    """The shipped config (or an empty one) with a few keys set, added or removed at random."""
    doc = copy.deepcopy(base) if draw(st.booleans()) else {}
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["schema", "schema", "schema", "random", "delete", "section"]))
        if kind == "schema":  # a real key, usually, and a random value
            section = draw(st.sampled_from(list(SCHEMA)))
            key = draw(st.sampled_from(SCHEMA[section]))
            if section == "underlyings":
                tables = doc.get("underlyings")
                if not (isinstance(tables, list) and tables and all(isinstance(t, dict) for t in tables)):
                    tables = doc["underlyings"] = [{}]
                draw(st.sampled_from(tables))[key] = draw(values)
            else:
                table = doc.get(section)
                if not isinstance(table, dict):
                    table = doc[section] = {}
                table[key] = draw(values)
        elif kind == "random":  # an unknown key, at the top or inside a section
            where = draw(st.one_of(st.none(), st.sampled_from(list(SCHEMA))))
            table = doc if where is None or not isinstance(doc.get(where), dict) else doc[where]
            table[draw(keys)] = draw(values)
        elif kind == "section":  # a whole section replaced by anything
            doc[draw(st.sampled_from(list(SCHEMA)))] = draw(values)
        elif doc:
            doc.pop(draw(st.sampled_from(sorted(doc))))
    return doc


# --- the property ---------------------------------------------------------------------------------------

_SEGMENT = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")(?:\[\d+\])*'
_PATH = re.compile(rf"({_SEGMENT}(?:\.{_SEGMENT})*): ")


def _segments(path: str) -> tuple[str, ...]:
    out = []
    for seg in re.findall(r'[A-Za-z0-9_-]+(?:\[\d+\])*|"(?:[^"\\]|\\.)*"(?:\[\d+\])*', path):
        name = re.sub(r"(\[\d+\])+$", "", seg)
        out.append(json.loads(name) if name.startswith('"') else name)
    return tuple(out)


def _doc_paths(doc, prefix=()) -> set[tuple[str, ...]]:
    paths = set()
    if isinstance(doc, dict):
        items = doc.items()
    else:
        items = ((None, v) for v in doc) if isinstance(doc, list) else ()
    for k, v in items:
        p = prefix if k is None else prefix + (k,)
        paths.add(p)
        if isinstance(v, (dict, list)):
            paths |= _doc_paths(v, p)
    return paths


def assert_loads_or_names_a_key(path: Path, doc: dict | None) -> Config | None:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, f"error message must be one line: {msg!r}"
        if msg.startswith(f"config file {path}: "):
            event("refused: the file")
            return None
        m = _PATH.match(msg)
        assert m, f"message does not start with a key path: {msg!r}"
        segs = _segments(m.group(1))
        known = SCHEMA_PATHS | (_doc_paths(doc) if doc is not None else set())
        assert segs in known, f"message names {segs}, neither a config key nor one in the file: {msg!r}"
        event("refused: a key")
        return None
    # anything else (OverflowError, UnicodeDecodeError, IndexError, ...) fails the test by escaping
    assert isinstance(cfg, Config)
    event("loaded")
    return cfg


def assert_usable(cfg: Config) -> None:
    """Cheap downstream use of an accepted config: nothing overflows or indexes out of range."""
    from rustro.costs import trade_costs
    from rustro.market.instruments import atm_strike
    from rustro.orders import ladder_schedule, last_resort_price
    from rustro.risk import size_position
    from rustro.scheduler import day_plan, hourly_closes

    day = date(2026, 11, 20)
    assert hourly_closes(cfg.session)
    midnight = datetime.combine(day, time(0), IST)
    for entry in day_plan(day, cfg.session):
        fire = entry.trigger.get_next_fire_time(None, midnight)
        assert fire is not None and fire.date() == day, entry.job
    s = cfg.session
    for sec in (s.monitor_interval_sec, s.bar_ready_grace_sec, s.misfire_grace_sec, cfg.data.stale_exit_sec,
                cfg.data.data_gap_threshold_sec, cfg.exits.shutdown_flatten_sec, cfg.paper.book_lag_sec):
        midnight + timedelta(seconds=sec)
    midnight + timedelta(minutes=cfg.risk.reentry_cooldown_min, milliseconds=cfg.paper.latency_ms)
    midnight - timedelta(days=cfg.data.daily_history_days)
    if cfg.sim.speed:
        assert math.isfinite(s.monitor_interval_sec / cfg.sim.speed)
    for u in cfg.underlyings:
        d = size_position(cfg.bot.capital, 100.0, 75, 15.0, 3, u.freeze_qty, cfg)
        assert 0 <= d.lots <= cfg.sizing.max_lots_per_trade
        atm_strike(24000.0, u.strike_step, "CE", cfg.options.strike_offset_steps)
    assert math.isfinite(float(trade_costs(100.0, 110.0, 75, cfg).total))
    for side in ("BUY", "SELL"):
        steps = ladder_schedule(midnight, 100.0, side, 0.05, cfg.orders)
        assert len(steps) == len(cfg.orders.ladder_pct) and all(math.isfinite(p) for _, p in steps)
    assert last_resort_price(100.0, 0.05, cfg.orders) >= 0.05


def _write(tmp_path_factory, data: bytes) -> Path:
    p = tmp_path_factory.mktemp("fuzz") / "config.toml"
    p.write_bytes(data)
    return p


@FUZZ
@given(doc=mutated_docs())
def test_random_documents_load_or_name_a_key(tmp_path_factory, doc):
    text = toml_doc(doc)
    p = _write(tmp_path_factory, text.encode("utf-8"))
    cfg = assert_loads_or_names_a_key(p, doc)
    if cfg is not None:
        assert_usable(cfg)


NUMERIC = [(s, k) for s, keys in SCHEMA.items() for k in keys
           if typing.get_type_hints(_section_cls(s))[k] in (int, float)]


def in_range(section: str, key: str):
    """Values inside the key's own range, so that many drawn configs load and get used."""
    meta = {f.name: f.metadata for f in dataclasses.fields(_section_cls(section))}[key]
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is None or hi is None:  # test_config.py insists every number has a range
        return numbers
    if typing.get_type_hints(_section_cls(section))[key] is int:
        return st.integers(lo + meta["lo_open"], hi - meta["hi_open"])
    return st.floats(lo, hi, exclude_min=meta["lo_open"], exclude_max=meta["hi_open"])


@FUZZ
@given(data=st.data())
def test_numbers_anywhere_load_or_name_their_key(tmp_path_factory, data):
    """Many numeric keys at once set to any number: accepted configs stay usable."""
    doc = copy.deepcopy(SHIPPED)
    chosen = data.draw(st.lists(st.sampled_from(NUMERIC), min_size=1, max_size=4, unique=True))
    for section, key in chosen:
        table = doc[section][0] if section == "underlyings" else doc[section]
        wild = data.draw(st.integers(0, 3)) == 0  # one value in four from anywhere, the rest in range
        table[key] = data.draw(numbers if wild else in_range(section, key))
    p = _write(tmp_path_factory, toml_doc(doc).encode("utf-8"))
    cfg = assert_loads_or_names_a_key(p, doc)
    if cfg is not None:
        assert_usable(cfg)


SESSION_KEYS = ("pre_open", "market_open", "entry_start", "entry_end", "eod_exit", "market_close")


@st.composite
def sessions(draw):
    """Six session times, mostly in order with gaps of 1 to 150 minutes (so short sessions, ones
    under an hour and ones running into midnight are common), sometimes one time set at random."""
    t = draw(st.integers(0, 1439))
    minutes = []
    for _ in SESSION_KEYS:
        minutes.append(t)
        t += draw(st.integers(1, 150))
    times = {k: f"{m // 60:02d}:{m % 60:02d}" if m < 1440 else "24:00" for k, m in zip(SESSION_KEYS, minutes)}
    if draw(st.integers(0, 3)) == 0:
        times[draw(st.sampled_from(SESSION_KEYS))] = draw(st.one_of(hh_mm, st.times()))
    return times


@FUZZ
@given(times=sessions(), grace=st.one_of(st.none(), st.integers(0, 400)))
def test_random_sessions_are_refused_or_plannable(times, grace):
    raw = copy.deepcopy(SHIPPED)
    raw["session"].update(times)
    if grace is not None:
        raw["session"]["bar_ready_grace_sec"] = grace
    try:
        cfg = parse_config(raw)
    except ConfigError as exc:
        assert str(exc).startswith("session."), str(exc)
        event("refused")
        return
    event("loaded")
    assert_usable(cfg)


@FUZZ
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"[bot]\n", b'[bot]\nmode = "']))
def test_random_bytes_load_or_name_the_file(tmp_path_factory, data, prefix):
    p = _write(tmp_path_factory, prefix + data)
    try:
        doc = tomllib.loads((prefix + data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        doc = None  # then only "config file ...: not valid ..." is a right answer
    assert_loads_or_names_a_key(p, doc)


@pytest.mark.parametrize("doc", [{}, SHIPPED])
def test_writer_round_trips(doc):
    assert tomllib.loads(toml_doc(doc)) == doc
