"""Client limits without a server: head size in the client's shape, the body deadline's reader,
and the worker's JSON answers for what gunicorn refuses (tests/e2e/test_client_limits_e2e.py runs
them on a real gunicorn)."""

from __future__ import annotations

import io
import json

import gevent
import pytest
from gunicorn.http import errors as http_errors
from gunicorn.http.message import Request

from zengate.runtime.worker import error_response, request_path, status_of
from zengate.web.client_limits import ClientTooSlow, DeadlineInput, head_bytes

CHAT = {"model": "big-pickle", "messages": [{"role": "user", "content": "hi"}]}


def test_head_bytes_counts_the_request_line_and_every_header():
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/v1/models?x=1", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_HOST": "h", "HTTP_X_LONG": "v" * 100, "CONTENT_TYPE": "application/json", "wsgi.input": None}
    expected = len("GET /v1/models?x=1 HTTP/1.1\r\n") + len("HOST: h\r\n") + len("X_LONG: ") + 100 + 2 \
        + len("Content-Type: application/json\r\n")
    assert head_bytes(environ) == expected


@pytest.mark.parametrize(("path", "anthropic"), [("/v1/chat/completions", False), ("/v1/messages", True),
                                                 ("/v1/messages/count_tokens", True), ("/_admin/settings", False),
                                                 ("/healthz", False)])
def test_a_head_over_the_limit_is_431_in_the_clients_shape(make_app, path, anthropic):
    client = make_app(max_header_bytes=4096).test_client()
    r = client.post(path, json=CHAT, headers={f"X-Pad-{i}": "p" * 500 for i in range(10)})
    assert r.status_code == 431
    body = r.get_json()
    if anthropic:
        assert body["type"] == "error" and "ZENGATE_MAX_HEADER_BYTES" in body["error"]["message"]
    else:
        assert "ZENGATE_MAX_HEADER_BYTES" in body["error"]["message"] and body["error"]["type"]


def test_a_head_within_the_limit_is_served(make_app):
    client = make_app(max_header_bytes=4096).test_client()
    r = client.post("/v1/chat/completions", json=CHAT, headers={"X-Pad": "p" * 3000})
    assert r.status_code == 200


class Trickle(io.RawIOBase):
    """A body that gives one byte per ``pause`` seconds (cooperatively, like a gevent socket)."""

    def __init__(self, data: bytes, pause: float):
        self.data, self.pause, self.failed = data, pause, False

    def read(self, size: int | None = -1) -> bytes:
        out = b""
        want = len(self.data) if size is None or size < 0 else size
        while self.data and len(out) < want:
            gevent.sleep(self.pause)
            out, self.data = out + self.data[:1], self.data[1:]
        return out


def test_the_deadline_bounds_a_whole_read_however_slow_the_bytes():
    slow = DeadlineInput(Trickle(b"x" * 100, 0.02), seconds=0.2)
    with pytest.raises(ClientTooSlow) as caught:
        slow.read(100)
    assert caught.value.code == 408 and "ZENGATE_CLIENT_TIMEOUT" in caught.value.description
    with pytest.raises(ClientTooSlow):
        slow.read(1)  # past the deadline: no further read
    assert slow.failed is True  # gunicorn's body: the connection is not reused


def test_a_body_in_time_reads_normally():
    quick = DeadlineInput(Trickle(b"abc\ndef\n", 0), seconds=5)
    assert quick.readline() == b"abc\n" and list(quick) == [b"def\n"]


def gunicorn_body(buffered: bytes, length: int):
    """gunicorn's body of a ``Content-Length`` request whose first bytes came with the head, and a
    (gevent) socket for the client to send the rest on."""
    from gevent import socket as gsocket
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader

    server, client = gsocket.socketpair()
    unreader = SocketUnreader(server)
    unreader.unread(buffered)  # what the parser read past the head, as gunicorn leaves it
    return Body(LengthReader(unreader, length)), client, server


