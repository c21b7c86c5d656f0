"""Stats over the request log: totals, one page of the log, clearing it. Admin only."""

from __future__ import annotations

import json
import time

import peewee
from flask import Blueprint, jsonify, request

from .. import auth
from ..errors import ApiError
from ..gateway import current_gateway
from ..store.models import RequestLog
from .admin import render_error, require_admin

bp = Blueprint("stats", __name__, url_prefix="/_stats")

MAX_PAGE = 500


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    return render_error(err)


@bp.before_request
def _guard():
    require_admin()
    current_gateway().request_log.flush(force=True)  # this worker's queued rows count too


def _int_arg(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name}: must be an integer", param=name, kind="input") from None
    if not minimum <= value <= maximum:
        raise ApiError(400, f"{name}: must be between {minimum} and {maximum}", param=name, kind="input")
    return value


def _row(r: RequestLog, *, bodies: bool) -> dict:
    row = {
        "id": r.id,
        "created_at": auth.iso(r.created_at),
        "request_id": r.request_id,
        "method": r.method,
        "path": r.path,
        "model": r.model,
        "upstream_model": r.upstream_model,
        "format": r.format,
        "stream": r.stream,
        "status": r.status,
        "latency_ms": r.latency_ms,
        "ttfb_ms": r.ttfb_ms,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "key_prefix": r.key_prefix,
        "proxy": r.proxy,
        "error": r.error,
    }
    if bodies:
        try:
            row["input_messages"] = json.loads(r.input_messages) if r.input_messages else None
        except ValueError:
            row["input_messages"] = r.input_messages
        row["output_content"] = r.output_content
    return row


@bp.get("")
def summary():
    gw = current_gateway()
    fn = peewee.fn
    is_error = peewee.Case(None, [((RequestLog.status >= 400) | RequestLog.error.is_null(False), 1)], 0)
    total, errors, avg_latency, tokens_in, tokens_out = RequestLog.select(
        fn.COUNT(RequestLog.id),
        fn.COALESCE(fn.SUM(is_error), 0),
        fn.AVG(RequestLog.latency_ms),
        fn.COALESCE(fn.SUM(RequestLog.input_tokens), 0),
        fn.COALESCE(fn.SUM(RequestLog.output_tokens), 0),
    ).tuples().get()
    recent = RequestLog.select().order_by(RequestLog.id.desc()).limit(10)
    return jsonify({
        "total_requests": int(total),
        "errors": int(errors),
        "average_latency_ms": round(float(avg_latency), 2) if avg_latency is not None else None,
        "input_tokens": int(tokens_in),
        "output_tokens": int(tokens_out),
        "uptime_seconds": round(time.time() - gw.started_at, 1),
        "recent_requests": [_row(r, bodies=False) for r in recent],
    })


@bp.get("/requests")
def requests_page():
    limit = _int_arg("limit", 50, 1, MAX_PAGE)
    offset = _int_arg("offset", 0, 0, 10**9)
    total = RequestLog.select().count()
    rows = RequestLog.select().order_by(RequestLog.id.desc()).limit(limit).offset(offset)
    return jsonify({"total": total, "limit": limit, "offset": offset,
                    "requests": [_row(r, bodies=True) for r in rows]})


@bp.post("/clear")
def clear():
    deleted = RequestLog.delete().execute()
    return jsonify({"cleared": deleted})
