"""The models zengate knows: built-in knowledge, the tiers' live lists, a models file, overrides.

Merge order for one model, later wins: built-in knowledge (or a guess from the name) → the live
``GET /models`` lists of the Zen and Go tiers (which tier serves it) → the models file
(``ZENGATE_MODELS_FILE``) → the ``model_overrides`` setting. The live lists are fetched without a
key, cached per worker and refreshed in the background; when no tier answers, the built-in free
models stand in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROTOCOLS = ("openai", "anthropic")


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


# Zen's free models and the Go tier's models as last seen; the live lists add what is served now.
# No fallbacks are built in: chains are the operator's choice (models file or the fallbacks setting).
BUILTIN: tuple[ModelInfo, ...] = (
    ModelInfo("big-pickle", "Big Pickle", True, "openai", 200_000, 32_000),
    ModelInfo("gpt-5-nano", "GPT-5 Nano", True, "openai", 400_000, 128_000, vision=True),
    ModelInfo("glm-4.7-free", "GLM 4.7 (free)", True, "openai", 200_000, 32_000),
    ModelInfo("kimi-k2.5-free", "Kimi K2.5 (free)", True, "openai", 256_000, 32_000,
              fallbacks=("big-pickle",), vision=True),
    ModelInfo("minimax-m2.5-free", "MiniMax M2.5 (free)", True, "anthropic", 200_000, 32_000,
              fallbacks=("big-pickle",)),
    ModelInfo("grok-code", "Grok Code Fast", True, "openai", 256_000, 32_000),
    ModelInfo("glm-5", "GLM 5", False, "openai", 200_000, 64_000, tier="go"),
    ModelInfo("kimi-k2.5", "Kimi K2.5", False, "openai", 256_000, 64_000, tier="go", vision=True),
    ModelInfo("minimax-m2.5", "MiniMax M2.5", False, "anthropic", 200_000, 64_000, tier="go",
              fallbacks=("glm-5",)),
)
_BUILTIN_BY_ID = {m.id: m for m in BUILTIN}

# Zen serves these families on /messages (Anthropic protocol).
_ANTHROPIC_FAMILIES = ("minimax-", "qwen3", "claude-")
_FREE_IDS = {"big-pickle", "gpt-5-nano", "grok-code"}


def is_free(model_id: str) -> bool:
    return model_id.endswith("-free") or model_id in _FREE_IDS


def default_protocol(model_id: str) -> str:
    return "anthropic" if model_id.startswith(_ANTHROPIC_FAMILIES) else "openai"


def describe(model_id: str) -> ModelInfo:
    """Built-in knowledge about a model id, or a reasonable guess from its name."""
    known = _BUILTIN_BY_ID.get(model_id)
    if known:
        return known
    return ModelInfo(model_id, model_id, is_free(model_id), default_protocol(model_id))


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
        raise ModelsFileError(f"{where}.{model_id}.protocol: must be openai or anthropic")
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
        raise ModelsFileError(f"{source}: must be a mapping with backends, models, auto, aliases")
    unknown = set(data) - {"backends", "models", "auto", "aliases"}
    if unknown:
        raise ModelsFileError(f"{source}: unknown sections {sorted(unknown)}")
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
            raise ModelsFileError(f"backends.{name}.protocol: must be openai or anthropic")
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
    return ModelsFile(backends, models, check_auto(data.get("auto") or {}, "auto"), dict(aliases))


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

DEFAULT_AUTO: dict[str, dict[str, list[str]]] = {
    "free": {
        "default": ["big-pickle", "glm-4.7-free", "gpt-5-nano"],
        "tools": ["big-pickle", "kimi-k2.5-free", "glm-4.7-free"],
        "long_context": ["gpt-5-nano", "kimi-k2.5-free", "big-pickle"],
        "reasoning": ["glm-4.7-free", "big-pickle", "gpt-5-nano"],
        "images": ["gpt-5-nano", "kimi-k2.5-free"],
    },
    "go": {
        "default": ["glm-5", "kimi-k2.5"],
        "tools": ["kimi-k2.5", "glm-5"],
        "long_context": ["kimi-k2.5", "glm-5"],
        "reasoning": ["glm-5", "kimi-k2.5"],
        "images": ["kimi-k2.5"],
    },
}


# --- the catalog ---------------------------------------------------------------------------------

class ModelCatalog:
    """Everything known about models in this worker: merged knowledge plus live lists."""

    def __init__(self, models_file: ModelsFile | None = None) -> None:
        self.file = models_file or ModelsFile()
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

    def info(self, model_id: str, overrides: dict[str, dict] | None = None) -> ModelInfo:
        """Merged knowledge about one model (see the module docstring for the order)."""
        info = describe(model_id)
        live = self.live_tier(model_id)
        if live and model_id not in _BUILTIN_BY_ID:
            info = replace(info, tier=live, free=is_free(model_id) if live == "zen" else False)
        for entry in (self.file.models.get(model_id), (overrides or {}).get(model_id)):
            if entry:
                changes = {k: (tuple(v) if k == "fallbacks" else v) for k, v in entry.items()}
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

