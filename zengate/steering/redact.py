"""Prompt redaction (setting ``prompt_redaction``): key-like strings masked in a request before it goes upstream.

Not the stored-body redaction (zengate/store/redaction.py, ``redact_stored_secrets``), which masks
what the request log keeps; this one changes what the model is sent. Its patterns are that
module's token patterns, each with a name for the mask (``[redacted:openai-key]``): OpenAI
``sk-``/``sk-proj-`` keys, Anthropic ``sk-ant-``, the gateway's own ``sk-zen-`` keys, Stripe
``sk_live_``/``rk_live_``, Google ``AIza…``, GitHub ``ghp_…``/``github_pat_…``, AWS ``AKIA…``/``ASIA…``,
Slack ``xox…-``, JWTs, ``Bearer`` tokens, PEM private-key blocks, and the gateway's registered
secrets (its upstream keys, admin password, metrics token). The named-value heuristics
(``password: …``) are left out: a prompt is full of code that names passwords.

Masked: the system prompt, the text of every turn (a user's, an assistant's earlier ones), tool
results, and the string values of earlier tool calls' inputs (a command the model once ran with a
key in it would carry the key up again). Thinking blocks are not: they are signed as they are.
Each turn is masked alike, so the conversation's prefix stays the same for the prompt cache.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from ..runtime import logs

#: (name, literals one of which every match contains, pattern); the order matters: a masked key is
#: no longer seen by the patterns after it (``Bearer sk-…`` is an openai-key, ``sk-zen-…`` no openai-key).
PATTERNS: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    ("pem-private-key", ("PRIVATE KEY",),
     re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)),
    ("zengate-key", ("sk-zen-",), re.compile(r"\bsk-zen-[A-Za-z0-9_-]{16,}")),
    ("anthropic-key", ("sk-ant-",), re.compile(r"\bsk-ant-[A-Za-z0-9_-]{16,}")),
    ("openai-key", ("sk-",), re.compile(r"\bsk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}")),
    ("stripe-key", ("k_live_", "k_test_"), re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("google-api-key", ("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("github-token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
     re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}")),
    ("aws-access-key", ("AKIA", "ASIA"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("slack-token", ("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("jwt", ("eyJ",), re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
)
#: A bearer token: 16+ characters with a digit (``Bearer YOUR_TOKEN_HERE`` stays); the word stays too.
BEARER = re.compile(r"\b([Bb]earer\s+)(?=[A-Za-z0-9._~+/=-]*\d)([A-Za-z0-9._~+/=-]{16,})")


def mask(kind: str) -> str:
    return f"[redacted:{kind}]"


def redact_text(text: str, found: Counter[str]) -> str:
    """``text`` with every key-like string masked (the same object when none was); ``found`` counts
    what was masked, by kind."""
    if len(text) < logs.MIN_SECRET_CHARS:
        return text
    for secret in logs.registered_secrets():
        if secret in text:
            found["gateway-secret"] += text.count(secret)
            text = text.replace(secret, mask("gateway-secret"))
    for kind, gate, pattern in PATTERNS:
        if any(part in text for part in gate):
            masked, count = pattern.subn(mask(kind), text)
            if count:
                text, found[kind] = masked, found[kind] + count
    if "earer" in text:
        masked, count = BEARER.subn(lambda m: m.group(1) + mask("bearer-token"), text)
        if count:
            text, found["bearer-token"] = masked, found["bearer-token"] + count
    return text


def _value(value: Any, found: Counter[str]) -> Any:
    """A tool call's input (any JSON) with its strings masked; the same object when nothing was."""
    if isinstance(value, str):
        return redact_text(value, found)
    if isinstance(value, dict):
        out = {k: _value(v, found) for k, v in value.items()}
        return value if all(out[k] is value[k] for k in value) else out
    if isinstance(value, list):
        items = [_value(v, found) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _block(block: Any, found: Counter[str]) -> Any:
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        text = redact_text(block["text"], found)
        return block if text is block["text"] else {**block, "text": text}
    if kind == "tool_result":
        content = _content(block.get("content"), found)
        return block if content is block.get("content") else {**block, "content": content}
    if kind == "tool_use" and "input" in block:
        value = _value(block["input"], found)
        return block if value is block["input"] else {**block, "input": value}
    return block  # thinking (signed), images, documents


def _content(content: Any, found: Counter[str]) -> Any:
    """A message's (or a tool result's) content masked; the same object when nothing was."""
    if isinstance(content, str):
        return redact_text(content, found)
    if isinstance(content, list):
        blocks = [_block(b, found) for b in content]
        return content if all(a is b for a, b in zip(blocks, content, strict=True)) else blocks
    return content


def redact_request(form: dict) -> tuple[dict | None, Counter[str]]:
    """The request form with key-like strings masked (a new dict; ``form`` is shared and left as it
    is), or None when there was nothing to mask; and what was masked, counted by kind."""
    found: Counter[str] = Counter()
    changes: dict[str, Any] = {}
    system = _content(form.get("system"), found)
    if system is not form.get("system"):
        changes["system"] = system
    messages = form.get("messages")
    if isinstance(messages, list):
        out = [m if not isinstance(m, dict) else _message(m, found) for m in messages]
        if any(a is not b for a, b in zip(out, messages, strict=True)):
            changes["messages"] = out
    return ({**form, **changes} if changes else None), found


def _message(message: dict, found: Counter[str]) -> dict:
    content = _content(message.get("content"), found)
    return message if content is message.get("content") else {**message, "content": content}


def summary(found: Counter[str]) -> str:
    """What the request log says was masked, never the secret: ``3 secrets: openai-key, pem-private-key``."""
    total = sum(found.values())
    return f"{total} secret{'s' if total != 1 else ''}: {', '.join(sorted(k for k, n in found.items() if n))}"
