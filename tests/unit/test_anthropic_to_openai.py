"""Anthropic client -> OpenAI upstream: requests, answers, streams (and the shared helpers)."""

from __future__ import annotations

import copy
import json
import random
import re

import pytest

from tests.support.fixtures import fixture_body, fixture_requests, needs_fixtures
from tests.support.pairs import StreamToAnthropic, request_to_openai, response_from_openai
from zengate.dialects.anthropic import GATEWAY_SIGNATURE
from zengate.dialects.errors import ProtocolError
from zengate.dialects.translate_common import (
    ToolNames,
    anthropic_usage,
    arguments_text,
    is_context_length_error,
    openai_usage,
    parse_arguments,
)

OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


# --- helpers ---------------------------------------------------------------------------------------





def body(messages, **extra) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages, **extra}


def translate(anthropic_body: dict, **kwargs) -> dict:
    out, _ = request_to_openai(anthropic_body, upstream_model="up-model", **kwargs)
    assert_valid_openai_request(out)
    return out


def assert_valid_openai_request(req: dict) -> None:
    """What an OpenAI-compatible upstream insists on."""
    assert isinstance(req["model"], str) and req["model"]
    assert isinstance(req["messages"], list) and req["messages"]
    pending: set[str] = set()
    answered_ok = True
    for k, message in enumerate(req["messages"]):
        role = message["role"]
        assert role in ("system", "user", "assistant", "tool"), message
        content = message.get("content")
        if role == "tool":
            assert message["tool_call_id"] in pending, f"tool message {k} answers no pending call"
            pending.discard(message["tool_call_id"])
            assert isinstance(content, str)
            continue
        assert not pending, f"message {k} ({role}) arrives while tool calls {pending} are unanswered"
        if "tool_calls" in message:
            assert role == "assistant"
            assert message["tool_calls"], "tool_calls: [] must never be sent"
            for call in message["tool_calls"]:
                assert call["type"] == "function"
                assert OPENAI_NAME.match(call["function"]["name"])
                assert isinstance(json.loads(call["function"]["arguments"]), dict)
                pending.add(call["id"])
        if content is None:
            assert role == "assistant" and message.get("tool_calls")
        elif isinstance(content, str):
            assert content.strip(), f"message {k} has empty text"
        else:
            assert content, f"message {k} has an empty part list"
            for part in content:
                if part["type"] == "text":
                    assert part["text"].strip()
                else:
                    assert part["type"] in ("image_url", "file")
        assert "cache_control" not in json.dumps(message)
    assert answered_ok
    for tool in req.get("tools", []):
        assert tool["type"] == "function" and OPENAI_NAME.match(tool["function"]["name"])
        assert "cache_control" not in tool and "eager_input_streaming" not in tool["function"]
    assert req.get("tools", None) != []
    if "tool_choice" in req or "parallel_tool_calls" in req:
        assert req.get("tools")


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None,
          choices: bool = True) -> dict:
    data: dict = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up"}
    data["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    if usage is not None:
        data["usage"] = usage
    return data


def tool_fragment(index: int, *, id: str | None = None, name: str | None = None, args: str | None = None) -> dict:
    fragment: dict = {"index": index}
    if id is not None:
        fragment["id"] = id
        fragment["type"] = "function"
    function = {}
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    fragment["function"] = function
    return chunk({"tool_calls": [fragment]})


USAGE = {"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127,
         "prompt_tokens_details": {"cached_tokens": 100}}


def run(chunks: list[dict], *, finish: bool = True, names: ToolNames | None = None, **kwargs):
    stream = StreamToAnthropic(client_model="claude-sonnet-4-5", names=names or ToolNames(),
                               message_id="msg_test", input_tokens_estimate=kwargs.pop("estimate", 50), **kwargs)
    events = []
    for c in chunks:
        events.extend(stream.feed(c))
    if finish:
        events.extend(stream.finish())
    return events, stream


def assert_valid_anthropic_stream(events: list[tuple[str, dict]], *, error: bool = False) -> None:
    """The event grammar Anthropic clients rely on."""
    names = [name for name, _ in events]
    for name, data in events:
        assert data["type"] == name
    if error:
        assert names and names[-1] == "error", names
        assert "message_stop" not in names and "message_delta" not in names
        assert names.count("error") == 1
        body_ = events[-1][1]
        assert set(body_["error"]) == {"type", "message"}
        if names == ["error"]:
            return
    assert names[0] == "message_start", names
    assert names.count("message_start") == 1
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["output_tokens"] == 0
    open_index = None
    open_type = None
    signed = False
    next_index = 0
    for k, (name, data) in enumerate(events[1:], start=1):
        if name == "content_block_start":
            assert open_index is None, f"event {k}: block {data['index']} starts while {open_index} is open"
            assert data["index"] == next_index, f"event {k}: index {data['index']}, expected {next_index}"
            open_index, open_type, signed = data["index"], data["content_block"]["type"], False
            next_index += 1
        elif name == "content_block_delta":
            assert data["index"] == open_index, f"event {k}: delta for a block that is not open"
            assert not signed, f"event {k}: a delta after the block's signature_delta"
            expected = {"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}
            if open_type == "thinking" and data["delta"]["type"] == "signature_delta":
                assert data["delta"]["signature"] == GATEWAY_SIGNATURE
                signed = True
            else:
                assert data["delta"]["type"] == expected[open_type], f"event {k}: {data['delta']['type']}"
        elif name == "content_block_stop":
            assert data["index"] == open_index
            # a thinking block ends as Anthropic's do: signature_delta, then content_block_stop
            assert signed or open_type != "thinking", f"event {k}: thinking block {open_index} stops unsigned"
            open_index = None
        elif name == "message_delta":
            assert open_index is None and not error
            assert names[k + 1:] == ["message_stop"], "message_delta must be followed by message_stop only"
        elif name == "message_stop":
            assert k == len(events) - 1, "nothing may follow message_stop"
        elif name == "error":
            assert k == len(events) - 1
        else:
            raise AssertionError(f"unexpected event {name}")
    if not error:
        assert names[-2:] == ["message_delta", "message_stop"], names
        assert names.count("message_delta") == 1


def collect(events: list[tuple[str, dict]]) -> dict:
    """Rebuild the message the way the Anthropic SDK does."""
    message = copy.deepcopy(events[0][1]["message"])
    partial: dict[int, str] = {}
    for name, data in events[1:]:
        if name == "content_block_start":
            message["content"].append(copy.deepcopy(data["content_block"]))
        elif name == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "content_block_stop":
            if data["index"] in partial:
                message["content"][data["index"]]["input"] = json.loads(partial[data["index"]])
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    return message


# --- requests: every real client request ------------------------------------------------------------

@needs_fixtures
@pytest.mark.parametrize(("name", "request_body"),
                         fixture_requests("/v1/messages", ("cc_", "oc_", "py_anthropic_")),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_fixture_request_translates_to_a_valid_openai_request(name, request_body):
    before = copy.deepcopy(request_body)
    out = translate(request_body, max_output_tokens=32000)
    assert request_body == before, "the client's body must not be modified"
    assert out["model"] == "up-model"
    assert out["max_tokens"] == min(request_body["max_tokens"], 32000)
    assert out.get("stream", False) is bool(request_body.get("stream"))
    client_tools = [t for t in request_body.get("tools", []) if "input_schema" in t]
    assert [t["function"]["name"] for t in out.get("tools", [])] == [t["name"] for t in client_tools]


@needs_fixtures
def test_claude_code_system_blocks_become_one_system_message_without_cache_control():
    request_body = fixture_body("cc_basic_say_hi.json", 1)
    out = translate(request_body)
    expected = "\n\n".join(b["text"] for b in request_body["system"])
    assert out["messages"][0] == {"role": "system", "content": expected}
    assert "cache_control" not in json.dumps(out)


def test_system_string():
    out = translate(body([{"role": "user", "content": "hi"}], system="You are terse."))
    assert out["messages"] == [{"role": "system", "content": "You are terse."},
                               {"role": "user", "content": "hi"}]


@needs_fixtures
def test_role_system_messages_stay_where_they_are():
    request_body = fixture_body("cc_tool_bash.json", 2)
    out = translate(request_body)
    assert [m["role"] for m in out["messages"]] == ["system", "user", "system", "assistant", "tool"]
    assert out["messages"][2]["content"] == request_body["messages"][1]["content"]
    user_texts = [b["text"] for b in request_body["messages"][0]["content"]]
    assert out["messages"][1]["content"] == "\n\n".join(user_texts)


def test_system_message_between_tool_use_and_tool_result_waits_for_the_results():
    out = translate(body([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
        {"role": "system", "content": "reminder"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
                                     {"type": "text", "text": "next"}]},
    ]))
    assert [(m["role"], m.get("content")) for m in out["messages"]] == [
        ("user", "go"), ("assistant", None), ("tool", "ok"), ("system", "reminder"), ("user", "next")]


def test_blank_text_is_never_sent():
    out = translate(body([
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": " \n "},
                                     {"type": "text", "text": "real"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "  "}]},
        {"role": "user", "content": "   "},
        {"role": "user", "content": "again"},
    ], system=[{"type": "text", "text": " "}]))
    assert out["messages"] == [{"role": "user", "content": "real"}, {"role": "user", "content": "again"}]


