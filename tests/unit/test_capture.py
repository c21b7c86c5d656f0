"""Wire capture's parts without the app: masking, the line's shape, the files' rotation, replay's choices."""

from __future__ import annotations

import io
import json
import os
from types import SimpleNamespace

import pytest

from zengate.launch.replay import ReplayError, choose_line, replay_of
from zengate.runtime import capture, logs
from zengate.runtime.capture import CaptureWriter, masked_header, masked_headers, masked_url
from zengate.upstream.client import UpstreamError

ZEN_KEY = "sk-zen-0123456789abcdefABCDEF0123456789"
UPSTREAM_KEY = "zen-upstream-key-7f3a9c2e51"


class FakeSettings:
    def __init__(self, **values):
        self.values = {"capture_body_bytes": 1000, "capture_max_bytes": 10_000, "capture_max_files": 5, **values}

    def get(self, name):
        return self.values[name]


@pytest.fixture
def upstream_key():
    logs.register_secret(UPSTREAM_KEY)
    try:
        yield UPSTREAM_KEY
    finally:
        logs._secrets = tuple(s for s in logs._secrets if s != UPSTREAM_KEY)


# --- masking ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, value, shown", [
    ("Authorization", f"Bearer {ZEN_KEY}", "Bearer [redacted]"),
    ("authorization", "Basic dXNlcjpwYXNz", "Basic [redacted]"),
    ("x-api-key", ZEN_KEY, "[redacted]"),
    ("X-Goog-Api-Key", "AIzaSyA-1234567890abcdefghijklmnopqrstu", "[redacted]"),
    ("Cookie", "zengate_admin=abc123; other=1", "[redacted]"),
    ("Set-Cookie", "zengate_admin=abc123; Path=/", "[redacted]"),
    ("Proxy-Authorization", "Basic dXNlcjpwYXNz", "Basic [redacted]"),
    ("User-Agent", "claude-cli/1.0", "claude-cli/1.0"),
    ("x-note", f"my key is {ZEN_KEY}", "my key is [redacted]"),
])
def test_credential_headers_are_masked_and_others_redacted(name, value, shown):
    assert masked_header(name, value) == shown


def test_repeated_headers_are_joined_and_an_upstream_key_anywhere_is_masked(upstream_key):
    shown = masked_headers([("Accept", "a"), ("Accept", "b"), ("x-trace", f"k={upstream_key}")])
    assert shown == {"Accept": "a, b", "x-trace": "k=[redacted]"}


@pytest.mark.parametrize("url, shown", [
    ("key=AIzaSyA-1234567890abcdefghijklmnopqrstu&alt=sse", "key=[redacted]&alt=sse"),
    ("https://h/v1beta/models/m:generateContent?alt=sse&key=abc", "https://h/v1beta/models/m:generateContent?alt=sse&key=[redacted]"),
    ("http://user:hunter2hunter2@proxy:3128/x", "http://user:[redacted]@proxy:3128/x"),
    ("", ""),
])
def test_urls_lose_their_keys(url, shown):
    assert masked_url(url) == shown


def test_bodies_are_cut_at_the_limit_and_redacted(upstream_key):
    body = json.dumps({"messages": [{"content": f"use {ZEN_KEY} and {upstream_key}"}]}).encode()
    text, size, cut = capture.body_text(body, 10_000)
    assert ZEN_KEY not in text and upstream_key not in text and text.count("[redacted]") == 2
    assert (size, cut) == (len(body), False)
    text, size, cut = capture.body_text(b"\xff" + b"a" * 20, 5)
    assert text == "\ufffdaaaa" and (size, cut) == (21, True)


# --- the line -----------------------------------------------------------------------------------

def record(**fields):
    values = {"request_id": "req_1", "format": "openai", "model": "big-pickle", "upstream_model": "big-pickle",
              "stream": True, "key_prefix": "sk-zen-012345", "ttfb_ms": 12.5, "proxy": "10.0.0.1:3128"}
    return SimpleNamespace(**{**values, **fields})


