"""The models zengate knows: built-in knowledge merged with the upstream's live list.

The live list (``GET {upstream}/models``, no key needed) is fetched in the background and cached;
when the upstream cannot be reached the built-in list of free models stands in.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str
    free: bool
    protocol: str = "openai"  # upstream protocol: openai (chat/completions) | anthropic (messages)
    context: int | None = None
    max_output: int | None = None


# Zen's free models as last seen; the live list adds whatever the upstream serves now.
BUILTIN: tuple[ModelInfo, ...] = (
    ModelInfo("big-pickle", "Big Pickle", True, "openai", 200_000, 32_000),
    ModelInfo("gpt-5-nano", "GPT-5 Nano", True, "openai", 400_000, 128_000),
    ModelInfo("glm-4.7-free", "GLM 4.7 (free)", True, "openai", 200_000, 32_000),
    ModelInfo("kimi-k2.5-free", "Kimi K2.5 (free)", True, "openai", 256_000, 32_000),
    ModelInfo("minimax-m2.5-free", "MiniMax M2.5 (free)", True, "anthropic", 200_000, 32_000),
    ModelInfo("grok-code", "Grok Code Fast", True, "openai", 256_000, 32_000),
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


class ModelCatalog:
    """The live model list, cached per worker, with the built-in list as fallback."""

    def __init__(self) -> None:
        self._live: list[dict] | None = None
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

    def refresh(self, fetch) -> bool:
        """Replace the live list with ``fetch()`` (a callable returning the upstream's JSON)."""
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
            self.last_error = str(exc)[:300]
            log.warning("model list refresh failed: %s", self.last_error)
            return False
        with self._lock:
            self._live = models
            self._fetched_at = time.monotonic()
            self.last_error = None
        return True

    def entries(self) -> list[dict]:
        """Every model as ``{"id", "name", "free", "protocol", "created", "owned_by", "source"}``."""
        live = self._live
        source = "live" if live else "builtin"
        raw = live if live else [{"id": m.id, "created": 0, "owned_by": "opencode"} for m in BUILTIN]
        result = []
        for entry in raw:
            info = describe(entry["id"])
            result.append({
                "id": info.id,
                "name": entry.get("name") or info.name,
                "free": info.free,
                "protocol": info.protocol,
                "created": int(entry.get("created") or 0),
                "owned_by": entry.get("owned_by") or "opencode",
                "source": source,
            })
        return result
