"""The Anthropic Messages surface: ``/v1/messages`` and ``/v1/messages/count_tokens``.

``?beta=true`` (Claude Code) and any ``anthropic-version`` / ``anthropic-beta`` are accepted.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...dialects import anthropic as anthropic_proto
from ...dialects.tokens import estimate_anthropic_tokens
from ...dialects.translate_common import is_context_length_error, prompt_too_long_message
from ...upstream.client import UpstreamError
from ..errors import ApiError
from .common import authenticate, begin, install_error_handler, read_json_body, respond, serve

bp = Blueprint("anthropic", __name__)


def _anthropic_body(err: ApiError) -> dict:
    known = err.type if err.type in anthropic_proto.STATUS_FOR_TYPE else None
    return anthropic_proto.error_body(err.status, err.message, known)


def _context_overflow(err: ApiError, exc: Exception) -> ApiError:
    """Claude Code compacts the conversation when it reads this exact prefix."""
    if isinstance(exc, UpstreamError) and is_context_length_error(exc.status, exc.message):
        return ApiError(400, prompt_too_long_message(exc.message), "invalid_request_error", kind="upstream")
    return err


install_error_handler(bp, _anthropic_body, _context_overflow)


@bp.post("/v1/messages")
def messages():
    gw, record = begin("anthropic")
    authenticate(gw, record)
    body = read_json_body(gw)
    anthropic_proto.validate_messages_request(body)
    record.model, record.stream, record.input_messages = body["model"], bool(body.get("stream")), body["messages"]
    return respond(serve(gw, body, record, anthropic_proto.DIALECT), record)


@bp.post("/v1/messages/count_tokens")
def count_tokens():
    gw, record = begin("anthropic")
    authenticate(gw, record)
    body = read_json_body(gw)
    anthropic_proto.validate_messages_request(body, require_max_tokens=False)
    return jsonify({"input_tokens": estimate_anthropic_tokens(body)})
