"""Every dialect zengate speaks, by name: a new API is one dialect module and one line here.

The names are the catalog's ``protocol`` values (and the models file's), so a model's upstream
API is looked up here; a client-API view names its own dialect the same way.
"""

from __future__ import annotations

from .anthropic import DIALECT as ANTHROPIC
from .base import Dialect
from .gemini import DIALECT as GEMINI
from .openai import DIALECT as OPENAI_CHAT
from .responses import DIALECT as RESPONSES

DIALECTS: dict[str, Dialect] = {dialect.name: dialect for dialect in (OPENAI_CHAT, ANTHROPIC, RESPONSES)}
#: Every API clients may speak: the upstream ones, and those served to clients only (Gemini).
CLIENT_DIALECTS: dict[str, Dialect] = {**DIALECTS, GEMINI.name: GEMINI}


def get(name: str) -> Dialect:
    """The upstream dialect called ``name`` (KeyError for an unknown one: names are checked where they are set)."""
    return DIALECTS[name]


def names() -> tuple[str, ...]:
    return tuple(DIALECTS)


def for_path(path: str) -> Dialect | None:
    """The dialect whose clients call under ``path`` (None for the gateway's own paths)."""
    for dialect in CLIENT_DIALECTS.values():
        if path.startswith(dialect.client_paths):
            return dialect
    return None
