"""Log injection: whatever a client sends, one record is one log line, in the text and the JSON format.

A client chooses the model name (and the path, and header values); none of it may forge a second
line, clear the terminal or hide text. The text format writes control characters as ``\\xNN`` /
``\\uNNNN`` escapes, keeping what was sent readable; the JSON format's encoder escapes them.
"""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import requests

from tests.support.sinks import RowSink
from zengate.exchange.records import RequestRecord
from zengate.runtime import logs

FORGED = "big-pickle\r\n2026-01-01 00:00:00,000 INFO zengate.request [1] Set-Cookie: pwned=1"

# (what a client sends, what the text line shows of it)
CASES = [
    ("big-pickle\r\nSet-Cookie: pwned=1", "big-pickle\\x0d\\x0aSet-Cookie: pwned=1"),
    ("big-pickle\x00hidden", "big-pickle\\x00hidden"),
    ("big-pickle\x1b[2J\x1b]0;owned\x07", "big-pickle\\x1b[2J\\x1b]0;owned\\x07"),
    ("big-pickle\x85next", "big-pickle\\x85next"),  # NEL, a C1 line break
    ("big-pickle\x9bcursor", "big-pickle\\x9bcursor"),  # CSI, the C1 escape sequence opener
    ("big-pickle\u2028line\u2029para", "big-pickle\\u2028line\\u2029para"),  # break lines in some viewers
    ("big-pickle\x7fdel", "big-pickle\\x7fdel"),
    ("big-pickle\tx\x0bx\x0cx\x1cx\x1dx\x1ex", "big-pickle\\x09x\\x0bx\\x0cx\\x1cx\\x1dx\\x1ex"),
]


def _capture(logger: str, formatter: logging.Formatter) -> tuple[io.StringIO, logging.Handler]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logging.getLogger(logger).addHandler(handler)
    return out, handler


@pytest.fixture
def request_lines(caplog):
    """The ``zengate.request`` lines as a real TextFormatter and a real JsonFormatter write them."""
    caplog.set_level(logging.INFO, logger="zengate.request")
    text, text_handler = _capture("zengate.request", logs.TextFormatter())
    js, json_handler = _capture("zengate.request", logs.JsonFormatter())
    yield text, js
    logging.getLogger("zengate.request").removeHandler(text_handler)
    logging.getLogger("zengate.request").removeHandler(json_handler)


def _finish(model: str, path: str = "/v1/chat/completions", proxy: str | None = None) -> None:
    record = RequestRecord(request_id="req_abc", method="POST", path=path, format="openai", sink=RowSink())
    record.model, record.upstream_model, record.proxy = model, model, proxy
    record.finish(200)


def _one_line(written: str) -> str:
    """The single line in ``written``: no line break of any kind (``splitlines`` knows them all)."""
    assert written.endswith("\n")
    lines = written[:-1].splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(("sent", "shown"), CASES)
def test_the_request_line_stays_one_line_with_visible_escapes(request_lines, sent, shown):
    text, js = request_lines
    _finish(sent, path="/v1/chat/completions" + sent[10:], proxy="1.2.3.4:80")
    line = _one_line(text.getvalue())
    assert line.isprintable()  # no control character of any kind left
    assert f" model={shown} status=200 " in line and f"POST /v1/chat/completions{shown[10:]} " in line
    # JSON: one line, nothing unescaped, and the exact value back when parsed (the fields dict too).
    raw = _one_line(js.getvalue())
    assert raw.isascii() and raw.isprintable()
    out = json.loads(raw)
    assert out["model"] == sent and out["upstream_model"] == sent and out["path"].endswith(sent[10:])
    assert f"model={sent} " in out["message"]


def test_every_escaped_character_is_caught():
    """The quick test (``isprintable``) lets no character through that the escape table knows."""
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029):
        shown = logs.escape_controls(f"a{chr(code)}b")
        assert shown == (f"a\\x{code:02x}b" if code < 0x100 else f"a\\u{code:04x}b")
    assert logs.escape_controls("plain text, ünïcödé, 漢字 and a no-break\u00a0space") == \
        "plain text, ünïcödé, 漢字 and a no-break\u00a0space"


def test_any_argument_and_the_message_itself_are_escaped():
    """Not only string arguments: an exception (or any object) in the message carries text too."""
    formatter = logs.TextFormatter()
    for msg, args in (("model list refresh failed: %s", (ValueError(FORGED),)),
                      ("bad value %r then %d", (FORGED, 3)),
                      (FORGED, ())):
        record = logging.LogRecord("zengate.test", logging.WARNING, __file__, 1, msg, args, None)
        line = formatter.format(record)
        assert "\n" not in line and "\r" not in line and line.isprintable()
        assert "big-pickle\\x0d\\x0a2026-01-01" in line or "big-pickle\\r\\n2026-01-01" in line  # %r's own escapes


