"""Upstream faults through the real gateway (gunicorn, gevent workers), for both client APIs.

The upstream drops the connection mid-stream, hangs, sends garbage, answers 200 with an HTML page,
ends a stream without its end marker or breaks the chunked encoding. Each case checks what the
client gets (an error in its own API's shape, or a terminal error event once a stream has
started — never a stream that looks complete), that the request log records the failure, that
no secret leaks, and that the gateway answers the next request normally.

Every pairing of client API and upstream protocol is covered: OpenAI clients on an OpenAI
(``big-pickle``) and an Anthropic-protocol (``minimax-m2.5-free``) upstream, Anthropic clients on
an OpenAI upstream (``claude-sonnet-5`` → ``big-pickle``, translated) and an Anthropic one
(passthrough).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
import requests

from tests.support.fake_upstream import (
    Reply,
    anthropic_text,
    broken_chunk,
    cut_body,
    drop_after,
    end_after,
    error,
    garbage,
    gzipped,
    hang,
    html,
    inject,
    openai_text,
)
from tests.support.gateway import GatewayProcess

pytestmark = pytest.mark.e2e

UPSTREAM_SECRET = "zen-upstream-secret-7f3a9c"  # the upstream key: must never reach a client or the log
SMALL_TIMEOUT = 1.0  # upstream_read_timeout while an upstream hangs


@pytest.fixture(scope="module")
def gateway_process(tmp_path_factory, e2e_upstream):
    """This module's gateway, with an upstream key to look for in what clients and the log see."""
    gw = GatewayProcess(tmp_path_factory.mktemp("faults"), e2e_upstream.url,
                        env={"ZENGATE_SETTINGS_TTL": "0", "OPENCODE_API_KEY": UPSTREAM_SECRET})
    gw.start()
    gw.set_setting("fallbacks", {"minimax-m2.5-free": []})  # no fallback may hide its faults (none is built in)
    yield gw
    gw.stop()


@dataclass(frozen=True)
class Pairing:
    client: str  # the client's API: openai | anthropic
    model: str  # the model the client asks for
    upstream: str  # the model the upstream is asked for (what replies are scripted on)
    protocol: str  # the upstream's protocol: openai | anthropic

    def answer(self, text: str = "Hello from upstream") -> Reply:
        """A normal answer in the upstream's protocol."""
        return openai_text(text) if self.protocol == "openai" else anthropic_text(text)

    def __str__(self) -> str:
        return f"{self.client}-on-{self.protocol}"


PAIRINGS = [
    Pairing("openai", "big-pickle", "big-pickle", "openai"),
    Pairing("openai", "minimax-m2.5-free", "minimax-m2.5-free", "anthropic"),
    Pairing("anthropic", "claude-sonnet-5", "big-pickle", "openai"),
    Pairing("anthropic", "minimax-m2.5-free", "minimax-m2.5-free", "anthropic"),
]
pairings = pytest.mark.parametrize("p", PAIRINGS, ids=str)


# --- talking to the gateway ------------------------------------------------------------------

def call(gw: GatewayProcess, p: Pairing, *, stream: bool, marker: str) -> requests.Response:
    """One request in the client's API; ``marker`` finds its request-log row."""
    messages = [{"role": "user", "content": f"fault test {marker}"}]
    if p.client == "openai":
        return requests.post(gw.url + "/v1/chat/completions", timeout=30,
                             json={"model": p.model, "messages": messages, "stream": stream})
    return requests.post(gw.url + "/v1/messages", timeout=30, headers={"anthropic-version": "2023-06-01"},
                         json={"model": p.model, "max_tokens": 64, "messages": messages, "stream": stream})


def error_message(p: Pairing, r: requests.Response, status: int) -> str:
    """The message of a JSON error answer, after checking its status and the client API's shape."""
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    if p.client == "openai":
        assert set(body) == {"error"}, body
        err = body["error"]
        assert isinstance(err["type"], str) and err["type"] and "code" in err, body
    else:
        assert body["type"] == "error" and set(body) == {"type", "error"}, body
        err = body["error"]
        assert isinstance(err["type"], str) and err["type"], body
    assert isinstance(err["message"], str) and err["message"], body
    assert UPSTREAM_SECRET not in r.text
    return err["message"]


