"""OpenAI client -> Anthropic upstream: requests, answers, streams."""

from __future__ import annotations

import copy
import re

import pytest

from tests.support.fixtures import fixture_body, fixture_requests, needs_fixtures
from tests.support.pairs import StreamToOpenAI, request_to_anthropic, request_to_openai, response_from_anthropic
from zengate.dialects.anthropic import validate_messages_request
from zengate.dialects.errors import ProtocolError
from zengate.dialects.translate_common import ToolNames

ANTHROPIC_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


# --- helpers ---------------------------------------------------------------------------------------





def chat(messages, **extra) -> dict:
    return {"model": "gpt-4o", "messages": messages, **extra}


def translate(openai_body: dict, **kwargs) -> dict:
    out, _ = request_to_anthropic(openai_body, upstream_model="up-model", **kwargs)
    assert_valid_anthropic_request(out)
    return out


def assert_valid_anthropic_request(req: dict) -> None:
    """What the Messages API insists on."""
    validate_messages_request(req)
    messages = req["messages"]
    assert messages[0]["role"] == "user"
    for k, message in enumerate(messages):
        assert message["role"] in ("user", "assistant")
        if k:
            assert message["role"] != messages[k - 1]["role"], "roles must alternate"
        assert message["content"], f"message {k} is empty"
        kinds = [b["type"] for b in message["content"]]
        if "tool_result" in kinds:
            assert message["role"] == "user"
            first_other = next((i for i, t in enumerate(kinds) if t != "tool_result"), len(kinds))
            assert "tool_result" not in kinds[first_other:], "tool_result blocks must come first"
            previous = {b["id"] for b in messages[k - 1]["content"] if b["type"] == "tool_use"}
            assert {b["tool_use_id"] for b in message["content"] if b["type"] == "tool_result"} <= previous
        for block in message["content"]:
            if block["type"] == "text":
                assert block["text"].strip(), "text blocks must not be blank"
            if block["type"] == "tool_use":
                assert ANTHROPIC_ID.match(block["id"]) and ANTHROPIC_NAME.match(block["name"])
                following = messages[k + 1]["content"] if k + 1 < len(messages) else []
                assert block["id"] in {b.get("tool_use_id") for b in following}, "tool_use without tool_result"
    for tool in req.get("tools", []):
        assert ANTHROPIC_NAME.match(tool["name"]) and tool["input_schema"]["type"] == "object"
    if "thinking" in req:
        assert MIN_BUDGET <= req["thinking"]["budget_tokens"] < req["max_tokens"]
        assert "temperature" not in req


MIN_BUDGET = 1024


# --- requests ----------------------------------------------------------------------------------------------

@needs_fixtures
@pytest.mark.parametrize(("name", "request_body"), fixture_requests("/v1/chat/completions", ("oc_", "py_openai_")),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_fixture_chat_request_translates_to_a_valid_anthropic_request(name, request_body):
    before = copy.deepcopy(request_body)
    out = translate(request_body, max_output_tokens=32000)
    assert request_body == before
    assert out["model"] == "up-model"
    assert out["max_tokens"] == min(request_body.get("max_tokens", 4096), 32000)
    assert [t["name"] for t in out.get("tools", [])] == [t["function"]["name"] for t in request_body.get("tools", [])]
    assert "stream_options" not in out


@needs_fixtures
def test_opencode_title_request_system_hoisted_and_users_merged():
    request_body = fixture_body("oc_basic_say_hi.json", 0)
    out = translate(request_body)
    assert out["system"] == request_body["messages"][0]["content"]
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Generate a title for this conversation:\n"},
        {"type": "text", "text": "\"say hi\""}]}]
    assert out["stream"] is True


