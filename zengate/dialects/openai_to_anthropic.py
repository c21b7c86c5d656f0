"""OpenAI client, Anthropic upstream: Chat Completions request -> Messages request, and back.

Request: :func:`request_to_anthropic`. Answer: :func:`response_from_anthropic`. Stream:
:class:`StreamToOpenAI` (Anthropic events in, OpenAI chunks out).
"""

from __future__ import annotations

import time
from typing import Any

from .anthropic import IMAGE_MEDIA_TYPES, STATUS_FOR_TYPE
from .errors import ProtocolError
from .openai import error_body as openai_error_body
from .openai import validate_chat_request
from .translate_common import (
    ToolNames,
    clamp_max_tokens,
    clean_stop_sequences,
    dump_json,
    finish_reason_for,
    is_context_length_error,
    join_text,
    new_id,
    openai_usage,
    parse_arguments,
    parse_data_url,
    thinking_for_effort,
)

DEFAULT_MAX_TOKENS = 4096
DONE = "[DONE]"

# --- request ---------------------------------------------------------------------------------


def _fail(field: str, message: str) -> ProtocolError:
    return ProtocolError(400, f"{field}: {message}", field)


def _text_of_parts(content: Any, where: str) -> str:
    """The text of string content or of text/refusal parts (system, developer, tool, assistant)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise _fail(f"{where}.{j}.type", f"only text parts are supported here, got {kind!r}")
    return join_text(texts)


def _image_block(part: dict, where: str) -> dict:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise _fail(f"{where}.image_url.url", "required, a string")
    if url.startswith("data:"):
        parsed = parse_data_url(url)
        if parsed is None:
            raise _fail(f"{where}.image_url.url", "data URLs must be base64 encoded")
        media_type, data = parsed
        if media_type not in IMAGE_MEDIA_TYPES:
            raise _fail(f"{where}.image_url.url", f"image type must be one of {', '.join(IMAGE_MEDIA_TYPES)}")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _fail(f"{where}.image_url.url", "must be a data: URL or an http(s) URL")


def _file_block(part: dict, where: str) -> dict:
    file = part.get("file") if isinstance(part.get("file"), dict) else {}
    parsed = parse_data_url(file.get("file_data") or "")
    if parsed is None or parsed[0] != "application/pdf":
        raise _fail(f"{where}.file", "only inline PDF files (file_data as a base64 data: URL) are supported")
    block: dict[str, Any] = {"type": "document",
                             "source": {"type": "base64", "media_type": "application/pdf", "data": parsed[1]}}
    if isinstance(file.get("filename"), str) and file["filename"]:
        block["title"] = file["filename"]
    return block


def _user_blocks(content: Any, where: str) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks = []
    for j, part in enumerate(content):
        part_where = f"{where}.{j}"
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _fail(f"{part_where}.text", "required, a string")
            if text.strip():
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part, part_where))
        elif kind == "file":
            blocks.append(_file_block(part, part_where))
        else:
            raise _fail(f"{part_where}.type", f"content part type {kind!r} is not supported by this model")
    return blocks


def _assistant_blocks(message: dict, where: str, names: ToolNames) -> list[dict]:
    text = _text_of_parts(message.get("content"), f"{where}.content")
    blocks: list[dict] = [{"type": "text", "text": text}] if text.strip() else []
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise _fail(f"{where}.tool_calls", "must be an array")
    for k, call in enumerate(calls or []):
        call_where = f"{where}.tool_calls.{k}"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise _fail(f"{call_where}.function.name", "required, a non-empty string")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise _fail(f"{call_where}.id", "required, a non-empty string")
        blocks.append({"type": "tool_use", "id": names.id_out(call_id), "name": names.name_out(function["name"]),
                       "input": parse_arguments(function.get("arguments"))})
    return blocks


def _tool_result_block(message: dict, where: str, names: ToolNames) -> dict:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail(f"{where}.tool_call_id", "required, a non-empty string")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": names.id_out(call_id)}
    text = _text_of_parts(message.get("content"), f"{where}.content")
    if text.strip():
        block["content"] = text
    return block


def _merge_turns(turns: list[tuple[str, list[dict]]]) -> list[dict]:
    """Anthropic wants alternating roles: consecutive same-role turns become one message, with a
    user turn's tool_result blocks first (the API requires them before any other content)."""
    merged: list[dict] = []
    for role, blocks in turns:
        if not blocks:
            continue
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": list(blocks)})
    for message in merged:
        if message["role"] == "user":
            content = message["content"]
            message["content"] = ([b for b in content if b["type"] == "tool_result"]
                                  + [b for b in content if b["type"] != "tool_result"])
    return merged


