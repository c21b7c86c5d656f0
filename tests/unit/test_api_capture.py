"""Wire capture through the app in front of the fake upstream: switched by its setting, what a line
holds for streamed and whole answers and failed attempts, no secret in any file, the admin API
(listing, download, deletion, bad names, no login) and the settings' bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.fake_upstream import error
from zengate.runtime import logs

UPSTREAM_KEY = "zen-upstream-secret-4b7e1d9a03"
ASK = [{"role": "user", "content": "hi"}]


@pytest.fixture
def app(make_app):
    built = make_app(api_key=UPSTREAM_KEY)  # registered as a secret by create_app
    yield built
    logs._secrets = tuple(s for s in logs._secrets if s != UPSTREAM_KEY)


@pytest.fixture
def capturing(client, admin_headers):
    """Wire capture on, keys required; the sk-zen key's headers."""
    for key, value in (("wire_capture", True), ("require_auth", True)):
        r = client.post("/_admin/settings", json={"key": key, "value": value}, headers=admin_headers)
        assert r.status_code == 200 and r.get_json()["value"] is True
    created = client.post("/_admin/api-keys", json={"name": "capture"}, headers=admin_headers).get_json()
    return created["key"]


def captured(gateway) -> list[dict]:
    directory = Path(gateway.capture.directory)
    return [json.loads(line) for f in sorted(directory.glob("capture-*.jsonl")) for line in f.read_text().splitlines()]


def everything_written(gateway) -> str:
    return "".join(f.read_text() for f in Path(gateway.capture.directory).glob("*"))


def test_nothing_is_captured_while_the_setting_is_off(client, gateway, admin_headers):
    r = client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK})
    assert r.status_code == 200
    assert not Path(gateway.capture.directory).exists()
    assert client.get("/_admin/capture", headers=admin_headers).get_json() == {
        "enabled": False, "files": [], "total_bytes": 0}


def test_a_whole_and_a_streamed_exchange_are_captured_without_secrets(client, gateway, upstream, capturing):
    key = capturing
    r = client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK},
                    headers={"Authorization": f"Bearer {key}"})
    answered = r.get_json()
    assert answered["choices"][0]["message"]["content"] == "Hello from upstream"
    r = client.post("/v1/messages", json={"model": "big-pickle", "messages": ASK, "max_tokens": 50, "stream": True,
                                          "metadata": {"user_id": f"pasted {key}"}},
                    headers={"x-api-key": key, "anthropic-version": "2023-06-01"})
    streamed = r.get_data(as_text=True)
    assert "message_stop" in streamed
    whole, stream = captured(gateway)

    assert (whole["status"], whole["stream"], whole["key_prefix"], whole["format"]) == (200, False, key[:13], "openai")
    assert whole["client"]["headers"]["Authorization"] == "Bearer [redacted]"
    assert json.loads(whole["client"]["body"]) == {"model": "big-pickle", "messages": ASK}
    [attempt] = whole["attempts"]
    assert attempt["url"] == f"{upstream.url}/chat/completions" and attempt["status"] == 200
    assert attempt["request"]["headers"]["Authorization"] == "Bearer [redacted]"
    assert attempt["request"]["headers"]["x-opencode-request"] == upstream.requests[-2].headers["x-opencode-request"]
    assert json.loads(attempt["request"]["body"])["model"] == "big-pickle"
    assert json.loads(attempt["response"]["body"])["choices"][0]["message"]["content"] == "Hello from upstream"
    assert json.loads(whole["answer"]["body"]) == answered
    assert whole["ms"]["ended"] >= attempt["ms"]["head"] >= attempt["ms"]["sent"] >= 0

    assert (stream["status"], stream["stream"], stream["format"]) == (200, True, "anthropic")
    assert stream["client"]["headers"]["X-Api-Key"] == "[redacted]"
    assert "pasted [redacted]" in stream["client"]["body"]
    [attempt] = stream["attempts"]
    raw = attempt["response"]["body"]
    assert raw.startswith("data: ") and '"usage"' in raw  # the upstream's own (OpenAI) stream, raw, to its end
    assert attempt["response"]["bytes"] == len(raw.encode()) and not attempt["response"]["cut"]
    assert stream["answer"]["body"] == streamed  # what the client got, translated
    assert attempt["ms"]["last_chunk"] >= attempt["ms"]["first_chunk"] >= attempt["ms"]["head"]

    written = everything_written(gateway)
    assert key not in written and UPSTREAM_KEY not in written
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"  # it was sent, not written


def test_a_gemini_key_in_the_query_is_masked(client, gateway, capturing):
    r = client.post(f"/v1beta/models/big-pickle:generateContent?key={capturing}",
                    json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert r.status_code == 200, r.get_json()
    [line] = captured(gateway)
    assert line["client"]["query"] == "key=[redacted]" and capturing not in everything_written(gateway)


def test_a_failed_attempt_keeps_the_upstreams_answer(client, gateway, upstream, capturing):
    upstream.script("big-pickle", error(429, "slow down", headers={"retry-after": "7"}))
    r = client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK},
                    headers={"Authorization": f"Bearer {capturing}"})
    assert r.status_code == 429
    [line] = captured(gateway)
    assert line["status"] == 429 and "slow down" in line["error"]
    [attempt] = line["attempts"]
    assert attempt["status"] == 429 and attempt["response"]["headers"]["retry-after"] == "7"
    assert json.loads(attempt["response"]["body"])["error"]["message"] == "slow down"
    assert attempt["request"]["headers"]["Authorization"] == "Bearer [redacted]"
    assert json.loads(line["answer"]["body"]) == r.get_json()  # the error the client got, as it got it


