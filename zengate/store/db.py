"""The database handle: one peewee proxy, bound at start to SQLite or PostgreSQL.

SQLite runs in WAL mode with a busy timeout so that several gunicorn workers can share one
file. PostgreSQL connections are pooled; under gevent, psycopg2 is made cooperative with a
wait callback so a slow query never blocks the worker's other greenlets.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import peewee

database = peewee.DatabaseProxy()

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
            Path(path).parent.mkdir(parents=True, exist_ok=True)
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
