"""Upstream faults in the relay: read failures mapped, non-streams refused, garbage events, and the
pump raising before the stream's first client bytes but ending a started stream with an error event."""

from __future__ import annotations

import io
import json
import queue
import threading
from collections.abc import Iterator

import pytest
import requests
import urllib3
from urllib3.exceptions import IncompleteRead, InvalidChunkLength, ProtocolError, ReadTimeoutError

from tests.support.sinks import RowSink
from zengate.dialects import anthropic, openai
from zengate.dialects.anthropic.stream import NOT_AN_OBJECT, NOT_JSON, event_json
from zengate.dialects.base import Context
from zengate.dialects.errors import ProtocolError as DialectError
from zengate.dialects.sse import Event
from zengate.exchange import adapters, relay
from zengate.exchange.records import RequestRecord
from zengate.upstream.client import UpstreamError


def record() -> RequestRecord:
    return RequestRecord("req_1", "POST", "/v1/chat/completions", "openai", RowSink(), stream=True)


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]}).encode() + b"\n\n"


class FakeResponse:
    """What the pump needs of a streamed upstream response; its body comes from ``relay.iter_body``."""

    def __init__(self, content_type: str = "text/event-stream", body: bytes = b""):
        self.status_code = 200
        self.headers = {"Content-Type": content_type}
        self.raw = urllib3.HTTPResponse(body=io.BytesIO(body), preload_content=False)
        self.closed = False

    def close(self):
        self.closed = True


@pytest.fixture
def body(monkeypatch):
    """Script the upstream body: a list of byte chunks, an exception among them is raised there."""
    script: list = []

    def fake_iter_body(response) -> Iterator[bytes]:
        for item in script:
            if isinstance(item, BaseException):
                raise item
            yield item

    monkeypatch.setattr(relay, "iter_body", fake_iter_body)
    return script


def error_of(out: bytes) -> dict:
    return json.loads(out.decode().strip()[6:])["error"]


class _Partial:
    """The little of a urllib3 response that InvalidChunkLength reads."""

    length_remaining = None

    def tell(self) -> int:
        return 0


# --- read_error ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("exc", "status", "kind", "needle"), [
    (ReadTimeoutError(None, "/", "read timed out"), 504, "timeout", "did not answer in time"),
    (requests.ConnectionError(ReadTimeoutError(None, "/", "read timed out")), 504, "timeout", "in time"),
    (TimeoutError("timed out"), 504, "timeout", "in time"),
    (ProtocolError("Response ended prematurely"), 502, "connection", "closed the connection before"),
    (requests.exceptions.ChunkedEncodingError(ProtocolError("Connection broken", IncompleteRead(3, 9))), 502,
     "connection", "closed the connection before"),
    (ProtocolError("Connection broken: InvalidChunkLength", InvalidChunkLength(_Partial(), b"zz")), 502, "protocol",
     "chunked encoding is malformed"),
    (urllib3.exceptions.DecodeError("bad gzip"), 502, "protocol", "could not be decoded"),
    (ConnectionResetError(104, "reset"), 502, "connection", "closed the connection before"),
])
def test_read_error_says_the_answer_broke_off(exc, status, kind, needle):
    err = relay.read_error(exc)
    assert (err.status, err.kind) == (status, kind) and needle in err.message


def test_read_error_keeps_upstream_errors_and_names_the_unknown():
    mine = UpstreamError(502, "x", "protocol")
    assert relay.read_error(mine) is mine
    assert relay.read_error(ValueError("?")).message == "upstream failure: ValueError"


# --- not_a_stream ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("ctype", "content", "needle"), [
    ("text/event-stream", b"data: {}\n\n", None),
    ("", b"data: {}\n\n", None),
    ("text/plain", b"data: {}\n\n", None),
    ("text/html; charset=utf-8", b"<html>maintenance</html>", "with an HTML page instead of an event stream"),
    ("application/json", b'{"type": "error", "error": {"message": "quota exceeded"}}',
     "upstream error: quota exceeded"),
    ("application/json", b'{"error": "plain"}', "upstream error: plain"),
    ("application/json; charset=utf-8", b"\x00garbage", "with application/json instead of an event stream"),
    ("application/json", b'{"choices": []}', "with application/json instead of an event stream"),
])
def test_not_a_stream(ctype, content, needle):
    err = relay.not_a_stream(FakeResponse(ctype, content))
    if needle is None:
        assert err is None
    else:
        assert err.status == 502 and err.kind == "protocol" and needle in err.message


# --- garbage events --------------------------------------------------------------------------------

def OpenAIPassthrough(rec: RequestRecord, *, include_usage: bool):
    return adapters.Passthrough(openai.DIALECT.passthrough(Context("m", "m", include_usage=include_usage), rec))


