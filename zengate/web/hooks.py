"""What the app does around every view: the head-size limit, security headers, the database
connection's end, and the app-level error handlers (each answering in the path's error shape)."""

from __future__ import annotations

import logging

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException

from ..store.db import UNAVAILABLE, database, discard_connection
from . import client_limits
from .errors import DB_RETRY_AFTER, error_response

log = logging.getLogger("zengate")

#: Paths whose answers carry secrets or private data.
PRIVATE_PREFIXES = ("/_admin", "/_stats", "/metrics")


def install(app: Flask, config) -> None:
    """Register the hooks and app-level error handlers on ``app``."""

    @app.before_request
    def _head_size():
        too_big = client_limits.oversized_head(request.environ, config.max_header_bytes)
        if too_big:
            return error_response(431, too_big)
        return None

    app.after_request(_security_headers)

    @app.teardown_appcontext
    def _close_db(_exc):
        if not database.is_closed():
            database.close()

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return error_response(exc.code or 500, exc.description or exc.name)

    for kind in UNAVAILABLE:
        app.register_error_handler(kind, _database_unavailable)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, f"internal error ({type(exc).__name__}); see the gateway's log")


def _security_headers(response):
    # No CORS: no Access-Control-* header is ever sent, so browsers keep other origins out.
    # (werkzeug's setdefault finds a missing header by raising and catching an HTTPException)
    if not any(name.lower() == "x-content-type-options" for name, _ in response.headers):
        response.headers.add("X-Content-Type-Options", "nosniff")
    if request.path.startswith(PRIVATE_PREFIXES) and response.mimetype in ("application/json", "text/plain"):
        response.headers["Cache-Control"] = "no-store"  # admin, stats and metrics answers are never cached
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def _database_unavailable(exc: Exception):
    """The database is down or locked: a clear 503 in the path's shape, not a 500 (the request path
    of /v1 needs no database; admin, stats and logins do)."""
    log.warning("database unavailable on %s %s: %s", request.method, request.path, type(exc).__name__)
    discard_connection()
    message = "the gateway's database is unavailable right now; retry shortly"
    record = g.get("record")
    if record is not None:
        record.finish(503, message)
    response, status = error_response(503, message)
    response.headers["Retry-After"] = str(DB_RETRY_AFTER)
    return response, status