def test_a_line_holds_the_client_the_attempts_and_the_answer(tmp_path, upstream_key):
    writer = CaptureWriter(tmp_path, FakeSettings(capture_body_bytes=64))
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/chat/completions", "QUERY_STRING": "",
               "HTTP_AUTHORIZATION": f"Bearer {ZEN_KEY}", "CONTENT_TYPE": "application/json",
               "wsgi.input": io.BytesIO(b'{"model": "big-pickle", "stream": true}')}
    cap = writer.begin(environ)
    assert environ["wsgi.input"].read() == b'{"model": "big-pickle", "stream": true}'
    route = SimpleNamespace(upstream_model="big-pickle", tier="zen", key_index=1)
    failed = cap.sending("http://up/chat/completions", b'{"model":"big-pickle"}', route)
    cap.failed(failed, UpstreamError(429, "rate limited"), "10.0.0.1:3128")
    second = cap.sending("http://up/chat/completions", b'{"model":"big-pickle"}', route)
    response = SimpleNamespace(status_code=200, headers={"Content-Type": "text/event-stream"},
                               request=SimpleNamespace(headers={"Authorization": f"Bearer {upstream_key}"}))
    cap.sent(second, response, None)
    cap.chunk(b"data: one\n\n")
    cap.chunk(b"data: " + b"x" * 100 + b"\n\n")
    out = b"".join(cap.streamed(iter([b"data: a\n\n", b"data: b\n\n"])))
    assert out == b"data: a\n\ndata: b\n\n"
    cap.outcome = {"request_id": "req_1", "status": 200, "error": None, "ttfb_ms": 12.5, "ended_ms": 20.0}
    line = capture.line(cap)
    assert json.loads(json.dumps(line)) == line  # plain JSON
    assert set(line) == {"v", "time", "request_id", "worker", "format", "model", "upstream_model", "stream",
                         "key_prefix", "proxy", "status", "error", "client", "attempts", "answer", "ms"}
    assert line["client"] == {"method": "POST", "path": "/v1/chat/completions", "query": "",
                              "headers": {"Authorization": "Bearer [redacted]", "Content-Type": "application/json"},
                              "body": '{"model": "big-pickle", "stream": true}', "bytes": 39, "cut": False}
    first, last = line["attempts"]
    assert (first["status"], first["proxy"], first["key_index"], first["backend"]) == (429, "10.0.0.1:3128", 1, "zen")
    assert first["error"] == "429 http: rate limited" and first["response"]["body"] is None
    assert last["request"]["headers"] == {"Authorization": "Bearer [redacted]"}
    assert last["response"]["body"] == ("data: one\n\ndata: " + "x" * 100)[:64]
    assert (last["response"]["bytes"], last["response"]["cut"]) == (119, True)
    assert last["ms"]["first_chunk"] is not None and last["ms"]["last_chunk"] >= last["ms"]["first_chunk"]
    assert line["answer"] == {"body": "data: a\n\ndata: b\n\n", "bytes": 18, "cut": False}
    text = json.dumps(line)
    assert ZEN_KEY not in text and upstream_key not in text


# --- the files ----------------------------------------------------------------------------------

def lines_in(directory):
    return [json.loads(line) for f in sorted(directory.iterdir()) for line in f.read_text().splitlines()]


def test_a_file_is_rotated_before_a_line_would_take_it_past_the_size(tmp_path):
    writer = CaptureWriter(tmp_path, FakeSettings(capture_max_bytes=10_000, capture_max_files=100))
    for n in range(25):
        writer.write({"n": n, "pad": "x" * 980})  # about 1 KB a line
    files = writer.files()
    assert len(files) == 3 and all(f["bytes"] <= 10_000 for f in files)
    assert all(capture.FILE_NAME.fullmatch(f["name"]) and f"-{os.getpid()}-" in f["name"] for f in files)
    assert sorted(line["n"] for line in lines_in(tmp_path)) == list(range(25))  # no line lost or split
    assert {oct(os.stat(tmp_path / f["name"]).st_mode & 0o777) for f in files} == {"0o600"}


def test_only_the_newest_files_are_kept(tmp_path):
    writer = CaptureWriter(tmp_path, FakeSettings(capture_max_bytes=10_000, capture_max_files=2))
    for n in range(50):
        writer.write({"n": n, "pad": "x" * 980})
    assert len(writer.files()) == 2
    kept = sorted(line["n"] for line in lines_in(tmp_path))
    assert kept == list(range(50 - len(kept), 50)) and len(kept) > 10  # the newest lines, in the newest files


def test_a_deleted_file_is_followed_by_a_new_one(tmp_path):
    writer = CaptureWriter(tmp_path, FakeSettings())
    writer.write({"n": 1})
    [first] = writer.files()
    assert writer.delete(first["name"])
    writer.write({"n": 2})
    [second] = writer.files()
    assert second["name"] != first["name"] and lines_in(tmp_path) == [{"n": 2}]


