"""One first-byte budget over a request's attempts, through the real gateway (gunicorn, gevent).

``minimax-m2.5-free`` (an Anthropic-protocol upstream) falls back to ``big-pickle`` (an OpenAI-
protocol one), as in the issue. With ``first_byte_budget`` at a few seconds, for every client API
(OpenAI chat, Anthropic messages, OpenAI Responses), streaming and not:

* the first route hangs (before its head, or after it): the client gets the fallback's answer
  after the first attempt's share (half the budget) and before the budget is out;
* every route hangs: one 504 in the client's shape, at the budget, naming what was tried;
* heartbeats while the first route warms up are not its first byte, and once a stream has begun
  it has ``upstream_read_timeout`` again, however long the share was.

Every elapsed time is measured and checked from both sides: under the budget (plus a margin for
this machine), and over the hung attempt's share.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.support.fake_upstream import (
    anthropic_raw,
    anthropic_text,
    cut_body,
    drop_after,
    hang,
    openai_text,
)
from tests.support.gateway import GatewayProcess

pytestmark = pytest.mark.e2e

FIRST, FALLBACK = "minimax-m2.5-free", "big-pickle"
BUDGET = 3.0  # first_byte_budget in these tests
SHARE = BUDGET / 2  # the first attempt's: a fallback follows
MARGIN = 1.0  # how late an answer may be on this machine (two shared cores, other tests beside)
SLACK = 0.05  # a timer may fire this much early


@pytest.fixture(scope="module")
def gateway_process(tmp_path_factory, e2e_upstream):
    gw = GatewayProcess(tmp_path_factory.mktemp("first-byte"), e2e_upstream.url, env={"ZENGATE_SETTINGS_TTL": "0"})
    gw.start_settled(e2e_upstream)
    gw.set_setting("fallbacks", {FIRST: [FALLBACK]})
    gw.set_setting("first_byte_budget", BUDGET)
    yield gw
    gw.stop()


@dataclass(frozen=True)
class Dialect:
    """A client API: how to ask, and how to read its answers and errors."""

    name: str

    def call(self, gw: GatewayProcess, *, stream: bool, marker: str) -> requests.Response:
        text = f"first byte test {marker}"
        if self.name == "openai":
            return requests.post(gw.url + "/v1/chat/completions", timeout=BUDGET + 30, json={
                "model": FIRST, "messages": [{"role": "user", "content": text}], "stream": stream})
        if self.name == "anthropic":
            return requests.post(gw.url + "/v1/messages", timeout=BUDGET + 30,
                                 headers={"anthropic-version": "2023-06-01"},
                                 json={"model": FIRST, "max_tokens": 64, "stream": stream,
                                       "messages": [{"role": "user", "content": text}]})
        return requests.post(gw.url + "/v1/responses", timeout=BUDGET + 30,
                             json={"model": FIRST, "input": text, "stream": stream})

    def text(self, r: requests.Response, *, stream: bool) -> str:
        """The answer's text, after checking that it is complete and well formed."""
        assert r.status_code == 200, r.text
        if not stream:
            body = r.json()
            if self.name == "openai":
                return body["choices"][0]["message"]["content"]
            if self.name == "anthropic":
                return "".join(b["text"] for b in body["content"] if b["type"] == "text")
            assert body["status"] == "completed", body
            return "".join(part["text"] for item in body["output"] if item["type"] == "message"
                           for part in item["content"] if part["type"] == "output_text")
        assert r.headers["Content-Type"].startswith("text/event-stream"), r.headers
        events = sse(r.text)
        if self.name == "openai":
            assert events[-1] == (None, "[DONE]"), events[-3:]
            return "".join(c["delta"].get("content") or "" for _, d in events[:-1] for c in d["choices"])
        if self.name == "anthropic":
            names = [n for n, _ in events]
            assert names[0] == "message_start" and names[-1] == "message_stop", names
            return "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
        names = [n for n, _ in events]
        assert names[0] == "response.created" and names[-1] == "response.completed", names
        return "".join(d["delta"] for n, d in events if n == "response.output_text.delta")

    def error(self, r: requests.Response, status: int) -> str:
        """An error answer's message, after checking its status and this API's shape."""
        assert r.status_code == status, r.text
        assert r.headers["Content-Type"].startswith("application/json"), r.headers
        body = r.json()
        if self.name == "anthropic":
            assert body["type"] == "error" and set(body) == {"type", "error"}, body
        else:
            assert set(body) == {"error"} and "code" in body["error"], body
        assert isinstance(body["error"]["type"], str) and body["error"]["type"], body
        return body["error"]["message"]

    def __str__(self) -> str:
        return self.name


DIALECTS = [Dialect("openai"), Dialect("anthropic"), Dialect("responses")]
dialects = pytest.mark.parametrize("d", DIALECTS, ids=str)
streams = pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])


def sse(text: str) -> list[tuple[str | None, Any]]:
    """An event stream as (event name, parsed data) pairs."""
    events = []
    for block in text.strip().split("\n\n"):
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        events.append((name, data if data == "[DONE]" else json.loads(data)))
    return events


def log_row(gw: GatewayProcess, marker: str) -> dict:
    """The request-log row of the request carrying ``marker`` (rows are written off the request path)."""
    def find() -> list[dict]:
        rows = gw.admin("GET", "/_stats/requests?limit=50").json()["requests"]
        return [row for row in rows if marker in json.dumps(row.get("input_messages"))]
    return gw.wait_for(find)[0]


