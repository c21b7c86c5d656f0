"""The models zengate knows: built-in knowledge, the tiers' live lists, a models file, overrides.

Merge order for one model, later wins: built-in knowledge (or a guess from the name) → the live
``GET /models`` lists of the Zen and Go tiers (which tier serves it, for a model the built-in
knowledge does not name) → the models file (``ZENGATE_MODELS_FILE``) → the ``model_overrides``
setting. The live lists are fetched without a key, cached per worker and refreshed in the
background; without them (an offline start, an outage) the built-in knowledge still sends each
model it names to its tier, and the built-in free models stand in for ``/v1/models``.

Also here: the ``anthropic-beta`` values Anthropic-protocol upstreams are known to accept
(:data:`ANTHROPIC_BETAS`, extended by the models file's ``anthropic_betas``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..dialects import registry

log = logging.getLogger(__name__)

PROTOCOLS = registry.names()  # the upstream APIs a model or backend may speak


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str
    free: bool
    protocol: str = "openai"  # upstream protocol: openai (chat/completions) | anthropic (messages)
    context: int | None = None
    max_output: int | None = None
    tier: str = "zen"  # zen | go | the name of a backend from the models file
    upstream_model: str | None = None  # the backend's own name for it, when different
    fallbacks: tuple[str, ...] = ()
    vision: bool = False


# What OpenCode publishes (opencode.ai/docs/zen and /docs/go, and the models.dev entries OpenCode's
# own client reads): Zen's free models and the Go tier's models, with their context and output
# limits. The live lists add what is served now; these keep each model on its tier without them.
# No fallbacks are built in: chains are the operator's choice (models file or the fallbacks
# setting). The only built-in preferences are DEFAULT_AUTO's lists for free-auto and go-auto, which
# name models from here.
BUILTIN: tuple[ModelInfo, ...] = (
    # Zen, free
    ModelInfo("big-pickle", "Big Pickle", True, "openai", 200_000, 32_000),
    ModelInfo("gpt-5-nano", "GPT-5 Nano", True, "responses", 400_000, 128_000, vision=True),
    ModelInfo("minimax-m2.5-free", "MiniMax M2.5 (free)", True, "anthropic", 200_000, 32_000),
    ModelInfo("mimo-v2-pro-free", "MiMo V2 Pro (free)", True, "openai", 1_048_576, 64_000),
    ModelInfo("mimo-v2-omni-free", "MiMo V2 Omni (free)", True, "openai", 262_144, 64_000, vision=True),
    ModelInfo("nemotron-3-super-free", "Nemotron 3 Super (free)", True, "openai", 204_800, 128_000),
    # Go (OPENCODE_GO_API_KEY): GLM, Kimi and MiMo on /chat/completions, MiniMax on /messages
    ModelInfo("glm-5", "GLM 5", False, "openai", 204_800, 131_072, tier="go"),
    ModelInfo("glm-5.1", "GLM 5.1", False, "openai", 204_800, 131_072, tier="go"),
    ModelInfo("kimi-k2.5", "Kimi K2.5", False, "openai", 262_144, 65_536, tier="go", vision=True),
    ModelInfo("mimo-v2-pro", "MiMo V2 Pro", False, "openai", 1_048_576, 131_072, tier="go"),
    ModelInfo("mimo-v2-omni", "MiMo V2 Omni", False, "openai", 262_144, 65_536, tier="go", vision=True),
    ModelInfo("minimax-m2.5", "MiniMax M2.5", False, "anthropic", 204_800, 65_536, tier="go"),
    ModelInfo("minimax-m2.7", "MiniMax M2.7", False, "anthropic", 204_800, 131_072, tier="go"),
)
_BUILTIN_BY_ID = {m.id: m for m in BUILTIN}

# Zen serves these families on /messages (Anthropic Messages) and on /responses (OpenAI Responses,
# the gpt-5 family's own API); the rest on /chat/completions.
_ANTHROPIC_FAMILIES = ("minimax-", "qwen3", "claude-")
_RESPONSES_FAMILIES = ("gpt-5",)
_FREE_IDS = {"big-pickle", "gpt-5-nano", "grok-code"}


def is_free(model_id: str) -> bool:
    return model_id.endswith("-free") or model_id in _FREE_IDS


def default_protocol(model_id: str) -> str:
    if model_id.startswith(_ANTHROPIC_FAMILIES):
        return "anthropic"
    return "responses" if model_id.startswith(_RESPONSES_FAMILIES) else "openai"


def describe(model_id: str) -> ModelInfo:
    """Built-in knowledge about a model id, or a reasonable guess from its name."""
    known = _BUILTIN_BY_ID.get(model_id)
    if known:
        return known
    return ModelInfo(model_id, model_id, is_free(model_id), default_protocol(model_id))


# --- anthropic-beta values ---------------------------------------------------------------------

# The anthropic-beta values sent on to an Anthropic-protocol upstream (Zen's and Go's /messages,
# or a backend of the models file); any other is dropped (and logged once per worker), because an
# upstream that checks the header answers 400 to a value it does not know. Kept: betas that
# change the request or the answer in ways a compatible upstream implements, and betas whose
# fields clients put in the body (without its beta an upstream that knows the field refuses it).
# The models file's anthropic_betas adds to these.
ANTHROPIC_BETAS: frozenset[str] = frozenset({
    # Claude Code's own marker, on every request it makes; Anthropic accepts it on every model and
    # it asks for no feature an upstream could lack.
    "claude-code-20250219",
    # Thinking between tool calls within one turn: what reasoning models such as MiniMax M2 and
    # Kimi K2 do anyway, and what Anthropic does only with this beta.
    "interleaved-thinking-2025-05-14",
    # Tool input streamed as it is generated, unbuffered (input_json_delta fragments).
    "fine-grained-tool-streaming-2025-05-14",
    # Tool calls written in fewer output tokens (Claude 3.7): the same blocks, cheaper.
    "token-efficient-tools-2025-02-19",
    # A 1M-token context window (Claude Sonnet 4 and 4.5; Zen prices their requests over 200K).
    "context-1m-2025-08-07",
    # Prompt caching (cache_control blocks): generally available now, still sent by older clients.
    "prompt-caching-2024-07-31",
    # The body's context_management (Claude Code clears old thinking with it).
    "context-management-2025-06-27",
    # The body's output_config.effort (Claude Code sends it with adaptive thinking).
    "effort-2025-11-24",
    # role "system" messages inside messages[] (Claude Code sends them with this beta).
    "mid-conversation-system-2026-04-07",
    # The body's output_format and strict tool schemas (OpenCode sends this beta).
    "structured-outputs-2025-11-13",
})
_BETA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_betas(betas: Any, where: str) -> tuple[str, ...]:
    """Validate a list of anthropic-beta values (one name per entry, as Anthropic spells them)."""
    if not isinstance(betas, list):
        raise ModelsFileError(f"{where}: must be a list of anthropic-beta names, "
                              "e.g. [interleaved-thinking-2025-05-14]")
    for i, name in enumerate(betas):
        if not isinstance(name, str) or not _BETA_NAME.fullmatch(name):
            raise ModelsFileError(f"{where}.{i}: {name!r} is not an anthropic-beta name (one name per entry: "
                                  "letters, digits, '.', '-' and '_', no commas or spaces)")
    return tuple(dict.fromkeys(betas))


# --- the models file ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BackendSpec:
    """An extra upstream declared in the models file."""

    name: str
    base_url: str
    protocol: str
    key_env: str | None = None


@dataclass(frozen=True)
class ModelsFile:
    backends: dict[str, BackendSpec] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)
    auto: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    anthropic_betas: tuple[str, ...] = ()  # added to ANTHROPIC_BETAS
    rewrite_rules: dict[str, dict] = field(default_factory=dict)  # zengate/steering/rewrite.py; the setting's win


class ModelsFileError(ValueError):
    pass


_MODEL_KEYS = {"name", "free", "protocol", "context", "max_output", "tier", "backend", "upstream_model",
               "fallbacks", "vision"}


def check_model_entry(model_id: str, entry: Any, where: str) -> dict:
    """Validate one model's overrides (from the models file or the settings table)."""
    if not isinstance(entry, dict):
        raise ModelsFileError(f"{where}.{model_id}: must be an object")
    unknown = set(entry) - _MODEL_KEYS
    if unknown:
        raise ModelsFileError(f"{where}.{model_id}: unknown keys {sorted(unknown)}; known: {sorted(_MODEL_KEYS)}")
    if "protocol" in entry and entry["protocol"] not in PROTOCOLS:
        raise ModelsFileError(f"{where}.{model_id}.protocol: must be one of {', '.join(PROTOCOLS)}")
    for key in ("context", "max_output"):
        if key in entry and (not isinstance(entry[key], int) or isinstance(entry[key], bool) or entry[key] < 1):
            raise ModelsFileError(f"{where}.{model_id}.{key}: must be a positive integer")
    if "fallbacks" in entry and (not isinstance(entry["fallbacks"], list)
                                 or not all(isinstance(f, str) and f for f in entry["fallbacks"])):
        raise ModelsFileError(f"{where}.{model_id}.fallbacks: must be a list of model names")
    for key in ("free", "vision"):
        if key in entry and not isinstance(entry[key], bool):
            raise ModelsFileError(f"{where}.{model_id}.{key}: must be true or false")
    for key in ("name", "tier", "backend", "upstream_model"):
        if key in entry and (not isinstance(entry[key], str) or not entry[key]):
            raise ModelsFileError(f"{where}.{model_id}.{key}: must be a non-empty string")
    entry = dict(entry)
    if "backend" in entry:
        entry["tier"] = entry.pop("backend")
    return entry


