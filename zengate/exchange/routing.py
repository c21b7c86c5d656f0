"""Model name → a plan of routes: which backend, protocol, upstream model and key, in what order.

The decisions are pure functions of their inputs (the name, the request, settings, the catalog,
cooldowns and a clock), so each one is a unit test:

* ``backend:model`` picks a backend (``zen``, ``go``, or one from the models file; ``direct:model``
  reaches the backend named ``direct``); otherwise the model's tier decides.
* ``free-auto`` / ``go-auto`` pick a model from the request itself (images, long context,
  reasoning asked, tools) with configurable preference lists.
* Claude names (``claude-*``, ``opus``, ``opus[1m]``…) and Gemini names (``gemini-*``) map by
  family through ``model_map``;
  aliases from the models file map names to names.
* Each model may list fallbacks: the plan is the model then its fallbacks, each tried with the
  backend's keys in a per-conversation order (a conversation stays on one key while it works),
  skipping (model, key) pairs and keys that are cooling down after a 429 or a 401.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..config import Config, numbered_keys
from ..dialects import registry
from . import catalog as catalog_mod
from .catalog import ModelCatalog, ModelInfo

if TYPE_CHECKING:
    from ..store.instance import Board

_CLAUDE = re.compile(r"^(?:anthropic/)?claude-", re.IGNORECASE)
_GEMINI = re.compile(r"^(?:models/|google/)?gemini-", re.IGNORECASE)
_FAMILY = re.compile(r"(opus|sonnet|haiku)", re.IGNORECASE)
AUTO_TOKENS = {"free-auto": "free", "go-auto": "go"}
RETRYABLE_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


class RoutingError(Exception):
    """A model that cannot be routed (unknown backend, no key for its tier…)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Backend:
    name: str
    base_url: str
    keys: tuple[str, ...]
    protocol: str | None = None  # None: each model's own protocol (Zen and Go serve both)
    key_hint: str = ""  # what to set when there is no key


@dataclass(frozen=True)
class Route:
    client_model: str  # what the client asked for; echoed back in answers
    upstream_model: str
    base_url: str
    protocol: str  # the upstream API: a dialect name (openai, anthropic, responses)
    key: str
    tier: str = "zen"
    max_output: int | None = None
    key_index: int = 0
    model_id: str = ""  # the catalog id (cooldowns are kept per id)
    chosen_by: str | None = None  # the auto-routing situation, when a token chose the model

    def url(self) -> str:
        return self.base_url + registry.get(self.protocol).upstream_path


@dataclass(frozen=True)
class Candidate:
    """A model on a backend, before a key is chosen."""

    model_id: str
    info: ModelInfo
    backend: Backend


@dataclass
class Plan:
    client_model: str
    candidates: list[Candidate]
    chosen_by: str | None = None

    def routes(self, cooldowns: Cooldowns, conversation: str | Callable[[], str], *, now: float | None = None,
               max_attempts: int = 4) -> Attempts:
        """The routes to try, in order; see :class:`Attempts`.

        ``conversation`` may be a callable: it is only worked out when a backend has several keys.
        """
        return Attempts(self, cooldowns, conversation, time.monotonic() if now is None else now, max_attempts)

    def _route(self, candidate: Candidate, index: int) -> Route:
        info, backend = candidate.info, candidate.backend
        return Route(
            client_model=self.client_model,
            upstream_model=info.upstream_model or candidate.model_id,
            base_url=backend.base_url,
            protocol=backend.protocol or info.protocol,
            key=backend.keys[index],
            tier=backend.name,
            max_output=info.max_output,
            key_index=index,
            model_id=candidate.model_id,
            chosen_by=self.chosen_by,
        )