def test_blank_text_next_to_an_image_is_dropped_too():
    out = translate(body([{"role": "user", "content": [
        {"type": "text", "text": "\n"},
        {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}},
        {"type": "text", "text": ""}]}]))
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}]


def test_all_blank_request_is_rejected():
    with pytest.raises(ProtocolError) as info:
        request_to_openai(body([{"role": "user", "content": "  "}]), upstream_model="m")
    assert info.value.status == 400 and info.value.message.startswith("messages:")


def test_images_become_image_url_parts():
    out = translate(body([{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]}]))
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]


def test_pdf_document_becomes_a_file_part():
    out = translate(body([{"role": "user", "content": [
        {"type": "document", "title": "report.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
        {"type": "text", "text": "summarise"},
    ]}]))
    assert out["messages"][0]["content"] == [
        {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
        {"type": "text", "text": "summarise"},
    ]


@pytest.mark.parametrize("source", [
    {"type": "text", "media_type": "text/plain", "data": "plain"},
    {"type": "url", "url": "https://example.com/a.pdf"},
    {"type": "base64", "media_type": "text/csv", "data": "YSxi"},
])
def test_other_documents_are_refused(source):
    request_body = body([{"role": "user", "content": [{"type": "text", "text": "x"},
                                                      {"type": "document", "source": source}]}])
    with pytest.raises(ProtocolError) as info:
        request_to_openai(request_body, upstream_model="m")
    assert info.value.status == 400
    assert info.value.message.startswith("messages.0.content.1.source:")


@needs_fixtures
def test_claude_code_tool_round_trip():
    request_body = fixture_body("cc_tool_bash.json", 2)
    out = translate(request_body)
    assistant, tool = out["messages"][-2:]
    assert assistant == {
        "role": "assistant", "content": "I'll run that.",
        "tool_calls": [{"id": "toolu_eae4492bec01480bb1980117", "type": "function",
                        "function": {"name": "Bash",
                                     "arguments": '{"command":"echo hi","description":"Print hi"}'}}],
    }
    assert tool == {"role": "tool", "tool_call_id": "toolu_eae4492bec01480bb1980117", "content": "hi"}
    assert all("tool_calls" not in m for m in out["messages"][:-2])


def test_tool_results_first_then_the_rest_of_the_user_turn():
    out = translate(body([
        {"role": "user", "content": "list and show"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_a", "name": "ls", "input": {"path": "."}},
            {"type": "tool_use", "id": "toolu_b", "name": "screenshot", "input": {}}]},
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>keep going</system-reminder>"},
            {"type": "tool_result", "tool_use_id": "toolu_a",
             "content": [{"type": "text", "text": "a.txt"}, {"type": "text", "text": "b.txt"}]},
            {"type": "image", "source": {"type": "url", "url": "https://x/user.png"}},
            {"type": "tool_result", "tool_use_id": "toolu_b", "is_error": True, "content": [
                {"type": "text", "text": "partial"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
        ]},
    ]))
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_a", "content": "a.txt\nb.txt"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": "[tool error] partial"},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "text", "text": "<system-reminder>keep going</system-reminder>"},
            {"type": "image_url", "image_url": {"url": "https://x/user.png"}},
        ]},
    ]


