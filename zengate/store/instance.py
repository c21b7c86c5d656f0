"""State the workers of one instance share with no service, in a small SQLite file in the
instance's runtime directory: rests that expire (with a generation, so that readers skip the file
until it changed) and the admin login's failure counts.

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
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..runtime.generation import Generation, runtime_dir

log = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS rests (name TEXT PRIMARY KEY, until REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS login_failures (address TEXT PRIMARY KEY, failures INTEGER NOT NULL, "
    "locked_until REAL NOT NULL, last_failure REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS login_failures_last ON login_failures (last_failure)",
    "CREATE TABLE IF NOT EXISTS login_recent (at REAL NOT NULL)",
)
FILE_NAME = "zengate-instance.db"


class InstanceFile:
    """The instance's SQLite file: one connection per process (never across a fork), mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._pid = 0

    def connection(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != os.getpid():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # private from the first byte
            os.close(fd)
            connection = sqlite3.connect(self.path, timeout=1.0, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")  # state of this start only: no fsync per write
            for statement in _SCHEMA:
                connection.execute(statement)
            self._connection, self._pid = connection, os.getpid()
        return self._connection


class Board(Protocol):
    """Where the workers of an instance share rests (:class:`RestBoard`): cooldowns, dead proxies."""

    def post(self, name: str, seconds: float) -> None: ...

    def changed(self) -> dict[str, float] | None: ...

    def current(self) -> dict[str, float]: ...

    def clear(self, prefix: str, *, relay: bool = True) -> None: ...


class RestBoard:
    """Named rests shared by an instance's workers: :meth:`post` one, :meth:`changed` to catch up."""

    def __init__(self, path: Path | None = None, generation: Generation | None = None) -> None:
        self.path = path
        self.generation = generation or Generation()
        self._seen = -1  # no generation: the first look reads the board
        self._file = InstanceFile(path) if path is not None else None
        self._memory: dict[str, float] = {}
        self._failing = False
        self.relay: Any = None  # a zengate.store.relay.Relay: what is posted here reaches the other instances

    def reader(self) -> RestBoard:
        """Another reader of this board (each reader catches up on its own: cooldowns, proxies)."""
        other = RestBoard(self.path, self.generation)
        other._memory = self._memory
        return other

    @classmethod
    def for_instance(cls) -> RestBoard:
        directory = runtime_dir()
        if directory is None:
            return cls()
        return cls(directory / FILE_NAME, Generation.for_instance("rests"))

    def _db(self) -> sqlite3.Connection:
        assert self._file is not None
        return self._file.connection()

    def post(self, name: str, seconds: float) -> None:
        """Rest ``name`` for ``seconds`` from now (a longer rest already posted stays)."""
        self.post_until(name, time.time() + seconds)

    def post_until(self, name: str, until: float, *, relay: bool = True) -> None:
        """Rest ``name`` until ``until`` (wall-clock seconds); ``relay=False`` for what came from
        another instance (it is not sent back)."""
        if self.path is None:
            self._memory[name] = max(self._memory.get(name, 0.0), until)
            self.generation.bump()
        else:
            self._write("INSERT INTO rests (name, until) VALUES (?, ?) ON CONFLICT (name) "
                        "DO UPDATE SET until = max(until, excluded.until)", (name, until))
        if relay and self.relay is not None:  # after this instance: Redis may be slow to answer
            self.relay.rest_posted(name, until)

    def clear(self, prefix: str, *, relay: bool = True) -> None:
        """End every rest whose name starts with ``prefix``, in this instance and (``relay``) the others."""
        if self.path is None:
            for name in [n for n in self._memory if n.startswith(prefix)]:
                del self._memory[name]
            self.generation.bump()
        else:
            self._write("DELETE FROM rests WHERE substr(name, 1, ?) = ?", (len(prefix), prefix))
        if relay and self.relay is not None:
            self.relay.rests_cleared(prefix)

    def _write(self, statement: str, parameters: tuple) -> None:
        """One change to the file (ended rests cleared with it), then the generation moved; a failing
        file leaves each worker its own rests (said once)."""
        try:
            db = self._db()
            db.execute(statement, parameters)
            db.execute("DELETE FROM rests WHERE until < ?", (time.time(),))
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return
        self.generation.bump()

    def changed(self) -> dict[str, float] | None:
        """The rests in force (name → seconds left) when the board changed since the last call, else None."""
        seen = self.generation.read()
        if seen == self._seen:
            return None
        return self._read(seen)

    def current(self) -> dict[str, float]:
        """The rests in force (name → seconds left), changed or not."""
        return self._read(self.generation.read()) or {}

    def _read(self, seen: int) -> dict[str, float] | None:
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


# --- the admin login's failures -----------------------------------------------------------------

@dataclass
class LoginRecord:
    """One address's failed logins."""

    failures: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0


@dataclass
class LoginView:
    """What a login decision reads, and what it changes (written back when the decision ends)."""

    recent: list[float]  # times of failures from anywhere within the window, oldest first
    record: LoginRecord | None  # the address's, if it has failed lately
    added: list[float] = field(default_factory=list)  # failure times to add to ``recent``
    changed: bool = False  # ``record`` is to be stored (or, when None, forgotten)


class MemoryLoginState:
    """The login failures in this process's memory (a single process, or a fallback)."""

    def __init__(self, max_tracked: int) -> None:
        self.max_tracked = max_tracked
        self._records: dict[str, LoginRecord] = {}  # in order of the last failure: the oldest first
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()

    @contextmanager
    def view(self, address: str, now: float, window: float, forget_after: float) -> Iterator[LoginView]:
        with self._lock:
            while self._recent and self._recent[0] <= now - window:
                self._recent.popleft()
            while self._records:
                oldest, record = next(iter(self._records.items()))
                if record.last_failure > now - forget_after and len(self._records) <= self.max_tracked:
                    break
                del self._records[oldest]
            view = LoginView(list(self._recent), self._records.get(address))
            yield view
            self._recent.extend(view.added)
            if view.changed:
                self._records.pop(address, None)
                if view.record is not None:
                    self._records[address] = view.record  # most recently failed last


class SharedLoginState:
    """The login failures in the instance's file, so that every worker counts the same failures;
    a failing file falls back to this worker's memory (said once)."""

    def __init__(self, path: Path, max_tracked: int) -> None:
        self._file = InstanceFile(path)
        self.max_tracked = max_tracked
        self._fallback = MemoryLoginState(max_tracked)
        self._failing = False

    @classmethod
    def for_instance(cls, max_tracked: int) -> SharedLoginState | MemoryLoginState:
        directory = runtime_dir()
        return cls(directory / FILE_NAME, max_tracked) if directory is not None else MemoryLoginState(max_tracked)

    @contextmanager
    def view(self, address: str, now: float, window: float, forget_after: float) -> Iterator[LoginView]:
        db = None
        try:
            db = self._file.connection()
            db.execute("BEGIN IMMEDIATE")  # workers take turns: a decision sees every failure before it
            db.execute("DELETE FROM login_recent WHERE at <= ?", (now - window,))
            db.execute("DELETE FROM login_failures WHERE last_failure <= ?", (now - forget_after,))
            recent = [at for (at,) in db.execute("SELECT at FROM login_recent ORDER BY at")]
            row = db.execute("SELECT failures, locked_until, last_failure FROM login_failures WHERE address = ?",
                             (address,)).fetchone()
        except (sqlite3.Error, OSError) as exc:
            self._rollback(db)
            self._failed(exc)
            with self._fallback.view(address, now, window, forget_after) as view:
                yield view
            return
        view = LoginView(recent, LoginRecord(*row) if row else None)
        try:
            yield view
        except BaseException:
            self._rollback(db)
            raise
        try:
            self._write(db, address, view)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(db)
            self._failed(exc)
            return
        self._failing = False

    def _write(self, db: sqlite3.Connection, address: str, view: LoginView) -> None:
        db.executemany("INSERT INTO login_recent (at) VALUES (?)", [(at,) for at in view.added])
        if view.changed and view.record is None:
            db.execute("DELETE FROM login_failures WHERE address = ?", (address,))
        elif view.changed:
            record = view.record
            db.execute("INSERT INTO login_failures (address, failures, locked_until, last_failure) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET failures = excluded.failures, "
                       "locked_until = excluded.locked_until, last_failure = excluded.last_failure",
                       (address, record.failures, record.locked_until, record.last_failure))
            db.execute("DELETE FROM login_failures WHERE address IN (SELECT address FROM login_failures "
                       "ORDER BY last_failure DESC LIMIT -1 OFFSET ?)", (self.max_tracked,))

    @staticmethod
    def _rollback(db: sqlite3.Connection | None) -> None:
        if db is not None and db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.warning("the login failures shared by this instance's workers are unreachable (%s); this "
                        "worker counts its own meanwhile", exc)
