"""CoalescingResponse (zengate/worker.py): the same bytes as gunicorn's own response, fewer sends.

Each case drives gunicorn's ``Response`` and ours through the same calls on a recording socket:
the bytes on the wire must be identical, and ours must send the head together with the first
body bytes (never later than gunicorn would have sent it).
"""

from __future__ import annotations

import socket

import pytest
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader

from zengate.worker import CoalescingResponse


class RecordingSocket:
    """Notes each write, whether ``send`` (which takes it whole here) or ``sendall``."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))

    def send(self, data: bytes) -> int:
        self.sends.append(bytes(data))
        return len(data)


@pytest.fixture(autouse=True)
def fixed_date(monkeypatch):
    monkeypatch.setattr(util, "http_date", lambda *a: "Tue, 01 Dec 2026 00:00:00 GMT")


def _request(method: str = "POST", version: str = "1.1") -> Request:
    head = f"{method} /v1/chat/completions HTTP/{version}\r\nHost: gw\r\nContent-Length: 0\r\n\r\n".encode()
    return Request(Config(), IterUnreader([head]), ("127.0.0.1", 5000))


def _drive(cls, steps, method="POST"):
    sock = RecordingSocket()
    resp = cls(_request(method), sock, Config())
    for step in steps:
        step(resp)
    return sock.sends


def _both(steps, method="POST"):
    theirs = _drive(wsgi.Response, steps, method)
    ours = _drive(CoalescingResponse, steps, method)
    assert b"".join(ours) == b"".join(theirs)  # the very same bytes on the wire
    return theirs, ours


def start(status, headers):
    return lambda resp: resp.start_response(status, headers)


def write(data):
    return lambda resp: resp.write(data)


def close(resp):
    resp.close()


SSE = [("Content-Type", "text/event-stream")]


def test_stream_head_goes_with_the_first_chunk():
    theirs, ours = _both([start("200 OK", SSE), write(b"data: 1\n\n"), write(b"data: 2\n\n"), close])
    assert len(theirs) == 4  # head, chunk, chunk, terminator
    assert len(ours) == 3
    assert ours[0].startswith(b"HTTP/1.1 200 OK\r\n") and ours[0].endswith(b"\r\n\r\n9\r\ndata: 1\n\n\r\n")
    assert ours[1:] == [b"9\r\ndata: 2\n\n\r\n", b"0\r\n\r\n"]


def test_every_write_goes_out_with_send():
    """Head, pieces and the chunked terminator: one ``send`` each, never gevent's ``sendall`` loop."""
    class SendOnly(RecordingSocket):
        def sendall(self, data: bytes) -> None:
            raise AssertionError("sendall used for a write that send took whole")

    sock = SendOnly()
    resp = CoalescingResponse(_request(), sock, Config())
    for step in [start("200 OK", SSE), write(b"data: 1\n\n"), write(b"data: 2\n\n"), close]:
        step(resp)
    assert len(sock.sends) == 3
    assert sock.sends[0].startswith(b"HTTP/1.1 200 OK\r\n") and sock.sends[0].endswith(b"9\r\ndata: 1\n\n\r\n")
    assert sock.sends[1:] == [b"9\r\ndata: 2\n\n\r\n", b"0\r\n\r\n"]


def test_sized_answer_is_one_send():
    body = b'{"ok":true}'
    theirs, ours = _both([start("200 OK", [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(body)))]), write(body), close])
    assert len(theirs) == 2
    assert ours == [b"".join(theirs)]


def test_an_empty_piece_sends_the_head_at_once():
    """An application that yields b"" first gets its head out then, as with gunicorn."""
    sock = RecordingSocket()
    resp = CoalescingResponse(_request(), sock, Config())
    resp.start_response("200 OK", SSE)
    resp.write(b"")
    assert len(sock.sends) == 1 and sock.sends[0].endswith(b"\r\n\r\n")
    resp.write(b"data: 1\n\n")
    resp.close()
    assert sock.sends[1:] == [b"9\r\ndata: 1\n\n\r\n", b"0\r\n\r\n"]


@pytest.mark.parametrize("steps", [
    [start("204 No Content", []), close],  # no body at all
    [start("200 OK", SSE), close],  # a stream with no pieces
    [start("304 Not Modified", []), write(b"ignored"), close],  # body bytes gunicorn drops
])
def test_answers_without_body_bytes_still_get_their_head(steps):
    _theirs, ours = _both(steps)
    assert ours  # and the same bytes as gunicorn's (checked in _both)


def test_head_request():
    _theirs, ours = _both([start("200 OK", [("Content-Length", "5")]), write(b"hello"), close], method="HEAD")
    assert b"hello" not in b"".join(ours)


def test_sendfile_sends_the_head_first(tmp_path):
    path = tmp_path / "page.css"
    path.write_bytes(b"body { color: red }")
    left, right = socket.socketpair()
    try:
        resp = CoalescingResponse(_request(), left, Config())
        resp.start_response("200 OK", [("Content-Length", str(path.stat().st_size))])
        with path.open("rb") as f:
            assert resp.sendfile(wsgi.FileWrapper(f))
        resp.close()
        left.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := right.recv(65536):
            received += chunk
    finally:
        left.close()
        right.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and body == b"body { color: red }"


def test_the_worker_builds_its_responses_with_it(monkeypatch):
    """gunicorn's handle_request makes each HTTP/1 response with wsgi.create(): in a zengate worker,
    that is a CoalescingResponse."""
    from gunicorn.workers.ggevent import GeventWorker

    from zengate.worker import ZengateWorker

    monkeypatch.setattr(wsgi, "Response", wsgi.Response)  # restored after the test
    monkeypatch.setattr(GeventWorker, "init_process", lambda self: None)  # not the worker's loop
    object.__new__(ZengateWorker).init_process()
    resp, _environ = wsgi.create(_request(), RecordingSocket(), ("127.0.0.1", 5000), ("127.0.0.1", 8000), Config())
    assert type(resp) is CoalescingResponse



def test_gunicorn_reads_request_heads_with_its_c_parser():
    """gunicorn_h1c (requirements.txt) is installed, and gunicorn.conf.py sets none of the
    compatibility flags that make gunicorn fall back to its Python parser."""
    from pathlib import Path

    from gunicorn.http.message import _FAST_PARSER_INCOMPATIBLE_FLAGS, _check_fast_parser

    assert _check_fast_parser(Config()) is True
    conf = (Path(__file__).resolve().parents[2] / "gunicorn.conf.py").read_text()
    assert not [flag for flag in _FAST_PARSER_INCOMPATIBLE_FLAGS if flag in conf]
    assert "http_parser" not in conf  # "auto": the C parser when it is installed
