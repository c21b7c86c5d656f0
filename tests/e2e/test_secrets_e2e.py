"""Secrets never leak (issue #9): upstream keys, sk-zen keys, admin and metrics tokens and the admin
password are absent from the gateway's log, every request-log row (admin API and the SQLite files
themselves), every error body returned and GET /metrics - after successes, refused keys, upstream
401/429/500 answers that echo the upstream key, and prompts carrying secrets. A secret pasted into
a prompt is stored as ``[redacted]`` with ``redact_stored_secrets`` on, verbatim with it off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.support.fake_upstream import error, openai_text
from tests.support.gateway import ADMIN_PASSWORD, GatewayProcess

pytestmark = pytest.mark.e2e

UPSTREAM_KEYS = ("zen-upstream-main-0bA7xQ93", "zen-upstream-one-5Kp2Wd81", "zen-upstream-two-9Tr4Hm62")
METRICS_TOKEN = "metrics-token-secret-e2e-7f3k"
WRONG_PASSWORD = "wrong-admin-password-e2e-4q"
# secrets a user might paste into a prompt: not the gateway's own, recognised by their shape
PASTED_OPENAI = "sk-proj-" + "Zr8Kq2Lm5Np9Xt3Vw7Yb1Cd4Ef6Gh0Jk"
PASTED_AWS = "AKIA" + "Z7Q2K9L4M8N3P5R6"
PASTED_GITHUB = "ghp_" + "9aB8cD7eF6gH5iJ4kL3mN2oP1qR0sTuVwXyZ"
MARK = "[redacted]"
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def secret_gw(tmp_path_factory, e2e_upstream):
    workdir = tmp_path_factory.mktemp("secrets")
    gw = GatewayProcess(workdir, e2e_upstream.url, env={
        "OPENCODE_API_KEY": UPSTREAM_KEYS[0], "OPENCODE_API_KEY_1": UPSTREAM_KEYS[1],
        "OPENCODE_API_KEY_2": UPSTREAM_KEYS[2], "ZENGATE_METRICS_TOKEN": METRICS_TOKEN,
        "ZENGATE_SETTINGS_TTL": "0", "ZENGATE_LOG_LEVEL": "debug",
    })
    gw.start()
    yield gw
    gw.stop()


def _chat(gw: GatewayProcess, content: str, headers: dict, *, stream: bool = False) -> requests.Response:
    body = {"model": "big-pickle", "stream": stream, "messages": [{"role": "user", "content": content}]}
    return requests.post(gw.url + CHAT, json=body, headers={"Connection": "close", **headers}, timeout=30)


def _messages(gw: GatewayProcess, content: str, headers: dict) -> requests.Response:
    body = {"model": "claude-sonnet-5", "max_tokens": 50, "messages": [{"role": "user", "content": content}]}
    return requests.post(gw.url + "/v1/messages", json=body, timeout=30,
                         headers={"anthropic-version": "2023-06-01", "Connection": "close", **headers})


def _stored_rows(gw: GatewayProcess, expected: int) -> list[dict]:
    """Every request-log row through the admin API: the list with bodies, and each row by id."""
    page = gw.wait_for(lambda: (p := gw.admin("GET", "/_stats/requests?limit=500&bodies=1").json())["total"]
                       >= expected and p, timeout=15)
    rows = page["requests"]
    return rows + [gw.admin("GET", f"/_stats/requests/{row['id']}").json() for row in rows]


def _database_bytes(workdir: Path) -> bytes:
    """Every file under the data directory (the SQLite database, its WAL, any spill file), raw."""
    return b"".join(path.read_bytes() for path in sorted((workdir / "data").rglob("*")) if path.is_file())


def test_no_secret_in_logs_request_log_errors_or_metrics(secret_gw: GatewayProcess, up) -> None:
    gw = secret_gw
    gw.set_setting("redact_stored_secrets", True)
    gw.set_setting("max_attempts", 1)  # one scripted upstream answer per request
    answers: list[str] = []  # every body the gateway returned

    def keep(r: requests.Response) -> requests.Response:
        answers.append(r.text)
        return r

    login = keep(requests.post(gw.url + "/_admin/login", json={"password": WRONG_PASSWORD}, timeout=10))
    assert login.status_code == 401
    token = gw.admin_headers()["Authorization"].split()[1]
    key = gw.admin("POST", "/_admin/api-keys", json={"name": "secrets-e2e"}).json()["key"]
    other = gw.admin("POST", "/_admin/api-keys", json={"name": "revoked"}).json()
    assert gw.admin("POST", "/_admin/api-keys/delete", json={"id": other["id"]}).status_code == 200
    gw.set_setting("require_auth", True)
    bearer = {"Authorization": f"Bearer {key}"}
    wrong_key = key[:-6] + "zzzzzz"
    try:
        # successes, both APIs, stream and not
        assert keep(_chat(gw, "hello", bearer)).status_code == 200
        assert "[DONE]" in keep(_chat(gw, "hello stream", bearer, stream=True)).text
        assert keep(_messages(gw, "hello anthropic", {"x-api-key": key})).status_code == 200
        # refused keys: wrong, revoked, missing, in both APIs
        assert keep(_chat(gw, "wrong key", {"Authorization": f"Bearer {wrong_key}"})).status_code == 401
        assert keep(_chat(gw, "revoked key", {"Authorization": f"Bearer {other['key']}"})).status_code == 401
        assert keep(_chat(gw, "no key", {})).status_code == 401
        assert keep(_messages(gw, "wrong key", {"x-api-key": wrong_key})).status_code == 401
        # upstream errors that echo every upstream key (as some APIs do)
        echo = "Incorrect API key provided: " + ", ".join(UPSTREAM_KEYS)
        for status, kind in ((401, "authentication_error"), (429, "rate_limit_error"), (500, "api_error")):
            up.script("big-pickle", error(status, echo, type=kind, shape="openai"))
            r = keep(_chat(gw, f"upstream {status}", bearer))
            assert r.status_code == status, r.text
            up.script("big-pickle", error(status, echo, type=kind))
            r = keep(_messages(gw, f"upstream {status} anthropic", {"x-api-key": key}))
            assert r.status_code == status, r.text
        # a prompt carrying secrets - pasted ones and the gateway's own - and an answer echoing one
        up.script("big-pickle", openai_text(f"Noted: {PASTED_OPENAI}"))
        prompt = f"my keys: {PASTED_OPENAI} {PASTED_AWS} {PASTED_GITHUB} {UPSTREAM_KEYS[1]} {key}"
        assert keep(_chat(gw, prompt, bearer)).status_code == 200
        metrics = requests.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
        assert metrics.status_code == 200
        admin_metrics = gw.admin("GET", "/metrics")
        assert admin_metrics.status_code == 200
        sent = [q.header("authorization") for q in up.received(path="/chat/completions")]
        assert f"Bearer {UPSTREAM_KEYS[0]}" in sent  # the upstream did get the key
        rows = _stored_rows(gw, 14)  # every /v1 request above
    finally:
        gw.set_setting("require_auth", False)
        gw.set_setting("max_attempts", 4)

    stored_api = json.dumps(rows, ensure_ascii=False)
    database = _database_bytes(gw.workdir)
    log = gw.log()
    secrets = {
        **{f"upstream key {i}": k for i, k in enumerate(UPSTREAM_KEYS)},
        "sk-zen key": key, "sk-zen key's secret part": key[13:], "wrong key": wrong_key,
        "revoked key": other["key"], "admin token": token, "admin password": ADMIN_PASSWORD,
        "wrong password": WRONG_PASSWORD, "metrics token": METRICS_TOKEN,
    }
    places = {"the gateway's log": log, "the request log (admin API)": stored_api,
              "error and answer bodies": "\n".join(answers), "GET /metrics": metrics.text + admin_metrics.text}
    for what, secret in secrets.items():
        for where, text in places.items():
            assert secret not in text, f"{what} found in {where}"
        assert secret.encode() not in database, f"{what} found in the database files"
    for pasted in (PASTED_OPENAI, PASTED_AWS, PASTED_GITHUB):  # redaction on: masked in the stored bodies
        assert pasted not in stored_api and pasted.encode() not in database
    prompt_rows = [r for r in rows if "my keys" in json.dumps(r.get("input_messages"))]
    assert prompt_rows and all(MARK in json.dumps(r["input_messages"]) for r in prompt_rows)
    assert all(MARK in (r.get("output_content") or "") for r in prompt_rows)
    assert key[:13] in stored_api  # the key prefix the dashboard shows stays


def test_with_redaction_off_a_pasted_secret_is_stored_verbatim(secret_gw: GatewayProcess, up) -> None:
    gw = secret_gw
    gw.set_setting("redact_stored_secrets", False)
    try:
        marker = "verbatim-check"
        r = _chat(gw, f"{marker} {PASTED_OPENAI} {PASTED_AWS}", {})
        assert r.status_code == 200
        rows = gw.wait_for(lambda: [row for row in gw.admin("GET", "/_stats/requests?limit=50&bodies=1").json()
                                    ["requests"] if marker in json.dumps(row.get("input_messages"))], timeout=15)
    finally:
        gw.set_setting("redact_stored_secrets", True)
    stored = json.dumps(rows, ensure_ascii=False)
    assert PASTED_OPENAI in stored and PASTED_AWS in stored and MARK not in stored
    assert PASTED_OPENAI.encode() in _database_bytes(gw.workdir)
    for secret in (*UPSTREAM_KEYS, METRICS_TOKEN, ADMIN_PASSWORD):  # the gateway's own: never, whatever the setting
        assert secret not in gw.log()