def _convert_tools(tools: Any, names: ToolNames) -> list[dict]:
    if tools is None:
        return []
    converted = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise _fail(f"tools.{i}.type", "only function tools are supported")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise _fail(f"tools.{i}.function.name", "required, a non-empty string")
        schema = function.get("parameters")
        # a new top level (the one changed here) over the client's nested schema, as in anthropic_to_openai
        schema = dict(schema) if isinstance(schema, dict) else {"type": "object", "properties": {}}
        schema.setdefault("type", "object")
        out: dict[str, Any] = {"name": names.name_out(function["name"])}
        if isinstance(function.get("description"), str) and function["description"]:
            out["description"] = function["description"]
        out["input_schema"] = schema
        converted.append(out)
    return converted


def _convert_tool_choice(choice: Any, names: ToolNames) -> dict | None:
    if isinstance(choice, str):
        return {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}.get(choice)
    if isinstance(choice, dict):
        function = choice.get("function") if isinstance(choice.get("function"), dict) else {}
        if isinstance(function.get("name"), str) and function["name"]:
            return {"type": "tool", "name": names.name_out(function["name"])}
    return None


def _thinking_allowed(messages: list[dict], choice: dict | None) -> bool:
    """Whether Anthropic will accept ``thinking`` for this conversation.

    It refuses thinking when a tool is forced, and when the turn being continued (an assistant
    prefill, or a last user turn answering tool calls) lacks the assistant's signed thinking
    block - which an OpenAI client cannot send back. Then the request goes without thinking.
    """
    if choice and choice["type"] in ("any", "tool"):
        return False
    last = messages[-1]
    if last["role"] == "assistant":
        return False
    return not any(b["type"] == "tool_result" for b in last["content"])


