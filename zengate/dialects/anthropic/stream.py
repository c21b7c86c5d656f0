"""Anthropic streams to and from the internal form, and passed through.

The form's stream grammar is this API's, so decoding an upstream's events is parsing them (tool
names given back their client spelling when some were rewritten) and encoding form events is
writing them, with the form's own keys left out and another dialect's signatures wrapped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from ...exchange.form import FormEvent
from ..base import Context, Notes
from ..errors import ProtocolError
from ..jsoncodec import loads
from ..sse import Event, encode_event
from ..translate_common import ID_MAX, USAGE_KEYS, _is_legal, merge_usage
from .shapes import STATUS_FOR_TYPE, client_signature, error_body

ENDED_EARLY = "the upstream stream ended before the answer was finished"
NOT_JSON = "the upstream sent a stream event that is not valid JSON"
NOT_AN_OBJECT = "the upstream sent a stream event that is not a JSON object"


def event_json(event: Event) -> dict | None:
    """An event's data as a JSON object; None for an empty one (a keep-alive).

    Anything else is a corrupt stream (a :class:`ProtocolError` 502): garbage is neither forwarded
    nor silently dropped from an answer.
    """
    try:
        value = loads(event.data)
    except ValueError:
        if not event.data.strip():
            return None
        raise ProtocolError(502, NOT_JSON) from None
    if not isinstance(value, dict):
        raise ProtocolError(502, NOT_AN_OBJECT)
    return value


def error_message(body: dict) -> str:
    err = body.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)


class Decoder:
    """An Anthropic-protocol upstream's events as form events (usage and text noted for the log)."""

    def __init__(self, context: Context):
        self._names = context.names
        self._rename = bool(context.names.renamed)
        self._message_id = ""
        self.done = False
        self._started = False
        self._usage: dict = {}
        self._text: list[str] = []
        self._output_tool = context.output_tool  # structured output's forced tool: its input is the text
        self._output_wrapped = context.output_wrapped
        self._output_index: int | None = None
        self._other_tools = False  # the model called the request's own tools too: its turn stays a tool turn
        self._output_json: list[str] = []  # a wrapped answer's input, unwrapped when its block ends

    @property
    def usage(self) -> dict:
        return {key: self._usage.get(key, 0) for key in USAGE_KEYS}

    @property
    def text(self) -> str:
        return "".join(self._text)

    def feed(self, event: Event) -> list[FormEvent]:
        data = event_json(event)
        if data is None or self.done:
            return []
        return self.feed_data(data.get("type") or event.event or "", data)

    def feed_data(self, kind: str, data: dict) -> list[FormEvent]:
        """One event already parsed: its name and data."""
        if self.done or not isinstance(data, dict):
            return []
        kind = data.get("type") or kind
        if kind == "ping":
            return []
        if self._output_tool is not None:  # structured output through a tool: its events become text
            structured = self._structured(kind, data)
            if structured is not None:
                return structured
        if kind == "message_start":
            self._started = True
            message = data.get("message") if isinstance(data.get("message"), dict) else {}
            self._message_id = str(message.get("id") or "")
            merge_usage(self._usage, message.get("usage"))
        elif kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict):
                if block.get("type") == "tool_use" and (self._rename or not _is_legal(str(block.get("id")), ID_MAX)):
                    block = {**block, "id": self._names.id_in(block.get("id"), salt=self._message_id),
                             "name": self._names.name_in(block.get("name") or "")}
                    data = {**data, "content_block": block}
                elif block.get("type") == "text" and isinstance(block.get("text"), str):
                    self._text.append(block["text"])
        elif kind == "content_block_delta":
            delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                self._text.append(delta["text"])
        elif kind == "message_delta":
            merge_usage(self._usage, data.get("usage"))
        elif kind in ("message_stop", "error"):
            self.done = True
        return [(kind, data)]

    def _structured(self, kind: str, data: dict) -> list[FormEvent] | None:
        """Structured output through a tool (request.output_tool): its block as a text block, its
        input's JSON as the text (a wrapped one whole at the block's end), its call an ordinary end
        of turn when no other tool was called. None for events this does not change."""
        index = data.get("index")
        if kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                if block.get("name") != self._output_tool:
                    self._other_tools = True
                    return None
                self._output_index = index
                return [(kind, {**data, "content_block": {"type": "text", "text": ""}})]
        elif kind == "content_block_delta" and index is not None and index == self._output_index:
            delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
            if delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
                if self._output_wrapped:
                    self._output_json.append(delta["partial_json"])
                    return []
                self._text.append(delta["partial_json"])
                return [(kind, {**data, "delta": {"type": "text_delta", "text": delta["partial_json"]}})]
        elif kind == "content_block_stop" and index is not None and index == self._output_index:
            self._output_index = None
            if self._output_wrapped:
                try:
                    value = loads("".join(self._output_json) or "{}")
                except ValueError:
                    raise ProtocolError(502, "the upstream's structured output is not valid JSON") from None
                text = json.dumps(value.get("value") if isinstance(value, dict) else value, ensure_ascii=False)
                self._text.append(text)
                return [("content_block_delta", {"type": "content_block_delta", "index": index,
                                                 "delta": {"type": "text_delta", "text": text}}), (kind, data)]
        elif kind == "message_delta":
            delta = data.get("delta") if isinstance(data.get("delta"), dict) else None
            if delta is not None and delta.get("stop_reason") == "tool_use" and not self._other_tools:
                merge_usage(self._usage, data.get("usage"))
                return [(kind, {**data, "delta": {**delta, "stop_reason": "end_turn"}})]
        return None

    def finish(self) -> list[FormEvent]:
        if self.done:
            return []
        return self.fail(502, ENDED_EARLY)

    def fail(self, status: int, message: str) -> list[FormEvent]:
        if self.done:
            return []
        self.done = True
        return [("error", error_body(status, message))]