@pytest.fixture
def timers(monkeypatch):
    """The gevent timeouts the deadline starts."""
    started = []
    real = gevent.Timeout

    def spy(*args, **kwargs):
        started.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(gevent, "Timeout", spy)
    return started


def test_a_body_gunicorn_already_holds_is_read_without_a_timer(timers):
    body = json.dumps(CHAT).encode()
    stream, client, server = gunicorn_body(body + b"GET /next HTTP/1.1\r\n", len(body))
    try:
        reader = DeadlineInput(stream, seconds=0.05)
        assert reader.read(10) + reader.read() == body
        assert timers == []
    finally:
        client.close()
        server.close()


def test_the_rest_of_a_body_still_on_the_socket_is_read_under_the_deadline(timers):
    body = b"x" * 100
    stream, client, server = gunicorn_body(body[:40], len(body))
    try:
        client.sendall(body[40:])
        assert DeadlineInput(stream, seconds=5).read() == body
        assert len(timers) == 1  # the read went to the socket, under the deadline
    finally:
        client.close()
        server.close()
    stream, client, server = gunicorn_body(body[:40], len(body))
    try:
        client.sendall(body[40:99])  # the last byte never comes
        with pytest.raises(ClientTooSlow):
            DeadlineInput(stream, seconds=0.1).read()
        assert stream.failed is True
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize(("exc", "status"), [
    (http_errors.LimitRequestHeaders("limit request headers fields"), 431),
    (http_errors.LimitRequestLine(9000, 8190), 414),
    (http_errors.InvalidRequestLine("junk"), 400),
    (http_errors.InvalidResponseHeader("x-bad"), 500),
    (RuntimeError("boom"), 500),
])
def test_gunicorns_refusals_keep_gunicorns_status(exc, status):
    assert status_of(exc)[0] == status


def test_the_path_of_a_head_refused_for_its_headers_is_found():
    half = Request.__new__(Request)  # as gunicorn's parser holds it once the request line is read
    half.path = "/v1/messages"

    def parse_headers(self: Request) -> None:
        raise http_errors.LimitRequestHeaders("max buffer headers")

    with pytest.raises(http_errors.LimitRequestHeaders) as caught:
        parse_headers(half)
    assert request_path(None, caught.value) == "/v1/messages"
    assert request_path(object(), RuntimeError()) == ""  # nothing known: the OpenAI shape


@pytest.mark.parametrize(("head", "path"), [
    (b"POST /v1/messages?beta=true HTTP/1.1\r\nX-Huge: hhhh", "/v1/messages"),
    (b"\r\nPOST /v1/messages HTTP/1.1\r\n", "/v1/messages"),
    (b"GET /v1/models#frag HTTP/1.1\r\n", "/v1/models"),
    (b"POST http://elsewhere/v1/messages HTTP/1.1\r\n", ""),  # not a path: the OpenAI shape
    (b"garbage\r\n", ""),
])
def test_the_path_of_a_head_the_c_parser_refused_is_read_from_its_request_line(head, path):
    fresh = Request.__new__(Request)  # gunicorn_h1c refuses the head before the request has a path

    def _parse_fast(self: Request, data: bytes) -> None:
        raise http_errors.LimitRequestHeaders("limit request headers fields")

    with pytest.raises(http_errors.LimitRequestHeaders) as caught:
        _parse_fast(fresh, head)
    assert request_path(None, caught.value) == path


@pytest.mark.parametrize(("path", "anthropic"), [("/v1/messages", True), ("/v1/chat/completions", False), ("", False)])
def test_error_response_is_json_in_the_paths_shape(path, anthropic):
    raw = error_response(431, "Request Header Fields Too Large", "too large", path)
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 431 ") and b"Content-Type: application/json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    data = json.loads(body)
    assert (data["type"] == "error") if anthropic else (data["error"]["message"] == "too large")
