"""The Gemini API as a client dialect: ``generateContent``, ``streamGenerateContent`` and
``countTokens`` under ``/v1`` and ``/v1beta``, as Gemini CLI and Google's SDKs call them.

It serves clients only: no upstream of zengate speaks it, so it is registered with the client
dialects (the error shape of its paths) and not among the upstream protocols a model may have.
request.py reads its requests into the internal form; answer.py writes answers, streams (SSE
with ``alt=sse``, else one streamed JSON array) and errors back.
"""

from __future__ import annotations

from typing import Any

from ..base import Context, Notes
from . import answer, request
from .answer import error_body

__all__ = ["DIALECT", "error_body"]


class Gemini:
    """The Gemini API dialect (see :class:`zengate.dialects.base.Dialect`; the client's side only)."""

    name = "gemini"
    title = "Gemini"
    upstream_path = ""  # not an upstream protocol
    client_paths = ("/v1beta/", "/v1/models/")  # GET /v1/models itself is the OpenAI list's
    heartbeat = None

    @staticmethod
    def error_body(status: int, message: str, type: str | None = None, param: str | None = None) -> dict:
        return error_body(status, message, type, param)

    @staticmethod
    def unserved(form: dict) -> list[str]:
        """Google's own tools (Google Search, code execution…), which no upstream here runs."""
        tools = ((form.get("x_extras") or {}).get("gemini") or {}).get("tools") or []
        return [name for tool in tools if isinstance(tool, dict) for name in tool]

    @staticmethod
    def auth_headers(key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    @staticmethod
    def passed_headers(headers: Any, catalog: Any) -> dict[str, str]:
        return {}

    @staticmethod
    def note_answer(body: Any, notes: Notes) -> None:
        usage = body.get("usageMetadata") if isinstance(body, dict) else None
        if isinstance(usage, dict):
            notes.add_usage(usage.get("promptTokenCount"), usage.get("candidatesTokenCount"))

    parse_request = staticmethod(request.parse_request)
    render_answer = staticmethod(answer.render_answer)

    @staticmethod
    def encoder(context: Context) -> answer.Encoder:
        return answer.Encoder(context)

    # no upstream speaks it: routing never picks this dialect for an attempt
    def render_request(self, form: dict, target: Any, context: Context) -> dict:
        raise NotImplementedError("the Gemini API is served to clients, not used upstream")

    parse_answer = decoder = passthrough_body = passthrough = render_request


DIALECT = Gemini()
