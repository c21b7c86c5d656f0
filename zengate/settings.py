"""Runtime settings kept in the database, validated, and cached per worker.

Every worker reads the settings table at most every ``CACHE_SECONDS``; a change made through one
worker therefore reaches every worker (and every instance sharing a PostgreSQL database) within
seconds, with no query on the request path in between. When a reload fails (the database is down
or locked) the worker keeps the values it last read, logs one warning, and tries again after
``RETRY_SECONDS``: requests go on being served with the last known settings.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import ids
from .store.db import UNAVAILABLE, discard_connection
from .store.models import Setting, utcnow
from .upstream import proxypool as _proxy

log = logging.getLogger(__name__)

CACHE_SECONDS = 2.0
RETRY_SECONDS = 1.0  # after a failed reload, keep the last values this long before trying again

DEFAULT_USER_AGENT = "opencode/1.18.33 ai-sdk/provider-utils/4.0.23 runtime/bun/1.3.14"


class SettingError(ValueError):
    """A setting name or value was refused; ``field`` names the culprit."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Spec:
    kind: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None
    public: bool = True  # listed by GET /_admin/settings and settable through it

    def coerce(self, name: str, value: Any) -> Any:
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            raise SettingError(name, f"must be true or false, got {json.dumps(value)}")
        if self.kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingError(name, f"must be a number, got {json.dumps(value)}")
            if self.kind is int and value != int(value):
                raise SettingError(name, f"must be a whole number, got {value}")
            value = self.kind(value)
            if self.minimum is not None and value < self.minimum:
                raise SettingError(name, f"must be at least {self.minimum:g}, got {value:g}")
            if self.maximum is not None and value > self.maximum:
                raise SettingError(name, f"must be at most {self.maximum:g}, got {value:g}")
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise SettingError(name, f"must be a string, got {json.dumps(value)}")
            value = value.strip()
        elif self.kind is dict and not isinstance(value, dict):
            raise SettingError(name, f"must be an object, got {json.dumps(value)}")
        if self.check:
            problem = self.check(value)
            if problem:
                raise SettingError(name, problem)
        return value


