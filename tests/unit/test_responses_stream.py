"""The OpenAI Responses dialect's streams: decoder, encoder and passthrough (zengate.dialects.responses).

The decoder is fed realistic upstream streams - the stand-in upstream's (tests/support/fake_upstream.py,
written apart from the encoder) and hand-made ones for what it does not send (parallel calls
interleaved, a failure mid-stream, a stream cut short, garbage) - and its output must satisfy the
internal form's grammar. The encoder's events must each validate against the SDK's
``ResponseStreamEvent``, count ``sequence_number`` from 0, and be accumulated by the SDK's own
``ResponseStreamState`` into a final ``Response`` whose text and calls are the input's (one
deviation: a ``response.failed`` whose code is ``context_length_exceeded`` or ``insufficient_quota``,
which Codex acts on and the SDK's literal does not list yet, is checked with the code swapped).
Decoding what the encoder wrote gives the form stream back (property-tested with hypothesis), and
the other dialects' decoders and encoders meet these through the form (a Codex turn served by a chat
or an Anthropic upstream, a Claude turn served by a Responses upstream, read by each SDK).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.support.fake_upstream import (
    FakeUpstream,
    anthropic_text,
    openai_tool_calls,
    responses_custom_tool_call,
    responses_function_call,
    responses_text,
    running_upstream,
)
from tests.support.fixtures import fixture_body
from zengate.dialects.anthropic import DIALECT as ANTHROPIC
from zengate.dialects.anthropic.shapes import GATEWAY_SIGNATURE
from zengate.dialects.base import Context
from zengate.dialects.errors import ProtocolError
from zengate.dialects.openai import DIALECT as OPENAI_CHAT
from zengate.dialects.responses import DIALECT
from zengate.dialects.responses_request import parse_request
from zengate.dialects.sse import Event, parse_stream
from zengate.exchange.form import fold_events, grammar_problems

EVENTS = TypeAdapter(ResponseStreamEvent)
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Codex acts on these failure codes; the SDK's ResponseError.code literal does not list them (yet).
CODEX_ONLY_CODES = ("context_length_exceeded", "insufficient_quota")


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with running_upstream() as server:
        yield server


def upstream_events(up: FakeUpstream, reply: Any, **body: Any) -> list[Event]:
    """The events the stand-in upstream streams for ``reply``."""
    up.script("m", reply)
    request = {"model": "m", "stream": True, "input": "hi", **body}
    with requests.post(up.url + "/responses", json=request, stream=True, timeout=10) as resp:
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "text/event-stream"
        return list(parse_stream(resp.iter_content(None)))


def raw(*payloads: dict) -> list[Event]:
    """Events as an upstream writes them (``event:`` named by the type, ``sequence_number`` added)."""
    events = []
    for n, payload in enumerate(payloads):
        data = json.dumps({**payload, "sequence_number": n})
        events.append(Event(payload["type"], data, f"event: {payload['type']}\ndata: {data}\n\n".encode()))
    return events


def decode(events: list[Event], context: Context | None = None, *, end: bool = True) -> list[tuple[str, dict]]:
    decoder = DIALECT.decoder(context or Context("client-model", "m"))
    out = [e for event in events for e in decoder.feed(event)]
    return out + (decoder.finish() if end else [])


def validated(data: bytes) -> list[dict]:
    """The events of an encoder's bytes, each checked against the SDK's types and numbering."""
    events = []
    for n, event in enumerate(parse_stream([data])):
        payload = json.loads(event.data)
        assert event.event == payload["type"]
        assert payload["sequence_number"] == n
        check = payload
        if payload["type"] == "response.failed" and payload["response"]["error"]["code"] in CODEX_ONLY_CODES:
            check = json.loads(event.data)
            check["response"]["error"]["code"] = "server_error"
        EVENTS.validate_python(check)
        events.append(payload)
    return events


def accumulate(payloads: list[dict]) -> tuple[Response | None, list[Any]]:
    """The SDK's own accumulation of the events: its final Response (None without response.completed)."""
    state = ResponseStreamState(input_tools=openai.omit, text_format=openai.omit)
    seen: list[Any] = []
    for payload in payloads:
        seen.extend(state.handle_event(EVENTS.validate_python(payload)))
    return state._completed_response, seen


def encode(events: list[tuple[str, dict]], context: Context | None = None) -> bytes:
    return b"".join(DIALECT.encoder(context or Context("client-model", "m")).encode(events))


def _form_answer(events: list[tuple[str, dict]]) -> dict:
    assert grammar_problems(events) == []
    return fold_events(events)


# --- the decoder --------------------------------------------------------------------------------------------

