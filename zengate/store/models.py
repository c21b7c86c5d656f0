"""peewee models. The schema itself is owned by ``migrations/``; these must match it."""

from __future__ import annotations

import datetime as dt

import peewee

from .db import database


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BaseModel(peewee.Model):
    class Meta:
        database = database


class ApiKey(BaseModel):
    """An ``sk-zen-…`` client key. Only its SHA-256 is stored; ``prefix`` identifies it to people."""

    name = peewee.CharField(max_length=200, default="")
    prefix = peewee.CharField(max_length=32)
    key_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)
    active = peewee.BooleanField(default=True)
    # limits (None: none); see zengate.keylimits
    rpm = peewee.IntegerField(null=True)
    requests_per_day = peewee.IntegerField(null=True)
    tokens_per_day = peewee.BigIntegerField(null=True)
    models = peewee.TextField(null=True)  # JSON list of model names or patterns (None: every model)
    expires_at = peewee.DateTimeField(null=True)
    note = peewee.TextField(default="")

    class Meta:
        table_name = "api_keys"


class KeyUsage(BaseModel):
    """One key's requests, errors, tokens and upstream cost on one UTC day (the log writer adds to it)."""

    key_id = peewee.IntegerField()
    day = peewee.DateField()
    requests = peewee.BigIntegerField(default=0)
    errors = peewee.BigIntegerField(default=0)
    input_tokens = peewee.BigIntegerField(default=0)
    output_tokens = peewee.BigIntegerField(default=0)
    cost = peewee.DoubleField(default=0.0)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "key_usage"
        indexes = ((("key_id", "day"), True),)


class ConversationChoice(BaseModel):
    """The model or backend a conversation chose with an in-chat command (zengate/steering/commands.py)."""

    conversation = peewee.CharField(max_length=64, primary_key=True)  # SHA-256 of the conversation's key
    model = peewee.CharField(max_length=300, null=True)
    backend = peewee.CharField(max_length=100, null=True)
    updated_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "conversation_choices"


class Setting(BaseModel):
    """A runtime setting, its value JSON-encoded."""

    key = peewee.CharField(max_length=100, primary_key=True)
    value = peewee.TextField()
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "settings"


class AdminSession(BaseModel):
    """An admin login; only the SHA-256 of the bearer token is stored."""

    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField(index=True)

    class Meta:
        table_name = "admin_sessions"


class RequestLog(BaseModel):
    """One client request, written in batches off the request path."""

    created_at = peewee.DateTimeField(default=utcnow, index=True)
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
    attempts = peewee.TextField(null=True)  # JSON: [{"model", "backend", "key", "status", "error"}]
    cost = peewee.DoubleField(null=True)  # what the upstream said the request cost, when it said
    guards = peewee.TextField(null=True)  # JSON: [{"guard", "action", "why"}], what the agent guards did
    # trimming's estimate of the input tokens before and after it (null when it changed nothing)
    trim_tokens_before = peewee.IntegerField(null=True)
    trim_tokens_after = peewee.IntegerField(null=True)

    class Meta:
        table_name = "request_log"


ALL_MODELS = [ApiKey, KeyUsage, Setting, AdminSession, RequestLog]