def _header_safe(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > 300 or any(ch in value for ch in "\r\n\0"):
        return "must be one line of at most 300 characters"
    return None


def _session_id(value: str) -> str | None:
    return None if ids.is_opencode_id(value, "ses") else "must look like ses_ + 12 hex + 14 base62 characters"


def _model_map(value: dict) -> str | None:
    families = ("opus", "sonnet", "haiku", "default")
    for family, model in value.items():
        if family not in families:
            return f"unknown family {json.dumps(family)}; use {', '.join(families)}"
        if not isinstance(model, str) or not model.strip():
            return f"{family}: must be a model name"
    return None


def _model_protocols(value: dict) -> str | None:
    for model, protocol in value.items():
        if protocol not in ("openai", "anthropic"):
            return f"{model}: protocol must be \"openai\" or \"anthropic\""
    return None


def _catalog_check(check) -> Callable[[Any], str | None]:
    """Adapt a catalog validator (raising ModelsFileError) to a setting check."""
    def run(value: Any) -> str | None:
        from .catalog import ModelsFileError

        try:
            check(value)
        except ModelsFileError as exc:
            return str(exc)
        return None
    return run


def _check_overrides(value: dict) -> None:
    from .catalog import check_model_entry

    for model_id, entry in value.items():
        check_model_entry(model_id, entry, "model_overrides")


def _check_auto(value: dict) -> None:
    from .catalog import check_auto

    check_auto(value, "auto_routes")


def _check_fallbacks(value: dict) -> None:
    from .catalog import ModelsFileError

    for model_id, chain in value.items():
        if not isinstance(chain, list) or not all(isinstance(m, str) and m for m in chain):
            raise ModelsFileError(f"{model_id}: must be a list of model names")


DEFAULT_MODEL_MAP = {"opus": "big-pickle", "sonnet": "big-pickle", "haiku": "gpt-5-nano", "default": "big-pickle"}

SPECS: dict[str, Spec] = {
    "require_auth": Spec(bool, False, "Require an sk-zen key on every /v1 call."),
    "opencode_project": Spec(str, "global", "x-opencode-project header sent upstream.", check=_header_safe),
    "opencode_client": Spec(str, "cli", "x-opencode-client header sent upstream.", check=_header_safe),
    "opencode_session": Spec(
        str, "", "x-opencode-session sent upstream; generated once per instance.", check=_session_id
    ),
    "user_agent": Spec(str, DEFAULT_USER_AGENT, "User-Agent sent upstream.", check=_header_safe),
    "model_map": Spec(dict, DEFAULT_MODEL_MAP, "Claude families (opus, sonnet, haiku, default) → Zen model.",
                      check=_model_map),
    "model_protocols": Spec(dict, {}, "Per-model upstream protocol override (openai | anthropic).",
                            check=_model_protocols),
    "fallbacks": Spec(dict, {}, "Fallback chains: model → [models tried next on 429, 5xx, timeouts].",
                      check=_catalog_check(_check_fallbacks)),
    "model_overrides": Spec(dict, {}, "Per-model knowledge: protocol, max_output, context, tier, fallbacks….",
                            check=_catalog_check(_check_overrides)),
    "auto_routes": Spec(dict, {}, "free-auto / go-auto preference lists: {tier: {situation: [models]}}.",
                        check=_catalog_check(_check_auto)),
    "long_context_tokens": Spec(int, 100_000, "Requests this large count as long context for auto routing.",
                                1000, 10_000_000),
    "max_attempts": Spec(int, 4, "Upstream attempts per request over fallbacks and keys (before the first byte).",
                         1, 20),
    "stream_upstream": Spec(bool, False, "Ask the upstream for a stream even when the client did not; fold it."),
    "max_body_bytes": Spec(int, 20_000_000, "Largest accepted request body (bytes).", 1024, 500_000_000),
    "max_json_depth": Spec(int, 64, "Deepest nesting of arrays and objects accepted in a request body.", 8, 512),
    "max_messages": Spec(int, 10_000, "Most messages accepted in one request.", 1, 1_000_000),
    "max_tools": Spec(int, 512, "Most tools accepted in one request.", 1, 100_000),
    "upstream_connect_timeout": Spec(float, 10.0, "Seconds to connect to the upstream.", 0.05, 300),
    "upstream_read_timeout": Spec(
        float, 300.0, "Seconds the upstream may stay silent (before or within a stream).", 0.05, 3600
    ),
    "stream_ping_seconds": Spec(
        float, 10.0, "Send Anthropic clients a ping event after this many silent seconds (0: never).", 0, 600
    ),
    "models_refresh_seconds": Spec(int, 600, "How often the live model list is refreshed.", 10, 86_400),
    "log_bodies": Spec(bool, True, "Store input messages and output content in the request log."),
    "redact_stored_secrets": Spec(bool, True, "Mask key-like strings (sk-…, Bearer tokens, AWS/GitHub keys, "
                                  "api_key=…, the gateway's own secrets) in stored bodies with [redacted]."),
    "log_body_max_chars": Spec(int, 100_000, "Truncate stored bodies to this many characters.", 0, 10_000_000),
    "log_retention_days": Spec(int, 0, "Delete request-log rows older than this many days (0: keep forever).",
                               0, 36_500),
    "log_retention_rows": Spec(int, 0, "Keep at most this many request-log rows, the newest (0: no limit).",
                               0, 1_000_000_000),
    "log_retention_due": Spec(float, 0.0, "When the next retention pass is due (epoch s; shared by instances).", 0,
                              public=False),
    "metrics_token_hash": Spec(str, "", "SHA-256 of the bearer token GET /metrics accepts (set by the admin API).",
                               public=False),
    "admin_session_hours": Spec(float, 24.0, "Lifetime of an admin login (hours).", 0.01, 24 * 90),
    "admin_password_hash": Spec(str, "", "Salted hash of the admin password.", public=False),
    "log_cleared_at": Spec(str, "", "When the request log was last cleared (UTC, ISO 8601).", public=False),
    # proxy rotation (zengate/upstream/egress.py; also POST /_admin/proxy/settings without the prefix)
    "proxy_mode": Spec(str, "off", "off: direct only; auto: direct until a 429, then proxies; on: proxies only.",
                       check=_proxy.check_mode),
    "proxy_static": Spec(str, "", "Your own proxies (with ZENGATE_PROXIES): comma-separated http:// or socks5:// "
                         "URLs.", check=_proxy.check_proxy_list),
    "proxy_geonode": Spec(bool, True, "Fetch public proxies from Geonode (ZENGATE_GEONODE_URL) when not off."),
    "proxy_min_uptime": Spec(int, 80, "Geonode filterUpTime: lowest uptime (%) of a proxy.", 0, 100),
    "proxy_protocols": Spec(str, "http,https", "Geonode protocols filter (http, https, socks4, socks5).",
                            check=_proxy.check_protocols),
    "proxy_last_checked_minutes": Spec(int, 0, "Geonode filterLastChecked: checked within N minutes (0: any).",
                                       0, 100_000),
    "proxy_speed": Spec(str, "", "Geonode speed filter: fast, medium, slow (empty: any).", check=_proxy.check_speed),
    "proxy_anonymity": Spec(str, "", "Geonode anonymityLevel: elite, anonymous, transparent (empty: any).",
                            check=_proxy.check_anonymity),
    "proxy_countries": Spec(str, "", "Geonode country filter: two-letter codes, comma-separated (empty: any).",
                            check=_proxy.check_countries),
    "proxy_page_limit": Spec(int, 100, "Proxies per Geonode page.", 1, 500),
    "proxy_max_pages": Spec(int, 3, "Most Geonode pages fetched per refresh.", 1, 50),
    "proxy_refresh_seconds": Spec(float, 1800.0, "How often each worker refreshes its proxy pool.", 1, 86_400),
    "proxy_direct_retry_seconds": Spec(float, 300.0, "Auto: try direct again this long after a 429.", 0.1, 86_400),
    "proxy_max_attempts": Spec(int, 5, "Different proxies tried per request before giving up.", 1, 20),
    "proxy_connect_timeout": Spec(float, 5.0, "Seconds to connect to a proxy.", 0.05, 300),
    "proxy_list_private_ok": Spec(bool, False, "Accept fetched proxies on loopback/private addresses or host names "
                                  "(a list you serve on your own network)."),
    "proxy_rate_limited_since": Spec(float, 0.0, "Auto: when direct met a 429 (epoch s, 0: not).", 0, public=False),
    "proxy_next_direct_retry": Spec(float, 0.0, "Auto: when direct is tried again (epoch s).", 0, public=False),
    "proxy_refresh_requested": Spec(float, 0.0, "When a refresh of every worker's pool was asked.", 0, public=False),
}


class Settings:
    """Typed access to the settings table with a short per-worker cache."""

    def __init__(self, cache_seconds: float = CACHE_SECONDS):
        self._cache_seconds = cache_seconds
        self._values: dict[str, Any] = {}
        self._loaded_at = -1e18
        self._lock = threading.Lock()
        self._failing = False  # the last reload failed (warned once until one succeeds)

    def _load(self) -> None:
        values = {}
        for row in Setting.select(Setting.key, Setting.value):
            spec = SPECS.get(row.key)
            if spec is None:
                continue
            try:
                values[row.key] = spec.coerce(row.key, json.loads(row.value))
            except (ValueError, SettingError):
                continue  # a bad stored value falls back to the default
        self._values = values
        self._loaded_at = time.monotonic()

    def refresh(self, force: bool = False) -> None:
        """Reload when the cache is older than its TTL; a failed reload keeps the last values (``force`` raises)."""
        if force or time.monotonic() - self._loaded_at > self._cache_seconds:
            loaded_once = self._loaded_at > -1e18
            # while another greenlet reloads (maybe waiting on a slow database), the others go on with
            # the values they have; only the very first load, and a forced one, wait for it
            if not self._lock.acquire(blocking=force or not loaded_once):
                return
            try:
                if force or time.monotonic() - self._loaded_at > self._cache_seconds:
                    try:
                        self._load()
                    except UNAVAILABLE as exc:
                        discard_connection()
                        if force:
                            raise
                        self._reload_failed(exc)
                        return
                    if self._failing:
                        self._failing = False
                        log.info("settings: reloaded from the database again")
            finally:
                self._lock.release()

    def _reload_failed(self, exc: Exception) -> None:
        # as if loaded just so long ago that the next try comes RETRY_SECONDS from now, not on every call
        self._loaded_at = time.monotonic() - self._cache_seconds + RETRY_SECONDS
        if not self._failing:
            self._failing = True
            log.warning("settings: could not reload from the database (%s: %s); keeping the last known values",
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")

    def get(self, name: str) -> Any:
        self.refresh()
        if name in self._values:
            return self._values[name]
        return SPECS[name].default

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def public(self) -> dict[str, Any]:
        self.refresh()
        return {name: self.get(name) for name, spec in SPECS.items() if spec.public}

    def describe(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"value": self.get(name), "default": spec.default, "help": spec.help,
                   "type": {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object"}[spec.kind],
                   "minimum": spec.minimum, "maximum": spec.maximum}
            for name, spec in SPECS.items()
            if spec.public
        }

    def set(self, name: Any, value: Any, *, internal: bool = False) -> Any:
        """Validate and store one setting; returns the stored value."""
        if not isinstance(name, str) or name not in SPECS or not (SPECS[name].public or internal):
            raise SettingError("key", f"unknown setting {json.dumps(name)}; known: {', '.join(self.public())}")
        stored = SPECS[name].coerce(name, value)
        payload = json.dumps(stored)
        (
            Setting.insert(key=name, value=payload, updated_at=utcnow())
            .on_conflict(conflict_target=[Setting.key], update={Setting.value: payload, Setting.updated_at: utcnow()})
            .execute()
        )
        self._values[name] = stored
        return stored

    def ensure(self, name: str, make: Callable[[], Any]) -> Any:
        """Store ``make()`` under ``name`` unless a value exists (first writer wins)."""
        self.refresh(force=True)
        if name in self._values:
            return self._values[name]
        value = SPECS[name].coerce(name, make())
        Setting.insert(key=name, value=json.dumps(value), updated_at=utcnow()).on_conflict_ignore().execute()
        self.refresh(force=True)
        return self._values.get(name, value)