def test_image_only_and_empty_tool_results_get_placeholder_text():
    out = translate(body([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_a", "name": "shot", "input": {}},
            {"type": "tool_use", "id": "toolu_b", "name": "touch", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a",
             "content": [{"type": "image", "source": {"type": "url", "url": "https://x/s.png"}}]},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": ""}]},
    ]))
    tool_a, tool_b, user = out["messages"][2:]
    assert tool_a["content"] == "(the result's images follow in the next message)"
    assert tool_b["content"] == "(no output)"
    assert user == {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/s.png"}}]}


def test_orphan_tool_result_and_unanswered_call_are_repaired():
    out = translate(body([
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_gone", "content": "old"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "a", "input": {}}]},
        {"role": "user", "content": "never mind"},
    ]))
    assert out["messages"] == [
        {"role": "user", "content": "[tool result for toolu_gone]\nold"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "a", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "(no result was provided for this tool call)"},
        {"role": "user", "content": "never mind"},
    ]


@needs_fixtures
def test_thinking_in_history_is_dropped_by_default():
    request_body = fixture_body("cc_thinking_tool_bash.json", 2)
    assert request_body["messages"][2]["content"][0]["type"] == "thinking"
    out = translate(request_body)
    assistant = out["messages"][-2]
    assert assistant["content"] == "I'll run that." and "reasoning_content" not in assistant
    assert "The user wants me to run echo hi." not in json.dumps(out)
    assert "signature" not in json.dumps(out)


@needs_fixtures
def test_thinking_in_history_as_reasoning_content():
    out = translate(fixture_body("cc_thinking_tool_bash.json", 2), reasoning_as_content=True)
    assistant = out["messages"][-2]
    assert assistant["reasoning_content"] == "The user wants me to run echo hi."
    assert assistant["content"] == "I'll run that." and len(assistant["tool_calls"]) == 1


@pytest.mark.parametrize("reasoning_as_content", [False, True])
def test_the_gateways_signature_in_history_never_goes_upstream(reasoning_as_content):
    """Claude Code sends the thinking blocks zengate made back with their signature."""
    out = translate(body([
        {"role": "user", "content": "run it"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should run it.", "signature": GATEWAY_SIGNATURE},
            {"type": "text", "text": "Running."},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Only thought.", "signature": GATEWAY_SIGNATURE}]},
        {"role": "user", "content": "and now?"},
    ]), reasoning_as_content=reasoning_as_content)
    sent = json.dumps(out)
    assert "zengate:" not in sent and "signature" not in sent
    assistant = out["messages"][1]
    assert assistant["content"] == "Running." and assistant["tool_calls"][0]["function"]["name"] == "Bash"
    if reasoning_as_content:
        assert assistant["reasoning_content"] == "I should run it."
    else:
        assert "I should run it." not in sent
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "tool", "user"]  # thinking-only turn gone


def test_redacted_thinking_and_thinking_only_turns_are_dropped():
    out = translate(body([
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "opaque"},
                                          {"type": "thinking", "thinking": "t", "signature": "s"}]},
        {"role": "user", "content": "b"},
    ]), reasoning_as_content=True)
    assert out["messages"] == [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]


# --- requests: tools ----------------------------------------------------------------------------------

TOOLS = [
    {"name": "Bash", "description": "run", "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": {"command": {"type": "string"}}, "required": ["command"], "additionalProperties": False},
     "cache_control": {"type": "ephemeral"}, "eager_input_streaming": True},
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
]


def test_tools_keep_their_schema_and_lose_anthropic_only_fields():
    out = translate(body([{"role": "user", "content": "x"}], tools=TOOLS))
    assert out["tools"] == [{"type": "function", "function": {
        "name": "Bash", "description": "run", "parameters": TOOLS[0]["input_schema"]}}]
    out["tools"][0]["function"]["parameters"]["type"] = "changed"
    assert TOOLS[0]["input_schema"]["type"] == "object", "schemas are copied, not shared"


