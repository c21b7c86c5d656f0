"""Moving one exchange between client and upstream: send, then answer or stream back.

A stream is a generator that yields as the upstream yields. Its shape is decided by an adapter
(passthrough or a protocol translator) that turns each upstream SSE event into client bytes; the
pump here owns everything else: reading the socket, timing, transport failures, closing the
upstream when the client goes away, and finishing the request record exactly once.

Upstream faults are told apart by when they happen. Before the stream's first client bytes
(an HTML page or a JSON body instead of events, a connection dropped or a stream ended before any
event, garbage first) the pump raises :class:`UpstreamError`: the client still gets a status and
an error body, and the exchange may try the next route. After them, the adapter ends the client's
stream with an error event in its own protocol; a stream never just stops as if it were complete.

An attempt may wait for its first byte (a stream's first client bytes, a JSON answer whole) until
its :class:`~zengate.upstream.client.FirstByteDeadline`: until then the socket's read timeout is
what is left of it, and a timeout is a :class:`~zengate.upstream.client.FirstByteTimeout`, which
lets the fallback loop try the next route. From the first byte on, a stream's reads get the
deadline's ``after`` (``upstream_read_timeout``), set once.
"""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Generator, Iterable, Iterator
from typing import Any, Protocol

import requests
import urllib3

from ..dialects.jsoncodec import dumps, loads
from ..dialects.sse import Event, SSEParser, reported_cost
from ..runtime.helpers import start_helper
from ..upstream.client import FirstByteDeadline, UpstreamClient, UpstreamError, iter_body, transport_error
from ..upstream.wire import set_read_timeout
from .records import RequestRecord
from .routing import Route


class StreamAdapter(Protocol):
    """Turns upstream events into client bytes. ``ended`` is set once the client stream is complete."""

    ended: bool
    error: str | None

    def on_event(self, event: Event) -> list[bytes]: ...
    def on_end(self) -> list[bytes]: ...
    def on_failure(self, err: UpstreamError) -> list[bytes]: ...


def send(client: UpstreamClient, route: Route, body: dict, *, stream: bool, record: RequestRecord,
         extra_headers: dict[str, str] | None = None, deadline: FirstByteDeadline | None = None) -> requests.Response:
    """POST the upstream request; a 2xx response or UpstreamError (its head within ``deadline``)."""
    record.upstream_model = route.upstream_model
    payload = dumps(body)
    capture = record.capture  # runtime/capture.py, while wire_capture is on
    if capture is None:
        return _post(client, route, payload, stream, record, extra_headers, deadline)
    attempt = capture.sending(route.url(), payload, route)
    try:
        response = _post(client, route, payload, stream, record, extra_headers, deadline)
    except UpstreamError as err:
        capture.failed(attempt, err, record.proxy)
        raise
    capture.sent(attempt, response, record.proxy)
    return response


def _post(client: UpstreamClient, route: Route, payload: bytes, stream: bool, record: RequestRecord,
          extra_headers: dict[str, str] | None, deadline: FirstByteDeadline | None) -> requests.Response:
    within = {"deadline": deadline} if deadline is not None else {}
    egress = getattr(client, "egress", None)  # proxy rotation (upstream/egress.py): direct or via proxies
    if egress is not None:
        return egress.send(client, route.url(), payload, key=route.key, protocol=route.protocol, stream=stream,
                           extra_headers=extra_headers, record=record, **within)
    return client.send(route.url(), payload, key=route.key, protocol=route.protocol, stream=stream,
                       extra_headers=extra_headers, **within)


def _read_timeout(response: requests.Response, seconds: float) -> None:
    """The upstream connection's next reads wait at most ``seconds`` (when it is still held)."""
    connection = getattr(response.raw, "connection", None)  # urllib3's response; None once released
    if connection is not None:
        set_read_timeout(connection, seconds)


_TIMEOUTS = (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)


def _caused_by(exc: BaseException, kinds: type | tuple[type, ...]) -> bool:
    """``exc`` or an exception it wraps (requests and urllib3 nest them in ``args``) is one of ``kinds``."""
    todo: list[Any] = [exc]
    for _ in range(12):
        if not todo:
            break
        item = todo.pop()
        if isinstance(item, kinds):
            return True
        if isinstance(item, BaseException):
            todo.extend((*item.args, item.__cause__, item.__context__))
    return False


