"""config.py and the shipped config.toml: defaults agree, every key documented, every bad value named."""
import copy
import dataclasses
import os
import re
import subprocess
import sys
import tomllib
import typing
from datetime import date, datetime, time
from pathlib import Path

import pytest

from rustro.clock import IST
from rustro.config import (
    CalendarConfig, Config, ConfigError, UnderlyingConfig, load_config, parse_config)
from rustro.credentials import SECRET_VARS, Secrets

REPO = Path(__file__).resolve().parent.parent
CONFIG_TOML = REPO / "config.toml"
STRATEGY_MD = REPO / "docs" / "strategy.md"  # the strategy, in the repository


def shipped_raw() -> dict:
    return tomllib.loads(CONFIG_TOML.read_text(encoding="utf-8"))


def with_value(section: str, key: str, value) -> dict:
    raw = shipped_raw()
    raw[section][key] = value
    return raw


def config_error(raw: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(raw)
    msg = str(exc.value)
    assert "\n" not in msg, f"error message must be one line: {msg!r}"
    return msg


# --- config.toml text: sections, keys, comments -------------------------------------------------

def _strip_comment(line: str) -> tuple[str, str | None]:
    """(code, comment) of one TOML line; a '#' inside a quoted string is not a comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i], line[i + 1:]
    return line, None


def toml_lines() -> list[tuple[str, str, str | None]]:
    """(section, key, comment) for every `key = value` line of config.toml."""
    out, section = [], ""
    for line in CONFIG_TOML.read_text(encoding="utf-8").splitlines():
        code, comment = _strip_comment(line)
        code = code.strip()
        if not code:
            continue
        m = re.fullmatch(r"\[\[?\s*([A-Za-z_]+)\s*\]\]?", code)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", code)
        assert m, f"config.toml line not understood: {line!r}"
        out.append((section, m.group(1), comment))
    return out


def schema_keys() -> set[tuple[str, str]]:
    keys = set()
    for sec in dataclasses.fields(Config):
        cls = UnderlyingConfig if sec.name == "underlyings" else type(getattr(Config(), sec.name))
        keys |= {(sec.name, f.name) for f in dataclasses.fields(cls)}
    return keys


def all_field_names(cls=Config) -> set[str]:
    names = set()
    for f in dataclasses.fields(cls):
        names.add(f.name)
        default = getattr(cls(), f.name)
        if dataclasses.is_dataclass(default):
            names |= all_field_names(type(default))
        elif isinstance(default, tuple) and default and dataclasses.is_dataclass(default[0]):
            names |= all_field_names(type(default[0]))
    return names


def test_shipped_config_parses_and_equals_code_defaults():
    assert load_config(CONFIG_TOML) == Config()


def test_empty_config_is_all_defaults():
    assert parse_config({}) == Config()


def test_every_schema_key_is_in_config_toml_and_nothing_else():
    found = {(s, k) for s, k, _ in toml_lines()}
    assert found == schema_keys()


def test_every_section_header_is_present():
    text = CONFIG_TOML.read_text(encoding="utf-8")
    for sec in dataclasses.fields(Config):
        header = "[[underlyings]]" if sec.name == "underlyings" else f"[{sec.name}]"
        assert re.search(rf"^{re.escape(header)}\s*(#.*)?$", text, re.M), header


def test_every_key_line_has_a_comment():
    undocumented = [f"{s}.{k}" for s, k, c in toml_lines() if not (c and c.strip())]
    assert undocumented == []


def test_comment_scanner_ignores_hash_inside_strings():
    assert _strip_comment('url = "http://x/#frag"') == ('url = "http://x/#frag"', None)
    assert _strip_comment('a = 1  # note')[1] == " note"


def spec_keys() -> set[str]:
    """Backticked names docs/strategy.md gives a value for: `key` 14, `key` (25), `key` ([..])."""
    text = STRATEGY_MD.read_text(encoding="utf-8")
    keys = set(re.findall(r"`([a-z][a-z0-9_]*)`\s*\(?\s*(?:[\d\[]|true|false)", text))
    keys |= {"freeze_qty", "strike_step", "spot_name"}  # per-underlying keys named without a value
    return keys


def test_every_spec_key_exists_in_config():
    keys = spec_keys()
    # the extraction really finds the spec's keys (guards against a regex that matches nothing)
    assert {"daily_adx_period", "hourly_adx_threshold", "rsi_oversold", "ladder_backoff_sec",
            "vix_resume", "stop_loss_pct", "capital", "min_dte", "bar_ready_grace_sec"} <= keys
    assert len(keys) >= 35
    missing = sorted(keys - all_field_names())
    assert missing == []


def test_config_toml_holds_no_secret_assignment():
    text = CONFIG_TOML.read_text(encoding="utf-8")
    for section, key, _ in toml_lines():
        assert not key.upper().startswith("SMARTAPI_"), key
    assert not re.search(r"^\s*[\"']?SMARTAPI_\w*[\"']?\s*=", text, re.M | re.I)
    # and a secret slipped into a section is refused, not silently accepted
    assert config_error(with_value("broker", "api_key", "x")).startswith("broker.api_key: unknown key")


# --- accepted values ------------------------------------------------------------------------------

def test_partial_section_keeps_other_defaults_and_ints_become_floats():
    cfg = parse_config({"risk": {"daily_loss_limit_pct": 3}, "session": {"entry_start": "9:45"}})
    assert cfg.risk.daily_loss_limit_pct == 3.0 and isinstance(cfg.risk.daily_loss_limit_pct, float)
    assert cfg.risk.max_positions == Config().risk.max_positions
    assert cfg.session.entry_start == time(9, 45)
    assert cfg.session.entry_end == time(15, 0)


def test_toml_native_times_and_dates_are_accepted():
    cfg = parse_config(tomllib.loads(
        "[session]\nentry_start = 10:30:00\n"
        "[calendar]\nextra_holidays = [2026-12-31, \"2026-12-30\"]\nextra_trading_days = [\"2026-11-08\"]\n"))
    assert cfg.session.entry_start == time(10, 30)
    assert cfg.calendar == CalendarConfig((date(2026, 12, 31), date(2026, 12, 30)), (date(2026, 11, 8),))


def test_several_underlyings_and_lookup():
    cfg = parse_config({"underlyings": [
        {"name": "NIFTY"},
        {"name": "BANKNIFTY", "spot_name": "Nifty Bank", "strike_step": 100, "freeze_qty": 900}]})
    assert [u.name for u in cfg.underlyings] == ["NIFTY", "BANKNIFTY"]
    assert cfg.underlying("BANKNIFTY").strike_step == 100
    assert cfg.underlying("NIFTY") == UnderlyingConfig()
    with pytest.raises(KeyError):
        cfg.underlying("FINNIFTY")


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().risk.max_positions = 9  # type: ignore[misc]


def test_ladders_parse_to_tuples():
    cfg = parse_config({"orders": {"ladder_pct": [0.5, 1], "ladder_backoff_sec": [0, 3]}})
    assert cfg.orders.ladder_pct == (0.5, 1.0)
    assert cfg.orders.ladder_backoff_sec == (0.0, 3.0)


# --- rejected values: every message starts with the key path --------------------------------------

BAD_VALUES = [
    # wrong type
    ("signal", "daily_adx_period", "14", "signal.daily_adx_period: must be a whole number, got '14'"),
    ("signal", "daily_adx_period", 14.0, "signal.daily_adx_period: must be a whole number, got 14.0"),
    ("risk", "max_positions", True, "risk.max_positions: must be a whole number, got True"),
    ("risk", "daily_loss_limit_pct", True, "risk.daily_loss_limit_pct: must be a number, got True"),
    ("bot", "capital", "1e6", "bot.capital: must be a number, got '1e6'"),
    ("exits", "flatten_on_shutdown", "yes", "exits.flatten_on_shutdown: must be true or false"),
    ("filters", "use_vwap_filter", 1, "filters.use_vwap_filter: must be true or false"),
    ("bot", "journal", 5, "bot.journal: must be a string, got 5"),
    ("orders", "ladder_pct", 0.5, "orders.ladder_pct: must be a list"),
    ("orders", "ladder_pct", [0.25, "x", 0.75, 1.0], "orders.ladder_pct[1]: must be a number"),
    ("calendar", "extra_holidays", ["2026-13-01"], "calendar.extra_holidays[0]: must be a date YYYY-MM-DD"),
    ("calendar", "extra_holidays", "2026-12-31", "calendar.extra_holidays: must be a list"),
    # periods: negative and zero
    ("filters", "rsi_period", -14, "filters.rsi_period: must be > 0, got -14"),
    ("filters", "ema_period", 0, "filters.ema_period: must be > 0, got 0"),
    ("signal", "hourly_adx_period", 0, "signal.hourly_adx_period: must be > 0, got 0"),
    ("session", "monitor_interval_sec", 0, "session.monitor_interval_sec: must be > 0, got 0"),
    ("session", "bar_ready_grace_sec", -1, "session.bar_ready_grace_sec: must be >= 0, got -1"),
    ("options", "min_dte", -1, "options.min_dte: must be >= 0, got -1"),
    # percentages and fractions out of range
    ("risk", "daily_loss_limit_pct", -2.0, "risk.daily_loss_limit_pct: must be > 0, got -2.0"),
    ("risk", "daily_loss_limit_pct", 0, "risk.daily_loss_limit_pct: must be > 0, got 0.0"),
    ("sizing", "base_position_size_pct", 150.0, "sizing.base_position_size_pct: must be <= 100, got 150.0"),
    ("filters", "max_spread_pct", 0.0, "filters.max_spread_pct: must be > 0, got 0.0"),
    ("filters", "rsi_overbought", 101.0, "filters.rsi_overbought: must be <= 100, got 101.0"),
    ("signal", "daily_adx_threshold", -1.0, "signal.daily_adx_threshold: must be >= 0, got -1.0"),
    ("exits", "stop_loss_pct", 1.0, "exits.stop_loss_pct: must be < 1, got 1.0"),
    ("exits", "trail_gap_pct", -0.01, "exits.trail_gap_pct: must be >= 0, got -0.01"),
    ("paper", "partial_fill_prob", 1.5, "paper.partial_fill_prob: must be < 1, got 1.5"),
    ("orders", "order_tag_len", 21, "orders.order_tag_len: must be <= 20, got 21"),
    ("orders", "order_tag_len", 7, "orders.order_tag_len: must be >= 8, got 7"),
    ("filters", "funds_buffer", 0.9, "filters.funds_buffer: must be >= 1, got 0.9"),
    ("bot", "capital", 0, "bot.capital: must be > 0, got 0.0"),
    # not a number at all
    ("risk", "daily_loss_limit_pct", float("nan"), "risk.daily_loss_limit_pct: must be a finite number"),
    ("exits", "stop_loss_pct", float("nan"), "exits.stop_loss_pct: must be a finite number"),
    ("bot", "capital", float("inf"), "bot.capital: must be a finite number"),
    # unknown keys
    ("signal", "daily_adx_perod", 14,
     "signal.daily_adx_perod: unknown key; did you mean 'daily_adx_period'?"),
    ("risk", "max_postions", 3, "risk.max_postions: unknown key; did you mean 'max_positions'?"),
    ("risk", "zzz", 1, "risk.zzz: unknown key; valid keys: max_positions, "),
    ("bot", "mode", "demo", "bot.mode: must be one of auto, sim, paper, live, got 'demo'"),
    # no upper bound used to mean OverflowErrors and job errors mid-day
    ("bot", "capital", 1e308, "bot.capital: must be <= 1e+10, got 1e+308"),
    ("session", "monitor_interval_sec", 2**63 - 1,
     "session.monitor_interval_sec: must be <= 300, got 9223372036854775807"),
    ("session", "bar_ready_grace_sec", 301, "session.bar_ready_grace_sec: must be <= 300, got 301"),
    ("sim", "speed", 1e300, "sim.speed: must be <= 100000, got 1e+300"),
    ("sim", "speed", 0.5, "sim.speed: must be 0 (as fast as possible) or at least 1, got 0.5"),
    ("sim", "seed", -1, "sim.seed: must be >= 0, got -1"),
    ("sim", "seed", 2**63, "sim.seed: must be <= 9223372036854775807, got 9223372036854775808"),
    ("costs", "gst_pct", 1e308, "costs.gst_pct: must be <= 100, got 1e+308"),
    ("sizing", "vix_low_mult", 1e308, "sizing.vix_low_mult: must be <= 5, got 1e+308"),
    ("options", "strike_offset_steps", 10**9, "options.strike_offset_steps: must be <= 10, got 1000000000"),
    ("data", "indicator_history_bars", 10**12,
     "data.indicator_history_bars: must be <= 1000, got 1000000000000"),
    ("data", "daily_history_days", 2**62,
     "data.daily_history_days: must be <= 2000, got 4611686018427387904"),
    ("paper", "latency_ms", 2**40, "paper.latency_ms: must be <= 60000, got 1099511627776"),
    ("risk", "reentry_cooldown_min", 10**7, "risk.reentry_cooldown_min: must be <= 1440, got 10000000"),
    ("orders", "fill_timeout_sec", 1e18, "orders.fill_timeout_sec: must be <= 300, got 1e+18"),
    ("bot", "capital", 10**400, "bot.capital: must be a finite number"),  # an int beyond float range
    ("orders", "ladder_pct", [], "orders.ladder_pct: must have 1 to 10 steps, got 0"),
    ("orders", "ladder_pct", [0.25, 0.5, 0.75, 100.0], "orders.ladder_pct: each step must be <= 50"),
    ("orders", "ladder_backoff_sec", [0.0, 2.0, 4.0, 1e9],
     "orders.ladder_backoff_sec: each wait must be <= 300"),
    ("broker", "base_url", "ftp://x", "broker.base_url: must start with http:// or https://"),
    ("broker", "token_cache", "", "broker.token_cache: must name a file, got ''"),
    ("bot", "journal", "", "bot.journal: must name a file, got ''"),
    ("bot", "journal", "a\x00b", "bot.journal: must not contain control characters"),
    ("session", "entry_start", "1_0:00", "session.entry_start: must be a time HH:MM"),
    ("calendar", "extra_holidays", [20261231], "calendar.extra_holidays[0]: must be a date YYYY-MM-DD"),
]


@pytest.mark.parametrize("section,key,value,expected", BAD_VALUES,
                         ids=[f"{s}.{k}={v!r}" for s, k, v, _ in BAD_VALUES])
def test_bad_value_names_its_key(section, key, value, expected):
    msg = config_error(with_value(section, key, value))
    assert msg.startswith(expected), msg
    assert isinstance(ConfigError(msg), ValueError)


def test_unknown_section_suggests_nearest():
    raw = shipped_raw()
    raw["riks"] = {"max_positions": 3}
    msg = config_error(raw)
    assert msg.startswith("riks: unknown ") and "did you mean 'risk'?" in msg


def test_unknown_section_without_near_name_lists_sections():
    raw = shipped_raw()
    raw["telegram"] = {}
    msg = config_error(raw)
    assert msg.startswith("telegram: unknown ") and "bot, session, calendar" in msg


def test_section_that_is_not_a_table():
    raw = shipped_raw()
    raw["risk"] = 5
    assert config_error(raw).startswith("risk: must be a table, got 5")


SESSION_ORDER = ["pre_open", "market_open", "entry_start", "entry_end", "eod_exit", "market_close"]


@pytest.mark.parametrize("earlier,later", list(zip(SESSION_ORDER, SESSION_ORDER[1:])))
@pytest.mark.parametrize("how", ["equal", "before"])
def test_session_times_must_increase(earlier, later, how):
    raw = shipped_raw()
    t = time.fromisoformat(raw["session"][earlier])
    bad = t if how == "equal" else time(t.hour, t.minute - 1) if t.minute else time(t.hour - 1, 59)
    raw["session"][later] = f"{bad:%H:%M}"
    msg = config_error(raw)
    assert msg == (f"session.{later}: must be later than session.{earlier} ({t:%H:%M}), "
                   f"got {bad:%H:%M}")


@pytest.mark.parametrize("text", ["9.15", "25:00", "09:60", "0915", "09:15:00", "", "ab:cd", "nine"])
def test_bad_hh_mm(text):
    msg = config_error(with_value("session", "entry_start", text))
    assert msg == f"session.entry_start: must be a time HH:MM, got {text!r}"


def test_time_given_as_number():
    assert config_error(with_value("session", "eod_exit", 1520)).startswith(
        "session.eod_exit: must be a time HH:MM, got 1520")


@pytest.mark.parametrize("oversold", [70.0, 75.0])
def test_rsi_oversold_must_be_below_overbought(oversold):
    msg = config_error(with_value("filters", "rsi_oversold", oversold))
    assert msg == f"filters.rsi_oversold: must be below filters.rsi_overbought (70.0), got {oversold}"


@pytest.mark.parametrize("resume", [30.0, 35.0])
def test_vix_resume_must_be_below_spike(resume):
    msg = config_error(with_value("risk", "vix_resume", resume))
    assert msg == f"risk.vix_resume: must be below risk.vix_spike (30.0), got {resume}"


def test_sizing_vix_points_must_increase():
    assert config_error(with_value("sizing", "vix_mid", 35.0)).startswith("sizing.vix_mid: ")
    assert config_error(with_value("sizing", "dte_mid", 5)).startswith(
        "sizing.dte_mid: must be below sizing.dte_full (5), got 5")


@pytest.mark.parametrize("backoff", [[0.0, 2.0, 4.0], [0.0, 2.0, 4.0, 8.0, 16.0]])
def test_ladder_lengths_must_agree(backoff):
    msg = config_error(with_value("orders", "ladder_backoff_sec", backoff))
    assert msg == (f"orders.ladder_backoff_sec: must have one entry per orders.ladder_pct step (4), "
                   f"got {len(backoff)}")


def test_ladder_must_increase_and_backoff_be_nonnegative():
    assert config_error(with_value("orders", "ladder_pct", [0.5, 0.25, 0.75, 1.0])).startswith(
        "orders.ladder_pct: must be positive and increasing")
    assert config_error(with_value("orders", "ladder_pct", [0.0, 0.25, 0.75, 1.0])).startswith(
        "orders.ladder_pct: must be positive and increasing")
    assert config_error(with_value("orders", "ladder_backoff_sec", [0.0, -2.0, 4.0, 8.0])).startswith(
        "orders.ladder_backoff_sec: must be >= 0")


def test_underlying_name_not_allowed():
    raw = shipped_raw()
    raw["underlyings"][0]["name"] = "SENSEX"
    assert config_error(raw) == ("underlyings[0].name: must be one of NIFTY, BANKNIFTY, FINNIFTY, "
                                 "got 'SENSEX'")


def test_underlying_listed_twice():
    raw = shipped_raw()
    raw["underlyings"].append(copy.deepcopy(raw["underlyings"][0]))
    assert config_error(raw) == "underlyings[1].name: NIFTY is listed twice"


def test_underlying_bad_field_and_unknown_key_name_the_index():
    raw = shipped_raw()
    raw["underlyings"].append({"name": "BANKNIFTY", "strike_step": 0})
    assert config_error(raw) == "underlyings[1].strike_step: must be > 0, got 0"
    raw = shipped_raw()
    raw["underlyings"][0]["strike"] = 50
    assert config_error(raw) == "underlyings[0].strike: unknown key; did you mean 'strike_step'?"


@pytest.mark.parametrize("value", [[], {"name": "NIFTY"}, "NIFTY"])
def test_underlyings_must_be_a_non_empty_list(value):
    raw = shipped_raw()
    raw["underlyings"] = value
    assert config_error(raw).startswith("underlyings: must be a non-empty list")


def test_datetime_is_not_a_date():
    raw = tomllib.loads("[calendar]\nextra_holidays = [2026-12-31T10:00:00]\n")
    assert config_error(raw).startswith("calendar.extra_holidays[0]: must be a date YYYY-MM-DD")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.toml")
    assert str(exc.value).startswith(f"config file {tmp_path / 'nope.toml'}: not found")


def test_invalid_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[risk]\nmax_positions = = 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert msg.startswith(f"config file {p}: not valid TOML") and "line 2" in msg and "\n" not in msg


def test_load_config_validates(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[risk]\ndaily_loss_limit_pct = -2.0\n")
    with pytest.raises(ConfigError, match=r"^risk\.daily_loss_limit_pct: must be > 0, got -2\.0$"):
        load_config(p)


# --- secrets ----------------------------------------------------------------------------------------

FAKE = {"SMARTAPI_API_KEY": "fakeKey9x7", "SMARTAPI_CLIENT_CODE": "Z99999",
        "SMARTAPI_MPIN": "4821", "SMARTAPI_TOTP_SECRET": "FAKETOTPSECRETBASE32AAAA"}


def test_secrets_from_environ_dict_only(monkeypatch):
    monkeypatch.setenv("SMARTAPI_MPIN", "fromOsEnviron")
    s = Secrets.from_env(env_file=None, environ=dict(FAKE))
    assert (s.api_key, s.client_code, s.mpin, s.totp_secret) == tuple(FAKE[k] for k in SECRET_VARS)
    assert s.complete and s.missing() == []
    assert Secrets.from_env(env_file=None, environ={}).mpin == ""  # the process env is not read


def test_secrets_from_dotenv_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in FAKE.items()))
    s = Secrets.from_env(env_file=env_file, environ={})
    assert s.api_key == FAKE["SMARTAPI_API_KEY"] and s.totp_secret == FAKE["SMARTAPI_TOTP_SECRET"]
    assert s.complete


def test_environment_wins_over_dotenv(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SMARTAPI_API_KEY=fromDotenvFile\nSMARTAPI_MPIN=1111\n")
    s = Secrets.from_env(env_file=env_file, environ={"SMARTAPI_API_KEY": "fromEnviron"})
    assert s.api_key == "fromEnviron"
    assert s.mpin == "1111"


def test_missing_dotenv_file_is_fine(tmp_path):
    s = Secrets.from_env(env_file=tmp_path / "absent.env", environ={"SMARTAPI_MPIN": " 4821 "})
    assert s.mpin == "4821"  # surrounding whitespace stripped


def test_missing_names_the_variables():
    s = Secrets.from_env(env_file=None, environ={"SMARTAPI_API_KEY": "k", "SMARTAPI_MPIN": "1"})
    assert s.missing() == ["SMARTAPI_CLIENT_CODE", "SMARTAPI_TOTP_SECRET"]
    assert not s.complete
    assert Secrets().missing() == list(SECRET_VARS)


def test_repr_and_str_show_no_secret():
    s = Secrets.from_env(env_file=None, environ=dict(FAKE))
    for text in (repr(s), str(s), f"{s}", f"{s!r}"):
        for v in FAKE.values():
            assert v not in text


def test_redact_replaces_every_secret():
    s = Secrets.from_env(env_file=None, environ=dict(FAKE))
    text = "login " + " / ".join(FAKE.values()) + " failed"
    out = s.redact(text)
    assert all(v not in out for v in FAKE.values())
    assert out.startswith("login ***") and out.endswith("*** failed")
    assert Secrets().redact("nothing to hide") == "nothing to hide"


# --- CLI: a bad config stops before anything is written ---------------------------------------------

def _bad_config(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A config file broken one way, and the key path its error must name."""
    text = CONFIG_TOML.read_text(encoding="utf-8")

    def sub(pattern, repl):
        new, n = re.subn(pattern, repl, text, count=1, flags=re.M)
        assert n == 1, pattern
        return new

    if case == "missing":
        return tmp_path / "does_not_exist.toml", "config file"
    if case == "directory":
        (tmp_path / "dir.toml").mkdir()
        return tmp_path / "dir.toml", f"config file {tmp_path / 'dir.toml'}"
    if case == "not_utf8":
        p = tmp_path / "latin1.toml"
        p.write_bytes(text.replace('spot_name = "Nifty 50"', 'spot_name = "Nifty\xa050"').encode("latin-1"))
        return p, f"config file {p}: not valid UTF-8"
    edits = {
        "wrong_type": (r'^daily_adx_period = 14\b', 'daily_adx_period = "14"', "signal.daily_adx_period"),
        "negative_period": (r"^rsi_period = 14\b", "rsi_period = -14", "filters.rsi_period"),
        "unknown_key": (r"^max_positions = 3\b", "max_postions = 3", "risk.max_postions"),
        "unordered_times": (r'^entry_end = "15:00"', 'entry_end = "09:30"', "session.entry_end"),
        "bad_log_level": (r'^log_level = "INFO"', 'log_level = "BOGUS"', "bot.log_level"),
        "no_hourly_bar": (r'^entry_end = "15:00"', 'entry_end = "10:10"', "session.entry_end"),
        "huge_capital": (r"^capital = 1000000.0", "capital = 1e308", "bot.capital"),
        "huge_interval": (r"^monitor_interval_sec = 5\b", "monitor_interval_sec = 9223372036854775807",
                          "session.monitor_interval_sec"),
        "odd_strike_step": (r"^strike_step = 50\b", "strike_step = 7", "underlyings[0].strike_step"),
        "empty_journal": (r'^journal = "journal.sqlite"', 'journal = ""', "bot.journal"),
    }
    pattern, repl, key = edits[case]
    p = tmp_path / f"{case}.toml"
    p.write_text(sub(pattern, repl), encoding="utf-8")
    return p, key


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "rustro.py", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("SMARTAPI_")})


