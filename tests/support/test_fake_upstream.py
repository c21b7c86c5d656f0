"""Self-tests for the fake OpenCode Zen upstream (plain ``requests`` clients)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import requests
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from .fake_upstream import (
    ANY_MODEL,
    FakeUpstream,
    anthropic_raw,
    anthropic_text,
    anthropic_tool_use,
    broken_chunk,
    cut_body,
    drop_after,
    end_after,
    error,
    garbage,
    hang,
    html,
    inject,
    openai_raw,
    openai_text,
    openai_tool_calls,
    responses_custom_tool_call,
    responses_function_call,
    responses_text,
    running_upstream,
)


@pytest.fixture
def up() -> Iterator[FakeUpstream]:
    with running_upstream() as server:
        yield server


def sse_lines(resp: requests.Response) -> Iterator[str]:
    """Non-empty SSE lines, yielded as soon as they arrive."""
    for line in resp.iter_lines(chunk_size=None, decode_unicode=True):
        if line:
            yield line


def data_payloads(resp: requests.Response) -> list[str]:
    return [line[len("data: "):] for line in sse_lines(resp) if line.startswith("data: ")]


def anthropic_events(resp: requests.Response) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    event = ""
    for line in sse_lines(resp):
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            out.append((event, json.loads(line[len("data: "):])))
    return out


def chat(up: FakeUpstream, model: str = "big-pickle", **extra: Any) -> requests.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return requests.post(
        up.url + "/chat/completions", json=body, stream=bool(extra.get("stream")), timeout=10
    )


# --------------------------------------------------------------------------- OpenAI


def test_non_stream_default_and_recording(up: FakeUpstream) -> None:
    resp = requests.post(
        up.url + "/chat/completions?trace=1",
        json={"model": "gpt-5-nano", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer sk-up", "x-opencode-project": "zen", "X-Api-Key": "k"},
        timeout=10,
    )
    assert resp.status_code == 200
    assert resp.headers["Content-Length"] == str(len(resp.content))
    data = resp.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "gpt-5-nano"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "Hello from upstream"}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}

    [rec] = up.requests
    assert (rec.method, rec.path, rec.query) == ("POST", "/chat/completions", {"trace": "1"})
    assert rec.headers["authorization"] == "Bearer sk-up"
    assert rec.headers["AUTHORIZATION"] == "Bearer sk-up"
    assert rec.header("x-api-key") == "k"
    assert "X-OpenCode-Project" in rec.headers
    assert rec.model == "gpt-5-nano" and rec.stream is False
    assert json.loads(rec.raw) == rec.body


def test_stream_default_has_cost_frame_after_done_and_no_usage(up: FakeUpstream) -> None:
    with chat(up, stream=True) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert resp.headers["Transfer-Encoding"] == "chunked"
        payloads = data_payloads(resp)
    assert payloads[-2:] == ["[DONE]", '{"cost": "0.0012"}']
    chunks = [json.loads(p) for p in payloads[:-2]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "big-pickle" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "Hello from upstream"
    assert len(chunks) == 1 + 3 + 1  # role, one chunk per word, finish
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any("usage" in c for c in chunks)
    assert up.wait_for(lambda: up.completed_streams == 1)


def test_stream_usage_reasoning_and_chunk_count(up: FakeUpstream) -> None:
    up.script("glm-4.7-free", openai_text("abcdefghij", chunks=4, reasoning="let me think",
                                          usage=(7, 3), cost_frame=False, finish="length"))
    with chat(up, "glm-4.7-free", stream=True, stream_options={"include_usage": True}) as resp:
        payloads = data_payloads(resp)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "let me think"
    contents = [d["content"] for d in deltas[1:] if "content" in d]
    assert contents == ["ab", "cde", "fg", "hij"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def test_tool_calls_stream_interleaved_and_non_stream(up: FakeUpstream) -> None:
    calls = [("get_weather", '{"city": "Paris"}'), ("read", {"path": "/tmp/x"})]
    up.script("big-pickle", openai_tool_calls(calls, interleave=True, split=3),
              openai_tool_calls(calls))
    with chat(up, stream=True) as resp:
        payloads = data_payloads(resp)
    assert payloads[-2] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-2]]
    frags = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1]]
    assert [f["index"] for f in frags] == [0, 1, 0, 1, 0, 1]
    assert [f.get("id") for f in frags[:2]] == ["call_0", "call_1"]
    assert all("id" not in f and "name" not in f["function"] for f in frags[2:])
    args = ["".join(f["function"]["arguments"] for f in frags if f["index"] == i) for i in (0, 1)]
    assert [json.loads(a) for a in args] == [{"city": "Paris"}, {"path": "/tmp/x"}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    data = chat(up).json()
    msg = data["choices"][0]["message"]
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    assert [(t["id"], t["function"]["name"]) for t in msg["tool_calls"]] == [
        ("call_0", "get_weather"), ("call_1", "read")]


def test_openai_raw_sends_exact_frames_and_ends_without_finish(up: FakeUpstream) -> None:
    up.script("big-pickle", openai_raw(['{"choices":[{"index":0,"delta":{"content":"x"}}]}',
                                        b"data: {not json\n\n", b": comment\n\n"]))
    with chat(up, stream=True) as resp:
        body = resp.content
    assert body == (b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
                    b"data: {not json\n\n: comment\n\n")


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_stream_with_thinking_and_non_stream(up: FakeUpstream) -> None:
    up.script("claude-sonnet-4-5", anthropic_text("Hi there", thinking="hmm ok"))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    with requests.post(up.url + "/messages?beta=true", json=body, stream=True, timeout=10) as resp:
        events = anthropic_events(resp)
    names = [e for e, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert all(e == d["type"] for e, d in events)
    deltas = [d["delta"] for e, d in events if e == "content_block_delta"]
    assert "".join(d.get("thinking", "") for d in deltas) == "hmm ok"
    assert "".join(d.get("text", "") for d in deltas) == "Hi there"
    assert {"type": "signature_delta", "signature": "sig_fake"} in deltas
    assert events[-2][1]["usage"] == {"output_tokens": 5}
    assert up.requests[0].query == {"beta": "true"}

    body["stream"] = False
    msg = requests.post(up.url + "/messages", json=body, timeout=10).json()
    assert msg["type"] == "message" and msg["model"] == "claude-sonnet-4-5"
    assert msg["content"] == [{"type": "text", "text": "Hello from upstream"}]
    assert msg["stop_reason"] == "end_turn"
    assert msg["usage"] == {"input_tokens": 10, "output_tokens": 5}


def test_anthropic_tool_use_and_raw(up: FakeUpstream) -> None:
    up.script("m", anthropic_tool_use([("bash", '{"cmd": "ls -la"}')], text="Running", split=2),
              anthropic_raw([{"type": "message_start", "message": {}}, ("error", {"type": "error"}),
                             "not-json"]))
    body = {"model": "m", "max_tokens": 10, "stream": True, "messages": []}
    with requests.post(up.url + "/messages", json=body, stream=True, timeout=10) as resp:
        events = anthropic_events(resp)
    starts = [d["content_block"] for e, d in events if e == "content_block_start"]
    assert starts == [{"type": "text", "text": ""},
                      {"type": "tool_use", "id": "toolu_0", "name": "bash", "input": {}}]
    partial = [d["delta"]["partial_json"] for e, d in events
               if e == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    assert len(partial) == 2 and json.loads("".join(partial)) == {"cmd": "ls -la"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"

    with requests.post(up.url + "/messages", json=body, stream=True, timeout=10) as resp:
        raw = resp.content
    assert raw == (b'event: message_start\ndata: {"type": "message_start", "message": {}}\n\n'
                   b'event: error\ndata: {"type": "error"}\n\ndata: not-json\n\n')


# --------------------------------------------------------------------------- OpenAI Responses

RESPONSES_EVENTS = TypeAdapter(ResponseStreamEvent)


def responses_events(up: FakeUpstream, model: str = "gpt-5", **extra: Any) -> list[dict[str, Any]]:
    """A streamed ``POST /responses``'s events, each checked against the SDK's event types."""
    body = {"model": model, "stream": True, "input": "hi", **extra}
    with requests.post(up.url + "/v1/responses", json=body, stream=True, timeout=10) as resp:
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "text/event-stream"
        events = anthropic_events(resp)
    payloads = []
    for n, (name, payload) in enumerate(events):
        assert name == payload["type"] and payload["sequence_number"] == n
        RESPONSES_EVENTS.validate_python(payload)
        payloads.append(payload)
    return payloads


def sdk_final(payloads: list[dict[str, Any]]) -> Response | None:
    """The final Response the openai SDK's own stream accumulator makes of the events."""
    state = ResponseStreamState(input_tools=openai.omit, text_format=openai.omit)
    for payload in payloads:
        state.handle_event(RESPONSES_EVENTS.validate_python(payload))
    return state._completed_response