def test_decode_text(up: FakeUpstream) -> None:
    events = decode(upstream_events(up, responses_text("Hello there, world", usage=(12, 4))),
                    Context("client-model", "m", input_estimate=99))
    assert events[0][1]["message"]["model"] == "client-model"
    assert events[0][1]["message"]["usage"]["input_tokens"] == 99
    answer = _form_answer(events)
    assert answer["content"] == [{"type": "text", "text": "Hello there, world"}]
    assert answer["stop_reason"] == "end_turn"
    assert answer["usage"] == {"input_tokens": 12, "output_tokens": 4, "cache_creation_input_tokens": 0,
                               "cache_read_input_tokens": 0}


def test_decode_reasoning_then_text(up: FakeUpstream) -> None:
    reply = responses_text("Done.", reasoning=["First I look", "then I answer"], encrypted="gAAAA-enc")
    events = decode(upstream_events(up, reply))
    start = next(d for n, d in events if n == "content_block_start")
    assert start["content_block"]["x_origin"] == "responses"
    answer = _form_answer(events)
    assert answer["content"] == [
        {"type": "thinking", "thinking": "First I look\n\nthen I answer", "signature": "gAAAA-enc",
         "x_origin": "responses"},
        {"type": "text", "text": "Done."}]


def test_decode_reasoning_without_encrypted_content_and_without_summary() -> None:
    events = decode(raw(
        {"type": "response.created", "response": {"id": "resp_1"}},
        {"type": "response.output_item.added", "output_index": 0, "item": {"id": "rs_1", "type": "reasoning",
                                                                          "summary": []}},
        {"type": "response.output_item.done", "output_index": 0, "item": {"id": "rs_1", "type": "reasoning",
                                                                         "summary": []}},
        {"type": "response.output_item.added", "output_index": 1, "item": {"id": "rs_2", "type": "reasoning",
                                                                          "summary": []}},
        {"type": "response.reasoning_summary_text.delta", "output_index": 1, "summary_index": 0, "delta": "hm"},
        {"type": "response.output_item.done", "output_index": 1,
         "item": {"id": "rs_2", "type": "reasoning", "summary": [{"type": "summary_text", "text": "hmm"}]}},
        {"type": "response.completed", "response": {"id": "resp_1", "status": "completed"}},
    ))
    answer = _form_answer(events)
    assert answer["content"] == [{"type": "thinking", "thinking": "hmm", "signature": GATEWAY_SIGNATURE,
                                  "x_origin": "responses"}]
    assert answer["id"] == "msg_1"


def test_decode_function_call_with_namespace(up: FakeUpstream) -> None:
    reply = responses_function_call("spawn_agent", {"message": "go", "n": 2}, call_id="call_9", namespace="agents")
    answer = _form_answer(decode(upstream_events(up, reply)))
    assert answer["content"] == [{"type": "tool_use", "id": "call_9", "name": "agents__spawn_agent",
                                  "input": {"message": "go", "n": 2}}]
    assert answer["stop_reason"] == "tool_use"


def test_decode_custom_tool_call(up: FakeUpstream) -> None:
    patch = '*** Begin Patch\n*** Add File: "q.txt"\n+\\o/ é 🙂\n*** End Patch\n'
    events = decode(upstream_events(up, responses_custom_tool_call("apply_patch", patch, split=7)))
    fragments = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert len(fragments) > 3 and fragments[0].startswith('{"input":"')
    answer = _form_answer(events)
    assert answer["content"] == [{"type": "tool_use", "id": "call_fake_0", "name": "apply_patch",
                                  "input": {"input": patch}, "x_kind": "custom"}]


def test_decode_names_rewritten_on_the_way_up_come_back() -> None:
    context = Context("m", "up")
    wire = context.names.name_out("mcp.read file")
    events = decode(raw(
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"type": "function_call", "id": "fc_1", "call_id": "functions.Read:0", "name": wire,
                  "arguments": ""}},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {"type": "function_call", "id": "fc_1", "call_id": "functions.Read:0", "name": wire,
                  "arguments": "{\"path\": \"/a\"}"}},
        {"type": "response.completed", "response": {"id": "resp_2", "status": "completed"}},
    ), context)
    block = _form_answer(events)["content"][0]
    assert block["name"] == "mcp.read file" and block["input"] == {"path": "/a"}
    assert block["id"] != "functions.Read:0" and all(c.isalnum() or c in "_-" for c in block["id"])


