"""The request log: rows queued on the request path, written in batches by the background loop.

``record`` only appends to an in-memory deque (no I/O, no serialising on the request path).
``flush`` writes the queue in batches inside a transaction, with one prepared ``INSERT`` run by
``executemany`` (peewee's ``insert_many`` builds the SQL text value by value, ~15 times slower); a
failed batch goes back to the front of the queue and is retried with backoff, so a row is never
dropped silently and a database hiccup never fails a client's request. Each batch also stamps
``last_used_at`` on the keys it saw. Rows made before the log was last cleared (and still queued in
some worker at that moment) are discarded when they come up, as the clear asked.

A batch is small (``BATCH_ROWS``, more for a backlog: ``FLUSH_TURNS``) and the writer lets the
worker's other greenlets run between batches: SQLite works in the worker's only OS thread, so a
batch holds every request being served for as long as it takes (about 30 µs a row here; 500 rows
held them 10–15 ms, five times a second at 1,500 requests/s). A flush writes the rows queued when
it began; those queued meanwhile wait for the next tick, so a flush ends however fast rows come.

The queue is bounded (``ZENGATE_LOG_QUEUE_MAX``). While the database refuses writes, the rows past
the bound — the oldest — spill to this worker's append-only file under the data directory
(:mod:`zengate.store.spill`); once it takes writes again, ``recover`` imports the spilled rows,
oldest file first, a bounded number of batches per tick, and removes a file only after its rows are committed.
Files left by a killed worker or a previous run are claimed and imported the same way.

Where spilling happens: in the background loop, which holds the rows in memory until the bound is
passed and then writes the overflow in one append and one ``fsync``; the request path never
touches the disk and never serialises a row for it. Only if the queue reaches twice the bound (at
least one batch) — the background loop is stuck in a hung database call while traffic goes on — does ``record`` spill
the overflow itself (without ``fsync``, and only when no other spill is under way, so it never
waits): memory stays bounded whatever the database does.

Retried and spilled rows are written with ``dedupe``: a row whose ``request_id`` is already stored
is skipped, so a batch whose commit was acknowledged too late (the connection died after the
``COMMIT``) or a file re-imported after a crash never makes a duplicate.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peewee
from peewee import EXCLUDED

from ..runtime.helpers import let_others_run
from .db import SQLITE_PRAGMAS, database, discard_connection
from .models import ApiKey, KeyUsage, RequestLog, utcnow
from .redaction import redact_stored, serialised
from .spill import SpillStore
from .spill import encode as spill_encode

log = logging.getLogger(__name__)

COST_TRIES = 10  # flushes a late cost waits for its row before it is dropped

_FIELDS = [f for f in RequestLog._meta.sorted_fields if f.name != "id"]
_BODIES = ("input_messages", "output_content")
_AS_IS = {peewee.CharField: str, peewee.TextField: str, peewee.IntegerField: int, peewee.FloatField: float}

DEFAULT_MAX_QUEUED = 5000  # ZENGATE_LOG_QUEUE_MAX
BATCH_ROWS = 32  # rows per transaction: about 1 ms of the worker's time on a slow machine
FLUSH_TURNS = 8  # a flush writes the queue in at most this many batches of at least BATCH_ROWS
WAKE_ROWS = 500  # queued rows that wake the background loop before its next tick
RECOVER_BATCHES = 300  # spilled batches imported per tick of the background loop (~10,000 rows)
SQLITE_WRITE_BUSY_MS = 250
ORPHAN_SCAN_SECONDS = 5.0  # how often a worker looks for spill files nobody holds
SPILL_INTERVAL = 0.2  # the background loop spills (and fsyncs) at most this often


def _clip(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = serialised(value)
    return text if len(text) <= limit else text[:limit] + "…[truncated]"


_JSON = ("attempts", "guards")  # lists kept as JSON text

#: Per column: its name, what it holds (a body, a JSON list, or a plain value), its default, the
#: Python type the driver takes as it is (peewee's ``db_value`` would return it unchanged), ``db_value``.
_COLUMNS = [(f.name, "body" if f.name in _BODIES else "json" if f.name in _JSON else "plain",
             f.default, _AS_IS.get(type(f)), f.db_value) for f in _FIELDS]


def _db_row(row: dict[str, Any]) -> list[Any]:
    """One row's values in column order, bodies serialised and clipped, as the driver takes them."""
    limit = row.get("body_max_chars") or 100_000
    redact = row.get("redact_secrets")
    values = []
    for name, kind, default, as_is, db_value in _COLUMNS:
        value = row.get(name)
        if kind == "body":
            value = _clip(redact_stored(value) if redact else value, limit)
        elif kind == "json" and value is not None and not isinstance(value, str):
            value = json.dumps(value)
        elif value is None and default is not None:
            value = default() if callable(default) else default
        values.append(value if value is None or type(value) is as_is else db_value(value))
    return values


