"""The Anthropic surface of the real gateway, driven by the official anthropic and openai SDKs."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
import requests

from tests.conftest import load_fixture
from tests.support.fake_upstream import (
    FakeUpstream,
    anthropic_text,
    anthropic_tool_use,
    drop_after,
    error,
    openai_raw,
    openai_text,
    openai_tool_calls,
)
from tests.support.gateway import GatewayProcess
from zengate.dialects.anthropic import GATEWAY_SIGNATURE
from zengate.exchange.catalog import ANTHROPIC_BETAS

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "say hi"}]
WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def sdk(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="sk-zen-whatever", max_retries=0, timeout=30)


def raw_events(gw, body: dict, path: str = "/v1/messages?beta=true") -> list[tuple[str, dict]]:
    """POST a streaming request and return (event, data) pairs, checking every event has both lines."""
    r = requests.post(gw.url + path, json=body, timeout=30,
                      headers={"anthropic-version": "2023-06-01", "x-api-key": "sk-zen-x"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/event-stream")
    events = []
    for block in r.text.strip().split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        name, data = lines[0][7:], json.loads(lines[1][6:])
        assert data["type"] == name
        events.append((name, data))
    return events


def assert_well_formed(events: list[tuple[str, dict]]) -> None:
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names.count("message_start") == 1
    assert names[-2:] == ["message_delta", "message_stop"]
    open_index, next_index = None, 0
    for name, data in events:
        if name == "content_block_start":
            assert open_index is None and data["index"] == next_index
            open_index, next_index = data["index"], next_index + 1
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
    assert open_index is None



def test_the_sdks_parse_gets_structured_output_from_an_openai_upstream(gw, up):
    """messages.parse(output_format=...) sends output_config.format: an OpenAI-protocol upstream
    gets it as response_format, and its JSON text is what the SDK parses."""
    from pydantic import BaseModel

    class Book(BaseModel):
        title: str
        year: int

    up.script("big-pickle", openai_text('{"title": "Dune", "year": 1965}'))
    answer = sdk(gw).messages.parse(model="big-pickle", max_tokens=200, messages=HI, output_format=Book)
    assert answer.parsed_output == Book(title="Dune", year=1965)
    sent = up.requests[-1]
    assert sent.path.endswith("/chat/completions")
    assert sent.body["response_format"]["json_schema"]["schema"]["properties"].keys() == {"title", "year"}


def test_non_stream_text(gw, up):
    system = [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]
    message = sdk(gw).messages.create(model="claude-sonnet-5", max_tokens=64000, messages=HI, system=system)
    assert message.content[0].text == "Hello from upstream"
    assert message.model == "claude-sonnet-5" and message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 10 and message.usage.output_tokens == 5
    sent = up.requests[-1]
    assert sent.path.endswith("/chat/completions") and sent.body["model"] == "big-pickle"
    assert sent.body["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent.body["max_tokens"] <= 32000  # clamped to the model's output limit
    assert "anthropic-beta" not in sent.headers


def test_stream_text_with_reasoning_and_cost_frame(gw, up):
    up.script("big-pickle", openai_text("Hello there friend", reasoning="let me think", cost_frame=True))
    with sdk(gw).messages.stream(model="claude-opus-4-8", max_tokens=1024, messages=HI) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "let me think" and final.content[1].text == "Hello there friend"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5


def test_thinking_from_upstream_reasoning_is_signed_and_never_sent_back_upstream(gw, up):
    """The official SDK accumulates a thinking block made from reasoning_content with the gateway's
    signature; Claude Code-style history carrying it back reaches neither kind of upstream."""
    client = sdk(gw)
    up.script("big-pickle", openai_text("Hello there", reasoning="let me think"))
    with client.messages.stream(model="claude-opus-4-8", max_tokens=1024, messages=HI) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "let me think" and final.content[0].signature == GATEWAY_SIGNATURE

    up.script("big-pickle", openai_text("Hello there", reasoning="let me think"))
    events = raw_events(gw, {"model": "claude-opus-4-8", "max_tokens": 100, "stream": True, "messages": HI})
    assert_well_formed(events)
    thinking = [(n, d.get("delta", {}).get("type")) for n, d in events if d.get("index") == 0]
    assert thinking[-2:] == [("content_block_delta", "signature_delta"), ("content_block_stop", None)]
    assert events[len(thinking) - 1][1]["delta"]["signature"] == GATEWAY_SIGNATURE

    up.script("big-pickle", openai_text("Hello there", reasoning="let me think"))
    answer = client.messages.create(model="claude-opus-4-8", max_tokens=100, messages=HI)
    assert answer.content[0].type == "thinking" and answer.content[0].signature == GATEWAY_SIGNATURE

    history = [*HI, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
               {"role": "user", "content": "and then?"}]
    assert history[1]["content"][0]["signature"] == GATEWAY_SIGNATURE
    client.messages.create(model="claude-opus-4-8", max_tokens=100, messages=history)  # an OpenAI upstream
    sent = up.requests[-1]
    assert sent.path.endswith("/chat/completions") and [m["role"] for m in sent.body["messages"]] == [
        "user", "assistant", "user"]
    assert b"zengate:" not in sent.raw and sent.body["messages"][1]["content"] == "Hello there"

    theirs = {"type": "thinking", "thinking": "upstream's own", "signature": "sig_fake"}
    history[1]["content"].insert(0, theirs)
    message = client.messages.create(model="minimax-m2.5-free", max_tokens=100, messages=history)
    assert message.content[0].text == "Hello from upstream"
    sent = up.requests[-1]
    assert sent.path.endswith("/messages") and b"zengate:" not in sent.raw
    assert sent.body["messages"][1]["content"] == [theirs, {"type": "text", "text": "Hello there"}]


def test_recorded_claude_code_betas_reach_an_anthropic_upstream_filtered(gw, up):
    recorded = next(r for r in load_fixture("cc_interactive_tmux.json")["requests"]
                    if r["path"] == "/v1/messages" and r.get("body"))
    headers = {k: v for k, v in recorded["headers"] if k.lower() in ("anthropic-beta", "anthropic-version")}
    betas = headers["anthropic-beta"].split(",")
    assert "thinking-token-count-2026-05-13" in betas and "interleaved-thinking-2025-05-14" in betas
    body = {**recorded["body"], "model": "minimax-m2.5-free", "stream": True}
    r = requests.post(gw.url + "/v1/messages?beta=true", json=body, headers=headers, timeout=30)
    assert r.status_code == 200 and "message_stop" in r.text
    sent = up.requests[-1]
    assert sent.path.endswith("/messages")
    assert sent.header("anthropic-beta") == ",".join(b for b in betas if b in ANTHROPIC_BETAS)
    assert "thinking-token-count-2026-05-13" not in sent.header("anthropic-beta")

    r = requests.post(gw.url + "/v1/messages", json=body, timeout=30,
                      headers={**headers, "anthropic-beta": "thinking-token-count-2026-05-13,made-up-2030-01-01"})
    assert r.status_code == 200
    assert up.requests[-1].header("anthropic-beta") is None  # nothing left: no header at all


def test_models_file_anthropic_betas_are_forwarded_too(tmp_path):
    """A gateway of its own: the models file's anthropic_betas add to the built-in list."""
    upstream = FakeUpstream().start()
    (tmp_path / "models.yaml").write_text("anthropic_betas: [redact-thinking-2026-02-12]\n")
    gateway = GatewayProcess(tmp_path, upstream.url, workers=1,
                             env={"ZENGATE_MODELS_FILE": str(tmp_path / "models.yaml")})
    try:
        gateway.start_settled(upstream)
        r = requests.post(gateway.url + "/v1/messages", timeout=30, json={
            "model": "minimax-m2.5-free", "max_tokens": 10, "messages": HI}, headers={
            "anthropic-beta": "redact-thinking-2026-02-12,thinking-token-count-2026-05-13,effort-2025-11-24"})
        assert r.status_code == 200, r.text
        assert upstream.requests[-1].header("anthropic-beta") == "redact-thinking-2026-02-12,effort-2025-11-24"
    finally:
        gateway.stop()
        upstream.stop()