CASES = ["wrong_type", "negative_period", "unknown_key", "unordered_times", "missing", "directory",
         "not_utf8", "bad_log_level", "no_hourly_bar", "huge_capital", "huge_interval", "odd_strike_step",
         "empty_journal"]


@pytest.mark.parametrize("case", CASES)
def test_check_config_rejects_bad_file(tmp_path, case):
    path, key = _bad_config(tmp_path, case)
    r = _cli("check-config", "--config", path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert key in lines[0] and "Traceback" not in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("case", CASES)
def test_run_rejects_bad_file_before_touching_the_journal(tmp_path, case):
    path, key = _bad_config(tmp_path, case)
    jdir = tmp_path / "journal_dir"
    jdir.mkdir()
    r = _cli("run", "--sim", "--config", path, "--journal", jdir / "journal.sqlite")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], r.stderr
    assert list(jdir.iterdir()) == []


def test_check_config_accepts_shipped_file():
    r = _cli("check-config", "--config", CONFIG_TOML)
    assert r.returncode == 0, r.stderr
    assert f"{CONFIG_TOML}: OK" in r.stdout


# --- bot.log_level ----------------------------------------------------------------------------------

@pytest.mark.parametrize("level", ["BOGUS", "", "TRACE", "CRITICAL", "ınfo", "INFO "])
def test_log_level_must_be_a_known_level(level):
    msg = config_error(with_value("bot", "log_level", level))
    assert msg == f"bot.log_level: must be one of DEBUG, INFO, WARNING, ERROR (any case), got {level!r}"


