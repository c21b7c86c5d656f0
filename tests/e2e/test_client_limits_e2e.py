"""Client limits on the real gateway (gunicorn, zengate's gevent worker), over raw sockets.

* A request head over ``ZENGATE_MAX_HEADER_BYTES`` (or over gunicorn's hard limits) is answered in
  JSON, in the error shape of the API called.
* Slow clients: one trickling its head and one trickling its body are cut off within the
  (shortened) ``ZENGATE_CLIENT_TIMEOUT`` while a normal request made meanwhile answers at once; a
  stream that lasts longer than that deadline is not cut.

The attack sleeps between trickled bytes (that is the attack); every assertion waits on a socket
event with a bound.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.support.fake_upstream import FakeUpstream, openai_text
from tests.support.gateway import GatewayProcess

pytestmark = pytest.mark.e2e

DEADLINE = 2.0  # ZENGATE_CLIENT_TIMEOUT for this module (the default is 30)
SLACK = 2.5  # scheduling on a busy 2-core machine
TRICKLE = 0.2  # seconds between trickled bytes
MAX_HEAD = 16384  # ZENGATE_MAX_HEADER_BYTES for this module
CHAT = b'{"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture(scope="module")
def gateway_process(tmp_path_factory, e2e_upstream: FakeUpstream) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(tmp_path_factory.mktemp("gw"), e2e_upstream.url,
                        env={"ZENGATE_SETTINGS_TTL": "0", "ZENGATE_CLIENT_TIMEOUT": str(DEADLINE),
                             "ZENGATE_MAX_HEADER_BYTES": str(MAX_HEAD)})
    gw.start()
    yield gw
    gw.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def connect(gw: GatewayProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gw.port), timeout=10)


def read_answer(sock: socket.socket, timeout: float = 10.0) -> Answer:
    """Read one HTTP/1.1 answer with a Content-Length (the gateway's errors always have one)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of the body"
        body += chunk
    return Answer(int(lines[0].split()[1]), headers, body)


def exchange(gw: GatewayProcess, raw: bytes) -> Answer:
    with connect(gw) as sock:
        sock.sendall(raw)
        return read_answer(sock)


def request_bytes(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def assert_openai_error(answer: Answer, status: int) -> None:
    assert answer.status == status, answer
    assert answer.headers["content-type"].startswith("application/json")
    err = answer.json()["error"]
    assert isinstance(err["message"], str) and isinstance(err["type"], str), answer


def assert_anthropic_error(answer: Answer, status: int) -> None:
    assert answer.status == status, answer
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["type"] == "error" and isinstance(body["error"]["message"], str), answer


SHAPES = [("/v1/chat/completions", assert_openai_error), ("/v1/messages", assert_anthropic_error),
          ("/v1/messages/count_tokens", assert_anthropic_error), ("/_admin/settings", assert_openai_error)]


# --- header size -------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "check"), SHAPES)
def test_headers_over_the_limit_are_431_in_the_clients_shape(gw: GatewayProcess, path: str, check) -> None:
    # Many headers, each well within gunicorn's limits: the application measures the head.
    headers = {f"X-Pad-{i}": "p" * 1000 for i in range(MAX_HEAD // 1000 + 2)}
    answer = exchange(gw, request_bytes("POST", path, headers, CHAT))
    check(answer, 431)
    assert "ZENGATE_MAX_HEADER_BYTES" in answer.body.decode()


@pytest.mark.parametrize(("path", "check"), SHAPES)
def test_headers_over_gunicorns_hard_limits_are_json_in_the_clients_shape(gw: GatewayProcess, path: str,
                                                                          check) -> None:
    one_huge = {"X-Huge": "h" * (MAX_HEAD * 4)}  # one header over limit_request_field_size
    check(exchange(gw, request_bytes("POST", path, one_huge, CHAT)), 431)
    too_many = {f"X-N-{i}": "n" for i in range(200)}  # more than limit_request_fields
    check(exchange(gw, request_bytes("POST", path, too_many, CHAT)), 431)


def test_a_request_line_over_gunicorns_limit_is_json(gw: GatewayProcess) -> None:
    answer = exchange(gw, request_bytes("GET", "/v1/models?pad=" + "u" * 9000, {}))
    assert_openai_error(answer, 414)


def test_bodies_are_read_to_their_declared_end_and_chunked_ones_whole(gw: GatewayProcess) -> None:
    """A Content-Length body is read to exactly its length (a request pipelined behind it on the
    same connection is answered in its turn); a chunked body is read to its last chunk."""
    other = CHAT.replace(b'"hi"', b'"second"')
    with connect(gw) as sock:
        sock.sendall(request_bytes("POST", "/v1/chat/completions", {}, CHAT)
                     + request_bytes("POST", "/v1/chat/completions", {"Connection": "close"}, other))
        first, second = read_answer(sock), read_answer(sock)
    assert (first.status, second.status) == (200, 200), (first, second)
    assert first.json()["object"] == second.json()["object"] == "chat.completion"
    pieces = [CHAT[:10], CHAT[10:40], CHAT[40:]]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    answer = exchange(gw, head + chunked)
    assert answer.status == 200, answer
    assert answer.json()["choices"][0]["message"]["content"]
    short = request_bytes("POST", "/v1/chat/completions", {"Connection": "close"}, CHAT)
    cut = short.replace(f"Content-Length: {len(CHAT)}".encode(), f"Content-Length: {len(CHAT) - 5}".encode())
    answer = exchange(gw, cut)  # the body ends 5 bytes early: its JSON is cut short
    assert_openai_error(answer, 400)
    assert "not valid JSON" in answer.json()["error"]["message"]


def test_headers_within_the_limit_are_served(gw: GatewayProcess) -> None:
    headers = {f"X-Pad-{i}": "p" * 1000 for i in range(MAX_HEAD // 1000 - 3)}
    answer = exchange(gw, request_bytes("POST", "/v1/chat/completions", {**headers, "Connection": "close"}, CHAT))
    assert answer.status == 200, answer
    assert answer.json()["object"] == "chat.completion"


# --- slow clients ------------------------------------------------------------------------------

def trickle_until_closed(sock: socket.socket, data: bytes, limit: float) -> tuple[float, bytes]:
    """Send ``data`` one byte per TRICKLE seconds until the gateway answers or closes the connection.

    Returns the seconds it took and whatever the gateway sent. Fails if nothing happens in ``limit``.
    """
    start = time.monotonic()
    received = b""
    for byte in (data[i:i + 1] for i in range(len(data))):
        try:
            sock.sendall(byte)
        except OSError:  # reset: the gateway closed on us
            return time.monotonic() - start, received
        readable, _, _ = select.select([sock], [], [], TRICKLE)  # the pause between bytes, or an event
        if readable:
            sock.settimeout(max(0.1, limit - (time.monotonic() - start)))
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except (ConnectionResetError, TimeoutError):
                pass
            return time.monotonic() - start, received
        assert time.monotonic() - start < limit, f"still connected after {limit}s"
    raise AssertionError("the whole request was sent without the gateway cutting it off")


def attacking(ready: threading.Barrier | None) -> None:
    """Tell the test the attack is under way (the connection is open and the first bytes sent)."""
    if ready is not None:
        ready.wait(10)


def slow_head(gw: GatewayProcess, ready: threading.Barrier | None = None) -> tuple[float, bytes]:
    with connect(gw) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        attacking(ready)
        return trickle_until_closed(sock, b"X-Slow: " + b"s" * 200 + b"\r\n\r\n", DEADLINE + SLACK)


def slow_body(gw: GatewayProcess, path: str, ready: threading.Barrier | None = None) -> tuple[float, bytes]:
    body = CHAT + b" " * 200
    headers = gw.admin_headers() if path.startswith("/_admin") else {}
    with connect(gw) as sock:
        sock.sendall(request_bytes("POST", path, headers, b"")[:-len(b"Content-Length: 0\r\n\r\n")]
                     + f"Content-Length: {len(body)}\r\n\r\n".encode())
        attacking(ready)
        return trickle_until_closed(sock, body, DEADLINE + SLACK)


def parse(raw: bytes) -> Answer:
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return Answer(int(lines[0].split()[1]), headers, body)


def test_a_client_trickling_its_head_is_disconnected(gw: GatewayProcess) -> None:
    elapsed, received = slow_head(gw)
    assert received == b"" and elapsed < DEADLINE + SLACK


@pytest.mark.parametrize(("path", "check"), SHAPES)
def test_a_client_trickling_its_body_gets_a_408_and_is_disconnected(gw: GatewayProcess, path: str,
                                                                     check) -> None:
    elapsed, received = slow_body(gw, path)
    assert DEADLINE - 0.5 < elapsed < DEADLINE + SLACK
    answer = parse(received)  # the whole answer, then the connection closed (recv gave b"")
    check(answer, 408)
    assert "ZENGATE_CLIENT_TIMEOUT" in answer.body.decode()


def test_normal_requests_are_served_promptly_during_a_slowloris_attack(gw: GatewayProcess) -> None:
    results: list[tuple[float, bytes]] = []
    ready = threading.Barrier(11)  # ten attackers connected and started, and this test
    attackers = [threading.Thread(target=lambda f=f: results.append(f()), daemon=True)
                 for f in [lambda: slow_head(gw, ready), lambda: slow_body(gw, "/v1/chat/completions", ready)] * 5]
    for thread in attackers:
        thread.start()
    ready.wait(10)
    try:
        for _ in range(3):
            start = time.monotonic()
            r = requests.post(gw.url + "/v1/chat/completions", data=CHAT, timeout=DEADLINE,
                              headers={"Content-Type": "application/json", "Connection": "close"})
            assert r.status_code == 200 and time.monotonic() - start < 1.5, r.text
    finally:
        for thread in attackers:
            thread.join(DEADLINE + SLACK + 2)
    assert len(results) == len(attackers)
    assert all(elapsed < DEADLINE + SLACK for elapsed, _ in results)


def test_a_stream_longer_than_the_deadline_is_not_cut(gw: GatewayProcess, up: FakeUpstream) -> None:
    pieces = 8
    up.script("big-pickle", openai_text("one two three four five six seven eight", chunks=pieces,
                                        delay=(DEADLINE + 1) / pieces))
    start = time.monotonic()
    with requests.post(gw.url + "/v1/chat/completions", stream=True, timeout=DEADLINE * 4,
                       json={"model": "big-pickle", "stream": True,
                             "messages": [{"role": "user", "content": "long"}]}) as r:
        assert r.status_code == 200
        text = b"".join(r.iter_content(None)).decode()
    assert time.monotonic() - start > DEADLINE
    assert text.rstrip().endswith("data: [DONE]")
    content = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                      for line in text.splitlines() if line.startswith("data: {"))
    assert content.split() == "one two three four five six seven eight".split()