@needs_fixtures
def test_opencode_anthropic_tools_drop_eager_input_streaming():
    request_body = fixture_body("oc_anthropic_provider.json", 1)
    out = translate(request_body)
    assert len(out["tools"]) == len(request_body["tools"]) == 10
    assert "eager_input_streaming" not in json.dumps(out["tools"])
    assert out["tools"][0]["function"]["parameters"]["$schema"].endswith("2020-12/schema")
    assert out["tool_choice"] == "auto"


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"),
    ({"type": "any"}, "required"),
    ({"type": "none"}, "none"),
    ({"type": "tool", "name": "Bash"}, {"type": "function", "function": {"name": "Bash"}}),
])
def test_tool_choice(choice, expected):
    out = translate(body([{"role": "user", "content": "x"}], tools=TOOLS[:1], tool_choice=choice))
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_disable_parallel_tool_use_only_with_tools():
    with_tools = translate(body([{"role": "user", "content": "x"}], tools=TOOLS,
                                tool_choice={"type": "auto", "disable_parallel_tool_use": True}))
    assert with_tools["parallel_tool_calls"] is False and with_tools["tool_choice"] == "auto"
    server_only = translate(body([{"role": "user", "content": "x"}], tools=TOOLS[1:],
                                 tool_choice={"type": "any", "disable_parallel_tool_use": True}))
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(server_only)


def test_illegal_tool_names_are_rewritten_deterministically_and_restored():
    long_name = "mcp__" + "very_long_server_name_" * 4 + "tool"
    tools = [{"name": "mcp__files.read file", "input_schema": {"type": "object"}},
             {"name": long_name, "input_schema": {"type": "object"}}]
    request_body = body([
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "mcp__files.read file",
                                           "input": {"p": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
    ], tools=tools, tool_choice={"type": "tool", "name": long_name})
    out, names = request_to_openai(request_body, upstream_model="m")
    again, _ = request_to_openai(request_body, upstream_model="m")
    assert out == again
    assert_valid_openai_request(out)
    wire_short, wire_long = (t["function"]["name"] for t in out["tools"])
    assert wire_short.startswith("mcp__files_read_file_") and len(wire_long) <= 64
    assert wire_short != "mcp__files.read file" and wire_long != long_name
    assert out["messages"][1]["tool_calls"][0]["function"]["name"] == wire_short
    assert out["tool_choice"] == {"type": "function", "function": {"name": wire_long}}
    answer = response_from_openai({"choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": wire_long, "arguments": "{}"}}]}}]},
        client_model="c", names=names)
    assert answer["content"][0]["name"] == long_name
    events, _ = run([tool_fragment(0, id="call_1", name=wire_short, args='{"p":2}'), chunk(finish="tool_calls")],
                    names=names)
    assert collect(events)["content"][0]["name"] == "mcp__files.read file"


def test_illegal_tool_ids_are_rewritten_consistently():
    request_body = body([
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "x" * 60, "name": "a", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x" * 60, "content": "ok"}]},
    ])
    out = translate(request_body)
    call_id = out["messages"][1]["tool_calls"][0]["id"]
    assert len(call_id) <= 40 and call_id == out["messages"][2]["tool_call_id"]


def test_tool_names_class():
    names = ToolNames()
    assert names.name_out("Bash") == "Bash" and names.name_in("Bash") == "Bash"
    wire = names.name_out("a.b")
    assert wire == ToolNames().name_out("a.b") and re.match(r"^a_b_[0-9a-f]{8}$", wire)
    assert names.name_in(wire) == "a.b" and names.renamed == {"a.b": wire}
    assert names.name_in("unknown") == "unknown"
    kimi = names.id_in("functions.Bash:0", salt="msg_1")
    assert ANTHROPIC_ID.match(kimi) and kimi != names.id_in("functions.Bash:0", salt="msg_2")
    assert names.id_in("call_abc") == "call_abc"
    assert ANTHROPIC_ID.match(names.id_in(None, salt="m")) and names.id_in("", salt="m").startswith("toolu_")
    rewritten = names.id_out("id with spaces")
    assert names.id_in(rewritten) == "id with spaces"


# --- requests: parameters --------------------------------------------------------------------------------

def test_stop_sequences_at_most_four_and_never_empty():
    out = translate(body([{"role": "user", "content": "x"}], stop_sequences=["", "a", "b", "c", "d", "e"]))
    assert out["stop"] == ["a", "b", "c", "d"]
    assert "stop" not in translate(body([{"role": "user", "content": "x"}], stop_sequences=[""]))


@needs_fixtures
def test_max_tokens_clamped_to_the_model_limit():
    request_body = fixture_body("cc_basic_say_hi.json", 1)
    assert request_body["max_tokens"] == 64000
    assert translate(request_body, max_output_tokens=32000)["max_tokens"] == 32000
    assert translate(request_body)["max_tokens"] == 64000
    assert translate(body([{"role": "user", "content": "x"}]), max_output_tokens=32000)["max_tokens"] == 1024


def test_sampling_parameters():
    out = translate(body([{"role": "user", "content": "x"}], temperature=0.2, top_p=0.9, top_k=40))
    assert (out["temperature"], out["top_p"]) == (0.2, 0.9) and "top_k" not in out


@needs_fixtures
def test_long_metadata_user_id_is_hashed():
    request_body = fixture_body("cc_basic_say_hi.json", 1)
    user_id = request_body["metadata"]["user_id"]
    assert len(user_id) > 64
    out = translate(request_body)
    assert re.match(r"^u_[0-9a-f]{40}$", out["user"])
    assert out["user"] == translate(copy.deepcopy(request_body))["user"]
    assert translate(body([{"role": "user", "content": "x"}], metadata={"user_id": "user-123"}))["user"] == "user-123"


@pytest.mark.parametrize(("thinking", "output_config", "effort"), [
    ({"type": "adaptive"}, None, "medium"),
    ({"type": "adaptive"}, {"effort": "low"}, "low"),
    ({"type": "adaptive"}, {"effort": "high"}, "high"),
    ({"type": "adaptive"}, {"effort": "max"}, "high"),
    ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
    ({"type": "enabled", "budget_tokens": 4096}, None, "medium"),
    ({"type": "enabled", "budget_tokens": 16383}, None, "medium"),
    ({"type": "enabled", "budget_tokens": 31999}, None, "high"),
    ({"type": "disabled"}, None, None),
    (None, {"effort": "high"}, None),
])
def test_thinking_to_reasoning_effort(thinking, output_config, effort):
    extra = {k: v for k, v in (("thinking", thinking), ("output_config", output_config)) if v is not None}
    out = translate(body([{"role": "user", "content": "x"}], max_tokens=32000, **extra))
    assert out.get("reasoning_effort") == effort


