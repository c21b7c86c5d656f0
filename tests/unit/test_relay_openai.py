"""OpenAI passthrough stream adapter: Zen's quirks removed, usage and output noted."""

from __future__ import annotations

import json

from tests.support.sinks import RowSink
from zengate.dialects.base import Context, Target
from zengate.dialects.openai.request import passthrough_body
from zengate.dialects.openai.stream import Passthrough
from zengate.dialects.sse import SSEParser
from zengate.exchange import adapters
from zengate.exchange.records import RequestRecord
from zengate.upstream.client import UpstreamError


def record() -> RequestRecord:
    return RequestRecord("req_1", "POST", "/v1/chat/completions", "openai", RowSink())


def OpenAIPassthrough(rec: RequestRecord, *, include_usage: bool, client_model: str = "big-pickle"):
    """The OpenAI dialect's passthrough as the pump drives it (the upstream's model is big-pickle)."""
    context = Context(client_model, "big-pickle", include_usage=include_usage)
    return adapters.Passthrough(Passthrough(context, rec))


def chunk(delta=None, finish=None, usage=None, choices=True, model="big-pickle"):
    body = {"id": "c1", "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []}
    if usage is not None:
        body["usage"] = usage
    return "data: " + json.dumps(body) + "\n\n"


ZEN_STREAM = (
    chunk({"role": "assistant", "content": ""})
    + chunk({"reasoning_content": "thinking…"})
    + chunk({"content": "Hel"}) + chunk({"content": "lo"})
    + chunk(finish="stop")
    + chunk(choices=False, usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15})
    + "data: [DONE]\n\n"
    + 'data: {"cost": "0.0004"}\n\n'
)


def run(adapter, wire: str) -> list[bytes]:
    out = []
    for event in SSEParser().feed(wire.encode()):
        out.extend(adapter.on_event(event))
        if adapter.ended:
            break
    else:
        out.extend(adapter.on_end())
    return out


def payloads(out: list[bytes]) -> list:
    text = b"".join(out).decode()
    return [json.loads(p[6:]) if p[6:] != "[DONE]" else "[DONE]" for p in text.strip().split("\n\n")]


def test_nothing_after_done_and_usage_dropped_unless_asked():
    rec = record()
    adapter = OpenAIPassthrough(rec, include_usage=False)
    out = payloads(run(adapter, ZEN_STREAM))
    assert out[-1] == "[DONE]"
    assert not any(isinstance(p, dict) and "cost" in p for p in out)
    assert all(p == "[DONE]" or p["choices"] for p in out)  # usage-only chunk dropped
    assert out[1]["choices"][0]["delta"] == {"reasoning_content": "thinking…"}  # untouched
    assert (rec.input_tokens, rec.output_tokens) == (12, 3)  # yet still logged
    assert "".join(rec.output_parts) == "Hello"


def test_usage_chunk_forwarded_when_asked():
    adapter = OpenAIPassthrough(record(), include_usage=True)
    out = payloads(run(adapter, ZEN_STREAM))
    assert out[-2]["usage"]["total_tokens"] == 15 and out[-2]["choices"] == []
    assert out[-1] == "[DONE]"


def test_events_pass_byte_for_byte():
    adapter = OpenAIPassthrough(record(), include_usage=True)
    wire = chunk({"content": "x"}) + chunk(finish="stop") + "data: [DONE]\n\n"
    assert b"".join(run(adapter, wire)) == wire.encode()


def test_model_renamed_when_client_used_an_alias():
    adapter = OpenAIPassthrough(record(), include_usage=False, client_model="claude-sonnet-5")
    out = payloads(run(adapter, chunk({"content": "x"}) + chunk(finish="stop") + "data: [DONE]\n\n"))
    assert [p["model"] for p in out[:-1]] == ["claude-sonnet-5", "claude-sonnet-5"]


def test_eof_after_finish_gets_done_and_eof_before_finish_gets_error():
    ok = OpenAIPassthrough(record(), include_usage=False)
    assert payloads(run(ok, chunk({"content": "x"}) + chunk(finish="stop")))[-1] == "[DONE]"
    rec = record()
    cut = OpenAIPassthrough(rec, include_usage=False)
    last = payloads(run(cut, chunk({"content": "x"})))[-1]
    assert last["error"]["type"] == "upstream_error" and "ended before" in last["error"]["message"]
    assert cut.error


def test_failure_mid_stream_becomes_error_chunk():
    adapter = OpenAIPassthrough(record(), include_usage=False)
    [out] = adapter.on_failure(UpstreamError(504, "the upstream did not answer in time", "timeout"))
    body = json.loads(out.decode()[6:])
    assert body["error"]["code"] == "upstream_timeout" and "mid-stream" in body["error"]["message"]


def test_upstream_body_asks_for_usage_and_maps_model():
    body = {"model": "claude-haiku-4-5", "stream": True, "messages": [], "stream_options": {"foo": 1}}
    sent = passthrough_body(body, Target("gpt-5-nano", stream=True))
    assert sent["model"] == "gpt-5-nano"
    assert sent["stream_options"] == {"foo": 1, "include_usage": True}
    assert body["stream_options"] == {"foo": 1}  # the client's body is not mutated
    assert "stream_options" not in passthrough_body({"model": "x", "messages": []}, Target("gpt-5-nano"))
