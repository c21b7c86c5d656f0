"""A real local HTTP server that stands in for OpenCode Zen in tests.

Run it in the test process (background daemon threads, 127.0.0.1, free port)::

    with running_upstream() as up:
        up.script("big-pickle", openai_text("hi", chunks=2), error(429, headers={"retry-after": "3"}))
        ...  # point the gateway at up.url
        assert up.wait_for(lambda: len(up.requests) == 2)
        assert up.requests[0].headers["authorization"] == "Bearer sk-test"

Routing when nothing is scripted for a request's ``model`` (DEFAULT behaviour):

* ``POST .../chat/completions`` -> ``openai_text()`` (streamed if the body says ``"stream": true``)
* ``POST .../messages``         -> ``anthropic_text()``
* ``POST .../messages/count_tokens`` -> ``{"input_tokens": len(body) // 4}``
* ``POST .../responses``        -> ``responses_text()`` (the Responses API's events if the body says
  ``"stream": true``, else its ``response`` object)
* ``POST .../responses/input_tokens`` -> ``{"object": "response.input_tokens", "input_tokens": len(body) // 4}``
* ``GET  .../models``           -> ``{"object": "list", "data": up.models}`` (or an error if
  ``up.models_status != 200``)
* anything else                 -> 404 JSON

Non-streaming answers always carry ``Content-Length`` (keep-alive works).  Streams use
chunked transfer encoding; every SSE event is written and flushed as its own chunk.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "ANY_MODEL",
    "DEFAULT_MODELS",
    "FakeUpstream",
    "Headers",
    "Recorded",
    "Reply",
    "anthropic_raw",
    "anthropic_text",
    "anthropic_tool_use",
    "broken_chunk",
    "cut_body",
    "drop_after",
    "end_after",
    "error",
    "garbage",
    "hang",
    "html",
    "inject",
    "openai_raw",
    "openai_text",
    "openai_tool_calls",
    "responses_custom_tool_call",
    "responses_function_call",
    "responses_text",
    "running_upstream",
]

#: Script key that matches any request whose model has no queue of its own.
ANY_MODEL = "*"

DEFAULT_MODELS: list[dict[str, Any]] = [
    {"id": mid, "object": "model", "created": 1735689600, "owned_by": "opencode"}
    for mid in ("big-pickle", "gpt-5-nano", "glm-4.7-free", "claude-sonnet-4-5")
]

_DISCONNECT_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


# --------------------------------------------------------------------------- records


class Headers(dict[str, str]):
    """Request headers; keys stored lower-case, lookups are case-insensitive.

    Repeated headers are joined with ``", "``.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for key, value in items:
            k = key.lower()
            super().__setitem__(k, f"{self[k]}, {value}" if k in self else value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key.lower(), value)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class Recorded:
    """One request as the fake upstream received it (recorded before replying)."""

    method: str
    path: str  # without the query string
    query: dict[str, str]  # last value wins for repeated keys
    headers: Headers
    body: Any  # parsed JSON, or None if empty / not JSON
    raw: bytes
    client: tuple[str, int]  # peer address; same port => same (kept-alive) connection
    at: float  # time.monotonic() when the request was fully read

    @property
    def model(self) -> str | None:
        """The ``model`` field of a JSON object body, if any."""
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def stream(self) -> bool:
        """True when the JSON body asked for ``"stream": true``."""
        return isinstance(self.body, dict) and self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        """True when the body asked for ``stream_options.include_usage``."""
        if not isinstance(self.body, dict):
            return False
        opts = self.body.get("stream_options")
        return isinstance(opts, dict) and bool(opts.get("include_usage"))

    def header(self, name: str, default: str | None = None) -> str | None:
        """Case-insensitive header lookup."""
        return self.headers.get(name, default)


# --------------------------------------------------------------------------- replies


class Reply:
    """Base class of everything that can be scripted."""

    def send(self, ex: _Exchange) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _Streamable(Reply):
    """A reply that is an SSE stream or a JSON body depending on the request."""

    def events(self, req: Recorded, ids: _Ids) -> list[tuple[bytes, float]]:
        """SSE frames, each with the delay to wait after writing it."""
        raise NotImplementedError

    def body(self, req: Recorded, ids: _Ids) -> dict[str, Any]:
        """The non-streaming JSON answer."""
        raise NotImplementedError

    def send(self, ex: _Exchange) -> None:
        if ex.req.stream:
            ex.stream(self.events(ex.req, ex.ids))
        else:
            ex.full_json(200, self.body(ex.req, ex.ids))


