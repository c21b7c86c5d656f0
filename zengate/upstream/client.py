"""The upstream client: one pooled ``requests.Session`` per worker, OpenCode's headers, errors.

``send`` returns a response whose status is 2xx, or raises :class:`UpstreamError` carrying the
status the client should see (the upstream's own for HTTP errors, 502 for connection failures,
504 for timeouts) and the upstream's message.

Direct calls (no proxy) skip ``Session.request`` and hand a ready ``PreparedRequest`` to the
session's adapter, a :class:`DirectAdapter`: ``Session.request`` spends most of a millisecond per
call merging environment settings, cookies and hooks into a request the gateway has already fully
formed, and ``HTTPAdapter.send`` another ~100 µs finding the pool and building the response. The
urllib3 pools, keep-alive connections and TLS set-up are the session's own either way. Proxied
calls take the ordinary ``session.post`` path, where ``requests`` does the proxy work.

The adapter's pools make the connections of :mod:`zengate.upstream.wire`: a request's head and
body in one write, and less Python between a request and its answer's first byte.
"""

from __future__ import annotations

import datetime
import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.cookies import cookiejar_from_dict
from requests.models import PreparedRequest, Response
from requests.utils import get_encoding_from_headers

from .. import ids
from ..dialects import jsoncodec, registry
from . import wire


def _poll_now() -> Any:
    """The standard library's ``select.poll``, even where gevent has patched it."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        import select

        return select.poll
    return monkey.get_original("select", "poll")


_original_poll = _poll_now()
_wait_for_read = urllib3.connection.wait_for_read


def _readable_now_or_wait(sock: Any, timeout: float | None = None) -> bool:
    """urllib3's ``wait_for_read``, answering its zero-timeout probe without a trip through the hub.

    Before reusing a pooled connection urllib3 asks whether the server closed it, with a poll of
    timeout 0. Under gevent that poll is gevent's: it registers a watcher and switches to the hub
    and back (about 50 µs per request). A zero-timeout poll never blocks, so the original one is
    just as cooperative, and costs a single system call.
    """
    if timeout != 0:
        return _wait_for_read(sock, timeout)
    poller = _original_poll()
    poller.register(sock, 1)  # POLLIN
    return bool(poller.poll(0))


urllib3.connection.wait_for_read = _readable_now_or_wait


@dataclass
class UpstreamError(Exception):
    """An upstream call that did not give a usable answer."""

    status: int
    message: str
    kind: str = "http"  # http | connection | timeout | protocol
    error_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    detail: str | None = None  # for the request log and log lines only: what the client may not see (proxies)
    response: Any = field(default=None, repr=False, compare=False)  # the HTTP error answer, read (wire capture)

    def __str__(self) -> str:
        return f"{self.status} {self.kind}: {self.message}"

    @property
    def retry_after(self) -> str | None:
        return self.headers.get("retry-after")


class FirstByteTimeout(UpstreamError):
    """An attempt that did not begin its answer within its share of ``first_byte_budget`` (a 504).

    ``seconds`` is the share it had; the fallback loop names it in the request log's attempts and
    tells the client which upstreams were tried when the whole budget is spent.
    """

    def __init__(self, seconds: float, message: str | None = None, detail: str | None = None):
        super().__init__(504, message or f"the upstream did not start answering within {seconds_text(seconds)} s",
                         "timeout", detail=detail)
        self.seconds = seconds


def seconds_text(seconds: float) -> str:
    """Seconds for a message: ``600``, ``1.5``, ``0.25``."""
    return f"{seconds:.2f}".rstrip("0").rstrip(".")


#: How close to its deadline a timeout may fire and still be the deadline's (event-loop timers
#: can fire a little early): it is then reported as a first-byte timeout, not a plain one.
DEADLINE_SLACK = 0.05
#: The shortest read timeout a deadline gives: enough to take what has already arrived.
LAST_MOMENT = 0.001


@dataclass(frozen=True, slots=True)
class FirstByteDeadline:
    """How long one attempt may wait for the first byte of its answer, and what applies after it.

    ``at`` is a :func:`time.monotonic` moment, ``seconds`` the attempt's share of the budget (for
    messages), ``after`` the socket timeout once the first byte is in (``upstream_read_timeout``).
    Until ``at`` the socket's read timeout is what is left (:meth:`timeout` for the request and its
    head, the relay for a stream's first event and a JSON body); connecting counts.
    """

    at: float
    seconds: float
    after: float

    @classmethod
    def starting_now(cls, seconds: float, after: float) -> FirstByteDeadline:
        return cls(time.monotonic() + seconds, seconds, after)

    def left(self) -> float:
        """Seconds until the deadline; :class:`FirstByteTimeout` when it has passed."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def read_timeout(self) -> float:
        """A read timeout for what is left, never quite zero: bytes already there are still read
        (a head that came just in time may have brought the answer with it)."""
        return max(self.at - time.monotonic(), LAST_MOMENT)

    def timeout(self, connect: float, read: float | None = None) -> urllib3.Timeout:
        """urllib3's timeout for a request under this deadline: connecting at most ``connect`` seconds,
        its head at most ``read`` (default: no limit of its own), and both within what is left."""
        left = self.left()
        return urllib3.Timeout(total=left, connect=min(connect, left), read=left if read is None else min(read, left))

    def passed(self) -> bool:
        return time.monotonic() >= self.at - DEADLINE_SLACK

    def expired(self) -> FirstByteTimeout:
        return FirstByteTimeout(self.seconds)

    def failure(self, err: UpstreamError) -> UpstreamError:
        """``err`` as this deadline reports it: a timeout at the deadline is a :class:`FirstByteTimeout`."""
        if err.kind == "timeout" and not isinstance(err, FirstByteTimeout) and self.passed():
            return self.expired()
        return err


