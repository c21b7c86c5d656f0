"""The Gemini API surface through the app, in front of the fake (OpenAI-protocol) upstream:
generateContent, streamGenerateContent (SSE and the streamed JSON array), countTokens, the models,
keys in Google's three places, and every error in Google's shape."""

from __future__ import annotations

import json

import pytest

from tests.support.fake_upstream import error as upstream_error
from tests.support.fake_upstream import openai_tool_calls
from tests.support.fixtures import load_fixture

HELLO = {"contents": [{"role": "user", "parts": [{"text": "say hi"}]}]}
PATH = "/v1beta/models/gemini-2.5-flash"


def sse_events(data: bytes) -> list[dict]:
    return [json.loads(block[6:]) for block in data.decode().split("\n\n") if block.startswith("data: ")]


def test_generate_content_answers_one_candidate_from_the_mapped_model(client, upstream):
    r = client.post(f"{PATH}:generateContent", json=HELLO)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    [candidate] = body["candidates"]
    assert candidate["content"] == {"role": "model", "parts": [{"text": "Hello from upstream"}]}
    assert candidate["finishReason"] == "STOP"
    assert body["usageMetadata"] == {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
    assert body["modelVersion"] == "gemini-2.5-flash"
    sent = upstream.requests[-1]
    assert sent.model == "big-pickle" and sent.body["messages"] == [{"role": "user", "content": "say hi"}]


def test_stream_with_alt_sse(client):
    r = client.post(f"{PATH}:streamGenerateContent?alt=sse", json=HELLO)
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    events = sse_events(r.get_data())
    text = "".join(p.get("text", "") for e in events for p in e["candidates"][0]["content"]["parts"])
    assert text == "Hello from upstream"
    assert events[-1]["candidates"][0]["finishReason"] == "STOP" and events[-1]["usageMetadata"]["totalTokenCount"]


def test_stream_without_alt_is_one_json_array(client):
    r = client.post("/v1/models/gemini-2.5-flash:streamGenerateContent", json=HELLO)
    assert r.status_code == 200 and r.mimetype == "application/json"
    chunks = json.loads(r.get_data())
    assert isinstance(chunks, list) and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"]) == \
        "Hello from upstream"


def test_a_recorded_tool_round_trip_reaches_the_upstream_as_tool_messages(client, upstream):
    request = load_fixture("py_genai_tool_roundtrip.json")["requests"][1]
    r = client.post(request["path"], json=request["body"])
    assert r.status_code == 200, r.get_json()
    messages = upstream.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2]["tool_call_id"] == messages[1]["tool_calls"][0]["id"]
    assert json.loads(messages[2]["content"]) == {"temp_c": 21}


def test_a_function_call_comes_back_as_a_function_call_part(client, upstream):
    upstream.script("big-pickle", openai_tool_calls([("read_file", {"path": "a.txt"})]))
    r = client.post(f"{PATH}:generateContent", json={**HELLO, "tools": [{"functionDeclarations": [
        {"name": "read_file", "parameters": {"type": "OBJECT", "properties": {"path": {"type": "STRING"}}}}]}]})
    part = r.get_json()["candidates"][0]["content"]["parts"][-1]
    assert part["functionCall"]["name"] == "read_file" and part["functionCall"]["args"] == {"path": "a.txt"}
    assert part["functionCall"]["id"]
    sent_tool = upstream.requests[-1].body["tools"][0]["function"]
    assert sent_tool["parameters"] == {"type": "object", "properties": {"path": {"type": "string"}}}


def test_count_tokens_both_ways_of_asking(client):
    direct = client.post(f"{PATH}:countTokens", json=HELLO).get_json()
    wrapped = client.post(f"{PATH}:countTokens", json={"generateContentRequest": {**HELLO, "model": "x"}}).get_json()
    assert direct["totalTokens"] > 0 and wrapped["totalTokens"] == direct["totalTokens"]


