"""OpenAI Responses streams to and from the internal form, and passed through.

:class:`Decoder` turns a Responses upstream's events into form events, :class:`Encoder` turns form
events into the events a Responses client (Codex, the SDK) reads, and :class:`Passthrough`
forwards a Responses upstream's stream to a Responses client.

A Responses stream is ``response.created`` and ``response.in_progress``, then the output items one
after another - ``response.output_item.added``, the item's own events, ``response.output_item.done``
with the whole item - and ``response.completed`` (or ``response.incomplete``) with the whole
``response``; every event has a ``sequence_number`` counting from 0. Codex reads the items from
``output_item.done`` and ends a turn only on ``response.completed``; a stream without it is an error.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..exchange.form import FormEvent
from .anthropic.shapes import GATEWAY_SIGNATURE, STATUS_FOR_TYPE
from .anthropic.shapes import error_body as anthropic_error_body
from .anthropic.stream import ENDED_EARLY, event_json
from .base import Context, Notes
from .responses_items import (
    DIALECT_NAME,
    INCOMPLETE_FOR_STOP,
    ToolIndex,
    call_item,
    client_encrypted,
    client_request,
    custom_input_text,
    failure_code,
    form_usage,
    message_item,
    namespaced_name,
    now,
    reasoning_item,
    response_echo,
    response_id_for,
    response_object,
    responses_usage,
    status_for,
    stop_reason_of,
)
from .sse import DONE, Event, encode_event
from .translate_common import dump_json, is_context_length_error, new_id, prompt_too_long_message

LIFECYCLE = frozenset({"response.created", "response.in_progress", "response.queued"})
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
CUSTOM_PREFIX = '{"input":"'
CUSTOM_SUFFIX = '"}'


def _error_event(status: int, message: str) -> FormEvent:
    if is_context_length_error(status, message):
        return "error", anthropic_error_body(400, prompt_too_long_message(message), "invalid_request_error")
    return "error", anthropic_error_body(status, message)


def _error_of(err: Any, fallback: str) -> tuple[int, str]:
    """Status and message of a Responses error object (``{"code", "message"}``, maybe nested in ``error``)."""
    if isinstance(err, dict) and isinstance(err.get("error"), dict):
        err = err["error"]
    if not isinstance(err, dict):
        return 500, fallback
    message = err.get("message") if isinstance(err.get("message"), str) and err["message"] else fallback
    code = err.get("code")
    status = status_for(code, err.get("status"))
    if code == "context_length_exceeded":
        status = 400
        if not is_context_length_error(400, message):
            message = f"context length exceeded: {message}"
    return status, message


# --- an upstream's events -> form events -------------------------------------------------------------

@dataclass
class _Item:
    """One output item of the upstream's answer, as it becomes a form block."""

    index: int  # its output_index
    kind: str  # text | thinking | tool | skip
    block: dict  # the content_block its block starts with
    custom: bool = False
    waiting: list[dict] = field(default_factory=list)  # deltas while another block is open
    seen: dict = field(default_factory=dict)  # text so far, by content/summary index ("" for a call's payload)
    last_part: Any = None  # the summary (or content) part thinking text last came from
    prefixed: bool = False  # a custom call's '{"input":"' has gone out
    signature: str | None = None
    started: bool = False  # its content_block_start has gone out
    done: bool = False  # output_item.done came
    closed: bool = False  # its content_block_stop has gone out

    @property
    def has_content(self) -> bool:
        return self.kind == "tool" or bool(self.waiting) or self.signature is not None


