"""Runtime settings kept in the database, validated, and cached per worker.

A change made through one worker applies to the next request on every worker of the instance: the
writer bumps the instance's settings :class:`~zengate.runtime.generation.Generation` and each
worker reloads when it sees a number other than the one it loaded at (a memory read per lookup,
no query on the request path). Other instances sharing a PostgreSQL database reload at least every
``CACHE_SECONDS`` (``ZENGATE_SETTINGS_TTL``). When a reload fails (the database is down
or locked) the worker keeps the values it last read, logs one warning, and tries again after
``RETRY_SECONDS``: requests go on being served with the last known settings.

A setting that can hold credentials declares ``masked`` (a :class:`Masking`): every admin answer
shows it masked, and a masked value posted back keeps the stored secret. ``ALIASES`` are names of
the original Zen Gateway's admin API (``proxy_enabled``) that read and write a setting of ours.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import guards, ids
from .guards import loops
from .guards.commands import DEFAULT_RULES, check_rules
from .runtime.generation import Generation
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


#: Strings a boolean setting accepts besides JSON true/false (case-insensitive, spaces around allowed).
TRUE_WORDS = ("true", "1", "on")
FALSE_WORDS = ("false", "0", "off")
_BOOL_HINT = 'true or false (or the strings "true"/"false", "1"/"0", "on"/"off")'
#: A number written as a string: JSON's number syntax (a leading + allowed), no nan, inf or 1_000.
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER_TEXT = re.compile(r"[+-]?\d+")
_MAX_NUMBER_TEXT = 100  # characters; longer strings are not numbers anyone means


def _number_from_text(text: str, kind: type) -> int | float | None:
    """``text`` as an int or float (``kind`` says which is wanted first), or None when it is not a number."""
    text = text.strip()
    if len(text) > _MAX_NUMBER_TEXT or not _NUMBER_TEXT.fullmatch(text):
        return None
    if kind is int and _INTEGER_TEXT.fullmatch(text):
        return int(text)
    return float(text)


@dataclass(frozen=True)
class Masking:
    """How a setting that can hold credentials is shown, and how a shown value posted back is read.

    ``mask(value)`` is what every admin answer shows: enough to see that (and which) credentials
    are set, never the secret. ``restore(posted, stored)`` takes a posted value that may still hold
    masked parts (the dashboard posts the whole value back) and puts the stored secrets back in
    them; it raises ValueError when a masked part matches nothing stored.
    """

    mask: Callable[[Any], Any]
    restore: Callable[[Any, Any], Any]
    marker: str = "***"

    def holds_mask(self, value: Any) -> bool:
        return isinstance(value, str) and self.marker in value


@dataclass(frozen=True)
class Spec:
    kind: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None
    public: bool = True  # listed by GET /_admin/settings and settable through it
    masked: Masking | None = None  # holds credentials: shown masked everywhere (see Masking)
    shown_default: str | None = None  # how docs/configuration.md words a default too long to print

    def coerce(self, name: str, value: Any) -> Any:
        """``value`` checked and converted to this setting's type; SettingError naming ``name`` otherwise.

        Besides JSON's own types, a boolean takes the strings true/false, 1/0, on/off and a number
        a numeric string (the original Zen Gateway's admin API sends every value as a string);
        numbers from strings go through the same whole-number and range checks.
        """
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str):
                word = value.strip().lower()
                if word in TRUE_WORDS or word in FALSE_WORDS:
                    return word in TRUE_WORDS
            raise SettingError(name, f"must be {_BOOL_HINT}, got {_shown_input(value)}")
        if self.kind in (int, float):
            return self._number(name, value)
        if self.kind is str:
            if not isinstance(value, str):
                raise SettingError(name, f"must be a string, got {_shown_input(value)}")
            value = value.strip()
        elif self.kind is dict and not isinstance(value, dict):
            raise SettingError(name, f"must be an object, got {_shown_input(value)}")
        if self.check:
            problem = self.check(value)
            if problem:
                raise SettingError(name, problem)
        return value

    def _number(self, name: str, value: Any) -> int | float:
        what = "a whole number" if self.kind is int else "a number"
        if isinstance(value, str):
            parsed = _number_from_text(value, self.kind)
            if parsed is None:
                raise SettingError(name, f"must be {what} (or a string holding one), got {_shown_input(value)}")
            value = parsed
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingError(name, f"must be a number, got {_shown_input(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SettingError(name, f"must be a finite number, got {value}")
        if self.kind is int and value != int(value):
            raise SettingError(name, f"must be a whole number, got {value:g}")
        try:
            value = self.kind(value)
        except OverflowError:  # an integer too large for a float
            raise SettingError(name, f"must be a finite number, got {_number_text(value)}") from None
        if self.minimum is not None and value < self.minimum:
            raise SettingError(name, f"must be at least {self.minimum:g}, got {_number_text(value)}")
        if self.maximum is not None and value > self.maximum:
            raise SettingError(name, f"must be at most {self.maximum:g}, got {_number_text(value)}")
        return value

    def shown(self, value: Any) -> Any:
        """``value`` as admin answers show it (masked when the setting can hold credentials)."""
        return self.masked.mask(value) if self.masked is not None else value


def _number_text(value: int | float) -> str:
    """A number for an error message: short even when it is a huge integer."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 30 else f"{text[:12]}… ({len(text)} digits)"


def _shown_input(value: Any) -> str:
    """A refused value, repeated in the error: as JSON, cut short."""
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Alias:
    """A name kept for compatibility that reads and writes another setting; never stored itself.

    ``read(target value)`` is the alias's value; ``write(alias value, target value)`` the target's
    new value. ``spec`` checks what is posted to the alias.
    """

    spec: Spec
    target: str
    read: Callable[[Any], Any]
    write: Callable[[Any, Any], Any]


def _header_safe(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > 300 or any(ch in value for ch in "\r\n\0"):
        return "must be one line of at most 300 characters"
    return None


def _session_id(value: str) -> str | None:
    return None if ids.is_opencode_id(value, "ses") else "must look like ses_ + 12 hex + 14 base62 characters"


def _steering_text(value: str) -> str | None:
    return None if 0 < len(value) <= 2000 else "must be 1 to 2000 characters"


def _model_map(value: dict) -> str | None:
    families = ("opus", "sonnet", "haiku", "default", "gemini")
    for family, model in value.items():
        if family not in families:
            return f"unknown family {json.dumps(family)}; use {', '.join(families)}"
        if not isinstance(model, str) or not model.strip():
            return f"{family}: must be a model name"
    return None


def _model_protocols(value: dict) -> str | None:
    from .dialects.registry import names

    for model, protocol in value.items():
        if protocol not in names():
            return f"{model}: protocol must be one of {', '.join(names())}"
    return None


def _stages_check(value: dict) -> str | None:
    from .exchange.stages import check_setting

    return check_setting(value)


def _trimming_check(value: dict) -> str | None:
    from .exchange.stages import check_switches
    from .steering.trim import STEPS

    return check_switches(value, STEPS, "trimming step")


def _forced_check(value: dict) -> str | None:
    from .exchange.routing import check_forced

    return check_forced(value)


def _rewrite_check(value: dict) -> str | None:
    from .steering.rewrite import check_setting

    return check_setting(value)


def _quota_savers_check(value: dict) -> str | None:
    from .steering.housekeeping import check_setting

    return check_setting(value)


def _catalog_check(check) -> Callable[[Any], str | None]:
    """Adapt a catalog validator (raising ModelsFileError) to a setting check."""
    def run(value: Any) -> str | None:
        from .exchange.catalog import ModelsFileError

        try:
            check(value)
        except ModelsFileError as exc:
            return str(exc)
        return None
    return run


def _check_overrides(value: dict) -> None:
    from .exchange.catalog import check_model_entry

    for model_id, entry in value.items():
        check_model_entry(model_id, entry, "model_overrides")


def _check_auto(value: dict) -> None:
    from .exchange.catalog import check_auto

    check_auto(value, "auto_routes")


def _check_fallbacks(value: dict) -> None:
    from .exchange.catalog import ModelsFileError

    for model_id, chain in value.items():
        if not isinstance(chain, list) or not all(isinstance(m, str) and m for m in chain):
            raise ModelsFileError(f"{model_id}: must be a list of model names")


#: proxy URLs: the password (or a lone user name) shown as ***, and put back when posted so (upstream/proxypool.py)
PROXY_CREDENTIALS = Masking(mask=_proxy.mask_proxy_list, restore=_proxy.restore_proxy_list, marker=_proxy.MASK)


DEFAULT_MODEL_MAP = {"opus": "big-pickle", "sonnet": "big-pickle", "haiku": "gpt-5-nano", "default": "big-pickle",
                     "gemini": "big-pickle"}

SPECS: dict[str, Spec] = {
    "require_auth": Spec(bool, False, "Require an active sk-zen key (Bearer or x-api-key) on every /v1 call."),
    "opencode_project": Spec(str, "global", "x-opencode-project header sent upstream.", check=_header_safe),
    "opencode_client": Spec(str, "cli", "x-opencode-client header sent upstream.", check=_header_safe),
    "opencode_session": Spec(
        str, "", "x-opencode-session upstream: ses_ + 12 hex + 14 base62, made once per instance.", check=_session_id
    ),
    "user_agent": Spec(str, DEFAULT_USER_AGENT, "User-Agent sent upstream.", check=_header_safe),
    "model_map": Spec(dict, DEFAULT_MODEL_MAP, "Claude families (opus, sonnet, haiku, default) and gemini → Zen model.",
                      check=_model_map),
    "model_protocols": Spec(dict, {}, "Per-model upstream protocol override (openai, anthropic or responses).",
                            check=_model_protocols),
    "stages": Spec(dict, {}, "Stages run on every request's internal form, by name: {default: [...], models: "
                   "{model: [...]}, keys: {key prefix: [...]}} (zengate/exchange/stages.py).", check=_stages_check),
    "guards": Spec(dict, {}, "Agent guards switched on, by name (tool_repair, dangerous_commands, context_window, "
                   "loop_breaking): {guard: bool, models: {model: {guard: bool}}, keys: {key prefix: {guard: bool}}} "
                   "(docs/guards.md).",
                   check=guards.check_setting),
    "loop_repeats": Spec(int, 3, "The loop_breaking guard steers when the model made its latest move this many "
                         "times among its recent turns, with the same results.", 2, 100),
    "loop_message": Spec(str, loops.DEFAULT_MESSAGE, "The loop_breaking guard's answer; {loop} says what repeated.",
                         check=_steering_text),
    "command_rules": Spec(dict, DEFAULT_RULES, "Shell commands the dangerous_commands guard refuses: "
                          "{id: {pattern: a regular expression, why}}.", check=check_rules,
                          shown_default="the ten rules in [Agent guards](guards.md#dangerous_commands)"),
    "forced_model": Spec(dict, {}, "Send every request to this model whatever it asks for (the answer still names "
                         "the client's): {default: model, keys: {key prefix: model}} (docs/steering.md).",
                         check=_forced_check),
    "chat_commands": Spec(bool, False, "Read in-chat commands (!/model(NAME), !/backend, !/oneoff, !/reset, !/status, "
                          "!/help) in the latest user message (docs/steering.md)."),
    "chat_command_days": Spec(int, 30, "Days a conversation's in-chat model choice is kept after its last change.",
                              1, 3650),
    "quota_savers": Spec(dict, {}, "Answer agents' housekeeping calls (quota probe, titles, suggestions, "
                         "command-prefix, router, next-speaker and loop checks) locally: {all: bool, kind: bool} "
                         "(docs/steering.md).", check=_quota_savers_check),
    "rewrite_rules": Spec(dict, {}, "Rewriting rules by id: {where: system|user|assistant, action: replace|prepend|"
                          "append, match: literal|regex, pattern, text or file, models, keys} (docs/steering.md).",
                          check=_rewrite_check),
    "prompt_redaction": Spec(bool, False, "Mask API-key-like strings (provider keys, sk-zen keys, bearer tokens, "
                             "private keys) in prompts and tool results before they go upstream (docs/steering.md)."),
    "trimming": Spec(dict, {}, "Context trimming steps switched on (thinking, tool_results, repeats, reminders): "
                     "{step: bool, models: {model: {step: bool}}, keys: {key prefix: {step: bool}}} "
                     "(docs/steering.md#context-trimming).", check=_trimming_check),
    "trim_keep_turns": Spec(int, 4, "Trimming leaves the latest turns alone: between this many and twice as many.",
                            1, 1000),
    "trim_max_result_chars": Spec(int, 2_000, "Trimming shortens old tool results longer than this (characters).",
                                  200, 10_000_000),
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
    "max_body_bytes": Spec(int, 20_000_000, "Largest request body (bytes); larger gets a 413.", 1024, 500_000_000),
    "max_json_depth": Spec(int, 64, "Deepest nesting of arrays and objects in a body; deeper gets a 400.", 8, 512),
    "max_messages": Spec(int, 10_000, "Most messages in one request; more gets a 400.", 1, 1_000_000),
    "max_tools": Spec(int, 512, "Most tools in one request; more gets a 400.", 1, 100_000),
    "upstream_connect_timeout": Spec(float, 10.0, "Seconds to connect to the upstream (a timeout: 504).", 0.05, 300),
    "upstream_read_timeout": Spec(
        float, 300.0, "Seconds the upstream may stay silent once its answer has begun (a timeout: 504); the wait "
        "for an answer to begin is first_byte_budget's.", 0.05, 3600
    ),
    "first_byte_budget": Spec(
        float, 600.0, "Seconds a request waits for its answer to begin (a stream's first event; a JSON answer whole), "
        "over all its attempts, connecting included: while another model may follow, an attempt gets half of what "
        "is left, the last one all of it; then a 504. Generous, for reasoning models that think first.", 1, 3600
    ),
    "stream_ping_seconds": Spec(
        float, 10.0, "Send Anthropic clients a ping event after this many silent seconds (0: never).", 0, 600
    ),
    "models_refresh_seconds": Spec(int, 600, "How often the live model list is refreshed.", 10, 86_400),
    "log_bodies": Spec(bool, True, "Store input messages and output content in the request log (off: numbers only)."),
    "redact_stored_secrets": Spec(bool, True, "Mask key-like strings (sk-…, Bearer tokens, AWS/GitHub keys, "
                                  "api_key=…, the gateway's own secrets) in stored bodies with [redacted]."),
    "log_body_max_chars": Spec(int, 100_000, "Cut stored bodies at this many characters (0: none).", 0, 10_000_000),
    "log_retention_days": Spec(int, 0, "Delete request-log rows older than this many days (0: keep forever).",
                               0, 36_500),
    "log_retention_rows": Spec(int, 0, "Keep at most this many request-log rows, the newest (0: no limit).",
                               0, 1_000_000_000),
    "log_retention_due": Spec(float, 0.0, "When the next retention pass is due (epoch s; shared by instances).", 0,
                              public=False),
    "wire_capture": Spec(bool, False, "Write every client exchange (headers, bodies, upstream attempts, timings; "
                         "secrets masked) to JSON-lines files in ZENGATE_CAPTURE_DIR, for debugging."),
    "capture_body_bytes": Spec(int, 1_000_000, "Wire capture keeps at most this many bytes of each body and "
                               "stream.", 0, 100_000_000),
    "capture_max_bytes": Spec(int, 50_000_000, "Wire capture starts a worker's next file past this size (bytes).",
                              10_000, 10_000_000_000),
    "capture_max_files": Spec(int, 20, "Wire capture keeps at most this many files (all workers'), deleting the "
                              "oldest.", 1, 10_000),
    "metrics_token_hash": Spec(str, "", "SHA-256 of the bearer token GET /metrics accepts (set by the admin API).",
                               public=False),
    "admin_session_hours": Spec(float, 24.0, "Lifetime of an admin login (hours).", 0.01, 24 * 90),
    "admin_password_hash": Spec(str, "", "Salted hash of the admin password.", public=False),
    "log_cleared_at": Spec(str, "", "When the request log was last cleared (UTC, ISO 8601).", public=False),
    # proxy rotation (zengate/upstream/egress.py; also POST /_admin/proxy/settings without the prefix)
    "proxy_mode": Spec(str, "off", "off: direct only; auto: direct until a 429, then proxies; on: proxies only.",
                       check=_proxy.check_mode),
    "proxy_static": Spec(str, "", "Your own proxies (with ZENGATE_PROXIES): comma-separated http://, https://, "
                         "socks4://, socks4a://, socks5:// or socks5h:// URLs.", check=_proxy.check_proxy_list,
                         masked=PROXY_CREDENTIALS),
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


def _proxy_enabled_mode(enabled: bool, mode: str) -> str:
    """true keeps Auto or On as they are and turns Off into Auto; false is Off."""
    if not enabled:
        return "off"
    return mode if mode in ("auto", "on") else "auto"


#: Names of the original Zen Gateway's admin API that map onto zengate's own settings.
ALIASES: dict[str, Alias] = {
    "proxy_enabled": Alias(
        Spec(bool, False, "Alias of proxy_mode (the original Zen Gateway's name): true while proxy_mode is not "
             "off; setting true turns off into auto (auto and on stay), false sets off."),
        target="proxy_mode", read=lambda mode: mode != "off", write=_proxy_enabled_mode),
}


#: Settings read later than at the next request: when a stored change to one takes effect
#: (:meth:`Settings.applies`; the others apply at the next request).
APPLIES_LATER = {
    "admin_session_hours": "at the next admin login on every worker of this instance (sessions already open keep "
                           "their end)",
    "log_retention_days": "at the next retention pass, within a minute",
    "log_retention_rows": "at the next retention pass, within a minute",
}


_UNSET = object()


class Settings:
    """Typed access to the settings table with a per-worker cache, reloaded when another worker
    changed a setting (``generation``) and at least every ``cache_seconds``."""

    def __init__(self, cache_seconds: float = CACHE_SECONDS, generation: Generation | None = None):
        self._cache_seconds = cache_seconds
        self._generation = generation or Generation()
        self._seen = self._generation.read()  # the generation the values were loaded at
        self.relay: Any = None  # a zengate.store.relay.Relay: other instances reload when a setting is stored
        self._values: dict[str, Any] = {}
        self._loaded_at = -1e18
        self._lock = threading.Lock()
        self._failing = False  # the last reload failed (warned once until one succeeds)
        self._refused: set[tuple[str, str]] = set()  # stored values already warned about: (key, digest)

    @property
    def generation(self) -> Generation:
        """The instance's settings generation (a relay bumps it when another instance changed one)."""
        return self._generation

    def _load(self) -> None:
        seen = self._generation.read()  # before the query: a change committed meanwhile reloads again
        values = {}
        for row in Setting.select(Setting.key, Setting.value):
            spec = SPECS.get(row.key)
            if spec is None:
                continue
            try:
                values[row.key] = spec.coerce(row.key, self._stored_value(spec, row.value))
            except (ValueError, SettingError) as exc:
                self._warn_refused(row.key, spec, row.value, exc)  # the setting falls back to its default
        self._values = values
        self._loaded_at = time.monotonic()
        self._seen = seen

    @staticmethod
    def _stored_value(spec: Spec, raw: str) -> Any:
        """A row's value: JSON, as ``set`` writes it, or for a string setting the raw text itself (a row
        written by hand or by another tool, ``http://user:pass@host:3128`` without JSON quotes)."""
        try:
            return json.loads(raw)
        except ValueError:
            if spec.kind is str and isinstance(raw, str):
                return raw
            raise

    def _warn_refused(self, key: str, spec: Spec, raw: Any, exc: Exception) -> None:
        """Say once per stored value that it was refused, instead of showing the default silently."""
        digest = hashlib.sha256(str(raw).encode("utf-8", "replace")).hexdigest()
        if (key, digest) in self._refused:
            return
        self._refused.add((key, digest))
        # a setting that holds credentials: the reason could repeat part of them
        reason = "not shown: the value may hold credentials" if spec.masked is not None else (
            exc.message if isinstance(exc, SettingError) else "not valid JSON")
        log.warning("settings: the stored value of %s is refused (%s); using the default until it is set again",
                    key, reason)

    def _stale(self) -> bool:
        return self._generation.read() != self._seen or time.monotonic() - self._loaded_at > self._cache_seconds

    def refresh(self, force: bool = False) -> None:
        """Reload when another worker changed a setting or the cache is older than its TTL; a failed
        reload keeps the last values (``force`` raises)."""
        if force or self._stale():
            loaded_once = self._loaded_at > -1e18
            # while another greenlet reloads (maybe waiting on a slow database), the others go on with
            # the values they have; only the very first load, and a forced one, wait for it
            if not self._lock.acquire(blocking=force or not loaded_once):
                return
            try:
                if force or self._stale():
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
        self._seen = self._generation.read()  # nor on every call because another worker changed one
        if not self._failing:
            self._failing = True
            log.warning("settings: could not reload from the database (%s: %s); keeping the last known values",
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")

    def get(self, name: str) -> Any:
        self.refresh()
        if name in self._values:
            return self._values[name]
        spec = SPECS.get(name)
        if spec is not None:
            return spec.default
        alias = ALIASES[name]  # KeyError for an unknown name, as for SPECS
        return alias.read(self.get(alias.target))

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    @staticmethod
    def _listed() -> dict[str, Spec]:
        """What GET /_admin/settings lists: the public settings, then the aliases."""
        listed = {name: spec for name, spec in SPECS.items() if spec.public}
        listed.update((name, alias.spec) for name, alias in ALIASES.items())
        return listed

    def shown(self, name: str, value: Any = _UNSET) -> Any:
        """``name``'s value (or ``value``) as admin answers show it: credentials masked."""
        if value is _UNSET:
            value = self.get(name)
        spec = SPECS.get(name)
        return spec.shown(value) if spec is not None else value

    def public(self) -> dict[str, Any]:
        """Every listed setting's value, credentials masked."""
        self.refresh()
        return {name: self.shown(name) for name in self._listed()}

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every listed setting's value (masked), default, help, type and bounds, for forms."""
        described = {}
        for name, spec in self._listed().items():
            entry = {"value": self.shown(name), "default": spec.shown(spec.default), "help": spec.help,
                     "type": {bool: "boolean", int: "integer", float: "number", str: "string",
                              dict: "object"}[spec.kind],
                     "minimum": spec.minimum, "maximum": spec.maximum}
            if spec.masked is not None:
                entry["masked"] = spec.masked.marker  # shown in place of secrets; posting it back keeps them
            if name in ALIASES:
                entry["alias_of"] = ALIASES[name].target
            described[name] = entry
        return described

    def prepare(self, name: Any, value: Any, *, internal: bool = False,
                pending: dict[str, Any] | None = None) -> dict[str, Any]:
        """What setting ``name`` to ``value`` stores, checked: ``{key: value}`` (an alias names its target).

        Masked parts of a posted value are replaced by the stored secrets they stand for; ``pending``
        holds changes prepared earlier in the same request (an alias reads its target there first).
        Raises SettingError; stores nothing.
        """
        if isinstance(name, str) and name in ALIASES:
            alias = ALIASES[name]
            wanted = alias.spec.coerce(name, value)
            if pending and alias.target in pending:
                current = pending[alias.target]
            else:
                self.refresh(force=True)  # the target's latest value, not one cached a moment ago
                current = self.get(alias.target)
            return {alias.target: SPECS[alias.target].coerce(alias.target, alias.write(wanted, current))}
        if not isinstance(name, str) or name not in SPECS or not (SPECS[name].public or internal):
            raise SettingError("key", f"unknown setting {json.dumps(name)}; known: {', '.join(self._listed())}")
        spec = SPECS[name]
        if spec.masked is not None and spec.masked.holds_mask(value):
            self.refresh(force=True)
            try:
                value = spec.masked.restore(value, self.get(name))
            except ValueError as exc:
                raise SettingError(name, str(exc)) from None
        return {name: spec.coerce(name, value)}

    def store(self, changes: dict[str, Any]) -> None:
        """Write values ``prepare`` returned (already checked)."""
        for name, stored in changes.items():
            payload = json.dumps(stored)
            (
                Setting.insert(key=name, value=payload, updated_at=utcnow())
                .on_conflict(conflict_target=[Setting.key],
                             update={Setting.value: payload, Setting.updated_at: utcnow()})
                .execute()
            )
            self._values[name] = stored
        if changes:
            self.changed()

    def changed(self) -> None:
        """What workers cache from the database changed (a setting, a key): every worker of this
        instance reloads before its next lookup, and, with a relay, every other instance's."""
        self._generation.bump()
        if self.relay is not None:
            self.relay.settings_changed()

    def applies(self, name: str | None = None) -> str:
        """When a change to ``name`` (any setting: None) stored now takes effect, in words.

        On this instance: at the next request on every worker (the shared generation), or for the
        few settings read later (``APPLIES_LATER``) at that moment. On the other instances: as soon
        as Redis relays it when a relay is up, otherwise when their cache expires (the TTL).
        """
        target = ALIASES[name].target if name in ALIASES else name
        here = APPLIES_LATER.get(target or "", "at the next request on every worker of this instance")
        ttl = self._cache_seconds
        within = "at their next request" if ttl <= 0 else f"within {ttl:g} s"
        if self.relay is None:
            there = f"other instances sharing its database: {within} (ZENGATE_SETTINGS_TTL)"
        elif self.relay.up:
            there = f"other instances: as soon as Redis relays it ({within} at most, ZENGATE_SETTINGS_TTL)"
        else:
            there = f"other instances: {within} (ZENGATE_SETTINGS_TTL), Redis being unreachable"
        return f"{here}; {there}"

    def set(self, name: Any, value: Any, *, internal: bool = False) -> Any:
        """Validate and store one setting; returns the stored value (an alias's: its own new value).

        The value returned is the real one: show it with ``shown(name, value)``.
        """
        changes = self.prepare(name, value, internal=internal)
        self.store(changes)
        if name in ALIASES:
            return self.get(name)
        return changes[name]

    def ensure(self, name: str, make: Callable[[], Any]) -> Any:
        """Store ``make()`` under ``name`` unless a value exists (first writer wins)."""
        self.refresh(force=True)
        if name in self._values:
            return self._values[name]
        value = SPECS[name].coerce(name, make())
        Setting.insert(key=name, value=json.dumps(value), updated_at=utcnow()).on_conflict_ignore().execute()
        self._generation.bump()
        self.refresh(force=True)
        return self._values.get(name, value)