def stream_events(p: Pairing, r: requests.Response) -> list[tuple[str | None, Any]]:
    """A 200 event stream as (event name, parsed data) pairs; every event is checked to be well formed."""
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/event-stream"), r.headers
    assert UPSTREAM_SECRET not in r.text
    events: list[tuple[str | None, Any]] = []
    for block in r.text.strip().split("\n\n"):
        lines = block.split("\n")
        if p.client == "openai":
            assert len(lines) == 1 and lines[0].startswith("data: "), block
            data = lines[0][6:]
            events.append((None, data if data == "[DONE]" else json.loads(data)))
        else:
            assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
            name, data = lines[0][7:], json.loads(lines[1][6:])
            assert data["type"] == name, block
            events.append((name, data))
    return events


def stream_error(p: Pairing, r: requests.Response) -> str:
    """The message of the terminal error event of a stream that had started; nothing claims success."""
    events = stream_events(p, r)
    assert events, "an empty stream"
    if p.client == "openai":
        payloads = [d for _, d in events]
        assert "[DONE]" not in payloads, payloads
        assert all(isinstance(d, dict) for d in payloads)
        *rest, last = payloads
        assert set(last) == {"error"} and isinstance(last["error"]["type"], str), last
        assert not any(c.get("finish_reason") for d in rest for c in d.get("choices") or []), payloads
        assert rest and rest[0]["choices"][0]["delta"].get("role") == "assistant"  # it had started
        return last["error"]["message"]
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-1] == "error", names
    assert "message_stop" not in names and "message_delta" not in names, names
    err = events[-1][1]
    assert set(err) == {"type", "error"} and isinstance(err["error"]["type"], str), err
    return err["error"]["message"]


def assert_says(message: str, *needles: str) -> None:
    lowered = message.lower()
    assert any(n in lowered for n in needles), f"{message!r} says none of {needles}"
    assert UPSTREAM_SECRET not in message


def log_row(gw: GatewayProcess, marker: str) -> dict:
    """The request-log row of the request carrying ``marker`` (rows are written off the request path)."""
    def find() -> list[dict]:
        rows = gw.admin("GET", "/_stats/requests?limit=50").json()["requests"]
        return [row for row in rows if marker in json.dumps(row.get("input_messages"))]
    row = gw.wait_for(find)[0]
    assert UPSTREAM_SECRET not in json.dumps(row)
    return row


def assert_serving(gw: GatewayProcess, p: Pairing, *, stream: bool) -> None:
    """Right after a fault, a normal request of the same kind succeeds."""
    r = call(gw, p, stream=stream, marker=f"after-{uuid.uuid4().hex}")
    if not stream:
        assert r.status_code == 200, r.text
        body = r.json()
        text = (body["choices"][0]["message"]["content"] if p.client == "openai"
                else "".join(b.get("text", "") for b in body["content"]))
        assert text == "Hello from upstream"
        return
    events = stream_events(p, r)
    if p.client == "openai":
        assert events[-1][1] == "[DONE]"
        text = "".join(c["delta"].get("content") or "" for _, d in events[:-1] for c in d["choices"])
    else:
        assert events[-1][0] == "message_stop"
        text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    assert text == "Hello from upstream"


NORMAL_TIMEOUT = 300


NORMAL_BUDGET = 600


def normal_timeout(gw: GatewayProcess) -> None:
    """The usual upstream_read_timeout and first_byte_budget again: a normal answer must not race short ones."""
    gw.set_setting("upstream_read_timeout", NORMAL_TIMEOUT)
    gw.set_setting("first_byte_budget", NORMAL_BUDGET)


@pytest.fixture
def small_timeout(gw):
    """A short upstream_read_timeout (silence after the first byte) and first_byte_budget (the wait for
    it) while the upstream hangs (restored afterwards in any case)."""
    gw.set_setting("upstream_read_timeout", SMALL_TIMEOUT)
    gw.set_setting("first_byte_budget", SMALL_TIMEOUT)
    yield
    normal_timeout(gw)


# --- non-streaming requests: an error status and body in the client's shape ---------------------

