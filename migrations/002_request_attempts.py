"""The request log keeps every upstream attempt (model, backend, key, status) as JSON."""

import peewee
from playhouse.migrate import SchemaMigrator, migrate


def up(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.add_column("request_log", "attempts", peewee.TextField(null=True)))
