"""`rustro doctor`: every FAIL it can report, the WARN/OK around them, and the facts it gathers from a
local HTTP server (the broker's Date header, the public IP) and from real files."""
import os
import sqlite3
import threading
import time as _time
from datetime import date
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rustro import doctor as d
from rustro.doctor_facts import clock_facts, diagnose, ip_facts
from rustro.config import parse_config
from rustro.journal import Journal

from conftest import run_cli
from test_journal_bad_input import corrupt_marker, journal_with_marked_event

CREDS = {"SMARTAPI_API_KEY": "api-key-not-real-123", "SMARTAPI_CLIENT_CODE": "Q9999999",
         "SMARTAPI_MPIN": "4321", "SMARTAPI_TOTP_SECRET": "JBSWY3DPEHPK3PXPJBSWY3DP"}
TODAY = date(2026, 10, 14)


# --- a local broker / what-is-my-IP server ----------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    clock_skew = 0.0       # the Date header's offset from the real time, seconds
    public_ip = "203.0.113.7"
    delay = 0.0
    send_date = True

    def date_time_string(self, timestamp=None):
        return formatdate(_time.time() + self.clock_skew, usegmt=True)

    def send_header(self, key, value):
        if key == "Date" and not self.send_date:
            return
        super().send_header(key, value)

    def _reply(self, body: bytes):
        _time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self):
        self._reply(b"")

    def do_GET(self):
        self.wfile.write(self._reply(self.public_ip.encode()))

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("H", (Handler,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def config_for(url, static_ip="203.0.113.7", timeout=2.0):
    return parse_config({"broker": {"base_url": url, "static_ip": static_ip},
                         "doctor": {"public_ip_url": f"{url}/ip", "timeout_sec": timeout}})


def write_config(tmp_path, url, mode="live", static_ip="203.0.113.7", extra=""):
    path = tmp_path / "c.toml"
    path.write_text(f'[bot]\nmode = "{mode}"\njournal = "{tmp_path / "journal.sqlite"}"\n'
                    f'[broker]\nbase_url = "{url}"\nstatic_ip = "{static_ip}"\n'
                    f'[doctor]\npublic_ip_url = "{url}/ip"\ntimeout_sec = 2.0\n{extra}')
    return path


def by_check(findings):
    return {f.check: f for f in findings}


# --- config and credentials -------------------------------------------------------------------
def test_fail_bad_config_stops_after_the_lines_that_need_none(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("[risk]\ndaily_loss_limit_pct = -2.0\n")
    found = diagnose(str(bad), env_file=str(tmp_path / ".env"), environ={}, today=TODAY)
    assert [f.check for f in found] == ["config", "credentials", ".env"]
    assert found[0].level == d.FAIL
    assert found[0].detail == "config error: risk.daily_loss_limit_pct: must be > 0, got -2.0"
    assert d.exit_code(found) == 1


@pytest.mark.parametrize("mode,present,level", [
    ("live", (), d.FAIL), ("paper", (), d.FAIL), ("sim", (), d.OK),
    ("live", ("SMARTAPI_API_KEY",), d.FAIL), ("sim", ("SMARTAPI_API_KEY",), d.WARN)])
def test_fail_credentials_missing_for_paper_or_live(mode, present, level):
    names = ("SMARTAPI_API_KEY", "SMARTAPI_CLIENT_CODE", "SMARTAPI_MPIN", "SMARTAPI_TOTP_SECRET")
    missing = tuple(n for n in names if n not in present)
    f = d.check_credentials(present, missing, mode)
    assert f.level == level
    assert all(n in f.detail for n in missing)
    assert d.check_credentials(names, (), mode).level == d.OK


# --- files holding secrets --------------------------------------------------------------------
@pytest.mark.parametrize("label", [".env", "token cache"])
def test_fail_a_secret_file_others_can_read(tmp_path, label):
    path = tmp_path / "secret"
    path.write_text("x")
    os.chmod(path, 0o644)
    from rustro.doctor_facts import secret_file
    f = d.check_secret_file(secret_file(label, path))
    assert f.level == d.FAIL and "mode 0644" in f.detail and f"chmod 600 {path}" in f.detail
    os.chmod(path, 0o600)
    assert d.check_secret_file(secret_file(label, path)).level == d.OK
    assert d.check_secret_file(secret_file(label, tmp_path / "none")).level == d.OK


# --- journal ----------------------------------------------------------------------------------
def test_fail_a_journal_with_an_unreadable_event(tmp_path, vclock, server):
    _, url = server
    journal_with_marked_event(tmp_path / "journal.sqlite", vclock)
    corrupt_marker(tmp_path / "journal.sqlite")
    found = by_check(diagnose(str(write_config(tmp_path, url)), environ=CREDS,
                              env_file=str(tmp_path / ".env"), today=TODAY))
    assert found["journal"].level == d.FAIL
    assert "event #2 (vix) is unreadable" in found["journal"].detail


def test_fail_a_file_that_is_not_a_rustro_journal(tmp_path, server):
    _, url = server
    c = sqlite3.connect(tmp_path / "journal.sqlite")
    c.execute("CREATE TABLE t(x)")
    c.close()
    found = by_check(diagnose(str(write_config(tmp_path, url)), environ=CREDS,
                              env_file=str(tmp_path / ".env"), today=TODAY))
    assert found["journal"].level == d.FAIL and "is not a rustro journal" in found["journal"].detail


def test_a_sound_journal_is_described_while_a_bot_holds_it(tmp_path, vclock, server):
    _, url = server
    with Journal.open(tmp_path / "journal.sqlite", vclock) as j:  # the bot's lock is held meanwhile
        j.record("vix", {"value": 14.0})
        found = by_check(diagnose(str(write_config(tmp_path, url)), environ=CREDS,
                                  env_file=str(tmp_path / ".env"), today=TODAY))
    assert found["journal"].level == d.OK and "integrity ok, 1 events" in found["journal"].detail


# --- disk -------------------------------------------------------------------------------------
def test_fail_no_room_for_the_journal_reserve():
    def disk(free, held=0.0):
        return d.check_disk(d.DiskFacts("/srv", free, reserve_mb=16, reserve_held_mb=held, min_free_mb=200))
    assert disk(10).level == d.FAIL and "a run would exit 3" in disk(10).detail
    assert disk(10, held=16).level == d.WARN   # the reserve already exists: only the margin is short
    assert disk(100).level == d.WARN
    assert disk(216.5).level == d.OK


# --- holidays ---------------------------------------------------------------------------------
def test_fail_live_today_in_a_year_without_holidays():
    def cal(today, unknown, allow=False):
        return d.CalendarFacts(today, today.year not in unknown, unknown, 30, allow)
    f = d.check_holidays(cal(date(2027, 1, 5), (2027,)), "live")
    assert f.level == d.FAIL and "run --live refuses the day" in f.detail
    assert d.check_holidays(cal(date(2027, 1, 5), (2027,), allow=True), "live").level == d.WARN
    assert d.check_holidays(cal(date(2027, 1, 5), (2027,)), "paper").level == d.WARN
    ahead = d.check_holidays(cal(date(2026, 12, 15), (2027,)), "live")
    assert ahead.level == d.WARN and "before 2027-01-01" in ahead.detail
    assert d.check_holidays(cal(date(2026, 10, 14), ()), "live").level == d.OK


def test_diagnose_uses_the_calendar_of_the_config(tmp_path, server):
    _, url = server
    cfg = write_config(tmp_path, url)
    env = str(tmp_path / ".env")
    assert by_check(diagnose(str(cfg), environ=CREDS, env_file=env, today=date(2027, 1, 5)))[
        "holidays"].level == d.FAIL
    cfg = write_config(tmp_path, url, extra='[calendar]\nextra_holidays = ["2027-01-26"]\n')
    assert by_check(diagnose(str(cfg), environ=CREDS, env_file=env, today=date(2027, 1, 5)))[
        "holidays"].level == d.OK


# --- the broker's clock -----------------------------------------------------------------------
@pytest.mark.parametrize("skew,level", [(0.0, d.OK), (3.0, d.WARN), (-60.0, d.FAIL), (60.0, d.FAIL)])
def test_fail_a_clock_far_from_the_brokers(server, skew, level):
    handler, url = server
    handler.clock_skew = skew
    facts = clock_facts(config_for(url))
    assert facts.offset_sec == pytest.approx(-skew, abs=1.0)
    f = d.check_clock(facts, "live")
    assert f.level == level, f.detail
    assert d.check_clock(facts, "sim").level == (d.WARN if level == d.FAIL else level)
    if skew < 0:
        assert "ahead of the broker's" in f.detail


def test_an_unreachable_or_dateless_broker_is_a_warning(server):
    handler, url = server
    handler.send_date = False
    assert "no Date header" in clock_facts(config_for(url)).error
    handler.send_date, handler.delay = True, 1.0
    slow = clock_facts(config_for(url, timeout=0.2))
    assert slow.offset_sec is None and slow.error == "no answer within 0.2 s"
    closed = clock_facts(config_for("http://127.0.0.1:9"))  # discard port: refused
    f = d.check_clock(closed, "live")
    assert f.level == d.WARN and "cannot connect" in f.detail


# --- the static IP ----------------------------------------------------------------------------
def test_fail_live_from_an_ip_that_is_not_the_registered_one(server):
    handler, url = server
    handler.public_ip = "198.51.100.20"
    facts = ip_facts(config_for(url, static_ip="203.0.113.7"))
    assert facts.public_ip == "198.51.100.20"
    f = d.check_public_ip(facts, "live")
    assert f.level == d.FAIL and "198.51.100.20" in f.detail and "203.0.113.7" in f.detail
    assert d.check_public_ip(facts, "paper").level == d.WARN
    handler.public_ip = "203.0.113.7"
    assert d.check_public_ip(ip_facts(config_for(url)), "live").level == d.OK


def test_fail_live_without_a_registered_static_ip(server):
    _, url = server
    facts = ip_facts(config_for(url, static_ip=""))
    assert d.check_public_ip(facts, "live").level == d.FAIL
    assert d.check_public_ip(facts, "paper").level == d.WARN
    assert d.check_public_ip(facts, "sim").level == d.OK


def test_an_unknown_public_ip_is_a_warning_not_a_crash(server):
    handler, url = server
    handler.public_ip = "<html>captive portal</html>"
    f = d.check_public_ip(ip_facts(config_for(url)), "live")
    assert f.level == d.WARN and "not an IP address" in f.detail
    f = d.check_public_ip(ip_facts(config_for("http://127.0.0.1:9")), "live")
    assert f.level == d.WARN and "cannot connect" in f.detail


# --- the command ------------------------------------------------------------------------------
def test_cli_all_ok_exits_0_and_never_prints_a_secret(tmp_path, server):
    _, url = server
    cfg = write_config(tmp_path, url)
    r = run_cli("doctor", "--config", cfg, env_extra=CREDS, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert [ln.split()[1] for ln in lines[:-1]] == ["config", "credentials", ".env", "token", "journal",
                                                     "disk", "holidays", "clock", "static"]
    assert all(ln.startswith("OK ") for ln in lines[:-1]), r.stdout
    assert lines[-1] == "doctor: 0 FAIL, 0 WARN, 9 OK"
    for value in CREDS.values():
        assert value not in r.stdout + r.stderr


def test_cli_a_fail_exits_1(tmp_path, server):
    handler, url = server
    handler.public_ip = "198.51.100.20"
    (tmp_path / ".env").write_text("SMARTAPI_MPIN=4321\n")
    os.chmod(tmp_path / ".env", 0o640)
    r = run_cli("doctor", "--config", write_config(tmp_path, url), env_extra=CREDS, cwd=tmp_path)
    assert r.returncode == 1
    fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL")]
    assert len(fails) == 2 and ".env" in fails[0] and "static ip" in fails[1]
    assert "4321" not in r.stdout + r.stderr
    ok = run_cli("doctor", "--sim", "--config", write_config(tmp_path, url), cwd=tmp_path)
    assert "FAIL  static ip" not in ok.stdout and "WARN  static ip" in ok.stdout


@pytest.mark.parametrize("raw,message", [
    ({"broker": {"static_ip": "203.0.113"}}, "broker.static_ip: must be an IPv4 or IPv6 address"),
    ({"doctor": {"clock_warn_sec": 5.0, "clock_fail_sec": 5.0}}, "doctor.clock_warn_sec: must be below"),
    ({"doctor": {"public_ip_url": "ftp://x"}}, "doctor.public_ip_url: must start with http://"),
    ({"doctor": {"timeout_sec": 0}}, "doctor.timeout_sec: must be > 0"),
    ({"journal": {"backup_keep": -1}}, "journal.backup_keep: must be >= 0"),
    ({"journal": {"backup_dir": "  "}}, "journal.backup_dir: must name a directory"),
])
def test_operations_keys_are_checked(raw, message):
    from rustro.config import ConfigError
    with pytest.raises(ConfigError) as exc:
        parse_config(raw)
    assert str(exc.value).startswith(message)
    assert parse_config({"broker": {"static_ip": "2001:db8::1"}}).broker.static_ip == "2001:db8::1"