@needs_fixtures
def test_opencode_tool_round_trip():
    request_body = fixture_body("oc_tool_read.json", 2)
    assert request_body["messages"][2]["content"] == ""
    out = translate(request_body)
    assert out["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_9902e1654022445f95825997", "name": "read",
                                           "input": {"filePath": "/home/dev/project/notes.txt"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_9902e1654022445f95825997",
                                      "content": request_body["messages"][3]["content"]}]},
    ]
    assert out["tool_choice"] == {"type": "auto"}
    assert out["tools"][0]["input_schema"] == request_body["tools"][0]["function"]["parameters"]


def test_system_and_developer_messages_anywhere_become_system_blocks():
    out = translate(chat([
        {"role": "system", "content": "one"},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "  "},
    ]))
    assert out["system"] == [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert [m["role"] for m in out["messages"]] == ["user", "assistant"]


def test_tool_messages_and_following_user_text_share_one_user_turn():
    out = translate(chat([
        {"role": "user", "content": "do both"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": '{"x":1}'}},
            {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "one"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "tw"},
                                                               {"type": "text", "text": "o"}]},
        {"role": "user", "content": "thanks"},
    ]))
    assert out["messages"][1]["content"][1] == {"type": "tool_use", "id": "call_2", "name": "b", "input": {}}
    assert out["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "tw\n\no"},
        {"type": "text", "text": "thanks"}]}


