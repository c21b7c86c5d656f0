"""Anthropic Messages API: error bodies, request validation, and the gateway's thinking signature."""

from __future__ import annotations

from typing import Any

from ..errors import ProtocolError

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# The reverse, for turning an Anthropic error type back into an HTTP status.
STATUS_FOR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def error_event_failure(data: dict) -> tuple[int, str]:
    """The status and message of an ``error`` event (Anthropic's, the internal form's)."""
    err = data.get("error") if isinstance(data.get("error"), dict) else {}
    status = STATUS_FOR_TYPE.get(err.get("type"), 500) if isinstance(err.get("type"), str) else 500
    return status, err.get("message") if isinstance(err.get("message"), str) else str(err)

ROLES = ("user", "assistant", "system")
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")
THINKING_TYPES = ("enabled", "disabled", "adaptive")
# Block types the API accepts in message content. Server-tool blocks are accepted (clients echo
# them back in history) and left out when translating to an upstream that cannot run them.
BLOCK_TYPES = frozenset({
    "text", "image", "document", "search_result", "tool_use", "tool_result", "thinking",
    "redacted_thinking", "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
    "code_execution_tool_result", "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result", "mcp_tool_use", "mcp_tool_result", "container_upload",
})
_TOOL_RESULT_PART_TYPES = frozenset({"text", "image", "document", "search_result"})


# --- the gateway's thinking signature -------------------------------------------------------

GATEWAY_SIGNATURE_PREFIX = "zengate:"
GATEWAY_SIGNATURE = GATEWAY_SIGNATURE_PREFIX + "v1"


def is_gateway_signature(value: Any) -> bool:
    """Whether ``value`` is the signature zengate gives the thinking blocks it makes.

    A thinking block made from an OpenAI-protocol upstream's reasoning text ends, as Anthropic's own
    do, with a ``signature_delta`` (``signature`` when not streamed), because clients expect one
    and send the block back with it. Nobody signed that text, so the value claims nothing: it is a
    fixed ``zengate:v1`` that only marks the block as the gateway's. It carries no hash or model
    name - nothing reads one, and a constant costs no work per block - and its colon is no base64
    character, so it is never mistaken for an upstream's signature. ``v1`` leaves room for a
    format that does carry something. The value is never sent upstream (see
    :func:`without_gateway_thinking`).
    """
    return isinstance(value, str) and value.startswith(GATEWAY_SIGNATURE_PREFIX)


def without_gateway_thinking(messages: list) -> list | None:
    """``messages`` without the thinking blocks zengate made, or None when there are none.

    For an Anthropic-protocol upstream, which gets the client's history as it is: a block with the
    gateway's signature was made by no upstream, and one that checks signatures (Anthropic) refuses
    it, with or without its signature - so the whole block goes. An assistant turn left empty goes
    too (the API refuses empty content; consecutive user turns are allowed). Only assistant turns
    are looked at (the API takes thinking nowhere else), and only a thinking block's signature is
    read, so the usual history - none of these blocks - costs one pass and copies nothing. The
    client's own lists are never changed.
    """
    found = False
    for message in messages:
        if message["role"] == "assistant" and type(content := message["content"]) is list:
            for block in content:
                if block.get("type") == "thinking" and is_gateway_signature(block.get("signature")):
                    found = True
                    break
            if found:
                break
    if not found:
        return None
    out = []
    for message in messages:
        content = message["content"]
        if message["role"] == "assistant" and type(content) is list:
            kept = [b for b in content
                    if not (b.get("type") == "thinking" and is_gateway_signature(b.get("signature")))]
            if len(kept) != len(content):
                if not kept:
                    continue
                message = {**message, "content": kept}
        out.append(message)
    return out


