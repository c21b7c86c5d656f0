"""zengate: a self-hosted gateway from OpenAI and Anthropic clients to OpenCode Zen."""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from typing import Any

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

__version__ = "0.1.0"


def configure_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr as text or JSON (``ZENGATE_LOG_FORMAT``), secrets redacted (zengate/logs.py)."""
    from . import logs

    logs.configure(level, fmt)


def prepare_database(config) -> None:
    """Open the database and apply pending migrations (safe when several processes race)."""
    from .store.db import open_database
    from .store.migrate import migrate

    open_database(config.database_url)
    migrate()


class GatewayFlask(Flask):
    """Flask, deciding once per function, not on every request, whether a view or hook is async.

    ``ensure_sync`` runs for the view and every hook of every request; its ``iscoroutinefunction``
    check is a handful of Python calls each time, for an answer that never changes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        synced = self._synced.get(func)
        if synced is None:
            synced = super().ensure_sync(func)
            if type(func) is types.FunctionType:  # long-lived; a bound method is made anew at each access
                self._synced[func] = synced
        return synced


#: Paths whose answers carry secrets or private data (security headers in create_app).
PRIVATE_PREFIXES = ("/_admin", "/_stats", "/metrics")


def create_app(config=None) -> Flask:
    """Assemble the application: configuration, database, services, blueprints."""
    from . import dashboard
    from .api import admin, anthropic, health, models, openai, stats
    from .config import Config
    from .gateway import Gateway
    from .store.db import database

    config = config or Config.from_env()
    configure_logging(config.log_level, config.log_format)
    _register_secrets(config)
    prepare_database(config)

    app = GatewayFlask(__name__)
    from .api.limits import SafeRequest

    app.request_class = SafeRequest  # a too-deep JSON body is a 400, never a RecursionError
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    gateway = Gateway(config)
    gateway.initialise_state()
    app.extensions["zengate"] = gateway
    from . import metrics

    metrics.known_model = gateway.catalog.known  # catalog models always get their own metric label

    for blueprint in (health.bp, openai.bp, anthropic.bp, models.bp, admin.bp, stats.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(dashboard.bp)
    from .api.proxy import bp as proxy_bp  # /_admin/proxy*: proxy rotation
    app.register_blueprint(proxy_bp)
    from .api.metrics import bp as metrics_bp  # /metrics, /_admin/metrics-token
    app.register_blueprint(metrics_bp)
    from .openapi import bp as openapi_bp  # /openapi.json

    app.register_blueprint(openapi_bp)

    from . import client_limits

    app.wsgi_app = client_limits.BodyDeadline(app.wsgi_app, config.client_timeout)  # slow bodies → 408

    @app.before_request
    def _head_size():
        too_big = client_limits.oversized_head(request.environ, config.max_header_bytes)
        if too_big:
            return _error_response(431, too_big)
        return None

    @app.after_request
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

    @app.teardown_appcontext
    def _close_db(_exc):
        if not database.is_closed():
            database.close()

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return _error_response(exc.code or 500, exc.description or exc.name)

    from .store.db import UNAVAILABLE

    def _database_unavailable(exc: Exception):
        # The database is down or locked: a clear 503 in the path's shape, not a 500 (the request path of
        # /v1 needs no database; admin, stats and logins do).
        from .api.common import DB_RETRY_AFTER
        from .store.db import discard_connection

        logging.getLogger("zengate").warning("database unavailable on %s %s: %s", request.method, request.path,
                                             type(exc).__name__)
        discard_connection()
        message = "the gateway's database is unavailable right now; retry shortly"
        record = g.get("record")
        if record is not None:
            record.finish(503, message)
        response, status = _error_response(503, message)
        response.headers["Retry-After"] = str(DB_RETRY_AFTER)
        return response, status

    for kind in UNAVAILABLE:
        app.register_error_handler(kind, _database_unavailable)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logging.getLogger("zengate").exception("unhandled error on %s %s", request.method, request.path)
        return _error_response(500, f"internal error ({type(exc).__name__}); see the gateway's log")

    return app


def _register_secrets(config) -> None:
    """Values the log formatters mask wherever they appear."""
    from . import logs

    for secret in (*config.api_keys, *config.go_api_keys, config.admin_password, config.metrics_token):
        logs.register_secret(secret)


def _error_response(status: int, message: str):
    """An error in the shape of the API the path belongs to."""
    from .protocols import anthropic as anthropic_proto
    from .protocols import openai as openai_proto

    if request.path.startswith("/v1/messages") or request.headers.get("anthropic-version"):
        body = anthropic_proto.error_body(status, message)
    else:
        body = openai_proto.error_body(status, message)
    return jsonify(body), status
