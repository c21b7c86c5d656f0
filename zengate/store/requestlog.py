"""The request log: rows queued on the request path, written in batches by the background loop.

``record`` only appends to an in-memory deque (no I/O on the request path). ``flush`` writes the
queue in batches inside a transaction; a failed batch goes back to the front of the queue and is
retried with backoff, so a row is never dropped silently and a database hiccup never fails a
client's request. Each batch also stamps ``last_used_at`` on the keys it saw.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

from .db import database
from .models import ApiKey, RequestLog

log = logging.getLogger(__name__)

_COLUMNS = {f.name for f in RequestLog._meta.sorted_fields} - {"id"}


class RequestLogWriter:
    def __init__(self, batch_size: int = 500, max_backoff: float = 30.0):
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._flush_lock = threading.Lock()
        self._wakeup = threading.Event()
        self.failures = 0  # consecutive failed batches
        self.written = 0
        self.retry_at = 0.0

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
                    return written
                written += len(batch)
                self.failures = 0
                self.retry_at = 0.0
        self.written += written
        return written

    def _write(self, batch: list[dict[str, Any]]) -> None:
        rows = [{k: v for k, v in row.items() if k in _COLUMNS} for row in batch]
        last_used: dict[int, Any] = {}
        for row in batch:
            key_id = row.get("key_id")
            if key_id is not None:
                last_used[key_id] = max(last_used.get(key_id, row["created_at"]), row["created_at"])
        with database.atomic():
            for start in range(0, len(rows), 100):  # keep under SQLite's variable limit
                RequestLog.insert_many(rows[start:start + 100]).execute()
            for key_id, when in last_used.items():
                ApiKey.update(last_used_at=when).where(ApiKey.id == key_id).execute()
