"""Log lines for journald: levels, one line per event, text or JSON, the journald priority prefix,
and no secret in any line (message, arguments or traceback)."""
import dataclasses
import io
import json
import logging
import os
import re

import pytest

from rustro.config import Config, NotifyConfig
from rustro.credentials import Secrets
from rustro.logs import configure, secret_values, setup

SECRETS = Secrets("log-key-H2k9Pq", "LOGC0DE1", "2468", "JBSWY3DPEHPK3PXPLOGTOTP")
VALUES = [SECRETS.api_key, SECRETS.client_code, SECRETS.mpin, SECRETS.totp_secret]


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def emit(fmt, values=VALUES, stream=None, level="INFO"):
    stream = stream or io.StringIO()
    configure(level, fmt, values, stream)
    log = logging.getLogger("rustro.test")
    log.info("login as %s with pin %s", SECRETS.client_code, SECRETS.mpin)
    log.warning("price 64.2468 is not the pin; table:\nrow 1\nrow 2")
    log.debug("not shown at INFO")
    try:
        raise RuntimeError(f"broker said: bad key {SECRETS.api_key} / totp {SECRETS.totp_secret}")
    except RuntimeError:
        log.exception("job failed")
    return stream.getvalue() if isinstance(stream, io.StringIO) else ""


def test_text_lines_have_time_level_logger_one_line_each_and_no_secret(restore_root, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = emit("text")
    lines = out.splitlines()
    assert len(lines) == 3  # three events, three lines (the table and the traceback folded)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+05:30 INFO rustro.test: login as \*\*\* "
                    r"with pin \*\*\*$", lines[0])
    assert lines[1].endswith("WARNING rustro.test: price 64.2468 is not the pin; table: | row 1 | row 2")
    assert " ERROR rustro.test: job failed | Traceback (most recent call last):" in lines[2]
    assert "RuntimeError: broker said: bad key *** / totp ***" in lines[2]
    for v in VALUES:
        assert not re.search(rf"(?<![0-9.]){re.escape(v)}(?![0-9])", out), v


def test_json_lines_parse_and_carry_the_traceback_masked(restore_root, monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = emit("json")
    objs = [json.loads(line) for line in out.splitlines()]
    assert [(o["level"], o["logger"]) for o in objs] == [("INFO", "rustro.test"), ("WARNING", "rustro.test"),
                                                         ("ERROR", "rustro.test")]
    assert objs[0]["msg"] == "login as *** with pin ***"
    assert objs[1]["msg"] == "price 64.2468 is not the pin; table:\nrow 1\nrow 2"
    assert objs[2]["exc"].startswith("Traceback") and "bad key *** / totp ***" in objs[2]["exc"]
    assert all(o["ts"].endswith("+05:30") for o in objs)
    for v in (SECRETS.api_key, SECRETS.client_code, SECRETS.totp_secret):
        assert v not in out


def test_under_journald_each_line_starts_with_its_priority_and_no_time(restore_root, tmp_path,
                                                                       monkeypatch):
    with open(tmp_path / "journal-stream", "w+") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        emit("text", stream=f)
        f.seek(0)
        lines = f.read().splitlines()
    assert [line[:3] for line in lines] == ["<6>", "<4>", "<3>"]
    assert lines[0] == "<6>INFO rustro.test: login as *** with pin ***"


def test_a_stream_that_is_not_the_journal_gets_no_prefix(restore_root, monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    assert not emit("text").startswith("<")


def test_level_from_log_section_else_bot_log_level(restore_root):
    cfg = Config()
    setup(dataclasses.replace(cfg, log=dataclasses.replace(cfg.log, level="warning")), SECRETS)
    assert logging.getLogger().level == logging.WARNING
    setup(cfg, SECRETS)
    assert logging.getLogger().level == logging.INFO  # bot.log_level


def test_notify_url_tokens_are_masked_too(restore_root):
    n = dataclasses.replace(NotifyConfig(), heartbeat_url="https://hc-ping.com/0b4c1d2e-feed")
    values = secret_values(dataclasses.replace(Config(), notify=n), SECRETS)
    assert "0b4c1d2e-feed" in values and SECRETS.mpin in values
    stream = io.StringIO()
    configure("INFO", "text", values, stream)
    logging.getLogger("urllib3.x").warning("GET https://hc-ping.com/0b4c1d2e-feed failed")
    assert stream.getvalue().rstrip().endswith("GET https://hc-ping.com/*** failed")
