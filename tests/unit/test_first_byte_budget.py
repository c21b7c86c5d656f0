"""One budget for the time before the first byte, over all of a request's attempts.

The arithmetic (each attempt's share, the deadline's timeouts) is checked as pure functions; then
the pieces that apply it run against the real local upstream (tests/support/fake_upstream.py)
over real sockets: the upstream client, the relay's pump (with and without heartbeats) and JSON
reads, the fallback loop, and the proxy loop. Every timing assertion has a floor as well as a
ceiling, so that waiting too little fails as surely as waiting too long.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, replace

import pytest
import urllib3

from tests.support.fake_upstream import (
    FakeUpstream,
    Reply,
    anthropic_raw,
    cut_body,
    drop_after,
    error,
    hang,
    openai_raw,
    openai_text,
)
from tests.support.sinks import RowSink
from zengate.dialects import anthropic, openai
from zengate.dialects.base import Context
from zengate.exchange import adapters, relay, routing
from zengate.exchange.catalog import ModelInfo
from zengate.exchange.records import RequestRecord
from zengate.exchange.routing import Cooldowns, Route
from zengate.exchange.serve import Answer, Options, first_byte_share, serve
from zengate.settings import SPECS
from zengate.upstream.client import (
    DEADLINE_SLACK,
    LAST_MOMENT,
    FirstByteDeadline,
    FirstByteTimeout,
    UpstreamClient,
    UpstreamError,
)
from zengate.upstream.egress import Egress

#: How late an answer may come on this machine (two shared cores, a test suite beside it).
LATE = 0.6


class MemorySettings:
    """The settings interface over a dict; everything else at its default."""

    def __init__(self, **values):
        self.values = values

    def get(self, name):
        return self.values.get(name, SPECS[name].default)

    def set(self, name, value, *, internal=False):
        self.values[name] = value


@pytest.fixture(scope="module")
def upstream():
    up = FakeUpstream().start()
    yield up
    up.stop()


@pytest.fixture
def up(upstream):
    upstream.reset()
    return upstream


def new_client(**settings) -> UpstreamClient:
    return UpstreamClient(MemorySettings(**settings), pool_size=4)


#: Records the tests made; a pump given up at its deadline leaves its record to the fallback loop.
_records: list[RequestRecord] = []


def record(stream: bool = False) -> RequestRecord:
    made = RequestRecord("req_1", "POST", "/v1/chat/completions", "openai", RowSink(), stream=stream)
    _records.append(made)
    return made


@pytest.fixture(autouse=True)
def _finish_records():
    """Finish what the fallback loop would have finished, so that no stream stays counted in
    ``zengate_open_streams`` for the tests after these."""
    yield
    for made in _records:
        if not made.done:
            made.finish(504, "given up by the test")
    _records.clear()


def route(up: FakeUpstream, model: str, protocol: str = "openai") -> Route:
    return Route(client_model="client-model", upstream_model=model, base_url=up.url + "/v1", protocol=protocol,
                 key="public", tier="zen", model_id=model)


def body(model: str = "m", *, stream: bool) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}).encode()


def send(client: UpstreamClient, r: Route, *, stream: bool, deadline: FirstByteDeadline):
    return client.send(r.url(), body(r.upstream_model, stream=stream), key=r.key, protocol=r.protocol,
                       stream=stream, deadline=deadline)


class Stopwatch:
    def __enter__(self):
        self.began = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.began

    def between(self, low: float, high: float) -> bool:
        return low - DEADLINE_SLACK <= self.seconds <= high


# --- the arithmetic -------------------------------------------------------------------------------

def test_an_attempt_leaves_half_for_a_fallback_and_the_last_takes_the_rest():
    assert first_byte_share(600, more=True) == 300
    assert first_byte_share(600, more=False) == 600
    assert first_byte_share(0.5, more=True) == 0.25


def test_hanging_attempts_never_wait_longer_than_the_budget_in_all():
    left, shares = 600.0, []
    for more in (True, True, True, False):  # max_attempts 4, every one hangs its share out
        shares.append(first_byte_share(left, more))
        left -= shares[-1]
    assert shares == [300, 150, 75, 75] and left == 0


def test_the_setting_is_generous_and_bounded():
    spec = SPECS["first_byte_budget"]
    assert spec.default == 600 and spec.kind is float
    assert spec.default / 2 >= SPECS["upstream_read_timeout"].default  # a first attempt waits as long as before
    assert (spec.minimum, spec.maximum) == (1, 3600)


def test_the_deadline_bounds_connecting_and_the_head_by_what_is_left():
    deadline = FirstByteDeadline.starting_now(5, after=300)
    timeout = deadline.timeout(10)
    assert 4.9 < timeout.total <= 5 and timeout.connect_timeout == timeout.total
    timeout.start_connect()
    assert 4.9 < timeout.read_timeout <= 5
    short = deadline.timeout(2, 40)  # a proxy try: its own connect and read timeouts, within the deadline
    assert short.connect_timeout == 2
    short.start_connect()
    assert 4.9 < short.read_timeout <= 5
    roomy = FirstByteDeadline.starting_now(100, after=300).timeout(2, 40)
    roomy.start_connect()
    assert roomy.connect_timeout == 2 and roomy.read_timeout == 40


def test_a_passed_deadline_is_a_first_byte_timeout():
    deadline = FirstByteDeadline(time.monotonic() - 0.01, 2.5, after=300)
    assert deadline.passed()
    for call in (deadline.left, lambda: deadline.timeout(10)):
        with pytest.raises(FirstByteTimeout) as exc:
            call()
        assert exc.value.status == 504 and exc.value.kind == "timeout" and exc.value.seconds == 2.5
        assert exc.value.message == "the upstream did not start answering within 2.5 s"


def test_reads_that_begin_at_the_deadline_still_take_what_has_arrived():
    passed = FirstByteDeadline(time.monotonic() - 0.01, 1, after=300)
    assert passed.read_timeout() == LAST_MOMENT  # not an error before the read: the bytes may be there
    assert 4.9 < FirstByteDeadline.starting_now(5, after=300).read_timeout() <= 5


def test_only_a_timeout_at_the_deadline_becomes_a_first_byte_timeout():
    passed = FirstByteDeadline(time.monotonic() - 0.01, 1, after=300)
    pending = FirstByteDeadline.starting_now(60, after=300)
    timeout = UpstreamError(504, "the upstream did not answer in time", "timeout")
    refused = UpstreamError(502, "could not reach the upstream", "connection")
    assert isinstance(passed.failure(timeout), FirstByteTimeout)
    assert passed.failure(refused) is refused
    assert pending.failure(timeout) is timeout  # another timeout (connecting), not the deadline's


# --- the upstream client and the relay, on real sockets -------------------------------------------

def test_an_upstream_that_says_nothing_is_given_up_at_the_deadline(up):
    up.script("m", hang(30))
    client = new_client()
    with Stopwatch() as watch, pytest.raises(FirstByteTimeout) as exc:
        send(client, route(up, "m"), stream=False, deadline=FirstByteDeadline.starting_now(0.5, after=300))
    assert watch.between(0.5, 0.5 + LATE), watch.seconds
    assert exc.value.seconds == 0.5
    assert up.wait_for(lambda: up.aborted_hangs == 1), "the hung connection was left open"


def test_a_json_answer_must_be_in_by_the_deadline(up):
    up.script("m", cut_body(openai_text("hi"), stall=30))  # the head and half the body, then nothing
    client = new_client()
    deadline = FirstByteDeadline.starting_now(0.5, after=300)
    with Stopwatch() as watch, pytest.raises(FirstByteTimeout):
        response = send(client, route(up, "m"), stream=False, deadline=deadline)
        relay.read_answer(client, response, deadline)
    assert watch.between(0.5, 0.5 + LATE), watch.seconds


def openai_pump(response, rec: RequestRecord, deadline: FirstByteDeadline):
    adapter = adapters.Passthrough(openai.DIALECT.passthrough(Context("m", "m"), rec))
    return relay.pump(response, adapter, rec, deadline=deadline)


def test_a_stream_silent_after_its_head_is_given_up_at_the_deadline(up):
    up.script("m", drop_after(0, openai_text("hi"), stall=30))
    client, rec = new_client(), record(stream=True)
    deadline = FirstByteDeadline.starting_now(0.5, after=300)
    with Stopwatch() as watch, pytest.raises(FirstByteTimeout):
        openai_pump(send(client, route(up, "m"), stream=True, deadline=deadline), rec, deadline)
    assert watch.between(0.5, 0.5 + LATE), watch.seconds
    assert rec.ttfb_ms is None and not rec.sink.rows  # left to the fallback loop


def test_events_that_give_the_client_nothing_do_not_stop_the_clock(up):
    """An upstream that keeps the line busy with comments, and never begins: still one deadline."""
    comments = [b": processing\n\n"] * 40
    up.script("m", openai_raw(comments, delay=0.05))
    client, rec = new_client(), record(stream=True)
    deadline = FirstByteDeadline.starting_now(0.5, after=300)
    with Stopwatch() as watch, pytest.raises(FirstByteTimeout):
        openai_pump(send(client, route(up, "m"), stream=True, deadline=deadline), rec, deadline)
    assert watch.between(0.5, 0.5 + LATE), watch.seconds


def test_after_the_first_byte_the_stream_gets_its_read_timeout_back(up):
    """Gaps longer than the attempt's share, once the stream has begun, are no timeout."""
    up.script("m", openai_text("one two three", chunks=3, delay=0.8))
    client, rec = new_client(), record(stream=True)
    deadline = FirstByteDeadline.starting_now(0.5, after=30)
    response = send(client, route(up, "m"), stream=True, deadline=deadline)
    stream = openai_pump(response, rec, deadline)
    assert response.raw.connection.sock.gettimeout() == 30
    out = b"".join(stream)
    assert out.endswith(b"data: [DONE]\n\n") and b"three" in out
    assert rec.sink.rows[0]["error"] is None