NON_STREAM_FAULTS: dict[str, tuple[Callable[[Pairing], Reply], int, tuple[str, ...]]] = {
    "html-200": (lambda p: html(200), 502, ("html",)),
    "garbage-200": (lambda p: garbage(), 502, ("not json", "non-json")),
    "json-not-an-answer": (lambda p: garbage(b'{"status": "ok", "result": null}'), 502, ("not a chat completion",
                                                                                         "not an anthropic message")),
    "body-cut-short": (lambda p: cut_body(p.answer()), 502, ("closed the connection before the answer was complete",)),
    "json-error-with-200": (lambda p: error(200, "quota exceeded on this key"), 502, ("quota exceeded",)),
}


@pairings
@pytest.mark.parametrize("fault", NON_STREAM_FAULTS)
def test_non_stream_fault_is_a_clear_error(gw, up, p, fault):
    reply, status, needles = NON_STREAM_FAULTS[fault]
    up.script(p.upstream, reply(p))
    marker = uuid.uuid4().hex
    message = error_message(p, call(gw, p, stream=False, marker=marker), status)
    assert_says(message, *needles)
    row = log_row(gw, marker)
    assert row["status"] == status and row["error"] == message
    assert_serving(gw, p, stream=False)


@pairings
def test_non_stream_hang_is_504(gw, up, p, small_timeout):
    up.script(p.upstream, hang(30))
    marker = uuid.uuid4().hex
    message = error_message(p, call(gw, p, stream=False, marker=marker), 504)
    assert_says(message, "did not start answering")
    assert up.wait_for(lambda: up.aborted_hangs == 1), "the gateway left the hung connection open"
    assert log_row(gw, marker)["status"] == 504
    normal_timeout(gw)
    assert_serving(gw, p, stream=False)


def assert_times_out(gw: GatewayProcess, up, p: Pairing, reply: Reply, says: str, *, stream: bool) -> None:
    """``reply`` leaves the gateway waiting: a 504 saying ``says``, logged; then it serves again."""
    up.script(p.upstream, reply)
    marker = uuid.uuid4().hex
    message = error_message(p, call(gw, p, stream=stream, marker=marker), 504)
    assert_says(message, says)
    assert log_row(gw, marker)["status"] == 504
    normal_timeout(gw)
    assert_serving(gw, p, stream=stream)


@pairings
def test_non_stream_body_going_silent_is_504(gw, up, p, small_timeout):
    """The head and half the body arrive, then nothing: a 504 that says the answer stalled."""
    assert_times_out(gw, up, p, cut_body(p.answer(), stall=30), "did not start answering", stream=False)


@pairings
def test_non_stream_gzip_answer_is_decoded(gw, up, p):
    up.script(p.upstream, gzipped(p.answer("Hello through gzip")))
    r = call(gw, p, stream=False, marker=uuid.uuid4().hex)
    assert r.status_code == 200, r.text
    body = r.json()
    text = body["choices"][0]["message"]["content"] if p.client == "openai" else body["content"][0]["text"]
    assert text == "Hello through gzip"


# --- streaming requests that fail before their first event: still a status and a JSON error ------

EARLY_STREAM_FAULTS: dict[str, tuple[Callable[[Pairing], Reply], int, tuple[str, ...]]] = {
    "html-200": (lambda p: html(200), 502, ("html",)),
    "json-garbage-200": (lambda p: garbage(), 502, ("application/json instead of an event stream",)),
    "json-error-with-200": (lambda p: error(200, "quota exceeded on this key"), 502, ("quota exceeded",)),
    "dropped-before-any-event": (lambda p: drop_after(0, p.answer()), 502, ("closed the connection",)),
    "empty-stream": (lambda p: end_after(0, p.answer()), 502, ("ended before",)),
    "garbage-event-first": (lambda p: inject(0, p.answer()), 502, ("not valid json",)),
}


@pairings
@pytest.mark.parametrize("fault", EARLY_STREAM_FAULTS)
def test_stream_fault_before_the_first_event_keeps_its_status(gw, up, p, fault):
    reply, status, needles = EARLY_STREAM_FAULTS[fault]
    up.script(p.upstream, reply(p))
    marker = uuid.uuid4().hex
    message = error_message(p, call(gw, p, stream=True, marker=marker), status)
    assert_says(message, *needles)
    row = log_row(gw, marker)
    assert row["status"] == status and row["error"] == message and row["stream"] is True
    assert_serving(gw, p, stream=True)


