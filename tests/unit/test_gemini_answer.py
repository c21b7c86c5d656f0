"""The internal form's answers and streams as the Gemini API's GenerateContentResponse
(zengate/dialects/gemini/answer.py), and errors in Google's shape."""

from __future__ import annotations

import json

import pytest

from zengate.dialects.base import Context
from zengate.dialects.gemini.answer import (
    Chunks,
    Encoder,
    error_body,
    rate_limit_details,
    render_answer,
    usage_metadata,
)

ANSWER = {"id": "msg_abc", "type": "message", "role": "assistant", "model": "big-pickle", "stop_reason": "tool_use",
          "content": [{"type": "thinking", "thinking": "let me see", "signature": "s"},
                      {"type": "text", "text": "Checking."},
                      {"type": "tool_use", "id": "fc_1", "name": "run_shell_command", "input": {"command": "ls"},
                       "x_item": {"thought_signature": "c2ln"}}],
          "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4}}


def context(thoughts: bool = False, alt: str = "sse") -> Context:
    extras = {"alt": alt, **({"include_thoughts": True} if thoughts else {})}
    return Context(client_model="gemini-2.5-pro", request={"x_extras": {"gemini": extras}})


def test_an_answer_is_one_candidate_with_parts_finish_and_usage():
    out = render_answer(ANSWER, context())
    [candidate] = out["candidates"]
    assert candidate["content"] == {"role": "model", "parts": [
        {"text": "Checking."},
        {"functionCall": {"name": "run_shell_command", "args": {"command": "ls"}, "id": "fc_1"},
         "thoughtSignature": "c2ln"}]}
    assert candidate["finishReason"] == "STOP" and candidate["index"] == 0
    assert out["usageMetadata"] == {"promptTokenCount": 14, "candidatesTokenCount": 5, "totalTokenCount": 19,
                                    "cachedContentTokenCount": 4}
    assert out["modelVersion"] == "gemini-2.5-pro" and out["responseId"] == "abc"


def test_thought_parts_only_when_asked_and_an_empty_answer_still_has_a_part():
    parts = render_answer(ANSWER, context(thoughts=True))["candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": "let me see", "thought": True}
    empty = render_answer({**ANSWER, "content": [], "stop_reason": "max_tokens"}, context())
    assert empty["candidates"][0]["content"]["parts"] == [{"text": ""}]
    assert empty["candidates"][0]["finishReason"] == "MAX_TOKENS"


STREAM = [
    ("message_start", {"type": "message_start", "message": {"id": "msg_s", "usage": {"input_tokens": 7}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "thinking", "thinking": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "thinking_delta", "thinking": "hm"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("content_block_start", {"type": "content_block_start", "index": 2,
                             "content_block": {"type": "tool_use", "id": "fc_2", "name": "read_file", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2,
                             "delta": {"type": "input_json_delta", "partial_json": '{"path": '}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2,
                             "delta": {"type": "input_json_delta", "partial_json": '"a.txt"}'}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 2}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
    ("message_stop", {"type": "message_stop"}),
]


def test_a_stream_sends_text_as_it_comes_and_a_call_whole():
    chunks = Chunks(context())
    out = [chunk for name, data in STREAM for chunk in chunks.feed(name, data)]
    parts = [c["candidates"][0]["content"]["parts"] for c in out]
    assert parts == [[{"text": "Hi"}], [{"functionCall": {"name": "read_file", "args": {"path": "a.txt"},
                                                          "id": "fc_2"}}], []]
    last = out[-1]
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"] == {"promptTokenCount": 7, "candidatesTokenCount": 9, "totalTokenCount": 16}
    assert all("finishReason" not in c["candidates"][0] and "usageMetadata" not in c for c in out[:-1])
    assert {c["responseId"] for c in out} == {"s"} and chunks.done
    assert chunks.finish() == []


def test_a_streams_thoughts_when_asked_and_its_bytes():
    data = b"".join(Encoder(context(thoughts=True)).encode(STREAM))
    events = [json.loads(line[6:]) for line in data.decode().split("\n\n") if line]
    assert events[0]["candidates"][0]["content"]["parts"] == [{"text": "hm", "thought": True}]
    assert data.startswith(b"data: {") and data.endswith(b"\n\n")


def test_errors_and_unfinished_streams_end_with_one_error_in_googles_shape():
    chunks = Chunks(context())
    chunks.feed(*STREAM[0])
    [error] = chunks.feed("error", {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    assert error == {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED", "details": []}}
    assert chunks.feed(*STREAM[4]) == [] and chunks.finish() == []
    unfinished = Chunks(context())
    unfinished.feed(*STREAM[0])
    [ended] = unfinished.finish()
    assert ended["error"]["code"] == 502 and ended["error"]["status"] == "UNAVAILABLE"


def test_error_body_names_a_field_as_google_does():
    body = error_body(400, "contents: required", param="contents")
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    violation = {"field": "contents", "description": "contents: required"}
    assert body["error"]["details"] == [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                         "fieldViolations": [violation]}]
    assert error_body(418, "teapot")["error"]["status"] == "UNKNOWN"


QUOTA = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY = "type.googleapis.com/google.rpc.RetryInfo"


def test_a_429_says_its_quota_and_wait_as_gemini_cli_reads_them():
    body = error_body(429, "API key 'cli' reached its limit", retry_after="7", quota="KeyRequestsPerMinute")
    assert body["error"]["details"] == [
        {"@type": QUOTA, "violations": [{"quotaId": "KeyRequestsPerMinute",
                                         "description": "API key 'cli' reached its limit"}]},
        {"@type": RETRY, "retryDelay": "7s"}]
    assert error_body(400, "bad", retry_after="7", quota="KeyRequestsPerDay")["error"]["details"] == []


@pytest.mark.parametrize("message, retry_after, quota_id, delay", [
    ("Rate limit exceeded", "3", None, "3s"),               # an upstream's plain 429: the wait only
    ("Rate limit exceeded", None, None, None),              # nothing known: nothing claimed
    ("Free tier: daily limit reached", "3600", "UpstreamRequestsPerDay", "3600s"),
    ("You have used your 200 requests per day", None, "UpstreamRequestsPerDay", None),
    ("limit of 2 requests per minute", "1.2", None, "2s"),  # a fraction rounds up
    ("slow down", "Wed, 21 Oct 2026 07:28:00 GMT", None, None),  # an HTTP date is not a delay
    ("slow down", "nan", None, None),
    ("slow down", "inf", None, None),
    ("slow down", "-5", None, None),
])
def test_an_upstream_429_is_daily_only_when_it_says_so(message, retry_after, quota_id, delay):
    details = {d["@type"]: d for d in rate_limit_details(message, retry_after, None)}
    assert (details[QUOTA]["violations"][0]["quotaId"] if QUOTA in details else None) == quota_id
    assert (details[RETRY]["retryDelay"] if RETRY in details else None) == delay


def test_usage_metadata_of_nothing():
    assert usage_metadata(None) == {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0}


def test_without_alt_sse_a_stream_is_one_json_array_sent_an_element_at_a_time():
    encoder = Encoder(context(alt=""))
    pieces = [encoder.encode([event]) for event in STREAM]
    sent = [piece for batch in pieces for piece in batch]
    assert sent[0].startswith(b"[{") and sent[-1] == b"]" and all(p.startswith(b",\r\n{") for p in sent[1:-1])
    chunks = json.loads(b"".join(sent))
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, "STOP"]
    failed = Encoder(context(alt=""))
    failed.encode([STREAM[0]])
    assert json.loads(b"".join(failed.encode([("error", {"type": "error", "error": {
        "type": "overloaded_error", "message": "busy"}})])))[0]["error"]["code"] == 529
