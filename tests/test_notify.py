"""The notifier end to end against a local HTTP receiver (apprise's json://): order, switches, job
error streaks, the rate limit, the heartbeat, failed and hanging services, a full queue, secrets,
and the config errors of [notify]."""
import dataclasses
import sys
import time

import pytest

from rustro.config import Config, ConfigError, NotifyConfig, parse_config
from rustro.credentials import Secrets
from rustro.notify import Notifier
from rustro.notify_messages import Context
from rustro.notify_sender import Sender
from rustro.notify_targets import AppriseTarget, HeartbeatTarget, label, url_secrets

from conftest import DAY
from receiver import Receiver

SECRETS = Secrets("notify-key-Zx81", "N0TIFY77", "4711", "JBSWY3DPEHPK3PXPNOTIFY")


class FakeTime:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def notifier(journal, rcv=None, beat=None, fake=None, **kw):
    ncfg = dataclasses.replace(NotifyConfig(), timeout_sec=1.0, **kw)
    targets = [AppriseTarget(rcv.url, ncfg.timeout_sec)] if rcv is not None else []
    hb = HeartbeatTarget(beat.http_url + "/ping/abc123def", ncfg.heartbeat_method, 1.0) if beat else None
    return Notifier(ncfg, journal, DAY, Context("paper", ("NIFTY",)),
                    Sender(targets, hb, ncfg.queue_size), SECRETS.redact,
                    monotonic=fake or time.monotonic)


def rec(journal, kind, payload):
    journal.record(kind, payload, day=DAY)


def kinds(journal, *names):
    return [e.payload for e in journal.events(DAY, kinds=names)]


def test_messages_arrive_in_journal_order_and_only_new_events_are_told(journal):
    rec(journal, "halted", {"reason": "before the notifier existed"})
    with Receiver() as r:
        n = notifier(journal, r)
        rec(journal, "capital", {"capital": 500000, "source": "config"})
        rec(journal, "breaker_tripped", {"breaker": "vix", "reason": "VIX 31 > 30"})
        rec(journal, "data_healed", {"underlying": "NIFTY"})  # routine: not a message
        rec(journal, "halted", {"reason": "VIX breaker"})
        n.after_job("monitor", False)
        n.close()
        titles = [m["title"] for m in r.messages()]
    assert titles == ["rustro 2026-11-20: day start (paper)", "rustro 2026-11-20: breaker vix tripped",
                      "rustro 2026-11-20: HALTED"]
    assert [m["type"] for m in r.messages()] == ["info", "failure", "failure"]
    assert kinds(journal, "notify_failed", "notify_dropped") == []


def test_an_event_rolled_back_is_never_told(journal):
    with Receiver() as r:
        n = notifier(journal, r)
        with pytest.raises(RuntimeError):
            with journal.transaction():
                rec(journal, "halted", {"reason": "rolled back"})
                raise RuntimeError("the decision could not commit")
        rec(journal, "halted", {"reason": "committed"})
        n.after_job("monitor", False)
        n.close()
    assert [m["message"].split(": ", 1)[1] for m in r.messages()] == ["committed"]


def test_switches_turn_kinds_off(journal):
    with Receiver() as r:
        n = notifier(journal, r, restarts=False, breakers=False)
        rec(journal, "recovered", {"state": "entry_window", "events": 12})
        rec(journal, "breaker_tripped", {"breaker": "vix", "reason": "r"})
        rec(journal, "day_summary", {"trades": 1, "net_pnl": 10})
        n.after_job("market_close", False)
        n.close()
    assert [m["title"] for m in r.messages()] == ["rustro 2026-11-20: day summary +Rs 10.00"]
    assert n.counts.switched_off == 2