class Attempts:
    """Iterates a plan's routes: each model with its keys in the conversation's order, then the fallbacks.

    Pairs that are cooling down are passed over while there is an alternative; when every route is
    cooling down the first one is tried all the same (the upstream decides — the gateway never
    invents a rate limit of its own). After a failure that is not about the key (a 5xx, a timeout),
    :meth:`next_model` skips the model's other keys.
    """

    def __init__(self, plan: Plan, cooldowns: Cooldowns, conversation: str | Callable[[], str], now: float,
                 max_attempts: int):
        self._plan, self._cooldowns, self._now, self._max_attempts = plan, cooldowns, now, max_attempts
        self._tried = 0
        self._routes = self._walk(plan, cooldowns, conversation, now, max_attempts)
        self._skip_model: str | None = None

    def __iter__(self) -> Attempts:
        return self

    def __next__(self) -> Route:
        return next(self._routes)

    def next_model(self, route: Route) -> None:
        self._skip_model = f"{route.tier}/{route.model_id}"

    def fallback_follows(self, route: Route) -> bool:
        """Whether another model may still be tried should ``route`` fail for a reason that is not
        its key's (a timeout, a 5xx): a later candidate with a key that is not cooling down, within
        ``max_attempts``. The fallback loop leaves such a route room in ``first_byte_budget``."""
        if self._tried >= self._max_attempts:
            return False
        later = False
        for candidate in self._plan.candidates:
            backend, model = candidate.backend.name, candidate.model_id
            if (backend, model) == (route.tier, route.model_id):
                later = True
            elif later and any(not self._cooldowns.cooling(backend, model, key, self._now)
                               for key in candidate.backend.keys):
                return True
        return False

    def _walk(self, plan: Plan, cooldowns: Cooldowns, conversation: str | Callable[[], str], now: float,
              max_attempts: int) -> Iterator[Route]:
        resting: list[Route] = []
        for candidate in plan.candidates:
            count = len(candidate.backend.keys)
            if count > 1 and callable(conversation):
                conversation = conversation()
            for index in key_order(count, conversation if count > 1 else ""):
                if self._skip_model == f"{candidate.backend.name}/{candidate.model_id}":
                    break
                route = plan._route(candidate, index)
                if cooldowns.cooling(candidate.backend.name, candidate.model_id, route.key, now):
                    resting.append(route)
                    continue
                if self._tried >= max_attempts:
                    return
                self._tried += 1
                yield route
        if not self._tried and resting:
            yield resting[0]


def key_order(count: int, conversation: str) -> list[int]:
    """Key indices starting at the conversation's own key, so one conversation keeps one key."""
    if count <= 1:
        return list(range(count))
    start = int(hashlib.sha256(conversation.encode()).hexdigest()[:8], 16) % count
    return [(start + i) % count for i in range(count)]


# --- cooldowns ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def key_fingerprint(key: str) -> str:
    """A key's name in rests: the start of its SHA-256 (the same in every worker and instance
    whatever order their keys are configured in; never the key)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class Cooldowns:
    """(backend, model, key) pairs and keys that should rest until a moment (monotonic seconds).

    Keys are known by their :func:`key_fingerprint`. With a ``board``, a rest noted by one worker
    is posted there and every other worker takes it before its next routing decision: a 429 seen
    by one rests the key for all.
    """

    pairs: dict[tuple[str, str, str], float] = field(default_factory=dict)
    keys: dict[tuple[str, str], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    board: Board | None = None

    def cooling(self, backend: str, model: str, key: str, now: float) -> bool:
        if self.board is not None:
            self._catch_up()
        if not self.pairs and not self.keys:
            return False
        fingerprint = key_fingerprint(key)
        return (self.pairs.get((backend, model, fingerprint), 0) > now
                or self.keys.get((backend, fingerprint), 0) > now)

    def _catch_up(self) -> None:
        """Take the rests other workers posted since the last look (a no-op when none did)."""
        posted = self.board.changed()
        if not posted:
            return
        now = time.monotonic()
        with self.lock:
            for name, seconds in posted.items():
                slot = tuple(json.loads(name))  # ["pair", backend, model, key fingerprint] or ["key", backend, …]
                table = self.pairs if slot[0] == "pair" else self.keys
                table[slot[1:]] = max(table.get(slot[1:], 0), now + seconds)

    def note(self, route: Route, status: int, retry_after: str | None, now: float | None = None) -> float | None:
        """Cool down after a failure: 429 → that model with that key; 401/403 → the key. Returns seconds."""
        now = time.monotonic() if now is None else now
        seconds = None
        fingerprint = key_fingerprint(route.key)
        with self.lock:
            if status == 429:
                seconds = parse_retry_after(retry_after) or 30.0
                self.pairs[(route.tier, route.model_id, fingerprint)] = now + seconds
                name = json.dumps(["pair", route.tier, route.model_id, fingerprint])
            elif status == 401:
                seconds = 300.0
                self.keys[(route.tier, fingerprint)] = now + seconds
                name = json.dumps(["key", route.tier, fingerprint])
        if seconds is not None and self.board is not None:
            self.board.post(name, seconds)
        return seconds

    def soonest(self, now: float | None = None) -> float | None:
        if self.board is not None:
            self._catch_up()
        now = time.monotonic() if now is None else now
        ahead = [t - now for t in (*self.pairs.values(), *self.keys.values()) if t > now]
        return min(ahead) if ahead else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``retry-after`` header (a number of seconds; HTTP dates are not used by Zen)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), 3600.0) or None


# --- what a request asks for ---------------------------------------------------------------------

@dataclass(frozen=True)
class Features:
    tools: bool = False
    images: bool = False
    reasoning: bool = False
    tokens: int = 0

    def situation(self, long_context_tokens: int) -> str:
        """The most demanding situation the request is in, in the order auto routing cares about."""
        if self.images:
            return "images"
        if self.tokens >= long_context_tokens:
            return "long_context"
        if self.reasoning:
            return "reasoning"
        if self.tools:
            return "tools"
        return "default"


def features(form: dict) -> Features:
    """What the request needs, read from its internal form (whatever API the client spoke)."""
    from ..dialects.tokens import estimate_anthropic_tokens

    text = json.dumps(form.get("messages") or [], ensure_ascii=False)
    thinking = form.get("thinking") or {}
    reasoning = bool(form.get("x_effort")) or (isinstance(thinking, dict)
                                               and thinking.get("type") in ("enabled", "adaptive"))
    return Features(tools=bool(form.get("tools")), images='"type": "image"' in text, reasoning=reasoning,
                    tokens=estimate_anthropic_tokens(form))


def conversation_key(body: dict, headers: Mapping[str, str], form: Callable[[], dict] | None = None) -> str:
    """A stable identity for a conversation: the client's session id, else its first turn (read from
    the internal ``form`` when given and the body has no ``messages``: every client API's turns)."""
    for name in ("x-session-affinity", "x-session-id", "x-claude-code-session-id", "session-id"):
        if headers.get(name):
            return headers[name]
    user_id = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
    if isinstance(user_id, str) and user_id:
        try:
            session = json.loads(user_id).get("session_id")
        except (ValueError, AttributeError):
            session = None
        return session or user_id
    if isinstance(body.get("user"), str) and body["user"]:
        return body["user"]
    if isinstance(body.get("prompt_cache_key"), str) and body["prompt_cache_key"]:
        return body["prompt_cache_key"]  # Codex: its session id
    source = form() if form is not None and "messages" not in body else body  # the form: Gemini's, Responses'
    messages = source.get("messages") or []
    first = next((m for m in messages if isinstance(m, dict) and m.get("role") == "user"), None)
    return hashlib.sha256(json.dumps([source.get("system"), first], sort_keys=True, default=str).encode()).hexdigest()