def test_stream_parallel_interleaved_tool_calls(gw, up):
    calls = [("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')]
    up.script("big-pickle", openai_tool_calls(calls, interleave=True, split=4))
    body = {"model": "claude-sonnet-5", "max_tokens": 1024, "stream": True, "messages": HI, "tools": [WEATHER_TOOL]}
    events = raw_events(gw, body)
    assert_well_formed(events)
    up.script("big-pickle", openai_tool_calls([("get_weather", '{"city": "Paris"}'),
                                               ("get_weather", '{"city": "Rome"}')], interleave=True, split=4))
    with sdk(gw).messages.stream(model="claude-sonnet-5", max_tokens=1024, messages=HI, tools=[WEATHER_TOOL]) as s:
        final = s.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [u.input for u in uses] == [{"city": "Paris"}, {"city": "Rome"}]
    assert final.stop_reason == "tool_use"
    sent = up.requests[-1].body
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["stream_options"]["include_usage"]


def test_tool_result_round_trip_translation(gw, up):
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"},
                                     {"type": "text", "text": "and tomorrow?"}]},
    ]
    sdk(gw).messages.create(model="claude-sonnet-5", max_tokens=100, messages=messages, tools=[WEATHER_TOOL])
    sent = up.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    fn = sent[1]["tool_calls"][0]["function"]
    assert fn["name"] == "get_weather" and json.loads(fn["arguments"]) == {"city": "Paris"}
    assert sent[2]["tool_call_id"] == sent[1]["tool_calls"][0]["id"] and sent[2]["content"] == "sunny"