def _split_words(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


def _split_n(text: str, n: int) -> list[str]:
    """Exactly ``n`` consecutive pieces (some may be empty if ``text`` is short)."""
    n = max(1, n)
    return [text[i * len(text) // n : (i + 1) * len(text) // n] for i in range(n)]


def _pieces(text: str, chunks: int | Sequence[str] | None) -> list[str]:
    if chunks is None:
        return _split_words(text)
    if isinstance(chunks, int):
        return _split_n(text, chunks)
    return list(chunks)


def _args_fragments(args: str, split: int) -> list[str]:
    n = max(1, min(split, len(args)))
    return _split_n(args, n)


def _data(payload: Any) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {text}\n\n".encode()


def _event(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


def _loads_or_raw(args: str) -> Any:
    try:
        return json.loads(args or "{}")
    except ValueError:
        return args  # deliberately malformed arguments stay a string


def _args_str(args: str | dict[str, Any]) -> str:
    return args if isinstance(args, str) else json.dumps(args)


# ----- OpenAI chat completions


def _oa_usage(usage: tuple[int, int]) -> dict[str, int]:
    return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}


class _OpenAIStream(_Streamable):
    usage: tuple[int, int]
    cost_frame: bool | str

    def _chunk(self, req: Recorded, cid: str, created: int, delta: dict[str, Any],
               finish: str | None = None) -> bytes:
        return _data({
            "id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })

    def _tail(self, req: Recorded, cid: str, created: int) -> list[tuple[bytes, float]]:
        out: list[tuple[bytes, float]] = []
        if req.include_usage:
            out.append((_data({
                "id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model,
                "choices": [], "usage": _oa_usage(self.usage),
            }), 0.0))
        out.append((b"data: [DONE]\n\n", 0.0))
        if self.cost_frame:
            cost = self.cost_frame if isinstance(self.cost_frame, str) else "0.0012"
            out.append((_data({"cost": cost}), 0.0))
        return out

    def _completion(self, req: Recorded, ids: _Ids, message: dict[str, Any], finish: str) -> dict[str, Any]:
        return {
            "id": ids.next("chatcmpl-fake"), "object": "chat.completion", "created": int(time.time()),
            "model": req.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": _oa_usage(self.usage),
        }


@dataclass
class _OpenAIText(_OpenAIStream):
    text: str
    chunks: int | Sequence[str] | None
    delay: float
    usage: tuple[int, int]
    reasoning: str | None
    cost_frame: bool | str
    finish: str

    def events(self, req: Recorded, ids: _Ids) -> list[tuple[bytes, float]]:
        cid, created = ids.next("chatcmpl-fake"), int(time.time())
        out = [(self._chunk(req, cid, created, {"role": "assistant", "content": ""}), 0.0)]
        if self.reasoning:
            out += [(self._chunk(req, cid, created, {"reasoning_content": p}), self.delay)
                    for p in _split_words(self.reasoning)]
        out += [(self._chunk(req, cid, created, {"content": p}), self.delay)
                for p in _pieces(self.text, self.chunks)]
        out.append((self._chunk(req, cid, created, {}, self.finish), 0.0))
        return out + self._tail(req, cid, created)

    def body(self, req: Recorded, ids: _Ids) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.reasoning:
            message["reasoning_content"] = self.reasoning
        return self._completion(req, ids, message, self.finish)


@dataclass
class _OpenAIToolCalls(_OpenAIStream):
    calls: list[tuple[str, str, str]]  # (id, name, arguments)
    interleave: bool
    split: int
    delay: float
    usage: tuple[int, int]
    cost_frame: bool | str

    def events(self, req: Recorded, ids: _Ids) -> list[tuple[bytes, float]]:
        cid, created = ids.next("chatcmpl-fake"), int(time.time())
        per_call: list[list[dict[str, Any]]] = []
        for index, (call_id, name, args) in enumerate(self.calls):
            frags = _args_fragments(args, self.split)
            deltas: list[dict[str, Any]] = [{
                "index": index, "id": call_id, "type": "function",
                "function": {"name": name, "arguments": frags[0]},
            }]
            deltas += [{"index": index, "function": {"arguments": f}} for f in frags[1:]]
            per_call.append(deltas)
        if self.interleave:
            order = [d for i in range(max(map(len, per_call), default=0))
                     for call in per_call if i < len(call) for d in [call[i]]]
        else:
            order = [d for call in per_call for d in call]
        out = [(self._chunk(req, cid, created, {"role": "assistant", "content": None}), 0.0)]
        out += [(self._chunk(req, cid, created, {"tool_calls": [d]}), self.delay) for d in order]
        out.append((self._chunk(req, cid, created, {}, "tool_calls"), 0.0))
        return out + self._tail(req, cid, created)

    def body(self, req: Recorded, ids: _Ids) -> dict[str, Any]:
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            for call_id, name, args in self.calls
        ]}
        return self._completion(req, ids, message, "tool_calls")


# ----- Anthropic messages


class _AnthropicStream(_Streamable):
    usage: tuple[int, int]
    delay: float
    ping: bool

    def _blocks(self) -> list[dict[str, Any]]:
        """Full content blocks (non-stream form)."""
        raise NotImplementedError

    def _block_events(self, index: int, block: dict[str, Any]) -> list[tuple[bytes, float]]:
        raise NotImplementedError

    def events(self, req: Recorded, ids: _Ids) -> list[tuple[bytes, float]]:
        start = {"type": "message_start", "message": {
            "id": ids.next("msg_fake"), "type": "message", "role": "assistant", "model": req.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.usage[0], "output_tokens": 1},
        }}
        out = [(_event(start), 0.0)]
        if self.ping:
            out.append((_event({"type": "ping"}), 0.0))
        for index, block in enumerate(self._blocks()):
            out += self._block_events(index, block)
            out.append((_event({"type": "content_block_stop", "index": index}), 0.0))
        out.append((_event({
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason(), "stop_sequence": None},
            "usage": {"output_tokens": self.usage[1]},
        }), 0.0))
        out.append((_event({"type": "message_stop"}), 0.0))
        return out

    def body(self, req: Recorded, ids: _Ids) -> dict[str, Any]:
        return {
            "id": ids.next("msg_fake"), "type": "message", "role": "assistant", "model": req.model,
            "content": self._blocks(), "stop_reason": self._stop_reason(), "stop_sequence": None,
            "usage": {"input_tokens": self.usage[0], "output_tokens": self.usage[1]},
        }

    def _stop_reason(self) -> str:
        raise NotImplementedError

    def _start(self, index: int, block: dict[str, Any]) -> tuple[bytes, float]:
        return (_event({"type": "content_block_start", "index": index, "content_block": block}), 0.0)

    def _delta(self, index: int, delta: dict[str, Any]) -> tuple[bytes, float]:
        return (_event({"type": "content_block_delta", "index": index, "delta": delta}), self.delay)

    def _text_like_events(self, index: int, block: dict[str, Any],
                          chunks: int | Sequence[str] | None) -> list[tuple[bytes, float]]:
        if block["type"] == "thinking":
            out = [self._start(index, {"type": "thinking", "thinking": "", "signature": ""})]
            out += [self._delta(index, {"type": "thinking_delta", "thinking": p})
                    for p in _split_words(block["thinking"])]
            out.append(self._delta(index, {"type": "signature_delta", "signature": block["signature"]}))
            return out
        out = [self._start(index, {"type": "text", "text": ""})]
        out += [self._delta(index, {"type": "text_delta", "text": p}) for p in _pieces(block["text"], chunks)]
        return out


@dataclass
class _AnthropicText(_AnthropicStream):
    text: str
    chunks: int | Sequence[str] | None
    delay: float
    usage: tuple[int, int]
    thinking: str | None
    stop_reason: str
    ping: bool

    def _blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self.thinking:
            blocks.append({"type": "thinking", "thinking": self.thinking, "signature": "sig_fake"})
        blocks.append({"type": "text", "text": self.text})
        return blocks

    def _block_events(self, index: int, block: dict[str, Any]) -> list[tuple[bytes, float]]:
        return self._text_like_events(index, block, self.chunks)

    def _stop_reason(self) -> str:
        return self.stop_reason


@dataclass
class _AnthropicToolUse(_AnthropicStream):
    calls: list[tuple[str, str, str]]  # (id, name, input json)
    text: str | None
    split: int
    delay: float
    usage: tuple[int, int]
    ping: bool

    def _blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": self.text}] if self.text else []
        blocks += [{"type": "tool_use", "id": cid, "name": name, "input": _loads_or_raw(args)}
                   for cid, name, args in self.calls]
        return blocks

    def _block_events(self, index: int, block: dict[str, Any]) -> list[tuple[bytes, float]]:
        if block["type"] != "tool_use":
            return self._text_like_events(index, block, None)
        args = next(a for cid, _, a in self.calls if cid == block["id"])
        out = [self._start(index, {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}})]
        out += [self._delta(index, {"type": "input_json_delta", "partial_json": f})
                for f in _args_fragments(args, self.split)]
        return out

    def _stop_reason(self) -> str:
        return "tool_use"


