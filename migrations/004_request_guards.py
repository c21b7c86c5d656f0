"""The request log keeps what the agent guards did to a request, as JSON: [{"guard", "action", "why"}]."""

import peewee
from playhouse.migrate import SchemaMigrator, migrate


def up(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.add_column("request_log", "guards", peewee.TextField(null=True)))