def test_decode_parallel_calls_interleaved_and_text_after_them() -> None:
    def call(i: int, args: str = "") -> dict:
        return {"type": "function_call", "id": f"fc_{i}", "call_id": f"call_{i}", "name": f"tool{i}",
                "arguments": args}

    events = decode(raw(
        {"type": "response.created", "response": {"id": "resp_3"}},
        {"type": "response.output_item.added", "output_index": 0, "item": call(0)},
        {"type": "response.output_item.added", "output_index": 1, "item": call(1)},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"b":'},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": '{"a":'},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": " 2}"},
        {"type": "response.output_item.done", "output_index": 1, "item": call(1, '{"b": 2}')},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": " 1}"},
        {"type": "response.function_call_arguments.done", "output_index": 0, "arguments": '{"a": 1}'},
        {"type": "response.output_item.done", "output_index": 0, "item": call(0, '{"a": 1}')},
        {"type": "response.completed", "response": {"id": "resp_3", "status": "completed",
                                                    "usage": {"input_tokens": 50, "output_tokens": 9,
                                                              "input_tokens_details": {"cached_tokens": 30}}}},
    ))
    answer = _form_answer(events)
    assert [(b["name"], b["input"]) for b in answer["content"]] == [("tool0", {"a": 1}), ("tool1", {"b": 2})]
    assert answer["usage"]["cache_read_input_tokens"] == 30 and answer["usage"]["input_tokens"] == 20


def test_decode_text_given_only_whole_and_items_only_in_completed() -> None:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": "whole text", "annotations": []}]}
    only_done = decode(raw(
        {"type": "response.output_item.added", "output_index": 0, "item": {**message, "content": []}},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "whole "},
        {"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": "whole text"},
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.completed", "response": {"id": "r", "status": "completed"}},
    ))
    assert _form_answer(only_done)["content"] == [{"type": "text", "text": "whole text"}]
    call = {"type": "custom_tool_call", "id": "ctc", "call_id": "c", "name": "apply_patch", "input": "P\n"}
    search = {"type": "web_search_call", "id": "ws", "status": "completed", "action": {"type": "search"}}
    only_completed = decode(raw({"type": "response.completed",
                                 "response": {"id": "r", "status": "completed", "output": [search, message, call]}}))
    assert _form_answer(only_completed)["content"] == [
        {"type": "text", "text": "whole text"},
        {"type": "tool_use", "id": "c", "name": "apply_patch", "input": {"input": "P\n"}, "x_kind": "custom"}]


def test_decode_items_without_their_added_event_or_index() -> None:
    message = {"id": "m", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hi"}]}
    events = decode(raw(
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.output_item.added", "item": {"id": "m2", "type": "message", "content": []}},
        {"type": "response.output_text.delta", "delta": " there"},
        {"type": "response.output_item.done", "item": {"id": "m2", "type": "message", "content": []}},
        {"type": "response.completed", "response": {"id": "r", "status": "completed"}},
    ))
    assert [b["text"] for b in _form_answer(events)["content"]] == ["hi", " there"]


def test_decode_incomplete(up: FakeUpstream) -> None:
    cut = decode(upstream_events(up, responses_text("partial answer", incomplete="max_output_tokens")))
    answer = _form_answer(cut)
    assert answer["stop_reason"] == "max_tokens" and answer["content"][0]["text"] == "partial answer"
    other = decode(raw({"type": "response.incomplete",
                        "response": {"id": "r", "status": "incomplete", "incomplete_details": {"reason": "odd"}}}))
    assert grammar_problems(other) == [] and other[-1][0] == "error"
    assert "incomplete (odd)" in other[-1][1]["error"]["message"]


@pytest.mark.parametrize(("error", "status_type", "message"), [
    ({"code": "rate_limit_exceeded", "message": "Please try again in 2s."}, "rate_limit_error",
     "Please try again in 2s."),
    ({"code": "context_length_exceeded", "message": "Your input exceeds the context window of this model."},
     "invalid_request_error", "prompt is too long: Your input exceeds the context window"),
    ({"code": "server_error", "message": "boom"}, "api_error", "boom"),
    ({"code": "insufficient_quota", "message": "quota"}, "billing_error", "quota"),
    (None, "api_error", "the upstream's response failed"),
])
def test_decode_failure_mid_stream(error: dict | None, status_type: str, message: str) -> None:
    events = decode(raw(
        {"type": "response.created", "response": {"id": "r"}},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"id": "m", "type": "message", "role": "assistant", "content": []}},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "par"},
        {"type": "response.failed", "response": {"id": "r", "status": "failed", "error": error}},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "never"},
    ))
    assert grammar_problems(events) == []
    name, data = events[-1]
    assert name == "error" and data["error"]["type"] == status_type
    assert data["error"]["message"].startswith(message)
    assert not any("never" in json.dumps(d) for _, d in events)


def test_decode_error_event_and_transport_failure() -> None:
    events = decode(raw({"type": "error", "code": "rate_limit_exceeded", "message": "slow", "param": None}))
    assert [n for n, _ in events] == ["error"] and events[0][1]["error"]["type"] == "rate_limit_error"
    decoder = DIALECT.decoder(Context("m", "up"))
    decoder.feed(raw({"type": "response.created", "response": {"id": "r"}})[0])
    failed = decoder.fail(504, "the upstream went silent")
    assert failed[0][1]["error"] == {"type": "timeout_error", "message": "the upstream went silent"}
    assert decoder.done and decoder.fail(500, "again") == [] and decoder.finish() == []


