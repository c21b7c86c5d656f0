"""OpenAI chat streams to and from the internal form, and passed through.

:class:`Decoder` turns an upstream's ``chat.completion.chunk`` objects into form events;
:class:`Chunks` turns form events into the chunks an OpenAI client reads (:class:`Encoder` writes
them as SSE bytes); :class:`Passthrough` forwards an OpenAI upstream's stream to an OpenAI client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ...exchange.form import FormEvent
from ..anthropic.shapes import GATEWAY_SIGNATURE, STATUS_FOR_TYPE, error_event_failure
from ..anthropic.shapes import error_body as anthropic_error_body
from ..anthropic.stream import ENDED_EARLY, error_message, event_json
from ..base import Context, Notes
from ..sse import DONE, Event, encode_data
from ..translate_common import (
    USAGE_KEYS,
    anthropic_usage,
    dump_json,
    finish_reason_for,
    is_context_length_error,
    merge_usage,
    new_id,
    openai_usage,
    prompt_too_long_message,
    reasoning_of,
    stop_reason_for,
)
from .shapes import error_body as openai_error_body


def _message_shell(message_id: str, client_model: str) -> dict:
    return {"id": message_id, "type": "message", "role": "assistant", "model": client_model, "content": [],
            "stop_reason": None, "stop_sequence": None}


def _completion_id(anthropic_id: Any) -> str:
    if isinstance(anthropic_id, str) and anthropic_id:
        return "chatcmpl-" + anthropic_id.removeprefix("msg_")
    return new_id("chatcmpl-")


# --- an upstream's chunks -> form events -------------------------------------------------------------

@dataclass
class _Call:
    """One upstream tool call being assembled from its fragments."""

    key: int
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    emitted: bool = False  # its content_block_start has gone out

    def is_complete(self) -> bool:
        """Arguments already form a JSON object: any further fragment could only break them."""
        text = "".join(self.arguments).strip()
        if not text.endswith("}"):
            return False
        try:
            return isinstance(json.loads(text), dict)
        except ValueError:
            return False


def _error_event(status: int, message: str, type_: str | None = None) -> tuple[str, dict]:
    if is_context_length_error(status, message):
        return "error", anthropic_error_body(400, prompt_too_long_message(message), "invalid_request_error")
    return "error", anthropic_error_body(status, message, type_)


def _upstream_error(chunk: dict) -> tuple[int, str, str | None]:
    """Status, message and Anthropic error type of an error object found inside an OpenAI stream.

    The status comes from ``error.code`` or ``error.status`` when numeric (OpenRouter-style),
    else from an Anthropic-style ``error.type``, else 500.
    """
    err = chunk.get("error")
    if not isinstance(err, dict):
        return 500, f"upstream error: {err}", None
    message = err.get("message") if isinstance(err.get("message"), str) else dump_json(err)
    kind = err.get("type") if isinstance(err.get("type"), str) else None
    status = next((v for v in (err.get("code"), err.get("status"))
                   if isinstance(v, int) and not isinstance(v, bool) and 400 <= v < 600), None)
    if status is None:
        rate_limited = "rate_limit" in f"{kind} {err.get('code')}"
        status = STATUS_FOR_TYPE.get(kind or "") or (429 if rate_limited else 500)
    return status, message, kind if kind in STATUS_FOR_TYPE else None


class Decoder:
    """An OpenAI-protocol upstream's ``chat.completion.chunk`` objects in, form events out.

    Event order guaranteed: ``message_start`` first (once); content blocks indexed from 0 with no
    gaps, each ``content_block_stop`` before the next ``content_block_start``; then
    ``message_delta`` and ``message_stop`` last. An ``error`` event ends the stream instead.
    Nothing is produced after ``message_stop`` or ``error``.

    Text and thinking stream live; a text block is only opened once it has non-blank text, so no
    whitespace-only text block ever reaches the client. A thinking block ends as Anthropic's do: a
    ``signature_delta`` (the gateway's signature, see
    :func:`~zengate.dialects.anthropic.is_gateway_signature`) just before its ``content_block_stop``.

    Tool calls are keyed by their OpenAI ``index`` (an index reused with a new id is a new call)
    and at most one of them is *live* - streaming in the open block, each argument fragment
    forwarded as an ``input_json_delta``. A call becomes live when a fragment for it arrives (it
    needs its name) and no call is live. The live block is closed only when another call's
    fragment arrives *and* the live call's arguments already parse as a JSON object - the one
    point where no valid fragment can still follow - so sequential calls (what OpenAI and most
    upstreams send) all stream live. When fragments interleave, the other calls are accumulated
    instead; once the live call is complete they are emitted in order of appearance with
    everything they have so far (a complete one closed at once, the first incomplete one
    becoming live), and whatever is still waiting when the answer ends is emitted whole (start,
    one ``input_json_delta``, stop). Block order therefore never breaks, whatever the order of
    the fragments. Text or thinking arriving after
    the first tool fragment is held and emitted after the tool blocks.

    The end is held until usage is known: on ``finish_reason`` it waits for a chunk carrying
    ``usage`` (or :meth:`finish`), then closes everything, sends ``message_delta`` (stop reason,
    ``tool_use`` whenever a tool call was emitted; usage) and ``message_stop``. A stream that ends
    without any ``finish_reason`` yields an ``error`` event, never an invented ``end_turn``.
    """

    def __init__(self, context: Context, *, message_id: str | None = None):
        self._model = context.client_model
        self._names = context.names
        self._id = message_id or new_id("msg_")
        self._estimate = max(0, int(context.input_estimate or 0))
        self._started = False
        self._done = False
        self._next_index = 0
        self._open: str | None = None  # "text" | "thinking" | "tool" while a block is open
        self._pending_blank = ""  # whitespace waiting for the text that would justify a block
        self._calls: dict[int, _Call] = {}
        self._aliases: dict[int, int] = {}  # OpenAI index -> call key (an index may be reused)
        self._last_key: int | None = None
        self._live_key: int | None = None
        self._tools_seen = False
        self._held: list[list[str]] = []  # [kind, text] arriving after the first tool fragment
        self._finish_reason: str | None = None
        self._usage: dict | None = None
        self._emitted_tool = False
        self._text: list[str] = []
        self._output_chars = 0

    # -- public -----------------------------------------------------------------------------

    @property
    def usage(self) -> dict:
        """Usage as reported upstream (Anthropic fields); estimates where none was reported."""
        if self._usage is not None:
            return dict(self._usage)
        return {"input_tokens": self._estimate, "output_tokens": -(-self._output_chars // 4),
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}

    @property
    def usage_reported(self) -> bool:
        return self._usage is not None

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def done(self) -> bool:
        """True once ``message_stop`` or an ``error`` event has been produced."""
        return self._done

    def start(self) -> list[tuple[str, dict]]:
        """``message_start`` now, if not sent yet (for sending it before the first chunk)."""
        out: list[tuple[str, dict]] = []
        if not self._done:
            self._start(out)
        return out

    def feed(self, event: Event) -> list[tuple[str, dict]]:
        """One SSE event of the upstream's stream (``[DONE]`` ends it)."""
        if event.data == DONE:
            return self.finish()
        chunk = event_json(event)
        return self.feed_chunk(chunk) if chunk is not None else []

    def feed_chunk(self, chunk: dict) -> list[tuple[str, dict]]:
        """Translate one parsed OpenAI ``data:`` object."""
        if self._done or not isinstance(chunk, dict):
            return []
        if chunk.get("error") is not None or chunk.get("type") == "error":
            status, message, type_ = _upstream_error(chunk)
            return self._fail(status, message, type_)
        out: list[tuple[str, dict]] = []
        self._start(out)
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage:
            self._usage = anthropic_usage(usage)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            reasoning = reasoning_of(delta)
            if reasoning:
                self._on_content(out, "thinking", reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self._on_content(out, "text", content)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self._on_content(out, "text", refusal)
            fragments = delta.get("tool_calls")
            if isinstance(fragments, list):
                for position, fragment in enumerate(fragments):
                    if isinstance(fragment, dict):
                        self._on_tool_fragment(out, fragment, position)
            finish_reason = choice.get("finish_reason")
            if finish_reason and isinstance(finish_reason, str):
                self._finish_reason = finish_reason
        if self._finish_reason and isinstance(usage, dict) and usage:
            self._close(out)
        return out

    def finish(self) -> list[tuple[str, dict]]:
        """The upstream stream ended (``[DONE]`` or EOF)."""
        if self._done:
            return []
        if not self._finish_reason:
            return self._fail(502, "the upstream stream ended before the answer was finished")
        out: list[tuple[str, dict]] = []
        self._start(out)
        self._close(out)
        return out

    def fail(self, status: int, message: str) -> list[tuple[str, dict]]:
        """A transport failure mid-stream: one ``error`` event, then nothing more."""
        if self._done:
            return []
        return self._fail(status, message)

    # -- internals ----------------------------------------------------------------------------

    def _fail(self, status: int, message: str, type_: str | None = None) -> list[tuple[str, dict]]:
        self._done = True
        return [_error_event(status, message, type_)]

    def _start(self, out: list) -> None:
        if self._started:
            return
        self._started = True
        message = _message_shell(self._id, self._model)
        message["usage"] = {"input_tokens": self._estimate, "output_tokens": 0,
                            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        out.append(("message_start", {"type": "message_start", "message": message}))

    def _open_block(self, out: list, kind: str, block: dict) -> int:
        self._close_block(out)
        index = self._next_index
        self._next_index += 1
        self._open = kind
        out.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        return index

    def _close_block(self, out: list) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            self._delta(out, {"type": "signature_delta", "signature": GATEWAY_SIGNATURE})
        out.append(("content_block_stop", {"type": "content_block_stop", "index": self._next_index - 1}))
        self._open = None

    def _delta(self, out: list, delta: dict) -> None:
        out.append(("content_block_delta", {"type": "content_block_delta", "index": self._next_index - 1,
                                             "delta": delta}))

    def _on_content(self, out: list, kind: str, text: str) -> None:
        self._output_chars += len(text)
        if kind == "text":
            self._text.append(text)
        if self._tools_seen:
            if self._held and self._held[-1][0] == kind:
                self._held[-1][1] += text
            else:
                self._held.append([kind, text])
            return
        self._emit_content(out, kind, text)

    def _emit_content(self, out: list, kind: str, text: str) -> None:
        if kind == "thinking":
            self._pending_blank = ""
            if self._open != "thinking":
                self._open_block(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
            self._delta(out, {"type": "thinking_delta", "thinking": text})
            return
        if self._open != "text":
            if not text.strip():
                self._pending_blank += text
                return
            text, self._pending_blank = self._pending_blank + text, ""
            self._open_block(out, "text", {"type": "text", "text": ""})
        self._delta(out, {"type": "text_delta", "text": text})

    def _call_for(self, fragment: dict, position: int) -> _Call:
        index = fragment.get("index")
        fragment_id = fragment.get("id") if isinstance(fragment.get("id"), str) and fragment["id"] else None
        if not isinstance(index, int):
            if fragment_id is None and self._last_key is not None:
                return self._calls[self._last_key]
            index = position
        key = self._aliases.get(index)
        call = self._calls.get(key) if key is not None else None
        if call is not None and fragment_id and call.id and fragment_id != call.id:
            call = None  # a new call reusing the index (some upstreams number every call 0)
        if call is None:
            key = len(self._calls)
            call = _Call(key)
            self._calls[key] = call
            self._aliases[index] = key
        self._last_key = call.key
        return call

    def _on_tool_fragment(self, out: list, fragment: dict, position: int) -> None:
        self._tools_seen = True
        call = self._call_for(fragment, position)
        if isinstance(fragment.get("id"), str) and fragment["id"] and not call.id:
            call.id = fragment["id"]
        function = fragment.get("function") if isinstance(fragment.get("function"), dict) else {}
        name = function.get("name")
        if isinstance(name, str) and name and not call.name:
            call.name = name
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = dump_json(arguments)
        if arguments:
            call.arguments.append(arguments)
            self._output_chars += len(arguments)
        if call.key == self._live_key:
            if arguments:
                self._delta(out, {"type": "input_json_delta", "partial_json": arguments})
            return
        if self._live_key is not None and self._calls[self._live_key].is_complete():
            self._close_block(out)
            self._live_key = None
        if self._live_key is None:
            self._promote(out)
        # otherwise accumulated; a fragment for a call already closed (complete JSON) is dropped

    def _promote(self, out: list) -> None:
        """Emit waiting calls in order of appearance; complete ones are closed at once, the first
        incomplete one stays open as the live call."""
        for call in self._calls.values():
            if call.emitted or not call.name:
                continue
            self._start_tool(out, call)
            if call.arguments:
                self._delta(out, {"type": "input_json_delta", "partial_json": "".join(call.arguments)})
            if not call.is_complete():
                self._live_key = call.key
                return
            self._close_block(out)

    def _start_tool(self, out: list, call: _Call) -> None:
        self._pending_blank = ""
        self._emitted_tool = True
        call.emitted = True
        block = {"type": "tool_use", "id": self._names.id_in(call.id, salt=f"{self._id}:{call.key}"),
                 "name": self._names.name_in(call.name or ""), "input": {}}
        self._open_block(out, "tool", block)

    def _close(self, out: list) -> None:
        self._close_block(out)
        for call in self._calls.values():
            if call.emitted or not call.name:
                continue  # already out; a call that never got a name cannot be
            self._start_tool(out, call)
            arguments = "".join(call.arguments)
            if arguments.strip():
                self._delta(out, {"type": "input_json_delta", "partial_json": arguments})
            self._close_block(out)
        for kind, text in self._held:
            self._emit_content(out, kind, text)
        self._close_block(out)
        usage = self.usage
        delta = {"stop_reason": stop_reason_for(self._finish_reason, has_tool_use=self._emitted_tool),
                 "stop_sequence": None}
        out.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(("message_stop", {"type": "message_stop"}))
        self._done = True


# --- form events -> an OpenAI client's chunks --------------------------------------------------------

def _index(data: dict) -> int | None:
    """A content block's index (None when missing or not a number: such a block is no tool call)."""
    index = data.get("index")
    return index if isinstance(index, int) else None


def _error_chunk(status: int, message: str) -> dict:
    """``{"error": {"message", "type", "code", "param"}}``; context overflows get OpenAI's code."""
    if is_context_length_error(status, message):
        return openai_error_body(400, message, code="context_length_exceeded")
    return openai_error_body(status, message)


class Chunks:
    """Form events in, OpenAI ``chat.completion.chunk`` objects out (``[DONE]`` as the string).

    Order: a role chunk (``{"role": "assistant", "content": ""}``) first; content, reasoning
    (``reasoning_content``) and tool-call chunks (id and name only in a call's first fragment;
    a call whose input stayed empty gets ``"{}"`` as arguments); one finish chunk on
    ``message_delta``; on ``message_stop`` the usage chunk (``choices: []``, only when
    ``include_usage``) and then the string ``"[DONE]"``. Content arriving after ``message_delta`` is
    dropped (nothing follows the finish reason); ``message_stop`` without ``message_delta`` still
    finishes (``tool_calls`` when a call was sent, else ``stop``).

    An Anthropic ``error`` event (or :meth:`fail`, or a stream ending before ``message_delta``)
    gives one ``{"error": {...}}`` chunk and nothing more - no ``[DONE]``, which would tell the
    client the answer was complete. The OpenAI SDKs raise on that error chunk.
    """

    def __init__(self, context: Context, *, completion_id: str | None = None, created: int | None = None):
        self._model = context.client_model
        self._include_usage = context.include_usage
        self._id = completion_id
        self._created = int(time.time()) if created is None else created
        self._started = False
        self._done = False
        self._finished = False
        self._tool_blocks: dict[int, list] = {}  # block index -> [call index, arguments seen]
        self._tool_count = 0
        self._usage: dict = {}
        self._text: list[str] = []

    # -- public -----------------------------------------------------------------------------

    @property
    def usage(self) -> dict:
        """Anthropic usage seen so far (input, output, cache tokens)."""
        return {key: self._usage.get(key, 0) for key in USAGE_KEYS}

    @property
    def openai_usage(self) -> dict:
        return openai_usage(self._usage)

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def done(self) -> bool:
        """True once ``[DONE]`` or an error chunk has been produced."""
        return self._done

    def feed(self, event: str, data: dict) -> list[dict | str]:
        """Translate one Anthropic event (its name and parsed data)."""
        if self._done or not isinstance(data, dict):
            return []
        kind = data.get("type") or event
        if kind == "error":
            return self._fail(*error_event_failure(data))
        if kind == "ping":
            return []
        out: list[dict | str] = []
        if kind == "message_start":
            message = data.get("message") if isinstance(data.get("message"), dict) else {}
            if self._id is None:
                self._id = _completion_id(message.get("id"))
            merge_usage(self._usage, message.get("usage"))
        self._start(out)
        if self._finished and kind != "message_stop" and kind != "message_delta":
            return out  # content after the stop reason: OpenAI clients expect none after finish_reason
        if kind == "content_block_start":
            self._on_block_start(out, data)
        elif kind == "content_block_delta":
            self._on_block_delta(out, data)
        elif kind == "content_block_stop":
            self._on_block_stop(out, data)
        elif kind == "message_delta":
            merge_usage(self._usage, data.get("usage"))
            if not self._finished:
                delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
                finish = finish_reason_for(delta.get("stop_reason"), has_tool_calls=self._tool_count > 0)
                out.append(self._chunk({}, finish))
                self._finished = True
        elif kind == "message_stop":
            self._end(out)
        return out

    def finish(self) -> list[dict | str]:
        """The upstream stream ended. Complete when the stop reason was seen, else an error."""
        if self._done:
            return []
        if not self._finished:
            return self._fail(502, "the upstream stream ended before the answer was finished")
        out: list[dict | str] = []
        self._end(out)
        return out

    def fail(self, status: int, message: str) -> list[dict | str]:
        """A transport failure mid-stream: one error chunk, then nothing more."""
        if self._done:
            return []
        return self._fail(status, message)

    # -- internals ----------------------------------------------------------------------------

    def _fail(self, status: int, message: str) -> list[dict | str]:
        self._done = True
        return [_error_chunk(status, message)]

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    def _start(self, out: list) -> None:
        if self._started:
            return
        self._started = True
        if self._id is None:
            self._id = new_id("chatcmpl-")
        out.append(self._chunk({"role": "assistant", "content": ""}))

    def _on_block_start(self, out: list, data: dict) -> None:
        block = data.get("content_block") if isinstance(data.get("content_block"), dict) else {}
        kind = block.get("type")
        if kind == "tool_use":
            call_index = self._tool_count
            self._tool_count += 1
            self._tool_blocks[_index(data)] = [call_index, False]
            call = {"index": call_index, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name") or "", "arguments": ""}}
            out.append(self._chunk({"tool_calls": [call]}))
            initial = block.get("input")
            if isinstance(initial, dict) and initial:  # some servers put the whole input here
                self._arguments(out, _index(data), dump_json(initial))
        elif kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            self._text.append(block["text"])
            out.append(self._chunk({"content": block["text"]}))
        elif kind == "thinking" and isinstance(block.get("thinking"), str) and block["thinking"]:
            out.append(self._chunk({"reasoning_content": block["thinking"]}))

    def _arguments(self, out: list, block_index: Any, fragment: str) -> None:
        entry = self._tool_blocks.get(block_index)
        if entry is None or not fragment:
            return
        entry[1] = True
        out.append(self._chunk({"tool_calls": [{"index": entry[0], "function": {"arguments": fragment}}]}))

    def _on_block_delta(self, out: list, data: dict) -> None:
        delta = data.get("delta") if isinstance(data.get("delta"), dict) else {}
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
            self._text.append(delta["text"])
            out.append(self._chunk({"content": delta["text"]}))
        elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str) and delta["thinking"]:
            out.append(self._chunk({"reasoning_content": delta["thinking"]}))
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            self._arguments(out, _index(data), delta["partial_json"])
        # signature_delta, citations_delta: nothing OpenAI clients can use

    def _on_block_stop(self, out: list, data: dict) -> None:
        entry = self._tool_blocks.get(_index(data))
        if entry is not None and not entry[1]:
            self._arguments(out, _index(data), "{}")

    def _end(self, out: list) -> None:
        if not self._finished:  # message_stop without message_delta: no stop reason known
            out.append(self._chunk({}, finish_reason_for(None, has_tool_calls=self._tool_count > 0)))
            self._finished = True
        if self._include_usage:
            out.append({"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                        "model": self._model, "choices": [], "usage": self.openai_usage})
        out.append(DONE)
        self._done = True

class Encoder:
    """Form events as the SSE bytes of an OpenAI chat stream."""

    def __init__(self, context: Context):
        self.chunks = Chunks(context)

    def encode(self, events: Iterable[FormEvent]) -> list[bytes]:
        out = []
        for name, data in events:
            out.extend(encode_data(chunk) for chunk in self.chunks.feed(name, data))
        return out


# --- an OpenAI upstream's stream to an OpenAI client ---------------------------------------------------

class Passthrough:
    """OpenAI stream to an OpenAI client: events pass as received, with Zen's quirks removed.

    Nothing after ``data: [DONE]`` (Zen's cost frame) or an error chunk reaches the client; the
    usage-only chunk is dropped unless the client asked for it; usage and output go to ``notes``.
    """

    def __init__(self, context: Context, notes: Notes):
        self._notes = notes
        self.include_usage = context.include_usage
        self.rename = context.client_model if context.client_model != context.upstream_model else None
        self.ended = False
        self.finished = False
        self.error: str | None = None

    def on_event(self, event: Event) -> list[bytes]:
        if event.data == DONE:
            self.ended = True
            return [encode_data(DONE)]
        chunk = event_json(event)
        if chunk is None:
            return []
        if chunk.get("error") is not None or chunk.get("type") == "error":
            self.error = error_message(chunk)
            self.ended = True  # an error ends the answer: nothing after it, [DONE] least of all
            return [event.raw]
        usage = chunk.get("usage")
        if usage:
            self._notes.add_usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
        choices = chunk.get("choices")
        if choices:
            for choice in choices:
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if isinstance(content, str):
                    self._notes.add_output(content)
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
        return [encode_data(openai_error_body(502, ENDED_EARLY))]

    def on_failure(self, status: int, message: str) -> list[bytes]:
        self.error = message
        return [encode_data(openai_error_body(status, f"{message} (mid-stream)"))]