def read_error(exc: BaseException) -> UpstreamError:
    """A failure while reading an answer's body: the upstream was reached and had begun to answer.

    :func:`transport_error` speaks of reaching the upstream; here the answer broke off, and the
    client is told so (a timeout is a 504, anything else a 502).
    """
    if isinstance(exc, UpstreamError):
        return exc
    if _caused_by(exc, _TIMEOUTS):
        return UpstreamError(504, "the upstream went silent mid-answer and did not answer in time", "timeout")
    if _caused_by(exc, urllib3.exceptions.InvalidChunkLength):
        return UpstreamError(502, "the upstream's answer broke off: its chunked encoding is malformed", "protocol")
    if _caused_by(exc, (urllib3.exceptions.DecodeError, requests.exceptions.ContentDecodingError)):
        return UpstreamError(502, "the upstream's answer could not be decoded", "protocol")
    if isinstance(exc, (urllib3.exceptions.HTTPError, requests.RequestException, OSError)):
        return UpstreamError(502, "the upstream closed the connection before the answer was complete", "connection")
    return transport_error(exc)


def not_a_stream(response: requests.Response) -> UpstreamError | None:
    """Why a 2xx answer to a stream request is no event stream (an HTML page, a JSON body), or None."""
    ctype = (response.headers.get("Content-Type") or "").lower()
    if "html" in ctype:
        return UpstreamError(502, f"the upstream answered {response.status_code} with an HTML page instead of an "
                             "event stream", "protocol")
    if "json" not in ctype:
        return None  # text/event-stream, or a type some upstream sends for it: the events decide
    try:
        content = response.raw.read(64 * 1024, decode_content=True)
    except Exception as exc:  # noqa: BLE001 - mapped like any read failure
        return read_error(exc)
    try:
        body = loads(content)
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if err:
        message = err.get("message") if isinstance(err, dict) else None
        return UpstreamError(502, f"upstream error: {message or err}", "protocol")
    return UpstreamError(502, f"the upstream answered {response.status_code} with {ctype.split(';')[0]} instead "
                         "of an event stream", "protocol")


def read_answer(client: UpstreamClient, response: requests.Response,
                deadline: FirstByteDeadline | None = None) -> Any:
    """The JSON body of a non-streaming answer; a body cut short is a clear 502 (504 on a timeout).

    Under a ``deadline`` the body too must be in by then: a JSON answer's first byte for the
    client is the whole answer.
    """
    try:
        if deadline is not None:
            _read_timeout(response, deadline.read_timeout())
        response.content  # noqa: B018 - read here, so a broken-off body is reported as one
    except Exception as exc:
        response.close()
        err = read_error(exc)
        raise (err if deadline is None else deadline.failure(err)) from exc
    return client.read_json(response)


_END = object()


DRAIN_LIMIT = 256 * 1024
DRAIN_TIMEOUT = 5.0


class StreamTail:
    """What follows a stream's end: the events already parsed after it, and the parser for the
    rest. Zen reports a request's cost there (``{"cost": …}`` after ``[DONE]``); ``on_cost`` gets it."""

    def __init__(self, events: list[Event], parser: SSEParser, on_cost: Any) -> None:
        self.events = events
        self.parser = parser
        self.on_cost = on_cost
        self.cost: float | None = None

    def begin(self) -> None:
        """The events parsed with the chunk that held the end."""
        self._look(self.events)

    def feed(self, chunk: bytes) -> None:
        self._look(self.parser.feed(chunk))

    def finish(self) -> None:
        self._look(self.parser.finish())
        if self.cost is not None:
            self.on_cost(self.cost)

    def _look(self, events: list[Event]) -> None:
        for event in events:
            cost = reported_cost(event)
            if cost is not None:
                self.cost = (self.cost or 0.0) + cost


def keep_connection(response: requests.Response, rest: Iterator[bytes] | None,
                    tail: StreamTail | None = None) -> None:
    """Return a finished stream's connection to the pool instead of closing it.

    urllib3 gives a connection back to its pool once the body was read to its end. After
    ``[DONE]`` or ``message_stop`` an upstream may still send a little (Zen's cost frame, the
    chunked terminator): a helper greenlet reads that rest (bounded in size and time), so the next
    request skips a TCP (and TLS) handshake instead of paying for a closed connection. The cost
    reported there goes to ``tail`` (then to the request's log row).
    """
    if rest is None:
        response.close()  # read to the end: the connection is already back in the pool
        return

    def drain() -> None:
        try:
            sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(DRAIN_TIMEOUT)  # urllib3 sets its own timeout on the next request
            size = 0
            if tail is not None:
                tail.begin()
            for chunk in rest:
                size += len(chunk)
                if size > DRAIN_LIMIT:
                    raise OverflowError("the upstream kept talking after the end of the stream")
                if tail is not None:
                    tail.feed(chunk)
        except Exception:  # noqa: BLE001 - any trouble: the connection is simply not reused
            close_upstream(response)  # a heartbeat's helper may be inside a read of it
            return
        response.close()
        if tail is not None:
            tail.finish()

    start_helper(drain, "zengate-drain")


