"""The OpenAI Responses surface: ``POST /v1/responses`` (Codex CLI, the openai SDK's
``client.responses``) and ``POST /v1/responses/input_tokens``.

The gateway keeps no responses: a request carries its whole history (Codex sends it with
``store: false``), and ``previous_response_id`` is refused with a 400 that says so. A WebSocket
upgrade on ``/v1/responses`` (Codex tries one with some providers) gets a 426, so the client
falls back to HTTP at once.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from ...dialects import responses
from ..errors import ApiError
from .common import authenticate, begin, install_error_handler, read_json_body, respond, serve

log = logging.getLogger(__name__)

bp = Blueprint("responses", __name__)

install_error_handler(
    bp, lambda err: responses.error_body(err.status, err.message, type=err.type, param=err.param))


@bp.post("/v1/responses")
def create():
    gw, record = begin("responses")
    authenticate(gw, record)
    body = read_json_body(gw)
    responses.validate_request(body)
    record.model, record.stream, record.input_messages = body["model"], bool(body.get("stream")), body.get("input")
    return respond(serve(gw, body, record, responses.DIALECT), record)


@bp.post("/v1/responses/input_tokens")
def input_tokens():
    gw, record = begin("responses")
    authenticate(gw, record)
    return jsonify(responses.input_tokens(read_json_body(gw)))


@bp.get("/v1/responses")
@bp.route("/v1/responses", methods=["GET"], websocket=True, endpoint="websocket_upgrade")
def websocket():
    """No WebSocket transport: a 426 makes Codex use plain HTTP at once (a GET without the upgrade: 405)."""
    begin("responses")  # the refusal is logged like any request
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError(405, "use POST /v1/responses", kind="input", headers={"Allow": "POST"})
    raise ApiError(426, "this gateway serves the Responses API over HTTP only: POST /v1/responses",
                   kind="input")