def request_to_anthropic(body: dict, *, upstream_model: str,
                         max_output_tokens: int | None = None) -> tuple[dict, ToolNames]:
    """An OpenAI Chat Completions request as an Anthropic Messages request.

    system/developer messages (wherever they are) become the top-level ``system``; tool messages
    become tool_result blocks in a user turn; consecutive same-role turns are merged. Raises
    :class:`ProtocolError` for invalid input and for what Anthropic cannot take (audio, n > 1, ...).
    """
    validate_chat_request(body)
    names = ToolNames()
    system: list[str] = []
    turns: list[tuple[str, list[dict]]] = []
    for i, message in enumerate(body["messages"]):
        where = f"messages.{i}"
        role = message["role"]
        if role in ("system", "developer"):
            text = _text_of_parts(message.get("content"), f"{where}.content")
            if text.strip():
                system.append(text)
        elif role == "user":
            turns.append(("user", _user_blocks(message.get("content"), f"{where}.content")))
        elif role == "assistant":
            turns.append(("assistant", _assistant_blocks(message, where, names)))
        elif role == "tool":
            turns.append(("user", [_tool_result_block(message, where, names)]))
        else:
            raise _fail(f"{where}.role", "the legacy 'function' role is not supported; use tools")
    messages = _merge_turns(turns)
    if not messages:
        raise _fail("messages", "at least one non-empty user or assistant message is required")
    n = body.get("n")
    if n is not None and n != 1:
        raise _fail("n", "only n=1 is supported")

    max_tokens = clamp_max_tokens(body.get("max_completion_tokens") or body.get("max_tokens"),
                                  max_output_tokens, DEFAULT_MAX_TOKENS)
    out: dict[str, Any] = {"model": upstream_model, "max_tokens": max_tokens, "messages": messages}
    if system:
        out["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": t} for t in system]
    tools = _convert_tools(body.get("tools"), names)
    choice = _convert_tool_choice(body.get("tool_choice"), names) if tools else None
    if tools:
        out["tools"] = tools
        if body.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None:
            out["tool_choice"] = choice
    thinking = thinking_for_effort(body.get("reasoning_effort"), max_tokens)
    if thinking and _thinking_allowed(messages, choice):
        out["thinking"] = thinking
    else:
        temperature = body.get("temperature")
        if temperature is not None:
            out["temperature"] = min(max(float(temperature), 0.0), 1.0)  # OpenAI 0..2, Anthropic 0..1
        if body.get("top_p") is not None:
            out["top_p"] = body["top_p"]
    stop = clean_stop_sequences(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out, names


# --- answer ----------------------------------------------------------------------------------


def _completion_id(anthropic_id: Any) -> str:
    if isinstance(anthropic_id, str) and anthropic_id:
        return "chatcmpl-" + anthropic_id.removeprefix("msg_")
    return new_id("chatcmpl-")


def _tool_call(block: dict, names: ToolNames, salt: str) -> dict:
    return {"id": names.id_in(block.get("id"), salt=salt), "type": "function",
            "function": {"name": names.name_in(block.get("name") or ""),
                         "arguments": dump_json(block.get("input") or {})}}


def response_from_anthropic(anthropic_resp: dict, *, client_model: str, names: ToolNames,
                            created: int | None = None) -> dict:
    """An Anthropic message as an OpenAI ``chat.completion``.

    Text blocks are joined into ``content`` (None when there is only tool calls), thinking goes to
    ``reasoning_content``, tool_use blocks to ``tool_calls``; server-tool blocks are left out.
    """
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict] = []
    salt = str(anthropic_resp.get("id") or "")
    content = anthropic_resp.get("content")
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thoughts.append(block["thinking"])
        elif kind == "tool_use":
            calls.append(_tool_call(block, names, salt))
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    finish = finish_reason_for(anthropic_resp.get("stop_reason"), has_tool_calls=bool(calls))
    return {
        "id": _completion_id(anthropic_resp.get("id")),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": client_model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": openai_usage(anthropic_resp.get("usage")),
    }


# --- stream ----------------------------------------------------------------------------------


def _index(data: dict) -> int | None:
    """A content block's index (None when missing or not a number: such a block is no tool call)."""
    index = data.get("index")
    return index if isinstance(index, int) else None


def _error_chunk(status: int, message: str) -> dict:
    """``{"error": {"message", "type", "code", "param"}}``; context overflows get OpenAI's code."""
    if is_context_length_error(status, message):
        return openai_error_body(400, message, code="context_length_exceeded")
    return openai_error_body(status, message)


class StreamToOpenAI:
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` objects out.

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

    def __init__(self, *, client_model: str, names: ToolNames, include_usage: bool,
                 completion_id: str | None = None, created: int | None = None):
        self._model = client_model
        self._names = names
        self._include_usage = include_usage
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
        return {key: self._usage.get(key, 0) for key in
                ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}

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
            err = data.get("error") if isinstance(data.get("error"), dict) else {}
            status = STATUS_FOR_TYPE.get(err.get("type"), 500) if isinstance(err.get("type"), str) else 500
            return self._fail(status, err.get("message") if isinstance(err.get("message"), str) else str(err))
        if kind == "ping":
            return []
        out: list[dict | str] = []
        if kind == "message_start":
            message = data.get("message") if isinstance(data.get("message"), dict) else {}
            if self._id is None:
                self._id = _completion_id(message.get("id"))
            self._add_usage(message.get("usage"))
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
            self._add_usage(data.get("usage"))
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

    def _add_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                self._usage[key] = value

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
            call = {"index": call_index, "id": self._names.id_in(block.get("id"), salt=f"{self._id}:{call_index}"),
                    "type": "function", "function": {"name": self._names.name_in(block.get("name") or ""),
                                                     "arguments": ""}}
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