@needs_fixtures
def test_claude_code_haiku_budget_maps_to_high():
    assert translate(fixture_body("cc_model_haiku.json", 1))["reasoning_effort"] == "high"


def test_stream_asks_for_usage():
    out = translate(body([{"role": "user", "content": "x"}], stream=True))
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert "stream" not in translate(body([{"role": "user", "content": "x"}], stream=False))


def test_invalid_request_is_refused_before_translation():
    with pytest.raises(ProtocolError, match=r"^max_tokens: required"):
        request_to_openai({"model": "m", "messages": [{"role": "user", "content": "x"}]}, upstream_model="m")


# --- answers -------------------------------------------------------------------------------------------------

def openai_answer(message: dict, finish: str | None = "stop", usage: dict | None = None) -> dict:
    return {"id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "up",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}


def test_answer_text_and_usage_with_cached_tokens():
    answer = response_from_openai(openai_answer({"content": "Hi!"}, usage=USAGE), client_model="claude-x",
                                  names=ToolNames())
    assert re.fullmatch(r"msg_[0-9a-f]{24}", answer["id"])
    again = response_from_openai(openai_answer({"content": "Hi!"}), client_model="claude-x", names=ToolNames())
    assert again["id"] != answer["id"]  # a fresh id per answer
    assert {k: v for k, v in answer.items() if k != "id"} == {
        "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "Hi!"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 7, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 100},
    }


def test_answer_tool_calls_become_tool_use_even_when_finish_says_stop():
    answer = response_from_openai(openai_answer({"content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": '{"command":"ls"}'}},
        {"id": "functions.Read:1", "type": "function", "function": {"name": "Read", "arguments": ""}},
    ]}, finish="stop"), client_model="c", names=ToolNames())
    assert answer["stop_reason"] == "tool_use"
    first, second = answer["content"]
    assert first == {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}}
    assert second["name"] == "Read" and second["input"] == {} and ANTHROPIC_ID.match(second["id"])


@pytest.mark.parametrize(("finish", "stop"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "end_turn"),
    ("content_filter", "refusal"), (None, "end_turn"), ("something_new", "end_turn"),
])
def test_answer_finish_reason(finish, stop):
    answer = response_from_openai(openai_answer({"content": "x"}, finish=finish), client_model="c",
                                  names=ToolNames())
    assert answer["stop_reason"] == stop


@pytest.mark.parametrize("reasoning", [
    {"reasoning_content": "think"},
    {"reasoning": "think"},
    {"reasoning_details": [{"type": "reasoning.text", "text": "thi"}, {"type": "reasoning.text", "text": "nk"}]},
    {"reasoning_content": "think", "reasoning": "think", "reasoning_details": [
        {"type": "reasoning.text", "text": "think"}]},
])
def test_answer_reasoning_becomes_a_thinking_block_before_the_text(reasoning):
    answer = response_from_openai(openai_answer({"content": "done", **reasoning}), client_model="c",
                                  names=ToolNames())
    assert answer["content"] == [{"type": "thinking", "thinking": "think", "signature": GATEWAY_SIGNATURE},
                                 {"type": "text", "text": "done"}]


@pytest.mark.parametrize("message", [{"content": None}, {"content": ""}, {}])
def test_empty_answer_still_has_one_text_block(message):
    answer = response_from_openai(openai_answer(message), client_model="c", names=ToolNames())
    assert answer["content"] == [{"type": "text", "text": ""}]


def test_answer_refusal():
    answer = response_from_openai(openai_answer({"content": None, "refusal": "I can't help with that."}),
                                  client_model="c", names=ToolNames())
    assert answer["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert answer["stop_reason"] == "refusal"


def test_invalid_arguments_are_kept_not_lost():
    assert parse_arguments('{"a": 1') == {"raw_arguments": '{"a": 1'}
    assert parse_arguments("[1]") == {"raw_arguments": "[1]"}
    assert parse_arguments("") == {} and parse_arguments(None) == {}
    assert parse_arguments('{"a":1}') == {"a": 1}
    # and an OpenAI-style client gets them back as they came, not wrapped
    assert arguments_text(parse_arguments('{"a": 1')) == '{"a": 1'
    assert arguments_text({"a": 1}) == '{"a":1}' and arguments_text(None) == "{}"
    assert arguments_text({"raw_arguments": "x", "b": 2}) == '{"raw_arguments":"x","b":2}'


def test_usage_conversions():
    assert anthropic_usage(USAGE) == {"input_tokens": 20, "output_tokens": 7, "cache_creation_input_tokens": 0,
                                      "cache_read_input_tokens": 100}
    assert anthropic_usage({"prompt_tokens": 50, "completion_tokens": 1, "prompt_cache_hit_tokens": 30})[
        "cache_read_input_tokens"] == 30
    assert openai_usage({"input_tokens": 20, "output_tokens": 7, "cache_read_input_tokens": 100,
                         "cache_creation_input_tokens": 5}) == {
        "prompt_tokens": 125, "completion_tokens": 7, "total_tokens": 132,
        "prompt_tokens_details": {"cached_tokens": 100}}
    assert anthropic_usage(None)["input_tokens"] == 0


@pytest.mark.parametrize(("status", "message", "expected"), [
    (400, "This model's maximum context length is 128000 tokens", True),
    (400, "Error code: context_length_exceeded", True),
    (413, "prompt is too long: 210000 tokens > 200000 maximum", True),
    (400, "Input has too many tokens for this model", True),
    (500, "context length exceeded upstream", True),
    (429, "Rate limit: too many tokens per minute", False),
    (400, "invalid tool schema", False),
    (401, "maximum context length", False),
])
def test_is_context_length_error(status, message, expected):
    assert is_context_length_error(status, message) is expected


# --- streams -------------------------------------------------------------------------------------------------

def test_stream_text_with_usage_after_the_finish_chunk():
    events, stream = run([
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk(finish="stop"),
        chunk(usage=USAGE, choices=False),
    ], finish=False)
    assert_valid_anthropic_stream(events)
    assert events[0] == ("message_start", {"type": "message_start", "message": {
        "id": "msg_test", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 50, "output_tokens": 0, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0}}})
    assert events[1:] == [
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hel"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "lo"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"input_tokens": 20, "output_tokens": 7, "cache_creation_input_tokens": 0,
                                     "cache_read_input_tokens": 100}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    assert stream.text == "Hello" and stream.usage["cache_read_input_tokens"] == 100 and stream.done
    assert stream.finish() == [] and stream.feed(chunk({"content": "late"})) == []


