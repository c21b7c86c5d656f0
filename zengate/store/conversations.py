"""The model or backend each conversation chose with an in-chat command, shared by every worker.

A conversation is kept by the SHA-256 of its key (zengate/exchange/routing.py ``conversation_key``):
the client's session id never reaches the database as it is. A choice not renewed for
``days`` days is forgotten: it is not read, and the next write deletes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from .db import database
from .models import ConversationChoice, utcnow


@dataclass(frozen=True)
class Choice:
    model: str | None = None  # a model name ("backend:model" allowed); None: the client's
    backend: str | None = None  # a named backend for the model; None: the model's own


def conversation_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def read(key: str, days: int) -> Choice | None:
    """The conversation's choice, or None (none made, or older than ``days`` days)."""
    cutoff = utcnow() - dt.timedelta(days=days)
    row = (ConversationChoice.select(ConversationChoice.model, ConversationChoice.backend)
           .where((ConversationChoice.conversation == conversation_hash(key))
                  & (ConversationChoice.updated_at >= cutoff))
           .first())
    return Choice(row.model, row.backend) if row is not None else None


def write(key: str, choice: Choice | None, days: int) -> None:
    """Keep ``choice`` for the conversation (None: forget it); forget choices older than ``days`` days."""
    digest = conversation_hash(key)
    now = utcnow()
    with database.atomic():
        ConversationChoice.delete().where(ConversationChoice.updated_at < now - dt.timedelta(days=days)).execute()
        if choice is None or (choice.model is None and choice.backend is None):
            ConversationChoice.delete().where(ConversationChoice.conversation == digest).execute()
            return
        (ConversationChoice.insert(conversation=digest, model=choice.model, backend=choice.backend, updated_at=now)
         .on_conflict(conflict_target=[ConversationChoice.conversation],
                      update={ConversationChoice.model: choice.model, ConversationChoice.backend: choice.backend,
                              ConversationChoice.updated_at: now})
         .execute())