@pytest.mark.parametrize("level,stored", [("debug", "DEBUG"), ("Warning", "WARNING"), ("ERROR", "ERROR")])
def test_log_level_is_case_insensitive_and_stored_upper_case(level, stored):
    assert parse_config(with_value("bot", "log_level", level)).bot.log_level == stored


def test_check_config_accepts_lower_case_log_level(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(CONFIG_TOML.read_text().replace('log_level = "INFO"', 'log_level = "debug"'))
    r = _cli("check-config", "--config", p)
    assert r.returncode == 0, r.stderr
    assert '"log_level": "DEBUG"' in r.stdout


# --- the config file itself: unreadable, not UTF-8, a directory -------------------------------------

def test_config_file_not_utf8_names_file_and_line(tmp_path):
    p = tmp_path / "c.toml"
    p.write_bytes(b'[bot]\nmode = "sim\xff"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == f"config file {p}: not valid UTF-8: byte 0xff on line 2"


def test_config_file_is_a_directory(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path)
    assert str(exc.value).startswith(f"config file {tmp_path}: is a directory")


def test_config_file_unreadable(tmp_path, monkeypatch):
    p = tmp_path / "c.toml"
    p.write_text("[bot]\n")
    p.chmod(0)
    if os.geteuid() != 0:  # root reads a mode-000 file anyway: then simulate the refusal
        with pytest.raises(ConfigError, match=rf"^config file {re.escape(str(p))}: cannot be read: "):
            load_config(p)

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == f"config file {p}: cannot be read: Permission denied"


@pytest.mark.parametrize("text", ["x = " + "9" * 5000, "x = " + "[" * 5000 + "]" * 5000])
def test_toml_the_parser_refuses_oddly_is_still_a_config_error(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value).startswith(f"config file {p}: not valid TOML") and "\n" not in str(exc.value)


# --- session shape ------------------------------------------------------------------------------------

def session_raw(**times) -> dict:
    raw = shipped_raw()
    raw["session"].update(times)
    return raw


def test_session_shorter_than_an_hour_is_refused():
    msg = config_error(session_raw(market_open="09:15", entry_start="09:20", entry_end="09:40",
                                   eod_exit="09:50", market_close="10:00"))
    assert msg == ("session.entry_end: must be later than the first hourly bar's close (session.market_open "
                   "09:15 + 1 h + session.bar_ready_grace_sec 5 s), got 09:40")


@pytest.mark.parametrize("entry_end,ok", [("10:15", False), ("10:16", True)])
def test_first_hourly_bar_must_close_before_entry_end(entry_end, ok):
    raw = session_raw(entry_end=entry_end, eod_exit="10:30", market_close="10:45")
    if ok:
        assert parse_config(raw).session.entry_end == time.fromisoformat(entry_end)
    else:
        assert config_error(raw).startswith("session.entry_end: must be later than the first hourly bar")


def test_market_close_plus_grace_before_midnight():
    raw = session_raw(entry_end="22:00", eod_exit="23:00", market_close="23:59")
    raw["session"]["bar_ready_grace_sec"] = 60
    assert config_error(raw) == ("session.market_close: plus session.bar_ready_grace_sec (60 s) must fall "
                                 "before midnight, got 23:59")
    raw["session"]["bar_ready_grace_sec"] = 59
    assert parse_config(raw).session.market_close == time(23, 59)


@pytest.mark.parametrize("times", [
    dict(market_open="09:15", entry_start="09:30", entry_end="10:16", eod_exit="10:20", market_close="10:30"),
    dict(pre_open="00:00", market_open="00:01", entry_start="00:02", entry_end="01:10", eod_exit="23:00",
         market_close="23:50"),
    {},
])
def test_accepted_sessions_build_a_day_plan(times):
    from rustro.scheduler import day_plan, hourly_closes
    cfg = parse_config(session_raw(**times))
    assert hourly_closes(cfg.session)
    day = date(2026, 11, 20)
    for entry in day_plan(day, cfg.session):
        fire = entry.trigger.get_next_fire_time(None, datetime.combine(day, time(0), IST))
        assert fire is not None and fire.date() == day, entry.job


# --- every number has a range -------------------------------------------------------------------------

def numeric_fields():
    """(section, field, dataclass field) of every int/float key, underlyings included."""
    out = []
    for sec in dataclasses.fields(Config):
        cls = UnderlyingConfig if sec.name == "underlyings" else type(getattr(Config(), sec.name))
        hints = typing.get_type_hints(cls)
        out += [(sec.name, f.name, f) for f in dataclasses.fields(cls) if hints[f.name] in (int, float)]
    return out


def test_every_numeric_key_has_a_documented_range():
    comments = {(s, k): c for s, k, c in toml_lines()}
    assert len(numeric_fields()) > 60
    for section, key, f in numeric_fields():
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        assert lo is not None and hi is not None, f"{section}.{key} has no range"
        shown = {str(hi), f"{hi:g}", f"{hi:g}".replace("e+", "e")}
        shown |= {"2**63-1"} if hi == 2**63 - 1 else set()
        comment = comments[(section, key)]
        assert any(t in comment for t in shown), \
            f"{section}.{key}: comment does not give the upper bound {hi}: {comment!r}"


@pytest.mark.parametrize("section,key,f", numeric_fields(), ids=[f"{s}.{k}" for s, k, _ in numeric_fields()])
def test_range_ends_are_enforced(section, key, f):
    meta = f.metadata
    lo, hi = meta["lo"], meta["hi"]

    def put(value):
        raw = shipped_raw()
        (raw[section][0] if section == "underlyings" else raw[section])[key] = value
        return raw
    path = f"underlyings[0].{key}" if section == "underlyings" else f"{section}.{key}"
    big = hi * 10 + 1 if isinstance(hi, int) else hi * 10
    assert config_error(put(big)).startswith(f"{path}: must be <")
    small = (lo - 1) if isinstance(lo, int) else lo - 1.0
    assert config_error(put(small)).startswith(f"{path}: must be >")
    # the closed ends themselves pass the range check (a cross-check may still refuse them)
    for end in ([] if meta["hi_open"] else [hi]) + ([] if meta["lo_open"] else [lo]):
        try:
            parse_config(put(end))
        except ConfigError as exc:
            assert not re.match(rf"{re.escape(path)}: must be [<>]", str(exc)), str(exc)


@pytest.mark.parametrize("name,step,ok", [
    ("NIFTY", 50, True), ("NIFTY", 100, True), ("NIFTY", 7, False), ("NIFTY", 25, False),
    ("BANKNIFTY", 100, True), ("BANKNIFTY", 50, False), ("FINNIFTY", 50, True), ("FINNIFTY", 1000, True),
    ("FINNIFTY", 1050, False)])
def test_strike_step_must_be_a_multiple_of_the_listed_interval(name, step, ok):
    raw = shipped_raw()
    raw["underlyings"] = [{"name": name, "strike_step": step}]
    if ok:
        assert parse_config(raw).underlying(name).strike_step == step
    elif step > 1000:
        assert config_error(raw) == f"underlyings[0].strike_step: must be <= 1000, got {step}"
    else:
        listed = {"NIFTY": 50, "BANKNIFTY": 100, "FINNIFTY": 50}[name]
        assert config_error(raw) == (f"underlyings[0].strike_step: must be a multiple of {name}'s listed "
                                     f"strike interval {listed}, got {step}")


def test_odd_keys_are_quoted_so_the_message_stays_one_line():
    raw = shipped_raw()
    raw["risk"]["bad\nkey"] = 1
    assert config_error(raw).startswith('risk."bad\\nkey": unknown key')


# --- run / halt: the journal path is checked before anything is written --------------------------------

def _one_line_exit_2(r, needle):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("command", [["run", "--sim", "--quiet"], ["halt"]])
def test_journal_in_missing_directory_exits_2_and_creates_nothing(tmp_path, command):
    j = tmp_path / "nodir" / "journal.sqlite"
    r = _cli(*command, "--config", CONFIG_TOML, "--journal", j)
    _one_line_exit_2(r, f"--journal: directory {tmp_path / 'nodir'} does not exist")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["run", "--sim", "--quiet"], ["halt"]])