def attempts(row: dict) -> list[dict]:
    return row["attempts"] if isinstance(row["attempts"], list) else json.loads(row["attempts"])


def timed(call) -> tuple[requests.Response, float]:
    began = time.monotonic()
    r = call()
    return r, time.monotonic() - began


# --- the first route hangs: the fallback answers, within the budget --------------------------------

HANGS = {
    # nothing at all, not even the answer's head
    "before-its-head": lambda stream: hang(30),
    # the head (and half a JSON body), then nothing: a stream's first event, or a JSON answer, never comes
    "after-its-head": lambda stream: drop_after(0, anthropic_text("never"), stall=30) if stream
    else cut_body(anthropic_text("never"), stall=30),
}


@dialects
@streams
@pytest.mark.parametrize("how", HANGS)
def test_a_hung_first_route_leaves_its_fallback_the_rest_of_the_budget(gw, up, d, stream, how):
    up.script(FIRST, HANGS[how](stream))
    up.script(FALLBACK, openai_text("from the fallback"))
    marker = uuid.uuid4().hex
    r, elapsed = timed(lambda: d.call(gw, stream=stream, marker=marker))
    assert d.text(r, stream=stream) == "from the fallback"
    assert r.headers["x-zengate-model"] == FALLBACK
    assert SHARE - SLACK <= elapsed < BUDGET + MARGIN, elapsed
    assert up.wait_for(lambda: up.aborted_hangs == 1), "the gateway left the hung connection open"
    row = log_row(gw, marker)
    assert row["status"] == 200 and not row["error"]
    first, fallback = attempts(row)
    assert (first["model"], first["status"], first["timeout"]) == (FIRST, 504, pytest.approx(SHARE, abs=SLACK))
    assert re.fullmatch(r"the upstream did not start answering within 1\.[45]\d? s", first["error"]), first
    assert (fallback["model"], fallback["status"]) == (FALLBACK, 200)
    assert fallback["timeout"] <= BUDGET - SHARE + SLACK


# --- every route hangs: one 504 in the client's shape, at the budget --------------------------------

@pytest.fixture
def two_attempts(gw):
    """The fallback is the last attempt (not only the last route), so it is given all that is left."""
    gw.set_setting("max_attempts", 2)
    yield
    gw.set_setting("max_attempts", 4)


@dialects
@streams
def test_every_route_hanging_is_a_504_at_the_budget(gw, up, d, stream, two_attempts):
    up.script(FIRST, hang(30))
    up.script(FALLBACK, hang(30))
    marker = uuid.uuid4().hex
    r, elapsed = timed(lambda: d.call(gw, stream=stream, marker=marker))
    message = d.error(r, 504)
    assert BUDGET - SLACK <= elapsed < BUDGET + MARGIN, elapsed
    assert re.fullmatch(rf"no upstream started answering within {BUDGET:g} s \(first_byte_budget\); tried "
                        rf"{FIRST} on zen \(no first byte in 1\.[45]\d? s\), {FALLBACK} on zen \(no first byte "
                        r"in 1\.[45]\d? s\)", message), message
    assert up.wait_for(lambda: up.aborted_hangs == 2), "the gateway left a hung connection open"
    row = log_row(gw, marker)
    assert row["status"] == 504 and row["error"] == message
    timeouts = [(a["model"], a["status"], a["timeout"]) for a in attempts(row)]
    assert timeouts[0] == (FIRST, 504, pytest.approx(SHARE, abs=SLACK))
    assert timeouts[1][:2] == (FALLBACK, 504) and BUDGET - SHARE - 0.5 <= timeouts[1][2] <= BUDGET - SHARE


# --- heartbeats and the time after the first byte ---------------------------------------------------

@pytest.fixture
def quick_pings(gw):
    gw.set_setting("stream_ping_seconds", 0.2)
    yield
    gw.set_setting("stream_ping_seconds", 10)


def test_pings_while_the_first_route_warms_up_are_not_its_first_byte(gw, up, quick_pings):
    """The first route sends a comment and goes silent: no ping reaches the client before an event
    (and none keeps the route alive past its share); the fallback's stream begins as it should."""
    up.script(FIRST, drop_after(1, anthropic_raw([b": warming up\n\n"]), stall=30))
    up.script(FALLBACK, openai_text("from the fallback"))
    d = Dialect("anthropic")
    r, elapsed = timed(lambda: d.call(gw, stream=True, marker=uuid.uuid4().hex))
    assert d.text(r, stream=True) == "from the fallback"
    assert r.text.startswith("event: message_start")
    assert SHARE - SLACK <= elapsed < BUDGET + MARGIN, elapsed


@dialects
def test_a_begun_stream_may_pause_longer_than_the_share(gw, up, d):
    """After the first event, pauses are upstream_read_timeout's business, not the budget's."""
    up.script(FIRST, anthropic_text("slow and steady", chunks=3, delay=SHARE + 0.5))
    marker = uuid.uuid4().hex
    r, elapsed = timed(lambda: d.call(gw, stream=True, marker=marker))
    assert d.text(r, stream=True) == "slow and steady" and r.headers["x-zengate-model"] == FIRST
    assert elapsed >= 3 * (SHARE + 0.5) - SLACK, elapsed  # it really paused
    row = log_row(gw, marker)
    assert row["status"] == 200 and not row["error"]
    assert [(a["model"], a["status"]) for a in attempts(row)] == [(FIRST, 200)]
    assert up.received(model=FALLBACK) == []
