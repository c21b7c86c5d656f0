"""Wire capture: one JSON line per client exchange, for debugging (setting ``wire_capture``).

A line holds the client's request as received (method, path, query, headers, body), each upstream
attempt (URL, headers and body sent, status, answer headers, answer body — a stream's raw bytes up
to its end; what an upstream sends after it, drained for the connection's reuse, is not kept),
the client's answer, timings, the client's key prefix, the upstream key's index, the proxy's label
(never its credentials) and the outcome. Every header, URL and body goes through :func:`masked_*`
first: ``Authorization``, ``x-api-key``, ``x-goog-api-key``, cookies and ``?key=`` are masked, and
bodies get :func:`zengate.store.redaction.redact_secrets` (sk-zen keys, the upstream keys the
process registered, bearer tokens…). Bodies are cut at ``capture_body_bytes``.

Files: a worker process writes only its own, ``capture-<UTC time>-<pid>-<n>.jsonl`` in the capture
directory (``ZENGATE_CAPTURE_DIR``). With one writer per file, its size is known without asking
anyone and rotation is closing it and opening the next; O_APPEND lines in one shared file would
also be safe, but rotating that needs workers to agree on who renames. Within a process the line
is written with one ``os.write`` under a lock: a greenlet never yields inside it (file I/O is not
cooperative under gevent) and threads outside gevent wait on the lock. A file is rotated when the
next line would take it past ``capture_max_bytes``; after opening one, the oldest files (by
modification time, any worker's) go until ``capture_max_files`` are left. A worker whose open
file was deleted (another's pruning, the admin's DELETE) sees it on its next write and opens a
new one.

Off the request path: the request hooks only keep references (the wire bytes, capped, are
copied as they pass); masking, serialising and writing run at the worker's next idle moment
(``helpers.when_idle``), like the request log. While ``wire_capture`` is off a request pays one
settings lookup (``web/client/common.begin``) and nothing else is made.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..dialects import jsoncodec
from ..store.db import private_directory
from ..store.redaction import redact_secrets
from . import logs
from .helpers import when_idle

MASK = logs.MASK
#: Headers whose whole value is a credential (a scheme word such as ``Bearer`` is kept).
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "cookie",
                            "set-cookie", "x-zengate-csrf", "api-key"})
#: Query parameters that carry a key (Gemini's ``?key=``).
_QUERY_SECRET = re.compile(r"([?&](?:key|api_key|apikey|access_token|token)=)[^&#\s\"]*", re.IGNORECASE)
FILE_NAME = re.compile(r"capture-\d{8}T\d{6}Z-\d{1,10}-\d{1,10}\.jsonl")
VERSION = 1


# --- masking (pure) ---------------------------------------------------------------------------

def masked_header(name: str, value: str) -> str:
    """A header's value fit for a capture file: a credential header's value masked, others redacted."""
    if name.lower() in SECRET_HEADERS:
        scheme, space, rest = value.partition(" ")
        return f"{scheme} {MASK}" if space and rest and scheme.isalpha() and len(scheme) < 16 else MASK
    return redact_secrets(value)


def masked_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str] | None) -> dict[str, str]:
    """Headers as one object (repeated names joined with ``, ``), every value masked (:func:`masked_header`)."""
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    shown: dict[str, str] = {}
    for name, value in items:
        value = masked_header(str(name), str(value))
        shown[name] = f"{shown[name]}, {value}" if name in shown else value
    return shown


def masked_url(url: str) -> str:
    """A URL or query with ``key=`` (and the like) masked, and credentials in it redacted."""
    return redact_secrets(_QUERY_SECRET.sub(lambda m: m.group(1) + MASK, url))


def body_text(data: bytes | bytearray | str | None, limit: int) -> tuple[str | None, int, bool]:
    """``(text, size, cut)``: a body's first ``limit`` bytes as masked text, its whole size, and
    whether it was cut. Bytes that are not UTF-8 are shown as U+FFFD."""
    if data is None:
        return None, 0, False
    raw = data.encode() if isinstance(data, str) else bytes(data)
    text = raw[:limit].decode("utf-8", "replace")
    return redact_secrets(text), len(raw), len(raw) > limit


# --- what one request's hooks collect ---------------------------------------------------------

class Attempt:
    """One upstream call as sent and answered; read into a line off the request path."""

    __slots__ = ("backend", "chunks", "error", "first_chunk", "head", "key_index", "last_chunk", "model",
                 "payload", "proxy", "response", "sent", "size", "status", "url")

    def __init__(self, url: str, payload: bytes, route: Any, sent: float) -> None:
        self.url = url
        self.payload = payload
        self.model = getattr(route, "upstream_model", None)
        self.backend = getattr(route, "tier", None)
        self.key_index = getattr(route, "key_index", None)
        self.sent = sent
        self.head: float | None = None
        self.first_chunk: float | None = None
        self.last_chunk: float | None = None
        self.response: Any = None  # the requests.Response (its request's headers, its own, a body read whole)
        self.status: int | None = None
        self.error: str | None = None
        self.proxy: str | None = None
        self.chunks: bytearray | None = None  # a stream's raw bytes, up to the cap
        self.size = 0  # a stream's whole size


class WireCapture:
    """What one request's hooks collect while wire capture is on (``RequestRecord.capture``)."""

    def __init__(self, writer: CaptureWriter, environ: Mapping[str, Any], limit: int,
                 started: float | None = None) -> None:
        self.writer = writer
        self.limit = limit
        self.time = dt.datetime.now(dt.UTC)
        self.started = time.perf_counter() if started is None else started  # the record's, when given
        self.method = environ.get("REQUEST_METHOD", "")
        self.path = environ.get("PATH_INFO", "")
        self.query = environ.get("QUERY_STRING", "")
        self.headers = list(_environ_headers(environ))
        self.body = bytearray()
        self.body_size = 0
        self.attempts: list[Attempt] = []
        self.answer: Any = None  # a JSON answer's body (a dict), or a stream's bytes (bytearray)
        self.answer_size = 0
        self.outcome: dict[str, Any] = {}

    def now(self) -> float:
        """Milliseconds since the request began."""
        return round((time.perf_counter() - self.started) * 1000, 2)

    # the client's side

    def read(self, data: bytes) -> None:
        """Bytes of the client's body as the view read them."""
        self.body_size += len(data)
        room = self.limit - len(self.body)
        if room > 0:
            self.body += data[:room]

    def answered(self, body: Any) -> None:
        """The client's JSON answer (a dict; serialised off the request path)."""
        self.answer = body

    def streamed(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """The client's stream, its bytes kept up to the cap as they go out."""
        kept = self.answer = bytearray()
        try:
            for chunk in chunks:
                self.answer_size += len(chunk)
                room = self.limit - len(kept)
                if room > 0:
                    kept += chunk[:room]
                yield chunk
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    # the upstream's side

    def sending(self, url: str, payload: bytes, route: Any) -> Attempt:
        attempt = Attempt(url, payload, route, self.now())
        self.attempts.append(attempt)
        return attempt

    def sent(self, attempt: Attempt, response: Any, proxy: str | None) -> None:
        """The attempt's answer began (a 2xx head); its body is read later, or streamed through :meth:`chunk`."""
        attempt.head, attempt.response, attempt.proxy = self.now(), response, proxy
        attempt.status = response.status_code

    def failed(self, attempt: Attempt, err: Any, proxy: str | None) -> None:
        """The attempt ended in an UpstreamError (with the upstream's answer, when it gave one)."""
        attempt.head, attempt.proxy = self.now(), proxy
        attempt.status, attempt.error = getattr(err, "status", None), str(err)
        attempt.response = getattr(err, "response", None)

    def chunk(self, data: bytes) -> None:
        """Raw bytes of the last attempt's stream, as the pump read them."""
        if not self.attempts:
            return
        attempt = self.attempts[-1]
        at = self.now()
        if attempt.chunks is None:
            attempt.chunks, attempt.first_chunk = bytearray(), at
        attempt.last_chunk = at
        attempt.size += len(data)
        room = self.limit - len(attempt.chunks)
        if room > 0:
            attempt.chunks += data[:room]

    # the end

    def finish(self, record: Any, status: int, error: str | None, ended: float | None) -> None:
        """The request is over (``RequestRecord.finish``): its line is written at the next idle moment."""
        self.outcome = {
            "request_id": record.request_id, "format": record.format, "model": record.model,
            "upstream_model": record.upstream_model, "stream": record.stream, "key_prefix": record.key_prefix,
            "status": status, "error": error, "ttfb_ms": None if record.ttfb_ms is None else round(record.ttfb_ms, 2),
            "ended_ms": round(((time.perf_counter() if ended is None else ended) - self.started) * 1000, 2),
            "proxy": record.proxy,
        }
        when_idle(self._write)

    def _write(self) -> None:
        self.writer.write(line(self))


def _environ_headers(environ: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The request's headers from a WSGI environ, as werkzeug names them."""
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            yield name[5:].replace("_", "-").title(), value
        elif name in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            yield name.replace("_", "-").title(), value


class TeeInput:
    """``wsgi.input`` that hands what is read to the capture too (installed only while it is on)."""

    def __init__(self, stream: Any, capture: WireCapture) -> None:
        self._stream = stream
        self._capture = capture

    def read(self, *args: Any) -> bytes:
        data = self._stream.read(*args)
        self._capture.read(data)
        return data

    def readline(self, *args: Any) -> bytes:
        data = self._stream.readline(*args)
        self._capture.read(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# --- the line (pure) --------------------------------------------------------------------------

def _response_parts(attempt: Attempt) -> tuple[dict[str, str], dict[str, str], bytes | bytearray | None]:
    """What was sent and answered: the request's headers, the answer's, and its body when read."""
    response = attempt.response
    if response is None:
        return {}, {}, attempt.chunks
    request = getattr(response, "request", None)
    sent = masked_headers(getattr(request, "headers", None))
    got = masked_headers(getattr(response, "headers", None))
    content = getattr(response, "__dict__", {}).get("_content")
    return sent, got, attempt.chunks if attempt.chunks is not None else (
        content if isinstance(content, (bytes, bytearray)) else None)


def attempt_entry(attempt: Attempt, limit: int) -> dict[str, Any]:
    """One upstream attempt as a capture line holds it, masked."""
    sent, got, body = _response_parts(attempt)
    request_body, request_size, request_cut = body_text(attempt.payload, limit)
    answer, answer_size, answer_cut = body_text(body, limit)
    if attempt.chunks is not None:
        answer_size, answer_cut = attempt.size, attempt.size > len(attempt.chunks)
    entry: dict[str, Any] = {
        "url": masked_url(attempt.url), "backend": attempt.backend, "model": attempt.model,
        "key_index": attempt.key_index, "proxy": attempt.proxy,
        "request": {"headers": sent, "body": request_body, "bytes": request_size, "cut": request_cut},
        "status": attempt.status,
        "response": {"headers": got, "body": answer, "bytes": answer_size, "cut": answer_cut},
        "ms": {"sent": attempt.sent, "head": attempt.head, "first_chunk": attempt.first_chunk,
               "last_chunk": attempt.last_chunk},
    }
    if attempt.error:
        entry["error"] = redact_secrets(attempt.error[:2000])
    return entry


def line(capture: WireCapture) -> dict[str, Any]:
    """The capture's JSON line (an object), everything in it masked."""
    limit = capture.limit
    body, _, _ = body_text(capture.body, limit)
    size, cut = capture.body_size, capture.body_size > len(capture.body)
    outcome = capture.outcome
    answer = capture.answer
    if isinstance(answer, bytearray):
        shown, _, _ = body_text(answer, limit)
        answer_size, answer_cut = capture.answer_size, capture.answer_size > len(answer)
    elif answer is not None:
        shown, answer_size, answer_cut = body_text(jsoncodec.dumps(answer), limit)
    else:
        shown, answer_size, answer_cut = None, 0, False
    return {
        "v": VERSION,
        "time": capture.time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": outcome.get("request_id"),
        "worker": os.getpid(),
        "format": outcome.get("format"),
        "model": outcome.get("model"),
        "upstream_model": outcome.get("upstream_model"),
        "stream": outcome.get("stream"),
        "key_prefix": outcome.get("key_prefix"),
        "proxy": outcome.get("proxy"),
        "status": outcome.get("status"),
        "error": redact_secrets(outcome["error"][:2000]) if outcome.get("error") else None,
        "client": {"method": capture.method, "path": capture.path, "query": masked_url(capture.query),
                   "headers": masked_headers(capture.headers), "body": body, "bytes": size, "cut": cut},
        "attempts": [attempt_entry(a, limit) for a in capture.attempts],
        "answer": {"body": shown, "bytes": answer_size, "cut": answer_cut},
        "ms": {"ttfb": outcome.get("ttfb_ms"), "ended": outcome.get("ended_ms")},
    }


# --- the files --------------------------------------------------------------------------------

class CaptureWriter:
    """A worker's capture files in ``directory``: appends lines, rotates and prunes (see the module docstring)."""

    def __init__(self, directory: Path, settings: Any) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._name = ""  # the open file's name
        self._pid = 0
        self._seq = 0

    def begin(self, environ: dict[str, Any], started: float | None = None) -> WireCapture:
        """A request's capture (its times counted from ``started``, a ``time.perf_counter()`` reading);
        its body is captured as the view reads ``wsgi.input``."""
        capture = WireCapture(self, environ, self.settings.get("capture_body_bytes"), started)
        environ["wsgi.input"] = TeeInput(environ["wsgi.input"], capture)
        return capture

    def write(self, entry: dict[str, Any]) -> None:
        """Append one line (rotating and pruning first when it is due)."""
        data = jsoncodec.dumps(entry) + b"\n"
        max_bytes, max_files = self.settings.get("capture_max_bytes"), self.settings.get("capture_max_files")
        with self._lock:
            fd = self._current(len(data), max_bytes)
            if fd is None:
                fd = self._fd = self._open()
                self.prune(max_files)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]

    def _current(self, size: int, max_bytes: int) -> int | None:
        """The open file when the line fits in it (closed when it does not, or was deleted)."""
        fd = self._fd
        if fd is None:
            return None
        if self._pid != os.getpid():  # a forked child: the file is its parent's
            self._fd = None
            return None
        try:
            stat = os.fstat(fd)
            if stat.st_nlink > 0 and not (stat.st_size and stat.st_size + size > max_bytes):
                return fd
        except OSError:
            pass
        self._fd = None
        os.close(fd)
        return None

    def _open(self) -> int:
        private_directory(self.directory)  # 0700 down to its last missing level
        pid = self._pid = os.getpid()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        while True:
            self._seq += 1
            name = f"capture-{stamp}-{pid}-{self._seq}.jsonl"
            try:
                fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            except FileExistsError:
                continue
            self._name = name
            return fd

    def files(self) -> list[dict[str, Any]]:
        """The capture files, newest first: ``{"name", "bytes", "modified"}``."""
        found = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        for entry in entries:
            if not FILE_NAME.fullmatch(entry.name):
                continue
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            found.append((stat.st_mtime, entry.name, stat.st_size))
        found.sort(reverse=True)
        return [{"name": name, "bytes": size,
                 "modified": dt.datetime.fromtimestamp(mtime, dt.UTC).isoformat(timespec="seconds")
                 .replace("+00:00", "Z")} for mtime, name, size in found]

    def path(self, name: str) -> Path | None:
        """The file called ``name`` when it is a capture file that exists; None for anything else."""
        if not isinstance(name, str) or not FILE_NAME.fullmatch(name):
            return None
        path = self.directory / name
        return path if path.is_file() else None

    def prune(self, max_files: int) -> None:
        """Delete the oldest files until ``max_files`` are left (never the one this worker writes)."""
        for entry in self.files()[max_files:]:
            if entry["name"] != self._name:
                self.delete(entry["name"])

    def delete(self, name: str) -> bool:
        """Delete one capture file; False when there is none by that name."""
        path = self.path(name)
        if path is None:
            return False
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
