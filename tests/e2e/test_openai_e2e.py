"""The real gateway (gunicorn, gevent workers) with the official openai SDK and requests."""

from __future__ import annotations

import json
import socket

import openai
import pytest
import requests

from tests.support.fake_upstream import anthropic_tool_use, error, hang, openai_text, openai_tool_calls

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "say hi"}]


def sdk(gw, key="sk-anything"):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_non_stream_through_the_sdk(gw, up):
    answer = sdk(gw).chat.completions.create(model="big-pickle", messages=HELLO, temperature=0.3)
    assert answer.choices[0].message.content == "Hello from upstream"
    assert answer.model == "big-pickle" and answer.usage.total_tokens == 15
    sent = up.requests[-1]
    assert sent.body["messages"] == HELLO and sent.body["temperature"] == 0.3
    assert sent.headers["authorization"] == "Bearer public"
    assert sent.headers["x-opencode-client"] == "cli"
    assert sent.headers["x-opencode-session"].startswith("ses_")
    assert sent.headers["x-opencode-request"].startswith("msg_")
    assert sent.headers["x-opencode-project"] == "global"


@pytest.mark.parametrize("stream", [False, True])
def test_the_sdks_parse_gets_structured_output_from_an_anthropic_upstream(gw, up, stream):
    """minimax-m2.5-free is spoken to in Anthropic's protocol, which has no response_format: the
    gateway forces a tool with the schema and gives its input back as the answer's JSON."""
    from pydantic import BaseModel

    class Book(BaseModel):
        title: str
        year: int

    up.script("minimax-m2.5-free", anthropic_tool_use([("structured_output", {"title": "Dune", "year": 1965})]))
    ask = {"model": "minimax-m2.5-free", "messages": HELLO, "response_format": Book}
    if stream:
        with sdk(gw).chat.completions.stream(**ask) as events:
            answer = events.get_final_completion()
    else:
        answer = sdk(gw).chat.completions.parse(**ask)
    assert answer.choices[0].message.parsed == Book(title="Dune", year=1965)
    assert answer.choices[0].finish_reason == "stop" and not answer.choices[0].message.tool_calls
    sent = up.requests[-1]
    assert sent.path.endswith("/messages") and sent.body["tool_choice"]["type"] == "tool"
    assert sent.body["tools"][0]["input_schema"]["properties"].keys() == {"title", "year"}


