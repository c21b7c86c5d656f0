"""A stopping worker's connections (zengate/runtime/draining.py): those between requests with nothing
sent on them end at once; a request already sent is still read; a handler mid-answer is left alone.

Each "handler" is a greenlet reading from one end of a gevent socket pair, as gunicorn's keep-alive
loop reads a request head inside ``timeout_ctx``; the other end stands for the client.
"""

from __future__ import annotations

import gevent
import pytest
from gevent import socket
from gevent.event import Event

from zengate.runtime.draining import Connections, has_pending_bytes


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def handler(connections: Connections, sock, seconds: float = 30) -> gevent.Greenlet:
    """Waits for a "request head" between requests; returns what it read, or "ended" when told to stop."""
    def run():
        with connections.serving(sock):
            try:
                with connections.awaiting_request(seconds):
                    return sock.recv(100)
            except StopIteration:
                return "ended"
    return gevent.spawn(run)


def wait_until_between(connections: Connections, greenlet: gevent.Greenlet) -> None:
    with gevent.Timeout(5):
        while greenlet not in connections.between:
            gevent.idle()


def test_pending_bytes_are_seen_without_reading_them(pair):
    server, client = pair
    assert not has_pending_bytes(server)
    client.sendall(b"GET / HTTP/1.1\r\n")
    assert has_pending_bytes(server)
    assert server.recv(100) == b"GET / HTTP/1.1\r\n"  # still there to be read
    assert not has_pending_bytes(server)
    client.close()
    assert has_pending_bytes(server)  # the end of the stream is for the handler to read


def test_an_idle_connection_is_closed_at_once_when_the_worker_stops(pair):
    server, _client = pair
    connections = Connections()
    waiting = handler(connections, server)
    wait_until_between(connections, waiting)
    assert connections.close_idle() == 1
    assert waiting.get(timeout=5) == b""  # the handler's read ends: gunicorn closes the connection
    assert not connections.between and not connections.open


def test_a_request_already_sent_is_still_read(pair):
    server, client = pair
    connections = Connections()
    waiting = handler(connections, server)
    wait_until_between(connections, waiting)
    client.sendall(b"POST /v1/messages HTTP/1.1\r\n")
    assert connections.close_idle() == 0
    assert waiting.get(timeout=5) == b"POST /v1/messages HTTP/1.1\r\n"


def test_a_connection_back_between_requests_after_the_stop_ends_there(pair):
    """Its answer ended after the stop (a stream begun before it): no wait for a next request."""
    server, _client = pair
    connections = Connections()
    connections.close_idle()
    assert handler(connections, server).get(timeout=5) == "ended"
    server2, client2 = socket.socketpair()
    try:
        client2.sendall(b"GET /healthz HTTP/1.1\r\n")  # sent before it came back: still answered
        assert handler(connections, server2).get(timeout=5) == b"GET /healthz HTTP/1.1\r\n"
    finally:
        server2.close()
        client2.close()


def test_a_handler_mid_answer_is_not_touched(pair):
    server, client = pair
    connections = Connections()
    answering = Event()

    def run():
        with connections.serving(server):
            answering.set()
            gevent.sleep(0.2)  # stands for an answer being streamed
            server.sendall(b"the end")
    streaming = gevent.spawn(run)
    answering.wait(5)
    assert connections.close_idle() == 0
    streaming.get(timeout=5)
    assert client.recv(100) == b"the end"


def test_the_wait_is_still_bounded(pair):
    server, _client = pair
    connections = Connections()
    assert handler(connections, server, seconds=0.05).get(timeout=5) is None  # silent timeout: nothing read
    assert not connections.between


def test_the_worker_still_replaces_gunicorns_loop_as_it_is():
    """``ZengateWorker._serve`` is gunicorn's gevent ``run`` with a quicker stop, and the head wait
    it tracks is the ``timeout_ctx`` around ``next(parser)`` in gunicorn's keep-alive loop. When
    gunicorn changes either, this fails: read the new code, carry its changes over, then update
    the digest."""
    import hashlib
    import inspect

    from gunicorn.workers.base_async import AsyncWorker
    from gunicorn.workers.ggevent import GeventWorker

    run = inspect.getsource(GeventWorker.run)
    assert hashlib.sha256(run.encode()).hexdigest() == (
        "50119854ef8be38caa6e96a5978978de9c42bc0b24ac22228101399e7ef3005d"), "gunicorn's GeventWorker.run changed"
    handle = inspect.getsource(AsyncWorker.handle)
    assert "with self.timeout_ctx():\n                            req = next(parser)" in handle
