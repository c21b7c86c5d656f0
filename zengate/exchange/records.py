"""What is learnt about one client request while it is served, handed to the log when done."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..runtime import metrics
from ..runtime.helpers import when_idle
from ..runtime.logs import redact
from ..store.models import utcnow

log = logging.getLogger("zengate.request")

CLIENT_GONE = "client disconnected"  # relay.pump's error when the client went away


def _upstream_error_kind() -> str | None:
    """The kind of the UpstreamError being handled, when the caller is inside its ``except``."""
    exc = sys.exc_info()[1]
    kind = getattr(exc, "kind", None)
    return kind if isinstance(kind, str) else None


def _stream_failure(status: int, error: str | None) -> str | None:
    """The kind of upstream failure that ended a started stream (finished with 200 and an error)."""
    if status != 200 or not error or error == CLIENT_GONE:
        return None
    kind = error.split(":", 1)[0]
    return kind if kind in metrics.UPSTREAM_KINDS else "stream_error"


@dataclass
class RequestRecord:
    request_id: str
    method: str
    path: str
    format: str  # the client API (a dialect name: openai, anthropic, responses) or admin
    sink: Any  # RequestLogWriter
    log_bodies: bool = True
    body_max_chars: int = 100_000
    redact_secrets: bool = True  # the log writer masks key-like strings in the bodies (zengate.store.redaction)
    started: float = field(default_factory=time.perf_counter)
    created_at: Any = field(default_factory=utcnow)
    model: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    key_prefix: str | None = None
    key_id: int | None = None
    route: str | None = None  # the metrics' route label when the path holds a name (Gemini's model:method)
    charge: Any = None  # called with the request's tokens when it is finished (a key's daily token limit)
    cost: float | None = None  # what the upstream said the request cost, when it said
    proxy: str | None = None
    input_messages: Any = None
    input_tokens: int = 0
    output_tokens: int = 0
    ttfb_ms: float | None = None
    output_parts: list[str] = field(default_factory=list)
    attempts: list[dict] = field(default_factory=list)
    guards: list[dict] = field(default_factory=list)  # what the agent guards did: {"guard", "action", "why"}
    trim_tokens_before: int | None = None  # trimming's estimate of the input tokens, when it changed the request
    trim_tokens_after: int | None = None
    capture: Any = None  # runtime/capture.WireCapture while the wire_capture setting is on
    done: bool = False
    stream_open: bool = False  # counted in zengate_open_streams until finish()

    def first_byte(self) -> None:
        if self.ttfb_ms is None:
            self.ttfb_ms = (time.perf_counter() - self.started) * 1000
            if self.stream:
                self.stream_opened()

    def stream_opened(self) -> None:
        """The client's stream is open (idempotent; the first upstream byte also counts as this)."""
        if not self.stream_open and not self.done:
            self.stream_open = True
            metrics.stream_opened()

    def add_usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        if input_tokens:
            self.input_tokens = int(input_tokens)
        if output_tokens:
            self.output_tokens = int(output_tokens)

    def note_attempt(self, route, status: int, error: str | None = None, kind: str | None = None,
                     timeout: float | None = None) -> None:
        """One upstream attempt (a route is a model on a backend with one of its keys).

        A failed attempt counts in ``zengate_upstream_errors_total`` by ``kind``, which defaults to
        that of the UpstreamError being handled when this is called from its ``except`` block.
        """
        self.upstream_model = route.upstream_model
        self.attempts.append({"model": route.upstream_model, "backend": route.tier, "key": route.key_index,
                              "status": status, **({"error": redact(error[:300])} if error else {}),
                              **({"timeout": round(timeout, 3)} if timeout is not None else {})})
        if status >= 400 or error:
            try:
                metrics.upstream_error(kind or _upstream_error_kind(), status)
            except Exception:
                log.exception("could not count the upstream error")

    def note_guard(self, guard: str, action: str, why: str) -> None:
        """An agent guard acted on this request (zengate/guards): logged on the row, counted in /metrics."""
        self.guards.append({"guard": guard, "action": action, "why": why[:500]})
        metrics.guard_acted(guard, action)

    def note_trim(self, before: int, after: int) -> None:
        """Trimming shortened this request from about ``before`` to ``after`` input tokens (estimates):
        kept on the row, the difference counted in /metrics."""
        self.trim_tokens_before, self.trim_tokens_after = int(before), int(after)
        try:
            metrics.tokens_trimmed(before - after)
        except Exception:
            log.exception("could not count the trimmed tokens")

    def upstream_cost(self, cost: float) -> None:
        """The cost the upstream reported, as the stream's rest came in (after the record may
        have been finished: the log writer then adds it to the row already queued or written)."""
        if not self.done:
            self.cost = cost
            return
        try:
            self.sink.add_cost(self.request_id, self.created_at, self.key_id, cost)
        except Exception:
            log.exception("could not note the request's cost")

    def add_output(self, text: str | None) -> None:
        if text:
            self.output_parts.append(text)

    def _body(self, value: Any) -> Any:
        """A body for the log row, or None when bodies are not logged.

        Serialising and truncating it is left to the log writer, off the request path.
        """
        if value is None or not self.log_bodies or self.body_max_chars <= 0:
            return None
        return value

    def finish_later(self, status: int, error: str | None = None, *, ended: float | None = None) -> None:
        """``finish`` when the worker next has nothing else to do (at once outside gevent).

        The client already has its answer; the worker serves the next request first. The
        latency still ends now (or at ``ended``).
        """
        when_idle(partial(self.finish, status, error, ended=time.perf_counter() if ended is None else ended))

    def finish(self, status: int, error: str | None = None, *, ended: float | None = None) -> None:
        """Queue the log row (once). Never raises: logging must not fail a request.

        ``ended`` is when the answer was ready (a ``time.perf_counter()`` reading), for a record
        finished after its answer went out; the latency is measured up to now otherwise.
        """
        if self.done:
            return
        self.done = True
        if self.charge is not None:
            try:
                self.charge(self.input_tokens + self.output_tokens)
            except Exception:
                log.exception("could not count the request's tokens for its key's limit")
        latency = ((time.perf_counter() if ended is None else ended) - self.started) * 1000
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
                "input_messages": self._body(self.input_messages),
                "output_content": self._body("".join(self.output_parts)) if self.output_parts else None,
                "body_max_chars": self.body_max_chars,
                "redact_secrets": self.redact_secrets,
                "error": redact(error[:2000]) if error else None,
                "attempts": self.attempts or None,
                "guards": self.guards or None,
                "trim_tokens_before": self.trim_tokens_before,
                "trim_tokens_after": self.trim_tokens_after,
                "cost": self.cost,
            })
        except Exception:
            log.exception("could not queue the request log row")
        try:
            if self.stream_open:
                self.stream_open = False
                metrics.stream_closed()
            metrics.observe_request(self.route or self.path, self.upstream_model, status, latency / 1000,
                                    self.ttfb_ms / 1000 if self.ttfb_ms is not None else None,
                                    self.input_tokens, self.output_tokens, _stream_failure(status, error),
                                    self.key_prefix if self.key_id is not None else None)
        except Exception:
            log.exception("could not update the metrics")
        if self.capture is not None:
            try:
                self.capture.finish(self, status, error, ended)
            except Exception:
                log.exception("could not capture the exchange")
        if log.isEnabledFor(logging.INFO):
            ttfb = round(self.ttfb_ms, 1) if self.ttfb_ms is not None else None
            fields = {"request_id": self.request_id, "method": self.method, "path": self.path, "model": self.model,
                      "upstream_model": self.upstream_model, "status": status, "ms": round(latency, 1),
                      "ttfb_ms": ttfb, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                      "proxy": self.proxy, "stream": self.stream, "key": self.key_prefix,
                      "error": error[:300] if error else None}
            log.info("%s %s %s model=%s status=%s ms=%.1f ttfb=%s in=%s out=%s proxy=%s",
                     self.request_id, self.method, self.path, self.model, status, latency,
                     "-" if ttfb is None else f"{ttfb:.1f}", self.input_tokens, self.output_tokens,
                     self.proxy or "-", extra={"fields": fields})