def test_stream_start_can_be_sent_before_the_first_chunk():
    stream = StreamToAnthropic(client_model="c", names=ToolNames(), message_id="msg_x", input_tokens_estimate=9)
    first = stream.start()
    assert [n for n, _ in first] == ["message_start"] and first[0][1]["message"]["usage"]["input_tokens"] == 9
    assert stream.start() == []
    events = first + stream.feed(chunk({"content": "hi"})) + stream.feed(chunk(finish="stop")) + stream.finish()
    assert_valid_anthropic_stream(events)


def test_stream_finish_is_held_until_usage_arrives():
    stream = StreamToAnthropic(client_model="c", names=ToolNames(), message_id="msg_x")
    first = stream.feed(chunk({"content": "hi"}, finish="stop"))
    assert [name for name, _ in first] == ["message_start", "content_block_start", "content_block_delta"]
    assert stream.feed(chunk(choices=False)) == []  # no usage yet: still held
    last = stream.feed(chunk(usage=USAGE, choices=False))
    assert [name for name, _ in last] == ["content_block_stop", "message_delta", "message_stop"]
    assert last[1][1]["usage"]["output_tokens"] == 7


def test_stream_usage_in_the_same_chunk_as_finish():
    events, stream = run([chunk({"content": "ok"}), chunk(finish="length", usage=USAGE)], finish=False)
    assert_valid_anthropic_stream(events)
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert stream.done


def test_stream_without_usage_finishes_at_the_end_with_estimates():
    events, stream = run([chunk({"content": "ok"}), chunk(finish="stop")], estimate=321)
    assert_valid_anthropic_stream(events)
    usage = events[-2][1]["usage"]
    assert usage["input_tokens"] == 321 and usage["output_tokens"] >= 1
    assert not stream.usage_reported


def test_stream_reasoning_then_text():
    events, _ = run([
        chunk({"reasoning_content": "Let me "}),
        chunk({"reasoning_content": "think."}),
        chunk({"content": "Answer"}),
        chunk(finish="stop", usage=USAGE),
    ])
    assert_valid_anthropic_stream(events)
    message = collect(events)
    assert message["content"] == [{"type": "thinking", "thinking": "Let me think.", "signature": GATEWAY_SIGNATURE},
                                  {"type": "text", "text": "Answer"}]


def test_stream_thinking_block_ends_with_the_gateways_signature_then_text_and_tools():
    events, _ = run([
        chunk({"reasoning_content": "Let me "}),
        chunk({"reasoning_content": "think."}),
        chunk({"content": "Running it."}),
        tool_fragment(0, id="call_1", name="Bash", args='{"command": "ls"}'),
        chunk({"reasoning_content": "after the call"}),  # held until the tool block is out
        chunk(finish="tool_calls", usage=USAGE),
    ])
    assert_valid_anthropic_stream(events)
    blocks = [(name, data.get("index"), data.get("content_block", {}).get("type") or data.get("delta", {}).get("type"))
              for name, data in events[1:-2]]
    assert blocks == [
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"), ("content_block_delta", 1, "text_delta"), ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"), ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, "thinking"), ("content_block_delta", 3, "thinking_delta"),
        ("content_block_delta", 3, "signature_delta"), ("content_block_stop", 3, None),
    ]
    assert events[4][1]["delta"] == {"type": "signature_delta", "signature": GATEWAY_SIGNATURE}
    message = collect(events)
    assert [b.get("signature") for b in message["content"]] == [GATEWAY_SIGNATURE, None, None, GATEWAY_SIGNATURE]
    assert GATEWAY_SIGNATURE.startswith("zengate:")


def test_stream_thinking_cut_off_by_an_error_gets_no_signature():
    events, stream = run([chunk({"reasoning_content": "hm"})], finish=False)
    events += stream.fail(502, "the connection broke")
    assert_valid_anthropic_stream(events, error=True)
    assert "signature_delta" not in json.dumps(events)


def test_stream_reasoning_details_and_reasoning_field():
    events, _ = run([
        chunk({"reasoning": "a", "reasoning_details": [{"type": "reasoning.text", "text": "a"}]}),
        chunk({"reasoning_details": [{"type": "reasoning.text", "text": "b"}]}),
        chunk({"content": "c"}), chunk(finish="stop"),
    ])
    assert_valid_anthropic_stream(events)
    assert collect(events)["content"][0] == {"type": "thinking", "thinking": "ab", "signature": GATEWAY_SIGNATURE}


