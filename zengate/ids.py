"""Identifiers: OpenCode's ``ses_``/``msg_`` ids, request ids and sk-zen keys."""

from __future__ import annotations

import re
import secrets
import threading
import time

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_OPENCODE_ID = re.compile(r"^(?P<prefix>[a-z]+)_[0-9a-f]{12}[0-9A-Za-z]{14}$")

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def opencode_id(prefix: str) -> str:
    """An id in OpenCode's ascending format: ``prefix_`` + 12 hex (time and counter) + 14 base62."""
    global _last_ms, _counter
    now = int(time.time() * 1000)
    with _lock:
        if now != _last_ms:
            _last_ms, _counter = now, 0
        _counter += 1
        stamp = (now * 0x1000 + _counter) & 0xFFFF_FFFF_FFFF
    return f"{prefix}_{stamp:012x}{_base62(14)}"


def _base62(length: int) -> str:
    """``length`` random base62 characters (one read of the OS random source, no modulo bias)."""
    out = []
    while len(out) < length:
        for byte in secrets.token_bytes(length * 2):
            if byte < 248:  # 248 = 4 * 62: bytes above it would favour the first characters
                out.append(BASE62[byte % 62])
                if len(out) == length:
                    break
    return "".join(out)


def is_opencode_id(value: object, prefix: str) -> bool:
    match = _OPENCODE_ID.match(value) if isinstance(value, str) else None
    return bool(match) and match.group("prefix") == prefix


def request_id() -> str:
    return "req_" + secrets.token_hex(12)