def forced_model(setting: Mapping[str, Any], key: str | None) -> str | None:
    """The model the ``forced_model`` setting sends a request to, whatever it asked for: its key's
    (by the prefix the dashboard shows), else the default; None: the request's own."""
    if not setting:
        return None
    keys = setting.get("keys") or {}
    if key is not None and key in keys:
        return keys[key] or None
    return setting.get("default") or None


def check_forced(value: Any) -> str | None:
    """What is wrong with a ``forced_model`` setting: ``{default: model, keys: {key prefix: model}}``."""
    if not isinstance(value, dict):
        return "must be an object"
    unknown = set(value) - {"default", "keys"}
    if unknown:
        return f"unknown parts {sorted(unknown)}; use default, keys"
    if "default" in value and not isinstance(value["default"], str):
        return "default: must be a model name (\"\" for none)"
    keys = value.get("keys", {})
    if not isinstance(keys, dict):
        return "keys: must be an object of model names by key prefix (sk-zen-abcdef)"
    for prefix, model in keys.items():
        if not prefix.startswith("sk-zen-"):
            return f"keys: {json.dumps(prefix)} is not a key prefix; use the prefix the dashboard shows (sk-zen-abcdef)"
        if not isinstance(model, str) or not model.strip():
            return f"keys.{prefix}: must be a model name"
    return None


def claude_family(model: str) -> str | None:
    """``opus`` / ``sonnet`` / ``haiku`` / ``default`` for a Claude model name, else None."""
    name = model.strip().lower().split("[")[0]
    if name in ("opus", "sonnet", "haiku"):
        return name
    if not _CLAUDE.match(model.strip()):
        return None
    match = _FAMILY.search(model)
    return match.group(1).lower() if match else "default"


def model_family(model: str) -> str | None:
    """The ``model_map`` family of a model name clients of other vendors send: a Claude family,
    ``gemini`` for Gemini names (``gemini-2.5-pro``, ``models/gemini-3.5-flash-lite``), else None."""
    if _GEMINI.match(model.strip()):
        return "gemini"
    return claude_family(model)


# --- the router -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RoutingSettings:
    """The settings routing reads, gathered once per request."""

    model_map: dict[str, str] = field(default_factory=dict)
    model_protocols: dict[str, str] = field(default_factory=dict)
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    model_overrides: dict[str, dict] = field(default_factory=dict)
    auto_routes: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    long_context_tokens: int = 100_000


