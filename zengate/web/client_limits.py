"""Limits on what a client sends before it is answered: the size of its request head, the time
it takes to send its body.

* **Head size.** The request line and headers together may take ``ZENGATE_MAX_HEADER_BYTES``
  (32 KiB); a larger head is a 431 in the error shape of the API called (:func:`oversized_head`,
  checked before any view). gunicorn's own hard limits (``gunicorn.conf.py``) sit above this one,
  so the application is the one that answers.
* **Body time.** Under gunicorn's gevent worker, the body must arrive within
  ``ZENGATE_CLIENT_TIMEOUT`` seconds (30) of the head: :class:`BodyDeadline` wraps ``wsgi.input``
  so that every read is bounded by what is left of that deadline, however slowly the bytes trickle
  in. A client that misses it gets a 408 and the connection is closed. Only reads of the request
  are bounded: an answer (a stream of minutes) never is. Once gunicorn holds the rest of a
  ``Content-Length`` body in memory (usually it came with the head), reads cannot block and run
  without a timer.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.exceptions import RequestTimeout

try:
    from gunicorn.http.body import LengthReader  # the reader of a Content-Length body
except ImportError:  # pragma: no cover - gunicorn is a dependency
    LengthReader = None

#: Per header line besides name and value: ": " and CRLF.
_LINE_OVERHEAD = 4
_UNPREFIXED = {"CONTENT_TYPE": "Content-Type", "CONTENT_LENGTH": "Content-Length"}


def head_bytes(environ: dict[str, Any]) -> int:
    """About how many bytes the request line and headers took on the wire."""
    target = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
    if not environ.get("RAW_URI") and environ.get("QUERY_STRING"):
        target += "?" + environ["QUERY_STRING"]
    size = len(environ.get("REQUEST_METHOD", "")) + len(target) + len(environ.get("SERVER_PROTOCOL", "")) + 4
    for key, value in environ.items():
        if not isinstance(value, str):
            continue
        if key.startswith("HTTP_"):
            size += len(key) - 5 + len(value) + _LINE_OVERHEAD
        elif key in _UNPREFIXED and value:
            size += len(_UNPREFIXED[key]) + len(value) + _LINE_OVERHEAD
    return size


def oversized_head(environ: dict[str, Any], limit: int) -> str | None:
    """The 431 message when the request head is over ``limit`` bytes, else None."""
    size = head_bytes(environ)
    if size <= limit:
        return None
    return (f"request headers are {size} bytes; the limit is {limit} bytes for the request line and headers "
            "together (ZENGATE_MAX_HEADER_BYTES)")


class ClientTooSlow(RequestTimeout):
    """408: the request body did not arrive within ``ZENGATE_CLIENT_TIMEOUT``."""

    def __init__(self, seconds: float):
        super().__init__(f"the request body did not arrive within {seconds:g} seconds (ZENGATE_CLIENT_TIMEOUT)")


class DeadlineInput:
    """``wsgi.input`` whose every read ends by one deadline (gevent), however slowly bytes arrive."""

    def __init__(self, stream: Any, seconds: float):
        self._stream = stream
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds
        self._in_memory = False

    def _bounded(self, read: Callable[..., Any], *args: Any) -> Any:
        if self._in_memory or self._rest_in_memory():
            return read(*args)  # no socket read can happen: no timer (a few µs each) needed
        import gevent

        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self._give_up()
            raise ClientTooSlow(self._seconds)
        # The exception is raised inside the blocked read; gunicorn's body then marks itself failed,
        # so the connection is closed after the 408 instead of being drained.
        with gevent.Timeout(remaining, ClientTooSlow(self._seconds)):
            return read(*args)

    def _rest_in_memory(self) -> bool:
        """True once gunicorn's body reader holds the rest of a ``Content-Length`` body in memory.

        gunicorn reads the socket ahead into its unreader's buffer: a small body usually arrives
        with the head, and then no read of it can wait for the client. Any other reader (chunked
        bodies, another server) keeps the timer.
        """
        reader = getattr(self._stream, "reader", None)
        if LengthReader is None or type(reader) is not LengthReader:
            return False
        buffered = getattr(reader.unreader, "buf", None)
        if not isinstance(buffered, io.BytesIO):
            return False
        with buffered.getbuffer() as view:
            self._in_memory = view.nbytes >= reader.length
        return self._in_memory

    def _give_up(self) -> None:
        if hasattr(self._stream, "failed"):
            self._stream.failed = True  # gunicorn: do not reuse the connection

    def read(self, size: int | None = -1) -> bytes:
        return self._bounded(self._stream.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._bounded(self._stream.readline, size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return self._bounded(self._stream.readlines, hint)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class BodyDeadline:
    """WSGI middleware: under gunicorn's gevent worker, bound the time to read the request body."""

    def __init__(self, app: Callable[..., Iterable[bytes]], seconds: float):
        self.app = app
        self.seconds = seconds

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if "gunicorn.socket" in environ and _gevent_patched():
            environ["wsgi.input"] = DeadlineInput(environ["wsgi.input"], self.seconds)
        return self.app(environ, start_response)


def _gevent_patched() -> bool:
    """True in a gevent worker (sockets cooperative), where a gevent timeout can interrupt a read."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return monkey.is_module_patched("socket")