def test_models_are_listed_and_looked_up_in_googles_shape(client):
    listed = client.get("/v1beta/models").get_json()["models"]
    names = [m["name"] for m in listed]
    assert "models/big-pickle" in names
    assert all(set(m["supportedGenerationMethods"]) >= {"generateContent", "countTokens"} for m in listed)
    v1 = client.get("/v1/models", headers={"x-goog-api-key": "anything"}).get_json()
    assert [m["name"] for m in v1["models"]] == names
    assert client.get("/v1/models").get_json()["object"] == "list"  # OpenAI's list for everyone else
    assert client.get("/v1beta/models/big-pickle").get_json()["name"] == "models/big-pickle"
    missing = client.get("/v1beta/models/no-such-model")
    assert missing.status_code == 404 and missing.get_json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize(("path", "body", "status", "google", "says"), [
    (f"{PATH}:generateContent", {"contents": []}, 400, "INVALID_ARGUMENT", "contents: required"),
    (f"{PATH}:generateContent", {"contents": [{"parts": [{"banana": 1}]}]}, 400, "INVALID_ARGUMENT", "unknown part"),
    (f"{PATH}:generateContent", [1, 2], 400, "INVALID_ARGUMENT", "must be a JSON object"),
    (f"{PATH}:countTokens", {"generateContentRequest": [1]}, 400, "INVALID_ARGUMENT",
     "generateContentRequest: must be an object"),
    (f"{PATH}:embedContent", HELLO, 404, "NOT_FOUND", "no such method"),
    ("/v1beta/models/:generateContent", HELLO, 404, "NOT_FOUND", "no such method"),
    ("/v1beta/nothing-here", HELLO, 404, "NOT_FOUND", ""),
])
def test_bad_calls_answer_in_googles_shape(client, path, body, status, google, says):
    r = client.post(path, json=body)
    assert r.status_code == status
    error = r.get_json()["error"]
    assert error["code"] == status and error["status"] == google and says in error["message"], error


def test_a_bad_field_is_named_as_a_field_violation(client):
    error = client.post(f"{PATH}:generateContent", json={"contents": [{"parts": "hi"}]}).get_json()["error"]
    assert error["details"][0]["fieldViolations"][0]["field"] == "contents.0.parts"


def test_keys_in_googles_three_places_and_limits_in_its_shape(client, admin_headers):
    client.post("/_admin/settings", json={"key": "require_auth", "value": True}, headers=admin_headers)
    key = client.post("/_admin/api-keys", json={"name": "cli", "rpm": 3}, headers=admin_headers).get_json()["key"]
    r = client.post(f"{PATH}:generateContent", json=HELLO)
    assert r.status_code == 401 and r.get_json()["error"]["status"] == "UNAUTHENTICATED"
    for answer in (client.post(f"{PATH}:generateContent", json=HELLO, headers={"x-goog-api-key": key}),
                   client.post(f"{PATH}:generateContent?key={key}", json=HELLO),
                   client.post(f"{PATH}:generateContent", json=HELLO, headers={"Authorization": f"Bearer {key}"})):
        assert answer.status_code == 200
        assert answer.get_json()["candidates"][0]["content"]["parts"] == [{"text": "Hello from upstream"}]
    limited = client.post(f"{PATH}:generateContent", json=HELLO, headers={"x-goog-api-key": key})
    assert limited.status_code == 429 and limited.headers["Retry-After"]
    error = limited.get_json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and "limit of 3 requests per minute" in error["message"]
    assert error["details"] == [  # Gemini CLI retries a per-minute quota, after the wait said
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"quotaId": "KeyRequestsPerMinute", "description": error["message"]}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{limited.headers['Retry-After']}s"}]
    assert client.post(f"{PATH}:generateContent?key=sk-zen-wrong", json=HELLO).status_code == 401
    assert "models/big-pickle" in [m["name"] for m in client.get(f"/v1beta/models?key={key}").get_json()["models"]]


def test_a_daily_key_limit_is_a_per_day_quota(client, admin_headers):
    client.post("/_admin/settings", json={"key": "require_auth", "value": True}, headers=admin_headers)
    key = client.post("/_admin/api-keys", json={"name": "day", "requests_per_day": 1},
                      headers=admin_headers).get_json()["key"]
    assert client.post(f"{PATH}:generateContent", json=HELLO, headers={"x-goog-api-key": key}).status_code == 200
    limited = client.post(f"{PATH}:streamGenerateContent?alt=sse", json=HELLO, headers={"x-goog-api-key": key})
    assert limited.status_code == 429 and limited.mimetype == "application/json"
    quota, retry = limited.get_json()["error"]["details"]
    assert quota["violations"][0]["quotaId"] == "KeyRequestsPerDay"  # Gemini CLI stops at once on it
    assert retry["retryDelay"] == f"{limited.headers['Retry-After']}s" and int(limited.headers["Retry-After"]) > 0


def test_an_upstream_429_keeps_its_wait_in_googles_shape(client, upstream):
    upstream.script("big-pickle", upstream_error(429, "Rate limit exceeded", headers={"retry-after": "3"}))
    r = client.post(f"{PATH}:streamGenerateContent?alt=sse", json=HELLO)
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    error = r.get_json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and "Rate limit exceeded" in error["message"]
    assert error["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}]


def test_metrics_label_gemini_routes_without_their_model_names(client, admin_headers):
    from tests.unit.test_metrics import scrape

    client.post("/v1beta/models/gemini-made-up-1:generateContent", json=HELLO)
    client.get("/v1beta/models/made-up-2")
    routes = {dict(labels).get("route") for _, labels in scrape(client, admin_headers)}
    assert {"/v1beta/models/{model}:generateContent", "/v1beta/models/{model}"} <= routes
    assert not any("made-up" in (route or "") for route in routes)
