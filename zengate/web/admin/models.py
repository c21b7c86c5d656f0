"""The models admin API: ``GET /_admin/models`` (what the gateway serves, with its traffic) and
``POST /_admin/models/test`` (one short request to a model). Admin only.

The table is built by :mod:`zengate.exchange.served` from the router, the routing settings and the
request log; the test request is :mod:`zengate.exchange.probe`'s. Traffic is counted by the model
that answered (``upstream_model``), or the one asked for when no upstream was reached; counts cover
every row in the window, the median latency the most recent ``P95_SAMPLE`` of them.
"""

from __future__ import annotations

import datetime as dt

from flask import jsonify

from ... import auth
from ...exchange import probe, served
from ...gateway import current_gateway
from ...store.db import peewee
from ...store.models import RequestLog, utcnow
from ..errors import ApiError
from . import admin
from .stats import MAX_WINDOW_MINUTES, P95_SAMPLE, int_arg, is_error, percentile

bp = admin.admin_blueprint("models_admin", "/_admin/models")

MAX_MODEL_CHARS = 200


@bp.before_request
def _flush():
    current_gateway().request_log.flush(force=True)  # this worker's queued rows count too


def _traffic(since: dt.datetime) -> tuple[dict[str, served.Traffic], int]:
    """Per log name (the answering model, else the one asked for): counts, and a bounded latency sample."""
    name = peewee.fn.COALESCE(RequestLog.upstream_model, RequestLog.model)
    in_window = RequestLog.created_at >= since
    errors = peewee.fn.COALESCE(peewee.fn.SUM(peewee.Case(None, [(is_error(), 1)], 0)), 0)
    counted = (RequestLog.select(name, peewee.fn.COUNT(RequestLog.id), errors)
               .where(in_window).group_by(name).tuples())
    traffic = {model: served.Traffic(int(total), int(failed)) for model, total, failed in counted if model}
    sample = (RequestLog.select(RequestLog.latency_ms, name).where(in_window)
              .order_by(RequestLog.id.desc()).limit(P95_SAMPLE).tuples())
    size = 0
    for latency, model in sample:
        size += 1
        if model in traffic and latency is not None:
            traffic[model].latencies.append(latency)
    return traffic, size


@bp.get("")
def models():
    """Every model the gateway serves with its routing, liveness and traffic over ``minutes`` (default a day)."""
    minutes = int_arg("minutes", 1440, 1, MAX_WINDOW_MINUTES)
    gw = current_gateway()
    gw.refresh_models_if_due()  # keeps what it had when the tiers do not answer
    now = utcnow()
    since = now - dt.timedelta(minutes=minutes)
    traffic, sample = _traffic(since)
    table = served.model_table(gw.router, gw.routing_settings(), traffic, lambda v: percentile(v, 0.5))
    age = gw.catalog.age
    return jsonify({
        "minutes": minutes,
        "since": auth.iso(since),
        "until": auth.iso(now),
        "latency_sample": sample,
        "live_lists": {tier: gw.catalog.live_ids(tier) is not None for tier in ("zen", "go")},
        "live_age_seconds": None if age is None else round(age, 1),
        "live_error": gw.catalog.last_error,
        **table,
    })


@bp.post("/test")
def test_model():
    """``{"model"}``: one short request through the gateway's routing; its answer, who gave it and the latency."""
    body = admin.json_object()
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ApiError(400, "model: must be a non-empty string", param="model", kind="input")
    if len(model) > MAX_MODEL_CHARS:
        raise ApiError(400, f"model: must be at most {MAX_MODEL_CHARS} characters", param="model", kind="input")
    if not model.isprintable():
        raise ApiError(400, "model: must not contain control characters", param="model", kind="input")
    return jsonify(probe.run(current_gateway(), model.strip()))
