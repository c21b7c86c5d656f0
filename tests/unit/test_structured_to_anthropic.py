"""Structured output from an Anthropic-protocol upstream, which has no ``response_format``: the
request forces a tool whose input schema is the client's, and that tool's input comes back as the
answer's JSON text, whole and streamed (zengate/dialects/anthropic/request.py ``output_tool``)."""

from __future__ import annotations

import json

import pytest

from tests.support.fake_upstream import anthropic_text, anthropic_tool_use
from tests.support.fixtures import fixture_requests
from zengate.dialects import anthropic, openai, registry
from zengate.dialects.anthropic import validate_messages_request
from zengate.dialects.anthropic.request import OUTPUT_TOOL, OUTPUT_TOOL_INSTRUCTION
from zengate.dialects.anthropic.stream import Decoder
from zengate.dialects.base import Context, Target

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
ASK = [{"role": "user", "content": "Who wrote Dune? As JSON."}]
ANTHROPIC_MODEL = "minimax-m2.5-free"  # a built-in model spoken to in Anthropic's protocol


def render(body: dict) -> tuple[dict, Context]:
    context = Context("gpt-x")
    form = openai.DIALECT.parse_request({"model": "gpt-x", **body})
    return anthropic.DIALECT.render_request(form, Target("up"), context), context


def json_schema(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}


def test_a_json_schema_becomes_a_forced_tool_with_that_schema():
    out, context = render({"messages": ASK, "response_format": json_schema(PERSON), "reasoning_effort": "high",
                           "max_tokens": 32000})
    assert out["tools"] == [{"name": OUTPUT_TOOL, "description": out["tools"][0]["description"],
                             "input_schema": PERSON}]
    assert out["tool_choice"] == {"type": "tool", "name": OUTPUT_TOOL}
    assert "thinking" not in out  # Anthropic refuses thinking with a forced tool
    assert (context.output_tool, context.output_wrapped) == (OUTPUT_TOOL, False)


def test_json_object_takes_any_object_and_a_schema_of_an_array_is_wrapped():
    out, context = render({"messages": ASK, "response_format": {"type": "json_object"}})
    assert out["tools"][0]["input_schema"] == {"type": "object"} and not context.output_wrapped
    names = {"type": "array", "items": {"type": "string"}}
    out, context = render({"messages": ASK, "response_format": json_schema(names)})
    assert out["tools"][0]["input_schema"] == {"type": "object", "properties": {"value": names},
                                               "required": ["value"]}
    assert context.output_wrapped


def test_plain_text_is_left_as_it_was():
    out, context = render({"messages": ASK})
    assert "tools" not in out and "tool_choice" not in out and context.output_tool is None


def test_beside_the_requests_own_tools_the_output_tool_is_offered_not_forced():
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    out, context = render({"messages": [{"role": "system", "content": "Be brief."}, *ASK], "tools": tools,
                           "response_format": json_schema(PERSON), "tool_choice": "auto"})
    assert [t["name"] for t in out["tools"]] == ["lookup", OUTPUT_TOOL] and context.output_tool == OUTPUT_TOOL
    assert out["tool_choice"] == {"type": "auto"}  # the model stays free to call lookup first
    system = out["system"] if isinstance(out["system"], str) else " ".join(b["text"] for b in out["system"])
    assert system.startswith("Be brief.") and OUTPUT_TOOL_INSTRUCTION in system


def test_a_client_tool_of_that_name_is_left_alone():
    tools = [{"type": "function", "function": {"name": OUTPUT_TOOL, "parameters": {"type": "object"}}}]
    out, context = render({"messages": ASK, "tools": tools, "response_format": json_schema(PERSON)})
    assert [t["name"] for t in out["tools"]] == [OUTPUT_TOOL] and context.output_tool is None
    assert out["tools"][0]["input_schema"] == {"type": "object"}


def test_codex_output_schema_with_its_tools_reaches_an_anthropic_upstream():
    """The recorded `codex exec --output-schema` request: ten tools and a strict schema."""
    (_, body), = fixture_requests("/v1/responses", ("cx_output_schema",))
    context = Context("gpt-5.5")
    form = registry.get("responses").parse_request(body)
    out = anthropic.DIALECT.render_request(form, Target("up"), context)
    names = [t["name"] for t in out["tools"]]
    assert len(names) == len(form["tools"]) + 1 and names[-1] == OUTPUT_TOOL  # its tools this API can take
    assert out["tools"][-1]["input_schema"] == body["text"]["format"]["schema"]
    assert out.get("tool_choice") in (None, {"type": "auto"}) and context.output_tool == OUTPUT_TOOL
    validate_messages_request(out)