def test_responses_default_stream_and_json(up: FakeUpstream) -> None:
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}]
    payloads = responses_events(up, tools=tools)
    assert [p["type"] for p in payloads] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]
    final = sdk_final(payloads)
    assert final is not None and final.output_text == "Hello from upstream" and final.model == "gpt-5"
    assert final.usage.input_tokens == 10 and final.usage.output_tokens == 5 and final.usage.total_tokens == 15
    assert payloads[-1]["response"]["tools"] == tools
    assert payloads[0]["response"]["status"] == "in_progress" and payloads[0]["response"]["output"] == []
    assert up.received("/v1/responses")[0].stream is True

    body = requests.post(up.url + "/responses", json={"model": "gpt-5", "input": "hi"}, timeout=10).json()
    response = Response.model_validate(body)
    assert response.output_text == "Hello from upstream" and response.status == "completed"
    assert response.id.startswith("resp_fake")
    count = requests.post(up.url + "/responses/input_tokens", json={"input": "hello"}, timeout=10).json()
    assert count["object"] == "response.input_tokens" and count["input_tokens"] >= 1


def test_responses_text_with_reasoning_and_chunks(up: FakeUpstream) -> None:
    up.script("gpt-5", responses_text("abcdef", chunks=3, reasoning=["think a", "think b"], encrypted="ENC",
                                      usage=(7, 3)))
    payloads = responses_events(up)
    added = [p["item"] for p in payloads if p["type"] == "response.output_item.added"]
    done = [p["item"] for p in payloads if p["type"] == "response.output_item.done"]
    assert [i["type"] for i in added] == ["reasoning", "message"]
    assert "encrypted_content" not in added[0] and done[0]["encrypted_content"] == "ENC"
    summary = [p for p in payloads if p["type"].startswith("response.reasoning_summary_text.delta")]
    assert "".join(p["delta"] for p in summary if p["summary_index"] == 1) == "think b"
    assert [p["delta"] for p in payloads if p["type"] == "response.output_text.delta"] == ["ab", "cd", "ef"]
    final = sdk_final(payloads)
    assert final is not None and final.output_text == "abcdef"
    assert [s.text for s in final.output[0].summary] == ["think a", "think b"]
    assert final.output[0].encrypted_content == "ENC" and final.usage.output_tokens == 3