def test_decode_stream_cut_before_completion(up: FakeUpstream) -> None:
    events = upstream_events(up, responses_text("a b c d"))
    for cut in range(len(events) - 1):  # every prefix that lacks response.completed
        decoded = decode(events[:cut])
        assert grammar_problems(decoded) == [], cut
        assert decoded[-1][0] == "error" and decoded[-1][1]["error"]["type"] == "api_error"
        assert "ended before the answer was finished" in decoded[-1][1]["error"]["message"]
        assert not any(n == "message_stop" for n, _ in decoded)


def test_decode_garbage_and_done_marker() -> None:
    decoder = DIALECT.decoder(Context("m", "up"))
    assert decoder.feed(Event(None, "[DONE]", b"data: [DONE]\n\n")) == []
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(Event("response.output_text.delta", "{not json", b""))
    assert caught.value.status == 502
    with pytest.raises(ProtocolError):
        decoder.feed(Event(None, "[1, 2]", b""))


def test_decode_usage_and_text_as_it_goes(up: FakeUpstream) -> None:
    decoder = DIALECT.decoder(Context("m", "up", input_estimate=40))
    events = upstream_events(up, responses_text("one two three", usage=(33, 7)))
    for event in events[:-1]:
        decoder.feed(event)
    assert decoder.text == "one two three"
    assert decoder.usage["input_tokens"] == 40 and decoder.usage["output_tokens"] > 0  # estimates so far
    decoder.feed(events[-1])
    assert decoder.done and decoder.usage["input_tokens"] == 33 and decoder.usage["output_tokens"] == 7


# --- the encoder --------------------------------------------------------------------------------------------

