"""The upstream client against mocked HTTP (responses): headers, errors, timeouts."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from zengate import ids
from zengate.settings import Settings
from zengate.upstream.client import UpstreamClient, UpstreamError, iter_body, parse_error_body

URL = "http://upstream.test/zen/v1"

# The client's own adapter (DirectAdapter) answers its direct calls, so that is what is mocked.
mocked = responses.RequestsMock(target="zengate.upstream.client.DirectAdapter.send",
                                assert_all_requests_are_fired=False)


class FakeSettings(Settings):
    def __init__(self, **values):
        super().__init__()
        self._values = values
        self._loaded_at = float("inf")

    def refresh(self, force=False):
        pass


@pytest.fixture
def client():
    return UpstreamClient(FakeSettings(opencode_session="ses_0123456789abAAAAAAAAAAAAAA"))


@mocked.activate
def test_openai_call_carries_opencode_headers_and_key(client):
    mocked.post(URL + "/chat/completions", json={"choices": []})
    client.send(URL + "/chat/completions", b"{}", key="sk-upstream", protocol="openai", stream=False).close()
    client.send(URL + "/chat/completions", b"{}", key="sk-upstream", protocol="openai", stream=True).close()
    first, second = (c.request.headers for c in mocked.calls)
    assert first["Authorization"] == "Bearer sk-upstream"
    assert "x-api-key" not in first
    assert first["x-opencode-client"] == "cli"
    assert first["x-opencode-project"] == "global"
    assert first["x-opencode-session"] == second["x-opencode-session"] == "ses_0123456789abAAAAAAAAAAAAAA"
    assert ids.is_opencode_id(first["x-opencode-request"], "msg")
    assert first["x-opencode-request"] != second["x-opencode-request"]
    assert first["User-Agent"].startswith("opencode/")
    assert second["Accept"] == "text/event-stream"


@mocked.activate
def test_anthropic_call_uses_x_api_key(client):
    mocked.post(URL + "/messages", json={"content": []})
    client.send(URL + "/messages", b"{}", key="k", protocol="anthropic", stream=False).close()
    headers = mocked.calls[0].request.headers
    assert headers["x-api-key"] == "k" and "Authorization" not in headers
    assert headers["anthropic-version"]


@mocked.activate
def test_zen_error_shape_keeps_status_message_and_retry_after(client):
    mocked.post(URL + "/chat/completions", status=429, headers={"retry-after": "7"},
                   json={"type": "error", "error": {"type": "FreeUsageLimitError", "message": "Rate limit exceeded"}})
    with pytest.raises(UpstreamError) as exc:
        client.send(URL + "/chat/completions", b"{}", key="public", protocol="openai", stream=False)
    err = exc.value
    assert (err.status, err.message, err.error_type, err.retry_after) == (
        429, "Rate limit exceeded", "FreeUsageLimitError", "7")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"message": "bad model", "type": "invalid_request_error"}}',
         ("bad model", "invalid_request_error")),
        (b'{"type":"error","error":{"type":"FreeTierError","message":"no"}}', ("no", "FreeTierError")),
        (b'{"error": "plain string"}', ("plain string", None)),
        (b'{"message": "top level"}', ("top level", None)),
        (b"<html><body>Bad gateway</body></html>", ("upstream answered HTTP 502 with a non-JSON body", None)),
        (b"", ("upstream answered HTTP 502 with a non-JSON body", None)),
        (b"overloaded", ("overloaded", None)),
    ],
)
def test_parse_error_body_shapes(body, expected):
    assert parse_error_body(502, body) == expected


@mocked.activate
def test_connection_failure_is_502_and_timeout_is_504(client):
    mocked.post(URL + "/a", body=requests.ConnectionError("refused"))
    mocked.post(URL + "/b", body=requests.ReadTimeout("slow"))
    mocked.post(URL + "/c", body=requests.ConnectTimeout("slow"))
    codes = []
    for path in ("/a", "/b", "/c"):
        with pytest.raises(UpstreamError) as exc:
            client.send(URL + path, b"{}", key="k", protocol="openai", stream=False)
        codes.append((exc.value.status, exc.value.kind))
    assert codes == [(502, "connection"), (504, "timeout"), (504, "timeout")]


@mocked.activate
def test_read_json_rejects_html_200(client):
    mocked.post(URL + "/chat/completions", body="<html>hi</html>", content_type="text/html")
    response = client.send(URL + "/chat/completions", b"{}", key="k", protocol="openai", stream=False)
    with pytest.raises(UpstreamError) as exc:
        client.read_json(response)
    assert exc.value.status == 502 and "text/html" in exc.value.message


@mocked.activate
def test_iter_body_yields_everything(client):
    payload = b"".join(b"data: " + json.dumps({"i": i}).encode() + b"\n\n" for i in range(50))
    mocked.post(URL + "/chat/completions", body=payload, content_type="text/event-stream")
    response = client.send(URL + "/chat/completions", b"{}", key="k", protocol="openai", stream=True)
    assert b"".join(iter_body(response)) == payload


@mocked.activate
def test_models_are_fetched_without_a_key(client):
    mocked.get(URL + "/models", json={"data": [{"id": "big-pickle"}]})
    assert client.get_json(URL + "/models") == {"data": [{"id": "big-pickle"}]}
    headers = mocked.calls[0].request.headers
    assert "Authorization" not in headers and "x-api-key" not in headers
