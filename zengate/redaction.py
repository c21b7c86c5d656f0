"""Masking key-like strings in the bodies stored in the request log (setting ``redact_stored_secrets``).

:func:`redact_stored` is called by the request-log writer, off the request path, on each stored
body (input messages, output content) before it is clipped. It replaces with ``[redacted]``:

- the gateway's own secrets (upstream keys, the first admin password, the metrics token: see
  :func:`zengate.logs.register_secret`), raw or as JSON escapes them;
- ``sk-zen-…`` and ``sk-ant-…`` keys; other ``sk-…`` keys of 20+ characters with a digit in them
  (OpenAI's ``sk-…``/``sk-proj-…``); AWS access key ids (``AKIA…``/``ASIA…``); GitHub tokens
  (``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``, ``github_pat_``); Slack tokens (``xox…-``); Google
  API keys (``AIza…``); PEM private keys;
- bearer tokens (16+ characters with a digit, so ``Bearer YOUR_TOKEN_HERE`` stays);
- values after ``api_key=``, ``password:``, ``"secret": "…"`` and the like, but only when they look
  generated: 16+ characters of token alphabet with at least two digits and two letters and a
  Shannon entropy of 3 bits a character or more. ``password = get_password()`` or
  ``token: str`` are code, not secrets, and stay;
- the password in ``scheme://user:password@host`` URLs.

Ordinary prose and code pass unchanged (the tests hold a corpus of both). Each pattern only runs
when a cheap substring test says it could match.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from typing import Any

from . import logs

MASK = logs.MASK

# Patterns whose whole match is the secret: (substring that must be present, pattern).
_TOKENS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (("sk-",), re.compile(r"\bsk-(?:zen|ant)-[A-Za-z0-9_-]{16,}")),
    (("sk-",), re.compile(r"\bsk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}")),
    (("AKIA", "ASIA"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    (("gh",), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    (("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}")),
    (("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    (("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    (("PRIVATE KEY",), re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
                                  re.DOTALL)),
)
_BEARER = re.compile(r"\b([Bb]earer\s+)(?=[A-Za-z0-9._~+/=-]*\d)([A-Za-z0-9._~+/=-]{16,})")
# name, an optional closing quote (raw or JSON-escaped), ':' or '=', an optional opening quote, the value
_NAMED = re.compile(
    r"""(?ix)
    \b(?:api[_-]?key|apikey|x-api-key|access[_-]?key(?:[_-]?id)?|secret(?:[_-]?access)?[_-]?key|client[_-]?secret
       |secret|auth[_-]?token|access[_-]?token|refresh[_-]?token|api[_-]?token|token|password|passwd|pwd
       |private[_-]?key)
    (?:\\?["'])?\s*[:=]\s*(?:\\?["'])?
    ([A-Za-z0-9_\-+/=.~]{16,})
    """
)
_NAMED_HINTS = ("key", "secret", "token", "passw", "pwd")
_URL_CREDENTIALS = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"'\\]+:)([^/\s@\"'\\]+)@")


def _looks_generated(value: str) -> bool:
    """A value with the shape of a generated token rather than a word or an identifier."""
    digits = sum(c.isdigit() for c in value)
    letters = sum(c.isalpha() for c in value)
    if digits < 2 or letters < 2:
        return False
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return entropy >= 3.0


def _mask_named(match: re.Match[str]) -> str:
    value = match.group(1)
    if not _looks_generated(value):
        return match.group(0)
    start = match.start(1) - match.start(0)
    return match.group(0)[:start] + MASK


@functools.lru_cache(maxsize=64)
def _json_escaped(secret: str) -> str:
    """``secret`` as it reads inside a JSON string (the registered secrets are few and fixed)."""
    return json.dumps(secret, ensure_ascii=False)[1:-1]


def _contains_any(text: str, parts: tuple[str, ...]) -> bool:
    """``any(p in text for p in parts)`` without a generator (this runs for every stored body)."""
    for part in parts:
        if part in text:
            return True
    return False


def redact_secrets(text: str) -> str:
    """``text`` with every key-like string replaced by ``[redacted]`` (see the module docstring)."""
    if not text:
        return text
    for secret in logs.registered_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
        escaped = _json_escaped(secret)
        if escaped != secret and escaped in text:
            text = text.replace(escaped, MASK)
    for hints, pattern in _TOKENS:
        if _contains_any(text, hints):
            text = pattern.sub(MASK, text)
    if "earer" in text:
        text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    if _contains_any(text.lower(), _NAMED_HINTS):
        text = _NAMED.sub(_mask_named, text)
    if "://" in text and "@" in text:
        text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + MASK + "@", text)
    return text


def redact_stored(value: Any) -> str | None:
    """A request-log body serialised as the log stores it (JSON unless already text), redacted."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return redact_secrets(text)
