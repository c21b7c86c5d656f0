"""Request-log retention: by age (``log_retention_days``) and by row count (``log_retention_rows``).

Enforced by the background loop of every worker, but one pass at a time across all workers and
instances: a pass is claimed through the ``log_retention_due`` settings row with a compare-and-set
``UPDATE`` (the worker whose update changed the row runs it; the others wait for the next turn).
Deletes are bounded — ``BATCH`` rows per statement, ``MAX_BATCHES`` statements per pass — so a
large backlog (retention just turned on) is worked off over several short passes, soon after one
another, and never holds the database or the worker's loop for long.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass

from .models import RequestLog, Setting, utcnow

log = logging.getLogger(__name__)

INTERVAL = 60.0  # seconds between passes when there is nothing left to delete
BACKLOG_INTERVAL = 1.0  # seconds between passes while a backlog is being worked off
BATCH = 2000
MAX_BATCHES = 10
LEASE_KEY = "log_retention_due"


@dataclass
class Pass:
    by_age: int = 0
    by_rows: int = 0
    more: bool = False  # stopped at MAX_BATCHES with rows left

    @property
    def deleted(self) -> int:
        return self.by_age + self.by_rows


def _delete_batch(where) -> int:
    ids = RequestLog.select(RequestLog.id).where(where).limit(BATCH)
    return RequestLog.delete().where(RequestLog.id.in_(ids)).execute()


def _delete_bounded(where, budget: int, pause) -> tuple[int, bool, int]:
    """Delete rows matching ``where`` in batches; returns (deleted, more left, batches used)."""
    deleted = used = 0
    while used < budget:
        count = _delete_batch(where)
        used += 1
        deleted += count
        if count < BATCH:
            return deleted, False, used
        pause()
    return deleted, True, used


def _oldest_kept(rows: int):
    """The newest row beyond the ``rows`` newest (the first to go), or None when there are not so many."""
    first = RequestLog.select(RequestLog.id).order_by(RequestLog.id.asc()).limit(1).scalar()
    last = RequestLog.select(RequestLog.id).order_by(RequestLog.id.desc()).limit(1).scalar()
    if first is None or last - first + 1 <= rows:  # ids only grow: the span bounds the count cheaply
        return None
    return (RequestLog.select(RequestLog.created_at, RequestLog.id)
            .order_by(RequestLog.created_at.desc(), RequestLog.id.desc())
            .offset(rows).limit(1).first())


def enforce(days: int, rows: int, *, now: dt.datetime | None = None, pause=lambda: time.sleep(0)) -> Pass:
    """One bounded pass of both rules. ``pause`` runs between batches (yields to other greenlets)."""
    result = Pass()
    budget = MAX_BATCHES
    if days and days > 0:
        cutoff = (now or utcnow()) - dt.timedelta(days=days)
        result.by_age, more, used = _delete_bounded(RequestLog.created_at < cutoff, budget, pause)
        budget -= used
        result.more |= more
    if rows and rows > 0 and budget > 0:
        boundary = _oldest_kept(rows)
        if boundary is not None:
            where = ((RequestLog.created_at < boundary.created_at)
                     | ((RequestLog.created_at == boundary.created_at) & (RequestLog.id <= boundary.id)))
            result.by_rows, more, _ = _delete_bounded(where, budget, pause)
            result.more |= more
    elif rows and rows > 0:
        result.more = True
    return result


def claim(now: float, interval: float = INTERVAL) -> bool:
    """Take the next pass if it is due: True for exactly one caller among workers and instances."""
    Setting.insert(key=LEASE_KEY, value="0.0", updated_at=utcnow()).on_conflict_ignore().execute()
    row = Setting.get_or_none(Setting.key == LEASE_KEY)
    if row is None:
        return False
    try:
        due = float(json.loads(row.value))
    except (TypeError, ValueError):
        due = 0.0
    if now < due:
        return False
    changed = (Setting.update(value=json.dumps(now + interval), updated_at=utcnow())
               .where((Setting.key == LEASE_KEY) & (Setting.value == row.value)).execute())
    return changed == 1


def reschedule(when: float) -> None:
    """Set when the next pass is due (sooner, after a pass that left a backlog)."""
    Setting.update(value=json.dumps(when), updated_at=utcnow()).where(Setting.key == LEASE_KEY).execute()


class Retention:
    """The background loop's side: a local timer, the shared claim, one bounded pass."""

    def __init__(self, settings, on_deleted=None, check_every: float = 15.0, clock=time.time):
        self.settings = settings
        self.on_deleted = on_deleted
        self.check_every = check_every
        self.clock = clock
        self._next_check = 0.0

    def tick(self) -> Pass | None:
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + self.check_every
        days = self.settings.get("log_retention_days")
        rows = self.settings.get("log_retention_rows")
        if not days and not rows:
            return None
        wall = self.clock()
        if not claim(wall):
            return None
        result = enforce(days, rows)
        if result.deleted:
            log.info("request log retention: deleted %d rows (%d by age, %d over the row limit)%s",
                     result.deleted, result.by_age, result.by_rows, "; more to go" if result.more else "")
            if self.on_deleted is not None:
                self.on_deleted(result)
        if result.more:
            reschedule(wall + BACKLOG_INTERVAL)
            self._next_check = now + BACKLOG_INTERVAL
        return result
