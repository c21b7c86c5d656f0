"""The request log keeps trimming's estimate of a request's input tokens before and after it
trimmed the old turns (both null when trimming changed nothing)."""

import peewee
from playhouse.migrate import SchemaMigrator, migrate


def up(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.add_column("request_log", "trim_tokens_before", peewee.IntegerField(null=True)),
            migrator.add_column("request_log", "trim_tokens_after", peewee.IntegerField(null=True)))
