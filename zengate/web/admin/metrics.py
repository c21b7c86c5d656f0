"""``GET /metrics`` (Prometheus text format) and the admin API for its bearer token.

``/metrics`` answers a request carrying the metrics token (``Authorization: Bearer <token>``: the
one set through ``POST /_admin/metrics-token``, kept as a SHA-256 in the settings table, or
``ZENGATE_METRICS_TOKEN``) or a live admin session (bearer token or the dashboard's cookie);
anything else gets a 401. Tokens are compared as SHA-256 digests in constant time. Nothing secret
is ever a metric or a label.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import Blueprint, Response, jsonify, request

from ... import auth
from ...gateway import current_gateway
from ...runtime import metrics
from ..errors import ApiError
from .admin import _bearer_token, admin_token, json_object, render_error, require_admin

bp = Blueprint("metrics", __name__)

TOKEN_PREFIX = "zgm_"
MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 200


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def metrics_token_ok(token: str | None) -> bool:
    """True when ``token`` is the metrics token (the stored one or ``ZENGATE_METRICS_TOKEN``)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return False
    gw = current_gateway()
    presented = _digest(token)
    stored = gw.settings.get("metrics_token_hash") or ""
    ok = bool(stored) and hmac.compare_digest(presented, stored)
    configured = gw.config.metrics_token
    if configured:
        ok = hmac.compare_digest(presented, _digest(configured)) or ok
    return ok


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    return render_error(err)


@bp.get("/metrics")
def scrape():
    if not metrics_token_ok(_bearer_token()) and not auth.session_valid(admin_token()):
        raise ApiError(401, "metrics: send 'Authorization: Bearer <metrics token>' (POST /_admin/metrics-token "
                       "or ZENGATE_METRICS_TOKEN) or an admin session", kind="auth",
                       headers={"WWW-Authenticate": 'Bearer realm="zengate metrics"'})
    body, content_type = metrics.exposition(current_gateway())
    return Response(body, status=200, content_type=content_type, headers={"Cache-Control": "no-store"})


@bp.get("/_admin/metrics-token")
def token_status():
    require_admin()
    gw = current_gateway()
    return jsonify({"set": bool(gw.settings.get("metrics_token_hash")),
                    "environment": bool(gw.config.metrics_token)})


@bp.post("/_admin/metrics-token")
def set_token():
    """``{}`` → a new random token (shown once); ``{"token": "…"}`` → that one (16+ characters)."""
    require_admin()
    body = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(body, dict):
        body = json_object()  # a 400 saying the body must be a JSON object
    token = body.get("token")
    if token is None:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    elif not isinstance(token, str) or not MIN_TOKEN_CHARS <= len(token.strip()) <= MAX_TOKEN_CHARS:
        raise ApiError(400, f"token: must be a string of {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} characters",
                       param="token", kind="input")
    token = token.strip()
    current_gateway().settings.set("metrics_token_hash", _digest(token), internal=True)
    return jsonify({"token": token, "note": "store this token now: it is shown only once"}), 201


@bp.delete("/_admin/metrics-token")
def delete_token():
    require_admin()
    current_gateway().settings.set("metrics_token_hash", "", internal=True)
    return jsonify({"deleted": True})
