"""The OpenAI-compatible surface: ``/v1/chat/completions``."""

from __future__ import annotations

from flask import Blueprint

from ...dialects import openai as openai_proto
from .common import authenticate, begin, install_error_handler, read_json_body, respond, serve

bp = Blueprint("openai", __name__)


install_error_handler(
    bp, lambda err: openai_proto.error_body(err.status, err.message, type=err.type, param=err.param))


@bp.post("/v1/chat/completions")
def chat_completions():
    gw, record = begin("openai")
    authenticate(gw, record)
    body = read_json_body(gw)
    openai_proto.validate_chat_request(body)
    record.model, record.stream, record.input_messages = body["model"], bool(body.get("stream")), body["messages"]
    return respond(serve(gw, body, record, openai_proto.DIALECT), record)
