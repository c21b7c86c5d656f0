"""Server-sent events: an incremental parser and the encoders for both APIs."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .jsoncodec import dumps, loads

DONE = "[DONE]"


@dataclass(slots=True)
class Event:
    """One parsed SSE event. ``raw`` is the event exactly as received, ending in a blank line."""

    event: str | None
    data: str
    raw: bytes


class SSEParser:
    """Feed bytes as they arrive; get whole events back. Comments and empty events are skipped."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            block = buffer[start:end]
            start = end + 2
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        return events

    def finish(self) -> list[Event]:
        """Whatever complete event is left when the stream ends without a final blank line."""
        block, self._buffer = self._buffer.strip(b"\n"), b""
        event = _parse_block(block) if block else None
        return [event] if event else []


def _parse_block(block: bytes) -> Event | None:
    name = None
    data_lines = []
    for line in block.split(b"\n"):
        if not line or line[:1] == b":":
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data_lines.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data_lines:
        return None
    return Event(name, b"\n".join(data_lines).decode("utf-8", "replace"), block + b"\n\n")


def reported_cost(event: Event) -> float | None:
    """The cost an upstream reported in an event of its own (Zen's ``{"cost": "0.0012"}`` after
    ``[DONE]``): a finite number of at least 0, or None."""
    if '"cost"' not in event.data:
        return None
    try:
        value = loads(event.data)
    except ValueError:
        return None
    cost = value.get("cost") if isinstance(value, dict) else None
    if isinstance(cost, bool) or not isinstance(cost, (int, float, str)):
        return None
    try:
        number = float(cost)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def parse_stream(chunks: Iterable[bytes]) -> Iterator[Event]:
    parser = SSEParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.finish()


def encode_data(obj: object) -> bytes:
    """An OpenAI-style event: ``data: <json>`` (or ``data: [DONE]``)."""
    payload = obj.encode() if isinstance(obj, str) else dumps(obj)
    return b"data: " + payload + b"\n\n"


def encode_event(name: str, obj: object) -> bytes:
    """An Anthropic-style event: ``event: <name>`` then ``data: <json>``."""
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"
