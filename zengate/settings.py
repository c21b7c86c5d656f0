"""Runtime settings kept in the database, validated, and cached per worker.

Every worker reads the settings table at most every ``CACHE_SECONDS``; a change made through one
worker therefore reaches every worker (and every instance sharing a PostgreSQL database) within
seconds, with no query on the request path in between.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import ids
from .store.models import Setting, utcnow

CACHE_SECONDS = 2.0

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
    "max_body_bytes": Spec(int, 20_000_000, "Largest accepted request body (bytes).", 1024, 500_000_000),
    "upstream_connect_timeout": Spec(float, 10.0, "Seconds to connect to the upstream.", 0.05, 300),
    "upstream_read_timeout": Spec(
        float, 300.0, "Seconds the upstream may stay silent (before or within a stream).", 0.05, 3600
    ),
    "stream_ping_seconds": Spec(
        float, 10.0, "Send Anthropic clients a ping event after this many silent seconds (0: never).", 0, 600
    ),
    "models_refresh_seconds": Spec(int, 600, "How often the live model list is refreshed.", 10, 86_400),
    "log_bodies": Spec(bool, True, "Store input messages and output content in the request log."),
    "log_body_max_chars": Spec(int, 100_000, "Truncate stored bodies to this many characters.", 0, 10_000_000),
    "admin_session_hours": Spec(float, 24.0, "Lifetime of an admin login (hours).", 0.01, 24 * 90),
    "admin_password_hash": Spec(str, "", "Salted hash of the admin password.", public=False),
}


class Settings:
    """Typed access to the settings table with a short per-worker cache."""

    def __init__(self, cache_seconds: float = CACHE_SECONDS):
        self._cache_seconds = cache_seconds
        self._values: dict[str, Any] = {}
        self._loaded_at = -1e18
        self._lock = threading.Lock()

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
        if force or time.monotonic() - self._loaded_at > self._cache_seconds:
            with self._lock:
                if force or time.monotonic() - self._loaded_at > self._cache_seconds:
                    self._load()

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