def test_job_errors_are_told_once_per_streak_and_the_recovery_once(journal):
    with Receiver() as r:
        n = notifier(journal, r)
        for _ in range(3):  # three failing monitor ticks in a row
            rec(journal, "job_error", {"job": "monitor", "error": "RuntimeError: x", "state": "managing"})
            n.after_job("monitor", True)
        n.after_job("hourly_close", False)   # another job's success does not end monitor's streak
        n.after_job("monitor", False)
        n.after_job("monitor", False)
        rec(journal, "job_error", {"job": "monitor", "error": "RuntimeError: y", "state": "managing"})
        n.after_job("monitor", True)           # a new streak is told again
        n.close()
    bodies = [m["message"] for m in r.messages()]
    assert len(bodies) == 3
    assert bodies[0].startswith("job monitor failed in state managing: RuntimeError: x")
    assert bodies[1] == "job monitor ran cleanly again after 3 failure(s) in a row"
    assert "RuntimeError: y" in bodies[2]
    assert n.counts.streak_repeats == 2


def test_rate_limit_drops_counts_and_journals_then_recovers(journal):
    fake = FakeTime()
    with Receiver() as r:
        n = notifier(journal, r, fake=fake, max_per_minute=2)
        for i in range(5):
            rec(journal, "halted", {"reason": f"r{i}"})
        n.after_job("monitor", False)
        assert kinds(journal, "notify_dropped") == [{"queue_full": 0, "rate_limited": 3}]
        fake.t += 30  # half a minute refills one message
        rec(journal, "halted", {"reason": "r5"})
        rec(journal, "halted", {"reason": "r6"})
        n.after_job("monitor", False)
        n.close()
    assert [m["message"].rsplit(" ", 1)[-1] for m in r.messages()] == ["r0", "r1", "r5"]
    assert kinds(journal, "notify_dropped")[-1] == {"queue_full": 0, "rate_limited": 1}


def test_heartbeat_pings_every_n_minutes_of_jobs_get_and_post(journal):
    for method in ("GET", "POST"):
        fake = FakeTime()
        with Receiver() as beat:
            n = notifier(journal, beat=beat, fake=fake, heartbeat_minutes=1.0, heartbeat_method=method)
            for t in (0, 30, 59, 61, 90, 121, 125):
                fake.t = 1000.0 + t
                n.after_job("monitor", False)
            n.close()
            assert [(q["method"], q["path"]) for q in beat.requests] == [(method, "/ping/abc123def")] * 3
    assert kinds(journal, "notify_failed") == []


def test_a_failing_service_is_journaled_by_the_trading_thread_without_the_url(journal):
    with Receiver("fail") as r:
        n = notifier(journal, r)
        rec(journal, "halted", {"reason": "x"})
        n.after_job("monitor", False)
        r.wait_for(1)
        deadline = time.monotonic() + 5
        while not kinds(journal, "notify_failed") and time.monotonic() < deadline:
            n.after_job("monitor", False)  # the next job collects the sender's outcome
            time.sleep(0.02)
        n.close()
    failed = kinds(journal, "notify_failed")
    assert len(failed) == 1
    assert failed[0]["target"] == "json://127.0.0.1" and failed[0]["what"] == "message"
    assert failed[0]["title"] == "rustro 2026-11-20: HALTED" and failed[0]["event_seq"] > 0


def test_a_hanging_service_never_delays_the_trading_thread(journal):
    """Every enqueue returns at once although each send hangs until its 1 s timeout; the queue
    fills and drops (counted, journaled); close waits at most two timeouts."""
    with Receiver("hang") as r:
        n = notifier(journal, r, queue_size=5, max_per_minute=600)
        worst = 0.0
        for i in range(40):
            rec(journal, "halted", {"reason": f"r{i}"})
            t0 = time.monotonic()
            n.after_job("monitor", False)  # poll + map + enqueue + collect outcomes
            worst = max(worst, time.monotonic() - t0)
        t0 = time.monotonic()
        n.close()
        closing = time.monotonic() - t0
    print(f"\n[notify] worst after_job with a hanging receiver: {worst * 1000:.2f} ms; close {closing:.2f} s")
    assert worst < 0.5          # a send hangs for 1 s: no job waited for one
    assert closing < 2 * 1.0 + 1.0
    dropped = kinds(journal, "notify_dropped")
    assert sum(d.get("queue_full", 0) for d in dropped) >= 40 - 5 - 2
    assert any(d.get("unsent_at_exit") for d in dropped)


