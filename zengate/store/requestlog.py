"""The request log: rows queued on the request path, written in batches by the background loop.

``record`` only appends to an in-memory deque (no I/O, no serialising on the request path).
``flush`` writes the queue in batches inside a transaction, with one prepared ``INSERT`` run by
``executemany`` (peewee's ``insert_many`` builds the SQL text value by value, ~15 times slower); a
failed batch goes back to the front of the queue and is retried with backoff, so a row is never
dropped silently and a database hiccup never fails a client's request. Each batch also stamps
``last_used_at`` on the keys it saw. Rows made before the log was last cleared (and still queued in
some worker at that moment) are discarded when they come up, as the clear asked.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .db import database
from .models import ApiKey, RequestLog

log = logging.getLogger(__name__)

_FIELDS = [f for f in RequestLog._meta.sorted_fields if f.name != "id"]
_BODIES = ("input_messages", "output_content")


def _clip(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…[truncated]"


def _db_row(row: dict[str, Any]) -> list[Any]:
    """One row's values in column order, bodies serialised and clipped, as the driver takes them."""
    limit = row.get("body_max_chars") or 100_000
    values = []
    for field in _FIELDS:
        value = row.get(field.name)
        if field.name in _BODIES:
            value = _clip(value, limit)
        elif field.name == "attempts" and value is not None and not isinstance(value, str):
            value = json.dumps(value)
        elif value is None and field.default is not None:
            value = field.default() if callable(field.default) else field.default
        values.append(field.db_value(value) if value is not None else None)
    return values


class RequestLogWriter:
    def __init__(self, batch_size: int = 500, max_backoff: float = 30.0,
                 cleared_before: Callable[[], dt.datetime | None] | None = None):
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._flush_lock = threading.Lock()
        self._wakeup = threading.Event()
        self.failures = 0  # consecutive failed batches
        self.written = 0
        self.retry_at = 0.0
        self.cleared_before = cleared_before or (lambda: None)
        self.discarded = 0  # rows made before a clear of the log

    @property
    def pending(self) -> int:
        return len(self._queue)

    def record(self, row: dict[str, Any]) -> None:
        """Queue one row; never blocks, never raises."""
        self._queue.append(row)
        if len(self._queue) >= self.batch_size:
            self._wakeup.set()

    def wake(self) -> None:
        self._wakeup.set()

    def wait(self, timeout: float) -> None:
        """Block the background loop until rows pile up or ``timeout`` passes."""
        self._wakeup.wait(timeout)
        self._wakeup.clear()

    def flush(self, force: bool = False) -> int:
        """Write every queued row; returns how many were written. Failed rows stay queued."""
        if not force and time.monotonic() < self.retry_at:
            return 0
        written = 0
        with self._flush_lock:
            while self._queue:
                batch = []
                while self._queue and len(batch) < self.batch_size:
                    batch.append(self._queue.popleft())
                try:
                    self._write(batch)
                except Exception as exc:  # noqa: BLE001 - keep the rows, retry later
                    self._queue.extendleft(reversed(batch))
                    self.failures += 1
                    delay = min(self.max_backoff, 0.2 * 2 ** min(self.failures, 10))
                    self.retry_at = time.monotonic() + delay
                    log.warning("request log: writing %d rows failed (%s); %d queued, retry in %.1fs",
                                len(batch), type(exc).__name__, len(self._queue), delay)
                    self.written += written
                    return written
                written += len(batch)
                self.failures = 0
                self.retry_at = 0.0
        self.written += written
        return written

    def _write(self, batch: list[dict[str, Any]]) -> None:
        cutoff = self.cleared_before()
        if cutoff is not None:
            kept = [row for row in batch if row["created_at"] >= cutoff]
            self.discarded += len(batch) - len(kept)
            batch = kept
        rows = [_db_row(row) for row in batch]
        last_used: dict[int, Any] = {}
        for row in batch:
            key_id = row.get("key_id")
            if key_id is not None:
                last_used[key_id] = max(last_used.get(key_id, row["created_at"]), row["created_at"])
        db = database.obj
        with database.atomic():
            if rows:
                cursor = db.cursor()
                cursor.executemany(_insert_sql(db), rows)
            for key_id, when in last_used.items():
                ApiKey.update(last_used_at=when).where(ApiKey.id == key_id).execute()


_INSERT: dict[str, str] = {}


def _insert_sql(db) -> str:
    sql = _INSERT.get(db.param)
    if sql is None:
        columns = ", ".join(f'"{f.column_name}"' for f in _FIELDS)
        marks = ", ".join([db.param] * len(_FIELDS))
        sql = _INSERT[db.param] = f'INSERT INTO "{RequestLog._meta.table_name}" ({columns}) VALUES ({marks})'
    return sql