# ----- OpenAI Responses
#
# Written from the API's event reference on its own, not from zengate's encoder, so that a mistake
# in one is not hidden by the same mistake in the other.


def _rs_usage(usage: tuple[int, int], reasoning_tokens: int = 0) -> dict[str, Any]:
    return {"input_tokens": usage[0], "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": usage[1], "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": sum(usage)}


class _ResponsesStream(_Streamable):
    """A Responses answer: a list of output items, streamed as the API streams them."""

    usage: tuple[int, int]
    delay: float
    incomplete: str | None

    def _items(self, ids: _Ids) -> list[dict[str, Any]]:
        """The finished output items (ids drawn from ``ids``)."""
        raise NotImplementedError

    def _item_events(self, index: int, item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """``(type, fields)`` of the events between an item's ``added`` and its ``done``."""
        raise NotImplementedError

    def _response(self, req: Recorded, rid: str, created: int, status: str, output: list[dict[str, Any]],
                  usage: dict[str, Any] | None) -> dict[str, Any]:
        body = req.body if isinstance(req.body, dict) else {}
        return {
            "id": rid, "object": "response", "created_at": created, "status": status, "background": False,
            "error": None,
            "incomplete_details": {"reason": self.incomplete} if status == "incomplete" else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": req.model, "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": None, "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0), "truncation": "disabled", "usage": usage, "user": None,
            "metadata": body.get("metadata") or {},
        }

    def _final_status(self) -> str:
        return "incomplete" if self.incomplete else "completed"

    def events(self, req: Recorded, ids: _Ids) -> list[tuple[bytes, float]]:
        rid, created = ids.next("resp_fake"), int(time.time())
        items = self._items(ids)
        frames: list[tuple[bytes, float]] = []

        def emit(kind: str, fields: dict[str, Any], delay: float = 0.0) -> None:
            frames.append((_event({"type": kind, "sequence_number": len(frames), **fields}), delay))

        start = self._response(req, rid, created, "in_progress", [], None)
        emit("response.created", {"response": start})
        emit("response.in_progress", {"response": start})
        for index, item in enumerate(items):
            added = copy.deepcopy(item)
            if item["type"] == "message":
                added.update(status="in_progress", content=[])
            elif item["type"] == "reasoning":
                added["summary"] = []
                added.pop("encrypted_content", None)
            elif item["type"] == "function_call":
                added.update(status="in_progress", arguments="")
            elif item["type"] == "custom_tool_call":
                added["input"] = ""
            emit("response.output_item.added", {"output_index": index, "item": added})
            for kind, fields in self._item_events(index, item):
                emit(kind, {"item_id": item["id"], "output_index": index, **fields},
                     self.delay if kind.endswith(".delta") else 0.0)
            emit("response.output_item.done", {"output_index": index, "item": item})
        final = self._response(req, rid, created, self._final_status(), items, _rs_usage(self.usage))
        emit(f"response.{self._final_status()}", {"response": final})
        return frames

    def body(self, req: Recorded, ids: _Ids) -> dict[str, Any]:
        rid = ids.next("resp_fake")
        return self._response(req, rid, int(time.time()), self._final_status(), self._items(ids),
                              _rs_usage(self.usage))


