"""The internal form's answers and streams as the Gemini API's ``GenerateContentResponse``, and
errors in Google's shape.

An answer is one candidate: its ``content`` (role ``model``) holds text parts, thought parts
(``thought: true``; only when the request asked ``includeThoughts``) and ``functionCall`` parts
(``id``, ``name``, ``args``; a call that came with a ``thoughtSignature`` gives it back), then
``finishReason`` and ``usageMetadata``. A stream is the same objects, one per SSE ``data:``
line, each holding what came since the last; the last one carries ``finishReason`` and the usage.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ...exchange.form import FormEvent
from ..anthropic.shapes import error_event_failure
from ..base import Context
from ..jsoncodec import dumps
from ..sse import encode_data
from ..translate_common import USAGE_KEYS, merge_usage, new_id, parse_arguments

#: The form's stop reasons as Gemini's finish reasons (a function call ends with STOP there too).
FINISH_REASONS = {"end_turn": "STOP", "tool_use": "STOP", "stop_sequence": "STOP", "max_tokens": "MAX_TOKENS",
                  "model_context_window_exceeded": "MAX_TOKENS", "refusal": "SAFETY", "pause_turn": "OTHER"}
#: HTTP statuses as google.rpc status names (Google's error shape says both).
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
                499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED"}


def error_body(status: int, message: str, type: str | None = None, param: str | None = None, *,
               retry_after: str | None = None, quota: str | None = None) -> dict:
    """``{"error": {"code", "message", "status", "details"}}``, as Google's APIs answer. A field
    named by ``param`` is reported as a BadRequest field violation; a 429 carries the wait as
    RetryInfo and the quota reached as QuotaFailure (see :func:`rate_limit_details`)."""
    details: list[dict] = []
    if param:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": param, "description": message}]})
    if status == 429:
        details.extend(rate_limit_details(message, retry_after, quota))
    return {"error": {"code": status, "message": message,
                      "status": STATUS_NAMES.get(status, "UNKNOWN" if status < 500 else "INTERNAL"),
                      "details": details}}


DAILY = re.compile(r"\b(?:per[ -]day|daily|a day|today|24 ?h(?:ours?)?)\b", re.IGNORECASE)


def rate_limit_details(message: str, retry_after: str | None, quota: str | None) -> list[dict]:
    """What Gemini CLI reads in a 429: ``RetryInfo`` (the ``Retry-After`` seconds) and a
    ``QuotaFailure`` whose quota id ends in ``PerMinute`` (it retries) or ``PerDay`` (it stops at
    once). ``quota`` is the gateway's own limit; an upstream's 429 counts as daily when its text
    says so, and names no quota otherwise."""
    details: list[dict] = []
    if quota is None and DAILY.search(message):
        quota = "UpstreamRequestsPerDay"
    if quota:
        details.append({"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [{"quotaId": quota, "description": message}]})
    seconds = _seconds(retry_after)
    if seconds is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds}s"})
    return details


def _seconds(value: str | None) -> int | None:
    try:
        seconds = math.ceil(float(value)) if value else None
    except (ValueError, OverflowError):  # an HTTP date (or nan, inf): not a delay to say
        return None
    return seconds if seconds is not None and 0 <= seconds < 10**9 else None


def include_thoughts(context: Context) -> bool:
    """Whether the client asked for thought parts (``thinkingConfig.includeThoughts``)."""
    extras = ((context.request or {}).get("x_extras") or {}).get("gemini") or {}
    return extras.get("include_thoughts") is True


def usage_metadata(usage: Any) -> dict:
    """The form's usage as ``usageMetadata`` (cache reads are part of Gemini's prompt count)."""
    usage = usage if isinstance(usage, dict) else {}
    counts = {key: usage.get(key) if isinstance(usage.get(key), int) else 0 for key in USAGE_KEYS}
    prompt = counts["input_tokens"] + counts["cache_creation_input_tokens"] + counts["cache_read_input_tokens"]
    out = {"promptTokenCount": prompt, "candidatesTokenCount": counts["output_tokens"],
           "totalTokenCount": prompt + counts["output_tokens"]}
    if counts["cache_read_input_tokens"]:
        out["cachedContentTokenCount"] = counts["cache_read_input_tokens"]
    return out


def _call_part(block: dict) -> dict:
    call: dict[str, Any] = {"name": block.get("name") or "", "args": block.get("input") or {}}
    if isinstance(block.get("id"), str) and block["id"]:
        call["id"] = block["id"]
    part: dict[str, Any] = {"functionCall": call}
    signature = (block.get("x_item") or {}).get("thought_signature")
    if isinstance(signature, str) and signature:
        part["thoughtSignature"] = signature
    return part


def _parts(blocks: Any, thoughts: bool) -> list[dict]:
    parts: list[dict] = []
    for block in blocks if isinstance(blocks, list) else ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            parts.append({"text": block["text"]})
        elif kind == "thinking" and thoughts and isinstance(block.get("thinking"), str) and block["thinking"]:
            parts.append({"text": block["thinking"], "thought": True})
        elif kind == "tool_use":
            parts.append(_call_part(block))
    return parts


def render_answer(answer: dict, context: Context) -> dict:
    """The form's answer (an Anthropic message) as a ``GenerateContentResponse``."""
    parts = _parts(answer.get("content"), include_thoughts(context)) or [{"text": ""}]
    stop = answer.get("stop_reason")
    return {
        "candidates": [{"content": {"role": "model", "parts": parts},
                        "finishReason": FINISH_REASONS.get(stop, "STOP") if isinstance(stop, str) else "STOP",
                        "index": 0}],
        "usageMetadata": usage_metadata(answer.get("usage")),
        "modelVersion": context.client_model,
        "responseId": _response_id(answer.get("id")),
    }