def start(message_id: str = "msg_0a1b", input_tokens: int = 11) -> tuple[str, dict]:
    return ("message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": "x", "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 0}}})


def block(index: int, content_block: dict, *deltas: dict) -> list[tuple[str, dict]]:
    out = [("content_block_start", {"type": "content_block_start", "index": index, "content_block": content_block})]
    out += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
    return [*out, ("content_block_stop", {"type": "content_block_stop", "index": index})]


def end(stop: str = "end_turn", usage: dict | None = None) -> list[tuple[str, dict]]:
    return [("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                               "usage": usage or {"output_tokens": 5}}),
            ("message_stop", {"type": "message_stop"})]


def text(t: str) -> dict:
    return {"type": "text_delta", "text": t}


def json_part(t: str) -> dict:
    return {"type": "input_json_delta", "partial_json": t}


def codex_context() -> Context:
    context = Context("gpt-5.5", "claude-sonnet-4-5")
    body = fixture_body("cx_gpt55_tool_roundtrip_reasoning_applypatch.json", 0)
    body["tools"] = [*body["tools"], {"type": "namespace", "name": "agents", "description": "Agents.",
                                      "tools": [{"type": "function", "name": "spawn", "strict": False}]}]
    context.request = parse_request(body)  # type: ignore[attr-defined]  (the proposed Context.request)
    return context


def test_encode_a_whole_turn_the_sdk_accumulates() -> None:
    form = [start(), *block(0, {"type": "thinking", "thinking": "", "signature": ""},
                            {"type": "thinking_delta", "thinking": "I will "},
                            {"type": "thinking_delta", "thinking": "patch."},
                            {"type": "signature_delta", "signature": "claude-sig"}),
            *block(1, {"type": "text", "text": ""}, text("Patching "), text("now.")),
            *block(2, {"type": "tool_use", "id": "toolu_1", "name": "apply_patch", "input": {}},
                   json_part('{"input": "*** Begin Patch\\n+\\u00e9\\ud83d'), json_part('\\ude42\\n*** End'),
                   json_part(' Patch\\n"}')),
            *block(3, {"type": "tool_use", "id": "toolu_2", "name": "agents__spawn", "input": {}},
                   json_part('{"task":'), json_part(' "x"}')),
            *block(4, {"type": "tool_use", "id": "toolu_3", "name": "exec_command", "input": {"cmd": "ls"}}),
            *end("tool_use", {"input_tokens": 11, "output_tokens": 42, "cache_read_input_tokens": 100})]
    assert grammar_problems(form) == []
    payloads = validated(encode(form, codex_context()))
    assert [p["type"] for p in payloads][:2] == ["response.created", "response.in_progress"]
    assert payloads[-1]["type"] == "response.completed"
    final, _ = accumulate(payloads)
    assert final is not None and final.model == "gpt-5.5" and final.status == "completed"
    assert [o.type for o in final.output] == ["reasoning", "message", "custom_tool_call", "function_call",
                                              "function_call"]
    reasoning, _, patch, spawn, execute = final.output
    assert reasoning.summary[0].text == "I will patch."
    assert reasoning.encrypted_content == "zengate:anthropic:claude-sig"
    assert final.output_text == "Patching now."
    assert (patch.name, patch.call_id) == ("apply_patch", "toolu_1")
    assert patch.input == "*** Begin Patch\n+é🙂\n*** End Patch\n"
    assert (spawn.name, spawn.namespace, json.loads(spawn.arguments)) == ("spawn", "agents", {"task": "x"})
    assert (execute.name, json.loads(execute.arguments)) == ("exec_command", {"cmd": "ls"})
    deltas = "".join(p["delta"] for p in payloads if p["type"] == "response.custom_tool_call_input.delta")
    assert deltas == patch.input
    assert final.usage.input_tokens == 111 and final.usage.input_tokens_details.cached_tokens == 100
    assert final.usage.output_tokens == 42 and final.usage.total_tokens == 153
    added = [p["item"]["type"] for p in payloads if p["type"] == "response.output_item.added"]
    done = [p["item"] for p in payloads if p["type"] == "response.output_item.done"]
    assert added == [d["type"] for d in done] and [d["status"] for d in done] == ["completed"] * 5
    assert payloads[-1]["response"]["output"] == done  # Codex reads the items from output_item.done


def test_encode_event_order_for_text_and_thinking() -> None:
    form = [start(), *block(0, {"type": "thinking", "thinking": "", "signature": "", "x_origin": "responses"},
                            {"type": "thinking_delta", "thinking": "t"}, {"type": "signature_delta", "signature": "E"}),
            *block(1, {"type": "text", "text": ""}, text("a")), *end()]
    payloads = validated(encode(form))
    assert [p["type"].removeprefix("response.") for p in payloads] == [
        "created", "in_progress",
        "output_item.added", "reasoning_summary_part.added", "reasoning_summary_text.delta",
        "reasoning_summary_text.done", "reasoning_summary_part.done", "output_item.done",
        "output_item.added", "content_part.added", "output_text.delta", "output_text.done", "content_part.done",
        "output_item.done", "completed"]
    assert payloads[7]["item"]["encrypted_content"] == "E"  # a Responses upstream's own goes as it is
    assert payloads[0]["response"]["status"] == "in_progress" and payloads[0]["response"]["output"] == []


def test_encode_max_tokens_is_response_incomplete() -> None:
    payloads = validated(encode([start(), *block(0, {"type": "text", "text": ""}, text("cut")), *end("max_tokens")]))
    assert payloads[-1]["type"] == "response.incomplete"
    response = Response.model_validate(payloads[-1]["response"])
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    final, seen = accumulate(payloads)
    assert final is None and seen[-1].type == "response.incomplete"
    assert seen[-1].response.output_text == "cut"


@pytest.mark.parametrize(("error", "code"), [
    ({"type": "rate_limit_error", "message": "slow down"}, "rate_limit_exceeded"),
    ({"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens"}, "context_length_exceeded"),
    ({"type": "overloaded_error", "message": "Overloaded"}, "server_error"),
    ({"type": "billing_error", "message": "no credit"}, "insufficient_quota"),
])
def test_encode_error_after_the_first_byte_is_response_failed(error: dict, code: str) -> None:
    form = [start(), ("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": text("par")}),
            ("error", {"type": "error", "error": error}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": text("never")})]
    encoder = DIALECT.encoder(Context("gpt-5", "up"))
    payloads = validated(b"".join(encoder.encode(form[:3])) + b"".join(encoder.encode(form[3:])))
    assert payloads[-1]["type"] == "response.failed"
    assert payloads[-1]["response"]["error"] == {"code": code, "message": error["message"]}
    assert payloads[-1]["response"]["status"] == "failed"
    assert encoder.encode([("message_stop", {"type": "message_stop"})]) == []


def test_encode_error_before_anything() -> None:
    payloads = validated(encode([("error", {"type": "error", "error": {"type": "api_error", "message": "x"}})]))
    assert [p["type"] for p in payloads] == ["response.created", "response.in_progress", "response.failed"]
    ids = {p["response"]["id"] for p in payloads}
    assert len(ids) == 1 and ids.pop().startswith("resp_")
    _, seen = accumulate(payloads)
    assert seen[-1].type == "response.failed"


def test_encode_odd_blocks() -> None:
    form = [start(), *block(0, {"type": "redacted_thinking", "data": "zz"}),
            *block(1, {"type": "text", "text": ""}),
            *block(2, {"type": "thinking", "thinking": "", "signature": GATEWAY_SIGNATURE}),
            *block(3, {"type": "tool_use", "id": "c", "name": "p", "input": {}, "x_kind": "custom"},
                   json_part('{"patch": "x", "more": 1}')),
            *block(4, {"type": "tool_use", "id": "d", "name": "f", "input": {}}), *end("tool_use")]
    final, _ = accumulate(validated(encode(form)))
    assert final is not None
    assert [o.type for o in final.output] == ["message", "reasoning", "custom_tool_call", "function_call"]
    assert final.output[0].content[0].text == "" and final.output[1].encrypted_content is None
    assert json.loads(final.output[2].input) == {"patch": "x", "more": 1}
    assert final.output[3].arguments == "{}"


# --- properties: the encoder and the decoder together -----------------------------------------------------

pieces = st.lists(st.text(alphabet=st.sampled_from(list('ab \n"\\{}:é中🙂')), min_size=1, max_size=6), min_size=1,
                  max_size=4)
json_object = st.dictionaries(st.text(alphabet="abcxyz", min_size=1, max_size=4),
                              st.one_of(st.integers(-5, 5), st.text(alphabet='a "\\\n🙂', max_size=5), st.booleans()),
                              max_size=3)


def _split(text_: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text_)) for c in cuts} | {0, len(text_)})
    return [text_[a:b] for a, b in itertools.pairwise(points) if text_[a:b]]


