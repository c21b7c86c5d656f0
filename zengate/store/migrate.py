"""Numbered, forward-only migrations from ``migrations/NNN_name.py``.

Each migration module defines ``up(db)``. They are applied in order inside one transaction that
holds a lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so several workers or
instances starting at once apply each migration exactly once.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path

import peewee

from .db import database, is_postgres
from .models import utcnow

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.py$")
_PG_LOCK_ID = 0x5A454E47  # "ZENG"


class SchemaMigration(peewee.Model):
    version = peewee.IntegerField(primary_key=True)
    name = peewee.CharField(max_length=200)
    applied_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "schema_migrations"


def available(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(directory.glob("*.py")):
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path.stem, path))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {directory}")
    return found


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"zengate_migration_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lock():
    db = database.obj
    if isinstance(db, peewee.SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return db.atomic()


def migrate(directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration; return the names applied by this call."""
    applied_now: list[str] = []
    with _lock():
        if is_postgres():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_ID,))
        database.create_tables([SchemaMigration], safe=True)
        done = {row.version for row in SchemaMigration.select(SchemaMigration.version)}
        for version, name, path in available(directory):
            if version in done:
                continue
            log.info("applying migration %s", name)
            _load(path).up(database.obj)
            SchemaMigration.create(version=version, name=name)
            applied_now.append(name)
    return applied_now


def applied() -> list[str]:
    if not database.table_exists("schema_migrations"):
        return []
    return [row.name for row in SchemaMigration.select().order_by(SchemaMigration.version)]


def prepare_database(config) -> None:
    """Open the database and apply pending migrations (safe when several processes race)."""
    from .db import open_database

    open_database(config.database_url)
    migrate()