@dataclass
class _ResponsesText(_ResponsesStream):
    text: str
    chunks: int | Sequence[str] | None
    delay: float
    usage: tuple[int, int]
    reasoning: str | Sequence[str] | None
    encrypted: str | None
    incomplete: str | None

    def _summaries(self) -> list[str]:
        if self.reasoning is None:
            return []
        return [self.reasoning] if isinstance(self.reasoning, str) else list(self.reasoning)

    def _items(self, ids: _Ids) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if self.reasoning is not None or self.encrypted is not None:
            item: dict[str, Any] = {"id": ids.next("rs_fake"), "type": "reasoning",
                                    "summary": [{"type": "summary_text", "text": t} for t in self._summaries()]}
            if self.encrypted is not None:
                item["encrypted_content"] = self.encrypted
            items.append(item)
        items.append({"id": ids.next("msg_fake"), "type": "message", "status": "completed", "role": "assistant",
                      "content": [{"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}]})
        return items

    def _item_events(self, index: int, item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        if item["type"] == "reasoning":
            for n, summary in enumerate(item["summary"]):
                part = {"type": "summary_text", "text": ""}
                out.append(("response.reasoning_summary_part.added", {"summary_index": n, "part": part}))
                out += [("response.reasoning_summary_text.delta", {"summary_index": n, "delta": piece})
                        for piece in _split_words(summary["text"])]
                out.append(("response.reasoning_summary_text.done", {"summary_index": n, "text": summary["text"]}))
                out.append(("response.reasoning_summary_part.done", {"summary_index": n, "part": summary}))
            return out
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        out.append(("response.content_part.added", {"content_index": 0, "part": part}))
        out += [("response.output_text.delta", {"content_index": 0, "delta": piece, "logprobs": []})
                for piece in _pieces(self.text, self.chunks) if piece]
        out.append(("response.output_text.done", {"content_index": 0, "text": self.text, "logprobs": []}))
        out.append(("response.content_part.done", {"content_index": 0, "part": item["content"][0]}))
        return out


@dataclass
class _ResponsesCall(_ResponsesStream):
    kind: str  # function_call | custom_tool_call
    name: str
    payload: str  # the arguments (JSON) or the custom tool's input
    call_id: str
    namespace: str | None
    split: int
    delay: float
    usage: tuple[int, int]
    incomplete: str | None = None

    def _items(self, ids: _Ids) -> list[dict[str, Any]]:
        if self.kind == "function_call":
            item: dict[str, Any] = {"id": ids.next("fc_fake"), "type": "function_call", "status": "completed",
                                    "call_id": self.call_id, "name": self.name, "arguments": self.payload}
        else:
            item = {"id": ids.next("ctc_fake"), "type": "custom_tool_call", "status": "completed",
                    "call_id": self.call_id, "name": self.name, "input": self.payload}
        if self.namespace:
            item["namespace"] = self.namespace
        return [item]

    def _item_events(self, index: int, item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        what = "function_call_arguments" if self.kind == "function_call" else "custom_tool_call_input"
        key = "arguments" if self.kind == "function_call" else "input"
        pieces = [f for f in _args_fragments(self.payload, self.split) if f]
        out = [(f"response.{what}.delta", {"delta": piece}) for piece in pieces]
        out.append((f"response.{what}.done", {key: self.payload}))
        return out


# ----- raw / error / misc


@dataclass
class _Raw(Reply):
    frames: list[bytes]
    delay: float
    status: int = 200

    def send(self, ex: _Exchange) -> None:
        ex.stream([(f, self.delay) for f in self.frames], status=self.status)


@dataclass
class _Full(Reply):
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, ex: _Exchange) -> None:
        ex.full(self.status, self.body, self.content_type, self.headers)


@dataclass
class _Hang(Reply):
    seconds: float
    then: Reply | None

    def send(self, ex: _Exchange) -> None:
        if ex.idle(self.seconds) and self.then is not None:
            self.then.send(ex)
        else:
            ex.close()


def _frames_of(reply: Reply, ex: _Exchange, what: str) -> list[tuple[bytes, float]]:
    """The SSE frames a streaming reply would send (always as a stream)."""
    if isinstance(reply, _Streamable):
        return reply.events(ex.req, ex.ids)
    if isinstance(reply, _Raw):
        return [(f, reply.delay) for f in reply.frames]
    raise TypeError(f"{what}() needs a streaming reply, got {reply!r}")


@dataclass
class _DropAfter(Reply):
    n_events: int
    reply: Reply
    stall: float

    def send(self, ex: _Exchange) -> None:
        frames = _frames_of(self.reply, ex, "drop_after")
        ex.stream(frames[: self.n_events], finish=False)
        if self.stall > 0:
            ex.idle(self.stall)
        ex.close()


@dataclass
class _EndAfter(Reply):
    n_events: int
    reply: Reply

    def send(self, ex: _Exchange) -> None:
        ex.stream(_frames_of(self.reply, ex, "end_after")[: self.n_events])


@dataclass
class _Inject(Reply):
    n_events: int
    reply: Reply
    frame: bytes

    def send(self, ex: _Exchange) -> None:
        frames = _frames_of(self.reply, ex, "inject")
        ex.stream([*frames[: self.n_events], (self.frame, 0.0), *frames[self.n_events:]])


@dataclass
class _BrokenChunk(Reply):
    n_events: int
    reply: Reply
    how: str

    def send(self, ex: _Exchange) -> None:
        frames = _frames_of(self.reply, ex, "broken_chunk")
        if not ex.stream(frames[: self.n_events], finish=False):
            return
        frame = frames[self.n_events][0] if self.n_events < len(frames) else b"data: {}\n\n"
        if self.how == "partial":
            broken = b"%x\r\n%s" % (len(frame), frame[: len(frame) // 2])
        elif self.how == "bad-size":
            broken = b"zz\r\n" + frame + b"\r\n"
        else:
            raise ValueError(f"unknown broken_chunk how={self.how!r}")
        try:
            ex.h.wfile.write(broken)
        except OSError:
            pass
        ex.close()


@dataclass
class _CutBody(Reply):
    reply: Reply
    keep: float
    stall: float = 0.0
    gzipped: bool = False

    def send(self, ex: _Exchange) -> None:
        if not isinstance(self.reply, (_Streamable, _Full)):
            raise TypeError(f"cut_body() needs a JSON reply, got {self.reply!r}")
        if isinstance(self.reply, _Full):
            status, body, ctype = self.reply.status, self.reply.body, self.reply.content_type
        else:
            status, body, ctype = 200, json.dumps(self.reply.body(ex.req, ex.ids)).encode(), "application/json"
        if self.gzipped:
            body = gzip.compress(body)
        h = ex.h
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        if self.gzipped:
            h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            h.wfile.write(body[: int(len(body) * self.keep)])
            h.wfile.flush()
        except OSError:
            pass
        if self.keep >= 1:
            return  # the whole body: a normal answer
        if self.stall:
            ex.idle(self.stall)
        ex.close()


def openai_text(
    text: str = "Hello from upstream",
    *,
    chunks: int | Sequence[str] | None = None,
    delay: float = 0.0,
    usage: tuple[int, int] = (10, 5),
    reasoning: str | None = None,
    cost_frame: bool | str = True,
    finish: str = "stop",
) -> Reply:
    """OpenAI chat completion (SSE chunks if the request streams, else JSON).

    ``chunks``: None = split on words, int = exactly that many pieces, or explicit pieces.
    ``delay`` is slept after every reasoning/content chunk.  The usage chunk is sent only
    if the request asked ``stream_options.include_usage``; ``cost_frame`` (True or a cost
    string) adds Zen's ``data: {"cost": ...}`` frame after ``[DONE]``.
    """
    return _OpenAIText(text, chunks, delay, usage, reasoning, cost_frame, finish)


def _norm_calls(calls: Sequence[tuple[Any, ...]], prefix: str) -> list[tuple[str, str, str]]:
    out = []
    for i, call in enumerate(calls):
        name, args = call[0], _args_str(call[1])
        out.append((call[2] if len(call) > 2 else f"{prefix}{i}", name, args))
    return out


def openai_tool_calls(
    calls: Sequence[tuple[str, str | dict[str, Any]] | tuple[str, str | dict[str, Any], str]],
    *,
    interleave: bool = False,
    split: int = 3,
    delay: float = 0.0,
    usage: tuple[int, int] = (10, 5),
    cost_frame: bool | str = True,
) -> Reply:
    """OpenAI tool calls; ``calls`` are ``(name, arguments_json[, id])``, ids default ``call_<index>``.

    Streamed as ``tool_calls`` deltas by index: id/type/name only in the first fragment,
    arguments in ``split`` fragments; ``interleave`` alternates fragments of parallel calls.
    finish_reason is ``"tool_calls"``.
    """
    return _OpenAIToolCalls(_norm_calls(calls, "call_"), interleave, split, delay, usage, cost_frame)


def openai_raw(events: Sequence[str | bytes | dict[str, Any]], delay: float = 0.0, *, status: int = 200) -> Reply:
    """Stream exactly these frames: str/dict -> ``data: <payload>\\n\\n``, bytes -> sent verbatim.

    Nothing is added (no ``[DONE]``); the chunked body then ends cleanly (EOF).
    """
    return _Raw([e if isinstance(e, bytes) else _data(e) for e in events], delay, status)


def anthropic_text(
    text: str = "Hello from upstream",
    *,
    chunks: int | Sequence[str] | None = None,
    delay: float = 0.0,
    usage: tuple[int, int] = (10, 5),
    thinking: str | None = None,
    stop_reason: str = "end_turn",
    ping: bool = True,
) -> Reply:
    """Anthropic message (event stream if the request streams, else message JSON).

    ``thinking`` adds a thinking block (with signature ``"sig_fake"``) before the text block.
    """
    return _AnthropicText(text, chunks, delay, usage, thinking, stop_reason, ping)


def anthropic_tool_use(
    calls: Sequence[tuple[str, str | dict[str, Any]] | tuple[str, str | dict[str, Any], str]],
    *,
    text: str | None = None,
    split: int = 3,
    delay: float = 0.0,
    usage: tuple[int, int] = (10, 5),
    ping: bool = True,
) -> Reply:
    """Anthropic tool_use blocks; ``calls`` are ``(name, input_json[, id])``, ids default ``toolu_<index>``.

    Optional leading text block; input streamed as ``input_json_delta`` in ``split``
    fragments; stop_reason ``"tool_use"``.
    """
    return _AnthropicToolUse(_norm_calls(calls, "toolu_"), text, split, delay, usage, ping)


def responses_text(
    text: str = "Hello from upstream",
    *,
    chunks: int | Sequence[str] | None = None,
    delay: float = 0.0,
    usage: tuple[int, int] = (10, 5),
    reasoning: str | Sequence[str] | None = None,
    encrypted: str | None = None,
    incomplete: str | None = None,
) -> Reply:
    """An OpenAI Responses answer: a message with one ``output_text`` part (Responses events if the
    request streams, else the ``response`` object).

    ``reasoning`` (one summary or several) and/or ``encrypted`` (its ``encrypted_content``, sent only
    in ``output_item.done`` and the final response) add a reasoning item before the message.
    ``incomplete`` (e.g. ``"max_output_tokens"``) ends with ``response.incomplete`` and that reason
    instead of ``response.completed``. Every event carries ``sequence_number`` from 0.
    """
    return _ResponsesText(text, chunks, delay, usage, reasoning, encrypted, incomplete)


def responses_function_call(
    name: str,
    arguments: str | dict[str, Any],
    *,
    call_id: str = "call_fake_0",
    namespace: str | None = None,
    split: int = 3,
    delay: float = 0.0,
    usage: tuple[int, int] = (10, 5),
) -> Reply:
    """A Responses ``function_call`` item (arguments streamed in ``split`` fragments), with ``namespace``
    when given; the answer's status is ``completed``, as the API's is after a call."""
    return _ResponsesCall("function_call", name, _args_str(arguments), call_id, namespace, split, delay, usage)


def responses_custom_tool_call(
    name: str,
    input: str,
    *,
    call_id: str = "call_fake_0",
    namespace: str | None = None,
    split: int = 3,
    delay: float = 0.0,
    usage: tuple[int, int] = (10, 5),
) -> Reply:
    """A Responses ``custom_tool_call`` item (free-form ``input``, e.g. an apply_patch patch, streamed in
    ``split`` fragments of ``custom_tool_call_input.delta``)."""
    return _ResponsesCall("custom_tool_call", name, input, call_id, namespace, split, delay, usage)


def anthropic_raw(
    events: Sequence[str | bytes | dict[str, Any] | tuple[str, str | dict[str, Any]]],
    delay: float = 0.0,
    *,
    status: int = 200,
) -> Reply:
    """Stream exactly these frames in Anthropic's format.

    dict (or JSON str with a ``"type"``) -> ``event: <type>\\ndata: <json>\\n\\n``;
    ``(event, data)`` tuple -> that event name; other str -> ``data: <str>\\n\\n``;
    bytes -> verbatim.
    """
    frames: list[bytes] = []
    for e in events:
        if isinstance(e, bytes):
            frames.append(e)
        elif isinstance(e, tuple):
            data = e[1] if isinstance(e[1], str) else json.dumps(e[1])
            frames.append(f"event: {e[0]}\ndata: {data}\n\n".encode())
        elif isinstance(e, dict):
            frames.append(_event(e))
        else:
            try:
                parsed = json.loads(e)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and isinstance(parsed.get("type"), str):
                frames.append(f"event: {parsed['type']}\ndata: {e}\n\n".encode())
            else:
                frames.append(_data(e))
    return _Raw(frames, delay, status)


def error(
    status: int,
    message: str = "Upstream error",
    *,
    type: str = "rate_limit_error",
    headers: dict[str, str] | None = None,
    shape: str = "zen",
    code: str | None = None,
) -> Reply:
    """An error answer with ``status``.

    shape="zen":    ``{"type": "error", "error": {"type", "message"}}``
    shape="openai": ``{"error": {"message", "type", "code"}}`` (code defaults to ``type``)
    """
    if shape == "zen":
        payload: dict[str, Any] = {"type": "error", "error": {"type": type, "message": message}}
    elif shape == "openai":
        payload = {"error": {"message": message, "type": type, "code": code if code is not None else type}}
    else:
        raise ValueError(f"unknown error shape {shape!r}")
    return _Full(status, json.dumps(payload).encode(), "application/json", dict(headers or {}))


def hang(seconds: float, then: Reply | None = None) -> Reply:
    """Read the request, send nothing for ``seconds``, then close (or send ``then``).

    Ends early (counted in ``aborted_hangs``) if the client closes the connection.
    """
    return _Hang(seconds, then)


def drop_after(n_events: int, reply: Reply, *, stall: float = 0.0) -> Reply:
    """Stream the first ``n_events`` frames of ``reply`` (always as a stream), optionally
    stay silent for ``stall`` seconds, then close the socket without ending the chunked body.
    """
    return _DropAfter(n_events, reply, stall)


def html(status: int = 200, body: str = "<html><body><h1>Bad Gateway</h1></body></html>") -> Reply:
    """An HTML page (e.g. a proxy/CDN error page)."""
    return _Full(status, body.encode(), "text/html; charset=utf-8")


def garbage(body: bytes = b"\x00\x9f{not json at all", *, status: int = 200,
            content_type: str = "application/json") -> Reply:
    """A complete answer (with ``Content-Length``) whose body is ``body`` verbatim, whatever the
    request asked for: by default a 200 that claims JSON and is not."""
    return _Full(status, body, content_type)


def end_after(n_events: int, reply: Reply) -> Reply:
    """Stream the first ``n_events`` frames of ``reply`` (always as a stream), then end the chunked
    body cleanly: a stream that stops without ``[DONE]`` / ``message_stop``."""
    return _EndAfter(n_events, reply)


def inject(n_events: int, reply: Reply, frame: bytes = b"data: {this is not json\n\n") -> Reply:
    """Stream ``reply`` (always as a stream) with ``frame`` written verbatim, as its own chunk,
    after its first ``n_events`` frames (by default a ``data:`` line that is not JSON)."""
    return _Inject(n_events, reply, frame)


def broken_chunk(n_events: int, reply: Reply, *, how: str = "partial") -> Reply:
    """Stream the first ``n_events`` frames of ``reply``, then break the chunked encoding and close.

    how="partial":  the next chunk's size line promises the whole frame, half of it is sent.
    how="bad-size": the next chunk's size line is not hexadecimal (``zz``).
    """
    return _BrokenChunk(n_events, reply, how)


def cut_body(reply: Reply, keep: float = 0.5, *, stall: float = 0.0) -> Reply:
    """A non-streaming answer (``reply``'s JSON body, or an ``error()``/``garbage()`` body) whose
    ``Content-Length`` promises the whole body; only the first ``keep`` fraction is sent, then,
    after ``stall`` seconds of silence, the connection closes."""
    return _CutBody(reply, keep, stall)


def gzipped(reply: Reply) -> Reply:
    """``reply``'s JSON body (as :func:`cut_body` takes it), whole, sent with ``Content-Encoding: gzip``."""
    return _CutBody(reply, 1.0, gzipped=True)


# --------------------------------------------------------------------------- server


class _Ids:
    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    def next(self, prefix: str) -> str:
        with self._lock:
            self._n += 1
            return f"{prefix}-{self._n}"


class _Exchange:
    """One request being answered; helpers used by replies."""

    def __init__(self, handler: _Handler, up: FakeUpstream, req: Recorded) -> None:
        self.h, self.up, self.req, self.ids = handler, up, req, up._ids

    def full(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        h = self.h
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def full_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.full(status, json.dumps(payload).encode(), "application/json", headers)

    def stream(self, frames: Iterable[tuple[bytes, float]], *, status: int = 200, finish: bool = True) -> bool:
        """Write SSE frames, each flushed as its own chunk. Returns False on client disconnect."""
        h = self.h
        chunked = h.request_version != "HTTP/1.0"
        try:
            h.send_response(status)
            h.send_header("Content-Type", "text/event-stream")
            h.send_header("Cache-Control", "no-cache")
            h.send_header("Transfer-Encoding" if chunked else "Connection", "chunked" if chunked else "close")
            h.end_headers()
            for frame, delay in frames:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame) if chunked else frame)
                if delay > 0 and self.up._stopping.wait(delay):
                    raise ConnectionAbortedError("fake upstream stopping")
            if finish:
                if chunked:
                    h.wfile.write(b"0\r\n\r\n")
                self.up._bump("completed_streams")
            return True
        except OSError:  # BrokenPipe / ConnectionReset: the client went away
            h.close_connection = True
            if not self.up._stopping.is_set():
                self.up._bump("disconnects")
            return False

    def idle(self, seconds: float) -> bool:
        """Send nothing for ``seconds``. False if the client went away (or server stopping)."""
        sock = self.h.connection
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.up._stopping.is_set():
                return False
            poller = select.poll()  # not select(): fds above 1024 under a burst
            poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
            if not poller.poll(remaining * 1000):
                continue
            try:
                data = sock.recv(1, socket.MSG_PEEK)
            except OSError:
                data = b""
            if not data:
                if not self.up._stopping.is_set():
                    self.up._bump("aborted_hangs")
                return False
            # Client sent more bytes (pipelining): nothing to detect; just wait out the rest.
            self.up._stopping.wait(max(0.0, deadline - time.monotonic()))
        return not self.up._stopping.is_set()

    def close(self) -> None:
        """Close the connection now (FIN), without completing any response."""
        self.h.close_connection = True
        try:
            self.h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.up._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.up._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        up = self.server.up
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        parts = urlsplit(self.path)
        req = Recorded(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=Headers(self.headers.items()),
            body=body,
            raw=raw,
            client=(self.client_address[0], self.client_address[1]),
            at=time.monotonic(),
        )
        reply = up._record(req)
        ex = _Exchange(self, up, req)
        try:
            (reply or up._default_reply(req, raw)).send(ex)
        except _DISCONNECT_ERRORS:
            self.close_connection = True
        except Exception as exc:
            up._record_error(exc)
            raise
        finally:
            up._bump("handled")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 2048
    up: FakeUpstream

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's reverse-DNS lookup (getfqdn).
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # client went away / server stopping
        super().handle_error(request, client_address)


class FakeUpstream:
    """Scriptable fake OpenCode Zen server (see module docstring)."""

    url: str
    requests: list[Recorded]
    models: list[dict[str, Any]]
    models_status: int
    disconnects: int
    completed_streams: int
    aborted_hangs: int
    handled: int
    errors: list[BaseException]

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._ids = _Ids()
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.requests = []
        self.errors = []
        self._scripts: dict[str, deque[Reply]] = {}
        self.reset()

    # ----- lifecycle

    def start(self) -> FakeUpstream:
        """Bind 127.0.0.1:0 and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.up = self
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-upstream", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- scripting & state

    def script(self, model: str, *steps: Reply) -> None:
        """Queue replies (FIFO) for requests whose JSON ``model`` equals ``model``.

        ``ANY_MODEL`` (``"*"``) queues for requests whose model has no queued reply.
        """
        with self._cond:
            self._scripts.setdefault(model, deque()).extend(steps)

    def pending(self, model: str | None = None) -> int:
        """Scripted replies not yet consumed (for one model, or all)."""
        with self._cond:
            if model is not None:
                return len(self._scripts.get(model, ()))
            return sum(len(q) for q in self._scripts.values())

    def reset(self) -> None:
        """Forget requests, scripts and counters; restore default models/status."""
        with self._cond:
            self.requests.clear()
            self.errors.clear()
            self._scripts.clear()
            self.models = copy.deepcopy(DEFAULT_MODELS)
            self.models_status = 200
            self.disconnects = 0
            self.completed_streams = 0
            self.aborted_hangs = 0
            self.handled = 0
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` is truthy (re-checked on every state change)."""
        with self._cond:
            return bool(self._cond.wait_for(predicate, timeout))

    def received(self, path: str | None = None, model: str | None = None) -> list[Recorded]:
        """Snapshot of recorded requests, optionally filtered by path suffix / model."""
        with self._cond:
            return [
                r for r in self.requests
                if (path is None or r.path.endswith(path)) and (model is None or r.model == model)
            ]

    # ----- internals

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._cond:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _bump(self, counter: str) -> None:
        with self._cond:
            setattr(self, counter, getattr(self, counter) + 1)
            self._cond.notify_all()

    def _record_error(self, exc: BaseException) -> None:
        with self._cond:
            self.errors.append(exc)
            self._cond.notify_all()

    def _record(self, req: Recorded) -> Reply | None:
        """Append ``req`` and pop its scripted reply (None -> default behaviour)."""
        with self._cond:
            self.requests.append(req)
            reply = None
            keys = (req.model, ANY_MODEL) if isinstance(req.model, str) else ()  # never GET /models
            for key in keys:
                queue = self._scripts.get(key)
                if queue:
                    reply = queue.popleft()
                    break
            self._cond.notify_all()
            return reply

    def _default_reply(self, req: Recorded, raw: bytes) -> Reply:
        path = req.path.rstrip("/")
        if req.method == "GET" and path.endswith("/models"):
            with self._cond:
                status, models = self.models_status, copy.deepcopy(self.models)
            if status != 200:
                return error(status, "models unavailable", type="api_error")
            return _Full(200, json.dumps({"object": "list", "data": models}).encode(), "application/json")
        if req.method == "POST" and path.endswith("/messages/count_tokens"):
            return _Full(200, json.dumps({"input_tokens": max(1, len(req.raw) // 4)}).encode(),
                         "application/json")
        if req.method == "POST" and path.endswith("/responses/input_tokens"):
            count = {"object": "response.input_tokens", "input_tokens": max(1, len(req.raw) // 4)}
            return _Full(200, json.dumps(count).encode(), "application/json")
        if req.method == "POST" and path.endswith(("/chat/completions", "/messages", "/responses")):
            if not isinstance(req.body, dict):
                return error(400, "request body must be a JSON object", type="invalid_request_error")
            if path.endswith("/responses"):
                return responses_text()
            return openai_text() if path.endswith("/chat/completions") else anthropic_text()
        return error(404, f"Not Found: {req.method} {req.path}", type="not_found_error")


@contextmanager
def running_upstream() -> Iterator[FakeUpstream]:
    """Yield a started ``FakeUpstream``; stop it afterwards."""
    up = FakeUpstream().start()
    try:
        yield up
    finally:
        up.stop()
