"""OpenAI Chat Completions requests to and from the internal form.

:func:`parse_request` reads a client's chat request into the form without losing what the form can
say (fields it cannot say wait in ``x_extras`` for an upstream of this API); :func:`render_request`
writes the form as a chat request for an OpenAI-protocol upstream, under this API's rules (tool
names and ids its pattern allows, at most four stop sequences, tool messages right after the
calls they answer).
"""

from __future__ import annotations

from typing import Any

from ...exchange.form import is_server_tool
from ..anthropic.shapes import IMAGE_MEDIA_TYPES
from ..base import Context, Target
from ..errors import ProtocolError
from ..translate_common import (
    ToolNames,
    clamp_max_tokens,
    clean_stop_sequences,
    data_url,
    dump_json,
    effort_for_thinking,
    join_text,
    openai_user,
    parse_arguments,
    parse_data_url,
    text_of_blocks,
)
from .shapes import validate_chat_request

TOOL_ERROR_PREFIX = "[tool error] "
EMPTY_TOOL_RESULT = "(no output)"
MOVED_IMAGES_NOTE = "(the result's images follow in the next message)"
MISSING_TOOL_RESULT = "(no result was provided for this tool call)"
STOP_LIMIT = 4  # OpenAI accepts at most four stop sequences

#: The request fields the form says itself; any other field of a client's request is kept in
#: ``x_extras["openai"]`` and given back only to an upstream of this API.
FORM_FIELDS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "stream",
    "stream_options", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort", "user", "n",
    "response_format",
})


# --- from a client's chat request ---------------------------------------------------------------

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


def _assistant_blocks(message: dict, where: str) -> list[dict]:
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
        blocks.append({"type": "tool_use", "id": call_id, "name": function["name"],
                       "input": parse_arguments(function.get("arguments"))})
    return blocks


def _tool_result_block(message: dict, where: str) -> dict:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail(f"{where}.tool_call_id", "required, a non-empty string")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    text = _text_of_parts(message.get("content"), f"{where}.content")
    if text.strip():
        block["content"] = text
    return block


def _merge_turns(turns: list[tuple[str, list[dict]]]) -> list[dict]:
    """The form's turns alternate, as Anthropic wants: consecutive same-role turns become one message,
    with a user turn's tool_result blocks first (the API requires them before any other content)."""
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


def _form_tools(tools: Any) -> list[dict]:
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
        # a new top level (the one changed here) over the client's nested schema
        schema = dict(schema) if isinstance(schema, dict) else {"type": "object", "properties": {}}
        schema.setdefault("type", "object")
        out: dict[str, Any] = {"name": function["name"]}
        if isinstance(function.get("description"), str) and function["description"]:
            out["description"] = function["description"]
        out["input_schema"] = schema
        if isinstance(function.get("strict"), bool):
            out["x_strict"] = function["strict"]
        converted.append(out)
    return converted


def _form_tool_choice(choice: Any) -> dict | None:
    if isinstance(choice, str):
        return {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}.get(choice)
    if isinstance(choice, dict):
        function = choice.get("function") if isinstance(choice.get("function"), dict) else {}
        if isinstance(function.get("name"), str) and function["name"]:
            return {"type": "tool", "name": function["name"]}
    return None


