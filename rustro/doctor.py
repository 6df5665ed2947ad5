"""`rustro doctor`: is this machine ready for a trading day? Each check is a pure function of facts
gathered beforehand (`rustro.doctor_facts`), so every verdict is tested without a network or a
broken disk. A line is OK, WARN (worth fixing, the day can run) or FAIL (fix it before the day:
the run would refuse, or orders would be rejected); any FAIL makes `doctor` exit 1.

How severe a finding is depends on the mode the day will run in: a broker clock or a public IP
that is wrong matters for live orders, little for paper and not at all for sim.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SECRET_FILE_MODE_MASK = 0o077  # any permission for group or others


@dataclass(frozen=True)
class Finding:
    check: str
    level: str
    detail: str


@dataclass(frozen=True)
class SecretFile:
    """A file holding secrets (.env, the token cache): its path and st_mode bits, None if absent."""
    label: str
    path: str
    mode: int | None


@dataclass(frozen=True)
class JournalFacts:
    path: str
    status: str  # missing | ok | old | bad
    detail: str = ""


@dataclass(frozen=True)
class DiskFacts:
    where: str
    free_mb: float
    reserve_mb: float      # what the mode keeps beside the journal (0 for sim)
    reserve_held_mb: float  # what <journal>.reserve already holds
    min_free_mb: float


@dataclass(frozen=True)
class CalendarFacts:
    today: date
    today_known: bool
    unknown_years: tuple[int, ...]  # years of [today, today + horizon] without holiday data
    horizon_days: int
    allow_unknown_year: bool


@dataclass(frozen=True)
class ClockFacts:
    url: str
    offset_sec: float | None  # local - broker; None when it could not be measured
    error: str = ""
    warn_sec: float = 1.5
    fail_sec: float = 5.0


@dataclass(frozen=True)
class IpFacts:
    url: str
    public_ip: str | None
    static_ip: str
    error: str = ""


def _orders_level(mode: str) -> str:
    """What a problem that rejects orders is worth: a failure live, a warning otherwise."""
    return FAIL if mode == "live" else WARN


def check_config(path: str, error: str | None, mode: str) -> Finding:
    if error:
        return Finding("config", FAIL, error)
    return Finding("config", OK, f"{path} is valid; the day would run in {mode} mode")


def check_credentials(present: tuple[str, ...], missing: tuple[str, ...], mode: str) -> Finding:
    """Names only: a value is never shown."""
    if not missing:
        return Finding("credentials", OK, f"all {len(present)} set: {', '.join(present)}")
    level = FAIL if mode in ("paper", "live") else (WARN if present else OK)
    if not present:
        text = f"none set ({', '.join(missing)})"
        return Finding("credentials", level, text + ("" if level == OK else
                                                     f": {mode} needs all of them in the environment or .env"))
    return Finding("credentials", level, f"missing {', '.join(missing)} (set: {', '.join(present)}); "
                   f"{mode} {'needs' if level == FAIL else 'would need'} all of them for paper or live")


def check_secret_file(f: SecretFile) -> Finding:
    if f.mode is None:
        return Finding(f.label, OK, f"{f.path}: not present"
                       + (" (created with mode 0600 at the first login)" if f.label == "token cache" else ""))
    loose = f.mode & SECRET_FILE_MODE_MASK
    if loose:
        return Finding(f.label, FAIL, f"{f.path}: mode {f.mode & 0o777:04o} lets other users read "
                       f"secrets; run: chmod 600 {f.path}")
    return Finding(f.label, OK, f"{f.path}: mode {f.mode & 0o777:04o}")


def check_journal(j: JournalFacts) -> Finding:
    if j.status == "missing":
        return Finding("journal", OK, f"no journal yet at {j.path}: the first run creates it")
    if j.status == "old":
        return Finding("journal", WARN, f"{j.path}: {j.detail}")
    if j.status == "bad":
        return Finding("journal", FAIL, j.detail)
    return Finding("journal", OK, f"{j.path}: {j.detail}")


def check_disk(d: DiskFacts) -> Finding:
    needed = max(0.0, d.reserve_mb - d.reserve_held_mb)
    figures = (f"{d.free_mb:,.0f} MB free in {d.where}; journal reserve {d.reserve_mb:g} MB "
               f"({d.reserve_held_mb:g} MB held), margin {d.min_free_mb:g} MB")
    if d.free_mb < needed:
        return Finding("disk", FAIL, f"{figures}: no room for the reserve, a run would exit 3")
    if d.free_mb < needed + d.min_free_mb:
        return Finding("disk", WARN, f"{figures}: less than the margin left")
    return Finding("disk", OK, figures)


def check_holidays(c: CalendarFacts, mode: str) -> Finding:
    if not c.today_known:
        refused = mode == "live" and not c.allow_unknown_year
        return Finding("holidays", FAIL if refused else WARN,
                       f"no NSE holiday data for {c.today.year} (today {c.today}): every weekday "
                       f"looks open; " + ("run --live refuses the day; add the year's holidays or set "
                                          "calendar.allow_unknown_year = true" if refused else
                                          "add the year's holidays to rustro/data/holidays.toml or "
                                          "calendar.extra_holidays"))
    if c.unknown_years:
        first = date(c.unknown_years[0], 1, 1)
        return Finding("holidays", WARN, f"no NSE holiday data for {', '.join(map(str, c.unknown_years))}: "
                       f"add it before {first} (rustro/data/holidays.toml or calendar.extra_holidays)")
    end = c.today + timedelta(days=c.horizon_days)
    return Finding("holidays", OK, f"holidays known from {c.today} to {end}")


def check_clock(c: ClockFacts, mode: str) -> Finding:
    if c.offset_sec is None:
        return Finding("clock", WARN, f"could not compare with the broker's clock ({c.url}): {c.error}")
    off = abs(c.offset_sec)
    direction = "ahead of" if c.offset_sec > 0 else "behind"
    text = f"local clock {off:.1f} s {direction} the broker's (HTTP Date of {c.url}, 1 s resolution)"
    if off > c.fail_sec:
        level = FAIL if mode in ("paper", "live") else WARN
        return Finding("clock", level, f"{text}: more than {c.fail_sec:g} s; sync it (chrony or "
                       f"systemd-timesyncd) before trading")
    if off > c.warn_sec:
        return Finding("clock", WARN, f"{text}: more than {c.warn_sec:g} s; check the time sync")
    return Finding("clock", OK, text)


def check_public_ip(p: IpFacts, mode: str) -> Finding:
    if p.public_ip is None:
        return Finding("static ip", WARN, f"could not learn this machine's public IP from {p.url}: "
                       f"{p.error}")
    if not p.static_ip:
        level = _orders_level(mode) if mode != "sim" else OK
        return Finding("static ip", level, f"public IP {p.public_ip}; broker.static_ip is not set: "
                       f"live orders need this IP registered with Angel One (SEBI) and set there")
    if p.public_ip != p.static_ip:
        level = _orders_level(mode)
        return Finding("static ip", level, f"the broker sees {p.public_ip}, not the registered "
                       f"broker.static_ip {p.static_ip}: Angel One rejects API orders from it")
    return Finding("static ip", OK, f"public IP {p.public_ip} is broker.static_ip")


def render(findings: list[Finding]) -> str:
    width = max(len(f.check) for f in findings)
    lines = [f"{f.level:<4}  {f.check:<{width}}  {f.detail}" for f in findings]
    counts = {lvl: sum(f.level == lvl for f in findings) for lvl in (FAIL, WARN, OK)}
    lines.append(f"doctor: {counts[FAIL]} FAIL, {counts[WARN]} WARN, {counts[OK]} OK")
    return "\n".join(lines)


def exit_code(findings: list[Finding]) -> int:
    return 1 if any(f.level == FAIL for f in findings) else 0