def test_responses_function_and_custom_tool_calls(up: FakeUpstream) -> None:
    patch = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"
    up.script("gpt-5", responses_function_call("exec_command", {"cmd": "ls"}, call_id="call_7", split=4),
              responses_function_call("spawn_agent", '{"message": "go"}', namespace="multi_agent_v1"),
              responses_custom_tool_call("apply_patch", patch, call_id="call_8"),
              responses_custom_tool_call("apply_patch", patch))
    payloads = responses_events(up)
    deltas = [p["delta"] for p in payloads if p["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) == 4 and json.loads("".join(deltas)) == {"cmd": "ls"}
    final = sdk_final(payloads)
    assert final is not None and final.status == "completed"
    [call] = final.output
    assert (call.type, call.name, call.call_id, json.loads(call.arguments)) == (
        "function_call", "exec_command", "call_7", {"cmd": "ls"})
    [spawn] = sdk_final(responses_events(up)).output  # type: ignore[union-attr]
    assert (spawn.namespace, spawn.name) == ("multi_agent_v1", "spawn_agent")
    payloads = responses_events(up)
    inputs = [p["delta"] for p in payloads if p["type"] == "response.custom_tool_call_input.delta"]
    assert "".join(inputs) == patch and len(inputs) == 3
    [custom] = sdk_final(payloads).output  # type: ignore[union-attr]
    assert (custom.type, custom.name, custom.call_id, custom.input) == ("custom_tool_call", "apply_patch", "call_8",
                                                                        patch)
    body = requests.post(up.url + "/responses", json={"model": "gpt-5", "input": "x"}, timeout=10).json()
    assert Response.model_validate(body).output[0].input == patch


def test_responses_incomplete(up: FakeUpstream) -> None:
    up.script("gpt-5", responses_text("cut sho", incomplete="max_output_tokens"))
    payloads = responses_events(up)
    assert payloads[-1]["type"] == "response.incomplete"
    response = Response.model_validate(payloads[-1]["response"])
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "cut sho" and sdk_final(payloads) is None  # no response.completed


# --------------------------------------------------------------------------- scripting


def test_script_is_fifo_per_model_then_default(up: FakeUpstream) -> None:
    up.script("a", openai_text("one"), openai_text("two"))
    up.script("b", error(429, headers={"retry-after": "3"}))
    assert up.pending() == 3 and up.pending("a") == 2
    assert chat(up, "b").status_code == 429
    assert chat(up, "a").json()["choices"][0]["message"]["content"] == "one"
    assert chat(up, "b").json()["choices"][0]["message"]["content"] == "Hello from upstream"
    assert chat(up, "a").json()["choices"][0]["message"]["content"] == "two"
    assert chat(up, "a").json()["choices"][0]["message"]["content"] == "Hello from upstream"
    assert up.pending() == 0
    assert [r.model for r in up.requests] == ["b", "a", "b", "a", "a"]
    assert len(up.received("/chat/completions", model="a")) == 3


def test_any_model_queue_is_a_fallback(up: FakeUpstream) -> None:
    up.script(ANY_MODEL, openai_text("wild"))
    up.script("x", openai_text("specific"))
    assert chat(up, "x").json()["choices"][0]["message"]["content"] == "specific"
    assert chat(up, "x").json()["choices"][0]["message"]["content"] == "wild"
    assert chat(up, "x").json()["choices"][0]["message"]["content"] == "Hello from upstream"


def test_error_shapes_and_html(up: FakeUpstream) -> None:
    up.script("m",
              error(429, "slow down", headers={"retry-after": "3"}),
              error(403, "free tier exhausted", type="FreeTierError"),
              error(400, "context length exceeded", type="invalid_request_error",
                    shape="openai", code="context_length_exceeded"),
              error(500, "boom", type="api_error"),
              html(502))
    r = chat(up, "m")
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert r.json() == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    r = chat(up, "m")
    assert r.status_code == 403 and r.json()["error"]["type"] == "FreeTierError"
    r = chat(up, "m", stream=True)
    assert r.status_code == 400 and r.json() == {"error": {
        "message": "context length exceeded", "type": "invalid_request_error",
        "code": "context_length_exceeded"}}
    r = chat(up, "m")
    assert r.status_code == 500 and r.json()["error"]["message"] == "boom"
    r = chat(up, "m")
    assert r.status_code == 502 and r.headers["Content-Type"].startswith("text/html")
    assert r.text.startswith("<html>")


def test_models_endpoint_status_and_404(up: FakeUpstream) -> None:
    data = requests.get(up.url + "/models", timeout=10).json()
    assert data["object"] == "list"
    ids = [m["id"] for m in data["data"]]
    assert {"big-pickle", "gpt-5-nano", "glm-4.7-free", "claude-sonnet-4-5"} <= set(ids)
    assert all(m["object"] == "model" and "created" in m and "owned_by" in m for m in data["data"])
    up.models = [{"id": "only", "object": "model", "created": 1, "owned_by": "me"}]
    assert [m["id"] for m in requests.get(up.url + "/models", timeout=10).json()["data"]] == ["only"]
    up.models_status = 500
    assert requests.get(up.url + "/models", timeout=10).status_code == 500
    r = requests.post(up.url + "/nope", json={}, timeout=10)
    assert r.status_code == 404 and r.json()["type"] == "error"
    r = requests.post(up.url + "/chat/completions", data=b"{not json", timeout=10)
    assert r.status_code == 400 and up.requests[-1].body is None
    up.reset()
    assert up.requests == [] and up.models_status == 200
    assert len(requests.get(up.url + "/models", timeout=10).json()["data"]) == 4


# --------------------------------------------------------------------------- connections


def test_keep_alive_reuses_connection_and_chunked_request_body(up: FakeUpstream) -> None:
    with requests.Session() as s:
        for stream in (False, True, False):
            body = {"model": "m", "stream": stream}
            r = s.post(up.url + "/chat/completions", json=body, stream=stream, timeout=10)
            r.content  # noqa: B018 - drain so the connection goes back to the pool
        r = s.post(up.url + "/chat/completions", data=(p for p in [b'{"model":', b' "chunky"}']),
                   headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 200
    assert up.requests[-1].body == {"model": "chunky"}
    assert len({rec.client for rec in up.requests}) == 1


def test_client_closing_mid_stream_counts_a_disconnect(up: FakeUpstream) -> None:
    up.script("big-pickle", openai_text(chunks=40, delay=0.05))
    resp = chat(up, stream=True)
    first = next(sse_lines(resp))
    assert first.startswith("data: ")
    resp.close()
    assert up.wait_for(lambda: up.disconnects == 1)
    assert up.completed_streams == 0


def test_drop_after_closes_mid_stream(up: FakeUpstream) -> None:
    up.script("big-pickle", drop_after(2, openai_text("a b c d e")))
    with chat(up, stream=True) as resp:
        lines = sse_lines(resp)
        got = [next(lines), next(lines)]
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            next(lines)
    assert all(line.startswith("data: ") for line in got)
    assert up.disconnects == 0 and up.completed_streams == 0


def test_garbage_is_sent_verbatim_whatever_was_asked(up: FakeUpstream) -> None:
    up.script("big-pickle", garbage(), garbage(b"<oops>", status=200, content_type="text/plain"))
    r = chat(up, stream=True)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.content == b"\x00\x9f{not json at all"
    assert chat(up).text == "<oops>"


def test_end_after_ends_the_stream_cleanly_without_its_end(up: FakeUpstream) -> None:
    up.script("big-pickle", end_after(2, openai_text("a b c d e")))
    with chat(up, stream=True) as resp:
        payloads = data_payloads(resp)
    assert len(payloads) == 2 and "[DONE]" not in payloads
    assert up.wait_for(lambda: up.completed_streams == 1)


def test_inject_puts_a_frame_among_the_others(up: FakeUpstream) -> None:
    up.script("big-pickle", inject(1, openai_text("a b", cost_frame=False), b"data: {oops\n\n"))
    with chat(up, stream=True) as resp:
        payloads = data_payloads(resp)
    assert payloads[1] == "{oops" and payloads[-1] == "[DONE]" and len(payloads) == 6


@pytest.mark.parametrize("how", ["partial", "bad-size"])
def test_broken_chunk_breaks_the_encoding(up: FakeUpstream, how: str) -> None:
    up.script("big-pickle", broken_chunk(1, openai_text("a b c"), how=how))
    with chat(up, stream=True) as resp:
        lines = sse_lines(resp)
        assert next(lines).startswith("data: ")
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            list(lines)


def test_cut_body_promises_more_than_it_sends(up: FakeUpstream) -> None:
    up.script("big-pickle", cut_body(openai_text()), cut_body(error(500, "boom"), keep=0.2))
    for _ in range(2):
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            chat(up)


def test_events_are_flushed_immediately(up: FakeUpstream) -> None:
    # The server stalls after the first event: a client can only see it if it was flushed.
    up.script("big-pickle", drop_after(1, openai_text(), stall=30))
    start = time.monotonic()
    with chat(up, stream=True) as resp:
        assert json.loads(next(sse_lines(resp))[6:])["choices"][0]["delta"]["role"] == "assistant"
    assert time.monotonic() - start < 5
    assert up.wait_for(lambda: up.aborted_hangs == 1)  # stall ended because the client left


def test_hang_times_out_client_and_detects_abort(up: FakeUpstream) -> None:
    up.script("big-pickle", hang(30))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(up.url + "/chat/completions", json={"model": "big-pickle"}, timeout=0.3)
    assert up.wait_for(lambda: up.aborted_hangs == 1)
    assert len(up.requests) == 1


def test_hang_then_reply_and_hang_then_close(up: FakeUpstream) -> None:
    up.script("m", hang(0.1, then=openai_text("late")), hang(0.05))
    assert chat(up, "m").json()["choices"][0]["message"]["content"] == "late"
    with pytest.raises(requests.exceptions.ConnectionError):
        chat(up, "m")


def test_thousand_requests_through_200_workers(up: FakeUpstream) -> None:
    def one(i: int) -> int:
        r = requests.post(up.url + "/chat/completions", json={"model": f"m{i % 7}"}, timeout=30)
        assert r.json()["model"] == f"m{i % 7}"
        return r.status_code

    with ThreadPoolExecutor(200) as pool:
        statuses = list(pool.map(one, range(1000)))
    assert statuses == [200] * 1000
    assert len(up.requests) == 1000


def test_thousand_simultaneous_open_connections(up: FakeUpstream) -> None:
    up.script(ANY_MODEL, *[hang(60) for _ in range(1000)])
    body = b'{"model": "burst"}'
    request = (b"POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    socks = []
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", int(up.url.rsplit(":", 1)[1])), timeout=10)
            s.sendall(request)
            socks.append(s)
        assert up.wait_for(lambda: len(up.requests) == 1000, timeout=30)
    finally:
        for s in socks:
            s.close()
    assert up.wait_for(lambda: up.aborted_hangs == 1000, timeout=30)


def test_wait_for_times_out_and_stop_is_prompt() -> None:
    up = FakeUpstream().start()
    up.script("m", hang(60))
    port = int(up.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n"
                  b'{"model":"m"}')
        assert up.wait_for(lambda: len(up.requests) == 1)
        assert up.wait_for(lambda: up.handled == 1, timeout=0.05) is False
        start = time.monotonic()
        up.stop()
        up.stop()
        assert time.monotonic() - start < 2
        assert s.recv(1) == b""  # the hanging connection was cut
    assert up.aborted_hangs == 0
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(up.url + "/models", timeout=2)
