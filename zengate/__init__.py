"""zengate: a self-hosted gateway from OpenAI and Anthropic clients to OpenCode Zen."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

__version__ = "0.1.0"


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def prepare_database(config) -> None:
    """Open the database and apply pending migrations (safe when several processes race)."""
    from .store.db import open_database
    from .store.migrate import migrate

    open_database(config.database_url)
    migrate()


def create_app(config=None) -> Flask:
    """Assemble the application: configuration, database, services, blueprints."""
    from . import dashboard
    from .api import admin, anthropic, health, models, openai, stats
    from .config import Config
    from .gateway import Gateway
    from .store.db import database

    config = config or Config.from_env()
    configure_logging(config.log_level)
    prepare_database(config)

    app = Flask(__name__)
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    gateway = Gateway(config)
    gateway.initialise_state()
    app.extensions["zengate"] = gateway

    for blueprint in (health.bp, openai.bp, anthropic.bp, models.bp, admin.bp, stats.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(dashboard.bp)
    from .api.proxy import bp as proxy_bp  # /_admin/proxy*: proxy rotation
    app.register_blueprint(proxy_bp)

    @app.teardown_appcontext
    def _close_db(_exc):
        if not database.is_closed():
            database.close()

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return _error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logging.getLogger("zengate").exception("unhandled error on %s %s", request.method, request.path)
        return _error_response(500, f"internal error ({type(exc).__name__}); see the gateway's log")

    return app


def _error_response(status: int, message: str):
    """An error in the shape of the API the path belongs to."""
    from .protocols import anthropic as anthropic_proto
    from .protocols import openai as openai_proto

    if request.path.startswith("/v1/messages") or request.headers.get("anthropic-version"):
        body = anthropic_proto.error_body(status, message)
    else:
        body = openai_proto.error_body(status, message)
    return jsonify(body), status