class Decoder:
    """A Responses upstream's events in, form events out.

    ``message_start`` first (from ``response.created``), one form block per output item with content
    (a message's text, a reasoning item's summary - its ``encrypted_content``, sent on
    ``output_item.done``, is the block's ``signature_delta`` - a call's arguments, a custom call's
    input as ``input_json_delta`` fragments of ``{"input": "<its text>"}``), then on
    ``response.completed`` ``message_delta`` (``tool_use`` when a call was made, ``max_tokens`` or
    ``refusal`` for an incomplete answer, else ``end_turn``; the usage) and ``message_stop``.
    Items stream live one at a time; deltas of another item wait for the open block to end (block
    order never breaks). Text a ``…done`` event holds that its deltas did not is added. Hosted tool
    calls (web search…) have no block. ``response.failed``, ``error``, an answer incomplete for
    another reason, and a stream that ends without ``response.completed`` give an ``error`` event,
    never an invented end.
    """

    def __init__(self, context: Context):
        self._names = context.names
        self._model = context.client_model
        self._estimate = max(0, int(context.input_estimate or 0))
        self._id = new_id("msg_")
        self.done = False
        self._started = False
        self._next_block = 0
        self._open: _Item | None = None
        self._items: dict[int, _Item] = {}
        self._usage: dict | None = None
        self._text: list[str] = []
        self._chars = 0
        self._tool_used = False

    @property
    def usage(self) -> dict:
        """Usage as reported (Anthropic fields); estimates until the upstream says."""
        if self._usage is not None:
            return dict(self._usage)
        return {"input_tokens": self._estimate, "output_tokens": -(-self._chars // 4),
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}

    @property
    def text(self) -> str:
        return "".join(self._text)

    def feed(self, event: Event) -> list[FormEvent]:
        """One upstream event (ProtocolError 502 for one that is not a JSON object)."""
        if self.done or event.data.strip() == DONE:
            return []
        data = event_json(event)
        if data is None:
            return []
        kind = data.get("type") or event.event or ""
        if kind == "error":
            return self._fail(*_error_of(data, "the upstream reported an error"))
        if kind == "response.failed":
            response = data.get("response") if isinstance(data.get("response"), dict) else {}
            return self._fail(*_error_of(response.get("error"), "the upstream's response failed"))
        out: list[FormEvent] = []
        self._start(out, data.get("response") if kind in LIFECYCLE else None)
        index = data.get("output_index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else None
        if kind == "response.output_item.added" and isinstance(data.get("item"), dict):
            self._add(out, len(self._items) if index is None else index, data["item"])
        elif kind in ("response.completed", "response.incomplete"):
            self._complete(out, data.get("response") if isinstance(data.get("response"), dict) else {})
        elif kind.startswith("response."):
            if index is None and self._items:
                index = max(self._items)  # an upstream that leaves the index out: the item streaming now
            if kind == "response.output_item.done" and isinstance(data.get("item"), dict):
                index = len(self._items) if index is None else index
                self._add(out, index, data["item"])  # (a done without its added: the item is whole here)
            if index is not None and index in self._items:
                self._on_item_event(out, kind, self._items[index], data)
        return out

    def finish(self) -> list[FormEvent]:
        """The upstream stream ended: without ``response.completed`` that is an error."""
        if self.done:
            return []
        return self._fail(502, ENDED_EARLY)

    def fail(self, status: int, message: str) -> list[FormEvent]:
        if self.done:
            return []
        return self._fail(status, message)

    # -- internals --------------------------------------------------------------------------------

    def _fail(self, status: int, message: str) -> list[FormEvent]:
        self.done = True
        return [_error_event(status, message)]

    def _start(self, out: list, response: Any = None) -> None:
        if self._started:
            return
        self._started = True
        if isinstance(response, dict) and isinstance(response.get("id"), str) and response["id"]:
            self._id = "msg_" + response["id"].removeprefix("resp_")
        usage = {"input_tokens": self._estimate, "output_tokens": 0, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        message = {"id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": usage}
        out.append(("message_start", {"type": "message_start", "message": message}))

    def _add(self, out: list, index: int, item: dict) -> None:
        if index in self._items:
            return
        kind = item.get("type")
        if kind == "message":
            entry = _Item(index, "text", {"type": "text", "text": ""})
        elif kind == "reasoning":
            entry = _Item(index, "thinking", {"type": "thinking", "thinking": "", "signature": "",
                                              "x_origin": DIALECT_NAME})
        elif kind in ("function_call", "custom_tool_call") and isinstance(item.get("name"), str):
            name = item["name"]
            if isinstance(item.get("namespace"), str) and item["namespace"]:
                name = namespaced_name(item["namespace"], name)
            else:
                name = self._names.name_in(name)
            block = {"type": "tool_use", "id": self._names.id_in(item.get("call_id"), salt=f"{self._id}:{index}"),
                     "name": name, "input": {}}
            custom = kind == "custom_tool_call"
            if custom:
                block["x_kind"] = "custom"
            entry = _Item(index, "tool", block, custom=custom)
            self._tool_used = True
        else:
            entry = _Item(index, "skip", {})
        self._items[index] = entry
        if entry.kind == "tool":
            self._promote(out)

    def _on_item_event(self, out: list, kind: str, item: _Item, data: dict) -> None:
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            self._text_piece(out, item, data.get("content_index"), data.get("delta"))
        elif kind in ("response.output_text.done", "response.refusal.done"):
            self._text_piece(out, item, data.get("content_index"), data.get("text") or data.get("refusal"),
                             whole=True)
        elif kind == "response.content_part.done" and isinstance(data.get("part"), dict):
            part = data["part"]
            self._text_piece(out, item, data.get("content_index"), part.get("text") or part.get("refusal"),
                             whole=True)
        elif kind == "response.reasoning_summary_text.delta":
            self._thinking_piece(out, item, data.get("summary_index"), data.get("delta"))
        elif kind == "response.reasoning_summary_text.done":
            self._thinking_piece(out, item, data.get("summary_index"), data.get("text"), whole=True)
        elif kind == "response.reasoning_text.delta":
            self._thinking_piece(out, item, ("content", data.get("content_index")), data.get("delta"))
        elif kind == "response.reasoning_text.done":
            self._thinking_piece(out, item, ("content", data.get("content_index")), data.get("text"), whole=True)
        elif kind in ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta"):
            self._call_piece(out, item, data.get("delta"))
        elif kind == "response.function_call_arguments.done":
            self._call_piece(out, item, data.get("arguments"), whole=True)
        elif kind == "response.custom_tool_call_input.done":
            self._call_piece(out, item, data.get("input"), whole=True)
        elif kind == "response.output_item.done" and isinstance(data.get("item"), dict):
            self._item_done(out, item, data["item"])

    # pieces: text so far is kept by part, so a "done" event only adds what its deltas did not say

    def _new_text(self, item: _Item, key: Any, text: Any, whole: bool) -> str:
        if not isinstance(text, str) or not text:
            return ""
        seen = item.seen.get(key, "")
        if whole:
            if not text.startswith(seen) or len(text) == len(seen):
                return ""
            text = text[len(seen):]
        item.seen[key] = seen + text
        return text

    def _text_piece(self, out: list, item: _Item, part: Any, text: Any, whole: bool = False) -> None:
        if item.kind != "text":
            return
        text = self._new_text(item, part if isinstance(part, int) else 0, text, whole)
        if text:
            self._text.append(text)
            self._chars += len(text)
            self._piece(out, item, {"type": "text_delta", "text": text})

    def _thinking_piece(self, out: list, item: _Item, part: Any, text: Any, whole: bool = False) -> None:
        if item.kind != "thinking":
            return
        key = part if part is not None else 0
        text = self._new_text(item, key, text, whole)
        if not text:
            return
        if item.last_part is not None and item.last_part != key:
            text = "\n\n" + text  # the next summary part
        item.last_part = key
        self._chars += len(text)
        self._piece(out, item, {"type": "thinking_delta", "thinking": text})

    def _call_piece(self, out: list, item: _Item, text: Any, whole: bool = False) -> None:
        if item.kind != "tool":
            return
        text = self._new_text(item, "", text, whole)
        if not text:
            return
        self._chars += len(text)
        if item.custom:
            text = json.dumps(text, ensure_ascii=False)[1:-1]
            if not item.prefixed:
                item.prefixed = True
                text = CUSTOM_PREFIX + text
        self._piece(out, item, {"type": "input_json_delta", "partial_json": text})

    def _item_done(self, out: list, item: _Item, final: dict) -> None:
        if item.done:
            return
        if item.kind == "text":
            for part, content in enumerate(final.get("content") or ()):
                if isinstance(content, dict):
                    self._text_piece(out, item, part, content.get("text") or content.get("refusal"), whole=True)
        elif item.kind == "thinking":
            for part, summary in enumerate(final.get("summary") or ()):
                if isinstance(summary, dict):
                    self._thinking_piece(out, item, part, summary.get("text"), whole=True)
            if not item.seen:
                for part, content in enumerate(final.get("content") or ()):
                    if isinstance(content, dict):
                        self._thinking_piece(out, item, ("content", part), content.get("text"), whole=True)
            encrypted = final.get("encrypted_content")
            item.signature = encrypted if isinstance(encrypted, str) and encrypted else GATEWAY_SIGNATURE
            if not item.seen and item.signature == GATEWAY_SIGNATURE:
                item.signature = None  # an empty item without anything to give back: no block
        elif item.kind == "tool":
            self._call_piece(out, item, final.get("input" if item.custom else "arguments"), whole=True)
        item.done = True
        if item is self._open:
            self._close(out, item)
            self._promote(out)
        elif self._open is None:
            self._promote(out)

    def _piece(self, out: list, item: _Item, delta: dict) -> None:
        if item is self._open:
            self._delta(out, delta)
            return
        item.waiting.append(delta)
        if self._open is None:
            self._promote(out)

    def _promote(self, out: list) -> None:
        """Open the waiting items' blocks in output order: a finished one whole, the first unfinished one live."""
        if self._open is not None:
            return
        for index in sorted(self._items):
            item = self._items[index]
            if item.closed or item.kind == "skip" or not item.has_content:
                continue
            self._begin(out, item)
            if not item.done:
                return
            self._close(out, item)

    def _begin(self, out: list, item: _Item) -> None:
        item.started = True
        self._open = item
        out.append(("content_block_start", {"type": "content_block_start", "index": self._next_block,
                                            "content_block": item.block}))
        self._next_block += 1
        waiting, item.waiting = item.waiting, []
        for delta in waiting:
            self._delta(out, delta)

    def _delta(self, out: list, delta: dict) -> None:
        out.append(("content_block_delta", {"type": "content_block_delta", "index": self._next_block - 1,
                                            "delta": delta}))

    def _close(self, out: list, item: _Item) -> None:
        if item.kind == "thinking":
            self._delta(out, {"type": "signature_delta", "signature": item.signature or GATEWAY_SIGNATURE})
        elif item.custom and item.prefixed:
            self._delta(out, {"type": "input_json_delta", "partial_json": CUSTOM_SUFFIX})
        elif item.custom:
            self._delta(out, {"type": "input_json_delta", "partial_json": CUSTOM_PREFIX + CUSTOM_SUFFIX})
        out.append(("content_block_stop", {"type": "content_block_stop", "index": self._next_block - 1}))
        item.closed = True
        self._open = None

    def _complete(self, out: list, response: dict) -> None:
        final = response.get("output") if isinstance(response.get("output"), list) else []
        for index, item in enumerate(final):
            if isinstance(item, dict):
                self._add(out, index, item)
                self._item_done(out, self._items[index], item)
        for index in sorted(self._items):  # announced, never finished: what came is what there is
            self._item_done(out, self._items[index], {})
        if self._open is not None:
            self._close(out, self._open)
        if isinstance(response.get("usage"), dict):
            self._usage = form_usage(response["usage"])
        status = response.get("status") or "completed"
        stop = stop_reason_of(status, response.get("incomplete_details"), self._tool_used)
        if stop is None:
            reason = (response.get("incomplete_details") or {}).get("reason") or "unknown"
            out.extend(self._fail(502, f"the upstream's response is incomplete ({reason})"))
            return
        out.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": self.usage}))
        out.append(("message_stop", {"type": "message_stop"}))
        self.done = True


# --- form events -> a client's Responses events --------------------------------------------------------

def _prefix_end(text: str) -> int | None:
    """Where ``{"input":"`` (JSON whitespace allowed between its tokens) ends in ``text``: None while
    ``text`` may still become it, -1 once it cannot."""
    tokens = ("{", '"input"', ":", '"')
    token = at = 0
    for position, char in enumerate(text):
        if at == 0 and char in " \t\r\n":
            continue
        if char != tokens[token][at]:
            return -1
        at += 1
        if at == len(tokens[token]):
            token, at = token + 1, 0
            if token == len(tokens):
                return position + 1
    return None


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class _Unwrap:
    """A custom call's input out of the form's ``{"input": "<text>"}`` fragments, as it arrives.

    While the fragments start with ``{"input":"`` the string's characters are decoded as they come
    (escapes split between fragments wait for their end); any other shape is read whole at the end.
    """

    def __init__(self) -> None:
        self.raw: list[str] = []
        self.state = "prefix"  # prefix | string | after | whole
        self._head = ""
        self._pending = ""
        self.streamed: list[str] = []

    def feed(self, fragment: str) -> str:
        self.raw.append(fragment)
        if self.state == "prefix":
            self._head += fragment
            end = _prefix_end(self._head)
            if end is None:
                return ""
            if end < 0:
                self.state = "whole"
                return ""
            self.state = "string"
            fragment, self._head = self._head[end:], ""
        if self.state != "string":
            return ""
        text = self._string(self._pending + fragment)
        if text:
            self.streamed.append(text)
        return text

    def _string(self, text: str) -> str:
        out: list[str] = []
        self._pending = ""
        i = 0
        while i < len(text):
            char = text[i]
            if char == '"':
                self.state = "after"
                break
            if char != "\\":
                out.append(char)
                i += 1
                continue
            if i + 1 >= len(text):
                self._pending = text[i:]
                break
            escape = text[i + 1]
            if escape != "u":
                out.append(_ESCAPES.get(escape, escape))
                i += 2
                continue
            if i + 6 > len(text):
                self._pending = text[i:]
                break
            try:
                code = int(text[i + 2:i + 6], 16)
            except ValueError:
                self.state = "whole"
                break
            if 0xD800 <= code < 0xDC00:  # a surrogate pair: wait for its second half
                if i + 12 > len(text):
                    self._pending = text[i:]
                    break
                try:
                    low = int(text[i + 8:i + 12], 16) if text[i + 6:i + 8] == "\\u" else -1
                except ValueError:
                    low = -1
                if 0xDC00 <= low < 0xE000:
                    out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                    i += 12
                    continue
                out.append("\ufffd")
                i += 6
                continue
            out.append(chr(code))
            i += 6
        return "".join(out)

    def whole(self, initial: Any) -> str:
        """The whole input: the fragments parsed together (or the block's own input when none came)."""
        raw = "".join(self.raw)
        if not raw.strip():
            return custom_input_text(initial) if isinstance(initial, dict) and initial else ""
        try:
            return custom_input_text(json.loads(raw))
        except ValueError:
            return "".join(self.streamed) if self.streamed else raw


@dataclass
class _Out:
    """The output item a form block is becoming."""

    kind: str  # text | thinking | function | custom | skip
    item_id: str = ""
    index: int = 0
    block: dict = field(default_factory=dict)
    call: tuple = ()
    parts: list[str] = field(default_factory=list)
    signature: str = ""
    summary_open: bool = False
    unwrap: _Unwrap | None = None


class Encoder:
    """Form events in, the SSE bytes of a Responses stream out (``event: <type>`` + ``data:``).

    ``response.created`` and ``response.in_progress`` on ``message_start``; each block one output
    item: ``output_item.added``, its own events (``content_part.added``, ``output_text.delta``…,
    ``output_text.done``, ``content_part.done`` for text; ``reasoning_summary_part.added``,
    ``reasoning_summary_text.delta``…, their ``done`` events for thinking; ``function_call_arguments``
    or ``custom_tool_call_input`` deltas and ``done`` for a call - a custom call's input unwrapped from
    the form's ``{"input": …}``) and ``output_item.done`` with the whole item; on ``message_stop``
    ``response.completed`` with every item and the usage - or ``response.incomplete`` (with
    ``incomplete_details``) when the answer stopped at its token limit or was refused, as OpenAI
    does. An ``error`` ends the stream with ``response.failed``. ``sequence_number`` counts from 0.
    A call is a ``function_call`` or a ``custom_tool_call``, namespaced or not, as the client's tools
    say (the context's request; a block's ``x_kind`` without it).
    """

    def __init__(self, context: Context):
        self._context = context
        self._index = ToolIndex(client_request(context))
        self._echo: dict | None = None
        self._response_id = ""
        self._hex = secrets.token_hex(8)
        self._created = now()
        self._seq = 0
        self._started = False
        self._ended = False
        self._items: list[dict] = []
        self._current: _Out | None = None
        self._usage: dict = {}
        self._stop: str | None = None

    def encode(self, events: Iterable[FormEvent]) -> list[bytes]:
        out: list[bytes] = []
        for name, data in events:
            if self._ended:
                break
            if name == "message_start":
                self._start(out, data.get("message") if isinstance(data.get("message"), dict) else {})
            elif name == "error":
                self._failed(out, data)
            elif name == "content_block_start":
                self._start(out, {})
                block = data.get("content_block")
                self._begin(out, block if isinstance(block, dict) else {})
            elif name == "content_block_delta" and self._current is not None:
                delta = data.get("delta")
                self._delta(out, delta if isinstance(delta, dict) else {})
            elif name == "content_block_stop":
                self._end_block(out)
            elif name == "message_delta":
                delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
                if delta.get("stop_reason"):
                    self._stop = delta["stop_reason"]
                self._add_usage(data.get("usage"))
            elif name == "message_stop":
                self._finish(out)
        return out

    # -- internals --------------------------------------------------------------------------------

    def _emit(self, out: list, kind: str, payload: dict) -> None:
        payload = {"type": kind, "sequence_number": self._seq, **payload}
        self._seq += 1
        out.append(encode_event(kind, payload))

    def _response(self, status: str, output: list, **extra: Any) -> dict:
        if self._echo is None:
            self._echo = response_echo(self._context)
        return response_object(self._response_id, self._created, self._context, self._echo, status=status,
                               output=output, **extra)

    def _add_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)})

    def _start(self, out: list, message: dict) -> None:
        if self._started:
            return
        self._started = True
        self._response_id = response_id_for(message.get("id"))
        self._add_usage(message.get("usage"))
        self._emit(out, "response.created", {"response": self._response("in_progress", [])})
        self._emit(out, "response.in_progress", {"response": self._response("in_progress", [])})

    def _ids(self, prefix: str) -> tuple[str, int]:
        index = len(self._items)
        return f"{prefix}_{self._hex}{index:04x}", index

    def _begin(self, out: list, block: dict) -> None:
        if self._current is not None:
            self._end_block(out)
        kind = block.get("type")
        if kind == "text":
            item_id, index = self._ids("msg")
            current = _Out("text", item_id, index)
            item = message_item(item_id, "", "in_progress")
            item["content"] = []
            self._emit(out, "response.output_item.added", {"output_index": index, "item": item})
            self._emit(out, "response.content_part.added", {
                "item_id": item_id, "output_index": index, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
            self._current = current
            if isinstance(block.get("text"), str) and block["text"]:
                self._delta(out, {"type": "text_delta", "text": block["text"]})
        elif kind == "thinking":
            item_id, index = self._ids("rs")
            self._current = _Out("thinking", item_id, index, block)
            self._emit(out, "response.output_item.added",
                       {"output_index": index, "item": reasoning_item(item_id, "", None, "in_progress")})
            if isinstance(block.get("thinking"), str) and block["thinking"]:
                self._delta(out, {"type": "thinking_delta", "thinking": block["thinking"]})
            if isinstance(block.get("signature"), str) and block["signature"]:
                self._current.signature = block["signature"]
        elif kind == "tool_use":
            call = self._index.call_of(block)
            custom = call[0] == "custom"
            item_id, index = self._ids("ctc" if custom else "fc")
            call_id = block.get("id") if isinstance(block.get("id"), str) else ""
            self._current = _Out("custom" if custom else "function", item_id, index, block, (call_id, call),
                                 unwrap=_Unwrap() if custom else None)
            self._emit(out, "response.output_item.added",
                       {"output_index": index, "item": call_item(item_id, call_id, call, "", "in_progress")})
        else:
            self._current = _Out("skip")  # redacted thinking, server tool blocks: nothing a client can use

    def _delta(self, out: list, delta: dict) -> None:
        current = self._current
        assert current is not None
        kind = delta.get("type")
        ids = {"item_id": current.item_id, "output_index": current.index}
        if current.kind == "text" and kind == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
            current.parts.append(delta["text"])
            self._emit(out, "response.output_text.delta",
                       {**ids, "content_index": 0, "delta": delta["text"], "logprobs": []})
        elif current.kind == "thinking" and kind == "thinking_delta" and isinstance(delta.get("thinking"), str) \
                and delta["thinking"]:
            if not current.summary_open:
                current.summary_open = True
                self._emit(out, "response.reasoning_summary_part.added",
                           {**ids, "summary_index": 0, "part": {"type": "summary_text", "text": ""}})
            current.parts.append(delta["thinking"])
            self._emit(out, "response.reasoning_summary_text.delta",
                       {**ids, "summary_index": 0, "delta": delta["thinking"]})
        elif current.kind == "thinking" and kind == "signature_delta" and isinstance(delta.get("signature"), str):
            current.signature += delta["signature"]
        elif current.kind in ("function", "custom") and kind == "input_json_delta" \
                and isinstance(delta.get("partial_json"), str) and delta["partial_json"]:
            current.parts.append(delta["partial_json"])
            if current.unwrap is None:
                self._emit(out, "response.function_call_arguments.delta", {**ids, "delta": delta["partial_json"]})
            else:
                text = current.unwrap.feed(delta["partial_json"])
                if text:
                    self._emit(out, "response.custom_tool_call_input.delta", {**ids, "delta": text})

    def _end_block(self, out: list) -> None:
        current, self._current = self._current, None
        if current is None or current.kind == "skip":
            return
        ids = {"item_id": current.item_id, "output_index": current.index}
        if current.kind == "text":
            text = "".join(current.parts)
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            self._emit(out, "response.output_text.done", {**ids, "content_index": 0, "text": text, "logprobs": []})
            self._emit(out, "response.content_part.done", {**ids, "content_index": 0, "part": part})
            item = message_item(current.item_id, text)
        elif current.kind == "thinking":
            text = "".join(current.parts)
            if current.summary_open:
                self._emit(out, "response.reasoning_summary_text.done", {**ids, "summary_index": 0, "text": text})
                self._emit(out, "response.reasoning_summary_part.done",
                           {**ids, "summary_index": 0, "part": {"type": "summary_text", "text": text}})
            encrypted = client_encrypted(current.signature, current.block.get("x_origin"))
            item = reasoning_item(current.item_id, text, encrypted)
        elif current.kind == "function":
            arguments = "".join(current.parts)
            if not arguments:
                initial = current.block.get("input")
                arguments = dump_json(initial) if isinstance(initial, dict) else "{}"
                self._emit(out, "response.function_call_arguments.delta", {**ids, "delta": arguments})
            self._emit(out, "response.function_call_arguments.done", {**ids, "arguments": arguments})
            item = call_item(current.item_id, current.call[0], current.call[1], arguments)
        else:
            unwrap = current.unwrap
            assert unwrap is not None
            text = unwrap.whole(current.block.get("input"))
            if not unwrap.streamed and text:
                self._emit(out, "response.custom_tool_call_input.delta", {**ids, "delta": text})
            self._emit(out, "response.custom_tool_call_input.done", {**ids, "input": text})
            item = call_item(current.item_id, current.call[0], current.call[1], text)
        self._items.append(item)
        self._emit(out, "response.output_item.done", {"output_index": current.index, "item": item})

    def _finish(self, out: list) -> None:
        self._start(out, {})
        self._end_block(out)
        usage = responses_usage(self._usage)
        incomplete = INCOMPLETE_FOR_STOP.get(self._stop or "")
        if incomplete:
            response = self._response("incomplete", self._items, usage=usage, incomplete=incomplete)
            self._emit(out, "response.incomplete", {"response": response})
        else:
            self._emit(out, "response.completed", {"response": self._response("completed", self._items,
                                                                               usage=usage)})
        self._ended = True

    def _failed(self, out: list, data: dict) -> None:
        self._start(out, {})
        err = data.get("error") if isinstance(data.get("error"), dict) else {}
        message = err.get("message") if isinstance(err.get("message"), str) else "the upstream failed"
        status = STATUS_FOR_TYPE.get(err.get("type"), 500) if isinstance(err.get("type"), str) else 500
        error = {"code": failure_code(status, message), "message": message}
        self._emit(out, "response.failed", {"response": self._response("failed", self._items, error=error)})
        self._ended = True


# --- a Responses upstream's stream to a Responses client --------------------------------------------------

def failed_event(response_id: str, created_at: int, context: Context, sequence_number: int, status: int,
                 message: str) -> bytes:
    """The ``response.failed`` event that ends a stream which cannot go on."""
    echo = {"parallel_tool_calls": True, "tool_choice": "auto", "tools": []}
    error = {"code": failure_code(status, message), "message": message}
    response = response_object(response_id, created_at, context, echo, status="failed", output=[], error=error)
    return encode_event("response.failed", {"type": "response.failed", "sequence_number": sequence_number,
                                            "response": response})


class Passthrough:
    """A Responses stream to a Responses client: events pass as received (their bytes), the model the
    client asked for written into the events that carry the ``response``; usage and text go to
    ``notes``. A stream that ends before ``response.completed`` ends with ``response.failed``."""

    def __init__(self, context: Context, notes: Notes):
        self._context = context
        self._notes = notes
        self._rename = context.client_model if context.client_model != context.upstream_model else None
        self._response_id = ""
        self._created = 0
        self._seq = -1
        self.ended = False
        self.error: str | None = None

    def on_event(self, event: Event) -> list[bytes]:
        if self.ended or event.data.strip() == DONE:
            return []
        data = event_json(event)
        if data is None:
            return []
        kind = data.get("type") or event.event or ""
        seq = data.get("sequence_number")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self._seq = max(self._seq, seq)
        changed = False
        response = data.get("response")
        if isinstance(response, dict) and kind.startswith("response."):
            if not self._response_id and isinstance(response.get("id"), str):
                self._response_id = response["id"]
                created = response.get("created_at")
                self._created = int(created) if isinstance(created, (int, float)) else now()
            if self._rename and response.get("model") not in (None, self._rename):
                response["model"] = self._rename
                changed = True
            if kind in TERMINAL:
                usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
                self._notes.add_usage(usage.get("input_tokens"), usage.get("output_tokens"))
                self.ended = True
                if kind == "response.failed":
                    self.error = _error_of(response.get("error"), "the upstream's response failed")[1]
        elif kind == "response.output_text.delta":
            delta = data.get("delta")
            self._notes.add_output(delta if isinstance(delta, str) else None)
        elif kind == "error":
            status, self.error = _error_of(data, "the upstream reported an error")
            forwarded = encode_event(kind, data) if event.event is None else event.raw
            return [forwarded, *self._fail(status, self.error)]  # clients end a turn only on response.failed
        if changed or event.event is None:
            return [encode_event(kind, data)]
        return [event.raw]

    def on_end(self) -> list[bytes]:
        if self.ended:
            return []
        self.error = ENDED_EARLY
        return self._fail(502, ENDED_EARLY)

    def on_failure(self, status: int, message: str) -> list[bytes]:
        if self.ended:
            return []
        self.error = message
        return self._fail(status, f"{message} (mid-stream)")

    def _fail(self, status: int, message: str) -> list[bytes]:
        self.ended = True
        self._seq += 1
        response_id = self._response_id or new_id("resp_")
        return [failed_event(response_id, self._created or now(), self._context, self._seq, status, message)]
