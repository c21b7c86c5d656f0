"""Stream adapters: upstream SSE events in, the client's bytes out (see :func:`relay.pump`).

Four pairings, one class each: passthrough for OpenAI→OpenAI and Anthropic→Anthropic (events
forwarded as received, upstream quirks removed), and the two translating adapters that wrap the
pure stream translators of :mod:`zengate.dialects`.
"""

from __future__ import annotations

from ..dialects import anthropic as anthropic_proto
from ..dialects import openai as openai_proto
from ..dialects.anthropic_to_openai import StreamToAnthropic
from ..dialects.jsoncodec import loads
from ..dialects.openai_to_anthropic import StreamToOpenAI
from ..dialects.sse import DONE, Event, encode_data, encode_event
from ..upstream.client import UpstreamError
from .records import RequestRecord

ENDED_EARLY = "the upstream stream ended before the answer was finished"


NOT_JSON = "the upstream sent a stream event that is not valid JSON"
NOT_AN_OBJECT = "the upstream sent a stream event that is not a JSON object"


def _json(event: Event) -> dict | None:
    """An event's data as a JSON object; None for an empty one (a keep-alive).

    Anything else is a corrupt stream, raised as :class:`UpstreamError` (the pump turns it into the
    client's error event): garbage is neither forwarded nor silently dropped from an answer.
    """
    try:
        value = loads(event.data)
    except ValueError:
        if not event.data.strip():
            return None
        raise UpstreamError(502, NOT_JSON, "protocol") from None
    if not isinstance(value, dict):
        raise UpstreamError(502, NOT_AN_OBJECT, "protocol")
    return value


def _error_message(body: dict) -> str:
    err = body.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)


class OpenAIPassthrough:
    """OpenAI stream to an OpenAI client: events pass as received, with Zen's quirks removed.

    Nothing after ``data: [DONE]`` (Zen's cost frame) or an error chunk reaches the client; the
    usage-only chunk is dropped unless the client asked for it; usage and output are noted for the log.
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
        chunk = _json(event)
        if chunk is None:
            return []
        if chunk.get("error") is not None or chunk.get("type") == "error":
            self.error = _error_message(chunk)
            self.ended = True  # an error ends the answer: nothing after it, [DONE] least of all
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
        self.error = ENDED_EARLY
        return [encode_data(openai_proto.error_body(502, ENDED_EARLY))]

    def on_failure(self, err: UpstreamError) -> list[bytes]:
        self.error = err.message
        return [encode_data(openai_proto.error_body(err.status, f"{err.message} (mid-stream)"))]


class AnthropicPassthrough:
    """Anthropic stream to an Anthropic client: events pass as received; ends at ``message_stop``."""

    def __init__(self, record: RequestRecord, *, client_model: str | None = None):
        self.record = record
        self.rename = client_model
        self.ended = False
        self.error: str | None = None
        self.started = False

    def on_event(self, event: Event) -> list[bytes]:
        data = _json(event)
        if data is None:
            return []
        kind = data.get("type") or event.event
        if kind == "message_start":
            self.started = True
            message = data.get("message") or {}
            usage = message.get("usage") or {}
            self.record.add_usage(usage.get("input_tokens"), usage.get("output_tokens"))
            if self.rename and message.get("model") != self.rename:
                message["model"] = self.rename
                return [encode_event("message_start", data)]
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            self.record.add_output(delta.get("text"))
        elif kind == "message_delta":
            usage = data.get("usage") or {}
            self.record.add_usage(usage.get("input_tokens"), usage.get("output_tokens"))
        elif kind == "message_stop":
            self.ended = True
        elif kind == "error":
            self.ended = True
            self.error = _error_message(data)
        if event.event is None and kind:  # some upstreams omit the event: line; clients need it
            return [encode_event(kind, data)]
        return [event.raw]

    def on_end(self) -> list[bytes]:
        self.error = ENDED_EARLY
        return [encode_event("error", anthropic_proto.error_body(502, ENDED_EARLY))]

    def on_failure(self, err: UpstreamError) -> list[bytes]:
        self.error = err.message
        return [encode_event("error", anthropic_proto.error_body(err.status, f"{err.message} (mid-stream)"))]


class _Translating:
    """Shared plumbing of the translating adapters: ending, failures, usage for the log."""

    translator: StreamToAnthropic | StreamToOpenAI

    def __init__(self, record: RequestRecord):
        self.record = record
        self.ended = False
        self.error: str | None = None

    def _encode(self, item) -> bytes:
        raise NotImplementedError

    def _emit(self, items: list) -> list[bytes]:
        out = []
        for item in items:
            if self._is_error(item):
                self.error = self._error_text(item)
            out.append(self._encode(item))
        if self.translator.done:
            self.ended = True
            self._note_usage()
        return out

    def _note_usage(self) -> None:
        usage = self.translator.usage
        self.record.add_usage(
            usage.get("input_tokens", 0) + usage.get("cache_read_input_tokens", 0)
            + usage.get("cache_creation_input_tokens", 0),
            usage.get("output_tokens"),
        )
        self.record.add_output(self.translator.text)

    def on_end(self) -> list[bytes]:
        return self._emit(self.translator.finish())

    def on_failure(self, err: UpstreamError) -> list[bytes]:
        return self._emit(self.translator.fail(err.status, f"{err.message} (mid-stream)"))


class AnthropicFromOpenAI(_Translating):
    """OpenAI upstream stream → Anthropic events for an Anthropic client."""

    def __init__(self, record: RequestRecord, translator: StreamToAnthropic):
        super().__init__(record)
        self.translator = translator

    def on_event(self, event: Event) -> list[bytes]:
        if event.data == DONE:
            return self._emit(self.translator.finish())
        chunk = _json(event)
        return self._emit(self.translator.feed(chunk)) if chunk is not None else []

    def _encode(self, item) -> bytes:
        return encode_event(item[0], item[1])

    @staticmethod
    def _is_error(item) -> bool:
        return item[0] == "error"

    @staticmethod
    def _error_text(item) -> str:
        return _error_message(item[1])


class OpenAIFromAnthropic(_Translating):
    """Anthropic upstream stream → OpenAI chunks for an OpenAI client."""

    def __init__(self, record: RequestRecord, translator: StreamToOpenAI):
        super().__init__(record)
        self.translator = translator

    def on_event(self, event: Event) -> list[bytes]:
        data = _json(event)
        if data is None:
            return []
        return self._emit(self.translator.feed(event.event or data.get("type") or "", data))

    def _encode(self, item) -> bytes:
        return encode_data(item)

    @staticmethod
    def _is_error(item) -> bool:
        return isinstance(item, dict) and "error" in item

    @staticmethod
    def _error_text(item) -> str:
        return _error_message(item)
