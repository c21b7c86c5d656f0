"""The model a conversation chose with an in-chat command (``!/model(…)``, ``!/backend(…)``), kept
by the hash of the conversation's identity so that every worker and instance routes its next turns alike."""

import datetime as dt

import peewee


class ConversationChoice(peewee.Model):
    conversation = peewee.CharField(max_length=64, primary_key=True)  # SHA-256 of the conversation's key
    model = peewee.CharField(max_length=300, null=True)
    backend = peewee.CharField(max_length=100, null=True)
    updated_at = peewee.DateTimeField(default=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None), index=True)

    class Meta:
        table_name = "conversation_choices"


def up(db: peewee.Database) -> None:
    with db.bind_ctx([ConversationChoice]):
        db.create_tables([ConversationChoice])
