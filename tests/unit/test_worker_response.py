"""CoalescingResponse (zengate/runtime/worker.py): the same bytes as gunicorn's own response, fewer sends.

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

from zengate.runtime.worker import CoalescingResponse, SettledConfig, base_environ, http_date


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

    from zengate.runtime.worker import ZengateWorker

    for name in ("Response", "base_environ"):
        monkeypatch.setattr(wsgi, name, getattr(wsgi, name))  # restored after the test
    monkeypatch.setattr(util, "http_date", util.http_date)
    monkeypatch.setattr(GeventWorker, "init_process", lambda self: None)  # not the worker's loop
    worker = object.__new__(ZengateWorker)
    worker.cfg = Config()
    worker.init_process()
    resp, _environ = wsgi.create(_request(), RecordingSocket(), ("127.0.0.1", 5000), ("127.0.0.1", 8000), worker.cfg)
    assert type(resp) is CoalescingResponse
    assert isinstance(worker.cfg, SettledConfig) and worker.cfg.keepalive == Config().keepalive
    assert wsgi.base_environ is base_environ and util.http_date is http_date


def test_gunicorn_reads_request_heads_with_its_c_parser():
    """gunicorn_h1c (requirements.txt) is installed, and gunicorn.conf.py sets none of the
    compatibility flags that make gunicorn fall back to its Python parser."""
    from pathlib import Path

    from gunicorn.http.message import _FAST_PARSER_INCOMPATIBLE_FLAGS, _check_fast_parser

    assert _check_fast_parser(Config()) is True
    conf = (Path(__file__).resolve().parents[2] / "gunicorn.conf.py").read_text()
    assert not [flag for flag in _FAST_PARSER_INCOMPATIBLE_FLAGS if flag in conf]
    assert "http_parser" not in conf  # "auto": the C parser when it is installed


# gunicorn's per-request work, done once (SettledConfig, http_date, base_environ)

def test_settled_config_reads_as_gunicorns_config():
    cfg = Config()
    cfg.set("keepalive", 7)
    settled = SettledConfig(cfg)
    for name in ("keepalive", "limit_request_line", "forwarded_allow_ips", "workers", "is_ssl"):
        assert getattr(settled, name) == getattr(cfg, name)
    assert settled.pre_request is cfg.pre_request  # hooks: the very same callables
    assert settled.forwarded_allow_networks() == cfg.forwarded_allow_networks()  # methods: the cfg's own
    assert settled.settings is cfg.settings
    with pytest.raises(AttributeError):
        settled.no_such_setting  # noqa: B018


def test_settled_config_keeps_each_setting_after_its_first_read():
    cfg = Config()
    settled = SettledConfig(cfg)
    assert settled.keepalive == 2
    cfg.set("keepalive", 9)  # behind its back: it keeps what it read
    assert settled.keepalive == 2
    assert "keepalive" in vars(settled) and "settings" not in vars(settled)
    assert settled.graceful_timeout == 30
    settled.set("graceful_timeout", 45)  # as gunicorn.conf.py's post_worker_init does
    assert settled.graceful_timeout == 45 and cfg.graceful_timeout == 45


def test_settled_config_writes_go_to_the_config():
    cfg = Config()
    settled = SettledConfig(cfg)
    settled._forwarded_allow_networks = ["10.0.0.0/8"]
    assert cfg._forwarded_allow_networks == ["10.0.0.0/8"]
    with pytest.raises(AttributeError):
        settled.keepalive = 5  # gunicorn's own guard: settings are set with cfg.set()


def test_http_date_is_gunicorns_formatted_once_a_second(monkeypatch):
    import email.utils
    import time

    from zengate.runtime import worker

    calls = []
    real = worker._gunicorn_http_date
    monkeypatch.setattr(worker, "_gunicorn_http_date", lambda ts=None: calls.append(ts) or real(ts))
    monkeypatch.setattr(worker, "_date_line", [None, ""])
    now = [1_796_083_200.25]  # 2026-12-01 00:00:00.25 UTC
    monkeypatch.setattr(time, "time", lambda: now[0])
    assert http_date() == "Tue, 01 Dec 2026 00:00:00 GMT"
    now[0] += 0.5
    assert http_date() == "Tue, 01 Dec 2026 00:00:00 GMT"
    assert len(calls) == 1  # the same second: formatted once
    now[0] += 0.5
    assert http_date() == "Tue, 01 Dec 2026 00:00:01 GMT"
    assert http_date() == email.utils.formatdate(now[0], usegmt=True)
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"  # a given time: gunicorn's, as it is


def test_base_environ_is_gunicorns_copied(monkeypatch, capsys):
    from zengate.runtime import worker

    monkeypatch.setattr(worker, "_base_environ", [None, {}])
    cfg = Config()
    theirs = worker._gunicorn_base_environ(cfg)
    first, second = base_environ(cfg), base_environ(cfg)
    assert {k: v for k, v in first.items() if k != "wsgi.errors"} == \
        {k: v for k, v in theirs.items() if k != "wsgi.errors"}
    assert type(first["wsgi.errors"]) is type(theirs["wsgi.errors"])
    assert first["wsgi.errors"] is second["wsgi.errors"]  # one wrapper per worker
    first["REMOTE_ADDR"] = "10.0.0.1"
    assert "REMOTE_ADDR" not in second and "REMOTE_ADDR" not in base_environ(cfg)  # a new dict each time
    first["wsgi.errors"].write("to the error log\n")
    assert "to the error log" in capsys.readouterr().err  # errorlog "-": stderr, as gunicorn's
    other = Config()
    other.set("workers", 4)
    assert base_environ(other)["wsgi.multiprocess"] is True  # another cfg: built for it


def test_base_environ_follows_reopened_log_files(monkeypatch, tmp_path):
    """SIGUSR1: gunicorn closes each file handler's stream and opens a new one (log rotation)."""
    import logging

    from zengate.runtime import worker

    monkeypatch.setattr(worker, "_base_environ", [None, {}])
    handler = logging.FileHandler(tmp_path / "error.log")
    error_log = logging.getLogger("gunicorn.error")
    monkeypatch.setattr(error_log, "handlers", [handler])
    cfg = Config()
    cfg.set("errorlog", str(tmp_path / "error.log"))
    before = base_environ(cfg)["wsgi.errors"]
    assert base_environ(cfg)["wsgi.errors"] is before and before.streams == [handler.stream]
    handler.close()  # what gunicorn's reopen_files does, before opening the file again
    handler.stream = handler._open()
    after = base_environ(cfg)["wsgi.errors"]
    assert after is not before and after.streams == [handler.stream]
    after.write("after the rotation\n")
    handler.close()
    assert (tmp_path / "error.log").read_text() == "after the rotation\n"


