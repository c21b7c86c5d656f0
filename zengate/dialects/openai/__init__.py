"""OpenAI Chat Completions as a dialect: ``POST /v1/chat/completions`` for clients (opencode, the
SDK, IDE plugins), and ``/chat/completions`` upstream (most of Zen's models). request.py, answer.py
and stream.py convert both ways; shapes.py holds its errors and validation."""

from __future__ import annotations

from typing import Any

from ..base import Notes
from ..translate_common import not_an_answer
from . import answer, request, stream
from .shapes import ROLES, error_body, error_type, validate_chat_request

__all__ = ["DIALECT", "ROLES", "error_body", "error_type", "validate_chat_request"]


def note_answer(body: Any, notes: Notes) -> None:
    """What the request log keeps of a ``chat.completion``: usage, text, the calls made."""
    if not (isinstance(body, dict) and isinstance(body.get("choices"), list)):
        raise not_an_answer(body, "a chat completion")
    usage = body.get("usage") or {}
    notes.add_usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
    for choice in body.get("choices") or []:
        message = choice.get("message") or {}
        notes.add_output(message.get("content") if isinstance(message.get("content"), str) else None)
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            notes.add_output(f"[tool_call {fn.get('name')}({fn.get('arguments', '')})]")


class OpenAIChat:
    """The OpenAI Chat Completions dialect (see :class:`zengate.dialects.base.Dialect`)."""

    name = "openai"
    title = "OpenAI Chat Completions"  # what people call this API
    upstream_path = "/chat/completions"
    client_paths = ("/v1/chat/completions",)
    heartbeat = None  # no keep-alive events for its clients

    @staticmethod
    def error_body(status: int, message: str, type: str | None = None, param: str | None = None) -> dict:
        return error_body(status, message, type, param=param)

    @staticmethod
    def unserved(form: dict) -> list[str]:
        return []  # every tool of its clients is a function any upstream can be given

    @staticmethod
    def auth_headers(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @staticmethod
    def passed_headers(headers: Any, catalog: Any) -> dict[str, str]:
        return {}  # nothing of an OpenAI client's headers goes upstream

    parse_request = staticmethod(request.parse_request)
    render_request = staticmethod(request.render_request)
    passthrough_body = staticmethod(request.passthrough_body)
    parse_answer = staticmethod(answer.parse_answer)
    render_answer = staticmethod(answer.render_answer)
    note_answer = staticmethod(note_answer)

    # the stream converters are classes built with (context) or (context, notes)
    decoder = stream.Decoder
    encoder = stream.Encoder
    passthrough = stream.Passthrough

DIALECT = OpenAIChat()