def test_ping_events_while_the_upstream_is_silent(gw, up):
    gw.set_setting("stream_ping_seconds", 0.2)
    try:
        up.script("big-pickle", openai_text("slow answer", chunks=2, delay=0.9, reasoning="deep thought"))
        events = raw_events(gw, {"model": "claude-sonnet-5", "max_tokens": 10, "stream": True, "messages": HI})
    finally:
        gw.set_setting("stream_ping_seconds", 10)
    names = [n for n, _ in events]
    assert names[0] == "message_start" and "ping" in names
    assert_well_formed([e for e in events if e[0] != "ping"])
    text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    assert text == "slow answer"


def test_error_mid_stream_and_eof_without_finish(gw, up):
    up.script("big-pickle", openai_raw([
        {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "par"}}]},
        {"error": {"message": "upstream overloaded", "type": "overloaded_error"}},
    ]))
    events = raw_events(gw, {"model": "claude-sonnet-5", "max_tokens": 10, "stream": True, "messages": HI})
    assert events[-1][0] == "error" and events[-1][1]["error"]["message"] == "upstream overloaded"
    assert "message_stop" not in [n for n, _ in events]

    up.script("big-pickle", drop_after(3, openai_text("one two three four five")))
    events = raw_events(gw, {"model": "claude-sonnet-5", "max_tokens": 10, "stream": True, "messages": HI})
    assert events[-1][0] == "error" and "end_turn" not in json.dumps(events)

    up.script("big-pickle", drop_after(3, openai_text("one two three four five")))
    with pytest.raises(anthropic.APIStatusError):
        with sdk(gw).messages.stream(model="claude-sonnet-5", max_tokens=10, messages=HI) as s:
            s.get_final_message()


def test_errors_before_the_first_byte_keep_status(gw, up):
    client = sdk(gw)
    up.script("big-pickle", error(429, "Rate limit exceeded", headers={"retry-after": "4"}))
    with pytest.raises(anthropic.RateLimitError) as exc:
        client.messages.create(model="claude-sonnet-5", max_tokens=10, messages=HI, stream=True)
    assert exc.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit exceeded"}}
    assert exc.value.response.headers["retry-after"] == "4"

    too_long = "This model's maximum context length is 8192 tokens"
    up.script("big-pickle", error(400, too_long, type="invalid_request_error"))
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model="claude-sonnet-5", max_tokens=10, messages=HI)
    assert exc.value.body["error"]["message"].startswith("prompt is too long")

    up.script("big-pickle", error(403, "Free models are for OpenCode only", type="FreeTierError"))
    with pytest.raises(anthropic.PermissionDeniedError) as exc:
        client.messages.create(model="claude-sonnet-5", max_tokens=10, messages=HI)
    assert exc.value.body["error"]["type"] == "permission_error" and "Go tier" in exc.value.body["error"]["message"]


