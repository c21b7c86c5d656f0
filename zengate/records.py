"""What is learnt about one client request while it is served, handed to the log when done."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .store.models import utcnow

log = logging.getLogger("zengate.request")


@dataclass
class RequestRecord:
    request_id: str
    method: str
    path: str
    format: str  # openai | anthropic | admin
    sink: Any  # RequestLogWriter
    log_bodies: bool = True
    body_max_chars: int = 100_000
    started: float = field(default_factory=time.perf_counter)
    created_at: Any = field(default_factory=utcnow)
    model: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    key_prefix: str | None = None
    key_id: int | None = None
    proxy: str | None = None
    input_messages: Any = None
    input_tokens: int = 0
    output_tokens: int = 0
    ttfb_ms: float | None = None
    output_parts: list[str] = field(default_factory=list)
    attempts: list[dict] = field(default_factory=list)
    done: bool = False

    def first_byte(self) -> None:
        if self.ttfb_ms is None:
            self.ttfb_ms = (time.perf_counter() - self.started) * 1000

    def add_usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        if input_tokens:
            self.input_tokens = int(input_tokens)
        if output_tokens:
            self.output_tokens = int(output_tokens)

    def note_attempt(self, route, status: int, error: str | None = None) -> None:
        """One upstream attempt (a route is a model on a backend with one of its keys)."""
        self.upstream_model = route.upstream_model
        self.attempts.append({"model": route.upstream_model, "backend": route.tier, "key": route.key_index,
                              "status": status, **({"error": error[:300]} if error else {})})

    def add_output(self, text: str | None) -> None:
        if text:
            self.output_parts.append(text)

    def _clip(self, value: Any) -> str | None:
        if value is None or not self.log_bodies:
            return None
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return text if len(text) <= self.body_max_chars else text[: self.body_max_chars] + "…[truncated]"

    def finish(self, status: int, error: str | None = None) -> None:
        """Queue the log row (once). Never raises: logging must not fail a request."""
        if self.done:
            return
        self.done = True
        latency = (time.perf_counter() - self.started) * 1000
        try:
            self.sink.record({
                "created_at": self.created_at,
                "request_id": self.request_id,
                "method": self.method,
                "path": self.path,
                "model": self.model,
                "upstream_model": self.upstream_model,
                "format": self.format,
                "stream": self.stream,
                "status": status,
                "latency_ms": round(latency, 2),
                "ttfb_ms": round(self.ttfb_ms, 2) if self.ttfb_ms is not None else None,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "key_prefix": self.key_prefix,
                "key_id": self.key_id,
                "proxy": self.proxy,
                "input_messages": self._clip(self.input_messages),
                "output_content": self._clip("".join(self.output_parts)) if self.output_parts else None,
                "error": error[:2000] if error else None,
                "attempts": json.dumps(self.attempts) if self.attempts else None,
            })
        except Exception:
            log.exception("could not queue the request log row")
        log.info("%s %s %s model=%s status=%s ms=%.1f ttfb=%s in=%s out=%s proxy=%s",
                 self.request_id, self.method, self.path, self.model, status, latency,
                 f"{self.ttfb_ms:.1f}" if self.ttfb_ms is not None else "-",
                 self.input_tokens, self.output_tokens, self.proxy or "-")
