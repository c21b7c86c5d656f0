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


#: Byte → base62 character, for the bytes below 248 (= 4 × 62); the 8 above would favour the first
#: characters, so they are dropped instead.
_TO_BASE62 = (BASE62.encode() * 5)[:256]
_UNEVEN = bytes(range(248, 256))


def _base62(length: int) -> str:
    """``length`` random base62 characters, without modulo bias."""
    out = b""
    while len(out) < length:  # 20 bytes give 14 characters but once in ~10^5 draws
        out += secrets.token_bytes(length + 6).translate(_TO_BASE62, _UNEVEN)
    return out[:length].decode()


def is_opencode_id(value: object, prefix: str) -> bool:
    match = _OPENCODE_ID.match(value) if isinstance(value, str) else None
    return bool(match) and match.group("prefix") == prefix


def request_id() -> str:
    return "req_" + secrets.token_hex(12)
