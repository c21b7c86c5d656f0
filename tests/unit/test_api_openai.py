"""The OpenAI surface through the Flask test client, in front of the local fake upstream."""

from __future__ import annotations

import json

import pytest

from tests.support.fake_upstream import error, hang, html, openai_text

CHAT = "/v1/chat/completions"
HELLO = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}


def err(r):
    body = r.get_json()
    assert set(body) == {"error"} and set(body["error"]) >= {"message", "type", "code"}, body
    return body["error"]


def test_non_stream_answer_and_upstream_request(client, upstream):
    r = client.post(CHAT, json={**HELLO, "temperature": 0.2}, headers={"Authorization": "Bearer sk-client-own"})
    assert r.status_code == 200
    assert r.get_json()["choices"][0]["message"]["content"] == "Hello from upstream"
    sent = upstream.requests[-1]
    assert sent.path.endswith("/chat/completions")
    assert sent.body["temperature"] == 0.2 and "stream_options" not in sent.body
    assert sent.headers["authorization"] == "Bearer public"  # the client's own key never goes upstream
    assert "sk-client-own" not in json.dumps(dict(sent.headers))


def test_stream_cuts_after_done_and_hides_usage(client, upstream):
    r = client.post(CHAT, json={**HELLO, "stream": True})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    text = r.get_data(as_text=True)
    assert text.rstrip().endswith("data: [DONE]")
    assert "cost" not in text and '"usage"' not in text.replace('"usage": null', "")
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}


def test_stream_with_usage_asked(client):
    r = client.post(CHAT, json={**HELLO, "stream": True, "stream_options": {"include_usage": True}})
    events = [e[6:] for e in r.get_data(as_text=True).strip().split("\n\n")]
    usage_chunks = [json.loads(e) for e in events if e != "[DONE]" and json.loads(e).get("usage")]
    assert usage_chunks and usage_chunks[-1]["choices"] == []


@pytest.mark.parametrize(("body", "field"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "", "messages": []}, "model"),
    ({"model": 3, "messages": []}, "model"),
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": "hi"}, "messages"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": {}}, "tools"),
])
def test_bad_input_names_the_field(client, upstream, body, field):
    r = client.post(CHAT, json=body)
    assert r.status_code == 400
    e = err(r)
    assert e["type"] == "invalid_request_error" and e["message"].startswith(field + ":")
    assert upstream.requests == []  # nothing was forwarded


@pytest.mark.parametrize("data", ["{bad json", "", "[1, 2]", "null"])
def test_body_that_is_not_a_json_object(client, data):
    r = client.post(CHAT, data=data, content_type="application/json")
    assert r.status_code == 400
    assert err(r)["type"] == "invalid_request_error"


def test_body_over_the_limit_is_413(client, gateway, admin_headers, upstream):
    client.post("/_admin/settings", json={"key": "max_body_bytes", "value": 2048}, headers=admin_headers)
    big = {**HELLO, "messages": [{"role": "user", "content": "x" * 5000}]}
    r = client.post(CHAT, json=big)
    assert r.status_code == 413
    assert err(r)["code"] == "request_too_large" and "2048" in err(r)["message"]
    assert upstream.requests == []


@pytest.mark.parametrize(("reply", "status", "needle"), [
    (error(429, "Rate limit exceeded", headers={"retry-after": "3"}), 429, "Rate limit exceeded"),
    (error(500, "boom", type="api_error"), 500, "boom"),
    (error(401, "bad key", type="authentication_error", shape="openai"), 401, "bad key"),
    (error(400, "maximum context length is 8192 tokens", type="invalid_request_error"), 400, "maximum context"),
])
def test_upstream_errors_keep_status_and_message(client, upstream, reply, status, needle):
    upstream.script("big-pickle", reply)
    r = client.post(CHAT, json=HELLO)
    assert r.status_code == status
    assert needle in err(r)["message"]
    if status == 429:
        assert r.headers["Retry-After"] == "3"


def test_free_tier_refusal_gets_a_hint(client, upstream):
    upstream.script("big-pickle", error(403, "Free models are only available in OpenCode", type="FreeTierError"))
    for stream in (False, True):
        upstream.script("big-pickle", error(403, "Free models are only available in OpenCode", type="FreeTierError"))
        r = client.post(CHAT, json={**HELLO, "stream": stream})
        assert r.status_code == 403 and r.mimetype == "application/json"  # never a 200 stream
        message = err(r)["message"]
        assert message.startswith("Free models are only available in OpenCode")
        assert "OPENCODE_API_KEY" in message and "Go tier" in message


def test_upstream_timeout_is_504(client, gateway, admin_headers, upstream):
    client.post("/_admin/settings", json={"key": "first_byte_budget", "value": 1}, headers=admin_headers)
    upstream.script("big-pickle", hang(3))
    r = client.post(CHAT, json=HELLO)
    assert r.status_code == 504 and err(r)["code"] == "upstream_timeout"