def close_upstream(response: requests.Response, *, reading: bool = False) -> None:
    """Close an upstream response, even while the heartbeat reader is inside a read of it.

    Under gevent that reader is another greenlet of this thread, and closing the buffered reader it
    is blocked in raises ``RuntimeError: reentrant call``; shutting the socket down instead ends its
    read, and urllib3's error handling in the reader then discards the connection. When the caller
    knows a reader is at work (``reading``) the socket is shut down first: a reader in another
    thread (outside gevent) would otherwise hold the close up until its read ends.
    """
    if reading:
        _shut_down(response)
    try:
        response.close()
    except RuntimeError:
        _shut_down(response)


def _shut_down(response: requests.Response) -> None:
    sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Heartbeat:
    """``chunks`` as they come, and ``None`` whenever nothing came for ``interval`` seconds.

    The first chunk is read here, directly: no heartbeat may precede a stream's first event, so
    the wait for it needs no timeout, and the stream's first bytes are not delayed by starting a
    helper. After it, the upstream is read by a helper greenlet (a thread outside gevent) feeding
    a queue, so the wait can time out without interrupting a socket read half-way. Closing the
    upstream response ends the helper: its read fails and it leaves.

    When the client's stream is complete before the upstream's body (Zen's cost frame, the chunked
    terminator), :meth:`rest` hands what is left to :func:`keep_connection`, so that the connection
    goes back to the pool instead of being closed.

    ``until`` is the first-byte deadline (a :func:`time.monotonic` moment) while the stream's first
    client bytes are awaited: the waits end there too, so that the consumer can give up in time.
    The consumer sets it to None once they are out.
    """

    def __init__(self, chunks: Iterator[bytes], interval: float, until: float | None = None):
        self._chunks = chunks
        self._interval = interval
        self._items: queue.SimpleQueue | None = None  # the helper's queue, once it reads
        self.until = until

    def __iter__(self) -> Iterator[bytes | None]:
        first = next(self._chunks, _END)
        if first is _END:
            return
        yield first
        items = self._items = queue.SimpleQueue()
        chunks = self._chunks

        def read() -> None:
            try:
                for chunk in chunks:
                    items.put(chunk)
                items.put(_END)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                items.put(exc)

        start_helper(read, "zengate-stream-reader")
        while True:
            until = self.until  # set until the client's first byte: wait no longer than the deadline
            wait = self._interval if until is None else max(0.0, min(self._interval, until - time.monotonic()))
            try:
                item = _unpacked(items.get(timeout=wait))
            except queue.Empty:
                yield None
                continue
            if item is _END:
                return
            yield item

    @property
    def reading(self) -> bool:
        """The helper reads the upstream (it started after the first chunk)."""
        return self._items is not None

    def rest(self, timeout: float) -> Iterator[bytes]:
        """The body's remaining chunks, once the consumer has stopped: read here while no helper
        runs, else taken from the helper as it reads them, all within ``timeout`` seconds
        (``queue.Empty`` past it)."""
        items = self._items
        if items is None:
            yield from self._chunks
            return
        deadline = time.monotonic() + timeout
        while (item := _unpacked(items.get(timeout=max(0.0, deadline - time.monotonic())))) is not _END:
            yield item


def _before_first_byte(deadline: FirstByteDeadline, beats: Heartbeat | None) -> float:
    """The read timeout while a stream's first client bytes are awaited (past the deadline: raised).

    Without heartbeats the pump reads, and its reads get what is left. With them a helper reads,
    and a read it begins now may still be waiting when the first event has come and gone: it gets
    at least ``upstream_read_timeout``, and the deadline is kept by the waits for the helper.
    """
    left = deadline.left()
    return left if beats is None else max(left, deadline.after)


def _first_byte_in(response: requests.Response, deadline: FirstByteDeadline, beats: Heartbeat | None) -> None:
    """The stream's first client bytes are ready: its reads get ``upstream_read_timeout`` from now on.

    With heartbeats, before the helper reads (it starts when the first chunk was handed on) or
    from its next read; and the helper's queue no longer waits for the deadline.
    """
    _read_timeout(response, deadline.after)
    if beats is not None:
        beats.until = None


def _unpacked(item: Any) -> Any:
    """An item of the heartbeat helper's queue: a chunk or ``_END``; the helper's failure is raised."""
    if isinstance(item, BaseException):
        raise item
    return item


def pump(response: requests.Response, adapter: StreamAdapter, record: RequestRecord, *,
         heartbeat: tuple[float, bytes] | None = None, finish_record: bool = True,
         deadline: FirstByteDeadline | None = None) -> Iterator[bytes]:
    """Client bytes as upstream events arrive; always closes the upstream and finishes the record.

    The stream is started here: this returns once its first client bytes are ready. A failure
    before them raises :class:`UpstreamError` — nothing reached the client, so the caller may try
    another route or answer with a status, and the record is left to it. A failure after them
    ends the client's stream with the adapter's error event.

    With ``heartbeat=(seconds, payload)``, ``payload`` is sent whenever the upstream stays silent
    that long (Anthropic ``ping`` events while a reasoning model thinks) — never before the
    stream's first event, which must stay first.

    With a ``deadline``, no first client bytes by then is a :class:`FirstByteTimeout` (upstream
    events that give the client nothing, and heartbeats, do not count); from them on the socket's
    read timeout is ``deadline.after``.
    """
    return _started(_pump(response, adapter, record, heartbeat, finish_record, deadline))