def anthropic_pump(response, rec: RequestRecord, deadline: FirstByteDeadline, ping: float):
    adapter = adapters.Passthrough(anthropic.DIALECT.passthrough(Context("m", "m"), rec))
    return relay.pump(response, adapter, rec, heartbeat=(ping, b"event: ping\n\n"), deadline=deadline)


MESSAGE_START = {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": None,
    "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 0}}}
ANTHROPIC_REST = [
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
     "usage": {"output_tokens": 1}},
    {"type": "message_stop"},
]


def test_heartbeats_do_not_count_as_the_first_byte(up):
    """With pings on, a first chunk that gives the client nothing, then silence: no ping goes out
    (none may precede the first event) and the deadline still ends the attempt."""
    up.script("m", drop_after(1, anthropic_raw([b": warming up\n\n"]), stall=30))
    client, rec = new_client(), record(stream=True)
    deadline = FirstByteDeadline.starting_now(0.6, after=300)
    r = route(up, "m", "anthropic")
    with Stopwatch() as watch, pytest.raises(FirstByteTimeout):
        anthropic_pump(send(client, r, stream=True, deadline=deadline), rec, deadline, ping=0.1)
    assert watch.between(0.6, 0.6 + LATE), watch.seconds


def test_with_heartbeats_the_deadline_holds_between_chunks_that_give_the_client_nothing(up):
    """Pings rarer than the share, and the upstream's helper reader inside a read that began before
    the last chunk: the wait for the helper ends at the deadline all the same."""
    up.script("m", drop_after(2, anthropic_raw([b": warming up\n\n", b": still warming\n\n"], delay=0.9),
                              stall=30))
    client, rec = new_client(), record(stream=True)
    deadline = FirstByteDeadline.starting_now(1.0, after=300)
    r = route(up, "m", "anthropic")
    with Stopwatch() as watch, pytest.raises(FirstByteTimeout):
        anthropic_pump(send(client, r, stream=True, deadline=deadline), rec, deadline, ping=5)
    assert watch.between(1.0, 1.0 + LATE), watch.seconds