class Router:
    """Builds plans from the configured backends and the catalog."""

    def __init__(self, config: Config, catalog: ModelCatalog, environ: Mapping[str, str] | None = None):
        environ = os.environ if environ is None else environ
        self.catalog = catalog
        self.backends: dict[str, Backend] = {
            "zen": Backend("zen", config.upstream_url, config.api_keys, key_hint="OPENCODE_API_KEY"),
            "go": Backend("go", config.go_upstream_url, config.go_api_keys, key_hint="OPENCODE_GO_API_KEY"),
        }
        for spec in catalog.file.backends.values():
            keys: tuple[str, ...] = ()
            if spec.key_env:
                first = environ.get(spec.key_env, "").strip()
                keys = tuple(dict.fromkeys(k for k in (first, *numbered_keys(spec.key_env, environ)) if k))
            self.backends[spec.name] = Backend(spec.name, spec.base_url, keys or ("",), spec.protocol,
                                               key_hint=spec.key_env or "")

    def plan(self, model: str, settings: RoutingSettings, *, request_features: Features | None = None,
             cooldowns: Cooldowns | None = None, now: float | None = None) -> Plan:
        """The routes for ``model``; :class:`RoutingError` when it cannot be routed at all."""
        requested = model.strip()
        chosen_by = None
        backend_name, name = self._split_backend(requested)
        if name in AUTO_TOKENS and backend_name is None:
            tier = AUTO_TOKENS[name]
            name, chosen_by = self._auto(tier, settings, request_features or Features(), cooldowns, now)
        aliased = self.catalog.file.aliases.get(name)
        if aliased is not None:  # an alias may name a backend too (fast: "zai:glm-4.6")
            backend_name, name = self._split_backend(aliased) if backend_name is None else (backend_name, aliased)
        family = model_family(name)
        if family and not self.catalog.known(name, settings.model_overrides):
            name = settings.model_map.get(family) or settings.model_map.get("default") or name
            backend_name, name = self._split_backend(name) if backend_name is None else (backend_name, name)

        primary = self._candidate(name, backend_name, settings)
        candidates = [primary]
        fallbacks = settings.fallbacks.get(name, primary.info.fallbacks)
        for fallback in fallbacks:
            fb_backend, fb_name = self._split_backend(fallback)
            try:
                candidate = self._candidate(fb_name, fb_backend, settings)
            except RoutingError:
                continue  # a fallback that cannot be reached here is skipped, not fatal
            if all(c.model_id != candidate.model_id or c.backend != candidate.backend for c in candidates):
                candidates.append(candidate)
        return Plan(model, candidates, chosen_by)

    def on_backend(self, model: str, backend: str | None) -> str:
        """``model`` sent to the named ``backend`` (any backend it named replaced); itself without one."""
        if backend is None:
            return model
        return f"{backend}:{self._split_backend(model)[1]}"

    def _split_backend(self, name: str) -> tuple[str | None, str]:
        prefix, sep, rest = name.partition(":")
        if sep and prefix in self.backends and rest:
            return prefix, rest
        if sep and prefix == "direct" and rest:
            raise RoutingError(400, "no backend named 'direct' is configured (declare it in ZENGATE_MODELS_FILE)")
        return None, name

    def _candidate(self, name: str, backend_name: str | None, settings: RoutingSettings) -> Candidate:
        info = self.catalog.info(name, settings.model_overrides)
        if name in settings.model_protocols:
            info = replace(info, protocol=settings.model_protocols[name])
        tier = backend_name or info.tier
        backend = self.backends.get(tier)
        if backend is None:
            raise RoutingError(400, f"model {name!r} names backend {tier!r}, which is not configured")
        if not backend.keys:
            raise RoutingError(403, f"model {name!r} is on the OpenCode {tier.capitalize()} tier and no key is "
                                    f"configured for it: set {backend.key_hint} (or use a free model)")
        return Candidate(name, info, backend)

    def _auto(self, tier: str, settings: RoutingSettings, feats: Features, cooldowns: Cooldowns | None,
              now: float | None) -> tuple[str, str]:
        lists = {**catalog_mod.DEFAULT_AUTO.get(tier, {}), **self.catalog.file.auto.get(tier, {}),
                 **settings.auto_routes.get(tier, {})}
        situation = feats.situation(settings.long_context_tokens)
        preferences = lists.get(situation) or lists.get("default") or []
        if not preferences:
            raise RoutingError(400, f"no models are configured for {tier}-auto")
        now = time.monotonic() if now is None else now
        for candidate in preferences:
            backend_name, name = self._split_backend(candidate)
            info = self.catalog.info(name, settings.model_overrides)
            backend = self.backends.get(backend_name or info.tier)
            if backend is None or not backend.keys:
                continue
            resting = cooldowns and all(cooldowns.cooling(backend.name, name, key, now) for key in backend.keys)
            if not resting:
                return candidate, situation
        return preferences[0], situation