def test_stream_whitespace_only_text_never_opens_a_block():
    events, _ = run([
        chunk({"content": "\n\n"}),
        tool_fragment(0, id="call_1", name="Bash", args='{"command":"ls"}'),
        chunk(finish="tool_calls"),
    ])
    assert_valid_anthropic_stream(events)
    assert [b["type"] for b in collect(events)["content"]] == ["tool_use"]


def test_stream_leading_whitespace_is_kept_once_text_arrives():
    events, _ = run([chunk({"content": "\n"}), chunk({"content": "Hi"}), chunk(finish="stop")])
    assert collect(events)["content"] == [{"type": "text", "text": "\nHi"}]


def test_stream_tool_call_with_name_and_arguments_in_one_chunk():
    events, _ = run([
        chunk({"content": "Let me check."}),
        tool_fragment(0, id="call_1", name="Bash", args='{"command":"ls -la"}'),
        chunk(finish="tool_calls"),
        chunk(usage=USAGE, choices=False),
    ])
    assert_valid_anthropic_stream(events)
    message = collect(events)
    assert message["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls -la"}},
    ]
    assert message["stop_reason"] == "tool_use"


def test_stream_arguments_split_anywhere_stream_live():
    arguments = json.dumps({"command": "echo \"hi there\"", "timeout": 5})
    fragments = [tool_fragment(0, id="call_1", name="Bash", args="")]
    fragments += [tool_fragment(0, args=arguments[i:i + 3]) for i in range(0, len(arguments), 3)]
    events, _ = run([*fragments, chunk(finish="tool_calls")])
    assert_valid_anthropic_stream(events)
    deltas = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert len(deltas) == len(fragments) - 1, "the first call's arguments stream as they arrive"
    assert collect(events)["content"][0]["input"] == {"command": "echo \"hi there\"", "timeout": 5}


def test_stream_parallel_tool_calls_with_interleaved_fragments():
    events, _ = run([
        chunk({"content": "Reading both."}),
        tool_fragment(0, id="call_a", name="Read", args=""),
        tool_fragment(1, id="call_b", name="Read", args='{"file'),
        tool_fragment(0, args='{"file_path":'),
        tool_fragment(1, args='_path":"b.txt"}'),
        tool_fragment(2, id="call_c", name="Bash"),
        tool_fragment(0, args='"a.txt"}'),
        tool_fragment(2, args='{"command":"pwd"}'),
        chunk(finish="tool_calls"),
        chunk(usage=USAGE, choices=False),
    ], finish=False)
    assert_valid_anthropic_stream(events)
    message = collect(events)
    assert message["content"] == [
        {"type": "text", "text": "Reading both."},
        {"type": "tool_use", "id": "call_a", "name": "Read", "input": {"file_path": "a.txt"}},
        {"type": "tool_use", "id": "call_b", "name": "Read", "input": {"file_path": "b.txt"}},
        {"type": "tool_use", "id": "call_c", "name": "Bash", "input": {"command": "pwd"}},
    ]
    assert message["stop_reason"] == "tool_use"
    starts = [d for n, d in events if n == "content_block_start"]
    assert all(s["content_block"]["input"] == {} for s in starts[1:])


def test_stream_sequential_calls_each_stream_live():
    stream = StreamToAnthropic(client_model="c", names=ToolNames(), message_id="msg_x")
    stream.feed(tool_fragment(0, id="call_a", name="Read", args='{"file_path":'))
    assert [n for n, _ in stream.feed(tool_fragment(0, args='"a.txt"}'))] == ["content_block_delta"]
    switch = stream.feed(tool_fragment(1, id="call_b", name="Write", args='{"content":"x'))
    assert [(n, d["index"]) for n, d in switch] == [
        ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", 1)]
    assert switch[1][1]["content_block"]["name"] == "Write"
    more = stream.feed(tool_fragment(1, args='yz"}'))
    assert more == [("content_block_delta", {"type": "content_block_delta", "index": 1,
                                             "delta": {"type": "input_json_delta", "partial_json": 'yz"}'}})]


@pytest.mark.parametrize("seed", range(25))
def test_stream_any_interleaving_of_parallel_calls_is_valid(seed):
    rng = random.Random(seed)
    calls = {0: ("call_a", "Read", {"file_path": "/tmp/a b.txt"}),
             1: ("call_b", "Bash", {"command": "echo \"{}\"", "timeout": 10}),
             2: ("call_c", "Glob", {})}
    queues = {}
    for index, (call_id, name, args) in calls.items():
        text = json.dumps(args)
        cuts = sorted(rng.sample(range(1, len(text)), min(3, len(text) - 1)))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        queues[index] = [tool_fragment(index, id=call_id, name=name, args=pieces[0])]
        queues[index] += [tool_fragment(index, args=p) for p in pieces[1:]]
    chunks = []
    while any(queues.values()):
        index = rng.choice([i for i, q in queues.items() if q])
        chunks.append(queues[index].pop(0))
    events, _ = run([chunk({"reasoning_content": "plan"}), *chunks, chunk(finish="tool_calls", usage=USAGE)],
                    finish=False)
    assert_valid_anthropic_stream(events)
    content = collect(events)["content"]
    assert content[0]["type"] == "thinking"
    got = {b["id"]: (b["name"], b["input"]) for b in content[1:]}
    assert got == {call_id: (name, args) for call_id, name, args in calls.values()}


def test_stream_parallel_calls_in_one_chunk_and_index_reused_by_new_ids():
    both = chunk({"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "a", "arguments": '{"x":1}'}},
        {"index": 1, "id": "call_2", "type": "function", "function": {"name": "b", "arguments": '{"y":2}'}},
    ]})
    reused = chunk({"tool_calls": [
        {"index": 0, "id": "call_3", "type": "function", "function": {"name": "c", "arguments": "{}"}}]})
    events, _ = run([both, reused, chunk(finish="tool_calls")])
    assert_valid_anthropic_stream(events)
    content = collect(events)["content"]
    assert [(b["id"], b["name"], b["input"]) for b in content] == [
        ("call_1", "a", {"x": 1}), ("call_2", "b", {"y": 2}), ("call_3", "c", {})]


