"""The OpenAI-compatible surface: ``/v1/chat/completions``."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..errors import ApiError, from_protocol, from_upstream
from ..protocols import openai as openai_proto
from ..protocols.errors import ProtocolError
from ..routing import RoutingError
from ..upstream.client import UpstreamError
from .common import authenticate, begin, finish_with_error, read_json_body, respond, serve

bp = Blueprint("openai", __name__)


def render_error(err: ApiError):
    finish_with_error(err)
    body = openai_proto.error_body(err.status, err.message, type=err.type, param=err.param)
    return jsonify(body), err.status, err.headers


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    return render_error(err)


@bp.errorhandler(ProtocolError)
def _protocol_error(err: ProtocolError):
    return render_error(from_protocol(err))


@bp.errorhandler(RoutingError)
def _routing_error(err: RoutingError):
    return render_error(ApiError(err.status, err.message, kind="routing"))


@bp.errorhandler(UpstreamError)
def _upstream_error(err: UpstreamError):
    return render_error(from_upstream(err))


@bp.post("/v1/chat/completions")
def chat_completions():
    gw, record = begin("openai")
    authenticate(gw, record)
    body = read_json_body(gw)
    openai_proto.validate_chat_request(body)
    record.model, record.stream, record.input_messages = body["model"], bool(body.get("stream")), body["messages"]
    return respond(serve(gw, body, record, "openai"), record)
