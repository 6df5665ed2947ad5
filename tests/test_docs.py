"""The documentation shipped in the repository: its numbers are config.toml's, its links resolve,
and nothing in it (or in the tests) points outside the repository."""
import dataclasses
import re
from datetime import time
from pathlib import Path

import pytest

from rustro.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
STRATEGY_MD = DOCS / "strategy.md"
# `key` (value) or `key` value: a default the text states; value a number, time, list, bool or string
STATED = re.compile(r'`([a-z][a-z0-9_]*)`\s*\(?\s*(\[[^\]]*\]|true|false|\d{1,2}:\d{2}|"[^"]*"|\d[\d.]*)')
STRATEGY_SECTIONS = ("signal", "filters", "options", "sizing", "risk", "exits", "costs")


def shipped() -> Config:
    return load_config(REPO / "config.toml")


def field_values(cfg: Config) -> dict[str, list]:
    """Every key name to its values in the sections that have it."""
    out: dict[str, list] = {}
    for section in dataclasses.fields(cfg):
        value = getattr(cfg, section.name)
        rows = value if isinstance(value, tuple) else (value,)
        for row in rows:
            if dataclasses.is_dataclass(row):
                for f in dataclasses.fields(row):
                    out.setdefault(f.name, []).append(getattr(row, f.name))
    return out


def parse(text: str):
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text.startswith('"'):
        return text.strip('"')
    if ":" in text:
        h, m = text.split(":")
        return time(int(h), int(m))
    if text.startswith("["):
        return tuple(float(x) for x in text.strip("[]").split(","))
    return float(text.rstrip("."))


def stated_defaults() -> list[tuple[str, object]]:
    return [(k, parse(v)) for k, v in STATED.findall(STRATEGY_MD.read_text(encoding="utf-8"))]


def test_every_number_in_strategy_md_is_the_shipped_default():
    stated = stated_defaults()
    assert len({k for k, _ in stated}) >= 60  # the extraction really reads the document
    values = field_values(shipped())
    wrong = []
    for key, value in stated:
        assert key in values, f"docs/strategy.md names `{key}`, which is not a config key"
        have = values[key][0]
        if isinstance(have, tuple):
            have = tuple(float(x) for x in have)
        elif isinstance(have, (int, float)) and not isinstance(have, bool):
            have = float(have)
        if have != value:
            wrong.append((key, value, have))
    assert wrong == []


def test_strategy_md_states_every_strategy_key():
    cfg = Config()
    keys = {f.name for s in STRATEGY_SECTIONS for f in dataclasses.fields(getattr(cfg, s))}
    text = STRATEGY_MD.read_text(encoding="utf-8")
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert missing == []


def test_a_wrong_number_would_be_caught():
    """The check above is not vacuous: a doc that says 0.25 for stop_loss_pct fails it."""
    values = field_values(shipped())
    key, value = parse_pair("`stop_loss_pct` (0.25)")
    assert values[key][0] != value


def parse_pair(text):
    k, v = STATED.search(text).groups()
    return k, parse(v)


def markdown_files():
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_relative_links_resolve_inside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        file_part = target.split("#")[0]
        if not file_part:
            continue
        resolved = (path.parent / file_part).resolve()
        assert resolved.exists(), f"{path.name}: link {target} does not resolve"
        assert REPO in resolved.parents or resolved == REPO, f"{path.name}: {target} leaves the repo"


def test_readme_links_the_docs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in ("docs/strategy.md", "docs/architecture.md", "docs/operations.md"):
        assert f"({name})" in readme


def test_nothing_points_outside_the_repository():
    """A user's clone holds only the repository: README, docs and tests name nothing beside it."""
    pattern = re.compile("\\.\\./" + "shared")  # spelled apart so this file does not match itself
    offenders = []
    for path in [REPO / "README.md", *DOCS.rglob("*"), *(REPO / "tests").rglob("*.py")]:
        if path.is_file() and pattern.search(path.read_text(encoding="utf-8", errors="replace")):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_the_audit_queries_of_operations_md_run_on_a_sim_day(tmp_path):
    """Every ```sql block of operations.md runs on the journal of the day it was written from, and
    the trades it shows are the ones that day makes."""
    import sqlite3
    from conftest import run_cli
    journal = tmp_path / "x.sqlite"
    r = run_cli("run", "--sim", "--date", "2026-10-14", "--journal", journal, "--quiet")
    assert r.returncode == 0, r.stderr
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    statements = [s.strip() for b in blocks for s in b.split(";") if s.strip()]
    assert len(statements) >= 12
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        results = {s: conn.execute(s).fetchall() for s in statements}
    finally:
        conn.close()
    trades = next(rows for s, rows in results.items() if "FROM v_trades" in s)
    assert [(t[1], t[6], t[9]) for t in trades] == [("NIFTY19OCT2625950CE", "trailing_stop", 8424.01),
                                                   ("NIFTY19OCT2626000CE", "trailing_stop", 811.59)]
    for row in trades:  # as printed in the document
        assert f"{row[1]}  {row[2]}  {row[3]}" in text