def test_empty_journal_exits_2(tmp_path, command):
    _one_line_exit_2(_cli(*command, "--config", CONFIG_TOML, "--journal", ""), "--journal: must name a file")
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG_TOML.read_text().replace('journal = "journal.sqlite"', 'journal = ""'))
    _one_line_exit_2(_cli(*command, "--config", cfg), "bot.journal: must name a file, got ''")
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]


@pytest.mark.parametrize("command", [["run", "--sim", "--quiet"], ["halt"]])
def test_journal_that_is_a_directory_exits_2(tmp_path, command):
    jdir = tmp_path / "j"
    jdir.mkdir()
    _one_line_exit_2(_cli(*command, "--config", CONFIG_TOML, "--journal", jdir),
                     f"--journal: {jdir} is a directory")
    assert [p.name for p in tmp_path.iterdir()] == ["j"] and list(jdir.iterdir()) == []


def test_bot_journal_in_missing_directory_exits_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG_TOML.read_text().replace('journal = "journal.sqlite"',
                                                   f'journal = "{tmp_path}/nodir/journal.sqlite"'))
    _one_line_exit_2(_cli("run", "--sim", "--quiet", "--config", cfg), "bot.journal: directory ")
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]


def test_paper_db_in_missing_directory_exits_2_before_the_journal(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG_TOML.read_text().replace('db = ""', 'db = "nodir/paper.sqlite"'))
    jdir = tmp_path / "jd"
    jdir.mkdir()
    _one_line_exit_2(_cli("run", "--sim", "--quiet", "--config", cfg, "--journal", jdir / "j.sqlite"),
                     f"paper.db: directory {jdir / 'nodir'} does not exist")
    assert list(jdir.iterdir()) == []


def test_halt_that_cannot_write_the_kill_file_exits_2(tmp_path, monkeypatch, capsys):
    from rustro import cli

    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(Path, "write_text", refuse)
    assert cli.main(["halt", "--config", str(CONFIG_TOML), "--journal", str(tmp_path / "j.sqlite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: cannot write {tmp_path / 'KILL'}: Permission denied"]
