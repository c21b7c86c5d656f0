"""Anthropic Messages as a dialect: ``POST /v1/messages`` for clients (Claude Code, the SDK), and
``/messages`` upstream (MiniMax, Qwen 3 on Zen). Its shapes are the internal form's, so most of its
converters are checks and renames (request.py, answer.py, stream.py); shapes.py holds its errors,
validation and the gateway's thinking signature."""

from __future__ import annotations

from typing import Any

from ...exchange.form import is_server_tool
from ..base import Notes
from ..translate_common import not_an_answer
from . import answer, request, stream
from .headers import passed_headers
from .shapes import (
    BLOCK_TYPES,
    GATEWAY_SIGNATURE,
    GATEWAY_SIGNATURE_PREFIX,
    IMAGE_MEDIA_TYPES,
    ROLES,
    STATUS_FOR_TYPE,
    client_signature,
    error_body,
    error_type,
    is_gateway_signature,
    unwrapped_signature,
    validate_messages_request,
    without_gateway_thinking,
)

__all__ = [
    "BLOCK_TYPES", "DIALECT", "GATEWAY_SIGNATURE", "GATEWAY_SIGNATURE_PREFIX", "IMAGE_MEDIA_TYPES",
    "ROLES", "STATUS_FOR_TYPE", "client_signature", "error_body", "error_type", "is_gateway_signature",
    "unwrapped_signature", "validate_messages_request", "without_gateway_thinking",
]

PING = stream.encode_event("ping", {"type": "ping"})


def note_answer(body: Any, notes: Notes) -> None:
    """What the request log keeps of a message: usage (cache reads and writes counted as input),
    text, the tools called."""
    if not (isinstance(body, dict) and isinstance(body.get("content"), list)):
        raise not_an_answer(body, "an Anthropic message")
    usage = body.get("usage") or {}
    cached = (usage.get("cache_read_input_tokens") or 0) + (usage.get("cache_creation_input_tokens") or 0)
    notes.add_usage((usage.get("input_tokens") or 0) + cached, usage.get("output_tokens"))
    for block in body.get("content") or []:
        if block.get("type") == "text":
            notes.add_output(block.get("text"))
        elif block.get("type") == "tool_use":
            notes.add_output(f"[tool_use {block.get('name')}({block.get('input')})]")


class Anthropic:
    """The Anthropic Messages dialect (see :class:`zengate.dialects.base.Dialect`)."""

    name = "anthropic"
    title = "Anthropic Messages"  # what people call this API
    upstream_path = "/messages"
    client_paths = ("/v1/messages",)
    heartbeat = PING  # sent to a streaming client while the upstream is silent (it thinks)

    @staticmethod
    def error_body(status: int, message: str, type: str | None = None, param: str | None = None) -> dict:
        return error_body(status, message, type)

    @staticmethod
    def unserved(form: dict) -> list[str]:
        """Its server tools (web_search_20250305, bash_20250124…): only an Anthropic upstream runs them."""
        tools = form.get("tools") or ()
        return [str(tool.get("type")) for tool in tools if isinstance(tool, dict) and is_server_tool(tool)]

    @staticmethod
    def auth_headers(key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}

    @staticmethod
    def passed_headers(headers: Any, catalog: Any) -> dict[str, str]:
        """``anthropic-beta``, filtered to what Anthropic-protocol upstreams accept (see headers.py)."""
        return passed_headers(headers, catalog.anthropic_betas)

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

DIALECT = Anthropic()