@st.composite
def form_stream(draw) -> list[tuple[str, dict]]:
    """A well-formed form stream: text, thinking (a Responses upstream's), function and custom calls."""
    events = [start()]
    n_calls = 0
    for index in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["text", "thinking", "function", "custom"]))
        if kind == "text":
            events += block(index, {"type": "text", "text": ""}, *[text(p) for p in draw(pieces)])
        elif kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": p} for p in draw(pieces)]
            deltas.append({"type": "signature_delta", "signature": draw(st.text(alphabet="abcXYZ09+/=", min_size=1))})
            events += block(index, {"type": "thinking", "thinking": "", "signature": "", "x_origin": "responses"},
                            *deltas)
        else:
            n_calls += 1
            value = draw(json_object) if kind == "function" else {"input": "".join(draw(pieces))}
            raw_json = json.dumps(value, ensure_ascii=draw(st.booleans()))
            cuts = draw(st.lists(st.integers(0, len(raw_json)), max_size=5))
            tool = {"type": "tool_use", "id": f"call_{index}", "name": f"tool_{index}", "input": {}}
            if kind == "custom":
                tool["x_kind"] = "custom"
            events += block(index, tool, *[json_part(p) for p in _split(raw_json, cuts)])
    return events + end("tool_use" if n_calls else "end_turn", {"output_tokens": 3})


def _content(answer: dict) -> list[dict]:
    """Blocks as they must survive: empty text blocks and x_ keys other than the ones that matter aside."""
    out = []
    for b in answer["content"]:
        if b["type"] == "text" and not b["text"]:
            continue
        out.append({k: v for k, v in b.items() if not k.startswith("x_") or k in ("x_kind", "x_origin")})
    return out


@SETTINGS
@given(form_stream())
def test_decoding_what_the_encoder_wrote_gives_the_stream_back(events: list[tuple[str, dict]]) -> None:
    assert grammar_problems(events) == []
    data = encode(events)
    payloads = validated(data)
    final, _ = accumulate(payloads)
    assert final is not None
    back = decode(list(parse_stream([data])))
    assert grammar_problems(back) == []
    assert _content(fold_events(back)) == _content(fold_events(events))


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list('ab \n\t"\\/{}é中🙂\x01')), max_size=30), st.data())
def test_a_custom_input_streams_out_whole_however_it_is_cut(patch: str, data: st.DataObject) -> None:
    raw_json = json.dumps({"input": patch}, ensure_ascii=data.draw(st.booleans()))
    if data.draw(st.booleans()):
        raw_json = raw_json.replace('{"input": ', '{ "input" :')
    cuts = data.draw(st.lists(st.integers(0, len(raw_json)), max_size=8))
    tool = {"type": "tool_use", "id": "c", "name": "apply_patch", "input": {}, "x_kind": "custom"}
    payloads = validated(encode([start(), *block(0, tool, *[json_part(p) for p in _split(raw_json, cuts)]),
                                 *end("tool_use")]))
    streamed = "".join(p["delta"] for p in payloads if p["type"] == "response.custom_tool_call_input.delta")
    done = next(p for p in payloads if p["type"] == "response.custom_tool_call_input.done")
    assert streamed == done["input"] == patch


