"""Input limits beyond the body size, answered in the client's own error shape."""

from __future__ import annotations

import json

import pytest

USER = {"role": "user", "content": "hi"}


def openai_body(**extra):
    return {"model": "big-pickle", "messages": [USER], **extra}


def anthropic_body(**extra):
    return {"model": "big-pickle", "max_tokens": 16, "messages": [USER], **extra}


def openai_error(r, status=400):
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()
    assert set(body) == {"error"} and body["error"]["type"] == "invalid_request_error"
    return body["error"]


def anthropic_error(r, status=400):
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    return body["error"]


SHAPES = [
    ("/v1/chat/completions", openai_body, openai_error),
    ("/v1/messages", anthropic_body, anthropic_error),
    ("/v1/messages/count_tokens", anthropic_body, anthropic_error),
]


def nested(levels: int):
    value: object = "deep"
    for _ in range(levels):
        value = {"x": value}
    return value


def post_raw(client, path, payload: bytes):
    return client.post(path, data=payload, content_type="application/json", headers={"anthropic-version": "2023-06-01"})


@pytest.mark.parametrize("path, make, error", SHAPES)
def test_nesting_depth(client, path, make, error):
    # the body itself is level 1, so 63 nested objects under "metadata" make 64 levels: the limit
    ok = client.post(path, json=make(metadata=nested(63)))
    assert ok.status_code == 200, ok.get_data(as_text=True)
    r = client.post(path, json=make(metadata=nested(64)))
    message = error(r)["message"]
    assert "64 levels" in message and "max_json_depth" in message


@pytest.mark.parametrize("levels", [1100, 200_000])
@pytest.mark.parametrize("path, make, error", SHAPES)
def test_absurd_depth_is_a_400_not_a_500(client, path, make, error, levels):
    r = post_raw(client, path, b"[" * levels + b"]" * levels)
    assert "max_json_depth" in error(r)["message"]
    r = post_raw(client, path, b"[" * levels)  # not even valid JSON
    assert r.status_code == 400


@pytest.mark.parametrize("path, make, error", SHAPES)
def test_depth_counts_arrays_inside_strings_not(client, path, make, error):
    text = "[" * 500 + "{" * 500
    r = client.post(path, json=make(messages=[{"role": "user", "content": text}]))
    assert r.status_code == 200, r.get_data(as_text=True)


@pytest.mark.parametrize("path, make, error", SHAPES)
def test_too_many_messages(client, admin_headers, path, make, error):
    assert client.post("/_admin/settings", headers=admin_headers,
                       json={"key": "max_messages", "value": 3}).status_code == 200
    r = client.post(path, json=make(messages=[USER] * 3))
    assert r.status_code == 200, r.get_data(as_text=True)
    body = error(client.post(path, json=make(messages=[USER] * 4)))
    assert "4 given" in body["message"] and "at most 3" in body["message"] and "max_messages" in body["message"]
    if error is openai_error:
        assert body["param"] == "messages"


@pytest.mark.parametrize("path, make, error", SHAPES)
def test_too_many_tools(client, path, make, error):
    if error is openai_error:
        tool = {"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}
    else:
        tool = {"name": "t", "input_schema": {"type": "object"}}
    body = error(client.post(path, json=make(tools=[tool] * 513)))
    assert body["message"].startswith("tools: 513 given; at most 512") and "max_tools" in body["message"]


def test_defaults_and_bounds(gateway, client, admin_headers):
    assert gateway.settings.get("max_json_depth") == 64
    assert gateway.settings.get("max_messages") == 10_000
    assert gateway.settings.get("max_tools") == 512
    r = client.post("/_admin/settings", headers=admin_headers, json={"key": "max_json_depth", "value": 2})
    assert r.status_code == 400 and r.get_json()["error"]["param"] == "max_json_depth"


def test_the_default_limit_lets_a_large_ordinary_request_through(client):
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(2001)]
    r = client.post("/v1/messages/count_tokens", data=json.dumps({"model": "big-pickle", "messages": messages}),
                    content_type="application/json")
    assert r.status_code == 200


@pytest.mark.parametrize("path", ["/_admin/login", "/_admin/settings", "/_admin/api-keys", "/_admin/metrics-token",
                                  "/_admin/proxy/settings"])
def test_admin_api_answers_a_deep_body_with_a_400(client, admin_headers, path):
    deep = b"[" * 100_000 + b"]" * 100_000
    r = client.post(path, data=deep, content_type="application/json", headers=admin_headers)
    if path == "/_admin/api-keys":
        assert r.status_code == 201  # a body that is not an object means "no name", as before
    else:
        assert r.status_code == 400, r.get_data(as_text=True)
        assert "error" in r.get_json()


@pytest.mark.parametrize("levels", [3, 8, 63, 64, 65])
def test_depth_is_counted_through_lists_and_objects_alike(levels):
    from zengate.web.input_limits import too_deep

    value: object = "leaf"
    for level in range(levels):  # alternately an object and a list around the level below
        value = {"k": value, "n": 1} if level % 2 else [0, value, "s"]
    data = json.dumps(value).encode()
    assert too_deep(data, value, 64) is (levels > 64)
    assert too_deep(data, value, levels) is False and too_deep(data, value, levels - 1) is True