def test_the_worker_freezes_what_it_built_while_it_serves(monkeypatch):
    """A full collection must not walk the modules, the app and its catalog every few thousand requests;
    the interpreter's exit must see them again."""
    import gc

    from zengate.runtime.worker import ZengateWorker

    seen = {}
    built_at_start = [object()]  # a long-lived object of the worker's start

    def serve(self):
        seen["frozen"] = gc.get_freeze_count()
        seen["in sight"] = any(o is built_at_start for o in gc.get_objects(generation=2))

    monkeypatch.setattr(ZengateWorker, "_serve", serve)
    try:
        object.__new__(ZengateWorker).run()
        left_frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()  # this test process must not stay frozen, whatever happened
    assert seen["frozen"] > 1000  # frozen before serving began…
    assert seen["in sight"] is False  # …out of the collector's sight while serving…
    assert left_frozen == 0  # …and back when the worker stops


def test_after_each_request_the_worker_may_give_the_others_a_turn(monkeypatch):
    from gunicorn.workers.ggevent import GeventWorker

    from zengate.runtime import worker as worker_module

    calls = []
    monkeypatch.setattr(GeventWorker, "handle_request", lambda self, *args: calls.append("request"))
    monkeypatch.setattr(worker_module, "take_turn_if_due", lambda: calls.append("turn"))
    object.__new__(worker_module.ZengateWorker).handle_request("listener", "req", "sock", "addr")
    assert calls == ["request", "turn"]  # after the answer, never before it


@pytest.mark.parametrize("killed_by", ["GreenletExit", "SystemExit"])
def test_a_worker_killed_during_the_turn_closes_the_connection_quietly(monkeypatch, killed_by):
    """gunicorn's keep-alive loop ends a connection on StopIteration; any other exception it would
    answer with a 500, after the request's answer was already sent."""
    import gevent
    from gunicorn.workers.ggevent import GeventWorker

    from zengate.runtime import worker as worker_module

    exc = gevent.GreenletExit if killed_by == "GreenletExit" else SystemExit

    def killed() -> None:
        raise exc()

    monkeypatch.setattr(GeventWorker, "handle_request", lambda self, *args: None)
    monkeypatch.setattr(worker_module, "take_turn_if_due", killed)
    with pytest.raises(StopIteration):
        object.__new__(worker_module.ZengateWorker).handle_request("listener", "req", "sock", "addr")