def _response_id(message_id: Any) -> str:
    if isinstance(message_id, str) and message_id:
        return message_id.removeprefix("msg_")
    return new_id("")


class Chunks:
    """Form events in, ``GenerateContentResponse`` chunks out (one per event that says something).

    Text and thought deltas go out as they come; a function call goes out whole when its block
    stops (Gemini never splits one); ``message_delta`` gives the last chunk its finish reason and
    usage. An ``error`` event, a failure, or a stream that ends unfinished gives one error object
    in Google's shape and nothing more: the SDKs raise on it.
    """

    def __init__(self, context: Context) -> None:
        self._model = context.client_model
        self._thoughts = include_thoughts(context)
        self._id = ""
        self._usage: dict = {}
        self._calls: dict[int, dict] = {}  # block index -> the tool_use block, its input as JSON text so far
        self._finished = False
        self.done = False

    def feed(self, event: str, data: dict) -> list[dict]:
        if self.done or not isinstance(data, dict):
            return []
        kind = data.get("type") or event
        if kind == "error":
            return self.fail(*error_event_failure(data))
        if kind == "message_start":
            message = data.get("message") if isinstance(data.get("message"), dict) else {}
            self._id = _response_id(message.get("id"))
            merge_usage(self._usage, message.get("usage"))
        elif kind == "content_block_start":
            return self._block_start(data)
        elif kind == "content_block_delta":
            return self._block_delta(data)
        elif kind == "content_block_stop":
            call = self._calls.pop(data.get("index"), None)
            if call is not None:
                return [self._chunk([_call_part({**call["block"], "input": _arguments(call["json"], call["block"])})])]
        elif kind == "message_delta":
            merge_usage(self._usage, data.get("usage"))
            delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
            stop = delta.get("stop_reason")
            self._finished = True
            return [self._chunk([], FINISH_REASONS.get(stop, "STOP") if isinstance(stop, str) else "STOP",
                                usage=True)]
        elif kind == "message_stop":
            self.done = True
            if not self._finished:
                self._finished = True
                return [self._chunk([], "STOP", usage=True)]
        return []

    def finish(self) -> list[dict]:
        if self.done:
            return []
        if not self._finished:
            return self.fail(502, "the upstream stream ended before the answer was finished")
        self.done = True
        return []

    def fail(self, status: int, message: str) -> list[dict]:
        if self.done:
            return []
        self.done = True
        return [error_body(status, message)]

    def _block_start(self, data: dict) -> list[dict]:
        block = data.get("content_block") if isinstance(data.get("content_block"), dict) else {}
        kind = block.get("type")
        if kind == "tool_use":
            self._calls[data.get("index")] = {"block": block, "json": ""}
            return []
        return self._text_chunk(kind, block.get("text") if kind == "text" else block.get("thinking"))

    def _block_delta(self, data: dict) -> list[dict]:
        delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
        kind = delta.get("type")
        if kind == "input_json_delta":
            call = self._calls.get(data.get("index"))
            if call is not None and isinstance(delta.get("partial_json"), str):
                call["json"] += delta["partial_json"]
            return []
        if kind == "text_delta":
            return self._text_chunk("text", delta.get("text"))
        if kind == "thinking_delta":
            return self._text_chunk("thinking", delta.get("thinking"))
        return []

    def _text_chunk(self, kind: Any, text: Any) -> list[dict]:
        if not isinstance(text, str) or not text:
            return []
        if kind == "text":
            return [self._chunk([{"text": text}])]
        if kind == "thinking" and self._thoughts:
            return [self._chunk([{"text": text, "thought": True}])]
        return []

    def _chunk(self, parts: list[dict], finish: str | None = None, *, usage: bool = False) -> dict:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
        out: dict[str, Any] = {"candidates": [candidate]}
        if usage:
            out["usageMetadata"] = usage_metadata(self._usage)
        out["modelVersion"] = self._model
        out["responseId"] = self._id or new_id("")
        return out


def _arguments(text: str, block: dict) -> dict:
    """A call's input: the JSON its deltas spelled, else what its start block held."""
    if text:
        return parse_arguments(text)
    initial = block.get("input")
    return initial if isinstance(initial, dict) else {}


def stream_format(context: Context) -> str:
    """``sse`` when the client asked ``alt=sse`` (the view puts it in the body as ``alt``), else
    ``array``: Google's own streaming form, one JSON array sent an element at a time."""
    extras = ((context.request or {}).get("x_extras") or {}).get("gemini") or {}
    return "sse" if extras.get("alt") == "sse" else "array"


class Encoder:
    """Form events as the bytes of ``streamGenerateContent``: SSE ``data:`` lines with
    ``alt=sse``, else the elements of one JSON array (``[`` first, ``]`` once the answer ended)."""

    def __init__(self, context: Context) -> None:
        self.chunks = Chunks(context)
        self.sse = stream_format(context) == "sse"
        self._opened = self._closed = False

    def encode(self, events: list[FormEvent]) -> list[bytes]:
        chunks = [chunk for name, data in events for chunk in self.chunks.feed(name, data)]
        if self.sse:
            return [encode_data(chunk) for chunk in chunks]
        out = []
        for chunk in chunks:
            out.append((b"[" if not self._opened else b",\r\n") + dumps(chunk))
            self._opened = True
        if self.chunks.done and not self._closed:
            self._closed = True
            out.append(b"]" if self._opened else b"[]")
        return out