def test_empty_tool_result_has_no_content_key():
    out = translate(chat([
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "t",
                                                                                       "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": ""},
    ]))
    assert out["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "c1"}]


def test_image_parts():
    out = translate(chat([{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}]))
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(("part", "field"), [
    ({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AAAA"}}, "messages.0.content.0.image_url.url"),
    ({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}, "messages.0.content.0.image_url.url"),
    ({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}, "messages.0.content.0.type"),
    ({"type": "file", "file": {"file_id": "file-123"}}, "messages.0.content.0.file"),
])
def test_unsupported_parts_are_refused_with_their_field(part, field):
    with pytest.raises(ProtocolError) as info:
        request_to_anthropic(chat([{"role": "user", "content": [part]}]), upstream_model="m")
    assert info.value.status == 400 and info.value.message.startswith(field + ":")


def test_pdf_file_part_becomes_a_document():
    out = translate(chat([{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
        {"type": "text", "text": "summarise"}]}]))
    assert out["messages"][0]["content"][0] == {
        "type": "document", "title": "a.pdf", "source": {"type": "base64", "media_type": "application/pdf",
                                                         "data": "JVBERi0x"}}


@pytest.mark.parametrize(("extra", "limit", "expected"), [
    ({}, None, 4096),
    ({"max_tokens": 500}, None, 500),
    ({"max_completion_tokens": 700, "max_tokens": 500}, None, 700),
    ({"max_tokens": 100000}, 32000, 32000),
    ({}, 2000, 2000),
])
def test_max_tokens(extra, limit, expected):
    out = translate(chat([{"role": "user", "content": "x"}], **extra), max_output_tokens=limit)
    assert out["max_tokens"] == expected


@pytest.mark.parametrize(("stop", "expected"), [
    ("END", ["END"]), (["a", "", "b"], ["a", "b"]), ([], None), (None, None)])
def test_stop_becomes_stop_sequences(stop, expected):
    out = translate(chat([{"role": "user", "content": "x"}], stop=stop))
    assert out.get("stop_sequences") == expected


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "w",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                                           "strict": True}},
         {"type": "function", "function": {"name": "no_params"}}]


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}),
    ("required", {"type": "any"}),
    ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    (None, None),
])
def test_tools_and_tool_choice(choice, expected):
    out = translate(chat([{"role": "user", "content": "x"}], tools=TOOLS, tool_choice=choice))
    assert out["tools"] == [
        {"name": "get_weather", "description": "w",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"name": "no_params", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert out.get("tool_choice") == expected


def test_parallel_tool_calls_false():
    out = translate(chat([{"role": "user", "content": "x"}], tools=TOOLS, parallel_tool_calls=False))
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    out = translate(chat([{"role": "user", "content": "x"}], tools=TOOLS, tool_choice="required",
                         parallel_tool_calls=False))
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    out = translate(chat([{"role": "user", "content": "x"}], parallel_tool_calls=False, tool_choice="auto"))
    assert "tool_choice" not in out and "tools" not in out


def test_user_response_format_and_sampling():
    out = translate(chat([{"role": "user", "content": "x"}], user="alice", temperature=1.7, top_p=0.5,
                         response_format={"type": "json_object"}, seed=3, logprobs=True))
    assert out["metadata"] == {"user_id": "alice"}
    assert out["temperature"] == 1.0 and out["top_p"] == 0.5
    assert not {"response_format", "seed", "logprobs", "user"} & set(out)


@pytest.mark.parametrize(("effort", "max_tokens", "budget"), [
    ("low", 32000, 2048), ("medium", 32000, 8192), ("high", 32000, 24576), ("high", 10000, 9999),
    ("medium", 1024, None), ("none", 32000, None), (None, 32000, None),
])
def test_reasoning_effort_to_thinking(effort, max_tokens, budget):
    out = translate(chat([{"role": "user", "content": "x"}], reasoning_effort=effort, max_tokens=max_tokens,
                         temperature=0.3))
    if budget is None:
        assert "thinking" not in out and out["temperature"] == 0.3
    else:
        assert out["thinking"] == {"type": "enabled", "budget_tokens": budget}
        assert "temperature" not in out


def test_no_thinking_when_a_tool_is_forced_or_mid_tool_loop():
    forced = translate(chat([{"role": "user", "content": "x"}], tools=TOOLS, tool_choice="required",
                            reasoning_effort="high", max_tokens=32000))
    assert "thinking" not in forced
    loop = translate(chat([
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ], tools=TOOLS, reasoning_effort="high", max_tokens=32000))
    assert "thinking" not in loop
    prefill = translate(chat([{"role": "user", "content": "x"}, {"role": "assistant", "content": "Sure:"}],
                             reasoning_effort="high", max_tokens=32000))
    assert "thinking" not in prefill


def test_illegal_ids_rewritten_consistently():
    out, names = request_to_anthropic(chat([
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "functions.get_weather:0", "type": "function",
                                              "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "sunny"},
    ], tools=TOOLS), upstream_model="m")
    assert_valid_anthropic_request(out)
    tool_use_id = out["messages"][1]["content"][0]["id"]
    assert tool_use_id == out["messages"][2]["content"][0]["tool_use_id"] != "functions.get_weather:0"
    assert names.id_in(tool_use_id) == "functions.get_weather:0"


@pytest.mark.parametrize(("request_body", "field"), [
    (chat([{"role": "user", "content": "x"}], n=2), "n:"),
    (chat([{"role": "system", "content": "only system"}]), "messages:"),
    (chat([{"role": "function", "name": "f", "content": "x"}]), "messages.0.role:"),
    (chat([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "c"}]}]),
     "messages.1.tool_calls.0.function.name:"),
    (chat([{"role": "user", "content": "x"}], tools=[{"type": "custom", "custom": {"name": "x"}}]), "tools.0.type:"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model:"),
])
def test_bad_requests(request_body, field):
    with pytest.raises(ProtocolError) as info:
        request_to_anthropic(request_body, upstream_model="m")
    assert info.value.status == 400 and info.value.message.startswith(field)


