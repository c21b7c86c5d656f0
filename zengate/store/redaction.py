"""Masking key-like strings in the bodies stored in the request log (setting ``redact_stored_secrets``).

:func:`redact_stored` is called by the request-log writer, off the request path, on each stored
body (input messages, output content) before it is clipped. It replaces with ``[redacted]``:

- the gateway's own secrets (upstream keys, the first admin password, the metrics token: see
  :func:`zengate.runtime.logs.register_secret`), raw or as JSON escapes them;
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

Ordinary prose and code pass unchanged (the tests hold a corpus of both).

This runs on every stored body, whole conversations included (Claude Code sends its whole session
each turn), in the worker's event loop: patterns scanned position by position over such a body
held every other request of the worker. So a pattern runs over the text only when a *gate* finds
what each of its matches must contain: a literal (``in``, a C scan), or a short regex led by a
literal (``re`` scans for the literal first). The named-value pattern is tried only where its name
can start: up to ``NAME_REACH`` characters before an occurrence of ``key``, ``secret``, ``token``,
``passw`` or ``pwd`` that the rest of the pattern follows (the figures: docs/performance.md,
measured with bench/tools/components.py). What is masked is exactly what the patterns alone mask
(tests/unit/test_redaction.py compares both on real client bodies and on generated text).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from typing import Any

from ..dialects import jsoncodec
from ..runtime import logs

MASK = logs.MASK

# Patterns whose whole match is the secret, each with its gate: a tuple of literals one of which
# any match contains, or a regex led by a literal that any match contains a match of.
# Both sk- patterns need 20 characters of [A-Za-z0-9_-] after "sk-" ("zen-"/"ant-" and 16, or 20).
_SK_GATE = re.compile(r"sk-[A-Za-z0-9_-]{20}")
_TOKENS: tuple[tuple[tuple[str, ...] | re.Pattern[str], re.Pattern[str]], ...] = (
    (_SK_GATE, re.compile(r"\bsk-(?:zen|ant)-[A-Za-z0-9_-]{16,}")),
    (_SK_GATE, re.compile(r"\bsk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}")),
    (("AKIA", "ASIA"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    (re.compile(r"gh[pousr]_[A-Za-z0-9]{30}"), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    (("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}")),
    (re.compile(r"xox[abposr]-[A-Za-z0-9-]{10}"), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    (("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    (("PRIVATE KEY",), re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
                                  re.DOTALL)),
)
_BEARER = re.compile(r"\b([Bb]earer\s+)(?=[A-Za-z0-9._~+/=-]*\d)([A-Za-z0-9._~+/=-]{16,})")
_BEARER_GATE = re.compile(r"earer\s+(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{16}")
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
#: In every name ``_NAMED`` admits, the last hint starts at most this many characters after the
#: name ("secret_access_key") and at most 3 of the name's characters follow it ("password",
#: "access_key_id"); tests/unit/test_redaction.py checks both for every name the pattern admits.
NAME_REACH = 14
#: What follows a hint that ends a match's name: the name's last characters, then the rest of the
#: pattern up to the 16th character of the value (lower-cased text; only as a filter).
_AFTER_LAST_HINT = re.compile(r"""[a-z_-]{0,3}(?:\\?["'])?\s*[:=]\s*(?:\\?["'])?[A-Za-z0-9_\-+/=.~]{16}""")
#: The first letters of those names: a position holding anything else cannot start a match.
_NAME_STARTS = frozenset("apxscrt")
#: Letters that ``re.IGNORECASE`` matches to ASCII letters while ``str.lower`` leaves them apart:
#: the dotless i and the long s. A text holding one is searched the slow way.
_FOLDS_TO_ASCII = ("\u0131", "\u017f")
_URL_CREDENTIALS = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"'\\]+:)([^/\s@\"'\\]+)@")
_URL_GATE = re.compile(r"://[^/\s:@\"'\\]+:[^/\s@\"'\\]+@")


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
    """``secret`` as it reads inside a JSON string of :func:`serialised` (the registered secrets are few and fixed)."""
    return serialised([secret])[2:-2]


def _contains_any(text: str, parts: tuple[str, ...]) -> bool:
    """``any(p in text for p in parts)`` without a generator (this runs for every stored body)."""
    for part in parts:
        if part in text:
            return True
    return False


def _gate_open(text: str, gate: tuple[str, ...] | re.Pattern[str]) -> bool:
    return _contains_any(text, gate) if isinstance(gate, tuple) else gate.search(text) is not None


def _name_candidates(lowered: str) -> list[int]:
    """Every position where a ``_NAMED`` match can start, ascending.

    A match's name holds a hint that the rest of the pattern follows (``_AFTER_LAST_HINT``), and
    starts at most ``NAME_REACH`` characters before it, with one of the names' first letters.
    """
    starts: set[int] = set()
    for hint in _NAMED_HINTS:
        at = lowered.find(hint)
        while at >= 0:
            if _AFTER_LAST_HINT.match(lowered, at + len(hint)):
                starts.update(s for s in range(max(0, at - NAME_REACH), at + 1) if lowered[s] in _NAME_STARTS)
            at = lowered.find(hint, at + 1)
    return sorted(starts)


def _mask_named_values(text: str) -> str:
    """``_NAMED.sub(_mask_named, text)``, trying the pattern only where a name can start.

    ``sub`` takes the leftmost match, then the next from where it ended; every position where a
    match can start is a candidate, so taking the candidates in order finds the same matches.
    """
    lowered = text.lower()
    if len(lowered) != len(text) or _contains_any(text, _FOLDS_TO_ASCII):
        # positions would not line up, or a letter the pattern's IGNORECASE takes for an ASCII one
        return _NAMED.sub(_mask_named, text)
    parts: list[str] = []
    last = 0
    for start in _name_candidates(lowered):
        if start < last:
            continue
        match = _NAMED.match(text, start)
        if match is None:
            continue
        parts += (text[last:start], _mask_named(match))
        last = match.end()
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


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
    for gate, pattern in _TOKENS:
        if _gate_open(text, gate):
            text = pattern.sub(MASK, text)
    if _BEARER_GATE.search(text):
        text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = _mask_named_values(text)
    if _URL_GATE.search(text):
        text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + MASK + "@", text)
    return text


def serialised(value: Any) -> str:
    """A body as the request log stores it: text as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else jsoncodec.dumps(value).decode()


def redact_stored(value: Any) -> str | None:
    """A request-log body serialised as the log stores it (:func:`serialised`), redacted."""
    if value is None:
        return None
    return redact_secrets(serialised(value))
