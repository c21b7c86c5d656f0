"""SQLite's write-ahead log moved into the database file by the background loop, off the event loop.

SQLite checkpoints by itself when a commit leaves the WAL past 1,000 pages: that commit copies
the log into the database file and fsyncs both, 5–15 ms here, in the committing greenlet, so in
the worker's only OS thread, holding every request it serves. zengate's connections leave that
to ``Checkpointer``: from the background loop it runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a
connection of its own in a native thread (gevent's pool), where SQLite works with the GIL
released while the worker goes on. PASSIVE never waits for readers or writers; what it could
not copy is copied next time. The connections' own autocheckpoint stays as a backstop at ten
times the size, for a loop that is stuck.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time

import peewee

from ..runtime.helpers import off_loop
from .db import database

log = logging.getLogger(__name__)

CHECKPOINT_BYTES = 1000 * 4096  # where SQLite's own autocheckpoint would step in (1,000 pages)
INTERVAL = 1.0  # seconds between two checkpoints of one worker


def sqlite_file() -> str | None:
    """The database file, when the database is SQLite on disk."""
    db = database.obj
    if not isinstance(db, peewee.SqliteDatabase) or db.database in ("", ":memory:"):
        return None
    return db.database


def checkpoint(path: str) -> tuple[int, int, int]:
    """``PRAGMA wal_checkpoint(PASSIVE)`` on a fresh connection: (busy, frames in the log, frames copied)."""
    conn = sqlite3.connect(path, timeout=0, check_same_thread=False)
    try:
        return tuple(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
    finally:
        conn.close()


class Checkpointer:
    """Checkpoints when this worker wrote since its last one and the WAL has grown past ``CHECKPOINT_BYTES``."""

    def __init__(self, interval: float = INTERVAL, threshold: int = CHECKPOINT_BYTES):
        self.interval = interval
        self.threshold = threshold
        self.runs = 0
        self._next = 0.0
        self._written = 0

    def tick(self, written: int) -> bool:
        """``written``: rows this worker has written so far. Returns whether a checkpoint ran."""
        now = time.monotonic()
        if written == self._written or now < self._next:
            return False
        path = sqlite_file()
        if path is None:
            return False
        try:
            if os.path.getsize(path + "-wal") < self.threshold:
                return False
        except OSError:
            return False
        self._written = written
        self._next = now + self.interval
        try:
            busy, frames, copied = off_loop(checkpoint, path)
        except sqlite3.Error as exc:
            log.warning("SQLite checkpoint failed (%s); SQLite's own checkpoint stays as a backstop", exc)
            return False
        self.runs += 1
        log.debug("SQLite checkpoint: %d of %d frames copied%s", copied, frames, " (busy)" if busy else "")
        return True