def test_round_trip_through_both_directions_keeps_the_conversation():
    original = chat([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ], tools=TOOLS[:1], max_tokens=300, stream=True)
    anthropic_body, _ = request_to_anthropic(original, upstream_model="claude")
    back, _ = request_to_openai(anthropic_body, upstream_model="gpt-4o")
    assert back["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": original["messages"][2]["tool_calls"]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    assert back["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "w", "parameters": TOOLS[0]["function"]["parameters"]}}]


# --- answers -------------------------------------------------------------------------------------------------

def anthropic_message(content, stop_reason="end_turn", usage=None) -> dict:
    return {"id": "msg_abc", "type": "message", "role": "assistant", "model": "claude", "content": content,
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": usage or {"input_tokens": 20, "output_tokens": 5, "cache_read_input_tokens": 100,
                               "cache_creation_input_tokens": 10}}


def test_answer_text_usage_and_shape():
    answer = response_from_anthropic(anthropic_message([{"type": "text", "text": "Hi"},
                                                        {"type": "text", "text": " there"}]),
                                     client_model="gpt-4o", names=ToolNames(), created=42)
    assert answer == {
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 42, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
                  "prompt_tokens_details": {"cached_tokens": 100}},
    }


def test_answer_tool_use_thinking_and_restored_names():
    names = ToolNames()
    wire = names.name_out("my.tool")
    answer = response_from_anthropic(anthropic_message([
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "tool_use", "id": "toolu_1", "name": wire, "input": {"a": [1, 2]}},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
    ], stop_reason="tool_use"), client_model="gpt-4o", names=names)
    message = answer["choices"][0]["message"]
    assert message == {"role": "assistant", "content": None, "reasoning_content": "hmm", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "my.tool", "arguments": '{"a":[1,2]}'}}]}
    assert answer["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(("stop", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "stop"),
    ("refusal", "content_filter"), (None, "stop"), ("pause_turn", "stop"),
])
def test_answer_finish_reason(stop, finish):
    answer = response_from_anthropic(anthropic_message([{"type": "text", "text": "x"}], stop_reason=stop),
                                     client_model="m", names=ToolNames())
    assert answer["choices"][0]["finish_reason"] == finish


def test_answer_with_empty_content():
    answer = response_from_anthropic(anthropic_message([]), client_model="m", names=ToolNames())
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": ""}


# --- streams -------------------------------------------------------------------------------------------------

def ev(data: dict) -> tuple[str, dict]:
    return data["type"], data


START = ev({"type": "message_start", "message": {
    "id": "msg_01X", "type": "message", "role": "assistant", "model": "claude", "content": [], "stop_reason": None,
    "stop_sequence": None, "usage": {"input_tokens": 30, "output_tokens": 1, "cache_read_input_tokens": 70,
                                     "cache_creation_input_tokens": 0}}})


def block_start(index: int, block: dict):
    return ev({"type": "content_block_start", "index": index, "content_block": block})


def block_delta(index: int, delta: dict):
    return ev({"type": "content_block_delta", "index": index, "delta": delta})


def block_stop(index: int):
    return ev({"type": "content_block_stop", "index": index})


def message_end(stop_reason: str, output_tokens: int = 12):
    return [ev({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens}}), ev({"type": "message_stop"})]


def run(events, *, include_usage=True, finish=True, names=None):
    stream = StreamToOpenAI(client_model="gpt-4o", names=names or ToolNames(), include_usage=include_usage, created=7)
    out = []
    for name, data in events:
        out.extend(stream.feed(name, data))
    if finish:
        out.extend(stream.finish())
    return out, stream


def deltas(chunks) -> list:
    return [c["choices"][0]["delta"] for c in chunks if isinstance(c, dict) and c.get("choices")]


