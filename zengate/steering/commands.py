"""In-chat commands: ``!/model(NAME)``, ``!/backend(NAME)``, ``!/oneoff(backend:model)``, ``!/reset``,
``!/status`` and ``!/help``, written in the conversation's latest user message.

Pure functions on the internal form: :func:`read` finds the commands of the latest user turn,
:func:`strip` removes every command and every answer the gateway gave to one from the whole
conversation before it goes upstream (the client keeps re-sending them; removing them in every
turn alike keeps the upstream's prompt cache hitting), and :class:`Confirmation` puts the
gateway's note on a switch before the model's answer. What a command does to routing is the
caller's (zengate/web/client/conversation.py).

A command is ``!/`` at the start of the text or after white space, a name, and an optional
argument in parentheses, followed by white space, punctuation or the end: ``#!/usr/bin/env`` and
``!/usr/bin`` are not commands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..exchange.form import FormEvent

#: What every answer of the gateway's own starts with; :func:`strip` knows them by it.
MARK = "[zengate]"

NAMES = ("model", "backend", "oneoff", "reset", "status", "help")
#: Commands that need an argument, and those that take none.
WITH_ARGUMENT = frozenset({"model", "backend", "oneoff"})

_COMMAND = re.compile(r"(?:(?<=\s)|^)!/([A-Za-z][\w-]*)(?:\(([^()\n]*)\))?(?=[\s.,;:!?]|$)")
_OWN_ANSWER = re.compile(r"\A\[zengate\][^\n]*(?:\n[^\n]+)*\n*")

HELP = (
    "In-chat commands (the gateway reads them; the model never sees them):\n"
    "- !/model(NAME): use model NAME for the rest of this conversation (!/model(default): the client's own)\n"
    "- !/backend(NAME): send this conversation to the named backend (!/backend(default): each model's own)\n"
    "- !/oneoff(MODEL) or !/oneoff(backend:MODEL) your message: one turn on another model\n"
    "- !/reset: forget this conversation's choices\n"
    "- !/status: the model, backend and key this conversation uses\n"
    "- !/help: this list"
)


@dataclass(frozen=True)
class Command:
    name: str  # lower case
    argument: str | None  # None: written without parentheses

    @property
    def known(self) -> bool:
        return self.name in NAMES

    @property
    def well_formed(self) -> bool:
        """Known, with an argument when it needs one and none when it takes none."""
        if not self.known:
            return False
        has = bool(self.argument and self.argument.strip())
        return has if self.name in WITH_ARGUMENT else self.argument is None

    def __str__(self) -> str:
        return f"!/{self.name}" + (f"({self.argument})" if self.argument is not None else "")


@dataclass(frozen=True)
class Turn:
    """The commands of the latest user turn, and whether it says anything besides them."""

    commands: tuple[Command, ...]
    has_message: bool


def _texts(content) -> Iterable[str]:
    if isinstance(content, str):
        yield content
        return
    for block in content or ():
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            yield block["text"]


def read(form: dict) -> Turn | None:
    """The commands in the form's latest message when a user wrote it (not tool results only); None: none."""
    messages = form.get("messages") or []
    if not messages or not isinstance(messages[-1], dict) or messages[-1].get("role") != "user":
        return None
    texts = list(_texts(messages[-1].get("content")))
    if not any("!/" in text for text in texts):
        return None
    commands = [Command(m.group(1).lower(), m.group(2)) for text in texts for m in _COMMAND.finditer(text)]
    if not commands:
        return None
    rest = any(_COMMAND.sub("", text).strip() for text in texts if not _is_reminder(text))
    return Turn(tuple(commands), rest)


def _is_reminder(text: str) -> bool:
    """Claude Code wraps context it adds to a user turn in <system-reminder>: not the user's message."""
    stripped = text.strip()
    return stripped.startswith("<system-reminder>") and stripped.endswith("</system-reminder>")