def test_unreachable_upstream_is_502(make_app):
    app = make_app(upstream_url="http://127.0.0.1:9")  # nothing listens on the discard port
    r = app.test_client().post(CHAT, json=HELLO)
    assert r.status_code == 502 and err(r)["code"] == "upstream_unreachable"


def test_html_200_is_502(client, upstream):
    upstream.script("big-pickle", html(200, "<html><body>maintenance</body></html>"))
    r = client.post(CHAT, json=HELLO)
    assert r.status_code == 502 and "non-JSON" in err(r)["message"]


def test_unknown_route_and_method_speak_openai(client):
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and err(r)["type"] == "not_found_error"
    r = client.get(CHAT)
    assert r.status_code == 405 and "error" in r.get_json()


def test_models_live_and_fallback(client, upstream, make_app):
    r = client.get("/v1/models")
    data = r.get_json()["data"]
    assert [m["id"] for m in data] == [m["id"] for m in upstream.models]
    assert {m["id"]: m["free"] for m in data}["big-pickle"] is True
    assert not upstream.requests[-1].header("authorization")
    anthropic = client.get("/v1/models", headers={"anthropic-version": "2023-06-01"}).get_json()
    assert anthropic["has_more"] is False and anthropic["first_id"] == data[0]["id"]
    assert set(anthropic["data"][0]) >= {"type", "id", "display_name", "created_at"}

    offline = make_app(upstream_url="http://127.0.0.1:9").test_client().get("/v1/models").get_json()["data"]
    assert offline and all(m["free"] for m in offline)
    assert "big-pickle" in {m["id"] for m in offline}


def test_request_log_records_the_exchange(client, gateway, admin_headers):
    client.post(CHAT, json=HELLO, headers={"Authorization": "Bearer sk-zen-notarealkey0000000000"})
    client.post(CHAT, json={"model": "m"})
    rows = client.get("/_stats/requests?limit=10", headers=admin_headers).get_json()["requests"]
    bad, good = rows
    assert (good["status"], good["model"], good["format"], good["stream"]) == (200, "big-pickle", "openai", False)
    assert good["input_messages"] == HELLO["messages"]
    assert good["output_content"] == "Hello from upstream"
    assert (good["input_tokens"], good["output_tokens"]) == (10, 5)
    assert good["key_prefix"] == "sk-zen-notare"
    assert "sk-zen-notarealkey" not in json.dumps(rows)
    assert bad["status"] == 400 and bad["error"].startswith("messages:")


def test_a_json_answer_is_logged_once_it_has_gone_out(client, gateway, monkeypatch):
    """The record (log row, metrics, log line) is finished when the server closes the answer, not
    before its bytes go out; the latency logged still ends when the answer was ready."""
    import zengate.exchange.records

    gateway.request_log._queue.clear()
    response = client.post(CHAT, json=HELLO, buffered=False)
    assert response.status_code == 200 and not gateway.request_log._queue  # answered, not yet logged
    ready = zengate.exchange.records.time.perf_counter()
    monkeypatch.setattr(zengate.exchange.records.time, "perf_counter", lambda: ready + 60.0)  # a slow close
    assert response.get_json()["choices"][0]["message"]["content"] == "Hello from upstream"
    response.close()
    (row,) = gateway.request_log._queue
    assert (row["status"], row["model"], row["output_content"]) == (200, "big-pickle", "Hello from upstream")
    assert 0 <= row["latency_ms"] < 60_000  # up to the answer, not to its close
    response.close()
    assert len(gateway.request_log._queue) == 1  # finished once


def test_a_body_is_read_to_its_declared_length_and_no_further(client, upstream):
    body = json.dumps(HELLO).encode()
    r = client.post(CHAT, data=body, content_type="application/json", environ_overrides={"CONTENT_LENGTH": "20"})
    assert r.status_code == 400
    assert err(r)["message"].startswith("request body is not valid JSON: Unterminated string")  # 20 bytes only
    assert not [q for q in upstream.requests if q.path.endswith("/chat/completions")]


def test_health_and_root(client):
    assert client.head("/").status_code == 200
    assert client.get("/").get_json()["name"] == "zengate"
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["version"]
    assert body["shared_state"] == {"redis": "off"}  # no REDIS_URL: the instance alone
    assert client.get("/health").get_json() == body


def test_stream_first_answer_is_upstream_order(client, upstream):
    upstream.script("big-pickle", openai_text("one two three", chunks=3))
    text = client.post(CHAT, json={**HELLO, "stream": True}).get_data(as_text=True)
    contents = [json.loads(e[6:])["choices"][0]["delta"].get("content") for e in text.strip().split("\n\n")[:-1]]
    assert "".join(c for c in contents if c) == "one two three"