def test_stream_text_exact_sequence():
    chunks, stream = run([
        START, ev({"type": "ping"}),
        block_start(0, {"type": "text", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "Hel"}),
        block_delta(0, {"type": "text_delta", "text": "lo"}),
        block_stop(0), *message_end("end_turn"),
    ])
    base = {"id": "chatcmpl-01X", "object": "chat.completion.chunk", "created": 7, "model": "gpt-4o"}
    assert chunks == [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112,
                                          "prompt_tokens_details": {"cached_tokens": 70}}},
        "[DONE]",
    ]
    assert stream.text == "Hello" and stream.done
    assert stream.usage == {"input_tokens": 30, "output_tokens": 12, "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 70}
    assert stream.finish() == [] and stream.feed("ping", {"type": "ping"}) == []


def test_stream_without_include_usage_has_no_usage_chunk():
    chunks, _ = run([START, block_start(0, {"type": "text", "text": ""}),
                     block_delta(0, {"type": "text_delta", "text": "x"}), block_stop(0), *message_end("max_tokens")],
                    include_usage=False)
    assert all("usage" not in c for c in chunks if isinstance(c, dict))
    assert chunks[-2]["choices"][0]["finish_reason"] == "length" and chunks[-1] == "[DONE]"


def test_stream_thinking_and_tool_calls():
    names = ToolNames()
    wire = names.name_out("mcp.search")
    chunks, _ = run([
        START,
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        block_delta(0, {"type": "thinking_delta", "thinking": "plan"}),
        block_delta(0, {"type": "signature_delta", "signature": "abc"}),
        block_stop(0),
        block_start(1, {"type": "tool_use", "id": "toolu_a", "name": wire, "input": {}}),
        block_delta(1, {"type": "input_json_delta", "partial_json": ""}),
        block_delta(1, {"type": "input_json_delta", "partial_json": '{"q":'}),
        block_delta(1, {"type": "input_json_delta", "partial_json": '"x"}'}),
        block_stop(1),
        block_start(2, {"type": "tool_use", "id": "toolu_b", "name": "now", "input": {}}),
        block_stop(2),
        *message_end("tool_use"),
    ], names=names)
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "plan"},
        {"tool_calls": [{"id": "toolu_a", "type": "function", "function": {"name": "mcp.search", "arguments": ""},
                         "index": 0}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]},
        {"tool_calls": [{"id": "toolu_b", "type": "function", "function": {"name": "now", "arguments": ""},
                         "index": 1}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
        {},
    ]
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_error_event_ends_the_stream_without_done():
    chunks, stream = run([
        START, block_start(0, {"type": "text", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "par"}),
        ev({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        block_delta(0, {"type": "text_delta", "text": "ignored"}),
    ])
    assert chunks[-1] == {"error": {"message": "Overloaded", "type": "overloaded_error", "param": None,
                                    "code": None}}
    assert "[DONE]" not in chunks and stream.done and stream.text == "par"
    assert stream.fail(500, "x") == []


def test_stream_context_error_gets_the_openai_code():
    chunks, _ = run([START, ev({"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": "prompt is too long: 210000 tokens > 200000"}})])
    assert chunks[-1]["error"]["code"] == "context_length_exceeded"
    assert chunks[-1]["error"]["type"] == "invalid_request_error"


def test_stream_ending_before_the_stop_reason_is_an_error():
    chunks, _ = run([START, block_start(0, {"type": "text", "text": ""}),
                     block_delta(0, {"type": "text_delta", "text": "cut"})])
    assert "error" in chunks[-1] and "[DONE]" not in chunks
    assert chunks[-1]["error"]["message"].startswith("the upstream stream ended")


def test_stream_ending_after_message_delta_without_message_stop_completes():
    chunks, _ = run([START, *message_end("end_turn")[:1]])
    assert chunks[-1] == "[DONE]" and chunks[-3]["choices"][0]["finish_reason"] == "stop"


def test_stream_transport_failure():
    stream = StreamToOpenAI(client_model="m", names=ToolNames(), include_usage=True)
    out = stream.feed(*START) + stream.fail(502, "connection reset")
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert out[-1]["error"]["message"] == "connection reset" and out[-1]["error"]["type"] == "upstream_error"
    assert stream.finish() == []


def test_a_tool_schema_without_a_type_gets_one_and_the_clients_schema_is_left_as_it_was():
    properties = {"path": {"type": "string"}}
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "read", "parameters": {"properties": properties}}}]}
    out = translate(body)
    assert out["tools"][0]["input_schema"] == {"type": "object", "properties": properties}
    assert body["tools"][0]["function"]["parameters"] == {"properties": properties}  # no "type" added to it
