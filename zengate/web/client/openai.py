"""The OpenAI-compatible surface: ``/v1/chat/completions``."""

from __future__ import annotations

from flask import Blueprint

from ...dialects import openai as openai_proto
from ...dialects.translate_common import is_context_length_error
from ..errors import ApiError
from .common import authenticate, begin, install_error_handler, read_json_body, respond, serve

bp = Blueprint("openai", __name__)


def _openai_body(err: ApiError) -> dict:
    """OpenAI's error shape; a prompt that does not fit says ``context_length_exceeded``, as OpenAI's does."""
    code = "context_length_exceeded" if err.status < 500 and is_context_length_error(err.status, err.message) \
        else None
    return openai_proto.error_body(err.status, err.message, err.type, code=code, param=err.param)


install_error_handler(bp, _openai_body)


@bp.post("/v1/chat/completions")
def chat_completions():
    gw, record = begin("openai")
    authenticate(gw, record)
    body = read_json_body(gw)
    openai_proto.validate_chat_request(body)
    record.model, record.stream, record.input_messages = body["model"], bool(body.get("stream")), body["messages"]
    return respond(serve(gw, body, record, openai_proto.DIALECT), record)