def _output_format(response_format: Any) -> dict | None:
    """``response_format`` as the form's ``x_output_format`` (None for plain text or nothing)."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(response_format.get("json_schema"), dict):
        spec = response_format["json_schema"]
        out = {"type": "json_schema", "name": spec.get("name") or "output", "schema": spec.get("schema") or {}}
        if isinstance(spec.get("strict"), bool):
            out["strict"] = spec["strict"]
        return out
    return None


def parse_request(body: dict) -> dict:
    """An OpenAI Chat Completions request as the internal form.

    system/developer messages (wherever they are) become ``system``; tool messages become
    tool_result blocks in a user turn; consecutive same-role turns are merged. Raises
    :class:`ProtocolError` (400, naming the field) for invalid input and for what the form cannot
    carry (audio and other content parts, the legacy function role).
    """
    validate_chat_request(body)
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
            turns.append(("assistant", _assistant_blocks(message, where)))
        elif role == "tool":
            turns.append(("user", [_tool_result_block(message, where)]))
        else:
            raise _fail(f"{where}.role", "the legacy 'function' role is not supported; use tools")
    messages = _merge_turns(turns)
    if not messages:
        raise _fail("messages", "at least one non-empty user or assistant message is required")

    form: dict[str, Any] = {"model": body["model"], "messages": messages}
    if system:
        form["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": t} for t in system]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        form["max_tokens"] = max_tokens
    tools = _form_tools(body.get("tools"))
    if tools:
        form["tools"] = tools
        choice = _form_tool_choice(body.get("tool_choice"))
        if body.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None:
            form["tool_choice"] = choice
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            form[key] = body[key]
    stop = clean_stop_sequences(body.get("stop"))
    if stop:
        form["stop_sequences"] = stop
    if isinstance(body.get("user"), str) and body["user"]:
        form["metadata"] = {"user_id": body["user"]}
    if isinstance(body.get("reasoning_effort"), str):
        form["x_effort"] = body["reasoning_effort"]
    if body.get("n") is not None:
        form["x_n"] = body["n"]
    output_format = _output_format(body.get("response_format"))
    if output_format:
        form["x_output_format"] = output_format
    if body.get("stream"):
        form["stream"] = True
    extras = {key: value for key, value in body.items() if key not in FORM_FIELDS}
    if extras:
        form["x_extras"] = {"openai": extras}
    return form


# --- to an OpenAI-protocol upstream ---------------------------------------------------------------

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
        if is_server_tool(tool):
            continue  # runs only on Anthropic's side
        function: dict[str, Any] = {"name": names.name_out(tool["name"])}
        if isinstance(tool.get("description"), str) and tool["description"]:
            function["description"] = tool["description"]
        # A new top level over the client's nested schema: nothing changes either once translated, and
        # a deep copy of every tool schema was a large part of a request's way (docs/performance.md).
        function["parameters"] = dict(tool["input_schema"])
        if isinstance(tool.get("x_strict"), bool):
            function["strict"] = tool["x_strict"]
        converted.append({"type": "function", "function": function})
    return converted


def _convert_tool_choice(choice: Any, names: ToolNames) -> Any:
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": names.name_out(choice["name"])}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind)




def _response_format(output_format: dict) -> dict | None:
    if output_format.get("type") == "json_object":
        return {"type": "json_object"}
    if output_format.get("type") == "json_schema":
        spec = {"name": output_format.get("name") or "output", "schema": output_format.get("schema") or {}}
        if isinstance(output_format.get("strict"), bool):
            spec["strict"] = output_format["strict"]
        return {"type": "json_schema", "json_schema": spec}
    return None


def render_request(form: dict, target: Target, context: Context) -> dict:
    """The form as an OpenAI Chat Completions request for ``target`` (tool names recorded in ``context``).

    Raises :class:`ProtocolError` for content this API cannot take (documents other than base64
    PDF, images by file id). With ``target.reasoning_as_content`` earlier thinking goes back as the
    assistant's ``reasoning_content`` (for upstreams that want it) instead of being dropped.
    """
    names = context.names
    messages: list[dict] = _system_message(form.get("system"))
    for i, message in enumerate(form["messages"]):
        role = message["role"]
        if role == "system":
            messages.extend(_system_message(message["content"]))
        elif role == "user":
            messages.extend(_convert_user(message, f"messages.{i}", names))
        else:
            messages.extend(_convert_assistant(message, names, target.reasoning_as_content))
    if not any(m["role"] != "system" for m in messages):
        raise ProtocolError(400, "messages: all messages are empty", "messages")

    extras = (form.get("x_extras") or {}).get("openai")
    out: dict[str, Any] = {**extras} if extras else {}
    out["model"] = target.upstream_model
    out["messages"] = _order_tool_messages(messages)
    max_tokens = clamp_max_tokens(form.get("max_tokens"), target.max_output_tokens)
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        if form.get(key) is not None:
            out[key] = form[key]
    stop = clean_stop_sequences(form.get("stop_sequences"), STOP_LIMIT)
    if stop:
        out["stop"] = stop
    user = openai_user((form.get("metadata") or {}).get("user_id"))
    if user:
        out["user"] = user
    effort = form.get("x_effort") or effort_for_thinking(form.get("thinking"), form.get("output_config"))
    if effort:
        out["reasoning_effort"] = effort
    if form.get("x_n") is not None:
        out["n"] = form["x_n"]
    output_format = form.get("x_output_format")
    if output_format and _response_format(output_format):
        out["response_format"] = _response_format(output_format)

    tools = _convert_tools(form.get("tools") or [], names)
    if tools:
        out["tools"] = tools
        choice = _convert_tool_choice(form.get("tool_choice"), names)
        if choice is not None:
            out["tool_choice"] = choice
        if (form.get("tool_choice") or {}).get("disable_parallel_tool_use") is True:
            out["parallel_tool_calls"] = False
    if target.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def passthrough_body(body: dict, target: Target) -> dict:
    """The client's own request for an upstream of the same API: model mapped, usage always asked for
    in streams (the request log counts tokens)."""
    upstream = dict(body)
    upstream["model"] = target.upstream_model
    if target.stream:
        upstream["stream"] = True
        upstream["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return upstream
