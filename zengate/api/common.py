"""Steps every client-API view shares: the request record, authentication, reading the body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Response, g, jsonify, request

from .. import auth
from ..errors import ApiError
from ..exchange import Answer
from ..gateway import Gateway, current_gateway
from ..records import RequestRecord

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def begin(fmt: str) -> tuple[Gateway, RequestRecord]:
    """Open the request record for this call; error handlers finish it."""
    gw = current_gateway()
    record = gw.new_record(request.method, request.path, fmt)
    g.record = record
    return gw, record


def authenticate(gw: Gateway, record: RequestRecord) -> None:
    """Check the client's sk-zen key when ``require_auth`` is on (401 otherwise)."""
    presented = auth.presented_key(request.headers)
    if presented and presented.startswith(auth.KEY_PREFIX):
        record.key_prefix = auth.key_prefix(presented)
    if not gw.settings.get("require_auth"):
        return
    key = auth.find_active_key(presented)
    if key is None:
        message = ("this gateway requires an API key: send an active sk-zen key as "
                   "'Authorization: Bearer sk-zen-…' or 'x-api-key'")
        if presented:
            message = "invalid or revoked API key; " + message.split(": ", 1)[1]
        raise ApiError(401, message, kind="auth")
    record.key_id = key.id


def read_json_body(gw: Gateway) -> Any:
    """The request body as JSON: 413 over the size limit, 400 when it is not JSON."""
    limit = gw.settings.get("max_body_bytes")
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"request body is {length} bytes; the limit is {limit} bytes", kind="input")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"request body exceeds the limit of {limit} bytes", kind="input")
    if not data.strip():
        raise ApiError(400, "request body is empty; send a JSON object", kind="input")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", kind="input") from None


def respond(result: Answer | Iterator[bytes], record: RequestRecord) -> Response:
    """A JSON answer (the record is finished here) or a stream (its pump finishes the record)."""
    if isinstance(result, Answer):
        record.finish(200)
        return jsonify(result.body)
    return Response(result, status=200, mimetype="text/event-stream", headers=SSE_HEADERS)


def finish_with_error(err: ApiError) -> None:
    record = g.get("record")
    if record is not None:
        record.finish(err.status, err.message)
