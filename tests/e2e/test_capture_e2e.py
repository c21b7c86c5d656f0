"""Wire capture on the real gateway (gunicorn, gevent workers): switched on through the admin API,
lines written by the workers after their answers, a file downloaded through the admin API, and
``python -m zengate replay`` sending a captured request to the gateway again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import requests

from tests.support.gateway import ROOT


def ask() -> list[dict]:
    """A conversation no other request sends: its capture line is found by it."""
    return [{"role": "user", "content": f"hi {uuid.uuid4().hex}"}]


@pytest.fixture
def capturing(gw):
    gw.set_setting("wire_capture", True)
    yield gw
    gw.set_setting("wire_capture", False)
    gw.set_setting("require_auth", False)
    gw.admin("DELETE", "/_admin/capture")


def lines_of(gw) -> list[dict]:
    """Every captured line, read through the admin API (download included)."""
    found = []
    for entry in gw.admin("GET", "/_admin/capture").json()["files"]:
        r = gw.admin("GET", f"/_admin/capture/{entry['name']}")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/x-ndjson")
        found += [json.loads(line) for line in r.text.splitlines()]
    return found


def captured(gw, messages: list[dict]) -> dict:
    """The line of the request that sent ``messages``, once a worker has written it."""
    marker = messages[0]["content"]
    return gw.wait_for(lambda: next((line for line in lines_of(gw) if marker in line["client"]["body"]), None))


def replay(tmp_path, gw, line: dict, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "capture.jsonl"
    path.write_text(json.dumps({"request_id": "req_other", "client": {"method": "GET", "path": "/healthz"}}) + "\n"
                    + json.dumps(line) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENGATE_", "PORT"))}
    return subprocess.run([sys.executable, "-m", "zengate", "replay", str(path), "--request-id", line["request_id"],
                           "--url", gw.url, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_a_captured_exchange_is_replayed(capturing, tmp_path):
    gw = capturing
    messages = ask()
    r = requests.post(gw.url + "/v1/chat/completions", json={"model": "big-pickle", "messages": messages}, timeout=30)
    assert r.status_code == 200
    line = captured(gw, messages)
    assert line["status"] == 200 and line["attempts"][0]["status"] == 200
    assert json.loads(line["answer"]["body"]) == r.json()

    result = replay(tmp_path, gw, line)
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.split("\n", 1)
    assert status == "HTTP 200 OK"
    assert json.loads(body)["choices"][0]["message"]["content"] == "Hello from upstream"
    assert f"replaying {line['request_id']}: POST /v1/chat/completions to {gw.url}" in result.stderr


def test_a_captured_stream_is_replayed_as_it_comes(capturing, tmp_path):
    gw = capturing
    messages = ask()
    r = requests.post(gw.url + "/v1/messages", json={"model": "big-pickle", "messages": messages, "max_tokens": 50,
                                                     "stream": True},
                      headers={"anthropic-version": "2023-06-01"}, timeout=30)
    assert r.status_code == 200
    line = captured(gw, messages)
    assert line["stream"] is True and line["answer"]["body"] == r.text
    assert line["attempts"][0]["response"]["body"].startswith("data: ")

    result = replay(tmp_path, gw, line)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HTTP 200 OK\n")
    assert "event: message_start" in result.stdout and "event: message_stop" in result.stdout


def test_the_key_is_masked_and_given_again_for_the_replay(capturing, tmp_path):
    gw = capturing
    key = gw.admin("POST", "/_admin/api-keys", json={"name": "replay"}).json()["key"]
    gw.set_setting("require_auth", True)
    messages = ask()
    r = requests.post(gw.url + "/v1/chat/completions", json={"model": "big-pickle", "messages": messages},
                      headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200
    line = captured(gw, messages)
    assert line["client"]["headers"]["Authorization"] == "Bearer [redacted]" and key not in json.dumps(line)

    refused = replay(tmp_path, gw, line)
    assert refused.returncode == 1 and refused.stdout.startswith("HTTP 401 ")
    assert "requires an API key" in refused.stdout
    accepted = replay(tmp_path, gw, line, "--key", key)
    assert accepted.returncode == 0 and accepted.stdout.startswith("HTTP 200 OK\n"), accepted.stdout


def test_replay_says_what_is_wrong_with_its_input(gw, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENGATE_", "PORT"))}
    for args, says in (([str(path)], "the file holds no capture line"),
                       ([str(tmp_path / "absent.jsonl")], "cannot read"),
                       ([str(path), "--line", "3"], "there is no line 3")):
        result = subprocess.run([sys.executable, "-m", "zengate", "replay", *args, "--url", gw.url], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and says in result.stderr and result.stdout == ""