def test_stream_through_the_sdk(gw, up):
    up.script("big-pickle", openai_text("one two three four", reasoning="hmm"))
    chunks = list(sdk(gw).chat.completions.create(model="big-pickle", messages=HELLO, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    reasoning = [c.choices[0].delta.model_extra.get("reasoning_content") for c in chunks if c.choices]
    assert "hmm" in "".join(r for r in reasoning if r)  # reasoning passes through untouched
    assert all(c.usage is None for c in chunks)  # usage not asked for, not sent


def test_stream_usage_when_asked(gw, up):
    stream = sdk(gw).chat.completions.create(model="big-pickle", messages=HELLO, stream=True,
                                             stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 15


def test_tool_calls_stream_through(gw, up):
    up.script("big-pickle", openai_tool_calls([("get_weather", '{"city": "Paris"}'), ("get_time", "{}")],
                                              interleave=True))
    chunks = list(sdk(gw).chat.completions.create(model="big-pickle", messages=HELLO, stream=True))
    calls: dict[int, dict] = {}
    for c in chunks:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            slot = calls.setdefault(tc.index, {"name": "", "args": ""})
            slot["name"] += tc.function.name or ""
            slot["args"] += tc.function.arguments or ""
    assert calls == {0: {"name": "get_weather", "args": '{"city": "Paris"}'}, 1: {"name": "get_time", "args": "{}"}}


def test_first_chunk_arrives_before_the_upstream_finishes(gw, up):
    up.script("big-pickle", openai_text("a b c d e f g h", chunks=8, delay=0.25))
    with requests.post(gw.url + "/v1/chat/completions", stream=True, timeout=30,
                       json={"model": "big-pickle", "messages": HELLO, "stream": True}) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        first = next(lines)
        assert first.startswith(b"data: ")
        assert up.completed_streams == 0  # the upstream is still sending
        rest = b"\n".join(lines)
    assert rest.rstrip().endswith(b"data: [DONE]") and b"cost" not in rest
    assert up.wait_for(lambda: up.completed_streams == 1)


def test_client_disconnect_closes_the_upstream(gw, up):
    up.script("big-pickle", openai_text("x", chunks=200, delay=0.05))
    body = json.dumps({"model": "big-pickle", "messages": HELLO, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        received = b""
        while b"data: " not in received:
            received += sock.recv(4096)
        assert received.startswith(b"HTTP/1.1 200")
    # the client is gone after one event; the upstream had 200 more to send
    assert up.wait_for(lambda: up.disconnects == 1, timeout=10), "the gateway kept reading the upstream"
    assert up.completed_streams == 0
    row = gw.wait_for(lambda: [x for x in gw.admin("GET", "/_stats/requests?limit=5").json()["requests"]
                                if x["error"] == "client disconnected"])
    assert row[0]["stream"] is True


def test_upstream_errors_reach_the_sdk(gw, up):
    client = sdk(gw)
    up.script("big-pickle", error(429, "Rate limit exceeded", headers={"retry-after": "2"}))
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="big-pickle", messages=HELLO)
    assert exc.value.status_code == 429 and exc.value.response.headers["retry-after"] == "2"
    assert exc.value.body["message"] == "Rate limit exceeded"

    up.script("big-pickle", error(403, "Free models are reserved for OpenCode", type="FreeTierError"))
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(model="big-pickle", messages=HELLO, stream=True)
    assert "Go tier" in exc.value.body["message"]

    up.script("big-pickle", error(500, "upstream exploded", type="api_error"))
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="big-pickle", messages=HELLO)
    assert exc.value.body["message"] == "upstream exploded"


def test_upstream_timeout_is_504(gw, up):
    gw.set_setting("first_byte_budget", 1)
    try:
        up.script("big-pickle", hang(5))
        r = requests.post(gw.url + "/v1/chat/completions", json={"model": "big-pickle", "messages": HELLO},
                          timeout=30)
        assert r.status_code == 504
        assert r.json()["error"]["code"] == "upstream_timeout"
    finally:
        gw.set_setting("first_byte_budget", 600)


@pytest.mark.parametrize(("payload", "status", "needle"), [
    (b"{not json", 400, "not valid JSON"),
    (json.dumps({"model": "big-pickle"}).encode(), 400, "messages: required"),
    (json.dumps({"model": "big-pickle", "messages": [{"role": "user", "content": "x"}],
                 "stream": "true"}).encode(), 400, "stream: must be true or false"),
])
def test_bad_input_over_http(gw, up, payload, status, needle):
    r = requests.post(gw.url + "/v1/chat/completions", data=payload, timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == status and needle in r.json()["error"]["message"]
    assert up.requests == []


def test_key_lifecycle_with_auth_on(gw, up):
    created = gw.admin("POST", "/_admin/api-keys", json={"name": "e2e"}).json()
    key = created["key"]
    assert key.startswith("sk-zen-") and created["prefix"] == key[:13]
    listed = gw.admin("GET", "/_admin/api-keys").json()["keys"]
    assert key not in json.dumps(listed) and any(k["prefix"] == created["prefix"] for k in listed)

    gw.set_setting("require_auth", True)
    with pytest.raises(openai.AuthenticationError) as exc:
        sdk(gw, key="sk-zen-wrong").chat.completions.create(model="big-pickle", messages=HELLO)
    assert exc.value.status_code == 401 and "invalid or revoked" in exc.value.body["message"]
    r = requests.post(gw.url + "/v1/chat/completions", json={"model": "big-pickle", "messages": HELLO}, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = requests.get(gw.url + "/v1/models", timeout=10)
    assert r.status_code == 401

    answer = sdk(gw, key=key).chat.completions.create(model="big-pickle", messages=HELLO)
    assert answer.choices[0].message.content == "Hello from upstream"
    r = requests.post(gw.url + "/v1/chat/completions", json={"model": "big-pickle", "messages": HELLO},
                      headers={"x-api-key": key}, timeout=10)
    assert r.status_code == 200

    used = gw.wait_for(lambda: [k for k in gw.admin("GET", "/_admin/api-keys").json()["keys"]
                                if k["prefix"] == created["prefix"] and k["last_used_at"]])
    assert used[0]["active"] is True

    assert gw.admin("POST", "/_admin/api-keys/delete", json={"id": created["id"]}).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        sdk(gw, key=key).chat.completions.create(model="big-pickle", messages=HELLO)
    gw.set_setting("require_auth", False)
    assert sdk(gw, key="anything").chat.completions.create(model="big-pickle", messages=HELLO).choices


def test_stats_and_request_log_follow(gw, up):
    assert gw.admin("POST", "/_stats/clear").status_code == 200
    sdk(gw, key="sk-zen-abcdefghijklmnopqrstuvwxyz").chat.completions.create(model="big-pickle", messages=HELLO)
    up.script("big-pickle", error(500, "nope", type="api_error"))
    requests.post(gw.url + "/v1/chat/completions", json={"model": "big-pickle", "messages": HELLO}, timeout=10)
    stats = gw.wait_for(lambda: (s := gw.admin("GET", "/_stats").json())["total_requests"] >= 2 and s)
    assert stats["total_requests"] == 2, gw.admin("GET", "/_stats/requests").json()
    assert stats["errors"] == 1
    assert stats["input_tokens"] == 10 and stats["output_tokens"] == 5
    assert stats["average_latency_ms"] > 0 and stats["uptime_seconds"] >= 0
    page = gw.admin("GET", "/_stats/requests?limit=1&offset=1").json()
    assert page["total"] == 2 and len(page["requests"]) == 1
    ok = page["requests"][0]
    assert ok["status"] == 200 and ok["key_prefix"] == "sk-zen-abcdef"
    assert ok["output_content"] == "Hello from upstream" and ok["input_messages"] == HELLO
    assert "sk-zen-abcdefghijkl" not in json.dumps(gw.admin("GET", "/_stats/requests").json())
    bad = gw.admin("GET", "/_stats/requests?limit=1").json()["requests"][0]
    assert bad["status"] == 500 and bad["error"] == "nope"


def test_admin_and_stats_need_login(gw):
    for method, path in [("GET", "/_stats"), ("GET", "/_stats/requests"), ("POST", "/_stats/clear"),
                         ("GET", "/_admin/api-keys"), ("POST", "/_admin/api-keys"), ("GET", "/_admin/settings"),
                         ("POST", "/_admin/settings"), ("POST", "/_admin/change-password")]:
        r = requests.request(method, gw.url + path, timeout=10, headers={"Authorization": "Bearer zgs_forged"})
        assert r.status_code == 401, (method, path)
        assert "admin login required" in r.json()["error"]["message"]
    r = requests.post(gw.url + "/_admin/login", json={"password": "wrong"}, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["message"] == "wrong password"


def test_head_root_and_health_without_auth(gw):
    gw.set_setting("require_auth", True)
    try:
        assert requests.head(gw.url + "/", timeout=10).status_code == 200
        health = requests.get(gw.url + "/healthz", timeout=10).json()
        assert health["status"] == "ok" and health["database"] == "ok"
    finally:
        gw.set_setting("require_auth", False)


def test_a_keys_limits_reach_the_sdks_as_their_own_errors(gw, up):
    """The official SDKs see a key's limit as their own error types: RateLimitError with the
    limit named, PermissionDeniedError for a model the key may not use."""
    import anthropic

    created = gw.admin("POST", "/_admin/api-keys", json={"name": "kid", "rpm": 2, "models": ["big-pickle"]}).json()
    gw.set_setting("require_auth", True)
    try:
        client = sdk(gw, key=created["key"])
        claude = anthropic.Anthropic(base_url=gw.url, api_key=created["key"], max_retries=0, timeout=30)
        assert client.chat.completions.create(model="big-pickle", messages=HELLO).choices[0].message.content
        assert claude.messages.create(model="big-pickle", max_tokens=20, messages=HELLO).content
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model="big-pickle", messages=HELLO)
        assert limited.value.status_code == 429 and int(limited.value.response.headers["retry-after"]) >= 1
        assert "API key 'kid' reached its limit of 2 requests per minute" in limited.value.body["message"]
        with pytest.raises(anthropic.RateLimitError) as limited:
            claude.messages.create(model="big-pickle", max_tokens=20, messages=HELLO)
        assert "limit of 2 requests per minute" in limited.value.body["error"]["message"]
        with pytest.raises(anthropic.PermissionDeniedError) as denied:
            claude.messages.create(model="gpt-5-nano", max_tokens=20, messages=HELLO)
        assert "may not use model 'gpt-5-nano'; it may use: big-pickle" in denied.value.body["error"]["message"]
    finally:
        gw.set_setting("require_auth", False)
        gw.admin("POST", "/_admin/api-keys/delete", json={"id": created["id"]})