def test_a_traceback_keeps_its_lines_but_none_can_pass_for_a_log_line():
    try:
        raise ValueError(f"unknown model {FORGED}\n2026-01-01 00:00:00,000 ERROR zengate forged\x1b[2J")
    except ValueError:
        record = logging.LogRecord("zengate", logging.ERROR, __file__, 1, "unhandled error on %s %s",
                                   ("POST", "/v1/chat\r\ncompletions"), sys.exc_info())
    text = logs.TextFormatter().format(record)
    first, *rest = text.split("\n")
    assert first.endswith(f"ERROR zengate [{record.process}] unhandled error on POST /v1/chat\\x0d\\x0acompletions")
    assert rest[0] == "    Traceback (most recent call last):"
    assert all(line.startswith("    ") for line in rest)  # every line of it indented: none starts a record
    assert "\r" not in text and "\x1b" not in text and "\\x1b[2J" in text and "\\x0d" in text
    assert any(line.startswith("    ValueError: unknown model big-pickle") for line in rest)
    # The record's cached traceback is logging's own: another handler's formatter is not affected.
    assert record.exc_text.startswith("Traceback") and "\x1b" in record.exc_text
    json_line = logs.JsonFormatter().format(record)
    assert len(json_line.splitlines()) == 1 and "\x1b" not in json_line
    assert json.loads(json_line)["exc"].startswith("Traceback")


def test_json_escapes_every_control_character():
    """The JSON format relies on json.dumps's ASCII output: C0, DEL, C1 and U+2028 all come out escaped."""
    record = logging.LogRecord("zengate.test", logging.INFO, __file__, 1, "got %s", ("a\x7fb",), None)
    record.fields = {"model": "a\x7fb\x00\u2028\x85\r\n", "nested": {"k": "\x7f\x1b"}}
    line = logs.JsonFormatter().format(record)
    assert "\x7f" not in line and line.isascii() and line.isprintable()
    out = json.loads(line)
    assert out["message"] == "got a\x7fb" and out["model"] == "a\x7fb\x00\u2028\x85\r\n"
    assert out["nested"] == {"k": "\x7f\x1b"}


def test_ordinary_lines_are_unchanged():
    record = logging.LogRecord("zengate.request", logging.INFO, __file__, 1, "%s %s model=%s status=%s ms=%.1f",
                               ("req_1", "POST", "big-pickle", 200, 12.345), None)
    assert logs.TextFormatter().format(record) == logging.Formatter(logs.TEXT_FORMAT).format(record)


def test_a_forged_model_through_the_app_writes_one_line(make_app, caplog):
    """End to end (Flask's test client): a /v1 request naming a forged model writes one request line."""
    caplog.set_level(logging.INFO, logger="zengate.request")
    out, handler = _capture("zengate.request", logs.TextFormatter())
    try:
        client = make_app().test_client()
        body = {"model": "big-pickle\r\nSet-Cookie: pwned=1\x00\x1b[2J",
                "messages": [{"role": "user", "content": "hi"}]}
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200 and r.get_json()["choices"][0]["message"]["content"] == "Hello from upstream"
        r = client.post("/v1/messages", headers={"anthropic-version": "2023-06-01"},
                        json={**body, "model": "claude\u2028x\x85y", "max_tokens": 10})
        assert r.status_code == 200 and r.get_json()["type"] == "message"
    finally:
        logging.getLogger("zengate.request").removeHandler(handler)
    lines = out.getvalue()[:-1].splitlines()
    assert len(lines) == 2, lines
    assert " POST /v1/chat/completions model=big-pickle\\x0d\\x0aSet-Cookie: pwned=1\\x00\\x1b[2J status=200 " \
        in lines[0]
    assert " POST /v1/messages model=claude\\u2028x\\x85y status=200 " in lines[1]
    assert all(line.isprintable() for line in lines)


@pytest.mark.e2e
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_real_gateway_writes_one_line_per_request(tmp_path, upstream, log_format):
    """gunicorn as production starts it: the workers' log lines go through these formatters."""
    from tests.support.gateway import GatewayProcess

    gw = GatewayProcess(tmp_path, upstream.url, env={"ZENGATE_SETTINGS_TTL": "0", "ZENGATE_LOG_FORMAT": log_format})
    gw.start()
    try:
        model = "big-pickle\r\nSet-Cookie: pwned=1\x1b[2J\x85"
        r = requests.post(gw.url + "/v1/chat/completions", timeout=30,
                          json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Hello from upstream"
        gw.wait_for(lambda: "pwned" in gw.log())
    finally:
        gw.stop()
    lines = [line for line in gw.log().splitlines() if "pwned" in line]
    assert len(lines) == 1 and lines[0].isprintable(), lines
    if log_format == "text":
        assert " model=big-pickle\\x0d\\x0aSet-Cookie: pwned=1\\x1b[2J\\x85 status=200 " in lines[0]
    else:
        assert json.loads(lines[0])["model"] == model
