"""Logs: one line per request with its numbers, the JSON format, and no secret in any line or row."""

from __future__ import annotations

import json
import logging

import pytest

from tests.support.fake_upstream import error
from tests.support.gateway import ADMIN_PASSWORD
from tests.support.sinks import RowSink
from zengate.exchange.records import RequestRecord
from zengate.runtime import logs
from zengate.store.models import RequestLog


def _record(**kw) -> RequestRecord:
    return RequestRecord(request_id="req_abc", method="POST", path="/v1/chat/completions", format="openai",
                         sink=RowSink(), **kw)


def _log_record(message: str, *args, **fields) -> logging.LogRecord:
    record = logging.LogRecord("zengate.test", logging.INFO, __file__, 1, message, args, None)
    if fields:
        record.fields = fields
    return record


@pytest.mark.parametrize(("text", "secret", "kept"), [
    ("key sk-zen-AbCdEf0123456789abcdefXYZ used", "0123456789abcdefXYZ", "sk-zen-AbCdEf…"),
    ("Authorization: Bearer zgs_Q2xhdWRlIGlzIGdyZWF0", "zgs_Q2xhdWRlIGlzIGdyZWF0", "Bearer [redacted]"),
    ("x-api-key: abcdef-ghijkl-mnop", "abcdef-ghijkl-mnop", "x-api-key: [redacted]"),
    ('{"password": "hunter2-hunter2"}', "hunter2-hunter2", '"password": "[redacted]"'),
    ("via http://user:p4ssw0rd@10.0.0.1:3128 failed", "p4ssw0rd", "http://***@10.0.0.1:3128"),
    ("postgresql://zen:dbsecret@db/zengate", "dbsecret", "postgresql://***@db/zengate"),
    ("token=abcdefabcdef&x=1", "abcdefabcdef", "token=[redacted]"),
])
def test_redact_masks_recognisable_secrets(text, secret, kept):
    out = logs.redact(text)
    assert secret not in out
    assert kept in out


def test_redact_masks_registered_secrets_anywhere():
    logs.register_secret("upstream-key-VERY-secret-42")
    logs.register_secret("public")  # Zen's anonymous key is not a secret
    logs.register_secret("abc")  # too short to be told from ordinary text
    out = logs.redact("Incorrect API key provided: upstream-key-VERY-secret-42; public abc")
    assert "upstream-key-VERY-secret-42" not in out and "[redacted]" in out
    assert out.endswith("public abc")


def test_redact_leaves_ordinary_lines_alone():
    line = "req_1 POST /v1/chat/completions model=big-pickle status=200 ms=12.5 ttfb=3.1 in=10 out=5 proxy=-"
    assert logs.redact(line) == line


def test_json_formatter_one_object_with_fields():
    record = _log_record("hello %s", "world", request_id="req_1", status=200, key="sk-zen-abcdefSECRETSECRET")
    out = json.loads(logs.JsonFormatter().format(record))
    assert out["message"] == "hello world" and out["level"] == "info" and out["logger"] == "zengate.test"
    assert out["request_id"] == "req_1" and out["status"] == 200
    assert out["key"] == "sk-zen-abcdef…"
    assert out["time"].endswith("Z") and isinstance(out["pid"], int)


def test_json_formatter_exceptions_are_one_line():
    try:
        raise ValueError("bad value with Bearer abcdefghijklmnop")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info())
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert "ValueError" in out["exc"] and "abcdefghijklmnop" not in out["exc"]


def test_text_formatter_redacts():
    line = logs.TextFormatter().format(_log_record("got %s", "sk-zen-abcdefTHEREST0123456789"))
    assert "THEREST" not in line and "sk-zen-abcdef…" in line and " INFO zengate.test [" in line


