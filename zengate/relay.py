"""Moving one exchange between client and upstream: send, then answer or stream back.

A stream is a generator that yields as the upstream yields. Its shape is decided by an adapter
(passthrough or a protocol translator) that turns each upstream SSE event into client bytes; the
pump here owns everything else: reading the socket, timing, transport failures, closing the
upstream when the client goes away, and finishing the request record exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import requests

from .protocols.sse import Event, SSEParser, dumps
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
    payload = dumps(body).encode()
    return client.send(route.url(), payload, key=route.key, protocol=route.protocol, stream=stream,
                       extra_headers=extra_headers)


def pump(response: requests.Response, adapter: StreamAdapter, record: RequestRecord) -> Iterator[bytes]:
    """Yield client bytes as upstream events arrive; always closes the upstream and the record."""
    parser = SSEParser()
    status_error: str | None = None
    try:
        try:
            for chunk in iter_body(response):
                if record.ttfb_ms is None:
                    record.first_byte()
                for event in parser.feed(chunk):
                    out = adapter.on_event(event)
                    if out:
                        yield b"".join(out)
                    if adapter.ended:
                        return
            for event in parser.finish():
                out = adapter.on_event(event)
                if out:
                    yield b"".join(out)
                if adapter.ended:
                    return
            out = adapter.on_end()
        except GeneratorExit:
            status_error = "client disconnected"
            raise
        except Exception as exc:  # noqa: BLE001 - transport failure mid-stream
            err = exc if isinstance(exc, UpstreamError) else transport_error(exc)
            status_error = f"{err.kind}: {err.message}"
            out = adapter.on_failure(err)
        if out:
            yield b"".join(out)
    finally:
        response.close()
        record.finish(200, status_error or adapter.error)