def strip(form: dict) -> dict | None:
    """The form without commands in user turns and without the gateway's own answers; None: nothing to strip.

    A user turn that held only commands is dropped with the gateway's answer to it, so the upstream
    sees the conversation as if they had never been written.
    """
    messages = form.get("messages") or []
    if not any(_mentions(m) for m in messages if isinstance(m, dict)):
        return None
    out: list = []
    dropped_turn = False
    changed = False
    for message in messages:
        if not isinstance(message, dict):
            out.append(message)
            continue
        role = message.get("role")
        if role == "assistant" and dropped_turn and _own_answer_only(message):
            dropped_turn, changed = False, True
            continue
        dropped_turn = False
        if role == "user":
            cleaned = _strip_user(message)
            if cleaned is None:  # only commands: the gateway answered it, the upstream never saw it
                dropped_turn = changed = True
                continue
            changed |= cleaned is not message
            out.append(cleaned)
        elif role == "assistant":
            cleaned = _strip_own(message)
            changed |= cleaned is not message
            out.append(cleaned)
        else:
            out.append(message)
    if not changed:
        return None
    return {**form, "messages": out}


def _mentions(message: dict) -> bool:
    return any("!/" in t or MARK in t for t in _texts(message.get("content")))


def _strip_user(message: dict) -> dict | None:
    """The user message without commands (itself when it has none); None when nothing else is left."""
    content = message.get("content")
    if isinstance(content, str):
        if "!/" not in content or not _COMMAND.search(content):
            return message
        rest = _clean(_COMMAND.sub("", content))
        return {**message, "content": rest} if rest else None
    blocks, changed = [], False
    for block in content or ():
        text = block.get("text") if isinstance(block, dict) and block.get("type") == "text" else None
        if isinstance(text, str) and "!/" in text and _COMMAND.search(text):
            changed = True
            rest = _clean(_COMMAND.sub("", text))
            if rest:
                blocks.append({**block, "text": rest})
            continue
        blocks.append(block)
    if not changed:
        return message
    if not any(not (isinstance(b, dict) and b.get("type") == "text" and _is_reminder(b.get("text", "")))
               for b in blocks):
        return None
    return {**message, "content": blocks}


def _clean(text: str) -> str:
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _own_answer_only(message: dict) -> bool:
    texts = list(_texts(message.get("content")))
    return bool(texts) and all(t.startswith(MARK) for t in texts) and not _has_non_text(message)


def _has_non_text(message: dict) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") != "text" for b in content)


def _strip_own(message: dict) -> dict:
    """An assistant message without the gateway's note before the model's answer (itself when none)."""
    content = message.get("content")
    if isinstance(content, str):
        if not content.startswith(MARK):
            return message
        return {**message, "content": _OWN_ANSWER.sub("", content, count=1)}
    if not content or not isinstance(content[0], dict) or not str(content[0].get("text", "")).startswith(MARK):
        return message
    first = _OWN_ANSWER.sub("", content[0]["text"], count=1)
    rest = ([{**content[0], "text": first}] if first else []) + list(content[1:])
    return {**message, "content": rest}


class Confirmation:
    """An answer guard that puts the gateway's ``text`` before the model's answer, as a text block of its
    own (the blocks after it renumbered), in a stream or a whole answer."""

    def __init__(self, text: str):
        self.text = text
        self.sent = False

    def feed(self, events: Iterable[FormEvent]) -> list[FormEvent]:
        out: list[FormEvent] = []
        for name, data in events:
            if name == "content_block_start" and not self.sent:
                self.sent = True
                out.extend(self._block())
            if "index" in data and name.startswith("content_block"):
                data = {**data, "index": data["index"] + 1}
            elif name == "message_delta" and not self.sent:  # an answer with no block at all
                self.sent = True
                out.extend(self._block())
            out.append((name, data))
        return out

    def _block(self) -> list[FormEvent]:
        return [("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": self.text + "\n\n"}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0})]

    def answer(self, answer: dict) -> dict:
        return {**answer, "content": [{"type": "text", "text": self.text + "\n\n"}, *(answer.get("content") or [])]}
