"""Moving one exchange between client and upstream: send, then answer or stream back.

A stream is a generator that yields as the upstream yields. Its shape is decided by an adapter
(passthrough or a protocol translator) that turns each upstream SSE event into client bytes; the
pump here owns everything else: reading the socket, timing, transport failures, closing the
upstream when the client goes away, and finishing the request record exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Protocol

import requests

from .protocols import openai as openai_proto
from .protocols.sse import DONE, Event, SSEParser, dumps, encode_data
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


def send(client: UpstreamClient, route: Route, body: dict, *, stream: bool,
         record: RequestRecord) -> requests.Response:
    """POST the upstream request; a 2xx response or UpstreamError."""
    record.upstream_model = route.upstream_model
    payload = dumps(body).encode()
    return client.send(route.url(), payload, key=route.key, protocol=route.protocol, stream=stream)


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


# --- OpenAI client, OpenAI upstream ------------------------------------------------------

def openai_upstream_body(body: dict, route: Route) -> dict:
    """The request as sent upstream: model mapped, usage always asked for in streams."""
    upstream = dict(body)
    upstream["model"] = route.upstream_model
    if body.get("stream"):
        upstream["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return upstream


def record_openai_answer(answer: dict, record: RequestRecord) -> None:
    usage = answer.get("usage") or {}
    record.add_usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
    for choice in answer.get("choices") or []:
        message = choice.get("message") or {}
        record.add_output(message.get("content") if isinstance(message.get("content"), str) else None)
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            record.add_output(f"[tool_call {fn.get('name')}({fn.get('arguments', '')})]")


def check_openai_answer(answer: object) -> dict:
    """A 200 answer that is not a chat completion becomes a clear 502."""
    if isinstance(answer, dict) and isinstance(answer.get("choices"), list):
        return answer
    if isinstance(answer, dict) and answer.get("error"):
        err = answer["error"]
        message = err.get("message") if isinstance(err, dict) else str(err)
        raise UpstreamError(502, f"upstream error: {message}", "protocol")
    raise UpstreamError(502, "the upstream answered 200 with something that is not a chat completion", "protocol")


class OpenAIPassthrough:
    """OpenAI stream to an OpenAI client: events pass as received, with Zen's quirks removed.

    Nothing after ``data: [DONE]`` (Zen's cost frame) reaches the client; the usage-only chunk is
    dropped unless the client asked for it; usage and output are noted for the log.
    """

    def __init__(self, record: RequestRecord, *, include_usage: bool, client_model: str | None = None):
        self.record = record
        self.include_usage = include_usage
        self.rename = client_model  # set when the client's model name differs from the upstream's
        self.ended = False
        self.finished = False
        self.error: str | None = None

    def on_event(self, event: Event) -> list[bytes]:
        if event.data == DONE:
            self.ended = True
            return [encode_data(DONE)]
        try:
            chunk = json.loads(event.data)
        except ValueError:
            return [event.raw]
        if not isinstance(chunk, dict):
            return [event.raw]
        if chunk.get("error") is not None or chunk.get("type") == "error":
            err = chunk.get("error")
            self.error = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            return [event.raw]
        usage = chunk.get("usage")
        if usage:
            self.record.add_usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
        choices = chunk.get("choices")
        if choices:
            for choice in choices:
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if isinstance(content, str):
                    self.record.add_output(content)
                if choice.get("finish_reason"):
                    self.finished = True
        elif usage and not self.include_usage:
            return []
        if self.rename and chunk.get("model") not in (None, self.rename):
            chunk["model"] = self.rename
            return [encode_data(chunk)]
        return [event.raw]

    def on_end(self) -> list[bytes]:
        if self.finished:
            return [encode_data(DONE)]
        self.error = "the upstream stream ended before the answer was finished"
        return [self._error_chunk(502, self.error)]

    def on_failure(self, err: UpstreamError) -> list[bytes]:
        self.error = err.message
        return [self._error_chunk(err.status, f"{err.message} (mid-stream)")]

    @staticmethod
    def _error_chunk(status: int, message: str) -> bytes:
        return encode_data(openai_proto.error_body(status, message))
