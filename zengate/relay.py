"""Moving one exchange between client and upstream: send, then answer or stream back.

A stream is a generator that yields as the upstream yields. Its shape is decided by an adapter
(passthrough or a protocol translator) that turns each upstream SSE event into client bytes; the
pump here owns everything else: reading the socket, timing, transport failures, closing the
upstream when the client goes away, and finishing the request record exactly once.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Iterator
from typing import Protocol

import requests

from .protocols.jsoncodec import dumps
from .protocols.sse import Event, SSEParser
from .records import RequestRecord
from .routing import Route
from .upstream.client import UpstreamClient, UpstreamError, iter_body, transport_error


class StreamAdapter(Protocol):
    """Turns upstream events into client bytes. ``ended`` is set once the client stream is complete."""

    ended: bool
    error: str | None

    def on_event(self, event: Event) -> list[bytes]: ...
    def on_end(self) -> list[bytes]: ...
    def on_failure(self, err: UpstreamError) -> list[bytes]: ...


def send(client: UpstreamClient, route: Route, body: dict, *, stream: bool, record: RequestRecord,
         extra_headers: dict[str, str] | None = None) -> requests.Response:
    """POST the upstream request; a 2xx response or UpstreamError."""
    record.upstream_model = route.upstream_model
    payload = dumps(body)
    egress = getattr(client, "egress", None)  # proxy rotation (upstream/egress.py): direct or via proxies
    if egress is not None:
        return egress.send(client, route.url(), payload, key=route.key, protocol=route.protocol, stream=stream,
                           extra_headers=extra_headers, record=record)
    return client.send(route.url(), payload, key=route.key, protocol=route.protocol, stream=stream,
                       extra_headers=extra_headers)


_END = object()


DRAIN_LIMIT = 256 * 1024
DRAIN_TIMEOUT = 5.0


def keep_connection(response: requests.Response, rest: Iterator[bytes] | None) -> None:
    """Return a finished stream's connection to the pool instead of closing it.

    urllib3 gives a connection back to its pool once the body was read to its end. After
    ``[DONE]`` or ``message_stop`` an upstream may still send a little (Zen's cost frame, the
    chunked terminator): a helper greenlet reads that rest (bounded in size and time), so the next
    request skips a TCP (and TLS) handshake instead of paying for a closed connection.
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
            for chunk in rest:
                size += len(chunk)
                if size > DRAIN_LIMIT:
                    raise OverflowError("the upstream kept talking after the end of the stream")
        except Exception:  # noqa: BLE001 - any trouble: the connection is simply not reused
            pass
        response.close()

    threading.Thread(target=drain, name="zengate-drain", daemon=True).start()


def close_upstream(response: requests.Response) -> None:
    """Close an upstream response, even while the heartbeat reader is inside a read of it.

    Under gevent that reader is another greenlet of this thread, and closing the buffered reader it
    is blocked in raises ``RuntimeError: reentrant call``; shutting the socket down instead ends its
    read, and urllib3's error handling in the reader then discards the connection.
    """
    try:
        response.close()
    except RuntimeError:
        sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def with_heartbeat(chunks: Iterator[bytes], interval: float) -> Iterator[bytes | None]:
    """``chunks`` as they come, and ``None`` whenever nothing came for ``interval`` seconds.

    The upstream is read by a helper greenlet (a thread outside gevent) feeding a queue, so the
    wait can time out without interrupting a socket read half-way. Closing the upstream response
    ends the helper: its read fails and it leaves.
    """
    items: queue.SimpleQueue = queue.SimpleQueue()

    def read() -> None:
        try:
            for chunk in chunks:
                items.put(chunk)
            items.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put(exc)

    threading.Thread(target=read, name="zengate-stream-reader", daemon=True).start()
    while True:
        try:
            item = items.get(timeout=interval)
        except queue.Empty:
            yield None
            continue
        if item is _END:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def pump(response: requests.Response, adapter: StreamAdapter, record: RequestRecord, *,
         heartbeat: tuple[float, bytes] | None = None, finish_record: bool = True) -> Iterator[bytes]:
    """Yield client bytes as upstream events arrive; always closes the upstream and the record.

    With ``heartbeat=(seconds, payload)``, ``payload`` is sent whenever the upstream stays silent
    that long (Anthropic ``ping`` events while a reasoning model thinks) — never before the
    stream's first event, which must stay first.
    """
    parser = SSEParser()
    status_error: str | None = None
    body = iter_body(response)
    source: Iterator[bytes | None] = with_heartbeat(body, heartbeat[0]) if heartbeat else body
    ended = None  # "eof": the body was read to its end; "early": the stream is complete, the body is not
    if finish_record:
        record.stream_opened()  # counted in zengate_open_streams until the record is finished
    try:
        try:
            sent = False
            for chunk in source:
                if chunk is None:
                    if sent:
                        yield heartbeat[1]
                    continue
                if record.ttfb_ms is None:
                    record.first_byte()
                for event in parser.feed(chunk):
                    out = adapter.on_event(event)
                    if out:
                        sent = True
                        yield b"".join(out)
                    if adapter.ended:
                        ended = "early"
                        return
            ended = "eof"
            for event in parser.finish():
                out = adapter.on_event(event)
                if out:
                    yield b"".join(out)
                if adapter.ended:
                    return
            out = adapter.on_end()
        except GeneratorExit:
            ended = None
            status_error = "client disconnected"
            raise
        except Exception as exc:  # noqa: BLE001 - transport failure mid-stream
            ended = None
            err = exc if isinstance(exc, UpstreamError) else transport_error(exc)
            status_error = f"{err.kind}: {err.message}"
            out = adapter.on_failure(err)
        except BaseException as exc:  # the worker is shutting down (GreenletExit): note it, let it go
            ended = None
            status_error = f"interrupted ({type(exc).__name__})"
            raise
        if out:
            yield b"".join(out)
    finally:
        if ended and not heartbeat:
            keep_connection(response, body if ended == "early" else None)
        else:
            close_upstream(response)
        if finish_record:
            record.finish(200, status_error or adapter.error)
