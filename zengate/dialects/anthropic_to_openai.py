"""Anthropic client, OpenAI upstream: Messages request -> Chat Completions request, and back.

Request: :func:`request_to_openai`. Answer: :func:`response_from_openai`. Stream:
:class:`StreamToAnthropic` (OpenAI chunks in, Anthropic events out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .anthropic import GATEWAY_SIGNATURE, STATUS_FOR_TYPE, error_body, validate_messages_request
from .errors import ProtocolError
from .translate_common import (
    ToolNames,
    anthropic_usage,
    clamp_max_tokens,
    clean_stop_sequences,
    data_url,
    dump_json,
    effort_for_thinking,
    is_context_length_error,
    join_text,
    new_id,
    openai_user,
    parse_arguments,
    prompt_too_long_message,
    reasoning_of,
    stop_reason_for,
    text_of_blocks,
)

TOOL_ERROR_PREFIX = "[tool error] "
EMPTY_TOOL_RESULT = "(no output)"
MOVED_IMAGES_NOTE = "(the result's images follow in the next message)"
MISSING_TOOL_RESULT = "(no result was provided for this tool call)"
STOP_LIMIT = 4  # OpenAI accepts at most four stop sequences

# --- request ---------------------------------------------------------------------------------


def _image_part(source: dict, where: str) -> dict:
    if source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    if source.get("type") == "base64":
        return {"type": "image_url", "image_url": {"url": data_url(source["media_type"], source["data"])}}
    raise ProtocolError(400, f"{where}.source: image files by file_id cannot be sent to this model",
                        f"{where}.source")


def _document_part(block: dict, where: str) -> dict:
    source = block.get("source") or {}
    if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        filename = block.get("title") if isinstance(block.get("title"), str) and block["title"] else "document.pdf"
        return {"type": "file", "file": {"filename": filename,
                                         "file_data": data_url("application/pdf", source["data"])}}
    raise ProtocolError(400, f"{where}.source: only base64 PDF documents can be sent to this model",
                        f"{where}.source")


def _media_part(block: dict, where: str) -> dict | None:
    """An OpenAI content part for a non-text user block, or None for blocks left out."""
    kind = block.get("type")
    if kind == "image":
        return _image_part(block.get("source") or {}, where)
    if kind == "document":
        return _document_part(block, where)
    return None


def _search_result_text(block: dict) -> str:
    parts = [block.get("title") or "", block.get("source") or "", text_of_blocks(block.get("content"))]
    return join_text([p for p in parts if isinstance(p, str)], "\n")


def _user_parts(block: dict, where: str) -> list[dict]:
    """OpenAI parts for one user block that is not a tool_result (blank text gives none)."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text") or ""
        return [{"type": "text", "text": text}] if text.strip() else []
    if kind == "search_result":
        text = _search_result_text(block)
        return [{"type": "text", "text": text}] if text.strip() else []
    part = _media_part(block, where)
    return [part] if part else []


def _tool_message(block: dict, where: str, names: ToolNames) -> tuple[dict, list[dict]]:
    """A ``role: tool`` message for a tool_result, and the media parts that must move out of it."""
    content = block.get("content")
    texts: list[str] = []
    media: list[dict] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            for out in _user_parts(part, f"{where}.content.{j}"):
                if out["type"] == "text":
                    texts.append(out["text"])
                else:
                    media.append(out)
    text = join_text(texts, "\n")
    if not text.strip():
        text = MOVED_IMAGES_NOTE if media else EMPTY_TOOL_RESULT
    if block.get("is_error"):
        text = TOOL_ERROR_PREFIX + text
    message = {"role": "tool", "tool_call_id": names.id_out(block["tool_use_id"]), "content": text}
    return message, media


def _user_content(parts: list[dict]) -> str | list[dict]:
    """Text-only content as one string (the most portable form), else the list of parts."""
    if all(p["type"] == "text" for p in parts):
        return join_text([p["text"] for p in parts])
    return parts


def _convert_user(message: dict, where: str, names: ToolNames) -> list[dict]:
    content = message["content"]
    if isinstance(content, str):
        return [{"role": "user", "content": content}] if content.strip() else []
    tool_messages: list[dict] = []
    moved: list[dict] = []
    parts: list[dict] = []
    for j, block in enumerate(content):
        block_where = f"{where}.content.{j}"
        if block.get("type") == "tool_result":
            tool_message, media = _tool_message(block, block_where, names)
            tool_messages.append(tool_message)
            moved.extend(media)
        else:
            parts.extend(_user_parts(block, block_where))
    result = tool_messages
    if moved or parts:
        result.append({"role": "user", "content": _user_content(moved + parts)})
    return result


