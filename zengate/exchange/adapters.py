"""Stream adapters for :func:`relay.pump`: an upstream's events in, the client's bytes out.

The dialects do the converting (``zengate.dialects``); an adapter joins them to the pump and the
request's record: a dialect's passthrough for the same API on both sides, an upstream dialect's
decoder and the client dialect's encoder otherwise, or a decoder whose events are kept to be
folded into one answer. Events that are not what the API sends end the stream as a 502.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from ..dialects.base import Passthrough as DialectPassthrough
from ..dialects.base import StreamDecoder, StreamEncoder
from ..dialects.errors import ProtocolError
from ..dialects.sse import Event
from ..exchange.form import FormEvent
from ..upstream.client import UpstreamError
from .records import RequestRecord


class EventGuard(Protocol):
    """What a stream's guard does (zengate.guards.toolcalls.ToolCallGuard): events in, events to send on."""

    def feed(self, events: Iterable[FormEvent]) -> list[FormEvent]: ...


def _checked(feed: Callable[[Event], list], event: Event) -> list:
    try:
        return feed(event)
    except ProtocolError as err:  # garbage in the stream: neither forwarded nor dropped
        raise UpstreamError(err.status, err.message, "protocol") from None


def _error_text(data: dict) -> str:
    err = data.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)


class Passthrough:
    """The upstream's bytes for a client of the same API (the dialect's :class:`~.base.Passthrough`)."""

    def __init__(self, inner: DialectPassthrough):
        self.inner = inner

    @property
    def ended(self) -> bool:
        return self.inner.ended

    @property
    def error(self) -> str | None:
        return self.inner.error

    def on_event(self, event: Event) -> list[bytes]:
        return _checked(self.inner.on_event, event)

    def on_end(self) -> list[bytes]:
        return self.inner.on_end()

    def on_failure(self, err: UpstreamError) -> list[bytes]:
        return self.inner.on_failure(err.status, err.message)


class _Decoding:
    """An upstream dialect's decoder, its usage and text noted in the record once the stream ends."""

    def __init__(self, decoder: StreamDecoder, record: RequestRecord):
        self.decoder = decoder
        self.record = record
        self.ended = False
        self.error: str | None = None

    def _take(self, events: list[FormEvent]) -> list[FormEvent]:
        for name, data in events:
            if name == "error":
                self.error = _error_text(data)
        if self.decoder.done and not self.ended:
            self.ended = True
            usage = self.decoder.usage
            self.record.add_usage(usage.get("input_tokens", 0) + usage.get("cache_read_input_tokens", 0)
                                  + usage.get("cache_creation_input_tokens", 0), usage.get("output_tokens"))
            self.record.add_output(self.decoder.text)
        return events


class Translating(_Decoding):
    """The upstream's stream decoded into the internal form, passed through the request's guard
    (zengate/guards: it may hold a tool call until it is whole) and encoded in the client's API."""

    def __init__(self, decoder: StreamDecoder, encoder: StreamEncoder, record: RequestRecord,
                 guard: EventGuard | None = None):
        super().__init__(decoder, record)
        self.encoder = encoder
        self.guard = guard

    def _out(self, events: list[FormEvent]) -> list[bytes]:
        events = self._take(events)
        return self.encoder.encode(self.guard.feed(events) if self.guard is not None else events)

    def on_event(self, event: Event) -> list[bytes]:
        return self._out(_checked(self.decoder.feed, event))

    def on_end(self) -> list[bytes]:
        return self._out(self.decoder.finish())

    def on_failure(self, err: UpstreamError) -> list[bytes]:
        return self._out(self.decoder.fail(err.status, f"{err.message} (mid-stream)"))


class Collecting(_Decoding):
    """The upstream's stream decoded and kept, for folding into one answer; nothing goes out."""

    def __init__(self, decoder: StreamDecoder, record: RequestRecord):
        super().__init__(decoder, record)
        self.events: list[FormEvent] = []

    def on_event(self, event: Event) -> list[bytes]:
        self.events.extend(self._take(_checked(self.decoder.feed, event)))
        return []

    def on_end(self) -> list[bytes]:
        self.events.extend(self._take(self.decoder.finish()))
        return []

    def on_failure(self, err: UpstreamError) -> list[bytes]:
        self.events.extend(self._take(self.decoder.fail(err.status, err.message)))
        return []
