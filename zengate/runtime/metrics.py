"""Prometheus metrics, correct across gunicorn's worker processes.

Under gunicorn, ``gunicorn.conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` (a fresh directory per
master start) before any worker imports ``prometheus_client``: every worker then writes its values
to memory-mapped files there, ``GET /metrics`` — whichever worker answers it — merges all of them
with ``MultiProcessCollector``, and the master's ``child_exit`` hook drops the live gauges of a
worker that died. Without that variable (the Flask test client, a plain script) the metrics live
in the default registry of the one process.

Observing is cheap and happens in few places: :meth:`RequestRecord.finish` (one call per request:
count, latency, time to first byte, tokens), the record's stream open/close, its failed upstream
attempts, and the background loop (request-log queue, proxy pool; once a second per worker).

Labels are bounded: ``route`` is the matched API path, ``status`` the HTTP status the client got,
``model`` the upstream model that served the request (or was last tried; ``-`` when none was).
Models the catalog knows are always their own label; other names (the gateway passes unknown
names on to the upstream) get one only while a worker has seen fewer than ``MAX_MODEL_LABELS``
model names, then count as ``other`` — random model names cannot grow the series without bound.
``key`` is the shown prefix of a key the gateway accepted (never a presented key it did not), up
to ``MAX_KEY_LABELS`` per worker, then ``other``.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from .. import __version__

#: True when the values are shared through files (gunicorn); read once, as prometheus_client does.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

disable_created_metrics()  # the *_created series are not kept across processes anyway

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TTFB_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
UPSTREAM_KINDS = ("http", "connection", "timeout", "protocol")
MAX_LABEL_CHARS = 100
MAX_MODEL_LABELS = 200
MAX_KEY_LABELS = 200

REQUESTS = Counter("zengate_requests", "Client requests by route, model and status.", ["route", "model", "status"])
LATENCY = Histogram("zengate_request_duration_seconds", "Total time to serve a request, streams included.",
                    ["route", "model"], buckets=LATENCY_BUCKETS)
TTFB = Histogram("zengate_time_to_first_byte_seconds",
                 "Time from the request to the upstream's first byte (answers that reached the upstream).",
                 ["route", "model"], buckets=TTFB_BUCKETS)
TOKENS = Counter("zengate_tokens", "Tokens by model and direction (input, output).", ["model", "direction"])
UPSTREAM_ERRORS = Counter(
    "zengate_upstream_errors",
    "Failed upstream attempts by kind (http, connection, timeout, protocol, stream_error) and status "
    "(the attempt's HTTP status, or mid_stream for a stream that broke after its first byte).",
    ["kind", "status"])
KEY_REQUESTS = Counter("zengate_key_requests", "Client requests by API key (its shown prefix) and status; keys "
                       "required only.", ["key", "status"])
KEY_TOKENS = Counter("zengate_key_tokens", "Tokens by API key (its shown prefix) and direction (input, output).",
                     ["key", "direction"])
GUARD_ACTIONS = Counter("zengate_guard_actions", "What the agent guards did, by guard and action (repaired, renamed, "
                        "refused).", ["guard", "action"])
TRIM_TOKENS_SAVED = Counter("zengate_trim_tokens_saved", "Input tokens context trimming removed from requests "
                            "(estimated: before minus after).")
OPEN_STREAMS = Gauge("zengate_open_streams", "Client streams open now (all workers).", multiprocess_mode="livesum")
LOG_QUEUE = Gauge("zengate_request_log_queue_depth", "Request-log rows queued, not yet written (all workers).",
                  multiprocess_mode="livesum")
LOG_SPILLED = Gauge("zengate_request_log_spilled_rows",
                    "Request-log rows waiting on disk (spilled while the database refused them; all workers).",
                    multiprocess_mode="livesum")
LOG_WRITTEN = Counter("zengate_request_log_rows_written", "Request-log rows written to the database.")
LOG_FAILING = Gauge("zengate_request_log_write_failures",
                    "Consecutive failed request-log writes (the worst live worker; 0 when healthy).",
                    multiprocess_mode="livemax")
LOG_DELETED = Counter("zengate_request_log_rows_deleted",
                      "Request-log rows deleted by retention, by reason (age, rows).", ["reason"])
PROXY_POOL = Gauge("zengate_proxy_pool_proxies",
                   "Proxies in a worker's pool by state (alive, dead, static, geonode, total); "
                   "the largest among live workers.",
                   ["state"], multiprocess_mode="livemax")
PROXY_MODE = Gauge("zengate_proxy_mode", "1 for the current proxy_mode (off, auto, on).", ["mode"],
                   multiprocess_mode="livemax")
PROXY_RATE_LIMITED = Gauge("zengate_proxy_direct_rate_limited",
                           "1 while Auto mode goes through proxies after a direct 429.", multiprocess_mode="livemax")
BUILD_INFO = Gauge("zengate_build_info", "Always 1; the version as a label.", ["version"], multiprocess_mode="livemax")

_children: dict[tuple, object] = {}


def _child(metric, *labels: str):
    key = (metric._name, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _label(value: str | None) -> str:
    if not value:
        return "-"
    return value if len(value) <= MAX_LABEL_CHARS else value[:MAX_LABEL_CHARS]


#: ``catalog.known`` of the worker's gateway (set by the app factory): catalog models always get a label.
known_model = None
_model_labels: dict[str, str] = {}


def model_label(model: str | None) -> str:
    if not model:
        return "-"
    label = _model_labels.get(model)
    if label is not None:
        return label
    known = known_model
    try:
        admitted = len(_model_labels) < MAX_MODEL_LABELS or (known is not None and known(model))
    except Exception:  # noqa: BLE001 - a label is never worth failing over
        admitted = False
    label = _label(model) if admitted else "other"
    if admitted or len(_model_labels) < 2 * MAX_MODEL_LABELS:
        _model_labels[model] = label
    return label


_key_labels: dict[str, str] = {}


def key_label(prefix: str) -> str:
    """A verified key's shown prefix, while a worker has seen fewer than ``MAX_KEY_LABELS``; then ``other``."""
    label = _key_labels.get(prefix)
    if label is None:
        label = _label(prefix) if len(_key_labels) < MAX_KEY_LABELS else "other"
        if len(_key_labels) < 2 * MAX_KEY_LABELS:
            _key_labels[prefix] = label
    return label