def parse_error_body(status: int, content: bytes) -> tuple[str, str | None]:
    """The message and type inside an upstream error body, whatever its shape."""
    try:
        body = json.loads(content)
    except ValueError:
        text = content[:200].decode("utf-8", "replace").strip()
        if text.lower().startswith(("<!doctype", "<html")) or not text:
            return f"upstream answered HTTP {status} with a non-JSON body", None
        return text, None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail") or json.dumps(err)[:500]
            return str(message), err.get("type") or err.get("code") or body.get("type")
        if isinstance(err, str):
            return err, body.get("type")
        if isinstance(body.get("message"), str):
            return body["message"], body.get("type") or body.get("name")
        if isinstance(body.get("detail"), str):
            return body["detail"], None
    return json.dumps(body)[:500], None


def iter_body(response: requests.Response) -> Iterator[bytes]:
    """The raw body as it arrives: each chunk is yielded as soon as the socket gives it."""
    raw = response.raw
    if raw.chunked and raw.supports_chunked_reads():
        yield from raw.read_chunked(None, decode_content=True)
        return
    while True:
        data = raw.read1(65536, decode_content=True)
        if not data:
            return
        yield data


def transport_error(exc: BaseException) -> UpstreamError:
    """Map a requests/urllib3 transport exception to the error a client should see."""
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError subclass
        return UpstreamError(502, "could not reach the upstream (connection failed or was closed)", "connection")
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError)):
        return UpstreamError(504, "the upstream did not answer in time", "timeout")
    if isinstance(exc, requests.exceptions.ProxyError):
        return UpstreamError(502, "could not reach the upstream through the proxy", "connection")
    if isinstance(exc, (requests.ConnectionError, urllib3.exceptions.HTTPError, OSError)):
        return UpstreamError(502, "could not reach the upstream (connection failed or was closed)", "connection")
    return UpstreamError(502, f"upstream failure: {type(exc).__name__}", "protocol")


def _failure(exc: BaseException, deadline: FirstByteDeadline | None) -> UpstreamError:
    """:func:`transport_error`, a timeout at the ``deadline`` told apart as a :class:`FirstByteTimeout`."""
    err = transport_error(exc)
    return err if deadline is None else deadline.failure(err)


def _whole_body(response: requests.Response) -> bytes:
    """Read a response to its end and close it; a transport failure meanwhile is an UpstreamError."""
    try:
        return response.content
    except Exception as exc:
        raise transport_error(exc) from exc
    finally:
        response.close()