def client_signature(signature: str, origin: str | None) -> str:
    """The signature an Anthropic client is given for a thinking block.

    An Anthropic upstream's own goes as it is, and so does the gateway's ``zengate:v1``. One that
    another dialect's upstream made (Responses' encrypted reasoning) is wrapped as
    ``zengate:<dialect>:<signature>``: the client sends it back with the block, the wrapper says
    where it may go again (:func:`unwrapped_signature`), and its prefix keeps it from any
    Anthropic upstream (:func:`without_gateway_thinking`).
    """
    if origin and origin not in ("anthropic", "gateway") and not is_gateway_signature(signature):
        return f"{GATEWAY_SIGNATURE_PREFIX}{origin}:{signature}"
    return signature


def unwrapped_signature(signature: Any) -> tuple[Any, str | None]:
    """``(signature, origin)`` of a signature a client sent back: the origin is ``"gateway"`` for
    ``zengate:v1``, the dialect for a wrapped one (whose own signature is returned), else None."""
    if not is_gateway_signature(signature):
        return signature, None
    dialect, sep, inner = signature[len(GATEWAY_SIGNATURE_PREFIX):].partition(":")
    if sep and dialect.isidentifier():
        return inner, dialect
    return signature, "gateway"


def error_type(status: int) -> str:
    """The Anthropic error type for an HTTP status."""
    if status in _TYPES:
        return _TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


def error_body(status: int, message: str, type: str | None = None) -> dict:
    """Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``."""
    return {"type": "error", "error": {"type": type or error_type(status), "message": message}}


# --- validation -------------------------------------------------------------------------------

def _fail(field: str, message: str) -> ProtocolError:
    return ProtocolError(400, f"{field}: {message}", field)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require_str(obj: dict, key: str, where: str, *, non_empty: bool = True) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or (non_empty and not value):
        raise _fail(f"{where}.{key}", "required, a non-empty string" if non_empty else "must be a string")
    return value


def _check_source(source: Any, where: str, *, image: bool) -> None:
    if not isinstance(source, dict):
        raise _fail(where, "must be an object")
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        if image and media_type not in IMAGE_MEDIA_TYPES:
            raise _fail(f"{where}.media_type", f"must be one of {', '.join(IMAGE_MEDIA_TYPES)}, got {media_type!r}")
        if not image and not isinstance(media_type, str):
            raise _fail(f"{where}.media_type", "required, a string")
        _require_str(source, "data", where)
    elif kind == "url":
        _require_str(source, "url", where)
    elif kind == "file":
        _require_str(source, "file_id", where)
    elif not image and kind == "text":
        _require_str(source, "data", where, non_empty=False)
    elif not image and kind == "content":
        if not isinstance(source.get("content"), (str, list)):
            raise _fail(f"{where}.content", "must be a string or an array of blocks")
    else:
        allowed = "base64, url, file" if image else "base64, url, file, text, content"
        raise _fail(f"{where}.type", f"must be one of {allowed}, got {kind!r}")


def _check_block(block: Any, where: str, role: str) -> None:
    if not isinstance(block, dict):
        raise _fail(where, "must be an object")
    kind = block.get("type")
    if not isinstance(kind, str) or kind not in BLOCK_TYPES:  # a list or object type is unhashable
        raise _fail(f"{where}.type", f"unknown content block type {kind!r}")
    if role == "system" and kind != "text":
        raise _fail(f"{where}.type", "system messages may only contain text blocks")
    if kind == "text":
        _require_str(block, "text", where, non_empty=False)
    elif kind == "image":
        _check_source(block.get("source"), f"{where}.source", image=True)
    elif kind == "document":
        _check_source(block.get("source"), f"{where}.source", image=False)
    elif kind == "tool_use":
        if role != "assistant":
            raise _fail(f"{where}.type", "tool_use blocks may only appear in assistant messages")
        _require_str(block, "id", where)
        _require_str(block, "name", where)
        if not isinstance(block.get("input"), dict):
            raise _fail(f"{where}.input", "must be an object")
    elif kind == "tool_result":
        if role != "user":
            raise _fail(f"{where}.type", "tool_result blocks may only appear in user messages")
        _require_str(block, "tool_use_id", where)
        content = block.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _fail(f"{where}.content", "must be a string or an array of blocks")
        if isinstance(content, list):
            for j, part in enumerate(content):
                part_where = f"{where}.content.{j}"
                if not isinstance(part, dict) or not isinstance(part.get("type"), str) \
                        or part["type"] not in _TOOL_RESULT_PART_TYPES:
                    kind_ = part.get("type") if isinstance(part, dict) else None
                    raise _fail(f"{part_where}.type", f"unsupported block type in tool_result: {kind_!r}")
                _check_block(part, part_where, "user")
        if block.get("is_error") is not None and not isinstance(block.get("is_error"), bool):
            raise _fail(f"{where}.is_error", "must be true or false")
    elif kind == "thinking":
        _require_str(block, "thinking", where, non_empty=False)
    elif kind == "redacted_thinking":
        _require_str(block, "data", where, non_empty=False)


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _fail("system", "must be a string or an array of text blocks")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _fail(f"system.{i}.type", "must be 'text'")
        _require_str(block, "text", f"system.{i}", non_empty=False)


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _fail("tools", "must be an array")
    for i, tool in enumerate(tools):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _fail(where, "must be an object")
        _require_str(tool, "name", where)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            continue  # a server tool (web_search_20250305, bash_20250124, ...): its own fields
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _fail(f"{where}.input_schema", "required, a JSON schema object")
        if tool.get("description") is not None and not isinstance(tool["description"], str):
            raise _fail(f"{where}.description", "must be a string")