def error_status(data: dict) -> int:
    """The HTTP status an Anthropic ``error`` event stands for."""
    err = data.get("error") if isinstance(data.get("error"), dict) else {}
    kind = err.get("type")
    return STATUS_FOR_TYPE.get(kind, 500) if isinstance(kind, str) else 500


class Encoder:
    """Form events as the bytes of an Anthropic stream."""

    def __init__(self, context: Context):
        self._origin: str | None = None  # the x_origin of the thinking block open now

    def encode(self, events: Iterable[FormEvent]) -> list[bytes]:
        out = []
        for name, data in events:
            if name == "content_block_start":
                block = data.get("content_block")
                if isinstance(block, dict) and any(key.startswith("x_") for key in block):
                    self._origin = block.get("x_origin")
                    data = {**data, "content_block": {k: v for k, v in block.items() if not k.startswith("x_")}}
                else:
                    self._origin = None
            elif name == "content_block_delta" and self._origin:
                delta = data.get("delta")
                if isinstance(delta, dict) and delta.get("type") == "signature_delta":
                    data = {**data, "delta": {**delta, "signature": client_signature(delta.get("signature", ""),
                                                                                     self._origin)}}
            out.append(encode_event(name, data))
        return out


class Passthrough:
    """An Anthropic stream to an Anthropic client: events pass as received; ends at ``message_stop``.

    Usage and text go to ``notes`` (the request record) as they pass.
    """

    def __init__(self, context: Context, notes: Notes):
        self._notes = notes
        self._model = context.client_model if context.client_model != context.upstream_model else None
        self.ended = False
        self.error: str | None = None

    def on_event(self, event: Event) -> list[bytes]:
        data = event_json(event)
        if data is None:
            return []
        kind = data.get("type") or event.event
        if kind == "message_start":
            message = data.get("message") or {}
            usage = message.get("usage") or {}
            self._notes.add_usage(usage.get("input_tokens"), usage.get("output_tokens"))
            if self._model and message.get("model") != self._model:
                message["model"] = self._model
                return [encode_event("message_start", data)]
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            self._notes.add_output(delta.get("text"))
        elif kind == "message_delta":
            usage = data.get("usage") or {}
            self._notes.add_usage(usage.get("input_tokens"), usage.get("output_tokens"))
        elif kind == "message_stop":
            self.ended = True
        elif kind == "error":
            self.ended = True
            self.error = error_message(data)
        if event.event is None and kind:  # some upstreams omit the event: line; clients need it
            return [encode_event(kind, data)]
        return [event.raw]

    def on_end(self) -> list[bytes]:
        self.error = ENDED_EARLY
        return [encode_event("error", error_body(502, ENDED_EARLY))]

    def on_failure(self, status: int, message: str) -> list[bytes]:
        self.error = message
        return [encode_event("error", error_body(status, f"{message} (mid-stream)"))]