def observe_request(route: str, model: str | None, status: int, seconds: float, ttfb_seconds: float | None,
                    input_tokens: int, output_tokens: int, stream_error: str | None = None,
                    key: str | None = None) -> None:
    """Everything one finished request adds (called once, by ``RequestRecord.finish``); ``key`` is
    the prefix of the key the request was authenticated with, if it was."""
    route, model = _label(route), model_label(model)
    _child(REQUESTS, route, model, str(status)).inc()
    _child(LATENCY, route, model).observe(seconds)
    if ttfb_seconds is not None:
        _child(TTFB, route, model).observe(ttfb_seconds)
    if input_tokens:
        _child(TOKENS, model, "input").inc(input_tokens)
    if output_tokens:
        _child(TOKENS, model, "output").inc(output_tokens)
    if stream_error is not None:
        _child(UPSTREAM_ERRORS, stream_error, "mid_stream").inc()
    if key:
        key = key_label(key)
        _child(KEY_REQUESTS, key, str(status)).inc()
        if input_tokens:
            _child(KEY_TOKENS, key, "input").inc(input_tokens)
        if output_tokens:
            _child(KEY_TOKENS, key, "output").inc(output_tokens)


def upstream_error(kind: str | None, status: int | None) -> None:
    """One failed upstream attempt (before the first byte reached the client)."""
    kind = kind if kind in UPSTREAM_KINDS else "http"
    _child(UPSTREAM_ERRORS, kind, str(status or 0)).inc()


def guard_acted(guard: str, action: str) -> None:
    """An agent guard acted on a request (zengate/guards); both labels are the guards' own words."""
    _child(GUARD_ACTIONS, guard, action).inc()


def tokens_trimmed(count: int) -> None:
    """Context trimming removed about ``count`` input tokens from a request (zengate/steering/trim.py)."""
    if count > 0:
        TRIM_TOKENS_SAVED.inc(count)


def stream_opened() -> None:
    OPEN_STREAMS.inc()


def stream_closed() -> None:
    OPEN_STREAMS.dec()


def rows_written(count: int) -> None:
    if count:
        LOG_WRITTEN.inc(count)


def rows_deleted(reason: str, count: int) -> None:
    if count:
        _child(LOG_DELETED, reason).inc(count)


_POOL_STATES = ("alive", "dead", "static", "geonode", "total")
_MODES = ("off", "auto", "on")


def update_queue(gateway) -> None:
    """The worker's request-log queue (the background loop calls this after every flush)."""
    writer = gateway.request_log
    LOG_QUEUE.set(writer.pending)
    LOG_SPILLED.set(writer.spilled)
    LOG_FAILING.set(writer.failures)


def update_proxy(gateway) -> None:
    """The worker's proxy pool and the shared proxy mode."""
    egress = gateway.egress
    counts = egress.pool.counts()
    for state in _POOL_STATES:
        _child(PROXY_POOL, state).set(counts.get(state, 0))
    mode = egress.mode()
    for name in _MODES:
        _child(PROXY_MODE, name).set(1 if name == mode else 0)
    since, _ = egress.auto_state()
    PROXY_RATE_LIMITED.set(1 if mode == "auto" and since else 0)


class GaugeUpdater:
    """Keeps one worker's gauges fresh from its background loop without a cost per tick."""

    def __init__(self, gateway, interval: float = 1.0):
        self.gateway = gateway
        self.interval = interval
        self._next = 0.0
        self._written = gateway.request_log.written
        _child(BUILD_INFO, __version__).set(1)

    def tick(self) -> None:
        writer = self.gateway.request_log
        written = writer.written
        if written != self._written:
            rows_written(written - self._written)
            self._written = written
        update_queue(self.gateway)
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval
            update_proxy(self.gateway)


def exposition(gateway=None) -> tuple[bytes, str]:
    """The text exposition of every worker's metrics (this worker's gauges refreshed first)."""
    if gateway is not None:
        _child(BUILD_INFO, __version__).set(1)
        update_queue(gateway)
        update_proxy(gateway)
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
