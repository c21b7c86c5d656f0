"""The database handle: one peewee proxy, bound at start to SQLite or PostgreSQL.

SQLite runs in WAL mode with a busy timeout so that several gunicorn workers can share one
file. PostgreSQL connections are pooled; under gevent, psycopg2 is made cooperative with a
wait callback so a slow query never blocks the worker's other greenlets.

What the gateway keeps on disk (conversations, key hashes, proxy credentials) is its owner's
alone: the directories it creates are 0700 (:func:`private_directory`, the spill directory's too)
and the SQLite file is created 0600 before SQLite opens it; SQLite gives the ``-wal`` and ``-shm``
files the database file's mode. Database files that are readable by others are tightened at
start (:func:`private_database_files`); a directory the operator made is left as it is.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from urllib.parse import urlparse

import peewee

log = logging.getLogger(__name__)

database = peewee.DatabaseProxy()

#: The files of one SQLite database: the file itself, then what SQLite creates next to it.
SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")

#: What a query raises when the database is down, unreachable or locked (peewee wraps the drivers' errors).
UNAVAILABLE: tuple[type[Exception], ...] = (peewee.OperationalError, peewee.InterfaceError)

PG_CONNECT_TIMEOUT = 5  # seconds, unless DATABASE_URL sets connect_timeout

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 10_000,
    "synchronous": "normal",
    "foreign_keys": 1,
    # a backstop: the background loop checkpoints at a tenth of this, off the event loop (store/wal.py)
    "wal_autocheckpoint": 10_000,
}


def open_database(url: str) -> peewee.Database:
    """Create the database object for ``url`` and bind the global proxy to it."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url[len("sqlite://"):]
        if path and path != ":memory:":
            private_directory(Path(path).parent)
            private_database_files(Path(path))
        db = peewee.SqliteDatabase(path or ":memory:", pragmas=SQLITE_PRAGMAS, timeout=10)
    elif scheme in ("postgres", "postgresql"):
        load_psycopg2()
        _make_psycopg2_cooperative()
        from playhouse.db_url import connect as connect_url

        pooled = url.replace(f"{scheme}://", "postgresql+pool://", 1)
        # a server that vanished without a word (no RST) must not hold a request for minutes
        extra = {} if "connect_timeout=" in url else {"connect_timeout": PG_CONNECT_TIMEOUT}
        db = connect_url(pooled, max_connections=32, stale_timeout=300, timeout=10, **extra)
    else:
        raise ValueError(f"DATABASE_URL scheme {scheme!r} is not supported (use sqlite:// or postgresql://)")
    database.initialize(db)
    return db


def private_directory(path: Path) -> list[Path]:
    """Create ``path`` and each missing parent with mode 0700; returns the directories created.

    (``Path.mkdir(mode=…, parents=True)`` gives the parents the default mode.) Directories that
    already exist are left as they are: they are the operator's.
    """
    missing: list[Path] = []
    current = Path(path)
    while not current.is_dir() and current.parent != current:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # another worker made it at the same moment (or it is not a directory)
            if not directory.is_dir():
                raise
    return missing[::-1]


def private_database_files(path: Path) -> list[Path]:
    """Create the SQLite file 0600 if missing; tighten its files that others may read. Returns those.

    Only files this process's user owns are changed, to their owner bits alone, and the change is
    logged once (an operator may have meant the group to read them; the log says what changed).
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        return []  # an empty file is a new database to SQLite; its -wal and -shm get its mode
    except FileExistsError:
        pass
    tightened: list[Path] = []
    for suffix in SQLITE_SIDE_FILES:
        name = Path(f"{path}{suffix}")
        try:
            st = name.stat()
            if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o077 or st.st_uid != os.geteuid():
                continue
            name.chmod(stat.S_IMODE(st.st_mode) & 0o700)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not make %s private (%s); it stays readable by others", name, exc)
            continue
        tightened.append(name)
    if tightened:
        log.warning("made the database files private (owner only; they were open to group or others): %s",
                    ", ".join(str(name) for name in tightened))
    return tightened


def is_postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def load_psycopg2() -> None:
    """Give peewee the psycopg2 driver it was imported without (zengate/store/__init__.py).

    Sets what peewee's own import sets when psycopg2 is there: four module names, the UUID
    adapter, and the driver's transaction states on ``Psycopg2Adapter`` (tests/unit/test_db_driver.py
    compares the result with a plain import). A no-op when peewee already has psycopg2.
    """
    if peewee.psycopg2 is not None:
        return
    import psycopg2
    from psycopg2 import extensions
    from psycopg2.extras import Json, register_uuid

    register_uuid()
    peewee.psycopg2, peewee.pg_extensions, peewee.pg_register_uuid, peewee.Json_pg2 = (
        psycopg2, extensions, register_uuid, Json)
    adapter = peewee.Psycopg2Adapter
    adapter.txn_idle = extensions.TRANSACTION_STATUS_IDLE
    adapter.txn_inerror = extensions.TRANSACTION_STATUS_INERROR
    adapter.txn_unknown = extensions.TRANSACTION_STATUS_UNKNOWN


def _make_psycopg2_cooperative() -> None:
    """Let psycopg2 yield to other greenlets while it waits on the socket (gevent only)."""
    try:
        from gevent import monkey
        from gevent.socket import wait_read, wait_write
        from psycopg2 import OperationalError, extensions
    except ImportError:  # no gevent: plain blocking psycopg2 is fine
        return
    if not monkey.is_module_patched("socket"):
        return

    def wait(conn, timeout=None):
        while True:
            state = conn.poll()
            if state == extensions.POLL_OK:
                return
            if state == extensions.POLL_READ:
                wait_read(conn.fileno(), timeout=timeout)
            elif state == extensions.POLL_WRITE:
                wait_write(conn.fileno(), timeout=timeout)
            else:
                raise OperationalError(f"bad state from poll: {state}")

    extensions.set_wait_callback(wait)


def discard_connection() -> None:
    """Drop this thread's connection after a database error, so the next query opens a fresh one.

    A PostgreSQL connection cut under a long-lived greenlet (the background loop) would otherwise
    fail every later query; the pool does not hand a broken connection out again.
    """
    try:
        if database.obj is not None and not database.is_closed() and not database.in_transaction():
            database.close()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail; its state is reset anyway
        pass


def healthy() -> bool:
    """A cheap round trip to the database."""
    try:
        database.execute_sql("SELECT 1").fetchone()
        return True
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        return False
