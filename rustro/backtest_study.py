"""Parameter studies: `--set key=value` overrides and `--sweep key=v1,v2,...` grids.

A key is a dotted path into config.toml (`risk.max_trades_per_day`, `underlyings.0.strike_step`
or `underlyings[0].strike_step`); a value is a TOML literal (`2`, `0.5`, `true`, `"adopt"`,
`[0.25, 0.5]`), and a bare word that is not one is taken as a string (`adopt`, `14:00`). The
overrides are applied to the effective configuration and the result goes through the normal
loader (`config.parse_config`), so a bad value is refused with the message `check-config` gives,
naming the key (exit 2).
"""
from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from .config import Config, ConfigError, parse_config

_INDEX = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Combination:
    index: int
    values: dict  # the swept keys and their values for this combination ({} without --sweep)
    cfg: Config


def parse_value(text: str) -> Any:
    """A TOML literal, or the text itself when it is not one (a bare word)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return text.strip()


def parse_values(text: str) -> list:
    """`1,2,3` or `"a","b"` or `[1,2],[3,4]` (one TOML array's items), or bare words `halt,adopt`."""
    try:
        values = tomllib.loads(f"v = [{text}]")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        values = [parse_value(part) for part in text.split(",")]
    return values


def split_assignment(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = _INDEX.sub(r".\1", key.strip())
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{option} {text!r}: expected KEY=VALUE with a dotted key such as "
                          f"risk.max_trades_per_day=2")
    return key, value


def to_raw(obj: Any) -> Any:
    """A config as the nested dicts and lists config.toml parses to."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_raw(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_raw(x) for x in obj]
    return obj


def apply_override(raw: dict, key: str, value: Any) -> None:
    """Set raw[a][b]... = value for key 'a.b...'; a list item is named by its index."""
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{where}: no such item ({'.'.join(parts[:depth])} has "
                                  f"{len(node)}, numbered from 0)")
            part = int(part)
        elif not isinstance(node, dict):
            raise ConfigError(f"{where}: {'.'.join(parts[:depth])} is a value, not a table")
        elif not last and part not in node:
            node[part] = {}  # an unknown table: the loader names it
        if last:
            node[part] = value
        else:
            node = node[part]


def configure(base: Config, overrides: dict[str, Any]) -> Config:
    raw = to_raw(base)
    for key, value in overrides.items():
        apply_override(raw, key, value)
    return parse_config(raw)


def _described(exc: ConfigError, what: str) -> ConfigError:
    return ConfigError(f"{exc} (from {what})")


def build_study(base: Config, sets: list[str], sweeps: list[str]) -> tuple[dict, list[Combination]]:
    """(the --set overrides, every combination of the --sweep values in grid order), each validated
    by the config loader; an error names the key, and the option or combination that set it."""
    overrides: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for text in sets:
        key, value = split_assignment(text, "--set")
        if key in overrides:
            raise ConfigError(f"{key}: given twice with --set")
        overrides[key], texts[key] = parse_value(value), text
    try:
        configure(base, overrides)
    except ConfigError as exc:
        raise _described(exc, _culprit(base, overrides, texts)) from None
    grid: dict[str, list] = {}
    for text in sweeps:
        key, value = split_assignment(text, "--sweep")
        if key in grid or key in overrides:
            raise ConfigError(f"{key}: given twice (--sweep and --set or --sweep)")
        grid[key] = parse_values(value)
        if not grid[key]:
            raise ConfigError(f"--sweep {text!r}: no values")
    combos = []
    for i, values in enumerate(itertools.product(*grid.values())):
        chosen = dict(zip(grid, values))
        try:
            cfg = configure(base, {**overrides, **chosen})
        except ConfigError as exc:
            what = ", ".join(f"{k}={v!r}" for k, v in chosen.items())
            raise _described(exc, f"the combination {what}") from None
        combos.append(Combination(i, chosen, cfg))
    return overrides, combos


def _culprit(base: Config, overrides: dict, texts: dict) -> str:
    """The --set that fails on its own, else all of them (they fail together)."""
    for key, value in overrides.items():
        try:
            configure(base, {key: value})
        except ConfigError:
            return f"--set {texts[key]}"
    return " ".join(f"--set {t}" for t in texts.values())
