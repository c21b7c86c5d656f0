"""Folding streams into the answer a non-streaming client expects."""

from __future__ import annotations

import pytest

from tests.support.pairs import StreamToAnthropic, response_from_openai
from zengate.dialects.anthropic import GATEWAY_SIGNATURE
from zengate.dialects.base import Context
from zengate.dialects.errors import ProtocolError
from zengate.dialects.openai import answer as openai_answer
from zengate.dialects.openai.stream import Decoder as OpenAIDecoder
from zengate.dialects.translate_common import ToolNames
from zengate.exchange.form import fold_events as fold_anthropic_events


def fold_openai_chunks(chunks: list[dict], *, model: str = "m") -> dict:
    """An OpenAI upstream's stream folded for an OpenAI client, as the exchange does it: decoded into
    the form, folded, rendered."""
    context = Context(model)
    decoder = OpenAIDecoder(context)
    events = [event for chunk in chunks for event in decoder.feed_chunk(chunk)] + decoder.finish()
    return openai_answer.render_answer(fold_anthropic_events(events, model=model), context, created=7)


def chunk(delta, finish=None, **extra):
    return {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def test_openai_text_reasoning_tools_and_usage():
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "think"}),
        chunk({"content": "Hel"}), chunk({"content": "lo"}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": '{"x"'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "g", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        chunk({}, "tool_calls"),
        {"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
    ]
    answer = fold_openai_chunks(chunks, model="client-model")
    assert answer["id"].startswith("chatcmpl-") and answer["object"] == "chat.completion"
    assert {k: answer[k] for k in ("created", "model", "choices")} == {
        "created": 7, "model": "client-model",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Hello", "reasoning_content": "think",
            "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
                           {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}}],
    }
    assert answer["usage"]["prompt_tokens"] == 3 and answer["usage"]["completion_tokens"] == 4


def test_openai_errors_and_unfinished_streams_raise():
    with pytest.raises(ProtocolError) as exc:
        fold_openai_chunks([chunk({"content": "x"}), {"error": {"message": "boom"}}])
    assert exc.value.status == 502 and "boom" in exc.value.message
    with pytest.raises(ProtocolError):
        fold_openai_chunks([chunk({"content": "x"})])


def test_anthropic_blocks_and_usage():
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                                "model": "up", "content": [], "stop_reason": None,
                                                                "usage": {"input_tokens": 9, "output_tokens": 0}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "thinking_delta", "thinking": "hm"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "signature_delta", "signature": "sig"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"a": '}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": "2}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"output_tokens": 5}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    message = fold_anthropic_events(events, model="claude-x")
    assert message["model"] == "claude-x" and message["stop_reason"] == "tool_use"
    assert message["usage"] == {"input_tokens": 9, "output_tokens": 5}
    assert message["content"] == [{"type": "thinking", "thinking": "hm", "signature": "sig"},
                                  {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 2}}]
    with pytest.raises(ProtocolError):
        fold_anthropic_events(events[:-1])
    with pytest.raises(ProtocolError):
        fold_anthropic_events([*events[:3], ("error", {"type": "error", "error": {"message": "x"}})])


def test_a_translated_stream_folds_into_the_non_streaming_answer_with_its_signature():
    """With stream_upstream on, an Anthropic client of an OpenAI upstream gets the folded stream:
    its thinking block has the signature the non-streaming translation gives it."""
    chunks = [chunk({"role": "assistant", "content": ""}), chunk({"reasoning_content": "think"}),
              chunk({"content": "done"}), chunk({}, "stop"),
              {"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}]
    translator = StreamToAnthropic(client_model="claude-x", names=ToolNames())
    events = [e for c in chunks for e in translator.feed(c)] + translator.finish()
    folded = fold_anthropic_events(events, model="claude-x")
    assert folded["content"] == [{"type": "thinking", "thinking": "think", "signature": GATEWAY_SIGNATURE},
                                 {"type": "text", "text": "done"}]
    direct = response_from_openai({"id": "c1", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "done", "reasoning_content": "think"}}]}, client_model="claude-x",
        names=ToolNames())
    assert folded["content"] == direct["content"]