def test_no_secret_reaches_a_message(journal):
    with Receiver() as r:
        n = notifier(journal, r)
        # the run's journal refuses secrets (forbidden); this one does not, to prove the redaction
        rec(journal, "job_error", {"job": "pre_open", "state": "pre_open",
                                   "error": f"LoginError: key {SECRETS.api_key} client {SECRETS.client_code} "
                                            f"pin {SECRETS.mpin} totp {SECRETS.totp_secret}"})
        n.after_job("pre_open", True)
        n.close()
    text = str(r.messages())
    assert "LoginError: key *** client *** pin *** totp ***" in text
    for value in (SECRETS.api_key, SECRETS.client_code, SECRETS.mpin, SECRETS.totp_secret):
        assert value not in text


def test_url_labels_and_secrets_never_show_tokens():
    url = "tgram://123456:AAEbotTokenSecret/987654321?format=text"
    assert label(url) == "tgram://..."  # the 'host' of a Telegram URL is the bot's token
    assert {"123456", "AAEbotTokenSecret", "987654321"} <= set(url_secrets(url))
    assert label("https://hc-ping.com/0b4c-uuid-1234") == "https://hc-ping.com"
    assert url_secrets("https://hc-ping.com/0b4c-uuid-1234") == ["0b4c-uuid-1234"]
    assert label("json://127.0.0.1:8080/") == "json://127.0.0.1"
    assert "s3cretpw" in url_secrets("mailtos://me:s3cretpw@mail.example.com")


# --- config ---------------------------------------------------------------------------------------
def test_urls_without_apprise_installed_name_the_key_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise now raises ImportError
    with pytest.raises(ConfigError) as e:
        parse_config({"notify": {"urls": ["json://127.0.0.1:9/"]}})
    msg = str(e.value)
    assert msg.startswith("notify.urls: ") and "pip install 'rustro[notify]'" in msg
    assert parse_config({"notify": {"heartbeat_url": "https://hc.example/x"}}).notify.urls == ()


def test_bad_notify_and_log_values_are_refused_by_key():
    bad = {
        "notify.urls[1]": {"notify": {"urls": ["json://127.0.0.1:9/", "nosuchservice://tok3nSecret"]}},
        "notify.heartbeat_url": {"notify": {"heartbeat_url": "ftp://x/tok3nSecret"}},
        "notify.heartbeat_method": {"notify": {"heartbeat_method": "PUT"}},
        "notify.timeout_sec": {"notify": {"timeout_sec": 0}},
        "notify.max_per_minute": {"notify": {"max_per_minute": 0}},
        "notify.day_start": {"notify": {"day_start": "yes"}},
        "log.format": {"log": {"format": "xml"}},
        "log.level": {"log": {"level": "loud"}},
    }
    for key, raw in bad.items():
        with pytest.raises(ConfigError) as e:
            parse_config(raw)
        assert str(e.value).startswith(key + ":"), (key, str(e.value))
        assert "tok3nSecret" not in str(e.value)


def test_defaults_send_nothing():
    cfg = Config()
    assert cfg.notify.urls == () and cfg.notify.heartbeat_url == "" and cfg.log.format == "text"


def test_check_config_prints_no_notify_token(tmp_path):
    from conftest import run_cli
    cfg = tmp_path / "config.toml"
    cfg.write_text('[notify]\nurls = ["json://127.0.0.1:9/hook-tok3nSecret"]\n'
                   'heartbeat_url = "https://hc-ping.example/0b4c1d2e-feed"\n')
    r = run_cli("check-config", "--config", cfg)
    assert r.returncode == 0, r.stderr
    assert '"json://127.0.0.1 (rest hidden)"' in r.stdout
    assert '"https://hc-ping.example (rest hidden)"' in r.stdout
    assert "tok3nSecret" not in r.stdout + r.stderr and "0b4c1d2e" not in r.stdout
