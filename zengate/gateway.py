"""The per-worker services a request needs, assembled once by the app factory."""

from __future__ import annotations

import logging
import time

from flask import current_app

from . import auth, ids, routing
from .catalog import ModelCatalog
from .config import DEFAULT_ADMIN_PASSWORD, Config
from .records import RequestRecord
from .settings import Settings
from .store.requestlog import RequestLogWriter
from .upstream.client import UpstreamClient

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, config: Config):
        self.config = config
        self.settings = Settings(cache_seconds=config.settings_ttl)
        self.upstream = UpstreamClient(self.settings)
        self.request_log = RequestLogWriter()
        self.catalog = ModelCatalog()
        self.started_at = time.time()
        self.background = None

    def initialise_state(self) -> None:
        """First-start state: the instance's OpenCode session id and the admin password."""
        self.settings.ensure("opencode_session", lambda: ids.opencode_id("ses"))
        self.settings.ensure("admin_password_hash", lambda: auth.initial_password_hash(self.config.admin_password))

    def start_background(self) -> None:
        from .background import Background

        if self.background is None:
            self.background = Background(self)
            self.background.start()

    def stop_background(self) -> None:
        """Stop the loop and flush the request log (worker exit)."""
        from .background import flush_all

        if self.background is not None:
            self.background.stop()
        else:
            flush_all(self)

    def admin_password_is_default(self) -> bool:
        return auth.check_password(self.settings.get("admin_password_hash"), DEFAULT_ADMIN_PASSWORD)

    def route(self, model: str) -> routing.Route:
        return routing.resolve(model, config=self.config, model_map=self.settings.get("model_map"),
                               protocol_overrides=self.settings.get("model_protocols"))

    def new_record(self, method: str, path: str, fmt: str) -> RequestRecord:
        return RequestRecord(
            request_id=ids.request_id(),
            method=method,
            path=path,
            format=fmt,
            sink=self.request_log,
            log_bodies=self.settings.get("log_bodies"),
            body_max_chars=self.settings.get("log_body_max_chars"),
        )

    def refresh_models(self) -> bool:
        return self.catalog.refresh(lambda: self.upstream.get_json(self.config.upstream_url + "/models", timeout=5.0))


def current_gateway() -> Gateway:
    return current_app.extensions["zengate"]