def _convert_assistant(message: dict, names: ToolNames, reasoning_as_content: bool) -> list[dict]:
    content = message["content"]
    if isinstance(content, str):
        return [{"role": "assistant", "content": content}] if content.strip() else []
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":  # its signature (an upstream's or the gateway's) never goes upstream
            thoughts.append(block.get("thinking") or "")
        elif kind == "tool_use":
            calls.append({
                "id": names.id_out(block["id"]),
                "type": "function",
                "function": {"name": names.name_out(block["name"]), "arguments": dump_json(block["input"])},
            })
        # redacted_thinking, server-tool blocks and anything else: not meaningful upstream
    text = join_text(texts)
    if not text and not calls:
        return []
    out: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        out["tool_calls"] = calls
    reasoning = join_text(thoughts)
    if reasoning_as_content and reasoning:
        out["reasoning_content"] = reasoning
    return [out]


def _system_message(content: Any) -> list[dict]:
    text = text_of_blocks(content)
    return [{"role": "system", "content": text}] if text.strip() else []


def _order_tool_messages(messages: list[dict]) -> list[dict]:
    """Make the list acceptable to OpenAI's tool-call rules.

    Each assistant message with ``tool_calls`` must be followed directly by one tool message per
    call. System messages that fall in between (Claude Code inserts them anywhere) wait until the
    calls are answered; a call left unanswered gets a placeholder result; a tool message that
    answers no pending call becomes user text, since OpenAI would reject it.
    """
    out: list[dict] = []
    pending: list[str] = []
    deferred: list[dict] = []

    def settle() -> None:
        for call_id in pending:
            out.append({"role": "tool", "tool_call_id": call_id, "content": MISSING_TOOL_RESULT})
        pending.clear()
        out.extend(deferred)
        deferred.clear()

    for message in messages:
        role = message["role"]
        if role == "tool":
            call_id = message["tool_call_id"]
            if call_id in pending:
                pending.remove(call_id)
                out.append(message)
                if not pending:
                    settle()
            else:
                settle()
                out.append({"role": "user", "content": f"[tool result for {call_id}]\n{message['content']}"})
        elif role == "system" and pending:
            deferred.append(message)
        else:
            settle()
            out.append(message)
            if role == "assistant" and message.get("tool_calls"):
                pending.extend(c["id"] for c in message["tool_calls"])
    if out and out[-1].get("tool_calls") and pending and not deferred:
        # the conversation ends on the calls (a prefill): nothing to answer them with yet. (With
        # system messages waiting after them the calls are not last: they get placeholders.)
        pending.clear()
    settle()
    return out


def _convert_tools(tools: list, names: ToolNames) -> list[dict]:
    converted = []
    for tool in tools:
        if tool.get("type") not in (None, "custom") or not isinstance(tool.get("input_schema"), dict):
            continue  # server tools (web_search_20250305, ...) run only on Anthropic's side
        function: dict[str, Any] = {"name": names.name_out(tool["name"])}
        if isinstance(tool.get("description"), str) and tool["description"]:
            function["description"] = tool["description"]
        # A new top level over the client's nested schema: nothing changes either once translated, and
        # copying Claude Code's ~20 tool schemas deeply took ~270 µs of every request's way upstream.
        function["parameters"] = dict(tool["input_schema"])
        converted.append({"type": "function", "function": function})
    return converted


def _convert_tool_choice(choice: Any, names: ToolNames) -> Any:
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": names.name_out(choice["name"])}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind)