def test_an_error_the_gateway_answers_itself_is_captured_too(client, gateway, capturing):
    r = client.post("/v1/messages", json={"model": "big-pickle", "messages": ASK},  # no max_tokens
                    headers={"x-api-key": capturing, "anthropic-version": "2023-06-01"})
    assert r.status_code == 400 and r.get_json()["error"]["type"] == "invalid_request_error"
    [line] = captured(gateway)
    assert line["status"] == 400 and line["attempts"] == []
    assert json.loads(line["answer"]["body"]) == r.get_json()
    assert capturing not in everything_written(gateway)


def test_files_are_listed_downloaded_and_deleted(client, gateway, capturing, admin_headers):
    client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK},
                headers={"Authorization": f"Bearer {capturing}"})
    listed = client.get("/_admin/capture", headers=admin_headers).get_json()
    [entry] = listed["files"]
    assert listed["enabled"] is True and listed["total_bytes"] == entry["bytes"] > 0
    r = client.get(f"/_admin/capture/{entry['name']}", headers=admin_headers)
    assert r.status_code == 200 and r.mimetype == "application/x-ndjson"
    assert f'filename={entry["name"]}' in r.headers["Content-Disposition"]
    assert r.get_data() == (Path(gateway.capture.directory) / entry["name"]).read_bytes()
    assert json.loads(r.get_data().splitlines()[0])["key_prefix"] == capturing[:13]

    r = client.delete(f"/_admin/capture/{entry['name']}", headers=admin_headers)
    assert r.get_json() == {"deleted": entry["name"]}
    assert client.get("/_admin/capture", headers=admin_headers).get_json()["files"] == []
    client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK},
                headers={"Authorization": f"Bearer {capturing}"})  # the worker opens a new file
    assert len(client.get("/_admin/capture", headers=admin_headers).get_json()["files"]) == 1
    assert client.delete("/_admin/capture", headers=admin_headers).get_json() == {"deleted": 1}
    assert captured(gateway) == []


@pytest.mark.parametrize("name", [
    "capture-20990101T000000Z-1-1.jsonl",  # the shape, but no such file
    "../zengate.db", "..%2Fzengate.db", "%2E%2E/%2E%2E/zengate.db", "/etc/passwd", "%2Fetc%2Fpasswd",
    "capture/../../zengate.db", "notes.txt",
])
def test_unknown_names_and_paths_outside_are_404(client, gateway, capturing, admin_headers, name):
    client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK},
                headers={"Authorization": f"Bearer {capturing}"})
    (Path(gateway.capture.directory) / "notes.txt").write_text("not a capture file")
    for method in ("GET", "DELETE"):
        r = client.open(f"/_admin/capture/{name}", method=method, headers=admin_headers, follow_redirects=True)
        assert r.status_code == 404, (method, name)
        assert "no capture file named" in r.get_json()["error"]["message"]
    assert (Path(gateway.capture.directory) / "notes.txt").exists()


def test_the_capture_api_needs_an_admin(client, gateway, capturing, admin_headers):
    client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK},
                headers={"Authorization": f"Bearer {capturing}"})
    [entry] = client.get("/_admin/capture", headers=admin_headers).get_json()["files"]
    for method, path in (("GET", "/_admin/capture"), ("GET", f"/_admin/capture/{entry['name']}"),
                         ("DELETE", f"/_admin/capture/{entry['name']}"), ("DELETE", "/_admin/capture"),
                         ("GET", "/_admin/capture/x")):
        r = client.open(path, method=method, headers={"Authorization": f"Bearer {capturing}"})
        assert r.status_code == 401, (method, path)
        assert "admin login required" in r.get_json()["error"]["message"]
    assert len(captured(gateway)) == 1


@pytest.mark.parametrize("key, value, says", [
    ("wire_capture", "maybe", "wire_capture: must be true or false"),
    ("capture_max_files", 0, "capture_max_files: must be at least 1"),
    ("capture_max_bytes", "lots", "capture_max_bytes: must be a whole number"),
    ("capture_body_bytes", -1, "capture_body_bytes: must be at least 0"),
])
def test_bad_capture_settings_are_refused(client, admin_headers, key, value, says):
    r = client.post("/_admin/settings", json={"key": key, "value": value}, headers=admin_headers)
    assert r.status_code == 400
    assert r.get_json()["error"]["message"].startswith(says) and r.get_json()["error"]["param"] == key
    assert client.get("/_admin/settings", headers=admin_headers).get_json()["settings"][key] != value


def test_switching_it_off_stops_the_capture_at_the_next_request(client, gateway, capturing, admin_headers):
    headers = {"Authorization": f"Bearer {capturing}"}
    client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK}, headers=headers)
    r = client.post("/_admin/settings", json={"key": "wire_capture", "value": "off"}, headers=admin_headers)
    assert r.get_json()["key"] == "wire_capture" and r.get_json()["value"] is False
    client.post("/v1/chat/completions", json={"model": "big-pickle", "messages": ASK}, headers=headers)
    assert len(captured(gateway)) == 1
    assert client.get("/_admin/capture", headers=admin_headers).get_json()["enabled"] is False
