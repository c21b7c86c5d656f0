"""A small real proxy on loopback for tests: HTTP forwarding, CONNECT tunnels and SOCKS5, with counts.

Run it in the test process (daemon threads, 127.0.0.1, free port)::

    with LocalProxy() as proxy:                    # or LocalProxy(username="u", password="p")
        ...  # point the gateway at proxy.url (http://) or proxy.socks_url (socks5://)
        assert proxy.carried == 3                  # requests it carried to their target

One port speaks every protocol: a first byte of 0x05 is SOCKS5, anything else HTTP — an
absolute-URI request (``POST http://127.0.0.1:8000/v1/... HTTP/1.1``) is forwarded with a ``Via``
header and ``Connection: close``; ``CONNECT host:port`` opens a tunnel. Targets must be loopback
addresses: nothing leaves the machine.

``behaviour`` makes it a bad proxy: ``"refuse"`` closes each connection at once, ``"hang"``
accepts and never answers, an int (``502``, ``429``, ``407``…) answers every request with that
status itself. ``connections`` counts every connection it accepted, ``tunnels`` each CONNECT or
SOCKS tunnel, ``carried`` each request it passed on (forwarded, or seen going through a tunnel:
the tests' upstream speaks plain HTTP).
"""

from __future__ import annotations

import base64
import ipaddress
import re
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from tests.support.waiting import wait_until

__all__ = ["LocalGeonode", "LocalProxy", "closed_port"]