@pairings
def test_stream_hang_before_headers_is_504(gw, up, p, small_timeout):
    assert_times_out(gw, up, p, hang(30), "did not start answering", stream=True)


# --- streams that had started: a terminal error event in the client's protocol -------------------

# four frames in: the role chunk and three words (OpenAI), or message_start, ping, the text block's
# start and its first delta (Anthropic) — never the end of the answer
N = 4

IN_BAND_ERROR = {
    "openai": b'data: {"error": {"message": "upstream overloaded", "type": "overloaded_error"}}\n\n',
    "anthropic": b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
                 b'"message": "upstream overloaded"}}\n\n',
}

MID_STREAM_FAULTS: dict[str, tuple[Callable[[Pairing], Reply], tuple[str, ...]]] = {
    "connection-dropped": (lambda p: drop_after(N, p.answer()), ("closed the connection",)),
    "ended-without-end-marker": (lambda p: end_after(N, p.answer()), ("ended before",)),
    "garbage-event": (lambda p: inject(N, p.answer()), ("not valid json",)),
    "non-object-event": (lambda p: inject(N, p.answer(), b"data: [1, 2, 3]\n\n"), ("not a json object",)),
    "chunk-cut-short": (lambda p: broken_chunk(N, p.answer()), ("closed the connection",)),
    "chunk-size-garbled": (lambda p: broken_chunk(N, p.answer(), how="bad-size"), ("chunked encoding is malformed",)),
    # an error event in the upstream's stream, after which it carries on as if nothing happened
    "error-event-then-more": (lambda p: inject(N, p.answer(), IN_BAND_ERROR[p.protocol]), ("upstream overloaded",)),
}


@pairings
@pytest.mark.parametrize("fault", MID_STREAM_FAULTS)
def test_mid_stream_fault_ends_with_an_error_event(gw, up, p, fault):
    reply, needles = MID_STREAM_FAULTS[fault]
    up.script(p.upstream, reply(p))
    marker = uuid.uuid4().hex
    message = stream_error(p, call(gw, p, stream=True, marker=marker))
    assert_says(message, *needles)
    row = log_row(gw, marker)
    assert row["status"] == 200 and row["stream"] is True  # the stream had started: its status was sent
    assert_says(row["error"], *needles)
    assert_serving(gw, p, stream=True)


@pairings
def test_upstream_silent_mid_stream_times_out(gw, up, p, small_timeout):
    up.script(p.upstream, drop_after(N, p.answer(), stall=30))
    marker = uuid.uuid4().hex
    message = stream_error(p, call(gw, p, stream=True, marker=marker))
    assert_says(message, "did not answer in time", "silent")
    assert up.wait_for(lambda: up.aborted_hangs == 1), "the gateway left the stalled connection open"
    row = log_row(gw, marker)
    assert row["status"] == 200 and row["error"].startswith("timeout")
    normal_timeout(gw)
    assert_serving(gw, p, stream=True)


# --- a non-streaming client on a streamed upstream (stream_upstream): nothing was sent yet -------

@pytest.fixture
def stream_upstream(gw):
    gw.set_setting("stream_upstream", True)
    yield
    gw.set_setting("stream_upstream", False)


@pairings
@pytest.mark.parametrize("fault", ["connection-dropped", "ended-without-end-marker", "garbage-event"])
def test_folded_stream_fault_is_a_clear_error(gw, up, p, fault, stream_upstream):
    reply, needles = MID_STREAM_FAULTS[fault]
    up.script(p.upstream, reply(p))
    marker = uuid.uuid4().hex
    message = error_message(p, call(gw, p, stream=False, marker=marker), 502)
    assert_says(message, *needles)
    assert up.received(model=p.upstream)[0].stream is True
    row = log_row(gw, marker)
    assert row["status"] == 502 and row["error"] == message
    assert_serving(gw, p, stream=False)


