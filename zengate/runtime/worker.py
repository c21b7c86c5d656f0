"""gunicorn's gevent worker with four changes: bounded time for a request head, JSON errors,
each answer's head sent together with its first body bytes, and turns between a connection's
requests; and less of gunicorn's per-request work.

* A request head (request line and headers, or the wait for the next request on a kept-alive
  connection) must arrive within gunicorn's ``keepalive`` or ``ZENGATE_CLIENT_TIMEOUT``, whichever
  is shorter; a client trickling its head byte by byte is then disconnected. (The body has its own
  deadline, :mod:`zengate.web.client_limits`; nothing bounds the answer, so long streams run on.)
* What gunicorn refuses before the application sees the request (a request line or headers over
  its hard limits, a malformed head) is answered in JSON, in the error shape of the API the path
  belongs to, instead of gunicorn's HTML page.
* gunicorn sends an answer's status line and headers with one ``send`` and each piece of its body
  with another: every answer reached the client as two segments, and a client woke twice before
  its first body byte. :class:`CoalescingResponse` holds the head until the first body bytes and
  sends both at once (time to first token, and latency, at low concurrency). Every write goes out
  with :func:`zengate.runtime.sockets.send_all` (one ``send``, not gevent's ``sendall`` loop).

* Per request, gunicorn looks up a dozen settings through ``Config.__getattr__``, formats the
  ``Date`` header with the ``email`` package and builds a new ``wsgi.errors`` wrapper (which looks
  up its logger): together about 3 % of a request's CPU. In a worker, settings do not change (a
  reload starts new workers), the date changes once a second and the wrapper's streams only when
  the log files are reopened: :class:`SettledConfig`, :func:`http_date` and :func:`base_environ`
  do each once.

* After each request the worker gives its other connections a turn if its event loop has not
  polled them for ``helpers.TURN_SLICE`` (:func:`zengate.runtime.helpers.take_turn_if_due`). gevent
  switches greenlets only when one waits, and under load a kept-alive connection's next request
  (even its upstream's answer) is often there before it is read: one connection then kept the
  worker for up to 100 ms while the others waited (p99 at 32 connections: 170–380 ms).

* A stopping worker ends as soon as its last answer does (:mod:`zengate.runtime.draining`):
  connections waiting between requests are closed at once, and the wait for the open answers is
  a join on them, not gunicorn's one-second polls; the graceful timeout stays the upper bound.

* Before serving, the worker moves what it built at start (modules, the app, its settings and
  catalog: most of its objects, all long-lived) out of the garbage collector's sight with
  ``gc.freeze()`` (and lets the collector see them again when it stops serving). A full collection
  otherwise walked all of them every few thousand requests, holding the worker some 45 ms each time.

``gunicorn.conf.py`` selects it with ``worker_class = "zengate.runtime.worker.ZengateWorker"``.
"""

from __future__ import annotations

import gc
import json
import time
import types
from collections.abc import Callable
from functools import partial
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.http import wsgi
from gunicorn.http.message import Request
from gunicorn.workers.ggevent import GeventWorker

from ..config import Config
from .draining import Connections
from .helpers import take_turn_if_due
from .sockets import send_all

#: gunicorn's parse errors whose status is not 400: (error class, status, reason phrase).
_STATUSES: tuple[tuple[type[Exception], int, str], ...] = (
    (http_errors.InvalidResponseHeader, 500, "Internal Server Error"),  # the application's fault
    (http_errors.InvalidResponseHeaderName, 500, "Internal Server Error"),
    (http_errors.ConfigurationProblem, 500, "Internal Server Error"),
    (http_errors.LimitRequestLine, 414, "URI Too Long"),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large"),
    (http_errors.UnsupportedTransferCoding, 501, "Not Implemented"),
    (http_errors.ExpectationFailed, 417, "Expectation Failed"),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden"),
)


def status_of(exc: BaseException) -> tuple[int, str]:
    """The status and reason gunicorn gives an error it meets before or around the application."""
    for kind, status, reason in _STATUSES:
        if isinstance(exc, kind):
            return status, reason
    if isinstance(exc, http_errors.ParseException):
        return 400, "Bad Request"
    return 500, "Internal Server Error"


def request_path(req: Any, exc: BaseException) -> str:
    """The path of the request gunicorn was reading when it failed, or ``""`` when unknown.

    A head refused for its headers fails inside the parser, after the request line was read: the
    half-built request is found among the traceback's frames. gunicorn's C parser
    (``gunicorn_h1c``) refuses the head before the request has a path: the path is then read from
    the request line in the bytes it was given.
    """
    candidates = [req, getattr(exc, "req", None)]
    heads: list[bytes] = []
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        frame_locals = tb.tb_frame.f_locals
        candidates.append(frame_locals.get("self"))
        head = frame_locals.get("data")
        if isinstance(frame_locals.get("self"), Request) and isinstance(head, (bytes, bytearray)):
            heads.append(bytes(head))
        tb = tb.tb_next
    for candidate in candidates:
        if isinstance(candidate, Request) and isinstance(getattr(candidate, "path", None), str):
            return candidate.path
    for head in heads:
        path = _path_in_request_line(head)
        if path:
            return path
    return ""