class _DirectResponse(Response):
    """A ``requests.Response`` for a direct call, its cookie jar made only when asked for.

    ``Response()`` builds an empty cookie jar (with its lock) for every answer; nothing reads a
    direct call's cookies, and ``Session.send``, which would fill the jar, is not on this path.
    """

    def __init__(self, raw: urllib3.BaseHTTPResponse, request: PreparedRequest, adapter: HTTPAdapter) -> None:
        self._content = False
        self._content_consumed = False
        self._next = None
        self.status_code = raw.status
        self.headers = raw.headers  # urllib3's HTTPHeaderDict: case-insensitive, as requests' own
        self.raw = raw
        self.url = request.url
        self.encoding = get_encoding_from_headers(raw.headers)
        self.history = []
        self.reason = raw.reason
        self.elapsed = _NO_TIME
        self.request = request
        self.connection = adapter

    def __getattr__(self, name: str) -> Any:
        if name != "cookies":
            raise AttributeError(name)
        self.cookies = jar = cookiejar_from_dict({})
        return jar

    @property
    def content(self) -> bytes:
        """The whole body, read in one call (``Response.content`` reads it in 10 KB steps).

        Each of requests' steps goes through urllib3's ``stream``/``read`` machinery (decoder set-up,
        buffers, an error-catching context), twice for a small JSON answer. A transport failure
        comes through as urllib3 raised it: ``relay.read_error`` and ``transport_error`` map those.
        """
        if self._content is False:
            if self._content_consumed:
                raise RuntimeError("The content for this response was already consumed")
            self._content = self.raw.read(decode_content=True) or b""
            self._content_consumed = True
        return self._content


_NO_TIME = datetime.timedelta(0)
#: ``retries=False`` as urllib3 reads it (``Retry.from_int(False, redirect=False)``), made once:
#: no retry, no redirect, urllib3's own exception raised at once.
_NO_RETRIES = urllib3.Retry(False, redirect=False)


@functools.lru_cache(maxsize=32)
def _timeout(connect_read: tuple[float, float]) -> urllib3.Timeout:
    """urllib3's ``Timeout`` for a (connect, read) pair, made once (urllib3 clones it per request)."""
    return urllib3.Timeout(connect=connect_read[0], read=connect_read[1])


