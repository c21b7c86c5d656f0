"""The per-worker services a request needs, assembled once by the app factory."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable

from flask import current_app

from . import auth, ids
from .config import DEFAULT_ADMIN_PASSWORD, Config
from .exchange import routing
from .exchange.catalog import ModelCatalog, load_models_file
from .exchange.records import RequestRecord
from .runtime.capture import CaptureWriter
from .runtime.exposure import Access
from .runtime.generation import Generation
from .settings import Settings
from .store import counters
from .store.conversations import Choices
from .store.instance import RestBoard
from .store.requestlog import RequestLogWriter
from .upstream.client import UpstreamClient
from .upstream.egress import Egress

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, config: Config):
        self.config = config
        self.settings = Settings(cache_seconds=config.settings_ttl, generation=Generation.for_instance("settings"))
        self.upstream = UpstreamClient(self.settings)
        board = RestBoard.for_instance()  # rests and dead proxies, shared by the instance's workers
        self.egress = Egress(self.settings, self.upstream.session, geonode_url=config.geonode_url,
                             static_env=config.proxies, board=board.reader())
        self.upstream.egress = self.egress  # relay.send goes direct or through proxies by proxy_mode
        self.request_log = RequestLogWriter(cleared_before=self._log_cleared_at, max_queued=config.log_queue_max,
                                            spill_dir=config.spill_dir)
        self.capture = CaptureWriter(config.wire_capture_dir, self.settings)  # files only once wire_capture is on
        # keys the database accepted: not asked again until a change or the settings TTL; kept while it is down
        self.key_cache = auth.KeyCache(fresh_seconds=config.settings_ttl)
        self.conversations = Choices(Generation.for_instance("conversations"), config.settings_ttl)
        self.catalog = ModelCatalog(load_models_file(config.models_file))
        self.router = routing.Router(config, self.catalog)
        self.cooldowns = routing.Cooldowns(board=board)
        self.relay = self._relay(board) if config.redis_url else None  # and with the other instances
        self.counters = counters.for_gateway(self.relay, config.redis_url)  # the keys' limits, shared likewise
        self.started_at = time.time()
        # until the worker reports its sockets (gunicorn.conf.py, post_worker_init): the configured bind
        self.access = Access.of((config.bind,), config.allow_public_without_keys)
        self.background = None

    def _relay(self, board: RestBoard):
        from .store.relay import Relay

        relay = Relay(self.config.redis_url, board, self.settings.generation,
                      conversations_generation=self.conversations.generation)
        board.relay = self.egress.pool.board.relay = self.settings.relay = self.conversations.relay = relay
        return relay

    def _log_cleared_at(self) -> dt.datetime | None:
        value = self.settings.get("log_cleared_at")
        return dt.datetime.fromisoformat(value) if value else None

    def initialise_state(self) -> None:
        """First-start state: the instance's OpenCode session id and the admin password."""
        self.settings.ensure("opencode_session", lambda: ids.opencode_id("ses"))
        auth.ensure_admin_password(self.settings, self.config.admin_password)

    def listen_on(self, addresses: Iterable[str]) -> None:
        """Judge access by the addresses the server really listens on (the worker's sockets)."""
        self.access = Access.of(addresses, self.config.allow_public_without_keys)

    def access_report(self) -> dict:
        """Where the gateway listens and who may use ``/v1``, for the dashboard (admin session)."""
        report = self.access.describe()
        report["keys_required"] = self.keys_required()
        report["open_without_keys"] = report["open_without_keys"] and not report["keys_required"]
        return report

    def shared_state(self) -> dict:
        """Whether the other instances are reachable: ``{"redis": "off" | "ok" | "unavailable", …}``."""
        return self.relay.status() if self.relay is not None else {"redis": "off"}

    def keys_required(self) -> bool:
        """Whether a ``/v1`` call needs an sk-zen key: ``require_auth``, or listening beyond loopback."""
        return self.access.keys_required or self.settings.get("require_auth")

    def start_background(self) -> None:
        from .runtime.background import Background

        if self.background is None:
            self.background = Background(self)
            self.background.start()
        if self.relay is not None:
            self.relay.start()

    def stop_background(self) -> None:
        """Stop the loop and flush the request log (worker exit)."""
        from .runtime.background import flush_all

        if self.relay is not None:
            self.relay.stop()
        if self.background is not None:
            self.background.stop()
        else:
            flush_all(self)

    def admin_password_is_default(self) -> bool:
        return auth.check_password(self.settings.get("admin_password_hash"), DEFAULT_ADMIN_PASSWORD)

    def routing_settings(self) -> routing.RoutingSettings:
        get = self.settings.get
        return routing.RoutingSettings(
            model_map=get("model_map"), model_protocols=get("model_protocols"), fallbacks=get("fallbacks"),
            model_overrides=get("model_overrides"), auto_routes=get("auto_routes"),
            long_context_tokens=get("long_context_tokens"),
        )

    def plan(self, model: str, form: Callable[[], dict]) -> routing.Plan:
        """The routes for a request (RoutingError when the model cannot be routed); ``form`` gives the
        request in the internal form, asked only when the model is chosen by what the request needs."""
        feats = routing.features(form()) if model.strip() in routing.AUTO_TOKENS else None
        return self.router.plan(model, self.routing_settings(), request_features=feats, cooldowns=self.cooldowns)

    def new_record(self, method: str, path: str, fmt: str) -> RequestRecord:
        return RequestRecord(
            request_id=ids.request_id(),
            method=method,
            path=path,
            format=fmt,
            sink=self.request_log,
            log_bodies=self.settings.get("log_bodies"),
            body_max_chars=self.settings.get("log_body_max_chars"),
            redact_secrets=self.settings.get("redact_stored_secrets"),
        )

    def refresh_models_if_due(self) -> None:
        """Fetch the live model lists now when this worker has none yet or the background refresh is late."""
        if self.catalog.due(self.settings.get("models_refresh_seconds")):
            self.refresh_models()

    def refresh_models(self) -> bool:
        """Fetch the live model lists of both tiers (no key needed); True when Zen's answered."""
        self.catalog.refresh(lambda: self.upstream.get_json(self.config.go_upstream_url + "/models", 5.0), "go")
        return self.catalog.refresh(lambda: self.upstream.get_json(self.config.upstream_url + "/models", 5.0))


def current_gateway() -> Gateway:
    return current_app.extensions["zengate"]