_BUF = 65536
_REQUEST_LINE = re.compile(rb"^[A-Z]+ /\S* HTTP/1\.[01]\r\n")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _close(sock: socket.socket) -> None:
    """Shut down, then close: a thread blocked reading the socket wakes up, and the peer sees the end."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, proxy: LocalProxy):
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client or target going away mid-relay is normal here


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        proxy = self.server.proxy
        sock: socket.socket = self.request
        proxy._track(sock, True)
        try:
            proxy._bump("connections")
            behaviour = proxy.behaviour
            if behaviour == "refuse":
                return
            if behaviour == "hang":
                proxy._stopping.wait(proxy.hang_seconds)
                return
            first = sock.recv(1, socket.MSG_PEEK)
            if not first:
                return
            if first == b"\x05":
                self._socks5(sock)
            else:
                self._http(sock)
        except OSError:
            pass
        finally:
            proxy._track(sock, False)
            _close(sock)

    # --- HTTP ------------------------------------------------------------------------------

    def _read_head(self, sock: socket.socket) -> tuple[bytes, bytes] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(_BUF)
            if not chunk:
                return None
            data += chunk
            if len(data) > 1_000_000:
                return None
        head, rest = data.split(b"\r\n\r\n", 1)
        return head, rest

    def _reply(self, sock: socket.socket, status: int, reason: str, extra: str = "", body: bytes = b"") -> None:
        sock.sendall(f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)

    def _http(self, sock: socket.socket) -> None:
        proxy = self.server.proxy
        got = self._read_head(sock)
        if got is None:
            return
        head, rest = got
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = [*lines[0].split(" "), "", ""][:3]
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if ":" in line]
        if isinstance(proxy.behaviour, int):
            status = proxy.behaviour
            extra = 'Proxy-Authenticate: Basic realm="test"\r\n' if status == 407 else ""
            body = b'{"error": {"message": "the proxy says ' + str(status).encode() + b'"}}'
            proxy._bump("answered")
            self._reply(sock, status, "Proxy Says No", extra + "Content-Type: application/json\r\n", body)
            return
        if proxy.username is not None:
            wanted = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
            given = dict((k.lower(), v) for k, v in headers).get("proxy-authorization", "")
            if given != f"Basic {wanted}":
                proxy._bump("auth_failures")
                self._reply(sock, 407, "Proxy Authentication Required", 'Proxy-Authenticate: Basic realm="test"\r\n')
                return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = self._open(host, port)
            if upstream is None:
                self._reply(sock, 502, "Bad Gateway")
                return
            proxy._tunnel(f"CONNECT {target}")
            sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                proxy._seen_in_tunnel(rest)
                upstream.sendall(rest)
            self._pipe(sock, upstream)
            return
        if not target.startswith("http://"):
            self._reply(sock, 400, "Bad Request")
            return
        hostport, _, path = target[len("http://"):].partition("/")
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "80")
        upstream = self._open(host, port)
        if upstream is None:
            self._reply(sock, 502, "Bad Gateway")
            return
        # Forward the request: origin-form target, hop-by-hop headers dropped, one request per connection.
        kept = [(k, v) for k, v in headers
                if k.lower() not in ("proxy-authorization", "proxy-connection", "connection", "keep-alive")]
        kept += [("Via", f"1.1 {proxy.name}"), ("Connection", "close")]
        request_head = f"{method} /{path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept) + "\r\n"
        proxy._forwarded(f"{method} {target}")
        upstream.sendall(request_head.encode("latin-1") + rest)
        # The body may still be arriving: pass it on while the answer comes back.
        threading.Thread(target=self._copy, args=(sock, upstream), daemon=True).start()
        # The answer: its head gets Connection: close (this connection ends with it), the rest as it comes.
        answer = self._read_head(upstream)
        if answer is None:
            return
        answer_head, answer_rest = answer
        answer_lines = [line for line in answer_head.decode("latin-1").split("\r\n")
                        if not line.lower().startswith(("connection:", "keep-alive:"))]
        sock.sendall(("\r\n".join(answer_lines) + "\r\nConnection: close\r\n\r\n").encode("latin-1") + answer_rest)
        try:
            while True:
                data = upstream.recv(_BUF)
                if not data:
                    break
                sock.sendall(data)
        finally:
            self.server.proxy._track(upstream, False)
            _close(upstream)

    # --- SOCKS5 ----------------------------------------------------------------------------

    def _recv_exact(self, sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def _socks5(self, sock: socket.socket) -> None:
        proxy = self.server.proxy
        _, count = self._recv_exact(sock, 2)
        methods = self._recv_exact(sock, count)
        if proxy.username is not None:
            if 2 not in methods:
                sock.sendall(b"\x05\xff")
                return
            sock.sendall(b"\x05\x02")
            _, ulen = self._recv_exact(sock, 2)
            user = self._recv_exact(sock, ulen).decode()
            (plen,) = self._recv_exact(sock, 1)
            password = self._recv_exact(sock, plen).decode()
            if (user, password) != (proxy.username, proxy.password):
                proxy._bump("auth_failures")
                sock.sendall(b"\x01\x01")
                return
            sock.sendall(b"\x01\x00")
        else:
            if 0 not in methods:
                sock.sendall(b"\x05\xff")
                return
            sock.sendall(b"\x05\x00")
        _, cmd, _, atyp = self._recv_exact(sock, 4)
        if atyp == 1:
            host = socket.inet_ntoa(self._recv_exact(sock, 4))
        elif atyp == 3:
            (length,) = self._recv_exact(sock, 1)
            host = self._recv_exact(sock, length).decode()
        elif atyp == 4:
            host = socket.inet_ntop(socket.AF_INET6, self._recv_exact(sock, 16))
        else:
            sock.sendall(b"\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00")
            return
        port = int.from_bytes(self._recv_exact(sock, 2), "big")
        if cmd != 1:
            sock.sendall(b"\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00")
            return
        upstream = self._open(host, str(port))
        if upstream is None:
            sock.sendall(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")
            return
        proxy._tunnel(f"SOCKS5 {host}:{port}")
        sock.sendall(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
        self._pipe(sock, upstream)

    # --- relaying --------------------------------------------------------------------------

    def _open(self, host: str, port: str) -> socket.socket | None:
        host = host.strip("[]")
        if not _loopback(host) or not port.isdigit():
            return None  # tests never reach beyond this machine
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            return None
        upstream.settimeout(None)
        self.server.proxy._track(upstream, True)
        return upstream

    def _copy(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(_BUF)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        stopping = self.server.proxy._stopping
        try:
            while not stopping.is_set():
                readable, _, _ = select.select([a, b], [], [], 0.5)
                for src in readable:
                    data = src.recv(_BUF)
                    if not data:
                        return
                    if src is a:
                        self.server.proxy._seen_in_tunnel(data)
                    (b if src is a else a).sendall(data)
        except OSError:
            pass
        finally:
            self.server.proxy._track(b, False)
            _close(b)


class LocalProxy:
    """A proxy server on 127.0.0.1 in this process; see the module's docstring."""

    def __init__(self, *, behaviour: str | int = "forward", username: str | None = None,
                 password: str | None = None, hang_seconds: float = 60.0):
        self.behaviour = behaviour
        self.username = username
        self.password = password
        self.hang_seconds = hang_seconds
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self.counts: dict[str, int] = {}
        self.targets: list[str] = []
        self._server: _Server | None = None
        self.port = 0

    # --- life ------------------------------------------------------------------------------

    def start(self) -> Self:
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                         name=f"local-proxy-{self.port}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"local-proxy-{self.port}"

    @property
    def label(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _auth(self) -> str:
        return f"{self.username}:{self.password}@" if self.username is not None else ""

    @property
    def url(self) -> str:
        return f"http://{self._auth()}127.0.0.1:{self.port}"

    @property
    def socks_url(self) -> str:
        return f"socks5://{self._auth()}127.0.0.1:{self.port}"

    # --- counts ----------------------------------------------------------------------------

    def _bump(self, name: str) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def _forwarded(self, what: str) -> None:
        with self._lock:
            self.counts["forwarded"] = self.counts.get("forwarded", 0) + 1
            self.targets.append(what)

    def _tunnel(self, what: str) -> None:
        with self._lock:
            self.counts["tunnels"] = self.counts.get("tunnels", 0) + 1
            self.targets.append(what)

    def _seen_in_tunnel(self, data: bytes) -> None:
        """Count the plain-HTTP requests a tunnel carries (tests' upstreams speak plain HTTP)."""
        if _REQUEST_LINE.match(data):
            self._bump("tunnelled_requests")

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            (self._sockets.add if add else self._sockets.discard)(sock)

    @property
    def carried(self) -> int:
        """Requests passed on to their target: forwarded ones, and plain-HTTP ones seen inside tunnels."""
        return self.counts.get("forwarded", 0) + self.counts.get("tunnelled_requests", 0)

    @property
    def connections(self) -> int:
        return self.counts.get("connections", 0)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.targets.clear()

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll ``predicate()`` until truthy (a condition, never a fixed sleep)."""
        return wait_until(predicate, timeout)


def closed_port() -> int:
    """A loopback port nothing listens on (a dead proxy)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalGeonode:
    """A stand-in for Geonode's proxy-list API on loopback: serves ``proxies`` in pages, records queries.

    ``rows`` are Geonode rows (``{"ip", "port", "protocols", "upTime", …}``); ``reply`` may be set to
    ``"garbage"`` (not JSON), ``"empty"`` or an int status to make it fail.
    """

    def __init__(self, rows: list[dict[str, Any]] | None = None):
        self.rows = list(rows or [])
        self.reply: str | int | None = None
        self.queries: list[dict[str, str]] = []
        self._server: Any = None

    @staticmethod
    def row(proxy: LocalProxy | int, protocols: tuple[str, ...] = ("http", "https"), uptime: float = 99.0,
            latency: float = 10.0) -> dict[str, Any]:
        port = proxy.port if isinstance(proxy, LocalProxy) else proxy
        return {"_id": f"local-{port}", "ip": "127.0.0.1", "port": str(port), "protocols": list(protocols),
                "upTime": uptime, "latency": latency, "lastChecked": int(time.time()), "country": "ZZ"}

    def start(self) -> Self:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qsl, urlsplit

        geonode = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                geonode.queries.append(query)
                status, body = 200, b""
                if isinstance(geonode.reply, int):
                    status, body = geonode.reply, b'{"message": "failing on purpose"}'
                elif geonode.reply == "garbage":
                    body = b"<html>not the API</html>"
                else:
                    limit, number = int(query.get("limit", 100)), int(query.get("page", 1))
                    rows = [] if geonode.reply == "empty" else geonode.rows
                    body = json.dumps({"data": rows[(number - 1) * limit: number * limit], "total": len(rows),
                                       "page": number, "limit": limit}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/proxy-list"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
