"""Liveness: ``/healthz``, ``/health`` and the bare ``/`` that Claude Code probes with HEAD."""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, request

from .. import __version__
from ..gateway import current_gateway
from ..store import db

bp = Blueprint("health", __name__)


@bp.route("/", methods=["GET", "HEAD"])
def index():
    if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
        response = redirect("/_admin/ui", code=302)  # a person with a browser: the dashboard
    else:
        response = jsonify({"name": "zengate", "version": __version__,
                            "endpoints": ["/v1/chat/completions", "/v1/messages", "/v1/models", "/healthz"]})
    response.vary.add("Accept")
    return response


@bp.get("/healthz")
@bp.get("/health")
def healthz():
    """The database's state, the answering worker's request-log queue (queued, spilled to disk,
    failures), and whether the other instances are reachable (``REDIS_URL``; not a reason for a
    503: every instance serves on its own view meanwhile)."""
    ok = db.healthy()
    gw = current_gateway()
    return jsonify({"status": "ok" if ok else "degraded", "version": __version__,
                    "database": "ok" if ok else "unavailable",
                    "request_log": gw.request_log.status(),
                    "shared_state": gw.shared_state()}), (
        200 if ok else 503)