class RequestLogWriter:
    def __init__(self, batch_size: int = BATCH_ROWS, max_backoff: float = 30.0,
                 cleared_before: Callable[[], dt.datetime | None] | None = None,
                 max_queued: int = DEFAULT_MAX_QUEUED, spill_dir: Path | str | None = None):
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.max_queued = max(1, max_queued)
        self.hard_cap = max(2 * self.max_queued, batch_size)  # record() spills past this (loop stuck)
        self.wake_rows = min(WAKE_ROWS, self.max_queued)
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._costs: collections.deque[tuple] = collections.deque()  # (request_id, created_at, key_id, cost, tries)
        self._flush_lock = threading.Lock()
        self._wakeup = threading.Event()
        self.failures = 0  # consecutive failed batches
        self.written = 0
        self.retry_at = 0.0
        self.cleared_before = cleared_before or (lambda: None)
        self.discarded = 0  # rows made before a clear of the log
        self.spill = SpillStore(Path(spill_dir)) if spill_dir is not None else None
        self.spill_errors = 0  # failed attempts to spill (the rows stayed in memory)
        self._next_orphan_scan = 0.0
        self._next_spill = 0.0

    @property
    def pending(self) -> int:
        """Rows queued in memory."""
        return len(self._queue)

    @property
    def spilled(self) -> int:
        """Rows in this worker's spill files, not yet in the database."""
        return self.spill.rows_on_disk if self.spill is not None else 0

    def status(self) -> dict[str, int]:
        return {"queued": self.pending, "spilled": self.spilled, "write_failures": self.failures}

    def record(self, row: dict[str, Any]) -> None:
        """Queue one row: O(1), never blocks, never raises; no disk I/O unless the queue is at twice its bound."""
        queue = self._queue
        queue.append(row)
        size = len(queue)
        if size >= self.wake_rows and time.monotonic() >= self.retry_at:
            self._wakeup.set()  # not while backing off: the loop comes round every tick anyway
        if size > self.hard_cap and self.spill is not None:
            try:
                self._spill_overflow(sync=False, blocking=False)
            except Exception:  # noqa: BLE001 - the row stays queued in memory
                pass

    def add_cost(self, request_id: str, created_at: dt.datetime, key_id: int | None, cost: float) -> None:
        """A cost the upstream reported after the row was queued (Zen's frame after ``[DONE]``):
        set on the row, and added to the key's usage, by the next flush."""
        if len(self._costs) < self.max_queued:
            self._costs.append((request_id, created_at, key_id, cost, 0))

    def wake(self) -> None:
        self._wakeup.set()

    def wait(self, timeout: float) -> None:
        """Block the background loop until rows pile up or ``timeout`` passes."""
        self._wakeup.wait(timeout)
        self._wakeup.clear()

    # --- writing ----------------------------------------------------------------------------

    def flush(self, force: bool = False) -> int:
        """Write every queued row; returns how many were written. Failed rows stay queued (or spill)."""
        if not force and time.monotonic() < self.retry_at:
            self._spill_overflow()
            return 0
        written = 0
        with self._flush_lock:
            todo = len(self._queue)  # rows queued later wait for the next tick: the flush always ends
            size = max(self.batch_size, -(-todo // FLUSH_TURNS))  # a backlog goes in bigger batches
            while todo > 0 and self._queue:
                if written:
                    let_others_run()
                batch = []
                take = min(size, todo)
                while self._queue and len(batch) < take:
                    batch.append(self._queue.popleft())
                todo -= len(batch)
                try:
                    # after a failure, the batch may have been committed all the same: dedupe it
                    self._write(batch, dedupe=self.failures > 0)
                except Exception as exc:  # noqa: BLE001 - keep the rows, retry later
                    self._queue.extendleft(reversed(batch))
                    self._spill_overflow(now=True)
                    self._failed(exc, len(batch))
                    self.written += written
                    return written
                written += len(batch)
                self._succeeded()
            if self._costs:
                self._write_costs()
        self.written += written
        return written

    def _write_costs(self) -> None:
        """Set the costs reported late on their rows and add them to their keys' usage; a row not
        written yet (queued behind, retried, spilled) is looked for again at the next few flushes."""
        todo = [self._costs.popleft() for _ in range(len(self._costs))]
        later, usage = [], {}
        try:
            with _short_busy_wait(database.obj), database.atomic():
                for request_id, created_at, key_id, cost, tries in todo:
                    found = RequestLog.update(cost=cost).where(
                        (RequestLog.created_at == created_at) & (RequestLog.request_id == request_id)).execute()
                    if found and key_id is not None:
                        sums = usage.setdefault((key_id, created_at.date()), [0, 0, 0, 0, 0.0])
                        sums[4] += cost
                    elif not found and tries < COST_TRIES:
                        later.append((request_id, created_at, key_id, cost, tries + 1))
                if usage:
                    _add_usage(usage)
        except Exception as exc:  # noqa: BLE001 - the rows matter more: the costs wait for the next flush
            log.warning("request log: could not note %d reported costs (%s)", len(todo), exc)
            later = [(*item[:4], item[4] + 1) for item in todo if item[4] < COST_TRIES]
        self._costs.extend(later)

    def recover(self, force: bool = False, max_batches: int = RECOVER_BATCHES) -> int:
        """Import spilled rows (this worker's and orphans'), oldest first; returns how many were written.

        At most ``max_batches`` batches per call, so the background loop keeps flushing the queue.
        """
        spill = self.spill
        if spill is None or (not force and time.monotonic() < self.retry_at):
            return 0
        written = 0
        with self._flush_lock:
            try:
                if time.monotonic() >= self._next_orphan_scan:
                    self._next_orphan_scan = time.monotonic() + ORPHAN_SCAN_SECONDS
                    spill.adopt_orphans()
                if spill.rows_on_disk and not spill.has_claimed:
                    spill.rotate()  # the database is taking writes again: import this worker's file
            except OSError as exc:
                log.error("request log: could not claim spilled rows (%s)", exc)
                return 0
            for turn in range(max_batches):
                if turn:
                    let_others_run()
                try:
                    item = spill.next_batch(self.batch_size)
                except OSError as exc:
                    log.error("request log: could not read spilled rows (%s)", exc)
                    break
                if item is None:
                    break
                source, rows, offset = item
                try:
                    self._write(rows, dedupe=True)
                except Exception as exc:  # noqa: BLE001 - the rows stay on disk, retried later
                    self._failed(exc, len(rows), spilled=True)
                    break
                spill.committed(source, len(rows), offset)
                written += len(rows)
                self._succeeded()
        self.written += written
        return written

    def close(self, timeout: float = 10.0) -> int:
        """Worker exit: write what can be written, spill the rest to disk; returns rows left in memory."""
        deadline = time.monotonic() + timeout
        attempts = 0
        while self._queue and time.monotonic() < deadline:
            self.flush(force=True)
            if not (self._queue and self.failures):
                continue  # written (rows queued during the flush go in the next one)
            attempts += 1
            if self.spill is not None and attempts >= 2:
                break  # the database is failing: the rows are safer on disk than in a retry loop
            time.sleep(0.2)
        if self._queue and self.spill is not None:
            count = len(self._queue)
            if self._spill_overflow(limit=0, now=True):
                log.warning("request log: %d rows spilled to %s for the next worker to write", count,
                            self.spill.directory)
        if self.spill is not None:
            try:
                self.spill.close()
            except OSError as exc:
                log.error("request log: closing the spill files failed (%s)", exc)
        if self._queue:
            log.error("request log: %d rows could not be written before shutdown", len(self._queue))
        return len(self._queue)

    def _failed(self, exc: Exception, rows: int, spilled: bool = False) -> None:
        self.failures += 1
        delay = min(self.max_backoff, 0.2 * 2 ** min(self.failures, 10))
        self.retry_at = time.monotonic() + delay
        where = "spilled rows" if spilled else "rows"
        log.warning("request log: writing %d %s failed (%s); %d queued, %d on disk, retry in %.1fs",
                    rows, where, type(exc).__name__, len(self._queue), self.spilled, delay)
        discard_connection()  # a broken connection is not reused: the retry opens a fresh one

    def _succeeded(self) -> None:
        if self.failures:
            log.info("request log: writing again after %d failed attempts", self.failures)
        self.failures = 0
        self.retry_at = 0.0

    def _spill_overflow(self, *, sync: bool = True, blocking: bool = True, limit: int | None = None,
                        now: bool = False) -> int:
        """Move the oldest rows past the bound (or past ``limit``) to disk; returns how many moved.

        From the background loop (``blocking``) at most once per ``SPILL_INTERVAL`` unless ``now``,
        so an outage costs one append and one ``fsync`` per interval, not one per request. Never
        raises: rows the disk refuses go back to the queue, never dropped.
        """
        spill = self.spill
        keep = self.max_queued if limit is None else limit
        if spill is None:
            return 0
        if len(self._queue) <= keep or (blocking and not now and time.monotonic() < self._next_spill):
            if blocking:
                self._sync_spill()
            return 0
        if blocking:
            self._next_spill = time.monotonic() + SPILL_INTERVAL
        rows = []
        while len(self._queue) > keep:
            try:
                rows.append(self._queue.popleft())
            except IndexError:  # the background loop took the rest meanwhile
                break
        try:
            lines = [spill_encode(row, _spill_form) for row in rows]
            if spill.append(lines, sync=sync, blocking=blocking):
                return len(rows)
            self._queue.extendleft(reversed(rows))  # another spill is under way: it will take them
        except Exception as exc:  # noqa: BLE001 - memory grows past the bound instead
            self._queue.extendleft(reversed(rows))
            self.spill_errors += 1
            if blocking:
                log.error("request log: spilling %d rows to disk failed (%s); they stay in memory", len(rows), exc)
        return 0

    def _sync_spill(self) -> None:
        try:
            self.spill.sync()
        except OSError as exc:
            log.error("request log: fsync of the spill file failed (%s)", exc)

    def _write(self, batch: list[dict[str, Any]], dedupe: bool = False) -> None:
        cutoff = self.cleared_before()
        if cutoff is not None:
            kept = [row for row in batch if row["created_at"] >= cutoff]
            self.discarded += len(batch) - len(kept)
            batch = kept
        db = database.obj
        with _short_busy_wait(db), database.atomic():
            if dedupe and batch:
                batch = _without_stored(batch)
            rows = [_db_row(row) for row in batch]
            if rows:
                cursor = db.cursor()
                cursor.executemany(_insert_sql(db), rows)
            last_used, usage = _by_key(batch)
            for key_id, when in last_used.items():
                ApiKey.update(last_used_at=when).where(ApiKey.id == key_id).execute()
            if usage:
                _add_usage(usage)


def _by_key(batch: list[dict[str, Any]]) -> tuple[dict[int, Any], dict[tuple[int, dt.date], list]]:
    """For the keys in a batch: when each was last used, and its sums by UTC day (requests, errors,
    input and output tokens, cost)."""
    last_used: dict[int, Any] = {}
    usage: dict[tuple[int, dt.date], list] = {}
    for row in batch:
        key_id = row.get("key_id")
        if key_id is None:
            continue
        created = row["created_at"]
        last_used[key_id] = max(last_used.get(key_id, created), created)
        sums = usage.setdefault((key_id, created.date()), [0, 0, 0, 0, 0.0])
        sums[0] += 1
        sums[1] += row["status"] >= 400
        sums[2] += row.get("input_tokens") or 0
        sums[3] += row.get("output_tokens") or 0
        sums[4] += row.get("cost") or 0.0
    return last_used, usage


def _add_usage(usage: dict[tuple[int, dt.date], list]) -> None:
    """Add a batch's sums to ``key_usage`` (one upsert; SQLite and PostgreSQL both say ON CONFLICT)."""
    rows = [{"key_id": key_id, "day": day, "requests": s[0], "errors": s[1], "input_tokens": s[2],
             "output_tokens": s[3], "cost": s[4], "updated_at": utcnow()} for (key_id, day), s in usage.items()]
    added = ("requests", "errors", "input_tokens", "output_tokens", "cost")
    KeyUsage.insert_many(rows).on_conflict(
        conflict_target=[KeyUsage.key_id, KeyUsage.day],
        update={**{getattr(KeyUsage, name): getattr(KeyUsage, name) + EXCLUDED[name] for name in added},
                KeyUsage.updated_at: EXCLUDED.updated_at},
    ).execute()


def _spill_form(row: dict[str, Any]) -> dict[str, Any]:
    """A row as it is spilled: bodies redacted (when asked), serialised and clipped, as the database stores them."""
    limit = row.get("body_max_chars") or 100_000
    out = dict(row)
    for name in _BODIES:
        value = row.get(name)
        out[name] = _clip(redact_stored(value) if row.get("redact_secrets") else value, limit)  # as _db_row
    for name in _JSON:
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            out[name] = json.dumps(value)
    return out


def _without_stored(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of ``batch`` whose ``request_id`` is not stored yet (within the batch's time span)."""
    stamps = [row["created_at"] for row in batch if row.get("created_at") is not None]
    ids = [row["request_id"] for row in batch if row.get("request_id")]
    if not stamps or not ids:
        return batch
    query = (RequestLog.select(RequestLog.request_id)
             .where(RequestLog.created_at.between(min(stamps), max(stamps)) & RequestLog.request_id.in_(ids)))
    stored = {request_id for (request_id,) in query.tuples()}
    if not stored:
        return batch
    log.info("request log: %d rows were already stored; skipped", len(stored))
    return [row for row in batch if row.get("request_id") not in stored]


@contextlib.contextmanager
def _short_busy_wait(db) -> Iterator[None]:
    """On SQLite, wait at most ``SQLITE_WRITE_BUSY_MS`` for a lock while writing the log.

    SQLite's busy wait blocks the whole gevent worker; a locked database must cost the requests
    being served a fraction of a second per retry, not the 10 s other statements may wait.
    """
    if not isinstance(db, peewee.SqliteDatabase):
        yield
        return
    db.execute_sql(f"PRAGMA busy_timeout = {SQLITE_WRITE_BUSY_MS}")
    try:
        yield
    finally:
        try:
            db.execute_sql(f"PRAGMA busy_timeout = {SQLITE_PRAGMAS['busy_timeout']}")
        except Exception:  # noqa: BLE001 - the connection is discarded on failure anyway
            pass


_INSERT: dict[str, str] = {}


def _insert_sql(db) -> str:
    sql = _INSERT.get(db.param)
    if sql is None:
        columns = ", ".join(f'"{f.column_name}"' for f in _FIELDS)
        marks = ", ".join([db.param] * len(_FIELDS))
        sql = _INSERT[db.param] = f'INSERT INTO "{RequestLog._meta.table_name}" ({columns}) VALUES ({marks})'
    return sql