@pytest.mark.parametrize(("body", "needle"), [
    ({"model": "m", "messages": HI}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": "hi"}, "messages"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "hologram"}]}]},
     "messages.0.content.0"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": "AAAA"}}]}]},
     "media_type"),
])
def test_bad_input_is_an_anthropic_400(gw, up, body, needle):
    r = requests.post(gw.url + "/v1/messages", json=body, timeout=10, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 400
    err = r.json()
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert needle in err["error"]["message"]
    assert up.requests == []


def test_count_tokens(gw, up):
    client = sdk(gw)
    plain = client.messages.count_tokens(model="claude-sonnet-5", messages=HI).input_tokens
    tooled = client.messages.count_tokens(model="claude-sonnet-5", messages=HI, tools=[WEATHER_TOOL]).input_tokens
    assert 0 < plain < tooled
    r = requests.post(gw.url + "/v1/messages/count_tokens?beta=true", json={"model": "m"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert up.requests == []  # estimated locally


def test_anthropic_protocol_model_passes_through(gw, up):
    up.script("minimax-m2.5-free", anthropic_text("passthrough works"))
    message = anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0, default_headers={
        "anthropic-beta": "context-1m-2025-08-07"}).messages.create(
        model="minimax-m2.5-free", max_tokens=100, messages=HI, metadata={"user_id": "u1"})
    assert message.content[0].text == "passthrough works"
    sent = up.requests[-1]
    assert sent.path.endswith("/messages") and sent.headers["x-api-key"] == "public"
    assert sent.headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert sent.body["metadata"] == {"user_id": "u1"} and sent.body["max_tokens"] == 100
    up.script("minimax-m2.5-free", anthropic_tool_use([("get_weather", {"city": "Oslo"})], text="checking"))
    with sdk(gw).messages.stream(model="minimax-m2.5-free", max_tokens=100, messages=HI, tools=[WEATHER_TOOL]) as s:
        final = s.get_final_message()
    assert final.content[-1].input == {"city": "Oslo"} and final.stop_reason == "tool_use"


def test_openai_client_on_an_anthropic_protocol_model(gw, up):
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
    up.script("minimax-m2.5-free", anthropic_text("translated back", thinking="hmm"))
    answer = client.chat.completions.create(model="minimax-m2.5-free", messages=HI)
    assert answer.choices[0].message.content == "translated back"
    sent = up.requests[-1]
    assert sent.path.endswith("/messages") and sent.headers["x-api-key"] == "public"
    assert [m["role"] for m in sent.body["messages"]] == ["user"]
    assert json.dumps(sent.body["messages"][0]["content"]).count("say hi") == 1 and sent.body["max_tokens"] > 0
    up.script("minimax-m2.5-free", anthropic_tool_use([("get_weather", {"city": "Lima"})]))
    chunks = list(client.chat.completions.create(model="minimax-m2.5-free", messages=HI, stream=True,
                                                 stream_options={"include_usage": True}, tools=[{
            "type": "function", "function": {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}}]))
    fragments = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    args = "".join(tc.function.arguments or "" for tc in fragments)
    assert json.loads(args) == {"city": "Lima"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage is not None


@pytest.mark.parametrize("name", ["cc_basic_say_hi.json", "cc_tool_bash.json", "cc_thinking_tool_bash.json",
                                  "cc_model_haiku.json", "oc_anthropic_provider.json"])
def test_recorded_client_requests_stream_cleanly(gw, up, name):
    for recorded in load_fixture(name)["requests"]:
        if recorded["method"] != "POST" or not recorded["path"].startswith("/v1/messages") \
                or "count_tokens" in recorded["path"]:
            continue
        body = recorded["body"]
        body_stream = {**body, "stream": True}
        events = raw_events(gw, body_stream, path=recorded["full_path"])
        assert_well_formed(events)
        assert events[0][1]["message"]["model"] == body["model"]
    assert up.requests, "no request reached the upstream"
