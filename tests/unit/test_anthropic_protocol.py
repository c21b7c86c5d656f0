"""Anthropic error bodies and request validation (zengate.dialects.anthropic)."""

from __future__ import annotations

import copy

import pytest

from tests.support.fixtures import fixture_body, fixture_requests
from zengate.dialects.anthropic import (
    GATEWAY_SIGNATURE,
    error_body,
    is_gateway_signature,
    validate_messages_request,
    without_gateway_thinking,
)
from zengate.dialects.anthropic.request import passthrough_body
from zengate.dialects.base import Target
from zengate.dialects.errors import ProtocolError


def minimal(**overrides) -> dict:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": "hi"}]}
    body.update(overrides)
    return body


def reject(body, field_prefix: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        validate_messages_request(body)
    err = info.value
    assert err.status == 400
    assert err.message.startswith(field_prefix), err.message
    return err


# --- error bodies --------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"),
    (529, "overloaded_error"), (503, "overloaded_error"), (409, "invalid_request_error"),
    (422, "invalid_request_error"), (502, "api_error"),
])
def test_error_body_type_by_status(status, kind):
    assert error_body(status, "boom") == {"type": "error", "error": {"type": kind, "message": "boom"}}


def test_error_body_explicit_type_wins():
    assert error_body(500, "x", "overloaded_error")["error"]["type"] == "overloaded_error"


def test_protocol_error_carries_status_message_and_param():
    err = ProtocolError(413, "too big", "messages")
    assert (err.status, err.message, err.param, str(err)) == (413, "too big", "messages", "too big")


# --- real requests pass --------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "body"), fixture_requests("/v1/messages"),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_fixture_messages_requests_are_valid(name, body):
    validate_messages_request(body)


@pytest.mark.parametrize(("name", "body"), fixture_requests("/v1/messages/count_tokens"),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_fixture_count_tokens_requests_are_valid_without_max_tokens(name, body):
    validate_messages_request(body, require_max_tokens=False)
    with pytest.raises(ProtocolError, match=r"^max_tokens: required"):
        validate_messages_request(body)


def test_minimal_request_is_valid():
    validate_messages_request(minimal())


# --- bad requests name the field -------------------------------------------------------------

@pytest.mark.parametrize("body", [None, [], "text", 3])
def test_body_must_be_an_object(body):
    with pytest.raises(ProtocolError) as info:
        validate_messages_request(body)
    assert info.value.status == 400 and "JSON object" in info.value.message


@pytest.mark.parametrize(("change", "field"), [
    ({"model": None}, "model:"),
    ({"model": ""}, "model:"),
    ({"model": 7}, "model:"),
    ({"max_tokens": None}, "max_tokens: required"),
    ({"max_tokens": 0}, "max_tokens: must be a positive integer"),
    ({"max_tokens": -5}, "max_tokens:"),
    ({"max_tokens": "100"}, "max_tokens:"),
    ({"max_tokens": True}, "max_tokens:"),
    ({"max_tokens": 1.5}, "max_tokens:"),
    ({"messages": None}, "messages:"),
    ({"messages": "hi"}, "messages:"),
    ({"messages": []}, "messages: at least one message"),
    ({"system": 5}, "system:"),
    ({"system": [{"type": "image"}]}, "system.0.type:"),
    ({"tools": {"name": "x"}}, "tools: must be an array"),
    ({"tools": [{"name": "x"}]}, "tools.0.input_schema:"),
    ({"tools": [{"description": "d", "input_schema": {}}]}, "tools.0.name:"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type:"),
    ({"tool_choice": {"type": "tool"}}, "tool_choice.name:"),
    ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens:"),
    ({"thinking": {"type": "on"}}, "thinking.type:"),
    ({"temperature": "hot"}, "temperature:"),
    ({"top_k": 1.5}, "top_k:"),
    ({"stop_sequences": "END"}, "stop_sequences:"),
    ({"stream": "yes"}, "stream:"),
    ({"metadata": {"user_id": 5}}, "metadata.user_id:"),
])
def test_top_level_fields(change, field):
    body = minimal()
    for key, value in change.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    err = reject(body, field)
    assert err.param == field.split(":")[0]


@pytest.mark.parametrize(("message", "field"), [
    ("hi", "messages.1: must be an object"),
    ({"role": "tool", "content": "x"}, "messages.1.role: must be one of user, assistant, system"),
    ({"role": "user"}, "messages.1.content:"),
    ({"role": "user", "content": 5}, "messages.1.content:"),
    ({"role": "user", "content": [{"type": "video", "url": "x"}]}, "messages.1.content.0.type: unknown"),
    ({"role": "user", "content": ["just text"]}, "messages.1.content.0: must be an object"),
    ({"role": "user", "content": [{"type": "text"}]}, "messages.1.content.0.text:"),
    ({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image", "source": {
        "type": "base64", "media_type": "image/bmp", "data": "AAAA"}}]},
     "messages.1.content.1.source.media_type: must be one of image/jpeg"),
    ({"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}]},
     "messages.1.content.0.source.data:"),
    ({"role": "user", "content": [{"type": "image", "source": {"type": "ftp", "url": "x"}}]},
     "messages.1.content.0.source.type:"),
    ({"role": "user", "content": [{"type": "image", "source": {"type": "url"}}]},
     "messages.1.content.0.source.url:"),
    ({"role": "user", "content": [{"type": "document", "source": {"type": "base64", "data": "x"}}]},
     "messages.1.content.0.source.media_type:"),
    ({"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": "ls"}]},
     "messages.1.content.0.input: must be an object"),
    ({"role": "assistant", "content": [{"type": "tool_use", "name": "x", "input": {}}]},
     "messages.1.content.0.id:"),
    ({"role": "user", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]},
     "messages.1.content.0.type: tool_use blocks may only appear in assistant"),
    ({"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
     "messages.1.content.0.type: tool_result blocks may only appear in user"),
    ({"role": "user", "content": [{"type": "tool_result", "content": "x"}]},
     "messages.1.content.0.tool_use_id:"),
    ({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": 5}]},
     "messages.1.content.0.content:"),
    ({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                   "content": [{"type": "tool_use", "id": "a", "name": "b", "input": {}}]}]},
     "messages.1.content.0.content.0.type:"),
    ({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                   "content": [{"type": "image", "source": {"type": "base64",
                                                                            "media_type": "image/tiff",
                                                                            "data": "x"}}]}]},
     "messages.1.content.0.content.0.source.media_type:"),
    ({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}]},
     "messages.1.content.0.is_error:"),
    ({"role": "system", "content": [{"type": "image", "source": {"type": "url", "url": "http://x"}}]},
     "messages.1.content.0.type: system messages may only contain text"),
])
def test_message_fields(message, field):
    body = minimal(messages=[{"role": "user", "content": "hi"}, message])
    err = reject(body, field)
    assert err.param == field.split(":")[0]