def request_to_openai(body: dict, *, upstream_model: str, max_output_tokens: int | None = None,
                      reasoning_as_content: bool = False) -> tuple[dict, ToolNames]:
    """An Anthropic Messages request as an OpenAI Chat Completions request.

    Raises :class:`ProtocolError` for invalid input and for content OpenAI cannot take
    (documents other than base64 PDF). Returns the request and the :class:`ToolNames` needed to
    translate the answer back. ``reasoning_as_content`` sends earlier thinking back as the
    assistant's ``reasoning_content`` (for upstreams that want it) instead of dropping it.
    """
    validate_messages_request(body)
    names = ToolNames()
    messages: list[dict] = _system_message(body.get("system"))
    for i, message in enumerate(body["messages"]):
        role = message["role"]
        if role == "system":
            messages.extend(_system_message(message["content"]))
        elif role == "user":
            messages.extend(_convert_user(message, f"messages.{i}", names))
        else:
            messages.extend(_convert_assistant(message, names, reasoning_as_content))
    if not any(m["role"] != "system" for m in messages):
        raise ProtocolError(400, "messages: all messages are empty", "messages")

    out: dict[str, Any] = {"model": upstream_model, "messages": _order_tool_messages(messages)}
    out["max_tokens"] = clamp_max_tokens(body["max_tokens"], max_output_tokens)
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = clean_stop_sequences(body.get("stop_sequences"), STOP_LIMIT)
    if stop:
        out["stop"] = stop
    user = openai_user((body.get("metadata") or {}).get("user_id"))
    if user:
        out["user"] = user
    effort = effort_for_thinking(body.get("thinking"), body.get("output_config"))
    if effort:
        out["reasoning_effort"] = effort

    tools = _convert_tools(body.get("tools") or [], names)
    if tools:
        out["tools"] = tools
        choice = _convert_tool_choice(body.get("tool_choice"), names)
        if choice is not None:
            out["tool_choice"] = choice
        if (body.get("tool_choice") or {}).get("disable_parallel_tool_use") is True:
            out["parallel_tool_calls"] = False
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out, names


# --- answer ----------------------------------------------------------------------------------


def _tool_use_block(call: dict, names: ToolNames, salt: str) -> dict:
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": names.id_in(call.get("id"), salt=salt),
        "name": names.name_in(function.get("name") or ""),
        "input": parse_arguments(function.get("arguments")),
    }


def _message_shell(message_id: str, client_model: str) -> dict:
    return {"id": message_id, "type": "message", "role": "assistant", "model": client_model, "content": [],
            "stop_reason": None, "stop_sequence": None}


def response_from_openai(openai_resp: dict, *, client_model: str, names: ToolNames) -> dict:
    """An OpenAI chat completion as an Anthropic message.

    Content order: a thinking block (from ``reasoning_content``/``reasoning``/``reasoning_details``,
    with the gateway's signature, see :func:`~zengate.dialects.anthropic.is_gateway_signature`),
    the text, then tool_use blocks. An answer with nothing at all still gets one empty text block,
    so clients always find ``content[0]``.
    """
    choices = openai_resp.get("choices") if isinstance(openai_resp.get("choices"), list) else []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    upstream_id = openai_resp.get("id") if isinstance(openai_resp.get("id"), str) else ""
    message_id = new_id("msg_")
    content: list[dict] = []
    reasoning = reasoning_of(message)
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": GATEWAY_SIGNATURE})
    text = message.get("content")
    if isinstance(text, list):  # some upstreams answer with parts
        text = text_of_blocks(text)
    refusal = message.get("refusal")
    if not (isinstance(text, str) and text.strip()) and isinstance(refusal, str) and refusal:
        text = refusal
    if isinstance(text, str) and text.strip():
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
    calls = [c for c in calls if isinstance(c, dict)]
    content.extend(_tool_use_block(c, names, upstream_id or message_id) for c in calls)
    if not content:
        content.append({"type": "text", "text": ""})
    answer = _message_shell(message_id, client_model)
    answer["content"] = content
    finish = choice.get("finish_reason")
    if isinstance(refusal, str) and refusal and not calls:
        finish = "content_filter"
    answer["stop_reason"] = stop_reason_for(finish, has_tool_use=bool(calls))
    answer["usage"] = anthropic_usage(openai_resp.get("usage"))
    return answer


# --- stream ----------------------------------------------------------------------------------


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
        return "error", error_body(400, prompt_too_long_message(message), "invalid_request_error")
    return "error", error_body(status, message, type_)


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


class StreamToAnthropic:
    """OpenAI ``chat.completion.chunk`` objects in, Anthropic stream events out.

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

    def __init__(self, *, client_model: str, names: ToolNames, message_id: str | None = None,
                 input_tokens_estimate: int = 0):
        self._model = client_model
        self._names = names
        self._id = message_id or new_id("msg_")
        self._estimate = max(0, int(input_tokens_estimate or 0))
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

    def feed(self, chunk: dict) -> list[tuple[str, dict]]:
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