def _started(chunks: Generator[bytes, None, None]) -> Iterator[bytes]:
    """``chunks`` with its first item already produced, so that a failure before it raises here."""
    first = next(chunks, None)
    if first is None:
        return iter(())
    rest = _resume(first, chunks)
    next(rest)  # run to its first yield: closing it from now on (the client left) closes ``chunks``
    return rest


def _resume(first: bytes, chunks: Generator[bytes, None, None]) -> Generator[bytes, None, None]:
    try:
        yield b""  # consumed by _started
        yield first
        yield from chunks
    finally:
        chunks.close()


def _pump(response: requests.Response, adapter: StreamAdapter, record: RequestRecord,
          heartbeat: tuple[float, bytes] | None, finish_record: bool,
          deadline: FirstByteDeadline | None) -> Generator[bytes, None, None]:
    parser = SSEParser()
    status_error: str | None = None
    body = iter_body(response)
    beats = Heartbeat(body, heartbeat[0], deadline.at if deadline else None) if heartbeat else None
    source: Iterable[bytes | None] = beats if beats is not None else body
    ended = None  # "eof": the body was read to its end; "early": the stream is complete, the body is not
    tail: StreamTail | None = None  # what follows the end, when "early"
    sent = False  # client bytes were yielded: failures now become the adapter's error event
    awaited = deadline  # the first-byte deadline, until the first client bytes are out
    handed_over = False  # a failure before any client byte was raised to the caller, with the record
    tap = record.capture.chunk if record.capture is not None else None  # wire capture's copy of the bytes
    if finish_record:
        record.stream_opened()  # counted in zengate_open_streams until the record is finished
    try:
        try:
            if awaited is not None:
                _read_timeout(response, awaited.read_timeout())
            refusal = not_a_stream(response)
            if refusal is not None:
                raise refusal
            for chunk in source:
                if chunk is None:
                    if sent:
                        yield heartbeat[1]
                    elif awaited is not None and awaited.passed():
                        raise awaited.expired()
                    continue
                if record.ttfb_ms is None:
                    record.first_byte()
                if tap is not None:
                    tap(chunk)
                events = parser.feed(chunk)
                for event in events:
                    out = adapter.on_event(event)
                    if out:
                        if awaited is not None:
                            _first_byte_in(response, awaited, beats)
                            awaited = None
                        sent = True
                        yield b"".join(out)
                    if adapter.ended:
                        ended = "early"
                        after = next(i for i, e in enumerate(events) if e is event) + 1
                        tail = StreamTail(events[after:], parser, record.upstream_cost)
                        return
                if awaited is not None:  # still no client byte: the next reads get what is left, if anything
                    _read_timeout(response, _before_first_byte(awaited, beats))
            ended = "eof"
            for event in parser.finish():
                out = adapter.on_event(event)
                if out:
                    sent = True
                    yield b"".join(out)
                if adapter.ended:
                    return
            out = adapter.on_end()
            if not sent and adapter.error:
                raise UpstreamError(502, adapter.error, "protocol")
        except GeneratorExit:
            ended = None
            status_error = "client disconnected"
            raise
        except Exception as exc:  # noqa: BLE001 - transport failure, garbage, or no stream at all
            ended = None
            err = read_error(exc)
            if not sent:
                if deadline is not None:
                    err = deadline.failure(err)
                handed_over = True
                record.ttfb_ms = None  # no answer came of it; another route's first byte may
                raise err from (None if err is exc else exc)
            status_error = f"{err.kind}: {err.message}"
            out = adapter.on_failure(err)
        except BaseException as exc:  # the worker is shutting down (GreenletExit): note it, let it go
            ended = None
            status_error = f"interrupted ({type(exc).__name__})"
            raise
        if out:
            yield b"".join(out)
    finally:
        if ended == "early":  # the upstream still has a little to say: read it, keep the connection
            keep_connection(response, beats.rest(DRAIN_TIMEOUT) if beats is not None else body, tail)
        elif ended:
            keep_connection(response, None)
        else:
            close_upstream(response, reading=beats is not None and beats.reading)
        if finish_record and not handed_over:
            # Now, before the stream's end goes out, not at the next idle moment: a client that
            # starts its next stream at once (an agent, on the same machine) would otherwise have
            # this bookkeeping run beside that stream's first token (bench: +0.27 ms on it).
            record.finish(200, status_error or adapter.error)