@SETTINGS
@given(st.lists(st.sampled_from(range(12)), max_size=12), st.integers(0, 3))
def test_any_cut_of_an_upstream_stream_decodes_to_a_well_formed_stream(drop: list[int], shuffle: int) -> None:
    """Events lost or reordered by a broken upstream never break the form's grammar."""
    events = raw(
        {"type": "response.created", "response": {"id": "r"}},
        {"type": "response.output_item.added", "output_index": 0, "item": {"id": "rs", "type": "reasoning"}},
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0, "delta": "th"},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {"id": "rs", "type": "reasoning", "summary": [], "encrypted_content": "E"}},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {"id": "m", "type": "message", "role": "assistant", "content": []}},
        {"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "delta": "hi"},
        {"type": "response.output_item.added", "output_index": 2,
         "item": {"id": "f", "type": "function_call", "call_id": "c", "name": "f", "arguments": ""}},
        {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": '{"a"'},
        {"type": "response.output_item.done", "output_index": 1,
         "item": {"id": "m", "type": "message", "role": "assistant", "content": []}},
        {"type": "response.function_call_arguments.delta", "output_index": 2, "delta": ": 1}"},
        {"type": "response.output_item.done", "output_index": 2,
         "item": {"id": "f", "type": "function_call", "call_id": "c", "name": "f", "arguments": '{"a": 1}'}},
        {"type": "response.completed", "response": {"id": "r", "status": "completed"}},
    )
    kept = [e for i, e in enumerate(events) if i not in drop]
    if shuffle and len(kept) > 2:
        kept[shuffle % len(kept)], kept[-1] = kept[-1], kept[shuffle % len(kept)]
    decoded = decode(kept)
    assert grammar_problems(decoded) == []


def test_upstream_to_client_through_the_form(up: FakeUpstream) -> None:
    """A Responses upstream's stream decoded and encoded again: the SDK reads the same answer from both."""
    for reply in (responses_text("The answer is 42.", reasoning="Counting.", encrypted="ENC"),
                  responses_function_call("exec_command", {"cmd": "ls -la"}, call_id="call_x"),
                  responses_custom_tool_call("apply_patch", "*** Begin Patch\n*** End Patch\n")):
        events = upstream_events(up, reply)
        direct, _ = accumulate([json.loads(e.data) for e in events])
        assert direct is not None
        context = codex_context()
        again, _ = accumulate(validated(encode(decode(events, context), context)))
        assert again is not None
        assert again.output_text == direct.output_text
        assert [(o.type, getattr(o, "call_id", None), getattr(o, "arguments", None), getattr(o, "input", None))
                for o in again.output] == \
               [(o.type, getattr(o, "call_id", None), getattr(o, "arguments", None), getattr(o, "input", None))
                for o in direct.output]
        for mine, theirs in zip(again.output, direct.output, strict=True):
            if theirs.type == "reasoning":
                assert mine.encrypted_content == theirs.encrypted_content
                assert [s.text for s in mine.summary] == [s.text for s in theirs.summary]


# --- across dialects: other upstreams for a Responses client, a Responses upstream for others -----------------

def test_a_codex_turn_served_by_a_chat_upstream(up: FakeUpstream) -> None:
    up.script("m", openai_tool_calls([("exec_command", {"cmd": "ls"}, "call_a"),
                                      ("apply_patch", {"input": "*** Begin Patch\n*** End Patch\n"}, "call_b")],
                                     interleave=True, split=4))
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}],
            "stream_options": {"include_usage": True}}
    with requests.post(up.url + "/chat/completions", json=body, stream=True, timeout=10) as resp:
        events = list(parse_stream(resp.iter_content(None)))
    context = codex_context()
    decoder = OPENAI_CHAT.decoder(context)
    form = [e for event in events for e in decoder.feed(event)] + decoder.finish()
    final, _ = accumulate(validated(encode(form, context)))
    assert final is not None and [o.type for o in final.output] == ["function_call", "custom_tool_call"]
    assert json.loads(final.output[0].arguments) == {"cmd": "ls"}
    assert final.output[1].input == "*** Begin Patch\n*** End Patch\n" and final.output[1].call_id == "call_b"


