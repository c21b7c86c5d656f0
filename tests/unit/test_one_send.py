"""The upstream connections send a request's head and body in one write (zengate/upstream/wire.py).

Against a real loopback server: the request must arrive whole and the answer be read as usual,
and the connection's socket must see one write where http.client makes two.
"""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from zengate.upstream import wire
from zengate.upstream.client import UpstreamClient
from zengate.upstream.wire import ONE_SEND_LIMIT, OneSendConnection


class Server:
    """Answers each request on a connection with 200 and the size of the body it got."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    buf += conn.recv(65536)
                body, buf = buf[:length], buf[length:]
                self.requests.append(head + b"\r\n\r\n" + body)
                answer = str(len(body)).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


class RecordingSocket:
    """Wraps the connection's socket and notes each write (``send`` or ``sendall``)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sends: list[int] = []

    def sendall(self, data) -> None:
        self.sends.append(len(data))
        self._sock.sendall(data)

    def send(self, data) -> int:
        self.sends.append(len(data))
        return self._sock.send(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _connection(server: Server) -> tuple[OneSendConnection, RecordingSocket]:
    conn = OneSendConnection("127.0.0.1", server.port)
    conn.connect()
    recorder = RecordingSocket(conn.sock)
    conn.sock = recorder
    return conn, recorder


@pytest.mark.parametrize("size, sends", [(200, 1), (ONE_SEND_LIMIT, 1), (ONE_SEND_LIMIT + 1, 2)])
def test_post_goes_out_in_one_send_up_to_the_limit(server, size, sends):
    conn, recorder = _connection(server)
    body = b"x" * size
    for _ in range(2):  # and again on the same kept-alive connection
        conn.request("POST", "/chat/completions", body=body, headers={"Content-Type": "application/json"})
        assert conn.getresponse().data == str(size).encode()
    assert len(recorder.sends) == 2 * sends
    if sends == 1:
        assert recorder.sends[0] == len(server.requests[0])  # head and body together
    head, _, got = server.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /chat/completions HTTP/1.1\r\n") and got == body
    assert server.requests[0] == server.requests[1]
    conn.close()


@pytest.mark.parametrize("body", [None, b""])
def test_request_without_body_sends_its_head(server, body):
    conn, recorder = _connection(server)
    conn.request("GET" if body is None else "POST", "/models", body=body)
    assert conn.getresponse().data == b"0"
    assert len(recorder.sends) == 1
    assert server.requests[0].startswith(b"GET /models" if body is None else b"POST /models")


def test_a_failed_request_leaves_nothing_held(server, monkeypatch):
    conn, _recorder = _connection(server)

    def broken(*args, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(wire, "send_all", broken)
    with pytest.raises(OSError):
        conn.request("POST", "/chat/completions", body=b"{}")
    assert conn._head is None and not conn._hold_head
    monkeypatch.undo()
    conn.close()


def test_the_upstream_client_uses_these_connections(server):
    client = UpstreamClient(_settings())
    url = f"http://127.0.0.1:{server.port}/chat/completions"
    response = client.send(url, b'{"model":"m"}', key="public", protocol="openai", stream=False)
    assert client.read_json(response) == 13
    pool = client.adapter._pools[f"http://127.0.0.1:{server.port}"]
    assert pool.ConnectionCls is OneSendConnection
    assert client.adapter.poolmanager.pool_classes_by_scheme["https"].ConnectionCls \
        is wire.OneSendHTTPSConnection
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    assert b"\r\nx-opencode-client: " in head and body == b'{"model":"m"}'


def _settings():
    from zengate.settings import Settings

    settings = Settings()
    settings._values = {}
    settings._loaded_at = float("inf")
    settings.refresh = lambda force=False: None
    return settings


def test_direct_answers_are_ordinary_requests_responses(server):
    client = UpstreamClient(_settings())
    url = f"http://127.0.0.1:{server.port}/chat/completions"
    response = client.send(url, b"{}", key="public", protocol="openai", stream=True)
    assert isinstance(response, requests.Response)
    assert (response.status_code, response.reason, response.url, response.ok) == (200, "OK", url, True)
    assert response.headers["content-length"] == "1" and response.request.body == b"{}"
    assert "cookies" not in vars(response)  # made only when asked for, then kept
    jar = response.cookies
    assert isinstance(jar, requests.cookies.RequestsCookieJar) and response.cookies is jar and len(jar) == 0
    assert response.json() == 2 and response.elapsed.total_seconds() == 0
    with pytest.raises(AttributeError):
        response.no_such_attribute  # noqa: B018