@dataclass
class Paced(Reply):
    """SSE frames, each followed by its own pause."""

    frames: list[tuple[bytes, float]]

    def send(self, ex) -> None:
        ex.stream(self.frames)


def frame(event: dict) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def test_a_read_begun_before_the_first_byte_does_not_end_at_the_deadline(up):
    """With heartbeats a helper reads the upstream: the read it began before the first event came
    must not time out at the first-byte deadline once the stream is under way."""
    up.script("m", Paced([(b": warming up\n\n", 0.3), (frame(MESSAGE_START), 1.0),
                          *((frame(event), 0.0) for event in ANTHROPIC_REST)]))
    client, rec = new_client(), record(stream=True)
    deadline = FirstByteDeadline.starting_now(0.6, after=30)
    response = send(client, route(up, "m", "anthropic"), stream=True, deadline=deadline)
    chunks = list(anthropic_pump(response, rec, deadline, ping=0.1))
    assert chunks[0].startswith(b"event: message_start") and b"event: ping\n\n" in chunks
    assert chunks[-1].startswith(b"event: message_stop") and rec.sink.rows[0]["error"] is None


def test_heartbeats_go_on_after_the_first_byte_past_the_share(up):
    up.script("m", anthropic_raw([MESSAGE_START, *ANTHROPIC_REST], delay=0.4))
    client, rec = new_client(), record(stream=True)
    deadline = FirstByteDeadline.starting_now(0.3, after=30)
    response = send(client, route(up, "m", "anthropic"), stream=True, deadline=deadline)
    chunks = list(anthropic_pump(response, rec, deadline, ping=0.1))
    assert chunks[0].startswith(b"event: message_start")
    assert chunks.count(b"event: ping\n\n") >= 3  # the pauses after the first event are filled
    assert chunks[-1].startswith(b"event: message_stop") and rec.sink.rows[0]["error"] is None