class DirectAdapter(HTTPAdapter):
    """``HTTPAdapter`` with a lean path for the gateway's own direct calls.

    ``Session.send`` always passes ``proxies`` (a dict, empty when there is none) and gets the
    ordinary adapter. The gateway's direct calls (``UpstreamClient._send_direct``) pass none: their
    pool is looked up once per host (set up, TLS verification included, exactly as ``HTTPAdapter``
    does it) and the response is built without the cookie jar, which nothing here reads. urllib3's
    own exceptions come through unchanged (``retries=False``): :func:`transport_error` maps them.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pools: dict[str, urllib3.HTTPConnectionPool] = {}

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": wire.Pool, "https": wire.TLSPool}

    def send(self, request: PreparedRequest, stream: bool = False, timeout=None, verify=True, cert=None,
             proxies=None) -> Response:
        lean = proxies is None and stream and verify is True and cert is None and isinstance(timeout,
                                                                                            (tuple, urllib3.Timeout))
        if not lean:
            return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        url = request.url
        scheme_end = url.index("://") + 3
        path_start = url.find("/", scheme_end)
        origin, path = (url, "/") if path_start < 0 else (url[:path_start], url[path_start:])
        pool = self._pools.get(origin)
        if pool is None or pool.pool is None:  # first call to this host, or its pool was closed
            pool = self.get_connection_with_tls_context(request, verify, cert=cert)
            self.cert_verify(pool, url, verify, cert)
            self._pools[origin] = pool
        raw = pool.urlopen(request.method, path, body=request.body, headers=request.headers, redirect=False,
                           assert_same_host=False, preload_content=False, decode_content=False,
                           retries=_NO_RETRIES,
                           timeout=timeout if isinstance(timeout, urllib3.Timeout) else _timeout(timeout))
        return _DirectResponse(raw, request, self)

    def close(self) -> None:
        self._pools.clear()
        super().close()


class UpstreamClient:
    """Sends requests upstream with OpenCode's client headers."""

    def __init__(self, settings, *, pool_size: int = 1000):
        self.settings = settings
        self.session = requests.Session()
        self.session.trust_env = False  # proxies are chosen by zengate, never by the environment
        self.egress = None  # set by the gateway: upstream/egress.py picks direct or a proxy per request
        self.adapter = DirectAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)

    def headers(self, *, key: str, protocol: str, stream: bool) -> dict[str, str]:
        s = self.settings
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "User-Agent": s.get("user_agent"),
            "x-opencode-client": s.get("opencode_client"),
            "x-opencode-project": s.get("opencode_project"),
            "x-opencode-session": s.get("opencode_session") or "",
            "x-opencode-request": ids.opencode_id("msg"),
        }
        if stream:
            headers["Accept-Encoding"] = "identity"
        headers.update(registry.get(protocol).auth_headers(key))
        return headers

    def timeouts(self) -> tuple[float, float]:
        return (self.settings.get("upstream_connect_timeout"), self.settings.get("upstream_read_timeout"))

    def send(self, url: str, payload: bytes, *, key: str, protocol: str, stream: bool,
             proxies: dict[str, str] | None = None, extra_headers: dict[str, str] | None = None,
             timeout: tuple[float, float] | urllib3.Timeout | None = None,
             deadline: FirstByteDeadline | None = None) -> requests.Response:
        """POST ``payload`` to ``url``; a 2xx response (body unread when streaming) or UpstreamError.

        Under a ``deadline`` the request and the answer's head must come within what is left of
        it (connecting at most ``upstream_connect_timeout``, unless ``timeout`` says otherwise),
        and a timeout at the deadline is a :class:`FirstByteTimeout`.
        """
        headers = self.headers(key=key, protocol=protocol, stream=stream)
        if extra_headers:
            headers.update(extra_headers)
        if timeout is None:
            timeout = (self.timeouts() if deadline is None
                       else deadline.timeout(self.settings.get("upstream_connect_timeout")))
        if proxies is None:
            return self._send_direct(url, payload, headers, timeout, deadline)
        try:
            response = self.session.post(
                url,
                data=payload,
                headers=headers,
                stream=True,
                timeout=timeout,
                proxies=proxies,
            )
        except Exception as exc:
            raise _failure(exc, deadline) from exc
        return self._checked(response)

    def _send_direct(self, url: str, payload: bytes, headers: dict[str, str],
                     timeout: tuple[float, float] | urllib3.Timeout,
                     deadline: FirstByteDeadline | None = None) -> requests.Response:
        prepared = PreparedRequest()
        prepared.method = "POST"
        prepared.url = url
        headers["Content-Length"] = str(len(payload))
        prepared.headers = headers  # a plain dict: its names are distinct in any case (headers())
        prepared.body = payload
        prepared.hooks = {"response": []}
        try:
            response = self.adapter.send(prepared, stream=True, timeout=timeout)
        except Exception as exc:
            raise _failure(exc, deadline) from exc
        return self._checked(response)

    def _checked(self, response: requests.Response) -> requests.Response:
        """The response when it is 2xx; otherwise its error as :class:`UpstreamError`."""
        if response.status_code < 400:
            return response
        content = _whole_body(response)
        message, error_type = parse_error_body(response.status_code, content)
        retry_after = response.headers.get("retry-after")
        raise UpstreamError(response.status_code, message, "http", error_type,
                            {"retry-after": retry_after} if retry_after else {}, response=response)

    def read_json(self, response: requests.Response) -> Any:
        """The whole body of a non-streaming answer as JSON (502 when it is not JSON)."""
        content = _whole_body(response)
        try:
            return jsoncodec.loads(content)
        except ValueError:
            ctype = response.headers.get("Content-Type", "?")
            raise UpstreamError(502, f"the upstream answered with a non-JSON body ({ctype})", "protocol") from None

    def get_json(self, url: str, timeout: float | tuple[float, float] = 10.0, *,
                 proxies: dict[str, str] | None = None, direct: bool = False) -> Any:
        """A keyless GET (the upstream's /models); through proxies when proxy_mode is on."""
        if self.egress is not None and proxies is None and not direct:
            return self.egress.get_json(self, url, timeout)
        try:
            response = self.session.get(url, headers={"User-Agent": self.settings.get("user_agent")},
                                        timeout=timeout, proxies=proxies)
        except Exception as exc:
            raise transport_error(exc) from exc
        return self.read_json(self._checked(response))

    def close(self) -> None:
        self.session.close()