def test_the_tools_input_is_the_answers_text():
    _, context = render({"messages": ASK, "response_format": json_schema(PERSON)})
    upstream = {"id": "msg_1", "type": "message", "role": "assistant", "model": "up", "stop_reason": "tool_use",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": OUTPUT_TOOL,
                             "input": {"name": "Frank Herbert", "age": 65}}],
                "usage": {"input_tokens": 10, "output_tokens": 5}}
    answer = anthropic.DIALECT.parse_answer(upstream, context)
    assert answer["content"] == [{"type": "text", "text": '{"name": "Frank Herbert", "age": 65}'}]
    assert answer["stop_reason"] == "end_turn"
    client = openai.DIALECT.render_answer(answer, context)
    message = client["choices"][0]
    assert json.loads(message["message"]["content"]) == {"name": "Frank Herbert", "age": 65}
    assert message["finish_reason"] == "stop" and "tool_calls" not in message["message"]


def test_with_the_requests_own_tool_called_too_the_turn_stays_a_tool_turn():
    _, context = render({"messages": ASK, "response_format": json_schema(PERSON), "tools": [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]})
    upstream = {"id": "msg_1", "type": "message", "role": "assistant", "model": "up", "stop_reason": "tool_use",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}],
                "usage": {"input_tokens": 10, "output_tokens": 5}}
    answer = anthropic.DIALECT.parse_answer(upstream, context)
    assert answer["stop_reason"] == "tool_use" and answer["content"][0]["name"] == "lookup"


def test_a_wrapped_answer_is_unwrapped():
    _, context = render({"messages": ASK, "response_format": json_schema({"type": "array", "items": {}})})
    upstream = {"id": "msg_1", "type": "message", "role": "assistant", "model": "up", "stop_reason": "tool_use",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": OUTPUT_TOOL, "input": {"value": ["a", "b"]}}],
                "usage": {"input_tokens": 10, "output_tokens": 5}}
    assert anthropic.DIALECT.parse_answer(upstream, context)["content"][0]["text"] == '["a", "b"]'


def stream_events(wrapped: bool, split: int = 4) -> list[tuple[str, dict]]:
    schema = {"type": "array", "items": {}} if wrapped else PERSON
    _, context = render({"messages": ASK, "response_format": json_schema(schema), "stream": True})
    arguments = json.dumps({"value": ["a", "b"]} if wrapped else {"name": "Frank Herbert", "age": 65})
    step = -(-len(arguments) // split)
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                                "content": [], "model": "up",
                                                                "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": OUTPUT_TOOL, "input": {}}}),
        *[("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": arguments[i:i + step]}})
          for i in range(0, len(arguments), step)],
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 5}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    decoder = Decoder(context)
    out = [event for kind, data in events for event in decoder.feed_data(kind, data)]
    assert decoder.done
    return out


@pytest.mark.parametrize(("wrapped", "expected"), [(False, {"name": "Frank Herbert", "age": 65}),
                                                   (True, ["a", "b"])])
def test_a_streamed_answer_is_text_deltas(wrapped, expected):
    out = stream_events(wrapped)
    starts = [data["content_block"] for kind, data in out if kind == "content_block_start"]
    assert starts == [{"type": "text", "text": ""}]
    deltas = [data["delta"] for kind, data in out if kind == "content_block_delta"]
    assert {d["type"] for d in deltas} == {"text_delta"}
    assert len(deltas) == (1 if wrapped else 4)  # an unwrapped answer streams as it comes
    assert json.loads("".join(d["text"] for d in deltas)) == expected
    assert [data["delta"]["stop_reason"] for kind, data in out if kind == "message_delta"] == ["end_turn"]


# --- through the gateway ------------------------------------------------------------------------------

def chat(client, **body):
    return client.post("/v1/chat/completions", json={"model": ANTHROPIC_MODEL, "messages": ASK, **body})