# --- the fallback loop ----------------------------------------------------------------------------

class Routes:
    """What serve needs of routing.Attempts: the routes in order; another model may follow each."""

    def __init__(self, routes: list[Route]):
        self._routes = iter(routes)
        self.skipped: list[str] = []

    def __iter__(self):
        return self

    def __next__(self) -> Route:
        return next(self._routes)

    def next_model(self, r: Route) -> None:
        self.skipped.append(r.upstream_model)

    def fallback_follows(self, r: Route) -> bool:
        return True


class KnowingRoutes(Routes):
    def __init__(self, routes: list[Route], follows: bool):
        super().__init__(routes)
        self.follows = follows
        self.asked: list[str] = []

    def fallback_follows(self, r: Route) -> bool:
        self.asked.append(r.upstream_model)
        return self.follows


def run(client: UpstreamClient, routes, *, stream: bool = False):
    rec = record(stream=stream)
    payload = {"model": "client-model", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    with Stopwatch() as watch:
        try:
            result = serve(client, routes, payload, rec, Cooldowns(), dialect=openai.DIALECT, options=Options())
            if not isinstance(result, Answer):
                result = b"".join(result)
        except UpstreamError as err:
            result = err
    return result, rec, watch


def test_a_hung_route_leaves_its_fallback_half_the_budget(up):
    up.script("slow", hang(30))
    up.script("quick", openai_text("from the fallback"))
    client = new_client(first_byte_budget=1.2)
    routes = Routes([route(up, "slow"), route(up, "quick")])
    result, rec, watch = run(client, routes)
    assert isinstance(result, Answer), result
    assert result.body["choices"][0]["message"]["content"] == "from the fallback"
    assert watch.between(0.6, 1.2 + LATE), watch.seconds
    slow, quick = rec.attempts
    assert (slow["model"], slow["status"], slow["timeout"]) == ("slow", 504, pytest.approx(0.6, abs=DEADLINE_SLACK))
    assert re.fullmatch(r"the upstream did not start answering within 0\.(6|5\d) s", slow["error"]), slow
    assert (quick["model"], quick["status"]) == ("quick", 200) and 0.2 <= quick["timeout"] <= 0.3
    assert routes.skipped == ["slow"]  # a timeout moves on to the next model, not the next key


def test_a_hung_stream_leaves_its_fallback_half_the_budget(up):
    up.script("slow", drop_after(0, openai_text("never"), stall=30))
    up.script("quick", openai_text("from the fallback"))
    result, rec, watch = run(new_client(first_byte_budget=1.2), Routes([route(up, "slow"), route(up, "quick")]),
                             stream=True)
    assert isinstance(result, bytes) and b"fallback" in result and result.endswith(b"data: [DONE]\n\n"), result
    assert watch.between(0.6, 1.2 + LATE), watch.seconds
    assert [(a["model"], a["status"]) for a in rec.attempts] == [("slow", 504), ("quick", 200)]


def test_every_route_hanging_is_one_504_within_the_budget(up):
    up.script("slow-1", hang(30))
    up.script("slow-2", hang(30))
    client = new_client(first_byte_budget=1.2, max_attempts=2)  # the second is the last: it gets the rest
    result, rec, watch = run(client, Routes([route(up, "slow-1"), route(up, "slow-2")]))
    assert isinstance(result, FirstByteTimeout), result
    assert watch.between(1.2, 1.2 + LATE), watch.seconds
    assert result.status == 504 and re.fullmatch(
        r"no upstream started answering within 1\.2 s \(first_byte_budget\); tried slow-1 on zen \(no first byte "
        r"in 0\.(6|5\d) s\), slow-2 on zen \(no first byte in 0\.(6|5\d) s\)", result.message), result.message
    assert [a["timeout"] for a in rec.attempts] == [pytest.approx(0.6, abs=DEADLINE_SLACK)] * 2


def test_what_failed_otherwise_is_named_too(up):
    up.script("broken", error(503, "overloaded", type="overloaded_error"))
    up.script("slow", hang(30))
    result, _, watch = run(new_client(first_byte_budget=1.0, max_attempts=2),
                             Routes([route(up, "broken"), route(up, "slow")]))
    assert isinstance(result, FirstByteTimeout) and watch.between(1.0, 1.0 + LATE), (result, watch.seconds)
    assert re.fullmatch(r"no upstream started answering within 1 s \(first_byte_budget\); tried broken on zen "
                        r"\(HTTP 503\), slow on zen \(no first byte in (0\.9\d*|1) s\)", result.message), result.message


def test_a_lone_route_gets_the_whole_budget_when_routing_says_no_fallback_follows(up):
    up.script("slow", hang(30))
    routes = KnowingRoutes([route(up, "slow")], follows=False)
    result, rec, watch = run(new_client(first_byte_budget=1.0), routes)
    assert isinstance(result, FirstByteTimeout) and watch.between(1.0, 1.0 + LATE), (result, watch.seconds)
    assert routes.asked == ["slow"] and rec.attempts[0]["timeout"] == pytest.approx(1.0, abs=DEADLINE_SLACK)
    assert re.fullmatch(r"the upstream did not start answering within 1 s \(first_byte_budget\); "
                        r"tried slow on zen \(no first byte in (1|0\.9\d) s\)", result.message), result.message


def test_while_a_fallback_may_follow_an_attempt_leaves_room(up):
    up.script("slow", hang(30))
    result, rec, watch = run(new_client(first_byte_budget=1.0), Routes([route(up, "slow")]))
    assert isinstance(result, FirstByteTimeout) and watch.between(0.5, 0.5 + LATE), (result, watch.seconds)
    assert rec.attempts[0]["timeout"] == pytest.approx(0.5, abs=DEADLINE_SLACK)
    assert re.search(r"within 0\.(5\d?|4\d) s \(first_byte_budget\)", result.message), result.message


def test_routing_says_whether_another_model_may_follow_a_timeout():
    zen = routing.Backend("zen", "http://upstream.test/v1", ("k1", "k2"))

    def candidate(model: str) -> routing.Candidate:
        return routing.Candidate(model, ModelInfo(model, model, True), zen)

    plan = routing.Plan("a", [candidate("a"), candidate("b")])
    routes = plan.routes(Cooldowns(), "conversation", now=0)
    first = next(routes)
    assert routes.fallback_follows(first)  # b comes after a's keys
    routes.next_model(first)
    second = next(routes)
    assert second.model_id == "b" and not routes.fallback_follows(second)
    single = plan.routes(Cooldowns(), "conversation", now=0, max_attempts=1)
    assert not single.fallback_follows(next(single))  # the only attempt there will be
    resting = Cooldowns()
    for route_b in (second, replace(second, key_index=1 - second.key_index, key=({"k1", "k2"} - {second.key}).pop())):
        resting.note(route_b, 429, "60", now=0)
    lone = plan.routes(resting, "conversation", now=0)
    assert not lone.fallback_follows(next(lone))  # b rests on both keys: nothing follows a timeout


# --- the proxy loop -------------------------------------------------------------------------------

class ProxiedClient:
    """Stands in for UpstreamClient under Egress: every proxy try raises ``outcome``."""

    def __init__(self, outcome: UpstreamError | None):
        self.outcome = outcome
        self.timeouts: list[object] = []

    def send(self, url, payload, *, key, protocol, stream, extra_headers=None, proxies=None, timeout=None,
             deadline=None):
        self.timeouts.append(timeout)
        raise self.outcome


def egress(**settings) -> Egress:
    import requests

    values = {"proxy_mode": "on", "proxy_static": "http://10.0.0.1:81,http://10.0.0.2:82",
              "proxy_connect_timeout": 2.0, "upstream_read_timeout": 40.0, **settings}
    return Egress(MemorySettings(**values), requests.Session(), geonode_url="http://geonode.test")


def test_proxy_tries_end_by_the_deadline():
    out = egress()
    client = ProxiedClient(UpstreamError(502, "proxy said no", "http"))
    with pytest.raises(UpstreamError):
        out.send(client, "http://upstream.test/v1/chat/completions", b"{}", key="k", protocol="openai",
                 stream=True, deadline=FirstByteDeadline.starting_now(5, after=300))
    assert len(client.timeouts) == 2
    for timeout in client.timeouts:
        assert isinstance(timeout, urllib3.Timeout) and timeout.connect_timeout == 2 and timeout.total <= 5
        timeout.start_connect()
        assert timeout.read_timeout <= 5  # not upstream_read_timeout: the deadline comes first


def test_no_proxy_is_tried_past_the_deadline_and_the_slow_one_is_not_blamed():
    out = egress()
    deadline = FirstByteDeadline.starting_now(0.2, after=300)
    client = ProxiedClient(None)

    def slow_send(*args, **kwargs):
        client.timeouts.append(kwargs["timeout"])
        while not deadline.passed():
            time.sleep(0.01)
        raise FirstByteTimeout(0.2)

    client.send = slow_send
    with pytest.raises(FirstByteTimeout) as exc:
        out.send(client, "http://upstream.test/v1/chat/completions", b"{}", key="k", protocol="openai",
                 stream=True, deadline=deadline)
    assert len(client.timeouts) == 1  # the second proxy is not tried
    assert exc.value.message == ("the upstream did not start answering within 0.2 s through proxies — "
                                 "tried 1 proxy: no first byte in time")
    assert "10.0.0." in exc.value.detail and "10.0.0." not in exc.value.message
    assert all(p.failures == 0 for p in out.pool.proxies())
