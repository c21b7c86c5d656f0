"""Each key's usage by UTC day (``key_usage``, summed by the request log's writer): today, this
month and a run of days, for the admin API and the dashboard's key page."""

from __future__ import annotations

import datetime as dt
from typing import Any

import peewee

from .models import KeyUsage

FIELDS = ("requests", "errors", "input_tokens", "output_tokens", "cost")


def _zero() -> dict[str, Any]:
    return {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0, "cost": 0.0}


def _sums(row: Any) -> dict[str, Any]:
    return {name: (float(getattr(row, name) or 0.0) if name == "cost" else int(getattr(row, name) or 0))
            for name in FIELDS}


def summary(today: dt.date, key_ids: list[int] | None = None) -> dict[int, dict[str, dict[str, Any]]]:
    """key id → ``{"today": sums, "month": sums}`` for the keys used this month (``key_ids``: only those)."""
    month_start = today.replace(day=1)
    columns = [peewee.fn.SUM(getattr(KeyUsage, name)).alias(name) for name in FIELDS]
    query = KeyUsage.select(KeyUsage.key_id, *columns).where(KeyUsage.day >= month_start)
    if key_ids is not None:
        query = query.where(KeyUsage.key_id.in_(key_ids))
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for row in query.group_by(KeyUsage.key_id):
        out[row.key_id] = {"today": _zero(), "month": _sums(row)}
    today_rows = KeyUsage.select().where(KeyUsage.day == today)
    if key_ids is not None:
        today_rows = today_rows.where(KeyUsage.key_id.in_(key_ids))
    for row in today_rows:
        out.setdefault(row.key_id, {"today": _zero(), "month": _zero()})["today"] = _sums(row)
    return out


def daily(key_id: int, today: dt.date, days: int) -> list[dict[str, Any]]:
    """The key's sums for each of the ``days`` days up to ``today``, oldest first (days unused: zeros)."""
    first = today - dt.timedelta(days=days - 1)
    stored = {row.day: _sums(row) for row in
              KeyUsage.select().where((KeyUsage.key_id == key_id) & (KeyUsage.day >= first) & (KeyUsage.day <= today))}
    out = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        out.append({"day": day.isoformat(), **stored.get(day, _zero())})
    return out


def empty() -> dict[str, dict[str, Any]]:
    return {"today": _zero(), "month": _zero()}
