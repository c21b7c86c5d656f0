"""State the workers of one instance share with no service: rests that expire, in a small SQLite
file in the instance's runtime directory, with a generation so that readers skip it until it changed.

A worker that learns something every worker should honour (an upstream's 429 rests a model with a
key) posts it here with the moment it ends (wall-clock seconds: the workers share the clock, and
the entry means the same to each of them); the others read the board again only when its
:class:`~zengate.runtime.generation.Generation` moved, so the request path pays one memory read.
Outside gunicorn (one process) the board lives in memory. Entries end by themselves; a restart
starts from an empty board, as a new runtime directory does.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from ..runtime.generation import Generation, runtime_dir

log = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS rests (name TEXT PRIMARY KEY, until REAL NOT NULL)"


class RestBoard:
    """Named rests shared by an instance's workers: :meth:`post` one, :meth:`changed` to catch up."""

    def __init__(self, path: Path | None = None, generation: Generation | None = None) -> None:
        self.path = path
        self.generation = generation or Generation()
        self._seen = -1  # no generation: the first look reads the board
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._memory: dict[str, float] = {}
        self._failing = False

    @classmethod
    def for_instance(cls) -> RestBoard:
        directory = runtime_dir()
        if directory is None:
            return cls()
        return cls(directory / "zengate-rests.db", Generation(directory / "zengate-rests.generation"))

    def _db(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != os.getpid():  # a connection never crosses a fork
            assert self.path is not None
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # private from the first byte
            os.close(fd)
            connection = sqlite3.connect(self.path, timeout=1.0, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def post(self, name: str, seconds: float) -> None:
        """Rest ``name`` for ``seconds`` from now (a longer rest already posted stays)."""
        until = time.time() + seconds
        if self.path is None:
            self._memory[name] = max(self._memory.get(name, 0.0), until)
        else:
            try:
                db = self._db()
                db.execute("INSERT INTO rests (name, until) VALUES (?, ?) ON CONFLICT (name) "
                           "DO UPDATE SET until = max(until, excluded.until)", (name, until))
                db.execute("DELETE FROM rests WHERE until < ?", (time.time(),))
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)  # this worker still rests it; the others learn it from their own 429
                return
        self.generation.bump()

    def changed(self) -> dict[str, float] | None:
        """The rests in force (name → seconds left) when the board changed since the last call, else None."""
        seen = self.generation.read()
        if seen == self._seen:
            return None
        now = time.time()
        if self.path is None:
            rows = list(self._memory.items())
        else:
            try:
                rows = self._db().execute("SELECT name, until FROM rests WHERE until > ?", (now,)).fetchall()
            except (sqlite3.Error, OSError) as exc:
                self._seen = seen  # not again on every lookup: the next post tries again
                self._failed(exc)
                return None
        self._seen = seen
        self._failing = False
        return {name: until - now for name, until in rows if until > now}

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.warning("the rests shared by this instance's workers are unreachable (%s); each worker "
                        "rests what it saw itself", exc)