def test_a_codex_turn_served_by_an_anthropic_upstream(up: FakeUpstream) -> None:
    up.script("m", anthropic_text("Hi there", thinking="hmm ok"))
    body = {"model": "m", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with requests.post(up.url + "/messages", json=body, stream=True, timeout=10) as resp:
        events = list(parse_stream(resp.iter_content(None)))
    context = codex_context()
    decoder = ANTHROPIC.decoder(context)
    form = [e for event in events for e in decoder.feed(event)] + decoder.finish()
    final, _ = accumulate(validated(encode(form, context)))
    assert final is not None and final.output_text == "Hi there"
    assert final.output[0].summary[0].text == "hmm ok"
    assert final.output[0].encrypted_content == "zengate:anthropic:sig_fake"  # comes back to Anthropic only


def test_a_claude_turn_served_by_a_responses_upstream(up: FakeUpstream) -> None:
    events = upstream_events(up, responses_text("Hello Claude", reasoning="Thinking it over", encrypted="gAAA"))
    context = Context("claude-sonnet-4-5", "m")
    form = decode(events, context)
    data = b"".join(ANTHROPIC.encoder(context).encode(form))
    adapter = TypeAdapter(RawMessageStreamEvent)
    snapshot = None
    for event in parse_stream([data]):
        snapshot = accumulate_event(event=adapter.validate_python(json.loads(event.data)),
                                    current_snapshot=snapshot, json_bufs={})
    assert snapshot is not None and snapshot.model == "claude-sonnet-4-5"
    thinking, text_block = snapshot.content
    assert thinking.thinking == "Thinking it over" and thinking.signature == "zengate:responses:gAAA"
    assert text_block.text == "Hello Claude" and snapshot.stop_reason == "end_turn"


# --- passthrough --------------------------------------------------------------------------------------------

class _Notes:
    def __init__(self) -> None:
        self.usage: tuple = (None, None)
        self.output: list[str] = []

    def add_usage(self, input_tokens: Any, output_tokens: Any) -> None:
        self.usage = (input_tokens, output_tokens)

    def add_output(self, text_: Any) -> None:
        if text_:
            self.output.append(text_)


def test_passthrough_forwards_bytes_and_renames_the_model(up: FakeUpstream) -> None:
    events = upstream_events(up, responses_text("Hello there", usage=(21, 6)))
    notes = _Notes()
    passthrough = DIALECT.passthrough(Context("gpt-5-client", "m"), notes)
    out = [b for event in events for b in passthrough.on_event(event)]
    assert len(out) == len(events)
    changed = [i for i, (got, event) in enumerate(zip(out, events, strict=True)) if got != event.raw]
    kinds = [json.loads(events[i].data)["type"] for i in changed]
    assert kinds == ["response.created", "response.in_progress", "response.completed"]
    payloads = validated(b"".join(out))
    assert {p["response"]["model"] for p in payloads if "response" in p} == {"gpt-5-client"}
    assert notes.usage == (21, 6) and "".join(notes.output) == "Hello there"
    assert passthrough.ended and passthrough.error is None
    assert passthrough.on_end() == [] and passthrough.on_event(events[-1]) == []


def test_passthrough_same_model_is_byte_for_byte(up: FakeUpstream) -> None:
    events = upstream_events(up, responses_text("x"))
    passthrough = DIALECT.passthrough(Context("m", "m"), _Notes())
    assert [b for e in events for b in passthrough.on_event(e)] == [e.raw for e in events]


def test_passthrough_stream_cut_ends_with_response_failed(up: FakeUpstream) -> None:
    events = upstream_events(up, responses_text("a b c"))[:6]
    passthrough = DIALECT.passthrough(Context("gpt-5", "m"), _Notes())
    out = [b for e in events for b in passthrough.on_event(e)] + passthrough.on_end()
    payloads = validated(b"".join(out))
    failed = payloads[-1]
    assert failed["type"] == "response.failed" and failed["sequence_number"] == 6
    assert failed["response"]["id"] == payloads[0]["response"]["id"]
    assert failed["response"]["error"]["code"] == "server_error"
    assert passthrough.ended and "ended before the answer was finished" in passthrough.error
    _, seen = accumulate(payloads)
    assert seen[-1].type == "response.failed"


def test_passthrough_failures_and_quirks() -> None:
    notes = _Notes()
    passthrough = DIALECT.passthrough(Context("gpt-5", "up"), notes)
    created = raw({"type": "response.created", "response": {"id": "resp_7", "created_at": 5, "model": "up"}})[0]
    no_name = Event(None, created.data, b"data: " + created.data.encode() + b"\n\n")
    out = passthrough.on_event(no_name)
    assert out[0].startswith(b"event: response.created\n") and b'"model":"gpt-5"' in out[0]
    assert passthrough.on_event(Event(None, "[DONE]", b"data: [DONE]\n\n")) == []
    failed = passthrough.on_failure(502, "connection reset")
    payload = json.loads(failed[0].split(b"data: ", 1)[1])
    assert payload["response"]["id"] == "resp_7" and payload["sequence_number"] == 1
    assert payload["response"]["error"]["message"] == "connection reset (mid-stream)"
    assert passthrough.on_failure(502, "again") == [] and passthrough.error == "connection reset"
    upstream_failed = DIALECT.passthrough(Context("gpt-5", "gpt-5"), _Notes())
    event = raw({"type": "response.failed", "response": {"id": "r", "error": {"code": "server_error",
                                                                             "message": "boom"}}})[0]
    assert upstream_failed.on_event(event) == [event.raw] and upstream_failed.error == "boom"
    with pytest.raises(ProtocolError):
        DIALECT.passthrough(Context("a", "b"), _Notes()).on_event(Event("x", "{oops", b""))