def _check_tool_choice(choice: Any) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICE_TYPES:
        raise _fail("tool_choice.type", f"must be one of {', '.join(TOOL_CHOICE_TYPES)}")
    if choice["type"] == "tool":
        _require_str(choice, "name", "tool_choice")
    flag = choice.get("disable_parallel_tool_use")
    if flag is not None and not isinstance(flag, bool):
        raise _fail("tool_choice.disable_parallel_tool_use", "must be true or false")


def _check_thinking(thinking: Any) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
        raise _fail("thinking.type", f"must be one of {', '.join(THINKING_TYPES)}")
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not _is_int(budget) or budget < 1:
            raise _fail("thinking.budget_tokens", "required with thinking enabled, a positive integer")


def _check_options(body: dict) -> None:
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and (not _is_number(value) or value < 0):
            raise _fail(key, "must be a non-negative number")
    top_k = body.get("top_k")
    if top_k is not None and (not _is_int(top_k) or top_k < 0):
        raise _fail("top_k", "must be a non-negative integer")
    stop = body.get("stop_sequences")
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)):
        raise _fail("stop_sequences", "must be an array of strings")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise _fail("stream", "must be true or false")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _fail("metadata", "must be an object")
        user_id = metadata.get("user_id")
        if user_id is not None and not isinstance(user_id, str):
            raise _fail("metadata.user_id", "must be a string")
    output_config = body.get("output_config")
    if output_config is not None and not isinstance(output_config, dict):
        raise _fail("output_config", "must be an object")


def validate_messages_request(body: Any, *, require_max_tokens: bool = True) -> None:
    """Raise :class:`ProtocolError` (400, message starting with the field path) for a bad request.

    Checks structure and the values a translation relies on, not every API limit: the upstream
    still reports what it alone knows. ``require_max_tokens=False`` suits ``count_tokens``.
    """
    if not isinstance(body, dict):
        raise ProtocolError(400, "request body must be a JSON object", None)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail("model", "required, a non-empty string")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        if require_max_tokens:
            raise _fail("max_tokens", "required")
    elif not _is_int(max_tokens) or max_tokens < 1:
        raise _fail("max_tokens", "must be a positive integer")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _fail("messages", "required, an array of messages")
    if not messages:
        raise _fail("messages", "at least one message is required")
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise _fail(where, "must be an object")
        role = message.get("role")
        if role not in ROLES:
            raise _fail(f"{where}.role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        content = message.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                _check_block(block, f"{where}.content.{j}", role)
        elif not isinstance(content, str):
            raise _fail(f"{where}.content", "must be a string or an array of content blocks")
    _check_system(body.get("system"))
    _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"))
    _check_thinking(body.get("thinking"))
    _check_options(body)