def AnthropicPassthrough(rec: RequestRecord):
    return adapters.Passthrough(anthropic.DIALECT.passthrough(Context("m", "m"), rec))


def test_event_data_must_be_a_json_object():
    assert event_json(Event(None, '{"a": 1}', b"")) == {"a": 1}
    assert event_json(Event(None, "  ", b"")) is None  # an empty keep-alive is skipped
    with pytest.raises(DialectError) as exc:
        event_json(Event(None, "{oops", b""))
    assert exc.value.message == NOT_JSON and exc.value.status == 502
    with pytest.raises(DialectError) as exc:
        event_json(Event(None, "[1, 2]", b""))
    assert exc.value.message == NOT_AN_OBJECT


@pytest.mark.parametrize("adapter", [lambda r: OpenAIPassthrough(r, include_usage=False),
                                     lambda r: AnthropicPassthrough(r)])
def test_passthroughs_neither_forward_nor_drop_garbage(adapter):
    with pytest.raises(UpstreamError):
        adapter(record()).on_event(Event(None, "<html>", b"data: <html>\n\n"))


# --- the pump ----------------------------------------------------------------------------------------

def start(response: FakeResponse, rec: RequestRecord) -> Iterator[bytes]:
    return relay.pump(response, OpenAIPassthrough(rec, include_usage=False), rec)


@pytest.mark.parametrize(("script", "needle"), [
    ([ProtocolError("Response ended prematurely")], "closed the connection before"),
    ([b"data: {oops\n\n"], NOT_JSON),
    ([b": a comment only\n\n"], "ended before"),
    ([], "ended before"),
])
def test_failure_before_the_first_event_is_raised_and_the_record_left_to_the_caller(body, script, needle):
    body.extend(script)
    response, rec = FakeResponse(), record()
    with pytest.raises(UpstreamError) as exc:
        start(response, rec)
    assert exc.value.status == 502 and needle in exc.value.message
    assert response.closed and rec.sink.rows == [] and not rec.done and rec.ttfb_ms is None
    rec.finish(exc.value.status, exc.value.message)  # the caller's part (the error handler's)


def test_an_html_page_is_refused_before_its_body_is_read(body):
    body.append(AssertionError("the body was read"))
    response, rec = FakeResponse("text/html"), record()
    with pytest.raises(UpstreamError) as exc:
        start(response, rec)
    assert "HTML page" in exc.value.message and response.closed and not rec.done
    rec.finish(exc.value.status, exc.value.message)


@pytest.mark.parametrize(("fault", "needle", "kind"), [
    (ProtocolError("Response ended prematurely"), "closed the connection before", "connection"),
    (ReadTimeoutError(None, "/", "read timed out"), "did not answer in time", "timeout"),
    (b"data: {oops\n\n", NOT_JSON, "protocol"),
])
def test_failure_after_the_first_event_ends_the_stream_with_an_error(body, fault, needle, kind):
    body.extend([chunk("Hel"), chunk("lo"), fault, chunk("never")])
    response, rec = FakeResponse(), record()
    out = list(start(response, rec))
    assert out[:2] == [chunk("Hel"), chunk("lo")] and len(out) == 3
    err = error_of(out[-1])
    assert needle in err["message"] and "mid-stream" in err["message"]
    assert response.closed
    [row] = rec.sink.rows
    assert row["status"] == 200 and row["error"].startswith(f"{kind}: ")


def test_a_complete_stream_is_unchanged(body):
    body.extend([chunk("Hi"), chunk(finish="stop"), b"data: [DONE]\n\n"])
    rec = record()
    out = list(start(FakeResponse(), rec))
    assert b"".join(out) == chunk("Hi") + chunk(finish="stop") + b"data: [DONE]\n\n"
    [row] = rec.sink.rows
    assert row["status"] == 200 and row["error"] is None


def test_a_stream_is_logged_before_its_end_goes_out_even_in_a_gevent_worker(body, monkeypatch):
    """Not left for an idle moment (as a JSON answer's record is): the next stream's first token
    would share the worker with that bookkeeping."""
    from zengate.runtime import helpers

    monkeypatch.setattr(helpers, "_under_gevent", lambda: True)  # when_idle would queue, as in a worker
    monkeypatch.setattr(helpers, "_idle_work", None)
    body.extend([chunk("Hi"), chunk(finish="stop"), b"data: [DONE]\n\n"])
    rec = record()
    stream = start(FakeResponse(), rec)
    for _ in stream:
        assert not rec.done  # still streaming
    [row] = rec.sink.rows  # the pump has ended: its record is written, with no idle moment since
    assert row["status"] == 200 and rec.done