def test_another_workers_files_count_and_only_capture_files_are_served(tmp_path):
    (tmp_path / "capture-20200101T000000Z-1-1.jsonl").write_text('{"old": true}\n')
    os.utime(tmp_path / "capture-20200101T000000Z-1-1.jsonl", (1, 1))
    (tmp_path / "notes.txt").write_text("not a capture")
    writer = CaptureWriter(tmp_path, FakeSettings(capture_max_files=1))
    writer.write({"n": 1})
    assert [f["name"] for f in writer.files()] != ["capture-20200101T000000Z-1-1.jsonl"]
    assert len(writer.files()) == 1 and (tmp_path / "notes.txt").exists()
    for name in ("notes.txt", "../notes.txt", str(tmp_path / "notes.txt"), "capture-x.jsonl", ""):
        assert writer.path(name) is None and not writer.delete(name)


def test_no_directory_lists_nothing_and_a_write_makes_it_private(tmp_path):
    writer = CaptureWriter(tmp_path / "absent" / "capture", FakeSettings())
    assert writer.files() == []
    old = os.umask(0o022)
    try:
        writer.write({"n": 1})
    finally:
        os.umask(old)
    assert {oct(os.stat(p).st_mode & 0o777) for p in (tmp_path / "absent", tmp_path / "absent" / "capture")} == {
        "0o700"}


# --- replay's choices (pure) --------------------------------------------------------------------

def entry(request_id="req_1", **client):
    return {"request_id": request_id, "client": {
        "method": "POST", "path": "/v1/messages", "query": "",
        "headers": {"Host": "x", "Content-Length": "9", "Content-Type": "application/json",
                    "x-api-key": "[redacted]", "anthropic-version": "2023-06-01"},
        "body": '{"a": 1}', "bytes": 8, "cut": False, **client}}


def test_a_line_is_chosen_by_number_by_request_id_or_the_last():
    lines = [json.dumps(entry("req_1")), json.dumps(entry("req_2")), ""]
    assert choose_line(lines)["request_id"] == "req_2"
    assert choose_line(lines, number=1)["request_id"] == "req_1"
    assert choose_line(lines, request_id="req_2")["request_id"] == "req_2"
    with pytest.raises(ReplayError, match="there is no line 7"):
        choose_line(lines, number=7)
    with pytest.raises(ReplayError, match="no line of the file has request_id 'req_9'"):
        choose_line(lines, request_id="req_9")
    with pytest.raises(ReplayError, match="line 1 is not a capture line"):
        choose_line(["not json"], number=1)
    with pytest.raises(ReplayError, match="holds no capture line"):
        choose_line([])


def test_replay_sends_the_key_where_the_client_did_and_drops_the_rest():
    replay = replay_of(entry(), "sk-zen-mine")
    assert replay.headers == {"Content-Type": "application/json", "anthropic-version": "2023-06-01",
                              "x-api-key": "sk-zen-mine"}
    assert (replay.method, replay.target, replay.body, replay.masked) == ("POST", "/v1/messages", b'{"a": 1}', False)
    assert "x-api-key" not in replay_of(entry(), None).headers
    gemini = replay_of(entry(path="/v1beta/models/m:streamGenerateContent", query="alt=sse&key=[redacted]",
                             headers={}), "sk-zen-mine")
    assert gemini.target == "/v1beta/models/m:streamGenerateContent?alt=sse&key=sk-zen-mine"
    bearer = replay_of(entry(headers={"Authorization": "Bearer [redacted]"}), "sk-zen-mine")
    assert bearer.headers == {"Authorization": "Bearer sk-zen-mine"}


def test_a_client_body_past_the_limit_is_cut_and_says_so(tmp_path):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/messages", "wsgi.input": io.BytesIO(b"x" * 30)}
    cap = CaptureWriter(tmp_path, FakeSettings(capture_body_bytes=10)).begin(environ)
    assert environ["wsgi.input"].read(20) + environ["wsgi.input"].read() == b"x" * 30  # the view gets it all
    cap.outcome = {"request_id": "req_1", "status": 400}
    assert capture.line(cap)["client"] | {"headers": None} == {
        "method": "POST", "path": "/v1/messages", "query": "", "headers": None, "body": "x" * 10, "bytes": 30,
        "cut": True}


def test_a_cut_body_is_not_replayed():
    with pytest.raises(ReplayError, match="cut at 8 characters of 5000 bytes"):
        replay_of(entry(bytes=5000, cut=True), None)
