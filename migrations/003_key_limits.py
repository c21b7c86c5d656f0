"""Per-key limits and usage: each sk-zen key may carry requests per minute, requests and tokens per
day, an allow-list of models, an expiry and a note; ``key_usage`` sums each key's requests, errors,
tokens and upstream cost by UTC day (kept when the request log is trimmed); the request log keeps
the cost an upstream reported."""

import datetime as dt

import peewee
from playhouse.migrate import SchemaMigrator, migrate


class KeyUsage(peewee.Model):
    key_id = peewee.IntegerField()
    day = peewee.DateField()
    requests = peewee.BigIntegerField(default=0)
    errors = peewee.BigIntegerField(default=0)
    input_tokens = peewee.BigIntegerField(default=0)
    output_tokens = peewee.BigIntegerField(default=0)
    cost = peewee.DoubleField(default=0.0)
    updated_at = peewee.DateTimeField(default=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))

    class Meta:
        table_name = "key_usage"
        indexes = ((("key_id", "day"), True),)


def up(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(
        migrator.add_column("api_keys", "rpm", peewee.IntegerField(null=True)),
        migrator.add_column("api_keys", "requests_per_day", peewee.IntegerField(null=True)),
        migrator.add_column("api_keys", "tokens_per_day", peewee.BigIntegerField(null=True)),
        migrator.add_column("api_keys", "models", peewee.TextField(null=True)),
        migrator.add_column("api_keys", "expires_at", peewee.DateTimeField(null=True)),
        migrator.add_column("api_keys", "note", peewee.TextField(default="")),
        migrator.add_column("request_log", "cost", peewee.DoubleField(null=True)),
    )
    with db.bind_ctx([KeyUsage]):
        db.create_tables([KeyUsage])
