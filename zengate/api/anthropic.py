"""The Anthropic Messages surface: ``/v1/messages`` and ``/v1/messages/count_tokens``.

``?beta=true`` (Claude Code) and any ``anthropic-version`` / ``anthropic-beta`` are accepted.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..errors import ApiError, from_protocol, from_upstream
from ..protocols import anthropic as anthropic_proto
from ..protocols.errors import ProtocolError
from ..protocols.tokens import estimate_anthropic_tokens
from ..protocols.translate_common import is_context_length_error, prompt_too_long_message
from ..routing import RoutingError
from ..upstream.client import UpstreamError
from .common import authenticate, begin, finish_with_error, read_json_body, respond, serve

bp = Blueprint("anthropic", __name__)


def render_error(err: ApiError):
    finish_with_error(err)
    known = err.type if err.type in anthropic_proto.STATUS_FOR_TYPE else None
    return jsonify(anthropic_proto.error_body(err.status, err.message, known)), err.status, err.headers


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
    if is_context_length_error(err.status, err.message):
        # Claude Code compacts the conversation when it reads this exact prefix.
        return render_error(ApiError(400, prompt_too_long_message(err.message), "invalid_request_error",
                                     kind="upstream"))
    return render_error(from_upstream(err))


@bp.post("/v1/messages")
def messages():
    gw, record = begin("anthropic")
    authenticate(gw, record)
    body = read_json_body(gw)
    anthropic_proto.validate_messages_request(body)
    record.model, record.stream, record.input_messages = body["model"], bool(body.get("stream")), body["messages"]
    return respond(serve(gw, body, record, "anthropic"), record)


@bp.post("/v1/messages/count_tokens")
def count_tokens():
    gw, record = begin("anthropic")
    authenticate(gw, record)
    body = read_json_body(gw)
    anthropic_proto.validate_messages_request(body, require_max_tokens=False)
    return jsonify({"input_tokens": estimate_anthropic_tokens(body)})