def test_stream_kimi_style_tool_ids_are_made_legal():
    events, _ = run([tool_fragment(0, id="functions.Bash:0", name="Bash", args="{}"), chunk(finish="tool_calls")])
    block = collect(events)["content"][0]
    assert ANTHROPIC_ID.match(block["id"]) and block["id"].startswith("functions_Bash_0_")


def test_stream_text_after_a_tool_call_is_held_until_the_end():
    events, _ = run([
        tool_fragment(0, id="call_1", name="Bash", args='{"command":'),
        chunk({"content": "Also, "}),
        tool_fragment(0, args='"ls"}'),
        chunk({"content": "done."}),
        chunk(finish="tool_calls"),
    ])
    assert_valid_anthropic_stream(events)
    assert collect(events)["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}},
        {"type": "text", "text": "Also, done."},
    ]


def test_stream_tool_use_wins_over_a_stop_finish_reason():
    events, _ = run([tool_fragment(0, id="call_1", name="a", args="{}"), chunk(finish="stop")])
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize(("finish", "stop"), [("length", "max_tokens"), ("content_filter", "refusal"),
                                              ("tool_calls", "end_turn")])
def test_stream_finish_reason_mapping(finish, stop):
    events, _ = run([chunk({"content": "x"}), chunk(finish=finish)])
    assert events[-2][1]["delta"]["stop_reason"] == stop


def test_stream_eof_without_finish_reason_is_an_error_not_end_turn():
    events, stream = run([chunk({"content": "partial"})])
    assert_valid_anthropic_stream(events, error=True)
    assert events[-1][1]["error"]["type"] == "api_error"
    assert "ended before" in events[-1][1]["error"]["message"]
    assert stream.finish() == [] and stream.feed(chunk(finish="stop")) == []


def test_stream_eof_before_anything_is_an_error_alone():
    events, _ = run([])
    assert [name for name, _ in events] == ["error"]
    assert_valid_anthropic_stream(events, error=True)


@pytest.mark.parametrize(("error_chunk", "kind"), [
    ({"error": {"message": "Provider returned error", "code": 502}}, "api_error"),
    ({"error": {"message": "slow down", "type": "rate_limit_exceeded"}}, "rate_limit_error"),
    ({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "overloaded_error"),
    ({"error": "plain string"}, "api_error"),
])
def test_stream_upstream_error_object_mid_stream(error_chunk, kind):
    stream = StreamToAnthropic(client_model="c", names=ToolNames(), message_id="msg_x")
    events = stream.feed(chunk({"content": "partial"})) + stream.feed(error_chunk)
    assert_valid_anthropic_stream(events, error=True)
    assert events[-1][1]["error"]["type"] == kind
    assert stream.feed(chunk({"content": "more"})) == [] and stream.finish() == []
    assert stream.fail(500, "x") == []


def test_stream_context_length_error_becomes_prompt_too_long():
    stream = StreamToAnthropic(client_model="c", names=ToolNames())
    events = stream.feed({"error": {"message": "maximum context length is 131072 tokens", "code": 400}})
    assert events == [("error", {"type": "error", "error": {
        "type": "invalid_request_error", "message": "prompt is too long: maximum context length is 131072 tokens"}})]


@pytest.mark.parametrize(("status", "kind"), [(529, "overloaded_error"), (504, "timeout_error"),
                                              (502, "api_error"), (429, "rate_limit_error")])
def test_stream_transport_failure(status, kind):
    stream = StreamToAnthropic(client_model="c", names=ToolNames())
    events = stream.feed(chunk({"content": "x"})) + stream.fail(status, "connection reset")
    assert_valid_anthropic_stream(events, error=True)
    assert events[-1][1]["error"] == {"type": kind, "message": "connection reset"}
    assert stream.finish() == []


def test_stream_ignores_other_choices_and_garbage():
    events, _ = run([
        {"choices": [{"index": 1, "delta": {"content": "other"}}]},
        "not a dict",
        chunk({"content": "mine"}),
        chunk(finish="stop"),
    ])
    assert_valid_anthropic_stream(events)
    assert collect(events)["content"] == [{"type": "text", "text": "mine"}]


def test_stream_with_no_content_at_all_is_still_a_valid_message():
    events, _ = run([chunk({"role": "assistant"}), chunk(finish="stop", usage=USAGE)])
    assert_valid_anthropic_stream(events)
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]


def test_assert_valid_anthropic_stream_catches_broken_streams():
    good, _ = run([chunk({"content": "x"}), chunk(finish="stop")])
    broken = [
        good[1:],  # no message_start
        [*good, ("ping", {"type": "ping"})],  # something after message_stop
        [good[0], good[1], good[3], good[1], *good[2:]],  # a block started twice, indices repeat
        [e for e in good if e[0] != "content_block_stop"],  # block never stopped
        good[:-1],  # no message_stop
    ]
    for events in broken:
        with pytest.raises(AssertionError):
            assert_valid_anthropic_stream(events)


def test_tool_schemas_pass_as_the_client_wrote_them_in_a_top_level_of_their_own():
    schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "read", "input_schema": schema}]}
    parameters = translate(body)["tools"][0]["function"]["parameters"]
    assert parameters == schema and parameters is not schema
    parameters["additionalProperties"] = False  # a later change to the upstream's copy...
    assert "additionalProperties" not in schema  # ...leaves the client's body alone