@pytest.mark.parametrize("stream", [False, True])
def test_an_openai_client_gets_json_from_an_anthropic_upstream(client, upstream, stream):
    upstream.script(ANTHROPIC_MODEL, anthropic_tool_use([(OUTPUT_TOOL, {"name": "Frank Herbert", "age": 65})]))
    r = chat(client, response_format=json_schema(PERSON), stream=stream)
    assert r.status_code == 200, r.text
    if stream:
        chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert not any(c["choices"][0]["delta"].get("tool_calls") for c in chunks if c["choices"])
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and
                c["choices"][0]["finish_reason"]] == ["stop"]
    else:
        message = r.get_json()["choices"][0]
        text = message["message"]["content"]
        assert message["finish_reason"] == "stop" and not message["message"].get("tool_calls")
    assert json.loads(text) == {"name": "Frank Herbert", "age": 65}
    (sent,) = upstream.received("/messages", model=ANTHROPIC_MODEL)
    assert sent.body["tool_choice"] == {"type": "tool", "name": OUTPUT_TOOL}
    assert sent.body["tools"][0]["input_schema"] == PERSON and "response_format" not in sent.body


def test_without_structured_output_nothing_changes(client, upstream):
    upstream.script(ANTHROPIC_MODEL, anthropic_text("plain words"))
    r = chat(client)
    assert r.get_json()["choices"][0]["message"]["content"] == "plain words"
    (sent,) = upstream.received("/messages", model=ANTHROPIC_MODEL)
    assert "tools" not in sent.body and "tool_choice" not in sent.body


# --- an Anthropic client's structured output, to the other APIs' upstreams ----------------------------

def anthropic_ask(**extra) -> dict:
    return {"model": "claude-sonnet-5", "max_tokens": 256, "messages": ASK, **extra}


@pytest.mark.parametrize("how", ["output_config", "output_format"])
def test_an_anthropic_clients_schema_reaches_an_openai_upstream_as_response_format(how):
    fmt = {"type": "json_schema", "schema": PERSON}
    body = anthropic_ask(**({"output_config": {"format": fmt, "effort": "low"}} if how == "output_config"
                            else {"output_format": fmt}))
    form = anthropic.DIALECT.parse_request(body)
    out = openai.DIALECT.render_request(form, Target("up"), Context("claude-sonnet-5"))
    assert out["response_format"]["type"] == "json_schema"
    assert out["response_format"]["json_schema"]["schema"] == PERSON
    responses = registry.get("responses").render_request(form, Target("up"), Context("claude-sonnet-5"))
    assert responses["text"]["format"]["type"] == "json_schema" and responses["text"]["format"]["schema"] == PERSON
    # to an Anthropic upstream it stays as the client wrote it, with no forced tool
    context = Context("claude-sonnet-5")
    native = anthropic.DIALECT.render_request(form, Target("up"), context)
    assert "tools" not in native and context.output_tool is None
    assert (native.get("output_config") or {}).get("format", native.get("output_format")) == fmt


def test_an_anthropic_client_gets_json_text_from_an_openai_upstream(client, upstream):
    from tests.support.fake_upstream import openai_text

    upstream.script("big-pickle", openai_text('{"name": "Frank Herbert", "age": 65}'))
    r = client.post("/v1/messages", headers={"anthropic-version": "2023-06-01"}, json={
        **anthropic_ask(model="big-pickle"), "output_config": {"format": {"type": "json_schema", "schema": PERSON}}})
    assert r.status_code == 200, r.text
    assert json.loads(r.get_json()["content"][0]["text"]) == {"name": "Frank Herbert", "age": 65}
    (sent,) = upstream.received("/chat/completions", model="big-pickle")
    assert sent.body["response_format"]["json_schema"]["schema"] == PERSON
    assert "output_config" not in sent.body


def test_a_stream_calling_the_requests_own_tool_stays_a_tool_turn():
    _, context = render({"messages": ASK, "response_format": json_schema(PERSON), "stream": True, "tools": [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]})
    decoder = Decoder(context)
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                                "content": [], "model": "up", "usage": {}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": "{}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    out = [event for kind, data in events for event in decoder.feed_data(kind, data)]
    assert [data["content_block"]["name"] for kind, data in out if kind == "content_block_start"] == ["lookup"]
    assert [data["delta"]["type"] for kind, data in out if kind == "content_block_delta"] == ["input_json_delta"]
    assert [data["delta"]["stop_reason"] for kind, data in out if kind == "message_delta"] == ["tool_use"]