def check_auto(auto: Any, where: str) -> dict[str, dict[str, list[str]]]:
    """Validate auto-routing preference lists: {tier: {situation: [models]}}."""
    if not isinstance(auto, dict):
        raise ModelsFileError(f"{where}: must be an object")
    for tier, lists in auto.items():
        if not isinstance(lists, dict):
            raise ModelsFileError(f"{where}.{tier}: must be an object of lists")
        for situation, models in lists.items():
            if situation not in SITUATIONS:
                raise ModelsFileError(f"{where}.{tier}.{situation}: unknown; use {', '.join(SITUATIONS)}")
            if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
                raise ModelsFileError(f"{where}.{tier}.{situation}: must be a non-empty list of model names")
    return auto


_SECTIONS = ("backends", "models", "auto", "aliases", "anthropic_betas", "rewrite_rules")


def parse_models_file(text: str, source: str = "models file") -> ModelsFile:
    """Parse the YAML (or JSON) models file; :class:`ModelsFileError` names what is wrong."""
    try:
        import yaml

        data = yaml.safe_load(text) if text.strip() else {}
    except Exception as exc:  # noqa: BLE001 - any parse failure is reported the same way
        raise ModelsFileError(f"{source}: not valid YAML/JSON ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ModelsFileError(f"{source}: must be a mapping with {', '.join(_SECTIONS)}")
    unknown = set(data) - set(_SECTIONS)
    if unknown:
        raise ModelsFileError(f"{source}: unknown sections {sorted(unknown)}; known: {', '.join(_SECTIONS)}")
    for section in ("backends", "models", "auto", "aliases"):
        if not isinstance(data.get(section) or {}, dict):
            raise ModelsFileError(f"{section}: must be a mapping")
    backends = {}
    for name, spec in (data.get("backends") or {}).items():
        if not isinstance(spec, dict) or not isinstance(spec.get("base_url"), str):
            raise ModelsFileError(f"backends.{name}: needs base_url")
        if name in ("zen", "go"):
            raise ModelsFileError(f"backends.{name}: the names zen and go are built in")
        protocol = spec.get("protocol", "openai")
        if protocol not in PROTOCOLS:
            raise ModelsFileError(f"backends.{name}.protocol: must be one of {', '.join(PROTOCOLS)}")
        key_env = spec.get("key_env")
        if key_env is not None and not isinstance(key_env, str):
            raise ModelsFileError(f"backends.{name}.key_env: must be an environment variable name")
        backends[name] = BackendSpec(name, spec["base_url"].rstrip("/"), protocol, key_env)
    models = {mid: check_model_entry(mid, entry, "models") for mid, entry in (data.get("models") or {}).items()}
    for mid, entry in models.items():
        tier = entry.get("tier")
        if tier and tier not in ("zen", "go") and tier not in backends:
            raise ModelsFileError(f"models.{mid}.backend: no backend named {tier!r}")
    aliases = data.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise ModelsFileError("aliases: must map names to model names")
    betas = data.get("anthropic_betas")
    betas = () if betas is None else check_betas(betas, "anthropic_betas")
    return ModelsFile(backends, models, check_auto(data.get("auto") or {}, "auto"), dict(aliases), betas,
                      _rewrite_rules(data.get("rewrite_rules")))


def _rewrite_rules(value: Any) -> dict[str, dict]:
    """The models file's ``rewrite_rules:`` section, checked as the setting is."""
    from ..steering.rewrite import check_setting

    if value is None:
        return {}
    problem = check_setting(value)
    if problem:
        raise ModelsFileError(f"rewrite_rules: {problem}")
    return dict(value)


def load_models_file(path: str | None) -> ModelsFile:
    if not path:
        return ModelsFile()
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ModelsFileError(f"ZENGATE_MODELS_FILE={path}: cannot read it ({exc.strerror})") from None
    return parse_models_file(text, f"ZENGATE_MODELS_FILE={path}")


# --- auto routing preferences ------------------------------------------------------------------

SITUATIONS = ("default", "tools", "long_context", "reasoning", "images")

# Every name here is in BUILTIN, on the tier of its list (a unit test holds to it).
DEFAULT_AUTO: dict[str, dict[str, list[str]]] = {
    "free": {
        "default": ["big-pickle", "minimax-m2.5-free", "gpt-5-nano"],
        "tools": ["big-pickle", "minimax-m2.5-free", "mimo-v2-pro-free"],
        "long_context": ["mimo-v2-pro-free", "gpt-5-nano", "nemotron-3-super-free"],
        "reasoning": ["mimo-v2-pro-free", "nemotron-3-super-free", "big-pickle"],
        "images": ["gpt-5-nano", "mimo-v2-omni-free"],
    },
    "go": {
        "default": ["glm-5.1", "kimi-k2.5", "glm-5"],
        "tools": ["kimi-k2.5", "glm-5.1", "minimax-m2.7"],
        "long_context": ["mimo-v2-pro", "kimi-k2.5", "glm-5.1"],
        "reasoning": ["glm-5.1", "kimi-k2.5", "minimax-m2.7"],
        "images": ["kimi-k2.5", "mimo-v2-omni"],
    },
}


# --- the catalog ---------------------------------------------------------------------------------

class ModelCatalog:
    """Everything known about models in this worker: merged knowledge plus live lists."""

    def __init__(self, models_file: ModelsFile | None = None) -> None:
        self.file = models_file or ModelsFile()
        # what exchange.allowed_headers lets through to Anthropic-protocol upstreams (one set per catalog)
        self.anthropic_betas = ANTHROPIC_BETAS | frozenset(self.file.anthropic_betas)
        self._live: dict[str, list[dict]] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def age(self) -> float | None:
        return None if self._fetched_at is None else time.monotonic() - self._fetched_at

    def due(self, interval: float, retry_after_failure: float = 30.0) -> bool:
        """Whether a refresh is due: never fetched, older than ``interval``, or a failure long ago."""
        now = time.monotonic()
        if self._attempted_at is None:
            return True
        if self._fetched_at is None or self._fetched_at < self._attempted_at:
            return now - self._attempted_at > retry_after_failure
        return now - self._fetched_at > interval

    def refresh(self, fetch: Callable[[], Any], tier: str = "zen") -> bool:
        """Replace one tier's live list with ``fetch()`` (the upstream's ``/models`` JSON)."""
        self._attempted_at = time.monotonic()
        try:
            data = fetch()
            entries = data.get("data") if isinstance(data, dict) else None
            if not isinstance(entries, list) or not entries:
                raise ValueError("no models in the answer")
            models = [e for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]
            if not models:
                raise ValueError("no model ids in the answer")
        except Exception as exc:  # noqa: BLE001 - keep what we had
            self.last_error = f"{tier}: {str(exc)[:300]}"
            log.warning("model list refresh failed: %s", self.last_error)
            return False
        with self._lock:
            self._live[tier] = models
            self._fetched_at = time.monotonic()
            self.last_error = None
        return True

    def live_tier(self, model_id: str) -> str | None:
        for tier in ("zen", "go"):
            if any(e["id"] == model_id for e in self._live.get(tier, ())):
                return tier
        return None

    def live_ids(self, tier: str) -> frozenset[str] | None:
        """The ids in one tier's live list; None when that list was never fetched (or the tier has none)."""
        with self._lock:
            models = self._live.get(tier)
        return None if models is None else frozenset(e["id"] for e in models)

    def info(self, model_id: str, overrides: dict[str, dict] | None = None) -> ModelInfo:
        """Merged knowledge about one model (see the module docstring for the order)."""
        info = describe(model_id)
        live = self.live_tier(model_id)
        if live and model_id not in _BUILTIN_BY_ID and not info.free:
            # a free model is Zen's whichever list names it (the Go tier sells no free models, and a
            # Go list fetched before Zen's must not move one); any other goes where it is served
            info = replace(info, tier=live)
        for entry in (self.file.models.get(model_id), (overrides or {}).get(model_id)):
            if entry:
                changes = {k: (tuple(v) if k == "fallbacks" else v) for k, v in entry.items() if k != "backend"}
                if "backend" in entry:  # model_overrides may say backend, as the models file does: the tier
                    changes["tier"] = entry["backend"]
                info = replace(info, **changes)
        return info

    def known(self, model_id: str, overrides: dict[str, dict] | None = None) -> bool:
        return (model_id in _BUILTIN_BY_ID or self.live_tier(model_id) is not None
                or model_id in self.file.models or model_id in (overrides or {}))

    def entries(self, overrides: dict[str, dict] | None = None) -> list[dict]:
        """Every model as ``{"id", "name", "free", "protocol", "tier", "created", "owned_by", "source"}``."""
        seen: dict[str, dict] = {}
        for tier in ("zen", "go"):
            for entry in self._live.get(tier, ()):
                seen.setdefault(entry["id"], {**entry, "_source": "live"})
        if not seen:
            for model in (m for m in BUILTIN if m.free):
                seen[model.id] = {"id": model.id, "created": 0, "owned_by": "opencode", "_source": "builtin"}
        for model_id in (*self.file.models, *(overrides or {})):
            seen.setdefault(model_id, {"id": model_id, "created": 0, "owned_by": "zengate", "_source": "config"})
        result = []
        for entry in seen.values():
            info = self.info(entry["id"], overrides)
            result.append({
                "id": info.id,
                "name": entry.get("name") or info.name,
                "free": info.free,
                "protocol": info.protocol,
                "tier": info.tier,
                "context": info.context,
                "max_output": info.max_output,
                "created": int(entry.get("created") or 0),
                "owned_by": entry.get("owned_by") or "opencode",
                "source": entry["_source"],
            })
        return result

