"""The model or backend each conversation chose with an in-chat command, shared by every worker.

A conversation is kept by the SHA-256 of its key (zengate/exchange/routing.py ``conversation_key``):
the client's session id never reaches the database as it is. A choice not renewed for
``days`` days is forgotten: it is not read, and the next write deletes it.

Every request of a conversation asks for its choice, so each worker keeps what it read
(:class:`Choices`), no choice included, for at most the settings' cache time; a write through
any worker of the instance empties every worker's cache at once (an instance
:class:`~zengate.runtime.generation.Generation`); with Redis the relay tells the other instances
at once too, else they see it within that time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from ..runtime.generation import Generation
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


class Choices:
    """The conversations' choices as one worker reads them: :func:`read` behind a cache (see the module)."""

    def __init__(self, generation: Generation, fresh_seconds: float, size: int = 10_000):
        self.generation = generation
        self.fresh_seconds = fresh_seconds
        self.size = size
        self._seen = generation.read()
        self._cache: dict[str, tuple[Choice | None, float]] = {}
        self.relay: Any = None  # a zengate.store.relay.Relay: other instances forget their cached choices

    def read(self, key: str, days: int) -> Choice | None:
        now = time.monotonic()
        seen = self.generation.read()
        if seen != self._seen:
            self._cache.clear()
            self._seen = seen
        cached = self._cache.get(key)
        if cached is not None and now - cached[1] < self.fresh_seconds:
            return cached[0]
        choice = read(key, days)
        if len(self._cache) >= self.size:
            self._cache.clear()  # a worker sees few conversations at once: start afresh rather than track age
        self._cache[key] = (choice, now)
        return choice

    def write(self, key: str, choice: Choice | None, days: int) -> None:
        write(key, choice, days)
        self._seen = self.generation.bump()
        self._cache.clear()
        if self.relay is not None:
            self.relay.conversations_changed()
