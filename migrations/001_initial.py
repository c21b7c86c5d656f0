"""Initial schema: API keys, settings, admin sessions and the request log.

The models are frozen here (not imported from zengate.store.models) so this step keeps creating
exactly this schema whatever the models become later.
"""

import datetime as dt

import peewee


def _now():
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class ApiKey(peewee.Model):
    name = peewee.CharField(max_length=200, default="")
    prefix = peewee.CharField(max_length=32)
    key_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=_now)
    last_used_at = peewee.DateTimeField(null=True)
    active = peewee.BooleanField(default=True)

    class Meta:
        table_name = "api_keys"


class Setting(peewee.Model):
    key = peewee.CharField(max_length=100, primary_key=True)
    value = peewee.TextField()
    updated_at = peewee.DateTimeField(default=_now)

    class Meta:
        table_name = "settings"


class AdminSession(peewee.Model):
    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=_now)
    expires_at = peewee.DateTimeField(index=True)

    class Meta:
        table_name = "admin_sessions"


class RequestLog(peewee.Model):
    created_at = peewee.DateTimeField(default=_now, index=True)
    request_id = peewee.CharField(max_length=64)
    method = peewee.CharField(max_length=10)
    path = peewee.CharField(max_length=200)
    model = peewee.CharField(max_length=200, null=True, index=True)
    upstream_model = peewee.CharField(max_length=200, null=True)
    format = peewee.CharField(max_length=20)
    stream = peewee.BooleanField(default=False)
    status = peewee.IntegerField(index=True)
    latency_ms = peewee.FloatField()
    ttfb_ms = peewee.FloatField(null=True)
    input_tokens = peewee.IntegerField(default=0)
    output_tokens = peewee.IntegerField(default=0)
    key_prefix = peewee.CharField(max_length=32, null=True)
    proxy = peewee.CharField(max_length=200, null=True)
    input_messages = peewee.TextField(null=True)
    output_content = peewee.TextField(null=True)
    error = peewee.TextField(null=True)

    class Meta:
        table_name = "request_log"


MODELS = [ApiKey, Setting, AdminSession, RequestLog]


def up(db: peewee.Database) -> None:
    with db.bind_ctx(MODELS):
        db.create_tables(MODELS)
