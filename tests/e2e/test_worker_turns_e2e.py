"""A kept-alive connection whose requests are always there does not keep the worker from the others.

gevent switches greenlets only when one waits. A client pipelining its requests (or, under load,
any client whose next request is there before it is read) gives the greenlet serving it nothing
to wait for: without turns it served every request of the connection before any other client of
the worker got a byte (``ZengateWorker.handle_request``, ``helpers.take_turn_if_due``).
"""

from __future__ import annotations

import socket
import threading

import pytest

from tests.support.gateway import GatewayProcess

pytestmark = pytest.mark.e2e

PIPELINED = 3000
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: zengate\r\n\r\n"
STATUS = b"HTTP/1.1 200 "


def _answers(sock: socket.socket, wanted: int, seen: list[int], first: threading.Event) -> None:
    """Read ``sock`` until ``wanted`` answers came, keeping their count in ``seen[0]``."""
    data = b""
    while seen[0] < wanted:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return
        data = data[-len(STATUS):] + chunk  # a status line split across two reads is counted once
        seen[0] += data.count(STATUS) - data[:-len(chunk)].count(STATUS)
        if seen[0]:
            first.set()


def _one_request(sock: socket.socket) -> bytes:
    """One request on the kept-alive ``sock``; its answer, head and body, read to its Content-Length."""
    sock.sendall(REQUEST)
    answer = b""
    while True:
        head, sep, body = answer.partition(b"\r\n\r\n")
        if sep:
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            if len(body) >= length:
                assert len(body) == length, "bytes after the answer"
                return answer
        chunk = sock.recv(4096)
        assert chunk, "the gateway closed the connection"
        answer += chunk


def test_a_client_is_answered_while_another_connection_pipelines_thousands(tmp_path, up):
    gw = GatewayProcess(tmp_path, up.url, workers=1).start()  # both connections on one worker
    try:
        other = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
        assert b'"status":"ok"' in _one_request(other).replace(b" ", b"")  # its greenlet now waits on it

        hog = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
        seen, started = [0], threading.Event()
        reader = threading.Thread(target=_answers, args=(hog, PIPELINED, seen, started))
        reader.start()
        hog.sendall(REQUEST * PIPELINED)
        assert started.wait(30), "no answer to the pipelined requests"

        answer = _one_request(other)
        served_meanwhile = seen[0]
        reader.join(60)
        assert seen[0] == PIPELINED  # every pipelined request was answered…
        assert STATUS in answer and b"request_log" in answer
        # …but the other client did not wait for all of them (it did: 3000 of 3000, before turns)
        assert served_meanwhile < PIPELINED // 2, served_meanwhile
        other.close()
        hog.close()
    finally:
        assert gw.stop() == 0