@pytest.mark.parametrize("consumed", [0, 1])
def test_closing_a_started_stream_closes_the_upstream(body, consumed):
    """The client leaves — before the server took the primed first bytes, or after."""
    body.extend([chunk("a"), chunk("b"), chunk("c")])
    response, rec = FakeResponse(), record()
    stream = start(response, rec)
    for _ in range(consumed):
        assert next(stream) == chunk("a")
    stream.close()
    assert response.closed
    [row] = rec.sink.rows
    assert row["error"] == "client disconnected"


def test_an_error_chunk_ends_an_openai_stream(body):
    error_chunk = b'data: {"error": {"message": "upstream overloaded", "type": "overloaded_error"}}\n\n'
    body.extend([chunk("Hel"), error_chunk, chunk("lo"), chunk(finish="stop"), b"data: [DONE]\n\n"])
    rec = record()
    out = list(start(FakeResponse(), rec))
    assert out == [chunk("Hel"), error_chunk]
    assert rec.sink.rows[0]["error"] == "upstream overloaded"


@pytest.mark.parametrize("events_before_done", [0, 3])  # [DONE] in the first chunk read, or after the helper began
def test_a_heartbeat_stream_complete_before_its_body_hands_the_rest_over(body, monkeypatch, events_before_done):
    """With Anthropic pings on (a helper reads the upstream after the first chunk), a stream the
    adapter finished before the body's end (Zen's cost frame follows [DONE]) gives what is left to
    keep_connection, so the connection can go back to the pool, instead of closing it."""
    handed = []
    monkeypatch.setattr(relay, "keep_connection", lambda response, rest, tail: handed.append(rest))
    body.extend([chunk("a")] * events_before_done + [chunk(finish="stop") + b"data: [DONE]\n\n",
                                                     b'data: {"cost": "0.0012"}\n\n'])
    response, rec = FakeResponse(), record()
    stream = relay.pump(response, OpenAIPassthrough(rec, include_usage=False), rec, heartbeat=(30.0, b"ping"))
    assert b"".join(stream).endswith(b"data: [DONE]\n\n")
    [rest] = handed
    assert list(rest) == [b'data: {"cost": "0.0012"}\n\n'] and not response.closed


def test_the_rest_of_a_heartbeat_stream_is_bounded_in_time():
    more = threading.Event()

    def silent_after_the_first() -> Iterator[bytes]:
        yield b"first"
        more.wait(10)  # the upstream says nothing more: the helper waits here
        yield b"late"

    beats = relay.Heartbeat(silent_after_the_first(), interval=0.01)
    reading = iter(beats)
    assert next(reading) == b"first"
    assert next(reading) is None  # a heartbeat: the helper now reads, and nothing came
    try:
        with pytest.raises(queue.Empty):
            list(beats.rest(timeout=0.05))
    finally:
        more.set()


@pytest.mark.parametrize("split", ["same chunk", "next chunk", "two frames"])
def test_the_cost_reported_after_the_end_reaches_the_log_row(body, split):
    """Zen's cost frame follows ``[DONE]``: in the chunk that holds the end, or later. The stream
    ends for the client at ``[DONE]``; the drain reads the rest and the cost lands on the row."""
    from tests.support.waiting import wait_until

    done, cost = b"data: [DONE]\n\n", b'data: {"cost": "0.0012"}\n\n'
    end = chunk(finish="stop")
    body.extend({"same chunk": [end + done + cost], "next chunk": [end + done, cost],
                 "two frames": [end + done + cost, b'data: {"cost": 0.0003}\n\n']}[split])
    rec = record()
    out = b"".join(relay.pump(FakeResponse(), OpenAIPassthrough(rec, include_usage=False), rec))
    assert out.endswith(done) and b"cost" not in out
    expected = 0.0015 if split == "two frames" else 0.0012
    assert wait_until(lambda: rec.sink.rows and rec.sink.rows[0].get("cost") is not None, 5)
    assert rec.sink.rows[0]["cost"] == pytest.approx(expected)


@pytest.mark.parametrize(("data", "cost"), [
    ('{"cost": "0.0012"}', 0.0012), ('{"cost": 2}', 2.0), ('{"cost": "-1"}', None), ('{"cost": "nan"}', None),
    ('{"cost": true}', None), ('{"cost": null}', None), ('{"cost": "abc"}', None), ('["cost"]', None),
    ('{"costs": 1}', None), ('not json "cost"', None), ('{"cost": "1e999"}', None),
])
def test_reported_cost_reads_only_a_plain_amount(data, cost):
    from zengate.dialects.sse import reported_cost

    assert reported_cost(Event(None, data, b"")) == cost