def test_text_formatter_time_is_loggings_own(monkeypatch):
    """The date and time part is formatted once a second; every line still reads as logging's own."""
    import time

    ours, theirs = logs.TextFormatter(), logging.Formatter(logs.TEXT_FORMAT)
    calls = []
    strftime = time.strftime
    monkeypatch.setattr(time, "strftime", lambda *a: calls.append(a) or strftime(*a))
    base = 1_796_083_200.0
    for created in (base + 0.001, base + 0.5, base + 0.999, base + 1.0, base + 1.25, base + 3600.5, base + 0.75):
        record = logging.LogRecord("zengate.request", logging.INFO, __file__, 1, "line %s", ("x",), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        expected = theirs.format(record)
        calls.clear()
        assert ours.format(record) == expected
        assert len(calls) == (created in (base + 0.001, base + 1.0, base + 3600.5, base + 0.75))  # a new second
    custom = logs.TextFormatter(datefmt="%H:%M")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    assert custom.format(record).split(" ")[0] == logging.Formatter(datefmt="%H:%M").formatTime(record, "%H:%M")


def test_finish_writes_one_info_line_with_the_request(caplog):
    record = _record(stream=True)
    record.model, record.upstream_model, record.proxy, record.key_prefix = "claude-x", "big-pickle", "1.2.3.4:80", None
    record.first_byte()
    record.add_usage(12, 34)
    with caplog.at_level(logging.INFO, logger="zengate.request"):
        record.finish(200)
        record.finish(500)  # once only
    lines = [r for r in caplog.records if r.name == "zengate.request"]
    assert len(lines) == 1
    line = lines[0]
    assert line.levelno == logging.INFO
    text = line.getMessage()
    for part in ("req_abc", "POST", "/v1/chat/completions", "model=claude-x", "status=200", "ms=", "ttfb=",
                 "in=12", "out=34", "proxy=1.2.3.4:80"):
        assert part in text
    fields = line.fields
    assert fields["request_id"] == "req_abc" and fields["status"] == 200 and fields["upstream_model"] == "big-pickle"
    assert fields["input_tokens"] == 12 and fields["output_tokens"] == 34 and fields["stream"] is True
    assert fields["ms"] >= 0 and fields["ttfb_ms"] is not None
    assert len(record.sink.rows) == 1


def test_errors_in_the_request_log_are_redacted():
    logs.register_secret("the-upstream-key-0042")
    record = _record()
    record.finish(401, "upstream said: Incorrect API key provided: the-upstream-key-0042")
    assert "the-upstream-key-0042" not in record.sink.rows[0]["error"]


def test_secrets_reach_neither_the_log_nor_the_request_log(make_app, upstream, caplog):
    app = make_app(api_key="zen-upstream-secret-777")
    client = app.test_client()
    login = client.post("/_admin/login", json={"password": ADMIN_PASSWORD})
    token = login.get_json()["token"]
    admin = {"Authorization": f"Bearer {token}"}
    key = client.post("/_admin/api-keys", headers=admin, json={"name": "t"}).get_json()["key"]
    client.post("/_admin/settings", headers=admin, json={"key": "require_auth", "value": True})
    body = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}
    with caplog.at_level(logging.DEBUG):
        assert client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}).status_code \
            == 200
        assert client.post("/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                           json={**body, "max_tokens": 10}).status_code == 200
        wrong = key[:-4] + "zzzz"
        assert client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {wrong}"}) \
            .status_code == 401
        upstream.script("big-pickle", error(401, "Incorrect API key provided: zen-upstream-secret-777"))
        client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    app.extensions["zengate"].request_log.flush(force=True)
    formatter = logs.TextFormatter()
    text = "\n".join(formatter.format(r) for r in caplog.records)
    rows = json.dumps([r for r in RequestLog.select().dicts()], default=str)
    assert "zen-upstream-secret-777" in upstream.requests[0].headers["authorization"]  # it did go upstream
    for secret in (key, wrong, key[13:], token, ADMIN_PASSWORD, "zen-upstream-secret-777"):
        assert secret not in text
        assert secret not in rows
    assert rows.count(key[:13]) >= 3  # the prefix the dashboard shows is kept
