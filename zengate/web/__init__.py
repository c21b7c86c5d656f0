"""The web layer: the application factory, the client-API views (``client/``), the admin views
(``admin/``), the dashboard, and the one decision of which API's error shape a path answers in."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from flask import Flask


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


def create_app(config=None) -> Flask:
    """Assemble the application: configuration, logging, database, the per-worker services, blueprints."""
    from ..config import Config
    from ..gateway import Gateway
    from ..runtime import logs, metrics
    from ..store.migrate import prepare_database
    from . import client_limits, hooks
    from .admin import admin, proxy, stats
    from .admin import capture as capture_views
    from .admin import metrics as metrics_views
    from .admin import models as models_views
    from .client import anthropic, gemini, models, openai, responses
    from .dashboard import bp as dashboard_bp
    from .health import bp as health_bp
    from .input_limits import SafeRequest
    from .openapi import bp as openapi_bp

    config = config or Config.from_env()
    logs.configure(config.log_level, config.log_format)
    logs.register_secrets(config)
    prepare_database(config)

    app = GatewayFlask(__name__)
    app.request_class = SafeRequest  # a too-deep JSON body is a 400, never a RecursionError
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    gateway = Gateway(config)
    gateway.initialise_state()
    app.extensions["zengate"] = gateway
    metrics.known_model = gateway.catalog.known  # catalog models always get their own metric label

    for blueprint in (health_bp, openai.bp, anthropic.bp, responses.bp, gemini.bp, models.bp, admin.bp, stats.bp,
                      dashboard_bp, proxy.bp, capture_views.bp, metrics_views.bp, models_views.bp, openapi_bp):
        app.register_blueprint(blueprint)
    app.wsgi_app = client_limits.BodyDeadline(app.wsgi_app, config.client_timeout)  # slow bodies → 408
    hooks.install(app, config)
    return app
