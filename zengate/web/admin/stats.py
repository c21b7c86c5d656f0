"""Stats over the request log: totals, a time series, one page of the log, its export, one request, clearing it.
Admin only.

Counts, averages and token sums are computed by the database over every row in scope. The 95th
percentile latency is computed in Python over the most recent ``P95_SAMPLE`` rows in scope (one
indexed, bounded query), the same way on SQLite and PostgreSQL; answers say how many rows it used.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time

from flask import Blueprint, Response, jsonify, request, stream_with_context

from ... import auth
from ...gateway import current_gateway
from ...store import export
from ...store.db import is_postgres, peewee  # peewee as the store imports it (store/__init__.py)
from ...store.models import ApiKey, RequestLog, utcnow
from ..errors import ApiError
from ..input_limits import MAX_ROW_ID
from .admin import render_error, require_admin

# Rows arrive in batches from several workers, so ids are not in time order: sort by time first.
NEWEST_FIRST = (RequestLog.created_at.desc(), RequestLog.id.desc())

bp = Blueprint("stats", __name__, url_prefix="/_stats")

MAX_PAGE = 500
P95_SAMPLE = 20_000  # rows the p95 is computed over (the most recent in scope)
MAX_WINDOW_MINUTES = 31 * 24 * 60
MAX_BUCKETS = 1440
NICE_BUCKETS = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    return render_error(err)


@bp.before_request
def _guard():
    require_admin()
    current_gateway().request_log.flush(force=True)  # this worker's queued rows count too


# --- query arguments ------------------------------------------------------------------------

def _bad(name: str, message: str) -> ApiError:
    return ApiError(400, f"{name}: {message}", param=name, kind="input")


def int_arg(name: str, default: int | None, minimum: int, maximum: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, "must be an integer") from None
    if not minimum <= value <= maximum:
        raise _bad(name, f"must be between {minimum} and {maximum}")
    return value


def _bool_arg(name: str, default: bool) -> bool:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise _bad(name, "must be true or false (1 or 0)")


def _time_arg(name: str) -> dt.datetime | None:
    """An ISO 8601 time as naive UTC (the log's convention); a time without an offset is UTC."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise _bad(name, "must be an ISO 8601 time, e.g. 2026-01-31T14:00:00Z") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _text_arg(name: str, maximum: int = 200) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return None
    if len(raw) > maximum:
        raise _bad(name, f"must be at most {maximum} characters")
    if "\x00" in raw:  # PostgreSQL refuses NUL in text: a 500 otherwise
        raise _bad(name, "must not contain NUL characters")
    return raw.strip()


def is_error():
    return (RequestLog.status >= 400) | RequestLog.error.is_null(False)


def _status_filter(raw: str):
    value = raw.strip().lower()
    if value == "error":
        return is_error()
    if value == "ok":
        return (RequestLog.status < 400) & RequestLog.error.is_null(True)
    if value in STATUS_CLASSES:
        low = int(value[0]) * 100
        return (RequestLog.status >= low) & (RequestLog.status < low + 100)
    if value.isdigit() and 100 <= int(value) <= 599:
        return RequestLog.status == int(value)
    raise _bad("status", "must be a status code (e.g. 429), a class (2xx, 4xx, 5xx), ok or error")


def _key_name_filter(name: str):
    """Rows made with a stored key named ``name`` (case-insensitive; several keys may share a name,
    and a name no key has matches nothing). The log keeps prefixes only: names are looked up here."""
    wanted = name.casefold()
    prefixes = sorted({prefix for prefix, key_name in ApiKey.select(ApiKey.prefix, ApiKey.name).tuples()
                       if (key_name or "").strip().casefold() == wanted})
    return RequestLog.key_prefix.in_(prefixes)  # none: an always-false clause


def _log_filters() -> tuple[list, dict]:
    """The WHERE clauses asked for by ``model`` (asked for), ``upstream_model`` (the model that
    answered), ``status``, ``key`` (a prefix), ``key_name``, ``since`` and ``until``."""
    clauses, applied = [], {}
    model = _text_arg("model")
    if model is not None:
        clauses.append(RequestLog.model == model)
        applied["model"] = model
    answered = _text_arg("upstream_model")
    if answered is not None:
        clauses.append(RequestLog.upstream_model == answered)
        applied["upstream_model"] = answered
    status = _text_arg("status", 20)
    if status is not None:
        clauses.append(_status_filter(status))
        applied["status"] = status.lower()
    key = _text_arg("key", 200)
    if key is not None:
        if key.startswith(auth.KEY_PREFIX):
            key = key[:auth.SHOWN_PREFIX_CHARS]  # a whole key was pasted: only its prefix is logged
        clauses.append(peewee.fn.SUBSTR(RequestLog.key_prefix, 1, len(key)) == key)
        applied["key"] = key
    key_name = _text_arg("key_name", 200)
    if key_name is not None:
        clauses.append(_key_name_filter(key_name))
        applied["key_name"] = key_name
    since, until = _time_arg("since"), _time_arg("until")
    if since is not None:
        clauses.append(RequestLog.created_at >= since)
        applied["since"] = auth.iso(since)
    if until is not None:
        if since is not None and until < since:
            raise _bad("until", "must not be before since")
        clauses.append(RequestLog.created_at < until)
        applied["until"] = auth.iso(until)
    return clauses, applied


def _where(query, clauses):
    for clause in clauses:
        query = query.where(clause)
    return query


# --- rows and numbers -------------------------------------------------------------------------

def _json_or_text(value: str | None):
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def _row(r: RequestLog, *, bodies: bool) -> dict:
    row = {
        "id": r.id,
        "created_at": auth.iso(r.created_at),
        "request_id": r.request_id,
        "method": r.method,
        "path": r.path,
        "model": r.model,
        "upstream_model": r.upstream_model,
        "format": r.format,
        "stream": r.stream,
        "status": r.status,
        "latency_ms": r.latency_ms,
        "ttfb_ms": r.ttfb_ms,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "key_prefix": r.key_prefix,
        "cost": r.cost,
        "proxy": r.proxy,
        "error": r.error,
        "trim_tokens_before": r.trim_tokens_before,  # trimming's estimates (null when it changed nothing)
        "trim_tokens_after": r.trim_tokens_after,
    }
    for name in ("attempts", "guards"):  # upstream attempts, what the guards did: where the schema has them
        value = getattr(r, name, None)
        if value:
            row[name] = _json_or_text(value)
    if bodies:
        row["input_messages"] = _json_or_text(r.input_messages)
        row["output_content"] = r.output_content
    return row


def percentile(values: list[float], fraction: float = 0.95) -> float | None:
    """Nearest-rank percentile (a value that was observed); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _ms(value) -> float | None:
    return round(float(value), 2) if value is not None else None


def _aggregates():
    fn = peewee.fn
    return (
        fn.COUNT(RequestLog.id),
        fn.COALESCE(fn.SUM(peewee.Case(None, [(is_error(), 1)], 0)), 0),
        fn.AVG(RequestLog.latency_ms),
        fn.COALESCE(fn.SUM(RequestLog.input_tokens), 0),
        fn.COALESCE(fn.SUM(RequestLog.output_tokens), 0),
    )


def _numbers(total, errors, avg_latency, tokens_in, tokens_out) -> dict:
    return {"requests": int(total), "errors": int(errors), "avg_latency_ms": _ms(avg_latency),
            "input_tokens": int(tokens_in), "output_tokens": int(tokens_out)}


def _saved_calls(clauses: list) -> int:
    """Requests a quota saver answered without an upstream call (zengate/steering/housekeeping.py):
    rows whose ``guards`` note names it (a LIKE, on SQLite and PostgreSQL alike)."""
    query = RequestLog.select().where(RequestLog.guards ** '%"quota_saver"%')
    return _where(query, clauses).count()


def _tokens_saved(clauses: list) -> int:
    """Input tokens context trimming removed (zengate/steering/trim.py): the sum of its estimates'
    before minus after over the rows in scope."""
    saved = peewee.fn.SUM(RequestLog.trim_tokens_before - RequestLog.trim_tokens_after)
    query = RequestLog.select(peewee.fn.COALESCE(saved, 0)).where(RequestLog.trim_tokens_before.is_null(False))
    return int(_where(query, clauses).scalar() or 0)


def _latency_sample(clauses: list, *columns) -> list[tuple]:
    """``(latency_ms, *columns)`` of the most recent ``P95_SAMPLE`` rows in scope."""
    query = RequestLog.select(RequestLog.latency_ms, *columns).order_by(RequestLog.id.desc()).limit(P95_SAMPLE)
    return list(_where(query, clauses).tuples())


def _by_model(clauses: list, sample: list[tuple]) -> list[dict]:
    """Per-model numbers; ``sample`` is ``(latency_ms, model, …)`` tuples for the p95."""
    latencies: dict[str | None, list[float]] = {}
    for latency, model, *_ in sample:
        latencies.setdefault(model, []).append(latency)
    query = RequestLog.select(RequestLog.model, *_aggregates()).group_by(RequestLog.model)
    models = []
    for model, *numbers in _where(query, clauses).tuples():
        models.append({"model": model, **_numbers(*numbers),
                       "p95_latency_ms": _ms(percentile(latencies.get(model, [])))})
    models.sort(key=lambda m: (-m["requests"], m["model"] or ""))
    return models


def _by_key(clauses: list) -> list[dict]:
    """Per-key numbers (the key's prefix and name; ``key: null`` for requests without a key)."""
    names = dict(ApiKey.select(ApiKey.prefix, ApiKey.name).tuples())
    cost = peewee.fn.COALESCE(peewee.fn.SUM(RequestLog.cost), 0)
    query = RequestLog.select(RequestLog.key_prefix, cost, *_aggregates()).group_by(RequestLog.key_prefix)
    keys = [{"key": prefix, "name": names.get(prefix), **_numbers(*numbers), "cost": float(spent)}
            for prefix, spent, *numbers in _where(query, clauses).tuples()]
    keys.sort(key=lambda k: (-k["requests"], k["key"] or ""))
    return keys


# --- endpoints ----------------------------------------------------------------------------------

@bp.get("")
def summary():
    gw = current_gateway()
    total, errors, avg_latency, tokens_in, tokens_out = RequestLog.select(*_aggregates()).tuples().get()
    sample = _latency_sample([], RequestLog.model)
    recent = RequestLog.select().order_by(*NEWEST_FIRST).limit(10)
    return jsonify({
        "total_requests": int(total),
        "errors": int(errors),
        "average_latency_ms": _ms(avg_latency),
        "p95_latency_ms": _ms(percentile([s[0] for s in sample])),
        "p95_sample": len(sample),
        "input_tokens": int(tokens_in),
        "output_tokens": int(tokens_out),
        "saved_calls": _saved_calls([]),
        "tokens_saved": _tokens_saved([]),
        "uptime_seconds": round(time.time() - gw.started_at, 1),
        "models": _by_model([], sample),
        "keys": _by_key([]),
        "recent_requests": [_row(r, bodies=False) for r in recent],
    })


def _bucket_expression(seconds: int) -> peewee.SQL:
    seconds = int(seconds)  # validated; inlined as a literal
    if is_postgres():
        return peewee.SQL(f"CAST(FLOOR(EXTRACT(EPOCH FROM created_at) / {seconds}) AS BIGINT)")
    return peewee.SQL(f"(CAST(strftime('%s', created_at) AS INTEGER) / {seconds})")


def _epoch(value: dt.datetime) -> float:
    return value.replace(tzinfo=dt.UTC).timestamp()


def _default_bucket(minutes: int) -> int:
    wanted = minutes * 60 / 60  # about sixty bars
    return next((b for b in NICE_BUCKETS if b >= wanted), NICE_BUCKETS[-1])


@bp.get("/timeseries")
def timeseries():
    """Per-bucket requests, errors, latency (avg, p95) and tokens over the last ``minutes``, and per model."""
    minutes = int_arg("minutes", 60, 1, MAX_WINDOW_MINUTES)
    bucket = int_arg("bucket", None, 10, 86_400) or _default_bucket(minutes)
    now = utcnow()
    first = math.floor((_epoch(now) - minutes * 60) / bucket)
    last = math.floor(_epoch(now) / bucket)
    if last - first + 1 > MAX_BUCKETS:
        raise _bad("bucket", f"too small for {minutes} minutes: at most {MAX_BUCKETS} buckets")
    since = dt.datetime.fromtimestamp(first * bucket, dt.UTC).replace(tzinfo=None)
    clauses = [RequestLog.created_at >= since]

    index = _bucket_expression(bucket)
    query = RequestLog.select(index.alias("bucket"), *_aggregates()).group_by(index)
    counted = {int(b): numbers for b, *numbers in _where(query, clauses).tuples() if b is not None}
    sample = _latency_sample(clauses, RequestLog.model, RequestLog.created_at)
    latencies: dict[int, list[float]] = {}
    for latency, _model, created_at in sample:
        latencies.setdefault(math.floor(_epoch(created_at) / bucket), []).append(latency)
    # When the sample is capped, buckets at or before its oldest row are only partly covered: no p95.
    covered_after = math.floor(_epoch(sample[-1][2]) / bucket) if len(sample) == P95_SAMPLE else first - 1

    buckets = []
    for b in range(first, last + 1):
        numbers = _numbers(*counted.get(b, (0, 0, None, 0, 0)))
        p95 = percentile(latencies.get(b, [])) if b > covered_after else None
        buckets.append({"start": auth.iso(dt.datetime.fromtimestamp(b * bucket, dt.UTC).replace(tzinfo=None)),
                        **numbers, "p95_latency_ms": _ms(p95)})
    return jsonify({
        "minutes": minutes,
        "bucket_seconds": bucket,
        "since": auth.iso(since),
        "until": auth.iso(now),
        "p95_sample": len(sample),
        "totals": {**_numbers(*RequestLog.select(*_aggregates()).where(*clauses).tuples().get()),
                   "p95_latency_ms": _ms(percentile([s[0] for s in sample])), "saved_calls": _saved_calls(clauses),
                   "tokens_saved": _tokens_saved(clauses)},
        "buckets": buckets,
        "models": _by_model(clauses, sample),
        "keys": _by_key(clauses),
    })


@bp.get("/requests")
def requests_page():
    """One page of the log, newest first, filtered by model, upstream_model, status, key, key_name, since and until."""
    limit = int_arg("limit", 50, 1, MAX_PAGE)
    offset = int_arg("offset", 0, 0, 10**9)
    bodies = _bool_arg("bodies", True)
    clauses, applied = _log_filters()
    total = _where(RequestLog.select(), clauses).count()
    rows = _where(RequestLog.select(), clauses).order_by(*NEWEST_FIRST).limit(limit).offset(offset)
    return jsonify({"total": total, "limit": limit, "offset": offset, "filters": applied,
                    "requests": [_row(r, bodies=bodies) for r in rows]})


@bp.get("/requests/export")
def export_requests():
    """The whole filtered log, newest first, as a JSON Lines or CSV download, streamed: read in
    batches (zengate/store/export.py), so neither the worker nor the database holds all of it."""
    fmt = (request.args.get("format") or "jsonl").strip().lower()
    if fmt not in export.FORMATS:
        raise _bad("format", f"must be one of {', '.join(export.FORMATS)}")
    bodies = _bool_arg("bodies", False)
    clauses, _applied = _log_filters()  # checked now: a bad filter is a 400, not a broken download
    rows = (_row(r, bodies=bodies) for r in export.newest_first(_where(RequestLog.select(), clauses)))
    lines = export.csv_lines(rows, bodies=bodies) if fmt == "csv" else export.jsonl_lines(rows)
    media_type, _ext = export.FORMATS[fmt]
    # the request context (and its database connection) lives until the last chunk is sent
    response = Response(stream_with_context(export.encode(lines)), content_type=media_type)
    response.headers["Content-Disposition"] = f"attachment; filename={export.filename(fmt, utcnow())}"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/requests/<int:request_id>")
def request_detail(request_id: int):
    # the route takes any number; one past a 64-bit id would overflow the database driver
    row = RequestLog.get_or_none(RequestLog.id == request_id) if request_id <= MAX_ROW_ID else None
    if row is None:
        raise ApiError(404, f"no request with id {request_id} in the log", kind="input")
    return jsonify(_row(row, bodies=True))


@bp.post("/clear")
def clear():
    # Rows still queued in other workers were made before now: the writers discard them on sight.
    now = utcnow()
    current_gateway().settings.set("log_cleared_at", now.isoformat(), internal=True)
    deleted = RequestLog.delete().where(RequestLog.created_at <= now).execute()
    return jsonify({"cleared": deleted})