def _path_in_request_line(head: bytes) -> str:
    """The path of ``METHOD target HTTP/x.y`` at the start of ``head`` (one empty line before it allowed)."""
    line = head.removeprefix(b"\r\n").split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[1].startswith(b"/"):
        return ""
    return parts[1].split(b"?", 1)[0].split(b"#", 1)[0].decode("latin-1")


def error_response(status: int, reason: str, message: str, path: str) -> bytes:
    """A complete HTTP/1.1 response carrying a JSON error in the shape of ``path``'s API."""
    from ..web.errors import error_body

    data = json.dumps(error_body(path, status, message)).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nX-Content-Type-Options: nosniff\r\n\r\n")
    return head.encode("latin-1") + data


class _SendAllSocket:
    """The client socket as a response writes to it: ``sendall`` is :func:`send_all`, the rest its own."""

    __slots__ = ("_sock",)

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def sendall(self, data: bytes) -> None:
        send_all(self._sock, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Capture:
    """Stands in for the socket while gunicorn writes: keeps the bytes instead of sending them."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def sendall(self, data: bytes) -> None:
        self.data += data


class CoalescingResponse(wsgi.Response):
    """gunicorn's HTTP/1 response, with its head sent in the same ``send`` as the first body bytes.

    gunicorn builds the head, and frames the first body piece (as a chunk when the answer is
    chunked), as always, but into a buffer (:meth:`_captured`); both go out in one ``send``. The
    head is never held longer than gunicorn would have held it: a write that puts no body bytes on
    the wire (an empty piece, or an answer without a body) sends it at once, as does ``close`` and
    a file sent with ``sendfile``.
    """

    _head: bytes | None = None
    _coalesce = True

    def __init__(self, req: Any, sock: Any, cfg: Any, *args: Any) -> None:
        super().__init__(req, _SendAllSocket(sock), cfg, *args)  # every write of gunicorn's: one send

    def _captured(self, write: Callable[[], None], before: bytes = b"") -> bytes:
        """What ``write`` (one of gunicorn's own writers) sends to the socket, after ``before``."""
        sock, capture = self.sock, _Capture(before)
        self.sock = capture
        try:
            write()
        finally:
            self.sock = sock
        return capture.data

    def send_headers(self) -> None:
        if self.headers_sent or not self._coalesce:
            super().send_headers()
            return
        self._head = self._captured(super().send_headers)

    def _emit_body(self, data: bytes) -> None:
        head, self._head = self._head, None
        if head is None:
            super()._emit_body(data)
            return
        self.sock.sendall(self._captured(partial(super()._emit_body, data), before=head))

    def flush_head(self) -> None:
        """Send a held head now."""
        head, self._head = self._head, None
        if head:
            self.sock.sendall(head)

    def write(self, arg: bytes) -> None:
        super().write(arg)
        self.flush_head()  # nothing went out with it (an empty piece, or a body-less answer)

    def sendfile(self, respiter: Any) -> bool:
        self._coalesce = False  # gunicorn's sendfile writes to the socket itself, after send_headers()
        return super().sendfile(respiter)

    def close(self) -> None:
        self.send_headers()  # (held) unless already sent
        self.flush_head()  # before gunicorn's close writes a chunked answer's end to the socket
        super().close()


class SettledConfig:
    """gunicorn's ``Config`` as one worker reads it: each setting looked up once, then kept.

    A setting changed through :meth:`set` is read anew; everything else (methods, other
    attributes, writes) is the wrapped ``Config``'s own.
    """

    #: Properties of ``Config`` read per request that depend on settings alone.
    _DERIVED = frozenset({"is_ssl"})

    def __init__(self, cfg: Any) -> None:
        self.__dict__["_cfg"] = cfg

    def __getattr__(self, name: str) -> Any:
        cfg = self.__dict__["_cfg"]
        value = getattr(cfg, name)
        if name in cfg.settings or name in self._DERIVED:
            self.__dict__[name] = value  # found directly from now on: __getattr__ is not called again
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.__dict__["_cfg"], name, value)

    def set(self, name: str, value: Any) -> None:
        """``Config.set``: the new value is read from then on (gunicorn.conf.py's post_worker_init sets one)."""
        self.__dict__["_cfg"].set(name, value)
        self.__dict__.pop(name, None)


_gunicorn_http_date = util.http_date
_date_line: list = [None, ""]  # [second, its formatted date]


def http_date(timestamp: float | None = None) -> str:
    """gunicorn's ``util.http_date``, formatted once a second for the current time."""
    if timestamp is not None:
        return _gunicorn_http_date(timestamp)
    second = int(time.time())
    if second != _date_line[0]:
        _date_line[:] = [second, _gunicorn_http_date(second)]
    return _date_line[1]


_gunicorn_base_environ = wsgi.base_environ
_base_environ: list = [None, {}]  # [the cfg it was built for, gunicorn's base environ]


def base_environ(cfg: Any) -> dict[str, Any]:
    """gunicorn's ``base_environ``: the same keys and values, built once per ``cfg`` and copied.

    Its ``wsgi.errors`` writes to the error log's streams, which change only when gunicorn reopens
    the log files (SIGUSR1 closes each file handler's stream and opens a new one): a wrapper
    holding a closed stream is built anew.
    """
    if _base_environ[0] is not cfg or any(getattr(stream, "closed", False)
                                          for stream in getattr(_base_environ[1]["wsgi.errors"], "streams", ())):
        _base_environ[:] = [cfg, _gunicorn_base_environ(cfg)]
    return dict(_base_environ[1])


def freeze_startup_objects() -> None:
    """Collect once, then exempt every object that survived from later collections."""
    gc.collect()
    gc.freeze()


class ZengateWorker(GeventWorker):
    """The gevent worker, with a deadline on request heads, errors answered in JSON, and each
    answer's head sent with its first body bytes."""

    #: How often a serving worker tells the master it is alive (gunicorn's gevent worker: 1 s).
    NOTIFY_SECONDS = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_timeout = Config.from_env().client_timeout
        self.connections = Connections()
        self._stop = Event()

    def init_process(self) -> None:
        # gunicorn's handle_request builds every HTTP/1 response with wsgi.create(), which takes
        # the module's Response class: in this worker process, that is ours.
        wsgi.Response = CoalescingResponse
        wsgi.base_environ = base_environ
        util.http_date = http_date
        self.cfg = SettledConfig(self.cfg)
        super().init_process()

    def run(self) -> None:
        """Serve; gunicorn calls this after ``post_worker_init``, when the app and its background loop are built."""
        freeze_startup_objects()
        try:
            self._serve()
        finally:
            # the interpreter's exit must see them again: frozen logging handlers were otherwise
            # finalised after gevent's modules were torn down ("Exception ignored in _removeHandlerRef")
            gc.unfreeze()

    def _serve(self) -> None:
        """gunicorn's gevent ``run``, but a stop is seen at once and ends with the last answer."""
        if self.cfg.is_ssl:
            from gunicorn.sock import ssl_context

            ssl_args = {"ssl_context": ssl_context(self.cfg)}
        else:
            ssl_args = {}
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            server = StreamServer(listener, handle=partial(self.handle, listener), spawn=Pool(self.worker_connections),
                                  **ssl_args)
            if self.cfg.workers > 1:
                server.max_accept = 1
            server.start()
            servers.append(server)
        while self.alive:
            self.notify()
            self._stop.wait(self.NOTIFY_SECONDS)
        for server in servers:
            server.close()  # no new connection
        self.connections.close_idle()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        for server in servers:
            while server.pool and time.monotonic() < deadline:
                self.notify()
                server.pool.join(timeout=min(self.NOTIFY_SECONDS, deadline - time.monotonic()))
        if any(server.pool for server in servers):
            self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
            for server in servers:
                server.stop(timeout=1)

    def handle_exit(self, sig: Any, frame: Any) -> None:
        """SIGTERM: stop serving (gunicorn's), and wake the serving loop now rather than at its next poll."""
        super().handle_exit(sig, frame)
        self._stop.set()

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        with self.connections.serving(client):
            super().handle(listener, client, addr)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        """gunicorn's, then a turn for the worker's other connections if this one has kept it long.

        The answer is out by then. Killed during the turn (a worker past its graceful timeout), the
        connection just closes: gunicorn would otherwise answer the ``GreenletExit`` with a 500 on
        a connection whose answer was already sent.
        """
        super().handle_request(listener_name, req, sock, addr)
        try:
            take_turn_if_due()
        except (gevent.GreenletExit, SystemExit):
            raise StopIteration from None  # gunicorn's way to end a kept-alive connection

    def timeout_ctx(self) -> Any:
        """Bound the wait for (and the reading of) each request head; silent: the connection closes.
        Known to :attr:`connections` as between requests."""
        return self.connections.awaiting_request(min(self.cfg.keepalive, self.client_timeout))

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's own refusals as JSON in the client's API shape (gunicorn writes HTML)."""
        status, reason = status_of(exc)
        if status >= 500:
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
            message = "internal error; see the gateway's log"
        else:
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
            message = f"{reason}: {exc}"
        try:
            util.write_nonblock(client, error_response(status, reason, message, request_path(req, exc)))
        except OSError:
            self.log.debug("Failed to send error message.")
