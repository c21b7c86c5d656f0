"""Routing through the real gateway: fallbacks, key rotation, backends, auto routing, folding."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
import requests

from tests.support.fake_upstream import FakeUpstream, anthropic_text, error, hang, openai_text
from tests.support.gateway import GatewayProcess

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    up = FakeUpstream().start()
    tmp = tmp_path_factory.mktemp("routing")
    (tmp / "models.yaml").write_text(f"""
backends:
  alt:
    base_url: {up.url}/alt
    protocol: anthropic
    key_env: ALT_KEY
models:
  big-pickle:
    fallbacks: [glm-4.7-free, "alt:alt-model"]
  alt-model:
    backend: alt
""")
    # one worker: these tests follow one worker's decisions (tests/e2e/test_shared_state_e2e.py shares
    # rests between two)
    gw = GatewayProcess(tmp, up.url, workers=1, env={
        "ZENGATE_SETTINGS_TTL": "0", "ZENGATE_MODELS_FILE": str(tmp / "models.yaml"),
        "OPENCODE_API_KEY_1": "zen-key-1", "OPENCODE_API_KEY_2": "zen-key-2", "ALT_KEY": "alt-secret",
    }).start()
    yield gw, up
    gw.stop()
    up.stop()


@pytest.fixture
def gw(routed):
    gw, up = routed
    up.reset()
    return gw


@pytest.fixture
def up(routed):
    return routed[1]


def chat(gw, model, stream=False, **extra):
    return requests.post(gw.url + "/v1/chat/completions", timeout=30,
                         json={"model": model, "messages": HI, "stream": stream, **extra})


def last_log(gw):
    return gw.wait_for(lambda: gw.admin("GET", "/_stats/requests?limit=1").json()["requests"])[0]


def test_fallback_moves_on_before_the_first_byte(gw, up):
    up.script("big-pickle", error(500, "pickle broke", type="api_error"))
    up.script("glm-4.7-free", error(503, "glm overloaded", type="overloaded_error"))
    r = chat(gw, "big-pickle")
    assert r.status_code == 200 and r.headers["x-zengate-model"] == "alt-model"
    assert r.json()["model"] == "big-pickle"  # the client's name is echoed
    sent = [(q.path, q.model, q.header("authorization") or q.header("x-api-key")) for q in up.requests]
    # a 5xx is not about the key: the next model is tried, not the same model with another key
    assert [m for _, m, _ in sent] == ["big-pickle", "glm-4.7-free", "alt-model"]
    assert sent[-1][0] == "/alt/messages" and sent[-1][2] == "alt-secret"  # Anthropic backend, translated
    row = last_log(gw)
    attempts = json.loads(row["attempts"]) if isinstance(row.get("attempts"), str) else row["attempts"]
    assert [(a["model"], a["status"]) for a in attempts] == [
        ("big-pickle", 500), ("glm-4.7-free", 503), ("alt-model", 200)]
    assert row["status"] == 200 and row["upstream_model"] == "alt-model"


def test_stream_fallback_and_timeout(gw, up):
    gw.set_setting("upstream_read_timeout", 0.5)
    try:
        up.script("big-pickle", hang(3))
        up.script("glm-4.7-free", openai_text("from glm"))
        r = chat(gw, "big-pickle", stream=True)
        assert r.status_code == 200 and "from" in r.text and r.headers["x-zengate-model"] == "glm-4.7-free"
    finally:
        gw.set_setting("upstream_read_timeout", 300)


def test_key_rotation_under_429_with_retry_after(gw, up):
    up.script("gpt-5-nano", error(429, "slow down", headers={"retry-after": "30"}))
    r = chat(gw, "gpt-5-nano")
    assert r.status_code == 200
    first_key, second_key = (q.header("authorization") for q in up.requests)
    assert {first_key, second_key} == {"Bearer zen-key-1", "Bearer zen-key-2"}
    # the limited key rests: the same conversation now goes straight to the other key (in this worker,
    # or the other worker learns it the same way)
    for _ in range(4):
        assert chat(gw, "gpt-5-nano").status_code == 200
    later = [q.header("authorization") for q in up.requests[2:]]
    assert later == [second_key] * 4


def test_errors_without_alternatives_pass_through(gw, up):
    up.script("grok-code", error(400, "bad request upstream", type="invalid_request_error"))
    r = chat(gw, "grok-code")
    assert r.status_code == 400 and r.json()["error"]["message"] == "bad request upstream"
    assert len(up.requests) == 1  # a 400 is not retried


def test_go_model_without_a_go_key(gw, up):
    r = chat(gw, "glm-5")
    assert r.status_code == 403 and "OPENCODE_GO_API_KEY" in r.json()["error"]["message"]
    r = requests.post(gw.url + "/v1/messages", timeout=10, json={"model": "glm-5", "max_tokens": 5, "messages": HI})
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    assert up.requests == []


def test_free_auto_chooses_from_the_request(gw, up):
    r = chat(gw, "free-auto")
    assert r.status_code == 200 and r.headers["x-zengate-model"] == "big-pickle"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    r = chat(gw, "free-auto", tools=tools)
    assert r.headers["x-zengate-model"] == "big-pickle"
    r = chat(gw, "free-auto", reasoning_effort="high")
    assert r.headers["x-zengate-model"] == "mimo-v2-pro-free" and up.requests[-1].model == "mimo-v2-pro-free"
    assert last_log(gw)["model"] == "free-auto"


def test_backend_prefix_reaches_the_other_protocol(gw, up):
    up.script("alt-model", anthropic_text("hello from alt"))
    answer = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0).chat.completions.create(
        model="alt:alt-model", messages=HI)
    assert answer.choices[0].message.content == "hello from alt"
    assert up.requests[-1].path == "/alt/messages" and up.requests[-1].header("x-api-key") == "alt-secret"


def test_stream_upstream_always_folds_into_the_same_shape(gw, up):
    plain = chat(gw, "gpt-5-nano").json()
    gw.set_setting("stream_upstream", True)
    try:
        folded = chat(gw, "gpt-5-nano").json()
        assert up.requests[-1].body["stream"] is True
        message = anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0).messages.create(
            model="gpt-5-nano", max_tokens=50, messages=HI)
    finally:
        gw.set_setting("stream_upstream", False)
    assert set(folded) == set(plain) and folded["object"] == "chat.completion"
    assert folded["choices"][0]["message"] == plain["choices"][0]["message"]
    assert folded["choices"][0]["finish_reason"] == "stop" and folded["usage"]["total_tokens"] == 15
    assert message.content[0].text == "Hello from upstream" and message.usage.output_tokens == 5


def test_finished_streams_give_their_connection_back(gw, up):
    """After [DONE] (and Zen's cost frame) the upstream connection is reused, not closed."""
    for _ in range(3):
        r = chat(gw, "gpt-5-nano", stream=True)
        assert r.text.rstrip().endswith("data: [DONE]") and "cost" not in r.text
    streams = [q for q in up.requests if not q.path.endswith("/models")]  # not the model lists' refresh
    ports = {q.client[1] for q in streams}
    assert len(streams) == 3 and len(ports) == 1, ports


@pytest.mark.parametrize("model", ["gpt-5-nano", "alt-model"])  # translated from OpenAI; Anthropic upstream
def test_finished_anthropic_streams_give_their_connection_back(gw, up, model):
    """An Anthropic client's stream is read with a heartbeat helper (pings on silence); once it is
    complete, the upstream's last bytes are read too and the connection is reused, not closed."""
    for _ in range(3):
        r = requests.post(gw.url + "/v1/messages", timeout=30, headers={"anthropic-version": "2023-06-01"},
                          json={"model": model, "max_tokens": 50, "messages": HI, "stream": True})
        assert r.status_code == 200, r.text
        assert json.loads(r.text.rstrip().rsplit("data: ", 1)[1]) == {"type": "message_stop"}, r.text[-300:]
    streams = [q for q in up.requests if not q.path.endswith("/models")]  # not the model lists' refresh
    ports = {q.client[1] for q in streams}
    assert len(streams) == 3 and len(ports) == 1, [(q.path, q.client) for q in up.requests]