def test_valid_edge_cases_are_accepted():
    body = minimal(
        system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "   "},  # blank text is the translator's job
                                         {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                                         {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                                         "data": "doc"}}]},
            {"role": "system", "content": "mid-conversation system"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xyz"},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": [{"type": "text", "text": "ok"}], "is_error": False}]},
        ],
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
               {"name": "Bash", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        thinking={"type": "adaptive"},
        output_config={"effort": "high"},
        metadata={"user_id": "x" * 150},
        stop_sequences=["END"],
        temperature=0.5,
        top_k=5,
    )
    before = copy.deepcopy(body)
    validate_messages_request(body)
    assert body == before  # validation never changes the body


# --- the gateway's thinking signature in history (Anthropic-protocol upstreams) -------------------

def ours(text: str) -> dict:
    return {"type": "thinking", "thinking": text, "signature": GATEWAY_SIGNATURE}


def test_gateway_signature_is_recognisable():
    assert is_gateway_signature(GATEWAY_SIGNATURE) and GATEWAY_SIGNATURE.startswith("zengate:")
    for other in ("", "EqQBCkYIARgCIkB", "sig_fake", None, 7, ["zengate:v1"]):
        assert not is_gateway_signature(other)


def test_history_without_the_gateways_thinking_is_left_alone():
    messages = fixture_body("cc_thinking_tool_bash.json", 2)["messages"]
    assert any(b.get("type") == "thinking" for m in messages if isinstance(m["content"], list) for b in m["content"])
    assert without_gateway_thinking(messages) is None  # an upstream's own signed thinking stays as it is
    body = fixture_body("cc_thinking_tool_bash.json", 2)
    upstream = passthrough_body(body, Target("minimax-m2.5", stream=True))
    assert upstream["messages"] is body["messages"]  # forwarded as today: nothing copied
    assert (upstream["model"], upstream["stream"]) == ("minimax-m2.5", True)


def test_the_gateways_thinking_blocks_are_dropped_for_an_anthropic_upstream():
    messages = [
        {"role": "user", "content": "run it"},
        {"role": "assistant", "content": [ours("I should run it."), {"type": "text", "text": "Running."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
        {"role": "assistant", "content": [ours("only a thought")]},
        {"role": "user", "content": "next"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "theirs", "signature": "EqQBCkYI"},
                                          {"type": "text", "text": "fine"}]},
    ]
    before = copy.deepcopy(messages)
    body = minimal(messages=messages, thinking={"type": "adaptive"})
    validate_messages_request(body)
    upstream = passthrough_body(body, Target("minimax-m2.7", stream=False))
    assert "zengate:" not in str(upstream)
    assert upstream["messages"] == [
        {"role": "user", "content": "run it"},
        {"role": "assistant", "content": [{"type": "text", "text": "Running."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
        {"role": "user", "content": "next"},  # the thinking-only turn is gone: empty content is refused
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "theirs", "signature": "EqQBCkYI"},
                                          {"type": "text", "text": "fine"}]},
    ]
    assert messages == before and body["messages"] is messages  # the client's body (logged as sent) is unchanged
    assert upstream["messages"][4] is messages[5]  # untouched turns are not copied