# --- before the first byte a fault is one more reason to try the next model ----------------------

def test_stream_fault_before_the_first_event_falls_back(gw, up):
    p = PAIRINGS[3]  # an Anthropic client on minimax-m2.5-free, falling back to big-pickle (translated)
    gw.set_setting("fallbacks", {"minimax-m2.5-free": ["big-pickle"]})
    try:
        for fault in (html(200), drop_after(0, p.answer()), inject(0, p.answer())):
            up.reset()
            up.script("minimax-m2.5-free", fault)
            marker = uuid.uuid4().hex
            r = call(gw, p, stream=True, marker=marker)
            events = stream_events(p, r)
            assert events[-1][0] == "message_stop" and r.headers["x-zengate-model"] == "big-pickle"
            assert [q.model for q in up.received(path="/messages") + up.received(path="/chat/completions")] == [
                "minimax-m2.5-free", "big-pickle"]
            row = log_row(gw, marker)
            assert row["status"] == 200 and not row["error"]
            attempts = row["attempts"] if isinstance(row["attempts"], list) else json.loads(row["attempts"])
            assert [(a["model"], a["status"]) for a in attempts] == [("minimax-m2.5-free", 502), ("big-pickle", 200)]
    finally:
        gw.set_setting("fallbacks", {"minimax-m2.5-free": []})


# --- the official SDKs raise a clear error, they do not hang or return half an answer -------------

def openai_sdk(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-anything", max_retries=0, timeout=30)


def anthropic_sdk(gw: GatewayProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="sk-anything", max_retries=0, timeout=30)


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("model", ["big-pickle", "minimax-m2.5-free"])
def test_openai_sdk_raises_on_faults(gw, up, model):
    p = next(x for x in PAIRINGS if x.client == "openai" and x.model == model)
    client = openai_sdk(gw)
    up.script(p.upstream, drop_after(N, p.answer()))
    with pytest.raises(openai.APIError) as exc:
        list(client.chat.completions.create(model=model, messages=HI, stream=True))
    assert "closed the connection" in exc.value.message

    up.script(p.upstream, end_after(N, p.answer()))
    with pytest.raises(openai.APIError) as exc:
        list(client.chat.completions.create(model=model, messages=HI, stream=True))
    assert "ended before" in exc.value.message

    up.script(p.upstream, html(200))
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model=model, messages=HI)
    assert exc.value.status_code == 502 and "html" in exc.value.message.lower()

    up.script(p.upstream, cut_body(p.answer()))
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model=model, messages=HI)
    assert exc.value.status_code == 502
    assert client.chat.completions.create(model=model, messages=HI).choices[0].message.content == \
        "Hello from upstream"


@pytest.mark.parametrize("model", ["claude-sonnet-5", "minimax-m2.5-free"])
def test_anthropic_sdk_raises_on_faults(gw, up, model, small_timeout):
    p = next(x for x in PAIRINGS if x.client == "anthropic" and x.model == model)
    client = anthropic_sdk(gw)
    up.script(p.upstream, inject(N, p.answer()))
    with pytest.raises(anthropic.APIStatusError) as exc:
        with client.messages.stream(model=model, max_tokens=64, messages=HI) as stream:
            stream.get_final_message()
    assert "not valid json" in str(exc.value).lower()

    up.script(p.upstream, drop_after(N, p.answer(), stall=30))
    with pytest.raises(anthropic.APIStatusError) as exc:
        with client.messages.stream(model=model, max_tokens=64, messages=HI) as stream:
            stream.get_final_message()
    assert "did not answer in time" in str(exc.value)

    up.script(p.upstream, garbage())
    with pytest.raises(anthropic.APIStatusError) as exc:
        client.messages.create(model=model, max_tokens=64, messages=HI)
    assert exc.value.status_code == 502 and exc.value.body["type"] == "error"

    up.script(p.upstream, hang(30))
    with pytest.raises(anthropic.APIStatusError) as exc:
        client.messages.create(model=model, max_tokens=64, messages=HI)
    assert exc.value.status_code == 504
    normal_timeout(gw)
    assert client.messages.create(model=model, max_tokens=64, messages=HI).content[0].text == "Hello from upstream"
