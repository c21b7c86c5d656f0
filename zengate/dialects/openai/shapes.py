"""OpenAI Chat Completions: error bodies and request validation."""

from __future__ import annotations

from typing import Any

from ..errors import ProtocolError

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_CODES = {
    401: "invalid_api_key",
    413: "request_too_large",
    429: "rate_limit_exceeded",
    502: "upstream_unreachable",
    504: "upstream_timeout",
}

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def error_type(status: int) -> str:
    return _TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def error_body(status: int, message: str, type: str | None = None, code: str | None = None,
               param: str | None = None) -> dict:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {
        "error": {
            "message": message,
            "type": type or error_type(status),
            "param": param,
            "code": code or _CODES.get(status),
        }
    }


def _check_type(body: dict, field: str, kinds: tuple[type, ...], what: str) -> None:
    value = body.get(field)
    if value is None:
        return
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ProtocolError(400, f"{field}: must be {what}", field)


def validate_chat_request(body: Any) -> None:
    """Raise :class:`ProtocolError` (400, naming the field) when a chat request is malformed."""
    if not isinstance(body, dict):
        raise ProtocolError(400, "request body must be a JSON object", None)
    model = body.get("model")
    if model is None:
        raise ProtocolError(400, "model: required", "model")
    if not isinstance(model, str) or not model.strip():
        raise ProtocolError(400, "model: must be a non-empty string", "model")
    messages = body.get("messages")
    if messages is None:
        raise ProtocolError(400, "messages: required", "messages")
    if not isinstance(messages, list) or not messages:
        raise ProtocolError(400, "messages: must be a non-empty array", "messages")
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise ProtocolError(400, f"{where}: must be an object", where)
        role = message.get("role")
        if role not in ROLES:
            raise ProtocolError(400, f"{where}.role: must be one of {', '.join(ROLES)}", f"{where}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ProtocolError(400, f"{where}.content: must be a string or an array of parts", f"{where}.content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise ProtocolError(400, f"{where}.content.{j}: must be an object with a type",
                                        f"{where}.content.{j}")
    _check_type(body, "stream", (bool,), "true or false")
    _check_type(body, "stream_options", (dict,), "an object")
    _check_type(body, "tools", (list,), "an array")
    _check_type(body, "temperature", (int, float), "a number")
    _check_type(body, "top_p", (int, float), "a number")
    _check_type(body, "n", (int,), "an integer")
    for field in ("max_tokens", "max_completion_tokens"):
        _check_type(body, field, (int,), "a positive integer")
        if isinstance(body.get(field), int) and body[field] < 1:
            raise ProtocolError(400, f"{field}: must be a positive integer", field)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, (str, list)):
        raise ProtocolError(400, "stop: must be a string or an array of strings", "stop")
